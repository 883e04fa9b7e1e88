"""Mutex reports: mutex (per mutex), lhp (lock-holder preemption), prof-lock (who waited on what)."""

from __future__ import annotations

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.sched import RUNNING
from osvtrace.model.search import dense_rank, last_match
from osvtrace.reports.common import Options, Report, clip, filter_table, group_stats, thread_names
from osvtrace.reports.prof import FLAT_OPT, TREE_OPTS, tree_report
from osvtrace.reports.registry import Opt, register

HOLD_OPT = Opt("--hold", "flag", "Hold time by the holder's stack (where the mutex was taken) instead of wait time.")

STATE_NAMES = np.array(["running", "preempted", "waiting", "sleeping", "dead"] + ["?"] * 251, object)


@register("mutex", "Per mutex: acquisitions, contended share, hand-offs, wait and hold percentiles.")
def mutex(model: Model, flt: Filter, opts: Options) -> Report:
    h, w, ho = model.mutex_hold, model.mutex_wait, model.handoff
    hm = filter_table(model, h, flt)
    wm = filter_table(model, w, flt, opts=opts)
    om = filter_table(model, ho, flt, time_col="time", dur_col=None, tid_col="from_tid")
    keys, hold = group_stats(h["mutex"][hm], h["dur"][hm])
    wkeys, wait = group_stats(w["mutex"][wm], clip(w["start"][wm], w["dur"][wm], flt))
    hkeys, hcount = np.unique(ho["mutex"][om], return_counts=True)
    # NOTE: a hand-off can be the only record of a mutex (its lock and wait records lost,
    # or before the trace began): every mutex named anywhere gets a row.
    allk = np.union1d(np.union1d(keys, wkeys), hkeys)
    n = len(allk)

    def spread(k: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(n, np.int64)
        out[np.searchsorted(allk, k)] = v
        return out

    contended = spread(*np.unique(h["mutex"][hm & h["contended"]], return_counts=True))
    handoffs = spread(hkeys, hcount)
    acq = spread(keys, hold["count"])
    cols = {"mutex": allk, "acquisitions": acq, "contended": contended,
            "contended_pct": contended * 100.0 / np.maximum(acq, 1), "handoffs": handoffs,
            "waits": spread(wkeys, wait["count"]), "wait_total": spread(wkeys, wait["total"]),
            "wait_p50": spread(wkeys, wait["p50"]), "wait_p99": spread(wkeys, wait["p99"]),
            "wait_max": spread(wkeys, wait["max"]), "hold_p50": spread(keys, hold["p50"]),
            "hold_p99": spread(keys, hold["p99"]), "hold_max": spread(keys, hold["max"])}
    order = np.argsort(-cols["wait_total"], kind="stable")
    kinds = {c: "ns" for c in cols if c.startswith(("wait_", "hold_"))}
    kinds.update(mutex="addr", contended_pct="pct")
    return Report("Mutexes by total wait", {k: v[order] for k, v in cols.items()}, kinds)


@register("prof-lock", "Mutex wait as a call tree of the waiters' stacks (trace.py's prof-lock; --group-by lock: "
                       "per mutex), --hold: hold time by the holders' stacks; --flat: per mutex and waiting thread.",
          options=(FLAT_OPT, HOLD_OPT, *TREE_OPTS))
def prof_lock(model: Model, flt: Filter, opts: Options) -> Report:
    if opts.more.get("flat"):
        if opts.more.get("hold"):
            raise UsageError("prof-lock: --flat shows waits; the mutex report has hold times per mutex")
        return flat(model, flt, opts)
    return tree_report(model, flt, opts, "prof-hold" if opts.more.get("hold") else "prof-lock")


def flat(model: Model, flt: Filter, opts: Options) -> Report:
    """Per mutex and waiting thread: time spent waiting for it."""
    w = model.mutex_wait
    m = filter_table(model, w, flt, opts=opts)
    mutex, tid, dur = w["mutex"][m], w["tid"][m], clip(w["start"][m], w["dur"][m], flt)
    pair = dense_rank(mutex.astype(np.uint64) ^ (tid.astype(np.uint64) << np.uint64(48)))[0]
    keys, st = group_stats(pair, dur)
    first = np.zeros(len(keys), np.int64)
    first[np.searchsorted(keys, pair[::-1])] = np.arange(len(pair))[::-1]  # any row of each pair
    cols = {"mutex": mutex[first], "tid": tid[first],
            "thread": np.array([model.trace.thread_name(int(t)) for t in tid[first]], object),
            "waits": st["count"], "total": st["total"], "p50": st["p50"], "p99": st["p99"], "max": st["max"]}
    order = np.argsort(-st["total"], kind="stable")
    return Report("Lock wait by mutex and thread", {k: v[order] for k, v in cols.items()},
                  {"mutex": "addr", "total": "ns", "p50": "ns", "p99": "ns", "max": "ns"})


@register("lhp", "Lock-holder preemption: intervals where a mutex owner was not running while others waited.")
def lhp(model: Model, flt: Filter, opts: Options) -> Report:
    h, w, ts = model.mutex_hold, model.mutex_wait, model.thread_state
    # every stretch a holder spent not running, cut to its hold
    off = ts["state"] != RUNNING
    o_tid, o_start, o_end = ts["tid"][off], ts["start"][off], ts["start"][off] + ts["dur"][off]
    o_state, o_cpu = ts["state"][off], ts["cpu"][off]
    ra, rb = dense_rank(o_tid, h["tid"])
    k = last_match(ra, o_start, rb, h["start"])
    hit = k >= 0
    h_end = h["start"] + h["dur"]
    hit[hit] &= o_start[hit] < h_end[k[hit]]
    idx = np.nonzero(hit)[0]
    hk = k[idx]
    s = np.maximum(o_start[idx], h["start"][hk])
    e = np.minimum(o_end[idx], h_end[hk])
    mutex = h["mutex"][hk]
    # waiters of that mutex whose wait overlaps [s, e): those that started before e,
    # minus those that had already ended by s (which all started before e too)
    waiters = np.zeros(len(idx), np.int64)
    w_end = w["start"] + w["dur"]
    if len(w) and len(idx):
        mk, wk = dense_rank(mutex, w["mutex"])
        lo_t = int(min(w["start"].min(), s.min()))
        span = int(max(w_end.max(), e.max())) - lo_t + 2
        by_start = np.sort(wk.astype(np.int64) * span + (w["start"] - lo_t))
        by_end = np.sort(wk.astype(np.int64) * span + (w_end - lo_t))
        base = mk.astype(np.int64) * span
        group = np.arange(int(max(mk.max(), wk.max())) + 1, dtype=np.int64) * span  # each mutex's first key
        started = np.searchsorted(by_start, base + (e - lo_t), "left") - np.searchsorted(by_start, group, "left")[mk]
        ended = np.searchsorted(by_end, base + (s - lo_t), "right") - np.searchsorted(by_end, group, "left")[mk]
        waiters = started - ended
    cost = (e - s) * waiters
    keep = (waiters > 0) & (e - s >= max(opts.min_duration, 1))
    if flt.since is not None:
        keep &= e >= flt.since
    if flt.until is not None:
        keep &= s < flt.until
    if flt.threads:
        from osvtrace.model.filters import thread_ids

        keep &= np.isin(o_tid[idx], thread_ids(model.trace, flt.threads))
    sel = np.nonzero(keep)[0]
    order = np.argsort(-cost[sel])
    sel = sel[order]
    holder = o_tid[idx][sel]
    cols = {"start": s[sel], "dur": (e - s)[sel], "mutex": mutex[sel], "holder": holder,
            "thread": thread_names(model, holder),
            "holder_was": STATE_NAMES[o_state[idx][sel]],
            "cpu": o_cpu[idx][sel], "waiters": waiters[sel], "cost": cost[sel]}
    return Report("Lock-holder preemption: owner not running while others waited",
                  cols, {"start": "time", "dur": "ns", "mutex": "addr", "cost": "ns"},
                  [f"{len(sel):,} intervals; cost = time off CPU x waiters (an upper bound on the waiters' "
                   f"time lost), {int(cost[keep].sum()):,} ns in all"])
