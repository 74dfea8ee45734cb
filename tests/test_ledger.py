"""The yearly aid ledger (issue 18, PROCESS.md §4.6) and the national grant's lists: a
student paid by one programme, signed for in another and recorded by a third has all
three lines, each with its source; lists import with a row-level report (R9: never a
full identity number in a report, a table or the workbook)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import openpyxl
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.ledger import write_ledger
from models.ledger import AidKind
from store.importing import import_registry
from store.ledger import build_ledger, import_recorded_aid
from store.sealing import Keys
from store.tables import ApplicationRow, OutboxMessage, Payment, PayoutBatch, RecordedAid
from tests.support import COUNTY, OTHER_VILLAGE, TOWNSHIP, VILLAGE, make_national_id

YEAR = 2027
PAID_TO, SIGNED, RECORDED_ONLY, ELSEWHERE, NOT_REGISTERED = 501, 502, 503, 504, 505
STUDENT = make_national_id(PAID_TO)


def registry_csv(tmp_path: Path) -> Path:
    """Households: one at the village with a student paid, signed for and recorded; one
    with a student recorded only; one at another village."""
    rows = [
        ("HH-L1", "张父", f"{make_national_id(601)};{STUDENT}", VILLAGE),
        ("HH-L2", "李父", make_national_id(RECORDED_ONLY), VILLAGE),
        ("HH-L3", "王父", make_national_id(ELSEWHERE), OTHER_VILLAGE),
    ]
    path = tmp_path / "registry.csv"
    path.write_text(
        "household_no,head_name,member_ids,county_code,township_code,village_code,status,year\n"
        + "".join(
            f"{h},{n},{ids},{COUNTY},{TOWNSHIP},{v},active,{YEAR}\n" for h, n, ids, v in rows
        ),
        encoding="utf-8",
    )
    return path


def grant_list(tmp_path: Path, rows: list[tuple[str, ...]], name: str = "ngrant.csv") -> Path:
    path = tmp_path / name
    path.write_text(
        "national_id,name,university,grade,amount_cny\n"
        + "".join(",".join(r) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def application(
    s: Session, keys: Keys, serial: int, programme: str, village: str, stage: str, amount: int
) -> str:
    nid = make_national_id(serial)
    wf = f"{programme}/{YEAR}/341225/ledger{serial}"
    s.add(
        ApplicationRow(
            workflow_id=wf,
            programme=programme,
            season=YEAR,
            county_code=COUNTY,
            township_code=TOWNSHIP,
            village_code=village,
            applicant_name=f"学生{serial}",
            national_id_masked=nid[:6] + "********" + nid[-4:],
            national_id_hash=keys.hash_id(nid),
            stage=stage,
            amount_cny=amount,
            updated_at=datetime(2027, 8, 20, 3, tzinfo=UTC),
        )
    )
    return wf


def seed_year(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    """County subsidy paid (after a returned first attempt, which is not aid), new-student
    aid signed for, and the national grant recorded, for one student; others around."""
    report = import_registry(engine, registry_csv(tmp_path), keys.hash_id)
    assert report.imported == 3, report.problems
    with Session(engine) as s:
        paid = application(s, keys, PAID_TO, "county-subsidy", VILLAGE, "paid", 3000)
        application(s, keys, PAID_TO, "new-student-aid", VILLAGE, "received", 1000)
        elsewhere = application(s, keys, ELSEWHERE, "county-subsidy", OTHER_VILLAGE, "paid", 3000)
        s.add(
            PayoutBatch(
                id="pb-ledger-1",
                programme="county-subsidy",
                season=YEAR,
                county_code=COUNTY,
                created_at=datetime(2027, 9, 18, tzinfo=UTC),
            )
        )
        s.flush()
        for attempt, (wf, status) in enumerate(
            [(paid, "returned"), (paid, "paid"), (elsewhere, "paid")], start=1
        ):
            s.add(
                Payment(
                    idempotency_key=f"{wf}#{attempt}",
                    workflow_id=wf,
                    attempt=attempt,
                    batch_id="pb-ledger-1",
                    sequence=attempt,
                    amount_cny=3000,
                    account_masked="************1234",
                    account_holder="张父",
                    status=status,
                    bank_reference=f"BR-{attempt}",
                    created_at=datetime(2027, 9, 18, tzinfo=UTC),
                    settled_at=datetime(2027, 9, 20, 2, tzinfo=UTC),
                )
            )
        s.commit()
    grants = grant_list(
        tmp_path,
        [
            (STUDENT, "学生501", "安徽大学", "一等", "4000"),
            (make_national_id(RECORDED_ONLY), "学生503", "合肥工业大学", "二等", "3000"),
            (make_national_id(NOT_REGISTERED), "学生505", "安徽大学", "三等", "2000"),
        ],
    )
    recorded = import_recorded_aid(
        engine, grants, keys.hash_id, programme="national-grant", year=YEAR
    )
    assert (recorded.imported, recorded.not_registered) == (3, 1), recorded.problems


def test_a_student_paid_signed_for_and_recorded_has_all_three(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    seed_year(engine, keys, tmp_path)
    ledger = build_ledger(engine, YEAR, COUNTY, village_code=VILLAGE)
    by_student = {s.national_id_masked[-4:]: s for s in ledger.students}
    assert set(by_student) == {STUDENT[-4:], make_national_id(RECORDED_ONLY)[-4:]}
    student = by_student[STUDENT[-4:]]
    assert student.name == "学生501" and student.village_code == VILLAGE
    assert sorted((x.programme, x.kind, x.amount_cny) for x in student.lines) == [
        ("county-subsidy", AidKind.PAID, 3000),  # the returned attempt is not aid
        ("national-grant", AidKind.RECORDED, 4000),
        ("new-student-aid", AidKind.RECEIVED, 1000),
    ]
    sources = {x.programme: x.source for x in student.lines}
    assert "county-subsidy/2027/341225/ledger501" in sources["county-subsidy"]
    assert "BR-2" in sources["county-subsidy"]  # the bank's reference of the paid attempt
    assert (
        "安徽大学 一等" in sources["national-grant"]
        and "ngrant.csv row 2" in sources["national-grant"]
    )
    assert student.total_cny == 8000 and ledger.total_cny == 11000
    # The season report carries the year's totals, every programme.
    from activities.report import build_report, to_markdown

    report = build_report(engine, "county-subsidy", YEAR, COUNTY)
    assert report.ledger_totals == {
        "county-subsidy": {"students": 2, "cny": 6000},
        "national-grant": {"students": 2, "cny": 7000},
        "new-student-aid": {"students": 1, "cny": 1000},
    }
    assert "| national-grant | 2 | 7,000 |" in to_markdown(report)
    # The county sees the other village's student too; the year after, nothing.
    assert len(build_ledger(engine, YEAR, COUNTY).students) == 3
    assert build_ledger(engine, YEAR + 1, COUNTY).students == []

    path = write_ledger(ledger, tmp_path / "out")
    wb = openpyxl.load_workbook(path)
    summary, lines = wb["汇总 Summary"], wb["明细 Lines"]
    cells = [str(c) for ws in (summary, lines) for r in ws.iter_rows(values_only=True) for c in r]
    assert not any(STUDENT in c or make_national_id(RECORDED_ONLY) in c for c in cells)  # R9
    header = [c.value for c in summary[2]]
    assert header[-1] == "合计 total (CNY)"
    row = next(r for r in summary.iter_rows(min_row=3, values_only=True) if r[1] == "学生501")
    assert row[-1] == 8000
    assert lines.max_row == 2 + 4  # title, header, four lines


def test_a_list_with_a_bad_row_imports_nothing_and_names_it(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    bad_id = STUDENT[:-1] + ("0" if STUDENT[-1] != "0" else "1")
    path = grant_list(
        tmp_path,
        [
            (STUDENT, "学生501", "安徽大学", "一等", "4000"),
            (bad_id, "", "安徽大学", "一等", "-5"),
            (STUDENT, "学生501", "安徽大学", "二等", "3000"),
        ],
    )
    report = import_recorded_aid(engine, path, keys.hash_id, programme="national-grant", year=YEAR)
    assert report.imported == 0 and report.bad_rows == [3, 4]
    said = "\n".join(str(p) for p in report.problems)
    assert "row 3, national_id" in said and "row 3, name" in said and "row 3, amount_cny" in said
    assert "row 4, national_id: also on row 2 for 安徽大学" in said
    assert bad_id not in said and STUDENT not in said  # masked (R9)
    with Session(engine) as s:
        assert s.exec(select(RecordedAid)).all() == []
    unknown = import_recorded_aid(engine, path, keys.hash_id, programme="rain-or-shine", year=YEAR)
    assert "not one of national-grant" in str(unknown.problems[0])
    # The good rows with --skip-bad, the bad ones written aside.
    report = import_recorded_aid(
        engine, path, keys.hash_id, programme="national-grant", year=YEAR, skip_bad=True
    )
    assert report.imported == 1 and report.rejects_file is not None
    assert report.rejects_file.read_text(encoding="utf-8").count("\n") == 3


def test_a_list_imports_from_xlsx_and_again_replaces_its_rows(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    path = tmp_path / "ngrant.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["national_id", "name", "university", "grade", "amount_cny"])
    ws.append([STUDENT, "学生501", "安徽大学", "一等", 4000])  # a number, as Excel keeps it
    ws.append([])  # a blank row in the middle is no row
    ws.append([make_national_id(RECORDED_ONLY), "", "合肥工业大学", None, 3000])
    ws["B4"].value, ws["B4"].data_type = '=HYPERLINK("x")', "s"  # text that looks a formula
    wb.save(path)
    for _ in range(2):  # imported twice: the same two rows
        report = import_recorded_aid(
            engine, path, keys.hash_id, programme="national-grant", year=YEAR
        )
        assert report.imported == 2, report.problems
    with Session(engine) as s:
        rows = s.exec(select(RecordedAid)).all()
    assert sorted(r.amount_cny for r in rows) == [3000, 4000]
    # 安徽大学's corrected list: 501 taken off, 505 put on; 合肥工业大学's list stays.
    corrected = grant_list(
        tmp_path, [(make_national_id(NOT_REGISTERED), "学生505", "安徽大学", "三等", "2000")]
    )
    assert (
        import_recorded_aid(
            engine, corrected, keys.hash_id, programme="national-grant", year=YEAR
        ).imported
        == 1
    )
    with Session(engine) as s:
        rows = s.exec(select(RecordedAid)).all()
    assert sorted((r.university, r.amount_cny) for r in rows) == [
        ("合肥工业大学", 3000),
        ("安徽大学", 2000),
    ]
    import_recorded_aid(engine, path, keys.hash_id, programme="national-grant", year=YEAR)
    assert all(len(r.national_id_masked) == 18 and "*" in r.national_id_masked for r in rows)
    # A name that is a formula stays text in the ledger's workbook.
    import_registry(engine, registry_csv(tmp_path), keys.hash_id)
    out = write_ledger(build_ledger(engine, YEAR, COUNTY), tmp_path / "out")
    names = [r[1] for r in openpyxl.load_workbook(out)["汇总 Summary"].iter_rows(values_only=True)]
    assert '\'=HYPERLINK("x")' in names


def enrolment_csv(tmp_path: Path, rows: list[tuple[str, ...]], name: str = "enrol.csv") -> Path:
    path = tmp_path / name
    path.write_text(
        "national_id,name,school,education_level,year_of_study\n"
        + "".join(",".join(r) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def test_coverage_names_the_eligible_student_who_did_not_apply(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    """应补尽补 (issue 18): per village, the registered-poor students of the programme's
    level by the newest enrolment snapshot, who applied, who was paid, and who has not
    applied (masked); the village committee is told of them once before the window closes."""
    from datetime import date

    from activities.report import CoverageReminderRequest, ReportActivities
    from models.programmes import COUNTY_SUBSIDY, NEW_STUDENT_AID
    from store.coverage import coverage, import_enrolment

    assert import_registry(engine, registry_csv(tmp_path), keys.hash_id).imported == 3
    older = enrolment_csv(
        tmp_path,
        [(make_national_id(601), "家长601", "安徽大学", "undergraduate_full_time", "1")],
        "old.csv",
    )
    assert import_enrolment(engine, older, keys.hash_id, as_of=date(2026, 7, 31)).imported == 1
    newest = enrolment_csv(
        tmp_path,
        [
            (STUDENT, "学生501", "安徽大学", "undergraduate_full_time", "2"),
            (
                make_national_id(RECORDED_ONLY),
                "学生503",
                "合肥工业大学",
                "undergraduate_full_time",
                "1",
            ),
            (make_national_id(ELSEWHERE), "学生504", "阜阳职业技术学院", "higher_vocational", "1"),
        ],
    )
    assert import_enrolment(engine, newest, keys.hash_id, as_of=date(2027, 7, 31)).imported == 3
    with Session(engine) as s:
        application(s, keys, PAID_TO, "county-subsidy", VILLAGE, "paid", 3000)
        s.commit()

    found = coverage(engine, COUNTY_SUBSIDY, YEAR, COUNTY)
    assert found.as_of == date(2027, 7, 31)  # the newest snapshot: the parent of 2026 is not
    (village,) = found.villages  # 504 studies at a level the subsidy is not for
    assert (village.village_code, village.eligible, village.applied, village.paid) == (
        VILLAGE,
        2,
        1,
        1,
    )
    masked = make_national_id(RECORDED_ONLY)
    assert village.not_applied == [(masked[:6] + "********" + masked[-4:], "学生503")]
    # New-student aid takes freshmen only: 503 (year 1), not 501 (year 2).
    freshmen = coverage(engine, NEW_STUDENT_AID, YEAR, COUNTY, village_code=VILLAGE)
    assert [(v.eligible, v.applied) for v in freshmen.villages] == [(1, 0)]

    reminders = ReportActivities(engine, tmp_path / "files")
    request = CoverageReminderRequest(programme=COUNTY_SUBSIDY, season=YEAR, county_code=COUNTY)
    assert reminders.send_coverage_reminders(request) == 1
    assert reminders.send_coverage_reminders(request) == 0  # once
    with Session(engine) as s:
        (told,) = s.exec(select(OutboxMessage)).all()
    assert told.recipient == f"village_committee@{VILLAGE}" and told.subject == "应补尽补提醒"
    assert "学生503" in told.body and masked[-4:] in told.body and masked not in told.body
    # The season report counts them.
    from activities.report import build_report, to_markdown

    report = build_report(engine, "county-subsidy", YEAR, COUNTY)
    assert report.coverage_as_of == "2027-07-31"
    assert [
        (c["eligible"], c["applied"], c["paid"], c["not_applied"]) for c in report.coverage
    ] == [(2, 1, 1, 1)]
    assert "| total | 2 | 1 | 1 | 1 |" in to_markdown(report)


def test_an_enrolment_snapshot_with_a_bad_row_imports_nothing(
    engine: Engine, keys: Keys, tmp_path: Path
) -> None:
    from datetime import date

    from store.coverage import import_enrolment

    path = enrolment_csv(
        tmp_path,
        [
            (STUDENT, "学生501", "安徽大学", "undergraduate_full_time", "2"),
            (STUDENT, "学生501", "安徽大学", "doctorate", "0"),
        ],
    )
    report = import_enrolment(engine, path, keys.hash_id, as_of=date(2027, 7, 31))
    said = "\n".join(str(p) for p in report.problems)
    assert report.imported == 0 and report.bad_rows == [3]
    assert "row 3, national_id: also on row 2" in said
    assert "row 3, education_level: 'doctorate' is not one of" in said
    assert "row 3, year_of_study: '0' is not a year of 1 to 8" in said


def test_a_loan_the_bank_paid_is_a_lent_line(engine: Engine, keys: Keys, tmp_path: Path) -> None:
    """The student loan: lent once the bank reported it paid, not while it waits."""
    seed_year(engine, keys, tmp_path)
    with Session(engine) as s:
        wf = application(s, keys, PAID_TO, "student-loan", VILLAGE, "lent", 6000)
        application(s, keys, RECORDED_ONLY, "student-loan", VILLAGE, "awaiting_disbursement", 8000)
        s.commit()
    ledger = build_ledger(engine, YEAR, COUNTY, village_code=VILLAGE)
    lines = [x for st in ledger.students for x in st.lines if x.programme == "student-loan"]
    assert [(x.kind, x.amount_cny) for x in lines] == [(AidKind.LENT, 6000)]
    assert lines[0].source == f"{wf}; paid by the bank"
    assert lines[0].programme_name_zh == "生源地信用助学贷款"
