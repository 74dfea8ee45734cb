"""What operators see of an application: its search attributes, its current details in
plain words (Chinese first, English beside), and the read-model row the trail writes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from temporalio import workflow

from workflows.steps import PAYMENT_LIMIT
from workflows.visibility import upsert_changed

with workflow.unsafe.imports_passed_through():
    from models import search
    from models.application import ApplicationStatus
    from models.domain import Role
    from models.records import ApplicationSnapshot

if TYPE_CHECKING:
    from workflows.application import ApplicationWorkflow


def waiting_for(app: ApplicationWorkflow) -> str:
    if app.closed:
        return ""
    if app.trail_failing is not None:  # aidflow itself: its trail cannot be saved
        return Role.SYSTEM.value
    return (app.runner.waiting_for() or Role.SYSTEM).value


def waiting_until(app: ApplicationWorkflow) -> datetime | None:
    if app.closed:
        return None
    return app.runner.waiting_until() or due_at(app)


def due_at(app: ApplicationWorkflow) -> datetime | None:
    if app.closed:
        return None
    return app.schedule.due_at(app.programme.steps[app.index].due)


def date_label(app: ApplicationWorkflow, key: str) -> tuple[str, str]:
    if key == PAYMENT_LIMIT:
        return app.payment.limit_label()
    d = app.programme.fixed_date(key)
    return d.label_zh, d.label_en


def details(app: ApplicationWorkflow) -> tuple[str, str]:
    """What the application waits for, from whom, until when: plain words for operators;
    first of all, that its trail cannot be saved, while it cannot."""
    zh, en = _details(app)
    failing = app.trail_failing
    if failing is not None:
        zh, en = f"{failing[0]}；{zh}", f"{failing[1]}; {en}"
    return zh, en


def _details(app: ApplicationWorkflow) -> tuple[str, str]:
    if app.terminal is not None:
        zh, en = app.programme.label(app.terminal)
        if app.rejection_reason:
            zh, en = f"{zh}：{app.rejection_reason}", f"{en}: {app.rejection_reason}"
        return zh, en
    zh, en = app.runner.details()
    due = app.programme.fixed_date(app.programme.steps[app.index].due)
    zh += f"；须于{due.on.month}月{due.on.day}日前完成"
    en += f"; due by {due.on.month}/{due.on.day} ({due.label_en})"
    if app.overdue:
        zh += "；已逾期：" + "、".join(date_label(app, k)[0] for k in app.overdue)
        en += "; OVERDUE: " + ", ".join(date_label(app, k)[1] for k in app.overdue)
    if app.at_risk:
        zh += "；有风险：" + "、".join(date_label(app, k)[0] for k in app.at_risk)
        en += "; AT RISK: " + ", ".join(date_label(app, k)[1] for k in app.at_risk)
    if app.schedule.provisional_years:
        zh += "（日历为暂定数据）"
        en += " (provisional calendar)"
    return zh, en


def publish_soon(app: ApplicationWorkflow) -> None:
    """``publish``, once what this step of the workflow changes is all changed: a step's
    entry and its own news (a notice's automatic time) were two upserts, two events
    (issue 20); they are one. It runs before anything after it could end the workflow:
    the run ends only after a wait (the trail's last write)."""
    if not app.publishing:
        app.publishing = True
        asyncio.get_running_loop().call_soon(_publish_now, app)


def _publish_now(app: ApplicationWorkflow) -> None:
    if app.holding_trail:
        # A step is working out what it records next (a local activity: its notice's
        # period): its news comes with it, and one upsert says both (issue 20).
        app.watch(_publish_when_held_done(app))
        return
    app.publishing = False
    publish(app)


async def _publish_when_held_done(app: ApplicationWorkflow) -> None:
    await workflow.wait_condition(lambda: not app.holding_trail)
    _publish_now(app)


def publish(app: ApplicationWorkflow) -> None:
    """Keep search attributes and the UI's current details in step with the state;
    an attribute is upserted only when it changed."""
    upsert_changed(
        app.published,
        [
            (search.STAGE, app.stage),
            (search.WAITING_FOR, waiting_for(app)),
            (search.OVERDUE, bool(app.overdue)),
            (search.AT_RISK, bool(app.at_risk)),
            (search.NEXT_DEADLINE, due_at(app)),
        ],
    )
    zh, en = details(app)
    workflow.set_current_details(f"**{zh}**\n\n{en}")


def status(app: ApplicationWorkflow) -> ApplicationStatus:
    """The status query: where the application stands, in plain words too."""
    zh, en = details(app)
    notice = getattr(app.runner, "notice", None) if not app.closed else None
    return ApplicationStatus(
        workflow_id=app.inp.workflow_id,
        programme=app.programme.code,
        season=app.inp.season,
        stage=app.stage,
        waiting_for=waiting_for(app),
        waiting_until=waiting_until(app),
        overdue=list(app.overdue),
        at_risk=list(app.at_risk),
        notice=notice,
        objections=list(app.objections),
        amount_cny=app.inp.amount_cny,
        applicant_masked=f"{app.inp.applicant.name} {app.inp.applicant.national_id_masked}",
        places=app.inp.places,
        provisional=bool(app.schedule.provisional_years),
        details_zh=zh,
        details_en=en,
    )


def snapshot(app: ApplicationWorkflow) -> ApplicationSnapshot:
    a = app.inp.applicant
    notice = getattr(app.runner, "notice", None)
    return ApplicationSnapshot(
        workflow_id=app.inp.workflow_id,
        programme=app.programme.code,
        programme_name=app.programme.name_zh,
        season=app.inp.season,
        round=app.programme.round_key,
        places=app.inp.places,
        applicant_name=a.name,
        national_id_masked=a.national_id_masked,
        national_id_hash=a.national_id_hash,
        university=a.university,
        stage=app.stage,
        overdue_dates=list(app.overdue),
        at_risk=bool(app.at_risk),
        amount_cny=app.inp.amount_cny,
        submitted_at=app.inp.submitted_at,
        notice_posted_at=notice.posted_at if notice else None,
        notice_ends_at=notice.ends_at if notice else None,
        next_deadline=due_at(app),
        waiting_for=waiting_for(app),
        waiting_until=waiting_until(app),
        decided_at=app.decided_at,
        rejection_reason=app.rejection_reason,
        applicant_phone_sealed=a.phone_sealed,
        applicant_email_sealed=a.email_sealed,
        bank_name=a.bank_name,
        account_masked=a.account_masked,
        account_sealed=a.account_sealed,
        account_holder=a.account_holder,
    )
