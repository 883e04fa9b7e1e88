"""Shared pieces of the gdb commands: the `osv` prefixes, error handling, cached
types, structure reads through debug info, and guest memory reads (small ones
through gdb, bulk ones through QEMU's `pmemsave`).

Only imported inside gdb (it needs the `gdb` module).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.errors import OsvtraceError

# Reads at least this big go through pmemsave: read_memory moves ~10 MB/s
# (2 KiB packets), pmemsave 200-500 MB/s (PLATFORM.md).
PMEMSAVE_MIN = 64 * 1024
CONTROL_SYMBOL = "osvtrace_control"


class OsvError(OsvtraceError):
    """A failed osv command: one line for the user, no traceback. (An OsvtraceError, so the
    shared readers such as osvtrace.rings pass it on unchanged.)"""


class OsvCommand(gdb.Command):
    """Base of every `osv` command: turns any expected failure into one clear line.

    Subclasses implement run(arg, from_tty); their docstring is the help text."""

    def invoke(self, arg: str, from_tty: bool) -> None:
        try:
            self.run(arg, from_tty)
        except gdb.GdbError:
            raise
        except (OsvError, OsvtraceError) as e:
            raise gdb.GdbError(f"osv: {e}") from None
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"osv: cannot read guest memory: {e}") from None
        except gdb.error as e:
            raise gdb.GdbError(f"osv: {e}") from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise gdb.GdbError(f"osv: {where}{e.strerror or e}") from None
        except (ValueError, KeyError) as e:
            raise gdb.GdbError(f"osv: {type(e).__name__}: {e}") from None

    def run(self, arg: str, from_tty: bool) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class OsvPrefix(gdb.Command):
    """Commands for the osvtrace unikernel (threads, trace rings ...): see `help osv`."""

    def __init__(self) -> None:
        super().__init__("osv", gdb.COMMAND_USER, gdb.COMPLETE_NONE, True)


class OsvInfoPrefix(gdb.Command):
    """Kernel state: `osv info threads` ..."""

    def __init__(self) -> None:
        super().__init__("osv info", gdb.COMMAND_USER, gdb.COMPLETE_NONE, True)


# ---------------------------------------------------------------- types and symbols

@lru_cache(maxsize=None)
def lookup_type(name: str) -> Any:
    """A kernel type from debug info (cached: types do not change within a session)."""
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise OsvError(f"no type {name!r} in the debug info: is the kernel ELF loaded (gdb build/kernel.elf)?") from None


def symbol_address(name: str, *, static: bool = False) -> int:
    """Address of a kernel variable; `static` for file-local ones (anonymous namespaces)."""
    sym = gdb.lookup_static_symbol(name) if static else gdb.lookup_global_symbol(name)
    if sym is None:
        raise OsvError(f"no symbol {name!r}: is the kernel ELF loaded (gdb build/kernel.elf)?")
    return int(sym.value().address)


def symbol_type(name: str, *, static: bool = False) -> Any:
    sym = gdb.lookup_static_symbol(name) if static else gdb.lookup_global_symbol(name)
    if sym is None:
        raise OsvError(f"no symbol {name!r}: is the kernel ELF loaded (gdb build/kernel.elf)?")
    return sym.type


def enum_names(type_name: str) -> dict[int, str]:
    """value -> short name of a C++ enum (`thread_state::waiting` -> `waiting`)."""
    return {int(f.enumval): f.name.rsplit("::", 1)[-1] for f in lookup_type(type_name).fields()}


@dataclass(frozen=True)
class Layout:
    """Offsets and sizes of a structure's fields, taken from debug info (never hard-coded)."""

    name: str
    size: int
    fields: dict[str, tuple[int, int]]  # name -> (offset, size)

    def get(self, buf: bytes, name: str, *, signed: bool = False) -> int:
        off, size = self.fields[name]
        return int.from_bytes(buf[off:off + size], "little", signed=signed)

    def text(self, buf: bytes, name: str) -> str:
        off, size = self.fields[name]
        return buf[off:off + size].split(b"\0", 1)[0].decode("utf-8", "replace")


@lru_cache(maxsize=None)
def layout_of(type_name: str) -> Layout:
    t = lookup_type(type_name).strip_typedefs()
    return Layout(type_name, t.sizeof, {f.name: (f.bitpos // 8, f.type.sizeof) for f in t.fields()
                                        if f.name and not f.is_base_class})


def invalidate_caches() -> None:
    """Forget cached types (a new objfile was loaded)."""
    lookup_type.cache_clear()
    layout_of.cache_clear()


# ---------------------------------------------------------------- memory

def inferior() -> Any:
    """The live target. Without one gdb would read the ELF's static image instead, which
    looks like a kernel that never booted: refuse that clearly."""
    inf = gdb.selected_inferior()
    if inf is None or inf.pid == 0:
        raise OsvError("no running kernel: connect first (target remote :PORT; `osvtrace run --gdb` "
                       "starts QEMU with a gdbstub)")
    return inf


def read_small(addr: int, size: int) -> bytes:
    """A few bytes through gdb's memory packets (fine for headers and tables)."""
    try:
        return bytes(inferior().read_memory(addr, size))
    except gdb.MemoryError as e:
        raise OsvError(f"cannot read {size} bytes at {addr:#x}: {e}") from None


_pmemsave_broken: str | None = None


def pmemsave(addr: int, size: int) -> bytes:
    """Bulk guest-physical bytes through QEMU's monitor (virtual == physical in this kernel)."""
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


def write(addr: int, data: bytes) -> None:
    try:
        inferior().write_memory(addr, data)
    except gdb.MemoryError as e:
        raise OsvError(f"cannot write {len(data)} bytes at {addr:#x}: {e}") from None


def control_address() -> int:
    """Where osvtrace_control lives (the one structure that locates everything else)."""
    return symbol_address(CONTROL_SYMBOL)


def table(rows: list[tuple], header: tuple[str, ...]) -> str:
    """Rows as aligned text columns (numbers right-aligned)."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(isinstance(r[i], int) for r in rows) for i in range(len(header))]
    out = []
    for r in cells:
        out.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip())
    return "\n".join(out) + "\n"


def catalog() -> Any:
    """The tracepoint catalog (the same schema reader as the rest of osvtrace)."""
    from osvtrace.schema import default_catalog

    return default_catalog()


Reader = Callable[[int, int], bytes]
