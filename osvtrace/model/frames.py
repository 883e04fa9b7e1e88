"""Names of code addresses: the one place stacks get their names.

Today a name comes from the trace itself (Trace.symbol: a tracefile's FILE.symbols, a dump's
SYMB chunks); a DWARF symbolizer replaces `_lookup` here and every report, export and table
of stacks follows. Names are looked up once per distinct address and kept per trace.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

import numpy as np

from osvtrace.format.trace import Trace

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
    if not s:
        return f"{addr:#x}", ""
    m = _WHERE.match(s)
    return (m[1], m[2]) if m else (s, "")


def frame_names(trace: Trace, addrs: np.ndarray) -> FrameNames:
    """The names of the distinct addresses among addrs."""
    uniq = np.unique(np.asarray(addrs, np.uint64))
    known = _cache.setdefault(trace, {})
    fn = np.empty(len(uniq), object)
    src = np.empty(len(uniq), object)
    for i, a in enumerate(uniq.tolist()):
        hit = known.get(a)
        if hit is None:
            hit = known[a] = _lookup(trace, a)
        fn[i], src[i] = hit
    return FrameNames(uniq, fn, src)
