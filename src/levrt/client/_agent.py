"""The agent's side of the API: enrolment and heartbeats (``/api/agent/``), as a device."""

from __future__ import annotations

from typing import Any

from ._client import Client, _segment


class AgentClient(Client):
    """The API as a device sees it through its device token (``lev agent``).

    :meth:`enrol` needs no token; every other call needs the device token it returned.
    Calls raise :class:`~levrt.client.ApiError` (403 for an unknown, used or expired code;
    401 for a token whose device was removed) and :class:`~levrt.client.ApiUnreachable`."""

    def enrol(self, code: str) -> dict[str, Any]:
        """Trade a one-time enrolment code for the device's token. The answer:
        ``token``, ``owner``, ``name``, ``pools``, ``queues`` (``device``, ``pools``: the
        Temporal task queues to poll), ``temporal`` (``HOST:PORT`` or None) and
        ``heartbeat_interval`` (seconds)."""
        answer: dict[str, Any] = self.request("POST", "/api/agent/enrol",
                                              json={"code": code}).json()
        return answer

    def heartbeat(self, *, running: int, slots: int, facts: dict[str, Any] | None = None,
                  patience: float | None = None) -> dict[str, Any]:
        """Report the device alive with its load (``running`` runs of ``slots``) and, when
        given, its facts; the answer is its configuration, as :meth:`enrol`'s without the
        token. ``patience`` as :meth:`~levrt.client.Client.request`'s."""
        body: dict[str, Any] = {"running": running, "slots": slots}
        if facts is not None:
            body["facts"] = facts
        answer: dict[str, Any] = self.request("POST", "/api/agent/heartbeat", json=body,
                                              patience=patience).json()
        return answer

    def claim_job(self, job_id: str) -> dict[str, Any]:
        """Take a job sent to this device or its pools: ``id``, ``target``, ``wheels``
        (``filename``, ``sha256``: the published package's first) and ``token``, the job's
        own token for its ``lev run``. ApiError 403 for a job not sent here, 409 for one
        that has ended."""
        answer: dict[str, Any] = self._json("POST", f"/api/agent/jobs/{_segment(job_id)}/claim")
        return answer

    def run_token(self, job_id: str) -> str:
        """The token of a running job whose runs are spread over this device's pool, to
        record one of them (ApiError 403 for a job not sent to its pools, 409 for one that
        is not running)."""
        answer: dict[str, Any] = self._json("POST",
                                            f"/api/agent/jobs/{_segment(job_id)}/run-token")
        return str(answer["token"])

    def job_wheel(self, job_id: str, filename: str) -> bytes:
        """The bytes of one of the wheels :meth:`claim_job` named."""
        return self.request(
            "GET", f"/api/agent/jobs/{_segment(job_id)}/wheels/{_segment(filename)}").content

    def end_job(self, job_id: str, status: str, error: str) -> None:
        """Record a job this agent could not finish as ``status`` (``failed`` or
        ``cancelled``) with ``error``, unless it has ended already."""
        self.request("POST", f"/api/agent/jobs/{_segment(job_id)}/end",
                     json={"status": status, "error": error})
