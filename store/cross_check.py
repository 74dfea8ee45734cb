"""Rain and Dew's automatic cross-check (PROCESS.md §4.2) against two imported registers:
the registered-poor households (the registry's latest round, dated by its import) and the
vocational enrolment registry (the newest snapshot on or before the check). Read-only."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from models.cross_check import CrossCheckAnswer, CrossCheckRequest, Finding
from models.domain import EDUCATION_LEVEL_ZH
from store.tables import Enrolment, Household, HouseholdMember

_ENROL = Enrolment.__table__  # type: ignore[attr-defined]
_MEMBERS = HouseholdMember.__table__  # type: ignore[attr-defined]
_HOUSEHOLDS = Household.__table__  # type: ignore[attr-defined]


def cross_check(engine: Engine, req: CrossCheckRequest) -> CrossCheckAnswer:
    findings: list[Finding] = []
    with engine.connect() as conn:
        if "poor_households" in req.against:
            findings.append(_household(conn, req))
        if "vocational_enrolment" in req.against:
            findings.append(_enrolment(conn, req))
    return CrossCheckAnswer(findings=findings)


def _household(conn: object, req: CrossCheckRequest) -> Finding:
    row = conn.execute(  # type: ignore[attr-defined]
        select(
            _HOUSEHOLDS.c.household_no,
            _HOUSEHOLDS.c.village_code,
            _HOUSEHOLDS.c.status,
            _HOUSEHOLDS.c.as_of,
        )
        .join(_MEMBERS, _MEMBERS.c.household_no == _HOUSEHOLDS.c.household_no)
        .where(_MEMBERS.c.national_id_hash == req.national_id_hash)
    ).first()
    if row is None:
        as_of = conn.execute(  # type: ignore[attr-defined]
            select(func.max(_HOUSEHOLDS.c.as_of)).where(
                _HOUSEHOLDS.c.county_code == req.county_code
            )
        ).scalar()
        return Finding(
            registry="poor_households",
            passed=False,
            as_of=as_of,
            zh="不在建档立卡贫困户名单中",
            en="not a member of any household on the registered-poor registry",
        )
    household_no, village, status, as_of = row
    zh: list[str] = []
    en: list[str] = []
    if status != "active":
        zh.append(f"贫困户 {household_no} 状态为 {status}")
        en.append(f"household {household_no} is {status}, not active")
    if household_no != req.household_no:
        zh.append(f"登记在贫困户 {household_no}，而非 {req.household_no}")
        en.append(f"registered in household {household_no}, not {req.household_no}")
    if village != req.village_code:
        zh.append(f"户籍在村 {village}")
        en.append(f"the household is registered in village {village}, not {req.village_code}")
    return Finding(
        registry="poor_households",
        passed=not en,
        as_of=as_of,
        zh="；".join(zh) or f"建档立卡贫困户 {household_no}",
        en="; ".join(en) or f"registered-poor household {household_no}",
    )


def _enrolment(conn: object, req: CrossCheckRequest) -> Finding:
    as_of = conn.execute(  # type: ignore[attr-defined]
        select(func.max(_ENROL.c.as_of)).where(
            _ENROL.c.kind == "vocational", _ENROL.c.as_of <= req.on
        )
    ).scalar()
    if as_of is None:
        return Finding(
            registry="vocational_enrolment",
            passed=False,
            as_of=None,
            zh=f"{req.on} 前未导入职业教育学籍库",
            en=f"no vocational enrolment registry imported on or before {req.on}",
        )
    row = conn.execute(  # type: ignore[attr-defined]
        select(_ENROL.c.school, _ENROL.c.education_level, _ENROL.c.year_of_study).where(
            _ENROL.c.kind == "vocational",
            _ENROL.c.as_of == as_of,
            _ENROL.c.national_id_hash == req.national_id_hash,
        )
    ).first()
    if row is None:
        return Finding(
            registry="vocational_enrolment",
            passed=False,
            as_of=as_of,
            zh="职业教育学籍库中无此学生",
            en="not on the vocational enrolment registry",
        )
    school, level, year = row
    levels = {lv.value for lv in req.education_levels}
    zh: list[str] = []
    en: list[str] = []
    if level not in levels:
        zh.append(f"学籍层次为 {level}")
        en.append(f"enrolled at level {level}, not {' or '.join(sorted(levels))}")
    if year not in req.years_of_study:
        zh.append(f"在读 {year} 年级")
        en.append(f"in year {year}, not years {', '.join(map(str, req.years_of_study))}")
    level_zh = next((z for lv, z in EDUCATION_LEVEL_ZH.items() if lv.value == level), level)
    return Finding(
        registry="vocational_enrolment",
        passed=not en,
        as_of=as_of,
        zh="；".join(zh) or f"{school}{level_zh}{year}年级在读",
        en="; ".join(en) or f"enrolled at {school}, {level}, year {year}",
    )
