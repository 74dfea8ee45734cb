"""aidflow's HTTP/JSON API: every request a service sends, for every programme (R10).

The caller's credential is the actor; the gateway runs intake on the server side and
signs what it sends the workflows for that credential (``workers/signing.py``); the
workers check every signature again. Refusals are problem details (RFC 9457).
"""

import asyncio
import dataclasses
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowHandle

from activities.report import build_report, write_report
from integrations.bank import inside
from models.application import (
    ApplicationStatus,
    CancellationRequest,
    CorrectionRequest,
    DecisionRequest,
    ObjectionRequest,
    ObjectionResolution,
    Places,
    ReceiptRecord,
    RequestResult,
    TrailEvent,
    WithdrawalRequest,
)
from models.domain import ROLE_LEVEL, Level, Role
from models.ids import applicant_of_application, season_workflow_id
from models.notice import Evidence, NoticePostRequest, NoticeStatus
from models.payout import BatchResult, FundsArrivalResult, FundsRequestSummary, ReportFiles
from models.programmes import CASE_REGISTRY
from models.recovery import RecoveredRequest, RecoveryStatus
from models.roster import RosterDecided, RosterDecision
from models.season import SeasonKey, season_label
from models.tasks import TaskDone, TaskState
from store import audit
from store.loans import Loans
from store.sealing import Keys
from store.status import read_status, read_trail
from store.tables import FundsRequest
from workers.client import AidflowClient, Refused, query_when_ready
from workers.client.cases import CaseClient
from workers.gateway import bodies as b
from workers.gateway import cases, dashboard, ledger, loans, problems
from workers.gateway.auth import (
    OPTIONAL_CREDENTIAL,
    ApiKeyAuthenticator,
    Caller,
    CallerAuthentication,
    PublicObjections,
    anyone,
    office,
    within_callers_place,
)
from workers.gateway.files import keep_files
from workers.gateway.problems import Problem, ProblemDetail
from workers.gateway.requests import build, request_id
from workers.witness import chain_heads
from workflows.season import SeasonWorkflow

REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetail, "description": title}
    for status, title in problems.TITLES.items()
}
# Items of one batch sent at once: enough to keep a worker busy, not a burst.
BATCH_CONCURRENCY = 16
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A season report's files, by suffix: the workbook and its Markdown text.
REPORT_MEDIA = {".xlsx": XLSX, ".md": "text/markdown; charset=utf-8"}

# The caller: an office's or a service's credential; or, for an objection, anyone.
Office = Annotated[Caller, Depends(office)]
Anyone = Annotated[Caller, Depends(anyone)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]


# A read from the records (store/status.py) unless the caller asks the workflow itself.
Live = Annotated[
    bool,
    Query(
        description="ask the workflow itself rather than read what it has recorded "
        "(a query: a workflow task on a worker)"
    ),
]


