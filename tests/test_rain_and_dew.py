"""Rain and Dew (PROCESS.md §4.2), the spring round of 2027, end to end on the dev server.

Five households of one village apply (one through the township, with the family's
consent). The automatic cross-check reads the registered-poor registry (its round as of
20 February) and the vocational enrolment registry (as of 1 March): three pass; one is
not on the enrolment registry and the county leading group rejects it; one fell back
into poverty and is not in the registry yet, and the leading group confirms it. The
village posts its notice with the photograph (not without it, and never by itself); a
report proves true against one listed child and the county poverty office cancels the
grant before payment; the poverty office asks the finance bureau for the funds, which
pays onto the card; a report against a paid child cancels the paid grant: its amount
goes onto the recovery list until it is marked recovered.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.report import build_report
from models.application import Actor, CancellationRequest, Consent, DecisionRequest
from models.cases import CaseMember, Handover, MemberRole
from models.domain import DecisionKind, DocumentKind, EducationLevel, Level, Role
from models.ids import recovery_workflow_id, season_workflow_id
from models.notice import NoticePostRequest
from models.programmes import CASE_REGISTRY
from models.recovery import RecoveredRequest
from store.audit import verify
from store.coverage import import_enrolment
from store.importing import import_registry
from store.registry import RegistryReader
from store.tables import AuditEntry
from tests.conftest import AppStack
from tests.support import (
    COUNTY,
    PLACES,
    TOWNSHIP,
    VILLAGE,
    county_official,
    form,
    make_national_id,
    township_official,
    village_official,
)
from tests.test_application_workflow import Case, cst, rid
from workers.client import Refused
from workers.client.cases import CaseClient
from workers.officials.people import notice_photo

RD = "rain-and-dew"
IN_WINDOW = cst(3, 10, 10)
LEADING_GROUP = Actor(
    id="leading-1", name="县扶贫开发领导小组", role=Role.COUNTY_LEADING_GROUP, place_code=COUNTY
)
POVERTY_OFFICE = Actor(
    id="poverty-1", name="县扶贫办", role=Role.COUNTY_POVERTY_OFFICE, place_code=COUNTY
)
FINANCE = Actor(id="finance-1", name="县财政局", role=Role.COUNTY_FINANCE, place_code=COUNTY)


def vocational(serial: int, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "programme": RD,
        "round": "spring",
        "education_level": EducationLevel.SECONDARY_VOCATIONAL,
        "university": "阜南县职业教育中心",
        "documents": {
            DocumentKind.APPLICATION_FORM: 1,
            DocumentKind.HOUSEHOLD_REGISTER_STUDENT: 1,
            DocumentKind.IDENTITY_CARD: 1,
            DocumentKind.STUDENT_CARD: 1,
            DocumentKind.SUBSIDY_CARD_PASSBOOK: 1,
        },
    }
    return form(serial, **(fields | overrides))


def import_registers(app_stack: AppStack, tmp: Path) -> None:
    """The registered-poor households (951, 952, 954, 955: 953's fell back into poverty
    after the round) and the vocational enrolment (all but 952)."""
    households = tmp / "households.csv"
    lines = ["household_no,head_name,member_ids,county_code,township_code,village_code,status,year"]
    lines += [
        f"HH{s:05d},家长{s},{make_national_id(s)},{COUNTY},{TOWNSHIP},{VILLAGE},active,2026"
        for s in (951, 952, 954, 955)
    ]
    households.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hash_id = app_stack.deps.keys.hash_id
    report = import_registry(app_stack.engine, households, hash_id, as_of=date(2027, 2, 20))
    assert report.imported == 4 and not report.problems
    enrolled = tmp / "vocational.csv"
    lines = ["national_id,name,school,education_level,year_of_study"]
    lines += [
        f"{make_national_id(s)},学生{s},阜南县职业教育中心,secondary_vocational,2"
        for s in (951, 953, 954, 955)
    ]
    enrolled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_enrolment(
        app_stack.engine, enrolled, hash_id, as_of=date(2027, 3, 1), register="vocational"
    )
    assert report.imported == 4 and not report.problems


async def move_clock(stack: AppStack, env: WorkflowEnvironment, wf: str, to: datetime) -> None:
    handle: WorkflowHandle[Any, Any] = stack.api.client.get_workflow_handle(wf)
    delta = to - await env.get_current_time(handle)
    if delta > timedelta(0):
        await env.fast_forward(handle, delta)


async def test_rain_and_dew_spring_round_from_cross_check_to_recovery(
    app_stack: AppStack, ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    api, engine = app_stack.api, app_stack.engine
    import_registers(app_stack, tmp_path)
    reader = RegistryReader(engine)
    api._lookup_applications, api._claim_application = reader.applications, reader.claim

    # The round: nobody applies before the county poverty office opens it.
    with pytest.raises(Refused, match="2027-spring of rain-and-dew has not been opened"):
        await api.submit(vocational(951), now=IN_WINDOW)
    with pytest.raises(Refused, match="needs county_poverty_office") as wrong:
        await api.open_round(RD, 2027, COUNTY, county_official(), date(2027, 3, 1), round_="spring")
    assert wrong.value.kind == "forbidden"
    await move_clock(
        app_stack, ts_env, season_workflow_id(RD, 2027, COUNTY, "spring"), cst(3, 2, 9)
    )
    opened = await api.open_round(
        RD, 2027, COUNTY, POVERTY_OFFICE, date(2027, 3, 1), round_="spring"
    )
    assert opened.townships_told >= 1 and opened.opening.actor.id == "poverty-1"
    again = await api.open_round(
        RD, 2027, COUNTY, POVERTY_OFFICE, date(2027, 3, 2), round_="spring"
    )
    assert again.opening.national_opened_on == date(2027, 3, 1)  # the first opening stands

    # Intake: an official submits for the family only with its consent.
    with pytest.raises(Refused, match="consent: township_poverty_office submits for the family"):
        await api.submit(vocational(952), submitted_by=township_official(), now=IN_WINDOW)
    consent = Consent(given_by="家长952", relation="母亲", given_at=cst(3, 9, 15))
    paid = Case(api, ts_env, await api.submit(vocational(951), now=IN_WINDOW))
    not_enrolled = Case(
        api,
        ts_env,
        await api.submit(
            vocational(952, consent=consent), submitted_by=township_official(), now=IN_WINDOW
        ),
    )
    fell_back = Case(api, ts_env, await api.submit(vocational(953), now=IN_WINDOW))
    cancelled = Case(api, ts_env, await api.submit(vocational(954), now=IN_WINDOW))
    recovered = Case(api, ts_env, await api.submit(vocational(955), now=IN_WINDOW))
    cases = [paid, not_enrolled, fell_back, cancelled, recovered]
    trail = await api.trail(not_enrolled.wf)
    assert (
        trail[0].detail["consent_given_by"] == "家长952" and "母亲家长952同意" in trail[0].summary
    )

    # The cross-check: three pass by themselves, at once, naming the snapshots read.
    for c in (paid, cancelled, recovered):
        st = await c.wait_for(lambda s: s.stage == "village_notice", "past the cross-check")
        assert st.amount_cny == 3000
    check = next(e for e in await api.trail(paid.wf) if e.kind == "cross_check")
    assert check.actor.id == "aidflow" and check.detail["passed"] is True
    assert check.detail["snapshots"] == {
        "poor_households": "2027-02-20",
        "vocational_enrolment": "2027-03-01",
    }
    # Two do not: not refused, they wait for the leading group, saying why.
    st = await not_enrolled.wait_for(
        lambda s: s.waiting_for == "county_leading_group", "waiting for the leading group"
    )
    assert "not on the vocational enrolment registry" in st.details_en
    st = await fell_back.wait_for(
        lambda s: s.waiting_for == "county_leading_group", "waiting for the leading group"
    )
    assert "not a member of any household on the registered-poor registry" in st.details_en

    def word(decision: DecisionKind, reason: str, actor: Actor = LEADING_GROUP) -> Any:
        return DecisionRequest(
            request_id=rid(), actor=actor, stage="registry_check", decision=decision, reason=reason
        )

    with pytest.raises(Refused, match="reason is required to approve"):
        await api.decide(fell_back.wf, word(DecisionKind.APPROVE, ""))
    with pytest.raises(Refused, match="needs county_leading_group") as wrong:
        await api.decide(fell_back.wf, word(DecisionKind.APPROVE, "返贫", county_official()))
    assert wrong.value.kind == "forbidden"
    await api.decide(not_enrolled.wf, word(DecisionKind.REJECT, "经学校核实已退学"))
    await not_enrolled.at_stage("rejected")
    await api.decide(fell_back.wf, word(DecisionKind.APPROVE, "经入户核实，2月返贫，尚未录入系统"))
    await fell_back.at_stage("village_notice")
    confirmed = next(e for e in await api.trail(fell_back.wf) if e.kind == "decision")
    assert confirmed.actor.role is Role.COUNTY_LEADING_GROUP
    assert confirmed.detail["reason"] == "经入户核实，2月返贫，尚未录入系统"

    # The village notice: never posted by itself; posted by the village with its photo.
    listed = [paid, fell_back, cancelled, recovered]
    for c in listed:
        st = await c.wait_for(lambda s: "upload a photograph" in s.details_en, "notice ready")
        assert st.waiting_for == "village_committee"
        await c.advance_to(cst(3, 12, 9))  # past any automatic time (the next morning's)
    assert (await paid.status()).notice is None
    notice = api.notice_id(RD, 2027, Level.VILLAGE, VILLAGE, round_="spring")
    with pytest.raises(Refused, match="evidence: this programme keeps a photograph"):
        await api.post_notice(notice, NoticePostRequest(request_id=rid(), actor=village_official()))
    photo = notice_photo(notice, 1)
    posted = await api.post_notice(
        notice, NoticePostRequest(request_id=rid(), actor=village_official(), evidence=[photo])
    )
    assert "4 application(s)" in posted.message
    st = await paid.wait_for(lambda s: s.notice is not None, "posted")
    assert st.notice is not None
    ends = st.notice.ends_at
    on_trail = next(e for e in await api.trail(paid.wf) if e.kind == "notice_posted")
    assert on_trail.detail["evidence_sha256"] == [photo.sha256]

    # A report proves true against a listed child: the county poverty office cancels.
    with pytest.raises(Refused, match="needs county_poverty_office") as wrong:
        await api.cancel(
            cancelled.wf,
            CancellationRequest(request_id=rid(), actor=village_official(), reason="举报属实"),
        )
    assert wrong.value.kind == "forbidden"
    await api.cancel(
        cancelled.wf,
        CancellationRequest(
            request_id=rid(),
            actor=POVERTY_OFFICE,
            reason="经核实该生未实际在校就读",
            report_ref="举报-2027-031",
        ),
    )
    st = await cancelled.at_stage("cancelled")
    assert st.waiting_for == ""
    entry = next(e for e in await api.trail(cancelled.wf) if e.kind == "cancelled")
    assert entry.actor.id == "poverty-1" and entry.detail["report_ref"] == "举报-2027-031"

    # The notice ends; the poverty office asks the finance bureau, which pays.
    for c in (paid, fell_back, recovered):
        await c.advance_to(ends + timedelta(minutes=1))
        await c.at_stage("awaiting_funds")
    await move_clock(
        app_stack, ts_env, season_workflow_id(RD, 2027, COUNTY, "spring"), ends + timedelta(hours=1)
    )
    summary = await api.request_funds(RD, 2027, COUNTY, POVERTY_OFFICE, round_="spring")
    assert summary.count == 3 and summary.total_cny == 9000
    # On the funds request (the cancellation looks its roster up), its payment is under
    # way: cancelled once paid, not now.
    with pytest.raises(Refused, match=r"on funds request .*its payment is under way"):
        await api.cancel(
            fell_back.wf,
            CancellationRequest(request_id=rid(), actor=POVERTY_OFFICE, reason="举报"),
        )
    await fell_back.wait_for(lambda s: "on funds request" in s.details_en, "on the request")
    await api.funds_arrived(
        RD, 2027, COUNTY, FINANCE, summary.request_id, 9000, "CZ-RD-1", round_="spring"
    )
    for c in (paid, fell_back, recovered):
        await c.at_stage("paid")

    # A report against a paid child: the paid grant is cancelled, onto the recovery list.
    first = await api.cancel(
        recovered.wf,
        CancellationRequest(request_id=rid(), actor=POVERTY_OFFICE, reason="家庭已脱贫隐瞒收入"),
    )
    assert first.stage == "recovery_open"
    with pytest.raises(Refused, match="already cancelled"):
        await api.cancel(
            recovered.wf,
            CancellationRequest(request_id=rid(), actor=POVERTY_OFFICE, reason="再次举报"),
        )
    for _ in range(300):
        report = build_report(engine, RD, 2027, COUNTY, round_="spring")
        if report.recoveries:
            break
        await asyncio.sleep(0.1)
    assert [(x["workflow_id"], x["status"], x["amount_cny"]) for x in report.recoveries] == [
        (recovered.wf, "open", 3000)
    ]
    assert report.by_stage == {"paid": 3, "rejected": 1, "cancelled": 1}
    with pytest.raises(Refused, match="amount_cny: 1000 is not the 3000 CNY paid"):
        await api.mark_recovered(
            recovered.wf,
            RecoveredRequest(
                request_id=rid(), actor=POVERTY_OFFICE, amount_cny=1000, reference="x"
            ),
        )
    await api.mark_recovered(
        recovered.wf,
        RecoveredRequest(
            request_id=rid(), actor=POVERTY_OFFICE, amount_cny=3000, reference="退款单 2027-88"
        ),
    )
    for _ in range(300):
        status = await api.recovery_status(recovered.wf)
        if status.recovered_at is not None:
            break
        await asyncio.sleep(0.1)
    assert status.recovered is not None and status.recovered.reference == "退款单 2027-88"
    for _ in range(300):
        report = build_report(engine, RD, 2027, COUNTY, round_="spring")
        if report.recoveries[0]["status"] == "recovered":
            break
        await asyncio.sleep(0.1)
    assert report.recoveries[0]["reference"] == "退款单 2027-88"
    # Both are in the application's audit chain, after its last event; it verifies.
    checked = verify(engine, app_stack.deps.keys.audit, programme=RD)
    assert not checked.breaks, checked.breaks
    # Deleting them is seen: the application's row (sealed) counts them.
    with engine.begin() as conn:
        conn.execute(
            delete(AuditEntry.__table__).where(  # type: ignore[attr-defined]
                AuditEntry.__table__.c.workflow_id == recovered.wf,  # type: ignore[attr-defined]
                AuditEntry.__table__.c.kind.in_(["cancelled", "recovered"]),  # type: ignore[attr-defined]
            )
        )
    broken = verify(engine, app_stack.deps.keys.audit, programme=RD).breaks
    assert [b.workflow_id for b in broken] == [recovered.wf], broken

    # The same child in the autumn round of the same year: paid once a year.
    autumn = vocational(951, round="autumn")
    with pytest.raises(Refused, match="one a student a year"):
        await api.submit(autumn, now=cst(9, 10, 10))
    for c in cases:
        assert (await c.status()).stage in ("paid", "rejected", "cancelled")
    await paid.save_history("rain_and_dew_paid")
    await paid.save_history("rain_and_dew_notice", notice)
    await paid.save_history("rain_and_dew_recovery", recovery_workflow_id(recovered.wf))


async def test_the_pairing_cadre_submits_for_the_family(
    app_stack: AppStack, ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """PROCESS.md §4.2: the pairing cadre may submit for the family, with its consent;
    a helper in no open pairing case of the household may not."""
    api = app_stack.api
    # Its own student (the other tests' share this server and its workflow ids).
    households = tmp_path / "households.csv"
    households.write_text(
        "household_no,head_name,member_ids,county_code,township_code,village_code,status,year\n"
        f"HH00956,家长956,{make_national_id(956)},{COUNTY},{TOWNSHIP},{VILLAGE},active,2026\n",
        encoding="utf-8",
    )
    hash_id = app_stack.deps.keys.hash_id
    assert import_registry(app_stack.engine, households, hash_id, as_of=date(2027, 2, 20)).imported
    reader = RegistryReader(app_stack.engine)
    api._pairing_cadre = reader.pairing_cadre
    try:
        await _pairing_cadre_submits(app_stack, ts_env, reader)
    finally:
        api._pairing_cadre = None


async def _pairing_cadre_submits(
    app_stack: AppStack, ts_env: WorkflowEnvironment, reader: RegistryReader
) -> None:
    api = app_stack.api
    await api.ensure_season(RD, 2027, COUNTY, round_="spring")
    await move_clock(
        app_stack, ts_env, season_workflow_id(RD, 2027, COUNTY, "spring"), cst(3, 2, 9)
    )
    await api.open_round(RD, 2027, COUNTY, POVERTY_OFFICE, date(2027, 3, 1), round_="spring")
    # The household of 956 is paired with cadre-9 for 2027.
    cases = CaseClient(api, CASE_REGISTRY)
    pairing = await cases.open_case(
        "cadre-pairing",
        2027,
        PLACES,
        name="家长956",
        national_id=make_national_id(956),
        members=[CaseMember(actor_id="cadre-9", name="干部9", role=MemberRole.CADRE, unit="D01")],
        opened_by=county_official(),
        now=cst(3, 1, 9),
    )
    student = app_stack.deps.keys.hash_id(make_national_id(956))
    for _ in range(100):  # the case's group is on record after its first write
        if reader.pairing_cadre("cadre-9", student, 2027, COUNTY):
            break
        await asyncio.sleep(0.1)

    def cadre(n: int) -> Actor:
        return Actor(id=f"cadre-{n}", name=f"干部{n}", role=Role.HELPER, place_code="D01")

    consent = Consent(given_by="家长956", relation="父亲", given_at=cst(3, 9, 15))
    with pytest.raises(Refused, match="helper cadre-8 is not the pairing cadre"):
        await api.submit(vocational(956, consent=consent), submitted_by=cadre(8), now=IN_WINDOW)
    with pytest.raises(Refused, match="consent: helper submits for the family only"):
        await api.submit(vocational(956), submitted_by=cadre(9), now=IN_WINDOW)
    wf = await api.submit(vocational(956, consent=consent), submitted_by=cadre(9), now=IN_WINDOW)
    trail = await api.trail(wf)
    assert trail[0].actor.id == "cadre-9" and trail[0].detail["consent_given_by"] == "家长956"
    assert not reader.pairing_cadre("cadre-9", student, 2027, "341226000000")  # elsewhere
    # Handed over, the former cadre is no longer the family's: the case's row keeps
    # everyone who has been in its group, the check only who is in it now.
    await cases.hand_over(
        pairing,
        Handover(
            request_id=rid(),
            actor=county_official(),
            leaving="cadre-9",
            joining=CaseMember(actor_id="cadre-7", name="干部7", role=MemberRole.CADRE, unit="D01"),
            reason="工作调动",
        ),
    )
    for _ in range(100):
        if reader.pairing_cadre("cadre-7", student, 2027, COUNTY):
            break
        await asyncio.sleep(0.1)
    assert reader.pairing_cadre("cadre-7", student, 2027, COUNTY)
    assert not reader.pairing_cadre("cadre-9", student, 2027, COUNTY)
