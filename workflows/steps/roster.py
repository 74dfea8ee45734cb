"""A roster step: the application joins its cohort's roster (a RosterWorkflow, started by
the gateway with the cohort's first student) and waits for the roster's word on it,
given once by the office of the step for the whole list (models/roster.py). The word is recorded here, in the
student's own trail, under the official who gave it."""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import FailureError

from workflows.steps.base import StepRunner, role_words

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM
    from models.domain import RELIEF_CATEGORY_ZH, ROLE_NAME_ZH
    from models.ids import roster_workflow_id
    from models.records import NotificationIntent
    from models.roster import RosterLeft, RosterMember, RosterVerdict
    from models.steps import RosterStep


class RosterRunner(StepRunner[RosterStep]):
    verdict: RosterVerdict | None = None
    roster_id: str | None = None
    closed_roster = False

    async def run(self) -> None:
        app, step = self.app, self.step
        a, places = app.inp.applicant, app.inp.places
        roster_id = roster_workflow_id(
            app.programme.code, app.inp.season, places.county_code, app.programme.round_key
        )
        self.roster_id = roster_id
        member = RosterMember(
            workflow_id=app.inp.workflow_id,
            name=a.name,
            village_code=places.village_code,
            school_or_level=a.university or a.education_level.value,
            amount_cny=app.inp.amount_cny,
            national_id_hash=a.national_id_hash,
            stage=step.stage,
            joined_at=workflow.now(),
        )
        # A message, not an update: a cohort's students reach the step together, and a
        # workflow takes at most ten updates at a time (the dev server refused the rest
        # and the SDK asked again at once: at 300 students the roster never caught up).
        try:
            await workflow.get_external_workflow_handle(roster_id).signal("member_joined", member)
        except FailureError:
            # Its roster has closed (past the programme's summary date): said, and the
            # application waits where operators see it.
            self.closed_roster = True
            app.record(
                "refused",
                SYSTEM,
                f"名册 {roster_id} 已关闭，无法列入 / the roster {roster_id} "
                "has closed: the student could not join it",
                {"roster": roster_id},
            )
            app.publish()
        else:
            who = ROLE_NAME_ZH.get(step.role, "")
            app.record(
                "roster_joined",
                SYSTEM,
                f"已列入名册 {roster_id}，待{who}{step.label_zh} / on the roster "
                f"{roster_id}, waiting for the {step.label_en}",
                {"roster": roster_id},
            )
            app.publish()
        await workflow.wait_condition(lambda: self.verdict is not None or app.closed)
        if self.verdict is None:  # withdrawn while it waited: the roster counts it out
            # Awaited here, before the application can complete: a signal still in
            # flight when its sender completes was never delivered (seen on the dev server).
            with contextlib.suppress(FailureError):
                await workflow.get_external_workflow_handle(roster_id).signal(
                    "member_left", RosterLeft(workflow_id=app.inp.workflow_id)
                )

    def details(self) -> tuple[str, str]:
        if self.closed_roster:
            return (
                f"名册 {self.roster_id} 已关闭，无法列入，请联系县教育局",
                f"the roster {self.roster_id} has closed: the student could not join it",
            )
        who = ROLE_NAME_ZH.get(self.step.role, "")
        return (
            f"等待{who}对名册作出{self.step.label_zh}",
            f"waiting for the {role_words(self.step.role)}'s {self.step.label_en} of the roster {self.roster_id or ''}".rstrip(),
        )

    def on_roster_decided(self, verdict: RosterVerdict) -> None:
        app, step = self.app, self.step
        if (
            verdict.stage != step.stage
            or verdict.roster_id != self.roster_id
            or self.verdict is not None
            or app.closed
        ):
            return
        self.verdict = verdict
        app.decided_by[verdict.actor.id] = step.stage
        category = (
            f"（{RELIEF_CATEGORY_ZH[verdict.category]}）" if verdict.category is not None else ""
        )
        rolls = (
            f"，据民政在册名单（截至{verdict.rolls_snapshot}） / by the civil-affairs rolls as of {verdict.rolls_snapshot}"
            if verdict.rolls_snapshot is not None
            else ""
        )
        detail = {
            "request_id": verdict.request_id,
            "roster": verdict.roster_id,
            "decision": "approve" if verdict.eligible else "reject",
            "reason": verdict.reason,
            "category": verdict.category.value if verdict.category else "",
            "rolls_snapshot": verdict.rolls_snapshot.isoformat() if verdict.rolls_snapshot else "",
        }
        if verdict.eligible:
            app.record(
                "decision",
                verdict.actor,
                f"{step.label_zh}：通过{category}{rolls} / {step.stage} approved on the roster",
                detail,
            )
        else:
            app.reject(verdict.reason)
            app.record(
                "decision",
                verdict.actor,
                f"{step.label_zh}：不通过{rolls} / {step.stage} rejected on the roster: {verdict.reason}",
                detail,
                notify=[
                    NotificationIntent(
                        audience="applicant",
                        template="rejected",
                        params={"stage": step.label_zh, "reason": verdict.reason},
                    )
                ],
            )
        app.publish()
