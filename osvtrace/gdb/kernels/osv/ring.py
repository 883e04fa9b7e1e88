"""OSv's trace ring bytes, walked (plain Python: no gdb here, so it is tested on its own).

A trace_buf is `_size` bytes of 4 KiB pages; `_last` counts every byte ever reserved. A
record never crosses a page: a tracepoint word of 0 pads to the next page, and the word
-1 marks the record being written (trace_buf::allocate_trace_record writes it before
moving `_last`), which ends that CPU's data. After a wrap the oldest data is the page
after the one being written. The record header's offsets come from trace_record's DWARF
(RecordLayout, filled by the gdb side); arguments follow OSv's serializer: each at
min(size, 8) alignment, 'p' a 50-byte pascal string, '*' a u16-length blob.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from osvtrace.gdb.fmt import clean_text

END_MARKER = (1 << 64) - 1  # trace_buf::invalid_trace_point
SIG_CHARS = {"c": "c", "b": "b", "B": "B", "h": "h", "H": "H", "i": "i", "I": "I", "q": "q", "Q": "Q", "?": "?",
             "f": "f", "d": "d", "P": "Q"}
PASCAL = 50  # object_serializer<const char*>::max_len


@dataclass(frozen=True)
class RecordLayout:
    """trace_record's layout (from debug info) and the ring's constants."""

    size: int  # sizeof(trace_record): the arguments (or the backtrace) start there
    tp: int
    thread: int
    name: int
    name_size: int
    time: int
    cpu: int
    flags: int  # byte holding the `backtrace` bit
    flags_bit: int
    backtrace_len: int = 10
    page: int = 4096


@dataclass
class Raw:
    """One record: tracepoint key (its tracepoint_base*), thread*, thread name, time (ns),
    CPU, arguments, and its backtrace (return addresses, innermost first, up to the first 0)
    when OSv ran with --trace-backtrace."""

    key: int
    thread: int
    thread_name: str
    time: int
    cpu: int
    args: tuple
    backtrace: tuple[int, ...] = ()


def oldest_first(raw: bytes, last: int, page: int) -> bytes:
    """The ring's bytes in write order (`last` is trace_buf::_last)."""
    size = len(raw)
    if last < size:
        return raw[:last]
    cut = last % size
    pivot = min((cut + page - 1) & ~(page - 1), size)
    # The rest of the page being written still holds the previous lap: left out.
    return raw[pivot:] + raw[:cut]


def payload(sig: str, buf: bytes, off: int) -> tuple[tuple, int]:
    """The arguments of signature `sig` at buf[off:], and the offset after them."""
    vals: list[object] = []
    for ch in sig:
        if ch == "p":
            n = buf[off]
            if n >= PASCAL:
                raise ValueError(f"pascal string of {n} bytes (at most {PASCAL - 1})")
            vals.append(buf[off + 1:off + 1 + n].decode("utf-8", "replace"))
            off += PASCAL
        elif ch == "*":
            off = (off + 1) & ~1
            (n,) = struct.unpack_from("<H", buf, off)
            vals.append(bytes(buf[off + 2:off + 2 + n]))
            off += 2 + n
        else:
            code = SIG_CHARS.get(ch)
            if code is None:
                raise ValueError(f"unknown signature character {ch!r}")
            size = struct.calcsize(code)
            off = (off + min(size, 8) - 1) & ~(min(size, 8) - 1)
            vals.append(struct.unpack_from("<" + code, buf, off)[0])
            off += size
    if off > len(buf):
        raise ValueError("arguments run past the data")
    return tuple(vals), off


def walk(data: bytes, lay: RecordLayout, signature: Callable[[int], str]) -> tuple[list[Raw], str]:
    """The records of `data` (oldest_first's bytes), and why the walk stopped early, if it
    did. `signature(key)` gives a tracepoint's argument signature (it may raise ValueError
    for a key that names no tracepoint)."""
    out: list[Raw] = []
    pos, n, page = 0, len(data), lay.page
    while pos + 8 <= n:
        (key,) = struct.unpack_from("<Q", data, pos)
        if key == 0:  # padding up to the end of a page
            pos = (pos + page) & ~(page - 1)
            continue
        if key == END_MARKER:
            return out, "a record is being written (tracepoint word -1): this CPU's data ends there"
        if pos + lay.size > n:
            return out, f"a record header is cut at offset {pos}"
        try:
            sig = signature(key)
            bt = (data[pos + lay.flags] >> lay.flags_bit) & 1
            args, end = payload(sig, data, pos + lay.size + (8 * lay.backtrace_len if bt else 0))
        except (ValueError, struct.error, IndexError) as e:
            return out, f"record at offset {pos} unreadable ({e}): stopped there"
        if (end - 1) // page != pos // page:
            return out, f"record at offset {pos} crosses a page (damaged, or not an OSv trace buffer)"
        word = lambda o, size=8: int.from_bytes(data[pos + o:pos + o + size], "little")  # noqa: E731
        frames: tuple[int, ...] = ()
        if bt:
            words = struct.unpack_from(f"<{lay.backtrace_len}Q", data, pos + lay.size)
            frames = words[:words.index(0)] if 0 in words else words
        out.append(Raw(key, word(lay.thread), clean_text(data[pos + lay.name:pos + lay.name + lay.name_size]),
                       word(lay.time), word(lay.cpu, 4), args, frames))
        pos = (end + 7) & ~7
    return out, ""
