"""The student loan's contract (生源地信用助学贷款合同): sent to the bank as a file, the
moment the centre accepts the application; the student gets the receipt of acceptance
(受理证明) with its verification code. A renewal (续贷) reuses the first contract: the
bank's file names it and the year it now also covers.

Nobody acts on it: the step runs by itself (an activity writes the file and the
receipt, and tells the student the code, which never enters the workflow's history).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import Role
from models.steps.base import StepBase


class LoanContractStep(StepBase):
    kind: Literal["loan_contract"] = "loan_contract"
    stage: str = "loan_contract"
    label_zh: str = "合同报送银行"
    label_en: str = "contract sent to the bank"
    sent_to: Role = Role.LOAN_BANK
    withdrawable: ClassVar[bool] = True
    tells_office_on_entry: ClassVar[bool] = False
