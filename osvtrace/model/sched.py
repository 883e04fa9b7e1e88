"""Scheduler tables: who ran where (sched_slice), in what state each thread was
(thread_state), who woke whom and how long the wakee waited to run (wakeup),
and the thread list (threads).

All built with sorts, searches and shifts over columns; no loop over events.
"""

from __future__ import annotations

import numpy as np

from osvtrace.format.trace import Trace
from osvtrace.model.kernel_map import has_events, model_events
from osvtrace.model.search import dense_rank, last_match, next_match
from osvtrace.model.table import Column, Table, TableSpec, table

# thread states (tracepoints/sched.toml enum thread_state) plus one for "not seen yet"
RUNNING, RUNNABLE, WAITING, SLEEPING, DEAD = 0, 1, 2, 3, 4
STATE_NAMES = {RUNNING: "running", RUNNABLE: "runnable", WAITING: "waiting", SLEEPING: "sleeping", DEAD: "dead"}

SCHED_SLICE = TableSpec("sched_slice", "One row per stretch of time a thread ran on a CPU, from switch-in to switch-out.", (
    Column("cpu", "uint16", "CPU it ran on"),
    Column("tid", "uint32", "thread that ran", "tid"),
    Column("start", "int64", "switch-in time (or the CPU's first event if the trace began mid-slice)", "ns"),
    Column("dur", "int64", "running time", "ns"),
    Column("end_state", "uint8", "state after switch-out: 0 running (trace ended), 1 runnable (preempted or "
           "yielded), 2 waiting, 3 sleeping, 4 dead"),
    Column("clipped", "uint8", "bit 0: start unknown (trace began mid-slice), bit 1: end unknown (trace ended)"),
))

THREAD_STATE = TableSpec("thread_state", "One row per interval a thread spent in one state.", (
    Column("tid", "uint32", "thread", "tid"),
    Column("start", "int64", "start of the interval", "ns"),
    Column("dur", "int64", "length of the interval", "ns"),
    Column("state", "uint8", "0 running, 1 runnable, 2 waiting, 3 sleeping, 4 dead"),
    Column("cpu", "uint16", "CPU while running; the CPU it last ran on otherwise"),
    Column("blocked_on", "uint64", "while waiting or sleeping: the wait object from sched_wait (0 if unknown)", "addr"),
))

WAKEUP = TableSpec("wakeup", "One row per sched_wake: who woke whom, and how long until the wakee ran.", (
    Column("time", "int64", "time of the wake-up", "ns"),
    Column("waker", "uint32", "thread that woke it", "tid"),
    Column("wakee", "uint32", "thread woken", "tid"),
    Column("cpu", "uint16", "CPU of the waker"),
    Column("target_cpu", "uint16", "run queue that received the wakee"),
    Column("run_cpu", "int32", "CPU it then ran on (-1 if it never ran in the trace)"),
    Column("latency", "int64", "wake-up to running (-1 if it never ran in the trace)", "ns"),
))

THREADS = TableSpec("threads", "One row per thread seen in the trace.", (
    Column("tid", "uint32", "thread id", "tid"),
    Column("name", "object", "thread name"),
    Column("events", "int64", "records it emitted"),
    Column("first", "int64", "time of its first record or slice", "ns"),
    Column("last", "int64", "time of its last record or slice end", "ns"),
    Column("cpu_time", "int64", "total running time in sched_slice", "ns"),
    Column("slices", "int64", "number of sched_slice rows"),
))


def _cpu_bounds(trace: Trace) -> dict[int, tuple[int, int]]:
    """First and last event time per CPU."""
    ev = trace.events
    out = {}
    for c in range(trace.ncpus):
        m = ev.cpu == c
        if m.any():
            first = int(np.argmax(m))
            last = len(m) - 1 - int(np.argmax(m[::-1]))
            out[c] = (int(ev.time[first]), int(ev.time[last]))
    return out


