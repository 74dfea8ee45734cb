"""A decision on a roster (名册): one word from an office on a whole cohort's list.

The freshman grant's civil-affairs check and the provincial Youth League's
confirmation are taken on the list, not application by application: each student's
application waits at this step for its roster's word (a RosterWorkflow), which the
office gives once for everyone on it (``models/roster.py``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import Level, Role
from models.steps.base import StepBase


class RosterStep(StepBase):
    kind: Literal["roster"] = "roster"
    decides: ClassVar[bool] = True
    role: Role
    level: Level
    # The word names each eligible student's category (the civil-affairs check).
    names_category: bool = False
    # The office may let an imported register answer for the students it does not name
    # (automatic check, human confirmation): the civil-affairs bureau's rolls.
    checked_against: Literal["", "civil_affairs_rolls"] = ""

    @property
    def actor_role(self) -> Role:
        return self.role

    @property
    def actor_level(self) -> Level:
        return self.level
