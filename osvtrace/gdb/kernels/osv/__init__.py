"""Real OSv (cloudius-systems/osv) under gdb: the osv commands on OSv's own structures.

Chosen when the ELF defines osvtrace.kernels.osv's marker symbol (`osv_version`; osvtrace's
kernel has no such symbol). Every layout comes from loader.elf's DWARF through gdb's types
(debuginfo.Layout): sched::thread, sched::thread::detached_state, sched::cpu and its
runqueue (a boost::intrusive rbtree), lockfree::mutex and its queue_mpsc of wait_record,
trace_buf and trace_record, elf::object. Nothing here is an offset written by hand.

OSv keeps no "what am I waiting for" field, so what a thread waits for is read from its
stack: the thread's saved rsp/rbp/rip (thread_state, written by switch_to) are loaded into
a vCPU (as `osv thread` does) and gdb unwinds it; the `this` of a lockfree::mutex::lock
frame, or the argument of pthread_mutex_lock, names the mutex. The application is a
shared object loaded at run time: `osv syms` (and every command that shows stacks, once
per object) adds its symbols at its load base, so its frames have names.

Robust at any stop: every walk is bounded and cycle-checked; a thread being created or
destroyed, a mutex mid-hand-off or a trace record mid-write (its tracepoint word is -1,
"end of this CPU's data") gives a note and the rest is printed.

  threadview  osv info threads, osv thread ID | apply | restore
  sched       osv runqueue, osv percpu
  mutex       osv mutex; what a thread waits for, from its frames
  trace       osv trace [N], osv trace status, osv trace snapshot DIR (the per-CPU trace buffers)
  memory      osv memory
  stacks      a thread's frames (saved context loaded into a vCPU, gdb unwinds)
  syms        the app's symbols at its load base (osv syms)
  threads     every thread at one stop (sched::thread_map), and its vCPU
  cpus        sched::cpus
  reading     fields by layout, strings, vectors, memsave, symbol names
"""

from __future__ import annotations

import os
import time
from typing import Callable

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands
from osvtrace.gdb.commands import OsvError
from osvtrace.gdb.kernels.osv.memory import memory_cmd
from osvtrace.gdb.kernels.osv.mutex import mutex_cmd
from osvtrace.gdb.kernels.osv.sched import percpu_cmd, runqueue_cmd
from osvtrace.gdb.kernels.osv.syms import syms_cmd
from osvtrace.gdb.kernels.osv.threadview import (current_function, info_threads, thread_apply, thread_cmd,
                                                 thread_function, thread_restore)
from osvtrace.gdb.kernels.osv.trace import trace_cmd, trace_snapshot, trace_status
from osvtrace.kernels import osv as osv_kernel

NAME = "OSv"


def detect() -> bool:
    """The loaded ELF is OSv's: it defines the symbol osvtrace.kernels.osv names as OSv's own."""
    try:
        return gdb.lookup_global_symbol(osv_kernel.KERNEL.elf_marker) is not None
    except gdb.error:
        return False


def timed(f: Callable[[str, bool], None]) -> Callable[[str, bool], None]:
    """With $OSVTRACE_GDB_TIMES set, each command prints how long it took."""
    def run(arg: str, from_tty: bool) -> None:
        t0 = time.perf_counter()
        try:
            f(arg, from_tty)
        finally:
            if os.environ.get("OSVTRACE_GDB_TIMES"):
                gdb.write(f"osv: took {time.perf_counter() - t0:.3f}s\n")
    return run


COMMANDS = {
    "osv info threads": info_threads,
    "osv thread": thread_cmd,
    "osv thread apply": thread_apply,
    "osv thread restore": thread_restore,
    "osv runqueue": runqueue_cmd,
    "osv percpu": percpu_cmd,
    "osv mutex": mutex_cmd,
    "osv memory": memory_cmd,
    "osv trace": trace_cmd,
    "osv trace status": trace_status,
    "osv trace snapshot": trace_snapshot,
    "osv syms": syms_cmd,
}


KERNEL = commands.Kernel(NAME, detect, {k: timed(v) for k, v in COMMANDS.items()},
                         {"osv_thread": thread_function, "osv_current": current_function})


class Syms(commands.OsvCommand):
    """Load the symbols of the objects OSv has loaded (the application) at their bases.

    OSv only: reads elf::program::s_objs, finds each object's host file (the build's
    usr.manifest, then the build and modules directories) and runs add-symbol-file with
    the object's load base. Commands that show stacks do it by themselves.
    Usage: osv syms
    """

    def __init__(self) -> None:
        super().__init__("osv syms", gdb.COMMAND_FILES)

    def run(self, arg: str, from_tty: bool) -> None:
        raise OsvError("osv syms is for OSv (loader.elf); osvtrace's kernel links its apps in")


class TraceSnapshot(commands.OsvCommand):
    """Save every CPU's whole trace buffer into DIR, one memory read each (OSv only).

    Writes DIR/cpuN.ring (trace_buf::_size bytes, by QEMU's memsave) and DIR/snapshot.json
    (each buffer's _size and _last, the tracepoint dictionary); `osvtrace record --kernel osv`
    turns them into an OSVT dump that osvtrace and OSv's trace.py open.
    Usage: osv trace snapshot DIR
    """

    def __init__(self) -> None:
        super().__init__("osv trace snapshot", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        raise OsvError("osv trace snapshot is for OSv (loader.elf); osvtrace's kernel: osvtrace record --via gdb")


def register() -> None:
    commands.add_kernel(KERNEL)
    Syms()
    TraceSnapshot()
