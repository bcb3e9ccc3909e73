#!/usr/bin/env python3
"""Screenshots of the web pages for the docs: runs the browser test (tests/test_browser.py:
``lev serve`` on a free 127.0.0.1 port with the example packages published, headless Debian
Chromium through Playwright, tasks that scan only 127.0.0.1 against local listeners) with its
artifacts in a temporary folder, and copies the screenshots it took to docs/screenshots/
(or OUTPUT_DIR).

    .venv/bin/python scripts/screenshots.py [OUTPUT_DIR]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    with tempfile.TemporaryDirectory() as folder:
        # The new user's path takes no screenshots: it is left out.
        test = subprocess.run(
            [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_browser.py"), "-x",
             "-q", "-p", "no:cacheprovider", "-k", "not new_users"],
            env={**os.environ, "LEV_ARTIFACTS": folder, "CI": "true"}, cwd=ROOT)
        if test.returncode != 0:
            print("screenshots: the browser test failed; nothing copied", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        for shot in sorted((Path(folder) / "browser").glob("*.png")):
            target = out / shot.name
            shutil.copyfile(shot, target)
            shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
            print(f"{shown}: {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
