"""OSv's trace ring walker (osvtrace/gdb/kernels/osv/ring.py) on hand-built buffers: records in
write order across pages and a wrap, the end marker of a record being written, and damage,
which end the walk with a sentence, never an exception. ring.py is plain Python inside the
gdb package, so the checks run in a real gdb (the package imports gdb's own module)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from tests.support.vm import ROOT

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")

CHECKS = r'''
import struct
from osvtrace.gdb.kernels.osv.ring import END_MARKER, RecordLayout, oldest_first, payload, walk

LAY = RecordLayout(size=48, tp=0, thread=8, name=16, name_size=16, time=32, cpu=40, flags=44, flags_bit=0)
SIGS = {0x1000: "Qi", 0x2000: "p", 0x3000: "BQ", 0x4000: "x"}


def rec(key, time, args=b"", thread=0xabc, name=b"worker", cpu=1, bt=False, frames=(0x40123, 0x40456)):
    hdr = struct.pack("<QQ16sQIB3x", key, thread, name, time, cpu, 1 if bt else 0)
    body = hdr + (struct.pack("<10Q", *frames, *[0] * (10 - len(frames))) if bt else b"") + args
    return body + b"\0" * (-len(body) % 8)


def ring(records, size=8192, start=0):
    buf = bytearray(size)
    pos = start
    for r in records:
        if pos // 4096 != (pos + len(r) - 1) // 4096:
            pos = (pos // 4096 + 1) * 4096
        buf[pos % size:pos % size + len(r)] = r
        pos += len(r)
    return bytes(buf), pos


def sig(k):
    if k not in SIGS:
        raise ValueError(f"no tracepoint {k:#x}")
    return SIGS[k]


# In order, across a page boundary (the page's tail is padding), with a backtrace and a string.
recs = [rec(0x1000, t, struct.pack("<Qi", t * 10, -t)) for t in range(1, 80)]
recs.insert(5, rec(0x2000, 1000, bytes([5]) + b"hello" + b"\0" * 44, bt=True))
raw, last = ring(recs)
got, problem = walk(oldest_first(raw, last, 4096), LAY, sig)
assert problem == "", problem
assert len(got) == 80, len(got)
assert got[5].args == ("hello",), got[5]
assert got[5].backtrace == (0x40123, 0x40456) and got[4].backtrace == (), got[5]  # up to the first 0
raw, last = ring([rec(0x1000, 1, struct.pack("<Qi", 1, 1), bt=True, frames=range(1, 11))])
assert walk(oldest_first(raw, last, 4096), LAY, sig)[0][0].backtrace == tuple(range(1, 11))  # all 10 kept
assert got[0].args == (10, -1) and got[0].thread_name == "worker" and got[0].cpu == 1, got[0]
assert [r.time for r in got if r.key == 0x1000] == list(range(1, 80))

# Wrapped: the ring holds the newest laps, oldest first, and the stale tail of the page
# being written is left out.
recs = [rec(0x1000, t, struct.pack("<Qi", t, t)) for t in range(1, 400)]
raw, last = ring(recs, size=8192)
assert last > 8192
got, problem = walk(oldest_first(raw, last, 4096), LAY, sig)
times = [r.time for r in got]
assert problem == "" and times == sorted(times) and times[-1] == 399, (problem, times[:5], times[-5:])
assert len(set(times)) == len(times)

# A record being written: its tracepoint word is -1, and the data ends there.
recs = [rec(0x1000, t, struct.pack("<Qi", t, t)) for t in range(1, 10)]
recs.insert(4, struct.pack("<Q", END_MARKER) + b"\0" * 56)
raw, last = ring(recs)
got, problem = walk(oldest_first(raw, last, 4096), LAY, sig)
assert [r.time for r in got] == [1, 2, 3, 4] and "being written" in problem, (got, problem)

# Damage: an unknown tracepoint, an unknown signature character, a cut header.
for bad in (rec(0x9999, 5), rec(0x4000, 5, b"\0" * 8)):
    raw, last = ring([rec(0x1000, 1, struct.pack("<Qi", 1, 1)), bad])
    got, problem = walk(oldest_first(raw, last, 4096), LAY, sig)
    assert len(got) == 1 and "unreadable" in problem, (got, problem)
got, problem = walk(rec(0x1000, 1, struct.pack("<Qi", 1, 1))[:30], LAY, sig)
assert got == [] and "cut" in problem, problem

# Arguments at min(size, 8) alignment.
assert payload("BQ", bytes([7]) + b"\0" * 7 + struct.pack("<Q", 99), 0) == ((7, 99), 16)
assert payload("Bh", bytes([7, 0]) + struct.pack("<h", -2), 0) == ((7, -2), 4)
print("RING CHECKS OK")
'''


def test_ring_walker_on_built_buffers(tmp_path):
    script = tmp_path / "checks.py"
    script.write_text(textwrap.dedent(CHECKS))
    out = subprocess.run(["gdb", "-batch", "-nx", "-x", str(ROOT / "gdb" / "osv.py"), "-x", str(script)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "RING CHECKS OK" in out.stdout, out.stdout + out.stderr
