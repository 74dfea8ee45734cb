"""``aidflow simulate``: a whole season of the real programme on the real calendar, time skipped.

The county's what-if tool. N synthetic applicants apply over the window; simulated
officials decide with seeded delays (working days, office hours), villagers object,
applicants correct returned applications, the bank returns some payments and the
villages correct the accounts. Everything runs through the real workflows,
activities, database and bank files; only time is skipped. At the end: the season
report and the deadline statistics (who missed which fixed date, at which step, by
how much).

How the clocks stay consistent
------------------------------
The dev server's time skipping (v2) gives every workflow its own virtual clock,
moved forward by a fast-forward on that workflow alone. Workflows that talk to
each other (applications, the season workflow, its payout batches) and the
simulated officials outside them must agree on the time, or a decision lands on
the wrong day. The design here is a conservative discrete-event simulation that
moves each clock lazily:

- The driver owns the simulated time. Every action of a simulated person is an
  event at an instant; the driver processes events in time order.
- Before an event touches a workflow, the driver fast-forwards that workflow to
  the event's instant (never backwards). Timers inside it (notice ends, fixed
  dates, payment limits) fire on the way, at their own instants, because the
  fast-forward stops at every timer and runs its workflow task and activities.
- Applications do not talk to each other, so events of different applications
  are processed concurrently, each application's in order. Events that touch the
  season workflow (funds request, funds arrival, account corrections, re-payment
  batches, the payout date, the season's end) are *shared*: the driver first
  finishes every event before them, then moves the season and every application
  it will message to the same instant, and processes the shared event alone.
- A workflow starts at its simulated instant: the client starts it with a start
  delay, and the start carries a fast-forward of exactly that delay, so its first
  task (the "application received" event) already runs at the receipt instant.
- Payout batches are child workflows of the season; a child starts at its
  parent's virtual time, so batches need no clock of their own.

The price: a fast-forward per workflow per event (about seven per application),
and the simulation can only move forward from the wall clock (a season whose
window has passed cannot be simulated).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, TypeVar

import temporalio.api.common.v1
import temporalio.api.workflowservice.v1
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1.time_skipping_pb2 import FastForwardPollingResult
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    UpdateWithStartStartWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkipper, TimeSkippingConfig, WorkflowEnvironment

from integrations.bank import BankSimulator, SimulatorRules
from models import search
from models.application import (
    Actor,
    ApplicationForm,
    CorrectionRequest,
    DecisionRequest,
    ObjectionRequest,
    ObjectionResolution,
    ReceiptRecord,
)
from models.calendar import WorkingCalendar, end_of_day, next_working_day_at, notice_period
from models.domain import DecisionKind, DocumentKind, ObjectionOutcome, Role
from models.notice import NoticePostRequest, NoticeStatus, notice_workflow_id
from models.planner import window
from models.programme import FundsStep, NoticeStep, Programme, ReceiptStep, ReviewStep
from models.programmes import BUILTIN_PROGRAMMES, COUNTY_SUBSIDY
from store.db import make_engine, upgrade
from store.registry import RegistryReader
from store.sealing import Keys
from store.tables import ApplicationRow, AuditEntry
from workers.client import AidflowClient, Refused, query_when_ready
from workers.settings import Settings
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.synthetic import applicants, load_sample_county, school_actor
from workers.worker import Dependencies, build_worker

T = TypeVar("T")

# Mean delays in working days at --officials-delay 1.0 (seeded, exponentially distributed).
MEAN_DELAY_DAYS = {
    # A review, by the level of the office that decides it.
    "review_village": 1.5,
    "review_township": 2.0,
    "review_county": 2.0,
    "receipt": 3.0,  # the student comes to sign for the grant
    "applicant_correction": 2.0,
    "objection_resolution": 2.0,
    "account_correction": 2.0,
    "funds_request": 1.0,
    "notice_posting": 0.5,
}
FUNDS_REQUEST_EVERY_DAYS = 5
# How often a fast-forward not yet reported done is checked against the workflow's clock.
# A stall is acted on only after a minute; each check costs the server a describe, and
# at 10,000 applications a thousand fast-forwards may be waiting their turn at once.
FAST_FORWARD_CHECK_SECONDS = 10.0
FAST_FORWARD_STALLED_SECONDS = 60.0
FAST_FORWARD_TRIES = 10
# After one event fails, how long the others in flight get to stop before the run ends.
CANCEL_GRACE_SECONDS = 30.0
# How long the simulator waits, after the season's end, for the season to close.
SEASON_CLOSE_SECONDS = 120.0
OFFICE_OPENS = clock(8, 30)
OFFICE_HOURS = 9.0
REJECT_REASONS = ("家庭经济状况已改善，不符合条件", "非全日制本科在读", "户籍不在本村")
RETURN_REASONS = ("缺少户主户口簿复印件", "申请表签字不全")
OBJECTIONS = ("该户家中有经营性收入，经济条件较好", "该生已于今年退学", "申请人家庭人口信息有误")


@dataclass(frozen=True)
class Scenario:
    """What the county wants to try. Rates are per application and step."""

    applications: int
    season: int = 2027
    seed: int = 1
    officials_delay: float = 1.0  # multiplies every mean delay; 0: act the moment a step opens
    objection_rate: float = 0.04  # per public notice
    objection_upheld: float = 0.3
    return_rate: float = 0.08  # village returns for correction
    rejection_rate: float = 0.02  # per review step
    bank_return_rate: float = 0.03  # accounts the bank finds closed
    funds_delay_days: int = 3  # working days between the funds request and their arrival
    repayment_batch_delay: timedelta = timedelta(hours=1)
    concurrency: int = 1000
    programme: str = "county-subsidy"
    unclaimed_rate: float = 0.03  # grants paid by signature that nobody comes to sign for


# RPC failures of a server under load: the request is sent again, not taken as "closed".
_BUSY = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


@dataclass
class Applicant:
    form: ApplicationForm
    submit_at: datetime
    workflow_id: str = ""
    terminal: str | None = None  # paid, rejected, refused at intake
    returned_once: bool = False
    approved_at: datetime | None = None  # county approval: now on the funds path
    requested: bool = False
    # The applicant's own random draws, each keyed by what it decides (and which visit
    # of a stage): they depend neither on the order in which concurrent events of other
    # applicants finish nor on how often a refused request was tried again, so a seed
    # gives the same season.
    seed_key: str = ""
    opened: Counter[str] = field(default_factory=Counter)  # times each stage was opened

    def draw(self, what: str) -> random.Random:
        return random.Random(f"{self.seed_key}/{what}")


@dataclass
class _Notice:
    """A notice as the driver plans it: who waits for its next posting, and when."""

    notice_id: str
    step: NoticeStep
    owner: Actor
    pending: list[tuple[Applicant, datetime]] = field(default_factory=list)  # and when ready
    first: datetime | None = None  # the first pending member's ready instant
    plan: int = 0  # the planned posting event that stands (earlier ones are void)
    postings: int = 0
    log: list[str] = field(default_factory=list)


@dataclass
class DateMiss:
    """Applications that missed one fixed date."""

    key: str
    label: str
    due_at: datetime
    missed: int
    by_stage: dict[str, int]
    late_days: list[float]  # for those that finished the step late
    never_done: int  # not done by the season's end


@dataclass
class SimulationResult:
    scenario: Scenario
    wall_seconds: float
    outcomes: dict[str, int]
    objections: int
    returns: int
    bank_returns: int
    funds_requests: int
    batches: int
    fast_forwards: int
    fast_forwards_restarted: int
    requests: int
    misses: list[DateMiss]
    report_md: str | None
    report_xlsx: str | None
    report_as_of: str | None  # "season_end": the season summary; "payout_date": see _season_report
    roster: str | None
    data_dir: Path
    workflow_ids: list[str] = field(default_factory=list)
    wall_by_phase: dict[str, float] = field(default_factory=dict)
    events: int = 0
    # What a paid application cost, averaged over a sample of their histories.
    cost_per_paid_application: dict[str, float] = field(default_factory=dict)
    season_history_events: int = 0  # over all its runs
    season_runs: int = 0
    # How each applicant (by its index) ended: the same seed must give the same map.
    by_applicant: list[str] = field(default_factory=list)
    # Requests refused or sent again, which must not change the season (same-seed runs).
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def outcome_digest(self) -> str:
        """SHA-256 of how each applicant ended, in order: two runs compared at a glance."""
        import hashlib

        return hashlib.sha256("\n".join(self.by_applicant).encode()).hexdigest()[:16]


# ------------------------------------------------------------------- clocks


class _StartAtSimulatedInstant(Interceptor):
    """A delayed start becomes a skipped start: the start carries a fast-forward of
    exactly its delay, so the workflow's first task runs at the intended instant."""

    def __init__(self) -> None:
        self.fast_forward_ids: dict[str, str] = {}

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _StartAtOutbound(next, self)


