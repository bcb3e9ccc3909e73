from levrt import annot
from . import probe

__lev__ = annot.meta([probe])
