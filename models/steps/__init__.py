"""Step kinds of a programme, as data: one module a kind.

Adding a kind: its definition here (a model with a ``kind`` literal), its runner in
``workflows/steps``, and its simulated official in ``workers/officials``.
"""

from typing import Annotated

from pydantic import Field

from models.steps.base import Span, StepBase
from models.steps.confirmation import ConfirmationStep, LoanPaidStep
from models.steps.cross_check import CrossCheckStep
from models.steps.funds import FundsStep
from models.steps.loan_contract import LoanContractStep
from models.steps.notice import NoticeStep
from models.steps.payout import PayoutStep
from models.steps.receipt import ReceiptStep
from models.steps.review import ReviewStep
from models.steps.roster import RosterStep

Step = Annotated[
    ReviewStep
    | NoticeStep
    | FundsStep
    | PayoutStep
    | ReceiptStep
    | RosterStep
    | CrossCheckStep
    | LoanContractStep
    | ConfirmationStep
    | LoanPaidStep,
    Field(discriminator="kind"),
]

__all__ = [
    "ConfirmationStep",
    "CrossCheckStep",
    "FundsStep",
    "LoanContractStep",
    "LoanPaidStep",
    "NoticeStep",
    "PayoutStep",
    "ReceiptStep",
    "ReviewStep",
    "RosterStep",
    "Span",
    "Step",
    "StepBase",
]
