"""RecoveryWorkflow: a paid grant cancelled, until its money is recovered (追回).

Rain and Dew's fraud rule (PROCESS.md §4.2): a report or objection that proves true makes
the county poverty office cancel the grant. Before payment the application itself ends
cancelled (``ApplicationWorkflow.cancel``); once paid its workflow has ended, and this one
carries the rest: the office's cancellation (``cancel``, an update proven by its
credential, R10, started with it by the gateway), the amount on the recovery list, and
the word that it is back (``recovered``). Both go into the application's audit chain.

For operators it is one more workflow in the Web UI: the programme, season and place of
its application, the stage ``recovery_open``, and whom it waits for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.idempotency import seen
from workflows.steps import Refused
from workflows.steps.base import check_place, fmt
from workflows.visibility import published_at_start, upsert_changed

with workflow.unsafe.imports_passed_through():
    from activities.recovery import RecoveryActivities
    from models import search
    from models.application import CancellationRequest, RequestResult, request_key
    from models.domain import ROLE_NAME_ZH, Level, Role
    from models.recovery import (
        RecoveredRequest,
        RecoveryEvent,
        RecoveryInput,
        RecoveryRecord,
        RecoveryStatus,
    )

_RECORD = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Started with its cancellation: a start whose update was refused ends after this.
_UNUSED = timedelta(hours=1)
OPEN = "recovery_open"
RECOVERED = "recovered"


@workflow.defn(failure_exception_types=[ValidationError])
class RecoveryWorkflow:
    @workflow.init
    def __init__(self, inp: RecoveryInput) -> None:
        self.inp = inp
        self.cancellation: CancellationRequest | None = None
        self.cancelled_at: Any = None
        self.recovery: RecoveredRequest | None = None
        self.recovered_at: Any = None
        self.results: dict[str, RequestResult] = {}
        self.request_keys: dict[str, str] = {}
        self.published: dict[str, Any] = published_at_start()

    @workflow.run
    async def run(self, inp: RecoveryInput) -> RecoveryStatus:
        try:
            await workflow.wait_condition(
                lambda: self.cancellation is not None,
                timeout=_UNUSED,
                timeout_summary="the cancellation it was started with",
            )
        except TimeoutError:
            return self.status()  # its cancellation was refused: nothing to recover
        assert self.cancellation is not None
        c = self.cancellation
        await self._record(
            "cancelled",
            c.actor,
            c.request_id,
            f"已发放资助取消，{inp.amount_cny:,} 元列入追回名单：{c.reason} / paid grant "
            f"cancelled, {inp.amount_cny:,} CNY onto the recovery list: {c.reason}",
            {"reason": c.reason, "report_ref": c.report_ref, "amount_cny": inp.amount_cny},
        )
        self.publish()
        await workflow.wait_condition(lambda: self.recovery is not None)
        r = self.recovery
        assert r is not None
        await self._record(
            "recovered",
            r.actor,
            r.request_id,
            f"已追回 {r.amount_cny:,} 元（{r.reference}） / recovered {r.amount_cny:,} CNY ({r.reference})",
            {"amount_cny": r.amount_cny, "reference": r.reference},
        )
        self.publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _record(
        self, kind: str, actor: Any, request_id: str, summary: str, detail: dict[str, Any]
    ) -> None:
        event = RecoveryEvent(
            application_id=self.inp.application_id,
            kind=kind,
            at=workflow.now(),
            actor=actor,
            request_id=request_id,
            summary=summary,
            detail=detail,
        )
        await workflow.execute_activity_method(
            RecoveryActivities.record,
            RecoveryRecord(inp=self.inp, event=event),
            start_to_close_timeout=_RECORD,
            retry_policy=_RETRY,
            summary=f"{kind}: {self.inp.application_id}",
        )

    # ------------------------------------------------------------ requests

    @workflow.update
    async def cancel(self, req: CancellationRequest) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self.request_keys[req.request_id] = request_key(req)
        self.cancellation, self.cancelled_at = req, workflow.now()
        return self._answer(
            req.request_id,
            OPEN,
            f"paid grant cancelled: {self.inp.amount_cny} CNY onto the recovery list",
        )

    @cancel.validator
    def _validate_cancel(self, req: CancellationRequest) -> None:
        if seen(self.request_keys, req):
            return
        if self.cancellation is not None:
            raise Refused(
                f"already cancelled on {fmt(self.cancelled_at)} by {self.cancellation.actor.id}: "
                "on the recovery list"
            )
        problems = self._office(req.actor, "cancel the grant")
        if not req.reason.strip():
            problems.append("reason is required to cancel a grant")
        if problems:
            raise Refused(problems)

    @workflow.update
    async def recovered(self, req: RecoveredRequest) -> RequestResult:
        if req.request_id in self.results:
            return self.results[req.request_id]
        self.request_keys[req.request_id] = request_key(req)
        self.recovery, self.recovered_at = req, workflow.now()
        return self._answer(req.request_id, RECOVERED, f"recovered: {req.amount_cny} CNY")

    @recovered.validator
    def _validate_recovered(self, req: RecoveredRequest) -> None:
        if seen(self.request_keys, req):
            return
        problems = self._office(req.actor, "mark the money recovered")
        if self.cancellation is None:
            problems.append("nothing to recover: the grant was not cancelled")
        if self.recovery is not None:
            problems.append(f"already recovered on {fmt(self.recovered_at)}")
        if req.amount_cny != self.inp.amount_cny:
            problems.append(
                f"amount_cny: {req.amount_cny} is not the {self.inp.amount_cny} CNY paid"
            )
        if problems:
            raise Refused(problems)

    def _office(self, actor: Any, what: str) -> list[str]:
        role = self._role()
        if role is None:
            return [f"{self.inp.programme} grants are not cancelled: no office cancels them"]
        return check_place(self.inp.places, actor, role, Level.COUNTY, what)

    def _role(self) -> Role | None:
        return self.inp.cancelled_by

    def _answer(self, request_id: str, stage: str, message: str) -> RequestResult:
        result = RequestResult(request_id=request_id, accepted=True, stage=stage, message=message)
        self.results[request_id] = result
        self.publish()
        return result

    # ------------------------------------------------------------ reading

    def refuse_unproven(self, name: str, problem: str) -> None:
        workflow.logger.warning(f"message {name} refused: {problem}")

    @workflow.query
    def status(self) -> RecoveryStatus:
        zh, en = self._words()
        return RecoveryStatus(
            workflow_id=self.inp.workflow_id,
            application_id=self.inp.application_id,
            programme=self.inp.programme,
            season=self.inp.season,
            round=self.inp.round,
            amount_cny=self.inp.amount_cny,
            cancellation=self.cancellation,
            cancelled_at=self.cancelled_at,
            recovered=self.recovery,
            recovered_at=self.recovered_at,
            details_zh=zh,
            details_en=en,
        )

    def _stage(self) -> str:
        if self.recovery is not None:
            return RECOVERED
        return OPEN if self.cancellation is not None else "cancelling"

    def _words(self) -> tuple[str, str]:
        amount = f"{self.inp.amount_cny:,}"
        if self.recovery is not None:
            return (
                f"已追回 {amount} 元（{self.recovery.reference}）",
                f"recovered {amount} CNY ({self.recovery.reference})",
            )
        if self.cancellation is None:
            return "正在取消已发放资助", "cancelling the paid grant"
        role = self._role()
        who_zh = ROLE_NAME_ZH.get(role, "") if role else ""
        return (
            f"已发放资助 {amount} 元已取消，列入追回名单，等待{who_zh}确认追回",
            f"paid grant of {amount} CNY cancelled, on the recovery list: waiting for the "
            f"{role.value.replace('_', ' ') if role else 'office'} to mark it recovered",
        )

    def publish(self) -> None:
        zh, en = self._words()
        workflow.set_current_details(f"**{zh}**\n\n{en}")
        places, role = self.inp.places, self._role()
        open_ = self.cancellation is not None and self.recovery is None
        upsert_changed(
            self.published,
            [
                (search.PROGRAMME, self.inp.programme),
                (search.SEASON, self.inp.season),
                (search.ROUND, self.inp.round),
                (search.COUNTY, places.county_code),
                (search.TOWNSHIP, places.township_code),
                (search.VILLAGE, places.village_code),
                (search.STAGE, self._stage()),
                (search.WAITING_FOR, role.value if role and open_ else ""),
            ],
        )
