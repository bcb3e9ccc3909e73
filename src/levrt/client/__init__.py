"""``levrt.client``: a levrt server's JSON API from Python, as the ``lev`` commands, agents
and job drivers use it (docs/client.md)."""

from ._agent import AgentClient
from ._client import Client
from ._credentials import CREDENTIALS
from ._errors import ApiError, ApiUnreachable, CredentialsError, LoginRequired

__all__ = ["CREDENTIALS", "AgentClient", "ApiError", "ApiUnreachable", "Client", "CredentialsError",
           "LoginRequired"]
