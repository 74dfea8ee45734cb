"""Credentials of offices and services (R10): create, list, revoke, and authenticate.

An API key reads ``aidflow.<credential id>.<key>``; the key is the credential's
signing key (``models.authority.credential_key``), so a service that holds its API
key can also sign its own statements and send Temporal updates directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.authority import Binding, credential_key
from models.domain import ROLE_LEVEL, Role
from store.tables import CredentialRow

PREFIX = "aidflow"


class Unauthenticated(Exception):
    """No credential, or one that is unknown, malformed, revoked or wrong."""


def _encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def binding_of(row: CredentialRow) -> Binding:
    return Binding(
        credential=row.id,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        role=Role(row.role),
        place_code=row.place_code,
    )


def create(
    engine: Engine,
    authority_key: bytes,
    *,
    actor_id: str,
    actor_name: str,
    role: Role,
    place_code: str,
    note: str = "",
) -> tuple[CredentialRow, str]:
    """A new credential and its API key (shown once: it is not stored)."""
    if role in ROLE_LEVEL and not place_code:
        raise ValueError(f"place_code: an office of role {role.value} holds a place")
    row = CredentialRow(
        id=f"c-{secrets.token_hex(6)}",
        actor_id=actor_id,
        actor_name=actor_name,
        role=role.value,
        place_code=place_code,
        key_sha256="",
        note=note,
        created_at=datetime.now(UTC),
    )
    binding = binding_of(row)  # validates the binding's bounds
    token = f"{PREFIX}.{row.id}.{_encode(credential_key(authority_key, binding))}"
    row.key_sha256 = hashlib.sha256(token.encode()).hexdigest()
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row, token


def listing(engine: Engine) -> list[CredentialRow]:
    with Session(engine) as session:
        return list(session.exec(select(CredentialRow).order_by(col(CredentialRow.created_at))))


def revocations(engine: Engine) -> dict[str, datetime]:
    """Every revoked credential and when it was revoked (UTC)."""
    with Session(engine) as session:
        rows = session.exec(
            select(CredentialRow.id, CredentialRow.revoked_at).where(
                col(CredentialRow.revoked_at).is_not(None)
            )
        )
        return {
            cid: (at if at.tzinfo else at.replace(tzinfo=UTC)) for cid, at in rows if at is not None
        }


def revoke(engine: Engine, credential_id: str) -> CredentialRow:
    with Session(engine) as session:
        row = session.get(CredentialRow, credential_id)
        if row is None:
            raise KeyError(credential_id)
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            session.add(row)
            session.commit()
            session.refresh(row)
        return row


def authenticate(engine: Engine, authority_key: bytes, token: str) -> Binding:
    """The binding of a valid, unrevoked API key; :class:`Unauthenticated` otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise Unauthenticated("the API key is malformed (aidflow.<id>.<key>)")
    with Session(engine) as session:
        row = session.get(CredentialRow, parts[1])
    if row is None:
        raise Unauthenticated("unknown credential")
    digest = hashlib.sha256(token.encode()).hexdigest()
    expected = _encode(credential_key(authority_key, binding_of(row)))
    if not (
        hmac.compare_digest(digest, row.key_sha256) and hmac.compare_digest(parts[2], expected)
    ):
        raise Unauthenticated("the API key is wrong")
    if row.revoked_at is not None:
        raise Unauthenticated(f"credential {row.id} was revoked at {row.revoked_at.isoformat()}")
    return binding_of(row)
