"""Heap tables: one row per allocation (with its free, if the trace has it) and one per free.

Allocations and frees are matched by block address: an allocation's free is the next free
of its address, provided no other allocation of that address comes first (a block handed
out twice without a free in between means the free was lost). Which tracepoints allocate and
free, and under which argument names, is data (ALLOCATORS, FREES, REALLOCS), following OSv's
core/mempool.cc; our kernel uses the same names, so both kernels fill the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import model_events
from osvtrace.model.search import dense_rank, last_match, next_match
from osvtrace.model.table import Column, Table, TableSpec, table


@dataclass(frozen=True)
class Alloc:
    """A tracepoint that records an allocation, and which of its arguments say what."""

    tracepoint: str
    allocator: str
    len: str  # bytes requested
    alloc_len: str = ""  # bytes the allocator set aside ("" : not recorded)
    detail: bool = False  # OSv emits these inside malloc, before its memory_malloc: they add detail only


ALLOCATORS: tuple[Alloc, ...] = (
    Alloc("memory_malloc", "malloc", "len"),
    Alloc("memory_malloc_mempool", "mempool", "req_len", "alloc_len", detail=True),
    Alloc("memory_malloc_large", "large", "req_len", "alloc_len", detail=True),
    Alloc("memory_malloc_page", "page", "req_len", "alloc_len", detail=True),
)
FREES: tuple[str, ...] = ("memory_free",)  # argument: buf


@dataclass(frozen=True)
class Realloc:
    """A tracepoint that frees one block and allocates another (either may be 0)."""

    tracepoint: str
    old: str
    len: str
    new: str


REALLOCS: tuple[Realloc, ...] = (Realloc("memory_realloc", "in", "newlen", "out"),)


def _record(who: str, buf: str = "block address") -> tuple[Column, ...]:
    """The columns saying where a record was and which block it names."""
    return (Column("time", "int64", f"time of the {who}", "ns"), Column("cpu", "uint16", "CPU"),
            Column("tid", "uint32", f"thread of the {who}", "tid"), Column("buf", "uint64", buf, "addr"))


MEMORY_ALLOC = TableSpec("memory_alloc", "One row per heap allocation (memory_malloc; OSv's memory_realloc counts "
                         "as a free and an allocation), with its free when the trace has it.", (
    *_record("allocation", "block address (0: the allocation failed)"),
    Column("len", "int64", "bytes requested"),
    Column("align", "int64", "alignment in bytes (0: not recorded)"),
    Column("alloc_len", "int64", "bytes set aside: as recorded (OSv's detail records), else the size class: the "
           "request rounded up to a power of two, at least the alignment"),
    Column("allocator", "object", "malloc, or OSv's mempool | large | page when its detail record is there"),
    Column("freed", "int64", "time of its free (-1: not freed in the trace: still live, or a leak)", "ns"),
    Column("free_tid", "uint32", "thread that freed it (0: not freed)", "tid"),
    Column("event", "int64", "index in events of the allocating record (its backtrace is where it was allocated)"),
))

MEMORY_FREE = TableSpec("memory_free", "One row per free of a heap block (memory_free, the old block of "
                        "memory_realloc).", (
    *_record("free"),
    Column("len", "int64", "bytes requested by its allocation (-1: the allocation is not in the trace)"),
    Column("allocated", "int64", "time of its allocation (-1: not in the trace)", "ns"),
))


def _records(trace: Trace, name: str, *needed: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A tracepoint's records and arguments, as the model reads them (osvtrace.model.kernel_map:
    OSv's unnamed a0, a1 ... get their names there); none when the trace lacks it or its
    arguments are not these."""
    got = model_events(trace, name)
    if got is None or not set(needed) <= set(got[1]):
        return np.empty(0, np.int64), {}
    return got


def _size_class(length: np.ndarray, align: np.ndarray) -> np.ndarray:
    n = np.maximum(np.maximum(length, align), 1).astype(np.int64)
    return (1 << np.ceil(np.log2(n)).astype(np.int64)).astype(np.int64)


