"""Folded stacks: one line per distinct stack, `outer;...;inner VALUE`, what flamegraph.pl,
inferno and speedscope read. The stacks and their weights are the call-tree reports'
(osvtrace.reports.profiles), so a flame graph of `--profile prof-lock` shows the same totals
as `report prof-lock`."""

from __future__ import annotations

from pathlib import Path

from osvtrace.errors import UsageError
from osvtrace.exports.common import Options, Result, atomic_file
from osvtrace.exports.registry import ALL_FILTERS, register
from osvtrace.model import Model
from osvtrace.reports.calltree import folded, name_paths
from osvtrace.reports.profiles import profile

METRICS = ("count", "ns")


@register("folded", suffix=".folded", filters=ALL_FILTERS,
          doc="folded stacks (flamegraph.pl, inferno, speedscope): --profile, --metric count|ns")
def write(model: Model, out: Path, opts: Options) -> Result:
    p = profile(model, opts.filter, opts.profile, opts.group_by)
    metric = opts.metric or p.metric
    if metric not in METRICS:
        raise UsageError(f"folded: --metric {metric}: give count or ns")
    if metric == "ns" and p.metric != "ns":
        raise UsageError(f"folded: --metric ns: {opts.profile} has no time (its samples are counts)")
    lines = folded(p, name_paths(model, p.stack, caller_first=True), metric)
    with atomic_file(out) as f:
        f.write("".join(f"{k} {v}\n" for k, v in sorted(lines.items())).encode())
    return Result(out, {"stacks": len(lines), metric: sum(lines.values())}, p.notes)
