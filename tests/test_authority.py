"""R10: who acts is proven by a credential, never declared in a request.

The attacks of issue 21, replayed through a raw Temporal client of the namespace
(``ts_env.client``: no authority key, like the ``temporal`` CLI), each refused; and
the statements themselves, tampered every way, refused by the pure check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.funds import FundsActivities, FundsRequestInput, file_inside
from models.application import (
    ApplicationInput,
    DecisionRequest,
    WithdrawalRequest,
)
from models.authority import (
    REVOKED_SIGNAL_GRACE,
    SEAL_HEADER,
    STATEMENT_HEADER,
    Binding,
    Seal,
    Statement,
    body_digest,
    credential_key,
    make_seal,
    seal_problem,
    sign_statement,
    statement_problem,
)
from models.calendar import WorkingCalendar
from models.domain import DecisionKind, Role
from models.ids import payout_batch_workflow_id
from models.payout import AccountCorrection, PayItem, PaymentOutcome, PayoutBatchInput
from store.sealing import Keys
from store.tables import Payment
from tests.conftest import AppStack
from tests.support import COUNTY, VILLAGE, applicant, county_official, village_official
from tests.test_application_workflow import Case, cst, rid
from workers.signing import SKIPPED_CLOCK_LIFETIME, ServiceCredential, SigningInterceptor
from workflows.application import ApplicationWorkflow
from workflows.payout import PayoutBatchWorkflow

pytestmark = pytest.mark.devserver

KEY = b"k" * 32
NOW = datetime(2027, 8, 20, tzinfo=UTC)


# ------------------------------------------------------------ the statement itself


def _statement(**change: Any) -> Statement:
    binding = Binding(
        credential="c1", actor_id="v-1", role=Role.VILLAGE_COMMITTEE, place_code=VILLAGE
    )
    st = Statement(
        binding=binding,
        workflow_id="wf-a",
        message="decide",
        digest=body_digest([{"request_id": "r1"}]),
        expires_at=NOW + timedelta(minutes=10),
    )
    return sign_statement(credential_key(KEY, binding), st).model_copy(update=change)


def _problem(st: Statement, **expect: Any) -> str | None:
    return statement_problem(
        KEY,
        st,
        workflow_id=expect.get("workflow_id", "wf-a"),
        message=expect.get("message", "decide"),
        digest=expect.get("digest", body_digest([{"request_id": "r1"}])),
        now=expect.get("now", NOW),
    )


def test_a_statement_proves_only_its_own_message() -> None:
    assert _problem(_statement()) is None
    forged_role = _statement().binding.model_copy(update={"role": Role.COUNTY_EDUCATION_BUREAU})
    assert "not signed" in (_problem(_statement(binding=forged_role)) or "")
    assert "not signed" in (_problem(_statement(mac="0" * 64)) or "")
    assert "workflow" in (_problem(_statement(), workflow_id="wf-b") or "")
    assert "for decide, not withdraw" in (_problem(_statement(), message="withdraw") or "")
    other_body = body_digest([{"request_id": "r2"}])
    assert "another body" in (_problem(_statement(), digest=other_body) or "")
    assert "expired" in (_problem(_statement(), now=NOW + timedelta(hours=1)) or "")
    # Signed with another deployment's key.
    assert "not signed" in (
        statement_problem(
            b"x" * 32,
            _statement(),
            workflow_id="wf-a",
            message="decide",
            digest=body_digest([{"request_id": "r1"}]),
            now=NOW,
        )
        or ""
    )


def test_a_statement_on_the_wire_leaves_out_what_the_receiver_knows() -> None:
    """The workflow and the body's digest travel in the signature only (issue 20): the
    receiver's own are the ones checked, and another workflow or body is refused."""
    full = _statement()
    wire = Statement.model_validate(full.wire())
    assert "workflow_id" not in full.wire() and "digest" not in full.wire()
    assert len(full.mac) == 32  # HMAC-SHA-256-128
    assert len(json.dumps(full.wire(), separators=(",", ":"))) < len(full.model_dump_json()) - 80
    assert _problem(wire) is None
    for wrong in ({"workflow_id": "wf-b"}, {"digest": body_digest([{"request_id": "r2"}])}):
        assert "not signed by it for this workflow and body" in (_problem(wire, **wrong) or "")
    assert "for decide, not withdraw" in (_problem(wire, message="withdraw") or "")
    assert "not signed" in (_problem(wire.model_copy(update={"mac": full.mac[:16]})) or "")


