"""pprof: a profile.proto Profile, gzip-compressed, for `go tool pprof` and the tools that
read it (speedscope, Pyroscope ...). One Sample per distinct (group, stack) of the call-tree
reports' profile (osvtrace.reports.profiles) with two values, [samples count, time ns];
one Location per return address (the frame's address kept beside its name), one Function
per name. The schema is osvtrace/exports/proto/pprof.proto (pprof's, restated)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from osvtrace.exports.common import Options, Result, atomic_file
from osvtrace.exports.registry import ALL_FILTERS, register
from osvtrace.exports.timeline import Names
from osvtrace.model import Model
from osvtrace.model.frames import frame_names
from osvtrace.reports.calltree import name_paths
from osvtrace.reports.profiles import profile

TIME_TYPE = {"prof": "time", "prof-wait": "wait", "prof-lock": "lock-wait", "prof-hold": "lock-hold"}


@register("pprof", suffix=".pb.gz", filters=ALL_FILTERS,
          doc="pprof profile.proto, gzip (go tool pprof): --profile prof|prof-wait|prof-lock|prof-hold")
def write(model: Model, out: Path, opts: Options) -> Result:
    from osvtrace.exports.proto import pprof_pb2 as pb

    p = profile(model, opts.filter, opts.profile, opts.group_by)
    named = name_paths(model, p.stack, caller_first=False)
    names = Names()
    s = names.id
    s("")  # pprof's string table starts with ""
    prof = pb.Profile()
    prof.sample_type.add(type=s("samples"), unit=s("count"))
    prof.sample_type.add(type=s(TIME_TYPE[p.kind]), unit=s("nanoseconds"))
    prof.default_sample_type = s(TIME_TYPE[p.kind] if p.metric == "ns" else "samples")
    addrs = np.unique(named.frames[named.frames != 0])
    fn = frame_names(model.trace, addrs)
    func_of: dict[str, int] = {}
    for a, name, src in zip(addrs.tolist(), fn.function.tolist(), fn.source.tolist()):
        file, _, line = src.rpartition(":") if src.rpartition(":")[2].isdigit() else (src, "", "0")
        fid = func_of.get(name)
        if fid is None:
            fid = func_of[name] = len(func_of) + 1
            prof.function.add(id=fid, name=s(name), system_name=s(name), filename=s(file))
        loc = prof.location.add(id=len(prof.location) + 1, address=a)
        loc.line.add(function_id=fid, line=int(line))
    rows = named.rows(p.stack)
    label = {"thread": "thread", "cpu": "cpu", "lock": "lock", "tracepoint": "tracepoint"}.get(p.group_by)
    for g, r, c, ns in zip(p.group.tolist(), rows.tolist(), p.count.tolist(), p.ns.tolist()):
        frames = named.frames[r]
        frames = frames[frames != 0]
        if not len(frames):
            continue
        smp = prof.sample.add(location_id=(np.searchsorted(addrs, frames) + 1).tolist(), value=[c, ns])
        if label:
            smp.label.add(key=s(label), str=s(p.groups[g]))
    lo, hi = model.trace.span_ns
    prof.duration_nanos = max(hi - lo, 0)
    if model.trace.facts.wall_clock_ns:
        prof.time_nanos = model.trace.facts.wall_clock_ns + lo
    prof.comment.append(s(f"osvtrace {p.kind}: {p.source}"))
    prof.string_table.extend(names.strings)
    with atomic_file(out) as f:
        f.write(gzip.compress(prof.SerializeToString()))
    return Result(out, {"samples": len(prof.sample), "locations": len(prof.location),
                        "functions": len(prof.function)}, p.notes)
