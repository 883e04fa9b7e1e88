"""The viewer in a real browser (Debian's chromium driven by Playwright): what a person sees.

These tests never skip: without chromium or playwright they fail, saying what to install.
Screenshots go to test-artifacts/viewer/ (git-ignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.format import synth
from osvtrace.model import Model
from osvtrace.viewer import static
from osvtrace.viewer.api import Api
from osvtrace.viewer.server import ViewerServer
from tests.support.browser import Page, browser  # noqa: F401  (the Chromium fixture)

STORY_ROWS = ["CPUs", "CPU 0", "CPU 1", "Threads", "main [1]", "a [2]", "b [3]", "never-ran [4]", "idle1 [9]",
              "Mutexes", "0xa000 held", "0xa000 waits"]


@pytest.fixture
def serve():
    servers = []

    def start(path: Path) -> str:
        srv = ViewerServer(Api(Model(osvtrace.open(path))), "127.0.0.1", 0)
        srv.start()
        servers.append(srv)
        return srv.url

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def story_page(browser, serve, story_file):
    pg = Page(browser, serve(story_file))
    yield pg
    pg.p.close()


def test_page_loads_with_the_trace_lanes(story_page):
    pg = story_page
    assert pg.errors == []
    assert pg.rows() == STORY_ROWS
    assert all(u.startswith("http://127.0.0.1:") for u in pg.requests)  # no CDN, nothing from outside
    assert "b [3]" in pg.p.inner_text("#top-threads") and "0xa000" in pg.p.inner_text("#top-mutexes")
    pg.p.wait_for_selector("table.report td")
    assert "threads by cpu time" in pg.p.inner_text("#reports").lower()  # the default report: sched
    pg.p.select_option("#report-name", "mutex")
    pg.p.wait_for_selector("table.report td:has-text('0xa000')")
    assert "exact items" in pg.p.inner_text("#status")
    pg.shot("story.png")


def test_zoom_and_pan_change_the_range_and_the_request(story_page):
    pg = story_page
    a, b = pg.range()
    pg.act(lambda: pg.p.keyboard.press("w"))
    a2, b2 = pg.range()
    assert b2 - a2 == pytest.approx((b - a) / 2, abs=2)
    last = pg.views()[-1]
    assert (int(last["t0"]), int(last["t1"])) == (a2, b2)
    assert pg.p.evaluate("document.getElementById('timeline').layout.xaxis.range") == [a2, b2]
    # the wheel zooms in around the pointer: the time under it stays put
    x, y = pg.xy("cpu:1", 400)
    pg.p.mouse.move(x, y)
    pg.act(lambda: pg.p.mouse.wheel(0, -300))
    a3, b3 = pg.range()
    assert b3 - a3 < b2 - a2 and a3 < 400 < b3
    assert pg.xy("cpu:1", 400)[0] == pytest.approx(x, abs=3)
    # dragging pans: later times come into view
    x, y = pg.xy("cpu:0", (a3 + b3) / 2)
    pg.p.mouse.move(x, y)
    pg.p.mouse.down()
    pg.p.mouse.move(x - 200, y, steps=5)
    pg.act(lambda: pg.p.mouse.up())
    a4, b4 = pg.range()
    assert a4 > a3 and b4 - a4 == pytest.approx(b3 - a3, rel=0.02)
    pg.act(lambda: pg.p.keyboard.press("d"))
    assert pg.range()[0] > a4
    pg.act(lambda: pg.p.click("#zoom-reset"))
    assert pg.range() == [100, 800]
    assert len({(v["t0"], v["t1"]) for v in pg.views()}) >= 5
    assert pg.errors == []


def test_clicking_a_slice_shows_its_details(story_page):
    pg = story_page
    x, y = pg.xy("cpu:1", 400)
    pg.p.mouse.click(x, y)
    assert pg.details_title() == "b running on CPU 1"
    details = pg.p.inner_text("#details")
    assert re.search(r"woken by\s+a \[2\]", details) and "sched_switch" in details and "prev_state" in details
    pg.wait_paints(0)
    shapes = pg.p.evaluate("document.getElementById('timeline').layout.shapes.filter(s => s.type === 'rect')")
    assert len(shapes) == 1 and shapes[0]["x0"] <= 305 and shapes[0]["x1"] >= 800
    pg.shot("story-details.png")
    # a link in the panel selects the linked item: the waker's state at the wake-up
    pg.p.click("text=woken by a [2]")
    pg.until("document.getElementById('details-title').textContent === 'a: running'")
    pg.p.keyboard.press("n")  # the next item of the selected lane
    pg.until("document.getElementById('details-title').textContent === 'a: waiting'")
    pg.p.keyboard.press("Escape")
    assert "Click a slice" in pg.p.inner_text("#details")


def test_handoff_arrow_joins_the_right_threads(story_page):
    pg = story_page
    tr = pg.p.evaluate("document.getElementById('timeline').data.find(d => d.name === 'handoff-arrows')")
    rows = pg.rows()
    assert tr["x"][:2] == [401, 450]
    assert [rows[int(round(v))] for v in tr["y"][:2]] == ["a [2]", "b [3]"]
    (x0, y0), (x1, y1) = pg.xy("thread:2", 401), pg.xy("thread:3", 450)
    pg.p.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
    assert "mutex hand-off: a [2] → b [3]" in pg.p.inner_text("#tooltip")
    pg.p.mouse.click((x0 + x1) / 2, (y0 + y1) / 2)
    assert pg.details_title() == "hand-off of 0xa000: a → b"
    pg.shot("story-handoff.png")
    # the toggle hides them, and the next request does not ask for them
    pg.act(lambda: pg.p.click("#arrows-handoff"))
    names = pg.p.evaluate("document.getElementById('timeline').data.map(d => d.name)")
    assert "handoff-arrows" not in names and "wake-arrows" in names
    assert "handoff" not in pg.views()[-1]["arrows"]


def test_search_filters_threads_and_adds_tracepoint_lanes(story_page):
    pg = story_page
    pg.p.fill("#search", "b")
    pg.p.wait_for_selector(".sugg")
    assert "b [3]" in pg.p.inner_text("#suggest")
    pg.act(lambda: pg.p.click(".sugg:has-text('b [3]')"))
    rows = pg.rows()
    assert rows[rows.index("Threads") + 1:rows.index("Mutexes")] == ["b [3]"]
    pg.p.fill("#search", "mutex_lock_w")
    pg.p.wait_for_selector(".sugg:has-text('mutex_lock_wait')")
    pg.act(lambda: pg.p.keyboard.press("Enter"))
    assert pg.rows()[-2:] == ["Tracepoints", "mutex_lock_wait events"]
    x, y = pg.xy("tp:mutex_lock_wait", 160)
    pg.p.mouse.click(x, y)
    assert pg.details_title() == "mutex_lock_wait on CPU 1"
    pg.shot("story-filtered.png")
    pg.act(lambda: pg.p.click(".chip.thread button"))
    assert "a [2]" in pg.rows()
    assert pg.errors == []


def test_the_url_fragment_opens_the_page_on_the_shells_filters(browser, serve, story_file):
    # what the shell's `view` writes for `set since 100ns`, `set until 600ns`, `set cpu 1`, `set thread b`
    pg = Page(browser, serve(story_file) + "#t0=100&t1=600&lanes=cpu:1,thread:3,thread:99,bogus")
    try:
        assert pg.range() == [100, 600]
        rows = pg.rows()
        assert rows[:3] == ["CPUs", "CPU 1", "Threads"] and rows[rows.index("Threads") + 1:rows.index("Mutexes")] == ["b [3]"]
        assert {"t0": "100", "t1": "600"}.items() <= pg.views()[-1].items()
        assert "ignored from the URL: thread:99, bogus" in pg.p.inner_text("#status")
        pg.act(lambda: pg.p.click(".chip.cpu button"))  # filters from the URL are chips like the others
        assert "CPU 0" in pg.rows() and pg.errors == []
    finally:
        pg.p.close()


def test_static_page_works_without_a_server(browser, story_file, tmp_path):
    page = tmp_path / "story.html"
    api = Api(Model(osvtrace.open(story_file)))
    static.write(api, page)
    pg = Page(browser, page.as_uri())
    assert pg.errors == [] and pg.rows() == STORY_ROWS
    assert all(u.startswith("file://") or u.startswith("data:") for u in pg.requests), pg.requests
    x, y = pg.xy("cpu:1", 400)
    pg.p.mouse.click(x, y)
    assert pg.details_title() == "b running on CPU 1"
    pg.act(lambda: pg.p.keyboard.press("w"))
    tr = pg.p.evaluate("document.getElementById('timeline').data.find(d => d.name === 'handoff-arrows')")
    assert tr["x"][:2] == [401, 450]
    pg.shot("story-static.png")
    pg.p.close()


def test_static_aggregation_matches_the_server(browser, tmp_path):
    path = tmp_path / "s20k.osvt"
    synth.generate(path, 20_000, 2)
    api = Api(Model(osvtrace.open(path)))
    page = tmp_path / "s20k.html"
    static.write(api, page)
    pg = Page(browser, page.as_uri())
    t0, t1 = api.t_first, api.t_last
    lanes = [ln.id for ln in api.lanes.lanes if ln.default] + ["tp:sched_switch"]
    for a, b, px in ((t0, t1, 900), (t0 + (t1 - t0) // 3, t0 + (t1 - t0) // 3 + 50_000, 700), (t0 - 1000, t0 + 7000, 333)):
        want = api.view({"t0": [str(a)], "t1": [str(b)], "px": [str(px)], "lanes": [",".join(lanes)]})
        got = pg.p.evaluate("""async ([a, b, px, lanes]) => {
            const v = await window.osvApp.backend.view(a, b, px, lanes, ["wake", "handoff", "packet"]);
            return v.lanes.map(l => ({keys: l.keys, key: Array.from(l.key), cover: Array.from(l.cover),
                                      count: Array.from(l.count), n: l.n, exact: l.items !== null}));
        }""", [a, b, px, lanes])
        for w, g in zip(want["lanes"], got):
            import base64

            key = np.frombuffer(base64.b64decode(w["key"]), "<i4")
            wk = [w["keys"][k] if k >= 0 else int(k) for k in key.tolist()]
            gk = [g["keys"][k] if k >= 0 else int(k) for k in g["key"]]
            assert gk == wk, (w["id"], a, b, px)
            assert g["cover"] == list(base64.b64decode(w["cover"])), w["id"]
            assert g["count"] == np.frombuffer(base64.b64decode(w["count"]), "<u4").tolist(), w["id"]
    pg.p.close()


def test_a_bigger_trace_aggregates_then_shows_exact_items(browser, serve, tmp_path):
    path = tmp_path / "s200k.osvt"
    synth.generate(path, 200_000, 2)
    pg = Page(browser, serve(path))
    assert pg.errors == []
    assert "aggregated per pixel" in pg.p.inner_text("#status")
    v = pg.views()[-1]
    assert int(v["px"]) < 1500  # one column per pixel of the plot, not per item
    pg.shot("synth-200k-whole.png")
    for _ in range(10):
        pg.act(lambda: pg.p.keyboard.press("w"))
    assert "exact items" in pg.p.inner_text("#status")
    labels = pg.p.evaluate("document.getElementById('timeline').data.find(d => d.name === 'labels').text")
    assert any(t.startswith("worker-") for t in labels)
    pg.shot("synth-200k-zoomed.png")
    x, y = pg.xy("cpu:0", sum(pg.range()) / 2)
    pg.p.mouse.click(x, y)
    assert re.match(r"worker-0\.\d running on CPU 0", pg.details_title())
    assert pg.errors == []
    pg.p.close()


def test_names_from_the_trace_are_text_not_markup(browser, serve, tmp_path, catalog):
    from osvtrace.format.encode import CpuStreamBuilder
    from tests.support.traces import write_trace

    evil = "<img src=x onerror=window.pwned=1>"
    c0 = CpuStreamBuilder(catalog)
    c0.add("sched_switch", [100], 1, next=7, prev_state=1)
    c0.add("trace_marker", [900], 7, value=0, label="end")
    path = write_trace(tmp_path / "evil.osvt", {0: c0.slots()}, threads={1: "main", 7: evil})
    pg = Page(browser, serve(path))
    assert pg.p.evaluate("window.pwned") is None
    assert f"{evil} [7]" in pg.rows()
    assert evil in pg.p.inner_text("#top-threads")
    x, y = pg.xy("cpu:0", 500)
    pg.p.mouse.click(x, y)
    assert pg.details_title() == f"{evil} running on CPU 0"
    assert pg.p.evaluate("window.pwned") is None and pg.errors == []
    pg.p.close()


def test_channel_lane_and_packet_hop(browser, serve, tmp_path, catalog):
    from osvtrace.format.encode import CpuStreamBuilder
    from tests.support.traces import write_trace

    c0, c1 = CpuStreamBuilder(catalog), CpuStreamBuilder(catalog)
    c0.add("sched_switch", [50], 1, next=5, prev_state=1)
    c1.add("sched_switch", [60], 1, next=6, prev_state=1)
    for k in range(3):  # three packets: rx on CPU 0 (thread 5), popped and sent on CPU 1 (thread 6)
        t = 100 + 400 * k
        c0.add("net_rx", [t], 5, packet=k + 1, len=60, queue=0)
        c0.add("net_classify", [t + 10], 5, channel=0xC000, packet=k + 1, result=0)
        c0.add("net_channel_push", [t + 20], 5, channel=0xC000, packet=k + 1, depth=1)
        c1.add("net_channel_pop", [t + 200], 6, channel=0xC000, packet=k + 1, depth=0)
        c1.add("net_tx", [t + 250], 6, packet=k + 1, len=60)
    c0.add("trace_marker", [1400], 5, value=0, label="end")
    c1.add("trace_marker", [1400], 6, value=0, label="end")
    path = write_trace(tmp_path / "net.osvt", {0: c0.slots(), 1: c1.slots()},
                       threads={1: "main", 5: "rx", 6: "consumer"})
    pg = Page(browser, serve(path))
    rows = pg.rows()
    assert rows[rows.index("Net channels") + 1] == "channel 0xc000"
    tr = pg.p.evaluate("document.getElementById('timeline').data.find(d => d.name === 'packet-arrows')")
    assert [rows[int(round(v))] for v in tr["y"][:2]] == ["CPU 0", "CPU 1"] and tr["x"][:2] == [120, 300]
    x, y = pg.xy("chan:0xc000", 600)
    pg.p.mouse.click(x, y)
    assert pg.details_title() == "packet 2"
    assert "consumer [6]" in pg.p.inner_text("#details") and "net_channel_pop" in pg.p.inner_text("#details")
    pg.shot("packets.png")
    assert pg.errors == []
    pg.p.close()
