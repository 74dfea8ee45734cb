"""A card payout step (R7): paid in a batch by the season, at most once, exactly the
approved amount; a returned payment waits for the account's correction and is paid
again in a later batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

from workflows.clock import sleep_until
from workflows.steps.base import Application, Refused, StepRunner, fmt

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM, RequestResult
    from models.domain import ROLE_NAME_ZH, Role, Stage, level_of
    from models.payout import AccountCorrection, FundsRelease, PayItem, PaymentOutcome
    from models.records import NotificationIntent
    from models.steps import PayoutStep

# Pseudo fixed-date key for R7's "within N days of the funds' arrival".
PAYMENT_LIMIT = "payment_limit"


@dataclass
class PaymentState:
    """The application's funds and payment, as the season and its batches report them.

    Kept outside the runners: a batch's message can arrive in the same workflow task as
    the funds' release, before the payout step has started."""

    app: Application
    funds_request: str | None = None
    release: FundsRelease | None = None
    attempt: int = 1
    returned_reason: str | None = None
    paid: bool = False

    def limit_label(self) -> tuple[str, str]:
        """R7's payment limit as a date label, Chinese and English."""
        payout = self.app.programme.find_step(PayoutStep)
        days = payout.limit_calendar_days if payout else 0
        return f"资金到位后{days}日内发放", f"payment within {days} days of the funds' arrival"

    def result(self, outcome: PaymentOutcome) -> None:
        """The bank's word on this attempt, with what was sent. Before the funds, once
        paid, for another attempt, or a repeat of a return: stale, it changes nothing."""
        app = self.app
        if (
            self.release is None
            or self.paid
            or outcome.attempt != self.attempt
            or self.returned_reason is not None
        ):
            return
        amount = app.inp.amount_cny
        base = {
            "batch_id": outcome.batch_id,
            "idempotency_key": outcome.idempotency_key,
            "attempt": outcome.attempt,
            "account": outcome.account_masked,
            "sent_at": outcome.sent_at.isoformat(),
        }
        sent_zh = f"批次 {outcome.batch_id}，{fmt(outcome.sent_at)} 送银行"
        sent_en = f"batch {outcome.batch_id}, sent {fmt(outcome.sent_at)}"
        if outcome.status == "paid":
            self.paid = True
            app.record(
                "payment",
                SYSTEM,
                f"已发放 {amount} 元至 {outcome.account_masked}（{sent_zh}） / paid {amount} CNY "
                f"to {outcome.account_masked} ({sent_en})",
                {
                    **base,
                    "status": "paid",
                    "bank_reference": outcome.bank_reference,
                    "amount_cny": amount,
                },
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="paid",
                        params={"account": outcome.account_masked},
                    )
                ],
            )
        else:
            self.returned_reason = outcome.reason
            payout = app.programme.find_step(PayoutStep)
            corrected_by = payout.account_corrected_by if payout else Role.VILLAGE_COMMITTEE
            app.record(
                "payment",
                SYSTEM,
                f"银行退票（{sent_zh}）：{outcome.reason} / returned by the bank "
                f"({sent_en}, {outcome.account_masked}): {outcome.reason}",
                {**base, "status": "returned", "reason": outcome.reason},
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="payment_returned",
                        params={"reason": outcome.reason},
                    ),
                    NotificationIntent(
                        audience="office",
                        role=corrected_by,
                        place_code=app.inp.places.code_for(corrected_by),
                        template="work_waiting",
                        params={"stage": "更正一卡通账户"},
                    ),
                ],
            )
        app.publish()


