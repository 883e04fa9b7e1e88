"""Reading the trace rings out of guest memory: the one reader every snapshot uses.

Given ``read(addr, size) -> bytes`` (gdb with pmemsave, the shared-RAM file, a
test's synthetic image) and the address of ``osvtrace_control``, this parses
the control block, each CPU's ring header, the thread table and the enable
flags, copies each ring's valid slots in one bulk read, and writes an .osvt.

Layouts come from osvtrace.catalog.layout (the mirror of kernel/include/trace/*.hh).
The commit protocol (ring.hh): the writer moves ``head`` forward, writes the
slots, then publishes ``committed``. So slots below ``committed`` are complete,
and after copying them a reader re-reads ``head``: any slot with an index below
``head - nslots`` may have been overwritten during the copy and is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.errors import OsvtraceError

ReadFn = Callable[[int, int], bytes]
CONTROL_VERSION = 1
MAX_STRING = 4096


class RingReadError(OsvtraceError):
    """Guest memory does not hold what the layout says (no kernel yet, wrong address, damage)."""


@dataclass
class Control:
    """trace::control, as read: scalar fields plus the per-CPU arrays cut to ncpus."""

    addr: int
    fields: dict[str, int]
    rings: list[int]
    tsc_offset: list[int]

    def __getattr__(self, name: str) -> int:
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Ring:
    """trace::ring header fields of one CPU, as read."""

    addr: int
    cpu: int
    mode: int
    nslots: int
    mask: int
    slots_addr: int
    head: int
    committed: int
    lost: int
    pending_lost: int
    tail: int


@dataclass
class RingChunk:
    """The valid slots of one ring, in sequence order: ready for TraceWriter.write_chunk."""

    cpu: int
    first_seq: int  # absolute index of slots[0]
    slots: np.ndarray  # uint8, shape (n * SLOT_SIZE,)
    lost_total: int
    ring: Ring
    dropped_during_copy: int = 0  # slots overwritten while they were being copied

    @property
    def nslots(self) -> int:
        return len(self.slots) // layout.SLOT_SIZE


@dataclass
class Snapshot:
    control: Control
    rings: list[Ring]
    chunks: list[RingChunk]
    threads: dict[int, str]
    exited: set[int]
    enabled: np.ndarray  # uint8 per tracepoint id (0 .. tp_max)
    cmdline: str
    build_id: str
    warnings: list[str] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return sum(c.nslots for c in self.chunks)

    @property
    def lost(self) -> int:
        return sum(c.lost_total for c in self.chunks)


# ---------------------------------------------------------------- structures

def _read(read: ReadFn, addr: int, size: int, what: str) -> bytes:
    try:
        data = read(addr, size)
    except OsvtraceError:
        raise
    except Exception as e:  # gdb.MemoryError, OSError ...: one line with the address
        raise RingReadError(f"cannot read {what} at {addr:#x} ({size} bytes): {e}") from None
    if len(data) != size:
        raise RingReadError(f"cannot read {what} at {addr:#x}: got {len(data)} of {size} bytes")
    return data


def read_control(read: ReadFn, addr: int) -> Control:
    """The control block at `addr`, checked (magic, version, sizes)."""
    buf = _read(read, addr, layout.CONTROL_SIZE, "the control block osvtrace_control")
    f = layout.read_struct(buf, layout.CONTROL_FIELDS)
    if f["magic"] != layout.CONTROL_MAGIC:
        if f["magic"] == 0:
            raise RingReadError(f"the control block at {addr:#x} is not published yet (magic 0): "
                                "the kernel has not finished booting its trace runtime")
        raise RingReadError(f"no control block at {addr:#x} (magic {f['magic']:#x}, "
                            f"expected {layout.CONTROL_MAGIC:#x})")
    if f["version"] != CONTROL_VERSION:
        raise RingReadError(f"control block version {f['version']} is not supported (this osvtrace reads "
                            f"{CONTROL_VERSION})")
    if f["slot_size"] != layout.SLOT_SIZE:
        raise RingReadError(f"slot size {f['slot_size']} in the control block, expected {layout.SLOT_SIZE}")
    n = f["ncpus"]
    if not 1 <= n <= layout.MAX_CPUS:
        raise RingReadError(f"control block at {addr:#x} says {n} CPUs (expected 1..{layout.MAX_CPUS})")
    ro, _ = layout.CONTROL_FIELDS["rings"]
    oo, _ = layout.CONTROL_FIELDS["tsc_offset"]
    rings = np.frombuffer(buf, "<u8", layout.MAX_CPUS, ro)[:n].tolist()
    offs = np.frombuffer(buf, "<i8", layout.MAX_CPUS, oo)[:n].tolist()
    scalars = {k: v for k, v in f.items() if k not in ("rings", "tsc_offset")}
    return Control(addr, scalars, rings, offs)


def read_ring(read: ReadFn, addr: int, cpu: int) -> Ring:
    """One CPU's ring header, checked."""
    buf = _read(read, addr, layout.RING_SIZE, f"the ring header of CPU {cpu}")
    f = layout.read_struct(buf, layout.RING_FIELDS)
    if f["magic"] != layout.RING_MAGIC:
        raise RingReadError(f"no ring for CPU {cpu} at {addr:#x} (magic {f['magic']:#x})")
    n = f["nslots"]
    if n == 0 or n & (n - 1) or f["mask"] != n - 1:
        raise RingReadError(f"ring of CPU {cpu} at {addr:#x}: nslots {n} / mask {f['mask']:#x} are not a power "
                            "of two and its mask")
    if f["committed"] > f["head"]:
        raise RingReadError(f"ring of CPU {cpu} at {addr:#x}: committed {f['committed']} is past head {f['head']}")
    f.pop("magic")
    return Ring(addr=addr, **f)


