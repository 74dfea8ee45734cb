"""The worker: every workflow and activity of aidflow on its task queue.

Several workers on several machines may poll the same task queues; nothing
here assumes there is only one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.activity import _Definition
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from activities.cases import CaseActivities
from activities.cross_check import CrossCheckActivities
from activities.funds import FundsActivities
from activities.loans import LoanActivities
from activities.notices import NoticeActivities
from activities.records import RecordActivities
from activities.recovery import RecoveryActivities
from activities.report import ReportActivities
from activities.roster import RosterActivities
from activities.workflow_calendar import CalendarActivities
from models.authority import STATEMENT_LIFETIME
from models.calendar import WorkingCalendar
from store.db import make_engine
from store.sealing import Keys
from workers.deployment import check_database
from workers.revocations import Revocations
from workers.sandbox import SandboxMode, workflow_runner
from workers.settings import Settings, mask_url
from workflows.authority import AuthorityInterceptor
from workflows.registry import ALL_WORKFLOWS


@dataclass
class Dependencies:
    """What the activities need; built once per worker process."""

    engine: Engine
    calendar: WorkingCalendar
    keys: Keys
    files_dir: Path
    bank_dir: Path
    # True where the workflows cannot outlive this process's calendar data (the
    # simulator): provisional days are then final for them.
    calendar_is_fixed: bool = False
    # The longest a request's statement may hold (R10); longer only where the
    # workflows' clocks are skipped ahead of the wall clock (tests, the simulator).
    statement_max_lifetime: timedelta = STATEMENT_LIFETIME + timedelta(minutes=5)
    # The revoked credentials, refreshed beside the worker (running_worker).
    revocations: Revocations | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Dependencies:
        engine = make_engine(settings.effective_database_url)
        return cls(
            engine=engine,
            calendar=settings.build_calendar(),
            keys=Keys(settings.secret_key_bytes()),
            files_dir=settings.files_dir,
            bank_dir=settings.effective_bank_dir,
            revocations=Revocations(engine),
        )

    def activities(self, client: Client | None = None) -> Sequence[Any]:
        """``client``: for the activities that message workflows (a notice's joining)."""
        cal = CalendarActivities(self.calendar, calendar_is_fixed=self.calendar_is_fixed)
        rec = RecordActivities(self.engine, self.keys)
        funds = FundsActivities(
            self.engine, self.keys, self.calendar, self.files_dir, self.bank_dir
        )
        report = ReportActivities(self.engine, self.files_dir)
        notices = NoticeActivities(client, self.keys.internal, self.files_dir, rec.record_events)
        rosters = RosterActivities(self.engine)
        checks = CrossCheckActivities(self.engine)
        recoveries = RecoveryActivities(self.engine, self.keys)
        loans = LoanActivities(self.engine, self.keys, self.files_dir, self.bank_dir)
        cases = CaseActivities(self.engine, self.keys)
        return [
            cal.compute_season_schedule,
            cal.compute_reminder_times,
            cal.compute_task_times,
            cal.case_clock,
            cal.compute_notice_period,
            cal.project_remaining_steps,
            rec.record_events,
            funds.create_funds_request,
            funds.funds_request_of,
            funds.record_funds_arrival,
            funds.compute_pay_by,
            funds.prepare_payments,
            funds.send_batch,
            funds.await_bank_result,
            funds.record_payment_results,
            report.build_season_report,
            report.send_season_reminder,
            report.send_coverage_reminders,
            report.count_open_applications,
            report.send_task_notice,
            report.send_round_opened,
            notices.record_events_and_tell,
            notices.write_notice_list,
            notices.tell_notice,
            rosters.check_rolls,
            checks.check,
            recoveries.record,
            loans.send_contract,
            cases.record,
        ]


class MetricsPortTaken(Exception):
    """The worker's metrics port is in use (another worker, or ``aidflow up``, here)."""


def make_runtime(metrics_port: int | None) -> Runtime | None:
    """A runtime that serves the SDK's Prometheus metrics, or None for the default runtime."""
    if metrics_port is None:
        return None
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"0.0.0.0:{metrics_port}")
            )
        )
    except ValueError as e:
        if "in use" not in str(e):
            raise
        # It read as a failure to reach Temporal (issue 16), which it is not.
        raise MetricsPortTaken(
            f"the worker's metrics port {metrics_port} is taken (is another aidflow worker or "
            "`aidflow up` running on this machine?): set AIDFLOW_METRICS_PORT to a free port, "
            "or to nothing to serve no metrics"
        ) from None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    tls: bool | TLSConfig = False
    if settings.temporal_tls_cert or settings.temporal_tls_ca:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes()
            if settings.temporal_tls_cert
            else None,
            client_private_key=settings.temporal_tls_key.read_bytes()
            if settings.temporal_tls_key
            else None,
            server_root_ca_cert=settings.temporal_tls_ca.read_bytes()
            if settings.temporal_tls_ca
            else None,
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    kwargs: dict[str, Any] = {}
    if runtime is not None:
        kwargs["runtime"] = runtime
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls if not api_key else (tls or True),
        api_key=api_key,
        **kwargs,
    )


