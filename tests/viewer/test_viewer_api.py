"""The viewer's data side, tested as data: per-pixel aggregation against a brute-force count,
the view/item/report API on hand-built traces with known answers, the colour scale, and the
API's refusals (400 with a one-line JSON error)."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import osvtrace
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.model import Model
from osvtrace.viewer import figure
from osvtrace.viewer.api import Api, ApiError, arrow_cap
from osvtrace.viewer.lod import EMPTY, OTHER, LaneIndex, brute_cells, edges
from tests.support.traces import write_trace

C = 0xC000  # the net channel of the packet trace


def q(**kw: object) -> dict[str, list[str]]:
    return {k: [str(v)] for k, v in kw.items()}


def cells_of(lane: dict, dtype: str = "<i4") -> list:
    """A view lane's dominant key per column, as key values (EMPTY/OTHER kept)."""
    idx = np.frombuffer(base64.b64decode(lane["key"]), dtype)
    keys = lane["keys"]
    return [keys[i] if i >= 0 else int(i) for i in idx.tolist()]


@pytest.fixture
def api(story):
    return Api(story)


@pytest.fixture
def packet_file(tmp_path, catalog):
    """rx, classify and push of packet 7 on CPU 0 (thread 5); pop and tx on CPU 1 (thread 6)."""
    c0 = CpuStreamBuilder(catalog)
    c0.add("sched_switch", [50], 1, next=5, prev_state=1)
    c0.add("net_rx", [100], 5, packet=7, len=60, queue=0)
    c0.add("net_classify", [110], 5, channel=C, packet=7, result=0)
    c0.add("net_channel_push", [120], 5, channel=C, packet=7, depth=1)
    c0.add("trace_marker", [400], 5, value=0, label="end")
    c1 = CpuStreamBuilder(catalog)
    c1.add("sched_switch", [60], 1, next=6, prev_state=1)
    c1.add("net_channel_pop", [300], 6, channel=C, packet=7, depth=0)
    c1.add("net_tx", [350], 6, packet=7, len=60)
    c1.add("trace_marker", [410], 6, value=0, label="end")
    return write_trace(tmp_path / "packet.osvt", {0: c0.slots(), 1: c1.slots()},
                       threads={1: "main", 5: "rx", 6: "consumer"})


# ---------------------------------------------------------------- per-pixel aggregation

items_st = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 300), st.integers(0, 5)), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(items=items_st, t0=st.integers(-100, 1500), width=st.integers(1, 1500), px=st.integers(1, 40))
def test_cells_equal_brute_force(items, t0, width, px):
    start = np.array([s for s, _, _ in items], np.int64)
    end = start + np.array([d for _, d, _ in items], np.int64)
    key = np.array([k for _, _, k in items], np.int64)
    e = edges(t0, t0 + width, min(px, width))
    got = LaneIndex(start, end, key).cells(e)
    want = brute_cells(start, end, key, e)
    assert got.count.tolist() == want.count.tolist()
    assert got.cover.tolist() == want.cover.tolist()
    assert got.key.tolist() == want.key.tolist()


def test_cells_lump_keys_beyond_the_top_ones():
    n = 40  # 40 threads each running once: the 32 longest keep their names, the rest are OTHER
    start = np.arange(n, dtype=np.int64) * 100
    dur = 10 + np.arange(n, dtype=np.int64)  # later ones are longer
    c = LaneIndex(start, start + dur, np.arange(n)).cells(edges(0, n * 100, n))
    assert c.key[:8].tolist() == [OTHER] * 8
    assert c.key[8:].tolist() == list(range(8, n))


def test_cells_exact_when_prefix_sums_overflow_int64():
    # 20,000 items at ~4e15 ns: the prefix sums pass 2**63; coverage must still be exact
    n = 20_000
    start = 4 * 10**15 + np.arange(n, dtype=np.int64) * 1_000_000
    idx = LaneIndex(start, start + 500_000, np.zeros(n, np.int64))
    t0 = int(start[-10])
    e = edges(t0, t0 + 2_000_000, 4)
    c = idx.cells(e)
    assert c.cover.tolist() == [100, 0, 100, 0] and c.count.tolist() == [1, 0, 1, 0]


