"""The base tables: events, tracepoints, lost."""

from __future__ import annotations

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import model_events
from osvtrace.model.table import Column, Table, TableSpec, table

EVENTS = TableSpec("events", "Every record in time order.", (
    Column("time", "int64", "time since boot", "ns"),
    Column("cpu", "uint16", "CPU that wrote it"),
    Column("tid", "uint32", "thread that emitted it", "tid"),
    Column("tp", "uint16", "tracepoint id (join tracepoints on id)"),
))

TRACEPOINTS = TableSpec("tracepoints", "The trace's schema: one row per tracepoint.", (
    Column("id", "uint16", "tracepoint id"),
    Column("name", "object", "tracepoint name"),
    Column("subsystem", "object", "sched, sync, net, trace"),
    Column("count", "int64", "records of it in the trace"),
))

LOST = TableSpec("lost", "What the trace is missing, where it is known.", (
    Column("cpu", "uint16", "CPU whose records are missing"),
    Column("time", "int64", "when (the trace_lost record, or the first record after a gap); -1 unknown", "ns"),
    Column("count", "int64", "records (dropped) or slots (gap) missing"),
    Column("kind", "object", "dropped: the ring was full; gap: slots never arrived or were damaged"),
))


def events(trace: Trace) -> Table:
    ev = trace.events
    return table(EVENTS, time=ev.time, cpu=ev.cpu, tid=ev.tid, tp=ev.tp)


def tracepoints(trace: Trace) -> Table:
    cat = trace.catalog
    counts = np.bincount(trace.events.tp, minlength=cat.max_id + 1)
    tps = cat.tracepoints
    return table(TRACEPOINTS, id=np.array([t.id for t in tps], np.uint16),
                 name=np.array([t.name for t in tps], object), subsystem=np.array([t.subsystem for t in tps], object),
                 count=np.array([counts[t.id] if t.id < len(counts) else 0 for t in tps], np.int64))


def lost(trace: Trace) -> Table:
    ev = trace.events
    cpu: list[np.ndarray] = []
    time: list[np.ndarray] = []
    count: list[np.ndarray] = []
    kind: list[np.ndarray] = []
    found = model_events(trace, "trace_lost")
    if found is not None:
        idx, a = found
        cpu.append(ev.cpu[idx])
        time.append(ev.time[idx])
        count.append(a["count"].astype(np.int64))
        kind.append(np.full(len(idx), "dropped", object))
    gaps = [(c, s, n) for c, l in trace.loss.items() for s, n in l.gaps]
    if gaps:
        seq = trace.seq
        gc = np.array([g[0] for g in gaps], np.uint16)
        gs = np.array([g[1] for g in gaps], np.int64)
        gt = np.full(len(gaps), -1, np.int64)
        for c in np.unique(gc).tolist():  # per CPU: the first record after each gap
            on_cpu = np.nonzero(ev.cpu == c)[0]  # a CPU's sequence numbers rise with time
            sel = np.nonzero(gc == c)[0]
            pos = np.searchsorted(seq[on_cpu], gs[sel], "left")
            ok = pos < len(on_cpu)
            gt[sel[ok]] = ev.time[on_cpu[pos[ok]]]
        cpu.append(gc)
        time.append(gt)
        count.append(np.array([g[2] for g in gaps], np.int64))
        kind.append(np.full(len(gaps), "gap", object))
    if not cpu:
        return LOST.empty()
    return table(LOST, cpu=np.concatenate(cpu), time=np.concatenate(time), count=np.concatenate(count),
                 kind=np.concatenate(kind))
