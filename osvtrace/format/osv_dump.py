"""Real OSv's trace files, opened as a :class:`osvtrace.format.base.Trace`.

Two files, told apart by content (``sniff``):

- the OSVT dump that OSv's REST API writes (``GET /trace/buffers``; core/trace.cc
  ``trace::create_trace_dump``): chunks aligned to 8, each a u32 FOURCC tag (little endian,
  so 'OSVT' reads "TVSO"), padding, a u64 size. The OSVT chunk holds u32 1 (endian check),
  u32 version, then TRCD (backtrace length and the tracepoint dictionary: key, id, name,
  provider, format, one type character per argument), MODS (loaded objects and their
  sections), SYMB (symbols) and one TRCS per CPU: that CPU's ring contents, oldest first,
  without the page-end padding;
- the gdb "tracefile" (``osv trace save``, scripts/loader.py; "format B", version 3 of
  scripts/osv/trace.py): i32 version, u64 count, per tracepoint u64 key and three
  u16-prefixed strings (name, struct signature, format), then records packed with no
  alignment between them: key, thread, name[16], time, cpu (44 bytes), return addresses up
  to a 0, the payload. ``FILE.symbols`` beside it resolves those addresses
  (``0xADDR file line function`` per line, each address one less than the frame's).

The records are decoded by osvtrace.format.osv_records. OSv's rings overwrite silently,
so each CPU's data starts where its ring last wrapped: a warning says, per CPU, how much
later than the earliest CPU its data starts.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from osvtrace.catalog.schema import Catalog, Field
from osvtrace.errors import TraceFormatError
from osvtrace.format import osv_records as R
from osvtrace.format.base import Events, FileFacts, Trace
from osvtrace.format.decode import CpuLoss
from osvtrace.format.osv_write import RingInfo, read_ring_chunk
from osvtrace.format.osvt import map_file

DUMP_MAGIC = b"TVSO"  # u32 'OSVT' written little endian
DUMP_MAGIC_BE = b"OSVT"
TAGS = {b"DCRT": "TRCD", b"SDOM": "MODS", b"BMYS": "SYMB", b"SCRT": "TRCS",
        b"GNIR": "RING"}  # RING: osvtrace's record --kernel osv (osv_write): each CPU's ring size and _last
TRACEFILE_VERSION = 3
MAX_BACKTRACE = 64
START_NOTE_NS = 1_000_000  # a CPU whose data starts this much after the first CPU's gets a warning
SYMBOL_CHECK_RECORDS = 2000  # records whose frames are looked up in FILE.symbols at open


def sniff(head: bytes) -> str | None:
    """"osv-dump", "osv-tracefile" or None, from a file's first bytes."""
    if head[:4] in (DUMP_MAGIC, DUMP_MAGIC_BE):
        return "osv-dump"
    if len(head) >= 12:
        version = int.from_bytes(head[:4], "little", signed=True)
        n = int.from_bytes(head[4:12], "little")
        if 1 <= version <= 15 and n < 1 << 20 and (n == 0 or len(head) < 22 or _plausible_key(head[12:22])):
            return "osv-tracefile"
    return None


def _plausible_key(b: bytes) -> bool:
    key = int.from_bytes(b[:8], "little")
    name_len = int.from_bytes(b[8:10], "little")
    return key != 0 and 0 < name_len < 256


class _Reader:
    """Little-endian fields of a mapped file, with where-am-I errors."""

    def __init__(self, mm, name: str, pos: int = 0, end: int | None = None):
        self.mm, self.name, self.pos = mm, name, pos
        self.end = len(mm) if end is None else end

    def fail(self, what: str) -> TraceFormatError:
        return TraceFormatError(f"{self.name}: offset {self.pos}: {what}")

    def take(self, fmt: str, align: bool = True) -> int:
        size = struct.calcsize(fmt)
        if align:
            self.pos = (self.pos + size - 1) // size * size
        if self.pos + size > self.end:
            raise self.fail(f"cut short: {size}-byte field runs past byte {self.end}")
        v = struct.unpack_from("<" + fmt, self.mm, self.pos)[0]
        self.pos += size
        return v

    def string(self, align: bool = True) -> str:
        n = self.take("H", align)
        if self.pos + n > self.end:
            raise self.fail(f"cut short: a {n}-byte string runs past byte {self.end}")
        s = bytes(self.mm[self.pos:self.pos + n]).decode("utf-8", "replace")
        self.pos += n
        return s


