"""Who sent a message, proven (R10): signed statements and sealed internal messages.

A request reaches a workflow with a **statement** in its Temporal header: which
credential sent it, the actor, role and place that credential is bound to, the
workflow and message it is for, the digest of the message's body, and until when it
holds. It is signed with the credential's key, which is derived from the
deployment's authority key and the credential's binding; so the gateway (which holds
the authority key) signs for the credential it authenticated, and a service that
holds its own credential key can sign for itself and send Temporal updates directly.
The worker (which holds the authority key too) checks every statement before a
handler sees the request, and the actor a handler sees is the statement's, never the
body's: a raw client of the namespace cannot declare a role.

Messages between aidflow's own workflows (funds and payment news) carry a **seal**: an
HMAC over sender, target, message and body with the deployment's internal key, which
only workers hold.

Pure: hashing and HMAC only, safe in the workflow sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from models.application import Actor
from models.compact import SIGNED_CONTEXT
from models.domain import Role

STATEMENT_HEADER = "aidflow-statement"
SEAL_HEADER = "aidflow-seal"
# How long a statement holds after it is made. A replayed statement is bound to one
# workflow, one message and one body (with its request id): it repeats that request,
# which answers its first answer and changes nothing (R4); the expiry is the second line.
STATEMENT_LIFETIME = timedelta(minutes=10)
# A request signal from a revoked credential is refused from this long after the
# revocation: every replay handles a signal again and must give the same answer, and the
# workers' list of revocations (refreshed every few seconds) always knows one this old.
REVOKED_SIGNAL_GRACE = timedelta(seconds=60)
# The in-process gateway's own credential: it starts seasons and signs for the tools
# that run beside the stack (demo, simulator, CLI on the server).
GATEWAY_CREDENTIAL = "gateway"
# Fields of a body that a statement stands for, not the body: the workflow takes them
# from the statement.
_ACTOR_FIELDS = ("actor", "submitted_by")

# The requests each workflow type takes from outside (updates and request signals), and
# the messages only another aidflow workflow may send it.
REQUESTS: dict[str, frozenset[str]] = {
    "ApplicationWorkflow": frozenset(
        {
            *(
                name
                for base in (
                    "decide",
                    "correct",
                    "lodge_objection",
                    "resolve_objection",
                    "withdraw",
                )
                for name in (base, f"{base}_signal")
            ),
            "record_receipt",
            "correct_account",
            "cancel",
        }
    ),
    "SeasonWorkflow": frozenset({"request_funds", "funds_arrived", "open_round"}),
    "NoticeWorkflow": frozenset({"post"}),
    "RosterWorkflow": frozenset({"decide"}),
    "DatedTasksWorkflow": frozenset({"report_done"}),
    "RecoveryWorkflow": frozenset({"cancel", "recovered"}),
    "CaseWorkflow": frozenset({"log_contact", "hand_over", "close", "approve_closure", "sign_off"}),
}
INTERNAL: dict[str, frozenset[str]] = {
    "ApplicationWorkflow": frozenset(
        {
            "funds_released",
            "payment_result",
            "notice_posted",
            "roster_decided",
        }
    ),
    # Sealed by the member's local activities (activities/notices.py).
    "NoticeWorkflow": frozenset({"join", "member_changed"}),
    "SeasonWorkflow": frozenset({"repayment_ready"}),
    "RosterWorkflow": frozenset({"member_joined", "member_left"}),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Binding(_Frozen):
    """What a credential is bound to: one actor, one role, one place."""

    credential: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    actor_id: str = Field(min_length=1, max_length=64)
    actor_name: str = Field(default="", max_length=100)
    role: Role
    place_code: str = Field(default="", max_length=32)

    def actor(self) -> Actor:
        return Actor(
            id=self.actor_id,
            name=self.actor_name or self.actor_id,
            role=self.role,
            place_code=self.place_code,
            credential=self.credential,
        )

    @staticmethod
    def of(actor: Actor, credential: str) -> Binding:
        return Binding(
            credential=credential,
            actor_id=actor.id,
            actor_name=actor.name,
            role=actor.role,
            place_code=actor.place_code,
        )


class Statement(_Frozen):
    """A credential's word that it sends this message, with this body, to this workflow.

    On the wire (:meth:`wire`) it leaves out the workflow and the body's digest: the
    receiver knows both, and the signature covers them (about 150 bytes of every
    request's event, issue 20). A statement that carries them is read as before."""

    binding: Binding
    workflow_id: str = Field(default="", max_length=400)
    message: str = Field(max_length=64)  # the update or signal name, or "start"
    digest: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    expires_at: datetime
    mac: str = Field(default="", pattern=r"^[0-9a-f]{0,64}$")

    def signed_part(self) -> bytes:
        return _canonical(self.model_dump(mode="json", exclude={"mac"})).encode()

    def wire(self) -> dict[str, Any]:
        return self.model_dump(
            mode="json", exclude={"workflow_id", "digest"}, exclude_defaults=True
        )


class Seal(_Frozen):
    """An aidflow workflow's mark on a message it sends another (on the wire without its
    target and digest, which the receiver knows and the mark covers)."""

    sender: str = Field(max_length=400)
    target: str = Field(default="", max_length=400)
    message: str = Field(max_length=64)
    digest: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    mac: str = Field(default="", pattern=r"^[0-9a-f]{0,64}$")

    def signed_part(self) -> bytes:
        return _canonical(self.model_dump(mode="json", exclude={"mac"})).encode()

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"target", "digest"}, exclude_defaults=True)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_digest(args: Sequence[Any]) -> str:
    """SHA-256 of a message's arguments as canonical JSON (keys sorted, no spaces, UTF-8),
    without the actor fields the statement stands for and without fields left at their
    defaults (so that a field added later with a default does not change the digest of a
    message already in a history); a programme's definition by its released name, which
    digests its content, whether or not it is released here (``models/compact.py``)."""
    body = []
    for arg in args:
        data = (
            arg.model_dump(mode="json", exclude_defaults=True, context=SIGNED_CONTEXT)
            if isinstance(arg, BaseModel)
            else to_jsonable_python(arg)
        )
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in _ACTOR_FIELDS}
        body.append(data)
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def credential_key(authority_key: bytes, binding: Binding) -> bytes:
    """The key a credential signs with: only the authority key's holders can make it, and
    it stands for its binding (change the role or the place and it is another key)."""
    parts = (
        "aidflow/credential/v1",
        binding.credential,
        binding.actor_id,
        binding.role.value,
        binding.place_code,
    )
    return hmac.new(authority_key, "\x00".join(parts).encode(), hashlib.sha256).digest()


