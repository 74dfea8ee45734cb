"""A cross-check step (Rain and Dew's 系统比对): the registers answer at once; an
application they do not vouch for waits for the county leading group, who confirm it or
reject it, with a reason either way. What was checked, against which snapshots, and what
each register said, is in the application's trail."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.steps.base import Refused, StepRunner, local_day, office_notice, role_words
from workflows.steps.review import ReviewRunner

with workflow.unsafe.imports_passed_through():
    from activities.cross_check import CrossCheckActivities
    from models.application import SYSTEM, DecisionRequest, RequestResult
    from models.cross_check import CrossCheckAnswer, CrossCheckRequest
    from models.domain import ROLE_NAME_ZH, DecisionKind, Role
    from models.steps import CrossCheckStep

_CHECK = timedelta(seconds=30)
_ZH_REGISTER = {"poor_households": "建档立卡贫困户库", "vocational_enrolment": "职业教育学籍库"}
_EN_REGISTER = {
    "poor_households": "registered-poor registry",
    "vocational_enrolment": "vocational enrolment registry",
}


class CrossCheckRunner(StepRunner[CrossCheckStep]):
    answer: CrossCheckAnswer | None = None
    done = False

    async def run(self) -> None:
        app, step, a = self.app, self.step, self.app.inp.applicant
        places = app.inp.places
        answer = await workflow.execute_activity_method(
            CrossCheckActivities.check,
            CrossCheckRequest(
                national_id_hash=a.national_id_hash,
                household_no=a.household_no,
                village_code=places.village_code,
                county_code=places.county_code,
                against=step.against,
                education_levels=step.education_levels,
                years_of_study=step.years_of_study,
                # The day it runs; never before the submission (a paper form dated by
                # its office, or a clock behind it: the registers as of the submission).
                on=local_day(max(workflow.now(), app.inp.submitted_at)),
            ),
            start_to_close_timeout=_CHECK,
            summary=f"{step.label_en}: {', '.join(step.against)}",
        )
        self.answer = answer
        found_zh = "；".join(
            f"{_ZH_REGISTER[f.registry]}（截至{f.as_of or '无'}）：{f.zh}" for f in answer.findings
        )
        found_en = "; ".join(
            f"{_EN_REGISTER[f.registry]} (as of {f.as_of or 'none imported'}): {f.en}"
            for f in answer.findings
        )
        detail = {
            "passed": answer.passed,
            "snapshots": answer.snapshots(),
            "findings": [f.model_dump(mode="json") for f in answer.findings],
        }
        if answer.passed:
            self.done = True
            app.record(
                "cross_check",
                SYSTEM,
                f"{step.label_zh}通过：{found_zh} / {step.label_en} passed: {found_en}",
                detail,
            )
            return
        # Not refused: the leading group confirms or rejects it (PROCESS.md §4.2).
        app.record(
            "cross_check",
            SYSTEM,
            f"{step.label_zh}未通过，待{ROLE_NAME_ZH.get(step.role, '')}确认：{found_zh} / "
            f"{step.label_en} not passed, waiting for the {role_words(step.role)}: {found_en}",
            detail,
            notify=office_notice(places, step, "work_waiting"),
        )
        app.publish()
        await workflow.wait_condition(lambda: self.done or app.closed)

    # ------------------------------------------------------- what it waits for

    def waiting_for(self) -> Role | None:
        return self.step.role if self.answer is not None else Role.SYSTEM

    def details(self) -> tuple[str, str]:
        step = self.step
        if self.answer is None:
            return f"正在{step.label_zh}", f"{step.label_en} under way"
        failed = [f for f in self.answer.findings if not f.passed]
        return (
            f"{step.label_zh}未通过（{'；'.join(f.zh for f in failed)}），"
            f"等待{ROLE_NAME_ZH.get(step.role, '')}确认或否决",
            f"{step.label_en} not passed ({'; '.join(f.en for f in failed)}): waiting for the "
            f"{role_words(step.role)} to confirm or reject",
        )

    # -------------------------------------------------------------- decisions

    def settled(self) -> bool:
        return self.done

    def check_decision(self, req: DecisionRequest) -> None:
        step = self.step
        if req.stage != step.stage:
            super().check_decision(req)
        problems = self.check_place(req.actor, step.role, step.level, f"decide {step.stage}")
        if self.answer is None:
            problems.append(f"the {step.label_en} is under way: nothing to confirm yet")
        elif self.answer.passed:
            problems.append(f"the {step.label_en} passed: nothing to confirm")
        if req.decision is DecisionKind.RETURN_FOR_CORRECTION:
            problems.append(f"decision: the {role_words(step.role)} confirms (approve) or rejects")
        if not req.reason.strip():
            problems.append(f"reason is required to {req.decision.value}")
        if problems:
            raise Refused(problems)

    def apply_decision(self, req: DecisionRequest) -> RequestResult:
        app, step = self.app, self.step
        app.decided_by[req.actor.id] = step.stage
        detail = {
            "request_id": req.request_id,
            "decision": req.decision.value,
            "reason": req.reason,
        }
        if req.decision is DecisionKind.APPROVE:
            self.done = True
            message = f"{step.stage} confirmed: {req.reason}"
            app.record("decision", req.actor, f"{step.label_zh}：确认 / {message}", detail)
        else:
            message = f"{step.stage} rejected: {req.reason}"
            app.reject(req.reason)
            app.record(
                "decision",
                req.actor,
                f"{step.label_zh}：否决 / {message}",
                detail,
                notify=[ReviewRunner.applicant_told(step.label_zh, "rejected", req.reason)],
            )
        return app.result(req.request_id, message)
