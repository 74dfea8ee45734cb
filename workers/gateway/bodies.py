"""What a service sends over HTTP: the workflow's requests without their actor (the
credential is the actor, R10) and with the request id optional (``Idempotency-Key``,
or a new one)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from models.application import (
    ApplicationForm,
    CancellationRequest,
    CorrectionRequest,
    DecisionRequest,
    ObjectionRequest,
    ObjectionResolution,
    Places,
    ReceiptRecord,
    WithdrawalRequest,
)
from models.cases import CaseMember, ClosureApproval, ContactKind, Handover, SignOff
from models.recovery import RecoveredRequest
from models.roster import RosterDecision
from models.text import Line, LongText, Name, RequestId


def _body(model: type[BaseModel], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        k: (f.annotation, f)
        for k, f in model.model_fields.items()
        if k not in ("actor", "request_id")
    }
    fields["request_id"] = (RequestId | None, None)
    return create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=model.__doc__, **fields
    )


if TYPE_CHECKING:  # built at run time from the requests; to the type checker, models
    DecisionBody: TypeAlias = BaseModel
    CorrectionBody: TypeAlias = BaseModel
    ObjectionBody: TypeAlias = BaseModel
    ResolutionBody: TypeAlias = BaseModel
    WithdrawalBody: TypeAlias = BaseModel
    ReceiptBody: TypeAlias = BaseModel
    RosterDecisionBody: TypeAlias = BaseModel
    CancellationBody: TypeAlias = BaseModel
    RecoveredBody: TypeAlias = BaseModel
else:
    DecisionBody = _body(DecisionRequest, "DecisionBody")
    CorrectionBody = _body(CorrectionRequest, "CorrectionBody")
    ObjectionBody = _body(ObjectionRequest, "ObjectionBody")
    ResolutionBody = _body(ObjectionResolution, "ResolutionBody")
    WithdrawalBody = _body(WithdrawalRequest, "WithdrawalBody")
    ReceiptBody = _body(ReceiptRecord, "ReceiptBody")
    RosterDecisionBody = _body(RosterDecision, "RosterDecisionBody")
    CancellationBody = _body(CancellationRequest, "CancellationBody")
    RecoveredBody = _body(RecoveredRequest, "RecoveredBody")


class SeasonOpenBody(BaseModel):
    """A round opened by its office (Rain and Dew's county poverty office), once the
    national system has: the day it did, and a note."""

    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None
    national_opened_on: date
    note: str = Field(default="", max_length=500)


class TaskDoneBody(BaseModel):
    """A dated task reported done (its key is in the path)."""

    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None
    note: str = Field(default="", max_length=2000)
    evidence_ref: Line = ""


class AccountBody(BaseModel):
    """The corrected 一卡通 account after a returned payment (sealed at once; the full
    number is never stored, logged or echoed)."""

    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None
    bank_name: Name
    account_number: str = Field(pattern=r"^\d{12,19}$")
    account_holder: Name


class ApplicationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    form: ApplicationForm
    # When the office received the paper form (R5's window is checked against it). Only
    # an office's credential may say so, never an applicant's; it is recorded with it.
    received_at: datetime | None = None


class DecisionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow_id: str = Field(min_length=1, max_length=200)
    request_id: RequestId
    stage: str = Field(min_length=1, max_length=64)
    decision: str = Field(min_length=1, max_length=32)
    reason: str = Field(default="", max_length=2000)


class DecisionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[DecisionItem] = Field(min_length=1, max_length=1000)


class ItemResult(BaseModel):
    workflow_id: str
    request_id: str
    accepted: bool
    status: int  # the HTTP status this item alone would have had
    message: str


class BatchOutcome(BaseModel):
    done: int
    refused: int
    refused_items: list[str]  # "workflow_id request_id" of each refused item
    results: list[ItemResult]


class FundsRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None


class FundsArrivalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None
    funds_request_id: str = Field(min_length=1, max_length=100)
    amount_cny: int = Field(gt=0, le=10**10)
    reference: Line = Field(min_length=1)


class CallerInfo(BaseModel):
    credential: str
    actor_id: str
    actor_name: str
    role: str
    place_code: str


EVIDENCE_MAX_BYTES = 10_000_000
EVIDENCE_MAGIC: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-",
}
EVIDENCE_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}


class EvidenceUpload(BaseModel):
    """A photograph or scan of the posted list, its bytes in base64."""

    model_config = ConfigDict(extra="forbid")
    filename: Line = Field(min_length=1, max_length=120, pattern=r"^[^/\\]+$")
    media_type: Literal["image/jpeg", "image/png", "application/pdf"]
    # 10 MB of file is 13.4 MB of base64.
    content_base64: str = Field(min_length=4, max_length=13_400_000)


class NoticeBody(BaseModel):
    """Post a notice now: every application waiting for the programme's notice at the
    caller's place (the caller is the notice's owner there)."""

    model_config = ConfigDict(extra="forbid")
    request_id: RequestId | None = None
    programme: str = Field(default="county-subsidy", max_length=40)
    level: Literal["village", "township", "county"]
    place_code: str | None = Field(default=None, pattern=r"^\d{12}$")  # the caller's own
    season: str | None = Field(default=None, pattern=r"^\d{4}(-[a-z]{1,16})?$")
    evidence: list[EvidenceUpload] = Field(default_factory=list, max_length=10)


class PostingItem(BaseModel):
    """One notice of a batch, posted now by its owner (the caller)."""

    model_config = ConfigDict(extra="forbid")
    request_id: RequestId
    notice_id: str = Field(min_length=1, max_length=300, pattern=r"^notice/[A-Za-z0-9/_.-]+$")
    evidence: list[EvidenceUpload] = Field(default_factory=list, max_length=10)

    @property
    def workflow_id(self) -> str:
        return self.notice_id


# A batch carries at most as many files as one posting may (10 × 10 MB): 100 items of
# ten files each would be a 13 GB request.
BATCH_EVIDENCE_MAX_FILES = 10


class PostingBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[PostingItem] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _evidence_in_bounds(self) -> PostingBatch:
        files = sum(len(i.evidence) for i in self.items)
        if files > BATCH_EVIDENCE_MAX_FILES:
            raise ValueError(
                f"items: {files} evidence files; a batch carries at most "
                f"{BATCH_EVIDENCE_MAX_FILES} (post the rest in another batch)"
            )
        return self


class NoticeItem(BaseModel):
    notice_id: str
    accepted: bool
    message: str


class LoanCheckIn(BaseModel):
    """A family at the county student-aid centre's desk: the student (the registry says
    whether they are registered-poor, and so served first)."""

    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(min_length=15, max_length=18)
    name: Name


class LoanReceiptConfirmation(BaseModel):
    """A university's word on a loan's receipt of acceptance: the student brought it
    (``enrolled``, with the university's reference) or never enrolled (with the reason)."""

    model_config = ConfigDict(extra="forbid")
    enrolled: bool = True
    reference: Line = Field(min_length=1)
    reason: Line = ""
    request_id: RequestId | None = None


class CaseOpenBody(BaseModel):
    """Open a case (its office's key): who it is for, where, and its group."""

    model_config = ConfigDict(extra="forbid")
    programme: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    year: int = Field(ge=2000, le=2100)
    places: Places
    name: Name
    national_id: str = Field(min_length=15, max_length=18)
    members: list[CaseMember] = Field(min_length=1, max_length=30)
    school: Line = ""
    grade: Line = ""
    level: Literal["", "primary", "junior", "senior"] = ""
    note: LongText = ""
    # Academic help: the courses failed after the make-up exams, and whom to tell of them.
    failed_courses: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=30
    )
    guardian_contact: Line = ""


class ContactBody(BaseModel):
    """A contact logged by the member (or their unit's liaison), with its photographs."""

    model_config = ConfigDict(extra="forbid")
    member: str = Field(min_length=1, max_length=64)
    on: date
    kind: ContactKind
    done: LongText = Field(min_length=1)
    gift_value_cny: int = Field(default=0, ge=0, le=1_000_000)
    problem_solved: LongText = ""
    photos: list[EvidenceUpload] = Field(default_factory=list, max_length=10)
    request_id: RequestId | None = None


class ClosureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = Field(pattern=r"^[a-z][a-z_]{1,31}$")
    evidence_ref: Line = ""
    evidence: list[EvidenceUpload] = Field(default_factory=list, max_length=1)
    note: LongText = ""
    request_id: RequestId | None = None


if TYPE_CHECKING:
    HandoverBody: TypeAlias = BaseModel
    ClosureApprovalBody: TypeAlias = BaseModel
    SignOffBody: TypeAlias = BaseModel
else:
    HandoverBody = _body(Handover, "HandoverBody")
    ClosureApprovalBody = _body(ClosureApproval, "ClosureApprovalBody")
    SignOffBody = _body(SignOff, "SignOffBody")
