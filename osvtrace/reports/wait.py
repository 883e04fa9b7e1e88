"""prof-wait: where threads spent their time blocked (OSv's prof-wait): a call tree of the
waiters' stacks, or with --flat a table per thread and wait object."""

from __future__ import annotations

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.sched import SLEEPING, WAITING
from osvtrace.model.search import dense_rank
from osvtrace.reports.common import Options, Report, clip, filter_table, group_stats
from osvtrace.reports.prof import FLAT_OPT, TREE_OPTS, tree_report
from osvtrace.reports.registry import register


@register("prof-wait", "Blocked time as a call tree of the waiters' stacks (trace.py's prof-wait); --flat: per "
                       "thread and wait object, count and percentiles.", options=(FLAT_OPT, *TREE_OPTS))
def prof_wait(model: Model, flt: Filter, opts: Options) -> Report:
    return flat(model, flt, opts) if opts.more.get("flat") else tree_report(model, flt, opts, "prof-wait")


def flat(model: Model, flt: Filter, opts: Options) -> Report:
    """Per thread and wait object: time blocked (waiting or sleeping), count, percentiles."""
    ts = model.thread_state
    m = filter_table(model, ts, flt, opts=opts) & ((ts["state"] == WAITING) | (ts["state"] == SLEEPING))
    tid, obj, state = ts["tid"][m], ts["blocked_on"][m], ts["state"][m]
    dur = clip(ts["start"][m], ts["dur"][m], flt)
    pair = dense_rank(obj ^ (tid.astype(np.uint64) << np.uint64(48)))[0]
    keys, st = group_stats(pair, dur)
    first = np.zeros(len(keys), np.int64)
    first[np.searchsorted(keys, pair[::-1])] = np.arange(len(pair))[::-1]
    cols = {"tid": tid[first], "thread": np.array([model.trace.thread_name(int(t)) for t in tid[first]], object),
            "object": obj[first], "state": np.array(["sleeping" if x == SLEEPING else "waiting"
                                                     for x in state[first]], object),
            "count": st["count"], "total": st["total"], "p50": st["p50"], "p99": st["p99"], "max": st["max"]}
    order = np.argsort(-st["total"], kind="stable")
    return Report("Blocked time by thread and wait object", {k: v[order] for k, v in cols.items()},
                  {"object": "addr", "total": "ns", "p50": "ns", "p99": "ns", "max": "ns"},
                  ["object 0x0: the wait object was not traced (enable sched_wait)"])
