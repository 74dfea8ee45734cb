"""What every step kind's definition has: its stage, labels, who acts, and its fixed date.

A step kind is data in a programme (one of these models) plus a runner in
``workflows/steps`` that carries it out. The definition also owns what is pure
about the step: who acts on it, at which level, and how the planner projects it
onto the calendar (:meth:`StepBase.project`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from models.calendar import WorkingCalendar
from models.domain import Level, Role


class StepBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    label_zh: str
    label_en: str
    due: str  # key of a FixedDate of the programme
    # Whether the application may still be withdrawn while it is at this step.
    withdrawable: ClassVar[bool] = True
    # Whether the step reads the application's saved rows (money: the funds' roster,
    # the payout's account): it begins only once every event before it is saved.
    reads_saved_rows: ClassVar[bool] = False
    # The stage an application ends in when this step is its programme's last one.
    done_stage: ClassVar[str] = "done"
    # Stages an application can be in while this step is still its step (besides
    # ``stage``): a payout's returned payment waiting for its account's correction.
    stages_within: ClassVar[tuple[str, ...]] = ()
    # Whether the step may reject the application (a review, an upheld objection): past
    # the last such step an application is approved.
    decides: ClassVar[bool] = False
    # Whether its office is told when an application enters it (a cross-check's office
    # is told only of the applications the registers did not vouch for).
    tells_office_on_entry: ClassVar[bool] = True

    @property
    def registers(self) -> tuple[str, ...]:
        """The imported registers the step checks an application against (a cross-check's)."""
        return ()

    @property
    def actor_role(self) -> Role | None:
        """The office whose action the step waits for (None: nobody's)."""
        return None

    @property
    def actor_level(self) -> Level:
        """The level at which :attr:`actor_role` must hold the application's place."""
        return Level.COUNTY

    def project(self, calendar: WorkingCalendar, start: datetime, window_closes: datetime) -> Span:
        """The earliest end if the step opens at ``start`` and everyone acts at once."""
        return Span(start=start, end=start)


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime
    counted_days: tuple[date, ...] = ()
    provisional: bool = False