def memory_tables(trace: Trace) -> tuple[Table, Table]:
    ev = trace.events
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("idx", "buf", "len", "align", "alloc_len", "allocator")}
    frees: dict[str, list[np.ndarray]] = {"idx": [], "buf": []}

    def add_alloc(idx: np.ndarray, buf: np.ndarray, length: np.ndarray, align: np.ndarray, alloc_len: np.ndarray,
                  allocator: str) -> None:
        for k, v in (("idx", idx), ("buf", buf.astype(np.uint64)), ("len", length.astype(np.int64)),
                     ("align", align.astype(np.int64)), ("alloc_len", alloc_len.astype(np.int64)),
                     ("allocator", np.full(len(idx), allocator, object))):
            parts[k].append(v)

    main = [a for a in ALLOCATORS if not a.detail]
    detail = [a for a in ALLOCATORS if a.detail]
    have_main = any(len(_records(trace, a.tracepoint, "buf", a.len)[0]) for a in main)
    # With memory_malloc on, OSv's detail records only say which allocator and how much it set
    # aside; without it, they are the allocations themselves (as trace.py's memory-analyzer reads them).
    for a in main + ([] if have_main else detail):
        idx, args = _records(trace, a.tracepoint, "buf", a.len, *([a.alloc_len] if a.alloc_len else []))
        if len(idx):
            alen = args[a.alloc_len] if a.alloc_len else np.full(len(idx), -1, np.int64)
            align = args["align"] if "align" in args else np.zeros(len(idx), np.int64)
            add_alloc(idx, args["buf"], args[a.len], align, alen, a.allocator)
    for name in FREES:
        idx, args = _records(trace, name, "buf")
        if len(idx):
            frees["idx"].append(idx)
            frees["buf"].append(args["buf"].astype(np.uint64))
    for r in REALLOCS:
        idx, args = _records(trace, r.tracepoint, r.old, r.len, r.new)
        if len(idx):
            old, new = args[r.old].astype(np.uint64), args[r.new].astype(np.uint64)
            frees["idx"].append(idx[old != 0])
            frees["buf"].append(old[old != 0])
            k = new != 0
            add_alloc(idx[k], new[k], args[r.len][k], np.zeros(int(k.sum()), np.int64),
                      np.full(int(k.sum()), -1, np.int64), "realloc")
    if not parts["idx"] and not frees["idx"]:
        return MEMORY_ALLOC.empty(), MEMORY_FREE.empty()
    cat = {k: np.concatenate(v) if v else np.empty(0, np.int64) for k, v in parts.items()}
    if not parts["idx"]:
        cat["allocator"] = np.empty(0, object)
        cat["buf"] = np.empty(0, np.uint64)
    o = np.argsort(cat["idx"], kind="stable")
    a = {k: v[o] for k, v in cat.items()}
    a_idx = a["idx"].astype(np.int64)
    a_time, a_tid = ev.time[a_idx], ev.tid[a_idx]
    if have_main:
        # fill in allocator and alloc_len from the detail record of the same block just before
        for d in detail:
            idx, args = _records(trace, d.tracepoint, "buf", d.alloc_len)
            if not len(idx):
                continue
            ra, rb = dense_rank(a["buf"] ^ (a_tid.astype(np.uint64) << np.uint64(48)),
                            args["buf"].astype(np.uint64) ^ (ev.tid[idx].astype(np.uint64) << np.uint64(48)))
            hit = last_match(ra, a_time, rb, ev.time[idx])
            ok = hit >= 0
            a["alloc_len"][ok] = args[d.alloc_len][hit[ok]].astype(np.int64)
            a["allocator"][ok] = d.allocator
    unknown = a["alloc_len"] < 0
    a["alloc_len"][unknown] = _size_class(a["len"][unknown], a["align"][unknown])
    f_idx = np.concatenate(frees["idx"]).astype(np.int64) if frees["idx"] else np.empty(0, np.int64)
    f_buf = np.concatenate(frees["buf"]) if frees["buf"] else np.empty(0, np.uint64)
    fo = np.argsort(f_idx, kind="stable")
    f_idx, f_buf = f_idx[fo], f_buf[fo]
    f_time = ev.time[f_idx]
    # Match by address, both ways: an allocation's next free, and that free's last allocation
    # must point at each other (else a record in between is missing and neither is paired).
    # Event indices serve as times: they are in time order and never tie.
    ra, rf = dense_rank(a["buf"], f_buf)
    nf = next_match(ra, a_idx, rf, f_idx)
    la = last_match(rf, f_idx, ra, a_idx)
    paired_a = (nf >= 0) & (a["buf"] != 0)
    paired_a[paired_a] &= la[nf[paired_a]] == np.nonzero(paired_a)[0]
    a_of_f = np.full(len(f_idx), -1, np.int64)
    a_of_f[nf[paired_a]] = np.nonzero(paired_a)[0]
    freed = np.full(len(a_idx), -1, np.int64)
    freed[paired_a] = f_time[nf[paired_a]]
    free_tid = np.zeros(len(a_idx), np.uint32)
    free_tid[paired_a] = ev.tid[f_idx[nf[paired_a]]]
    allocs = table(MEMORY_ALLOC, time=a_time, cpu=ev.cpu[a_idx], tid=a_tid, buf=a["buf"], len=a["len"],
                   align=a["align"], alloc_len=a["alloc_len"], allocator=a["allocator"], freed=freed,
                   free_tid=free_tid, event=a_idx)
    has = a_of_f >= 0
    f_len = np.full(len(f_idx), -1, np.int64)
    f_len[has] = a["len"][a_of_f[has]]
    f_alloc = np.full(len(f_idx), -1, np.int64)
    f_alloc[has] = a_time[a_of_f[has]]
    return allocs, table(MEMORY_FREE, time=f_time, cpu=ev.cpu[f_idx], tid=ev.tid[f_idx], buf=f_buf, len=f_len,
                         allocated=f_alloc)