def test_the_actor_fields_are_not_part_of_the_body() -> None:
    """The statement stands for the actor: a body that names another actor is the same body."""
    a = body_digest([{"request_id": "r1", "actor": {"id": "mallory"}}])
    assert a == body_digest([{"request_id": "r1", "actor": {"id": "v-1"}}])
    assert a != body_digest([{"request_id": "r1", "stage": "x"}])


def test_a_seal_is_for_one_message() -> None:
    seal = make_seal(
        KEY, sender="payout/b1", target="app-1", message="payment_result", digest="a" * 64
    )
    assert (
        seal_problem(KEY, seal, target="app-1", message="payment_result", digest="a" * 64) is None
    )
    assert seal_problem(KEY, seal, target="app-2", message="payment_result", digest="a" * 64)
    assert seal_problem(KEY, seal, target="app-1", message="payment_result", digest="b" * 64)
    assert seal_problem(b"x" * 32, seal, target="app-1", message="payment_result", digest="a" * 64)
    # On the wire, without its target and digest: checked against the receiver's own.
    wire = Seal.model_validate(seal.wire())
    assert wire.target == "" and len(wire.mac) == 32
    assert (
        seal_problem(KEY, wire, target="app-1", message="payment_result", digest="a" * 64) is None
    )
    assert seal_problem(KEY, wire, target="app-2", message="payment_result", digest="a" * 64)
    assert seal_problem(KEY, wire, target="app-1", message="payment_result", digest="b" * 64)


# ------------------------------------------------------ attacks through a raw client


@pytest.fixture
def new_case(app_stack: AppStack, ts_env: WorkflowEnvironment) -> Callable[..., Awaitable[Case]]:
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    async def make(**overrides: Any) -> Case:
        wf = await app_stack.api.submit(form(next(_SERIALS), **overrides), now=IN_WINDOW_2027)
        case = Case(app_stack.api, ts_env, wf)
        await case.wait_for(lambda s: s.waiting_for == "village_committee", "started")
        return case

    return make


async def _refusals(case: Case, n: int) -> list[Any]:
    for _ in range(100):
        refused = [e for e in await case.api.trail(case.wf) if e.kind == "refused"]
        if len(refused) >= n:
            return refused
        await asyncio.sleep(0.1)
    pytest.fail(f"{case.wf}: fewer than {n} refusals recorded")


def forged_payment() -> PaymentOutcome:
    """A "paid" for a batch and key that were never sent, from outside aidflow."""
    return PaymentOutcome(
        batch_id="b1",
        idempotency_key="k",
        attempt=1,
        account_masked="623020******1234",
        sent_at=datetime(2027, 9, 20, tzinfo=UTC),
        status="paid",
    )


async def test_a_raw_client_cannot_decide_withdraw_or_pay(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment, keys: Keys
) -> None:
    """A made-up 'mallory' declaring the county bureau, a stranger's withdrawal by signal,
    a forged bank result: none moves the application."""
    case = await new_case()
    raw = ts_env.client.get_workflow_handle(case.wf)
    mallory = county_official(99).model_copy(update={"id": "mallory"})
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await raw.execute_update(
            ApplicationWorkflow.decide,
            DecisionRequest(
                request_id=rid(),
                actor=mallory,
                stage="village_review",
                decision=DecisionKind.APPROVE,
            ),
        )
    assert "statement" in str(refused.value.cause)
    # A made-up village actor redirecting the payout to another account.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await raw.execute_update(
            ApplicationWorkflow.correct_account,
            AccountCorrection(
                request_id=rid(),
                actor=village_official().model_copy(update={"id": "mallory"}),
                bank_name="某银行",
                account_masked="623020******9999",
                account_sealed=keys.seal("6230201234569999"),
                account_holder="mallory",
            ),
        )
    assert "statement" in str(refused.value.cause)
    await raw.signal(
        ApplicationWorkflow.withdraw_signal,
        WithdrawalRequest(request_id=rid(), actor=village_official(), reason="x"),
    )
    await raw.signal(
        ApplicationWorkflow.payment_result,
        forged_payment(),
    )
    refused_events = await _refusals(case, 2)
    assert [e.detail["request"] for e in refused_events] == ["withdraw_signal", "payment_result"]
    status = await case.status()
    assert status.stage == "village_review" and status.waiting_for == "village_committee"
    # The gateway's own request still goes through.
    await case.approve("village_review", village_official())
    await case.at_stage("village_notice")


