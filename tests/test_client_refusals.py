"""Why a request did not reach its application, as the gateway says it (issue 20's fault
harness: while the server restarted, a decision was refused as "no application", which
is neither true nor a reason to give up). Temporal not answering is "unavailable" (503:
send the same request again; its request id makes the repeat safe, R4); only a workflow
the server does not know is "no application" (404)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from models.application import DecisionRequest
from models.domain import DecisionKind
from tests.support import village_official
from workers.client import AidflowClient, Refused
from workers.gateway.problems import refusal_status


class _Handle:
    def __init__(self, update: RPCStatusCode, describe: RPCStatusCode | None) -> None:
        self.update, self.describe_fails = update, describe

    async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
        raise RPCError("update failed", self.update, b"")

    async def describe(self) -> Any:
        if self.describe_fails is None:
            return type("Described", (), {"status": None})()
        raise RPCError("describe failed", self.describe_fails, b"")


def _client(update: RPCStatusCode, describe: RPCStatusCode | None) -> AidflowClient:
    api = AidflowClient.__new__(AidflowClient)
    api.handle = lambda workflow_id: _Handle(update, describe)  # type: ignore[method-assign,assignment,return-value]
    return api


def _decision() -> DecisionRequest:
    return DecisionRequest(
        request_id="r-1",
        actor=village_official(),
        stage="village_review",
        decision=DecisionKind.APPROVE,
    )


@pytest.mark.parametrize(
    ("update", "describe", "kind", "status", "words"),
    [
        # The server restarting: neither the update nor the question reaches it.
        (RPCStatusCode.UNAVAILABLE, RPCStatusCode.UNAVAILABLE, "unavailable", 503, "again"),
        # The workflow is running, the update timed out (a worker busy or killed).
        (RPCStatusCode.DEADLINE_EXCEEDED, None, "unavailable", 503, "again"),
        # The server does not know the workflow.
        (RPCStatusCode.NOT_FOUND, RPCStatusCode.NOT_FOUND, "not_found", 404, "no application"),
        # Anything else is the request's own fault.
        (RPCStatusCode.INVALID_ARGUMENT, None, "refused", 409, "update failed"),
    ],
)
async def test_a_request_that_did_not_arrive_says_why(
    update: RPCStatusCode,
    describe: RPCStatusCode | None,
    kind: str,
    status: int,
    words: str,
) -> None:
    with pytest.raises(Refused) as refused:
        await _client(update, describe).decide("county-subsidy/2027/341225/x", _decision())
    assert refused.value.kind == kind and refusal_status(refused.value) == status
    assert words in str(refused.value)
    if kind == "unavailable":
        assert "no application" not in str(refused.value)
