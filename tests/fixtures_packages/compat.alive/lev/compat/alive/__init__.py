from levrt import annot
from .alive import alive
# Export the tool here
__lev__ = annot.meta([alive])
