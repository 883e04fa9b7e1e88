"""The facts one kernel module declares (see osvtrace/kernels/__init__.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from osvtrace.errors import UsageError


@dataclass(frozen=True)
class Kernel:
    name: str  # what --kernel takes
    title: str
    elf_marker: str  # a symbol only this kernel's ELF defines: how an ELF is recognised
    trace_buffers: str  # the symbol the trace buffers are reached from
    boot: str  # "elf": QEMU loads the ELF itself (PVH note) | "image": a disk image with its own loader
    # Breakpoints where a run has ended on purpose (symbol -> why), for snapshots taken at the end;
    # the optional ones may be missing from an older build.
    exit_breakpoints: Mapping[str, str] = field(default_factory=dict)
    optional_breakpoints: frozenset[str] = frozenset()
    # How the kernel's command line enables tracepoints: one word holding the comma-joined globs
    # ("trace={}") or one word per glob ("--trace={}").
    trace_option: str = ""
    trace_option_per_glob: bool = False
    backtrace_option: str = ""  # the word that turns on per-record backtraces, if the kernel has one

    def trace_words(self, globs: list[str], backtrace: bool = False) -> list[str]:
        """Command-line words that enable these tracepoint globs (and backtraces)."""
        globs = [g for g in globs if g]
        if not globs:
            words = []
        elif self.trace_option_per_glob:
            words = [self.trace_option.format(g) for g in globs]
        else:
            words = [self.trace_option.format(",".join(globs))]
        if backtrace:
            if not self.backtrace_option:
                raise UsageError(f"the {self.title} records no backtraces")
            words.append(self.backtrace_option)
        return words
