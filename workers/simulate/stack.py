"""The simulator's private stack (time-skipping server, fresh database, worker, bank)
and one run of a scenario on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from integrations.bank import BankSimulator, SimulatorRules
from models import search
from models.programmes import BUILTIN_PROGRAMMES
from store.db import make_engine, upgrade
from store.loans import Loans
from store.registry import RegistryReader
from store.sealing import Keys
from workers.client import AidflowClient
from workers.officials import SimulationStalled
from workers.settings import Settings
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.simulate.clocks import Clocks, NoticeClock, _StartAtSimulatedInstant
from workers.simulate.pauses import Collections, collections_timed, tolerate_pauses
from workers.simulate.report import (
    SimulationResult,
    _season_report,
    cost_per_application,
    deadline_misses,
    history_across_runs,
)
from workers.simulate.scenario import Scenario
from workers.simulate.season import SeasonSimulation
from workers.simulate.server_load import ServerProbe, dev_server_pid, free_port
from workers.synthetic import applicants, load_sample_county
from workers.worker import Dependencies, build_worker

T = TypeVar("T")


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


async def start_time_skipping_server(
    database: Path | None = None, metrics_port: int | None = None
) -> WorkflowEnvironment:
    """A private dev server with per-workflow time skipping, aidflow's search attributes
    and its data converter. Workflows start on the wall clock and move only when
    fast-forwarded (the simulator's server, and the tests'). In memory, or with
    ``database`` in that SQLite file (write-ahead log, no fsync: it lives and dies with
    the run), as a production server keeps its histories outside its own process; its
    metrics on ``metrics_port`` if given (``server_load.py``). Its timers fire the
    server's default second after they are due (``history.timerProcessorMaxTimeShift``):
    with 10 ms the same seed now and then gave another season (BENCHMARKS.md)."""
    from workers.embedded import child_pids, stop_with_us, temporal_binary

    before = child_pids()
    extra: list[str] = []
    if database is not None:
        extra = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=off"]
    if metrics_port is not None:
        extra += ["--metrics-port", str(metrics_port)]
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        dev_server_database_filename=str(database) if database is not None else None,
        data_converter=pydantic_data_converter,
        search_attributes=search.ALL,
        dev_server_extra_args=[
            *extra,
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
) -> AsyncIterator[tuple[Client, Clocks, Dependencies, ServerProbe]]:
    """A private dev server with time skipping (its histories in ``data_dir``), a fresh
    SQLite database in ``data_dir``, a worker and the simulated bank; the probe reads
    what the server did. Nothing here touches the county's real database or Temporal
    cluster."""
    from workers.embedded import child_pids

    before, port = child_pids(), free_port()
    with _child_stdout_to_devnull():  # the server's banner would garble --json output
        env = await start_time_skipping_server(data_dir / "temporal.db", metrics_port=port)
    probe = ServerProbe(port, dev_server_pid(child_pids() - before))
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
            sandbox="off",
            # Every application stays cached: an evicted one would replay its history.
            max_cached_workflows=max(1000, applications + 100),
            max_concurrent_workflow_tasks=8,
            max_concurrent_local_activities=8,
        )
        tolerate_pauses(worker)
        try:
            async with worker:
                bank_task = asyncio.create_task(bank.run_forever(stop, interval=0.05))
                try:
                    yield client, Clocks(client, starts), deps, probe
                finally:
                    stop.set()
                    await bank_task
        finally:
            deps.engine.dispose()
    finally:
        await env.shutdown()


@contextlib.contextmanager
def _said_on_a_stall(started: float, pauses: Collections) -> Iterator[None]:
    """A stalled run says, with its cause, how long it ran and what its process's
    garbage collections took by then (the --json result, which has them, is not written)."""
    try:
        yield
    except SimulationStalled as e:
        gc = pauses.as_json()
        raise SimulationStalled(
            f"{e}\n(stopped after {time.monotonic() - started:.0f} s; garbage collections "
            f"by then: {gc['full_collections']} full, {gc['seconds']} s in all, the longest "
            f"{gc['longest_seconds']} s)"
        ) from None


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
    full = BUILTIN_PROGRAMMES[scenario.programme]
    programme = full.for_round(scenario.round)  # the cohort's, for a programme with rounds
    forms = applicants(scenario.applications, scenario.season, scenario.seed, programme)
    rng = random.Random(scenario.seed ^ 0x5EED)
    closed = [
        forms[i].account_number[-6:]
        for i in rng.sample(range(len(forms)), k=round(len(forms) * scenario.bank_return_rate))
    ]
    # Timed: the collections of a large cache are pauses of seconds (pauses.py).
    with collections_timed() as pauses, _said_on_a_stall(started, pauses):
        async with simulation_stack(data_dir, settings, closed, scenario.applications) as (
            client,
            clocks,
            deps,
            server,
        ):
            load_sample_county(
                deps.engine, forms, scenario.season, deps.keys.hash_id, data_dir / "import"
            )
            api = AidflowClient(
                client,
                task_queue=settings.task_queue,
                keys=deps.keys,
                calendar=cal,
                calendar_is_fixed=deps.calendar_is_fixed,
                statement_lifetime=SKIPPED_CLOCK_LIFETIME,
                programmes={full.code: full},
                lookup_member=RegistryReader(deps.engine).lookup,
                lookup_applications=RegistryReader(deps.engine).applications,
                claim_application=RegistryReader(deps.engine).claim,
                loans=Loans(deps.engine),
            )
            api.repayment_batch_delay = scenario.repayment_batch_delay
            sim = SeasonSimulation(
                scenario,
                api,
                clocks,
                cal,
                deps.engine,
                programme=programme,
                progress=progress,
                stalled_histories=data_dir / "stalled",
            )
            await sim.run()
            report = await _season_report(api, sim.season_id)
            for a in sim._live():
                a.terminal = f"still in {(await api.status(a.workflow_id)).stage}"
            misses = await asyncio.to_thread(
                deadline_misses, deps.engine, programme, scenario.season, cal
            )
            # Checked for every application up to a thousand, else for a seeded thousand.
            ids = [a.workflow_id for a in sim.apps if a.workflow_id]
            if len(ids) > 1000:
                ids = random.Random(scenario.seed).sample(ids, 1000)
            ahead = await clocks.ahead(ids)
            paid = [a.workflow_id for a in sim.apps if a.terminal == programme.done_stage]
            cost = await cost_per_application(client, paid[:20])
            # The county's one season workflow grows with the county; it continues as new
            # before a run nears Temporal's limits (51,200 events, 10,000 signals).
            season_events, season_runs = await history_across_runs(client, sim.season_id)
            load = await asyncio.to_thread(server.read)
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
        clocks_ahead={wf: d.total_seconds() for wf, d in ahead.items()},
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
        notice_postings=sim.counts["notice postings"],
        posting_events_not_waiting=sim.posting_events_not_waiting,
        cost_per_paid_application=cost,
        season_history_events=season_events,
        season_runs=season_runs,
        server_load=load.as_json(),
        collections=pauses.as_json(),
        by_applicant=[a.terminal or "not finished" for a in sim.apps],
        retries={
            "decisions_refused": sim.counts["decisions refused"],
            "objections_refused": sim.counts["objections refused"],
            "requests_repeated_after_a_timeout": sim.counts["requests repeated after a timeout"],
            "fast_forwards_on_a_busy_server": clocks.busy,
            # A member's join later on its clock than its posting's planned instant.
            "notice_postings_moved_after_a_late_join": sim.counts[
                "notice postings moved after a late join"
            ],
            "notice_members_left_for_a_later_posting": sim.counts[
                "notice members left for a later posting"
            ],
            "notice_checks_on_a_busy_server": sim.counts[
                "notice checks asked again on a busy server"
            ],
        },
    )
