"""memory: heap allocations by size class and alignment, by thread, or the possible leaks
(trace.py's memory-analyzer), with live bytes over time."""

from __future__ import annotations

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.model import Model
from osvtrace.model.filters import Filter, format_duration
from osvtrace.reports.common import Options, Report, filter_table, group_stats, sparkline, thread_names
from osvtrace.reports.registry import TABLE_OPTS, Opt, register

BY_OPT = Opt("--by", "str", "Rows: class (allocator, size class, alignment), thread, or leaks (each allocation "
             "never freed in the trace).", "class", "ROWS")


def live_bytes(times: np.ndarray, steps: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bytes live at each edge: the running sum of +len at allocations and -len at their frees."""
    o = np.argsort(times, kind="stable")
    run = np.concatenate(([0], np.cumsum(steps[o])))
    return run[np.searchsorted(times[o], edges, "right")]


@register("memory", "Heap allocations by size class and alignment (or --by thread, --by leaks): counts, bytes, "
                    "unused share, frees, possible leaks; live bytes over time (trace.py's memory-analyzer).",
          options=(BY_OPT, *TABLE_OPTS))
def memory(model: Model, flt: Filter, opts: Options) -> Report:
    by = opts.more.get("by") or "class"
    if by not in ("class", "thread", "leaks"):
        raise UsageError(f"memory: --by {by}: give class, thread or leaks")
    a, f = model.memory_alloc, model.memory_free
    am = filter_table(model, a, flt, time_col="time", dur_col=None) & (a["buf"] != 0)
    fm = filter_table(model, f, flt, time_col="time", dur_col=None)
    never = a["freed"] < 0
    failed = int((filter_table(model, a, flt, time_col="time", dur_col=None) & (a["buf"] == 0)).sum())
    end = model.trace.span_ns[1]
    kinds = {"bytes": "", "live_bytes": ""}
    if by == "class":
        # one row per (allocator, size class, alignment), the way memory-analyzer groups by default
        alloc_names, ainv = np.unique(a["allocator"][am].astype(str), return_inverse=True)
        key = (ainv.astype(np.int64) << 56) | (a["alloc_len"][am] << 16) | np.minimum(a["align"][am], 0xFFFF)
        keys, st = group_stats(key, a["len"][am])
        pos = np.searchsorted(keys, key)
        life = np.where(never[am], 0, a["freed"][am] - a["time"][am])
        lk, lst = group_stats(key[~never[am]], life[~never[am]])

        def per(v: np.ndarray) -> np.ndarray:
            return np.bincount(pos, weights=v, minlength=len(keys)).astype(np.int64)

        size_class = (keys >> 16) & ((1 << 40) - 1)
        alloc_bytes = per(a["alloc_len"][am])
        cols = {"allocator": alloc_names[keys >> 56].astype(object) if len(keys) else np.empty(0, object),
                "size_class": size_class, "align": keys & 0xFFFF, "allocs": st["count"], "bytes": st["total"],
                "unused_pct": (alloc_bytes - st["total"]) * 100.0 / np.maximum(alloc_bytes, 1),
                "freed": per(~never[am]), "live": per(never[am]), "live_bytes": per(np.where(never[am], a["len"][am], 0))}
        p50 = np.full(len(keys), -1, np.int64)
        p50[np.searchsorted(keys, lk)] = lst["p50"]
        cols["life_p50"] = p50
        o = np.lexsort((cols["size_class"], -cols["allocs"]))
        kinds.update(unused_pct="pct", life_p50="ns")
        title = "Heap allocations by allocator, size class and alignment"
    elif by == "thread":
        tid = a["tid"][am]
        keys, st = group_stats(tid, a["len"][am])
        pos = np.searchsorted(keys, tid)
        fk, fc = np.unique(f["tid"][fm], return_counts=True)
        keys_all = np.union1d(keys, fk).astype(np.uint32)
        ka = np.searchsorted(keys_all, keys)

        def spread(v: np.ndarray) -> np.ndarray:
            out = np.zeros(len(keys_all), np.int64)
            out[ka] = v
            return out

        frees = np.zeros(len(keys_all), np.int64)
        frees[np.searchsorted(keys_all, fk)] = fc
        cols = {"tid": keys_all, "thread": thread_names(model, keys_all), "allocs": spread(st["count"]),
                "bytes": spread(st["total"]), "frees": frees,
                "live": spread(np.bincount(pos, weights=never[am], minlength=len(keys)).astype(np.int64)),
                "live_bytes": spread(np.bincount(pos, weights=np.where(never[am], a["len"][am], 0),
                                                 minlength=len(keys)).astype(np.int64))}
        o = np.argsort(-cols["bytes"], kind="stable")
        title = "Heap allocations by thread"
    else:
        sel = np.nonzero(am & never)[0]
        sel = sel[np.argsort(-a["len"][sel], kind="stable")]
        cols = {"time": a["time"][sel], "tid": a["tid"][sel], "thread": thread_names(model, a["tid"][sel]),
                "cpu": a["cpu"][sel], "buf": a["buf"][sel], "len": a["len"][sel], "alloc_len": a["alloc_len"][sel],
                "align": a["align"][sel], "allocator": a["allocator"][sel], "age": end - a["time"][sel]}
        o = np.arange(len(sel))
        kinds = {"time": "time", "buf": "addr", "age": "ns"}
        title = "Possible leaks: allocations never freed in the trace (largest first)"
    # live bytes over time, from this trace's allocations and their frees (what was live when
    # the trace began is unknown: the picture starts at zero)
    lo, hi = model.trace.span_ns
    lo = lo if flt.since is None else max(lo, flt.since)
    hi = hi if flt.until is None else min(hi, flt.until)
    nb = max(1, opts.buckets)
    edges = lo + (np.arange(nb + 1) * max(hi - lo, 1)) // nb
    ok = a["buf"] != 0
    freed = ok & ~never
    times = np.concatenate([a["time"][ok], a["freed"][freed]])
    steps = np.concatenate([a["len"][ok], -a["len"][freed]])
    live = live_bytes(times, steps, edges[1:])
    peak = int(live.max()) if len(live) else 0
    pic = [f"live bytes over time ({nb} buckets, full block = {peak:,} bytes):", f"|{sparkline(live, peak or 1)}|"]
    n_orphan = int((f["len"][fm] < 0).sum())
    leaks = am & never
    notes = [f"{int(am.sum()):,} allocations, {int(fm.sum()):,} frees; {n_orphan:,} frees without an allocation "
             "in the trace (allocated before it began, or the record was lost)",
             f"possible leaks: {int(leaks.sum()):,} allocations ({int(a['len'][leaks].sum()):,} bytes) never freed "
             "before the trace ended (--by leaks lists them)"
             + (f"; the oldest is {format_duration(int(end - a['time'][leaks].min()))} old" if leaks.any() else "")]
    if by == "class":
        notes.append("size_class: bytes set aside (OSv's alloc_len, else the request rounded up to a power of two); "
                     "unused_pct: set aside but not requested; life_p50: allocation to free")
    if failed:
        notes.append(f"{failed:,} allocations failed (buf 0)")
    return Report(title, {k: v[o] for k, v in cols.items()}, kinds, notes, picture=pic,
                  extra={"live_bytes": live.tolist(), "bucket_edges": edges.tolist(), "frees_without_alloc": n_orphan,
                         "leaks": int(leaks.sum()), "leaked_bytes": int(a["len"][leaks].sum())})
