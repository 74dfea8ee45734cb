"""The simulated county's people, one desk a step kind (``aidflow simulate``, ``aidflow
demo`` and the fault harness all act through these).

``desk_for`` is the one place that maps a step's kind to its desk, as
``workflows/steps.runner_for`` maps it to its runner.
"""

from __future__ import annotations

from typing import Any

from models.programme import Programme
from workers.officials.base import Case, Desk, Floor, Requests, Season, SimulationStalled
from workers.officials.confirmation import ConfirmationDesk
from workers.officials.cross_check import CrossCheckDesk
from workers.officials.funds import FundsDesk
from workers.officials.loan_contract import LoanContractDesk
from workers.officials.notice import NoticeDesk, NoticePlan
from workers.officials.payout import PayoutDesk
from workers.officials.receipt import ReceiptDesk
from workers.officials.review import ReviewDesk
from workers.officials.roster import RosterDesk

DESKS: dict[str, type[Desk[Any]]] = {
    "review": ReviewDesk,
    "notice": NoticeDesk,
    "funds": FundsDesk,
    "payout": PayoutDesk,
    "receipt": ReceiptDesk,
    "roster": RosterDesk,
    "cross_check": CrossCheckDesk,
    "loan_contract": LoanContractDesk,
    "confirmation": ConfirmationDesk,
    "loan_paid": ConfirmationDesk,
}


def desk_for(step: Any, programme: Programme) -> Desk[Any]:
    return DESKS[step.kind](step, programme)


def desk_at(programme: Programme, stage: str) -> Desk[Any] | None:
    """The desk of the step an application in ``stage`` is at (None: it has ended)."""
    step = programme.step_at(stage)
    return desk_for(step, programme) if step is not None else None


__all__ = [
    "DESKS",
    "Case",
    "Desk",
    "Floor",
    "NoticePlan",
    "Requests",
    "Season",
    "SimulationStalled",
    "desk_at",
    "desk_for",
]
