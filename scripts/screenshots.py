#!/usr/bin/env python3
"""Screenshots of the web pages for the docs: starts ``lev serve`` on a free 127.0.0.1 port in
a temporary LEV_HOME with the example packages published (as tests/test_browser.py does), logs
in with headless Debian Chromium through Playwright, and saves PNGs (1280x800) of the main pages
to docs/screenshots/. The task it runs is ``server_port`` on 127.0.0.1 only, against a local
listener that answers with an SSH banner.

    .venv/bin/python scripts/screenshots.py [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import (  # noqa: E402  (after the path insert)
    USER,
    VIEWPORT,
    launch,
    lev_server,
    log_in,
    missing_browser,
    open_package,
    open_quick_form,
    search_market,
    ssh_listener,
    submit_bad_ports,
)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    why = missing_browser()
    if why:
        print(f"screenshots: {why}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []

    def shot(page: Any, name: str) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        saved.append(path)

    with tempfile.TemporaryDirectory() as folder, lev_server(Path(folder)) as served, \
            sync_playwright() as p:
        browser = launch(p)
        url = served.url
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(20_000)
            page.goto(f"{url}/login")
            page.fill("input[name=user]", USER)
            shot(page, "login")
            log_in(page, url)
            shot(page, "market")
            search_market(page, "nmap")
            shot(page, "market-search")
            open_package(page, url)
            shot(page, "package")
            open_quick_form(page)
            submit_bad_ports(page)
            shot(page, "quick-form-error")
            with ssh_listener() as port:
                page.fill("#p_ip", "127.0.0.1")
                page.fill("#p_ports", str(port))
                with page.expect_navigation():
                    page.click("form.quick button[type=submit]")
                page.wait_for_function(
                    "() => document.getElementById('log').dataset.live === 'no'",
                    timeout=60_000)
            shot(page, "task")
            page.evaluate("() => window.scrollTo(0, [...document.querySelectorAll('h2')]"
                          ".find(h => h.textContent === 'Results').offsetTop - 16)")
            shot(page, "task-results")
            page.goto(f"{url}/tasks")
            shot(page, "tasks")
        finally:
            browser.close()
    for path in saved:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
