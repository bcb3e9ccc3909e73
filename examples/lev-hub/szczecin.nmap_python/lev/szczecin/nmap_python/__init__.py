"""szczecin.nmap_python: the nmap tool (three modes) and three workflows built on it."""

from levrt import annot

from . import nmap_python
from .asset import alive_nmap_python, port_os_nmap_python, server_port

# One multi-mode tool (the module) and three workflows: what the platform shows.
__lev__ = annot.meta([nmap_python, alive_nmap_python, port_os_nmap_python, server_port])
