"""Shared pieces of the gdb commands: the `osv` prefixes and error handling, cached
types and layouts from debug info, guest memory reads (small ones through gdb, bulk
ones through QEMU's `pmemsave`), bounded walkers of the kernel's linked structures,
names of static objects, and formatting.

Only imported inside gdb (it needs the `gdb` module). Nothing here knows a kernel
structure's layout: every offset and size comes from the ELF's debug info.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

import numpy as np

import gdb  # type: ignore[import-not-found]

from osvtrace.errors import OsvtraceError

# Reads at least this big go through pmemsave: read_memory moves ~10 MB/s
# (2 KiB packets), pmemsave 200-500 MB/s (PLATFORM.md).
PMEMSAVE_MIN = 64 * 1024
CONTROL_SYMBOL = "osvtrace_control"
DEBUG_ENV = "OSVTRACE_GDB_DEBUG"  # set to 1: internal errors show their traceback


class OsvError(OsvtraceError):
    """A failed osv command: one line for the user, no traceback. (An OsvtraceError, so the
    shared readers such as osvtrace.rings pass it on unchanged.)"""


class OsvCommand(gdb.Command):
    """Base of every `osv` command: turns any failure into one clear line.

    Subclasses implement run(arg, from_tty); their docstring is the help text. An
    unexpected exception (a bug) is reported as one `osv: internal error` line, never as
    a traceback, unless $OSVTRACE_GDB_DEBUG is set."""

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
            raise gdb.GdbError(f"osv: {one_line(str(e))}") from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise gdb.GdbError(f"osv: {where}{e.strerror or e}") from None
        except Exception as e:
            if os.environ.get(DEBUG_ENV):
                raise
            raise gdb.GdbError(f"osv: internal error in `{self.name}` ({type(e).__name__}: {e}); "
                               f"{DEBUG_ENV}=1 shows the traceback") from None

    name = "osv"

    def __init__(self, name: str, command_class: int = gdb.COMMAND_DATA, completer: int = gdb.COMPLETE_NONE,
                 prefix: bool = False) -> None:
        self.name = name
        super().__init__(name, command_class, completer, prefix)

    def run(self, arg: str, from_tty: bool) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def one_line(text: str) -> str:
    """gdb's own messages may span lines ("... running.\nUse the interrupt command ..."):
    an osv error is one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


class OsvPrefix(gdb.Command):
    """Commands for the osvtrace unikernel: threads, CPUs, mutexes, memory, the kernel log
    and the trace rings. `help osv` lists them; each has its own help (`help osv mutex`)."""

    def __init__(self) -> None:
        super().__init__("osv", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, True)


class OsvInfoPrefix(gdb.Command):
    """Kernel state: `osv info threads`."""

    def __init__(self) -> None:
        super().__init__("osv info", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, True)


def parse_cpu(arg: str, usage: str) -> int | None:
    """An optional CPU number argument."""
    argv = gdb.string_to_argv(arg)
    if not argv:
        return None
    if len(argv) > 1 or not argv[0].isdigit():
        raise OsvError(f"usage: {usage}")
    return int(argv[0])


# ---------------------------------------------------------------- types and symbols

@lru_cache(maxsize=None)
def lookup_type(name: str) -> Any:
    """A kernel type from debug info (cached: types do not change within a session)."""
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise OsvError(f"no type {name!r} in the debug info: is the kernel ELF loaded (gdb build/kernel.elf)?") from None


def has_type(name: str) -> bool:
    try:
        lookup_type(name)
        return True
    except OsvError:
        return False


def _symbol(name: str, static: bool) -> Any:
    sym = gdb.lookup_static_symbol(name) if static else gdb.lookup_global_symbol(name)
    if sym is None and not static:
        sym = gdb.lookup_static_symbol(name)
    if sym is None:
        raise OsvError(f"no symbol {name!r}: is the kernel ELF loaded (gdb build/kernel.elf)?")
    return sym


def symbol_address(name: str, *, static: bool = False) -> int:
    """Address of a kernel variable; `static` for file-local ones (anonymous namespaces)."""
    return int(_symbol(name, static).value().address)


def symbol_type(name: str, *, static: bool = False) -> Any:
    return _symbol(name, static).type


_file_symbols: dict[tuple[str, str], Any] = {}


def file_symbol(function: str, name: str) -> Any:
    """A variable or constant of the file that defines `function`, by its last name
    component: two files may each have an anonymous-namespace `lock`, and this picks the
    one next to `function` (`file_symbol("pages::alloc", "ranges")`)."""
    key = (function, name)
    got = _file_symbols.get(key)
    if got is not None:
        return got
    f = gdb.lookup_global_symbol(function) or gdb.lookup_static_symbol(function)
    if f is None or f.symtab is None:
        raise OsvError(f"no function {function!r} in the debug info: is the kernel ELF loaded?")
    for blk in (f.symtab.static_block(), f.symtab.global_block()):
        for s in blk:
            if (s.is_variable or s.is_constant) and (s.name == name or s.name.endswith("::" + name)):
                if s.symtab is not None and s.symtab.filename != f.symtab.filename and s.is_variable:
                    continue
                _file_symbols[key] = s
                return s
    raise OsvError(f"no {name!r} next to {function}() in the debug info (kernel and osvtrace out of step?)")


