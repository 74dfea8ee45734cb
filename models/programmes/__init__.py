"""The programme registry: one JSON file a programme, beside this module.

A new programme is a new file (checked against :class:`models.programme.Programme`
when it is loaded); nothing else needs to know it exists. The files are read once, at
import, outside any workflow: workflows get their programme in their input (a released
one by name: ``released/``, ``models/compact.py``).
"""

from __future__ import annotations

import json
from importlib import resources

from models.cases import CaseProgramme
from models.programme import MonthDay, Programme


def _load() -> tuple[dict[str, Programme], dict[str, CaseProgramme]]:
    found: dict[str, Programme] = {}
    cases: dict[str, CaseProgramme] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        # Help that is a case (PROCESS.md §5) is a programme of its own kind.
        programme: Programme | CaseProgramme = (
            CaseProgramme.model_validate(data)
            if data.get("kind") == "case"
            else Programme.model_validate(data)
        )
        if f"{programme.code}.json" != entry.name:
            raise ValueError(
                f"{entry.name} defines {programme.code}: the file must be named after its code"
            )
        if isinstance(programme, CaseProgramme):
            cases[programme.code] = programme
        else:
            found[programme.code] = programme
    return found, cases


REGISTRY, CASE_REGISTRY = _load()
COUNTY_SUBSIDY = REGISTRY["county-subsidy"]
NEW_STUDENT_AID = REGISTRY["new-student-aid"]


def demo_variant(programme: Programme) -> Programme:
    """The demo's programme: the real one with a one-week application window (each
    round's too), so that a season fits into minutes on the compressed calendar.
    Everything else is the real thing."""
    opens = programme.window_opens
    return programme.model_copy(
        update={
            "code": f"{programme.code}-demo",
            "name_zh": f"{programme.name_zh}（演示）",
            "name_en": f"{programme.name_en} (demo)",
            "window_closes": _week_after(opens),
            "rounds": tuple(
                r.model_copy(update={"window_closes": _week_after(r.window_opens)})
                for r in programme.rounds
            ),
        }
    )


def _week_after(opens: MonthDay) -> MonthDay:
    return MonthDay(month=opens.month, day=opens.day + 6)


DEMO_VARIANTS: dict[str, Programme] = {
    f"{code}-demo": demo_variant(p) for code, p in REGISTRY.items()
}
COUNTY_SUBSIDY_DEMO = DEMO_VARIANTS["county-subsidy-demo"]

# What a worker and the clients know: the registry and the demo's variants.
BUILTIN_PROGRAMMES: dict[str, Programme] = {**REGISTRY, **DEMO_VARIANTS}


def definitions_in_force() -> list[Programme | CaseProgramme]:
    """Every definition an application or a case of a built-in programme carries in its
    input: each programme, each of its rounds, the demo's variants, the case programmes."""
    found: list[Programme | CaseProgramme] = []
    for programme in BUILTIN_PROGRAMMES.values():
        found.append(programme)
        found.extend(programme.for_round(r.key) for r in programme.rounds)
    found.extend(CASE_REGISTRY.values())
    return found


def unreleased() -> dict[str, dict[str, object]]:
    """The definitions in force whose released file is missing, by released name: they
    travel whole in every input until ``aidflow release-programmes`` writes them."""
    from models.compact import RELEASED, release_key, without_defaults

    missing: dict[str, dict[str, object]] = {}
    for definition in definitions_in_force():
        bare = without_defaults(definition)
        key = release_key(bare)
        if key not in RELEASED:
            missing[key] = bare
    return missing
