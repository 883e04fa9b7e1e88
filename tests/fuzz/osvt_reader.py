"""Fuzz the .osvt reader (`osvtrace.open`: section scan, decode, arguments, threads).

The first input byte picks a mode: bit 0 re-seals every checksum after the mutation, so
the fuzzer also reaches what lies behind them (schema, chunk headers, record framing), as a
writer bug would; bit 1 also builds the model and a report over what was decoded.

Properties: any input either opens or raises OsvtraceError with one line naming the file;
an opened trace is time-ordered, every argument of every record is readable, and every
slot of every accepted chunk is in a decoded record or counted (partial, invalid, duplicate).

    python -m tests.fuzz.harness osvt [libFuzzer options] [corpus dir]
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from osvtrace.catalog import layout
from osvtrace.errors import OsvtraceError
from osvtrace.format import osvt

# On tmpfs when there is one: opening a file on the overlay /tmp costs more than decoding it.
# tests.fuzz.run points OSVTRACE_FUZZ_TMP at a directory it removes after each round.
TMP = os.environ.get("OSVTRACE_FUZZ_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
PATH = Path(TMP) / f"osvtrace-fuzz-{os.getpid()}.osvt"


def reseal(data: bytes) -> bytes:
    """The same bytes with the file header CRC and every section's checksums recomputed
    (sections found by walking the framing, as the reader does)."""
    buf = bytearray(data)
    if len(buf) >= osvt.ALIGN:
        buf[28:32] = struct.pack("<I", osvt._crc(bytes(buf[:28])))
    pos = osvt.ALIGN
    while pos + osvt.ALIGN <= len(buf):
        if buf[pos:pos + 4] != osvt.SYNC_BYTES:
            pos += osvt.ALIGN
            continue
        blen = struct.unpack_from("<Q", buf, pos + 8)[0]
        end = pos + osvt.ALIGN + blen
        if end <= len(buf):
            struct.pack_into("<Q", buf, pos + 16, osvt._hash(bytes(buf[pos + osvt.ALIGN:end])))
        struct.pack_into("<I", buf, pos + 28, osvt._crc(bytes(buf[pos:pos + 28])))
        pos = end if end <= len(buf) and blen % osvt.ALIGN == 0 else pos + osvt.ALIGN
    return bytes(buf)


def check_one_line(e: OsvtraceError, name: str) -> None:
    msg = str(e)
    assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
    assert name in msg, f"error message does not name the file: {msg!r}"


def check_trace(path: Path, *, model: bool = False) -> None:
    """Open `path` and use all of it; raises AssertionError when a property fails."""
    import osvtrace

    try:
        t = osvtrace.open(path, workers=1)
    except OsvtraceError as e:
        check_one_line(e, str(path))
        return
    with t:
        for w in t.warnings:
            assert isinstance(w, str) and "\n" not in w, w
        ev = t.events
        assert (np.diff(ev.time) >= 0).all(), "events out of time order"
        # every slot of an accepted chunk is a record's, or counted once
        got: dict[int, int] = {}
        nslots = t.catalog.nslots_table()
        for cpu in np.unique(ev.cpu).tolist():
            got[cpu] = int(nslots[ev.tp[ev.cpu == cpu]].astype(np.int64).sum())
        for cpu, loss in t.loss.items():
            written = sum(c.nslots for c in t.scan.chunks if c.cpu == cpu)
            counted = got.get(cpu, 0) + loss.partial_slots + loss.invalid_slots + loss.duplicate_slots
            assert counted == written, f"cpu {cpu}: {counted} slots decoded or counted, {written} in the chunks"
            assert min(loss.dropped, loss.gap_slots, loss.overwritten_slots) >= 0
        t.seq  # noqa: B018
        t.threads  # noqa: B018
        for tp_id in np.unique(ev.tp).tolist():
            tp = t.catalog.by_id[tp_id]
            idx = np.nonzero(ev.tp == tp_id)[0]
            t.args_at(tp, idx[:64])
        for i in list(range(min(len(t), 4))) + list(range(max(4, len(t) - 4), len(t))):
            assert isinstance(t.format_event(i), str)
        if model and len(t):
            from osvtrace.model import Model
            from osvtrace.model.filters import Filter
            from osvtrace.reports import REGISTRY
            from osvtrace.reports.common import Options

            m = Model(t)
            for name in ("sched", "mutex"):
                REGISTRY[name].fn(m, Filter(), Options())


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    if mode & 1:
        body = reseal(body)
    PATH.write_bytes(body)
    check_trace(PATH, model=bool(mode & 2))


def prepare() -> None:
    """Import what check_trace uses lazily (under the harness' instrumentation)."""
    import osvtrace.format.trace  # noqa: F401
    import osvtrace.model  # noqa: F401
    import osvtrace.reports  # noqa: F401
