"""R1/R2/R6: working days, notice periods and the season plan, against hand-computed cases."""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.calendar import (
    SHANGHAI,
    CalendarDataMissing,
    CompressedCalendar,
    NoticeCounting,
    OutsideTable,
    ScheduleFileError,
    TabulatedCalendar,
    WorkingCalendar,
    YearSchedule,
    next_working_day_at,
    notice_period,
    tabulate,
)
from models.planner import plan_season, project_steps
from models.programmes import COUNTY_SUBSIDY
from models.schedule import SeasonSchedule, compact_days, expand_days
from store.calendars import build_calendar, load_schedules


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def test_weekends_are_not_working_days(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 9, 4))  # Friday
    assert not calendar.is_working_day(date(2026, 9, 5))  # Saturday
    assert not calendar.is_working_day(date(2026, 9, 6))  # Sunday
    assert calendar.is_working_day(date(2026, 9, 7))  # Monday


def test_2026_holidays_and_adjusted_working_days(calendar: WorkingCalendar) -> None:
    for day in (25, 26, 27):  # Mid-Autumn
        assert not calendar.is_working_day(date(2026, 9, day))
    for day in range(1, 8):  # National Day
        assert not calendar.is_working_day(date(2026, 10, day))
    assert calendar.is_working_day(date(2026, 9, 20))  # Sunday made a working day
    assert calendar.is_working_day(date(2026, 10, 10))  # Saturday made a working day
    assert not calendar.is_provisional(date(2026, 9, 20))


def test_notice_posted_at_midnight_counts_that_day(calendar: WorkingCalendar) -> None:
    p = notice_period(calendar, at(2026, 9, 1), 5)
    assert p.counted_days == tuple(date(2026, 9, d) for d in (1, 2, 3, 4, 7))
    assert p.ends_at == at(2026, 9, 8)


def test_notice_posted_during_the_day_starts_counting_the_next(calendar: WorkingCalendar) -> None:
    p = notice_period(calendar, at(2026, 9, 1, 9, 30), 5)
    assert p.counted_days == tuple(date(2026, 9, d) for d in (2, 3, 4, 7, 8))
    assert p.ends_at == at(2026, 9, 9)


def test_notice_one_second_after_midnight_loses_the_day(calendar: WorkingCalendar) -> None:
    p = notice_period(calendar, at(2026, 9, 1) + timedelta(seconds=1), 5)
    assert p.counted_days[0] == date(2026, 9, 2)


def test_notice_spanning_mid_autumn_and_national_day(calendar: WorkingCalendar) -> None:
    # Posted Wed 23 Sep 2026 10:00: 24 Sep (Thu) counts; 25-27 Mid-Autumn; 28, 29, 30 Sep;
    # 1-7 Oct National Day; Thu 8 Oct is the fifth.
    p = notice_period(calendar, at(2026, 9, 23, 10), 5)
    assert p.counted_days == (
        date(2026, 9, 24),
        date(2026, 9, 28),
        date(2026, 9, 29),
        date(2026, 9, 30),
        date(2026, 10, 8),
    )
    assert p.ends_at == at(2026, 10, 9)


def test_notice_counts_the_adjusted_sunday(calendar: WorkingCalendar) -> None:
    # Posted Fri 18 Sep 2026 12:00: Sun 20 Sep is a working day (调休).
    p = notice_period(calendar, at(2026, 9, 18, 12), 3)
    assert p.counted_days == (date(2026, 9, 20), date(2026, 9, 21), date(2026, 9, 22))


def test_calendar_day_counting(calendar: WorkingCalendar) -> None:
    p = notice_period(calendar, at(2026, 9, 4, 15), 5, NoticeCounting.CALENDAR_DAYS)
    assert p.counted_days == tuple(date(2026, 9, d) for d in range(5, 10))
    assert p.ends_at == at(2026, 9, 10)


