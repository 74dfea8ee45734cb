"""Synthetic applicants in the sample county, for the demo, the simulation and benchmarks.

Identity numbers are generated with valid GB 11643 check digits in the sample
county's region code; they belong to nobody.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from models.application import Actor, ApplicationForm, Places
from models.cases import CaseMember, Contact, ContactKind, MemberRole
from models.domain import DocumentKind, EducationLevel, Role
from models.loan import CoBorrower, LoanRequest
from models.privacy import national_id_check_char
from models.programme import Programme
from store.importing import REGISTRY_COLUMNS

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红梅鹏飞晨浩宇欣怡子涵思雨佳琪梓轩一诺"
)
VOCATIONAL_SCHOOL = "阜南县职业教育中心"
UNIVERSITIES = (
    "安徽大学",
    "合肥工业大学",
    "安徽师范大学",
    "阜阳师范大学",
    "安徽农业大学",
    "安徽医科大学",
    "中国科学技术大学",
)
# Their national codes (学校代码): the university that confirms a loan's receipt.
UNIVERSITY_CODES = {
    "安徽大学": "10357",
    "合肥工业大学": "10359",
    "安徽师范大学": "10370",
    "阜阳师范大学": "10371",
    "安徽农业大学": "10364",
    "安徽医科大学": "10366",
    "中国科学技术大学": "10358",
}


@dataclass(frozen=True)
class Village:
    places: Places


# The sample county's seven villages carry a season of up to this many applicants each
# (1,050 in all); a larger one gets more villages and townships. A county with 10,000
# undergraduates from registered poor households has hundreds of villages, not seven
# of 1,430 each (the 10,000-application simulation stalled in a township notice of
# 2,856: BENCHMARKS.md, 2026-12-06, fourth session).
APPLICANTS_PER_VILLAGE = 150
VILLAGES_PER_TOWNSHIP = 10


def _sample_csv() -> str:
    return resources.files("models.sample").joinpath("places.csv").read_text(encoding="utf-8")


def county_places_csv(applicants: int) -> str:
    """The sample county's places, as ``aidflow places import`` reads them, grown for a
    season of ``applicants``: the sample's villages, then villages of their own
    townships (``模拟N镇``, ``VILLAGES_PER_TOWNSHIP`` each) until no village carries
    more than ``APPLICANTS_PER_VILLAGE``. Up to 1,050 applicants: the sample as it is."""
    text = _sample_csv()
    sample = sum(1 for r in csv.DictReader(io.StringIO(text)) if r["level"] == "village")
    needed = -(-applicants // APPLICANTS_PER_VILLAGE) - sample  # ceiling division
    rows = []
    for k in range(-(-max(needed, 0) // VILLAGES_PER_TOWNSHIP)):
        number = k + 1
        township = f"341225{102 + number:03d}000"  # after the sample's 100, 101, 102
        rows.append(
            f"{township},模拟{number}镇,township,341225000000,fpb-sim{number}@funan.example.gov.cn,"
        )
        for j in range(min(VILLAGES_PER_TOWNSHIP, needed - k * VILLAGES_PER_TOWNSHIP)):
            code = f"{township[:9]}{201 + j:03d}"
            rows.append(f"{code},模拟{number}镇{j + 1}村,village,{township},,138{code[-8:]}")
    return text if not rows else text.rstrip("\n") + "\n" + "\n".join(rows) + "\n"


def sample_villages(applicants: int = 0) -> list[Village]:
    """The county's villages (``county_places_csv``), in the file's order."""
    rows = list(csv.DictReader(io.StringIO(county_places_csv(applicants))))
    names = {r["code"]: r["name"] for r in rows}
    county = next(r for r in rows if r["level"] == "county")
    out = []
    for r in rows:
        if r["level"] != "village":
            continue
        township = r["parent_code"]
        out.append(
            Village(
                Places(
                    county_code=county["code"],
                    township_code=township,
                    village_code=r["code"],
                    county_name=county["name"],
                    township_name=names[township],
                    village_name=r["name"],
                )
            )
        )
    return out


def national_id(serial: int, birth_year: int) -> str:
    first17 = f"341225{birth_year}{(serial % 12) + 1:02d}{(serial % 28) + 1:02d}{serial % 1000:03d}"
    return first17 + national_id_check_char(first17)


def school_of(places: Places) -> str:
    """The sample county's high school for a township (one each): its place code."""
    return f"{places.township_code[:9]}-HS"