def _as_service(env: WorkflowEnvironment, keys: Keys, binding: Binding) -> Client:
    """A client that signs every message with this service credential, as a county
    service sending Temporal messages itself would."""
    service = ServiceCredential(
        binding, credential_key(keys.authority, binding), SKIPPED_CLOCK_LIFETIME
    )
    config = env.client.config()
    config["interceptors"] = [
        SigningInterceptor(service, env.client.data_converter.payload_converter)
    ]
    return Client(**config)


async def test_the_actor_is_the_credentials_not_the_bodys(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment, keys: Keys
) -> None:
    """A village service signing with its own credential sends a Temporal update directly;
    the body's forged county role has no effect: the workflow sees the village official."""
    case = await new_case()
    official = village_official()
    binding = Binding.of(official, "svc-village-1")
    config = ts_env.client.config()
    as_service = _as_service(ts_env, keys, binding).get_workflow_handle(case.wf)
    forged = county_official().model_copy(update={"id": "someone-else"})
    await as_service.execute_update(
        ApplicationWorkflow.decide,
        DecisionRequest(
            request_id=rid(), actor=forged, stage="village_review", decision=DecisionKind.APPROVE
        ),
    )
    await case.at_stage("village_notice")
    decided = [e for e in await case.api.trail(case.wf) if e.kind == "decision"][-1]
    assert (decided.actor.id, decided.actor.role) == (official.id, Role.VILLAGE_COMMITTEE)
    assert decided.actor.credential == "svc-village-1"
    # The same credential on a stage that is not the village's: refused as before.
    with pytest.raises(WorkflowUpdateFailedError):
        await as_service.execute_update(
            ApplicationWorkflow.decide,
            DecisionRequest(
                request_id=rid(),
                actor=forged,
                stage="county_approval",
                decision=DecisionKind.APPROVE,
            ),
        )
    # A statement that would hold for twenty years is refused, whoever signed it.
    lasting = ServiceCredential(
        binding, credential_key(keys.authority, binding), timedelta(days=20 * 366)
    )
    config["interceptors"] = [
        SigningInterceptor(lasting, ts_env.client.data_converter.payload_converter)
    ]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await (
            Client(**config)
            .get_workflow_handle(case.wf)
            .execute_update(
                ApplicationWorkflow.withdraw,
                WithdrawalRequest(request_id=rid(), actor=official, reason="x"),
            )
        )
    assert "longer than a statement may" in str(refused.value.cause)


class _Header(Interceptor):
    """A raw client that puts what it likes into a message's headers."""

    def __init__(self, headers: dict[str, Any]) -> None:
        self.headers = headers

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        headers = self.headers

        class _Out(OutboundInterceptor):
            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                input.headers = {**input.headers, **headers}
                await super().signal_workflow(input)

        return _Out(next)


