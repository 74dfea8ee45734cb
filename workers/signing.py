"""The gateway's side of R10: every start, update and request signal it sends carries a
statement signed for the actor it acts for (see ``models/authority.py``).

A Temporal client interceptor, so that the typed client API stays as it is: the
statement is made from the message itself (its ``actor``, an application's
``submitted_by``; a season is started by the gateway) and the credential behind the
actor (``Actor.credential``; the gateway's own when none). Only code that holds the
deployment's authority key can sign; a client of the namespace without it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.converter import PayloadConverter

from models.application import SYSTEM, Actor
from models.authority import (
    GATEWAY_CREDENTIAL,
    STATEMENT_HEADER,
    STATEMENT_LIFETIME,
    Binding,
    Statement,
    body_digest,
    credential_key,
    sign_statement,
)

# Where the workflows' clocks are skipped ahead of the wall clock (the time-skipping test
# server, the simulator's seasons a year ahead), a statement made now must still hold
# when a workflow's clock reads it.
SKIPPED_CLOCK_LIFETIME = timedelta(days=3660)


class Signer:
    """Makes statements with the authority key, for any binding (the gateway's power)."""

    def __init__(self, authority_key: bytes, lifetime: timedelta = STATEMENT_LIFETIME) -> None:
        self._key = authority_key
        self.lifetime = lifetime

    def statement(
        self, binding: Binding, *, workflow_id: str, message: str, args: Sequence[Any]
    ) -> Statement:
        return sign_statement(
            credential_key(self._key, binding),
            Statement(
                binding=binding,
                workflow_id=workflow_id,
                message=message,
                digest=body_digest(args),
                expires_at=datetime.now(UTC) + self.lifetime,
            ),
        )

    def credential_key(self, binding: Binding) -> bytes:
        """The key a service signs its own statements with (handed out once, with its
        credential)."""
        return credential_key(self._key, binding)


def acting_actor(args: Sequence[Any]) -> Actor | None:
    """Who a message is sent for: its ``actor``, ``submitted_by`` or ``opened_by``; None
    when none."""
    if not args:
        return None
    first = args[0]
    actor = (
        getattr(first, "actor", None)
        or getattr(first, "submitted_by", None)
        or getattr(first, "opened_by", None)  # a case is opened by its office
    )
    return actor if isinstance(actor, Actor) else None


class ServiceCredential:
    """A service's own credential: it signs its messages itself and may then send Temporal
    updates and signals directly (with the namespace's credentials as well). Whatever
    actor its bodies name, the workflow sees the credential's."""

    def __init__(self, binding: Binding, key: bytes, lifetime: timedelta = STATEMENT_LIFETIME):
        self.binding = binding
        self._key = key
        self.lifetime = lifetime

    def statement(self, workflow_id: str, message: str, args: Sequence[Any]) -> Statement:
        return sign_statement(
            self._key,
            Statement(
                binding=self.binding,
                workflow_id=workflow_id,
                message=message,
                digest=body_digest(args),
                expires_at=datetime.now(UTC) + self.lifetime,
            ),
        )


class SigningInterceptor(Interceptor):
    """Signs for the actor each message names (the gateway, with a :class:`Signer`) or as
    one credential whatever the message names (a service, with its
    :class:`ServiceCredential`)."""

    def __init__(self, signer: Signer | ServiceCredential, converter: PayloadConverter) -> None:
        self._signer = signer
        self._converter = converter

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Signing(next, self)

    def header(self, workflow_id: str, message: str, args: Sequence[Any]) -> dict[str, Payload]:
        if isinstance(self._signer, ServiceCredential):
            statement = self._signer.statement(workflow_id, message, args)
        else:
            actor = acting_actor(args) or SYSTEM  # a season is started by the gateway
            # A start is the gateway's own word (intake ran here); a request, the word of
            # the credential it authenticated.
            credential = GATEWAY_CREDENTIAL if message == "start" else actor.credential
            binding = Binding.of(actor, credential or GATEWAY_CREDENTIAL)
            statement = self._signer.statement(
                binding, workflow_id=workflow_id, message=message, args=args
            )
        return {STATEMENT_HEADER: self._converter.to_payloads([statement.wire()])[0]}


class _Signing(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, root: SigningInterceptor) -> None:
        super().__init__(next)
        self._root = root

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.headers = {**input.headers, **self._root.header(input.id, "start", input.args)}
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        input.headers = {**input.headers, **self._root.header(input.id, input.update, input.args)}
        return await super().start_workflow_update(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        if acting_actor(input.args) is not None:  # a request signal
            input.headers = {
                **input.headers,
                **self._root.header(input.id, input.signal, input.args),
            }
        await super().signal_workflow(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = {**start.headers, **self._root.header(start.id, "start", start.args)}
        update.headers = {
            **update.headers,
            **self._root.header(start.id, update.update, update.args),
        }
        return await super().start_update_with_start_workflow(input)