def test_instants_must_be_timezone_aware(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        notice_period(calendar, datetime(2026, 9, 1), 5)


def test_utc_instant_is_read_in_shanghai_time(calendar: WorkingCalendar) -> None:
    # 16:00 UTC on 31 Aug is 00:00 on 1 Sep in Shanghai.
    p = notice_period(calendar, datetime.fromisoformat("2026-08-31T16:00:00+00:00"), 5)
    assert p.counted_days[0] == date(2026, 9, 1)


def test_next_working_day_posting(calendar: WorkingCalendar) -> None:
    # Decided Friday 25 Sep 2026 (a holiday) -> next working day is Mon 28 Sep.
    assert next_working_day_at(calendar, at(2026, 9, 24, 17), time(8)) == at(2026, 9, 28, 8)
    assert next_working_day_at(calendar, at(2026, 9, 30, 9), time(8)) == at(2026, 10, 8, 8)


def test_year_without_data_fails_loudly(calendar: WorkingCalendar) -> None:
    with pytest.raises(CalendarDataMissing) as e:
        calendar.is_working_day(date(2028, 3, 1))
    assert "2028" in str(e.value) and "cn-2028.txt" in str(e.value)
    with pytest.raises(CalendarDataMissing):
        notice_period(calendar, at(2027, 12, 28, 9), 5)  # runs into 2028


def test_provisional_2027(calendar: WorkingCalendar) -> None:
    assert calendar.is_provisional(date(2027, 9, 1))
    assert not calendar.is_working_day(date(2027, 9, 15))  # Mid-Autumn 2027 (Wednesday)
    assert not calendar.is_working_day(date(2027, 2, 5))  # Spring Festival eve
    for d in (1, 2, 3):
        assert not calendar.is_working_day(date(2027, 10, d))
    assert calendar.is_working_day(date(2027, 10, 4))  # no adjusted days known: a plain Monday
    p = notice_period(calendar, at(2027, 9, 13, 10), 5)
    assert p.provisional
    assert p.counted_days == (
        date(2027, 9, 14),
        date(2027, 9, 16),
        date(2027, 9, 17),
        date(2027, 9, 20),
        date(2027, 9, 21),
    )


def test_shipped_2027_file_has_the_13_statutory_days() -> None:
    [s2027] = [s for s in load_schedules() if s.year == 2027]
    assert s2027.provisional and len(s2027.holidays) == 13 and not s2027.adjusted_working_days


def test_operator_file_overrides_and_adds_a_year(tmp_path: Path) -> None:
    (tmp_path / "cn-2028.txt").write_text(
        "year: 2028\nstatus: official\nsource: 国办发明电〔2027〕X号\n"
        "holiday 2028-01-03 元旦\nworkday 2028-01-08 调休\n",
        encoding="utf-8",
    )
    cal = build_calendar("state-council", tmp_path)
    assert not cal.is_working_day(date(2028, 1, 3))
    assert cal.is_working_day(date(2028, 1, 8))  # a Saturday
    assert not cal.is_provisional(date(2028, 1, 3))


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("status: official\nsource: x\n", 1, "no 'year:'"),
        ("year: 2028\nstatus: maybe\nsource: x\n", 2, "status must be"),
        ("year: 2028\nstatus: official\nsource: x\nholiday 2028-02-30 x\n", 4, "not a real date"),
        ("year: 2028\nstatus: official\nsource: x\nholiday 28-02-03 x\n", 4, "not a YYYY-MM-DD"),
        ("year: 2028\nstatus: official\nsource: x\nvacation 2028-02-03 x\n", 4, "expected"),
        (
            "year: 2028\nstatus: official\nsource: x\nworkday 2028-02-02 x\n",
            4,
            "not a Saturday or Sunday",
        ),
        (
            "year: 2028\nstatus: official\nsource: x\nholiday 2028-02-03 a\nholiday 2028-02-03 b\n",
            5,
            "listed twice",
        ),
        ("year: 2028\nstatus: official\nsource: x\n\nholiday 2029-02-03 a\n", 5, "not in 2028"),
        (
            "year: 2028\nstatus: official\nsource: x\nholiday 2028-02-03\n",
            4,
            "needs a date and a name",
        ),
    ],
)
def test_malformed_schedule_is_refused_with_line_and_problem(
    text: str, line: int, problem: str
) -> None:
    with pytest.raises(ScheduleFileError) as e:
        YearSchedule.parse(text, "cn-2028.txt")
    assert e.value.line == line
    assert problem in e.value.problem
    assert str(e.value).startswith(f"cn-2028.txt, line {line}:")


