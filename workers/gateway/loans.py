"""The student loan over HTTP (PROCESS.md §4.4): the centre's queue (registered-poor
students first), and the receipt of acceptance's code, which a university checks and
answers on without ever knowing the application's id or the student's identity number."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from models.application import DecisionRequest, RequestResult
from models.domain import DecisionKind, Role
from models.ids import parse_application_id
from models.privacy import national_id_problem
from store.loans import Loans, QueueEntry, check_in, masked_name, queue
from workers.client import AidflowClient
from workers.gateway.auth import Caller, office
from workers.gateway.bodies import LoanCheckIn, LoanReceiptConfirmation
from workers.gateway.problems import Problem
from workers.gateway.requests import request_id

Office = Annotated[Caller, Depends(office)]
# As printed on the receipt (ABCD-EFGH-JKLM-NPQR); case and dashes do not matter.
Code = Annotated[str, Path(pattern=r"^[A-Za-z2-7-]{16,19}$")]


def _centre(who: Caller) -> str:
    """The county whose student-aid centre the caller is (the education bureau's key)."""
    if who.role is not Role.COUNTY_EDUCATION_BUREAU:
        raise Problem(403, f"role {who.role.value} does not keep the student-aid centre's queue")
    return who.binding.place_code


def router(api: AidflowClient, loans: Loans) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/loans/queue", status_code=201, tags=["loans"])
    async def arrive(body: LoanCheckIn, who: Office) -> dict[str, Any]:
        """A family arrives at the centre: its ticket, and where it stands (registered-
        poor students are served first, then in the order they came)."""
        county = _centre(who)
        problem = national_id_problem(body.national_id)
        if problem:
            raise Problem(422, f"national_id: {problem}")
        poor = await api.is_registered_poor(body.national_id)
        ticket = await asyncio.to_thread(
            check_in,
            loans.engine,
            county_code=county,
            national_id_hash=api.keys.hash_id(body.national_id),
            student_name=body.name,
            registered_poor=poor,
            at=datetime.now(UTC),
        )
        waiting = await asyncio.to_thread(queue, loans.engine, county)
        position = next(i for i, e in enumerate(waiting, 1) if e.ticket == ticket)
        return {
            "ticket": ticket,
            "student": masked_name(body.name),
            "registered_poor": poor,
            "position": position,
        }

    @r.get("/v1/loans/queue", tags=["loans"])
    async def waiting(who: Office) -> list[dict[str, Any]]:
        """Who waits at the centre, in the order they are served."""
        entries: list[QueueEntry] = await asyncio.to_thread(queue, loans.engine, _centre(who))
        return [asdict(e) for e in entries]

    def university_of(who: Caller) -> str:
        if who.role is not Role.UNIVERSITY:
            raise Problem(403, f"role {who.role.value} does not check loan receipts")
        return who.binding.place_code

    @r.get("/v1/loans/receipts/{code}", tags=["loans"])
    async def verify(code: Code, who: Office) -> dict[str, Any]:
        """A university checks a receipt's code: whether the county accepted the loan of
        this student (masked), at this university, for this year and amount. A code of
        another university's student is as unknown as a wrong one."""
        mine = university_of(who)
        seen = await asyncio.to_thread(loans.verify, code)
        if seen is None or seen.university_code != mine:
            raise Problem(404, "no receipt of acceptance with this code for this university")
        return asdict(seen)

    @r.post("/v1/loans/receipts/{code}/confirmation", tags=["loans"])
    async def confirm(code: Code, body: LoanReceiptConfirmation, who: Office) -> RequestResult:
        """The university's word on the receipt: the student brought it and enrolled
        (with the university's reference), or never enrolled (with the reason: the loan
        ends there). The code, not the application's id, names the loan."""
        mine = university_of(who)
        seen = await asyncio.to_thread(loans.verify, code)
        workflow_id = await asyncio.to_thread(loans.application_of, code)
        if seen is None or workflow_id is None or seen.university_code != mine:
            raise Problem(404, "no receipt of acceptance with this code for this university")
        if not body.enrolled and not body.reason.strip():
            raise Problem(422, "reason: required when the student did not enrol")
        parsed = parse_application_id(workflow_id)
        programme = api.programmes.get(parsed.programme) if parsed else None
        if programme is None:
            raise Problem(404, "no receipt of acceptance with this code for this university")
        # The step a university acts at (asked of who acts, not of the step's kind).
        step = next((s for s in programme.steps if s.actor_role is Role.UNIVERSITY), None)
        if step is None:
            raise Problem(409, f"{programme.code} has no university confirmation")
        req = DecisionRequest(
            request_id=request_id(body, None),
            actor=who.actor,
            stage=step.stage,
            decision=DecisionKind.APPROVE if body.enrolled else DecisionKind.REJECT,
            reason=body.reference if body.enrolled else f"{body.reason} ({body.reference})",
        )
        return await api.decide(workflow_id, req)

    return r
