"""The viewer's JSON API over a trace's model: what the page asks and what it gets back.

    GET /api/meta                                   lanes, threads, mutexes, summary, palette
    GET /api/view?t0=NS&t1=NS&px=W[&lanes=..][&arrows=wake,handoff,packet]
                                                    per-pixel cells of each lane, exact items
                                                    where few, arrows where few
    GET /api/item?lane=ID&t=NS[&tol=NS]  or  &row=R the item under the pointer, with details
    GET /api/arrow?kind=K&row=R                     a wake-up, hand-off or packet hop
    GET /api/find?lane=ID&t=NS&dir=next|prev        the next (previous) item of a lane
    GET /api/report?name=N[&t0=NS&t1=NS]            a report's table (osvtrace.reports)
    GET /api/flame?kind=K[&t0=NS&t1=NS][&thread=TID][&lock=0xADDR][&order=caller|callee]
                                                    a profile's call tree laid out as a flame graph
    GET /api/flame-hits?(the same)&node=N           where node N's frame was on the stack: lanes
                                                    and intervals (instants for samples)

Bad parameters raise ApiError, which the server answers with 400 and {"error": "..."}.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any, Callable

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.viewer import figure
from osvtrace.viewer.details import Details
from osvtrace.viewer.flame import KINDS as FLAME_KINDS
from osvtrace.viewer.flame import LOCK_KINDS, MAX_NODES, ORDERS, Flame, FlameQuery
from osvtrace.viewer.lanes import Lanes
from osvtrace.viewer.lod import edges

MAX_PX = 8192  # widest view in pixel columns
MAX_LANES = 2048  # lanes in one view request
MAX_CELLS = 1 << 19  # lanes x pixel columns in one view (8192 px x 64 lanes): bounds an answer (~12 bytes a cell
# as JSON) and its memory
EXACT_PER_LANE = 400  # a lane sends its items (not only cells) when at most this many are in view
EXACT_TOTAL = 20_000  # ... and while the view's total stays under this
ARROWS_MAX = 2_000  # per kind: more than this in view and the arrows are counted, not sent ...
ARROW_PX = 3  # ... and more than one per this many pixel columns is clutter, not information
ARROW_KINDS = ("wake", "handoff", "packet")
DEFAULT_REPORT = "sched"  # the table shown when the page opens (computed before the server starts)


class ApiError(ValueError):
    """A bad request: the message is one line for the user."""


def b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _one(q: dict[str, list[str]], name: str, default: str | None = None) -> str:
    v = q.get(name)
    if not v:
        if default is None:
            raise ApiError(f"missing parameter {name!r}")
        return default
    if len(v) > 1:
        raise ApiError(f"parameter {name!r} given {len(v)} times")
    return v[0]


def _int(q: dict[str, list[str]], name: str, lo: int, hi: int, default: int | None = None) -> int:
    text = _one(q, name, None if default is None else str(default))
    try:
        v = int(text)
    except ValueError:
        raise ApiError(f"parameter {name!r}: not an integer: {text[:40]!r}") from None
    if not lo <= v <= hi:
        raise ApiError(f"parameter {name!r}: {v} is outside {lo}..{hi}")
    return v


class Api:
    def __init__(self, model: Model, *, lanes: Lanes | None = None):
        self.model = model
        self.trace = model.trace
        self.lanes = lanes or Lanes(model)
        self.details = Details(model, self.lanes)
        # NOTE: reports and flame graphs grow the model's caches (interned stacks, names): one at a time
        self._report_lock = threading.Lock()
        self.flames = Flame(model, self.lanes, self._report_lock)
        self.t_first, self.t_last = self.trace.span_ns
        # any time inside +-1 trace span of the trace is accepted (room to zoom out a little)
        span = max(self.t_last - self.t_first, 1)
        self.t_lo, self.t_hi = self.t_first - span - 1_000_000, self.t_last + span + 1_000_000
        self.routes: dict[str, Callable[[dict[str, list[str]]], dict[str, Any]]] = {
            "meta": lambda q: self.meta(), "view": self.view, "item": self.item, "arrow": self.arrow,
            "find": self.find, "report": self.report, "flame": self.flame, "flame-hits": self.flame_hits}
        self._meta: dict[str, Any] | None = None
        self._reports: dict[str, dict[str, Any]] = {}

    def handle(self, name: str, q: dict[str, list[str]]) -> dict[str, Any]:
        fn = self.routes.get(name)
        if fn is None:
            raise ApiError(f"no such API: {name[:40]!r}; try one of {', '.join(self.routes)}")
        return fn(q)

    # ------------------------------------------------------------ meta

    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = self._build_meta()
        return self._meta

    def _build_meta(self) -> dict[str, Any]:
        from osvtrace.reports import registry

        tables = registry.tables()
        t, m = self.trace, self.model
        th = m.threads
        order = np.argsort(th["tid"])
        pal = figure.palette()
        threads = [{"tid": int(th["tid"][i]), "name": str(th["name"][i]), "cpu_time": int(th["cpu_time"][i]),
                    "slices": int(th["slices"][i]), "events": int(th["events"][i]), "color": k % pal["threads"]}
                   for k, i in enumerate(order.tolist())]
        span = max(self.t_last - self.t_first, 1)
        top_threads = sorted(threads, key=lambda r: -r["cpu_time"])[:10]
        w = m.mutex_wait
        mutexes = []
        for addr in self.lanes.mutex_order:
            sel = w["mutex"] == addr
            d = w["dur"][sel]
            mutexes.append({"mutex": f"{int(addr):#x}", "waits": int(sel.sum()), "wait_total": int(d.sum()),
                            "wait_max": int(d.max()) if len(d) else 0,
                            "holds": int((m.mutex_hold["mutex"] == addr).sum())})
        top_mutexes = sorted((x for x in mutexes if x["waits"]), key=lambda r: -r["wait_total"])[:10]
        tps = m.tracepoints
        lost = m.lost
        return {
            "file": str(t.path.name), "events": len(t), "cpus": t.ncpus, "t0": self.t_first, "t1": self.t_last,
            "lanes": [ln.spec() for ln in self.lanes.lanes if ln.kind != "tp"],
            "threads": threads,
            "mutexes": mutexes,
            "tracepoints": [{"name": str(n), "id": int(i), "count": int(c)}
                            for n, i, c in zip(tps["name"], tps["id"], tps["count"]) if c],
            "summary": {"top_threads": [dict(r, share=r["cpu_time"] / span) for r in top_threads],
                        "top_mutexes": top_mutexes,
                        "lost": int(lost["count"].sum()) if len(lost) else 0,
                        "lost_by_cpu": {str(int(c)): int(lost["count"][lost["cpu"] == c].sum())
                                        for c in np.unique(lost["cpu"])} if len(lost) else {},
                        "warnings": list(t.warnings)},
            "reports": [{"name": s.name, "doc": s.doc} for s in tables],
            "flame_kinds": [{"kind": k, "label": v} for k, v in FLAME_KINDS.items()],
            "default_report": DEFAULT_REPORT if any(s.name == DEFAULT_REPORT for s in tables)
            else next((s.name for s in tables), None),
            "arrows": {k: len(a) for k, a in self.lanes.arrows.items()},
            "palette": pal, "layout": figure.layout_template(),
            "limits": {"max_px": MAX_PX, "exact_per_lane": EXACT_PER_LANE, "arrows_max": ARROWS_MAX,
                       "arrow_px": ARROW_PX},
        }

    # ------------------------------------------------------------ view

    def _range(self, q: dict[str, list[str]]) -> tuple[int, int]:
        t0 = _int(q, "t0", self.t_lo, self.t_hi)
        t1 = _int(q, "t1", self.t_lo, self.t_hi)
        if t1 <= t0:
            raise ApiError(f"empty time range: t1 ({t1}) must be after t0 ({t0})")
        return t0, t1

    def _lane_ids(self, q: dict[str, list[str]]) -> list[str]:
        text = _one(q, "lanes", "")
        ids = [x for x in text.split(",") if x] if text else [ln.id for ln in self.lanes.lanes if ln.default]
        if len(ids) > MAX_LANES:
            raise ApiError(f"too many lanes: {len(ids)} (at most {MAX_LANES})")
        for i in ids:
            if self.lanes.get(i) is None:
                raise ApiError(f"no such lane: {i[:60]!r}")
        return ids

    def view(self, q: dict[str, list[str]]) -> dict[str, Any]:
        clock = time.perf_counter()
        t0, t1 = self._range(q)
        px = min(_int(q, "px", 1, MAX_PX), t1 - t0)  # a column is at least 1 ns wide
        ids = self._lane_ids(q)
        # Many lanes at full width: fewer, wider columns (the page draws the px it gets back).
        px = max(1, min(px, MAX_CELLS // max(len(ids), 1)))
        kinds = [k for k in _one(q, "arrows", ",".join(ARROW_KINDS)).split(",") if k]
        for k in kinds:
            if k not in ARROW_KINDS:
                raise ApiError(f"no such arrow kind: {k[:20]!r} (kinds: {', '.join(ARROW_KINDS)})")
        e = edges(t0, t1, px)
        out_lanes = []
        budget = EXACT_TOTAL
        for lid in ids:
            idx = self.lanes.get(lid).index  # type: ignore[union-attr]
            c = idx.cells(e)
            keys, pos = np.unique(c.key[c.key >= 0], return_inverse=True)
            kcell = np.where(c.key >= 0, 0, c.key).astype(np.int32)
            kcell[c.key >= 0] = pos
            lane: dict[str, Any] = {"id": lid, "keys": keys.tolist(), "key": b64(kcell, "<i4"),
                                    "cover": b64(c.cover, "u1"), "count": b64(np.minimum(c.count, 2**32 - 1), "<u4"),
                                    "items": None}
            lo, hi = idx.range(t0, t1)
            lane["n"] = hi - lo  # items in view (an upper bound when items overlap)
            if hi - lo <= min(EXACT_PER_LANE, budget):
                it = idx.items(t0, t1, EXACT_PER_LANE)
                if it is not None:
                    budget -= len(it)
                    lane["items"] = {"start": idx.start[it].tolist(), "end": idx.end[it].tolist(),
                                     "key": idx.key[it].tolist(), "row": idx.row[it].tolist()}
            out_lanes.append(lane)
        arrows = {}
        wanted = np.zeros(len(self.lanes.lanes) + 1, bool)
        for lid in ids:
            wanted[self.lanes.pos[lid]] = True
        for k in kinds:
            a = self.lanes.arrows[k]
            cap = arrow_cap(px)
            sel = a.in_range(t0, t1, 4 * cap)
            if isinstance(sel, int):  # far too many: counted (all lanes), not listed
                arrows[k] = {"n": sel, "shown": False}
                continue
            sel = sel[wanted[a.l_from[sel]] & wanted[a.l_to[sel]]]  # l == -1 picks the last entry: False
            if len(sel) > cap:
                arrows[k] = {"n": len(sel), "shown": False}
                continue
            lane_id = [ln.id for ln in self.lanes.lanes]
            arrows[k] = {"n": len(sel), "shown": True, "t_from": a.t_from[sel].tolist(), "t_to": a.t_to[sel].tolist(),
                         "from": [lane_id[i] for i in a.l_from[sel].tolist()],
                         "to": [lane_id[i] for i in a.l_to[sel].tolist()], "row": a.row[sel].tolist()}
        return {"t0": t0, "t1": t1, "px": px, "lanes": out_lanes, "arrows": arrows,
                "server_ms": round((time.perf_counter() - clock) * 1000, 2)}

    # ------------------------------------------------------------ items

    def item(self, q: dict[str, list[str]]) -> dict[str, Any]:
        lid = _one(q, "lane")
        lane = self.lanes.get(lid)
        if lane is None:
            raise ApiError(f"no such lane: {lid[:60]!r}")
        idx = lane.index
        if "row" in q:
            row = _int(q, "row", 0, 2**62)
            hit = np.nonzero(idx.row == row)[0]
            if not len(hit):
                raise ApiError(f"lane {lid}: no item with row {row}")
            k = int(hit[0])
        else:
            t = _int(q, "t", self.t_lo, self.t_hi)
            tol = _int(q, "tol", 0, self.t_hi - self.t_lo, 0)
            k = idx.at(t, tol)
            if k is None:
                return {"item": None}
        return {"item": self.details.item(lane, int(idx.row[k]))}

    def arrow(self, q: dict[str, list[str]]) -> dict[str, Any]:
        kind = _one(q, "kind")
        if kind not in ARROW_KINDS:
            raise ApiError(f"no such arrow kind: {kind[:20]!r}")
        a = self.lanes.arrows[kind]
        row = _int(q, "row", 0, 2**62)
        limit = len(self.model.packet_flow) if kind == "packet" else len(a)
        if row >= limit:
            raise ApiError(f"no {kind} arrow {row}")
        return {"item": self.details.arrow(kind, row)}

    def find(self, q: dict[str, list[str]]) -> dict[str, Any]:
        lid = _one(q, "lane")
        lane = self.lanes.get(lid)
        if lane is None:
            raise ApiError(f"no such lane: {lid[:60]!r}")
        t = _int(q, "t", self.t_lo, self.t_hi)
        d = _one(q, "dir", "next")
        if d not in ("next", "prev"):
            raise ApiError("parameter 'dir': next or prev")
        idx = lane.index
        k = int(np.searchsorted(idx.start, t, "right")) if d == "next" else \
            int(np.searchsorted(idx.start, t, "left")) - 1
        if not 0 <= k < idx.n:
            return {"item": None}
        return {"item": self.details.item(lane, int(idx.row[k]))}

    def report(self, q: dict[str, list[str]]) -> dict[str, Any]:
        from osvtrace.reports import registry
        from osvtrace.reports.render import viewer_json

        name = _one(q, "name")
        spec = registry.REGISTRY.get(name)
        if spec is None or not spec.table:
            raise ApiError(f"no such report: {name[:40]!r}; reports: {', '.join(s.name for s in registry.tables())}")
        opts = registry.options(spec, {})
        if "t0" in q or "t1" in q:
            since, until = self._range(q)
            with self._report_lock:
                return viewer_json(registry.run(spec, self.model, Filter(since=since, until=until), opts))
        with self._report_lock:  # the whole trace's tables are computed once
            if name not in self._reports:
                self._reports[name] = viewer_json(registry.run(spec, self.model, Filter(), opts))
            return self._reports[name]

    # ------------------------------------------------------------ flame graph

    def _flame_query(self, q: dict[str, list[str]]) -> FlameQuery:
        """The flame graph asked for, every parameter checked (a bad one is a 400, never a traceback)."""
        kind = _one(q, "kind")
        if kind not in FLAME_KINDS:
            raise ApiError(f"no such flame graph kind: {kind[:40]!r}; kinds: {', '.join(FLAME_KINDS)}")
        since = until = None
        if "t0" in q or "t1" in q:
            since, until = self._range(q)
        thread = None
        if "thread" in q:
            thread = _int(q, "thread", 0, 2**32 - 1)
            if thread not in self._tids():
                raise ApiError(f"no such thread: {thread}")
        lock = None
        if "lock" in q:
            text = _one(q, "lock")
            if kind not in LOCK_KINDS:
                raise ApiError(f"parameter 'lock' applies to {', '.join(LOCK_KINDS)}, not {kind}")
            try:
                lock = int(text, 16)
            except ValueError:
                raise ApiError(f"parameter 'lock': not a hex address: {text[:40]!r}") from None
            if lock not in self.flames.known_locks():
                raise ApiError(f"no such lock: {text[:40]!r} (no mutex or wait object at that address)")
        order = _one(q, "order", "caller")
        if order not in ORDERS:
            raise ApiError(f"parameter 'order': caller or callee, not {order[:20]!r}")
        return FlameQuery(kind, since, until, thread, lock, order, _int(q, "max_nodes", 2, 10 * MAX_NODES, MAX_NODES))

    def _tids(self) -> set[int]:
        if not hasattr(self, "_tid_set"):
            self._tid_set = set(self.model.threads["tid"].tolist())
        return self._tid_set

    def flame(self, q: dict[str, list[str]]) -> dict[str, Any]:
        return self.flames.tree(self._flame_query(q))

    def flame_hits(self, q: dict[str, list[str]]) -> dict[str, Any]:
        fq = self._flame_query({k: v for k, v in q.items() if k != "node"})
        node = _int(q, "node", 0, 10 * MAX_NODES)
        try:
            return self.flames.hits(fq, node)
        except IndexError as e:
            raise ApiError(str(e)) from None


def arrow_cap(px: int) -> int:
    """Most arrows of one kind drawn in a view px columns wide (viewer/js/api.js has the same)."""
    return min(ARROWS_MAX, max(64, px // ARROW_PX))
