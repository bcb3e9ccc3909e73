"""szczecin.alive: a modeless tool (one sync function exported on its own)."""

from levrt import annot

from .alive_tool import alive

# A sync function in the export list is a single-mode tool, shown under its desc.
__lev__ = annot.meta([alive])
