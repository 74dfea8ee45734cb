"""The fault harness (issue 16): a season on the embedded stack's parts, with its worker
killed and its Temporal server restarted at seeded points, then checked for what a
crash must never do.

    python -m bench.faults --applications 1000 --kills 10 --server-restarts 1 --seed 1

The parts are the real ones: the Temporal dev server (SQLite file), ``aidflow worker``
in a process of its own (with the simulated bank in it), the database, the bank's
files. The calendar is compressed (one day lasts ``--day-seconds``). The offices'
systems act the moment an application reaches them; a few decisions reject, a few
objections are lodged and resolved (one in fifty upheld), and the bank returns the
payments to a few closed accounts, which the villages correct and which are paid again.

The worker is killed with SIGKILL at ``--kills`` points spread over the phases of the
season (reviews, notices, waiting for funds, the payout batch, the re-payment batch),
each a seeded moment after its phase begins, and started again after a seeded pause;
the server is stopped and started ``--server-restarts`` times (down 5 to 25 s).

Prints a JSON summary: ``applications``, ``lost`` (submitted, but no workflow or no row
in the database), ``stuck`` (not ended when the season should have), ``paid``,
``paid_twice`` (by the bank's ledger and by the database), ``wrong_payments`` (a payment
to an account or of an amount that is not the one recorded), ``audit_verified`` (every
keyed chain intact and equal to the head its history recorded), ``task_failures``
(failed workflow tasks in every history; a task cut off by a kill times out, which
``task_timeouts`` counts), and each fault with its phase and the seconds until the
worker polled its queue again (``recover_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select
from temporalio.api.enums.v1 import (
    EventType,
    TaskQueueKind,
    TaskQueueType,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from bench import r9
from bench.run import SECRET, Proc, free_port, spawn
from models import search
from models.application import ApplicationStatus
from models.domain import Level, Role
from models.notice import NoticeStatus, notice_workflow_id
from models.programme import FundsStep, NoticeStep
from models.programmes import BUILTIN_PROGRAMMES, COUNTY_SUBSIDY_DEMO
from store import audit
from store.db import make_engine, upgrade
from store.registry import RegistryReader
from store.sealing import Keys
from store.status import read_status
from store.tables import ApplicationRow, Payment
from workers.client import AidflowClient, Refused
from workers.embedded import DevServer, start_dev_server, wait_for_server
from workers.officials import desk_at, people
from workers.settings import Settings
from workers.synthetic import applicants, load_sample_county
from workers.witness import chain_heads
from workers.worker import connect
from workflows.authority import AuthorityInterceptor
from workflows.registry import ALL_WORKFLOWS

SEASON = 2026
PROGRAMME = COUNTY_SUBSIDY_DEMO
PHASES = ("review", "notice", "funds", "payout", "repayment")
ENDED = {PROGRAMME.done_stage, "rejected", "withdrawn"}


def _funds_step() -> FundsStep:
    step = PROGRAMME.find_step(FundsStep)
    if step is None:
        raise RuntimeError("the fault harness runs a programme paid from requested funds")
    return step


_FUNDS = _funds_step()
FUNDS = _FUNDS.stage
# A defect of sdk-core in temporalio 1.35 (README, "A defect of the Temporal SDK"): a worker
# started after another was killed runs a workflow on new events to answer a query and
# sends what that produced with the next task; the history then fails to replay with a
# nondeterminism error. Counted apart: a nondeterminism error in a history where a
# workflow task was cut off by a kill before it (aidflow's own nondeterminism shows
# without kills too: the replay tests, the simulator, the demo).
NONDETERMINISM = "[TMPRL1100] Nondeterminism error"
BEFORE_FUNDS = {s.stage for s in PROGRAMME.steps[: PROGRAMME.step_index(FUNDS)]}


def phase_of(stage: str, seen: set[str]) -> str | None:
    """The phase an application in ``stage`` is in: its step's kind, or "repayment"
    once a step's inner stage (a returned payment's correction) has been seen."""
    step = PROGRAMME.step_at(stage)
    if step is None:
        return None
    return "repayment" if seen & set(step.stages_within) else step.kind


@dataclass
class Fault:
    kind: str  # "worker" (SIGKILL) or "server" (stopped and started again)
    phase: str
    after_days: float  # after its phase begins
    down_s: float
    at_s: float | None = None  # since the season's start
    # The fault's window on the wall clock (UTC, ISO): from the kill or the server's stop
    # until a worker polled its queue again.
    down_at: str | None = None
    up_at: str | None = None
    stages: dict[str, int] = field(default_factory=dict)
    recover_s: float | None = None
    skipped: str | None = None


def plan(kills: int, restarts: int, rng: random.Random) -> list[Fault]:
    faults = [
        Fault("worker", PHASES[i % len(PHASES)], rng.uniform(0.1, 0.9), rng.uniform(0.5, 3.0))
        for i in range(kills)
    ]
    # Restarts spread like the kills, the first in a notice: the longest phase (at least
    # ten working days), so it comes before the season can end whatever the kills took.
    faults += [
        Fault("server", ("notice", "payout")[j % 2], rng.uniform(0.1, 0.9), rng.uniform(5, 25))
        for j in range(restarts)
    ]
    return sorted(faults, key=lambda f: (PHASES.index(f.phase), f.after_days))


class Stack:
    """The dev server and the worker process, each stopped and started at will."""

    def __init__(self, work: Path, settings: Settings, env: dict[str, str]) -> None:
        self.work, self.settings, self.env = work, settings, env
        self.server: DevServer | None = None
        self.worker: Proc | None = None

    async def start_server(self) -> None:
        self.server = start_dev_server(self.settings)
        await wait_for_server(self.server, self.settings, within=120)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    def start_worker(self) -> None:
        self.worker = spawn(
            [str(Path(sys.executable).parent / "aidflow"), "worker"],
            self.work / "worker.log",
            self.env,
        )

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.popen.poll() is None:
            os.kill(self.worker.popen.pid, signal.SIGKILL)
            self.worker.popen.wait(10)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.stop_server()


class Season:
    """The offices' systems and the county, acting on what each application waits for."""

    def __init__(
        self,
        api: AidflowClient,
        forms: list[Any],
        seed: int,
        day_seconds: float,
        read: Callable[[str], ApplicationStatus | None],
    ) -> None:
        self.api, self.forms, self.seed, self.day = api, forms, seed, day_seconds
        # An application's status from the records (store/status.py), never a query: a
        # query reaching a worker just back from a kill is what the SDK defect needs
        # (README), and the harness kills workers.
        self.read = read
        self.county = forms[0].places.county_code
        self.stages: dict[str, str] = {}
        self.seen: dict[str, set[str]] = {}
        self.started = time.monotonic()
        self.phase_began: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.funds_done = False
        self.last_change = time.monotonic()
        self.index: dict[str, int] = {}  # each application's number, for its draws and ids
        self.visits: Counter[tuple[str, str]] = Counter()
        self.season_closed = False  # the county's season refused a request: it has closed
        # What the Web UI's list shows of each application (its search attributes), read
        # in one visibility list a second: an application's status is read only when that
        # changed (at 1,000 applications, reading each every few seconds, as queries then,
        # saturated two cores).
        self.shown: dict[str, tuple[Any, ...]] = {}
        self.asked = 0  # status reads
        # How long an application is not asked when its listed attributes do not change:
        # ten days of the season, between 10 s and 2 minutes.
        self.fallback = min(120.0, max(10.0, 10 * day_seconds))
        self.changed: dict[str, asyncio.Event] = {}

    def rng(self, i: int, what: str) -> random.Random:
        # Each choice its own stream: how often a request was tried changes nothing.
        return random.Random(f"{self.seed}/{i}/{what}")

    def observe(self, wf: str, st: ApplicationStatus) -> None:
        if self.stages.get(wf) != st.stage:
            self.last_change = time.monotonic()
        self.stages[wf] = st.stage
        seen = self.seen.setdefault(wf, set())
        seen.add(st.stage)
        phase = phase_of(st.stage, seen)
        if phase is not None:
            self.phase_began.setdefault(phase, time.monotonic() - self.started)

    async def application(self, i: int, wf: str) -> None:
        failed = disagreed = 0
        while True:
            try:
                self.asked += 1
                st = await asyncio.to_thread(self.read, wf)
                failed = 0
            except Exception as e:  # the database busy for a moment
                self.errors[f"status: {type(e).__name__}"] += 1
                failed += 1
                await self.until_changed(wf, within=min(self.fallback, 2.0**failed))
                continue
            if st is None:  # its first events not recorded yet
                await self.until_changed(wf, within=1.0)
                continue
            listed = self.listed(wf)
            if listed is not None and listed[0] != st.stage:
                # The record and the list disagree: the list lags (it is read once a
                # second, and lags under load), or the record holds a task that never
                # completed (retracted at its next event: activities/records.py). The
                # history's own attributes (describe: the server, no worker) decide.
                history = await self.history_stage(wf)
                if history is not None and history[0] != st.stage:
                    disagreed += 1
                    if disagreed < 5:
                        await self.until_changed(wf, within=1.0)
                        continue
                    self.errors["record ahead of the history"] += 1
                    st = st.model_copy(
                        update={"stage": history[0], "waiting_for": history[1], "notice": None}
                    )
            disagreed = 0
            self.observe(wf, st)
            if st.stage in ENDED:
                return
            try:
                acted = await self.act(i, wf, st)
            except Refused as e:
                if e.kind == "unavailable":  # Temporal did not answer: the same request again
                    self.errors["request: unavailable"] += 1
                    await asyncio.sleep(1.0)
                    continue
                self.errors[f"refused: {str(e)[:60]}"] += 1
                acted = False
            except Exception as e:  # sent, perhaps done: tried again with the same id
                self.errors[f"request: {type(e).__name__}"] += 1
                await asyncio.sleep(1.0)
                continue
            if not acted:
                await self.until_changed(wf)

    async def history_stage(self, wf: str) -> tuple[str, str] | None:
        """(stage, waiting for) as the workflow's history has them now."""
        try:
            described = await self.api.client.get_workflow_handle(wf).describe()
        except Exception:
            return None
        attrs = described.typed_search_attributes
        stage = attrs.get(search.STAGE)
        return (stage, attrs.get(search.WAITING_FOR) or "") if stage else None

    def listed(self, wf: str) -> tuple[str, str] | None:
        """(stage, waiting for) as the Web UI's list shows them: the history's."""
        shown = self.shown.get(wf)
        if shown is None or not shown[1]:
            return None
        return str(shown[1][0]), str(shown[2][0]) if shown[2] else ""

    async def until_changed(self, wf: str, within: float | None = None) -> None:
        """Until the application's listed attributes change, or ``within`` seconds (by
        default :attr:`fallback`: a change the list missed). Not when its timer is due:
        the timer's task changes what is listed, and a query sent as the timer fires is
        what the SDK defect needs (README)."""
        changed = self.changed.setdefault(wf, asyncio.Event())
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), self.fallback if within is None else within)

    async def watch(self, task_queue: str) -> None:
        """The visibility list of the season's applications, once a second."""
        query = f"TaskQueue = '{task_queue}' AND WorkflowType = 'ApplicationWorkflow'"
        while True:
            try:
                async for w in self.api.client.list_workflows(query):
                    attrs = w.search_attributes
                    shown = (
                        w.status,
                        *(tuple(attrs.get(k) or ()) for k in ("Stage", "WaitingFor", "Overdue")),
                    )
                    if self.shown.get(w.id) != shown:
                        self.shown[w.id] = shown
                        self.changed.setdefault(w.id, asyncio.Event()).set()
            except Exception as e:  # the server away for a moment
                self.errors[f"watch: {type(e).__name__}"] += 1
            await asyncio.sleep(1.0)

    async def act(self, i: int, wf: str, st: ApplicationStatus) -> bool:
        """The desk of the application's step acts at once (the harness's offices do not
        wait), with request ids fixed by the visit: a retry after a fault changes nothing."""
        self.index[wf] = i
        desk = desk_at(PROGRAMME, st.stage)
        return desk is not None and await desk.act(self, st)

    # The floor the desks act on (workers/officials/base.Floor).

    return_rate = 0.0  # nothing returned for correction: every review decides at once

    def rejection_rate(self, first: bool) -> float:
        return 0.02

    def due(self, st: ApplicationStatus, what: str, lo: float, hi: float) -> bool:
        return True

    def draw(self, st: ApplicationStatus, what: str) -> random.Random:
        return self.rng(self.index[st.workflow_id], f"{what}/{self.visit(st, what)}")

    def visit(self, st: ApplicationStatus, what: str) -> int:
        return self.visits[(st.workflow_id, what)]

    def request_id(self, st: ApplicationStatus, what: str) -> str:
        return f"f-{self.index[st.workflow_id]}-{what}-{self.visit(st, what)}"

    def sent(self, st: ApplicationStatus, what: str, note: str) -> None:
        self.visits[(st.workflow_id, what)] += 1

    def objects(self, st: ApplicationStatus) -> bool:
        return self.draw(st, "objects").random() < 0.08

    def upholds(self, st: ApplicationStatus, objection_id: str) -> bool:
        return self.draw(st, f"upholds/{objection_id}").random() < 0.02

    async def county_office(self) -> None:
        """Funds asked for once every application still open waits for them, and again
        for any that reach the funds step later; finance answers a day after each. Fixed
        request ids: a retry after a fault changes nothing."""
        bureau = people.county_office(_FUNDS.requested_by, self.county)
        finance = people.county_office(Role.COUNTY_FINANCE, self.county)
        n = 0
        quiet_until = 0.0  # after a round, the ones it released leave the funds step
        while True:
            open_ = {wf: s for wf, s in self.stages.items() if s not in ENDED}
            waiting = [wf for wf, s in open_.items() if s == FUNDS]
            everyone_in = len(self.stages) == len(self.forms)
            # The first request once nobody is still before the funds step (or nothing
            # has moved for ten days: the county does not wait for one stuck forever);
            # another for those still waiting two days after a round's funds arrived.
            quiet = time.monotonic() - self.last_change > 10 * self.day
            early = not n and not quiet and any(s in BEFORE_FUNDS for s in open_.values())
            if not everyone_in or not waiting or early or time.monotonic() < quiet_until:
                await asyncio.sleep(0.5)
                continue
            n += 1
            summary = await self._until_done(
                f"funds request {n}",
                lambda n=n: self.api.request_funds(
                    PROGRAMME.code, SEASON, self.county, bureau, request_id=f"fr-faults-{n}"
                ),
            )
            if summary is None:
                if self.season_closed:
                    return  # nothing more can be asked for: its applications are stuck
                quiet_until = time.monotonic() + 2 * self.day
                continue
            await asyncio.sleep(self.day)
            await self._until_done(
                f"funds arrival {n}",
                lambda n=n, summary=summary: self.api.funds_arrived(
                    PROGRAMME.code,
                    SEASON,
                    self.county,
                    finance,
                    summary.request_id,
                    summary.total_cny,
                    f"CZ-FAULTS-{n}",
                    request_id=f"fa-faults-{n}",
                ),
            )
            quiet_until = time.monotonic() + 2 * self.day
            # The payout begins with the funds (a batch may pay between two looks).
            self.phase_began.setdefault("payout", time.monotonic() - self.started)

    async def _until_done(self, what: str, send: Any) -> Any:
        """Sent until it is answered (the worker or the server away for a while); a
        refusal for a reason is an answer (None)."""
        while True:
            try:
                return await send()
            except Refused as e:
                if "Timeout" not in str(e) and "deadline" not in str(e).lower():
                    self.errors[f"{what} refused: {str(e)[:80]}"] += 1
                    self.season_closed |= any(p.problem == "closed" for p in e.problems)
                    return None
                self.errors[f"{what}: timed out"] += 1
                await asyncio.sleep(1.0)
            except Exception as e:
                self.errors[f"{what}: {type(e).__name__}"] += 1
                await asyncio.sleep(1.0)