class _StartAtOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, owner: _StartAtSimulatedInstant) -> None:
        super().__init__(next)
        self._owner = owner

    def _stamp(self, input: StartWorkflowInput | UpdateWithStartStartWorkflowInput) -> None:
        if input.start_delay is None:
            return
        ff_id = uuid.uuid4().hex
        config = temporalio.api.common.v1.TimeSkippingConfig(enabled=True)
        config.fast_forward_config.id = ff_id
        config.fast_forward_config.duration.FromTimedelta(input.start_delay)
        input.time_skipping_config = config
        self._owner.fast_forward_ids[input.id] = ff_id

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._stamp(input)
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> Any:
        self._stamp(input.start_workflow_input)
        return await super().start_update_with_start_workflow(input)


class NoticeClock(Interceptor):
    """A notice is started by its first member's joining (an activity). On this server
    every workflow has its own clock, and a workflow started without one has none: the
    notice's starts with time skipping on, at the wall clock, behind every member's;
    the driver moves it to each posting (a clock only moves forward, and members seen
    out of order must not set it ahead)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _NoticeClockOutbound(next)


class _NoticeClockOutbound(OutboundInterceptor):
    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> Any:
        start = input.start_workflow_input
        if start.workflow == "NoticeWorkflow":
            start.time_skipping_config = temporalio.api.common.v1.TimeSkippingConfig(enabled=True)
        return await super().start_update_with_start_workflow(input)


class SimulationStalled(RuntimeError):
    """The simulated season stopped moving: a clock, a batch or the read model waited in
    vain. The message says what the server knew of the workflow it waited for."""


class Clocks:
    """Every workflow's virtual clock as the driver knows it; moved only forward."""

    def __init__(self, client: Client, starts: _StartAtSimulatedInstant) -> None:
        self._client = client
        self._skipper = TimeSkipper(client, config=TimeSkippingConfig(enabled=False))
        self._starts = starts
        self._at: dict[str, tuple[datetime, float]] = {}  # id -> (virtual instant, monotonic then)
        self.fast_forwards = 0
        self.restarted = 0  # fast-forwards asked again (see advance)
        self.busy = 0  # fast-forwards refused by a busy server, asked again

    def now(self, workflow_id: str) -> datetime:
        at, mono = self._at[workflow_id]
        return at + timedelta(seconds=time.monotonic() - mono)

    async def started(self, workflow_id: str, at: datetime) -> None:
        """Wait until the start's fast-forward reached ``at``."""
        ff_id = self._starts.fast_forward_ids.pop(workflow_id, None)
        if ff_id is not None:
            await self._poll(workflow_id, ff_id)
        self._at[workflow_id] = (at, time.monotonic())

    async def track(self, workflow_id: str) -> None:
        """Know the clock of a workflow the driver did not start (a notice, started by
        its first member's joining): as the server keeps it."""
        if workflow_id not in self._at:
            handle = self._client.get_workflow_handle(workflow_id)
            self._at[workflow_id] = (await self._clock_of(handle), time.monotonic())

    async def advance(self, workflow_id: str, to: datetime) -> bool:
        """Move the workflow's clock to ``to``; False if it has finished."""
        delta = to - self.now(workflow_id)
        if delta <= timedelta(milliseconds=1):
            return True
        handle = self._client.get_workflow_handle(workflow_id)
        forward = asyncio.ensure_future(self._skipper.fast_forward(handle, delta))
        # The dev server's time skipping is experimental (CLI 1.9.1). Seen here, rarely
        # (none in the last run of 1,000 applications): a fast-forward whose workflow
        # reached the instant was never reported done, or one never started (the clock
        # kept wall-clock pace), and the run stalled. So a fast-forward not done is checked
        # against the workflow's clock every few seconds; one that has not moved for a
        # minute is asked again for what is left (at least a millisecond, which
        # completes one that reached its instant unannounced).
        checked_at, clock_then = time.monotonic(), self.now(workflow_id)
        moved_at, tries = checked_at, 0
        try:
            while True:
                done, _ = await asyncio.wait({forward}, timeout=FAST_FORWARD_CHECK_SECONDS)
                if done:
                    reached = forward.result()
                    break
                clock, now = await self._clock_of(handle), time.monotonic()
                if (clock - clock_then).total_seconds() > 1.5 * (now - checked_at):
                    moved_at = now  # skipping, not just keeping wall-clock pace
                checked_at, clock_then = now, clock
                # Under load a fast-forward may wait its turn for a long time, and a
                # workflow's clock may show the instant before the timers on the way
                # have fired: only one not done after a minute, and that has not moved
                # for a minute, is asked again.
                if now - moved_at < FAST_FORWARD_STALLED_SECONDS:
                    continue
                tries += 1
                if tries > FAST_FORWARD_TRIES:
                    seen = await diagnose(self._client, workflow_id, "clock stalled")
                    raise SimulationStalled(
                        f"{workflow_id}: a fast-forward to {to.isoformat()} did not "
                        f"complete in {tries} tries (its clock: {clock.isoformat()})\n{seen}"
                    )
                forward.cancel()
                self.restarted += 1
                left = max(to - clock, timedelta(milliseconds=1))
                forward = asyncio.ensure_future(self._skipper.fast_forward(handle, left))
                moved_at = now
        except RPCError as e:
            if e.status in _BUSY:  # the server under load, not a closed workflow: again
                self.busy += 1
                await asyncio.sleep(1.0)
                return await self.advance(workflow_id, to)
            return False  # closed: nothing to move
        finally:
            forward.cancel()
        self.fast_forwards += 1
        self._at[workflow_id] = (to, time.monotonic())
        return reached

    async def _clock_of(self, handle: WorkflowHandle[Any, Any]) -> datetime:
        """The workflow's virtual clock, as the server keeps it. Asked of the service
        directly: ``handle.describe()`` also decodes the memo and search attributes,
        which made these checks a quarter of the simulator's CPU at 10,000 applications."""
        req = temporalio.api.workflowservice.v1.DescribeWorkflowExecutionRequest(
            namespace=self._client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=handle.id),
        )
        resp = await self._client.workflow_service.describe_workflow_execution(req)
        info = resp.workflow_extended_info.time_skipping_info
        return info.current_time.ToDatetime(tzinfo=UTC)

    async def _poll(self, workflow_id: str, ff_id: str) -> None:
        req = temporalio.api.workflowservice.v1.PollWorkflowExecutionTimeSkippingRequest(
            namespace=self._client.namespace,
            workflow_execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=workflow_id, run_id=""
            ),
            fast_forward_id=ff_id,
        )
        while True:
            resp = await self._client.workflow_service.poll_workflow_execution_time_skipping(
                req, retry=True
            )
            if resp.fast_forward_polling_result in (
                FastForwardPollingResult.FAST_FORWARD_POLLING_RESULT_FAST_FORWARD_COMPLETED,
                FastForwardPollingResult.FAST_FORWARD_POLLING_RESULT_FAST_FORWARD_FAILED,
            ):
                return


