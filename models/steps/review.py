"""A review (初审, 复核, 审批, 评审): one decision by the right office at the right place (R4)."""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import Level, Role
from models.steps.base import StepBase


class ReviewStep(StepBase):
    kind: Literal["review"] = "review"
    decides: ClassVar[bool] = True
    role: Role
    level: Level

    @property
    def actor_role(self) -> Role:
        return self.role

    @property
    def actor_level(self) -> Level:
        return self.level
