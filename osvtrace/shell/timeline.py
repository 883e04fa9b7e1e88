"""Compact text timelines: one row of unicode blocks per thread or CPU, over a time axis.

Each character is one time bucket. Time per bucket comes from prefix sums over the
model's interval tables (thread_state, sched_slice), never from a loop over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.format.trace import Trace
from osvtrace.model import Model
from osvtrace.model.filters import thread_ids
from osvtrace.model.sched import DEAD, RUNNABLE, RUNNING, SLEEPING, WAITING

LABEL = 14  # width of the row labels
STATE_GLYPH = {RUNNING: "█", RUNNABLE: "▓", WAITING: "▒", SLEEPING: "░", DEAD: "×"}
STATE_COLOR = {RUNNING: "32", RUNNABLE: "33", WAITING: "31", SLEEPING: "34", DEAD: "90"}
LEVELS = " ▁▂▃▄▅▆▇█"
PALETTE = ("36", "35", "33", "32", "34", "31", "96", "95", "93", "92", "94", "91")
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Target:
    kind: str  # "thread" | "cpu"
    id: int
    label: str


KEYWORDS = ("cpus", "threads")  # timeline words naming every CPU / every thread (of the filters)


def resolve_targets(trace: Trace, words: list[str], *, cpus: list[int] | None = None,
                    threads: list[int] | None = None) -> list[Target]:
    """cpuN (or 'cpu N') is a CPU; `cpus` is every CPU (``cpus``, default all of the
    trace's), `threads` every thread (``threads``, default every thread id the trace has);
    anything else names threads (ids or name globs). A thread named "threads" or "cpus" is
    reached by its id or a glob (thread[s])."""
    out: list[Target] = []
    i = 0
    while i < len(words):
        w = words[i]
        low = w.lower()
        if low == "cpu" and i + 1 < len(words) and words[i + 1].isdigit():
            low, i = "cpu" + words[i + 1], i + 1
        if low == "cpus":
            out += [Target("cpu", c, f"cpu{c}") for c in (range(max(trace.ncpus, 1)) if cpus is None else cpus)]
        elif low == "threads":
            tids = sorted(set(trace.threads) | set(trace.tids().tolist())) if threads is None else threads
            out += [Target("thread", int(t), trace.thread_name(int(t))) for t in tids]
        elif low.startswith("cpu") and low[3:].isdigit():
            c = int(low[3:])
            if c >= max(trace.ncpus, 1):
                raise UsageError(f"timeline {w}: the trace has CPUs 0..{trace.ncpus - 1}")
            out.append(Target("cpu", c, f"cpu{c}"))
        else:
            for tid in thread_ids(trace, [w]).tolist():
                out.append(Target("thread", tid, f"{trace.thread_name(tid)}"))
        i += 1
    return out


def edges(lo: int, hi: int, width: int) -> np.ndarray:
    return lo + (np.arange(width + 1, dtype=np.int64) * (hi - lo)) // width


def coverage(start: np.ndarray, dur: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Time each bucket [e[i], e[i+1]) overlaps a set of sorted, non-overlapping intervals."""
    if not len(start):
        return np.zeros(len(e) - 1, np.int64)
    start = start.astype(np.int64)
    end = start + dur.astype(np.int64)
    prefix = np.concatenate(([0], np.cumsum(end - start)))
    k = np.searchsorted(start, e, "right")  # intervals starting at or before each edge
    last = np.maximum(k - 1, 0)
    over = np.where(k > 0, np.maximum(end[last] - e, 0), 0)  # part of interval k-1 after the edge
    covered = prefix[k] - over
    return np.diff(covered)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and text.strip() else text


def _row(cells: list[tuple[str, str]], color: bool) -> str:
    """(glyph, colour code) cells as text, one escape sequence per run of one colour."""
    if not color:
        return "".join(g for g, _ in cells)
    out, run, code = [], "", ""
    for g, c in cells + [("", "end")]:
        if c != code and run:
            out.append(_paint(run, code, True) if code else run)
            run = ""
        run, code = run + g, c
    return "".join(out)


def thread_row(model: Model, tid: int, e: np.ndarray, color: bool) -> str:
    st = model.thread_state
    m = st["tid"] == tid
    start, dur, state = st["start"][m], st["dur"][m], st["state"][m]
    order = np.argsort(start, kind="stable")
    start, dur, state = start[order], dur[order], state[order]
    per = np.stack([coverage(start[state == s], dur[state == s], e) for s in sorted(STATE_GLYPH)])
    best = np.argmax(per, axis=0)
    known = per.sum(axis=0) > 0
    states = sorted(STATE_GLYPH)
    cells = []
    for b, k in zip(best.tolist(), known.tolist()):
        s = states[b]
        cells.append((STATE_GLYPH[s], STATE_COLOR[s]) if k else (" ", ""))
    return _row(cells, color)


def _idle(model: Model) -> np.ndarray:
    th = model.threads
    return th["tid"][np.array([str(n).startswith("idle") for n in th["name"]], bool)]


def cpu_rows(model: Model, cpu: int, e: np.ndarray, color: bool, legend: dict[int, tuple[str, str]]) -> tuple[str, str]:
    """(load row, who row) of one CPU; `legend` collects thread -> (letter, colour)."""
    s = model.sched_slice
    m = (s["cpu"] == cpu) & ~np.isin(s["tid"], _idle(model))
    start, dur, tid = s["start"][m], s["dur"][m], s["tid"][m]
    order = np.argsort(start, kind="stable")
    start, dur, tid = start[order], dur[order], tid[order]
    width = len(e) - 1
    tids = np.unique(tid)
    if not len(tids):
        return " " * width, " " * width
    per = np.stack([coverage(start[tid == t], dur[tid == t], e) for t in tids.tolist()])
    busy = per.sum(axis=0)
    share = busy / np.maximum(np.diff(e), 1)
    top = tids[np.argmax(per, axis=0)]
    load: list[tuple[str, str]] = []
    who: list[tuple[str, str]] = []
    for b, sh, t in zip(busy.tolist(), share.tolist(), top.tolist()):
        if b <= 0:
            load.append((" ", ""))
            who.append((" ", ""))
            continue
        if t not in legend:
            n = len(legend)
            legend[t] = (LETTERS[n % len(LETTERS)], PALETTE[n % len(PALETTE)])
        letter, code = legend[t]
        level = LEVELS[max(1, int(round(min(sh, 1.0) * (len(LEVELS) - 1))))]
        load.append((level, code))
        who.append((letter, code))
    return _row(load, color), _row(who, color)


def _nice_step(span: int, ticks: int) -> int:
    raw = max(span / max(ticks, 1), 1)
    mag = 10 ** int(np.floor(np.log10(raw)))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return int(m * mag)
    return int(10 * mag)


def _label(ns: int, step: int, top: int) -> str:
    """A tick's time in the unit that keeps the window's end under 10,000 units, with the
    decimals the step needs."""
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)):
        if abs(top) >= scale or scale == 1:
            digits = 0 if step >= scale else int(np.ceil(np.log10(scale / step)))
            return f"{ns / scale:.{digits}f}{unit}"
    return f"{ns}ns"


