"""The heap tables: allocations matched with their frees by address, both ways, on hand-built
traces; OSv's extra records (allocator detail, realloc) under the names OSv's schema declares."""

from __future__ import annotations

import osvtrace
from osvtrace.model import Model
from tests.support.traces import catalog_with, events_trace

OSV_EXTRA = [("memory_malloc_mempool", 910, [{"name": "buf", "type": "ptr"}, {"name": "req_len", "type": "u64"},
                                             {"name": "alloc_len", "type": "u64"}, {"name": "align", "type": "u64"}]),
             ("memory_realloc", 911, [{"name": "in_", "as": "in", "type": "ptr"}, {"name": "newlen", "type": "u64"},
                                      {"name": "out", "type": "ptr"}])]


def model_of(tmp_path, per_cpu_events) -> Model:
    return Model(osvtrace.open(events_trace(tmp_path / "m.osvt", catalog_with(*OSV_EXTRA), per_cpu_events)))


def rows(t, cols):
    return [tuple(r[c] for c in cols) for r in t.rows()]


def malloc(t, tid, buf, n):
    return ("memory_malloc", t, tid, {"buf": buf, "len": n, "align": 16})


def free(t, tid, buf):
    return ("memory_free", t, tid, {"buf": buf})


def test_a_free_on_another_cpu_closes_its_allocation_and_leaks_stay_open(tmp_path):
    m = model_of(tmp_path, {0: [malloc(10, 5, 0x1000, 100), malloc(20, 5, 0x2000, 24), free(40, 5, 0x2000)],
                            1: [free(30, 6, 0x1000), malloc(50, 6, 0x1000, 3000)]})
    assert rows(m.memory_alloc, ["time", "tid", "buf", "len", "alloc_len", "freed", "free_tid"]) == [
        (10, 5, 0x1000, 100, 128, 30, 6), (20, 5, 0x2000, 24, 32, 40, 5), (50, 6, 0x1000, 3000, 4096, -1, 0)]
    assert rows(m.memory_free, ["time", "buf", "len", "allocated"]) == [(30, 0x1000, 100, 10), (40, 0x2000, 24, 20)]


def test_a_free_without_its_allocation_and_an_address_handed_out_twice(tmp_path):
    # 0x3000 was allocated before the trace; 0x4000 is handed out twice with the free between lost:
    # the first allocation stays unfreed, and the free pairs with the second
    m = model_of(tmp_path, {0: [free(5, 5, 0x3000), malloc(10, 5, 0x4000, 64), malloc(20, 5, 0x4000, 32),
                                free(30, 5, 0x4000)]})
    assert rows(m.memory_alloc, ["time", "freed"]) == [(10, -1), (20, 30)]
    assert rows(m.memory_free, ["time", "len", "allocated"]) == [(5, -1, -1), (30, 32, 20)]


def test_osv_detail_records_name_the_allocator_and_realloc_frees_and_allocates(tmp_path):
    m = model_of(tmp_path, {0: [
        ("memory_malloc_mempool", 9, 5, {"buf": 0x5000, "req_len": 40, "alloc_len": 64, "align": 16}),
        ("memory_malloc", 10, 5, {"buf": 0x5000, "len": 40, "align": 16}),
        ("memory_realloc", 20, 5, {"in": 0x5000, "newlen": 200, "out": 0x6000}),
        free(30, 5, 0x6000)]})
    assert rows(m.memory_alloc, ["time", "buf", "len", "alloc_len", "allocator", "freed"]) == [
        (10, 0x5000, 40, 64, "mempool", 20), (20, 0x6000, 200, 256, "realloc", 30)]
    assert rows(m.memory_free, ["time", "buf", "len"]) == [(20, 0x5000, 40), (30, 0x6000, 200)]


def test_a_schema_with_unnamed_arguments_is_skipped_not_misread(tmp_path):
    # an OSv trace read before its argument names are mapped: memory_realloc(a0, a1, a2)
    raw = [("memory_realloc", 911, [{"name": "a0", "type": "ptr"}, {"name": "a1", "type": "u64"},
                                    {"name": "a2", "type": "ptr"}])]
    m = Model(osvtrace.open(events_trace(tmp_path / "u.osvt", catalog_with(*raw), {0: [
        malloc(10, 5, 0x5000, 40), ("memory_realloc", 20, 5, {"a0": 0x5000, "a1": 9, "a2": 0x6000})]})))
    assert rows(m.memory_alloc, ["buf", "freed"]) == [(0x5000, -1)]
    assert len(m.memory_free) == 0
