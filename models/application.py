"""What flows in and out of an application workflow: its input, requests and trail."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from models.compact import Compact
from models.domain import (
    DecisionKind,
    DocumentKind,
    EducationLevel,
    Level,
    ObjectionOutcome,
    Role,
    level_of,
)
from models.loan import LoanRecord, LoanRequest
from models.privacy import MaskedAccount, short_digest
from models.programme import Programme
from models.schedule import SeasonSchedule
from models.text import ActorId, Line, LongText, Name, PlaceCode, RequestId, StageName

_PLACE_CODE = re.compile(r"^\d{12}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def province_code(code: str) -> str:
    """The 12-digit code of the province a place lies in (its first two digits)."""
    return code[:2] + "0" * 10


class Places(_Model):
    """The application's place of household registration (12-digit division codes)."""

    county_code: str
    township_code: str
    village_code: str
    county_name: str = ""
    township_name: str = ""
    village_name: str = ""
    # The high school that submitted the application, for programmes a school submits to.
    school_code: str = Field(default="", max_length=32)
    school_name: str = Field(default="", max_length=100)
    # The university a student loan is for (学校代码): the one that confirms its receipt.
    university_code: str = Field(default="", pattern=r"^(\d{5})?$")

    @field_validator("county_code", "township_code", "village_code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _PLACE_CODE.match(v):
            raise ValueError("must be a 12-digit statistical division code")
        return v

    def code_at(self, level: Level) -> str:
        return {
            Level.SCHOOL: self.school_code,
            Level.VILLAGE: self.village_code,
            Level.TOWNSHIP: self.township_code,
            Level.COUNTY: self.county_code,
            Level.PROVINCE: province_code(self.county_code),
            Level.UNIVERSITY: self.university_code,
        }[level]

    def code_for(self, role: Role) -> str:
        """The application's place that an office of ``role`` must hold."""
        return self.code_at(level_of(role))

    def name_at(self, level: Level) -> str:
        return {
            Level.SCHOOL: self.school_name,
            Level.VILLAGE: self.village_name,
            Level.TOWNSHIP: self.township_name,
            Level.COUNTY: self.county_name,
            Level.PROVINCE: "",
            Level.UNIVERSITY: "",
        }[level] or self.code_at(level)


class Actor(_Model):
    """Who acts: an official of an office at a place, the applicant, anyone, or aidflow."""

    id: ActorId
    name: Name
    role: Role
    place_code: PlaceCode = ""
    # The credential behind the request (R10): set from its signed statement, never
    # taken from a body; the audit log shows it beside the actor.
    credential: str = Field(default="", max_length=64)


def request_digest(req: BaseModel) -> str:
    """A digest of a request's body: with its kind, what its request id stands for (the
    workflow refuses the id used again for another request; the client makes it part of
    the Temporal update id)."""
    return short_digest(hashlib.sha256(req.model_dump_json().encode()).digest())


def request_key(req: BaseModel) -> str:
    """What a request id stands for: the kind of request and a digest of its body."""
    return f"{type(req).__name__}:{request_digest(req)}"


# aidflow itself: timers, automatic postings, messages between its workflows.
SYSTEM = Actor(id="aidflow", name="aidflow", role=Role.SYSTEM)


class Consent(_Model):
    """The family's consent to an official submitting for it (Rain and Dew): who gave it,
    in what relation to the student, when, and how."""

    given_by: Name
    relation: Annotated[Line, Field(min_length=1, max_length=20)]  # 本人, 父亲, 母亲, 监护人...
    given_at: datetime
    how: Literal["signed_form", "in_person", "phone"] = "signed_form"


class ApplicationForm(_Model):
    """An application as a service or the CLI submits it (validated at the boundary, R5)."""

    programme: str = "county-subsidy"
    season: int
    round: str = Field(default="", pattern=r"^[a-z]{0,16}$")  # R12: "" for one round a year
    applicant_name: Name
    national_id: str
    phone: str = ""
    email: str = ""
    household_no: str = Field(min_length=1, max_length=64)
    places: Places
    university: Annotated[Line, Field(min_length=1)]
    education_level: EducationLevel
    freshman: bool = False
    # Where the university is, for programmes whose amount depends on it (new-student aid).
    university_in_province: bool | None = None
    bank_name: Name
    account_number: str = Field(pattern=r"^\d{12,19}$")
    account_holder: Name
    documents: dict[DocumentKind, int] = Field(default_factory=dict)
    # Required when an office submits for the family (Programme.on_behalf_with_consent).
    consent: Consent | None = None
    # A loan programme's request: the amount, the fees, the co-borrower (Programme.loan).
    loan: LoanRequest | None = None


class ApplicantRecord(_Model):
    """The applicant as the workflow carries it: no identity or account number in clear (R9).

    ``national_id_sealed`` and ``account_sealed`` are encrypted with the
    deployment's key; only activities that need them (payment) open them.
    """

    name: str
    national_id_masked: str
    national_id_hash: str
    national_id_sealed: str
    phone_sealed: str = ""
    email_sealed: str = ""
    household_no: str
    university: str
    education_level: EducationLevel
    freshman: bool
    university_in_province: bool | None = None
    bank_name: str
    account_masked: MaskedAccount
    account_sealed: str
    account_holder: str
    documents: dict[DocumentKind, int]


class ApplicationInput(_Model):
    """The workflow's input: everything it needs, so the history alone replays it."""

    workflow_id: str
    # The definition in force for this application, kept for its life.
    programme: Compact[Programme]
    season: int
    places: Places
    applicant: ApplicantRecord
    amount_cny: int
    submitted_at: datetime
    submitted_by: Actor
    # The office that received a paper form and dated it (R10: only an office's
    # credential sets ``submitted_at`` in the past); None when submitted online.
    received_by: Actor | None = None
    # The family's consent, when an office submitted for it.
    consent: Consent | None = None
    # A loan's request, its co-borrower sealed.
    loan: LoanRecord | None = None
    calendar: str = "state-council"
    # The season's window, fixed dates and working days, computed by the gateway that
    # starts it (models/schedule.py): the first workflow task asks the calendar nothing.
    schedule: SeasonSchedule

    @model_validator(mode="after")
    def _schedule_is_the_programmes(self) -> ApplicationInput:
        """A schedule of another calendar or programme would put the deadlines elsewhere:
        refused with the input (a workflow fails at once, never a task on every retry)."""
        problems = []
        if self.schedule.calendar != self.calendar:
            problems.append(f"schedule: of calendar {self.schedule.calendar}, not {self.calendar}")
        have = sorted(d.key for d in self.schedule.fixed_dates)
        want = sorted(d.key for d in self.programme.fixed_dates)
        if have != want:
            problems.append(f"schedule: fixed dates {have}, the programme's are {want}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# ---------------------------------------------------------------------------
# Requests (updates / signals). Every request carries a request id (R4).


class _Request(_Model):
    request_id: RequestId
    actor: Actor


class CancellationRequest(_Request):
    """The grant cancelled by the programme's office (``Programme.cancelled_by``): a
    report from the public or an objection proved true (Rain and Dew). Before payment
    the application ends cancelled; after it, the amount goes onto the recovery list."""

    reason: Annotated[LongText, Field(min_length=1)]
    report_ref: Annotated[Line, Field(max_length=100)] = ""  # the report's or objection's reference


class DecisionRequest(_Request):
    stage: StageName
    decision: DecisionKind
    reason: LongText = ""


class CorrectionChanges(_Model):
    """What a correction may change, each field with its type (a null changes nothing and
    is refused: it would have emptied the field)."""

    name: Name | None = None
    university: Annotated[Line, Field(min_length=1)] | None = None
    education_level: EducationLevel | None = None
    freshman: bool | None = None
    university_in_province: bool | None = None
    bank_name: Name | None = None
    account_holder: Name | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> CorrectionChanges:
        nulls = sorted(k for k in self.model_fields_set if getattr(self, k) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: null is not a correction")
        return self

    @model_serializer(mode="wrap")
    def _only_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Only what was given travels: a null would read as "set this to nothing".
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(self.model_fields_set)}


class CorrectionRequest(_Request):
    """Corrected data or documents after a return for correction."""

    changes: CorrectionChanges = Field(default_factory=CorrectionChanges)
    documents: dict[DocumentKind, Annotated[int, Field(ge=0, le=10)]] | None = None
    note: LongText = ""


class ObjectionRequest(_Request):
    text: Annotated[LongText, Field(min_length=1)]
    contact: Annotated[Line, Field(max_length=100)] = ""
    evidence_ref: Line = ""


class ObjectionResolution(_Request):
    objection_id: str = Field(pattern=r"^obj-\d{1,6}$")
    outcome: ObjectionOutcome
    reason: Annotated[LongText, Field(min_length=1)]


class WithdrawalRequest(_Request):
    reason: LongText = ""


class ReceiptRecord(_Request):
    """The student signed the receipt sheet in person (签领), the originals checked."""

    documents_checked: list[DocumentKind] = Field(default_factory=list)
    copy_kept: bool = False
    funding_source: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    sheet_ref: Line = ""  # the receipt sheet's number or scan


class RequestResult(_Model):
    request_id: str
    accepted: bool
    stage: str
    message: str


# ---------------------------------------------------------------------------
# The trail (R8): every event of the application.

TrailKind = Literal[
    "submitted",
    "stage_entered",
    "decision",
    "correction",
    "notice_scheduled",
    "roster_joined",
    "cross_check",
    "loan_contract",
    "notice_posted",
    "notice_ended",
    "objection_lodged",
    "objection_resolved",
    "timer_fired",
    "overdue",
    "at_risk",
    "refused",
    "withdrawn",
    "cancelled",
    "funds",
    "payment",
    "receipt",
]


class TrailEvent(_Model):
    seq: int
    at: datetime
    kind: TrailKind
    stage: str
    actor: Actor
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Objection(_Model):
    id: str
    stage: str
    lodged_at: datetime
    lodged_by: Actor
    text: str
    contact_masked: str = ""
    evidence_ref: str = ""
    outcome: ObjectionOutcome | None = None
    resolved_at: datetime | None = None
    resolved_by: Actor | None = None
    reason: str = ""


class NoticeWindow(_Model):
    stage: str
    posted_at: datetime
    ends_at: datetime
    counted_days: list[str]
    provisional: bool


class ApplicationStatus(_Model):
    workflow_id: str
    programme: str
    season: int
    stage: str
    waiting_for: str
    waiting_until: datetime | None
    overdue: list[str]
    at_risk: list[str]
    notice: NoticeWindow | None
    objections: list[Objection]
    amount_cny: int
    applicant_masked: str
    places: Places
    provisional: bool
    details_zh: str
    details_en: str