async def test_a_garbled_proof_is_refused_and_breaks_nothing(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment
) -> None:
    """A statement or seal whose MAC is not hex (compare_digest raised on it, failing the
    workflow task for good) is refused like no proof at all."""
    case = await new_case()
    converter = ts_env.client.data_converter.payload_converter
    good = _statement()
    garbled = {**good.model_dump(mode="json"), "mac": "é" * 64}
    seal = {
        "sender": "x",
        "target": case.wf,
        "message": "payment_result",
        "digest": "0" * 64,
        "mac": "é",
    }
    config = ts_env.client.config()
    config["interceptors"] = [
        _Header(
            {
                STATEMENT_HEADER: converter.to_payloads([garbled])[0],
                SEAL_HEADER: converter.to_payloads([seal])[0],
            }
        )
    ]
    handle = Client(**config).get_workflow_handle(case.wf)
    await handle.signal(
        ApplicationWorkflow.withdraw_signal,
        WithdrawalRequest(request_id=rid(), actor=village_official(), reason="x"),
    )
    await handle.signal(
        ApplicationWorkflow.payment_result,
        forged_payment(),
    )
    assert len(await _refusals(case, 2)) == 2
    await case.approve("village_review", village_official())
    await case.at_stage("village_notice")
    failed = [
        e
        async for e in case.handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert not failed


async def test_a_start_is_the_gateways_and_no_cron_runs_unchecked(
    new_case: Callable[..., Awaitable[Case]],
    ts_env: WorkflowEnvironment,
    app_stack: AppStack,
    keys: Keys,
) -> None:
    """A service's own credential does not start an application (intake is the
    gateway's); a payout batch on a cron schedule, whose later runs look "continued",
    is refused on every run."""
    case = await new_case()
    real = await _input_of(case)
    queue = app_stack.worker.task_queue
    binding = Binding.of(village_official(), "svc-village-1")
    service = ServiceCredential(
        binding, credential_key(keys.authority, binding), SKIPPED_CLOCK_LIFETIME
    )
    config = ts_env.client.config()
    config["interceptors"] = [
        SigningInterceptor(service, ts_env.client.data_converter.payload_converter)
    ]
    wf_id = f"by-service-{uuid.uuid4().hex[:8]}"
    handle = await Client(**config).start_workflow(
        ApplicationWorkflow.run,
        real.model_copy(update={"workflow_id": wf_id}),
        id=wf_id,
        task_queue=queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "started by aidflow's gateway" in str(failed.value.cause)

    batch = PayoutBatchInput(
        batch_id="county-subsidy-2027-341225-b901",
        programme="county-subsidy",
        season=2027,
        county_code=COUNTY,
        items=[PayItem(workflow_id=case.wf, amount_cny=3000, attempt=1)],
    )
    cron_id = payout_batch_workflow_id(f"cron-{uuid.uuid4().hex[:6]}")
    await ts_env.client.start_workflow(
        PayoutBatchWorkflow.run, batch, id=cron_id, task_queue=queue, cron_schedule="@every 2s"
    )
    reasons: list[str] = []
    try:
        for _ in range(100):
            reasons = []
            async for wf in ts_env.client.list_workflows(f"WorkflowId = '{cron_id}'"):
                if wf.status == WorkflowExecutionStatus.FAILED:
                    run = ts_env.client.get_workflow_handle(cron_id, run_id=wf.run_id)
                    async for e in run.fetch_history_events():
                        if e.HasField("workflow_execution_failed_event_attributes"):
                            reasons.append(
                                e.workflow_execution_failed_event_attributes.failure.message
                            )
            if len(reasons) >= 2:
                break
            await asyncio.sleep(0.3)
    finally:
        with contextlib.suppress(Exception):
            await ts_env.client.get_workflow_handle(cron_id).terminate("test finished")
    assert len(reasons) >= 2, reasons
    assert any("cron" in r for r in reasons) and all("refused to run" in r for r in reasons)
    assert not list(app_stack.deps.bank_dir.rglob("*.csv"))


async def test_hand_started_workflows_do_not_run(
    new_case: Callable[..., Awaitable[Case]],
    ts_env: WorkflowEnvironment,
    app_stack: AppStack,
    tmp_path: Path,
) -> None:
    """A hand-started application with a made-up amount, and a hand-started payout batch
    whose id climbs out of the bank folder: both fail at once, nothing paid, no file."""
    case = await new_case()
    real = await _input_of(case)
    queue = app_stack.worker.task_queue
    forged = real.model_copy(
        update={"workflow_id": f"forged-{uuid.uuid4().hex[:6]}", "amount_cny": 999_999}
    )
    for client, why in ((ts_env.client, "statement"), (app_stack.api.client, "amount_cny 999999")):
        # The raw client has no statement; even the gateway's signature does not make
        # an amount the programme's.
        wf_id = f"forged-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow(
            ApplicationWorkflow.run,
            forged.model_copy(update={"workflow_id": wf_id}),
            id=wf_id,
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert why in str(failed.value.cause), failed.value.cause
    batch = PayoutBatchInput.model_construct(
        batch_id="../../../../x",
        programme="county-subsidy",
        season=2027,
        round="",
        county_code=COUNTY,
        items=[PayItem(workflow_id=case.wf, amount_cny=3000, attempt=1)],
        bank="simulated",
    )
    handle = await ts_env.client.start_workflow(
        "PayoutBatchWorkflow",
        batch,
        id=payout_batch_workflow_id(f"hand-{uuid.uuid4().hex[:6]}"),
        task_queue=queue,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    good_id = PayoutBatchInput(
        batch_id="county-subsidy-2027-341225-b900",
        programme="county-subsidy",
        season=2027,
        county_code=COUNTY,
        items=batch.items,
    )
    batch_handle = await ts_env.client.start_workflow(
        PayoutBatchWorkflow.run, good_id, id=payout_batch_workflow_id("hand-2"), task_queue=queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await batch_handle.result()
    assert "started by its season" in str(failed.value.cause)
    assert not list(app_stack.deps.bank_dir.rglob("*.csv"))
    assert not list(tmp_path.parent.rglob("x.csv"))
    assert (await case.handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def _input_of(case: Case) -> ApplicationInput:
    history = await case.handle.fetch_history()
    payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    return ApplicationInput.model_validate_json(payload.data)


def test_every_message_a_workflow_takes_needs_its_proof() -> None:
    """A new update or signal cannot slip past R10: each one a workflow defines is either
    a request (a statement proves it) or internal (aidflow's seal proves it)."""
    from temporalio.workflow import _Definition

    from models.authority import INTERNAL, REQUESTS
    from workflows.authority import BODIES
    from workflows.registry import ALL_WORKFLOWS

    for cls in ALL_WORKFLOWS:
        defn = _Definition.must_from_class(cls)
        kind = str(defn.name)
        names = {n for n in (*defn.signals, *defn.updates) if n is not None}
        proven = REQUESTS.get(kind, frozenset()) | INTERNAL.get(kind, frozenset())
        assert names <= proven, (kind, sorted(names - proven))
        assert not REQUESTS.get(kind, frozenset()) & INTERNAL.get(kind, frozenset())
        # Every signal's body is decoded by the interceptor, never dropped by the SDK.
        signals = {n for n in defn.signals if n is not None}
        assert signals <= set(BODIES), (kind, sorted(signals - set(BODIES)))


async def test_a_revoked_service_credential_is_refused_by_the_workers(
    new_case: Callable[..., Awaitable[Case]],
    ts_env: WorkflowEnvironment,
    app_stack: AppStack,
    keys: Keys,
) -> None:
    """R10: a service that signs its own Temporal messages is refused once its credential
    is revoked, without the gateway: an update at once, a request signal from
    REVOKED_SIGNAL_GRACE after (so that every replay gives the same answer)."""
    from store import credentials

    case = await new_case()
    official = village_official()
    row, _ = credentials.create(
        app_stack.engine,
        keys.authority,
        actor_id=official.id,
        actor_name=official.name,
        role=official.role,
        place_code=official.place_code,
    )
    as_service = _as_service(ts_env, keys, credentials.binding_of(row)).get_workflow_handle(case.wf)
    credentials.revoke(app_stack.engine, row.id)
    revocations = app_stack.deps.revocations
    assert revocations is not None
    revocations.refresh()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await as_service.execute_update(
            ApplicationWorkflow.decide,
            DecisionRequest(
                request_id=rid(),
                actor=official,
                stage="village_review",
                decision=DecisionKind.APPROVE,
            ),
        )
    assert f"credential {row.id} was revoked" in str(refused.value.cause)
    await case.advance_to(await case.now() + REVOKED_SIGNAL_GRACE + timedelta(seconds=1))
    await as_service.signal(
        ApplicationWorkflow.withdraw_signal,
        WithdrawalRequest(request_id=rid(), actor=official, reason="家庭自愿放弃"),
    )
    (refusal,) = await _refusals(case, 1)
    assert f"credential {row.id} was revoked" in refusal.summary, refusal.summary
    assert (await case.status()).stage == "village_review"


async def test_a_withdrawal_signalled_to_many_by_a_query_moves_none(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment, app_stack: AppStack
) -> None:
    """Issue 21's `temporal workflow signal --query ... --name withdraw_signal` (11
    withdrawn at once), as the CLI does it without the batch API: every workflow the
    visibility query finds, signalled in turn without a statement. None moves; each
    records the refusal."""
    cases = [await new_case() for _ in range(3)]
    wanted = {c.wf for c in cases}
    query = (
        f"WorkflowType = 'ApplicationWorkflow' AND TaskQueue = '{app_stack.worker.task_queue}' "
        f"AND Village = '{VILLAGE}' AND ExecutionStatus = 'Running'"
    )
    found: set[str] = set()
    for _ in range(100):
        found = {wf.id async for wf in ts_env.client.list_workflows(query)}
        if wanted <= found:
            break
        await asyncio.sleep(0.1)  # visibility lags a moment behind
    assert wanted <= found, found
    for wf_id in found:
        await ts_env.client.get_workflow_handle(wf_id).signal(
            "withdraw_signal",
            WithdrawalRequest(request_id=rid(), actor=applicant(), reason="批量撤回"),
        )
    for c in cases:
        refused = await _refusals(c, 1)
        assert [e.detail["request"] for e in refused] == ["withdraw_signal"], refused
        assert (await c.status()).stage == "village_review"
        assert "withdrawn" not in await c.kinds()


async def test_a_forged_return_queues_no_second_payment(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment, app_stack: AppStack
) -> None:
    """Issue 21: a forged payment_result "returned" queued a second payment of one the
    bank paid. Sent by a raw client while the real payment is at the bank, with the
    real batch and idempotency key: refused and recorded; the bank's "paid" settles it,
    once; closed, the application hears no forgery at all."""
    from tests.test_payout import (
        BUREAU,
        FINANCE,
        advance,
        season_handle,
        sent_to_the_bank,
        to_awaiting_funds,
    )

    api = app_stack.api
    case = await new_case()
    await to_awaiting_funds(case)
    await advance(ts_env, await season_handle(app_stack), cst(9, 18, 0, 2))
    app_stack.bank.rules.delay_seconds = 600  # the batch waits at the bank meanwhile
    await api.request_funds("county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-forged")
    await api.funds_arrived("county-subsidy", 2027, COUNTY, FINANCE, "fr-forged", 3000, "CZ-F-1")
    payment = await sent_to_the_bank(app_stack, case.wf)
    forged = PaymentOutcome(
        batch_id=payment.batch_id,
        idempotency_key=payment.idempotency_key,
        attempt=payment.attempt,
        account_masked=payment.account_masked,
        sent_at=payment.created_at,
        status="returned",
        reason="账户已销户 / account closed",
    )
    raw = ts_env.client.get_workflow_handle(case.wf)
    await raw.signal(ApplicationWorkflow.payment_result, forged)
    refused = await _refusals(case, 1)
    assert [e.detail["request"] for e in refused] == ["payment_result"], refused
    assert (await case.status()).stage != "awaiting_account_correction"
    app_stack.bank.rules.delay_seconds = 0
    await case.at_stage("paid")
    await case.handle.result()
    with Session(app_stack.engine) as s:
        payments = s.exec(select(Payment).where(Payment.workflow_id == case.wf)).all()
    assert [(p.attempt, p.status) for p in payments] == [(1, "paid")]
    assert [x["idempotency_key"] for x in app_stack.bank.ledger()] == [payment.idempotency_key]
    assert app_stack.bank.paid_total() == 3000
    assert not any(
        e.kind == "payment" and e.detail.get("status") == "returned"
        for e in await api.trail(case.wf)
    )
    with pytest.raises(RPCError):  # the application has closed: nothing to forge to
        await raw.signal(ApplicationWorkflow.payment_result, forged)


def test_a_file_name_built_from_an_id_stays_in_its_folder(
    tmp_path: Path, keys: Keys, calendar: WorkingCalendar
) -> None:
    """The roster's and the disbursement file's names come from ids: one that climbs out
    of its folder (or hides) is refused for good before anything is written."""
    files = tmp_path / "files"
    funds = FundsActivities(create_engine("sqlite://"), keys, calendar, files, tmp_path / "bank")
    assert file_inside(files / "rosters", "fr-1.xlsx") == files / "rosters" / "fr-1.xlsx"
    for batch_id in ("../../../../x", "../x", "..", ".hidden"):
        batch = PayoutBatchInput.model_construct(
            batch_id=batch_id,
            programme="county-subsidy",
            season=2027,
            round="",
            county_code=COUNTY,
            items=[],
            bank="simulated",
        )
        with pytest.raises(ApplicationError) as refused:
            funds.prepare_payments(batch)
        assert refused.value.non_retryable and "inside" in str(refused.value), batch_id
    for request_id in ("../../x", "..", "../"):
        with pytest.raises(ApplicationError) as refused:
            funds.create_funds_request(
                FundsRequestInput(
                    request_id=request_id,
                    programme="county-subsidy",
                    season=2027,
                    county_code=COUNTY,
                )
            )
        assert refused.value.non_retryable, request_id
    assert not list(tmp_path.rglob("*.csv")) and not list(tmp_path.rglob("*.xlsx"))


async def test_the_temporal_cli_starting_an_application_by_hand_gets_nothing(
    new_case: Callable[..., Awaitable[Case]], ts_env: WorkflowEnvironment, app_stack: AppStack
) -> None:
    """Issue 21, as it was found: `temporal workflow start --type ApplicationWorkflow` with
    a made-up amount, from the `temporal` CLI (a client nobody here wrote), fails at once
    for want of the gateway's statement; nothing is recorded or paid."""
    import json
    import subprocess
    import sys

    case = await new_case()
    wf_id = f"by-hand-{uuid.uuid4().hex[:8]}"
    forged = (await _input_of(case)).model_copy(
        update={"workflow_id": wf_id, "amount_cny": 999_999}
    )
    temporal = Path(sys.executable).parent / "temporal"
    r = await asyncio.to_thread(
        subprocess.run,
        [
            str(temporal),
            "workflow",
            "start",
            "--address",
            ts_env.client.service_client.config.target_host,
            "--namespace",
            ts_env.client.namespace,
            "--task-queue",
            app_stack.worker.task_queue,
            "--type",
            "ApplicationWorkflow",
            "--workflow-id",
            wf_id,
            "--input",
            json.dumps(forged.model_dump(mode="json"), ensure_ascii=False),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr  # the server takes the start; the workers refuse it
    with pytest.raises(WorkflowFailureError) as failed:
        await ts_env.client.get_workflow_handle(wf_id).result()
    assert "statement" in str(failed.value.cause), failed.value.cause
    with Session(app_stack.engine) as s:
        assert not s.exec(select(Payment).where(Payment.workflow_id == wf_id)).all()


async def test_a_raw_client_cannot_join_a_notice_or_take_a_member_off_it(
    ts_env: WorkflowEnvironment, app_stack: AppStack
) -> None:
    """A notice's members speak to it by sealed signals (issue 20). From a raw client: a
    made-up application slipped onto the list with a posting time three weeks early, and
    a real member taken off the list, unsealed and under a seal made with another key.
    None is taken: the list and its postings are as they were, and no workflow task
    failed."""
    from models.domain import Level
    from models.notice import MemberChange, NoticeJoin, NoticeMember
    from tests.test_application_workflow import submitted_case
    from workflows.notice import NoticeWorkflow

    case = await submitted_case(app_stack.api, ts_env)
    await case.approve("village_review", village_official())
    await case.wait_for(lambda s: s.notice is not None, "its posting known")
    notice_id = app_stack.api.notice_id("county-subsidy", 2027, Level.VILLAGE, VILLAGE)
    raw = ts_env.client.get_workflow_handle(notice_id)
    before = await raw.query(NoticeWorkflow.status)
    assert case.wf in {m.workflow_id for m in before.pending} and not before.postings
    stranger = NoticeMember(
        workflow_id="mallory-app",
        name="某某",
        village="村",
        school_or_level="大学",
        amount_cny=3000,
        joined_at=cst(8, 20, 9),
        auto_post_at=cst(8, 20, 10),
    )
    off = MemberChange(workflow_id=case.wf, left=True)
    await raw.signal(NoticeWorkflow.join, NoticeJoin(member=stranger))
    await raw.signal(NoticeWorkflow.member_changed, off)
    # Sealed, but not with aidflow's key: the seal names the right notice, message, body.
    converter = ts_env.client.data_converter.payload_converter
    seal = make_seal(
        b"x" * 32,
        sender=case.wf,
        target=notice_id,
        message="member_changed",
        digest=body_digest([off]),
    )
    config = ts_env.client.config()
    config["interceptors"] = [_Header({SEAL_HEADER: converter.to_payloads([seal])[0]})]
    await Client(**config).get_workflow_handle(notice_id).signal(NoticeWorkflow.member_changed, off)

    signalled = 0
    for _ in range(100):  # a query waits for the task that takes the signals before it
        after = await raw.query(NoticeWorkflow.status)
        signalled = len(
            [
                e
                async for e in raw.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                and e.workflow_execution_signaled_event_attributes.signal_name
                in ("join", "member_changed")
            ]
        )
        if signalled >= 4:  # the member's own join, and the three forged
            break
        await asyncio.sleep(0.1)
    assert signalled >= 4, signalled
    after = await raw.query(NoticeWorkflow.status)
    assert after.pending == before.pending and not after.postings
    assert after.auto_post_at == cst(9, 1)
    failed = [
        e
        async for e in raw.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert not failed
    status = await case.status()
    assert status.stage == "village_notice" and status.waiting_until == cst(9, 8)
