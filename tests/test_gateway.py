"""The HTTP gateway (R10), with a real HTTP client against the real stack: uvicorn on a
port, the dev server, the worker, credentials in the database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import re
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from openpyxl import load_workbook
from temporalio.testing import WorkflowEnvironment

from models.calendar import SHANGHAI
from models.domain import Role
from models.ids import applicant_of_application
from store import credentials
from tests.conftest import AppStack, Registry
from tests.support import (
    COUNTY,
    IN_WINDOW_2027,
    OTHER_VILLAGE,
    PLACES,
    TOWNSHIP,
    VENV_BIN,
    VILLAGE,
    form,
    make_national_id,
)
from tests.test_application_workflow import _SERIALS, Case, cst
from workers.gateway import create_app
from workers.gateway.serving import serving_app

pytestmark = pytest.mark.devserver

OTHER_COUNTY = "341226000000"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Gateway:
    http: httpx.AsyncClient
    keys: dict[str, str]  # name -> API key
    stack: AppStack
    env: WorkflowEnvironment
    registry: Registry
    app: FastAPI

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    async def new_case(self, village: str = VILLAGE) -> Case:
        serial = next(_SERIALS)
        self.registry.add(serial, village)
        places = PLACES.model_copy(update={"village_code": village})
        wf = await self.stack.api.submit(form(serial, places=places), now=IN_WINDOW_2027)
        case = Case(self.stack.api, self.env, wf)
        await case.wait_for(lambda s: s.waiting_for == "village_committee", "started")
        return case

    async def decide(self, who: str, wf: str, stage: str, **body: Any) -> httpx.Response:
        return await self.http.post(
            f"/v1/applications/{wf}/decisions",
            json={"stage": stage, "decision": "approve", **body},
            headers=self.auth(who),
        )


OFFICES = {
    "village": ("village-1", Role.VILLAGE_COMMITTEE, VILLAGE),
    "other_village": ("village-9", Role.VILLAGE_COMMITTEE, OTHER_VILLAGE),
    "township": ("township-1", Role.TOWNSHIP_POVERTY_OFFICE, TOWNSHIP),
    "county": ("county-1", Role.COUNTY_EDUCATION_BUREAU, COUNTY),
    # The village official again, now holding a county office: four eyes is per person.
    "same_person_at_county": ("village-1", Role.COUNTY_EDUCATION_BUREAU, COUNTY),
    "applicant": ("applicant-1", Role.APPLICANT, VILLAGE),
    "poverty": ("poverty-1", Role.COUNTY_POVERTY_OFFICE, COUNTY),
    "other_county": ("county-9", Role.COUNTY_EDUCATION_BUREAU, OTHER_COUNTY),
    "revoked": ("village-2", Role.VILLAGE_COMMITTEE, VILLAGE),
    "university": ("univ-10357", Role.UNIVERSITY, "10357"),
    "school": ("school-1", Role.CENTRAL_SCHOOL, TOWNSHIP),
    "teacher": ("teacher-1", Role.HELPER, "S01"),
    "other_university": ("univ-10358", Role.UNIVERSITY, "10358"),
}


@pytest_asyncio.fixture
async def gateway(
    app_stack: AppStack, ts_env: WorkflowEnvironment, registry: Registry
) -> AsyncIterator[Gateway]:
    keys = {}
    for name, (actor, role, place) in OFFICES.items():
        row, token = credentials.create(
            app_stack.engine,
            app_stack.deps.keys.authority,
            actor_id=actor,
            actor_name=actor,
            role=role,
            place_code=place,
        )
        keys[name] = token
        if name == "revoked":
            credentials.revoke(app_stack.engine, row.id)
    app = create_app(app_stack.api, app_stack.engine, app_stack.deps.keys, app_stack.deps.files_dir)
    async with (
        serving_app(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield Gateway(http, keys, app_stack, ts_env, registry, app)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def test_no_wrong_or_revoked_credential_is_401(gateway: Gateway) -> None:
    case = await gateway.new_case()
    url = f"/v1/applications/{case.wf}/decisions"
    body = {"stage": "village_review", "decision": "approve"}
    problem(await gateway.http.post(url, json=body), 401)
    forged = gateway.keys["village"][:-4] + "AAAA"
    assert (
        "wrong"
        in problem(
            await gateway.http.post(url, json=body, headers={"Authorization": f"Bearer {forged}"}),
            401,
        )["detail"]
    )
    assert (
        "revoked"
        in problem(await gateway.http.post(url, json=body, headers=gateway.auth("revoked")), 401)[
            "detail"
        ]
    )
    me = await gateway.http.get("/v1/me", headers=gateway.auth("village"))
    assert me.json()["role"] == "village_committee" and me.json()["place_code"] == VILLAGE
    assert (await case.status()).stage == "village_review"


async def test_place_role_and_four_eyes_are_403_and_the_body_names_no_actor(
    gateway: Gateway,
) -> None:
    case = await gateway.new_case()
    wf = case.wf
    assert (
        "place"
        in problem(await gateway.decide("other_village", wf, "village_review"), 403)["detail"]
    )
    assert "role" in problem(await gateway.decide("township", wf, "village_review"), 403)["detail"]
    # A role declared in the body is not a field of the request: refused, naming it.
    forged = await gateway.decide(
        "other_village",
        wf,
        "village_review",
        actor={"id": "x", "name": "x", "role": "county_education_bureau", "place_code": COUNTY},
    )
    assert any(e["field"] == "actor" for e in problem(forged, 422)["errors"])
    done = await gateway.decide("village", wf, "village_review", request_id="gw-v-1")
    assert done.status_code == 200 and done.json()["accepted"], done.text
    decided = [e for e in await case.api.trail(wf) if e.kind == "decision"][-1]
    assert decided.actor.id == "village-1" and decided.actor.credential.startswith("c-")
    # On to the county's stage.
    await case.wait_for(
        lambda s: s.notice is not None and s.notice.posted_at == cst(9, 1),
        "village posting scheduled",
    )
    await case.advance_to(cst(9, 8, 0, 1))
    await case.at_stage("township_review")
    assert (await gateway.decide("township", wf, "township_review")).status_code == 200
    await case.wait_for(
        lambda s: s.stage == "township_notice" and s.waiting_until is not None, "township notice"
    )
    await case.advance_to(cst(9, 18, 0, 1))
    await case.at_stage("county_approval")
    assert "role" in problem(await gateway.decide("township", wf, "county_approval"), 403)["detail"]
    assert (
        "four eyes"
        in problem(await gateway.decide("same_person_at_county", wf, "county_approval"), 403)[
            "detail"
        ]
    )
    assert (await gateway.decide("county", wf, "county_approval")).json()["accepted"]


async def test_a_batch_of_30_with_two_bad_items(gateway: Gateway) -> None:
    cases = await asyncio.gather(*(gateway.new_case() for _ in range(29)))
    elsewhere = await gateway.new_case(village=OTHER_VILLAGE)
    items = [
        {
            "workflow_id": c.wf,
            "request_id": f"b-{i}",
            "stage": "village_review",
            "decision": "approve",
        }
        for i, c in enumerate(cases[:28])
    ]
    items.insert(
        5,
        {
            "workflow_id": elsewhere.wf,
            "request_id": "b-other",
            "stage": "village_review",
            "decision": "approve",
        },
    )
    items.insert(
        17,
        {
            "workflow_id": "county-subsidy/2027/341225/nobody",
            "request_id": "b-none",
            "stage": "village_review",
            "decision": "approve",
        },
    )
    assert len(items) == 30
    response = await gateway.http.post(
        "/v1/batches/decisions", json={"items": items}, headers=gateway.auth("village")
    )
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert (outcome["done"], outcome["refused"]) == (28, 2)
    assert sorted(outcome["refused_items"]) == sorted(
        [f"{elsewhere.wf} b-other", "county-subsidy/2027/341225/nobody b-none"]
    )
    by_id = {r["request_id"]: r for r in outcome["results"]}
    assert by_id["b-other"]["status"] == 403 and "place" in by_id["b-other"]["message"]
    assert by_id["b-none"]["status"] == 404
    for c in cases[:28]:
        await c.at_stage("village_notice")
    assert (await cases[28].status()).stage == "village_review"


async def test_intake_on_the_server_and_who_may_date_a_paper_form(gateway: Gateway) -> None:
    f = form(next(_SERIALS)).model_dump(mode="json")
    # Today (December 2026) is outside the 2027 window: refused by the server's intake,
    # naming the field.
    refused = await gateway.http.post(
        "/v1/applications", json={"form": f}, headers=gateway.auth("village")
    )
    assert refused.status_code == 422 and refused.json()["errors"], refused.text
    # An applicant does not date a paper form.
    problem(
        await gateway.http.post(
            "/v1/applications",
            json={"form": f, "received_at": "2026-11-30T10:00:00+08:00"},
            headers=gateway.auth("applicant"),
        ),
        403,
    )
    # The village office dates a paper form it received in the 2026 window: taken, and
    # the trail says who received it, by which credential.
    serial = next(_SERIALS)
    gateway.registry.add(serial, VILLAGE)
    paper = form(serial, season=2026).model_dump(mode="json")
    taken = await gateway.http.post(
        "/v1/applications",
        json={"form": paper, "received_at": "2026-08-12T10:00:00+08:00"},
        headers=gateway.auth("village"),
    )
    assert taken.status_code in (200, 201), taken.text
    paper_wf = taken.json()["workflow_id"]
    for _ in range(50):
        submitted = [e for e in await gateway.stack.api.trail(paper_wf) if e.kind == "submitted"]
        if submitted:
            break
        await asyncio.sleep(0.1)
    detail = submitted[0].detail
    assert detail["received_by"] == OFFICES["village"][0], detail
    assert detail["received_by_credential"] and detail["submitted_at"].startswith("2026-08-12")
    # An applicant's credential submits no one else's application.
    assert (
        "own application"
        in problem(
            await gateway.http.post(
                "/v1/applications", json={"form": f}, headers=gateway.auth("applicant")
            ),
            403,
        )["detail"]
    )
    malformed = await gateway.http.post(
        "/v1/applications",
        content=b"{not json",
        headers={**gateway.auth("village"), "content-type": "application/json"},
    )
    problem(malformed, 400)
    missing = await gateway.http.post(
        "/v1/applications", json={"form": {"season": "x"}}, headers=gateway.auth("village")
    )
    fields = {e["field"] for e in problem(missing, 422)["errors"]}
    assert {"form.season", "form.applicant_name", "form.places"} <= fields


async def test_public_objections_are_anonymous_and_rate_limited(gateway: Gateway) -> None:
    case = await gateway.new_case()
    url = f"/v1/applications/{case.wf}/objections"
    statuses = [
        (await gateway.http.post(url, json={"text": "他家有车"})).status_code for _ in range(6)
    ]
    # Not at a notice yet: refused by the workflow (409) — but heard, five times a minute.
    assert statuses[:5] == [409] * 5 and statuses[5] == 429
    problem(await gateway.http.post(url, content=b"x" * 20_000), 413)


# What the document leaves out on purpose: the probe and the documents themselves.
UNDOCUMENTED = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Operations where a credential is optional: a public objection, a signed dashboard link.
CREDENTIAL_OPTIONAL = {
    ("post", "/v1/applications/{workflow_id}/objections"),
    ("get", "/dashboard"),
}


def operations(routes: Sequence[Any], prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, as the document spells paths."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router (the dashboard)
        if inner is not None:
            out |= operations(inner.routes, prefix + route.include_context.prefix)
            continue
        path = prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if path not in UNDOCUMENTED:
            out |= {(m.lower(), path) for m in route.methods or () if m != "HEAD"}
    return out


async def test_the_openapi_document_is_complete(gateway: Gateway) -> None:
    """Every route the gateway serves is in the document, and nothing else; each says how
    its caller is proven (the API key, as a bearer token or in X-API-Key)."""
    doc = (await gateway.http.get("/openapi.json")).json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    served = operations(gateway.app.routes)
    assert served == documented, (sorted(served - documented), sorted(documented - served))
    assert ("post", "/v1/batches/postings") in served and len(served) > 25
    schemes = doc["components"]["securitySchemes"]
    assert (
        schemes["apiKeyBearer"]["type"] == "http" and schemes["apiKeyBearer"]["scheme"] == "bearer"
    )
    assert schemes["apiKeyHeader"] == {
        **schemes["apiKeyHeader"],
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    required: list[dict[str, list[str]]] = [{"apiKeyBearer": []}, {"apiKeyHeader": []}]
    for method, path in sorted(documented):
        op = doc["paths"][path][method]
        expected = [*required, {}] if (method, path) in CREDENTIAL_OPTIONAL else required
        assert op.get("security") == expected, (method, path, op.get("security"))
        assert "401" in op["responses"] and "403" in op["responses"], (method, path)
    assert "ProblemDetail" in doc["components"]["schemas"]
    # The schemes only describe: the same key is let in either way, nothing else is.
    for headers in (gateway.auth("village"), {"X-API-Key": gateway.keys["village"]}):
        me = await gateway.http.get("/v1/me", headers=headers)
        assert me.status_code == 200 and me.json()["actor_id"] == "village-1", me.text
    basic = {"Authorization": "Basic " + base64.b64encode(b"village-1:x").decode()}
    problem(await gateway.http.get("/v1/me", headers=basic), 401)


async def test_reads_are_at_the_callers_place(gateway: Gateway) -> None:
    case = await gateway.new_case()
    mine = await gateway.http.get(f"/v1/applications/{case.wf}", headers=gateway.auth("village"))
    assert mine.status_code == 200 and mine.json()["stage"] == "village_review", mine.text
    # Read from the records unless asked live: the same standing, worded from the record
    # (at once, or as soon as the history's attributes show what the record says).
    for _ in range(50):
        mine = await gateway.http.get(
            f"/v1/applications/{case.wf}", headers=gateway.auth("village")
        )
        if "村委会初审：等待村委会" in mine.json()["details_zh"]:
            break
        await asyncio.sleep(0.1)
    assert "村委会初审：等待村委会" in mine.json()["details_zh"], mine.text
    live = await gateway.http.get(
        f"/v1/applications/{case.wf}?live=true", headers=gateway.auth("village")
    )
    assert live.status_code == 200, live.text
    assert {k: live.json()[k] for k in ("stage", "waiting_for")} == {
        k: mine.json()[k] for k in ("stage", "waiting_for")
    }
    assert live.json()["places"]["village_code"] == mine.json()["places"]["village_code"]
    assert live.json()["details_zh"] != mine.json()["details_zh"]
    trail = await gateway.http.get(
        f"/v1/applications/{case.wf}/trail", headers=gateway.auth("village")
    )
    assert trail.status_code == 200 and trail.json()[0]["kind"] == "submitted", trail.text
    assert (
        "place"
        in problem(
            await gateway.http.get(
                f"/v1/applications/{case.wf}/trail", headers=gateway.auth("other_village")
            ),
            403,
        )["detail"]
    )
    # A village's key cannot widen its list to another village; the county's may narrow.
    assert (
        f"village {OTHER_VILLAGE}"
        in problem(
            await gateway.http.get(
                "/v1/applications",
                params={"village": OTHER_VILLAGE},
                headers=gateway.auth("village"),
            ),
            403,
        )["detail"]
    )
    for _ in range(50):
        listed = await gateway.http.get(
            "/v1/applications",
            params={"village": VILLAGE, "season": "2027"},
            headers=gateway.auth("county"),
        )
        if case.wf in {r["workflow_id"] for r in listed.json()}:
            break
        await asyncio.sleep(0.2)  # visibility lags a moment behind
    assert case.wf in {r["workflow_id"] for r in listed.json()}, listed.text
    other = await gateway.http.get(
        "/v1/applications", params={"village": OTHER_VILLAGE}, headers=gateway.auth("county")
    )
    assert case.wf not in {r["workflow_id"] for r in other.json()}
    # The season report, built now: the county's alone.
    path = f"/v1/seasons/county-subsidy/2027/{COUNTY}/reports"
    assert problem(await gateway.http.post(path, headers=gateway.auth("village")), 403)
    built = await gateway.http.post(path, headers=gateway.auth("county"))
    assert built.status_code == 201, built.text
    assert built.json()["xlsx"].endswith(".xlsx") and "即时情况" in built.json()["text"]


def test_the_objection_limit_counts_an_ipv6_subscriber_as_one() -> None:
    from workers.gateway.auth import _network

    assert (
        _network("2001:db8:1:2:aaaa::1") == _network("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert _network("2001:db8:1:3::1") != _network("2001:db8:1:2::1")
    assert _network("203.0.113.7") == "203.0.113.7" != _network("203.0.113.8")
    assert _network("::ffff:203.0.113.7") == "203.0.113.7"
    assert _network("testclient") == "testclient"


# A 1x1 PNG: what a village committee's phone uploads, in miniature.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_a_village_posts_its_notice_with_a_photograph(gateway: Gateway) -> None:
    """The village posts its list (after the window, so that it may), a photograph of
    the posted list attached: the file is kept under its SHA-256, the digest is in the
    notice's history, each member hears of the posting, and the printed list shows
    only what R9 lets a notice show."""
    cases = [await gateway.new_case() for _ in range(2)]
    for c in cases:
        await c.advance_to(cst(9, 2, 10))
        assert (await gateway.decide("village", c.wf, "village_review")).status_code == 200
        await c.wait_for(lambda s: s.stage == "village_notice", "joined")
    for c in cases:
        await c.advance_to(cst(9, 2, 11))  # the notice's clock too: it posts at 11:00
    photo = {
        "filename": "公示照片.png",
        "media_type": "image/png",
        "content_base64": base64.b64encode(PNG).decode(),
    }
    body = {"level": "village", "season": "2027", "evidence": [photo]}
    # Not its owner; not a photograph; then the village itself.
    problem(
        await gateway.http.post(
            "/v1/notices/postings", json=body, headers=gateway.auth("township")
        ),
        403,
    )
    fake = {**photo, "content_base64": base64.b64encode(b"GIF89a....").decode()}
    problem(
        await gateway.http.post(
            "/v1/notices/postings",
            json={**body, "evidence": [fake]},
            headers=gateway.auth("village"),
        ),
        422,
    )
    r = await gateway.http.post("/v1/notices/postings", json=body, headers=gateway.auth("village"))
    assert r.status_code == 200, r.text
    [item] = r.json()
    assert item["accepted"] and "2 application(s)" in item["message"], item
    notice_id = item["notice_id"]
    digest = hashlib.sha256(PNG).hexdigest()
    kept = gateway.stack.deps.files_dir / "evidence" / f"{digest}.png"
    assert kept.read_bytes() == PNG
    for c in cases:
        # Told of the owner's posting (its automatic one would have been 08:00 on the 3rd).
        st = await c.wait_for(
            lambda s: s.notice is not None and s.notice.posted_at < cst(9, 3, 8), "posted"
        )
        assert st.notice is not None and st.notice.posted_at.date().isoformat() == "2027-09-02"
        posted = next(e for e in await c.api.trail(c.wf) if e.kind == "notice_posted")
        assert posted.detail["evidence_sha256"] == [digest] and posted.detail["posted_by"]
    # The notice as the county sees it; a village elsewhere may not.
    seen = await gateway.http.get(f"/v1/notices/{notice_id}", headers=gateway.auth("county"))
    assert seen.status_code == 200, seen.text
    [posting] = seen.json()["postings"]
    assert posting["evidence"][0]["sha256"] == digest
    assert sorted(posting["members"]) == sorted(c.wf for c in cases)
    problem(
        await gateway.http.get(f"/v1/notices/{notice_id}", headers=gateway.auth("other_village")),
        403,
    )
    page = await gateway.http.get(
        f"/v1/notices/{notice_id}/postings/1/list.html", headers=gateway.auth("village")
    )
    assert page.status_code == 200 and "公示期" in page.text
    xlsx = await gateway.http.get(
        f"/v1/notices/{notice_id}/postings/1/list.xlsx", headers=gateway.auth("village")
    )
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    listed = await gateway.stack.api.notice_status(notice_id)
    assert hashlib.sha256(xlsx.content).hexdigest() == next(
        f.sha256 for f in listed.postings[0].files if f.kind == "xlsx"
    )
    # R9: names and villages, never identity, account or phone numbers.
    for c in cases:
        st = await c.status()
        assert st.applicant_masked.split()[0] in page.text
    assert not re.search(r"\d{17}[\dX]|\d{16,19}|1[3-9]\d{9}", page.text), page.text


async def test_postings_in_a_batch_name_the_ones_refused(gateway: Gateway) -> None:
    """A village posts its notice in a batch that also names another village's notice and
    one that does not exist: its own is posted, the other two are refused and named."""
    mine = await gateway.new_case()
    theirs = await gateway.new_case(village=OTHER_VILLAGE)
    for c, key in ((mine, "village"), (theirs, "other_village")):
        await c.advance_to(cst(9, 2, 10))
        assert (await gateway.decide(key, c.wf, "village_review")).status_code == 200
        await c.wait_for(lambda s: s.stage == "village_notice", "joined")
        await c.advance_to(cst(9, 2, 11))
    [own_notice] = [n.notice_id for n in await mine.notices()]
    [other_notice] = [n.notice_id for n in await theirs.notices()]
    missing = own_notice.replace(VILLAGE, "341225999999")
    items = [
        {"request_id": "p-own", "notice_id": own_notice},
        {"request_id": "p-other", "notice_id": other_notice},
        {"request_id": "p-none", "notice_id": missing},
    ]
    r = await gateway.http.post(
        "/v1/batches/postings", json={"items": items}, headers=gateway.auth("village")
    )
    assert r.status_code == 200, r.text
    outcome = r.json()
    assert (outcome["done"], outcome["refused"]) == (1, 2), outcome
    assert sorted(outcome["refused_items"]) == sorted(
        [f"{other_notice} p-other", f"{missing} p-none"]
    )
    by_id = {x["request_id"]: x for x in outcome["results"]}
    assert by_id["p-other"]["status"] == 403, by_id["p-other"]
    assert by_id["p-none"]["status"] == 404, by_id["p-none"]
    await mine.wait_for(
        lambda s: s.notice is not None and s.notice.posted_at < cst(9, 3, 8), "posted"
    )
    # The other village's list is not up: its member still waits for its automatic time.
    other_st = await theirs.status()
    assert other_st.notice is not None and other_st.notice.posted_at == cst(9, 3, 8)
    # A batch carries no more files than one posting may.
    photo = {
        "filename": "p.png",
        "media_type": "image/png",
        "content_base64": base64.b64encode(PNG).decode(),
    }
    heavy = [
        {"request_id": f"p-heavy-{i}", "notice_id": own_notice, "evidence": [photo] * 4}
        for i in range(3)
    ]
    too_many = await gateway.http.post(
        "/v1/batches/postings", json={"items": heavy}, headers=gateway.auth("village")
    )
    assert "at most 10" in str(problem(too_many, 422)), too_many.text


async def test_the_countys_report_and_roster_download(gateway: Gateway, tmp_path: Path) -> None:
    """The season report (XLSX and Markdown) and a funds request's roster are served as
    files, to the county's offices alone, from the data folder alone."""
    await gateway.new_case()  # the season is running
    base = f"/v1/seasons/county-subsidy/2027/{COUNTY}"
    built = await gateway.http.post(f"{base}/reports", headers=gateway.auth("county"))
    assert built.status_code == 201, built.text
    links = built.json()["downloads"]
    xlsx = await gateway.http.get(links["xlsx"], headers=gateway.auth("county"))
    assert xlsx.status_code == 200, xlsx.text
    assert xlsx.headers["content-type"] == XLSX and xlsx.content
    assert "summary" in load_workbook(io.BytesIO(xlsx.content)).sheetnames
    md = await gateway.http.get(links["markdown"], headers=gateway.auth("county"))
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "即时情况" in md.text
    for other in ("other_county", "township", "village"):
        problem(await gateway.http.get(links["xlsx"], headers=gateway.auth(other)), 403)
    # Another county's name, a file of the data folder that is no report, a hidden name.
    for name in (
        f"season-now-county-subsidy-2027-{OTHER_COUNTY}.md",
        "app.db",
        f"..season-now-county-subsidy-2027-{COUNTY}.md",
    ):
        problem(
            await gateway.http.get(f"{base}/reports/{name}", headers=gateway.auth("county")), 404
        )

    requested = await gateway.http.post(
        f"{base}/funds-requests",
        json={"request_id": "fr-download-1"},
        headers=gateway.auth("county"),
    )
    assert requested.status_code == 201, requested.text
    roster_url = f"{base}/funds-requests/fr-download-1/roster.xlsx"
    roster = await gateway.http.get(roster_url, headers=gateway.auth("county"))
    assert roster.status_code == 200 and roster.headers["content-type"] == XLSX, roster.text
    sheet = load_workbook(io.BytesIO(roster.content)).active
    assert sheet is not None and sheet.cell(1, 1).value == "序号 No."
    for other in ("other_county", "village"):
        problem(await gateway.http.get(roster_url, headers=gateway.auth(other)), 403)
    # The command line fetches the roster (the same request again: the same answer), and
    # writes it here, not on the gateway's machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDFLOW_")}
    env.update(
        AIDFLOW_API_URL=str(gateway.http.base_url).rstrip("/"),
        AIDFLOW_API_KEY=gateway.keys["county"],
        AIDFLOW_DATA_DIR=str(tmp_path / "cli"),
    )
    here = tmp_path / "roster.xlsx"
    cli = await asyncio.to_thread(
        subprocess.run,
        [
            *(str(VENV_BIN / "aidflow"), "funds", "request", "--county", COUNTY),
            *("--season", "2027", "--request-id", "fr-download-1", "--out", str(here)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert here.read_bytes() == roster.content
    problem(
        await gateway.http.get(
            f"{base}/funds-requests/fr-nobody/roster.xlsx", headers=gateway.auth("county")
        ),
        404,
    )
    # A request id naming a hidden file is refused before it reaches the season.
    hidden = await gateway.http.post(
        f"{base}/funds-requests", json={"request_id": "..roster"}, headers=gateway.auth("county")
    )
    problem(hidden, 422)


async def test_a_village_key_withdraws_or_redirects_nothing_elsewhere(gateway: Gateway) -> None:
    """Another village's application: its withdrawal and its account are refused 403, and
    nothing reaches the workflow; an applicant's key withdraws only its own application."""
    theirs = await gateway.new_case(village=OTHER_VILLAGE)
    url = f"/v1/applications/{theirs.wf}"
    withdrawal = {"reason": "家庭自愿放弃"}
    account = {
        "bank_name": "阜南农商银行",
        "account_number": "6230201234567800999",
        "account_holder": "某某",
    }
    refused = problem(
        await gateway.http.post(
            f"{url}/withdrawal", json=withdrawal, headers=gateway.auth("village")
        ),
        403,
    )
    assert "only its applicant" in refused["detail"]
    refused = problem(
        await gateway.http.post(f"{url}/account", json=account, headers=gateway.auth("village")),
        403,
    )
    assert "place" in refused["detail"] and "6230201234567800999" not in str(refused)
    # Another student's applicant key is no better: it withdraws and corrects nothing.
    problem(
        await gateway.http.post(
            f"{url}/withdrawal", json=withdrawal, headers=gateway.auth("applicant")
        ),
        403,
    )
    refused = problem(
        await gateway.http.post(
            f"{url}/corrections",
            json={"changes": {"name": "别人"}, "note": "改名"},
            headers=gateway.auth("applicant"),
        ),
        403,
    )
    assert "corrects only their own" in refused["detail"]
    assert (await theirs.status()).stage == "village_review"
    assert not {"withdrawn", "refused"} & set(await theirs.kinds())
    # The applicant's own credential still withdraws.
    _, own = credentials.create(
        gateway.stack.engine,
        gateway.stack.deps.keys.authority,
        actor_id=applicant_of_application(theirs.wf),
        actor_name="申请人",
        role=Role.APPLICANT,
        place_code=OTHER_VILLAGE,
    )
    done = await gateway.http.post(
        f"{url}/withdrawal", json=withdrawal, headers={"Authorization": f"Bearer {own}"}
    )
    assert done.status_code == 200 and done.json()["accepted"], done.text
    await theirs.at_stage("withdrawn")


async def _to_county_approval(gateway: Gateway, case: Case) -> None:
    assert (await gateway.decide("village", case.wf, "village_review")).status_code == 200
    await case.wait_for(
        lambda s: s.notice is not None and s.notice.posted_at == cst(9, 1),
        "village posting scheduled",
    )
    await case.advance_to(cst(9, 8, 0, 1))
    await case.at_stage("township_review")
    assert (await gateway.decide("township", case.wf, "township_review")).status_code == 200
    await case.wait_for(
        lambda s: s.stage == "township_notice" and s.waiting_until is not None, "township notice"
    )
    await case.advance_to(cst(9, 18, 0, 1))
    await case.at_stage("county_approval")


async def test_the_county_approves_its_list_in_one_batch(gateway: Gateway) -> None:
    """County approvals in one request: a township's key and the village's own official
    at the county are refused per item (role, four eyes); the county's key approves all."""
    cases = [await gateway.new_case() for _ in range(3)]
    for c in cases:  # one at a time, as the notices' clocks want
        await _to_county_approval(gateway, c)

    def items(prefix: str) -> list[dict[str, str]]:
        return [
            {
                "workflow_id": c.wf,
                "request_id": f"{prefix}-{i}",
                "stage": "county_approval",
                "decision": "approve",
            }
            for i, c in enumerate(cases)
        ]

    for key, why in (("township", "role"), ("same_person_at_county", "four eyes")):
        r = await gateway.http.post(
            "/v1/batches/decisions", json={"items": items(key)}, headers=gateway.auth(key)
        )
        assert r.status_code == 200, r.text
        outcome = r.json()
        assert (outcome["done"], outcome["refused"]) == (0, 3), outcome
        assert all(x["status"] == 403 and why in x["message"] for x in outcome["results"])
    r = await gateway.http.post(
        "/v1/batches/decisions", json={"items": items("county")}, headers=gateway.auth("county")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["done"], r.json()["refused"], r.json()["refused_items"]) == (3, 0, [])
    for c in cases:
        await c.at_stage("awaiting_funds")
        decided = [e for e in await c.api.trail(c.wf) if e.kind == "decision"][-1]
        assert decided.actor.id == "county-1", decided


async def test_an_idempotency_key_answers_its_first_request_only(gateway: Gateway) -> None:
    """R4 over HTTP: the same Idempotency-Key and body again gets the first answer and
    changes nothing; the same key with another body is refused, naming the key."""
    case = await gateway.new_case()
    url = f"/v1/applications/{case.wf}/decisions"
    headers = {**gateway.auth("village"), "Idempotency-Key": "idem-village-1"}
    approve = {"stage": "village_review", "decision": "approve"}
    first = await gateway.http.post(url, json=approve, headers=headers)
    assert first.status_code == 200 and first.json()["accepted"], first.text
    assert first.json()["request_id"] == "idem-village-1"
    await case.at_stage("village_notice")
    again = await gateway.http.post(url, json=approve, headers=headers)
    assert again.status_code == 200 and again.json() == first.json(), again.text
    reject = {"stage": "village_review", "decision": "reject", "reason": "非全日制本科"}
    other = problem(await gateway.http.post(url, json=reject, headers=headers), 409)
    assert "idem-village-1" in other["detail"] and "already used" in other["detail"]
    # A body's request id that disagrees with the key is refused before it is sent.
    problem(
        await gateway.http.post(url, json={**reject, "request_id": "idem-other"}, headers=headers),
        422,
    )
    assert (await case.status()).stage == "village_notice"
    assert [e.kind for e in await case.api.trail(case.wf)].count("decision") == 1


async def test_a_quote_in_a_filter_or_place_widens_nothing(gateway: Gateway) -> None:
    """A value that would close the visibility query's quotes ("x' OR Village != '") is
    refused as a field, or matches nothing: a village still sees its own alone."""
    mine = await gateway.new_case()
    theirs = await gateway.new_case(village=OTHER_VILLAGE)
    for _ in range(50):
        seen = await gateway.http.get(
            "/v1/applications", params={"season": "2027"}, headers=gateway.auth("county")
        )
        if {mine.wf, theirs.wf} <= {r["workflow_id"] for r in seen.json()}:
            break
        await asyncio.sleep(0.2)  # visibility lags a moment behind
    injected = "x' OR Village != '"
    for params in (
        {"stage": injected},
        {"programme": injected},
        {"village": injected},
        {"township": injected},
        {"season": injected},
    ):
        r = await gateway.http.get(
            "/v1/applications", params=params, headers=gateway.auth("village")
        )
        if r.status_code == 200:
            assert r.json() == [], (params, r.text)
        else:
            problem(r, 422)
    # The server is shared with other tests: a village sees its own village's, never
    # another's (the other village's application, known to be listed, is not).
    own = await gateway.http.get("/v1/applications", headers=gateway.auth("village"))
    listed = {r["workflow_id"]: r["village"] for r in own.json()}
    assert mine.wf in listed and theirs.wf not in listed, own.text
    assert set(listed.values()) == {VILLAGE}, own.text
    posting = {"level": "village", "season": "2027"}
    problem(
        await gateway.http.post(
            "/v1/notices/postings",
            json={**posting, "place_code": injected},
            headers=gateway.auth("village"),
        ),
        422,
    )
    r = await gateway.http.post(
        "/v1/notices/postings",
        json={**posting, "programme": injected},
        headers=gateway.auth("village"),
    )
    assert r.status_code in (404, 422), r.text
    r = await gateway.http.get(f"/v1/notices/{injected}", headers=gateway.auth("village"))
    assert r.status_code == 404, r.text
    assert (await theirs.status()).stage == "village_review"


async def test_the_yearly_ledger_at_the_callers_place(gateway: Gateway, tmp_path: Path) -> None:
    """Issue 18: the ledger of every registered-poor student's aid of a year, built now at
    the caller's place and downloaded as a workbook; another place's is refused."""
    from tests.test_ledger import YEAR, seed_year

    seed_year(gateway.stack.engine, gateway.stack.deps.keys, tmp_path)
    built = await gateway.http.post(
        "/v1/ledgers", params={"year": YEAR}, headers=gateway.auth("village")
    )
    assert built.status_code == 201, built.text
    answer = built.json()
    assert (answer["place"], answer["students"], answer["lines"], answer["total_cny"]) == (
        VILLAGE,
        2,
        4,
        11000,
    )
    got = await gateway.http.get(answer["xlsx"], headers=gateway.auth("village"))
    assert got.status_code == 200 and got.content[:2] == b"PK", got.text
    problem(await gateway.http.get(answer["xlsx"], headers=gateway.auth("other_village")), 403)
    problem(
        await gateway.http.post(
            "/v1/ledgers",
            params={"year": YEAR, "village": VILLAGE},
            headers=gateway.auth("other_village"),
        ),
        403,
    )
    problem(
        await gateway.http.post(
            "/v1/ledgers", params={"year": YEAR}, headers=gateway.auth("applicant")
        ),
        403,
    )
    county = await gateway.http.post(
        "/v1/ledgers", params={"year": YEAR}, headers=gateway.auth("county")
    )
    assert county.status_code == 201 and county.json()["students"] == 3, county.text
    problem(
        await gateway.http.post(
            "/v1/ledgers", params={"year": "x"}, headers=gateway.auth("county")
        ),
        422,
    )


async def test_coverage_at_the_callers_place(gateway: Gateway, tmp_path: Path) -> None:
    """应补尽补 (issue 18) over HTTP: a village sees its eligible students who have not
    applied (masked); another village's key is refused that village."""
    from datetime import date

    from store.coverage import import_enrolment
    from store.importing import import_registry
    from tests.test_ledger import RECORDED_ONLY, enrolment_csv, registry_csv

    engine, keys = gateway.stack.engine, gateway.stack.deps.keys
    import_registry(engine, registry_csv(tmp_path), keys.hash_id)
    nid = make_national_id(RECORDED_ONLY)
    enrolment = enrolment_csv(
        tmp_path, [(nid, "学生503", "合肥工业大学", "undergraduate_full_time", "1")]
    )
    import_enrolment(engine, enrolment, keys.hash_id, as_of=date(2027, 7, 31))
    r = await gateway.http.get(
        "/v1/coverage",
        params={"programme": "county-subsidy", "season": "2027"},
        headers=gateway.auth("village"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["as_of"], body["eligible"], body["applied"]) == ("2027-07-31", 1, 0)
    assert body["villages"][0]["not_applied"][0]["name"] == "学生503"
    assert nid not in r.text and nid[-4:] in r.text
    problem(
        await gateway.http.get(
            "/v1/coverage",
            params={"programme": "county-subsidy", "season": "2027", "village": VILLAGE},
            headers=gateway.auth("other_village"),
        ),
        403,
    )
    problem(
        await gateway.http.get(
            "/v1/coverage",
            params={"programme": "no-such", "season": "2027"},
            headers=gateway.auth("county"),
        ),
        404,
    )


async def test_the_county_opens_its_season(gateway: Gateway) -> None:
    """Before its first application (the coverage reminder before the window closes runs
    only in a season that is open by then): the county's key opens it, once; a village's
    cannot; a round the programme does not have is refused."""
    url = f"/v1/seasons/county-subsidy/2027/{COUNTY}"
    opened = await gateway.http.post(url, headers=gateway.auth("county"))
    assert opened.status_code == 201, opened.text
    workflow_id = opened.json()["season_workflow_id"]
    assert workflow_id == f"season/county-subsidy/2027/{COUNTY[:6]}"
    described = await gateway.stack.api.client.get_workflow_handle(workflow_id).describe()
    assert described.workflow_type == "SeasonWorkflow"
    again = await gateway.http.post(url, headers=gateway.auth("county"))
    assert again.status_code == 201 and again.json() == opened.json()
    problem(await gateway.http.post(url, headers=gateway.auth("village")), 403)
    problem(
        await gateway.http.post(
            f"/v1/seasons/county-subsidy/2027-spring/{COUNTY}", headers=gateway.auth("county")
        ),
        422,
    )


async def test_rain_and_dew_over_http_opening_and_cancellation(gateway: Gateway) -> None:
    """Rain and Dew's round is opened by the county poverty office's key only, with the
    day the national system opened it; its grants are cancelled by that key only."""
    from models.application import Consent
    from tests.support import township_official

    url = f"/v1/seasons/rain-and-dew/2027-spring/{COUNTY}"
    body = problem(await gateway.http.post(url, headers=gateway.auth("poverty")), 422)
    assert "national_opened_on" in body["detail"]
    opening = {"national_opened_on": "2027-03-01"}
    problem(await gateway.http.post(url, json=opening, headers=gateway.auth("county")), 403)
    opened = await gateway.http.post(url, json=opening, headers=gateway.auth("poverty"))
    assert opened.status_code == 201, opened.text
    assert opened.json()["national_opened_on"] == "2027-03-01"
    assert opened.json()["townships_told"] >= 1

    serial = next(_SERIALS)
    f = form(
        serial,
        programme="rain-and-dew",
        round="spring",
        education_level="secondary_vocational",
        consent=Consent(given_by="家长", relation="父亲", given_at=cst(3, 9, 9)),
    )
    wf = await gateway.stack.api.submit(f, submitted_by=township_official(), now=cst(3, 10, 10))
    case = Case(gateway.stack.api, gateway.env, wf)
    await case.wait_for(lambda s: s.waiting_for == "county_leading_group", "at the cross-check")
    cancel = {"reason": "举报查实：未在校就读", "report_ref": "JB-1"}
    problem(
        await gateway.http.post(
            f"/v1/applications/{wf}/cancellation", json=cancel, headers=gateway.auth("village")
        ),
        403,
    )
    done = await gateway.http.post(
        f"/v1/applications/{wf}/cancellation", json=cancel, headers=gateway.auth("poverty")
    )
    assert done.status_code == 200, done.text
    assert done.json()["stage"] == "cancelled"
    # Not paid: nothing to recover.
    problem(
        await gateway.http.post(
            f"/v1/applications/{wf}/recovery",
            json={"amount_cny": 3000, "reference": "x"},
            headers=gateway.auth("poverty"),
        ),
        404,
    )


async def test_a_student_loan_over_http_queue_and_receipt_code(gateway: Gateway) -> None:
    """The centre's queue serves the registered-poor student first; a university checks a
    receipt's code with its own key (another university's, a wrong code: 404; another
    role: 403) and confirms receipt by the code, never the application's id."""
    from models.domain import DocumentKind
    from store.loans import receipt_code
    from tests.test_student_loan import CENTRE, loan_form

    api, keys = gateway.stack.api, gateway.stack.deps.keys
    poor, other = next(_SERIALS), next(_SERIALS)
    gateway.registry.members.pop(keys.hash_id(make_national_id(other)))
    queue_url = "/v1/loans/queue"
    for serial in (other, poor):
        body = {"national_id": make_national_id(serial), "name": f"学生{serial}"}
        problem(await gateway.http.post(queue_url, json=body, headers=gateway.auth("village")), 403)
        arrived = await gateway.http.post(queue_url, json=body, headers=gateway.auth("county"))
        assert arrived.status_code == 201, arrived.text
    assert arrived.json()["position"] == 1 and arrived.json()["registered_poor"] is True
    waiting = (await gateway.http.get(queue_url, headers=gateway.auth("county"))).json()
    assert [w["registered_poor"] for w in waiting] == [True, False]
    bad = {"national_id": "341225200701011234", "name": "x"}
    body = problem(
        await gateway.http.post(queue_url, json=bad, headers=gateway.auth("county")), 422
    )
    assert "national_id" in body["detail"]

    wf = await api.submit(
        loan_form(poor, papers=DocumentKind.POVERTY_HANDBOOK),
        submitted_by=CENTRE,
        now=cst(8, 9, 10),
    )
    case = Case(api, gateway.env, wf)
    await case.at_stage("university_receipt")
    code = receipt_code(keys.loans, wf)
    url = f"/v1/loans/receipts/{code}"
    seen = await gateway.http.get(url, headers=gateway.auth("university"))
    assert seen.status_code == 200, seen.text
    assert seen.json()["university_code"] == "10357" and "national_id" not in seen.text
    assert wf not in seen.text
    problem(await gateway.http.get(url, headers=gateway.auth("other_university")), 404)
    problem(await gateway.http.get(url, headers=gateway.auth("county")), 403)
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    problem(
        await gateway.http.get(f"/v1/loans/receipts/{wrong}", headers=gateway.auth("university")),
        404,
    )
    problem(
        await gateway.http.get(
            "/v1/loans/receipts/not-a-code!", headers=gateway.auth("university")
        ),
        422,
    )
    confirm = {"enrolled": False, "reference": "回执-1"}
    body = problem(
        await gateway.http.post(
            f"{url}/confirmation", json=confirm, headers=gateway.auth("university")
        ),
        422,
    )
    assert "reason" in body["detail"]
    confirmed = await gateway.http.post(
        f"{url}/confirmation",
        json={"reference": "回执-2027-0915"},
        headers=gateway.auth("university"),
    )
    assert confirmed.status_code == 200, confirmed.text
    await case.at_stage("awaiting_disbursement")


async def test_a_dropout_case_over_http_with_a_photographed_visit(gateway: Gateway) -> None:
    """The central school opens a case with its group; the teacher logs a home visit
    with its photograph (kept under its SHA-256) with their own key; another village's
    key reads nothing of it; the county reads each member's obligations."""
    import base64

    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    group = [
        {"actor_id": "teacher-1", "name": "李老师", "role": "teacher", "unit": "S01"},
        {"actor_id": "cadre-v", "name": "村干部", "role": "village_cadre"},
        {"actor_id": "parent-1", "name": "家长", "role": "guardian"},
    ]
    body = {
        "programme": "dropout-persuasion",
        "year": 2027,
        "places": PLACES.model_dump(mode="json"),
        "name": "李小红",
        "national_id": make_national_id(next(_SERIALS)),
        "members": group,
    }
    problem(await gateway.http.post("/v1/cases", json=body, headers=gateway.auth("county")), 403)
    opened = await gateway.http.post("/v1/cases", json=body, headers=gateway.auth("school"))
    assert opened.status_code == 201, opened.text
    wf = opened.json()["workflow_id"]
    today = (
        (await gateway.env.get_current_time(gateway.stack.api.client.get_workflow_handle(wf)))
        .astimezone(SHANGHAI)
        .date()
    )
    visit = {
        "member": "teacher-1",
        "on": today.isoformat(),
        "kind": "visit",
        "done": "家访，劝返",
        "photos": [
            {
                "filename": "visit.png",
                "media_type": "image/png",
                "content_base64": base64.b64encode(png).decode(),
            }
        ],
    }
    problem(
        await gateway.http.post(
            f"/v1/cases/{wf}/contacts", json=visit, headers=gateway.auth("village")
        ),
        403,
    )
    logged = await gateway.http.post(
        f"/v1/cases/{wf}/contacts", json=visit, headers=gateway.auth("teacher")
    )
    assert logged.status_code == 200, logged.text
    st = (await gateway.http.get(f"/v1/cases/{wf}", headers=gateway.auth("teacher"))).json()
    assert st["contacts"] == 1 and st["stage"] == "case_open"
    problem(await gateway.http.get(f"/v1/cases/{wf}", headers=gateway.auth("other_village")), 403)
    digest = hashlib.sha256(png).hexdigest()
    assert (gateway.stack.deps.files_dir / "evidence" / f"{digest}.png").read_bytes() == png
    from store.tables import CaseEventRow

    events = CaseEventRow.__table__  # type: ignore[attr-defined]
    for _ in range(50):
        with gateway.stack.engine.connect() as conn:
            logged_rows = conn.execute(
                events.select().where(events.c.workflow_id == wf, events.c.kind == "contact")
            ).all()
        if logged_rows:
            break
        await asyncio.sleep(0.1)
    assert logged_rows[0].detail["photo_sha256"] == [digest]
    assert logged_rows[0].actor_id == "teacher-1"
    closing = {"outcome": "returned_to_school"}
    refused = problem(
        await gateway.http.post(
            f"/v1/cases/{wf}/closure", json=closing, headers=gateway.auth("school")
        ),
        409,
    )
    assert "evidence" in refused["detail"]
