"""aidflow's benchmark, one command:

    .venv/bin/python -m bench.run                      # defaults below
    .venv/bin/python -m bench.run --applications 300 --day-seconds 1 --idle 10000 --simulate 1000

1. Side by side on one Temporal dev server (SQLite persistence, as ``aidflow up``):
   (a) the county-subsidy pipeline for N applications, on the compressed calendar,
       driven by concurrent simulated services through the client API (decisions as
       updates, the county's funds request and arrival, the simulated bank paying);
   (b) the baseline: N bare workflows doing what one of (a)'s applications did (its
       updates, timers with their durations, activities, local activities and
       signals, read from its history) with no domain logic.
   Each worker is its own process (``aidflow worker``; ``python -m bench.baseline
   worker``), so its peak RSS is its own. Printed: applications completed per
   second, decision-update latency p50/p99, worker peak RSS, and (a)/(b).
2. The idle footprint: ``--idle`` applications waiting in a posted notice (real
   calendar, a 5-working-day timer each): worker RSS and database sizes.
3. ``aidflow simulate`` scaling: wall time for each size in ``--simulate``.

Results go to the terminal and to bench/results/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory, WorkflowQueryFailedError
from temporalio.service import RPCError

from bench.ports import free_port_below_ephemeral
from workers.simulate.server_load import process_cpu_seconds

if TYPE_CHECKING:
    from models.programme import Programme
    from store.sealing import Keys
    from workers.client import AidflowClient
    from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
console = Console(stderr=True)


# ------------------------------------------------------------------ processes


@dataclass
class Proc:
    """A child process whose memory we read from /proc."""

    popen: subprocess.Popen[bytes]
    log: Path
    profiled: bool = False  # ``popen`` is py-spy, the process its child (BENCH_PROFILE)

    _child: int | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        """The process measured: py-spy's child when profiled (py-spy itself until the
        child is seen, for at most 10 s)."""
        if not self.profiled:
            return self.popen.pid
        deadline = time.monotonic() + 10
        while self._child is None and self.popen.poll() is None and time.monotonic() < deadline:
            self._child = _child_of(self.popen.pid)
            if self._child is None:
                time.sleep(0.02)
        return self._child or self.popen.pid

    def _status(self, key: str) -> float:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
        return float("nan")

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far (NaN once it is gone)."""
        return process_cpu_seconds(self.pid, unknown=float("nan"))

    def rss_mib(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mib(self) -> float:
        return self._status("VmHWM")

    def stop(self) -> None:
        if self.popen.poll() is None:
            if self.profiled:
                # py-spy writes its samples once the process it runs has exited.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
            else:
                self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                if self.profiled:  # else the worker outlives py-spy
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                self.popen.kill()
                self.popen.wait(5)


def _child_of(pid: int) -> int | None:
    """A child of ``pid``, by the parent in each process's ``/proc/<pid>/stat``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # After the command's ")": the state, then the parent's pid.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                return int(stat.parent.name)
    return None


@dataclass
class Procs:
    """Several worker processes polling one task queue (issue 20's scale-out)."""

    procs: list[Proc]

    def peak_rss_mib(self) -> float:
        """The largest of the processes' peaks: what one worker needs."""
        return max(p.peak_rss_mib() for p in self.procs)

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs)

    def total_peak_rss_mib(self) -> float:
        return sum(p.peak_rss_mib() for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def spawn_workers(
    n: int, args: list[str], work: Path, name: str, env: dict[str, str] | None = None
) -> Procs:
    return Procs([spawn(args, work / f"{name}-{i}.log", env, profile=True) for i in range(n)])


def spawn_bare_workers(n: int, address: str, work: Path, name: str) -> Procs:
    """(b)'s worker processes (``bench/baseline.py``)."""
    args = [str(sys.executable), "-m", "bench.baseline", "worker", "--address", address]
    return spawn_workers(n, args, work, name)


def records_client(
    client: Client,
    settings: Settings,
    keys: Keys,
    engine: Any,
    programmes: dict[str, Programme] | None = None,
) -> AidflowClient:
    """aidflow's client as the benchmark's offices use it: the settings' queue and
    calendar, the registry of ``engine`` (the built-in programmes unless told)."""
    from models.programmes import BUILTIN_PROGRAMMES
    from store.registry import RegistryReader
    from workers.client import AidflowClient

    reader = RegistryReader(engine)
    return AidflowClient(
        client,
        task_queue=settings.task_queue,
        keys=keys,
        calendar=settings.build_calendar(),
        programmes=dict(programmes or BUILTIN_PROGRAMMES),
        lookup_member=reader.lookup,
        lookup_applications=reader.applications,
        claim_application=reader.claim,
    )


def spawn(
    args: list[str], log: Path, env: dict[str, str] | None = None, *, profile: bool = False
) -> Proc:
    """``profile``, with ``BENCH_PROFILE=<dir>`` and py-spy at hand: the process runs under
    ``py-spy record`` for its whole life, its samples in ``<dir>/<log's name>.txt``
    (collapsed stacks). py-spy starts it rather than attaching to it: some sandboxes,
    this one among them, refuse to let one process read another's memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    into, spy = os.environ.get("BENCH_PROFILE"), shutil.which("py-spy", path=str(BIN))
    if profile and into and spy is None:
        console.print("[yellow]BENCH_PROFILE is set, but py-spy is not installed: not profiled")
    profiled = bool(profile and into and spy)
    if profiled:
        assert into is not None and spy is not None
        Path(into).mkdir(parents=True, exist_ok=True)
        # The run's directory in the name: the runs of 1, 2 and 4 workers name their
        # workers alike.
        out_file = str(Path(into) / f"{log.parent.name}-{log.stem}.txt")
        # Sampled without pausing it (a paused worker answered queries too late).
        spy_args = [spy, "record", "-r", "100", "--nonblocking", "--format", "raw"]
        args = [*spy_args, "-o", out_file, "--", *args]
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    p = subprocess.Popen(
        args,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    out.close()
    return Proc(p, log, profiled)


def machine_busy_seconds() -> float:
    """CPU seconds all of this machine's cores have been busy (not idle, not waiting on
    I/O) since boot: the difference over a phase, against its wall time times the cores,
    says how saturated the machine was."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in cpu]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A free port for a server the benchmark (or the fault harness) starts: its share
    below the test processes' (``bench/ports.py``)."""
    return free_port_below_ephemeral(14_000, 2000)


@contextlib.asynccontextmanager
async def dev_server(work: Path) -> AsyncIterator[tuple[str, Path]]:
    """The dev server as ``aidflow up`` runs it (SQLite file), on free ports."""
    from workers.embedded import start_dev_server, wait_for_server
    from workers.settings import Settings

    s = Settings(data_dir=work, grpc_port=free_port(), ui_port=free_port(), metrics_port=None)
    server = start_dev_server(s)
    try:
        await wait_for_server(server, s)
        yield server.address, work / "temporal.db"
    finally:
        server.stop()


def file_mib(*paths: Path) -> float:
    total = 0
    for p in paths:
        for q in (p, Path(str(p) + "-wal"), Path(str(p) + "-shm")):
            if q.exists():
                total += q.stat().st_size
    return total / 2**20


def poll_after(waiting_until: datetime | None) -> float:
    """How long a simulated service waits before asking a workflow again: until the
    timer it waits for, or a few seconds (status queries are load on the worker: at
    every 2 s, 200 applications saturated it)."""
    if waiting_until is None:
        return 1.0
    left = (waiting_until - datetime.now(UTC)).total_seconds()
    if left < 0:
        return 1.0  # overdue, or its task is late: no use asking again at once
    return min(left + 0.05, 5.0)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# ------------------------------------------------------------- (a) pipeline


@dataclass
class RunResult:
    name: str
    applications: int
    completed: int
    wall_seconds: float
    per_second: float
    update_p50_ms: float
    update_p99_ms: float
    updates: int
    worker_peak_rss_mib: float
    extra: dict[str, Any] = field(default_factory=dict)


SECRET = "0123456789abcdef" * 4  # hex, as AIDFLOW_SECRET_KEY wants


def pipeline_env(address: str, work: Path, epoch: datetime, day_seconds: float) -> dict[str, str]:
    return {
        "AIDFLOW_TEMPORAL_ADDRESS": address,
        "AIDFLOW_TASK_QUEUE": "bench-pipeline",
        "AIDFLOW_DATA_DIR": str(work),
        "AIDFLOW_DATABASE_URL": f"sqlite:///{work / 'aidflow.db'}",
        "AIDFLOW_SECRET_KEY": SECRET,
        "AIDFLOW_CALENDAR": "compressed",
        "AIDFLOW_CALENDAR_EPOCH": epoch.isoformat(),
        "AIDFLOW_CALENDAR_BASE_DAY": "2026-08-01",
        "AIDFLOW_CALENDAR_DAY_SECONDS": str(day_seconds),
        "AIDFLOW_BANK": "simulated",
        "AIDFLOW_BANK_SIM_DELAY_SECONDS": "0",
        "AIDFLOW_LOG_LEVEL": "WARNING",
        "AIDFLOW_METRICS_PORT": "",
    }


async def run_pipeline(
    address: str, work: Path, n: int, day_seconds: float, workers: int = 1
) -> tuple[RunResult, WorkflowHistory]:
    from models.application import Actor, DecisionRequest
    from models.domain import DecisionKind, Role
    from models.programmes import COUNTY_SUBSIDY_DEMO
    from store.db import make_engine, upgrade
    from workers.client import Refused
    from workers.settings import Settings
    from workers.synthetic import applicants, load_sample_county
    from workers.worker import connect

    work.mkdir(parents=True, exist_ok=True)
    # The calendar starts once the worker is up and the registry is in.
    epoch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    env = pipeline_env(address, work, epoch, day_seconds)
    os.environ.update(env)  # this process's client settings: the same calendar and key
    settings = Settings()
    url = settings.effective_database_url
    upgrade(url)
    engine = make_engine(url)
    forms = applicants(n, 2026, seed=11, programme=COUNTY_SUBSIDY_DEMO.code)
    from store.sealing import Keys

    keys = Keys(settings.secret_key_bytes())
    load_sample_county(engine, forms, 2026, keys.hash_id)
    worker = spawn_workers(workers, [str(BIN / "aidflow"), "worker"], work, "worker-a", env)
    try:
        client = await connect(settings)
        api = records_client(client, settings, keys, engine)
        api.repayment_batch_delay = timedelta(seconds=day_seconds)
        await asyncio.sleep(max(0.0, (epoch - datetime.now(UTC)).total_seconds()) + 0.2)
        latencies: list[float] = []
        query_timeouts: list[str] = []
        roles = {
            "village_review": Role.VILLAGE_COMMITTEE,
            "township_review": Role.TOWNSHIP_POVERTY_OFFICE,
            "county_approval": Role.COUNTY_EDUCATION_BUREAU,
        }
        stages: dict[str, str] = {}
        done_at: dict[str, float] = {}
        phases: dict[str, float] = {}
        started = time.monotonic()
        sem = asyncio.Semaphore(64)

        async def submit(f: Any) -> str:
            async with sem:
                return await api.submit(f)

        wfs = await asyncio.gather(*(submit(f) for f in forms))
        county = forms[0].places.county_code

        async def service(wf: str) -> None:
            """The offices' systems: decide the moment an application reaches them."""
            while True:
                try:
                    st = await api.status(wf)
                except Refused:  # a query that timed out under load: look again
                    query_timeouts.append(wf)
                    await asyncio.sleep(1.0)
                    continue
                stages[wf] = st.stage
                if st.stage in ("paid", "rejected", "withdrawn"):
                    done_at[wf] = time.monotonic()
                    return
                role = roles.get(st.stage)
                if role is not None and st.waiting_for == role.value:
                    place = {
                        Role.VILLAGE_COMMITTEE: st.places.village_code,
                        Role.TOWNSHIP_POVERTY_OFFICE: st.places.township_code,
                    }.get(role, st.places.county_code)
                    t0 = time.perf_counter()
                    await api.decide(
                        wf,
                        DecisionRequest(
                            request_id=uuid.uuid4().hex,
                            actor=Actor(
                                id=f"{role.value}-{place}", name="x", role=role, place_code=place
                            ),
                            stage=st.stage,
                            decision=DecisionKind.APPROVE,
                        ),
                    )
                    latencies.append(time.perf_counter() - t0)
                    continue
                await asyncio.sleep(poll_after(st.waiting_until))

        async def county_office() -> None:
            """Funds requested once every application awaits them; finance pays at once."""
            while not (len(stages) == n and all(s == "awaiting_funds" for s in stages.values())):
                await asyncio.sleep(0.2)
            # Where (a)'s wall time goes: its applications are paid in one batch, after
            # the last of them is approved; (b)'s each finish on their own.
            phases["all_awaiting_funds_s"] = round(time.monotonic() - started, 1)
            bureau = Actor(
                id="bureau", name="x", role=Role.COUNTY_EDUCATION_BUREAU, place_code=county
            )
            summary = await api.request_funds(COUNTY_SUBSIDY_DEMO.code, 2026, county, bureau)
            finance = Actor(id="finance", name="x", role=Role.COUNTY_FINANCE, place_code=county)
            await api.funds_arrived(
                COUNTY_SUBSIDY_DEMO.code,
                2026,
                county,
                finance,
                summary.request_id,
                summary.total_cny,
                "CZ-BENCH",
            )
            phases["funds_arrived_s"] = round(time.monotonic() - started, 1)

        await asyncio.gather(county_office(), *(service(wf) for wf in wfs))
        wall = max(done_at.values()) - started
        history = await api.handle(wfs[0]).fetch_history()
        paid = sum(1 for s in stages.values() if s == "paid")
        rss, total_rss = worker.peak_rss_mib(), worker.total_peak_rss_mib()
    finally:
        worker.stop()
        engine.dispose()
    return (
        RunResult(
            name="(a) aidflow pipeline",
            applications=n,
            completed=paid,
            wall_seconds=wall,
            per_second=paid / wall,
            update_p50_ms=pct(latencies, 0.5) * 1000,
            update_p99_ms=pct(latencies, 0.99) * 1000,
            updates=len(latencies),
            worker_peak_rss_mib=rss,
            extra={
                "day_seconds": day_seconds,
                "workers": workers,
                "workers_total_peak_rss_mib": total_rss,
                "status_query_timeouts": len(query_timeouts),
                **phases,
                "first_paid_s": round(min(done_at.values()) - started, 1),
            },
        ),
        history,
    )


def script_of(history: WorkflowHistory) -> tuple[list[str], dict[str, int]]:
    """What one application did, in order, as the baseline's script; and its counts."""
    steps: list[str] = []
    fired = {
        e.timer_fired_event_attributes.started_event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    }
    counts = {"updates": 0, "signals": 0, "activities": 0, "local_activities": 0, "timers": 0}
    # Event type -> (the baseline's step, what it counts as).
    plain = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: ("update", "updates"),
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: ("signal", "signals"),
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: ("activity", "activities"),
        EventType.EVENT_TYPE_MARKER_RECORDED: ("local", "local_activities"),
    }
    wfts = 0
    for e in history.events:
        t = e.event_type
        if t in plain:
            step, counted = plain[t]
            steps.append(step)
            counts[counted] += 1
        elif t == EventType.EVENT_TYPE_TIMER_STARTED and e.event_id in fired:
            secs = e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            summary = e.user_metadata.summary.data.decode(errors="replace")
            # Fixed-date and payment-limit watchers run beside the steps; the rest
            # (postings, notice ends, re-payment waits) are what the steps wait for.
            beside = "fixed date" in summary or "payment limit" in summary
            steps.append(f"{'bgtimer' if beside else 'timer'}:{secs.total_seconds():.3f}")
            counts["timers"] += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            wfts += 1
    counts["workflow_tasks"] = wfts
    counts["history_events"] = len(history.events)
    return steps, counts


