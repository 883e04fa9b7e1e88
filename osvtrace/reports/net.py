"""net: per net channel, packets, drops and the latency of each stage of the packet path."""

from __future__ import annotations

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.net import STAGES
from osvtrace.reports.common import Options, Report, group_stats
from osvtrace.reports.registry import register


@register("net", "Per net channel: packets, answered, drops, cross-CPU share, per-stage and in-guest latency "
                 "percentiles.")
def net(model: Model, flt: Filter, opts: Options) -> Report:
    """One row per net channel (a socket; 0x0 is the default path: ARP, ICMP, unbound ports,
    and frames the guest sent unasked). A packet id follows a request from the driver to its
    reply, so "answered" counts requests whose reply was transmitted, and rx>tx is the time the
    guest took; a request popped but never answered was dropped by its consumer (bad checksum)
    or is still being served."""
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
    received = f["rx_time"][m] >= 0
    answered = received & (f["tx_time"][m] >= 0)

    def per_key(flags: np.ndarray) -> np.ndarray:
        return np.bincount(pos, weights=flags, minlength=len(keys)).astype(np.int64)

    cols: dict[str, np.ndarray] = {
        "channel": keys,
        "path": np.where(keys == 0, "default", "socket").astype(object),
        "packets": counts,
        "received": per_key(received),
        "answered": per_key(answered),
        "dropped": per_key(f["dropped"][m]),
        "cross_cpu": per_key(f["cpu_hops"][m] > 0),
    }
    kinds = {"channel": "addr", "path": "text"}

    def stage(name: str, ta: np.ndarray, tb: np.ndarray) -> None:
        ok = (ta >= 0) & (tb >= 0)
        k, st = group_stats(ch[ok], tb[ok] - ta[ok])
        for p in ("p50", "p99"):
            col = np.full(len(keys), -1, np.int64)
            col[np.searchsorted(keys, k)] = st[p]
            cols[f"{name} {p}"] = col
            kinds[f"{name} {p}"] = "ns"

    for a, b in zip(STAGES, STAGES[1:]):
        stage(f"{a}>{b}", f[f"{a}_time"][m], f[f"{b}_time"][m])
    stage("rx>tx", f["rx_time"][m], f["tx_time"][m])
    notes = ["stages: rx = driver took the frame, classify, push into the channel, pop by the consumer, "
             "tx = the reply entered the device's ring (it carries the request's packet id); rx>tx = in the guest",
             "path default: no channel (ARP, ICMP, unbound ports; frames the guest sent unasked have no rx)"]
    hops = int(cols["cross_cpu"].sum())
    if hops:
        notes.append(f"{hops:,} packets changed CPU on their way (cross_cpu): the consumer ran elsewhere than "
                     "the receive thread")
    return Report("Packet path by net channel (0x0 = default path); stage latencies", cols, kinds, notes)
