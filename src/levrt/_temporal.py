"""What the agent and the server share of Temporal's worker side."""

from __future__ import annotations

from typing import Any


def workflow_runner() -> Any:
    """The runner for a worker of levrt's workflows. Workflow code is re-imported in
    Temporal's sandbox; levrt itself (imported only for the workflows' module path) needs no
    sandboxing and imports too much for it."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("levrt"))