def test_items_at_and_range():
    idx = LaneIndex(np.array([0, 100, 100, 300]), np.array([1000, 150, 120, 310]), np.array([1, 2, 3, 4]))
    assert idx.at(110, 0) == 2  # the shortest of the items covering 110
    assert idx.at(200, 0) == 0  # the long one still covers it
    assert idx.at(2000, 0) is None and idx.at(1005, 10) == 0
    got = idx.items(290, 305, 10)
    assert sorted(idx.key[got].tolist()) == [1, 4]
    assert idx.items(0, 400, 2) is None


def test_empty_lane():
    c = LaneIndex(np.empty(0), np.empty(0), np.empty(0)).cells(edges(0, 100, 10))
    assert (c.key == EMPTY).all() and not c.count.any()


# ---------------------------------------------------------------- the story trace

def test_meta_lists_the_lanes(api):
    m = api.meta()
    ids = [ln["id"] for ln in m["lanes"]]
    assert ids[:2] == ["cpu:0", "cpu:1"]
    assert [i for i in ids if i.startswith("thread:")] == ["thread:1", "thread:2", "thread:3", "thread:4", "thread:9"]
    assert "hold:0xa000" in ids and "wait:0xa000" in ids
    assert m["summary"]["top_threads"][0]["name"] == "b"
    assert m["summary"]["top_mutexes"][0]["mutex"] == "0xa000"
    assert m["summary"]["lost"] == 5 and m["arrows"] == {"wake": 1, "handoff": 1, "packet": 0}
    assert {r["name"] for r in m["reports"]} >= {"sched", "mutex", "wakeup"} and m["default_report"] == "sched"


def test_view_cells_and_items(api):
    v = api.view(q(t0=100, t1=800, px=7, lanes="cpu:0,cpu:1,thread:3"))
    lanes = {ln["id"]: ln for ln in v["lanes"]}
    # CPU 0: main until 200, a until 510, main until 700 (its last record); columns of 100 ns,
    # the thread covering most of each wins
    assert cells_of(lanes["cpu:0"]) == [1, 2, 2, 2, 1, 1, EMPTY]
    assert lanes["cpu:0"]["items"]["key"] == [1, 2, 1]
    # thread b: running 150-180, waiting 180-300, runnable 300-305, running after
    assert cells_of(lanes["thread:3"])[2:] == [0, 0, 0, 0, 0]
    assert v["px"] == 7 and v["server_ms"] >= 0


def test_view_px_never_exceeds_the_nanoseconds(api):
    v = api.view(q(t0=100, t1=150, px=1000, lanes="cpu:0"))
    assert v["px"] == 50


def test_handoff_arrow_joins_a_and_b(api):
    v = api.view(q(t0=100, t1=800, px=700))
    h = v["arrows"]["handoff"]
    assert h["shown"] and h["from"] == ["thread:2"] and h["to"] == ["thread:3"]
    assert h["t_from"] == [401] and h["t_to"] == [450]
    w = v["arrows"]["wake"]
    assert w["from"] == ["thread:2"] and w["to"] == ["thread:3"] and w["t_from"] == [300] and w["t_to"] == [305]
    d = api.arrow(q(kind="handoff", row=0))["item"]
    assert d["title"] == "hand-off of 0xa000: a → b"
    assert [e["tracepoint"] for e in d["events"]] == ["mutex_handoff"]


def test_arrows_counted_not_sent_when_too_many(api):
    assert arrow_cap(300) == 100 and arrow_cap(10) == 64
    v = api.view(q(t0=100, t1=800, px=700, arrows="wake"))
    assert set(v["arrows"]) == {"wake"}


