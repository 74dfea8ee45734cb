"""Persisting an application's events: read model, audit chain and outbox, in one transaction.

Idempotent: events are keyed by (workflow id, seq). A retry after a crash, or
two attempts racing, write nothing twice and never move the read model back.

The write is a local activity: it runs inside a workflow task, before the task is
complete. A task cut off after the write (a worker killed, a server restarted) never
reaches the history, and the events it wrote never happened: the next task may record
other events under the same numbers (found by the fault harness at 1,000: a village's
approval written, its update lost with the task, and the application in the history
still waiting for it, while the audit log and the read model said approved). So an
event the database holds is kept only if it is the same event (a retry); one that
differs, and everything written after it, is retracted and the history's events are
written in its place, chained anew from the event before. A notification of a
retracted event still waiting is dropped; one already sent is logged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from models.application import TrailEvent
from models.notifications import render
from models.privacy import mask_sensitive_text
from models.programmes import BUILTIN_PROGRAMMES
from models.records import ApplicationSnapshot, ChainHead, EventBatch, NotificationIntent
from store.chain import GENESIS, audit_entry, chain_hash, utc_or_none
from store.db import one_writer
from store.sealing import Keys, row_mac
from store.tables import ApplicationRow, AuditEntry, OutboxMessage

_AUDIT: Table = AuditEntry.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_ROWS: Table = ApplicationRow.__table__  # type: ignore[attr-defined]

# Statements built once: values go in as execution parameters, so SQLAlchemy reuses
# the compiled form instead of rebuilding each statement for every batch.
_LAST_ENTRY = (
    select(_AUDIT.c.seq, _AUDIT.c.hash)
    .where(_AUDIT.c.workflow_id == bindparam("wf"))
    .order_by(_AUDIT.c.seq.desc())
    .limit(1)
    .with_for_update()
)
_ROW_SEQ = select(_ROWS.c.last_seq).where(_ROWS.c.workflow_id == bindparam("wf")).with_for_update()
_INSERT_ROW = insert(_ROWS)
_UPDATE_ROW = update(_ROWS).where(_ROWS.c.workflow_id == bindparam("row_id"))
_INSERT_ENTRIES = insert(_AUDIT)
_INSERT_MESSAGES = insert(_OUTBOX)


class RecordActivities:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    @activity.defn(name="record_events")
    def record_events(self, batch: EventBatch) -> ChainHead:
        """The chain's head after the batch, and how many events were new (0 for a pure
        retry). The answer stays in the workflow's history: the audit log's witness."""
        for attempt in range(3):
            try:
                return self._write(batch)
            except IntegrityError:
                # Another attempt of the same batch committed first: run again, skip all.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, batch: EventBatch) -> ChainHead:
        # SQLAlchemy Core, not the ORM: this runs for every batch of every application
        # (measured: the ORM's unit of work and identity map were half of the simulator's
        # worker time).
        snap = batch.snapshot
        wf = snap.workflow_id
        with one_writer(self._engine), self._engine.begin() as conn:
            # One writer a workflow (PostgreSQL: the row's lock; SQLite: one_writer), so
            # two attempts of a task never interleave their reads and writes.
            row = conn.execute(_ROW_SEQ, {"wf": wf}).first()
            last = conn.execute(_LAST_ENTRY, {"wf": wf}).first()
            last_seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS)
            retracted = self._retract_lost(conn, wf, batch, last_seq)
            if retracted == "stale":
                activity.logger.warning(
                    "a batch of an attempt outlived by a later one: nothing written",
                    extra={"event": "stale_batch_dropped", "upto": last_seq},
                )
                return ChainHead.of(last_seq, prev_hash)
            if retracted is not None:
                last_seq, prev_hash = retracted
            entries: list[dict[str, Any]] = []
            messages: list[tuple[dict[str, Any], str]] = []  # each with its event's hash
            for event in batch.events:
                if event.seq <= last_seq:
                    continue  # already recorded by an earlier attempt
                entry = _audit_entry(wf, event)
                entry["prev_hash"] = prev_hash
                entry["hash"] = chain_hash(self._keys.audit, prev_hash, entry)
                entry["history_length"] = batch.history_length
                entries.append(entry)
                prev_hash, last_seq = entry["hash"], event.seq
                for i, intent in enumerate(batch.notifications.get(event.seq, [])):
                    messages.append((self._outbox(snap, event, i, intent), entry["hash"]))
            if entries:
                conn.execute(_INSERT_ENTRIES, entries)
            if messages:
                # A retracted event's notification that may have gone out is kept, with
                # its key, whether its replacement comes in this batch or a later one: the
                # new one takes another (the fault harness at 1,000: a replacement in a
                # later batch collided, and that application's trail could not be saved
                # again).
                wanted = [m["dedupe_key"] for m, _ in messages]
                taken = set(
                    conn.execute(
                        select(_OUTBOX.c.dedupe_key).where(_OUTBOX.c.dedupe_key.in_(wanted))
                    ).scalars()
                )
                for message, event_hash in messages:
                    if message["dedupe_key"] in taken:
                        message["dedupe_key"] += "~" + event_hash[:12]
                conn.execute(_INSERT_MESSAGES, [m for m, _ in messages])
            self._upsert_row(
                conn,
                snap,
                max(e.seq for e in batch.events),
                None if row is None else row[0],
                force=retracted is not None,
            )
        activity.logger.info("recorded events", extra={"new": len(entries), "upto": last_seq})
        return ChainHead.of(last_seq, prev_hash, len(entries))

    def _retract_lost(
        self, conn: Connection, wf: str, batch: EventBatch, last_seq: int
    ) -> tuple[int, str] | Literal["stale"] | None:
        """The (seq, hash) to chain from if the database holds events of a lost workflow
        task where this batch has others, or beyond its last (they are deleted, with their
        notifications not yet tried; those that may have gone out stay in the outbox);
        None if every event it holds of the batch is the batch's own; "stale" if
        a later attempt of the task wrote them (this batch is the one cut off: it writes
        nothing)."""
        if last_seq == 0 or not batch.events:
            return None
        held = [e for e in batch.events if e.seq <= last_seq]
        stored = (
            {
                r.seq: r
                for r in conn.execute(
                    select(_AUDIT.c.seq, _AUDIT.c.kind, _AUDIT.c.stage)
                    .add_columns(_AUDIT.c.actor_id, _AUDIT.c.actor_role, _AUDIT.c.detail)
                    .where(_AUDIT.c.workflow_id == wf, _AUDIT.c.seq >= held[0].seq)
                    .where(_AUDIT.c.seq <= held[-1].seq)
                )
            }
            if held
            else {}
        )
        lost = next((e.seq for e in held if not _same(stored.get(e.seq), wf, e)), None)
        if lost is None and last_seq > batch.events[-1].seq:
            # The batch ends with the workflow's newest event: what lies beyond it was
            # written by a task the history does not have (a re-made event is written again).
            lost = batch.events[-1].seq + 1
        if lost is None:
            return None
        newest = conn.execute(
            select(func.max(_AUDIT.c.history_length)).where(
                _AUDIT.c.workflow_id == wf, _AUDIT.c.seq >= lost
            )
        ).scalar()
        if batch.history_length and (newest or 0) >= batch.history_length:
            return "stale"
        messages = [
            (k, status, attempts)
            for (k, status, attempts) in conn.execute(
                select(_OUTBOX.c.dedupe_key, _OUTBOX.c.status, _OUTBOX.c.attempts).where(
                    _OUTBOX.c.workflow_id == wf
                )
            )
            if _outbox_seq(k) >= lost
        ]
        keys = [k for k, _, _ in messages]
        # Tried at least once (a send may have gone out before it failed or timed out),
        # or sent: kept, and the replacing event's messages take other keys.
        tried = [k for k, status, attempts in messages if status != "pending" or attempts > 0]
        conn.execute(
            delete(_OUTBOX).where(
                _OUTBOX.c.dedupe_key.in_(keys),
                _OUTBOX.c.status == "pending",
                _OUTBOX.c.attempts == 0,
            )
        )
        gone = conn.execute(
            delete(_AUDIT).where(_AUDIT.c.workflow_id == wf, _AUDIT.c.seq >= lost)
        ).rowcount
        activity.logger.warning(
            "events of a workflow task that never completed retracted: the history has "
            "others, or fewer, under those numbers",
            extra={
                "event": "lost_task_events_retracted",
                "from_seq": lost,
                "retracted": gone,
                "notifications_maybe_sent": len(tried),
            },
        )
        before = conn.execute(
            select(_AUDIT.c.seq, _AUDIT.c.hash)
            .where(_AUDIT.c.workflow_id == wf, _AUDIT.c.seq < lost)
            .order_by(_AUDIT.c.seq.desc())
            .limit(1)
        ).first()
        return (before[0], before[1]) if before else (0, GENESIS)

    def _upsert_row(
        self,
        conn: Connection,
        snap: ApplicationSnapshot,
        seq: int,
        current: int | None,
        force: bool = False,
    ) -> None:
        """``current``: the row's last_seq as read (and locked) at the write's start; None
        if there is no row yet."""
        values: dict[str, Any] = {
            "programme": snap.programme,
            "season": snap.season,
            "round": snap.round,
            "county_code": snap.places.county_code,
            "township_code": snap.places.township_code,
            "village_code": snap.places.village_code,
            "school_code": snap.places.school_code,
            "university_code": snap.places.university_code,
            "applicant_name": snap.applicant_name,
            "national_id_masked": snap.national_id_masked,
            "national_id_hash": snap.national_id_hash,
            "university": snap.university,
            "stage": snap.stage,
            "overdue": bool(snap.overdue_dates),
            "overdue_dates": snap.overdue_dates,
            "at_risk": snap.at_risk,
            "amount_cny": snap.amount_cny,
            "last_seq": seq,
            "submitted_at": utc_or_none(snap.submitted_at),
            "notice_posted_at": utc_or_none(snap.notice_posted_at),
            "notice_ends_at": utc_or_none(snap.notice_ends_at),
            "next_deadline": utc_or_none(snap.next_deadline),
            "waiting_for": snap.waiting_for,
            "waiting_until": utc_or_none(snap.waiting_until),
            "decided_at": utc_or_none(snap.decided_at),
            "updated_at": datetime.now(UTC),
            "rejection_reason": snap.rejection_reason,
            "bank_name": snap.bank_name,
            "account_masked": snap.account_masked,
            "account_sealed": snap.account_sealed,
            "account_holder": snap.account_holder,
        }
        # Sealed as written (issue 16): an edit of the stage, amount or account outside
        # aidflow no longer matches, and the payout refuses the row.
        values["row_mac"] = row_mac(
            self._keys.rows, "applications", {"workflow_id": snap.workflow_id, **values}
        )
        if current is None:
            conn.execute(_INSERT_ROW, {"workflow_id": snap.workflow_id, **values})
        elif current < seq or force:  # never backwards, but from a lost task's
            conn.execute(_UPDATE_ROW, {"row_id": snap.workflow_id, **values})

    def _outbox(
        self,
        snap: ApplicationSnapshot,
        event: TrailEvent,
        index: int,
        intent: NotificationIntent,
    ) -> dict[str, Any]:
        params = {
            "name": snap.applicant_name,
            "programme": snap.programme_name or snap.programme,
            "season": snap.season,
            "round": snap.round,
            "app": snap.workflow_id.rsplit("/", 1)[-1],
            "amount": snap.amount_cny,
            **intent.params,
        }
        programme = BUILTIN_PROGRAMMES.get(snap.programme)
        texts = programme.notifications if programme else None
        subject, body = render(intent.template, params, role=intent.role, texts=texts)
        if intent.audience == "applicant":
            recipient = (
                self._keys.open(snap.applicant_phone_sealed)
                or self._keys.open(snap.applicant_email_sealed)
                or f"applicant:{snap.workflow_id}"
            )
        elif intent.audience == "objector":
            recipient = intent.recipient or "objector:unknown"
        else:
            role = intent.role.value if intent.role else "county"
            recipient = f"{role}@{intent.place_code}"
        now = datetime.now(UTC)
        return {
            "dedupe_key": f"{snap.workflow_id}:{event.seq}:{index}",
            "workflow_id": snap.workflow_id,
            "channel": "default",
            "recipient": recipient,
            "subject": mask_sensitive_text(subject),
            "body": mask_sensitive_text(body),
            "created_at": now,
            "next_attempt_at": now,
        }


def _same(stored: Any, wf: str, event: TrailEvent) -> bool:
    """The event the database holds at this number is this one (written by an earlier
    attempt of the same task): all but its instant, which a task's retry moves."""
    if stored is None:
        return False
    entry = _audit_entry(wf, event)
    return (
        stored.kind == entry["kind"]
        and stored.stage == entry["stage"]
        and stored.actor_id == entry["actor_id"]
        and stored.actor_role == entry["actor_role"]
        and json.dumps(stored.detail, sort_keys=True, default=str)
        == json.dumps(json.loads(json.dumps(entry["detail"], default=str)), sort_keys=True)
    )


def _outbox_seq(dedupe_key: str) -> int:
    """The event number in an outbox key (``workflow id:seq:index[~hash]``)."""
    parts = dedupe_key.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def _audit_entry(workflow_id: str, event: TrailEvent) -> dict[str, Any]:
    return audit_entry(
        workflow_id,
        event.seq,
        event.at,
        event.kind,
        event.stage,
        event.actor,
        event.summary,
        event.detail,
    )
