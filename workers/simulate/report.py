"""What a simulated season gives: outcomes, deadline statistics, cost per application."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from models.calendar import WorkingCalendar
from models.planner import due_at as fixed_due_at
from models.programme import Programme
from models.programmes import BUILTIN_PROGRAMMES
from models.season import season_label
from store.tables import AuditEntry
from workers.client import AidflowClient, query_when_ready
from workers.history_cost import cost_of
from workers.simulate.scenario import Scenario

T = TypeVar("T")

# How long the simulator waits, after the season's end, for the season to close.
SEASON_CLOSE_SECONDS = 120.0


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
    # Applications whose clock ran ahead of the simulation's (seconds ahead): none, or
    # the run's outcome is not the scenario's alone (see Clocks.ahead).
    clocks_ahead: dict[str, float]
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
    notice_postings: int = 0
    # Posting events that did not wait for another of their instant (season.py).
    posting_events_not_waiting: int = 0
    # What a paid application cost, averaged over a sample of their histories.
    cost_per_paid_application: dict[str, float] = field(default_factory=dict)
    season_history_events: int = 0  # over all its runs
    season_runs: int = 0
    # What the simulator's Temporal server did over the run (server_load.py).
    server_load: dict[str, Any] = field(default_factory=dict)
    # The process's garbage collections over the run (pauses.py): count, seconds, longest.
    collections: dict[str, float] = field(default_factory=dict)
    # How each applicant (by its index) ended: the same seed must give the same map.
    by_applicant: list[str] = field(default_factory=list)
    # Requests refused or sent again, which must not change the season (same-seed runs).
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def outcome_digest(self) -> str:
        """SHA-256 of how each applicant ended, in order: two runs compared at a glance."""
        import hashlib

        return hashlib.sha256("\n".join(self.by_applicant).encode()).hexdigest()[:16]


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
        due_at = fixed_due_at(fixed, season, cal)
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
            is_last = last_due == len(steps) - 1
            done_at = _step_done_at(events, last_due, steps[last_due].stage if is_last else None)
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


def _step_done_at(
    events: list[AuditEntry], last_due: int, last_stage: str | None
) -> datetime | None:
    """``last_stage``: the programme's last step's stage, when it is the one due."""
    for e in events:
        if last_stage is not None:  # the end: paid by the bank, signed for, or confirmed
            if (
                (e.kind == "payment" and e.detail.get("status") == "paid")
                or e.kind == "receipt"
                or (
                    e.kind == "decision"
                    and e.stage == last_stage
                    and e.detail.get("decision") == "approve"
                )
            ):
                return _aware(e.at)
        elif e.kind == "stage_entered" and int(e.detail.get("step_index", -1)) > last_due:
            return _aware(e.at)
    return None


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes; PostgreSQL aware ones.
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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
    """What the server and the worker did for each of these workflows, averaged: history
    events, workflow tasks, protobuf bytes and billable actions by the rules of
    ``workers/history_cost.py`` (the baselines' ``bench.cost`` counts the same way, without
    the time-skipping server's own events), of them timers and activities, and local
    activities by type."""
    totals: Counter[str] = Counter()
    for wf in workflow_ids:
        events = [e async for e in client.get_workflow_handle(wf).fetch_history_events()]
        cost = cost_of(wf, events)
        totals["history_events"] += cost.events
        totals["workflow_tasks"] += cost.workflow_tasks
        totals["history_bytes"] += cost.history_bytes
        totals["billable_actions"] += cost.actions
        totals["timers"] += cost.by_action.get("timer started", 0)
        totals["activities"] += cost.by_action.get("activity scheduled", 0)
        for e in events:  # a marker is never the time-skipping server's own
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                details = e.marker_recorded_event_attributes.details
                if "data" in details:  # a local activity's marker (a patch has none)
                    kind = json.loads(details["data"].payloads[0].data)["activity_type"]
                    totals["local_activities"] += 1
                    totals[f"local_activities:{kind}"] += 1
    n = len(workflow_ids)
    # What none of them had is left out (a programme without activities, say).
    return {k: round(v / n, 1) for k, v in sorted(totals.items()) if v} if n else {}


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
            "notice_postings": r.notice_postings,
            "posting_events_not_waiting": r.posting_events_not_waiting,
            "clocks_ahead": len(r.clocks_ahead),
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
            "server_load": r.server_load,
            "garbage_collections": r.collections,
            "report": {"as_of": r.report_as_of, "markdown": r.report_md, "xlsx": r.report_xlsx},
            "roster": r.roster,
        },
        ensure_ascii=False,
    )


def print_result(r: SimulationResult, console: Any) -> None:
    from rich.table import Table

    s = r.scenario
    console.print(
        f"[bold]{BUILTIN_PROGRAMMES[s.programme].name_en} {season_label(s.season, s.round)}[/bold]: {s.applications} applicants, seed {s.seed}, "
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
            f"{c.get('workflow_tasks', 0):g} workflow tasks, "
            f"{c.get('history_bytes', 0):,.0f} bytes of history, "
            f"{c.get('billable_actions', 0):g} billable actions, {c.get('timers', 0):g} timers, "
            f"{c.get('activities', 0):g} activities, "
            f"{c.get('local_activities', 0):g} local activities; the season's history "
            f"{r.season_history_events:,} events in {r.season_runs} run(s).[/dim]"
        )
    if r.fast_forwards_restarted:
        console.print(
            f"[dim]{r.fast_forwards_restarted} fast-forwards stalled and were asked again "
            "(the dev server's time skipping is experimental).[/dim]"
        )
    if r.clocks_ahead:
        worst = max(r.clocks_ahead.values()) / 3600
        console.print(
            f"[red]{len(r.clocks_ahead)} 件申请的时钟跑在模拟之前（最多 {worst:.1f} 小时），"
            "结果不只取决于情景 / applications whose clock ran ahead of the simulation "
            f"(up to {worst:.1f} h): this run's outcome is not the scenario's alone.[/red]"
        )


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0
