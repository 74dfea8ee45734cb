"""A season's schedule: its window, its fixed dates and its table of working days.

An application carries it in its input, computed by the gateway that starts it, so its
first workflow task asks the calendar nothing (issue 20: the local activity that
computed it was a marker in every application's history). The season and roster
workflows, one a season, still ask it of ``compute_season_schedule``, which computes it
here too: the same instants whoever asks.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SerializerFunctionWrapHandler,
    WrapSerializer,
)

from models.calendar import DayTable, WorkingCalendar, tabulate
from models.planner import due_at, window
from models.programme import Programme


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatedKey(_Model):
    key: str
    day: date
    due_at: datetime  # 24:00 of ``day``


# A table's days as they travel: their exceptions to "Monday to Friday are working days",
# ``~<days>;<first provisional day, or nothing>;<gaps between exceptions>``. Three years'
# letters were 1.1 KB of every application's start (issue 20); their exceptions (the
# holidays and the adjusted working days) are about a sixth of that. A table whose
# provisional days are not all at its end travels letter by letter.
_COMPACT = "~"
_LETTERS = frozenset("WRwr")
# A season's table spans three years (season_table); a compact form naming more days is
# refused, not expanded (a dozen characters could otherwise ask for millions of letters).
MOST_DAYS = 4 * 366


def _working_by_rule(weekday: int, index: int) -> bool:
    return (weekday + index) % 7 < 5


def compact_days(days: str, first_day: date) -> str:
    provisional = next((i for i, c in enumerate(days) if c.islower()), len(days))
    later = days[provisional:]
    if set(days) - _LETTERS or later != later.lower():
        return days  # letter by letter
    gaps, last = [], -1
    weekday = first_day.weekday()
    for i, c in enumerate(days):
        if (c in "Ww") != _working_by_rule(weekday, i):
            gaps.append(str(i - last))
            last = i
    first_provisional = str(provisional) if provisional < len(days) else ""
    return f"{_COMPACT}{len(days)};{first_provisional};{'.'.join(gaps)}"


@functools.lru_cache(maxsize=64)
def expand_days(encoded: str, first_day: date) -> str:
    """The letters of :func:`compact_days`' ``encoded``; one string for every application
    of a season (a cached workflow keeps it: shared, not copied). A malformed one is a
    ``ValueError`` (a start that does not validate fails at once, workflows/application.py)."""
    if not encoded.startswith(_COMPACT):
        return encoded
    try:
        length_text, provisional, gap_text = encoded[1:].split(";")
        length = int(length_text)
        first = int(provisional) if provisional else length
        gaps = [int(g) for g in gap_text.split(".") if g]
    except ValueError:
        raise ValueError(f"days {encoded[:40]!r}: not a day table's compact form") from None
    positions = list(itertools.accumulate(gaps, initial=-1))[1:]
    beyond = bool(positions) and positions[-1] >= length
    if not 0 <= first <= length <= MOST_DAYS or any(g <= 0 for g in gaps) or beyond:
        raise ValueError(f"days {encoded[:40]!r}: a day or a gap outside the table")
    exceptions, weekday = set(positions), first_day.weekday()
    letters = []
    for i in range(length):
        letter = "W" if _working_by_rule(weekday, i) != (i in exceptions) else "R"
        letters.append(letter.lower() if i >= first else letter)
    return "".join(letters)


def _table_in(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    days, first = value.get("days"), value.get("first_day")
    if not (isinstance(days, str) and days.startswith(_COMPACT)):
        return value
    try:
        first_day = first if isinstance(first, date) else date.fromisoformat(str(first))
    except ValueError:
        raise ValueError(f"first_day {first!r} is not a date") from None
    return {**value, "days": expand_days(days, first_day)}


def _table_out(table: DayTable, handler: SerializerFunctionWrapHandler) -> Any:
    out = handler(table)
    out["days"] = compact_days(table.days, table.first_day)
    return out


_TravellingTable = Annotated[
    DayTable, BeforeValidator(_table_in), WrapSerializer(_table_out, when_used="json")
]


class SeasonSchedule(_Model):
    """The season's instants, computed once per application and kept in its history."""

    calendar: str
    window_opens_at: datetime
    window_closes_at: datetime
    fixed_dates: list[DatedKey]
    provisional_years: list[int]
    # The calendar's days from 1 January of the year before the season to the end of the
    # year after it (as far as there is data): the application workflow computes its
    # notices and projections from it. None where the calendar cannot be tabulated.
    working_days: _TravellingTable | None = None

    def due_at(self, key: str) -> datetime:
        for d in self.fixed_dates:
            if d.key == key:
                return d.due_at
        raise KeyError(key)

    def still_at_risk(
        self, keys: Iterable[str], now: datetime, overdue: Iterable[str] = ()
    ) -> list[str]:
        """Of a projection's dates at risk, those not yet due: a date already due is
        overdue (its watcher says so), not at risk."""
        due, late = {d.key: d.due_at for d in self.fixed_dates}, set(overdue)
        return [k for k in keys if k not in late and (k not in due or due[k] > now)]


def season_table(
    calendar: WorkingCalendar, season: int, *, provisional_is_final: bool = False
) -> DayTable | None:
    """The calendar's days from the year before the season (an application may be
    started before its season's year, as the tests do) to the end of the next (late
    payments), as far as there is data. ``provisional_is_final``: see :class:`DayTable`."""
    return tabulate(
        calendar,
        date(season - 1, 1, 1),
        date(season + 1, 12, 31),
        provisional_is_final=provisional_is_final,
    ) or tabulate(
        calendar,
        date(season, 1, 1),
        date(season + 1, 12, 31),
        provisional_is_final=provisional_is_final,
    )


def season_schedule(
    programme: Programme, season: int, calendar: WorkingCalendar, table: DayTable | None
) -> SeasonSchedule:
    """``programme``'s instants in ``season`` on ``calendar``, with ``table`` (from
    :func:`season_table`, or None: the workflow then asks the calendar for each day)."""
    opens, closes = window(programme, season, calendar)
    dates = [
        DatedKey(key=d.key, day=d.on.in_year(season), due_at=due_at(d, season, calendar))
        for d in programme.fixed_dates
    ]
    days = [programme.window_opens.in_year(season), *(d.day for d in dates)]
    return SeasonSchedule(
        calendar=calendar.name,
        window_opens_at=opens,
        window_closes_at=closes,
        fixed_dates=dates,
        provisional_years=sorted({d.year for d in days if calendar.is_provisional(d)}),
        working_days=table,
    )


class SeasonSchedules:
    """Schedules on one calendar, each season's table computed once (every application
    of a season has the same; the calendar is fixed for the life of the process)."""

    def __init__(self, calendar: WorkingCalendar, *, calendar_is_fixed: bool = False) -> None:
        """``calendar_is_fixed``: the workflows cannot outlive this calendar's data, so
        provisional days are final for them (see :class:`DayTable`)."""
        self.calendar = calendar
        self.calendar_is_fixed = calendar_is_fixed
        self._tables: dict[int, DayTable | None] = {}

    def table(self, season: int) -> DayTable | None:
        if season not in self._tables:
            self._tables[season] = season_table(
                self.calendar, season, provisional_is_final=self.calendar_is_fixed
            )
        return self._tables[season]

    def of(self, programme: Programme, season: int) -> SeasonSchedule:
        return season_schedule(programme, season, self.calendar, self.table(season))
