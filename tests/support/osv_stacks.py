"""Small OSv tracefiles with backtraces and their FILE.symbols, written for the call-tree
tests: an app whose a() -> b() -> c() calls pthread_mutex_lock and waits, a holder that
holds the mutex meanwhile, and stacks as real backtraces look (the tracepoint's own frames
first, thread_main last)."""

from __future__ import annotations

from pathlib import Path

from osvtrace.format.osv_records import OsvTracepoint
from osvtrace.format.osv_synth import Rec, tracefile

TPS = {name: OsvTracepoint(0x4050_0000 + 0x40 * i, name, sig, fmt) for i, (name, sig, fmt) in enumerate([
    ("mutex_lock", "P", "%p"), ("mutex_lock_wait", "P", "%p"), ("mutex_lock_wake", "P", "%p"),
    ("mutex_unlock", "P", "%p"), ("sched_wait", "", ""), ("sched_wait_ret", "", ""), ("sampler_tick", "", "")])}

# function -> (return address inside it, source file); the symbols file names address - 1
FUNCS = {
    "tracepoint::operator()": (0x4020_0011, "include/osv/trace.hh"),
    "lockfree::mutex::lock()": (0x4035_0021, "core/lfmutex.cc"),
    "sched::thread::wait()": (0x4036_0031, "core/sched.cc"),
    "pthread_mutex_lock": (0x403D_0041, "libc/pthread.cc"),
    "c": (0x1000_0000_0051, "app.c"), "b": (0x1000_0000_0061, "app.c"), "a": (0x1000_0000_0071, "app.c"),
    "hold_here": (0x1000_0000_0081, "app.c"), "spin": (0x1000_0000_0091, "app.c"),
    "thread_main": (0x4040_00A1, "core/sched.cc"),
}
M = 0xFFFF_8000_0012_3400  # the mutex
WAITER, HOLDER = 0xA000, 0xB000


def bt(*funcs: str) -> list[int]:
    """A backtrace of these functions, innermost first, as return addresses."""
    return [FUNCS[f][0] for f in funcs]


WAITER_STACK = bt("tracepoint::operator()", "lockfree::mutex::lock()", "pthread_mutex_lock", "c", "b", "a",
                  "thread_main")
HOLDER_STACK = bt("tracepoint::operator()", "lockfree::mutex::lock()", "pthread_mutex_lock", "hold_here",
                  "thread_main")


def lock_story() -> list[Rec]:
    """The holder takes M at 50 and keeps it to 400; the waiter asks at 100, waits from 110,
    gets it at 410 (a 300 ns wait), drops it at 500."""
    def r(name: str, thread: int, t: int, args: tuple = (), stack: list[int] | None = None) -> Rec:
        return Rec(TPS[name].key, thread, "waiter" if thread == WAITER else "holder", t, 0 if thread == HOLDER else 1,
                   args, stack or [])

    return [r("mutex_lock", HOLDER, 50, (M,), HOLDER_STACK), r("mutex_lock", WAITER, 100, (M,), WAITER_STACK),
            r("mutex_lock_wait", WAITER, 110, (M,), WAITER_STACK),
            r("sched_wait", WAITER, 120, (), bt("tracepoint::operator()", "sched::thread::wait()",
                                                "lockfree::mutex::lock()", "pthread_mutex_lock", "c", "b", "a")),
            r("mutex_unlock", HOLDER, 400, (M,), HOLDER_STACK), r("sched_wait_ret", WAITER, 405),
            r("mutex_lock_wake", WAITER, 410, (M,), WAITER_STACK), r("mutex_unlock", WAITER, 500, (M,), WAITER_STACK)]


def write(path: Path, recs: list[Rec], symbols: bool = True) -> Path:
    """A gdb tracefile of recs (in time order) and, unless told not to, its FILE.symbols."""
    recs = sorted(recs, key=lambda r: r.time)
    path.write_bytes(tracefile(list(TPS.values()), recs))
    if symbols:
        lines = [f"{addr - 1:#x} {src} 10 {name}" for name, (addr, src) in FUNCS.items()]
        Path(str(path) + ".symbols").write_text("\n".join(lines) + "\n")
    return path
