"""What a workflow history costs (issue 20): events, workflow tasks, history bytes, and
Temporal Cloud's billable actions. Counted the same way for a recorded baseline
(``python -m bench.cost``) and for a simulated season's applications
(``aidflow simulate``, ``cost_per_paid_application``).

The time-skipping servers write events of their own
(``WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED``, and the options updates that switch
time skipping on) that a production server does not: they are left out of every count.
Bytes are the events' protobuf sizes, as the server stores and bills them (a history's
JSON is about twice as large).

Billable actions by Temporal's published rules (docs.temporal.io/cloud/actions, read
2026-12-03), from what a history shows:

- a workflow started: 1 (``WORKFLOW_EXECUTION_STARTED``);
- a search-attribute upsert: 1 each, however many attributes it sets;
- workflow options updated: 1 each;
- a child workflow started: 2;
- an activity scheduled: 1, and 1 for each retry (the started event's attempt - 1);
- local activities: 1 for all the markers one workflow task records, and 1 for each
  retried attempt the task's metering says;
- a timer started: 1;
- a signal received: 1 (a signal sent to another workflow is counted where it is
  received: ``SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED`` is free in the sender's);
- an update accepted: 1 (a rejected one is billed too, but never written to history:
  not counted here);
- a reset: 1 (a workflow task failed with the reset cause).

Queries are billed (1 each) and never in a history: not counted here either.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent

_TEST_SERVER_ONLY = {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED}

# Event types that are one action each.
_ONE_ACTION = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "workflow started",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search attributes upserted",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED: "workflow options updated",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity scheduled",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer started",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal received",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "update accepted",
}


@dataclass
class Cost:
    """One history's cost."""

    workflow_id: str
    events: int = 0
    workflow_tasks: int = 0  # completed ones: what the worker ran and the server took
    history_bytes: int = 0
    actions: int = 0
    by_action: dict[str, int] = field(default_factory=dict)


def _test_server_only(e: HistoryEvent) -> bool:
    """Events only the tests' time skipping writes: its transitions, and the options
    updates that switch it (a real server's options updates are billed)."""
    return e.event_type in _TEST_SERVER_ONLY or (
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED
        and e.workflow_execution_options_updated_event_attributes.HasField("time_skipping_config")
    )


def cost_of(workflow_id: str, events: list[HistoryEvent]) -> Cost:
    """The cost of one history's events, by the rules in the module's docstring."""
    counted = [e for e in events if not _test_server_only(e)]
    by: Counter[str] = Counter()
    markers_in_task = False  # a local-activity marker since the last completed task
    for e in counted:
        kind = e.event_type
        if kind in _ONE_ACTION:
            by[_ONE_ACTION[kind]] += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            by["child workflow started"] += 2
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            retries = e.activity_task_started_event_attributes.attempt - 1
            if retries > 0:
                by["activity retried"] += retries
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            markers_in_task = True
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            metering = e.workflow_task_completed_event_attributes.metering_metadata
            if metering.nonfirst_local_activity_execution_attempts:
                by["local activity retried"] += metering.nonfirst_local_activity_execution_attempts
        elif (
            kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and e.workflow_task_failed_event_attributes.cause
            == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        ):
            by["workflow reset"] += 1
        # A task's markers are written after its completed event: they close when the
        # next task is scheduled (or the history ends).
        if markers_in_task and kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        ):
            by["local activities (one a task)"] += 1
            markers_in_task = False
    if markers_in_task:
        by["local activities (one a task)"] += 1
    return Cost(
        workflow_id=workflow_id,
        events=len(counted),
        workflow_tasks=sum(
            1 for e in counted if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ),
        history_bytes=sum(e.ByteSize() for e in counted),
        actions=sum(by.values()),
        by_action=dict(sorted(by.items())),
    )
