"""Scheduler reports: sched (per thread), wakeup (latency), cpu (load per CPU over time)."""

from __future__ import annotations

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.sched import RUNNABLE, SLEEPING, WAITING
from osvtrace.reports.common import Options, Report, clip, filter_table, group_stats, sparkline, thread_names
from osvtrace.reports.registry import register


def idle_tids(model: Model) -> np.ndarray:
    """The kernel names its idle threads idle0, idle1 ...: their running time is idle time."""
    th = model.threads
    return th["tid"][np.array([str(n).startswith("idle") for n in th["name"]], bool)]


@register("sched", "Per thread: CPU time, slices and their length percentiles, why it stopped running.")
def sched(model: Model, flt: Filter, opts: Options) -> Report:
    s = model.sched_slice
    m = filter_table(model, s, flt, opts=opts)
    tid, dur = s["tid"][m], clip(s["start"][m], s["dur"][m], flt)
    keys, st = group_stats(tid, dur)
    end_state = s["end_state"][m]
    pos = np.searchsorted(keys, tid)
    reasons = {name: np.bincount(pos[end_state == v], minlength=len(keys))
               for name, v in (("preempted", RUNNABLE), ("waited", WAITING), ("slept", SLEEPING))}
    span = max(model.trace.span_ns[1] - model.trace.span_ns[0], 1)
    order = np.argsort(-st["total"], kind="stable")
    names = thread_names(model, keys)
    cols = {"tid": keys, "thread": names, "cpu_time": st["total"], "share": st["total"] * 100.0 / span,
            "slices": st["count"], "p50": st["p50"], "p90": st["p90"], "p99": st["p99"], "max": st["max"],
            **reasons}
    return Report("Threads by CPU time (slice lengths)", {k: v[order] for k, v in cols.items()},
                  {"cpu_time": "ns", "share": "pct", "p50": "ns", "p90": "ns", "p99": "ns", "max": "ns"})


@register("wakeup", "Wake-up latency (sched_wake to running) per woken thread, with percentiles.")
def wakeup(model: Model, flt: Filter, opts: Options) -> Report:
    w = model.wakeup
    m = filter_table(model, w, flt, time_col="time", dur_col=None, tid_col="wakee")
    m &= w["latency"] >= max(opts.min_duration, 0)
    wakee, lat = w["wakee"][m], w["latency"][m]
    keys, st = group_stats(wakee, lat)
    cross = np.bincount(np.searchsorted(keys, wakee), weights=(w["run_cpu"][m] != w["cpu"][m]),
                        minlength=len(keys)).astype(np.int64)
    order = np.argsort(-st["p99"], kind="stable")
    names = thread_names(model, keys)
    cols = {"tid": keys, "thread": names, "wakeups": st["count"], "cross_cpu": cross, "p50": st["p50"],
            "p90": st["p90"], "p99": st["p99"], "max": st["max"], "mean": st["mean"]}
    allst = group_stats(np.zeros(len(lat), np.int8), lat)[1]
    never = int(((w["latency"] < 0) & filter_table(model, w, flt, time_col="time", dur_col=None,
                                                   tid_col="wakee")).sum())
    notes = [f"all: {int(allst['count'][0]) if len(lat) else 0:,} wake-ups, p50 "
             f"{int(allst['p50'][0]) if len(lat) else 0} ns, p99 {int(allst['p99'][0]) if len(lat) else 0} ns"
             + (f"; {never} woken threads never ran before the trace ended" if never else "")]
    return Report("Wake-up latency by thread (sched_wake -> running)", {k: v[order] for k, v in cols.items()},
                  {k: "ns" for k in ("p50", "p90", "p99", "max", "mean")}, notes)


def busy_until(start: np.ndarray, dur: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Time inside one CPU's intervals (sorted, never overlapping: slices, idle periods) up to each x."""
    prefix = np.concatenate(([0], np.cumsum(dur)))
    k = np.searchsorted(start, x, "right")  # slices started at or before x
    last = np.maximum(k - 1, 0)
    partial = np.where(k > 0, np.clip(x - start[last] if len(start) else 0, 0, dur[last] if len(dur) else 0), 0)
    return prefix[last] + partial


@register("cpu", "Per CPU: busy and idle time, switches, and a load picture over time.")
def cpu(model: Model, flt: Filter, opts: Options) -> Report:
    s = model.sched_slice
    m = filter_table(model, s, flt)
    lo, hi = model.trace.span_ns
    if flt.since is not None:
        lo = max(lo, flt.since)
    if flt.until is not None:
        hi = min(hi, flt.until)
    span = max(hi - lo, 1)
    idle = np.isin(s["tid"], idle_tids(model))
    ncpu = model.trace.ncpus
    busy = np.zeros(ncpu, np.int64)
    idle_t = np.zeros(ncpu, np.int64)
    dur = clip(s["start"], s["dur"], flt)
    np.add.at(busy, s["cpu"][m & ~idle], dur[m & ~idle])
    np.add.at(idle_t, s["cpu"][m & idle], dur[m & idle])
    switches = np.bincount(s["cpu"][m], minlength=ncpu)
    # load picture: busy share per time bucket, from slices cut at bucket edges
    nb = max(1, opts.buckets)
    edges = lo + (np.arange(nb + 1) * span) // nb
    load = np.zeros((ncpu, nb))
    for c in range(ncpu):  # per CPU, busy time up to each bucket edge, from sorted slices
        sel = m & ~idle & (s["cpu"] == c)
        st, du = s["start"][sel], s["dur"][sel]
        load[c] = np.diff(busy_until(st, du, edges)) / np.maximum(np.diff(edges), 1)
    cpus = flt.cpus or list(range(ncpu))
    cols = {"cpu": np.array(cpus, np.int64), "busy": busy[cpus], "busy_pct": busy[cpus] * 100.0 / span,
            "idle": idle_t[cpus], "switches": switches[cpus]}
    pic = [f"load over time ({nb} buckets, full block = 100% busy):"]
    pic += [f"cpu{c:<3} |{sparkline(load[c])}|" for c in cpus]
    return Report("CPU load (idle threads excluded from busy)", cols,
                  {"busy": "ns", "busy_pct": "pct", "idle": "ns"}, picture=pic,
                  extra={"load": {str(c): load[c].round(4).tolist() for c in cpus}, "bucket_edges": edges.tolist()})
