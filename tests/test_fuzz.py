"""The fuzzer (issue 16) in every CI run: 500 seeded bad requests through the HTTP API,
the command line and a raw Temporal client; none accepted, no failed workflow task, no
crash, every touched application still takes a good request, and R9 holds after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz import CLASSES, run_fuzz

pytestmark = pytest.mark.devserver


async def test_500_bad_requests_are_all_refused(tmp_path: Path) -> None:
    summary = await run_fuzz(500, seed=1, work=tmp_path)
    assert summary["tried"] == 500
    assert set(summary["classes"]) == set(CLASSES)  # every class was tried
    assert (summary["wrongly_accepted"], summary["task_failures"], summary["crashes"]) == (
        0,
        0,
        0,
    ), summary
    assert summary["refused"] == 500
    # R9 after it: no full identity or account number in any history, table or export.
    assert summary["r9"]["clean"], summary["r9"]
    apps = summary["workflows_still_taking_good_requests"].split("/")
    assert apps[0] == apps[1] and int(apps[0]) >= 3
