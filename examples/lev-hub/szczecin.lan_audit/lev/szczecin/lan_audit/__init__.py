"""szczecin.lan_audit: a workflow package; the nmap tool it drives is not exported here."""

from levrt import annot

from .asset import open_services, quick_check

# Only the workflows: the platform shows no tool for this package.
__lev__ = annot.meta([open_services, quick_check])
