"""OSv application frames, named from the application's own ELF (OSv issue 1221: trees show
bare hex for app code).

An OSv dump lists the objects loaded when it was taken (its MODS chunk: guest path, load base,
size, section table). An object's ELF is looked for by its guest path:

1. in the directories of $OSVTRACE_OSV_APPS (colon-separated), as DIR/GUEST_PATH or DIR/NAME;
2. beside the trace file, as NAME;
3. through the manifests of OSv's build ($OSV_BUILD_DIR, else ~/.cache/osv-build:
   build/release/usr.manifest maps each guest path to the file the image was built from).
(gdb finds them the same way for `osv syms`: osvtrace/gdb/kernels/osv/syms.py.)

A candidate is used only if its sections are where the dump says the loaded object's were
(same addresses and sizes), so a rebuilt app is never used to name an older trace's frames.
Its names are looked up at address - base (ElfSymbols' bias) with its symbol table (static
functions too: the dump's SYMB chunk has only what the dynamic symbol table exports) and
DWARF line table.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from osvtrace import resources
from osvtrace.errors import OsvtraceError
from osvtrace.symbols import cache
from osvtrace.symbols.resolve import ElfSymbols

ENV = "OSVTRACE_OSV_APPS"


def _manifest(tree: Path) -> dict[str, Path]:
    """Guest path -> host file, from an OSv build's usr.manifest and bootfs.manifest (plain
    entries; a relative host path is the build directory's), as the gdb side reads them
    (osvtrace/gdb/kernels/osv/syms.py)."""
    out: dict[str, Path] = {}
    build = tree / "build" / "release"
    for name in ("usr.manifest", "bootfs.manifest"):
        try:
            lines = (build / name).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            guest, sep, host = line.partition(":")
            guest, host = guest.strip(), host.strip()
            if sep and guest.startswith("/") and host and not host.startswith("->") and "*" not in guest:
                out.setdefault(guest, Path(host) if os.path.isabs(host) else build / host)
    return out


def candidates(guest: str, trace_path: Path | None, manifest: dict[str, Path] | None = None) -> list[Path]:
    """Where the ELF of the object loaded from `guest` may be, in the order they are tried
    (`manifest`: the OSv build's, when already read)."""
    name = Path(guest).name
    out = []
    for d in filter(None, os.environ.get(ENV, "").split(":")):
        out += [Path(d) / guest.lstrip("/"), Path(d) / name]
    if trace_path is not None:
        out.append(Path(trace_path).parent / name)
    hit = (_manifest(resources.osv_build_tree()) if manifest is None else manifest).get(guest)
    if hit is not None:
        out.append(hit)
    return out


def matches(elf: Path, sections: list[tuple[str, int, int]]) -> bool:
    """Whether the ELF's sections are those the dump lists (name, address, size; the
    dump's sections that have an address, all of them found)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    want = {(n, a, s) for n, a, s in sections if a}
    if not want:
        return False
    try:
        with open(elf, "rb") as f:
            have = {(sec.name, sec.header["sh_addr"], sec.header["sh_size"]) for sec in ELFFile(f).iter_sections()}
    except (OSError, ELFError):
        return False
    return want <= have


class AppNames:
    """The loaded objects of one dump whose ELF was found, each at its load base."""

    def __init__(self, objects: list[tuple[int, int, ElfSymbols]]):
        self.objects = objects  # (base, end, symbols biased to base)

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(function + offset as the dump's own names are written, file:line) of return
        addresses (looked up at addr - 1); '' where no found object holds one."""
        a = np.asarray(addrs, np.uint64)
        fn = np.full(len(a), "", object)
        src = np.full(len(a), "", object)
        for base, end, sym in self.objects:
            inside = np.flatnonzero((a > np.uint64(base)) & (a <= np.uint64(end)))
            if not len(inside):
                continue
            at = a[inside] - np.uint64(1)
            k = sym.function_index(at)
            names = sym.functions(at)
            files, lines = sym.lines(at)
            for j, i in enumerate(inside.tolist()):
                if k[j] < 0 or not names[j]:
                    continue
                off = int(at[j]) - (int(sym.t.fn_lo[k[j]]) + base)
                fn[i] = f"{names[j]}+{off:#x}"
                src[i] = f"{files[j]}:{lines[j]}" if files[j] else ""
        return fn, src


_found: "weakref.WeakKeyDictionary[Any, AppNames | None]" = weakref.WeakKeyDictionary()


def app_names(trace: Any) -> AppNames | None:
    """The app objects of an OSv dump whose ELFs are here (None: no module list, or none found)."""
    if trace in _found:
        return _found[trace]
    objects = []
    mods = [m for m in getattr(trace, "modules", None) or [] if m.path and m.sections]  # not the kernel itself
    manifest = _manifest(resources.osv_build_tree()) if mods else {}
    for m in mods:
        for p in candidates(m.path, getattr(trace, "path", None), manifest):
            if p.is_file() and matches(p, m.sections):
                try:
                    t = cache.load(p)
                except OsvtraceError:
                    continue
                objects.append((m.base, m.base + m.size, ElfSymbols(t.t, str(p), t.build_id, bias=m.base)))
                break
    _found[trace] = AppNames(objects) if objects else None
    return _found[trace]
