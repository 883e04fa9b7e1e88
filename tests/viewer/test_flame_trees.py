"""The flame graph is the reports' tree: on the committed real OSv trace (10-frame backtraces,
a CPU sampler, mutex waits and holds), /api/flame's nodes are the rows of `report prof`,
`prof-wait` and `prof-lock [--hold] --tree caller` pruned at the same weight, node for node;
a thread or lock narrows both alike; a frame's marks count what its node counts."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY
from osvtrace.reports.registry import options
from osvtrace.viewer.api import Api
from tests.support.osv_traces import fixture

REPORTS = {"prof": ("prof", {}), "prof-wait": ("prof-wait", {}), "prof-lock": ("prof-lock", {}),
           "prof-hold": ("prof-lock", {"hold": True})}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Api:
    return Api(Model(osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv")))))


def report_rows(model: Model, kind: str, below: int, metric: str, flt: Filter | None = None) -> list[tuple]:
    name, more = REPORTS[kind]
    spec = REGISTRY[name]
    prune = {"min_duration": below} if metric == "ns" else {"min_count": below}
    r = spec.fn(model, flt or Filter(), options(spec, {"limit": None, "tree": "caller", **more, **prune}))
    c = r.columns
    value = c["total"] if metric == "ns" else c["count"]
    return list(zip(c["level"].tolist()[1:], c["frame"].tolist()[1:], c["parent"].tolist()[1:], value.tolist()[1:]))


def flame_rows(t: dict) -> list[tuple]:
    n = t["nodes"]
    return list(zip(n["level"][1:], n["name"][1:], n["parent"][1:], n["value"][1:]))


@pytest.mark.parametrize("kind", list(REPORTS))
def test_the_flame_graph_is_the_reports_caller_tree_pruned_at_its_bar(api, kind):
    t = api.handle("flame", {"kind": [kind]})
    assert len(t["nodes"]["name"]) > 3, t["empty"]
    assert flame_rows(t) == report_rows(api.model, kind, t["pruned"]["below"], t["metric"])
    assert len(t["nodes"]["name"]) <= 2000


def test_a_thread_and_a_lock_narrow_the_graph_as_they_narrow_the_report(api):
    m = api.model
    w = m.mutex_wait
    lock = int(np.bincount(np.unique(w["mutex"], return_inverse=True)[1]).argmax())
    addr = int(np.unique(w["mutex"])[lock])
    t = api.handle("flame", {"kind": ["prof-lock"], "lock": [f"{addr:#x}"]})
    assert t["samples"] == int((w["mutex"] == addr).sum())
    tid = int(np.bincount(w["tid"]).argmax())
    t = api.handle("flame", {"kind": ["prof-lock"], "thread": [str(tid)]})
    assert flame_rows(t) == report_rows(m, "prof-lock", t["pruned"]["below"], "ns", Filter(threads=[str(tid)]))


def test_a_frames_marks_count_what_its_node_counts(api):
    t = api.handle("flame", {"kind": ["prof"]})
    n = t["nodes"]
    for node in (1, len(n["name"]) // 2, len(n["name"]) - 1):
        h = api.handle("flame-hits", {"kind": ["prof"], "node": [str(node)]})
        assert h["samples"] == n["count"][node] and h["frame"] == n["name"][node]
        threads = sum(1 for ln in h["lane"] if h["lanes"][ln].startswith("thread:"))
        assert threads <= h["samples"]  # instants at one time on one thread merge
