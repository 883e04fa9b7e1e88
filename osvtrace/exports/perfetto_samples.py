"""CPU samples as Perfetto callstack samples (PerfSample packets), so Perfetto draws its flame
graph: the records of the timer sampler (our kernel's cpu_sample, OSv's sampler_tick), each
with its thread, CPU, time and stack.

Stacks are the call-tree reports' (osvtrace.reports.calltree.name_paths): the interrupted PC
as the innermost frame, the sampler's own machinery dropped, each frame named by
osvtrace.model.frames (the trace's symbols, else the kernel ELF's). They go into the samples'
sequence as interned data, once each: a function name per distinct name, a Frame per distinct
return address (its name, source file and line, and the address as rel_pc in one mapping, the
kernel: one address space), a Callstack per distinct stack (outermost frame first, as Perfetto
orders them). Then one small PerfSample packet per sample, written with numpy
(osvtrace.exports.pbwire) like the TrackEvents: Python work grows with the distinct stacks,
never with the samples. A stack the walk cut at the depth bound, or stopped at a bad frame
or a loop, says so in the sample's unwind_error.

Other records with backtraces (tracebt=, OSv --trace-backtrace) are not samples (they are
taken where the tracepoints fire, not uniformly in time): `report prof` and the folded and
pprof exports show those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np

from osvtrace.catalog import layout
from osvtrace.exports import pbwire
from osvtrace.exports.common import Selection
from osvtrace.exports.perfetto_sched import IDLE_PID, PID, to_pids
from osvtrace.format.base import Trace as BaseTrace
from osvtrace.model import Model
from osvtrace.model.frames import frame_names
from osvtrace.model.kernel_map import kernel_of
from osvtrace.model.stacks import NO_STACK
from osvtrace.reports.calltree import name_paths
from osvtrace.reports.profiles import SAMPLERS, _with_pc

SEQUENCE_ID = 4
MODE_KERNEL = 1  # Profiling.CpuMode: everything runs in the kernel's one address space
# why a walk ended (osvtrace.catalog.layout) -> Profiling.StackUnwindError (0: none said)
UNWIND_ERROR = {layout.STACK_CUT: 6, layout.STACK_BAD_FRAME: 2, layout.STACK_LOOP: 7}  # MAX_FRAMES_EXCEEDED,
# MEMORY_INVALID, REPEATED_FRAME

_PACKET = pbwire.tag(1, 2)
_TIMESTAMP = pbwire.tag(8, 0)
_SEQ = pbwire.tag(10, 0) + pbwire.varint(SEQUENCE_ID) + pbwire.tag(13, 0) + pbwire.varint(2)  # needs incremental state
_PERF_SAMPLE = pbwire.tag(66, 2)
_PS_CPU, _PS_PID, _PS_TID, _PS_STACK = pbwire.tag(1, 0), pbwire.tag(2, 0), pbwire.tag(3, 0), pbwire.tag(4, 0)
_PS_MODE = pbwire.tag(5, 0) + pbwire.varint(MODE_KERNEL)
_PS_UNWIND = pbwire.tag(16, 0)


@dataclass
class Samples:
    """The samples of a selection as columns, and their interned stacks."""

    ts: np.ndarray
    cpu: np.ndarray
    pid: np.ndarray
    tid: np.ndarray
    callstack: np.ndarray  # iid (1-based) into callstacks
    unwind_error: np.ndarray  # Profiling.StackUnwindError, 0 for none
    callstacks: list[list[int]]  # frame iids, outermost first
    frame_addr: np.ndarray  # per frame iid - 1: its return address
    frame_name: np.ndarray  # per frame iid - 1: index into names
    frame_source: list[str]  # per frame: "file:line" or ""
    names: list[str]
    mapping: str
    build_id: str
    source: str  # which tracepoints
    dropped: int = 0  # samples whose stack had no frame left (no stack, or machinery only)

    def __len__(self) -> int:
        return len(self.ts)


def samples(model: Model, sel: Selection) -> Samples | None:
    """The sampler's records in the selection, or None when the trace has none."""
    t = model.trace
    names = [n for n in SAMPLERS if n in t.catalog.by_name]
    if not names:
        return None
    ids = np.array([i for n in names for i in t.tracepoint_ids(n)], t.events.tp.dtype)
    m = np.isin(t.events.tp, ids)
    if not m.any():
        return None
    if not sel.everything:
        m &= sel.events(t)
    idx = np.flatnonzero(m)
    stack = _with_pc(model, idx)
    if stack is None:
        stack = model.stacks.ids(idx)
    named = name_paths(model, stack[stack != NO_STACK], caller_first=False)
    rows = np.minimum(named.rows(stack), max(len(named.stack_ids) - 1, 0)) if len(named.stack_ids) \
        else np.zeros(len(idx), np.int64)
    depth = (named.paths >= 0).sum(axis=1) if named.paths.size else np.zeros(len(named.stack_ids), np.int64)
    keep = stack != NO_STACK
    if len(named.stack_ids):
        keep &= depth[rows] > 0
    else:
        keep[:] = False
    # frames: one per distinct return address kept in a path
    fr, pa = named.frames, named.paths
    live = fr != 0
    addrs, inv = np.unique(fr[live], return_inverse=True)
    frame_name = np.zeros(len(addrs), np.int64)
    frame_name[inv.reshape(-1)] = pa[live]
    fid = np.zeros(fr.shape, np.int64)
    fid[live] = inv.reshape(-1) + 1
    used_rows = np.flatnonzero(np.bincount(rows[keep], minlength=len(named.stack_ids)))  # no sort of the samples
    callstacks: list[list[int]] = []
    cs_of = np.zeros(max(len(named.stack_ids), 1), np.int64)
    for r in used_rows.tolist():
        f = fid[r][fid[r] > 0]
        callstacks.append(f[::-1].tolist())  # outermost first
        cs_of[r] = len(callstacks)
    src = frame_names(t, addrs).source.tolist() if len(addrs) else []
    ev = t.events
    sel_idx = idx[keep]
    tid = ev.tid[sel_idx].astype(np.int64)
    pid_t = to_pids(model, tid)
    err = np.zeros(len(sel_idx), np.int64)
    if type(t).backtrace_ends is not BaseTrace.backtrace_ends:  # the file says why each walk ended (ours)
        ends = t.backtrace_ends(sel_idx)
        for end, code in UNWIND_ERROR.items():
            err[ends == end] = code
    else:  # it does not (OSv): what the stacks show, per distinct stack
        sid = stack[keep]
        err[model.stacks.cut()[sid]] = UNWIND_ERROR[layout.STACK_CUT]
        err[model.stacks.loops()[sid]] = UNWIND_ERROR[layout.STACK_LOOP]
    k = kernel_of(t)
    return Samples(ev.time[sel_idx].astype(np.int64), ev.cpu[sel_idx].astype(np.int64),
                   np.where(pid_t == IDLE_PID, IDLE_PID, PID), pid_t, cs_of[rows[keep]], err, callstacks,
                   addrs, frame_name, src, [str(n) for n in named.names.tolist()],
                   f"{k.name} kernel", t.facts.build_id or "", ", ".join(names), int((~keep).sum()))


