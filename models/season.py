"""The season key (R12): a programme runs in seasons, a year and, for programmes that
take applications more than once a year, a round within it.

Written ``2027`` for a programme with one round a year (so its ids read as before) and
``2027-spring`` for a round; the same text is in workflow ids, payment keys, batch
ids, report names and commands.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

_KEY = re.compile(r"^(\d{4})(?:-([a-z]{1,16}))?$")


class SeasonKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int = Field(ge=2000, le=2100)
    round: str = Field(default="", pattern=r"^[a-z]{0,16}$")

    def __str__(self) -> str:
        return f"{self.year}-{self.round}" if self.round else str(self.year)

    @classmethod
    def parse(cls, text: str) -> SeasonKey:
        m = _KEY.match(text.strip())
        if m is None:
            raise ValueError(
                f"{text!r} is not a season: write the year (2027) or year-round (2027-spring)"
            )
        return cls(year=int(m.group(1)), round=m.group(2) or "")


def season_label(year: int, round_: str = "") -> str:
    return str(SeasonKey(year=year, round=round_))
