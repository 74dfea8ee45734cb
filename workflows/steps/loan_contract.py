"""The student loan's contract step: the contract goes to the bank as a file, the
student gets the receipt of acceptance with its verification code (sent by the activity:
the code never enters this history), and the application goes on to wait for the
university and the bank."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.steps.base import StepRunner, local_day

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM
    from models.domain import Role
    from models.loan import LoanContractOrder, LoanContractSent
    from models.steps import LoanContractStep

_SEND = timedelta(seconds=60)


class LoanContractRunner(StepRunner[LoanContractStep]):
    async def run(self) -> None:
        app = self.app
        inp, a = app.inp, app.inp.applicant
        loan = inp.loan
        if loan is None:  # intake refuses a loan programme's form without one
            app.reject("no loan request in the application")
            return
        # By name (activities/loans.py): the workflow never imports the bank's side.
        sent = await workflow.execute_activity(
            "send_loan_contract",
            LoanContractOrder(
                workflow_id=inp.workflow_id,
                year=inp.season,
                county_code=inp.places.county_code,
                student_name=a.name,
                national_id_hash=a.national_id_hash,
                national_id_sealed=a.national_id_sealed,
                phone_sealed=a.phone_sealed,
                email_sealed=a.email_sealed,
                university=a.university,
                bank_name=a.bank_name,
                account_holder=a.account_holder,
                account_sealed=a.account_sealed,
                amount_cny=inp.amount_cny,
                loan=loan,
                accepted_at=inp.submitted_at,
                accepted_on=local_day(inp.submitted_at).isoformat(),
            ),
            result_type=LoanContractSent,
            start_to_close_timeout=_SEND,
            summary=f"{self.step.label_en}: {inp.amount_cny} CNY",
        )
        kind_zh, kind_en = (
            ("续贷，沿用合同", "renewal of contract")
            if sent.renewal
            else (
                "合同",
                "contract",
            )
        )
        app.record(
            "loan_contract",
            SYSTEM,
            f"{kind_zh} {sent.contract_no} 已报送银行，受理证明及校验码已发给学生 / "
            f"{kind_en} {sent.contract_no} sent to the bank ({sent.bank_file}); the receipt of "
            "acceptance and its verification code were sent to the student",
            sent.model_dump(mode="json"),
        )

    def waiting_for(self) -> Role:
        return Role.SYSTEM

    def details(self) -> tuple[str, str]:
        return "正在向银行报送贷款合同", "sending the loan contract to the bank"
