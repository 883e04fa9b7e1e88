"""prof-idle: per CPU, how long it was idle and how its idle periods were spread, with a
histogram and a picture over time."""

from __future__ import annotations

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter, format_duration
from osvtrace.model.sched import SLEEPING, WAITING
from osvtrace.reports.common import Options, Report, clip, filter_table, group_stats, sparkline
from osvtrace.reports.sched import busy_until, idle_tids
from osvtrace.reports.registry import register

# edges of the idle-period histogram (ns): decades from 1 us to 1 s
EDGES = np.array([0, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000], np.int64)
LABELS = ["<1us", "1-10us", "10-100us", ".1-1ms", "1-10ms", "10-100ms", ".1-1s", ">=1s"]


def idle_periods(model: Model, flt: Filter) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cpu, start, dur, from_pairs) of every idle period. A CPU's periods are its
    sched_idle .. sched_idle_ret pairs where the trace has them (the CPU halted or polled with
    nothing to run); otherwise the slices of its idle thread (a kernel that shows idleness
    only as switches to and from the idle thread)."""
    t = model.timed
    m = filter_table(model, t, flt) & (t["name"] == "sched_idle")
    p_cpu, p_start, p_dur = t["cpu"][m], t["start"][m], t["dur"][m]
    s = model.sched_slice
    sm = filter_table(model, s, flt) & np.isin(s["tid"], idle_tids(model)) & ~np.isin(s["cpu"], np.unique(p_cpu))
    cpu = np.concatenate([p_cpu, s["cpu"][sm]])
    start = np.concatenate([p_start, s["start"][sm]])
    dur = np.concatenate([p_dur, s["dur"][sm]])
    pairs = np.concatenate([np.ones(len(p_cpu), bool), np.zeros(int(sm.sum()), bool)])
    o = np.lexsort((start, cpu))
    return cpu[o], start[o], dur[o], pairs[o]


@register("prof-idle", "Per CPU: idle time, the number and length distribution of idle periods (sched_idle to "
                       "sched_idle_ret, or the idle thread's slices), a histogram and idleness over time.")
def prof_idle(model: Model, flt: Filter, opts: Options) -> Report:
    cpu, start, whole, pairs = idle_periods(model, flt)
    dur = clip(start, whole, flt)
    lo, hi = model.trace.span_ns
    lo = lo if flt.since is None else max(lo, flt.since)
    hi = hi if flt.until is None else min(hi, flt.until)
    span = max(hi - lo, 1)
    ncpu = max(model.trace.ncpus, int(cpu.max()) + 1 if len(cpu) else 0)
    cpus = np.array(flt.cpus or list(range(ncpu)), np.int64)
    keys, st = group_stats(cpu, whole)  # lengths of whole periods; the total below is clipped

    def per_cpu(k: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(ncpu, np.int64)
        out[k.astype(np.int64)] = v
        return out[cpus]

    # the idle thread's own running time, beside the periods: the gap is the idle loop's
    # work outside halt and poll (draining queues, balancing)
    s = model.sched_slice
    im = filter_table(model, s, flt) & np.isin(s["tid"], idle_tids(model))
    idle_thread = np.bincount(s["cpu"][im], weights=clip(s["start"][im], s["dur"][im], flt),
                              minlength=ncpu).astype(np.int64)[cpus]
    src = np.full(ncpu, "none", object)
    src[np.unique(cpu[~pairs]).astype(np.int64)] = "idle thread"
    src[np.unique(cpu[pairs]).astype(np.int64)] = "sched_idle"
    total = np.bincount(cpu, weights=dur, minlength=ncpu).astype(np.int64)[cpus]
    cols = {"cpu": cpus, "source": src[cpus], "periods": per_cpu(keys, st["count"]), "idle": total,
            "idle_pct": total * 100.0 / span, "p50": per_cpu(keys, st["p50"]), "p90": per_cpu(keys, st["p90"]),
            "p99": per_cpu(keys, st["p99"]), "max": per_cpu(keys, st["max"]), "idle_thread": idle_thread}
    waits = waiting_while_idle(model, flt, cpu, start, whole, cpus)
    cols["waiting"] = np.array([sum(w["ns"] for w in waits[c]) for c in cpus.tolist()], np.int64)
    cols["top_wait"] = np.array([waits[c][0]["object"] if waits[c] else 0 for c in cpus.tolist()], np.uint64)
    # histogram of period lengths per CPU, and the idle share per time bucket
    bins = np.searchsorted(EDGES, whole, "right") - 1
    hist = np.zeros((ncpu, len(EDGES)), np.int64)
    np.add.at(hist, (cpu.astype(np.int64), bins), 1)
    nb = max(1, opts.buckets)
    edges = lo + (np.arange(nb + 1) * span) // nb
    share = np.zeros((ncpu, nb))
    for c in cpus.tolist():  # per CPU: idle time accumulated up to each bucket edge
        on = cpu == c
        share[c] = np.diff(busy_until(start[on], whole[on], edges)) / np.maximum(np.diff(edges), 1)
    pic = [f"idle periods by length (one column per decade: {', '.join(LABELS)}; full block = the CPU's "
           f"commonest length):"]
    for c in cpus.tolist():
        h = hist[c]
        pic.append(f"cpu{c:<3} |{sparkline(h, float(h.max()) if h.max() else 1.0)}|  "
                   + " ".join(f"{x:,}" for x in h.tolist()))
    pic.append(f"idle over time ({nb} buckets, full block = idle throughout):")
    pic += [f"cpu{c:<3} |{sparkline(share[c])}|" for c in cpus.tolist()]
    notes = ["source sched_idle: idle from sched_idle to sched_idle_ret (halted, or polling for work); "
             "idle thread: the idle thread's slices (the kernel traced no sched_idle on that CPU)",
             "idle_thread: time the idle thread ran, for comparison (it also drains queues and balances)",
             "waiting: thread time blocked, by threads last on that CPU, while it was idle (what the CPU could have "
             "run); top_wait: the wait object with most of it (0x0: not traced; --json: the top 5 per CPU)"]
    if len(dur):
        notes.append(f"all CPUs: {len(dur):,} idle periods, longest {format_duration(int(whole.max()))}")
    return Report("Idle time and idle periods per CPU", cols,
                  {k: "ns" for k in ("idle", "p50", "p90", "p99", "max", "idle_thread", "waiting")}
                  | {"idle_pct": "pct", "top_wait": "addr"},
                  notes, picture=pic,
                  extra={"histogram_edges_ns": EDGES.tolist(), "histogram": {str(c): hist[c].tolist() for c in cpus},
                         "idle_share": {str(c): share[c].round(4).tolist() for c in cpus},
                         "bucket_edges": edges.tolist(), "waiting_during_idle": {str(c): waits[c] for c in cpus}})


def waiting_while_idle(model: Model, flt: Filter, cpu: np.ndarray, start: np.ndarray, whole: np.ndarray,
                       cpus: np.ndarray, top: int = 5) -> dict[int, list[dict[str, int]]]:
    """Per CPU, the wait objects its threads were blocked on while it was idle, most first:
    {object, ns (blocked time inside the CPU's idle periods), threads}. trace.py's prof-idle
    shows the same as the waiters' backtraces. A blocked thread counts for the CPU it last ran
    on; the idle periods (sorted, one CPU's never overlap) are cumulated once per CPU, so each
    wait's overlap with them is two lookups."""
    ts = model.thread_state
    w = filter_table(model, ts, flt) & ((ts["state"] == WAITING) | (ts["state"] == SLEEPING))
    ws, we = ts["start"][w], ts["start"][w] + ts["dur"][w]
    if flt.since is not None:
        ws = np.maximum(ws, flt.since)
    if flt.until is not None:
        we = np.minimum(we, flt.until)
    wc, obj, tid = ts["cpu"][w], ts["blocked_on"][w], ts["tid"][w]
    out: dict[int, list[dict[str, int]]] = {}
    for c in cpus.tolist():
        on, m = cpu == c, wc == c
        inside = busy_until(start[on], whole[on], we[m]) - busy_until(start[on], whole[on], ws[m])
        keep = inside > 0
        o, t, ns = obj[m][keep], tid[m][keep], inside[keep]
        keys, inv = np.unique(o, return_inverse=True)
        tot = np.bincount(inv, weights=ns, minlength=len(keys)).astype(np.int64)
        pairs = np.unique((inv.astype(np.int64) << 32) | t.astype(np.int64))  # distinct (object, thread)
        nthreads = np.bincount(pairs >> 32, minlength=len(keys))
        best = np.argsort(-tot, kind="stable")[:top]
        out[c] = [{"object": int(keys[k]), "ns": int(tot[k]), "threads": int(nthreads[k])} for k in best.tolist()]
    return out

