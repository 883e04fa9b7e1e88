"""Reading OSv's memory by its debug info: integer fields of an object in as few reads as
its layout allows, C strings, std::vector<T*>, variables, bulk bytes by QEMU's memsave, and
an address named by its symbol."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, fmt, guestmem
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import Layout


def read_fields(addr: int, layout: Layout, paths: list[str]) -> dict[str, int]:
    """Integer fields of the object at addr, read in as few pieces as the layout allows."""
    spots = sorted((layout.field(p)[0], layout.field(p)[1], p) for p in paths)
    out: dict[str, int] = {}
    i = 0
    while i < len(spots):
        lo = spots[i][0]
        j = i
        while j + 1 < len(spots) and spots[j + 1][0] + spots[j + 1][1] - lo <= 2048:
            j += 1
        hi = max(off + size for off, size, _ in spots[i:j + 1])
        buf = guestmem.read_small(addr + lo, hi - lo)
        for off, size, p in spots[i:j + 1]:
            out[p] = int.from_bytes(buf[off - lo:off - lo + min(size, 8)], "little")
        i = j + 1
    return out


def read_string(addr: int, limit: int = 256) -> str:
    if not addr:
        return ""
    try:
        raw = guestmem.read_small(addr, limit)
    except OsvError:
        try:
            raw = guestmem.read_small(addr, 16)
        except OsvError:
            return f"<unreadable {addr:#x}>"
    return fmt.clean_text(raw)


def read_vector(addr: int, vec_type: Any, limit: int) -> list[int]:
    """The pointer elements of a std::vector<T*> at addr."""
    vl = debuginfo.layout_of_type(vec_type)
    f = read_fields(addr, vl, ["_M_impl._M_start", "_M_impl._M_finish"])
    start, finish = f["_M_impl._M_start"], f["_M_impl._M_finish"]
    w = guestmem.word()
    n = (finish - start) // w
    if n < 0 or n > limit:
        raise OsvError(f"vector at {addr:#x} has {n} entries (being changed, or damaged)")
    if not n:
        return []
    raw = guestmem.read_small(start, n * w)
    return [int.from_bytes(raw[i * w:(i + 1) * w], "little") for i in range(n)]


def int_var(name: str) -> int:
    """An integer variable (plain or std::atomic) read at its own size."""
    try:
        v = gdb.parse_and_eval(name)
    except gdb.error as e:
        raise OsvError(f"no {name} in the debug info: {commands.one_line(str(e))}") from None
    if v.address is None:
        return int(v)
    return int.from_bytes(guestmem.read_small(int(v.address), min(v.type.sizeof, 8)), "little")


def has_symbol(name: str) -> bool:
    try:
        gdb.parse_and_eval(f"&{name}")
        return True
    except gdb.error:
        return False


def memsave(addr: int, size: int) -> bytes:
    """Guest-virtual bytes in one piece through QEMU's `memsave` (OSv's memory is not
    identity-mapped, so pmemsave's physical addresses do not apply)."""
    if size < guestmem.PMEMSAVE_MIN:
        return guestmem.read_small(addr, size)
    fd, path = tempfile.mkstemp(prefix="osv-mem-", suffix=".bin")
    os.close(fd)
    try:
        try:
            gdb.execute(f'monitor memsave {addr:#x} {size} "{path}"', to_string=True)
        except gdb.error:
            return guestmem.read_small(addr, size)
        with open(path, "rb") as fh:
            data = fh.read()
        if len(data) != size:
            raise OsvError(f"memsave of {size} bytes at {addr:#x} returned {len(data)}")
        return data
    finally:
        os.unlink(path)


def symbol_label(addr: int) -> str:
    """`name (0x...)` for an object in static storage, else the address."""
    try:
        info = gdb.execute(f"info symbol {addr:#x}", to_string=True).strip()
    except gdb.error:
        info = "No symbol"
    if info.startswith("No symbol"):
        return f"{addr:#x}"
    return f"{info.split(' in section')[0].replace(' + ', '+')} ({addr:#x})"


def unique_ptr_offset(layout: Layout, path: str) -> int:
    """Offset of the pointer held by the std::unique_ptr field `path`. With a deleter that
    has state (`unique_ptr<char[], decltype(&free)>`) the tuple inside puts the deleter
    first; the pointer is element 0, the `_M_head_impl` of `std::_Head_base<0, ...>`."""
    off, _size, t = layout.field(path)

    def find(t: Any, base: int, owner: str) -> int | None:
        for f in t.fields():
            if not hasattr(f, "bitpos"):
                continue
            ft = f.type.strip_typedefs()
            at = base + f.bitpos // 8
            if f.name == "_M_head_impl" and owner.startswith("std::_Head_base<0"):
                return at
            if ft.code == gdb.TYPE_CODE_STRUCT:
                got = find(ft, at, type_name(ft))
                if got is not None:
                    return got
        return None

    got = find(t, off, type_name(t))
    if got is None:
        raise OsvError(f"cannot find the pointer inside {layout.name}.{path} ({t}) in the debug info")
    return got


def type_name(t: Any) -> str:
    """A type's name without the `class `/`struct ` gdb may print before it."""
    return t.tag or t.name or str(t).removeprefix("class ").removeprefix("struct ")
