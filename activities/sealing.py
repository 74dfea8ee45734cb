"""A Temporal client whose update-with-start and signals carry aidflow's seal.

An application joins a workflow that many share from an activity (a workflow cannot
start another that outlives it): its roster by update-with-start, its notice by a
signal, starting it first where it is not running; and tells it what changed by a
signal from a local activity (cheaper in its history than a signal from the workflow).
The joined workflow refuses a start, a join or a member's signal without aidflow's
internal seal (workflows/authority.py); this client seals each, naming the activity's
workflow as the sender.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from models.authority import SEAL_HEADER, body_digest, make_seal


def sealed_client(client: Client, internal_key: bytes) -> Client:
    config = client.config()
    config["interceptors"] = [*config["interceptors"], _Sealing(internal_key, client)]
    return Client(**config)


class _Sealing(Interceptor):
    def __init__(self, key: bytes, client: Client) -> None:
        self._key = key
        self._converter = client.data_converter.payload_converter

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _SealingOutbound(next, self)

    def header(self, target: str, message: str, args: Any) -> dict[str, Any]:
        """The seal of a message from the activity's workflow."""
        sender = activity.info().workflow_id or "aidflow"
        seal = make_seal(
            self._key, sender=sender, target=target, message=message, digest=body_digest(args)
        )
        return {SEAL_HEADER: self._converter.to_payloads([seal.wire()])[0]}


class _SealingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, root: _Sealing) -> None:
        super().__init__(next)
        self._root = root

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = {
            **start.headers,
            **self._root.header(start.id, "start", start.args),
        }
        update.headers = {
            **update.headers,
            **self._root.header(start.id, update.update, update.args),
        }
        return await super().start_update_with_start_workflow(input)

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.headers = {**input.headers, **self._root.header(input.id, "start", input.args)}
        return await super().start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.headers = {
            **input.headers,
            **self._root.header(input.id, input.signal, input.args),
        }
        await super().signal_workflow(input)
