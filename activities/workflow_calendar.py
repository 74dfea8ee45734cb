"""Calendar computations for workflows, run as local activities.

Why activities and not plain function calls inside the workflow: the calendar
depends on data files an operator may change (next year's schedule, a
correction). As activity results the instants are written into the workflow
history, so a replay sees exactly what the original run saw.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from temporalio import activity

from models.calendar import WorkingCalendar, end_of_day, next_working_day_at, notice_period
from models.planner import project_steps, window
from models.records import (
    DatedKey,
    NoticeRequest,
    NoticeResult,
    PostingTimeRequest,
    Projection,
    ProjectionRequest,
    ReminderTimesRequest,
    ScheduleRequest,
    SeasonSchedule,
)


class CalendarActivities:
    def __init__(self, calendar: WorkingCalendar) -> None:
        self._calendar = calendar

    @activity.defn(name="compute_season_schedule")
    def compute_season_schedule(self, req: ScheduleRequest) -> SeasonSchedule:
        cal = self._calendar
        opens, closes = window(req.programme, req.season, cal)
        dates = [
            DatedKey(
                key=d.key,
                day=d.on.in_year(req.season),
                due_at=end_of_day(cal, d.on.in_year(req.season)),
            )
            for d in req.programme.fixed_dates
        ]
        days = [req.programme.window_opens.in_year(req.season), *(d.day for d in dates)]
        provisional = sorted({d.year for d in days if cal.is_provisional(d)})
        return SeasonSchedule(
            calendar=cal.name,
            window_opens_at=opens,
            window_closes_at=closes,
            fixed_dates=dates,
            provisional_years=provisional,
        )

    @activity.defn(name="compute_reminder_times")
    def compute_reminder_times(self, req: ReminderTimesRequest) -> list[DatedKey]:
        """09:00, ``days_before`` calendar days before each fixed date."""
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
        return out

    @activity.defn(name="compute_notice_period")
    def compute_notice_period(self, req: NoticeRequest) -> NoticeResult:
        p = notice_period(self._calendar, req.posted_at, req.days, req.counting)
        return NoticeResult(
            posted_at=p.posted_at,
            ends_at=p.ends_at,
            counted_days=list(p.counted_days),
            provisional=p.provisional,
        )

    @activity.defn(name="next_posting_time")
    def next_posting_time(self, req: PostingTimeRequest) -> datetime:
        return next_working_day_at(self._calendar, req.after, req.clock)

    @activity.defn(name="project_remaining_steps")
    def project_remaining_steps(self, req: ProjectionRequest) -> Projection:
        steps = project_steps(
            req.programme, req.season, self._calendar, from_index=req.from_index, at=req.at
        )
        return Projection(steps=list(steps))
