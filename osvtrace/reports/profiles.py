"""Profiles: weights per stack. What `report prof|prof-wait|prof-lock` draw as call trees and
`export --format folded|pprof` write, computed once here from the model's tables.

A profile is a small table: one row per (group, stack) with a count and a time (ns), from
per-sample columns aggregated with numpy; names come later, once per distinct stack
(osvtrace.reports.calltree). The samples of each kind:

- prof: records with a backtrace: the CPU sampler's (our cpu_sample, OSv's sampler_tick)
  when the trace has them, else every record (OSv trace.py's `prof`), or the --tp ones.
- prof-wait: blocked time by the waiter's stack. Where the kernel records the end of a wait
  (OSv's sched_wait_ret): the model's timed sched_wait pairs, as trace.py pairs them, the
  stack of the sched_wait record. Otherwise thread_state's waiting and sleeping intervals,
  the stack of the thread's sched_wait (else sched_switch) record that began it.
- prof-lock: mutex_wait rows, the stack of their mutex_lock_wait record; with hold=True,
  mutex_hold rows, the stack of the record that acquired the mutex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.base import id_mask
from osvtrace.model import Model
from osvtrace.model.filters import Filter, thread_ids, tracepoint_ids
from osvtrace.model.kernel_map import model_events
from osvtrace.model.sched import SLEEPING, WAITING
from osvtrace.model.search import dense_rank, last_match
from osvtrace.model.stacks import NO_STACK, factorize
from osvtrace.model.sync import wait_spans
from osvtrace.reports.common import clip, filter_table, thread_names

KINDS = ("prof", "prof-wait", "prof-lock", "prof-hold")
GROUPS = ("none", "thread", "cpu", "lock", "tracepoint")
SAMPLERS = ("cpu_sample", "sampler_tick")  # our kernel's timer sampler, OSv's (core/sampler.cc)


@dataclass
class Samples:
    """Per sample: the record whose backtrace is its stack, and its weight and group keys."""

    event: np.ndarray  # int64 index in events
    ns: np.ndarray  # int64 time it stands for (0 for a plain sample)
    tid: np.ndarray
    lock: np.ndarray  # uint64 mutex or wait object (0: none)
    stack: np.ndarray | None = None  # int32 stack ids, when not the events' own (a sampler's PC added)
    start: np.ndarray | None = None  # int64 when it began, inside the window (None: the record's time)

    def take(self, keep: np.ndarray) -> "Samples":
        """The samples where keep is True (a bool mask)."""
        return Samples(self.event[keep], self.ns[keep], self.tid[keep], self.lock[keep],
                       None if self.stack is None else self.stack[keep],
                       None if self.start is None else self.start[keep])


@dataclass
class Profile:
    """Weights per (group, stack): the rows of a profile, plus what the trees need to say."""

    kind: str
    metric: str  # "ns" (time) or "count"
    group_by: str
    stack: np.ndarray  # int32 stack id per row
    group: np.ndarray  # int64 index into groups per row
    groups: list[str]  # group labels ("all" when not grouped)
    count: np.ndarray  # int64
    ns: np.ndarray  # int64
    source: str  # what the samples are, in words
    missing: int = 0  # samples without a stack (left out, as trace.py leaves them)
    notes: list[str] = field(default_factory=list)

    def weight(self, metric: str | None = None) -> np.ndarray:
        return self.ns if (metric or self.metric) == "ns" else self.count


def profile(model: Model, flt: Filter, kind: str, group_by: str = "none") -> Profile:
    """The profile of one kind over the events the filter selects."""
    if kind not in KINDS:
        raise UsageError(f"no profile {kind!r}; profiles: {', '.join(KINDS)}")
    if group_by not in GROUPS:
        raise UsageError(f"{kind}: --group-by {group_by}: give one of {', '.join(GROUPS)}")
    if group_by == "lock" and kind == "prof":
        raise UsageError("prof: --group-by lock applies to prof-wait and prof-lock")
    s, source, metric = samples(model, flt, kind)
    return aggregate(model, s, kind, source, metric, group_by)


def samples(model: Model, flt: Filter, kind: str) -> tuple[Samples, str, str]:
    """The samples of one kind, each with its stack id: (samples, what they are in words, metric).
    The viewer takes them one by one (to narrow them to a lock, to find where a frame ran)."""
    if kind not in KINDS:
        raise UsageError(f"no profile {kind!r}; profiles: {', '.join(KINDS)}")
    s, source, metric = _SOURCES[kind](model, flt)
    if s.stack is None:
        s.stack = model.stacks.ids(s.event)
    if s.start is None:
        s.start = model.trace.events.time[s.event]
    return s, source, metric


def aggregate(model: Model, s: Samples, kind: str, source: str, metric: str, group_by: str = "none") -> Profile:
    """Samples summed per (group, stack): the rows every tree, folded or pprof output is made of."""
    stack = s.stack if s.stack is not None else model.stacks.ids(s.event)
    has = stack != NO_STACK
    missing = int((~has).sum())
    key, groups = _groups(model, s, group_by, "mutex" if kind in ("prof-lock", "prof-hold") else "object")
    every = bool(has.all())
    pair = (key if every else key[has]).astype(np.int64) * (len(model.stacks) + 1) + (stack if every else stack[has])
    uniq, count, ns = _sum_by_pair(pair, s.ns if every else s.ns[has], len(groups) * (len(model.stacks) + 1))
    notes = []
    if missing:
        notes.append(f"{missing:,} of {len(stack):,} samples have no backtrace and are left out"
                     + (" (record with backtraces: OSv --trace-backtrace)" if missing == len(stack) else ""))
    return Profile(kind, metric, group_by, (uniq % (len(model.stacks) + 1)).astype(np.int32),
                   (uniq // (len(model.stacks) + 1)).astype(np.int64), groups, count, ns, source, missing, notes)


def _sum_by_pair(pair: np.ndarray, ns: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct pairs in order of first appearance, samples of each, their ns summed).
    Pairs are below `bound`: when that is not much more than the samples, dense counts
    (bincount) and one scatter for the order; else a hash table (factorize)."""
    if bound <= max(4 * len(pair), 1 << 16):
        count = np.bincount(pair, minlength=bound)
        tot = np.bincount(pair, weights=ns, minlength=bound) if ns.any() else np.zeros(bound)  # prof: no time
        first = np.full(bound, len(pair), np.int64)
        first[pair[::-1]] = np.arange(len(pair) - 1, -1, -1)  # the last write of each pair is its first sample
        uniq = np.flatnonzero(count)
        uniq = uniq[np.argsort(first[uniq], kind="stable")]
        return uniq, count[uniq].astype(np.int64), tot[uniq].astype(np.int64)
    inv, first = factorize(pair)  # samples are many, (group, stack) pairs few
    count = np.bincount(inv, minlength=len(first)).astype(np.int64)
    tot = np.bincount(inv, weights=ns, minlength=len(first)).astype(np.int64)
    return pair[first], count, tot


