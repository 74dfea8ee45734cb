"""Programme definitions: a programme is data (a JSON file in ``models/programmes``), not code.

Everything that differs between programmes is a field here: who submits, the
window, the amounts by policy year (R11) and the application attributes they
depend on, eligibility, the steps (each a kind of its own: ``models/steps``), the
fixed dates and who answers for them, who is always told when a date is missed,
what may be corrected and by whom, and the programme's own notification texts.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from models.domain import (
    STAGE_NAME_EN,
    STAGE_NAME_ZH,
    DocumentKind,
    EducationLevel,
    HouseholdCategory,
    Level,
    Role,
)
from models.loan import LoanTerms
from models.steps import FundsStep, NoticeStep, PayoutStep, ReceiptStep, ReviewStep, Step, StepBase

__all__ = [
    "AmountOption",
    "CorrectionRule",
    "DatedAmounts",
    "DocumentRequirement",
    "Eligibility",
    "FixedDate",
    "FundsStep",
    "MonthDay",
    "NoticeStep",
    "NotificationText",
    "PayoutStep",
    "Programme",
    "ReceiptStep",
    "ReviewStep",
    "Round",
    "Step",
]

S = TypeVar("S", bound=StepBase)


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
    responsible: Role  # the office told when it is missed (with the programme's always_told)


class AmountOption(_Frozen):
    """An amount and the application attributes it applies to (first match wins)."""

    amount_cny: int = Field(gt=0)
    when: dict[str, str] = Field(default_factory=dict)


class DatedAmounts(_Frozen):
    """The amounts in force from a policy year on, until a later entry replaces them (R11)."""

    from_year: int = Field(ge=2000, le=2100)
    options: tuple[AmountOption, ...] = Field(min_length=1)


class DocumentRequirement(_Frozen):
    """One checklist line: any one of ``any_of`` satisfies it."""

    any_of: tuple[DocumentKind, ...]
    copies: int = 1


class Eligibility(_Frozen):
    education_levels: frozenset[EducationLevel]
    # The registered-poor registry's categories intake checks the household against;
    # empty: intake does not look (a roster step decides eligibility: the freshman grant's
    # civil-affairs check).
    household_categories: frozenset[HouseholdCategory]
    documents: tuple[DocumentRequirement, ...]
    freshman_only: bool = False  # only students in their first year (admitted this year)

    # Sets serialise in sorted order: in hash order they differed between processes, and a
    # programme travels in workflow inputs (histories, digests of signed statements).
    @field_serializer("education_levels", "household_categories")
    def _sorted(self, values: frozenset[StrEnum]) -> list[str]:
        return sorted(v.value for v in values)


class DatedEligibility(_Frozen):
    """Who is eligible from a policy year on, until a later entry replaces it (R11: the
    categories change by policy year, as the amounts do)."""

    from_year: int = Field(ge=2000, le=2100)
    eligibility: Eligibility


class CorrectionRule(_Frozen):
    """Who may correct a returned application, and which fields."""

    by: tuple[Role, ...] = (Role.APPLICANT, Role.VILLAGE_COMMITTEE)
    fields: tuple[str, ...] = (
        "university",
        "education_level",
        "freshman",
        "name",
        "bank_name",
        "account_holder",
    )


class NotificationText(_Frozen):
    """A programme's own wording of a notification (placeholders as in models.notifications)."""

    subject: str
    body: str


class Round(_Frozen):
    """One round of a programme that takes applications more than once a year (R12)."""

    key: str = Field(pattern=r"^[a-z]{1,16}$")  # in ids: 2027-spring
    label_zh: str
    label_en: str
    window_opens: MonthDay
    window_closes: MonthDay
    # The round's own fixed dates; empty: the programme's.
    fixed_dates: tuple[FixedDate, ...] = ()
    # The education levels the round takes (a cohort of the freshman grant); empty: the
    # programme's.
    education_levels: frozenset[EducationLevel] = frozenset()

    @field_serializer("education_levels")
    def _sorted(self, values: frozenset[StrEnum]) -> list[str]:
        return sorted(v.value for v in values)


