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
    backtrace_depth: int = 0  # the most frames a record's backtrace holds (0: unknown); deeper stacks are cut
    # How its records become the model's tracepoints (rules below); a model tracepoint not named
    # here is read as the trace's own tracepoint of that name (our kernel: all of them).
    model: Mapping[str, "From | Pairs"] = field(default_factory=dict)

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


# ---------------------------------------------------------------- onto the model
# The model reads osvtrace's own tracepoints (tracepoints/*.toml: sched_switch(next, prev_state),
# mutex_lock(mutex), ...). A kernel whose tracepoints differ says, per model tracepoint, which of
# its records make its events and how each argument is computed, with these rules (the model's
# osvtrace.model.kernel_map applies them, columnar):
#   ("arg", A)              the record's argument A
#   ("thread", A)           argument A is a thread pointer: its thread id
#   ("const", V)            V for every event (the kernel does not record it)
#   ("per_source", {S: V})  V by the source tracepoint S the record came from
#   ("cpu",)                the record's CPU
#   ("left_as", RUNNABLE_TPS, WAITING_TPS)
#                           the state a switching-out thread leaves in: runnable when its last
#                           record among RUNNABLE_TPS/WAITING_TPS was one of RUNNABLE_TPS, else waiting
#   ("last_cpu", A)         the CPU the thread (pointer argument A) last switched in on (else the record's)
#   ("waits_on", TPS, A, RET_TP)
#                           argument A of the thread's last record among TPS, if it came after the
#                           thread's last RET_TP (what it is about to block on), else 0
#   ("ethernet", PROTO, DATA, LEN, ETHERTYPES, ETHER)
#                           a frame from a captured packet: DATA as it is when PROTO is ETHER,
#                           else behind a 14-byte Ethernet header of ETHERTYPES[PROTO] (zero MACs)
#   ("ethernet_len", PROTO, LEN, ETHER)   that frame's length
# Pairs make one event from two records: each record of `then` with the last record of `first`
# before it that has the same `key` argument, by another thread (a thread's own earlier record
# says nothing about who handed it something: such pairs are left out); the event sits at the
# `first` record, and its rules may also say ("first_tid",) and ("then_tid",).

Rule = tuple


@dataclass(frozen=True)
class From:
    """A model tracepoint made from records of the kernel's own tracepoints `sources`."""

    sources: tuple[str, ...]
    args: Mapping[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class Pairs:
    """A model tracepoint made from pairs of records (see the rules above)."""

    first: tuple[str, ...]
    then: tuple[str, ...]
    key: str
    args: Mapping[str, Rule] = field(default_factory=dict)