def say(what: str) -> None:
    """One line on stderr (stdout is the summary's)."""
    print(f"faults: {what}", file=sys.stderr, flush=True)


def progress(season: Season) -> None:
    """One line on stderr: the seconds, the stages, the faults' phases begun."""
    stages = dict(Counter(season.stages.values()).most_common())
    say(
        f"{time.monotonic() - season.started:.0f} s {stages} "
        f"phases {sorted(season.phase_began)} errors {sum(season.errors.values())}"
    )


async def chaos(stack: Stack, season: Season, faults: list[Fault], done: asyncio.Event) -> None:
    """Each fault in turn: once its phase has begun and its moment has come."""
    for fault in faults:
        while fault.phase not in season.phase_began and not done.is_set():
            await asyncio.sleep(0.2)
        if done.is_set():
            fault.skipped = "the season ended before this phase"
            continue
        due = season.phase_began[fault.phase] + fault.after_days * season.day
        await asyncio.sleep(max(0.0, due - (time.monotonic() - season.started)))
        fault.at_s = round(time.monotonic() - season.started, 1)
        fault.stages = dict(Counter(season.stages.values()))
        fault.down_at = datetime.now(UTC).isoformat()
        if fault.kind == "worker":
            stack.kill_worker()
            await asyncio.sleep(fault.down_s)
            stack.start_worker()
        else:
            await asyncio.to_thread(stack.stop_server)
            await asyncio.sleep(fault.down_s)
            await stack.start_server()
        restarted, restarted_at = time.monotonic(), datetime.now(UTC)
        polled = await polled_again(stack, season, restarted_at)
        fault.up_at = datetime.now(UTC).isoformat()
        fault.recover_s = None if polled is None else round(polled - restarted, 2)


