"""The symbolizer for a trace: which ELF names its addresses.

- An ELF given by the user must be the kernel that ran: a trace that records a build id
  (ours does) and an ELF with another one is refused (UsageError, exit 2).
- Otherwise our kernel's traces look for the ELF of their build id: the checkout's or the
  installed package's default kernel (resources.default_kernel()), then every kernel in the
  build cache (resources.kernel_cache()). None found: addresses stay addresses, with a warning
  saying why. A trace that records no build id (a test's, a synthetic one) has nothing to look
  for: addresses, silently.
- OSv's traces carry names themselves (the dump's SYMB chunk, the tracefile's .symbols; OSv's
  loader.elf has no build id to check): those are used, or loader.elf's DWARF when given, with
  the trace's own names for what it does not know (the app's frames).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from osvtrace import resources
from osvtrace.errors import UsageError
from osvtrace.symbols import cache
from osvtrace.symbols.elf import build_id
from osvtrace.symbols.symbolizer import ElfNames, NoSymbols, Symbolizer, TraceNames

NO_BUILD = ("", "synthetic")  # build ids that name no ELF (test traces)


def for_trace(trace: Any, elf: str | os.PathLike | None = None) -> Symbolizer:
    """The symbolizer for `trace` (an osvtrace.format.base.Trace): see the module doc."""
    want = getattr(trace.facts, "build_id", "") or ""
    if getattr(trace, "kernel", "osvtrace") == "osv":
        return _osv(trace, elf)
    if elf is not None:
        p = Path(elf)
        if not p.is_file():
            raise UsageError(f"{p}: no such kernel ELF")
        have = build_id(p)
        if want not in NO_BUILD and have != want:
            raise UsageError(f"{p}: kernel build {have[:12] or 'without a build id'}, but {trace.path} was recorded "
                             f"from build {want[:12]}: give the ELF of the kernel that ran")
        return ElfNames(cache.load(p))
    if want in NO_BUILD:
        return NoSymbols()  # nothing to look for, and nothing a user could do: no warning either
    found = find_kernel(want)
    if found is None:
        return NoSymbols(f"{trace.path}: no kernel ELF of build {want[:12]} here (not {resources.default_kernel()} "
                         f"nor the build cache): addresses are not named")
    return ElfNames(cache.load(found))


def find_kernel(build: str) -> Path | None:
    """Our kernel's ELF with this build id: the default kernel, else one in the build cache."""
    default = resources.default_kernel()
    cands = [default] + sorted(resources.kernel_cache().glob("*/kernel.elf"))
    for p in cands:
        if p.is_file() and build_id(p) == build:
            return p
    return None


def _osv(trace: Any, elf: str | os.PathLike | None) -> Symbolizer:
    own = TraceNames(trace, f"{trace.path}'s symbols")
    if elf is None:
        return own
    p = Path(elf)
    if not p.is_file():
        raise UsageError(f"{p}: no such ELF")
    return ElfNames(cache.load(p), fallback=own)
