"""Cases (PROCESS.md §5) in the database: each case's row and its trail, written by the
case's activity (idempotent: an event already written is not written again), and the
reports read from them (obligations met and missed, per unit and per member)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from models.calendar import SHANGHAI
from models.cases import DROPOUT_TARGETS, CaseEvent, CaseEventBatch, CaseMember, period_bounds
from store.chain import utc
from store.db import one_writer
from store.outbox import put_once
from store.tables import CaseEventRow, CaseRow

_CASES = CaseRow.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEventRow.__table__  # type: ignore[attr-defined]


def record_case_events(
    engine: Engine, batch: CaseEventBatch, open_sealed: Callable[[str], str]
) -> int:
    """Write the batch's events that are not written yet, the case's row, and the
    messages of its misses (to the member and their unit's liaison); the last seq."""
    case, wf = batch.case, batch.case.workflow_id
    now = datetime.now(UTC)
    with one_writer(engine), engine.begin() as conn:
        row = conn.execute(
            select(_CASES.c.last_seq, _CASES.c.members)
            .where(_CASES.c.workflow_id == wf)
            .with_for_update()
        ).first()
        last = row.last_seq if row is not None else 0
        # Everyone who has been on the case (a handover adds one), for reports and misses.
        members = {
            m.actor_id: m
            for m in (
                [CaseMember.model_validate(x) for x in row.members or []]
                if row is not None
                else batch.members
            )
        }
        fresh = [e for e in batch.events if e.seq > last]
        for e in fresh:
            conn.execute(
                insert(_EVENTS).values(
                    workflow_id=wf,
                    seq=e.seq,
                    at=utc(e.at),
                    kind=e.kind,
                    actor_id=e.actor.id,
                    actor_role=e.actor.role.value,
                    summary=e.summary,
                    detail=e.detail,
                )
            )
            if e.kind == "handover":
                joining = e.detail.get("joining", {})
                members.setdefault(str(joining.get("actor_id")), CaseMember.model_validate(joining))
            for key, to, subject, body in _messages(batch, e, members, open_sealed):
                put_once(
                    conn, key=key, workflow_id=wf, recipient=to, subject=subject, body=body, at=now
                )
        values: dict[str, Any] = {
            "programme": case.programme,
            "year": case.year,
            "county_code": case.places.county_code,
            "township_code": case.places.township_code,
            "village_code": case.places.village_code,
            "subject_masked": f"{case.subject.name} {case.subject.national_id_masked}",
            "subject_hash": case.subject.national_id_hash,
            "level": case.subject.level,
            "stage": batch.stage,
            "overdue": batch.overdue,
            "members": [m.model_dump(mode="json") for m in members.values()],
            "last_seq": max([last, *(e.seq for e in fresh)]),
            "updated_at": now,
        }
        if row is None:
            conn.execute(
                insert(_CASES).values(workflow_id=wf, opened_at=utc(case.opened_at), **values)
            )
        else:
            conn.execute(update(_CASES).where(_CASES.c.workflow_id == wf).values(**values))
    return int(values["last_seq"])


def _messages(
    batch: CaseEventBatch,
    e: CaseEvent,
    members: dict[str, CaseMember],
    open_sealed: Callable[[str], str],
) -> list[tuple[str, str, str, str]]:
    """(dedupe key, recipient, subject, body) of what an event tells: a miss, the member
    and their unit's liaison; the failed courses, the guardian."""
    case, wf = batch.case, batch.case.workflow_id
    if not e.notify:
        return []
    if e.kind == "guardian_told":
        courses = "、".join(e.detail.get("failed_courses", []))
        to = open_sealed(case.guardian_contact_sealed) or f"guardian:{wf}"
        body = (
            f"{case.subject.name}同学家长：本学期{courses}课程未通过，学院已安排帮扶教师和"
            "朋辈帮扶，请配合督促学习。"
        )
        return [(f"{wf}:{e.seq}:guardian", to, "学业情况告知 / failed courses", body)]
    out = []
    for member_id in e.detail.get("told", []):
        m = members.get(member_id)
        recipients = [f"helper:{member_id}"]
        if m is not None and m.unit and case.liaison is not None:
            recipients.append(f"{case.liaison.value}@{m.unit}")
        subject = f"{case.programme_name_zh}：帮扶任务逾期 / overdue"
        out += [
            (f"{wf}:{e.seq}:{member_id}:{i}", to, subject, e.summary)
            for i, to in enumerate(recipients)
        ]
    return out


def _year_cases(conn: Connection, programme: str, year: int, county_code: str) -> list[Any]:
    """A programme's cases of a year in a county: their ids and groups."""
    return list(
        conn.execute(
            select(_CASES.c.workflow_id, _CASES.c.members).where(
                _CASES.c.programme == programme,
                _CASES.c.year == year,
                _CASES.c.county_code == county_code,
            )
        ).all()
    )


def _details(conn: Connection, ids: list[str], kind: str) -> list[dict[str, Any]]:
    """The details of the cases' trail entries of one kind."""
    if not ids:
        return []
    rows = conn.execute(
        select(_EVENTS.c.detail).where(_EVENTS.c.workflow_id.in_(ids), _EVENTS.c.kind == kind)
    ).all()
    return [r.detail or {} for r in rows]


@dataclass
class MemberTally:
    """One member's obligations of a programme's year: periods met and missed."""

    actor_id: str
    name: str
    unit: str
    met: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)


