"""A screenshot of the viewer on a trace, as a person sees it (Debian's chromium driven by
Playwright, the server `osvtrace view` runs), for the pictures in docs/:

    python -m tests.support.viewer_shot TRACE OUT.png ['#t0=NS&t1=NS&lanes=cpu:0,thread:29']

The fragment opens the page on a window and lanes (docs/viewer.md, "Opening on a place");
the server rather than a --static page, because a static page holds at most 50,000 events.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import osvtrace
from osvtrace.model import Model
from osvtrace.viewer.api import Api
from osvtrace.viewer.server import ViewerServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def shoot(trace: Path, out: Path, fragment: str = "", size: tuple[int, int] = (1400, 900), timeout: float = 120) -> None:
    """Serve `trace`, open it at `fragment`, wait for the first paint, save the page as PNG."""
    from playwright.sync_api import sync_playwright

    srv = ViewerServer(Api(Model(osvtrace.open(trace))), "127.0.0.1", 0)
    srv.start()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(srv.url + fragment)
            deadline = time.monotonic() + timeout
            while not page.evaluate("window.osvPerf && (window.osvPerf.paints.length > 0 || window.osvPerf.errors.length)"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the viewer did not paint within {timeout:g} s")
                time.sleep(0.1)
            errors = page.evaluate("window.osvPerf.errors")
            if errors:
                raise RuntimeError(f"the viewer reported errors: {errors}")
            time.sleep(1.0)  # let the reports pane fill in
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            b.close()
    finally:
        srv.shutdown()
        srv.server_close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m tests.support.viewer_shot TRACE OUT.png [FRAGMENT]")
    shoot(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else "")
