"""A confirmation: one office says that something happened outside aidflow, proven by its
credential (R10) and recorded with its reference. The student loan waits for two: the
university confirms the student brought the receipt (回执确认), then the bank reports
the loan paid (放贷). A confirmation that does
not come is overdue at its fixed date and reported. The office may instead say it did
not happen (the student never enrolled, the bank declined), with its reason: the
application then ends rejected.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import Level, Role
from models.steps.base import StepBase


class ConfirmationStep(StepBase):
    kind: Literal["confirmation"] = "confirmation"
    decides: ClassVar[bool] = True
    withdrawable: ClassVar[bool] = False
    done_stage: ClassVar[str] = "confirmed"
    role: Role
    level: Level
    # What the office confirms, for the trail and the waiting words ("收到受理证明").
    event_zh: str
    event_en: str

    @property
    def actor_role(self) -> Role:
        return self.role

    @property
    def actor_level(self) -> Level:
        return self.level


class LoanPaidStep(ConfirmationStep):
    """The bank reports the loan paid (to the university, the rest to the student): the
    loan's last step, after which the application is ``lent``."""

    kind: Literal["loan_paid"] = "loan_paid"  # type: ignore[assignment]
    done_stage: ClassVar[str] = "lent"
