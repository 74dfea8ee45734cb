"""The reviewing office: approves most, returns some of the first review for
correction, rejects a few; the applicant (or its school) corrects what was returned."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from models.application import ApplicationStatus, CorrectionRequest, DecisionRequest, Places
from models.domain import DecisionKind, DocumentKind, Role
from models.programme import ReviewStep
from workers.client import Refused
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season

# A decision refused (the application not there yet: an objection still open) is sent
# again this much later, this many times at most.
AGAIN_AFTER = timedelta(hours=4)
AGAIN_AT_MOST = 20


class ReviewDesk(Desk[ReviewStep]):
    kind = "review"

    # ---------------------------------------------------------------- choices

    def decision(
        self,
        rng: random.Random,
        *,
        first: bool,
        returned_once: bool,
        return_rate: float,
        rejection_rate: float,
    ) -> tuple[DecisionKind, str]:
        """What the office decides, from one roll of ``rng`` (then the reason's draw)."""
        roll = rng.random()
        if first and not returned_once and roll < return_rate:
            return DecisionKind.RETURN_FOR_CORRECTION, rng.choice(people.RETURN_REASONS)
        if roll > 1 - rejection_rate:
            return DecisionKind.REJECT, rng.choice(people.REJECT_REASONS)
        return DecisionKind.APPROVE, ""

    def request(
        self, places: Places, decision: DecisionKind, reason: str, request_id: str
    ) -> DecisionRequest:
        return people.decision(self.step, places, decision, reason, request_id)

    def correction(
        self, corrector: Role, places: Places, workflow_id: str, request_id: str
    ) -> CorrectionRequest:
        """The returned application corrected: the missing document handed in."""
        return CorrectionRequest(
            request_id=request_id,
            actor=(
                people.applicant(workflow_id)
                if corrector is Role.APPLICANT
                else people.official(corrector, places)
            ),
            documents={DocumentKind.HOUSEHOLD_REGISTER_HEAD: 1},
            note=people.CORRECTED,
        )

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        stage = self.step.stage
        a.opened[stage] += 1
        when = season.delay(
            at, f"review_{self.step.actor_level.value}", a.draw(f"delay/{stage}/{a.opened[stage]}")
        )
        season.at(when, f"{stage} decision", lambda t: self.decide(season, a, t))

    async def decide(self, season: Season, a: Case, at: datetime, attempt: int = 1) -> None:
        stage, programme = self.step.stage, self.programme
        await season.clocks.advance(a.workflow_id, at)
        # The same draw however often the request was refused and tried again.
        decision, reason = self.decision(
            a.draw(f"decide/{stage}/{a.opened[stage]}"),
            first=stage == programme.steps[0].stage,
            returned_once=a.returned_once,
            return_rate=season.s.return_rate,
            rejection_rate=season.s.rejection_rate,
        )
        req = self.request(a.form.places, decision, reason, uuid.uuid4().hex)
        try:
            await season.again(lambda: season.api.decide(a.workflow_id, req))
        except Refused:
            season.counts["decisions refused"] += 1
            if attempt < AGAIN_AT_MOST:
                season.at(
                    at + AGAIN_AFTER,
                    f"{stage} decision (again)",
                    lambda t: self.decide(season, a, t, attempt + 1),
                )
            return
        season.counts["requests"] += 1
        if decision is DecisionKind.RETURN_FOR_CORRECTION:
            a.returned_once = True
            season.counts["returned for correction"] += 1
            season.at(
                season.delay(at, "applicant_correction", a.draw("delay/applicant_correction")),
                "applicant correction",
                lambda t: self.correct(season, a, t),
            )
        elif decision is DecisionKind.REJECT:
            a.terminal = "rejected"
        else:
            season.after(a, stage, at)

    async def correct(self, season: Season, a: Case, at: datetime) -> None:
        await season.clocks.advance(a.workflow_id, at)
        correction = self.correction(
            self.programme.corrections.by[0],
            a.form.places,
            a.workflow_id,
            uuid.uuid4().hex,
        )
        await season.again(lambda: season.api.correct(a.workflow_id, correction))
        season.counts["requests"] += 1
        self.opened(season, a, at)

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        step, wf = self.step, st.workflow_id
        corrector = self.programme.corrections.by[0]
        if st.waiting_for == corrector.value and corrector is not step.role:
            what = f"correct/{step.stage}"
            if not floor.due(st, what, 0.5, 1.5):
                return False
            correction = self.correction(corrector, st.places, wf, floor.request_id(st, what))
            await floor.api.correct(wf, correction)
            floor.sent(st, what, "申请人补交材料 / applicant corrected")
            return True
        if st.waiting_for != step.role.value:
            return False
        what = f"decide/{step.stage}"
        if not floor.due(st, what, 0.3, 2.0):
            return False
        first = step.stage == self.programme.steps[0].stage
        decision, reason = self.decision(
            floor.draw(st, what),
            first=first,
            returned_once=floor.visit(st, what) > 0,  # back after a return
            return_rate=floor.return_rate,
            rejection_rate=floor.rejection_rate(first),
        )
        req = self.request(st.places, decision, reason, floor.request_id(st, what))
        await floor.api.decide(wf, req)
        floor.sent(st, what, f"{step.stage} {decision.value}" + (f"（{reason}）" if reason else ""))
        return True
