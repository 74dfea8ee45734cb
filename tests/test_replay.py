"""Determinism: recorded histories of real runs must replay on the current workflow code.

A change that would break running applications fails here. When a change is
meant to alter behaviour, guard it with ``workflow.patched`` (or add a new
workflow type) so these still replay, then record new histories beside them:
``AIDFLOW_RECORD_HISTORIES=1 pytest tests/test_application_workflow.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_recorded_histories() -> None:
    names = {p.stem for p in HISTORIES}
    expected = {
        "happy_path_to_awaiting_funds",
        "rejected_at_village_review",
        "objection_upheld",
        "paid",
        "season_with_two_batches",
    }
    # Before and after the patches of issue 7 (local-activity persistence, signals together).
    assert expected <= names
    assert {f"{n}@v2" for n in expected} <= names
    # v4: applications compute notices and projections from the schedule's table of days.
    assert {f"{n}@v4" for n in expected} <= names
    assert "awaiting_funds_from_the_calendar_table@v4" in names  # no calendar activities
    # A season that continued as new: the run that handed over, and the one that took over.
    assert {"season_before_continuing_as_new@v4", "season_continued_as_new@v4"} <= names
    # v5: signals to many in chunks of 100, in the season and the payout batch.
    assert {
        "season_with_two_batches@v5",
        "payout_batch_with_a_return@v5",
        "season_continued_as_new@v5",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
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
            accounts = re.findall(r"(?<![0-9])[0-9]{16,19}(?![0-9])", text)
            assert not ids and not accounts, (path.name, json.dumps(ids + accounts))
