"""Chrome Trace Event JSON: for chrome://tracing, Perfetto's legacy loader and many other tools.

The same timeline as the Perfetto export (osvtrace.exports.timeline), written as
``X`` complete events (slices), ``i`` instants (wake-ups, hand-offs, packet stages,
markers, lost records), ``s``/``t``/``f`` flow events (arrows) and ``M`` metadata
(process and thread names). Tracks become (pid, tid) rows: pid 1 holds the CPUs,
pid 2 the threads, pid 3 the mutexes, each followed by a row per thread that waited for it.
A row's tid is its key plus TID_OFFSET (guest thread id + 1, CPU number + 1, mutex row
index + 1) for every event, metadata record and flow: Chrome and Perfetto take tid 0 for
the idle (swapper) task, and guest thread 0 and CPU 0 would otherwise be written as it.

Streamed: each chunk of rows becomes one string with one ``%`` formatting call (a
template repeated per row), so no list of per-event dicts is ever built.
chrome://tracing gives up around a million events; bigger exports get a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import numpy as np

from osvtrace.exports import timeline_build
from osvtrace.exports.common import Options, ProgressFn, Result, Selection, atomic_file
from osvtrace.exports.registry import register
from osvtrace.exports.timeline import ARGS, FLOW_END, FLOW_NONE, FLOW_START, PTR, Items, Timeline
from osvtrace.model import Model

CHUNK = 200_000
CHROME_LIMIT = 1_000_000  # chrome://tracing fails around here
GROUPS = {"cpu": (1, "CPUs"), "thread": (2, "threads"), "mutex": (3, "mutexes")}
_TS = '"ts":%d.%03d'
# Added to every row's key (guest tid, CPU number, mutex row index) to make its tid: no row
# is tid 0, which Chrome and Perfetto treat as the idle task. tid - TID_OFFSET on pid 2 is
# the guest thread id (also in the row's name, "NAME (TID)").
TID_OFFSET = 1


def _rows(tl: Timeline) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """pid, tid (by track uuid, -1 for tracks without events) and label of each row."""
    n = max((t.uuid for t in tl.tracks), default=0) + 1
    pid = np.full(n, -1, np.int64)
    tid = np.full(n, -1, np.int64)
    label: dict[int, str] = {}
    waiters: dict[int, list] = {}
    for t in tl.tracks:
        if t.kind == "waits":
            waiters.setdefault(t.parent, []).append(t)
    row = 0
    for t in tl.tracks:
        if t.kind in ("cpu", "thread"):
            pid[t.uuid], tid[t.uuid] = GROUPS[t.kind][0], t.key + TID_OFFSET
            label[t.uuid] = t.name if t.kind == "cpu" else f"{t.name} ({t.key})"
        elif t.kind == "mutex":  # the mutex's row, then its waiters' rows
            for u in [t] + sorted(waiters.get(t.uuid, []), key=lambda w: w.rank):
                pid[u.uuid], tid[u.uuid] = GROUPS["mutex"][0], row + TID_OFFSET
                row += 1
                label[u.uuid] = t.name if u is t else f"{t.name} {u.name}"
    return pid, tid, label


def _metadata(tl: Timeline, pid: np.ndarray, tid: np.ndarray, label: dict[int, str]) -> list[str]:
    out = []
    for kind, (p, name) in GROUPS.items():
        rows = [int(tid[t.uuid]) for t in tl.tracks if t.kind == kind]
        if rows:
            # process metadata goes on the process's first row (a tid it has anyway, never 0)
            first = min(rows)
            out.append(json.dumps({"ph": "M", "pid": p, "tid": first, "name": "process_name", "args": {"name": name}}))
            out.append(json.dumps({"ph": "M", "pid": p, "tid": first, "name": "process_sort_index",
                                   "args": {"sort_index": p}}))
    for uuid, text in label.items():
        p, r = int(pid[uuid]), int(tid[uuid])
        out.append(json.dumps({"ph": "M", "pid": p, "tid": r, "name": "thread_name", "args": {"name": text}}))
        out.append(json.dumps({"ph": "M", "pid": p, "tid": r, "name": "thread_sort_index", "args": {"sort_index": r}}))
    return out


def _format(template: str, columns: list[np.ndarray | list]) -> str:
    """``template`` (with a trailing ``,\\n``) filled for every row, in one formatting call."""
    n = len(columns[0])
    if not n:
        return ""
    flat = np.empty((n, len(columns)), object)
    for k, c in enumerate(columns):
        flat[:, k] = c
    return (template * n) % tuple(flat.ravel().tolist())


def _events(p: Items, pid: np.ndarray, tid: np.ndarray, names: np.ndarray) -> str:
    """One chunk of slices or instants, with their flow events."""
    rp, rt = pid[p.track], tid[p.track]
    f = p.flow_kind != FLOW_NONE
    if p.instant:
        # an instant that an arrow starts or ends at is written as a zero-length slice:
        # chrome binds flow events to slices, and an "i" event is not one
        dur = np.where(f, 0, -1)
        head = np.where(f, '{"ph":"X","dur":0,', '{"ph":"i","s":"t",')
    else:
        dur = p.dur
        head = np.full(len(p), '{"ph":"X","dur":%d.%03d,')
    out = []
    for a in np.unique(p.arg_name).tolist():  # one template per kind of argument
        for kind in np.unique(head).tolist():  # and per kind of event
            m = (p.arg_name == a) & (head == kind)
            if not m.any():
                continue
            if a < 0:
                arg, vals = "", []
            else:
                name, akind = ARGS[a]
                arg, vals = (f'"{name}":"0x%x"', [p.arg[m]]) if akind == PTR else (f'"{name}":%d', [p.arg[m]])
            cols = [rp[m], rt[m], p.ts[m] // 1000, p.ts[m] % 1000]
            if not p.instant:
                cols = [dur[m] // 1000, dur[m] % 1000] + cols
            out.append(_format(kind + '"pid":%d,"tid":%d,' + _TS + ',"name":%s,"args":{' + arg + "}},\n",
                               cols + [names[p.name[m]]] + vals))
    if f.any():
        ph = np.where(p.flow_kind[f] == FLOW_START, "s", np.where(p.flow_kind[f] == FLOW_END, "f", "t"))
        # "bp":"e" binds every endpoint to the slice that encloses it (or starts at it)
        out.append(_format('{"ph":"%s","bp":"e","cat":"flow","name":"flow","id":%d,"pid":%d,"tid":%d,' + _TS
                           + "},\n", [ph, p.flow[f], rp[f], rt[f], p.ts[f] // 1000, p.ts[f] % 1000]))
    return "".join(out)


def write_timeline(tl: Timeline, f: IO[bytes], progress: ProgressFn | None = None) -> int:
    """The JSON document; returns the number of trace events written."""
    pid, tid, label = _rows(tl)
    names = np.array([json.dumps(s) for s in tl.names] or ['""'], object)
    meta = _metadata(tl, pid, tid, label)
    f.write(b'{"displayTimeUnit":"ns","otherData":' + json.dumps({"title": tl.title}).encode() +
            b',"traceEvents":[\n')
    f.write(",\n".join(meta).encode())
    count = len(meta)
    sep = b",\n" if meta else b""
    parts = tl.slices + tl.instants
    total = sum(len(p) for p in parts)
    done = 0
    for p in parts:
        for a in range(0, len(p), CHUNK):
            part = p.take(slice(a, a + CHUNK))
            text = _events(part, pid, tid, names)
            if text:
                # chunks end with ",\n"; the separator goes before the next one instead
                f.write(sep + text[:-2].encode())
                sep = b",\n"
                count += text.count("\n")
            done += len(part)
            if progress:
                progress(done, total, "writing JSON")
    f.write(b"\n]}\n")
    return count


@register("chrome", suffix=".json",
          doc="Chrome Trace Event JSON (chrome://tracing, Perfetto): slices, instants, flows; best under 1M events.")
def write(model: Model, out: Path, opts: Options) -> Result:
    tl = timeline_build.build(model, Selection(model.trace, opts.filter), opts.progress)
    with atomic_file(out) as f:
        n = write_timeline(tl, f, opts.progress)
    res = Result(out, {**tl.count(), "events": n, "bytes": out.stat().st_size})
    if n > CHROME_LIMIT:
        res.notes.append(f"{n:,} events: chrome://tracing fails above about {CHROME_LIMIT:,}; narrow it with "
                         f"--since/--until/--cpu/--thread, or use --format perfetto (ui.perfetto.dev)")
    return res
