"""A tool whose mode is written ``async def ... -> Cr`` and returns its Cr un-awaited."""

from levrt import annot

from . import greeter

__lev__ = annot.meta([greeter])
