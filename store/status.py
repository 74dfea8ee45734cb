"""An application's status from the records: the read-model row and its audit log.

The live status is a query, answered by a worker running the workflow. A service that
only needs where an application stands (its stage, whom it waits for and until when,
its notice, its objections) reads it here instead: it costs no workflow task, answers
while every worker is down, and cannot trigger the SDK defect that a query sent to a
worker that has just started can (README, "A defect of the Temporal SDK"). It is as
fresh as the application's newest recorded event: the trail is written in the same
workflow task as the search attributes the Web UI lists, and before them.

The details are worded from the record (the step's name, the office it waits for, the
deadline), not the workflow's own sentence, which only a query gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from models.application import (
    Actor,
    ApplicationStatus,
    NoticeWindow,
    Objection,
    Places,
    TrailEvent,
)
from models.calendar import SHANGHAI
from models.domain import ROLE_NAME_ZH, ObjectionOutcome, Role
from models.programme import Programme
from models.programmes import REGISTRY
from store.chain import utc, utc_or_none
from store.tables import ApplicationRow, AuditEntry, Place

_ROWS = ApplicationRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
_PLACES = Place.__table__  # type: ignore[attr-defined]
# The audit events a status is rebuilt from (the rest say nothing a status shows).
# (an automatic posting's period is known from its notice_scheduled, said at the join)
_KINDS = ("notice_scheduled", "notice_posted", "objection_lodged", "objection_resolved")


def read_status(engine: Engine, workflow_id: str) -> ApplicationStatus | None:
    """The application's status as of its newest recorded event; None before its first
    event is recorded (or for an id aidflow does not know)."""
    with engine.connect() as conn:
        row = conn.execute(select(_ROWS).where(_ROWS.c.workflow_id == workflow_id)).first()
        if row is None:
            return None
        r = row._mapping
        codes = [r["county_code"], r["township_code"], r["village_code"]]
        names: dict[str, str] = {
            code: name
            for code, name in conn.execute(
                select(_PLACES.c.code, _PLACES.c.name).where(_PLACES.c.code.in_(codes))
            )
        }
        events = conn.execute(
            select(_AUDIT.c.at, _AUDIT.c.kind, _AUDIT.c.stage, _AUDIT.c.actor_id)
            .add_columns(_AUDIT.c.actor_role, _AUDIT.c.detail)
            .where(_AUDIT.c.workflow_id == workflow_id, _AUDIT.c.kind.in_(_KINDS))
            .order_by(_AUDIT.c.seq)
        ).all()
    programme = REGISTRY.get(r["programme"])
    stage: str = r["stage"]
    objections = _objections(events)
    notice = _notice(events, stage, programme)
    waiting_for: str = r["waiting_for"]
    waiting_until = utc_or_none(r["waiting_until"])
    zh, en = _details(programme, stage, waiting_for, waiting_until, r, objections)
    return ApplicationStatus(
        workflow_id=workflow_id,
        programme=r["programme"],
        season=r["season"],
        stage=stage,
        waiting_for=waiting_for,
        waiting_until=waiting_until,
        overdue=list(r["overdue_dates"] or []),
        at_risk=[],  # the row keeps only whether (the query names the dates)
        notice=notice,
        objections=objections,
        amount_cny=r["amount_cny"],
        applicant_masked=f"{r['applicant_name']} {r['national_id_masked']}",
        places=Places(
            county_code=r["county_code"],
            township_code=r["township_code"],
            village_code=r["village_code"],
            county_name=names.get(r["county_code"], ""),
            township_name=names.get(r["township_code"], ""),
            village_name=names.get(r["village_code"], ""),
            school_code=r["school_code"],
            university_code=r["university_code"],
        ),
        provisional=bool(notice and notice.provisional),
        details_zh=zh,
        details_en=en,
    )


def read_trail(engine: Engine, workflow_id: str) -> list[TrailEvent]:
    """The application's trail as its audit log holds it (every event recorded so far,
    in order); empty before its first is recorded."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_AUDIT).where(_AUDIT.c.workflow_id == workflow_id).order_by(_AUDIT.c.seq)
        ).all()
    trail: list[TrailEvent] = []
    for r in rows:
        # What the trail event said beside its own detail (store: _audit_entry).
        detail = dict(r.detail)
        summary = str(detail.pop("summary", ""))
        name = str(detail.pop("actor_name", "") or r.actor_id)
        credential = str(detail.pop("credential", ""))
        trail.append(
            TrailEvent(
                seq=r.seq,
                at=utc(r.at),
                kind=r.kind,
                stage=r.stage,
                actor=Actor(
                    id=r.actor_id, name=name, role=Role(r.actor_role), credential=credential
                ),
                summary=summary,
                detail=detail,
            )
        )
    return trail


