"""The tracepoint schema: the one reader of tracepoints/*.toml.

Everything that knows about tracepoints (the kernel header generator, the
decoder, the gdb commands, the docs) gets them from a :class:`Catalog` built
here, either from the TOML files or from the copy embedded in a trace file.

The record layout rule (docs/format.md): a record's payload is the
concatenation of the header slot's 16 payload bytes and each continuation
slot's 28; arguments are laid out in declaration order at natural alignment,
and a scalar never straddles two slots (it moves to the next slot instead).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from osvtrace import resources
from osvtrace.catalog import layout

# name -> (size in bytes, numpy dtype string, signed, C++ type)
SCALAR_TYPES: dict[str, tuple[int, str, bool, str]] = {
    "u8": (1, "<u1", False, "uint8_t"),
    "u16": (2, "<u2", False, "uint16_t"),
    "u32": (4, "<u4", False, "uint32_t"),
    "u64": (8, "<u8", False, "uint64_t"),
    "s8": (1, "<i1", True, "int8_t"),
    "s16": (2, "<i2", True, "int16_t"),
    "s32": (4, "<i4", True, "int32_t"),
    "s64": (8, "<i8", True, "int64_t"),
    "bool": (1, "<u1", False, "bool"),
    "ptr": (8, "<u8", False, "const void*"),
    "tid": (4, "<u4", False, "uint32_t"),
}
BLOB_TYPES = ("bytes", "str")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Names become C++ and Python identifiers: keep them clear of both languages' keywords.
RESERVED = frozenset("""alignas alignof and asm auto bool break case catch char class const constexpr
continue default delete do double else enum explicit export extern false float for friend goto if
inline int long mutable namespace new noexcept not nullptr operator or private protected public
register return short signed sizeof static struct switch template this throw true try typedef
typeid typename union unsigned using virtual void volatile while xor None True False as assert async
await def del elif except finally from global import in is lambda nonlocal pass raise with yield
p stack_fp""".split())
MAX_ID = 0xFFFE  # 0 and 0xffff are reserved by the slot format
MAX_SLOTS = 255
# Whether a tracepoint's records carry a stack trailer (docs/format.md "Stack trailer"):
# "optional" when tracebt= (or ctl backtrace) selects it, "always" for those that exist to
# carry one (cpu_sample), "none" where no stack is taken (trace_lost, written by the ring).
STACK_MODES = ("optional", "always", "none")


class SchemaError(ValueError):
    """A tracepoint declaration is invalid (message names the file and entry)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    size: int
    offset: int  # in the record's logical payload
    enum: str | None = None
    doc: str = ""

    @property
    def is_blob(self) -> bool:
        return self.type in BLOB_TYPES

    @property
    def signed(self) -> bool:
        return SCALAR_TYPES[self.type][2] if not self.is_blob else False

    @property
    def dtype(self) -> np.dtype:
        if self.is_blob:
            return np.dtype((np.bytes_, self.size)) if self.type == "str" else np.dtype((np.void, self.size))
        return np.dtype(SCALAR_TYPES[self.type][1])


@dataclass(frozen=True)
class Tracepoint:
    name: str
    id: int
    subsystem: str
    doc: str
    format: str
    fields: tuple[Field, ...]
    nslots: int
    payload_size: int  # bytes of logical payload actually used
    removed: bool = False
    stack: str = "none"  # STACK_MODES; files written before stacks existed say "none"

    @property
    def max_slots(self) -> int:
        """Slots of its longest record: the fixed ones plus a full stack trailer if it may carry one."""
        return self.nslots + (layout.STACK_MAX_SLOTS if self.stack != "none" else 0)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"tracepoint {self.name} has no argument {name!r}")


@dataclass
class Catalog:
    tracepoints: list[Tracepoint]
    enums: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {tp.id: tp for tp in self.tracepoints}
        self.by_name = {tp.name: tp for tp in self.tracepoints}
        self.max_id = max((tp.id for tp in self.tracepoints), default=0)

    def active(self) -> list[Tracepoint]:
        return [tp for tp in self.tracepoints if not tp.removed]

    def match(self, patterns: Iterable[str]) -> list[Tracepoint]:
        """Tracepoints whose names match any anchored glob (``mutex_lock`` is exact)."""
        pats = [p.strip() for p in patterns if p.strip()]
        return [tp for tp in self.active() if any(fnmatch.fnmatchcase(tp.name, p) for p in pats)]

    def enum_name(self, enum: str, value: int) -> str:
        for name, v in self.enums.get(enum, {}).items():
            if v == value:
                return name
        return str(value)

    def nslots_table(self) -> np.ndarray:
        """nslots per id (0 for unknown ids), for vectorised validation."""
        t = np.zeros(0x10000, np.uint8)
        for tp in self.tracepoints:
            t[tp.id] = tp.nslots
        return t

    def stack_table(self) -> np.ndarray:
        """Per id, the most trailer slots a record may add (0: it never carries a stack)."""
        t = np.zeros(0x10000, np.uint8)
        for tp in self.tracepoints:
            t[tp.id] = layout.STACK_MAX_SLOTS if tp.stack != "none" else 0
        return t


