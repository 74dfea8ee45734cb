"""The county leading group at a cross-check (Rain and Dew): the registers answer by
themselves; an application they did not vouch for is confirmed (most: data not updated,
a household fallen back into poverty) or rejected, with a reason either way."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime
from functools import partial

from models.application import ApplicationStatus, DecisionRequest, Places
from models.domain import DecisionKind
from models.steps import CrossCheckStep
from workers.client import Refused
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season, SimulationStalled

# How long the check (an activity reading two tables) may take to show its answer.
CHECK_WITHIN_SECONDS = 60.0


class CrossCheckDesk(Desk[CrossCheckStep]):
    kind = "cross_check"

    def decision(self, rng: random.Random, rejection_rate: float) -> tuple[DecisionKind, str]:
        if rng.random() < rejection_rate:
            return DecisionKind.REJECT, rng.choice(people.CHECK_REJECT_REASONS)
        return DecisionKind.APPROVE, rng.choice(people.CONFIRM_REASONS)

    def request(
        self, places: Places, decision: DecisionKind, reason: str, request_id: str
    ) -> DecisionRequest:
        return people.decision(self.step, places, decision, reason, request_id)

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        season.at(at, f"{self.step.stage} answered", lambda t: self._answered(season, a, t))

    async def _answered(self, season: Season, a: Case, at: datetime) -> None:
        """The registers' answer: passed (the step is done at once) or waiting for the
        leading group, who look at it within their delay."""
        stage, role = self.step.stage, self.step.role.value
        await season.clocks.advance(a.workflow_id, at)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHECK_WITHIN_SECONDS
        while True:
            st = await season.again(partial(season.api.status, a.workflow_id))
            if st.stage != stage:
                season.counts["cross-checks passed"] += 1
                season.after(a, stage, at)
                return
            if st.waiting_for == role:
                break
            if loop.time() > deadline:
                seen = await season.diagnose(a.workflow_id, "cross-check")
                raise SimulationStalled(f"{a.workflow_id}: no cross-check answer\n{seen}")
            await asyncio.sleep(0.05)
        season.counts["cross-checks not passed"] += 1
        when = season.delay(at, "review_county", a.draw(f"delay/{stage}"))
        season.at(when, f"{stage} confirmation", lambda t: self._confirm(season, a, t))

    async def _confirm(self, season: Season, a: Case, at: datetime) -> None:
        await season.clocks.advance(a.workflow_id, at)
        decision, reason = self.decision(
            a.draw(f"decide/{self.step.stage}"), season.s.rejection_rate
        )
        req = self.request(a.form.places, decision, reason, uuid.uuid4().hex)
        await season.again(lambda: season.api.decide(a.workflow_id, req))
        season.counts["requests"] += 1
        if decision is DecisionKind.REJECT:
            a.terminal = "rejected"
        else:
            season.counts["confirmed by the leading group"] += 1
            season.after(a, self.step.stage, at)

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        step = self.step
        if st.waiting_for != step.role.value:
            return False  # the registers are answering, or passed it
        what = f"decide/{step.stage}"
        if not floor.due(st, what, 0.3, 2.0):
            return False
        decision, reason = self.decision(floor.draw(st, what), floor.rejection_rate(False))
        try:
            await floor.api.decide(
                st.workflow_id,
                self.request(st.places, decision, reason, floor.request_id(st, what)),
            )
        except Refused:
            return False
        floor.sent(
            st, what, f"领导小组{'确认' if decision is DecisionKind.APPROVE else '否决'}：{reason}"
        )
        return True
