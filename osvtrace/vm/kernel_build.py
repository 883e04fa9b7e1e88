"""`osvtrace build`: regenerate the tracepoint code, then make the kernel.

Two places, one recipe (kernel/Makefile):

- In a source checkout: the tracepoint header and docs are regenerated in the tree and the
  kernel is made into build/ (make decides what is out of date, so calling this before every
  boot costs a few milliseconds when nothing changed).
- Installed (a wheel or an sdist): the kernel sources shipped as package data are copied into
  a per-user cache directory, $XDG_CACHE_HOME/osvtrace/kernel/KEY (~/.cache when unset), the
  header is generated there and the kernel built there, once. KEY hashes the kernel sources,
  the tracepoint schema, the generated header, the compiler's identity (`g++ --version`) and
  the make command, so anything that changes the kernel picks a new directory and a finished
  one is never rebuilt. Concurrent builds of one KEY take turns on a file lock; the ELF
  appears by an atomic rename only when the build succeeded, so a crashed build is redone.
  kernel/kernel.elf in the cache links to the latest build (resources.default_kernel()).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from osvtrace import resources
from osvtrace.errors import OsvtraceError

CHECKOUT = resources.checkout()
# The checkout's build (None when installed: see cached_kernel()).
KERNEL_SRC = CHECKOUT / "kernel" if CHECKOUT else None
BUILD_DIR = CHECKOUT / "build" if CHECKOUT else None
KERNEL_ELF = BUILD_DIR / "kernel.elf" if BUILD_DIR else None
TOOLS = {"make": "make", "g++": "g++", "nm": "binutils"}  # command -> Debian package
CACHE_ENV = "XDG_CACHE_HOME"


class BuildError(OsvtraceError):
    """The kernel could not be built (tools missing, or the compiler failed)."""


def cache_root() -> Path:
    """Where installed builds go: one directory per KEY."""
    return resources.kernel_cache()


def check_tools() -> None:
    missing = sorted(cmd for cmd in TOOLS if shutil.which(cmd) is None)
    if missing:
        raise BuildError(f"cannot build the kernel: {', '.join(missing)} not found: install with "
                         f"apt-get install -y {' '.join(sorted({TOOLS[c] for c in missing}))}")


def _make_cmd(src: Path, out: Path, verbose: bool) -> list[str]:
    # -s: no "Nothing to be done" chatter when up to date (progress lines still show).
    return ["make", "--no-print-directory", "-C", str(src), f"O={out}", "V=1" if verbose else "-s"]


def _make(cmd: list[str], *, quiet: bool, out: TextIO | None) -> None:
    if quiet:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    else:
        if out is not None:
            out.flush()
        r = subprocess.run(cmd, stdout=out)
    if r.returncode != 0:
        if quiet and r.stdout:
            sys.stderr.write(r.stdout.decode("utf-8", "replace"))
        raise BuildError(f"kernel build failed (make exited with {r.returncode}; the compiler's messages are above)")


def build(*, verbose: bool = False, quiet: bool = False, out: TextIO | None = None) -> Path:
    """Build the kernel where it belongs (see the module's docstring); returns the ELF's path.

    `quiet` hides make's progress lines (errors still show); `verbose` shows the commands;
    `out` is where make's output goes (default: inherited stdout)."""
    if CHECKOUT is None:
        return cached_build(verbose=verbose, quiet=quiet, out=out)
    check_tools()
    from osvtrace.catalog import codegen

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # One build at a time in the checkout: two makes in one object directory (two test workers,
    # or a test beside `osvtrace run`) relink under each other ("ksyms: text moved between passes").
    with open(BUILD_DIR / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The generator only rewrites files whose text changed, so make sees no new mtimes
        # (and rebuilds nothing) when the schema did not change.
        if codegen.main([]) != 0:
            raise BuildError("tracepoint code generation failed")
        _make(_make_cmd(KERNEL_SRC, BUILD_DIR, verbose), quiet=quiet, out=out)
    if not KERNEL_ELF.is_file():
        raise BuildError(f"make succeeded but {KERNEL_ELF} is missing")
    return KERNEL_ELF


# ---------------------------------------------------------------- the per-user cache

def _compiler_identity() -> bytes:
    try:
        r = subprocess.run(["g++", "--version"], capture_output=True, timeout=30)
    except OSError as e:
        raise BuildError(f"cannot run g++ --version: {e}") from None
    return r.stdout


def build_key(src: Path, header: str) -> str:
    """The hash naming a cached build: sources, schema, generated header, compiler, make command."""
    h = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = path.relative_to(src).as_posix()
        if rel == "include/generated/tracepoints.hh":
            continue  # replaced by the header generated from the schema (hashed below)
        h.update(b"src\0" + rel.encode() + b"\0" + path.read_bytes() + b"\0")
    for path in sorted(resources.schema_dir().glob("*.toml")):
        h.update(b"schema\0" + path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(b"header\0" + header.encode() + b"\0")
    h.update(b"compiler\0" + _compiler_identity() + b"\0")
    h.update(b"make\0" + " ".join(_make_cmd(Path("SRC"), Path("OUT"), False)).encode())
    return h.hexdigest()[:20]


def _writable_dir(path: Path) -> None:
    """Create `path` (and parents) or say which directory is not writable and how to choose another."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A unique name: threads of one process probe at the same time (one pid, one name raced).
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as e:
        where = path
        while not where.exists() and where.parent != where:
            where = where.parent
        raise BuildError(f"cannot build the kernel into the cache: {where} is not writable "
                         f"({e.strerror or e}); set {CACHE_ENV} to a writable directory") from None


def _key() -> tuple[Path, str, str]:
    from osvtrace.catalog import codegen
    from osvtrace.catalog.schema import load

    src = resources.kernel_sources()
    header = codegen.header(load(resources.schema_dir()))
    return src, header, build_key(src, header)


def cached_kernel() -> Path:
    """The ELF a cached build of the installed sources has (or would have); builds nothing."""
    check_tools()  # the key names the compiler
    _src, _header, key = _key()
    return cache_root() / key / "kernel.elf"


def cached_build(*, verbose: bool = False, quiet: bool = False, out: TextIO | None = None) -> Path:
    """Build the installed kernel sources into the cache once; returns the ELF's path."""
    check_tools()
    src, header, key = _key()
    root = cache_root()
    _writable_dir(root)
    final = root / key
    elf = final / "kernel.elf"
    if not elf.is_file():
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process building the same key: wait for it
            if not elf.is_file():
                if not quiet:
                    print(f"osvtrace: building the kernel into {final} (once: later commands reuse it)",
                          file=sys.stderr, flush=True)
                _build_into(final, src, header, verbose=verbose, quiet=quiet, out=out)
    _link_latest(root, elf)
    return elf


def _build_into(final: Path, src: Path, header: str, *, verbose: bool, quiet: bool, out: TextIO | None) -> None:
    if final.exists():
        shutil.rmtree(final)  # left by a build that died: start over
    work_src = final / "src"
    # the sources are copied (the install may be read-only, and codegen writes the header there);
    # they stay next to the ELF, whose debug info names them (gdb's `list` finds them)
    shutil.copytree(src, work_src, ignore=shutil.ignore_patterns("__pycache__"))
    gen = work_src / "include" / "generated" / "tracepoints.hh"
    gen.parent.mkdir(parents=True, exist_ok=True)
    gen.write_text(header)
    obj = final / "obj"
    _make(_make_cmd(work_src, obj, verbose), quiet=quiet, out=out)
    built = obj / "kernel.elf"
    if not built.is_file():
        raise BuildError(f"make succeeded but {built} is missing")
    os.replace(built, final / "kernel.elf")  # the ELF appears only when it is complete
    shutil.rmtree(obj, ignore_errors=True)  # objects are not needed again: the key never rebuilds


def _link_latest(root: Path, elf: Path) -> None:
    link = root / "kernel.elf"  # resources.default_kernel() when installed
    tmp = root / f".kernel.elf.{os.getpid()}.{threading.get_ident()}"
    target = str(elf.relative_to(root))
    try:
        if link.is_symlink() and os.readlink(link) == target:
            return
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)  # the link is a convenience only
