"""PayoutBatchWorkflow: one disbursement file to the agent bank, and its results.

Prepare (payment rows with idempotency keys, the bank file) -> send -> wait for the
bank's result (a heartbeating poll of the inbox) -> record -> tell each application
what was sent and whether it was paid or returned: one message each (issue 20).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.messaging import signal_each

with workflow.unsafe.imports_passed_through():
    from activities.funds import BankWait, FundsActivities, PaymentResults
    from models.payout import BatchResult, PaymentOutcome, PayoutBatchInput

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


# An input that does not validate (a start by hand with '{}', say) fails the workflow at
# once with pydantic's reasons, instead of failing its first task on every retry.
@workflow.defn(failure_exception_types=[ValidationError])
class PayoutBatchWorkflow:
    def __init__(self) -> None:
        self._phase = "preparing"

    @workflow.run
    async def run(self, batch: PayoutBatchInput) -> BatchResult:
        workflow.set_current_details(
            f"**准备代发文件** / preparing batch {batch.batch_id} ({len(batch.items)} payments)"
        )
        prepared = await workflow.execute_activity_method(
            FundsActivities.prepare_payments,
            batch,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_RETRY,
            summary=f"prepare {len(batch.items)} payments",
        )
        self._phase = "sending"
        await workflow.execute_activity_method(
            FundsActivities.send_batch,
            prepared,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_RETRY,
            summary="hand the disbursement file to the bank",
        )
        sent_at = workflow.now()
        by_key = {p.idempotency_key: p for p in prepared.included}
        self._phase = "waiting for the bank"
        workflow.set_current_details(
            f"**等待银行回盘** / waiting for the bank's result of {batch.batch_id}: {len(prepared.included)} payments, {prepared.total_cny} CNY"
        )
        rows = await workflow.execute_activity_method(
            FundsActivities.await_bank_result,
            BankWait(batch_id=batch.batch_id),
            start_to_close_timeout=timedelta(days=30),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_RETRY,
            summary="wait for the bank's result file",
        )
        await workflow.execute_activity_method(
            FundsActivities.record_payment_results,
            PaymentResults(batch_id=batch.batch_id, rows=rows),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_RETRY,
            summary="record the bank's results",
        )
        outcomes: list[tuple[str, PaymentOutcome]] = []
        for row in rows:
            sent = by_key[row.idempotency_key]
            outcomes.append(
                (
                    sent.workflow_id,
                    PaymentOutcome(
                        batch_id=batch.batch_id,
                        idempotency_key=row.idempotency_key,
                        attempt=sent.attempt,
                        account_masked=sent.account_masked,
                        sent_at=sent_at,
                        status=row.status,
                        reason=row.reason,
                        bank_reference=row.bank_reference,
                    ),
                )
            )
        await signal_each("payment_result", outcomes)
        paid = sum(1 for row in rows if row.status == "paid")
        returned = len(rows) - paid
        settled = [by_key[row.idempotency_key].workflow_id for row in rows if row.status == "paid"]
        self._phase = "settled"
        workflow.set_current_details(
            f"**已回盘** / settled: {paid} paid, {returned} returned, {len(prepared.skipped)} skipped (already paid)"
        )
        return BatchResult(
            batch_id=batch.batch_id,
            paid=paid,
            returned=returned,
            skipped=len(prepared.skipped),
            settled=[*settled, *prepared.skipped],
        )

    @workflow.query
    def phase(self) -> str:
        return self._phase
