"""The ``aidflow`` command line (Typer + rich), one module a command group.

A refused request exits with status 1 and its reason on one line; a usage
error exits with status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys

from pydantic import ValidationError

from workers.cli import common
from workers.cli.common import app

# The command groups register their commands on the app when imported, in the order
# `aidflow --help` shows them.
for _group in (
    "stack",
    "requests",
    "notices",
    "funds",
    "programmes",
    "credentials",
    "data",
    "ledger",
    "rosters",
    "loans",
    "cases",
):
    importlib.import_module(f"workers.cli.{_group}")

__all__ = ["app", "main"]


def main() -> None:
    """Every error ends the command on one line with exit status 1, never a traceback
    (a traceback may show what it should not, and tells an official nothing). Usage
    errors keep typer's own message and status 2."""
    code = 0
    try:
        app()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        print(f"aidflow: {one_line(e)}", file=sys.stderr)
        code = 1
    if common.state.temporal_runtime:
        # The Temporal SDK's native threads can race the interpreter's finalization: seen
        # in CI ("PyGILState_Release ... finalizing", status -6 after a command had
        # printed its answer), and in `aidflow simulate --applications 10000`, which
        # after reporting a stall hung for good in the runtime's teardown (0 % CPU, its
        # server gone, threads parked by PyO3). The command's own work is done and
        # written (its databases and files are closed where it opened them): the output
        # and the logs are flushed and the process ends here.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a closed pipe (`simulate --json | head`)
                stream.flush()
        os._exit(code)
    sys.exit(code)


def one_line(error: Exception) -> str:
    """An error as one line: a validation error names every field that is wrong."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if isinstance(error, KeyError | OSError) else text
