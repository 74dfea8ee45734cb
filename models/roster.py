"""A roster (名册): a cohort's list of students, decided on as a whole (the freshman grant).

One RosterWorkflow per programme, season (the cohort is the season's round) and
county, started by the gateway with the cohort's first student. Each student is an
application of its own (its trail, its notice, its payment); at a roster step
(``models/steps/roster.py``) it joins its roster (a message) and waits for the
roster's word. The office gives that word once, in one request that names the
students it decides differently from the rest (the civil-affairs bureau: the
ineligible, and anyone its rolls do not answer for; the provincial Youth League: the
students it takes off the list); the roster tells each student's application.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.application import Actor
from models.domain import ReliefCategory, Role
from models.ids import roster_workflow_id
from models.programme import Programme
from models.text import LongText, RequestId, StageName

__all__ = [
    "MAX_ENTRIES",
    "EntryVerdict",
    "RollsAnswer",
    "RollsCheck",
    "RosterDecided",
    "RosterDecision",
    "RosterInput",
    "RosterLeft",
    "RosterMember",
    "RosterStatus",
    "RosterVerdict",
]

# A cohort of a county is some hundreds; the bound keeps one request's history event small.
MAX_ENTRIES = 5000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RosterInput(_Model):
    """Everything the roster needs, so that its history alone replays it."""

    programme: Programme  # the definition for the cohort (for_round)
    season: int
    county_code: str
    county_name: str = ""

    @property
    def workflow_id(self) -> str:
        return roster_workflow_id(
            self.programme.code, self.season, self.county_code, self.programme.round_key
        )


class RosterMember(_Model):
    """A student on the roster, as the roster shows it (R9: no identity number)."""

    workflow_id: str
    name: str
    village_code: str
    school_or_level: str
    amount_cny: int
    # The keyed hash of the identity number: what the civil-affairs rolls are matched on.
    national_id_hash: str
    stage: str  # the roster step it waits at
    joined_at: datetime


class RosterLeft(_Model):
    """A student's application closed (withdrawn) while it waited for its roster."""

    workflow_id: str


class EntryVerdict(_Model):
    """The word on one student: eligible (under a category, where the step asks for
    one) or not, with the reason."""

    workflow_id: Annotated[str, Field(min_length=1, max_length=200)]
    eligible: bool
    category: ReliefCategory | None = None
    reason: LongText = ""

    @model_validator(mode="after")
    def _reason_for_no(self) -> EntryVerdict:
        if not self.eligible and not self.reason.strip():
            raise ValueError(
                f"{self.workflow_id}: a reason is required for a student found ineligible"
            )
        return self


class RosterDecision(_Model):
    """An office's word on its roster at one stage.

    ``entries`` name the students decided one by one; ``others`` says what happens to
    everyone else waiting at the stage: ``approve`` (a confirmation that names only the
    students it removes), ``from_rolls`` (the civil-affairs rolls answer for each: on
    them, eligible under the category they list; not on them, ineligible), or ``none``
    (they wait for a later word)."""

    request_id: RequestId
    actor: Actor
    stage: StageName
    entries: list[EntryVerdict] = Field(default_factory=list, max_length=MAX_ENTRIES)
    others: Literal["approve", "from_rolls", "none"] = "none"
    note: LongText = ""

    @model_validator(mode="after")
    def _each_once(self) -> RosterDecision:
        ids = [e.workflow_id for e in self.entries]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"entries name {', '.join(twice)} more than once")
        return self


class RollsCheck(_Model):
    """Which of these students (by keyed hash) the civil-affairs rolls list, as of a day."""

    county_code: str
    national_id_hashes: list[str]
    as_of: date  # the latest snapshot on or before this day is used


class RollsAnswer(_Model):
    snapshot: date | None  # None: no snapshot of the county's rolls was imported
    categories: dict[str, ReliefCategory]  # hash -> category, for those on the rolls


class RosterVerdict(_Model):
    """The roster's word on one application (a message between aidflow's workflows)."""

    roster_id: str
    request_id: str
    stage: str
    eligible: bool
    category: ReliefCategory | None = None
    reason: str = ""
    actor: Actor
    rolls_snapshot: date | None = None


class RosterDecided(_Model):
    request_id: str
    stage: str
    approved: int
    refused: int
    still_waiting: int
    rolls_snapshot: date | None = None
    verdicts: list[EntryVerdict]


class RosterStatus(_Model):
    workflow_id: str
    programme: str
    season: int
    round: str
    county_code: str
    phase: str
    waiting_for: Role | None
    waiting_until: datetime | None
    overdue: list[str]
    members: list[RosterMember]
    decided: dict[str, dict[str, bool]]  # stage -> workflow id -> eligible
    decisions: list[RosterDecided]
    details_zh: str
    details_en: str
