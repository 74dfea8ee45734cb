"""CaseWorkflow: help that is a case, not an application (PROCESS.md §5).

One workflow a case: a household's pairing year, a dropped-out child, a student with
failed courses, a left-behind child. It reads like the work it follows:

1. the case is opened by its office with its group (each member a person with a key);
   a registration after its window is accepted and flagged late;
2. every obligation runs on its own timers: a calendar period (a phone call each month,
   a visit each quarter, money or goods and a problem solved each year) judged at the
   period's end for each member who owes it, or a cadence (a home visit within a week,
   then every two weeks) whose due day moves with each contact; a miss is overdue for
   that member, who is told with their unit's liaison;
3. members log contacts (a contact in the future, outside the year or by someone not on
   the case is refused naming why); a member hands over to another, and the seat's
   obligations go on; the dated checks of a semester flag the cases with no record;
4. the case ends on an outcome its programme allows, with its evidence (an exemption
   only with the approving office's word, four eyes), or with its year; never by
   silence or by its own time running out.

Its trail goes to the database in batches (``record_case_events``); operators filter on
the shared search attributes: ``Programme``, ``Season`` (the year), ``Stage``,
``WaitingFor``, ``Overdue``, ``NextDeadline`` and the places.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.idempotency import seen
from workflows.steps import Refused
from workflows.steps.base import AuthorityProblem, check_place
from workflows.trail import FAILING_PAUSE, PERSIST_RETRY, failure_reason, rest_of_activation
from workflows.visibility import published_at_start, upsert_changed

with workflow.unsafe.imports_passed_through():
    from models import search
    from models.application import Actor, RequestResult, request_key
    from models.cases import (
        CHINA_CLOCK,
        MEMBER_ROLE_ZH,
        CaseClock,
        CaseEvent,
        CaseEventBatch,
        CaseInput,
        CaseMember,
        CaseRef,
        CaseStatus,
        Closure,
        ClosureApproval,
        Contact,
        DatedCheck,
        Handover,
        Miss,
        Obligation,
        SignOff,
        period_of,
    )
    from models.domain import ROLE_NAME_ZH, Role, level_of

_RECORD = timedelta(seconds=30)
SYSTEM = Actor(id="aidflow", name="aidflow", role=Role.SYSTEM)


@workflow.defn(failure_exception_types=[ValidationError])
class CaseWorkflow:
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        self.inp, self.p = inp, inp.programme
        self.clock: CaseClock = CHINA_CLOCK  # the deployment calendar's days, from run()
        self.members: list[CaseMember] = list(inp.members)  # one a seat
        self.seat: dict[str, int] = {m.actor_id: i for i, m in enumerate(inp.members)}
        self.contacts: list[Contact] = []
        self.misses: list[Miss] = []
        self.overdue: dict[tuple[str, str], Miss] = {}  # (obligation, member): not made up
        self.waiting: dict[str, tuple[datetime, list[str]]] = {}  # obligation: due, who
        self.outcome = ""
        self.pending: Closure | None = None
        self.sign_offs: list[Actor] = []
        self.late = False
        self.events: list[CaseEvent] = []
        self.saved = 0
        self.results: dict[str, RequestResult] = {}
        self.request_keys: dict[str, str] = {}
        self.published: dict[str, Any] = published_at_start()

    # ------------------------------------------------------------- the case

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseStatus:
        self.clock = await workflow.execute_local_activity(
            "case_clock",
            inp.year,
            result_type=CaseClock,
            start_to_close_timeout=timedelta(seconds=10),
            summary="the calendar's days",
        )
        self._opened()
        loops = [asyncio.create_task(self._obligation(o)) for o in self.p.obligations]
        checks = self.p.checks_of(self.clock.day_of(inp.opened_at))
        loops += [
            asyncio.create_task(self._check(check, on, [d for _, d in checks]))
            for check, on in checks
        ]
        saver = asyncio.create_task(self._save_forever())
        self.publish()
        if self.p.ends_with_year:
            try:
                await workflow.wait_condition(
                    lambda: bool(self.outcome),
                    # A calendar minute past the year: its last periods are judged at 24:00
                    # first (the calendar's minute: the demo's days are compressed).
                    timeout=self._until(
                        self.clock.end_of(date(inp.year, 12, 31))
                        + timedelta(seconds=self.clock.day_seconds / 1440)
                    ),
                    timeout_summary="the case's year ends",
                )
            except TimeoutError:
                self.outcome = "year_ended"
                self._record(
                    "closed",
                    SYSTEM,
                    "年度结束，结案 / the year is over: case closed",
                    {"outcome": "year_ended"},
                )
        else:
            await workflow.wait_condition(lambda: bool(self.outcome))
        for task in loops:
            task.cancel()
        self.publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: self.saved == len(self.events))
        saver.cancel()
        return self.status()

    def _opened(self) -> None:
        inp, reg = self.inp, self.p.registration
        group = "、".join(f"{m.name}（{MEMBER_ROLE_ZH[m.role]}）" for m in self.members)
        detail: dict[str, Any] = {"members": [m.model_dump(mode="json") for m in self.members]}
        opened_day = self.clock.day_of(inp.opened_at)
        if reg is not None:
            starts = [s.in_year(inp.year) for s in reg.semester_starts]
            start = max((s for s in starts if s <= opened_day), default=None)
            if start is not None and opened_day > start + timedelta(days=reg.within_days):
                self.late = True
                detail |= {"late": True, "semester_start": start.isoformat()}
        self._record(
            "opened",
            inp.opened_by,
            f"立案：{inp.subject.name}，帮扶小组 {group}"
            + ("（逾期登记）" if self.late else "")
            + f" / case opened for {inp.subject.national_id_masked} with {len(self.members)} "
            "member(s)" + (" (registered late)" if self.late else ""),
            detail,
        )

    # ----------------------------------------------------------- obligations

    async def _obligation(self, ob: Obligation) -> None:
        if ob.every is not None:
            await self._periodic(ob)
        else:
            await self._cadence(ob)

    async def _periodic(self, ob: Obligation) -> None:
        """Judged at each calendar period's end, for each member who owes it."""
        assert ob.every is not None
        day = self.clock.day_of(self.inp.opened_at)
        while not self.outcome:
            first, last, label = period_of(day, ob.every)
            due = self.clock.end_of(last)
            self.waiting[ob.key] = (due, [m.actor_id for m in self._owing(ob)])
            self.publish()
            if await self._closed_by(due, f"{ob.label_en} ({label})"):
                return
            self._judge(ob, first, last, label, due)
            day = last + timedelta(days=1)
            if self.p.ends_with_year and day.year > self.inp.year:
                return

    async def _cadence(self, ob: Obligation) -> None:
        """Due ``first_within_days`` after the opening, then ``every_days`` after the last
        contact that meets it: each contact moves the due day on."""
        assert ob.every_days is not None
        due = self.clock.end_of(
            self.clock.day_of(self.inp.opened_at)
            + timedelta(days=ob.first_within_days or ob.every_days)
        )
        while not self.outcome:
            seen = self._met_count(ob)
            self.waiting[ob.key] = (due, [m.actor_id for m in self._owing(ob)])
            self.publish()
            try:
                await workflow.wait_condition(
                    lambda seen=seen: bool(self.outcome) or self._met_count(ob) > seen,  # type: ignore[misc]
                    timeout=self._until(due),
                    timeout_summary=f"{ob.label_en} due",
                )
            except TimeoutError:
                self._miss(ob, "", self.clock.day_of(due - timedelta(seconds=1)).isoformat(), due)
                due = due + timedelta(days=ob.every_days)
                continue
            if self.outcome:
                return
            last = max(c.on for c in self.contacts if ob.counts(c) and self._owes(ob, c.member))
            due = self.clock.end_of(last + timedelta(days=ob.every_days))
            self.overdue.pop((ob.key, ""), None)

    def _judge(self, ob: Obligation, first: date, last: date, label: str, due: datetime) -> None:
        met: list[str] = []
        missed: list[str] = []
        owing = self._owing(ob)
        for m in owing:
            seat = self.seat[m.actor_id]
            done = any(
                ob.counts(c)
                and first <= c.on <= last
                and (ob.by_group or self.seat.get(c.member) == seat)
                for c in self.contacts
            )
            (met if done else missed).append(m.actor_id)
        self._record(
            "period_judged",
            SYSTEM,
            f"{ob.label_zh}（{label}）：完成 {len(met)} 人，未完成 {len(missed)} 人 / "
            f"{ob.label_en} ({label}): met by {len(met)}, missed by {len(missed)}",
            {"obligation": ob.key, "period": label, "met": met, "missed": missed},
        )
        for member in missed:
            self._miss(ob, member, label, due)

    def _miss(self, ob: Obligation, member: str, period: str, due: datetime) -> None:
        miss = Miss(obligation=ob.key, member=member, period=period, due_at=due)
        self.misses.append(miss)
        self.overdue[(ob.key, member)] = miss
        who = next((m for m in self.members if m.actor_id == member), None)
        told = [member] if member else [m.actor_id for m in self._owing(ob)]
        self._record(
            "overdue",
            SYSTEM,
            f"逾期：{who.name if who else '帮扶小组'}未{ob.label_zh}（{period}） / overdue: "
            f"{member or 'the group'} missed {ob.label_en} ({period})",
            {"obligation": ob.key, "member": member, "period": period, "told": told},
            notify=True,
        )
        self.publish()

    def _owing(self, ob: Obligation) -> list[CaseMember]:
        return [m for m in self.members if m.role in ob.owed_by]

    def _owes(self, ob: Obligation, member: str) -> bool:
        seat = self.seat.get(member)
        return seat is not None and self.members[seat].role in ob.owed_by

    def _met_count(self, ob: Obligation) -> int:
        return sum(1 for c in self.contacts if ob.counts(c) and self._owes(ob, c.member))

    async def _check(self, check: DatedCheck, on: date, days: list[date]) -> None:
        """A dated check of the case's semester (academic help): the case is flagged if
        nothing was logged since the previous check (or the opening)."""
        key = check.key
        if on < self.clock.day_of(self.inp.opened_at):
            return
        since = max([d for d in days if d < on] + [self.clock.day_of(self.inp.opened_at)])
        if await self._closed_by(self.clock.end_of(on), check.label_en):
            return
        recorded = any(since <= c.on <= on for c in self.contacts)
        self._record(
            "checked",
            SYSTEM,
            f"{check.label_zh}：{'有' if recorded else '无'}帮扶记录 / {check.label_en}: "
            + ("help recorded" if recorded else "no help recorded since the last check"),
            {"check": key, "since": since.isoformat(), "recorded": recorded},
        )
        if check.tells_guardian and self.inp.failed_courses:
            courses = "、".join(self.inp.failed_courses)
            self._record(
                "guardian_told",
                SYSTEM,
                f"已告知家长不及格课程：{courses} / the guardian told of the failed courses",
                {"check": key, "failed_courses": list(self.inp.failed_courses)},
                notify=True,
            )
        if not recorded:
            self.misses.append(
                Miss(obligation=f"check:{key}", member="", period=key, due_at=self.clock.end_of(on))
            )
            self.overdue[(f"check:{key}", "")] = self.misses[-1]
            self.publish()

    async def _closed_by(self, at: datetime, what: str) -> bool:
        """Wait until ``at``; True if the case closed first."""
        try:
            await workflow.wait_condition(
                lambda: bool(self.outcome), timeout=self._until(at), timeout_summary=what
            )
        except TimeoutError:
            return False
        return True

    def _until(self, at: datetime) -> timedelta:
        return max(at - workflow.now(), timedelta(seconds=1))

    # ------------------------------------------------------------- requests

    @workflow.update
    def log_contact(self, req: Contact) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self._remember(req)
        self.contacts.append(req)
        member = self.members[self.seat[req.member]]
        for ob in self.p.obligations:  # a miss made up by this contact
            if ob.counts(req) and (ob.by_group or member.role in ob.owed_by):
                self.overdue.pop((ob.key, req.member), None)
        for key in [k for k in self.overdue if k[0].startswith("check:")]:
            self.overdue.pop(key)  # a record since the check that flagged it
        gift = f"，钱物 {req.gift_value_cny} 元" if req.gift_value_cny else ""
        self._record(
            "contact",
            req.actor,
            f"{member.name}{req.on.isoformat()}{req.kind.value}：{req.done}{gift} / "
            f"{req.kind.value} on {req.on.isoformat()} by {req.member}",
            {
                "request_id": req.request_id,
                "member": req.member,
                "on": req.on.isoformat(),
                "kind": req.kind.value,
                "done": req.done,
                "gift_value_cny": req.gift_value_cny,
                "problem_solved": req.problem_solved,
                "photo_sha256": list(req.photo_sha256),
            },
        )
        return self._answer(req.request_id, f"contact of {req.on.isoformat()} logged")

    @log_contact.validator
    def _validate_contact(self, req: Contact) -> None:
        if seen(self.request_keys, req):
            return
        problems = self._still_open()
        seat = self.seat.get(req.member)
        if seat is None or self.members[seat].actor_id != req.member:
            problems.append(
                AuthorityProblem(f"member: {req.member} is not on this case")
                if seat is None
                else AuthorityProblem(f"member: {req.member} handed this case over")
            )
        elif req.actor.id != req.member and not self._liaison_of(req.actor, self.members[seat]):
            problems.append(
                AuthorityProblem(
                    f"{req.actor.id} may not log for {req.member}: only the member or their "
                    "unit's liaison"
                )
            )
        today = self.clock.day_of(workflow.now())
        if req.on > today:
            problems.append(f"on: {req.on} is in the future (today is {today})")
        if req.on.year != self.inp.year and self.p.ends_with_year:
            problems.append(f"on: {req.on} is outside the case's year {self.inp.year}")
        elif req.on < self.clock.day_of(self.inp.opened_at):
            problems.append(f"on: {req.on} is before the case was opened")
        if problems:
            raise Refused(problems)

    @workflow.update
    def hand_over(self, req: Handover) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self._remember(req)
        seat = self.seat[req.leaving]
        leaving = self.members[seat]
        self.members[seat] = req.joining
        self.seat[req.joining.actor_id] = seat
        self._record(
            "handover",
            req.actor,
            f"{leaving.name}移交{req.joining.name}：{req.reason} / {req.leaving} handed the case "
            f"over to {req.joining.actor_id}",
            {
                "request_id": req.request_id,
                "leaving": req.leaving,
                "joining": req.joining.model_dump(mode="json"),
                "reason": req.reason,
            },
        )
        for key in [k for k in self.overdue if k[1] == req.leaving]:
            self.overdue[(key[0], req.joining.actor_id)] = self.overdue.pop(key)
        return self._answer(req.request_id, f"{req.joining.actor_id} took over from {req.leaving}")

    @hand_over.validator
    def _validate_handover(self, req: Handover) -> None:
        if seen(self.request_keys, req):
            return
        problems = self._still_open()
        seat = self.seat.get(req.leaving)
        if seat is None or self.members[seat].actor_id != req.leaving:
            problems.append(f"leaving: {req.leaving} is not on this case")
        elif not (
            self._liaison_of(req.actor, self.members[seat])
            or (req.actor.role in self.p.opened_by and not self._office(req.actor, req.actor.role))
        ):
            problems.append(
                AuthorityProblem(
                    f"{req.actor.id} may not hand the case over: the member's liaison or the "
                    "office that opened it"
                )
            )
        if req.joining.actor_id in self.seat:
            problems.append(f"joining: {req.joining.actor_id} is or was on this case already")
        if problems:
            raise Refused(problems)

    @workflow.update
    def close(self, req: Closure) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self._remember(req)
        rule = self.p.closing_rule(req.outcome)
        assert rule is not None
        detail = {
            "request_id": req.request_id,
            "outcome": req.outcome,
            "evidence_ref": req.evidence_ref,
            "evidence_sha256": req.evidence_sha256,
            "note": req.note,
        }
        if rule.approved_by is not None:
            self.pending = req
            self._record(
                "closure_proposed",
                req.actor,
                f"申请结案：{rule.label_zh}，待{ROLE_NAME_ZH.get(rule.approved_by, '')}审批 / "
                f"closure proposed: {rule.label_en}, waiting for the {rule.approved_by.value}",
                detail,
            )
            return self._answer(req.request_id, f"{req.outcome}: waiting for approval")
        self.outcome = req.outcome
        self._record(
            "closed", req.actor, f"结案：{rule.label_zh} / closed: {rule.label_en}", detail
        )
        return self._answer(req.request_id, f"closed: {req.outcome}")

    @close.validator
    def _validate_close(self, req: Closure) -> None:
        if seen(self.request_keys, req):
            return
        problems = self._still_open()
        rule = self.p.closing_rule(req.outcome)
        if rule is None:
            allowed = (
                ", ".join(r.outcome for r in self.p.closes_on) or "none: it ends with its year"
            )
            raise Refused(f"outcome: {req.outcome!r} does not close this case (allowed: {allowed})")
        if self.pending is not None:
            problems.append(f"a closure ({self.pending.outcome}) is already waiting for approval")
        if req.actor.role not in rule.by:
            problems.append(
                AuthorityProblem(
                    f"role {req.actor.role.value} may not close it as {req.outcome}; it needs "
                    + " or ".join(r.value for r in rule.by)
                )
            )
        else:
            problems += self._office(req.actor, req.actor.role)
        if rule.evidence_required and not (req.evidence_ref.strip() or req.evidence_sha256):
            problems.append(
                f"evidence: {rule.label_en} needs {rule.evidence_label or 'its evidence'}"
            )
        if problems:
            raise Refused(problems)

    @workflow.update
    def approve_closure(self, req: ClosureApproval) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self._remember(req)
        pending = self.pending
        assert pending is not None
        self.pending = None
        detail = {
            "request_id": req.request_id,
            "approve": req.approve,
            "reason": req.reason,
            "outcome": pending.outcome,
        }
        if req.approve:
            self.outcome = pending.outcome
            self._record("closed", req.actor, f"批准结案：{req.reason} / closure approved", detail)
            return self._answer(req.request_id, f"closed: {pending.outcome}")
        self._record(
            "closure_refused", req.actor, f"不批准结案：{req.reason} / closure refused", detail
        )
        return self._answer(req.request_id, f"closure refused: {req.reason}")

    @approve_closure.validator
    def _validate_approval(self, req: ClosureApproval) -> None:
        if seen(self.request_keys, req):
            return
        if self.pending is None:
            raise Refused("no closure is waiting for approval")
        rule = self.p.closing_rule(self.pending.outcome)
        assert rule is not None and rule.approved_by is not None
        problems = self._office(req.actor, rule.approved_by)
        if req.actor.id == self.pending.actor.id:
            problems.append(AuthorityProblem(f"four eyes: {req.actor.id} proposed this closure"))
        if problems:
            raise Refused(problems)

    @workflow.update
    def sign_off(self, req: SignOff) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self._remember(req)
        self.sign_offs.append(req.actor)
        self._record(
            "signed_off",
            req.actor,
            f"{ROLE_NAME_ZH.get(req.actor.role, '')}审核通过 / signed off by the "
            f"{req.actor.role.value}",
            {"request_id": req.request_id, "note": req.note},
        )
        return self._answer(req.request_id, f"signed off ({len(self.sign_offs)})")

    @sign_off.validator
    def _validate_sign_off(self, req: SignOff) -> None:
        if seen(self.request_keys, req):
            return
        needed = self.p.registration.sign_offs if self.p.registration else ()
        if len(self.sign_offs) >= len(needed):
            raise Refused("nothing to sign off: every sign-off is done")
        role = needed[len(self.sign_offs)]
        problems = self._office(req.actor, role)
        if any(a.id == req.actor.id for a in self.sign_offs):
            problems.append(AuthorityProblem(f"four eyes: {req.actor.id} signed off already"))
        if problems:
            raise Refused(problems)

    def _office(self, actor: Actor, role: Role) -> list[str]:
        return check_place(self.inp.places, actor, role, level_of(role), "act on this case")

    def _liaison_of(self, actor: Actor, member: CaseMember) -> bool:
        return (
            self.p.liaison is not None
            and actor.role is self.p.liaison
            and bool(member.unit)
            and actor.place_code == member.unit
        )

    def _still_open(self) -> list[str]:
        return [f"the case is closed ({self.outcome})"] if self.outcome else []

    def _remember(self, req: Any) -> None:
        self.request_keys[req.request_id] = request_key(req)

    def _answer(self, request_id: str, message: str) -> RequestResult:
        result = RequestResult(
            request_id=request_id, accepted=True, stage=self._stage(), message=message
        )
        self.results[request_id] = result
        self.publish()
        return result

    # ------------------------------------------------------------ the trail

    def _record(
        self,
        kind: str,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None = None,
        *,
        notify: bool = False,
    ) -> None:
        self.events.append(
            CaseEvent(
                seq=len(self.events) + 1,
                at=workflow.now(),
                kind=kind,
                actor=actor,
                summary=summary,
                detail=detail or {},
                notify=notify,
            )
        )

    async def _save_forever(self) -> None:
        """The trail to the database, a batch at a time: one local activity for what a
        task recorded, one marker in the history (an activity was three events and a
        workflow task more, each batch: issue 20)."""
        while True:
            await workflow.wait_condition(lambda: self.saved < len(self.events))
            await rest_of_activation()  # what its handlers record goes with it
            batch = self.events[self.saved :]
            try:
                await workflow.execute_local_activity(
                    "record_case_events",
                    CaseEventBatch(
                        case=CaseRef.of(self.inp),
                        members=list(self.inp.members) if self.saved == 0 else [],
                        events=batch,
                        stage=self._stage(),
                        overdue=len(self.overdue),
                    ),
                    start_to_close_timeout=_RECORD,
                    retry_policy=PERSIST_RETRY,
                    summary=f"{len(batch)} case event(s)",
                )
            except ActivityError as e:
                # A few quick attempts, then a pause in the workflow (a timer): a local
                # activity retried without end holds its workflow task, and a worker's
                # shutdown, meanwhile. Loud, as the application's trail.
                workflow.logger.error(
                    f"the case's trail cannot be saved: {failure_reason(e)}; tried again in a minute",
                    extra={"event": "persistence_failing"},
                )
                await workflow.sleep(FAILING_PAUSE, summary="try saving the trail again")
                continue
            self.saved += len(batch)

    # ------------------------------------------------------------ reading

    def _stage(self) -> str:
        if self.outcome:
            return self.outcome
        if self.pending is not None:
            return "closure_pending"
        reg = self.p.registration
        if reg is not None and len(self.sign_offs) < len(reg.sign_offs):
            return "awaiting_sign_off"
        return "case_open"

    def _waiting(self) -> tuple[str, str, str, datetime | None]:
        """Whom the case waits for, in plain words, and until when."""
        if self.outcome:
            return "", "已结案", f"closed: {self.outcome}", None
        if self.pending is not None:
            rule = self.p.closing_rule(self.pending.outcome)
            role = rule.approved_by if rule else None
            return (
                role.value if role else "",
                f"等待{ROLE_NAME_ZH.get(role, '') if role else ''}审批结案（{rule.label_zh if rule else ''}）",
                f"waiting for the {role.value if role else 'office'} to approve the closure",
                None,
            )
        reg = self.p.registration
        if reg is not None and len(self.sign_offs) < len(reg.sign_offs):
            role = reg.sign_offs[len(self.sign_offs)]
            return (
                role.value,
                f"等待{ROLE_NAME_ZH.get(role, '')}审核登记" + ("（逾期登记）" if self.late else ""),
                f"waiting for the {role.value} to sign the registration off"
                + (" (registered late)" if self.late else ""),
                None,
            )
        upcoming = sorted(
            (due, key, who) for key, (due, who) in self.waiting.items() if due > workflow.now()
        )
        if not upcoming:
            return "", "帮扶进行中", "help under way", None
        due, key, who = upcoming[0]
        ob = next(o for o in self.p.obligations if o.key == key)
        names = "、".join(m.name for m in self.members if m.actor_id in who) or "帮扶小组"
        return (
            Role.HELPER.value,
            f"等待{names}{ob.label_zh}（截至 {self.clock.day_of(due - timedelta(seconds=1))}）",
            f"waiting for {', '.join(who) or 'the group'}: {ob.label_en}, by "
            f"{self.clock.day_of(due - timedelta(seconds=1))}",
            due,
        )

    @workflow.query
    def status(self) -> CaseStatus:
        waiting_for, zh, en, due = self._waiting()
        if self.overdue:
            zh += f"；逾期 {len(self.overdue)} 项"
            en += f"; {len(self.overdue)} obligation(s) overdue"
        return CaseStatus(
            workflow_id=self.inp.workflow_id,
            programme=self.p.code,
            year=self.inp.year,
            places=self.inp.places,
            stage=self._stage(),
            waiting_for=waiting_for,
            next_deadline=due,
            members=list(self.members),
            contacts=len(self.contacts),
            misses=list(self.misses),
            overdue=sorted(f"{k}:{m}" if m else k for k, m in self.overdue),
            late=self.late,
            sign_offs=[a.id for a in self.sign_offs],
            outcome=self.outcome,
            details_zh=zh,
            details_en=en,
        )

    def publish(self) -> None:
        st = self.status()
        workflow.set_current_details(f"**{st.details_zh}**\n\n{st.details_en}")
        places = self.inp.places
        upsert_changed(
            self.published,
            [
                (search.PROGRAMME, self.p.code),
                (search.SEASON, self.inp.year),
                (search.COUNTY, places.county_code),
                (search.TOWNSHIP, places.township_code),
                (search.VILLAGE, places.village_code),
                (search.STAGE, st.stage),
                (search.WAITING_FOR, st.waiting_for),
                (search.OVERDUE, bool(self.overdue)),
                (search.NEXT_DEADLINE, st.next_deadline),
            ],
        )

    def refuse_unproven(self, name: str, problem: str) -> None:
        workflow.logger.warning(f"message {name} refused: {problem}")