def test_malformed_operator_file_stops_the_calendar(tmp_path: Path) -> None:
    (tmp_path / "cn-2028.txt").write_text(
        "year: 2028\nstatus: official\nsource: x\nholiday nope x\n"
    )
    with pytest.raises(ScheduleFileError, match="line 4"):
        build_calendar("state-council", tmp_path)


def test_plan_2026_township_notice_cannot_end_by_10_september(calendar: WorkingCalendar) -> None:
    plan = plan_season(COUNTY_SUBSIDY, 2026, calendar)
    by_stage = {s.stage: s for s in plan.steps}
    assert by_stage["village_notice"].earliest_start == at(2026, 9, 1)
    assert by_stage["village_notice"].earliest_end == at(2026, 9, 8)
    # Posted just after the township review opens at 00:00 on Tue 8 Sep: the 8th is not
    # a whole day up, so the days are 9, 10, 11, 14 and 15 September.
    assert by_stage["township_notice"].counted_days[0] == date(2026, 9, 9)
    assert by_stage["township_notice"].earliest_end == at(2026, 9, 16)
    assert not by_stage["township_notice"].meets_due
    assert by_stage["county_approval"].meets_due
    assert [s.stage for s in plan.at_risk] == ["township_notice"]
    assert not plan.provisional
    dates = {d.key: d.met for d in plan.fixed_dates}
    assert dates == {
        "reviews_done": False,
        "county_approval": True,
        "payout": True,
        "summary": None,
    }


def test_plan_2027_is_provisional(calendar: WorkingCalendar) -> None:
    assert plan_season(COUNTY_SUBSIDY, 2027, calendar).provisional


# --- properties -------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2027, 11, 30)).map(
    lambda d: d.replace(tzinfo=SHANGHAI)
)


@settings(max_examples=300, deadline=None)
@given(posted=instants, days=st.integers(min_value=1, max_value=15))
def test_notice_holds_exactly_n_whole_working_days(posted: datetime, days: int) -> None:
    cal = _CAL
    p = notice_period(cal, posted, days)
    assert len(p.counted_days) == days
    assert all(cal.is_working_day(d) for d in p.counted_days)
    assert all(cal.day_start(d) >= posted for d in p.counted_days)  # up for the whole day
    # Ends at local midnight right after the last counted day.
    end_local = p.ends_at.astimezone(SHANGHAI)
    assert end_local.time() == time(0) and end_local.date() == p.counted_days[-1] + timedelta(
        days=1
    )
    # No working day between posting and the end is left uncounted.
    day = p.counted_days[0]
    while day <= p.counted_days[-1]:
        assert cal.is_working_day(day) == (day in p.counted_days)
        day += timedelta(days=1)
    # The first counted day is the first whole working day after posting.
    first_whole = posted.date() if posted.time() == time(0) else posted.date() + timedelta(days=1)
    d = first_whole
    while not cal.is_working_day(d):
        d += timedelta(days=1)
    assert p.counted_days[0] == d


_CAL = build_calendar("state-council")


