"""The application's symbols: OSv loads it (a PIE or shared object) at run time, so
loader.elf knows nothing of it. Each object in `elf::program::s_objs` is added with
add-symbol-file at its load base, once per object and base."""

from __future__ import annotations

import os

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, guestmem
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.debuginfo import layout_of
from osvtrace.gdb.kernels.osv.reading import read_fields, read_vector


_loaded: set[tuple[str, int]] = set()


def app_objects() -> list[tuple[str, int]]:
    """(path in the guest, load base) of every ELF object OSv has loaded (elf::program::s_objs)."""
    sym = debuginfo.symbol("elf::program::s_objs")
    ol = layout_of("elf::object")
    out = []
    for p in read_vector(int(sym.value().address), sym.type, 4096):
        try:
            f = read_fields(p, ol, ["_base", "_pathname._M_dataplus._M_p", "_pathname._M_string_length"])
            n = min(f["_pathname._M_string_length"], 4096)
            path = guestmem.read_small(f["_pathname._M_dataplus._M_p"], n).decode("utf-8", "replace") if n else ""
        except OsvError:
            continue
        out.append((path, f["_base"]))
    return out


def osv_tree() -> str:
    """The OSv source tree: loader.elf is TREE/build/MODE[.ARCH]/loader.elf."""
    prog = gdb.current_progspace().filename or ""
    d = os.path.dirname(os.path.realpath(prog))
    return os.path.dirname(os.path.dirname(d))


_host_paths: dict[tuple[str, str], str] = {}


def host_path(guest_path: str) -> str:
    """The host file a guest path came from (remembered, also when not found)."""
    key = (gdb.current_progspace().filename or "", guest_path)
    if key not in _host_paths:
        _host_paths[key] = _find_host_path(guest_path)
    return _host_paths[key]


def _find_host_path(guest_path: str) -> str:
    """The build's usr.manifest, then a search of the build and modules directories by name."""
    tree = osv_tree()
    build = os.path.dirname(os.path.realpath(gdb.current_progspace().filename or ""))
    for manifest in ("usr.manifest", "bootfs.manifest"):
        try:
            with open(os.path.join(build, manifest)) as fh:
                for line in fh:
                    g, sep, h = line.partition(":")
                    if sep and g.strip() == guest_path:
                        h = h.strip()
                        h = h if os.path.isabs(h) else os.path.join(build, h)
                        if os.path.isfile(h):
                            return h
        except OSError:
            pass
    name = os.path.basename(guest_path)
    for top in (build, os.path.join(tree, "modules"), os.path.join(tree, "apps")):
        for root, _dirs, files in os.walk(top):
            if name in files and os.path.isfile(os.path.join(root, name)):
                return os.path.join(root, name)
    return ""


def load_app_symbols(quiet: bool = False) -> list[str]:
    """add-symbol-file each loaded object (not the kernel) at its base, once per (path, base)."""
    lines = []
    try:
        objs = app_objects()
    except OsvError as e:
        lines = [f"cannot read elf::program::s_objs (OSv not booted yet?): {e}"]
        if not quiet:
            gdb.write(f"osv: {lines[0]}\n")
        return lines
    kernel = os.path.realpath(gdb.current_progspace().filename or "")
    have = {os.path.realpath(o.filename) for o in gdb.objfiles() if o.filename}
    for guest, base in objs:
        if not base or not guest:
            continue
        path = host_path(guest)
        if not path:
            lines.append(f"{guest} at {base:#x}: no host file found")
            continue
        if os.path.realpath(path) == kernel or (path, base) in _loaded:
            continue
        if os.path.realpath(path) in have:
            _loaded.add((path, base))
            continue
        confirm = gdb.parameter("confirm")
        try:
            gdb.execute("set confirm off", to_string=True)  # add-symbol-file asks otherwise
            gdb.execute(f"add-symbol-file {path} -o {base:#x}", to_string=True)
            _loaded.add((path, base))
            lines.append(f"{guest}: symbols from {path} at {base:#x}")
        except gdb.error as e:
            lines.append(f"{guest}: {commands.one_line(str(e))}")
        finally:
            if confirm:
                gdb.execute("set confirm on", to_string=True)
    if not quiet:
        for ln in lines or ["no application objects to add"]:
            gdb.write(f"osv: {ln}\n")
    return lines


def syms_cmd(arg: str, from_tty: bool) -> None:
    load_app_symbols(quiet=False)
