"""The registry of registered poor households, read by intake (R5)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from models.intake import RegisteredMember
from store.tables import Household, HouseholdMember


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
