"""The county's offices as clients of the HTTP API: each with its own credential (R10).

The demo's officials act and read through this, as any county system would: a request
names no actor; the office's API key is the actor. The methods mirror the typed client's
(``workers/client``) so that the same code drives either; refusals raise its
:class:`~workers.client.Refused` with the problem's detail.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from models.application import Actor, ApplicationForm, ApplicationStatus, RequestResult
from models.payout import FundsArrivalResult, FundsRequestSummary, ReportFiles
from models.roster import RosterDecided
from models.season import season_label
from store import credentials
from workers.client import Refused

_KINDS = {403: "forbidden", 404: "not_found", 503: "unavailable"}


class Offices:
    """One API key per office (created on first use, as ``aidflow credentials create``
    would); every request goes over HTTP to the gateway at ``base_url``."""

    def __init__(self, http: httpx.AsyncClient, engine: Engine, authority_key: bytes) -> None:
        self.http = http
        self._engine = engine
        self._key = authority_key
        self._tokens: dict[tuple[str, str, str], str] = {}

    def _token(self, actor: Actor) -> str:
        key = (actor.id, actor.role.value, actor.place_code)
        if key not in self._tokens:
            _, self._tokens[key] = credentials.create(
                self._engine,
                self._key,
                actor_id=actor.id,
                actor_name=actor.name,
                role=actor.role,
                place_code=actor.place_code,
                note="demo",
            )
        return self._tokens[key]

    async def _send(
        self, path: str, body: dict[str, Any] | None, actor: Actor | None, method: str = "POST"
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token(actor)}"} if actor else {}
        r = await self.http.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            try:
                detail = str(r.json().get("detail") or r.text)
            except ValueError:
                detail = r.text[:300]
            raise Refused(detail, kind=_KINDS.get(r.status_code, "refused"))
        return r.json()

    async def _request(
        self, wf: str, kind: str, req: Any, *, anonymous: bool = False
    ) -> RequestResult:
        body = req.model_dump(mode="json", exclude={"actor"}, exclude_defaults=True)
        body["request_id"] = req.request_id
        actor = None if anonymous else req.actor
        return RequestResult.model_validate(
            await self._send(f"/v1/applications/{wf}/{kind}", body, actor)
        )

    # What the demo reads, as the county's office reads it.

    async def status(self, wf: str, reader: Actor) -> ApplicationStatus:
        return ApplicationStatus.model_validate(
            await self._send(f"/v1/applications/{wf}", None, reader, "GET")
        )

    async def season_report(
        self, programme: str, season: int, county: str, reader: Actor, round_: str = ""
    ) -> ReportFiles | None:
        """The season's report once it is written (at the payout date), else None."""
        path = f"/v1/seasons/{programme}/{season_label(season, round_)}/{county}/report"
        try:
            answer = await self._send(path, None, reader, "GET")
            return ReportFiles.model_validate({k: answer[k] for k in ReportFiles.model_fields})
        except Refused as r:
            if r.kind == "not_found":
                return None
            raise

    # The requests the demo's officials send, by the typed client's names.

    async def submit(self, form: ApplicationForm, *, submitted_by: Actor) -> str:
        answer = await self._send(
            "/v1/applications", {"form": form.model_dump(mode="json")}, submitted_by
        )
        return str(answer["workflow_id"])

    async def open_round(
        self,
        programme: str,
        season: int,
        county: str,
        actor: Actor,
        national_opened_on: date,
        round_: str = "",
    ) -> dict[str, Any]:
        """The county's office opens the round (a programme whose rounds an office opens)."""
        path = f"/v1/seasons/{programme}/{season_label(season, round_)}/{county}"
        answer: dict[str, Any] = await self._send(
            path, {"national_opened_on": national_opened_on.isoformat()}, actor
        )
        return answer

    async def post_notice(self, notice_id: str, req: Any) -> RequestResult:
        """The owner posts the notice, uploading its photographs (the simulated people's:
        ``people.PHOTOS``)."""
        from workers.officials.people import PHOTOS

        item = {
            "request_id": req.request_id,
            "notice_id": notice_id,
            "evidence": [
                {
                    "filename": e.filename,
                    "media_type": e.media_type,
                    "content_base64": base64.b64encode(PHOTOS[e.sha256]).decode(),
                }
                for e in req.evidence
            ],
        }
        answer = await self._send("/v1/batches/postings", {"items": [item]}, req.actor)
        result = answer["results"][0]
        if not result["accepted"]:
            raise Refused(str(result["message"]), kind=_KINDS.get(result["status"], "refused"))
        return RequestResult(
            request_id=result["request_id"], accepted=True, stage="", message=result["message"]
        )

    async def decide(self, wf: str, req: Any) -> RequestResult:
        return await self._request(wf, "decisions", req)

    async def correct(self, wf: str, req: Any) -> RequestResult:
        return await self._request(wf, "corrections", req)

    async def lodge_objection(self, wf: str, req: Any) -> RequestResult:
        return await self._request(wf, "objections", req, anonymous=True)

    async def resolve_objection(self, wf: str, req: Any) -> RequestResult:
        return await self._request(wf, "objection-resolutions", req)

    async def record_receipt(self, wf: str, req: Any) -> RequestResult:
        return await self._request(wf, "receipts", req)

    async def correct_account(
        self,
        wf: str,
        actor: Actor,
        *,
        bank_name: str,
        account_number: str,
        account_holder: str,
        request_id: str | None = None,
    ) -> RequestResult:
        body = {
            "bank_name": bank_name,
            "account_number": account_number,
            "account_holder": account_holder,
        }
        if request_id is not None:
            body["request_id"] = request_id
        return RequestResult.model_validate(
            await self._send(f"/v1/applications/{wf}/account", body, actor)
        )

    async def decide_roster(
        self, programme: str, season: int, county: str, req: Any, *, round_: str = ""
    ) -> RosterDecided:
        body = req.model_dump(mode="json", exclude={"actor"}, exclude_defaults=True)
        body["request_id"] = req.request_id
        path = f"/v1/rosters/{programme}/{season_label(season, round_)}/{county}/decisions"
        return RosterDecided.model_validate(await self._send(path, body, req.actor))

    async def request_funds(
        self, programme: str, season: int, county: str, actor: Actor, round_: str = ""
    ) -> FundsRequestSummary:
        path = f"/v1/seasons/{programme}/{season_label(season, round_)}/{county}/funds-requests"
        return FundsRequestSummary.model_validate(await self._send(path, {}, actor))

    async def funds_arrived(
        self,
        programme: str,
        season: int,
        county: str,
        actor: Actor,
        funds_request_id: str,
        amount_cny: int,
        reference: str,
        round_: str = "",
    ) -> FundsArrivalResult:
        path = f"/v1/seasons/{programme}/{season_label(season, round_)}/{county}/funds-arrivals"
        body = {
            "funds_request_id": funds_request_id,
            "amount_cny": amount_cny,
            "reference": reference,
        }
        return FundsArrivalResult.model_validate(await self._send(path, body, actor))
