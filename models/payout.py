"""Funds and card payout (R7): the messages between applications, the season and the batches."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.application import Actor
from models.privacy import MaskedAccount
from models.programme import Programme
from models.text import ForeignLine, Name, RequestId


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- application <- season / batch (signals) --------------------------------------


class FundsRelease(_Model):
    """The funds arrived: pay by ``pay_by`` (10 calendar days, never after the payout date)."""

    request_id: str
    reference: str
    arrived_at: datetime
    pay_by: datetime


class PaymentSent(_Model):
    """A payment in a batch's disbursement file (prepared before the file is sent)."""

    workflow_id: str
    batch_id: str
    idempotency_key: str
    attempt: int
    account_masked: MaskedAccount


class PaymentOutcome(_Model):
    """The bank's word on one payment, and what was sent: one message to the application
    per attempt (issue 20: a separate "sent" message was a workflow task of its own, and
    the application needs none: an account is corrected only after a return)."""

    batch_id: str
    idempotency_key: str
    attempt: int = Field(ge=1)
    account_masked: MaskedAccount
    sent_at: datetime  # when the batch handed its file to the bank
    status: Literal["paid", "returned"]
    reason: ForeignLine = ""
    bank_reference: ForeignLine = ""


class AccountCorrection(_Model):
    """The village sends the corrected 一卡通 account after a returned payment."""

    request_id: RequestId
    actor: Actor
    bank_name: Name
    # Masked by aidflow's client, never in full (R9): at most 6 digits shown, then stars.
    account_masked: MaskedAccount
    account_sealed: str = Field(pattern=r"^gAAAAA[A-Za-z0-9_=-]+$", max_length=400)  # Fernet
    account_holder: Name


# --- the season workflow ------------------------------------------------------------


# Which season report: the one written at the payout date (the state of the county
# then), or the season summary written when the season closes (工作总结: everything paid).
ReportKind = Literal["payout_date", "season_end", "on_request"]


class ReportFiles(_Model):
    """Where a season report was written."""

    xlsx: str
    markdown: str
    as_of: ReportKind = "payout_date"


class SeasonInput(_Model):
    programme: Programme
    season: int
    county_code: str
    county_name: str = ""
    bank: str = "simulated"
    # Returned payments corrected within this time go out together in one re-payment batch.
    repayment_batch_delay: timedelta = timedelta(hours=1)
    reminder_days_before: int = 3
    # Villages are reminded of their eligible students who have not applied (应补尽补)
    # this many working days before the window's last day; 0: not reminded.
    coverage_reminder_working_days: int = Field(default=3, ge=0)
    # At most this many payments in one disbursement file (one PayoutBatchWorkflow):
    # a batch's history holds four events per payment and its prepared file travels
    # as one payload, both of which Temporal caps (51,200 events, 2 MB).
    payout_batch_size: int = Field(default=2000, ge=1)
    # A run of the season continues as new once its history grew by this many events;
    # 0: when the server suggests it (at 4,096 events or 4 MB by default). Tests set it low.
    continue_as_new_after_events: int = Field(default=0, ge=0)
    # What an earlier run of this season handed on when it continued as new.
    carried: SeasonCarry | None = None


class RoundOpening(_Model):
    """The county opens a round (Rain and Dew: the county poverty office, once the
    national system has opened it, which it records); the townships are told."""

    request_id: str = Field(min_length=1, max_length=100)
    actor: Actor
    national_opened_on: date  # the day the national system opened the round
    note: str = Field(default="", max_length=500)


class RoundOpened(_Model):
    opening: RoundOpening
    opened_at: datetime
    townships_told: int


class SeasonCarry(_Model):
    """The season's state, handed from one run to the next (continue-as-new).

    Requests whose funds arrived are handed on without their roster's workflow ids and
    amounts (nothing reads them again), so the hand-over stays small: what grows with
    the county is only the applications released and not yet paid, and requests still
    waiting for their funds.
    """

    requests: list[FundsRequestSummary] = Field(default_factory=list)
    arrivals: dict[str, FundsArrivalResult] = Field(default_factory=dict)
    released: list[str] = Field(default_factory=list)
    pending: list[PayItem] = Field(default_factory=list)
    unsettled: list[str] = Field(default_factory=list)
    batches: list[BatchResult] = Field(default_factory=list)
    batch_seq: int = 0
    reminded: list[str] = Field(default_factory=list)  # fixed-date keys already reminded of
    report: ReportFiles | None = None
    runs: int = 1  # runs before the one this starts
    opened: RoundOpened | None = None


class FundsRequestCommand(_Model):
    request_id: str = Field(min_length=1, max_length=100)
    actor: Actor


class FundsRequestOf(_Model):
    """The funds request an application is on (None: on none yet)."""

    request_id: str | None = None


class FundsRequestSummary(_Model):
    request_id: str
    county_code: str
    season: int
    count: int
    total_cny: int
    roster_path: str
    workflow_ids: list[str]
    amounts: dict[str, int] = Field(default_factory=dict)  # approved amount by workflow id
    created: bool = True  # False when the request already existed (a repeat)


class FundsArrival(_Model):
    request_id: str = Field(min_length=1, max_length=100)  # idempotency key of this message
    actor: Actor
    funds_request_id: str
    amount_cny: int
    reference: str = Field(min_length=1, max_length=100)


class FundsArrivalResult(_Model):
    funds_request_id: str
    released: int
    pay_by: datetime
    batch_id: str  # the first of batch_ids
    batch_ids: list[str] = Field(default_factory=list)  # empty before batches were capped


# --- payout batches -------------------------------------------------------------------


class PayItem(_Model):
    workflow_id: str
    amount_cny: int
    attempt: int


class PayoutBatchInput(_Model):
    # A file name at the bank (outbox/<batch_id>.csv): letters, digits and hyphens only.
    batch_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,119}$")
    programme: str
    season: int
    round: str = ""
    county_code: str
    items: list[PayItem]
    bank: str = "simulated"


class PreparedBatch(_Model):
    batch_id: str
    file_path: str
    included: list[PaymentSent]
    skipped: list[str]  # workflow ids already paid (never paid twice)
    total_cny: int


class BankResultRow(_Model):
    sequence: int
    idempotency_key: str
    status: Literal["paid", "returned"]
    reason: ForeignLine = ""
    bank_reference: ForeignLine = ""


class BatchResult(_Model):
    batch_id: str
    paid: int
    returned: int
    skipped: int
    # The applications the batch settled: paid now, or found already paid. The season
    # learns it here rather than by a signal from each application (issue 20: a
    # workflow task and four events of every paid application); it keeps the counts.
    settled: list[str] = []


# Built here, where every name they use is defined: a model left to build itself on first
# use does so in the workflow sandbox, which cannot resolve the names (a season of 1,000
# under the fault harness failed every workflow task of its continue-as-new).
SeasonCarry.model_rebuild()
SeasonInput.model_rebuild()