# ------------------------------------------------------------------- events


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    shared: bool = field(compare=False)
    label: str = field(compare=False)
    action: Callable[[datetime], Coroutine[Any, Any, None]] = field(compare=False)


def office_instant(
    cal: WorkingCalendar, after: datetime, mean_days: float, rng: random.Random
) -> datetime:
    """When a person acts on something that reached them at ``after``: a whole number
    of working days later (exponential, mean ``mean_days``), within office hours.
    A mean of 0 is "at once" (what the season planner assumes)."""
    if mean_days <= 0:
        return after + timedelta(seconds=1)
    k = int(rng.expovariate(1 / mean_days))
    day = cal.day_of(after)
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    for _ in range(k):
        day += timedelta(days=1)
        while not cal.is_working_day(day):
            day += timedelta(days=1)
    opens = cal.at(day, OFFICE_OPENS)
    closes = opens + timedelta(hours=OFFICE_HOURS)
    at = opens + timedelta(seconds=rng.uniform(0, OFFICE_HOURS * 3600))
    if at <= after:
        if after < closes - timedelta(minutes=5):  # reached them during office hours
            at = after + (closes - after) * rng.uniform(0.05, 1)
        else:  # after hours: the next working day
            day += timedelta(days=1)
            while not cal.is_working_day(day):
                day += timedelta(days=1)
            at = cal.at(day, OFFICE_OPENS) + timedelta(seconds=rng.uniform(0, OFFICE_HOURS * 3600))
    return at.replace(microsecond=0)


