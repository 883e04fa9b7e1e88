"""Bounded walkers of the kernel's linked structures: a chain of links, an
intrusive_list (lib/list.hh), a lockfree::mpsc_queue (lib/mpsc_queue.hh).

Every walk is bounded and cycle-checked: a structure being changed under a stopped
CPU, or damaged, ends the walk with a problem text instead of hanging or raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import Layout, layout_of, layout_of_type
from osvtrace.gdb.guestmem import read_word, word


@dataclass
class Walk:
    """Addresses met walking a linked structure, and why the walk stopped early (if it did)."""

    items: list[int]
    problem: str = ""


def walk_chain(first: int, next_off: int, *, limit: int, stop: int = 0, what: str = "list") -> Walk:
    """Follow `*(node + next_off)` from `first` until 0 (or `stop`), at most `limit` nodes.

    Bounded and cycle-checked: a structure being changed under a stopped CPU, or damaged,
    ends the walk with a problem text instead of hanging or raising."""
    items: list[int] = []
    seen: set[int] = set()
    node = first
    while node and node != stop:
        if node in seen:
            return Walk(items, f"{what} loops back to {node:#x} (being changed, or damaged)")
        if len(items) >= limit:
            return Walk(items, f"{what} longer than {limit} entries (being changed, or damaged)")
        if node % word():
            return Walk(items, f"{what} has a misaligned link {node:#x} (being changed, or damaged)")
        seen.add(node)
        items.append(node)
        try:
            node = read_word(node + next_off)
        except OsvError:
            return Walk(items[:-1], f"{what} links to unreadable memory at {items[-1]:#x}")
    return Walk(items)


def walk_list(head_addr: int, list_layout: Layout, node_off: int, *, limit: int, what: str = "list") -> Walk:
    """The elements of an intrusive_list (lib/list.hh) at head_addr, front to back:
    element address = node address - node_off."""
    head = head_addr + list_layout.offset("head_")
    node_l = layout_of("list_node")
    first = read_word(head + node_l.offset("next"))
    w = walk_chain(first, node_l.offset("next"), limit=limit, stop=head, what=what)
    if not w.problem and w.items and not first:
        w.problem = f"{what} is not initialised"
    return Walk([n - node_off for n in w.items], w.problem)


def walk_mpsc(queue_addr: int, queue_type: Any, next_off: int, *, limit: int, what: str = "queue") -> Walk:
    """The items of a lockfree::mpsc_queue (lib/mpsc_queue.hh) in the order they come
    out: the consumer's pop list (oldest first), then the pushed stack reversed."""
    ql = layout_of_type(queue_type)
    popq = read_word(queue_addr + ql.offset("popq_"))
    pushed = read_word(queue_addr + ql.offset("pushed_"))
    a = walk_chain(popq, next_off, limit=limit, what=what)
    b = walk_chain(pushed, next_off, limit=limit, what=what)
    return Walk(a.items + b.items[::-1], a.problem or b.problem)