# A signature is HMAC-SHA-256 cut to its first 128 bits (as RFC 4868's
# HMAC-SHA-256-128): 32 hex digits in every request's event rather than 64. A full one,
# as signed before, is checked in full.
_MAC_HEX = 32


def _mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:_MAC_HEX]


def _mac_holds(key: bytes, data: bytes, mac: str) -> bool:
    if len(mac) not in (_MAC_HEX, 64):
        return False
    full = hmac.new(key, data, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac.encode(), full[: len(mac)].encode())


def sign_statement(key: bytes, statement: Statement) -> Statement:
    """``key``: the credential's key (:func:`credential_key`)."""
    return statement.model_copy(update={"mac": _mac(key, statement.signed_part())})


def statement_problem(
    authority_key: bytes,
    statement: Statement,
    *,
    workflow_id: str,
    message: str,
    digest: str,
    now: datetime,
) -> str | None:
    """Why ``statement`` does not prove this message, or None when it does."""
    if statement.workflow_id and statement.workflow_id != workflow_id:
        return f"the statement is for workflow {statement.workflow_id}, not this one"
    if statement.message != message:
        return f"the statement is for {statement.message}, not {message}"
    if statement.digest and statement.digest != digest:
        return "the statement is for another body than the one sent"
    full = statement.model_copy(update={"workflow_id": workflow_id, "digest": digest})
    key = credential_key(authority_key, statement.binding)
    if not _mac_holds(key, full.signed_part(), statement.mac):
        said = "" if statement.workflow_id and statement.digest else " for this workflow and body"
        return (
            f"the statement of credential {statement.binding.credential} is not signed by it{said}"
        )
    if now > statement.expires_at:
        return f"the statement expired at {statement.expires_at.isoformat()}"
    return None


def make_seal(key: bytes, *, sender: str, target: str, message: str, digest: str) -> Seal:
    seal = Seal(sender=sender, target=target, message=message, digest=digest)
    return seal.model_copy(update={"mac": _mac(key, seal.signed_part())})


def seal_problem(key: bytes, seal: Seal, *, target: str, message: str, digest: str) -> str | None:
    carried = (seal.target or target, seal.message, seal.digest or digest)
    if carried != (target, message, digest):
        return "its seal is for another message"
    full = seal.model_copy(update={"target": target, "digest": digest})
    if not _mac_holds(key, full.signed_part(), seal.mac):
        return "its seal is not aidflow's" + (
            "" if seal.target and seal.digest else " for this message"
        )
    return None


def derive(secret: bytes, purpose: str) -> bytes:
    """A key of the deployment secret for one purpose (authority, internal seals)."""
    return hmac.new(secret, f"aidflow/{purpose}/v1".encode(), hashlib.sha256).digest()
