"""The worker's check of who sent each message (R10), before any handler sees it.

A worker interceptor: the keys come with the worker's construction (like its data
converter), never from the history, so a history cannot vouch for itself.

- A request (update or request signal; ``models.authority.REQUESTS``) needs a
  statement that proves it; the handler then sees the statement's actor in place of
  the body's. A refused update is rejected at once (nothing in the history); a refused
  signal is recorded by the workflow as refused (``refuse_unproven``) and dropped.
- A message between aidflow's workflows (``INTERNAL``) needs aidflow's seal; this
  interceptor seals every such message a workflow sends.
- A start needs a statement too (the gateway's, after intake on the server side);
  a payout batch needs to be its season's child; a run continued as new was started by
  its own workflow. A start without its proof fails at once, saying why.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ContinueAsNewInput,
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    SignalExternalWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workflows.steps.base import AuthorityProblem, Refused

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter, ValidationError

    from models.application import (
        CorrectionRequest,
        DecisionRequest,
        ObjectionRequest,
        ObjectionResolution,
        WithdrawalRequest,
    )
    from models.authority import (
        GATEWAY_CREDENTIAL,
        INTERNAL,
        REQUESTS,
        REVOKED_SIGNAL_GRACE,
        SEAL_HEADER,
        STATEMENT_HEADER,
        STATEMENT_LIFETIME,
        Seal,
        Statement,
        body_digest,
        make_seal,
        seal_problem,
        statement_problem,
    )
    from models.ids import season_workflow_id
    from models.notice import MemberChange, NoticeInput, NoticeJoin, NoticePosted
    from models.payout import FundsRelease, PayItem, PaymentOutcome
    from models.roster import RosterLeft, RosterMember, RosterVerdict

# The body each signal carries. Its handler takes ``Any``: the SDK drops a signal whose
# body does not decode into the handler's type without a word, so the body is decoded
# here, and one that does not decode is refused and recorded, like any other.
BODIES: dict[str, type] = {
    "decide_signal": DecisionRequest,
    "correct_signal": CorrectionRequest,
    "lodge_objection_signal": ObjectionRequest,
    "resolve_objection_signal": ObjectionResolution,
    "withdraw_signal": WithdrawalRequest,
    "funds_released": FundsRelease,
    "payment_result": PaymentOutcome,
    "repayment_ready": PayItem,
    "notice_posted": NoticePosted,
    "join": NoticeJoin,
    "member_changed": MemberChange,
    "roster_decided": RosterVerdict,
    "member_joined": RosterMember,
    "member_left": RosterLeft,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(model) for name, model in BODIES.items()
}

CONTINUED = "continue_as_new"
# The workflows an application starts by joining them: their input's type, and a name.
JOINED: dict[str, tuple[type[NoticeInput], str]] = {
    "NoticeWorkflow": (NoticeInput, "notice"),
}
# Clocks of gateway and worker apart by at most this much.
_SKEW = timedelta(minutes=5)
_NO_SEAL = "it is a message only aidflow's workflows send, and it carries no seal"
_NO_PROOF = "it carries no statement of who sends it (R10: requests go through aidflow's gateway or are signed with the sender's own credential)"


class RevocationList(Protocol):
    """The revoked credentials as the worker knows them (``workers/revocations.py``)."""

    def revoked_by(self, credential: str, at: datetime, *, grace: timedelta) -> datetime | None:
        """When ``credential`` was revoked, if that was at least ``grace`` before ``at``."""


class AuthorityInterceptor(Interceptor):
    """``max_lifetime``: the longest a statement may still hold when it arrives (the
    signer sets its expiry; this caps it). Longer only where the workflows' clocks are
    skipped ahead of the wall clock (tests, the simulator). ``revocations``: a revoked
    credential's requests are refused (an update at once; a signal, which every replay
    handles again, from ``REVOKED_SIGNAL_GRACE`` after, so that replays agree)."""

    def __init__(
        self,
        *,
        authority_key: bytes,
        internal_key: bytes,
        max_lifetime: timedelta = STATEMENT_LIFETIME + _SKEW,
        revocations: RevocationList | None = None,
    ) -> None:
        self._authority_key = authority_key
        self._internal_key = internal_key
        self._max_lifetime = max_lifetime
        self._revocations = revocations

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        authority_key, internal_key = self._authority_key, self._internal_key
        max_lifetime, revocations = self._max_lifetime, self._revocations

        def revoked(headers: Any, grace: timedelta) -> str | None:
            statement = _statement(headers)
            if revocations is None or statement is None:
                return None
            credential = statement.binding.credential
            when = revocations.revoked_by(credential, workflow.now(), grace=grace)
            return (
                None
                if when is None
                else f"credential {credential} was revoked at {when.isoformat()}"
            )

        class _Outbound(WorkflowOutboundInterceptor):
            async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
                seal = make_seal(
                    internal_key,
                    sender=workflow.info().workflow_id,
                    target=input.workflow_id,
                    message=input.signal,
                    digest=body_digest(input.args),
                )
                input.headers = {**input.headers, SEAL_HEADER: _payload(seal.wire())}
                await super().signal_external_workflow(input)

            def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
                # The next run proves it was continued by this workflow, not started by
                # hand with a forged "continued" look (a cron or retry run has that too).
                wf = workflow.info().workflow_id
                seal = make_seal(
                    internal_key,
                    sender=wf,
                    target=wf,
                    message=CONTINUED,
                    digest=body_digest(input.args),
                )
                input.headers = {**input.headers, SEAL_HEADER: _payload(seal.wire())}
                super().continue_as_new(input)

        class _Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                problem = _start_problem(authority_key, internal_key, max_lifetime, input)
                if problem is not None:
                    raise ApplicationError(
                        f"refused to run: {problem}", type="Unproven", non_retryable=True
                    )
                return await super().execute_workflow(input)

            async def handle_signal(self, input: HandleSignalInput) -> None:
                kind = workflow.info().workflow_type
                if input.signal in BODIES:
                    # Its proof is looked for first (a message without one is refused
                    # for that, whatever it carries), then its body decoded.
                    request = input.signal in REQUESTS.get(kind, ())
                    if request and _statement(input.headers) is None:
                        return _refuse(input.signal, _NO_PROOF)
                    if not request and SEAL_HEADER not in input.headers:
                        return _refuse(input.signal, _NO_SEAL)
                    body = _body(input.signal, input.args)
                    if isinstance(body, str):
                        return _refuse(input.signal, body)
                    input = dataclasses.replace(input, args=body)
                if input.signal in REQUESTS.get(kind, ()):
                    proven = _proven(
                        authority_key, max_lifetime, input.signal, input.args, input.headers
                    )
                    if isinstance(proven, str):
                        return _refuse(input.signal, proven)
                    problem = revoked(input.headers, REVOKED_SIGNAL_GRACE)
                    if problem is not None:
                        return _refuse(input.signal, problem)
                    input = dataclasses.replace(input, args=proven)
                elif input.signal in INTERNAL.get(kind, ()):
                    problem = _seal_problem(internal_key, input.signal, input.args, input.headers)
                    if problem is not None:
                        return _refuse(input.signal, problem)
                await super().handle_signal(input)

            def handle_update_validator(self, input: HandleUpdateInput) -> None:
                if input.update in INTERNAL.get(workflow.info().workflow_type, ()):
                    problem = _seal_problem(internal_key, input.update, input.args, input.headers)
                    if problem is not None:
                        raise Refused([AuthorityProblem(f"{input.update} refused: {problem}")])
                if input.update in REQUESTS.get(workflow.info().workflow_type, ()):
                    proven = _proven(
                        authority_key, max_lifetime, input.update, input.args, input.headers
                    )
                    if isinstance(proven, str):
                        raise Refused([AuthorityProblem(f"{input.update} refused: {proven}")])
                    # A validator never runs on replay: refused the moment the list knows.
                    problem = revoked(input.headers, timedelta(0))
                    if problem is not None:
                        raise Refused([AuthorityProblem(f"{input.update} refused: {problem}")])
                    input = dataclasses.replace(input, args=proven)
                super().handle_update_validator(input)

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                # The validator proved the statement when the update was accepted; a
                # replay does not run validators, so only a live handler proves it again
                # (an update without a validator must not take a forged actor).
                kind = workflow.info().workflow_type
                if input.update in INTERNAL.get(kind, ()) and not workflow.unsafe.is_replaying():
                    problem = _seal_problem(internal_key, input.update, input.args, input.headers)
                    if problem is not None:
                        raise Refused([AuthorityProblem(f"{input.update} refused: {problem}")])
                if input.update in REQUESTS.get(kind, ()):
                    statement = _statement(input.headers)
                    if statement is None:
                        raise Refused([AuthorityProblem(f"{input.update} refused: {_NO_PROOF}")])
                    if not workflow.unsafe.is_replaying():
                        proven = _proven(
                            authority_key, max_lifetime, input.update, input.args, input.headers
                        )
                        if isinstance(proven, str):
                            raise Refused([AuthorityProblem(f"{input.update} refused: {proven}")])
                    input = dataclasses.replace(input, args=_as_actor(statement, input.args))
                return await super().handle_update_handler(input)

        return _Inbound


def _body(signal: str, args: Any) -> list[Any] | str:
    """The signal's one argument as its model, or why it is not one."""
    model = BODIES[signal]
    if not args or args[0] is None:
        return "it carries no request"
    if len(args) > 1:
        return f"it carries {len(args)} arguments, and takes one ({model.__name__})"
    if isinstance(args[0], model):
        return list(args)
    try:
        return [_ADAPTERS[signal].validate_python(args[0])]
    except ValidationError as e:
        wrong = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}"
            for err in e.errors()[:10]
        )
        return f"its body is not a {model.__name__}: {wrong}"


