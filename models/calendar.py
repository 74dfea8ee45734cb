"""Working days (R1), notice periods (R2) and fixed-date deadlines (R6).

Everything here is pure: a calendar is built from data given to it, and the
functions only compute. A workflow never reads a schedule file: its input (an
application's, computed by the gateway) or an activity (a season's) gives it its
calendar's days as a :class:`DayTable`, which lands in the workflow history, so a
later change of a schedule file never changes what a replay sees. The
functions below then run inside the application workflow on a
:class:`TabulatedCalendar`: they are workflow code, and a change to what they
compute must go through ``workflow.patched`` like any other.

Nothing outside a :class:`WorkingCalendar` may assume that a day lasts 24 hours:
the demo's compressed calendar maps each calendar day to a few seconds.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class CalendarDataMissing(LookupError):
    """A computation needed a year for which no working-day data exists."""

    def __init__(self, year: int, hint: str) -> None:
        self.year = year
        super().__init__(
            f"no working-day data for {year}: add the State Council's {year} holiday "
            f"schedule as {hint} (see README, 'Holiday schedules'); aidflow never guesses"
        )


class ScheduleFileError(ValueError):
    """A schedule data file is malformed."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source, self.line, self.problem = source, line, problem
        super().__init__(f"{source}, line {line}: {problem}")


class NoticeCounting(StrEnum):
    WORKING_DAYS = "working_days"
    CALENDAR_DAYS = "calendar_days"


class WorkingCalendar(ABC):
    """Which days are working days, and how calendar days map onto instants."""

    name: str

    @abstractmethod
    def is_working_day(self, day: date) -> bool:
        """Raises :class:`CalendarDataMissing` for a year without data."""

    @abstractmethod
    def is_provisional(self, day: date) -> bool:
        """True when ``day``'s status comes from data marked provisional."""

    @property
    def tz(self) -> tzinfo:
        return SHANGHAI

    def clock_of(self, instant: datetime) -> datetime:
        """The calendar's local time of a real instant (for display)."""
        return instant.astimezone(self.tz)

    def day_start(self, day: date) -> datetime:
        """The instant at which local calendar day ``day`` begins (00:00)."""
        return datetime.combine(day, time(0), self.tz)

    def day_of(self, instant: datetime) -> date:
        """The local calendar day containing ``instant``."""
        _require_aware(instant)
        return instant.astimezone(self.tz).date()

    def at(self, day: date, clock: time) -> datetime:
        """The instant of local clock time ``clock`` on ``day``."""
        return datetime.combine(day, clock, self.tz)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant {instant!r} has no time zone; aidflow uses aware instants only")


