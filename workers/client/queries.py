"""Asking a workflow: queries retried while it cannot answer for a moment, the update id
of a request, a value quoted inside a visibility query."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from models.application import (
    request_digest,
)


async def query_when_ready(handle: WorkflowHandle[Any, Any], query: Any) -> Any:
    """A query, asked again for a few seconds while the workflow cannot answer for a
    moment: a run just continued as new has had no workflow task yet ("Workflow task
    is not scheduled yet"), or the task the query rode on failed and is being retried
    (an activation over the SDK's 2 s under load, TMPRL1101: seen by aidflow simulate
    at 3,000 applications)."""
    for _ in range(QUERY_READY_TRIES - 1):
        try:
            return await handle.query(query)
        except RPCError as e:
            if "not scheduled yet" not in e.message:
                raise
        except WorkflowQueryFailedError as e:
            if "TMPRL1101" not in e.message:
                raise
        await asyncio.sleep(0.1)
    return await handle.query(query)


QUERY_READY_TRIES = 100


def update_id(req: Any) -> str:
    """The Temporal update id of a request: its kind, its request id and a digest of its
    body. The server answers a repeated update id with the first update's outcome without
    asking the workflow, so the bare request id let an objection sent with a decision's id
    come back "accepted" with the decision's answer; now the workflow sees it and refuses."""
    return f"{type(req).__name__}/{req.request_id}/{request_digest(req)}"


def quote(value: str) -> str:
    """A value inside a visibility query's single quotes (never widens the query)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
