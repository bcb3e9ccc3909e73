"""A workflow that sets its job's document and then calls exit()."""

from levrt import annot

from .flow import finish

__lev__ = annot.meta([finish])
