"""Every workflow's virtual clock: starts at a simulated instant, fast-forwards, and
what the server says of a workflow the simulation waited for in vain."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import google.protobuf.field_mask_pb2
import temporalio.api.common.v1
import temporalio.api.workflow.v1
import temporalio.api.workflowservice.v1
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1.time_skipping_pb2 import FastForwardPollingResult
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    UpdateWithStartStartWorkflowInput,
    WorkflowHandle,
)
from temporalio.service import RPCError

from workers.client.errors import BUSY
from workers.officials import SimulationStalled

T = TypeVar("T")

# How often a fast-forward not yet reported done is checked against the workflow's clock.
# A stall is acted on only after a minute; each check costs the server a describe, and
# at 10,000 applications a thousand fast-forwards may be waiting their turn at once.
FAST_FORWARD_CHECK_SECONDS = 10.0
FAST_FORWARD_STALLED_SECONDS = 60.0
FAST_FORWARD_TRIES = 10

# A fast-forward goes this far past its instant. The instant is often a timer's (a
# notice's automatic posting, a notice's end, a fixed date), and the server (CLI 1.9.1)
# has a defect at a fast-forward's end: when the end falls just after a timer, the timer
# fires, its workflow tasks run on past the end at the wall clock's pace, and the server
# then skips on to the workflow's next timer before it turns skipping off. Seen here: a
# member's "ask again in a day" timer, started as its posting time fired, put its clock
# a whole day ahead of the simulation, which then did everything a day late for that
# applicant and changed the season's outcome from run to run (in its history,
# TIME_SKIPPING_TRANSITIONED with the new timer's target_time and
# disabled_after_fast_forward). Past the instant by more than a loaded machine takes for
# the tasks of a timer, the fast-forward ends with the workflow idle: 3 s was not, at
# 1,000 applications (a member's clock 8.6 hours past its notice's posting, its join
# then after the posting it was planned for: the run stopped); 30 s is (the same season,
# digest for digest, and no clock ahead). Every act of the season lands 30 s after its
# planned instant, all alike (but a posting moved after a late join, in
# workers/officials/notice.py); the acts are in office hours, their deadlines at days'
# ends. (Short of the instant, with the wall clock carrying it the rest of the way, the
# timer fires with skipping off, but then a request sent at the instant can arrive
# before the timer's task has run and be refused.)
PAST_BY = timedelta(seconds=30)


def _fast_forward_config(
    ff_id: str, duration: timedelta
) -> temporalio.api.common.v1.TimeSkippingConfig:
    """Time skipping on, for one fast-forward of ``duration`` named ``ff_id``."""
    config = temporalio.api.common.v1.TimeSkippingConfig(enabled=True)
    config.fast_forward_config.id = ff_id
    config.fast_forward_config.duration.FromTimedelta(duration)
    return config


# Workflow types whose id names one run for good (no continue-as-new, no restart under
# the same id: an application is refused a second start). Their fast-forwards name the
# run: a call by workflow id alone costs the server a read of the id's current run, on
# its one SQLite connection, every time (at 1,000 applications 37,868 such reads, the
# connection's longest wait). A season continues as new, and a notice that ended is
# started again under its id: they are named by id (tests/test_simulate.py).
ONE_RUN = frozenset({"ApplicationWorkflow"})


class _StartAtSimulatedInstant(Interceptor):
    """A delayed start becomes a skipped start: the start carries a fast-forward of
    exactly its delay, so the workflow's first task runs at the intended instant."""

    def __init__(self) -> None:
        self.fast_forward_ids: dict[str, str] = {}
        # The run of each started workflow that keeps one run for good (ONE_RUN).
        self.run_ids: dict[str, str] = {}

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _StartAtOutbound(next, self)


class _StartAtOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, owner: _StartAtSimulatedInstant) -> None:
        super().__init__(next)
        self._owner = owner

    def _stamp(self, input: StartWorkflowInput | UpdateWithStartStartWorkflowInput) -> None:
        if input.start_delay is None:
            return
        ff_id = uuid.uuid4().hex
        input.time_skipping_config = _fast_forward_config(ff_id, input.start_delay)
        self._owner.fast_forward_ids[input.id] = ff_id

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._stamp(input)
        handle = await super().start_workflow(input)
        if input.workflow in ONE_RUN and handle.result_run_id:
            self._owner.run_ids[input.id] = handle.result_run_id
        return handle

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> Any:
        self._stamp(input.start_workflow_input)
        return await super().start_update_with_start_workflow(input)


