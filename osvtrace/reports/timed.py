"""Timed pairs (X / X_ret / X_err): `timed` (trace.py's `summary --timed`), `list-timed` and
`prof-timed`, over the model's timed and timed_unmatched tables."""

from __future__ import annotations

import fnmatch

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.table import Table
from osvtrace.reports.common import Options, Report, clip, filter_table, group_stats, thread_names
from osvtrace.reports.registry import TABLE_OPTS, Opt, register

NS = ("min", "p50", "p90", "p99", "max", "total", "mean")


def name_mask(names: np.ndarray, flt: Filter) -> np.ndarray:
    """Rows whose pair matches --tp (a glob on the entry's name, X, or on X_ret / X_err)."""
    if not flt.tracepoints:
        return np.ones(len(names), bool)
    pats = [p for item in flt.tracepoints for p in item.split(",") if p.strip()]
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    keep = np.array([any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n + "_ret", p)
                         or fnmatch.fnmatchcase(n + "_err", p) for p in pats) for n in uniq.tolist()], bool)
    return keep[inv] if len(uniq) else np.zeros(0, bool)


def selected(model: Model, flt: Filter, opts: Options | None) -> tuple[Table, np.ndarray, np.ndarray]:
    """The timed table, its rows passing the filter, and the unmatched rows passing it."""
    t, u = model.timed, model.timed_unmatched
    m = filter_table(model, t, flt, opts=opts) & name_mask(t["name"], flt)
    um = filter_table(model, u, flt, time_col="time", dur_col=None) & name_mask(u["name"], flt)
    return t, m, um


def _spread(keys: np.ndarray, k: np.ndarray, v: np.ndarray, missing: int = 0) -> np.ndarray:
    out = np.full(len(keys), missing, np.int64)
    if len(k):
        out[np.searchsorted(keys, k)] = v
    return out


@register("timed", "Per timed tracepoint (X with X_ret / X_err): count, min, percentiles, max, total, errors, "
                   "and records left unmatched (trace.py's summary --timed).")
def timed(model: Model, flt: Filter, opts: Options) -> Report:
    t, m, um = selected(model, flt, opts)
    u = model.timed_unmatched
    names = t["name"][m].astype(str)
    dur = clip(t["start"][m], t["dur"][m], flt)
    keys, st = group_stats(names, dur)
    u_names = u["name"][um].astype(str)
    # every tracepoint with a pair or a left-over record gets a row
    sk = np.array(sorted(set(keys.tolist()) | set(u_names.tolist())), str)
    allk = sk.astype(object)
    order = np.lexsort((dur, names))  # min per name: first of each sorted group
    mins = {}
    if len(order):
        sn = names[order]
        firsts = np.concatenate(([0], np.nonzero(sn[1:] != sn[:-1])[0] + 1))
        mins = dict(zip(sn[firsts].tolist(), dur[order][firsts].tolist()))

    def count(mask: np.ndarray, nm: np.ndarray) -> np.ndarray:
        k, c = np.unique(nm[mask], return_counts=True)
        return _spread(sk, k.astype(str), c)

    cols = {"tracepoint": allk, "count": _spread(sk, keys.astype(str), st["count"]),
            "min": np.array([mins.get(k, -1) for k in sk.tolist()], np.int64)}
    for p in ("p50", "p90", "p99", "max", "total"):
        cols[p] = _spread(sk, keys.astype(str), st[p], -1 if p != "total" else 0)
    cols["errors"] = count(~t["ok"][m], names)
    side, reason = u["side"][um], u["reason"][um]
    cols["no_exit"] = count((side == "entry") & (reason == "exit missing"), u_names)
    cols["open_at_end"] = count(reason == "open at end", u_names)
    cols["no_entry"] = count(side == "exit", u_names)
    cols["uncertain"] = count(~t["certain"][m], names)
    o = np.argsort(-cols["total"], kind="stable")
    notes = ["min .. total: matched pairs, clipped to --since/--until; errors: pairs closed by X_err",
             "no_exit: the thread's later records are there but this call's exit is not (lost, or its CPU's ring "
             "wrapped); open_at_end: still running when the trace ended (trace.py counts these as pairs ending at "
             "the last record); no_entry: the call began before the trace or before its CPU's ring",
             "uncertain: pairs that began before every CPU's ring had data, or with a loss inside: a record of "
             "that thread may be missing between entry and exit (osvtrace query: timed WHERE NOT certain)"]
    return Report("Timed tracepoints (entry to X_ret / X_err)", {k: v[o] for k, v in cols.items()},
                  {k: "ns" for k in ("min", "p50", "p90", "p99", "max", "total")}, notes)


