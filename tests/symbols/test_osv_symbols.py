"""Real OSv: the backtraces of the committed gdb tracefile (tests/fixtures/osv/, made from the
same pinned OSv source the tests build) named from the built loader.elf's DWARF, against the
.symbols side file OSv's loader.py wrote for them."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict

import numpy as np
import pytest

import osvtrace
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


def addr2line(elf, addrs: list[int]) -> list[tuple[str, int]]:
    out = subprocess.run(["addr2line", "-e", str(elf), *[hex(a) for a in addrs]], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    res = []
    for loc in out:
        file, _, line = loc.split(" (discriminator")[0].rpartition(":")
        res.append((os.path.normpath(file) if file != "??" else "", int(line) if line.isdigit() else 0))
    return res


def last_name(n: str) -> str:
    return n.split("(")[0].rsplit("::", 1)[-1]


def symbols_file(tracefile) -> dict[int, tuple[str, str, str]]:
    """The .symbols side file: address (one before the return address) -> (file, line, function),
    for the addresses gdb could name."""
    raw = {}
    for line in tracefile.with_name(tracefile.name + ".symbols").read_text().splitlines():
        a, f, ln, fn = line.split(maxsplit=3)
        if not fn.startswith("No symbol matches"):
            raw[int(a, 16)] = (f, ln, fn)
    return raw


def backtrace_addresses(trace, raw: dict) -> np.ndarray:
    """The distinct return addresses of the trace's backtraces that the .symbols file names
    (the rest are what OSv's unwinder read past the end of a stack: 1, 2, 3 ...)."""
    fr = trace.backtraces(np.arange(len(trace.events)))
    ret = np.unique(fr[fr != 0])
    return ret[np.isin(ret - np.uint64(1), np.array(sorted(raw), np.uint64))]


def test_loader_elf_names_the_backtraces_as_the_symbols_file_does(loader, tracefile):
    trace = osvtrace.open(tracefile)
    raw = symbols_file(tracefile)
    ret = backtrace_addresses(trace, raw)
    assert len(ret) > 500
    at = ret - np.uint64(1)
    syms = load(loader)
    names = syms.functions(at)
    files, lines = syms.lines(at)
    in_kernel = names != ""
    assert in_kernel.sum() > 100, "loader.elf should name most frames"
    # functions as gdb named them for loader.py; file:line as addr2line has them (gdb prefers the
    # is_stmt row of an address, addr2line and we take the last row at or before it)
    # Where the text differs, gdb's name must be one nm -C gives the function we found (aliases
    # at one address: open and open64; spellings: libstdc++'s demangler says std::ostream where
    # binutils' and ours say std::ostream where gdb says std::basic_ostream<char, ...>; gdb drops
    # the .0 of fdrop.part.0)
    starts = syms.t.fn_lo[syms.function_index(at)]
    aliases = defaultdict(set)
    for line in subprocess.run(["nm", "-C", "--defined-only", str(loader)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            aliases[int(parts[0], 16)].add(parts[2])
    wrong = [(hex(a), n, raw[a][2]) for a, n, st in zip(at[in_kernel].tolist(), names[in_kernel],
                                                        starts[in_kernel].tolist())
             if n != raw[a][2] and raw[a][2] not in {re.sub(r"\.\d+$", "", x) for x in aliases[st]}
             and not (n in aliases[st] and last_name(n) == last_name(raw[a][2]))]
    assert not wrong, f"{len(wrong)} of {int(in_kernel.sum())} functions differ from .symbols, first {wrong[:3]}"
    a2l = addr2line(loader, at[in_kernel].tolist())
    got = [(os.path.normpath(f), int(n)) for f, n in zip(files[in_kernel], lines[in_kernel])]
    wrong = [(hex(a), g, w) for a, g, w in zip(at[in_kernel].tolist(), got, a2l) if g != w]
    assert len(wrong) <= len(got) // 50, f"{len(wrong)} of {len(got)} differ from addr2line, first {wrong[:3]}"
    # what loader.elf cannot name is what OSv loaded beside it (the app, the REST server's
    # modules): above the kernel's code
    outside = at[~in_kernel]
    assert len(outside) and (outside > syms.t.fn_hi.max()).all()
    assert "mutexnet.c" in {raw[a][0] for a in outside.tolist()}


def test_loader_elf_is_cached_by_its_content_having_no_build_id(loader):
    from osvtrace.symbols import cache

    key, bid = cache.key_of(loader)
    assert bid == "" and key.startswith("content-")
    assert list(cache.cache_dir().glob(f"{key}.*.npz")), "the tables of loader.elf are in the cache"


def test_for_trace_with_loader_elf_names_the_app_from_the_trace(loader, tracefile):
    trace = osvtrace.open(tracefile)
    s = for_trace(trace, elf=loader)
    assert isinstance(s, ElfNames) and isinstance(s.fallback, TraceNames)
    ret = backtrace_addresses(trace, symbols_file(tracefile))
    names = s.functions(ret - np.uint64(1))
    assert (names != "").all(), "every frame is named: the kernel's by loader.elf, the app's by .symbols"
    own = for_trace(trace)  # no ELF: the trace's own names, the same interface
    assert isinstance(own, TraceNames)
    app = ret[s.elf.functions(ret - np.uint64(1)) == ""]
    assert [n.split(" (")[0] for n in own.functions(app - np.uint64(1))] == [n.split(" (")[0] for n in names[np.isin(ret, app)]]
