"""The layout's rules, read from the source (pure and fast: nothing is imported).

The design card's folders are layers, in this order: ``models`` (pure domain code),
``store`` (the database), ``integrations`` (the bank, the outbox's channels),
``activities``, ``workflows``, and ``workers`` (the processes, the client, the command
line) on top. A module may import from its own layer and those below, never
from above: an upward import is how a pure module ends up needing a database or a
worker. Every import counts, including those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "store", "integrations", "activities", "workflows", "workers")
# The application workflow reads top to bottom like PROCESS.md (issue 15): the loop, the
# trail and the handlers; everything else lives beside it.
APPLICATION_MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:  # Alembic's generated revisions: data, not design
            continue
        yield _module_name(path), path


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    return imports_in(
        path.read_text(encoding="utf-8"), _module_name(path), package=path.name == "__init__.py"
    )


def imports_in(source: str, module: str, *, package: bool = False) -> set[str]:
    here = module.split(".")
    if not package:
        here = here[:-1]  # a module's relative imports start at its package
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from workers import cli`` imports the module workers.cli.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _violations(package: str, allowed: set[str]) -> list[str]:
    """Imports from ``package`` of our own packages other than ``allowed``."""
    bad = []
    for name, path in _modules(package):
        for target in sorted(imports(path)):
            top = _top(target)
            if top in PACKAGES and top not in allowed:
                bad.append(f"{name} imports {target}")
    return sorted(set(bad))


def test_the_application_workflow_stays_short() -> None:
    lines = len((ROOT / "workflows" / "application.py").read_text(encoding="utf-8").splitlines())
    assert lines < APPLICATION_MAX_LINES, (
        f"workflows/application.py has {lines} lines (< {APPLICATION_MAX_LINES}): move what is "
        "not the process (helpers, plumbing) beside it, e.g. workflows/requests.py"
    )


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("models", {"models"}),
        ("store", {"models", "store"}),
        ("integrations", {"models", "store", "integrations"}),
        ("activities", {"models", "store", "integrations", "activities"}),
        ("workflows", {"models", "store", "integrations", "activities", "workflows"}),
    ],
)
def test_imports_point_down(package: str, allowed: set[str]) -> None:
    assert _violations(package, allowed) == []


def test_only_the_command_line_imports_the_command_line() -> None:
    bad = []
    for package in (*PACKAGES, "bench"):  # the benchmarks run the command line as a process
        for name, path in _modules(package):
            if name == "workers.cli" or name.startswith("workers.cli."):
                continue
            bad += [
                f"{name} imports {t}"
                for t in sorted(imports(path))
                if t == "workers.cli" or t.startswith("workers.cli.")
            ]
    assert bad == []


def test_the_import_reader_sees_every_kind_of_import() -> None:
    """The rules above are only as good as the reader: lazy, relative and
    ``TYPE_CHECKING`` imports all count."""
    source = """
from typing import TYPE_CHECKING
import store.db
from . import base
from ..client import api
if TYPE_CHECKING:
    from workflows.application import ApplicationWorkflow
def later():
    from workers import cli
"""
    found = imports_in(source, "workers.officials.review")
    assert {
        "store.db",
        "workers.officials.base",
        "workers.client.api",
        "workflows.application",
        "workers.cli",
    } <= found
    assert "workers.officials.base" in imports_in(
        "from . import base", "workers.officials", package=True
    )