def test_arrows_only_between_lanes_in_view(api):
    v = api.view(q(t0=100, t1=800, px=700, lanes="thread:2,cpu:0"))
    assert v["arrows"]["handoff"]["n"] == 0


def test_item_details_slice_woken_by(api):
    d = api.item(q(lane="cpu:1", t=400))["item"]
    assert d["title"] == "b running on CPU 1"
    f = dict(d["fields"])
    assert f["woken by"] == "a [2]" and f["wake-up latency"] == "5ns"
    assert d["links"][0]["label"].startswith("woken by a [2]") and d["links"][0]["lane"] == "thread:2"
    sw = [e for e in d["events"] if e["tracepoint"] == "sched_switch"]
    assert sw[0]["args"] == {"next": "b [3]", "prev_state": "runnable"}


def test_item_details_hold_handed_over(api):
    d = api.item(q(lane="hold:0xa000", t=455))["item"]
    f = dict(d["fields"])
    assert f["owner"] == "b [3]" and f["handed over by"] == "a [2]" and f["contended"].startswith("yes")
    assert any(ln["lane"] == "thread:2" and ln["t0"] == 401 for ln in d["links"])
    w = api.item(q(lane="wait:0xa000", t=200))["item"]
    assert dict(w["fields"])["handed over by"] == "a [2]"
    assert [e["tracepoint"] for e in w["events"]] == ["mutex_lock_wait", "mutex_lock_wake"]


def test_item_none_and_tolerance(api):
    assert api.item(q(lane="thread:4", t=300))["item"] is None  # never ran: an empty lane
    assert api.item(q(lane="hold:0xa000", t=420, tol=0))["item"] is None
    assert api.item(q(lane="hold:0xa000", t=420, tol=40))["item"]["fields"][1] == ["owner", "a [2]"]  # nearest
    assert api.item(q(lane="hold:0xa000", t=440, tol=40))["item"]["fields"][1] == ["owner", "b [3]"]


def test_tracepoint_lane_and_find(api):
    v = api.view(q(t0=100, t1=800, px=70, lanes="tp:sched_switch"))
    assert v["lanes"][0]["items"]["start"] == [180, 200, 305, 510]
    d = api.find(q(lane="tp:sched_switch", t=200, dir="next"))["item"]
    assert d["t0"] == 305 and dict(d["fields"])["next"] == "b [3]"
    assert api.find(q(lane="tp:sched_switch", t=180, dir="prev"))["item"] is None
    e = api.item(q(lane="tp:mutex_handoff", t=401))["item"]
    assert dict(e["fields"])["to_tid"] == "b [3]"


def test_report(api):
    r = api.report(q(name="mutex"))
    assert r["columns"][0] == "mutex" and r["rows"][0][0] == "0xa000" and r["kinds"]["wait_total"] == "ns"
    r = api.report(q(name="sched", t0=100, t1=200))
    assert r["total"] >= 1


