"""Card payout (打卡发放, R7): paid in batches onto the 一卡通 account, returns re-paid."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from models.domain import Role
from models.steps.base import StepBase


class PayoutStep(StepBase):
    kind: Literal["payout"] = "payout"
    reads_saved_rows: ClassVar[bool] = True
    stage: str = "awaiting_payment"
    label_zh: str = "等待打卡发放"
    label_en: str = "awaiting card payout"
    paid_by: Role = Role.COUNTY_EDUCATION_BUREAU
    limit_calendar_days: int = Field(ge=1)  # after the funds arrive (R7)
    # Who corrects the account after a returned payment (at the application's village).
    account_corrected_by: Role = Role.VILLAGE_COMMITTEE
    # Who is told when the payment limit passes unpaid.
    told_when_late: tuple[Role, ...] = (Role.COUNTY_EDUCATION_BUREAU,)
    withdrawable: ClassVar[bool] = False
    done_stage: ClassVar[str] = "paid"
    stages_within: ClassVar[tuple[str, ...]] = ("awaiting_account_correction",)

    @property
    def actor_role(self) -> Role:
        return self.paid_by
