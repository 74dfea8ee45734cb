"""The county's read-only dashboard (Chinese first, English labels): per programme and
season, counts by stage per township and village, the overdue and at-risk applications
with what they wait for, the fixed dates ahead and whether they will be met, and a
chart of progress over time.

It reads the read model and the audit log (never Temporal) and shows no name and no
identity or account number: applications are named by their workflow id's hash part.
A browser opens it with a signed link (``aidflow dashboard``: the county, programme,
season and an expiry, HMAC-signed with the deployment's authority key); a service
with a county credential may send its key instead.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.calendar import WorkingCalendar
from models.domain import ROLE_LEVEL, ROLE_NAME_ZH, STAGE_NAME_EN, STAGE_NAME_ZH, Level
from models.planner import plan_season
from models.programme import Programme
from models.season import SeasonKey
from store.chain import utc
from store.tables import ApplicationRow, AuditEntry, Place
from workers.gateway.auth import API_KEY_HEADER, BEARER, OPTIONAL_CREDENTIAL
from workers.gateway.problems import Problem

# Stages an application ends in without being done (the programme's done stage is the third).
_ENDS = ("rejected", "withdrawn")


def link_signature(key: bytes, county: str, programme: str, season: str, expires: int) -> str:
    data = f"aidflow/dashboard/v1\x00{county}\x00{programme}\x00{season}\x00{expires}"
    return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()


def signed_link(
    base_url: str, key: bytes, *, county: str, programme: str, season: str, valid: timedelta
) -> str:
    expires = int((datetime.now(UTC) + valid).timestamp())
    query = {
        "county": county,
        "programme": programme,
        "season": season,
        "expires": expires,
        "sig": link_signature(key, county, programme, season, expires),
    }
    return f"{base_url.rstrip('/')}/dashboard?{urlencode(query)}"


def router(
    engine: Engine,
    authority_key: bytes,
    programmes: dict[str, Programme],
    calendar: WorkingCalendar,
) -> APIRouter:
    r = APIRouter()

    # A signed link or a county office's key: the credential is optional in the document.
    @r.get(
        "/dashboard",
        response_class=HTMLResponse,
        tags=["reading"],
        openapi_extra=OPTIONAL_CREDENTIAL,
    )
    async def dashboard(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        _api_key: Annotated[str | None, Security(API_KEY_HEADER)],
        county: str = Query(pattern=r"^\d{12}$"),
        programme: str = Query("county-subsidy", max_length=40),
        season: str = Query(pattern=r"^\d{4}(-[a-z]{1,16})?$"),
        expires: int | None = None,
        sig: str | None = Query(None, pattern=r"^[0-9a-f]{64}$"),
    ) -> HTMLResponse:
        """县级看板 / the county dashboard (HTML)."""
        if sig is not None and expires is not None:
            good = link_signature(authority_key, county, programme, season, expires)
            if not hmac.compare_digest(sig.encode(), good.encode()):
                raise Problem(403, "the dashboard link is not signed by this deployment")
            if datetime.now(UTC).timestamp() > expires:
                raise Problem(403, "the dashboard link has expired: ask for a new one")
        else:
            who = request.app.state.auth.caller(request)
            if ROLE_LEVEL.get(who.role) is not Level.COUNTY or who.binding.place_code != county:
                raise Problem(403, "the dashboard is the county's: a county office's key")
        known = programmes.get(programme)
        if known is None:
            raise Problem(404, f"no programme {programme}")
        key = SeasonKey.parse(season)
        page = render(engine, known.for_round(key.round), key, county, calendar)
        return HTMLResponse(page)

    return r


def _rows(engine: Engine, programme: str, key: SeasonKey, county: str) -> list[ApplicationRow]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(ApplicationRow).where(
                    ApplicationRow.programme == programme,
                    ApplicationRow.season == key.year,
                    ApplicationRow.round == key.round,
                    ApplicationRow.county_code == county,
                )
            )
        )


def _progress(
    engine: Engine, programme: Programme, ids: list[str], calendar: WorkingCalendar
) -> dict[date, Counter[str]]:
    """Per day (Beijing time): how many applications were submitted, decided by the county
    (passed their last review) and done, as the audit log records it."""
    days: dict[date, Counter[str]] = defaultdict(Counter)
    if not ids:
        return days
    with Session(engine) as s:
        for e in s.exec(
            select(AuditEntry).where(
                col(AuditEntry.workflow_id).in_(ids),
                col(AuditEntry.kind).in_(("submitted", "stage_entered")),
            )
        ):
            # On the programme's calendar (a compressed demo day is seconds long).
            day = calendar.clock_of(utc(e.at)).date()
            if e.kind == "submitted":
                days[day]["submitted"] += 1
            elif e.stage == programme.done_stage:
                days[day]["done"] += 1
            elif e.stage == programme.approved_stage:
                days[day]["approved"] += 1
    return days


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _stage(stage: str) -> str:
    return f"{_e(STAGE_NAME_ZH.get(stage, stage))} <small>{_e(STAGE_NAME_EN.get(stage, stage))}</small>"


def render(
    engine: Engine, programme: Programme, key: SeasonKey, county: str, calendar: WorkingCalendar
) -> str:
    rows = _rows(engine, programme.code, key, county)
    stages = [s.stage for s in programme.steps]
    closed = (*_ENDS, programme.done_stage)
    columns = [*programme.stages(), *closed]
    columns = list(
        dict.fromkeys(
            c for c in columns if c in stages or any(r.stage == c for r in rows) or c in closed
        )
    )
    by_place: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_place[(row.township_code, row.village_code)][row.stage] += 1
    totals = Counter(r.stage for r in rows)
    role_of = {s.stage: s.actor_role for s in programme.steps}
    plan = plan_season(programme, key.year, calendar)
    now = datetime.now(UTC)

    head = "".join(f"<th>{_stage(c)}</th>" for c in columns)
    with Session(engine) as session:
        names = {p.code: p.name for p in session.exec(select(Place))}

    def place(code: str) -> str:
        return f"{_e(names.get(code, ''))} <small>{_e(code)}</small>"

    body = []
    for (township, village), counts in sorted(by_place.items()):
        cells = "".join(f"<td class='n'>{counts.get(c, 0) or ''}</td>" for c in columns)
        body.append(
            f"<tr><td>{_e(township)}</td><td>{_e(village)}</td>{cells}<td class='n'>{sum(counts.values())}</td></tr>"
        )
    total_cells = "".join(
        f"<td class='n' data-stage='{_e(c)}'>{totals.get(c, 0)}</td>" for c in columns
    )

    watch = []
    for row in sorted(rows, key=lambda r: (not r.overdue, r.next_deadline or now)):
        if row.stage in closed or not (row.overdue or row.at_risk):
            continue
        role = role_of.get(row.stage)
        waiting = (
            f"{_e(ROLE_NAME_ZH.get(role, ''))} <small>{_e(role.value if role else '-')}</small>"
            if role
            else "-"
        )
        flag = "逾期 <small>overdue</small>" if row.overdue else "有风险 <small>at risk</small>"
        until = (
            calendar.clock_of(utc(row.next_deadline)).strftime("%Y-%m-%d %H:%M")
            if row.next_deadline
            else "-"
        )
        watch.append(
            f"<tr class='{'overdue' if row.overdue else 'risk'}'><td>{_e(row.workflow_id.rsplit('/', 1)[-1][:10])}</td>"
            f"<td>{place(row.village_code)}</td><td>{_stage(row.stage)}</td><td>{waiting}</td>"
            f"<td>{_e(until)}</td><td>{flag}</td><td>{_e(', '.join(row.overdue_dates))}</td></tr>"
        )

    overdue_by_date = Counter(d for r in rows for d in r.overdue_dates)
    dates = []
    for d in plan.fixed_dates:
        past = d.due_at <= now
        if d.met is None:
            verdict = "-"
        elif overdue_by_date.get(d.key):
            verdict = f"<b class='bad'>未按期 missed by {overdue_by_date[d.key]}</b>"
        elif past:
            verdict = "<span class='ok'>已按期 met</span>"
        else:
            verdict = (
                "<span class='ok'>可按期 will be met</span>"
                if d.met
                else "<b class='bad'>难以按期 at risk</b>"
            )
        dates.append(
            f"<tr><td>{_e(d.date.isoformat())}</td><td>{_e(d.label_zh)} <small>{_e(d.label_en)}</small></td><td>{verdict}</td></tr>"
        )

    chart = _chart(_progress(engine, programme, [r.workflow_id for r in rows], calendar), len(rows))
    open_count = sum(1 for r in rows if r.stage not in closed)
    done = totals.get(programme.done_stage, 0)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{_e(programme.name_zh)} {key} · 县级看板 / county dashboard</title>
<style>
body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}} td,th{{border:1px solid #ccc;padding:.25em .5em}}
th{{background:#f3f3f3;font-weight:600}} small{{color:#666;font-weight:normal}} .n{{text-align:right}}
.overdue{{background:#fde8e8}} .risk{{background:#fff6db}} .bad{{color:#b00}} .ok{{color:#080}}
.kpi span{{display:inline-block;margin-right:2em;font-size:1.2em}}
</style></head><body>
<h1>{_e(programme.name_zh)} {key} 县级看板 <small>{_e(programme.name_en)} · county dashboard · {_e(county)}</small></h1>
<p class="kpi"><span id="total">申请 <small>applications</small> <b>{len(rows)}</b></span>
<span id="open">办理中 <small>open</small> <b>{open_count}</b></span>
<span id="done">已办结 <small>done</small> <b>{done}</b></span>
<span id="rejected">未通过 <small>rejected</small> <b>{totals.get("rejected", 0)}</b></span>
<span id="overdue">逾期 <small>overdue</small> <b>{sum(1 for r in rows if r.overdue and r.stage not in closed)}</b></span></p>
<h2>各乡镇、村办理进度 <small>by township and village, applications per stage</small></h2>
<table id="stages"><tr><th>乡镇 <small>township</small></th><th>村 <small>village</small></th>{head}<th>合计 <small>total</small></th></tr>
{"".join(body)}
<tr><th colspan="2">合计 <small>total</small></th>{total_cells}<td class='n'>{len(rows)}</td></tr></table>
<h2>逾期与有风险的申请 <small>overdue and at-risk applications</small></h2>
<table id="watch"><tr><th>申请 <small>application</small></th><th>村 <small>village</small></th><th>环节 <small>stage</small></th><th>等待 <small>waiting for</small></th><th>期限 <small>until</small></th><th></th><th>逾期节点 <small>missed dates</small></th></tr>
{"".join(watch) or "<tr><td colspan='7'>无 <small>none</small></td></tr>"}</table>
<h2>时间节点 <small>fixed dates</small></h2>
<table id="dates"><tr><th>日期 <small>date</small></th><th>节点 <small>what</small></th><th>能否按期 <small>met?</small></th></tr>{"".join(dates)}</table>
<h2>进度 <small>progress over time (cumulative)</small></h2>
{chart}
<p><small>截至 as of {_e(calendar.clock_of(now).strftime("%Y-%m-%d %H:%M"))}（{_e(calendar.name)}, 北京时间 Beijing time）· aidflow</small></p>
</body></html>"""


