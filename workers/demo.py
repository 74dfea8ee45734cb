"""``aidflow demo``: a live season on the embedded stack, to watch in the Temporal Web UI.

The real programme, workflows, activities, database and bank files; only the
calendar is compressed (one calendar day lasts ``day_seconds``; weekends and
holidays keep their shape) and the window is a week long, so the season fits in
about ten minutes. Simulated officials act through the same client API services
use: mostly approvals, some rejections, returns for correction and objections;
the bank returns a few payments, which the villages correct and are re-paid.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from models.application import Actor, ApplicationStatus, Consent
from models.calendar import CompressedCalendar, WorkingCalendar, next_working_day_at
from models.domain import ROLE_NAME_ZH, Role
from models.planner import CENTRE_OPENS
from models.programme import FundsStep, Programme
from models.programmes import BUILTIN_PROGRAMMES, DEMO_VARIANTS
from store.loans import Loans
from store.registry import RegistryReader
from workers.client import AidflowClient, Refused
from workers.embedded import RunningStack, embedded_stack
from workers.gateway import create_app
from workers.gateway.offices import Offices
from workers.gateway.serving import serving_app
from workers.officials import desk_at, people
from workers.settings import Settings
from workers.synthetic import applicants, load_sample_county, school_actor

SEASON = 2026
ENDS = ("rejected", "withdrawn")


def stage_order(programme: Programme) -> list[str]:
    """The programme's stages in order, then the ends (for the demo's table)."""
    return [*programme.stages(), programme.done_stage, *ENDS]


@dataclass
class DemoResult:
    statuses: dict[str, str]
    roster: str | None
    report_md: str | None
    report_xlsx: str | None
    seconds: float
    # What the county dashboard needs to show this season again (tests render it).
    programme: Programme | None = None
    county: str = ""
    calendar: WorkingCalendar | None = None


@dataclass
class Officials:
    """The county's people, acting on what each application waits for: the floor the
    step desks of ``workers/officials`` act on, in real (compressed) time."""

    api: Offices
    calendar: CompressedCalendar
    rng: random.Random
    county: str
    programme: Programme
    seed: int = 7
    return_rate: float = 0.10
    due_at: dict[tuple[str, str, int], datetime] = field(default_factory=dict)
    visits: Counter[tuple[str, str]] = field(default_factory=Counter)
    objection_targets: set[str] = field(default_factory=set)
    funds_request: str | None = None
    funds_total: int = 0
    funds_arrive_at: datetime | None = None
    funds_arrived: bool = False
    log: list[str] = field(default_factory=list)

    def days(self, lo: float, hi: float) -> timedelta:
        return timedelta(seconds=self.rng.uniform(lo, hi) * self.calendar.day_seconds)

    # The floor (workers/officials/base.Floor).

    def rejection_rate(self, first: bool) -> float:
        return 0.06 if first else 0.04

    def due(self, st: ApplicationStatus, what: str, lo: float, hi: float) -> bool:
        """True once this visit's (random) delay has passed; drawn the first time asked."""
        key = (st.workflow_id, what, self.visit(st, what))
        now = datetime.now(UTC)
        if key not in self.due_at:
            self.due_at[key] = now + self.days(lo, hi)
        return now >= self.due_at[key]

    def draw(self, st: ApplicationStatus, what: str) -> random.Random:
        # Each decision its own stream, keyed by application, act and visit: who is
        # approved depends on the seed, not on how the officials' polls interleave
        # on a busy machine (only the delays share one stream).
        return random.Random(f"{self.seed}/{st.workflow_id}/{what}/{self.visit(st, what)}")

    def visit(self, st: ApplicationStatus, what: str) -> int:
        return self.visits[(st.workflow_id, what)]

    def request_id(self, st: ApplicationStatus, what: str) -> str:
        return uuid.uuid4().hex

    def sent(self, st: ApplicationStatus, what: str, note: str) -> None:
        self.visits[(st.workflow_id, what)] += 1
        self.log.append(f"{st.workflow_id[-6:]}: {note}")

    def objects(self, st: ApplicationStatus) -> bool:
        return st.workflow_id in self.objection_targets

    def upholds(self, st: ApplicationStatus, objection_id: str) -> bool:
        return sorted(self.objection_targets)[0] == st.workflow_id

    async def act(self, st: ApplicationStatus) -> None:
        """Whoever the application's current step waits for acts on it, after a while."""
        desk = desk_at(self.programme, st.stage)
        if desk is None:
            return
        try:
            await desk.act(self, st)
        except Refused as r:
            self.log.append(f"{st.workflow_id[-6:]}: refused: {r}")

    async def county_funds(self, statuses: dict[str, ApplicationStatus]) -> None:
        """The bureau asks for the funds once nothing is left before county approval; finance pays a day later."""
        funds = self.programme.find_step(FundsStep)
        if funds is None:
            return  # paid without a funds request (by signature)
        stages = Counter(s.stage for s in statuses.values())
        earlier = [s.stage for s in self.programme.steps[: self.programme.step_index(funds.stage)]]
        before = sum(stages[s] for s in earlier)
        if self.funds_request is None and stages[funds.stage] and before == 0:
            bureau = people.county_office(funds.requested_by, self.county)
            summary = await self.api.request_funds(
                self.programme.code, SEASON, self.county, bureau, round_=self.programme.round_key
            )
            self.funds_request, self.funds_total = summary.request_id, summary.total_cny
            self.funds_arrive_at = datetime.now(UTC) + self.days(1, 1.5)
            self.log.append(
                f"{ROLE_NAME_ZH.get(funds.requested_by, '')}资金申请 {summary.request_id}: {summary.count} 人 {summary.total_cny} 元; roster {summary.roster_path}"
            )
        if (
            self.funds_request
            and not self.funds_arrived
            and self.funds_arrive_at
            and datetime.now(UTC) >= self.funds_arrive_at
        ):
            finance = people.county_office(Role.COUNTY_FINANCE, self.county)
            result = await self.api.funds_arrived(
                self.programme.code,
                SEASON,
                self.county,
                finance,
                self.funds_request,
                self.funds_total,
                f"CZ{SEASON}-001",
                round_=self.programme.round_key,
            )
            self.funds_arrived = True
            self.log.append(
                f"资金到位 / funds arrived: {result.released} released, batch {result.batch_id}"
            )


