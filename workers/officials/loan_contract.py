"""The loan's contract goes to the bank by itself (an activity): nobody acts; the
simulator waits to see the application move on."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial

from models.application import ApplicationStatus
from models.steps import LoanContractStep
from workers.officials.base import Case, Desk, Floor, Season, SimulationStalled

# How long the contract's activity (a file and two rows) may take to show.
SENT_WITHIN_SECONDS = 60.0


class LoanContractDesk(Desk[LoanContractStep]):
    kind = "loan_contract"

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        season.at(at, "loan contract sent", lambda t: self._sent(season, a, t))

    async def _sent(self, season: Season, a: Case, at: datetime) -> None:
        stage = self.step.stage
        await season.clocks.advance(a.workflow_id, at)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SENT_WITHIN_SECONDS
        status = partial(season.api.status, a.workflow_id)
        while (st := await season.again(status)).stage == stage:
            if loop.time() > deadline:
                seen = await season.diagnose(a.workflow_id, "loan contract")
                raise SimulationStalled(f"{a.workflow_id}: the contract was not sent\n{seen}")
            await asyncio.sleep(0.05)
        season.counts["loan contracts sent"] += 1
        if st.stage in ("rejected", "withdrawn"):
            a.terminal = st.stage
            return
        season.after(a, stage, at)

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        return False  # nobody acts: the activity sends it
