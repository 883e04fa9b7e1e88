"""Mutex tables: waits (who waited, how long, who handed it over), holds, hand-offs.

Events of one mutex by one thread form a little state machine (lock, wait, wake,
unlock); pairing them is done per (mutex, thread) key with sorted searches.
"""

from __future__ import annotations

import numpy as np

from osvtrace.model.search import KeyedTimes
from osvtrace.model.table import Column, Table, TableSpec, table
from osvtrace.trace import Trace

MUTEX_WAIT = TableSpec("mutex_wait", "One row per contended lock(): from joining the wait queue to owning the mutex.", (
    Column("mutex", "uint64", "mutex address", "addr"),
    Column("tid", "uint32", "waiting thread", "tid"),
    Column("start", "int64", "mutex_lock_wait time", "ns"),
    Column("dur", "int64", "time until mutex_lock_wake (to the trace end if it never came)", "ns"),
    Column("handed_by", "uint32", "thread whose unlock handed the mutex over (0 if not in the trace)", "tid"),
    Column("complete", "bool", "the wait ended inside the trace"),
))

MUTEX_HOLD = TableSpec("mutex_hold", "One row per ownership of a mutex: from acquiring it to unlock().", (
    Column("mutex", "uint64", "mutex address", "addr"),
    Column("tid", "uint32", "owner", "tid"),
    Column("start", "int64", "acquired (mutex_lock without wait, mutex_lock_wake, or successful try_lock)", "ns"),
    Column("dur", "int64", "held until mutex_unlock (to the trace end if none)", "ns"),
    Column("contended", "bool", "acquired after waiting"),
    Column("complete", "bool", "the unlock is in the trace"),
))

HANDOFF = TableSpec("handoff", "One row per mutex_handoff: unlock() giving the mutex straight to a waiter.", (
    Column("time", "int64", "hand-off time", "ns"),
    Column("mutex", "uint64", "mutex address", "addr"),
    Column("from_tid", "uint32", "releasing thread", "tid"),
    Column("to_tid", "uint32", "receiving waiter", "tid"),
    Column("cpu", "uint16", "CPU of the releasing thread"),
    Column("wake_cpu", "int32", "CPU the waiter resumed on (-1 if not in the trace)"),
    Column("latency", "int64", "hand-off to the waiter running with the mutex (mutex_lock_wake), -1 if unseen", "ns"),
))


