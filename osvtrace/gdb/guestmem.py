"""Guest memory: the live target, small reads through gdb's memory packets, bulk reads
through QEMU's `pmemsave` (hundreds of MB/s against gdb's ~10 MB/s), writes, and
command arguments that name an address.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import on_invalidate, symbol_address
from osvtrace.kernels import reference

# Reads at least this big go through pmemsave: read_memory moves ~10 MB/s
# (2 KiB packets), pmemsave 200-500 MB/s (PLATFORM.md).
PMEMSAVE_MIN = 64 * 1024
CONTROL_SYMBOL = reference.KERNEL.trace_buffers  # our kernel: the control block leads to every ring


def inferior() -> Any:
    """The live target. Without one gdb would read the ELF's static image instead, which
    looks like a kernel that never booted: refuse that clearly."""
    inf = gdb.selected_inferior()
    if inf is None or inf.pid == 0:
        raise OsvError("no running kernel: connect first (target remote :PORT; `osvtrace run --gdb` "
                       "starts QEMU with a gdbstub)")
    return inf


_static_ok = [False]


class static_reads:
    """Within this block reads work without a live kernel too (from the ELF's image):
    pretty-printers use it, so `print` of a static object works before connecting."""

    def __enter__(self) -> None:
        self.old = _static_ok[0]
        _static_ok[0] = True

    def __exit__(self, *exc: object) -> None:
        _static_ok[0] = self.old


def connected() -> bool:
    inf = gdb.selected_inferior()
    return inf is not None and inf.pid != 0


HIGH_HALF = 0xFFFF_8000_0000_0000  # x86-64's upper canonical half (OSv's kernel lives there)


def canonical(addr: int, size: int) -> bool:
    """addr..addr+size within one canonical half of x86-64's 48-bit address space: a
    pointer read from a damaged or half-written structure usually is not."""
    end = addr + size
    return (0 < addr and end <= 1 << 47) or (HIGH_HALF <= addr and end <= 1 << 64)


def read_small(addr: int, size: int) -> bytes:
    """A few bytes through gdb's memory packets (fine for headers and tables)."""
    if not canonical(addr, size):
        raise OsvError(f"cannot read {size} bytes at {addr:#x}: not a kernel address")
    try:
        inf = gdb.selected_inferior() if _static_ok[0] else inferior()
        return bytes(inf.read_memory(addr, size))
    except gdb.MemoryError as e:
        raise OsvError(f"cannot read {size} bytes at {addr:#x}: {e}") from None


_pmemsave_broken: str | None = None


def pmemsave(addr: int, size: int) -> bytes:
    """Bulk guest-physical bytes through QEMU's monitor (virtual == physical in this kernel)."""
    inferior()
    fd, path = tempfile.mkstemp(prefix="osv-pmem-", suffix=".bin")
    os.close(fd)
    try:
        out = gdb.execute(f'monitor pmemsave {addr:#x} {size} "{path}"', to_string=True) or ""
        got = os.path.getsize(path)
        if got != size:
            why = out.strip().splitlines()[-1] if out.strip() else f"wrote {got} of {size} bytes"
            raise OsvError(f"pmemsave of {size} bytes at {addr:#x} failed: {why}")
        with open(path, "rb") as f:
            return f.read()
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def read(addr: int, size: int) -> bytes:
    """Guest memory: pmemsave for bulk bytes, gdb for small reads. Falls back to gdb (slow,
    with a warning) when the stub is not QEMU's."""
    global _pmemsave_broken
    if size < PMEMSAVE_MIN or _pmemsave_broken:
        return read_small(addr, size)
    try:
        return pmemsave(addr, size)
    except gdb.error as e:  # `monitor` unsupported: not QEMU, or a core file
        _pmemsave_broken = str(e)
        gdb.write(f"osv: warning: pmemsave is not available ({e}); reading through gdb (slow)\n")
        return read_small(addr, size)


def read_static(addr: int, size: int) -> bytes:
    """Bytes for a pretty-printer: the live kernel's when connected, else the ELF's image
    (so `print` of a static object works before connecting too)."""
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, size))
    except gdb.MemoryError as e:
        raise OsvError(f"cannot read {size} bytes at {addr:#x}: {e}") from None


@lru_cache(maxsize=None)
def word() -> int:
    """Bytes in a pointer (the target's, from debug info)."""
    return gdb.lookup_type("void").pointer().sizeof


on_invalidate(word.cache_clear)


def read_word(addr: int) -> int:
    """A pointer-sized value (a link in a list, a pointer variable)."""
    return int.from_bytes(read_small(addr, word()), "little")


def write(addr: int, data: bytes) -> None:
    try:
        inferior().write_memory(addr, data)
    except gdb.MemoryError as e:
        raise OsvError(f"cannot write {len(data)} bytes at {addr:#x}: {e}") from None


def control_address() -> int:
    """Where osvtrace_control lives (the one structure that locates everything else)."""
    return symbol_address(CONTROL_SYMBOL)


def address_arg(arg: str, what: str) -> tuple[int, Any]:
    """(address, gdb type or None) of a command argument: an object (`gdbcheck::held`),
    a pointer, or a number."""
    try:
        v = gdb.parse_and_eval(arg)
    except gdb.error as e:
        raise OsvError(f"cannot evaluate {arg!r} as {what}: {e}") from None
    t = v.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        return int(v), t.target().strip_typedefs()
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM):
        return int(v), None
    if v.address is None:
        raise OsvError(f"{arg!r} is not in memory: give {what} as an object, a pointer or an address")
    return int(v.address), t
