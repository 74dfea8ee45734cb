"""Temporal workflows. Deterministic: see each module's docstring."""

from workflows.application import ApplicationWorkflow

ALL_WORKFLOWS: list[type] = [ApplicationWorkflow]

__all__ = ["ALL_WORKFLOWS", "ApplicationWorkflow"]
