"""bench/cost.py: a history's events, tasks, bytes and billable actions, by Temporal
Cloud's published rules (the module's docstring), on a history made for the test."""

from __future__ import annotations

from temporalio.api.common.v1 import TimeSkippingConfig
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowExecutionOptionsUpdatedEventAttributes,
    WorkflowTaskCompletedEventAttributes,
)

from bench.cost import BASELINES, cost_of, main

E = EventType


def _event(i: int, kind: EventType.ValueType, **attrs: object) -> HistoryEvent:
    e = HistoryEvent(event_id=i, event_type=kind)
    for name, value in attrs.items():
        getattr(e, name).CopyFrom(value)
    return e


def _history() -> list[HistoryEvent]:
    task_done = WorkflowTaskCompletedEventAttributes()
    task_done.metering_metadata.nonfirst_local_activity_execution_attempts = 2
    kinds: list[tuple[EventType.ValueType, dict[str, object]]] = [
        (E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, {}),
        (E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, {}),
        (E.EVENT_TYPE_WORKFLOW_TASK_STARTED, {}),
        (
            E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            {"workflow_task_completed_event_attributes": task_done},
        ),
        # Three local activities of one task: one action (and the two retries above).
        (E.EVENT_TYPE_MARKER_RECORDED, {}),
        (E.EVENT_TYPE_MARKER_RECORDED, {}),
        (E.EVENT_TYPE_MARKER_RECORDED, {}),
        (E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, {}),
        (E.EVENT_TYPE_TIMER_STARTED, {}),
        (E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, {}),
        (
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            {
                "activity_task_started_event_attributes": ActivityTaskStartedEventAttributes(
                    attempt=3
                )
            },
        ),
        (E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, {}),  # billed where received
        (E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, {}),
        # The tests' time skipping: not a real server's, not counted at all.
        (E.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED, {}),
        (
            E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
            {
                "workflow_execution_options_updated_event_attributes": (
                    WorkflowExecutionOptionsUpdatedEventAttributes(
                        time_skipping_config=TimeSkippingConfig(enabled=True)
                    )
                )
            },
        ),
        (E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, {}),
        (E.EVENT_TYPE_WORKFLOW_TASK_STARTED, {}),
        (E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, {}),
        (E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, {}),
        (E.EVENT_TYPE_MARKER_RECORDED, {}),  # a second task's local activity: one more
        (E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, {}),
    ]
    return [_event(i, kind, **attrs) for i, (kind, attrs) in enumerate(kinds, 1)]


def test_a_history_is_counted_by_the_published_rules() -> None:
    c = cost_of("made-up", _history())
    assert (c.events, c.workflow_tasks) == (19, 2)
    assert c.by_action == {
        "activity retried": 2,
        "activity scheduled": 1,
        "local activities (one a task)": 2,
        "local activity retried": 2,
        "search attributes upserted": 1,
        "signal received": 1,
        "timer started": 1,
        "update accepted": 1,
        "workflow started": 1,
    }
    assert c.actions == 12
    assert c.history_bytes > 0


def test_the_baselines_are_counted() -> None:
    assert sorted(BASELINES.glob("*.json")), "no baselines to count"
    assert main(["--json"]) == 0


def test_a_paid_application_s_projections_are_small_and_its_trail_writes_few() -> None:
    """A projection is computed in the workflow from the calendar table its schedule
    brought, a provisional day read as the table has it (a forecast): no marker a step
    (9 of the paid application's 35 markers before, 5 KB). One that must ask the
    calendar (a day beyond the table) gets back each remaining step's stage, earliest
    end, fixed date and whether it meets it, not the planner's whole step (labels,
    counted days: 2.3 KB a marker before). Counted on the recorded history."""
    import json
    from datetime import UTC, datetime

    from temporalio.client import WorkflowHistory

    from models.planner import project_steps
    from models.programmes import COUNTY_SUBSIDY
    from models.records import TRAIL_WRITES, Projection
    from store.calendars import build_calendar

    path = BASELINES / "paid@baseline.json"
    history = WorkflowHistory.from_json("paid", json.loads(path.read_text("utf-8")))
    kinds = []
    for e in history.events:
        if e.HasField("marker_recorded_event_attributes"):
            details = e.marker_recorded_event_attributes.details
            kinds.append(json.loads(details["data"].payloads[0].data)["activity_type"])
    assert "project_remaining_steps" not in kinds, kinds
    # A decision and the next step's entry are one trail write (workflows/trail.py):
    # 24 writes before, 20 since, 17 once the projections stopped holding them.
    # (With a word to the notice, a write is ``record_events_and_tell``.)
    assert sum(kinds.count(k) for k in TRAIL_WRITES) <= 18, kinds
    at = datetime(2027, 8, 20, 2, tzinfo=UTC)
    steps = project_steps(
        COUNTY_SUBSIDY, 2027, build_calendar("state-council"), from_index=0, at=at
    )
    projection = Projection.of(steps)
    assert len(projection.model_dump_json()) < 1000
    for step in projection.model_dump(mode="json")["steps"]:
        assert set(step) == {"stage", "earliest_end", "due_key", "meets_due"}, step