def read_cstring(read: ReadFn, addr: int, limit: int = MAX_STRING) -> str:
    """A NUL-terminated string (read in small pieces: it may end near unmapped memory)."""
    if not addr:
        return ""
    out = bytearray()
    while len(out) < limit:
        piece = _read(read, addr + len(out), 256, "a string")
        end = piece.find(b"\0")
        if end >= 0:
            out += piece[:end]
            break
        out += piece
    return out.decode("utf-8", "replace")


def read_threads(read: ReadFn, ctl: Control) -> tuple[dict[int, str], set[int]]:
    """(tid -> name, exited tids) from the thread table."""
    n = ctl.threads_max
    if not ctl.threads_addr or not n:
        return {}, set()
    if n > 1 << 20:
        raise RingReadError(f"thread table at {ctl.threads_addr:#x} claims {n} entries")
    raw = _read(read, ctl.threads_addr, n * layout.THREAD_ENTRY_DTYPE.itemsize, "the thread table")
    tab = np.frombuffer(raw, layout.THREAD_ENTRY_DTYPE)
    used = np.nonzero(tab["tid"])[0]
    names = {int(tab["tid"][i]): tab["name"][i].decode("utf-8", "replace") for i in used}
    exited = {int(tab["tid"][i]) for i in used if tab["flags"][i] & 1}
    return names, exited


def read_enabled(read: ReadFn, ctl: Control) -> np.ndarray:
    """The per-tracepoint enable flags (index = id)."""
    raw = _read(read, ctl.enabled_addr, ctl.tp_max + 1, "the tracepoint enable flags")
    return np.frombuffer(raw, np.uint8).copy()


# ---------------------------------------------------------------- rings

def valid_range(ring: Ring, head_after: int) -> tuple[int, int]:
    """[first, end) of the slot indices a snapshot keeps.

    Overwrite mode: the last nslots committed slots, minus any the writer may have
    reused while we copied (index < head_after - nslots). Stream mode: the same,
    and nothing a stream reader has consumed already (below tail)."""
    end = ring.committed
    first = max(0, end - ring.nslots, head_after - ring.nslots)
    if ring.mode == layout.RING_MODE_STREAM:
        first = max(first, ring.tail)
    return min(first, end), end


