"""DatedTasksWorkflow: a county's dated tasks of a programme's year (models/tasks.py).

Each task has a date and an office that answers for it. The office is reminded some
days before; it reports the task done (``report_done``, proven by its credential,
R10); a task not reported by its date is overdue: the offices are told, and operators
find it in the Web UI (``Overdue``, ``Stage``: the first open task, ``WaitingFor``,
``NextDeadline``). A task done late is still taken, and stays marked late. The workflow
ends when every task is done, or at the end of the year with the missed ones on record.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.clock import until
from workflows.steps import Refused
from workflows.steps.base import AuthorityProblem, fmt
from workflows.visibility import published_at_start, upsert_changed

with workflow.unsafe.imports_passed_through():
    from activities.report import ReportActivities
    from activities.workflow_calendar import CalendarActivities
    from models import search
    from models.application import request_key
    from models.domain import ROLE_NAME_ZH
    from models.tasks import (
        DatedTasksInput,
        TaskDone,
        TaskNoticeRequest,
        TaskState,
        TaskTimesRequest,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ALL_DONE = "tasks_done"


@workflow.defn(failure_exception_types=[ValidationError])
class DatedTasksWorkflow:
    @workflow.init
    def __init__(self, inp: DatedTasksInput) -> None:
        self._inp = inp
        self._tasks: dict[str, TaskState] = {}
        self._answers: dict[str, TaskState] = {}  # by request id (a repeat: the same answer)
        self._request_keys: dict[str, str] = {}
        self._published: dict[str, Any] = published_at_start()

    @workflow.run
    async def run(self, inp: DatedTasksInput) -> list[TaskState]:
        times = await workflow.execute_local_activity_method(
            CalendarActivities.compute_task_times,
            TaskTimesRequest(plan=inp.plan, year=inp.year, days_before=inp.reminder_days_before),
            start_to_close_timeout=timedelta(seconds=10),
            summary="the tasks' dates and reminders",
        )
        remind_at = {t.key: t.remind_at for t in times}
        due_at = {t.key: t.due_at for t in times}
        for task in inp.plan.tasks:
            self._tasks.setdefault(
                task.key,
                TaskState(
                    key=task.key,
                    label_zh=task.label_zh,
                    label_en=task.label_en,
                    due_at=due_at[task.key],
                    responsible=task.responsible.value,
                ),
            )
        self._describe()
        await asyncio.gather(*(self._follow(key, remind_at[key]) for key in self._tasks))
        return list(self._tasks.values())

    async def _follow(self, key: str, remind_at: datetime) -> None:
        task = self._tasks[key]
        # Reminded unless done first; a reminder whose time passed before the workflow
        # began has nothing to remind of (compared with the start: the history's, not a
        # task's clock, workflows/clock.py).
        started = workflow.info().workflow_start_time
        if remind_at > started and not await self._done_by(task, remind_at):
            await self._tell(key, "reminder")
            task.reminded = True
        if not await self._done_by(task, task.due_at):
            task.overdue = True
            self._describe()
            await self._tell(key, "overdue")
            year_end = task.due_at.replace(month=12, day=31) + timedelta(days=1)
            await self._done_by(task, year_end)

    async def _done_by(self, task: TaskState, at: datetime) -> bool:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: task.done_at is not None,
                timeout=until(at),
                timeout_summary=f"{task.label_en} reported done (by {fmt(at)})",
            )
        return task.done_at is not None

    async def _tell(self, key: str, kind: str) -> None:
        inp = self._inp
        await workflow.execute_activity_method(
            ReportActivities.send_task_notice,
            TaskNoticeRequest(
                plan=inp.plan,
                year=inp.year,
                county_code=inp.county_code,
                key=key,
                kind=kind,
            ),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_RETRY,
            summary=f"{kind}: {self._tasks[key].label_en}",
        )

    # ------------------------------------------------------------------ requests

    @workflow.update
    def report_done(self, req: TaskDone) -> TaskState:
        kept = self._answers.get(req.request_id)
        if kept is not None:
            return kept
        task = self._tasks[req.key]
        task.done_at, task.done_by = workflow.now(), req.actor
        task.note, task.evidence_ref = req.note, req.evidence_ref
        self._answers[req.request_id] = task.model_copy()
        self._request_keys[req.request_id] = request_key(req)
        self._describe()
        return self._answers[req.request_id]

    @report_done.validator
    def _validate_done(self, req: TaskDone) -> None:
        if req.request_id in self._answers:
            if self._request_keys.get(req.request_id) != request_key(req):
                raise Refused(f"request id {req.request_id} was already used for another report")
            return
        task = self._tasks.get(req.key)
        if task is None:
            known = ", ".join(self._tasks) or "(none yet)"
            raise Refused(f"key: no task {req.key!r} (the tasks: {known})")
        problems: list[str] = []
        if req.actor.role.value != task.responsible:
            problems.append(
                AuthorityProblem(
                    f"role {req.actor.role.value} may not report {task.key}; it needs {task.responsible}"
                )
            )
        if req.actor.place_code != self._inp.county_code:
            problems.append(
                AuthorityProblem(
                    f"place {req.actor.place_code or '(none)'} is not the county {self._inp.county_code}"
                )
            )
        if task.done_at is not None:
            problems.append(f"{task.key} was already reported done at {fmt(task.done_at)}")
        if problems:
            raise Refused(problems)

    @workflow.query
    def tasks(self) -> list[TaskState]:
        return list(self._tasks.values())

    # ------------------------------------------------------------------ operators

    def _describe(self) -> None:
        open_ = sorted(
            (t for t in self._tasks.values() if t.done_at is None), key=lambda t: t.due_at
        )
        first = open_[0] if open_ else None
        p = self._inp.plan
        lines_zh = [f"{p.name_zh}{self._inp.year}年工作任务"]
        lines_en = [f"{p.name_en} {self._inp.year}: dated tasks"]
        for t in sorted(self._tasks.values(), key=lambda t: t.due_at):
            late = "（逾期）" if t.overdue else ""
            state_zh = (
                f"已完成 {fmt(t.done_at)}{late}" if t.done_at else f"截止 {fmt(t.due_at)}{late}"
            )
            state_en = (
                f"done {fmt(t.done_at)}{' late' if t.overdue else ''}"
                if t.done_at
                else f"due {fmt(t.due_at)}{', overdue' if t.overdue else ''}"
            )
            who = ROLE_NAME_ZH.get(p.task(t.key).responsible, t.responsible)
            lines_zh.append(f"{t.label_zh}（{who}）：{state_zh}")
            lines_en.append(f"{t.label_en} ({t.responsible.replace('_', ' ')}): {state_en}")
        workflow.set_current_details(f"**{'；'.join(lines_zh)}**\n\n{'; '.join(lines_en)}")
        upsert_changed(
            self._published,
            [
                (search.PROGRAMME, p.code),
                (search.SEASON, self._inp.year),
                (search.COUNTY, self._inp.county_code),
                (search.STAGE, first.key if first else ALL_DONE),
                (search.WAITING_FOR, first.responsible if first else ""),
                (search.NEXT_DEADLINE, first.due_at if first else None),
                (
                    search.OVERDUE,
                    any(t.overdue and t.done_at is None for t in self._tasks.values()),
                ),
            ],
        )
