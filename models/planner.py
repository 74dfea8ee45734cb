"""The season planner: the fastest possible timeline of a programme (R6).

"Fastest" means every decision is taken the moment its stage opens and every
notice is posted the moment it can be. If even that misses a fixed date, the
date is at risk for every application, and the county should know before the
season starts. The same computation, started from an application's current
step, is the projection the workflow records at every stage.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict

from models.calendar import WorkingCalendar, end_of_day, next_working_day_at
from models.programme import FixedDate, Programme


class PlannedStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    kind: str
    label_zh: str
    label_en: str
    earliest_start: datetime
    earliest_end: datetime
    due_key: str
    due_label_en: str
    due_date: date
    due_at: datetime  # 24:00 of the fixed date
    meets_due: bool
    counted_days: tuple[date, ...] = ()
    provisional: bool = False

    @property
    def slack(self) -> timedelta:
        return self.due_at - self.earliest_end


class PlannedDate(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    label_zh: str
    label_en: str
    date: date
    due_at: datetime
    met: bool | None  # None: no step of the programme is due then (e.g. the summary)


class SeasonPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    programme: str
    programme_version: int
    season: int
    round: str = ""  # R12: the round planned, "" for one round a year
    calendar: str
    window_opens_at: datetime
    window_closes_at: datetime
    steps: tuple[PlannedStep, ...]
    fixed_dates: tuple[PlannedDate, ...]
    provisional: bool

    @property
    def at_risk(self) -> tuple[PlannedStep, ...]:
        return tuple(s for s in self.steps if not s.meets_due)


# When the county student-aid centre opens its doors (the loan's in-person intake).
CENTRE_OPENS = time(8, 0)


def window(
    programme: Programme, season: int, calendar: WorkingCalendar
) -> tuple[datetime, datetime]:
    """The application window as instants: [00:00 of the first day, 24:00 of the last)."""
    opens = calendar.day_start(programme.window_opens.in_year(season))
    closes = end_of_day(calendar, programme.window_closes.in_year(season))
    return opens, closes


def due_at(fixed: FixedDate, season: int, calendar: WorkingCalendar) -> datetime:
    """A fixed date as an instant: 24:00 of its day in the season's year (R6). The
    workflow's schedule and the client's first search attributes both take it from here,
    so that the workflow need not upsert the deadline it was started with."""
    return end_of_day(calendar, fixed.on.in_year(season))


def project_steps(
    programme: Programme,
    season: int,
    calendar: WorkingCalendar,
    *,
    from_index: int,
    at: datetime,
) -> tuple[PlannedStep, ...]:
    """Earliest start and end of steps ``from_index``.. if step ``from_index`` opens at ``at``."""
    _, window_closes = window(programme, season, calendar)
    t = at
    planned: list[PlannedStep] = []
    for step in programme.steps[from_index:]:
        due = programme.fixed_date(step.due)
        due_day = due.on.in_year(season)
        step_due_at = due_at(due, season, calendar)
        span = step.project(calendar, t, window_closes)
        provisional = calendar.is_provisional(calendar.day_of(t)) or span.provisional
        start, end, counted = span.start, span.end, span.counted_days
        planned.append(
            PlannedStep(
                stage=step.stage,
                kind=step.kind,
                label_zh=step.label_zh,
                label_en=step.label_en,
                earliest_start=start,
                earliest_end=end,
                due_key=due.key,
                due_label_en=due.label_en,
                due_date=due_day,
                due_at=step_due_at,
                meets_due=end <= step_due_at,
                counted_days=counted,
                provisional=provisional,
            )
        )
        t = end
    return tuple(planned)


def plan_season(programme: Programme, season: int, calendar: WorkingCalendar) -> SeasonPlan:
    opens, closes = window(programme, season, calendar)
    first = opens
    if programme.loan is not None and not calendar.is_working_day(calendar.day_of(opens)):
        # The centre takes loans in person on working days only (R1): the first comes then.
        first = next_working_day_at(calendar, opens, CENTRE_OPENS)
    steps = project_steps(programme, season, calendar, from_index=0, at=first)
    dates: list[PlannedDate] = []
    for fixed in programme.fixed_dates:
        day = fixed.on.in_year(season)
        due_steps = [s for s in steps if s.due_key == fixed.key]
        dates.append(
            PlannedDate(
                key=fixed.key,
                label_zh=fixed.label_zh,
                label_en=fixed.label_en,
                date=day,
                due_at=due_at(fixed, season, calendar),
                met=all(s.meets_due for s in due_steps) if due_steps else None,
            )
        )
    provisional = any(s.provisional for s in steps) or any(
        calendar.is_provisional(d.date) for d in dates
    )
    return SeasonPlan(
        programme=programme.code,
        programme_version=programme.version,
        season=season,
        round=programme.round_key,
        calendar=calendar.name,
        window_opens_at=opens,
        window_closes_at=closes,
        steps=steps,
        fixed_dates=tuple(dates),
        provisional=provisional,
    )
