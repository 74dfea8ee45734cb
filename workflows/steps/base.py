"""What a step runner is, and what it may ask of the application it runs in.

A runner carries out one step of an application: it waits for what the step
needs, says in plain words what that is and until when, checks the requests that
concern the step and applies them. A request a step does not take is refused by
the defaults below, naming the stage the application is in. The application
workflow asks its current runner and never which kind of step it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.domain import ROLE_NAME_ZH
    from models.ids import applicant_actor_id
    from models.notice import JoinRequest, MemberMessage
    from models.records import NotificationIntent

if TYPE_CHECKING:
    from models.application import (
        Actor,
        ApplicationInput,
        CorrectionRequest,
        DecisionRequest,
        Objection,
        ObjectionRequest,
        ObjectionResolution,
        Places,
        ReceiptRecord,
        RequestResult,
        TrailKind,
        WithdrawalRequest,
    )
    from models.calendar import TabulatedCalendar
    from models.domain import Level, Role
    from models.notice import NoticePosted
    from models.payout import AccountCorrection, FundsRelease
    from models.programme import Programme
    from models.roster import RosterVerdict
    from models.schedule import SeasonSchedule
    from models.steps import StepBase
    from workflows.steps.payout import PaymentState

S = TypeVar("S", bound="StepBase")


class AuthorityProblem(str):
    """A problem with who asks (role, place, four eyes), not with what is asked: the
    gateway answers it 403 rather than 409."""

    __slots__ = ()


class Refused(ApplicationError):
    """A request that breaks a rule. Its message says why, in one line; its type is
    ``RequestForbidden`` when any of its problems is an :class:`AuthorityProblem`."""

    def __init__(self, message: str | Sequence[str]) -> None:
        problems = [message] if isinstance(message, str) else list(message)
        forbidden = any(isinstance(p, AuthorityProblem) for p in problems)
        super().__init__(
            "; ".join(problems),
            type="RequestForbidden" if forbidden else "RequestRefused",
            non_retryable=True,
        )


_CST = timezone(timedelta(hours=8), "CST")


def local_day(instant: datetime) -> date:
    """The day in Shanghai (UTC+8) of an instant."""
    return instant.astimezone(_CST).date()


def fmt(instant: datetime | None) -> str:
    """An instant as Shanghai wall time (UTC+8, no DST: no tz data needed in the sandbox)."""
    if instant is None:
        return "-"
    return instant.astimezone(_CST).strftime("%Y-%m-%d %H:%M")


def role_words(role: Role) -> str:
    return role.value.replace("_", " ")


class Application(Protocol):
    """The application workflow as its runners see it."""

    inp: ApplicationInput
    programme: Programme
    calendar: TabulatedCalendar | None
    index: int
    payment: PaymentState
    objections: list[Objection]
    objector_contacts: dict[str, str]
    decided_by: dict[str, str]
    overdue: list[str]
    telling: int  # messages to notices under way: the application does not end before
    holding_trail: int  # what is worked out before the next record: the trail's write waits

    @property
    def schedule(self) -> SeasonSchedule: ...

    @property
    def closed(self) -> bool: ...

    def record(
        self,
        kind: TrailKind,
        actor: Actor,
        summary: str,
        detail: dict[str, Any] | None = None,
        *,
        notify: list[NotificationIntent] | None = None,
        tell: JoinRequest | MemberMessage | None = None,
    ) -> None: ...

    def publish(self) -> None: ...

    def stage_zh(self) -> str: ...

    def reject(self, reason: str) -> None: ...

    def result(self, request_id: str, message: str) -> RequestResult: ...

    async def project(self, from_index: int, at: datetime) -> None: ...

    def watch(self, coro: Any) -> None: ...

    def season_id(self) -> str: ...


def check_place(places: Places, actor: Actor, role: Role, level: Level, what: str) -> list[str]:
    """R4/R10: the actor has the role, and holds the application's place at the level."""
    problems: list[str] = []
    if actor.role != role:
        problems.append(
            AuthorityProblem(f"role {actor.role.value} may not {what}; it needs {role.value}")
        )
    expected = places.code_at(level)
    if actor.place_code != expected:
        problems.append(
            AuthorityProblem(
                f"place {actor.place_code or '(none)'} is not the application's "
                f"{level.value} {expected or '(none)'}"
            )
        )
    return problems


def office_notice(places: Places, step: StepBase, template: str) -> list[NotificationIntent]:
    """The office a step waits for is told (``template``) at its place."""
    role = step.actor_role
    if role is None:
        return []
    return [
        NotificationIntent(
            audience="office",
            role=role,
            place_code=places.code_at(step.actor_level),
            template=template,
            params={"stage": step.label_zh},
        )
    ]


def own_applicant(inp: ApplicationInput) -> str:
    """The actor id of the application's own applicant: an applicant's credential stands
    for one student (R10), and another student's proves nothing on this application."""
    return applicant_actor_id(inp.applicant.national_id_hash)


