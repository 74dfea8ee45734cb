"""The origin-place student loan's intake rules (生源地信用助学贷款, PROCESS.md §4.4).

aidflow is the county's intake for a bank's credit loan: the student and a parent or
guardian are co-borrowers, both present at the county student-aid centre, on a working
day between 1 August and 15 September. The family asks for an amount: at least the
programme's minimum, at most the year's cap (the programme's dated amounts, R11) and at
most tuition plus lodging. Each rule refuses naming its limit.

Pure: the intake (``models/intake.py``, the gateway) calls these with what it knows.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.calendar import WorkingCalendar, next_working_day_at
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
    renewal_of: str = Field(default="", max_length=64)


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
