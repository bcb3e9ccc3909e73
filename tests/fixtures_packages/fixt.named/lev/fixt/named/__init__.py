"""A tool whose parameters are named like lev run's own options."""

from levrt import annot

from .search import search

__lev__ = annot.meta([search])
