"""The viewer's lanes and arrows, built from the model's tables.

Lanes (top to bottom): one per CPU (sched slices keyed by thread), one per thread (states),
two per mutex (holds keyed by owner, waits keyed by waiter), one per net channel (packets
from push to pop, keyed by consumer) and, on demand, one per tracepoint (its events, keyed
by CPU). Arrows: wake-ups and mutex hand-offs between thread lanes, packet hops between the
lanes a packet passed through. Every lane's index is built once, on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.model import Model
from osvtrace.model.net import STAGES
from osvtrace.viewer.lod import LaneIndex

MAX_DEFAULT_THREADS = 256  # thread lanes shown without a filter (by CPU time); the rest via search
MAX_DEFAULT_MUTEXES = 16  # mutexes shown without a filter (by total wait, then acquisitions)


def hexaddr(a: int) -> str:
    return f"{int(a):#x}"


@dataclass
class Lane:
    """One row of the timeline. `build` returns (start, end, key, row) columns; row indexes
    the lane's source table (`table`), or the event table for tracepoint lanes."""

    id: str
    kind: str  # cpu | thread | hold | wait | chan | tp
    label: str
    group: str
    color_by: str  # thread | state | cpu
    table: str
    info: dict
    default: bool
    build: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    _index: LaneIndex | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def index(self) -> LaneIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = LaneIndex(*self.build())
        return self._index

    def spec(self) -> dict:
        return {"id": self.id, "kind": self.kind, "label": self.label, "group": self.group,
                "color_by": self.color_by, "default": self.default, **self.info}


