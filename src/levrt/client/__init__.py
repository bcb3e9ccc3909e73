"""``levrt.client``: a levrt server's JSON API from Python, as the ``lev`` commands, agents
and job drivers use it (docs/client.md)."""

from .._status import JOB_STATUSES, JobStatus
from ._agent import AgentClient
from ._client import Client
from ._credentials import CREDENTIALS, save_login, server_url
from ._errors import ApiError, ApiUnreachable, CredentialsError, LoginRequired
from ._jobstore import JobStore

__all__ = ["CREDENTIALS", "JOB_STATUSES", "AgentClient", "ApiError", "ApiUnreachable", "Client",
           "CredentialsError", "JobStatus", "JobStore", "LoginRequired", "save_login", "server_url"]

# Reprs and docs name the public module, not the private one each class is defined in.
for _name in ("AgentClient", "ApiError", "ApiUnreachable", "Client", "CredentialsError",
              "JobStore", "LoginRequired"):
    globals()[_name].__module__ = __name__
del _name
