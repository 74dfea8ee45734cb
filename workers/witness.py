"""The audit log's witness: each application's chain head as its workflow history
recorded it (the answers of its trail's writes, ``record_events`` and
``record_events_and_tell``), read back from Temporal.

The database cannot rewrite a history: ``aidflow audit verify`` (``GET /v1/audit/verify``) compares the
two and names any chain that ends early, differs or is gone (``store/audit.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.client import Client, WorkflowHandle

from models.records import TRAIL_WRITES, ChainHead
from models.season import SeasonKey
from workers.client import quote

# Histories read at once: enough to hide the round trips, not a burst on the frontend.
CONCURRENCY = 16


async def chain_head(handle: WorkflowHandle[Any, Any]) -> ChainHead | None:
    """The last chain head the workflow's history recorded (None before any)."""
    last: ChainHead | None = None
    async for event in handle.fetch_history_events():
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" not in details or "result" not in details:
            continue
        meta = json.loads(details["data"].payloads[0].data)
        if meta.get("activity_type") not in TRAIL_WRITES:
            continue
        answer = json.loads(details["result"].payloads[0].data)
        if isinstance(answer, dict):
            last = ChainHead.model_validate(answer)
    return last


async def chain_heads(
    client: Client,
    *,
    programme: str | None = None,
    season: SeasonKey | None = None,
    county: str | None = None,
) -> dict[str, ChainHead]:
    """Every application's witness, by workflow id (the newest run of each)."""
    query = ["WorkflowType = 'ApplicationWorkflow'"]
    if programme:
        query.append(f"Programme = '{quote(programme)}'")
    if season is not None:
        query.append(f"Season = {int(season.year)}")
    if county:
        query.append(f"County = '{quote(county)}'")
    ids = [wf.id async for wf in client.list_workflows(" AND ".join(query))]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(wf: str) -> tuple[str, ChainHead | None]:
        async with gate:
            return wf, await chain_head(client.get_workflow_handle(wf))

    heads = await asyncio.gather(*(one(wf) for wf in dict.fromkeys(ids)))
    return {wf: head for wf, head in heads if head is not None}
