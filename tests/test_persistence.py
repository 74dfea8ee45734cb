"""Activities and data on SQLite and PostgreSQL: migrations, idempotent writes, the audit chain,
imports, the outbox and its channels."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, DateTime, column, insert, inspect, table, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError

from activities.funds import FundsActivities, FundsRequestInput, PaymentResults
from activities.records import RecordActivities
from integrations.notify import Channels, LogChannel, OutboxSender, SmtpChannel, WebhookChannel
from models.application import Actor, TrailEvent
from models.calendar import WorkingCalendar
from models.domain import Role
from models.payout import BankResultRow, PayItem, PayoutBatchInput
from models.records import ApplicationSnapshot, EventBatch, NotificationIntent
from store.audit import Break, VerifyReport, export, verify
from store.db import SCHEMA_HEAD, current_revision, head_revision
from store.importing import import_places, import_registry
from store.registry import RegistryReader
from store.sealing import Keys
from store.tables import (
    ApplicationRow,
    AuditEntry,
    Household,
    HouseholdMember,
    OutboxMessage,
    Payment,
    PayoutBatch,
    Place,
    RowSealing,
)
from tests.support import PLACES, free_port, make_national_id

SYSTEM = Actor(id="aidflow", name="aidflow", role=Role.SYSTEM)
T0 = datetime(2027, 8, 10, 2, 0, tzinfo=UTC)


def snapshot(
    wf: str, stage: str = "village_review", keys: Keys | None = None
) -> ApplicationSnapshot:
    return ApplicationSnapshot(
        workflow_id=wf,
        programme="county-subsidy",
        season=2027,
        places=PLACES,
        applicant_name="学生1",
        national_id_masked="341225********0011",
        national_id_hash="h" * 16,
        university="安徽大学",
        stage=stage,
        overdue_dates=[],
        at_risk=False,
        amount_cny=3000,
        submitted_at=T0,
        applicant_phone_sealed=keys.seal("13800000001") if keys else "",
    )


def event(seq: int, kind: str = "stage_entered", stage: str = "village_review") -> TrailEvent:
    return TrailEvent(
        seq=seq,
        at=T0 + timedelta(minutes=seq),
        kind=kind,
        stage=stage,
        actor=SYSTEM,
        summary=f"event {seq}",
        detail={"n": seq},
    )


def batch(
    wf: str, seqs: range, keys: Keys, stage: str = "village_review", notify: bool = True
) -> EventBatch:
    notes = (
        {s: [NotificationIntent(audience="applicant", template="submitted")] for s in seqs}
        if notify
        else {}
    )
    return EventBatch(
        snapshot=snapshot(wf, stage, keys),
        events=[event(s, stage=stage) for s in seqs],
        notifications=notes,
    )


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in ("applications", "audit_log", "outbox"):
            rows = conn.execute(text(f"select * from {table} order by 1")).all()
            out[table] = [tuple(r) for r in rows]
    return out


# ---------------------------------------------------------------------------- schema


def test_migrations_from_empty(db_url: str, engine: Engine) -> None:
    assert current_revision(db_url) == "0017" == SCHEMA_HEAD == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "applications",
        "audit_log",
        "outbox",
        "households",
        "household_members",
        "places",
        "alembic_version",
        "credentials",  # 0005: R10
        "deployment",  # 0006: the database's identity
        "row_sealing",  # 0007: when row MACs began
        "recorded_aid",  # 0009: the national grant's lists, for the yearly ledger
        "enrolments",  # 0010: dated enrolment snapshots, for coverage (应补尽补)
    } <= tables
    columns = {c["name"] for c in inspect(engine).get_columns("applications")}
    assert "round" in columns  # 0004: seasons with rounds (R12)
    assert "row_mac" in columns  # 0007: row MACs (issue 16)
    assert {"waiting_for", "waiting_until", "school_code"} <= columns  # 0008: store/status.py
    assert "row_mac" in {c["name"] for c in inspect(engine).get_columns("payments")}
    from workers.deployment import database_id

    assert database_id(engine).startswith("db-")  # made once, with the database


# ------------------------------------------------------------------- record_events


def test_record_events_retry_changes_nothing(engine: Engine, keys: Keys) -> None:
    rec = RecordActivities(engine, keys)
    b = batch("wf/1", range(1, 4), keys)
    assert rec.record_events(b).new == 3
    before = dump(engine)
    assert rec.record_events(b).new == 0  # a retry after a crash
    assert dump(engine) == before
    assert len(before["audit_log"]) == 3 and len(before["outbox"]) == 3


def test_partial_retry_writes_only_the_rest(engine: Engine, keys: Keys) -> None:
    rec = RecordActivities(engine, keys)
    rec.record_events(batch("wf/2", range(1, 3), keys))
    assert rec.record_events(batch("wf/2", range(1, 5), keys)).new == 2
    with Session(engine) as s:
        seqs = s.exec(
            select(AuditEntry.seq)
            .where(AuditEntry.workflow_id == "wf/2")
            .order_by(col(AuditEntry.seq))
        ).all()
        assert list(seqs) == [1, 2, 3, 4]
        assert (
            len(s.exec(select(OutboxMessage).where(OutboxMessage.workflow_id == "wf/2")).all()) == 4
        )


def test_read_model_never_moves_backwards(engine: Engine, keys: Keys) -> None:
    rec = RecordActivities(engine, keys)
    rec.record_events(batch("wf/3", range(1, 6), keys, stage="township_review"))
    # An attempt of a task outlived by a later one (a shorter history), writing late:
    # the same first events, with the snapshot as it was after them.
    stale = batch("wf/3", range(1, 3), keys, stage="township_review")
    stale = stale.model_copy(
        update={"snapshot": snapshot("wf/3", "village_review", keys), "history_length": 10}
    )
    with Session(engine) as s:  # the rows were written at a longer history
        s.execute(text("update audit_log set history_length = 20 where workflow_id = 'wf/3'"))
        s.commit()
    head = rec.record_events(stale)
    assert (head.seq, head.new) == (5, 0)
    with Session(engine) as s:
        row = s.get(ApplicationRow, "wf/3")
        assert row is not None and row.stage == "township_review" and row.last_seq == 5


def test_events_of_a_task_that_never_completed_are_retracted(engine: Engine, keys: Keys) -> None:
    """Found by the fault harness at 1,000: a workflow task recorded a village's approval
    (events 3 and 4) and was cut off before it completed; the update was lost with it, and
    the history went on with another event 3. The audit log and the read model had kept
    the approval that never happened, and skipped the history's event 3 as "already
    recorded". Now the database's events from 3 on are retracted (their notification
    still waiting with them) and the history's written in their place, chained anew."""
    rec = RecordActivities(engine, keys)
    rec.record_events(batch("wf/lost", range(1, 3), keys))
    lost = EventBatch(
        snapshot=snapshot("wf/lost", "village_notice", keys),
        events=[
            event(3, kind="decision", stage="village_review"),
            event(4, kind="stage_entered", stage="village_notice"),
        ],
        notifications={3: [NotificationIntent(audience="applicant", template="submitted")]},
        history_length=10,
    )
    assert rec.record_events(lost).new == 2
    again = rec.record_events(lost)  # the same task's retry: kept, nothing new
    assert (again.seq, again.new) == (4, 0)
    history = EventBatch(
        snapshot=snapshot("wf/lost", "village_review", keys),
        events=[event(3, kind="at_risk", stage="village_review")],
        history_length=13,  # the later attempt: its history is longer
    )
    head = rec.record_events(history)
    assert (head.seq, head.new) == (3, 1)
    # The cut-off attempt, writing again late, changes nothing: it is the stale one now.
    late = rec.record_events(lost)
    assert (late.seq, late.hash, late.new) == (3, head.hash, 0)
    with Session(engine) as s:
        kinds = s.exec(
            select(AuditEntry.kind)
            .where(AuditEntry.workflow_id == "wf/lost")
            .order_by(col(AuditEntry.seq))
        ).all()
        assert list(kinds) == ["stage_entered", "stage_entered", "at_risk"]
        row = s.get(ApplicationRow, "wf/lost")
        assert row is not None and (row.stage, row.last_seq) == ("village_review", 3)
        keys_left = s.exec(
            select(OutboxMessage.dedupe_key).where(OutboxMessage.workflow_id == "wf/lost")
        ).all()
        assert sorted(keys_left) == ["wf/lost:1:0", "wf/lost:2:0"]  # the lost one's dropped
    report = verify(engine, keys.audit, witness={"wf/lost": head})
    assert report.ok, report.breaks


