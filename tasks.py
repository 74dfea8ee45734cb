#!/usr/bin/env python3
"""The two commands of the README, for a fresh machine that has only Python 3.11+.

    python3 tasks.py run    # set up, then run the demo season on the embedded default (aidflow demo)
    python3 tasks.py test   # set up, then lint, type-check and run the whole test suite

Both create ./.venv and install the project into it (again only when
pyproject.toml or constraints.txt changed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def sh(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def setup() -> None:
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    # The workflow sandbox imports the workflow modules afresh for every workflow it
    # starts; with no bytecode on disk (PYTHONDONTWRITEBYTECODE, an editable install)
    # each start compiles them from source (measured: 12 % of a worker's CPU in bench/).
    # compileall writes only what is missing or stale.
    sh(PY, "-m", "compileall", "-q", "models", "workflows", "activities", "workers")
    inputs = b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))
    stamp = VENV / ".aidflow-installed"
    digest = hashlib.sha256(inputs).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[dev]")
    stamp.write_text(digest)


def main() -> None:
    task = sys.argv[1] if len(sys.argv) > 1 else "run"
    extra = sys.argv[2:]
    if task not in ("run", "test", "setup"):
        sys.exit("usage: python3 tasks.py run|test|setup [args...]")
    setup()
    if task == "run":
        os.execv(BIN / "aidflow", [str(BIN / "aidflow"), *(extra or ["demo"])])
    if task == "test":
        sh(BIN / "ruff", "check", ".")
        sh(BIN / "mypy", ".")
        os.execv(
            PY, [str(PY), "-m", "pytest", *(extra or ["-q", "-rs", "-n", "2", "--durations=15"])]
        )


if __name__ == "__main__":
    main()
