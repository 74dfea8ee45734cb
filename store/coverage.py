"""Coverage, "应补尽补" (PROCESS.md §4.6): every eligible registered-poor student covered.

Who studies at which level comes from enrolment data, imported as dated snapshots
(``aidflow registry import --kind enrolment --as-of DATE``), each a whole list as of its
date: coverage reads the newest, and a student missing from it is no longer counted.
Two registers are kept apart, newest of each: the general enrolment data and the
vocational enrolment registry (``--kind vocational-enrolment``), which Rain and Dew's
cross-check and coverage read.

A programme's eligible students at a place are the registered-poor members of active
households there whose enrolment is at one of the programme's levels (in the first
year, where the programme takes freshmen only); of them, those who applied this season,
and those paid (or who signed for the grant). Identity numbers only as keyed hashes and
masked forms (R9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Engine

from models.domain import EducationLevel, HouseholdCategory
from models.privacy import mask_national_id
from models.programme import Programme
from store.importing import (
    ImportReport,
    RowProblem,
    chunks,
    person_problems,
    read_rows,
    rows_to_write,
)
from store.tables import ApplicationRow, Enrolment, Household, HouseholdMember, Place

Register = Literal["enrolment", "vocational"]
VOCATIONAL_LEVELS = (EducationLevel.SECONDARY_VOCATIONAL, EducationLevel.HIGHER_VOCATIONAL)
ENROLMENT_COLUMNS = ("national_id", "name", "school", "education_level", "year_of_study")
PAID_STAGES = ("paid", "received")

_ENROL = Enrolment.__table__  # type: ignore[attr-defined]
_MEMBERS = HouseholdMember.__table__  # type: ignore[attr-defined]
_HOUSEHOLDS = Household.__table__  # type: ignore[attr-defined]
_APPS = ApplicationRow.__table__  # type: ignore[attr-defined]
_PLACES = Place.__table__  # type: ignore[attr-defined]


def import_enrolment(
    engine: Engine,
    path: Path,
    hash_id: Callable[[str], str],
    *,
    as_of: date,
    register: Register = "enrolment",
    skip_bad: bool = False,
) -> ImportReport:
    """Import one dated snapshot of a register (CSV or XLSX); importing the same register
    and date again replaces it. The vocational register holds vocational levels only."""
    rows, header_problems = read_rows(path, ENROLMENT_COLUMNS)
    report = ImportReport(rows=len(rows), problems=list(header_problems))
    if header_problems:
        return report
    levels = (
        {lv.value for lv in VOCATIONAL_LEVELS}
        if register == "vocational"
        else {lv.value for lv in EducationLevel}
    )
    seen: dict[str, int] = {}
    good: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for n, r in rows:
        nid, h, problems = person_problems(n, r, hash_id)
        if h and h in seen:
            problems.append(RowProblem(n, "national_id", f"also on row {seen[h]}"))
        if not r["school"] or len(r["school"]) > 100:
            problems.append(RowProblem(n, "school", "must have 1 to 100 characters"))
        if r["education_level"] not in levels:
            problems.append(
                RowProblem(
                    n,
                    "education_level",
                    f"{r['education_level']!r} is not one of {', '.join(sorted(levels))}",
                )
            )
        year = r["year_of_study"]
        if not year.isdigit() or not 1 <= int(year) <= 8:
            problems.append(RowProblem(n, "year_of_study", f"{year!r} is not a year of 1 to 8"))
        if problems:
            report.problems.extend(problems)
            continue
        seen[h] = n
        good.append(
            {
                "kind": register,
                "as_of": as_of,
                "national_id_hash": h,
                "national_id_masked": mask_national_id(nid),
                "name": r["name"],
                "school": r["school"],
                "education_level": r["education_level"],
                "year_of_study": int(year),
                "source": f"{path.name} row {n}",
                "imported_at": now,
            }
        )
    if not rows_to_write(report, path, ENROLMENT_COLUMNS, rows, skip_bad):
        return report
    with engine.begin() as conn:
        conn.execute(delete(_ENROL).where(_ENROL.c.kind == register, _ENROL.c.as_of == as_of))
        if good:
            conn.execute(_ENROL.insert(), good)
    report.imported = len(good)
    return report


def register_of(programme: Programme) -> Register:
    """The register a programme's students are read from: the vocational one for a
    programme that checks against it (Rain and Dew), else the general enrolment data."""
    return "vocational" if programme.checks_register("vocational_enrolment") else "enrolment"


@dataclass
class VillageCoverage:
    village_code: str
    village_name: str
    eligible: int = 0
    applied: int = 0
    paid: int = 0
    # The eligible students who have not applied: (masked identity number, name).
    not_applied: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Coverage:
    programme: str
    season: int
    county_code: str
    as_of: date | None  # the enrolment snapshot read; None: no enrolment data yet
    villages: list[VillageCoverage]

    @property
    def eligible(self) -> int:
        return sum(v.eligible for v in self.villages)

    @property
    def applied(self) -> int:
        return sum(v.applied for v in self.villages)

    @property
    def paid(self) -> int:
        return sum(v.paid for v in self.villages)


def coverage(
    engine: Engine,
    programme: Programme,
    season: int,
    county_code: str,
    *,
    village_code: str = "",
) -> Coverage:
    """Per village of the county (or one village): eligible, applied, paid, and who has
    not applied."""
    eligibility = programme.eligibility_for(season)
    register = register_of(programme)
    with engine.connect() as conn:
        as_of = conn.execute(
            select(func.max(_ENROL.c.as_of)).where(_ENROL.c.kind == register)
        ).scalar()
        if (
            as_of is None
            or HouseholdCategory.REGISTERED_POOR not in eligibility.household_categories
        ):
            return Coverage(programme.code, season, county_code, as_of, [])
        where = [
            _HOUSEHOLDS.c.county_code == county_code,
            _HOUSEHOLDS.c.status == "active",
            _ENROL.c.kind == register,
            _ENROL.c.as_of == as_of,
            _ENROL.c.education_level.in_([lv.value for lv in eligibility.education_levels]),
        ]
        if eligibility.freshman_only:
            where.append(_ENROL.c.year_of_study == 1)
        if village_code:
            where.append(_HOUSEHOLDS.c.village_code == village_code)
        students = conn.execute(
            select(
                _MEMBERS.c.national_id_hash,
                _ENROL.c.national_id_masked,
                _ENROL.c.name,
                _HOUSEHOLDS.c.village_code,
            )
            .join(_HOUSEHOLDS, _HOUSEHOLDS.c.household_no == _MEMBERS.c.household_no)
            .join(
                _ENROL,
                and_(_ENROL.c.national_id_hash == _MEMBERS.c.national_id_hash),
            )
            .where(*where)
        ).all()
        stages: dict[str, str] = {}
        for chunk in chunks([s.national_id_hash for s in students], 500):
            for h, stage in conn.execute(
                select(_APPS.c.national_id_hash, _APPS.c.stage).where(
                    _APPS.c.programme == programme.code,
                    _APPS.c.season == season,
                    _APPS.c.national_id_hash.in_(chunk),
                )
            ):
                stages[h] = stage
        names = {
            code: name
            for code, name in conn.execute(
                select(_PLACES.c.code, _PLACES.c.name).where(
                    _PLACES.c.code.in_({s.village_code for s in students})
                )
            )
        }
    villages: dict[str, VillageCoverage] = {}
    for s in students:
        v = villages.setdefault(
            s.village_code, VillageCoverage(s.village_code, names.get(s.village_code, ""))
        )
        v.eligible += 1
        stage = stages.get(s.national_id_hash)
        if stage is None:
            v.not_applied.append((s.national_id_masked, s.name))
        else:
            v.applied += 1
            v.paid += stage in PAID_STAGES
    for v in villages.values():
        v.not_applied.sort()
    return Coverage(
        programme.code,
        season,
        county_code,
        as_of,
        sorted(villages.values(), key=lambda v: v.village_code),
    )