@pytest.mark.parametrize("name,params,msg", [
    ("view", dict(t1=10, px=10), "missing parameter 't0'"),
    ("view", dict(t0="x", t1=10, px=10), "not an integer"),
    ("view", dict(t0=500, t1=400, px=10), "empty time range"),
    ("view", dict(t0=100, t1=800, px=0), "outside"),
    ("view", dict(t0=100, t1=800, px=100000), "outside"),
    ("view", dict(t0=10**15, t1=10**15 + 5, px=10), "outside"),
    ("view", dict(t0=100, t1=800, px=10, lanes="cpu:7"), "no such lane"),
    ("view", dict(t0=100, t1=800, px=10, lanes="../../etc"), "no such lane"),
    ("view", dict(t0=100, t1=800, px=10, arrows="boom"), "no such arrow kind"),
    ("item", dict(lane="cpu:0"), "missing parameter 't'"),
    ("item", dict(lane="cpu:0", row=99), "no item with row"),
    ("arrow", dict(kind="handoff", row=5), "no handoff arrow"),
    ("find", dict(lane="cpu:0", t=1, dir="sideways"), "next or prev"),
    ("report", dict(name="nope"), "no such report"),
    ("nothing", {}, "no such API"),
    # absurd ranges and sizes
    ("view", dict(t0="nan", t1=800, px=10), "not an integer"),
    ("view", dict(t0=100, t1="1e300", px=10), "not an integer"),
    ("view", dict(t0=100, t1=10**300, px=10), "outside"),
    ("view", dict(t0=100, t1=800, px=-5), "outside"),
    ("view", dict(t0=100, t1=800, px=10**9), "outside"),
    ("view", dict(t0=100, t1=800, px="1.5"), "not an integer"),
    ("view", dict(t0=100, t1=800, px=10, lanes=",".join(["cpu:0"] * 3000)), "too many lanes"),
    ("view", dict(t0=100, t1=800, px=10, lanes="x" * 10000), "no such lane"),
    ("item", dict(lane="cpu:0", t=300, tol=10**18), "outside"),
    ("item", dict(lane="cpu:0", row=2**70), "outside"),
    ("item", dict(lane="cpu:0", row=-1), "outside"),
    ("arrow", dict(kind="handoff", row=10**30), "outside"),
    ("find", dict(lane="cpu:0", t="-inf"), "not an integer"),
    ("report", dict(name="sched", t0=900, t1=100), "empty time range"),
    ("report", dict(name="sched", t0=0, t1="9" * 5000), "not an integer"),
])
def test_bad_parameters(api, name, params, msg):
    with pytest.raises(ApiError, match=msg):
        api.handle(name, q(**params))


def test_repeated_parameter(api):
    with pytest.raises(ApiError, match="given 2 times"):
        api.view({"t0": ["1", "2"], "t1": ["800"], "px": ["10"]})


def test_a_trace_with_one_record(tmp_path, catalog):
    c0 = CpuStreamBuilder(catalog)
    c0.add("trace_marker", [500], 1, value=1, label="x")
    api = Api(Model(osvtrace.open(write_trace(tmp_path / "one.osvt", {0: c0.slots()}))))
    m = api.meta()
    assert m["t0"] == m["t1"] == 500 and [ln["id"] for ln in m["lanes"]][0] == "cpu:0"
    v = api.view(q(t0=0, t1=1000, px=100))
    assert v["px"] == 100 and v["arrows"]["wake"]["n"] == 0
    v = api.view(q(t0=0, t1=1000, px=100, lanes="tp:trace_marker"))
    assert v["lanes"][0]["items"]["start"] == [500]


# ---------------------------------------------------------------- packets

def test_channel_lane_and_packet_hops(packet_file):
    api = Api(Model(osvtrace.open(packet_file)))
    ids = [ln["id"] for ln in api.meta()["lanes"]]
    assert "chan:0xc000" in ids
    v = api.view(q(t0=0, t1=500, px=500))
    lanes = {ln["id"]: ln for ln in v["lanes"]}
    it = lanes["chan:0xc000"]["items"]
    assert it["start"] == [120] and it["end"] == [300] and it["key"] == [6]  # in the channel until popped
    p = v["arrows"]["packet"]
    assert p["from"] == ["cpu:0"] and p["to"] == ["cpu:1"] and p["t_from"] == [120] and p["t_to"] == [300]
    d = api.item(q(lane="chan:0xc000", t=200))["item"]
    f = dict(d["fields"])
    assert d["title"] == "packet 7" and f["consumer"] == "consumer [6]" and f["cpu hops"] == "1"
    assert [e["tracepoint"] for e in d["events"]] == ["net_rx", "net_classify", "net_channel_push",
                                                      "net_channel_pop", "net_tx"]
    # its critical path: receive on CPU 0 (rx to push), then the consumer's part (its records
    # say it ran: queued behind its own work until the pop, then serving until the tx); the
    # segments add up to rx>tx, each linked to its lane
    path = [(k, v) for k, v in d["fields"] if k.startswith("path: ")]
    assert path == [("path: receive", "20ns (8%)"), ("path: queued", "180ns (72%)"), ("path: serve", "50ns (20%)")]
    assert {"label": "receive (20ns)", "lane": "cpu:0", "t0": 100, "t1": 120} in d["links"]
    assert {"label": "queued (180ns)", "lane": "thread:6", "t0": 120, "t1": 300} in d["links"]
    assert {"label": "serve (50ns)", "lane": "thread:6", "t0": 300, "t1": 350} in d["links"]
    assert api.arrow(q(kind="packet", row=0))["item"]["title"] == "packet 7"
    rx = api.item(q(lane="tp:net_rx", t=100))["item"]  # an event links to its packet
    assert {"label": "packet 7 in channel 0xc000", "lane": "chan:0xc000", "t0": 120, "t1": 300} in rx["links"]


