"""A funds step (R7): the county-approved application waits for the funds of the
county's funds request it joins. The season workflow makes the request (its roster is
the store's ``funds_request_items``) and releases the applications on it when the funds
arrive: one message to each, the release (issue 20: the word "you are on request R"
was a message and a workflow task of its own an application, which told it nothing
it acts on but a refused withdrawal; that is looked up when one comes)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner, fmt, role_words

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM, WithdrawalRequest
    from models.domain import ROLE_NAME_ZH
    from models.payout import FundsRelease, FundsRequestOf
    from models.records import NotificationIntent
    from models.steps import FundsStep

_LOOKUP = timedelta(seconds=10)


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
            f"{ROLE_NAME_ZH[requester]}已审批，等待列入资金申请并拨付资金",
            f"approved; waiting for the {role_words(requester)}'s funds request and the "
            f"{role_words(provider)}'s funds",
        )

    async def look_up_before_closing(self) -> None:
        """Whether the application is on a funds request yet, asked of the store (the
        request's roster) before a withdrawal or a cancellation is checked: money asked
        of finance for it must not be withdrawn under it."""
        payment = self.app.payment
        if payment.funds_request is not None or payment.release is not None:
            return
        # By name: importing the activities' module here trips mypy's import cycles.
        found = await workflow.execute_local_activity(
            "funds_request_of",
            self.app.inp.workflow_id,
            result_type=FundsRequestOf,
            start_to_close_timeout=_LOOKUP,
            summary="is it on a funds request?",
        )
        if found.request_id is not None and payment.funds_request is None:
            payment.funds_request = found.request_id
            self.app.publish()

    def check_withdrawal(self, req: WithdrawalRequest) -> None:
        request = self.app.payment.funds_request
        if request is not None:
            raise Refused(
                f"the application is on funds request {request}: it can no longer be withdrawn"
            )

    def on_funds_released(self, release: FundsRelease) -> None:
        payment = self.app.payment
        if payment.release is not None or self.app.closed:
            return
        payment.release = release
        payment.funds_request = release.request_id
        self.app.record(
            "funds",
            SYSTEM,
            f"资金申请 {release.request_id} 的资金已到位（{release.reference}），须于 "
            f"{fmt(release.pay_by)} 前发放 / funds of request {release.request_id} arrived "
            f"({release.reference}); pay by {fmt(release.pay_by)}",
            {
                "funds_request": release.request_id,
                "reference": release.reference,
                "arrived_at": release.arrived_at.isoformat(),
                "pay_by": release.pay_by.isoformat(),
            },
            notify=[
                NotificationIntent(
                    audience="applicant",
                    template="funds_released",
                    params={"pay_by": fmt(release.pay_by)},
                )
            ],
        )
