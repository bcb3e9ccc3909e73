"""Annotations that drive the platform's UI: `meta`, `Param`, `ARGV` and the categories.

Tool modes and workflows carry a `Meta` (``@annot.meta(...)``); a package's ``__lev__``
is the manifest ``annot.meta([...exports])`` builds from them.
"""

from . import cats
from ._manifest import manifest_entry
from ._meta import meta
from ._model import ARGV, Meta, Param, get_meta

__all__ = ["ARGV", "Meta", "Param", "cats", "get_meta", "manifest_entry", "meta"]
