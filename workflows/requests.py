"""How an application takes a request (R4): a repeated request id gets its first answer,
an id used again for another request is refused naming the first; a validator checks
before anything is written; a request sent as a signal (for services that cannot
wait) is checked the same way, and a refusal is recorded in the trail as refused.

Also the plumbing the workflow's handlers share, kept out of ``application.py`` so that
it reads as the process: the submission's trail entry and its amount check, withdrawal
(the one request no step runner owns), an unproven signal's refusal, and the internal
messages forwarded to the current step."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.steps import Refused
from workflows.steps.base import AuthorityProblem, check_place, office_notice, own_applicant

with workflow.unsafe.imports_passed_through():
    from models.application import (
        SYSTEM,
        ApplicationInput,
        CancellationRequest,
        RequestResult,
        WithdrawalRequest,
        request_key,
    )
    from models.domain import Level, Role, Stage
    from models.intake import amount_due
    from models.records import NotificationIntent
    from models.steps import StepBase

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
    app: ApplicationWorkflow,
    req: Any,
    check: Callable[[Any], None],
    apply: Callable[[Any], RequestResult],
) -> RequestResult:
    """The first answer to a repeat; else checked once more on the state it is applied
    to (a request applied before it in the same workflow task may have settled the step:
    its validator ran before that), and applied."""
    first = begin(app, req)
    if first is not None:
        return first
    validate(app, req, check)
    result = apply(req)
    app.publish()
    return result


async def look_up(app: ApplicationWorkflow, req: Any, check: Callable[[Any], None]) -> None:
    """Before a withdrawal or a cancellation is applied: checked on what the workflow
    holds (a request refused by that asks the store nothing), then what the step must
    look up to check it (whether it is on a funds request), then checked again on what
    is known now (the workflow may have moved on meanwhile). A refusal is raised: an
    update fails with it, as with a validator's; a signal's handler passes it over and
    via_signal records it."""
    if repeat(app, req) is not None:
        return
    validate(app, req, check)
    await app.runner.look_up_before_closing()
    validate(app, req, check)


async def closing(
    app: ApplicationWorkflow,
    req: Any,
    check: Callable[[ApplicationWorkflow, Any], None],
    close: Callable[[ApplicationWorkflow, Any], RequestResult],
) -> RequestResult:
    """A withdrawal or a cancellation, as an update: looked up, checked, applied."""
    await look_up(app, req, lambda r: check(app, r))
    return answer(app, req, lambda r: check(app, r), lambda r: close(app, r))


def validate(app: ApplicationWorkflow, req: Any, check: Callable[[Any], None]) -> None:
    if repeat(app, req) is not None:
        return
    if app.closed:
        raise Refused(f"the application is closed: {app.terminal}")
    if app.runner.settled():
        raise Refused(
            f"{app.stage} is decided already; the application is moving on to its next "
            "step: send the request again in a moment"
        )
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
    answer(app, req, check, apply)


def check_amount(inp: ApplicationInput) -> None:
    """The amount is the programme's, whoever started the workflow (R10, intake on the
    server side): an input with another amount does not proceed."""
    try:
        due = amount_due(inp.programme, inp.season, inp.applicant)
    except ValueError as e:
        raise ApplicationError(
            f"refused to run: {e}", type="Unproven", non_retryable=True
        ) from None
    loan = inp.loan
    if inp.programme.loan is not None and loan is not None:
        # A loan's amount is the family's request, within the limits intake checked.
        low, fees = inp.programme.loan.minimum_cny, loan.tuition_cny + loan.lodging_cny
        if inp.amount_cny == loan.requested_cny and low <= inp.amount_cny <= min(due, fees):
            return
        raise ApplicationError(
            f"refused to run: amount_cny {inp.amount_cny} is not a loan the programme "
            f"allows: {low} to {min(due, fees)} CNY, as requested ({loan.requested_cny})",
            type="Unproven",
            non_retryable=True,
        )
    if inp.amount_cny != due:
        raise ApplicationError(
            f"refused to run: amount_cny {inp.amount_cny} is not the programme's {due} CNY "
            f"({inp.programme.code} {inp.season})",
            type="Unproven",
            non_retryable=True,
        )


def received(app: ApplicationWorkflow) -> None:
    """The submission, the first entry of the trail: what was received, from whom (and,
    for a paper form, which office dated it)."""
    inp, programme = app.inp, app.programme
    app.record(
        "submitted",
        inp.submitted_by,
        f"申请已受理 / application received ({programme.name_zh}, {inp.season})"
        + (
            f"；经{inp.consent.relation}{inp.consent.given_by}同意代为申请 / submitted for the "
            f"family with the consent of {inp.consent.given_by} ({inp.consent.relation})"
            if inp.consent is not None
            else ""
        ),
        {
            "programme_version": programme.version,
            "amount_cny": inp.amount_cny,
            "submitted_at": inp.submitted_at.isoformat(),
            **(
                {
                    "received_by": inp.received_by.id,
                    "received_by_credential": inp.received_by.credential,
                }
                if inp.received_by is not None
                else {}
            ),
            **(
                {
                    "consent_given_by": inp.consent.given_by,
                    "consent_relation": inp.consent.relation,
                    "consent_given_at": inp.consent.given_at.isoformat(),
                    "consent_how": inp.consent.how,
                }
                if inp.consent is not None
                else {}
            ),
        },
        notify=[NotificationIntent(audience="applicant", template="submitted")],
    )


def entered(app: ApplicationWorkflow, step: StepBase) -> None:
    """A step entered: in the trail, and the office it waits for told."""
    app.record(
        "stage_entered",
        SYSTEM,
        f"进入{step.label_zh} / entered {step.label_en}",
        {"step_index": app.index},
        notify=office_notice(app.inp.places, step, "work_waiting")
        if step.tells_office_on_entry
        else None,
    )


def check_withdrawal(app: ApplicationWorkflow, req: WithdrawalRequest) -> None:
    """Only the applicant withdraws; the current step says whether it still may."""
    if req.actor.role is not Role.APPLICANT:
        raise Refused("only the applicant may withdraw an application")
    # An applicant's credential stands for one student (R10): another's proves nothing here.
    if req.actor.id != own_applicant(app.inp):
        raise Refused(
            AuthorityProblem(
                f"{req.actor.id} is not this application's applicant: only the applicant "
                "withdraws it"
            )
        )
    app.runner.check_withdrawal(req)


def withdraw(app: ApplicationWorkflow, req: WithdrawalRequest) -> RequestResult:
    stage = app.stage
    app.runner.closing()
    app.terminal = Stage.WITHDRAWN
    app.record(
        "withdrawn",
        req.actor,
        f"申请人撤回申请 / withdrawn by the applicant in {stage}",
        {"request_id": req.request_id, "reason": req.reason, "stage": stage},
    )
    return app.result(req.request_id, f"withdrawn in {stage}")


def check_cancellation(app: ApplicationWorkflow, req: CancellationRequest) -> None:
    """The programme's cancelling office, at the application's county, with a reason;
    not while the payment is under way (cancelled once paid: the recovery list)."""
    role = app.programme.cancelled_by
    if role is None:
        raise Refused(f"{app.programme.code} grants are not cancelled: no office cancels them")
    problems = check_place(app.inp.places, req.actor, role, Level.COUNTY, "cancel the grant")
    if not req.reason.strip():
        problems.append("reason is required to cancel a grant")
    request = app.payment.funds_request
    if not app.runner.step.withdrawable or request is not None:
        on = f" (on funds request {request})" if request else ""
        problems.append(
            f"the application is in {app.stage}{on}: its payment is under way; cancel it "
            "once paid (its amount then goes onto the recovery list)"
        )
    if problems:
        raise Refused(problems)


def cancel(app: ApplicationWorkflow, req: CancellationRequest) -> RequestResult:
    stage = app.stage
    app.runner.closing()
    app.terminal = Stage.CANCELLED
    app.record(
        "cancelled",
        req.actor,
        f"资助已取消（{stage}）：{req.reason} / grant cancelled in {stage}: {req.reason}",
        {
            "request_id": req.request_id,
            "reason": req.reason,
            "report_ref": req.report_ref,
            "stage": stage,
        },
        notify=[
            NotificationIntent(
                audience="applicant", template="cancelled", params={"reason": req.reason}
            )
        ],
    )
    return app.result(req.request_id, f"cancelled in {stage}")


def refuse_unproven(app: ApplicationWorkflow, name: str, problem: str) -> None:
    """A signal whose sender is not proven (workflows/authority.py): recorded, dropped."""
    app.record(
        "refused",
        SYSTEM,
        f"消息被拒绝 / message refused: {name}: {problem}",
        {"request": name, "reason": problem},
    )
    app.publish()


def forward(name: str, message: Any, to: Callable[[Any], None]) -> None:
    """An internal message (from the application's notices, its season or its payout
    batches) to the handler of the current step; one without its argument (sent by
    hand, say) is dropped with a warning: it must not fail the workflow task."""
    if message is None:
        workflow.logger.warning(f"signal {name} without its argument: dropped")
        return
    to(message)
