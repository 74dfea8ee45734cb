"""A roster step: the application joins its cohort's roster (a RosterWorkflow, started
if it is not running) and waits for the roster's word on it, given once by the office
of the step for the whole list (models/roster.py). The word is recorded here, in the
student's own trail, under the official who gave it."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from workflows.steps.base import StepRunner, role_words

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM
    from models.domain import RELIEF_CATEGORY_ZH, ROLE_NAME_ZH
    from models.notice import notice_joins_queue
    from models.records import NotificationIntent
    from models.roster import (
        RosterInput,
        RosterJoined,
        RosterJoinRequest,
        RosterLeft,
        RosterMember,
        RosterVerdict,
    )
    from models.steps import RosterStep

_JOIN = timedelta(seconds=10)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class RosterRunner(StepRunner[RosterStep]):
    verdict: RosterVerdict | None = None
    roster_id: str | None = None

    async def run(self) -> None:
        app, step = self.app, self.step
        a, places = app.inp.applicant, app.inp.places
        roster = RosterInput(
            programme=app.programme,
            season=app.inp.season,
            county_code=places.county_code,
            county_name=places.county_name,
        )
        self.roster_id = roster.workflow_id
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
        # By name: importing activities.roster here sends mypy round an import cycle in
        # which the workflow classes' handles lose their types (workers/client/api.py).
        joined = await workflow.execute_activity(
            "join_roster",
            RosterJoinRequest(roster=roster, member=member),
            result_type=RosterJoined,
            task_queue=notice_joins_queue(workflow.info().task_queue),
            start_to_close_timeout=_JOIN,
            retry_policy=_RETRY,
            summary=f"join the roster {roster.workflow_id} for the {step.label_en}",
        )
        if self.verdict is None and not app.closed:  # the word may have come first
            who = ROLE_NAME_ZH.get(step.role, "")
            app.record(
                "roster_joined",
                SYSTEM,
                f"已列入名册 {joined.roster_id}，待{who}{step.label_zh} / on the roster "
                f"{joined.roster_id}, waiting for the {step.label_en}",
                {"roster": joined.roster_id, "members_waiting": joined.members_waiting},
            )
            app.publish()
        await workflow.wait_condition(lambda: self.verdict is not None or app.closed)
        if self.verdict is None:  # withdrawn while it waited: the roster counts it out
            # Awaited here, before the application can complete: a signal still in
            # flight when its sender completes was never delivered (seen on the dev server).
            with contextlib.suppress(FailureError):
                await workflow.get_external_workflow_handle(roster.workflow_id).signal(
                    "member_left", RosterLeft(workflow_id=app.inp.workflow_id)
                )

    def details(self) -> tuple[str, str]:
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
