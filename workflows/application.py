"""ApplicationWorkflow: one application, from intake through its programme's steps to the end.

The programme (in the workflow's input) lists the steps; each step kind has a runner
in ``workflows/steps`` that carries it out, says what it waits for and checks the
requests that concern it. This module keeps what every application has: the loop
over the steps, the fixed dates and projections (R6), the trail (R8) and the
message handlers (their plumbing is in ``workflows/requests.py``).

Deterministic by construction: time comes from ``workflow.now()``; the calendar
(window, fixed dates, and a table of the working days) comes in the input, computed by
the gateway that starts it (models/schedule.py), so it is in the history and a later
change of a holiday file never changes what a replay sees. Requests arrive as updates
with validators (refused at once, nothing written to history) or as signals for
services that cannot wait (a refused signal is recorded in the trail as refused).
Every request carries a request id: a repeat returns the first answer and changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue

from workflows import deadlines, operators, requests
from workflows.steps import PaymentState, Refused, StepRunner, runner_for
from workflows.trail import Trail
from workflows.visibility import published_at_start

with workflow.unsafe.imports_passed_through():
    from models.application import (
        SYSTEM,
        Actor,
        ApplicationInput,
        ApplicationStatus,
        CancellationRequest,
        CorrectionRequest,
        DecisionRequest,
        Objection,
        ObjectionRequest,
        ObjectionResolution,
        ReceiptRecord,
        RequestResult,
        TrailEvent,
        TrailKind,
        WithdrawalRequest,
    )
    from models.calendar import TabulatedCalendar
    from models.domain import Stage
    from models.ids import season_workflow_id
    from models.notice import JoinRequest, MemberMessage
    from models.payout import AccountCorrection
    from models.records import NotificationIntent
    from models.schedule import SeasonSchedule

__all__ = ["ApplicationWorkflow", "Refused"]


# An input that does not validate (a start by hand with '{}', say) fails the workflow at
# once with pydantic's reasons, instead of failing its first task on every retry.
@workflow.defn(failure_exception_types=[ValidationError])
class ApplicationWorkflow:
    @workflow.init
    def __init__(self, inp: ApplicationInput) -> None:
        self.inp = inp
        self.programme = inp.programme
        self.calendar: TabulatedCalendar | None = None
        self.index = 0
        self.terminal: str | None = None
        self.rejection_reason: str | None = None
        self.results: dict[str, RequestResult] = {}
        self.request_keys: dict[str, str] = {}  # request id -> kind and digest of its body
        self.decided_by: dict[str, str] = {}  # actor id -> stage decided (four eyes)
        self.decided_at: datetime | None = None
        self.objections: list[Objection] = []
        self.objector_contacts: dict[str, str] = {}  # only to tell the objector the outcome
        self.overdue: list[str] = []
        self.at_risk: list[str] = []
        self.payment = PaymentState(self)
        self.schedule: SeasonSchedule = inp.schedule
        if self.schedule.working_days is not None:
            # Read only by the projections (deadlines.py): a forecast.
            self.calendar = TabulatedCalendar(self.schedule.working_days, forecast=True)
        self._trail = Trail()
        self.published: dict[str, Any] = published_at_start()
        self.publishing = False  # what operators see is due once this step is done
        self._watchers: list[asyncio.Task[None]] = []
        self.telling = 0  # messages to notices under way (a local activity each)
        # Steps working out what they record next (a projection; a notice's automatic
        # time): the trail's write waits for them, so that it is one write, not two.
        self.holding_trail = 0
        # The first step's runner exists before run(), so that a request handled with
        # the first workflow task is not undone when run() starts.
        self.runner: StepRunner[Any] = runner_for(self, self.programme.steps[0])
        requests.received(self)
        requests.entered(self, self.programme.steps[0])

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: ApplicationInput) -> ApplicationStatus:
        requests.check_amount(inp)
        snapshot, held = (lambda: operators.snapshot(self)), (lambda: self.holding_trail > 0)
        persister = asyncio.create_task(self._trail.persist_forever(snapshot, self.publish, held))
        steps = self.programme.steps
        for fixed in self.schedule.fixed_dates:
            if any(s.due == fixed.key for s in steps):
                self.watch(deadlines.watch_fixed_date(self, fixed.key, fixed.due_at))

        for index, step in enumerate(steps):
            if self.closed:
                break
            if index > 0:
                # No step begins while the trail cannot be saved (trail.py).
                await self._trail.ready(whole=False, closed=lambda: self.closed)
                if self.closed:
                    break
                self.index, self.runner = index, runner_for(self, step)
                requests.entered(self, step)
            await self.project(index, workflow.now())
            self.publish()
            if step.reads_saved_rows:
                # Funds, payout: once all is saved, the entry in one write with the decision.
                await self._trail.ready(whole=True, closed=lambda: self.closed)
            if not self.closed:
                await self.runner.run()

        if not self.closed:
            self.terminal = self.programme.done_stage
            self.record(
                "stage_entered",
                SYSTEM,
                f"{self.programme.label(self.terminal)[0]}，申请办结 / {self.programme.label(self.terminal)[1]}; the application is closed",
            )
        self.publish()
        await workflow.wait_condition(
            lambda: (
                workflow.all_handlers_finished() and not self._trail.unsaved and not self.telling
            )
        )
        persister.cancel()
        return self.status()

    # ------------------------------------------------------ what runners use

    @property
    def closed(self) -> bool:
        return self.terminal is not None

    @property
    def trail_failing(self) -> tuple[str, str] | None:
        """What operators read while the trail cannot be saved (zh, en); None while it can."""
        return self._trail.details()

    @property
    def stage(self) -> str:
        return self.terminal if self.terminal is not None else self.runner.stage

    def reject(self, reason: str) -> None:
        self.terminal, self.rejection_reason = Stage.REJECTED, reason

    def result(self, request_id: str, message: str) -> RequestResult:
        """The request's answer, kept: a repeat of the request id gets it again (R4)."""
        result = RequestResult(
            request_id=request_id, accepted=True, stage=self.stage, message=message
        )
        self.results[request_id] = result
        return result

    def watch(self, coro: Coroutine[Any, Any, None]) -> None:
        self._watchers.append(asyncio.create_task(coro))

    def season_id(self) -> str:
        p, inp = self.programme, self.inp
        return season_workflow_id(p.code, inp.season, inp.places.county_code, p.round_key)

    def stage_zh(self) -> str:
        return self.programme.label(self.stage)[0]

    def stage_en(self, stage: str) -> str:
        return self.programme.label(stage)[1]

    # ------------------------------------------------------------ deadlines (R6)

    async def project(self, from_index: int, at: datetime) -> None:
        await deadlines.project(self, from_index, at)

    # ------------------------------------------------------------ requests
    # Each request kind: an update (validator + handler) and, for services that cannot
    # wait, a signal; the current step's runner checks and applies it. A signal's body is
    # ``Any``: the worker's interceptor decodes it (workflows/authority.py, BODIES).

    @workflow.update
    async def decide(self, req: DecisionRequest) -> RequestResult:
        return requests.answer(self, req, self.runner.check_decision, self._decided)

    @decide.validator
    def _validate_decide(self, req: DecisionRequest) -> None:
        requests.validate(self, req, self.runner.check_decision)

    @workflow.signal(name="decide_signal")
    def decide_signal(self, req: Any = None) -> None:
        requests.via_signal(
            self, "decide_signal", req, lambda r: self.runner.check_decision(r), self._decided
        )

    def _decided(self, req: DecisionRequest) -> RequestResult:
        self.decided_at = workflow.now()
        return self.runner.apply_decision(req)

    @workflow.update
    async def correct(self, req: CorrectionRequest) -> RequestResult:
        return requests.answer(
            self, req, self.runner.check_correction, lambda r: self.runner.apply_correction(r)
        )

    @correct.validator
    def _validate_correct(self, req: CorrectionRequest) -> None:
        requests.validate(self, req, self.runner.check_correction)

    @workflow.signal(name="correct_signal")
    def correct_signal(self, req: Any = None) -> None:
        requests.via_signal(
            self,
            "correct_signal",
            req,
            lambda r: self.runner.check_correction(r),
            lambda r: self.runner.apply_correction(r),
        )

    @workflow.update
    async def lodge_objection(self, req: ObjectionRequest) -> RequestResult:
        return requests.answer(
            self, req, self.runner.check_objection, lambda r: self.runner.apply_objection(r)
        )

    @lodge_objection.validator
    def _validate_objection(self, req: ObjectionRequest) -> None:
        requests.validate(self, req, self.runner.check_objection)

    @workflow.signal(name="lodge_objection_signal")
    def lodge_objection_signal(self, req: Any = None) -> None:
        requests.via_signal(
            self,
            "lodge_objection_signal",
            req,
            lambda r: self.runner.check_objection(r),
            lambda r: self.runner.apply_objection(r),
        )

    @workflow.update
    async def resolve_objection(self, req: ObjectionResolution) -> RequestResult:
        return requests.answer(
            self, req, self.runner.check_resolution, lambda r: self.runner.apply_resolution(r)
        )

    @resolve_objection.validator
    def _validate_resolution(self, req: ObjectionResolution) -> None:
        requests.validate(self, req, self.runner.check_resolution)

    @workflow.signal(name="resolve_objection_signal")
    def resolve_objection_signal(self, req: Any = None) -> None:
        requests.via_signal(
            self,
            "resolve_objection_signal",
            req,
            lambda r: self.runner.check_resolution(r),
            lambda r: self.runner.apply_resolution(r),
        )

    # Withdrawal: the applicant's own request, at any step that allows it (requests.py).
    @workflow.update
    async def withdraw(self, req: WithdrawalRequest) -> RequestResult:
        return await requests.closing(self, req, requests.check_withdrawal, requests.withdraw)

    @withdraw.validator
    def _validate_withdrawal(self, req: WithdrawalRequest) -> None:
        requests.validate(self, req, lambda r: requests.check_withdrawal(self, r))

    @workflow.signal
    async def withdraw_signal(self, req: Any = None) -> None:
        if req is not None:
            with contextlib.suppress(Refused):  # recorded by via_signal, which checks again
                await requests.look_up(self, req, lambda r: requests.check_withdrawal(self, r))
        requests.via_signal(
            self,
            "withdraw_signal",
            req,
            lambda r: requests.check_withdrawal(self, r),
            lambda r: requests.withdraw(self, r),
        )

    # Cancellation: a report or objection proved true (the programme's office, R10).
    @workflow.update
    async def cancel(self, req: CancellationRequest) -> RequestResult:
        return await requests.closing(self, req, requests.check_cancellation, requests.cancel)

    @cancel.validator
    def _validate_cancellation(self, req: CancellationRequest) -> None:
        requests.validate(self, req, lambda r: requests.check_cancellation(self, r))

    @workflow.update
    async def record_receipt(self, req: ReceiptRecord) -> RequestResult:
        return requests.answer(
            self, req, self.runner.check_receipt, lambda r: self.runner.apply_receipt(r)
        )

    @record_receipt.validator
    def _validate_receipt(self, req: ReceiptRecord) -> None:
        requests.validate(self, req, self.runner.check_receipt)

    @workflow.update
    async def correct_account(self, req: AccountCorrection) -> RequestResult:
        first = requests.begin(self, req)
        if first is not None:
            return first
        requests.validate(self, req, self.runner.check_account)  # see requests.answer
        return await self.runner.apply_account(req)

    @correct_account.validator
    def _validate_account(self, req: AccountCorrection) -> None:
        requests.validate(self, req, self.runner.check_account)

    def refuse_unproven(self, name: str, problem: str) -> None:
        """A signal whose sender is not proven (workflows/authority.py): recorded, dropped."""
        requests.refuse_unproven(self, name, problem)

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal no handler takes is refused on the record too (the SDK kept it unseen)."""
        requests.refuse_unproven(self, name[:64], "no such message")

    # ------------------- messages from its notices, its roster, the season and its batches
    # Internal: each goes to the current step's runner (or the payment), which ignores
    # one that is not for it (requests.forward drops one sent without its argument).

    @workflow.signal
    def funds_released(self, release: Any = None) -> None:
        requests.forward("funds_released", release, self.runner.on_funds_released)

    @workflow.signal
    def notice_posted(self, posted: Any = None) -> None:
        requests.forward("notice_posted", posted, self.runner.on_notice_posted)

    @workflow.signal
    def roster_decided(self, verdict: Any = None) -> None:
        requests.forward("roster_decided", verdict, self.runner.on_roster_decided)

    @workflow.signal
    def payment_result(self, outcome: Any = None) -> None:
        requests.forward("payment_result", outcome, self.payment.result)

    # -------------------------------------------------------------- queries

    @workflow.query
    def status(self) -> ApplicationStatus:
        return operators.status(self)

    @workflow.query
    def trail(self) -> list[TrailEvent]:
        return list(self._trail.events)

    @workflow.query
    def programme_definition(self) -> dict[str, Any]:
        return self.programme.model_dump(mode="json")

    # ------------------------------------------------- what operators see

    def publish(self) -> None:
        operators.publish_soon(self)

    # ---------------------------------------------------------------- trail

    def record(
        self,
        kind: TrailKind,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None = None,
        *,
        notify: list[NotificationIntent] | None = None,
        tell: JoinRequest | MemberMessage | None = None,
    ) -> None:
        """``tell``: a word to the notice that the event brings, said by its write."""
        if notify and self.schedule.provisional_years:
            # Dates computed from a provisional holiday schedule say so.
            notify = [
                n.model_copy(update={"params": {**n.params, "provisional": True}}) for n in notify
            ]
        self._trail.record(kind, self.stage, actor, summary, detail, notify, tell)