@dataclass
class Layout:
    """Where a file's parts are."""

    kind: str
    tps: list[R.OsvTracepoint]
    runs: list[tuple[int, int]]  # byte ranges of record data (dump: one TRCS per CPU)
    bt_len: int = 0
    symb: list[tuple[int, int]] = field(default_factory=list)  # SYMB chunk bodies
    mods: list[tuple[int, int]] = field(default_factory=list)  # MODS chunk bodies
    rings: list = field(default_factory=list)  # osv_write.RingInfo per CPU (a RING chunk; our captures)
    version: int = 0
    damage: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_dump(mm, name: str) -> Layout:
    """The chunks of an OSVT dump (TRCD parsed, the others located)."""
    size = len(mm)
    if bytes(mm[:4]) == DUMP_MAGIC_BE:
        raise TraceFormatError(f"{name}: offset 0: a big-endian OSv trace dump; only little-endian (x86-64, "
                               f"aarch64) dumps are read")
    r = _Reader(mm, name, 4)
    if size < 24:
        raise TraceFormatError(f"{name}: offset 0: OSVT dump cut short ({size} bytes, the header needs 24)")
    total = r.take("Q")
    endian = r.take("I")
    version = r.take("I")
    if endian != 1:
        raise TraceFormatError(f"{name}: offset 16: OSVT endian check is {endian:#x}, not 1: not a dump "
                               f"this osvtrace reads")
    if version >> 16 != 0:
        raise TraceFormatError(f"{name}: offset 20: OSVT dump format version {version >> 16}.{version & 0xFFFF}; "
                               f"this osvtrace reads 0.x (another OSv version?)")
    lay = Layout("osv-dump", [], [], version=version)
    end = min(size, 8 + 8 + total) if total else size
    if 16 + total > size:
        lay.damage.append(f"{name}: offset 8: dump cut short: the OSVT header says {16 + total:,} bytes, the file has "
                          f"{size:,}")
    seen_bt = None
    pos = 24
    while True:
        pos = (pos + 7) & ~7
        if pos + 16 > end:
            if pos < end:
                lay.damage.append(f"{name}: offset {pos}: {end - pos} stray bytes after the last chunk")
            break
        tag = bytes(mm[pos:pos + 4])
        csize = struct.unpack_from("<Q", mm, pos + 8)[0]
        body = pos + 16
        kind = TAGS.get(tag)
        if kind is None:
            shown = tag[::-1].decode("latin-1")
            if not all(32 <= b < 127 for b in tag):
                raise TraceFormatError(f"{name}: offset {pos}: no chunk header here (tag bytes {tag.hex()}): "
                                       f"the dump is damaged")
            lay.damage.append(f"{name}: offset {pos}: unknown chunk {shown!r} ({csize:,} bytes) skipped "
                              f"(a dump from another OSv version?)")
        if body + csize > end:
            lay.damage.append(f"{name}: offset {pos}: {kind or 'chunk'} of {csize:,} bytes is cut short at byte "
                              f"{end:,}; its first {max(end - body, 0):,} bytes are used")
            csize = max(end - body, 0)
        if kind == "TRCD":
            bt, tps = _read_trcd(mm, name, body, body + csize)
            if seen_bt is not None and bt != seen_bt:
                raise TraceFormatError(f"{name}: offset {body}: TRCD says backtraces have {bt} frames, an "
                                       f"earlier one said {seen_bt}")
            seen_bt = bt
            lay.tps += tps
        elif kind == "TRCS":
            lay.runs.append((body, body + csize))
        elif kind == "SYMB":
            lay.symb.append((body, body + csize))
        elif kind == "MODS":
            lay.mods.append((body, body + csize))
        elif kind == "RING":
            try:
                lay.rings = read_ring_chunk(bytes(mm[body:body + csize]))
            except struct.error:
                lay.damage.append(f"{name}: offset {body}: RING chunk cut short; ring sizes unknown")
        pos = body + csize
    if seen_bt is None:
        raise TraceFormatError(f"{name}: no TRCD chunk (tracepoint dictionary): not a complete OSv trace dump")
    lay.bt_len = seen_bt
    keys = {}
    for t in lay.tps:
        if keys.setdefault(t.key, t) != t:
            raise TraceFormatError(f"{name}: tracepoint key {t.key:#x} is defined twice, differently")
    lay.tps = list(keys.values())
    return lay


