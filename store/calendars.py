"""Building the configured working calendar from its data (file I/O lives here, not in models)."""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from pathlib import Path

import chinese_calendar

from models.calendar import CompressedCalendar, StateCouncilCalendar, WorkingCalendar, YearSchedule

SHIPPED_SCHEDULES = "models.schedules"

# chinesecalendar raises NotImplementedError outside the years it carries; ask it
# which years those are instead of hard-coding them.
_PACKAGE_YEARS = range(
    min(d.year for d in chinese_calendar.holidays),
    max(d.year for d in chinese_calendar.holidays) + 1,
)


def load_schedules(extra_dir: Path | None = None) -> list[YearSchedule]:
    """Shipped schedule files, then the operator's directory (which wins for a year)."""
    by_year: dict[int, YearSchedule] = {}
    for entry in sorted(resources.files(SHIPPED_SCHEDULES).iterdir(), key=lambda e: e.name):
        if entry.name.startswith("cn-") and entry.name.endswith(".txt"):
            s = YearSchedule.parse(
                entry.read_text(encoding="utf-8"), f"models/schedules/{entry.name}"
            )
            by_year[s.year] = s
    if extra_dir is not None and extra_dir.is_dir():
        for path in sorted(extra_dir.glob("cn-*.txt")):
            s = YearSchedule.parse(path.read_text(encoding="utf-8"), str(path))
            by_year[s.year] = s
    return [by_year[y] for y in sorted(by_year)]


def state_council_calendar(extra_dir: Path | None = None) -> StateCouncilCalendar:
    where = f"{extra_dir}/cn-{{y}}.txt" if extra_dir else "models/schedules/cn-{y}.txt"
    return StateCouncilCalendar(
        load_schedules(extra_dir),
        package_lookup=chinese_calendar.is_workday,
        package_years=_PACKAGE_YEARS,
        missing_hint=lambda y: where.format(y=y),
    )


def build_calendar(
    kind: str,
    extra_dir: Path | None = None,
    *,
    epoch: datetime | None = None,
    base_day: date | None = None,
    day_seconds: float | None = None,
) -> WorkingCalendar:
    """The calendar named by configuration (``AIDFLOW_CALENDAR``).

    ``compressed`` plays the State Council calendar fast: ``base_day`` starts at
    ``epoch`` and each day lasts ``day_seconds`` (the demo's calendar).
    """
    if kind == "state-council":
        return state_council_calendar(extra_dir)
    if kind == "compressed":
        if epoch is None or base_day is None or day_seconds is None:
            raise ValueError(
                "the compressed calendar needs calendar_epoch, calendar_base_day and calendar_day_seconds"
            )
        return CompressedCalendar(
            state_council_calendar(extra_dir),
            epoch=epoch,
            base_day=base_day,
            day_seconds=day_seconds,
        )
    raise ValueError(f"unknown calendar {kind!r}; known: state-council, compressed")