async def polled_again(
    stack: Stack, season: Season, since: datetime, within: float = 180.0
) -> float | None:
    """When a worker polls the workflow queue again (seen by the server after ``since``);
    None if none did within ``within`` seconds. Not by asking a workflow: a query that
    reaches a worker before the workflow's pending task is the SDK defect's trigger
    (README), and right after a restart every open workflow has one pending."""
    deadline = time.monotonic() + within
    request = DescribeTaskQueueRequest(
        namespace=season.api.client.namespace,
        task_queue=TaskQueue(name=season.api.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    worker = stack.worker.popen.pid if stack.worker is not None else None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the server still starting
            described = await season.api.client.workflow_service.describe_task_queue(
                request, timeout=timedelta(seconds=5)
            )
            for poller in described.pollers:
                seen = poller.last_access_time.ToDatetime(tzinfo=UTC)
                if seen > since and (worker is None or poller.identity.startswith(f"{worker}@")):
                    return time.monotonic()
        await asyncio.sleep(0.2)
    return None


def quiet_runtime() -> Runtime:
    """The SDK's own warnings (retries while a server is down, by the hundred) go to
    stderr at ERROR only: stdout is the summary's."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def settings_for(
    work: Path, epoch: datetime, day_seconds: float, closed: list[str]
) -> tuple[Settings, dict[str, str]]:
    grpc, ui = free_port(), free_port()
    env = {
        "AIDFLOW_DATA_DIR": str(work),
        "AIDFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
        "AIDFLOW_GRPC_PORT": str(grpc),
        "AIDFLOW_UI_PORT": str(ui),
        "AIDFLOW_TASK_QUEUE": "faults",
        "AIDFLOW_DATABASE_URL": f"sqlite:///{work / 'aidflow.db'}",
        "AIDFLOW_SECRET_KEY": SECRET,
        "AIDFLOW_CALENDAR": "compressed",
        "AIDFLOW_CALENDAR_EPOCH": epoch.isoformat(),
        "AIDFLOW_CALENDAR_BASE_DAY": PROGRAMME.window_opens.in_year(SEASON).isoformat(),
        "AIDFLOW_CALENDAR_DAY_SECONDS": str(day_seconds),
        "AIDFLOW_BANK": "simulated",
        "AIDFLOW_BANK_SIM_DELAY_SECONDS": str(min(day_seconds, 2.0)),
        "AIDFLOW_BANK_SIM_CLOSED_SUFFIXES": json.dumps(closed),
        "AIDFLOW_LOG_LEVEL": "WARNING",
        "AIDFLOW_METRICS_PORT": "",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return settings, env


async def run_faults(
    applications: int,
    kills: int,
    server_restarts: int,
    seed: int,
    *,
    day_seconds: float = 2.0,
    work: Path | None = None,
    limit_s: float = 3600.0,
) -> dict[str, Any]:
    work = work or Path(tempfile.mkdtemp(prefix="aidflow-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    forms = applicants(applications, SEASON, seed, programme=PROGRAMME.code)
    closed = [
        forms[i].account_number[-6:]
        for i in rng.sample(range(applications), k=max(1, applications // 20))
    ]
    # The calendar starts once the stack is up and the registry is in.
    epoch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
    settings, env = settings_for(work, epoch, day_seconds, closed)
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    keys = Keys(settings.secret_key_bytes())
    load_sample_county(engine, forms, SEASON, keys.hash_id)
    stack = Stack(work, settings, env)
    faults = plan(kills, server_restarts, rng)
    started = time.monotonic()
    try:
        await stack.start_server()
        stack.start_worker()
        client = await connect(settings, quiet_runtime())
        api = AidflowClient(
            client,
            task_queue=settings.task_queue,
            keys=keys,
            calendar=settings.build_calendar(),
            programmes=dict(BUILTIN_PROGRAMMES),
            lookup_member=RegistryReader(engine).lookup,
            lookup_applications=RegistryReader(engine).applications,
            claim_application=RegistryReader(engine).claim,
        )
        api.repayment_batch_delay = timedelta(seconds=day_seconds)
        await asyncio.sleep(max(0.0, (epoch - datetime.now(UTC)).total_seconds()) + 0.2)
        season = Season(api, forms, seed, day_seconds, partial(read_status, engine))
        sem = asyncio.Semaphore(32)

        async def submit(f: Any) -> str | None:
            async with sem:
                for _ in range(30):
                    try:
                        return await api.submit(f)
                    except Exception as e:
                        season.errors[f"submit: {type(e).__name__}"] += 1
                        await asyncio.sleep(1.0)
                return None

        wfs = await asyncio.gather(*(submit(f) for f in forms))
        submitted = [wf for wf in wfs if wf is not None]
        done = asyncio.Event()
        faulting = asyncio.create_task(chaos(stack, season, faults, done))
        county = asyncio.create_task(season.county_office())
        watching = asyncio.create_task(season.watch(settings.task_queue))
        work_done = asyncio.gather(*(season.application(i, wf) for i, wf in enumerate(submitted)))
        # Until every application has ended, or nothing has moved for a long while
        # (stuck ones are counted), or the time limit; or, sooner, once nothing has moved
        # for a while and every open one is a workflow the SDK defect broke (it will not
        # move again: waiting out the stall only costs time).
        stall_s = max(60.0, 60 * day_seconds)
        looked_at = said_at = 0.0
        while not work_done.done() and time.monotonic() - started < limit_s:
            quiet = time.monotonic() - season.last_change
            if quiet > stall_s:
                break
            if quiet > max(20.0, 20 * day_seconds) and time.monotonic() - looked_at > 10:
                looked_at = time.monotonic()
                if await only_broken_left(api, season, windows(faults)):
                    break
            await asyncio.wait({work_done}, timeout=1.0)
            if time.monotonic() - said_at > 30:  # where it stands, for a run that hangs
                said_at = time.monotonic()
                progress(season)
        done.set()
        # A fault under way finishes (its recovery check is bounded); one waiting for
        # its moment is dropped.
        try:
            await asyncio.wait_for(faulting, 300)
        except TimeoutError:
            season.errors["chaos: cut short after the season"] += 1
        for task in (work_done, county, watching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        seconds = time.monotonic() - started
        summary = await check(api, engine, keys, work, submitted, season, windows(faults))
    finally:
        stack.close()
        engine.dispose()
    return {
        "applications": applications,
        "submitted": len(submitted),
        **summary,
        "kills": sum(1 for f in faults if f.kind == "worker" and f.at_s is not None),
        "server_restarts": sum(1 for f in faults if f.kind == "server" and f.at_s is not None),
        "recovery_s": [f.recover_s for f in faults if f.recover_s is not None],
        "faults": [asdict(f) for f in faults],
        "client_errors": dict(season.errors.most_common(12)),
        "status_reads": season.asked,
        "seconds": round(seconds, 1),
        "seed": seed,
        "day_seconds": day_seconds,
    }


# How long after a fault's window a task may still carry what the defect left (the
# sticky queue's 10 s, a task retried, a query in between): a server restart's mark.
_AFTER_FAULT = timedelta(seconds=30)


def windows(faults: list[Fault]) -> list[tuple[datetime, datetime]]:
    """Each fault's window on the wall clock, widened by what can follow it."""
    return [
        (datetime.fromisoformat(f.down_at), datetime.fromisoformat(f.up_at) + _AFTER_FAULT)
        for f in faults
        if f.down_at and f.up_at
    ]


def _failed_event(message: str) -> int | None:
    """The event a nondeterminism error names ("HistoryEvent(id: 31, ...")."""
    _, sep, tail = message.partition("HistoryEvent(id: ")
    digits = "".join(itertools.takewhile(str.isdigit, tail))
    return int(digits) if sep and digits else None


def after_a_fault(
    history: WorkflowHistory, event_id: int | None, faults: list[tuple[datetime, datetime]]
) -> bool:
    """Whether a task before ``event_id`` of this history (anywhere in it, with no id:
    "Timer fired event did not have expected timer id 6, it was 7!") may have carried
    what the defect leaves: one that a worker ran for this workflow after another worker had run
    the one before (a worker started after a kill, which may have built the workflow to
    answer a query first), begun after a fault; or one begun within a fault's window (a
    restarted server sends a worker's own workflows back to it, no new worker)."""
    started: list[tuple[str, datetime]] = []  # each task's start: its worker, its time
    for e in history.events:
        if event_id is not None and e.event_id >= event_id:
            break
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started.append(
                (
                    e.workflow_task_started_event_attributes.identity,
                    e.event_time.ToDatetime(tzinfo=UTC),
                )
            )
    # The task that carried the defect's commands may come before the one whose event
    # shows the difference (a timer started at the wrong clock fails at its cancellation).
    first_fault = min((lo for lo, _ in faults), default=None)
    for (before, _), (worker, at) in itertools.pairwise(started):
        if first_fault is not None and at >= first_fault and worker != before:
            return True
    return any(lo <= at <= hi for _, at in started for lo, hi in faults)


def failed_task(e: HistoryEvent) -> bool:
    """A workflow task that failed. Not one the server turned back because new events
    arrived while it ran (``UNHANDLED_COMMAND``: the worker runs it again with them at
    once, as Temporal means it to; the 500-application run of 2026-12-03 counted one as
    unexplained)."""
    return (
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause
        != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    )


DEADLOCK = "Potential deadlock detected"


def overloaded_and_recovered(events: Sequence[HistoryEvent], i: int) -> bool:
    """The task at ``i`` was failed by the SDK's deadlock detector (no yield within 2 s of
    the worker's CPU: a saturated machine, a notice taking a hundred joins at once) and
    the workflow went on: a later task completed. One that never completes is stuck,
    and counted so."""
    e = events[i]
    return DEADLOCK in e.workflow_task_failed_event_attributes.failure.message and any(
        later.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        for later in events[i + 1 :]
    )


def defect_shape(
    history: WorkflowHistory, message: str, faults: list[tuple[datetime, datetime]]
) -> bool:
    """A nondeterminism error at an event written by a task that carried what the defect
    leaves (:func:`after_a_fault`). aidflow's own nondeterminism shows without faults
    too: the replay tests, the simulator, the demo."""
    return NONDETERMINISM in message and after_a_fault(history, _failed_event(message), faults)


def broken_by_defect(history: WorkflowHistory, faults: list[tuple[datetime, datetime]]) -> bool:
    """A workflow task of this history failed with the defect's shape: the workflow
    cannot move on."""
    return any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and defect_shape(
            history,
            e.workflow_task_failed_event_attributes.failure.message,
            faults,
        )
        for e in history.events
    )


async def only_broken_left(
    api: AidflowClient, season: Season, faults: list[tuple[datetime, datetime]]
) -> bool:
    """Whether every open application (or the season they wait on) is one the defect
    broke."""
    open_ = [wf for wf, st in season.stages.items() if st not in ENDED]
    if not open_:
        return False
    try:
        return await _only_broken_left(api, open_, faults)
    except Exception:  # the server away for a moment: look again later
        return False


async def _only_broken_left(
    api: AidflowClient, open_: list[str], faults: list[tuple[datetime, datetime]]
) -> bool:
    seasons = [
        w.id
        async for w in api.client.list_workflows(
            f"TaskQueue = '{api.task_queue}' AND WorkflowType = 'SeasonWorkflow'"
        )
    ]
    for wf in seasons:
        if broken_by_defect(await api.client.get_workflow_handle(wf).fetch_history(), faults):
            return True
    for wf in open_:
        if not broken_by_defect(await api.client.get_workflow_handle(wf).fetch_history(), faults):
            return False
    return True


async def check(
    api: AidflowClient,
    engine: Any,
    keys: Keys,
    work: Path,
    submitted: list[str],
    season: Season,
    faults: list[tuple[datetime, datetime]],
) -> dict[str, Any]:
    with Session(engine) as s:
        stages = dict(s.exec(select(ApplicationRow.workflow_id, ApplicationRow.stage)).all())
    rows = set(stages)
    final: dict[str, str] = {}
    say(f"check: the final stages of {len(submitted)} applications")
    for wf in submitted:  # as recorded (a query could trigger the SDK defect: README)
        final[wf] = stages.get(wf, "(no record)")
    with Session(engine) as s:
        paid_rows = s.exec(
            select(Payment.workflow_id, func.count())
            .where(Payment.status == "paid")
            .group_by(col(Payment.workflow_id))
        ).all()
        payments = {p.idempotency_key: p for p in s.exec(select(Payment)).all()}
    ledger = sqlite3.connect(work / "bank" / "ledger.db")
    ledger.row_factory = sqlite3.Row
    bank_paid: Counter[str] = Counter()
    wrong = 0
    for r in ledger.execute("select * from ledger where status = 'paid'"):
        p = payments.get(r["idempotency_key"])
        if (
            p is None
            # The simulated bank keeps an account's last four digits.
            or str(r["account"])[-4:] != p.account_masked[-4:]
            or r["amount_cny"] != p.amount_cny
        ):
            wrong += 1
            continue
        bank_paid[p.workflow_id] += 1
    ledger.close()
    say("check: the chain heads of the histories and the audit log")
    heads = await asyncio.wait_for(chain_heads(api.client, programme=PROGRAMME.code), 600)
    report = audit.verify(engine, keys.audit, witness=heads)
    failures = timeouts = by_load = 0
    replayer = replayer_for(keys)
    replay_failures: dict[str, str] = {}
    by_defect: Counter[str] = Counter()  # what SDK_DEFECT explains, by kind
    broken: set[str] = set()  # workflows SDK_DEFECT left unable to run or replay
    privacy: list[str] = []
    replay_hung: list[str] = []
    said_at = time.monotonic()
    say("check: every history replayed and scanned (R9)")
    async for w in api.client.list_workflows(f"TaskQueue = '{api.task_queue}'"):
        if time.monotonic() - said_at > 30:
            said_at = time.monotonic()
            say(f"check: {len(replay_failures)} replay failures so far, at {w.id}")
        history = await _history_of(api.client, w.id, w.run_id)
        privacy += r9.scan_history_json(w.id, history.to_json())
        for i, e in enumerate(history.events):
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                timeouts += 1
            if failed_task(e):
                failures += 1
                message = e.workflow_task_failed_event_attributes.failure.message
                if defect_shape(history, message, faults):
                    by_defect["task_failures"] += 1
                    broken.add(w.id)
                elif overloaded_and_recovered(history.events, i):
                    by_load += 1
        # Every history must replay on the code that wrote it (a worker restarted after a
        # crash replays them all).
        try:
            replayed = await asyncio.wait_for(
                replayer.replay_workflow(history, raise_on_replay_failure=False), 120
            )
        except TimeoutError:  # counted, and named: the run goes on to its summary
            replay_hung.append(w.id)
            continue
        if replayed.replay_failure is not None:
            message = str(replayed.replay_failure)
            replay_failures[w.id] = message[:240]
            if defect_shape(history, message, faults):
                by_defect["replay_failures"] += 1
                broken.add(w.id)
    # A workflow the defect broke holds the applications that wait on it as well: a
    # notice its members, the season or a payout batch those past the notices.
    with Session(engine) as s:
        places = {
            r.workflow_id: r
            for r in s.exec(
                select(ApplicationRow).where(col(ApplicationRow.workflow_id).in_(submitted))
            )
        }
    payout_broken = any(not wf.startswith((PROGRAMME.code + "/", "notice/")) for wf in broken)

    def notice_of(wf: str) -> str | None:
        row = places.get(wf)
        if row is None:
            return None
        codes = {Level.VILLAGE: row.village_code, Level.TOWNSHIP: row.township_code}
        return notice_id(final[wf], lambda level: codes.get(level, row.county_code))

    # A notice posts by itself when a member on that posting says its time has come: a
    # member the defect broke never says it, and holds the members ready after it.
    held_notices = {notice_of(wf) for wf in broken if wf in final} - {None}

    def held_by_defect(wf: str) -> bool:
        if wf in broken:
            return True
        notice = notice_of(wf)
        if notice is not None:
            return notice in broken or notice in held_notices
        return payout_broken and final[wf] not in BEFORE_FUNDS

    held = {wf for wf in submitted if final[wf] not in ENDED and held_by_defect(wf)}
    by_defect["stuck"] = len(held)
    say(f"check: {len(held)} held by the defect; the others' status, R9 over tables and files")
    # What each stuck application the defect does not explain says it waits for.
    stuck_examples: dict[str, str] = {}
    for wf in submitted:
        if final[wf] in ENDED or wf in held or len(stuck_examples) >= 5:
            continue
        try:
            st = await asyncio.wait_for(api.status(wf), 20)
            stuck_examples[wf] = st.details_en[:200]
            if st.notice is None and "notice" in st.stage:  # what its notice says of it
                n = await _notice_of(api, st)
                if n is not None:
                    stuck_examples[wf] += (
                        f" | notice {n.notice_id}: auto {n.auto_post_at}, postings "
                        f"{[(p.number, str(p.posted_at)) for p in n.postings]}, pending "
                        f"{[(m.workflow_id[-6:], str(m.joined_at), str(m.auto_post_at)) for m in n.pending]}"
                    )
        except Exception as e:
            stuck_examples[wf] = f"(no answer: {type(e).__name__})"
    return {
        "lost": sum(1 for wf in submitted if wf not in rows or final[wf] == "(no answer)"),
        "stuck": sum(1 for wf in submitted if final[wf] not in ENDED),
        "paid": sum(1 for st in final.values() if st == PROGRAMME.done_stage),
        "ended": dict(Counter(final.values())),
        "paid_twice": {
            "bank": sum(1 for n in bank_paid.values() if n > 1),
            "database": sum(1 for _, n in paid_rows if n > 1),
        },
        "wrong_payments": wrong,
        "audit_verified": report.ok and len(heads) == len(submitted),
        "audit_rows": report.rows,
        "audit_breaks": [str(b) for b in report.breaks[:5]],
        "task_failures": failures,
        # Of them: failed by the deadlock detector on a saturated machine, and the
        # workflow went on (overloaded_and_recovered).
        "task_failures_by_load": by_load,
        "task_timeouts": timeouts,
        "replay_failures": len(replay_failures),
        "replay_hung": replay_hung,
        # Of stuck, task_failures and replay_failures: those SDK_DEFECT explains.
        "by_sdk_defect": dict(by_defect),
        "replay_failure_examples": dict(list(replay_failures.items())[:3]),
        "stuck_examples": stuck_examples,
        # R9: no full identity or account number in any history, table or file (but the
        # bank's disbursement files).
        "r9": r9.summary(
            privacy
            + await asyncio.to_thread(r9.scan_database, engine)
            + await asyncio.to_thread(r9.scan_files, work)
        ),
    }


async def _history_of(client: Client, workflow_id: str, run_id: str | None) -> WorkflowHistory:
    """A history, asked again for a while when the server, restarted by the harness, says
    its namespace is not found (its namespace cache not yet filled: seen in CI)."""
    for attempt in range(10):
        try:
            return await asyncio.wait_for(
                client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history(), 60
            )
        except RPCError as e:
            if "Namespace" not in e.message or "not found" not in e.message or attempt == 9:
                raise
            await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


def replayer_for(keys: Keys) -> Replayer:
    """Every workflow type, as the worker runs them (with its authority checks)."""
    return Replayer(
        workflows=ALL_WORKFLOWS,
        data_converter=pydantic_data_converter,
        # Without the sandbox: replaying checks determinism; the sandbox would import
        # the workflow modules again for every history.
        workflow_runner=UnsandboxedWorkflowRunner(),
        interceptors=[
            AuthorityInterceptor(authority_key=keys.authority, internal_key=keys.internal)
        ],
    )


def notice_step(stage: str) -> NoticeStep | None:
    """The programme's public notice at ``stage``, if it is one (the programme answers:
    the harness asks no step its kind)."""
    return next((n for level in Level if (n := PROGRAMME.notice_at(level, stage))), None)


async def _notice_of(api: AidflowClient, st: ApplicationStatus) -> NoticeStatus | None:
    """The notice an application in a notice step waits for (for the report of a stuck
    one)."""
    notice = notice_id(st.stage, st.places.code_at)
    if notice is None:
        return None
    with contextlib.suppress(Exception):
        return await asyncio.wait_for(api.notice_status(notice), 20)
    return None


def notice_id(stage: str, code_at: Callable[[Level], str]) -> str | None:
    """The notice workflow an application in ``stage`` is a member of, if any."""
    step = notice_step(stage)
    if step is None:
        return None
    return notice_workflow_id(
        PROGRAMME.code, SEASON, "", step.level, code_at(step.level), step.stage
    )


def unexplained(result: dict[str, Any]) -> dict[str, int]:
    """stuck, task_failures and replay_failures that neither the SDK defect nor a
    saturated machine (a task failed by the deadlock detector and retried) explains."""
    known = dict(result["by_sdk_defect"])
    known["task_failures"] = known.get("task_failures", 0) + result.get("task_failures_by_load", 0)
    found = {
        k: result[k] - known.get(k, 0)
        for k in ("stuck", "task_failures", "replay_failures")
        if result[k] - known.get(k, 0)
    }
    if result.get("replay_hung"):
        found["replay_hung"] = len(result["replay_hung"])
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--applications", type=int, default=20)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--server-restarts", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--day-seconds", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=None, help="also write the summary here")
    p.add_argument(
        "--work", type=Path, default=None, help="the stack's folder (default: a new temporary one)"
    )
    p.add_argument(
        "--limit-s", type=float, default=3600.0, help="give up on the season after this long"
    )
    a = p.parse_args()
    result = asyncio.run(
        run_faults(
            a.applications,
            a.kills,
            a.server_restarts,
            a.seed,
            day_seconds=a.day_seconds,
            work=a.work,
            limit_s=a.limit_s,
        )
    )
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    # What aidflow guarantees through crashes; what the SDK defect explains is counted
    # apart (by_sdk_defect) and does not fail the run.
    bad = (
        result["lost"]
        or any(result["paid_twice"].values())
        or result["wrong_payments"]
        or not result["audit_verified"]
        or not result["r9"]["clean"]
        or unexplained(result)
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
