"""A public notice's people: its owner posts it (or it posts itself at its rule's time),
villagers now and then object to a listed application, the owner resolves each
objection, upheld or dismissed, after a look at the household."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from temporalio.service import RPCError

from models.application import (
    Actor,
    ApplicationStatus,
    ObjectionRequest,
    ObjectionResolution,
    Places,
)
from models.calendar import notice_period
from models.domain import ObjectionOutcome
from models.notice import NoticePostRequest, NoticeStatus, notice_workflow_id
from models.programme import NoticeStep
from workers.client import Refused
from workers.client.errors import BUSY
from workers.officials import people
from workers.officials.base import (
    Case,
    Desk,
    Floor,
    Season,
    SimulationStalled,
    shown_within,
)

# How long the simulator waits for a notice to show what it expects, with nothing moving
# meanwhile (its members joining, or told of their posting): slow is not stalled.
NOTICE_WITHIN_SECONDS = 300.0
# Its checks, each a query of a notice or a member, come at once and then ever less often:
# at 10,000 applications hundreds waited at once, asking ten times a second, and the
# queries took the cores the joins they waited for needed (issue 20).
FIRST_CHECK_AFTER = 0.1
CHECKS_AT_MOST_EVERY = 2.0
POSTING = "notice posting"  # a posting's label among the season's shared events
# How much later than planned a member's join may come (its decision's task waiting its
# turn on a loaded machine) before the posting waits for it; more is a clock ahead.
LATE_JOIN_AT_MOST = timedelta(minutes=5)


@dataclass
class NoticePlan:
    """A notice as the simulator plans it: who waits for its next posting, and when."""

    notice_id: str
    step: NoticeStep
    owner: Actor
    pending: list[tuple[Case, datetime]] = field(default_factory=list)  # and when ready
    first: datetime | None = None  # the first pending member's ready instant
    plan: int = 0  # the planned posting event that stands (earlier ones are void)
    postings: int = 0
    log: list[str] = field(default_factory=list)


class NoticeDesk(Desk[NoticeStep]):
    kind = "notice"

    # ---------------------------------------------------------------- choices

    def objection(self, rng: random.Random, request_id: str) -> ObjectionRequest:
        return ObjectionRequest(
            request_id=request_id,
            actor=people.villager(rng),
            text=rng.choice(people.OBJECTIONS),
            contact=people.phone(rng),
        )

    def resolution(
        self, places: Places, objection_id: str, upheld: bool, request_id: str
    ) -> ObjectionResolution:
        return ObjectionResolution(
            request_id=request_id,
            actor=people.official(self.step.owner, places),
            objection_id=objection_id,
            outcome=ObjectionOutcome.UPHELD if upheld else ObjectionOutcome.DISMISSED,
            reason=people.UPHELD if upheld else people.DISMISSED,
        )

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        """``a`` joins its notice (the notice workflow of its place), ready at ``at``.
        The notice goes up by itself at its rule's time after its first member was
        ready (the village notice when the window closes), unless its owner posts it
        earlier; the posting lists everyone ready by then. Postings are shared events:
        they touch the notice and all its members."""
        step, places = self.step, a.form.places
        key = notice_workflow_id(
            self.programme.code,
            season.s.season,
            self.programme.round_key,
            step.level,
            places.code_at(step.level),
            step.stage,
        )
        owner = people.official(step.owner, places)
        n: NoticePlan = season.notices.setdefault(key, NoticePlan(key, step, owner))
        n.pending.append((a, at))
        self._plan_posting(season, n)

    def _plan_posting(self, season: Season, n: NoticePlan) -> None:
        """The next posting, by the notice's own rule (the same model functions) from its
        first waiting member, whichever order they were seen in: planned again if an
        earlier one is seen late (the plan before it is void)."""
        if not n.pending:
            return
        first = min(ready for _, ready in n.pending)
        if n.first == first:
            return  # the plan stands
        n.first, step = first, n.step
        auto_at = self._automatic(season, first)
        if auto_at is None:
            # Posted only by its owner, with the photograph: never by itself.
            rng = random.Random(f"{season.s.seed}/{n.notice_id}/{n.postings + 1}")
            at, explicit = season.delay(first, "notice_posting", rng), True
        elif step.first_posting == "after_review":
            rng = random.Random(f"{season.s.seed}/{n.notice_id}/{n.postings + 1}")
            post_at = season.delay(first, "notice_posting", rng)
            at, explicit = (post_at, True) if post_at < auto_at else (auto_at, False)
        else:
            at, explicit = auto_at, False
        n.plan += 1
        plan = n.plan
        season.at(at, POSTING, lambda t: self._posting(season, n, plan, explicit, t), shared=True)

    def _automatic(self, season: Season, ready: datetime) -> datetime | None:
        """A member's automatic posting time (None: only its owner posts), by the model
        function the member keeps it by."""
        return self.step.automatic_posting(season.cal, ready, season.window_closes)

    async def _posting(
        self, season: Season, n: NoticePlan, plan: int, explicit: bool, at: datetime
    ) -> None:
        if plan != n.plan:
            return  # planned again for an earlier time

        def on_it(ready: datetime) -> bool:
            # The owner's posting lists everyone ready by then; an automatic one, those
            # whose own time it is (one ready early on the posting's day waits a day).
            if explicit:
                return ready <= at
            auto = self._automatic(season, ready)
            return auto is not None and auto <= at

        members: list[Case] = []
        later: list[tuple[Case, datetime]] = []
        for a, ready in n.pending:
            if on_it(ready):
                members.append(a)
            else:
                later.append((a, ready))
        n.log.append(
            f"at {at.isoformat()} {'explicit' if explicit else 'auto'}: "
            + ", ".join(f"{a.workflow_id[-6:]}@{r.isoformat()}" for a, r in n.pending)
        )
        n.pending = later
        n.first = None
        if members:
            n.postings += 1
            # Every member's join reached the notice (it is sent after the decision).
            joined = await self._shows(
                season,
                n,
                lambda st: {a.workflow_id for a in members} <= {m.workflow_id for m in st.pending},
                members,
                "every member joined",
            )
            await season.clocks.track(n.notice_id)
            if explicit:
                at = await self._after_joins(season, n, members, at, joined)
                await season.everyone_to(at, members, also=n.notice_id)
                await self._post(season, n, members, at)
            else:
                # The notice's timer posts it; its members know the instant from their
                # joins and are not woken for it: only the notice's clock moves.
                await season.everyone_to(at, [], also=n.notice_id)
            posted = await self._shows(
                season,
                n,
                lambda st: len(st.postings) >= n.postings,
                members,
                f"posted at {at.isoformat()}",
            )
            members = self._on_posting(season, n, members, posted)
            if explicit:
                await self._members_told(
                    season, n, members, posted.postings[n.postings - 1].posted_at
                )
            season.counts["notice postings"] += 1
            for a in members:
                if a.terminal is None:
                    self._up(season, a, at)
            self._taken_early(season, n, posted)
        self._plan_posting(season, n)  # those ready after it: the next posting

    async def _after_joins(
        self, season: Season, n: NoticePlan, members: list[Case], at: datetime, st: NoticeStatus
    ) -> datetime:
        """When the owner posts: at ``at``, or just after the last member's join where
        that came later. A member joins at its own clock's instant of the decision's
        workflow task, which on a loaded machine runs a moment after the decision's
        instant; a posting planned within that moment would leave it for the next one
        (seen at 1,000 applications: the run then waited for it to be told). ``st``:
        the notice with every member joined."""
        ids = {a.workflow_id for a in members}
        joined = max((m.joined_at for m in st.pending if m.workflow_id in ids), default=at)
        # The owner's clock reaches at + past_by (everyone_to): the joins before that are on it.
        if joined < at + season.clocks.past_by:
            return at
        if joined > at + season.clocks.past_by + LATE_JOIN_AT_MOST:
            # Not a task's moment but a clock that ran ahead of the simulation.
            seen = await season.diagnose(n.notice_id, "notice")
            raise SimulationStalled(
                f"{n.notice_id}: a member joined at {joined.isoformat()}, past the posting "
                f"planned at {at.isoformat()} by more than {LATE_JOIN_AT_MOST}\n{seen}"
            )
        season.counts["notice postings moved after a late join"] += 1
        return joined - season.clocks.past_by + timedelta(seconds=1)

    def _on_posting(
        self, season: Season, n: NoticePlan, members: list[Case], st: NoticeStatus
    ) -> list[Case]:
        """The members this posting lists. One the plan put on it that the notice left
        for its next posting (its join came after the posting's instant: an automatic
        posting, whose time no one moves) waits for that one, ready from its join.
        ``st``: the notice with this posting up."""
        posting = st.postings[n.postings - 1]
        on_it = set(posting.members)
        waiting = {m.workflow_id: m.joined_at for m in st.pending}
        left = ({a.workflow_id for a in members} - on_it) & waiting.keys()
        for a in (a for a in members if a.workflow_id in left):
            # Not before the posting: one left by an automatic posting at the window's
            # close must not be planned for that instant again.
            ready = max(waiting[a.workflow_id] - season.clocks.past_by, posting.posted_at)
            n.pending.append((a, ready))
            n.log.append(
                f"{a.workflow_id[-6:]} left for the next posting, ready {ready.isoformat()}"
            )
            season.counts["notice members left for a later posting"] += 1
        return [a for a in members if a.workflow_id not in left]

    async def _members_told(
        self, season: Season, n: NoticePlan, members: list[Case], posted_at: datetime
    ) -> None:
        """Until every member on an owner's posting has recorded it (an automatic one
        they know from their joins): it is told by signal, and a member moved on before
        the word arrived (its next event's fast-forward) hears it days late on its own
        clock, and records the posting then (seen: a member of an explicit posting
        recorded it at its automatic time, a day on).
        Read from each member's records, not asked by a query: a query that reaches a
        member while it is still writing the posting to its trail (a local activity)
        makes the worker end that workflow task early and run another for the write
        (sdk-core), a third of the members a workflow task more."""
        stage = self.step.stage
        heard_so_far = 0

        async def told(a: Case) -> None:
            async def heard() -> bool:
                nonlocal heard_so_far
                st = season.recorded_status(a.workflow_id)
                if st is None:
                    return False
                # (its automatic posting's period it shows from its join: not this one)
                yes = st.stage != stage or (
                    st.notice is not None
                    and st.notice.stage == stage
                    and st.notice.posted_at == posted_at
                )
                heard_so_far += yes
                return yes

            if await _within(season, heard, lambda: heard_so_far):
                return
            seen = await season.diagnose(a.workflow_id, "notice member")
            raise SimulationStalled(
                f"{n.notice_id}: {a.workflow_id} not told of its posting, no member told "
                f"for {NOTICE_WITHIN_SECONDS:.0f} s\n{seen}"
            )

        await asyncio.gather(*(told(a) for a in members if a.terminal is None))

    def _taken_early(self, season: Season, n: NoticePlan, st: NoticeStatus) -> None:
        """Members planned for a later posting that this one took: an owner's posting
        sent again once its members were ready (``_post``) goes up later than planned,
        with everyone ready by then on it. They are up from its instant. ``st``: the
        notice with this posting up."""
        posting = st.postings[n.postings - 1]
        on_it = set(posting.members)
        taken = [(a, r) for a, r in n.pending if a.workflow_id in on_it]
        if not taken:
            return
        n.pending = [(a, r) for a, r in n.pending if a.workflow_id not in on_it]
        n.log.append(
            f"posting {posting.number} at {posting.posted_at.isoformat()} took "
            + ", ".join(a.workflow_id[-6:] for a, _ in taken)
        )
        for a, _ in taken:
            if a.terminal is None:
                self._up(season, a, posting.posted_at)

    async def _post(self, season: Season, n: NoticePlan, members: list[Case], at: datetime) -> None:
        """The owner posts. A member is ready at its own clock's instant of joining, which
        runs at the wall clock's pace between fast-forwards: on a loaded machine it can be
        seconds after the decision's instant, after this posting's. Refused for that
        ("nothing to post"), the owner posts again once the members are ready."""
        for attempt in range(3):
            req = NoticePostRequest(
                request_id=uuid.uuid4().hex,
                actor=n.owner,
                evidence=[people.notice_photo(n.notice_id, n.postings)]
                if n.step.evidence_required
                else [],
            )
            try:
                await season.again(partial(season.api.post_notice, n.notice_id, req))
                break
            except Refused as refusal:
                if "nothing to post" not in str(refusal) or attempt == 2:
                    raise
            st = await season.again(partial(season.api.notice_status, n.notice_id))
            if len(st.postings) >= n.postings:
                # It posted itself meanwhile (a member's clock reached its time on the
                # way): the same list, at the same instant.
                break
            ids = {a.workflow_id for a in members}
            ready = max((m.joined_at for m in st.pending if m.workflow_id in ids), default=at)
            await season.everyone_to(
                max(at, ready) + timedelta(seconds=1), members, also=n.notice_id
            )
            season.counts["notice postings sent again"] += 1
        season.counts["requests"] += 1

    async def _shows(
        self,
        season: Season,
        n: NoticePlan,
        what: Callable[[NoticeStatus], bool],
        members: list[Case],
        expect: str,
    ) -> NoticeStatus:
        """The notice's status once it shows ``what``; the run stops if it does not."""
        st: NoticeStatus | None = None

        async def shows() -> bool:
            nonlocal st
            st = await season.api.notice_status(n.notice_id)
            return st is not None and what(st)

        def joined_and_posted() -> object:
            return (len(st.pending), len(st.postings)) if st else None

        if await _within(season, shows, joined_and_posted):
            assert st is not None
            return st
        seen = await season.diagnose(n.notice_id, "notice")
        # A few of the members too, their histories kept with the notice's: whose
        # clock said what, and when, is in them.
        for a in members[:3]:
            seen += "\n" + await season.diagnose(a.workflow_id, "notice member")
        pending = {m.workflow_id for m in st.pending} if st else set()
        them = [
            f"{a.workflow_id}: {(await season.api.status(a.workflow_id)).details_en}"
            for a in members
            if a.workflow_id not in pending
        ]
        raise SimulationStalled(
            f"{n.notice_id}: {expect}, not within {NOTICE_WITHIN_SECONDS:.0f} s of no change "
            f"(auto {st.auto_post_at if st else '-'}, {len(st.postings) if st else 0} postings)"
            f"\n{seen}\nnot pending: "
            + "; ".join(them)
            + f"\nmodel: {n.log}\nnotice postings: "
            + "; ".join(
                f"{p.number} {p.posting} at {p.posted_at.isoformat()}: {p.members}"
                for p in (st.postings if st else [])
            )
        )

    def _up(self, season: Season, a: Case, posted_at: datetime) -> None:
        """``a`` is on a posting: a villager may object while the notice is up."""
        step = self.step
        period = notice_period(season.cal, posted_at, step.days, step.counting)
        rng = a.draw(f"objection/{step.stage}")
        if rng.random() < season.s.objection_rate:
            span = (period.ends_at - period.posted_at).total_seconds()
            at = period.posted_at + timedelta(seconds=rng.uniform(60, max(120, span - 3600)))
            season.at(
                at.replace(microsecond=0),
                "objection",
                lambda t: self._object(season, a, period.ends_at, t),
            )
        else:
            season.after(a, step.stage, period.ends_at)

    async def _object(self, season: Season, a: Case, ends_at: datetime, at: datetime) -> None:
        stage = self.step.stage
        await season.clocks.advance(a.workflow_id, at)
        objection = self.objection(a.draw(f"objector/{stage}"), uuid.uuid4().hex)
        try:
            await season.again(lambda: season.api.lodge_objection(a.workflow_id, objection))
        except Refused:
            # Not open to objections yet (its clock behind, say): the villager comes back in
            # an hour while the notice lasts, with the same objection.
            season.counts["objections refused"] += 1
            if at + timedelta(hours=2) < ends_at:
                season.at(
                    at + timedelta(hours=1),
                    "objection (again)",
                    lambda t: self._object(season, a, ends_at, t),
                )
            else:
                season.after(a, stage, ends_at)
            return
        season.counts["objections"] += 1
        season.counts["requests"] += 1
        season.at(
            season.delay(at, "objection_resolution", a.draw(f"delay/resolution/{stage}")),
            "objection resolution",
            lambda t: self._resolve(season, a, ends_at, t),
        )

    async def _resolve(self, season: Season, a: Case, ends_at: datetime, at: datetime) -> None:
        stage = self.step.stage
        await season.clocks.advance(a.workflow_id, at)
        st = await season.again(partial(season.api.status, a.workflow_id))
        upheld = a.draw(f"upheld/{stage}").random() < season.s.objection_upheld
        for o in st.objections:
            if o.outcome is None:
                resolution = self.resolution(a.form.places, o.id, upheld, uuid.uuid4().hex)
                await season.again(
                    lambda r=resolution: season.api.resolve_objection(a.workflow_id, r)  # type: ignore[misc]
                )
                season.counts["requests"] += 1
        if upheld:
            a.terminal = "rejected"
            season.counts["objections upheld"] += 1
        else:
            season.after(a, stage, max(ends_at, at))

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        """Objections are resolved once the owner has looked; a villager objects (once)
        to an application the floor picks, while the notice is up."""
        if st.notice is None:
            # Not posted yet: the notice posts itself, or its owner does (always, with
            # the photograph, where the programme keeps one).
            return await self._post_with_photo(floor, st)
        if datetime.now(UTC) < st.notice.posted_at:
            return False  # its automatic posting is still to come
        wf, acted = st.workflow_id, False
        for o in st.objections:
            what = f"resolve/{o.id}"
            if o.outcome is None and floor.due(st, what, 0.5, 2.5):
                upheld = floor.upholds(st, o.id)
                await floor.api.resolve_objection(
                    wf, self.resolution(st.places, o.id, upheld, floor.request_id(st, what))
                )
                floor.sent(
                    st,
                    what,
                    f"异议{'成立' if upheld else '不成立'} / objection "
                    + ("upheld" if upheld else "dismissed"),
                )
                acted = True
        what = f"object/{self.step.stage}"
        if (
            not st.objections
            and floor.visit(st, what) == 0
            and datetime.now(UTC) < st.notice.ends_at
            and floor.objects(st)
            and floor.due(st, what, 0.2, 2.0)
        ):
            req = self.objection(floor.draw(st, what), floor.request_id(st, what))
            await floor.api.lodge_objection(wf, req)
            floor.sent(st, what, "村民提出异议 / objection lodged")
            acted = True
        return acted

    async def _post_with_photo(self, floor: Floor, st: ApplicationStatus) -> bool:
        step = self.step
        if not step.evidence_required or st.waiting_for != step.owner.value:
            return False
        what = f"post/{step.stage}"
        if not floor.due(st, what, 0.2, 1.0):
            return False
        notice_id = notice_workflow_id(
            self.programme.code,
            st.season,
            self.programme.round_key,
            step.level,
            st.places.code_at(step.level),
            step.stage,
        )
        req = NoticePostRequest(
            request_id=floor.request_id(st, what),
            actor=people.official(step.owner, st.places),
            evidence=[people.notice_photo(notice_id, 1)],
        )
        try:
            await floor.api.post_notice(notice_id, req)
        except Refused as refusal:
            if "nothing to post" not in str(refusal) and "being posted" not in str(refusal):
                raise
        floor.sent(st, what, "村委会张贴公示并上传照片 / notice posted with its photograph")
        return True


async def _within(
    season: Season,
    check: Callable[[], Awaitable[bool]],
    progress: Callable[[], object] = lambda: None,
) -> bool:
    """Ask ``check`` until it says yes (True), or until ``NOTICE_WITHIN_SECONDS`` have
    passed without ``progress`` changing (False). A refusal, or a busy server's timeout,
    counts as "not yet". The checks come ever less often, from a tenth of a second to
    one every ``CHECKS_AT_MOST_EVERY``."""

    async def asked() -> bool:
        try:
            return await check()
        except Refused:
            return False
        except RPCError as e:
            if e.status not in BUSY:
                raise
            season.counts["notice checks asked again on a busy server"] += 1
            return False

    return await shown_within(
        asked,
        progress,
        within=NOTICE_WITHIN_SECONDS,
        first_pause=FIRST_CHECK_AFTER,
        longest_pause=CHECKS_AT_MOST_EVERY,
    )
