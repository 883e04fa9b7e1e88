"""Addresses to names over an ELF's tables, a whole array at a time.

Every lookup first takes the distinct addresses, resolves those with np.searchsorted into the
sorted tables, and maps the answers back: a trace's millions of frames hold a few thousand
distinct return addresses, so the cost per frame is one hash-table pass (Arrow's
dictionary_encode: ~8 ns per address, where np.unique's sort took ~280) and one gather, and
no Python object is made per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osvtrace.symbols.objects import object_names
from osvtrace.symbols.tables import Tables

MAX_INLINE_DEPTH = 64  # a deeper chain would be a loop in damaged DWARF


@dataclass
class Frames:
    """Inline chains of many addresses as columns, one row per frame: ``index`` (which input
    address), ``depth`` (0: innermost, the code at the address; the last of an address's rows
    is the function the code was compiled into), ``function``, ``file``, ``line``, ``inlined``
    (the frame was inlined into the next one)."""

    index: np.ndarray
    depth: np.ndarray
    function: np.ndarray  # object: str
    file: np.ndarray  # object: str ('' unknown)
    line: np.ndarray  # int32 (0 unknown)
    inlined: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def of(self, i: int) -> list[tuple[str, str, int]]:
        """The frames of input address i, innermost first: (function, file, line). For printing."""
        rows = np.flatnonzero(self.index == i)
        return [(self.function[r], self.file[r], int(self.line[r])) for r in rows]


def factorize(addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct addresses in first-seen order, index of each address among them)."""
    import pyarrow as pa

    a = np.ascontiguousarray(np.asarray(addrs, np.uint64).reshape(-1))
    if not len(a):
        return a, np.empty(0, np.int32)
    d = pa.array(a).dictionary_encode()
    return d.dictionary.to_numpy(), d.indices.to_numpy(zero_copy_only=False)


def _find(lo: np.ndarray, hi: np.ndarray | None, addrs: np.ndarray) -> np.ndarray:
    """Row of the sorted range table [lo, hi) holding each address, -1 where none does."""
    i = np.searchsorted(lo, addrs, "right") - 1
    ok = i >= 0
    if hi is not None:
        ok[ok] &= addrs[ok] < hi[i[ok]]
    return np.where(ok, i, -1)


