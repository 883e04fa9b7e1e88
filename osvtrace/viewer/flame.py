"""The flame graph panel's data: the call tree of one profile (CPU samples, blocked time, lock
wait, lock hold) over a time window, a thread or a lock, laid out for drawing; and where one of
its frames was on the stack (the sample instants, the wait and hold intervals), for the timeline.

The tree is the reports' own: the samples of osvtrace.reports.profiles, named and merged by
osvtrace.reports.calltree (machinery frames dropped, heaviest first), so the panel and
`osvtrace report prof|prof-wait|prof-lock --tree caller` agree node for node. Only the layout
(each node's left edge) and the pruning bound are added here.

Size is bounded: nodes under MIN_SHARE (0.1 %) of the whole are pruned with their subtrees, and when
more than MAX_NODES remain the bar is raised until they fit; the answer says how many nodes and
how much weight went. Highlights are merged per lane, and when more than MAX_HITS remain,
neighbours closer than a growing gap are joined, so an answer stays small whatever the trace.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.stacks import NO_STACK
from osvtrace.reports.calltree import Named, Tree, build, name_paths, preorder
from osvtrace.reports.prof import stack_notes
from osvtrace.reports.profiles import Profile, Samples, aggregate, samples
from osvtrace.viewer.lanes import Lanes, hexaddr

# profile kind -> what its widths are, in words (the panel's menu)
KINDS = {"prof": "CPU samples", "prof-wait": "blocked time by the waiter's stack",
         "prof-lock": "lock wait by the waiter's stack", "prof-hold": "lock hold by the holder's stack"}
LOCK_KINDS = ("prof-wait", "prof-lock", "prof-hold")
ORDERS = ("caller", "callee")
MIN_SHARE = 0.001  # nodes under 0.1 % of the whole are pruned: about a pixel at the panel's usual width
MAX_NODES = 2000  # at most this many nodes drawn (plotly draws a bar per node)
MAX_HITS = 20_000  # highlight intervals sent for one frame

NO_STACKS = ("no stacks: record them with --sampler HZ (CPU samples) or --tracebt mutex_lock_wait,sched_wait "
             "(waits and holds); on OSv, --trace-backtrace and --sampler=HZ")


@dataclass(frozen=True)
class FlameQuery:
    """One flame graph: what is weighed, over which window, thread and lock, in which order."""

    kind: str
    since: int | None = None
    until: int | None = None
    thread: int | None = None
    lock: int | None = None
    order: str = "caller"
    max_nodes: int = MAX_NODES

    def filter(self) -> Filter:
        return Filter(threads=[] if self.thread is None else [str(self.thread)], since=self.since, until=self.until)


@dataclass
class _Built:
    s: Samples
    p: Profile
    named: Named
    tree: Tree
    cols: dict[str, np.ndarray]
    threshold: int
    pruned_nodes: int
    pruned_value: int


class Flame:
    """Flame graphs of one model. Calls are serialised (by `lock`, which the viewer's reports
    share): the model interns stacks and caches names as it goes."""

    def __init__(self, model: Model, lanes: Lanes, lock: threading.Lock | None = None):
        self.model = model
        self.lanes = lanes
        self._lock = lock or threading.Lock()

    def known_locks(self) -> set[int]:
        """Every mutex and wait object the trace names (a lock filter must be one of them)."""
        if not hasattr(self, "_locks"):
            m = self.model
            with self._lock:
                out = set(m.mutex_wait["mutex"].tolist()) | set(m.mutex_hold["mutex"].tolist())
                self._locks = (out | set(m.thread_state["blocked_on"].tolist())) - {0}
        return self._locks

    def _build(self, q: FlameQuery) -> _Built:
        s, source, metric = samples(self.model, q.filter(), q.kind)
        if q.lock is not None:
            s = s.take(s.lock == np.uint64(q.lock))
        p = aggregate(self.model, s, q.kind, source, metric)
        named = name_paths(self.model, p.stack, caller_first=q.order == "caller")
        t = build(p, named)
        tw = t.ns if p.metric == "ns" else t.count
        total = int(tw[t.parent < 0].sum()) if len(tw) else 0
        # a child weighs no more than its parent, so a weight bar keeps the tree connected
        threshold = max(1, int(np.ceil(total * MIN_SHARE)))
        inner = tw[t.parent >= 0]
        if (inner >= threshold).sum() > q.max_nodes - 1:
            threshold = int(np.sort(inner)[::-1][q.max_nodes - 1]) + 1
        kept = (t.parent < 0) | (tw >= threshold)
        top = ~kept & kept[np.maximum(t.parent, 0)]  # the roots of the pruned subtrees
        cols = preorder(t, named, p.metric, threshold if p.metric == "ns" else 0,
                        threshold if p.metric != "ns" else 0)
        return _Built(s, p, named, t, cols, threshold, int((~kept).sum()), int(tw[top].sum()))

    def tree(self, q: FlameQuery) -> dict[str, Any]:
        """The tree as columns for drawing, with its totals, what was pruned and notes."""
        with self._lock:
            b = self._build(q)
        p, cols = b.p, b.cols
        value = cols["total"] if p.metric == "ns" else cols["count"]
        parent = cols["parent"].tolist()
        x0 = _left_edges(parent, value.tolist())
        names = [str(x) for x in cols["frame"].tolist()]
        if names:
            names[0] = self.root_label(q)
        total = int(value[0]) if len(value) else 0
        nodes = {"name": names, "addr": [hexaddr(a) if a else "" for a in cols["addr"].tolist()],
                 "parent": parent, "level": cols["level"].tolist(), "x0": x0, "value": value.tolist(),
                 "count": cols["count"].tolist(), "pct": [round(float(x), 3) for x in cols["pct"].tolist()]}
        n = len(b.s.event)
        empty = None
        if not n:
            where = "in this range" if q.since is not None else "in this trace"
            empty = f"nothing to draw: no {KINDS[q.kind].split(' by ')[0]} {where}" \
                    f"{' by this thread' if q.thread is not None else ''}{' on this lock' if q.lock is not None else ''}"
        elif p.missing == n:
            empty = f"{NO_STACKS}. None of the {n:,} samples here ({p.source}) has one."
        elif len(parent) <= 1:
            empty = "every stack here is tracing or scheduling machinery only (left out, as the reports do)"
        notes = list(p.notes) + stack_notes(self.model, p)
        if b.pruned_nodes:
            share = b.pruned_value * 100.0 / max(total, 1)  # the root keeps the whole, pruned or not
            notes.append(f"pruned {b.pruned_nodes:,} nodes under {_amount(b.threshold, p.metric)} each "
                         f"({share:.1f}% of the weight): zoom in or pick a thread or lock to see them")
        return {"kind": q.kind, "title": KINDS[q.kind], "source": p.source, "metric": p.metric, "order": q.order,
                "t0": q.since, "t1": q.until, "thread": q.thread, "lock": None if q.lock is None else hexaddr(q.lock),
                "samples": n, "missing": p.missing, "total": total, "nodes": nodes,
                "pruned": {"nodes": b.pruned_nodes, "value": b.pruned_value, "below": b.threshold},
                "empty": empty, "notes": notes}

    def root_label(self, q: FlameQuery) -> str:
        parts = [KINDS[q.kind].split(" by ")[0]]
        if q.thread is not None:
            parts.append(f"thread {self.model.trace.thread_name(q.thread)} [{q.thread}]")
        if q.lock is not None:
            parts.append(str(self.model.name_addresses(np.array([q.lock], np.uint64))[0]))
        return " · ".join(parts)

    def hits(self, q: FlameQuery, node: int) -> dict[str, Any]:
        """Where node `node` of q's tree was on the stack: per lane, merged [start, end) intervals
        (an instant has start == end) of the samples whose path passes through it."""
        with self._lock:
            b = self._build(q)
        cols = b.cols
        if not 0 <= node < len(cols["parent"]):
            raise IndexError(f"no node {node}: the tree has {len(cols['parent'])}")
        path = []
        k = node
        while cols["parent"][k] >= 0:  # the node's frames, root's child first
            path.append(str(cols["frame"][k]))
            k = int(cols["parent"][k])
        path.reverse()
        s, named = b.s, b.named
        ids = {str(x): i for i, x in enumerate(named.names.tolist())}
        want = np.array([ids[x] for x in path], np.int32)
        # per distinct stack (few), then per sample by lookup: never a (samples x depth) matrix
        paths = named.paths
        through = np.zeros(len(paths), bool)
        if paths.shape[1] >= max(len(want), 1):
            # the root (no frames) stands for every sample drawn in the tree: not all machinery
            through = (paths[:, :len(want)] == want).all(axis=1) & (paths[:, 0] >= 0)
        has = s.stack != NO_STACK
        on = np.zeros(len(s.event), bool)
        if has.any() and len(named.stack_ids):
            on[has] = through[named.rows(s.stack[has])]
        sel = s.take(on)
        lanes, lane, start, end = self._lanes_of(q.kind, sel)
        start, end, lane, gap = _merge(lane, start, end, len(lanes))
        frame = path[-1] if path else self.root_label(q)
        return {"node": node, "frame": frame, "path": path, "samples": int(on.sum()), "ns": int(sel.ns.sum()),
                "lanes": lanes, "lane": lane.tolist(), "start": start.tolist(), "end": end.tolist(), "merged_gap": gap}

    def _lanes_of(self, kind: str, s: Samples) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The timeline lanes where these samples show: the thread's, plus the CPU's (samples),
        the mutex's waits (lock wait) or holds (lock hold). Only lanes the viewer has."""
        assert s.start is not None
        start = s.start.astype(np.int64)
        end = start + s.ns.astype(np.int64)
        groups = [(lambda v: f"thread:{v}", s.tid)]
        if kind == "prof":
            groups.append((lambda v: f"cpu:{v}", self.model.trace.events.cpu[s.event]))
        elif kind in ("prof-lock", "prof-hold"):
            pre = "wait:" if kind == "prof-lock" else "hold:"
            groups.append((lambda v: pre + hexaddr(v), s.lock))
        lanes: list[str] = []
        lane_l, st_l, en_l = [], [], []
        for name, key in groups:  # per distinct key, never per sample: samples may be millions
            u, inv = np.unique(key, return_inverse=True)
            inv = inv.reshape(-1)
            ids = [name(int(v)) for v in u.tolist()]
            known = np.array([i in self.lanes.by_id for i in ids], bool)
            remap = len(lanes) + np.cumsum(known) - 1
            lanes += [i for i, k in zip(ids, known.tolist()) if k]
            ok = known[inv] if len(inv) else np.zeros(0, bool)
            lane_l.append(remap[inv[ok]])
            st_l.append(start[ok])
            en_l.append(end[ok])
        return lanes, np.concatenate(lane_l).astype(np.int64), np.concatenate(st_l), np.concatenate(en_l)