class NoticeClock(Interceptor):
    """A notice is started by its first member's joining (a local activity). Its clock starts
    at the wall clock, behind every member's, with time skipping off: only a fast-forward
    moves it (``Clocks.advance``; the tests' ``Case.advance_to``), and skipping is off
    again once that is over. The driver moves it to each posting: its own timer posts
    it. A notice started with skipping on would jump to its next timer whenever it is
    idle: to its first posting as soon as its first member joined, and over a posting's
    end and its 30 quiet days, to its end, while its members' clocks were still weeks
    behind (a 10,000-application season stopped so, twice, at simulated 2 September).
    ``skip_when_idle`` starts it so (``tests/test_simulate.py`` shows the difference)."""

    def __init__(self, *, skip_when_idle: bool = False) -> None:
        self.skip_when_idle = skip_when_idle

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _NoticeClockOutbound(next, self.skip_when_idle)


class _NoticeClockOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, skip_when_idle: bool) -> None:
        super().__init__(next)
        self._skip_when_idle = skip_when_idle

    def _configure(self, start: StartWorkflowInput | UpdateWithStartStartWorkflowInput) -> None:
        if start.workflow == "NoticeWorkflow":
            start.time_skipping_config = temporalio.api.common.v1.TimeSkippingConfig(
                enabled=self._skip_when_idle
            )

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._configure(input)
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> Any:
        self._configure(input.start_workflow_input)
        return await super().start_update_with_start_workflow(input)


