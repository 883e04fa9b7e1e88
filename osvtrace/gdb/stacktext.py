"""Stacks as text, for both kernels: a frame per line as gdb's `bt` prints one, and a last
line saying why a stack ends early (the depth bound, a loop, a bad frame, code outside the
kernel). `osv trace --stacks` and `osv mutex` print their stacks through here.

Plain Python (no gdb; its import of osvtrace.catalog.layout needs none either), so the rules
are tested without a VM (tests/gdb/test_stack_text.py). osvtrace.gdb.stacks fills the Sites
from gdb.
"""

from __future__ import annotations

from dataclasses import dataclass

from osvtrace.catalog import layout

# How a stack ends. The first four are the kernel's own (a trace record's stack trailer says
# which: osvtrace.catalog.layout); gdb's unwinder maps its stop reasons onto them.
COMPLETE = "complete"  # reached the thread's outermost frame
CUT = "cut"  # the depth bound: more frames existed
BAD_FRAME = "bad frame"  # a frame pointer outside the stack or misaligned, or unreadable memory
LOOP = "loop"  # a frame not above (older than) the one before: the chain goes round
OUTSIDE = "outside"  # a frame in no code gdb knows: not the kernel, nor a loaded object
UNMARKED = "unmarked"  # the record does not say (real OSv's backtraces)
REPEATS = "repeats"  # ... and an address appears twice in it
UNAVAILABLE = "unavailable"  # no stack to unwind (a thread being created, gone, unreadable)

TRAILER_ENDS = {layout.STACK_COMPLETE: COMPLETE, layout.STACK_CUT: CUT, layout.STACK_BAD_FRAME: BAD_FRAME,
                layout.STACK_LOOP: LOOP}


@dataclass
class Site:
    """One frame: its address and what gdb knows of it."""

    pc: int
    function: str = ""  # the function holding it; '' unknown
    offset: int = -1  # pc - the function's start; -1 unknown (or an inlined call's frame)
    source: str = ""  # file:line (of the call, for a return address); '' unknown
    inlined: bool = False  # an inlined call (gdb shows it as a frame of its own, at its caller's pc)
    inlined_in: tuple[str, ...] = ()  # inlined calls at this address, innermost first (trace stacks)
    obj: str = ""  # the object file when gdb names one (an OSv application), else ''
    outside: bool = False  # no code gdb knows is there

    def text(self) -> str:
        """`stacks_chain_c+0x11 at apps/stacks.cc:48`, as much as is known."""
        if self.outside:
            return "?? (outside the kernel: no code gdb knows is there)"
        name = self.function or "??"
        if self.offset >= 0 and not self.inlined:
            base, clone, rest = name.partition(" [clone")  # `lock+0x12d [clone .isra.0]`
            name = f"{base}+{self.offset:#x}{clone}{rest}"
        out = [name]
        if self.inlined:
            out.append("[inlined]")
        if self.inlined_in:  # the innermost inlined call (where the line is); how many more enclose it
            more = len(self.inlined_in) - 1
            out.append(f"[inlined: {self.inlined_in[0]}" + (f" and {more} more" if more else "") + "]")
        if self.source:
            out.append(f"at {self.source}")
        elif self.obj:
            out.append(f"from {self.obj}")
        return " ".join(out)


def short_name(name: str) -> str:
    """A function's name as `bt` prints it: without its parameter list (`lock() [clone .isra.0]`
    -> `lock [clone .isra.0]`, `f(int) const` -> `f`); `(anonymous namespace)` and
    `operator()` stay."""
    depth, i = 0, 0
    while i < len(name):
        c = name[i]
        if name.startswith("(anonymous namespace)", i):
            i += len("(anonymous namespace)")
            continue
        if name.startswith("operator()", i):
            i += len("operator()")
            continue
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth <= 0:
            clone = name.find(" [clone", i)
            return name[:i] + (name[clone:] if clone >= 0 else "")
        i += 1
    return name


def frame_line(level: int, s: Site) -> str:
    """One frame as gdb's `bt` prints it: `#5  0x00000000001184b5 in stacks_chain_c+0x11 at ...`."""
    return f"#{level:<2} {s.pc:#018x} in {s.text()}"


def ending(end: str, depth: int, bound: int = 0, detail: str = "") -> str:
    """Why a stack of `depth` frames ends, in words; '' when it simply reached its outermost
    frame. `bound` is the depth bound it was taken with; `detail` gdb's own reason."""
    more = f": {detail}" if detail else ""
    if end == CUT:  # the bound counts what the walk took (gdb's inlined frames too)
        return f"cut at {bound or depth} frames by the depth bound: outer frames not shown"
    if end == LOOP:
        return f"stopped: the frame chain loops (a frame not above the one before){more}"
    if end == BAD_FRAME:
        return f"stopped: a bad frame (a frame pointer outside the stack, misaligned, or unreadable){more}"
    if end == OUTSIDE:
        return "stopped: a frame outside the kernel (no code gdb knows is there)"
    if end == UNMARKED and bound and depth >= bound:
        return f"{depth} frames, the trace's bound: outer frames may be missing"
    if end == REPEATS:
        return detail
    if end == UNAVAILABLE:
        return f"no stack: {detail}" if detail else "no stack"
    return ""


def unmarked_end(addrs: list[int], bound: int) -> tuple[str, str]:
    """(end, note) of a stack whose record does not say how its walk ended (real OSv): as deep
    as the bound means possibly cut; an address seen twice, recursion or a walk that looped."""
    seen: set[int] = set()
    for a in addrs:
        if a in seen:
            more = f"; {len(addrs)} frames, the trace's bound: outer frames may be missing" if len(addrs) >= bound else ""
            return REPEATS, f"{a:#x} appears twice: recursion, or a walk that went round{more}"
        seen.add(a)
    return UNMARKED, ""


def stack_lines(sites: list[Site], end: str, bound: int = 0, detail: str = "", indent: str = "    ") -> list[str]:
    """The frames, innermost first, then why the stack ends early if it does; a frame outside
    the kernel is the last one shown."""
    out = [indent + frame_line(i, s) for i, s in enumerate(sites)]
    if not sites and end != UNAVAILABLE:
        out.append(indent + "(no frames)")
    why = ending(end, sum(not s.inlined for s in sites), bound, detail)
    if why:
        out.append(f"{indent}({why})")
    return out
