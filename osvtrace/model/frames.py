"""Names of code addresses: the one place stacks get their names.

A name comes from the trace itself where it carries names (OSv: a tracefile's FILE.symbols, a
dump's SYMB chunks; kept so that trees equal OSv's trace.py; an OSv app's frames the dump does
not name, from the app's ELF at its load base: osvtrace.symbols.apps), else from the kernel ELF's
symbol table and DWARF line table (osvtrace.symbols, found by the trace's build id). Names are looked up
once per distinct address and kept per trace.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

import numpy as np

from osvtrace.errors import OsvtraceError
from osvtrace.format.base import Trace as BaseTrace
from osvtrace.format.trace import Trace
from osvtrace.symbols import ElfNames, for_trace
from osvtrace.symbols.apps import app_names
from osvtrace.symbols.symbolizer import gdb_no_symbol

# Trace.symbol writes "function (file:line)" or "function (file)" when it knows the source
_WHERE = re.compile(r"^(.*\S) \(([^()\s]+)\)$")


@dataclass
class FrameNames:
    """Names of distinct addresses (sorted), looked up with index()."""

    addr: np.ndarray  # uint64, sorted
    function: np.ndarray  # object: the function, or the address as 0x... when unknown
    source: np.ndarray  # object: file:line (or file), "" when unknown

    def index(self, addrs: np.ndarray) -> np.ndarray:
        """Positions of addrs (each must be one of self.addr)."""
        return np.searchsorted(self.addr, np.asarray(addrs, np.uint64))


_cache: "weakref.WeakKeyDictionary[Trace, dict[int, tuple[str, str]]]" = weakref.WeakKeyDictionary()


def _lookup(trace: Trace, addr: int) -> tuple[str, str]:
    """(function, source) of one return address."""
    s = trace.symbol(addr)
    if not s or gdb_no_symbol(s):
        return f"{addr:#x}", ""
    m = _WHERE.match(s)
    return (m[1], m[2]) if m else (s, "")


_elf: "weakref.WeakKeyDictionary[Trace, ElfNames | None]" = weakref.WeakKeyDictionary()


def _elf_names(trace: Trace) -> ElfNames | None:
    """The kernel ELF's names for a trace that carries none of its own (our kernel's)."""
    if type(trace).symbol is not BaseTrace.symbol:
        return None  # the file names its frames (OSv)
    if trace not in _elf:
        try:
            sym = for_trace(trace)
        except OsvtraceError:
            sym = None  # an ELF of another build: addresses, as without one
        _elf[trace] = sym if isinstance(sym, ElfNames) else None
    return _elf[trace]


def _elf_lookup(sym: ElfNames, addrs: np.ndarray) -> list[tuple[str, str]]:
    """(function, file:line) of return addresses, all at once (looked up at the call, addr - 1)."""
    at = addrs - np.uint64(1)
    fn = sym.functions(at)
    files, lines = sym.elf.lines(at)
    return [(f or f"{a:#x}", f"{fl}:{ln}" if fl else "")
            for a, f, fl, ln in zip(addrs.tolist(), fn.tolist(), files.tolist(), lines.tolist())]


def _trace_lookup(trace: Trace, addrs: np.ndarray) -> list[tuple[str, str]]:
    """(function, source) of return addresses from the trace's own names; an OSv dump's
    frames in an app it does not name, from the app's ELF at its load base (symbols.apps)."""
    got = [_lookup(trace, a) for a in addrs.tolist()]
    unnamed = np.array([not s and f.startswith("0x") for f, s in got], bool)
    apps = app_names(trace) if unnamed.any() else None
    if apps is not None:
        rows = np.flatnonzero(unnamed)
        fn, src = apps.lookup(addrs[rows])
        for i, f, s in zip(rows.tolist(), fn.tolist(), src.tolist()):
            if f:
                got[i] = (f, s)
    return got


def frame_names(trace: Trace, addrs: np.ndarray) -> FrameNames:
    """The names of the distinct addresses among addrs."""
    uniq = np.unique(np.asarray(addrs, np.uint64))
    known = _cache.setdefault(trace, {})
    new = np.array([a for a in uniq.tolist() if a not in known], np.uint64)
    sym = _elf_names(trace) if len(new) else None
    if sym is not None:
        known.update(zip(new.tolist(), _elf_lookup(sym, new)))
    elif len(new):
        known.update(zip(new.tolist(), _trace_lookup(trace, new)))
    fn = np.empty(len(uniq), object)
    src = np.empty(len(uniq), object)
    for i, a in enumerate(uniq.tolist()):
        hit = known.get(a)
        if hit is None:
            hit = known[a] = _lookup(trace, a)
        fn[i], src[i] = hit
    return FrameNames(uniq, fn, src)
