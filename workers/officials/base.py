"""What a desk is, and what it needs from whoever drives the simulated county.

A *desk* is the simulated people of one step kind: the reviewer who decides, the
villagers and the owner of a notice, the student who signs for a grant, the village
that corrects a returned account. It is driven two ways:

- **event-driven** (``aidflow simulate``: time skipped, every act an event at an
  instant): :meth:`Desk.opened` is called when the step opens for an application and
  schedules what its people do on the :class:`Season`;
- **polled** (``aidflow demo`` and the fault harness: real time): :meth:`Desk.act` is
  called with the application's status whenever the driver looks, and acts once the
  :class:`Floor` says the person's delay has passed.

Both ways make the same choices with the same texts (the desk's own methods), so a
step kind's simulated behaviour is written once, in its own module.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from models.application import (
    Actor,
    ApplicationForm,
    ApplicationStatus,
    CorrectionRequest,
    DecisionRequest,
    ObjectionRequest,
    ObjectionResolution,
    ReceiptRecord,
    RequestResult,
)
from models.calendar import WorkingCalendar
from models.notice import NoticePostRequest
from models.programme import Programme
from models.roster import RosterDecided, RosterDecision

S = TypeVar("S")
T = TypeVar("T")


async def shown_within(
    check: Callable[[], Awaitable[bool]],
    progress: Callable[[], object],
    *,
    within: float,
    first_pause: float,
    longest_pause: float,
) -> bool:
    """Ask ``check`` until it says yes (True), or until ``within`` seconds have passed
    without ``progress`` changing (False): what the simulator waits for may be slow
    without being stalled. The pauses between checks grow by half from ``first_pause``
    to ``longest_pause`` (equal: a steady pace)."""
    seen, pause = progress(), first_pause
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        if (now := progress()) != seen:
            seen, deadline = now, time.monotonic() + within
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, longest_pause)
    return False


class SimulationStalled(RuntimeError):
    """The system did not show, within its time, what a simulated person waited for."""


class Requests(Protocol):
    """The requests the county's people send: the typed client and the HTTP offices
    (``workers/gateway/offices.py``) both answer them."""

    async def decide(self, wf: str, req: DecisionRequest, /) -> RequestResult: ...
    async def correct(self, wf: str, req: CorrectionRequest, /) -> RequestResult: ...
    async def lodge_objection(self, wf: str, req: ObjectionRequest, /) -> RequestResult: ...
    async def resolve_objection(self, wf: str, req: ObjectionResolution, /) -> RequestResult: ...
    async def record_receipt(self, wf: str, req: ReceiptRecord, /) -> RequestResult: ...
    async def post_notice(self, notice_id: str, req: NoticePostRequest, /) -> RequestResult: ...
    async def decide_roster(
        self,
        programme: str,
        season: int,
        county: str,
        req: RosterDecision,
        /,
        *,
        round_: str = "",
    ) -> RosterDecided: ...
    async def correct_account(
        self,
        wf: str,
        actor: Actor,
        /,
        *,
        bank_name: str,
        account_number: str,
        account_holder: str,
        request_id: str | None = None,
    ) -> RequestResult: ...


# ------------------------------------------------------------- polled drivers


class Floor(Protocol):
    """A driver that looks at applications in real time (the demo, the fault harness).

    ``what`` names one act on one application ("decide/village_review"); a *visit*
    is one time the application is at that act (a returned application is reviewed
    again: a second visit). The floor keeps the visits."""

    @property
    def api(self) -> Requests: ...
    @property
    def return_rate(self) -> float: ...

    def rejection_rate(self, first: bool) -> float: ...
    def due(self, st: ApplicationStatus, what: str, lo: float, hi: float) -> bool:
        """Whether this visit's delay (between ``lo`` and ``hi`` days) has passed."""
        ...

    def draw(self, st: ApplicationStatus, what: str) -> random.Random:
        """The random stream of this act (a driver may share one)."""
        ...

    def visit(self, st: ApplicationStatus, what: str) -> int:
        """How many visits of ``what`` this application has had before this one."""
        ...

    def request_id(self, st: ApplicationStatus, what: str) -> str: ...
    def sent(self, st: ApplicationStatus, what: str, note: str) -> None:
        """The act was sent: its visit is over (and ``note`` is what the log says)."""
        ...

    def objects(self, st: ApplicationStatus) -> bool:
        """Whether a villager objects to this application (once)."""
        ...

    def upholds(self, st: ApplicationStatus, objection_id: str) -> bool: ...


