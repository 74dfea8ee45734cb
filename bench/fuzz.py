"""The fuzzer (issue 16): seeded bad requests of every class, each through the path it
would come by: the HTTP API with an office's credential (or none, for an objection), the
project's client (``AidflowClient``, as the gateway or a service uses it), a service
signing its own Temporal messages, the command line (a clerk's typing), and a raw
Temporal client of the namespace (messages without proof, undecodable signals, forged
internal messages, malformed starts); against the real stack (dev server, worker, SQLite,
the gateway on a port). One application is taken past its village notice first, so that
four eyes, a reused request id and a late objection meet a stage where they matter. At
the end every application must still take a good request.

    python -m bench.fuzz --requests 10000 --seed 1

Prints a JSON summary, in total and per class: ``tried``, ``refused`` (with a named
reason), ``wrongly_accepted``, ``task_failures`` (failed workflow tasks on every workflow
of the fuzzer's task queue, each charged to the last class that sent to that workflow
before it), ``crashes`` (a 5xx answer, an exception other than a refusal, or a signal
whose refusal never reached the trail). Every request here is bad: none may be accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import sys
import tempfile
import traceback
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from bench import r9
from models.application import (
    Actor,
    ApplicationInput,
    DecisionRequest,
    RequestResult,
    TrailEvent,
    WithdrawalRequest,
)
from models.authority import Binding, credential_key
from models.calendar import SHANGHAI
from models.domain import DecisionKind, Level, Role
from models.ids import application_workflow_id
from models.payout import FundsRelease, PaymentOutcome
from models.programmes import BUILTIN_PROGRAMMES
from store import credentials
from store.calendars import build_calendar
from store.db import make_engine, upgrade
from store.registry import RegistryReader
from store.sealing import Keys
from workers.client import AidflowClient, Refused
from workers.gateway import create_app
from workers.gateway.serving import serving_app
from workers.signing import SKIPPED_CLOCK_LIFETIME, ServiceCredential, SigningInterceptor
from workers.simulate import start_time_skipping_server
from workers.synthetic import applicants, load_sample_county
from workers.worker import Dependencies, build_worker
from workflows.application import ApplicationWorkflow

IN_WINDOW_2027 = datetime(2027, 8, 10, 2, 0, tzinfo=UTC)
# The 2027 village notice posted at the window's close counts 1, 2, 3, 6 and 7 September
# and ends at 00:00 on 8 September (tests/test_application_workflow.py).
PAST_THE_VILLAGE_NOTICE = datetime(2027, 9, 8, 0, 0, 1, tzinfo=SHANGHAI)
CONTROL = ("\x00", "\x1b[31m", "\u202e", "\u200b\u0007")
# The fuzz village's official (its key's actor) as another office might write the same
# person: spaces around the id, a full-width letter, sign or digit (all one id under
# NFKC), or plainly. Each is bound to a township key: the same person at the next stage.
THE_VILLAGE_OFFICIAL = "v-1"
SAME_OFFICIAL = ("v-1 ", " v-1", "\uff56-1", "v\uff0d1", "v-\uff11", "v-1")
# The request id of the village's approval of the application past its notice: accepted,
# so an id used again for another request must be refused naming it.
FIRST_REQUEST_ID = "fuzz-setup-village-approval"
# Who sent the good requests after the fuzzing (to charge a failure they cause).
GOOD_REQUEST = "a good request, after the fuzzing"
# How long a bad signal's refusal may take to reach its application's trail.
SIGNAL_WAIT_SECONDS = 5.0
ACCOUNT = {
    "bank_name": "阜南农商银行",
    "account_number": "6230201234567890",
    "account_holder": "户主",
}


@dataclass
class Outcome:
    kind: str  # refused | accepted | crash | unrecorded (a signal the trail never showed)
    reason: str = ""


@dataclass
class Stats:
    tried: int = 0
    refused: int = 0
    wrongly_accepted: int = 0
    task_failures: int = 0
    crashes: int = 0
    signals_not_recorded: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, what: str) -> None:
        self.tried += 1
        if outcome.kind == "refused" and outcome.reason:
            self.refused += 1
            return
        if outcome.kind == "accepted":
            self.wrongly_accepted += 1
        else:
            self.crashes += 1
            self.signals_not_recorded += outcome.kind == "unrecorded"
        if len(self.examples) < 3:
            self.examples.append(f"{what}: {outcome.kind} {outcome.reason[:200]}")

    def summary(self) -> dict[str, Any]:
        counts = {
            "tried": self.tried,
            "refused": self.refused,
            "wrongly_accepted": self.wrongly_accepted,
            "task_failures": self.task_failures,
            "crashes": self.crashes,
        }
        if self.signals_not_recorded:
            counts["signals_not_recorded"] = self.signals_not_recorded
        return {**counts, **({"examples": self.examples} if self.examples else {})}


@dataclass(frozen=True)
class Touch:
    """A request of class ``name`` sent to a workflow at ``sent`` (the wall clock)."""

    name: str
    workflow_id: str
    sent: datetime


@dataclass
class Target:
    http: httpx.AsyncClient
    raw: Client
    api: AidflowClient  # the gateway's client: signs for the actor each request names
    service: Client  # the fuzz village's service, signing its Temporal messages itself
    keys: dict[str, str]  # office -> API key
    apps: list[str]  # workflow ids at village_review
    later: list[str]  # past the village notice, at township_review
    queue: str
    start_input: ApplicationInput  # a real application's start, to copy
    township: str
    url: str = ""  # the gateway's, for the command line
    work: Path = Path(".")
    touched: list[str] = field(default_factory=list)  # by the request being sent
    # (workflow, signal) -> refusals of that signal seen in its trail; a pair whose last
    # refusal never showed is counted afresh before the next one.
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)
    unsure: set[tuple[str, str]] = field(default_factory=set)

    def auth(self, office: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[office]}"}

    def pick(self, rng: random.Random, among: list[str] | None = None) -> str:
        """An application to send to (the ones at village_review unless ``among``)."""
        wf = rng.choice(among or self.apps)
        self.touch(wf)
        return wf

    def touch(self, workflow_id: str) -> None:
        self.touched.append(workflow_id)


def _problem(r: httpx.Response) -> Outcome:
    if r.status_code >= 500:
        return Outcome("crash", f"HTTP {r.status_code}: {r.text[:200]}")
    if r.status_code >= 400:
        try:
            detail = str(r.json().get("detail", ""))
        except ValueError:
            detail = ""
        is_problem = r.headers.get("content-type", "").startswith("application/problem+json")
        return Outcome("refused", detail if is_problem else "")
    body = r.json()
    if isinstance(body, dict) and body.get("refused") and not body.get("done"):
        return Outcome("refused", "; ".join(body.get("refused_items", [])))
    return Outcome("accepted", r.text[:200])


async def _by_client(call: Awaitable[RequestResult]) -> Outcome:
    """A request through ``AidflowClient``: its ``Refused`` is the one-line reason."""
    try:
        result = await call
    except Refused as e:
        return Outcome("refused", str(e))
    except ValidationError as e:  # the client's own models refused it, naming the field
        return Outcome("refused", str(e).splitlines()[0])
    return Outcome("accepted" if result.accepted else "refused", result.message)


async def _by_service(t: Target, wf: str, update: str, body: dict[str, Any]) -> Outcome:
    """A body as a service sends it, signed with its own credential: proven, so only
    what it carries can refuse it."""
    try:
        await t.service.get_workflow_handle(wf).execute_update(update, body)
    except WorkflowUpdateFailedError as e:
        return Outcome("refused", str(getattr(e.cause, "message", e.cause)))
    except RPCError as e:  # the server's own limits (a payload over its size)
        return Outcome("refused", f"{e.status.name if e.status else 'RPC'}: {e.message}")
    return Outcome("accepted", f"{update} from a service")


# ----------------------------------------------------------------- the classes


def _decision(rng: random.Random, **change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"stage": "village_review", "decision": "approve"}
    body.update(change)
    return body


async def http_missing(t: Target, rng: random.Random) -> Outcome:
    body = _decision(rng)
    del body[rng.choice(["stage", "decision"])]
    return await _post_decision(t, rng, body)


async def http_wrong_types(t: Target, rng: random.Random) -> Outcome:
    key, value = rng.choice(
        [("stage", 12345), ("decision", ["approve"]), ("reason", {"x": 1}), ("request_id", 7.5)]
    )
    return await _post_decision(t, rng, _decision(rng, **{key: value}))


async def http_nulls(t: Target, rng: random.Random) -> Outcome:
    return await _post_decision(t, rng, _decision(rng, **{rng.choice(["stage", "decision"]): None}))


async def http_huge(t: Target, rng: random.Random) -> Outcome:
    key = rng.choice(["reason", "request_id", "stage"])
    return await _post_decision(
        t, rng, _decision(rng, decision="reject", **{key: "长" * rng.choice([5_000, 200_000])})
    )


async def http_control_characters(t: Target, rng: random.Random) -> Outcome:
    bad = rng.choice(CONTROL)
    key = rng.choice(["reason", "request_id"])
    return await _post_decision(t, rng, _decision(rng, decision="reject", **{key: f"x{bad}y"}))


async def http_unknown_values(t: Target, rng: random.Random) -> Outcome:
    key, value = rng.choice(
        [("stage", "nope"), ("decision", "maybe"), ("stage", "county_approval"), ("stage", "paid")]
    )
    return await _post_decision(t, rng, _decision(rng, **{key: value}))


async def http_wrong_place_or_role(t: Target, rng: random.Random) -> Outcome:
    office = rng.choice(["other_village", "township", "county", "applicant"])
    return await _post_decision(t, rng, _decision(rng), office=office)


async def http_forged_actor(t: Target, rng: random.Random) -> Outcome:
    actor = {
        "id": "mallory",
        "name": "m",
        "role": "county_education_bureau",
        "place_code": "341225000000",
    }
    return await _post_decision(t, rng, _decision(rng, actor=actor), office="other_village")


async def http_no_or_bad_credential(t: Target, rng: random.Random) -> Outcome:
    headers = rng.choice(
        [
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": f"Bearer {t.keys['village'][:-2]}xx"},
        ]
    )
    wf = t.pick(rng)
    r = await t.http.post(f"/v1/applications/{wf}/decisions", json=_decision(rng), headers=headers)
    return _problem(r)


async def http_late_objection_or_wrong_request(t: Target, rng: random.Random) -> Outcome:
    wf = t.pick(rng)
    path, body, office = rng.choice(
        [
            ("objections", {"text": "他家有车"}, None),  # no notice is up yet
            (
                "objection-resolutions",
                {"objection_id": "obj-1", "outcome": "upheld", "reason": "x"},
                "village",
            ),
            ("account", ACCOUNT, "village"),
            ("receipts", {"funding_source": "county_budget"}, "village"),
            ("withdrawal", {"reason": "x"}, "village"),  # only the applicant withdraws
        ]
    )
    headers = t.auth(office) if office else {}
    r = await t.http.post(f"/v1/applications/{wf}/{path}", json=body, headers=headers)
    return _problem(r)


async def http_invalid_application(t: Target, rng: random.Random) -> Outcome:
    form = applicants(1, 2027, rng.randint(0, 10**6))[0].model_dump(mode="json")
    flaw = rng.choice(["id", "account", "places", "level", "programme"])
    if flaw == "id":
        form["national_id"] = form["national_id"][:-1] + (
            "0" if form["national_id"][-1] != "0" else "1"
        )
    elif flaw == "account":
        form["account_number"] = "12ab"
    elif flaw == "places":
        form["places"]["village_code"] = "x' OR 1=1"
    elif flaw == "level":
        form["education_level"] = "kindergarten"
    else:
        form["programme"] = "nope"
    r = await t.http.post(
        "/v1/applications",
        json={"form": form, "received_at": "2027-08-10T10:00:00+08:00"},
        headers=t.auth("village"),
    )
    return _problem(r)


async def _post_decision(
    t: Target, rng: random.Random, body: dict[str, Any], office: str = "village"
) -> Outcome:
    wf = t.pick(rng)
    r = await t.http.post(f"/v1/applications/{wf}/decisions", json=body, headers=t.auth(office))
    return _problem(r)


async def four_eyes_variants(t: Target, rng: random.Random) -> Outcome:
    """The official who approved the village review decides the township's review too,
    under the same id written another way: a township key bound to it (the gateway), or
    a service naming it through the client. Issue 16: 'v-1 ' passed as another person."""
    wf = t.pick(rng, t.later)
    variant = rng.choice(SAME_OFFICIAL)
    if rng.random() < 0.5:
        r = await t.http.post(
            f"/v1/applications/{wf}/decisions",
            json={"stage": "township_review", "decision": "approve"},
            headers=t.auth(f"same_official:{variant}"),
        )
        return _problem(r)
    actor = Actor(
        id=variant, name="村干部", role=Role.TOWNSHIP_POVERTY_OFFICE, place_code=t.township
    )
    req = DecisionRequest(
        request_id=uuid.uuid4().hex,
        actor=actor,
        stage="township_review",
        decision=DecisionKind.APPROVE,
    )
    return await _by_client(t.api.decide(wf, req))


async def http_request_id_other_body(t: Target, rng: random.Random) -> Outcome:
    """The id of the village's accepted approval, sent again on a decision with another
    body: refused naming the first (issue 16: it answered 'accepted' with the first
    result, and the township's approval silently did nothing)."""
    wf = t.pick(rng, t.later)
    office, body = rng.choice(
        [
            ("township", {"stage": "township_review", "decision": "approve"}),
            ("township", {"stage": "township_review", "decision": "return", "reason": "补户口本"}),
            ("village", {"stage": "village_review", "decision": "reject", "reason": "重复"}),
            ("village", {"stage": "village_review", "decision": "approve", "reason": "再审"}),
        ]
    )
    r = await t.http.post(
        f"/v1/applications/{wf}/decisions",
        json=body,
        headers={**t.auth(office), "Idempotency-Key": FIRST_REQUEST_ID},
    )
    return _problem(r)


async def http_request_id_other_operation(t: Target, rng: random.Random) -> Outcome:
    """The id of the village's accepted approval on another kind of request (issue 16:
    an objection's id on a decision answered with the objection's result)."""
    wf = t.pick(rng, t.later)
    path, office, body = rng.choice(
        [
            ("objections", "applicant", {"text": "他家有车"}),
            ("corrections", "village", {"changes": {"university": "安徽大学"}}),
            (
                "objection-resolutions",
                "village",
                {"objection_id": "obj-1", "outcome": "dismissed", "reason": "查无实据"},
            ),
            ("account", "village", ACCOUNT),
            ("receipts", "village", {"funding_source": "county_budget"}),
        ]
    )
    r = await t.http.post(
        f"/v1/applications/{wf}/{path}",
        json=body,
        headers={**t.auth(office), "Idempotency-Key": FIRST_REQUEST_ID},
    )
    return _problem(r)


async def http_late_objection(t: Target, rng: random.Random) -> Outcome:
    """An objection after the village notice ended (the application is at the township's
    review): refused, naming the stage. Mostly with a resident's own key: without one,
    the per-address limit may answer first (429, also a named refusal)."""
    wf = t.pick(rng, t.later)
    headers = {} if rng.random() < 0.2 else t.auth("applicant")
    text = rng.choice(["他家有车", "他家新盖了楼房", "户口早已迁出本村"])
    r = await t.http.post(f"/v1/applications/{wf}/objections", json={"text": text}, headers=headers)
    return _problem(r)


async def huge_objection(t: Target, rng: random.Random) -> Outcome:
    """An objection over its limits (2,000 characters of text, 16 KB of body without a
    key): from the public, a resident's key, or a service that relays what it was given
    (issue 16: three 1.5 MB objections broke ``status`` and ``trail`` for good)."""
    wf = t.pick(rng, t.apps + t.later)
    # In characters of three UTF-8 bytes: 500,000 of them are 1.5 MB, under the
    # server's 2 MB for a message, so that the workers are the ones to refuse it.
    key, size = rng.choice(
        [
            ("text", 2_001),
            ("text", 20_000),
            ("text", 500_000),
            ("contact", 5_000),
            ("evidence_ref", 500_000),
        ]
    )
    body: dict[str, Any] = {"text": "他家有车", key: "长" * size}
    path = rng.choice(["public", "resident", "service"])
    if path == "service":
        villager = {"id": "villager-1", "name": "村民", "role": "public"}
        body = {"request_id": uuid.uuid4().hex, "actor": villager, **body}
        return await _by_service(t, wf, "lodge_objection", body)
    headers = t.auth("applicant") if path == "resident" else {}
    r = await t.http.post(f"/v1/applications/{wf}/objections", json=body, headers=headers)
    return _problem(r)


async def huge_place_code(t: Target, rng: random.Random) -> Outcome:
    """A place code of megabytes (issue 16: one in a request hit PAYLOADS_TOO_LARGE and
    froze the application for about 20 s): in a form, a posting, a listing's filter, or
    the actor of a raw Temporal update."""
    huge = "3" * rng.choice([5_000, 1_000_000])
    where = rng.choice(["form", "posting", "listing", "raw"])
    if where == "form":
        form = applicants(1, 2027, rng.randint(0, 10**6))[0].model_dump(mode="json")
        form["places"][rng.choice(["village_code", "township_code", "county_code"])] = huge
        r = await t.http.post("/v1/applications", json={"form": form}, headers=t.auth("village"))
    elif where == "posting":
        posting = {"level": "village", "season": "2027", "place_code": huge}
        r = await t.http.post("/v1/notices/postings", json=posting, headers=t.auth("village"))
    elif where == "listing":
        r = await t.http.get(
            "/v1/applications", params={"village": huge[:5_000]}, headers=t.auth("village")
        )
    else:
        wf = t.pick(rng)
        actor = {"id": "mallory", "name": "m", "role": "village_committee", "place_code": huge}
        decision = {"request_id": uuid.uuid4().hex, "actor": actor, **_decision(rng)}
        try:
            await t.raw.get_workflow_handle(wf).execute_update("decide", decision)
        except WorkflowUpdateFailedError as e:
            return Outcome("refused", str(getattr(e.cause, "message", e.cause)))
        except RPCError as e:
            return Outcome("refused", f"{e.status.name if e.status else 'RPC'}: {e.message}")
        return Outcome("accepted", "decide with a huge place code")
    return _problem(r)


async def raw_start_wrong_amount(t: Target, rng: random.Random) -> Outcome:
    """A real application's start copied with another amount and signed as the gateway
    signs it: the amount is the programme's, whoever starts (R10, R11)."""
    due = t.start_input.amount_cny
    amount = rng.choice([due * 10, due + 1, due - 1, 0, -due, 10**9])
    inp = t.start_input
    wf = application_workflow_id(
        inp.programme.code, inp.season, inp.places.county_code, uuid.uuid4().hex[:16]
    )
    t.touch(wf)
    copied = inp.model_copy(update={"workflow_id": wf, "amount_cny": amount})
    handle = await t.api.client.start_workflow(
        ApplicationWorkflow.run, copied, id=wf, task_queue=t.queue
    )
    return await _ends_refused(handle, f"a start with {amount} CNY")


async def http_correction_wrong_amount(t: Target, rng: random.Random) -> Outcome:
    """An amount in a correction: the amount follows from the programme and the form,
    never from a field anyone corrects."""
    wf = t.pick(rng)
    body = rng.choice(
        [
            {"changes": {"amount_cny": 30_000}},
            {"changes": {"amount": 3_000, "university": "安徽大学"}},
            {"changes": {"university": "安徽大学"}, "amount_cny": 1},
            {"amount_cny": -3_000},
        ]
    )
    r = await t.http.post(
        f"/v1/applications/{wf}/corrections", json=body, headers=t.auth("village")
    )
    return _problem(r)


async def account_by_wrong_office(t: Target, rng: random.Random) -> Outcome:
    """The account the money goes to, corrected by an office that may not: another
    village, the township or county, the applicant (the gateway), or a service naming
    such an actor through the client."""
    wf = t.pick(rng, t.apps + t.later)
    if rng.random() < 0.7:
        office = rng.choice(["other_village", "township", "county", "applicant"])
        r = await t.http.post(
            f"/v1/applications/{wf}/account", json=ACCOUNT, headers=t.auth(office)
        )
        return _problem(r)
    actor = rng.choice(
        [
            Actor(id="v-9", name="v-9", role=Role.VILLAGE_COMMITTEE, place_code="341225999999"),
            Actor(id="t-1", name="t-1", role=Role.TOWNSHIP_POVERTY_OFFICE, place_code=t.township),
            Actor(id="villager-1", name="村民", role=Role.PUBLIC),
        ]
    )
    return await _by_client(t.api.correct_account(wf, actor, **ACCOUNT))


MISTYPED_CHANGES: tuple[dict[str, Any], ...] = (
    {"name": None},
    {"name": None, "university": 12345},  # issue 16: accepted, then persistence stopped
    {"university": 12345},
    {"bank_name": 6230},
    {"freshman": "perhaps"},
    {"education_level": "kindergarten"},
    {"account_holder": {"x": 1}},
    {"university_in_province": [1]},
    {"nope": "x"},
    {"national_id": "x"},
)


async def correction_mistyped_changes(t: Target, rng: random.Random) -> Outcome:
    """A correction whose ``changes`` hold nulls, numbers for text or unknown fields:
    from the village's key, or its service signing the Temporal update itself."""
    wf = t.pick(rng)
    body: dict[str, Any] = {"changes": dict(rng.choice(MISTYPED_CHANGES))}
    if rng.random() < 0.2:
        body = {"changes": rng.choice([None, "name=张三", ["name"]])}
    if rng.random() < 0.6:
        r = await t.http.post(
            f"/v1/applications/{wf}/corrections", json=body, headers=t.auth("village")
        )
        return _problem(r)
    actor = {"id": "v-1", "name": "v-1", "role": "village_committee", "place_code": ""}
    return await _by_service(
        t, wf, "correct", {"request_id": uuid.uuid4().hex, "actor": actor, **body}
    )


async def raw_update_without_statement(t: Target, rng: random.Random) -> Outcome:
    wf = t.pick(rng)
    actor = {
        "id": "mallory",
        "name": "m",
        "role": rng.choice([r.value for r in Role]),
        "place_code": "341225100201",
    }
    req = DecisionRequest.model_validate(
        {
            "request_id": uuid.uuid4().hex,
            "actor": actor,
            "stage": "village_review",
            "decision": DecisionKind.APPROVE,
        }
    )
    try:
        await t.raw.get_workflow_handle(wf).execute_update(ApplicationWorkflow.decide, req)
    except WorkflowUpdateFailedError as e:
        return Outcome("refused", str(getattr(e.cause, "message", e.cause)))
    return Outcome("accepted", "update")


async def raw_unknown_update(t: Target, rng: random.Random) -> Outcome:
    wf = t.pick(rng)
    try:
        await t.raw.get_workflow_handle(wf).execute_update(
            rng.choice(["nope", "approve", "pay"]), {"x": 1}
        )
    except (WorkflowUpdateFailedError, RPCError) as e:
        return Outcome("refused", str(getattr(e, "cause", None) or e))
    return Outcome("accepted", "unknown update")


async def _signal_observed(
    t: Target, wf: str, name: str, send: Callable[[], Awaitable[None]]
) -> Outcome:
    """Send a bad signal and wait for its refusal in the application's trail: refused if
    it shows (its reason, as recorded), else not recorded (issue 16: 52 of 63 were
    dropped without a word). Signals to one workflow are handled in the order sent."""
    pair = (wf, name)
    if pair in t.unsure:
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):
            t.refusals[pair] = len(await _refusals(t, wf, name))
            t.unsure.discard(pair)
    seen = t.refusals[pair]
    await send()
    deadline = asyncio.get_running_loop().time() + SIGNAL_WAIT_SECONDS
    while True:
        try:
            refusals = await _refusals(t, wf, name)
        except (RPCError, WorkflowQueryFailedError) as e:
            t.unsure.add(pair)
            return Outcome("unrecorded", f"{name}: the trail does not answer: {e}")
        if len(refusals) > seen:
            t.refusals[pair] = seen + 1
            detail = refusals[seen].detail
            return Outcome("refused", str(detail.get("reason") or refusals[seen].summary))
        if asyncio.get_running_loop().time() > deadline:
            t.unsure.add(pair)
            return Outcome(
                "unrecorded", f"{name}: no refusal in the trail after {SIGNAL_WAIT_SECONDS:g} s"
            )
        await asyncio.sleep(0.02)