def notice_seconds(history: WorkflowHistory, day_seconds: float) -> tuple[float, float]:
    """How long (a)'s application waited from each review's decision to the end of the
    notice after it (the posting at its rule's time, then the period, R2), for (b)'s
    floor: the same calendar, without aidflow's machinery. A week of the compressed
    calendar each if the history does not show both."""
    decided = [
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    ends = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        and " ends " in e.user_metadata.summary.data.decode(errors="replace")
    }
    ended = [
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
        and e.timer_fired_event_attributes.started_event_id in ends
    ]
    if len(decided) >= 2 and len(ended) >= 2:
        return (
            (ended[0] - decided[0]).total_seconds(),
            (ended[1] - decided[1]).total_seconds(),
        )
    week = 7 * day_seconds
    return week, week


# ------------------------------------------------------------- (b) baseline


async def run_baseline(
    address: str, work: Path, n: int, script: Any, workers: int = 1
) -> RunResult:
    """(b): ``n`` bare workflows on ``script``, driven as (a)'s services drive theirs;
    the funds' signal goes to all at once when every one waits for it, as the county's
    one funds release reaches every application of (a)."""
    from bench.baseline import BareApplication, BareStatus

    worker = spawn_bare_workers(workers, address, work, "worker-b")
    try:
        client = await Client.connect(address)
        await asyncio.sleep(3)  # the worker's start-up, as (a)'s before its epoch
        latencies: list[float] = []
        query_timeouts: list[str] = []
        done_at: list[float] = []
        started = time.monotonic()
        sem = asyncio.Semaphore(64)
        run_id = uuid.uuid4().hex[:6]

        async def start(i: int) -> Any:
            async with sem:
                return await client.start_workflow(
                    BareApplication.run,
                    script,
                    id=f"bare-{run_id}-{i}",
                    task_queue="bare",
                )

        waiting_for_funds: set[str] = set()
        funds = asyncio.Event()

        handles = await asyncio.gather(*(start(i) for i in range(n)))

        async def service(h: Any) -> None:
            while True:
                try:
                    st: BareStatus = await h.query(BareApplication.status)
                except (RPCError, WorkflowQueryFailedError):  # timed out under load
                    query_timeouts.append(h.id)
                    await asyncio.sleep(1.0)
                    continue
                if st.done:
                    await h.result()
                    done_at.append(time.monotonic())
                    return
                if st.next == "update":
                    t0 = time.perf_counter()
                    await h.execute_update(BareApplication.decide, uuid.uuid4().hex)
                    latencies.append(time.perf_counter() - t0)
                    continue
                if st.next == "signal":
                    if not funds.is_set():
                        waiting_for_funds.add(h.id)
                        if len(waiting_for_funds) == n:
                            funds.set()
                        await funds.wait()
                    await h.signal(BareApplication.event, "x")
                    continue
                await asyncio.sleep(poll_after(st.waiting_until))

        await asyncio.gather(*(service(h) for h in handles))
        wall = max(done_at) - started
        first = min(done_at) - started
        rss, total_rss = worker.peak_rss_mib(), worker.total_peak_rss_mib()
    finally:
        worker.stop()
    return RunResult(
        name="(b) bare Temporal baseline",
        applications=n,
        completed=len(done_at),
        wall_seconds=wall,
        per_second=len(done_at) / wall,
        update_p50_ms=pct(latencies, 0.5) * 1000,
        update_p99_ms=pct(latencies, 0.99) * 1000,
        updates=len(latencies),
        worker_peak_rss_mib=rss,
        extra={
            "workers": workers,
            "workers_total_peak_rss_mib": total_rss,
            "script": script.steps,
            "status_query_timeouts": len(query_timeouts),
            "first_done_s": round(first, 1),
        },
    )


