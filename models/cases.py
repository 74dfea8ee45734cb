"""Help that is a case, not an application (PROCESS.md §5): cadre pairing, dropout
persuasion, academic help, left-behind children.

A case lives for months: a group of people owes regular contact (each obligation a
period or a cadence, per member), every contact is logged, and the case closes on an
outcome that its programme allows (never by silence). A case programme is data, one
JSON file beside the application programmes (``models/programmes``, ``kind: "case"``);
one ``CaseWorkflow`` a case (``workflows/case.py``).

Pure: periods and deadlines are computed here from dates, for the workflow and reports.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.application import Actor, Places
from models.compact import Compact
from models.domain import Role
from models.programme import FixedDate, MonthDay
from models.text import Line, LongText, Name, RequestId


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberRole(StrEnum):
    """What a person is in a case's group (not an office: each acts with their own key)."""

    CADRE = "cadre"  # 帮扶干部
    LEADING_CADRE = "leading_cadre"  # 牵头干部 (a hard case's group, 多帮一)
    TEACHER = "teacher"  # 教师 (dropout persuasion)
    VILLAGE_CADRE = "village_cadre"  # 村干部
    GUARDIAN = "guardian"  # 家长或监护人
    HELPER_TEACHER = "helper_teacher"  # 帮扶教师 (academic help)
    PEER_HELPER = "peer_helper"  # 朋辈帮扶学生


MEMBER_ROLE_ZH: dict[MemberRole, str] = {
    MemberRole.CADRE: "帮扶干部",
    MemberRole.LEADING_CADRE: "牵头干部",
    MemberRole.TEACHER: "教师",
    MemberRole.VILLAGE_CADRE: "村干部",
    MemberRole.GUARDIAN: "家长或监护人",
    MemberRole.HELPER_TEACHER: "帮扶教师",
    MemberRole.PEER_HELPER: "朋辈帮扶学生",
}


class ContactKind(StrEnum):
    PHONE = "phone"  # 电话
    VISIT = "visit"  # 走访 / 家访
    MEETING = "meeting"  # 面谈 (at school)
    HELP_SESSION = "help_session"  # 学业辅导


CONTACT_KIND_ZH: dict[ContactKind, str] = {
    ContactKind.PHONE: "电话联系",
    ContactKind.VISIT: "走访",
    ContactKind.MEETING: "面谈",
    ContactKind.HELP_SESSION: "学业辅导",
}


