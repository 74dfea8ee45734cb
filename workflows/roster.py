"""RosterWorkflow: a cohort's list of students, decided on as a whole (PROCESS.md §4.3).

One per programme, season (the cohort is the season's round) and county. Each student
is an application of its own; at each of the programme's roster steps (the
civil-affairs check, the provincial confirmation) the application joins its roster and
waits. The office of the step gives its word once for the whole list (``decide``, an
update proven by its credential, R10): the students it names one by one, and what
happens to the rest (approved; or answered by the civil-affairs rolls, an imported
dated snapshot: on them, eligible under their category; not on them, ineligible). The
roster tells each application its word (a sealed message), which records it in its
own trail under the official's name.

For operators the roster is the cohort's place in the Web UI: which step it stands at,
whom it waits for, until when, and whether that date has passed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.clock import sleep_until
from workflows.messaging import signal_each
from workflows.steps import Refused
from workflows.steps.base import AuthorityProblem, fmt
from workflows.visibility import published_at_start, upsert_changed

with workflow.unsafe.imports_passed_through():
    from activities.roster import RosterActivities
    from activities.workflow_calendar import CalendarActivities
    from models import search
    from models.application import province_code, request_key
    from models.domain import RELIEF_CATEGORY_ZH, ROLE_NAME_ZH, Level, Role
    from models.records import ScheduleRequest
    from models.roster import (
        EntryVerdict,
        RollsCheck,
        RosterDecided,
        RosterDecision,
        RosterInput,
        RosterLeft,
        RosterMember,
        RosterStatus,
        RosterVerdict,
    )
    from models.schedule import SeasonSchedule
    from models.steps import RosterStep

_CST = timezone(timedelta(hours=8), "CST")
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
BUILDING = "roster_building"
DECIDED = "roster_decided"


@workflow.defn(failure_exception_types=[ValidationError])
class RosterWorkflow:
    @workflow.init
    def __init__(self, inp: RosterInput) -> None:
        self._inp = inp
        self._steps = [s for s in inp.programme.steps if isinstance(s, RosterStep)]
        self._members: dict[str, RosterMember] = {}
        self._waiting: dict[str, dict[str, RosterMember]] = {s.stage: {} for s in self._steps}
        self._verdicts: dict[str, dict[str, RosterVerdict]] = {s.stage: {} for s in self._steps}
        self._left: set[str] = set()
        self._decisions: dict[str, RosterDecided] = {}
        self._request_keys: dict[str, str] = {}
        self._passed: set[str] = set()  # the roster steps' dates that have passed
        self._schedule: SeasonSchedule | None = None
        self._published: dict[str, Any] = published_at_start()
        self._deciding = asyncio.Lock()
        self._window_closed = False  # the roster is built: its timer fired
        self._resend: list[tuple[str, RosterVerdict]] = []

    @workflow.run
    async def run(self, inp: RosterInput) -> list[RosterDecided]:
        self._schedule = await workflow.execute_local_activity_method(
            CalendarActivities.compute_season_schedule,
            ScheduleRequest(programme=inp.programme, season=inp.season),
            start_to_close_timeout=timedelta(seconds=10),
            summary="the cohort's dates",
        )
        watchers = [asyncio.create_task(self._watch(step)) for step in self._steps]
        watchers.append(asyncio.create_task(self._resend_forever()))
        watchers.append(asyncio.create_task(self._close_window()))
        self._describe()
        await sleep_until(self._schedule.due_at("summary"), "the programme's summary date")
        # Past the summary date the roster stays while a student still waits for its word.
        await workflow.wait_condition(
            lambda: (
                not self._anyone_waiting() and not self._resend and workflow.all_handlers_finished()
            ),
            timeout_summary="students still waiting for the roster's word",
        )
        for w in watchers:
            w.cancel()
        self._describe()
        return list(self._decisions.values())

    async def _close_window(self) -> None:
        assert self._schedule is not None
        await sleep_until(self._schedule.window_closes_at, "the roster built (window closes)")
        self._window_closed = True
        self._describe()

    async def _resend_forever(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._resend))
            told, self._resend = self._resend, []
            await signal_each("roster_decided", told, skip_gone=True)

    async def _watch(self, step: RosterStep) -> None:
        """At the step's date, a roster with students still waiting there is overdue."""
        assert self._schedule is not None
        await sleep_until(self._schedule.due_at(step.due), f"{step.label_en} due")
        self._passed.add(step.due)
        self._describe()

    @property
    def _overdue(self) -> list[str]:
        """The dates passed with students still waiting for the word due by them."""
        return [s.due for s in self._steps if self._waiting[s.stage] and s.due in self._passed]

    def _anyone_waiting(self) -> bool:
        return any(self._waiting.values())

    # ------------------------------------------------------------------ members

    @workflow.signal
    def member_joined(self, m: Any = None) -> None:
        """A student's application reached a roster step (a sealed message: many come
        at once, in few workflow tasks)."""
        if not isinstance(m, RosterMember) or m.stage not in self._waiting:
            return
        self._members[m.workflow_id] = m
        self._left.discard(m.workflow_id)
        given = self._verdicts[m.stage].get(m.workflow_id)
        if given is not None:
            # Joined again (a replayed run of its step): the word it already had.
            self._resend.append((m.workflow_id, given))
        else:
            self._waiting[m.stage][m.workflow_id] = m
        self._describe()

    @workflow.signal
    def member_left(self, left: Any = None) -> None:
        """A student's application closed (withdrawn) while it waited for the roster."""
        if not isinstance(left, RosterLeft):
            return
        for waiting in self._waiting.values():
            waiting.pop(left.workflow_id, None)
        self._left.add(left.workflow_id)
        self._describe()

    # ---------------------------------------------------------------- decisions

    @workflow.update
    async def decide(self, req: RosterDecision) -> RosterDecided:
        kept = self._decisions.get(req.request_id)
        if kept is not None:
            return kept
        self._request_keys[req.request_id] = request_key(req)
        async with self._deciding:  # one word at a time: each sees who still waits
            step = self._step(req.stage)
            waiting = dict(self._waiting[step.stage])
            verdicts = [e for e in req.entries if e.workflow_id in waiting]
            named = {e.workflow_id for e in verdicts}
            rest = [m for wf, m in waiting.items() if wf not in named]
            snapshot = None
            if req.others == "approve":
                verdicts += [EntryVerdict(workflow_id=m.workflow_id, eligible=True) for m in rest]
            elif req.others == "from_rolls" and rest:
                answer = await workflow.execute_activity_method(
                    RosterActivities.check_rolls,
                    RollsCheck(
                        county_code=self._inp.county_code,
                        national_id_hashes=[m.national_id_hash for m in rest],
                        as_of=workflow.now().astimezone(_CST).date(),
                    ),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=_RETRY,
                    summary="check the students against the civil-affairs rolls",
                )
                snapshot = answer.snapshot
                if snapshot is None:
                    raise Refused(
                        f"no civil-affairs rolls of county {self._inp.county_code} were imported "
                        "(aidflow registry import --kind civil-affairs): name each student instead"
                    )
                for m in rest:
                    category = answer.categories.get(m.national_id_hash)
                    verdicts.append(
                        EntryVerdict(
                            workflow_id=m.workflow_id,
                            eligible=category is not None,
                            category=category,
                            reason=""
                            if category is not None
                            else f"不在民政部门在册名单（截至{snapshot}） / not on the civil-affairs rolls as of {snapshot}",
                        )
                    )
            told: list[tuple[str, RosterVerdict]] = []
            for v in verdicts:
                word = RosterVerdict(
                    roster_id=self._inp.workflow_id,
                    request_id=req.request_id,
                    stage=step.stage,
                    eligible=v.eligible,
                    category=v.category,
                    reason=v.reason,
                    actor=req.actor,
                    rolls_snapshot=snapshot if v.workflow_id not in named else None,
                )
                self._waiting[step.stage].pop(v.workflow_id, None)
                self._verdicts[step.stage][v.workflow_id] = word
                told.append((v.workflow_id, word))
            decided = RosterDecided(
                request_id=req.request_id,
                stage=step.stage,
                approved=sum(v.eligible for v in verdicts),
                refused=sum(not v.eligible for v in verdicts),
                still_waiting=len(self._waiting[step.stage]),
                rolls_snapshot=snapshot,
                verdicts=verdicts,
            )
            self._decisions[req.request_id] = decided
            self._describe()
            await signal_each("roster_decided", told, skip_gone=True)
        return decided

    @decide.validator
    def _validate_decide(self, req: RosterDecision) -> None:
        if req.request_id in self._decisions:
            if self._request_keys.get(req.request_id) != request_key(req):
                raise Refused(
                    f"request id {req.request_id} was already used for another word on this "
                    "roster; send a new request id"
                )
            return
        step = self._step(req.stage)
        problems: list[str] = []
        if req.actor.role is not step.role:
            problems.append(
                AuthorityProblem(
                    f"role {req.actor.role.value} may not decide {step.stage}; it needs {step.role.value}"
                )
            )
        place = self._place_at(step.level)
        if req.actor.place_code != place:
            problems.append(
                AuthorityProblem(
                    f"place {req.actor.place_code or '(none)'} is not the roster's {step.level.value} {place}"
                )
            )
        waiting = self._waiting[step.stage]
        unknown = [e.workflow_id for e in req.entries if e.workflow_id not in waiting]
        if unknown:
            problems.append(
                f"entries: not waiting for {step.stage} on this roster: {', '.join(unknown[:20])}"
                + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            )
        if step.names_category:
            nameless = [e.workflow_id for e in req.entries if e.eligible and e.category is None]
            if nameless:
                problems.append(
                    f"entries: the category is required for each eligible student: {', '.join(nameless[:20])}"
                )
        if req.others == "from_rolls" and step.checked_against != "civil_affairs_rolls":
            problems.append(f"others: {step.stage} is not answered from the civil-affairs rolls")
        if req.others == "approve" and step.names_category:
            problems.append(
                "others: each eligible student's category must be named (from_rolls, or one by one)"
            )
        if not waiting:
            problems.append(f"nobody on this roster waits for {step.stage}")
        if problems:
            raise Refused(problems)

    def _step(self, stage: str) -> RosterStep:
        step = next((s for s in self._steps if s.stage == stage), None)
        if step is None:
            known = ", ".join(s.stage for s in self._steps)
            raise Refused(f"stage: the roster decides {known}, not {stage!r}")
        return step

    def _place_at(self, level: Level) -> str:
        county = self._inp.county_code
        return province_code(county) if level is Level.PROVINCE else county

    # ------------------------------------------------------------------ reading

    @workflow.query
    def status(self) -> RosterStatus:
        phase, role, until = self._phase()
        zh, en = self._words()
        p = self._inp.programme
        return RosterStatus(
            workflow_id=self._inp.workflow_id,
            programme=p.code,
            season=self._inp.season,
            round=p.round_key,
            county_code=self._inp.county_code,
            phase=phase,
            waiting_for=role,
            waiting_until=until,
            overdue=list(self._overdue),
            members=sorted(self._members.values(), key=lambda m: m.workflow_id),
            decided={
                stage: {wf: v.eligible for wf, v in given.items()}
                for stage, given in self._verdicts.items()
            },
            decisions=list(self._decisions.values()),
            details_zh=zh,
            details_en=en,
        )

    def _phase(self) -> tuple[str, Role | None, datetime | None]:
        """The first roster step anyone waits at; before it, the roster being built."""
        schedule = self._schedule
        for step in self._steps:
            if self._waiting[step.stage]:
                return step.stage, step.role, schedule.due_at(step.due) if schedule else None
        if schedule is not None and not self._window_closed:
            return BUILDING, self._inp.programme.submitted_by[0], schedule.window_closes_at
        return DECIDED, None, None

    def _words(self) -> tuple[str, str]:
        p = self._inp.programme
        phase, role, until = self._phase()
        n = len(self._members) - len(self._left)
        zh = [f"{p.name_zh}名册：{n}人"]
        en = [f"{p.name_en} roster: {n} student(s)"]
        if phase == BUILDING:
            zh.append(f"名册建立中，截止 {fmt(until)}")
            en.append(f"being built until {fmt(until)}")
        for step in self._steps:
            waiting, given = self._waiting[step.stage], self._verdicts[step.stage].values()
            yes = sum(v.eligible for v in given)
            no = len(given) - yes
            if not waiting and not given:
                continue
            who = ROLE_NAME_ZH.get(step.role, "")
            zh.append(f"{step.label_zh}：待{who}定{len(waiting)}人，通过{yes}人，未通过{no}人")
            en.append(
                f"{step.label_en}: {len(waiting)} waiting for the {step.role.value.replace('_', ' ')}, "
                f"{yes} passed, {no} not"
            )
        categories: dict[str, int] = {}
        for v in self._verdicts[self._steps[0].stage].values() if self._steps else ():
            if v.category is not None:
                name = RELIEF_CATEGORY_ZH[v.category]
                categories[name] = categories.get(name, 0) + 1
        if categories:
            zh.append("类别：" + "，".join(f"{k}{c}人" for k, c in sorted(categories.items())))
        if phase not in (BUILDING, DECIDED) and until is not None:
            zh.append(f"等待{ROLE_NAME_ZH.get(role, '') if role else ''}，截止 {fmt(until)}")
            en.append(f"waiting until {fmt(until)}")
        if self._overdue:
            zh.append("已逾期：" + "，".join(p.fixed_date(k).label_zh for k in self._overdue))
            en.append("overdue: " + ", ".join(p.fixed_date(k).label_en for k in self._overdue))
        return "；".join(zh), "; ".join(en)

    def _describe(self) -> None:
        phase, role, until = self._phase()
        zh, en = self._words()
        workflow.set_current_details(f"**{zh}**\n\n{en}")
        p = self._inp.programme
        upsert_changed(
            self._published,
            [
                (search.PROGRAMME, p.code),
                (search.SEASON, self._inp.season),
                (search.ROUND, p.round_key),
                (search.COUNTY, self._inp.county_code),
                (search.STAGE, phase),
                (search.WAITING_FOR, role.value if role else ""),
                (search.NEXT_DEADLINE, until),
                (search.OVERDUE, bool(self._overdue)),
            ],
        )
