"""A public notice step (R2, R3): posted by its owner or automatically, up for N days,
objections held until its owner resolves them; R9's rule on what a notice shows is
the roster's (activities/report)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner, fmt, role_words

with workflow.unsafe.imports_passed_through():
    from activities.workflow_calendar import CalendarActivities
    from models.application import (
        SYSTEM,
        NoticePosting,
        NoticeWindow,
        Objection,
        ObjectionRequest,
        ObjectionResolution,
        RequestResult,
    )
    from models.calendar import OutsideTable, next_working_day_at, notice_period
    from models.domain import ROLE_NAME_ZH, DecisionKind, ObjectionOutcome, Role
    from models.records import NoticeRequest, NoticeResult, NotificationIntent, PostingTimeRequest
    from models.steps import NoticeStep

_LOCAL = timedelta(seconds=10)


class NoticeRunner(StepRunner[NoticeStep]):
    awaiting_posting = False
    auto_post_at: datetime | None = None
    explicit_post: datetime | None = None
    notice: NoticeWindow | None = None

    async def run(self) -> None:
        app, step = self.app, self.step
        now = workflow.now()
        if step.first_posting == "window_close" and now < app.schedule.window_closes_at:
            auto_at = app.schedule.window_closes_at
            rule = "申请期结束时自动公示 / posted automatically when the application window closes"
        else:
            auto_at = await self._next_posting_time(now)
            rule = (
                f"下一工作日{step.auto_post_at:%H:%M}自动公示 / posted automatically at "
                f"{step.auto_post_at:%H:%M} of the next working day"
            )
        self.awaiting_posting, self.auto_post_at = True, auto_at
        app.record(
            "notice_scheduled",
            SYSTEM,
            f"{step.label_zh}待张贴，最迟 {fmt(auto_at)} / {step.label_en} to be posted by {fmt(auto_at)}",
            {"auto_post_at": auto_at.isoformat(), "rule": rule},
        )
        app.publish()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.explicit_post is not None or app.closed,
                timeout=max(auto_at - workflow.now(), timedelta(0)),
                timeout_summary=f"auto-post {step.label_en} at {fmt(auto_at)}",
            )
        if app.closed:
            return
        posted_at = self.explicit_post or auto_at
        posting = "explicit" if self.explicit_post else "automatic"
        self.awaiting_posting, self.auto_post_at = False, None
        period = await self._period(posted_at)
        self.notice = NoticeWindow(
            stage=step.stage,
            posted_at=period.posted_at,
            ends_at=period.ends_at,
            counted_days=[d.isoformat() for d in period.counted_days],
            provisional=period.provisional,
        )
        app.record(
            "notice_posted",
            SYSTEM,
            f"{step.label_zh}已张贴，{fmt(period.posted_at)} 至 {fmt(period.ends_at)} / "
            f"{step.label_en} posted ({posting}), ends {fmt(period.ends_at)}",
            {
                "posted_at": period.posted_at.isoformat(),
                "ends_at": period.ends_at.isoformat(),
                "counted_days": self.notice.counted_days,
                "provisional": period.provisional,
                "posting": posting,
            },
            notify=[
                NotificationIntent(
                    audience="applicant",
                    template="notice_posted",
                    params={
                        "notice": step.label_zh,
                        "ends_at": fmt(period.ends_at),
                        "provisional": period.provisional,
                    },
                )
            ],
        )
        if app.index + 1 < len(app.programme.steps):
            await app.project(app.index + 1, period.ends_at)
        app.publish()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: app.closed,
                timeout=max(period.ends_at - workflow.now(), timedelta(0)),
                timeout_summary=f"{step.label_en} ends {fmt(period.ends_at)}",
            )
        if app.closed:
            return
        app.record(
            "notice_ended",
            SYSTEM,
            f"{step.label_zh}期满 / {step.label_en} period over",
            {"open_objections": [o.id for o in self.open_objections()]},
        )
        app.publish()
        # R3: an open objection holds the application in the notice until resolved.
        await workflow.wait_condition(lambda: not self.open_objections() or app.closed)

    def open_objections(self) -> list[Objection]:
        return [o for o in self.app.objections if o.outcome is None and o.stage == self.stage]

    # ------------------------------------------------------- what it waits for

    def waiting_for(self) -> Role:
        if self.awaiting_posting or self.open_objections():
            return self.step.owner
        return Role.PUBLIC

    def waiting_until(self) -> datetime | None:
        if self.awaiting_posting:
            return self.auto_post_at
        if self.notice is not None and not self.open_objections():
            return self.notice.ends_at
        return None

    def details(self) -> tuple[str, str]:
        step, owner_zh, owner_en = (
            self.step,
            ROLE_NAME_ZH[self.step.owner],
            role_words(self.step.owner),
        )
        if self.notice is None:
            return (
                f"等待{owner_zh}张贴{step.label_zh}，最迟 {fmt(self.auto_post_at)} 自动张贴",
                f"waiting for the {owner_en} to post the {step.label_en}; automatic posting {fmt(self.auto_post_at)}",
            )
        open_ = self.open_objections()
        ids = ", ".join(o.id for o in open_)
        if open_ and workflow.now() >= self.notice.ends_at:
            return (
                f"公示期满，等待{owner_zh}处理异议 {ids}",
                f"notice over; waiting for the {owner_en} to resolve objection(s) {ids}",
            )
        return (
            f"{step.label_zh}中，至 {fmt(self.notice.ends_at)}"
            + (f"；待处理异议 {len(open_)} 件" if open_ else ""),
            f"{step.label_en} up until {fmt(self.notice.ends_at)}"
            + (f"; {len(open_)} open objection(s)" if open_ else ""),
        )

    # --------------------------------------------------------------- posting

    def check_posting(self, req: NoticePosting) -> None:
        app, step = self.app, self.step
        if req.stage != step.stage:
            super().check_posting(req)
        if not self.awaiting_posting:
            raise Refused(f"the {step.label_en} is already posted")
        if step.first_posting == "window_close" and workflow.now() < app.schedule.window_closes_at:
            raise Refused(
                f"the {step.label_en} is posted after the application window closes "
                f"({fmt(app.schedule.window_closes_at)}); it will be posted then automatically"
            )
        problems = app.check_place(req.actor, step.owner, step.level, f"post the {step.label_en}")
        if problems:
            raise Refused(problems)

    def apply_posting(self, req: NoticePosting) -> RequestResult:
        self.explicit_post = workflow.now()
        return self.app.result(req.request_id, f"{self.stage} posted by {req.actor.id}")

    # ------------------------------------------------------------ objections

    def check_objection(self, req: ObjectionRequest) -> None:
        if self.notice is None:
            raise Refused(
                f"the {self.step.label_en} is not posted yet (automatic posting {fmt(self.auto_post_at)})"
            )
        if workflow.now() >= self.notice.ends_at:
            raise Refused(
                f"the {self.step.label_en} ended at {fmt(self.notice.ends_at)}; objections are no longer accepted"
            )

    def apply_objection(self, req: ObjectionRequest) -> RequestResult:
        app, step = self.app, self.step
        objection = Objection(
            id=f"obj-{len(app.objections) + 1}",
            stage=step.stage,
            lodged_at=workflow.now(),
            lodged_by=req.actor,
            text=req.text,
            contact_masked=_mask_contact(req.contact),
            evidence_ref=req.evidence_ref,
        )
        app.objections.append(objection)
        if req.contact:
            app.objector_contacts[objection.id] = req.contact
        app.record(
            "objection_lodged",
            req.actor,
            f"收到异议 {objection.id} / objection {objection.id} lodged",
            {
                "request_id": req.request_id,
                "objection_id": objection.id,
                "text": req.text,
                "evidence_ref": req.evidence_ref,
            },
            notify=[
                NotificationIntent(
                    audience="office",
                    role=step.owner,
                    place_code=app.inp.places.code_at(step.level),
                    template="objection_lodged",
                    params={"objection_id": objection.id, "notice": step.label_zh},
                )
            ],
        )
        return app.result(
            req.request_id,
            f"objection {objection.id} lodged; the {step.label_en}'s owner resolves it",
        )

    def check_resolution(self, req: ObjectionResolution) -> None:
        objection = self.objection(req.objection_id)
        if objection.stage != self.stage:
            super().check_resolution(req)
        step = self.step
        problems = self.app.check_place(
            req.actor, step.owner, step.level, f"resolve objections to the {step.label_en}"
        )
        if problems:
            raise Refused(problems)

    def apply_resolution(self, req: ObjectionResolution) -> RequestResult:
        app = self.app
        i = next(i for i, o in enumerate(app.objections) if o.id == req.objection_id)
        objection = app.objections[i].model_copy(
            update={
                "outcome": req.outcome,
                "resolved_at": workflow.now(),
                "resolved_by": req.actor,
                "reason": req.reason,
            }
        )
        app.objections[i] = objection
        upheld = req.outcome is ObjectionOutcome.UPHELD
        app.record(
            "objection_resolved",
            req.actor,
            f"异议 {objection.id} {'成立' if upheld else '不成立'}：{req.reason} / objection {objection.id} {req.outcome.value}: {req.reason}",
            {
                "request_id": req.request_id,
                "objection_id": objection.id,
                "outcome": req.outcome.value,
                "reason": req.reason,
            },
            notify=[
                NotificationIntent(
                    audience="objector",
                    template="objection_resolved",
                    params={
                        "objection_id": objection.id,
                        "outcome": "成立" if upheld else "不成立",
                        "reason": req.reason,
                    },
                    recipient=app.objector_contacts.get(objection.id, ""),
                )
            ],
        )
        if upheld:  # the step's on_upheld: "reject"
            app.reject(f"objection {objection.id} upheld: {req.reason}")
            app.record(
                "decision",
                req.actor,
                f"异议成立，申请未通过 / rejected: objection upheld: {req.reason}",
                {
                    "request_id": req.request_id,
                    "decision": DecisionKind.REJECT.value,
                    "reason": req.reason,
                },
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="rejected",
                        params={"stage": self.step.label_zh, "reason": req.reason},
                    )
                ],
            )
        return app.result(
            req.request_id,
            f"objection {objection.id} {req.outcome.value}"
            + ("; application rejected" if upheld else ""),
        )

    # ------------------------------------------------------------- calendar
    # Answered from the schedule's table where it holds the days as settled, else by a
    # local activity (a day beyond its data, or a provisional one: see DayTable).

    async def _next_posting_time(self, after: datetime) -> datetime:
        if self.app.calendar is not None:
            with contextlib.suppress(OutsideTable):
                return next_working_day_at(self.app.calendar, after, self.step.auto_post_at)
        return await workflow.execute_local_activity_method(
            CalendarActivities.next_posting_time,
            PostingTimeRequest(after=after, clock=self.step.auto_post_at),
            start_to_close_timeout=_LOCAL,
            summary="next working day for the automatic posting",
        )

    async def _period(self, posted_at: datetime) -> NoticeResult:
        step = self.step
        if self.app.calendar is not None:
            with contextlib.suppress(OutsideTable):
                p = notice_period(self.app.calendar, posted_at, step.days, step.counting)
                return NoticeResult(
                    posted_at=p.posted_at,
                    ends_at=p.ends_at,
                    counted_days=list(p.counted_days),
                    provisional=p.provisional,
                )
        return await workflow.execute_local_activity_method(
            CalendarActivities.compute_notice_period,
            NoticeRequest(posted_at=posted_at, days=step.days, counting=step.counting),
            start_to_close_timeout=_LOCAL,
            summary=f"{step.label_en}: {step.days} {step.counting.value.replace('_', ' ')}",
        )


def _mask_contact(contact: str) -> str:
    if not contact:
        return ""
    if len(contact) <= 4:
        return "*" * len(contact)
    return "*" * (len(contact) - 4) + contact[-4:]
