"""The fuzzer (issue 16) in every CI run: 500 seeded bad requests through the HTTP API,
the project's client, a service's own Temporal messages, the command line and a raw
Temporal client; in every class none accepted, each refused with a reason (a signal's
refusal seen in its trail), no failed workflow task on any workflow of the queue, no
crash; every application still takes a good request, and R9 holds after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.fuzz import CLASSES, Touch, charge, run_fuzz

pytestmark = pytest.mark.devserver


async def test_500_bad_requests_are_all_refused(tmp_path: Path) -> None:
    summary = await run_fuzz(500, seed=1, work=tmp_path)
    # The per-class table, for the log (shown with -s, or with a failure).
    print(f"{summary['seconds']} s", json.dumps(summary["classes"], ensure_ascii=False, indent=1))
    assert summary["tried"] == 500
    assert set(summary["classes"]) == set(CLASSES)  # every class was tried
    for name, counts in summary["classes"].items():
        assert counts["tried"] == counts["refused"], (name, counts)
        assert (counts["wrongly_accepted"], counts["task_failures"], counts["crashes"]) == (
            0,
            0,
            0,
        ), (name, counts)
    assert (summary["wrongly_accepted"], summary["task_failures"], summary["crashes"]) == (
        0,
        0,
        0,
    ), summary
    assert summary["refused"] == 500
    # Every workflow of the queue was looked at: applications, their season and notice,
    # and the fuzzed starts.
    assert summary["workflows_scanned"] > 10, summary["workflows_scanned"]
    # R9 after it: no full identity or account number in any history, table or export.
    assert summary["r9"]["clean"], summary["r9"]
    apps = summary["workflows_still_taking_good_requests"].split("/")
    assert apps[0] == apps[1] and int(apps[0]) >= 3


def test_a_task_failure_is_charged_to_the_last_class_before_it() -> None:
    t0 = datetime(2026, 12, 2, tzinfo=UTC)
    sent = [
        Touch("raw_undecodable_signal", "wf", t0),
        Touch("http_nulls", "wf", t0 + timedelta(seconds=1)),
        Touch("raw_forged_internal", "wf", t0 + timedelta(seconds=2)),
    ]
    failed = [
        t0 - timedelta(seconds=1),  # before anything was sent: the set-up's
        t0 + timedelta(milliseconds=1500),
        t0 + timedelta(seconds=2),
        t0 + timedelta(seconds=9),
    ]
    charged, before_any = charge(failed, sent)
    assert dict(charged) == {"http_nulls": 1, "raw_forged_internal": 2}
    assert before_any == 1
