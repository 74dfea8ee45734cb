"""The sdk-core defect the fault harness counts apart (README, "A defect of the Temporal
SDK"), on a history it left: recorded in a 1,000-application run of the harness
(2026-12-03). The application's join answered at 08:02:13 with its notice's automatic
time 08:00:18, already past; the next task started a timer of 30.571786 s, which is
08:00:18 less 07:59:47.428, the clock of the task before: the workflow had been run on
the join's answer to answer a query, at the old clock. Replayed, the same code tells the
notice its time has come instead, and the replay fails where the history cancels that
timer.

This file is not a baseline of aidflow's workflows (it is not in ``tests/histories``'s
top level, which every run replays): it pins the defect's shape and the harness's
classifier of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.faults import defect_shape, replayer_for
from bench.run import SECRET
from store.sealing import Keys

HISTORY = Path(__file__).parent / "histories" / "upstream" / "sdk-defect-stale-clock.json"
WORKFLOW_ID = "county-subsidy-demo/2026/341225/n7slwpcvyehsrva4"
KILL = (
    datetime(2026, 12, 3, 8, 1, 40, tzinfo=UTC),  # the worker that ran task 15 killed
    datetime(2026, 12, 3, 8, 2, 10, tzinfo=UTC),  # and the next one polling
)


def _history() -> WorkflowHistory:
    return WorkflowHistory.from_json(WORKFLOW_ID, HISTORY.read_text(encoding="utf-8"))


async def test_the_defect_history_does_not_replay_where_the_stale_timer_is_cancelled() -> None:
    replayer = replayer_for(Keys(bytes.fromhex(SECRET)))
    result = await replayer.replay_workflow(_history(), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "Signal external WF machine does not handle this event: HistoryEvent(id: 35" in str(
        result.replay_failure
    )


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