def _left_edges(parent: list[int], value: list[int]) -> list[int]:
    """Each node's left edge: its parent's, plus the widths of the siblings before it (preorder
    puts a node's heavier siblings, with their subtrees, before it)."""
    x0 = [0] * len(parent)
    nxt: dict[int, int] = {}  # per parent, where its next child starts
    for i, p in enumerate(parent):
        at = nxt.get(p, 0 if p < 0 else x0[p])
        x0[i] = at
        nxt[p] = at + value[i]
    return x0


def _merge(lane: np.ndarray, start: np.ndarray, end: np.ndarray, nlanes: int, limit: int = MAX_HITS
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Overlapping (or touching) intervals of a lane joined; while more than `limit` remain,
    intervals closer than a gap are joined too, the gap doubling from 1 ns. Returns the merged
    (start, end, lane) sorted by lane then start, and the gap used (0: only overlaps)."""
    order = np.lexsort((start, lane))
    lane, start, end = lane[order], start[order], end[order]
    gap = 0
    while True:
        out_s, out_e, out_l = [], [], []
        for ln in range(nlanes):
            a, b = np.searchsorted(lane, ln, "left"), np.searchsorted(lane, ln, "right")
            if a == b:
                continue
            s, e = start[a:b], np.maximum.accumulate(end[a:b])
            new = np.concatenate(([True], s[1:] > e[:-1] + gap))
            first = np.flatnonzero(new)
            last = np.concatenate((first[1:], [len(s)])) - 1
            out_s.append(s[first])
            out_e.append(e[last])
            out_l.append(np.full(len(first), ln, np.int64))
        ms = np.concatenate(out_s) if out_s else np.zeros(0, np.int64)
        me = np.concatenate(out_e) if out_e else np.zeros(0, np.int64)
        ml = np.concatenate(out_l) if out_l else np.zeros(0, np.int64)
        if len(ms) <= limit:
            return ms, me, ml, gap
        gap = max(1, gap * 2)


def _amount(v: int, metric: str) -> str:
    from osvtrace.model.filters import format_duration

    return format_duration(v) if metric == "ns" else f"{v:,} samples"
