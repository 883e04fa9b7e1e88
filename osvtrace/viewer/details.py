"""What the details panel shows for a clicked item: its fields, the records behind it with
all their arguments, and links to the items it is tied to (who woke it, who handed it the
mutex, which packet). Only ever called for one item, so plain Python is fine here."""

from __future__ import annotations

from typing import Any

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Tracepoint
from osvtrace.model import Model
from osvtrace.model.filters import format_duration, format_ns
from osvtrace.model.frames import frame_names
from osvtrace.model.net import STAGES
from osvtrace.model.sched import RUNNABLE, RUNNING, SLEEPING, STATE_NAMES, WAITING
from osvtrace.reports.critical import labels as path_labels
from osvtrace.reports.critical import segments
from osvtrace.viewer.lanes import Lane, Lanes, hexaddr

MAX_EVENTS = 12  # records listed per item
MAX_LINKS = 12


def _text(tp: Tracepoint | None, args: dict[str, Any]) -> str:
    """The record formatted by its tracepoint's format (arguments already readable)."""
    if tp is None:
        return ""
    try:
        return tp.format.format(**args)
    except (KeyError, ValueError, IndexError):
        return " ".join(f"{k}={v}" for k, v in args.items())


def _state(v: int) -> str:
    return STATE_NAMES.get(int(v), str(int(v)))


