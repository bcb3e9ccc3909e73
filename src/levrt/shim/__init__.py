"""Code that runs inside the sandbox. ``entry.py`` is standard-library only."""

from pathlib import Path

#: the file executors run (process) or copy into the container (docker)
SHIM_PATH = Path(__file__).with_name("entry.py")
