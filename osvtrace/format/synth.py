"""Synthetic traces: a plausible scheduler + mutex workload, written through the real writer.

For the demo before a kernel is at hand, for tests that need volume, and for the
decode benchmark. Vectorised, so 10 M events take seconds, not minutes.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.format.encode import encode
from osvtrace.format.osvt import TraceWriter, new_metadata

TSC_HZ = 2_500_000_000
CHUNK_SLOTS = 32768  # 1 MiB chunks


def _cpu_slots(cat: Catalog, rng: np.random.Generator, cpu: int, n: int, nthreads: int) -> np.ndarray:
    """n single-slot records for one CPU: each step is a thread that locks, maybe waits,
    unlocks and switches to the next thread."""
    pattern = ["mutex_lock", "mutex_unlock", "sched_wake", "sched_switch", "mutex_lock", "mutex_lock_wait",
               "sched_switch", "mutex_lock_wake", "mutex_unlock", "mutex_handoff", "trace_marker", "sched_switch"]
    reps = -(-n // len(pattern))
    names = (pattern * reps)[:n]
    ids = np.array([cat.by_name[x].id for x in pattern], np.uint16)
    tp_of = np.tile(ids, reps)[:n]
    tsc = (np.cumsum(rng.integers(200, 4000, n, dtype=np.int64)) + 1_000_000 + cpu * 37).astype(np.uint64)
    base_tid = 2 + cpu * nthreads
    tid = (base_tid + (np.arange(n) // len(pattern)) % nthreads).astype(np.uint32)
    out = np.zeros((n, layout.SLOT_SIZE), np.uint8)
    mutexes = 0xFFFF800000100000 + 64 * rng.integers(0, 8, n, dtype=np.uint64)
    for name in set(names):
        tp = cat.by_name[name]
        sel = np.nonzero(tp_of == tp.id)[0]
        args: dict[str, object] = {}
        fields = {f.name for f in tp.fields}
        nxt = (base_tid + (tid[sel] - base_tid + 1) % nthreads).astype(np.uint32)
        if "mutex" in fields:
            args["mutex"] = mutexes[sel]
        if name == "sched_switch":
            args.update(next=nxt, prev_state=np.where(sel % 2 == 0, 1, 2).astype(np.uint8))
        elif name == "sched_wake":
            args.update(tid=nxt, cpu=cpu)
        elif name == "mutex_handoff":
            args.update(from_tid=tid[sel], to_tid=nxt)
        elif name == "trace_marker":
            args.update(value=sel.astype(np.uint64), label="step")
        out[sel] = encode(tp, tsc[sel], tid[sel], **args)[:, 0, :]
    return out


def generate(path: str | os.PathLike, events: int = 100_000, cpus: int = 2, threads_per_cpu: int = 4,
             seed: int = 1, catalog: Catalog | None = None,
             progress: Callable[[int], None] | None = None) -> int:
    """Write a synthetic trace of ``events`` records over ``cpus`` CPUs; returns the count written."""
    cat = catalog or default_catalog()
    rng = np.random.default_rng(seed)
    meta = new_metadata(cat, ncpus=cpus, tsc_hz=TSC_HZ, tsc_boot=0, capture="synthetic",
                        cmdline="app=synthetic", build_id="synthetic")
    threads = {}
    with TraceWriter(path, meta) as w:
        per_cpu = [events // cpus + (1 if c < events % cpus else 0) for c in range(cpus)]
        streams = []
        for c in range(cpus):
            first_tid = 2 + c * threads_per_cpu
            for k in range(threads_per_cpu):
                threads[first_tid + k] = f"worker-{c}.{k}"
            # thread_create records first, so names also travel inside the trace
            tc = cat.by_name["thread_create"]
            tids = np.arange(first_tid, first_tid + threads_per_cpu, dtype=np.uint32)
            create = encode(tc, np.arange(threads_per_cpu, dtype=np.uint64) * 100 + 1000 + c, 1,
                            tid=tids, name=[threads[int(t)] for t in tids]).reshape(-1, layout.SLOT_SIZE)
            body = _cpu_slots(cat, rng, c, max(0, per_cpu[c] - threads_per_cpu), threads_per_cpu)
            streams.append(np.concatenate([create, body]))
        # interleave chunks of the CPUs, as a streaming capture would
        pos = [0] * cpus
        done = 0
        while any(pos[c] < len(streams[c]) for c in range(cpus)):
            for c in range(cpus):
                s = streams[c]
                if pos[c] < len(s):
                    part = s[pos[c]:pos[c] + CHUNK_SLOTS]
                    w.write_chunk(c, pos[c], part)
                    pos[c] += len(part)
                    done += len(part)
                    if progress:
                        progress(len(part))
        w.add_threads({1: "main", **threads})
    return sum(len(s) for s in streams)
