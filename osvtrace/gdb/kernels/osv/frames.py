"""The frames of an OSv thread's stack and where they say the thread is: gdb-free, so the
rules are tested without a VM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


MACHINERY = ("sched::", "lockfree::mutex::", "waiter::", "wait_record::", "condvar::", "mutex_lock", "mutex_unlock",
             "switch_to", "std::", "__gnu_cxx::", "osv::clock::", "waitqueue::", "thread_main_c", "hpet_", "processor::", "pthread_mutex_",
             "pthread_cond_", "lockfree::", "from_libc",
             "tracepoint")  # a waiter caught recording its own tracepoint is still where it called the lock
BLOCKING = ("lockfree::mutex::lock", "lockfree::mutex::send_lock", "pthread_mutex_lock", "pthread_mutex_timedlock",
            "pthread_cond_wait", "pthread_cond_timedwait", "condvar::wait", "condvar_wait", "sched::thread::join",
            "mutex_lock")
OUTERMOST = ("thread_main", "thread_main_c", "??")  # where every thread starts: says nothing


@dataclass
class Frame:
    pc: int
    function: str
    where: str  # file:line, or the object's name
    mutex: int = 0  # a lockfree::mutex this frame is locking
    pmutex: int = 0  # the pthread_mutex_t it came from
    condvar: int = 0
    join: int = 0
    site: Any = None  # how the frame is shown (osvtrace.gdb.stacktext.Site), when gdb unwound it


def location(frames: list[Frame]) -> str:
    """The innermost frame that is not scheduler or lock machinery (as loader.py's location);
    if all are, the outermost that is not the thread's entry."""
    if not frames:
        return "?"
    # A thread inside a lock or wait is where it called it, whatever runs above that call
    # on its CPU right now (an interrupt, its own tracepoint, the allocator): look outward
    # from the outermost blocking frame.
    blocking = [i for i, fr in enumerate(frames)
                if fr.mutex or fr.pmutex or fr.condvar or fr.join or fr.function.startswith(BLOCKING)]
    start = blocking[-1] + 1 if blocking else 0
    for fr in frames[start:]:
        if not fr.function.startswith(MACHINERY) and fr.function not in OUTERMOST:
            return f"{fr.function} {fr.where}".strip()
    inner = [fr for fr in frames if fr.function not in OUTERMOST] or frames
    return f"{inner[-1].function} {inner[-1].where}".strip()
