"""A public notice (公示): a list posted for N working or calendar days, objections allowed (R2, R3)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import ClassVar, Literal

from pydantic import Field

from models.calendar import (
    NoticeCounting,
    OutsideTable,
    WorkingCalendar,
    next_working_day_at,
    notice_period,
)
from models.domain import Level, Role
from models.steps.base import Span, StepBase

_JUST_AFTER = timedelta(microseconds=1)


class NoticeStep(StepBase):
    kind: Literal["notice"] = "notice"
    decides: ClassVar[bool] = True
    owner: Role  # who posts it and resolves objections
    level: Level
    days: int = Field(ge=1)
    counting: NoticeCounting = NoticeCounting.WORKING_DAYS
    # "window_close": the first list goes up when the application window closes;
    # "after_review": after the preceding review. Either way, an application
    # that becomes ready later goes onto the next posting, automatically at
    # ``auto_post_at`` of the next working day unless the owner posts earlier.
    first_posting: Literal["window_close", "after_review"] = "after_review"
    auto_post_at: time = time(8, 0)
    # The owner's posting carries a photograph or scan of the posted list (Rain and Dew).
    evidence_required: bool = False
    # What an upheld objection does: the application is rejected with the owner's reason.
    on_upheld: Literal["reject"] = "reject"

    @property
    def actor_role(self) -> Role:
        return self.owner

    @property
    def actor_level(self) -> Level:
        return self.level

    def automatic_posting(
        self, calendar: WorkingCalendar | None, ready_at: datetime, window_closes: datetime
    ) -> datetime | None:
        """When a member ready at ``ready_at`` is posted unless its owner posts it first:
        the window's close (``window_close``, ready before it), else ``auto_post_at`` of
        the first working day after the day it was ready; None where only the owner
        posts. The member keeps this time and the notice posts at it, so that neither
        needs the other's word (issue 20). Without a ``calendar`` where a working day is
        needed: :class:`OutsideTable` (the caller asks the calendar itself)."""
        if self.evidence_required:
            return None
        if self.first_posting == "window_close" and ready_at < window_closes:
            return window_closes
        if calendar is None:
            raise OutsideTable("no day table: the calendar is asked")
        return next_working_day_at(calendar, ready_at, self.auto_post_at)

    def posting_rule(self, ready_at: datetime, window_closes: datetime) -> tuple[str, str]:
        """``automatic_posting``'s rule for a member ready at ``ready_at``, in words
        (Chinese, English)."""
        if self.evidence_required:
            return "由负责单位张贴并上传照片", "posted by its owner, with a photograph"
        if self.first_posting == "window_close" and ready_at < window_closes:
            return "申请期结束时自动公示", "posted automatically when the application window closes"
        clock = f"{self.auto_post_at:%H:%M}"
        return (
            f"下一工作日{clock}自动公示",
            f"posted automatically at {clock} of the next working day",
        )

    def project(self, calendar: WorkingCalendar, start: datetime, window_closes: datetime) -> Span:
        if self.first_posting == "window_close":
            # The workflow posts it by a timer at exactly this instant.
            start = max(start, window_closes)
            period = notice_period(calendar, start, self.days, self.counting)
        else:
            # Posted by its owner after the review's decision, so strictly after the
            # instant the review opened: a review that opens at 00:00 (a notice just
            # ended) cannot have its notice up for the whole of that day.
            period = notice_period(calendar, start + _JUST_AFTER, self.days, self.counting)
        return Span(
            start=start,
            end=period.ends_at,
            counted_days=period.counted_days,
            provisional=period.provisional,
        )