class Programme(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    version: int = 1
    name_zh: str
    name_en: str
    # "roster": its applications are a cohort's list, entered by an office and decided
    # on as a whole at its roster steps (the freshman grant).
    kind: Literal["application", "roster"] = "application"
    source: str = ""  # where the source document describes it
    description_en: str = ""  # what aidflow does for it, for `aidflow programmes`
    level: Level = Level.COUNTY
    # Who submits an application: the applicant, or an office for its students.
    submitted_by: tuple[Role, ...] = (Role.APPLICANT,)
    window_opens: MonthDay
    window_closes: MonthDay
    amounts: tuple[DatedAmounts, ...] = Field(min_length=1)
    # The application attributes the amount depends on (names of form fields).
    amount_attributes: tuple[str, ...] = ()
    eligibility: Eligibility
    # Later policy years' eligibility, each in force from its year (before the first:
    # ``eligibility``); see ``eligibility_for``.
    eligibility_changes: tuple[DatedEligibility, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)
    fixed_dates: tuple[FixedDate, ...]
    # Offices told of every missed date, beside the date's responsible office.
    always_told: tuple[Role, ...] = (Role.COUNTY_EDUCATION_BUREAU,)
    corrections: CorrectionRule = CorrectionRule()
    one_per_student_per_season: bool = True
    # With rounds: one application a student a year across its rounds (Rain and Dew pays
    # the same child once a year), not one a round.
    one_per_student_per_year: bool = False
    # Offices that may submit for the family, with its consent (recorded: who gave it,
    # when): Rain and Dew's township or education official, or the village's cadre.
    on_behalf_with_consent: tuple[Role, ...] = ()
    # The office that cancels a grant when a report or objection proves true, before or
    # after payment (after: the amount goes onto the recovery list). None: no such step.
    cancelled_by: Role | None = None
    # The office that opens each round (Rain and Dew: the county poverty office, once the
    # national system has): no application is taken before; the townships are told.
    opened_by: Role | None = None
    # Programmes a student cannot have beside this one in the same season (either way
    # round: models/intake.excluded_by); the second is refused naming the first.
    excludes: tuple[str, ...] = ()
    notifications: dict[str, NotificationText] = Field(default_factory=dict)
    # Rounds within a year (R12); none: one round a year, keyed by the year alone.
    rounds: tuple[Round, ...] = ()
    # The plan's dated tasks of the year, before and beside the applications (the
    # freshman grant's implementing rules by mid-May): each reported done by its office,
    # reminded before its date and overdue after it (workflows/tasks.py).
    dated_tasks: tuple[FixedDate, ...] = ()
    # A loan, not a grant (the student loan): the family asks for an amount between
    # ``minimum_cny`` and the year's cap (``amounts``, by policy year), bounded by the fees.
    loan: LoanTerms | None = None
    # Set on the definition resolved for one round (for_round): what applications keep.
    round_key: str = ""

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
        for r in self.rounds:
            round_keys = {d.key for d in r.fixed_dates} or set(keys)
            missing = sorted({s.due for s in self.steps} - round_keys)
            if missing:
                raise ValueError(f"round {r.key} lacks the fixed dates {', '.join(missing)}")
        if len({r.key for r in self.rounds}) != len(self.rounds):
            raise ValueError("round keys must be unique")
        task_keys = [t.key for t in self.dated_tasks]
        if len(set(task_keys)) != len(task_keys) or set(task_keys) & set(keys):
            raise ValueError("dated task keys must be unique, and not a fixed date's")
        years = [a.from_year for a in self.amounts]
        if years != sorted(set(years)):
            raise ValueError("amounts must be in increasing from_year order, one entry a year")
        years = [e.from_year for e in self.eligibility_changes]
        if years != sorted(set(years)):
            raise ValueError(
                "eligibility_changes must be in increasing from_year order, one entry a year"
            )
        return self

    def for_round(self, key: str) -> Programme:
        """The definition in force for one round: its window and fixed dates.

        A programme with one round a year takes only the empty key."""
        if not self.rounds:
            if key:
                raise ValueError(f"{self.code} has one round a year: no round {key!r}")
            return self
        chosen = next((r for r in self.rounds if r.key == key), None)
        if chosen is None:
            known = ", ".join(r.key for r in self.rounds)
            raise ValueError(f"{self.code} has the rounds {known}, not {key or '(none)'!r}")
        eligibility, changes = self.eligibility, self.eligibility_changes
        if chosen.education_levels:
            levels = {"education_levels": chosen.education_levels}
            eligibility = eligibility.model_copy(update=levels)
            changes = tuple(
                c.model_copy(update={"eligibility": c.eligibility.model_copy(update=levels)})
                for c in changes
            )
        return self.model_copy(
            update={
                "eligibility": eligibility,
                "eligibility_changes": changes,
                "window_opens": chosen.window_opens,
                "window_closes": chosen.window_closes,
                "fixed_dates": chosen.fixed_dates or self.fixed_dates,
                "rounds": (),
                "round_key": chosen.key,
            }
        )

    def household_checked_at_intake(self, year: int) -> bool:
        """Intake refuses a student not on the registered-poor registry in a season of
        ``year``, unless a step checks the registry later (a cross-check, whose finding
        an office may overrule)."""
        return bool(self.eligibility_for(year).household_categories) and not (
            self.checks_register("poor_households")
        )

    def checks_register(self, register: str) -> bool:
        """Whether one of its steps checks applications against ``register``."""
        return any(register in s.registers for s in self.steps)

    @property
    def claim_round(self) -> str:
        """The round a student's one application is claimed in: none where the programme
        takes one a year across its rounds."""
        return "" if self.one_per_student_per_year else self.round_key

    def tasks_view(self) -> Programme:
        """The programme with its dated tasks among its fixed dates: what the calendar's
        schedule and reminder times are computed from for the year's tasks."""
        return self.model_copy(
            update={
                "fixed_dates": (*self.dated_tasks, *self.fixed_dates),
                "dated_tasks": (),
                "rounds": (),
            }
        )

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

    def step_at(self, stage: str) -> Step | None:
        """The step an application in ``stage`` is at (None: it has ended)."""
        return next((s for s in self.steps if stage in (s.stage, *s.stages_within)), None)

    def label(self, stage: str) -> tuple[str, str]:
        """A stage's name, Chinese and English: the programme's step, or an end."""
        for s in self.steps:
            if s.stage == stage:
                return s.label_zh, s.label_en
        return STAGE_NAME_ZH.get(stage, stage), STAGE_NAME_EN.get(stage, stage)

    def stages(self) -> list[str]:
        """Every stage of the programme's steps, in order, without the ends."""
        return [x for s in self.steps for x in (s.stage, *s.stages_within)]

    @property
    def approved_stage(self) -> str:
        """The stage an application enters once no step can reject it any more (a loan
        accepted at the centre: its first step)."""
        last = max((i for i, s in enumerate(self.steps) if s.decides), default=-1)
        return self.steps[last + 1].stage if last + 1 < len(self.steps) else self.done_stage

    def notice_at(self, level: Level, stage: str | None = None) -> NoticeStep | None:
        """The programme's public notice at ``level`` (and ``stage``, if given)."""
        return next(
            (
                s
                for s in self.steps
                if isinstance(s, NoticeStep) and s.level is level and stage in (None, s.stage)
            ),
            None,
        )

    def step_index(self, stage: str) -> int:
        for i, s in enumerate(self.steps):
            if s.stage == stage:
                return i
        raise KeyError(stage)

    def find_step(self, kind: type[S]) -> S | None:
        """The programme's step of a kind, if it has one."""
        return next((s for s in self.steps if isinstance(s, kind)), None)

    @property
    def done_stage(self) -> str:
        """The stage an application ends in when every step is done."""
        return self.steps[-1].done_stage

    @property
    def payout_date_key(self) -> str:
        """The fixed date by which the last step must be done."""
        return self.steps[-1].due

    def eligibility_for(self, year: int) -> Eligibility:
        """Who is eligible in a season of ``year`` (R11)."""
        dated = [c.eligibility for c in self.eligibility_changes if c.from_year <= year]
        return dated[-1] if dated else self.eligibility

    def amounts_for_year(self, year: int) -> DatedAmounts:
        dated = [a for a in self.amounts if a.from_year <= year]
        if not dated:
            raise ValueError(
                f"no amounts of {self.code} apply to {year} (the first are from {self.amounts[0].from_year})"
            )
        return dated[-1]

    def amount_for(self, year: int, attributes: dict[str, str]) -> int:
        for option in self.amounts_for_year(year).options:
            if all(attributes.get(k) == v for k, v in option.when.items()):
                return option.amount_cny
        raise ValueError(f"no amount of {self.code} {year} applies to {attributes}")