class Clocks:
    """Every workflow's virtual clock as the driver knows it; moved only forward."""

    past_by = PAST_BY

    def __init__(self, client: Client, starts: _StartAtSimulatedInstant) -> None:
        self._client = client
        self._starts = starts
        self._at: dict[str, tuple[datetime, float]] = {}  # id -> (virtual instant, monotonic then)
        self.fast_forwards = 0
        self.restarted = 0  # fast-forwards asked again (see advance)
        self.busy = 0  # fast-forwards refused by a busy server, asked again

    def now(self, workflow_id: str) -> datetime:
        at, mono = self._at[workflow_id]
        return at + timedelta(seconds=time.monotonic() - mono)

    async def started(self, workflow_id: str, at: datetime) -> None:
        """Wait until the start's fast-forward reached ``at``."""
        ff_id = self._starts.fast_forward_ids.pop(workflow_id, None)
        reached = await self._poll(workflow_id, ff_id) if ff_id is not None else None
        self._at[workflow_id] = (reached or at, time.monotonic())

    async def track(self, workflow_id: str) -> None:
        """Know the clock of a workflow the driver did not start (a notice, started by
        its first member's joining): as the server keeps it."""
        if workflow_id not in self._at:
            handle = self._client.get_workflow_handle(workflow_id)
            self._at[workflow_id] = (await self._clock_of(handle), time.monotonic())

    async def advance(self, workflow_id: str, to: datetime, *, busy_tries: int = 0) -> bool:
        """Move the workflow's clock to ``to`` (and ``PAST_BY``); False if it has finished."""
        delta = to + PAST_BY - self.now(workflow_id)
        if delta <= timedelta(milliseconds=1):
            return True
        handle = self._client.get_workflow_handle(workflow_id)
        forward = asyncio.ensure_future(self._fast_forward(workflow_id, delta))
        # The dev server's time skipping is experimental (CLI 1.9.1). Seen here, rarely
        # (none in the last run of 1,000 applications): a fast-forward whose workflow
        # reached the instant was never reported done, or one never started (the clock
        # kept wall-clock pace), and the run stalled. So a fast-forward not done is checked
        # against the workflow's clock every few seconds; one that has not moved for a
        # minute is asked again for what is left (at least a millisecond, which
        # completes one that reached its instant unannounced).
        checked_at, clock_then = time.monotonic(), self.now(workflow_id)
        moved_at, tries = checked_at, 0
        try:
            while True:
                done, _ = await asyncio.wait({forward}, timeout=FAST_FORWARD_CHECK_SECONDS)
                if done:
                    reached = forward.result()
                    break
                clock, now = await self._clock_of(handle), time.monotonic()
                if (clock - clock_then).total_seconds() > 1.5 * (now - checked_at):
                    moved_at = now  # skipping, not just keeping wall-clock pace
                checked_at, clock_then = now, clock
                # Under load a fast-forward may wait its turn for a long time, and a
                # workflow's clock may show the instant before the timers on the way
                # have fired: only one not done after a minute, and that has not moved
                # for a minute, is asked again.
                if now - moved_at < FAST_FORWARD_STALLED_SECONDS:
                    continue
                tries += 1
                if tries > FAST_FORWARD_TRIES:
                    seen = await diagnose(self._client, workflow_id, "clock stalled")
                    raise SimulationStalled(
                        f"{workflow_id}: a fast-forward to {to.isoformat()} did not "
                        f"complete in {tries} tries (its clock: {clock.isoformat()})\n{seen}"
                    )
                forward.cancel()
                self.restarted += 1
                left = max(to + PAST_BY - clock, timedelta(milliseconds=1))
                forward = asyncio.ensure_future(self._fast_forward(workflow_id, left))
                moved_at = now
        except RPCError as e:
            if e.status not in BUSY:
                return False  # closed: nothing to move
            # The server under load, not a closed workflow: again, from the clock as the
            # server keeps it (a call past its timeout may have started its fast-forward
            # all the same: the driver's estimate would move it that far again).
            if busy_tries >= FAST_FORWARD_TRIES:
                seen = await diagnose(self._client, workflow_id, "server busy")
                raise SimulationStalled(
                    f"{workflow_id}: a fast-forward to {to.isoformat()} refused by a busy "
                    f"server {busy_tries + 1} times ({e.status.name}: {e.message})\n{seen}"
                ) from None
            self.busy += 1
            await asyncio.sleep(1.0)
            with contextlib.suppress(RPCError):
                self._at[workflow_id] = (await self._clock_of(handle), time.monotonic())
            return await self.advance(workflow_id, to, busy_tries=busy_tries + 1)
        finally:
            forward.cancel()
        self.fast_forwards += 1
        # From the instant the server says it reached: an estimate that lagged would
        # make the next fast-forward overshoot its instant by the lag.
        self._at[workflow_id] = (reached or to + PAST_BY, time.monotonic())
        return reached is not None

    async def ahead(self, workflow_ids: list[str], limit: int = 32) -> dict[str, timedelta]:
        """The workflows whose clock the server shows more than a minute ahead of this
        driver's: each one moved without the simulation (a skipping defect), and from
        then on did everything late. A closed workflow's clock stops; the driver's goes
        on at the wall clock's pace, so a clock that stopped early is never taken for one
        that ran ahead."""
        gate = asyncio.Semaphore(limit)

        async def one(wf: str) -> tuple[str, timedelta]:
            async with gate:
                try:
                    server = await self._clock_of(self._client.get_workflow_handle(wf))
                except RPCError:
                    return wf, timedelta(0)
            return wf, server - self.now(wf)

        found = await asyncio.gather(*(one(wf) for wf in workflow_ids if wf in self._at))
        return {wf: d for wf, d in found if d > timedelta(minutes=1)}

    async def _clock_of(self, handle: WorkflowHandle[Any, Any]) -> datetime:
        """The workflow's virtual clock, as the server keeps it. Asked of the service
        directly: ``handle.describe()`` also decodes the memo and search attributes,
        which made these checks a quarter of the simulator's CPU at 10,000 applications."""
        req = temporalio.api.workflowservice.v1.DescribeWorkflowExecutionRequest(
            namespace=self._client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=handle.id),
        )
        resp = await self._client.workflow_service.describe_workflow_execution(req)
        info = resp.workflow_extended_info.time_skipping_info
        return info.current_time.ToDatetime(tzinfo=UTC)

    async def _fast_forward(self, workflow_id: str, delta: timedelta) -> datetime | None:
        """One fast-forward of ``delta`` from wherever the workflow's clock is: the
        instant it reached, or None if the workflow closed first. (The SDK's
        ``TimeSkipper.fast_forward`` says only whether it completed.)"""
        ff_id = str(uuid.uuid4())
        config = _fast_forward_config(ff_id, delta)
        await self._client.workflow_service.update_workflow_execution_options(
            temporalio.api.workflowservice.v1.UpdateWorkflowExecutionOptionsRequest(
                namespace=self._client.namespace,
                workflow_execution=temporalio.api.common.v1.WorkflowExecution(
                    workflow_id=workflow_id, run_id=self._starts.run_ids.get(workflow_id, "")
                ),
                workflow_execution_options=temporalio.api.workflow.v1.WorkflowExecutionOptions(
                    time_skipping_config=config
                ),
                update_mask=google.protobuf.field_mask_pb2.FieldMask(
                    paths=["time_skipping_config"]
                ),
                identity=self._client.identity,
            ),
            retry=True,
        )
        return await self._poll(workflow_id, ff_id)

    async def _poll(self, workflow_id: str, ff_id: str) -> datetime | None:
        """Until the fast-forward ``ff_id`` is over: the instant it reached, or None if
        the workflow closed first."""
        req = temporalio.api.workflowservice.v1.PollWorkflowExecutionTimeSkippingRequest(
            namespace=self._client.namespace,
            workflow_execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=workflow_id, run_id=self._starts.run_ids.get(workflow_id, "")
            ),
            fast_forward_id=ff_id,
        )
        while True:
            resp = await self._client.workflow_service.poll_workflow_execution_time_skipping(
                req, retry=True
            )
            result = resp.fast_forward_polling_result
            if (
                result
                == FastForwardPollingResult.FAST_FORWARD_POLLING_RESULT_FAST_FORWARD_COMPLETED
            ):
                return resp.fast_forward_info.target_time.ToDatetime(tzinfo=UTC)
            if result == FastForwardPollingResult.FAST_FORWARD_POLLING_RESULT_FAST_FORWARD_FAILED:
                if "fast_forward_id does not match" in resp.failed_reason:
                    # Overridden by a later one (a restart of this one): not "closed".
                    raise RuntimeError(f"{workflow_id}: {resp.failed_reason}")
                return None


