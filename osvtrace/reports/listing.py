"""`report list`: one line per event, formatted only at the moment of printing."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model import Model
from osvtrace.model.filters import Filter, format_ns
from osvtrace.reports.common import Options
from osvtrace.reports.registry import Opt, Spec, register_spec
from osvtrace.reports.render import to_json


def selected(trace: Trace, flt: Filter, limit: int | None) -> np.ndarray:
    idx = flt.indices(trace)
    return idx if limit is None else idx[:limit]


def lines(trace: Trace, idx: np.ndarray) -> Iterator[str]:
    ev = trace.events
    names = trace.catalog.by_id
    width = max((len(n) for n in trace.threads.values()), default=8)
    width = min(max(width, 8), 24)
    for i in idx.tolist():
        tp = names.get(int(ev.tp[i]))
        yield (f"{trace.thread_name(int(ev.tid[i]))[:width]:<{width}} {int(ev.cpu[i]):>3} "
               f"{format_ns(int(ev.time[i]))} {tp.name if tp else ev.tp[i]:<18} {trace.format_event(i)}")


def records(trace: Trace, idx: np.ndarray) -> Iterator[dict[str, Any]]:
    """Events as dicts (for --json); arguments decoded per tracepoint in bulk."""
    ev = trace.events
    for i in idx.tolist():
        tp = trace.catalog.by_id.get(int(ev.tp[i]))
        args = {}
        if tp is not None:
            for f in tp.fields:
                v = trace.field_values(f, ev.row[i:i + 1])[0]
                args[f.name] = (v.decode("utf-8", "replace") if f.type == "str" else
                                bytes(v).hex() if f.type == "bytes" else int(v))
        yield {"time_ns": int(ev.time[i]), "cpu": int(ev.cpu[i]), "tid": int(ev.tid[i]),
               "thread": trace.thread_name(int(ev.tid[i])), "tracepoint": tp.name if tp else int(ev.tp[i]),
               "args": args}


def _listed(model: Model, flt: Filter, opts: Options) -> tuple[Trace, np.ndarray]:
    return model.trace, selected(model.trace, flt, opts.limit)


register_spec(Spec("list", "One line per event: thread, CPU, time (s.ns), tracepoint, arguments.", _listed,
                   options=(Opt("--limit", "int", "At most this many events.", None, "N", lo=0),), formats=("json",),
                   json_help="One JSON object per line (JSON Lines).",
                   text=lambda sel, _opts: lines(*sel),
                   json=lambda sel: (to_json(r, indent=None) for r in records(*sel))))
