"""The fuzzer (issue 16): seeded bad requests of every class, through the HTTP API, the
command line (a clerk's typing) and a raw Temporal client of the namespace (messages
without proof, undecodable signals, forged internal messages, malformed starts), against
the real stack (dev server, worker, SQLite, the gateway on a port); then every touched
workflow must still take a good request.

    python -m bench.fuzz --requests 10000 --seed 1

Prints a JSON summary, in total and per class: ``tried``, ``refused`` (with a named
reason), ``wrongly_accepted``, ``task_failures`` (failed workflow tasks in the touched
histories), ``crashes`` (a 5xx answer, or an exception other than a refusal). Every
request here is bad: none may be accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from bench import r9
from models.application import DecisionRequest, WithdrawalRequest
from models.domain import DecisionKind, Role
from models.payout import FundsRelease, PaymentOutcome
from models.programmes import BUILTIN_PROGRAMMES
from store import credentials
from store.calendars import build_calendar
from store.db import make_engine, upgrade
from store.registry import RegistryReader
from store.sealing import Keys
from workers.client import AidflowClient
from workers.gateway import create_app
from workers.gateway.serving import serving_app
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.simulate import start_time_skipping_server
from workers.synthetic import applicants, load_sample_county
from workers.worker import Dependencies, build_worker
from workflows.application import ApplicationWorkflow

IN_WINDOW_2027 = datetime(2027, 8, 10, 2, 0, tzinfo=UTC)
CONTROL = ("\x00", "\x1b[31m", "\u202e", "\u200b\u0007")


@dataclass
class Outcome:
    kind: str  # refused | accepted | crash
    reason: str = ""


@dataclass
class Stats:
    tried: int = 0
    refused: int = 0
    wrongly_accepted: int = 0
    crashes: int = 0
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
        if len(self.examples) < 3:
            self.examples.append(f"{what}: {outcome.kind} {outcome.reason[:200]}")


@dataclass
class Target:
    http: httpx.AsyncClient
    raw: Client
    keys: dict[str, str]  # office -> API key
    apps: list[str]  # workflow ids, all at village_review
    queue: str
    url: str = ""  # the gateway's, for the command line
    work: Path = Path(".")
    signals: Counter[str] = field(default_factory=Counter)  # refusals each app must record

    def auth(self, office: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[office]}"}


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
    wf = rng.choice(t.apps)
    r = await t.http.post(f"/v1/applications/{wf}/decisions", json=_decision(rng), headers=headers)
    return _problem(r)


async def http_late_objection_or_wrong_request(t: Target, rng: random.Random) -> Outcome:
    wf = rng.choice(t.apps)
    path, body, office = rng.choice(
        [
            ("objections", {"text": "他家有车"}, None),  # no notice is up yet
            (
                "objection-resolutions",
                {"objection_id": "obj-1", "outcome": "upheld", "reason": "x"},
                "village",
            ),
            (
                "account",
                {"bank_name": "某行", "account_number": "6230201234567890", "account_holder": "某"},
                "village",
            ),
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
    wf = rng.choice(t.apps)
    r = await t.http.post(f"/v1/applications/{wf}/decisions", json=body, headers=t.auth(office))
    return _problem(r)


async def raw_update_without_statement(t: Target, rng: random.Random) -> Outcome:
    wf = rng.choice(t.apps)
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
    wf = rng.choice(t.apps)
    try:
        await t.raw.get_workflow_handle(wf).execute_update(
            rng.choice(["nope", "approve", "pay"]), {"x": 1}
        )
    except (WorkflowUpdateFailedError, RPCError) as e:
        return Outcome("refused", str(getattr(e, "cause", None) or e))
    return Outcome("accepted", "unknown update")


async def raw_request_signal(t: Target, rng: random.Random) -> Outcome:
    """A request signal with no statement: the workflow records it as refused."""
    wf = rng.choice(t.apps)
    req = WithdrawalRequest.model_validate(
        {"request_id": uuid.uuid4().hex, "actor": {"id": "x", "name": "x", "role": "applicant"}}
    )
    await t.raw.get_workflow_handle(wf).signal(ApplicationWorkflow.withdraw_signal, req)
    t.signals[wf] += 1
    return Outcome("refused", "recorded as refused (checked at the end)")


async def raw_undecodable_signal(t: Target, rng: random.Random) -> Outcome:
    """A request or internal signal with no argument, two, or one that is not its type:
    it once failed the workflow task for good; now it is recorded as refused."""
    wf = rng.choice(t.apps)
    name = rng.choice(
        ["decide_signal", "withdraw_signal", "lodge_objection_signal", "payment_result"]
    )
    args: list[Any] = rng.choice(
        [[], ["x", "y"], ["not a request"], [12345], [{"request_id": None}], [[]]]
    )
    await t.raw.get_workflow_handle(wf).signal(name, args=args)
    t.signals[wf] += 1
    return Outcome("refused", "recorded as refused (checked at the end)")


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


async def raw_forged_internal(t: Target, rng: random.Random) -> Outcome:
    wf = rng.choice(t.apps)
    handle = t.raw.get_workflow_handle(wf)
    if rng.random() < 0.5:
        await handle.signal(
            ApplicationWorkflow.payment_result,
            PaymentOutcome(
                batch_id="b", idempotency_key="k", status=rng.choice(["paid", "returned"])
            ),
        )
    else:
        await handle.signal(
            ApplicationWorkflow.funds_released,
            FundsRelease(
                request_id="fr", reference="x", arrived_at=IN_WINDOW_2027, pay_by=IN_WINDOW_2027
            ),
        )
    t.signals[wf] += 1
    return Outcome("refused", "recorded as refused (checked at the end)")


async def raw_malformed_start(t: Target, rng: random.Random) -> Outcome:
    wf = f"fuzz-start-{uuid.uuid4().hex[:10]}"
    kind = rng.choice(["ApplicationWorkflow", "SeasonWorkflow", "PayoutBatchWorkflow"])
    arg = rng.choice([{}, {"workflow_id": wf}, [], "x", {"batch_id": "../../x", "items": []}])
    handle = await t.raw.start_workflow(kind, arg, id=wf, task_queue=t.queue)
    try:
        await asyncio.wait_for(handle.result(), 30)
    except WorkflowFailureError as e:
        return Outcome("refused", str(e.cause))
    except TimeoutError:
        with contextlib.suppress(RPCError):
            await handle.terminate("fuzz: still running")
        return Outcome("crash", f"{kind} start with {arg!r} still running after 30 s")
    return Outcome("accepted", f"{kind} ran to completion")


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
    "raw_update_without_statement": raw_update_without_statement,
    "raw_unknown_update": raw_unknown_update,
    "raw_request_signal": raw_request_signal,
    "raw_forged_internal": raw_forged_internal,
    "raw_malformed_start": raw_malformed_start,
    "raw_undecodable_signal": raw_undecodable_signal,
    "cli_bad_input": cli_bad_input,
}


# ------------------------------------------------------------------- the stack


async def run_fuzz(requests: int, seed: int, work: Path, applications: int = 6) -> dict[str, Any]:
    rng = random.Random(seed)
    env = await start_time_skipping_server()
    url = f"sqlite:///{work / 'fuzz.db'}"
    upgrade(url)
    engine = make_engine(url)
    # The synthetic applicants go round the sample villages: keep one village's.
    drawn = applicants(applications * 12, 2027, seed)
    village = drawn[0].places.village_code
    forms = [f for f in drawn if f.places.village_code == village][:applications]
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
        statement_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    offices = {
        "village": ("v-1", Role.VILLAGE_COMMITTEE, village),
        "other_village": ("v-9", Role.VILLAGE_COMMITTEE, "341225999999"),
        "township": ("t-1", Role.TOWNSHIP_POVERTY_OFFICE, forms[0].places.township_code),
        "county": ("c-1", Role.COUNTY_EDUCATION_BUREAU, forms[0].places.county_code),
        "applicant": ("a-1", Role.APPLICANT, village),
    }
    api_keys = {
        name: credentials.create(
            engine, keys.authority, actor_id=a, actor_name=a, role=r, place_code=p
        )[1]
        for name, (a, r, p) in offices.items()
    }
    per_class: dict[str, Stats] = defaultdict(Stats)
    started = datetime.now(UTC)
    try:
        async with (
            build_worker(env.client, queue, deps),
            serving_app(create_app(api, engine, keys, deps.files_dir)) as url,
        ):
            apps = [await api.submit(f, now=IN_WINDOW_2027) for f in forms]
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                t = Target(http, env.client, api_keys, apps, queue, url=url, work=work)
                names = list(CLASSES)
                for _ in range(requests):
                    name = rng.choice(names)
                    try:
                        outcome = await CLASSES[name](t, rng)
                    except Exception:
                        outcome = Outcome("crash", traceback.format_exc(limit=3))
                    per_class[name].add(outcome, name)
                unrecorded = await _unrecorded_signal_refusals(api, t)
                task_failures = await _task_failures(env.client, apps)
                still = await _still_take_a_good_request(t)
                privacy = await _r9(env.client, engine, work, apps + api.started_seasons())
    finally:
        await env.shutdown()
        engine.dispose()
    total = Stats()
    for s in per_class.values():
        total.tried += s.tried
        total.refused += s.refused
        total.wrongly_accepted += s.wrongly_accepted
        total.crashes += s.crashes
    total.refused -= unrecorded  # a signal refusal that never reached the trail
    total.crashes += unrecorded
    return {
        "requests": requests,
        "seed": seed,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "tried": total.tried,
        "refused": total.refused,
        "wrongly_accepted": total.wrongly_accepted,
        "task_failures": task_failures,
        "crashes": total.crashes,
        "signals_not_recorded": unrecorded,
        "workflows_still_taking_good_requests": f"{still}/{len(apps)}",
        "r9": privacy,
        "classes": {
            k: {
                "tried": v.tried,
                "refused": v.refused,
                "wrongly_accepted": v.wrongly_accepted,
                "crashes": v.crashes,
                **({"examples": v.examples} if v.examples else {}),
            }
            for k, v in sorted(per_class.items())
        },
    }


async def _r9(client: Client, engine: Any, work: Path, workflow_ids: list[str]) -> dict[str, Any]:
    """R9 after the fuzzing: every history, table and export (audit log as CSV and
    XLSX, the season report) holds no full identity or account number."""
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


async def _unrecorded_signal_refusals(api: AidflowClient, t: Target) -> int:
    """Each bad signal must leave one refusal in its application's trail."""
    missing = 0
    for wf, sent in t.signals.items():
        for _ in range(100):
            refused = sum(1 for e in await api.trail(wf) if e.kind == "refused")
            if refused >= sent:
                break
            await asyncio.sleep(0.1)
        missing += max(0, sent - refused)
    return missing


async def _task_failures(client: Client, apps: list[str]) -> int:
    failed = 0
    for wf in apps:
        async for e in client.get_workflow_handle(wf).fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed += 1
    return failed


async def _still_take_a_good_request(t: Target) -> int:
    ok = 0
    for wf in t.apps:
        r = await t.http.post(
            f"/v1/applications/{wf}/decisions",
            json=_decision(random.Random(0)),
            headers=t.auth("village"),
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
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
