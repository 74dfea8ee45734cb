"""Step runners: one module a step kind, each carrying out its step of an application.

``runner_for`` is the one place that maps a step's kind to its runner.
"""

from __future__ import annotations

from typing import Any

from workflows.steps.base import Application, Refused, StepRunner
from workflows.steps.confirmation import ConfirmationRunner
from workflows.steps.cross_check import CrossCheckRunner
from workflows.steps.funds import FundsRunner
from workflows.steps.loan_contract import LoanContractRunner
from workflows.steps.notice import NoticeRunner
from workflows.steps.payout import PAYMENT_LIMIT, PaymentState, PayoutRunner
from workflows.steps.receipt import ReceiptRunner
from workflows.steps.review import ReviewRunner
from workflows.steps.roster import RosterRunner

RUNNERS: dict[str, type[StepRunner[Any]]] = {
    "review": ReviewRunner,
    "notice": NoticeRunner,
    "funds": FundsRunner,
    "payout": PayoutRunner,
    "receipt": ReceiptRunner,
    "roster": RosterRunner,
    "cross_check": CrossCheckRunner,
    "loan_contract": LoanContractRunner,
    "confirmation": ConfirmationRunner,
    "loan_paid": ConfirmationRunner,
}


def runner_for(app: Application, step: Any) -> StepRunner[Any]:
    return RUNNERS[step.kind](app, step)


__all__ = ["PAYMENT_LIMIT", "Application", "PaymentState", "Refused", "StepRunner", "runner_for"]
