"""The simulated county's desks: one a step kind, the same choices for every driver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.application import ApplicationStatus, NoticeWindow, Objection, RequestResult
from models.domain import DecisionKind, Level, Role
from models.programme import ReviewStep
from models.programmes import BUILTIN_PROGRAMMES, COUNTY_SUBSIDY, NEW_STUDENT_AID
from tests.support import AtOnce, form
from workers.officials import DESKS, desk_at
from workers.officials.notice import NoticeDesk
from workers.officials.payout import PayoutDesk
from workers.officials.review import ReviewDesk
from workflows.steps import RUNNERS


class Recorder:
    """The requests a desk sends, in order (the typed client's and the offices' names)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    def _ok(self, name: str, wf: str, req: Any) -> RequestResult:
        self.sent.append((name, wf, req))
        return RequestResult(request_id="r", accepted=True, stage="", message="")

    async def decide(self, wf: str, req: Any, /) -> RequestResult:
        return self._ok("decide", wf, req)

    async def correct(self, wf: str, req: Any, /) -> RequestResult:
        return self._ok("correct", wf, req)

    async def lodge_objection(self, wf: str, req: Any, /) -> RequestResult:
        return self._ok("object", wf, req)

    async def resolve_objection(self, wf: str, req: Any, /) -> RequestResult:
        return self._ok("resolve", wf, req)

    async def record_receipt(self, wf: str, req: Any, /) -> RequestResult:
        return self._ok("receipt", wf, req)

    async def correct_account(self, wf: str, actor: Any, /, **kw: Any) -> RequestResult:
        return self._ok("account", wf, (actor, kw))


def at_once(**rolls: Any) -> AtOnce:
    return AtOnce(Recorder(), **rolls)


def status(stage: str, waiting_for: str, **kw: Any) -> ApplicationStatus:
    f = form()
    values: dict[str, Any] = {
        "workflow_id": "application/county-subsidy/2027/x1",
        "programme": "county-subsidy",
        "season": 2027,
        "stage": stage,
        "waiting_for": waiting_for,
        "waiting_until": None,
        "overdue": [],
        "at_risk": [],
        "notice": None,
        "objections": [],
        "amount_cny": 3000,
        "applicant_masked": "**",
        "places": f.places,
        "provisional": False,
        "details_zh": "",
        "details_en": "",
    }
    values.update(kw)
    return ApplicationStatus.model_validate(values)


def test_every_step_kind_has_a_desk_and_a_runner() -> None:
    kinds = {s.kind for p in BUILTIN_PROGRAMMES.values() for s in p.steps}
    assert kinds <= set(DESKS), f"no desk for {sorted(kinds - set(DESKS))}"
    assert set(DESKS) == set(RUNNERS)


def test_a_stage_is_found_at_its_step_and_an_end_at_none() -> None:
    desk = desk_at(COUNTY_SUBSIDY, "awaiting_account_correction")
    assert isinstance(desk, PayoutDesk)
    assert isinstance(desk_at(COUNTY_SUBSIDY, "village_review"), ReviewDesk)
    assert desk_at(COUNTY_SUBSIDY, "paid") is None
    assert desk_at(COUNTY_SUBSIDY, "rejected") is None


@pytest.mark.parametrize(
    ("roll", "first", "expected"),
    [
        (0.05, True, DecisionKind.RETURN_FOR_CORRECTION),  # under the return rate
        (0.05, False, DecisionKind.APPROVE),  # only the first review returns
        (0.5, True, DecisionKind.APPROVE),
        (0.99, False, DecisionKind.REJECT),  # over 1 - the rejection rate
    ],
)
async def test_a_review_desk_decides_by_its_roll(
    roll: float, first: bool, expected: DecisionKind
) -> None:
    stage = "village_review" if first else "township_review"
    step = COUNTY_SUBSIDY.step(stage)
    assert isinstance(step, ReviewStep)
    floor = at_once(roll=roll)
    st = status(stage, step.actor_role.value if step.actor_role else "")
    assert await ReviewDesk(step, COUNTY_SUBSIDY).act(floor, st)
    [(name, _, req)] = floor.api.sent
    assert name == "decide" and req.decision is expected and req.stage == stage
    assert req.actor.role is step.actor_role
    assert req.actor.place_code == st.places.code_for(req.actor.role)
    assert req.request_id == f"{st.workflow_id[-8:]}/decide/{stage}/0"
    assert (req.reason != "") is (expected is not DecisionKind.APPROVE)


async def test_a_returned_application_is_corrected_by_its_programmes_corrector() -> None:
    """The school corrects its students' applications (new-student aid), not the county."""
    step = NEW_STUDENT_AID.steps[0]
    assert isinstance(step, ReviewStep)
    floor = at_once()
    st = status(step.stage, Role.HIGH_SCHOOL.value, programme=NEW_STUDENT_AID.code)
    assert await ReviewDesk(step, NEW_STUDENT_AID).act(floor, st)
    [(name, _, req)] = floor.api.sent
    assert name == "correct" and req.actor.role is Role.HIGH_SCHOOL
    # Nobody acts on a review that waits for someone else.
    assert not await ReviewDesk(step, NEW_STUDENT_AID).act(floor, status(step.stage, "nobody"))


async def test_a_notice_desk_resolves_open_objections_and_objects_once() -> None:
    step = COUNTY_SUBSIDY.notice_at(Level.VILLAGE)
    assert step is not None
    now = datetime.now(UTC)
    window = NoticeWindow(
        stage=step.stage,
        posted_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=4),
        counted_days=[],
        provisional=False,
    )
    floor = at_once(objects=True, upholds=True)
    desk = NoticeDesk(step, COUNTY_SUBSIDY)
    assert not await desk.act(floor, status(step.stage, "", notice=None))  # not posted yet
    st = status(step.stage, "", notice=window)
    assert await desk.act(floor, st)
    assert await desk.act(floor, st) is False  # one objection an application
    lodged = Objection(
        id="obj-1",
        stage=step.stage,
        lodged_at=now,
        lodged_by=floor.api.sent[0][2].actor,
        text="x",
    )
    assert await desk.act(floor, status(step.stage, "", notice=window, objections=[lodged]))
    names = [n for n, _, _ in floor.api.sent]
    assert names == ["object", "resolve"]
    resolution = floor.api.sent[1][2]
    assert resolution.outcome.value == "upheld" and resolution.actor.role is step.owner
