"""The DWARF DIEs symbols need, in one pass over .debug_info: inlined calls (for inline
chains) and variables at fixed addresses with their types (for naming static objects).

pyelftools parses every DIE of a unit it walks and keeps them all; a 69 MB OSv loader.elf
has millions, so each unit's DIEs are dropped once the unit is done (its variables' types
are resolved before that, while the unit is still parsed).
"""

from __future__ import annotations

import numpy as np

from osvtrace.symbols.elf import demangle
from osvtrace.symbols.tables import TY_ARRAY, TY_OTHER, TY_STRUCT, Strings

SCOPES = {"DW_TAG_namespace", "DW_TAG_structure_type", "DW_TAG_class_type", "DW_TAG_union_type"}
STRUCTS = {"DW_TAG_structure_type", "DW_TAG_class_type", "DW_TAG_union_type"}
QUALIFIERS = {"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_atomic_type",
              "DW_TAG_restrict_type"}
DW_OP_ADDR = 0x03
# DIEs whose children hold nothing symbols need (parameters, call sites' arguments, enumerators,
# array bounds): the walk steps over them unparsed where the producer wrote DW_AT_sibling (GCC does)
SKIP = {"DW_TAG_formal_parameter", "DW_TAG_call_site", "DW_TAG_GNU_call_site", "DW_TAG_enumeration_type",
        "DW_TAG_subroutine_type", "DW_TAG_array_type", "DW_TAG_template_type_param",
        "DW_TAG_template_value_param", "DW_TAG_GNU_template_parameter_pack"}
LOCAL_REFS = {"DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata"}


def _ref(die, name: str) -> int:
    """The DIE offset an attribute refers to (-1: none)."""
    a = die.attributes.get(name)
    if a is None:
        return -1
    return a.value + die.cu.cu_offset if a.form in LOCAL_REFS else a.value


def _text(die, name: str) -> str:
    a = die.attributes.get(name)
    if a is None:
        return ""
    v = a.value
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _int(die, name: str, default: int = -1) -> int:
    a = die.attributes.get(name)
    return a.value if a is not None and isinstance(a.value, int) else default


class _Names:
    """Names of subprograms and declarations by DIE offset, resolved through
    DW_AT_specification and DW_AT_abstract_origin (which may point forward or to another unit)."""

    def __init__(self) -> None:
        self.info: dict[int, tuple[str, str, int, int, str]] = {}  # name, linkage, spec, origin, scope

    def add(self, die, scope: str) -> None:
        self.info[die.offset] = (_text(die, "DW_AT_name"), _text(die, "DW_AT_linkage_name"),
                                 _ref(die, "DW_AT_specification"), _ref(die, "DW_AT_abstract_origin"), scope)

    def short(self, off: int) -> str:
        for _ in range(8):
            i = self.info.get(off)
            if i is None:
                return ""
            if i[0]:
                return i[0]
            off = i[2] if i[2] >= 0 else i[3]
        return ""

    def function(self, off: int) -> str:
        """A function as addr2line -C -f prints it: its demangled linkage name, else scope::name."""
        seen = off
        for _ in range(8):
            i = self.info.get(off)
            if i is None:
                break
            if i[1]:
                return demangle(i[1])
            nxt = i[2] if i[2] >= 0 else i[3]
            if nxt < 0:
                break
            off = nxt
        i = self.info.get(off) or self.info.get(seen)
        return (f"{i[4]}::{i[0]}" if i[4] else i[0]) if i and i[0] else "??"


