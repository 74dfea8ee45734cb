"""Signals from one workflow to many (the season to its applications, a batch to its payees)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

# Signals per workflow task. All of a county's in one activation took longer than the
# SDK's two-second deadlock limit (6,720 signals; aidflow simulate, 10,000 applications),
# and 500 still did on a loaded two-core machine; 100 leaves the limit ten times the
# time a chunk takes when all is well.
CHUNK = 100


async def signal_each(
    name: str, targets: Sequence[tuple[str, Any]], *, skip_gone: bool = False
) -> list[str]:
    """Send ``name`` to each (workflow id, argument), in order, CHUNK per workflow task.
    ``skip_gone``: a target that has ended (or never was) is passed over and returned,
    instead of failing the sender."""
    gone: list[str] = []
    for start in range(0, len(targets), CHUNK):
        chunk = targets[start : start + CHUNK]
        results = await asyncio.gather(
            *(workflow.get_external_workflow_handle(wf).signal(name, arg) for wf, arg in chunk),
            return_exceptions=skip_gone,
        )
        for (wf, _), r in zip(chunk, results, strict=True):
            if isinstance(r, FailureError):
                gone.append(wf)
            elif isinstance(r, BaseException):
                raise r
    return gone