def file_constant(function: str, name: str) -> int:
    return int(file_symbol(function, name).value())


def file_variable(function: str, name: str) -> tuple[int, Any]:
    """(address, type) of a file-local variable."""
    s = file_symbol(function, name)
    v = s.value()
    if v.address is None:
        raise OsvError(f"{s.name} has no address")
    return int(v.address), s.type


def enum_names(type_name: str) -> dict[int, str]:
    """value -> short name of a C++ enum (`thread_state::waiting` -> `waiting`)."""
    return {int(f.enumval): f.name.rsplit("::", 1)[-1] for f in lookup_type(type_name).fields()}


class Layout:
    """Offsets and sizes of a structure's fields from debug info (never hard-coded).

    Paths may be dotted ("runqueue.head_.next"); base classes are searched, and a field
    of a class type (std::atomic<T>, a nested struct) is read as its whole bytes."""

    def __init__(self, type_: Any, name: str = "") -> None:
        self.type = type_.strip_typedefs()
        self.name = name or str(type_)
        self.size = self.type.sizeof
        self._paths: dict[str, tuple[int, int, Any]] = {}
        self.fields = {f.name: (f.bitpos // 8, f.type.sizeof) for f in self._all_fields(self.type)}

    @staticmethod
    def _all_fields(t: Any) -> list[Any]:
        out = []
        for f in t.fields():
            if f.is_base_class:
                out += Layout._all_fields(f.type.strip_typedefs())
            elif f.name and hasattr(f, "bitpos"):  # static members have no position
                out.append(f)
        return out

    def field(self, path: str) -> tuple[int, int, Any]:
        """(offset, size, gdb type) of a (dotted) field."""
        got = self._paths.get(path)
        if got is not None:
            return got
        t, off = self.type, 0
        for part in path.split("."):
            f = self._find(t, part)
            if f is None:
                raise OsvError(f"{self.name} has no field {path!r} in the debug info (kernel and osvtrace "
                               "out of step?)")
            off += f.bitpos // 8
            t = f.type.strip_typedefs()
        got = (off, t.sizeof, t)
        self._paths[path] = got
        return got

    @staticmethod
    def _find(t: Any, name: str) -> Any:
        for f in t.fields():
            if f.is_base_class:
                inner = Layout._find(f.type.strip_typedefs(), name)
                if inner is not None:
                    # A base class at a non-zero offset shifts its fields.
                    return _Shifted(inner, f.bitpos) if f.bitpos else inner
            elif f.name == name and hasattr(f, "bitpos"):
                return f
        return None

    def offset(self, path: str) -> int:
        return self.field(path)[0]

    def has(self, path: str) -> bool:
        try:
            self.field(path)
            return True
        except OsvError:
            return False

    def get(self, buf: bytes, path: str, *, base: int = 0, signed: bool = False) -> int:
        off, size, _ = self.field(path)
        return int.from_bytes(buf[base + off:base + off + size], "little", signed=signed)

    def text(self, buf: bytes, path: str, *, base: int = 0) -> str:
        off, size, _ = self.field(path)
        return clean_text(buf[base + off:base + off + size])

    def dtype(self, paths: dict[str, str]) -> np.dtype:
        """A numpy record type over the whole structure with the given fields (path -> name),
        so an array of structures read in one piece becomes columns."""
        names, formats, offsets = [], [], []
        for path, name in paths.items():
            off, size, t = self.field(path)
            names.append(name)
            offsets.append(off)
            if t.code == gdb.TYPE_CODE_ARRAY and t.target().sizeof == 1:
                formats.append(f"S{size}")
            else:
                formats.append({1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}.get(size, f"V{size}"))
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": self.size})


@dataclass
class _Shifted:
    """A field of a base class, with the base's offset added."""

    f: Any
    shift: int

    @property
    def bitpos(self) -> int:
        return self.f.bitpos + self.shift

    @property
    def type(self) -> Any:
        return self.f.type


@lru_cache(maxsize=None)
def layout_of(type_name: str) -> Layout:
    return Layout(lookup_type(type_name), type_name)


def layout_of_type(t: Any) -> Layout:
    return _layout_by_type(str(t.strip_typedefs()), t)


_type_layouts: dict[str, Layout] = {}


def _layout_by_type(key: str, t: Any) -> Layout:
    got = _type_layouts.get(key)
    if got is None:
        got = _type_layouts[key] = Layout(t, key)
    return got


def clean_text(raw: bytes) -> str:
    """A NUL-padded char array as printable text (a name being rewritten may hold junk)."""
    s = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in s)


def invalidate_caches() -> None:
    """Forget everything cached from debug info (a new objfile was loaded)."""
    lookup_type.cache_clear()
    layout_of.cache_clear()
    word.cache_clear()
    _type_layouts.clear()
    _statics.clear()
    _file_symbols.clear()
    for f in _invalidators:
        f()


_invalidators: list[Callable[[], None]] = []


def on_invalidate(f: Callable[[], None]) -> Callable[[], None]:
    """Register a module's cache-clearing function."""
    _invalidators.append(f)
    return f


# ---------------------------------------------------------------- memory

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


def read_small(addr: int, size: int) -> bytes:
    """A few bytes through gdb's memory packets (fine for headers and tables)."""
    if addr <= 0 or addr + size > 1 << 48:
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


# ---------------------------------------------------------------- walkers

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


# ---------------------------------------------------------------- static objects by address

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
    from elftools.elf.elffile import ELFFile  # pyelftools: an osvtrace dependency

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
        for f in Layout._all_fields(t):
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
        for f in Layout._all_fields(t):
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
        got = any(_contains(f.type, test, depth + 1) for f in Layout._all_fields(t))
    else:
        got = False
    _contains_cache[key] = got
    return got


on_invalidate(_contains_cache.clear)


# ---------------------------------------------------------------- time and text

@dataclass(frozen=True)
class Clock:
    hz: int
    boot: int  # TSC at kernel entry

    def ms(self, tsc: int) -> float:
        return (tsc - self.boot) * 1000.0 / self.hz

    def span(self, ticks: int) -> str:
        return format_seconds(ticks / self.hz)


def clock() -> Clock | None:
    """The kernel's TSC frequency and boot TSC (from the control block), None before the
    trace runtime has published them."""
    try:
        c = layout_of("trace::control")
        buf = read_small(control_address(), c.size)
        hz, boot = c.get(buf, "tsc_hz"), c.get(buf, "tsc_boot")
    except OsvError:
        return None
    return Clock(hz, boot) if hz else None


def format_seconds(s: float) -> str:
    if s >= 100:
        return f"{s:.0f}s"
    if s >= 1:
        return f"{s:.2f}s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f}ms"
    return f"{s * 1e6:.0f}us"


def table(rows: list[tuple], header: tuple[str, ...]) -> str:
    """Rows as aligned text columns (numbers right-aligned)."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [bool(rows) and all(isinstance(r[i], int) for r in rows) for i in range(len(header))]
    out = []
    for r in cells:
        out.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip())
    return "\n".join(out) + "\n"


def catalog() -> Any:
    """The tracepoint catalog (the same schema reader as the rest of osvtrace)."""
    from osvtrace.schema import default_catalog

    return default_catalog()


Reader = Callable[[int, int], bytes]


# ---------------------------------------------------------------- pretty-printers

class PrettyPrinters:
    """The osv pretty-printers, by the stripped type's name (or a function giving it, for
    names known only once the ELF is loaded). Each printer gets the value and returns a
    string; it never raises (a failure prints as `<osv: ...>`)."""

    name = "osv"

    def __init__(self) -> None:
        self.enabled = True
        self.subprinters: list[Any] = []
        self.entries: list[tuple[Any, Callable[[Any], str], _Sub]] = []

    def add(self, type_name: str | Callable[[], str], fn: Callable[[Any], str], label: str = "") -> None:
        sub = _Sub(label or (type_name if isinstance(type_name, str) else fn.__name__))
        self.subprinters.append(sub)
        self.entries.append((type_name, fn, sub))

    def __call__(self, val: Any) -> Any:
        try:
            t = val.type.strip_typedefs()
        except gdb.error:
            return None
        if t.code != gdb.TYPE_CODE_STRUCT or not t.name:
            return None
        for name, fn, sub in self.entries:
            if not sub.enabled:
                continue
            if not isinstance(name, str):
                try:
                    name = name()
                except (OsvError, gdb.error):
                    continue
            if name == t.name:
                return _Printer(fn, val)
        return None


@dataclass
class _Sub:
    name: str
    enabled: bool = True


class _Printer:
    def __init__(self, fn: Callable[[Any], str], val: Any) -> None:
        self.fn, self.val = fn, val

    def to_string(self) -> str:
        try:
            with static_reads():
                return self.fn(self.val)
        except (OsvError, OsvtraceError, gdb.error, gdb.MemoryError) as e:
            return f"<osv: {e}>"
        except Exception as e:  # never a traceback in the middle of `print`
            if os.environ.get(DEBUG_ENV):
                raise
            return f"<osv: internal error: {type(e).__name__}: {e}>"


PRINTERS = PrettyPrinters()


def value_address(val: Any) -> int:
    """The address of a printed object (pretty-printers read the live bytes themselves)."""
    if val.address is None:
        raise OsvError("value not in memory")
    return int(val.address)
