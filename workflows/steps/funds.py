"""A funds step (R7): the application waits on the county's funds request until the
funds arrive. The season workflow puts it on the request and releases it."""

from __future__ import annotations

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner, fmt, role_words

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM, WithdrawalRequest
    from models.domain import ROLE_NAME_ZH
    from models.payout import FundsJoin, FundsRelease
    from models.records import NotificationIntent
    from models.steps import FundsStep


class FundsRunner(StepRunner[FundsStep]):
    async def run(self) -> None:
        await workflow.wait_condition(
            lambda: self.app.payment.release is not None or self.app.closed
        )

    def details(self) -> tuple[str, str]:
        request = self.app.payment.funds_request
        provider = self.step.provided_by
        if request:
            return (
                f"已列入资金申请 {request}，等待{ROLE_NAME_ZH[provider]}拨付资金",
                f"on funds request {request}; waiting for the {role_words(provider)}'s funds",
            )
        requester = self.step.requested_by
        return (
            f"{ROLE_NAME_ZH[requester]}已审批，等待列入资金申请",
            f"approved; waiting to join the {role_words(requester)}'s funds request",
        )

    def check_withdrawal(self, req: WithdrawalRequest) -> None:
        request = self.app.payment.funds_request
        if request is not None:
            raise Refused(
                f"the application is on funds request {request}: it can no longer be withdrawn"
            )

    def on_funds_requested(self, join: FundsJoin) -> None:
        payment = self.app.payment
        if payment.funds_request is not None or self.app.closed:
            return
        payment.funds_request = join.request_id
        self.app.record(
            "funds",
            SYSTEM,
            f"已列入资金申请 {join.request_id} / on funds request {join.request_id}",
            {"funds_request": join.request_id},
            notify=[NotificationIntent(audience="applicant", template="funds_requested")],
        )
        self.app.publish()

    def on_funds_released(self, release: FundsRelease) -> None:
        payment = self.app.payment
        if payment.release is not None or self.app.closed:
            return
        payment.release = release
        self.app.record(
            "funds",
            SYSTEM,
            f"资金已到位（{release.reference}），须于 {fmt(release.pay_by)} 前发放 / funds arrived ({release.reference}); pay by {fmt(release.pay_by)}",
            {
                "funds_request": release.request_id,
                "reference": release.reference,
                "arrived_at": release.arrived_at.isoformat(),
                "pay_by": release.pay_by.isoformat(),
            },
        )
