"""The kernel's bounded frame-pointer walk and stack-trailer writer (kernel/include/trace/stack.hh),
run natively against crafted broken stacks and a real call chain, read back by the decoder."""

from __future__ import annotations

import struct
import subprocess

import pytest

import osvtrace
from osvtrace.catalog import layout
from osvtrace.catalog.schema import default_catalog
from osvtrace.format.osvt import TraceWriter, new_metadata
from tests.support.native import NATIVE, build


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    out = tmp_path_factory.mktemp("native") / "stack_walk"
    # frame pointers, as the kernel is built; sanitizers check the walk reads nothing it should not
    return build(NATIVE / "stack_walk.cc", out, "-DTRACE_FAKE_CLOCK", "-fno-omit-frame-pointer",
                 "-mno-omit-leaf-frame-pointer", sanitize=True)


def test_the_walk_stops_safely_and_says_why_on_every_kind_of_bad_frame(walker):
    r = subprocess.run([str(walker), "cases"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = {}
    for line in r.stdout.splitlines():
        name, depth, end, *frames = line.split()
        got[name] = (int(depth), int(end), [int(f, 16) for f in frames])
    chain = [0x1000 + i for i in range(0, 40, 2)]
    assert got["complete"] == (5, layout.STACK_COMPLETE, chain[15:])
    assert got["cut"] == (16, layout.STACK_CUT, chain[:16])
    assert got["cut_at_3"] == (3, layout.STACK_CUT, chain[:3])
    assert got["loop"] == (3, layout.STACK_LOOP, [0x1000, 0x1002, 0x2004])
    assert got["self"] == (2, layout.STACK_LOOP, [0x1000, 0x3002])
    assert got["misaligned"] == (2, layout.STACK_BAD_FRAME, [0x1000, 0x4002])
    assert got["outside"] == (2, layout.STACK_BAD_FRAME, [0x1000, 0x5002])
    assert got["null"] == (0, layout.STACK_COMPLETE, [])
    assert got["top"] == (0, layout.STACK_BAD_FRAME, [])


def test_the_writer_s_trailer_decodes_to_the_call_chain_innermost_first(walker, tmp_path):
    dump = tmp_path / "ring.bin"
    r = subprocess.run([str(walker), "emit", str(dump)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    fields = r.stdout.split()
    fn = {fields[i]: int(fields[i + 1], 16) for i in range(0, len(fields), 2)}
    data = dump.read_bytes()
    cpu, n, first, lost = struct.unpack_from("<IIQQ", data, 0)
    path = tmp_path / "t.osvt"
    with TraceWriter(path, new_metadata(default_catalog(), ncpus=1, tsc_hz=1_000_000_000, capture="native")) as w:
        w.write_chunk(cpu, first, data[24:24 + n * 32], lost)
    t = osvtrace.open(path)
    idx, a = t.args("mutex_lock_wait")
    assert a["mutex"].tolist() == [0x1002, 0x2000] and t.loss[0].invalid_slots == 0
    bt, ends = t.backtraces(idx), t.backtrace_ends(idx)
    # the stacked record: its trailer's slots, then the plain one: exactly one slot
    assert n == 1 + layout.stack_slots(int((bt[0] != 0).sum())) + 1
    assert ends[1] == layout.STACK_NONE and (bt[1] == 0).all()
    assert ends[0] in (layout.STACK_COMPLETE, layout.STACK_BAD_FRAME, layout.STACK_LOOP)
    # return addresses inside f3, f2, f1, in that order (their extents from the symbol table; the
    # program is position-independent: its load offset is f1's printed address minus its symbol's)
    ext = _extents(walker, ("stack_f1", "stack_f2", "stack_f3"))
    shift = fn["f1"] - ext["stack_f1"][0]
    owner = [next((k for k, (lo, hi) in ext.items() if lo < f - shift <= hi), None) for f in bt[0, :3].tolist()]
    assert owner == ["stack_f3", "stack_f2", "stack_f1"], [hex(f) for f in bt[0]]


def _extents(elf, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab")
        return {n: (s["st_value"], s["st_value"] + s["st_size"]) for n in names for s in sym.get_symbol_by_name(n)}