async def _refusals(t: Target, wf: str, name: str) -> list[TrailEvent]:
    return [
        e for e in await t.api.trail(wf) if e.kind == "refused" and e.detail.get("request") == name
    ]


async def raw_request_signal(t: Target, rng: random.Random) -> Outcome:
    """A request signal with no statement: the workflow records it as refused."""
    wf = t.pick(rng)
    req = WithdrawalRequest.model_validate(
        {"request_id": uuid.uuid4().hex, "actor": {"id": "x", "name": "x", "role": "applicant"}}
    )
    handle = t.raw.get_workflow_handle(wf)
    return await _signal_observed(
        t, wf, "withdraw_signal", lambda: handle.signal(ApplicationWorkflow.withdraw_signal, req)
    )


async def raw_undecodable_signal(t: Target, rng: random.Random) -> Outcome:
    """A request or internal signal with no argument, two, or one that is not its type:
    it once failed the workflow task for good; now it is recorded as refused."""
    wf = t.pick(rng)
    name = rng.choice(
        ["decide_signal", "withdraw_signal", "lodge_objection_signal", "payment_result"]
    )
    args: list[Any] = rng.choice(
        [[], ["x", "y"], ["not a request"], [12345], [{"request_id": None}], [[]]]
    )
    handle = t.raw.get_workflow_handle(wf)
    return await _signal_observed(t, wf, name, lambda: handle.signal(name, args=args))