def _read_trcd(mm, name: str, start: int, end: int) -> tuple[int, list[R.OsvTracepoint]]:
    """The tracepoint dictionary (~600 entries in OSv: a plain loop over a bytes copy, with
    the alignment rules of trace_out inline; a _Reader call per field cost ~10 ms)."""
    r = _Reader(mm, name, start, end)
    bt = r.take("I")
    if bt > MAX_BACKTRACE:
        raise TraceFormatError(f"{name}: offset {start}: backtraces of {bt} frames (OSv writes 10; at most "
                               f"{MAX_BACKTRACE} are read): a dump from another OSv version, or damaged")
    n = r.take("I")
    b = bytes(mm[start:end])
    pos = r.pos - start
    u16, u32, u64 = struct.Struct("<H").unpack_from, struct.Struct("<I").unpack_from, struct.Struct("<Q").unpack_from
    size = len(b)
    out = []
    try:
        for _ in range(n):
            at = pos = (pos + 7) & ~7
            key = u64(b, pos)[0]
            pos += 8
            strs = []
            for _ in range(4):  # id (the name again), name, provider ("OSv"), format
                pos = (pos + 1) & ~1
                ln = u16(b, pos)[0]
                if pos + 2 + ln > size:
                    raise struct.error("string past the end")
                strs.append(b[pos + 2:pos + 2 + ln])
                pos += 2 + ln
            pos = (pos + 3) & ~3
            nargs = u32(b, pos)[0]
            pos += 4
            tname = strs[1].decode("utf-8", "replace")
            if nargs > 64:
                raise TraceFormatError(f"{name}: offset {start + at}: tracepoint {tname[:60]!r} has {nargs} "
                                       f"arguments: damaged dictionary")
            sig = bytearray()
            for _ in range(nargs):  # "0", "1", ...: OSv has no argument names; then the type character
                pos = (pos + 1) & ~1
                pos += 2 + u16(b, pos)[0]
                if pos >= size:
                    raise struct.error("signature past the end")
                sig.append(b[pos])
                pos += 1
            sig_s = sig.decode("latin-1")
            out.append(R.OsvTracepoint(key, tname, R.parse_sig(sig_s, f"{name}: offset {start + at}", tname),
                                       strs[3].decode("utf-8", "replace")))
    except struct.error:
        raise TraceFormatError(f"{name}: offset {start + pos}: TRCD chunk cut short in tracepoint {len(out) + 1} "
                               f"of {n}") from None
    return bt, out


def read_tracefile(mm, name: str) -> Layout:
    """The header (tracepoint dictionary) of a gdb tracefile; the records follow it."""
    r = _Reader(mm, name)
    version = r.take("i")
    if version != TRACEFILE_VERSION:
        raise TraceFormatError(f"{name}: offset 0: OSv tracefile version {version}; this osvtrace reads version "
                               f"{TRACEFILE_VERSION} (scripts/osv/trace.py's _format_version)")
    n = r.take("Q", align=False)
    tps = []
    for _ in range(n):
        at = r.pos
        key = r.take("Q", align=False)
        tname = r.string(align=False)
        sig = r.string(align=False)
        fmt = r.string(align=False)
        tps.append(R.OsvTracepoint(key, tname, R.parse_sig(sig, f"{name}: offset {at}", tname), fmt))
    return Layout("osv-tracefile", tps, [(r.pos, len(mm))], version=version)


