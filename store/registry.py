"""The registry of registered poor households, read by intake (R5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from models.intake import NOT_COUNTED, PriorApplication, RegisteredMember
from store.chain import utc
from store.tables import (
    ApplicationClaim,
    ApplicationRow,
    CaseEventRow,
    CaseRow,
    Household,
    HouseholdMember,
)

# A claim whose workflow has recorded nothing for this long is taken to have never
# started (its start failed after the claim): another county may claim it.
CLAIM_STALE_AFTER = timedelta(minutes=10)
# The cadre-pairing programme, and the stages of a case still open (workflows/case.py).
PAIRING = "cadre-pairing"
OPEN_CASE_STAGES = ("case_open", "closure_pending", "awaiting_sign_off")


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

    def pairing_cadre(self, actor_id: str, id_hash: str, year: int, county_code: str) -> bool:
        """Whether ``actor_id`` is, now, in the group of an open cadre-pairing case of
        ``year`` in the county for the student's household (PROCESS.md §4.2: the pairing
        cadre may submit for the family, with its consent). A cadre who handed the case
        over is no longer in its group (the case's row keeps everyone who has been)."""
        with Session(self._engine) as session:
            household = select(col(HouseholdMember.household_no)).where(
                col(HouseholdMember.national_id_hash) == id_hash
            )
            members = select(col(HouseholdMember.national_id_hash)).where(
                col(HouseholdMember.household_no).in_(household)
            )
            cases = session.execute(
                select(col(CaseRow.workflow_id), col(CaseRow.members)).where(
                    col(CaseRow.programme) == PAIRING,
                    col(CaseRow.year) == year,
                    col(CaseRow.county_code) == county_code,
                    col(CaseRow.subject_hash).in_(members),
                    col(CaseRow.stage).in_(OPEN_CASE_STAGES),
                )
            ).all()
            for workflow_id, group in cases:
                if not any(m.get("actor_id") == actor_id for m in group or []):
                    continue
                handovers = session.execute(
                    select(col(CaseEventRow.detail))
                    .where(
                        col(CaseEventRow.workflow_id) == workflow_id,
                        col(CaseEventRow.kind) == "handover",
                    )
                    .order_by(col(CaseEventRow.seq))
                ).all()
                still = True
                for (detail,) in handovers:
                    if detail.get("leaving") == actor_id:
                        still = False
                    elif (detail.get("joining") or {}).get("actor_id") == actor_id:
                        still = True
                if still:
                    return True
        return False

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

    def claim(
        self,
        programme: str,
        season: int,
        round_: str,
        id_hash: str,
        workflow_id: str,
        county_code: str,
    ) -> PriorApplication | None:
        """Claim the student's one application of a programme, season and round for this
        workflow, before it starts; the application that holds it if another does (one
        still open, or submitted moments ago and not yet recorded)."""
        now = datetime.now(UTC)
        for _ in range(3):
            try:
                with Session(self._engine) as session, session.begin():
                    key = (programme, season, round_, id_hash)
                    held = session.get(ApplicationClaim, key)
                    if held is None:
                        session.add(
                            ApplicationClaim(
                                programme=programme,
                                season=season,
                                round=round_,
                                national_id_hash=id_hash,
                                workflow_id=workflow_id,
                                county_code=county_code,
                                claimed_at=now,
                            )
                        )
                        return None
                    if held.workflow_id == workflow_id:
                        return None
                    row = session.get(ApplicationRow, held.workflow_id)
                    claimed_at = utc(held.claimed_at)
                    if (row is not None and row.stage not in NOT_COUNTED) or (
                        row is None and now - claimed_at < CLAIM_STALE_AFTER
                    ):
                        return PriorApplication(
                            programme=programme,
                            round=round_,
                            workflow_id=held.workflow_id,
                            county_code=held.county_code,
                            stage=row.stage if row is not None else "submitted",
                        )
                    # Ended (rejected, withdrawn), or never started: this one takes it.
                    held.workflow_id, held.county_code, held.claimed_at = (
                        workflow_id,
                        county_code,
                        now,
                    )
                    return None
            except IntegrityError:
                continue  # claimed by another at the same moment: look again
        raise RuntimeError("the application's claim kept changing")  # pragma: no cover
