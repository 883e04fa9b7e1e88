"""Scheduling in Perfetto's kernel vocabulary: ftrace sched_switch and sched_waking events in
per-CPU FtraceEventBundles, and a ProcessTree that names the threads, so Perfetto's trace
processor fills its sched, thread_state and thread tables (and the UI its CPU tracks and
thread states) as it does for a Linux trace.

The events come from the model's tables, so both kernels' traces give the same packets:

- a switch per sched_slice row that begins at a real switch-in: next = the row's thread,
  prev = the previous row's thread on that CPU, prev_state = the previous row's end state;
- a waking per wakeup row, on the waker's CPU, with the run queue it went to (target_cpu).

Most events go in the compact form (FtraceEventBundle.CompactSched, what Perfetto's own
recorder writes): parallel packed arrays, delta-encoded timestamps, thread names interned
per bundle. The compact form leaves out who switched out (the trace processor takes the
previous switch's next thread on the CPU) and who woke (the thread running on the CPU), so an
event goes in the full form (FtraceEvent) where that inference would be wrong: a CPU's first
switch, a switch whose prev is not the previous one's next (a filter took rows out), a switch
at the same time as the previous one on its CPU (the order at equal times is not kept across
the two forms), and a waking whose waker is not the thread the switches say was running.

A bundle whose CPU lost records in its stretch of time says so (lost_events), as Linux's do
when the kernel overwrote events: Perfetto then flags the CPU's data as incomplete.

Thread ids: the guest's own, in one process (pid 1, as in the TrackEvent part of the
export), except the idle threads (idle0, idle1 ...) and thread 0 (code outside any thread),
which become Linux's idle task, pid 0 (`swapper`), so the CPU tracks show idle time as gaps.

Linux prev_state values: runnable (preempted, yielded) 0 `R`; waiting on a wait object 2 `D`
(Linux sleeps uninterruptibly on a kernel mutex); sleeping 1 `S`; dead 16 `X`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from osvtrace.exports import pbwire
from osvtrace.exports.common import Selection
from osvtrace.model import Model
from osvtrace.model.sched import DEAD, RUNNABLE, RUNNING, SLEEPING, WAITING
from osvtrace.reports.sched import idle_tids

PID = 1  # the unikernel's one process (timeline_build.PID)
IDLE_PID = 0
PRIO = 120  # Linux's default nice-0 priority: the guest has no priorities to show
BUNDLE = 1 << 14  # compact switches per bundle (a bundle is one packet; Perfetto's recorder writes a page's worth)
SEQUENCE_ID = 3  # the trusted sequence of the ftrace packets

# our thread states -> Linux prev_state (TASK_* report bits)
PREV_STATE = np.zeros(max(RUNNING, RUNNABLE, WAITING, SLEEPING, DEAD) + 1, np.int64)
PREV_STATE[RUNNABLE] = 0  # R
PREV_STATE[WAITING] = 2  # D
PREV_STATE[SLEEPING] = 1  # S
PREV_STATE[DEAD] = 16  # X

# field numbers (protos/perfetto/trace/ftrace/ftrace_event_bundle.proto, trace_packet.proto)
_PACKET = pbwire.tag(1, 2)  # Trace.packet
_FTRACE_EVENTS = pbwire.tag(1, 2)  # TracePacket.ftrace_events
_SEQ_ID = pbwire.tag(10, 0) + pbwire.varint(SEQUENCE_ID)
_BUNDLE_CPU = pbwire.tag(1, 0)
_COMPACT = pbwire.tag(4, 2)
_LOST = pbwire.tag(3, 0) + pbwire.varint(1)  # lost_events: the kernel dropped records of this CPU
CS_SWITCH_TS, CS_SWITCH_STATE, CS_SWITCH_PID, CS_SWITCH_PRIO, CS_INTERN, CS_SWITCH_COMM = 1, 2, 3, 4, 5, 6
CS_WAKING_TS, CS_WAKING_PID, CS_WAKING_CPU, CS_WAKING_PRIO, CS_WAKING_COMM = 7, 8, 9, 10, 11


@dataclass
class Sched:
    """The scheduler events of a selection, as columns (pids already mapped, see the module doc)."""

    # switches, grouped by CPU, in time order inside each
    s_cpu: np.ndarray
    s_ts: np.ndarray
    s_prev: np.ndarray  # prev pid
    s_state: np.ndarray  # Linux prev_state
    s_next: np.ndarray  # next pid
    s_compact: np.ndarray  # bool: written in the compact form
    # wakings, grouped by the waker's CPU, in time order inside each
    w_cpu: np.ndarray
    w_ts: np.ndarray
    w_waker: np.ndarray
    w_pid: np.ndarray  # the wakee
    w_target: np.ndarray
    w_compact: np.ndarray
    names: list[str]  # thread names (ftrace's comm), indexed by comm_of
    comm_of: dict[int, int]  # pid -> index into names
    lost_cpu: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # records lost: CPU and time
    lost_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # (-1: unknown)

    def counts(self) -> dict[str, int]:
        return {"sched_switch": len(self.s_ts), "sched_waking": len(self.w_ts),
                "full_form": int((~self.s_compact).sum() + (~self.w_compact).sum())}


def pid_map(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """(guest tids, their pids): idle threads and thread 0 become pid 0; others keep their id."""
    th = model.threads["tid"].astype(np.int64)
    pid = th.copy()
    pid[np.isin(th, idle_tids(model).astype(np.int64))] = IDLE_PID
    return th, pid


def to_pids(model: Model, tids: np.ndarray) -> np.ndarray:
    """The export's thread id of each guest thread id (see pid_map)."""
    th, pid = pid_map(model)
    tids = np.asarray(tids, np.int64)
    if not len(th):
        return tids.copy()
    pos = np.minimum(np.searchsorted(th, tids), len(th) - 1)
    return np.where(th[pos] == tids, pid[pos], tids)


