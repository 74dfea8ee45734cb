"""The benchmark's baseline follows a real application's history step for step."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.run import pct, poll_after, script_of

PAID = Path(__file__).parent / "histories" / "paid@baseline.json"


def test_baseline_script_of_a_paid_application() -> None:
    history = WorkflowHistory.from_json("paid", PAID.read_text())
    steps, counts = script_of(history)
    assert counts["updates"] == 3 == steps.count("update")  # village, township, county
    # Funds requested and released, payment sent and its result; each notice's posting.
    assert counts["signals"] == 6 == steps.count("signal")
    # Joining its two notices; the trail is written by local activities.
    assert counts["activities"] == 2 == steps.count("activity")
    assert counts["local_activities"] == steps.count("local") > 20
    timers = [s for s in steps if s.startswith(("timer:", "bgtimer:"))]
    assert len(timers) == counts["timers"]
    # The steps wait for the postings and notice ends; fixed-date watchers run beside.
    assert any(s.startswith("timer:") for s in timers)
    assert all(float(s.split(":", 1)[1]) >= 0 for s in timers)
    assert counts["workflow_tasks"] < 30 and counts["history_events"] == len(history.events)


def test_percentiles_and_polling() -> None:
    assert pct([], 0.5) != pct([], 0.5)  # nan: no samples
    xs = [float(i) for i in range(1, 101)]
    assert pct(xs, 0.5) == 51.0 and pct(xs, 0.99) == 100.0
    assert poll_after(None) == 1.0