def test_compressed_calendar_keeps_the_shape_of_weeks(calendar: WorkingCalendar) -> None:
    epoch = datetime.fromisoformat("2026-11-29T12:00:00+00:00")
    fast = CompressedCalendar(calendar, epoch=epoch, base_day=date(2026, 9, 1), day_seconds=10)
    assert fast.day_start(date(2026, 9, 1)) == epoch
    assert fast.day_start(date(2026, 9, 8)) == epoch + timedelta(seconds=70)
    assert fast.day_of(epoch + timedelta(seconds=69.9)) == date(2026, 9, 7)
    assert fast.at(date(2026, 9, 2), time(12)) == epoch + timedelta(seconds=15)
    # R2 on the fast calendar: the same counted days as on the real one.
    p = notice_period(fast, epoch + timedelta(seconds=3.96), 5)  # 09:30 on 1 September
    assert p.counted_days == tuple(date(2026, 9, d) for d in (2, 3, 4, 7, 8))
    assert p.ends_at == epoch + timedelta(seconds=80)
    assert next_working_day_at(fast, epoch + timedelta(seconds=31), time(8)) == fast.at(
        date(2026, 9, 7), time(8)
    )
    plan = plan_season(COUNTY_SUBSIDY, 2026, fast)
    real = plan_season(COUNTY_SUBSIDY, 2026, calendar)
    assert [s.meets_due for s in plan.steps] == [s.meets_due for s in real.steps]


