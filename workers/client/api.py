"""The client itself: every request a service sends, checked here first (intake), then
by the workflows (stage, role, place, four eyes)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from models import search
from models.application import (
    Actor,
    ApplicantRecord,
    ApplicationForm,
    ApplicationInput,
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
from models.authority import STATEMENT_LIFETIME
from models.calendar import OutsideTable, TabulatedCalendar, WorkingCalendar
from models.domain import Level, Role
from models.ids import (
    applicant_actor_id,
    application_workflow_id,
    parse_application_id,
    recovery_workflow_id,
    roster_workflow_id,
    season_workflow_id,
    tasks_workflow_id,
)
from models.intake import (
    FieldProblem,
    PriorApplication,
    RegisteredMember,
    amount_due,
    check_application,
    check_prior_applications,
    excluded_by,
    registered_poor,
)
from models.loan import LoanRecord, SealedCoBorrower
from models.notice import NoticePostRequest, NoticeStatus, notice_workflow_id
from models.payout import (
    AccountCorrection,
    BatchResult,
    FundsArrival,
    FundsArrivalResult,
    FundsRequestCommand,
    FundsRequestSummary,
    RoundOpened,
    RoundOpening,
    SeasonInput,
)
from models.planner import project_steps
from models.privacy import mask_account, mask_national_id
from models.programme import Programme
from models.programmes import CASE_REGISTRY
from models.records import Projection
from models.recovery import RecoveredRequest, RecoveryInput, RecoveryStatus
from models.roster import RosterDecided, RosterDecision, RosterInput
from models.schedule import SeasonSchedules
from models.season import season_label
from models.steps import RosterStep
from models.tasks import DatedTasksInput, TaskDone, TaskState, task_plan
from store.loans import Loans
from store.sealing import Keys
from workers.client.errors import BUSY, Refused, refused_by_workflow
from workers.client.queries import query_when_ready, quote, update_id
from workers.signing import Signer, SigningInterceptor
from workflows.application import ApplicationWorkflow
from workflows.notice import NoticeWorkflow
from workflows.recovery import RecoveryWorkflow
from workflows.season import SeasonWorkflow

T = TypeVar("T")


@dataclass(frozen=True)
class Listed:
    workflow_id: str
    stage: str
    village: str
    overdue: bool
    at_risk: bool
    next_deadline: datetime | None
    status: str


@dataclass
class RosterView:
    workflow_id: str
    phase: str  # the roster step the cohort stands at, roster_building or roster_decided
    waiting_for: str
    waiting_until: datetime | None
    overdue: bool
    members: list[Listed]


class AidflowClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        keys: Keys,
        calendar: WorkingCalendar,
        programmes: dict[str, Programme],
        lookup_member: Callable[[str], RegisteredMember | None],
        lookup_applications: Callable[[str, int], list[PriorApplication]] | None = None,
        claim_application: Callable[[str, int, str, str, str, str], PriorApplication | None]
        | None = None,
        bank: str = "simulated",
        statement_lifetime: timedelta = STATEMENT_LIFETIME,
        loans: Loans | None = None,
        calendar_is_fixed: bool = False,
        pairing_cadre: Callable[[str, str, int, str], bool] | None = None,
    ) -> None:
        """``calendar_is_fixed``: the workflows started here cannot outlive this
        calendar's data (the simulator), so provisional days are final in their tables."""
        self.bank = bank
        # Corrected returns collected this long go out in one re-payment batch.
        self.repayment_batch_delay = timedelta(hours=1)
        # Payments per disbursement file, and (tests only) how long a season run's
        # history grows before it continues as new (0: when the server suggests it).
        self.payout_batch_size = SeasonInput.model_fields["payout_batch_size"].default
        self.season_continue_after_events = 0
        self._seasons: set[str] = set()
        self._rosters: set[str] = set()  # the rosters this client has started or found
        self._opened_rounds: set[str] = set()  # seasons whose round is known to be open
        # R10: what this client sends carries a statement signed with the deployment's
        # authority key for the actor it acts for (workers/signing.py); the workers
        # refuse what does not. ``statement_lifetime``: longer only where the workflows'
        # clocks run ahead of the wall clock (time skipping: tests, the simulator).
        config = client.config()
        config["interceptors"] = [
            *config["interceptors"],
            SigningInterceptor(
                Signer(keys.authority, statement_lifetime),
                client.data_converter.payload_converter,
            ),
        ]
        self.client = Client(**config)
        self.task_queue = task_queue
        self.keys = keys
        self.calendar = calendar
        # Each application's schedule goes in its input (models/schedule.py).
        self.schedules = SeasonSchedules(calendar, calendar_is_fixed=calendar_is_fixed)
        self.programmes = programmes
        self._lookup_member = lookup_member
        self._lookup_applications = lookup_applications
        self._claim_application = claim_application
        self._loans = loans
        # Whether a helper is the pairing cadre of a student's household in a year
        # (store/registry.py): without it, no helper submits for a family.
        self._pairing_cadre = pairing_cadre

    # ------------------------------------------------------------- intake

    async def submit(
        self,
        form: ApplicationForm,
        *,
        submitted_by: Actor | None = None,
        received_by: Actor | None = None,
        now: datetime | None = None,
        start_at: datetime | None = None,
    ) -> str:
        """Start the application's workflow; returns its workflow id.

        ``start_at``: a later instant for the workflow's first task (a delayed start).
        ``aidflow simulate`` uses it with time skipping, which skips the delay, so the
        application starts at its simulated receipt instant."""
        known = self.programmes.get(form.programme)
        if known is None:
            raise Refused(
                f"programme: unknown {form.programme!r} (known: {', '.join(self.programmes)})"
            )
        try:
            programme = known.for_round(form.round)  # R12: the round's window and dates
        except ValueError as e:
            raise Refused(
                f"round: {e}", problems=[FieldProblem(field="round", problem=str(e))]
            ) from None
        now = now or datetime.now(UTC)
        id_hash = self.keys.hash_id(form.national_id)
        actor = submitted_by or Actor(
            id=applicant_actor_id(id_hash),
            name=form.applicant_name,
            role=Role.APPLICANT,
            place_code=form.places.village_code,
        )
        # The season's instants, once: the window checked here, and all of it in the input.
        schedule = self.schedules.of(programme, form.season)
        problems = check_application(
            form,
            programme,
            now=now,
            window=(schedule.window_opens_at, schedule.window_closes_at),
            lookup_member=lambda nid: self._lookup_member(self.keys.hash_id(nid)),
            submitted_by=actor,
            calendar=self.calendar,
        )
        if actor.role is Role.HELPER and actor.role in programme.on_behalf_with_consent:
            problems += await self._cadre_problems(actor, id_hash, form)
        # Every check that only reads runs whatever the others found, so that a refusal
        # names everything wrong at once (R5); the claims, which write, only for a
        # submission otherwise good.
        if form.loan is not None and form.loan.renewal_of:
            problems += await self._renewal_problems(form.loan.renewal_of, id_hash)
        workflow_id = application_workflow_id(
            programme.code, form.season, form.places.county_code, id_hash, form.round
        )
        if self._lookup_applications is not None:
            # Across counties and programmes (the workflow id dedupes within a county).
            priors = await asyncio.to_thread(self._lookup_applications, id_hash, form.season)
            problems += check_prior_applications(
                programme, workflow_id, priors, excluded_by(programme, self.programmes)
            )
        if not problems and programme.opened_by is not None:
            # Asked of the season (Temporal), only for a form otherwise good: an outage
            # there would hide what the form has wrong.
            problems = await self._round_problems(programme, form)
        if (
            not problems
            and self._claim_application is not None
            and programme.one_per_student_per_season
        ):
            # Claimed before the workflow starts: two counties' submissions moments
            # apart cannot both pass (the read model has neither yet).
            holder = await asyncio.to_thread(
                self._claim_application,
                programme.code,
                form.season,
                programme.claim_round,
                id_hash,
                workflow_id,
                form.places.county_code,
            )
            if holder is not None:
                problems = check_prior_applications(programme, workflow_id, [holder])
        if not problems and self._claim_application is not None:
            problems = await self._claim_exclusions(programme, form, id_hash, workflow_id)
        if problems:
            raise Refused("; ".join(str(p) for p in problems), problems=problems)
        await self.ensure_season(
            programme.code,
            form.season,
            form.places.county_code,
            start_at=start_at,
            round_=form.round,
        )
        if programme.find_step(RosterStep) is not None:
            await self.ensure_roster(programme, form.season, form.places)
        applicant = ApplicantRecord(
            name=form.applicant_name,
            national_id_masked=mask_national_id(form.national_id),
            national_id_hash=id_hash,
            national_id_sealed=self.keys.seal(form.national_id),
            phone_sealed=self.keys.seal(form.phone),
            email_sealed=self.keys.seal(form.email),
            household_no=form.household_no,
            university=form.university,
            education_level=form.education_level,
            freshman=form.freshman,
            university_in_province=form.university_in_province,
            bank_name=form.bank_name,
            account_masked=mask_account(form.account_number),
            account_sealed=self.keys.seal(form.account_number),
            account_holder=form.account_holder,
            documents=dict(form.documents),
        )
        amount = amount_due(programme, form.season, form)
        places = form.places
        loan: LoanRecord | None = None
        if form.loan is not None and programme.loan is not None:
            amount = form.loan.requested_cny  # the family's request, within the cap
            places = places.model_copy(update={"university_code": form.loan.university_code})
            loan = self._loan_record(form, id_hash)
        inp = ApplicationInput(
            workflow_id=workflow_id,
            programme=programme,
            season=form.season,
            places=places,
            applicant=applicant,
            amount_cny=amount,
            submitted_at=now,
            submitted_by=actor,
            received_by=received_by,
            consent=form.consent,
            loan=loan,
            calendar=self.calendar.name,
            schedule=schedule,
        )
        try:
            await self.client.start_workflow(
                ApplicationWorkflow.run,
                inp,
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=_initial_attributes(inp, start_at or now),
                start_delay=delay_until(start_at),
                static_summary=(
                    f"{programme.name_zh} {form.season} · {form.applicant_name} "
                    f"{applicant.national_id_masked} · {form.places.village_name or form.places.village_code}"
                ),
                static_details=(
                    f"**{programme.name_zh} / {programme.name_en}**, season {form.season}, "
                    f"{amount} CNY\n\napplicant {form.applicant_name} {applicant.national_id_masked}, "
                    f"{form.university}\n\nvillage {form.places.village_name} {form.places.village_code}, "
                    f"township {form.places.township_name} {form.places.township_code}, "
                    f"county {form.places.county_name} {form.places.county_code}"
                ),
            )
        except WorkflowAlreadyStartedError:
            raise Refused(
                f"national_id: this student already applied to {programme.code} {form.season}: {workflow_id}",
                problems=[
                    FieldProblem(field="national_id", problem=f"already applied: {workflow_id}")
                ],
                existing=workflow_id,
            ) from None
        if loan is not None and self._loans is not None:
            await asyncio.to_thread(
                self._loans.served, form.places.county_code, id_hash, workflow_id, now
            )
        return workflow_id

    async def is_registered_poor(self, national_id: str) -> bool:
        """Whether the student is an active member of a registered-poor household."""
        member = await asyncio.to_thread(self._lookup_member, self.keys.hash_id(national_id))
        return registered_poor(member)

    def _loan_record(self, form: ApplicationForm, id_hash: str) -> LoanRecord:
        """The loan as the workflow carries it: the co-borrower's number sealed (R9)."""
        assert form.loan is not None
        co = form.loan.co_borrower
        return LoanRecord(
            requested_cny=form.loan.requested_cny,
            tuition_cny=form.loan.tuition_cny,
            lodging_cny=form.loan.lodging_cny,
            co_borrower=SealedCoBorrower(
                name=co.name,
                relation=co.relation,
                national_id_masked=mask_national_id(co.national_id),
                national_id_hash=self.keys.hash_id(co.national_id),
                national_id_sealed=self.keys.seal(co.national_id),
            ),
            university_code=form.loan.university_code,
            renewal_of=form.loan.renewal_of,
            registered_poor=registered_poor(self._lookup_member(id_hash)),
        )

    async def _renewal_problems(self, contract_no: str, id_hash: str) -> list[FieldProblem]:
        """A renewal names a first contract of the same student's."""
        holder = (
            await asyncio.to_thread(self._loans.contract_holder, contract_no)
            if self._loans is not None
            else None
        )
        if holder == id_hash:
            return []
        return [
            FieldProblem(
                field="loan.renewal_of",
                problem=f"{contract_no} is not a loan contract of this student's: a renewal "
                "names the student's first contract",
            )
        ]

    async def _cadre_problems(
        self, actor: Actor, id_hash: str, form: ApplicationForm
    ) -> list[FieldProblem]:
        """A helper submits for a family only as its pairing cadre (PROCESS.md §4.2): in
        the group, now, of the household's open cadre-pairing case of the year, in the
        application's county."""
        lookup, year, county = self._pairing_cadre, form.season, form.places.county_code
        if lookup is not None and await asyncio.to_thread(lookup, actor.id, id_hash, year, county):
            return []
        return [
            FieldProblem(
                field="submitted_by",
                problem=f"helper {actor.id} is not the pairing cadre of this student's "
                f"household: no open cadre-pairing case of {year} has them in its group",
            )
        ]

    async def _claim_exclusions(
        self, programme: Programme, form: ApplicationForm, id_hash: str, workflow_id: str
    ) -> list[FieldProblem]:
        """Programmes that exclude each other: one claim per pair, student and year, so
        that two submissions moments apart (two counties, two programmes) cannot both
        pass a check on the read model, which has neither yet."""
        assert self._claim_application is not None
        for other in sorted(excluded_by(programme, self.programmes)):
            pair = "+".join(sorted((programme.code, other)))
            key = "excl:" + hashlib.sha256(pair.encode()).hexdigest()[:24]
            holder = await asyncio.to_thread(
                self._claim_application,
                key,
                form.season,
                "",
                id_hash,
                workflow_id,
                form.places.county_code,
            )
            if holder is not None:
                first = holder.model_copy(update={"programme": holder.workflow_id.split("/")[0]})
                return check_prior_applications(programme, workflow_id, [first], frozenset({other}))
        return []

    async def _round_problems(
        self, programme: Programme, form: ApplicationForm
    ) -> list[FieldProblem]:
        """A programme whose rounds an office opens takes applications once it has."""
        county = form.places.county_code
        wf = season_workflow_id(programme.code, form.season, county, form.round)
        if wf in self._opened_rounds or await self.round_opened(
            programme.code, form.season, county, form.round
        ):
            return []
        assert programme.opened_by is not None
        return [
            FieldProblem(
                field="round",
                problem=f"{season_label(form.season, form.round)} of {programme.code} has not "
                f"been opened in county {county} yet: the {programme.opened_by.value} opens it "
                "once the national system has",
            )
        ]

    async def submit_as(
        self, form: ApplicationForm, caller: Actor, *, received_at: datetime | None = None
    ) -> str:
        """R10: submit as the caller's credential. A programme's submitting office (a
        high school) submits as itself; the applicant submits online; the office of the
        applicant's village receives a paper form for the applicant, and only it may date
        it (``received_at``), recorded as received by it."""
        known = self.programmes.get(form.programme)
        submitting = known.submitted_by if known else ()
        on_behalf = known.on_behalf_with_consent if known else ()
        if caller.role in submitting and caller.role is not Role.APPLICANT:
            who, received_by = caller, None
        elif caller.role in on_behalf:
            # For the family, with its consent (intake requires it, and the place).
            who, received_by = caller, None
        elif caller.role is Role.APPLICANT and Role.APPLICANT in submitting:
            # An applicant's credential stands for one student: their own application.
            if caller.id != applicant_actor_id(self.keys.hash_id(form.national_id)):
                raise Refused(
                    "national_id: an applicant's credential submits only its own application",
                    kind="forbidden",
                )
            if received_at is not None:
                raise Refused(
                    "received_at: only the receiving office may date a paper form", kind="forbidden"
                )
            who, received_by = caller, None
        elif caller.role is Role.VILLAGE_COMMITTEE and Role.APPLICANT in submitting:
            if caller.place_code != form.places.village_code:
                raise Refused(
                    f"place {caller.place_code} is not the applicant's village {form.places.village_code}",
                    kind="forbidden",
                )
            who, received_by = None, caller
        else:
            raise Refused(
                f"role {caller.role.value} does not submit {form.programme} applications",
                kind="forbidden",
            )
        return await self.submit(form, submitted_by=who, received_by=received_by, now=received_at)

    # ------------------------------------------------------------ requests

    def handle(self, workflow_id: str) -> WorkflowHandle[ApplicationWorkflow, ApplicationStatus]:
        return self.client.get_workflow_handle_for(ApplicationWorkflow.run, workflow_id)

    async def _update(self, workflow_id: str, update: Any, req: Any) -> RequestResult:
        try:
            result: RequestResult = await self.handle(workflow_id).execute_update(
                update, req, id=update_id(req), result_type=RequestResult
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as e:
            # The SDK turns the caller's own cancellation into the same error as an RPC
            # timeout; a cancelled caller must stay cancelled (retrying it kept a failed
            # simulation alive), not hear "try again".
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError() from e
            raise await self._why_not(workflow_id, e) from None
        return result

    async def _why_not(self, workflow_id: str, error: Exception) -> Refused:
        """Explain a request that could not reach a running workflow, and whether sending
        it again may help ("unavailable": the server or the workers did not answer in
        time; the request's id makes a repeat safe, R4)."""
        try:
            desc = await self.handle(workflow_id).describe()
        except RPCError as e:
            return _not_described(workflow_id, e)
        if desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING:
            try:
                final = await self.handle(workflow_id).result()
                return Refused(f"the application is closed: {final.stage} ({workflow_id})")
            except Exception:
                closed = desc.status.name.lower()
                return Refused(f"the application is closed: {closed} ({workflow_id})")
        message = f"{workflow_id}: {getattr(error, 'message', str(error))}"
        if isinstance(error, WorkflowUpdateRPCTimeoutOrCancelledError) or (
            isinstance(error, RPCError) and error.status in BUSY
        ):
            return Refused(message + _AGAIN, kind="unavailable")
        return Refused(message)

    async def decide(self, workflow_id: str, req: DecisionRequest) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.decide, req)

    async def correct(self, workflow_id: str, req: CorrectionRequest) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.correct, req)

    async def lodge_objection(self, workflow_id: str, req: ObjectionRequest) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.lodge_objection, req)

    async def resolve_objection(self, workflow_id: str, req: ObjectionResolution) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.resolve_objection, req)

    async def withdraw(self, workflow_id: str, req: WithdrawalRequest) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.withdraw, req)

    async def record_receipt(self, workflow_id: str, req: ReceiptRecord) -> RequestResult:
        return await self._update(workflow_id, ApplicationWorkflow.record_receipt, req)

    # ------------------------------------------------------- cancellation (fraud)

    async def cancel(self, workflow_id: str, req: CancellationRequest) -> RequestResult:
        """The grant cancelled (a report or objection proved true). Before payment the
        application ends cancelled; once paid, its amount goes onto the recovery list:
        a RecoveryWorkflow, started here with the cancellation (the office's own word,
        proven by its credential, R10), waits for the money to come back."""
        # Who may cancel is checked before anything of the application is read (its
        # programme and county are in its id): another office learns nothing of it.
        parsed = parse_application_id(workflow_id)
        programme = self.programmes.get(parsed.programme) if parsed else None
        role = programme.cancelled_by if programme else None
        county6 = parsed.county6 if parsed else ""
        if role is None or req.actor.role is not role or req.actor.place_code[:6] != county6:
            raise Refused(
                f"role {req.actor.role.value} at {req.actor.place_code or '(none)'} may not "
                f"cancel {workflow_id}: it needs {role.value if role else 'a cancelling office'} "
                "of its county",
                kind="forbidden",
            )
        handle = self.handle(workflow_id)
        try:
            desc = await handle.describe()
        except RPCError as e:
            raise _not_described(workflow_id, e) from None
        if desc.status is WorkflowExecutionStatus.RUNNING:
            try:
                return await self._update(workflow_id, ApplicationWorkflow.cancel, req)
            except Refused as refusal:
                if not re.search(r"the application is closed: (paid|received)", str(refusal)):
                    raise
            # Paid, and still saving its last events: the recovery's entries follow them
            # in its audit chain, so it is let finish first.
            await handle.result()
        st = await self.status(workflow_id)
        if st.stage not in ("paid", "received"):
            raise Refused(
                f"the application ended {st.stage} ({workflow_id}): nothing was paid to recover"
            )
        name, _, masked = st.applicant_masked.rpartition(" ")
        inp = RecoveryInput(
            application_id=workflow_id,
            programme=st.programme,
            season=st.season,
            round=parsed.season.round if parsed else "",
            places=st.places,
            applicant_name=name,
            applicant_masked=masked,
            amount_cny=st.amount_cny,
            cancelled_by=programme.cancelled_by if programme else None,
        )
        start = WithStartWorkflowOperation(
            RecoveryWorkflow.run,
            inp,
            id=inp.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # One recovery a grant: once recovered, a cancellation again starts nothing.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"追回 {name} {masked} {st.amount_cny:,} 元 · {workflow_id}",
        )
        try:
            return await _settled(
                start,
                self.client.execute_update_with_start_workflow(
                    RecoveryWorkflow.cancel, req, start_workflow_operation=start, id=update_id(req)
                ),
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except WorkflowAlreadyStartedError:
            raise Refused(
                f"{workflow_id} was already cancelled after payment and its money recovered"
            ) from None

    async def mark_recovered(self, application_id: str, req: RecoveredRequest) -> RequestResult:
        """The cancelled grant's money is back: off the open recovery list."""
        return await self._update_on(
            recovery_workflow_id(application_id),
            "recovered",
            req,
            RequestResult,
            f"no recovery of {application_id}: the grant was not cancelled after payment",
        )

    async def recovery_status(self, application_id: str) -> RecoveryStatus:
        try:
            return await self.client.get_workflow_handle(
                recovery_workflow_id(application_id)
            ).query(RecoveryWorkflow.status)
        except RPCError as e:
            raise Refused(
                f"no recovery of {application_id}: {e.message}", kind="not_found"
            ) from None

    # ------------------------------------------------------------ notices

    def notice_id(
        self,
        programme: str,
        season: int,
        level: Level,
        place_code: str,
        *,
        round_: str = "",
        stage: str | None = None,
    ) -> str:
        """The notice workflow's id: the programme's notice step at ``level`` unless
        ``stage`` names another."""
        prog = self.programmes[programme]
        step = prog.notice_at(level, stage)
        if step is None:
            raise Refused(f"{programme} has no {level.value} notice", kind="not_found")
        return notice_workflow_id(programme, season, round_, level, place_code, step.stage)

    async def post_notice(self, notice_id: str, req: NoticePostRequest) -> RequestResult:
        """The owner posts the notice now: every application waiting for it is on this
        posting; the answer says how many and until when."""
        handle = self.client.get_workflow_handle_for(NoticeWorkflow.run, notice_id)
        try:
            result: RequestResult = await handle.execute_update(
                NoticeWorkflow.post, req, id=update_id(req)
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise Refused(
                    f"no notice {notice_id} is open: no application has been ready for it yet",
                    kind="not_found",
                ) from None
            raise Refused(f"{notice_id}: {e.message}") from None
        return result

    async def notice_status(self, notice_id: str) -> NoticeStatus:
        handle = self.client.get_workflow_handle_for(NoticeWorkflow.run, notice_id)
        try:
            status: NoticeStatus = await query_when_ready(handle, NoticeWorkflow.status)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"no notice {notice_id}", kind="not_found") from None
            raise
        return status

    async def notices_at(
        self,
        programme: str,
        level: Level,
        place_code: str,
        *,
        season: int | None = None,
        round_: str | None = None,
        running: bool = True,
    ) -> list[str]:
        """The notices of a programme at a place (newest first), by their ids."""
        clauses = ["WorkflowType = 'NoticeWorkflow'", f"Programme = '{quote(programme)}'"]
        if running:
            clauses.append("ExecutionStatus = 'Running'")
        if season is not None:
            clauses.append(f"Season = {int(season)}")
        if round_ is not None:
            clauses.append(f"Round = '{quote(round_)}'")
        ids: list[str] = []
        async for wf in self.client.list_workflows(" AND ".join(clauses)):
            parts = wf.id.split("/")
            mine = len(parts) == 6 and parts[3] == level.value and parts[4] == place_code
            if mine and wf.id not in ids:
                ids.append(wf.id)
        return ids

    # ------------------------------------------------------- season, funds, payout

    def season_input(
        self, programme: str, season: int, county_code: str, round_: str = ""
    ) -> SeasonInput:
        return SeasonInput(
            programme=self.programmes[programme].for_round(round_),
            season=season,
            county_code=county_code,
            bank=self.bank,
            repayment_batch_delay=self.repayment_batch_delay,
            payout_batch_size=self.payout_batch_size,
            continue_as_new_after_events=self.season_continue_after_events,
        )

    def _season_start(
        self, programme: str, season: int, county_code: str, round_: str = ""
    ) -> WithStartWorkflowOperation[SeasonWorkflow, Any]:
        return WithStartWorkflowOperation(
            SeasonWorkflow.run,
            self.season_input(programme, season, county_code, round_),
            id=season_workflow_id(programme, season, county_code, round_),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A season that completed is over (its summary written): a request does not
            # start it afresh, with its batch numbers from b001 again (see request_funds).
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            static_summary=_season_summary(self.programmes[programme], season, round_, county_code),
        )

    def started_seasons(self) -> list[str]:
        """The season workflows this client has started or found running."""
        return sorted(self._seasons)

    async def ensure_season(
        self,
        programme: str,
        season: int,
        county_code: str,
        *,
        start_at: datetime | None = None,
        round_: str = "",
    ) -> str:
        """Start the county's season workflow if it is not running (reminders, funds, batches, report)."""
        wf_id = season_workflow_id(programme, season, county_code, round_)
        if wf_id in self._seasons:
            return wf_id
        # A season that completed is over: it is not started again.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                SeasonWorkflow.run,
                self.season_input(programme, season, county_code, round_),
                id=wf_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                start_delay=delay_until(start_at),
                static_summary=_season_summary(
                    self.programmes[programme], season, round_, county_code
                ),
            )
        self._seasons.add(wf_id)
        return wf_id

    async def ensure_roster(self, programme: Programme, season: int, places: Places) -> str:
        """Start the cohort's roster if it is not running (its students join it by a
        message when they reach a roster step: many at once, which updates could not
        take: a workflow has at most ten updates in flight)."""
        inp = RosterInput(
            programme=programme,
            season=season,
            county_code=places.county_code,
            county_name=places.county_name,
        )
        if inp.workflow_id in self._rosters:
            return inp.workflow_id
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                "RosterWorkflow",
                inp,
                id=inp.workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=(
                    f"{places.county_name or places.county_code} {programme.name_zh}名册 "
                    f"{season_label(season, programme.round_key)}"
                ),
            )
        self._rosters.add(inp.workflow_id)
        return inp.workflow_id

    async def open_round(
        self,
        programme: str,
        season: int,
        county_code: str,
        actor: Actor,
        national_opened_on: date,
        *,
        note: str = "",
        request_id: str | None = None,
        round_: str = "",
    ) -> RoundOpened:
        """The round opened by its office (``Programme.opened_by``): from now the county
        takes its applications; the townships are told. Opening it again changes
        nothing (the first opening is the answer)."""
        wf = season_workflow_id(programme, season, county_code, round_)
        self._seasons.add(wf)
        opening = RoundOpening(
            request_id=request_id or uuid.uuid4().hex,
            actor=actor,
            national_opened_on=national_opened_on,
            note=note,
        )
        opened: RoundOpened = await self._season_update(
            SeasonWorkflow.open_round,
            opening,
            (programme, season, county_code, round_),
            "it opens no round",
        )
        self._opened_rounds.add(wf)
        return opened

    async def _season_update(
        self, update: Any, arg: Any, key: tuple[str, int, str, str], closed: str
    ) -> Any:
        """An update to the county's season, started if it is not running; one that has
        closed (its summary written) is not started afresh: refused, saying ``closed``."""
        programme, season, county_code, round_ = key
        start = self._season_start(programme, season, county_code, round_)
        try:
            return await _settled(
                start,
                self.client.execute_update_with_start_workflow(
                    update, arg, start_workflow_operation=start, id=update_id(arg)
                ),
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except WorkflowAlreadyStartedError:
            raise Refused(
                f"the {programme} {season_label(season, round_)} season of {county_code} is "
                f"closed (its summary is written): {closed}",
                problems=[FieldProblem(field="season", problem="closed")],
            ) from None

    async def round_opened(
        self, programme: str, season: int, county_code: str, round_: str = ""
    ) -> RoundOpened | None:
        """The round's opening, or None: not opened (its season not even started)."""
        wf = season_workflow_id(programme, season, county_code, round_)
        handle = self.client.get_workflow_handle(wf)
        try:
            # A season that has ended (its summary written, or ended by an operator)
            # opens nothing: only a running one is asked.
            if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
                return None
            opened: RoundOpened | None = await handle.query(SeasonWorkflow.opened)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise Refused(
                f"round: whether {wf} is open cannot be told now ({e.message}); try again",
                problems=[FieldProblem(field="round", problem="its opening cannot be read now")],
            ) from None
        if opened is not None:
            self._opened_rounds.add(wf)
        return opened

    async def request_funds(
        self,
        programme: str,
        season: int,
        county_code: str,
        actor: Actor,
        request_id: str | None = None,
        round_: str = "",
    ) -> FundsRequestSummary:
        self._seasons.add(season_workflow_id(programme, season, county_code, round_))
        cmd = FundsRequestCommand(
            request_id=request_id or f"fr-{county_code[:6]}-{season}-{uuid.uuid4().hex[:6]}",
            actor=actor,
        )
        summary: FundsRequestSummary = await self._season_update(
            SeasonWorkflow.request_funds,
            cmd,
            (programme, season, county_code, round_),
            "no funds request after it",
        )
        return summary

    async def funds_arrived(
        self,
        programme: str,
        season: int,
        county_code: str,
        actor: Actor,
        funds_request_id: str,
        amount_cny: int,
        reference: str,
        request_id: str | None = None,
        round_: str = "",
    ) -> FundsArrivalResult:
        msg = FundsArrival(
            request_id=request_id or f"arrival-{reference}",
            actor=actor,
            funds_request_id=funds_request_id,
            amount_cny=amount_cny,
            reference=reference,
        )
        handle = self.client.get_workflow_handle_for(
            SeasonWorkflow.run, season_workflow_id(programme, season, county_code, round_)
        )
        try:
            return await handle.execute_update(SeasonWorkflow.funds_arrived, msg, id=update_id(msg))
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except RPCError as e:
            raise Refused(
                f"no running season workflow for {programme} {season} {county_code}: {e.message}"
            ) from None

    async def correct_account(
        self,
        workflow_id: str,
        actor: Actor,
        *,
        bank_name: str,
        account_number: str,
        account_holder: str,
        request_id: str | None = None,
    ) -> RequestResult:
        if not (account_number.isdigit() and 12 <= len(account_number) <= 19):
            raise Refused("account_number: must be 12 to 19 digits")
        req = AccountCorrection(
            request_id=request_id or uuid.uuid4().hex,
            actor=actor,
            bank_name=bank_name,
            account_masked=mask_account(account_number),
            account_sealed=self.keys.seal(account_number),
            account_holder=account_holder,
        )
        return await self._update(workflow_id, ApplicationWorkflow.correct_account, req)

    async def season_batches(
        self, programme: str, season: int, county_code: str, round_: str = ""
    ) -> list[BatchResult]:
        handle = self.client.get_workflow_handle_for(
            SeasonWorkflow.run, season_workflow_id(programme, season, county_code, round_)
        )
        batches: list[BatchResult] = await query_when_ready(handle, SeasonWorkflow.batches)
        return batches

    # ------------------------------------------------------------- rosters

    async def decide_roster(
        self,
        programme: str,
        season: int,
        county_code: str,
        req: RosterDecision,
        round_: str = "",
    ) -> RosterDecided:
        """An office's word on a cohort's roster (models/roster.py): the roster tells each
        student's application."""
        wf = roster_workflow_id(programme, season, county_code, round_)
        missing = f"no roster {wf}: no student of the cohort has reached a roster step yet"
        return await self._update_on(wf, "decide", req, RosterDecided, missing)

    async def _update_on(
        self, wf: str, update: str, req: Any, result_type: type[T], missing: str
    ) -> T:
        """An update to a workflow other than an application (a roster, dated tasks): a
        refusal as its reason; ``missing`` when the workflow does not exist."""
        try:
            result: T = await self.client.get_workflow_handle(wf).execute_update(
                update, req, id=update_id(req), result_type=result_type
            )
        except WorkflowUpdateFailedError as e:
            raise refused_by_workflow(e) from None
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise Refused(missing, kind="not_found") from None
            raise Refused(f"{wf}: {e.message}") from None
        return result

    async def roster_view(
        self, programme: str, season: int, county_code: str, round_: str = ""
    ) -> RosterView:
        """Where a cohort's roster stands (its search attributes: the history's, read from
        the server, no workflow task) and each student's application with its stage."""
        wf = roster_workflow_id(programme, season, county_code, round_)
        try:
            attrs = (await self.client.get_workflow_handle(wf).describe()).typed_search_attributes
        except RPCError:
            raise Refused(f"no roster {wf}", kind="not_found") from None
        members = [
            m
            async for m in self.list(
                programme=programme, season=season, round_=round_, county=county_code
            )
        ]
        return RosterView(
            workflow_id=wf,
            phase=attrs.get(search.STAGE) or "",
            waiting_for=attrs.get(search.WAITING_FOR) or "",
            waiting_until=attrs.get(search.NEXT_DEADLINE),
            overdue=bool(attrs.get(search.OVERDUE)),
            members=sorted(members, key=lambda m: m.workflow_id),
        )

    # ------------------------------------------------------------- dated tasks

    async def open_tasks(self, programme: str, year: int, county_code: str) -> str:
        """Start the county's dated tasks of the programme's year if not running."""
        known = self.programmes.get(programme) or CASE_REGISTRY[programme]
        inp = DatedTasksInput(plan=task_plan(known), year=year, county_code=county_code)
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                "DatedTasksWorkflow",
                inp,
                id=inp.workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{inp.plan.name_zh} {year} 工作任务 · county {county_code}",
            )
        return inp.workflow_id

    async def report_task_done(
        self, programme: str, year: int, county_code: str, req: TaskDone
    ) -> TaskState:
        wf = tasks_workflow_id(programme, year, county_code)
        missing = f"no dated tasks {wf}: open them first"
        return await self._update_on(wf, "report_done", req, TaskState, missing)

    async def tasks(self, programme: str, year: int, county_code: str) -> list[TaskState]:
        wf = tasks_workflow_id(programme, year, county_code)
        try:
            handle = self.client.get_workflow_handle(wf)
            states: list[TaskState] = await handle.query("tasks", result_type=list[TaskState])
        except RPCError:
            raise Refused(f"no dated tasks {wf}", kind="not_found") from None
        return states

    # ------------------------------------------------------------- reading

    async def status(self, workflow_id: str) -> ApplicationStatus:
        try:
            return await self.handle(workflow_id).query(ApplicationWorkflow.status)
        except RPCError as e:
            raise Refused(f"{workflow_id}: {e.message}") from None

    async def listed_as(self, workflow_id: str, st: ApplicationStatus) -> bool:
        """Whether the workflow's search attributes (the history's, read from the server:
        no workflow task) show the stage and the office ``st`` says."""
        try:
            attrs = (await self.handle(workflow_id).describe()).typed_search_attributes
        except RPCError:
            return False
        return attrs.get(search.STAGE) == st.stage and (attrs.get(search.WAITING_FOR) or "") == (
            st.waiting_for
        )

    async def trail(self, workflow_id: str) -> list[TrailEvent]:
        return await self.handle(workflow_id).query(ApplicationWorkflow.trail)

    async def list(
        self,
        *,
        programme: str | None = None,
        season: int | None = None,
        round_: str | None = None,
        stage: str | None = None,
        county: str | None = None,
        township: str | None = None,
        village: str | None = None,
        overdue: bool | None = None,
        at_risk: bool | None = None,
        running_only: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[Listed]:
        clauses = ["WorkflowType = 'ApplicationWorkflow'"]
        for name, value in (
            ("Programme", programme),
            ("Round", round_),
            ("Stage", stage),
            ("County", county),
            ("Township", township),
            ("Village", village),
        ):
            if value is not None:
                clauses.append(f"{name} = '{quote(value)}'")
        if season is not None:
            clauses.append(f"Season = {int(season)}")
        if overdue is not None:
            clauses.append(f"Overdue = {str(overdue).lower()}")
        if at_risk is not None:
            clauses.append(f"AtRisk = {str(at_risk).lower()}")
        if running_only:
            clauses.append("ExecutionStatus = 'Running'")
        async for wf in self.client.list_workflows(" AND ".join(clauses), limit=limit):
            sa = wf.typed_search_attributes
            yield Listed(
                workflow_id=wf.id,
                stage=sa.get(search.STAGE) or "",
                village=sa.get(search.VILLAGE) or "",
                overdue=bool(sa.get(search.OVERDUE)),
                at_risk=bool(sa.get(search.AT_RISK)),
                next_deadline=sa.get(search.NEXT_DEADLINE),
                status=(wf.status or WorkflowExecutionStatus.RUNNING).name.lower(),
            )


def _initial_attributes(inp: ApplicationInput, starts_at: datetime) -> TypedSearchAttributes:
    """What the application starts with, its first step's deadline and whether a date is
    at risk too (from the schedule it carries, as its first projection works them out):
    the workflow upserts only what differs from these (issue 20: its first upserts were
    the deadline, then the risk)."""
    first = inp.programme.steps[0]
    role = first.actor_role or Role.SYSTEM
    due = inp.schedule.due_at(first.due)
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(search.PROGRAMME, inp.programme.code),
        SearchAttributePair(search.SEASON, inp.season),
        SearchAttributePair(search.ROUND, inp.programme.round_key),
        SearchAttributePair(search.COUNTY, inp.places.county_code),
        SearchAttributePair(search.TOWNSHIP, inp.places.township_code),
        SearchAttributePair(search.VILLAGE, inp.places.village_code),
        SearchAttributePair(search.STAGE, first.stage),
        SearchAttributePair(search.WAITING_FOR, role.value),
        SearchAttributePair(search.OVERDUE, False),
        SearchAttributePair(search.AT_RISK, _at_risk_at_start(inp, starts_at)),
        SearchAttributePair(search.NEXT_DEADLINE, due),
    ]
    return TypedSearchAttributes(pairs)


