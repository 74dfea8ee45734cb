"""The registry of registered poor households, read by intake (R5)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from models.intake import PriorApplication, RegisteredMember
from store.tables import ApplicationRow, Household, HouseholdMember


class RegistryReader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def lookup(self, id_hash: str) -> RegisteredMember | None:
        with Session(self._engine) as session:
            row = session.execute(
                select(
                    col(Household.household_no), col(Household.village_code), col(Household.status)
                )
                .join(
                    HouseholdMember,
                    col(HouseholdMember.household_no) == col(Household.household_no),
                )
                .where(col(HouseholdMember.national_id_hash) == id_hash)
            ).first()
        if row is None:
            return None
        return RegisteredMember(household_no=row[0], village_code=row[1], status=row[2])

    def applications(self, id_hash: str, season: int) -> list[PriorApplication]:
        """The student's applications of a season, every programme and county (intake's
        one-a-season and exclusion rules)."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(
                    col(ApplicationRow.programme),
                    col(ApplicationRow.round),
                    col(ApplicationRow.workflow_id),
                    col(ApplicationRow.county_code),
                    col(ApplicationRow.stage),
                ).where(
                    col(ApplicationRow.national_id_hash) == id_hash,
                    col(ApplicationRow.season) == season,
                )
            ).all()
        return [
            PriorApplication(programme=p, round=r, workflow_id=w, county_code=c, stage=s)
            for p, r, w, c, s in rows
        ]
