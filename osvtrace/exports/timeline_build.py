"""Build the timeline (osvtrace.exports.timeline) from a model's tables.

Tracks:

- one per CPU: what ran there (sched_slice), wake-ups, packet stages, lost records;
- one per thread: its states (thread_state) and its markers;
- one per mutex: who held it (mutex_hold) and its hand-offs, with a child track per
  thread that waited for it (mutex_wait: waits overlap, so each waiter needs its own).

Flows (arrows): wake-up -> the wakee's next slice, hand-off -> the receiver's hold,
and each packet through its stages (rx, classify, push, pop, tx). Endpoints are
matched with the model's per-key searches (osvtrace.model.search), no loop over rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from osvtrace.exports.common import ProgressFn, Selection, _no_progress
from osvtrace.exports.timeline import ARG, Items, Names, Timeline, Track, Tracks, factorize, finish, items
from osvtrace.model import Model
from osvtrace.model.net import STAGES
from osvtrace.model.sched import RUNNABLE, RUNNING, SLEEPING, STATE_NAMES, WAITING
from osvtrace.model.search import dense_rank, next_match

PID = 1  # the unikernel is one address space: one "process" holds every thread


class _Builder:
    """Turns the model's tables into items on tracks, one kind of item per method."""

    def __init__(self, model: Model, sel: Selection):
        self.m = model
        self.t = model.trace
        self.sel = sel
        self.tracks = Tracks()
        self.names = Names()
        self.slices: list[Items] = []
        self.instants: list[Items] = []
        self.next_flow = 1
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
        # several wake-ups before one run: the arrow comes from the last (the one that made it
        # runnable); rows are in time order, so that is the highest row hitting each slice
        src = np.nonzero(ok)[0]
        if len(src):
            last = np.full(len(start), -1, np.int64)
            np.maximum.at(last, hit[src], src)
            src = np.sort(last[last >= 0])
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
        shown = self.m.name_addresses(uniq)  # `mutex_main::slots[1].m (0x...)`, or `0x...`
        track = np.array([self.tracks.add(f"mutex {n}", "mutex", a, self.mutex_group.uuid).uuid
                          for a, n in zip(uniq.tolist(), shown.tolist())] or [0], np.int64)
        # waits overlap (several threads wait for one mutex): one child track per waiting thread
        # (a thread waits for one mutex at a time, so its waits never overlap)
        waits_track = self.tracks.map("waits", (iw.astype(np.int64) << 32) | w_tid, lambda k: self.tracks.add(
            f"waiter {self.t.thread_name(k & 0xFFFFFFFF)}", "waits", k, int(track[k >> 32]), k & 0xFFFFFFFF))
        self.slices.append(items("mutex waits", waits_track, mw["start"][kw],
                                 np.full(len(w_tid), self.names.id("wait"), np.int32), dur=mw["dur"][kw],
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
        if len(src):  # one arrow per hold: from the first hand-off that reached it
            first = np.full(len(h_start), len(ok), np.int64)
            np.minimum.at(first, hit[src], src)
            src = np.sort(first[first < len(ok)])
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

    def finish(self) -> Timeline:
        return finish(self.tracks.list[0].name, self.tracks.list, self.names.strings, self.slices, self.instants,
                      self.sel, self.next_flow - 1)


def _ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared dense ranks of two key columns; small ints (thread ids) are their own rank."""
    if len(a) and len(b) and a.dtype.kind == b.dtype.kind == "u" and max(int(a.max()), int(b.max())) < 1 << 16:
        return a.astype(np.int64), b.astype(np.int64)
    ra, rb = dense_rank(a, b)
    return ra, rb


def build(model: Model, sel: Selection | None = None, progress: ProgressFn = _no_progress) -> Timeline:
    """The timeline of a model's tables, narrowed by ``sel``."""
    b = _Builder(model, sel or Selection(model.trace, None))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("scheduler", lambda: b.slices.append(b.sched())), ("thread states", lambda: b.slices.append(b.states())),
        ("mutexes", b.mutexes), ("packets", b.packets), ("markers", b.markers), ("lost records", b.lost)]
    with ThreadPoolExecutor(1) as pool:
        # the mutex tables take as long as all scheduler tables: build them on the other core
        # meanwhile (numpy's sorts let go of the GIL); the model caches each table. The thread
        # names first: their first use scans every event's thread id.
        ahead = pool.submit(lambda: (model.trace.threads, model.mutex_wait))
        for k, (what, step) in enumerate(steps):
            progress(k, len(steps), f"building timeline: {what}")
            if what == "mutexes":
                ahead.result()
            step()
    progress(len(steps), len(steps), "building timeline")
    return b.finish()
