"""A roster's side effect: the check against the civil-affairs rolls (store/rolls.py)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from models.roster import RollsAnswer, RollsCheck
from store.rolls import check_rolls


class RosterActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="check_civil_affairs_rolls")
    def check_rolls(self, req: RollsCheck) -> RollsAnswer:
        snapshot, categories = check_rolls(
            self._engine, req.county_code, req.national_id_hashes, req.as_of
        )
        return RollsAnswer(snapshot=snapshot, categories=categories)
