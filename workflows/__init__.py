"""Temporal workflows. Deterministic: see each module's docstring."""

from workflows.application import ApplicationWorkflow
from workflows.payout import PayoutBatchWorkflow
from workflows.season import SeasonWorkflow

ALL_WORKFLOWS: list[type] = [ApplicationWorkflow, SeasonWorkflow, PayoutBatchWorkflow]

__all__ = ["ALL_WORKFLOWS", "ApplicationWorkflow", "PayoutBatchWorkflow", "SeasonWorkflow"]
