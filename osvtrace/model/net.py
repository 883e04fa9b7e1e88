"""Packet flows: every packet followed through net_rx -> net_classify -> net_channel_push
-> net_channel_pop -> net_tx, with the time, CPU and latency of each stage."""

from __future__ import annotations

import numpy as np

from osvtrace.catalog.schema import default_catalog
from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import model_events
from osvtrace.model.table import Column, Table, TableSpec, table

STAGES = ("rx", "classify", "push", "pop", "tx")
_TP = {"rx": "net_rx", "classify": "net_classify", "push": "net_channel_push", "pop": "net_channel_pop",
       "tx": "net_tx"}

PACKET_FLOW = TableSpec("packet_flow", "One row per packet id: when and where it passed each stage.", (
    Column("packet", "uint32", "packet id (unique per boot)"),
    Column("len", "int32", "frame length from net_rx or net_tx (-1 unknown)"),
    *(Column(f"{s}_time", "int64", f"time of {_TP[s]} (-1 if not seen)", "ns") for s in STAGES),
    *(Column(f"{s}_cpu", "int16", f"CPU of {_TP[s]} (-1 if not seen)") for s in STAGES),
    Column("channel", "uint64", "net channel it was classified to (pushed, or dropped there when full; "
                                "0: default path or unknown)", "addr"),
    Column("consumer", "uint32", "thread that popped it (0 if not popped)", "tid"),
    Column("cpu_hops", "uint8", "number of CPU changes between consecutive seen stages"),
    Column("dropped", "bool", "classified as drop, or dropped by a full channel"),
    Column("latency", "int64", "first to last seen stage", "ns"),
))


def packet_flow(trace: Trace) -> Table:
    ev = trace.events
    got = {}
    for s in STAGES:
        name = _TP[s]
        found = model_events(trace, name)
        if found is not None and len(found[0]):
            got[s] = found
    drops = model_events(trace, "net_channel_drop") or (np.empty(0), {})
    if not got:
        return PACKET_FLOW.empty()
    packets = np.unique(np.concatenate([a["packet"] for _, a in got.values()]))
    n = len(packets)
    cols: dict[str, np.ndarray] = {"packet": packets, "len": np.full(n, -1, np.int32)}
    for s in STAGES:
        cols[f"{s}_time"] = np.full(n, -1, np.int64)
        cols[f"{s}_cpu"] = np.full(n, -1, np.int16)
    cols["channel"] = np.zeros(n, np.uint64)
    cols["consumer"] = np.zeros(n, np.uint32)
    dropped = np.zeros(n, bool)
    for s, (idx, a) in got.items():
        # the first occurrence of each packet id at this stage
        uniq, first = np.unique(a["packet"], return_index=True)
        pos = np.searchsorted(packets, uniq)
        cols[f"{s}_time"][pos] = ev.time[idx[first]]
        cols[f"{s}_cpu"][pos] = ev.cpu[idx[first]]
        if s in ("rx", "tx"):
            unset = cols["len"][pos] < 0
            cols["len"][pos[unset]] = a["len"][first][unset]
        if s == "push":
            cols["channel"][pos] = a["channel"][first]
        if s == "pop":
            cols["consumer"][pos] = ev.tid[idx[first]]
        if s == "classify":
            dropped[pos] |= a["result"][first] == 2
            to_channel = a["result"][first] == 0
            unset = to_channel & (cols["channel"][pos] == 0)
            cols["channel"][pos[unset]] = a["channel"][first][unset]
    if len(drops[0]):
        pos = np.searchsorted(packets, drops[1]["packet"])
        ok = (pos < n) & (packets[np.minimum(pos, n - 1)] == drops[1]["packet"])
        dropped[pos[ok]] = True
        unset = ok.copy()
        unset[ok] = cols["channel"][pos[ok]] == 0
        cols["channel"][pos[unset]] = drops[1]["channel"][unset]
    times = np.stack([cols[f"{s}_time"] for s in STAGES])
    cpus = np.stack([cols[f"{s}_cpu"] for s in STAGES])
    seen = times >= 0
    big = np.iinfo(np.int64).max
    first_t = np.where(seen, times, big).min(axis=0)
    last_t = np.where(seen, times, -1).max(axis=0)
    # CPU changes between consecutive seen stages: carry the last seen CPU forward
    hops = np.zeros(n, np.uint8)
    prev = np.full(n, -1, np.int16)
    for k in range(len(STAGES)):
        c = cpus[k]
        here = seen[k]
        hops += (here & (prev >= 0) & (c != prev)).astype(np.uint8)
        prev = np.where(here, c, prev)
    cols["cpu_hops"] = hops
    cols["dropped"] = dropped
    cols["latency"] = np.where(last_t >= 0, last_t - first_t, -1)
    return table(PACKET_FLOW, **cols)


TCP_STATE = TableSpec("tcp_state", "One row per state a TCP connection entered (real OSv's tcp_state records): "
                                   "when, from which state, and for how long.", (
    Column("conn", "uint64", "the connection's control block (tcpcb)", "addr"),
    Column("state", "uint8", "the state entered: " + ", ".join(
        f"{v} {k}" for k, v in sorted(default_catalog().enums["tcp_state"].items(), key=lambda kv: kv[1]))),
    Column("prev_state", "uint8", "the state it left"),
    Column("start", "int64", "when it entered the state", "ns"),
    Column("dur", "int64", "time in the state until the connection's next change (-1: still in it at the end)", "ns"),
    Column("cpu", "int16", "CPU of the change"),
    Column("tid", "uint32", "thread that made the change", "tid"),
    Column("gap", "bool", "the connection's next change leaves another state: its records in between were lost"),
))


def tcp_state(trace: Trace) -> Table:
    found = model_events(trace, "tcp_state")
    if found is None or not len(found[0]):
        return TCP_STATE.empty()
    idx, a = found
    ev = trace.events
    conn = a["conn"].astype(np.uint64)
    # Per connection in time order (idx is in the trace's time order: the sort's second key).
    order = np.lexsort((idx, conn))
    conn, idx = conn[order], idx[order]
    frm, to = a["from_state"][order], a["to_state"][order]
    t = ev.time[idx]
    same_next = np.zeros(len(idx), bool)
    same_next[:-1] = conn[1:] == conn[:-1]
    nxt = np.minimum(np.arange(1, len(idx) + 1), len(idx) - 1)
    dur = np.where(same_next, t[nxt] - t, -1)
    gap = same_next & (frm[nxt] != to)
    return table(TCP_STATE, conn=conn, state=to, prev_state=frm, start=t, dur=dur, cpu=ev.cpu[idx],
                 tid=ev.tid[idx], gap=gap)