# ---------------------------------------------------------------------------
# Schedule data files (one per year) for years chinesecalendar does not know.

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class YearSchedule:
    """One year's State Council schedule: days off and adjusted working days."""

    year: int
    provisional: bool
    source: str
    holidays: Mapping[date, str]
    adjusted_working_days: Mapping[date, str] = field(default_factory=dict)
    origin: str = ""

    def is_working_day(self, day: date) -> bool:
        if day in self.adjusted_working_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    @classmethod
    def parse(cls, text: str, origin: str) -> YearSchedule:
        """Parse a schedule file; a malformed one is refused with line and problem.

        Format (UTF-8, ``#`` starts a comment)::

            year: 2027
            status: official | provisional
            source: <the State Council notice this comes from>
            holiday 2027-01-01 元旦
            workday 2027-02-14 春节调休
        """
        header: dict[str, tuple[int, str]] = {}
        holidays: dict[date, str] = {}
        workdays: dict[date, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("year", "status", "source"):
                k = key.strip()
                if k in header:
                    raise ScheduleFileError(origin, number, f"'{k}' is given twice")
                header[k] = (number, value.strip())
                continue
            parts = line.split(None, 2)
            if parts[0] not in ("holiday", "workday"):
                raise ScheduleFileError(
                    origin,
                    number,
                    f"expected 'year:', 'status:', 'source:', 'holiday DATE NAME' or "
                    f"'workday DATE NAME', got {parts[0]!r}",
                )
            if len(parts) < 3:
                raise ScheduleFileError(origin, number, f"'{parts[0]}' needs a date and a name")
            kind, day_text, name = parts
            if not _DATE.match(day_text):
                raise ScheduleFileError(origin, number, f"{day_text!r} is not a YYYY-MM-DD date")
            try:
                day = date.fromisoformat(day_text)
            except ValueError:
                raise ScheduleFileError(origin, number, f"{day_text} is not a real date") from None
            if day in holidays or day in workdays:
                raise ScheduleFileError(origin, number, f"{day} is listed twice")
            if kind == "holiday":
                holidays[day] = name
            else:
                if day.weekday() < 5:
                    raise ScheduleFileError(
                        origin, number, f"adjusted working day {day} is not a Saturday or Sunday"
                    )
                workdays[day] = name
        for required in ("year", "status", "source"):
            if required not in header:
                raise ScheduleFileError(origin, 1, f"the file has no '{required}:' line")
        year_line, year_text = header["year"]
        if not year_text.isdigit():
            raise ScheduleFileError(origin, year_line, f"year {year_text!r} is not a number")
        year = int(year_text)
        status_line, status = header["status"]
        if status not in ("official", "provisional"):
            raise ScheduleFileError(
                origin, status_line, f"status must be 'official' or 'provisional', not {status!r}"
            )
        for number, raw in enumerate(text.splitlines(), start=1):
            for token in raw.split("#", 1)[0].split():
                if _DATE.match(token) and int(token[:4]) != year:
                    raise ScheduleFileError(origin, number, f"{token} is not in {year}")
        return cls(
            year=year,
            provisional=status == "provisional",
            source=header["source"][1],
            holidays=holidays,
            adjusted_working_days=workdays,
            origin=origin,
        )


class StateCouncilCalendar(WorkingCalendar):
    """China's working days: the State Council's yearly schedules.

    Years come from the shipped/operator schedule files first (an operator may
    correct a year), then from the ``chinesecalendar`` package.
    """

    name = "state-council"

    def __init__(
        self,
        schedules: Iterable[YearSchedule] = (),
        *,
        package_lookup: Callable[[date], bool] | None = None,
        package_years: range | None = None,
        missing_hint: Callable[[int], str] = lambda y: f"a schedule file cn-{y}.txt",
    ) -> None:
        self._years = {s.year: s for s in schedules}
        self._package_lookup = package_lookup
        self._package_years = package_years or range(0)
        self._missing_hint = missing_hint

    def schedule_for(self, year: int) -> YearSchedule | None:
        return self._years.get(year)

    def covers(self, year: int) -> bool:
        return year in self._years or (
            self._package_lookup is not None and year in self._package_years
        )

    def is_working_day(self, day: date) -> bool:
        schedule = self._years.get(day.year)
        if schedule is not None:
            return schedule.is_working_day(day)
        if self._package_lookup is not None and day.year in self._package_years:
            return self._package_lookup(day)
        raise CalendarDataMissing(day.year, self._missing_hint(day.year))

    def is_provisional(self, day: date) -> bool:
        schedule = self._years.get(day.year)
        return schedule is not None and schedule.provisional


class CompressedCalendar(WorkingCalendar):
    """A real calendar, played fast: calendar day ``base_day`` begins at ``epoch`` and
    every calendar day lasts ``day_seconds``. Which days are working days comes from
    ``base`` (weekends and holidays keep their shape). For demos; chosen by configuration.
    """

    name = "compressed"

    def __init__(
        self, base: WorkingCalendar, *, epoch: datetime, base_day: date, day_seconds: float
    ) -> None:
        _require_aware(epoch)
        if day_seconds <= 0:
            raise ValueError("a compressed day lasts a positive number of seconds")
        self._base = base
        self.epoch = epoch
        self.base_day = base_day
        self.day_seconds = day_seconds

    def is_working_day(self, day: date) -> bool:
        return self._base.is_working_day(day)

    def is_provisional(self, day: date) -> bool:
        return self._base.is_provisional(day)

    def day_start(self, day: date) -> datetime:
        return self.epoch + timedelta(seconds=(day - self.base_day).days * self.day_seconds)

    def day_of(self, instant: datetime) -> date:
        _require_aware(instant)
        elapsed = (instant - self.epoch).total_seconds()
        return self.base_day + timedelta(days=int(elapsed // self.day_seconds))

    def at(self, day: date, clock: time) -> datetime:
        seconds_into_day = clock.hour * 3600 + clock.minute * 60 + clock.second
        return self.day_start(day) + timedelta(seconds=self.day_seconds * seconds_into_day / 86400)

    def clock_of(self, instant: datetime) -> datetime:
        """The calendar's local time of a real instant (for display)."""
        day = self.day_of(instant)
        fraction = (instant - self.day_start(day)).total_seconds() / self.day_seconds
        return datetime.combine(day, time(0), SHANGHAI) + timedelta(seconds=fraction * 86400)


# ---------------------------------------------------------------------------
# A calendar as data, for workflows.


class OutsideTable(LookupError):
    """A day the table does not hold: the calendar itself must answer."""


_TABLE_CHARS = {(True, False): "W", (False, False): "R", (True, True): "w", (False, True): "r"}


@dataclass(frozen=True)
class DayTable:
    """The days of a calendar over a span, as data a workflow keeps in its history.

    ``days`` holds one letter per day from ``first_day``: ``W`` working, ``R`` rest;
    lower case when the day's status is provisional. Every day lasts ``day_seconds``
    (true of China's time, which has no daylight saving, and of the compressed demo
    calendar); :func:`tabulate` checks it day by day.

    A provisional day may become official while an application runs (the State Council
    publishes the next year's arrangement in the autumn; the worker loads it when it
    restarts), so the table does not answer for it unless ``provisional_is_final``:
    true only where the workflows cannot outlive the calendar data they started with
    (``aidflow simulate``: workflows, worker and calendar live and die in one process),
    or unless the calendar reading it only forecasts (see :class:`TabulatedCalendar`).
    """

    calendar: str
    first_day: date
    first_day_starts_at: datetime
    day_seconds: float
    days: str
    provisional_is_final: bool = False


class TabulatedCalendar(WorkingCalendar):
    """A :class:`WorkingCalendar` answered from a :class:`DayTable`.

    The application workflow gets the table in its input, with its season schedule
    (models/schedule.py), so the table is in its history; the notice periods, postings
    and projections are then computed here, in the workflow, instead of by a local
    activity each (issue 7: up to twelve fewer local activities per application). A
    replay computes the same instants from the same table. For a day outside the table,
    or provisional in it, it raises :class:`OutsideTable` and the workflow asks the
    activity, as before.

    ``forecast``: provisional days are answered as the table has them. For a projection
    (R6's "at risk", a forecast that is made again at every step), not for a period or
    an instant that binds anyone: a provisional day is one whose year's arrangement was
    not yet published when the application started (a season applied for a year
    ahead, as the tests do), and asking the calendar again at every step put one local
    activity a step into each such history (issue 20: 9 of a paid application's 35).
    """

    def __init__(self, table: DayTable, *, forecast: bool = False) -> None:
        _require_aware(table.first_day_starts_at)
        self.table = table
        self._provisional_answers = table.provisional_is_final or forecast
        self.name = table.calendar
        self._length = timedelta(seconds=table.day_seconds)

    @property
    def tz(self) -> tzinfo:
        tz = self.table.first_day_starts_at.tzinfo
        assert tz is not None
        return tz

    def _letter(self, day: date) -> str:
        index = (day - self.table.first_day).days
        if not 0 <= index < len(self.table.days):
            raise OutsideTable(
                f"{day} is outside the table ({self.table.first_day}, {len(self.table.days)} days)"
            )
        letter = self.table.days[index]
        if letter.islower() and not self._provisional_answers:
            raise OutsideTable(f"{day} is provisional: the calendar may know better by now")
        return letter

    def is_working_day(self, day: date) -> bool:
        return self._letter(day) in "Ww"

    def is_provisional(self, day: date) -> bool:
        return self._letter(day).islower()

    def day_start(self, day: date) -> datetime:
        # The same arithmetic as CompressedCalendar.day_start, so that both give the
        # same microsecond; for a 24-hour day it is plain midnight.
        offset = (day - self.table.first_day).days * self.table.day_seconds
        return self.table.first_day_starts_at + timedelta(seconds=offset)

    def day_of(self, instant: datetime) -> date:
        _require_aware(instant)
        day = self.table.first_day + timedelta(
            days=(instant - self.table.first_day_starts_at) // self._length
        )
        # Guard the floor division against a rounded day length: the day is the one
        # whose start is at or before the instant and whose successor's is after it.
        if self.day_start(day) > instant:
            day -= timedelta(days=1)
        elif self.day_start(day + timedelta(days=1)) <= instant:
            day += timedelta(days=1)
        return day

    def at(self, day: date, clock: time) -> datetime:
        seconds_into_day = clock.hour * 3600 + clock.minute * 60 + clock.second
        return self.day_start(day) + timedelta(
            seconds=self.table.day_seconds * seconds_into_day / 86400
        )


def tabulate(
    calendar: WorkingCalendar, first: date, last: date, *, provisional_is_final: bool = False
) -> DayTable | None:
    """``calendar``'s days from ``first`` to ``last``, or to the day before the first
    one it has no data for. None when its days cannot be tabulated exactly (a day of
    another length, a clock time the table would place elsewhere) or ``first`` has no data.
    """
    local_start = calendar.day_start(first)
    offset = local_start.utcoffset()
    assert offset is not None
    # A fixed offset, as the table reads back from a history; it also makes the
    # arithmetic and comparisons below absolute (with one zone on both sides Python
    # compares wall clocks, which would hide a daylight-saving day).
    start = local_start.astimezone(timezone(offset))
    length = (calendar.day_start(first + timedelta(days=1)) - start).total_seconds()
    if length <= 0:
        return None
    letters: list[str] = []
    day = first
    while day <= last:
        try:
            letters.append(_TABLE_CHARS[calendar.is_working_day(day), calendar.is_provisional(day)])
        except CalendarDataMissing:
            break
        day += timedelta(days=1)
    if not letters:
        return None
    table = DayTable(
        calendar=calendar.name,
        first_day=first,
        first_day_starts_at=start,
        day_seconds=length,
        days="".join(letters),
        provisional_is_final=provisional_is_final,
    )
    tabulated = TabulatedCalendar(table)
    for i in range(len(letters) + 1):
        d = first + timedelta(days=i)
        if tabulated.day_start(d) != calendar.day_start(d) or tabulated.at(
            d, time(9, 30)
        ) != calendar.at(d, time(9, 30)):
            return None
    return table


# ---------------------------------------------------------------------------
# Notice periods (R2) and deadlines (R6).


@dataclass(frozen=True)
class NoticePeriod:
    posted_at: datetime
    counted_days: tuple[date, ...]
    ends_at: datetime
    provisional: bool


def first_whole_day(calendar: WorkingCalendar, instant: datetime) -> date:
    """The first calendar day that lies wholly after ``instant``."""
    day = calendar.day_of(instant)
    return day if calendar.day_start(day) == instant else day + timedelta(days=1)


def notice_period(
    calendar: WorkingCalendar,
    posted_at: datetime,
    days: int,
    counting: NoticeCounting = NoticeCounting.WORKING_DAYS,
) -> NoticePeriod:
    """R2: a day counts only when the notice is up all of it; ends at 24:00 of day N."""
    _require_aware(posted_at)
    if days < 1:
        raise ValueError("a notice lasts at least one day")
    counted: list[date] = []
    day = first_whole_day(calendar, posted_at)
    # Bounded: no year has more than a few weeks without a working day.
    for _ in range(days * 7 + 60):
        if counting is NoticeCounting.CALENDAR_DAYS or calendar.is_working_day(day):
            counted.append(day)
            if len(counted) == days:
                break
        day += timedelta(days=1)
    else:  # pragma: no cover - a calendar with no working days at all
        raise ValueError(f"no {days} working days found after {posted_at.isoformat()}")
    last = counted[-1]
    return NoticePeriod(
        posted_at=posted_at,
        counted_days=tuple(counted),
        ends_at=calendar.day_start(last + timedelta(days=1)),
        provisional=any(calendar.is_provisional(d) for d in counted),
    )


def next_working_day_at(calendar: WorkingCalendar, instant: datetime, clock: time) -> datetime:
    """``clock`` on the first working day after the local day of ``instant``."""
    day = calendar.day_of(instant) + timedelta(days=1)
    for _ in range(60):
        if calendar.is_working_day(day):
            return calendar.at(day, clock)
        day += timedelta(days=1)
    raise ValueError(
        f"no working day within 60 days after {instant.isoformat()}"
    )  # pragma: no cover


def end_of_day(calendar: WorkingCalendar, day: date) -> datetime:
    """24:00 of ``day``: a date written 'by 10 September' ends here."""
    return calendar.day_start(day + timedelta(days=1))
