"""The stream protocol: frames from the kernel's drain, parsed incrementally.

The Python half of kernel/include/trace/stream.hh (docs/format.md, "Stream
protocol"). The guest's drain thread writes one byte stream of frames to the
virtio-serial port ``org.osvtrace.trace``::

    frame header (32 bytes) | payload, zero-padded to a multiple of 32 bytes

A data frame's payload is a range of one CPU's ring slots, exactly as the ring
holds them, cut at record boundaries: the recorder writes it as one .osvt chunk
without looking inside. Nothing here builds a Python object per record; the
only per-record work is one vectorised count of header slots per frame.

:class:`StreamParser` owns a receive buffer. A transport either reads straight
into it (``recv_into(parser.free_space())`` then ``parser.commit(n)``: no copy)
or calls :meth:`StreamParser.feed`. Complete frames go to a :class:`StreamSink`
as they are found, with the payload as a memoryview into the buffer that is
only valid during the call. Anything that does not look like a frame where a
frame must start is a :class:`StreamError` naming the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from osvtrace.catalog import layout
from osvtrace.errors import OsvtraceError
from osvtrace.format.osvt import MAX_SEQ  # what the reader takes as a damaged chunk must not be written

FRAME_MAGIC = 0x4D525453  # "STRM"
PROTOCOL_VERSION = 1
PORT_NAME = "org.osvtrace.trace"
CTL_PORT_NAME = "org.osvtrace.ctl"
FRAME = struct.Struct("<IBBHIIQQ")  # magic, type, flags, cpu, count, reserved, seq, lost
assert FRAME.size == 32

META, DATA, THREADS, END, ACK = 1, 2, 3, 4, 5
TYPE_NAMES = {META: "meta", DATA: "data", THREADS: "threads", END: "end", ACK: "ack"}

# meta_payload: version, ncpus, tsc_hz, tsc_boot, tp_max, slot_size, ring_slots,
# cmdline_len, build_id_len, enabled_len, drain_period_us, tsc_start; then tsc_offset[64]
META_HEAD = struct.Struct("<IIQQIIQIIIIQ")
assert META_HEAD.size == 64
META_SIZE = META_HEAD.size + 8 * layout.MAX_CPUS
END_PAYLOAD = struct.Struct("<iIQ")  # status, reason, tsc
ACK_PAYLOAD = struct.Struct("<IiQ")  # id, result, tsc; then a NUL-terminated message
END_APP_EXIT = 0
END_STOPPED = 1

MAX_FRAME_BYTES = 64 << 20  # a frame claiming more is a desynchronised stream
MAX_UPTIME_S = 10 * 365 * 86400  # a guest streaming later than this after its boot: a damaged meta frame
_ALIGN = 32


class StreamError(OsvtraceError):
    """The byte stream from the guest is not a valid frame sequence (desynchronised or damaged)."""


@dataclass
class Meta:
    """What the first frame says about the guest."""

    version: int
    ncpus: int
    tsc_hz: int
    tsc_boot: int
    tp_max: int
    slot_size: int
    ring_slots: int
    drain_period_us: int
    tsc_start: int
    tsc_offset: list[int]
    cmdline: str
    build_id: str
    enabled: np.ndarray  # uint8 per tracepoint id


@dataclass
class End:
    status: int
    reason: int  # END_APP_EXIT or END_STOPPED
    tsc: int


@dataclass
class Ack:
    id: int
    result: int
    tsc: int
    message: str


class StreamSink:
    """Receives parsed frames. Payload memoryviews are valid only during the call."""

    def on_meta(self, meta: Meta) -> None: ...

    def on_data(self, cpu: int, seq: int, lost: int, slots: memoryview, records: int) -> None: ...

    def on_threads(self, names: dict[int, str]) -> None: ...

    def on_end(self, end: End) -> None: ...

    def on_ack(self, ack: Ack) -> None: ...


def count_records(slots: memoryview | bytes | np.ndarray) -> int:
    """Header slots (records) in a run of whole slots: one vectorised pass over the ids."""
    ids = np.frombuffer(slots, "<u2")[:: layout.SLOT_SIZE // 2]
    return int(np.count_nonzero(ids != layout.ID_CONT))


def parse_meta(payload: memoryview | bytes) -> Meta:
    if len(payload) < META_SIZE:
        raise StreamError(f"meta frame of {len(payload)} bytes, expected at least {META_SIZE}")
    (version, ncpus, tsc_hz, tsc_boot, tp_max, slot_size, ring_slots, cl_len, bid_len, en_len, period,
     tsc_start) = META_HEAD.unpack_from(payload, 0)
    offs = np.frombuffer(payload, "<i8", layout.MAX_CPUS, META_HEAD.size)
    p = META_SIZE
    if p + cl_len + bid_len + en_len > len(payload):
        raise StreamError(f"meta frame of {len(payload)} bytes cannot hold its strings ({cl_len}+{bid_len}+{en_len})")
    cmdline = bytes(payload[p:p + cl_len]).decode("utf-8", "replace")
    p += cl_len
    build_id = bytes(payload[p:p + bid_len]).decode("ascii", "replace")
    p += bid_len
    enabled = np.frombuffer(payload, np.uint8, en_len, p).copy()
    if not 1 <= ncpus <= layout.MAX_CPUS:
        raise StreamError(f"meta frame says {ncpus} CPUs (expected 1..{layout.MAX_CPUS})")
    # The recorder dates the trace from these: a guest up for centuries is a damaged frame.
    up = (tsc_start - tsc_boot) / tsc_hz if tsc_hz else 0.0
    if abs(up) > MAX_UPTIME_S:
        raise StreamError(f"meta frame's clock is not plausible: tsc_start {tsc_start}, tsc_boot {tsc_boot} at "
                          f"{tsc_hz} Hz is {up:.3g} s of uptime (at most {MAX_UPTIME_S:.0f})")
    return Meta(version, ncpus, tsc_hz, tsc_boot, tp_max, slot_size, ring_slots, period, tsc_start,
                [int(x) for x in offs[:ncpus]], cmdline, build_id, enabled)


def parse_threads(payload: memoryview | bytes) -> dict[int, str]:
    if len(payload) % layout.THREAD_ENTRY_DTYPE.itemsize:
        raise StreamError(f"threads frame of {len(payload)} bytes is not a whole number of thread entries")
    tab = np.frombuffer(payload, layout.THREAD_ENTRY_DTYPE)
    return {int(t): n.decode("utf-8", "replace") for t, n in zip(tab["tid"], tab["name"]) if t}


def parse_ack(payload: memoryview | bytes) -> Ack:
    if len(payload) < ACK_PAYLOAD.size:
        raise StreamError(f"ack frame of {len(payload)} bytes, expected at least {ACK_PAYLOAD.size}")
    i, result, tsc = ACK_PAYLOAD.unpack_from(payload, 0)
    msg = bytes(payload[ACK_PAYLOAD.size:]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return Ack(i, result, tsc, msg)


@dataclass
class CpuStats:
    """Per-CPU totals of what the stream carried."""

    frames: int = 0
    slots: int = 0
    records: int = 0
    lost: int = 0  # the ring's lost counter in the latest frame
    next_seq: int | None = None


@dataclass
class StreamParser:
    """Incremental frame parser over its own receive buffer."""

    sink: StreamSink
    capacity: int = 16 << 20
    offset: int = 0  # stream bytes consumed by complete frames
    meta: Meta | None = None
    ended: End | None = None
    cpus: dict[int, CpuStats] = field(default_factory=dict)
    frames: int = 0

    def __post_init__(self) -> None:
        self._buf = np.empty(self.capacity, np.uint8)
        self._start = 0  # first unparsed byte
        self._fill = 0  # end of received bytes

    # ------------------------------------------------------------ input

    def free_space(self, want: int = 1 << 20) -> memoryview:
        """Where the next bytes should be received (at least `want` bytes, or what the
        pending frame needs); call :meth:`commit` with the count received."""
        need = max(want, self._pending_need())
        if self._fill + need > len(self._buf):
            self._compact(need)
        return memoryview(self._buf)[self._fill:]

    def commit(self, n: int) -> None:
        """`n` bytes were received into :meth:`free_space`: parse every complete frame."""
        self._fill += n
        self._parse()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Copy `data` in and parse (for tests and transports that cannot receive in place)."""
        mv = memoryview(data).cast("B")
        while len(mv):
            room = self.free_space(len(mv))
            k = min(len(room), len(mv))
            room[:k] = mv[:k]
            mv = mv[k:]
            self.commit(k)

    @property
    def pending(self) -> int:
        """Received bytes not yet part of a complete frame."""
        return self._fill - self._start

    def close(self) -> None:
        """At the end of the stream: complain about a partial frame left over."""
        if self.pending:
            raise StreamError(f"stream ends inside a frame at byte {self.offset} ({self.pending} bytes of it received)")

    # ------------------------------------------------------------ internals

    def _pending_need(self) -> int:
        """Bytes the frame starting at _start needs in total (32 while its header is incomplete)."""
        if self._fill - self._start < FRAME.size:
            return FRAME.size
        return self._frame_bytes(self._start)[0]

    def _compact(self, need: int) -> None:
        rest = self._fill - self._start
        if rest + need > len(self._buf):
            grown = np.empty(max(2 * len(self._buf), rest + need), np.uint8)
            grown[:rest] = self._buf[self._start:self._fill]
            self._buf = grown
        elif rest:
            self._buf[:rest] = self._buf[self._start:self._fill].copy()
        self._start, self._fill = 0, rest

    def _frame_bytes(self, pos: int) -> tuple[int, tuple]:
        """Total size of the frame whose header is at buffer position pos, and the header."""
        h = FRAME.unpack_from(self._buf, pos)
        magic, typ, flags, cpu, count, reserved, seq, lost = h
        where = self.offset + (pos - self._start)
        if magic != FRAME_MAGIC:
            raise StreamError(f"stream desynchronised at byte {where}: expected a frame header (magic "
                              f"{FRAME_MAGIC:#010x}), found {bytes(self._buf[pos:pos + 8]).hex()}")
        if typ not in TYPE_NAMES or flags or reserved:
            raise StreamError(f"stream desynchronised at byte {where}: frame type {typ}, flags {flags}, "
                              f"reserved {reserved} (known types {sorted(TYPE_NAMES)}, flags and reserved 0)")
        payload = count * layout.SLOT_SIZE if typ == DATA else -(-count // _ALIGN) * _ALIGN
        total = FRAME.size + payload
        if total > MAX_FRAME_BYTES:
            raise StreamError(f"stream desynchronised at byte {where}: a {TYPE_NAMES[typ]} frame of {total} bytes "
                              f"(limit {MAX_FRAME_BYTES})")
        return total, h

    def _parse(self) -> None:
        buf = self._buf
        while self._fill - self._start >= FRAME.size:
            total, (_m, typ, _f, cpu, count, _r, seq, lost) = self._frame_bytes(self._start)
            if self._fill - self._start < total:
                break
            body = memoryview(buf)[self._start + FRAME.size:self._start + total]
            self._dispatch(typ, cpu, count, seq, lost, body)
            self._start += total
            self.offset += total
            self.frames += 1
        if self._start == self._fill:
            self._start = self._fill = 0

    def _dispatch(self, typ: int, cpu: int, count: int, seq: int, lost: int, body: memoryview) -> None:
        where = self.offset
        if self.meta is None and typ != META:
            raise StreamError(f"stream starts with a {TYPE_NAMES[typ]} frame at byte {where}; the first frame "
                              "must be the meta frame (a stream from an older kernel, or desynchronised)")
        if self.ended is not None:
            raise StreamError(f"{TYPE_NAMES[typ]} frame at byte {where} after the end frame")
        if typ == META:
            if self.meta is not None:
                raise StreamError(f"a second meta frame at byte {where}")
            meta = parse_meta(body[:count])
            if meta.version != PROTOCOL_VERSION:
                raise StreamError(f"stream protocol version {meta.version}; this osvtrace reads {PROTOCOL_VERSION}")
            if meta.slot_size != layout.SLOT_SIZE:
                raise StreamError(f"slot size {meta.slot_size} in the meta frame, expected {layout.SLOT_SIZE}")
            self.meta = meta
            self.sink.on_meta(meta)
        elif typ == DATA:
            assert self.meta is not None
            if cpu >= self.meta.ncpus:
                raise StreamError(f"data frame at byte {where} for CPU {cpu}, but the guest has {self.meta.ncpus}")
            if seq + count > MAX_SEQ or lost > MAX_SEQ:
                raise StreamError(f"data frame at byte {where}: CPU {cpu} slot {seq}, lost {lost}: counters no ring "
                                  f"reaches (desynchronised stream)")
            st = self.cpus.setdefault(cpu, CpuStats())
            if st.next_seq is not None and seq != st.next_seq:
                raise StreamError(f"data frame at byte {where}: CPU {cpu} continues at slot {seq}, expected "
                                  f"{st.next_seq} (desynchronised stream)")
            records = count_records(body) if count else 0
            st.frames += 1
            st.slots += count
            st.records += records
            st.lost = max(st.lost, lost)
            st.next_seq = seq + count
            self.sink.on_data(cpu, seq, lost, body, records)
        elif typ == THREADS:
            self.sink.on_threads(parse_threads(body[:count]))
        elif typ == ACK:
            self.sink.on_ack(parse_ack(body[:count]))
        elif typ == END:
            if count < END_PAYLOAD.size:
                raise StreamError(f"end frame at byte {where} has {count} bytes, expected {END_PAYLOAD.size}")
            self.ended = End(*END_PAYLOAD.unpack_from(body, 0))
            self.sink.on_end(self.ended)

    # ------------------------------------------------------------ totals

    @property
    def records(self) -> int:
        return sum(c.records for c in self.cpus.values())

    @property
    def lost(self) -> int:
        return sum(c.lost for c in self.cpus.values())


def encode_frame(typ: int, payload: bytes = b"", *, cpu: int = 0, count: int | None = None, seq: int = 0,
                 lost: int = 0) -> bytes:
    """One frame as the kernel writes it (for tests and tools that fake a guest)."""
    if count is None:
        count = len(payload) // layout.SLOT_SIZE if typ == DATA else len(payload)
    pad = -len(payload) % _ALIGN
    return FRAME.pack(FRAME_MAGIC, typ, 0, cpu, count, 0, seq, lost) + payload + bytes(pad)


def encode_meta(*, ncpus: int, tsc_hz: int, tsc_boot: int = 0, tp_max: int = 0, ring_slots: int = 0,
                cmdline: str = "", build_id: str = "", enabled: bytes = b"", period_us: int = 5000,
                tsc_start: int = 0, tsc_offset: list[int] | None = None) -> bytes:
    cl, bid = cmdline.encode(), build_id.encode()
    offs = list(tsc_offset or []) + [0] * (layout.MAX_CPUS - len(tsc_offset or []))
    head = META_HEAD.pack(PROTOCOL_VERSION, ncpus, tsc_hz, tsc_boot, tp_max, layout.SLOT_SIZE, ring_slots,
                          len(cl), len(bid), len(enabled), period_us, tsc_start)
    return encode_frame(META, head + struct.pack(f"<{layout.MAX_CPUS}q", *offs) + cl + bid + enabled)
