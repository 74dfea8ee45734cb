"""The baseline of the benchmark: bare Temporal workflows with no domain logic.

A ``BareApplication`` follows a script. The benchmark's (b) is a fixed one, the floor
of the county subsidy's process (issue 20; ``floor_script``): a start, its three
decisions as updates, two notice timers, the funds' and the payment's messages as
signals, the end; not a mirror of whatever aidflow does today, so that what aidflow
costs on top of the process shows. What this costs is the ceiling of this machine's
Temporal server and SDK. (``bench/run.py`` can still derive a script from a real
application's history, ``script_of``, to count what it did.)

    python -m bench.baseline worker --address 127.0.0.1:7233 --task-queue bare
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import signal
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from workers.sandbox import workflow_runner


@dataclass
class Script:
    # One entry per step: "update", "signal", "activity", "local", "timer:<seconds>" (the
    # step waits for it) or "bgtimer:<seconds>" (runs beside the steps, like a watcher).
    steps: list[str] = field(default_factory=list)


@dataclass
class BareStatus:
    next: str  # what the workflow waits for: "update", "signal", or "other"
    waiting_until: datetime | None
    done: bool


def floor_script(village_notice_s: float, township_notice_s: float) -> Script:
    """(b), fixed: what the county subsidy's process itself needs, and nothing else. The
    two waits run from each review's decision to its notice's end (the posting at its
    rule's time, then the period): the calendar the process keeps, whoever runs it."""
    return Script(
        steps=[
            "update",  # the village committee's review
            f"timer:{village_notice_s:.3f}",  # until the village notice ends
            "update",  # the township's review
            f"timer:{township_notice_s:.3f}",  # until the township notice ends
            "update",  # the county education bureau's approval
            "signal",  # the funds
            "signal",  # the payment
        ]
    )


@activity.defn
def noop(step: int) -> int:
    return step


@workflow.defn
class BareApplication:
    def __init__(self) -> None:
        self._next = "other"
        self._until: datetime | None = None
        self._updates = 0
        self._signals = 0
        self._done = False

    @workflow.run
    async def run(self, script: Script) -> int:
        expected_updates = expected_signals = 0
        watchers: list[asyncio.Task[None]] = []  # like aidflow's fixed-date watchers
        for i, step in enumerate(script.steps):
            if step == "update":
                expected_updates += 1
                self._next = "update"
                await workflow.wait_condition(lambda n=expected_updates: self._updates >= n)  # type: ignore[misc]
            elif step == "signal":
                expected_signals += 1
                self._next = "signal"
                await workflow.wait_condition(lambda n=expected_signals: self._signals >= n)  # type: ignore[misc]
            elif step == "activity":
                self._next = "other"
                await workflow.execute_activity(
                    noop, i, start_to_close_timeout=timedelta(seconds=30)
                )
            elif step == "local":
                self._next = "other"
                await workflow.execute_local_activity(
                    noop, i, start_to_close_timeout=timedelta(seconds=10)
                )
            elif step.startswith("bgtimer:"):
                watchers.append(
                    asyncio.create_task(
                        workflow.sleep(timedelta(seconds=float(step.split(":", 1)[1])))
                    )
                )
            elif step.startswith("timer:"):
                delay = timedelta(seconds=float(step.split(":", 1)[1]))
                self._next = "other"
                self._until = workflow.now() + delay
                await workflow.sleep(delay)
                self._until = None
        for w in watchers:
            w.cancel()
        self._done = True
        return len(script.steps)

    @workflow.update
    async def decide(self, request_id: str) -> str:
        self._updates += 1
        self._next = "other"
        return request_id

    @decide.validator
    def _check(self, request_id: str) -> None:
        if not request_id:
            raise ValueError("request_id is required")

    @workflow.signal
    def event(self, _: str) -> None:
        self._signals += 1
        self._next = "other"

    @workflow.query
    def status(self) -> BareStatus:
        return BareStatus(next=self._next, waiting_until=self._until, done=self._done)


async def run_worker(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same worker options as aidflow's production worker (workers/worker.py): the
    # same sandbox, its workflow module shared; 16 activity threads, at most 16 workflow
    # tasks at once. The class from its module's own name, not __main__'s (``-m``): the
    # name the sandbox passes through.
    from bench import baseline

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[baseline.BareApplication],
        workflow_runner=workflow_runner("shared", baseline.__name__),
        activities=[noop],
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=16),
        max_concurrent_activities=16,
        max_concurrent_workflow_tasks=16,
    ):
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", default="bare")
    args = parser.parse_args()
    asyncio.run(run_worker(args.address, args.task_queue))


if __name__ == "__main__":
    main()