SORT_OPT = Opt("--sort", "str", "Order of the pairs: duration (longest first) or time.", "duration", "ORDER")


@register("list-timed", "Each timed pair: start, duration, tracepoint, thread, CPUs, nesting depth, entry "
                        "arguments (trace.py's list-timed).", options=(SORT_OPT, *TABLE_OPTS))
def list_timed(model: Model, flt: Filter, opts: Options) -> Report:
    sort = opts.more.get("sort") or "duration"
    if sort not in ("duration", "time"):
        raise UsageError(f"list-timed: --sort {sort}: give duration or time")
    t, m, _ = selected(model, flt, opts)
    idx = np.nonzero(m)[0]
    if sort == "duration":
        idx = idx[np.argsort(-t["dur"][idx], kind="stable")]
    n = len(idx) if opts.limit is None else min(len(idx), opts.limit)
    # arguments are formatted for the rows shown only: no Python object per pair
    args = np.full(len(idx), "", object)
    args[:n] = [model.trace.format_event(int(i)) for i in t["event"][idx[:n]].tolist()]
    tid = t["tid"][idx]
    cols = {"start": t["start"][idx], "dur": t["dur"][idx], "tracepoint": t["name"][idx], "tid": tid,
            "thread": thread_names(model, tid), "cpu": t["cpu"][idx], "end_cpu": t["end_cpu"][idx],
            "depth": t["depth"][idx], "ok": t["ok"][idx], "certain": t["certain"][idx], "args": args}
    return Report(f"Timed pairs by {'duration' if sort == 'duration' else 'start time'}", cols,
                  {"start": "time", "dur": "ns"},
                  [f"args: the entry record's, formatted for the first {n:,} rows (the event column of "
                   "`osvtrace query FILE 'select * from timed'` joins them all)"] if n < len(idx) else [])


@register("prof-timed", "Per timed tracepoint and thread: time inside the calls, count, percentiles "
                        "(trace.py's prof-timed, by thread where it goes by backtrace).")
def prof_timed(model: Model, flt: Filter, opts: Options) -> Report:
    t, m, _ = selected(model, flt, opts)
    names, tid = t["name"][m].astype(str), t["tid"][m]
    dur = clip(t["start"][m], t["dur"][m], flt)
    # one key per (tracepoint, thread): rank the names, then mix in the thread id
    nk, ninv = np.unique(names, return_inverse=True)
    key = ninv.astype(np.int64) << 32 | tid.astype(np.int64)
    keys, st = group_stats(key, dur)
    k_tid = (keys & 0xFFFFFFFF).astype(np.uint32)
    cols = {"tracepoint": nk[keys >> 32].astype(object) if len(keys) else np.empty(0, object), "tid": k_tid,
            "thread": thread_names(model, k_tid), "count": st["count"], "total": st["total"], "p50": st["p50"],
            "p99": st["p99"], "max": st["max"]}
    nested = np.bincount(np.searchsorted(keys, key), weights=t["depth"][m] > 0, minlength=len(keys)).astype(np.int64)
    cols["nested"] = nested
    o = np.argsort(-st["total"], kind="stable")
    return Report("Time in timed calls by tracepoint and thread", {k: v[o] for k, v in cols.items()},
                  {"total": "ns", "p50": "ns", "p99": "ns", "max": "ns"},
                  ["total counts nested calls inside their outer call too (nested: calls with depth > 0)"])