def sched_slice(trace: Trace) -> Table:
    ev = trace.events
    got = model_events(trace, "sched_switch")
    bounds = _cpu_bounds(trace)
    if got is None:
        return SCHED_SLICE.empty()
    idx, a = got
    cpu = ev.cpu[idx]
    order = np.argsort(cpu, kind="stable")  # group by CPU, keeping time order inside
    idx, cpu = idx[order], cpu[order]
    t = ev.time[idx]
    out_tid = ev.tid[idx]
    nxt = a["next"][order]
    state = a["prev_state"][order]
    n = len(idx)
    last_in_cpu = np.ones(n, bool)
    last_in_cpu[:-1] = cpu[1:] != cpu[:-1]
    first_in_cpu = np.ones(n, bool)
    first_in_cpu[1:] = cpu[1:] != cpu[:-1]
    ncpu = max(bounds, default=0) + 1
    cpu_start = np.array([bounds.get(c, (0, 0))[0] for c in range(ncpu)], np.int64)
    cpu_end = np.array([bounds.get(c, (0, 0))[1] for c in range(ncpu)], np.int64)
    # slices that begin at a switch: next thread, until the following switch on that CPU
    end = np.empty(n, np.int64)
    end[:-1] = t[1:]
    end_state = np.zeros(n, np.uint8)
    end_state[:-1] = state[1:]
    end[last_in_cpu] = cpu_end[cpu[last_in_cpu]]
    end_state[last_in_cpu] = RUNNING
    clipped = np.where(last_in_cpu, 2, 0).astype(np.uint8)
    # the slice already running when each CPU's trace begins
    f = np.nonzero(first_in_cpu)[0]
    fcpu = cpu[f]
    cols = {
        "cpu": np.concatenate([fcpu, cpu]),
        "tid": np.concatenate([out_tid[f], nxt]),
        "start": np.concatenate([cpu_start[fcpu], t]),
        "end": np.concatenate([t[f], end]),
        "end_state": np.concatenate([state[f], end_state]),
        "clipped": np.concatenate([np.ones(len(f), np.uint8), clipped]),
    }
    # CPUs with events but no switch at all: one thread ran throughout (if consistent)
    for c, (s, e) in bounds.items():
        if c in set(fcpu.tolist()):
            continue
        tids = np.unique(ev.tid[ev.cpu == c])
        if len(tids) == 1:
            for k, v in (("cpu", c), ("tid", tids[0]), ("start", s), ("end", e), ("end_state", RUNNING),
                         ("clipped", 3)):
                cols[k] = np.append(cols[k], np.array(v).astype(cols[k].dtype))
    order = np.lexsort((cols["cpu"], cols["start"]))
    cols = {k: v[order] for k, v in cols.items()}
    return table(SCHED_SLICE, cpu=cols["cpu"], tid=cols["tid"], start=cols["start"],
                 dur=cols["end"] - cols["start"], end_state=cols["end_state"], clipped=cols["clipped"])


def thread_state(trace: Trace, slices: Table) -> Table:
    """Each thread's timeline of states from its slices, wake-ups and waits."""
    ev = trace.events
    t_end = trace.span_ns[1]
    s_start, s_dur, s_tid, s_cpu = slices["start"], slices["dur"], slices["tid"], slices["cpu"]
    s_stop = s_start + s_dur
    closed = (slices["clipped"] & 2) == 0
    # transitions: (tid, time, state, cpu, priority); priority orders ties: out, wake, in
    parts = [
        (s_tid, s_start, np.full(len(s_tid), RUNNING, np.uint8), s_cpu, np.full(len(s_tid), 2, np.uint8)),
        (s_tid[closed], s_stop[closed], slices["end_state"][closed], s_cpu[closed],
         np.zeros(int(closed.sum()), np.uint8)),
    ]
    if has_events(trace, "sched_wake"):
        widx, wa = model_events(trace, "sched_wake")
        parts.append((wa["tid"], ev.time[widx], np.full(len(widx), RUNNABLE, np.uint8),
                      wa["cpu"].astype(np.uint16), np.ones(len(widx), np.uint8)))
    tid = np.concatenate([p[0] for p in parts]).astype(np.uint32)
    time = np.concatenate([p[1] for p in parts]).astype(np.int64)
    state = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    cpu = np.concatenate([p[3] for p in parts]).astype(np.uint16)
    prio = np.concatenate([p[4] for p in parts])
    is_wake = np.concatenate([np.zeros(len(parts[0][0]) + len(parts[1][0]), bool),
                              np.ones(len(tid) - len(parts[0][0]) - len(parts[1][0]), bool)])
    # one int64 sort key: (thread, time, priority)
    uniq = np.unique(tid)
    tmin = int(time.min()) if len(time) else 0
    span = (int(time.max()) - tmin + 1) * 3 if len(time) else 3
    if len(uniq) * span < 2**62:
        key = np.searchsorted(uniq, tid).astype(np.int64) * span + (time - tmin) * 3 + prio
        order = np.argsort(key)
    else:
        order = np.lexsort((prio, time, tid))
    tid, time, state, cpu, is_wake = tid[order], time[order], state[order], cpu[order], is_wake[order]
    # a wake-up only matters to a thread that was waiting or sleeping; drop the others
    # (repeatedly: dropping one can expose another, e.g. two wakes in a row)
    while len(state):
        prev_state = np.empty(len(state), np.uint8)
        prev_state[0] = RUNNING
        prev_state[1:] = state[:-1]
        new_tid = np.ones(len(tid), bool)
        new_tid[1:] = tid[1:] != tid[:-1]
        useless = is_wake & ~new_tid & (prev_state != WAITING) & (prev_state != SLEEPING)
        if not useless.any():
            break
        keep = ~useless
        tid, time, state, cpu, is_wake = tid[keep], time[keep], state[keep], cpu[keep], is_wake[keep]
    # a runnable interval's CPU is where it will run next; keep the last running CPU otherwise
    new_tid = np.ones(len(tid), bool)
    new_tid[1:] = tid[1:] != tid[:-1]
    last_tid = np.ones(len(tid), bool)
    last_tid[:-1] = new_tid[1:]
    stop = np.empty(len(time), np.int64)
    stop[:-1] = time[1:]
    stop[last_tid] = np.maximum(t_end, time[last_tid])
    # blocked_on: the thread's last sched_wait at or before the moment it stopped running
    blocked = np.zeros(len(tid), np.uint64)
    if has_events(trace, "sched_wait"):
        qidx, qa = model_events(trace, "sched_wait")
        if len(qidx):
            sel = np.nonzero((state == WAITING) | (state == SLEEPING))[0]
            ra, rb = dense_rank(tid[sel], ev.tid[qidx])
            hit = last_match(ra, time[sel], rb, ev.time[qidx])
            ok = hit >= 0
            blocked[sel[ok]] = qa["obj"][hit[ok]]
    keep = stop > time
    keep |= state == DEAD
    return table(THREAD_STATE, tid=tid[keep], start=time[keep], dur=(stop - time)[keep], state=state[keep],
                 cpu=cpu[keep], blocked_on=blocked[keep])


