"""What the agent and the server share of Temporal's worker side."""

from __future__ import annotations

from typing import Any


def workflow_runner() -> Any:
    """The runner for a worker of levrt's workflows: without Temporal's sandbox. Each of
    them is a few lines that only call Temporal's own workflow API, with nothing to import
    or reach at run time: the sandbox guards against a non-determinism they cannot have,
    and building one for every workflow was most of an agent's CPU in a fan-out of short
    runs (bench/dispatch.py: 80 runs over two agents took 5.1 s without it, 5.7-6.2 s with
    it). Package code never runs in a workflow: it runs in ``lev run``, behind activities."""
    from temporalio.worker import UnsandboxedWorkflowRunner

    return UnsandboxedWorkflowRunner()
