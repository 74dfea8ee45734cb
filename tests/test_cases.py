"""Help that is a case (PROCESS.md §5), on the dev server with each case's clock moved.

A pairing year: three cadres of two departments; one cadre's monthly call is missed and
flagged (the cadre and the department's liaison told); a visit logged on the quarter's
last day counts; a contact in the future, outside the year or by someone not on the
case is refused naming why; a cadre hands over and the seat's obligations go on; the
report tallies each cadre's periods met and missed. A dropout case cannot close without
evidence nor by silence; one closes on the child's return, one on an exemption the
county approves. An academic-help semester's three checks flag the record that stopped.
A left-behind child registered late is flagged, and signed off by the township, then
the county, by different people.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from models.application import Actor
from models.calendar import SHANGHAI
from models.cases import (
    CaseMember,
    CaseStatus,
    Closure,
    ClosureApproval,
    Contact,
    ContactKind,
    Handover,
    MemberRole,
    SignOff,
)
from models.domain import Role
from models.programmes import CASE_REGISTRY
from store.cases import (
    case_ledger,
    department_summary,
    handbook_markdown,
    obligations_report,
    periodic_report,
)
from store.tables import OutboxMessage
from tests.conftest import AppStack
from tests.support import COUNTY, PLACES, TOWNSHIP, county_official, make_national_id
from tests.test_application_workflow import cst, rid, write_history
from workers.client import Refused
from workers.client.cases import CaseClient

BUREAU = county_official()
SCHOOL = Actor(id="school-1", name="中心学校", role=Role.CENTRAL_SCHOOL, place_code=TOWNSHIP)
TOWNSHIP_OFFICE = Actor(
    id="township-1", name="乡镇", role=Role.TOWNSHIP_POVERTY_OFFICE, place_code=TOWNSHIP
)
COLLEGE = Actor(id="college-1", name="学院学工办", role=Role.COLLEGE, place_code=COUNTY)


def person(actor_id: str, unit: str = "") -> Actor:
    return Actor(id=actor_id, name=actor_id, role=Role.HELPER, place_code=unit)


def member(actor_id: str, role: MemberRole, unit: str = "") -> CaseMember:
    return CaseMember(actor_id=actor_id, name=f"干部{actor_id[-1]}", role=role, unit=unit)


class Case:
    def __init__(self, cases: CaseClient, env: WorkflowEnvironment, wf: str) -> None:
        self.cases, self.env, self.wf = cases, env, wf
        self.handle = cases.api.client.get_workflow_handle(wf, result_type=CaseStatus)

    async def advance_to(self, to: datetime) -> None:
        delta = to - await self.env.get_current_time(self.handle)
        if delta > timedelta(0):
            await self.env.fast_forward(self.handle, delta)

    def contact(
        self, who: str, on: date, kind: ContactKind, by: Actor | None = None, **more: Any
    ) -> Any:
        return self.cases.log_contact(
            self.wf,
            Contact(
                request_id=rid(),
                actor=by or person(who),
                member=who,
                on=on,
                kind=kind,
                done="电话了解近况" if kind is ContactKind.PHONE else "入户走访",
                **more,
            ),
        )

    async def save_history(self, name: str) -> None:
        """With AIDFLOW_RECORD_HISTORIES=1, keep this run's history as a replay fixture."""
        if os.environ.get("AIDFLOW_RECORD_HISTORIES") == "1":
            history = await self.handle.fetch_history()
            write_history(name, history)

    async def until(self, check: Any, what: str) -> Any:
        for _ in range(100):
            st = await self.cases.status(self.wf)
            if check(st):
                return st
            await asyncio.sleep(0.1)
        pytest.fail(f"{self.wf} never: {what}; last {st}")


