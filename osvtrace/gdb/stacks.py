"""Stacks in gdb, for both kernels: code addresses named by gdb itself, and a bounded walk of
gdb's unwinder over the selected vCPU.

Inside gdb the natural symbolizer is gdb: its minimal symbols give function+offset (also for
code without debug info, and for an OSv application added at its load base), its line table
file:line, its block tree the inlined calls. A trace record's stack (osv trace --stacks) is
named address by address here; a thread's stack (osv mutex) is gdb's own unwinding of the
thread's registers (its vCPU's, or its saved context loaded into one: osvtrace.gdb.context
for our kernel, kernels/osv/stacks.py for OSv), bounded, with how it ended.
Text: osvtrace.gdb.stacktext.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo
from osvtrace.gdb.stacktext import BAD_FRAME, COMPLETE, CUT, LOOP, OUTSIDE, Site, short_name
from osvtrace.symbols.symbolizer import gdb_no_symbol

MAX_FRAMES = 64  # bound on an unwound stack (gdb's own frames, inlined calls included)

# `info symbol` answers: "NAME + OFF in section SEC", "NAME in section SEC", "... of FILE"
_INFO_SYMBOL = re.compile(r"^(?P<name>.*?)(?: \+ (?P<off>\d+))? in section (?P<sec>\S+)(?: of (?P<obj>.*))?$")

_sites: dict[tuple[int, bool], Site] = {}
debuginfo.on_invalidate(_sites.clear)


def _kernel_file() -> str:
    return gdb.current_progspace().filename or ""


def _msymbol(addr: int) -> tuple[str, int, str]:
    """(function, offset, object file if not the kernel ELF) of the minimal symbol holding
    addr; ('', -1, '') when gdb has none."""
    try:
        info = gdb.execute(f"info symbol {addr:#x}", to_string=True).strip()
    except gdb.error:
        return "", -1, ""
    first = info.splitlines()[0] if info else ""
    m = None if gdb_no_symbol(first) else _INFO_SYMBOL.match(first)
    if not m:
        return "", -1, ""
    obj = m["obj"] or ""
    if obj and os.path.abspath(obj) == os.path.abspath(_kernel_file()):
        obj = ""
    return m["name"], int(m["off"] or 0), os.path.basename(obj)


def _source(sal: Any) -> str:
    if sal is None or sal.symtab is None or not sal.line:
        return ""
    return f"{sal.symtab.filename.removeprefix('../../')}:{sal.line}"


def _inline_chain(addr: int) -> tuple[list[str], bool]:
    """(the functions whose blocks hold addr, innermost first, the inlined ones before the
    function they were compiled into; whether gdb has a block there at all)."""
    try:
        b = gdb.block_for_pc(addr)
    except (gdb.error, RuntimeError):
        return [], False
    if b is None:
        return [], False
    out: list[str] = []
    steps = 0
    while b is not None and not b.is_static and not b.is_global and steps < 256:
        if b.function is not None:
            name = short_name(b.function.print_name)
            if not out or out[-1] != name:  # an inlined body's nested blocks name it again
                out.append(name)
        b = b.superblock
        steps += 1
    return out, True


def site(pc: int, call: bool = True) -> Site:
    """What gdb knows of code address pc. `call`: pc is a return address (a stack's frame
    above the innermost), named at pc - 1, the call, as addr2line and gdb's bt do; the
    offset stays the return address's."""
    key = (pc, call)
    got = _sites.get(key)
    if got is not None:
        return got
    look = pc - 1 if call and pc else pc
    name, off, obj = _msymbol(look)
    name = short_name(name)
    chain, has_block = _inline_chain(look)
    try:
        src = _source(gdb.find_pc_line(look))
    except (gdb.error, RuntimeError):
        src = ""
    if not name and chain:
        name = chain[-1]
    s = Site(pc, name, off + (pc - look) if off >= 0 else -1, src, inlined_in=tuple(chain[:-1]), obj=obj,
             outside=not name and not has_block and not src)
    _sites[key] = s
    return s


