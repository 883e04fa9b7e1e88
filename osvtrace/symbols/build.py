"""Build an ELF's tables (osvtrace.symbols.tables) from its symbol table and DWARF, once; the
cache (osvtrace.symbols.cache) keeps them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from osvtrace.symbols import elf as E
from osvtrace.symbols.dies import Dies
from osvtrace.symbols.tables import Strings, Tables

# How long the last build of each part took (seconds), for the benchmark.
TIMINGS: dict[str, float] = {}


def build_tables(path: Path) -> Tables:
    """Parse `path` (pyelftools). An ELF without DWARF still gets its functions and objects."""
    strings = Strings()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        elf = E.open_elf(path, f)
        cols = E.functions(elf, strings)
        sym_objects = _symtab_objects(elf, strings)
        t1 = time.perf_counter()
        TIMINGS["symtab"] = t1 - t0
        if elf.has_dwarf_info():
            dwarf = elf.get_dwarf_info()
            lines, files_of = E.lines(dwarf, strings)
            t2 = time.perf_counter()
            dies = Dies(dwarf, strings, files_of)
            dies.walk()
            cols.update(lines)
            cols.update(dies.arrays())
            TIMINGS["lines"], TIMINGS["dies"] = t2 - t1, time.perf_counter() - t2
        else:
            cols.update(Dies(None, strings, {}).arrays(), ln_addr=np.empty(0, np.uint64),
                        ln_file=np.empty(0, np.int32), ln_line=np.empty(0, np.int32))
    _add_symtab_objects(cols, sym_objects)
    return Tables(strings=strings.array(), **cols)


def _symtab_objects(elf, strings: Strings) -> list[tuple[int, int, int]]:
    """STT_OBJECT symbols (address, size, name): objects DWARF does not describe still get a name."""
    sec = elf.get_section_by_name(".symtab")
    if sec is None:
        return []
    return [(s["st_value"], max(s["st_size"], 1), strings(E.demangle(s.name)))
            for s in sec.iter_symbols()
            if s["st_info"]["type"] == "STT_OBJECT" and s["st_value"] and s.name and s["st_shndx"] != "SHN_UNDEF"]


def _add_symtab_objects(cols: dict[str, np.ndarray], objs: list[tuple[int, int, int]]) -> None:
    """Objects of the symbol table whose address no DWARF variable starts at, merged in (no type)."""
    if objs:
        a = np.array(objs, np.int64)
        sym_lo = a[:, 0].astype(np.uint64)
        keep = ~np.isin(sym_lo, cols["ob_lo"])
        lo = np.concatenate([cols["ob_lo"], sym_lo[keep]])
        order = np.argsort(lo, kind="stable")
        cols["ob_lo"] = lo[order]
        cols["ob_hi"] = np.concatenate([cols["ob_hi"], sym_lo[keep] + a[keep, 1].astype(np.uint64)])[order]
        cols["ob_name"] = np.concatenate([cols["ob_name"], a[keep, 2].astype(np.int32)])[order]
        cols["ob_type"] = np.concatenate([cols["ob_type"], np.full(int(keep.sum()), -1, np.int32)])[order]
