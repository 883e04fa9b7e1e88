"""net: per net channel, packets, drops and the latency of each stage of the packet path."""

from __future__ import annotations

import numpy as np

from osvtrace.catalog.schema import default_catalog
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.net import STAGES
from osvtrace.reports.common import Options, Report, filter_table, group_stats
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


def _state_names() -> np.ndarray:
    """Names of the tcp_state enum by value (our schema's: the model's vocabulary for every kernel)."""
    enum = default_catalog().enums["tcp_state"]
    names = np.array([f"state{v}" for v in range(max(enum.values()) + 1)], dtype=object)
    for name, v in enum.items():
        names[v] = name
    return names


@register("tcp", "Per TCP connection (real OSv's tcp_state): the states it went through, handshake time, "
                 "time established and in time_wait, and changes lost in between.")
def tcp(model: Model, flt: Filter, opts: Options) -> Report:
    """One row per connection (its tcpcb address), first seen first. A state still held at the
    trace's end counts up to the end; "gaps" counts changes that left another state than the
    one recorded last, i.e. records of this connection were overwritten or not traced."""
    t = model.tcp_state
    m = filter_table(model, t, flt, time_col="start", dur_col=None, opts=None)
    conn, state, start = t["conn"][m], t["state"][m], t["start"][m]
    end = model.trace.span_ns[1]
    dur = np.where(t["dur"][m] >= 0, t["dur"][m], end - start)
    keys, first_pos, counts = np.unique(conn, return_index=True, return_counts=True)
    pos = np.searchsorted(keys, conn)
    names = _state_names()

    def per(flags: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.bincount(pos, weights=np.where(flags, v, 0), minlength=len(keys)).astype(np.int64)

    # the table is grouped by connection in time order: a group's rows are contiguous
    last_pos = first_pos + counts - 1
    paths = np.array(["-".join(names[s] for s in state[a:b + 1].tolist()) if len(keys) else ""
                      for a, b in zip(first_pos.tolist(), last_pos.tolist())], dtype=object)
    opening = np.isin(state, (2, 3))  # syn_sent, syn_received
    est = state == 4
    first_open = np.full(len(keys), -1, np.int64)
    first_est = np.full(len(keys), -1, np.int64)
    for flags, out in ((opening, first_open), (est, first_est)):
        k = pos[flags][::-1]  # the earliest of each connection written last
        out[k] = start[flags][::-1]
    handshake = np.where((first_open >= 0) & (first_est >= first_open), first_est - first_open, -1)
    cols = {"conn": keys, "first": start[first_pos] if len(keys) else np.empty(0, np.int64),
            "changes": counts.astype(np.int64), "states": paths,
            "last": names[state[last_pos]] if len(keys) else np.empty(0, object),
            "handshake": handshake, "established": per(est, dur), "time_wait": per(state == 10, dur),
            "gaps": np.bincount(pos, weights=t["gap"][m], minlength=len(keys)).astype(np.int64)}
    order = np.argsort(cols["first"], kind="stable")
    if opts.limit:
        order = order[:opts.limit]
    cols = {k: v[order] for k, v in cols.items()}
    notes = [f"{len(keys)} connections, {int(m.sum())} state changes"]
    if not len(t):
        notes = ["no tcp_state records: real OSv records them with --trace=tcp_state (our kernel has no TCP)"]
    elif cols["gaps"].sum():
        notes.append(f"{int(cols['gaps'].sum())} changes left a state other than the one recorded before: "
                     "records in between are missing")
    return Report("TCP connections", cols, kinds={"conn": "addr", "first": "time", "handshake": "ns",
                                                  "established": "ns", "time_wait": "ns", "states": "text",
                                                  "last": "text"}, notes=notes)
