"""Real OSv: the backtraces of the committed gdb tracefile (tests/fixtures/osv/, made from the
same pinned OSv source the tests build) named from the built loader.elf's DWARF, against the
.symbols side file OSv's loader.py wrote for them."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.format.osv_dump import read_symbols_file
from osvtrace.symbols import ElfNames, TraceNames, for_trace, load
from tests.support.osv import build
from tests.support.osv_traces import fixture

pytestmark = pytest.mark.osv


@pytest.fixture(scope="module")
def loader():
    return build() / "build" / "release" / "loader.elf"


@pytest.fixture(scope="module")
def tracefile(tmp_path_factory):
    return fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv"))


def backtrace_addresses(trace) -> np.ndarray:
    idx = np.arange(len(trace.events))
    fr = trace.backtraces(idx)
    return np.unique(fr[fr != 0])


def test_loader_elf_names_the_backtraces_as_the_symbols_file_does(loader, tracefile):
    trace = osvtrace.open(tracefile)
    exact, bad = read_symbols_file(tracefile.with_name(tracefile.name + ".symbols"))
    assert not bad
    # the .symbols file's lines: address (one before the return address), file, line, function
    raw = {}
    for line in tracefile.with_name(tracefile.name + ".symbols").read_text().splitlines():
        a, f, ln, fn = line.split(maxsplit=3)
        raw[int(a, 16)] = (f, ln, fn)
    ret = backtrace_addresses(trace)
    at = ret - np.uint64(1)
    syms = load(loader)
    names = syms.functions(at)
    files, lines = syms.lines(at)
    in_kernel = names != ""
    assert in_kernel.sum() > 100, "loader.elf should name most frames"
    wrong = []
    for a, n, f, ln in zip(at[in_kernel].tolist(), names[in_kernel], files[in_kernel], lines[in_kernel].tolist()):
        rf, rl, rfn = raw[a]
        if n != rfn or not f.endswith(rf) or str(ln) != rl:
            wrong.append((hex(a), (n, f, ln), raw[a]))
    assert not wrong, f"{len(wrong)} of {int(in_kernel.sum())} frames differ from .symbols, first {wrong[:3]}"
    # what loader.elf cannot name is the app (a PIE loaded at OSv's application base)
    outside = at[~in_kernel]
    assert len(outside) and {raw[a][0] for a in outside.tolist()} == {"mutexnet.c"}


def test_for_trace_with_loader_elf_names_the_app_from_the_trace(loader, tracefile):
    trace = osvtrace.open(tracefile)
    s = for_trace(trace, elf=loader)
    assert isinstance(s, ElfNames) and isinstance(s.fallback, TraceNames)
    ret = backtrace_addresses(trace)
    names = s.functions(ret - np.uint64(1))
    assert (names != "").all(), "every frame is named: the kernel's by loader.elf, the app's by .symbols"
    own = for_trace(trace)  # no ELF: the trace's own names, the same interface
    assert isinstance(own, TraceNames)
    app = ret[s.elf.functions(ret - np.uint64(1)) == ""]
    assert [n.split(" (")[0] for n in own.functions(app)] == [n.split(" (")[0] for n in names[np.isin(ret, app)]]
