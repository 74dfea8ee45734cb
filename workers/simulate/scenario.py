"""What the county tries (the scenario), who applies, and when a person acts."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock
from typing import TypeVar

from models.application import ApplicationForm
from models.calendar import WorkingCalendar
from models.programme import Programme

T = TypeVar("T")

# Mean delays in working days at --officials-delay 1.0 (seeded, exponentially distributed).
MEAN_DELAY_DAYS = {
    # A review, by the level of the office that decides it.
    "review_village": 1.5,
    "review_township": 2.0,
    "review_county": 2.0,
    "receipt": 3.0,  # the student comes to sign for the grant
    "applicant_correction": 2.0,
    "objection_resolution": 2.0,
    "account_correction": 2.0,
    "funds_request": 1.0,
    "notice_posting": 0.5,
    # A confirmation of what happened outside (a university's receipt, a bank's payout).
    "confirmation": 8.0,
}
OFFICE_OPENS = clock(8, 30)
OFFICE_HOURS = 9.0


@dataclass(frozen=True)
class Scenario:
    """What the county wants to try. Rates are per application and step."""

    applications: int
    season: int = 2027
    seed: int = 1
    officials_delay: float = 1.0  # multiplies every mean delay; 0: act the moment a step opens
    objection_rate: float = 0.04  # per public notice
    objection_upheld: float = 0.3
    return_rate: float = 0.08  # village returns for correction
    rejection_rate: float = 0.02  # per review step
    bank_return_rate: float = 0.03  # accounts the bank finds closed
    funds_delay_days: int = 3  # working days between the funds request and their arrival
    repayment_batch_delay: timedelta = timedelta(hours=1)
    concurrency: int = 1000
    programme: str = "county-subsidy"
    round: str = ""  # of a programme with rounds (the freshman grant's cohort)
    unclaimed_rate: float = 0.03  # grants paid by signature that nobody comes to sign for


@dataclass
class Applicant:
    form: ApplicationForm
    submit_at: datetime
    workflow_id: str = ""
    terminal: str | None = None  # paid, rejected, refused at intake
    returned_once: bool = False
    approved_at: datetime | None = None  # county approval: now on the funds path
    requested: bool = False
    # The applicant's own random draws, each keyed by what it decides (and which visit
    # of a stage): they depend neither on the order in which concurrent events of other
    # applicants finish nor on how often a refused request was tried again, so a seed
    # gives the same season.
    seed_key: str = ""
    opened: Counter[str] = field(default_factory=Counter)  # times each stage was opened

    def draw(self, what: str) -> random.Random:
        return random.Random(f"{self.seed_key}/{what}")


def office_instant(
    cal: WorkingCalendar, after: datetime, mean_days: float, rng: random.Random
) -> datetime:
    """When a person acts on something that reached them at ``after``: a whole number
    of working days later (exponential, mean ``mean_days``), within office hours.
    A mean of 0 is "at once" (what the season planner assumes)."""
    if mean_days <= 0:
        return after + timedelta(seconds=1)
    k = int(rng.expovariate(1 / mean_days))
    day = cal.day_of(after)
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    for _ in range(k):
        day += timedelta(days=1)
        while not cal.is_working_day(day):
            day += timedelta(days=1)
    opens = cal.at(day, OFFICE_OPENS)
    closes = opens + timedelta(hours=OFFICE_HOURS)
    at = opens + timedelta(seconds=rng.uniform(0, OFFICE_HOURS * 3600))
    if at <= after:
        if after < closes - timedelta(minutes=5):  # reached them during office hours
            at = after + (closes - after) * rng.uniform(0.05, 1)
        else:  # after hours: the next working day
            day += timedelta(days=1)
            while not cal.is_working_day(day):
                day += timedelta(days=1)
            at = cal.at(day, OFFICE_OPENS) + timedelta(seconds=rng.uniform(0, OFFICE_HOURS * 3600))
    return at.replace(microsecond=0)


def rounds_to_run(programme: Programme, round_: str) -> list[str]:
    """The rounds a simulation runs: the one named, or, for a programme with rounds and
    none named, each of the year's in order (Rain and Dew's spring and autumn)."""
    if round_ or not programme.rounds:
        return [round_]
    return [r.key for r in programme.rounds]
