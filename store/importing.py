"""Importing the registry of registered poor households and the places, from CSV.

Each row is validated; the report names row, field and problem. A file with any
bad row imports nothing, unless ``skip_bad`` is set: then the good rows are
imported and the bad ones are written to a rejects file with their problems.
Identity numbers are stored only as keyed hashes and masked forms (R9).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.domain import Level
from models.privacy import mask_national_id, national_id_problem
from store.tables import Household, HouseholdMember, Place

REGISTRY_COLUMNS = (
    "household_no",
    "head_name",
    "member_ids",
    "county_code",
    "township_code",
    "village_code",
    "status",
    "year",
)
PLACE_COLUMNS = ("code", "name", "level", "parent_code", "contact_email", "contact_phone")
HOUSEHOLD_STATUSES = ("active", "exited")
_CODE = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.problem}"


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    rejects_file: Path | None = None

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems})


def person_problems(
    n: int, row: dict[str, str], hash_id: Callable[[str], str]
) -> tuple[str, str, list[RowProblem]]:
    """A row's person: the identity number (upper-cased), its keyed hash ("" when it is
    not a valid number), and the problems with it and with the name; a problem never
    shows the number itself (R9). Every importer of people (enrolment, the rolls, the
    recorded grants) checks them so."""
    nid = row["national_id"].upper()
    problems: list[RowProblem] = []
    problem = national_id_problem(nid)
    if problem:
        problems.append(RowProblem(n, "national_id", f"{mask_national_id(nid)}: {problem}"))
    if not row["name"] or len(row["name"]) > 50:
        problems.append(RowProblem(n, "name", "must have 1 to 50 characters"))
    return nid, (hash_id(nid) if not problem else ""), problems


def rows_to_write(
    report: ImportReport,
    path: Path,
    columns: tuple[str, ...],
    rows: list[tuple[int, dict[str, str]]],
    skip_bad: bool,
) -> bool:
    """Whether the good rows are written: not when a row is bad, unless ``skip_bad``;
    then the bad ones go to a rejects file beside the import."""
    if report.problems and not skip_bad:
        return False
    if report.problems:
        report.rejects_file = write_rejects(path, columns, rows, report.problems)
    return True


def read_rows(
    path: Path, columns: tuple[str, ...]
) -> tuple[list[tuple[int, dict[str, str]]], list[RowProblem]]:
    """The rows of a CSV (UTF-8) or XLSX file (its first sheet), numbered as a
    spreadsheet numbers them (the header is row 1), every value as stripped text."""
    if path.suffix.lower() == ".xlsx":
        header, records = _xlsx_records(path)
    else:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        header = [h.strip() for h in reader.fieldnames or []]
        records = [
            (i, {k.strip(): (v or "").strip() for k, v in r.items() if k})
            for i, r in enumerate(reader, start=2)
        ]
    missing = [c for c in columns if c not in header]
    if missing:
        return [], [RowProblem(1, ",".join(missing), "missing column(s) in the header")]
    return records, []


def _xlsx_records(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()
    if not rows:
        return [], []

    def text(v: object) -> str:
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))  # a whole amount typed as a number
        return str(v).strip()

    header = [text(h) for h in rows[0]]
    return header, [
        (i, {h: text(v) for h, v in itertools.zip_longest(header, r[: len(header)]) if h})
        for i, r in enumerate(rows[1:], start=2)
        if any(v not in (None, "") for v in r)  # a blank row is no row (its number kept)
    ]


def write_rejects(
    path: Path,
    columns: tuple[str, ...],
    rows: list[tuple[int, dict[str, str]]],
    problems: list[RowProblem],
) -> Path:
    by_row: dict[int, list[str]] = {}
    for p in problems:
        by_row.setdefault(p.row, []).append(f"{p.field}: {p.problem}")
    out = path.with_name(path.stem + ".rejects.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", *columns, "problems"])
        for n, row in rows:
            if n in by_row:
                w.writerow([n, *(row.get(c, "") for c in columns), "; ".join(by_row[n])])
    return out


def import_registry(
    engine: Engine,
    path: Path,
    hash_id: Callable[[str], str],
    *,
    as_of: date | None = None,
    skip_bad: bool = False,
) -> ImportReport:
    """Import (or re-import: rows are replaced by household number) the county's registry:
    the round of the registry as of ``as_of`` (default: today), which each row keeps."""
    rows, header_problems = read_rows(path, REGISTRY_COLUMNS)
    report = ImportReport(rows=len(rows), problems=list(header_problems))
    if header_problems:
        return report
    seen_households: dict[str, int] = {}
    seen_members: dict[str, int] = {}
    good: list[tuple[Household, list[HouseholdMember]]] = []
    now = datetime.now(UTC)
    for n, r in rows:
        problems: list[RowProblem] = []

        def bad(fld: str, msg: str, n: int = n, problems: list[RowProblem] = problems) -> None:
            problems.append(RowProblem(n, fld, msg))

        if not r["household_no"]:
            bad("household_no", "is empty")
        elif r["household_no"] in seen_households:
            bad("household_no", f"also on row {seen_households[r['household_no']]}")
        if not r["head_name"]:
            bad("head_name", "is empty")
        for c in ("county_code", "township_code", "village_code"):
            if not _CODE.match(r[c]):
                bad(c, f"{r[c]!r} is not a 12-digit division code")
        if (
            _CODE.match(r["village_code"])
            and _CODE.match(r["township_code"])
            and not r["village_code"].startswith(r["township_code"][:9])
        ):
            bad("village_code", f"{r['village_code']} is not in township {r['township_code']}")
        if (
            _CODE.match(r["township_code"])
            and _CODE.match(r["county_code"])
            and not r["township_code"].startswith(r["county_code"][:6])
        ):
            bad("township_code", f"{r['township_code']} is not in county {r['county_code']}")
        if r["status"] not in HOUSEHOLD_STATUSES:
            bad("status", f"{r['status']!r} is not one of {', '.join(HOUSEHOLD_STATUSES)}")
        if not (r["year"].isdigit() and 2000 <= int(r["year"]) <= 2100):
            bad("year", f"{r['year']!r} is not a year")
        members: list[HouseholdMember] = []
        ids = [x.strip() for x in r["member_ids"].replace(",", ";").split(";") if x.strip()]
        if not ids:
            bad("member_ids", "no identity number")
        for position, nid in enumerate(ids, start=1):
            problem = national_id_problem(nid)
            if problem:
                # Never echo the number itself into a report (R9).
                bad("member_ids", f"member {position} ({mask_national_id(nid)}): {problem}")
                continue
            h = hash_id(nid)
            if h in seen_members:
                bad(
                    "member_ids",
                    f"member {position} ({mask_national_id(nid)}) is also on row {seen_members[h]}",
                )
                continue
            seen_members[h] = n
            members.append(
                HouseholdMember(
                    national_id_hash=h,
                    national_id_masked=mask_national_id(nid),
                    household_no=r["household_no"],
                )
            )
        if r["household_no"]:
            seen_households.setdefault(r["household_no"], n)
        if problems:
            report.problems.extend(problems)
            continue
        household = Household(
            household_no=r["household_no"],
            head_name=r["head_name"],
            county_code=r["county_code"],
            township_code=r["township_code"],
            village_code=r["village_code"],
            status=r["status"],
            year=int(r["year"]),
            as_of=as_of or now.date(),
            imported_at=now,
        )
        good.append((household, members))
    if report.problems and not skip_bad:
        return report
    if report.problems:
        report.rejects_file = write_rejects(path, REGISTRY_COLUMNS, rows, report.problems)
    with Session(engine) as session, session.begin():
        numbers = [h.household_no for h, _ in good]
        hashes = [m.national_id_hash for _, ms in good for m in ms]
        for chunk in chunks(numbers, 500):
            session.execute(
                delete(HouseholdMember).where(col(HouseholdMember.household_no).in_(chunk))
            )
        for chunk in chunks(hashes, 500):
            session.execute(
                delete(HouseholdMember).where(col(HouseholdMember.national_id_hash).in_(chunk))
            )
        session.flush()
        for household, _ in good:
            session.merge(household)
        session.flush()
        for _, members in good:
            session.add_all(members)
    report.imported = len(good)
    return report


def import_places(engine: Engine, path: Path, *, skip_bad: bool = False) -> ImportReport:
    rows, header_problems = read_rows(path, PLACE_COLUMNS[:4])
    report = ImportReport(rows=len(rows), problems=list(header_problems))
    if header_problems:
        return report
    with Session(engine) as session:
        known = {p.code: p.level for p in session.exec(select(Place)).all()}
    in_file = {r["code"]: r["level"] for _, r in rows if _CODE.match(r.get("code", ""))}
    levels = {lv.value for lv in Level}
    parent_level = {
        Level.TOWNSHIP.value: Level.COUNTY.value,
        Level.VILLAGE.value: Level.TOWNSHIP.value,
    }
    seen: dict[str, int] = {}
    good: list[Place] = []
    for n, r in rows:
        problems: list[RowProblem] = []
        code, level, parent = r["code"], r["level"], r.get("parent_code", "")
        if not _CODE.match(code):
            problems.append(RowProblem(n, "code", f"{code!r} is not a 12-digit division code"))
        elif code in seen:
            problems.append(RowProblem(n, "code", f"also on row {seen[code]}"))
        if not r["name"]:
            problems.append(RowProblem(n, "name", "is empty"))
        if level not in levels:
            problems.append(
                RowProblem(n, "level", f"{level!r} is not one of county, township, village")
            )
        elif level == Level.COUNTY.value:
            if parent:
                problems.append(RowProblem(n, "parent_code", "a county has no parent here"))
        else:
            want = parent_level[level]
            got = in_file.get(parent) or known.get(parent)
            if got is None:
                problems.append(RowProblem(n, "parent_code", f"{parent!r} is not a known {want}"))
            elif got != want:
                problems.append(RowProblem(n, "parent_code", f"{parent} is a {got}, not a {want}"))
        if _CODE.match(code):
            seen.setdefault(code, n)
        if problems:
            report.problems.extend(problems)
            continue
        good.append(
            Place(
                code=code,
                name=r["name"],
                level=level,
                parent_code=parent or None,
                contact_email=r.get("contact_email", ""),
                contact_phone=r.get("contact_phone", ""),
            )
        )
    if report.problems and not skip_bad:
        return report
    if report.problems:
        report.rejects_file = write_rejects(path, PLACE_COLUMNS, rows, report.problems)
    with Session(engine) as session, session.begin():
        for place in good:
            session.merge(place)
    report.imported = len(good)
    return report


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    """``items`` in lists of at most ``size`` (a statement's IN list stays bounded)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
