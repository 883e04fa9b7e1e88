"""Kernel types, symbols and structure layouts from the ELF's debug info (cached for the
session; dropped when a new objfile loads). No kernel structure's layout is written
down in the gdb code: every offset and size comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.fmt import clean_text


@lru_cache(maxsize=None)
def lookup_type(name: str) -> Any:
    """A kernel type from debug info (cached: types do not change within a session)."""
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise OsvError(f"no type {name!r} in the debug info: "
                       "is the kernel ELF loaded (gdb build/kernel.elf)?") from None


def has_type(name: str) -> bool:
    try:
        lookup_type(name)
        return True
    except OsvError:
        return False


def symbol(name: str, static: bool = False) -> Any:
    """A kernel symbol (gdb.Symbol); `static` for file-local ones. A global name falls
    back to a static one."""
    sym = gdb.lookup_static_symbol(name) if static else gdb.lookup_global_symbol(name)
    if sym is None and not static:
        sym = gdb.lookup_static_symbol(name)
    if sym is None:
        raise OsvError(f"no symbol {name!r}: is the kernel ELF loaded (gdb build/kernel.elf)?")
    return sym


def symbol_address(name: str, *, static: bool = False) -> int:
    """Address of a kernel variable; `static` for file-local ones (anonymous namespaces)."""
    return int(symbol(name, static).value().address)


def symbol_type(name: str, *, static: bool = False) -> Any:
    return symbol(name, static).type


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
        self.fields = {f.name: (f.bitpos // 8, f.type.sizeof) for f in self.all_fields(self.type)}

    @staticmethod
    def all_fields(t: Any) -> list[Any]:
        out = []
        for f in t.fields():
            if f.is_base_class:
                out += Layout.all_fields(f.type.strip_typedefs())
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


def invalidate_caches() -> None:
    """Forget everything cached from debug info (a new objfile was loaded): here, and in
    every module that registered its caches with on_invalidate."""
    lookup_type.cache_clear()
    layout_of.cache_clear()
    _type_layouts.clear()
    _file_symbols.clear()
    for f in _invalidators:
        f()


_invalidators: list[Callable[[], None]] = []


def on_invalidate(f: Callable[[], None]) -> Callable[[], None]:
    """Register a module's cache-clearing function (modules above this one keep caches
    of what they read from debug info: pointer size, static objects, code)."""
    _invalidators.append(f)
    return f
