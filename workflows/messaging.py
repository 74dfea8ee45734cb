"""Signals from one workflow to many (the season to its applications, a batch to its payees)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import workflow

# Patch id: signals to many workflows go out together in one workflow task. Before it,
# each signal waited for the previous one (a round trip each: minutes for a county).
SIGNAL_TOGETHER = "signal-many-together"


def signal_together() -> bool:
    """Call once at the start of a workflow's run (a point a replay reaches the same
    way) and pass the answer to :func:`signal_each`."""
    return workflow.patched(SIGNAL_TOGETHER)


async def signal_each(name: str, targets: Sequence[tuple[str, Any]], *, together: bool) -> None:
    """Send ``name`` to each (workflow id, argument), in order."""
    if together:
        await asyncio.gather(
            *(workflow.get_external_workflow_handle(wf).signal(name, arg) for wf, arg in targets)
        )
        return
    for wf, arg in targets:
        await workflow.get_external_workflow_handle(wf).signal(name, arg)
