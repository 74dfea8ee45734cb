"""Funds (R7): the programme's office asks for them; their arrival releases the payout."""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import Role
from models.steps.base import StepBase


class FundsStep(StepBase):
    kind: Literal["funds"] = "funds"
    reads_saved_rows: ClassVar[bool] = True
    stage: str = "awaiting_funds"
    label_zh: str = "等待资金到位"
    label_en: str = "awaiting funds"
    requested_by: Role = Role.COUNTY_EDUCATION_BUREAU
    provided_by: Role = Role.COUNTY_LEADING_GROUP
    # Who may report the funds' arrival (the provider, or the finance bureau that transfers).
    arrival_reported_by: tuple[Role, ...] = (Role.COUNTY_FINANCE, Role.COUNTY_LEADING_GROUP)

    @property
    def actor_role(self) -> Role:
        return self.provided_by
