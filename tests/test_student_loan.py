"""The origin-place student loan (PROCESS.md §4.4), 2027, end to end on the dev server.

Two students come to the county student-aid centre: one of a registered-poor household
(served first, shows the poverty handbook), one not (brings the township's hardship
certificate). A Saturday, a request over the cap and one over the fees, and missing
papers are refused, each naming why. Both are accepted on a Monday: the contracts go to
the bank as files and each student gets a receipt whose code a university checks (a
wrong code, or another university's, learns nothing). The first student's university
confirms receipt, the bank reports the loan paid: it is lent. The second's university
never confirms: overdue at its date. A third student, who borrowed in 2026, renews on
that first contract (a renewal statement, no hardship papers); a renewal naming another
student's contract is refused.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from models.application import Actor, DecisionRequest
from models.domain import DecisionKind, DocumentKind, Role
from models.loan import CoBorrower, LoanRequest
from store.loans import check_in, queue, receipt_code, verify_code
from store.tables import OutboxMessage
from tests.conftest import AppStack, Registry
from tests.support import COUNTY, county_official, form, make_national_id
from tests.test_application_workflow import Case, cst, rid
from workers.client import Refused

LOAN = "student-loan"
MONDAY = cst(8, 9, 10)  # 2027-08-09
SATURDAY = cst(8, 7, 10)
UNIVERSITY = "10357"  # 安徽大学
CENTRE = Actor(
    id="centre-1", name="县学生资助管理中心", role=Role.COUNTY_EDUCATION_BUREAU, place_code=COUNTY
)
BANK = Actor(id="cdb-1", name="国家开发银行", role=Role.LOAN_BANK, place_code=COUNTY)


def university(code: str = UNIVERSITY) -> Actor:
    return Actor(id=f"univ-{code}", name="高校资助中心", role=Role.UNIVERSITY, place_code=code)


def loan_form(serial: int, *, papers: DocumentKind, season: int = 2027, **loan: Any) -> Any:
    request = {
        "requested_cny": 6000,
        "tuition_cny": 5000,
        "lodging_cny": 1200,
        "co_borrower": CoBorrower(
            name=f"家长{serial}",
            national_id=make_national_id(serial, "19760101"),
            relation="father",
        ),
        "university_code": UNIVERSITY,
    } | loan
    return form(
        serial,
        season=season,
        programme=LOAN,
        loan=LoanRequest.model_validate(request),
        documents={
            DocumentKind.APPLICATION_FORM: 1,
            DocumentKind.ADMISSION_LETTER: 1,
            DocumentKind.IDENTITY_CARD: 1,
            DocumentKind.HOUSEHOLD_REGISTER_STUDENT: 1,
            DocumentKind.CO_BORROWER_IDENTITY_CARD: 1,
            DocumentKind.CO_BORROWER_HOUSEHOLD_REGISTER: 1,
            papers: 1,
        },
    )


async def test_student_loan_from_the_centre_to_the_bank_and_a_renewal(
    app_stack: AppStack, ts_env: WorkflowEnvironment, registry: Registry
) -> None:
    api, engine, keys = app_stack.api, app_stack.engine, app_stack.deps.keys
    poor, other, renewing = 801, 802, 803
    registry.members.pop(keys.hash_id(make_national_id(other)))

    # The queue: the registered-poor student is served first, whoever came first.
    for serial, registered in ((other, False), (poor, True)):
        check_in(
            engine,
            county_code=COUNTY,
            national_id_hash=keys.hash_id(make_national_id(serial)),
            student_name=f"学生{serial}",
            registered_poor=registered,
            at=cst(8, 9, 8, serial - 800),
        )
    assert [(e.student, e.registered_poor) for e in queue(engine, COUNTY)] == [
        ("学***1", True),
        ("学***2", False),
    ]

    # Refused, each naming why.
    with pytest.raises(Refused, match=r"2027-08-07 is not a working day.*the next is 2027-08-09"):
        await api.submit(
            loan_form(poor, papers=DocumentKind.POVERTY_HANDBOOK), submitted_by=CENTRE, now=SATURDAY
        )
    with pytest.raises(Refused) as over:
        await api.submit(
            loan_form(
                poor,
                papers=DocumentKind.POVERTY_HANDBOOK,
                requested_cny=17000,
                tuition_cny=16000,
                lodging_cny=1200,
            ),
            submitted_by=CENTRE,
            now=MONDAY,
        )
    assert "17,000 CNY is over the cap of 16,000 CNY a year (2027)" in str(over.value)
    with pytest.raises(Refused, match=r"over tuition plus lodging \(5,000 \+ 1,200 = 6,200 CNY\)"):
        await api.submit(
            loan_form(poor, papers=DocumentKind.POVERTY_HANDBOOK, requested_cny=7000),
            submitted_by=CENTRE,
            now=MONDAY,
        )
    with pytest.raises(Refused, match=r"documents\.poverty_handbook: missing 扶贫手册"):
        await api.submit(
            loan_form(poor, papers=DocumentKind.HARDSHIP_CERTIFICATE),
            submitted_by=CENTRE,
            now=MONDAY,
        )
    with pytest.raises(Refused, match=r"documents\.hardship_certificate: missing 家庭经济困难证明"):
        await api.submit(
            loan_form(other, papers=DocumentKind.POVERTY_HANDBOOK), submitted_by=CENTRE, now=MONDAY
        )
    with pytest.raises(Refused, match="submitted by the county_education_bureau, not applicant"):
        await api.submit(loan_form(poor, papers=DocumentKind.POVERTY_HANDBOOK), now=MONDAY)

    # Accepted: the contract goes to the bank, the receipt and its code to the student.
    lent = Case(
        api,
        ts_env,
        await api.submit(
            loan_form(poor, papers=DocumentKind.POVERTY_HANDBOOK), submitted_by=CENTRE, now=MONDAY
        ),
    )
    silent = Case(
        api,
        ts_env,
        await api.submit(
            loan_form(other, papers=DocumentKind.HARDSHIP_CERTIFICATE, requested_cny=5000),
            submitted_by=CENTRE,
            now=MONDAY,
        ),
    )
    assert queue(engine, COUNTY) == []  # both served
    st = await lent.at_stage("university_receipt")
    assert st.amount_cny == 6000 and st.waiting_for == "university"
    assert "university (10357) to confirm" in st.details_en
    await silent.at_stage("university_receipt")
    sent = next(e for e in await api.trail(lent.wf) if e.kind == "loan_contract")
    contract = sent.detail["contract_no"]
    assert sent.detail["renewal"] is False and contract.startswith("341225-2027-")
    bank_file = app_stack.deps.bank_dir / "loans" / "outbox" / sent.detail["bank_file"]
    row = next(csv.DictReader(io.StringIO(bank_file.read_text(encoding="utf-8"))))
    # The bank needs both identities in full; aidflow's own records never hold them.
    assert row["student_national_id"] == make_national_id(poor)
    assert row["co_borrower_national_id"] == make_national_id(poor, "19760101")
    assert (row["kind"], row["amount_cny"]) == ("first", "6000")
    code = receipt_code(keys.loans, lent.wf)
    history = (await lent.handle.fetch_history()).to_json()
    assert code not in history and make_national_id(poor, "19760101") not in history
    with engine.connect() as conn:
        told = conn.execute(
            select(OutboxMessage.__table__).where(  # type: ignore[attr-defined]
                OutboxMessage.__table__.c.dedupe_key == f"{lent.wf}:loan-receipt"  # type: ignore[attr-defined]
            )
        ).one()
    assert code in told.body and told.recipient == "13800000801"

    # A university checks the code: the masked student, the year, the amount; no more.
    seen = verify_code(engine, code.lower())
    assert seen is not None
    assert (seen.student, seen.university_code, seen.year, seen.amount_cny) == (
        "学***1",
        UNIVERSITY,
        2027,
        6000,
    )
    assert verify_code(engine, code[:-1] + ("A" if code[-1] != "A" else "B")) is None

    # Only that university confirms receipt; then only the bank reports the loan paid.
    def word(actor: Actor, stage: str, reason: str) -> DecisionRequest:
        return DecisionRequest(
            request_id=rid(),
            actor=actor,
            stage=stage,
            decision=DecisionKind.APPROVE,
            reason=reason,
        )

    with pytest.raises(Refused, match="place 10358 is not the application's university 10357"):
        await api.decide(lent.wf, word(university("10358"), "university_receipt", "回执-1"))
    with pytest.raises(Refused, match="reason is required: the reference"):
        await api.decide(lent.wf, word(university(), "university_receipt", ""))
    await api.decide(lent.wf, word(university(), "university_receipt", "回执-2027-0915"))
    st = await lent.at_stage("awaiting_disbursement")
    assert st.waiting_for == "loan_bank"
    with pytest.raises(Refused, match="needs loan_bank"):
        await api.decide(lent.wf, word(county_official(), "awaiting_disbursement", "x"))
    await api.decide(lent.wf, word(BANK, "awaiting_disbursement", "放款-CDB-2027-1"))
    st = await lent.at_stage("lent")
    assert st.waiting_for == ""

    # The other's university never confirms: overdue at its date, and still open.
    await silent.advance_to(cst(11, 1, 9))
    st = await silent.wait_for(lambda s: "receipt_confirmed" in s.overdue, "overdue")
    assert st.stage == "university_receipt"

    # A later year of study: a renewal on the first contract (2026's), with its
    # statement and no hardship papers; one naming another student's contract is refused.
    first = Case(
        api,
        ts_env,
        await api.submit(
            loan_form(renewing, season=2026, papers=DocumentKind.POVERTY_HANDBOOK),
            submitted_by=CENTRE,
            now=cst(8, 10, 10, y=2026),
        ),
    )
    await first.at_stage("university_receipt")
    contract = next(e for e in await api.trail(first.wf) if e.kind == "loan_contract")
    first_contract = contract.detail["contract_no"]
    assert first_contract.startswith("341225-2026-")
    renewal = loan_form(renewing, papers=DocumentKind.RENEWAL_STATEMENT, renewal_of=first_contract)
    renewal.documents.pop(DocumentKind.ADMISSION_LETTER)
    renewal.documents[DocumentKind.STUDENT_CARD] = 1
    with pytest.raises(
        Refused, match=f"loan.renewal_of: {first_contract} is not a loan contract of"
    ):
        await api.submit(
            loan_form(803 + 1, papers=DocumentKind.RENEWAL_STATEMENT, renewal_of=first_contract),
            submitted_by=CENTRE,
            now=MONDAY,
        )
    renewed = Case(api, ts_env, await api.submit(renewal, submitted_by=CENTRE, now=MONDAY))
    await renewed.at_stage("university_receipt")
    again = next(e for e in await api.trail(renewed.wf) if e.kind == "loan_contract")
    assert (again.detail["contract_no"], again.detail["renewal"]) == (first_contract, True)
    assert "续贷，沿用合同" in again.summary
    bank_file = app_stack.deps.bank_dir / "loans" / "outbox" / again.detail["bank_file"]
    assert next(csv.DictReader(io.StringIO(bank_file.read_text(encoding="utf-8"))))["kind"] == (
        "renewal"
    )
    await lent.save_history("student_loan_lent")
