"""The yearly aid ledger's data: aid recorded from others' lists, and the ledger built
from everything aidflow holds (models/ledger.py says what it is).

A recorded list (the national grant: each university's list of the county's students
who received it) is imported with a row-level report, as the registry is: a file with
a bad row imports nothing unless ``skip_bad``. Identity numbers are kept only as keyed
hashes and masked forms (R9). Importing a university's list again replaces that
university's rows of the programme and year: a corrected list is imported as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from models.calendar import SHANGHAI
from models.ledger import RECORDED_PROGRAMMES, AidKind, Ledger, LedgerLine, StudentLedger
from models.privacy import mask_national_id
from models.programmes import REGISTRY
from store.chain import utc
from store.importing import (
    ImportReport,
    RowProblem,
    chunks,
    person_problems,
    read_rows,
    rows_to_write,
)
from store.tables import (
    ApplicationRow,
    Household,
    HouseholdMember,
    Payment,
    Place,
    RecordedAid,
)

RECORDED_COLUMNS = ("national_id", "name", "university", "grade", "amount_cny")
# The largest single grant a list may record: above it, a row is a typing error.
MAX_RECORDED_CNY = 20_000

_APPS = ApplicationRow.__table__  # type: ignore[attr-defined]
_PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
_RECORDED = RecordedAid.__table__  # type: ignore[attr-defined]
_MEMBERS = HouseholdMember.__table__  # type: ignore[attr-defined]
_HOUSEHOLDS = Household.__table__  # type: ignore[attr-defined]
_PLACES = Place.__table__  # type: ignore[attr-defined]


@dataclass
class RecordedImport(ImportReport):
    """The import's report, and how many of its students are not on the registry (kept,
    but no village's ledger shows them)."""

    not_registered: int = 0
    students: set[str] = field(default_factory=set)


def import_recorded_aid(
    engine: Engine,
    path: Path,
    hash_id: Callable[[str], str],
    *,
    programme: str,
    year: int,
    skip_bad: bool = False,
) -> RecordedImport:
    """Import one list of aid decided and paid by others (CSV or XLSX)."""
    report = RecordedImport()
    if programme not in RECORDED_PROGRAMMES:
        known = ", ".join(sorted(RECORDED_PROGRAMMES))
        report.problems.append(RowProblem(1, "programme", f"{programme!r} is not one of {known}"))
        return report
    if not 2000 <= year <= 2100:
        report.problems.append(RowProblem(1, "year", f"{year} is not a year"))
        return report
    rows, header_problems = read_rows(path, RECORDED_COLUMNS)
    report.rows = len(rows)
    report.problems.extend(header_problems)
    if header_problems:
        return report
    seen: dict[tuple[str, str], int] = {}
    good: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for n, r in rows:
        nid, h, problems = person_problems(n, r, hash_id)
        name, university, grade = r["name"], r["university"], r["grade"]
        if not university or len(university) > 100:
            problems.append(RowProblem(n, "university", "must have 1 to 100 characters"))
        if len(grade) > 20:
            problems.append(RowProblem(n, "grade", "must have at most 20 characters"))
        amount = r["amount_cny"].replace(",", "")
        if not amount.isdigit() or not 1 <= int(amount) <= MAX_RECORDED_CNY:
            problems.append(
                RowProblem(
                    n,
                    "amount_cny",
                    f"{r['amount_cny']!r} is not a whole amount of 1 to {MAX_RECORDED_CNY:,} CNY",
                )
            )
        if h and (h, university) in seen:
            problems.append(
                RowProblem(
                    n, "national_id", f"also on row {seen[(h, university)]} for {university}"
                )
            )
        if problems:
            report.problems.extend(problems)
            continue
        seen[(h, university)] = n
        good.append(
            {
                "programme": programme,
                "year": year,
                "national_id_hash": h,
                "national_id_masked": mask_national_id(nid),
                "name": name,
                "university": university,
                "grade": grade,
                "amount_cny": int(amount),
                "source": f"{path.name} row {n}",
                "imported_at": now,
            }
        )
    if not rows_to_write(report, path, RECORDED_COLUMNS, rows, skip_bad):
        return report
    with engine.begin() as conn:
        # A university's list again replaces its list (a student taken off it is gone).
        conn.execute(
            delete(_RECORDED).where(
                _RECORDED.c.programme == programme,
                _RECORDED.c.year == year,
                _RECORDED.c.university.in_({g["university"] for g in good}),
            )
        )
        if good:
            conn.execute(_RECORDED.insert(), good)
        hashes = [g["national_id_hash"] for g in good]
        registered = set()
        for chunk in chunks(hashes, 500):
            registered |= set(
                conn.execute(
                    select(_MEMBERS.c.national_id_hash).where(
                        _MEMBERS.c.national_id_hash.in_(chunk)
                    )
                ).scalars()
            )
    report.imported = len(good)
    report.students = set(hashes)
    report.not_registered = len(set(hashes) - registered)
    return report


