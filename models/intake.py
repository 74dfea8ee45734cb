"""Intake rules (R5), checked at the boundary before any workflow starts.

One refusal names every failing field at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from models.application import Actor, ApplicationForm
from models.calendar import WorkingCalendar
from models.domain import (
    DOCUMENT_NAME_ZH,
    ROLE_LEVEL,
    DocumentKind,
    HouseholdCategory,
    Level,
    Role,
    Stage,
)
from models.loan import loan_document_problems, loan_problems, working_day_problem
from models.privacy import national_id_problem
from models.programme import Eligibility, Programme


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class RegisteredMember(BaseModel):
    """What the registry says of a person: their household and its place."""

    model_config = ConfigDict(frozen=True)

    household_no: str
    village_code: str
    status: str
    category: HouseholdCategory = HouseholdCategory.REGISTERED_POOR


# An application that ended so does not count against another (one a season, exclusions).
NOT_COUNTED: frozenset[str] = frozenset({Stage.REJECTED, Stage.WITHDRAWN})


class PriorApplication(BaseModel):
    """An application the same student already has in a season, in any county."""

    model_config = ConfigDict(frozen=True)

    programme: str
    round: str = ""
    workflow_id: str
    county_code: str
    stage: str


def excluded_by(programme: Programme, registry: dict[str, Programme]) -> frozenset[str]:
    """The programmes a student cannot have beside ``programme`` in a season: those it
    excludes and those that exclude it."""
    return frozenset(programme.excludes) | {
        code for code, other in registry.items() if programme.code in other.excludes
    }


def check_prior_applications(
    programme: Programme,
    workflow_id: str,
    priors: list[PriorApplication],
    excluded: frozenset[str] = frozenset(),
) -> list[FieldProblem]:
    """One application per student, programme and season (a round's, where it has rounds)
    across every county's season; none beside a programme in ``excluded``
    (:func:`excluded_by`) in the same year. A rejected or withdrawn one does not count."""
    problems: list[FieldProblem] = []
    for p in priors:
        if p.workflow_id == workflow_id or p.stage in NOT_COUNTED:
            continue  # the same application (a repeat: answered by its workflow), or ended
        if p.programme == programme.code:
            if not programme.one_per_student_per_season:
                continue
            if p.round != programme.round_key and not programme.one_per_student_per_year:
                continue
            problems.append(
                FieldProblem(
                    field="national_id",
                    problem=(
                        f"already applied to {programme.code} this "
                        f"{'year' if programme.one_per_student_per_year else 'season'} in "
                        f"county {p.county_code} ({p.workflow_id}, {p.stage}): one a student a "
                        f"{'year' if programme.one_per_student_per_year else 'season'}"
                    ),
                )
            )
        elif p.programme in excluded:
            problems.append(
                FieldProblem(
                    field="programme",
                    problem=(
                        f"{programme.code} excludes {p.programme}, already applied to this "
                        f"season ({p.workflow_id}, {p.stage})"
                    ),
                )
            )
    return problems


def check_application(
    form: ApplicationForm,
    programme: Programme,
    *,
    now: datetime,
    window: tuple[datetime, datetime],
    lookup_member: Callable[[str], RegisteredMember | None],
    submitted_by: Actor,
    calendar: WorkingCalendar | None = None,
) -> list[FieldProblem]:
    """Every problem of ``form``; an empty list means it may be accepted.

    ``lookup_member`` takes the identity number and answers from the registry
    of registered poor households (by keyed hash; the caller does the hashing);
    ``submitted_by`` is who submits: the applicant, or an office the programme names.
    """
    problems: list[FieldProblem] = []
    if form.programme != programme.code:
        problems.append(
            FieldProblem(
                field="programme", problem=f"is {form.programme}, expected {programme.code}"
            )
        )

    id_problem = national_id_problem(form.national_id)
    if id_problem:
        problems.append(FieldProblem(field="national_id", problem=id_problem))
    elif programme.household_checked_at_intake(form.season):
        member = lookup_member(form.national_id)
        eligible = programme.eligibility_for(form.season).household_categories
        if member is None:
            problems.append(
                FieldProblem(
                    field="national_id",
                    problem="not a member of any household on the county's registry of registered poor households",
                )
            )
        else:
            if member.category not in eligible or member.status != "active":
                problems.append(
                    FieldProblem(
                        field="household_no",
                        problem=f"household {member.household_no} is {member.status} ({member.category.value}); the programme needs an active {', '.join(sorted(c.value for c in eligible))} household",
                    )
                )
            if member.household_no != form.household_no:
                problems.append(
                    FieldProblem(
                        field="household_no",
                        problem=f"the registry lists this student in household {member.household_no}, not {form.household_no}",
                    )
                )
            if member.village_code != form.places.village_code:
                problems.append(
                    FieldProblem(
                        field="places.village_code",
                        problem=f"the household is registered in village {member.village_code}, not {form.places.village_code}",
                    )
                )

    problems += record_problems(programme, programme.eligibility_for(form.season), form)
    if Role.HIGH_SCHOOL in programme.submitted_by and not form.places.school_code:
        problems.append(
            FieldProblem(
                field="places.school_code", problem="the submitting high school is required"
            )
        )
    if submitted_by.role in programme.on_behalf_with_consent:
        # An official for the family: only with its consent, and only at its own place.
        if form.consent is None:
            problems.append(
                FieldProblem(
                    field="consent",
                    problem=f"{submitted_by.role.value} submits for the family only with its "
                    "consent: who gave it, their relation, when",
                )
            )
        elif form.consent.given_at > now:
            problems.append(FieldProblem(field="consent.given_at", problem="is in the future"))
        level = ROLE_LEVEL.get(submitted_by.role)
        if level is not None and submitted_by.place_code != form.places.code_at(level):
            problems.append(
                FieldProblem(
                    field="submitted_by",
                    problem=f"{submitted_by.role.value} {submitted_by.place_code} may not "
                    f"submit for {level.value} {form.places.code_at(level) or '(none)'}",
                )
            )
    elif submitted_by.role not in programme.submitted_by:
        allowed = " or the ".join(r.value for r in programme.submitted_by)
        problems.append(
            FieldProblem(
                field="submitted_by",
                problem=f"{programme.code} applications are submitted by the {allowed}, not {submitted_by.role.value}",
            )
        )
    elif (
        ROLE_LEVEL.get(submitted_by.role) is Level.COUNTY
        and submitted_by.place_code[:6] != form.places.county_code[:6]
    ):
        problems.append(
            FieldProblem(
                field="submitted_by",
                problem=f"{submitted_by.role.value} {submitted_by.place_code} may not submit for county {form.places.county_code}",
            )
        )
    elif (
        submitted_by.role is Role.HIGH_SCHOOL and submitted_by.place_code != form.places.school_code
    ):
        problems.append(
            FieldProblem(
                field="submitted_by",
                problem=f"high school {submitted_by.place_code} may not submit for school {form.places.school_code}",
            )
        )

    opens, closes = window
    if not opens <= now < closes:
        problems.append(
            FieldProblem(
                field="submitted_at",
                problem=f"outside the application window {programme.window_opens.in_year(form.season)} to {programme.window_closes.in_year(form.season)}",
            )
        )

    if not form.places.village_code.startswith(
        form.places.township_code[:9]
    ) or not form.places.township_code.startswith(form.places.county_code[:6]):
        problems.append(
            FieldProblem(
                field="places",
                problem="the village is not in the township, or the township not in the county",
            )
        )

    if programme.loan is not None:
        problems += _loan_problems(form, programme, now, calendar, lookup_member)

    problems += document_problems(programme.eligibility_for(form.season), form.documents)
    return problems


def document_problems(
    eligibility: Eligibility, documents: Mapping[DocumentKind, int]
) -> list[FieldProblem]:
    """Each checklist line the documents do not meet."""
    problems: list[FieldProblem] = []
    for requirement in eligibility.documents:
        have = max((documents.get(kind, 0) for kind in requirement.any_of), default=0)
        if have < requirement.copies:
            names = " or ".join(f"{DOCUMENT_NAME_ZH[k]} ({k.value})" for k in requirement.any_of)
            problems.append(
                FieldProblem(
                    field=f"documents.{requirement.any_of[0].value}",
                    problem=f"missing {names}: {requirement.copies} required, {have} given",
                )
            )
    return problems


def registered_poor(member: RegisteredMember | None) -> bool:
    """An active member of a registered-poor household (who shows the poverty handbook)."""
    return (
        member is not None
        and member.status == "active"
        and member.category is HouseholdCategory.REGISTERED_POOR
    )


def _loan_problems(
    form: ApplicationForm,
    programme: Programme,
    now: datetime,
    calendar: WorkingCalendar | None,
    lookup_member: Callable[[str], RegisteredMember | None],
) -> list[FieldProblem]:
    """A loan's own rules: working days at the centre (R1), the amount within its
    limits, the co-borrower, and the hardship papers (or the handbook, or a renewal's
    statement)."""
    assert programme.loan is not None
    found: list[FieldProblem] = []
    if calendar is not None:
        closed = working_day_problem(calendar, now)
        if closed is not None:
            found.append(FieldProblem(field=closed.field, problem=closed.problem))
    cap = amount_due(programme, form.season, form)
    for p in loan_problems(form.loan, programme.loan, cap, form.season, form.national_id):
        found.append(FieldProblem(field=p.field, problem=p.problem))
    if form.loan is not None and national_id_problem(form.national_id) is None:
        poor = registered_poor(lookup_member(form.national_id))
        for p in loan_document_problems(
            form.documents, registered_poor=poor, renewal=bool(form.loan.renewal_of)
        ):
            found.append(FieldProblem(field=p.field, problem=p.problem))
    return found


def correction_problems(programme: Programme, season: int, corrected: object) -> list[FieldProblem]:
    """What intake would refuse in an application's record once corrected (R4: a
    correction is the application's data corrected, and intake's rules still hold):
    its education level, a freshman-only programme, the values its amount depends on."""
    problems: list[FieldProblem] = []
    eligibility = programme.eligibility_for(season)
    documents = getattr(corrected, "documents", None)
    if documents is not None:
        problems += document_problems(eligibility, documents)
    problems += record_problems(programme, eligibility, corrected, "changes.")
    if not problems and programme.loan is None:
        try:
            amount_due(programme, season, corrected)
        except ValueError as e:
            problems.append(FieldProblem(field="changes", problem=str(e)))
    return problems


def record_problems(
    programme: Programme, eligibility: Eligibility, record: object, prefix: str = ""
) -> list[FieldProblem]:
    """What a form or a corrected record has wrong against the season's eligibility:
    its education level, a freshman-only programme, the values its amount depends on
    (``prefix``: where the fields are in the request)."""
    problems: list[FieldProblem] = []
    level = getattr(record, "education_level", None)
    if level is not None and level not in eligibility.education_levels:
        allowed = ", ".join(sorted(e.value for e in eligibility.education_levels))
        problems.append(
            FieldProblem(
                field=f"{prefix}education_level",
                problem=f"{level.value} is not eligible (needs {allowed})",
            )
        )
    if eligibility.freshman_only and getattr(record, "freshman", True) is False:
        problems.append(
            FieldProblem(
                field=f"{prefix}freshman",
                problem="the programme is for students admitted this year",
            )
        )
    for name in programme.amount_attributes:
        if getattr(record, name, None) is None:
            problems.append(
                FieldProblem(
                    field=f"{prefix}{name}",
                    problem=f"required: the amount of {programme.code} depends on it",
                )
            )
    return problems


def amount_due(programme: Programme, season: int, values: object) -> int:
    """The programme's amount for the values its amounts depend on (a form, or the
    applicant's record in a workflow: both have the attributes by the same names)."""
    attributes: dict[str, str] = {}
    for name in programme.amount_attributes:
        value = getattr(values, name, None)
        attributes[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return programme.amount_for(season, attributes)
