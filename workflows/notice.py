"""NoticeWorkflow: one public notice (公示) of a programme, season, level, place and stage.

Applications join it when they are ready for it (a signal, sealed by aidflow: only its
own applications join), each with its automatic posting time: the step's rule from the
instant it was ready (``NoticeStep.automatic_posting``). It is posted in postings: by
its owner (a request, R4, R10, with a photograph or scan of the posted list as evidence
where the programme asks for one), or by itself, when its timer reaches the earliest
automatic time of a waiting member, with every member due then. Each posting's period
(R2) is computed from the posting instant; its list is printed for the notice board
(XLSX and a printable page, R9's notice rule). The members of an automatic posting know
its instant from their join and work out the same period from the same instant and
calendar, so they are neither told nor woken (issue 20: a member's workflow task at
each of its two notices); an owner's posting is told to its members. An owner's posting
lists only members whose automatic time is still to come: one whose time has come is
posted at that time, as it counts its period itself. Objections are lodged against a
member and resolved on it (R3: the application holds them); the member tells its notice
how many are open, so that the operator sees them here.

Posting one programme's notice never touches another's: a notice is its own workflow,
and only its members are on it. A notice with nothing left to post ends once it has
been quiet for a while after the application window and its last posting; an
application that is ready after that starts it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

from workflows.clock import until
from workflows.idempotency import seen
from workflows.messaging import signal_each
from workflows.steps.base import AuthorityProblem, Refused, fmt
from workflows.visibility import published_at_start, upsert_changed

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
        NoticeListRequest,
        NoticeMember,
        NoticePosted,
        NoticePostRequest,
        NoticeStatus,
        Posting,
    )
    from models.records import NoticeRequest, NoticeResult

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
        # The owner's request waiting for the run loop: its instant, and the number of
        # the posting that answers it.
        self.explicit: tuple[datetime, NoticePostRequest, int] | None = None
        self.unposted: set[str] = set()  # requests whose applications all left meanwhile
        self.postings: list[Posting] = []
        self.over: set[int] = set()  # postings whose end's timer has fired
        self.next_number = 1  # the number of the next posting
        self.open_objections: dict[str, int] = {}
        self.left: set[str] = set()
        self.results: dict[str, RequestResult] = {}
        self.request_keys: dict[str, str] = {}
        self.published: dict[str, Any] = published_at_start()
        # Every member of a posting, from the moment it begins (a repeated join: passed over).
        self.posted: set[str] = set()
        # The waiting members by their automatic posting time.
        self.by_time: dict[datetime, set[str]] = {}

    @workflow.run
    async def run(self, inp: NoticeInput) -> NoticeStatus:
        self.publish()
        while await self._members_waiting():
            await self._next_posting()
            self.publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _next_posting(self) -> None:
        """The owner's posting, or the automatic one when its timer reaches the earliest
        automatic time of a waiting member, or (every member left) nothing. A join with
        an earlier time sets the timer again."""
        at = self.next_automatic()
        try:
            await workflow.wait_condition(
                lambda: (
                    self.explicit is not None or not self.pending or self.next_automatic() != at
                ),
                timeout=until(at) if at is not None else None,
                timeout_summary=f"posted automatically {fmt(at)}" if at is not None else None,
            )
        except TimeoutError:
            # Its time came by its timer (workflows/clock.py): everyone due then, at that
            # instant, which is theirs (none, if they all left in the timer's own task).
            assert at is not None
            due = self.by_time.get(at, set())
            members = [m for wf, m in self.pending.items() if wf in due]
            if members:
                await self._post(members, at, None)
            return
        if self.explicit is not None:
            (posted_at, req, number), self.explicit = self.explicit, None
            if len(self.postings) >= number:
                return  # answered by an automatic posting in the request's own task
            # Everyone ready by the owner's instant whose own time is still to come: one
            # whose time has come is posted at it (it counts its period from it), by the
            # timer that is due now; the request is answered with that posting.
            ready = [
                m
                for m in self.pending.values()
                if m.joined_at <= posted_at
                and (m.auto_post_at is None or m.auto_post_at > posted_at)
            ]
            if ready:
                await self._post(ready, posted_at, req)
            elif not any(m.joined_at <= posted_at for m in self.pending.values()):
                self.unposted.add(req.request_id)  # (else the timer due now answers it)

    def next_automatic(self) -> datetime | None:
        """The earliest automatic posting time of a waiting member."""
        return min(self.by_time, default=None)

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

    async def _post(
        self, members: list[NoticeMember], posted_at: datetime, req: NoticePostRequest | None
    ) -> None:
        """Posts ``members`` at ``posted_at``: by the owner's request ``req`` (its members
        are told), or automatically (its members keep that time themselves)."""
        for m in members:
            self._unpend(m.workflow_id)
        self.posted |= {m.workflow_id for m in members}
        number, self.next_number = self.next_number, self.next_number + 1
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
        if req is not None:
            tell = members
        else:
            # Its members worked its period out at their joins; one whose end differs
            # (the calendar changed since) is told the period the list shows.
            tell = [m for m in members if m.ends_at is not None and m.ends_at != period.ends_at]
            if not tell:
                return
        told = self._told(posting, period)
        gone = await signal_each(
            "notice_posted", [(m.workflow_id, told) for m in tell], skip_gone=True
        )
        for wf in gone:  # ended meanwhile (withdrawn, say): nothing to tell
            self.left.add(wf)

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

    @workflow.signal
    def join(self, j: Any = None) -> None:
        """Sealed: only aidflow's applications join (workflows/authority.py). A join sent
        again (its local activity retried) is passed over."""
        if not isinstance(j, NoticeJoin):
            return workflow.logger.warning("join without its argument: dropped")
        wf = j.member.workflow_id
        if wf in self.pending or wf in self.posted or wf in self.left:
            return
        self.pending[wf] = j.member
        if j.member.auto_post_at is not None:
            self.by_time.setdefault(j.member.auto_post_at, set()).add(wf)
        self.publish()

    def _unpend(self, wf: str) -> None:
        m = self.pending.pop(wf, None)
        if m is None or m.auto_post_at is None:
            return
        waiting = self.by_time.get(m.auto_post_at)
        if waiting is not None:
            waiting.discard(wf)
            if not waiting:
                del self.by_time[m.auto_post_at]

    @workflow.signal
    def member_changed(self, change: Any = None) -> None:
        if not isinstance(change, MemberChange):
            return workflow.logger.warning("member_changed without its argument: dropped")
        wf = change.workflow_id
        if change.left:
            self.left.add(wf)
            self._unpend(wf)
            self.open_objections.pop(wf, None)
        elif change.open_objections:
            self.open_objections[wf] = change.open_objections
        else:
            self.open_objections.pop(wf, None)
        self.publish()

    def _window_rule(self, at: datetime) -> bool:
        return self.step.first_posting == "window_close" and at < self.inp.window_closes_at

    # ------------------------------------------------------------ posting

    @workflow.update
    async def post(self, req: NoticePostRequest) -> RequestResult:
        first = self.results.get(req.request_id)
        if first is not None:
            return first
        self.request_keys[req.request_id] = request_key(req)
        number = self.next_number
        self.explicit = (workflow.now(), req, number)
        await workflow.wait_condition(
            lambda: len(self.postings) >= number or req.request_id in self.unposted
        )
        if len(self.postings) < number:
            self.unposted.discard(req.request_id)
            raise Refused(
                f"no application waits for the {self.step.label_en}: nothing to post (the "
                "applications waiting for it left meanwhile)"
            )
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
        if self.pending and self._window_rule(workflow.now()):
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
            auto_post_at=self.next_automatic(),
            postings=list(self.postings),
            open_objections={k: v for k, v in self.open_objections.items() if v},
            details_zh=zh,
            details_en=en,
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
                    f"{fmt(self.next_automatic())} 自动张贴：{ids_zh}"
                )
                en.append(
                    f"{len(self.pending)} application(s) waiting for the {owner.value.replace('_', ' ')} "
                    f"to post; automatic posting {fmt(self.next_automatic())}: {ids_en}"
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
        deadline = self.next_automatic() if self.pending else (up[-1].ends_at if up else None)
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
