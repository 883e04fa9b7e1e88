"""The model's tracepoints, whichever kernel recorded the trace.

The model is written against osvtrace's own tracepoints (tracepoints/*.toml). A trace of our
kernel has them as they are; another kernel's module (osvtrace.kernels.osv) declares how its
records make them, as rules (osvtrace.kernels.base). This module applies those rules, column
by column: each model tracepoint's events are (event indices, argument columns by our names),
computed once per trace.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from osvtrace import kernels
from osvtrace.format.base import id_mask
from osvtrace.format.trace import Trace
from osvtrace.kernels.base import From, Kernel, Pairs, Rule
from osvtrace.model.search import dense_rank, last_match

Events = tuple[np.ndarray, dict[str, np.ndarray]]

_cache: "weakref.WeakKeyDictionary[Trace, dict[str, Events | None]]" = weakref.WeakKeyDictionary()


def kernel_of(trace: Trace) -> Kernel:
    """The kernel that recorded a trace (the file says; an .osvt is ours)."""
    return kernels.get(getattr(trace, "kernel", "osvtrace"))


def model_events(trace: Trace, name: str) -> Events | None:
    """(event indices, argument columns) of the model tracepoint `name` in this trace, in time
    order; None when the trace has no such events at all (not recorded, or not enabled)."""
    per = _cache.setdefault(trace, {})
    if name not in per:
        rule = kernel_of(trace).model.get(name)
        if rule is None:
            per[name] = trace.args(name) if name in trace.catalog.by_name else None
        else:
            per[name] = _Mapper(trace).apply(rule)
    return per[name]


def has_events(trace: Trace, name: str) -> bool:
    return model_events(trace, name) is not None


class _Mapper:
    """Applies one kernel's rules to one trace."""

    def __init__(self, trace: Trace):
        self.t = trace
        self.ev = trace.events

    # ------------------------------------------------------------ the trace's own records

    def ids(self, names: Iterable[str]) -> dict[int, str]:
        """Tracepoint id -> name of every id carrying one of these names (one name may have several)."""
        want = set(names)
        return {tp.id: tp.name for tp in self.t.catalog.tracepoints if tp.name in want}

    def records(self, names: Iterable[str]) -> np.ndarray:
        """Event indices of these tracepoints' records, in time order."""
        ids = self.ids(names)
        if not ids:
            return np.empty(0, np.int64)
        return np.nonzero(id_mask(self.ev.tp, list(ids)))[0]

    def arg(self, idx: np.ndarray, name: str) -> np.ndarray:
        """Argument `name` of the records idx (of one or several tracepoints that all have it)."""
        tps = self.ev.tp[idx]
        out = None
        for tp in self.t.catalog.tracepoints:
            sel = tps == tp.id
            if not sel.any():
                continue
            f = next((f for f in tp.fields if f.name == name), None)
            if f is None:
                raise KeyError(f"{tp.name} has no argument {name}")
            v = self.t.field_values(f, self.ev.row[idx[sel]])
            if out is None:
                out = np.zeros((len(idx),) + v.shape[1:], np.uint64 if f.type == "ptr" else v.dtype)
            elif v.ndim == 2 and v.shape[1] > out.shape[1]:  # a blob wider for another id of the name
                out = np.pad(out, ((0, 0), (0, v.shape[1] - out.shape[1])))
            if v.ndim == 2 and v.shape[1] < out.shape[1]:
                v = np.pad(v, ((0, 0), (0, out.shape[1] - v.shape[1])))
            out[sel] = v
        return out if out is not None else np.zeros(len(idx), np.uint64)

    # ------------------------------------------------------------ threads by pointer

    def tid_of(self, ptr: np.ndarray) -> np.ndarray:
        """Thread ids of thread pointers: the trace's own where the thread recorded anything,
        else an id above them, the same for a pointer wherever it appears (null stays 0)."""
        ptrs, tids = self.pointer_table()
        ptr = ptr.astype(np.uint64)
        pos = np.minimum(np.searchsorted(ptrs, ptr), len(ptrs) - 1)
        out = tids[pos]
        out[ptr == 0] = 0
        return out

    def pointer_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(every thread pointer the trace mentions, sorted; its thread id). Threads that
        recorded something keep their ids; pointers only seen as arguments (a thread whose
        records were all overwritten) are numbered after them in address order."""
        if self.t not in _pointers:
            own = getattr(self.t, "thread_pointers", dict)()
            known = np.array(list(own.values()), np.uint64)
            ktids = np.array(list(own.keys()), np.uint32)
            seen = [known]
            for rule in kernel_of(self.t).model.values():
                for r in rule.args.values():
                    if isinstance(rule, From) and r[0] in ("thread", "last_cpu"):
                        seen.append(self.arg(self.records(rule.sources), r[1]).astype(np.uint64))
            allp = np.unique(np.concatenate(seen + [np.zeros(1, np.uint64)]))
            order = np.argsort(known)
            known, ktids = known[order], ktids[order]
            pos = np.minimum(np.searchsorted(known, allp), max(len(known) - 1, 0))
            hit = (known[pos] == allp) if len(known) else np.zeros(len(allp), bool)
            tids = np.zeros(len(allp), np.uint32)
            tids[hit] = ktids[pos[hit]]
            base = int(ktids.max()) + 1 if len(ktids) else 1
            tids[~hit] = base + np.arange(int((~hit).sum()), dtype=np.uint32)
            tids[allp == 0] = 0
            _pointers[self.t] = (allp, tids)
        return _pointers[self.t]

    # ------------------------------------------------------------ rules

    def apply(self, rule: From | Pairs) -> Events | None:
        if isinstance(rule, Pairs):
            return self.pairs(rule)
        if not self.ids(rule.sources):
            return None
        idx = self.records(rule.sources)
        return idx, {name: self.value(r, idx) for name, r in rule.args.items()}

    def value(self, r: Rule, idx: np.ndarray) -> np.ndarray:
        kind = r[0]
        if kind == "arg":
            return self.arg(idx, r[1])
        if kind == "thread":
            return self.tid_of(self.arg(idx, r[1]))
        if kind == "const":
            return np.full(len(idx), r[1], np.int64)
        if kind == "per_source":
            names = self.ids(r[1])
            out = np.zeros(len(idx), np.int64)
            for tp, name in names.items():
                out[self.ev.tp[idx] == tp] = r[1][name]
            return out
        if kind == "cpu":
            return self.ev.cpu[idx].astype(np.uint16)
        if kind == "left_as":
            return self.left_as(idx, r[1], r[2])
        if kind == "last_cpu":
            return self.last_cpu(idx, self.tid_of(self.arg(idx, r[1])))
        if kind == "waits_on":
            return self.waits_on(idx, r[1], r[2], r[3])
        if kind == "ethernet":
            return self.ethernet(idx, *r[1:])
        if kind == "ethernet_len":
            proto, length = self.arg(idx, r[1]), self.arg(idx, r[2]).astype(np.int64)
            return np.where(proto == r[3], length, length + 14).astype(np.uint16)
        raise ValueError(f"unknown rule {r!r}")

    def ethernet(self, idx: np.ndarray, proto_arg: str, data_arg: str, len_arg: str, ethertypes: dict[int, int],
                 ether: int) -> np.ndarray:
        """Frames of captured packets: as they are when already Ethernet, else behind a 14-byte
        header (zero MACs, the protocol's ethertype), zero-padded to one width."""
        proto = self.arg(idx, proto_arg).astype(np.int64)
        data = self.arg(idx, data_arg)
        if data.ndim != 2:
            data = data.reshape(len(idx), -1)
        out = np.zeros((len(idx), data.shape[1] + 14), np.uint8)
        eth = proto == ether
        out[eth, :data.shape[1]] = data[eth]
        other = ~eth
        types = np.zeros(len(idx), np.int64)
        for p, t in ethertypes.items():
            types[proto == p] = t
        out[other, 12] = types[other] >> 8
        out[other, 13] = types[other] & 0xFF
        out[other, 14:] = data[other]
        return out

    def left_as(self, idx: np.ndarray, runnable: tuple[str, ...], waiting: tuple[str, ...]) -> np.ndarray:
        """Per switch: 1 (runnable) if the outgoing thread's last record among `runnable` and
        `waiting` was a `runnable` one, else 2 (waiting)."""
        marks = self.records((*runnable, *waiting))
        run_ids = np.fromiter(self.ids(runnable), self.ev.tp.dtype)
        ra, rb = dense_rank(self.ev.tid[idx], self.ev.tid[marks])
        hit = last_match(ra, self.ev.time[idx], rb, self.ev.time[marks])
        out = np.full(len(idx), 2, np.uint8)
        ok = hit >= 0
        out[ok] = np.where(np.isin(self.ev.tp[marks[hit[ok]]], run_ids), 1, 2)
        return out

    def last_cpu(self, idx: np.ndarray, tid: np.ndarray) -> np.ndarray:
        """The CPU each thread last switched in on before these records (else the record's CPU)."""
        switches = model_events(self.t, "sched_switch")  # computed once per trace, shared with the model
        sw, nxt = (switches[0], switches[1]["next"]) if switches else (np.empty(0, np.int64), np.empty(0, np.uint32))
        ra, rb = dense_rank(tid, nxt)
        hit = last_match(ra, self.ev.time[idx], rb, self.ev.time[sw])
        out = self.ev.cpu[idx].astype(np.uint16)
        ok = hit >= 0
        out[ok] = self.ev.cpu[sw[hit[ok]]]
        return out

    def waits_on(self, idx: np.ndarray, objs: tuple[str, ...], arg: str, ret: str) -> np.ndarray:
        """Argument `arg` of each thread's last `objs` record, if after its last `ret` record."""
        o = self.records(objs)
        out = np.zeros(len(idx), np.uint64)
        if not len(o):
            return out
        r = self.records((ret,))
        tid = self.ev.tid[idx]
        ra, rb, rc = dense_rank(tid, self.ev.tid[o], self.ev.tid[r])
        t = self.ev.time[idx]
        ho = last_match(ra, t, rb, self.ev.time[o])
        hr = last_match(ra, t, rc, self.ev.time[r])
        o_time = np.where(ho >= 0, self.ev.time[o[np.maximum(ho, 0)]], -1)
        r_time = np.where(hr >= 0, self.ev.time[r[np.maximum(hr, 0)]] if len(r) else -1, -1)
        ok = (ho >= 0) & (o_time >= r_time)
        out[ok] = self.arg(o[ho[ok]], arg)
        return out

    def pairs(self, rule: Pairs) -> Events | None:
        if not self.ids(rule.first) or not self.ids(rule.then):
            return None
        f, s = self.records(rule.first), self.records(rule.then)
        fk, sk = self.arg(f, rule.key), self.arg(s, rule.key)
        ra, rb = dense_rank(sk, fk)
        hit = last_match(ra, self.ev.time[s], rb, self.ev.time[f])
        ok = hit >= 0
        ok[ok] &= self.ev.tid[f[hit[ok]]] != self.ev.tid[s[ok]]
        s, hit = s[ok], hit[ok]
        # one event per `first` record: a record can precede two `then`s when one's own was lost
        first_idx, keep = np.unique(f[hit], return_index=True)
        s, hit = s[keep], hit[keep]
        cols: dict[str, np.ndarray] = {}
        for name, r in rule.args.items():
            if r[0] == "first_tid":
                cols[name] = self.ev.tid[first_idx]
            elif r[0] == "then_tid":
                cols[name] = self.ev.tid[s]
            else:
                cols[name] = self.value(r, first_idx)
        return first_idx, cols


_pointers: "weakref.WeakKeyDictionary[Trace, tuple[np.ndarray, np.ndarray]]" = weakref.WeakKeyDictionary()
