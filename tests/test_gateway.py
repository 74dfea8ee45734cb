"""The HTTP gateway (R10), with a real HTTP client against the real stack: uvicorn on a
port, the dev server, the worker, credentials in the database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from models.domain import Role
from store import credentials
from tests.conftest import AppStack, Registry
from tests.support import (
    COUNTY,
    IN_WINDOW_2027,
    OTHER_VILLAGE,
    PLACES,
    TOWNSHIP,
    VILLAGE,
    form,
)
from tests.test_application_workflow import _SERIALS, Case, cst
from workers.gateway import create_app
from workers.gateway.serving import serving_app

pytestmark = pytest.mark.devserver


@dataclass
class Gateway:
    http: httpx.AsyncClient
    keys: dict[str, str]  # name -> API key
    stack: AppStack
    env: WorkflowEnvironment
    registry: Registry

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
    "revoked": ("village-2", Role.VILLAGE_COMMITTEE, VILLAGE),
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
        yield Gateway(http, keys, app_stack, ts_env, registry)


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
    await case.wait_for(lambda s: s.waiting_until == cst(9, 1), "village posting scheduled")
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


async def test_the_openapi_document_is_complete(gateway: Gateway) -> None:
    doc = (await gateway.http.get("/openapi.json")).json()
    paths = set(doc["paths"])
    for suffix in (
        "decisions",
        "corrections",
        "objections",
        "objection-resolutions",
        "withdrawal",
        "receipts",
        "account",
        "trail",
    ):
        assert f"/v1/applications/{{workflow_id}}/{suffix}" in paths, suffix
    assert {"/v1/applications", "/v1/batches/decisions", "/v1/notices/postings", "/v1/me"} <= paths
    assert "/v1/notices/{notice_id}" in paths
    assert "/v1/seasons/{programme}/{season}/{county}/funds-requests" in paths
    assert "/v1/seasons/{programme}/{season}/{county}/reports" in paths
    assert {"/v1/audit/verify", "/v1/audit/export"} <= paths
    assert "ProblemDetail" in doc["components"]["schemas"]


async def test_reads_are_at_the_callers_place(gateway: Gateway) -> None:
    case = await gateway.new_case()
    mine = await gateway.http.get(f"/v1/applications/{case.wf}", headers=gateway.auth("village"))
    assert mine.status_code == 200 and mine.json()["stage"] == "village_review", mine.text
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
        await c.wait_for(lambda s: s.stage == "village_notice" and s.notice is None, "joined")
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
        st = await c.wait_for(lambda s: s.notice is not None, "posted")
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
        await c.wait_for(lambda s: s.stage == "village_notice" and s.notice is None, "joined")
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
    assert (await mine.wait_for(lambda s: s.notice is not None, "posted")).notice is not None
    assert (await theirs.status()).notice is None  # the other village's list is not up
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