def test_events_of_a_lost_task_beyond_the_historys_are_retracted(
    engine: Engine, keys: Keys
) -> None:
    """Review: the lost task wrote 3 and 4, the history has only 3 (the same event): 4 never
    happened (its update was lost with the task), and is retracted too."""
    rec = RecordActivities(engine, keys)
    rec.record_events(batch("wf/prefix", range(1, 3), keys))
    same3 = event(3, kind="at_risk", stage="village_review")
    lost = EventBatch(
        snapshot=snapshot("wf/prefix", "village_notice", keys),
        events=[same3, event(4, kind="decision", stage="village_review")],
        history_length=10,
    )
    rec.record_events(lost)
    history = EventBatch(
        snapshot=snapshot("wf/prefix", "village_review", keys),
        events=[same3],
        history_length=13,
    )
    head = rec.record_events(history)
    assert (head.seq, head.new) == (3, 0)
    with Session(engine) as s:
        seqs = s.exec(select(AuditEntry.seq).where(AuditEntry.workflow_id == "wf/prefix")).all()
        row = s.get(ApplicationRow, "wf/prefix")
    assert sorted(seqs) == [1, 2, 3] and row is not None and row.stage == "village_review"
    assert verify(engine, keys.audit, witness={"wf/prefix": head}).ok


def test_outbox_texts_hold_no_identity_number(engine: Engine, keys: Keys) -> None:
    rec = RecordActivities(engine, keys)
    nid = make_national_id(42)
    b = EventBatch(
        snapshot=snapshot("wf/4", keys=keys).model_copy(update={"applicant_name": f"张三{nid}"}),
        events=[event(1)],
        notifications={
            1: [
                NotificationIntent(
                    audience="applicant",
                    template="rejected",
                    params={"reason": f"身份证 {nid} 不符"},
                )
            ]
        },
    )
    rec.record_events(b)
    with Session(engine) as s:
        msg = s.exec(select(OutboxMessage)).one()
    assert nid not in msg.body and "341225********" in msg.body
    assert msg.recipient == "13800000001"  # the sealed phone, opened by the activity


def test_concurrent_writers(db_url: str, engine: Engine, keys: Keys) -> None:
    """The worker runs 16 activity threads at once: no 'database is locked' on SQLite."""
    rec = RecordActivities(engine, keys)

    def write(i: int) -> int:
        total = 0
        for start in range(1, 21, 5):
            total += rec.record_events(batch(f"wf/c{i}", range(start, start + 5), keys)).new
        return total

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(write, range(32)))
    assert results == [20] * 32
    assert verify(engine, keys.audit).ok


