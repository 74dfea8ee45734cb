"""Determinism: recorded histories of real runs must replay on the current workflow code.

A change that would break running applications fails here. Until the first season
runs in production, workflow code is reshaped freely and this baseline re-recorded
(``AIDFLOW_RECORD_HISTORIES=1``, the command in README, 'Versioning'). After it, a change that running
workflows would see goes behind ``workflow.patched`` (or a new workflow type), and
new histories are recorded beside these under a new tag (README, 'Versioning').
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from store.sealing import Keys
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workflows.authority import AuthorityInterceptor
from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_recorded_histories() -> None:
    """One baseline set for every workflow type and path that matters (see README,
    'Versioning'): an application of each programme, a notice, the season, the payout
    batch, a roster, a recovery."""
    names = {p.stem for p in HISTORIES}
    assert names == {
        f"{n}@baseline"
        for n in (
            "happy_path_to_awaiting_funds",
            "awaiting_funds_from_the_calendar_table",
            "rejected_at_village_review",
            "objection_dismissed_then_township_review",
            "objection_upheld",
            "paid",
            "returned_then_repaid",
            "new_student_aid_received",
            "freshman_grant_paid",
            "freshman_grant_roster",
            "rain_and_dew_paid",
            "rain_and_dew_notice",
            "rain_and_dew_recovery",
            "student_loan_lent",
            "case_pairing_handover",
            "case_dropout_exempted",
            "village_notice_posted_by_its_owner",
            "township_notice_posted_automatically",
            "season_with_two_batches",
            "payout_batch_with_a_return",
            "season_open_until_requested_funds_arrive",
            "season_before_continuing_as_new",
            "season_continued_as_new",
            "dated_tasks_done_late",
            "returned_for_correction_then_approved",
        )
    }


def test_every_workflow_type_has_a_recorded_history() -> None:
    """A workflow type without one could change in a way running workflows would see,
    and nothing here would say so."""
    recorded = set()
    for path in HISTORIES:
        first = json.loads(path.read_text())["events"][0]
        recorded.add(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])
    registered = {w.__name__ for w in ALL_WORKFLOWS}
    assert registered - recorded == set()


def _workflow_id(path: Path) -> str:
    """The recorded workflow's id, kept beside its history (``write_history``): a history
    does not keep it, and a request's statement names it only in its signature."""
    workflow_id = json.loads(path.read_text()).get("workflowId")
    assert workflow_id, f"{path.name} was not written by write_history: no workflowId"
    return str(workflow_id)


def _replayer(keys: Keys) -> Replayer:
    """The workers' workflows with their own check of who sent each message (R10), as
    the runs that recorded the histories had it: clocks skipped ahead of the wall clock."""
    return Replayer(
        workflows=ALL_WORKFLOWS,
        data_converter=pydantic_data_converter,
        interceptors=[
            AuthorityInterceptor(
                authority_key=keys.authority,
                internal_key=keys.internal,
                max_lifetime=SKIPPED_CLOCK_LIFETIME,
            )
        ],
    )


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path, keys: Keys) -> None:
    history = WorkflowHistory.from_json(_workflow_id(path), path.read_text())
    result = await _replayer(keys).replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_recorded_histories_hold_no_identity_or_account_number() -> None:
    """R9: workflow inputs carry sealed numbers; nothing in a history is a number in clear."""
    import base64
    import json
    import re

    from models.privacy import is_valid_national_id

    for path in HISTORIES:
        for match in re.finditer(r'"data":\s*"([A-Za-z0-9+/=]+)"', path.read_text()):
            text = base64.b64decode(match.group(1)).decode(errors="replace")
            ids = [
                x
                for x in re.findall(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])", text)
                if is_valid_national_id(x)
            ]
            # Not a run of digits inside a hex digest (statements' MACs, hashes).
            accounts = re.findall(r"(?<![0-9a-f])[0-9]{16,19}(?![0-9a-f])", text)
            assert not ids and not accounts, (path.name, json.dumps(ids + accounts))


_SKIPPED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED


def _on_a_stale_clock(history: WorkflowHistory) -> Iterator[tuple[int, WorkflowHistory]]:
    """The history once for each of its workflow tasks after the first, with that task's
    clock set back to the clock of the task before: what sdk-core does when a query makes
    a worker that has just started run the task (workflows/clock.py)."""
    started = [
        i
        for i, e in enumerate(history.events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    for before, task in itertools.pairwise(started):
        events = list(history.events)
        if any(e.event_type == _SKIPPED for e in events[before:task]):
            # The simulator moved this workflow's own clock between the two: no worker
            # ever ran a task at a clock from before a skip (its workflows are never cut
            # off from their worker), and a member ready after the skip is rightly not
            # on a posting the notice's older clock would make.
            continue
        stale = HistoryEvent()
        stale.CopyFrom(events[task])
        stale.event_time.CopyFrom(events[before].event_time)
        events[task] = stale
        yield stale.event_id, WorkflowHistory(history.workflow_id, events)


async def test_histories_replay_on_the_clock_of_the_task_before(keys: Keys) -> None:
    """No workflow's commands depend on whether an instant has passed: every recorded
    history replays with any one task run at the clock of the task before (the sdk-core
    defect of README's "A defect of the Temporal SDK", which left applications stuck for
    good in the fault harness). A wait until an instant always starts a timer, and what
    is due then happens when it fires (workflows/clock.py)."""
    failures: list[str] = []
    for path in HISTORIES:
        history = WorkflowHistory.from_json(_workflow_id(path), path.read_text())
        variants = list(_on_a_stale_clock(history))

        async def each(
            variants: list[tuple[int, WorkflowHistory]],
        ) -> AsyncIterator[WorkflowHistory]:
            for _, variant in variants:
                yield variant

        async with _replayer(keys).workflow_replay_iterator(each(variants)) as results:
            n = 0
            async for result in results:
                if result.replay_failure is not None:
                    failures.append(
                        f"{path.stem}, task started at event {variants[n][0]}: "
                        f"{str(result.replay_failure)[:300]}"
                    )
                n += 1
        assert n == len(variants)
    assert not failures, "\n".join(failures)