def switches_and_wakings(model: Model, sel: Selection, compact: bool = True) -> Sched:
    """The switches and wakings the selection keeps (in its window, on its CPUs, involving its
    threads), each marked compact or full (see the module doc; compact=False: all full, what
    the tests compare the compact form with)."""
    ss = model.sched_slice
    order = np.argsort(ss["cpu"], kind="stable")  # the table is in time order: per CPU, in time order
    cpu, tid, start = ss["cpu"][order].astype(np.int64), ss["tid"][order], ss["start"][order]
    end_state, clipped = ss["end_state"][order], ss["clipped"][order]
    pid = to_pids(model, tid)
    has_prev = np.zeros(len(cpu), bool)
    has_prev[1:] = cpu[1:] == cpu[:-1]
    real = has_prev & ((clipped & 1) == 0)  # a switch-in the trace saw, after another slice on the CPU
    k = np.flatnonzero(real)
    s_cpu, s_ts, s_next = cpu[k], start[k], pid[k]
    s_prev = pid[k - 1]
    s_state = PREV_STATE[np.minimum(end_state[k - 1], len(PREV_STATE) - 1)]
    m = sel.cpu_ok(s_cpu) & sel.points(s_ts)
    if sel.tids is not None:
        m &= sel.tid_ok(tid[k], tid[k - 1])
    s_cpu, s_ts, s_prev, s_state, s_next = s_cpu[m], s_ts[m], s_prev[m], s_state[m], s_next[m]
    # compact where the trace processor infers prev right: the previous switch on the CPU
    # switched this thread in, strictly earlier
    same = np.zeros(len(s_cpu), bool)
    same[1:] = s_cpu[1:] == s_cpu[:-1]
    s_compact = same.copy()
    s_compact[1:] &= (s_prev[1:] == s_next[:-1]) & (s_ts[1:] > s_ts[:-1])

    wk = model.wakeup
    wm = sel.rows(wk)
    w_cpu, w_ts = wk["cpu"][wm].astype(np.int64), wk["time"][wm]
    w_waker, w_pid = to_pids(model, wk["waker"][wm]), to_pids(model, wk["wakee"][wm])
    w_target = wk["target_cpu"][wm].astype(np.int64)
    o = np.argsort(w_cpu, kind="stable")
    w_cpu, w_ts, w_waker, w_pid, w_target = w_cpu[o], w_ts[o], w_waker[o], w_pid[o], w_target[o]
    # who the compact form would say woke it: the next thread of the CPU's last switch before
    lo = int(min(s_ts.min(initial=0), w_ts.min(initial=0)))
    span = int(max(s_ts.max(initial=0), w_ts.max(initial=0))) - lo + 1
    skey = s_cpu * span + (s_ts - lo)
    wkey = w_cpu * span + (w_ts - lo)
    last = np.searchsorted(skey, wkey, side="left") - 1  # the last switch strictly before, in key order
    ok = last >= 0
    ok[ok] &= s_cpu[last[ok]] == w_cpu[ok]
    w_compact = ok.copy()
    w_compact[ok] &= s_next[last[ok]] == w_waker[ok]
    # and no switch at the same time on the CPU (the order at equal times is not kept)
    at = np.searchsorted(skey, wkey, side="left")
    tie = at < len(skey)
    tie[tie] &= skey[at[tie]] == wkey[tie]
    w_compact &= ~tie

    th, pids = pid_map(model)
    names = [model.trace.thread_name(int(t)) for t in th.tolist()]
    comm_of: dict[int, int] = {}
    out_names: list[str] = []
    for t, p, n in zip(th.tolist(), pids.tolist(), names):
        if p == IDLE_PID:
            n = "swapper"
        if p not in comm_of:
            comm_of[p] = len(out_names)
            out_names.append(n)
    for p in np.unique(np.concatenate([s_prev, s_next, w_pid, w_waker])).tolist():
        if p not in comm_of:  # a thread the threads table does not list (damaged data)
            comm_of[p] = len(out_names)
            out_names.append(model.trace.thread_name(int(p)))
    if not compact:
        s_compact[:] = False
        w_compact[:] = False
    ls = model.lost
    lm = sel.rows(ls)
    return Sched(s_cpu, s_ts, s_prev, s_state, s_next, s_compact, w_cpu, w_ts, w_waker, w_pid, w_target, w_compact,
                 out_names, comm_of, ls["cpu"][lm].astype(np.int64), ls["time"][lm].astype(np.int64))


