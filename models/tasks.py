"""A programme's dated tasks of a year (计划任务): each reported done by its office,
reminded before its date, overdue after it (PROCESS.md §4.3: the freshman grant's
implementing rules by mid-May and publicity in May–June; §5: the pairing plan's dates).

One DatedTasksWorkflow per programme, year and county (``workflows/tasks.py``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models.application import Actor
from models.cases import CaseProgramme
from models.domain import Role
from models.ids import tasks_workflow_id
from models.programme import FixedDate, Programme
from models.text import Line, LongText, RequestId

__all__ = ["DatedTasksInput", "TaskDone", "TaskNoticeRequest", "TaskPlan", "TaskState", "task_plan"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskPlan(_Model):
    """A programme's dated tasks of a year, whatever its kind (an application programme's,
    a case programme's: the pairing plan's calendar)."""

    code: str
    name_zh: str
    name_en: str
    tasks: tuple[FixedDate, ...]
    always_told: tuple[Role, ...] = ()

    def task(self, key: str) -> FixedDate:
        return next(t for t in self.tasks if t.key == key)


def task_plan(programme: Programme | CaseProgramme) -> TaskPlan:
    return TaskPlan(
        code=programme.code,
        name_zh=programme.name_zh,
        name_en=programme.name_en,
        tasks=programme.dated_tasks,
        always_told=programme.always_told if isinstance(programme, Programme) else (),
    )


class DatedTasksInput(_Model):
    plan: TaskPlan
    year: int
    county_code: str
    # Reminded this many calendar days before each task's date (09:00).
    reminder_days_before: int = Field(default=7, ge=0, le=60)

    @property
    def workflow_id(self) -> str:
        return tasks_workflow_id(self.plan.code, self.year, self.county_code)


class TaskDone(_Model):
    """The responsible office reports a task done (R10: its credential is the actor)."""

    request_id: RequestId
    actor: Actor
    key: str = Field(min_length=1, max_length=40)
    note: LongText = ""
    evidence_ref: Line = ""  # the document's number, or a file's SHA-256


class TaskState(_Model):
    key: str
    label_zh: str
    label_en: str
    due_at: datetime
    responsible: str
    done_at: datetime | None = None
    done_by: Actor | None = None
    note: str = ""
    evidence_ref: str = ""
    overdue: bool = False  # its date passed before it was done (kept once done late)
    reminded: bool = False


class TaskNoticeRequest(_Model):
    """A reminder before a task's date, or the word that it is overdue."""

    plan: TaskPlan
    year: int
    county_code: str
    key: str
    kind: str = Field(pattern=r"^(reminder|overdue)$")


class TaskTimesRequest(_Model):
    plan: TaskPlan
    year: int
    days_before: int


class TaskTime(_Model):
    key: str
    due_at: datetime  # 24:00 of the task's date
    remind_at: datetime  # 09:00, days_before calendar days before it
