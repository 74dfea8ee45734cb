"""Database tables (SQLModel on SQLAlchemy 2). The schema is owned by Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index)
    )


class ApplicationRow(SQLModel, table=True):
    """Read model: one row per application, as of its newest recorded event."""

    __tablename__ = "applications"

    workflow_id: str = Field(primary_key=True, max_length=200)
    programme: str = Field(max_length=64, index=True)
    season: int = Field(index=True)
    round: str = Field(default="", max_length=16)  # R12: "" for one round a year
    county_code: str = Field(max_length=12, index=True)
    township_code: str = Field(max_length=12, index=True)
    village_code: str = Field(max_length=12, index=True)
    school_code: str = Field(default="", max_length=32)  # the submitting school, if any
    # A student loan's university (its 5-digit code): the one that confirms its receipt.
    university_code: str = Field(default="", max_length=5)
    applicant_name: str = Field(max_length=100)
    national_id_masked: str = Field(max_length=18)
    national_id_hash: str = Field(max_length=64, index=True)
    university: str = Field(default="", max_length=200)
    stage: str = Field(max_length=64, index=True)
    overdue: bool = Field(default=False, index=True)
    overdue_dates: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    at_risk: bool = False
    amount_cny: int = 0
    last_seq: int = 0  # sequence number of the newest event applied: never moves backwards
    submitted_at: datetime | None = _ts()
    notice_posted_at: datetime | None = _ts()
    notice_ends_at: datetime | None = _ts()
    next_deadline: datetime | None = _ts()
    # What it waits for, and until when, as of its newest event (the status a service
    # reads without asking the workflow: store/status.py).
    waiting_for: str = Field(default="", max_length=32)
    waiting_until: datetime | None = _ts()
    decided_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    rejection_reason: str | None = None
    # The account on file (sealed: only payment activities open it).
    bank_name: str = Field(default="", max_length=100)
    account_masked: str = Field(default="", max_length=32)
    account_sealed: str = Field(default="")
    account_holder: str = Field(default="", max_length=100)
    # HMAC of the sealed fields (store/sealing.APPLICATION_SEALED) with Keys.rows, which
    # the database does not hold: an edit outside aidflow breaks it. "" only for rows
    # written before migration 0007 (RowSealing says which).
    row_mac: str = Field(default="", max_length=64)


class AuditEntry(SQLModel, table=True):
    """Append-only audit log; each row chains the hash of the previous row of its application."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("workflow_id", "seq", name="uq_audit_workflow_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=200, index=True)
    seq: int
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kind: str = Field(max_length=64)
    stage: str = Field(max_length=64)
    actor_id: str = Field(max_length=100)
    actor_role: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # The workflow's history length when the event was written (not in the hash): which
    # of two attempts of a task wrote it (activities/records.py); 0 before migration 0011.
    history_length: int = Field(default=0)


class OutboxMessage(SQLModel, table=True):
    """Notifications to send, written in the same transaction as the change they report."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=300, unique=True)
    workflow_id: str | None = Field(default=None, max_length=200, index=True)
    channel: str = Field(max_length=32)
    recipient: str = Field(max_length=200)
    subject: str = Field(max_length=200)
    body: str
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = _ts()
    delivered_via: str | None = Field(default=None, max_length=32)
    last_error: str | None = None


class Household(SQLModel, table=True):
    """A registered poor household (建档立卡贫困户), imported from the county poverty office."""

    __tablename__ = "households"

    household_no: str = Field(primary_key=True, max_length=64)
    head_name: str = Field(max_length=100)
    county_code: str = Field(max_length=12, index=True)
    township_code: str = Field(max_length=12)
    village_code: str = Field(max_length=12, index=True)
    status: str = Field(max_length=32)
    year: int
    # The registry round the row comes from (the import's --as-of): what Rain and Dew's
    # cross-check records it used. None: imported before migration 0014.
    as_of: date | None = None
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class HouseholdMember(SQLModel, table=True):
    """A member's identity number, only as a keyed hash and its masked form (R9)."""

    __tablename__ = "household_members"

    national_id_hash: str = Field(primary_key=True, max_length=64)
    national_id_masked: str = Field(max_length=18)
    household_no: str = Field(foreign_key="households.household_no", max_length=64, index=True)