class PayoutRunner(StepRunner[PayoutStep]):
    async def run(self) -> None:
        app, payment = self.app, self.app.payment
        assert payment.release is not None
        if not self._said_by_the_payout_date(payment.release.pay_by):
            app.watch(self._watch_pay_by(payment.release.pay_by))
        # Paid: the season learns it from the batch that paid it.
        await workflow.wait_condition(lambda: payment.paid or app.closed)

    def _said_by_the_payout_date(self, pay_by: datetime) -> bool:
        """The limit is the programme's payout date itself (the funds came less than its
        days before it), and everyone its miss tells is told by that date's watcher
        (workflows/deadlines.py) at the same instant: one timer, not two (issue 20)."""
        programme = self.app.programme
        try:
            due_at = self.app.schedule.due_at(self.step.due)
        except KeyError:  # no watcher: the programme has no such date this season
            return False
        fixed = programme.fixed_date(self.step.due)
        told = {fixed.responsible, *programme.always_told}
        return due_at == pay_by and set(self.step.told_when_late) <= told

    async def _watch_pay_by(self, pay_by: datetime) -> None:
        app = self.app
        await sleep_until(pay_by, f"payment limit {fmt(pay_by)}")
        if app.payment.paid or app.closed:
            return
        app.overdue.append(PAYMENT_LIMIT)
        days = self.step.limit_calendar_days
        app.record(
            "overdue",
            SYSTEM,
            f"逾期：资金到位后{fmt(pay_by)}前未发放 / overdue: not paid by {fmt(pay_by)} ({days} days after the funds arrived)",
            {"fixed_date": PAYMENT_LIMIT, "due_at": pay_by.isoformat(), "stage": self.stage},
            notify=[
                NotificationIntent(
                    audience="county",
                    role=role,
                    place_code=app.inp.places.code_for(role),
                    template="overdue",
                    params={
                        "date": f"资金到位后{days}日内发放",
                        "on": fmt(pay_by),
                        "stage": app.stage_zh(),
                    },
                )
                for role in self.step.told_when_late
            ],
        )
        app.publish()

    @property
    def stage(self) -> str:
        if self.app.payment.returned_reason is not None:
            return Stage.AWAITING_ACCOUNT_CORRECTION
        return self.step.stage

    def waiting_for(self) -> Role:
        if self.app.payment.returned_reason is not None:
            return self.step.account_corrected_by
        return self.step.paid_by

    def waiting_until(self) -> datetime | None:
        release = self.app.payment.release
        return release.pay_by if release is not None else None

    def details(self) -> tuple[str, str]:
        payment = self.app.payment
        if payment.returned_reason is not None:
            who = self.step.account_corrected_by
            return (
                f"银行退票（{payment.returned_reason}），等待{ROLE_NAME_ZH[who]}更正一卡通账户后补发",
                f"returned by the bank ({payment.returned_reason}); waiting for the {who.value.replace('_', ' ')} to correct the account",
            )
        pay_by = fmt(payment.release.pay_by) if payment.release else "-"
        return (
            f"资金已到位，等待打卡发放；须于 {pay_by} 前发放",
            f"funds arrived; waiting for the card payout; pay by {pay_by}",
        )

    # ------------------------------------------------------ account correction

    def check_account(self, req: AccountCorrection) -> None:
        if self.app.payment.returned_reason is None:
            super().check_account(req)
        who = self.step.account_corrected_by
        problems = self.check_place(req.actor, who, level_of(who), "correct the account")
        if problems:
            raise Refused(problems)

    async def apply_account(self, req: AccountCorrection) -> RequestResult:
        app, payment = self.app, self.app.payment
        applicant = app.inp.applicant.model_copy(
            update={
                "bank_name": req.bank_name,
                "account_masked": req.account_masked,
                "account_sealed": req.account_sealed,
                "account_holder": req.account_holder,
            }
        )
        app.inp = app.inp.model_copy(update={"applicant": applicant})
        payment.attempt += 1
        payment.returned_reason = None
        app.record(
            "correction",
            req.actor,
            f"一卡通账户已更正为 {req.account_masked}，待补发 / account corrected to {req.account_masked}; re-payment in the next batch",
            {
                "request_id": req.request_id,
                "account": req.account_masked,
                "attempt": payment.attempt,
            },
        )
        result = app.result(
            req.request_id,
            f"account corrected to {req.account_masked}; re-payment (attempt {payment.attempt}) in the next batch",
        )
        app.publish()
        await workflow.get_external_workflow_handle(app.season_id()).signal(
            "repayment_ready",
            PayItem(
                workflow_id=app.inp.workflow_id,
                amount_cny=app.inp.amount_cny,
                attempt=payment.attempt,
            ),
        )
        return result
