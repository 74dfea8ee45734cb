"""How an application takes a request (R4): a repeated request id gets its first answer,
an id used again for another request is refused naming the first; a validator checks
before anything is written; a request sent as a signal (for services that cannot
wait) is checked the same way, and a refusal is recorded in the trail as refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.steps import Refused

with workflow.unsafe.imports_passed_through():
    from models.application import SYSTEM, ApplicationInput, RequestResult, request_key
    from models.intake import amount_due

if TYPE_CHECKING:
    from workflows.application import ApplicationWorkflow


def repeat(app: ApplicationWorkflow, req: Any) -> RequestResult | None:
    """R4: the first answer if this is a repeat of an earlier request; a request id
    used again for another request (another body, or another kind of request) is
    refused, naming the first: it answered "accepted" and silently did nothing."""
    first = app.results.get(req.request_id)
    if first is None:
        return None
    if app.request_keys.get(req.request_id) != request_key(req):
        raise Refused(
            f"request id {req.request_id} was already used for another request "
            f"({app.request_keys.get(req.request_id, '?').split(':')[0]}, answered: {first.message}); "
            "send a new request id"
        )
    return first


def begin(app: ApplicationWorkflow, req: Any) -> RequestResult | None:
    """The first answer to a repeat; else the request id is taken for this request."""
    first = repeat(app, req)
    if first is None:
        app.request_keys[req.request_id] = request_key(req)
    return first


def answer(
    app: ApplicationWorkflow, req: Any, apply: Callable[[Any], RequestResult]
) -> RequestResult:
    first = begin(app, req)
    if first is not None:
        return first
    result = apply(req)
    app.publish()
    return result


def validate(app: ApplicationWorkflow, req: Any, check: Callable[[Any], None]) -> None:
    if repeat(app, req) is not None:
        return
    if app.closed:
        raise Refused(f"the application is closed: {app.terminal}")
    check(req)


def via_signal(
    app: ApplicationWorkflow,
    name: str,
    req: Any,
    check: Callable[[Any], None],
    apply: Callable[[Any], RequestResult],
) -> None:
    if req is None:  # a signal sent without its request: nothing to apply, but said
        app.record(
            "refused",
            SYSTEM,
            f"请求被拒绝 / request refused: {name} carried no request",
            {"request": name},
        )
        app.publish()
        return
    try:
        validate(app, req, check)  # a repeat passes, and answer() gives its first answer
    except Refused as refusal:
        if req.request_id not in app.results:  # a new id: the refusal is its answer
            app.request_keys[req.request_id] = request_key(req)
            app.results[req.request_id] = RequestResult(
                request_id=req.request_id,
                accepted=False,
                stage=app.stage,
                message=refusal.message,
            )
        app.record(
            "refused",
            req.actor,
            f"请求被拒绝 / request refused: {refusal.message}",
            {
                "request_id": req.request_id,
                "request": type(req).__name__,
                "reason": refusal.message,
            },
        )
        app.publish()
        return
    answer(app, req, apply)


def check_amount(inp: ApplicationInput) -> None:
    """The amount is the programme's, whoever started the workflow (R10, intake on the
    server side): an input with another amount does not proceed."""
    try:
        due = amount_due(inp.programme, inp.season, inp.applicant)
    except ValueError as e:
        raise ApplicationError(
            f"refused to run: {e}", type="Unproven", non_retryable=True
        ) from None
    if inp.amount_cny != due:
        raise ApplicationError(
            f"refused to run: amount_cny {inp.amount_cny} is not the programme's {due} CNY "
            f"({inp.programme.code} {inp.season})",
            type="Unproven",
            non_retryable=True,
        )