class Obligation(_Frozen):
    """What each member of ``owed_by`` owes: a contact of one of ``kinds`` (or money or
    goods given, or a problem solved) in every calendar period (``every``), or at a
    cadence (``first_within_days`` from the opening, then ``every_days`` from the last)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    label_zh: str
    label_en: str
    owed_by: tuple[MemberRole, ...] = Field(min_length=1)
    kinds: tuple[ContactKind, ...] = Field(min_length=1)
    needs: Literal["contact", "gift", "problem_solved"] = "contact"
    every: Literal["month", "quarter", "year"] | None = None
    first_within_days: int | None = Field(default=None, ge=1, le=366)
    every_days: int | None = Field(default=None, ge=1, le=366)
    # Owed by the group as a whole (one member's contact meets it), not by each member.
    by_group: bool = False

    @model_validator(mode="after")
    def _one_rhythm(self) -> Obligation:
        if (self.every is None) == (self.every_days is None):
            raise ValueError(f"{self.key}: either a calendar period (every) or every_days")
        return self

    def counts(self, contact: Contact) -> bool:
        """Whether ``contact`` meets this obligation (its kind, and what it needs)."""
        if contact.kind not in self.kinds:
            return False
        if self.needs == "gift":
            return contact.gift_value_cny > 0
        if self.needs == "problem_solved":
            return bool(contact.problem_solved.strip())
        return True


class ClosingRule(_Frozen):
    """An outcome that closes a case: who says so, with which evidence, approved by whom
    (a lawful exemption needs the county's approval: four eyes)."""

    outcome: str = Field(pattern=r"^[a-z][a-z_]{1,31}$")
    label_zh: str
    label_en: str
    by: tuple[Role, ...] = Field(min_length=1)
    evidence_required: bool = True
    evidence_label: str = ""  # what the evidence is: "the school's enrolment record"
    approved_by: Role | None = None


class DatedCheck(_Frozen):
    """A check of every open case on a date (academic help: the start, middle and end of
    the semester): the cases with no logged help since the previous check are flagged."""

    key: str
    on: MonthDay
    label_zh: str
    label_en: str
    # After the final exams, the student office tells the guardian of the failed courses.
    tells_guardian: bool = False
    # The semester the check belongs to (None: every case's); ``next_year``: its date is
    # in the calendar year after the semester's (the autumn semester ends in January).
    semester: Literal["spring", "autumn"] | None = None
    next_year: bool = False

    def day_for(self, semester_year: int) -> date:
        return self.on.in_year(semester_year + (1 if self.next_year else 0))


def semester_of(day: date) -> tuple[Literal["spring", "autumn"], int]:
    """The semester a case opened on ``day`` belongs to, and the year it begins in:
    February to July the spring semester, August to January the autumn one (January's
    is the autumn semester of the year before)."""
    if 2 <= day.month <= 7:
        return "spring", day.year
    return "autumn", day.year if day.month >= 8 else day.year - 1


class Registration(_Frozen):
    """Left-behind children: each registered within ``within_days`` of a semester's
    start (later: accepted and flagged late), then signed off by each of ``sign_offs`` in
    turn, each a different person (four eyes)."""

    semester_starts: tuple[MonthDay, ...] = Field(min_length=1)
    within_days: int = Field(default=14, ge=1, le=120)
    sign_offs: tuple[Role, ...] = ()


class CaseProgramme(_Frozen):
    kind: Literal["case"] = "case"
    code: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    version: int = 1
    name_zh: str
    name_en: str
    source: str = ""
    description_en: str = ""
    opened_by: tuple[Role, ...] = Field(min_length=1)
    # The group a case needs at its opening: at least one member of each role.
    group: tuple[MemberRole, ...] = Field(min_length=1)
    obligations: tuple[Obligation, ...] = ()
    closes_on: tuple[ClosingRule, ...] = ()
    # A case of a year (pairing: a household's year), over at the year's end.
    ends_with_year: bool = False
    checks: tuple[DatedCheck, ...] = ()
    registration: Registration | None = None
    dated_tasks: tuple[FixedDate, ...] = ()
    # Told with a member when an obligation is missed (a department's liaison: 联络员).
    liaison: Role | None = None
    # A group larger than this needs a leading cadre (pairing: three cadres a household,
    # a hard case's larger group led by a leading cadre, 多帮一).
    led_above: int | None = None

    @model_validator(mode="after")
    def _check(self) -> CaseProgramme:
        keys = [o.key for o in self.obligations]
        if len(set(keys)) != len(keys):
            raise ValueError("obligation keys must be unique")
        if not self.closes_on and not self.ends_with_year and self.registration is None:
            raise ValueError(
                "a case must be able to end: closes_on, ends_with_year or a registration"
            )
        return self

    def checks_of(self, opened: date) -> list[tuple[DatedCheck, date]]:
        """The dated checks of a case opened on ``opened``: those of its semester (or of
        every case), each with its day, in order."""
        semester, year = semester_of(opened)
        found = [(c, c.day_for(year)) for c in self.checks if c.semester in (None, semester)]
        return sorted(found, key=lambda pair: pair[1])

    def group_problems(self, members: list[CaseMember]) -> list[str]:
        """What the group lacks: a member of each role the programme needs, each person
        once, a leading cadre for a large group."""
        problems = []
        missing = [r.value for r in self.group if not any(m.role is r for m in members)]
        if missing:
            problems.append(f"members: the group needs a {', a '.join(missing)}")
        if len({m.actor_id for m in members}) != len(members):
            problems.append("members: each person once")
        if (
            self.led_above is not None
            and len(members) > self.led_above
            and not any(m.role is MemberRole.LEADING_CADRE for m in members)
        ):
            problems.append(
                f"members: a group of more than {self.led_above} is led by a leading cadre (多帮一)"
            )
        return problems

    def closing_rule(self, outcome: str) -> ClosingRule | None:
        return next((r for r in self.closes_on if r.outcome == outcome), None)


# ------------------------------------------------------------------ the case


class CaseMember(_Frozen):
    actor_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    role: MemberRole
    # The unit the member belongs to (a department, a school): its liaison is told.
    unit: Annotated[str, Field(max_length=32, pattern=r"^[0-9A-Za-z-]*$")] = ""


class CaseSubject(_Frozen):
    """Who the case is for: masked and hashed, never a full identity number (R9)."""

    name: Name
    national_id_masked: str
    national_id_hash: str
    school: Line = ""
    grade: Line = ""
    # The school level (dropout persuasion: its rate is counted per level).
    level: Literal["", "primary", "junior", "senior"] = ""


class CaseInput(_Model):
    workflow_id: str
    programme: Compact[CaseProgramme]
    year: int
    places: Places
    subject: CaseSubject
    members: tuple[CaseMember, ...] = Field(min_length=1)
    opened_at: datetime
    opened_by: Actor
    # Dropout persuasion: when the child left school, the guardian and address (free text).
    note: LongText = ""
    # Academic help: the courses failed after the make-up exams.
    failed_courses: tuple[Annotated[str, Field(min_length=1, max_length=60)], ...] = Field(
        default=(), max_length=30
    )
    # The guardian's phone or e-mail, sealed (R9): told of the failed courses.
    guardian_contact_sealed: str = ""


class Contact(_Model):
    """One contact logged by a member (or the liaison for them)."""

    request_id: RequestId
    actor: Actor
    member: Annotated[str, Field(min_length=1, max_length=64)]  # the member's actor id
    on: date
    kind: ContactKind
    done: Annotated[LongText, Field(min_length=1)]  # what was done
    gift_value_cny: int = Field(default=0, ge=0, le=1_000_000)
    problem_solved: LongText = ""
    # Photographs: kept in the file store; their SHA-256 in the history.
    photo_sha256: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] = Field(
        default=(), max_length=10
    )