def snapshot_ring(read: ReadFn, ring_addr: int, cpu: int, limit: int | None = None) -> RingChunk:
    """Copy one ring's valid slots: header, one bulk read of the slots, head again.

    The bulk read covers only the valid range while the ring has not wrapped (a 4 MiB
    ring holding 100 records costs 3 KiB), and the whole array once it has. `limit`
    keeps only the newest `limit` slots (the first may then be a cut record's tail,
    which the decoder counts as partial), read in at most two pieces."""
    ring = read_ring(read, ring_addr, cpu)
    first0, end = valid_range(ring, ring.head)
    if limit is not None:
        first0 = max(first0, end - limit)
    n = end - first0
    lo = first0 & ring.mask
    what = f"the slots of CPU {cpu}"

    def piece(start: int, count: int) -> bytes:
        return _read(read, ring.slots_addr + start * layout.SLOT_SIZE, count * layout.SLOT_SIZE, what)

    if n == 0:
        seq = np.empty((0, layout.SLOT_SIZE), np.uint8)
    elif lo + n <= ring.nslots:  # contiguous in memory: read just that
        seq = np.frombuffer(piece(lo, n), np.uint8).reshape(-1, layout.SLOT_SIZE)
    elif limit is not None and n < ring.nslots:  # the newest slots, across the array's end
        raw = piece(lo, ring.nslots - lo) + piece(0, lo + n - ring.nslots)
        seq = np.frombuffer(raw, np.uint8).reshape(-1, layout.SLOT_SIZE)
    else:  # wrapped: read the array, rotate so slots are in sequence order (index i is slot i & mask)
        slots = np.frombuffer(piece(0, ring.nslots), np.uint8).reshape(-1, layout.SLOT_SIZE)
        seq = np.concatenate([slots[lo:], slots[:(lo + n) - ring.nslots]])
    head_off = layout.RING_FIELDS["head"][0]
    head_after = int(np.frombuffer(_read(read, ring_addr + head_off, 8, f"the ring head of CPU {cpu}"), "<u8")[0])
    first = max(valid_range(ring, head_after)[0], first0)
    dropped = first - first0  # slots the writer may have reused while we copied
    seq = seq[dropped:]
    return RingChunk(cpu, first, np.ascontiguousarray(seq).reshape(-1), ring.lost, ring, dropped)


def snapshot(read: ReadFn, control_addr: int, *, limit: int | dict[int, int] | None = None) -> Snapshot:
    """Everything a trace file needs, read from guest memory. `limit` keeps only the
    newest slots of each ring (a number, or one per CPU)."""
    ctl = read_control(read, control_addr)
    chunks: list[RingChunk] = []
    rings: list[Ring] = []
    warnings: list[str] = []
    for cpu, addr in enumerate(ctl.rings):
        if not addr:
            warnings.append(f"CPU {cpu} has no ring yet")
            continue
        c = snapshot_ring(read, addr, cpu, limit.get(cpu) if isinstance(limit, dict) else limit)
        chunks.append(c)
        rings.append(c.ring)
        if c.dropped_during_copy:
            warnings.append(f"CPU {cpu}: {c.dropped_during_copy} slots were overwritten while being copied")
    names, exited = read_threads(read, ctl)
    enabled = read_enabled(read, ctl)
    cmdline = read_cstring(read, ctl.cmdline_addr)
    build_id = read_cstring(read, ctl.build_id_addr, 128)
    return Snapshot(ctl, rings, chunks, names, exited, enabled, cmdline, build_id, warnings)


# ---------------------------------------------------------------- .osvt

def write_osvt(snap: Snapshot, path: str | os.PathLike, *, capture: str, catalog: Catalog | None = None,
               kernel: str = "", status: str = "", extra: dict[str, str] | None = None) -> None:
    """Write a snapshot as an .osvt trace file (metadata, one chunk per CPU, trailer)."""
    from osvtrace.format.osvt import TraceWriter, new_metadata
    from osvtrace.format.proto import osvt_pb2

    cat = catalog or default_catalog()
    ctl = snap.control
    meta = new_metadata(cat, ncpus=ctl.ncpus, tsc_hz=ctl.tsc_hz, tsc_boot=ctl.tsc_boot, capture=capture,
                        tsc_offset=ctl.tsc_offset, cmdline=snap.cmdline, build_id=snap.build_id, kernel=kernel)
    for tid, name in sorted(snap.threads.items()):
        meta.threads.append(osvt_pb2.Thread(tid=tid, name=name))
    enabled = [tp.name for tp in cat.active() if tp.id < len(snap.enabled) and snap.enabled[tp.id]]
    meta.extra["enabled"] = ",".join(enabled)
    for k, v in (extra or {}).items():
        meta.extra[k] = v
    with TraceWriter(path, meta) as w:
        for c in snap.chunks:
            w.write_chunk(c.cpu, c.first_seq, c.slots, c.lost_total)
        w.close(status)
