"""What an ELF file holds for symbols, read with pyelftools: its identity (GNU build id), its
function symbols (.symtab) and its line table (.debug_line). The DWARF DIEs (inlined frames,
static objects, types) are osvtrace.symbols.dies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.symbols.tables import Strings


def open_elf(path: Path, f: BinaryIO):  # -> elftools.elf.elffile.ELFFile
    """The ELF in an open file, or one clear line saying it is not one."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        return ELFFile(f)
    except ELFError as e:
        raise UsageError(f"{path}: not an ELF file ({e})") from None


def build_id(path: str | os.PathLike) -> str:
    """The ELF's GNU build id in hex, '' when it has none (OSv's loader.elf) or is unreadable."""
    try:
        with open(path, "rb") as f:
            elf = open_elf(Path(path), f)
            for sec in elf.iter_sections():
                if sec.header["sh_type"] == "SHT_NOTE":
                    for note in sec.iter_notes():
                        # NOTE: a note's type means something only with its owner: OSv's Xen note
                        # of type 3 (XEN_ELFNOTE_VIRT_BASE) reads as NT_GNU_BUILD_ID otherwise
                        if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU" \
                                and isinstance(note["n_desc"], str):
                            return note["n_desc"]
    except (OSError, UsageError):
        return ""
    return ""


def demangle(name: str) -> str:
    """A C++ symbol as people read it (`lockfree::mutex<kmutex::platform>::lock()`); other names
    as they are."""
    if not name.startswith("_Z"):
        return name
    import cxxfilt

    try:
        return cxxfilt.demangle(name)
    except cxxfilt.Error:  # not every _Z... is a valid mangling
        return name


def functions(elf, strings: Strings) -> dict[str, np.ndarray]:
    """Code symbols of .symtab (or .dynsym) sorted by address: fn_lo, fn_hi, fn_name, fn_sym.
    STT_FUNC, and untyped labels in executable sections (assembly entry points such as
    interrupt stubs: what nm lists as T/t too). A symbol of size 0 reaches the next symbol; of
    several at one address a function wins over a label and a global over a local (nm lists
    them all; a frame gets one name)."""
    exec_secs = {i for i, sec in enumerate(elf.iter_sections()) if sec.header["sh_flags"] & 0x4}  # SHF_EXECINSTR
    rows = []
    for secname in (".symtab", ".dynsym"):
        sec = elf.get_section_by_name(secname)
        if sec is None:
            continue
        for s in sec.iter_symbols():
            kind = s["st_info"]["type"]
            shndx = s["st_shndx"]
            code = kind in ("STT_FUNC", "STT_GNU_IFUNC") or (kind == "STT_NOTYPE" and shndx in exec_secs)
            if code and s["st_value"] and s.name and shndx != "SHN_UNDEF":
                rank = (kind == "STT_NOTYPE") * 3 + {"STB_GLOBAL": 0, "STB_WEAK": 1}.get(s["st_info"]["bind"], 2)
                rows.append((s["st_value"], rank, s["st_size"], s.name))
        if rows:
            break
    rows.sort()
    lo, size, name, sym = [], [], [], []
    for addr, _, sz, n in rows:
        if lo and lo[-1] == addr:
            continue  # an alias of the symbol just taken
        lo.append(addr)
        size.append(sz)
        name.append(strings(demangle(n)))
        sym.append(strings(n))
    a = np.array(lo, np.uint64)
    sz = np.array(size, np.uint64)
    nxt = np.append(a[1:], a[-1:] + np.uint64(1)) if len(a) else a
    return {"fn_lo": a, "fn_hi": np.where(sz > 0, a + sz, nxt),
            "fn_name": np.array(name, np.int32), "fn_sym": np.array(sym, np.int32)}


def _file_names(lp, cu, version: int) -> list[str]:
    """A line program's file table as paths the way addr2line prints them (the directory
    joined to the compilation directory when relative; not normalised)."""
    top = cu.get_top_DIE()
    comp = top.attributes.get("DW_AT_comp_dir")
    comp_dir = comp.value.decode("utf-8", "replace") if comp else ""
    dirs = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in lp["include_directory"]]
    out = []
    for fe in lp["file_entry"]:
        name = fe.name.decode("utf-8", "replace") if isinstance(fe.name, bytes) else str(fe.name)
        di = fe.dir_index if version >= 5 else fe.dir_index - 1
        d = dirs[di] if 0 <= di < len(dirs) else ("" if version >= 5 or fe.dir_index else comp_dir)
        if d and not os.path.isabs(d) and comp_dir:
            d = os.path.join(comp_dir, d)
        out.append(name if os.path.isabs(name) else os.path.join(d, name) if d else name)
    return out


def lines(dwarf, strings: Strings) -> tuple[dict[str, np.ndarray], dict[int, list[int]]]:
    """The line table of every compilation unit as ln_addr, ln_file, ln_line sorted by address,
    and each unit's file table (CU offset -> string indices) for the DIEs' DW_AT_call_file.
    A sequence's end is a row with file -1 (sorted before a row starting at the same address,
    so the start wins)."""
    addr: list[int] = []
    file: list[int] = []
    line: list[int] = []
    files_of: dict[int, list[int]] = {}
    for cu in dwarf.iter_CUs():
        lp = dwarf.line_program_for_CU(cu)
        if lp is None:
            continue
        version = lp.header["version"]
        names = [strings(n) for n in _file_names(lp, cu, version)]
        files_of[cu.cu_offset] = names if version >= 5 else [0] + names  # DW_AT_call_file's numbering
        base = 0 if version >= 5 else 1
        for ent in lp.get_entries():
            st = ent.state
            if st is None:
                continue
            addr.append(st.address)
            if st.end_sequence:
                file.append(-1)
                line.append(0)
            else:
                k = st.file - base
                file.append(names[k] if 0 <= k < len(names) else 0)
                line.append(st.line)
    a = np.array(addr, np.uint64)
    f = np.array(file, np.int32)
    order = np.lexsort((f >= 0, a))  # by address; an end before a start at the same address
    return {"ln_addr": a[order], "ln_file": f[order], "ln_line": np.array(line, np.int32)[order]}, files_of