class Handover(_Model):
    """A member leaves the case; another takes it over (the obligations continue)."""

    request_id: RequestId
    actor: Actor
    leaving: Annotated[str, Field(min_length=1, max_length=64)]
    joining: CaseMember
    reason: Annotated[LongText, Field(min_length=1)]


class Closure(_Model):
    """An outcome the programme allows, with its evidence; an exemption waits for the
    approving office's word."""

    request_id: RequestId
    actor: Actor
    outcome: str
    evidence_ref: Line = ""
    evidence_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    note: LongText = ""


class ClosureApproval(_Model):
    request_id: RequestId
    actor: Actor
    approve: bool
    reason: Annotated[LongText, Field(min_length=1)]


class SignOff(_Model):
    """A registration checked (the township), re-checked (the county): each its office."""

    request_id: RequestId
    actor: Actor
    note: LongText = ""


class Miss(_Model):
    obligation: str
    member: str  # actor id; "" for the group
    period: str  # "2027-03", "2027-Q1", "2027", or the cadence's due day
    due_at: datetime


class CaseStatus(_Model):
    workflow_id: str
    programme: str
    year: int
    places: Places
    stage: str
    waiting_for: str
    next_deadline: datetime | None
    members: list[CaseMember]
    contacts: int
    misses: list[Miss]
    overdue: list[str]  # "obligation:member" not made up since
    late: bool
    sign_offs: list[str]
    outcome: str
    details_zh: str
    details_en: str


class CaseEvent(_Model):
    """One entry of a case's trail (its contact log among them)."""

    seq: int
    at: datetime
    kind: str
    actor: Actor
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)
    # A miss: the member(s) named in ``detail.told`` and their unit's liaison are told.
    notify: bool = False


