"""Signals from one workflow to many (the season to its applications, a batch to its payees)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import workflow

# Patch id: signals to many workflows go out together in one workflow task. Before it,
# each signal waited for the previous one (a round trip each: minutes for a county).
SIGNAL_TOGETHER = "signal-many-together"


async def signal_each(name: str, targets: Sequence[tuple[str, Any]]) -> None:
    """Send ``name`` to each (workflow id, argument), in order."""
    if workflow.patched(SIGNAL_TOGETHER):
        await asyncio.gather(
            *(workflow.get_external_workflow_handle(wf).signal(name, arg) for wf, arg in targets)
        )
        return
    for wf, arg in targets:
        await workflow.get_external_workflow_handle(wf).signal(name, arg)
