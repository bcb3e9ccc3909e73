"""The platform server (FastAPI): the hub's API, the PEP 503 index, later the web UI.

It never imports or runs package code, which is its publishers' and may do anything: uploads
are read as zip archives and JSON, and tasks run in processes of their own (docs/hub.md).
"""

from levrt.server.app import create_app
from levrt.server.settings import Settings

__all__ = ["Settings", "create_app"]