def _at_risk_at_start(inp: ApplicationInput, at: datetime) -> bool:
    """Whether the first projection (workflows/deadlines.py, from the table in the
    input) finds a date at risk; where it says otherwise, the workflow upserts its own."""
    table = inp.schedule.working_days
    if table is None:
        return False
    try:
        calendar = TabulatedCalendar(table, forecast=True)
        steps = project_steps(inp.programme, inp.season, calendar, from_index=0, at=at)
    except OutsideTable:
        return False
    return bool(inp.schedule.still_at_risk(Projection.of(steps).at_risk_keys, at))


def _season_summary(programme: Programme, season: int, round_: str, county_code: str) -> str:
    return f"{programme.name_zh} {season_label(season, round_)} 季度流程 · county {county_code}"


def delay_until(start_at: datetime | None) -> timedelta | None:
    if start_at is None:
        return None
    delay = start_at - datetime.now(UTC)
    return delay if delay > timedelta(0) else None


_AGAIN = "; send the same request again"


def _not_described(workflow_id: str, error: RPCError) -> Refused:
    """An application the server could not describe: unknown to it, or the server did
    not answer (not "no application": a server restarting said so, under the fault
    harness)."""
    if error.status is RPCStatusCode.NOT_FOUND:
        return Refused(f"no application {workflow_id}", kind="not_found")
    return Refused(
        f"{workflow_id}: Temporal did not answer ({error.message}){_AGAIN}", kind="unavailable"
    )


async def _settled(start: WithStartWorkflowOperation[Any, Any], call: Awaitable[T]) -> T:
    """``call``, an update-with-start of ``start``. A failed one leaves its failure on the
    start's handle too, which nobody asks for: asyncio logged each as "Future exception
    was never retrieved" (dozens while a season's task failed under the fault harness,
    each retried). Marked as seen; the failure itself is raised."""
    try:
        return await call
    except BaseException:
        handle = getattr(start, "_workflow_handle", None)  # the SDK's, 1.35: no public way
        if isinstance(handle, asyncio.Future) and handle.done() and not handle.cancelled():
            handle.exception()
        raise