def obligations_report(
    engine: Engine, programme: str, year: int, county_code: str
) -> list[MemberTally]:
    """Per member (and so per unit): each obligation's periods met and missed, from the
    periods judged in the cases' trails."""
    tallies: dict[str, MemberTally] = {}
    with engine.connect() as conn:
        cases = _year_cases(conn, programme, year, county_code)
        people = {m["actor_id"]: m for c in cases for m in (c.members or [])}
        judged = _details(conn, [c.workflow_id for c in cases], "period_judged")
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for detail in judged:
        for outcome in ("met", "missed"):
            for member in detail.get(outcome, []):
                counts[(member, outcome, detail["obligation"])] += 1
    for (member, outcome, obligation), n in counts.items():
        p = people.get(member, {})
        t = tallies.setdefault(
            member, MemberTally(member, str(p.get("name", member)), str(p.get("unit", "")))
        )
        getattr(t, outcome)[obligation] = n
    return sorted(tallies.values(), key=lambda t: (t.unit, t.actor_id))


def case_ledger(
    engine: Engine, programme: str, year: int, county_code: str
) -> list[dict[str, Any]]:
    """The ledger (台账) per township: cases open, closed by each outcome, overdue now."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_CASES.c.township_code, _CASES.c.stage, _CASES.c.overdue).where(
                _CASES.c.programme == programme,
                _CASES.c.year == year,
                _CASES.c.county_code == county_code,
            )
        ).all()
    by_township: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        t = by_township[r.township_code]
        t["cases"] += 1
        t[r.stage] += 1
        t["overdue"] += bool(r.overdue)
    return [{"township": code, **dict(v)} for code, v in sorted(by_township.items())]


def handbook_markdown(engine: Engine, workflow_id: str) -> str | None:
    """A case's help handbook (帮扶手册): who it is for, its group, every contact, every
    period judged and missed, its handovers and its outcome, Chinese first."""
    with engine.connect() as conn:
        case = conn.execute(select(_CASES).where(_CASES.c.workflow_id == workflow_id)).first()
        if case is None:
            return None
        events = conn.execute(
            select(_EVENTS).where(_EVENTS.c.workflow_id == workflow_id).order_by(_EVENTS.c.seq)
        ).all()
    lines = [
        f"# 帮扶手册 / help handbook: {case.subject_masked}",
        "",
        f"{case.programme} {case.year} · 村 / village {case.village_code} · "
        f"状态 / stage: {case.stage}",
        "",
        "## 帮扶小组 / the group",
        "",
        "| 姓名 / name | 身份 / role | 单位 / unit |",
        "|---|---|---|",
        *(f"| {m['name']} | {m['role']} | {m.get('unit', '')} |" for m in case.members or []),
        "",
        "## 帮扶记录 / contacts",
        "",
        "| 日期 / on | 帮扶人 / member | 方式 / kind | 内容 / done | 钱物 / CNY | 解决问题 / problem solved | 照片 / photos |",
        "|---|---|---|---|---:|---|---:|",
    ]
    for e in events:
        if e.kind == "contact":
            d = e.detail or {}
            lines.append(
                f"| {d.get('on', '')} | {d.get('member', '')} | {d.get('kind', '')} | "
                f"{_cell(d.get('done', ''))} | {d.get('gift_value_cny', 0)} | "
                f"{_cell(d.get('problem_solved', ''))} | {len(d.get('photo_sha256', []))} |"
            )
    lines += ["", "## 履职情况与其他记录 / periods judged, misses, handovers, outcome", ""]
    for e in events:
        if e.kind != "contact":
            lines.append(f"- {utc(e.at).astimezone(SHANGHAI):%Y-%m-%d %H:%M} {_cell(e.summary)}")
    return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    """Text safe in a Markdown table cell (an official's words may hold a bar)."""
    return str(text).replace("|", "｜").replace("\n", " ")


def periodic_report(
    engine: Engine,
    programme: str,
    county_code: str,
    period: str,
    enrolled: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The monthly dispatch, quarterly summary or half-yearly bulletin (月调度、季汇总、
    半年通报) of a case programme in a county: per township the cases opened in the
    period, closed in it by outcome, open at its end; per school level, the cases open at
    the end and, given the level's enrolment, the rate against the plan's target."""
    first, last = period_bounds(period)
    with engine.connect() as conn:
        cases = conn.execute(
            select(
                _CASES.c.workflow_id, _CASES.c.township_code, _CASES.c.level, _CASES.c.opened_at
            ).where(_CASES.c.programme == programme, _CASES.c.county_code == county_code)
        ).all()
        ids = [c.workflow_id for c in cases]
        closed = {
            e.workflow_id: e
            for e in (
                conn.execute(
                    select(_EVENTS.c.workflow_id, _EVENTS.c.at, _EVENTS.c.detail).where(
                        _EVENTS.c.workflow_id.in_(ids), _EVENTS.c.kind == "closed"
                    )
                ).all()
                if ids
                else []
            )
        }

    def day(at: datetime) -> date:
        return utc(at).astimezone(SHANGHAI).date()

    townships: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    open_by_level: dict[str, int] = defaultdict(int)
    for c in cases:
        opened = day(c.opened_at)
        if opened > last:
            continue
        t = townships[c.township_code]
        if opened >= first:
            t["opened"] += 1
        end = closed.get(c.workflow_id)
        ended = day(end.at) if end is not None else None
        if end is not None and ended is not None and ended <= last:
            if ended >= first:
                t[str((end.detail or {}).get("outcome") or "closed")] += 1
            continue
        t["open_at_end"] += 1
        open_by_level[c.level or "-"] += 1
    levels = []
    for level, n in sorted(open_by_level.items()):
        target = DROPOUT_TARGETS.get(level)
        size = (enrolled or {}).get(level)
        rate = n / size if size else None
        levels.append(
            {
                "level": level,
                "open_at_end": n,
                "enrolled": size,
                "rate": rate,
                "target": target,
                "within_target": None if rate is None or target is None else rate < target,
            }
        )
    return {
        "programme": programme,
        "period": period,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "townships": [{"township": k, **dict(v)} for k, v in sorted(townships.items())],
        "levels": levels,
    }


def department_summary(
    engine: Engine, programme: str, year: int, county_code: str
) -> list[dict[str, Any]]:
    """Each department's summary of the year (the pairing plan's 10 December one): its
    cadres and households, the contacts logged and their photographs, money or goods
    given, problems solved, and the obligations' periods met and missed."""
    units: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "cadres": set(),
            "households": set(),
            "contacts": 0,
            "photos": 0,
            "gifts_cny": 0,
            "problems_solved": 0,
        }
    )
    with engine.connect() as conn:
        cases = _year_cases(conn, programme, year, county_code)
        unit_of = {}
        for c in cases:
            for m in c.members or []:
                unit = str(m.get("unit", ""))
                unit_of[m["actor_id"]] = unit
                units[unit]["cadres"].add(m["actor_id"])
                units[unit]["households"].add(c.workflow_id)
        contacts = _details(conn, [c.workflow_id for c in cases], "contact")
    for d in contacts:
        u = units[unit_of.get(str(d.get("member")), "")]
        u["contacts"] += 1
        u["photos"] += len(d.get("photo_sha256", []))
        u["gifts_cny"] += int(d.get("gift_value_cny", 0))
        u["problems_solved"] += bool(str(d.get("problem_solved", "")).strip())
    tallies = obligations_report(engine, programme, year, county_code)
    out = []
    for unit, u in sorted(units.items()):
        mine = [t for t in tallies if t.unit == unit]
        out.append(
            {
                "unit": unit,
                "cadres": len(u["cadres"]),
                "households": len(u["households"]),
                "contacts": u["contacts"],
                "photos": u["photos"],
                "gifts_cny": u["gifts_cny"],
                "problems_solved": u["problems_solved"],
                "periods_met": sum(sum(t.met.values()) for t in mine),
                "periods_missed": sum(sum(t.missed.values()) for t in mine),
            }
        )
    return out
