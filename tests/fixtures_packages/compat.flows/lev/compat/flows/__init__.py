"""Workflows over a private tool, in the styles of the workflow chapters."""
from levrt import annot
from . import checker
from .asset import concurrent, background, extra_namespace2

# Only the workflows are exported: the tool module stays private.
__lev__ = annot.meta([concurrent, background, extra_namespace2],
                     desc="workflow practices", tags=["workflow"])
