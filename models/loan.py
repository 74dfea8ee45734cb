"""The origin-place student loan's intake rules (生源地信用助学贷款, PROCESS.md §4.4).

aidflow is the county's intake for a bank's credit loan: the student and a parent or
guardian are co-borrowers, both present at the county student-aid centre, on a working
day between 1 August and 15 September. The family asks for an amount: at least the
programme's minimum, at most the year's cap (the programme's dated amounts, R11) and at
most tuition plus lodging. Each rule refuses naming its limit.

Pure: the intake (``models/intake.py``, the gateway) calls these with what it knows.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.calendar import WorkingCalendar, next_working_day_at
from models.domain import DOCUMENT_NAME_ZH, DocumentKind
from models.privacy import national_id_problem
from models.text import Name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoBorrower(_Model):
    """The parent or guardian who borrows with the student (their identity sealed, R9)."""

    name: Name
    national_id: str
    relation: Literal["father", "mother", "guardian"]


class LoanRequest(_Model):
    """What the family asks for at the centre, with the university's fees."""

    requested_cny: int = Field(ge=1)
    tuition_cny: int = Field(ge=0)
    lodging_cny: int = Field(ge=0)
    co_borrower: CoBorrower
    # The university's national code (学校代码, 5 digits): the university that confirms
    # receipt of the loan is the one named here.
    university_code: str = Field(pattern=r"^\d{5}$")
    # A renewal (续贷) names the first contract: no new hardship certificate.
    renewal_of: str = Field(default="", pattern=r"^(\d{6}-\d{4}-[0-9A-F]{8})?$")


class SealedCoBorrower(_Model):
    """The co-borrower as a workflow carries it: the identity number sealed (R9)."""

    name: str
    relation: str
    national_id_masked: str
    national_id_hash: str
    national_id_sealed: str


class LoanRecord(_Model):
    """The loan as the application workflow carries it (its input): what was asked,
    the fees it is bounded by, the sealed co-borrower, the university, and the first
    contract a renewal reuses."""

    requested_cny: int
    tuition_cny: int
    lodging_cny: int
    co_borrower: SealedCoBorrower
    university_code: str
    renewal_of: str = ""
    # The student is on the registered-poor registry (showed the poverty handbook, was
    # served first); otherwise the township's hardship certificate was shown.
    registered_poor: bool = False


def contract_number(workflow_id: str, county_code: str, year: int) -> str:
    """A first contract's number: the county, the year, and 8 hex digits of the
    application's id (the same for a retried activity; no identity in it)."""
    digest = hashlib.sha256(workflow_id.encode()).hexdigest()[:8].upper()
    return f"{county_code[:6]}-{year}-{digest}"


CONTRACT_NUMBER = r"^\d{6}-\d{4}-[0-9A-F]{8}$"


def loan_document_problems(
    documents: dict[DocumentKind, int], *, registered_poor: bool, renewal: bool
) -> list[LoanProblem]:
    """The papers the centre sees beside the programme's checklist: a renewal brings its
    statement and no new proof of hardship; a first loan the township's hardship
    certificate, or for a registered-poor student the poverty handbook instead."""
    if renewal:
        needed = DocumentKind.RENEWAL_STATEMENT
    elif registered_poor:
        needed = DocumentKind.POVERTY_HANDBOOK
    else:
        needed = DocumentKind.HARDSHIP_CERTIFICATE
    if documents.get(needed, 0) >= 1:
        return []
    why = (
        "a renewal (续贷) brings its statement"
        if renewal
        else "a registered-poor student shows the poverty handbook"
        if registered_poor
        else "a student not on the registered-poor registry brings the township's certificate"
    )
    return [
        LoanProblem(
            field=f"documents.{needed.value}",
            problem=f"missing {DOCUMENT_NAME_ZH[needed]} ({needed.value}): {why}",
        )
    ]


class LoanTerms(_Model):
    """A loan programme's terms beside its dated caps (its ``amounts``)."""

    minimum_cny: int = Field(default=1000, ge=1)


class LoanProblem(_Model):
    field: str
    problem: str


def loan_problems(
    loan: LoanRequest | None, terms: LoanTerms, cap_cny: int, year: int, student_id: str
) -> list[LoanProblem]:
    """Every way the request breaks the loan's limits, each naming the limit."""
    if loan is None:
        return [
            LoanProblem(
                field="loan", problem="required: the amount asked for, the fees, the co-borrower"
            )
        ]
    problems: list[LoanProblem] = []
    asked = loan.requested_cny
    if asked < terms.minimum_cny:
        problems.append(
            LoanProblem(
                field="loan.requested_cny",
                problem=f"{asked:,} CNY is below the minimum of {terms.minimum_cny:,} CNY",
            )
        )
    if asked > cap_cny:
        problems.append(
            LoanProblem(
                field="loan.requested_cny",
                problem=f"{asked:,} CNY is over the cap of {cap_cny:,} CNY a year ({year})",
            )
        )
    fees = loan.tuition_cny + loan.lodging_cny
    if asked > fees:
        problems.append(
            LoanProblem(
                field="loan.requested_cny",
                problem=f"{asked:,} CNY is over tuition plus lodging "
                f"({loan.tuition_cny:,} + {loan.lodging_cny:,} = {fees:,} CNY)",
            )
        )
    id_problem = national_id_problem(loan.co_borrower.national_id)
    if id_problem:
        problems.append(LoanProblem(field="loan.co_borrower.national_id", problem=id_problem))
    elif loan.co_borrower.national_id.upper() == student_id.upper():
        problems.append(
            LoanProblem(
                field="loan.co_borrower.national_id",
                problem="is the student's own: the co-borrower is a parent or guardian",
            )
        )
    return problems


def working_day_problem(
    calendar: WorkingCalendar, at: datetime, opens_at: time = time(8, 0)
) -> LoanProblem | None:
    """The centre takes applications on working days only (R1): on another day, the
    refusal names the next working day."""
    day = calendar.day_of(at)
    if calendar.is_working_day(day):
        return None
    nxt = calendar.day_of(next_working_day_at(calendar, at, opens_at))
    return LoanProblem(
        field="submitted_at",
        problem=f"{day} is not a working day: the student-aid centre takes applications on "
        f"working days; the next is {nxt}",
    )


class LoanContractOrder(_Model):
    """What the contract activity needs: the application's sealed values (opened only
    for the bank's file) and the loan."""

    workflow_id: str
    year: int
    county_code: str
    student_name: str
    national_id_hash: str
    national_id_sealed: str
    phone_sealed: str = ""
    email_sealed: str = ""
    university: str
    bank_name: str
    account_holder: str
    account_sealed: str
    amount_cny: int
    loan: LoanRecord
    accepted_at: datetime
    accepted_on: str  # YYYY-MM-DD, Shanghai: the receipt's date


class LoanContractSent(_Model):
    """What the history keeps of it: the contract's number and the files' names; never
    the receipt's code (the student is sent it by the activity)."""

    contract_no: str
    renewal: bool
    bank_file: str
    receipt_file: str