class StepRunner(Generic[S]):
    """Runs one step; the defaults refuse every request (a step takes only its own)."""

    def __init__(self, app: Application, step: S) -> None:
        self.app = app
        self.step = step

    async def run(self) -> None:
        raise NotImplementedError

    def check_place(self, actor: Actor, role: Role, level: Level, what: str) -> list[str]:
        return check_place(self.app.inp.places, actor, role, level, what)

    # ------------------------------------------------------- what it waits for

    @property
    def stage(self) -> str:
        return self.step.stage

    def waiting_for(self) -> Role | None:
        return self.step.actor_role

    def waiting_until(self) -> datetime | None:
        """None: until the step's fixed date."""
        return None

    def settled(self) -> bool:
        """The step has its outcome and the application is about to move on: it takes no
        further request (R4: a stage takes one decision). Two requests of one workflow
        task both passed their checks before either was applied: an approval and then a
        rejection of the same stage, say."""
        return False

    def ends_by_itself_at(self) -> datetime | None:
        """The instant this step ends with nothing more from anyone (a posted notice
        without open objections: its period's end); None if it waits for someone."""
        return None

    def details(self) -> tuple[str, str]:
        role = self.step.actor_role
        who_zh = ROLE_NAME_ZH.get(role, "") if role else ""
        return f"等待{who_zh}{self.step.label_zh}", f"waiting for {self.step.label_en}" + (
            f" by the {role_words(role)}" if role else ""
        )

    # ------------------------------------------------------------- requests

    def _not_here(self, what: str) -> Refused:
        return Refused(
            f"the application is in stage {self.stage} ({self.step.label_en}); {what} is not taken here"
        )

    def check_decision(self, req: DecisionRequest) -> None:
        raise Refused(
            f"the application is in stage {self.stage} ({self.step.label_en}), not {req.stage}"
        )

    def apply_decision(self, req: DecisionRequest) -> RequestResult:
        raise self._not_here("a decision")

    def check_correction(self, req: CorrectionRequest) -> None:
        raise Refused(
            f"nothing to correct: the application is in {self.stage} and was not returned"
        )

    def apply_correction(self, req: CorrectionRequest) -> RequestResult:
        raise self._not_here("a correction")

    def check_objection(self, req: ObjectionRequest) -> None:
        raise Refused(f"no notice is up: the application is in {self.stage} ({self.step.label_en})")

    def apply_objection(self, req: ObjectionRequest) -> RequestResult:
        raise self._not_here("an objection")

    def check_resolution(self, req: ObjectionResolution) -> None:
        objection = self.objection(req.objection_id)
        raise Refused(f"objection {objection.id} is not open here ({self.stage})")

    def objection(self, objection_id: str) -> Objection:
        """The objection, if it exists and is open; else the refusal that says why not."""
        objection = next((o for o in self.app.objections if o.id == objection_id), None)
        if objection is None:
            known = ", ".join(o.id for o in self.app.objections) or "none"
            raise Refused(f"no objection {objection_id} on this application (known: {known})")
        if objection.outcome is not None:
            raise Refused(
                f"objection {objection.id} was already resolved: {objection.outcome.value}"
            )
        return objection

    def apply_resolution(self, req: ObjectionResolution) -> RequestResult:
        raise self._not_here("an objection's resolution")

    def check_account(self, req: AccountCorrection) -> None:
        raise Refused(
            f"the application is in {self.stage}; an account is corrected only after a returned payment"
        )

    async def apply_account(self, req: AccountCorrection) -> RequestResult:
        raise self._not_here("an account correction")

    def check_receipt(self, req: ReceiptRecord) -> None:
        raise self._not_here("a signed receipt")

    def apply_receipt(self, req: ReceiptRecord) -> RequestResult:
        raise self._not_here("a signed receipt")

    def check_withdrawal(self, req: WithdrawalRequest) -> None:
        if not self.step.withdrawable:
            raise Refused(
                f"the {self.step.label_en} has started; the application can no longer be withdrawn"
            )

    # ------------------------------------------- messages from aidflow's workflows

    def on_funds_released(self, release: FundsRelease) -> None:
        """Ignored unless the step waits for funds (a stale message changes nothing)."""

    def on_notice_posted(self, posted: NoticePosted) -> None:
        """Ignored unless the step waits for that notice's posting."""

    async def look_up_before_closing(self) -> None:
        """What a withdrawal's or a cancellation's check needs that the workflow does not
        hold, asked before it is checked (nothing, for most steps: no wait either)."""

    def closing(self) -> None:
        """The application is about to be withdrawn or cancelled in this step: what the
        step still has to say on the trail first (nothing, for most)."""

    def on_roster_decided(self, verdict: RosterVerdict) -> None:
        """Ignored unless the step waits for that roster's word."""
