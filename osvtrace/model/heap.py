"""Heap objects named by where they were allocated.

A mutex inside a heap block has no symbol; when the trace recorded the block's allocation with
a backtrace (our kernel: `--tracebt memory_malloc`; OSv: `--trace-backtrace` with memory_malloc
traced), the block is named by its allocation site, the first frame of that stack outside the
allocator, and the address by its offset in the block: `heap kv_store::kv_store()+0x40`. The
same object then has the same name in two runs, whatever address the heap gave it, so reports
show it and `osvtrace diff` matches it across runs.
"""

from __future__ import annotations

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.frames import frame_names
from osvtrace.model.stacks import NO_STACK, Stacks
from osvtrace.model.table import Table

# Frames of the allocator itself (and of the tracepoint that recorded it): never the site.
ALLOCATOR = ("malloc", "calloc", "realloc", "operator new", "memory::", "mempool", "std::", "__gnu_cxx::",
             "trace", "tracepoint", "log", "_FUN", "operator()")


def _short(fn: str) -> str:
    """A function name without its parameter list (`ns::f(int, char**)` -> `ns::f`): the site
    is named to be read, and the address in the label says exactly where."""
    if not fn.endswith(")"):
        return fn
    depth = 0
    for i in range(len(fn) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(fn[i], 0)
        if depth == 0:
            return fn[:i] if i > 0 else fn
    return fn


class HeapNames:
    """The traced allocations that carry a stack, by address, for naming addresses inside them."""

    def __init__(self, trace: Trace, alloc: Table, stacks: Stacks):
        a = alloc
        ok = a["buf"] != 0
        sid = stacks.ids(a["event"][ok]) if ok.any() else np.empty(0, np.int32)
        has = sid != NO_STACK
        self.buf = a["buf"][ok][has]
        self.size = np.maximum(a["alloc_len"][ok][has], a["len"][ok][has])
        self.time = a["time"][ok][has]
        sites = self._sites(trace, stacks, sid[has])
        order = np.lexsort((self.time, self.buf))
        self.buf, self.size, self.time, self.site = self.buf[order], self.size[order], self.time[order], sites[order]

    @staticmethod
    def _sites(trace: Trace, stacks: Stacks, sid: np.ndarray) -> np.ndarray:
        """The allocation site of each stack: its first frame outside the allocator."""
        if not len(sid):
            return np.empty(0, object)
        u, inv = np.unique(sid, return_inverse=True)
        frames = stacks.frames[u]
        valid = frames != 0
        fn = frame_names(trace, frames[valid])
        names = np.full(frames.shape, "", object)
        names[valid] = fn.function[fn.index(frames[valid])]
        out = []
        for row in names.tolist():
            site = next((n for n in row if n and not str(n).startswith(ALLOCATOR) and "alloc" not in str(n)), "")
            out.append(_short(str(site)))
        return np.array(out, object)[inv]

    def names(self, addrs: np.ndarray) -> np.ndarray:
        """`heap SITE+0xOFF` for addresses inside a traced allocation with a stack (the latest
        such block at that address), '' elsewhere."""
        a = np.asarray(addrs, np.uint64).reshape(-1)
        out = np.full(len(a), "", object)
        if not len(self.buf) or not len(a):
            return out
        k = np.searchsorted(self.buf, a, side="right") - 1
        ok = k >= 0
        kk = np.maximum(k, 0)
        ok &= (a - self.buf[kk]).astype(np.int64) < self.size[kk]
        ok &= self.site[kk] != ""
        for i in np.flatnonzero(ok).tolist():
            off = int(a[i] - self.buf[kk[i]])
            out[i] = f"heap {self.site[kk[i]]}" + (f"+{off:#x}" if off else "")
        return out
