"""The ``aidflow`` command line (Typer + rich), one module a command group.

A refused request exits with status 1 and its reason on one line; a usage
error exits with status 2.
"""

from __future__ import annotations

import importlib
import sys

from pydantic import ValidationError

from workers.cli.common import app

# The command groups register their commands on the app when imported, in the order
# `aidflow --help` shows them.
for _group in ("stack", "requests", "notices", "funds", "programmes", "data"):
    importlib.import_module(f"workers.cli.{_group}")

__all__ = ["app", "main"]


def main() -> None:
    """Every error ends the command on one line with exit status 1, never a traceback
    (a traceback may show what it should not, and tells an official nothing). Usage
    errors keep typer's own message and status 2."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        print(f"aidflow: {one_line(e)}", file=sys.stderr)
        sys.exit(1)


def one_line(error: Exception) -> str:
    """An error as one line: a validation error names every field that is wrong."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if isinstance(error, KeyError | OSError) else text