class Dies:
    """What the pass collects; `arrays()` turns it into the tables' columns."""

    def __init__(self, dwarf, strings: Strings, files_of: dict[int, list[int]]) -> None:
        self.dwarf, self.strings, self.files_of = dwarf, strings, files_of
        self.names = _Names()
        # inlined calls: origin DIE, call file, call line, parent entry; ranges (lo, hi, entry, depth)
        self.in_origin: list[int] = []
        self.in_file: list[int] = []
        self.in_line: list[int] = []
        self.in_parent: list[int] = []
        self.ranges: list[tuple[int, int, int, int]] = []
        # variables at fixed addresses: address, name, type
        self.vars: list[tuple[int, int, int]] = []
        self.ty_memo: dict[int, int] = {}
        self.ty: list[list[int]] = []  # kind, size, name, elem, first, count
        self.mb: list[tuple[int, int, int]] = []

    # ------------------------------------------------------------ the pass

    def walk(self) -> None:
        for cu in self.dwarf.iter_CUs():
            self._unit(cu)
            # NOTE: pyelftools keeps every DIE it parsed in its unit; drop them (see the module doc)
            cu._dielist.clear()
            cu._diemap.clear()

    def _unit(self, cu) -> None:
        top = cu.get_top_DIE()
        base = _int(top, "DW_AT_low_pc", 0)
        files = self.files_of.get(cu.cu_offset, [])
        unit_vars: list[tuple[int, str, int, int]] = []  # address, qualified name, type DIE, (spec) decl
        # per open DIE: its children, then the scope text, inline entry and depth inside it
        stack = [(top.iter_children(), "", -1, 0)]
        while stack:
            children, scope, entry, depth = stack[-1]
            die = next(children, None)
            if die is None:
                stack.pop()
                continue
            tag = die.tag
            inner_scope, inner_entry, inner_depth = scope, entry, depth
            if tag == "DW_TAG_subprogram":
                self.names.add(die, scope)
                if "DW_AT_declaration" in die.attributes:
                    continue  # its children are parameters: skipped unparsed (DW_AT_sibling)
                name = self.names.short(die.offset) or _text(die, "DW_AT_name")
                inner_scope = f"{scope}::{name}" if scope and name else name or scope
                inner_entry, inner_depth = -1, 0
            elif tag == "DW_TAG_inlined_subroutine":
                k = len(self.in_origin)
                self.in_origin.append(_ref(die, "DW_AT_abstract_origin"))
                cf = _int(die, "DW_AT_call_file", -1)
                self.in_file.append(files[cf] if 0 <= cf < len(files) else 0)
                self.in_line.append(_int(die, "DW_AT_call_line", 0))
                self.in_parent.append(entry)
                for lo, hi in self._ranges(die, cu, base):
                    self.ranges.append((lo, hi, k, depth + 1))
                inner_entry, inner_depth = k, depth + 1
            elif tag in SCOPES:
                name = _text(die, "DW_AT_name")
                if name:  # an anonymous namespace adds nothing to a name
                    inner_scope = f"{scope}::{name}" if scope else name
            elif tag == "DW_TAG_variable":
                self.names.add(die, scope)
                addr = self._address(die)
                if addr is not None:
                    unit_vars.append((addr, scope, die.offset, _ref(die, "DW_AT_type")))
            elif tag in SKIP:
                continue
            if die.has_children:
                stack.append((die.iter_children(), inner_scope, inner_entry, inner_depth))
        for addr, vscope, off, ty in unit_vars:
            name, ty = self._variable(off, vscope, ty)
            self.vars.append((addr, self.strings(name), self._type(ty)))

    @staticmethod
    def _address(die) -> int | None:
        a = die.attributes.get("DW_AT_location")
        if a is None or a.form != "DW_FORM_exprloc":
            return None
        v = a.value
        if len(v) == 9 and v[0] == DW_OP_ADDR:
            return int.from_bytes(bytes(v[1:9]), "little") or None
        return None

    def _variable(self, off: int, scope: str, ty: int) -> tuple[str, int]:
        """A variable's qualified name and type DIE, through its declaration when it has one
        (a class's static member, a function's static seen from an inlined copy)."""
        info = self.names.info.get(off)
        name = info[0] if info else ""
        for _ in range(4):
            if info is None or (info[0] and ty >= 0):
                break
            nxt = info[2] if info[2] >= 0 else info[3]
            if nxt < 0:
                break
            info = self.names.info.get(nxt)
            if info is not None:
                name = name or info[0]
                scope = info[4] if info[4] else scope
                if ty < 0:
                    ty = self._decl_type(nxt)
        return (f"{scope}::{name}" if scope else name) or "?", ty

    def _decl_type(self, off: int) -> int:
        try:
            return _ref(self.dwarf.get_DIE_from_refaddr(off), "DW_AT_type")
        except Exception:  # a reference pyelftools cannot follow costs a type, not the symbols
            return -1

    def _ranges(self, die, cu, base: int) -> list[tuple[int, int]]:
        lo = _int(die, "DW_AT_low_pc", -1)
        if lo >= 0:
            a = die.attributes.get("DW_AT_high_pc")
            if a is None:
                return [(lo, lo + 1)]
            return [(lo, a.value if a.form == "DW_FORM_addr" else lo + a.value)]
        a = die.attributes.get("DW_AT_ranges")
        if a is None:
            return []
        out = []
        try:
            rl = self.dwarf.range_lists().get_range_list_at_offset(a.value, cu=cu)
        except Exception:  # damaged range list: this inline entry gets no addresses
            return []
        for r in rl:
            if hasattr(r, "base_address"):
                base = r.base_address
            elif getattr(r, "is_absolute", False):
                out.append((r.begin_offset, r.end_offset))
            else:
                out.append((base + r.begin_offset, base + r.end_offset))
        return out

    # ------------------------------------------------------------ types

    def _type(self, off: int, depth: int = 0) -> int:
        """The type at a DIE offset as a row of the type table (qualifiers and typedefs
        looked through; -1: unknown)."""
        if off < 0 or depth > 32:
            return -1
        if off in self.ty_memo:
            return self.ty_memo[off]
        try:
            die = self.dwarf.get_DIE_from_refaddr(off)
        except Exception:  # a reference pyelftools cannot follow costs a type, not the symbols
            return -1
        if die.tag in QUALIFIERS:
            k = self._type(_ref(die, "DW_AT_type"), depth + 1)
            self.ty_memo[off] = k
            return k
        k = self.ty_memo[off] = len(self.ty)
        row = [TY_OTHER, max(_int(die, "DW_AT_byte_size", 0), 0), self.strings(_text(die, "DW_AT_name")), -1, 0, 0]
        self.ty.append(row)
        if die.tag in STRUCTS and die.has_children:
            members = []
            for c in die.iter_children():
                if c.tag in ("DW_TAG_member", "DW_TAG_inheritance"):
                    mo = _int(c, "DW_AT_data_member_location", -1)
                    if mo >= 0 and "DW_AT_external" not in c.attributes:  # static members have no offset
                        members.append((mo, self.strings(_text(c, "DW_AT_name")), _ref(c, "DW_AT_type")))
            row[0] = TY_STRUCT
            resolved = [(mo, nm, self._type(t, depth + 1)) for mo, nm, t in sorted(members)]
            row[4], row[5] = len(self.mb), len(resolved)
            self.mb += [(nm, mo, t) for mo, nm, t in resolved]
        elif die.tag == "DW_TAG_array_type":
            dims = []
            for c in die.iter_children():
                if c.tag == "DW_TAG_subrange_type":
                    n = _int(c, "DW_AT_count", -1)
                    if n < 0:
                        ub = _int(c, "DW_AT_upper_bound", -1)
                        n = ub + 1 if ub >= 0 else 0
                    dims.append(n)
            elem = self._type(_ref(die, "DW_AT_type"), depth + 1)
            # a[2][3] is an array of 2 arrays of 3: one table row per dimension, innermost last
            for n in reversed(dims[1:]):
                esize = self.ty[elem][1] if elem >= 0 else 0
                self.ty.append([TY_ARRAY, esize * n, 0, elem, 0, n])
                elem = len(self.ty) - 1
            esize = self.ty[elem][1] if elem >= 0 else 0
            n = dims[0] if dims else 0
            row[0], row[3], row[5] = TY_ARRAY, elem, n
            row[1] = row[1] or esize * n
        return k

    # ------------------------------------------------------------ columns

    def arrays(self) -> dict[str, np.ndarray]:
        names = [self.strings(self.names.function(o)) for o in self.in_origin]
        out = {"in_name": np.array(names, np.int32), "in_file": np.array(self.in_file, np.int32),
               "in_line": np.array(self.in_line, np.int32), "in_parent": np.array(self.in_parent, np.int32)}
        out.update(segments(self.ranges))
        v = sorted(self.vars)
        ty = np.array(self.ty, np.int64).reshape(-1, 6)
        lo = np.array([a for a, _, _ in v], np.uint64)
        tyi = np.array([t for _, _, t in v], np.int32)
        size = np.where(tyi >= 0, ty[np.maximum(tyi, 0), 1] if len(ty) else 0, 0).astype(np.uint64)
        out.update(ob_lo=lo, ob_hi=lo + np.maximum(size, 1), ob_name=np.array([n for _, n, _ in v], np.int32),
                   ob_type=tyi, ty_kind=ty[:, 0].astype(np.uint8), ty_size=ty[:, 1].astype(np.uint64),
                   ty_name=ty[:, 2].astype(np.int32), ty_elem=ty[:, 3].astype(np.int32),
                   ty_first=ty[:, 4].astype(np.int32), ty_count=ty[:, 5].astype(np.int64))
        mb = np.array(self.mb, np.int64).reshape(-1, 3)
        out.update(mb_name=mb[:, 0].astype(np.int32), mb_off=mb[:, 1].astype(np.uint64),
                   mb_type=mb[:, 2].astype(np.int32))
        return out


