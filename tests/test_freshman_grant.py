"""The freshman grant (PROCESS.md §4.3) on rosters, end to end on the dev server.

2027, both cohorts of one county. The county education bureau enters the students; the
civil-affairs bureau checks each cohort's roster against its rolls (an imported snapshot
as of 1 August) and confirms, naming one student the rolls do not list; the county
Youth League's notice takes an objection, upheld; the provincial Youth League confirms
the undergraduates' list, taking one student off it; then the funds, and the card
payout: 10,000 CNY an undergraduate, 8,000 a junior-college student.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.application import Actor, ObjectionRequest, ObjectionResolution, WithdrawalRequest
from models.domain import (
    DocumentKind,
    EducationLevel,
    Level,
    ObjectionOutcome,
    ReliefCategory,
    Role,
)
from models.ids import roster_workflow_id, season_workflow_id
from models.notice import notice_workflow_id
from models.roster import EntryVerdict, RosterDecision, RosterStatus
from store.rolls import check_rolls, import_rolls
from tests.conftest import AppStack
from tests.support import COUNTY, applicant_of, county_official, form, make_national_id, public
from tests.test_application_workflow import Case, cst, rid
from workers.client import Refused

FG = "freshman-grant"
IN_WINDOW = cst(7, 20, 10)
CIVIL_AFFAIRS = Actor(
    id="civil-1", name="县民政局干部", role=Role.CIVIL_AFFAIRS_BUREAU, place_code=COUNTY
)
YOUTH_LEAGUE = Actor(
    id="league-1", name="团县委干部", role=Role.COUNTY_YOUTH_LEAGUE, place_code=COUNTY
)
PROVINCE = Actor(
    id="league-province-1",
    name="团省委干部",
    role=Role.PROVINCIAL_YOUTH_LEAGUE,
    place_code=COUNTY[:2] + "0" * 10,
)
FINANCE = Actor(id="finance-1", name="县财政局", role=Role.COUNTY_FINANCE, place_code=COUNTY)


def freshman(serial: int, level: EducationLevel) -> Any:
    return form(
        serial,
        programme=FG,
        round="undergraduate"
        if level is EducationLevel.UNDERGRADUATE_FULL_TIME
        else "juniorcollege",
        education_level=level,
        freshman=True,
        university="兰州大学"
        if level is EducationLevel.UNDERGRADUATE_FULL_TIME
        else "甘肃林业职业技术学院",
        documents={DocumentKind.ADMISSION_LETTER: 1},
    )


class Cohort:
    """One cohort's roster, its applications, and every clock they run on."""

    def __init__(self, stack: AppStack, env: WorkflowEnvironment, round_: str) -> None:
        self.stack, self.env, self.round = stack, env, round_
        self.roster_id = roster_workflow_id(FG, 2027, COUNTY, round_)
        self.season_id = season_workflow_id(FG, 2027, COUNTY, round_)
        self.notice_id = notice_workflow_id(
            FG, 2027, round_, Level.COUNTY, COUNTY, "youth_league_notice"
        )
        self.cases: list[Case] = []

    async def enter(self, serial: int, level: EducationLevel) -> Case:
        wf = await self.stack.api.submit(
            freshman(serial, level), submitted_by=county_official(), now=IN_WINDOW
        )
        case = Case(self.stack.api, self.env, wf)
        self.cases.append(case)
        return case

    async def advance_to(self, instant: datetime) -> None:
        """Every clock of the cohort to ``instant`` (on this server each workflow has its
        own): the applications', their roster's, their notice's and their season's."""
        ids = [c.wf for c in self.cases] + [self.roster_id, self.notice_id, self.season_id]
        for wf in ids:
            handle: WorkflowHandle[Any, Any] = self.stack.api.client.get_workflow_handle(wf)
            try:
                delta = instant - await self.env.get_current_time(handle)
                if delta > timedelta(0):
                    await self.env.fast_forward(handle, delta)
            except RPCError:
                continue  # not started (yet), or over

    async def decide(self, stage: str, actor: Actor, **fields: Any) -> Any:
        req = RosterDecision(request_id=rid(), actor=actor, stage=stage, **fields)
        return await self.stack.api.decide_roster(FG, 2027, COUNTY, req, round_=self.round)

    async def view(self) -> Any:
        return await self.stack.api.roster_view(FG, 2027, COUNTY, round_=self.round)


async def eventually(check: Any, what: str) -> Any:
    for _ in range(150):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"never: {what}")


