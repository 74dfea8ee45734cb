"""An office confirming what happened outside aidflow: the university that the student
brought the loan's receipt (a few never enrol), the bank that it paid the loan. A
confirmation that never comes leaves the application overdue at its date."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

from models.application import ApplicationStatus, DecisionRequest, Places
from models.domain import ROLE_NAME_ZH, DecisionKind, Level
from models.steps import ConfirmationStep
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season

# Of the students who got a receipt, this many never enrol (the university says so).
NEVER_ENROLLED = 0.02


class ConfirmationDesk(Desk[ConfirmationStep]):
    kind = "confirmation"

    def decision(self, rng: random.Random) -> tuple[DecisionKind, str]:
        if self.step.level is Level.UNIVERSITY and rng.random() < NEVER_ENROLLED:
            return DecisionKind.REJECT, "学生未到校报到 / the student did not enrol"
        prefix = "回执" if self.step.level is Level.UNIVERSITY else "放款"
        return DecisionKind.APPROVE, f"{prefix} {rng.randint(1, 99999):05d}"

    def request(
        self, places: Places, decision: DecisionKind, reason: str, request_id: str
    ) -> DecisionRequest:
        return people.decision(self.step, places, decision, reason, request_id)

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        if a.draw(f"silent/{self.step.stage}").random() < season.s.unclaimed_rate:
            return  # it never comes: overdue at its date, and reported
        when = season.delay(at, "confirmation", a.draw(f"delay/{self.step.stage}"))
        season.at(when, f"{self.step.stage} confirmed", lambda t: self._confirm(season, a, t))

    async def _confirm(self, season: Season, a: Case, at: datetime) -> None:
        await season.clocks.advance(a.workflow_id, at)
        decision, reason = self.decision(a.draw(f"decide/{self.step.stage}"))
        req = self.request(a.form.places, decision, reason, uuid.uuid4().hex)
        await season.again(lambda: season.api.decide(a.workflow_id, req))
        season.counts["requests"] += 1
        if decision is DecisionKind.REJECT:
            a.terminal = "rejected"
        else:
            season.counts[f"confirmed: {self.step.stage}"] += 1
            if self.step is self.programme.steps[-1]:
                a.terminal = self.programme.done_stage  # the loan paid: it is lent
            else:
                season.after(a, self.step.stage, at)

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        what = f"confirm/{self.step.stage}"
        if not floor.due(st, what, 0.5, 3.0):
            return False
        decision, reason = self.decision(floor.draw(st, what))
        await floor.api.decide(
            st.workflow_id, self.request(st.places, decision, reason, floor.request_id(st, what))
        )
        who = ROLE_NAME_ZH.get(self.step.role, "")
        said = self.step.event_zh if decision is DecisionKind.APPROVE else "未确认"
        floor.sent(st, what, f"{who}：{said}（{reason}）")
        return True