def wakeup(trace: Trace, slices: Table) -> Table:
    ev = trace.events
    got = model_events(trace, "sched_wake")
    if got is None:
        return WAKEUP.empty()
    idx, a = got
    time = ev.time[idx]
    wakee = a["tid"]
    run_cpu = np.full(len(idx), -1, np.int32)
    latency = np.full(len(idx), -1, np.int64)
    if len(idx) and len(slices):
        # slices that start at a real switch-in (not at the trace start)
        real = (slices["clipped"] & 1) == 0
        ra, rb = dense_rank(wakee, slices["tid"][real])
        hit = next_match(ra, time, rb, slices["start"][real])
        ok = hit >= 0
        run_cpu[ok] = slices["cpu"][real][hit[ok]]
        latency[ok] = slices["start"][real][hit[ok]] - time[ok]
    return table(WAKEUP, time=time, waker=ev.tid[idx], wakee=wakee, cpu=ev.cpu[idx],
                 target_cpu=a["cpu"].astype(np.uint16), run_cpu=run_cpu, latency=latency)


def threads(trace: Trace, slices: Table) -> Table:
    ev = trace.events
    named = np.array(sorted(t for t in trace.threads if t), np.uint32)
    all_tids = np.union1d(np.union1d(trace.tids(),
                                     slices["tid"]), named).astype(np.uint32)
    n = len(all_tids)
    big = np.iinfo(np.int64).max
    first = np.full(n, big, np.int64)
    last = np.full(n, -1, np.int64)
    if len(ev.tid):
        pos = np.searchsorted(all_tids, ev.tid) if int(all_tids[-1]) >= 1 << 22 else \
            np.searchsorted(all_tids, np.arange(int(all_tids[-1]) + 1))[ev.tid]  # small ids: a lookup table
        events = np.bincount(pos, minlength=n).astype(np.int64)
        np.minimum.at(first, pos, ev.time)
        np.maximum.at(last, pos, ev.time)
    else:
        events = np.zeros(n, np.int64)
    spos = np.searchsorted(all_tids, slices["tid"])
    cpu_time = np.bincount(spos, weights=slices["dur"], minlength=n).astype(np.int64)
    nslices = np.bincount(spos, minlength=n).astype(np.int64)
    np.minimum.at(first, spos, slices["start"])
    np.maximum.at(last, spos, slices["start"] + slices["dur"])
    first[first == big] = -1
    names = np.array([trace.thread_name(int(t)) for t in all_tids], object)
    return table(THREADS, tid=all_tids, name=names, events=events, first=first, last=last, cpu_time=cpu_time,
                 slices=nslices)