class CaseRef(_Model):
    """What the trail's writer needs of a case: not its programme's whole definition
    (a batch a workflow task carries this, and the history keeps every batch)."""

    workflow_id: str
    programme: str
    programme_name_zh: str
    liaison: Role | None = None
    year: int
    places: Places
    subject: CaseSubject
    opened_at: datetime
    guardian_contact_sealed: str = ""

    @classmethod
    def of(cls, inp: CaseInput) -> CaseRef:
        return cls(
            workflow_id=inp.workflow_id,
            programme=inp.programme.code,
            programme_name_zh=inp.programme.name_zh,
            liaison=inp.programme.liaison,
            year=inp.year,
            places=inp.places,
            subject=inp.subject,
            opened_at=inp.opened_at,
            guardian_contact_sealed=inp.guardian_contact_sealed,
        )


class CaseEventBatch(_Model):
    case: CaseRef
    # The group at the opening, in the case's first batch only (later ones: its row).
    members: list[CaseMember] = Field(default_factory=list)
    events: list[CaseEvent]
    stage: str
    overdue: int


# ---------------------------------------------------------------- periods


class CaseClock(_Frozen):
    """The deployment calendar's days as instants, for a case's timers: a day starts at
    ``origin`` plus whole days of ``day_seconds`` (the China calendar's midnights, or the
    demo's compressed days: both are this simple, China keeping no summer time)."""

    origin_day: date
    origin: datetime
    day_seconds: float = Field(default=86400.0, gt=0)

    def start_of(self, day: date) -> datetime:
        return self.origin + timedelta(seconds=(day - self.origin_day).days * self.day_seconds)

    def end_of(self, day: date) -> datetime:
        """24:00 of ``day`` (a date written 'by 10 December' ends here)."""
        return self.start_of(day + timedelta(days=1))

    def day_of(self, instant: datetime) -> date:
        elapsed = (instant - self.origin).total_seconds()
        return self.origin_day + timedelta(days=int(elapsed // self.day_seconds))


# Until the deployment's answer: midnights in China (UTC+8).
CHINA_CLOCK = CaseClock(
    origin_day=date(2000, 1, 1), origin=datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=8)))
)


def period_of(day: date, every: Literal["month", "quarter", "year"]) -> tuple[date, date, str]:
    """The calendar period holding ``day``: its first day, its last, and its label."""
    if every == "month":
        first = day.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return first, nxt - timedelta(days=1), f"{day.year}-{day.month:02d}"
    if every == "quarter":
        q = (day.month - 1) // 3
        first = date(day.year, 3 * q + 1, 1)
        nxt = date(day.year + (q == 3), (3 * q + 3) % 12 + 1, 1)
        return first, nxt - timedelta(days=1), f"{day.year}-Q{q + 1}"
    return date(day.year, 1, 1), date(day.year, 12, 31), str(day.year)


def periods_between(
    start: date, end: date, every: Literal["month", "quarter", "year"]
) -> list[tuple[date, date, str]]:
    """Every period from the one holding ``start`` to the one holding ``end``."""
    out = []
    day = start
    while day <= end:
        period = period_of(day, every)
        out.append(period)
        day = period[1] + timedelta(days=1)
    return out


def case_workflow_id(programme: str, year: int, county_code: str, subject_hash: str) -> str:
    """``case/cadre-pairing/2027/341225/<hash prefix>``: no identity number in it."""
    return f"case/{programme}/{year}/{county_code[:6]}/{subject_hash[:16]}"


# The dropout rates the plan aims under (PROCESS.md §5.2), per school level.
DROPOUT_TARGETS: dict[str, float] = {"primary": 0.006, "junior": 0.018}


def period_bounds(label: str) -> tuple[date, date]:
    """A report's period: ``2027-03`` (a month), ``2027-Q1`` (a quarter), ``2027-H1`` (a
    half year); its first and last day."""
    year, _, part = label.partition("-")
    y = int(year)
    if part.startswith("Q") and part[1:] in ("1", "2", "3", "4"):
        q = int(part[1:])
        first = date(y, 3 * q - 2, 1)
        return first, period_of(first, "quarter")[1]
    if part in ("H1", "H2"):
        return (date(y, 1, 1), date(y, 6, 30)) if part == "H1" else (date(y, 7, 1), date(y, 12, 31))
    month = int(part)
    first = date(y, month, 1)
    return first, period_of(first, "month")[1]
