"""Who calls (R10): an API key per office or service, bound to an actor, a role and a place.

``Authorization: Bearer aidflow.<id>.<key>`` (or ``X-API-Key``). The actor of every
request is the credential's; a body never names it. The one anonymous request, a
public objection to a notice, is rate-limited per client address and size-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.engine import Engine

from models.application import Actor
from models.authority import Binding
from models.domain import ROLE_LEVEL, Level, Role
from store.credentials import Unauthenticated, authenticate
from workers.gateway.problems import Problem

PUBLIC_CREDENTIAL = "public"
# A public objection: this many per client address and minute, and this many bytes.
OBJECTIONS_PER_MINUTE = 5
OBJECTION_MAX_BYTES = 16_384


@dataclass(frozen=True)
class Caller:
    binding: Binding

    @property
    def actor(self) -> Actor:
        return self.binding.actor()

    @property
    def role(self) -> Role:
        return self.binding.role

    def level(self) -> Level | None:
        return ROLE_LEVEL.get(self.binding.role)


class Authenticator:
    def __init__(self, engine: Engine, authority_key: bytes) -> None:
        self._engine = engine
        self._key = authority_key
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._objections = RateLimitItemPerMinute(OBJECTIONS_PER_MINUTE)

    def token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("x-api-key")

    def caller(self, request: Request) -> Caller:
        token = self.token(request)
        if not token:
            raise Problem(401, "no credential: send Authorization: Bearer <API key>")
        try:
            return Caller(authenticate(self._engine, self._key, token))
        except Unauthenticated as e:
            raise Problem(401, str(e)) from None

    async def public(self, request: Request) -> Caller:
        """An objector from the public: a credential if one is sent, else anonymous —
        limited per client address, and known by a hash of it (never the address)."""
        if self.token(request):
            return self.caller(request)
        size = int(request.headers.get("content-length") or 0)
        if size > OBJECTION_MAX_BYTES or len(await request.body()) > OBJECTION_MAX_BYTES:
            raise Problem(413, f"an objection is at most {OBJECTION_MAX_BYTES} bytes")
        address = _network(request.client.host if request.client else "unknown")
        if not self._limiter.hit(self._objections, "objection", address):
            raise Problem(
                429,
                f"at most {OBJECTIONS_PER_MINUTE} objections a minute from one address "
                "(an IPv6 address: from one /64 network)",
            )
        # Keyed: an unkeyed hash of an IPv4 address is reversed in minutes.
        who = hmac.new(self._key, f"aidflow-public/{address}".encode(), hashlib.sha256).hexdigest()[
            :12
        ]
        return Caller(
            Binding(
                credential=PUBLIC_CREDENTIAL,
                actor_id=f"public:{who}",
                actor_name="公众 / member of the public",
                role=Role.PUBLIC,
            )
        )


def _network(host: str) -> str:
    """The unit of the objection limit: an IPv4 address, or an IPv6 address's /64 (one
    subscriber holds a whole /64 and could otherwise change address per request)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
