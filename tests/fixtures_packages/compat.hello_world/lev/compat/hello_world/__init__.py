from levrt import annot
from . import hello
from .asset import hello_world

__lev__ = annot.meta([hello, hello_world])