def _groups(model: Model, s: Samples, group_by: str, lock: str) -> tuple[np.ndarray, list[str]]:
    """Per sample a group index, and the group labels."""
    ev = model.trace.events
    if group_by == "none":
        return np.zeros(len(s.event), np.int64), ["all"]
    if group_by == "thread":
        u, inv = np.unique(s.tid, return_inverse=True)
        names = thread_names(model, u)
        return inv.reshape(-1), [f"thread {n} ({t})" for n, t in zip(names.tolist(), u.tolist())]
    if group_by == "cpu":
        u, inv = np.unique(ev.cpu[s.event], return_inverse=True)
        return inv.reshape(-1), [f"cpu {c}" for c in u.tolist()]
    if group_by == "lock":
        u, inv = np.unique(s.lock, return_inverse=True)
        return inv.reshape(-1), [f"{lock} {a:#x}" if a else f"{lock} unknown" for a in u.tolist()]
    u, inv = np.unique(ev.tp[s.event], return_inverse=True)
    cat = model.trace.catalog
    return inv.reshape(-1), [cat.by_id[int(t)].name if int(t) in cat.by_id else f"tracepoint {t}" for t in u.tolist()]


def _sample_events(model: Model, flt: Filter) -> tuple[Samples, str]:
    """prof: one sample per record (the sampler's, the --tp ones, or all), and which they are."""
    t = model.trace
    ev = t.events
    m = Filter(cpus=flt.cpus, threads=flt.threads, since=flt.since, until=flt.until).mask(t)
    source = "records with a backtrace"
    if flt.tracepoints:
        m &= id_mask(ev.tp, tracepoint_ids(t, flt.tracepoints))
        source = f"{','.join(flt.tracepoints)} records"
    else:
        sampler = [n for n in SAMPLERS if n in t.catalog.by_name]
        ids = [i for n in sampler for i in t.tracepoint_ids(n)]
        on = id_mask(ev.tp, ids) if ids else None
        if on is not None and on.any():
            m &= on
            source = f"CPU samples ({', '.join(sampler)})"
    idx = np.flatnonzero(m)
    return Samples(idx, np.zeros(len(idx), np.int64), ev.tid[idx], np.zeros(len(idx), np.uint64),
                   _with_pc(model, idx)), source


def _with_pc(model: Model, idx: np.ndarray) -> np.ndarray | None:
    """Stack ids with the interrupted PC as the innermost frame, for a sampler whose records
    carry it as an argument `pc` (the backtrace starts at its caller). None: no such records."""
    t = model.trace
    tps = [tp for tp in t.catalog.tracepoints if any(f.name == "pc" for f in tp.fields)]
    on = id_mask(t.events.tp[idx], [tp.id for tp in tps]) if tps else None
    if on is None or not on.any():
        return None
    out = model.stacks.ids(idx)
    sel = idx[on]
    pc, _ = t.field("pc")
    bt = t.backtraces(sel)
    # NOTE: frames are return addresses, named at addr - 1; the PC is the instruction itself
    pcs = pc[sel].astype(np.uint64) + np.uint64(1)
    out[on] = model.stacks.intern(np.column_stack([np.where(pc[sel] != 0, pcs, 0), bt]))
    return out


