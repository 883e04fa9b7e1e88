"""critical-path: where a request's time went, from the frame's arrival to its reply.

A packet id follows a request from the driver (net_rx) through classification and its net
channel (push, pop) to the reply (net_tx). The path is cut at those stages, and the stretches
the consumer thread owns (push to pop: the request waits for it; pop to tx: it serves the
request) are cut again by what that thread was doing, from the model's thread_state: running,
runnable (woken or preempted, waiting for a CPU), or blocked on an object (a mutex by its
name: a lock wait inside the request). Each stretch becomes a *segment* with a category:

  receive           rx to push: driver, classification, the channel push (interrupt side)
  queued            push to pop while the consumer ran: it was busy with earlier work
  wake-up           push to pop while the consumer was runnable: woken, waiting for a CPU
  blocked on X      the consumer waited on X (its own channel before the push is not on the path)
  serve             pop to tx while the consumer ran
  preempted         pop to tx while the consumer was runnable
  lock wait X       pop to tx while the consumer waited on mutex X
  (untraced)        no thread_state for the consumer there (its records were not traced or lost)

The report sums segments per category over the packets selected (the time window, --slowest N
of them, or one --packet), with each category's share of the total request time, so "40% of
request latency is lock wait on kv_store::buckets[3].lock" reads directly; --by-packet lists
each selected packet's own path, in order.
"""

from __future__ import annotations

import numpy as np

from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.sched import RUNNABLE, RUNNING
from osvtrace.reports.common import Options, Report
from osvtrace.reports.registry import Opt, register

PACKET_OPT = Opt("--packet", "int", "One packet id: its whole path.", None, "ID", 1, 2**32 - 1)
SLOWEST_OPT = Opt("--slowest", "int", "Only the N slowest answered requests.", None, "N", 1, 10**9)
BY_PACKET_OPT = Opt("--by-packet", "flag", "One row per segment of each selected packet, in order, instead of "
                                          "the sums per category.")


def segments(model: Model, pk: np.ndarray) -> dict[str, np.ndarray]:
    """The path segments of packet_flow rows pk: packet row, start, dur, category code,
    object (a mutex or wait object, 0 when none), ordered by packet then time."""
    f = model.packet_flow
    rx, push, pop, tx = (f[f"{s}_time"][pk] for s in ("rx", "push", "pop", "tx"))
    consumer = f["consumer"][pk]
    rows: list[tuple[np.ndarray, ...]] = []
    # receive: rx to push (the interrupt side; a request seen only from push on has none)
    has = (rx >= 0) & (push >= rx)
    rows.append((pk[has], rx[has], push[has] - rx[has], np.full(int(has.sum()), 0), np.zeros(int(has.sum()), np.uint64)))
    ts = model.thread_state
    order = np.lexsort((ts["start"], ts["tid"]))
    t_tid, t_start, t_dur = ts["tid"][order], ts["start"][order], ts["dur"][order]
    t_state, t_obj = ts["state"][order], ts["blocked_on"][order]
    mutexes = np.unique(model.mutex_hold["mutex"]) if len(model.mutex_hold) else np.empty(0, np.uint64)
    for phase, a, b in ((0, push, pop), (1, pop, np.where(tx >= 0, tx, -1))):
        ok = (a >= 0) & (b >= a) & (consumer > 0)
        idx = np.flatnonzero(ok)
        for tid in np.unique(consumer[idx]).tolist():
            w = idx[consumer[idx] == tid]
            lo_t, hi_t = np.searchsorted(t_tid, tid, "left"), np.searchsorted(t_tid, tid, "right")
            st, du = t_start[lo_t:hi_t], t_dur[lo_t:hi_t]
            wa, wb = a[w], b[w]
            # state rows overlapping [wa, wb): from the last starting at or before wa
            first = np.maximum(np.searchsorted(st, wa, "right") - 1, 0)
            last = np.searchsorted(st, wb, "left")
            n = np.maximum(last - first, 0)
            win = np.repeat(np.arange(len(w)), n)
            k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(first, n)
            s0 = np.maximum(st[k], wa[win]) if len(k) else np.empty(0, np.int64)
            s1 = np.minimum(st[k] + du[k], wb[win]) if len(k) else np.empty(0, np.int64)
            keep = s1 > s0
            win, k, s0, s1 = win[keep], k[keep], s0[keep], s1[keep]
            state, obj = t_state[lo_t:hi_t][k], t_obj[lo_t:hi_t][k]
            if phase == 0:
                # blocked on the packet's own channel: the push has not woken it yet (wake-up)
                # (the wait object is the channel or a member of it: its wake-up queue)
                own = (obj - f["channel"][pk][w][win]).astype(np.int64)
                own = (f["channel"][pk][w][win] != 0) & (own >= 0) & (own < CHANNEL_SPAN)
                cat = np.where(state == RUNNING, 1, np.where((state == RUNNABLE) | own, 2, 3))
            else:
                lock = np.isin(obj, mutexes)
                cat = np.where(state == RUNNING, 4, np.where(state == RUNNABLE, 5, np.where(lock, 6, 3)))
            rows.append((pk[w][win], s0, s1 - s0, cat, np.where(cat >= 3, obj, 0).astype(np.uint64)))
            # what no state row covers: untraced
            covered = np.bincount(win, weights=s1 - s0, minlength=len(w)).astype(np.int64)
            gap = (wb - wa) - covered
            g = gap > 0
            rows.append((pk[w][g], wa[g], gap[g], np.full(int(g.sum()), 7), np.zeros(int(g.sum()), np.uint64)))
        # a consumer we know nothing about: the whole stretch is untraced
        no = (a >= 0) & (b >= a) & (consumer == 0)
        rows.append((pk[no], a[no], b[no] - a[no], np.full(int(no.sum()), 7), np.zeros(int(no.sum()), np.uint64)))
    cols = [np.concatenate([r[i] for r in rows]) for i in range(5)]
    o = np.lexsort((cols[1], cols[0]))
    return {"row": cols[0][o], "start": cols[1][o].astype(np.int64), "dur": cols[2][o].astype(np.int64),
            "cat": cols[3][o].astype(np.int64), "obj": cols[4][o]}


