"""Temporal workflows. Deterministic: see each module's docstring.

This package file imports nothing: the workflow sandbox re-imports a workflow's
modules for every workflow it starts, and each import here would be paid again
by every application. The worker's list of workflows is in ``workflows.registry``.
"""
