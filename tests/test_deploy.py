"""deploy/, checked offline (it cannot be pulled and run here; README, "Deployment"):
the Kubernetes manifests against the API's schemas (kubernetes-validate, strict), the
compose file against the compose spec (check-jsonschema's vendored schema), YAML style
(yamllint), and each against the code it runs: settings that exist, the search
attributes the workflows upsert, commands the CLI has, an install that carries every
package."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from models import search
from workers.cli import app as cli_app
from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = DEPLOY / "k8s" / "aidflow.yaml"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
HELM_VALUES = DEPLOY / "helm" / "temporal-values.yaml"
BIN = Path(sys.executable).parent


def _documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text(encoding="utf-8")) if d]


@pytest.mark.parametrize("i", range(len(_documents())), ids=lambda i: f"doc{i}")
def test_each_manifest_is_valid_for_the_kubernetes_api(i: int) -> None:
    doc = _documents()[i]
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_the_compose_file_follows_the_compose_spec() -> None:
    run = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_deploy_yaml_is_clean() -> None:
    files = [MANIFESTS, COMPOSE, HELM_VALUES]
    run = subprocess.run(
        [BIN / "yamllint", "--strict", "-c", DEPLOY / ".yamllint", *files],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _containers() -> list[dict[str, Any]]:
    found = []
    for doc in _documents():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        found += pod.get("containers", [])
    return found


def test_every_setting_named_is_one_aidflow_reads() -> None:
    known = {f"AIDFLOW_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set()
    for doc in _documents():
        if doc["kind"] == "ConfigMap":
            named |= set(doc["data"])
    for c in _containers():
        named |= {e["name"] for e in c.get("env", [])}
    example = (DEPLOY / "compose" / "aidflow.env.example").read_text(encoding="utf-8")
    named |= set(re.findall(r"^(AIDFLOW_[A-Z_]+)=", example, flags=re.M))
    assert named and named <= known, sorted(named - known)


def test_the_search_attributes_registered_are_the_workflows() -> None:
    wanted = {(k.name, search.cli_type_name(k)) for k in search.ALL}
    for doc in _documents():
        if doc["metadata"]["name"] == "aidflow-search-attributes":
            args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
            names = [a.split("=", 1)[1] for a in args if a.startswith("--name=")]
            types = [a.split("=", 1)[1] for a in args if a.startswith("--type=")]
            assert set(zip(names, types, strict=True)) == wanted
            break
    else:
        pytest.fail("no search-attributes job")
    script = (DEPLOY / "search-attributes.sh").read_text(encoding="utf-8")
    assert set(re.findall(r"--name (\w+) --type (\w+)", script)) == wanted


def test_the_containers_run_commands_the_cli_has() -> None:
    import typer.main

    group = typer.main.get_command(cli_app)
    commands: list[list[str]] = [
        c["args"] for c in _containers() if c["name"] != "search-attributes"
    ]
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    commands += [s["command"] for s in compose["services"].values() if "command" in s]
    assert commands
    for args in commands:
        node: Any = group
        for word in args:
            assert hasattr(node, "commands") and word in node.commands, (args, word)
            node = node.commands[word]


def test_an_install_carries_every_package(tmp_path: Path) -> None:
    """The image installs aidflow without -e: every package of the layers must be in it
    (a hand-kept list in pyproject.toml had lost three of workers')."""
    import shutil

    layers = ("models", "workflows", "activities", "store", "integrations", "workers")
    # Built from a copy: setuptools leaves a build/ folder beside the sources.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for layer in layers:
        shutil.copytree(ROOT / layer, source / layer, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            source,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("aidflow-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packaged = {str(Path(n).parent) for n in z.namelist() if n.endswith("/__init__.py")}
    wanted = {
        str(p.parent.relative_to(ROOT))
        for layer in layers
        for p in (ROOT / layer).rglob("__init__.py")
    }
    assert wanted <= packaged, sorted(wanted - packaged)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert any(n.startswith("models/programmes/") and n.endswith(".json") for n in names)
    assert "store/migrations/script.py.mako" in names


def test_the_containers_write_where_aidflow_writes() -> None:
    """The gateway writes too (uploaded notice photographs, reports and ledgers made on
    request), and a read-only root filesystem has a writable /tmp beside it."""
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "aidflow.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            assert not mounts["/var/lib/aidflow"].get("readOnly"), c["name"]
            if c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                assert "emptyDir" in volumes[mounts["/tmp"]["name"]], c["name"]
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    for name in ("aidflow-worker", "aidflow-gateway"):
        files = [v for v in compose["services"][name]["volumes"] if v.startswith("files:")]
        assert files == ["files:/var/lib/aidflow"], (name, files)


def test_workbooks_need_no_temporary_folder(tmp_path: Path, monkeypatch: Any) -> None:
    """xlsxwriter writes a workbook's parts to the temporary folder unless told to keep
    them in memory; a read-only container has none."""
    import tempfile

    import xlsxwriter

    from store.cells import WORKBOOK_OPTIONS

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    wb = xlsxwriter.Workbook(str(tmp_path / "roster.xlsx"), WORKBOOK_OPTIONS)
    wb.add_worksheet().write_row(0, 0, ["姓名", 3000])
    wb.close()
    assert zipfile.is_zipfile(tmp_path / "roster.xlsx")


def test_the_process_specification_in_docs_is_the_teams() -> None:
    """docs/PROCESS.md is a verbatim copy of the team's specification, so that a clone
    has what the code's "PROCESS.md §…" refers to; where the original sits beside the
    repository, the copy must not have drifted from it."""
    copy = ROOT / "docs" / "PROCESS.md"
    assert copy.read_text(encoding="utf-8").startswith("#")
    original = ROOT.parent / "shared" / "domain" / "PROCESS.md"
    if not original.exists():
        pytest.skip(f"no original beside the repository ({original})")
    assert copy.read_bytes() == original.read_bytes(), "update docs/PROCESS.md from the original"
