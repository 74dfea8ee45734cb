"""Workflow ids: readable for operators, never an identity number (R9)."""

from __future__ import annotations


def season_workflow_id(programme: str, season: int, county_code: str) -> str:
    return f"season/{programme}/{season}/{county_code[:6]}"


def payout_batch_workflow_id(batch_id: str) -> str:
    return f"payout/{batch_id}"
