"""Stacks from the real kernel under QEMU (TCG): tracebt= on a known call chain, the walk on
smashed frames, the timer sampler on a known CPU split, zero bytes when stacks are off, and the
kernel's build id in the trace. Addresses are checked against the ELF's symbol table
(pyelftools), never against hard-coded numbers.
"""

from __future__ import annotations

import json

import re
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import osvtrace as ot
from osvtrace.catalog import layout
from tests.support.vm import osvtrace

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def record(kernel: Path, out: Path, *args: str, timeout: float = 300) -> tuple[ot.Trace, str]:
    r = osvtrace("record", "-o", str(out), "--accel", "tcg", "--no-build", "--elf", str(kernel), *args,
                 timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return ot.open(out), r.stdout


def functions(kernel: Path, *names: str) -> dict[str, tuple[int, int]]:
    """[start, end) of each named function, from the ELF's symbol table."""
    with open(kernel, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab")
        out = {n: (s["st_value"], s["st_value"] + s["st_size"]) for n in names for s in sym.get_symbol_by_name(n) or []}
    assert set(out) == set(names), f"not in the ELF: {set(names) - set(out)}"
    return out


def owner(frames: np.ndarray, fns: dict[str, tuple[int, int]], ret: bool = True) -> np.ndarray:
    """The name of the function holding each address ('' for none); a return address is looked up
    at addr - 1 (the call instruction), as symbolizers do."""
    out = np.full(frames.shape, "", object)
    a = frames.astype(np.int64) - (1 if ret else 0)
    for name, (lo, hi) in fns.items():
        out[(a >= lo) & (a < hi)] = name
    return out


def test_waits_of_a_known_call_chain_carry_c_b_a_in_that_order(kernel, tmp_path):
    # --backtrace: stacks on every traced tracepoint (here tracebt=mutex_lock_wait)
    t, console = record(kernel, tmp_path / "chain.osvt", "--trace", "mutex_lock_wait", "--backtrace",
                        "stacks", "chain", "--rounds", "5")
    assert "stacks: chain rounds=5" in console and "tracebt=mutex_lock_wait" in t.facts.cmdline
    idx, _ = t.args("mutex_lock_wait")
    assert len(idx) >= 3, "the chain thread did not wait on the held mutex"
    bt, ends = t.backtraces(idx), t.backtrace_ends(idx)
    fns = functions(kernel, "stacks_chain_a", "stacks_chain_b", "stacks_chain_c")
    names = owner(bt, fns)
    for row, end in zip(names, ends):
        found = [n for n in row if n]
        assert found == ["stacks_chain_c", "stacks_chain_b", "stacks_chain_a"], row
        k = list(row).index("stacks_chain_c")
        assert list(row[k:k + 3]) == ["stacks_chain_c", "stacks_chain_b", "stacks_chain_a"]  # adjacent too
        assert end == layout.STACK_COMPLETE  # a thread's chain ends at its first frame (rbp 0)
    # the same path in prof-lock's tree, named from the kernel ELF (found by the trace's build id)
    r = osvtrace("report", "prof-lock", str(tmp_path / "chain.osvt"), "--tree", "caller", "--json")
    assert r.returncode == 0, r.stderr
    chain = ["stacks_chain_a", "stacks_chain_b", "stacks_chain_c"]
    assert any(path[k:k + 3] == chain for path in tree_paths(json.loads(r.stdout)["tree"])
               for k in range(len(path))), r.stdout[:3000]
    # a slice from the second wait on keeps those records' stacks and how their walks ended
    from osvtrace.format.slice import slice_trace

    since = int(t.events.time[idx[1]])
    slice_trace(t, tmp_path / "part.osvt", since, None)
    p = ot.open(tmp_path / "part.osvt")
    pidx, _ = p.args("mutex_lock_wait")
    np.testing.assert_array_equal(p.backtraces(pidx), bt[1:])
    np.testing.assert_array_equal(p.backtrace_ends(pidx), ends[1:])


def tree_paths(nodes: list[dict], above: tuple[str, ...] = ()) -> list[list[str]]:
    """Every root-to-leaf path of a report's --json tree, as function names (frame text up to
    its first space or parenthesis)."""
    out = []
    for n in nodes:
        path = above + (str(n["frame"]).split(" ")[0].split("(")[0],)
        out += tree_paths(n["children"], path) if n["children"] else [list(path)]
    return out


def test_stacks_off_add_not_one_byte_to_the_records(kernel, tmp_path):
    t, _ = record(kernel, tmp_path / "plain.osvt", "--trace", "mutex_lock_wait", "stacks", "chain", "--rounds", "3")
    idx, _ = t.args("mutex_lock_wait")
    assert len(idx) >= 2
    assert t.backtraces(idx).shape == (len(idx), 0)
    assert (t.backtrace_ends(idx) == layout.STACK_NONE).all()
    # every slot of the file's chunks is a record's schema slots: nothing more was written
    nslots = t.catalog.nslots_table()[t.events.tp].astype(np.int64).sum()
    assert nslots == sum(c.nslots for c in t.scan.chunks)


def test_a_smashed_frame_stops_the_walk_marked_and_the_kernel_survives(kernel, tmp_path):
    t, console = record(kernel, tmp_path / "smash.osvt", "--trace", "trace_marker", "--tracebt", "trace_marker",
                        "stacks", "smash")
    assert "stacks: smash survived" in console
    idx, a = t.args("trace_marker")
    assert a["value"].tolist() == [1, 2, 3, 4, 5, 6]
    bt, ends = t.backtraces(idx), t.backtrace_ends(idx)
    depth = (bt != 0).sum(axis=1)
    fns = functions(kernel, "stacks_smash", "stacks_deep")
    # 1 outside the stack, 3 misaligned: a bad frame; 2 itself, 4 below: a loop. Each time the
    # walk kept the frames before the broken link: stacks_smash's own, and its caller's.
    assert ends[:4].tolist() == [layout.STACK_BAD_FRAME, layout.STACK_LOOP, layout.STACK_BAD_FRAME,
                                 layout.STACK_LOOP]
    assert depth[:4].tolist() == [2, 2, 2, 2]
    assert (owner(bt[:4, 0], fns) == "stacks_smash").all()
    # 24 frames deep: cut by the bound at 16, all in the recursion
    assert ends[4] == layout.STACK_CUT and depth[4] == layout.STACK_MAX_FRAMES
    assert (owner(bt[4], fns) == "stacks_deep").all()
    # a plain call: the whole stack, to the thread's first frame
    assert ends[5] == layout.STACK_COMPLETE and 2 <= depth[5] < layout.STACK_MAX_FRAMES


def test_the_sampler_puts_three_quarters_of_the_spin_in_the_hot_function(kernel, tmp_path):
    # stacks spin alternates 3 units of work in stacks_hot with 1 in stacks_cold (the same loop),
    # ~2,500 times a second, so any slow phase of the host falls on both alike. The sampler ticks
    # at 1000 Hz of host time for 8 s, but TCG delivers a tick only while the vCPU runs: on an
    # idle host ~5,000 samples, on a loaded one (load average 13 on 2 cores seen) far fewer. So
    # the tolerance follows the count: 5 binomial standard deviations, at least 0.05 (0.75 +-
    # 0.05 at 5,000 samples is 8 sigma). Losing samples to the host does not bias the share
    # (when the vCPU runs is unrelated to which function it runs); a sampler that misses a
    # function or reads the wrong frame is off by far more.
    t, console = record(kernel, tmp_path / "spin.osvt", "--sampler", "1000", "--trace", "cpu_sample",
                        "stacks", "spin", "--ms", "8000")
    assert "stacks: spin rounds=" in console
    idx, a = t.args("cpu_sample")
    main = t.events.tid[idx] == 2  # the app's thread
    fns = functions(kernel, "stacks_hot", "stacks_cold", "stacks_spin_loop")
    where = owner(a["pc"][main], fns, ret=False)
    hot, cold = int((where == "stacks_hot").sum()), int((where == "stacks_cold").sum())
    n = hot + cold
    assert n >= 300, (hot, cold, len(idx))
    assert n >= 0.9 * main.sum()  # the spin is nearly all the app thread did
    tolerance = max(0.05, 5 * (0.75 * 0.25 / n) ** 0.5)
    assert abs(hot / n - 0.75) < tolerance, (hot, cold, tolerance)
    # the samples' stacks. hot and cold are leaf functions that keep no frame (GCC 12), so the
    # walk from the interrupted rbp starts in their caller's frame: its first frame is the return
    # into stacks_spin_loop's caller, and the word at the interrupted rsp is the return into
    # stacks_spin_loop itself (cpu_sample's sp_word)
    leaf = idx[main][(where == "stacks_hot") | (where == "stacks_cold")]
    deep = functions(kernel, "stacks_spin_deep")
    bt = t.backtraces(leaf)
    assert (owner(bt[:, 0], deep) == "stacks_spin_deep").mean() > 0.95
    assert (owner(t.args_at(t.catalog.by_name["cpu_sample"], leaf)["sp_word"], fns) == "stacks_spin_loop").mean() \
        > 0.95
    assert (t.backtrace_ends(leaf) == layout.STACK_COMPLETE).mean() > 0.95


def test_the_trace_carries_the_build_id_of_the_elf_it_ran(kernel, tmp_path):
    t, console = record(kernel, tmp_path / "bid.osvt", "--trace", "trace_marker", "hello")
    with open(kernel, "rb") as f:
        elf = ELFFile(f)
        note = next(n for s in elf.iter_sections() if s["sh_type"] == "SHT_NOTE" for n in s.iter_notes()
                    if n["n_type"] == "NT_GNU_BUILD_ID")
    assert re.fullmatch(r"[0-9a-f]{40}", note["n_desc"])  # sha1 (-Wl,--build-id=sha1)
    assert t.facts.build_id == note["n_desc"]
    assert f"build {note['n_desc'][:12]}" in console
