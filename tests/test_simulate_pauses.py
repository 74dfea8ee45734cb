"""The simulator's pauses: its garbage collections timed, and the SDK's deadlock limit
raised to outlast them (workers/simulate/pauses.py)."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

import pytest

from workers.simulate.pauses import ACTIVATION_LIMIT_SECONDS, collections_timed, tolerate_pauses


def test_the_deadlock_limit_is_raised_where_the_sdk_keeps_it() -> None:
    """The SDK reads its workflow worker's ``_deadlock_timeout_seconds`` at every
    activation; the simulation's tests run with it raised. If an SDK renames it, this
    says so rather than the simulator silently keeping the 2-second limit."""
    from temporalio.worker._workflow import _WorkflowWorker

    assert "_deadlock_timeout_seconds" in _WorkflowWorker.__init__.__code__.co_names
    inner = SimpleNamespace(_deadlock_timeout_seconds=2)
    tolerate_pauses(SimpleNamespace(_workflow_worker=inner))  # type: ignore[arg-type]
    assert inner._deadlock_timeout_seconds == ACTIVATION_LIMIT_SECONDS
    with pytest.raises(RuntimeError, match="_deadlock_timeout_seconds"):
        tolerate_pauses(SimpleNamespace(_workflow_worker=SimpleNamespace()))  # type: ignore[arg-type]


def test_collections_are_counted_and_timed_while_watched() -> None:
    garbage: list[Any] = []
    with collections_timed() as seen:
        for _ in range(3):
            cycle: list[Any] = []
            cycle.append(cycle)
            garbage.append(cycle)
            gc.collect()
    assert seen.full == 3
    assert seen.seconds > 0 and 0 < seen.longest_seconds <= seen.seconds
    gc.collect()
    assert seen.full == 3  # no longer watched
    assert set(seen.as_json()) == {"full_collections", "seconds", "longest_seconds"}


def test_a_stalled_run_says_how_long_it_ran_and_its_collections() -> None:
    import time

    from workers.officials import SimulationStalled
    from workers.simulate.pauses import Collections
    from workers.simulate.stack import _said_on_a_stall

    seen = Collections(full=2, seconds=3.5, longest_seconds=1.25)
    with pytest.raises(SimulationStalled) as stalled, _said_on_a_stall(time.monotonic() - 61, seen):
        raise SimulationStalled("a notice's member not told of its posting within 300 s")
    said = str(stalled.value)
    assert said.startswith("a notice's member not told")
    assert "stopped after 61 s" in said
    assert "2 full, 3.5 s in all, the longest 1.25 s" in said