def _groups(values: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per distinct value, each in table order (one stable sort, no scan per value)."""
    if not len(values):
        return {}
    order = np.argsort(values, kind="stable")
    v = values[order]
    cut = np.nonzero(v[1:] != v[:-1])[0] + 1
    starts = np.concatenate(([0], cut))
    return {int(v[s]): part for s, part in zip(starts, np.split(order, cut))}


class Arrows:
    """Arrows of one kind between lanes: (from time, from lane, to time, to lane, source row),
    sorted by the earlier end, with a running max of the later end to find those in a range."""

    def __init__(self, t_from: np.ndarray, l_from: np.ndarray, t_to: np.ndarray, l_to: np.ndarray, row: np.ndarray):
        lo = np.minimum(t_from, t_to)
        order = np.argsort(lo, kind="stable")
        self.t_from, self.l_from, self.t_to, self.l_to, self.row = (
            np.asarray(a)[order] for a in (t_from, l_from, t_to, l_to, row))
        self.lo = lo[order]
        self.hi = np.maximum.accumulate(np.maximum(self.t_from, self.t_to)) if len(order) else self.lo

    def __len__(self) -> int:
        return len(self.row)

    def in_range(self, t0: int, t1: int, cap: int | None = None) -> np.ndarray | int:
        """Indices of the arrows touching [t0, t1]; or, when more than `cap` surely do, just
        a count (at least that many) without building any array of them."""
        a = int(np.searchsorted(self.hi, t0, "left"))
        b = int(np.searchsorted(self.lo, t1, "right"))
        if cap is not None and b - a > cap:
            inside = b - int(np.searchsorted(self.lo, t0, "left"))  # starting in the range: all touch it
            if inside > cap:
                return b - a
        idx = np.arange(a, max(a, b))
        return idx[np.maximum(self.t_from[idx], self.t_to[idx]) >= t0]


class Lanes:
    """All lanes of a trace (by id and in display order) and the arrows between them."""

    def __init__(self, model: Model):
        self.model = model
        self.trace = model.trace
        self.lanes: list[Lane] = []
        self._tp_lock = threading.Lock()
        self._build()
        self.by_id = {ln.id: ln for ln in self.lanes}
        self.pos = {ln.id: i for i, ln in enumerate(self.lanes)}
        self._arrows: dict[str, Arrows] | None = None
        self._arrow_lock = threading.Lock()

    # ------------------------------------------------------------ lanes

    def _add(self, **kw: object) -> None:
        self.lanes.append(Lane(**kw))  # type: ignore[arg-type]

    def _build(self) -> None:
        m = self.model
        s = m.sched_slice
        by_cpu = _groups(s["cpu"])
        for c in range(max(self.trace.ncpus, max(by_cpu, default=-1) + 1)):
            rows = by_cpu.get(c, np.empty(0, np.int64))
            self._add(id=f"cpu:{c}", kind="cpu", label=f"CPU {c}", group="CPUs", color_by="thread",
                      table="sched_slice", info={"cpu": c}, default=True,
                      build=lambda r=rows: (s["start"][r], s["start"][r] + s["dur"][r], s["tid"][r], r))
        th = m.threads
        ts = m.thread_state
        by_tid = _groups(ts["tid"])
        rank = np.argsort(-th["cpu_time"], kind="stable")
        shown = set(th["tid"][rank[:MAX_DEFAULT_THREADS]].tolist())
        for tid, name in zip(th["tid"].tolist(), th["name"].tolist()):
            rows = by_tid.get(tid, np.empty(0, np.int64))
            self._add(id=f"thread:{tid}", kind="thread", label=f"{name} [{tid}]", group="Threads", color_by="state",
                      table="thread_state", info={"tid": tid, "name": name}, default=tid in shown,
                      build=lambda r=rows: (ts["start"][r], ts["start"][r] + ts["dur"][r], ts["state"][r], r))
        h, w = m.mutex_hold, m.mutex_wait
        h_by, w_by = _groups(h["mutex"]), _groups(w["mutex"])
        mutexes = sorted(set(h_by) | set(w_by), key=lambda a: (-int(w["dur"][w_by[a]].sum()) if a in w_by else 0,
                                                                 -len(h_by.get(a, ())), a))
        self.mutex_order = mutexes
        shown_as = m.name_addresses(np.array(mutexes, np.uint64)) if mutexes else []  # `slots[1].m (0x...)`
        for k, addr in enumerate(mutexes):
            hx, named = hexaddr(addr), str(shown_as[k])
            hr, wr = h_by.get(addr, np.empty(0, np.int64)), w_by.get(addr, np.empty(0, np.int64))
            info = {"mutex": hx}
            self._add(id=f"hold:{hx}", kind="hold", label=f"{named} held", group="Mutexes", color_by="thread",
                      table="mutex_hold", info=info, default=k < MAX_DEFAULT_MUTEXES,
                      build=lambda r=hr: (h["start"][r], h["start"][r] + h["dur"][r], h["tid"][r], r))
            self._add(id=f"wait:{hx}", kind="wait", label=f"{named} waits", group="Mutexes", color_by="thread",
                      table="mutex_wait", info=info, default=k < MAX_DEFAULT_MUTEXES,
                      build=lambda r=wr: (w["start"][r], w["start"][r] + w["dur"][r], w["tid"][r], r))
        p = m.packet_flow
        if len(p):
            pushed = np.nonzero((p["channel"] != 0) & (p["push_time"] >= 0))[0]
            for addr, part in _groups(p["channel"][pushed]).items():
                rows = pushed[part]
                hx = hexaddr(addr)
                end = lambda r=rows: np.where(p["pop_time"][r] >= 0, p["pop_time"][r], p["push_time"][r])  # noqa: E731
                self._add(id=f"chan:{hx}", kind="chan", label=f"channel {hx}", group="Net channels",
                          color_by="thread", table="packet_flow", info={"channel": hx}, default=True,
                          build=lambda r=rows, end=end: (p["push_time"][r], end(r), p["consumer"][r], r))

    def tracepoint_lane(self, name: str) -> Lane | None:
        """The lane of one tracepoint's events, made on first request."""
        lid = f"tp:{name}"
        with self._tp_lock:
            if lid in self.by_id:
                return self.by_id[lid]
            tp = self.trace.catalog.by_name.get(name)
            if tp is None:
                return None
            ev = self.trace.events

            def build(tp_id: int = tp.id) -> tuple[np.ndarray, ...]:
                idx = np.nonzero(ev.tp == tp_id)[0]
                return ev.time[idx], ev.time[idx], ev.cpu[idx].astype(np.int64), idx

            lane = Lane(id=lid, kind="tp", label=f"{name} events", group="Tracepoints", color_by="cpu",
                        table="events", info={"tracepoint": name}, default=False, build=build)
            self.lanes.append(lane)
            self.pos[lid] = len(self.lanes) - 1
            self.by_id[lid] = lane
            return lane

    def get(self, lane_id: str) -> Lane | None:
        if lane_id.startswith("tp:"):
            return self.tracepoint_lane(lane_id[3:])
        return self.by_id.get(lane_id)

    # ------------------------------------------------------------ arrows

    @property
    def arrows(self) -> dict[str, Arrows]:
        if self._arrows is None:
            with self._arrow_lock:
                if self._arrows is None:
                    self._arrows = self._build_arrows()
        return self._arrows

    def _thread_lane(self, tids: np.ndarray) -> np.ndarray:
        """Lane positions of thread lanes by tid (-1 where the thread has no lane)."""
        known = np.array(sorted(int(ln.info["tid"]) for ln in self.lanes if ln.kind == "thread"), np.int64)
        pos = np.array([self.pos[f"thread:{t}"] for t in known.tolist()], np.int64)
        tids = np.asarray(tids, np.int64)
        if not len(known):
            return np.full(len(tids), -1, np.int64)
        k = np.minimum(np.searchsorted(known, tids), len(known) - 1)
        return np.where(known[k] == tids, pos[k], -1)

    def _cpu_lane(self, cpus: np.ndarray) -> np.ndarray:
        ncpu = sum(1 for ln in self.lanes if ln.kind == "cpu")
        c = np.asarray(cpus, np.int64)
        return np.where((c >= 0) & (c < ncpu), c, -1)  # CPU lanes come first, in order

    def _build_arrows(self) -> dict[str, Arrows]:
        m = self.model
        out = {}
        wk = m.wakeup
        to_t = np.where(wk["latency"] >= 0, wk["time"] + wk["latency"], wk["time"])
        out["wake"] = Arrows(wk["time"], self._thread_lane(wk["waker"]), to_t, self._thread_lane(wk["wakee"]),
                             np.arange(len(wk)))
        ho = m.handoff
        to_t = np.where(ho["latency"] >= 0, ho["time"] + ho["latency"], ho["time"])
        out["handoff"] = Arrows(ho["time"], self._thread_lane(ho["from_tid"]), to_t, self._thread_lane(ho["to_tid"]),
                                np.arange(len(ho)))
        # packet hops: consecutive seen stages of a packet on different CPUs
        p = m.packet_flow
        parts: list[tuple[np.ndarray, ...]] = []
        if len(p):
            times = np.stack([p[f"{s}_time"] for s in STAGES])
            cpus = np.stack([p[f"{s}_cpu"] for s in STAGES]).astype(np.int64)
            prev_t = np.full(len(p), -1, np.int64)
            prev_c = np.full(len(p), -1, np.int64)
            for k in range(len(STAGES)):
                seen = times[k] >= 0
                hop = np.nonzero(seen & (prev_t >= 0) & (cpus[k] != prev_c))[0]
                parts.append((prev_t[hop], prev_c[hop], times[k][hop], cpus[k][hop], hop))
                prev_t = np.where(seen, times[k], prev_t)
                prev_c = np.where(seen, cpus[k], prev_c)
        if parts:
            tf, cf, tt, ct, row = (np.concatenate(x) for x in zip(*parts))
            out["packet"] = Arrows(tf, self._cpu_lane(cf), tt, self._cpu_lane(ct), row)
        else:
            e = np.empty(0, np.int64)
            out["packet"] = Arrows(e, e, e, e, e)
        return out