# ------------------------------------------------------------ idle footprint


@dataclass
class IdleResult:
    applications: int
    setup_seconds: float
    worker_rss_mib: float
    worker_peak_rss_mib: float
    app_db_mib: float
    temporal_db_mib: float
    workflow_cache: int | None = None  # the worker's bound (None: its default)
    app_db_bytes_per_application: float = 0.0
    temporal_db_bytes_per_application: float = 0.0
    decisions_asked_again: int = 0  # refused at first (an update timed out), then accepted


def idle_programme() -> Any:
    """The county subsidy with its window around today and dates a month on, and the
    village notice posted by the village right after its review."""
    from models.domain import Level
    from models.programme import MonthDay
    from models.programmes import COUNTY_SUBSIDY

    today = date.today()
    end_of_year = date(today.year, 12, 31)

    def md(d: date) -> MonthDay:
        d = min(d, end_of_year)
        return MonthDay(month=d.month, day=d.day)

    # Every notice goes up after its review (not at the window's close).
    notices = {n.stage for n in map(COUNTY_SUBSIDY.notice_at, Level) if n is not None}
    steps = tuple(
        s.model_copy(update={"first_posting": "after_review"}) if s.stage in notices else s
        for s in COUNTY_SUBSIDY.steps
    )
    later = {"reviews_done": 30, "county_approval": 35, "payout": 40, "summary": 60}
    fixed = tuple(
        f.model_copy(update={"on": md(today + timedelta(days=later[f.key]))})
        for f in COUNTY_SUBSIDY.fixed_dates
    )
    return COUNTY_SUBSIDY.model_copy(
        update={
            "code": "bench-idle",
            "window_opens": md(today - timedelta(days=1)),
            "window_closes": md(today + timedelta(days=1)),
            "steps": steps,
            "fixed_dates": fixed,
        }
    )