# ---------------------------------------------------------------- symbols

@dataclass
class Symbols:
    """Addresses to names: exact ones (a tracefile's FILE.symbols) and ranges (a dump's SYMB)."""

    exact: dict[int, str] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __call__(self, addr: int) -> str | None:
        if addr in self.exact:
            return self.exact[addr]
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ends[i]:
            return f"{self.names[i]}+{addr - self.starts[i]:#x}"
        return None


def read_symbols_file(path: Path) -> tuple[dict[int, str], list[str]]:
    """FILE.symbols: `0xADDR file line function` lines; (address -> 'function file:line', problems)."""
    out, bad = {}, []
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.strip():
                continue
            tok = line.split(maxsplit=3)
            try:
                addr = int(tok[0], 16)
                if len(tok) < 4:
                    raise ValueError
            except (ValueError, IndexError):
                bad.append(f"{path}: line {no}: not `0xADDR file line function`: {line[:80]!r}")
                continue
            where = tok[1] if tok[2] == "<?>" else f"{tok[1]}:{tok[2]}"
            out[addr] = f"{tok[3]} ({where})" if tok[1] not in ("<?>", "??") else tok[3]
    return out, bad


def read_symb_chunks(mm, name: str, lay: Layout) -> Symbols:
    """The dump's SYMB chunks (function and object symbols of every loaded object)."""
    rows = []
    for s, e in lay.symb:
        r = _Reader(mm, name, s, e)
        try:
            for _ in range(r.take("I")):
                sname = r.string()
                addr = r.take("Q")
                size = r.take("Q")
                r.string()
                for _ in range(r.take("I")):
                    r.take("I")
                    r.take("i")
                rows.append((addr, addr + max(size, 1), sname))
        except TraceFormatError:
            continue  # a damaged symbol table only costs names
    rows.sort()
    return Symbols({}, [a for a, _, _ in rows], [b for _, b, _ in rows], [n for _, _, n in rows])


@dataclass
class Module:
    """An object OSv had loaded (a dump's MODS chunk): its path in the guest, where it was
    loaded ([base, base + size)) and its sections as (name, address in the ELF, size)."""

    path: str
    base: int
    size: int
    sections: list[tuple[str, int, int]]


def read_mods_chunks(mm, name: str, lay: Layout) -> list[Module]:
    """The dump's MODS chunks (core/trace.cc: the loaded objects, the kernel's with no sections)."""
    out = []
    for s, e in lay.mods:
        r = _Reader(mm, name, s, e)
        try:
            for _ in range(r.take("I")):
                path, base, size = r.string(), r.take("Q"), r.take("Q")
                secs = []
                for _ in range(r.take("I")):
                    sname = r.string()
                    r.take("I"), r.take("I"), r.take("Q")  # sh_type, sh_info, sh_flags
                    addr, _off, ssize = r.take("Q"), r.take("Q"), r.take("Q")
                    secs.append((sname, addr, ssize))
                out.append(Module(path, base, size, secs))
        except TraceFormatError:
            continue  # a damaged module list only costs the app's names
    return out


# ---------------------------------------------------------------- the trace

