"""OSv's trace records, decoded into columns: whichever file or memory they came from.

A run of OSv records is either ring contents (a per-CPU trace buffer read from guest
memory, or an OSVT dump's TRCS chunk, which is the same bytes without the page-end
padding) or the body of a gdb tracefile ("format B"). The compiled walk
(osvtrace/format/_osv_loops.pyx) frames the records and copies their header fields;
everything else is vectorised here: merging the CPUs' runs into time order, thread
pointers into small stable ids, and arguments, 50-byte pascal strings, blobs and
backtrace frames gathered per tracepoint on demand. No Python object per record.

Tracepoints are keyed by the address of OSv's `tracepoint_base`; each key gets its own id
(1, 2, ... in key order), so a name defined in several places has several ids. Arguments
are unnamed in OSv (its signature is a Python struct string: c b B h H i I q Q ? f d P, p a
50-byte pascal string, * a blob): they are called a0, a1, ...; a blob aN also gives aN_len.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from osvtrace.catalog.schema import Catalog, Field, Tracepoint
from osvtrace.errors import TraceFormatError
from osvtrace.format import hugemem
from osvtrace.format._decode_loops import merge_runs
from osvtrace.format._osv_loops import gather_rows, remap_u32, walk_records

# signature character -> (walk code, our field type)
SIG = {
    "c": (1, "u8"), "b": (1, "s8"), "B": (1, "u8"), "?": (1, "bool"),
    "h": (2, "s16"), "H": (2, "u16"),
    "i": (4, "s32"), "I": (4, "u32"), "f": (4, "u32"),
    "q": (8, "s64"), "Q": (8, "u64"), "d": (8, "u64"), "P": (8, "ptr"),
    "p": (50, "str"), "*": (255, "bytes"),
}
FLOAT_DOC = {"f": "float32 (bits; format_event shows the value)", "d": "float64 (bits; format_event shows the value)"}
PSTR = 50  # object_serializer<const char*>::max_len: a length byte and up to 49 characters
HEADER_RING = 48  # sizeof(trace_record): tp, thread, name[16], time, cpu, flags
HEADER_TRACEFILE = 44  # format B: tp, thread, name[16], time, cpu
MAX_FRAMES = 64  # a tracefile record with more frames is not framed right
STATUS = {0: "done", 1: "end marker", 2: "unknown tracepoint key", 3: "record cut short", 4: "output full",
          5: "backtrace too long", 6: "too many threads"}
HASH_SLOTS = 1 << 17  # thread pointer table: up to MAX_THREADS threads per trace
MAX_THREADS = 1 << 16
MAX_CPUS = 4096  # per-CPU first/last/count are kept for CPUs below this


@dataclass(frozen=True)
class OsvTracepoint:
    """One entry of a dump's or tracefile's tracepoint dictionary."""

    key: int  # the address of OSv's tracepoint_base
    name: str
    sig: str  # one character per argument ('p' for a pascal string)
    format: str  # OSv's printf-style format


def parse_sig(sig: str, where: str, name: str) -> str:
    """A tracepoint signature as one character per argument ("50p" -> "p"), checked."""
    out = sig.replace("50p", "p")
    bad = sorted(set(out) - set(SIG))
    if bad:
        raise TraceFormatError(f"{where}: tracepoint {name[:60]!r} has signature {sig[:60]!r} with unknown type "
                               f"character {bad[0]!r} (a dump from another OSv version?)")
    return out


@dataclass
class Plan:
    """Where one tracepoint's arguments are: fixed offsets from the payload start when the
    signature has no blob, else computed per record."""

    sig: str
    offsets: list[int] | None  # per argument, when fixed
    size: int  # payload bytes when fixed, -1 otherwise


def plan_of(sig: str) -> Plan:
    off = 0
    offsets = []
    for c in sig:
        code = SIG[c][0]
        if code == 255:
            return Plan(sig, None, -1)
        if code != PSTR:
            off = (off + code - 1) // code * code
        offsets.append(off)
        off += code
    return Plan(sig, offsets, off)


def sig_codes(sig: str) -> bytes:
    return bytes(SIG[c][0] for c in sig)


@dataclass
class Records:
    """Framed records in file order (per run: one CPU's ring, or a whole tracefile)."""

    off: np.ndarray  # int64: record start in the buffer
    nbt: np.ndarray  # uint8: backtrace frames (ring: 0 or bt_len; tracefile: the non-zero ones)
    time: np.ndarray  # int64 ns
    cpu: np.ndarray  # uint16
    tp: np.ndarray  # uint16 tracepoint id
    thr: np.ndarray  # uint32 thread index (first seen, first numbered)
    thread_ptr: np.ndarray  # uint64 per thread index
    thread_last: np.ndarray  # int64: last record of each thread index
    cpu_first: np.ndarray  # int64 per CPU: row of its first record (-1: none)
    cpu_last: np.ndarray  # int64 per CPU: row of its last record
    cpu_count: np.ndarray  # int64 per CPU: records
    blob_max: np.ndarray  # int64 per tracepoint id: its longest blob
    tracefile: bool = False
    runs: list[tuple[int, int]] = field(default_factory=list)  # [lo, hi) per walked run
    runs_ok: list[bool] = field(default_factory=list)  # per run: time order, one CPU
    problems: list[tuple[int, int, int, str]] = field(default_factory=list)  # (run, offset, status, detail)

    @property
    def header(self) -> int:
        return HEADER_TRACEFILE if self.tracefile else HEADER_RING

    def payload(self, rows: np.ndarray) -> np.ndarray:
        """Where the payloads of records `rows` start: after the header and the frames (and
        the 0 ending them, in a tracefile)."""
        extra = self.header + (8 if self.tracefile else 0)
        return self.off[rows] + extra + 8 * self.nbt[rows].astype(np.int64)


class Dictionary:
    """The tracepoint tables the walk and the argument readers use."""

    def __init__(self, tps: list[OsvTracepoint]):
        self.tps = sorted(tps, key=lambda t: t.key)
        if len(self.tps) > 0xFFFE:
            raise TraceFormatError(f"{len(self.tps)} tracepoints: more than {0xFFFE}")
        self.keys = np.array([t.key for t in self.tps], np.uint64)
        self.key_tp = np.arange(1, len(self.tps) + 1, dtype=np.uint16)  # id 0 is unused
        self.plans: list[Plan | None] = [None] + [plan_of(t.sig) for t in self.tps]
        self.fixed = np.array([-1] + [p.size for p in self.plans[1:]], np.int32)
        codes = [b""] + [sig_codes(t.sig) for t in self.tps]
        self.code_start = np.zeros(len(codes) + 1, np.int32)
        np.cumsum([len(c) for c in codes], out=self.code_start[1:])
        self.codes = np.frombuffer(b"".join(codes) or b"\0", np.uint8).copy()

    def by_id(self, tp: int) -> OsvTracepoint:
        return self.tps[tp - 1]


def walk(buf: np.ndarray, runs: list[tuple[int, int]], d: Dictionary, *, tracefile: bool, page: int = 0,
         bt_len: int = 0) -> Records:
    """Frame every run [start, end) of buf (uint8). A run that stops early (unknown key,
    cut record) keeps the records before that point; `problems` says where and why."""
    total = sum(e - s for s, e in runs)
    # the most records the bytes can hold: pages of a huge-page mapping that no record
    # reaches are never touched, so sizing for the worst case costs nothing
    cap = total // HEADER_TRACEFILE + len(runs) + 1
    off, time, thr, cpu, tp, nbt = hugemem.columns(cap, (np.int64, np.int64, np.uint32, np.uint16, np.uint16, np.uint8))
    blob_max = np.zeros(len(d.fixed), np.int64)
    hkeys, hvals = np.zeros(HASH_SLOTS, np.uint64), np.zeros(HASH_SLOTS, np.uint32)
    tptr, tlast = np.zeros(MAX_THREADS, np.uint64), np.zeros(MAX_THREADS, np.int64)
    nthr = np.zeros(1, np.int64)
    cfirst, clast, ccount = np.full(MAX_CPUS, -1, np.int64), np.zeros(MAX_CPUS, np.int64), np.zeros(MAX_CPUS, np.int64)
    pos = 0
    out_runs, runs_ok, problems = [], [], []
    for r, (s, e) in enumerate(runs):
        n, stop, status, ordered, one_cpu = walk_records(
            buf, s, e, tracefile, page, bt_len, MAX_FRAMES, d.keys, d.key_tp, d.fixed, d.code_start, d.codes,
            off, nbt, time, cpu, tp, thr, pos, hkeys, hvals, tptr, tlast, nthr, cfirst, clast, ccount, blob_max)
        out_runs.append((pos, pos + n))
        runs_ok.append(bool(ordered and one_cpu))
        pos += n
        if status >= 2:
            detail = ""
            if status == 2:
                detail = f"{int(np.frombuffer(buf[stop:stop + 8].tobytes(), '<u8')[0]):#x}"
            problems.append((r, stop, status, detail))
    k = int(nthr[0])
    m = int(np.flatnonzero(cfirst >= 0).max()) + 1 if (cfirst >= 0).any() else 0
    return Records(off[:pos], nbt[:pos], time[:pos], cpu[:pos], tp[:pos], thr[:pos], tptr[:k].copy(),
                   tlast[:k].copy(), cfirst[:m], clast[:m], ccount[:m], blob_max, tracefile, out_runs, runs_ok,
                   problems)


def ring_runs(size: int, last: int, page: int = 4096) -> list[tuple[int, int]]:
    """The byte ranges of one CPU's ring buffer, oldest first (as core/trace.cc and
    loader.py read it): from the page after the write position to the end, then from the
    start to the write position. Walk them with `page` so page-end padding is skipped."""
    last %= size
    pivot = (last + page - 1) // page * page
    return [(pivot, size), (0, last)]


@dataclass
class Ordered:
    """The events in time order: columns, plus each event's record number."""

    time: np.ndarray
    cpu: np.ndarray
    tid: np.ndarray
    tp: np.ndarray
    row: np.ndarray
    tid_of_thread: np.ndarray  # uint32 per thread index: the stable tid (1 + rank of the pointer)


def order(rec: Records, *, merged: bool) -> Ordered:
    """Time order. Runs of one CPU each (a dump's chunks) are merged with the compiled
    k-way merge; a tracefile is already one merged run (checked, sorted when it is not).
    Thread ids: 1 + the rank of the thread pointer, so they do not depend on file order.
    Takes over rec.thr (remapped in place to the thread ids)."""
    rank = np.argsort(rec.thread_ptr, kind="stable")
    tid_of = np.empty(len(rank), np.uint32)
    tid_of[rank] = np.arange(1, len(rank) + 1, dtype=np.uint32)
    tid = rec.thr
    if len(tid):
        remap_u32(tid, tid_of)
    n = len(rec.time)
    row_t = np.int32 if n < 2**31 else np.int64
    runs = [(lo, hi) for (lo, hi), ok in zip(rec.runs, rec.runs_ok) if hi > lo]
    runs_ok = all(ok for (lo, hi), ok in zip(rec.runs, rec.runs_ok) if hi > lo) and len(runs) <= 64
    if merged or len(runs) <= 1:
        if _sorted(rec.time):
            rows = hugemem.columns(n, (row_t,))[0]
            rows[:] = np.arange(n, dtype=row_t)
            return Ordered(rec.time, rec.cpu, tid, rec.tp, rows, tid_of)
        runs_ok = False
    if runs_ok:
        lo = np.array([r[0] for r in runs], np.int64)
        hi = np.array([r[1] for r in runs], np.int64)
        cpus = np.array([rec.cpu[r[0]] for r in runs], np.uint16)
        o_time, o_rows, o_tid, o_cpu, o_tp, rows = hugemem.columns(
            n, (np.int64, row_t, np.uint32, np.uint16, np.uint16, row_t))
        rows[:] = np.arange(n, dtype=row_t)
        order_ = np.argsort(cpus, kind="stable")  # ties in CPU order, as our own decoder
        merge_runs(rec.time, tid, rec.tp, rows, lo[order_], hi[order_], cpus[order_], o_time, o_cpu, o_tid, o_tp,
                   o_rows)
        return Ordered(o_time, o_cpu, o_tid, o_tp, o_rows, tid_of)
    idx = np.lexsort((rec.cpu, rec.time)).astype(row_t)
    return Ordered(rec.time[idx], rec.cpu[idx], tid[idx], rec.tp[idx], idx, tid_of)


def _sorted(a: np.ndarray) -> bool:
    return len(a) < 2 or bool((a[1:] >= a[:-1]).all())


# ---------------------------------------------------------------- catalog and arguments

def catalog(d: Dictionary, blob_max: np.ndarray, used: np.ndarray | None = None
            ) -> tuple[Catalog, dict[tuple[int, str], tuple[int, str]]]:
    """Our catalog of the dictionary (of the ids in `used` only, when given: a dump's
    dictionary lists all ~600 of the kernel's tracepoints), and where each field comes
    from: (tp id, field name) -> (argument index, what: "value" | "len")."""
    tps, where = [], {}
    names: dict[str, list[int]] = {}
    ids = range(1, len(d.tps) + 1) if used is None else [int(i) for i in used]
    for i in ids:
        names.setdefault(d.tps[i - 1].name, []).append(i)
    for i in ids:
        t = d.tps[i - 1]
        fields = []
        plan = d.plans[i]
        for a, c in enumerate(t.sig):
            typ = SIG[c][1]
            name = f"a{a}"
            fixed = plan.offsets[a] if plan.offsets is not None else -1
            if c == "p":
                fields.append(Field(name, "str", PSTR - 1, max(fixed, 0) + 1, doc="pascal string"))
            elif c == "*":
                size = max(1, int(blob_max[i]))
                fields.append(Field(name, "bytes", size, max(fixed, 0), doc="blob (zero-padded to the longest)"))
                where[(i, f"{name}_len")] = (a, "len")
                fields.append(Field(f"{name}_len", "u16", 2, max(fixed, 0), doc=f"bytes in {name}"))
            else:
                size = SIG[c][0]
                fields.append(Field(name, typ, size, max(fixed, 0), doc=FLOAT_DOC.get(c, "")))
            where[(i, name)] = (a, "value")
        same = names[t.name]
        doc = f"OSv tracepoint at {t.key:#x}, signature {t.sig!r}"
        if len(same) > 1:
            doc += f"; one of {len(same)} keys named {t.name} (ids {', '.join(map(str, same))})"
        tps.append(Tracepoint(t.name, i, "osv", doc, t.format, tuple(fields), 0, max(plan.size, 0)))
    return Catalog(tps), where


def gather(buf: np.ndarray, pos: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values of `dtype` at byte offsets `pos` of buf (any alignment), one compiled pass."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 1:
        return buf[pos].view(dtype)
    out = np.zeros((len(pos), dtype.itemsize), np.uint8)
    gather_rows(buf, np.ascontiguousarray(pos, np.int64), out)
    return out.view(dtype).reshape(-1)


def arg_positions(buf: np.ndarray, pay: np.ndarray, plan: Plan) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Per argument, its byte offset in each record (payload starts `pay`), and per blob
    argument its length: vectorised over the records, one step per argument."""
    if plan.offsets is not None:
        return [pay + o for o in plan.offsets], {}
    cur = np.zeros(len(pay), np.int64)
    out, lens = [], {}
    for a, c in enumerate(plan.sig):
        code = SIG[c][0]
        if code == 255:
            cur = (cur + 1) & ~1
            n = gather(buf, pay + cur, np.dtype("<u2")).astype(np.int64)
            out.append(pay + cur + 2)
            lens[a] = n
            cur = cur + 2 + n
        elif code == PSTR:
            out.append(pay + cur)
            cur = cur + PSTR
        else:
            cur = (cur + code - 1) // code * code
            out.append(pay + cur)
            cur = cur + code
    return out, lens


def values(buf: np.ndarray, pay: np.ndarray, plan: Plan, arg: int, what: str, f: Field) -> np.ndarray:
    """One argument of the records whose payloads start at `pay` (all of one tracepoint)."""
    pos, lens = arg_positions(buf, pay, plan)
    c = plan.sig[arg]
    if c == "*":
        n = lens[arg]
        if what == "len":
            return n.astype(np.uint16)
        out = np.zeros((len(pay), f.size), np.uint8)
        if len(pay):
            cols = np.arange(f.size)
            keep = cols < n[:, None]
            src = np.minimum(pos[arg][:, None] + cols, len(buf) - 1)
            out[keep] = buf[src][keep]
        return out
    if c == "p":
        raw = buf[pos[arg][:, None] + np.arange(PSTR)] if len(pay) else np.zeros((0, PSTR), np.uint8)
        n = np.minimum(raw[:, 0], PSTR - 1)
        chars = raw[:, 1:] * (np.arange(PSTR - 1) < n[:, None])  # bytes past the length are stale ring data
        return np.ascontiguousarray(chars).view(f"S{PSTR - 1}").reshape(-1)
    return gather(buf, pos[arg], f.dtype)


def frames(buf: np.ndarray, off: np.ndarray, nbt: np.ndarray, header: int) -> np.ndarray:
    """Backtrace frames of records at `off` (0 pads; a ring's unused frames are 0 too).

    A record's frames are consecutive 8-byte words right after its header: each record's
    are copied as one row (gather_rows, compiled), never word by word. (Interning stacks
    does not come here: it reads the words in place, Trace.backtrace_words.)"""
    width = int(nbt.max()) if len(nbt) else 0
    if not width:
        return np.zeros((len(off), 0), np.uint64)
    raw = np.zeros((len(off), 8 * width), np.uint8)
    gather_rows(buf, np.ascontiguousarray(off, np.int64) + header, raw)
    out = raw.view("<u8").astype(np.uint64, copy=False)
    short = np.flatnonzero(nbt < width)  # frames past a record's own are not its: 0
    if len(short):
        part = out[short]
        part[np.arange(width) >= nbt[short, None]] = 0
        out[short] = part
    return out


_PRINTF = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+|\*)?(?:\.(?P<prec>\d+))?(?:hh|h|ll|l|L|z|j|t|q)?"
                     r"(?P<conv>[diouxXeEfgGcspaA%])")


def printf(fmt: str, args: list) -> str:
    """OSv's printf-style format applied as trace.py does (%p as 0x%016x)."""
    it = iter(args)

    def one(m: re.Match) -> str:
        conv = m["conv"]
        if conv == "%":
            return "%"
        v = next(it)
        spec = f"%{m['flags'] or ''}{m['width'] or ''}" + (f".{m['prec']}" if m["prec"] else "")
        if conv == "p":
            return f"0x{int(v):016x}"
        if conv in "diouxXc":
            v = int(v) if not isinstance(v, (bytes, str)) else v
            if conv == "c" and isinstance(v, int):
                v = chr(v & 0xFF)
            return (spec + ("d" if conv == "i" else conv)) % v
        if conv in "eEfgGaA":
            return (spec + ("f" if conv in "aA" else conv)) % float(v)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        return (spec + "s") % (v,)

    return _PRINTF.sub(one, fmt)
