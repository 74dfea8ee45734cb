"""Fixed dates and projections (R6): when a date passes and the application has not got
past the steps due then, it is overdue, and the responsible office and the programme's
always-told offices are told; at every step the remaining steps are projected on the
calendar and a date at risk is said as soon as it is."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

from workflows.clock import until

with workflow.unsafe.imports_passed_through():
    from activities.workflow_calendar import CalendarActivities
    from models.application import SYSTEM
    from models.calendar import OutsideTable
    from models.domain import Role
    from models.planner import project_steps
    from models.records import NotificationIntent, Projection, ProjectionRequest

if TYPE_CHECKING:
    from workflows.application import ApplicationWorkflow

_LOCAL = timedelta(seconds=10)


async def watch_fixed_date(app: ApplicationWorkflow, key: str, due_at: datetime) -> None:
    fixed = app.programme.fixed_date(key)
    last_due = max(i for i, s in enumerate(app.programme.steps) if s.due == key)
    # Past the steps due then before the date: the timer is cancelled in the task that
    # moved it on, and never wakes the workflow for nothing. Closed, it is left: the
    # workflow's end drops it, where a cancel was one more event (issue 20).
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(
            lambda: app.index > last_due,
            timeout=until(due_at),
            timeout_summary=f"fixed date: {fixed.label_en} by {fixed.on}",
        )
        return
    if app.closed or app.index > last_due:  # moved on in the task the timer fired in
        return
    ends = app.runner.ends_by_itself_at() if app.index == last_due else None
    if ends is not None and ends <= due_at:
        # Its last step due then ends by the date's instant, with nothing more from anyone
        # (a notice ending at 24:00 of the date meets it, as the plan says): on time,
        # whichever of the two timers of that instant the server fires first.
        return
    # The stage it missed the date in: a step that ended at the date's very instant (its
    # timer fired first) still held it then.
    stage = _stage_before(app, due_at)
    stage_zh, stage_en = app.programme.label(stage)
    app.overdue.append(key)
    offices = _offices_to_act(app, fixed.responsible)
    told = [*offices, *(r for r in app.programme.always_told if r not in offices)]
    params = {"date": fixed.label_zh, "on": str(fixed.on), "stage": stage_zh}
    app.record(
        "overdue",
        SYSTEM,
        f"逾期：{fixed.label_zh}（{fixed.on}）未完成，当前{stage_zh} / overdue: "
        f"{fixed.label_en} by {fixed.on} missed in {stage_en}",
        {"fixed_date": key, "due_at": due_at.isoformat(), "stage": stage},
        notify=[
            NotificationIntent(
                audience="office" if role in offices else "county",
                role=role,
                place_code=app.inp.places.code_for(role),
                template="overdue",
                params=params,
            )
            for role in told
        ],
    )
    app.publish()


def _offices_to_act(app: ApplicationWorkflow, responsible: Role) -> list[Role]:
    """The date's responsible office, and the office the application waits for now if
    that is another (a village committee holding a review past the townships' date):
    the one that can act is told, not only the one that answers for the date."""
    holder = app.runner.waiting_for()
    if holder is None or holder in _NO_OFFICE or holder == responsible:
        return [responsible]
    return [responsible, holder]


# What an application may wait for that is no office to tell: the family, the public
# (a notice's period), aidflow itself (a cross-check, a contract file), a case's helper.
_NO_OFFICE = frozenset({Role.APPLICANT, Role.PUBLIC, Role.SYSTEM, Role.HELPER})


def _stage_before(app: ApplicationWorkflow, instant: datetime) -> str:
    """The stage it was in just before ``instant``, by its trail."""
    for event in reversed(app.trail()):
        if event.at < instant:
            return event.stage
    return app.stage


async def project(app: ApplicationWorkflow, from_index: int, at: datetime) -> None:
    """R6: project the remaining steps on the calendar; warn when a date is at risk.
    Meanwhile the trail's write waits: the warning goes with the events before it."""
    app.holding_trail += 1
    try:
        projection = await _projection(app, from_index, at)
    finally:
        app.holding_trail -= 1
    # A date already due is overdue (its watcher says so), not at risk: whether the
    # watcher's timer or this step's fires first at a shared instant changes nothing.
    at_risk = app.schedule.still_at_risk(projection.at_risk_keys, workflow.now(), app.overdue)
    new = [k for k in at_risk if k not in app.at_risk]
    app.at_risk = at_risk
    if not new:
        return
    labels = [app.programme.fixed_date(k) for k in new]
    told = [(d, role) for d in labels for role in _offices_to_act(app, d.responsible)]
    app.record(
        "at_risk",
        SYSTEM,
        "日期有风险："
        + "、".join(f"{d.label_zh}（{d.on}）" for d in labels)
        + " / at risk: "
        + ", ".join(f"{d.label_en} by {d.on}" for d in labels),
        {"keys": new, "projection": [s.model_dump(mode="json") for s in projection.steps]},
        notify=[
            NotificationIntent(
                audience="office",
                role=role,
                place_code=app.inp.places.code_for(role),
                template="at_risk",
                params={"date": d.label_zh, "on": str(d.on)},
            )
            for d, role in told
        ],
    )


async def _projection(app: ApplicationWorkflow, from_index: int, at: datetime) -> Projection:
    if app.calendar is not None:
        with contextlib.suppress(OutsideTable):
            steps = project_steps(
                app.programme, app.inp.season, app.calendar, from_index=from_index, at=at
            )
            return Projection.of(steps)
    # A day beyond the table's data (provisional ones it answers: a forecast): ask the
    # calendar itself.
    return await workflow.execute_local_activity_method(
        CalendarActivities.project_remaining_steps,
        ProjectionRequest(
            programme=app.programme,
            season=app.inp.season,
            from_index=from_index,
            at=at,
            known=(*app.at_risk, *app.overdue),
        ),
        start_to_close_timeout=_LOCAL,
        summary="project remaining steps on the calendar",
    )