class SeasonSimulation:
    def __init__(
        self,
        scenario: Scenario,
        api: AidflowClient,
        clocks: Clocks,
        calendar: WorkingCalendar,
        engine: Engine,
        programme: Programme = COUNTY_SUBSIDY,
        progress: Callable[[SeasonSimulation], None] | None = None,
    ) -> None:
        self.s = scenario
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
        self._notices: dict[str, _Notice] = {}
        self.roster: str | None = None
        self.window_closes = datetime.max.replace(tzinfo=UTC)
        self.season_ends_at = datetime.max.replace(tzinfo=UTC)
        self._limit = asyncio.Semaphore(scenario.concurrency)
        # Where the wall time goes, by kind of event (shared events run alone).
        self.wall_by_phase: defaultdict[str, float] = defaultdict(float)
        self.events = 0

    # -------------------------------------------------------------- scheduling

    def _at(
        self,
        at: datetime,
        label: str,
        action: Callable[[datetime], Coroutine[Any, Any, None]],
        *,
        shared: bool = False,
    ) -> None:
        heap = self._shared if shared else self._heap
        heapq.heappush(heap, _Event(at, next(self._seq), shared, label, action))

    async def _again(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """A request that timed out under load is sent again, the same (its request id
        makes the repeat change nothing); a refusal for a reason is passed on."""
        for attempt in range(8):
            try:
                return await make()
            except Refused as r:
                if (
                    "Timeout" not in str(r)
                    and "cancellation" not in str(r)
                    and "no application" not in str(r)
                ):
                    raise
                self.counts["requests repeated after a timeout"] += 1
                await asyncio.sleep(min(2.0**attempt, 30.0))
        return await make()

    def _delay(self, after: datetime, what: str, rng: random.Random | None = None) -> datetime:
        return office_instant(
            self.cal, after, MEAN_DELAY_DAYS[what] * self.s.officials_delay, rng or self.rng
        )

    async def run(self) -> None:
        forms = applicants(self.s.applications, self.s.season, self.s.seed, self.programme.code)
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
            self.programme.code, self.s.season, self.county, start_at=start
        )
        await self.clocks.started(self.season_id, start)
        for a in self.apps:
            self._at(a.submit_at, "submit", self._submitter(a))
        funds = self.programme.find_step(FundsStep)
        if funds is not None:
            # At the latest the first working day after the date of the step before it.
            before = self.programme.steps[self.programme.step_index(funds.stage) - 1]
            funds_by = self._next_working_day(self.programme.fixed_date(before.due))
            self._at(funds_by, "county requests funds (latest)", self._request_funds, shared=True)
        payout = self.programme.fixed_date(self.programme.payout_date_key).on.in_year(self.s.season)
        self._at(
            end_of_day(self.cal, payout) + timedelta(seconds=1),
            "payout date",
            self._payout_date,
            shared=True,
        )
        summary = self.programme.fixed_date("summary").on.in_year(self.s.season)
        self.season_ends_at = end_of_day(self.cal, summary) + timedelta(minutes=1)
        self._at(
            self.season_ends_at,
            "season end",
            self._season_end,
            shared=True,
        )
        await self._loop()

    def _next_working_day(self, fixed: Any) -> datetime:
        day = fixed.on.in_year(self.s.season) + timedelta(days=1)
        while not self.cal.is_working_day(day):
            day += timedelta(days=1)
        return self.cal.at(day, clock(10, 0))

    async def _loop(self) -> None:
        """Application events run concurrently, as soon as they are due and a slot is
        free, up to the next shared event; a shared event runs alone once nothing before
        it is left or in flight."""
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
            started = time.monotonic()
            self.now = max(self.now, ev.at)
            await ev.action(ev.at)
            self.events += 1
            self.wall_by_phase[ev.label] += time.monotonic() - started
            self._progress(self)
            started = time.monotonic()

    # -------------------------------------------------------------- applicants

    def _submitter(self, a: Applicant) -> Callable[[datetime], Coroutine[Any, Any, None]]:
        async def submit(at: datetime) -> None:
            by = None
            if Role.HIGH_SCHOOL in self.programme.submitted_by:
                by = school_actor(a.form.places.school_code)
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
        step = self.programme.steps[index]
        if isinstance(step, ReviewStep):
            self._review_later(a, step.stage, at)
        elif isinstance(step, NoticeStep):
            self._notice(a, step, at)
        elif isinstance(step, FundsStep):
            a.approved_at = at  # on the county's funds path
        elif isinstance(step, ReceiptStep):
            if a.draw("unclaimed").random() < self.s.unclaimed_rate:
                return  # nobody comes: it stays open, is overdue at its date and reported
            self._at(
                self._delay(at, "receipt", a.draw("delay/receipt")),
                "signed receipt",
                lambda t: self._sign(a, step, t),
            )

    def _after(self, a: Applicant, stage: str, at: datetime) -> None:
        self._enter(a, self.programme.step_index(stage) + 1, at)

    def _review_later(self, a: Applicant, stage: str, opened_at: datetime) -> None:
        async def decide(at: datetime) -> None:
            await self._decide(a, stage, at)

        step = self.programme.step(stage)
        what = f"review_{step.actor_level.value}"
        a.opened[stage] += 1
        delay = self._delay(opened_at, what, a.draw(f"delay/{stage}/{a.opened[stage]}"))
        self._at(delay, f"{stage} decision", decide)

    def _official(self, a: Applicant, role: Role) -> Actor:
        place = a.form.places.code_for(role)
        return Actor(id=f"{role.value}-{place}", name=role.value, role=role, place_code=place)

    async def _sign(self, a: Applicant, step: ReceiptStep, at: datetime) -> None:
        await self.clocks.advance(a.workflow_id, at)
        # Mostly the programme's funds; now and then the high school's own (PROCESS.md §4.1).
        sources = step.funding_sources
        own = a.draw("funding_source").random() < 0.1
        source = sources[-1] if len(sources) > 1 and own else sources[0]
        receipt = ReceiptRecord(
            request_id=uuid.uuid4().hex,
            actor=self._official(a, step.handed_out_by),
            documents_checked=list(step.documents_checked),
            copy_kept=True,
            funding_source=source,
        )
        try:
            await self._again(lambda: self.api.record_receipt(a.workflow_id, receipt))
        except Refused:
            # Not there yet (an objection still open, say): the student comes back later.
            self._at(
                at + timedelta(days=1), "signed receipt (again)", lambda t: self._sign(a, step, t)
            )
            return
        self.counts["requests"] += 1
        a.terminal = "received"

    async def _decide(self, a: Applicant, stage: str, at: datetime, attempt: int = 1) -> None:
        await self.clocks.advance(a.workflow_id, at)
        step = next(s for s in self.programme.steps if s.stage == stage)
        assert isinstance(step, ReviewStep)
        # The same draw however often the request was refused and tried again.
        rng = a.draw(f"decide/{stage}/{a.opened[stage]}")
        roll = rng.random()
        decision, reason = DecisionKind.APPROVE, ""
        first = stage == self.programme.steps[0].stage  # the first review returns some
        if first and not a.returned_once and roll < self.s.return_rate:
            decision, reason = DecisionKind.RETURN_FOR_CORRECTION, rng.choice(RETURN_REASONS)
        elif roll > 1 - self.s.rejection_rate:
            decision, reason = DecisionKind.REJECT, rng.choice(REJECT_REASONS)
        req = DecisionRequest(
            request_id=uuid.uuid4().hex,
            actor=self._official(a, step.role),
            stage=stage,
            decision=decision,
            reason=reason,
        )
        try:
            await self._again(lambda: self.api.decide(a.workflow_id, req))
        except Refused:
            # Not in that stage yet (an objection still open, say): look again later.
            self.counts["decisions refused"] += 1
            if attempt < 20:
                self._at(
                    at + timedelta(hours=4),
                    f"{stage} decision (again)",
                    lambda t: self._decide(a, stage, t, attempt + 1),
                )
            return
        self.counts["requests"] += 1
        if decision is DecisionKind.RETURN_FOR_CORRECTION:
            a.returned_once = True
            self.counts["returned for correction"] += 1
            self._at(
                self._delay(at, "applicant_correction", a.draw("delay/applicant_correction")),
                "applicant correction",
                lambda t: self._correct(a, stage, t),
            )
        elif decision is DecisionKind.REJECT:
            a.terminal = "rejected"
        else:
            self._after(a, stage, at)

    async def _correct(self, a: Applicant, stage: str, at: datetime) -> None:
        await self.clocks.advance(a.workflow_id, at)
        who = self.programme.corrections.by[0]  # the applicant, or the school for its students
        actor = (
            Actor(id=f"applicant-{a.form.household_no}", name="申请人", role=Role.APPLICANT)
            if who is Role.APPLICANT
            else self._official(a, who)
        )
        correction = CorrectionRequest(
            request_id=uuid.uuid4().hex,
            actor=actor,
            documents={DocumentKind.HOUSEHOLD_REGISTER_HEAD: 1},
            note="已补交",
        )
        await self._again(lambda: self.api.correct(a.workflow_id, correction))
        self.counts["requests"] += 1
        self._review_later(a, stage, at)

    def _notice(self, a: Applicant, step: NoticeStep, decided_at: datetime) -> None:
        """``a`` joins its notice (the notice workflow of its place), ready at
        ``decided_at``. The notice goes up by itself at its rule's time after its first
        member was ready (the village notice when the window closes), unless its owner
        posts it earlier; the posting lists everyone ready by then. Postings are shared
        events: they touch the notice and all its members."""
        places = a.form.places
        key = notice_workflow_id(
            self.programme.code,
            self.s.season,
            self.programme.round_key,
            step.level,
            places.code_at(step.level),
            step.stage,
        )
        n = self._notices.setdefault(key, _Notice(key, step, self._official(a, step.owner)))
        n.pending.append((a, decided_at))
        self._plan_posting(n)

    def _plan_posting(self, n: _Notice) -> None:
        """The next posting, by the notice's own rule (the same model functions) from its
        first waiting member, whichever order they were seen in: planned again if an
        earlier one is seen late (the plan before it is void)."""
        if not n.pending:
            return
        first = min(ready for _, ready in n.pending)
        if n.first == first:
            return  # the plan stands
        n.first, step = first, n.step
        if step.first_posting == "window_close" and first < self.window_closes:
            auto_at = self.window_closes
        else:
            auto_at = next_working_day_at(self.cal, first, step.auto_post_at)
        at, explicit = auto_at, False
        if step.first_posting == "after_review":
            rng = random.Random(f"{self.s.seed}/{n.notice_id}/{n.postings + 1}")
            post_at = self._delay(first, "notice_posting", rng)
            if post_at < auto_at:
                at, explicit = post_at, True
        n.plan += 1
        plan = n.plan
        self._at(at, "notice posting", lambda t: self._posting(n, plan, explicit, t), shared=True)

    async def _posting(self, n: _Notice, plan: int, explicit: bool, at: datetime) -> None:
        if plan != n.plan:
            return  # planned again for an earlier time
        members = [a for a, ready in n.pending if ready <= at]
        n.log.append(
            f"at {at.isoformat()} {'explicit' if explicit else 'auto'}: "
            + ", ".join(f"{a.workflow_id[-6:]}@{r.isoformat()}" for a, r in n.pending)
        )
        n.pending = [(a, ready) for a, ready in n.pending if ready > at]
        n.first = None
        if members:
            n.postings += 1
            # Every member's join reached the notice (it is sent after the decision).
            await self._notice_shows(
                n,
                lambda st: {a.workflow_id for a in members} <= {m.workflow_id for m in st.pending},
                members,
                "every member joined",
            )
            await self.clocks.track(n.notice_id)
            await self._everyone_to(at, members, also=n.notice_id)
            if explicit:
                req = NoticePostRequest(request_id=uuid.uuid4().hex, actor=n.owner)
                await self._again(lambda: self.api.post_notice(n.notice_id, req))
                self.counts["requests"] += 1
            # (else a member's clock reached the time on the way, and said so)
            await self._notice_shows(
                n, lambda st: len(st.postings) >= n.postings, members, f"posted at {at.isoformat()}"
            )
            self.counts["notice postings"] += 1
            for a in members:
                if a.terminal is None:
                    self._notice_up(a, n.step, at)
        self._plan_posting(n)  # those ready after it: the next posting

    async def _notice_shows(
        self,
        n: _Notice,
        what: Callable[[NoticeStatus], bool],
        members: list[Applicant],
        expect: str,
    ) -> None:
        deadline = time.monotonic() + 300
        st: NoticeStatus | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Refused):
                st = await self.api.notice_status(n.notice_id)
                if what(st):
                    return
            await asyncio.sleep(0.1)
        seen = await diagnose(self.api.client, n.notice_id, "notice")
        pending = {m.workflow_id for m in st.pending} if st else set()
        them = [
            f"{a.workflow_id}: {(await self.api.status(a.workflow_id)).details_en}"
            for a in members
            if a.workflow_id not in pending
        ]
        raise SimulationStalled(
            f"{n.notice_id}: {expect}, not within 300 s (auto {st.auto_post_at if st else '-'}, "
            f"{len(st.postings) if st else 0} postings)\n{seen}\nnot pending: "
            + "; ".join(them)
            + f"\nmodel: {n.log}\nnotice postings: "
            + "; ".join(
                f"{p.number} {p.posting} at {p.posted_at.isoformat()}: {p.members}"
                for p in (st.postings if st else [])
            )
        )

    def _notice_up(self, a: Applicant, step: NoticeStep, posted_at: datetime) -> None:
        period = notice_period(self.cal, posted_at, step.days, step.counting)
        rng = a.draw(f"objection/{step.stage}")
        if rng.random() < self.s.objection_rate:
            span = (period.ends_at - period.posted_at).total_seconds()
            at = period.posted_at + timedelta(seconds=rng.uniform(60, max(120, span - 3600)))
            self._at(
                at.replace(microsecond=0),
                "objection",
                lambda t: self._object(a, step, period.ends_at, t),
            )
        else:
            self._after(a, step.stage, period.ends_at)

    async def _object(
        self, a: Applicant, step: NoticeStep, ends_at: datetime, at: datetime
    ) -> None:
        await self.clocks.advance(a.workflow_id, at)
        rng = a.draw(f"objector/{step.stage}")
        objection = ObjectionRequest(
            request_id=uuid.uuid4().hex,
            actor=Actor(id=f"villager-{rng.randint(1, 999)}", name="村民", role=Role.PUBLIC),
            text=rng.choice(OBJECTIONS),
            contact=f"139{rng.randint(0, 10**8 - 1):08d}",
        )
        try:
            await self._again(lambda: self.api.lodge_objection(a.workflow_id, objection))
        except Refused:
            # Not open to objections yet (its clock behind, say): the villager comes back in
            # an hour while the notice lasts, with the same objection.
            self.counts["objections refused"] += 1
            if at + timedelta(hours=2) < ends_at:
                self._at(
                    at + timedelta(hours=1),
                    "objection (again)",
                    lambda t: self._object(a, step, ends_at, t),
                )
            else:
                self._after(a, step.stage, ends_at)
            return
        self.counts["objections"] += 1
        self.counts["requests"] += 1
        self._at(
            self._delay(at, "objection_resolution", a.draw(f"delay/resolution/{step.stage}")),
            "objection resolution",
            lambda t: self._resolve(a, step, ends_at, t),
        )

    async def _resolve(
        self, a: Applicant, step: NoticeStep, ends_at: datetime, at: datetime
    ) -> None:
        await self.clocks.advance(a.workflow_id, at)
        st = await self.api.status(a.workflow_id)
        upheld = a.draw(f"upheld/{step.stage}").random() < self.s.objection_upheld
        for o in st.objections:
            if o.outcome is None:
                resolution = ObjectionResolution(
                    request_id=uuid.uuid4().hex,
                    actor=self._official(a, step.owner),
                    objection_id=o.id,
                    outcome=ObjectionOutcome.UPHELD if upheld else ObjectionOutcome.DISMISSED,
                    reason="经入户核实情况属实" if upheld else "经入户核实，家庭情况符合条件",
                )
                await self._again(
                    lambda r=resolution: self.api.resolve_objection(a.workflow_id, r)  # type: ignore[misc]
                )
                self.counts["requests"] += 1
        if upheld:
            a.terminal = "rejected"
            self.counts["objections upheld"] += 1
        else:
            self._after(a, step.stage, max(ends_at, at))

    # ------------------------------------------------------------ the county

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
            at = max(self._delay(last, "funds_request"), self.now)
        if at >= self.season_ends_at:
            return  # the season closes first: these stay unpaid (not done at season end)
        self._funds_request_at = at
        self._at(at, "county requests funds", self._request_funds, shared=True)

    def _bureau(self) -> Actor:
        return Actor(
            id="county-bureau-1",
            name="县教育局资助中心",
            role=Role.COUNTY_EDUCATION_BUREAU,
            place_code=self.county,
        )

    async def _everyone_to(
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
        await self._everyone_to(at, waiting)
        # The request takes what the read model shows awaiting funds: let it catch up
        # with the approvals the workflows accepted.
        await self._read_model_shows(waiting, {"awaiting_funds"})
        request_id = f"fr-{self.county[:6]}-{self.s.season}-{uuid.uuid4().hex[:6]}"
        summary = await self._again(
            lambda: self.api.request_funds(
                self.programme.code, self.s.season, self.county, self._bureau(), request_id
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

        self._at(arrive, "funds arrive", arrived, shared=True)

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
        await self._everyone_to(at, apps)
        finance = Actor(
            id="county-finance-1", name="县财政局", role=Role.COUNTY_FINANCE, place_code=self.county
        )
        result = await self._again(
            lambda: self.api.funds_arrived(
                self.programme.code,
                self.s.season,
                self.county,
                finance,
                request_id,
                total,
                reference,
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
        stages = await self._read_model_shows(apps, {"paid", "awaiting_account_correction"})
        for a in apps:
            if stages[a.workflow_id] == "paid":
                a.terminal = "paid"
            elif stages[a.workflow_id] == "awaiting_account_correction":
                self.counts["bank returns"] += 1
                a.opened["account"] += 1
                visit = a.opened["account"]
                when = self._delay(at, "account_correction", a.draw(f"delay/account/{visit}"))
                self._at(
                    when,
                    "account correction",
                    lambda t, a=a: self._correct_account(a, t),  # type: ignore[misc]
                    shared=True,
                )

    async def _read_model_shows(
        self, apps: list[Applicant], stages: set[str], within: float = 300.0
    ) -> dict[str, str]:
        """Until the read model shows each application in one of ``stages`` (the
        workflows record their events a moment after they happen); gives up after
        ``within`` seconds without progress. Read from the database, not by querying
        every workflow."""
        ids = [a.workflow_id for a in apps]
        deadline = time.monotonic() + within
        shown = 0
        while True:
            now = await asyncio.to_thread(self._stages, ids)
            there = sum(now.get(wf) in stages for wf in ids)
            if there == len(ids):
                return now
            if there > shown:  # progress: a large batch may take long, a stalled one not
                shown, deadline = there, time.monotonic() + within
            if time.monotonic() > deadline:
                late = [wf for wf in ids if now.get(wf) not in stages][:3]
                seen = [await self._diagnose(wf, now.get(wf)) for wf in late]
                raise SimulationStalled(
                    f"not recorded within {within:.0f} s as {sorted(stages)}:\n" + "\n".join(seen)
                )
            await asyncio.sleep(0.1)

    async def _diagnose(self, workflow_id: str, stage: str | None) -> str:
        return await diagnose(self.api.client, workflow_id, f"read model {stage}")

    def _stages(self, ids: list[str]) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(ApplicationRow.workflow_id, ApplicationRow.stage).where(
                    col(ApplicationRow.workflow_id).in_(ids)
                )
            ).all()
        return {wf: stage for wf, stage in rows}

    async def _correct_account(self, a: Applicant, at: datetime) -> None:
        await self._everyone_to(at, [a])
        visit = a.opened["account"]
        account = f"62302099{a.draw(f'account/{visit}').randint(0, 10**11 - 1):011d}"
        request_id = uuid.uuid4().hex
        await self._again(
            lambda: self.api.correct_account(
                a.workflow_id,
                self._official(a, Role.VILLAGE_COMMITTEE),
                bank_name="阜南农商银行",
                account_number=account,
                account_holder=a.form.account_holder,
                request_id=request_id,
            )
        )
        self.counts["requests"] += 1
        self._repayment.append(a)
        if self._repayment_at is None:
            # The season collects corrections for repayment_batch_delay, then pays them.
            self._repayment_at = at + self.s.repayment_batch_delay + timedelta(seconds=1)
            self._at(self._repayment_at, "re-payment batch", self._repay, shared=True)

    async def _repay(self, at: datetime) -> None:
        apps, self._repayment, self._repayment_at = self._repayment, [], None
        from workflows.season import SeasonWorkflow

        handle = self.api.client.get_workflow_handle(self.season_id)
        before = len(await query_when_ready(handle, SeasonWorkflow.batches))
        await self._everyone_to(at, apps)  # the season's timer starts the batch on the way
        deadline = time.monotonic() + 300
        while len(await query_when_ready(handle, SeasonWorkflow.batches)) <= before:
            if time.monotonic() > deadline:
                raise SimulationStalled("the re-payment batch did not finish within 300 s")
            await asyncio.sleep(0.2)
        self.counts["batches"] += 1
        await self._settle(apps, at)

    async def _payout_date(self, at: datetime) -> None:
        await self._everyone_to(at, self._live())

    async def _season_end(self, at: datetime) -> None:
        await self._everyone_to(at, self._live())

    def _live(self) -> list[Applicant]:
        return [a for a in self.apps if a.workflow_id and a.terminal is None]


# ---------------------------------------------------------------- statistics


def deadline_misses(
    engine: Engine, programme: Programme, season: int, cal: WorkingCalendar
) -> list[DateMiss]:
    """From the audit log: who missed which fixed date, at which step, and how late the
    step was finally done (the first event after the last step due that date)."""
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEntry).order_by(col(AuditEntry.workflow_id), col(AuditEntry.seq))
        ).all()
    by_app: dict[str, list[AuditEntry]] = {}
    for r in rows:
        by_app.setdefault(r.workflow_id, []).append(r)
    steps = programme.steps
    out = []
    for fixed in programme.fixed_dates:
        due_steps = [i for i, s in enumerate(steps) if s.due == fixed.key]
        if not due_steps:
            continue
        last_due = max(due_steps)
        due_at = end_of_day(cal, fixed.on.in_year(season))
        by_stage: Counter[str] = Counter()
        late: list[float] = []
        never = 0
        for events in by_app.values():
            missed = [
                e for e in events if e.kind == "overdue" and e.detail.get("fixed_date") == fixed.key
            ]
            if not missed:
                continue
            by_stage[missed[0].detail.get("stage", missed[0].stage)] += 1
            done_at = _step_done_at(events, last_due, last_due == len(steps) - 1)
            if done_at is None:
                never += 1
            else:
                late.append((done_at - due_at).total_seconds() / 86400)
        out.append(
            DateMiss(
                key=fixed.key,
                label=fixed.label_en,
                due_at=due_at,
                missed=sum(by_stage.values()),
                by_stage=dict(by_stage),
                late_days=sorted(late),
                never_done=never,
            )
        )
    return out


def _step_done_at(events: list[AuditEntry], last_due: int, is_last: bool) -> datetime | None:
    for e in events:
        if is_last:  # the programme's end: paid by the bank, or signed for
            if (e.kind == "payment" and e.detail.get("status") == "paid") or e.kind == "receipt":
                return _aware(e.at)
        elif e.kind == "stage_entered" and int(e.detail.get("step_index", -1)) > last_due:
            return _aware(e.at)
    return None


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Stop the other in-flight events after one failed, so that the failure ends the
    run at once instead of waiting behind them (a failed 10,000 run once sat idle)."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes; PostgreSQL aware ones.
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# --------------------------------------------------------------------- stack


@contextlib.contextmanager
def _child_stdout_to_devnull() -> Iterator[None]:
    """Processes started inside inherit /dev/null as their stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


async def start_time_skipping_server() -> WorkflowEnvironment:
    """A private in-memory dev server with per-workflow time skipping, aidflow's search
    attributes and its data converter. Workflows start on the wall clock and move only
    when fast-forwarded (the simulator's server, and the tests')."""
    from workers.embedded import child_pids, stop_with_us, temporal_binary

    before = child_pids()
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        data_converter=pydantic_data_converter,
        search_attributes=search.ALL,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
        ],
    )
    # The SDK stops the server on shutdown(); if this process is killed first, the
    # server must not live on (it did, after a SIGTERM to aidflow simulate).
    for pid in child_pids() - before:
        stop_with_us(pid)
    return env


@contextlib.asynccontextmanager
async def simulation_stack(
    data_dir: Path, settings: Settings, closed_suffixes: list[str], applications: int
) -> AsyncIterator[tuple[Client, Clocks, Dependencies]]:
    """A private dev server with time skipping (in memory), a fresh SQLite database in
    ``data_dir``, a worker and the simulated bank. Nothing here touches the county's
    real database or Temporal cluster."""
    with _child_stdout_to_devnull():  # the server's banner would garble --json output
        env = await start_time_skipping_server()
    try:
        starts = _StartAtSimulatedInstant()
        # The SDK core's warnings (slow workflow tasks under a full load) would flood the
        # terminal; errors still show.
        runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
        client = await Client.connect(
            env.client.service_client.config.target_host,
            namespace=env.client.namespace,
            data_converter=pydantic_data_converter,
            interceptors=[starts, NoticeClock()],
            runtime=runtime,
        )
        url = f"sqlite:///{data_dir / 'aidflow.db'}"
        await asyncio.to_thread(upgrade, url)
        deps = Dependencies(
            engine=make_engine(url),
            calendar=settings.build_calendar(),
            keys=Keys(settings.secret_key_bytes()),
            files_dir=data_dir / "files",
            bank_dir=data_dir / "bank",
            # The simulated season lives and dies with this process and its calendar:
            # its applications may take the provisional 2027 days from their table.
            calendar_is_fixed=True,
            statement_max_lifetime=SKIPPED_CLOCK_LIFETIME,
        )
        deps.files_dir.mkdir(parents=True, exist_ok=True)
        bank = BankSimulator(
            deps.bank_dir,
            SimulatorRules(closed_account_suffixes=tuple(closed_suffixes), delay_seconds=0.0),
        )
        stop = asyncio.Event()
        worker = build_worker(
            client,
            settings.task_queue,
            deps,
            sandboxed=False,
            # Every application stays cached: an evicted one would replay its history.
            max_cached_workflows=max(1000, applications + 100),
            max_concurrent_workflow_tasks=8,
            max_concurrent_local_activities=8,
        )
        try:
            async with worker:
                bank_task = asyncio.create_task(bank.run_forever(stop, interval=0.05))
                try:
                    yield client, Clocks(client, starts), deps
                finally:
                    stop.set()
                    await bank_task
        finally:
            deps.engine.dispose()
    finally:
        await env.shutdown()


async def run_simulation(
    scenario: Scenario,
    base: Settings,
    *,
    data_dir: Path | None = None,
    progress: Callable[[SeasonSimulation], None] | None = None,
) -> SimulationResult:
    data_dir = data_dir or base.data_dir / "simulate"
    shutil.rmtree(data_dir, ignore_errors=True)  # every run starts from nothing
    data_dir.mkdir(parents=True)
    settings = base.model_copy(update={"calendar": "state-council", "data_dir": data_dir})
    cal = settings.build_calendar()
    started = time.monotonic()
    # The closed accounts are drawn from the scenario's seed before the stack starts.
    programme = BUILTIN_PROGRAMMES[scenario.programme]
    forms = applicants(scenario.applications, scenario.season, scenario.seed, programme)
    rng = random.Random(scenario.seed ^ 0x5EED)
    closed = [
        forms[i].account_number[-6:]
        for i in rng.sample(range(len(forms)), k=round(len(forms) * scenario.bank_return_rate))
    ]
    async with simulation_stack(data_dir, settings, closed, scenario.applications) as (
        client,
        clocks,
        deps,
    ):
        load_sample_county(
            deps.engine, forms, scenario.season, deps.keys.hash_id, data_dir / "import"
        )
        api = AidflowClient(
            client,
            task_queue=settings.task_queue,
            keys=deps.keys,
            calendar=cal,
            statement_lifetime=SKIPPED_CLOCK_LIFETIME,
            programmes={programme.code: programme},
            lookup_member=RegistryReader(deps.engine).lookup,
        )
        api.repayment_batch_delay = scenario.repayment_batch_delay
        sim = SeasonSimulation(
            scenario, api, clocks, cal, deps.engine, programme=programme, progress=progress
        )
        await sim.run()
        report = await _season_report(api, sim.season_id)
        for a in sim._live():
            a.terminal = f"still in {(await api.status(a.workflow_id)).stage}"
        misses = await asyncio.to_thread(
            deadline_misses, deps.engine, programme, scenario.season, cal
        )
        paid = [a.workflow_id for a in sim.apps if a.terminal in ("paid", "received")]
        cost = await cost_per_application(client, paid[:20])
        # The county's one season workflow grows with the county; it continues as new
        # before a run nears Temporal's limits (51,200 events, 10,000 signals).
        season_events, season_runs = await history_across_runs(client, sim.season_id)
    outcomes = Counter(a.terminal or "not finished" for a in sim.apps)
    return SimulationResult(
        scenario=scenario,
        wall_seconds=time.monotonic() - started,
        outcomes=dict(outcomes),
        objections=sim.counts["objections"],
        returns=sim.counts["returned for correction"],
        bank_returns=sim.counts["bank returns"],
        funds_requests=sim.counts["funds requests"],
        batches=sim.counts["batches"],
        fast_forwards=clocks.fast_forwards,
        fast_forwards_restarted=clocks.restarted,
        requests=sim.counts["requests"],
        misses=misses,
        report_md=report.markdown if report else None,
        report_xlsx=report.xlsx if report else None,
        report_as_of=report.as_of if report else None,
        roster=sim.roster,
        data_dir=data_dir,
        workflow_ids=[a.workflow_id for a in sim.apps if a.workflow_id],
        wall_by_phase=dict(sim.wall_by_phase),
        events=sim.events,
        cost_per_paid_application=cost,
        season_history_events=season_events,
        season_runs=season_runs,
        by_applicant=[a.terminal or "not finished" for a in sim.apps],
        retries={
            "decisions_refused": sim.counts["decisions refused"],
            "objections_refused": sim.counts["objections refused"],
            "requests_repeated_after_a_timeout": sim.counts["requests repeated after a timeout"],
            "fast_forwards_on_a_busy_server": clocks.busy,
        },
    )


async def diagnose(client: Client, workflow_id: str, context: str) -> str:
    """What the server says of a workflow the simulation waited for in vain: status,
    virtual clock and fast-forward, the pending workflow task and activities, and the
    last events of its history."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        raw = (await handle.describe()).raw_description
        ts = raw.workflow_extended_info.time_skipping_info
        tail = [
            f"{e.event_id}:{EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')}"
            async for e in handle.fetch_history_events()
        ][-8:]
    except RPCError as err:
        return f"  {workflow_id}: {context}; describe failed: {err}"
    task = (
        f"attempt {raw.pending_workflow_task.attempt}"
        if raw.HasField("pending_workflow_task")
        else "none"
    )
    activities = [
        f"{a.activity_type.name} (attempt {a.attempt}"
        + (f", {a.last_failure.message[:80]}" if a.HasField("last_failure") else "")
        + ")"
        for a in raw.pending_activities
    ]
    return (
        f"  {workflow_id}: {context}; "
        f"status {raw.workflow_execution_info.status}, "
        f"clock {ts.current_time.ToDatetime(tzinfo=UTC).isoformat()}, "
        f"fast-forward {ts.effective_config.fast_forward_config.id or '-'}, "
        f"pending workflow task {task}, "
        f"pending activities {', '.join(activities) or 'none'}, "
        f"last events {' '.join(tail)}"
    )


async def history_across_runs(client: Client, workflow_id: str) -> tuple[int, int]:
    """History events of a workflow over all its runs (continue-as-new), and the runs."""
    events = runs = 0
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        runs += 1
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        async for _ in handle.fetch_history_events():
            events += 1
    return events, runs


async def cost_per_application(client: Client, workflow_ids: list[str]) -> dict[str, float]:
    """History events, workflow tasks, timers and local activities (by type) of these
    workflows, averaged: what the server and the worker did for each."""
    totals: Counter[str] = Counter()
    for wf in workflow_ids:
        async for e in client.get_workflow_handle(wf).fetch_history_events():
            totals["history_events"] += 1
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                totals["workflow_tasks"] += 1
            elif e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                totals["timers"] += 1
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                totals["activities"] += 1
            elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                details = e.marker_recorded_event_attributes.details
                if "data" in details:  # a local activity's marker (a patch has none)
                    kind = json.loads(details["data"].payloads[0].data)["activity_type"]
                    totals["local_activities"] += 1
                    totals[f"local_activities:{kind}"] += 1
    n = len(workflow_ids)
    return {k: round(v / n, 1) for k, v in sorted(totals.items())} if n else {}


async def _season_report(api: AidflowClient, season_id: str) -> Any:
    """The season summary: the season, its clock past the summary date, closes by itself
    once everything released is paid, and writes it then. A season that cannot close
    (a payment still open) gives the payout date's report instead, after a while."""
    from workflows.season import SeasonWorkflow

    handle = api.client.get_workflow_handle(season_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(handle.result(), timeout=SEASON_CLOSE_SECONDS)
    for _ in range(100):
        report = await query_when_ready(handle, SeasonWorkflow.report)
        if report is not None:
            return report
        await asyncio.sleep(0.2)
    return None


def result_json(r: SimulationResult) -> str:

    return json.dumps(
        {
            "scenario": {
                k: (v.total_seconds() if isinstance(v, timedelta) else v)
                for k, v in r.scenario.__dict__.items()
            },
            "wall_seconds": round(r.wall_seconds, 1),
            "outcomes": r.outcomes,
            "objections": r.objections,
            "returned_for_correction": r.returns,
            "bank_returns": r.bank_returns,
            "funds_requests": r.funds_requests,
            "batches": r.batches,
            "requests": r.requests,
            "fast_forwards": r.fast_forwards,
            "fast_forwards_restarted": r.fast_forwards_restarted,
            "retries": r.retries,
            "outcome_digest": r.outcome_digest,
            "deadlines": [
                {
                    "fixed_date": m.key,
                    "label": m.label,
                    "due_at": m.due_at.isoformat(),
                    "missed": m.missed,
                    "at_step": m.by_stage,
                    "late_days_median": round(_median(m.late_days), 2),
                    "late_days_max": round(max(m.late_days, default=0.0), 2),
                    "not_done_at_season_end": m.never_done,
                }
                for m in r.misses
            ],
            "wall_seconds_by_phase": {k: round(v, 1) for k, v in r.wall_by_phase.items()},
            "events": r.events,
            "cost_per_paid_application": r.cost_per_paid_application,
            "season_history_events": r.season_history_events,
            "season_runs": r.season_runs,
            "report": {"as_of": r.report_as_of, "markdown": r.report_md, "xlsx": r.report_xlsx},
            "roster": r.roster,
        },
        ensure_ascii=False,
    )


def print_result(r: SimulationResult, console: Any) -> None:
    from rich.table import Table

    s = r.scenario
    console.print(
        f"[bold]{BUILTIN_PROGRAMMES[s.programme].name_en} {s.season}[/bold]: {s.applications} applicants, seed {s.seed}, "
        f"officials' delay x{s.officials_delay:g}, objections {s.objection_rate:.0%}, "
        f"returns {s.return_rate:.0%}, rejections {s.rejection_rate:.0%}/review, "
        f"closed accounts {s.bank_return_rate:.0%}, funds after {s.funds_delay_days} working days"
    )
    outcomes = Table("outcome", "applications", title="how the season ended")
    for k, v in sorted(r.outcomes.items(), key=lambda kv: -kv[1]):
        outcomes.add_row(k, str(v))
    outcomes.add_row(
        "[dim]objections / returns / bank returns[/dim]",
        f"{r.objections} / {r.returns} / {r.bank_returns}",
    )
    console.print(outcomes)
    dates = Table(
        "fixed date",
        "due (24:00)",
        "missed",
        "where they were then",
        "done late by (median / max days)",
        "never done (rejected, or open at the end)",
        title="deadline statistics",
    )
    for m in r.misses:
        where = ", ".join(f"{k} {v}" for k, v in sorted(m.by_stage.items(), key=lambda kv: -kv[1]))
        late = f"{_median(m.late_days):.1f} / {max(m.late_days):.1f}" if m.late_days else "-"
        dates.add_row(
            m.label,
            f"{(m.due_at - timedelta(seconds=1)):%Y-%m-%d}",
            f"[red]{m.missed}[/red]" if m.missed else "0",
            where or "-",
            late,
            str(m.never_done),
        )
    console.print(dates)
    phases = ", ".join(
        f"{k} {v:.0f} s"
        for k, v in sorted(r.wall_by_phase.items(), key=lambda kv: -kv[1])
        if v >= 0.5
    )
    console.print(f"[dim]Where the wall time went: {phases}[/dim]")
    console.print(
        f"{'Season summary' if r.report_as_of == 'season_end' else 'Season report (at the payout date; the season did not close)'}: "
        f"{r.report_md}\n               {r.report_xlsx}\nRoster (花名册): {r.roster}\n"
        f"Simulated in {r.wall_seconds:.0f} s wall time ({r.requests} requests, "
        f"{r.fast_forwards} fast-forwards, {r.batches} payout batches); data in {r.data_dir}"
    )
    if r.cost_per_paid_application:
        c = r.cost_per_paid_application
        console.print(
            f"[dim]A paid application cost {c.get('history_events', 0):g} history events, "
            f"{c.get('workflow_tasks', 0):g} workflow tasks, {c.get('timers', 0):g} timers, "
            f"{c.get('activities', 0):g} activities, "
            f"{c.get('local_activities', 0):g} local activities; the season's history "
            f"{r.season_history_events:,} events in {r.season_runs} run(s).[/dim]"
        )
    if r.fast_forwards_restarted:
        console.print(
            f"[dim]{r.fast_forwards_restarted} fast-forwards stalled and were asked again "
            "(the dev server's time skipping is experimental).[/dim]"
        )


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0
