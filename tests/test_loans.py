"""The origin-place student loan's intake rules and its receipts' verification codes
(PROCESS.md §4.4): each limit refused naming it; a code that checks, and one that does not."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from models.calendar import WorkingCalendar
from models.loan import CoBorrower, LoanRequest, LoanTerms, loan_problems, working_day_problem
from store.loans import issue_receipt, masked_name, receipt_code, verify_code
from tests.support import make_national_id
from tests.test_application_workflow import cst

STUDENT = make_national_id(701)
PARENT = make_national_id(702, birth="19750101")


def request(**overrides: Any) -> LoanRequest:
    fields: dict[str, Any] = {
        "requested_cny": 8000,
        "tuition_cny": 5000,
        "lodging_cny": 1200,
        "co_borrower": CoBorrower(name="父亲", national_id=PARENT, relation="father"),
        "university_code": "10357",
    }
    return LoanRequest.model_validate(fields | overrides)


def test_each_limit_is_refused_naming_it() -> None:
    terms = LoanTerms(minimum_cny=1000)
    over = loan_problems(request(), terms, 8000, 2027, STUDENT)
    assert [p.problem for p in over] == [
        "8,000 CNY is over tuition plus lodging (5,000 + 1,200 = 6,200 CNY)"
    ]
    capped = loan_problems(
        request(requested_cny=12000, tuition_cny=16000), terms, 8000, 2027, STUDENT
    )
    assert [p.problem for p in capped] == ["12,000 CNY is over the cap of 8,000 CNY a year (2027)"]
    small = loan_problems(request(requested_cny=500), terms, 8000, 2027, STUDENT)
    assert [(p.field, p.problem) for p in small] == [
        ("loan.requested_cny", "500 CNY is below the minimum of 1,000 CNY")
    ]
    assert loan_problems(request(requested_cny=6200), terms, 8000, 2027, STUDENT) == []
    own = loan_problems(
        request(
            requested_cny=6000,
            co_borrower=CoBorrower(name="本人", national_id=STUDENT, relation="guardian"),
        ),
        terms,
        8000,
        2027,
        STUDENT,
    )
    assert [p.field for p in own] == ["loan.co_borrower.national_id"]
    assert [p.field for p in loan_problems(None, terms, 8000, 2027, STUDENT)] == ["loan"]


def test_the_centre_takes_applications_on_working_days_naming_the_next(
    calendar: WorkingCalendar,
) -> None:
    assert working_day_problem(calendar, cst(8, 6, 10)) is None  # a Friday
    saturday = working_day_problem(calendar, cst(8, 7, 10))
    assert saturday is not None and saturday.field == "submitted_at"
    assert saturday.problem.endswith("the next is 2027-08-09")
    # National Day 2026 (1–7 October): the next working day is the 8th.
    holiday = working_day_problem(calendar, cst(10, 1, 10, y=2026))
    assert holiday is not None and holiday.problem.endswith("the next is 2026-10-08")


def test_a_receipt_code_checks_and_a_wrong_one_does_not(engine: Engine) -> None:
    key = b"k" * 32
    wf = "student-loan/2027/341225/abc"

    def issue(at: Any) -> str:
        return issue_receipt(
            engine,
            key,
            workflow_id=wf,
            student_name="王小明",
            university="安徽大学",
            university_code="10357",
            year=2027,
            amount_cny=6000,
            accepted_on="2027-08-10",
            at=at,
        )

    code = issue(cst(8, 10, 10))
    # The same application: the same code, recorded once (a retry issues nothing new).
    assert code == receipt_code(key, wf) == issue(cst(8, 11, 10))
    assert len(code) == 19 and code.count("-") == 3
    seen = verify_code(engine, code.lower().replace("-", " "))
    assert seen is not None
    assert (seen.student, seen.university, seen.year, seen.amount_cny) == (
        "王*明",
        "安徽大学",
        2027,
        6000,
    )
    assert verify_code(engine, code[:-1] + ("A" if code[-1] != "A" else "B")) is None
    # Another deployment's secret gives another code: a code cannot be made up.
    assert receipt_code(b"x" * 32, wf) != code
    assert masked_name("张三") == "张*" and masked_name("欧阳娜娜") == "欧**娜"