async def diagnose(
    client: Client, workflow_id: str, context: str, keep_in: Path | None = None
) -> str:
    """What the server says of a workflow the simulation waited for in vain: status,
    virtual clock and fast-forward, the pending workflow task and activities, and the
    last events of its history. With ``keep_in``, its whole history is written there
    (JSON, as the Web UI downloads it): the server of a stopped run is gone with it, and
    a stop at 10,000 applications comes after half an hour."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        raw = (await handle.describe()).raw_description
        ts = raw.workflow_extended_info.time_skipping_info
        history = await handle.fetch_history()
    except RPCError as err:
        return f"  {workflow_id}: {context}; describe failed: {err}"
    tail = [
        f"{e.event_id}:{EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')}"
        for e in history.events
    ][-8:]
    kept = ""
    if keep_in is not None:
        path = keep_in / f"{workflow_id.replace('/', '_')}.json"
        await asyncio.to_thread(_write, path, history.to_json())
        kept = f", history in {path}"
    task = (
        f"attempt {raw.pending_workflow_task.attempt}"
        if raw.HasField("pending_workflow_task")
        else "none"
    )
    activities = [
        f"{a.activity_type.name} (attempt {a.attempt}"
        + (f", {a.last_failure.message[:80]}" if a.HasField("last_failure") else "")
        + ")"
        for a in raw.pending_activities
    ]
    return (
        f"  {workflow_id}: {context}; "
        f"status {raw.workflow_execution_info.status}, "
        f"clock {ts.current_time.ToDatetime(tzinfo=UTC).isoformat()}, "
        f"fast-forward {ts.effective_config.fast_forward_config.id or '-'}, "
        f"pending workflow task {task}, "
        f"pending activities {', '.join(activities) or 'none'}, "
        f"last events {' '.join(tail)}{kept}"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