async def test_a_pairing_year_flags_a_missed_call_counts_the_last_day_and_hands_over(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    cases = CaseClient(app_stack.api, CASE_REGISTRY)
    # The plan's calendar of the year: dated tasks, reminded and overdue as any programme's.
    await app_stack.api.open_tasks("cadre-pairing", 2027, COUNTY)
    for _ in range(50):
        with contextlib.suppress(Exception):
            tasks = await app_stack.api.tasks("cadre-pairing", 2027, COUNTY)
            if tasks:
                break
        await asyncio.sleep(0.1)
    assert [(t.key, t.due_at.astimezone(SHANGHAI).date().isoformat()) for t in tasks] == [
        ("claimed", "2027-04-21"),
        ("first_visit", "2027-05-21"),
        ("first_visit_reported", "2027-05-29"),
        ("help_plan", "2027-05-31"),
        ("summary", "2027-12-11"),
    ]
    with pytest.raises(Refused, match="the group needs a cadre"):
        await cases.open_case(
            "cadre-pairing",
            2027,
            PLACES,
            name="王家",
            national_id=make_national_id(611),
            members=[],
            opened_by=BUREAU,
        )
    four = [member(f"cadre-{x}", MemberRole.CADRE, "D01") for x in "PQRS"]
    with pytest.raises(Refused, match="more than 3 is led by a leading cadre"):
        await cases.open_case(
            "cadre-pairing",
            2027,
            PLACES,
            name="王家",
            national_id=make_national_id(611),
            members=four,
            opened_by=BUREAU,
        )
    wf = await cases.open_case(
        "cadre-pairing",
        2027,
        PLACES,
        name="王小明",
        national_id=make_national_id(611),
        members=[
            member("cadre-A", MemberRole.CADRE, "D01"),
            member("cadre-B", MemberRole.CADRE, "D01"),
            member("cadre-C", MemberRole.CADRE, "D02"),
        ],
        opened_by=BUREAU,
        now=cst(4, 15, 9),
    )
    case = Case(cases, ts_env, wf)
    await case.advance_to(cst(4, 22, 10))
    st = await case.until(lambda s: s.waiting_for == "helper", "waiting for the cadres")
    assert "每月电话联系" in st.details_zh and st.next_deadline is not None
    await case.contact("cadre-A", date(2027, 4, 20), ContactKind.PHONE)
    await case.contact("cadre-B", date(2027, 4, 21), ContactKind.VISIT, gift_value_cny=500)
    # Refused, each naming why.
    with pytest.raises(Refused, match=r"on: 2027-05-10 is in the future \(today is 2027-04-22\)"):
        await case.contact("cadre-A", date(2027, 5, 10), ContactKind.PHONE)
    with pytest.raises(Refused, match="outside the case's year 2027"):
        await case.contact("cadre-A", date(2026, 12, 30), ContactKind.PHONE)
    with pytest.raises(Refused, match="member: cadre-X is not on this case") as stranger:
        await case.contact("cadre-X", date(2027, 4, 21), ContactKind.PHONE)
    assert stranger.value.kind == "forbidden"
    with pytest.raises(Refused, match="only the member or their unit's liaison"):
        await case.contact("cadre-C", date(2027, 4, 21), ContactKind.PHONE, by=person("cadre-A"))

    # April ends: cadre C never called. Overdue for C, who is told with D02's liaison.
    await case.advance_to(cst(5, 1, 9))
    st = await case.until(lambda s: s.overdue, "overdue")
    assert st.overdue == ["monthly_phone:cadre-C"]
    assert [(m.member, m.period) for m in st.misses] == [("cadre-C", "2027-04")]
    with app_stack.engine.connect() as conn:
        for _ in range(50):
            told = {
                r.recipient
                for r in conn.execute(
                    select(OutboxMessage.__table__).where(  # type: ignore[attr-defined]
                        OutboxMessage.__table__.c.workflow_id == wf  # type: ignore[attr-defined]
                    )
                )
            }
            if told:
                break
            await asyncio.sleep(0.1)
    assert told == {"helper:cadre-C", "department_liaison@D02"}
    # The liaison logs C's call for C: the miss is made up (the flag is down).
    liaison = Actor(id="liaison-D02", name="联络员", role=Role.DEPARTMENT_LIAISON, place_code="D02")
    await case.contact("cadre-C", date(2027, 5, 1), ContactKind.PHONE, by=liaison)
    st = await case.until(lambda s: not s.overdue, "made up")

    # Every cadre calls each month; A and B visit in the quarter, A on its last day.
    for month in (5, 6):
        await case.advance_to(cst(month, 2, 10))
        for who in ("cadre-A", "cadre-B", "cadre-C"):
            if (who, month) != ("cadre-C", 5):
                await case.contact(who, date(2027, month, 2), ContactKind.PHONE)
    await case.contact("cadre-B", date(2027, 5, 20), ContactKind.VISIT)
    await case.advance_to(cst(6, 30, 20))
    await case.contact(
        "cadre-A", date(2027, 6, 30), ContactKind.VISIT, problem_solved="办理助学贷款"
    )
    await case.advance_to(cst(7, 1, 9))
    st = await case.until(lambda s: any(m.period == "2027-Q2" for m in s.misses), "Q2 judged")
    assert sorted((m.member, m.period) for m in st.misses) == [
        ("cadre-C", "2027-04"),
        ("cadre-C", "2027-Q2"),  # C only phoned
    ]

    # C leaves; D takes the seat over (by D02's liaison) and owes what C owed.
    with pytest.raises(Refused, match="may not hand the case over"):
        await cases.hand_over(
            wf,
            Handover(
                request_id=rid(),
                actor=person("cadre-A"),
                leaving="cadre-C",
                joining=member("cadre-D", MemberRole.CADRE, "D02"),
                reason="调动",
            ),
        )
    await cases.hand_over(
        wf,
        Handover(
            request_id=rid(),
            actor=liaison,
            leaving="cadre-C",
            joining=member("cadre-D", MemberRole.CADRE, "D02"),
            reason="工作调动",
        ),
    )
    with pytest.raises(Refused, match="cadre-C handed this case over"):
        await case.contact("cadre-C", date(2027, 7, 1), ContactKind.PHONE)
    for who in ("cadre-A", "cadre-B", "cadre-D"):
        await case.contact(who, date(2027, 7, 1), ContactKind.PHONE)
    await case.advance_to(cst(8, 1, 9))
    st = await case.until(lambda s: any(m.period == "2027-07" for m in s.misses) or True, "July")
    assert not any(m.period == "2027-07" for m in st.misses)
    assert [m.actor_id for m in st.members] == ["cadre-A", "cadre-B", "cadre-D"]

    # The report: each cadre's periods met and missed (the department's view).
    for _ in range(50):
        tallies = {
            t.actor_id: t
            for t in obligations_report(app_stack.engine, "cadre-pairing", 2027, COUNTY)
        }
        if tallies.get("cadre-D") and tallies["cadre-D"].met.get("monthly_phone"):
            break
        await asyncio.sleep(0.1)
    assert tallies["cadre-A"].met == {"monthly_phone": 4, "quarterly_visit": 1}
    assert tallies["cadre-C"].missed == {"monthly_phone": 1, "quarterly_visit": 1}
    assert tallies["cadre-C"].met == {"monthly_phone": 2}
    assert tallies["cadre-D"].met == {"monthly_phone": 1} and tallies["cadre-D"].unit == "D02"
    # The departments' summary of the year (10 December), and the handbook and ledger.
    summary = {
        u["unit"]: u for u in department_summary(app_stack.engine, "cadre-pairing", 2027, COUNTY)
    }
    assert summary["D01"]["cadres"] == 2 and summary["D02"]["cadres"] == 2  # C, then D
    assert summary["D01"]["gifts_cny"] == 500 and summary["D01"]["problems_solved"] == 1
    assert summary["D02"]["periods_missed"] == 2 and summary["D01"]["periods_missed"] == 0
    # Its help handbook and the county's ledger, from the records.
    book = handbook_markdown(app_stack.engine, wf)
    assert book is not None and book.startswith("# 帮扶手册 / help handbook: 王小明")
    assert "| 2027-06-30 | cadre-A | visit |" in book and "办理助学贷款" in book
    assert "cadre-C handed the case over to cadre-D" in book
    assert case_ledger(app_stack.engine, "cadre-pairing", 2027, COUNTY) == [
        {"township": TOWNSHIP, "cases": 1, "case_open": 1, "overdue": 1}  # Q2 visit not made up
    ]
    await case.save_history("case_pairing_handover")


async def test_a_dropout_case_closes_only_on_an_outcome_with_its_evidence(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    cases = CaseClient(app_stack.api, CASE_REGISTRY)
    group = [
        member("teacher-1", MemberRole.TEACHER, "S01"),
        member("cadre-v", MemberRole.VILLAGE_CADRE),
        member("parent-1", MemberRole.GUARDIAN),
    ]
    with pytest.raises(Refused, match="opened by the central_school, not county_education_bureau"):
        await cases.open_case(
            "dropout-persuasion",
            2027,
            PLACES,
            name="李小红",
            national_id=make_national_id(612),
            members=group,
            opened_by=BUREAU,
        )
    returned = Case(
        cases,
        ts_env,
        await cases.open_case(
            "dropout-persuasion",
            2027,
            PLACES,
            name="李小红",
            national_id=make_national_id(612),
            members=group,
            opened_by=SCHOOL,
            now=cst(3, 1, 9),
            school="王家坝中学",
            grade="初二",
            level="junior",
            note="2月辍学外出务工",
        ),
    )
    await returned.advance_to(cst(3, 2, 9))
    with pytest.raises(
        Refused, match="evidence: back in school needs the school's enrolment record"
    ):
        await cases.close(
            returned.wf, Closure(request_id=rid(), actor=SCHOOL, outcome="returned_to_school")
        )
    with pytest.raises(Refused, match="does not close this case"):
        await cases.close(
            returned.wf,
            Closure(request_id=rid(), actor=SCHOOL, outcome="silence", evidence_ref="x"),
        )
    # No home visit within the week: overdue; and months of silence close nothing.
    await returned.advance_to(cst(5, 1, 9))
    st = await returned.until(lambda s: s.overdue, "overdue")
    assert st.overdue == ["first_home_visit"] and st.stage == "case_open"
    await returned.contact("teacher-1", date(2027, 4, 30), ContactKind.VISIT)
    st = await returned.until(lambda s: not s.overdue, "made up")
    done = await cases.close(
        returned.wf,
        Closure(
            request_id=rid(),
            actor=SCHOOL,
            outcome="returned_to_school",
            evidence_ref="学籍系统复学记录 2027-0430",
        ),
    )
    assert done.stage == "returned_to_school"
    assert (await returned.handle.result()).outcome == "returned_to_school"

    exempted = Case(
        cases,
        ts_env,
        await cases.open_case(
            "dropout-persuasion",
            2027,
            PLACES,
            name="赵小华",
            national_id=make_national_id(613),
            members=group,
            opened_by=SCHOOL,
            now=cst(3, 1, 9),
        ),
    )
    await exempted.advance_to(cst(3, 3, 9))
    proposed = await cases.close(
        exempted.wf,
        Closure(request_id=rid(), actor=SCHOOL, outcome="exempted", evidence_ref="县医院诊断证明"),
    )
    assert proposed.stage == "closure_pending"
    st = await cases.status(exempted.wf)
    assert st.waiting_for == "county_education_bureau" and "审批结案" in st.details_zh
    with pytest.raises(Refused, match="needs county_education_bureau"):
        await cases.approve_closure(
            exempted.wf, ClosureApproval(request_id=rid(), actor=SCHOOL, approve=True, reason="x")
        )
    await cases.approve_closure(
        exempted.wf,
        ClosureApproval(request_id=rid(), actor=BUREAU, approve=True, reason="因病依法缓学"),
    )
    assert (await exempted.handle.result()).outcome == "exempted"
    # The quarterly summaries: Q1 opened two, one exempted; Q2 one back in school. The
    # junior dropout rate at the end of Q1, one open of 500 enrolled, is within 1.8 %.
    for _ in range(50):
        q1 = periodic_report(
            app_stack.engine, "dropout-persuasion", COUNTY, "2027-Q1", {"junior": 500}
        )
        if q1["townships"] and q1["townships"][0].get("exempted"):
            break
        await asyncio.sleep(0.1)
    assert q1["townships"] == [{"township": TOWNSHIP, "opened": 2, "exempted": 1, "open_at_end": 1}]
    assert q1["levels"] == [
        {
            "level": "junior",
            "open_at_end": 1,
            "enrolled": 500,
            "rate": 0.002,
            "target": 0.018,
            "within_target": True,
        }
    ]
    q2 = periodic_report(app_stack.engine, "dropout-persuasion", COUNTY, "2027-Q2")
    assert q2["townships"] == [{"township": TOWNSHIP, "returned_to_school": 1}]
    await exempted.save_history("case_dropout_exempted")


async def academic_help(
    cases: CaseClient,
    env: WorkflowEnvironment,
    serial: int,
    name: str,
    helpers: tuple[str, str],
    opened: datetime,
    failed: tuple[str, ...],
) -> Case:
    """A student's academic-help case of 2027: a helper teacher and a peer, the failed
    courses, the guardian's phone 13900000<serial>."""
    teacher, peer = helpers
    wf = await cases.open_case(
        "academic-help",
        2027,
        PLACES,
        name=name,
        national_id=make_national_id(serial),
        members=[
            member(teacher, MemberRole.HELPER_TEACHER),
            member(peer, MemberRole.PEER_HELPER),
        ],
        opened_by=COLLEGE,
        now=opened,
        failed_courses=failed,
        guardian_contact=f"13900000{serial}",
    )
    return Case(cases, env, wf)


async def messages_to(stack: AppStack, recipient: str) -> list[Any]:
    """The outbox's messages to ``recipient``, once there is one (or after 5 s, none)."""
    told: list[Any] = []
    for _ in range(50):
        with stack.engine.connect() as conn:
            told = list(
                conn.execute(
                    select(OutboxMessage.__table__).where(  # type: ignore[attr-defined]
                        OutboxMessage.__table__.c.recipient == recipient  # type: ignore[attr-defined]
                    )
                ).all()
            )
        if told:
            break
        await asyncio.sleep(0.1)
    return told


async def test_academic_help_checks_and_a_late_left_behind_registration(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    cases = CaseClient(app_stack.api, CASE_REGISTRY)
    helped = await academic_help(
        cases,
        ts_env,
        614,
        "孙同学",
        ("teacher-h", "peer-p"),
        cst(3, 1, 9),
        ("高等数学", "大学英语"),
    )
    await helped.advance_to(cst(3, 5, 10))
    await helped.contact("teacher-h", date(2027, 3, 5), ContactKind.HELP_SESSION)
    await helped.advance_to(cst(3, 11, 9))  # the start check: help recorded
    await helped.advance_to(cst(4, 26, 9))  # the middle check: nothing since 10 March
    st = await helped.until(lambda s: "check:middle" in s.overdue, "flagged at the middle")
    assert "check:start" not in st.overdue
    # After the final exams (the end check), the guardian is told of the failed courses.
    await helped.advance_to(cst(7, 1, 9))
    told = await messages_to(app_stack, "13900000614")
    assert len(told) == 1 and "高等数学、大学英语" in told[0].body

    # A case of the autumn semester has the autumn's checks (it had none: every check
    # was the spring's, before its opening), the last in January after the final exams.
    autumn = await academic_help(
        cases, ts_env, 616, "吴同学", ("teacher-a", "peer-a"), cst(9, 6, 9), ("线性代数",)
    )
    await autumn.advance_to(cst(9, 21, 9))  # the autumn's start check: nothing recorded
    await autumn.until(lambda s: "check:autumn_start" in s.overdue, "flagged at the start")
    await autumn.advance_to(cst(1, 21, 9, y=2028))
    told = await messages_to(app_stack, "13900000616")
    assert len(told) == 1 and "线性代数" in told[0].body

    late = Case(
        cases,
        ts_env,
        await cases.open_case(
            "left-behind-children",
            2027,
            PLACES,
            name="周小宝",
            national_id=make_national_id(615),
            members=[member("teacher-l", MemberRole.TEACHER, "S01")],
            opened_by=SCHOOL,
            now=cst(3, 20, 9),
        ),
    )
    await late.advance_to(cst(3, 20, 10))
    st = await late.until(lambda s: s.waiting_for == "township_poverty_office", "sign-off")
    assert st.late and "逾期登记" in st.details_zh
    with pytest.raises(Refused, match="needs township_poverty_office"):
        await cases.sign_off(late.wf, SignOff(request_id=rid(), actor=BUREAU))
    await cases.sign_off(late.wf, SignOff(request_id=rid(), actor=TOWNSHIP_OFFICE))
    same_person = BUREAU.model_copy(update={"id": "township-1"})
    with pytest.raises(Refused, match="four eyes: township-1 signed off already"):
        await cases.sign_off(late.wf, SignOff(request_id=rid(), actor=same_person))
    await cases.sign_off(late.wf, SignOff(request_id=rid(), actor=BUREAU))
    st = await late.until(lambda s: s.stage == "case_open", "signed off")
    assert st.sign_offs == ["township-1", "county-1"]
