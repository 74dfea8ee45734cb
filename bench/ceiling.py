"""The simulator's server, measured alone (issue 20): how fast the dev server with
per-workflow time skipping, as ``aidflow simulate`` starts it, does the three things a
simulated season is made of, with workflows that do nothing else.

    .venv/bin/python -m bench.ceiling --workflows 200 --each 20

- *starts*: ``--workflows`` workflows started with time skipping on, as the simulator
  starts each application (a fast-forward of its start delay, polled until done);
- *workflow tasks*: each workflow takes ``--each`` updates, one after another, its own
  driver waiting for each answer (one workflow task an update, as a decision is), all
  workflows at once;
- *fast-forwards*: each workflow's clock moved an hour ``--each`` times, one after
  another (an update of its options, then polled until the server reports it done, as
  ``workers/simulate/clocks.py`` does), all workflows at once.

The workflow is the least a workflow can be (a counter; no sandbox, no payload but an
int) and its worker runs in this process, so what is measured is the server's rate. For
each phase: the rate, and the CPU its two processes used (the server and this one): a
server that cannot go faster while neither process fills a core is waiting on its one
SQLite connection and one history shard (the dev server's fixed settings, which its
flags do not change). From the rates and a simulated season's own counts (its workflow
tasks and fast-forwards, ``--season`` a ``aidflow simulate --json`` result), the least
time that server needs for the season, if it did nothing but these.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from workers.simulate.server_load import dev_server_pid, process_cpu_seconds

TASK_QUEUE = "ceiling"


@workflow.defn
class Counter:
    """Counts its updates until told to stop."""

    def __init__(self) -> None:
        self.n = 0
        self.stop = False

    @workflow.update
    def add(self) -> int:
        self.n += 1
        return self.n

    @workflow.signal
    def done(self) -> None:
        self.stop = True

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.stop)
        return self.n


@dataclass
class Phase:
    name: str
    operations: int
    seconds: float
    server_cpu_s: float
    driver_cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.operations / self.seconds, 1),
            "server_cores_busy": round(self.server_cpu_s / self.seconds, 2),
            "driver_cores_busy": round(self.driver_cpu_s / self.seconds, 2),
            "server_cpu_ms_each": round(1000 * self.server_cpu_s / self.operations, 2),
        }


async def _measure(
    name: str, server_pid: int, operations: int, run: Callable[[], Awaitable[None]]
) -> Phase:
    s0, d0, t0 = process_cpu_seconds(server_pid), time.process_time(), time.monotonic()
    await run()
    seconds = time.monotonic() - t0
    return Phase(
        name,
        operations,
        seconds,
        process_cpu_seconds(server_pid) - s0,
        time.process_time() - d0,
    )


async def measure(workflows: int, each: int, data_dir: Path) -> dict[str, Any]:
    from workers.embedded import child_pids
    from workers.simulate.clocks import Clocks, _StartAtSimulatedInstant
    from workers.simulate.stack import start_time_skipping_server

    before = child_pids()
    env = await start_time_skipping_server(data_dir / "temporal.db")
    server_pid = dev_server_pid(child_pids() - before)
    assert server_pid is not None, "the dev server's process is not among this one's children"
    starts = _StartAtSimulatedInstant()
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        interceptors=[starts],
    )
    clocks = Clocks(client, starts)
    ids = [f"ceiling-{uuid.uuid4().hex[:8]}-{i}" for i in range(workflows)]
    try:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[Counter],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_tasks=64,
        ):

            async def start_all() -> None:
                async def one(wf: str) -> None:
                    await client.start_workflow(
                        Counter.run, id=wf, task_queue=TASK_QUEUE, start_delay=timedelta(hours=1)
                    )
                    await clocks.started(wf, datetime.now(UTC) + timedelta(hours=1))

                await asyncio.gather(*(one(wf) for wf in ids))

            async def updates() -> None:
                async def chain(wf: str) -> None:
                    handle = client.get_workflow_handle(wf)
                    for _ in range(each):
                        await handle.execute_update(Counter.add)

                await asyncio.gather(*(chain(wf) for wf in ids))

            async def fast_forwards() -> None:
                async def chain(wf: str) -> None:
                    for _ in range(each):
                        await clocks.advance(wf, clocks.now(wf) + timedelta(hours=1))

                await asyncio.gather(*(chain(wf) for wf in ids))

            phases = [
                await _measure("starts", server_pid, workflows, start_all),
                await _measure("workflow_tasks", server_pid, workflows * each, updates),
                await _measure("fast_forwards", server_pid, workflows * each, fast_forwards),
            ]
            # Every update was its own workflow task: checked from one history.
            history = await client.get_workflow_handle(ids[0]).fetch_history()
            completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            tasks = sum(1 for e in history.events if e.event_type == completed)
            await asyncio.gather(
                *(client.get_workflow_handle(wf).signal(Counter.done) for wf in ids)
            )
    finally:
        await env.shutdown()
    return {
        "workflows": workflows,
        "each": each,
        "tasks_in_first_history": tasks,
        "phases": {p.name: p.as_dict() for p in phases},
    }


def least_season_seconds(result: dict[str, Any], season: dict[str, Any]) -> dict[str, Any]:
    """What ``season``'s paid applications alone cost the measured server: their starts,
    workflow tasks and fast-forwards at the rates and the server CPU measured (no
    notices, season, batches, activities, queries or visibility reads: a floor, not an
    estimate), against what 2 cores give in the season's target time."""
    paid = season["outcomes"].get("paid", 0)
    tasks = season["cost_per_paid_application"]["workflow_tasks"] * paid
    ff = season["fast_forwards"] * paid / max(1, sum(season["outcomes"].values()))
    phases = result["phases"]
    counts = {"starts": paid, "workflow_tasks": tasks, "fast_forwards": ff}
    seconds = {k: n / phases[k]["per_second"] for k, n in counts.items()}
    cpu = {k: n * phases[k]["server_cpu_ms_each"] / 1000 for k, n in counts.items()}
    return {
        "paid_applications": paid,
        "their_operations": {k: round(n) for k, n in counts.items()},
        "least_wall_seconds_at_the_measured_rates": round(sum(seconds.values()), 1),
        "server_cpu_seconds_at_least": round(sum(cpu.values()), 1),
        "season_wall_seconds": season["wall_seconds"],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--each", type=int, default=20)
    parser.add_argument("--season", type=Path, help="an `aidflow simulate --json` result")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidflow-ceiling-") as tmp:
        result = asyncio.run(measure(args.workflows, args.each, Path(tmp)))
    result["machine"] = (
        f"{os.cpu_count()} cores, {_cpu_model()}, Python {platform.python_version()}"
    )
    if args.season:
        result["season"] = least_season_seconds(result, json.loads(args.season.read_text()))
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
