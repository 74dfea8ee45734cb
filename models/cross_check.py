"""What Rain and Dew's cross-check asks of the registries, and what they answer.

The check is an activity (``activities/cross_check.py``); its answer stays in the
application's history: which registers, which snapshots, what each found."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from models.domain import EducationLevel
from models.steps.cross_check import Register


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrossCheckRequest(_Model):
    national_id_hash: str
    household_no: str
    village_code: str
    county_code: str
    against: tuple[Register, ...]
    education_levels: tuple[EducationLevel, ...]
    years_of_study: tuple[int, ...]
    on: date  # the newest snapshot on or before this day is read


class Finding(_Model):
    """One register's answer: passed or not, the snapshot read, and why, in both languages."""

    registry: Register
    passed: bool
    as_of: date | None  # None: no snapshot of the register was imported
    zh: str
    en: str


class CrossCheckAnswer(_Model):
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    def snapshots(self) -> dict[str, str]:
        return {f.registry: f.as_of.isoformat() if f.as_of else "" for f in self.findings}
