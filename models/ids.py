"""Workflow ids: readable for operators, never an identity number (R9).

The season part is the season key (R12): ``2027``, or ``2027-spring`` for a round.
"""

from __future__ import annotations

from typing import NamedTuple

from models.season import SeasonKey, season_label


def application_workflow_id(
    programme: str, season: int, county_code: str, id_hash: str, round_: str = ""
) -> str:
    return f"{programme}/{season_label(season, round_)}/{county_code[:6]}/{id_hash}"


class ApplicationId(NamedTuple):
    programme: str
    season: SeasonKey
    county6: str  # the county code's first six digits
    id_hash: str


def parse_application_id(workflow_id: str) -> ApplicationId | None:
    """What an application's id says (the inverse of ``application_workflow_id``); None
    for an id that is not one."""
    parts = workflow_id.split("/")
    if len(parts) != 4:
        return None
    try:
        season = SeasonKey.parse(parts[1])
    except ValueError:
        return None
    return ApplicationId(parts[0], season, parts[2], parts[3])


def applicant_actor_id(id_hash: str) -> str:
    """The actor id an applicant's own credential carries: their identity number's keyed
    hash (R10: an applicant's credential stands for one student)."""
    return f"applicant:{id_hash}"


def applicant_of_application(workflow_id: str) -> str:
    """The actor id of an application's own applicant: its id ends with the hash."""
    return applicant_actor_id(workflow_id.rsplit("/", 1)[-1])


def season_workflow_id(programme: str, season: int, county_code: str, round_: str = "") -> str:
    return f"season/{programme}/{season_label(season, round_)}/{county_code[:6]}"


def payout_batch_workflow_id(batch_id: str) -> str:
    return f"payout/{batch_id}"


def roster_workflow_id(programme: str, season: int, county_code: str, round_: str = "") -> str:
    """A cohort's roster: ``roster/freshman-grant/2027-undergraduate/620721``."""
    return f"roster/{programme}/{season_label(season, round_)}/{county_code[:6]}"


def tasks_workflow_id(programme: str, year: int, county_code: str) -> str:
    """A county's dated tasks of a programme's year: ``tasks/freshman-grant/2027/620721``."""
    return f"tasks/{programme}/{year}/{county_code[:6]}"


def recovery_workflow_id(application_id: str) -> str:
    """A paid grant cancelled, until its money is recovered (追回):
    ``recovery/rain-and-dew/2027-spring/341225/<hash>``."""
    return f"recovery/{application_id}"