def _actor(e: Any) -> Actor:
    name = str(e.detail.get("actor_name") or e.actor_id)
    return Actor(id=e.actor_id, name=name, role=Role(e.actor_role))


def _objections(events: Sequence[Any]) -> list[Objection]:
    by_id: dict[str, Objection] = {}
    for e in events:
        oid = e.detail.get("objection_id", "")
        if e.kind == "objection_lodged":
            by_id[oid] = Objection(
                id=oid,
                stage=e.stage,
                lodged_at=utc(e.at),
                lodged_by=_actor(e),
                text=e.detail.get("text", ""),
                evidence_ref=e.detail.get("evidence_ref", ""),
            )
        elif e.kind == "objection_resolved" and oid in by_id:
            by_id[oid] = by_id[oid].model_copy(
                update={
                    "outcome": ObjectionOutcome(e.detail["outcome"]),
                    "resolved_at": utc(e.at),
                    "resolved_by": _actor(e),
                    "reason": e.detail.get("reason", ""),
                }
            )
    return list(by_id.values())


def _notice(events: Sequence[Any], stage: str, programme: Programme | None) -> NoticeWindow | None:
    """The posting of the notice the application is in now (as the query: none once it
    has moved on to the next step; an automatic one from its scheduling)."""
    if programme is not None and stage not in {s.stage for s in programme.steps}:
        return None
    for e in reversed(events):
        if e.stage == stage and (
            e.kind == "notice_posted" or (e.kind == "notice_scheduled" and "posted_at" in e.detail)
        ):
            d = e.detail
            return NoticeWindow(
                stage=stage,
                posted_at=datetime.fromisoformat(d["posted_at"]),
                ends_at=datetime.fromisoformat(d["ends_at"]),
                counted_days=list(d.get("counted_days", [])),
                provisional=bool(d.get("provisional", False)),
            )
    return None


def _details(
    programme: Programme | None,
    stage: str,
    waiting_for: str,
    until: datetime | None,
    r: Any,
    objections: list[Objection],
) -> tuple[str, str]:
    label_zh, label_en = programme.label(stage) if programme else (stage, stage)
    if not waiting_for:  # ended (or a row from before the column)
        zh, en = label_zh, label_en
        if r["rejection_reason"]:
            zh, en = f"{zh}：{r['rejection_reason']}", f"{en}: {r['rejection_reason']}"
        return zh, en
    role = Role(waiting_for) if waiting_for in Role._value2member_map_ else None
    who_zh = ROLE_NAME_ZH.get(role, waiting_for) if role else waiting_for
    who_en = waiting_for.replace("_", " ")
    zh, en = f"{label_zh}：等待{who_zh}", f"{label_en}: waiting for the {who_en}"
    if until is not None:
        local = until.astimezone(SHANGHAI)  # Shanghai wall time, as the workflows word it
        zh += f"，至 {local:%Y-%m-%d %H:%M}"
        en += f" until {local:%Y-%m-%d %H:%M}"
    open_ = [o.id for o in objections if o.outcome is None]
    if open_:
        zh += f"；待处理异议 {len(open_)} 件"
        en += f"; {len(open_)} open objection(s)"
    if r["overdue_dates"]:
        zh += "；已逾期"
        en += "; OVERDUE"
    return zh, en
