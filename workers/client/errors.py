"""How a request aidflow will not carry out is reported: one line naming every wrong field."""

from __future__ import annotations

from temporalio.client import (
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError

from models.intake import FieldProblem


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