class OsvTrace(Trace):
    """An OSv trace file (OSVT dump or gdb tracefile), decoded. Use :func:`osvtrace.open`."""

    kernel = "osv"  # osvtrace.kernels.osv: how its records make the model's tracepoints

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        name = str(self.path)
        self._mm = map_file(self.path, populate=True)
        mm = self._mm
        kind = sniff(bytes(mm[:64]))
        if kind is None:
            raise TraceFormatError(f"{name}: not an OSv trace dump or tracefile")
        self._lay = lay = read_dump(mm, name) if kind == "osv-dump" else read_tracefile(mm, name)
        self._tracefile = tracefile = kind == "osv-tracefile"
        self._buf = buf = np.frombuffer(mm, np.uint8) if len(mm) else np.zeros(0, np.uint8)
        self._dict = d = R.Dictionary(lay.tps)
        self._rec = rec = R.walk(buf, lay.runs, d, tracefile=tracefile, bt_len=lay.bt_len)
        self._header = R.HEADER_TRACEFILE if tracefile else R.HEADER_RING
        damage = list(lay.damage)
        for run, stop, status, detail in rec.problems:
            what = f"CPU data chunk {run}" if not tracefile else "the records"
            rest = lay.runs[run][1] - stop
            why = {2: f"a record with unknown tracepoint key {detail} (not in the dictionary)",
                   3: "a record cut short", 5: f"a backtrace longer than {R.MAX_FRAMES} frames",
                   6: f"more than {R.MAX_THREADS} threads"}.get(status, R.STATUS.get(status, str(status)))
            damage.append(f"{name}: offset {stop}: {why}; the rest of {what} ({rest:,} bytes) is skipped")
        o = R.order(rec, merged=tracefile)
        self.events = Events(o.time, o.cpu, o.tid, o.tp, o.row)
        self._tid_of = o.tid_of_thread
        # the catalog lists the tracepoints that have records (the dictionary keeps them all)
        used = np.flatnonzero(np.bincount(o.tp, minlength=len(d.tps) + 1)) if len(o.tp) else np.empty(0, np.int64)
        self._catalog, self._where = R.catalog(d, rec.blob_max, used)
        ncpu = max(len(rec.cpu_first), 0 if tracefile else len(lay.runs))
        self.loss = {c: CpuLoss(c) for c in range(ncpu)}
        self._ncpus = ncpu
        # a RING chunk's lost bytes are -1 for a snapshot and counted (>= 0) by a continuous capture
        how = ("gdb tracefile" if tracefile else "REST dump" if not lay.rings else
               "shared-RAM capture (osvtrace record)" if any(r.lost >= 0 for r in lay.rings) else
               "gdb snapshot (osvtrace record)")
        self._facts = FileFacts(kind, size=len(mm), capture="osv " + how,
                                chunks=len(lay.runs), complete=not damage, damaged_chunks=len(rec.problems),
                                truncated=any("cut short" in w for w in damage), damage=damage, loss_known=False)
        self._notes = self._start_notes()
        if tracefile:
            self._check_symbols_file()

    # ------------------------------------------------------------ facts

    @property
    def catalog(self) -> Catalog:
        """The file's tracepoints, under OSv's names and arguments (a0, a1 ... in signature
        order). Several share a name with one of osvtrace's own but not its arguments
        (sched_switch, mutex_lock ...): the model reads those through the OSv rules in
        osvtrace/kernels/osv.py, never by name."""
        return self._catalog

    @property
    def facts(self) -> FileFacts:
        return self._facts

    @property
    def warnings(self) -> list[str]:
        return self._facts.damage + self._notes

    @property
    def ncpus(self) -> int:
        return self._ncpus

    @property
    def kind(self) -> str:
        return self._facts.kind

    @property
    def backtrace_len(self) -> int:
        """Frames per backtrace as the dump declares (a tracefile's vary per record)."""
        return self._lay.bt_len

    @property
    def dictionary(self) -> list[R.OsvTracepoint]:
        """Every tracepoint the file's dictionary lists (key order: id k is entry k - 1),
        with records or not; the catalog has those with records."""
        return self._dict.tps

    def tracepoint_key(self, tp_id: int) -> int:
        """The address OSv keys a tracepoint id's records with."""
        return self._dict.by_id(int(tp_id)).key

    def cpu_starts(self) -> dict[int, int]:
        """Per CPU, the time of its first record (its ring's oldest surviving one; from the
        walk, no pass over the events)."""
        rec = self._rec
        return {c: int(rec.time[r]) for c, r in enumerate(rec.cpu_first.tolist()) if r >= 0}

    @property
    def rings(self) -> dict[int, RingInfo]:
        """Per CPU, its ring at the capture (size, bytes ever written, bytes kept), where the
        file says (an `osvtrace record --kernel osv` capture has a RING chunk; OSv's own dumps
        do not)."""
        return {r.cpu: r for r in self._lay.rings}

    def _wrap_notes(self) -> list[str]:
        out = []
        for r in self._lay.rings:
            if r.lost > 0:  # a continuous capture that could not keep up
                out.append(f"cpu{r.cpu}: {r.lost:,} of the {r.last:,} bytes its ring received were overwritten before "
                           f"the capture copied them; {r.records:,} records kept")
            elif r.lost < 0 and r.wrapped:
                out.append(f"cpu{r.cpu}'s ring ({r.size:,} bytes) wrapped: {r.overwritten:,} bytes of its earlier "
                           f"records were overwritten before the capture; {r.records:,} records kept")
        return out

    def _start_notes(self) -> list[str]:
        starts = self.cpu_starts()
        if len(starts) < 2:
            return self._wrap_notes()
        first_cpu = min(starts, key=lambda c: (starts[c], c))
        t0 = starts[first_cpu]
        out = []
        for c in sorted(starts):
            late = starts[c] - t0
            if late >= START_NOTE_NS:
                out.append(f"cpu{c}'s data starts {late / 1e9:.3f} s after cpu{first_cpu}'s (OSv's ring buffers "
                           f"overwrite silently: older records of cpu{c} were overwritten or never written); "
                           f"before {t0 + late} ns the trace lacks cpu{c}")
        return out + self._wrap_notes()

    @cached_property
    def seq(self) -> np.ndarray:
        """Per-CPU record number of each event (0 = that CPU's first surviving record)."""
        rec = self._rec
        n = len(rec.time)
        per = np.zeros(n, np.int64)
        if n:
            # file order within a CPU is its ring order: number records per CPU by a cumulative count
            cpu = rec.cpu.astype(np.int64)
            onehot_order = np.argsort(cpu, kind="stable")
            sorted_cpu = cpu[onehot_order]
            starts = np.searchsorted(sorted_cpu, sorted_cpu, side="left")
            per[onehot_order] = np.arange(n) - starts
        return per[self.events.row]

    # ------------------------------------------------------------ threads

    def _thread_names(self) -> dict[int, str]:
        """Each thread's name as its last record carries it (OSv copies 16 characters)."""
        rec = self._rec
        names = {}
        if len(rec.thread_last):
            off = rec.off[rec.thread_last]
            raw = np.ascontiguousarray(self._buf[off[:, None] + 16 + np.arange(16)])
            for tid, b in zip(self._tid_of.tolist(), raw):
                names[int(tid)] = bytes(b).partition(b"\0")[0].decode("utf-8", "replace")
        return names

    def thread_pointers(self) -> dict[int, int]:
        """tid -> OSv's sched::thread address."""
        return {int(t): int(p) for t, p in zip(self._tid_of.tolist(), self._rec.thread_ptr.tolist())}

    # ------------------------------------------------------------ arguments

    def field_values(self, f: Field, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        if not len(rows):
            return np.empty(0, f.dtype) if not f.type == "bytes" else np.zeros((0, f.size), np.uint8)
        tps = self._rec.tp[rows]
        tp = int(tps[0])
        if not (tps == tp).all():  # several ids of one name: read each id's records with its own plan
            out = None
            for t in np.unique(tps).tolist():
                sel = tps == t
                v = self._values(t, f, rows[sel])
                if out is None:
                    out = np.zeros((len(rows),) + v.shape[1:], v.dtype)
                out[sel] = v
            return out
        return self._values(tp, f, rows)

    def _values(self, tp: int, f: Field, rows: np.ndarray) -> np.ndarray:
        try:
            arg, what = self._where[(tp, f.name)]
        except KeyError:
            raise TraceFormatError(f"{self.path}: tracepoint {self._dict.by_id(tp).name} has no argument "
                                   f"{f.name}") from None
        v = R.values(self._buf, self._rec.payload(rows), self._dict.plans[tp], arg, what, f)
        if f.type == "bytes" and v.shape[1] != f.size:  # another id of this name with longer blobs
            w = np.zeros((len(v), f.size), np.uint8)
            k = min(f.size, v.shape[1])
            w[:, :k] = v[:, :k]
            v = w
        return v

    def format_event(self, i: int) -> str:
        """Event i's arguments through OSv's own printf-style format (as trace.py prints them)."""
        tp = self.catalog.by_id.get(int(self.events.tp[i]))
        if tp is None:
            return f"<unknown tracepoint {int(self.events.tp[i])}>"
        row = self.events.row[i:i + 1]
        sig = self._dict.by_id(tp.id).sig
        args = []
        for a, c in enumerate(sig):
            f = next(f for f in tp.fields if f.name == f"a{a}")
            v = self.field_values(f, row)[0]
            if c == "f":
                v = float(np.array([v], np.uint32).view(np.float32)[0])
            elif c == "d":
                v = float(np.array([v], np.uint64).view(np.float64)[0])
            elif c == "*":
                n = int(self.field_values(next(g for g in tp.fields if g.name == f"a{a}_len"), row)[0])
                v = "{" + " ".join(f"{b:02x}" for b in bytes(v)[:n]) + "}"
            elif c == "p":
                v = bytes(v)
            else:
                v = int(v)
            args.append(v)
        try:
            return R.printf(tp.format, args)
        except (TypeError, ValueError, StopIteration, OverflowError):
            return " ".join(f"a{k}={v}" for k, v in enumerate(args))

    # ------------------------------------------------------------ backtraces

    def backtraces(self, idx: np.ndarray) -> np.ndarray:
        rows = self.events.row[np.asarray(idx)]
        return R.frames(self._buf, self._rec.off[rows], self._rec.nbt[rows], self._header)

    def backtrace_words(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frames where the records hold them: right after each record's header."""
        rows = self.events.row[np.asarray(idx)]
        return self._buf, self._rec.off[rows] + self._header, self._rec.nbt[rows]

    @cached_property
    def _symbols(self) -> Symbols:
        if self._tracefile:
            p = Path(str(self.path) + ".symbols")
            exact = read_symbols_file(p)[0] if p.exists() else {}
            return Symbols(exact)
        return read_symb_chunks(self._mm, str(self.path), self._lay)

    @cached_property
    def modules(self) -> list[Module]:
        """The objects loaded when a dump was taken (its MODS chunk; none in a tracefile)."""
        return [] if self._tracefile else read_mods_chunks(self._mm, str(self.path), self._lay)

    def symbol(self, addr: int) -> str | None:
        """The function holding a return address (looked up at addr - 1, as OSv's tools do)."""
        return self._symbols(int(addr) - 1)

    def _check_symbols_file(self) -> None:
        """FILE.symbols must name the frames of this file's backtraces: checked on a sample."""
        p = Path(str(self.path) + ".symbols")
        if not p.exists():
            return
        exact, bad = read_symbols_file(p)
        self.__dict__["_symbols"] = Symbols(exact)  # read once: symbol() uses it
        if bad:
            self._facts.damage.append(bad[0] + (f" (and {len(bad) - 1} more lines)" if len(bad) > 1 else ""))
        has = np.flatnonzero(self._rec.nbt > 0)[:SYMBOL_CHECK_RECORDS]
        if not len(has):
            return
        fr = R.frames(self._buf, self._rec.off[has], self._rec.nbt[has], self._header)
        addrs = np.unique(fr[fr != 0]) - np.uint64(1)
        missing = [int(a) for a in addrs.tolist() if int(a) not in exact]
        if missing:
            self._facts.damage.append(
                f"{p}: does not match {self.path.name}: {len(missing)} of {len(addrs)} backtrace addresses of its "
                f"first {len(has)} backtraces are not in it (first {missing[0]:#x}); frames may be named wrong")

    def close(self) -> None:
        self.events = Events(*(np.empty(0) for _ in range(5)))
        self._buf = np.zeros(0, np.uint8)
        if hasattr(self._mm, "close"):
            try:
                self._mm.close()
            except BufferError:
                pass  # arrays still refer to the mapping; it closes when they go
