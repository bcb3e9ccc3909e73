"""levrt: write security tools as containers, chain them into async workflows.

The public API. Everything else lives in private modules or in the
``levrt.executors``, ``levrt.store``, ``levrt.testing`` and ``levrt.annot``
subpackages.
"""

from . import annot
from ._concurrent import Concurrent
from ._context import ctx, lev
from ._cr import Cr, File, Task, TaskFailed
from ._document import Collection, Document
from ._job import arun, run
from ._remote import Call, TransportError, remote
from .shim.entry import cli

__version__ = "0.1.0"

__all__ = [
    "Call",
    "Collection",
    "Concurrent",
    "Cr",
    "Document",
    "File",
    "Task",
    "TaskFailed",
    "TransportError",
    "annot",
    "arun",
    "cli",
    "ctx",
    "lev",
    "remote",
    "run",
]
