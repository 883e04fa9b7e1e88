"""Call-tree reports: prof (samples), and the tree views of prof-wait and prof-lock (their flat
tables stay in wait.py and locks.py, behind --flat). OSv's trace.py prof, prof-wait and
prof-lock print the same trees."""

from __future__ import annotations

from osvtrace.errors import UsageError
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports.calltree import ORIENTATIONS, build, name_paths, preorder
from osvtrace.reports.common import Options, Report
from osvtrace.reports.profiles import GROUPS, Profile, profile
from osvtrace.reports.registry import Opt, register

TREE_OPTS: tuple[Opt, ...] = (
    Opt("--tree", "str", "callee: where it was spent first, then its callers (trace.py's default); caller: from the "
        "thread's entry down (trace.py -r).", "callee", "ORDER"),
    Opt("--max-levels", "int", "Frames shown below each root.", None, "N", lo=1),
    Opt("--group-by", "str", f"One tree per {', '.join(g for g in GROUPS if g != 'none')} (default: one tree; "
        "lock: per mutex or wait object).", "none", "BY"),
    Opt("--min-count", "int", "Only nodes with at least this many samples.", 0, "N", lo=0),
    Opt("--min-duration", "time", "Only nodes with at least this much time (250us ...).", 0, "TIME"),
    Opt("--limit", "int", "Tree nodes shown as text.", 300, "N", lo=0),
)
FLAT_OPT = Opt("--flat", "flag", "The flat table (per thread and what it waited on) instead of the tree.")


def stack_notes(model: Model, p: Profile) -> list[str]:
    """What the profile's stacks may get wrong: cut by the depth bound, or looping."""
    notes = []
    if len(p.stack):
        st = model.stacks
        cut, loop = st.cut()[p.stack], st.loops()[p.stack]
        if cut.any():
            notes.append(f"{int(p.count[cut].sum()):,} samples' stacks are {st.bound or st.width} frames deep, the "
                         "most a record holds: their outer frames may be missing")
        if loop.any():
            notes.append(f"{int(p.count[loop].sum()):,} samples' stacks repeat an address (recursion, or a bad frame "
                         "walk)")
    return notes


def tree_report(model: Model, flt: Filter, opts: Options, kind: str) -> Report:
    """A profile of `kind` as a call tree (rows: its nodes, parents first)."""
    orient = opts.more.get("tree") or "callee"
    if orient not in ORIENTATIONS:
        raise UsageError(f"{kind}: --tree {orient}: give callee or caller")
    p = profile(model, flt, kind, opts.more.get("group_by") or "none")
    named = name_paths(model, p.stack, caller_first=orient == "caller")
    t = build(p, named, opts.more.get("max_levels"))
    cols = preorder(t, named, p.metric, opts.min_duration, opts.more.get("min_count") or 0)
    notes = list(p.notes) + stack_notes(model, p)
    what = "time" if p.metric == "ns" else "samples"
    notes.append(f"pct: share of its root's {what}; {orient} first; machinery frames (tracepoint, trace.hh, thread "
                 "entry) left out as trace.py does")
    kinds = {"total": "ns", "pct": "pct", "addr": "addr"}
    return Report(f"{kind}: {p.source}, {orient} first", cols, kinds, notes,
                  extra={"metric": p.metric, "orientation": orient, "group_by": p.group_by, "source": p.source},
                  tree="frame")


@register("prof", "Call tree of samples: the CPU sampler's records (cpu_sample; OSv's sampler_tick), else every "
                  "record with a backtrace, or the --tp ones (trace.py's prof).", options=TREE_OPTS)
def prof(model: Model, flt: Filter, opts: Options) -> Report:
    return tree_report(model, flt, opts, "prof")
