"""The timeline the viewer formats share (Perfetto, Chrome JSON): tracks, slices, instants, flows.

Built from the model's tables, columnar: a few numpy arrays per kind of item, no
Python object per event. Tracks:

- one per CPU: what ran there (sched_slice), wake-ups, packet stages, lost records;
- one per thread: its states (thread_state) and its markers; a child track per
  thread with its mutex waits (waits overlap the states, so they need their own);
- one per mutex: who held it (mutex_hold) and its hand-offs.

Flows (arrows): wake-up -> the wakee's next slice, hand-off -> the receiver's hold,
and each packet through its stages (rx, classify, push, pop, tx).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.exports.common import Selection, _no_progress, ProgressFn
from osvtrace.model import Model
from osvtrace.model.net import STAGES
from osvtrace.model.sched import STATE_NAMES, RUNNABLE, RUNNING, SLEEPING, WAITING
from osvtrace.model.search import dense_rank, next_match

PID = 1  # the unikernel is one address space: one "process" holds every thread

# argument names and how to show them; an item carries at most one argument
UINT, PTR = 1, 2
ARGS: tuple[tuple[str, int], ...] = (
    ("tid", UINT), ("cpu", UINT), ("blocked_on", PTR), ("handed_by", UINT), ("wakee", UINT),
    ("to_tid", UINT), ("packet", UINT), ("count", UINT), ("value", UINT))
ARG = {name: i for i, (name, _kind) in enumerate(ARGS)}
ARG_KIND = np.array([k for _n, k in ARGS], np.uint8)

# flow roles, set by Timeline.finish(): the first endpoint starts a flow, the last ends it
FLOW_NONE, FLOW_START, FLOW_STEP, FLOW_END = 0, 1, 2, 3


@dataclass
class Track:
    uuid: int
    name: str
    kind: str  # process, group, cpu, thread, waits, mutex
    parent: int = 0
    key: int = -1  # cpu number, thread id or mutex address
    rank: int = 0  # order among siblings


@dataclass
class Items:
    """Slices (dur >= 0) or instants (dur == -1) of one kind, as columns."""

    what: str
    track: np.ndarray  # int64: Track.uuid
    ts: np.ndarray  # int64 ns
    dur: np.ndarray  # int64 ns, -1 for instants
    name: np.ndarray  # int32: index into Timeline.names
    arg: np.ndarray  # uint64 value of the argument
    arg_name: np.ndarray  # int8: index into ARGS, -1 for none
    flow: np.ndarray  # uint64 flow id, 0 for none
    flow_stage: np.ndarray  # uint8: order of endpoints at equal times (source before destination)
    flow_kind: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def instant(self) -> bool:
        return bool(len(self.dur)) and bool(self.dur[0] < 0)

    def take(self, m: np.ndarray) -> "Items":
        return Items(self.what, self.track[m], self.ts[m], self.dur[m], self.name[m], self.arg[m], self.arg_name[m],
                     self.flow[m], self.flow_stage[m], self.flow_kind[m] if len(self.flow_kind) else self.flow_kind)


def items(what: str, track: np.ndarray, ts: np.ndarray, name: np.ndarray, *, dur: np.ndarray | None = None,
          arg: np.ndarray | None = None, arg_name: np.ndarray | int = -1, flow: np.ndarray | None = None,
          flow_stage: int = 0) -> Items:
    n = len(ts)
    return Items(what, np.asarray(track, np.int64), np.asarray(ts, np.int64),
                 np.full(n, -1, np.int64) if dur is None else np.asarray(dur, np.int64),
                 np.asarray(name, np.int32), np.zeros(n, np.uint64) if arg is None else np.asarray(arg).astype(np.uint64),
                 np.broadcast_to(np.asarray(arg_name, np.int8), (n,)).copy(),
                 np.zeros(n, np.uint64) if flow is None else np.asarray(flow, np.uint64),
                 np.full(n, flow_stage, np.uint8))


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, index of each key among them), like np.unique(return_inverse=True)
    but in linear time for small non-negative integers (CPUs, thread ids, states)."""
    keys = np.asarray(keys)
    if len(keys) and keys.dtype.kind in "iu" and int(keys.min()) >= 0 and int(keys.max()) < 1 << 22:
        present = np.bincount(keys.astype(np.intp)) > 0
        uniq = np.flatnonzero(present)
        lut = np.zeros(len(present), np.int64)
        lut[uniq] = np.arange(len(uniq))
        return uniq.astype(keys.dtype), lut[keys]
    if len(keys) > 1 << 16:
        # few distinct values among many rows (mutex addresses): guess them from a sample,
        # confirm with one binary search per row, which is much cheaper than a full sort
        guess = np.unique(keys[:: len(keys) >> 14])
        pos = np.minimum(np.searchsorted(guess, keys), len(guess) - 1)
        if np.array_equal(guess[pos], keys):
            return guess, pos
    return np.unique(keys, return_inverse=True)


