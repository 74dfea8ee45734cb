"""Signals to many go out in workflow tasks of at most SMALL_CHUNK each (a county-sized list in
one activation exceeded the SDK's deadlock limit)."""

from __future__ import annotations

import uuid

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.messaging as messaging


@workflow.defn
class Listener:
    def __init__(self) -> None:
        self.heard = 0

    @workflow.signal
    def hear(self, _: int) -> None:
        self.heard += 1

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.heard > 0)
        return self.heard


@workflow.defn
class Announcer:
    @workflow.run
    async def run(self, targets: list[str]) -> int:
        await messaging.signal_each("hear", [(t, 1) for t in targets])
        return len(targets)


def tasks_with_signals(history: WorkflowHistory) -> list[int]:
    """How many signals each workflow task of the history sent."""
    counts: list[int] = []
    for e in history.events:
        name = e.WhichOneof("attributes") or ""
        if name == "workflow_task_completed_event_attributes":
            counts.append(0)
        elif name == "signal_external_workflow_execution_initiated_event_attributes":
            counts[-1] += 1
    return [c for c in counts if c]


async def test_signals_go_out_in_chunks(
    ts_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messaging, "CHUNK", 2)  # unsandboxed: the workflow sees this module
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    client = ts_env.client
    async with Worker(
        client,
        task_queue=queue,
        workflows=[Listener, Announcer],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        targets = [f"listener-{queue}-{i}" for i in range(5)]
        for t in targets:
            await client.start_workflow(Listener.run, id=t, task_queue=queue)
        announcer = await client.start_workflow(
            Announcer.run, targets, id=f"announcer-{queue}", task_queue=queue
        )
        assert await announcer.result() == 5
        for t in targets:
            assert await client.get_workflow_handle(t).result() == 1
        assert tasks_with_signals(await announcer.fetch_history()) == [2, 2, 1]
