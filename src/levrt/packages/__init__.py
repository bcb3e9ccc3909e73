"""Hub packages on the author's side: read, check, scaffold and build them.

A package folder ``<user>.<tool>/`` holds ``pyproject.toml`` (name ``lev.<user>.<tool>``)
and the package ``lev/<user>/<tool>/`` whose ``__lev__`` lists what the platform shows.
``check_package`` reports what is wrong with file and line; ``package_manifest`` imports
the package in a subprocess (the only place package code runs) and returns its manifest.
"""

from .build import build_wheel
from .check import CheckReport, check_package
from .layout import PackageInfo, read_package
from .manifest import package_manifest
from .problems import PackageError, Problem
from .scaffold import scaffold

__all__ = ["CheckReport", "PackageError", "PackageInfo", "Problem", "build_wheel",
           "check_package", "package_manifest", "read_package", "scaffold"]
