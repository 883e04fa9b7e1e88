"""Call trees of a profile: stacks named and merged into a tree of frames, with counts, time and
percentages, callee-first (where the time was spent, then who called it) or caller-first.

Names are looked up once per distinct address (osvtrace.model.frames), paths once per
distinct stack, and the tree is built from the profile's (group, stack) rows: Python work
grows with the stacks, never with the samples.

Frames that are tracing or scheduling machinery are dropped as OSv's scripts/osv/prof.py
drops them (strip_garbage), so the trees are trace.py's: the frames of the tracepoint itself
(the record's first frames), frames inlined from trace.hh, std::function's _M_invoke, and
everything outside a thread's entry (thread_main).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osvtrace.model import Model
from osvtrace.model.frames import frame_names
from osvtrace.reports.profiles import Profile

# scripts/osv/prof.py: unimportant_prefixes, unimportant_functions, bottom_of_stack
MACHINERY_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("tracepoint_base::log_backtrace(trace_record*, unsigned char*&)", "log", "trace_slow_path", "operator()", "_FUN",
     "prof::cpu_sampler::timer_fired()", "prof::cpu_sampler::timer_fired()", "sched::timer_list::fired()",
     "std::function<void ()>::operator()() const", "interrupt_descriptor_table::invoke_interrupt(unsigned int)",
     "interrupt", "interrupt_entry_common"),
    ("tracepoint_base::log_backtrace(trace_record*, unsigned char*&)", "log", "trace_slow_path", "operator()", "_FUN",
     "operator()"),
    ("log", "trace_slow_path", "operator()", "_FUN", "operator()"),
)
MACHINERY_FUNCTIONS = frozenset({"_M_invoke"})
MACHINERY_FILES = ("trace.hh",)  # OSv's tracepoint templates, and what is inlined from them
OUTERMOST = frozenset({"thread_main", "thread_main_c"})  # a thread's entry: the frames beyond say nothing

ORIENTATIONS = ("callee", "caller")


@dataclass
class Named:
    """Per distinct stack of a profile, its path of frame names (ids into names)."""

    paths: dict[int, tuple[int, ...]]
    names: list[str]
    addrs: list[int]  # per name, the lowest return address seen with it


def name_paths(model: Model, stack_ids: np.ndarray, caller_first: bool = False) -> Named:
    """The named, machinery-free path of each stack (innermost first unless caller_first)."""
    stacks = model.stacks
    sids = np.unique(stack_ids)
    frames = stacks.frames[sids] if len(sids) else np.zeros((0, 0), np.uint64)
    fn = frame_names(model.trace, frames[frames != 0])
    files = [s.rsplit(":", 1)[0] if s.rsplit(":", 1)[-1].isdigit() else s for s in fn.source.tolist()]
    drop = np.array([f in MACHINERY_FUNCTIONS or fl.endswith(MACHINERY_FILES)
                     for f, fl in zip(fn.function.tolist(), files)], bool)
    outer = np.array([f in OUTERMOST for f in fn.function.tolist()], bool)
    name_id: dict[str, int] = {}
    names: list[str] = []
    addrs: list[int] = []
    paths: dict[int, tuple[int, ...]] = {}
    for sid, row in zip(sids.tolist(), frames):
        row = row[row != 0]
        k = fn.index(row)
        fnames = fn.function[k].tolist()
        start = 0
        for chain in MACHINERY_PREFIXES:
            if tuple(fnames[:len(chain)]) == chain:
                start = len(chain)
                break
        path: list[int] = []
        for j in range(start, len(row)):
            if outer[k[j]]:
                break
            if drop[k[j]]:
                continue
            name = fnames[j]
            i = name_id.get(name)
            if i is None:
                i = name_id[name] = len(names)
                names.append(name)
                addrs.append(int(row[j]))
            else:
                addrs[i] = min(addrs[i], int(row[j]))
            path.append(i)
        paths[sid] = tuple(reversed(path)) if caller_first else tuple(path)
    return Named(paths, names, addrs)


@dataclass
class Tree:
    """Nodes in creation order; node 0.. are the groups' roots."""

    parent: list[int]
    name: list[int]  # into Named.names; -1 for a root
    label: list[str]  # a root's label
    count: list[int]
    ns: list[int]
    children: list[dict[int, int]]


