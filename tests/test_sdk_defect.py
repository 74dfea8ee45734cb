"""The sdk-core defect the fault harness counts apart (README, "A defect of the Temporal
SDK"), on a history it left: recorded in a 1,000-application run of the harness
(2026-12-03). The application's join answered at 08:02:13 with its notice's automatic
time 08:00:18, already past; the next task started a timer of 30.571786 s, which is
08:00:18 less 07:59:47.428, the clock of the task before: the workflow had been run on
the join's answer to answer a query, at the old clock. Replayed on the code it was
recorded with, the same code told the notice its time had come instead, and the replay
failed where the history cancels that timer.

This file is not a baseline of aidflow's workflows (it is not in ``tests/histories``'s
top level, which every run replays): it pins the defect's shape and the harness's
classifier of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.faults import defect_shape

HISTORY = Path(__file__).parent / "histories" / "upstream" / "sdk-defect-stale-clock.json"
WORKFLOW_ID = "county-subsidy-demo/2026/341225/n7slwpcvyehsrva4"
KILL = (
    datetime(2026, 12, 3, 8, 1, 40, tzinfo=UTC),  # the worker that ran task 15 killed
    datetime(2026, 12, 3, 8, 2, 10, tzinfo=UTC),  # and the next one polling
)


def _history() -> WorkflowHistory:
    return WorkflowHistory.from_json(WORKFLOW_ID, HISTORY.read_text(encoding="utf-8"))


def test_the_history_shows_a_task_run_on_the_clock_of_the_task_before() -> None:
    """The defect, from the history alone: the task that started at 08:02:19 (event 26)
    started a timer (event 29) to the notice's automatic time, 08:00:18, that the join
    had just answered (event 24). A task on its own clock would have found that time past
    and started no timer; 30.571786 s is 08:00:18 less a clock inside the task of
    07:59:47 (events 15 and 16), two and a half minutes stale.

    (Replaying this history on the workflow code it was recorded with failed where the
    history cancels that timer, event 35. The code has changed since, and a replay now
    fails earlier, for the code's own changes, as any history of older code would: the
    proof here does not depend on the code.)"""
    events = {e.event_id: e for e in _history().events}
    answer = json.loads(events[24].activity_task_completed_event_attributes.result.payloads[0].data)
    auto_post_at = datetime.fromisoformat(answer["auto_post_at"])
    timer = events[29].timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    clock = auto_post_at - timer
    task_began = events[26].event_time.ToDatetime(tzinfo=UTC)
    assert task_began > auto_post_at  # the time was past when the task ran
    earlier_task = (
        events[15].event_time.ToDatetime(tzinfo=UTC),
        events[16].event_time.ToDatetime(tzinfo=UTC),
    )
    assert earlier_task[0] <= clock <= earlier_task[1], (clock, earlier_task)
    assert (task_began - clock).total_seconds() > 150
    assert events[35].timer_canceled_event_attributes.started_event_id == 29


def test_the_harness_counts_it_as_the_defects_only_after_a_fault() -> None:
    history = _history()
    message = (
        "[TMPRL1100] Nondeterminism error: Signal external WF machine does not handle "
        "this event: HistoryEvent(id: 35, TimerCanceled)"
    )
    # A worker killed before the task that a new worker ran (08:02:19): the defect's.
    assert defect_shape(history, message, [KILL])
    # No fault, or only one after the failing event: aidflow's own, not excused.
    assert not defect_shape(history, message, [])
    later = (datetime(2026, 12, 3, 8, 30, tzinfo=UTC), datetime(2026, 12, 3, 8, 31, tzinfo=UTC))
    assert not defect_shape(history, message, [later])
    # A nondeterminism error that names no event: the whole history is looked at.
    no_id = "[TMPRL1100] Nondeterminism error: Timer fired event did not have expected timer id 6, it was 7!"
    assert defect_shape(history, no_id, [KILL])
    assert not defect_shape(history, no_id, [])
    # Not a nondeterminism error at all: never the defect's.
    assert not defect_shape(history, "activity StartToClose timeout", [KILL])


def test_a_task_the_server_turned_back_for_new_events_is_not_a_failure() -> None:
    """UNHANDLED_COMMAND: new events arrived while the task ran, and the worker runs it
    again with them at once; the 500-application run of 2026-12-03 counted one such as
    a failure nothing explained."""
    from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
    from temporalio.api.history.v1 import HistoryEvent, WorkflowTaskFailedEventAttributes

    from bench.faults import failed_task

    def failed(cause: WorkflowTaskFailedCause.ValueType) -> HistoryEvent:
        return HistoryEvent(
            event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            workflow_task_failed_event_attributes=WorkflowTaskFailedEventAttributes(cause=cause),
        )

    cause = WorkflowTaskFailedCause
    assert not failed_task(failed(cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND))
    assert failed_task(failed(cause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR))
    assert failed_task(failed(cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE))
    assert not failed_task(HistoryEvent(event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))


def test_a_task_failed_by_the_deadlock_detector_and_retried_is_the_machines_load() -> None:
    """The 1,000-application run of 2026-12-04: a township notice's first task, taking a
    hundred joins at once on a saturated machine, did not yield within the SDK's 2 s and
    was failed; retried, it completed. Counted apart (``task_failures_by_load``), not as
    unexplained; one never followed by a completed task is not (it is stuck)."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.failure.v1 import Failure
    from temporalio.api.history.v1 import HistoryEvent, WorkflowTaskFailedEventAttributes

    from bench.faults import overloaded_and_recovered, unexplained

    def failed(message: str) -> HistoryEvent:
        return HistoryEvent(
            event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            workflow_task_failed_event_attributes=WorkflowTaskFailedEventAttributes(
                failure=Failure(message=message)
            ),
        )

    deadlock = failed(
        "[TMPRL1101] Potential deadlock detected: workflow didn't yield within 2 second(s)."
    )
    completed = HistoryEvent(event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert overloaded_and_recovered([deadlock, completed], 0)
    assert not overloaded_and_recovered([deadlock], 0)  # never went on
    assert not overloaded_and_recovered([failed("Nondeterminism error"), completed], 0)
    run = {"stuck": 0, "task_failures": 2, "replay_failures": 0, "by_sdk_defect": {}}
    assert unexplained({**run, "task_failures_by_load": 1}) == {"task_failures": 1}
    assert unexplained({**run, "task_failures_by_load": 2}) == {}
