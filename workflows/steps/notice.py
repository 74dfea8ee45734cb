"""A public notice step (R2, R3): the application joins its notice (a NoticeWorkflow of
its programme, season, level, place and stage, started if it is not running) with its
automatic posting time, and works out there and then the period that posting gives, as
the notice works it out, from the same instant and calendar. The notice posts it at that
time by its own timer; the application is not woken for it (issue 20: no answer to its
join, no word of the posting, no workflow task at it). Its trail says the posting with
the next thing that happens to it: an objection, or the period's end. An owner's
earlier posting is told to it. The join goes with the trail's write of the event that
brings it (``notice_scheduled``): no marker of its own. Objections are lodged against it
while the notice is up and held here until the notice's owner resolves them; the notice
is told how many are open."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.clock import until
from workflows.steps.base import Refused, StepRunner, fmt, role_words

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities
    from activities.workflow_calendar import CalendarActivities
    from models.application import (
        SYSTEM,
        NoticeWindow,
        Objection,
        ObjectionRequest,
        ObjectionResolution,
        RequestResult,
    )
    from models.calendar import OutsideTable, TabulatedCalendar, notice_period
    from models.domain import ROLE_NAME_ZH, DecisionKind, Level, ObjectionOutcome, Role
    from models.notice import (
        JoinRequest,
        MemberChange,
        MemberMessage,
        NoticeInput,
        NoticeJoin,
        NoticeMember,
        NoticePosted,
    )
    from models.records import NoticeRequest, NotificationIntent
    from models.steps import NoticeStep

_LOCAL = timedelta(seconds=10)
# A word to the notice (a signal, or a start and a signal for the first member): three
# attempts within seconds, then again a minute later.
_TELL = timedelta(seconds=10)
_TELL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
_TELL_PAUSE = timedelta(minutes=1)


class NoticeRunner(StepRunner[NoticeStep]):
    auto_post_at: datetime | None = None  # its automatic posting (None: the owner posts)
    notice_id: str | None = None
    # The posting it is on: its automatic one (known from its join), or the owner's,
    # told.
    posted: NoticePosted | None = None
    told: NoticePosted | None = None  # an owner's posting, told by the notice
    posting_recorded = False  # its trail says the posting
    _telling: asyncio.Lock | None = None  # its words to the notice, one at a time

    async def run(self) -> None:
        app, step = self.app, self.step
        ready_at = workflow.now()
        notice = self._notice_input()
        self.notice_id = notice.workflow_id
        # The decision that brought it here and its entry on the notice: one write.
        app.holding_trail += 1
        try:
            self.posted = await self._posted_automatically(ready_at)
            self.auto_post_at = self.posted.window.posted_at if self.posted else None
        finally:
            app.holding_trail -= 1
        rule_zh, rule_en = step.posting_rule(ready_at, app.schedule.window_closes_at)
        window = self.notice
        app.record(
            "notice_scheduled",
            SYSTEM,
            (
                f"{step.label_zh}将于 {fmt(window.posted_at)} 张贴，至 {fmt(window.ends_at)} / "
                f"{step.label_en} to be posted {fmt(window.posted_at)}, up until "
                f"{fmt(window.ends_at)}"
                if window is not None
                else f"{step.label_zh}待{ROLE_NAME_ZH[step.owner]}张贴 / "
                f"{step.label_en} to be posted by the {role_words(step.owner)}"
            ),
            {
                "notice": self.notice_id,
                "auto_post_at": self.auto_post_at.isoformat() if self.auto_post_at else None,
                "rule": f"{rule_zh} / {rule_en}",
                # The period its automatic posting gives (the read model's notice).
                **(_window_detail(window) if window is not None else {}),
            },
            notify=self._tell_family("notice_scheduled", window) if window is not None else None,
            tell=self._join(notice, ready_at),
        )
        if window is not None:
            await self._project_from(window)
        app.publish()
        await self._wait_for_posting()
        if app.closed:
            # Off the list if it is still to be posted; the notice passes over the word for
            # one already on a posting. (Not decided by the clock: replays the same.)
            if self.told is None and not any(o.stage == step.stage for o in app.objections):
                self.tell_notice(left=True)
            return
        if self.told is not None:
            # The owner posted it before its automatic time (its period from then), or
            # the notice's period of its automatic posting is not the one it worked out.
            self.record_posting()
            await self._project_from(self.told.window)
            app.publish()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: app.closed,
                    timeout=until(self.told.window.ends_at),
                    timeout_summary=f"{step.label_en} ends {fmt(self.told.window.ends_at)}",
                )
            if app.closed:
                return
        self.record_posting()  # (an automatic posting: said now, with its end)
        app.record(
            "notice_ended",
            SYSTEM,
            f"{step.label_zh}期满 / {step.label_en} period over",
            {"open_objections": [o.id for o in self.open_objections()]},
        )
        app.publish()
        # R3: an open objection holds the application in the notice until resolved.
        await workflow.wait_condition(lambda: not self.open_objections() or app.closed)

    async def _project_from(self, window: NoticeWindow) -> None:
        app = self.app
        if app.index + 1 < len(app.programme.steps):
            await app.project(app.index + 1, window.ends_at)

    def record_posting(self) -> None:
        """Its trail's entry of the posting it is on, once: when it is told (an owner's
        posting), or with the next thing that happens to it once its automatic posting's
        instant has passed (an objection, or the period's end)."""
        posted, step = self.posted, self.step
        if self.posting_recorded or posted is None:
            return
        self.posting_recorded = True
        window = posted.window
        self.app.record(
            "notice_posted",
            SYSTEM,
            f"{step.label_zh}已张贴，{fmt(window.posted_at)} 至 {fmt(window.ends_at)} / "
            f"{step.label_en} posted ({posted.how}) {fmt(window.posted_at)}, ends "
            f"{fmt(window.ends_at)}",
            {
                "notice": posted.notice_id,
                "posting_no": posted.posting or None,
                **_window_detail(window),
                "posting": posted.how,
                "posted_by": posted.posted_by,
                "evidence_sha256": posted.evidence_sha256,
                "list_sha256": posted.list_sha256,
            },
            # The family heard of its automatic posting's dates when it was scheduled.
            notify=self._tell_family("notice_posted", window) if posted is self.told else None,
        )

    def _tell_family(self, template: str, window: NoticeWindow) -> list[NotificationIntent]:
        return [
            NotificationIntent(
                audience="applicant",
                template=template,
                params={
                    "notice": self.step.label_zh,
                    "posted_at": fmt(window.posted_at),
                    "ends_at": fmt(window.ends_at),
                    "provisional": window.provisional,
                },
            )
        ]

    def _binding_calendar(self) -> TabulatedCalendar | None:
        """The season's day table, for instants that bind the public: a provisional day
        (or one outside it) is asked of the calendar itself."""
        table = self.app.schedule.working_days
        return TabulatedCalendar(table) if table is not None else None

    async def _posted_automatically(self, ready_at: datetime) -> NoticePosted | None:
        """Its posting at its automatic time (None where only the owner posts), as the
        notice posts it: the period from the same instant by the same rule. From the
        season's day table where its days are final; else one question to the calendar
        for both the time and the period (each question is a marker in the history)."""
        step, closes = self.step, self.app.schedule.window_closes_at
        calendar = self._binding_calendar()
        at: datetime | None = None
        with contextlib.suppress(OutsideTable):
            at = step.automatic_posting(calendar, ready_at, closes)
            if at is None:
                return None
            if calendar is not None:
                p = notice_period(calendar, at, step.days, step.counting)
                return self._posting(p.posted_at, p.ends_at, list(p.counted_days), p.provisional)
        r = await workflow.execute_local_activity_method(
            CalendarActivities.compute_notice_period,
            NoticeRequest(
                posted_at=at,
                after=ready_at if at is None else None,
                clock=step.auto_post_at,
                days=step.days,
                counting=step.counting,
            ),
            start_to_close_timeout=_LOCAL,
            summary=f"{step.label_en}: {step.days} {step.counting.value.replace('_', ' ')}",
        )
        return self._posting(r.posted_at, r.ends_at, r.counted_days, r.provisional)

    def _posting(
        self, posted_at: datetime, ends_at: datetime, days: list[date], provisional: bool
    ) -> NoticePosted:
        step = self.step
        assert self.notice_id is not None
        return NoticePosted(
            notice_id=self.notice_id,
            posting=0,  # the notice numbers it; the member need not know
            window=NoticeWindow(
                stage=step.stage,
                posted_at=posted_at,
                ends_at=ends_at,
                counted_days=[d.isoformat() for d in days],
                provisional=provisional,
            ),
            how="automatic",
        )

    def _notice_input(self) -> NoticeInput:
        app, step = self.app, self.step
        places = app.inp.places
        place_name = {
            Level.VILLAGE: places.village_name,
            Level.TOWNSHIP: places.township_name,
            Level.COUNTY: places.county_name,
            Level.SCHOOL: places.school_name,
            Level.PROVINCE: "",
        }[step.level]
        return NoticeInput(
            programme=app.programme.code,
            programme_name_zh=app.programme.name_zh,
            season=app.inp.season,
            round=app.programme.round_key,
            county_code=places.county_code,
            place_code=places.code_at(step.level),
            place_name=place_name,
            step=step,
            window_closes_at=app.schedule.window_closes_at,
        )

    def _join(self, notice: NoticeInput, ready_at: datetime) -> JoinRequest:
        app = self.app
        places, a = app.inp.places, app.inp.applicant
        member = NoticeMember(
            workflow_id=app.inp.workflow_id,
            name=a.name,
            village=places.village_name or places.village_code,
            school_or_level=places.school_name or a.university or a.education_level.value,
            amount_cny=app.inp.amount_cny,
            joined_at=ready_at,
            auto_post_at=self.auto_post_at,
            ends_at=self.notice.ends_at if self.notice is not None else None,
        )
        return JoinRequest(notice=notice, join=NoticeJoin(member=member))

    async def _wait_for_posting(self) -> None:
        """Until the owner's posting is told, or (with an automatic time) until the end
        of its automatic posting's period, if no owner posted it before that time."""
        window = self.notice
        if window is None:
            # Posted only by its owner, with the photograph: no automatic time.
            await workflow.wait_condition(lambda: self.told is not None or self.app.closed)
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.told is not None or self.app.closed,
                timeout=until(window.ends_at),
                timeout_summary=(
                    f"{self.step.label_en} posted automatically {fmt(window.posted_at)}, "
                    f"ends {fmt(window.ends_at)}"
                ),
            )

    def on_notice_posted(self, posted: NoticePosted) -> None:
        """An owner's posting, taken as the notice lists it: the notice lists a member
        only before its automatic time (by the posting's instant, not by when the word
        arrives: a word delayed past that time is still this posting)."""
        if posted.notice_id != self.notice_id or self.told is not None or self.app.closed:
            return  # a stale message (another notice, or told twice) changes nothing
        auto = self.auto_post_at
        # Its own automatic posting, whose period the notice worked out otherwise than it
        # did at its join (the calendar changed in between): the notice's stands.
        corrected = posted.how == "automatic" and posted.window.posted_at == auto
        if self.posting_recorded or (
            auto is not None and posted.window.posted_at >= auto and not corrected
        ):
            workflow.logger.warning(
                f"{posted.notice_id}: posting {posted.posting} told after this application's "
                "automatic posting was recorded: passed over"
            )
            return
        self.told = self.posted = posted

    def closing(self) -> None:
        """Withdrawn or cancelled while on the notice: its trail says the posting it was
        on first, if that posting has begun."""
        if self.is_up():
            self.record_posting()

    @property
    def notice(self) -> NoticeWindow | None:
        """The period of the posting it is on (the status query's notice)."""
        return self.posted.window if self.posted is not None else None

    def is_up(self) -> bool:
        """Posted, by its clock: told, or its automatic time passed."""
        return self.told is not None or (
            self.notice is not None and workflow.now() >= self.notice.posted_at
        )

    def tell_notice(self, *, left: bool = False) -> None:
        """What the notice's operator sees of this member: its open objections, or that
        it left."""
        self._tell(
            MemberChange(
                workflow_id=self.app.inp.workflow_id,
                open_objections=0 if left else len(self.open_objections()),
                left=left,
            ),
        )

    def _tell(self, body: MemberChange) -> None:
        """A message to the notice, sealed as this application's, by a local activity
        (a marker, where a signal from the workflow is two events and a workflow task
        for its acknowledgement); a notice that has ended has nothing to hear: passed
        over."""
        notice_id = self.notice_id
        if notice_id is None:
            return
        msg = MemberMessage(notice_id=notice_id, body=body)
        if self._telling is None:
            self._telling = asyncio.Lock()
        lock = self._telling

        async def send() -> None:
            self.app.telling += 1  # the application does not end before it is told
            try:
                async with lock:  # in the order said (a count of objections, then left)
                    await self._send(msg)
            finally:
                self.app.telling -= 1

        self.app.watch(send())

    async def _send(self, msg: MemberMessage) -> None:
        """By a local activity: a marker in this workflow task, answered by nothing but
        the signal's acceptance. A few quick attempts, then a pause in the workflow (a
        timer) and again: a local activity retried without end would hold its workflow
        task, and a worker's shutdown, meanwhile."""
        summary = f"tell the notice: {msg.signal}"
        while True:
            try:
                await workflow.execute_local_activity_method(
                    NoticeActivities.tell_notice,
                    msg,
                    start_to_close_timeout=_TELL,
                    retry_policy=_TELL_RETRY,
                    summary=summary,
                )
                return
            except ActivityError:
                await workflow.sleep(_TELL_PAUSE, summary=f"again: {summary}")

    def open_objections(self) -> list[Objection]:
        return [o for o in self.app.objections if o.outcome is None and o.stage == self.stage]

    # ------------------------------------------------------- what it waits for

    def waiting_for(self) -> Role:
        """Its owner, for a posting only the owner makes or an open objection; else the
        public notice (an automatic posting is the notice's clock, not the owner's act)."""
        if self.notice is None or self.open_objections():
            return self.step.owner
        return Role.PUBLIC

    def waiting_until(self) -> datetime | None:
        if self.notice is None or self.open_objections():
            return None
        return self.notice.ends_at

    def ends_by_itself_at(self) -> datetime | None:
        if self.notice is None or self.open_objections():
            return None
        return self.notice.ends_at

    def details(self) -> tuple[str, str]:
        step, owner_zh, owner_en = (
            self.step,
            ROLE_NAME_ZH[self.step.owner],
            role_words(self.step.owner),
        )
        if self.notice is None and step.evidence_required:
            return (
                f"等待{owner_zh}张贴{step.label_zh}并上传张贴照片",
                f"waiting for the {owner_en} to post the {step.label_en} and upload a photograph of it",
            )
        if self.auto_post_at is None and self.notice is None:
            return f"正在加入{step.label_zh}", f"joining the {step.label_en}"
        if self.notice is None:
            return (
                f"等待{owner_zh}张贴{step.label_zh}",
                f"waiting for the {owner_en} to post the {step.label_en}",
            )
        if not self.is_up():
            # Said once, at its join, and true until its end: no task at the posting.
            return (
                f"{step.label_zh}自 {fmt(self.notice.posted_at)} 起自动张贴，至 "
                f"{fmt(self.notice.ends_at)}",
                f"{step.label_en} posted automatically {fmt(self.notice.posted_at)}, up until "
                f"{fmt(self.notice.ends_at)}",
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

    # ------------------------------------------------------------ objections

    def check_objection(self, req: ObjectionRequest) -> None:
        if self.notice is None or not self.is_up():
            raise Refused(
                f"the {self.step.label_en} is not posted yet (automatic posting {fmt(self.auto_post_at)})"
            )
        if workflow.now() >= self.notice.ends_at:
            raise Refused(
                f"the {self.step.label_en} ended at {fmt(self.notice.ends_at)}; objections are no longer accepted"
            )

    def apply_objection(self, req: ObjectionRequest) -> RequestResult:
        app, step = self.app, self.step
        self.record_posting()  # an automatic posting is said before its first objection
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
        self.tell_notice()
        return app.result(
            req.request_id,
            f"objection {objection.id} lodged; the {step.label_en}'s owner resolves it",
        )

    def check_resolution(self, req: ObjectionResolution) -> None:
        objection = self.objection(req.objection_id)
        if objection.stage != self.stage:
            super().check_resolution(req)
        step = self.step
        problems = self.check_place(
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
        self.tell_notice()
        return app.result(
            req.request_id,
            f"objection {objection.id} {req.outcome.value}"
            + ("; application rejected" if upheld else ""),
        )


def _window_detail(window: NoticeWindow) -> dict[str, Any]:
    """A posting's period, as the trail keeps it (and the read model reads it back)."""
    return {
        "posted_at": window.posted_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "counted_days": window.counted_days,
        "provisional": window.provisional,
    }


def _mask_contact(contact: str) -> str:
    if not contact:
        return ""
    if len(contact) <= 4:
        return "*" * len(contact)
    return "*" * (len(contact) - 4) + contact[-4:]
