"""An automatic cross-check against imported registries (Rain and Dew's 系统比对).

The check runs by itself as soon as the application reaches the step: the household
against the registered-poor registry (its latest round), the child against the
vocational enrolment registry (中职 / 高职, years 1–3), each a dated snapshot whose
date the check records. An application that passes goes on; one that does not is
**not refused**: it waits for the office of the step (the county leading group) to
confirm or reject it, with a reason either way (incomplete data, a household that
fell back into poverty and is not in the registry yet).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from models.domain import EducationLevel, Level, Role
from models.steps.base import StepBase

Register = Literal["poor_households", "vocational_enrolment"]


class CrossCheckStep(StepBase):
    kind: Literal["cross_check"] = "cross_check"
    decides: ClassVar[bool] = True
    tells_office_on_entry: ClassVar[bool] = False
    role: Role  # who confirms or rejects an application that failed the check
    level: Level
    against: tuple[Register, ...] = Field(min_length=1)
    # The vocational enrolment the child must hold (levels and years of study).
    education_levels: tuple[EducationLevel, ...] = (
        EducationLevel.SECONDARY_VOCATIONAL,
        EducationLevel.HIGHER_VOCATIONAL,
    )
    years_of_study: tuple[int, ...] = (1, 2, 3)

    @property
    def registers(self) -> tuple[str, ...]:
        return self.against

    @property
    def actor_role(self) -> Role:
        return self.role

    @property
    def actor_level(self) -> Level:
        return self.level
