"""The programme registry: one JSON file a programme, beside this module.

A new programme is a new file (checked against :class:`models.programme.Programme`
when it is loaded); nothing else needs to know it exists. The files are read once, at
import, outside any workflow: workflows get their programme in their input.
"""

from __future__ import annotations

import json
from importlib import resources

from models.programme import MonthDay, Programme


def _load() -> dict[str, Programme]:
    found: dict[str, Programme] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        programme = Programme.model_validate(json.loads(entry.read_text(encoding="utf-8")))
        if f"{programme.code}.json" != entry.name:
            raise ValueError(
                f"{entry.name} defines {programme.code}: the file must be named after its code"
            )
        found[programme.code] = programme
    return found


REGISTRY: dict[str, Programme] = _load()
COUNTY_SUBSIDY = REGISTRY["county-subsidy"]
NEW_STUDENT_AID = REGISTRY["new-student-aid"]

# The demo's programme: the county subsidy with a one-week application window, so that a
# season fits into minutes on the compressed calendar. Everything else is the real thing.
COUNTY_SUBSIDY_DEMO = COUNTY_SUBSIDY.model_copy(
    update={
        "code": "county-subsidy-demo",
        "name_zh": "县助学补贴（演示）",
        "name_en": "County study subsidy (demo)",
        "window_closes": MonthDay(month=8, day=7),
    }
)

# What a worker and the clients know: the registry and the demo's variant.
BUILTIN_PROGRAMMES: dict[str, Programme] = {
    **REGISTRY,
    COUNTY_SUBSIDY_DEMO.code: COUNTY_SUBSIDY_DEMO,
}
