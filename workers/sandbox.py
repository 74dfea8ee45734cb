"""The workflow sandbox, without its fixed cost per payload, and its three modes.

**Modes** (``AIDFLOW_WORKFLOW_SANDBOX``; :func:`workflow_runner`):

- ``strict``: the SDK's sandbox with its default restrictions: every workflow imports
  aidflow's workflow modules afresh and every restricted call (the clock, randomness,
  files, the network) fails its workflow task. The test suite runs every workflow so.
- ``shared`` (a production worker's default): the same sandbox, aidflow's ``workflows``
  package passed through: imported once, shared by every workflow. A cached workflow
  then holds its own state only: 449 KiB less each, and 16 ms less CPU each time a
  workflow is created or brought back after eviction (``bench/results``,
  BENCHMARKS.md). The sandbox no longer checks the calls made through the names that
  package imported at its top (an import inside a function, at run time, still goes
  through the restricted importer); what does: the suite above, the replay of every recorded history, and
  tests/test_architecture.py, which refuses in ``workflows/`` the imports and calls that
  read the clock, chance, the environment or the outside world. The package holds no
  state of its own to share (constants only: tests/test_architecture.py checks that
  too).
- ``off``: no sandbox (the simulator, a local throwaway run of the same code).

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

from typing import Any, Literal

from temporalio.converter import SerializationContext
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance

from workers.settings import WorkerSandbox

_IN_SANDBOX = "__temporal_in_sandbox"

# What a worker may be set to (AIDFLOW_WORKFLOW_SANDBOX), and "off", the simulator's alone.
SandboxMode = Literal[WorkerSandbox, "off"]
# The package whose modules a ``shared`` sandbox imports once for all workflows.
SHARED_PACKAGE = "workflows"


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


def workflow_runner(mode: SandboxMode, shared: str = SHARED_PACKAGE) -> WorkflowRunner:
    """The workflow runner of ``mode`` (this module's docstring); ``shared``: the
    package a shared sandbox imports once."""
    if mode == "off":
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default
    if mode == "shared":
        restrictions = restrictions.with_passthrough_modules(shared)
    return DirectContextSandboxRunner(restrictions=restrictions)
