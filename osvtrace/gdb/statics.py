"""Objects in static storage: every variable the debug info describes, found by address
(`symbolize`: `gdbcheck::held`, `cpus[1]`) or by type (`find_objects`: every mutex,
also inside structures and arrays).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from elftools.elf.elffile import ELFFile  # pyelftools: an osvtrace dependency

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import Layout, on_invalidate


@dataclass(frozen=True)
class Static:
    name: str
    addr: int
    size: int
    type: Any


_statics: list[Any] = []  # [sorted Static list, start addresses]


def statics() -> tuple[list[Static], list[int]]:
    """Every variable with static storage the debug info describes (globals and file
    statics of every compilation unit), sorted by address. Built once per session: the
    blocks of each compilation unit are reached through one function of it."""
    if _statics:
        return _statics[0], _statics[1]
    out: dict[int, Static] = {}
    seen: set[tuple[int, int, bool]] = set()
    for pc in _function_addresses():
        try:
            b = gdb.block_for_pc(pc)
        except RuntimeError:
            continue
        if b is None:
            continue
        for blk in (b.static_block, b.global_block):
            if blk is None:
                continue
            key = (blk.start, blk.end, blk.is_global)
            if key in seen:
                continue
            seen.add(key)
            for s in blk:
                if not s.is_variable or s.addr_class == gdb.SYMBOL_LOC_OPTIMIZED_OUT:
                    continue
                try:
                    v = s.value()
                    if v.address is None:
                        continue
                    addr = int(v.address)
                except (gdb.error, RuntimeError):
                    continue
                out.setdefault(addr, Static(s.name, addr, s.type.sizeof, s.type))
    items = sorted(out.values(), key=lambda s: s.addr)
    _statics[:] = [items, [s.addr for s in items]]
    return items, _statics[1]


def _function_addresses() -> list[int]:
    """One code address per function of the kernel ELF (from its symbol table)."""
    path = gdb.current_progspace().filename
    if not path:
        raise OsvError("no kernel ELF loaded (gdb build/kernel.elf)")
    addrs = []
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise OsvError(f"{path} has no symbol table")
        for s in symtab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and s["st_value"]:
                addrs.append(int(s["st_value"]))
    return sorted(set(addrs))


def static_at(addr: int) -> tuple[Static, int] | None:
    """(the static variable containing addr, offset inside it), or None."""
    items, starts = statics()
    i = bisect.bisect_right(starts, addr) - 1
    if i < 0:
        return None
    s = items[i]
    off = addr - s.addr
    return (s, off) if off < max(s.size, 1) else None


def member_path(t: Any, off: int, want: str = "") -> str:
    """The field path at byte offset `off` inside type t; with `want`, descends until a
    member of that type (a mutex at offset 0 of a waitqueue is `.m_`)."""
    parts: list[str] = []
    t = t.strip_typedefs()
    while off or (want and t.name != want and t.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_ARRAY)):
        if t.code == gdb.TYPE_CODE_ARRAY:
            el = t.target().strip_typedefs()
            if not el.sizeof:
                break
            i, off = divmod(off, el.sizeof)
            parts.append(f"[{i}]")
            t = el
            continue
        if t.code != gdb.TYPE_CODE_STRUCT:
            break
        hit = None
        for f in Layout.all_fields(t):
            fo = f.bitpos // 8
            if fo <= off < fo + max(f.type.sizeof, 1):
                hit = f
                break
        if hit is None:
            break
        parts.append("." + hit.name)
        off -= hit.bitpos // 8
        t = hit.type.strip_typedefs()
        if t.code != gdb.TYPE_CODE_STRUCT and t.code != gdb.TYPE_CODE_ARRAY:
            break
    return "".join(parts)


def symbolize(addr: int, want: str = "") -> str:
    """A static object's name for an address (`gdbcheck::held`, `cpus[1]`), or ''. With
    `want` (a type name), the member of that type at addr (`gdbcheck::gate.m_`)."""
    if not addr:
        return ""
    try:
        hit = static_at(addr)
    except OsvError:
        return ""
    if hit is None:
        return ""
    s, off = hit
    path = member_path(s.type, off, want) if (off or want) else ""
    return s.name + path if (off == 0 or path) else f"{s.name}+{off}"


def find_objects(type_test: Callable[[Any], bool], *, max_array: int = 4096) -> Iterator[tuple[str, int, Any]]:
    """(name, address, type) of every object in static storage whose type passes
    `type_test`, also inside structures and arrays (`slots[3].m`)."""
    for s in statics()[0]:
        yield from _objects_in(s.name, s.addr, s.type, type_test, max_array, 0)


def _objects_in(name: str, addr: int, t: Any, test: Callable[[Any], bool], max_array: int,
                depth: int) -> Iterator[tuple[str, int, Any]]:
    t = t.strip_typedefs()
    if test(t):
        yield name, addr, t
        return
    if depth > 6:
        return
    if t.code == gdb.TYPE_CODE_ARRAY:
        el = t.target().strip_typedefs()
        if el.sizeof and _contains(el, test):
            n = min(t.sizeof // el.sizeof, max_array)
            for i in range(n):
                yield from _objects_in(f"{name}[{i}]", addr + i * el.sizeof, el, test, max_array, depth + 1)
    elif t.code == gdb.TYPE_CODE_STRUCT and _contains(t, test):
        for f in Layout.all_fields(t):
            yield from _objects_in(f"{name}.{f.name}", addr + f.bitpos // 8, f.type, test, max_array, depth + 1)


_contains_cache: dict[tuple[str, int], bool] = {}


def _contains(t: Any, test: Callable[[Any], bool], depth: int = 0) -> bool:
    key = (str(t), id(test))
    got = _contains_cache.get(key)
    if got is not None:
        return got
    t = t.strip_typedefs()
    if test(t):
        got = True
    elif depth > 6:
        got = False
    elif t.code == gdb.TYPE_CODE_ARRAY:
        got = _contains(t.target(), test, depth + 1)
    elif t.code == gdb.TYPE_CODE_STRUCT:
        got = any(_contains(f.type, test, depth + 1) for f in Layout.all_fields(t))
    else:
        got = False
    _contains_cache[key] = got
    return got


on_invalidate(_contains_cache.clear)
on_invalidate(_statics.clear)
