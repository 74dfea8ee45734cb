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


# ---------------------------------------------------------------- workflow code
# A production worker shares aidflow's workflow modules among its workflows, with the
# sandbox's run-time checks off for them (workers/sandbox.py, "shared"): what the sandbox
# would refuse there is refused here, from the source, and again at run time by the
# suite, which runs every workflow in the strict sandbox.

# What workflow code may import: the clock, chance, files, the network, the environment
# and the database are none of it (they come through activities or the input).
WORKFLOW_IMPORTS = {
    "__future__",
    "asyncio",
    "collections",
    "contextlib",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "itertools",
    "math",
    "re",
    "typing",
    "pydantic",
    "temporalio",
    "models",
    "activities",  # their definitions, for the commands that name them
    "workflows",
}
# Calls that read the clock, the process or the outside world: ``workflow.now()`` is
# the workflow's clock; ``fromtimestamp`` without a zone reads the machine's; ``hash`` of
# a string differs between processes. (``time`` and ``random`` cannot be imported.)
_FORBIDDEN_METHODS = {"now", "utcnow", "today", "fromtimestamp"}
_FORBIDDEN_BUILTINS = {"open", "input", "print", "hash", "eval", "exec", "compile", "__import__"}
_MUTATORS = {
    "append",
    "extend",
    "insert",
    "update",
    "add",
    "pop",
    "popitem",
    "setdefault",
    "clear",
    "remove",
    "discard",
}
_MUTABLE = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def nondeterminism(source: str, module: str) -> list[str]:
    """What in ``source`` (the workflow module ``module``) reads the world or shares
    state."""
    tree = ast.parse(source)
    # Every import counts, lazy and relative ones too (the layers' reader, above).
    found = [
        f"imports {target}"
        for target in sorted(imports_in(source, module))
        if _top(target) not in WORKFLOW_IMPORTS
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in _FORBIDDEN_BUILTINS:
                found.append(f"line {node.lineno}: calls {f.id}()")
            elif (
                isinstance(f, ast.Attribute)
                and f.attr in _FORBIDDEN_METHODS
                and not (isinstance(f.value, ast.Name) and f.value.id == "workflow")
            ):
                found.append(f"line {node.lineno}: calls {ast.unparse(f)}()")
    # State shared by every workflow: a module's or class's mutable value, changed.
    shared = {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, _MUTABLE)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        found += [
            f"line {b.lineno}: class {cls.name} has a mutable class attribute"
            for b in cls.body
            if isinstance(b, (ast.Assign, ast.AnnAssign)) and isinstance(b.value, _MUTABLE)
        ]
    for node in ast.walk(tree):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for t in node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                    target = t.value.id
                elif isinstance(node, ast.AugAssign) and isinstance(t, ast.Name):
                    target = t.id
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and isinstance(node.func.value, ast.Name)
        ):
            target = node.func.value.id
        if target in shared:
            found.append(f"line {getattr(node, 'lineno', '?')}: changes the shared {target}")
    return found


def test_workflow_code_neither_reads_the_world_nor_shares_state() -> None:
    bad = [
        f"{name} {problem}"
        for name, path in _modules("workflows")
        for problem in nondeterminism(path.read_text(encoding="utf-8"), name)
    ]
    assert bad == []


def test_the_workflow_code_check_sees_what_it_must() -> None:
    source = """
import time
from datetime import datetime
from temporalio import workflow
SEEN: dict[str, int] = {}
class Runner:
    pending: list[str] = []
    done = False
def f(key):
    SEEN[key] = 1
    SEEN.update(x=1)
    t = datetime.now()
    ok = workflow.now()
    return hash(key), open("x")
"""
    problems = "\n".join(nondeterminism(source, "workflows.example"))
    for expected in (
        "imports time",
        "calls datetime.now()",
        "class Runner has a mutable class attribute",
        "changes the shared SEEN",
        "calls hash()",
        "calls open()",
    ):
        assert expected in problems, expected
    assert "workflow.now" not in problems and "done" not in problems
    assert problems.count("changes the shared SEEN") == 2