async def raw_forged_internal(t: Target, rng: random.Random) -> Outcome:
    wf = t.pick(rng)
    handle = t.raw.get_workflow_handle(wf)
    if rng.random() < 0.5:
        outcome = PaymentOutcome(
            batch_id="b",
            idempotency_key="k",
            attempt=1,
            account_masked="623020******1234",
            sent_at=IN_WINDOW_2027,
            status=rng.choice(["paid", "returned"]),
        )
        return await _signal_observed(
            t,
            wf,
            "payment_result",
            lambda: handle.signal(ApplicationWorkflow.payment_result, outcome),
        )
    release = FundsRelease(
        request_id="fr", reference="x", arrived_at=IN_WINDOW_2027, pay_by=IN_WINDOW_2027
    )
    return await _signal_observed(
        t, wf, "funds_released", lambda: handle.signal(ApplicationWorkflow.funds_released, release)
    )


async def cli_bad_input(t: Target, rng: random.Random) -> Outcome:
    """The command line, as an office's clerk mistypes it: refused on one line with a
    non-zero status, never a traceback."""
    wf = rng.choice(t.apps)
    folder = t.work / "cli"
    folder.mkdir(exist_ok=True)
    broken = folder / "broken.json"
    broken.write_text('{"programme": "county-subsidy", ', encoding="utf-8")
    args = rng.choice(
        [
            ["decide", wf, "--stage", "nope", "--decision", "approve"],
            ["decide", wf, "--stage", "village_review", "--decision", "maybe"],
            ["decide", "no-such-application", "--stage", "village_review", "--decision", "approve"],
            ["apply", str(folder / "missing.csv")],
            ["apply", str(folder)],
            ["apply", str(broken)],
            ["correct", wf, "--set", "name"],
            ["correct", wf, "--document", "household_register_head=x"],
            ["report", "--county", "341225000000", "--season", "twenty"],
            ["plan", "--programme", "nope", "--season", "2027"],
            ["status", "no-such-application"],
            ["list", "--village", "x' OR 1=1"],
            ["correct-account", wf, "--account", "12ab", "--holder", "x", "--bank", "x"],
            ["audit", "export", "--out", str(folder), "--format", "pdf"],
        ]
    )
    if wf in args:
        t.touch(wf)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIDFLOW_")},
        "AIDFLOW_API_URL": t.url,
        "AIDFLOW_API_KEY": t.keys["village"],
        "AIDFLOW_DATA_DIR": str(t.work / "cli-data"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "aidflow"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    text = err.decode(errors="replace").strip()
    if proc.returncode == 0:
        return Outcome("accepted", f"aidflow {' '.join(args)}: exit 0")
    if "Traceback" in text or not text:
        return Outcome("crash", f"aidflow {' '.join(args)}: {text[-300:] or 'no reason given'}")
    return Outcome("refused", text.splitlines()[-1])


async def raw_malformed_start(t: Target, rng: random.Random) -> Outcome:
    wf = f"fuzz-start-{uuid.uuid4().hex[:10]}"
    t.touch(wf)
    kind = rng.choice(["ApplicationWorkflow", "SeasonWorkflow", "PayoutBatchWorkflow"])
    arg = rng.choice([{}, {"workflow_id": wf}, [], "x", {"batch_id": "../../x", "items": []}])
    handle = await t.raw.start_workflow(kind, arg, id=wf, task_queue=t.queue)
    return await _ends_refused(handle, f"{kind} start with {arg!r}")


async def _ends_refused(handle: Any, what: str) -> Outcome:
    """A start that must end at once, failed with its reason."""
    try:
        await asyncio.wait_for(handle.result(), 30)
    except WorkflowFailureError as e:
        return Outcome("refused", str(e.cause))
    except TimeoutError:
        with contextlib.suppress(RPCError):
            await handle.terminate("fuzz: still running")
        return Outcome("crash", f"{what} still running after 30 s")
    return Outcome("accepted", f"{what} ran to completion")


async def http_cases_and_loans(t: Target, rng: random.Random) -> Outcome:
    """The newer bodies (cases, the loan's queue and receipts, a cancellation): each sent
    wrong in one of several ways, by the wrong office or malformed; refused, never a 500."""
    wf = t.pick(rng)
    junk = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ234567") for _ in range(16))
    huge = "名" * rng.choice((101, 5_000))
    case = {
        "programme": "dropout-persuasion",
        "year": 2027,
        "places": t.start_input.places.model_dump(mode="json"),
        "name": "李小红",
        "national_id": "341225200701011234",
        "members": [{"actor_id": "t-1", "name": "老师", "role": "teacher"}],
    }
    choice = rng.randrange(8)
    if choice == 0:  # a case opened by an office that does not open them
        r = await t.http.post("/v1/cases", json=case, headers=t.auth("village"))
    elif choice == 1:  # a case with a field missing, or a huge name
        bad = dict(case)
        if rng.random() < 0.5:
            bad.pop(rng.choice(list(bad)))
        else:
            bad["name"] = huge
        r = await t.http.post("/v1/cases", json=bad, headers=t.auth("county"))
    elif choice == 2:  # a contact to a case that does not exist
        body = {"member": "t-1", "on": "2027-03-02", "kind": "visit", "done": "家访"}
        r = await t.http.post(
            f"/v1/cases/case/dropout-persuasion/2027/341225/{junk}/contacts",
            json=body,
            headers=t.auth("village"),
        )
    elif choice == 3:  # the loan's queue by a village, or with a bad number
        body = {"national_id": rng.choice(("123", "341225200701011234", huge)), "name": "学生"}
        r = await t.http.post(
            "/v1/loans/queue", json=body, headers=t.auth(rng.choice(("village", "county")))
        )
    elif choice == 4:  # a receipt's code asked by an office that is no university
        r = await t.http.get(f"/v1/loans/receipts/{junk}", headers=t.auth("county"))
    elif choice == 5:  # a code that is not one
        r = await t.http.get(f"/v1/loans/receipts/{huge[:40]}!", headers=t.auth("county"))
    elif choice == 6:  # a cancellation of a programme no office cancels, or without reason
        body = rng.choice(({"reason": "举报属实"}, {}, {"reason": huge}))
        r = await t.http.post(
            f"/v1/applications/{wf}/cancellation", json=body, headers=t.auth("county")
        )
    else:  # a case report or periodic report with a malformed period
        r = await t.http.get(
            "/v1/case-reports/periodic",
            params={
                "programme": "dropout-persuasion",
                "period": rng.choice(("2027-13", "2027-Q5", junk)),
            },
            headers=t.auth("county"),
        )
    return _problem(r)


CLASSES: dict[str, Callable[[Target, random.Random], Awaitable[Outcome]]] = {
    "http_missing": http_missing,
    "http_wrong_types": http_wrong_types,
    "http_nulls": http_nulls,
    "http_huge": http_huge,
    "http_control_characters": http_control_characters,
    "http_unknown_values": http_unknown_values,
    "http_wrong_place_or_role": http_wrong_place_or_role,
    "http_forged_actor": http_forged_actor,
    "http_no_or_bad_credential": http_no_or_bad_credential,
    "http_late_or_misdirected": http_late_objection_or_wrong_request,
    "http_invalid_application": http_invalid_application,
    "four_eyes_variants": four_eyes_variants,
    "http_request_id_other_body": http_request_id_other_body,
    "http_request_id_other_operation": http_request_id_other_operation,
    "http_late_objection": http_late_objection,
    "huge_objection": huge_objection,
    "huge_place_code": huge_place_code,
    "raw_start_wrong_amount": raw_start_wrong_amount,
    "http_correction_wrong_amount": http_correction_wrong_amount,
    "account_by_wrong_office": account_by_wrong_office,
    "correction_mistyped_changes": correction_mistyped_changes,
    "raw_update_without_statement": raw_update_without_statement,
    "raw_unknown_update": raw_unknown_update,
    "raw_request_signal": raw_request_signal,
    "raw_forged_internal": raw_forged_internal,
    "raw_malformed_start": raw_malformed_start,
    "raw_undecodable_signal": raw_undecodable_signal,
    "cli_bad_input": cli_bad_input,
    "http_cases_and_loans": http_cases_and_loans,
}


# ------------------------------------------------------------------- the stack


async def run_fuzz(requests: int, seed: int, work: Path, applications: int = 6) -> dict[str, Any]:
    rng = random.Random(seed)
    env = await start_time_skipping_server()
    url = f"sqlite:///{work / 'fuzz.db'}"
    upgrade(url)
    engine = make_engine(url)
    # The synthetic applicants go round the sample villages: keep one village's (and one
    # more, to take past its village notice).
    drawn = applicants((applications + 1) * 12, 2027, seed)
    village = drawn[0].places.village_code
    forms = [f for f in drawn if f.places.village_code == village][: applications + 1]
    keys = Keys(rng.randbytes(32))
    load_sample_county(engine, forms, 2027, keys.hash_id, work)
    calendar = build_calendar("state-council")
    deps = Dependencies(
        engine,
        calendar,
        keys,
        work / "files",
        work / "bank",
        statement_max_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    api = AidflowClient(
        env.client,
        task_queue=queue,
        keys=keys,
        calendar=calendar,
        programmes=dict(BUILTIN_PROGRAMMES),
        lookup_member=RegistryReader(engine).lookup,
        lookup_applications=RegistryReader(engine).applications,
        claim_application=RegistryReader(engine).claim,
        statement_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    township = forms[0].places.township_code
    offices = {
        "village": (THE_VILLAGE_OFFICIAL, Role.VILLAGE_COMMITTEE, village),
        "other_village": ("v-9", Role.VILLAGE_COMMITTEE, "341225999999"),
        "township": ("t-1", Role.TOWNSHIP_POVERTY_OFFICE, township),
        "county": ("c-1", Role.COUNTY_EDUCATION_BUREAU, forms[0].places.county_code),
        "applicant": ("a-1", Role.APPLICANT, village),
        # The village's official again, holding a township key under one spelling or another.
        **{
            f"same_official:{v}": (v, Role.TOWNSHIP_POVERTY_OFFICE, township) for v in SAME_OFFICIAL
        },
    }
    api_keys: dict[str, str] = {}
    bindings: dict[str, Binding] = {}
    for name, (a, r, p) in offices.items():
        row, api_keys[name] = credentials.create(
            engine, keys.authority, actor_id=a, actor_name=a, role=r, place_code=p
        )
        bindings[name] = credentials.binding_of(row)
    per_class: dict[str, Stats] = defaultdict(Stats)
    touches: list[Touch] = []
    started = datetime.now(UTC)
    try:
        async with (
            build_worker(env.client, queue, deps),
            serving_app(create_app(api, engine, keys, deps.files_dir)) as url,
        ):
            apps = [await api.submit(f, now=IN_WINDOW_2027) for f in forms]
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                later = [apps.pop()]
                for wf in later:
                    await _past_the_village_notice(env, api, http, api_keys["village"], wf)
                t = Target(
                    http,
                    env.client,
                    api,
                    _as_service(env.client, keys, bindings["village"]),
                    api_keys,
                    apps,
                    later,
                    queue,
                    await _start_input(env.client, apps[0]),
                    township,
                    url=url,
                    work=work,
                )
                names = list(CLASSES)
                for _ in range(requests):
                    name = rng.choice(names)
                    t.touched = []
                    sent = datetime.now(UTC)
                    try:
                        with warnings.catch_warnings():
                            # A mistyped body is serialised as it is, on purpose.
                            warnings.simplefilter("ignore", UserWarning)
                            outcome = await CLASSES[name](t, rng)
                    except Exception:
                        outcome = Outcome("crash", traceback.format_exc(limit=3))
                    per_class[name].add(outcome, name)
                    touches += [Touch(name, wf, sent) for wf in t.touched]
                # A failure the good requests cause is theirs, not the last class's.
                checked = datetime.now(UTC)
                touches += [Touch(GOOD_REQUEST, wf, checked) for wf in t.apps + t.later]
                still = await _still_take_a_good_request(t)
                good = f"{still}/{len(t.apps) + len(t.later)}"
                workflows = await _workflows_of(env.client, queue)
                charged, unattributed = await _task_failures(env, workflows, touches)
                unattributed += charged.pop(GOOD_REQUEST, 0)
                privacy = await _r9(env.client, engine, work, sorted({w for w, _ in workflows}))
    finally:
        await env.shutdown()
        engine.dispose()
    for name, failed in charged.items():
        per_class[name].task_failures += failed
    total = Stats(task_failures=unattributed)
    for s in per_class.values():
        total.tried += s.tried
        total.refused += s.refused
        total.wrongly_accepted += s.wrongly_accepted
        total.task_failures += s.task_failures
        total.crashes += s.crashes
        total.signals_not_recorded += s.signals_not_recorded
    return {
        "requests": requests,
        "seed": seed,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "tried": total.tried,
        "refused": total.refused,
        "wrongly_accepted": total.wrongly_accepted,
        "task_failures": total.task_failures,
        # Failed workflow tasks no class is charged with: before any class had sent to
        # their workflow, or after the good requests (in ``task_failures`` too).
        "task_failures_unattributed": unattributed,
        "crashes": total.crashes,
        "signals_not_recorded": total.signals_not_recorded,
        "workflows_scanned": len(workflows),
        "workflows_still_taking_good_requests": good,
        "r9": privacy,
        "classes": {k: v.summary() for k, v in sorted(per_class.items())},
    }


def _as_service(client: Client, keys: Keys, binding: Binding) -> Client:
    """A county service that signs its own Temporal messages with its credential
    (``workers/signing.py``): what it sends is proven, so only its body can be wrong."""
    signer = ServiceCredential(
        binding, credential_key(keys.authority, binding), SKIPPED_CLOCK_LIFETIME
    )
    config = client.config()
    config["interceptors"] = [
        *config["interceptors"],
        SigningInterceptor(signer, client.data_converter.payload_converter),
    ]
    return Client(**config)


async def _start_input(client: Client, wf: str) -> ApplicationInput:
    """The input a real application started with (sealed and masked as the client made it)."""
    history = await client.get_workflow_handle(wf).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (inp,) = await client.data_converter.decode(started.input.payloads, [ApplicationInput])
    assert isinstance(inp, ApplicationInput)
    return inp


async def _past_the_village_notice(
    env: WorkflowEnvironment, api: AidflowClient, http: httpx.AsyncClient, key: str, wf: str
) -> None:
    """The village approves (request id ``FIRST_REQUEST_ID``); the application joins its
    village notice; its clock and the notice's move past the notice's end, to the
    township's review."""
    r = await http.post(
        f"/v1/applications/{wf}/decisions",
        json=_decision(random.Random(0)),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": FIRST_REQUEST_ID},
    )
    if r.status_code != 200 or not r.json().get("accepted"):
        raise RuntimeError(f"fuzz set-up: the village's approval of {wf} failed: {r.text[:300]}")
    await _wait_for_stage(api, wf, "village_notice")
    st = await api.status(wf)
    notice = api.notice_id(st.programme, st.season, Level.VILLAGE, st.places.village_code)
    for handle in (api.handle(wf), api.client.get_workflow_handle(notice)):
        delta = PAST_THE_VILLAGE_NOTICE - await env.get_current_time(handle)
        if delta > timedelta(0):
            await env.fast_forward(handle, delta)
    await _wait_for_stage(api, wf, "township_review")


async def _wait_for_stage(api: AidflowClient, wf: str, stage: str) -> None:
    """Until the application is at ``stage`` and settled (a notice step has joined its
    notice and knows when it is posted)."""
    for _ in range(300):
        st = await api.status(wf)
        joining = "joining the" in st.details_en or (
            stage.endswith("_notice") and st.waiting_until is None
        )
        if st.stage == stage and not joining:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(
        f"fuzz set-up: {wf} never reached {stage}; last: {st.stage}, {st.details_en}"
    )


async def _workflows_of(client: Client, queue: str) -> list[tuple[str, str]]:
    """Every workflow run of the fuzzer's task queue (applications, notices, seasons,
    payout batches, the fuzzed starts), as (workflow id, run id)."""
    runs = []
    async for wf in client.list_workflows(f"TaskQueue = '{queue}'"):
        runs.append((wf.id, wf.run_id))
    return runs


async def _task_failures(
    env: WorkflowEnvironment, workflows: list[tuple[str, str]], touches: list[Touch]
) -> tuple[Counter[str], int]:
    """Failed workflow tasks on these runs, charged by ``charge``. A history's times are
    its workflow's clock, which time skipping moved ahead of the wall clock: a running
    workflow's offset is read now (no clock moves while the fuzzer sends); a closed one's
    clock was never moved."""
    charged: Counter[str] = Counter()
    unattributed = 0
    for wf, run_id in workflows:
        handle = env.client.get_workflow_handle(wf, run_id=run_id)
        failed = [
            e.event_time.ToDatetime(tzinfo=UTC)
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        if not failed:
            continue
        offset = timedelta(0)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            offset = await env.get_current_time(handle) - datetime.now(UTC)
        mine = [x for x in touches if x.workflow_id == wf]
        by_class, before_any = charge([at - offset for at in failed], mine)
        charged.update(by_class)
        unattributed += before_any
    return charged, unattributed


def charge(failed_at: list[datetime], sent: list[Touch]) -> tuple[Counter[str], int]:
    """Each failure of one workflow (on the wall clock) to the class of the last request
    sent to it before then (``sent``: that workflow's, in the order sent), and how many
    failed before any request had been sent to it (the set-up's, or another workflow's
    doing)."""
    times = [x.sent for x in sent]
    charged: Counter[str] = Counter()
    before_any = 0
    for at in failed_at:
        n = bisect.bisect_right(times, at)
        if n:
            charged[sent[n - 1].name] += 1
        else:
            before_any += 1
    return charged, before_any


async def _r9(client: Client, engine: Any, work: Path, workflow_ids: list[str]) -> dict[str, Any]:
    """R9 after the fuzzing: every history of the queue, every table and export (audit
    log as CSV and XLSX, the season report) holds no full identity or account number."""
    from activities.report import build_report, write_report
    from store.audit import export

    out = work / "exports"
    out.mkdir(exist_ok=True)
    rows = await asyncio.to_thread(export, engine, out / "audit.csv", "csv")
    await asyncio.to_thread(export, engine, out / "audit.xlsx", "xlsx")
    county = "341225000000"
    await asyncio.to_thread(
        lambda: write_report(build_report(engine, "county-subsidy", 2027, county), out)
    )
    findings = await r9.scan_histories(client, workflow_ids)
    findings += await asyncio.to_thread(r9.scan_database, engine)
    findings += await asyncio.to_thread(
        r9.scan_files, work, skip=[work / "registry.csv", work / "places.csv"]
    )
    return r9.summary(findings, histories=len(workflow_ids), audit_rows=rows)


async def _still_take_a_good_request(t: Target) -> int:
    """Each application takes its stage's approval from its stage's office."""
    ok = 0
    for wf, office, stage in [(w, "village", "village_review") for w in t.apps] + [
        (w, "township", "township_review") for w in t.later
    ]:
        r = await t.http.post(
            f"/v1/applications/{wf}/decisions",
            json=_decision(random.Random(0), stage=stage),
            headers=t.auth(office),
        )
        ok += r.status_code == 200 and r.json().get("accepted") is True
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the summary here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidflow-fuzz-") as tmp:
        summary = asyncio.run(run_fuzz(args.requests, args.seed, Path(tmp)))
    text = json.dumps(summary, ensure_ascii=False, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    bad = summary["wrongly_accepted"] + summary["task_failures"] + summary["crashes"]
    sys.exit(1 if bad or not summary["r9"]["clean"] else 0)


if __name__ == "__main__":
    main()
