"""`osv runqueue` and `osv percpu` on OSv: each sched::cpu's run queue (a
boost::intrusive rbtree of threads by their _runqueue_link, walked in order)."""

from __future__ import annotations

from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, guestmem, lists
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import Layout, layout_of
from osvtrace.gdb.kernels.osv.cpus import Cpu, cpus
from osvtrace.gdb.kernels.osv.threads import snapshot


def rbtree_inorder(root: int, node_layout: Layout, limit: int) -> lists.Walk:
    left, right = node_layout.offset("left_"), node_layout.offset("right_")
    out: list[int] = []
    seen: set[int] = set()
    stack: list[int] = []
    node = root
    while stack or node:
        while node:
            if node in seen:
                return lists.Walk(out, f"run queue loops back to {node:#x} (being changed)")
            if len(seen) >= limit:
                return lists.Walk(out, f"run queue longer than {limit} (being changed, or damaged)")
            seen.add(node)
            stack.append(node)
            try:
                node = guestmem.read_word(node + left)
            except OsvError:
                return lists.Walk(out, f"run queue node {node:#x} unreadable")
        node = stack.pop()
        out.append(node)
        try:
            node = guestmem.read_word(node + right)
        except OsvError:
            return lists.Walk(out, f"run queue node {node:#x} unreadable")
    return lists.Walk(out)


def _header(v: Any) -> Any:
    """The rbtree header node of a boost::intrusive set value (versions nest it differently)."""
    path = []
    t = v.type.strip_typedefs()
    for _ in range(12):
        names = {f.name for f in Layout.all_fields(t)}
        if "parent_" in names:
            return v
        for step in ("holder", "tree_", "data_", "node_plus_pred_", "header_plus_size_", "header_", "root"):
            if step in names:
                v = v[step]
                path.append(step)
                t = v.type.strip_typedefs()
                break
        else:
            break
    raise OsvError(f"cannot find the rbtree header in {v.type} (boost::intrusive layout unknown; went {path})")


def run_queue(c: Cpu) -> lists.Walk:
    rq = gdb.parse_and_eval(f"((sched::cpu *){c.addr:#x})->runqueue")
    hdr = _header(rq)
    nl = debuginfo.layout_of_type(hdr.type)
    root = guestmem.read_word(int(hdr.address) + nl.offset("parent_"))
    link = layout_of("sched::thread").offset("_runqueue_link")
    w = rbtree_inorder(root, nl, 100_000)
    return lists.Walk([n - link for n in w.items], w.problem)


def runqueue_cmd(arg: str, from_tty: bool) -> None:
    want = commands.parse_cpu(arg, "osv runqueue [CPU]")
    snap = snapshot()
    for c in snap.cpus:
        if want is not None and c.id != want:
            continue
        on = [t for t in snap.threads if t.vcpu is not None and t.vcpu == c.vcpu]
        on += [t for t in snap.threads if t.cpu == c.id and t.state == "running" and t not in on]
        run = ", ".join(f"{snap.describe(t.addr)} {t.state}" for t in on) or "-"
        gdb.write(f"cpu {c.id} (vCPU {c.vcpu}): on it {run}; idle thread {snap.describe(c.idle)}\n")
        try:
            w = run_queue(c)
        except (OsvError, gdb.error) as e:
            gdb.write(f"  run queue: cannot read ({commands.one_line(str(e))})\n")
            continue
        gdb.write(f"  run queue ({len(w.items)}): {', '.join(snap.describe(a) for a in w.items) or 'empty'}\n")
        if w.problem:
            gdb.write(f"  note: {w.problem}\n")
        try:
            inc = incoming(c, len(snap.cpus))
        except (OsvError, gdb.error) as e:
            gdb.write(f"  woken, not yet queued: cannot read ({commands.one_line(str(e))})\n")
            continue
        if inc.items or inc.problem:
            gdb.write(f"  woken, not yet queued ({len(inc.items)}): {', '.join(snap.describe(a) for a in inc.items)}\n")
        if inc.problem:
            gdb.write(f"  note: {inc.problem}\n")


def incoming(c: Cpu, ncpus: int, limit: int = 100_000) -> lists.Walk:
    """Threads woken for this CPU and not yet on its run queue: cpu::incoming_wakeups, one
    lockless_queue (single producer) per waking CPU, each followed from its _head helper
    through the threads' _wakeup_link."""
    cl = layout_of("sched::cpu")
    off, _size, ptr_t = cl.field("incoming_wakeups")
    queue_t = ptr_t.target().strip_typedefs()
    ql = debuginfo.layout_of_type(queue_t)
    head_off, _hs, head_t = ql.field("_head")
    helper_next = debuginfo.layout_of_type(head_t.target()).offset("_next")
    link_next = layout_of("sched::thread").offset("_wakeup_link._next")
    arr = guestmem.read_word(c.addr + off)
    items: list[int] = []
    if not arr:
        return lists.Walk(items)
    for i in range(ncpus):
        seen: set[int] = set()
        h = guestmem.read_word(arr + i * queue_t.sizeof + head_off)
        while h:
            t = guestmem.read_word(h + helper_next)
            if not t:
                break
            if t in seen or len(items) >= limit:
                return lists.Walk(items, f"incoming wake-up queue {i} loops or is too long (being changed)")
            seen.add(t)
            items.append(t)
            h = guestmem.read_word(t + link_next)
    return lists.Walk(items)


def percpu_cmd(arg: str, from_tty: bool) -> None:
    want = commands.parse_cpu(arg, "osv percpu [CPU]")
    for c in cpus():
        if want is not None and c.id != want:
            continue
        gdb.write(f"cpu {c.id} at {c.addr:#x} (vCPU {c.vcpu}, percpu_base {c.percpu_base:#x}):\n")
        try:
            gdb.write(gdb.execute(f"print *(sched::cpu *){c.addr:#x}", to_string=True))
        except gdb.error as e:
            gdb.write(f"  cannot print: {commands.one_line(str(e))}\n")
