"""An ELF's symbol facts as sorted numpy arrays: what every lookup searches, and what the
cache stores (one .npz, loaded in milliseconds; no Python object per symbol until a name is
printed).

Arrays, each group sorted by its first column:

- functions (.symtab STT_FUNC): ``fn_lo``, ``fn_hi``, ``fn_name`` (demangled), ``fn_sym`` (as in
  the symbol table, what `nm` prints);
- lines (.debug_line): ``ln_addr``, ``ln_file``, ``ln_line``; a row with file -1 ends a sequence
  (addresses from there on have no line until the next row);
- inlined frames (.debug_info DW_TAG_inlined_subroutine): entries ``in_name``, ``in_file``,
  ``in_line`` (the call site: where it was inlined into its caller), ``in_parent`` (the
  entry it was inlined into, -1: the function itself); and the address space cut into
  segments ``seg_lo`` with ``seg_entry``, the innermost entry covering the segment (-1 none);
- static objects (DW_TAG_variable at a fixed address; .symtab STT_OBJECT where DWARF has none):
  ``ob_lo``, ``ob_hi``, ``ob_name``, ``ob_type`` (-1: no type known);
- their types: ``ty_kind`` (TY_*), ``ty_size``, ``ty_name``, ``ty_elem`` (array element type),
  ``ty_first`` and ``ty_count`` (the type's members, in ``mb_*``: name, offset, type; sorted
  by offset within a type).

Every name is an index into ``strings``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FORMAT = 3  # bump when the arrays change meaning: older cache files are then rebuilt

TY_OTHER, TY_STRUCT, TY_ARRAY = 0, 1, 2


@dataclass
class Tables:
    strings: np.ndarray  # object array of str
    fn_lo: np.ndarray
    fn_hi: np.ndarray
    fn_name: np.ndarray
    fn_sym: np.ndarray
    ln_addr: np.ndarray
    ln_file: np.ndarray
    ln_line: np.ndarray
    in_name: np.ndarray
    in_file: np.ndarray
    in_line: np.ndarray
    in_parent: np.ndarray
    seg_lo: np.ndarray
    seg_entry: np.ndarray
    ob_lo: np.ndarray
    ob_hi: np.ndarray
    ob_name: np.ndarray
    ob_type: np.ndarray
    ty_kind: np.ndarray
    ty_size: np.ndarray
    ty_name: np.ndarray
    ty_elem: np.ndarray
    ty_first: np.ndarray
    ty_count: np.ndarray
    mb_name: np.ndarray
    mb_off: np.ndarray
    mb_type: np.ndarray

    def save(self, path: Path) -> None:
        """Write the tables as one uncompressed .npz (atomically: a reader never sees half)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "strings"}
        blob = "\0".join(self.strings.tolist()).encode("utf-8", "surrogatepass")
        tmp = path.with_name(path.name + f".{np.random.randint(1 << 30)}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, format=np.array(FORMAT), strings=np.frombuffer(blob, np.uint8), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Tables | None":
        """The tables in a cache file, or None when it is from another format (or unreadable)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    return None
                blob = z["strings"].tobytes().decode("utf-8", "surrogatepass")
                arrays = {f.name: z[f.name] for f in fields(cls) if f.name != "strings"}
        except (OSError, ValueError, KeyError, EOFError):
            return None  # a damaged or foreign file is rebuilt, never trusted
        return cls(strings=np.array(blob.split("\0"), object), **arrays)


class Strings:
    """Interned strings while tables are built: name -> index into the final pool."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {"": 0}
        self.items: list[str] = [""]

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s.replace("\0", ""))
        return i

    def array(self) -> np.ndarray:
        return np.array(self.items, object)