def _events(trace: Trace, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if name not in trace.catalog.by_name:
        return np.empty(0, np.int64), {}
    return trace.args(name)


def _pair_key(mutex: np.ndarray, tid: np.ndarray, mutexes: np.ndarray) -> np.ndarray:
    """One int64 per (mutex, thread) pair."""
    rank = np.searchsorted(mutexes, mutex).astype(np.int64)
    return rank * (1 << 32) + tid.astype(np.int64)


def mutex_tables(trace: Trace) -> tuple[Table, Table, Table]:
    ev = trace.events
    end = trace.span_ns[1]
    kinds = ["mutex_lock", "mutex_lock_wait", "mutex_lock_wake", "mutex_unlock", "mutex_try_lock", "mutex_handoff"]
    e = {k: _events(trace, k) for k in kinds}
    all_m = [a["mutex"] for _, a in e.values() if a]
    if not all_m or not sum(len(m) for m in all_m):
        return MUTEX_WAIT.empty(), MUTEX_HOLD.empty(), HANDOFF.empty()
    mutexes = np.unique(np.concatenate(all_m))

    def key_time(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        idx, a = e[name]
        if not a:
            return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.uint64), np.empty(0, np.uint32))
        tid = ev.tid[idx]
        return _pair_key(a["mutex"], tid, mutexes), ev.time[idx], a["mutex"], tid

    wk, wt, wm, wtid = key_time("mutex_lock_wait")
    kk, kt, km, ktid = key_time("mutex_lock_wake")
    lk, lt, lm, ltid = key_time("mutex_lock")
    uk, ut, um, utid = key_time("mutex_unlock")
    hidx, ha = e["mutex_handoff"]
    # --- waits: lock_wait -> next lock_wake of the same (mutex, thread)
    wake_at = KeyedTimes(kk, kt, wk).next_at_or_after(wk, wt) if len(wk) else np.empty(0, np.int64)
    done = wake_at >= 0
    w_end = np.where(done, kt[np.maximum(wake_at, 0)] if len(kt) else 0, end)
    handed_by = np.zeros(len(wk), np.uint32)
    if len(hidx) and len(wk):
        hk = _pair_key(ha["mutex"], ha["to_tid"], mutexes)
        h = KeyedTimes(hk, ev.time[hidx], wk).last_at_or_before(wk, w_end)
        ok = (h >= 0)
        ok[ok] &= ev.time[hidx][h[ok]] >= wt[ok]
        handed_by[ok] = ha["from_tid"][h[ok]]
    waits = table(MUTEX_WAIT, mutex=wm, tid=wtid, start=wt, dur=w_end - wt, handed_by=handed_by, complete=done)
    # --- holds: acquisitions -> next unlock of the same (mutex, thread)
    contended_lock = np.zeros(len(lk), bool)
    if len(wk) and len(lk):
        # a lock() is contended if its thread's next event on that mutex is a lock_wait
        nxt_wait = KeyedTimes(wk, wt, lk).next_at_or_after(lk, lt)
        nxt_unlock = KeyedTimes(uk, ut, lk).next_at_or_after(lk, lt) if len(uk) else np.full(len(lk), -1)
        has_w = nxt_wait >= 0
        w_time = np.where(has_w, wt[np.maximum(nxt_wait, 0)], np.iinfo(np.int64).max)
        u_time = np.where(nxt_unlock >= 0, ut[np.maximum(nxt_unlock, 0)] if len(ut) else 0, np.iinfo(np.int64).max)
        contended_lock = has_w & (w_time <= u_time)
    tidx, ta = e["mutex_try_lock"]
    ok_try = ta["success"].astype(bool) if ta else np.zeros(0, bool)
    a_key = np.concatenate([lk[~contended_lock], kk] + ([_pair_key(ta["mutex"][ok_try], ev.tid[tidx][ok_try],
                                                                     mutexes)] if ta else []))
    a_time = np.concatenate([lt[~contended_lock], kt] + ([ev.time[tidx][ok_try]] if ta else []))
    a_m = np.concatenate([lm[~contended_lock], km] + ([ta["mutex"][ok_try]] if ta else []))
    a_tid = np.concatenate([ltid[~contended_lock], ktid] + ([ev.tid[tidx][ok_try]] if ta else []))
    a_cont = np.concatenate([np.zeros(int((~contended_lock).sum()), bool), np.ones(len(kk), bool)]
                            + ([np.zeros(int(ok_try.sum()), bool)] if ta else []))
    order = np.argsort(a_time, kind="stable")
    a_key, a_time, a_m, a_tid, a_cont = a_key[order], a_time[order], a_m[order], a_tid[order], a_cont[order]
    un = KeyedTimes(uk, ut, a_key).next_at_or_after(a_key, a_time) if len(uk) else np.full(len(a_key), -1)
    h_done = un >= 0
    h_end = np.where(h_done, ut[np.maximum(un, 0)] if len(ut) else 0, end)
    holds = table(MUTEX_HOLD, mutex=a_m, tid=a_tid, start=a_time, dur=h_end - a_time, contended=a_cont,
                  complete=h_done)
    # --- hand-offs: latency until the waiter's mutex_lock_wake
    if len(hidx):
        htime = ev.time[hidx]
        hk = _pair_key(ha["mutex"], ha["to_tid"], mutexes)
        w = KeyedTimes(kk, kt, hk).next_at_or_after(hk, htime) if len(kk) else np.full(len(hidx), -1)
        seen = w >= 0
        kidx = e["mutex_lock_wake"][0]
        wake_cpu = np.where(seen, ev.cpu[kidx][np.maximum(w, 0)].astype(np.int32) if len(kidx) else -1, -1)
        lat = np.where(seen, (kt[np.maximum(w, 0)] if len(kt) else 0) - htime, -1)
        handoffs = table(HANDOFF, time=htime, mutex=ha["mutex"], from_tid=ha["from_tid"], to_tid=ha["to_tid"],
                         cpu=ev.cpu[hidx], wake_cpu=wake_cpu, latency=lat)
    else:
        handoffs = HANDOFF.empty()
    return waits, holds, handoffs
