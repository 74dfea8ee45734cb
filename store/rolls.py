"""The civil-affairs bureau's rolls (民政在册名单), for the freshman grant's check.

Imported as dated snapshots of a county (``aidflow registry import --kind civil-affairs
--as-of DATE --county CODE``), each the whole list as of its date: the check reads the
newest snapshot on or before the day it runs and records which. Identity numbers only as
keyed hashes and masked forms (R9).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from models.domain import ReliefCategory
from models.privacy import mask_national_id
from store.importing import (
    ImportReport,
    RowProblem,
    chunks,
    person_problems,
    read_rows,
    rows_to_write,
)
from store.tables import CivilAffairsRoll

ROLLS_COLUMNS = ("national_id", "name", "category")

_ROLLS = CivilAffairsRoll.__table__  # type: ignore[attr-defined]


def import_rolls(
    engine: Engine,
    path: Path,
    hash_id: Callable[[str], str],
    *,
    county_code: str,
    as_of: date,
    skip_bad: bool = False,
) -> ImportReport:
    """Import one dated snapshot of a county's rolls (CSV or XLSX); the same county and
    date again replaces it."""
    rows, header_problems = read_rows(path, ROLLS_COLUMNS)
    report = ImportReport(rows=len(rows), problems=list(header_problems))
    if header_problems:
        return report
    categories = {c.value for c in ReliefCategory}
    seen: dict[str, int] = {}
    good: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for n, r in rows:
        nid, h, problems = person_problems(n, r, hash_id)
        if h and h in seen:
            problems.append(RowProblem(n, "national_id", f"also on row {seen[h]}"))
        if r["category"] not in categories:
            problems.append(
                RowProblem(
                    n,
                    "category",
                    f"{r['category']!r} is not one of {', '.join(sorted(categories))}",
                )
            )
        if problems:
            report.problems.extend(problems)
            continue
        seen[h] = n
        good.append(
            {
                "as_of": as_of,
                "county_code": county_code,
                "national_id_hash": h,
                "national_id_masked": mask_national_id(nid),
                "name": r["name"],
                "category": r["category"],
                "source": f"{path.name} row {n}",
                "imported_at": now,
            }
        )
    if not rows_to_write(report, path, ROLLS_COLUMNS, rows, skip_bad):
        return report
    with engine.begin() as conn:
        conn.execute(
            delete(_ROLLS).where(_ROLLS.c.as_of == as_of, _ROLLS.c.county_code == county_code)
        )
        if good:
            conn.execute(_ROLLS.insert(), good)
    report.imported = len(good)
    return report


def check_rolls(
    engine: Engine, county_code: str, hashes: list[str], as_of: date
) -> tuple[date | None, dict[str, ReliefCategory]]:
    """The newest snapshot of the county's rolls on or before ``as_of``, and the category
    it lists for each of ``hashes`` that is on it."""
    with engine.connect() as conn:
        snapshot = conn.execute(
            select(func.max(_ROLLS.c.as_of)).where(
                _ROLLS.c.county_code == county_code, _ROLLS.c.as_of <= as_of
            )
        ).scalar()
        if snapshot is None:
            return None, {}
        found: dict[str, ReliefCategory] = {}
        for part in chunks(hashes, 500):
            for h, category in conn.execute(
                select(_ROLLS.c.national_id_hash, _ROLLS.c.category).where(
                    _ROLLS.c.county_code == county_code,
                    _ROLLS.c.as_of == snapshot,
                    _ROLLS.c.national_id_hash.in_(part),
                )
            ):
                found[h] = ReliefCategory(category)
    return snapshot, found