CHANNEL_SPAN = 4096  # a wait object this far past the packet's channel address is part of the channel

CATEGORIES = np.array(["receive", "queued", "wake-up", "blocked on", "serve", "preempted", "lock wait", "(untraced)"],
                      object)


def labels(model: Model, seg: dict[str, np.ndarray]) -> np.ndarray:
    """Each segment's words: its category, and the object it waited on by name."""
    names = model.name_addresses(seg["obj"]) if len(seg["obj"]) else np.empty(0, object)
    return np.array([c if o == 0 else f"{c} {n}" for c, o, n in
                     zip(CATEGORIES[seg["cat"]].tolist(), seg["obj"].tolist(), np.asarray(names).tolist())] or [""],
                    object)[:len(seg["cat"])]


@register("critical-path", "Where request time went: each answered request's path (rx to tx) cut into receive, "
                           "queued, wake-up, serve, preempted, lock wait on X ..., summed per category with shares.",
          options=(PACKET_OPT, SLOWEST_OPT, BY_PACKET_OPT))
def critical_path(model: Model, flt: Filter, opts: Options) -> Report:
    f = model.packet_flow
    answered = (f["rx_time"] >= 0) & (f["tx_time"] >= 0) & ~f["dropped"]
    m = answered.copy()
    if flt.since is not None:
        m &= f["rx_time"] >= flt.since
    if flt.until is not None:
        m &= f["rx_time"] < flt.until
    if flt.cpus:
        m &= np.isin(f["rx_cpu"], np.array(flt.cpus))
    packet = opts.more.get("packet")
    if packet is not None:
        m = f["packet"] == packet
        if not m.any():
            from osvtrace.errors import UsageError

            raise UsageError(f"critical-path: no packet {packet} in the trace")
    pk = np.flatnonzero(m)
    total_lat = f["tx_time"][pk] - f["rx_time"][pk]
    slowest = opts.more.get("slowest")
    if slowest:
        pk = pk[np.argsort(-total_lat, kind="stable")[:slowest]]
        total_lat = f["tx_time"][pk] - f["rx_time"][pk]
    seg = segments(model, pk)
    notes = [f"{len(pk):,} request(s), {int(total_lat.sum()):,} ns of request time in all"
             + (f" (p50 {int(np.percentile(total_lat, 50)):,} ns, max {int(total_lat.max()):,} ns)" if len(pk) else "")]
    label = labels(model, seg)
    if opts.more.get("by_packet"):
        cols = {"packet": f["packet"][seg["row"]], "start": seg["start"], "dur": seg["dur"], "segment": label}
        return Report("Request paths, segment by segment", cols, {"start": "time", "dur": "ns", "segment": "text"},
                      notes)
    keys, inv = np.unique(label, return_inverse=True) if len(label) else (np.empty(0, object), np.empty(0, np.int64))
    total = np.bincount(inv, weights=seg["dur"], minlength=len(keys)).astype(np.int64)
    # packets that had the category, and the per-packet time in it (p50 over those packets)
    pair = inv.astype(np.int64) * (len(f) + 1) + seg["row"]
    up, pinv = np.unique(pair, return_inverse=True)
    per = np.bincount(pinv, weights=seg["dur"]).astype(np.int64)
    pkeys = up // (len(f) + 1)
    packets = np.bincount(pkeys, minlength=len(keys))
    p50 = np.array([int(np.percentile(per[pkeys == i], 50)) if packets[i] else 0 for i in range(len(keys))], np.int64)
    all_time = max(int(total_lat.sum()), 1)
    order = np.argsort(-total, kind="stable")
    cols = {"segment": keys[order], "total": total[order], "share_pct": total[order] * 100.0 / all_time,
            "requests": packets[order], "p50_per_request": p50[order]}
    return Report("Where request time went (rx to tx)", cols,
                  {"segment": "text", "total": "ns", "share_pct": "pct", "p50_per_request": "ns"}, notes)
