"""The simulated season: events in time order, the county's own acts (funds, payout
dates, re-payments), the applications' steps acted on by their desks."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.service import RPCError

from models.application import Actor, ApplicationStatus
from models.calendar import WorkingCalendar, end_of_day
from models.domain import Role
from models.planner import window
from models.programme import FundsStep, Programme
from models.programmes import COUNTY_SUBSIDY
from store.status import read_status
from store.tables import ApplicationRow
from workers.client import AidflowClient, Refused, query_when_ready
from workers.client.errors import BUSY
from workers.officials import Case, NoticePlan, SimulationStalled, desk_for, people
from workers.officials.base import shown_within
from workers.officials.notice import POSTING
from workers.simulate.clocks import Clocks, diagnose
from workers.simulate.scenario import (
    MEAN_DELAY_DAYS,
    OFFICE_HOURS,
    OFFICE_OPENS,
    Applicant,
    Scenario,
    office_instant,
)
from workers.synthetic import applicants, school_actor

T = TypeVar("T")

FUNDS_REQUEST_EVERY_DAYS = 5
# After one event fails, how long the others in flight get to stop before the run ends.
CANCEL_GRACE_SECONDS = 30.0


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    shared: bool = field(compare=False)
    label: str = field(compare=False)
    action: Callable[[datetime], Coroutine[Any, Any, None]] = field(compare=False)


class SeasonSimulation:
    """The driver: it owns the simulated time and runs every event in time order (see
    the package's notes). The applicants submit; each step's desk
    (``workers/officials``) schedules what its people do when the step opens; the
    county's own acts (funds, the payout date, re-payment batches, the season's end)
    are shared events here."""

    def __init__(
        self,
        scenario: Scenario,
        api: AidflowClient,
        clocks: Clocks,
        calendar: WorkingCalendar,
        engine: Engine,
        programme: Programme = COUNTY_SUBSIDY,
        progress: Callable[[SeasonSimulation], None] | None = None,
        stalled_histories: Path | None = None,
    ) -> None:
        self.s = scenario
        # Where a stop writes the histories of the workflows it names (``diagnose``).
        self.stalled_histories = stalled_histories
        self.api = api
        self.clocks = clocks
        self.cal = calendar
        self.engine = engine
        self.programme = programme
        self.rng = random.Random(scenario.seed)
        self._progress = progress or (lambda _: None)
        self._heap: list[_Event] = []  # applications' own events
        self._shared: list[_Event] = []  # events that touch the season workflow
        self._seq = itertools.count()
        self.apps: list[Applicant] = []
        self.county = ""
        self.season_id = ""
        self.now = datetime.min.replace(tzinfo=UTC)  # the newest processed instant
        self.counts: Counter[str] = Counter()
        self._funds_request_at: datetime | None = None
        self._repayment: list[Applicant] = []
        self._repayment_at: datetime | None = None
        self.notices: dict[str, NoticePlan] = {}
        # The simulated people of each step, in the programme's order.
        self.desks = [desk_for(step, programme) for step in programme.steps]
        # What a payout batch leaves an application in: paid, or back at its last step
        # (a returned payment, waiting for its account's correction).
        last = programme.steps[-1]
        self._after_batch = {programme.done_stage, *last.stages_within}
        self.roster: str | None = None
        self.window_closes = datetime.max.replace(tzinfo=UTC)

        self.season_ends_at = datetime.max.replace(tzinfo=UTC)
        self._limit = asyncio.Semaphore(scenario.concurrency)
        # Where the wall time goes, by kind of event (shared events run alone, but
        # postings of one instant together: their phases then sum what ran at once).
        self.wall_by_phase: defaultdict[str, float] = defaultdict(float)
        self.events = 0
        # Posting events that did not wait for another of their instant (every one but
        # the first of its instant; a void plan, which returns at once, included).
        self.posting_events_not_waiting = 0

    # -------------------------------------------------------------- scheduling

    def at(
        self,
        at: datetime,
        label: str,
        action: Callable[[datetime], Coroutine[Any, Any, None]],
        *,
        shared: bool = False,
    ) -> None:
        heap = self._shared if shared else self._heap
        heapq.heappush(heap, _Event(at, next(self._seq), shared, label, action))

    async def again(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """A request (or a question) that timed out under load is sent again, the same
        (its request id makes the repeat change nothing); a refusal for a reason is
        passed on."""
        for attempt in range(8):
            try:
                return await make()
            except Refused as r:
                if (
                    r.kind != "unavailable"
                    and "Timeout" not in str(r)
                    and "cancellation" not in str(r)
                    and "no application" not in str(r)
                ):
                    raise
            except RPCError as e:  # a question's, unconverted (a notice's status)
                if e.status not in BUSY:
                    raise
            self.counts["requests repeated after a timeout"] += 1
            await asyncio.sleep(min(2.0**attempt, 30.0))
        return await make()

    def delay(self, after: datetime, what: str, rng: random.Random | None = None) -> datetime:
        return office_instant(
            self.cal, after, MEAN_DELAY_DAYS[what] * self.s.officials_delay, rng or self.rng
        )

    async def run(self) -> None:
        forms = applicants(self.s.applications, self.s.season, self.s.seed, self.programme)
        self.county = forms[0].places.county_code
        opens, closes = window(self.programme, self.s.season, self.cal)
        self.window_closes = closes
        days = [
            d
            for d in (
                self.cal.day_of(opens) + timedelta(days=i) for i in range((closes - opens).days + 1)
            )
            if self.cal.is_working_day(d) and self.cal.day_start(d) < closes
        ]
        # More come early in the window than late; all during office hours.
        for f in forms:
            day = days[min(int(self.rng.expovariate(3 / len(days))), len(days) - 1)]
            at = self.cal.at(day, OFFICE_OPENS) + timedelta(
                seconds=self.rng.uniform(0, OFFICE_HOURS * 3600)
            )
            self.apps.append(
                Applicant(
                    form=f,
                    submit_at=at.replace(microsecond=0),
                    seed_key=f"{self.s.seed}/{len(self.apps)}",
                )
            )
        start = min(a.submit_at for a in self.apps) - timedelta(minutes=1)
        if start <= datetime.now(UTC):
            raise Refused(
                f"season {self.s.season}'s window opened before today; time skipping only moves "
                "forward from the wall clock, so simulate a season still to come"
            )
        self.season_id = await self.api.ensure_season(
            self.programme.code,
            self.s.season,
            self.county,
            start_at=start,
            round_=self.programme.round_key,
        )
        await self.clocks.started(self.season_id, start)
        if self.programme.opened_by is not None:
            # The county poverty office opens the round (Rain and Dew) before anyone applies.
            self.at(start + timedelta(seconds=30), "round opened", self._open_round, shared=True)
        for a in self.apps:
            self.at(a.submit_at, "submit", self._submitter(a))
        funds = self.programme.find_step(FundsStep)
        if funds is not None:
            # At the latest the first working day after the date of the step before it.
            before = self.programme.steps[self.programme.step_index(funds.stage) - 1]
            funds_by = self._next_working_day(self.programme.fixed_date(before.due))
            self.at(funds_by, "county requests funds (latest)", self._request_funds, shared=True)
        payout = self.programme.fixed_date(self.programme.payout_date_key).on.in_year(self.s.season)
        self.at(
            end_of_day(self.cal, payout) + timedelta(seconds=1),
            "payout date",
            self._payout_date,
            shared=True,
        )
        summary = self.programme.fixed_date("summary").on.in_year(self.s.season)
        self.season_ends_at = end_of_day(self.cal, summary) + timedelta(minutes=1)
        self.at(
            self.season_ends_at,
            "season end",
            self._season_end,
            shared=True,
        )
        await self._loop()

    async def _open_round(self, at: datetime) -> None:
        role = self.programme.opened_by
        assert role is not None
        await self.again(
            lambda: self.api.open_round(
                self.programme.code,
                self.s.season,
                self.county,
                people.county_office(role, self.county),
                self.cal.day_of(at),
                round_=self.programme.round_key,
            )
        )
        self.counts["requests"] += 1

    def _next_working_day(self, fixed: Any) -> datetime:
        day = fixed.on.in_year(self.s.season) + timedelta(days=1)
        while not self.cal.is_working_day(day):
            day += timedelta(days=1)
        return self.cal.at(day, clock(10, 0))

    async def _loop(self) -> None:
        """Application events run concurrently, as soon as they are due and a slot is
        free, up to the next shared event; a shared event runs alone once nothing before
        it is left or in flight (postings of one instant together)."""
        in_flight: dict[asyncio.Task[None], _Event] = {}
        # Finished tasks arrive here (asyncio.wait over a thousand tasks for every one
        # that finishes was a fifth of the simulator's CPU at 10,000 applications).
        finished: asyncio.Queue[asyncio.Task[None]] = asyncio.Queue()
        started = time.monotonic()
        while True:
            horizon = self._shared[0].at if self._shared else None
            while (
                self._heap
                and (horizon is None or self._heap[0].at < horizon)
                and len(in_flight) < self.s.concurrency
            ):
                ev = heapq.heappop(self._heap)
                task = asyncio.create_task(ev.action(ev.at))
                task.add_done_callback(finished.put_nowait)
                in_flight[task] = ev
            if in_flight:
                task = await finished.get()
                while True:
                    ev = in_flight.pop(task)
                    if task.exception() is not None:
                        await _cancel_all(in_flight)
                        task.result()  # a failure stops the simulation, loudly
                    self.now = max(self.now, ev.at)
                    self.events += 1
                    if finished.empty():
                        break
                    task = finished.get_nowait()
                self._progress(self)
                continue
            self.wall_by_phase["applications (concurrent)"] += time.monotonic() - started
            self._county_checks_funds()
            if not self._shared:
                break
            ev = heapq.heappop(self._shared)
            together = [ev]
            # Postings of different notices at one instant (the village notices at the
            # window's close, or each at the same next morning) share no workflow: an
            # application waits in one notice at a time. They run together.
            while (
                ev.label == POSTING
                and self._shared
                and (self._shared[0].at, self._shared[0].label) == (ev.at, ev.label)
            ):
                together.append(heapq.heappop(self._shared))
            started = time.monotonic()
            self.now = max(self.now, ev.at)
            await _all(e.action(e.at) for e in together)
            self.events += len(together)
            self.posting_events_not_waiting += len(together) - 1
            self.wall_by_phase[ev.label] += time.monotonic() - started
            self._progress(self)
            started = time.monotonic()

    # -------------------------------------------------------------- applicants

    def _submitter(self, a: Applicant) -> Callable[[datetime], Coroutine[Any, Any, None]]:
        async def submit(at: datetime) -> None:
            by = None
            submitter = self.programme.submitted_by[0]
            if submitter is Role.HIGH_SCHOOL:
                by = school_actor(a.form.places.school_code)
            elif submitter is not Role.APPLICANT:  # an office enters its roster
                by = people.official(submitter, a.form.places)
            try:
                a.workflow_id = await self.api.submit(a.form, now=at, start_at=at, submitted_by=by)
            except Refused:
                a.terminal = "refused at intake"
                return
            self.counts["submitted"] += 1
            await self.clocks.started(a.workflow_id, at)
            self._enter(a, 0, at)

        return submit

    def _enter(self, a: Applicant, index: int, at: datetime) -> None:
        """Step ``index`` opened for ``a`` at ``at``: the simulated people of that step act."""
        self.desks[index].opened(self, a, at)

    def after(self, a: Case, stage: str, at: datetime) -> None:
        assert isinstance(a, Applicant)
        self._enter(a, self.programme.step_index(stage) + 1, at)

    def repay(self, a: Case, at: datetime) -> None:
        assert isinstance(a, Applicant)
        self._repayment.append(a)
        if self._repayment_at is None:
            # The season collects corrections for repayment_batch_delay, then pays them.
            self._repayment_at = at + self.s.repayment_batch_delay + timedelta(seconds=1)
            self.at(self._repayment_at, "re-payment batch", self._repay, shared=True)

    def recorded_status(self, workflow_id: str) -> ApplicationStatus | None:
        return read_status(self.engine, workflow_id)

    async def diagnose(self, workflow_id: str, context: str) -> str:
        return await diagnose(self.api.client, workflow_id, context, self.stalled_histories)

    # ------------------------------------------------------------ the county

    @property
    def _bureau(self) -> Actor:
        """The office that asks for the funds."""
        funds = self.programme.find_step(FundsStep)
        asker = funds.requested_by if funds else Role.COUNTY_EDUCATION_BUREAU
        return people.county_office(asker, self.county)

    def _county_checks_funds(self) -> None:
        """The bureau asks for the funds of what is approved once no application is
        left before county approval, or else a week (five working days) after the
        first approval not yet on a request; the shared event at the first working day
        after the county-approval date is its latest moment."""
        waiting = [a for a in self.apps if a.approved_at and not a.requested and not a.terminal]
        if not waiting or self._funds_request_at is not None:
            return
        before = [a for a in self.apps if a.terminal is None and a.approved_at is None]
        if before:
            # Others are still on their way: ask for what is approved every week.
            first = min(a.approved_at for a in waiting if a.approved_at)
            at = max(self._next_office_morning(first, FUNDS_REQUEST_EVERY_DAYS), self.now)
        else:
            last = max(a.approved_at for a in waiting if a.approved_at)
            at = max(self.delay(last, "funds_request"), self.now)
        if at >= self.season_ends_at:
            return  # the season closes first: these stay unpaid (not done at season end)
        self._funds_request_at = at
        self.at(at, "county requests funds", self._request_funds, shared=True)

    async def everyone_to(
        self, at: datetime, apps: list[Applicant], *, also: str | None = None
    ) -> None:
        """The shared instant: the applications, then the workflow that will message
        them (the season, or ``also``: a notice)."""

        async def one(a: Applicant) -> None:
            async with self._limit:
                await self.clocks.advance(a.workflow_id, at)

        started = time.monotonic()
        await asyncio.gather(*(one(a) for a in apps if a.workflow_id))
        await self.clocks.advance(also or self.season_id, at)
        self.wall_by_phase["(of which: moving clocks to shared instants)"] += (
            time.monotonic() - started
        )

    async def _request_funds(self, at: datetime) -> None:
        self._funds_request_at = None
        waiting = [a for a in self.apps if a.approved_at and not a.requested and not a.terminal]
        if not waiting:
            return
        await self.everyone_to(at, waiting)
        # The request takes what the read model shows awaiting funds: let it catch up
        # with the approvals the workflows accepted.
        funds = self.programme.find_step(FundsStep)
        assert funds is not None  # only a programme with a funds step schedules this
        await self._read_model_shows(waiting, {funds.stage})
        request_id = f"fr-{self.county[:6]}-{self.s.season}-{uuid.uuid4().hex[:6]}"
        summary = await self.again(
            lambda: self.api.request_funds(
                self.programme.code,
                self.s.season,
                self.county,
                self._bureau,
                request_id,
                round_=self.programme.round_key,
            )
        )
        self.counts["funds requests"] += 1
        self.roster = self.roster or summary.roster_path
        on_request = set(summary.workflow_ids)
        apps = [a for a in waiting if a.workflow_id in on_request]
        for a in apps:
            a.requested = True
        arrive = self._next_office_morning(at, self.s.funds_delay_days)

        # Finance's transfer reference names this request (a reference repeated for a
        # later arrival would be the same arrival to the season, and answered as such).
        reference = f"CZ{self.s.season}-{self.counts['funds requests']:03d}"

        async def arrived(t: datetime) -> None:
            await self._funds_arrive(summary.request_id, summary.total_cny, apps, t, reference)

        self.at(arrive, "funds arrive", arrived, shared=True)

    def _next_office_morning(self, after: datetime, working_days: int) -> datetime:
        day = self.cal.day_of(after)
        n = 0
        while n < working_days:
            day += timedelta(days=1)
            if self.cal.is_working_day(day):
                n += 1
        return max(self.cal.at(day, clock(10, 0)), after + timedelta(seconds=1))

    async def _funds_arrive(
        self, request_id: str, total: int, apps: list[Applicant], at: datetime, reference: str
    ) -> None:
        await self.everyone_to(at, apps)
        finance = people.county_office(Role.COUNTY_FINANCE, self.county)
        result = await self.again(
            lambda: self.api.funds_arrived(
                self.programme.code,
                self.s.season,
                self.county,
                finance,
                request_id,
                total,
                reference,
                round_=self.programme.round_key,
            )
        )
        started = time.monotonic()
        # A payout batch pays and signals its applications: allow time by its size.
        for batch_id in result.batch_ids or [result.batch_id]:
            await self._batch_done(batch_id, within=300.0 + 0.5 * len(apps))
        self.wall_by_phase["(of which: payout batches)"] += time.monotonic() - started
        started = time.monotonic()
        await self._settle(apps, at)
        self.wall_by_phase["(of which: payments recorded)"] += time.monotonic() - started

    async def _batch_done(self, batch_id: str, within: float = 300.0) -> None:
        from workflows.season import SeasonWorkflow

        handle = self.api.client.get_workflow_handle(self.season_id)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            batches = await query_when_ready(handle, SeasonWorkflow.batches)
            if any(b.batch_id == batch_id for b in batches):
                self.counts["batches"] += 1
                return
            await asyncio.sleep(0.2)
        raise SimulationStalled(f"payout batch {batch_id} did not finish within {within:.0f} s")

    async def _settle(self, apps: list[Applicant], at: datetime) -> None:
        """After a batch: paid ones are done; returned ones wait for their village."""
        # The batch is done once it has signalled; the applications record the result.
        stages = await self._read_model_shows(apps, self._after_batch)
        for a in apps:
            stage = stages[a.workflow_id]
            if stage == self.programme.done_stage:
                a.terminal = stage
            else:
                self.desks[-1].settled(self, a, stage, at)

    async def _read_model_shows(
        self, apps: list[Applicant], stages: set[str], within: float = 300.0
    ) -> dict[str, str]:
        """Until the read model shows each application in one of ``stages`` (the
        workflows record their events a moment after they happen); gives up after
        ``within`` seconds without progress. Read from the database, not by querying
        every workflow."""
        ids = [a.workflow_id for a in apps]
        now: dict[str, str] = {}
        shown = 0  # the most ever shown: progress, as a large batch may take long

        async def all_shown() -> bool:
            nonlocal now, shown
            now = await asyncio.to_thread(self._stages, ids)
            there = sum(now.get(wf) in stages for wf in ids)
            shown = max(shown, there)
            return there == len(ids)

        if await shown_within(
            all_shown, lambda: shown, within=within, first_pause=0.1, longest_pause=0.1
        ):
            return now
        late = [wf for wf in ids if now.get(wf) not in stages][:3]
        seen = [await self.diagnose(wf, f"read model {now.get(wf)}") for wf in late]
        raise SimulationStalled(
            f"not recorded within {within:.0f} s as {sorted(stages)}:\n" + "\n".join(seen)
        )

    def _stages(self, ids: list[str]) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(ApplicationRow.workflow_id, ApplicationRow.stage).where(
                    col(ApplicationRow.workflow_id).in_(ids)
                )
            ).all()
        return {wf: stage for wf, stage in rows}

    async def _repay(self, at: datetime) -> None:
        apps, self._repayment, self._repayment_at = self._repayment, [], None
        from workflows.season import SeasonWorkflow

        handle = self.api.client.get_workflow_handle(self.season_id)
        before = len(await query_when_ready(handle, SeasonWorkflow.batches))
        await self.everyone_to(at, apps)  # the season's timer starts the batch on the way
        # As long as a first batch of its size is given (_funds_arrive).
        within = 300.0 + 0.5 * len(apps)
        deadline = time.monotonic() + within
        while len(await query_when_ready(handle, SeasonWorkflow.batches)) <= before:
            if time.monotonic() > deadline:
                # What the season and its newest batch were doing (a 10,000 run stopped
                # here once, and its server was gone with it).
                seen = [await self.diagnose(self.season_id, "re-payment batch awaited")]
                seen += [
                    await self.diagnose(wf, "payout batch running")
                    for wf in await self._running_batches()
                ]
                raise SimulationStalled(
                    f"the re-payment batch of {len(apps)} did not finish within "
                    f"{within:.0f} s:\n" + "\n".join(seen)
                )
            await asyncio.sleep(0.2)
        self.counts["batches"] += 1
        await self._settle(apps, at)

    async def _running_batches(self, most: int = 3) -> list[str]:
        query = "WorkflowType = 'PayoutBatchWorkflow' AND ExecutionStatus = 'Running'"
        found: list[str] = []
        async for wf in self.api.client.list_workflows(query, limit=most):
            found.append(wf.id)
        return found

    async def _payout_date(self, at: datetime) -> None:
        await self.everyone_to(at, self._live())

    async def _season_end(self, at: datetime) -> None:
        await self.everyone_to(at, self._live())

    def _live(self) -> list[Applicant]:
        return [a for a in self.apps if a.workflow_id and a.terminal is None]


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Stop the other in-flight events after one failed, so that the failure ends the
    run at once instead of waiting behind them (a failed 10,000 run once sat idle)."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)


async def _all(actions: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``actions`` together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(a) for a in actions]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        await _cancel_all(tasks)
        raise
