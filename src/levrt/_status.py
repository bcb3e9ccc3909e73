"""The statuses a job (and a run) goes through, named once for the store, the server, its
pages and filters, the client and the CLI.

A job is ``queued`` until a runner starts it (no start time, no runs yet), ``running``, then
ends ``done``, ``failed`` or ``cancelled``; a run starts ``running`` and ends the same ways."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["FINAL_STATUSES", "JOB_STATUSES", "UNFINISHED_STATUSES", "JobStatus"]

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
# In the order a job goes through them: the order filters list them in.
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINAL_STATUSES: tuple[JobStatus, ...] = ("done", "failed", "cancelled")
UNFINISHED_STATUSES: tuple[JobStatus, ...] = ("queued", "running")
