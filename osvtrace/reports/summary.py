"""`report summary`: what is in a trace, counted per tracepoint, CPU and thread, and what is missing."""

from __future__ import annotations

from typing import Any

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.filters import Filter, format_duration, format_ns
from osvtrace.reports.registry import Spec, register_spec


def summary(trace: Trace, flt: Filter | None = None) -> dict[str, Any]:
    """The summary as plain data (the CLI prints it as text or JSON)."""
    ev = trace.events
    idx = None if flt is None else flt.indices(trace)
    tp = ev.tp if idx is None else ev.tp[idx]
    cpu = ev.cpu if idx is None else ev.cpu[idx]
    tid = ev.tid if idx is None else ev.tid[idx]
    time = ev.time if idx is None else ev.time[idx]
    ncpu = max(trace.ncpus, 1)
    # one bincount over (tracepoint, cpu) pairs instead of a loop over events
    pair = tp.astype(np.int64) * ncpu + cpu
    counts = np.bincount(pair, minlength=(trace.catalog.max_id + 1) * ncpu).reshape(-1, ncpu)
    by_tp = []
    for t in trace.catalog.tracepoints:
        if t.id < len(counts) and counts[t.id].sum():
            by_tp.append({"tracepoint": t.name, "id": t.id, "count": int(counts[t.id].sum()),
                          "per_cpu": [int(x) for x in counts[t.id]]})
    by_tp.sort(key=lambda r: -r["count"])
    tids, tcounts = np.unique(tid, return_counts=True)
    threads = [{"tid": int(t), "name": trace.thread_name(int(t)), "events": int(c)}
               for t, c in sorted(zip(tids.tolist(), tcounts.tolist()), key=lambda x: -x[1])]
    loss = []
    for c in range(ncpu):
        lc = trace.loss.get(c)
        row = {"cpu": c, "events": int((cpu == c).sum())}
        if lc is not None and trace.facts.loss_known:
            row.update(dropped=lc.dropped, gap_slots=lc.gap_slots, overwritten_slots=lc.overwritten_slots,
                       partial_slots=lc.partial_slots, invalid_slots=lc.invalid_slots,
                       duplicate_slots=lc.duplicate_slots, reordered=lc.reordered)
        loss.append(row)
    start, end = (int(time[0]), int(time[-1])) if len(time) else (0, 0)
    m = trace.facts
    return {
        "file": str(trace.path),
        "capture": m.capture,
        "cmdline": m.cmdline,
        "build_id": m.build_id,
        "cpus": ncpu,
        "events": int(len(tp)),
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "tracepoints": by_tp,
        "threads": threads,
        "cpu": loss,
        "lost_total": int(sum(r.get("dropped", 0) + r.get("gap_slots", 0) + r.get("invalid_slots", 0)
                              for r in loss)),
        "damaged_chunks": m.damaged_chunks,
        "truncated": m.truncated,
        "complete": m.complete,
        "warnings": trace.warnings,
        "loss_known": m.loss_known,
        "origin": m.origin,
    }


def render(s: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`summary`."""
    out = [f"trace     {s['file']}",
           f"capture   {s['capture'] or '?'}   cpus {s['cpus']}   build {s['build_id'] or '?'}",
           f"cmdline   {s['cmdline'] or '-'}",
           f"events    {s['events']:,}   from {format_ns(s['start_ns'])} to {format_ns(s['end_ns'])} "
           f"({format_duration(s['duration_ns'])})",
           f"file      {'complete' if s['complete'] else 'INCOMPLETE (writer did not finish)'}"
           + (f", {s['damaged_chunks']} damaged section(s) skipped" if s["damaged_chunks"] else "")
           + (", truncated" if s["truncated"] else "")]
    if s.get("origin"):
        out.append(f"origin    {s['origin']}")
    out.append("")
    ncpu = s["cpus"]
    w = max([len("tracepoint")] + [len(r["tracepoint"]) for r in s["tracepoints"]])
    out.append(f"{'tracepoint':<{w}} {'total':>12} " + " ".join(f"{'cpu' + str(c):>10}" for c in range(ncpu)))
    for r in s["tracepoints"]:
        out.append(f"{r['tracepoint']:<{w}} {r['count']:>12,} " + " ".join(f"{x:>10,}" for x in r["per_cpu"]))
    out += ["", f"{'cpu':>4} {'events':>12} {'dropped':>9} {'gap':>9} {'overwrit':>9} {'partial':>8} {'invalid':>8}"]
    known = s.get("loss_known", True)

    def n(r: dict, key: str) -> str:  # "?" where the kernel counts nothing
        return f"{r.get(key, 0):,}" if known else "?"

    for r in s["cpu"]:
        out.append(f"{r['cpu']:>4} {r['events']:>12,} {n(r, 'dropped'):>9} {n(r, 'gap_slots'):>9} "
                   f"{n(r, 'overwritten_slots'):>9} {n(r, 'partial_slots'):>8} {n(r, 'invalid_slots'):>8}")
    lost = s["lost_total"]
    if known:
        out.append(f"lost: {lost:,} records/slots" + ("" if lost else " (none)")
                   + "; overwritten = flight-recorder slots older than the capture")
    else:
        out.append("lost: unknown: this kernel counts no loss and its rings overwrite silently "
                   "(the warnings say where each CPU's data starts)")
    out += ["", f"{'tid':>6} {'thread':<24} {'events':>12}"]
    for r in s["threads"][:20]:
        out.append(f"{r['tid']:>6} {r['name']:<24} {r['events']:>12,}")
    if len(s["threads"]) > 20:
        out.append(f"... and {len(s['threads']) - 20} more threads (--json lists all)")
    return "\n".join(out)


register_spec(Spec("summary", "Counts per tracepoint and CPU, time span, lost records per CPU, threads.",
                   lambda model, flt, _opts: summary(model.trace, flt), options=(), formats=("json",),
                   json_help="Machine-readable output.", text=lambda s, _opts: render(s)))
