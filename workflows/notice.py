"""NoticeWorkflow: one public notice (公示) of a programme, season, level, place and stage.

Applications join it when they are ready for it (an update, sealed by aidflow: only
its own applications join). It is posted in postings: by its owner (a request, R4,
R10, with a photograph or scan of the posted list as evidence where the programme
asks for one), or by itself at the step's configured time (the application window's
close, or the next working day's morning after the first application joined). Each
posting's period (R2) is computed once, here, from the posting instant; its list is
printed for the notice board (XLSX and a printable page, R9's notice rule) and each
member is told its period. Objections are lodged against a member and resolved on
it (R3: the application holds them); the member tells its notice how many are open,
so that the operator sees them here.

Posting one programme's notice never touches another's: a notice is its own workflow,
and only its members are on it. A notice with nothing left to post ends once it has
been quiet for a while after the application window and its last posting; an
application that is ready after that starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import FailureError

from workflows.clock import until
from workflows.idempotency import seen
from workflows.messaging import signal_each
from workflows.steps.base import AuthorityProblem, Refused, fmt
from workflows.visibility import upsert_changed

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities
    from activities.workflow_calendar import CalendarActivities
    from models import search
    from models.application import Actor, NoticeWindow, RequestResult, request_key
    from models.domain import ROLE_NAME_ZH, Level, Role
    from models.notice import (
        MemberChange,
        NoticeInput,
        NoticeJoin,
        NoticeJoined,
        NoticeListRequest,
        NoticeMember,
        NoticePosted,
        NoticePostRequest,
        NoticeStatus,
        Posting,
        PostingDue,
    )
    from models.records import NoticeRequest, NoticeResult, PostingTime, PostingTimeRequest

# A notice with nothing to post ends after this long without a member (a later one
# starts it again): the operator's list of notices stays the live ones.
QUIET = timedelta(days=30)
_LOCAL = timedelta(seconds=10)
_ACT = timedelta(seconds=30)  # printing a list: one cut off by a crash is tried again soon
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

_PLACE_ATTRIBUTE: dict[Level, SearchAttributeKey[Any]] = {
    Level.VILLAGE: search.VILLAGE,
    Level.TOWNSHIP: search.TOWNSHIP,
}


@workflow.defn(failure_exception_types=[ValidationError])
class NoticeWorkflow:
    @workflow.init
    def __init__(self, inp: NoticeInput) -> None:
        self.inp, self.step = inp, inp.step
        self.pending: dict[str, NoticeMember] = {}
        self.answers: dict[str, NoticeJoined] = {}  # "workflow id#attempt" -> its answer
        self.first_joined_at: datetime | None = None  # of the next posting's first member
        self.auto_post_at: datetime | None = None
        self.explicit: tuple[datetime, NoticePostRequest] | None = None
        # Each waiting member's word that its clock reached a time it was told, the latest
        # such time: kept until it is posted, so that the posting is due whenever a member
        # on it has reached its time (``due``), however often the time moves meanwhile (a
        # word taken by one posting and gone before the time moved left members waiting
        # for good: the fault harness at 1,000).
        self.claims: dict[str, datetime] = {}
        self.postings: list[Posting] = []
        self.over: set[int] = set()  # postings whose end's timer has fired
        self.next_number = 1  # the posting that pending members will be on
        self.open_objections: dict[str, int] = {}
        self.left: set[str] = set()
        self.results: dict[str, RequestResult] = {}
        self.request_keys: dict[str, str] = {}
        self.published: dict[str, Any] = {}
        self.told: dict[str, NoticePosted] = {}  # each posted member: what it was told
        self.being_posted: set[str] = set()  # the members of the posting under way
        self.told_auto: dict[str, datetime] = {}  # each waiting member's told posting time
        # The waiting members told to keep the coming posting's time (NoticeJoined): at
        # least one of those on it, or its automatic posting waits for the others' grace.
        self.timekeepers: set[str] = set()
        self.retelling: asyncio.Task[None] | None = None  # members told their time again
        self.posting_times: list[PostingTime] = []  # the calendar's answers, by local day
        self.retiming: asyncio.Task[None] | None = None  # the time worked out again

    @workflow.run
    async def run(self, inp: NoticeInput) -> NoticeStatus:
        self.publish()
        while await self._members_waiting():
            # Posted by its owner, or at its automatic time: when the first member's
            # clock reaches it, the member says so (posting_due). The time is the
            # notice's, from its members' instants; the notice's own clock never
            # decides it, so a member that waits is never posted early or late.
            await workflow.wait_condition(
                lambda: self.explicit is not None or self.due or not self.pending
            )
            if self.explicit is not None or self.due:
                await self._post(self.auto_post_at or workflow.now())
            else:  # every member left before the posting
                self.first_joined_at = self.auto_post_at = None
            self.publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _members_waiting(self) -> bool:
        """Until a member waits for a posting (True), or the notice has been quiet long
        enough to end (False). Wakes when a posting ends, to say so."""
        while not self.pending:
            last = max([self.inp.window_closes_at, *(p.ends_at for p in self.postings)])
            quiet_until = last + QUIET
            wake = min([quiet_until, *(p.ends_at for p in self._up())])
            try:
                await workflow.wait_condition(
                    lambda: bool(self.pending),
                    timeout=until(wake),
                    timeout_summary=(
                        f"ends if nobody joins by {fmt(quiet_until)}"
                        if wake == quiet_until
                        else f"posting ends {fmt(wake)}"
                    ),
                )
            except TimeoutError:
                # Over when its timer fires, not when a clock says so (workflows/clock.py).
                self.over.update(p.number for p in self.postings if p.ends_at <= wake)
                self.publish()
                if wake < quiet_until or self.pending:
                    continue
                if not any(self.open_objections.values()):
                    return False
                # Objections still open on members: it stays for the operator's view.
                await workflow.wait_condition(
                    lambda: bool(self.pending) or not any(self.open_objections.values())
                )
        return True

    async def _post(self, auto_at: datetime) -> None:
        explicit, self.explicit = self.explicit, None
        posted_at, req = explicit if explicit else (auto_at, None)
        # The list holds the applications ready by the posting's instant (by their own
        # clocks: in production always all of them; in the simulator, whose clocks
        # differ, one ready later waits for the next posting).
        members = [m for m in self.pending.values() if m.joined_at <= posted_at]
        self.pending = {wf: m for wf, m in self.pending.items() if m.joined_at > posted_at}
        self.claims = {wf: c for wf, c in self.claims.items() if wf in self.pending}
        self.timekeepers &= self.pending.keys()
        self.being_posted = {m.workflow_id for m in members}
        number, self.next_number = self.next_number, self.next_number + 1
        self.first_joined_at = self.auto_post_at = None
        if self.pending:  # the next posting's time, from its first member
            await self._time_from(min(m.joined_at for m in self.pending.values()))
        period = await workflow.execute_local_activity_method(
            CalendarActivities.compute_notice_period,
            NoticeRequest(posted_at=posted_at, days=self.step.days, counting=self.step.counting),
            start_to_close_timeout=_LOCAL,
            summary=f"{self.step.label_en}: {self.step.days} {self.step.counting.value.replace('_', ' ')}",
        )
        files = await workflow.execute_activity_method(
            NoticeActivities.write_notice_list,
            NoticeListRequest(
                notice=self.inp,
                number=number,
                posted_at=period.posted_at,
                ends_at=period.ends_at,
                members=members,
            ),
            start_to_close_timeout=_ACT,
            retry_policy=_RETRY,
            summary=f"print posting {number}'s list ({len(members)} applications)",
        )
        posting = Posting(
            number=number,
            posted_at=period.posted_at,
            ends_at=period.ends_at,
            counted_days=[d.isoformat() for d in period.counted_days],
            provisional=period.provisional,
            posting="explicit" if req else "automatic",
            posted_by=req.actor if req else None,
            request_id=req.request_id if req else "",
            evidence=list(req.evidence) if req else [],
            members=[m.workflow_id for m in members],
            files=files,
        )
        self.postings.append(posting)
        self.publish()
        told = self._told(posting, period)
        self.told.update({m.workflow_id: told for m in members})
        self.being_posted = set()
        gone = await signal_each(
            "notice_posted", [(m.workflow_id, told) for m in members], skip_gone=True
        )
        for wf in gone:  # ended meanwhile (withdrawn, say): nothing to tell
            self.left.add(wf)
        await self._reschedule()

    async def _reschedule(self) -> None:
        """Tell each waiting member whose automatic posting time has moved (a member
        ready earlier joined late, or members were left for the next posting), and the
        one to keep the coming posting's time where none of its members does."""
        told = self._retold()
        if told:
            await signal_each("notice_scheduled", told, skip_gone=True)

    def _retold(self) -> list[tuple[str, NoticeJoined]]:
        """What ``_reschedule`` tells whom, recorded as told."""
        at = self.auto_post_at
        if at is None:
            return []
        keeper = self._timekeeper_wanted()
        moved = self._moved(at)
        if keeper is not None:
            self.timekeepers.add(keeper)
            if keeper not in moved:
                moved.append(keeper)  # its time stands; it is told to keep it
        if not moved:
            return []
        zh, en = self._rule()
        answer = NoticeJoined(
            notice_id=self.inp.workflow_id,
            posting=self.next_number,
            auto_post_at=at,
            rule_zh=zh,
            rule_en=en,
        )
        for wf in moved:
            self.told_auto[wf] = at
        return [
            (wf, answer.model_copy(update={"keeps_time": wf in self.timekeepers})) for wf in moved
        ]

    def _retell(self) -> None:
        """Tell the members again (``_reschedule``) once a retelling under way is done:
        what it worked out may be from before the change that asks for this one."""
        previous = self.retelling

        async def again() -> None:
            if previous is not None:
                await previous
            await self._reschedule()

        self.retelling = asyncio.create_task(again())

    def _timekeeper_wanted(self) -> str | None:
        """The member to keep the coming posting's time, where none of its members does:
        the first ready (it is on it whatever the order of the joins)."""
        at = self.auto_post_at
        if at is None:
            return None
        on_it = [m for m in self.pending.values() if m.joined_at <= at]
        if not on_it or any(m.workflow_id in self.timekeepers for m in on_it):
            return None
        return min(on_it, key=lambda m: (m.joined_at, m.workflow_id)).workflow_id

    def _moved(self, at: datetime) -> list[str]:
        """The members on the posting at ``at`` that were told another time; one ready
        after it keeps its own time (told when it joined)."""
        return [
            wf
            for wf, m in self.pending.items()
            if m.joined_at <= at and self.told_auto.get(wf) != at
        ]

    def _told(self, posting: Posting, period: NoticeResult) -> NoticePosted:
        return NoticePosted(
            notice_id=self.inp.workflow_id,
            posting=posting.number,
            window=NoticeWindow(
                stage=self.step.stage,
                posted_at=period.posted_at,
                ends_at=period.ends_at,
                counted_days=posting.counted_days,
                provisional=period.provisional,
            ),
            how=posting.posting,
            posted_by=posting.posted_by.id if posting.posted_by else "",
            evidence_sha256=[e.sha256 for e in posting.evidence],
            list_sha256=next((f.sha256 for f in posting.files if f.kind == "xlsx"), ""),
        )

    # ------------------------------------------------------------ members

    @workflow.update
    async def join(self, j: NoticeJoin) -> NoticeJoined:
        """Sealed: only aidflow's applications join (workflows/authority.py)."""
        key = f"{j.member.workflow_id}#{j.attempt}"
        if key not in self.answers:
            self.answers[key] = await self._join(j)
            self.publish()
        return self.answers[key]

    async def _join(self, j: NoticeJoin) -> NoticeJoined:
        wf = j.member.workflow_id
        # A member of the posting under way waits for it: its answer is that posting.
        await workflow.wait_condition(lambda: wf not in self.being_posted)
        zh, en = self._rule()
        told = self.told.get(wf)
        if told is not None:  # posted, and asked again: told again
            with contextlib.suppress(FailureError):
                await workflow.get_external_workflow_handle(wf).signal("notice_posted", told)
            return NoticeJoined(
                notice_id=self.inp.workflow_id,
                posting=told.posting,
                auto_post_at=told.window.posted_at,
                rule_zh=zh,
                rule_en=en,
            )
        if wf in self.left:  # it closed (withdrawn, say) while its join was on its way
            return NoticeJoined(
                notice_id=self.inp.workflow_id,
                posting=0,
                auto_post_at=j.member.joined_at,
                rule_zh=zh,
                rule_en=en,
            )
        # Asked again while waiting: it keeps the instant it was first ready (a later
        # one would take it off the posting it is due for).
        member = self.pending.setdefault(wf, j.member)
        joined_at = member.joined_at
        # The automatic posting follows the first member to become ready, whichever
        # join arrived first (applications' clocks may differ a little; in the simulator,
        # a lot), so the time is the same whatever the order of arrival.
        moved = False
        if self.first_joined_at is None or joined_at < self.first_joined_at:
            moved = self.first_joined_at is not None
            await self._time_from(joined_at)
        await workflow.wait_condition(
            lambda: self.auto_post_at is not None or wf not in self.pending
        )
        if wf not in self.pending:  # posted (or left) meanwhile: answered as such
            return await self._join(j)
        assert self.auto_post_at is not None
        at, posting = self.auto_post_at, self.next_number
        if joined_at > at:
            # Ready after the next posting's instant (its join was slow, or the posting
            # is late): not on it. Told its own time, which is the posting after's unless
            # an earlier member comes, rather than the next one's, which it would pass
            # at once and be told again after (the fault harness at 1,000: four times
            # a member).
            at, posting = await self._auto_post_time(joined_at), posting + 1
            if wf not in self.pending or wf in self.being_posted:
                return await self._join(j)  # an owner's posting took it meanwhile
        self.told_auto[wf] = at
        # Ready after the coming posting: it keeps its own posting's time.
        wanted = self._timekeeper_wanted() if posting == self.next_number else wf
        keeps_time = wanted == wf or wf in self.timekeepers
        if keeps_time:
            self.timekeepers.add(wf)
        elif wanted is not None:
            # Another on the posting is to keep its time (it was told before the time
            # it holds was the posting's): told again, with that.
            self.told_auto.pop(wanted, None)
            self._retell()
        zh, en = self._rule()
        # The answer as it stands now: while the others are told below, a posting may
        # begin (and clear the time until it has the next one); what changes after this
        # instant reaches the member by signal, as it reaches every member.
        answer = NoticeJoined(
            notice_id=self.inp.workflow_id,
            posting=posting,
            auto_post_at=at,
            rule_zh=zh,
            rule_en=en,
            keeps_time=keeps_time,
        )
        if moved:  # the others were told a later time
            await self._reschedule()
        return answer

    @workflow.signal
    def posting_due(self, due: Any = None) -> None:
        """A member's clock reached the automatic posting time it was told."""
        if not isinstance(due, PostingDue):
            return workflow.logger.warning("posting_due without its argument: dropped")
        if due.workflow_id not in self.pending:
            return
        wf, claimed = due.workflow_id, due.auto_post_at
        self.claims[wf] = max(claimed, self.claims.get(wf, claimed))
        if self.auto_post_at is not None:  # else judged once the time is known
            self._judge(wf)

    @property
    def due(self) -> bool:
        """A member on the coming posting (ready by its time) has said its clock reached
        that time: the posting is due (by its members' clocks, never the notice's)."""
        at = self.auto_post_at
        if self.step.evidence_required:
            return False  # posted by its owner with the photograph, never automatically
        # Over the claims, not the members: this is the run loop's wait condition, checked
        # at every join, and a county's notice has thousands of members but claims only
        # once their clocks reach the time (the members' scan was 10-37 % of the
        # simulator's busy Python samples at 10,000 applications).
        return at is not None and any(
            claimed >= at and (m := self.pending.get(wf)) is not None and m.joined_at <= at
            for wf, claimed in self.claims.items()
        )

    def _judge(self, wf: str) -> None:
        """A member ready later than the coming posting (another clock, in the
        simulator) waits for its own; one on it that holds an earlier time than the
        notice's is told the new one and says so again when its clock reaches it."""
        at, member, claimed = self.auto_post_at, self.pending.get(wf), self.claims.get(wf)
        if member is None or at is None or claimed is None:
            return
        if member.joined_at > at:
            # Not on this posting: its word stands for the posting it is on.
            if self._nobody_on_the_coming_posting():
                self.retiming = asyncio.create_task(self._retime())
            return
        if at <= claimed:
            return  # due
        if self.retelling is None or self.retelling.done():
            # It holds an earlier time than the notice's: its word of the new time went
            # astray (under load, a join answered with the old one after it). Told
            # again, or it asks at the old time once a day and the posting waits for a
            # word that never comes (1,000 applications under the fault harness).
            self.told_auto.pop(wf, None)
            self.retelling = asyncio.create_task(self._reschedule())
        else:
            self.told_auto.pop(wf, None)  # told by the next retelling

    def _judge_claims(self) -> None:
        for wf in list(self.claims):
            self._judge(wf)

    @workflow.signal
    def member_changed(self, change: Any = None) -> None:
        if not isinstance(change, MemberChange):
            return workflow.logger.warning("member_changed without its argument: dropped")
        wf = change.workflow_id
        if change.left:
            self.left.add(wf)
            self.pending.pop(wf, None)
            self.claims.pop(wf, None)
            self.open_objections.pop(wf, None)
            kept_time = wf in self.timekeepers
            self.timekeepers.discard(wf)
            if self._nobody_on_the_coming_posting():
                self.retiming = asyncio.create_task(self._retime())
            elif kept_time:
                # Another on the posting keeps its time (it is told so), or the posting
                # would wait for the others' grace.
                self._retell()
        elif change.open_objections:
            self.open_objections[wf] = change.open_objections
        else:
            self.open_objections.pop(wf, None)
        self.publish()

    def _nobody_on_the_coming_posting(self) -> bool:
        """Members wait, but none is on the posting at the automatic time (those who were
        left): the time is the next member's, or they would wait for good."""
        at = self.auto_post_at
        return (
            at is not None
            and bool(self.pending)
            and (self.retiming is None or self.retiming.done())
            and not any(m.joined_at <= at for m in self.pending.values())
        )

    async def _retime(self) -> None:
        """The automatic time from the first member still waiting (as after a posting),
        and the members on it told."""
        await self._time_from(min(m.joined_at for m in self.pending.values()))
        await self._reschedule()

    async def _time_from(self, first: datetime) -> None:
        """The automatic posting time from the instant its first member was ready, and the
        members' words judged against it; unless, while the calendar was asked, an earlier
        member came (its own time stands)."""
        self.first_joined_at, self.auto_post_at = first, None
        at = await self._auto_post_time(first)
        if self.first_joined_at == first:
            self.auto_post_at = at
            self._judge_claims()

    def _window_rule(self, at: datetime) -> bool:
        return self.step.first_posting == "window_close" and at < self.inp.window_closes_at

    def _rule(self) -> tuple[str, str]:
        if self.first_joined_at is not None and self._window_rule(self.first_joined_at):
            return (
                "申请期结束时自动公示",
                "posted automatically when the application window closes",
            )
        clock = f"{self.step.auto_post_at:%H:%M}"
        return (
            f"下一工作日{clock}自动公示",
            f"posted automatically at {clock} of the next working day",
        )

    async def _auto_post_time(self, joined_at: datetime) -> datetime:
        if self._window_rule(joined_at):
            return self.inp.window_closes_at
        known = next((t for t in self.posting_times if t.covers(joined_at)), None)
        if known is None:
            known = await workflow.execute_local_activity_method(
                CalendarActivities.next_posting_time,
                PostingTimeRequest(after=joined_at, clock=self.step.auto_post_at),
                start_to_close_timeout=_LOCAL,
                summary="next working day for the automatic posting",
            )
            self.posting_times = [*self.posting_times[-7:], known]  # the days still in play
        return known.at

    # ------------------------------------------------------------ posting

    @workflow.update
    async def post(self, req: NoticePostRequest) -> RequestResult:
        first = self.results.get(req.request_id)
        if first is not None:
            return first
        self.request_keys[req.request_id] = request_key(req)
        number = self.next_number
        self.explicit = (workflow.now(), req)
        await workflow.wait_condition(lambda: len(self.postings) >= number)
        p = self.postings[number - 1]
        result = RequestResult(
            request_id=req.request_id,
            accepted=True,
            stage=self.step.stage,
            message=(
                f"posting {p.number} of the {self.step.label_en}: {len(p.members)} "
                f"application(s), up until {fmt(p.ends_at)}"
            ),
        )
        self.results[req.request_id] = result
        return result

    @post.validator
    def _validate_post(self, req: NoticePostRequest) -> None:
        if seen(self.request_keys, req):
            return
        problems = self.check_owner(req.actor, f"post the {self.step.label_en}")
        if not any(m.joined_at <= workflow.now() for m in self.pending.values()):
            problems.append(f"no application waits for the {self.step.label_en}: nothing to post")
        if self.explicit is not None:
            problems.append(f"the {self.step.label_en} is being posted")
        if self.first_joined_at is not None and self._window_rule(workflow.now()):
            problems.append(
                f"the {self.step.label_en} is posted when the application window closes "
                f"({fmt(self.inp.window_closes_at)}); it will be posted then automatically"
            )
        if self.step.evidence_required and not req.evidence:
            problems.append(
                "evidence: this programme keeps a photograph or scan of the posted notice; "
                "attach one"
            )
        if problems:
            raise Refused(problems)

    def check_owner(self, actor: Actor, what: str) -> list[str]:
        problems: list[str] = []
        if actor.role != self.step.owner:
            problems.append(
                AuthorityProblem(
                    f"role {actor.role.value} may not {what}; it needs {self.step.owner.value}"
                )
            )
        if actor.place_code != self.inp.place_code:
            problems.append(
                AuthorityProblem(
                    f"place {actor.place_code or '(none)'} is not the notice's "
                    f"{self.step.level.value} {self.inp.place_code}"
                )
            )
        return problems

    def refuse_unproven(self, name: str, problem: str) -> None:
        workflow.logger.warning(f"message {name} refused: {problem}")

    # ------------------------------------------------------- what operators see

    @workflow.query
    def status(self) -> NoticeStatus:
        zh, en = self.details()
        return NoticeStatus(
            notice_id=self.inp.workflow_id,
            programme=self.inp.programme,
            season=self.inp.season,
            round=self.inp.round,
            level=self.step.level,
            place_code=self.inp.place_code,
            place_name=self.inp.place_name,
            stage=self.step.stage,
            label_zh=self.step.label_zh,
            label_en=self.step.label_en,
            owner=self.step.owner,
            pending=list(self.pending.values()),
            auto_post_at=self.auto_post_at,
            postings=list(self.postings),
            open_objections={k: v for k, v in self.open_objections.items() if v},
            details_zh=zh,
            details_en=en,
            claims=dict(self.claims),
        )

    def _up(self) -> list[Posting]:
        """The postings whose end has not been seen: by their timers, not the clock."""
        return [p for p in self.postings if p.number not in self.over]

    def details(self) -> tuple[str, str]:
        """What the operator sees in the Web UI: who waits for the next posting, each
        posting that is up with its members and its end, and the members with open
        objections. Members by workflow id only (R9: never a name or an id number),
        each list cut at LISTED so that the details stay small."""
        step, owner = self.step, self.step.owner
        zh: list[str] = []
        en: list[str] = []
        if self.pending:
            ids_zh, ids_en = listed(list(self.pending))
            if step.evidence_required:
                zh.append(
                    f"{len(self.pending)} 件申请待{ROLE_NAME_ZH[owner]}张贴并上传张贴照片：{ids_zh}"
                )
                en.append(
                    f"{len(self.pending)} application(s) waiting for the "
                    f"{owner.value.replace('_', ' ')} to post the notice with a photograph of "
                    f"it: {ids_en}"
                )
            else:
                zh.append(
                    f"{len(self.pending)} 件申请待{ROLE_NAME_ZH[owner]}张贴，最迟 "
                    f"{fmt(self.auto_post_at)} 自动张贴：{ids_zh}"
                )
                en.append(
                    f"{len(self.pending)} application(s) waiting for the {owner.value.replace('_', ' ')} "
                    f"to post; automatic posting {fmt(self.auto_post_at)}: {ids_en}"
                )
        up = self._up()
        for p in up:
            ids_zh, ids_en = listed(p.members)
            zh.append(f"第{p.number}批 {len(p.members)} 件公示中，至 {fmt(p.ends_at)}：{ids_zh}")
            en.append(f"posting {p.number}: {len(p.members)} up until {fmt(p.ends_at)}: {ids_en}")
        objecting = [wf for wf, n in self.open_objections.items() if n]
        if objecting:
            total = sum(self.open_objections[wf] for wf in objecting)
            ids_zh, ids_en = listed(objecting)
            zh.append(f"待处理异议 {total} 件，涉及：{ids_zh}")
            en.append(f"{total} open objection(s), on: {ids_en}")
        ended = len(self.postings) - len(up)
        if zh and ended:  # (with nothing else to say, the line below counts them)
            zh.append(f"已结束 {ended} 批")
            en.append(f"{ended} posting(s) ended")
        if not zh:
            zh.append(f"已张贴 {len(self.postings)} 批，无待张贴申请")
            en.append(f"{len(self.postings)} posting(s); nothing waits to be posted")
        title = f"{self.inp.place_name or self.inp.place_code}{step.label_zh}"
        return f"{title}：" + "；".join(
            zh
        ), f"{step.label_en} at {self.inp.place_code}: " + "; ".join(en)

    def publish(self) -> None:
        """Search attributes as the applications' (programme, season, place, stage), so
        operators filter notices as they filter applications; upserted when changed."""
        up = self._up()
        waiting = (
            self.step.owner.value
            if self.pending or any(self.open_objections.values())
            else (Role.PUBLIC.value if up else "")
        )
        deadline = self.auto_post_at if self.pending else (up[-1].ends_at if up else None)
        attrs: list[tuple[SearchAttributeKey[Any], Any]] = [
            (search.PROGRAMME, self.inp.programme),
            (search.SEASON, self.inp.season),
            (search.ROUND, self.inp.round),
            (search.COUNTY, self.inp.county_code),
            (search.STAGE, self.step.stage),
            (search.WAITING_FOR, waiting),
            (search.NEXT_DEADLINE, deadline),
        ]
        place_key = _PLACE_ATTRIBUTE.get(self.step.level)
        if place_key is not None:
            attrs.append((place_key, self.inp.place_code))
        upsert_changed(self.published, attrs)
        zh, en = self.details()
        workflow.set_current_details(f"**{zh}**\n\n{en}")


# Members named in a notice's details, per list: enough to find them, small enough for
# the Web UI (a village's list is a few dozen; a county's, hundreds).
LISTED = 20


def listed(workflow_ids: list[str]) -> tuple[str, str]:
    """Workflow ids, cut at LISTED: the rest counted (Chinese, English)."""
    shown, rest = workflow_ids[:LISTED], len(workflow_ids) - LISTED
    if rest <= 0:
        return "、".join(shown), ", ".join(shown)
    return "、".join(shown) + f" 及另 {rest} 件", ", ".join(shown) + f" (+{rest} more)"
