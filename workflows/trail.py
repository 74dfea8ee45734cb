"""The application's trail (R8): every event in order, persisted in batches.

Each event is kept in the workflow (the ``trail`` query) and written, with the
read-model snapshot after it and its notifications, by the ``record_events``
local activity: one marker per batch, idempotent by sequence number, so a retry
or a replay writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from models.application import Actor, TrailEvent, TrailKind
    from models.records import ApplicationSnapshot, EventBatch, NotificationIntent

_PERSIST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


class Trail:
    def __init__(self) -> None:
        self.events: list[TrailEvent] = []
        self.unsaved: list[TrailEvent] = []
        self._notes: dict[int, list[NotificationIntent]] = {}

    def record(
        self,
        kind: TrailKind,
        stage: str,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None,
        notify: list[NotificationIntent] | None,
    ) -> TrailEvent:
        event = TrailEvent(
            seq=len(self.events) + 1,
            at=workflow.now(),
            kind=kind,
            stage=stage,
            actor=actor,
            summary=summary,
            detail=detail or {},
        )
        self.events.append(event)
        self.unsaved.append(event)
        if notify:
            self._notes[event.seq] = notify
        workflow.logger.info(summary, extra={"event": kind, "seq": event.seq, "stage": stage})
        return event

    async def persist_forever(self, snapshot: Callable[[], ApplicationSnapshot]) -> None:
        """Write what is unsaved, in order, one batch per local activity."""
        while True:
            await workflow.wait_condition(lambda: bool(self.unsaved))
            batch = list(self.unsaved)
            notes = {e.seq: self._notes.pop(e.seq) for e in batch if e.seq in self._notes}
            await workflow.execute_local_activity_method(
                RecordActivities.record_events,
                EventBatch(snapshot=snapshot(), events=batch, notifications=notes),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_PERSIST_RETRY,
                summary=f"record events {batch[0].seq}-{batch[-1].seq}",
            )
            del self.unsaved[: len(batch)]
