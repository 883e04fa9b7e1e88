"""Shared fixtures: small hand-built traces with known contents."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from osvtrace.encode import CpuStreamBuilder
from osvtrace.osvt import TraceWriter, new_metadata
from osvtrace.schema import default_catalog

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def catalog():
    return default_catalog()


def write_trace(path: Path, per_cpu: dict[int, np.ndarray], *, tsc_hz: int = 1_000_000_000, chunk: int = 0,
                threads: dict[int, str] | None = None, lost: dict[int, int] | None = None,
                first_seq: dict[int, int] | None = None, close: bool = True) -> Path:
    """Write slots per CPU as chunks (of `chunk` slots, 0 = one chunk per CPU)."""
    cat = default_catalog()
    meta = new_metadata(cat, ncpus=max(per_cpu, default=0) + 1, tsc_hz=tsc_hz, capture="test")
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


@pytest.fixture
def small_trace(tmp_path):
    """Two CPUs: a thread_create (2 slots), a switch, a hand-off and a packet (6 slots)."""
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
    return write_trace(tmp_path / "small.osvt", {0: c0.slots(), 1: c1.slots()}, threads={1: "main"})