def _chart(days: dict[date, Counter[str]], total: int) -> str:
    """An inline SVG of cumulative counts per day: submitted, approved, done."""
    if not days:
        return "<p>尚无记录 <small>no events yet</small></p>"
    series = (
        ("submitted", "已受理 submitted", "#888"),
        ("approved", "县级审批通过 approved", "#36c"),
        ("done", "已发放 done", "#080"),
    )
    ordered = sorted(days)
    width, height, pad = 640, 220, 30
    span = max((ordered[-1] - ordered[0]).days, 1)
    top = max(total, 1)
    lines = []
    for n, (name, label, colour) in enumerate(series):
        running, points = 0, []
        for d in ordered:
            running += days[d][name]
            x = pad + (width - 2 * pad) * (d - ordered[0]).days / span
            y = height - pad - (height - 2 * pad) * running / top
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{' '.join(points)}'/>"
            f"<text x='{width - pad + 4}' y='{float(points[-1].split(',')[1]) + 12 * n:.1f}' font-size='11' fill='{colour}' data-series='{name}' data-value='{running}'>{_e(label)} {running}</text>"
        )
    axis = (
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#999'/>"
        f"<text x='{pad}' y='{height - 8}' font-size='11'>{ordered[0].isoformat()}</text>"
        f"<text x='{width - pad - 60}' y='{height - 8}' font-size='11'>{ordered[-1].isoformat()}</text>"
    )
    return f"<svg id='progress' width='{width + 160}' height='{height}' role='img' aria-label='progress'>{axis}{''.join(lines)}</svg>"
