"""Calendar computations for workflows, run as local activities.

Why activities: the calendar depends on data files an operator may change (next
year's schedule, a correction). As activity results the instants are written into the
workflow history, so a replay sees exactly what the original run saw. An application's
schedule, with the table of working days it computes from, comes in its input instead
(models/schedule.py); the activities here answer what the table cannot (a day outside
it, or provisional in it), and the season's and the roster's schedules.
"""

from __future__ import annotations

from datetime import date, time, timedelta

from temporalio import activity

from models.calendar import (
    WorkingCalendar,
    end_of_day,
    next_working_day_at,
    notice_period,
)
from models.cases import CaseClock
from models.planner import project_steps
from models.records import (
    COVERAGE_REMINDER,
    NoticeRequest,
    NoticeResult,
    Projection,
    ProjectionRequest,
    ReminderTimesRequest,
    ScheduleRequest,
)
from models.schedule import DatedKey, SeasonSchedule, SeasonSchedules
from models.tasks import TaskTime, TaskTimesRequest


class CalendarActivities:
    def __init__(self, calendar: WorkingCalendar, *, calendar_is_fixed: bool = False) -> None:
        """``calendar_is_fixed``: the workflows cannot outlive this calendar's data, so
        provisional days are final for them (see :class:`models.calendar.DayTable`)."""
        self._calendar = calendar
        self._schedules = SeasonSchedules(calendar, calendar_is_fixed=calendar_is_fixed)

    @activity.defn(name="compute_season_schedule")
    def compute_season_schedule(self, req: ScheduleRequest) -> SeasonSchedule:
        """The season and roster workflows' schedule (an application's is in its input)."""
        return self._schedules.of(req.programme, req.season)

    @activity.defn(name="case_clock")
    def case_clock(self, year: int) -> CaseClock:
        """The calendar's days as a case's timers count them (the demo's are compressed)."""
        first = date(year, 1, 1)
        origin = self._calendar.day_start(first)
        length = self._calendar.day_start(first + timedelta(days=1)) - origin
        return CaseClock(origin_day=first, origin=origin, day_seconds=length.total_seconds())

    @activity.defn(name="compute_task_times")
    def compute_task_times(self, req: TaskTimesRequest) -> list[TaskTime]:
        """Each dated task's due instant (24:00 of its date) and its reminder (09:00,
        ``days_before`` calendar days before), on the deployment's calendar."""
        cal = self._calendar
        return [
            TaskTime(
                key=t.key,
                due_at=end_of_day(cal, t.on.in_year(req.year)),
                remind_at=cal.at(
                    t.on.in_year(req.year) - timedelta(days=req.days_before), time(9, 0)
                ),
            )
            for t in req.plan.tasks
        ]

    @activity.defn(name="compute_reminder_times")
    def compute_reminder_times(self, req: ReminderTimesRequest) -> list[DatedKey]:
        """09:00, ``days_before`` calendar days before each fixed date; and 09:00,
        ``coverage_working_days`` working days before the window's last day (the coverage
        reminder, key ``COVERAGE_REMINDER``)."""
        out = []
        for d in req.programme.fixed_dates:
            day = d.on.in_year(req.season)
            out.append(
                DatedKey(
                    key=d.key,
                    day=day,
                    due_at=self._calendar.at(day - timedelta(days=req.days_before), time(9, 0)),
                )
            )
        if req.coverage_working_days > 0:
            last = req.programme.window_closes.in_year(req.season)
            day, left = last, req.coverage_working_days
            while left > 0:
                day -= timedelta(days=1)
                left -= self._calendar.is_working_day(day)
            out.append(
                DatedKey(key=COVERAGE_REMINDER, day=last, due_at=self._calendar.at(day, time(9, 0)))
            )
        return out

    @activity.defn(name="compute_notice_period")
    def compute_notice_period(self, req: NoticeRequest) -> NoticeResult:
        posted_at = req.posted_at
        if posted_at is None:
            assert req.after is not None and req.clock is not None  # the request's validator
            posted_at = next_working_day_at(self._calendar, req.after, req.clock)
        p = notice_period(self._calendar, posted_at, req.days, req.counting)
        return NoticeResult(
            posted_at=p.posted_at,
            ends_at=p.ends_at,
            counted_days=list(p.counted_days),
            provisional=p.provisional,
        )

    @activity.defn(name="project_remaining_steps")
    def project_remaining_steps(self, req: ProjectionRequest) -> Projection:
        steps = project_steps(
            req.programme, req.season, self._calendar, from_index=req.from_index, at=req.at
        )
        return Projection.of(steps, req.known)