# ---------------------------------------------------------------- figure spec

def test_palette_indices():
    p = figure.palette()
    n = p["n"]
    assert len(p["colors"]) == n and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in p["colors"])
    assert p["colors"][p["states"]] == figure.STATE_COLORS["running"]
    assert p["colors"][p["state_light"] + 2] == figure.lighten(figure.STATE_COLORS["waiting"])
    assert p["colors"][p["thread_light"]] == figure.lighten(figure.THREAD_COLORS[0])
    assert p["colors"][p["other"]] == figure.OTHER_COLOR and p["colors"][p["dim"]] == figure.DIM_COLOR
    assert len(set(figure.THREAD_COLORS)) == len(figure.THREAD_COLORS) and p["dim"] == n - 1


def test_layout_template_keeps_lanes_fixed():
    t = figure.layout_template()
    assert t["yaxis"]["fixedrange"] and t["dragmode"] == "pan" and t["xaxis"]["side"] == "top"


def test_a_view_of_many_lanes_gets_fewer_columns_not_more_memory(api, monkeypatch):
    from osvtrace.viewer import api as api_mod

    monkeypatch.setattr(api_mod, "MAX_CELLS", 64)
    ids = [ln.id for ln in api.lanes.lanes][:8]
    v = api.view(q(t0=0, t1=1000, px=1000, lanes=",".join(ids)))
    assert v["px"] == 64 // len(ids) and len(v["lanes"]) == len(ids)
    assert all(len(base64.b64decode(ln["cover"])) == v["px"] for ln in v["lanes"])


_value = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(
    ["nan", "inf", "-inf", "1e300", "-0", "0x10", " 5", "1_000", "", "\x00", "٣", "cpu:0", "thread:5", "hold:0xdead0",
     "wake,handoff", "next", "prev", "sched", "mutex", "../../etc/passwd", "%00"]), st.text(max_size=30))
_params = st.dictionaries(st.sampled_from(["t0", "t1", "px", "lanes", "arrows", "lane", "t", "tol", "row", "kind",
                                            "dir", "name", "zzz"]), st.lists(_value, min_size=1, max_size=2),
                          max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["view", "item", "arrow", "find", "report", "meta", "nope", ""]), _params)
def test_any_request_is_an_answer_or_a_one_line_400(endpoint, params):
    """Through the server's request handling (the viewer harness' property): 200, 400 or 404,
    never a 500; valid JSON without NaN; errors one line; a view within its cell budget."""
    import json
    from urllib.parse import urlencode

    from tests.fuzz import viewer_api
    from osvtrace.viewer.api import MAX_CELLS

    path = f"/api/{endpoint}?" + urlencode([(k, v) for k, vs in params.items() for v in vs])
    status, body = viewer_api.check_answer(path, "127.0.0.1:8737")
    if status == 200 and endpoint == "view":
        v = json.loads(body)
        assert v["px"] * max(len(v["lanes"]), 1) <= MAX_CELLS
