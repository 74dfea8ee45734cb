"""The recovery list (追回) of paid grants cancelled, and its entries in each application's
audit chain (appended after the application's last event: its workflow has ended).

Idempotent: an event already in the chain (the same kind and request id) is not written
again, and the list's row is written from the same event, so a retried activity changes
nothing twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from models.recovery import RecoveryEvent, RecoveryInput
from store.chain import GENESIS, audit_entry, chain_hash, utc
from store.db import one_writer
from store.sealing import Keys, row_mac
from store.tables import ApplicationRow, AuditEntry, Recovery

_AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
_ROWS = ApplicationRow.__table__  # type: ignore[attr-defined]
_RECOVERIES = Recovery.__table__  # type: ignore[attr-defined]


def record_recovery(engine: Engine, keys: Keys, inp: RecoveryInput, event: RecoveryEvent) -> int:
    """Write the event into the application's chain and the list; its seq in the chain.

    The application's row is locked as its own recordings lock it, and its last_seq (a
    sealed field) moves to the new entry: deleting the entries later breaks the chain's
    check (``aidflow audit verify``) as deleting any of its events would."""
    wf = event.application_id
    with one_writer(engine), engine.begin() as conn:
        row = (
            conn.execute(select(_ROWS).where(_ROWS.c.workflow_id == wf).with_for_update())
            .mappings()
            .first()
        )
        stage = str(row["stage"]) if row is not None else "paid"
        seq = _append(conn, keys.audit, wf, event, stage)
        if row is not None and seq > int(row["last_seq"]):
            values = {**row, "last_seq": seq}
            conn.execute(
                update(_ROWS)
                .where(_ROWS.c.workflow_id == wf)
                .values(last_seq=seq, row_mac=row_mac(keys.rows, "applications", values))
            )
        if event.kind == "cancelled":
            if (
                conn.execute(
                    select(_RECOVERIES.c.application_id).where(_RECOVERIES.c.application_id == wf)
                ).first()
                is None
            ):
                conn.execute(
                    insert(_RECOVERIES).values(
                        application_id=wf,
                        programme=inp.programme,
                        season=inp.season,
                        round=inp.round,
                        county_code=inp.places.county_code,
                        village_code=inp.places.village_code,
                        applicant_name=inp.applicant_name,
                        national_id_masked=inp.applicant_masked,
                        amount_cny=inp.amount_cny,
                        reason=str(event.detail.get("reason", "")),
                        report_ref=str(event.detail.get("report_ref", "")),
                        cancelled_by=event.actor.id,
                        cancelled_at=utc(event.at),
                        recovered_cny=0,
                        recovered_reference="",
                        recovered_by="",
                    )
                )
        else:
            conn.execute(
                update(_RECOVERIES)
                .where(_RECOVERIES.c.application_id == wf)
                .values(
                    recovered_cny=int(event.detail["amount_cny"]),
                    recovered_reference=str(event.detail["reference"]),
                    recovered_by=event.actor.id,
                    recovered_at=utc(event.at),
                )
            )
    return seq


def _append(conn: Connection, key: bytes, wf: str, event: RecoveryEvent, stage: str) -> int:
    rows = conn.execute(
        select(_AUDIT.c.seq, _AUDIT.c.hash, _AUDIT.c.kind, _AUDIT.c.detail)
        .where(_AUDIT.c.workflow_id == wf)
        .order_by(_AUDIT.c.seq.desc())
        .limit(50)
        .with_for_update()
    ).all()
    for seq, _, kind, detail in rows:
        if kind == event.kind and (detail or {}).get("request_id") == event.request_id:
            return int(seq)  # written by an earlier attempt
    last_seq, prev = (rows[0][0], rows[0][1]) if rows else (0, GENESIS)
    entry = audit_entry(
        wf,
        last_seq + 1,
        event.at,
        event.kind,
        stage,  # the application's: it ended paid (or signed for)
        event.actor,
        event.summary,
        {"request_id": event.request_id, **event.detail},
    )
    entry["prev_hash"] = prev
    entry["hash"] = chain_hash(key, prev, entry)
    conn.execute(insert(_AUDIT).values(**entry))
    return last_seq + 1


def recovery_list(
    engine: Engine, programme: str, season: int, county_code: str, round_: str = ""
) -> list[dict[str, Any]]:
    """The season's recovery list, open ones first (for the report)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_RECOVERIES)
            .where(
                _RECOVERIES.c.programme == programme,
                _RECOVERIES.c.season == season,
                _RECOVERIES.c.round == round_,
                _RECOVERIES.c.county_code == county_code,
            )
            .order_by(_RECOVERIES.c.recovered_at.is_not(None), _RECOVERIES.c.cancelled_at)
        ).all()
    return [
        {
            "workflow_id": r.application_id,
            "applicant": r.applicant_name,
            "id": r.national_id_masked,
            "village": r.village_code,
            "amount_cny": r.amount_cny,
            "reason": r.reason,
            "cancelled_at": utc(r.cancelled_at).isoformat(timespec="seconds"),
            "status": "recovered" if r.recovered_at else "open",
            "recovered_cny": r.recovered_cny,
            "reference": r.recovered_reference,
        }
        for r in rows
    ]
