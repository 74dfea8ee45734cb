"""Waiting for funds: nobody acts on one application; the county asks for the funds of
all that wait (the drivers' county office does, on the season)."""

from __future__ import annotations

from datetime import datetime

from models.programme import FundsStep
from workers.officials.base import Case, Desk, Season


class FundsDesk(Desk[FundsStep]):
    kind = "funds"

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        """``a`` is on the county's funds path from ``at``: at once, or, where the step
        before ends later (a notice's end, planned at its posting: Rain and Dew), then;
        a funds request before it must not count it."""
        if at <= season.now:
            a.approved_at = at
            return

        async def reached(t: datetime) -> None:
            a.approved_at = t

        season.at(at, "on the funds path", reached)
