"""The programme registry, and the new-student enrolment aid (PROCESS.md §4.1) end to end.

New-student aid 2027 (provisional calendar): the window is 10 July to 10 August; the
county notice goes up when the window closes (00:00 on Wed 11 August) for 5 calendar
days (11–15 August) and ends at 00:00 on Mon 16 August; grants are signed for by
5 September.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from activities.report import build_report
from models import search
from models.application import (
    Actor,
    ApplicationStatus,
    CorrectionRequest,
    ObjectionRequest,
    ObjectionResolution,
    ReceiptRecord,
)
from models.calendar import WorkingCalendar, notice_period
from models.compact import RELEASED_DIR
from models.domain import DecisionKind, DocumentKind, Level, ObjectionOutcome, Role
from models.ids import season_workflow_id
from models.intake import RegisteredMember
from models.notice import NoticePostRequest
from models.planner import plan_season
from models.programme import FundsStep, NoticeStep, Programme
from models.programmes import CASE_REGISTRY, COUNTY_SUBSIDY, NEW_STUDENT_AID, REGISTRY
from models.season import SeasonKey
from store.sealing import Keys
from store.tables import ApplicationRow
from tests.conftest import AppStack, Registry
from tests.support import (
    IN_WINDOW_2027,
    PLACES,
    VENV_BIN,
    VILLAGE,
    AtOnce,
    county_official,
    form,
    make_national_id,
    public,
    village_official,
)
from tests.test_application_workflow import _SERIALS, Case, cst, rid
from workers.client import Refused
from workers.officials import desk_at, people
from workers.synthetic import applicants

SCHOOL = "341225-HS01"
IN_NSA_WINDOW_2027 = datetime(2027, 7, 20, 2, 0, tzinfo=UTC)


def school() -> Actor:
    return Actor(id="school-1", name="阜南一中", role=Role.HIGH_SCHOOL, place_code=SCHOOL)


def nsa_form(serial: int, *, in_province: bool) -> Any:
    return form(
        serial,
        programme="new-student-aid",
        freshman=True,
        university_in_province=in_province,
        university="安徽大学" if in_province else "浙江大学",
        places=PLACES.model_copy(update={"school_code": SCHOOL, "school_name": "阜南一中"}),
        documents={
            DocumentKind.APPLICATION_FORM: 1,
            DocumentKind.IDENTITY_CARD: 1,
            DocumentKind.ADMISSION_LETTER: 1,
        },
    )


@pytest.mark.parametrize("programme", list(REGISTRY.values()), ids=lambda p: p.code)
def test_every_programme_plans_its_season(programme: Programme, calendar: WorkingCalendar) -> None:
    plan = plan_season(programme, 2026, calendar)
    assert [s.stage for s in plan.steps] == [s.stage for s in programme.steps]
    assert plan.window_opens_at < plan.window_closes_at
    starts = [s.earliest_start for s in plan.steps]
    assert starts == sorted(starts)


def test_eligibility_changes_by_policy_year() -> None:
    """R11: who is eligible is configuration with the year it applies from, as the
    amounts are: a county that opens its subsidy to junior-college students from 2028
    refuses them in 2027 and takes them in 2028, and intake names the rule of the year."""
    from models.domain import EducationLevel
    from models.intake import check_application, correction_problems
    from models.programme import DatedEligibility

    base = COUNTY_SUBSIDY.eligibility
    wider = base.model_copy(
        update={
            "education_levels": base.education_levels | {EducationLevel.JUNIOR_COLLEGE_FULL_TIME}
        }
    )
    programme = COUNTY_SUBSIDY.model_copy(
        update={"eligibility_changes": (DatedEligibility(from_year=2028, eligibility=wider),)}
    )
    assert programme.eligibility_for(2027) == base and programme.eligibility_for(2030) == wider

    def problems(season: int) -> set[str]:
        f = form(120, education_level="junior_college_full_time", season=season)
        found = check_application(
            f,
            programme,
            now=datetime(season, 8, 10, 10, tzinfo=UTC),
            window=(datetime(season, 8, 1, tzinfo=UTC), datetime(season, 9, 1, tzinfo=UTC)),
            lookup_member=lambda _: RegisteredMember(
                household_no=f.household_no, village_code=f.places.village_code, status="active"
            ),
            submitted_by=Actor(id="applicant:x", name="x", role=Role.APPLICANT),
        )
        return {p.field for p in found}

    assert "education_level" in problems(2027)
    assert "education_level" not in problems(2028)
    record = type("Record", (), {"education_level": EducationLevel.JUNIOR_COLLEGE_FULL_TIME})()
    assert correction_problems(programme, 2027, record)
    assert not correction_problems(programme, 2028, record)
    with pytest.raises(ValueError, match="eligibility_changes must be in increasing"):
        Programme.model_validate(
            {
                **COUNTY_SUBSIDY.model_dump(),
                "eligibility_changes": [
                    {"from_year": 2029, "eligibility": wider.model_dump()},
                    {"from_year": 2028, "eligibility": wider.model_dump()},
                ],
            }
        )


def test_the_registry_is_one_file_a_programme() -> None:
    assert {"county-subsidy", "new-student-aid"} <= set(REGISTRY)
    assert NEW_STUDENT_AID.done_stage == "received"
    assert NEW_STUDENT_AID.amount_for(2027, {"university_in_province": "true"}) == 500
    assert NEW_STUDENT_AID.amount_for(2027, {"university_in_province": "false"}) == 1000
    with pytest.raises(ValueError, match="no amounts of new-student-aid apply to 2015"):
        NEW_STUDENT_AID.amounts_for_year(2015)


def test_aidflow_programmes_lists_the_registry() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "aidflow"), "programmes", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {r["code"]: r for r in json.loads(out)}
    # The programmes of applications, and the help that is a case (PROCESS.md §5).
    assert set(rows) == set(REGISTRY) | set(CASE_REGISTRY)
    pairing = rows["cadre-pairing"]
    assert pairing["kind"] == "case" and "year_end" in pairing["closes_on"]
    assert any("every month" in o for o in pairing["obligations"]), pairing["obligations"]
    assert (RELEASED_DIR / f"{pairing['released_as'][0]}.json").exists()
    assert rows["new-student-aid"]["ends_in"] == "received"
    assert rows["county-subsidy"]["steps"][-1] == "payout:awaiting_payment"
    # The name a start event shows for the definition: one a round, each a released file.
    assert len(rows["rain-and-dew"]["released_as"]) == 2
    for name in rows["county-subsidy"]["released_as"]:
        assert (RELEASED_DIR / f"{name}.json").exists(), name


async def test_intake_of_new_student_aid(app_stack: AppStack) -> None:
    api = app_stack.api
    # The school submits; the student alone may not.
    with pytest.raises(Refused, match="submitted by the high_school, not applicant"):
        await api.submit(nsa_form(801, in_province=True), now=IN_NSA_WINDOW_2027)
    other_school = school().model_copy(update={"place_code": "341225-HS02"})
    with pytest.raises(Refused, match="may not submit for school 341225-HS01"):
        await api.submit(
            nsa_form(801, in_province=True), submitted_by=other_school, now=IN_NSA_WINDOW_2027
        )
    # Every failing field at once: not a freshman, no university location, no admission letter.
    bad = nsa_form(801, in_province=True).model_copy(
        update={
            "freshman": False,
            "university_in_province": None,
            "documents": {DocumentKind.APPLICATION_FORM: 1, DocumentKind.IDENTITY_CARD: 1},
        }
    )
    with pytest.raises(Refused) as refused:
        await api.submit(bad, submitted_by=school(), now=IN_NSA_WINDOW_2027)
    fields = {p.field for p in refused.value.problems}
    assert {"freshman", "university_in_province", "documents.admission_letter"} <= fields
    # Refused at intake, nothing was started: not even the county's season.
    assert api.started_seasons() == []


async def test_a_correction_is_checked_as_intake_and_sets_the_amount(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    """R4, R10, R11: a corrected record is held to intake's rules, and the amount is the
    programme's for it (the new-student aid's depends on the university's province; it
    kept the amount worked out before the correction)."""
    api = app_stack.api
    case = Case(
        api,
        ts_env,
        await api.submit(
            nsa_form(804, in_province=True), submitted_by=school(), now=IN_NSA_WINDOW_2027
        ),
    )
    st = await case.wait_for(lambda s: s.waiting_for == "county_education_bureau", "started")
    assert st.amount_cny == 500
    await case.decide(
        "county_review",
        DecisionKind.RETURN_FOR_CORRECTION,
        county_official(),
        reason="录取学校在省外，请更正",
    )
    await case.wait_for(lambda s: s.waiting_for == "high_school", "returned to the school")
    with pytest.raises(Refused, match=r"changes\.education_level: postgraduate is not eligible"):
        await api.correct(
            case.wf,
            CorrectionRequest(
                request_id=rid(), actor=school(), changes={"education_level": "postgraduate"}
            ),
        )
    await api.correct(
        case.wf,
        CorrectionRequest(
            request_id=rid(), actor=school(), changes={"university_in_province": False}
        ),
    )
    st = await case.wait_for(lambda s: s.amount_cny == 1000, "the amount for out of province")
    correction = [e for e in await api.trail(case.wf) if e.kind == "correction"]
    assert correction[-1].detail["amount_cny"] == {"was": 500, "now": 1000}
    assert "500 → 1000" in correction[-1].summary


async def test_new_student_aid_from_school_to_signed_receipt(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    api = app_stack.api
    county = county_official()
    signed = Case(
        api,
        ts_env,
        await api.submit(
            nsa_form(802, in_province=True), submitted_by=school(), now=IN_NSA_WINDOW_2027
        ),
    )
    unclaimed = Case(
        api,
        ts_env,
        await api.submit(
            nsa_form(803, in_province=False), submitted_by=school(), now=IN_NSA_WINDOW_2027
        ),
    )
    for case, amount in ((signed, 500), (unclaimed, 1000)):
        st = await case.wait_for(lambda s: s.waiting_for == "county_education_bureau", "started")
        assert st.stage == "county_review" and st.amount_cny == amount
        await case.approve("county_review", county)
        st = await case.wait_for(
            lambda s: s.notice is not None and s.notice.posted_at == cst(8, 11),
            "posting at window close",
        )
        assert st.stage == "county_notice"

    # The county notice: 5 calendar days, weekends counted; an objection, dismissed.
    await signed.advance_to(cst(8, 12, 9))
    st = await signed.status()
    assert st.notice is not None and st.notice.ends_at == cst(8, 16)
    assert st.notice.counted_days == [f"2027-08-{d}" for d in (11, 12, 13, 14, 15)]
    await api.lodge_objection(
        signed.wf, ObjectionRequest(request_id=rid(), actor=public(), text="家庭条件较好")
    )
    with pytest.raises(Refused, match="needs county_education_bureau"):
        await api.resolve_objection(
            signed.wf,
            ObjectionResolution(
                request_id=rid(),
                actor=school(),
                objection_id="obj-1",
                outcome=ObjectionOutcome.DISMISSED,
                reason="x",
            ),
        )
    await api.resolve_objection(
        signed.wf,
        ObjectionResolution(
            request_id=rid(),
            actor=county,
            objection_id="obj-1",
            outcome=ObjectionOutcome.DISMISSED,
            reason="经核实属建档立卡户",
        ),
    )
    await signed.advance_to(cst(8, 16, 0, 1))
    st = await signed.at_stage("awaiting_receipt")
    assert "sign for the grant in person" in st.details_en and "本人" in st.details_zh

    # The receipt: the originals checked, a copy kept, the funding source named.
    with pytest.raises(Refused) as refused:
        await api.record_receipt(
            signed.wf,
            ReceiptRecord(request_id=rid(), actor=county, funding_source="lottery"),
        )
    message = str(refused.value)
    assert "documents_checked" in message and "copy_kept" in message
    assert "funding_source: 'lottery' is not one of programme, high_school_own_funds" in message
    receipt = ReceiptRecord(
        request_id=rid(),
        actor=county,
        documents_checked=[DocumentKind.ADMISSION_LETTER],
        copy_kept=True,
        funding_source="high_school_own_funds",
        sheet_ref="签领表 2027-001",
    )
    result = await api.record_receipt(signed.wf, receipt)
    assert result.accepted and result.message.startswith("received: 500 CNY")
    assert (await api.record_receipt(signed.wf, receipt)) == result  # a repeat changes nothing
    st = await signed.at_stage("received")
    await signed.save_history("new_student_aid_received")
    trail = await api.trail(signed.wf)
    event = next(e for e in trail if e.kind == "receipt")
    assert event.actor.id == county.id and event.detail["checked_by"] == county.id
    assert event.detail["funding_source"] == "high_school_own_funds"
    assert event.detail["amount_cny"] == 500

    # The other is never claimed: overdue at its date, and reported as unclaimed.
    await unclaimed.advance_to(cst(9, 6, 0, 1))
    st = await unclaimed.wait_for(lambda s: "handed_out" in s.overdue, "overdue at 5 September")
    assert st.stage == "awaiting_receipt"
    report = build_report(app_stack.engine, "new-student-aid", 2027, PLACES.county_code)
    assert report.paid_count == 1 and report.paid_cny == 500
    assert report.received_by_source == {"high_school_own_funds": 1}
    assert [u["workflow_id"] for u in report.unclaimed] == [unclaimed.wf]
    assert report.unclaimed[0]["id"].count("*") >= 8  # masked (R9)


# --------------------------------------------------------------- seasons with rounds (R12)


def two_rounds() -> Programme:
    """The county subsidy taken twice a year: a spring round with its own dates, and an
    autumn round with the programme's (a test programme: Rain and Dew will be the first)."""
    data = COUNTY_SUBSIDY.model_dump(mode="json")
    spring_dates = [
        {**d, "on": {"month": m, "day": day}}
        for d, (m, day) in zip(
            data["fixed_dates"], [(4, 10), (4, 15), (4, 20), (5, 30)], strict=True
        )
    ]
    data.update(
        code="two-rounds",
        rounds=[
            {
                "key": "spring",
                "label_zh": "春季",
                "label_en": "spring",
                "window_opens": {"month": 3, "day": 1},
                "window_closes": {"month": 3, "day": 31},
                "fixed_dates": spring_dates,
            },
            {
                "key": "autumn",
                "label_zh": "秋季",
                "label_en": "autumn",
                "window_opens": {"month": 8, "day": 1},
                "window_closes": {"month": 8, "day": 31},
            },
        ],
    )
    return Programme.model_validate(data)


