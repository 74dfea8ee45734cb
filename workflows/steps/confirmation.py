"""A confirmation step: the office named by the step says that something happened
outside aidflow (a university: the student brought the loan's receipt; the bank: the
loan was paid), with its reference; or that it did not, with its reason, which ends
the application rejected. Nothing else: no return for correction."""

from __future__ import annotations

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner, role_words
from workflows.steps.review import ReviewRunner

with workflow.unsafe.imports_passed_through():
    from models.application import DecisionRequest, RequestResult
    from models.domain import ROLE_NAME_ZH, DecisionKind
    from models.steps import ConfirmationStep


class ConfirmationRunner(StepRunner[ConfirmationStep]):
    done = False

    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done or self.app.closed)

    def details(self) -> tuple[str, str]:
        step = self.step
        where = self.app.inp.places.code_at(step.level)
        return (
            f"等待{ROLE_NAME_ZH.get(step.role, '')}（{where}）确认：{step.event_zh}",
            f"waiting for the {role_words(step.role)} ({where}) to confirm that {step.event_en}",
        )

    def settled(self) -> bool:
        return self.done

    def check_decision(self, req: DecisionRequest) -> None:
        step = self.step
        if req.stage != step.stage:
            super().check_decision(req)
        problems = self.check_place(req.actor, step.role, step.level, f"confirm {step.stage}")
        if req.decision is DecisionKind.RETURN_FOR_CORRECTION:
            problems.append(
                f"decision: the {role_words(step.role)} confirms (approve, with its reference) "
                "or says it did not happen (reject, with the reason)"
            )
        elif not req.reason.strip():
            problems.append(
                "reason is required: the reference of what is confirmed"
                if req.decision is DecisionKind.APPROVE
                else "reason is required to reject"
            )
        if problems:
            raise Refused(problems)

    def apply_decision(self, req: DecisionRequest) -> RequestResult:
        app, step = self.app, self.step
        detail = {
            "request_id": req.request_id,
            "decision": req.decision.value,
            "reason": req.reason,
        }
        if req.decision is DecisionKind.APPROVE:
            self.done = True
            message = f"{step.stage} confirmed: {step.event_en} ({req.reason})"
            app.record(
                "decision", req.actor, f"{step.label_zh}：{step.event_zh} / {message}", detail
            )
        else:
            message = f"{step.stage}: not confirmed: {req.reason}"
            app.reject(req.reason)
            app.record(
                "decision",
                req.actor,
                f"{step.label_zh}：未确认 / {message}",
                detail,
                notify=[ReviewRunner.applicant_told(step.label_zh, "rejected", req.reason)],
            )
        return app.result(req.request_id, message)
