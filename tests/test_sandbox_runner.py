"""workers/sandbox.py answers the SDK's serialization-context questions directly; every
answer must equal the one the SDK's own sandbox path gives, for every kind of command
that carries payloads (activity, local activity, child workflow, external signal)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as clock
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox._runner import _Instance

with workflow.unsafe.imports_passed_through():
    from workers.sandbox import (
        DirectContextInstance,
        DirectContextSandboxRunner,
        SandboxMode,
        workflow_runner,
    )


@activity.defn
def echo(text: str) -> str:
    return text


@workflow.defn
class Child:
    def __init__(self) -> None:
        self._heard: list[str] = []

    @workflow.signal
    def hear(self, text: str) -> None:
        self._heard.append(text)

    @workflow.run
    async def run(self, text: str) -> str:
        await workflow.wait_condition(lambda: bool(self._heard))
        return text + self._heard[0]


@workflow.defn
class EveryKindOfCommand:
    @workflow.run
    async def run(self, text: str) -> str:
        a = await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=10)
        )
        b = await workflow.execute_local_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=10)
        )
        child = await workflow.start_child_workflow(
            Child.run, "c", id=f"{workflow.info().workflow_id}-child"
        )
        await workflow.get_external_workflow_handle(child.id).signal(Child.hear, "!")
        return a + b + await child


class CheckingInstance(DirectContextInstance):
    # Class-level: the SDK creates the instances; the test reads what they saw.
    mismatches: ClassVar[list[str]] = []
    asked: ClassVar[Counter[str]] = Counter()

    def get_serialization_context(self, command_info: Any) -> Any:
        direct = super().get_serialization_context(command_info)
        via_sandbox = _Instance.get_serialization_context(self, command_info)
        kind = type(direct).__name__
        if getattr(direct, "is_local", False):
            kind += " (local)"
        if getattr(direct, "workflow_id", "").endswith("-child"):
            kind += " (child)"
        CheckingInstance.asked[kind] += 1
        if direct != via_sandbox:
            CheckingInstance.mismatches.append(f"{command_info}: {direct!r} != {via_sandbox!r}")
        return direct

    def get_external_store_context(self, command_info: Any) -> Any:
        direct = super().get_external_store_context(command_info)
        via_sandbox = _Instance.get_external_store_context(self, command_info)
        CheckingInstance.asked["external store"] += 1
        if direct != via_sandbox:
            CheckingInstance.mismatches.append(f"{command_info}: {direct!r} != {via_sandbox!r}")
        return direct


class CheckingRunner(DirectContextSandboxRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return CheckingInstance(det, self.runner_class, self.restrictions)


async def test_direct_answers_equal_the_sandbox_path(ts_env: WorkflowEnvironment) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        ts_env.client,
        task_queue=queue,
        workflows=[EveryKindOfCommand, Child],
        activities=[echo],
        activity_executor=concurrent.futures.ThreadPoolExecutor(2),
        workflow_runner=CheckingRunner(),
    ):
        result = await ts_env.client.execute_workflow(
            EveryKindOfCommand.run, "x", id=f"kinds-{queue}", task_queue=queue
        )
    assert result == "xxc!"
    assert CheckingInstance.mismatches == []
    asked = CheckingInstance.asked
    for kind in (
        "ActivitySerializationContext",
        "ActivitySerializationContext (local)",
        "WorkflowSerializationContext (child)",
        "WorkflowSerializationContext",
        "external store",
    ):
        assert asked[kind] > 0, f"never asked for {kind}: {dict(asked)}"


# A module-level object of this module: the same object in every workflow when the
# module is shared, a fresh one in each when the sandbox re-imports it.
MARKER = object()


@workflow.defn
class WhichMarker:
    @workflow.run
    async def run(self) -> int:
        return id(MARKER)


@workflow.defn
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return str(clock.datetime.now())  # what workflow code must never do


async def _run(env: WorkflowEnvironment, mode: SandboxMode, wf: Any, n: int) -> list[Any]:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[wf],
        workflow_runner=workflow_runner(mode, shared=__name__),
        max_cached_workflows=0,  # every task a new instance
    ):
        out = []
        for i in range(n):
            handle = await env.client.start_workflow(
                wf.run, id=f"{mode}-{i}-{queue}", task_queue=queue
            )
            try:
                out.append(await asyncio.wait_for(handle.result(), 3))
            except TimeoutError:
                out.append("task failed")  # a refused call fails the task, retried forever
                await handle.terminate()
        return out


async def test_a_shared_sandbox_imports_workflow_code_once(ts_env: WorkflowEnvironment) -> None:
    strict = await _run(ts_env, "strict", WhichMarker, 3)
    shared = await _run(ts_env, "shared", WhichMarker, 3)
    assert len(set(strict)) == 3 and id(MARKER) not in strict
    assert set(shared) == {id(MARKER)}  # the worker's own module, no copy
    # What the shared mode gives up (tests/test_architecture.py checks it from the source):
    # the strict sandbox refuses a clock read at run time; the shared one lets it through.
    assert await _run(ts_env, "strict", ReadsTheClock, 1) == ["task failed"]
    assert (await _run(ts_env, "shared", ReadsTheClock, 1))[0] != "task failed"
