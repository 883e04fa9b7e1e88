"""Where an OSv thread is, from its frames (osvtrace.gdb.kernels.osv.frames): the rules
the live `osv info threads` applies, on stacks taken from real stops."""

import importlib.util
import sys
from pathlib import Path

# The package around it imports gdb's own module; this file does not, so it is loaded alone.
_spec = importlib.util.spec_from_file_location(
    "osv_frames", Path(__file__).parents[2] / "osvtrace/gdb/kernels/osv/frames.py")
assert _spec and _spec.loader
frames_mod = importlib.util.module_from_spec(_spec)
sys.modules["osv_frames"] = frames_mod  # dataclasses look their module up there
_spec.loader.exec_module(frames_mod)
Frame, location = frames_mod.Frame, frames_mod.location


def lock_wait(*inner: Frame) -> list[Frame]:
    """A contender in pthread_mutex_lock, with `inner` frames running above the lock."""
    return [*inner,
            Frame(0x40100, "sched::thread::wait", "core/sched.cc:1200"),
            Frame(0x40200, "lockfree::mutex::lock", "core/lfmutex.cc:90", mutex=0x9000),
            Frame(0x40300, "pthread_mutex_lock", "libc/pthread.cc:300", pmutex=0x9100),
            Frame(0x1000040, "contender", "mutexnet.c:58"),
            Frame(0x40400, "thread_main_c", "arch/x64/arch-switch.hh:300")]


def test_a_lock_waiter_is_where_it_called_the_lock():
    assert location(lock_wait()) == "contender mutexnet.c:58"


def test_a_lock_waiter_interrupted_on_its_cpu_is_still_where_it_called_the_lock():
    frames = lock_wait(Frame(0x50000, "interrupt", "arch/x64/exceptions.cc:250"),
                       Frame(0x50100, "memory::pool::alloc", "core/mempool.cc:210"),
                       Frame(0x50200, "tracepoint_base::allocate_trace_record", "core/trace.cc:500"))
    assert location(frames) == "contender mutexnet.c:58"


def test_a_running_thread_is_its_innermost_frame_that_is_not_machinery():
    frames = [Frame(0x50000, "sched::cpu::schedule", "core/sched.cc:300"),
              Frame(0x1000080, "worker_loop", "app.c:12"),
              Frame(0x40400, "thread_main_c", "")]
    assert location(frames) == "worker_loop app.c:12"


def test_a_thread_all_in_machinery_is_its_outermost_frame_but_the_entry():
    frames = [Frame(0x50000, "sched::cpu::idle", "core/sched.cc:300"),
              Frame(0x50100, "sched::cpu::idle_loop", "core/sched.cc:400"),
              Frame(0x40400, "thread_main_c", "")]
    assert location(frames) == "sched::cpu::idle_loop core/sched.cc:400"


def test_no_frames_is_unknown():
    assert location([]) == "?"