class Names:
    """Interned strings: each distinct name once (Perfetto's interned data, Chrome's escapes)."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, s: str) -> int:
        i = self._ids.get(s)
        if i is None:
            i = self._ids[s] = len(self.strings)
            self.strings.append(s)
        return i

    def map(self, keys: np.ndarray, text: Callable[[int], str]) -> np.ndarray:
        """Name ids for a column of keys: ``text`` runs once per distinct key."""
        if not len(keys):
            return np.empty(0, np.int32)
        uniq, inv = factorize(keys)
        ids = np.array([self.id(text(int(k))) for k in uniq.tolist()], np.int32)
        return ids[inv]


class Tracks:
    """Tracks created on first use, with small sequential uuids (short varints in Perfetto)."""

    def __init__(self) -> None:
        self.list: list[Track] = []
        self._by: dict[tuple[str, int], Track] = {}

    def add(self, name: str, kind: str, key: int = -1, parent: int = 0, rank: int = 0) -> Track:
        t = self._by.get((kind, key))
        if t is None:
            t = Track(len(self.list) + 1, name, kind, parent, key, rank)
            self.list.append(t)
            self._by[(kind, key)] = t
        return t

    def get(self, kind: str, key: int) -> Track | None:
        return self._by.get((kind, key))

    def map(self, kind: str, keys: np.ndarray, make: Callable[[int], Track | None]) -> np.ndarray:
        """uuids for a column of keys (0 where ``make`` declines); ``make`` runs per distinct key."""
        if not len(keys):
            return np.empty(0, np.int64)
        uniq, inv = factorize(keys)
        out = []
        for k in uniq.tolist():
            t = self._by.get((kind, int(k))) or make(int(k))
            out.append(t.uuid if t else 0)
        return np.array(out, np.int64)[inv]


@dataclass
class Timeline:
    title: str
    tracks: list[Track]
    names: list[str]
    slices: list[Items]
    instants: list[Items]

    def count(self) -> dict[str, int]:
        out = {"tracks": len(self.tracks), "slices": sum(len(s) for s in self.slices),
               "instants": sum(len(i) for i in self.instants)}
        out["flows"] = len(np.unique(np.concatenate([p.flow[p.flow != 0] for p in self.slices + self.instants]
                                                    or [np.empty(0, np.uint64)])))
        return out


def _no_overlap(p: Items) -> None:
    """Clip each slice at the next one's start on its track: a viewer cannot draw slices
    that overlap without nesting (they only happen with damaged or clipped data)."""
    if len(p) < 2:
        return
    order = _track_time_order(p.track, p.ts)
    track = p.track if order is None else p.track[order]
    ts = p.ts if order is None else p.ts[order]
    end = ts + (p.dur if order is None else p.dur[order])
    nxt = np.empty(len(ts), np.int64)
    nxt[:-1] = ts[1:]
    nxt[-1] = end[-1]
    same = np.zeros(len(ts), bool)
    same[:-1] = track[1:] == track[:-1]
    over = same & (nxt < end)
    if over.any():
        fix = np.nonzero(over)[0]
        rows = fix if order is None else order[fix]
        p.dur[rows] = nxt[fix] - ts[fix]


def _track_time_order(track: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """A (track, time) order of the rows, or None when they are in that order already."""
    dt, dk = np.diff(ts), np.diff(track)
    if ((dk > 0) | ((dk == 0) & (dt >= 0))).all():
        return None
    o = np.argsort(ts, kind="stable") if not (dt >= 0).all() else np.arange(len(ts))
    k = track[o]
    # few tracks: a radix sort on 16 bits keeps the time order inside each track
    return o[np.argsort(k.astype(np.uint16) if int(k.max()) < 1 << 16 else k, kind="stable")]


class _Builder:
    def __init__(self, model: Model, sel: Selection):
        self.m = model
        self.t = model.trace
        self.sel = sel
        self.tracks = Tracks()
        self.names = Names()
        self.slices: list[Items] = []
        self.instants: list[Items] = []
        self.next_flow = 1
        self._thread_name: dict[int, int] = {}
        self.tracks.add(f"osvtrace {self.t.path.name}", "process", PID)
        self.cpu_group = self.tracks.add("CPUs", "group", 0)
        self.mutex_group = self.tracks.add("Mutexes", "group", 1)
        for c in range(max(self.t.ncpus, 1)):
            if sel.cpus is None or c in sel.cpus:
                self.tracks.add(f"CPU {c}", "cpu", c, self.cpu_group.uuid, c)

    # -------------------------------------------------- helpers
    def flows(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_flow, self.next_flow + n, dtype=np.uint64)
        self.next_flow += n
        return ids

    def cpu_tracks(self, cpu: np.ndarray) -> np.ndarray:
        return self.tracks.map("cpu", np.asarray(cpu, np.int64), lambda c: None)

    def thread_track(self, tid: int) -> Track:
        return self.tracks.add(self.t.thread_name(tid), "thread", tid, 0, tid)

    def thread_tracks(self, tid: np.ndarray) -> np.ndarray:
        return self.tracks.map("thread", np.asarray(tid, np.int64), self.thread_track)

    def thread_names(self, tid: np.ndarray, fmt: str = "{}") -> np.ndarray:
        return self.names.map(np.asarray(tid, np.int64), lambda t: fmt.format(self.t.thread_name(t)))

    # -------------------------------------------------- tables -> items
    def sched(self) -> Items:
        ss = self.m.sched_slice
        keep = self.sel.rows(ss)
        cpu, tid, start, dur = ss["cpu"][keep], ss["tid"][keep], ss["start"][keep], ss["dur"][keep]
        p = items("cpu slices", self.cpu_tracks(cpu), start, self.thread_names(tid), dur=dur, arg=tid,
                  arg_name=ARG["tid"])
        # wake-ups: an instant on the waker's CPU, an arrow to the wakee's next slice
        wk = self.m.wakeup
        wkeep = self.sel.rows(wk)
        w_time, w_cpu, wakee = wk["time"][wkeep], wk["cpu"][wkeep], wk["wakee"][wkeep]
        ran = wk["latency"][wkeep] >= 0
        run_at = w_time + np.maximum(wk["latency"][wkeep], 0)
        ra, rb = _ranks(wakee, tid)
        hit = next_match(ra, run_at, rb, start)
        ok = ran & (hit >= 0)
        ok[ok] &= (start[hit[ok]] == run_at[ok]) & (cpu[hit[ok]] == wk["run_cpu"][wkeep][ok])
        # several wake-ups before one run: the arrow comes from the last (the one that made it runnable)
        src = np.nonzero(ok)[0]
        if len(src):
            rev = src[::-1]
            _, first_in_rev = np.unique(hit[rev], return_index=True)
            src = np.sort(rev[first_in_rev])
        ids = self.flows(len(src))
        w_flow = np.zeros(len(w_time), np.uint64)
        w_flow[src] = ids
        p.flow[hit[src]] = ids
        p.flow_stage[hit[src]] = 1
        self.instants.append(items("wake-ups", self.cpu_tracks(w_cpu), w_time, self.thread_names(wakee, "wake {}"),
                                   arg=wakee, arg_name=ARG["wakee"], flow=w_flow))
        return p

    def states(self) -> Items:
        ts = self.m.thread_state
        keep = self.sel.rows(ts)
        tid, state, cpu, blocked = ts["tid"][keep], ts["state"][keep], ts["cpu"][keep], ts["blocked_on"][keep]
        name = self.names.map(state.astype(np.int64), lambda s: STATE_NAMES.get(s, f"state {s}"))
        on_cpu = (state == RUNNING) | (state == RUNNABLE)
        has_obj = ((state == WAITING) | (state == SLEEPING)) & (blocked != 0)
        arg_name = np.where(on_cpu, ARG["cpu"], np.where(has_obj, ARG["blocked_on"], -1)).astype(np.int8)
        arg = np.where(on_cpu, cpu.astype(np.uint64), blocked)
        return items("thread states", self.thread_tracks(tid), ts["start"][keep], name, dur=ts["dur"][keep],
                     arg=arg, arg_name=arg_name)

    def mutexes(self) -> None:
        mw, mh, ho = self.m.mutex_wait, self.m.mutex_hold, self.m.handoff
        kw, kh, ko = self.sel.rows(mw), self.sel.rows(mh), self.sel.rows(ho)
        w_tid, w_mutex, handed = mw["tid"][kw], mw["mutex"][kw], mw["handed_by"][kw]
        h_tid, h_mutex, h_start = mh["tid"][kh], mh["mutex"][kh], mh["start"][kh]
        o_time, o_mutex, to, lat = ho["time"][ko], ho["mutex"][ko], ho["to_tid"][ko], ho["latency"][ko]
        # one factorisation of the addresses serves names, tracks and the hand-off matching
        uniq, inv = factorize(np.concatenate([w_mutex, h_mutex, o_mutex]))
        iw, ih, io = np.split(inv, [len(w_mutex), len(w_mutex) + len(h_mutex)])
        wait_name = np.array([self.names.id(f"wait {a:#x}") for a in uniq.tolist()] or [0], np.int32)
        used = np.zeros(len(uniq), bool)
        used[ih] = used[io] = True
        track = np.array([self.tracks.add(f"mutex {a:#x}", "mutex", a, self.mutex_group.uuid).uuid if u else 0
                          for a, u in zip(uniq.tolist(), used.tolist())] or [0], np.int64)
        waits_track = self.tracks.map("waits", w_tid.astype(np.int64), lambda t: self.tracks.add(
            "mutex waits", "waits", t, self.thread_track(t).uuid))
        self.slices.append(items("mutex waits", waits_track, mw["start"][kw], wait_name[iw], dur=mw["dur"][kw],
                                 arg=handed, arg_name=np.where(handed != 0, ARG["handed_by"], -1)))
        holds = items("mutex holds", track[ih], h_start, self.thread_names(h_tid), dur=mh["dur"][kh], arg=h_tid,
                      arg_name=ARG["tid"])
        # hand-offs: an instant on the mutex's track, an arrow to the receiver's hold
        # (the hold that starts when the receiver resumes with the mutex: hand-off time + latency)
        got_at = o_time + np.maximum(lat, 0)
        span = int(max(to.max(initial=0), h_tid.max(initial=0))) + 1
        hit = next_match(io.astype(np.int64) * span + to, got_at, ih.astype(np.int64) * span + h_tid, h_start)
        ok = (lat >= 0) & (hit >= 0)
        ok[ok] &= h_start[hit[ok]] == got_at[ok]
        src = np.nonzero(ok)[0]
        if len(src):
            _, first = np.unique(hit[src], return_index=True)  # one arrow per hold
            src = np.sort(src[first])
        ids = self.flows(len(src))
        o_flow = np.zeros(len(o_time), np.uint64)
        o_flow[src] = ids
        holds.flow[hit[src]] = ids
        holds.flow_stage[hit[src]] = 1
        self.instants.append(items("hand-offs", track[io], o_time, self.thread_names(to, "hand-off to {}"), arg=to,
                                   arg_name=ARG["to_tid"], flow=o_flow))
        self.slices.append(holds)

    def packets(self) -> None:
        pf = self.m.packet_flow
        keep = self.sel.rows(pf)
        if not keep.any():
            return
        pkt = pf["packet"][keep]
        seen = np.stack([pf[f"{s}_time"][keep] >= 0 for s in STAGES])
        ids = np.zeros(len(pkt), np.uint64)
        chained = seen.sum(axis=0) >= 2
        ids[chained] = self.flows(int(chained.sum()))
        for k, s in enumerate(STAGES):
            m = seen[k]
            cpu = pf[f"{s}_cpu"][keep][m].astype(np.int64)
            self.instants.append(items(f"net {s}", self.cpu_tracks(cpu), pf[f"{s}_time"][keep][m],
                                       np.full(int(m.sum()), self.names.id(f"net {s}"), np.int32),
                                       arg=pkt[m], arg_name=ARG["packet"], flow=ids[m], flow_stage=k))

    def markers(self) -> None:
        if "trace_marker" not in self.t.catalog.by_name:
            return
        idx, a = self.t.args("trace_marker")
        ev = self.t.events
        time, cpu, tid = ev.time[idx], ev.cpu[idx], ev.tid[idx]
        m = self.sel.points(time) & self.sel.cpu_ok(cpu) & self.sel.tid_ok(tid)
        labels = a["label"][m]
        uniq, inv = np.unique(labels, return_inverse=True)
        name = np.array([self.names.id(x.decode("utf-8", "replace") or "marker") for x in uniq.tolist()],
                        np.int32)[inv] if len(uniq) else np.empty(0, np.int32)
        self.instants.append(items("markers", self.thread_tracks(tid[m]), time[m], name, arg=a["value"][m],
                                   arg_name=ARG["value"]))

    def lost(self) -> None:
        lo = self.m.lost
        keep = self.sel.rows(lo)
        cpu, time, count, kind = lo["cpu"][keep], lo["time"][keep], lo["count"][keep], lo["kind"][keep]
        if not len(cpu):
            return
        t0 = self.t.span_ns[0]
        time = np.where(time >= 0, time, t0)  # unknown: show it at the start, where it cannot be missed
        name = np.array([self.names.id("LOST records (ring full)" if k == "dropped" else "LOST slots (gap)")
                         for k in kind.tolist()], np.int32)
        self.instants.append(items("lost", self.cpu_tracks(cpu.astype(np.int64)), time, name, arg=count,
                                   arg_name=ARG["count"]))

    # -------------------------------------------------- assembly
    def finish(self) -> Timeline:
        sel = self.sel
        slices, instants = [], list(self.instants)
        for p in self.slices:
            keep = p.track != 0
            if not sel.everything:
                m, start, dur = sel.spans(p.ts, p.dur)
                keep &= m
                p.ts, p.dur = start, dur
            if not keep.all():
                p = p.take(keep)
            _no_overlap(p)
            zero = p.dur <= 0  # zero-length slices become instants (a viewer cannot nest them reliably)
            if zero.any():
                z = p.take(zero)
                z.dur = np.full(len(z), -1, np.int64)
                instants.append(z)
                p = p.take(~zero)
            slices.append(p)
        instants = [i if (i.track != 0).all() and sel.everything else i.take((i.track != 0) & sel.points(i.ts))
                    for i in instants]
        _flow_roles(slices + instants, self.next_flow - 1)
        return Timeline(self.tracks.list[0].name, self.tracks.list, self.names.strings, slices, instants)


def _ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared dense ranks of two key columns; small ints (thread ids) are their own rank."""
    if len(a) and len(b) and a.dtype.kind == b.dtype.kind == "u" and max(int(a.max()), int(b.max())) < 1 << 16:
        return a.astype(np.int64), b.astype(np.int64)
    ra, rb = dense_rank(a, b)
    return ra, rb