def sites(addrs: list[int], innermost_is_call: bool = True) -> list[Site]:
    """A recorded stack's frames (return addresses, innermost first; a 0 ends it)."""
    out = []
    for i, a in enumerate(addrs):
        if not a:
            break
        out.append(site(a, call=innermost_is_call or i > 0))
    return out


STACK_FLAGS = ("-s", "--stacks", "--no-stacks")


def parse_stack_flag(arg: str, default: bool) -> tuple[str, bool]:
    """(a command's argument without a -s/--stacks or --no-stacks first or last, whether to
    show stacks): both kernels' `osv mutex` take them (`osv mutex all --stacks`)."""
    words = arg.split()
    if words and words[0] in STACK_FLAGS:
        return arg.split(None, 1)[1] if len(words) > 1 else "", words[0] != "--no-stacks"
    if len(words) > 1 and words[-1] in STACK_FLAGS:
        return arg.rsplit(None, 1)[0], words[-1] != "--no-stacks"
    return arg, default


# ---------------------------------------------------------------- unwinding the selected vCPU

@dataclass
class Unwound:
    """A stack gdb unwound: frames innermost first (inlined calls as frames of their own, as
    `bt` shows them), what `capture` took from each, and how it ended."""

    sites: list[Site] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    end: str = COMPLETE
    detail: str = ""  # gdb's reason, when it stopped early


_LOOPS = (gdb.FRAME_UNWIND_SAME_ID, gdb.FRAME_UNWIND_INNER_ID)
_DONE = (gdb.FRAME_UNWIND_NO_REASON, gdb.FRAME_UNWIND_OUTERMOST, gdb.FRAME_UNWIND_NULL_ID)


def _frame_site(f: Any) -> Site:
    pc = f.pc()
    inline = f.type() == gdb.INLINE_FRAME
    # a caller's pc is a return address, unless the frame below it was an interrupt's
    newer = f.newer()
    call = newer is not None and newer.type() not in (gdb.SIGTRAMP_FRAME, gdb.ARCH_FRAME)
    base = site(pc, call=call)
    name = short_name(f.name() or "") or base.function
    try:
        src = _source(f.find_sal())
    except gdb.error:
        src = ""
    return Site(pc, name, -1 if inline else base.offset, src or base.source, inlined=inline, obj=base.obj,
                outside=base.outside and not f.name())


def unwind(limit: int = MAX_FRAMES, capture: Callable[[Any, str], Any] | None = None) -> Unwound:
    """gdb's frames of the selected vCPU, innermost first, at most `limit`. A frame gdb cannot
    place in any code ends the stack there (OUTSIDE); gdb's own stop reasons say whether the
    chain looped or met a bad frame. `capture(frame, name)` may take arguments from each
    frame while it is valid (OSv: the mutex a lock frame locks)."""
    u = Unwound()
    try:
        f = gdb.newest_frame()
    except gdb.error as e:
        return Unwound(end=BAD_FRAME, detail=f"no frame: {commands.one_line(str(e))}")
    while True:
        if len(u.sites) >= limit:
            u.end = CUT
            return u
        try:
            s = _frame_site(f)
            u.sites.append(s)
            u.extra.append(capture(f, s.function) if capture else None)
            if s.outside:
                u.end = OUTSIDE
                return u
            older = f.older()
        except gdb.error as e:
            u.end, u.detail = BAD_FRAME, commands.one_line(str(e))
            return u
        if older is None:
            why = f.unwind_stop_reason()
            if why in _LOOPS:
                u.end, u.detail = LOOP, gdb.frame_stop_reason_string(why)
            elif why not in _DONE:
                u.end, u.detail = BAD_FRAME, gdb.frame_stop_reason_string(why)
            return u
        f = older
