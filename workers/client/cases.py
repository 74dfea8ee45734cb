"""The typed client for cases (PROCESS.md §5): open one with its group, log a contact,
hand over, close, approve a closure, sign a registration off, read where it stands.

Each request goes through the same signed client as the applications' (R10: the actor
is the credential's), and is checked by the case workflow's validators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from models import search
from models.application import Actor, Places, RequestResult
from models.cases import (
    CaseInput,
    CaseMember,
    CaseProgramme,
    CaseStatus,
    CaseSubject,
    Closure,
    ClosureApproval,
    Contact,
    Handover,
    SignOff,
    case_workflow_id,
)
from models.domain import ROLE_LEVEL
from models.privacy import mask_national_id, national_id_problem
from workers.client.api import AidflowClient, delay_until
from workers.client.errors import Refused, refused_by_workflow
from workers.client.queries import query_when_ready, update_id

T = TypeVar("T")


class CaseClient:
    def __init__(self, api: AidflowClient, programmes: dict[str, CaseProgramme]) -> None:
        self.api = api
        self.programmes = programmes

    async def open_case(
        self,
        programme: str,
        year: int,
        places: Places,
        *,
        name: str,
        national_id: str,
        members: list[CaseMember],
        opened_by: Actor,
        school: str = "",
        grade: str = "",
        level: Literal["", "primary", "junior", "senior"] = "",
        note: str = "",
        failed_courses: tuple[str, ...] = (),
        guardian_contact: str = "",
        now: datetime | None = None,
        start_at: datetime | None = None,
    ) -> str:
        """Open the case (its office, at its place, with its group); its workflow id.

        ``start_at``: a later instant for its first task (a delayed start: the simulator's
        time-skipped start, as for an application)."""
        p = self.programmes.get(programme)
        if p is None:
            raise Refused(f"programme: unknown case programme {programme!r}")
        problems = []
        problem = national_id_problem(national_id)
        if problem:
            problems.append(f"national_id: {problem}")
        if opened_by.role not in p.opened_by:
            problems.append(
                f"opened_by: {programme} cases are opened by the "
                f"{' or the '.join(r.value for r in p.opened_by)}, not {opened_by.role.value}"
            )
        problems += p.group_problems(members)
        office_level = ROLE_LEVEL.get(opened_by.role)
        if office_level is not None and opened_by.place_code != places.code_at(office_level):
            problems.append(
                f"places: {opened_by.role.value} {opened_by.place_code} may not open a case at "
                f"{office_level.value} {places.code_at(office_level)}"
            )
        if problems:
            # The wrong office is who asks, not what is asked (403 over HTTP).
            wrong_office = opened_by.role not in p.opened_by or any(
                x.startswith("places:") for x in problems
            )
            raise Refused("; ".join(problems), kind="forbidden" if wrong_office else "refused")
        id_hash = self.api.keys.hash_id(national_id)
        wf = case_workflow_id(programme, year, places.county_code, id_hash)
        inp = CaseInput(
            workflow_id=wf,
            programme=p,
            year=year,
            places=places,
            subject=CaseSubject(
                name=name,
                national_id_masked=mask_national_id(national_id),
                national_id_hash=id_hash,
                school=school,
                grade=grade,
                level=level,
            ),
            members=tuple(members),
            opened_at=now or datetime.now(UTC),
            opened_by=opened_by,
            note=note,
            failed_courses=failed_courses,
            guardian_contact_sealed=self.api.keys.seal(guardian_contact),
        )
        try:
            await self.api.client.start_workflow(
                "CaseWorkflow",
                inp,
                id=wf,
                task_queue=self.api.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_delay=delay_until(start_at),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search.PROGRAMME, programme),
                        SearchAttributePair(search.SEASON, year),
                        SearchAttributePair(search.COUNTY, places.county_code),
                        SearchAttributePair(search.TOWNSHIP, places.township_code),
                        SearchAttributePair(search.VILLAGE, places.village_code),
                        SearchAttributePair(search.STAGE, "case_open"),
                        SearchAttributePair(search.OVERDUE, False),
                    ]
                ),
                static_summary=f"{p.name_zh} {year} · {name} {inp.subject.national_id_masked}",
            )
        except WorkflowAlreadyStartedError:
            raise Refused(f"national_id: a {programme} {year} case is open already: {wf}") from None
        return wf

    async def _update(self, wf: str, update: str, req: Any) -> RequestResult:
        try:
            result: RequestResult = await self.api.client.get_workflow_handle(wf).execute_update(
                update, req, id=update_id(req), result_type=RequestResult
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"no case {wf}", kind="not_found") from None
            raise Refused(f"{wf}: {e.message}") from None
        return result

    async def log_contact(self, wf: str, req: Contact) -> RequestResult:
        return await self._update(wf, "log_contact", req)

    async def hand_over(self, wf: str, req: Handover) -> RequestResult:
        return await self._update(wf, "hand_over", req)

    async def close(self, wf: str, req: Closure) -> RequestResult:
        return await self._update(wf, "close", req)

    async def approve_closure(self, wf: str, req: ClosureApproval) -> RequestResult:
        return await self._update(wf, "approve_closure", req)

    async def sign_off(self, wf: str, req: SignOff) -> RequestResult:
        return await self._update(wf, "sign_off", req)

    async def status(self, wf: str) -> CaseStatus:
        handle = self.api.client.get_workflow_handle(wf, result_type=CaseStatus)
        answer = await query_when_ready(handle, "status")
        return CaseStatus.model_validate(answer) if isinstance(answer, dict) else answer
