"""A review step: approve, reject (reason required) or return for correction (R4)."""

from __future__ import annotations

from temporalio import workflow

from workflows.steps.base import (
    AuthorityProblem,
    Refused,
    StepRunner,
    office_notice,
    own_applicant,
)

with workflow.unsafe.imports_passed_through():
    from models.application import CorrectionRequest, DecisionRequest, RequestResult
    from models.domain import ROLE_NAME_ZH, DecisionKind, Role, level_of
    from models.intake import amount_due, correction_problems
    from models.records import NotificationIntent
    from models.steps import ReviewStep

_DECISION_ZH = {
    DecisionKind.APPROVE: "通过",
    DecisionKind.REJECT: "不通过",
    DecisionKind.RETURN_FOR_CORRECTION: "退回更正",
}


class ReviewRunner(StepRunner[ReviewStep]):
    done = False
    awaiting_correction = False

    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done or self.app.closed)

    def waiting_for(self) -> Role:
        # A returned application waits for whoever may correct it (the programme says).
        return self.app.programme.corrections.by[0] if self.awaiting_correction else self.step.role

    def details(self) -> tuple[str, str]:
        if self.awaiting_correction:
            return (
                f"等待更正材料后{self.step.label_zh}重新审核",
                f"waiting for the correction, then {self.step.label_en} again",
            )
        return (
            f"等待{ROLE_NAME_ZH.get(self.step.role, '')}{self.step.label_zh}",
            f"waiting for {self.step.label_en} by the {self.step.role.value.replace('_', ' ')}",
        )

    def settled(self) -> bool:
        return self.done

    # -------------------------------------------------------------- decisions

    def check_decision(self, req: DecisionRequest) -> None:
        step = self.step
        if req.stage != step.stage:
            super().check_decision(req)
        problems = self.check_place(req.actor, step.role, step.level, f"decide {step.stage}")
        earlier = self.app.decided_by.get(req.actor.id)
        if earlier is not None and earlier != step.stage:
            problems.append(
                AuthorityProblem(
                    f"four eyes: {req.actor.id} already decided {earlier} of this application"
                )
            )
        if (
            req.decision in (DecisionKind.REJECT, DecisionKind.RETURN_FOR_CORRECTION)
            and not req.reason.strip()
        ):
            problems.append(f"reason is required to {req.decision.value}")
        if self.awaiting_correction:
            problems.append(
                "the application was returned for correction; waiting for the correction"
            )
        if problems:
            raise Refused(problems)

    def apply_decision(self, req: DecisionRequest) -> RequestResult:
        app, step = self.app, self.step
        app.decided_by[req.actor.id] = step.stage
        notify: list[NotificationIntent] = []
        if req.decision is DecisionKind.APPROVE:
            steps = app.programme.steps
            nxt = (
                steps[app.index + 1].stage
                if app.index + 1 < len(steps)
                else app.programme.done_stage
            )
            message = f"{step.stage} approved; next: {nxt}"
            self.done = True
        elif req.decision is DecisionKind.REJECT:
            message = f"{step.stage} rejected: {req.reason}"
            app.reject(req.reason)
            notify = [self._tell_applicant("rejected", req.reason)]
        else:
            message = f"{step.stage} returned for correction: {req.reason}"
            self.awaiting_correction = True
            notify = [self._tell_applicant("returned", req.reason)]
        app.record(
            "decision",
            req.actor,
            f"{step.label_zh}：{_DECISION_ZH[req.decision]} / {message}",
            {"request_id": req.request_id, "decision": req.decision.value, "reason": req.reason},
            notify=notify,
        )
        return app.result(req.request_id, message)

    def _tell_applicant(self, template: str, reason: str) -> NotificationIntent:
        return self.applicant_told(self.step.label_zh, template, reason)

    @staticmethod
    def applicant_told(stage_zh: str, template: str, reason: str) -> NotificationIntent:
        """The applicant told of a decision (``template``) at a stage, with its reason."""
        return NotificationIntent(
            audience="applicant", template=template, params={"stage": stage_zh, "reason": reason}
        )

    # ------------------------------------------------------------ corrections

    def check_correction(self, req: CorrectionRequest) -> None:
        if not self.awaiting_correction:
            super().check_correction(req)
        rule = self.app.programme.corrections
        problems: list[str] = []
        if req.actor.role not in rule.by:
            problems.append(
                AuthorityProblem(
                    f"corrections come from the {' or the '.join(r.value for r in rule.by)}"
                )
            )
        elif req.actor.role is not Role.APPLICANT:
            role = req.actor.role
            problems += self.check_place(req.actor, role, level_of(role), "correct")
        elif req.actor.id != own_applicant(self.app.inp):
            problems.append(
                AuthorityProblem(
                    f"{req.actor.id} is not this application's applicant: an applicant "
                    "corrects only their own application"
                )
            )
        unknown = sorted(set(req.changes.given()) - set(rule.fields))
        if unknown:
            problems.append(
                f"fields {', '.join(unknown)} cannot be corrected here (allowed: {', '.join(sorted(rule.fields))})"
            )
        else:
            app = self.app
            corrected = app.inp.applicant.model_copy(update=self._corrected(req))
            problems += [
                str(p) for p in correction_problems(app.programme, app.inp.season, corrected)
            ]
        if problems:
            raise Refused(problems)

    def _corrected(self, req: CorrectionRequest) -> dict[str, object]:
        """What a correction changes in the record: its fields, and the documents it
        hands in added to those on file (a count of 0 withdraws one)."""
        updates: dict[str, object] = dict(req.changes.given())
        if req.documents is not None:
            updates["documents"] = {**self.app.inp.applicant.documents, **req.documents}
        return updates

    def apply_correction(self, req: CorrectionRequest) -> RequestResult:
        app = self.app
        updates = self._corrected(req)
        applicant = app.inp.applicant.model_copy(update=updates)
        was = app.inp.amount_cny
        # The amount is the programme's for the corrected record (new-student aid's
        # depends on the university's province): never the one intake worked out before.
        amount = was if app.programme.loan else amount_due(app.programme, app.inp.season, applicant)
        app.inp = app.inp.model_copy(update={"applicant": applicant, "amount_cny": amount})
        self.awaiting_correction = False
        detail: dict[str, object] = {
            "request_id": req.request_id,
            "fields": sorted(updates),
            "note": req.note,
        }
        if amount != was:
            detail["amount_cny"] = {"was": was, "now": amount}
        app.record(
            "correction",
            req.actor,
            f"已更正，{self.step.label_zh}重新审核 / corrected; {self.step.label_en} reviews again"
            + (
                f"（金额 {was} → {amount} 元 / amount {was} → {amount} CNY）"
                if amount != was
                else ""
            ),
            detail,
            notify=office_notice(app.inp.places, self.step, "work_waiting"),
        )
        return app.result(req.request_id, "corrected; the same stage reviews again")
