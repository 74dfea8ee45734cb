"""A public notice (公示) as a thing of its own: one list per programme, season, level,
place and stage, posted in postings (R2, R3, R9).

Applications join the notice when they are ready for it; its owner posts it, or it
posts itself at each member's automatic time (the step's rule, from the instant the
member was ready), when a member says that time has come. An automatic posting's
period is worked out by the notice and by each of its members alike, from the same
instant and calendar, so nobody is told it; an owner's posting is told to its members.
What the list shows is R9's notice rule: name, village, school or level, amount; never
an identity, account or phone number.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from models.application import Actor, NoticeWindow
from models.domain import Level, Role
from models.season import season_label
from models.steps import NoticeStep
from models.text import Line, Name, RequestId

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def notice_workflow_id(
    programme: str, season: int, round_: str, level: Level, place_code: str, stage: str
) -> str:
    """Readable for operators: ``notice/county-subsidy/2027/village/340123101001/village_notice``."""
    return f"notice/{programme}/{season_label(season, round_)}/{level.value}/{place_code}/{stage}"


class NoticeInput(_Model):
    """Everything the notice needs, so that its history alone replays it."""

    programme: str
    programme_name_zh: str
    season: int
    round: str = ""
    county_code: str
    place_code: str  # the owner's place: the village, township or county
    place_name: str = ""
    step: NoticeStep
    window_closes_at: datetime

    @property
    def workflow_id(self) -> str:
        return notice_workflow_id(
            self.programme,
            self.season,
            self.round,
            self.step.level,
            self.place_code,
            self.step.stage,
        )


class NoticeMember(_Model):
    """One line of the posted list: only what the public needs to check it (R9)."""

    workflow_id: str
    name: Name
    village: Line
    school_or_level: Line
    amount_cny: int
    joined_at: datetime  # the application's instant of joining (its own clock)
    # Its automatic posting, by the step's rule from its own ``joined_at``, and the end
    # of the period the member worked out for it at its join, as the notice does at the
    # posting: the notice posts it by its own timer and tells it nothing (issue 20),
    # unless its own period ends otherwise (the calendar changed in between). None
    # where only the owner posts (with a photograph: Rain and Dew).
    auto_post_at: datetime | None = None
    ends_at: datetime | None = None


class NoticeJoin(_Model):
    """An application puts itself on the notice (sealed: aidflow's own), at its own
    automatic posting time unless the owner posts it earlier."""

    member: NoticeMember


def _sha256(v: str) -> str:
    if not _SHA256.match(v):
        raise ValueError("must be the file's SHA-256, 64 lowercase hex digits")
    return v


class Evidence(_Model):
    """A photograph or scan of the posted notice: the file is kept by the gateway under
    its digest; the history keeps the digest."""

    sha256: Annotated[str, AfterValidator(_sha256)]
    filename: Annotated[Line, Field(min_length=1, max_length=120, pattern=r"^[^/\\]+$")]
    media_type: Literal["image/jpeg", "image/png", "application/pdf"]
    size: int = Field(ge=1)


class NoticePostRequest(_Model):
    """The owner posts the notice now (a request with a request id, R4); the actor is
    the credential's (R10)."""

    request_id: RequestId
    actor: Actor
    evidence: list[Evidence] = Field(default_factory=list, max_length=10)


class ListFile(_Model):
    kind: Literal["xlsx", "html"]
    path: str
    sha256: str


class Posting(_Model):
    number: int
    posted_at: datetime
    ends_at: datetime
    counted_days: list[str]
    provisional: bool
    posting: Literal["explicit", "automatic"]
    posted_by: Actor | None = None
    request_id: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    members: list[str]
    files: list[ListFile] = Field(default_factory=list)


class NoticePosted(_Model):
    """The notice tells each member of an owner's posting its period (an automatic
    posting's members work it out themselves)."""

    notice_id: str
    posting: int
    window: NoticeWindow
    how: Literal["explicit", "automatic"]
    posted_by: str = ""  # the actor id, for the member's trail
    evidence_sha256: list[str] = Field(default_factory=list)
    list_sha256: str = ""


class MemberChange(_Model):
    """A member tells its notice what the operator sees: its open objections, or that it
    has left (withdrawn or rejected before the posting: it is not on the list)."""

    workflow_id: str
    open_objections: int = Field(default=0, ge=0)
    left: bool = False


class NoticeStatus(_Model):
    notice_id: str
    programme: str
    season: int
    round: str
    level: Level
    place_code: str
    place_name: str
    stage: str
    label_zh: str
    label_en: str
    owner: Role
    pending: list[NoticeMember]
    auto_post_at: datetime | None
    postings: list[Posting]
    open_objections: dict[str, int]
    details_zh: str
    details_en: str


class NoticeListRequest(_Model):
    """One posting's list, printed for the notice board."""

    notice: NoticeInput
    number: int
    posted_at: datetime
    ends_at: datetime
    members: list[NoticeMember]


class MemberMessage(_Model):
    """A member's word to its notice, sent by a local activity (one marker in the
    member's history, where a signal from the workflow was two events and a workflow
    task more for its acknowledgement: issue 20)."""

    notice_id: str
    body: MemberChange

    @property
    def signal(self) -> str:
        return "member_changed"


class JoinRequest(_Model):
    """What an application's notice step asks the join activity (a local activity):
    start the notice if it is not running, and join it."""

    notice: NoticeInput
    join: NoticeJoin
