"""Programme definitions: a programme is data (loadable from JSON), not code.

The county study subsidy is the first programme. The same shape carries the
other programmes of PROCESS.md §4: their own steps (reviews at any level,
notices counted in working or calendar days), fixed dates, amounts and
eligibility.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.calendar import NoticeCounting
from models.domain import DocumentKind, EducationLevel, HouseholdCategory, Level, Role


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MonthDay(_Frozen):
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)

    def in_year(self, year: int) -> date:
        return date(year, self.month, self.day)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


class FixedDate(_Frozen):
    """A date the programme must meet, as month/day of the season's year (R6)."""

    key: str
    on: MonthDay
    label_zh: str
    label_en: str
    responsible: Role  # the office told when it is missed (the county is always told)


class ReviewStep(_Frozen):
    kind: Literal["review"] = "review"
    stage: str
    label_zh: str
    label_en: str
    role: Role
    level: Level
    due: str  # key of a FixedDate


class NoticeStep(_Frozen):
    kind: Literal["notice"] = "notice"
    stage: str
    label_zh: str
    label_en: str
    owner: Role  # who posts it and resolves objections
    level: Level
    days: int = Field(ge=1)
    counting: NoticeCounting = NoticeCounting.WORKING_DAYS
    # "window_close": the first list goes up when the application window closes;
    # "after_review": after the preceding review. Either way, an application
    # that becomes ready later goes onto the next posting, automatically at
    # ``auto_post_at`` of the next working day unless the owner posts earlier.
    first_posting: Literal["window_close", "after_review"] = "after_review"
    auto_post_at: time = time(8, 0)
    due: str


class FundsStep(_Frozen):
    """The county asks for the funds; their arrival releases the payout."""

    kind: Literal["funds"] = "funds"
    stage: str = "awaiting_funds"
    label_zh: str = "等待资金到位"
    label_en: str = "awaiting funds"
    requested_by: Role = Role.COUNTY_EDUCATION_BUREAU
    provided_by: Role = Role.COUNTY_LEADING_GROUP
    due: str


class PayoutStep(_Frozen):
    kind: Literal["payout"] = "payout"
    stage: str = "awaiting_payment"
    label_zh: str = "等待打卡发放"
    label_en: str = "awaiting card payout"
    paid_by: Role = Role.COUNTY_EDUCATION_BUREAU
    limit_calendar_days: int = Field(ge=1)  # after the funds arrive (R7)
    due: str


Step = Annotated[ReviewStep | NoticeStep | FundsStep | PayoutStep, Field(discriminator="kind")]


class AmountOption(_Frozen):
    """An amount and the application attributes it applies to (first match wins)."""

    amount_cny: int = Field(gt=0)
    when: dict[str, str] = Field(default_factory=dict)


class DocumentRequirement(_Frozen):
    """One checklist line: any one of ``any_of`` satisfies it."""

    any_of: tuple[DocumentKind, ...]
    copies: int = 1


class Eligibility(_Frozen):
    education_levels: frozenset[EducationLevel]
    household_categories: frozenset[HouseholdCategory]
    documents: tuple[DocumentRequirement, ...]


class Programme(_Frozen):
    code: str
    version: int = 1
    name_zh: str
    name_en: str
    level: Level = Level.COUNTY
    window_opens: MonthDay
    window_closes: MonthDay
    amounts: tuple[AmountOption, ...]
    eligibility: Eligibility
    steps: tuple[Step, ...]
    fixed_dates: tuple[FixedDate, ...]
    one_per_student_per_season: bool = True

    @model_validator(mode="after")
    def _check(self) -> Programme:
        keys = [d.key for d in self.fixed_dates]
        if len(set(keys)) != len(keys):
            raise ValueError("fixed date keys must be unique")
        stages = [s.stage for s in self.steps]
        if len(set(stages)) != len(stages):
            raise ValueError("step stages must be unique")
        for step in self.steps:
            if step.due not in keys:
                raise ValueError(f"step {step.stage} is due at unknown fixed date {step.due!r}")
        return self

    def fixed_date(self, key: str) -> FixedDate:
        for d in self.fixed_dates:
            if d.key == key:
                return d
        raise KeyError(key)

    def step(self, stage: str) -> Step:
        for s in self.steps:
            if s.stage == stage:
                return s
        raise KeyError(stage)

    def step_index(self, stage: str) -> int:
        for i, s in enumerate(self.steps):
            if s.stage == stage:
                return i
        raise KeyError(stage)

    def amount_for(self, attributes: dict[str, str]) -> int:
        for option in self.amounts:
            if all(attributes.get(k) == v for k, v in option.when.items()):
                return option.amount_cny
        raise ValueError(f"no amount of {self.code} applies to {attributes}")


