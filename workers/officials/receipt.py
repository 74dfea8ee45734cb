"""Signing for a grant in person: the student comes (a few never do), the office checks
the documents the step names, keeps a copy and records the funding source."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from models.application import ApplicationStatus, Places, ReceiptRecord
from models.programme import ReceiptStep
from workers.client import Refused
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season

# Now and then the high school pays from its own funds (PROCESS.md §4.1).
OWN_FUNDS_RATE = 0.1


class ReceiptDesk(Desk[ReceiptStep]):
    kind = "receipt"

    def receipt(self, places: Places, rng: random.Random, request_id: str) -> ReceiptRecord:
        sources = self.step.funding_sources
        own = rng.random() < OWN_FUNDS_RATE
        return ReceiptRecord(
            request_id=request_id,
            actor=people.official(self.step.handed_out_by, places),
            documents_checked=list(self.step.documents_checked),
            copy_kept=True,
            funding_source=sources[-1] if len(sources) > 1 and own else sources[0],
        )

    # ------------------------------------------------------------- simulator

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        if a.draw("unclaimed").random() < season.s.unclaimed_rate:
            return  # nobody comes: it stays open, is overdue at its date and reported
        season.at(
            season.delay(at, "receipt", a.draw("delay/receipt")),
            "signed receipt",
            lambda t: self.sign(season, a, t),
        )

    async def sign(self, season: Season, a: Case, at: datetime) -> None:
        await season.clocks.advance(a.workflow_id, at)
        receipt = self.receipt(a.form.places, a.draw("funding_source"), uuid.uuid4().hex)
        try:
            await season.again(lambda: season.api.record_receipt(a.workflow_id, receipt))
        except Refused:
            # Not there yet (an objection still open, say): the student comes back later.
            season.at(
                at + timedelta(days=1), "signed receipt (again)", lambda t: self.sign(season, a, t)
            )
            return
        season.counts["requests"] += 1
        a.terminal = self.programme.done_stage

    # ---------------------------------------------------------------- polled

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        what = "receipt"
        if not floor.due(st, what, 0.5, 3.0):
            return False
        req = self.receipt(st.places, floor.draw(st, what), floor.request_id(st, what))
        await floor.api.record_receipt(st.workflow_id, req)
        floor.sent(st, what, "学生本人签领 / signed for in person")
        return True
