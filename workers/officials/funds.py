"""Waiting for funds: nobody acts on one application; the county asks for the funds of
all that wait (the drivers' county office does, on the season)."""

from __future__ import annotations

from datetime import datetime

from models.programme import FundsStep
from workers.officials.base import Case, Desk, Season


class FundsDesk(Desk[FundsStep]):
    kind = "funds"

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        a.approved_at = at  # on the county's funds path