def _payload(value: Any) -> Payload:
    return workflow.payload_converter().to_payloads([value])[0]


def _statement(headers: Any) -> Statement | None:
    raw = headers.get(STATEMENT_HEADER)
    if raw is None:
        return None
    try:
        statement: Statement = workflow.payload_converter().from_payloads([raw], [Statement])[0]
    except Exception:
        return None
    return statement


def _proven(
    key: bytes, max_lifetime: timedelta, message: str, args: Any, headers: Any
) -> list[Any] | str:
    """The arguments with the statement's actor, or why the message is not proven."""
    statement = _statement(headers)
    if statement is None:
        return _NO_PROOF
    if not args or args[0] is None:
        return "it carries no request"
    problem = _problem(key, max_lifetime, statement, message, args, workflow.now())
    return problem if problem is not None else _as_actor(statement, args)


def _problem(
    key: bytes,
    max_lifetime: timedelta,
    statement: Statement,
    message: str,
    args: Any,
    now: datetime,
) -> str | None:
    if statement.expires_at - now > max_lifetime:
        return f"the statement holds until {statement.expires_at.isoformat()}, longer than a statement may"
    return statement_problem(
        key,
        statement,
        workflow_id=workflow.info().workflow_id,
        message=message,
        digest=body_digest(args),
        now=now,
    )


