"""Code that runs inside the sandbox. ``entry.py`` is standard-library only."""

from pathlib import Path

#: the file executors run (process) or copy into the container (docker)
SHIM_PATH = Path(__file__).with_name("entry.py")
#: copies a Python into a volume for images that have none (docker executor)
BUNDLE_PATH = Path(__file__).with_name("bundle.py")
