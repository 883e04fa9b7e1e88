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
    """The named, machinery-free paths of a profile's distinct stacks."""

    stack_ids: np.ndarray  # sorted distinct stack ids; row k of paths is stack_ids[k]'s
    paths: np.ndarray  # int32 (stacks, frames): name ids, -1 padded (innermost first, or caller first)
    names: np.ndarray  # object: the distinct frame names
    addrs: np.ndarray  # uint64: per name, the lowest return address seen with it
    frames: np.ndarray  # uint64 (stacks, frames): the return addresses of paths' frames, 0 padded

    def rows(self, stack_ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.stack_ids, stack_ids)


def name_paths(model: Model, stack_ids: np.ndarray, caller_first: bool = False) -> Named:
    """The named, machinery-free path of each distinct stack (innermost first unless caller_first)."""
    sids = np.unique(stack_ids)
    frames = model.stacks.frames[sids] if len(sids) else np.zeros((0, 0), np.uint64)
    valid = frames != 0
    fn = frame_names(model.trace, frames[valid])
    files = [s.rsplit(":", 1)[0] if s.rsplit(":", 1)[-1].isdigit() else s for s in fn.source.tolist()]
    names, name_of = np.unique(fn.function.astype(str), return_inverse=True)
    name_of = name_of.reshape(-1)
    drop_a = np.array([f in MACHINERY_FUNCTIONS or fl.endswith(MACHINERY_FILES)
                       for f, fl in zip(fn.function.tolist(), files)], bool)
    outer_a = np.isin(fn.function.astype(str), list(OUTERMOST))
    k = np.zeros(frames.shape, np.int64)
    k[valid] = fn.index(frames[valid])
    n = np.where(valid, name_of[k] if len(name_of) else -1, -1)
    # the tracepoint's own frames: the first chain of MACHINERY_PREFIXES the stack starts with
    start = np.zeros(len(sids), np.int64)
    matched = np.zeros(len(sids), bool)
    for chain in MACHINERY_PREFIXES:
        if len(chain) > frames.shape[1] or not all(c in names for c in chain):
            continue
        ids = np.searchsorted(names, np.array(chain))
        hit = ~matched & (n[:, :len(chain)] == ids).all(axis=1)
        start[hit] = len(chain)
        matched |= hit
    col = np.arange(frames.shape[1])
    outer = np.where(valid, outer_a[k], False)
    keep = valid & ~np.where(valid, drop_a[k], True) & (np.cumsum(outer, axis=1) == 0) & (col >= start[:, None])
    # each row's kept frames moved to its front, in order
    order = np.argsort(~keep, axis=1, kind="stable")
    paths = np.take_along_axis(np.where(keep, n, -1), order, axis=1).astype(np.int32)
    kept = np.take_along_axis(np.where(keep, frames, np.uint64(0)), order, axis=1)
    if caller_first:
        length = keep.sum(axis=1)
        rev = np.maximum(length[:, None] - 1 - col, -1)
        paths = np.where(rev >= 0, np.take_along_axis(paths, np.maximum(rev, 0), axis=1), -1).astype(np.int32)
        kept = np.where(rev >= 0, np.take_along_axis(kept, np.maximum(rev, 0), axis=1), np.uint64(0))
    addrs = np.full(len(names), np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(addrs, name_of, fn.addr)
    return Named(sids, paths, names.astype(object), addrs, kept)


@dataclass
class Tree:
    """Nodes: the groups' roots first, then one level after another."""

    parent: np.ndarray  # int64, -1 for a root
    name: np.ndarray  # int64 into Named.names, -1 for a root
    label: list[str]  # per root: its group's label
    count: np.ndarray  # int64
    ns: np.ndarray  # int64


def build(p: Profile, named: Named, max_levels: int | None = None) -> Tree:
    """Merge the profile's stacks into one tree per group, a level at a time: the nodes of a
    level are the distinct (parent, frame) pairs of the paths' next frames."""
    paths = named.paths[named.rows(p.stack)] if len(p.stack) else np.zeros((0, 0), np.int32)
    if max_levels is not None:
        paths = paths[:, :max_levels]
    # a stack that is all machinery says nothing: trace.py leaves such a sample out
    some = paths[:, 0] >= 0 if paths.shape[1] else np.zeros(len(paths), bool)
    paths, count, ns = paths[some], p.count[some], p.ns[some]
    groups, cur = np.unique(p.group[some], return_inverse=True)
    cur = cur.reshape(-1).astype(np.int64)
    g = len(groups)
    parent = [np.full(g, -1, np.int64)]
    name = [np.full(g, -1, np.int64)]
    cnt = [np.bincount(cur, count, g).astype(np.int64)]
    tot = [np.bincount(cur, ns, g).astype(np.int64)]
    nn = len(named.names) + 1
    nodes = g
    for d in range(paths.shape[1]):
        act = np.flatnonzero(paths[:, d] >= 0)
        if not len(act):
            break
        key = cur[act] * nn + paths[act, d]
        uk, inv = np.unique(key, return_inverse=True)
        inv = inv.reshape(-1)
        parent.append(uk // nn)
        name.append(uk % nn)
        cnt.append(np.bincount(inv, count[act], len(uk)).astype(np.int64))
        tot.append(np.bincount(inv, ns[act], len(uk)).astype(np.int64))
        cur[act] = nodes + inv
        nodes += len(uk)
    return Tree(np.concatenate(parent), np.concatenate(name), [p.groups[i] for i in groups.tolist()],
                np.concatenate(cnt), np.concatenate(tot))


def preorder(t: Tree, named: Named, metric: str, min_ns: int = 0, min_count: int = 0) -> dict[str, np.ndarray]:
    """The tree's nodes as columns, parents before children, heaviest first (trace.py's
    order: time, then count); nodes under min_ns or min_count are left out with their subtree."""
    a, b = (t.ns, t.count) if metric == "ns" else (t.count, t.ns)
    n = len(t.parent)
    ok = (t.parent < 0) | ((t.ns >= min_ns) & (t.count >= min_count))
    by = np.lexsort((np.arange(n), -b, -a, t.parent))  # siblings together, heaviest first
    by = by[ok[by]]
    par = t.parent[by]
    # the children of node i are by[lo[i + 1]:hi[i + 1]] (index 0: the roots, parent -1)
    lo = np.searchsorted(par, np.arange(-1, n), "left").tolist()
    hi = np.searchsorted(par, np.arange(-1, n), "right").tolist()
    by_l = by.tolist()
    order: list[int] = []
    level: list[int] = []
    todo = [(r, 0) for r in reversed(by_l[lo[0]:hi[0]])]
    while todo:
        i, lv = todo.pop()
        order.append(i)
        level.append(lv)
        todo.extend((c, lv + 1) for c in reversed(by_l[lo[i + 1]:hi[i + 1]]))
    o = np.array(order, np.int64)
    pos = np.full(n + 1, -1, np.int64)
    pos[o] = np.arange(len(o))
    # each node's root: roots come first in t, so follow parents until one is below len(label)
    root = o.copy()
    while len(root) and (t.parent[root] >= 0).any():
        up = t.parent[root] >= 0
        root[up] = t.parent[root[up]]
    whole = (t.ns if metric == "ns" else t.count)[root].astype(np.float64)
    val = (t.ns if metric == "ns" else t.count)[o]
    names = t.name[o]
    frame = np.empty(len(o), object)
    is_root = names < 0
    frame[is_root] = [t.label[i] for i in o[is_root].tolist()]
    frame[~is_root] = named.names[names[~is_root]]
    cols = {"level": np.array(level, np.int32), "frame": frame}
    if metric == "ns":
        cols["total"] = t.ns[o]
    cols["pct"] = np.where(whole > 0, val * 100.0 / np.maximum(whole, 1), 0.0)
    cols["count"] = t.count[o]
    cols["addr"] = np.where(is_root, np.uint64(0), named.addrs[np.maximum(names, 0)] if len(named.addrs)
                            else np.uint64(0)).astype(np.uint64)
    cols["parent"] = pos[t.parent[o]]
    return cols


def folded(p: Profile, named: Named, metric: str) -> dict[str, int]:
    """Folded stacks: caller-first path 'a;b;c' -> weight (paths that name the same frames
    merge; with groups, the group is the outermost frame), the lines flamegraph.pl, inferno
    and speedscope read. `named` must be caller first."""
    w = p.weight(metric)
    out: dict[str, int] = {}
    clean = [str(x).replace(";", ":") for x in named.names.tolist()]
    rows = named.rows(p.stack)
    for g, r, v in zip(p.group.tolist(), rows.tolist(), w.tolist()):
        path = [clean[i] for i in named.paths[r].tolist() if i >= 0]
        if path and v:
            if p.group_by != "none":
                path.insert(0, p.groups[g].replace(";", ":"))
            line = ";".join(path)
            out[line] = out.get(line, 0) + int(v)
    return out