def create_app(
    api: AidflowClient,
    engine: Engine,
    keys: Keys,
    files_dir: Path,
    authentication: CallerAuthentication | None = None,
) -> FastAPI:
    """The gateway's app; ``authentication`` proves callers (API keys unless another
    implementation, e.g. mTLS or OIDC, is given)."""
    app = FastAPI(
        title="aidflow",
        summary="学生资助审批流程 / student-aid approval pipelines",
        description=(
            "Every request names no actor: the credential is the actor (R10). "
            "Send `Authorization: Bearer <API key>`; `Idempotency-Key` is the request id. "
            "Refusals are `application/problem+json` naming every wrong field."
        ),
        version="1",
        responses=REFUSALS,
    )
    problems.install(app)
    app.state.auth = authentication or ApiKeyAuthenticator(engine, keys.authority)
    app.state.public = PublicObjections(app.state.auth, keys.authority)
    app.include_router(dashboard.router(engine, keys.authority, api.programmes, api.calendar))
    app.include_router(ledger.router(engine, files_dir, api.programmes))
    app.include_router(loans.router(api, Loans(engine)))
    app.include_router(cases.router(CaseClient(api, CASE_REGISTRY), engine, files_dir))

    # ------------------------------------------------------------------ who am I

    @app.get("/v1/me", tags=["credentials"])
    async def me(who: Office) -> b.CallerInfo:
        """The credential's binding: what the gateway will act as."""
        x = who.binding
        return b.CallerInfo(
            credential=x.credential,
            actor_id=x.actor_id,
            actor_name=x.actor_name,
            role=x.role.value,
            place_code=x.place_code,
        )

    # ---------------------------------------------------------------- intake

    @app.post("/v1/applications", status_code=201, tags=["applications"])
    async def apply(body: b.ApplicationBody, who: Office) -> dict[str, str]:
        """Submit an application; intake (R5) runs here, on the server, and the amount is
        the programme's. ``received_at`` (a paper form) is taken only from the office of
        the applicant's village, and recorded as received by it."""
        if body.received_at is not None and body.received_at.tzinfo is None:
            raise Problem(422, "received_at: needs an offset, e.g. 2027-08-10T10:00+08:00")
        wf = await api.submit_as(body.form, who.actor, received_at=body.received_at)
        return {"workflow_id": wf}

    # -------------------------------------------------------------- requests

    async def send(method: Any, wf: str, req: Any) -> RequestResult:
        result: RequestResult = await method(wf, req)
        return result

    @app.post("/v1/applications/{workflow_id:path}/decisions", tags=["requests"])
    async def decide(
        workflow_id: str, body: b.DecisionBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        return await send(api.decide, workflow_id, build(DecisionRequest, body, who, key))

    @app.post("/v1/applications/{workflow_id:path}/corrections", tags=["requests"])
    async def correct(
        workflow_id: str, body: b.CorrectionBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """A returned application corrected: by an office of its place, or by its own
        applicant (another student's credential is refused here, and by the workflow)."""
        if who.role is Role.APPLICANT and who.actor.id != applicant_of_application(workflow_id):
            raise Problem(
                403,
                f"{who.binding.credential} (applicant) may not correct this application: "
                "an applicant corrects only their own",
            )
        return await send(api.correct, workflow_id, build(CorrectionRequest, body, who, key))

    @app.post(
        "/v1/applications/{workflow_id:path}/objections",
        tags=["requests"],
        openapi_extra=OPTIONAL_CREDENTIAL,
    )
    async def lodge_objection(
        workflow_id: str, body: b.ObjectionBody, who: Anyone, key: IdempotencyKey = None
    ) -> RequestResult:
        """Anyone may object to a notice: no credential needed (rate- and size-limited)."""
        req = build(ObjectionRequest, body, who, key)
        return await send(api.lodge_objection, workflow_id, req)

    @app.post("/v1/applications/{workflow_id:path}/objection-resolutions", tags=["requests"])
    async def resolve_objection(
        workflow_id: str, body: b.ResolutionBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        req = build(ObjectionResolution, body, who, key)
        return await send(api.resolve_objection, workflow_id, req)

    @app.post("/v1/applications/{workflow_id:path}/withdrawal", tags=["requests"])
    async def withdraw(
        workflow_id: str, body: b.WithdrawalBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """The applicant withdraws the application: only the applicant's own credential
        (the workflow checks the role; this binds the credential to the one student, as
        intake does)."""
        if who.role is not Role.APPLICANT or who.actor.id != applicant_of_application(workflow_id):
            raise Problem(
                403,
                f"{who.binding.credential} ({who.role.value}) may not withdraw this "
                "application: only its applicant's own credential does",
            )
        return await send(api.withdraw, workflow_id, build(WithdrawalRequest, body, who, key))

    @app.post("/v1/applications/{workflow_id:path}/cancellation", tags=["requests"])
    async def cancel(
        workflow_id: str, body: b.CancellationBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """The grant cancelled by the programme's office: a report or objection proved
        true. Before payment the application ends cancelled; once paid, the amount goes
        onto the recovery list (追回) until it is marked recovered."""
        return await send(api.cancel, workflow_id, build(CancellationRequest, body, who, key))

    @app.post("/v1/applications/{workflow_id:path}/recovery", tags=["requests"])
    async def mark_recovered(
        workflow_id: str, body: b.RecoveredBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """A cancelled grant's money is back: the amount and the receipt's reference."""
        req = build(RecoveredRequest, body, who, key)
        return await send(api.mark_recovered, workflow_id, req)

    @app.get("/v1/applications/{workflow_id:path}/recovery", tags=["applications"])
    async def recovery(workflow_id: str, who: Office) -> RecoveryStatus:
        """Where a cancelled, paid grant's recovery stands (offices of its places)."""
        may_read(who, (await status_of(workflow_id)).places)
        return await api.recovery_status(workflow_id)

    @app.post("/v1/applications/{workflow_id:path}/receipts", tags=["requests"])
    async def record_receipt(
        workflow_id: str, body: b.ReceiptBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        req = build(ReceiptRecord, body, who, key)
        return await send(api.record_receipt, workflow_id, req)

    @app.post("/v1/applications/{workflow_id:path}/account", tags=["requests"])
    async def correct_account(
        workflow_id: str, body: b.AccountBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """The corrected account after a return; the number is sealed here at once.
        Only an office holding the application's place is heard: the account is where
        the money goes, so another village's key learns nothing, not even the stage."""
        may_read(who, (await status_of(workflow_id)).places)
        return await api.correct_account(
            workflow_id,
            who.actor,
            bank_name=body.bank_name,
            account_number=body.account_number,
            account_holder=body.account_holder,
            request_id=request_id(body, key),
        )

    # ---------------------------------------------------------------- batches

    async def each(items: list[Any], one: Any) -> b.BatchOutcome:
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def run(item: Any) -> b.ItemResult:
            async with gate:
                try:
                    result: RequestResult = await one(item)
                    return b.ItemResult(
                        workflow_id=item.workflow_id,
                        request_id=item.request_id,
                        accepted=result.accepted,
                        status=200,
                        message=result.message,
                    )
                except Refused as r:
                    status = problems.refusal_status(r)
                    message = str(r)
                except ValidationError as e:
                    status = 422
                    message = "; ".join(
                        f"{f.field}: {f.problem}" for f in problems.field_errors(e.errors())
                    )
                except Problem as p:  # an item's own fault found here (its evidence)
                    status, message = p.status, p.detail
                return b.ItemResult(
                    workflow_id=item.workflow_id,
                    request_id=item.request_id,
                    accepted=False,
                    status=status,
                    message=message,
                )

        results = list(await asyncio.gather(*(run(i) for i in items)))
        refused = [r for r in results if not r.accepted]
        return b.BatchOutcome(
            done=len(results) - len(refused),
            refused=len(refused),
            refused_items=[f"{r.workflow_id} {r.request_id}" for r in refused],
            results=results,
        )

    @app.post("/v1/batches/decisions", tags=["batches"])
    async def decide_many(body: b.DecisionBatch, who: Office) -> b.BatchOutcome:
        """A list decided in one request (a village committee's list, the county's
        approvals): each item its own request id and its own result."""

        async def one(item: b.DecisionItem) -> RequestResult:
            req = DecisionRequest.model_validate(
                {**item.model_dump(exclude={"workflow_id"}), "actor": who.actor}
            )
            return await api.decide(item.workflow_id, req)

        return await each(body.items, one)

    # ---------------------------------------------------------------- notices

    def keep_evidence(uploads: list[b.EvidenceUpload]) -> list[Evidence]:
        """Each photograph or scan kept under its SHA-256; the notice's history keeps
        the digest."""
        return keep_files(files_dir, uploads)

    @app.post("/v1/notices/postings", tags=["notices"])
    async def post_notices(
        body: b.NoticeBody, who: Office, key: IdempotencyKey = None
    ) -> list[b.NoticeItem]:
        """Post the notice of the caller's place now: every application waiting for it is
        on this posting (the list the village committee puts up), with a photograph or
        scan of the posted list as evidence where the programme keeps one. Without
        ``season``, every open notice of the programme at the place that has a list to
        post."""
        level = Level(body.level)
        programme = api.programmes.get(body.programme)
        if programme is None:
            raise Problem(404, f"no programme {body.programme}")
        if programme.notice_at(level) is None:
            raise Problem(422, f"{body.programme} has no {level.value} notice")
        if ROLE_LEVEL.get(who.role) is not level:
            raise Problem(403, f"role {who.role.value} does not post a {level.value} notice")
        place = who.binding.place_code
        if body.place_code is not None and body.place_code != place:
            raise Problem(403, f"place {body.place_code} is not the credential's {place}")
        rid = request_id(body, key)
        evidence = keep_evidence(body.evidence)
        if body.season:
            k = season_of(body.programme, body.season)
            ids = [api.notice_id(body.programme, k.year, level, place, round_=k.round)]
        else:
            ids = await api.notices_at(body.programme, level, place)
            if not ids:
                raise Problem(404, f"no open {level.value} notice of {body.programme} at {place}")
        out: list[b.NoticeItem] = []
        for notice_id in ids:
            req = NoticePostRequest(
                request_id=rid if len(ids) == 1 else f"{rid}.{len(out)}",
                actor=who.actor,
                evidence=evidence,
            )
            try:
                r = await api.post_notice(notice_id, req)
                out.append(
                    b.NoticeItem(notice_id=notice_id, accepted=r.accepted, message=r.message)
                )
            except Refused as e:
                if len(ids) == 1:
                    raise
                out.append(b.NoticeItem(notice_id=notice_id, accepted=False, message=str(e)))
        return out

    @app.post("/v1/batches/postings", tags=["batches"])
    async def post_many(body: b.PostingBatch, who: Office) -> b.BatchOutcome:
        """Several notices posted in one request by their owner (each its own request
        id, evidence and result): the notice itself checks that the caller owns it."""

        async def one(item: b.PostingItem) -> RequestResult:
            req = NoticePostRequest(
                request_id=item.request_id, actor=who.actor, evidence=keep_evidence(item.evidence)
            )
            return await api.post_notice(item.notice_id, req)

        return await each(body.items, one)

    @app.get("/v1/notices/{notice_id:path}/postings/{number}/list.{kind}", tags=["notices"])
    async def notice_list(notice_id: str, number: int, kind: str, who: Office) -> FileResponse:
        """A posting's printed list (XLSX, or the printable page: ``html``)."""
        st = await notice_of(notice_id, who)
        posting = next((p for p in st.postings if p.number == number), None)
        if posting is None:
            raise Problem(404, f"{notice_id} has no posting {number}")
        f = next((f for f in posting.files if f.kind == kind), None)
        if f is None:
            raise Problem(404, f"no {kind} list (xlsx or html)")
        media = (
            "text/html"
            if kind == "html"
            else ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )
        return FileResponse(f.path, media_type=media, filename=Path(f.path).name)

    @app.get("/v1/notices/{notice_id:path}", tags=["notices"])
    async def notice(notice_id: str, who: Office) -> NoticeStatus:
        """A notice: who waits for its next posting, its postings and their periods, its
        open objections."""
        return await notice_of(notice_id, who)

    async def notice_of(notice_id: str, who: Caller) -> NoticeStatus:
        try:
            st = await api.notice_status(notice_id)
        except Refused:
            raise Problem(404, f"no notice {notice_id}") from None
        level = ROLE_LEVEL.get(who.role)
        place = who.binding.place_code
        # The notice's owner, or an office of its county (its township for a village's).
        if level is None or not (
            place == st.place_code
            or (level is Level.COUNTY and st.place_code.startswith(place[:6]))
            or (
                level is Level.TOWNSHIP
                and st.level is Level.VILLAGE
                and st.place_code.startswith(place[:9])
            )
        ):
            raise Problem(403, f"{who.binding.credential} does not hold this notice's place")
        return st

    # ------------------------------------------------------------------ reading

    def may_read(who: Caller, places: Places) -> None:
        level = ROLE_LEVEL.get(who.role)
        if level is None or places.code_at(level) != who.binding.place_code:
            raise Problem(403, f"{who.binding.credential} does not hold this application's place")

    @app.get("/v1/applications/{workflow_id:path}/trail", tags=["reading"])
    async def trail(workflow_id: str, who: Office, live: Live = False) -> list[TrailEvent]:
        st, recorded = await answered(workflow_id, live)
        may_read(who, st.places)
        if recorded:  # the record agrees with the history: its audit log is the trail
            events = await run_in_threadpool(read_trail, engine, workflow_id)
            if events:
                return events
        return await api.trail(workflow_id)

    async def status_of(workflow_id: str, live: bool = False) -> ApplicationStatus:
        return (await answered(workflow_id, live))[0]

    async def answered(workflow_id: str, live: bool) -> tuple[ApplicationStatus, bool]:
        """The status, and whether it is the record's: from the records (store/status.py:
        no workflow task, answered while every worker is down, and never the query that
        can trigger the SDK defect: README) where the history agrees; ``live``, before
        its first event is recorded, or where they disagree, by asking the workflow."""
        if not live:
            recorded = await run_in_threadpool(read_status, engine, workflow_id)
            # Only as the history has it (its search attributes, from the server, not a
            # worker): a record may hold a task that never completed until the
            # application's next event retracts it (activities/records.py).
            if recorded is not None and await api.listed_as(workflow_id, recorded):
                return recorded, True
        try:
            return await api.status(workflow_id), False
        except Exception:
            raise Problem(404, f"no application {workflow_id}") from None

    @app.get("/v1/applications/{workflow_id:path}", tags=["reading"])
    async def status(workflow_id: str, who: Office, live: Live = False) -> ApplicationStatus:
        st = await status_of(workflow_id, live)
        may_read(who, st.places)
        return st

    @app.get("/v1/applications", tags=["reading"])
    async def listing(
        who: Office,
        # Codes and names only: a value goes into a visibility query (quoted there too).
        programme: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{1,39}$")] = None,
        season: Annotated[str | None, Query(pattern=r"^\d{4}(-[a-z]{1,16})?$")] = None,
        stage: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = None,
        overdue: bool | None = None,
        township: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
        village: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Applications at the caller's place (a village's, a township's, the county's),
        narrowed to one township or village inside it if asked."""
        level = within_callers_place(
            who, "lists no applications", township=township, village=village
        )
        key = SeasonKey.parse(season) if season else None
        place = who.binding.place_code
        rows = api.list(
            programme=programme,
            season=key.year if key else None,
            round_=(key.round or None) if key else None,  # 2027: every round of 2027
            stage=stage,
            overdue=overdue,
            limit=limit,
            county=place if level is Level.COUNTY else None,
            township=township or (place if level is Level.TOWNSHIP else None),
            village=village or (place if level is Level.VILLAGE else None),
        )
        return [
            {**asdict(r), "next_deadline": r.next_deadline.isoformat() if r.next_deadline else None}
            async for r in rows
        ]

    # ----------------------------------------------------------------- seasons

    def season_of(programme: str, season: str) -> SeasonKey:
        if programme not in api.programmes:
            raise Problem(404, f"no programme {programme} (known: {', '.join(api.programmes)})")
        try:
            return SeasonKey.parse(season)
        except ValueError as e:
            raise Problem(422, f"season: {e}") from None

    @app.post("/v1/seasons/{programme}/{season}/{county}", tags=["funds"], status_code=201)
    async def open_season(
        programme: str,
        season: str,
        county: str,
        who: Office,
        body: b.SeasonOpenBody | None = None,
        key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """The county opens its season now (a round of it, e.g. ``2027-spring``): its
        reminders run from now, among them the villages' coverage reminder (应补尽补)
        before the window closes, which a season opened by its first application, late,
        would have missed. Opening one already open changes nothing. A programme whose
        rounds an office opens (Rain and Dew: the county poverty office, once the
        national system has; ``national_opened_on``) takes applications only from then,
        and its townships are told."""
        county_only(who, county)
        s = season_of(programme, season)
        try:
            definition = api.programmes[programme].for_round(s.round)
        except ValueError as e:
            raise Problem(422, f"season: {e}") from None
        if definition.opened_by is None:
            workflow_id = await api.ensure_season(programme, s.year, county, round_=s.round)
            return {"season_workflow_id": workflow_id}
        if body is None:
            raise Problem(
                422,
                f"national_opened_on: required: {programme} rounds are opened by the "
                f"{definition.opened_by.value} once the national system has opened them",
            )
        opened = await api.open_round(
            programme,
            s.year,
            county,
            who.actor,
            body.national_opened_on,
            note=body.note,
            request_id=request_id(body, key),
            round_=s.round,
        )
        return {
            "season_workflow_id": season_workflow_id(programme, s.year, county, s.round),
            "opened_at": opened.opened_at.isoformat(),
            "opened_by": opened.opening.actor.id,
            "national_opened_on": opened.opening.national_opened_on.isoformat(),
            "townships_told": opened.townships_told,
        }

    # ----------------------------------------------------------------- rosters

    @app.post("/v1/rosters/{programme}/{season}/{county}/decisions", tags=["rosters"])
    async def decide_roster(
        programme: str,
        season: str,
        county: str,
        body: b.RosterDecisionBody,
        who: Office,
        key: IdempotencyKey = None,
    ) -> RosterDecided:
        """An office's word on a cohort's roster (``season``: ``2027-undergraduate``): the
        students it names one by one, and what happens to the rest waiting at the stage
        (``approve``; ``from_rolls``: the civil-affairs rolls answer; ``none``). The roster
        refuses a word from the wrong office or place, or naming a student not waiting."""
        s = season_of(programme, season)
        req = build(RosterDecision, body, who, key)
        return await api.decide_roster(programme, s.year, county, req, round_=s.round)

    @app.get("/v1/rosters/{programme}/{season}/{county}", tags=["rosters"])
    async def roster_view(programme: str, season: str, county: str, who: Office) -> dict[str, Any]:
        """Where the cohort's roster stands, whom it waits for until when, and each
        student's application with its stage."""
        within_callers_place(who, "reads no roster", county=county)
        s = season_of(programme, season)
        view = await api.roster_view(programme, s.year, county, round_=s.round)
        return {
            **asdict(view),
            "waiting_until": view.waiting_until.isoformat() if view.waiting_until else None,
            "members": [
                {
                    **asdict(m),
                    "next_deadline": m.next_deadline.isoformat() if m.next_deadline else None,
                }
                for m in view.members
            ],
        }

    # ------------------------------------------------------------ dated tasks

    def programme_known(programme: str) -> None:
        known = api.programmes.get(programme) or CASE_REGISTRY.get(programme)
        if known is None:
            every = [*api.programmes, *CASE_REGISTRY]
            raise Problem(404, f"no programme {programme} (known: {', '.join(every)})")
        if not known.dated_tasks:
            raise Problem(404, f"{programme} has no dated tasks")

    @app.post("/v1/tasks/{programme}/{year}/{county}", tags=["tasks"], status_code=201)
    async def open_tasks(
        programme: str, year: Annotated[int, PathParam(ge=2000, le=2100)], county: str, who: Office
    ) -> dict[str, str]:
        """The county opens the programme's dated tasks of the year (reminders before each
        date, overdue after it); opening them again changes nothing."""
        county_only(who, county)
        programme_known(programme)
        return {"tasks_workflow_id": await api.open_tasks(programme, year, county)}

    @app.post("/v1/tasks/{programme}/{year}/{county}/{key}/done", tags=["tasks"])
    async def task_done(
        programme: str,
        year: Annotated[int, PathParam(ge=2000, le=2100)],
        county: str,
        key: str,
        body: b.TaskDoneBody,
        who: Office,
        idempotency: IdempotencyKey = None,
    ) -> TaskState:
        """The responsible office reports a task done (late is taken, and marked late)."""
        programme_known(programme)
        req = TaskDone.model_validate(
            {
                **body.model_dump(exclude_unset=True, exclude={"request_id"}),
                "request_id": request_id(body, idempotency),
                "actor": who.actor,
                "key": key,
            }
        )
        return await api.report_task_done(programme, year, county, req)

    @app.get("/v1/tasks/{programme}/{year}/{county}", tags=["tasks"])
    async def tasks(
        programme: str, year: Annotated[int, PathParam(ge=2000, le=2100)], county: str, who: Office
    ) -> list[TaskState]:
        within_callers_place(who, "reads no tasks", county=county)
        programme_known(programme)
        return await api.tasks(programme, year, county)

    @app.post(
        "/v1/seasons/{programme}/{season}/{county}/funds-requests", tags=["funds"], status_code=201
    )
    async def request_funds(
        programme: str,
        season: str,
        county: str,
        body: b.FundsRequestBody,
        who: Office,
        key: IdempotencyKey = None,
    ) -> FundsRequestSummary:
        """A funds request with its roster (花名册), downloaded from
        ``…/funds-requests/{request_id}/roster.xlsx``."""
        county_only(who, county)
        s = season_of(programme, season)
        rid = request_id(body, key)
        if rid.startswith("."):  # it names the roster's file, which may not be hidden
            raise Problem(422, f"request_id {rid}: may not begin with '.'")
        return await api.request_funds(programme, s.year, county, who.actor, rid, round_=s.round)

    @app.post("/v1/seasons/{programme}/{season}/{county}/funds-arrivals", tags=["funds"])
    async def funds_arrived(
        programme: str,
        season: str,
        county: str,
        body: b.FundsArrivalBody,
        who: Office,
        key: IdempotencyKey = None,
    ) -> FundsArrivalResult:
        county_only(who, county)
        s = season_of(programme, season)
        return await api.funds_arrived(
            programme,
            s.year,
            county,
            who.actor,
            body.funds_request_id,
            body.amount_cny,
            body.reference,
            request_id=request_id(body, key),
            round_=s.round,
        )

    @app.get("/v1/seasons/{programme}/{season}/{county}/batches", tags=["funds"])
    async def batches(programme: str, season: str, county: str, who: Office) -> list[BatchResult]:
        county_only(who, county)
        s = season_of(programme, season)
        return await api.season_batches(programme, s.year, county, round_=s.round)

    @app.get("/v1/seasons/{programme}/{season}/{county}/report", tags=["funds"])
    async def season_report(
        programme: str, season: str, county: str, who: Office
    ) -> dict[str, Any]:
        """The season's report (written at the payout date, then the summary): where its
        files are, where to download them, and its Markdown text."""
        county_only(who, county)
        s = season_of(programme, season)
        handle: WorkflowHandle[Any, Any] = api.client.get_workflow_handle(
            season_workflow_id(programme, s.year, county, s.round)
        )
        try:
            files: ReportFiles | None = await query_when_ready(handle, SeasonWorkflow.report)
        except Exception:
            raise Problem(404, f"no season {programme} {season} of {county}") from None
        if files is None:
            raise Problem(404, "the season's report is not written yet (at the payout date)")
        text = await asyncio.to_thread(Path(files.markdown).read_text, encoding="utf-8")
        return {
            **files.model_dump(mode="json"),
            "downloads": downloads(programme, season, county, files),
            "text": text,
        }

    @app.post("/v1/seasons/{programme}/{season}/{county}/reports", tags=["funds"], status_code=201)
    async def report_now(programme: str, season: str, county: str, who: Office) -> dict[str, Any]:
        """The season's report built now from the database (XLSX and Markdown): where its
        files are, where to download them, and its Markdown text."""
        county_only(who, county)
        s = season_of(programme, season)
        files = await asyncio.to_thread(
            lambda: write_report(
                build_report(engine, programme, s.year, county, "on_request", round_=s.round),
                files_dir / "reports",
            )
        )
        text = await asyncio.to_thread(Path(files.markdown).read_text, encoding="utf-8")
        return {
            **files.model_dump(mode="json"),
            "downloads": downloads(programme, season, county, files),
            "text": text,
        }

    def downloads(programme: str, season: str, county: str, files: ReportFiles) -> dict[str, str]:
        base = f"/v1/seasons/{programme}/{season}/{county}/reports"
        return {
            "xlsx": f"{base}/{Path(files.xlsx).name}",
            "markdown": f"{base}/{Path(files.markdown).name}",
        }

    def served(folder: Path, name: str, media_type: str) -> FileResponse:
        """A file of ``folder`` by its name alone: a name that climbs out of it (``..``,
        a slash) is no file of it."""
        try:
            path = inside(folder, name)
        except ValueError:
            raise Problem(404, f"no file {name}") from None
        if not path.is_file():
            raise Problem(404, f"no file {name}")
        return FileResponse(path, media_type=media_type, filename=name)

    @app.get(
        "/v1/seasons/{programme}/{season}/{county}/reports/{name}",
        tags=["funds"],
        response_class=FileResponse,
        responses={200: {"content": {m: {} for m in REPORT_MEDIA.values()}}},
    )
    async def report_file(
        programme: str, season: str, county: str, name: str, who: Office
    ) -> FileResponse:
        """A season report's file (XLSX or Markdown), by the name its report's answer gives
        (``downloads``): the one at the payout date, the summary, or one built now."""
        county_only(who, county)
        s = season_of(programme, season)
        suffix = Path(name).suffix
        ours = f"-{programme}-{season_label(s.year, s.round)}-{county}{suffix}"
        if suffix not in REPORT_MEDIA or not name.endswith(ours):
            raise Problem(404, f"{name} is no report of {programme} {season} of {county}")
        return served(files_dir / "reports", name, REPORT_MEDIA[suffix])

    @app.get(
        "/v1/seasons/{programme}/{season}/{county}/funds-requests/{request_id:path}/roster.xlsx",
        tags=["funds"],
        response_class=FileResponse,
        responses={200: {"content": {XLSX: {}}}},
    )
    async def roster(
        programme: str, season: str, county: str, request_id: str, who: Office
    ) -> FileResponse:
        """A funds request's roster (花名册, XLSX): masked identity and account numbers."""
        county_only(who, county)
        s = season_of(programme, season)

        def on_file() -> FundsRequest | None:
            with Session(engine) as db:
                return db.get(FundsRequest, request_id)

        row = await asyncio.to_thread(on_file)
        if (
            row is None
            or (row.programme, row.season, row.county_code) != (programme, s.year, county)
            or not row.roster_path
        ):
            raise Problem(404, f"no funds request {request_id} of {programme} {season} of {county}")
        return served(files_dir / "rosters", Path(row.roster_path).name, XLSX)

    @app.get("/v1/audit/verify", tags=["audit"])
    async def audit_verify(
        who: Office, season: int | None = None, programme: str | None = None
    ) -> dict[str, Any]:
        """Every keyed hash chain checked from its start and against the head its
        workflow history recorded; the first break of each named."""
        county = who.binding.place_code
        county_only(who, county)
        key = SeasonKey(year=season) if season is not None else None
        heads = await chain_heads(api.client, programme=programme, season=key, county=county)
        report = await asyncio.to_thread(
            audit.verify,
            engine,
            keys.audit,
            season=season,
            programme=programme,
            county=county,
            witness=heads,
        )
        return {**dataclasses.asdict(report), "ok": report.ok}

    @app.get("/v1/audit/export", tags=["audit"], response_class=FileResponse)
    async def audit_export(
        who: Office,
        season: int | None = None,
        programme: str | None = None,
        fmt: Annotated[str, Query(alias="format", pattern="^(csv|xlsx)$")] = "csv",
    ) -> FileResponse:
        """The audit log as CSV or XLSX (text neutralised against formulas)."""
        county = who.binding.place_code
        county_only(who, county)
        folder = Path(tempfile.mkdtemp(prefix="aidflow-audit-"))
        out = folder / f"audit.{fmt}"
        await asyncio.to_thread(
            audit.export, engine, out, fmt, season=season, programme=programme, county=county
        )
        # The file goes once, to this caller; then it is removed.
        return FileResponse(
            out,
            filename=out.name,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    def county_only(who: Caller, county: str) -> None:
        if ROLE_LEVEL.get(who.role) is not Level.COUNTY or who.binding.place_code != county:
            raise Problem(403, "only the county's offices read this")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
