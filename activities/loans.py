"""The student loan's side effects: the contract file to the bank, the first contract
recorded (a renewal names it), and the receipt of acceptance with its verification code,
printed for the centre and sent to the student. Each is idempotent: a retried activity
writes the same file, records nothing twice and sends the message once."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio import activity

from integrations.bank import FileExchangeBank, atomic_write, inside
from models.loan import LoanContractOrder, LoanContractSent, contract_number
from store.loans import issue_receipt, record_contract, send_receipt_message
from store.sealing import Keys

CONTRACT_COLUMNS = (
    "contract_no",
    "kind",
    "year",
    "student_name",
    "student_national_id",
    "co_borrower_name",
    "co_borrower_relation",
    "co_borrower_national_id",
    "university_code",
    "university",
    "amount_cny",
    "tuition_cny",
    "lodging_cny",
    "bank_name",
    "account_holder",
    "account",
)


class LoanActivities:
    def __init__(self, engine: Engine, keys: Keys, files_dir: Path, bank_dir: Path) -> None:
        self._engine = engine
        self._keys = keys
        self._files = files_dir / "loans"
        # The loan bank's own exchange, beside the card payouts' (a different bank).
        self._bank = FileExchangeBank(bank_dir / "loans")

    @activity.defn(name="send_loan_contract")
    def send_contract(self, order: LoanContractOrder) -> LoanContractSent:
        loan = order.loan
        renewal = bool(loan.renewal_of)
        contract_no = loan.renewal_of or contract_number(
            order.workflow_id, order.county_code, order.year
        )
        name = f"loan-{contract_no}-{order.year}"
        self._bank.send(name, self._contract_csv(order, contract_no, renewal))
        now = datetime.now(UTC)
        if not renewal:
            record_contract(
                self._engine,
                contract_no=contract_no,
                national_id_hash=order.national_id_hash,
                workflow_id=order.workflow_id,
                county_code=order.county_code,
                year=order.year,
                at=now,
            )
        code = issue_receipt(
            self._engine,
            self._keys.loans,
            workflow_id=order.workflow_id,
            student_name=order.student_name,
            university=order.university,
            university_code=loan.university_code,
            year=order.year,
            amount_cny=order.amount_cny,
            accepted_on=order.accepted_on,
            at=now,
        )
        receipt = self._print_receipt(order, contract_no, renewal, code)
        recipient = (
            self._keys.open(order.phone_sealed)
            or self._keys.open(order.email_sealed)
            or f"applicant:{order.workflow_id}"
        )
        send_receipt_message(
            self._engine,
            workflow_id=order.workflow_id,
            recipient=recipient,
            subject="生源地信用助学贷款受理证明 / loan receipt of acceptance",
            body=f"{order.student_name}同学：县学生资助管理中心已受理您{order.year}年的生源地信用"
            f"助学贷款 {order.amount_cny} 元（合同 {contract_no}）。受理证明校验码：{code}。"
            "请持受理证明到学校报到，由学校确认回执。",
            at=now,
        )
        return LoanContractSent(
            contract_no=contract_no,
            renewal=renewal,
            bank_file=f"{name}.csv",
            receipt_file=receipt.name,
        )

    def _contract_csv(self, order: LoanContractOrder, contract_no: str, renewal: bool) -> str:
        loan, opened = order.loan, self._keys.open
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CONTRACT_COLUMNS)
        writer.writerow(
            (
                contract_no,
                "renewal" if renewal else "first",
                order.year,
                order.student_name,
                opened(order.national_id_sealed),
                loan.co_borrower.name,
                loan.co_borrower.relation,
                opened(loan.co_borrower.national_id_sealed),
                loan.university_code,
                order.university,
                order.amount_cny,
                loan.tuition_cny,
                loan.lodging_cny,
                order.bank_name,
                order.account_holder,
                opened(order.account_sealed),
            )
        )
        return out.getvalue()

    def _print_receipt(
        self, order: LoanContractOrder, contract_no: str, renewal: bool, code: str
    ) -> Path:
        """The receipt the centre prints and hands over (Chinese first): no identity
        number on it, the code that the university checks."""
        self._files.mkdir(parents=True, exist_ok=True)
        path = inside(self._files, f"receipt-{contract_no}-{order.year}.txt")
        text = (
            "生源地信用助学贷款受理证明 / Receipt of acceptance, origin-place student loan\n\n"
            f"学生 / student: {order.student_name}\n"
            f"高校 / university: {order.university} ({order.loan.university_code})\n"
            f"学年 / year: {order.year}\n"
            f"贷款金额 / amount: {order.amount_cny} 元 CNY\n"
            f"合同 / contract: {contract_no}{'（续贷 / renewal）' if renewal else ''}\n"
            f"受理日期 / accepted on: {order.accepted_on}\n"
            f"校验码 / verification code: {code}\n\n"
            "高校可凭校验码核验本证明：aidflow loan verify <校验码>\n"
            "A university checks this receipt with its code: aidflow loan verify <code>\n"
        )
        atomic_write(path, text)
        return path
