"""`osv memory`: the page allocator and the heap (kernel/core/page_alloc.cc, heap.cc).

The page allocator is an address-ordered list of free ranges whose headers live
in the free pages; the heap has per-CPU free lists per size class and a shared
depot. Sizes, classes and limits are the kernel's own constants, read from
debug info.
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, fmt, guestmem, lists, mutex, percpu, thread

PAGES_FN = "pages::alloc"  # a function of page_alloc.cc: its file's statics are the allocator's
HEAP_FN = "malloc"  # ... and of heap.cc
MAX_RANGES = 4096  # walk bound: each range costs one read
SHOW_RANGES = 8


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def page_allocator() -> list[str]:
    page = int(gdb.parse_and_eval("pages::page_size"))
    total = guestmem.read_word(debuginfo.file_variable(PAGES_FN, "total")[0])
    nfree = guestmem.read_word(debuginfo.file_variable(PAGES_FN, "nfree")[0])
    if total == 0:
        return ["pages: not set up yet (pages::init has not run: total is 0)"]
    head_addr, head_t = debuginfo.file_variable(PAGES_FN, "ranges")
    rl = debuginfo.layout_of_type(head_t.strip_typedefs().target())
    walk = lists.walk_chain(guestmem.read_word(head_addr), rl.offset("next"), limit=MAX_RANGES, what="the free list")
    ranges = []
    for r in walk.items:
        ranges.append((r, rl.get(guestmem.read_small(r, rl.size), "npages")))
    out = [f"pages: {total} pages of {page} bytes ({mib(total * page)}), {nfree} free ({mib(nfree * page)}), "
           f"{total - nfree} in use ({mib((total - nfree) * page)})"]
    listed = sum(n for _, n in ranges)
    largest = max((n for _, n in ranges), default=0)
    out.append(f"  free ranges: {len(ranges)}, largest {largest} pages ({mib(largest * page)})"
               + ("" if listed == nfree or walk.problem else f"; they hold {listed} pages, nfree says {nfree} "
                  "(a change in progress)"))
    for r, n in ranges[:SHOW_RANGES]:
        out.append(f"    {r:#x} .. {r + n * page:#x}  {n} pages")
    if len(ranges) > SHOW_RANGES:
        out.append(f"    ... {len(ranges) - SHOW_RANGES} more")
    if walk.problem:
        out.append(f"  note: {walk.problem}")
    out.append(f"  lock: {_lock_state(debuginfo.file_variable(PAGES_FN, 'lock')[0])}")
    return out


def _lock_state(addr: int) -> str:
    m = mutex.read_mutex(addr)
    if not m.owner and m.count <= 0:
        return f"free ({mutex.mutex_name(addr)})"
    who = thread.Names().describe(m.owner) if m.owner else "a hand-off in flight"
    return f"held by {who}, {len(m.waiters)} waiting ({mutex.mutex_name(addr)})"


def heap() -> list[str]:
    min_shift = debuginfo.file_constant(HEAP_FN, "min_shift")
    in_use_addr, in_use_t = debuginfo.file_variable(HEAP_FN, "in_use")
    in_use = int.from_bytes(guestmem.read_small(in_use_addr, in_use_t.sizeof), "little")
    depot_addr, depot_t = debuginfo.file_variable(HEAP_FN, "depot")
    caches_addr, caches_t = debuginfo.file_variable(HEAP_FN, "caches")
    depot_t = depot_t.strip_typedefs()
    chain_t = depot_t.target().strip_typedefs()
    cl = debuginfo.layout_of_type(chain_t)
    nclasses = depot_t.sizeof // chain_t.sizeof
    depot = guestmem.read_small(depot_addr, depot_t.sizeof)
    cache_t = caches_t.strip_typedefs().target().strip_typedefs()
    lists_off = debuginfo.layout_of_type(cache_t).offset("lists")
    cpus = [c.id for c in percpu.cpus()]
    cached = {}
    for cpu in cpus:
        raw = guestmem.read_small(caches_addr + cpu * cache_t.sizeof + lists_off, nclasses * chain_t.sizeof)
        cached[cpu] = [cl.get(raw, "n", base=k * chain_t.sizeof) for k in range(nclasses)]
    rows = []
    free_bytes = 0
    for k in range(nclasses):
        size = 1 << (min_shift + k)
        d = cl.get(depot, "n", base=k * chain_t.sizeof)
        per = [cached[c][k] for c in cpus]
        free_bytes += size * (d + sum(per))
        rows.append((size, d, *per, size * (d + sum(per))))
    out = [f"heap: {in_use} bytes in use ({mib(in_use)}): small blocks by size class, large ones in pages"]
    out += ["  " + ln for ln in fmt.table(rows, ("size", "depot", *(f"cpu{c}" for c in cpus),
                                                      "free-bytes")).splitlines()]
    out.append(f"  free small blocks: {free_bytes} bytes held in caches and the depot")
    out.append(f"  depot lock: {_lock_state(debuginfo.file_variable(HEAP_FN, 'depot_lock')[0])}")
    return out


class Memory(commands.OsvCommand):
    """Show the page allocator and the heap.

    Pages: total, free, the free ranges, the allocator's lock. Heap: bytes in use, free
    blocks per size class in each CPU's cache and in the shared depot, the depot's lock.

    Usage: osv memory
    """

    def __init__(self) -> None:
        super().__init__("osv memory", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise commands.OsvError("osv memory takes no arguments")
        guestmem.inferior()
        out = []
        for part in (page_allocator, heap):
            try:
                out += part()
            except commands.OsvError as e:
                out.append(f"{part.__name__.replace('_', ' ')}: cannot read it: {e}")
        gdb.write("\n".join(out) + "\n")


def register() -> None:
    Memory()