class Details:
    def __init__(self, model: Model, lanes: Lanes):
        self.model = model
        self.trace = model.trace
        self.lanes = lanes

    # ------------------------------------------------------------ helpers

    def thread(self, tid: int) -> str:
        return f"{self.trace.thread_name(int(tid))} [{int(tid)}]"

    def named(self, addr: int) -> str:
        """A data address as shown: `slots[1].m (0x1d3b40)`, or `0x...` (the model names it)."""
        return str(self.model.name_addresses(np.array([addr], np.uint64))[0])

    def _arg_values(self, tp: Tracepoint, rows: np.ndarray) -> list[list[Any]]:
        """JSON-ready argument values of the records at `rows`, one list per field."""
        t = self.trace
        out = []
        for f in tp.fields:
            v = t.field_values(f, rows)
            if f.type == "str":
                vals = [x.decode("utf-8", "replace") for x in v.tolist()]
            elif f.type == "bytes":
                vals = [bytes(x).hex() for x in v]
            elif f.type == "ptr":
                vals = [hexaddr(x) for x in v.tolist()]
            elif f.enum:
                vals = [t.catalog.enum_name(f.enum, x) for x in v.tolist()]
            elif f.type == "tid":
                vals = [self.thread(x) for x in v.tolist()]
            else:
                vals = [int(x) for x in v.tolist()]
            out.append(vals)
        return out

    def _event_dicts(self, idx: np.ndarray) -> dict[int, dict[str, Any]]:
        """Records as dicts, arguments read per tracepoint in bulk."""
        t = self.trace
        ev = t.events
        out: dict[int, dict[str, Any]] = {}
        tps = ev.tp[idx]
        for tp_id in np.unique(tps).tolist():
            sel = idx[tps == tp_id]
            tp = t.catalog.by_id.get(tp_id)
            cols = self._arg_values(tp, ev.row[sel]) if tp is not None else []
            names = [f.name for f in tp.fields] if tp is not None else []
            for k, (i, time, cpu, tid) in enumerate(zip(sel.tolist(), ev.time[sel].tolist(), ev.cpu[sel].tolist(),
                                                        ev.tid[sel].tolist())):
                args = {n: c[k] for n, c in zip(names, cols)}
                out[i] = {"i": i, "time": time, "time_text": format_ns(time), "cpu": cpu, "thread": self.thread(tid),
                          "tracepoint": tp.name if tp else str(tp_id), "args": args, "text": _text(tp, args)}
        return out

    def prefetch(self) -> None:
        """Every record's dict now, in bulk (the static page asks for nearly all of them)."""
        self._events = self._event_dicts(np.arange(len(self.trace.events)))

    def event(self, i: int) -> dict[str, Any]:
        """One record with all its arguments (JSON-ready)."""
        cached = getattr(self, "_events", None)
        if cached is not None:
            return cached[int(i)]
        return self._event_dicts(np.array([int(i)]))[int(i)]

    def events_at(self, time: int, *, cpu: int | None = None, tid: int | None = None,
                  tps: tuple[str, ...] = ()) -> list[int]:
        """Indices of the records at exactly `time` (on a CPU, of a thread, of some tracepoints)."""
        ev = self.trace.events
        a = int(np.searchsorted(ev.time, time, "left"))
        b = int(np.searchsorted(ev.time, time, "right"))
        ids = {self.trace.catalog.by_name[n].id for n in tps if n in self.trace.catalog.by_name}
        out = []
        for i, c, th, tp in zip(range(a, b), ev.cpu[a:b].tolist(), ev.tid[a:b].tolist(), ev.tp[a:b].tolist()):
            if (cpu is None or c == cpu) and (tid is None or th == tid) and (not tps or tp in ids):
                out.append(i)
                if len(out) == MAX_EVENTS:
                    break
        return out

    def stack(self, i: int) -> dict[str, Any] | None:
        """The symbolized backtrace of record i, innermost first: each frame's function and
        file:line with its raw return address kept beside it, and why the walk ended. None when
        the record carries no stack."""
        idx = np.array([int(i)], np.int64)
        bt = self.trace.backtraces(idx)
        row = bt[0] if bt.shape[1] else np.zeros(0, np.uint64)
        zero = np.flatnonzero(row == 0)
        frames = row[:zero[0]] if len(zero) else row  # a 0 ends a stack
        if not len(frames):
            return None
        names = frame_names(self.trace, frames)
        k = names.index(frames)
        end = int(self.trace.backtrace_ends(idx)[0])
        return {"frames": [{"function": str(names.function[j]), "source": str(names.source[j]), "addr": hexaddr(a)}
                           for j, a in zip(k.tolist(), frames.tolist())],
                "end": layout.STACK_END_NAMES.get(end, "unmarked")}  # unmarked: the file does not say (OSv's)

    def link(self, label: str, lane: str, t0: int, t1: int | None = None) -> dict[str, Any]:
        return {"label": label, "lane": lane, "t0": int(t0), "t1": int(t0 if t1 is None else t1)}

    # ------------------------------------------------------------ items

    def item(self, lane: Lane, row: int) -> dict[str, Any]:
        fn = getattr(self, f"_{lane.kind}")
        d = fn(lane, int(row))
        d.setdefault("events", [])
        d["events"] = [self.event(i) for i in d["events"]]
        d.update(lane=lane.id, row=int(row), kind=lane.kind)
        return d

    def _span(self, start: int, dur: int) -> list[list[str]]:
        return [["start", format_ns(start) + " s"], ["end", format_ns(start + dur) + " s"],
                ["duration", format_duration(dur)]]

    def _cpu(self, lane: Lane, r: int) -> dict[str, Any]:
        s = self.model.sched_slice
        tid, cpu, start, dur = int(s["tid"][r]), int(s["cpu"][r]), int(s["start"][r]), int(s["dur"][r])
        clipped = int(s["clipped"][r])
        fields = [["thread", self.thread(tid)], ["cpu", str(cpu)], *self._span(start, dur),
                  ["then", "still running (trace ended)" if clipped & 2 else _state(s["end_state"][r])]]
        if clipped & 1:
            fields.append(["note", "began before the trace started"])
        links = [self.link(f"{self.thread(tid)}: its states", f"thread:{tid}", start, start + dur)]
        wk = self.model.wakeup
        hit = np.nonzero((wk["wakee"] == tid) & (wk["latency"] >= 0) & (wk["time"] + wk["latency"] == start))[0]
        for k in hit[:1].tolist():
            links.insert(0, self.link(f"woken by {self.thread(wk['waker'][k])} "
                                      f"({format_duration(int(wk['latency'][k]))} before)",
                                      f"thread:{int(wk['waker'][k])}", int(wk["time"][k])))
            fields.append(["woken by", self.thread(int(wk["waker"][k]))])
            fields.append(["wake-up latency", format_duration(int(wk["latency"][k]))])
        ev = self.events_at(start, cpu=cpu, tps=("sched_switch",)) + \
            self.events_at(start + dur, cpu=cpu, tps=("sched_switch",))
        return {"title": f"{self.trace.thread_name(tid)} running on CPU {cpu}", "fields": fields, "events": ev,
                "links": links, "t0": start, "t1": start + dur}

    def _thread(self, lane: Lane, r: int) -> dict[str, Any]:
        ts = self.model.thread_state
        tid, start, dur = int(ts["tid"][r]), int(ts["start"][r]), int(ts["dur"][r])
        state, cpu, obj = int(ts["state"][r]), int(ts["cpu"][r]), int(ts["blocked_on"][r])
        fields = [["thread", self.thread(tid)], ["state", _state(state)], *self._span(start, dur),
                  ["cpu", str(cpu) + ("" if state == RUNNING else " (last or next)")]]
        links: list[dict[str, Any]] = []
        if state == RUNNING:
            links.append(self.link(f"slice on CPU {cpu}", f"cpu:{cpu}", start, start + dur))
        if state == RUNNABLE:
            wk = self.model.wakeup
            hit = np.nonzero((wk["wakee"] == tid) & (wk["time"] == start))[0]
            for k in hit[:1].tolist():
                fields.append(["woken by", self.thread(int(wk["waker"][k]))])
                links.append(self.link(f"woken by {self.thread(int(wk['waker'][k]))}",
                                       f"thread:{int(wk['waker'][k])}", start))
        if obj:
            fields.append(["blocked on", self.named(obj)])
            hx = hexaddr(obj)
            if f"wait:{hx}" in self.lanes.by_id:
                links.append(self.link(f"mutex {self.named(obj)}: waits", f"wait:{hx}", start, start + dur))
                w = self.model.mutex_wait
                hit = np.nonzero((w["tid"] == tid) & (w["mutex"] == obj) & (w["start"] <= start)
                                 & (w["start"] + w["dur"] >= start))[0]
                for k in hit[:1].tolist():
                    if w["handed_by"][k]:
                        by = int(w["handed_by"][k])
                        fields.append(["mutex handed over by", self.thread(by)])
                        end = int(w["start"][k] + w["dur"][k])
                        links.append(self.link(f"mutex handed over by {self.thread(by)}", f"thread:{by}", end))
        if state == RUNNING:  # the switches in and out, written by the threads before and after
            ev = self.events_at(start, cpu=cpu, tps=("sched_switch",)) + \
                self.events_at(start + dur, cpu=cpu, tps=("sched_switch",))
        elif state == RUNNABLE:
            ev = self.events_at(start, tps=("sched_wake",))
        else:
            ev = self.events_at(start, tid=tid)
        d = {"title": f"{self.trace.thread_name(tid)}: {_state(state)}", "fields": fields, "events": ev,
             "links": links, "t0": start, "t1": start + dur}
        if state in (WAITING, SLEEPING):  # a wait: the stack of the record that began it, where it has one
            d["stack"] = next((st for st in map(self.stack, ev) if st is not None), None)
            d["stack_of"] = "the thread, where it began to wait"
        return d

    def _hold(self, lane: Lane, r: int) -> dict[str, Any]:
        h = self.model.mutex_hold
        mx, tid, start, dur = int(h["mutex"][r]), int(h["tid"][r]), int(h["start"][r]), int(h["dur"][r])
        hx = hexaddr(mx)
        fields = [["mutex", self.named(mx)], ["owner", self.thread(tid)], *self._span(start, dur),
                  ["contended", "yes (acquired after waiting)" if h["contended"][r] else "no"],
                  ["unlocked in trace", "yes" if h["complete"][r] else "no"]]
        links = [self.link(f"{self.thread(tid)}: its states", f"thread:{tid}", start, start + dur)]
        ho = self.model.handoff
        hit = np.nonzero((ho["mutex"] == mx) & (ho["to_tid"] == tid) & (ho["time"] <= start))[0]
        if len(hit) and h["contended"][r]:
            k = int(hit[np.argmax(ho["time"][hit])])
            by = int(ho["from_tid"][k])
            fields.append(["handed over by", self.thread(by)])
            links.insert(0, self.link(f"handed over by {self.thread(by)}", f"thread:{by}", int(ho["time"][k])))
        w = self.model.mutex_wait
        waiters = np.nonzero((w["mutex"] == mx) & (w["start"] < start + dur) & (w["start"] + w["dur"] > start))[0]
        if len(waiters):
            fields.append(["waiters meanwhile", str(len(waiters))])
        for k in waiters[:MAX_LINKS // 2].tolist():
            links.append(self.link(f"waiting: {self.thread(int(w['tid'][k]))}", f"wait:{hx}", int(w["start"][k]),
                                   int(w["start"][k] + w["dur"][k])))
        lock_tps = ("mutex_lock", "mutex_lock_wake", "mutex_try_lock")
        ev = self.events_at(start, tid=tid, tps=lock_tps) + \
            self.events_at(start + dur, tid=tid, tps=("mutex_unlock", "mutex_handoff"))
        return {"title": f"mutex {self.named(mx)} held by {self.trace.thread_name(tid)}", "fields": fields, "events": ev,
                "links": links, "t0": start, "t1": start + dur, "stack": self.stack(int(h["event"][r])),
                "stack_of": "the holder, where it took the mutex"}

    def _wait(self, lane: Lane, r: int) -> dict[str, Any]:
        w = self.model.mutex_wait
        mx, tid, start, dur = int(w["mutex"][r]), int(w["tid"][r]), int(w["start"][r]), int(w["dur"][r])
        hx = hexaddr(mx)
        by = int(w["handed_by"][r])
        fields = [["mutex", self.named(mx)], ["waiter", self.thread(tid)], *self._span(start, dur),
                  ["handed over by", self.thread(by) if by else "-"],
                  ["ended in trace", "yes" if w["complete"][r] else "no"]]
        links = [self.link(f"{self.thread(tid)}: its states", f"thread:{tid}", start, start + dur)]
        if by:
            links.insert(0, self.link(f"handed over by {self.thread(by)}", f"thread:{by}", start + dur))
            links.append(self.link("the hold that followed", f"hold:{hx}", start + dur))
        ev = self.events_at(start, tid=tid, tps=("mutex_lock_wait",)) + \
            self.events_at(start + dur, tid=tid, tps=("mutex_lock_wake",))
        return {"title": f"{self.trace.thread_name(tid)} waiting for mutex {self.named(mx)}", "fields": fields,
                "events": ev, "links": links, "t0": start, "t1": start + dur, "stack": self.stack(int(w["event"][r])),
                "stack_of": "the waiter, where it began to wait"}

    def _chan(self, lane: Lane, r: int) -> dict[str, Any]:
        d = self._packet(r, lane.id)
        p = self.model.packet_flow
        push, pop = int(p["push_time"][r]), int(p["pop_time"][r])
        d["t0"], d["t1"] = push, pop if pop >= 0 else push  # the item on this lane: its time in the channel
        return d

    def _packet(self, r: int, lane_id: str | None = None) -> dict[str, Any]:
        p = self.model.packet_flow
        pk = int(p["packet"][r])
        fields = [["packet", str(pk)], ["length", str(int(p["len"][r]))],
                  ["channel", hexaddr(int(p["channel"][r])) if p["channel"][r] else "-"],
                  ["consumer", self.thread(int(p["consumer"][r])) if p["consumer"][r] else "-"],
                  ["cpu hops", str(int(p["cpu_hops"][r]))], ["dropped", "yes" if p["dropped"][r] else "no"],
                  ["latency", format_duration(int(p["latency"][r])) if p["latency"][r] >= 0 else "-"]]
        links, ev = [], []
        names = {"rx": "net_rx", "classify": "net_classify", "push": "net_channel_push", "pop": "net_channel_pop",
                 "tx": "net_tx"}
        for s in STAGES:
            t, c = int(p[f"{s}_time"][r]), int(p[f"{s}_cpu"][r])
            if t < 0:
                continue
            fields.append([s, f"{format_ns(t)} s on CPU {c}"])
            links.append(self.link(f"{s} on CPU {c}", f"cpu:{c}", t))
            ev += self.events_at(t, cpu=c, tps=(names[s],))
        t0 = min((int(p[f"{s}_time"][r]) for s in STAGES if p[f"{s}_time"][r] >= 0), default=0)
        t1 = max((int(p[f"{s}_time"][r]) for s in STAGES), default=0)
        if p["rx_time"][r] >= 0 and p["tx_time"][r] >= 0:
            # its critical path (report critical-path): each stretch, its share, a link to its lane
            seg = segments(self.model, np.array([r]))
            total = max(int(p["tx_time"][r] - p["rx_time"][r]), 1)
            for (s0, du, cat), text in zip(zip(seg["start"].tolist(), seg["dur"].tolist(), seg["cat"].tolist()),
                                           path_labels(self.model, seg).tolist()):
                fields.append([f"path: {text}", f"{format_duration(du)} ({du * 100 / total:.0f}%)"])
                lane = f"cpu:{int(p['rx_cpu'][r])}" if cat == 0 else f"thread:{int(p['consumer'][r])}"
                links.append(self.link(f"{text} ({format_duration(du)})", lane, s0, s0 + du))
        return {"title": f"packet {pk}", "fields": fields, "events": ev, "links": links, "t0": t0, "t1": t1}

    def _tp(self, lane: Lane, i: int) -> dict[str, Any]:
        e = self.event(i)
        t = e["time"]
        fields = [["tracepoint", e["tracepoint"]], ["time", e["time_text"]], ["cpu", str(e["cpu"])],
                  ["thread", e["thread"]]] + [[k, str(v)] for k, v in e["args"].items()]
        links = [self.link(f"CPU {e['cpu']}", f"cpu:{e['cpu']}", t)]
        tp = self.trace.catalog.by_id[int(self.trace.events.tp[i])]
        names = {f.name for f in tp.fields}
        row = self.trace.events.row[i:i + 1]
        if "mutex" in names:
            mx = hexaddr(int(self.trace.field_values(tp.field("mutex"), row)[0]))
            if f"hold:{mx}" in self.lanes.by_id:
                links.append(self.link(f"mutex {mx}", f"hold:{mx}", t))
        for arg in ("tid", "next", "to_tid", "from_tid"):
            if arg in names and tp.field(arg).type == "tid":
                tid = int(self.trace.field_values(tp.field(arg), row)[0])
                links.append(self.link(f"{arg}: {self.thread(tid)}", f"thread:{tid}", t))
        if "packet" in names and len(self.model.packet_flow):
            pk = int(self.trace.field_values(tp.field("packet"), row)[0])
            p = self.model.packet_flow["packet"]
            k = int(np.searchsorted(p, pk))
            if k < len(p) and p[k] == pk:
                pf = self.model.packet_flow
                ch = int(pf["channel"][k])
                if ch and f"chan:{hexaddr(ch)}" in self.lanes.by_id and pf["push_time"][k] >= 0:
                    end = int(pf["pop_time"][k]) if pf["pop_time"][k] >= 0 else int(pf["push_time"][k])
                    links.append(self.link(f"packet {pk} in channel {hexaddr(ch)}", f"chan:{hexaddr(ch)}",
                                           int(pf["push_time"][k]), end))
                else:
                    links.append(self.link(f"packet {pk}", f"cpu:{e['cpu']}", t))
        return {"title": f"{e['tracepoint']} on CPU {e['cpu']}", "fields": fields, "events": [i], "links": links,
                "t0": t, "t1": t, "stack": self.stack(i), "stack_of": "the record"}

    # ------------------------------------------------------------ arrows

    def arrow(self, kind: str, row: int) -> dict[str, Any]:
        if kind == "wake":
            wk = self.model.wakeup
            t, lat = int(wk["time"][row]), int(wk["latency"][row])
            waker, wakee = int(wk["waker"][row]), int(wk["wakee"][row])
            fields = [["waker", self.thread(waker)], ["wakee", self.thread(wakee)], ["time", format_ns(t) + " s"],
                      ["cpu", str(int(wk["cpu"][row]))], ["run queue", f"CPU {int(wk['target_cpu'][row])}"],
                      ["ran on", f"CPU {int(wk['run_cpu'][row])}" if wk["run_cpu"][row] >= 0 else "not in trace"],
                      ["latency", format_duration(lat) if lat >= 0 else "-"]]
            links = [self.link(f"waker {self.thread(waker)}", f"thread:{waker}", t),
                     self.link(f"wakee {self.thread(wakee)}", f"thread:{wakee}", t, t + max(lat, 0))]
            d = {"title": f"wake-up: {self.trace.thread_name(waker)} → {self.trace.thread_name(wakee)}",
                 "fields": fields, "events": self.events_at(t, tid=waker, tps=("sched_wake",)), "links": links,
                 "t0": t, "t1": t + max(lat, 0)}
        elif kind == "handoff":
            ho = self.model.handoff
            t, lat = int(ho["time"][row]), int(ho["latency"][row])
            a, b, mx = int(ho["from_tid"][row]), int(ho["to_tid"][row]), hexaddr(int(ho["mutex"][row]))
            fields = [["mutex", mx], ["from", self.thread(a)], ["to", self.thread(b)], ["time", format_ns(t) + " s"],
                      ["cpu", str(int(ho["cpu"][row]))],
                      ["woke on", f"CPU {int(ho['wake_cpu'][row])}" if ho["wake_cpu"][row] >= 0 else "not in trace"],
                      ["latency", format_duration(lat) if lat >= 0 else "-"]]
            links = [self.link(f"from {self.thread(a)}", f"thread:{a}", t),
                     self.link(f"to {self.thread(b)}", f"thread:{b}", t + max(lat, 0)),
                     self.link(f"mutex {mx}", f"hold:{mx}", t)]
            d = {"title": f"hand-off of {mx}: {self.trace.thread_name(a)} → {self.trace.thread_name(b)}",
                 "fields": fields, "events": self.events_at(t, tid=a, tps=("mutex_handoff",)), "links": links,
                 "t0": t, "t1": t + max(lat, 0)}
        else:
            d = self._packet(row)
        d["events"] = [self.event(i) for i in d["events"]]
        d.update(kind=kind, row=int(row))
        return d