def school_actor(school: str) -> Actor:
    return Actor(
        id=f"high_school-{school}", name="高中资助办", role=Role.HIGH_SCHOOL, place_code=school
    )


def applicants(
    n: int, season: int, seed: int, programme: str | Programme = "county-subsidy"
) -> list[ApplicationForm]:
    """Forms that pass the programme's intake: its documents, its level, its attributes
    (a programme of the registry by its code, or a definition: one resolved for a round
    gives forms of that round)."""
    from models.programmes import BUILTIN_PROGRAMMES

    definition = BUILTIN_PROGRAMMES[programme] if isinstance(programme, str) else programme
    # One copy set of the first document that satisfies each checklist line.
    documents = {r.any_of[0]: r.copies for r in definition.eligibility.documents}
    by_school = Role.HIGH_SCHOOL in definition.submitted_by
    rng = random.Random(seed)
    villages = sample_villages(n)
    forms = []
    for i in range(1, n + 1):
        v = villages[(i - 1) % len(villages)]
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        form = ApplicationForm(
            programme=definition.code,
            season=season,
            applicant_name=name,
            national_id=national_id(i, season - 19 + rng.randint(-1, 1)),
            phone=f"138{rng.randint(0, 99_999_999):08d}",
            household_no=f"HH{season}{i:05d}",
            places=v.places,
            university=rng.choice(UNIVERSITIES),
            education_level=EducationLevel.UNDERGRADUATE_FULL_TIME,
            freshman=rng.random() < 0.3,
            bank_name="阜南农商银行",
            account_number=f"62302012{i:011d}",
            account_holder=name[0] + "某",
            documents=dict(documents),
        )
        # Only what this programme needs is drawn, after the rest: the county subsidy's
        # applicants stay what they were for the same seed.
        extra: dict[str, object] = {}
        if definition.eligibility.freshman_only:
            extra["freshman"] = True
        if "university_in_province" in definition.amount_attributes:
            extra["university_in_province"] = rng.random() < 0.7
        if definition.round_key:
            # A round's form names it; a cohort takes its own levels (the freshman grant).
            extra["round"] = definition.round_key
            levels = sorted(definition.eligibility.education_levels)
            if EducationLevel.UNDERGRADUATE_FULL_TIME not in levels:
                extra["education_level"] = levels[0]
            if extra.get("education_level") in (
                EducationLevel.SECONDARY_VOCATIONAL,
                EducationLevel.HIGHER_VOCATIONAL,
            ):
                extra["university"] = VOCATIONAL_SCHOOL
        if definition.loan is not None:
            extra |= _loan_extras(form, definition, season, i, rng, documents)
        if by_school:
            extra["places"] = v.places.model_copy(
                update={"school_code": school_of(v.places), "school_name": "县第一中学"}
            )
        forms.append(form.model_copy(update=extra) if extra else form)
    return forms


def _loan_extras(
    form: ApplicationForm,
    programme: Programme,
    season: int,
    serial: int,
    rng: random.Random,
    documents: dict[DocumentKind, int],
) -> dict[str, object]:
    """A loan's request: fees of a public university, an amount within them and the cap,
    a parent as co-borrower; the sample county's students are all registered-poor, so
    each shows the poverty handbook."""
    tuition = rng.choice((4400, 4800, 5000, 5500, 6000))
    lodging = rng.choice((800, 1000, 1200))
    cap = programme.amount_for(season, {"education_level": form.education_level.value})
    asked = min(cap, tuition + lodging) - rng.choice((0, 0, 500, 1000))
    code = UNIVERSITY_CODES[form.university]
    return {
        "loan": LoanRequest(
            requested_cny=asked,
            tuition_cny=tuition,
            lodging_cny=lodging,
            co_borrower=CoBorrower(
                name=form.account_holder,
                national_id=national_id(serial, season - 46),
                relation=rng.choice(("father", "mother")),
            ),
            university_code=code,
        ),
        "places": form.places.model_copy(update={"university_code": code}),
        "documents": {**documents, DocumentKind.POVERTY_HANDBOOK: 1},
    }


