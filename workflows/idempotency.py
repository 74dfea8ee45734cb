"""R4 for every workflow that takes requests: a request id stands for one request for
good. A repeat gets its first answer; the id used again for another request (another
body, another kind) is refused, naming what it was first used for."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.steps.base import Refused

with workflow.unsafe.imports_passed_through():
    from models.application import request_key


def seen(request_keys: dict[str, str], req: Any) -> bool:
    """True for a repeat of a request already taken; refused for another request under
    the same id; False for a new one (the caller then takes it)."""
    known = request_keys.get(req.request_id)
    if known is None:
        return False
    if known != request_key(req):
        raise Refused(
            f"request id {req.request_id} was already used for another request "
            f"({known.split(':')[0]}); send a new request id"
        )
    return True
