"""Signals from one workflow to many (the season to its applications, a batch to its payees)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from typing import Any

from temporalio import workflow

# Patch id: signals to many workflows go out together in one workflow task. Before it,
# each signal waited for the previous one (a round trip each: minutes for a county).
SIGNAL_TOGETHER = "signal-many-together"
# Patch id: ... in workflow tasks of at most CHUNK signals each. Before it, a season
# that asked for the funds of 6,720 applications issued 6,720 signals in one workflow
# activation, which took longer than the SDK's two-second deadlock limit: the task
# failed and the season stuck (aidflow simulate, 10,000 applications).
SIGNAL_IN_CHUNKS = "signal-in-chunks"
CHUNK = 500
# Patch id: ... of at most SMALL_CHUNK. An activation of 500 signals still took over
# two seconds on a loaded two-core machine (aidflow simulate, 3,000 applications: the
# task failed on the deadlock limit and was retried, and a query sent meanwhile failed).
# A fifth of that leaves the limit ten times the time a chunk takes when all is well.
SIGNAL_IN_SMALL_CHUNKS = "signal-in-chunks-of-100"
SMALL_CHUNK = 100


class Together(enum.Enum):
    """How a workflow sends one signal to many (decided once per run: see patches above)."""

    ONE_BY_ONE = "one after the other"
    ALL_AT_ONCE = "all in one workflow task"
    IN_CHUNKS = f"at most {CHUNK} per workflow task"
    IN_SMALL_CHUNKS = f"at most {SMALL_CHUNK} per workflow task"


def signal_together() -> Together:
    """Call once at the start of a workflow's run (a point a replay reaches the same
    way) and pass the answer to :func:`signal_each`."""
    if not workflow.patched(SIGNAL_TOGETHER):
        return Together.ONE_BY_ONE
    if not workflow.patched(SIGNAL_IN_CHUNKS):
        return Together.ALL_AT_ONCE
    if not workflow.patched(SIGNAL_IN_SMALL_CHUNKS):
        return Together.IN_CHUNKS
    return Together.IN_SMALL_CHUNKS


async def signal_each(name: str, targets: Sequence[tuple[str, Any]], *, together: Together) -> None:
    """Send ``name`` to each (workflow id, argument), in order."""
    if together is Together.ONE_BY_ONE:
        for wf, arg in targets:
            await workflow.get_external_workflow_handle(wf).signal(name, arg)
        return
    size = {
        Together.ALL_AT_ONCE: len(targets),
        Together.IN_CHUNKS: CHUNK,
        Together.IN_SMALL_CHUNKS: SMALL_CHUNK,
    }[together]
    for start in range(0, len(targets), max(size, 1)):
        await asyncio.gather(
            *(
                workflow.get_external_workflow_handle(wf).signal(name, arg)
                for wf, arg in targets[start : start + size]
            )
        )
