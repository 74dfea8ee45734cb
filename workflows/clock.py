"""Waiting until an instant, with commands that do not depend on the task's clock.

sdk-core (temporalio 1.35) can run a workflow task at the clock of the task before: a
query answered by a worker that has just started runs the workflow on the pending task's
new events, at the old clock, and keeps its commands (README, "A defect of the Temporal
SDK"; ``tests/test_sdk_defect.py``). Code that asks "has this instant passed?" and then
either starts a timer or acts at once gives a history that its own replay, on the right
clock, contradicts: the application is stuck for good.

So a wait until an instant always starts a timer, of at least a tick when the instant
has already passed, and what is due at the instant happens when that timer fires. A
timer's duration is not compared on replay (only that a timer was started), so the stale
clock changes when the timer fires, never which commands the task sends.
``tests/test_replay.py`` replays every recorded history with each task's clock set back
to the task before's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

# Temporal's smallest timer: an instant already past fires on the next task.
TICK = timedelta(milliseconds=1)


def until(at: datetime) -> timedelta:
    """A timer's duration to ``at``: at least a tick, never "now, without a timer"."""
    return max(at - workflow.now(), TICK)


async def sleep_until(at: datetime, summary: str) -> None:
    await workflow.sleep(until(at), summary=summary)