def build_worker(
    client: Client,
    task_queue: str,
    deps: Dependencies,
    *,
    replace: Sequence[Any] = (),
    sandbox: SandboxMode = "strict",
    **options: Any,
) -> Worker:
    """``replace``: activities that stand in for those of the same name (tests inject faults).
    ``options`` go to :class:`Worker` (tests use ``max_cached_workflows=0`` to force replays)."""
    options.setdefault("workflow_runner", workflow_runner(sandbox))
    # R10: no message reaches a handler without proof of who sent it (workflows/authority.py).
    options["interceptors"] = [
        AuthorityInterceptor(
            authority_key=deps.keys.authority,
            internal_key=deps.keys.internal,
            max_lifetime=deps.statement_max_lifetime,
            revocations=deps.revocations,
        ),
        *options.get("interceptors", ()),
    ]
    by_name = {_activity_name(a): a for a in deps.activities(client)}
    by_name.update({_activity_name(a): a for a in replace})
    return Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=list(by_name.values()),
        # Calendar and database activities are synchronous; they run on this pool.
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=16),
        max_concurrent_activities=16,
        # Start only the workflow tasks this process can finish promptly; the rest wait
        # in the server's queue. With the default (100), a burst of decisions on two
        # cores started tasks that then sat for over 10 s (their timeout) behind the
        # others, timed out and were retried from scratch (measured in bench/).
        max_concurrent_workflow_tasks=options.pop("max_concurrent_workflow_tasks", 16),
        # Workflow code runs in the SDK's sandbox, strict or with aidflow's workflow
        # modules shared, without the sandbox's per-payload cost; the simulator runs
        # without it (workers/sandbox.py).
        **options,
    )


def _activity_name(fn: Any) -> str:
    defn = _Definition.from_callable(fn)
    if defn is None or defn.name is None:
        raise ValueError(f"{fn!r} is not an activity")
    return defn.name


def bank_simulator(s: Settings, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """With AIDFLOW_BANK=simulated, a simulated agent bank answers the disbursement files."""
    if s.bank != "simulated":
        return []
    from integrations.bank import BankSimulator, SimulatorRules

    sim = BankSimulator(
        s.effective_bank_dir,
        SimulatorRules(
            closed_account_suffixes=tuple(s.bank_sim_closed_suffixes),
            return_rate=s.bank_sim_return_rate,
            delay_seconds=s.bank_sim_delay_seconds,
        ),
    )
    return [asyncio.create_task(sim.run_forever(stop))]


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings
) -> AsyncIterator[tuple[Dependencies, asyncio.Event]]:
    """The worker with its outbox sender (and the bank simulator when configured), until
    SIGINT, SIGTERM or the yielded event stops it. Used by ``aidflow worker`` and ``up``."""
    from integrations.notify import OutboxSender

    settings.check_bank()
    deps = Dependencies.from_settings(settings)
    worker = build_worker(
        client,
        settings.task_queue,
        deps,
        sandbox=settings.workflow_sandbox,
        max_cached_workflows=settings.workflow_cache,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sender = OutboxSender(deps.engine, settings.channels())
    try:
        await check_database(client, deps.engine, mask_url(settings.effective_database_url))
        revocations = deps.revocations
        if revocations is not None:
            # Known before the first task: a credential revoked while the worker was down.
            await asyncio.to_thread(revocations.refresh)
        async with worker:
            background = [
                asyncio.create_task(sender.run_forever(stop)),
                *bank_simulator(settings, stop),
                *([asyncio.create_task(revocations.run(stop))] if revocations else []),
            ]
            try:
                yield deps, stop
            finally:
                stop.set()
                await asyncio.gather(*background)
    finally:
        deps.engine.dispose()