def interned(s: Samples, pb) -> bytes:
    """The first packet of the samples' sequence: names, the mapping, frames and callstacks."""
    trace = pb.Trace()
    p = trace.packet.add()
    p.trusted_packet_sequence_id = SEQUENCE_ID
    p.sequence_flags = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    d = p.interned_data
    d.mapping_paths.add(iid=1, str=s.mapping.encode())
    bid = s.build_id
    try:
        raw = bytes.fromhex(bid) if bid else b""
    except ValueError:
        raw = bid.encode()
    if raw:
        d.build_ids.add(iid=1, str=raw)
    top = int(s.frame_addr.max(initial=0)) + 1
    mp = d.mappings.add(iid=1, start=0, end=top, load_bias=0)
    mp.path_string_ids.append(1)
    if raw:
        mp.build_id = 1
    used = np.unique(s.frame_name) if len(s.frame_name) else np.empty(0, np.int64)
    for n in used.tolist():
        d.function_names.add(iid=n + 1, str=s.names[n].encode("utf-8", "replace"))
    files: dict[str, int] = {}
    for i, (addr, name, where) in enumerate(zip(s.frame_addr.tolist(), s.frame_name.tolist(), s.frame_source)):
        f = d.frames.add(iid=i + 1, function_name_id=name + 1, mapping_id=1, rel_pc=addr)
        file, _, line = where.rpartition(":")
        if not line.isdigit():
            file, line = where, ""
        if file:
            if file not in files:
                files[file] = len(files) + 1
                d.source_paths.add(iid=files[file], str=file.encode("utf-8", "replace"))
            f.source_path_iid = files[file]
            if line:
                f.line_number = int(line)
    for i, frames in enumerate(s.callstacks):
        d.callstacks.add(iid=i + 1, frame_ids=frames)
    return trace.SerializeToString()


