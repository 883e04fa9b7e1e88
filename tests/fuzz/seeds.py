"""Seed inputs for the harnesses, made at run time from the real writer, encoder and synth
(nothing binary is committed): small traces, frame streams and viewer requests."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np

from osvtrace.capture import stream
from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.format import synth
from osvtrace.format.encode import CpuStreamBuilder
from osvtrace.format.osvt import TraceWriter, new_metadata


def _slots(cat: Catalog, cpu: int) -> np.ndarray:
    """A few records of each shape: one slot, two slots (a name), six slots (a packet)."""
    b = CpuStreamBuilder(cat)
    b.add("thread_create", [100 + cpu], 1, tid=5 + cpu, name=f"worker-{cpu}")
    b.add("sched_switch", [200 + cpu, 250 + cpu], 1, next=5 + cpu, prev_state=2)
    b.add("mutex_lock", [300 + cpu], 5 + cpu, mutex=0xDEAD0)
    b.add("mutex_lock_wait", [310 + cpu], 5 + cpu, mutex=0xDEAD0)
    b.add("mutex_handoff", [410 + cpu], 5 + cpu, mutex=0xDEAD0, from_tid=5, to_tid=6)
    b.add("net_packet", [500 + cpu], 5 + cpu, packet=7, len=60, dir=1, data=bytes(range(60)))
    b.add("trace_marker", [600 + cpu], 5 + cpu, value=3, label="m")
    return b.slots()


def traces(cat: Catalog | None = None) -> list[bytes]:
    """Small .osvt files: hand-built records in one and several chunks, with and without a
    trailer and loss, and a synthetic scheduler/mutex workload."""
    cat = cat or default_catalog()
    out = []
    with tempfile.TemporaryDirectory() as d:
        for k, (chunk, close, lost) in enumerate([(0, True, 0), (3, True, 2), (2, False, 0), (5, True, 0)]):
            p = Path(d) / f"t{k}.osvt"
            w = TraceWriter(p, new_metadata(cat, ncpus=2, tsc_hz=2_000_000_000 if k % 2 else 1_000_000_000,
                                            capture="fuzz-seed"))
            for cpu in (0, 1):
                s = _slots(cat, cpu)
                step = chunk or len(s)
                for i in range(0, len(s), step):
                    w.write_chunk(cpu, i, s[i:i + step], lost * cpu)
            w.add_threads({1: "main", 5: "worker-0"})
            if close:
                w.close("seed")
            else:
                w.f.close()
            out.append(p.read_bytes())
        p = Path(d) / "synth.osvt"
        synth.generate(p, events=300, cpus=2, threads_per_cpu=2)
        out.append(p.read_bytes())
    return out


def _thread_table(names: dict[int, str]) -> bytes:
    tab = np.zeros(len(names), layout.THREAD_ENTRY_DTYPE)
    for i, (tid, name) in enumerate(names.items()):
        tab[i] = (tid, 0, name.encode())
    return tab.tobytes()


def streams(cat: Catalog | None = None) -> list[bytes]:
    """Frame streams as the kernel's drain writes them: meta, threads, data per CPU, an ack,
    an empty data frame carrying a final lost count, the end frame."""
    cat = cat or default_catalog()
    s0, s1 = _slots(cat, 0).tobytes(), _slots(cat, 1).tobytes()
    meta = stream.encode_meta(ncpus=2, tsc_hz=1_000_000_000, tsc_boot=5, tp_max=len(cat.tracepoints),
                              ring_slots=1024, cmdline="app=fuzz", build_id="seed", enabled=bytes([1] * 40),
                              tsc_offset=[0, -7])
    frames = [
        meta,
        stream.encode_frame(stream.THREADS, _thread_table({1: "idle0", 5: "worker-0"})),
        stream.encode_frame(stream.DATA, s0[:3 * 32], cpu=0, seq=0),
        stream.encode_frame(stream.DATA, s1, cpu=1, seq=0, lost=2),
        stream.encode_frame(stream.DATA, s0[3 * 32:], cpu=0, seq=3),
        stream.encode_frame(stream.ACK, struct.pack("<IiQ", 7, 0, 99) + b"enabled 2 tracepoints\0"),
        stream.encode_frame(stream.DATA, b"", cpu=1, seq=len(s1) // 32, lost=4),
        stream.encode_frame(stream.END, struct.pack("<iIQ", 0, stream.END_APP_EXIT, 1234)),
    ]
    return [b"".join(frames), b"".join(frames[:4]), meta + frames[2]]


def requests() -> list[bytes]:
    """Viewer request lines: the page's own requests and some near misses."""
    paths = [
        "/", "/index.html", "/js/main.js", "/api/meta", "/api/view?t0=100&t1=800&px=100",
        "/api/view?t0=0&t1=1000&px=8192&lanes=cpu:0,cpu:1&arrows=wake,handoff,packet",
        "/api/item?lane=cpu:0&t=300&tol=50", "/api/item?lane=cpu:0&row=3", "/api/arrow?kind=handoff&row=0",
        "/api/find?lane=cpu:1&t=0&dir=next", "/api/find?lane=cpu:0&t=900&dir=prev",
        "/api/report?name=sched", "/api/report?name=mutex&t0=0&t1=600", "/api/view?t0=800&t1=100&px=10",
        "/api/view?t0=0&t1=700&px=300&lanes=thread:5,hold:0xdead0,wait:0xdead0,tp:13",
        "/api/item?lane=hold:0xdead0&t=320", "/api/find?lane=thread:6&t=100&dir=next",
        "/../pyproject.toml", "/js/%2e%2e/%2e%2e/pyproject.toml",
    ]
    return [p.encode() for p in paths]


