"""Cases over HTTP (PROCESS.md §5): open one, log a contact with its photographs, hand
over, close (with the evidence), approve a closure, sign a registration off; read where a
case stands and each member's obligations met and missed. Every request names no actor:
the credential is the actor (R10), and the case's workflow checks it (a member, their
unit's liaison, the office at the case's place)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy.engine import Engine

from models.application import RequestResult
from models.cases import CaseStatus, Closure, ClosureApproval, Contact, Handover, SignOff
from models.domain import Role
from store.cases import (
    case_ledger,
    department_summary,
    handbook_markdown,
    obligations_report,
    periodic_report,
)
from workers.client.cases import CaseClient
from workers.gateway import bodies as b
from workers.gateway.auth import Caller, office, within_callers_place
from workers.gateway.files import keep_files
from workers.gateway.ledger import Year
from workers.gateway.problems import Problem
from workers.gateway.requests import build, request_id

Office = Annotated[Caller, Depends(office)]
ProgrammeCode = Annotated[str, Query(pattern=r"^[a-z][a-z0-9-]{1,39}$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)]
CaseId = r"^case/[a-z0-9-]+/\d{4}/\d{6}/[A-Za-z0-9_-]+$"


def router(cases: CaseClient, engine: Engine, files_dir: Path) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/cases", status_code=201, tags=["cases"])
    async def open_case(body: b.CaseOpenBody, who: Office) -> dict[str, str]:
        """The case's office opens it at its place, with its group (each member a person
        with their own key); a left-behind child's registration after its window is
        accepted and flagged late."""
        wf = await cases.open_case(
            body.programme,
            body.year,
            body.places,
            name=body.name,
            national_id=body.national_id,
            members=body.members,
            opened_by=who.actor,
            school=body.school,
            grade=body.grade,
            level=body.level,
            note=body.note,
            failed_courses=tuple(body.failed_courses),
            guardian_contact=body.guardian_contact,
        )
        return {"workflow_id": wf}

    @r.post("/v1/cases/{workflow_id:path}/contacts", tags=["cases"])
    async def log_contact(
        workflow_id: str, body: b.ContactBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """A contact, by the member or their unit's liaison: its photographs are kept
        under their SHA-256, which the case's history keeps."""
        photos = keep_files(files_dir, body.photos, "photos")
        req = Contact(
            request_id=request_id(body, key),
            actor=who.actor,
            member=body.member,
            on=body.on,
            kind=body.kind,
            done=body.done,
            gift_value_cny=body.gift_value_cny,
            problem_solved=body.problem_solved,
            photo_sha256=tuple(p.sha256 for p in photos),
        )
        return await cases.log_contact(_case(workflow_id), req)

    @r.post("/v1/cases/{workflow_id:path}/handovers", tags=["cases"])
    async def hand_over(
        workflow_id: str, body: b.HandoverBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        return await cases.hand_over(_case(workflow_id), build(Handover, body, who, key))

    @r.post("/v1/cases/{workflow_id:path}/closure", tags=["cases"])
    async def close(
        workflow_id: str, body: b.ClosureBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        """Close the case on an outcome its programme allows, with its evidence (a
        reference, or the record's file); an exemption waits for its approval."""
        kept = keep_files(files_dir, body.evidence)
        req = Closure(
            request_id=request_id(body, key),
            actor=who.actor,
            outcome=body.outcome,
            evidence_ref=body.evidence_ref,
            evidence_sha256=kept[0].sha256 if kept else "",
            note=body.note,
        )
        return await cases.close(_case(workflow_id), req)

    @r.post("/v1/cases/{workflow_id:path}/closure-approval", tags=["cases"])
    async def approve_closure(
        workflow_id: str, body: b.ClosureApprovalBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        req = build(ClosureApproval, body, who, key)
        return await cases.approve_closure(_case(workflow_id), req)

    @r.post("/v1/cases/{workflow_id:path}/sign-offs", tags=["cases"])
    async def sign_off(
        workflow_id: str, body: b.SignOffBody, who: Office, key: IdempotencyKey = None
    ) -> RequestResult:
        return await cases.sign_off(_case(workflow_id), build(SignOff, body, who, key))

    @r.get(
        "/v1/cases/{workflow_id:path}/handbook.md",
        tags=["cases"],
        response_class=PlainTextResponse,
    )
    async def handbook(workflow_id: str, who: Office) -> str:
        """The case's help handbook (帮扶手册), from its records: its group, every contact,
        the periods judged and missed, handovers, the outcome (Markdown)."""
        st = await status(workflow_id, who)  # who may read it, as for its status
        text = await asyncio.to_thread(handbook_markdown, engine, st.workflow_id)
        if text is None:
            raise Problem(404, f"no records of {workflow_id} yet")
        return text

    @r.get("/v1/case-reports/ledger", tags=["cases"])
    async def ledger(
        who: Office,
        programme: ProgrammeCode,
        year: Year,
    ) -> list[dict[str, Any]]:
        """The cases' ledger (台账) per township of the caller's county: cases, each stage
        and outcome, overdue now."""
        county = _county_of(who)
        return await asyncio.to_thread(case_ledger, engine, programme, year, county)

    @r.get("/v1/case-reports/departments", tags=["cases"])
    async def departments(
        who: Office,
        programme: ProgrammeCode,
        year: Year,
    ) -> list[dict[str, Any]]:
        """Each department's summary of the year (the pairing plan's 10 December one):
        cadres, households, contacts and their photographs, money or goods, problems
        solved, the obligations' periods met and missed."""
        county = _county_of(who)
        return await asyncio.to_thread(department_summary, engine, programme, year, county)

    @r.get("/v1/case-reports/periodic", tags=["cases"])
    async def periodic(
        who: Office,
        programme: ProgrammeCode,
        period: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4]|H[12])$")],
        enrolled_primary: Annotated[int | None, Query(ge=1)] = None,
        enrolled_junior: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """The monthly dispatch, quarterly summary or half-yearly bulletin (``2027-03``,
        ``2027-Q1``, ``2027-H1``) of the caller's county: per township, cases opened,
        closed by outcome, open at the end; per school level, open at the end and, given
        its enrolment, the dropout rate against the plan's target."""
        county = _county_of(who)
        enrolled = {
            k: v
            for k, v in (("primary", enrolled_primary), ("junior", enrolled_junior))
            if v is not None
        }
        return await asyncio.to_thread(periodic_report, engine, programme, county, period, enrolled)

    @r.get("/v1/cases/{workflow_id:path}", tags=["cases"])
    async def status(workflow_id: str, who: Office) -> CaseStatus:
        """Where the case stands: whom it waits for until when, its misses, its group.
        Its members, and the offices of its county."""
        st = await cases.status(_case(workflow_id))
        members = {m.actor_id for m in st.members}
        units = {m.unit for m in st.members if m.unit}
        liaison = who.role is Role.DEPARTMENT_LIAISON and who.binding.place_code in units
        if who.actor.id not in members and not liaison:
            within_callers_place(who, "reads no case", village=st.places.village_code)
        return st

    @r.get("/v1/case-reports/obligations", tags=["cases"])
    async def report(
        who: Office,
        programme: ProgrammeCode,
        year: Year,
    ) -> list[dict[str, Any]]:
        """Each member's periods met and missed per obligation (by unit: a department's
        cadres), in the caller's county."""
        county = _county_of(who)
        tallies = await asyncio.to_thread(obligations_report, engine, programme, year, county)
        return [t.__dict__ for t in tallies]

    return r


def _county_of(who: Caller) -> str:
    """The county whose reports the caller reads: an office's of a county, township or
    village reads its county's (403 for any other caller)."""
    within_callers_place(who, "reads no case report")
    return who.binding.place_code[:6] + "000000"


def _case(workflow_id: str) -> str:
    import re

    if not re.match(CaseId, workflow_id):
        raise Problem(404, f"no case {workflow_id}")
    return workflow_id
