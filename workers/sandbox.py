"""The workflow sandbox, without its fixed cost per payload.

temporalio 1.35 asks the workflow instance for a serialization context for every
payload sequence of every activation and completion (five passes of its payload
visitor), and the sandboxed instance answers each question by compiling and
``exec``-ing a snippet inside the sandbox under the restricted importer: 70-80 µs a
question, about seven per activation, as much as the activation itself (measured on
tests/test_application_workflow.py; BENCHMARKS.md). The answer is computed by the
SDK's own instance from its own state (workflow info and pending commands): no
workflow code runs, nothing is imported, so it can be asked directly.

The workflow code itself still runs in the sandbox, with the default restrictions.
This leans on two private names of temporalio's sandbox runner (``_Instance`` and its
``globals_and_locals``); constraints.txt pins the SDK, and
tests/test_sandbox_runner.py checks every answer against the SDK's own path, so an
SDK upgrade that changes them fails there rather than in production. Where the
instance is not there (not yet created), the SDK's own path answers.
"""

from __future__ import annotations

from typing import Any

from temporalio.converter import SerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

_IN_SANDBOX = "__temporal_in_sandbox"


class DirectContextInstance(_Instance):
    """A sandboxed workflow instance that answers serialization-context questions
    without a round trip through ``exec``."""

    def _sdk_instance(self) -> Any | None:
        in_sandbox: Any = self.globals_and_locals.get(_IN_SANDBOX)
        return None if in_sandbox is None else in_sandbox.instance

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        instance = self._sdk_instance()
        if instance is None:
            return super().get_serialization_context(command_info)
        context: SerializationContext | None = instance.get_serialization_context(command_info)
        return context

    def get_external_store_context(self, command_info: Any) -> Any:
        instance = self._sdk_instance()
        if instance is None:
            return super().get_external_store_context(command_info)
        return instance.get_external_store_context(command_info)


class DirectContextSandboxRunner(SandboxedWorkflowRunner):
    """:class:`SandboxedWorkflowRunner` with the default restrictions whose instances
    are :class:`DirectContextInstance`."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return DirectContextInstance(det, self.runner_class, self.restrictions)