def encode(s: Samples) -> list[np.ndarray]:
    """One PerfSample TracePacket (framed as Trace.packet) per sample: uint8 matrices by shape."""
    if not len(s):
        return []
    lt, lc, lp = pbwire.varint_len(s.ts), pbwire.varint_len(s.cpu), pbwire.varint_len(s.pid)
    ld, ls = pbwire.varint_len(s.tid), pbwire.varint_len(s.callstack)
    le = np.where(s.unwind_error > 0, 1, 0).astype(np.int64)
    shape = (lt.astype(np.int64) | (lc.astype(np.int64) << 4) | (lp.astype(np.int64) << 8)
             | (ld.astype(np.int64) << 12) | (ls.astype(np.int64) << 16) | (le << 20))
    out = []
    for sh, rows in pbwire.group_by(shape):
        Lt, Lc, Lp, Ld, Ls, E = sh & 15, (sh >> 4) & 15, (sh >> 8) & 15, (sh >> 12) & 15, (sh >> 16) & 15, sh >> 20
        ps = 1 + Lc + 1 + Lp + 1 + Ld + 1 + Ls + len(_PS_MODE) + (len(_PS_UNWIND) + 1 if E else 0)
        body = 1 + Lt + len(_SEQ) + len(_PERF_SAMPLE) + 1 + ps
        assert ps < 128 and body < 128
        # fields in field-number order, as the protobuf library writes them
        r = pbwire.Rows(len(rows), 2 + body)
        r.const(_PACKET + bytes([body]) + _TIMESTAMP)
        r.varint(s.ts[rows], Lt)
        r.const(_SEQ + _PERF_SAMPLE + bytes([ps]) + _PS_CPU)
        r.varint(s.cpu[rows], Lc)
        r.const(_PS_PID)
        r.varint(s.pid[rows], Lp)
        r.const(_PS_TID)
        r.varint(s.tid[rows], Ld)
        r.const(_PS_STACK)
        r.varint(s.callstack[rows], Ls)
        r.const(_PS_MODE)
        if E:
            r.const(_PS_UNWIND)
            r.byte(s.unwind_error[rows])
        out.append(r.done())
    return out


def write(s: Samples, f: IO[bytes], pb) -> int:
    """The interned data, then the samples; returns the packets written."""
    f.write(interned(s, pb))
    n = 1
    for a in range(0, len(s), 1 << 20):
        part = Samples(*(getattr(s, k)[a:a + (1 << 20)] for k in ("ts", "cpu", "pid", "tid", "callstack",
                                                                  "unwind_error")),
                       s.callstacks, s.frame_addr, s.frame_name, s.frame_source, s.names, s.mapping, s.build_id,
                       s.source)
        for m in encode(part):
            f.write(m.reshape(-1).data)
            n += len(m)
    return n