# ------------------------------------------------------------------------ audit chain


def _chain(
    engine: Engine, keys: Keys, wf: str = "county-subsidy/2027/341225/abc", n: int = 5
) -> str:
    RecordActivities(engine, keys).record_events(batch(wf, range(1, n + 1), keys, notify=False))
    return wf


def test_intact_chain_verifies(engine: Engine, keys: Keys) -> None:
    _chain(engine, keys)
    report = verify(engine, keys.audit, season=2027)
    assert report.ok and report.chains == 1 and report.rows == 5


def test_edited_row_is_detected(engine: Engine, keys: Keys) -> None:
    wf = _chain(engine, keys)
    with Session(engine) as s, s.begin():
        e = s.exec(select(AuditEntry).where(AuditEntry.seq == 3)).one()
        e.actor_id = "someone-else"
        s.add(e)
    [b] = verify(engine, keys.audit).breaks
    assert (b.workflow_id, b.seq) == (wf, 3) and "edited" in b.problem


def test_deleted_rows_are_detected(engine: Engine, keys: Keys) -> None:
    _chain(engine, keys)
    with Session(engine) as s, s.begin():
        s.delete(s.exec(select(AuditEntry).where(AuditEntry.seq == 2)).one())
    [b] = verify(engine, keys.audit).breaks
    assert b.seq == 3 and "deleted or inserted" in b.problem


def test_deleted_last_row_is_detected(engine: Engine, keys: Keys) -> None:
    _chain(engine, keys)
    with Session(engine) as s, s.begin():
        s.delete(s.exec(select(AuditEntry).where(AuditEntry.seq == 5)).one())
    [b] = verify(engine, keys.audit).breaks
    assert b.seq == 5 and "deleted at the end" in b.problem


