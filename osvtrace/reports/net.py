"""net: per net channel, packets, drops and the latency of each stage of the packet path."""

from __future__ import annotations

import numpy as np

from osvtrace.filters import Filter
from osvtrace.model import Model
from osvtrace.model.net import STAGES
from osvtrace.reports.common import Options, Report, group_stats, register


@register("net", "Per net channel: packets, drops, cross-CPU share and per-stage latency percentiles.")
def net(model: Model, flt: Filter, opts: Options) -> Report:
    f = model.packet_flow
    first = np.where(f["rx_time"] >= 0, f["rx_time"], f["tx_time"])
    m = np.ones(len(f), bool)
    if flt.since is not None:
        m &= first >= flt.since
    if flt.until is not None:
        m &= first < flt.until
    if flt.cpus:
        m &= np.isin(f["rx_cpu"], np.array(flt.cpus)) | np.isin(f["pop_cpu"], np.array(flt.cpus))
    ch = f["channel"][m]
    keys, counts = np.unique(ch, return_counts=True)
    pos = np.searchsorted(keys, ch)
    cols: dict[str, np.ndarray] = {"channel": keys, "packets": counts,
                                   "dropped": np.bincount(pos, weights=f["dropped"][m], minlength=len(keys)).astype(np.int64),
                                   "cross_cpu": np.bincount(pos, weights=f["cpu_hops"][m] > 0,
                                                            minlength=len(keys)).astype(np.int64)}
    kinds = {"channel": "addr"}
    for a, b in zip(STAGES, STAGES[1:]):
        ta, tb = f[f"{a}_time"][m], f[f"{b}_time"][m]
        ok = (ta >= 0) & (tb >= 0)
        k, st = group_stats(ch[ok], tb[ok] - ta[ok])
        for p in ("p50", "p99"):
            col = np.full(len(keys), -1, np.int64)
            col[np.searchsorted(keys, k)] = st[p]
            cols[f"{a}>{b} {p}"] = col
            kinds[f"{a}>{b} {p}"] = "ns"
    return Report("Packet path by net channel (0x0 = default path); stage latencies", cols, kinds,
                  ["stages: rx = driver took the frame, classify, push into the channel, pop by the consumer, tx"])