def process_tree(model: Model, pb, title: str) -> bytes:
    """A ProcessTree packet: the unikernel's process and its threads, with their names."""
    trace = pb.Trace()
    p = trace.packet.add()
    p.trusted_packet_sequence_id = SEQUENCE_ID
    tree = p.process_tree
    proc = tree.processes.add(pid=PID, ppid=0)
    proc.cmdline.append(title)
    th, pids = pid_map(model)
    for t, pid in zip(th.tolist(), pids.tolist()):
        if pid != IDLE_PID:
            tree.threads.add(tid=t, tgid=PID, name=model.trace.thread_name(t))
    return trace.SerializeToString()


def _comm_index(pids: np.ndarray, s: Sched) -> np.ndarray:
    keys = np.array(sorted(s.comm_of), np.int64)
    vals = np.array([s.comm_of[k] for k in keys.tolist()], np.int64)
    return vals[np.searchsorted(keys, pids)] if len(pids) else np.empty(0, np.int64)


def packed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of many values at once: (the bytes, each value's end offset in them)."""
    v = np.asarray(values)
    v = v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64, copy=False)
    n = pbwire.varint_len(v).astype(np.int64)
    ends = np.cumsum(n)
    out = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
    starts = ends - n
    for k in range(int(n.max(initial=0))):
        has = n > k
        b = ((v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        b[n[has] > k + 1] |= 0x80
        out[starts[has] + k] = b
    return out, ends


class _Field:
    """One packed repeated field over all rows; slices of rows become length-delimited fields."""

    def __init__(self, number: int, values: np.ndarray):
        self.key = pbwire.tag(number, 2)
        self.bytes, self.ends = packed(values)

    def part(self, a: int, b: int) -> bytes:
        if b <= a:
            return b""
        lo = int(self.ends[a - 1]) if a else 0
        body = self.bytes[lo:int(self.ends[b - 1])].tobytes()
        return self.key + pbwire.varint(len(body)) + body


def _deltas(ts: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """Delta-encoded timestamps: each from the previous, the first of each bundle absolute."""
    d = np.empty(len(ts), np.int64)
    if len(ts):
        d[0] = ts[0]
        d[1:] = ts[1:] - ts[:-1]
        d[firsts] = ts[firsts]
    return d


def _string(field: int, s: str) -> bytes:
    b = s.encode("utf-8", "replace")
    return pbwire.tag(field, 2) + pbwire.varint(len(b)) + b


def bundles(s: Sched, pb) -> list[bytes]:
    """One TracePacket (framed as Trace.packet) per bundle: per CPU, BUNDLE compact switches at a
    time, with the wakings and full-form events of the same stretch of time."""
    out: list[bytes] = []
    sc, wc = np.flatnonzero(s.s_compact), np.flatnonzero(s.w_compact)
    sf, wf = np.flatnonzero(~s.s_compact), np.flatnonzero(~s.w_compact)
    # every event as one sortable key, (cpu, time); rows of each kind are in that order already
    lo = int(min(s.s_ts.min(initial=0), s.w_ts.min(initial=0), s.lost_ts.min(initial=0)))
    span = int(max(s.s_ts.max(initial=0), s.w_ts.max(initial=0), s.lost_ts.max(initial=0))) - lo + 2

    def key(cpu: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return cpu.astype(np.int64) * span + (ts.astype(np.int64) - lo + 1)
    # a bundle starts at each CPU's first event and at every BUNDLE-th compact switch after it
    # (compact switches' times rise strictly on a CPU, so a start is one switch's time)
    cpus = np.unique(np.concatenate([s.s_cpu, s.w_cpu]))
    k_sc = key(s.s_cpu[sc], s.s_ts[sc])
    firsts = np.searchsorted(k_sc, cpus * span)  # each CPU's first compact switch
    cuts = [k_sc[f + BUNDLE:np.searchsorted(k_sc, (c + 1) * span):BUNDLE] for c, f in zip(cpus.tolist(), firsts.tolist())]
    starts = np.sort(np.concatenate([cpus * span] + cuts)) if len(cpus) else np.empty(0, np.int64)
    bundle_cpu = starts // span
    # each event's bundle: the last start at or before it; then each bundle's rows of each kind
    edges = {}
    for name, rows, cpu, ts in (("sc", sc, s.s_cpu, s.s_ts), ("wc", wc, s.w_cpu, s.w_ts),
                                ("sf", sf, s.s_cpu, s.s_ts), ("wf", wf, s.w_cpu, s.w_ts)):
        which = np.searchsorted(starts, key(cpu[rows], ts[rows]), "right") - 1
        cut = np.searchsorted(which, np.arange(len(starts) + 1))
        edges[name] = list(zip(cut[:-1].tolist(), cut[1:].tolist()))
    # lost records: the bundle of their CPU and time says so (a loss at an unknown time: the CPU's first)
    lost = np.zeros(len(starts), bool)
    on = np.isin(s.lost_cpu, cpus)
    lc, lt = s.lost_cpu[on], s.lost_ts[on]
    at = np.searchsorted(starts, np.where(lt >= 0, key(lc, np.maximum(lt, lo)), lc * span), "right") - 1
    lost[at] = True
    plan = bundle_cpu.tolist()
    # the compact columns, encoded once for all rows; bundles take byte ranges of them
    sc_first = np.array([a for a, b in edges["sc"] if b > a], np.int64)
    wc_first = np.array([a for a, b in edges["wc"] if b > a], np.int64)
    s_comm = _comm_index(s.s_next[sc], s)
    w_comm = _comm_index(s.w_pid[wc], s)
    # comm indices are per bundle (a bundle interns its names): remapped below per bundle
    fields_s = [_Field(CS_SWITCH_TS, _deltas(s.s_ts[sc], sc_first)), _Field(CS_SWITCH_STATE, s.s_state[sc]),
                _Field(CS_SWITCH_PID, s.s_next[sc]), _Field(CS_SWITCH_PRIO, np.full(len(sc), PRIO, np.int64))]
    fields_w = [_Field(CS_WAKING_TS, _deltas(s.w_ts[wc], wc_first)), _Field(CS_WAKING_PID, s.w_pid[wc]),
                _Field(CS_WAKING_CPU, s.w_target[wc]), _Field(CS_WAKING_PRIO, np.full(len(wc), PRIO, np.int64))]
    for i, c in enumerate(plan):
        (sa, sb), (wa, wb) = edges["sc"][i], edges["wc"][i]
        (fa, fb), (ga, gb) = edges["sf"][i], edges["wf"][i]
        if sb <= sa and wb <= wa and fb <= fa and gb <= ga and not lost[i]:
            continue
        # the bundle's intern table: the names its compact events use
        used, local = np.unique(np.concatenate([s_comm[sa:sb], w_comm[wa:wb]]), return_inverse=True)
        local = local.reshape(-1)
        cs = b"".join(_string(CS_INTERN, s.names[u]) for u in used.tolist())
        cs += b"".join(f.part(sa, sb) for f in fields_s)
        cs += _Field(CS_SWITCH_COMM, local[:sb - sa]).part(0, sb - sa)
        cs += b"".join(f.part(wa, wb) for f in fields_w)
        cs += _Field(CS_WAKING_COMM, local[sb - sa:]).part(0, wb - wa)
        body = _BUNDLE_CPU + pbwire.varint(c)
        if lost[i]:
            body += _LOST
        body += _full_events(s, pb, sf[fa:fb], wf[ga:gb])
        if cs:
            body += _COMPACT + pbwire.varint(len(cs)) + cs
        packet = _FTRACE_EVENTS + pbwire.varint(len(body)) + body + _SEQ_ID
        out.append(_PACKET + pbwire.varint(len(packet)) + packet)
    return out


def _full_events(s: Sched, pb, sw: np.ndarray, wk: np.ndarray) -> bytes:
    """FtraceEvents (bundle field 2) in the full form, with the protobuf classes: few of them
    (a CPU's first switch; more only for filtered or damaged data)."""
    if not len(sw) and not len(wk):
        return b""
    b = pb.FtraceEventBundle()
    names = s.names
    for i in sw.tolist():
        e = b.event.add(timestamp=int(s.s_ts[i]), pid=int(s.s_prev[i]))
        prev, nxt = int(s.s_prev[i]), int(s.s_next[i])
        e.sched_switch.prev_comm = names[s.comm_of[prev]]
        e.sched_switch.prev_pid = prev
        e.sched_switch.prev_prio = PRIO
        e.sched_switch.prev_state = int(s.s_state[i])
        e.sched_switch.next_comm = names[s.comm_of[nxt]]
        e.sched_switch.next_pid = nxt
        e.sched_switch.next_prio = PRIO
    for i in wk.tolist():
        e = b.event.add(timestamp=int(s.w_ts[i]), pid=int(s.w_waker[i]))
        w = int(s.w_pid[i])
        e.sched_waking.comm = names[s.comm_of[w]]
        e.sched_waking.pid = w
        e.sched_waking.prio = PRIO
        e.sched_waking.success = 1
        e.sched_waking.target_cpu = int(s.w_target[i])
    return b.SerializeToString()