def axis(e: np.ndarray) -> tuple[str, str]:
    """A tick line and a label line under the rows: times of nicely rounded ticks."""
    width = len(e) - 1
    lo, hi = int(e[0]), int(e[-1])
    step = _nice_step(hi - lo, max(2, width // 8))
    first = -(-lo // step) * step
    ticks = list(range(first, hi + 1, step))
    line = ["─"] * width
    labels = [" "] * (width + 12)
    for t in ticks:
        col = min(int((t - lo) * width // max(hi - lo, 1)), width - 1)
        line[col] = "┬"
        text = _label(t, step, hi)
        fits = col + len(text) <= width + 1  # never past the row's closing bar
        if fits and all(c == " " for c in labels[max(col - 1, 0):col + len(text) + 1]):
            labels[col:col + len(text)] = list(text)
    return "".join(line), "".join(labels).rstrip()


def draw(model: Model, targets: list[Target], lo: int, hi: int, width: int, color: bool = False) -> list[str]:
    """The timeline's lines: rows per target, the axis, and a legend."""
    from osvtrace.model.filters import format_duration

    e = edges(lo, hi, width)
    pad = " " * LABEL
    out = [f"{pad}{format_duration(hi - lo)} in {width} buckets of {format_duration((hi - lo) / width)}"]
    legend: dict[int, tuple[str, str]] = {}
    any_thread = False
    for t in targets:
        label = t.label[:LABEL - 1].ljust(LABEL - 1)
        if t.kind == "cpu":
            load, who = cpu_rows(model, t.id, e, color, legend)
            out.append(f"{label} │{load}│")
            out.append(f"{'':<{LABEL - 1}} │{who}│")
        else:
            any_thread = True
            out.append(f"{label} │{thread_row(model, t.id, e, color)}│")
    tick, labels = axis(e)
    out.append(f"{pad}└{tick}┘")
    out.append(f"{pad} {labels}")
    if any_thread:
        out.append("states: " + "  ".join(_paint(STATE_GLYPH[s], STATE_COLOR[s], color) + " " + name for s, name in
                                          ((RUNNING, "running"), (RUNNABLE, "runnable"), (WAITING, "waiting"),
                                           (SLEEPING, "sleeping"), (DEAD, "dead"))))
    if legend:
        trace = model.trace
        out.append("threads: " + "  ".join(_paint(letter, code, color) + "=" + trace.thread_name(tid)
                                           for tid, (letter, code) in legend.items()))
    return out
