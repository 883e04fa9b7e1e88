"""Event filters shared by reports, queries and the viewer: masks over the event columns."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.base import id_mask
from osvtrace.format.trace import Trace

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_TIME_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s)?\s*$")


def parse_time(text: str, what: str = "time") -> int:
    """'1.5' (seconds), '250ms', '10us', '42ns' -> ns."""
    m = _TIME_RE.match(text)
    if not m:
        raise UsageError(f"{what}: cannot read {text!r} as a time (examples: 1.5, 250ms, 10us, 42ns)")
    return int(round(float(m.group(1)) * _UNITS[m.group(2) or "s"]))


def format_ns(ns: int) -> str:
    """Seconds with nanoseconds: 12.000345678."""
    sign = "-" if ns < 0 else ""
    ns = abs(int(ns))
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def format_duration(ns: float) -> str:
    """A duration with a readable unit: 850ns, 12.3us, 4.56ms, 1.234s."""
    ns = float(ns)
    if abs(ns) < 1_000:
        return f"{ns:.0f}ns"
    if abs(ns) < 1_000_000:
        return f"{ns / 1e3:.1f}us"
    if abs(ns) < 1_000_000_000:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.3f}s"


@dataclass
class Filter:
    """What to keep. Empty fields keep everything."""

    tracepoints: list[str] = field(default_factory=list)  # anchored globs
    cpus: list[int] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)  # tids or name globs
    since: int | None = None  # ns, inclusive
    until: int | None = None  # ns, exclusive

    def mask(self, trace: Trace) -> np.ndarray:
        ev = trace.events
        m = np.ones(len(ev), bool)
        if self.since is not None or self.until is not None:
            lo = 0 if self.since is None else int(np.searchsorted(ev.time, self.since, "left"))
            hi = len(ev) if self.until is None else int(np.searchsorted(ev.time, self.until, "left"))
            m[:lo] = False
            m[hi:] = False
        if self.tracepoints:
            ids = tracepoint_ids(trace, self.tracepoints)
            m &= id_mask(ev.tp, ids)
        if self.cpus:
            bad = [c for c in self.cpus if c < 0 or c >= max(trace.ncpus, 1)]
            if bad:
                raise UsageError(f"--cpu {bad[0]}: the trace has CPUs 0..{trace.ncpus - 1}")
            m &= np.isin(ev.cpu, np.array(self.cpus, np.uint16))
        if self.threads:
            m &= np.isin(ev.tid, thread_ids(trace, self.threads))
        return m

    def indices(self, trace: Trace) -> np.ndarray:
        return np.nonzero(self.mask(trace))[0]


def tracepoint_ids(trace: Trace, patterns: list[str]) -> np.ndarray:
    pats = [p for item in patterns for p in item.split(",") if p.strip()]
    tps = trace.catalog.match(pats)
    if not tps:
        raise UsageError(f"--tp {','.join(pats)}: matches no tracepoint (see `osvtrace tracepoints`)")
    return np.array([tp.id for tp in tps], np.uint16)


def thread_ids(trace: Trace, specs: list[str]) -> np.ndarray:
    """Thread ids named by number or by anchored name glob."""
    out: set[int] = set()
    for spec in (s.strip() for item in specs for s in item.split(",")):
        if not spec:
            continue
        if spec.isdigit():
            out.add(int(spec))
            continue
        hits = [tid for tid, name in trace.threads.items() if fnmatch.fnmatchcase(name, spec)]
        if not hits:
            raise UsageError(f"--thread {spec}: no thread of that name in the trace")
        out.update(hits)
    return np.array(sorted(out), np.uint32)
