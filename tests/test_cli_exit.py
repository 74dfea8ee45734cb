"""How an ``aidflow`` command ends once it has run Temporal's native runtime: its output
and logs flushed, then the process ends without the interpreter's finalization (which
the runtime's threads can hang for good: `aidflow simulate --applications 10000` did,
after reporting a stall)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import workers.cli as cli
from workers.cli import common

flushed: list[str] = []  # what main flushed before it ended the process


class _Ended(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@pytest.fixture
def main_running(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], None]], None]:
    """``main`` running ``command`` as its app, with a fresh state and ``os._exit``
    recorded (raised as ``_Ended``) instead of ending the test process."""

    def _exit(code: int) -> None:
        raise _Ended(code)

    monkeypatch.setattr(common, "state", common._State())
    monkeypatch.setattr("workers.cli.os._exit", _exit)
    monkeypatch.setattr("workers.cli.logging.shutdown", lambda: flushed.append("logs"))

    def run(command: Callable[[], None]) -> None:
        monkeypatch.setattr(cli, "app", command)
        cli.main()

    return run


def test_a_command_that_ran_the_runtime_ends_the_process_with_its_status(
    main_running: Callable[[Callable[[], None]], None],
) -> None:
    def command() -> None:
        common.run(asyncio.sleep(0))  # the async work of every such command
        raise SystemExit(3)

    flushed.clear()
    with pytest.raises(_Ended) as ended:
        main_running(command)
    assert ended.value.code == 3
    assert flushed == ["logs"]


def test_a_command_that_did_not_exits_as_usual(
    main_running: Callable[[Callable[[], None]], None],
) -> None:
    def command() -> None:
        raise SystemExit(2)

    flushed.clear()
    with pytest.raises(SystemExit) as exited:
        main_running(command)
    assert exited.value.code == 2
    assert flushed == []  # the interpreter's own exit shuts logging down
