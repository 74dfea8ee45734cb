"""A workflow's request built from what a service sent: its body, the caller's credential
as its actor (R10: a body never names one), and its request id (the body's, or the
``Idempotency-Key`` header's, or a new one; the two given and different are refused)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from pydantic import BaseModel

from workers.gateway.auth import Caller
from workers.gateway.problems import Problem

T = TypeVar("T", bound=BaseModel)


def request_id(body: BaseModel, key: str | None) -> str:
    given = getattr(body, "request_id", None)
    if given and key and given != key:
        raise Problem(422, f"request_id {given} and Idempotency-Key {key} differ")
    return str(given or key or uuid.uuid4().hex)


def build(model: type[T], body: BaseModel, who: Caller, key: str | None) -> T:
    data = body.model_dump(exclude_unset=True, exclude={"request_id"})
    return model.model_validate({**data, "request_id": request_id(body, key), "actor": who.actor})
