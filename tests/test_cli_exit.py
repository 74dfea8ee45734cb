"""How an ``aidflow`` command ends once it has run Temporal's native runtime: its output
and logs flushed, then the process ends without the interpreter's finalization (which
the runtime's threads can hang for good: `aidflow simulate --applications 10000` did,
after reporting a stall)."""

from __future__ import annotations

import asyncio

import pytest

import workers.cli as cli
from workers.cli import common


class _Ended(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _exit_recorder(monkeypatch: pytest.MonkeyPatch) -> None:
    def _exit(code: int) -> None:
        raise _Ended(code)

    monkeypatch.setattr("workers.cli.os._exit", _exit)


def test_a_command_that_ran_the_runtime_ends_the_process_with_its_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "state", common._State())

    def command() -> None:
        common.run(asyncio.sleep(0))  # the async work of every such command
        raise SystemExit(3)

    monkeypatch.setattr(cli, "app", command)
    _exit_recorder(monkeypatch)
    with pytest.raises(_Ended) as ended:
        cli.main()
    assert ended.value.code == 3


def test_a_command_that_did_not_exits_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "state", common._State())

    def command() -> None:
        raise SystemExit(2)

    monkeypatch.setattr(cli, "app", command)
    _exit_recorder(monkeypatch)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