def demo_settings(
    base: Settings,
    day_seconds: float,
    data_dir: Path | None = None,
    first_day: date = date(SEASON, 8, 1),
) -> Settings:
    epoch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    return base.model_copy(
        update={
            "data_dir": data_dir or base.data_dir / "demo",
            "calendar": "compressed",
            "calendar_epoch": epoch,
            "calendar_base_day": first_day,
            "calendar_day_seconds": day_seconds,
            "bank": "simulated",
            "bank_sim_delay_seconds": min(day_seconds, 5.0),
        }
    )


async def run_demo(
    base: Settings,
    *,
    applicants_count: int = 50,
    day_seconds: float = 10.0,
    seed: int = 7,
    console: Console | None = None,
    exit_when_done: bool = False,
    data_dir: Path | None = None,
    programme: str = "county-subsidy",
) -> DemoResult:
    console = console or Console()
    demo_programme = DEMO_VARIANTS[f"{programme}-demo"]
    if demo_programme.rounds:  # a programme with rounds: the demo runs its first
        demo_programme = demo_programme.for_round(demo_programme.rounds[0].key)
    first_day = demo_programme.window_opens.in_year(SEASON)
    settings = demo_settings(base, day_seconds, data_dir, first_day)
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # a demo starts from nothing
    rng = random.Random(seed)
    forms = applicants(applicants_count, SEASON, seed, programme=demo_programme)
    # The bank returns a few payments (closed accounts); the villages correct them.
    returned = rng.sample(range(applicants_count), k=max(2, applicants_count // 10))
    settings = settings.model_copy(
        update={"bank_sim_closed_suffixes": [forms[i].account_number[-6:] for i in returned]}
    )
    started = datetime.now(UTC)
    async with embedded_stack(settings) as stack:
        return await _drive(
            stack, settings, demo_programme, forms, rng, console, started, exit_when_done
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def _drive(
    stack: RunningStack,
    settings: Settings,
    programme: Programme,
    forms: list[Any],
    rng: random.Random,
    console: Console,
    started: datetime,
    exit_when_done: bool,
) -> DemoResult:
    from store.sealing import Keys

    deps = stack.deps
    calendar = deps.calendar
    assert isinstance(calendar, CompressedCalendar)
    keys = Keys(settings.secret_key_bytes())
    load_sample_county(deps.engine, forms, SEASON, keys.hash_id)
    api = AidflowClient(
        stack.client,
        task_queue=settings.task_queue,
        keys=keys,
        calendar=calendar,
        programmes=dict(BUILTIN_PROGRAMMES),
        lookup_member=RegistryReader(deps.engine).lookup,
        lookup_applications=RegistryReader(deps.engine).applications,
        claim_application=RegistryReader(deps.engine).claim,
        loans=Loans(deps.engine),
    )
    api.repayment_batch_delay = timedelta(seconds=calendar.day_seconds)
    # The officials act as the county's systems would: over HTTP, each office with its
    # own credential (R10); the gateway shares this process's client API.
    async with (
        serving_app(create_app(api, deps.engine, keys, deps.files_dir)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        offices = Offices(http, deps.engine, keys.authority)
        return await _season(
            stack, programme, forms, rng, console, started, exit_when_done, api, offices
        )


async def _season(
    stack: RunningStack,
    programme: Programme,
    forms: list[Any],
    rng: random.Random,
    console: Console,
    started: datetime,
    exit_when_done: bool,
    api: AidflowClient,
    offices: Offices,
) -> DemoResult:
    calendar = stack.deps.calendar
    assert isinstance(calendar, CompressedCalendar)
    county = forms[0].places.county_code
    # The county's office reads every application of the county (over HTTP, R10).
    reader = people.county_office(Role.COUNTY_EDUCATION_BUREAU, county)
    officials = Officials(
        api=offices,
        calendar=calendar,
        rng=rng,
        county=county,
        programme=programme,
        seed=rng.getrandbits(32),  # drawn before anything runs concurrently
    )
    first_day = programme.window_opens.in_year(SEASON)
    if programme.opened_by is not None:
        # Rain and Dew: the county poverty office opens the round (the national system
        # has), and the townships are told, before anyone can apply.
        await offices.open_round(
            programme.code,
            SEASON,
            county,
            people.county_office(programme.opened_by, county),
            first_day,
            round_=programme.round_key,
        )
    ends = {programme.done_stage, *ENDS}
    # Applicants come in over the first five days of the one-week window.
    submit_at = sorted(calendar.day_start(first_day) + officials.days(0.05, 5) for _ in forms)
    if programme.loan is not None:  # the centre takes them in person, on working days (R1)
        submit_at = sorted(
            t
            if calendar.is_working_day(calendar.day_of(t))
            else next_working_day_at(calendar, t, CENTRE_OPENS)
            for t in submit_at
        )
    pending = list(zip(submit_at, forms, strict=True))
    workflow_ids: list[str] = []
    statuses: dict[str, ApplicationStatus] = {}

    def view() -> Group:
        today = calendar.clock_of(datetime.now(UTC))
        counts = Counter(s.stage for s in statuses.values())
        table = Table(
            title=f"aidflow demo · {programme.name_zh} {SEASON} · 演示日期 {today:%Y-%m-%d %a %H:%M}"
        )
        table.add_column("stage")
        table.add_column("applications", justify="right")
        table.add_column("overdue", justify="right")
        for stage in stage_order(programme):
            od = sum(1 for s in statuses.values() if s.stage == stage and s.overdue)
            table.add_row(stage, str(counts.get(stage, 0)), str(od) if od else "")
        table.add_row("[dim]not yet submitted[/dim]", str(len(pending)), "")
        info = Panel.fit(
            f"Web UI: [link]{stack.server.ui_url}[/link]   (one calendar day = {calendar.day_seconds:g} s)\n"
            + "\n".join(officials.log[-8:]),
            title="what is happening",
        )
        return Group(table, info)

    async def arrivals() -> None:
        """Families arrive on their own time, not between the officials' rounds (a busy
        machine slows the rounds, not the arrivals: the window closes on the calendar)."""
        while pending:
            at, f = pending[0]
            await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
            pending.pop(0)
            try:
                # A school submits its students, an office enters its roster;
                # otherwise the village office receives the family's form.
                by = _submitter(programme, f)
                if by.role in programme.on_behalf_with_consent:
                    # For the family, with its consent (Rain and Dew), given that day.
                    f = f.model_copy(update={"consent": _consent(f, datetime.now(UTC))})
                wf = await offices.submit(f, submitted_by=by)
                workflow_ids.append(wf)
                if len(workflow_ids) % 12 == 3:
                    officials.objection_targets.add(wf)
            except Refused as r:
                officials.log.append(f"intake refused: {r}")

    report = None
    arriving = asyncio.create_task(arrivals())
    try:
        with Live(view(), console=console, refresh_per_second=2, transient=False) as live:
            while not stack.stop.is_set():
                if arriving.done():
                    arriving.result()  # an intake that failed for another reason than a refusal
                ids = list(workflow_ids)  # arrivals go on meanwhile
                results = await asyncio.gather(
                    *(offices.status(wf, reader) for wf in ids), return_exceptions=True
                )
                for wf, st in zip(ids, results, strict=True):
                    if isinstance(st, ApplicationStatus):
                        statuses[wf] = st
                await asyncio.gather(
                    *(officials.act(st) for st in statuses.values() if st.stage not in ends)
                )
                try:
                    await officials.county_funds(statuses)
                except Refused as r:
                    officials.log.append(f"funds refused: {r}")
                if arriving.done() and statuses and all(s.stage in ends for s in statuses.values()):
                    report = await offices.season_report(
                        programme.code, SEASON, county, reader, round_=programme.round_key
                    )
                    if report is not None:
                        live.update(view())
                        break
                live.update(view())
                await asyncio.sleep(0.5)
    finally:
        arriving.cancel()  # stopped (Ctrl-C or a failure) before every family had applied
    seconds = (datetime.now(UTC) - started).total_seconds()
    roster = next(
        (line.split("roster ", 1)[1] for line in officials.log if "roster " in line), None
    )
    if report is not None:
        console.print(
            Panel.fit(
                f"Finished in {seconds:.0f} s.\nRoster (花名册): {roster}\n"
                f"{_REPORT_LABELS[report.as_of]}: {report.markdown}\n"
                f"                {report.xlsx}\nWeb UI: {stack.server.ui_url}",
                title="demo finished",
            )
        )
        if not exit_when_done:
            console.print("The stack stays up for you to explore. Ctrl-C stops it.")
            await stack.stop.wait()
    return DemoResult(
        statuses={k: v.stage for k, v in statuses.items()},
        roster=roster,
        report_md=report.markdown if report else None,
        report_xlsx=report.xlsx if report else None,
        seconds=seconds,
        programme=programme,
        county=county,
        calendar=calendar,
    )


def _submitter(programme: Programme, form: Any) -> Actor:
    role = programme.submitted_by[0]
    if role is Role.HIGH_SCHOOL:
        return school_actor(form.places.school_code)
    if role is Role.APPLICANT:
        return people.official(Role.VILLAGE_COMMITTEE, form.places)
    return people.official(role, form.places)


def _consent(form: Any, at: datetime) -> Consent:
    return Consent(given_by=form.account_holder, relation="家长", given_at=at, how="signed_form")


_REPORT_LABELS = {
    "payout_date": "Season report at the payout date (the summary follows when the season "
    "closes, after its summary date)",
    "season_end": "Season summary",
}
