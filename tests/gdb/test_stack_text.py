"""Stacks as the osv commands print them (osvtrace/gdb/stacktext.py): a frame per line as gdb's
`bt` prints one, with the raw address kept, and a last line whenever a stack ends early; the
rules on hand-built stacks, without a VM (the VM tests: test_gdb_stacks.py, test_osv_gdb.py)."""

import importlib.util
import sys
from pathlib import Path

from osvtrace.catalog import layout

# The package around it imports gdb's own module; this file does not, so it is loaded alone.
_spec = importlib.util.spec_from_file_location("stacktext", Path(__file__).parents[2] / "osvtrace/gdb/stacktext.py")
assert _spec and _spec.loader
st = importlib.util.module_from_spec(_spec)
sys.modules["stacktext"] = st  # dataclasses look their module up there
_spec.loader.exec_module(st)

CHAIN = [st.Site(0x1184b5, "stacks_chain_c", 0x15, "apps/stacks.cc:48"),
         st.Site(0x1184dc, "stacks_chain_b", 0xc, "apps/stacks.cc:56"),
         st.Site(0x1184fc, "stacks_chain_a", 0xc, "apps/stacks.cc:63")]


def test_a_frame_reads_as_gdb_bt_with_function_offset_and_source():
    assert st.frame_line(5, CHAIN[0]) == "#5  0x00000000001184b5 in stacks_chain_c+0x15 at apps/stacks.cc:48"
    assert st.frame_line(12, CHAIN[0]).startswith("#12 0x00000000001184b5 in ")


def test_inlined_calls_clones_and_app_objects_are_shown_as_such():
    inl = st.Site(0x104358, "sched::wait_for<x>", -1, "./core/sched.hh:99", inlined=True)
    assert st.frame_line(2, inl).endswith("in sched::wait_for<x> [inlined] at ./core/sched.hh:99")
    clone = st.Site(0x117e5d, "lockfree::mutex<kmutex::platform>::lock [clone .isra.0]", 0x12d, "./core/mutex.hh:35",
                    inlined_in=("trace_mutex_lock_wait", "kmutex::platform::on_lock_wait"))
    assert clone.text() == ("lockfree::mutex<kmutex::platform>::lock+0x12d [clone .isra.0] "
                            "[inlined: trace_mutex_lock_wait and 1 more] at ./core/mutex.hh:35")
    app = st.Site(0x100000001a18, "contender", 0x28, "", obj="mutexnet.so")
    assert app.text() == "contender+0x28 from mutexnet.so"
    assert st.Site(0x5000).text() == "??"


def test_a_frame_outside_the_kernel_says_so():
    s = st.Site(0xdead0000dead0000, outside=True)
    assert st.frame_line(3, s) == "#3  0xdead0000dead0000 in ?? (outside the kernel: no code gdb knows is there)"
    lines = st.stack_lines(CHAIN[:1] + [s], st.OUTSIDE, indent="")
    assert lines[-1] == "(stopped: a frame outside the kernel (no code gdb knows is there))"


def test_a_complete_stack_has_no_note_and_every_early_end_has_one():
    assert st.stack_lines(CHAIN, st.COMPLETE, indent="  ") == ["  " + st.frame_line(i, s) for i, s in enumerate(CHAIN)]
    assert st.stack_lines(CHAIN, st.CUT, 3)[-1] == "    (cut at 3 frames by the depth bound: outer frames not shown)"
    assert st.stack_lines(CHAIN, st.CUT)[-1] == "    (cut at 3 frames by the depth bound: outer frames not shown)"
    assert st.stack_lines(CHAIN, st.LOOP, 16, "previous frame identical to this frame (corrupt stack?)")[-1] == \
        "    (stopped: the frame chain loops (a frame not above the one before): previous frame identical to this " \
        "frame (corrupt stack?))"
    assert st.stack_lines(CHAIN, st.BAD_FRAME)[-1].startswith("    (stopped: a bad frame (a frame pointer outside")
    assert st.stack_lines([], st.BAD_FRAME, detail="no frame") == \
        ["    (no frames)", "    (stopped: a bad frame (a frame pointer outside the stack, misaligned, or unreadable): "
                           "no frame)"]


def test_the_kernels_trailer_ends_map_one_to_one():
    assert st.TRAILER_ENDS == {layout.STACK_COMPLETE: st.COMPLETE, layout.STACK_CUT: st.CUT,
                               layout.STACK_BAD_FRAME: st.BAD_FRAME, layout.STACK_LOOP: st.LOOP}


def test_an_unmarked_stack_as_deep_as_its_bound_may_be_cut_and_a_repeat_is_a_loop():
    # real OSv's records do not say how the walk ended
    assert st.unmarked_end([1, 2, 3], 10) == (st.UNMARKED, "")
    assert st.ending(st.UNMARKED, 3, 10) == ""
    assert st.ending(st.UNMARKED, 10, 10) == "10 frames, the trace's bound: outer frames may be missing"
    end, detail = st.unmarked_end([0x40, 0x50, 0x40, 0x50], 10)
    assert end == st.REPEATS and detail == "0x40 appears twice: recursion, or a walk that went round"
    assert st.ending(end, 4, 10, detail) == detail  # said, not "stopped": the frames go on
    end, detail = st.unmarked_end([0x40] * 10, 10)
    assert detail.endswith("; 10 frames, the trace's bound: outer frames may be missing")


def test_a_thread_without_a_stack_says_why_in_one_line():
    assert st.stack_lines([], st.UNAVAILABLE, detail="thread 5 is being created: it has no context yet") == \
        ["    (no stack: thread 5 is being created: it has no context yet)"]


def test_names_lose_their_parameters_as_bt_prints_them():
    assert st.short_name("stacks_chain_c(int)") == "stacks_chain_c"
    assert st.short_name("lockfree::mutex<kmutex::platform>::lock() [clone .isra.0]") == \
        "lockfree::mutex<kmutex::platform>::lock [clone .isra.0]"
    assert st.short_name("(anonymous namespace)::chain(unsigned long)") == "(anonymous namespace)::chain"
    assert st.short_name("sched::thread::wait_until<waiter::wait() const::{lambda()#1}>(waiter::wait() const::"
                         "{lambda()#1})") == "sched::thread::wait_until<waiter::wait() const::{lambda()#1}>"
    assert st.short_name("std::function<void ()>::operator()() const") == "std::function<void ()>::operator()"
    assert st.short_name("contender") == "contender"
