"""The season report and the season's reminders (written to the outbox)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from temporalio import activity

from models.domain import Level, Role, level_of
from models.notifications import render
from models.payout import ReportFiles, ReportKind
from models.privacy import mask_sensitive_text
from models.programme import Programme
from models.season import season_label
from models.tasks import TaskNoticeRequest
from store import cells
from store.cells import WORKBOOK_OPTIONS
from store.db import one_writer
from store.outbox import put_once
from store.recovery import recovery_list
from store.tables import ApplicationRow, AuditEntry, OutboxMessage, Payment, Place


class ReportRequest(BaseModel):
    programme: str
    season: int
    round: str = ""
    county_code: str
    as_of: ReportKind = "payout_date"


class OpenApplicationsRequest(BaseModel):
    programme: str
    season: int
    round: str = ""
    county_code: str
    stages: list[str]  # the stages that count as open


class ReminderRequest(BaseModel):
    programme: Programme
    season: int
    county_code: str
    fixed_date_key: str


class RoundOpenedNotice(BaseModel):
    programme: Programme
    season: int
    county_code: str
    national_opened_on: str
    opened_by: str


class CoverageReminderRequest(BaseModel):
    programme: Programme
    season: int
    county_code: str


class SeasonReport(BaseModel):
    programme: str
    season: int
    round: str = ""
    county_code: str
    county_name: str
    generated_at: datetime
    as_of: ReportKind = "payout_date"
    applications: int
    by_stage: dict[str, int]
    by_township: list[dict[str, Any]]
    by_village: list[dict[str, Any]]
    paid_count: int
    paid_cny: int
    rejections_by_reason: dict[str, int]
    objections: dict[str, int]
    overdue: list[dict[str, Any]]
    overdue_by_date: dict[str, int]
    returned_payments: list[dict[str, Any]]
    repaid: int
    roster: list[dict[str, Any]]
    # Programmes paid by signed receipt (签领): what was signed for, by funding source,
    # and the grants still unclaimed.
    received_by_source: dict[str, int] = {}
    unclaimed: list[dict[str, Any]] = []
    # 应补尽补: per village, the registered-poor students the programme is for (by the
    # newest enrolment snapshot), applied, paid and not applied; empty without enrolment data.
    coverage_as_of: str = ""
    coverage: list[dict[str, Any]] = []
    # The yearly aid ledger's totals for the county's registered-poor students: per
    # programme (every programme, not only this one), students and CNY.
    ledger_totals: dict[str, dict[str, int]] = {}
    # 追回: paid grants cancelled (a report proved true), open until recovered.
    recoveries: list[dict[str, Any]] = []


# Stages an application reaches only after the county approved it.
_COUNTY_APPROVED = frozenset(
    {
        "awaiting_funds",
        "awaiting_payment",
        "awaiting_account_correction",
        "paid",
        "awaiting_receipt",
        "received",
        # The student loan: accepted at the centre, then the university's and bank's word.
        "loan_contract",
        "university_receipt",
        "awaiting_disbursement",
        "lent",
    }
)
_GROUP_COLUMNS = ["code", "name", "applications", "approved CNY", "paid", "paid CNY", "rejected"]
_GROUP_KEYS = ["code", "name", "applications", "approved_cny", "paid", "paid_cny", "rejected"]


def _group_markdown(title: str, groups: list[dict[str, Any]]) -> list[str]:
    return [
        f"## By {title}",
        "",
        f"| {title} | applications | paid | paid CNY | rejected |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {g['name']} | {g['applications']} | {g['paid']} | {g['paid_cny']:,} | {g['rejected']} |"
            for g in groups
        ],
        "",
    ]


def build_report(
    engine: Engine,
    programme: str,
    season: int,
    county_code: str,
    as_of: ReportKind = "payout_date",
    round_: str = "",
) -> SeasonReport:
    with Session(engine) as s:
        rows = s.exec(
            select(ApplicationRow)
            .where(
                ApplicationRow.programme == programme,
                ApplicationRow.season == season,
                ApplicationRow.round == round_,
                ApplicationRow.county_code == county_code,
            )
            .order_by(
                col(ApplicationRow.township_code),
                col(ApplicationRow.village_code),
                col(ApplicationRow.workflow_id),
            )
        ).all()
        ids = [r.workflow_id for r in rows]
        places = {p.code: p.name for p in s.exec(select(Place)).all()}
        audit = (
            s.exec(select(AuditEntry).where(col(AuditEntry.workflow_id).in_(ids))).all()
            if ids
            else []
        )
        payments = (
            s.exec(
                select(Payment).where(col(Payment.workflow_id).in_(ids)).order_by(col(Payment.id))
            ).all()
            if ids
            else []
        )
    receipts = {e.workflow_id: e for e in audit if e.kind == "receipt"}
    # Paid: by the bank onto the card, signed for in person, or lent.
    paid_by_wf = (
        {p.workflow_id for p in payments if p.status == "paid"}
        | set(receipts)
        | {r.workflow_id for r in rows if r.stage == "lent"}  # a loan the bank paid out
    )
    received_by_source: Counter[str] = Counter(
        str(e.detail.get("funding_source", "")) for e in receipts.values()
    )
    unclaimed = [
        {
            "workflow_id": r.workflow_id,
            "applicant": r.applicant_name,
            "id": r.national_id_masked,
            "village": places.get(r.village_code, r.village_code),
            "amount_cny": r.amount_cny,
        }
        for r in rows
        if r.stage == "awaiting_receipt"
    ]

    def group(key: str) -> list[dict[str, Any]]:
        acc: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"applications": 0, "approved_cny": 0, "paid": 0, "paid_cny": 0, "rejected": 0}
        )
        for r in rows:
            code = getattr(r, key)
            g = acc[code]
            g["applications"] += 1
            if r.stage in _COUNTY_APPROVED:
                g["approved_cny"] += r.amount_cny
            if r.workflow_id in paid_by_wf:
                g["paid"] += 1
                g["paid_cny"] += r.amount_cny
            if r.stage == "rejected":
                g["rejected"] += 1
        return [{"code": c, "name": places.get(c, c), **v} for c, v in sorted(acc.items())]

    objections: Counter[str] = Counter()
    for e in audit:
        if e.kind == "objection_lodged":
            objections["lodged"] += 1
        elif e.kind == "objection_resolved":
            objections[str(e.detail.get("outcome", "resolved"))] += 1
    overdue = [
        {
            "workflow_id": r.workflow_id,
            "applicant": r.applicant_name,
            "village": places.get(r.village_code, r.village_code),
            "stage": r.stage,
            "missed": ", ".join(r.overdue_dates),
        }
        for r in rows
        if r.overdue_dates
    ]
    overdue_by_date: Counter[str] = Counter(d for r in rows for d in r.overdue_dates)
    returned = [
        {
            "workflow_id": p.workflow_id,
            "batch": p.batch_id,
            "attempt": p.attempt,
            "account": p.account_masked,
            "reason": p.reason or "",
        }
        for p in payments
        if p.status == "returned"
    ]
    returned_wfs = {p["workflow_id"] for p in returned}
    roster = [
        {
            "no": i,
            "name": r.applicant_name,
            "id": r.national_id_masked,
            "village": places.get(r.village_code, r.village_code),
            "township": places.get(r.township_code, r.township_code),
            "university": r.university,
            "amount_cny": r.amount_cny,
            "bank": r.bank_name,
            "account": r.account_masked,
            "stage": r.stage,
        }
        for i, r in enumerate((r for r in rows if r.workflow_id in paid_by_wf), start=1)
    ]
    return SeasonReport(
        programme=programme,
        season=season,
        round=round_,
        county_code=county_code,
        county_name=places.get(county_code, county_code),
        generated_at=datetime.now(UTC),
        as_of=as_of,
        applications=len(rows),
        by_stage=dict(Counter(r.stage for r in rows)),
        by_township=group("township_code"),
        by_village=group("village_code"),
        paid_count=len(paid_by_wf),
        paid_cny=sum(r.amount_cny for r in rows if r.workflow_id in paid_by_wf),
        rejections_by_reason=dict(
            Counter((r.rejection_reason or "—") for r in rows if r.stage == "rejected")
        ),
        objections=dict(objections),
        overdue=overdue,
        overdue_by_date=dict(overdue_by_date),
        returned_payments=returned,
        repaid=len(returned_wfs & paid_by_wf),
        roster=roster,
        received_by_source=dict(received_by_source),
        unclaimed=unclaimed,
        **_coverage(engine, programme, season, county_code, round_),
        ledger_totals=_ledger_totals(engine, season, county_code),
        recoveries=[
            {**r, "village": places.get(r["village"], r["village"])}
            for r in recovery_list(engine, programme, season, county_code, round_)
        ],
    )


def _ledger_totals(engine: Engine, year: int, county_code: str) -> dict[str, dict[str, int]]:
    from store.ledger import build_ledger

    totals: dict[str, dict[str, int]] = {}
    for student in build_ledger(engine, year, county_code).students:
        for programme in {line.programme for line in student.lines}:
            t = totals.setdefault(programme, {"students": 0, "cny": 0})
            t["students"] += 1
        for line in student.lines:
            totals[line.programme]["cny"] += line.amount_cny
    return dict(sorted(totals.items()))


def _coverage(
    engine: Engine, programme: str, season: int, county_code: str, round_: str
) -> dict[str, Any]:
    from models.programmes import BUILTIN_PROGRAMMES
    from store.coverage import coverage

    known = BUILTIN_PROGRAMMES.get(programme)
    if known is None:
        return {}
    found = coverage(engine, known.for_round(round_), season, county_code)
    if found.as_of is None:
        return {}
    return {
        "coverage_as_of": found.as_of.isoformat(),
        "coverage": [
            {
                "village": f"{v.village_name} {v.village_code}".strip(),
                "eligible": v.eligible,
                "applied": v.applied,
                "paid": v.paid,
                "not_applied": len(v.not_applied),
            }
            for v in found.villages
        ],
    }


_TITLES: dict[ReportKind, str] = {
    "payout_date": "at the payout date / 打卡发放截止情况",
    "season_end": "season summary / 工作总结",
    "on_request": "as of now / 即时情况",
}
# The payout date's report keeps the name it always had; the summary has its own.
_STEMS: dict[ReportKind, str] = {
    "payout_date": "season-report",
    "season_end": "season-summary",
    "on_request": "season-now",
}


def to_markdown(r: SeasonReport) -> str:
    out = [
        f"# {r.county_name} {season_label(r.season, r.round)} {r.programme}: {_TITLES[r.as_of]}",
        "",
        f"Generated {r.generated_at.isoformat(timespec='seconds')}. Applications: **{r.applications}**; "
        f"paid: **{r.paid_count}** ({r.paid_cny:,} CNY).",
        "",
        "## By stage",
        "",
        "| stage | applications |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(r.by_stage.items())],
        "",
        *_group_markdown("township", r.by_township),
        *_group_markdown("village", r.by_village),
        "## Rejections by reason",
        "",
        *([f"- {k}: {v}" for k, v in sorted(r.rejections_by_reason.items())] or ["- none"]),
        "",
        "## Objections",
        "",
        *([f"- {k}: {v}" for k, v in sorted(r.objections.items())] or ["- none"]),
        "",
        "## Overdue",
        "",
        *(
            [f"- {k}: {v} application(s)" for k, v in sorted(r.overdue_by_date.items())]
            or ["- none"]
        ),
        *[
            f"  - {o['workflow_id']} ({o['village']}, {o['stage']}): missed {o['missed']}"
            for o in r.overdue
        ],
        "",
        "## Returned payments (退票) and re-payments (补发)",
        "",
        f"Returned: {len(r.returned_payments)}; re-paid since: {r.repaid}.",
        "",
        *[
            f"- {p['workflow_id']} batch {p['batch']} attempt {p['attempt']} ({p['account']}): {p['reason']}"
            for p in r.returned_payments
        ],
        "",
        *(
            [
                "## Signed receipts by funding source / 签领资金来源",
                "",
                *[f"- {k}: {v}" for k, v in sorted(r.received_by_source.items())],
                "",
            ]
            if r.received_by_source
            else []
        ),
        *(
            [
                "## Unclaimed grants / 未签领",
                "",
                *[
                    f"- {u['applicant']} {u['id']} ({u['village']}): {u['amount_cny']:,} CNY, {u['workflow_id']}"
                    for u in r.unclaimed
                ],
                "",
            ]
            if r.unclaimed
            else []
        ),
        *(
            [
                f"## 应补尽补 Coverage (enrolment as of {r.coverage_as_of})",
                "",
                "| village | eligible | applied | paid | not applied |",
                "|---|---:|---:|---:|---:|",
                *[
                    f"| {c['village']} | {c['eligible']} | {c['applied']} | {c['paid']} | {c['not_applied']} |"
                    for c in r.coverage
                ],
                f"| total | {sum(c['eligible'] for c in r.coverage)} | "
                f"{sum(c['applied'] for c in r.coverage)} | {sum(c['paid'] for c in r.coverage)} | "
                f"{sum(c['not_applied'] for c in r.coverage)} |",
                "",
            ]
            if r.coverage_as_of
            else []
        ),
        *(
            [
                f"## {r.season}年度学生资助台账合计 / the year's aid ledger, every programme",
                "",
                "| programme | students | CNY |",
                "|---|---:|---:|",
                *[f"| {k} | {v['students']} | {v['cny']:,} |" for k, v in r.ledger_totals.items()],
                "",
            ]
            if r.ledger_totals
            else []
        ),
        *(
            [
                "## 追回名单 / recovery list (paid grants cancelled)",
                "",
                f"Open: {sum(1 for x in r.recoveries if x['status'] == 'open')} "
                f"({sum(x['amount_cny'] for x in r.recoveries if x['status'] == 'open'):,} CNY); "
                f"recovered: {sum(1 for x in r.recoveries if x['status'] == 'recovered')}.",
                "",
                "| applicant | ID | village | CNY | reason | cancelled | status | reference |",
                "|---|---|---|---:|---|---|---|---|",
                *[
                    f"| {x['applicant']} | {x['id']} | {x['village']} | {x['amount_cny']:,} | "
                    f"{x['reason']} | {x['cancelled_at']} | "
                    f"{'已追回 recovered' if x['status'] == 'recovered' else '待追回 open'} | {x['reference']} |"
                    for x in r.recoveries
                ],
                "",
            ]
            if r.recoveries
            else []
        ),
        "## Final roster / 花名册",
        "",
        "| No. | name | ID | village | township | university | CNY | bank | account |",
        "|---:|---|---|---|---|---|---:|---|---|",
        *[
            f"| {x['no']} | {x['name']} | {x['id']} | {x['village']} | {x['township']} | {x['university']} | {x['amount_cny']:,} | {x['bank']} | {x['account']} |"
            for x in r.roster
        ],
        "",
    ]
    return "\n".join(out)


def write_report(r: SeasonReport, out_dir: Path) -> ReportFiles:
    import xlsxwriter

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{_STEMS[r.as_of]}-{r.programme}-{season_label(r.season, r.round)}-{r.county_code}"
    md = out_dir / f"{stem}.md"
    md.write_text(to_markdown(r), encoding="utf-8")
    xlsx = out_dir / f"{stem}.xlsx"
    wb = xlsxwriter.Workbook(str(xlsx), WORKBOOK_OPTIONS)
    bold = wb.add_format({"bold": True})

    def sheet(name: str, header: list[str], rows: list[list[Any]]) -> None:
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, header, bold)
        for i, row in enumerate(rows, start=1):
            ws.write_row(i, 0, cells.row(row))
        ws.set_column(0, len(header), 18)

    sheet(
        "summary",
        ["item", "value"],
        [
            ["report", _TITLES[r.as_of]],
            ["generated", r.generated_at.isoformat(timespec="seconds")],
            ["applications", r.applications],
            ["paid", r.paid_count],
            ["paid CNY", r.paid_cny],
            *[[f"stage {k}", v] for k, v in sorted(r.by_stage.items())],
        ],
    )
    for name, groups in (("townships", r.by_township), ("villages", r.by_village)):
        sheet(name, _GROUP_COLUMNS, [[g[k] for k in _GROUP_KEYS] for g in groups])
    sheet(
        "rejections",
        ["reason", "count"],
        [[k, v] for k, v in sorted(r.rejections_by_reason.items())],
    )
    sheet("objections", ["outcome", "count"], [[k, v] for k, v in sorted(r.objections.items())])
    sheet(
        "overdue",
        ["workflow id", "applicant", "village", "stage", "missed"],
        [
            [o["workflow_id"], o["applicant"], o["village"], o["stage"], o["missed"]]
            for o in r.overdue
        ],
    )
    sheet(
        "returned",
        ["workflow id", "batch", "attempt", "account", "reason"],
        [
            [p["workflow_id"], p["batch"], p["attempt"], p["account"], p["reason"]]
            for p in r.returned_payments
        ],
    )
    if r.coverage_as_of:
        sheet(
            "coverage",
            ["village", "eligible", "applied", "paid", "not applied"],
            [
                [c["village"], c["eligible"], c["applied"], c["paid"], c["not_applied"]]
                for c in r.coverage
            ],
        )
    if r.recoveries:
        sheet(
            "recovery",
            [
                "workflow id",
                "applicant",
                "ID",
                "village",
                "CNY",
                "reason",
                "cancelled",
                "status",
                "reference",
            ],
            [
                [
                    x["workflow_id"],
                    x["applicant"],
                    x["id"],
                    x["village"],
                    x["amount_cny"],
                    x["reason"],
                    x["cancelled_at"],
                    x["status"],
                    x["reference"],
                ]
                for x in r.recoveries
            ],
        )
    sheet(
        "roster",
        ["No.", "name", "ID", "village", "township", "university", "CNY", "bank", "account"],
        [
            [
                x["no"],
                x["name"],
                x["id"],
                x["village"],
                x["township"],
                x["university"],
                x["amount_cny"],
                x["bank"],
                x["account"],
            ]
            for x in r.roster
        ],
    )
    wb.close()
    return ReportFiles(xlsx=str(xlsx), markdown=str(md), as_of=r.as_of)


class ReportActivities:
    def __init__(self, engine: Engine, files_dir: Path) -> None:
        self._engine = engine
        self._files = files_dir

    @activity.defn(name="build_season_report")
    def build_season_report(self, req: ReportRequest) -> ReportFiles:
        report = build_report(
            self._engine, req.programme, req.season, req.county_code, req.as_of, req.round
        )
        return write_report(report, self._files / "reports")

    @activity.defn(name="count_open_applications")
    def count_open_applications(self, req: OpenApplicationsRequest) -> int:
        """The season's applications at one of ``stages``: those still on their way to
        its funds keep it open past its summary date."""
        with Session(self._engine) as s:
            return s.exec(
                select(func.count())
                .select_from(ApplicationRow)
                .where(
                    ApplicationRow.programme == req.programme,
                    ApplicationRow.season == req.season,
                    ApplicationRow.round == req.round,
                    ApplicationRow.county_code == req.county_code,
                    col(ApplicationRow.stage).in_(req.stages),
                )
            ).one()

    @activity.defn(name="send_coverage_reminders")
    def send_coverage_reminders(self, req: CoverageReminderRequest) -> int:
        """Before the window closes: each village committee with eligible students who
        have not applied is told who they are (masked, R9), once. The villages told."""
        from store.coverage import coverage

        found = coverage(self._engine, req.programme, req.season, req.county_code)
        closes = req.programme.window_closes
        now = datetime.now(UTC)
        season = season_label(req.season, req.programme.round_key)
        told = 0
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            for v in found.villages:
                if not v.not_applied:
                    continue
                key = f"season/{req.programme.code}/{season}/{req.county_code}/coverage/{v.village_code}"
                if s.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).first():
                    continue
                subject, body = render(
                    "coverage_reminder",
                    {
                        "season": req.season,
                        "programme": req.programme.name_zh,
                        "closes": f"{closes.month}月{closes.day}日",
                        "count": len(v.not_applied),
                        "students": "、".join(f"{n}（{m}）" for m, n in v.not_applied),
                    },
                    role=Role.VILLAGE_COMMITTEE,
                )
                s.add(
                    OutboxMessage(
                        dedupe_key=key,
                        channel="default",
                        recipient=f"{Role.VILLAGE_COMMITTEE.value}@{v.village_code}",
                        subject=subject,
                        body=mask_sensitive_text(body),
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
                told += 1
        activity.logger.info("coverage reminders", extra={"villages": told})
        return told

    @activity.defn(name="send_round_opened")
    def send_round_opened(self, req: RoundOpenedNotice) -> int:
        """The round is open: each township office of the county is told (once); the
        townships told."""
        subject, body = _round_opened_text(req)
        now = datetime.now(UTC)
        season = season_label(req.season, req.programme.round_key)
        county = req.county_code
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            townships = _places_of(s, county, Level.TOWNSHIP) or []
            for code in townships:
                key = f"season/{req.programme.code}/{season}/{county}/opened/{code}"
                role = Role.TOWNSHIP_POVERTY_OFFICE.value
                _tell_once(s, key, f"{role}@{code}", subject, body, now)
        return len(townships)

    @activity.defn(name="send_task_notice")
    def send_task_notice(self, req: TaskNoticeRequest) -> None:
        """A dated task's reminder, or the word that it is overdue: to its responsible
        office and the programme's always-told offices, once each (a retry adds nothing)."""
        task = req.plan.task(req.key)
        subject, body = render(
            f"task_{req.kind}",
            {
                "date": task.label_zh,
                "on": f"{task.on.month}月{task.on.day}日",
                "programme": req.plan.name_zh,
                "season": req.year,
            },
        )
        now = datetime.now(UTC)
        told = [task.responsible.value, *(r.value for r in req.plan.always_told)]
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            for i, role in enumerate(dict.fromkeys(told)):
                key = f"tasks/{req.plan.code}/{req.year}/{req.county_code}/{req.key}/{req.kind}/{i}"
                _tell_once(s, key, f"{role}@{req.county_code}", subject, body, now)

    @activity.defn(name="send_season_reminder")
    def send_season_reminder(self, req: ReminderRequest) -> None:
        """Before a fixed date: the responsible office and the county are reminded (once)."""
        fixed = req.programme.fixed_date(req.fixed_date_key)
        county = req.county_code
        params = {
            "date": fixed.label_zh,
            "on": f"{fixed.on.month}月{fixed.on.day}日",
            "programme": req.programme.name_zh,
            "season": req.season,
        }
        now = datetime.now(UTC)
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            told = [fixed.responsible, *req.programme.always_told]
            season = season_label(req.season, req.programme.round_key)
            for i, role in enumerate(dict.fromkeys(told)):
                # Each office addressed by its name (it read "：…" before).
                subject, body = render("season_reminder", params, role=role)
                key = f"season/{req.programme.code}/{season}/{county}/reminder/{req.fixed_date_key}/{i}"
                places = _places_of(s, county, level_of(role))
                if places is None:  # an office of the county (or one with no place here)
                    _tell_once(s, key, f"{role.value}@{county}", subject, body, now)
                    continue
                # A township's or a village's office: each of the county's, at its own
                # place (the county's mailbox is not theirs).
                for code in places:
                    _tell_once(s, f"{key}/{code}", f"{role.value}@{code}", subject, body, now)


def _places_of(s: Session, county: str, level: Level) -> list[str] | None:
    """The county's townships or villages (by code); None for any other level."""
    townships = select(Place.code).where(Place.parent_code == county, Place.level == "township")
    if level is Level.TOWNSHIP:
        return list(s.exec(townships).all())
    if level is Level.VILLAGE:
        villages = select(Place.code).where(
            col(Place.parent_code).in_(townships), Place.level == "village"
        )
        return list(s.exec(villages).all())
    return None


def _round_opened_text(req: RoundOpenedNotice) -> tuple[str, str]:
    return render(
        "round_opened",
        {
            "programme": req.programme.name_zh,
            "season": season_label(req.season, req.programme.round_key),
            "national": req.national_opened_on,
            "closes": f"{req.programme.window_closes.month}月{req.programme.window_closes.day}日",
        },
        role=Role.TOWNSHIP_POVERTY_OFFICE,
    )


def _tell_once(
    s: Session, key: str, recipient: str, subject: str, body: str, now: datetime
) -> None:
    """An office's message into the outbox, once for its key (a retry adds nothing)."""
    put_once(
        s.connection(),
        key=key,
        workflow_id=None,
        recipient=recipient,
        subject=subject,
        body=body,
        at=now,
    )
