"""A signed-receipt step (签领): the student signs for the grant in person, the office
checks the original documents and keeps a copy, and records where the money came from."""

from __future__ import annotations

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner

with workflow.unsafe.imports_passed_through():
    from models.application import ReceiptRecord, RequestResult
    from models.domain import DOCUMENT_NAME_ZH, ROLE_NAME_ZH
    from models.records import NotificationIntent
    from models.steps import ReceiptStep


class ReceiptRunner(StepRunner[ReceiptStep]):
    received = False

    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.received or self.app.closed)

    def details(self) -> tuple[str, str]:
        docs = "、".join(DOCUMENT_NAME_ZH[d] for d in self.step.documents_checked)
        return (
            f"等待学生本人到{ROLE_NAME_ZH[self.step.handed_out_by]}签领（查验{docs}原件）",
            f"waiting for the student to sign for the grant in person at the "
            f"{self.step.handed_out_by.value.replace('_', ' ')} (originals checked: "
            f"{', '.join(d.value for d in self.step.documents_checked)})",
        )

    def settled(self) -> bool:
        return self.received

    def check_receipt(self, req: ReceiptRecord) -> None:
        step = self.step
        problems = self.check_place(req.actor, step.handed_out_by, step.level, "record a receipt")
        missing = [d.value for d in step.documents_checked if d not in req.documents_checked]
        if missing:
            problems.append(
                f"documents_checked: the originals of {', '.join(missing)} must be checked"
            )
        if not req.copy_kept:
            problems.append("copy_kept: a copy of the checked documents must be kept")
        if req.funding_source not in step.funding_sources:
            problems.append(
                f"funding_source: {req.funding_source!r} is not one of {', '.join(step.funding_sources)}"
            )
        if problems:
            raise Refused(problems)

    def apply_receipt(self, req: ReceiptRecord) -> RequestResult:
        app = self.app
        self.received = True
        amount = app.inp.amount_cny
        app.record(
            "receipt",
            req.actor,
            f"学生本人已签领 {amount} 元（资金来源：{req.funding_source}，查验人 {req.actor.name}） / "
            f"signed for {amount} CNY in person (funding: {req.funding_source}; checked by {req.actor.id})",
            {
                "request_id": req.request_id,
                "amount_cny": amount,
                "funding_source": req.funding_source,
                "documents_checked": [d.value for d in req.documents_checked],
                "copy_kept": req.copy_kept,
                "checked_by": req.actor.id,
                "sheet_ref": req.sheet_ref,
            },
            notify=[NotificationIntent(audience="applicant", template="received")],
        )
        return app.result(
            req.request_id, f"received: {amount} CNY signed for ({req.funding_source})"
        )
