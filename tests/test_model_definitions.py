"""Every pydantic model of ``models/`` is built when its module is imported. One left to
build itself on first use does so wherever that use is: in the workflow sandbox it could
not resolve the names its fields use, and a county's season failed every workflow task
of its continue-as-new (``SeasonCarry``, the fault harness at 1,000 applications)."""

from __future__ import annotations

import base64
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import models

HISTORIES = Path(__file__).parent / "histories"


def test_every_model_is_built_on_import() -> None:
    for info in pkgutil.walk_packages(models.__path__, "models."):
        importlib.import_module(info.name)
    unbuilt = sorted(
        f"{name}.{attr}"
        for name, module in list(sys.modules.items())
        if name == "models" or name.startswith("models.")
        for attr, cls in vars(module).items()
        if isinstance(cls, type)
        and issubclass(cls, BaseModel)
        and cls.__module__ == name
        and not cls.__pydantic_complete__
    )
    assert not unbuilt, f"call model_rebuild() where the names are defined: {unbuilt}"


def test_a_definition_read_back_is_one_object_for_every_input() -> None:
    """Each application carried its own copy of its programme (about 25 KiB of a cached
    workflow's objects, issue 20): read back through the data converter, the same
    definition is one object; another definition is another; the JSON is unchanged."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from models.application import ApplicationInput

    converter = pydantic_data_converter.payload_converter
    history = json.loads((HISTORIES / "paid@baseline.json").read_text(encoding="utf-8"))
    start = history["events"][0]["workflowExecutionStartedEventAttributes"]
    first = ApplicationInput.model_validate_json(
        base64.b64decode(start["input"]["payloads"][0]["data"])
    )
    second = first.model_copy(update={"workflow_id": "another", "amount_cny": 1000})
    payloads = converter.to_payloads([first, second])
    a, b = converter.from_payloads(payloads, [ApplicationInput, ApplicationInput])
    assert a.programme is b.programme and a.programme == first.programme
    assert (a.workflow_id, b.amount_cny) == (first.workflow_id, 1000)
    renamed = first.model_copy(
        update={"programme": first.programme.model_copy(update={"name_en": "Another"})}
    )
    (c,) = converter.from_payloads(converter.to_payloads([renamed]), [ApplicationInput])
    assert c.programme is not a.programme and c.programme.name_en == "Another"
    assert converter.to_payloads([a])[0].data == payloads[0].data


def test_a_start_whose_schedule_is_not_its_programmes_is_refused() -> None:
    """The schedule rides in the start (models/schedule.py): one of another calendar, or
    without a fixed date of the programme, is refused with the input, naming both."""
    from pydantic import ValidationError

    from models.application import ApplicationInput

    history = json.loads((HISTORIES / "paid@baseline.json").read_text(encoding="utf-8"))
    start = history["events"][0]["workflowExecutionStartedEventAttributes"]
    raw = json.loads(base64.b64decode(start["input"]["payloads"][0]["data"]))
    ApplicationInput.model_validate(raw)  # as recorded: valid
    raw["calendar"] = "compressed"
    raw["schedule"]["fixed_dates"] = raw["schedule"]["fixed_dates"][1:]
    with pytest.raises(ValidationError) as refused:
        ApplicationInput.model_validate(raw)
    assert "of calendar state-council, not compressed" in str(refused.value)
    assert "the programme's are" in str(refused.value)
