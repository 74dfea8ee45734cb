"""The application's trail (R8): every event in order, persisted in batches.

Each event is kept in the workflow (the ``trail`` query) and written, with the
read-model snapshot after it and its notifications, by the ``record_events``
local activity: one marker per batch, idempotent by sequence number, so a retry
or a replay writes nothing twice.

A write that keeps failing is loud, never silent: after a few attempts the trail is
*failing* (logged at ERROR with the workflow id, said in the application's details,
``WaitingFor = "system"``), the application begins no further step until the trail is
saved again (a payout must never read a stale row), and the write goes on being
tried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities
    from activities.records import RecordActivities
    from models.application import Actor, TrailEvent, TrailKind
    from models.notice import JoinRequest, MemberMessage
    from models.records import ApplicationSnapshot, ChainHead, EventBatch, NotificationIntent

# A few quick attempts (a busy database, a worker restart), then the trail is failing
# and the write is tried again every minute for as long as it takes.
PERSIST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
)
FAILING_PAUSE = timedelta(minutes=1)
_WRITE = timedelta(seconds=30)
# Yields before a write takes what is unsaved: enough for the handlers and the run loop
# woken with it to record their events.
_ACTIVATION_YIELDS = 3


async def rest_of_activation() -> None:
    """Let the rest of this activation run first: what its handlers and the run loop
    record goes into the same write (each write is a marker in the history). A bare
    yield, in order, replays the same."""
    for _ in range(_ACTIVATION_YIELDS):
        await asyncio.sleep(0)


class Trail:
    def __init__(self) -> None:
        self.events: list[TrailEvent] = []
        self.unsaved: list[TrailEvent] = []
        self._notes: dict[int, list[NotificationIntent]] = {}
        self._words: dict[int, JoinRequest | MemberMessage] = {}  # to the notice, by seq
        self.failing_since: datetime | None = None  # the first failed write of a run of them
        self.failure = ""  # the newest failure's reason, for the details

    def record(
        self,
        kind: TrailKind,
        stage: str,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None,
        notify: list[NotificationIntent] | None,
        tell: JoinRequest | MemberMessage | None = None,
    ) -> TrailEvent:
        """``tell``: a word to the application's notice that this event brings, said
        once the event is saved, by the same write."""
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
        if tell is not None:
            self._words[event.seq] = tell
        workflow.logger.info(summary, extra={"event": kind, "seq": event.seq, "stage": stage})
        return event

    async def persist_forever(
        self,
        snapshot: Callable[[], ApplicationSnapshot],
        on_change: Callable[[], None] = lambda: None,
        held: Callable[[], bool] = lambda: False,
    ) -> None:
        """Write what is unsaved, in order, one batch per local activity. ``on_change``
        is called when the trail starts or stops failing (the details change);
        ``held``: while true, the events wait (the next step's projection is under way:
        its warning and the step's entry go with them in one write, not two)."""
        while True:
            await workflow.wait_condition(lambda: bool(self.unsaved) and not held())
            # A decision and the next step's entry, woken together, are one write.
            await rest_of_activation()
            if held():
                continue
            batch = list(self.unsaved)
            notes = {e.seq: self._notes.pop(e.seq) for e in batch if e.seq in self._notes}
            words = {e.seq: self._words.pop(e.seq) for e in batch if e.seq in self._words}
            try:
                head = await _write(
                    EventBatch(
                        snapshot=snapshot(),
                        events=batch,
                        notifications=notes,
                        history_length=workflow.info().get_current_history_length(),
                        tell=list(words.values()),
                    )
                )
            except (ActivityError, ApplicationError) as e:  # a local activity's own failure
                self._notes.update(notes)  # sent with the batch when it is written
                self._words.update(words)
                self.failure = failure_reason(e)
                if self.failing_since is None:
                    self.failing_since = workflow.now()
                    workflow.logger.error(
                        f"the trail cannot be saved (events {batch[0].seq}-{batch[-1].seq}): "
                        f"{self.failure}; the application waits until it is",
                        extra={"event": "persistence_failing"},
                    )
                    on_change()
                await workflow.sleep(FAILING_PAUSE, summary="try saving the trail again")
                continue
            # Saved is what the database holds (the answer's head), not what was sent: a
            # history replayed after a crash can batch the events otherwise than the run
            # that wrote it, and a marker's answer is taken whatever the batch held (an
            # event dropped unwritten left a gap in the audit chain: the fault harness).
            self.unsaved = [e for e in self.unsaved if e.seq > head.seq]
            self._notes.update({seq: n for seq, n in notes.items() if seq > head.seq})
            # Said by this write, if its events were saved by it or before (a retry says
            # them again, and the notice takes each once).
            self._words.update({seq: w for seq, w in words.items() if seq > head.seq})
            if self.failing_since is not None:
                workflow.logger.warning(
                    "the trail is saved again", extra={"event": "persistence_recovered"}
                )
                self.failing_since, self.failure = None, ""
                on_change()

    async def ready(self, whole: bool, closed: Callable[[], bool]) -> None:
        """Until a step may begin: the trail not failing; with ``whole``, every event
        saved, its entry too (a step that reads the saved rows must not read a stale
        one). Already so, it returns at once: a wait would let the trail's write go
        before the step's entry is recorded, and the two would be two writes."""

        def may_begin() -> bool:
            return closed() or (not self.unsaved if whole else self.failing_since is None)

        if not may_begin():
            await workflow.wait_condition(may_begin)

    def details(self) -> tuple[str, str] | None:
        """What operators read while the trail cannot be saved; None while it can."""
        if self.failing_since is None:
            return None
        at = self.failing_since.isoformat(timespec="seconds")
        return (
            f"记录无法保存（自 {at} 起：{self.failure}），正在重试；保存前申请暂停",
            f"the trail cannot be saved since {at} ({self.failure}); retrying, and the "
            "application waits until it is saved",
        )


async def _write(batch: EventBatch) -> ChainHead:
    """The batch saved; with words to the notice, by the write that says them too (one
    marker, where a word of its own was another). No summary: the marker's type says
    what it is and its answer which events it saved (a summary was 47 bytes of each of
    an application's ten markers, issue 20)."""
    if batch.tell:
        return await workflow.execute_local_activity_method(
            NoticeActivities.record_events_and_tell,
            batch,
            start_to_close_timeout=_WRITE,
            retry_policy=PERSIST_RETRY,
        )
    return await workflow.execute_local_activity_method(
        RecordActivities.record_events,
        batch,
        start_to_close_timeout=_WRITE,
        retry_policy=PERSIST_RETRY,
    )


def failure_reason(e: ActivityError | ApplicationError) -> str:
    """The failure's own message, short (it goes into details, not the history's text)."""
    cause = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
    return (str(cause) or type(cause).__name__).splitlines()[0][:200]
