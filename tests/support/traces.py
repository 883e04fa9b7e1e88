"""Hand-built traces with known contents, and where tests keep their artefacts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, Tracepoint, default_catalog, lay_out
from osvtrace.format.osvt import TraceWriter, map_file, new_metadata, scan

M = 0xA000  # the mutex of the story trace
Q = 0xB000  # a wait queue of the story trace
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def write_trace(path: Path, per_cpu: dict[int, np.ndarray], *, tsc_hz: int = 1_000_000_000, chunk: int = 0,
                threads: dict[int, str] | None = None, lost: dict[int, int] | None = None,
                first_seq: dict[int, int] | None = None, close: bool = True, catalog: Catalog | None = None,
                build_id: str = "") -> Path:
    """Write slots per CPU as chunks (of `chunk` slots, 0 = one chunk per CPU); the file's
    embedded schema is `catalog` (this tree's by default); `build_id`: the kernel it claims."""
    cat = catalog or default_catalog()
    meta = new_metadata(cat, ncpus=max(per_cpu, default=0) + 1, tsc_hz=tsc_hz, capture="test", build_id=build_id)
    w = TraceWriter(path, meta)
    for cpu, slots in sorted(per_cpu.items()):
        step = chunk or max(len(slots), 1)
        base = (first_seq or {}).get(cpu, 0)
        for i in range(0, len(slots), step):
            w.write_chunk(cpu, base + i, slots[i:i + step], (lost or {}).get(cpu, 0))
    if threads:
        w.add_threads(threads)
    if close:
        w.close("test")
    else:
        w.f.close()
    return path


def catalog_with(*declared: tuple[str, int, list[dict]]) -> Catalog:
    """This tree's catalog plus tracepoints (name, id, args) it does not declare, as another
    kernel's schema would (OSv declares many X / X_ret / X_err pairs). An argument may carry
    a name our schema refuses (OSv's memory_realloc has `in`): {"name": "in_", "as": "in"}."""
    import dataclasses

    base = default_catalog()
    extra = []
    for name, tp_id, args in declared:
        fields, nslots, used = lay_out(args, name)
        fields = tuple(dataclasses.replace(f, name=a.get("as", f.name)) for f, a in zip(fields, args))
        extra.append(Tracepoint(name, tp_id, "test", f"{name} (a test's own tracepoint)", "", fields, nslots, used))
    return Catalog(base.tracepoints + extra, base.enums)


def events_trace(path: Path, catalog: Catalog, per_cpu_events: dict[int, list[tuple]], **kw) -> Path:
    """A trace of events given per CPU as (tracepoint, time, tid[, {argument: value}]),
    written with `catalog` as its schema (write_trace's keywords pass through)."""
    from osvtrace.format.encode import CpuStreamBuilder

    slots = {}
    for cpu, evs in per_cpu_events.items():
        b = CpuStreamBuilder(catalog)
        for name, t, tid, *args in evs:
            b.add(name, [t], tid, **(args[0] if args else {}))
        slots[cpu] = b.slots()
    return write_trace(path, slots, catalog=catalog, **kw)


def grow(src: str | Path, dst: str | Path, piece: int = 2000, delay: float = 0.05, head: int = 8) -> int:
    """A synthetic live recording: copy the chunks of a finished trace into `dst`, a few
    thousand slots per CPU at a time, flushing and pausing between them (the first piece of
    each CPU is `head` slots, so a cut never falls inside synth's two-slot thread_create)."""
    mm = map_file(src)
    sc = scan(mm, str(src))
    slots = np.frombuffer(mm, layout.SLOT_DTYPE, count=len(mm) // layout.SLOT_SIZE)
    per: dict[int, list] = {}
    for c in sorted(sc.chunks, key=lambda c: (c.cpu, c.first_seq)):
        per.setdefault(c.cpu, []).append(c)
    streams = {cpu: np.concatenate([slots[c.row:c.row + c.nslots] for c in cs]) for cpu, cs in per.items()}
    pos = dict.fromkeys(streams, 0)
    w = TraceWriter(dst, sc.meta)
    w.flush()
    while any(pos[c] < len(s) for c, s in streams.items()):
        for cpu, s in streams.items():
            if pos[cpu] < len(s):
                part = s[pos[cpu]:head if pos[cpu] == 0 else pos[cpu] + piece]
                w.write_chunk(cpu, pos[cpu], part)
                pos[cpu] += len(part)
        w.flush()
        time.sleep(delay)
    w.add_threads(dict(sc.threads))
    w.close("done")
    return sum(len(s) for s in streams.values())


def small_trace_file(path: Path) -> Path:
    """Two CPUs: a thread_create (2 slots), a switch, a hand-off and a packet (6 slots)."""
    from osvtrace.format.encode import CpuStreamBuilder

    cat = default_catalog()
    c0 = CpuStreamBuilder(cat)
    c0.add("thread_create", [100], 1, tid=5, name="worker-a")
    c0.add("sched_switch", [200], 1, next=5, prev_state=2)
    c0.add("mutex_lock", [300], 5, mutex=0xDEAD0)
    c0.add("mutex_unlock", [400], 5, mutex=0xDEAD0)
    c0.add("mutex_handoff", [410], 5, mutex=0xDEAD0, from_tid=5, to_tid=6)
    c1 = CpuStreamBuilder(cat)
    c1.add("thread_create", [150], 1, tid=6, name="worker-b")
    c1.add("mutex_lock_wait", [250], 6, mutex=0xDEAD0)
    c1.add("net_packet", [300], 6, packet=7, len=60, dir=1, data=bytes(range(60)))
    c1.add("mutex_lock_wake", [500], 6, mutex=0xDEAD0)
    return write_trace(path, {0: c0.slots(), 1: c1.slots()}, threads={1: "main"})