async def run_idle(n: int, work: Path, cache: int | None = None) -> IdleResult:
    from models.application import Actor, DecisionRequest
    from models.domain import DecisionKind, Level, Role
    from models.notice import NoticePostRequest
    from store.db import make_engine, upgrade
    from store.sealing import Keys
    from workers.client import Refused
    from workers.settings import Settings
    from workers.synthetic import applicants, load_sample_county
    from workers.worker import connect

    prog = idle_programme()
    season = date.today().year
    async with dev_server(work / "temporal") as (address, temporal_db):
        env = {
            "AIDFLOW_TEMPORAL_ADDRESS": address,
            "AIDFLOW_TASK_QUEUE": "bench-idle",
            "AIDFLOW_DATA_DIR": str(work),
            "AIDFLOW_DATABASE_URL": f"sqlite:///{work / 'aidflow.db'}",
            "AIDFLOW_SECRET_KEY": SECRET,
            "AIDFLOW_CALENDAR": "state-council",
            "AIDFLOW_LOG_LEVEL": "WARNING",
            "AIDFLOW_METRICS_PORT": "",
            **({"AIDFLOW_WORKFLOW_CACHE": str(cache)} if cache is not None else {}),
        }
        for k in (
            "AIDFLOW_CALENDAR_EPOCH",
            "AIDFLOW_CALENDAR_BASE_DAY",
            "AIDFLOW_CALENDAR_DAY_SECONDS",
        ):
            os.environ.pop(k, None)
        os.environ.update(env)
        settings = Settings()
        upgrade(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url)
        keys = Keys(settings.secret_key_bytes())
        forms = applicants(n, season, seed=5, programme=prog)
        load_sample_county(engine, forms, season, keys.hash_id)
        worker = spawn([str(BIN / "aidflow"), "worker"], work / "worker-idle.log", env)
        try:
            client = await connect(settings)
            api = records_client(client, settings, keys, engine, {prog.code: prog})
            sem = asyncio.Semaphore(64)
            started = time.monotonic()
            done = asked_again = 0

            async def one(f: Any) -> None:
                nonlocal done, asked_again
                async with sem:
                    wf = await api.submit(f)
                    village = f.places.village_code
                    actor = Actor(
                        id=f"vc-{village}",
                        name="x",
                        role=Role.VILLAGE_COMMITTEE,
                        place_code=village,
                    )
                    decision = DecisionRequest(
                        request_id=uuid.uuid4().hex,
                        actor=actor,
                        stage="village_review",
                        decision=DecisionKind.APPROVE,
                    )
                    # As an office would: a decision whose answer timed out (seen once, at
                    # 5,000 of 10,000 set up at 64 at once) is sent again with its request
                    # id, which the application answers once (R4); counted.
                    for attempt in range(3):
                        try:
                            await api.decide(wf, decision)
                            break
                        except Refused:
                            if attempt == 2:
                                raise
                            asked_again += 1
                    done += 1
                    if done % 1000 == 0:
                        console.print(f"  idle: {done}/{n} approved by their villages")

            await asyncio.gather(*(one(f) for f in forms))
            # Each village posts its list once everyone approved is on it.
            villages = Counter(f.places.village_code for f in forms)

            async def post(village: str, members: int) -> None:
                notice = api.notice_id(prog.code, season, Level.VILLAGE, village)
                while True:
                    with contextlib.suppress(Refused):
                        if len((await api.notice_status(notice)).pending) >= members:
                            break
                    await asyncio.sleep(0.5)
                actor = Actor(
                    id=f"vc-{village}", name="x", role=Role.VILLAGE_COMMITTEE, place_code=village
                )
                await api.post_notice(
                    notice, NoticePostRequest(request_id=uuid.uuid4().hex, actor=actor)
                )

            await asyncio.gather(*(post(v, k) for v, k in villages.items()))
            console.print(f"  idle: {n} in {len(villages)} posted notices")
            setup = time.monotonic() - started
            await asyncio.sleep(15)  # idle: the persistence settles, nothing else happens
            app_db, temporal = file_mib(work / "aidflow.db"), file_mib(temporal_db)
            result = IdleResult(
                applications=n,
                setup_seconds=setup,
                worker_rss_mib=worker.rss_mib(),
                worker_peak_rss_mib=worker.peak_rss_mib(),
                app_db_mib=app_db,
                temporal_db_mib=temporal,
                workflow_cache=cache,
                app_db_bytes_per_application=app_db * 2**20 / n,
                temporal_db_bytes_per_application=temporal * 2**20 / n,
                decisions_asked_again=asked_again,
            )
        finally:
            worker.stop()
            engine.dispose()
    return result


