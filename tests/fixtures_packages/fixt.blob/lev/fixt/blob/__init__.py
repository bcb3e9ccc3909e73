"""A tool with a bytes parameter."""

from levrt import annot

from .blob import digest

__lev__ = annot.meta([digest])