def _waits(model: Model, flt: Filter) -> Samples:
    t = model.trace
    ev = t.events
    timed = model.timed
    pairs = timed["name"] == "sched_wait"
    if pairs.any():
        # the kernel records the wait's end: trace.py's pairs, open ones running to the trace's end
        u = model.timed_unmatched
        left = (u["name"] == "sched_wait") & (u["reason"] == "open at end")
        start = np.concatenate([timed["start"][pairs], u["time"][left]])
        dur = np.concatenate([timed["dur"][pairs], t.span_ns[1] - u["time"][left]])
        event = np.concatenate([timed["event"][pairs], u["event"][left]])
        tid = ev.tid[event]
        keep = _window_cpu_thread(model, flt, start, dur, tid, ev.cpu[event])
        qidx, qa = model_events(t, "sched_wait") or (np.empty(0, np.int64), {})
        obj = np.zeros(len(event), np.uint64)
        if len(qidx) and "obj" in qa:
            k = np.searchsorted(qidx, event)
            ok = k < len(qidx)
            ok[ok] = qidx[k[ok]] == event[ok]
            obj[ok] = qa["obj"][k[ok]]
        return Samples(event[keep], clip(start[keep], dur[keep], flt), tid[keep], obj[keep],
                       start=clip_start(start[keep], flt))
    ts = model.thread_state
    m = filter_table(model, ts, flt) & ((ts["state"] == WAITING) | (ts["state"] == SLEEPING))
    rows = np.flatnonzero(m)
    tid, start = ts["tid"][rows], ts["start"][rows]
    # the record that began the wait: the thread's last sched_wait, else sched_switch, since it last ran
    prev = np.where(rows > 0, ts["start"][np.maximum(rows - 1, 0)], np.iinfo(np.int64).min)
    prev = np.where((rows > 0) & (ts["tid"][np.maximum(rows - 1, 0)] == tid), prev, np.iinfo(np.int64).min)
    event = np.full(len(rows), -1, np.int64)
    for name in ("sched_wait", "sched_switch"):
        if name not in t.catalog.by_name:
            continue
        cand = np.flatnonzero(id_mask(ev.tp, t.tracepoint_ids(name)))
        need = event < 0
        if not len(cand) or not need.any():
            continue
        ra, rb = dense_rank(tid[need], ev.tid[cand])
        hit = last_match(ra, start[need], rb, ev.time[cand])
        ok = hit >= 0
        ok[ok] &= ev.time[cand[hit[ok]]] >= prev[need][ok]
        got = np.where(ok, cand[np.maximum(hit, 0)], -1)
        event[need] = got
    found = event >= 0
    stack = np.full(len(rows), NO_STACK, np.int32)
    stack[found] = model.stacks.ids(event[found])
    return Samples(np.where(found, event, 0), clip(start, ts["dur"][rows], flt), tid, ts["blocked_on"][rows], stack,
                   clip_start(start, flt))


def clip_start(start: np.ndarray, flt: Filter) -> np.ndarray:
    """Starts moved into the filter's window, as clip() cuts the durations (start + ns ends there)."""
    return start if flt.since is None else np.maximum(start, flt.since)


def _window_cpu_thread(model: Model, flt: Filter, start: np.ndarray, dur: np.ndarray, tid: np.ndarray,
                       cpu: np.ndarray) -> np.ndarray:
    """Intervals overlapping the window, of the threads and CPUs asked for."""
    m = np.ones(len(start), bool)
    if flt.since is not None:
        m &= start + dur >= flt.since
    if flt.until is not None:
        m &= start < flt.until
    if flt.cpus:
        m &= np.isin(cpu, np.array(flt.cpus))
    if flt.threads:
        m &= np.isin(tid, thread_ids(model.trace, flt.threads))
    return m


def _locks(model: Model, flt: Filter, hold: bool = False) -> Samples:
    # waits: mutex_wait's spans only (who handed the mutex over is not drawn, and pairing the
    # hand-offs would cost as much again)
    t = model.mutex_hold if hold else wait_spans(model.trace)
    ev = model.trace.events
    m = _window_cpu_thread(model, flt, t["start"], t["dur"], t["tid"], ev.cpu[t["event"]]) if len(t["event"]) \
        else np.zeros(0, bool)
    return Samples(t["event"][m], clip(t["start"][m], t["dur"][m], flt), t["tid"][m], t["mutex"][m],
                   start=clip_start(t["start"][m], flt))


_SOURCES = {
    "prof": lambda m, f: (*_sample_events(m, f), "count"),
    "prof-wait": lambda m, f: (_waits(m, f), "blocked time by the waiter's stack", "ns"),
    "prof-lock": lambda m, f: (_locks(m, f), "mutex wait by the waiter's stack", "ns"),
    "prof-hold": lambda m, f: (_locks(m, f, hold=True), "mutex hold by the holder's stack", "ns"),
}
