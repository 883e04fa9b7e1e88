"""Mutex tables: waits (who waited, how long, who handed it over), holds, hand-offs.

Events of one mutex by one thread form a little state machine (lock, wait, wake,
unlock); pairing them is done per (mutex, thread) key with osvtrace.model.search.
"""

from __future__ import annotations

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import model_events
from osvtrace.model.search import dense_rank, last_match, next_match
from osvtrace.model.table import Column, Table, TableSpec, table

MUTEX_WAIT = TableSpec("mutex_wait", "One row per contended lock(): from joining the wait queue to owning the mutex.", (
    Column("mutex", "uint64", "mutex address", "addr"),
    Column("tid", "uint32", "waiting thread", "tid"),
    Column("start", "int64", "mutex_lock_wait time", "ns"),
    Column("dur", "int64", "time until mutex_lock_wake (to the trace end if it never came)", "ns"),
    Column("handed_by", "uint32", "thread whose unlock handed the mutex over (0 if not in the trace)", "tid"),
    Column("complete", "bool", "the wait ended inside the trace"),
    Column("event", "int64", "index in events of the mutex_lock_wait record (its backtrace is the waiter's stack)"),
))

MUTEX_HOLD = TableSpec("mutex_hold", "One row per ownership of a mutex: from acquiring it to unlock().", (
    Column("mutex", "uint64", "mutex address", "addr"),
    Column("tid", "uint32", "owner", "tid"),
    Column("start", "int64", "acquired (mutex_lock without wait, mutex_lock_wake, or successful try_lock)", "ns"),
    Column("dur", "int64", "held until mutex_unlock (to the trace end if none)", "ns"),
    Column("contended", "bool", "acquired after waiting"),
    Column("complete", "bool", "the unlock is in the trace"),
    Column("event", "int64", "index in events of the record that acquired it (its backtrace is the holder's stack)"),
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


class _Kind:
    """One mutex tracepoint's events: time, mutex, thread, CPU, and a (mutex, thread) key."""

    def __init__(self, trace: Trace, name: str, tid_arg: str | None = None):
        ev = trace.events
        idx, a = model_events(trace, name) or (np.empty(0, np.int64), {})
        self.idx = idx
        self.args = a
        self.time = ev.time[idx]
        self.cpu = ev.cpu[idx]
        self.mutex = a.get("mutex", np.empty(0, np.uint64))
        self.tid = a.get(tid_arg, np.empty(0, np.uint32)) if tid_arg else ev.tid[idx]  # {} when not in the catalog
        self.pair = self.mutex.astype(np.uint64) ^ (self.tid.astype(np.uint64) << np.uint64(48))
        self.key = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.idx)


def _take(values: np.ndarray, hit: np.ndarray, missing: int) -> np.ndarray:
    return np.where(hit >= 0, values[np.maximum(hit, 0)] if len(values) else missing, missing)


def _ranked(*kinds: _Kind) -> None:
    """Give the kinds' (mutex, thread) pairs one dense numbering (their keys)."""
    # NOTE: a pair key mixes the thread id into the top bits of the mutex address;
    # kernel addresses leave those bits equal for all mutexes, so pairs stay distinct.
    for k, r in zip(kinds, dense_rank(*(k.pair for k in kinds))):
        k.key = r


def mutex_tables(trace: Trace) -> tuple[Table, Table, Table]:
    return mutex_waits(trace), mutex_holds(trace), handoffs(trace)


def wait_spans(trace: Trace) -> dict[str, np.ndarray]:
    """mutex_wait's columns but handed_by (mutex, tid, start, dur, complete, event): what
    prof-lock needs, without pairing every unlock with the wake it caused."""
    wait, wake = _Kind(trace, "mutex_lock_wait"), _Kind(trace, "mutex_lock_wake")
    if not len(wait):
        return {k: v for k, v in MUTEX_WAIT.empty().columns.items() if k != "handed_by"}
    _ranked(wait, wake)
    # lock_wait -> next lock_wake of the same (mutex, thread)
    w2k = next_match(wait.key, wait.time, wake.key, wake.time)
    w_end = _take(wake.time, w2k, trace.span_ns[1])
    return {"mutex": wait.mutex, "tid": wait.tid, "start": wait.time, "dur": w_end - wait.time,
            "complete": w2k >= 0, "event": wait.idx}


def mutex_waits(trace: Trace) -> Table:
    """The mutex_wait table: wait_spans, and who handed each mutex over."""
    w = wait_spans(trace)
    if not len(w["event"]):
        return MUTEX_WAIT.empty()
    wait, hand = _Kind(trace, "mutex_lock_wait"), _Kind(trace, "mutex_handoff", tid_arg="to_tid")
    _ranked(wait, hand)
    w_end = w["start"] + w["dur"]
    h = last_match(wait.key, w_end, hand.key, hand.time)
    h = np.where((h >= 0) & (_take(hand.time, h, -1) >= wait.time), h, -1)
    handed_by = _take(hand.args.get("from_tid", np.empty(0, np.uint32)), h, 0)
    return table(MUTEX_WAIT, handed_by=handed_by, **w)


def mutex_holds(trace: Trace) -> Table:
    """The mutex_hold table. A lock() is contended when its next event on that mutex is a
    lock_wait (before any unlock); then ownership starts at the lock_wake instead."""
    lock, wait, wake = (_Kind(trace, n) for n in ("mutex_lock", "mutex_lock_wait", "mutex_lock_wake"))
    unlock, trylock = _Kind(trace, "mutex_unlock"), _Kind(trace, "mutex_try_lock")
    if not (len(lock) or len(wake) or len(trylock)):
        return MUTEX_HOLD.empty()
    _ranked(lock, wait, wake, unlock, trylock)
    big = np.iinfo(np.int64).max
    nw = _take(wait.time, next_match(lock.key, lock.time, wait.key, wait.time), big)
    nu = _take(unlock.time, next_match(lock.key, lock.time, unlock.key, unlock.time), big)
    contended = (nw != big) & (nw <= nu)
    ok_try = trylock.args["success"].astype(bool) if len(trylock) else np.zeros(0, bool)
    free = ~contended
    acq_key = np.concatenate([lock.key[free], wake.key, trylock.key[ok_try]])
    acq_time = np.concatenate([lock.time[free], wake.time, trylock.time[ok_try]])
    acq_m = np.concatenate([lock.mutex[free], wake.mutex, trylock.mutex[ok_try]])
    acq_tid = np.concatenate([lock.tid[free], wake.tid, trylock.tid[ok_try]])
    acq_cont = np.concatenate([np.zeros(int(free.sum()), bool), np.ones(len(wake), bool),
                               np.zeros(int(ok_try.sum()), bool)])
    acq_ev = np.concatenate([lock.idx[free], wake.idx, trylock.idx[ok_try]])
    order = np.argsort(acq_time, kind="stable")
    acq_key, acq_time, acq_m, acq_tid, acq_cont, acq_ev = (x[order] for x in (acq_key, acq_time, acq_m, acq_tid,
                                                                             acq_cont, acq_ev))
    u = next_match(acq_key, acq_time, unlock.key, unlock.time)
    h_end = _take(unlock.time, u, trace.span_ns[1])
    return table(MUTEX_HOLD, mutex=acq_m, tid=acq_tid, start=acq_time, dur=h_end - acq_time, contended=acq_cont,
                 complete=u >= 0, event=acq_ev)


def handoffs(trace: Trace) -> Table:
    """The handoff table: latency until the waiter's mutex_lock_wake."""
    hand, wake = _Kind(trace, "mutex_handoff", tid_arg="to_tid"), _Kind(trace, "mutex_lock_wake")
    if not len(hand):
        return HANDOFF.empty()
    _ranked(hand, wake)
    k = next_match(hand.key, hand.time, wake.key, wake.time)
    return table(HANDOFF, time=hand.time, mutex=hand.mutex, from_tid=hand.args["from_tid"],
                 to_tid=hand.tid, cpu=hand.cpu, wake_cpu=_take(wake.cpu.astype(np.int32), k, -1),
                 latency=np.where(k >= 0, _take(wake.time, k, 0) - hand.time, -1))
