"""How a request aidflow will not carry out is reported: one line naming every wrong field."""

from __future__ import annotations

from temporalio.client import (
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from models.intake import FieldProblem

# RPC failures of a server under load or restarting: the question or request is asked
# again, not taken as an answer (the gateway's 503 for a request, R4 makes it safe). A
# call that outlives its timeout comes back CANCELLED, "Timeout expired" (the SDK's gRPC
# layer): one ended a 10,000-application simulation while 67 village notices posted at
# once (most likely a query of a notice's status, asked without a retry).
BUSY = frozenset(
    {
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


class Refused(Exception):
    """A request aidflow will not carry out; ``str()`` is the one-line reason."""

    def __init__(
        self,
        message: str,
        *,
        problems: list[FieldProblem] | None = None,
        existing: str | None = None,
        kind: str = "refused",
    ) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.existing = existing
        # "refused" (the request breaks a rule), "forbidden" (who asks may not: role,
        # place, four eyes), "not_found" (no such workflow), "unavailable" (Temporal did
        # not answer in time: the same request may be sent again): the gateway's 409,
        # 403, 404, 503.
        self.kind = kind


def refused_by_workflow(error: WorkflowUpdateFailedError) -> Refused:
    """A validator's or handler's refusal, as the one-line reason it gave."""
    cause = error.cause
    if not isinstance(cause, ApplicationError):
        return Refused(str(cause))
    forbidden = cause.type in ("RequestForbidden", "Unproven")
    return Refused(cause.message, kind="forbidden" if forbidden else "refused")
