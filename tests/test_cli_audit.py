"""``aidflow audit verify`` through the gateway prints each break as the local check does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from typer.testing import CliRunner

from store.audit import Break, VerifyReport


def test_a_sealed_row_break_from_the_gateway_names_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A payments or applications row that fails its MAC has no audit row id: printed
    through the gateway it read "(row id None)" where the local check names the row."""
    import workers.cli.data as data
    from workers.cli import app

    chain = Break("county-subsidy/2027/341225/a", 7, 3, "hash does not match", "audit_log")
    row = Break(
        "county-subsidy/2027/341225/b",
        None,
        12,
        "applications row county-subsidy/2027/341225/b: sealed fields edited outside aidflow",
        "applications",
    )
    report = VerifyReport(chains=2, rows=30, breaks=[chain, row], sealed_rows=2, unsealed_rows=0)

    def answer(method: str, path: str, **kw: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/v1/audit/verify")
        return {**dataclasses.asdict(report), "ok": False}

    monkeypatch.setattr(data, "gateway_call", answer)
    result = CliRunner().invoke(app, ["audit", "verify", "--season", "2027"])
    assert result.exit_code == 1
    out = result.output
    assert f"BROKEN {chain}" in out and "(row id 7)" in out
    assert f"BROKEN {row.problem}" in out
    assert "row id None" not in out