def build(p: Profile, named: Named, max_levels: int | None = None) -> Tree:
    """Merge the profile's stacks into one tree per group (the paths cut to max_levels)."""
    t = Tree([], [], [], [], [], [])

    def node(parent: int, name: int, label: str = "") -> int:
        t.parent.append(parent)
        t.name.append(name)
        t.label.append(label)
        t.count.append(0)
        t.ns.append(0)
        t.children.append({})
        return len(t.parent) - 1

    roots: dict[int, int] = {}
    for g, sid, c, ns in zip(p.group.tolist(), p.stack.tolist(), p.count.tolist(), p.ns.tolist()):
        path = named.paths[sid]
        if not path:  # all machinery: trace.py leaves such a sample out
            continue
        if max_levels is not None:
            path = path[:max_levels]
        cur = roots.get(g)
        if cur is None:
            cur = roots[g] = node(-1, -1, p.groups[g])
        t.count[cur] += c
        t.ns[cur] += ns
        for name in path:
            nxt = t.children[cur].get(name)
            if nxt is None:
                nxt = t.children[cur][name] = node(cur, name)
            t.count[nxt] += c
            t.ns[nxt] += ns
            cur = nxt
    return t


def preorder(t: Tree, named: Named, metric: str, min_ns: int = 0, min_count: int = 0) -> dict[str, np.ndarray]:
    """The tree's nodes as columns, parents before children, heaviest first (trace.py's
    order: time, then count); nodes under min_ns or min_count are left out with their subtree."""
    key = (lambda i: (-t.ns[i], -t.count[i])) if metric == "ns" else (lambda i: (-t.count[i], -t.ns[i]))
    roots = sorted((i for i, p in enumerate(t.parent) if p < 0), key=key)
    order: list[int] = []
    level: list[int] = []
    root_of: list[int] = []
    stack = [(r, 0, r) for r in reversed(roots)]
    while stack:
        i, lv, root = stack.pop()
        if lv and (t.ns[i] < min_ns or t.count[i] < min_count):
            continue
        order.append(i)
        level.append(lv)
        root_of.append(root)
        stack.extend((c, lv + 1, root) for c in sorted(t.children[i].values(), key=key, reverse=True))
    pos = {i: k for k, i in enumerate(order)}
    count = np.array([t.count[i] for i in order], np.int64)
    ns = np.array([t.ns[i] for i in order], np.int64)
    tot = np.array([t.ns[r] if metric == "ns" else t.count[r] for r in root_of], np.float64)
    val = ns if metric == "ns" else count
    cols = {"level": np.array(level, np.int32),
            "frame": np.array([t.label[i] if t.name[i] < 0 else named.names[t.name[i]] for i in order], object)}
    if metric == "ns":
        cols["total"] = ns
    cols["pct"] = np.where(tot > 0, val * 100.0 / np.maximum(tot, 1), 0.0)
    cols["count"] = count
    cols["addr"] = np.array([named.addrs[t.name[i]] if t.name[i] >= 0 else 0 for i in order], np.uint64)
    cols["parent"] = np.array([pos.get(t.parent[i], -1) for i in order], np.int64)
    return cols


def folded(p: Profile, named: Named, metric: str) -> dict[str, int]:
    """Folded stacks: caller-first path 'a;b;c' -> weight (paths that name the same frames
    merge), the lines flamegraph.pl, inferno and speedscope read."""
    w = p.weight(metric)
    out: dict[str, int] = {}
    for sid, v in zip(p.stack.tolist(), w.tolist()):
        path = named.paths[sid]
        if path and v:
            line = ";".join(named.names[i].replace(";", ":") for i in path)
            out[line] = out.get(line, 0) + int(v)
    return out
