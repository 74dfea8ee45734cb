"""Who the simulated county's people are, and what they write.

One naming for every driver (the simulator, the demo, the fault harness): an office's
actor is its role at the application's place, so the same office is the same actor
(four eyes compare actors) whichever driver sends its request.
"""

from __future__ import annotations

import hashlib
import random

from models.application import Actor, DecisionRequest, Places
from models.domain import DecisionKind, Role
from models.ids import applicant_of_application
from models.notice import Evidence
from models.steps import StepBase

REJECT_REASONS = ("家庭经济状况已改善，不符合条件", "非全日制本科在读", "户籍不在本村")
RETURN_REASONS = ("缺少户主户口簿复印件", "申请表签字不全")
OBJECTIONS = ("该户家中有经营性收入，经济条件较好", "该生已于今年退学", "申请人家庭人口信息有误")
UPHELD = "经入户核实情况属实"
DISMISSED = "经入户核实，家庭情况符合条件"
CORRECTED = "已补交"
# The county leading group on an application the registers did not vouch for.
CONFIRM_REASONS = (
    "经入户核实，家庭返贫，尚未录入建档立卡系统",
    "学籍信息未及时更新，已与学校核实在读",
)
CHECK_REJECT_REASONS = ("经核实非建档立卡贫困户", "经学校核实已退学")
BANK = "阜南农商银行"

_NAMES = {
    Role.VILLAGE_COMMITTEE: "村委会主任",
    Role.TOWNSHIP_POVERTY_OFFICE: "乡镇扶贫专干",
    Role.COUNTY_EDUCATION_BUREAU: "县教育局资助中心",
    Role.COUNTY_FINANCE: "县财政局",
    Role.HIGH_SCHOOL: "高中资助办",
    Role.CIVIL_AFFAIRS_BUREAU: "县民政局社会救助股",
    Role.COUNTY_YOUTH_LEAGUE: "团县委",
    Role.PROVINCIAL_YOUTH_LEAGUE: "团省委",
    Role.COUNTY_LEADING_GROUP: "县扶贫开发领导小组",
    Role.COUNTY_POVERTY_OFFICE: "县扶贫办",
}


def official(role: Role, places: Places) -> Actor:
    """The office of ``role`` that holds the application's place."""
    place = places.code_for(role)
    return Actor(
        id=f"{role.value}-{place}", name=_NAMES.get(role, role.value), role=role, place_code=place
    )


def decision(
    step: StepBase, places: Places, decision: DecisionKind, reason: str, request_id: str
) -> DecisionRequest:
    """The word of the office a step waits for (a review, a cross-check's confirmation,
    a university's or a bank's), at the application's place."""
    role = step.actor_role
    assert role is not None, f"nobody acts at {step.stage}"
    return DecisionRequest(
        request_id=request_id,
        actor=official(role, places),
        stage=step.stage,
        decision=decision,
        reason=reason,
    )


def county_office(role: Role, county: str) -> Actor:
    """A county office acting for the whole season (funds requests, arrivals)."""
    return Actor(
        id=f"{role.value}-{county}", name=_NAMES.get(role, role.value), role=role, place_code=county
    )


def applicant(workflow_id: str) -> Actor:
    """The application's own applicant, as their credential names them (the keyed hash
    the workflow id ends with): another's corrects nothing (R10)."""
    return Actor(id=applicant_of_application(workflow_id), name="申请人", role=Role.APPLICANT)


def villager(rng: random.Random) -> Actor:
    return Actor(id=f"villager-{rng.randint(1, 999)}", name="村民", role=Role.PUBLIC)


def phone(rng: random.Random) -> str:
    return f"139{rng.randint(0, 10**8 - 1):08d}"


def account_number(rng: random.Random) -> str:
    """A corrected 一卡通 account (synthetic: the sample bank's prefix)."""
    return f"62302099{rng.randint(0, 10**11 - 1):011d}"


# The synthetic photographs taken, by digest: what an office uploads over HTTP.
PHOTOS: dict[str, bytes] = {}


def notice_photo(notice_id: str, posting: int) -> Evidence:
    """The photograph of a posted notice, as a village would upload it (synthetic: a JPEG
    header and the notice's id, so the same posting has the same photo)."""
    data = b"\xff\xd8\xff\xe0" + f"photo of {notice_id} posting {posting}".encode()
    digest = hashlib.sha256(data).hexdigest()
    PHOTOS[digest] = data
    return Evidence(
        sha256=digest, filename=f"notice-{posting}.jpg", media_type="image/jpeg", size=len(data)
    )