def segments(ranges: list[tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
    """The address space cut where any inline range starts or ends, each piece marked with the
    innermost range covering it. Ranges of one depth never overlap (they are distinct calls),
    and a deeper one lies inside a shallower one, so painting depth by depth, shallow first,
    leaves the innermost on top."""
    if not ranges:
        return {"seg_lo": np.empty(0, np.uint64), "seg_entry": np.empty(0, np.int32)}
    r = np.array(ranges, np.uint64)
    lo, hi, ent, dep = r[:, 0], r[:, 1], r[:, 2].astype(np.int64), r[:, 3].astype(np.int64)
    ok = hi > lo
    lo, hi, ent, dep = lo[ok], hi[ok], ent[ok], dep[ok]
    bounds = np.unique(np.concatenate([lo, hi]))
    seg = np.full(len(bounds), -1, np.int64)  # segment i is [bounds[i], bounds[i+1])
    s = np.searchsorted(bounds, lo)
    e = np.searchsorted(bounds, hi)
    for d in np.unique(dep):
        m = dep == d
        ss, ee, en = s[m], e[m], ent[m]
        n = ee - ss
        idx = np.repeat(ss - np.cumsum(np.concatenate(([0], n[:-1]))), n) + np.arange(n.sum())
        seg[idx] = np.repeat(en, n)
    return {"seg_lo": bounds, "seg_entry": seg.astype(np.int32)}