def _aidflow(
    *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDFLOW_")} | (env_extra or {})
    return subprocess.run(
        [str(Path(sys.executable).parent / "aidflow"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_plan_command_table_and_json() -> None:
    r = _aidflow("plan", "--season", "2026")
    assert r.returncode == 0, r.stderr
    assert "township public notice" in r.stdout and "NO, 5.0 days late" in r.stdout
    assert "CANNOT be met" in r.stdout and "PROVISIONAL" not in r.stdout
    j = json.loads(_aidflow("plan", "--season", "2026", "--json").stdout)
    notice = next(s for s in j["steps"] if s["stage"] == "township_notice")
    assert notice["earliest_end"] == "2026-09-16T00:00:00+08:00" and not notice["meets_due"]
    assert j["at_risk"] == ["township_notice"]
    assert "PROVISIONAL" in _aidflow("plan", "--season", "2027").stdout


def test_plan_command_one_notice_and_errors(tmp_path: Path) -> None:
    r = _aidflow("plan", "--notice-days", "5", "--posted", "2026-09-01T09:30+08:00", "--json")
    j = json.loads(r.stdout)
    assert j["counted_days"] == [
        "2026-09-02",
        "2026-09-03",
        "2026-09-04",
        "2026-09-07",
        "2026-09-08",
    ]
    assert j["ends_at"] == "2026-09-09T00:00:00+08:00"
    r = _aidflow("plan", "--season", "2028")
    assert (
        r.returncode == 1
        and "no working-day data for 2028" in r.stderr
        and "Traceback" not in r.stderr
    )
    (tmp_path / "cn-2028.txt").write_text(
        "year: 2028\nstatus: official\nsource: x\nholiday 2028-13-01 x\n"
    )
    r = _aidflow("plan", "--season", "2028", env_extra={"AIDFLOW_CALENDAR_DIR": str(tmp_path)})
    assert r.returncode == 1 and "line 4" in r.stderr and "Traceback" not in r.stderr


# --- The calendar as a table (what the application workflow computes from) -------------

_FAST = CompressedCalendar(
    _CAL,
    epoch=datetime.fromisoformat("2026-11-29T12:00:00+00:00"),
    base_day=date(2026, 8, 1),
    day_seconds=3,
)


def _table_through_history(cal: WorkingCalendar, season: int) -> TabulatedCalendar:
    """The table as the workflow gets it: inside its schedule, through JSON."""
    table = tabulate(cal, date(season, 1, 1), date(season + 1, 12, 31), provisional_is_final=True)
    assert table is not None
    wire = SeasonSchedule(
        calendar=cal.name,
        window_opens_at=cal.day_start(date(season, 8, 1)),
        window_closes_at=cal.day_start(date(season, 8, 31)),
        fixed_dates=[],
        provisional_years=[],
        working_days=table,
    ).model_dump_json()
    schedule = SeasonSchedule.model_validate_json(wire)
    assert schedule.working_days is not None
    return TabulatedCalendar(schedule.working_days)


def test_a_table_travels_as_its_exceptions_and_reads_back_exactly() -> None:
    # Three years of letters as their exceptions to Monday-Friday: about a sixth of the
    # bytes in an application's start (issue 20), and the same letters read back.
    table = tabulate(_CAL, date(2025, 1, 1), date(2027, 12, 31))
    assert table is not None and len(table.days) == 1095
    travelled = compact_days(table.days, table.first_day)
    assert travelled.startswith("~1095;730;") and len(travelled) < len(table.days) / 5
    assert expand_days(travelled, table.first_day) == table.days
    # From a Sunday, and a span with no exception at all.
    sunday = tabulate(_CAL, date(2026, 3, 1), date(2026, 3, 31))
    assert sunday is not None
    assert expand_days(compact_days(sunday.days, sunday.first_day), sunday.first_day) == sunday.days
    assert compact_days("WWWWWRRW", date(2026, 3, 2)) == "~8;;"
    # Provisional days that are not all at the end travel letter by letter.
    assert compact_days("WwWWWRR", date(2026, 3, 2)) == "WwWWWRR"
    assert expand_days("WwWWWRR", date(2026, 3, 2)) == "WwWWWRR"
    # In the schedule, through JSON: the compact form on the wire, the letters in memory.
    schedule = SeasonSchedule(
        calendar=_CAL.name,
        window_opens_at=_CAL.day_start(date(2026, 8, 1)),
        window_closes_at=_CAL.day_start(date(2026, 8, 31)),
        fixed_dates=[],
        provisional_years=[2027],
        working_days=table,
    )
    wire = schedule.model_dump_json()
    assert travelled in wire and table.days not in wire
    assert SeasonSchedule.model_validate_json(wire) == schedule
    # A malformed one is refused with the input, never read as some other table.
    for bad in ("~5;;0", "~3;;5", "~3;4;", "~x;;", "~5;;1.-1", "~99999999;;"):
        with pytest.raises(ValueError, match="days"):
            expand_days(bad, date(2026, 3, 2))
        with pytest.raises(ValidationError, match="days"):
            SeasonSchedule.model_validate_json(wire.replace(travelled, bad))
    with pytest.raises(ValidationError, match="first_day"):
        SeasonSchedule.model_validate_json(wire.replace('"2025-01-01"', '"New Year"'))


_TABLES = {
    "state-council": (_CAL, _table_through_history(_CAL, 2026)),
    "compressed": (_FAST, _table_through_history(_FAST, 2026)),
}
in_2026 = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 11, 30))


@settings(max_examples=300, deadline=None)
@given(
    which=st.sampled_from(sorted(_TABLES)),
    local=in_2026,
    days=st.integers(min_value=1, max_value=15),
    counting=st.sampled_from(list(NoticeCounting)),
    clock=st.sampled_from([time(0), time(8), time(9, 30), time(17, 59)]),
)
def test_the_table_answers_what_its_calendar_answers(
    which: str, local: datetime, days: int, counting: NoticeCounting, clock: time
) -> None:
    cal, table = _TABLES[which]
    # An instant anywhere in the span, and the same instant at a day boundary.
    instant = cal.at(local.date(), local.time().replace(microsecond=0))
    boundary = cal.day_start(local.date())
    for posted in (instant, boundary, boundary - timedelta(microseconds=1)):
        assert table.day_of(posted) == cal.day_of(posted)
        assert notice_period(table, posted, days, counting) == notice_period(
            cal, posted, days, counting
        )
        assert next_working_day_at(table, posted, clock) == next_working_day_at(cal, posted, clock)
    assert table.is_provisional(local.date()) == cal.is_provisional(local.date())


@pytest.mark.parametrize("which", sorted(_TABLES))
def test_projections_from_the_table_equal_the_calendars(which: str) -> None:
    cal, table = _TABLES[which]
    for step in range(len(COUNTY_SUBSIDY.steps)):
        for day in (date(2026, 8, 3), date(2026, 9, 9), date(2026, 11, 20)):
            at_ = cal.at(day, time(10))
            assert project_steps(
                COUNTY_SUBSIDY, 2026, table, from_index=step, at=at_
            ) == project_steps(COUNTY_SUBSIDY, 2026, cal, from_index=step, at=at_)


def test_the_table_ends_where_the_data_ends() -> None:
    # Shipped data ends with 2027: the table of season 2027 holds 2027 only, and a day
    # beyond it is not guessed: the workflow asks the calendar, which refuses.
    table = tabulate(_CAL, date(2027, 1, 1), date(2028, 12, 31))
    assert table is not None and len(table.days) == 365
    assert table.days[date(2027, 2, 5).timetuple().tm_yday - 1] == "r"  # Spring Festival
    tabulated = TabulatedCalendar(table)
    with pytest.raises(OutsideTable):
        tabulated.is_working_day(date(2028, 1, 3))
    # 2027 is provisional: the table does not answer for it, the calendar (which may
    # have the official arrangement by then) does; unless provisional days are final.
    with pytest.raises(OutsideTable, match="provisional"):
        notice_period(tabulated, at(2027, 9, 9, 8), 5)
    final = tabulate(_CAL, date(2027, 1, 1), date(2028, 12, 31), provisional_is_final=True)
    assert final is not None
    assert notice_period(TabulatedCalendar(final), at(2027, 9, 9, 8), 5) == notice_period(
        _CAL, at(2027, 9, 9, 8), 5
    )
    with pytest.raises(CalendarDataMissing):
        notice_period(_CAL, at(2027, 12, 28), 5)
    assert tabulate(_CAL, date(2030, 1, 1), date(2030, 12, 31)) is None


def test_a_forecast_reads_provisional_days_from_the_table() -> None:
    # The application's projections (R6's "at risk") are forecasts: a provisional day is
    # read from the table as the calendar had it, with no local activity a step; a day
    # beyond the table is still not guessed.
    table = tabulate(_CAL, date(2027, 1, 1), date(2028, 12, 31))
    assert table is not None and not table.provisional_is_final
    forecast = TabulatedCalendar(table, forecast=True)
    assert not forecast.is_working_day(date(2027, 2, 5))  # Spring Festival, provisional
    assert forecast.is_provisional(date(2027, 2, 5))
    with pytest.raises(OutsideTable):
        forecast.is_working_day(date(2028, 1, 3))
    for step, at_ in ((0, at(2027, 8, 20, 10)), (1, at(2027, 9, 1, 9)), (3, at(2027, 9, 9, 8))):
        assert project_steps(
            COUNTY_SUBSIDY, 2027, forecast, from_index=step, at=at_
        ) == project_steps(COUNTY_SUBSIDY, 2027, _CAL, from_index=step, at=at_)
    with pytest.raises(OutsideTable, match="provisional"):  # not for a binding period
        notice_period(TabulatedCalendar(table), at(2027, 9, 9, 8), 5)


def test_a_calendar_whose_days_are_not_equal_is_not_tabulated() -> None:
    class Lisbon(WorkingCalendar):  # daylight saving: a 23-hour and a 25-hour day a year
        name = "lisbon"

        @property
        def tz(self) -> ZoneInfo:
            return ZoneInfo("Europe/Lisbon")

        def is_working_day(self, day: date) -> bool:
            return day.weekday() < 5

        def is_provisional(self, day: date) -> bool:
            return False

    assert tabulate(Lisbon(), date(2026, 1, 1), date(2026, 2, 1)) is not None
    assert tabulate(Lisbon(), date(2026, 1, 1), date(2026, 12, 31)) is None
