"""ApplicationWorkflow: one application, from intake to county approval and on to payout.

Deterministic by construction: time comes from ``workflow.now()``; the calendar
(window, fixed dates, and a table of the working days) comes from a local
activity, so it is recorded in the history and a later change of a holiday file
never changes what a replay sees; notice ends, postings and projections are
computed from that table here (``models.calendar``, ``models.planner``: pure code,
workflow code for versioning purposes); every write goes through the
``record_events`` activity.

Requests (decisions, objections, postings, corrections, withdrawals) arrive as
updates with validators (refused at once, nothing written to history) or as
signals for services that cannot wait (a refused signal is recorded in the
trail as refused). Every request carries a request id: a repeat returns the
first answer and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from activities.workflow_calendar import CalendarActivities
    from models import search
    from models.application import (
        Actor,
        ApplicationInput,
        ApplicationStatus,
        CorrectionRequest,
        DecisionRequest,
        NoticePosting,
        NoticeWindow,
        Objection,
        ObjectionRequest,
        ObjectionResolution,
        RequestResult,
        TrailEvent,
        TrailKind,
        WithdrawalRequest,
    )
    from models.calendar import (
        OutsideTable,
        TabulatedCalendar,
        next_working_day_at,
        notice_period,
    )
    from models.domain import (
        ROLE_NAME_ZH,
        STAGE_NAME_EN,
        STAGE_NAME_ZH,
        DecisionKind,
        ObjectionOutcome,
        Role,
        Stage,
    )
    from models.ids import season_workflow_id
    from models.payout import (
        AccountCorrection,
        FundsJoin,
        FundsRelease,
        PayItem,
        PaymentOutcome,
        PaymentSent,
    )
    from models.planner import project_steps
    from models.programme import FundsStep, NoticeStep, PayoutStep, ReviewStep, Step
    from models.records import (
        ApplicationSnapshot,
        EventBatch,
        NoticeRequest,
        NoticeResult,
        NotificationIntent,
        PostingTimeRequest,
        Projection,
        ProjectionRequest,
        ScheduleRequest,
        SeasonSchedule,
    )

SYSTEM = Actor(id="aidflow", name="aidflow", role=Role.SYSTEM)
# Patch id: trail batches are written by a local activity (issue 7: workflow tasks per application).
PERSIST_LOCALLY = "persist-trail-locally"
# Patch id: notices, postings and projections computed from the schedule's table of
# working days instead of a local activity each (issue 7: up to 12 fewer per application).
CALENDAR_IN_WORKFLOW = "calendar-table-in-workflow"
# Pseudo fixed-date key for R7's "within 10 days of the funds' arrival".
PAYMENT_LIMIT = "payment_limit"
_LOCAL = timedelta(seconds=10)
_PERSIST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


class Refused(ApplicationError):
    """A request that breaks a rule. Its message says why, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="RequestRefused", non_retryable=True)


def _fmt(instant: datetime | None) -> str:
    if instant is None:
        return "-"
    # Shanghai is UTC+8 without DST; a fixed offset keeps this free of tz data in the sandbox.
    local = instant.astimezone(_CST)
    return local.strftime("%Y-%m-%d %H:%M")


_CST = timezone(timedelta(hours=8), "CST")


