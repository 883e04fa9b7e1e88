"""Writers of OSv's trace files, for tests and benchmarks: an OSVT dump and a gdb
tracefile from records given in Python, laid out exactly as OSv writes them
(core/trace.cc's create_trace_dump, scripts/osv/trace.py's write)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from osvtrace.format.osv_records import PSTR, SIG, OsvTracepoint


@dataclass
class Rec:
    """One OSv trace record."""

    key: int
    thread: int
    name: str
    time: int
    cpu: int
    args: tuple = ()
    backtrace: list[int] = field(default_factory=list)  # return addresses (non-zero)


def pack_payload(sig: str, args: tuple, stale: int = 0) -> bytes:
    """Arguments packed as OSv packs them (alignment relative to the payload's start).
    `stale`: a byte to fill a pascal string's unused tail with (a ring leaves old data there)."""
    out = bytearray()
    for c, v in zip(sig, args, strict=True):
        code = SIG[c][0]
        if code == 255:
            out += b"\0" * (len(out) & 1)
            out += struct.pack("<H", len(v)) + bytes(v)
        elif code == PSTR:
            b = v.encode() if isinstance(v, str) else bytes(v)
            b = b[:PSTR - 1]
            out += bytes([len(b)]) + b + bytes([stale]) * (PSTR - 1 - len(b))
        else:
            out += b"\0" * (-len(out) % code)
            fmt = {"c": "B", "b": "b", "B": "B", "?": "?", "h": "h", "H": "H", "i": "i", "I": "I", "f": "f", "q": "q",
                   "Q": "Q", "d": "d", "P": "Q"}[c]
            out += struct.pack("<" + fmt, v)
    return bytes(out)


def _name16(name: str) -> bytes:
    return name.encode()[:16].ljust(16, b"\0")


def ring_record(tp: OsvTracepoint, r: Rec, bt_len: int, stale: int = 0) -> bytes:
    """One record as it sits in OSv's ring (and in a TRCS chunk): 8-aligned."""
    flags = 1 if r.backtrace else 0
    out = struct.pack("<QQ16sQII", r.key, r.thread, _name16(r.name), r.time, r.cpu, flags)
    if flags:
        bt = list(r.backtrace)[:bt_len]
        out += struct.pack(f"<{bt_len}Q", *(bt + [0] * (bt_len - len(bt))))
    out += pack_payload(tp.sig, r.args, stale)
    return out + b"\0" * (-len(out) % 8)


def _s(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<H", len(b)) + b


class _Out:
    def __init__(self):
        self.b = bytearray()

    def align(self, a: int) -> None:
        self.b += b"\0" * (-len(self.b) % a)

    def put(self, fmt: str, v) -> None:
        self.align(struct.calcsize(fmt))
        self.b += struct.pack("<" + fmt, v)

    def string(self, s: str) -> None:
        self.align(2)
        self.b += _s(s)

    def chunk(self, tag: str) -> int:
        self.align(8)
        self.b += tag.encode()[::-1]
        self.align(8)
        self.b += b"\0" * 8
        return len(self.b)

    def end(self, pos: int) -> None:
        struct.pack_into("<Q", self.b, pos - 8, len(self.b) - pos)


def dump(tps: list[OsvTracepoint], per_cpu: list[list[Rec]], *, bt_len: int = 10,
         symbols: list[tuple[str, int, int]] = (), stale: int = 0) -> bytes:
    """An OSVT dump: TRCD, an empty MODS, SYMB (name, address, size) and a TRCS per CPU."""
    by_key = {t.key: t for t in tps}
    o = _Out()
    top = o.chunk("OSVT")
    o.put("I", 1)
    o.put("I", 1)
    c = o.chunk("TRCD")
    o.put("I", bt_len)
    o.put("I", len(tps))
    for t in tps:
        o.put("Q", t.key)
        for s in (t.name, t.name, "OSv", t.format):
            o.string(s)
        o.put("I", len(t.sig))
        for n, ch in enumerate(t.sig):
            o.string(str(n))
            o.b += ch.encode()
    o.end(c)
    c = o.chunk("MODS")
    o.put("I", 0)
    o.end(c)
    if symbols:
        c = o.chunk("SYMB")
        o.put("I", len(symbols))
        for name, addr, size in symbols:
            o.string(name)
            o.put("Q", addr)
            o.put("Q", size)
            o.string("")
            o.put("I", 0)
        o.end(c)
    for recs in per_cpu:
        c = o.chunk("TRCS")
        o.align(8)
        for r in recs:
            o.b += ring_record(by_key[r.key], r, bt_len, stale)
        o.end(c)
    o.end(top)
    return bytes(o.b)


def tracefile(tps: list[OsvTracepoint], recs: list[Rec]) -> bytes:
    """A gdb tracefile (format B, version 3): records in the given order."""
    by_key = {t.key: t for t in tps}
    used = [t for t in tps if any(r.key == t.key for r in recs)] if recs else []
    out = bytearray(struct.pack("<iQ", 3, len(used)))
    for t in used:
        out += struct.pack("<Q", t.key) + _s(t.name) + _s(t.sig.replace("p", "50p")) + _s(t.format)
    for r in recs:
        out += struct.pack("<QQ16sQI", r.key, r.thread, _name16(r.name), r.time, r.cpu)
        for f in r.backtrace:
            out += struct.pack("<Q", f)
        out += struct.pack("<Q", 0)
        out += pack_payload(by_key[r.key].sig, r.args)
    return bytes(out)


def scale(raw: bytes, times: int) -> bytes:
    """A real OSv dump or tracefile made `times` times longer: its records repeated, each
    copy shifted in time past the one before (what a longer run of the same workload looks
    like to a decoder; benchmarks use it). Dumps repeat each CPU's TRCS contents in place;
    tracefiles repeat the record body."""
    from osvtrace.format.osv_dump import read_dump, read_tracefile, sniff
    from osvtrace.format.osv_records import Dictionary, walk

    dumped = sniff(raw[:64]) == "osv-dump"
    lay = read_dump(raw, "scale") if dumped else read_tracefile(raw, "scale")
    buf = np.frombuffer(raw, np.uint8)
    rec = walk(buf, lay.runs, Dictionary(lay.tps), tracefile=not dumped, bt_len=lay.bt_len)
    span = int(rec.time.max() - rec.time.min()) + 1 if len(rec.time) else 1
    out = bytearray()
    prev = 0
    for (s, e), (lo, hi) in zip(lay.runs, rec.runs):
        body = buf[s:e].copy()
        if dumped:  # the last record's padding is not in the chunk: put it back between copies
            body = np.concatenate([body, np.zeros(-len(body) % 8, np.uint8)])
        tpos = (rec.off[lo:hi] - s + 32)[:, None] + np.arange(8)
        base = body[tpos].copy().view("<u8").reshape(-1)
        copies = []
        for k in range(times):
            b = body.copy()
            b[tpos] = (base + np.uint64(k * span)).view(np.uint8).reshape(-1, 8)
            copies.append(b.tobytes())
        data = b"".join(copies)
        out += raw[prev:s]
        if dumped:
            struct.pack_into("<Q", out, len(out) - 8, len(data))  # the TRCS chunk's size
        out += data
        prev = e
    out += raw[prev:]
    if dumped:
        struct.pack_into("<Q", out, 8, len(out) - 16)
    return bytes(out)


def ring(tps: list[OsvTracepoint], recs: list[Rec], size: int, *, bt_len: int = 10, page: int = 4096,
         writing: bool = False) -> tuple[bytes, int]:
    """One CPU's trace buffer after OSv wrote `recs` into it (core/trace.cc
    allocate_trace_record: a record never crosses a trace page, a 0 tp pads the rest of
    the page, the ring wraps silently). Returns (buffer, _last). `writing`: the last record
    is still being written (its tp is ~0)."""
    by_key = {t.key: t for t in tps}
    buf = bytearray(size)
    last = 0
    for k, r in enumerate(recs):
        b = ring_record(by_key[r.key], r, bt_len)
        p, pn = last, last + len(b)
        if p // page != (pn - 1) // page:  # crossed a page boundary: pad, start on the next page
            buf[p % size:p % size + 8] = b"\0" * 8
            pn = (p + page - 1) // page * page + len(b)
        start = (pn - len(b)) % size
        buf[start:start + len(b)] = b
        if writing and k == len(recs) - 1:
            buf[start:start + 8] = b"\xff" * 8
        last = pn
    return bytes(buf), last
