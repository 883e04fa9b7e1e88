"""Data addresses named by the static object and member that hold them, from the DWARF types
of the ELF's variables: `slots[1].m`, `store::buckets[17].lock`.

One walk down the type per distinct address (a trace names a handful of mutexes, not
millions), so this is plain Python over the tables' arrays.
"""

from __future__ import annotations

import numpy as np

from osvtrace.symbols.tables import TY_ARRAY, TY_STRUCT, Tables

MAX_NESTING = 32


def object_names(t: Tables, addrs: np.ndarray, want: tuple[str, ...] = ()) -> np.ndarray:
    """Names of sorted distinct addresses ('' where no static object holds one)."""
    out = np.full(len(addrs), "", object)
    if not len(t.ob_lo) or not len(addrs):
        return out
    i = np.searchsorted(t.ob_lo, addrs, "right") - 1
    ok = i >= 0
    ok[ok] &= addrs[ok] < t.ob_hi[i[ok]]
    for k in np.flatnonzero(ok).tolist():
        j = int(i[k])
        out[k] = member_path(t, str(t.strings[t.ob_name[j]]), int(t.ob_type[j]), int(addrs[k] - t.ob_lo[j]), want)
    return out


def _named(t: Tables, ty: int, want: tuple[str, ...]) -> bool:
    return ty >= 0 and any(w in t.strings[t.ty_name[ty]] for w in want)


def _member_at(t: Tables, ty: int, off: int) -> int:
    """The member of struct type `ty` holding byte `off` (-1 none): the last one starting at or
    before it that is long enough (a member of unknown size is taken as reaching on)."""
    first, n = int(t.ty_first[ty]), int(t.ty_count[ty])
    if not n:
        return -1
    offs = t.mb_off[first:first + n]
    k = int(np.searchsorted(offs, np.uint64(off), "right")) - 1
    while k >= 0:
        mt = int(t.mb_type[first + k])
        size = int(t.ty_size[mt]) if mt >= 0 else 0
        if not size or off < int(offs[k]) + size:
            return first + k
        if k + 1 < n and int(offs[k]) == int(offs[k + 1]):
            k -= 1  # a union's members share an offset: try the one before
            continue
        return -1
    return -1


def _reaches(t: Tables, ty: int, want: tuple[str, ...], depth: int = 0) -> bool:
    """Whether a type of `want` starts at offset 0 of type `ty` (itself, or its first member,
    or its first element, down)."""
    while ty >= 0 and depth < MAX_NESTING:
        if _named(t, ty, want):
            return True
        if t.ty_kind[ty] == TY_ARRAY:
            ty = int(t.ty_elem[ty])
        elif t.ty_kind[ty] == TY_STRUCT and t.ty_count[ty]:
            m = _member_at(t, ty, 0)
            ty = int(t.mb_type[m]) if m >= 0 else -1
        else:
            return False
        depth += 1
    return False


def member_path(t: Tables, name: str, ty: int, off: int, want: tuple[str, ...] = ()) -> str:
    """`name` followed by the array indices and members that lead to byte `off` of it. At
    offset 0 an object is also its first member's start: the walk goes on there only towards a
    type of `want` (so a mutex first in a struct is named as the mutex, the struct otherwise);
    an array's start is always named as its first element."""
    path = name
    for _ in range(MAX_NESTING):
        if ty < 0 or (off == 0 and (_named(t, ty, want) or
                                    (t.ty_kind[ty] != TY_ARRAY and not _reaches(t, ty, want)))):
            break  # an array's start is its first element's; a struct's, its first member's only towards `want`
        kind = t.ty_kind[ty]
        if kind == TY_ARRAY:
            elem = int(t.ty_elem[ty])
            esize = int(t.ty_size[elem]) if elem >= 0 else 0
            if esize <= 0:
                break
            k, off = divmod(off, esize)
            if t.ty_count[ty] and k >= t.ty_count[ty]:
                break  # past the array's end: say the offset instead
            path += f"[{k}]"
            ty = elem
        elif kind == TY_STRUCT:
            m = _member_at(t, ty, off)
            if m < 0:
                break
            mname = str(t.strings[t.mb_name[m]])
            if mname:  # a base class's part adds no name: its members are the object's
                path += f".{mname}"
            off -= int(t.mb_off[m])
            ty = int(t.mb_type[m])
        else:
            break
    return f"{path}+{off:#x}" if off else path