@workflow.defn
class ApplicationWorkflow:
    @workflow.init
    def __init__(self, inp: ApplicationInput) -> None:
        self._inp = inp
        self._programme = inp.programme
        self._steps: tuple[Step, ...] = inp.programme.steps
        self._index = 0
        self._stage: str = self._steps[0].stage
        self._terminal: Stage | None = None
        self._rejection_reason: str | None = None
        self._schedule: SeasonSchedule | None = None
        # Requests
        self._results: dict[str, RequestResult] = {}
        self._decided_by: dict[str, str] = {}  # actor id -> stage decided (four eyes)
        self._step_done = False
        self._awaiting_correction = False
        # Notices
        self._awaiting_posting = False
        self._auto_post_at: datetime | None = None
        self._explicit_post: datetime | None = None
        self._notice: NoticeWindow | None = None
        self._objections: list[Objection] = []
        self._objector_contacts: dict[str, str] = {}  # only for telling the objector the outcome
        # Dates
        self._overdue: list[str] = []
        self._at_risk: list[str] = []
        self._decided_at: datetime | None = None
        # Trail and persistence
        self._trail: list[TrailEvent] = []
        self._unsaved: list[TrailEvent] = []
        self._unsaved_notes: dict[int, list[NotificationIntent]] = {}
        self._published: dict[str, Any] = {}
        self._watchers: list[asyncio.Task[None]] = []
        # Funds and payout (R7)
        self._funds_request: str | None = None
        self._release: FundsRelease | None = None
        self._payment_attempt = 1
        self._payment_in_flight: PaymentSent | None = None
        self._returned_reason: str | None = None
        self._paid = False
        self._persist_locally = False  # decided at the start of run()
        # The season's working days, once the schedule has come (and the patch allows).
        self._calendar: TabulatedCalendar | None = None
        # Recorded here, before any update or signal delivered with the first task is handled.
        self._record(
            "submitted",
            inp.submitted_by,
            f"申请已受理 / application received ({self._programme.name_zh}, {inp.season})",
            {
                "programme_version": self._programme.version,
                "amount_cny": inp.amount_cny,
                "submitted_at": inp.submitted_at.isoformat(),
            },
            notify=[NotificationIntent(audience="applicant", template="submitted")],
        )
        self._record_stage_entered(self._steps[0])

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: ApplicationInput) -> ApplicationStatus:
        # Versions are decided here, before the first command, where a replay reaches
        # the same point whatever the timing of local activities and messages.
        self._persist_locally = workflow.patched(PERSIST_LOCALLY)
        calendar_here = workflow.patched(CALENDAR_IN_WORKFLOW)
        self._schedule = await workflow.execute_local_activity_method(
            CalendarActivities.compute_season_schedule,
            ScheduleRequest(programme=self._programme, season=inp.season),
            start_to_close_timeout=_LOCAL,
            summary="season schedule from the working-day calendar",
        )
        if calendar_here and self._schedule.working_days is not None:
            self._calendar = TabulatedCalendar(self._schedule.working_days)
        persister = asyncio.create_task(self._persist_loop())
        self._watchers = [
            asyncio.create_task(self._watch_fixed_date(fixed.key, fixed.due_at))
            for fixed in self._schedule.fixed_dates
            if any(s.due == fixed.key for s in self._steps)
        ]

        for index, step in enumerate(self._steps):
            if self._terminal is not None:
                break
            if index > 0:
                self._enter_step(index, step)
            await self._project(index, workflow.now())
            self._publish()
            if isinstance(step, ReviewStep):
                await self._review(step)
            elif isinstance(step, NoticeStep):
                await self._notice_period(step)
            elif isinstance(step, FundsStep):
                # The season workflow puts the application on the county's funds
                # request and releases it when the funds arrive.
                await workflow.wait_condition(
                    lambda: self._release is not None or self._terminal is not None
                )
            elif isinstance(step, PayoutStep):
                await self._payout(step)

        if self._terminal is None:
            self._terminal = Stage.PAID
            self._record(
                "stage_entered", SYSTEM, "已发放，申请办结 / paid; the application is closed", {}
            )
        self._stage = self._terminal
        self._publish()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._unsaved
        )
        persister.cancel()
        return self.status()

    def _enter_step(self, index: int, step: Step) -> None:
        # Step 0's state is set up in __init__, so a request handled before run()
        # starts is not undone here.
        self._index = index
        self._stage = step.stage
        self._step_done = False
        self._awaiting_correction = False
        self._notice = None
        self._record_stage_entered(step)

    def _record_stage_entered(self, step: Step) -> None:
        self._record(
            "stage_entered",
            SYSTEM,
            f"进入{step.label_zh} / entered {step.label_en}",
            {"step_index": self._index},
            notify=self._office_notice(step, "work_waiting"),
        )

    # --------------------------------------------------------------- review

    async def _review(self, step: ReviewStep) -> None:
        await workflow.wait_condition(lambda: self._step_done or self._terminal is not None)

    # --------------------------------------------------------------- notice

    async def _notice_period(self, step: NoticeStep) -> None:
        assert self._schedule is not None
        now = workflow.now()
        if step.first_posting == "window_close" and now < self._schedule.window_closes_at:
            auto_at = self._schedule.window_closes_at
            rule = "申请期结束时自动公示 / posted automatically when the application window closes"
        else:
            auto_at = await self._next_posting_time(now, step)
            rule = (
                f"下一工作日{step.auto_post_at:%H:%M}自动公示 / posted automatically at "
                f"{step.auto_post_at:%H:%M} of the next working day"
            )
        self._awaiting_posting = True
        self._auto_post_at = auto_at
        self._record(
            "notice_scheduled",
            SYSTEM,
            f"{step.label_zh}待张贴，最迟 {_fmt(auto_at)} / {step.label_en} to be posted by {_fmt(auto_at)}",
            {"auto_post_at": auto_at.isoformat(), "rule": rule},
        )
        self._publish()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._explicit_post is not None or self._terminal is not None,
                timeout=max(auto_at - workflow.now(), timedelta(0)),
                timeout_summary=f"auto-post {step.label_en} at {_fmt(auto_at)}",
            )
        if self._terminal is not None:
            return
        posted_at = self._explicit_post or auto_at
        posted_by = "explicit" if self._explicit_post else "automatic"
        self._explicit_post = None
        self._awaiting_posting = False
        self._auto_post_at = None
        period = await self._notice_period_from(posted_at, step)
        self._notice = NoticeWindow(
            stage=step.stage,
            posted_at=period.posted_at,
            ends_at=period.ends_at,
            counted_days=[d.isoformat() for d in period.counted_days],
            provisional=period.provisional,
        )
        self._record(
            "notice_posted",
            SYSTEM,
            f"{step.label_zh}已张贴，{_fmt(period.posted_at)} 至 {_fmt(period.ends_at)} / "
            f"{step.label_en} posted ({posted_by}), ends {_fmt(period.ends_at)}",
            {
                "posted_at": period.posted_at.isoformat(),
                "ends_at": period.ends_at.isoformat(),
                "counted_days": self._notice.counted_days,
                "provisional": period.provisional,
                "posting": posted_by,
            },
            notify=[
                NotificationIntent(
                    audience="applicant",
                    template="notice_posted",
                    params={
                        "notice": step.label_zh,
                        "ends_at": _fmt(period.ends_at),
                        "provisional": period.provisional,
                    },
                )
            ],
        )
        if self._index + 1 < len(self._steps):
            await self._project(self._index + 1, period.ends_at)
        self._publish()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._terminal is not None,
                timeout=max(period.ends_at - workflow.now(), timedelta(0)),
                timeout_summary=f"{step.label_en} ends {_fmt(period.ends_at)}",
            )
        if self._terminal is not None:
            return
        self._record(
            "notice_ended",
            SYSTEM,
            f"{step.label_zh}期满 / {step.label_en} period over",
            {"open_objections": [o.id for o in self._open_objections()]},
        )
        self._publish()
        # R3: an open objection holds the application in the notice until resolved.
        await workflow.wait_condition(
            lambda: not self._open_objections() or self._terminal is not None
        )

    # ------------------------------------------------------------ funds, payout

    async def _payout(self, step: PayoutStep) -> None:
        assert self._release is not None
        self._watchers.append(asyncio.create_task(self._watch_pay_by(self._release.pay_by)))
        await workflow.wait_condition(lambda: self._paid or self._terminal is not None)
        if self._paid:
            await workflow.get_external_workflow_handle(self._season_id()).signal(
                "payment_settled", self._inp.workflow_id
            )

    async def _watch_pay_by(self, pay_by: datetime) -> None:
        delay = pay_by - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay, summary=f"payment limit {_fmt(pay_by)}")
        if self._paid or self._terminal is not None:
            return
        self._overdue.append(PAYMENT_LIMIT)
        self._record(
            "overdue",
            SYSTEM,
            f"逾期：资金到位后{_fmt(pay_by)}前未发放 / overdue: not paid by {_fmt(pay_by)} (10 days after the funds arrived)",
            {"fixed_date": PAYMENT_LIMIT, "due_at": pay_by.isoformat(), "stage": self._stage},
            notify=[
                NotificationIntent(
                    audience="county",
                    role=Role.COUNTY_EDUCATION_BUREAU,
                    place_code=self._inp.places.county_code,
                    template="overdue",
                    params={
                        "date": "资金到位后10日内发放",
                        "on": _fmt(pay_by),
                        "stage": self._stage_zh(),
                    },
                ),
            ],
        )
        self._publish()

    def _date_label(self, key: str) -> tuple[str, str]:
        if key == PAYMENT_LIMIT:
            return "资金到位后10日内发放", "payment within 10 days of the funds' arrival"
        d = self._programme.fixed_date(key)
        return d.label_zh, d.label_en

    def _season_id(self) -> str:
        return season_workflow_id(
            self._programme.code, self._inp.season, self._inp.places.county_code
        )

    @workflow.signal
    def funds_requested(self, join: FundsJoin) -> None:
        if (
            self._funds_request is not None
            or not isinstance(self._steps[self._index], FundsStep)
            or self._terminal
        ):
            return
        self._funds_request = join.request_id
        self._record(
            "funds",
            SYSTEM,
            f"已列入资金申请 {join.request_id} / on funds request {join.request_id}",
            {"funds_request": join.request_id},
            notify=[NotificationIntent(audience="applicant", template="funds_requested")],
        )
        self._publish()

    @workflow.signal
    def funds_released(self, release: FundsRelease) -> None:
        if (
            self._release is not None
            or not isinstance(self._steps[self._index], FundsStep)
            or self._terminal
        ):
            return
        self._release = release
        self._record(
            "funds",
            SYSTEM,
            f"资金已到位（{release.reference}），须于 {_fmt(release.pay_by)} 前发放 / funds arrived ({release.reference}); pay by {_fmt(release.pay_by)}",
            {
                "funds_request": release.request_id,
                "reference": release.reference,
                "arrived_at": release.arrived_at.isoformat(),
                "pay_by": release.pay_by.isoformat(),
            },
        )

    @workflow.signal
    def payment_sent(self, sent: PaymentSent) -> None:
        if self._release is None or self._paid or sent.attempt != self._payment_attempt:
            return
        self._payment_in_flight = sent
        self._record(
            "payment",
            SYSTEM,
            f"已送银行代发（批次 {sent.batch_id}，账户 {sent.account_masked}） / sent to the bank in batch {sent.batch_id} to {sent.account_masked}",
            {
                "batch_id": sent.batch_id,
                "idempotency_key": sent.idempotency_key,
                "attempt": sent.attempt,
                "account": sent.account_masked,
            },
        )
        self._publish()

    @workflow.signal
    def payment_result(self, outcome: PaymentOutcome) -> None:
        sent = self._payment_in_flight
        if sent is None or outcome.idempotency_key != sent.idempotency_key or self._paid:
            return  # a stale or repeated result changes nothing
        self._payment_in_flight = None
        if outcome.status == "paid":
            self._paid = True
            self._record(
                "payment",
                SYSTEM,
                f"已发放 {self._inp.amount_cny} 元至 {sent.account_masked} / paid {self._inp.amount_cny} CNY to {sent.account_masked}",
                {
                    "batch_id": outcome.batch_id,
                    "idempotency_key": outcome.idempotency_key,
                    "status": "paid",
                    "bank_reference": outcome.bank_reference,
                    "amount_cny": self._inp.amount_cny,
                },
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="paid",
                        params={"account": sent.account_masked},
                    )
                ],
            )
        else:
            self._returned_reason = outcome.reason
            self._stage = Stage.AWAITING_ACCOUNT_CORRECTION
            self._record(
                "payment",
                SYSTEM,
                f"银行退票：{outcome.reason} / returned by the bank: {outcome.reason}",
                {
                    "batch_id": outcome.batch_id,
                    "idempotency_key": outcome.idempotency_key,
                    "status": "returned",
                    "reason": outcome.reason,
                },
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="payment_returned",
                        params={"reason": outcome.reason},
                    ),
                    NotificationIntent(
                        audience="office",
                        role=Role.VILLAGE_COMMITTEE,
                        place_code=self._inp.places.village_code,
                        template="work_waiting",
                        params={"stage": "更正一卡通账户"},
                    ),
                ],
            )
        self._publish()

    @workflow.update
    async def correct_account(self, req: AccountCorrection) -> RequestResult:
        if req.request_id in self._results:
            return self._results[req.request_id]
        applicant = self._inp.applicant.model_copy(
            update={
                "bank_name": req.bank_name,
                "account_masked": req.account_masked,
                "account_sealed": req.account_sealed,
                "account_holder": req.account_holder,
            }
        )
        self._inp = self._inp.model_copy(update={"applicant": applicant})
        self._payment_attempt += 1
        self._returned_reason = None
        self._stage = self._steps[self._index].stage
        self._record(
            "correction",
            req.actor,
            f"一卡通账户已更正为 {req.account_masked}，待补发 / account corrected to {req.account_masked}; re-payment in the next batch",
            {
                "request_id": req.request_id,
                "account": req.account_masked,
                "attempt": self._payment_attempt,
            },
        )
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self._stage,
            message=f"account corrected to {req.account_masked}; re-payment (attempt {self._payment_attempt}) in the next batch",
        )
        self._results[req.request_id] = result
        self._publish()
        await workflow.get_external_workflow_handle(self._season_id()).signal(
            "repayment_ready",
            PayItem(
                workflow_id=self._inp.workflow_id,
                amount_cny=self._inp.amount_cny,
                attempt=self._payment_attempt,
            ),
        )
        return result

    @correct_account.validator
    def _validate_account(self, req: AccountCorrection) -> None:
        if req.request_id in self._results:
            return
        self._check_open()
        if self._stage != Stage.AWAITING_ACCOUNT_CORRECTION:
            raise Refused(
                f"the application is in {self._stage}; an account is corrected only after a returned payment"
            )
        problems = []
        if req.actor.role is not Role.VILLAGE_COMMITTEE:
            problems.append(
                f"role {req.actor.role.value} may not correct the account; it needs village_committee"
            )
        if req.actor.place_code != self._inp.places.village_code:
            problems.append(
                f"place {req.actor.place_code or '(none)'} is not the application's village {self._inp.places.village_code}"
            )
        if problems:
            raise Refused("; ".join(problems))

    # ------------------------------------------------------------ deadlines

    async def _watch_fixed_date(self, key: str, due_at: datetime) -> None:
        fixed = self._programme.fixed_date(key)
        delay = due_at - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay, summary=f"fixed date: {fixed.label_en} by {fixed.on}")
        if self._terminal is not None:
            return
        last_due = max(i for i, s in enumerate(self._steps) if s.due == key)
        if self._index > last_due:
            return
        self._overdue.append(key)
        self._record(
            "overdue",
            SYSTEM,
            f"逾期：{fixed.label_zh}（{fixed.on}）未完成，当前{self._stage_zh()} / overdue: "
            f"{fixed.label_en} by {fixed.on} missed in {self._stage_en()}",
            {"fixed_date": key, "due_at": due_at.isoformat(), "stage": self._stage},
            notify=[
                NotificationIntent(
                    audience="office",
                    role=fixed.responsible,
                    place_code=self._place_for(fixed.responsible),
                    template="overdue",
                    params={"date": fixed.label_zh, "on": str(fixed.on), "stage": self._stage_zh()},
                ),
                NotificationIntent(
                    audience="county",
                    role=Role.COUNTY_EDUCATION_BUREAU,
                    place_code=self._inp.places.county_code,
                    template="overdue",
                    params={"date": fixed.label_zh, "on": str(fixed.on), "stage": self._stage_zh()},
                ),
            ],
        )
        self._publish()

    # The three calendar questions: answered from the table when there is one and it
    # holds the days in question as settled, else by a local activity (histories from
    # before the table, a day beyond its data, or a provisional day: see DayTable).

    async def _next_posting_time(self, after: datetime, step: NoticeStep) -> datetime:
        if self._calendar is not None:
            with contextlib.suppress(OutsideTable):
                return next_working_day_at(self._calendar, after, step.auto_post_at)
        return await workflow.execute_local_activity_method(
            CalendarActivities.next_posting_time,
            PostingTimeRequest(after=after, clock=step.auto_post_at),
            start_to_close_timeout=_LOCAL,
            summary="next working day for the automatic posting",
        )

    async def _notice_period_from(self, posted_at: datetime, step: NoticeStep) -> NoticeResult:
        if self._calendar is not None:
            with contextlib.suppress(OutsideTable):
                p = notice_period(self._calendar, posted_at, step.days, step.counting)
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

    async def _projection(self, from_index: int, at: datetime) -> Projection:
        if self._calendar is not None:
            with contextlib.suppress(OutsideTable):
                steps = project_steps(
                    self._programme,
                    self._inp.season,
                    self._calendar,
                    from_index=from_index,
                    at=at,
                )
                return Projection(steps=list(steps))
        return await workflow.execute_local_activity_method(
            CalendarActivities.project_remaining_steps,
            ProjectionRequest(
                programme=self._programme, season=self._inp.season, from_index=from_index, at=at
            ),
            start_to_close_timeout=_LOCAL,
            summary="project remaining steps on the calendar",
        )

    async def _project(self, from_index: int, at: datetime) -> None:
        """R6: project the remaining steps on the calendar; warn when a date is at risk."""
        projection = await self._projection(from_index, at)
        at_risk = [k for k in projection.at_risk_keys if k not in self._overdue]
        new = [k for k in at_risk if k not in self._at_risk]
        self._at_risk = at_risk
        if new:
            labels = [self._programme.fixed_date(k) for k in new]
            self._record(
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
                        role=d.responsible,
                        place_code=self._place_for(d.responsible),
                        template="at_risk",
                        params={"date": d.label_zh, "on": str(d.on)},
                    )
                    for d in labels
                ],
            )

    # ------------------------------------------------------------ decisions

    @workflow.update
    async def decide(self, req: DecisionRequest) -> RequestResult:
        return self._answer(req, self._apply_decision)

    @decide.validator
    def _validate_decide(self, req: DecisionRequest) -> None:
        self._validate(req, self._check_decision)

    @workflow.signal(name="decide_signal")
    def decide_signal(self, req: DecisionRequest) -> None:
        self._via_signal(req, self._check_decision, self._apply_decision)

    def _check_decision(self, req: DecisionRequest) -> None:
        self._check_open()
        step = self._steps[self._index]
        if req.stage != self._stage or not isinstance(step, ReviewStep):
            raise Refused(
                f"the application is in stage {self._stage} ({self._stage_en()}), not {req.stage}"
            )
        problems: list[str] = []
        if req.actor.role != step.role:
            problems.append(
                f"role {req.actor.role.value} may not decide {step.stage}; it needs {step.role.value}"
            )
        expected_place = self._inp.places.code_at(step.level)
        if req.actor.place_code != expected_place:
            problems.append(
                f"place {req.actor.place_code or '(none)'} is not the application's "
                f"{step.level.value} {expected_place}"
            )
        earlier = self._decided_by.get(req.actor.id)
        if earlier is not None and earlier != step.stage:
            problems.append(
                f"four eyes: {req.actor.id} already decided {earlier} of this application"
            )
        if (
            req.decision in (DecisionKind.REJECT, DecisionKind.RETURN_FOR_CORRECTION)
            and not req.reason.strip()
        ):
            problems.append(f"reason is required to {req.decision.value}")
        if self._awaiting_correction:
            problems.append(
                "the application was returned for correction; waiting for the correction"
            )
        if problems:
            raise Refused("; ".join(problems))

    def _apply_decision(self, req: DecisionRequest) -> RequestResult:
        step = self._steps[self._index]
        self._decided_by[req.actor.id] = step.stage
        self._decided_at = workflow.now()
        if req.decision is DecisionKind.APPROVE:
            nxt = (
                self._steps[self._index + 1].stage
                if self._index + 1 < len(self._steps)
                else Stage.PAID
            )
            message = f"{step.stage} approved; next: {nxt}"
            self._step_done = True
            notify: list[NotificationIntent] = []
        elif req.decision is DecisionKind.REJECT:
            message = f"{step.stage} rejected: {req.reason}"
            self._reject(req.reason)
            notify = [
                NotificationIntent(
                    audience="applicant",
                    template="rejected",
                    params={"stage": self._stage_zh(), "reason": req.reason},
                )
            ]
        else:
            message = f"{step.stage} returned for correction: {req.reason}"
            self._awaiting_correction = True
            notify = [
                NotificationIntent(
                    audience="applicant",
                    template="returned",
                    params={"stage": self._stage_zh(), "reason": req.reason},
                )
            ]
        self._record(
            "decision",
            req.actor,
            f"{self._stage_zh()}：{_DECISION_ZH[req.decision]} / {message}",
            {"request_id": req.request_id, "decision": req.decision.value, "reason": req.reason},
            notify=notify,
        )
        result = RequestResult(
            request_id=req.request_id, accepted=True, stage=self._current_stage(), message=message
        )
        self._results[req.request_id] = result
        self._publish()
        return result

    # ---------------------------------------------------------- corrections

    @workflow.update
    async def correct(self, req: CorrectionRequest) -> RequestResult:
        return self._answer(req, self._apply_correction)

    @correct.validator
    def _validate_correct(self, req: CorrectionRequest) -> None:
        self._validate(req, self._check_correction)

    @workflow.signal(name="correct_signal")
    def correct_signal(self, req: CorrectionRequest) -> None:
        self._via_signal(req, self._check_correction, self._apply_correction)

    def _check_correction(self, req: CorrectionRequest) -> None:
        self._check_open()
        if not self._awaiting_correction:
            raise Refused(
                f"nothing to correct: the application is in {self._stage} and was not returned"
            )
        problems = []
        if req.actor.role not in (Role.APPLICANT, Role.VILLAGE_COMMITTEE):
            problems.append("corrections come from the applicant or the village committee")
        if (
            req.actor.role is Role.VILLAGE_COMMITTEE
            and req.actor.place_code != self._inp.places.village_code
        ):
            problems.append(f"place {req.actor.place_code} is not the application's village")
        unknown = sorted(set(req.changes) - _CORRECTABLE)
        if unknown:
            problems.append(
                f"fields {', '.join(unknown)} cannot be corrected here (allowed: {', '.join(sorted(_CORRECTABLE))})"
            )
        if problems:
            raise Refused("; ".join(problems))

    def _apply_correction(self, req: CorrectionRequest) -> RequestResult:
        applicant = self._inp.applicant
        updates: dict[str, Any] = dict(req.changes)
        if req.documents is not None:
            updates["documents"] = req.documents
        self._inp = self._inp.model_copy(update={"applicant": applicant.model_copy(update=updates)})
        self._awaiting_correction = False
        self._record(
            "correction",
            req.actor,
            f"已更正，{self._stage_zh()}重新审核 / corrected; {self._stage_en()} reviews again",
            {"request_id": req.request_id, "fields": sorted(updates), "note": req.note},
            notify=self._office_notice(self._steps[self._index], "work_waiting"),
        )
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self._stage,
            message="corrected; the same stage reviews again",
        )
        self._results[req.request_id] = result
        self._publish()
        return result

    # ---------------------------------------------------------- objections

    @workflow.update
    async def lodge_objection(self, req: ObjectionRequest) -> RequestResult:
        return self._answer(req, self._apply_objection)

    @lodge_objection.validator
    def _validate_objection(self, req: ObjectionRequest) -> None:
        self._validate(req, self._check_objection)

    @workflow.signal(name="lodge_objection_signal")
    def lodge_objection_signal(self, req: ObjectionRequest) -> None:
        self._via_signal(req, self._check_objection, self._apply_objection)

    def _check_objection(self, req: ObjectionRequest) -> None:
        self._check_open()
        notice = self._notice
        step = self._steps[self._index]
        if not isinstance(step, NoticeStep):
            raise Refused(
                f"no notice is up: the application is in {self._stage} ({self._stage_en()})"
            )
        if notice is None:
            raise Refused(
                f"the {step.label_en} is not posted yet (automatic posting {_fmt(self._auto_post_at)})"
            )
        if workflow.now() >= notice.ends_at:
            raise Refused(
                f"the {step.label_en} ended at {_fmt(notice.ends_at)}; objections are no longer accepted"
            )

    def _apply_objection(self, req: ObjectionRequest) -> RequestResult:
        assert self._notice is not None
        objection = Objection(
            id=f"obj-{len(self._objections) + 1}",
            stage=self._stage,
            lodged_at=workflow.now(),
            lodged_by=req.actor,
            text=req.text,
            contact_masked=_mask_contact(req.contact),
            evidence_ref=req.evidence_ref,
        )
        self._objections.append(objection)
        if req.contact:
            self._objector_contacts[objection.id] = req.contact
        step = self._steps[self._index]
        assert isinstance(step, NoticeStep)
        self._record(
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
                    place_code=self._inp.places.code_at(step.level),
                    template="objection_lodged",
                    params={"objection_id": objection.id, "notice": step.label_zh},
                )
            ],
        )
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self._stage,
            message=f"objection {objection.id} lodged; the {step.label_en}'s owner resolves it",
        )
        self._results[req.request_id] = result
        self._publish()
        return result

    @workflow.update
    async def resolve_objection(self, req: ObjectionResolution) -> RequestResult:
        return self._answer(req, self._apply_resolution)

    @resolve_objection.validator
    def _validate_resolution(self, req: ObjectionResolution) -> None:
        self._validate(req, self._check_resolution)

    @workflow.signal(name="resolve_objection_signal")
    def resolve_objection_signal(self, req: ObjectionResolution) -> None:
        self._via_signal(req, self._check_resolution, self._apply_resolution)

    def _check_resolution(self, req: ObjectionResolution) -> None:
        self._check_open()
        objection = next((o for o in self._objections if o.id == req.objection_id), None)
        if objection is None:
            known = ", ".join(o.id for o in self._objections) or "none"
            raise Refused(f"no objection {req.objection_id} on this application (known: {known})")
        if objection.outcome is not None:
            raise Refused(
                f"objection {objection.id} was already resolved: {objection.outcome.value}"
            )
        step = self._programme.step(objection.stage)
        assert isinstance(step, NoticeStep)
        problems = []
        if req.actor.role != step.owner:
            problems.append(
                f"role {req.actor.role.value} may not resolve objections to the {step.label_en}; it needs {step.owner.value}"
            )
        expected = self._inp.places.code_at(step.level)
        if req.actor.place_code != expected:
            problems.append(
                f"place {req.actor.place_code or '(none)'} is not the application's {step.level.value} {expected}"
            )
        if problems:
            raise Refused("; ".join(problems))

    def _apply_resolution(self, req: ObjectionResolution) -> RequestResult:
        i = next(i for i, o in enumerate(self._objections) if o.id == req.objection_id)
        objection = self._objections[i].model_copy(
            update={
                "outcome": req.outcome,
                "resolved_at": workflow.now(),
                "resolved_by": req.actor,
                "reason": req.reason,
            }
        )
        self._objections[i] = objection
        upheld = req.outcome is ObjectionOutcome.UPHELD
        self._record(
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
                    recipient=self._objector_contacts.get(objection.id, ""),
                )
            ],
        )
        if upheld:
            self._reject(f"objection {objection.id} upheld: {req.reason}")
            self._record(
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
                        params={"stage": self._stage_zh(), "reason": req.reason},
                    )
                ],
            )
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self._current_stage(),
            message=f"objection {objection.id} {req.outcome.value}"
            + ("; application rejected" if upheld else ""),
        )
        self._results[req.request_id] = result
        self._publish()
        return result

    # ------------------------------------------------------------- postings

    @workflow.update
    async def post_notice(self, req: NoticePosting) -> RequestResult:
        return self._answer(req, self._apply_posting)

    @post_notice.validator
    def _validate_posting(self, req: NoticePosting) -> None:
        self._validate(req, self._check_posting)

    @workflow.signal(name="post_notice_signal")
    def post_notice_signal(self, req: NoticePosting) -> None:
        self._via_signal(req, self._check_posting, self._apply_posting)

    def _check_posting(self, req: NoticePosting) -> None:
        self._check_open()
        step = self._steps[self._index]
        if req.stage != self._stage or not isinstance(step, NoticeStep):
            raise Refused(
                f"the application is in stage {self._stage} ({self._stage_en()}), not {req.stage}"
            )
        if not self._awaiting_posting:
            raise Refused(f"the {step.label_en} is already posted")
        if (
            step.first_posting == "window_close"
            and self._schedule is not None
            and workflow.now() < self._schedule.window_closes_at
        ):
            raise Refused(
                f"the {step.label_en} is posted after the application window closes "
                f"({_fmt(self._schedule.window_closes_at)}); it will be posted then automatically"
            )
        problems = []
        if req.actor.role != step.owner:
            problems.append(
                f"role {req.actor.role.value} may not post the {step.label_en}; it needs {step.owner.value}"
            )
        expected = self._inp.places.code_at(step.level)
        if req.actor.place_code != expected:
            problems.append(
                f"place {req.actor.place_code or '(none)'} is not the application's {step.level.value} {expected}"
            )
        if problems:
            raise Refused("; ".join(problems))

    def _apply_posting(self, req: NoticePosting) -> RequestResult:
        self._explicit_post = workflow.now()
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self._stage,
            message=f"{self._stage} posted by {req.actor.id}",
        )
        self._results[req.request_id] = result
        return result

    # ----------------------------------------------------------- withdrawal

    @workflow.update
    async def withdraw(self, req: WithdrawalRequest) -> RequestResult:
        return self._answer(req, self._apply_withdrawal)

    @withdraw.validator
    def _validate_withdrawal(self, req: WithdrawalRequest) -> None:
        self._validate(req, self._check_withdrawal)

    @workflow.signal(name="withdraw_signal")
    def withdraw_signal(self, req: WithdrawalRequest) -> None:
        self._via_signal(req, self._check_withdrawal, self._apply_withdrawal)

    def _check_withdrawal(self, req: WithdrawalRequest) -> None:
        self._check_open()
        if req.actor.role is not Role.APPLICANT:
            raise Refused("only the applicant may withdraw an application")
        if isinstance(self._steps[self._index], PayoutStep):
            raise Refused("the payout has started; the application can no longer be withdrawn")

    def _apply_withdrawal(self, req: WithdrawalRequest) -> RequestResult:
        stage = self._stage
        self._terminal = Stage.WITHDRAWN
        self._record(
            "withdrawn",
            req.actor,
            f"申请人撤回申请 / withdrawn by the applicant in {stage}",
            {"request_id": req.request_id, "reason": req.reason, "stage": stage},
        )
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=Stage.WITHDRAWN,
            message=f"withdrawn in {stage}",
        )
        self._results[req.request_id] = result
        self._publish()
        return result

    # -------------------------------------------------------------- queries

    @workflow.query
    def status(self) -> ApplicationStatus:
        zh, en = self._details()
        return ApplicationStatus(
            workflow_id=self._inp.workflow_id,
            programme=self._programme.code,
            season=self._inp.season,
            stage=self._current_stage(),
            waiting_for=self._waiting_for(),
            waiting_until=self._waiting_until(),
            overdue=list(self._overdue),
            at_risk=list(self._at_risk),
            notice=self._notice,
            objections=list(self._objections),
            amount_cny=self._inp.amount_cny,
            applicant_masked=f"{self._inp.applicant.name} {self._inp.applicant.national_id_masked}",
            places=self._inp.places,
            provisional=bool(self._schedule and self._schedule.provisional_years),
            details_zh=zh,
            details_en=en,
        )

    @workflow.query
    def trail(self) -> list[TrailEvent]:
        return list(self._trail)

    @workflow.query
    def programme_definition(self) -> dict[str, Any]:
        return self._programme.model_dump(mode="json")

    # -------------------------------------------------------------- helpers

    def _answer(self, req: Any, apply: Callable[[Any], RequestResult]) -> RequestResult:
        """R4: a repeated request id gets the first answer and changes nothing."""
        if req.request_id in self._results:
            return self._results[req.request_id]
        return apply(req)

    def _validate(self, req: Any, check: Callable[[Any], None]) -> None:
        if req.request_id not in self._results:
            check(req)

    def _via_signal(self, req: Any, check: Any, apply: Any) -> None:
        if req.request_id in self._results:
            return
        try:
            check(req)
        except Refused as refusal:
            self._results[req.request_id] = RequestResult(
                request_id=req.request_id,
                accepted=False,
                stage=self._current_stage(),
                message=refusal.message,
            )
            self._record(
                "refused",
                req.actor,
                f"请求被拒绝 / request refused: {refusal.message}",
                {
                    "request_id": req.request_id,
                    "request": type(req).__name__,
                    "reason": refusal.message,
                },
            )
            self._publish()
            return
        apply(req)

    def _check_open(self) -> None:
        if self._terminal is not None:
            raise Refused(f"the application is closed: {self._terminal.value}")

    def _reject(self, reason: str) -> None:
        self._terminal = Stage.REJECTED
        self._rejection_reason = reason

    def _current_stage(self) -> str:
        return self._terminal.value if self._terminal is not None else self._stage

    def _stage_zh(self) -> str:
        return STAGE_NAME_ZH.get(self._stage, self._stage)

    def _stage_en(self) -> str:
        return STAGE_NAME_EN.get(self._stage, self._stage)

    def _place_for(self, role: Role) -> str:
        places = self._inp.places
        if role is Role.VILLAGE_COMMITTEE:
            return places.village_code
        if role is Role.TOWNSHIP_POVERTY_OFFICE:
            return places.township_code
        return places.county_code

    def _office_notice(self, step: Step, template: str) -> list[NotificationIntent]:
        role = _actor_role(step)
        if role is None:
            return []
        return [
            NotificationIntent(
                audience="office",
                role=role,
                place_code=self._place_for(role),
                template=template,
                params={"stage": step.label_zh},
            )
        ]

    def _open_objections(self) -> list[Objection]:
        return [o for o in self._objections if o.outcome is None and o.stage == self._stage]

    def _waiting_for(self) -> str:
        if self._terminal is not None:
            return ""
        step = self._steps[self._index]
        if self._awaiting_correction:
            return Role.APPLICANT.value
        if self._stage == Stage.AWAITING_ACCOUNT_CORRECTION:
            return Role.VILLAGE_COMMITTEE.value
        if isinstance(step, NoticeStep):
            if self._awaiting_posting or self._open_objections():
                return step.owner.value
            return Role.PUBLIC.value
        return (_actor_role(step) or Role.SYSTEM).value

    def _waiting_until(self) -> datetime | None:
        if self._terminal is not None:
            return None
        if self._awaiting_posting:
            return self._auto_post_at
        if self._notice is not None and not self._open_objections():
            return self._notice.ends_at
        if self._release is not None and isinstance(self._steps[self._index], PayoutStep):
            return self._release.pay_by
        return self._due_at()

    def _due_at(self) -> datetime | None:
        if self._schedule is None or self._terminal is not None:
            return None
        return self._schedule.due_at(self._steps[self._index].due)

    def _details(self) -> tuple[str, str]:
        """What the application waits for, from whom, until when: plain words for operators."""
        if self._terminal is not None:
            zh = STAGE_NAME_ZH.get(self._terminal, self._terminal.value)
            en = STAGE_NAME_EN.get(self._terminal, self._terminal.value)
            if self._rejection_reason:
                zh, en = f"{zh}：{self._rejection_reason}", f"{en}: {self._rejection_reason}"
            return zh, en
        step = self._steps[self._index]
        due = self._programme.fixed_date(step.due)
        due_zh = f"须于{due.on.month}月{due.on.day}日前完成"
        due_en = f"due by {due.on.month}/{due.on.day} ({due.label_en})"
        if self._awaiting_correction:
            zh = f"等待申请人更正材料后{step.label_zh}重新审核"
            en = f"waiting for the applicant's correction, then {step.label_en} again"
        elif isinstance(step, NoticeStep) and self._awaiting_posting:
            zh = f"等待{ROLE_NAME_ZH[step.owner]}张贴{step.label_zh}，最迟 {_fmt(self._auto_post_at)} 自动张贴"
            en = f"waiting for the {step.owner.value.replace('_', ' ')} to post the {step.label_en}; automatic posting {_fmt(self._auto_post_at)}"
        elif isinstance(step, NoticeStep) and self._notice is not None:
            open_ = self._open_objections()
            if open_ and workflow.now() >= self._notice.ends_at:
                zh = f"公示期满，等待{ROLE_NAME_ZH[step.owner]}处理异议 {', '.join(o.id for o in open_)}"
                en = f"notice over; waiting for the {step.owner.value.replace('_', ' ')} to resolve objection(s) {', '.join(o.id for o in open_)}"
            else:
                zh = f"{step.label_zh}中，至 {_fmt(self._notice.ends_at)}" + (
                    f"；待处理异议 {len(open_)} 件" if open_ else ""
                )
                en = f"{step.label_en} up until {_fmt(self._notice.ends_at)}" + (
                    f"; {len(open_)} open objection(s)" if open_ else ""
                )
        elif isinstance(step, FundsStep):
            if self._funds_request:
                zh = f"已列入资金申请 {self._funds_request}，等待县扶贫开发领导小组拨付资金"
                en = f"on funds request {self._funds_request}; waiting for the county leading group's funds"
            else:
                zh = "县教育局已审批，等待列入资金申请"
                en = "county-approved; waiting to join the county's funds request"
        elif isinstance(step, PayoutStep) and self._stage == Stage.AWAITING_ACCOUNT_CORRECTION:
            zh = f"银行退票（{self._returned_reason}），等待村委会更正一卡通账户后补发"
            en = f"returned by the bank ({self._returned_reason}); waiting for the village committee to correct the account"
        elif isinstance(step, PayoutStep):
            pay_by = _fmt(self._release.pay_by) if self._release else "-"
            if self._payment_in_flight:
                zh = f"已送银行代发（批次 {self._payment_in_flight.batch_id}），等待回盘；须于 {pay_by} 前发放"
                en = f"at the bank in batch {self._payment_in_flight.batch_id}; waiting for its result; pay by {pay_by}"
            else:
                zh = f"资金已到位，等待打卡发放；须于 {pay_by} 前发放"
                en = f"funds arrived; waiting for the card payout; pay by {pay_by}"
        else:
            role = _actor_role(step)
            who_zh = ROLE_NAME_ZH.get(role, "") if role else ""
            zh = f"等待{who_zh}{step.label_zh}"
            en = f"waiting for {step.label_en}" + (
                f" by the {role.value.replace('_', ' ')}" if role else ""
            )
        zh, en = f"{zh}；{due_zh}", f"{en}; {due_en}"
        if self._overdue:
            zh += "；已逾期：" + "、".join(self._date_label(k)[0] for k in self._overdue)
            en += "; OVERDUE: " + ", ".join(self._date_label(k)[1] for k in self._overdue)
        if self._at_risk:
            zh += "；有风险：" + "、".join(
                self._programme.fixed_date(k).label_zh for k in self._at_risk
            )
            en += "; AT RISK: " + ", ".join(
                self._programme.fixed_date(k).label_en for k in self._at_risk
            )
        if self._schedule and self._schedule.provisional_years:
            zh += "（日历为暂定数据）"
            en += " (provisional calendar)"
        return zh, en

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        stage = self._current_stage()
        attrs: dict[str, Any] = {
            "Stage": stage,
            "WaitingFor": self._waiting_for(),
            "Overdue": bool(self._overdue),
            "AtRisk": bool(self._at_risk),
            "NextDeadline": self._due_at(),
        }
        changed = {k: v for k, v in attrs.items() if self._published.get(k, object()) != v}
        if changed:
            updates = []
            for name, value in changed.items():
                key = _SA_KEYS[name]
                updates.append(key.value_unset() if value is None else key.value_set(value))
            workflow.upsert_search_attributes(updates)
            self._published.update(changed)
        zh, en = self._details()
        workflow.set_current_details(f"**{zh}**\n\n{en}")

    def _record(
        self,
        kind: TrailKind,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None = None,
        *,
        notify: list[NotificationIntent] | None = None,
        at: datetime | None = None,
    ) -> None:
        event = TrailEvent(
            seq=len(self._trail) + 1,
            at=at or workflow.now(),
            kind=kind,
            stage=self._current_stage(),
            actor=actor,
            summary=summary,
            detail=detail or {},
        )
        self._trail.append(event)
        self._unsaved.append(event)
        if notify:
            if self._schedule is not None and self._schedule.provisional_years:
                # Dates computed from a provisional holiday schedule say so (calendar issue).
                notify = [
                    n.model_copy(update={"params": {**n.params, "provisional": True}})
                    for n in notify
                ]
            self._unsaved_notes[event.seq] = notify
        workflow.logger.info(summary, extra={"event": kind, "seq": event.seq, "stage": event.stage})

    def _snapshot(self) -> ApplicationSnapshot:
        a = self._inp.applicant
        return ApplicationSnapshot(
            workflow_id=self._inp.workflow_id,
            programme=self._programme.code,
            programme_name=self._programme.name_zh,
            season=self._inp.season,
            places=self._inp.places,
            applicant_name=a.name,
            national_id_masked=a.national_id_masked,
            national_id_hash=a.national_id_hash,
            university=a.university,
            stage=self._current_stage(),
            overdue_dates=list(self._overdue),
            at_risk=bool(self._at_risk),
            amount_cny=self._inp.amount_cny,
            submitted_at=self._inp.submitted_at,
            notice_posted_at=self._notice.posted_at if self._notice else None,
            notice_ends_at=self._notice.ends_at if self._notice else None,
            next_deadline=self._due_at(),
            decided_at=self._decided_at,
            rejection_reason=self._rejection_reason,
            applicant_phone_sealed=a.phone_sealed,
            applicant_email_sealed=a.email_sealed,
            bank_name=a.bank_name,
            account_masked=a.account_masked,
            account_sealed=a.account_sealed,
            account_holder=a.account_holder,
        )

    async def _persist_loop(self) -> None:
        """Write trail events in order, in batches: one activity per batch, not per event."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unsaved))
            batch = list(self._unsaved)
            notes = {
                e.seq: self._unsaved_notes.pop(e.seq) for e in batch if e.seq in self._unsaved_notes
            }
            payload = EventBatch(snapshot=self._snapshot(), events=batch, notifications=notes)
            summary = f"record events {batch[0].seq}-{batch[-1].seq}"
            if self._persist_locally:
                # A local activity: the write runs inside the workflow task, so a batch costs
                # one history marker instead of three events and a workflow task of its own.
                # The write is short and idempotent (by sequence number), which is what a
                # local activity needs; histories recorded before keep the remote activity.
                await workflow.execute_local_activity_method(
                    RecordActivities.record_events,
                    payload,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_PERSIST_RETRY,
                    summary=summary,
                )
            else:
                await workflow.execute_activity_method(
                    RecordActivities.record_events,
                    payload,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_PERSIST_RETRY,
                    summary=summary,
                )
            del self._unsaved[: len(batch)]


_DECISION_ZH = {
    DecisionKind.APPROVE: "通过",
    DecisionKind.REJECT: "不通过",
    DecisionKind.RETURN_FOR_CORRECTION: "退回更正",
}

_CORRECTABLE = frozenset(
    {"university", "education_level", "freshman", "name", "bank_name", "account_holder"}
)

_SA_KEYS: dict[str, SearchAttributeKey[Any]] = {
    "Stage": search.STAGE,
    "WaitingFor": search.WAITING_FOR,
    "Overdue": search.OVERDUE,
    "AtRisk": search.AT_RISK,
    "NextDeadline": search.NEXT_DEADLINE,
}


def _actor_role(step: Step) -> Role | None:
    if isinstance(step, ReviewStep):
        return step.role
    if isinstance(step, NoticeStep):
        return step.owner
    if isinstance(step, FundsStep):
        return step.provided_by
    if isinstance(step, PayoutStep):
        return step.paid_by
    return None


def _mask_contact(contact: str) -> str:
    if not contact:
        return ""
    if len(contact) <= 4:
        return "*" * len(contact)
    return "*" * (len(contact) - 4) + contact[-4:]
