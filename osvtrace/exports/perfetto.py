"""Perfetto export: a protobuf trace (a stream of TracePackets) for ui.perfetto.dev.

Three parts, each on its own packet sequence:

- scheduling in Perfetto's kernel vocabulary (osvtrace.exports.perfetto_sched): a ProcessTree
  and per-CPU ftrace bundles of sched_switch / sched_waking, which fill Perfetto's CPU tracks,
  thread states and sched tables as for a Linux trace;
- CPU samples as callstack samples (osvtrace.exports.perfetto_samples): the flame graph;
- everything else as TrackEvents on tracks of their own (below): mutex holds, waits and
  hand-offs, packet stages, markers, lost records, and the waits whose object is known.

The TrackEvent part: the few packets that describe the trace (track descriptors,
interned names) are built with the protobuf classes of the ``perfetto`` package. The
millions of slice and instant packets are all TrackEvents of a handful of shapes, so
they are written with numpy, one matrix of packets per shape (osvtrace.exports.pbwire);
tests parse the result back with the same protobuf classes.

File order. Perfetto's trace processor sorts packets by (timestamp, position in the
file), so the file need not be in time order, and it is not: it is written as all
slice ends, then all instants, then all slice begins. At equal timestamps that
puts an end before the next begin on the same track (back-to-back slices nest
correctly) and a flow's source instant before the slice it points to.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.exports import pbwire, perfetto_samples, perfetto_sched, timeline_build
from osvtrace.exports.common import Options, ProgressFn, Result, Selection, atomic_file
from osvtrace.exports.registry import register
from osvtrace.exports.timeline import ARG, ARG_KIND, ARGS, FLOW_END, FLOW_NONE, PTR, Items, Timeline, Track
from osvtrace.model import Model

SEQUENCE_ID = 1
SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT = 1, 2, 3
STEP = 1 << 20  # rows encoded at a time

# TracePacket fields (protos/perfetto/trace/trace_packet.proto) and TrackEvent fields
_TRACE_PACKET = pbwire.tag(1, 2)  # Trace.packet
_TIMESTAMP = pbwire.tag(8, 0)
_SEQ_ID = pbwire.tag(10, 0) + pbwire.varint(SEQUENCE_ID)
_TRACK_EVENT = pbwire.tag(11, 2)
_SEQ_FLAGS = pbwire.tag(13, 0) + pbwire.varint(SEQ_NEEDS_INCREMENTAL_STATE)
_TE_TYPE = pbwire.tag(9, 0)
_TE_TRACK = pbwire.tag(11, 0)
_TE_NAME_IID = pbwire.tag(10, 0)
_TE_DEBUG = pbwire.tag(4, 2)
_DA_NAME_IID = pbwire.tag(1, 0)
_DA_UINT = pbwire.tag(3, 0)
_DA_POINTER = pbwire.tag(7, 0)
_TE_FLOW = pbwire.tag(47, 1)  # flow_ids (fixed64): starts or continues a flow
_TE_FLOW_END = pbwire.tag(48, 1)  # terminating_flow_ids


def _protos():  # -> the perfetto_trace_pb2 module
    try:
        from perfetto.protos.perfetto.trace import perfetto_trace_pb2
    except ImportError as e:  # a broken install, not a user error, but say it in one line
        raise UsageError(f"perfetto export needs the `perfetto` Python package ({e})") from None
    return perfetto_trace_pb2


def header_packets(tl: Timeline) -> bytes:
    """Interned names, then one TrackDescriptor per track, built with the protobuf classes."""
    pb = _protos()
    trace = pb.Trace()
    p = trace.packet.add()
    p.trusted_packet_sequence_id = SEQUENCE_ID
    p.sequence_flags = SEQ_INCREMENTAL_STATE_CLEARED
    for i, name in enumerate(tl.names):
        p.interned_data.event_names.add(iid=i + 1, name=name)
    for i, (name, _kind) in enumerate(ARGS):
        p.interned_data.debug_annotation_names.add(iid=i + 1, name=name)
    order = pb.TrackDescriptor.ChildTracksOrdering
    for t in tracks_used(tl):
        p = trace.packet.add()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        d = p.track_descriptor
        d.uuid = t.uuid
        if t.parent:
            d.parent_uuid = t.parent
        if t.kind == "process":
            d.process.pid = t.key
            d.process.process_name = t.name
        elif t.kind == "thread" and t.key == 0:
            # Perfetto reserves thread 0 for its idle "swapper": our tid 0 (code running
            # outside any thread) gets a plain track in the process instead
            d.parent_uuid = tl.tracks[0].uuid
            d.name = f"{t.name} (tid 0)"
        elif t.kind == "thread":
            d.thread.pid = timeline_build.PID
            d.thread.tid = t.key
            d.thread.thread_name = t.name
        else:
            d.name = t.name
            if t.kind == "group":
                d.name = "CPU events" if t.name == "CPUs" else t.name  # Perfetto draws its own CPU tracks
                d.child_ordering = order.EXPLICIT if t.name == "CPUs" else order.LEXICOGRAPHIC
            elif t.kind == "cpu":
                d.sibling_order_rank = t.rank
    return trace.SerializeToString()


def encode(p: Items, kind: int) -> list[np.ndarray]:
    """TrackEvent packets (framed as Trace.packet fields) of one kind for all rows of ``p``:
    TYPE_SLICE_END carries only the track; begins and instants also the name, argument
    and flow. Returns one uint8 matrix per row shape; their rows are the packets."""
    if not len(p):
        return []
    end = kind == TYPE_SLICE_END
    ts = p.ts + (p.dur if end else 0)
    lt = pbwire.varint_len(ts)
    lu = pbwire.varint_len(p.track)
    if end:
        li = np.zeros(len(p), np.uint8)
        la = np.zeros(len(p), np.uint8)
        fk = np.zeros(len(p), np.uint8)
    else:
        li = pbwire.varint_len(p.name + 1)
        has_arg = p.arg_name >= 0
        la = np.where(has_arg, pbwire.varint_len(p.arg), 0).astype(np.uint8)
        ptr = has_arg & (ARG_KIND[np.maximum(p.arg_name, 0)] == PTR)
        la = la + (ptr.astype(np.uint8) << 4)  # bit 4 of the shape: pointer, not uint
        fk = np.where(p.flow_kind == FLOW_NONE, 0, np.where(p.flow_kind == FLOW_END, 2, 1)).astype(np.uint8)
    shape = (lt.astype(np.int64) | (lu.astype(np.int64) << 4) | (li.astype(np.int64) << 8)
             | (la.astype(np.int64) << 12) | (fk.astype(np.int64) << 20))
    out = []
    for s, rows in pbwire.group_by(shape):
        Lt, Lu, Li, La, is_ptr, F = s & 15, (s >> 4) & 15, (s >> 8) & 15, (s >> 12) & 15, (s >> 16) & 1, s >> 20
        te = 2 + 1 + Lu + (1 + Li if Li else 0) + (5 + La if La else 0) + (10 if F else 0)
        body = 1 + Lt + len(_SEQ_ID) + 2 + te + len(_SEQ_FLAGS)
        assert te < 128 and body < 128  # one-byte lengths, fixed per shape
        # fields in field-number order, as the protobuf library writes them (tests compare bytes)
        r = pbwire.Rows(len(rows), 2 + body)
        r.const(_TRACE_PACKET + bytes([body]) + _TIMESTAMP)
        r.varint(ts[rows], Lt)
        r.const(_SEQ_ID + _TRACK_EVENT + bytes([te]))
        if La:
            r.const(_TE_DEBUG + bytes([3 + La]) + _DA_NAME_IID)
            r.byte(p.arg_name[rows] + 1)
            r.const(_DA_POINTER if is_ptr else _DA_UINT)
            r.varint(p.arg[rows], La)
        r.const(_TE_TYPE + bytes([kind]))
        if Li:
            r.const(_TE_NAME_IID)
            r.varint(p.name[rows] + 1, Li)
        r.const(_TE_TRACK)
        r.varint(p.track[rows], Lu)
        if F:
            r.const(_TE_FLOW_END if F == 2 else _TE_FLOW)
            r.fixed64(p.flow[rows])
        r.const(_SEQ_FLAGS)
        out.append(r.done())
    return out


def write_timeline(tl: Timeline, f: IO[bytes], progress: ProgressFn | None = None, workers: int = 2) -> dict[str, int]:
    """The whole trace: header, then slice ends, instants, slice begins (see the module doc).
    Steps of at most STEP rows are encoded on ``workers`` threads (numpy lets go of the
    GIL) and written in order; a few steps in flight bound the memory."""
    f.write(header_packets(tl))
    plan = [(p, TYPE_SLICE_END) for p in tl.slices] + [(p, TYPE_INSTANT) for p in tl.instants] + \
        [(p, TYPE_SLICE_BEGIN) for p in tl.slices]
    steps = [(p, kind, a) for p, kind in plan for a in range(0, len(p), STEP)]
    total = sum(len(p) for p, _ in plan)
    done = packets = 0

    def job(step: tuple[Items, int, int]) -> tuple[int, list[np.ndarray]]:
        p, kind, a = step
        part = p.take(slice(a, a + STEP))
        return len(part), encode(part, kind)

    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for step in steps:
            pending.append(pool.submit(job, step))
            if len(pending) > 2 * workers:
                done, packets = _drain(pending.popleft(), f, done, packets, total, progress)
        while pending:
            done, packets = _drain(pending.popleft(), f, done, packets, total, progress)
    return {"packets": packets}


def _drain(fut: Future, f: IO[bytes], done: int, packets: int, total: int,
           progress: ProgressFn | None) -> tuple[int, int]:
    n, mats = fut.result()
    for m in mats:
        f.write(m.reshape(-1).data)
        packets += len(m)
    if progress:
        progress(done + n, total, "writing packets")
    return done + n, packets


def tracks_used(tl: Timeline) -> list[Track]:
    """The tracks that hold items, with their parents (and the process): the others would be
    empty rows in the UI."""
    used = set(int(u) for p in tl.slices + tl.instants for u in np.unique(p.track).tolist())
    by = {t.uuid: t for t in tl.tracks}
    for u in list(used):
        while u in by and by[u].parent:
            u = by[u].parent
            used.add(u)
    return [t for t in tl.tracks if t.uuid in used or t.kind == "process"]


def without_sched(tl: Timeline) -> Timeline:
    """The timeline less what the ftrace events now show natively: the CPU slices, the
    wake-ups (and their arrows), and the thread states, except waits whose object is known
    (Perfetto's thread states cannot name it)."""
    slices = []
    for p in tl.slices:
        if p.what == "cpu slices":
            continue
        if p.what == "thread states":
            p = p.take(p.arg_name == ARG["blocked_on"])
        slices.append(p)
    instants = [p for p in tl.instants if p.what != "wake-ups"]
    return Timeline(tl.title, tl.tracks, tl.names, slices, instants)


@register("perfetto", suffix=".pftrace",
          doc="Perfetto protobuf trace: ftrace scheduling (CPU tracks, thread states), CPU samples (flame "
              "graph), mutex tracks, flows for hand-offs and packets.")
def write(model: Model, out: Path, opts: Options) -> Result:
    pb = _protos()
    sel = Selection(model.trace, opts.filter)
    tl = without_sched(timeline_build.build(model, sel, opts.progress))
    opts.progress(0, 1, "scheduler events")
    sched = perfetto_sched.switches_and_wakings(model, sel)
    smp = perfetto_samples.samples(model, sel)
    notes = []
    with atomic_file(out) as f:
        f.write(perfetto_sched.process_tree(model, pb, tl.title))
        counts = write_timeline(tl, f, opts.progress)
        bundles = perfetto_sched.bundles(sched, pb)
        for b in bundles:
            f.write(b)
        counts["packets"] += len(bundles) + 1
        counts["ftrace_bundles"] = len(bundles)
        counts.update(sched.counts())
        if smp is not None:
            counts["packets"] += perfetto_samples.write(smp, f, pb)
            counts["samples"] = len(smp)
            counts["callstacks"] = len(smp.callstacks)
            if smp.dropped:
                notes.append(f"{smp.dropped:,} of {smp.dropped + len(smp):,} samples ({smp.source}) have no "
                             "frame to show and are left out")
    res = Result(out, {**tl.count(), "tracks": len(tracks_used(tl)), **counts, "bytes": out.stat().st_size}, notes)
    return res