# ------------------------------------------------------------------ simulate


async def run_simulate(n: int, work: Path) -> dict[str, Any]:
    env = {"AIDFLOW_DATA_DIR": str(work / f"sim-{n}"), "AIDFLOW_LOG_LEVEL": "WARNING"}
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "aidflow"),
        "simulate",
        "--applications",
        str(n),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    out, err = await proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"aidflow simulate {n} failed: {err.decode()[-2000:]}")
    data: dict[str, Any] = json.loads(out)
    return {"applications": n, "process_wall_seconds": round(wall, 1), **data}


# ---------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    import temporalio

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "os": platform.platform(),
    }


def show(results: dict[str, Any]) -> None:
    a, b = results.get("pipeline"), results.get("baseline")
    if a and b:
        t = Table("", "(a) aidflow", "(b) bare Temporal", "(a)/(b)", title="pipeline vs baseline")
        for label, key, fmt in (
            ("applications completed", "completed", "{:.0f}"),
            ("wall time (s)", "wall_seconds", "{:.1f}"),
            ("completed per second", "per_second", "{:.2f}"),
            ("decision update p50 (ms)", "update_p50_ms", "{:.1f}"),
            ("decision update p99 (ms)", "update_p99_ms", "{:.1f}"),
            ("worker peak RSS (MiB)", "worker_peak_rss_mib", "{:.0f}"),
        ):
            ratio = a[key] / b[key] if b[key] else float("nan")
            t.add_row(label, fmt.format(a[key]), fmt.format(b[key]), f"{ratio:.2f}")
        console.print(t)
        console.print(f"one application of (a): {results['per_application']}")
    if len(results.get("scale_out", [])) > 1:
        t = Table(
            "workers",
            "(a) per s",
            "(b) per s",
            "(a)/(b)",
            "(a) p99 ms",
            "(b) p99 ms",
            "(a) RSS MiB each",
            title="scale-out (one server, worker processes)",
        )
        for r in results["scale_out"]:
            pa, pb = r["pipeline"], r["baseline"]
            t.add_row(
                str(r["workers"]),
                f"{pa['per_second']:.2f}",
                f"{pb['per_second']:.2f}",
                f"{pa['per_second'] / pb['per_second']:.2f}",
                f"{pa['update_p99_ms']:.0f}",
                f"{pb['update_p99_ms']:.0f}",
                f"{pa['worker_peak_rss_mib']:.0f}",
            )
        console.print(t)
    burst = results.get("burst")
    if burst:
        t = Table(
            "",
            "p50 ms",
            "p99 ms",
            "completion s",
            "refused",
            title=f"deadline-day burst: {burst['decisions']} decisions in {burst['seconds']:.0f} s, "
            f"{burst['villages']} villages",
        )
        for mode in ("single", "batches"):
            for who in ("aidflow", "bare"):
                m = burst[who][mode]
                t.add_row(
                    f"{mode}, {who}",
                    f"{m['p50_ms']:.0f}",
                    f"{m['p99_ms']:.0f}",
                    f"{m['completion_s']:.1f}",
                    str(m["refused"]),
                )
        console.print(t)
        console.print(f"(a)/(b): {burst['a_over_b']}; lost: {burst['aidflow']['lost']}")
    if results.get("idle"):
        console.print(f"idle footprint: {results['idle']}")
    for s in results.get("simulate", []):
        if "failed" in s:
            console.print(f"aidflow simulate {s['applications']} FAILED: {s['failed']}")
            continue
        console.print(
            f"aidflow simulate {s['applications']}: {s['wall_seconds']} s in-process, "
            f"{s['process_wall_seconds']} s for the command; outcomes {s['outcomes']}"
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="aidflow-bench-") as tmp:
        work = Path(tmp)
        from bench.baseline import floor_script

        for workers in args.workers if args.applications else []:
            # Each worker count on a server of its own: the same load, nothing left over.
            async with dev_server(work / f"temporal-{workers}") as (address, _):
                console.print(
                    f"(a) pipeline, {args.applications} applications, {workers} worker(s) …"
                )
                a, history = await run_pipeline(
                    address, work / f"a-{workers}", args.applications, args.day_seconds, workers
                )
                _, counts = script_of(history)
                console.print(f"(b) baseline, {args.applications} bare workflows …")
                script = floor_script(*notice_seconds(history, args.day_seconds))
                b = await run_baseline(
                    address, work / f"b-{workers}", args.applications, script, workers
                )
                run = {"workers": workers, "pipeline": asdict(a), "baseline": asdict(b)}
                results.setdefault("scale_out", []).append(run)
                if "pipeline" not in results:  # the first count is the headline
                    results.update(pipeline=asdict(a), baseline=asdict(b))
                    results["per_application"] = counts
                save(results)
        if args.burst:
            from bench.burst import run_burst

            console.print(f"deadline-day burst, {args.burst} decisions …")
            async with dev_server(work / "temporal-burst") as (address, _):
                results["burst"] = await run_burst(
                    address, work / "burst", args.burst, args.burst_seconds, args.villages
                )
            save(results)
        if args.idle:
            console.print(f"idle footprint, {args.idle} applications …")
            results["idle"] = asdict(await run_idle(args.idle, work / "idle", args.idle_cache))
            save(results)
        results["simulate"] = []
        for n in args.simulate:
            console.print(f"aidflow simulate --applications {n} …")
            try:
                results["simulate"].append(await run_simulate(n, work))
            except RuntimeError as e:  # recorded, and the other figures kept
                results["simulate"].append({"applications": n, "failed": str(e)[-500:]})
            save(results)
    return results


def save(results: dict[str, Any]) -> Path:
    """Written after every part, so a part that fails loses nothing measured before."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{results['started'].replace(':', '')}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--applications", type=int, default=300, help="(a) and (b): 0 skips them")
    parser.add_argument("--day-seconds", type=float, default=3.0, help="(a): compressed day")
    parser.add_argument("--idle", type=int, default=10000, help="idle footprint: 0 skips it")
    parser.add_argument(
        "--idle-cache",
        type=int,
        default=None,
        help="idle footprint: the worker's workflow cache (AIDFLOW_WORKFLOW_CACHE)",
    )
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1],
        help="worker processes for (a) and (b), comma-separated for the scale-out (1,2,4)",
    )
    parser.add_argument(
        "--burst", type=int, default=0, help="deadline-day burst: decisions (0 skips it)"
    )
    parser.add_argument("--burst-seconds", type=float, default=60.0, help="the burst's length")
    parser.add_argument("--villages", type=int, default=20, help="the burst's villages")
    parser.add_argument(
        "--simulate",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1000],
        help="sizes for aidflow simulate, comma-separated ('' skips)",
    )
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    path = save(results)
    show(results)
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
