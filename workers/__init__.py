"""Processes and entry points: the worker, the embedded stack, the CLI and the client API."""
