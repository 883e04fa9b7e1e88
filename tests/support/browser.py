"""Chromium driven by Playwright for the viewer's browser tests: the browser fixture and a Page
with its console errors, its requests and helpers to read what is drawn. The tests that use it
never skip: without chromium or playwright they fail, saying what to install."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.traces import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = ARTIFACTS / "viewer"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `.venv/bin/pip install -e '.[test]'` (browser tests must run)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (`make deps` does it); "
                    "the viewer's browser tests must run")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page with its console errors and the requests it made."""

    def __init__(self, browser, url: str):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.p = browser.new_page(viewport={"width": 1500, "height": 950})
        self.p.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.p.on("pageerror", lambda e: self.errors.append(str(e)))
        self.p.on("request", lambda r: self.requests.append(r.url))
        self.p.goto(url)
        self.wait_paints(0)

    def paints(self) -> int:
        return self.p.evaluate("window.osvPerf ? window.osvPerf.paints.length : 0")

    def until(self, js: str, timeout: float = 20.0) -> None:
        """Wait for a JS expression to hold. Polled with evaluate (DevTools evaluation), because the
        server's Content-Security-Policy rightly forbids the eval that wait_for_function needs."""
        deadline = time.monotonic() + timeout
        while not self.p.evaluate(js):
            assert time.monotonic() < deadline, f"timed out waiting for {js}"
            time.sleep(0.02)

    def wait_paints(self, n: int) -> None:
        self.until(f"window.osvPerf && (window.osvPerf.paints.length > {n} || window.osvPerf.errors.length)")
        errs = self.p.evaluate("window.osvPerf.errors")
        assert not errs, errs

    def act(self, fn) -> None:
        """Do something that repaints, and wait for the paint."""
        n = self.paints()
        fn()
        self.wait_paints(n)

    def rows(self) -> list[str]:
        """The lane names as drawn, top to bottom."""
        return self.p.evaluate("""Array.from(document.querySelectorAll('#timeline .ytick text'))
            .map(t => [t.getBoundingClientRect().top, t.textContent]).sort((a, b) => a[0] - b[0]).map(x => x[1])""")

    def xy(self, lane: str, t: float) -> tuple[float, float]:
        """Viewport pixel of time t on a lane."""
        return tuple(self.p.evaluate("""([lane, t]) => {
            const tl = window.osvApp.timeline, gd = tl.el, fl = gd._fullLayout, b = gd.getBoundingClientRect();
            return [b.left + fl.xaxis._offset + fl.xaxis.l2p(t), b.top + fl.yaxis._offset + fl.yaxis.l2p(tl.rowOf.get(lane))];
        }""", [lane, t]))

    def range(self) -> list[int]:
        return self.p.evaluate("window.osvApp.range")

    def views(self) -> list[dict]:
        return [{k: v[0] for k, v in parse_qs(urlsplit(u).query).items()} for u in self.requests if "/api/view" in u]

    def details_title(self) -> str:
        self.p.wait_for_selector("#details-title")
        return self.p.inner_text("#details-title")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.p.screenshot(path=str(SHOTS / name))
