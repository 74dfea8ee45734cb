"""Inputs and outputs of the activities the application workflow calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.application import Places, TrailEvent
from models.calendar import NoticeCounting
from models.domain import Role
from models.notice import JoinRequest, MemberMessage
from models.planner import PlannedStep
from models.privacy import MaskedAccount
from models.programme import Programme


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleRequest(_Model):
    programme: Programme
    season: int


class ReminderTimesRequest(_Model):
    programme: Programme
    season: int
    days_before: int
    # The villages reminded of their students not yet covered (应补尽补) this many
    # working days before the window's last day; 0: not reminded.
    coverage_working_days: int = 0


# The reminder times' key for the coverage reminder (beside the fixed dates' keys).
COVERAGE_REMINDER = "coverage"


class NoticeRequest(_Model):
    """A notice's period from ``posted_at``; without it, from the automatic posting of a
    member ready at ``after``: ``clock`` of the first working day after that day (one
    question where the time and the period were two, each a marker: issue 20)."""

    posted_at: datetime | None = None
    after: datetime | None = None
    clock: time | None = None
    days: int
    counting: NoticeCounting

    @model_validator(mode="after")
    def _one_instant(self) -> NoticeRequest:
        if (self.posted_at is None) == (self.after is None or self.clock is None):
            raise ValueError("give posted_at, or after and clock")
        return self


class NoticeResult(_Model):
    posted_at: datetime
    ends_at: datetime
    counted_days: list[date]
    provisional: bool


class ProjectionRequest(_Model):
    programme: Programme
    season: int
    from_index: int
    at: datetime
    # The dates the application already knows to be at risk or overdue: a projection
    # that warns of nothing new comes back as its keys only (``Projection.of``).
    known: tuple[str, ...] = ()


class ProjectedStep(_Model):
    """A remaining step as the projection says it: when it can end at the earliest, and
    whether that meets its fixed date. Only this goes into the history and the trail
    (the planner's whole step, labels and counted days, was 2.8 KB a projection)."""

    stage: str
    earliest_end: datetime
    due_key: str
    meets_due: bool


class Projection(_Model):
    """The remaining steps projected on the calendar; only the keys of the dates at risk
    when none is new to the application: only a projection that warns of something new
    is read further (the at-risk record's detail), and one from the calendar's activity
    is a marker in every application's history (issue 20: seven of them were 7 KB of a
    paid application's 47)."""

    steps: list[ProjectedStep]
    # With the steps left out (nothing new at risk): the dates at risk.
    keys: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, steps: Iterable[PlannedStep], known: Iterable[str] = ()) -> Projection:
        projected = [
            ProjectedStep(
                stage=s.stage,
                earliest_end=s.earliest_end,
                due_key=s.due_key,
                meets_due=s.meets_due,
            )
            for s in steps
        ]
        full = cls(steps=projected)
        if set(full.at_risk_keys) <= set(known):
            return cls(steps=[], keys=full.at_risk_keys)
        return full

    @property
    def at_risk_keys(self) -> list[str]:
        if not self.steps:
            return list(self.keys)
        keys: list[str] = []
        for s in self.steps:
            if not s.meets_due and s.due_key not in keys:
                keys.append(s.due_key)
        return keys


Audience = Literal["applicant", "office", "county", "objector"]


class NotificationIntent(_Model):
    """A message to send: rendered from a template by the activity, never by the workflow."""

    audience: Audience
    role: Role | None = None  # for audience "office"
    place_code: str = ""
    template: str
    params: dict[str, Any] = Field(default_factory=dict)
    # For audience "objector": the contact given with the objection.
    recipient: str = ""


class ApplicationSnapshot(_Model):
    """The read-model row as of the newest event in a batch."""

    workflow_id: str
    programme: str
    programme_name: str = ""
    season: int
    round: str = ""
    places: Places
    applicant_name: str
    national_id_masked: str
    national_id_hash: str
    university: str
    stage: str
    overdue_dates: list[str]
    at_risk: bool
    amount_cny: int
    submitted_at: datetime
    notice_posted_at: datetime | None = None
    notice_ends_at: datetime | None = None
    next_deadline: datetime | None = None
    waiting_for: str = ""
    waiting_until: datetime | None = None
    decided_at: datetime | None = None
    rejection_reason: str | None = None
    applicant_phone_sealed: str = ""
    applicant_email_sealed: str = ""
    bank_name: str = ""
    account_masked: MaskedAccount | Literal[""] = ""
    account_sealed: str = ""
    account_holder: str = ""


class EventBatch(_Model):
    """Events to persist, in order, with the state after the last of them.

    Idempotent: keyed by (workflow id, seq); a retry or a replay writes nothing twice.
    """

    snapshot: ApplicationSnapshot
    events: list[TrailEvent]
    notifications: dict[int, list[NotificationIntent]] = Field(default_factory=dict)  # by seq
    # The workflow's history length when the batch was made: a later attempt of a task
    # has a longer history, so a write of an attempt cut off and outlived by a later one
    # never retracts what the later one wrote (activities/records.py).
    history_length: int = 0
    # Words to the application's notice that its events bring (a join with its
    # ``notice_scheduled``, a posting's call with its ``notice_posted``): sent once the
    # events are saved, in this write (one marker, where a word of its own was another).
    tell: list[JoinRequest | MemberMessage] = Field(default_factory=list)


# The local activities that write an application's trail and answer its chain's head:
# the audit log's witness reads them back from the history (workers/witness.py).
TRAIL_WRITES = frozenset({"record_events", "record_events_and_tell"})


# The witness keeps the first 128 bits of the row's hash: enough that no rewritten chain
# matches it, and 32 bytes less in each of an application's trail markers (issue 20).
WITNESS_HEX = 32


class ChainHead(_Model):
    """An application's audit chain after a recording: its last seq and the start of that
    row's hash (kept in the workflow's history, so the database cannot rewrite it unseen).
    Histories recorded before the cut keep the whole hash: both are checked."""

    seq: int
    hash: str
    new: int = 0

    @staticmethod
    def of(seq: int, row_hash: str, new: int = 0) -> ChainHead:
        return ChainHead(seq=seq, hash=row_hash[:WITNESS_HEX], new=new)

    def witnesses(self, row_hash: str) -> bool:
        return len(self.hash) >= WITNESS_HEX and row_hash.startswith(self.hash)
