"""The Perfetto export in Perfetto's kernel vocabulary, read back with Perfetto's protos
(tests/support/perfetto_read.py expands the compact form as the trace processor does):
sched_switch per CPU equal to the model's switches (count, prev and next threads, state,
time), sched_waking equal to its wake-ups, the compact form decoding to the same as the
model, and callstack samples named after the functions that ran: for a golden story, a real
OSv trace, a synthetic OSv sampler trace, and our kernel recorded under QEMU (the stacks
app's `spin`, which spends 3/4 of its time in stacks_hot).

No trace processor runs here: the `perfetto` package fetches its binary from the network
on first use, which this machine cannot; the decoder of tests/support/perfetto_read.py
follows the trace processor's source (ftrace_tokenizer.cc, sched_event_tracker.cc).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

import osvtrace
from osvtrace.exports import Options, export, perfetto_samples, perfetto_sched
from osvtrace.format.osv_synth import Rec
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.sched import DEAD, RUNNABLE, SLEEPING, WAITING
from tests.support import osv_stacks as S
from tests.support.osv_traces import fixture
from tests.support.perfetto_read import Parsed, Switch, Waking

LINUX_STATE = {RUNNABLE: 0, WAITING: 2, SLEEPING: 1, DEAD: 16}


def _export(model: Model, tmp_path: Path, **filters) -> Parsed:
    out = tmp_path / "k.pftrace"
    export(model, "perfetto", out, Options(Filter(**filters)))
    return Parsed(out)


def pid_of(model: Model):
    """The export's thread ids: idle threads (idle0, idle1 ...) and thread 0 are Linux's idle task, 0."""
    th = model.threads
    idle = {int(t) for t, n in zip(th["tid"].tolist(), th["name"].tolist()) if str(n).startswith("idle")}
    return lambda t: 0 if int(t) in idle else int(t)


def model_switches(model: Model) -> list[tuple[int, int, int, int, int]]:
    """(cpu, time, prev, prev_state, next) of each switch the model saw: a slice that begins at
    a switch-in, after another slice on its CPU."""
    ss = model.sched_slice
    pid = pid_of(model)
    out = []
    for c in np.unique(ss["cpu"]).tolist():
        rows = np.flatnonzero(ss["cpu"] == c)
        for a, b in zip(rows[:-1].tolist(), rows[1:].tolist()):
            if not ss["clipped"][b] & 1:
                out.append((c, int(ss["start"][b]), pid(ss["tid"][a]), LINUX_STATE[int(ss["end_state"][a])],
                            pid(ss["tid"][b])))
    return out


def model_wakings(model: Model) -> list[tuple[int, int, int, int, int]]:
    wk = model.wakeup
    pid = pid_of(model)
    return sorted((int(c), int(t), pid(w), pid(e), int(tc)) for c, t, w, e, tc in
                  zip(wk["cpu"].tolist(), wk["time"].tolist(), wk["waker"].tolist(), wk["wakee"].tolist(),
                      wk["target_cpu"].tolist()))


def exported_switches(p: Parsed) -> list[tuple[int, int, int, int, int]]:
    return [(s.cpu, s.ts, s.prev, s.state, s.next) for s in p.switches]


def exported_wakings(p: Parsed) -> list[tuple[int, int, int, int, int]]:
    return sorted((w.cpu, w.ts, w.waker, w.pid, w.target_cpu) for w in p.wakings)


def check_against_model(model: Model, p: Parsed) -> None:
    """Switches and wakings, as the trace processor reads them, equal the model's; each CPU's
    first switch is in the full form (the compact form cannot say who switched out)."""
    assert exported_switches(p) == model_switches(model)
    assert exported_wakings(p) == model_wakings(model)
    assert all(s.prev >= 0 for s in p.switches) and all(w.waker >= 0 for w in p.wakings)
    firsts = {}
    for s in p.switches:
        firsts.setdefault(s.cpu, s)
    assert not any(s.compact for s in firsts.values())
    names = p.threads()
    for s in p.switches:
        assert s.next_comm == ("swapper" if s.next == 0 else names[s.next])


# ---------------------------------------------------------------- golden: the story


def test_story_switches_and_wakings(story, tmp_path):
    p = _export(story, tmp_path)
    # main(1) ran on CPU 0 (preempted for a at 200); b(3) waited on CPU 1 (its idle thread 9 is pid 0)
    assert [(s.cpu, s.ts, s.prev, s.state, s.next, s.next_comm, s.compact) for s in p.switches] == [
        (0, 200, 1, 0, 2, "a", False), (0, 510, 2, 2, 1, "main", True),
        (1, 180, 3, 2, 0, "swapper", False), (1, 305, 0, 0, 3, "b", True)]
    assert p.wakings == [Waking(0, 300, 2, 3, 1, "b", True)]  # a woke b onto CPU 1's queue
    assert [(b.cpu, b.lost_events) for b in p.bundles] == [(0, False), (1, True)]  # CPU 1 lost 5 records
    assert p.threads() == {1: "main", 2: "a", 3: "b", 4: "never-ran"}  # the idle thread is Linux's pid 0
    assert [(pr.pid, list(pr.cmdline)) for pr in p.process_tree[0].processes] == [(1, ["osvtrace story.osvt"])]
    assert {t.tgid for t in p.process_tree[0].threads} == {1}
    check_against_model(story, p)


def test_filters_write_the_full_form_where_the_compact_form_would_guess_wrong(story, tmp_path):
    # only thread a: the switches into and out of a, and its waking of b; none follows the one
    # before it, so each says who switched out itself
    p = _export(story, tmp_path, threads=["a"])
    assert [(s.ts, s.prev, s.next, s.compact) for s in p.switches] == [(200, 1, 2, False), (510, 2, 1, True)]
    assert [(w.ts, w.waker, w.pid) for w in p.wakings] == [(300, 2, 3)]
    p = _export(story, tmp_path, since=300)
    assert [(s.cpu, s.ts, s.prev, s.next, s.compact) for s in p.switches] == [(0, 510, 2, 1, False),
                                                                                (1, 305, 0, 3, False)]
    # the waking at 300 comes before any switch of CPU 0 in the window: the full form names the waker
    assert p.wakings == [Waking(0, 300, 2, 3, 1, "b", False)]


# ---------------------------------------------------------------- real OSv, and many bundles


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Model:
    return Model(osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv"))))


def test_a_real_osv_trace_gives_the_models_switches_and_wakings(real, tmp_path):
    p = _export(real, tmp_path)
    check_against_model(real, p)
    assert len(p.switches) > 1000 and len(p.wakings) > 500
    compact = Counter(s.compact for s in p.switches)
    assert compact[False] == len({s.cpu for s in p.switches})  # only each CPU's first switch is in full
    assert sum(w.compact for w in p.wakings) > 0.9 * len(p.wakings)


def test_the_compact_form_decodes_to_the_same_as_the_full_form(real, tmp_path):
    from osvtrace.exports.common import Selection

    got = {}
    for compact in (True, False):
        sched = perfetto_sched.switches_and_wakings(real, Selection(real.trace, None), compact=compact)
        out = tmp_path / f"{compact}.pftrace"
        out.write_bytes(b"".join(perfetto_sched.bundles(sched, pb)))
        p = Parsed(out)
        assert {s.compact for s in p.switches} == ({True, False} if compact else {False})
        strip = lambda xs: [x.__class__(**{**x.__dict__, "compact": None}) for x in xs]  # noqa: E731
        got[compact] = (strip(p.switches), strip(p.wakings), out.stat().st_size)
    assert got[True][:2] == got[False][:2]
    assert got[True][2] < got[False][2] / 3  # and is the smaller by far


def test_bundles_split_and_delta_timestamps_restart(real, tmp_path, monkeypatch):
    monkeypatch.setattr(perfetto_sched, "BUNDLE", 100)
    p = _export(real, tmp_path)
    per_cpu = Counter(b.cpu for b in p.bundles)
    assert min(per_cpu.values()) > 5
    for b in p.bundles:
        assert len(b.compact_sched.switch_timestamp) <= 100
        cs = b.compact_sched
        # the first delta of a bundle is the absolute time; the intern table holds only what it uses
        if len(cs.switch_timestamp):
            assert cs.switch_timestamp[0] > 10**9
        used = set(cs.switch_next_comm_index) | set(cs.waking_comm_index)
        assert used == set(range(len(cs.intern_table)))
    check_against_model(real, p)


# ---------------------------------------------------------------- samples


def test_osv_sampler_ticks_become_named_callstack_samples(tmp_path):
    f = S.FUNCS
    machinery = [f["tracepoint::operator()"][0]]
    spin = machinery + S.bt("spin", "a", "thread_main")
    hold = machinery + S.bt("hold_here", "thread_main")
    recs = [Rec(S.TPS["sampler_tick"].key, S.WAITER, "waiter", 100 + 10 * k, k % 2, (), spin if k % 4 else hold)
            for k in range(40)]
    recs.append(Rec(S.TPS["sampler_tick"].key, S.HOLDER, "holder", 1000, 0, (), []))  # no stack: left out
    model = Model(osvtrace.open(S.write(tmp_path / "s.tracefile", recs)))
    out = tmp_path / "s.pftrace"
    res = export(model, "perfetto", out, Options())
    p = Parsed(out)
    assert res.counts["samples"] == len(p.samples) == 40 and res.counts["callstacks"] == 2
    assert "1 of 41 samples" in " ".join(res.notes)
    stacks = Counter(s.frames for s in p.samples)
    # outermost first, thread_main and the tracepoint's frames left out as in the call trees
    assert stacks == {("a", "spin"): 30, ("hold_here",): 10}
    tids = {s.tid for s in p.samples}
    assert len(tids) == 1 and model.trace.thread_name(tids.pop()) == "waiter"
    assert {s.pid for s in p.samples} == {perfetto_sched.PID}
    assert [s.ts for s in p.samples] == sorted(s.ts for s in p.samples) and {s.cpu for s in p.samples} == {0, 1}
    spin_addrs = next(s.addrs for s in p.samples if s.frames[-1] == "spin")
    assert spin_addrs == (f["a"][0], f["spin"][0])  # the return addresses, kept as each frame's rel_pc
    m = p.interned["mappings"][1]
    assert p.interned["mapping_paths"][m.path_string_ids[0]].str == b"osv kernel"
    src = {p.interned["function_names"][fr.function_name_id].str: (p.interned["source_paths"][fr.source_path_iid].str,
                                                                     fr.line_number)
           for fr in p.interned["frames"].values()}
    assert src[b"spin"] == (b"app.c", 10)


def test_bad_stacks_are_marked_never_a_crash(tmp_path):
    # the call trees' bad stacks (tests/reports/test_calltrees.py): a loop, one cut at OSv's
    # 10-frame bound through addresses no symbol names, none, and machinery alone
    f = S.FUNCS
    loop = [f["c"][0], f["b"][0], f["c"][0], f["b"][0], f["c"][0]]
    deep = [f["c"][0]] + [0x5000_0000 + 16 * k for k in range(9)]
    recs = [Rec(S.TPS["sampler_tick"].key, S.WAITER, "w", 10 + k, 0, (), bt) for k, bt in
            enumerate([loop, deep, [], [f["thread_main"][0]], [f["spin"][0]] * 3])]
    model = Model(osvtrace.open(S.write(tmp_path / "bad.tracefile", recs)))
    out = tmp_path / "bad.pftrace"
    res = export(model, "perfetto", out, Options())
    p = Parsed(out)
    assert "2 of 5 samples" in " ".join(res.notes)  # no stack, and machinery alone
    by_stack = {s.frames: s for s in p.samples}
    assert len(by_stack) == 3
    assert by_stack[("c", "b", "c", "b", "c")].unwind_error == pb.Profiling.UNWIND_ERROR_REPEATED_FRAME
    cut = next(s for s in p.samples if s.frames[0] == f"{0x5000_0000 + 16 * 8:#x}")
    assert cut.unwind_error == pb.Profiling.UNWIND_ERROR_MAX_FRAMES_EXCEEDED and len(cut.frames) == 10
    assert by_stack[("spin", "spin", "spin")].unwind_error == pb.Profiling.UNWIND_ERROR_REPEATED_FRAME


def test_a_trace_without_a_sampler_has_no_samples(story, tmp_path):
    p = _export(story, tmp_path)
    assert p.samples == [] and not p.interned


def test_vectorised_samples_equal_the_protobuf_library():
    rng = np.random.default_rng(7)
    n = 300
    big = [1 << (7 * k) for k in range(9)]
    s = perfetto_samples.Samples(
        np.array([int(rng.choice(big)) + int(rng.integers(0, 99)) for _ in range(n)], np.int64),
        rng.integers(0, 300, n), rng.integers(0, 2, n), rng.integers(0, 1 << 20, n), rng.integers(1, 1 << 15, n),
        rng.choice([0, 2, 6, 7], n), [], np.zeros(0, np.uint64), np.zeros(0, np.int64), [], [], "k", "", "x")
    blob = b"".join(m.tobytes() for m in perfetto_samples.encode(s))
    total = 0
    for i in range(n):
        t = pb.Trace()
        q = t.packet.add(timestamp=int(s.ts[i]), trusted_packet_sequence_id=perfetto_samples.SEQUENCE_ID,
                         sequence_flags=pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE)
        ps = q.perf_sample
        ps.cpu, ps.pid, ps.tid, ps.callstack_iid = int(s.cpu[i]), int(s.pid[i]), int(s.tid[i]), int(s.callstack[i])
        ps.cpu_mode = pb.Profiling.MODE_KERNEL
        if s.unwind_error[i]:
            ps.unwind_error = int(s.unwind_error[i])
        wire = t.SerializeToString()
        assert wire in blob, f"row {i}: {q}"
        total += len(wire)
    assert total == len(blob)


# ---------------------------------------------------------------- our kernel under QEMU


@pytest.mark.qemu
@pytest.mark.usefixtures("no_orphans")
def test_our_kernel_spin_shows_three_quarters_in_stacks_hot(kernel, tmp_path):
    from tests.support.vm import osvtrace as run_cli

    out = tmp_path / "spin.osvt"
    r = run_cli("record", "-o", str(out), "--accel", "tcg", "--no-build", "--elf", str(kernel), "--smp", "2",
                "--sampler", "1000", "--trace", "sched_*,cpu_sample", "stacks", "spin", "--ms", "4000", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    model = Model(osvtrace.open(out))
    p = _export(model, tmp_path)
    check_against_model(model, p)
    assert {s.cpu for s in p.switches} == {0, 1} and p.wakings
    # the samples of the app's thread, by innermost function (named from the kernel ELF)
    app = [s for s in p.samples if s.tid == 2]
    leaf = Counter(s.frames[-1] for s in app)
    hot, cold = leaf["stacks_hot"], leaf["stacks_cold"]
    n = hot + cold
    assert n >= 200 and n >= 0.9 * len(app), leaf.most_common(5)
    tolerance = max(0.05, 5 * (0.75 * 0.25 / n) ** 0.5)  # as tests/kernel/test_stacks_vm.py argues
    assert abs(hot / n - 0.75) < tolerance, (hot, cold, tolerance)
    # the path, outermost first, through the app's spin functions to the hot one. NOTE: hot and
    # cold keep no frame (GCC 12 leaf functions), so the walk from the interrupted frame pointer
    # starts in their caller's caller: stacks_spin_loop itself is only in cpu_sample's sp_word
    # (tests/kernel/test_stacks_vm.py), which the stacks do not use yet
    path = Counter(s.frames for s in app if s.frames[-1] == "stacks_hot").most_common(1)[0][0]
    assert path[-2] in ("stacks_spin_loop", "stacks_spin_deep") and any("stacks_main" in f for f in path), path
    # samples land on the threads the switches say ran on their CPU then (the sampler
    # interrupts the running thread)
    import bisect

    runs: dict[int, tuple[list[int], list[int]]] = {}
    for sw in p.switches:
        runs.setdefault(sw.cpu, ([], []))[0].append(sw.ts)
        runs[sw.cpu][1].append(sw.next)
    placed = [runs[s.cpu][1][k] == s.tid for s in app
              if (k := bisect.bisect_right(runs[s.cpu][0], s.ts) - 1) >= 0]
    assert len(placed) > 0.9 * len(app) and sum(placed) >= 0.99 * len(placed), (sum(placed), len(placed))
    m = p.interned["mappings"][1]
    assert p.interned["build_ids"][m.build_id].str.hex() == model.trace.facts.build_id