def osv_files() -> list[bytes]:
    """Small OSv trace files (osvtrace.format.osv_synth): a dump and a tracefile with every
    kind of argument, backtraces and two keys of one name."""
    from osvtrace.format.osv_records import OsvTracepoint
    from osvtrace.format.osv_synth import Rec, dump, tracefile

    tps = [OsvTracepoint(0x4080_0000, "sched_switch", "Pdd", "to %p vold=%g vnew=%g"),
           OsvTracepoint(0x4080_0040, "net_packet_in", "i*", "proto=%d, data=%s"),
           OsvTracepoint(0x4080_0080, "elf_load", "p", "%s"),
           OsvTracepoint(0x4080_00C0, "mutex_lock", "P", "%p"),
           OsvTracepoint(0x4080_0100, "mutex_lock", "P", "%p")]
    per_cpu = [[Rec(tps[k % 5].key, 0x4000_0010_0000 + 0x1000 * (k % 3), f"thr{k % 3}", 1000 * k + cpu, cpu,
                    ((0x1234, 1.5, 2.5), (4, bytes(range(k % 40))), ("/mutexnet",), (0xA0,), (0xB0,))[k % 5],
                    [0x40_1000 + k, 0x40_2000] if k % 2 else []) for k in range(12)] for cpu in range(2)]
    merged = sorted((r for rs in per_cpu for r in rs), key=lambda r: (r.time, r.cpu))
    return [dump(tps, per_cpu, symbols=[("f", 0x40_1000, 0x100)]), tracefile(tps, merged)]


def harness_inputs(kind: str) -> list[bytes]:
    """The seeds of one harness ("osvt", "stream", "viewer") in its input format: the mode,
    piece size or Host byte that harness reads first, then the data."""
    if kind == "osvt":  # as they are, and re-sealed with the model built
        return [bytes([m]) + t for t in traces() for m in (0, 3)]
    if kind == "stream":  # received in 32-byte pieces and in pieces of 1000
        return [piece.to_bytes(2, "little") + s for s in streams() for piece in (31, 999)]
    if kind == "viewer":  # from the loopback Host header
        return [b"\0" + r for r in requests()]
    if kind == "osv":  # OSv's files, decoded alone and with the model built
        return [bytes([m]) + f for f in osv_files() for m in (0, 1)]
    raise ValueError(f"no such harness: {kind}")


def write_corpus(kind: str, directory: Path) -> int:
    """Write the seeds of one harness into directory; returns the count."""
    directory.mkdir(parents=True, exist_ok=True)
    items = harness_inputs(kind)
    for i, data in enumerate(items):
        (directory / f"seed-{i}").write_bytes(data)
    return len(items)