def test_a_round_has_its_own_window_and_dates(calendar: WorkingCalendar) -> None:
    programme = two_rounds()
    spring = programme.for_round("spring")
    assert spring.round_key == "spring" and spring.fixed_date("payout").on.month == 4
    assert programme.for_round("autumn").fixed_date("payout").on.month == 9
    plan = plan_season(spring, 2026, calendar)
    assert plan.round == "spring" and plan.window_opens_at.month == 3
    with pytest.raises(ValueError, match="has the rounds spring, autumn, not '\\(none\\)'"):
        programme.for_round("")
    with pytest.raises(ValueError, match="one round a year: no round 'spring'"):
        COUNTY_SUBSIDY.for_round("spring")
    assert str(SeasonKey.parse("2027-spring")) == "2027-spring"
    assert str(SeasonKey.parse("2027")) == "2027" and SeasonKey.parse("2027").round == ""
    with pytest.raises(ValueError, match="year-round"):
        SeasonKey.parse("spring-2027")


def test_aidflow_plan_takes_a_round() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "aidflow"), "plan", "--season", "2026-spring", "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "one round a year: no round 'spring'" in out.stdout + out.stderr


async def test_one_student_in_two_rounds_of_a_year(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    api = app_stack.api
    api.programmes["two-rounds"] = two_rounds()
    spring_form = form(804, programme="two-rounds", round="spring")
    autumn_form = form(804, programme="two-rounds", round="autumn")
    spring = await api.submit(spring_form, now=datetime(2027, 3, 10, 2, tzinfo=UTC))
    autumn = await api.submit(autumn_form, now=IN_WINDOW_2027)
    assert "/2027-spring/" in spring and "/2027-autumn/" in autumn
    # Each round keeps its own window and dates, and is its own season.
    spring_case, autumn_case = Case(api, ts_env, spring), Case(api, ts_env, autumn)
    st = await spring_case.wait_for(lambda s: s.waiting_until is not None, "scheduled")
    assert (
        await autumn_case.wait_for(lambda s: s.waiting_until is not None, "scheduled")
    ).waiting_until
    desc = await spring_case.handle.describe()
    assert desc.typed_search_attributes.get(search.ROUND) == "spring"
    assert desc.typed_search_attributes.get(search.SEASON) == 2027
    assert {s for s in api.started_seasons() if "two-rounds" in s} == {
        "season/two-rounds/2027-spring/341225",
        "season/two-rounds/2027-autumn/341225",
    }
    listed = [x.workflow_id async for x in api.list(programme="two-rounds", round_="autumn")]
    assert listed == [autumn]
    assert "4/10" in st.details_en  # the spring round's own fixed date
    # The round must be one the programme has.
    with pytest.raises(
        Refused, match="round: two-rounds has the rounds spring, autumn, not 'summer'"
    ):
        await api.submit(form(805, programme="two-rounds", round="summer"), now=IN_WINDOW_2027)


async def test_posting_one_programmes_notice_leaves_the_others_alone(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    """Two programmes with applications at one village: the village posts one programme's
    list; the other's applications still wait for their own posting."""
    api = app_stack.api
    steps = tuple(
        s.model_copy(update={"first_posting": "after_review"}) if s.kind == "notice" else s
        for s in COUNTY_SUBSIDY.steps
    )
    for code in ("notice-a", "notice-b"):
        api.programmes[code] = COUNTY_SUBSIDY.model_copy(update={"code": code, "steps": steps})
    a = Case(api, ts_env, await api.submit(form(806, programme="notice-a"), now=IN_WINDOW_2027))
    b = Case(api, ts_env, await api.submit(form(807, programme="notice-b"), now=IN_WINDOW_2027))
    for case in (a, b):
        await case.wait_for(lambda s: s.waiting_for == "village_committee", "started")
        await case.approve("village_review", village_official())
        await case.wait_for(lambda s: s.stage == "village_notice", "ready")
    # Each knows its automatic posting from its join: the next working day's morning.
    b_st = await b.status()
    assert b_st.notice is not None
    auto = b_st.notice.posted_at
    notice_a = api.notice_id("notice-a", 2027, Level.VILLAGE, VILLAGE)
    notice_b = api.notice_id("notice-b", 2027, Level.VILLAGE, VILLAGE)
    assert notice_a != notice_b
    posted = await api.post_notice(
        notice_a, NoticePostRequest(request_id=uuid.uuid4().hex, actor=village_official())
    )
    assert posted.accepted
    assert (await api.notice_status(notice_a)).postings[-1].members == [a.wf]
    await a.wait_for(lambda s: s.notice is not None and s.notice.posted_at < auto, "posted")
    st = await b.status()
    assert st.notice is not None and st.notice.posted_at == auto  # still its own list's time
    other = await api.notice_status(notice_b)
    assert [m.workflow_id for m in other.pending] == [b.wf] and not other.postings


# ------------------------------------------- every programme, one application to its end


# Nobody acting and nothing changing for this long: the application waits for time to
# pass (a notice's posting or end), and its clock is moved to that instant.
SETTLE_SECONDS = 1.5
DRIVE_SECONDS = 120.0


def _where(st: ApplicationStatus) -> tuple[Any, ...]:
    return (st.stage, st.waiting_for, st.waiting_until, st.notice, len(st.objections))


async def _funds(
    app_stack: AppStack,
    ts_env: WorkflowEnvironment,
    case: Case,
    programme: Programme,
    step: FundsStep,
) -> None:
    """The county asks for the funds of what waits and finance records their arrival,
    as the demo's county office does (workers/demo.py): the season's clock first moved
    to the application's, as the season's calendar keeps them together."""
    api = app_stack.api
    st = await case.status()
    county = st.places.county_code
    for _ in range(100):  # the request reads the read model, written a moment after
        with Session(app_stack.engine) as s:
            row = s.get(ApplicationRow, case.wf)
            if row is not None and row.stage == step.stage:
                break
        await asyncio.sleep(0.1)
    season = api.client.get_workflow_handle(
        season_workflow_id(programme.code, st.season, county, programme.round_key)
    )
    delta = await case.now() - await ts_env.get_current_time(season)
    if delta > timedelta(0):
        await ts_env.fast_forward(season, delta)
    summary = await api.request_funds(
        programme.code,
        st.season,
        county,
        people.county_office(step.requested_by, county),
        request_id=f"fr-{case.wf[-8:]}",
        round_=programme.round_key,
    )
    assert summary.workflow_ids == [case.wf]
    await api.funds_arrived(
        programme.code,
        st.season,
        county,
        people.county_office(Role.COUNTY_FINANCE, county),
        summary.request_id,
        summary.total_cny,
        f"CZ-{case.wf[-8:]}",
        round_=programme.round_key,
    )


async def drive_to_end(
    app_stack: AppStack, ts_env: WorkflowEnvironment, case: Case, programme: Programme
) -> list[ApplicationStatus]:
    """Drive one application through its programme's steps with the simulated officials'
    desks (desk_at: no code of any programme here), moving its clock when nobody acts;
    the statuses it went through, one a change."""
    floor = AtOnce(app_stack.api, counts_sends=False)
    seen: list[ApplicationStatus] = []
    funded: set[str] = set()
    changed = time.monotonic()
    deadline = changed + DRIVE_SECONDS
    while time.monotonic() < deadline:
        st = await case.status()
        if "joining the" in st.details_en:  # still starting its step: not a state yet
            await asyncio.sleep(0.05)
            continue
        if not seen or _where(seen[-1]) != _where(st):
            if seen:  # the visit of every act on the last state is over
                floor.visits = {k: v + 1 for k, v in floor.visits.items()}
            seen.append(st)
            changed = time.monotonic()
        if st.stage == programme.done_stage:
            return seen
        desk = desk_at(programme, st.stage)
        assert desk is not None, f"ended in {st.stage}: {st.details_en}"
        step = programme.step_at(st.stage)
        if isinstance(step, FundsStep) and step.stage not in funded:
            funded.add(step.stage)
            await _funds(app_stack, ts_env, case, programme, step)
            changed = time.monotonic()  # the release reaches the application by signal
            continue
        if isinstance(step, NoticeStep) and step.evidence_required and st.notice is None:
            # Its owner posts it (never itself): the notice's clock, its own on this
            # server, is brought to the application's, as in the field they are one.
            now = await case.now()
            for n in await case.notices():
                await case._move(app_stack.api.client.get_workflow_handle(n.notice_id), now)
        try:
            acted = await desk.act(floor, st)
        except Refused:
            acted = True  # not there yet (the request came early): looked at again
        if not acted and time.monotonic() - changed > SETTLE_SECONDS:
            until = st.waiting_until
            if until is not None and until >= await case.now():
                await case.advance_to(until + timedelta(minutes=1))
                changed = time.monotonic()
        await asyncio.sleep(0.1)
    pytest.fail(
        f"{case.wf} did not reach {programme.done_stage} in {DRIVE_SECONDS:.0f} s: "
        + " -> ".join(f"{s.stage} ({s.details_en})" for s in seen[-3:])
    )


@pytest.mark.devserver
# The registry's programmes; their demo variants differ only in their windows, and the
# demo tests drive those (the suite's time is kept under its budget).
@pytest.mark.parametrize("programme", list(REGISTRY.values()), ids=lambda p: p.code)
async def test_every_programme_runs_an_application_to_its_end(
    programme: Programme,
    app_stack: AppStack,
    ts_env: WorkflowEnvironment,
    calendar: WorkingCalendar,
    registry: Registry,
    keys: Keys,
) -> None:
    """Issue 15's proof for every programme of the registry:
    its season planned, one application of it submitted in its window and driven by the
    simulated officials to the programme's end on the real dev server, through the
    plan's steps in the plan's order."""
    api = app_stack.api
    if programme.rounds:  # one round of it (the freshman grant: the first cohort)
        programme = programme.for_round(programme.rounds[0].key)
    plan = plan_season(programme, 2027, calendar)
    # One applicant that passes the programme's intake (workers/synthetic), with an
    # identity of its own in this test session (workflow ids derive from it).
    serial = next(_SERIALS)
    f = applicants(1, 2027, serial, programme)[0].model_copy(
        update={"national_id": make_national_id(serial, birth="20080601")}
    )
    registry.members[keys.hash_id(f.national_id)] = RegisteredMember(
        household_no=f.household_no, village_code=f.places.village_code, status="active"
    )
    if programme.opened_by is not None:  # Rain and Dew: its office opens the round first
        county = f.places.county_code
        await api.open_round(
            programme.code,
            2027,
            county,
            people.county_office(programme.opened_by, county),
            plan.window_opens_at.date(),
            round_=programme.round_key,
        )
    submitter = programme.submitted_by[0]
    # 10:00 of the first day the plan takes applications (the loan's centre: a working day).
    at = calendar.at(calendar.day_of(plan.steps[0].earliest_start), dt_time(10, 0))
    wf = await api.submit(
        f,
        submitted_by=None if submitter is Role.APPLICANT else people.official(submitter, f.places),
        now=at,
    )
    case = Case(api, ts_env, wf)
    # Its clock to the submission (it starts at the wall clock's): a step that opens at
    # once (a roster's word, then a notice) opens in the season, as it would.
    await case.advance_to(at + timedelta(minutes=1))
    started = time.monotonic()
    seen = await drive_to_end(app_stack, ts_env, case, programme)
    seconds = time.monotonic() - started

    trail = await api.trail(wf)
    entered = [e.stage for e in trail if e.kind == "stage_entered"]
    assert entered == [*(s.stage for s in plan.steps), programme.done_stage], entered
    # Each notice: one posting, not before the plan's (which has its owner post the
    # moment the step opens; here it posts itself, at the window's close or the next
    # working day's morning), for the period the calendar gives from it.
    for planned in plan.steps:
        notice = programme.step(planned.stage)
        if not isinstance(notice, NoticeStep):
            continue
        windows = list(
            dict.fromkeys(
                (s.notice.posted_at, s.notice.ends_at)
                for s in seen
                if s.stage == planned.stage and s.notice is not None
            )
        )
        assert len(windows) == 1, (planned.stage, windows)
        posted_at, ends_at = windows[0]
        assert posted_at >= planned.earliest_start, planned.stage
        period = notice_period(calendar, posted_at, notice.days, notice.counting)
        assert ends_at == period.ends_at, planned.stage
    final = await case.status()
    assert final.stage == programme.done_stage and final.waiting_for == ""
    print(f"{programme.code}: driven to {final.stage} in {seconds:.1f} s")


def test_a_programme_excludes_another_either_way_round() -> None:
    """Issue 18: where two programmes exclude each other, the second is refused naming
    the first; a rejected or withdrawn first does not count; another programme does."""
    from models.intake import PriorApplication, check_prior_applications, excluded_by
    from models.programmes import COUNTY_SUBSIDY, NEW_STUDENT_AID

    nsa = NEW_STUDENT_AID.model_copy(update={"excludes": ("county-subsidy",)})
    registry = {"county-subsidy": COUNTY_SUBSIDY, "new-student-aid": nsa}
    assert excluded_by(COUNTY_SUBSIDY, registry) == {"new-student-aid"}
    assert excluded_by(nsa, registry) == {"county-subsidy"}
    first = PriorApplication(
        programme="new-student-aid",
        workflow_id="new-student-aid/2027/341225/a",
        county_code="341225000000",
        stage="county_notice",
    )
    problems = check_prior_applications(
        COUNTY_SUBSIDY,
        "county-subsidy/2027/341225/a",
        [first],
        excluded_by(COUNTY_SUBSIDY, registry),
    )
    assert [str(p) for p in problems] == [
        "programme: county-subsidy excludes new-student-aid, already applied to this season "
        "(new-student-aid/2027/341225/a, county_notice)"
    ]
    ended = first.model_copy(update={"stage": "rejected"})
    assert (
        check_prior_applications(COUNTY_SUBSIDY, "x", [ended], frozenset({"new-student-aid"})) == []
    )
    assert check_prior_applications(COUNTY_SUBSIDY, "x", [first], frozenset()) == []
    # A programme with rounds: the spring round's application does not refuse autumn's.
    spring = PriorApplication(
        programme="county-subsidy", round="spring", workflow_id="a", county_code="c", stage="paid"
    )
    assert check_prior_applications(COUNTY_SUBSIDY, "b", [spring]) == []
    autumn = COUNTY_SUBSIDY.model_copy(update={"round_key": "spring"})
    assert len(check_prior_applications(autumn, "b", [spring])) == 1
    several = autumn.model_copy(update={"one_per_student_per_season": False})
    assert check_prior_applications(several, "b", [spring]) == []


@pytest.mark.devserver
async def test_two_programmes_that_exclude_each_other_cannot_both_start_at_once(
    app_stack: AppStack, registry: Registry
) -> None:
    """Issue 18's gap: submissions to two programmes that exclude each other, moments
    apart, both passed a check on the read model (it has neither yet). The pair is
    claimed at submission: the second is refused naming the first."""
    from store.registry import RegistryReader

    api = app_stack.api
    nsa = NEW_STUDENT_AID.model_copy(update={"excludes": ("county-subsidy",)})
    saved = dict(api.programmes)
    api.programmes["new-student-aid"] = nsa
    api._claim_application = RegistryReader(app_stack.engine).claim
    try:
        serial = next(_SERIALS)
        first = await api.submit(
            nsa_form(serial, in_province=True), submitted_by=school(), now=IN_NSA_WINDOW_2027
        )
        with pytest.raises(Refused) as refused:
            await api.submit(form(serial), now=IN_WINDOW_2027)
        said = str(refused.value)
        assert "programme: county-subsidy excludes new-student-aid" in said and first in said
    finally:
        api.programmes.clear()
        api.programmes.update(saved)
        api._claim_application = None
