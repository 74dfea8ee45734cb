"""Who calls (R10): a credential per office or service, bound to an actor, a role and a place.

How a caller proves who it is is one small interface, :class:`CallerAuthentication`;
:class:`ApiKeyAuthenticator` is its implementation today (``Authorization: Bearer
aidflow.<id>.<key>``, or ``X-API-Key``). An mTLS client certificate or an OIDC token
from the county's identity provider would be another class with the same two methods,
handed to ``create_app``. The actor of every request is the credential's; a body never
names it. The one anonymous request, a public objection to a notice, is rate-limited
per client address and size-limited (:class:`PublicObjections`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
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


class CallerAuthentication(Protocol):
    """How the gateway learns who calls: the proven binding (actor, role, place) of the
    credential a request carries. The gateway decides what that binding may do; an
    implementation only proves it."""

    def presented(self, request: Request) -> bool:
        """Whether the request carries a credential of this kind at all (a public
        objection without one is anonymous)."""
        ...

    def caller(self, request: Request) -> Caller:
        """The credential's binding; :class:`Problem` 401 when there is none, or it is
        malformed, wrong or revoked."""
        ...


class ApiKeyAuthenticator:
    """API keys stored hashed (``store/credentials.py``), re-read on every request so a
    revoked one is refused at once."""

    def __init__(self, engine: Engine, authority_key: bytes) -> None:
        self._engine = engine
        self._key = authority_key

    def token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("x-api-key")

    def presented(self, request: Request) -> bool:
        return bool(self.token(request))

    def caller(self, request: Request) -> Caller:
        token = self.token(request)
        if not token:
            raise Problem(401, "no credential: send Authorization: Bearer <API key>")
        try:
            return Caller(authenticate(self._engine, self._key, token))
        except Unauthenticated as e:
            raise Problem(401, str(e)) from None


# The name the API-key class had before the interface (tests/test_demo.py builds one).
Authenticator = ApiKeyAuthenticator


class PublicObjections:
    """An objector from the public: the credential if one is sent, else anonymous —
    limited per client address, and known by a keyed hash of it (never the address)."""

    def __init__(self, authentication: CallerAuthentication, authority_key: bytes) -> None:
        self._auth = authentication
        self._key = authority_key
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._objections = RateLimitItemPerMinute(OBJECTIONS_PER_MINUTE)

    async def caller(self, request: Request) -> Caller:
        if self._auth.presented(request):
            return self._auth.caller(request)
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


# How a credential is sent, for the OpenAPI document (components.securitySchemes).
# auto_error=False: these only describe the headers; the authentication above decides,
# so who is let in is the same with or without them.
BEARER = HTTPBearer(
    scheme_name="apiKeyBearer",
    bearerFormat="aidflow.<credential id>.<key>",
    description="办公室或服务的 API 密钥 / an office's or service's API key",
    auto_error=False,
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKeyHeader",
    description="同一 API 密钥，另一请求头 / the same API key in another header",
    auto_error=False,
)
# An operation where a credential is optional (a public objection, a signed dashboard
# link): the empty requirement is OpenAPI's "or none".
OPTIONAL_CREDENTIAL: dict[str, Any] = {"security": [{}]}


def office(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _api_key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> Caller:
    """The dependency of every operation an office or service calls."""
    auth: CallerAuthentication = request.app.state.auth
    return auth.caller(request)


async def anyone(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _api_key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> Caller:
    """The dependency of a public objection: a credential if sent, else anonymous."""
    public: PublicObjections = request.app.state.public
    return await public.caller(request)


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


# A place's code shares the first digits of the one it lies in: a county's six, a
# township's nine, a village's all twelve; a province's two.
PLACE_DIGITS = {Level.PROVINCE: 2, Level.COUNTY: 6, Level.TOWNSHIP: 9, Level.VILLAGE: 12}


def within_callers_place(who: Caller, what: str, **codes: str | None) -> Level:
    """The caller's level, for a county's, township's or village's credential whose place
    holds every code given (by name: ``township=…, village=…``); refused (403) otherwise,
    naming each code outside it. ``what``: what such a caller does, for the refusal."""
    level = ROLE_LEVEL.get(who.role)
    if level not in PLACE_DIGITS:
        raise Problem(403, f"role {who.role.value} {what}")
    place, digits = who.binding.place_code, PLACE_DIGITS[level]
    outside = [
        f"{name} {code}"
        for name, code in codes.items()
        if code is not None and code[:digits] != place[:digits]
    ]
    if outside:
        raise Problem(
            403, f"{who.binding.credential} does not hold {', '.join(outside)} (holds {place})"
        )
    return level