class ApplicationClaim(SQLModel, table=True):
    """One application per student, programme, season and round in any county: claimed at
    submission, before its workflow starts (the read model's row comes only with its first
    event, seconds later: two counties' submissions in between both passed)."""

    __tablename__ = "application_claims"

    programme: str = Field(primary_key=True, max_length=64)
    season: int = Field(primary_key=True)
    round: str = Field(primary_key=True, default="", max_length=16)
    national_id_hash: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=200)
    county_code: str = Field(max_length=12)
    claimed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Enrolment(SQLModel, table=True):
    """Who studies where and at which level, as a dated snapshot of the enrolment data:
    coverage (应补尽补) reads the newest snapshot. One row per snapshot and student."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("kind", "as_of", "national_id_hash", name="uq_enrolment"),)

    id: int | None = Field(default=None, primary_key=True)
    # Whose snapshot: "enrolment" (the general enrolment data, read by coverage) or
    # "vocational" (the vocational enrolment registry, read by Rain and Dew's check).
    kind: str = Field(
        default="enrolment", max_length=16, sa_column_kwargs={"server_default": "enrolment"}
    )
    as_of: date = Field(index=True)
    national_id_hash: str = Field(max_length=64, index=True)
    national_id_masked: str = Field(max_length=18)
    name: str = Field(max_length=50)
    school: str = Field(max_length=100)
    education_level: str = Field(max_length=32)
    year_of_study: int
    source: str = Field(max_length=300)  # the imported file's name and row
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CivilAffairsRoll(SQLModel, table=True):
    """The civil-affairs bureau's rolls (低保, 特困, orphans...), as a dated snapshot of a
    county: the freshman grant's roster is checked against the newest on or before the
    check. One row per snapshot, county and person."""

    __tablename__ = "civil_affairs_rolls"
    __table_args__ = (
        UniqueConstraint("as_of", "county_code", "national_id_hash", name="uq_civil_affairs_roll"),
    )

    id: int | None = Field(default=None, primary_key=True)
    as_of: date = Field(index=True)
    county_code: str = Field(max_length=12, index=True)
    national_id_hash: str = Field(max_length=64, index=True)
    national_id_masked: str = Field(max_length=18)
    name: str = Field(max_length=50)
    category: str = Field(max_length=40)
    source: str = Field(max_length=300)  # the imported file's name and row
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RecordedAid(SQLModel, table=True):
    """Aid decided and paid by others, recorded for the yearly ledger (the national grant:
    each university's list). One row per programme, year, student and university."""

    __tablename__ = "recorded_aid"
    __table_args__ = (
        UniqueConstraint(
            "programme", "year", "national_id_hash", "university", name="uq_recorded_aid"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    programme: str = Field(max_length=64)
    year: int = Field(index=True)
    national_id_hash: str = Field(max_length=64, index=True)
    national_id_masked: str = Field(max_length=18)
    name: str = Field(max_length=50)
    university: str = Field(max_length=100)
    grade: str = Field(default="", max_length=20)
    amount_cny: int
    source: str = Field(max_length=300)  # the imported file's name and row
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Place(SQLModel, table=True):
    """County, township or village, by its 12-digit statistical division code."""

    __tablename__ = "places"

    code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=100)
    level: str = Field(max_length=16)
    parent_code: str | None = Field(default=None, max_length=12, index=True)
    # The office of this place (village committee, township office, county bureau).
    contact_email: str = Field(default="", max_length=200)
    contact_phone: str = Field(default="", max_length=32)


class FundsRequest(SQLModel, table=True):
    """A county's request for the season's funds, with its roster (花名册)."""

    __tablename__ = "funds_requests"

    id: str = Field(primary_key=True, max_length=100)
    programme: str = Field(max_length=64)
    season: int
    county_code: str = Field(max_length=12, index=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    count: int
    total_cny: int
    roster_path: str = ""
    arrived_at: datetime | None = _ts()
    arrived_amount_cny: int | None = None
    arrived_reference: str | None = Field(default=None, max_length=100)


class FundsRequestItem(SQLModel, table=True):
    __tablename__ = "funds_request_items"

    request_id: str = Field(foreign_key="funds_requests.id", primary_key=True, max_length=100)
    workflow_id: str = Field(
        primary_key=True, max_length=200, unique=True
    )  # one request per application
    amount_cny: int


class PayoutBatch(SQLModel, table=True):
    __tablename__ = "payout_batches"

    id: str = Field(primary_key=True, max_length=100)
    programme: str = Field(max_length=64)
    season: int
    county_code: str = Field(max_length=12, index=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    file_path: str = ""
    count: int = 0
    total_cny: int = 0
    status: str = Field(default="prepared", max_length=16)  # prepared, sent, settled


class Payment(SQLModel, table=True):
    """One payment attempt. The idempotency key (application, season, attempt) is unique:
    a batch re-sent after a crash can never create a second payment."""

    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    workflow_id: str = Field(max_length=200, index=True)
    attempt: int
    batch_id: str = Field(foreign_key="payout_batches.id", max_length=100, index=True)
    sequence: int
    amount_cny: int
    account_masked: str = Field(max_length=32)
    account_holder: str = Field(max_length=100)
    status: str = Field(default="sent", max_length=16)  # sent, paid, returned
    reason: str | None = None
    bank_reference: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    settled_at: datetime | None = _ts()
    # HMAC of who is paid what, to which account, and its status
    # (store/sealing.PAYMENT_SEALED): a payout never reads a row whose MAC does not match.
    row_mac: str = Field(default="", max_length=64)


class RowSealing(SQLModel, table=True):
    """When row MACs began (migration 0007; one row). Rows written before it carry an
    empty row_mac: the migration cannot compute one without the deployment's key. An
    empty row_mac counts as "not yet sealed" only for a row written before this
    watermark (an applications row updated before ``since``, a payment with an id up
    to ``payments_before_id``); on any later row it is a break. The watermark is the
    database's own word, so store/audit.verify checks it against the sealed rows: a
    watermark moved forward past a sealed row is named too."""

    __tablename__ = "row_sealing"

    id: int = Field(default=1, primary_key=True)
    since: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    payments_before_id: int = 0


class CredentialRow(SQLModel, table=True):
    """An office's or a service's credential (R10): bound to one actor, role and place.

    The API key itself is not stored: it is derived from the deployment's authority key
    and the binding (``models.authority.credential_key``), and only its SHA-256 is kept,
    so a reader of the database can neither use nor mint one."""

    __tablename__ = "credentials"

    id: str = Field(primary_key=True, max_length=64)
    actor_id: str = Field(max_length=64)
    actor_name: str = Field(max_length=100)
    role: str = Field(max_length=64)
    place_code: str = Field(default="", max_length=32)
    key_sha256: str = Field(max_length=64)
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = _ts()


class DeploymentRow(SQLModel, table=True):
    """The database's identity (one row, made with the database). The Temporal namespace
    records the identity of the database its workers write (workers/deployment.py): a
    worker pointed at another database refuses to start."""

    __tablename__ = "deployment"

    database_id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Recovery(SQLModel, table=True):
    """The recovery list (追回): a paid grant cancelled because a report or objection
    proved true, open until the county marks the money recovered. One row a grant."""

    __tablename__ = "recoveries"

    application_id: str = Field(primary_key=True, max_length=200)
    programme: str = Field(max_length=64, index=True)
    season: int
    round: str = Field(default="", max_length=16)
    county_code: str = Field(max_length=12, index=True)
    village_code: str = Field(max_length=12)
    applicant_name: str = Field(max_length=100)
    national_id_masked: str = Field(max_length=18)
    amount_cny: int
    reason: str = Field(max_length=2000)
    report_ref: str = Field(default="", max_length=100)
    cancelled_by: str = Field(max_length=100)
    cancelled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    recovered_cny: int = 0
    recovered_reference: str = Field(default="", max_length=100)
    recovered_by: str = Field(default="", max_length=100)
    recovered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class LoanReceipt(SQLModel, table=True):
    """A student loan's receipt of acceptance (受理证明): its verification code's digest
    (never the code) and what a university may learn from it (store/loans.py)."""

    __tablename__ = "loan_receipts"

    code_digest: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=200, unique=True)
    student_masked: str = Field(max_length=100)
    university: str = Field(max_length=100)
    university_code: str = Field(max_length=5)
    year: int
    amount_cny: int
    accepted_on: str = Field(max_length=10)
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LoanContract(SQLModel, table=True):
    """A student loan's first contract: whose it is, so that a renewal (续贷) names one of
    the same student's (by keyed hash, R9)."""

    __tablename__ = "loan_contracts"

    contract_no: str = Field(primary_key=True, max_length=32)
    national_id_hash: str = Field(max_length=64, index=True)
    workflow_id: str = Field(max_length=200, unique=True)
    county_code: str = Field(max_length=12)
    first_year: int
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LoanQueueTicket(SQLModel, table=True):
    """A family waiting at the county student-aid centre: registered-poor students are
    served first (PROCESS.md §4.4), then in the order they came."""

    __tablename__ = "loan_queue"
    __table_args__ = (Index("ix_loan_queue_waiting", "county_code", "served_at"),)

    id: int | None = Field(default=None, primary_key=True)
    county_code: str = Field(max_length=12)
    national_id_hash: str = Field(max_length=64)
    student_masked: str = Field(max_length=100)
    registered_poor: bool
    arrived_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    served_at: datetime | None = _ts()
    workflow_id: str | None = Field(default=None, max_length=200)


class CaseRow(SQLModel, table=True):
    """A case as reports read it (PROCESS.md §5): where it stands, its group, its misses."""

    __tablename__ = "cases"

    workflow_id: str = Field(primary_key=True, max_length=200)
    programme: str = Field(max_length=40, index=True)
    year: int = Field(index=True)
    county_code: str = Field(max_length=12, index=True)
    township_code: str = Field(max_length=12)
    village_code: str = Field(max_length=12)
    subject_masked: str = Field(max_length=100)
    subject_hash: str = Field(max_length=64)
    level: str = Field(default="", max_length=16)  # the school level (dropout: per level)
    stage: str = Field(max_length=40)
    overdue: int = 0
    members: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    last_seq: int = 0
    opened_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CaseEventRow(SQLModel, table=True):
    """A case's trail: its contact log, the periods judged, misses, handovers, closure."""

    __tablename__ = "case_events"

    workflow_id: str = Field(primary_key=True, max_length=200)
    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kind: str = Field(max_length=32, index=True)
    actor_id: str = Field(max_length=64)
    actor_role: str = Field(max_length=32)
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