def write_rolls(tmp: Path, rows: list[tuple[int, str]]) -> Path:
    path = tmp / "rolls.csv"
    lines = ["national_id,name,category"]
    lines += [f"{make_national_id(s)},学生{s},{category}" for s, category in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_freshman_grant_two_cohorts_from_roster_to_payout(
    app_stack: AppStack, ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    api, keys = app_stack.api, app_stack.deps.keys
    report = import_rolls(
        app_stack.engine,
        write_rolls(
            tmp_path,
            [
                (911, ReliefCategory.ORPHAN.value),
                (913, ReliefCategory.URBAN_SUBSISTENCE_FULL.value),
                (914, ReliefCategory.EXTREME_POVERTY.value),
                (915, ReliefCategory.RURAL_SUBSISTENCE_CLASS_1.value),
            ],
        ),
        keys.hash_id,
        county_code=COUNTY,
        as_of=date(2027, 8, 1),
    )
    assert report.imported == 4 and not report.problems

    ug = Cohort(app_stack, ts_env, "undergraduate")
    jc = Cohort(app_stack, ts_env, "juniorcollege")
    paid_ug = await ug.enter(911, EducationLevel.UNDERGRADUATE_FULL_TIME)
    not_on_rolls = await ug.enter(912, EducationLevel.UNDERGRADUATE_FULL_TIME)
    objected = await ug.enter(913, EducationLevel.UNDERGRADUATE_FULL_TIME)
    taken_off = await ug.enter(914, EducationLevel.UNDERGRADUATE_FULL_TIME)
    paid_jc = await jc.enter(915, EducationLevel.JUNIOR_COLLEGE_FULL_TIME)
    named_jc = await jc.enter(916, EducationLevel.JUNIOR_COLLEGE_FULL_TIME)

    # A junior-college student is not entered on the undergraduates' roster.
    with pytest.raises(Refused, match="education_level"):
        await api.submit(
            freshman(917, EducationLevel.JUNIOR_COLLEGE_FULL_TIME).model_copy(
                update={"round": "undergraduate"}
            ),
            submitted_by=county_official(),
            now=IN_WINDOW,
        )
    for c in ug.cases:
        st = await c.wait_for(
            lambda s: s.stage == "civil_affairs_check" and "roster/" in s.details_en,
            "on the roster",
        )
        assert st.amount_cny == 10_000 and st.waiting_for == "civil_affairs_bureau"
    for c in jc.cases:
        st = await c.wait_for(lambda s: "roster/" in s.details_en, "on the roster")
        assert st.amount_cny == 8_000

    view = await eventually(
        lambda: _view_with(ug, lambda v: v.phase == "civil_affairs_check"), "roster at the check"
    )
    assert view.waiting_for == "civil_affairs_bureau" and view.waiting_until == cst(8, 11)
    # The cohort's applications (an earlier test's of the same county may be listed too).
    assert {c.wf for c in ug.cases} <= {m.workflow_id for m in view.members}

    # Refused: the wrong office; a student not on this roster; an eligible one without category.
    with pytest.raises(Refused, match="needs civil_affairs_bureau") as wrong:
        await ug.decide("civil_affairs_check", county_official(), others="from_rolls")
    assert wrong.value.kind == "forbidden"
    with pytest.raises(Refused) as refused:
        await ug.decide(
            "civil_affairs_check",
            CIVIL_AFFAIRS,
            entries=[
                EntryVerdict(workflow_id=paid_jc.wf, eligible=True, category=ReliefCategory.ORPHAN),
                EntryVerdict(workflow_id=paid_ug.wf, eligible=True),
            ],
            others="from_rolls",
        )
    assert f"not waiting for civil_affairs_check on this roster: {paid_jc.wf}" in str(refused.value)
    assert f"the category is required for each eligible student: {paid_ug.wf}" in str(refused.value)

    # The civil-affairs check: the rolls answer for everyone (automatic), the bureau confirms.
    await ug.advance_to(cst(8, 9, 10))
    decided = await ug.decide("civil_affairs_check", CIVIL_AFFAIRS, others="from_rolls")
    assert (decided.approved, decided.refused, decided.still_waiting) == (3, 1, 0)
    assert decided.rolls_snapshot == date(2027, 8, 1)
    st = await not_on_rolls.at_stage("rejected")
    trail = await api.trail(not_on_rolls.wf)
    word = next(e for e in trail if e.kind == "decision")
    assert word.actor.id == "civil-1" and word.actor.role is Role.CIVIL_AFFAIRS_BUREAU
    assert word.detail["rolls_snapshot"] == "2027-08-01"
    assert "not on the civil-affairs rolls as of 2027-08-01" in word.detail["reason"]
    trail = await api.trail(paid_ug.wf)
    word = next(e for e in trail if e.kind == "decision")
    assert word.detail["category"] == "orphan" and "孤儿" in word.summary

    # The Youth League's notice: posted the next working day; an objection, upheld.
    for c in (paid_ug, objected, taken_off):
        await c.wait_for(
            lambda s: s.stage == "youth_league_notice" and s.waiting_until is not None, "notice"
        )
    await ug.advance_to(cst(8, 10, 9))
    st = await paid_ug.wait_for(lambda s: s.notice is not None, "posted")
    assert st.notice is not None
    ends = st.notice.ends_at
    await api.lodge_objection(
        objected.wf, ObjectionRequest(request_id=rid(), actor=public(), text="家庭已脱离低保")
    )
    await api.resolve_objection(
        objected.wf,
        ObjectionResolution(
            request_id=rid(),
            actor=YOUTH_LEAGUE,
            objection_id="obj-1",
            outcome=ObjectionOutcome.UPHELD,
            reason="经核实已于7月退出低保",
        ),
    )
    await objected.at_stage("rejected")
    await ug.advance_to(ends + timedelta(minutes=1))
    for c in (paid_ug, taken_off):
        await c.at_stage("provincial_confirmation")

    # The provincial Youth League confirms the list and takes one student off it.
    with pytest.raises(Refused, match="is not the roster's province"):
        await ug.decide(
            "provincial_confirmation",
            PROVINCE.model_copy(update={"place_code": "620000000000"}),
            others="approve",
        )
    confirmed = await ug.decide(
        "provincial_confirmation",
        PROVINCE,
        entries=[
            EntryVerdict(
                workflow_id=taken_off.wf, eligible=False, reason="省级复核：已享受同类资助"
            )
        ],
        others="approve",
    )
    assert (confirmed.approved, confirmed.refused) == (1, 1)
    await taken_off.at_stage("rejected")
    await paid_ug.at_stage("awaiting_funds")
    view = await eventually(
        lambda: _view_with(ug, lambda v: v.phase == "roster_decided"), "roster decided"
    )
    stages = {m.workflow_id: m.stage for m in view.members}
    assert stages[taken_off.wf] == "rejected" and stages[paid_ug.wf] == "awaiting_funds"

    # The junior-college cohort: one student the rolls do not list, named eligible by hand.
    await jc.advance_to(cst(8, 24, 10))
    decided = await jc.decide(
        "civil_affairs_check",
        CIVIL_AFFAIRS,
        entries=[
            EntryVerdict(
                workflow_id=named_jc.wf,
                eligible=True,
                category=ReliefCategory.SINGLE_PERSON_HOUSEHOLD,
                reason="8月新纳入单人户施保，名册未更新",
            )
        ],
        others="from_rolls",
    )
    assert (decided.approved, decided.refused) == (2, 0)
    for c in jc.cases:
        await c.wait_for(
            lambda s: s.stage == "youth_league_notice" and s.waiting_until is not None, "notice"
        )
    # Its automatic posting and its period, known from its join; the notice posts it.
    st = await paid_jc.wait_for(lambda s: s.notice is not None, "posting time")
    assert st.notice is not None and st.waiting_until == st.notice.ends_at
    await jc.advance_to(st.notice.posted_at + timedelta(minutes=1))
    for _ in range(100):  # its list is printed by an activity: a moment
        notice = await api.notice_status(jc.notice_id)
        if notice.postings and paid_jc.wf in notice.postings[-1].members:
            break
        await asyncio.sleep(0.1)
    assert notice.postings and paid_jc.wf in notice.postings[-1].members
    await jc.advance_to(st.notice.ends_at + timedelta(minutes=1))
    for c in jc.cases:
        await c.at_stage("provincial_confirmation")
    await jc.decide("provincial_confirmation", PROVINCE, others="approve")

    # Funds and the card payout, once each, 10,000 and 8,000 CNY.
    for cohort, paid, amount in ((ug, [paid_ug], 10_000), (jc, [paid_jc, named_jc], 8_000)):
        for c in paid:
            await c.at_stage("awaiting_funds")
        await cohort.advance_to(cst(9, 6, 10))
        summary = await api.request_funds(FG, 2027, COUNTY, YOUTH_LEAGUE, round_=cohort.round)
        assert summary.count == len(paid) and summary.total_cny == amount * len(paid)
        await api.funds_arrived(
            FG,
            2027,
            COUNTY,
            FINANCE,
            summary.request_id,
            summary.total_cny,
            f"CZ-{cohort.round}",
            round_=cohort.round,
        )
        for c in paid:
            st = await c.at_stage("paid")
            assert st.amount_cny == amount
    await paid_ug.save_history("freshman_grant_paid")
    await paid_ug.save_history("freshman_grant_roster", ug.roster_id)


async def _view_with(cohort: Cohort, check: Any) -> Any:
    try:
        view = await cohort.view()
    except Refused:
        return None
    return view if check(view) else None


async def test_a_student_withdrawn_while_waiting_leaves_the_roster(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    ug = Cohort(app_stack, ts_env, "undergraduate")
    stays = await ug.enter(921, EducationLevel.UNDERGRADUATE_FULL_TIME)
    leaves = await ug.enter(922, EducationLevel.UNDERGRADUATE_FULL_TIME)
    roster = app_stack.api.client.get_workflow_handle(ug.roster_id)

    def waiting_on_roster(n: int) -> Any:
        async def check() -> bool:
            st = await roster.query("status", result_type=RosterStatus)
            return f"{n} waiting for the civil affairs bureau" in st.details_en

        return check

    # Both joined (their messages delivered, not merely sent: a student's details name
    # its roster from the moment it sends its message).
    await eventually(waiting_on_roster(2), "both students on the roster")
    await app_stack.api.withdraw(
        leaves.wf,
        WithdrawalRequest(request_id=rid(), actor=applicant_of(leaves.wf), reason="已入伍"),
    )
    await leaves.at_stage("withdrawn")
    await eventually(waiting_on_roster(1), "the roster counts the withdrawn student out")
    # The roster no longer counts it; a word naming it is refused, naming it.
    with pytest.raises(
        Refused, match=f"not waiting for civil_affairs_check on this roster: {leaves.wf}"
    ):
        await ug.decide(
            "civil_affairs_check",
            CIVIL_AFFAIRS,
            entries=[EntryVerdict(workflow_id=leaves.wf, eligible=False, reason="x")],
        )
    decided = await ug.decide(
        "civil_affairs_check",
        CIVIL_AFFAIRS,
        entries=[EntryVerdict(workflow_id=stays.wf, eligible=True, category=ReliefCategory.ORPHAN)],
    )
    assert (decided.approved, decided.refused, decided.still_waiting) == (1, 0, 0)
    await stays.wait_for(lambda s: s.stage == "youth_league_notice", "past the check")


def test_the_rolls_import_names_each_bad_row_and_imports_nothing(
    engine: Any, keys: Any, tmp_path: Path
) -> None:
    path = tmp_path / "rolls.csv"
    path.write_text(
        "national_id,name,category\n"
        f"{make_national_id(931)},学生931,orphan\n"
        f"{make_national_id(932)},学生932,poor\n"
        f"{make_national_id(931)},学生931,orphan\n"
        "123,,orphan\n",
        encoding="utf-8",
    )
    report = import_rolls(engine, path, keys.hash_id, county_code=COUNTY, as_of=date(2027, 8, 1))
    assert report.imported == 0 and report.bad_rows == [3, 4, 5]
    text = "\n".join(str(p) for p in report.problems)
    assert "row 3, category: 'poor' is not one of" in text
    assert "row 4, national_id: also on row 2" in text
    assert "row 5, name: must have 1 to 50 characters" in text
    # With --skip-bad: the good row in, the bad ones to a rejects file; a newer snapshot
    # answers, an older one is kept for the checks that ran on it.
    report = import_rolls(
        engine, path, keys.hash_id, county_code=COUNTY, as_of=date(2027, 8, 1), skip_bad=True
    )
    assert report.imported == 1 and report.rejects_file is not None
    found = check_rolls(engine, COUNTY, [keys.hash_id(make_national_id(931))], date(2027, 8, 9))
    assert found == (date(2027, 8, 1), {keys.hash_id(make_national_id(931)): ReliefCategory.ORPHAN})
    assert check_rolls(engine, COUNTY, [], date(2027, 7, 31)) == (None, {})


def test_a_roster_file_in_xlsx_reads_one_form_a_row(tmp_path: Path) -> None:
    """The county bureau enters its roster as a spreadsheet (aidflow apply): dotted
    columns are the form's nested fields, blank rows are skipped, rows keep their numbers."""
    from openpyxl import Workbook

    from workers.forms import read_forms

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(
        [
            "programme",
            "season",
            "round",
            "applicant_name",
            "places.village_code",
            "documents.admission_letter",
        ]
    )
    ws.append(["freshman-grant", 2027, "undergraduate", "学生1", "341225100201", 1])
    ws.append([None, None, None, None, None, None])
    ws.append(["freshman-grant", 2027, "undergraduate", "学生2", "341225100202", 1])
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    rows = read_forms(path)
    assert [n for n, _ in rows] == [2, 4]
    assert rows[0][1] == {
        "programme": "freshman-grant",
        "season": "2027",
        "round": "undergraduate",
        "applicant_name": "学生1",
        "places": {"village_code": "341225100201"},
        "documents": {"admission_letter": "1"},
    }
