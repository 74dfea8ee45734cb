"""A released programme definition travels by its name alone (issue 20), and a history
that names one always finds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from models import compact
from models.compact import RELEASED, Compact, compact_or_released, release_key, without_defaults
from models.programme import Programme
from models.programmes import COUNTY_SUBSIDY, definitions_in_force, unreleased

ADAPTER: TypeAdapter[Programme] = TypeAdapter(Compact[Programme])


def test_every_definition_in_force_is_released() -> None:
    missing = sorted(unreleased())
    assert not missing, (
        f"run `aidflow release-programmes` and commit models/programmes/released/: {missing}"
    )
    assert len(definitions_in_force()) >= 10


def test_a_released_definition_travels_by_its_name_and_reads_back_as_itself() -> None:
    sent = ADAPTER.dump_python(COUNTY_SUBSIDY, mode="json")
    assert sent == {"released": release_key(without_defaults(COUNTY_SUBSIDY))}
    assert len(json.dumps(sent)) < 60
    assert ADAPTER.validate_python(sent) == COUNTY_SUBSIDY


def test_a_definition_not_released_travels_whole() -> None:
    changed = COUNTY_SUBSIDY.model_copy(update={"name_en": "County study subsidy (a site's own)"})
    sent = ADAPTER.dump_python(changed, mode="json")
    assert "released" not in sent and sent["name_en"].endswith("(a site's own)")
    assert ADAPTER.validate_python(sent) == changed


def test_a_name_that_is_not_released_is_refused_with_it() -> None:
    with pytest.raises(ValidationError, match=r"county-subsidy@0000.*not among the released"):
        ADAPTER.validate_python({"released": "county-subsidy@0000"})
    with pytest.raises(ValidationError, match=r"'5' is not among the released"):
        ADAPTER.validate_python({"released": 5})
    with pytest.raises(ValidationError, match=r"'xxxx+' is not among") as huge:
        ADAPTER.validate_python({"released": "x" * 100_000})
    assert len(str(huge.value)) < 2_000  # a forged name is not echoed whole


def test_a_released_file_edited_after_its_release_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, data = next(iter(RELEASED.items()))
    (tmp_path / f"{name}.json").write_text(json.dumps({**data, "name_en": "edited"}), "utf-8")
    monkeypatch.setattr(compact, "RELEASED_DIR", tmp_path)
    with pytest.raises(ValueError, match="never edited"):
        compact._load_released()


def test_what_the_serializer_sends_is_what_the_released_file_holds() -> None:
    for definition in definitions_in_force():
        sent = compact_or_released(definition)
        assert RELEASED[sent["released"]] == without_defaults(definition)


def test_a_signature_covers_a_definition_the_same_whether_it_is_released_here_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway and a worker of two releases, one of which has a definition's file and
    one not, agree on the digest of the body that carries it (the gateway signs it, the
    worker checks it): a body's digest names a definition by its content either way."""
    from pydantic import BaseModel

    from models.authority import body_digest

    class Carrier(BaseModel):
        programme: Compact[Programme]

    body = Carrier(programme=COUNTY_SUBSIDY)
    released_here = body_digest([body])
    monkeypatch.setattr(compact, "RELEASED", {})
    assert "released" not in body.model_dump(mode="json")["programme"]  # travels whole
    assert body_digest([body]) == released_here
    changed = Carrier(programme=COUNTY_SUBSIDY.model_copy(update={"name_en": "changed"}))
    assert body_digest([changed]) != released_here