def _align(offset: int, size: int) -> int:
    return (offset + size - 1) // size * size


def lay_out(args: list[dict], where: str) -> tuple[tuple[Field, ...], int, int]:
    """Place arguments in the logical payload; returns (fields, nslots, used bytes)."""
    fields: list[Field] = []
    off = 0
    seen: set[str] = set()
    for a in args:
        name, typ = a.get("name"), a.get("type")
        if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED:
            raise SchemaError(f"{where}: bad argument name {name!r}")
        if name in seen:
            raise SchemaError(f"{where}: duplicate argument {name!r}")
        seen.add(name)
        if typ in SCALAR_TYPES:
            size = SCALAR_TYPES[typ][0]
            off = _align(off, size)
            # NOTE: a scalar never straddles slots, so it stays one aligned load/store.
            if off + size > layout.piece_end(off):
                off = _align(layout.piece_end(off), size)
        elif typ in BLOB_TYPES:
            size = a.get("size")
            if not isinstance(size, int) or not 1 <= size <= 1024:
                raise SchemaError(f"{where}: argument {name!r} of type {typ} needs size = 1..1024")
        else:
            raise SchemaError(f"{where}: argument {name!r} has unknown type {typ!r}")
        fields.append(Field(name, typ, size, off, a.get("enum"), a.get("doc", "")))
        off += size
    nslots = layout.slots_for(off)
    if nslots > MAX_SLOTS:
        raise SchemaError(f"{where}: payload of {off} bytes needs more than {MAX_SLOTS} slots")
    return tuple(fields), nslots, off


def load(directory: Path | str | None = None) -> Catalog:
    """Read every tracepoints/*.toml (the package's catalog by default) into a validated catalog."""
    directory = Path(directory) if directory is not None else resources.schema_dir()
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise SchemaError(f"{directory}: no *.toml tracepoint files")
    tps: list[Tracepoint] = []
    enums: dict[str, dict[str, int]] = {}
    for path in files:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise SchemaError(f"{path.name}: {e}") from None
        subsystem = data.get("subsystem", path.stem)
        for ename, values in data.get("enums", {}).items():
            if ename in enums:
                raise SchemaError(f"{path.name}: enum {ename!r} declared twice")
            for k in values:
                if not NAME_RE.match(k) or k in RESERVED:
                    raise SchemaError(f"{path.name}: enum {ename!r} value name {k!r} is not a usable identifier")
            enums[ename] = {k: int(v) for k, v in values.items()}
        classes = data.get("classes", {})
        for i, entry in enumerate(data.get("tracepoint", [])):
            where = f"{path.name}: tracepoint #{i + 1} ({entry.get('name', '?')})"
            name = entry.get("name")
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise SchemaError(f"{where}: bad name")
            tid = entry.get("id")
            if not isinstance(tid, int) or not 1 <= tid <= MAX_ID:
                raise SchemaError(f"{where}: id must be an integer in 1..{MAX_ID}")
            if "class" in entry:
                if entry["class"] not in classes:
                    raise SchemaError(f"{where}: unknown class {entry['class']!r}")
                args = classes[entry["class"]]["args"]
            else:
                args = entry.get("args", [])
            fields, nslots, used = lay_out(args, where)
            for f in fields:
                if f.enum is not None and f.enum not in enums:
                    raise SchemaError(f"{where}: argument {f.name!r} uses unknown enum {f.enum!r}")
            doc = entry.get("doc", "")
            if not doc and not entry.get("removed"):
                raise SchemaError(f"{where}: missing doc")
            stack = entry.get("stack", "optional")
            if stack not in STACK_MODES:
                raise SchemaError(f"{where}: stack must be one of {', '.join(STACK_MODES)}, not {stack!r}")
            if stack != "none" and nslots + layout.STACK_MAX_SLOTS > MAX_SLOTS:
                raise SchemaError(f"{where}: with a stack trailer a record needs more than {MAX_SLOTS} slots")
            fmt = entry.get("format", "")
            try:
                fmt.format(**{f.name: 0 for f in fields})
            except (KeyError, IndexError, ValueError) as e:
                raise SchemaError(f"{where}: format {fmt!r} does not fit the arguments ({e})") from None
            tps.append(Tracepoint(name, tid, subsystem, doc, fmt, fields, nslots, used,
                                  bool(entry.get("removed", False)), stack))
    ids: dict[int, str] = {}
    names: set[str] = set()
    for tp in tps:
        if tp.id in ids:
            raise SchemaError(f"tracepoint id {tp.id} used by both {ids[tp.id]} and {tp.name}")
        if tp.name in names:
            raise SchemaError(f"tracepoint name {tp.name} declared twice")
        ids[tp.id] = tp.name
        names.add(tp.name)
    tps.sort(key=lambda t: t.id)
    return Catalog(tps, enums)


_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog of this source tree's tracepoints/ (cached)."""
    global _default
    if _default is None:
        _default = load()
    return _default
