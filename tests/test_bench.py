"""The benchmark's parts: what a real application's history did, counted; the fixed
floor the bare baseline (b) runs; the notice periods (b) takes from (a)."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.baseline import floor_script
from bench.run import notice_seconds, pct, poll_after, script_of

PAID = Path(__file__).parent / "histories" / "paid@baseline.json"


def test_baseline_script_of_a_paid_application() -> None:
    history = WorkflowHistory.from_json("paid", PAID.read_text())
    steps, counts = script_of(history)
    assert counts["updates"] == 3 == steps.count("update")  # village, township, county
    # The funds' release (no word of the request: issue 20) and the payment's result
    # (what was sent with it); no word of its notices' automatic postings (it keeps
    # their time itself).
    assert counts["signals"] == 2 == steps.count("signal")
    # No activity of its own: its joins of its notices, its words to them and its trail
    # are local activities.
    assert counts["activities"] == 0 == steps.count("activity")
    # The trail's writes, one a workflow task at least, with its joins of its notices
    # (its schedule comes in its input; its projections are computed in the workflow,
    # from the calendar table; the notices' periods ask the calendar, 2027 being
    # provisional in the shipped data).
    assert counts["local_activities"] == steps.count("local") >= counts["workflow_tasks"]
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


def test_the_baseline_is_the_floor_of_the_process() -> None:
    """(b) is fixed (issue 20): three decisions, the waits from each review's decision to
    its notice's end as (a)'s application had them (the same calendar), the funds and
    the payment; nothing read from what (a) happens to do today."""
    history = WorkflowHistory.from_json("paid", PAID.read_text())
    village, township = notice_seconds(history, 3.0)
    # Each at least a notice's period (5 working days); the recorded application was
    # decided by its village months before the window closed and its notice was posted.
    assert township >= 5 * 86400 and village > township
    assert notice_seconds(WorkflowHistory("none", []), 3.0) == (21.0, 21.0)
    assert floor_script(village, township).steps == [
        "update",
        f"timer:{village:.3f}",
        "update",
        f"timer:{township:.3f}",
        "update",
        "signal",
        "signal",
    ]


def test_cpu_accounting_sees_a_busy_child() -> None:
    """The burst's CPU figures (bench/burst.py): a child that spins for a while has used
    CPU, and the machine was busy at least that much."""
    import subprocess
    import sys
    from pathlib import Path

    from bench.run import Proc, Procs, machine_busy_seconds

    busy0 = machine_busy_seconds()
    spin = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
        "print('spun', flush=True)\ntime.sleep(10)"
    )
    popen = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE)
    child = Proc(popen, Path("/dev/null"))
    try:
        assert popen.stdout is not None and popen.stdout.readline() == b"spun\n"
        used = Procs([child]).cpu_seconds()
        assert 0.25 <= used < 2.0  # clock ticks: 10 ms each
        assert machine_busy_seconds() - busy0 >= 0.25
    finally:
        child.stop()


def test_a_process_s_cpu_and_a_gone_one() -> None:
    """One reader for both the benchmarks and the simulator: a gone process is NaN in a
    benchmark's table (``Proc.cpu_seconds``) and 0 in the simulator's total."""
    import math
    import os
    import subprocess

    from bench.run import Proc
    from workers.simulate.server_load import process_cpu_seconds

    sum(i * i for i in range(200_000))  # some CPU of its own to read
    assert process_cpu_seconds(os.getpid()) > 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert process_cpu_seconds(gone.pid) == 0.0
    assert math.isnan(Proc(gone, Path("/dev/null")).cpu_seconds())