class ElfSymbols:
    """Names of code and data addresses of one ELF (its tables built or loaded from the cache)."""

    def __init__(self, tables: Tables, name: str = "", build_id: str = "", bias: int = 0) -> None:
        self.t = tables
        self.name = name  # the ELF's path, for messages
        self.build_id = build_id
        self.bias = bias  # added to the ELF's addresses where it was loaded (a PIE at a base)

    def _local(self, addrs: np.ndarray) -> np.ndarray:
        a = np.asarray(addrs, np.uint64)
        return a - np.uint64(self.bias) if self.bias else a

    # ------------------------------------------------------------ per address, unique-then-map

    def function_index(self, addrs: np.ndarray) -> np.ndarray:
        """Row of the function table holding each address (-1 none)."""
        u, inv = factorize(self._local(addrs))
        return _find(self.t.fn_lo, self.t.fn_hi, u)[inv]

    def _named(self, addrs: np.ndarray, column: np.ndarray) -> np.ndarray:
        u, inv = factorize(self._local(addrs))
        k = _find(self.t.fn_lo, self.t.fn_hi, u)
        names = self.t.strings[np.where(k >= 0, column[np.maximum(k, 0)], 0)] if len(column) \
            else np.full(len(u), "", object)
        return names[inv]

    def functions(self, addrs: np.ndarray) -> np.ndarray:
        """The function (symbol table, demangled) holding each code address; '' where none."""
        return self._named(addrs, self.t.fn_name)

    def symbols(self, addrs: np.ndarray) -> np.ndarray:
        """As `functions`, but the symbol as the symbol table has it (mangled: what `nm` prints)."""
        return self._named(addrs, self.t.fn_sym)

    def lines(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file, line) of the code at each address (the innermost inlined location, as
        addr2line without -i says it); ('', 0) where the line table has none."""
        u, inv = factorize(self._local(addrs))
        k = _find(self.t.ln_addr, None, u)
        ok = k >= 0
        ok[ok] &= self.t.ln_file[k[ok]] >= 0
        f = np.where(ok, self.t.ln_file[np.maximum(k, 0)], 0) if len(k) else np.zeros(0, np.int32)
        ln = np.where(ok, self.t.ln_line[np.maximum(k, 0)], 0) if len(k) else np.zeros(0, np.int32)
        return self.t.strings[f][inv], ln.astype(np.int32)[inv]

    def frames(self, addrs: np.ndarray) -> Frames:
        """The inline chain at each address, innermost first, ending in the function it was
        compiled into: what `addr2line -f -i` prints, for a whole array at once."""
        a = self._local(addrs)
        u, inv = factorize(a)
        t = self.t
        files, lines = self.lines(u + np.uint64(self.bias))
        entry = _find(t.seg_lo, None, u)
        entry = np.where(entry >= 0, t.seg_entry[np.maximum(entry, 0)], -1) if len(entry) else entry
        # walk up the chain, all addresses in step: frame d of address i is the d-th entry up
        # (named by the inlined function, at the location of the call one level in), then the
        # function itself at the last call site
        rows_u, rows_d, rows_fn, rows_file, rows_line, rows_inl = [], [], [], [], [], []
        cur, f, ln = entry, files, lines
        live = np.arange(len(u))
        for d in range(MAX_INLINE_DEPTH):
            e = cur[live]
            inl = e >= 0
            fn = np.empty(len(live), object)
            if inl.any():
                fn[inl] = t.strings[t.in_name[e[inl]]]
            if (~inl).any():
                fn[~inl] = self.functions(u[live[~inl]] + np.uint64(self.bias))
            rows_u.append(live)
            rows_d.append(np.full(len(live), d, np.int32))
            rows_fn.append(fn)
            rows_file.append(f)
            rows_line.append(ln)
            rows_inl.append(inl)
            live, e = live[inl], e[inl]
            if not len(live):
                break
            # the caller's frame: at the inlined call's site, in the entry it was inlined into
            f, ln = t.strings[t.in_file[e]], t.in_line[e]
            cur = cur.copy()
            cur[live] = t.in_parent[e]
        U = np.concatenate(rows_u)
        D = np.concatenate(rows_d)
        # every input address gets its unique address's rows, innermost first
        order = np.lexsort((D, U))
        U, D = U[order], D[order]
        fn = np.concatenate(rows_fn)[order]
        fl = np.concatenate(rows_file)[order]
        li = np.concatenate(rows_line).astype(np.int32)[order]
        il = np.concatenate(rows_inl)[order]
        start = np.searchsorted(U, np.arange(len(u)))
        count = np.bincount(U, minlength=len(u))
        n = count[inv]
        pick = np.repeat(start[inv] - np.cumsum(np.concatenate(([0], n[:-1]))), n) + np.arange(int(n.sum()))
        return Frames(np.repeat(np.arange(len(a)), n), D[pick], fn[pick], fl[pick], li[pick], il[pick])

    def objects(self, addrs: np.ndarray, want: tuple[str, ...] = ()) -> np.ndarray:
        """The static object at each data address, by symbol and member (`slots[1].m`,
        `store::buckets[17].lock`, `table+0x8` past the last member known); '' where no static
        object holds it (heap, stack). `want`: type names to stop at when an address is the
        start of several nested objects (a mutex at offset 0 of a struct is named as the mutex)."""
        u, inv = factorize(self._local(addrs))
        order = np.argsort(u)
        names = np.empty(len(u), object)
        names[order] = object_names(self.t, u[order], want)
        return names[inv]