def build_ledger(
    engine: Engine,
    year: int,
    county_code: str,
    *,
    township_code: str = "",
    village_code: str = "",
) -> Ledger:
    """Each registered-poor student of the county (or one township or village) with the
    aid of ``year``: paid (the bank confirmed it), received (signed for), recorded."""
    where = [_HOUSEHOLDS.c.county_code == county_code]
    if village_code:
        where.append(_HOUSEHOLDS.c.village_code == village_code)
    elif township_code:
        where.append(_HOUSEHOLDS.c.township_code == township_code)
    with engine.connect() as conn:
        students = conn.execute(
            select(
                _MEMBERS.c.national_id_hash,
                _MEMBERS.c.national_id_masked,
                _HOUSEHOLDS.c.township_code,
                _HOUSEHOLDS.c.village_code,
            )
            .join(_HOUSEHOLDS, _HOUSEHOLDS.c.household_no == _MEMBERS.c.household_no)
            .where(*where)
        ).all()
        by_hash = {s.national_id_hash: s for s in students}
        lines: dict[str, list[LedgerLine]] = {}
        names: dict[str, str] = {}
        for a in _application_lines(conn, year, county_code, list(by_hash)):
            h, name, line = a
            lines.setdefault(h, []).append(line)
            names.setdefault(h, name)
        for chunk in chunks(list(by_hash), 500):
            for r in conn.execute(
                select(_RECORDED).where(
                    _RECORDED.c.year == year, _RECORDED.c.national_id_hash.in_(chunk)
                )
            ):
                lines.setdefault(r.national_id_hash, []).append(
                    LedgerLine(
                        programme=r.programme,
                        programme_name_zh=_name_zh(r.programme),
                        kind=AidKind.RECORDED,
                        amount_cny=r.amount_cny,
                        on=_day(r.imported_at),
                        source=f"{r.university}{(' ' + r.grade) if r.grade else ''}; {r.source}",
                    )
                )
                names.setdefault(r.national_id_hash, r.name)
        village_names = dict(
            (p.code, p.name)
            for p in conn.execute(
                select(_PLACES.c.code, _PLACES.c.name).where(
                    _PLACES.c.code.in_({s.village_code for s in students})
                )
            )
        )
    ledgers = [
        StudentLedger(
            national_id_masked=by_hash[h].national_id_masked,
            name=names.get(h, ""),
            township_code=by_hash[h].township_code,
            village_code=by_hash[h].village_code,
            village_name=village_names.get(by_hash[h].village_code, ""),
            lines=sorted(ls, key=lambda x: (x.on or date.min, x.programme)),
        )
        for h, ls in lines.items()
    ]
    ledgers.sort(key=lambda s: (s.village_code, s.name, s.national_id_masked))
    return Ledger(
        year=year,
        county_code=county_code,
        township_code=township_code,
        village_code=village_code,
        built_at=datetime.now(UTC),
        students=ledgers,
    )


def _application_lines(
    conn: Any, year: int, county_code: str, hashes: list[str]
) -> Iterable[tuple[str, str, LedgerLine]]:
    """The aid of aidflow's own programmes: each payment the bank confirmed, and each
    grant signed for (an application that ended ``received``)."""
    for chunk in chunks(hashes, 500):
        paid = conn.execute(
            select(
                _APPS.c.national_id_hash,
                _APPS.c.applicant_name,
                _APPS.c.programme,
                _APPS.c.workflow_id,
                _PAYMENTS.c.amount_cny,
                _PAYMENTS.c.settled_at,
                _PAYMENTS.c.bank_reference,
                _PAYMENTS.c.batch_id,
            )
            .join(_PAYMENTS, _PAYMENTS.c.workflow_id == _APPS.c.workflow_id)
            .where(
                _APPS.c.season == year,
                _APPS.c.county_code == county_code,
                _APPS.c.national_id_hash.in_(chunk),
                _PAYMENTS.c.status == "paid",
            )
        )
        for p in paid:
            yield (
                p.national_id_hash,
                p.applicant_name,
                LedgerLine(
                    programme=p.programme,
                    programme_name_zh=_name_zh(p.programme),
                    kind=AidKind.PAID,
                    amount_cny=p.amount_cny,
                    on=_day(p.settled_at),
                    source=f"{p.workflow_id}; batch {p.batch_id}"
                    + (f"; bank {p.bank_reference}" if p.bank_reference else ""),
                ),
            )
        received = conn.execute(
            select(
                _APPS.c.national_id_hash,
                _APPS.c.applicant_name,
                _APPS.c.programme,
                _APPS.c.workflow_id,
                _APPS.c.amount_cny,
                _APPS.c.decided_at,
                _APPS.c.updated_at,
                _APPS.c.stage,
            ).where(
                _APPS.c.season == year,
                _APPS.c.county_code == county_code,
                _APPS.c.national_id_hash.in_(chunk),
                _APPS.c.stage.in_(("received", "lent")),
            )
        )
        for r in received:
            lent = r.stage == "lent"
            yield (
                r.national_id_hash,
                r.applicant_name,
                LedgerLine(
                    programme=r.programme,
                    programme_name_zh=_name_zh(r.programme),
                    # A loan the bank reported paid, or a grant signed for in person.
                    kind=AidKind.LENT if lent else AidKind.RECEIVED,
                    amount_cny=r.amount_cny,
                    on=_day(r.decided_at or r.updated_at),
                    source=f"{r.workflow_id}; {'paid by the bank' if lent else 'signed for'}",
                ),
            )


def _name_zh(code: str) -> str:
    p = REGISTRY.get(code)
    return p.name_zh if p else RECORDED_PROGRAMMES.get(code, (code, ""))[0]


def _day(at: datetime | None) -> date | None:
    """The day in Beijing (the ledger's readers' day)."""
    return None if at is None else utc(at).astimezone(SHANGHAI).date()
