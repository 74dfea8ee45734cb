"""The office of a roster step: the civil-affairs bureau finds most students eligible
(under a category) and a few not; the provincial Youth League confirms most and takes a
few off the list.

A real office gives one word for the whole roster; the simulated one gives it as each
student reaches the step (a word naming that student alone), so that every driver can
follow an application on its own. The roster, its refusals and its one-word path are
tested on their own (tests/test_freshman_grant.py).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from models.application import ApplicationStatus, Places
from models.domain import ReliefCategory
from models.roster import EntryVerdict, RosterDecision
from models.season import SeasonKey
from models.steps import RosterStep
from workers.client import Refused
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season

AGAIN_AFTER = timedelta(hours=4)
AGAIN_AT_MOST = 20


class RosterDesk(Desk[RosterStep]):
    kind = "roster"

    def verdict(self, rng: random.Random, workflow_id: str, rejection_rate: float) -> EntryVerdict:
        """The word on one student, from one roll of ``rng`` (then the reason's or the
        category's draw)."""
        if rng.random() > 1 - rejection_rate:
            return EntryVerdict(
                workflow_id=workflow_id, eligible=False, reason=rng.choice(people.REJECT_REASONS)
            )
        category = rng.choice(list(ReliefCategory)) if self.step.names_category else None
        return EntryVerdict(workflow_id=workflow_id, eligible=True, category=category)

    def request(self, places: Places, verdict: EntryVerdict, request_id: str) -> RosterDecision:
        return RosterDecision(
            request_id=request_id,
            actor=people.official(self.step.role, places),
            stage=self.step.stage,
            entries=[verdict],
        )

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        stage = self.step.stage
        a.opened[stage] += 1
        when = season.delay(at, "review_county", a.draw(f"delay/{stage}/{a.opened[stage]}"))
        season.at(when, f"{stage} word on the roster", lambda t: self.decide(season, a, t))

    async def decide(self, season: Season, a: Case, at: datetime, attempt: int = 1) -> None:
        stage, form = self.step.stage, a.form
        await season.clocks.advance(a.workflow_id, at)
        verdict = self.verdict(
            a.draw(f"decide/{stage}/{a.opened[stage]}"), a.workflow_id, season.s.rejection_rate
        )
        req = self.request(form.places, verdict, uuid.uuid4().hex)
        try:
            await season.again(
                lambda: season.api.decide_roster(
                    form.programme, form.season, form.places.county_code, req, round_=form.round
                )
            )
        except Refused:  # not on the roster yet (its join under way): later
            season.counts["decisions refused"] += 1
            if attempt < AGAIN_AT_MOST:
                season.at(
                    at + AGAIN_AFTER,
                    f"{stage} word (again)",
                    lambda t: self.decide(season, a, t, attempt + 1),
                )
            return
        season.counts["requests"] += 1
        if verdict.eligible:
            season.after(a, stage, at)
        else:
            a.terminal = "rejected"

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        step, wf = self.step, st.workflow_id
        if st.waiting_for != step.role.value:
            return False
        what = f"roster/{step.stage}"
        if not floor.due(st, what, 0.3, 2.0):
            return False
        verdict = self.verdict(floor.draw(st, what), wf, floor.rejection_rate(False))
        req = self.request(st.places, verdict, floor.request_id(st, what))
        # The round is in the application's id (programme/2027-undergraduate/county/…).
        key = SeasonKey.parse(wf.split("/")[1])
        await floor.api.decide_roster(
            st.programme, key.year, st.places.county_code, req, round_=key.round
        )
        floor.sent(st, what, f"{step.stage} {'eligible' if verdict.eligible else 'not eligible'}")
        return True
