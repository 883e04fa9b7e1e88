"""`osvtrace build`: regenerate the tracepoint code, then make the kernel into build/.

make decides what is out of date, so calling this before every boot costs a
few milliseconds when nothing changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from osvtrace.errors import OsvtraceError

ROOT = Path(__file__).resolve().parent.parent
KERNEL_SRC = ROOT / "kernel"
BUILD_DIR = ROOT / "build"
KERNEL_ELF = BUILD_DIR / "kernel.elf"
TOOLS = {"make": "make", "g++": "g++"}  # command -> Debian package


class BuildError(OsvtraceError):
    """The kernel could not be built (tools missing, or the compiler failed)."""


def check_tools() -> None:
    missing = sorted({pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None})
    if missing:
        raise BuildError(f"cannot build the kernel: {', '.join(missing)} not found: install with "
                         f"apt-get install {' '.join(missing)}")


def build(*, verbose: bool = False, quiet: bool = False, out: TextIO | None = None) -> Path:
    """Regenerate from tracepoints/ and build build/kernel.elf; returns its path.

    `quiet` hides make's progress lines (errors still show); `verbose` shows the commands;
    `out` is where make's output goes (default: inherited stdout)."""
    if not (KERNEL_SRC / "Makefile").is_file():
        raise BuildError(f"no kernel sources at {KERNEL_SRC} (osvtrace build works in a source checkout)")
    check_tools()
    from osvtrace import codegen

    # The generator only rewrites files whose text changed, so make sees no new mtimes
    # (and rebuilds nothing) when the schema did not change.
    if codegen.main([]) != 0:
        raise BuildError("tracepoint code generation failed")
    cmd = ["make", "--no-print-directory", "-C", str(KERNEL_SRC), f"O={BUILD_DIR}"]
    # -s: no "Nothing to be done" chatter when up to date (progress lines still show).
    cmd.append("V=1" if verbose else "-s")
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
    if not KERNEL_ELF.is_file():
        raise BuildError(f"make succeeded but {KERNEL_ELF} is missing")
    return KERNEL_ELF