# ------------------------------------------------------ the event-driven driver


class Case(Protocol):
    """An application as the simulator follows it."""

    form: ApplicationForm
    workflow_id: str
    terminal: str | None
    returned_once: bool
    approved_at: datetime | None
    opened: Counter[str]

    def draw(self, what: str) -> random.Random:
        """The application's own random stream for ``what`` (same seed, same season)."""
        ...


class Rates(Protocol):
    """The scenario's rates (read only: a frozen dataclass answers them)."""

    @property
    def seed(self) -> int: ...
    @property
    def season(self) -> int: ...
    @property
    def return_rate(self) -> float: ...
    @property
    def rejection_rate(self) -> float: ...
    @property
    def objection_rate(self) -> float: ...
    @property
    def objection_upheld(self) -> float: ...
    @property
    def unclaimed_rate(self) -> float: ...


class Clocks(Protocol):
    @property
    def past_by(self) -> timedelta:
        """How far past each planned instant the simulation acts (workers/simulate/clocks.py)."""
        ...

    async def advance(self, workflow_id: str, to: datetime) -> bool: ...
    async def track(self, workflow_id: str) -> None: ...


class Season(Protocol):
    """The simulator's season, as its desks use it (``workers/simulate/season.py``)."""

    @property
    def s(self) -> Rates: ...  # the scenario
    @property
    def clocks(self) -> Clocks: ...

    programme: Programme
    cal: WorkingCalendar
    counts: Counter[str]
    now: datetime  # the simulation's instant: the event being run
    window_closes: datetime
    notices: dict[str, Any]  # the notice desk's plans, by notice id

    @property
    def api(self) -> Any: ...  # the typed client (workers.client.AidflowClient)

    def at(
        self,
        at: datetime,
        label: str,
        action: Callable[[datetime], Coroutine[Any, Any, None]],
        *,
        shared: bool = False,
    ) -> None:
        """Schedule ``action`` at ``at`` (``shared``: it touches more than one application)."""
        ...

    async def again(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T: ...
    def delay(self, after: datetime, what: str, rng: random.Random | None = None) -> datetime:
        """When a person acts on what reached them at ``after`` (office hours, seeded)."""
        ...

    def after(self, a: Case, stage: str, at: datetime) -> None:
        """``a`` is done with ``stage`` at ``at``: its next step opens."""
        ...

    async def everyone_to(
        self, at: datetime, apps: list[Any], *, also: str | None = None
    ) -> None: ...

    async def diagnose(self, workflow_id: str, context: str) -> str: ...
    def recorded_status(self, workflow_id: str) -> ApplicationStatus | None:
        """The application's status from its records (the read model), without a query."""
        ...

    def repay(self, a: Case, at: datetime) -> None:
        """``a``'s account was corrected at ``at``: on the season's next re-payment batch."""
        ...


class Desk(Generic[S]):
    """The people of one step kind. Subclasses set ``kind`` and override what their
    people do; a step nobody outside the workflows acts on keeps the defaults."""

    kind: ClassVar[str]

    def __init__(self, step: S, programme: Programme) -> None:
        self.step, self.programme = step, programme

    def opened(self, season: Season, a: Case, at: datetime) -> None:
        """The step opened for ``a`` at ``at`` (simulator): schedule its people's acts."""

    def settled(self, season: Season, a: Case, stage: str, at: datetime) -> None:
        """A payout batch or a season's event left ``a`` in ``stage`` of this step."""

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        """The application is at this step now (demo, harness): act if someone is due.
        True when something was sent."""
        return False
