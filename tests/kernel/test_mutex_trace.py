"""Trace consistency of the lock-free mutex, on real captures (QEMU, TCG, gdb snapshot).

The mutex app runs on 2 and 4 vCPUs with every tracepoint on; `osvtrace record --via gdb`
snapshots the rings at its end. Then, columnar (numpy, no Python object per event):
  - every mutex_handoff's receiver is the next thread to own that mutex: its next event
    on the mutex is mutex_lock_wake, and no other thread acquires the mutex in between;
  - hand-offs in the trace equal the app's own count, and lock_wait/lock_wake pair up;
  - each CPU's sequence numbers have no gap where no loss is reported;
  - `osvtrace report mutex --json` agrees with the app.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import osvtrace as ot
from tests.support.apps import parse_kv
from tests.support.vm import osvtrace

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]

ACQUIRE = ("mutex_lock", "mutex_lock_wake", "mutex_try_lock")


def capture(kernel, tmp_path, smp: int, *app_args: str) -> tuple[ot.Trace, str]:
    out = tmp_path / f"mutex{smp}.osvt"
    r = osvtrace("record", "--via", "gdb", "-o", str(out), "--smp", str(smp), "--accel", "tcg", "--trace", "*",
                 "--tracebuf", "16M", "--mem", "512", "--no-build", "--kernel", str(kernel), "mutex", *app_args,
                 timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return ot.open(out), r.stdout


def app_mutexes(console: str) -> np.ndarray:
    line = next(ln for ln in console.splitlines() if ln.startswith("mutex: addresses="))
    return np.array([int(a, 16) for a in line.split("=", 1)[1].split(",")], np.int64)


def mutex_events(t: ot.Trace, addrs: np.ndarray) -> dict[str, np.ndarray]:
    """Events on the app's mutexes, in trace order: index, tp name id, tid, mutex, and for each
    a (mutex, tid) group rank. Columns only."""
    m, has = t.field("mutex")
    sel = np.nonzero(has & np.isin(m, addrs))[0]
    tid = t.events.tid[sel].astype(np.int64)
    mm = m[sel]
    _, mrank = np.unique(mm, return_inverse=True)
    _, pair = np.unique(mm * 65536 + tid, return_inverse=True)
    return {"idx": sel, "tp": t.events.tp[sel], "tid": tid, "mutex": mm, "mrank": mrank, "pair": pair}


def next_in_group(group: np.ndarray, pos: np.ndarray, q_group: np.ndarray, q_pos: np.ndarray) -> np.ndarray:
    """For each query, the position (into the event arrays) of the first event of its group
    strictly after q_pos; -1 if none."""
    n = int(max(pos.max(initial=0), q_pos.max(initial=0))) + 2  # positions never spill into the next group
    key = group.astype(np.int64) * n + pos
    order = np.argsort(key, kind="stable")
    skey = key[order]
    k = np.searchsorted(skey, q_group.astype(np.int64) * n + q_pos, side="right")
    ok = k < len(skey)
    ok[ok] &= skey[k[ok]] // n == q_group[ok]
    return np.where(ok, order[np.minimum(k, len(skey) - 1)], -1)


def check_handoffs(t: ot.Trace, addrs: np.ndarray) -> int:
    e = mutex_events(t, addrs)
    tpid = {n: t.tracepoint(n).id for n in ("mutex_lock", "mutex_lock_wait", "mutex_lock_wake", "mutex_handoff",
                                             "mutex_unlock", "mutex_try_lock")}
    pos = np.arange(len(e["idx"]))
    # hand-off receivers (to_tid) in event order
    h_idx, h_args = t.args("mutex_handoff")
    keep = np.isin(h_args["mutex"].astype(np.int64), addrs)
    h_pos = np.searchsorted(e["idx"], h_idx[keep])
    assert (e["idx"][h_pos] == h_idx[keep]).all()
    to_tid = h_args["to_tid"][keep].astype(np.int64)
    h_m = e["mutex"][h_pos]
    # the receiver's (mutex, thread) group
    pair_of = {}
    for g, mv, tv in zip(e["pair"], e["mutex"], e["tid"]):  # small: one entry per (mutex, thread) pair
        pair_of.setdefault((int(mv), int(tv)), int(g))
    q_pair = np.array([pair_of.get((int(mv), int(tv)), -1) for mv, tv in zip(h_m, to_tid)], np.int64)
    assert (q_pair >= 0).all(), "a hand-off names a thread with no other event on that mutex"
    nxt = next_in_group(e["pair"], pos, q_pair, h_pos)
    assert (nxt >= 0).all(), "a receiver never woke with the mutex (lost wake-up?)"
    bad = e["tp"][nxt] != tpid["mutex_lock_wake"]
    assert not bad.any(), f"{int(bad.sum())} receivers' next event on the mutex is not mutex_lock_wake"

    # acquisitions: lock not followed by this thread's lock_wait, lock_wake, successful try_lock
    is_lock = e["tp"] == tpid["mutex_lock"]
    after = next_in_group(e["pair"], pos, e["pair"][is_lock], pos[is_lock])
    waited = (after >= 0) & (e["tp"][np.maximum(after, 0)] == tpid["mutex_lock_wait"])
    acq = np.zeros(len(pos), bool)
    acq[pos[is_lock][~waited]] = True
    acq |= e["tp"] == tpid["mutex_lock_wake"]
    t_idx, t_args = t.args("mutex_try_lock")
    ok_try = t_idx[t_args["success"].astype(bool)]
    acq[np.isin(e["idx"], ok_try)] = True
    a_pos = pos[acq]
    first_acq = next_in_group(e["mrank"][a_pos], a_pos, e["mrank"][h_pos], h_pos)
    # next_in_group returned positions into a_pos's arrays: map back
    first_acq = np.where(first_acq >= 0, a_pos[np.maximum(first_acq, 0)], -1)
    assert (first_acq == nxt).all(), "another thread acquired a mutex between its hand-off and the receiver's wake"

    waits = int((e["tp"] == tpid["mutex_lock_wait"]).sum())
    wakes = int((e["tp"] == tpid["mutex_lock_wake"]).sum())
    assert waits == wakes == len(h_pos), (waits, wakes, len(h_pos))
    return len(h_pos)


def check_sequences(t: ot.Trace) -> None:
    """Per CPU, consecutive records' sequence numbers differ by exactly the earlier record's
    slot count, unless the decoder reports loss there (it reports none here)."""
    nslots = t.catalog.nslots_table()
    seq = t.seq
    for c in range(t.ncpus):
        lc = t.loss[c]
        assert lc.dropped == 0 and lc.gap_slots == 0 and lc.invalid_slots == 0, lc
        sel = np.nonzero(t.events.cpu == c)[0]
        s = seq[sel]
        order = np.argsort(s, kind="stable")
        s = s[order]
        step = nslots[t.events.tp[sel][order]].astype(np.int64)
        assert (np.diff(s) == step[:-1]).all(), f"CPU {c}: a sequence gap with no loss reported"


@pytest.mark.parametrize("smp", [2, 4])
def test_mutex_trace_is_consistent(kernel, tmp_path, smp):
    # Holds 5x longer than thinks, and every 100th acquisition a thread yields while holding,
    # so hand-offs happen by construction, whatever the host does with the vCPUs.
    t, console = capture(kernel, tmp_path, smp, "--threads", "6", "--mutexes", "2", "--iterations", "6000",
                         "--hold-ns", "1500", "--think-ns", "300", "--trylock", "10", "--yield-every", "100")
    kv = parse_kv(next(ln for ln in console.splitlines() if ln.startswith("mutex: acquisitions=")))
    assert kv["lost_updates"] == "0" and kv["violations"] == "0", console
    addrs = app_mutexes(console)
    n = check_handoffs(t, addrs)
    assert n == int(kv["handoffs"]) > 0, (n, kv)
    check_sequences(t)
    # the report (lead's model-based `report mutex`) sees the same counts
    r = osvtrace("report", "mutex", str(t.path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    rows = rep["rows"] if isinstance(rep, dict) and "rows" in rep else rep
    got = {int(str(row["mutex"]), 16) if isinstance(row["mutex"], str) else int(row["mutex"]): row for row in rows}
    ours = [got[int(a)] for a in addrs if int(a) in got]
    assert len(ours) == len(addrs)
    assert sum(int(row["handoffs"]) for row in ours) == int(kv["handoffs"])
    assert sum(int(row["acquisitions"]) for row in ours) == int(kv["acquisitions"])
    assert all(int(row["wait_max"]) > 0 for row in ours if int(row["handoffs"]))


def test_mutex_report_columns_are_documented(kernel, tmp_path):
    """The text report prints a row per mutex, the app's among them."""
    t, console = capture(kernel, tmp_path, 2, "--threads", "3", "--mutexes", "1", "--iterations", "500")
    r = osvtrace("report", "mutex", str(t.path))
    assert r.returncode == 0, r.stderr
    addr = f"{int(app_mutexes(console)[0]):#x}"
    assert re.search(addr, r.stdout), r.stdout