def _as_actor(statement: Statement, args: Any) -> list[Any]:
    first, *rest = args
    if hasattr(first, "actor"):
        first = first.model_copy(update={"actor": statement.binding.actor()})
    return [first, *rest]


def _seal_problem(
    key: bytes, message: str, args: Any, headers: Any, *, missing: str | None = None
) -> str | None:
    """Why the message does not carry aidflow's seal for itself (``missing``: what to
    say when it carries none)."""
    raw = headers.get(SEAL_HEADER)
    if raw is None:
        return missing or _NO_SEAL
    try:
        seal: Seal = workflow.payload_converter().from_payloads([raw], [Seal])[0]
    except Exception:
        return "its seal does not read"
    return seal_problem(
        key, seal, target=workflow.info().workflow_id, message=message, digest=body_digest(args)
    )


def _refuse(message: str, problem: str) -> None:
    hook = getattr(workflow.instance(), "refuse_unproven", None)
    if hook is not None:
        hook(message, problem)
    else:
        workflow.logger.warning(f"signal {message} refused: {problem}")


def _start_problem(
    key: bytes, internal_key: bytes, max_lifetime: timedelta, input: ExecuteWorkflowInput
) -> str | None:
    info = workflow.info()
    if info.cron_schedule or info.attempt > 1:
        return "aidflow's workflows run neither on a cron schedule nor retried as a whole"
    if info.continued_run_id is not None:
        # Only the workflow itself continues as new: its seal says so.
        return _seal_problem(
            internal_key,
            CONTINUED,
            input.args,
            input.headers,
            missing="a continued run carries no seal of the run before it",
        )
    if info.workflow_type == "PayoutBatchWorkflow":
        batch = input.args[0]
        season = season_workflow_id(batch.programme, batch.season, batch.county_code, batch.round)
        if info.parent is None or info.parent.workflow_id != season:
            return f"a payout batch is started by its season {season}, and this one was not"
        return None
    joined = JOINED.get(info.workflow_type)
    if joined is not None:
        # Started by an application's joining (activities/notices.py), under its seal, and
        # under the id its input names.
        kind, what = joined
        first = input.args[0] if input.args else None
        if isinstance(first, kind) and first.workflow_id != info.workflow_id:
            return f"a {what} runs under its own id {first.workflow_id}, not {info.workflow_id}"
        return _seal_problem(
            internal_key,
            "start",
            input.args,
            input.headers,
            missing=f"a {what} is started by an application joining it, and this start carries no seal",
        )
    statement = _statement(input.headers)
    if statement is None:
        return _NO_PROOF
    if statement.binding.credential != GATEWAY_CREDENTIAL:
        # Intake runs in the gateway: a start is the gateway's word, no service's.
        return f"a workflow is started by aidflow's gateway, not by credential {statement.binding.credential}"
    # As of the start: a run that waited for a worker is not refused for the wait.
    problem = _problem(key, max_lifetime, statement, "start", input.args, info.start_time)
    if problem is not None:
        return problem
    first = input.args[0]
    submitted_by = getattr(first, "submitted_by", None) or getattr(first, "opened_by", None)
    if submitted_by is not None and (
        (submitted_by.id, submitted_by.role, submitted_by.place_code)
        != (statement.binding.actor_id, statement.binding.role, statement.binding.place_code)
    ):
        return (
            f"submitted_by {submitted_by.id} ({submitted_by.role.value}) is not the "
            f"credential's actor {statement.binding.actor_id} ({statement.binding.role.value})"
        )
    return None