def registry_csv(forms: list[ApplicationForm], season: int) -> str:
    """The registered-poor households of these applicants, as the registry import reads them."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(REGISTRY_COLUMNS)
    for f in forms:
        w.writerow(
            [
                f.household_no,
                f.account_holder,
                f.national_id,
                f.places.county_code,
                f.places.township_code,
                f.places.village_code,
                "active",
                season,
            ]
        )
    return out.getvalue()


# One vocational child in this many is missing from the synthetic enrolment registry.
VOCATIONAL_MISSING = 8


def vocational_csv(forms: list[ApplicationForm]) -> str:
    """The vocational enrolment registry of these applicants (year 2 of their school),
    all but every VOCATIONAL_MISSING-th, as ``--kind vocational-enrolment`` reads it."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(("national_id", "name", "school", "education_level", "year_of_study"))
    for i, f in enumerate(forms, start=1):
        if i % VOCATIONAL_MISSING:
            w.writerow([f.national_id, f.applicant_name, f.university, f.education_level.value, 2])
    return out.getvalue()


def load_sample_county(
    engine: Any,
    forms: list[ApplicationForm],
    season: int,
    hash_id: Callable[[str], str],
    folder: Path | None = None,
) -> None:
    """The sample county's places (grown for as many applicants: ``county_places_csv``)
    and the registered households of these applicants, imported as ``aidflow places
    import`` and ``aidflow registry import`` would: the files written to ``folder``
    (kept), or to a temporary one."""
    import tempfile

    from store.coverage import VOCATIONAL_LEVELS, import_enrolment
    from store.importing import import_places, import_registry

    with tempfile.TemporaryDirectory() as tmp:
        where = folder or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        places = where / "places.csv"
        text = county_places_csv(len(forms))
        known = {r["code"] for r in csv.DictReader(io.StringIO(text))}
        strays = sorted({f.places.village_code for f in forms} - known)
        if strays:  # forms drawn for a larger county than these forms make
            raise ValueError(f"villages not in the county of {len(forms)}: {strays[:5]}")
        places.write_text(text, encoding="utf-8")
        import_places(engine, places)
        registry = where / "registry.csv"
        registry.write_text(registry_csv(forms, season), encoding="utf-8")
        import_registry(engine, registry, hash_id, as_of=date(season, 1, 1))
        vocational = [f for f in forms if f.education_level in VOCATIONAL_LEVELS]
        if vocational:
            # The vocational enrolment registry (Rain and Dew's cross-check): every
            # VOCATIONAL_MISSING-th child is not on it yet, for the leading group.
            enrolled = where / "vocational-enrolment.csv"
            enrolled.write_text(vocational_csv(vocational), encoding="utf-8")
            import_enrolment(
                engine, enrolled, hash_id, as_of=date(season, 1, 1), register="vocational"
            )


def pairing_group(
    household: int, departments: int, cadres: int, rng: random.Random
) -> list[CaseMember]:
    """A household's pairing cadres, all of one department (``D001``…), ids unique."""
    unit = f"D{household % departments + 1:03d}"
    return [
        CaseMember(
            actor_id=f"cadre-{unit}-{household * cadres + j}",
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            role=MemberRole.CADRE,
            unit=unit,
        )
        for j in range(cadres)
    ]


def pairing_contact(
    wf: str,
    m: CaseMember,
    day: date,
    kind: ContactKind,
    done: str,
    *,
    gift: int = 0,
    problem: str = "",
) -> Contact:
    """A cadre's contact, logged with their own key (one request id a month and kind)."""
    return Contact(
        request_id=f"{wf}/{m.actor_id}/{day:%Y-%m}/{kind.value}",
        actor=Actor(id=m.actor_id, name=m.name, role=Role.HELPER, place_code=m.unit),
        member=m.actor_id,
        on=day,
        kind=kind,
        done=done,
        gift_value_cny=gift,
        problem_solved=problem,
    )