COUNTY_SUBSIDY = Programme(
    code="county-subsidy",
    version=1,
    name_zh="县助学补贴",
    name_en="County study subsidy",
    window_opens=MonthDay(month=8, day=1),
    window_closes=MonthDay(month=8, day=31),
    amounts=(AmountOption(amount_cny=3000),),
    eligibility=Eligibility(
        education_levels=frozenset({EducationLevel.UNDERGRADUATE_FULL_TIME}),
        household_categories=frozenset({HouseholdCategory.REGISTERED_POOR}),
        documents=(
            DocumentRequirement(any_of=(DocumentKind.APPLICATION_FORM,), copies=3),
            DocumentRequirement(any_of=(DocumentKind.HOUSEHOLD_REGISTER_HEAD,)),
            DocumentRequirement(any_of=(DocumentKind.HOUSEHOLD_REGISTER_STUDENT,)),
            DocumentRequirement(any_of=(DocumentKind.IDENTITY_CARD,)),
            DocumentRequirement(
                any_of=(
                    DocumentKind.STUDENT_CARD,
                    DocumentKind.ADMISSION_LETTER,
                    DocumentKind.ELECTRONIC_ENROLMENT,
                )
            ),
            DocumentRequirement(any_of=(DocumentKind.SUBSIDY_CARD_PASSBOOK,)),
        ),
    ),
    steps=(
        ReviewStep(
            stage="village_review",
            label_zh="村委会初审",
            label_en="village first review",
            role=Role.VILLAGE_COMMITTEE,
            level=Level.VILLAGE,
            due="reviews_done",
        ),
        NoticeStep(
            stage="village_notice",
            label_zh="村级公示",
            label_en="village public notice",
            owner=Role.VILLAGE_COMMITTEE,
            level=Level.VILLAGE,
            days=5,
            first_posting="window_close",
            due="reviews_done",
        ),
        ReviewStep(
            stage="township_review",
            label_zh="乡镇复核",
            label_en="township review",
            role=Role.TOWNSHIP_POVERTY_OFFICE,
            level=Level.TOWNSHIP,
            due="reviews_done",
        ),
        NoticeStep(
            stage="township_notice",
            label_zh="乡镇公示",
            label_en="township public notice",
            owner=Role.TOWNSHIP_POVERTY_OFFICE,
            level=Level.TOWNSHIP,
            days=5,
            first_posting="after_review",
            due="reviews_done",
        ),
        ReviewStep(
            stage="county_approval",
            label_zh="县教育局审批",
            label_en="county approval",
            role=Role.COUNTY_EDUCATION_BUREAU,
            level=Level.COUNTY,
            due="county_approval",
        ),
        FundsStep(due="payout"),
        PayoutStep(limit_calendar_days=10, due="payout"),
    ),
    fixed_dates=(
        FixedDate(
            key="reviews_done",
            on=MonthDay(month=9, day=10),
            label_zh="村、乡审核及公示完成",
            label_en="village and township reviews and notices done",
            responsible=Role.TOWNSHIP_POVERTY_OFFICE,
        ),
        FixedDate(
            key="county_approval",
            on=MonthDay(month=9, day=15),
            label_zh="县教育局审批完成",
            label_en="county approval done",
            responsible=Role.COUNTY_EDUCATION_BUREAU,
        ),
        FixedDate(
            key="payout",
            on=MonthDay(month=9, day=20),
            label_zh="打卡发放完成",
            label_en="card payout done",
            responsible=Role.COUNTY_EDUCATION_BUREAU,
        ),
        FixedDate(
            key="summary",
            on=MonthDay(month=10, day=30),
            label_zh="工作总结报市扶贫办、市教育局",
            label_en="summary sent to the city offices",
            responsible=Role.COUNTY_POVERTY_OFFICE,
        ),
    ),
)

# The demo's programme: the county subsidy with a one-week application window, so that a
# season fits into minutes on the compressed calendar. Everything else is the real thing.
COUNTY_SUBSIDY_DEMO = COUNTY_SUBSIDY.model_copy(
    update={
        "code": "county-subsidy-demo",
        "name_zh": "县助学补贴（演示）",
        "name_en": "County study subsidy (demo)",
        "window_closes": MonthDay(month=8, day=7),
    }
)

BUILTIN_PROGRAMMES: dict[str, Programme] = {
    p.code: p for p in (COUNTY_SUBSIDY, COUNTY_SUBSIDY_DEMO)
}