def test_inserted_row_is_detected(engine: Engine, keys: Keys) -> None:
    wf = _chain(engine, keys)
    with Session(engine) as s, s.begin():
        third = s.exec(select(AuditEntry).where(AuditEntry.seq == 3)).one()
        forged = AuditEntry(
            workflow_id=wf,
            seq=3,
            at=third.at,
            kind="decision",
            stage="village_review",
            actor_id="forger",
            actor_role="village_committee",
            detail={},
            prev_hash=third.prev_hash,
            hash=third.hash,
        )
        # The unique (workflow_id, seq) constraint already refuses a second seq 3 ...
        s.add(forged)
        with pytest.raises(Exception, match=r"(?i)unique"):
            s.flush()
    # ... so a forger must renumber: shift the later rows up and insert at 3.
    with Session(engine) as s, s.begin():
        for e in sorted(
            s.exec(select(AuditEntry).where(AuditEntry.seq >= 3)).all(), key=lambda e: -e.seq
        ):
            e.seq += 1
            s.add(e)
            s.flush()
        second = s.exec(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        s.add(
            AuditEntry(
                workflow_id=wf,
                seq=3,
                at=second.at,
                kind="decision",
                stage="village_review",
                actor_id="forger",
                actor_role="village_committee",
                detail={},
                prev_hash=second.hash,
                hash="0" * 64,
            )
        )
    [b] = verify(engine, keys.audit).breaks
    assert b.seq == 3 and "edited" in b.problem


def test_a_row_hashed_without_the_key_does_not_verify(engine: Engine, keys: Keys) -> None:
    """A database writer without the audit key: an appended 'paid' row with a plain
    SHA-256, or an edit with the chain recomputed, is caught (issue 16)."""
    import hashlib

    from store.chain import chain_hash

    wf = _chain(engine, keys)
    with Session(engine) as s, s.begin():
        last = s.exec(select(AuditEntry).where(AuditEntry.seq == 5)).one()
        forged: dict[str, Any] = {
            "workflow_id": wf,
            "seq": 6,
            "at": last.at,
            "kind": "payment",
            "stage": "paid",
            "actor_id": "aidflow",
            "actor_role": "system",
            "detail": {"summary": "paid"},
        }
        body = json.dumps(forged | {"at": last.at.isoformat()}, sort_keys=True)
        s.add(
            AuditEntry(
                **forged,
                prev_hash=last.hash,
                hash=hashlib.sha256((last.hash + body).encode()).hexdigest(),
            )
        )
        row = s.get(ApplicationRow, wf)
        assert row is not None
        row.last_seq = 6
        s.add(row)
    [b] = chain_breaks(verify(engine, keys.audit))
    assert b.seq == 6 and "edited" in b.problem
    # The forger's raised last_seq breaks the application row's MAC as well.
    assert [str(b) for b in row_breaks(verify(engine, keys.audit))] == [
        f"applications row {wf}: row_mac does not match (edited outside aidflow)"
    ]
    # Edit row 2 and recompute the chain from there with another key: caught at row 2.
    with Session(engine) as s, s.begin():
        rows = s.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()
        rows[1].actor_id = "someone-else"
        prev = rows[0].hash
        for e in rows[1:]:
            e.prev_hash = prev
            e.hash = chain_hash(b"not-the-key", prev, e.model_dump())
            prev = e.hash
            s.add(e)
    [b] = chain_breaks(verify(engine, keys.audit))
    assert b.seq == 2 and "edited" in b.problem


def test_the_witness_catches_what_the_database_alone_cannot(engine: Engine, keys: Keys) -> None:
    """The last row deleted with last_seq lowered, and a whole chain deleted with its
    application row, verify as chains against the database alone (the lowered
    last_seq breaks the row's MAC); the workflow history's chain head (the witness)
    names both chains."""
    from store.chain import GENESIS

    rec = RecordActivities(engine, keys)
    heads = {
        wf: rec.record_events(batch(wf, range(1, 6), keys, notify=False))
        for wf in ("county-subsidy/2027/341225/w1", "county-subsidy/2027/341225/w2")
    }
    assert heads["county-subsidy/2027/341225/w1"].seq == 5
    assert heads["county-subsidy/2027/341225/w1"].hash != GENESIS
    assert verify(engine, keys.audit, witness=heads).ok
    with Session(engine) as s, s.begin():
        s.delete(
            s.exec(
                select(AuditEntry).where(
                    AuditEntry.workflow_id == "county-subsidy/2027/341225/w1", AuditEntry.seq == 5
                )
            ).one()
        )
        row = s.get(ApplicationRow, "county-subsidy/2027/341225/w1")
        assert row is not None
        row.last_seq = 4
        s.add(row)
        for e in s.exec(
            select(AuditEntry).where(AuditEntry.workflow_id == "county-subsidy/2027/341225/w2")
        ):
            s.delete(e)
        gone = s.get(ApplicationRow, "county-subsidy/2027/341225/w2")
        s.delete(gone)
    alone = verify(engine, keys.audit)
    assert not chain_breaks(alone)  # the chains alone cannot tell
    assert [(b.table, b.workflow_id) for b in alone.breaks] == [
        ("applications", "county-subsidy/2027/341225/w1")  # its last_seq was edited
    ]
    breaks = {b.workflow_id: b for b in chain_breaks(verify(engine, keys.audit, witness=heads))}
    assert "deleted at the end" in breaks["county-subsidy/2027/341225/w1"].problem
    assert "chain was deleted" in breaks["county-subsidy/2027/341225/w2"].problem


def chain_breaks(report: VerifyReport) -> list[Break]:
    return [b for b in report.breaks if b.table == "audit_log"]


def row_breaks(report: VerifyReport) -> list[Break]:
    return [b for b in report.breaks if b.table != "audit_log"]


def test_export_csv_and_xlsx(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    _chain(engine, keys)
    n = export(engine, tmp_path / "audit.csv", "csv", season=2027)
    assert n == 5
    lines = (tmp_path / "audit.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("workflow_id,seq,at,kind") and len(lines) == 6
    assert export(engine, tmp_path / "audit.xlsx", "xlsx", season=2027) == 5
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "audit.xlsx").active
    assert ws is not None and ws.max_row == 6 and ws.cell(1, 1).value == "workflow_id"
    assert export(engine, tmp_path / "none.csv", "csv", season=2030) == 0


# ------------------------------------------------------------------------- row MACs

ACCOUNT = "6230201200000000650"
COUNTY_WF = "county-subsidy/2027/341225/r1"


def _awaiting_funds(engine: Engine, keys: Keys, wf: str = COUNTY_WF) -> str:
    """An application row as aidflow writes it, with an account on file."""
    snap = snapshot(wf, "awaiting_funds", keys).model_copy(
        update={
            "bank_name": "阜南农商银行",
            "account_holder": "学生1",
            "account_masked": "6230********0650",
            "account_sealed": keys.seal(ACCOUNT),
        }
    )
    RecordActivities(engine, keys).record_events(
        EventBatch(snapshot=snap, events=[event(s) for s in range(1, 4)])
    )
    return wf


def _funds(
    engine: Engine, keys: Keys, calendar: WorkingCalendar, tmp_path: Path
) -> FundsActivities:
    return FundsActivities(engine, keys, calendar, tmp_path / "files", tmp_path / "bank")


def _batch(batch_id: str, *wfs: str, attempt: int = 1) -> PayoutBatchInput:
    return PayoutBatchInput(
        batch_id=batch_id,
        programme="county-subsidy",
        season=2027,
        county_code=PLACES.county_code,
        items=[PayItem(workflow_id=wf, amount_cny=3000, attempt=attempt) for wf in wfs],
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("stage", "awaiting_funds_forged"), ("account_sealed", "forged")],
)
def test_an_edited_applications_row_is_named(
    engine: Engine, keys: Keys, field: str, value: str
) -> None:
    """A database writer changes a read-model row's stage or sealed account: its row MAC
    (a key the database does not hold) no longer matches, and verify names the row."""
    wf = _awaiting_funds(engine, keys)
    report = verify(engine, keys.audit)
    assert report.ok and report.sealed_rows == 1 and report.unsealed_rows == 0
    with Session(engine) as s, s.begin():
        row = s.get(ApplicationRow, wf)
        assert row is not None
        setattr(row, field, keys.seal("6230209999999999999") if value == "forged" else value)
        s.add(row)
    report = verify(engine, keys.audit)
    assert not chain_breaks(report)  # the audit log itself is intact
    [b] = report.breaks
    assert (b.table, b.workflow_id, b.seq) == ("applications", wf, 3)
    assert str(b) == f"applications row {wf}: row_mac does not match (edited outside aidflow)"
    assert verify(engine, keys.audit, season=2027, county=PLACES.county_code).breaks == [b]
    assert verify(engine, keys.audit, season=2028).ok  # another season's rows: not this one


@pytest.mark.parametrize(("field", "value"), [("amount_cny", 30000), ("status", "paid")])
def test_an_edited_payments_row_is_named(
    engine: Engine,
    keys: Keys,
    calendar: WorkingCalendar,
    tmp_path: Path,
    field: str,
    value: object,
) -> None:
    """A payment's amount or status changed in the database is named; the bank's result
    recorded by aidflow (a status change too) keeps the row sealed."""
    wf = _awaiting_funds(engine, keys)
    funds = _funds(engine, keys, calendar, tmp_path)
    prepared = funds.prepare_payments(_batch("b001", wf))
    [sent] = prepared.included
    funds.record_payment_results(
        PaymentResults(
            batch_id="b001",
            rows=[
                BankResultRow(
                    sequence=1,
                    idempotency_key=sent.idempotency_key,
                    status="returned",
                    reason="账户已销户",
                )
            ],
        )
    )
    report = verify(engine, keys.audit)
    assert report.ok and report.sealed_rows == 2  # the application row and the payment
    with Session(engine) as s, s.begin():
        payment = s.exec(select(Payment)).one()
        setattr(payment, field, value)
        s.add(payment)
        pid = payment.id
    [b] = verify(engine, keys.audit).breaks
    assert (b.table, b.workflow_id, b.row_id, b.seq) == ("payments", wf, pid, 1)
    assert str(b) == (
        f"payments row {pid} ({wf}, attempt 1, batch b001): "
        "row_mac does not match (edited outside aidflow)"
    )
    assert verify(engine, keys.audit, season=2027, programme="county-subsidy").breaks == [b]


def test_a_payout_refuses_an_edited_row(
    engine: Engine, keys: Keys, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    """A payout batch prepared from an application row whose account was changed in the
    database fails for good, naming the row, and pays nobody: no payment row, no batch,
    no disbursement file. So does a re-payment after a paid row was marked returned."""
    wf = _awaiting_funds(engine, keys)
    other = _awaiting_funds(engine, keys, "county-subsidy/2027/341225/r2")
    with Session(engine) as s, s.begin():
        row = s.get(ApplicationRow, wf)
        assert row is not None
        row.account_sealed = keys.seal("6230209999999999999")  # the forger's own account
        s.add(row)
    funds = _funds(engine, keys, calendar, tmp_path)
    with pytest.raises(ApplicationError) as refused:
        funds.prepare_payments(_batch("b001", other, wf))
    assert refused.value.non_retryable and refused.value.type == "RowEdited"
    assert refused.value.message.startswith(
        f"applications row {wf}: row_mac does not match (edited outside aidflow): refused"
    )
    assert ACCOUNT not in refused.value.message and "6230209999999999999" not in str(refused.value)
    with Session(engine) as s:
        assert s.exec(select(Payment)).all() == [] and s.exec(select(PayoutBatch)).all() == []
    assert not (tmp_path / "files" / "batches" / "b001.csv").exists()
    # The funds request (its roster asks finance for the money) refuses it too.
    with pytest.raises(ApplicationError, match=f"applications row {wf}: row_mac does not"):
        funds.create_funds_request(
            FundsRequestInput(
                request_id="fr-1",
                programme="county-subsidy",
                season=2027,
                county_code=PLACES.county_code,
            )
        )
    # Paid, then marked returned in the database so that it would be paid again.
    prepared = funds.prepare_payments(_batch("b002", other))
    funds.record_payment_results(
        PaymentResults(
            batch_id="b002",
            rows=[
                BankResultRow(
                    sequence=1, idempotency_key=prepared.included[0].idempotency_key, status="paid"
                )
            ],
        )
    )
    with Session(engine) as s, s.begin():
        paid = s.exec(select(Payment)).one()
        paid.status = "returned"
        s.add(paid)
        pid = paid.id
    with pytest.raises(ApplicationError, match=rf"payments row {pid} \({other}, attempt 1"):
        funds.prepare_payments(_batch("b003", other, attempt=2))
    with Session(engine) as s:
        assert len(s.exec(select(Payment)).all()) == 1


def test_rows_from_before_row_macs_are_not_yet_sealed(
    db_url: str, engine: Engine, keys: Keys, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    """Rows written before migration 0007 have an empty row_mac (the migration has no
    key): counted as not yet sealed, and paid from; aidflow seals them when it writes
    them next. An empty row_mac on a row written since is a break, and so is the
    watermark moved forward to pass one."""
    from alembic import command

    from store.db import alembic_config, upgrade

    command.downgrade(alembic_config(db_url), "0006")
    old, blanked = "county-subsidy/2027/341225/old", "county-subsidy/2027/341225/new"
    # As aidflow 0006 wrote them (its columns: no row_mac), two days ago; last_seq 0
    # as a chain with no rows of its own.
    rows_0006 = table(
        "applications",
        *(
            column(name)
            for name in (
                "workflow_id",
                "programme",
                "season",
                "round",
                "county_code",
                "township_code",
                "village_code",
                "applicant_name",
                "national_id_masked",
                "national_id_hash",
                "university",
                "stage",
                "overdue",
                "at_risk",
                "amount_cny",
                "last_seq",
                "bank_name",
                "account_masked",
                "account_sealed",
                "account_holder",
            )
        ),
        column("overdue_dates", JSON),
        column("updated_at", DateTime(timezone=True)),
    )
    with engine.begin() as conn:
        conn.execute(
            insert(rows_0006),
            [
                {
                    "workflow_id": wf,
                    "programme": "county-subsidy",
                    "season": 2027,
                    "round": "",
                    "county_code": PLACES.county_code,
                    "township_code": PLACES.township_code,
                    "village_code": PLACES.village_code,
                    "applicant_name": "学生1",
                    "national_id_masked": "341225********0011",
                    "national_id_hash": f"h-{wf[-3:]}",
                    "university": "",
                    "stage": "awaiting_funds",
                    "overdue": False,
                    "overdue_dates": [],
                    "at_risk": False,
                    "amount_cny": 3000,
                    "last_seq": 0,
                    "updated_at": datetime.now(UTC) - timedelta(days=2),
                    "bank_name": "阜南农商银行",
                    "account_masked": "6230********0650",
                    "account_sealed": keys.seal(ACCOUNT),
                    "account_holder": "学生1",
                }
                for wf in (old, blanked)
            ],
        )
    upgrade(db_url)
    report = verify(engine, keys.audit)
    assert report.ok and report.unsealed_rows == 2 and report.sealed_rows == 0
    funds = _funds(engine, keys, calendar, tmp_path)
    prepared = funds.prepare_payments(_batch("b001", old))  # paid from: written before
    assert [p.workflow_id for p in prepared.included] == [old]
    # Written again by aidflow: sealed.
    _awaiting_funds(engine, keys, blanked)
    report = verify(engine, keys.audit)
    assert report.ok and report.unsealed_rows == 1 and report.sealed_rows == 2
    # A forger blanks a sealed row's MAC (and cannot pass it off as an old row) ...
    with Session(engine) as s, s.begin():
        row = s.get(ApplicationRow, blanked)
        assert row is not None
        row.row_mac = ""
        row.account_sealed = keys.seal("6230209999999999999")
        s.add(row)
    [b] = verify(engine, keys.audit).breaks
    assert str(b) == (
        f"applications row {blanked}: row_mac is empty but the row was written after "
        "row MACs began (edited outside aidflow)"
    )
    with pytest.raises(ApplicationError, match=f"applications row {blanked}: row_mac is empty"):
        funds.prepare_payments(_batch("b002", blanked))
    # ... nor by moving the watermark past it: the sealed payment gives it away.
    with Session(engine) as s, s.begin():
        mark = s.get(RowSealing, 1)
        assert mark is not None
        mark.since = datetime.now(UTC) + timedelta(days=1)
        mark.payments_before_id = 1000
        s.add(mark)
    [b] = verify(engine, keys.audit).breaks
    assert b.table == "row_sealing" and "it was moved (edited outside aidflow)" in b.problem


# --------------------------------------------------------------------------- imports


HEADER = "household_no,head_name,member_ids,county_code,township_code,village_code,status,year\n"


def _registry_row(n: int, **over: str) -> str:
    row = {
        "household_no": f"HH{n:05d}",
        "head_name": f"户主{n}",
        "member_ids": f"{make_national_id(n)};{make_national_id(n + 500, birth='19750101')}",
        "county_code": PLACES.county_code,
        "township_code": PLACES.township_code,
        "village_code": PLACES.village_code,
        "status": "active",
        "year": "2027",
    }
    row.update(over)
    return ",".join(row.values()) + "\n"


def test_registry_import_good_file(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    f = tmp_path / "registry.csv"
    f.write_text(HEADER + "".join(_registry_row(n) for n in range(1, 4)), encoding="utf-8")
    report = import_registry(engine, f, keys.hash_id)
    assert report.imported == 3 and not report.problems
    member = RegistryReader(engine).lookup(keys.hash_id(make_national_id(2)))
    assert (
        member is not None
        and member.household_no == "HH00002"
        and member.village_code == PLACES.village_code
    )
    # Re-importing is idempotent; nothing is stored in clear.
    assert import_registry(engine, f, keys.hash_id).imported == 3
    with Session(engine) as s:
        assert len(s.exec(select(Household)).all()) == 3
        members = s.exec(select(HouseholdMember)).all()
        assert len(members) == 6
        assert all("*" in m.national_id_masked for m in members)
        assert make_national_id(1) not in json.dumps([m.model_dump() for m in members])


def test_registry_import_bad_file_imports_nothing(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    f = tmp_path / "registry.csv"
    bad_id = make_national_id(9)[:-1] + ("0" if make_national_id(9)[-1] != "0" else "1")
    f.write_text(
        HEADER
        + _registry_row(1)
        + _registry_row(2, member_ids=bad_id, status="gone")
        + _registry_row(3, village_code="34122510"),
        encoding="utf-8",
    )
    report = import_registry(engine, f, keys.hash_id)
    assert report.imported == 0
    as_text = [str(p) for p in report.problems]
    assert any(
        p.startswith("row 3, member_ids: member 1 (341225********") and "check digit" in p
        for p in as_text
    )
    assert any(p.startswith("row 3, status:") for p in as_text)
    assert any(p.startswith("row 4, village_code:") for p in as_text)
    assert bad_id not in " ".join(as_text)
    with Session(engine) as s:
        assert s.exec(select(Household)).all() == []


def test_registry_import_mixed_with_skip_bad(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    f = tmp_path / "registry.csv"
    f.write_text(
        HEADER + _registry_row(1) + _registry_row(2, year="twenty") + _registry_row(3),
        encoding="utf-8",
    )
    report = import_registry(engine, f, keys.hash_id, skip_bad=True)
    assert report.imported == 2 and report.bad_rows == [3]
    assert report.rejects_file is not None
    rejects = report.rejects_file.read_text(encoding="utf-8").splitlines()
    assert len(rejects) == 2 and "year:" in rejects[1]


def test_registry_missing_column(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    f = tmp_path / "registry.csv"
    f.write_text("household_no,head_name\nHH1,x\n", encoding="utf-8")
    report = import_registry(engine, f, keys.hash_id)
    assert report.imported == 0 and "member_ids" in report.problems[0].field


def test_places_import_sample_county(engine: Engine, tmp_path: Path) -> None:
    sample = tmp_path / "places.csv"
    sample.write_text(
        resources.files("models.sample").joinpath("places.csv").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    report = import_places(engine, sample)
    assert report.imported == 11 and not report.problems
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,level,parent_code\n341225199000,某乡,township,341225100000\n341225199201,某村,village,999999999999\n"
    )
    report = import_places(engine, bad)
    assert report.imported == 0
    assert [str(p) for p in report.problems] == [
        "row 2, parent_code: 341225100000 is a township, not a county",
        "row 3, parent_code: '999999999999' is not a known township",
    ]
    with Session(engine) as s:
        assert s.get(Place, "341225100201") is not None


# --------------------------------------------------------------------------- outbox


class _Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, str, str, str]] = []
        self.fail_first = fail_first
        self.name = "test"

    async def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("gateway down")
        self.sent.append((recipient, subject, body, key))


def _outbox(engine: Engine, keys: Keys, n: int = 3) -> None:
    RecordActivities(engine, keys).record_events(batch("wf/o", range(1, n + 1), keys))


async def test_sender_delivers_once_with_two_senders(engine: Engine, keys: Keys) -> None:
    _outbox(engine, keys, 5)
    rec = _Recorder()
    a = OutboxSender(engine, Channels(log=rec, sms=rec))
    b = OutboxSender(engine, Channels(log=rec, sms=rec))
    results = await asyncio.gather(a.run_once(), b.run_once())
    assert sum(r[0] for r in results) == 5
    assert len(rec.sent) == 5 and len({k for *_, k in rec.sent}) == 5
    with Session(engine) as s:
        assert {m.status for m in s.exec(select(OutboxMessage)).all()} == {"sent"}


async def test_sender_retries_with_backoff_then_fails(engine: Engine, keys: Keys) -> None:
    _outbox(engine, keys, 1)
    rec = _Recorder(fail_first=10)
    sender = OutboxSender(engine, Channels(log=rec), backoff=timedelta(0), max_attempts=3)
    for _ in range(3):
        assert await sender.run_once() == (0, 1)
    with Session(engine) as s:
        msg = s.exec(select(OutboxMessage)).one()
    assert msg.status == "failed" and msg.attempts == 3 and "gateway down" in (msg.last_error or "")
    # With backoff, a failed message is not due again at once.
    _outbox(engine, keys, 2)
    rec2 = _Recorder(fail_first=1)
    slow = OutboxSender(engine, Channels(log=rec2), backoff=timedelta(hours=1))
    assert await slow.run_once() == (0, 1)  # seq 2 fails once and waits an hour
    assert await slow.run_once() == (0, 0)
    with Session(engine) as s:
        msg2 = s.exec(
            select(OutboxMessage).where(col(OutboxMessage.dedupe_key).endswith(":2:0"))
        ).one()
    assert msg2.status == "pending" and msg2.next_attempt_at.replace(tzinfo=UTC) > datetime.now(
        UTC
    ) + timedelta(minutes=50)


async def test_sender_marks_in_steps_so_a_crash_resends_only_the_unmarked(
    engine: Engine, keys: Keys
) -> None:
    """A batch is claimed at once and marked sent every few deliveries: a sender that
    dies mid-batch leaves the unmarked ones claimed (their lease), never the marked."""
    _outbox(engine, keys, 5)

    class Died(BaseException):  # not an Exception: the sender's own handling skips it
        pass

    class Dies(_Recorder):
        async def send(self, recipient: str, subject: str, body: str, key: str) -> None:
            if len(self.sent) == 3:
                raise Died  # the process dies: nothing after this runs
            await super().send(recipient, subject, body, key)

    rec = Dies()
    with pytest.raises(Died):
        await OutboxSender(engine, Channels(log=rec, sms=rec)).run_once(mark_every=2)
    with Session(engine) as s:
        rows = s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert [m.status for m in rows] == ["sent", "sent", "pending", "pending", "pending"]
    assert all(m.attempts == 1 for m in rows)  # all five were claimed, once
    # Their lease holds them from another sender until it expires.
    assert await OutboxSender(engine, Channels(log=_Recorder())).run_once() == (0, 0)
    later = OutboxSender(
        engine, Channels(log=(again := _Recorder()), sms=again), lease=timedelta(0)
    )
    with Session(engine) as s, s.begin():
        s.execute(update(OutboxMessage).values(next_attempt_at=datetime.now(UTC)))
    assert await later.run_once() == (3, 0)  # the third was sent, not marked: sent again
    assert len(rec.sent) + len(again.sent) == 6


async def test_smtp_channel_with_local_server(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # An office recipient resolves through the places table to its e-mail address.
        sample = tmp_path / "places.csv"
        sample.write_text(
            resources.files("models.sample").joinpath("places.csv").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        import_places(engine, sample)
        RecordActivities(engine, keys).record_events(
            EventBatch(
                snapshot=snapshot("wf/m", keys=keys),
                events=[event(1)],
                notifications={
                    1: [
                        NotificationIntent(
                            audience="office",
                            role=Role.COUNTY_EDUCATION_BUREAU,
                            place_code="341225000000",
                            template="overdue",
                            params={"date": "县教育局审批完成", "on": "09-15", "stage": "乡镇复核"},
                        )
                    ]
                },
            )
        )
        sender = OutboxSender(
            engine,
            Channels(
                log=LogChannel(),
                email=SmtpChannel(
                    host="127.0.0.1", port=port, sender="aidflow@funan.example.gov.cn"
                ),
            ),
        )
        assert await sender.run_once() == (1, 0)
    finally:
        controller.stop()
    [env] = received
    assert env.rcpt_tos == ["jyj@funan.example.gov.cn"]
    from email import message_from_bytes
    from email.header import decode_header, make_header

    msg = message_from_bytes(env.content)
    assert str(make_header(decode_header(msg["Subject"]))) == "逾期提醒"
    body = msg.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    assert "县教育局" in body and "09-15" in body


async def test_webhook_channel_with_local_server(engine: Engine, keys: Keys) -> None:
    posts: list[dict[str, Any]] = []
    failures = [1]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if failures[0]:
                failures[0] -= 1
                self.send_response(503)
            else:
                posts.append(
                    {
                        **body,
                        "idempotency": self.headers["Idempotency-Key"],
                        "auth": self.headers["Authorization"],
                    }
                )
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _outbox(engine, keys, 1)
        url = f"http://127.0.0.1:{server.server_address[1]}/sms"
        sender = OutboxSender(
            engine, Channels(log=LogChannel(), sms=WebhookChannel(url, "tok")), backoff=timedelta(0)
        )
        assert await sender.run_once() == (0, 1)  # the gateway answers 503 once
        assert await sender.run_once() == (1, 0)
    finally:
        server.shutdown()
    [post] = posts
    assert (
        post["to"] == "13800000001"
        and post["auth"] == "Bearer tok"
        and post["idempotency"] == "wf/o:1:0"
    )
    assert "申请已受理" in post["text"]


def test_one_application_a_season_is_claimed_before_its_workflow_starts(engine: Engine) -> None:
    """Issue 18 (review): the read model's row comes with an application's first event,
    seconds after its start, so two counties' submissions moments apart both passed the
    check on it. The claim is taken before the start: the second is refused naming the
    first; a claim whose application ended rejected or withdrawn, or that never started,
    is taken over."""
    from store.registry import CLAIM_STALE_AFTER, RegistryReader
    from store.tables import ApplicationClaim

    reader = RegistryReader(engine)
    first = ("county-subsidy", 2027, "", "h" * 16, "county-subsidy/2027/341225/a", "341225000000")
    assert reader.claim(*first) is None
    assert reader.claim(*first) is None  # the same application again
    other = ("county-subsidy", 2027, "", "h" * 16, "county-subsidy/2027/341226/a", "341226000000")
    holder = reader.claim(*other)
    assert holder is not None and holder.workflow_id == first[4] and holder.stage == "submitted"
    assert reader.claim("county-subsidy", 2027, "spring", *other[3:]) is None  # another round
    # Recorded and then rejected: the claim is free again.
    with Session(engine) as s:
        s.add(
            ApplicationRow(
                workflow_id=first[4],
                programme="county-subsidy",
                season=2027,
                county_code="341225000000",
                township_code="341225100000",
                village_code="341225100201",
                applicant_name="学生",
                national_id_masked="341225********0011",
                national_id_hash="h" * 16,
                stage="village_review",
            )
        )
        s.commit()
    assert reader.claim(*other) is not None  # still open
    with Session(engine) as s:
        row = s.get(ApplicationRow, first[4])
        assert row is not None
        row.stage = "rejected"
        s.add(row)
        s.commit()
    assert reader.claim(*other) is None
    # A claim of a workflow that never started is taken over once it is stale.
    third = ("new-student-aid", 2027, "", "h" * 16, "new-student-aid/2027/341225/a", "341225000000")
    assert reader.claim(*third) is None
    elsewhere = (
        "new-student-aid",
        2027,
        "",
        "h" * 16,
        "new-student-aid/2027/341226/a",
        "341226000000",
    )
    assert reader.claim(*elsewhere) is not None
    with Session(engine) as s:
        claim = s.get(ApplicationClaim, ("new-student-aid", 2027, "", "h" * 16))
        assert claim is not None
        claim.claimed_at = datetime.now(UTC) - CLAIM_STALE_AFTER - timedelta(seconds=1)
        s.add(claim)
        s.commit()
    assert reader.claim(*elsewhere) is None


def test_a_retracted_events_sent_notification_keeps_its_key_when_replaced_later(
    engine: Engine, keys: Keys
) -> None:
    """Found by the fault harness at 1,000: a lost task's event 4 had a notification that
    was tried before the history showed the event never happened. The retraction kept
    it (it may have gone out). The history's own event 4 came in a later batch, and its
    notification took the same key: every write of that application's trail failed on
    the outbox's unique key, for good. It now takes another."""
    rec = RecordActivities(engine, keys)
    rec.record_events(batch("wf/kept", range(1, 3), keys))
    same3 = event(3, kind="at_risk", stage="village_review")
    note = [NotificationIntent(audience="applicant", template="submitted")]
    lost = EventBatch(
        snapshot=snapshot("wf/kept", "village_notice", keys),
        events=[same3, event(4, kind="decision", stage="village_review")],
        notifications={4: note},
        history_length=10,
    )
    rec.record_events(lost)
    with engine.begin() as conn:  # the sender tried it
        conn.execute(text("update outbox set attempts = 1 where dedupe_key = 'wf/kept:4:0'"))
    history = EventBatch(
        snapshot=snapshot("wf/kept", "village_review", keys),
        events=[same3],
        history_length=13,
    )
    assert rec.record_events(history).seq == 3
    later = EventBatch(
        snapshot=snapshot("wf/kept", "village_review", keys),
        events=[same3, event(4, kind="overdue", stage="village_review")],
        notifications={4: note},
        history_length=16,
    )
    head = rec.record_events(later)
    assert (head.seq, head.new) == (4, 1)
    with Session(engine) as s:
        keys_left = sorted(
            s.exec(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.workflow_id == "wf/kept")
            ).all()
        )
    assert keys_left[:3] == ["wf/kept:1:0", "wf/kept:2:0", "wf/kept:4:0"]
    assert len(keys_left) == 4 and keys_left[3].startswith("wf/kept:4:0~")
    assert verify(engine, keys.audit, witness={"wf/kept": head}).ok