def _flow_roles(parts: list[Items], nflows: int) -> None:
    """Give each flow endpoint its role: the first (in time, then stage) starts the flow,
    the last ends it, any between continue it. Flows left with one endpoint (the other
    was filtered out) are dropped. Flow ids are dense (1..nflows), so per-flow minima
    and maxima are plain indexed reductions, no sort."""
    big = np.iinfo(np.int64).max
    lo = np.full(nflows + 1, big, np.int64)
    hi = np.full(nflows + 1, -1, np.int64)
    count = np.zeros(nflows + 1, np.int64)
    keys = []
    for p in parts:
        w = np.nonzero(p.flow)[0]
        fid = p.flow[w].astype(np.intp)
        key = p.ts[w] * 8 + p.flow_stage[w]  # NOTE: stages < 8, times < 2**60
        np.minimum.at(lo, fid, key)
        np.maximum.at(hi, fid, key)
        count += np.bincount(fid, minlength=nflows + 1)
        keys.append((w, fid, key))
    for p, (w, fid, key) in zip(parts, keys):
        role = np.where(key == lo[fid], FLOW_START, np.where(key == hi[fid], FLOW_END, FLOW_STEP)).astype(np.uint8)
        role[count[fid] < 2] = FLOW_NONE
        p.flow_kind = np.zeros(len(p), np.uint8)
        p.flow_kind[w] = role
        p.flow[w[role == FLOW_NONE]] = 0


def build(model: Model, sel: Selection | None = None, progress: ProgressFn = _no_progress) -> Timeline:
    """The timeline of a model's tables, narrowed by ``sel``."""
    b = _Builder(model, sel or Selection(model.trace, None))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("scheduler", lambda: b.slices.append(b.sched())), ("thread states", lambda: b.slices.append(b.states())),
        ("mutexes", b.mutexes), ("packets", b.packets), ("markers", b.markers), ("lost records", b.lost)]
    with ThreadPoolExecutor(1) as pool:
        # the mutex tables take as long as all scheduler tables: build them on the other core
        # meanwhile (numpy's sorts let go of the GIL); the model caches each table
        ahead = pool.submit(lambda: model.mutex_wait)
        for k, (what, step) in enumerate(steps):
            progress(k, len(steps), f"building timeline: {what}")
            if what == "mutexes":
                ahead.result()
            step()
    progress(len(steps), len(steps), "building timeline")
    return b.finish()
