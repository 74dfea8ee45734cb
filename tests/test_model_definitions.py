"""Every pydantic model of ``models/`` is built when its module is imported. One left to
build itself on first use does so wherever that use is: in the workflow sandbox it could
not resolve the names its fields use, and a county's season failed every workflow task
of its continue-as-new (``SeasonCarry``, the fault harness at 1,000 applications)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from pydantic import BaseModel

import models


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
