"""The live screen (`osvtrace shell --live SOURCE`): a top-like view refreshed as events arrive.

:class:`TopStats` folds batches of events into rates over a sliding window of trace
time (events/s by tracepoint, CPU load, hottest mutexes) and loss counts; it is plain
data and columns, tested without a terminal. :func:`run` shows it full-screen with
prompt_toolkit and polls the source in a worker thread, so the screen stays responsive.
"""

from __future__ import annotations

import asyncio
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from osvtrace.filters import format_duration
from osvtrace.shell.live import Batch, LiveSource, open_source

BIN_NS = 100_000_000  # rates are kept in bins of 100 ms of trace time
SPARK = " ▁▂▃▄▅▆▇█"
__all__ = ["TopStats", "open_source", "run"]


@dataclass
class _Cpu:
    running: int = -1  # thread on the CPU since `since` (-1: not known yet)
    since: int = 0
    busy: list[np.ndarray] = field(default_factory=list)  # [starts, ends] of busy (non-idle) intervals
    switches: list[np.ndarray] = field(default_factory=list)  # switch times


class TopStats:
    """Rates over the last `window_ns` of trace time, from batches of live events."""

    def __init__(self, window_ns: int = 5_000_000_000):
        self.window = int(window_ns)
        self.total = 0
        self.batches = 0
        self.now = 0  # latest event time seen
        self.first = None  # first event time seen
        self.ncpus = 0
        self.catalog = None
        self.threads: dict[int, str] = {}
        self.lost: dict[int, int] = {}
        self.lost_before: dict[int, int] = {}
        self.finished = False
        self.tp_total: np.ndarray = np.zeros(0, np.int64)
        self.bins: dict[int, np.ndarray] = {}  # time bin -> events per tracepoint id
        self.cpus: dict[int, _Cpu] = {}
        self._mutex = np.zeros(0, [("time", "i8"), ("mutex", "u8"), ("kind", "u1"), ("dur", "i8")])
        self._pending = np.zeros(0, [("mutex", "u8"), ("tid", "u4"), ("time", "i8")])  # waits not woken yet

    # ------------------------------------------------------------ folding batches in

    def feed(self, b: Batch) -> None:
        self.catalog = b.catalog
        self.ncpus = max(self.ncpus, b.ncpus)
        self.threads = b.threads | self._created(b)
        self.lost_before, self.lost = self.lost, dict(b.lost)
        self.finished = b.finished
        self.batches += 1
        if not len(b):
            return
        size = b.catalog.max_id + 1
        if len(self.tp_total) < size:
            self.tp_total = np.concatenate([self.tp_total, np.zeros(size - len(self.tp_total), np.int64)])
        self.tp_total += np.bincount(b.tp, minlength=size)
        self.total += len(b)
        self.first = int(b.time.min()) if self.first is None else min(self.first, int(b.time.min()))
        self.now = max(self.now, int(b.time.max()))
        bins = b.time // BIN_NS
        for k in np.unique(bins).tolist():
            counts = np.bincount(b.tp[bins == k], minlength=size)
            prev = self.bins.get(k)
            if prev is not None and len(prev) < size:
                prev = np.concatenate([prev, np.zeros(size - len(prev), np.int64)])
            self.bins[k] = counts if prev is None else prev + counts
        self._switches(b)
        self._mutexes(b)
        self._trim()

    def _created(self, b: Batch) -> dict[int, str]:
        if "thread_create" not in b.catalog.by_name:
            return {}
        idx, a = b.args("thread_create")
        if not len(idx):
            return {}
        return {int(t): n.decode("utf-8", "replace") for t, n in zip(a["tid"].tolist(), a["name"].tolist())}

    def _idle(self, tids: np.ndarray) -> np.ndarray:
        idle = [t for t, n in self.threads.items() if n.startswith("idle")]
        return np.isin(tids, np.array(idle, np.int64)) | (tids == 0)

    def _switches(self, b: Batch) -> None:
        if "sched_switch" not in b.catalog.by_name:
            return
        idx, a = b.args("sched_switch")
        if not len(idx):
            return
        t, c, prev, nxt = b.time[idx], b.cpu[idx], b.tid[idx], a["next"].astype(np.int64)
        for cpu in np.unique(c).tolist():
            m = c == cpu
            st = self.cpus.setdefault(cpu, _Cpu())
            times = t[m]
            starts = np.concatenate(([st.since], times[:-1])) if st.running >= 0 else times[:-1]
            ends = times if st.running >= 0 else times[1:]
            who = prev[m] if st.running >= 0 else prev[m][1:]
            busy = ~self._idle(who.astype(np.int64))
            st.busy.append(np.stack([starts[busy], ends[busy]]))
            st.switches.append(times)
            st.running, st.since = int(nxt[m][-1]), int(times[-1])

    def _mutexes(self, b: Batch) -> None:
        cat = b.catalog.by_name
        kinds = [("mutex_lock", 0), ("mutex_lock_wait", 1), ("mutex_handoff", 2)]
        recs = []
        for name, k in kinds:
            if name in cat:
                idx, a = b.args(name)
                if len(idx):
                    r = np.zeros(len(idx), self._mutex.dtype)
                    r["time"], r["mutex"], r["kind"] = b.time[idx], a["mutex"], k
                    recs.append(r)
        # wait durations: each mutex_lock_wait paired with the next mutex_lock_wake of the same
        # (mutex, thread), across batches; sorted by key and time, a wake follows its wait
        if "mutex_lock_wait" in cat and "mutex_lock_wake" in cat:
            wi, wa = b.args("mutex_lock_wait")
            ki, ka = b.args("mutex_lock_wake")
            ev = np.zeros(len(self._pending) + len(wi) + len(ki),
                          [("mutex", "u8"), ("tid", "u4"), ("time", "i8"), ("wake", "u1")])
            p = len(self._pending)
            ev[:p]["mutex"], ev[:p]["tid"], ev[:p]["time"] = (self._pending["mutex"], self._pending["tid"],
                                                              self._pending["time"])
            ev[p:p + len(wi)]["mutex"], ev[p:p + len(wi)]["tid"], ev[p:p + len(wi)]["time"] = \
                wa["mutex"], b.tid[wi], b.time[wi]
            q = p + len(wi)
            ev[q:]["mutex"], ev[q:]["tid"], ev[q:]["time"], ev[q:]["wake"] = ka["mutex"], b.tid[ki], b.time[ki], 1
            ev = ev[np.lexsort((ev["wake"], ev["time"], ev["tid"], ev["mutex"]))]
            same = (ev["mutex"][1:] == ev["mutex"][:-1]) & (ev["tid"][1:] == ev["tid"][:-1])
            pair = same & (ev["wake"][:-1] == 0) & (ev["wake"][1:] == 1)
            i = np.nonzero(pair)[0]
            if len(i):
                r = np.zeros(len(i), self._mutex.dtype)
                r["time"], r["mutex"], r["kind"] = ev["time"][i + 1], ev["mutex"][i], 3
                r["dur"] = ev["time"][i + 1] - ev["time"][i]
                recs.append(r)
            waiting = ev["wake"] == 0
            waiting[i] = False
            last_of_key = np.ones(len(ev), bool)
            last_of_key[:-1] = ~same
            keep = waiting & last_of_key
            self._pending = np.zeros(int(keep.sum()), self._pending.dtype)
            self._pending["mutex"], self._pending["tid"], self._pending["time"] = (ev["mutex"][keep], ev["tid"][keep],
                                                                                   ev["time"][keep])
        if recs:
            self._mutex = np.concatenate([self._mutex, *recs])

    def _trim(self) -> None:
        lo = self.now - self.window
        for k in [k for k in self.bins if (k + 1) * BIN_NS <= lo]:
            del self.bins[k]
        for st in self.cpus.values():
            if st.busy:
                iv = np.concatenate(st.busy, axis=1)
                st.busy = [iv[:, iv[1] > lo]]
            if st.switches:
                sw = np.concatenate(st.switches)
                st.switches = [sw[sw > lo]]
        self._mutex = self._mutex[self._mutex["time"] > lo]

    # ------------------------------------------------------------ what the screen shows

    @property
    def span(self) -> int:
        """Trace time the rates are over: the window, or less at the start."""
        if self.first is None:
            return 0
        return max(min(self.window, self.now - self.first), 1)

    def rates(self) -> dict[str, float]:
        """Events per second of trace time, by tracepoint, over the window."""
        if not self.bins or self.catalog is None:
            return {}
        size = max(len(v) for v in self.bins.values())
        tot = np.zeros(size, np.int64)
        lo = self.now - self.window
        for k, v in self.bins.items():
            if (k + 1) * BIN_NS > lo:
                tot[:len(v)] += v
        sec = self.span / 1e9
        return {tp.name: tot[tp.id] / sec for tp in self.catalog.tracepoints if tp.id < size and tot[tp.id]}

    def load(self) -> dict[int, tuple[float, float]]:
        """Per CPU: (busy share, switches per second) over the window; idle threads are not busy."""
        hi, lo = self.now, self.now - self.span
        out = {}
        for cpu, st in sorted(self.cpus.items()):
            iv = np.concatenate(st.busy, axis=1) if st.busy else np.zeros((2, 0), np.int64)
            busy = np.maximum(np.minimum(iv[1], hi) - np.maximum(iv[0], lo), 0).sum()
            if st.running >= 0 and not self._idle(np.array([st.running]))[0]:
                busy += max(hi - max(st.since, lo), 0)
            sw = np.concatenate(st.switches) if st.switches else np.zeros(0)
            out[cpu] = (min(busy / max(hi - lo, 1), 1.0), len(sw) / (self.span / 1e9))
        return out

    def mutexes(self, n: int = 8) -> list[dict[str, float]]:
        """The mutexes with the most wait time in the window; `waiters` is the average number of
        threads waiting for it (wait time / window)."""
        m = self._mutex
        if not len(m):
            return []
        keys, inv = np.unique(m["mutex"], return_inverse=True)
        sec = self.span / 1e9
        count = {k: np.bincount(inv[m["kind"] == k], minlength=len(keys)) for k in range(4)}
        wait = np.bincount(inv[m["kind"] == 3], weights=m["dur"][m["kind"] == 3], minlength=len(keys))
        order = np.lexsort((-count[1], -wait))[:n]
        return [{"mutex": int(keys[i]), "locks_s": count[0][i] / sec, "waits_s": count[1][i] / sec,
                 "handoffs_s": count[2][i] / sec, "wait_ns": float(wait[i]),
                 "waiters": float(wait[i]) / max(self.span, 1)} for i in order if count[0][i] + count[1][i]]

    def render(self, source: str, width: int = 100, height: int = 40, wall: float = 0.0) -> str:
        """The screen as text (ANSI-free)."""
        rates = self.rates()
        state = "finished" if self.finished else "following"
        out = [f"osvtrace live ({state}; {self.total:,} events, {self.batches} polls"
               + (f", {wall:.0f}s" if wall else "") + f"): {source}   q quits",
               f"trace time {format_duration(self.now)}; rates over the last {format_duration(self.span)} "
               f"of trace time; {sum(rates.values()):,.0f} events/s", ""]
        load = self.load()
        bar = max(10, min(40, width - 40))
        out.append(f"{'CPU':<6} {'load':<{bar}}  {'busy':>5}  {'switches/s':>11}")
        for cpu in range(max(self.ncpus, max(load, default=-1) + 1)):
            if cpu in load:
                share, sw = load[cpu]
                full = int(share * bar)
                part = SPARK[int((share * bar - full) * (len(SPARK) - 1))] if full < bar else ""
                out.append(f"cpu{cpu:<3} {('█' * full + part).ljust(bar)}  {share * 100:>4.0f}%  {sw:>11,.0f}")
            else:
                out.append(f"cpu{cpu:<3} {'(no sched_switch yet)':<{bar}}  {'-':>5}  {'-':>11}")
        out += ["", f"{'tracepoint':<20} {'events/s':>12} {'total':>14}"]
        rows = sorted(rates.items(), key=lambda kv: -kv[1])
        room = max(3, height - len(out) - 16)
        for name, r in rows[:room]:
            tp = self.catalog.by_name[name]
            out.append(f"{name:<20} {r:>12,.0f} {int(self.tp_total[tp.id]):>14,}")
        if len(rows) > room:
            out.append(f"... {len(rows) - room} more tracepoints")
        if not rows:
            out.append("(no events yet)")
        out += ["", f"{'hottest mutexes':<20} {'waiters':>10} {'waits/s':>10} {'hand-offs/s':>12} {'locks/s':>10}"]
        mx = self.mutexes(5)
        for r in mx:
            out.append(f"{r['mutex']:#20x} {r['waiters']:>10.2f} {r['waits_s']:>10,.0f} "
                       f"{r['handoffs_s']:>12,.0f} {r['locks_s']:>10,.0f}")
        if not mx:
            out.append("(no mutex activity in the window)")
        lost = sum(self.lost.values())
        new = lost - sum(self.lost_before.values())
        out += ["", "lost records: " + (", ".join(f"cpu{c} {n:,}" for c, n in self.lost.items() if n) or "none")
                + (f"  (+{new:,} since the last poll)" if new > 0 else "")]
        return "\n".join(line[:width] for line in out)


def run(source: LiveSource, *, interval: float = 1.0, window_s: float = 5.0, input=None, output=None,  # noqa: ANN001
        stats: TopStats | None = None, until_finished: bool = False) -> TopStats:
    """Show the live screen until q (or Ctrl-C); returns the stats (for tests)."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.formatted_text import ANSI
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl

    st = stats or TopStats(int(window_s * 1e9))
    started = _time.monotonic()
    error: list[str] = []

    def text():  # noqa: ANN202
        size = app.output.get_size()
        body = st.render(Path(source.name).name, size.columns, size.rows, _time.monotonic() - started)
        if error:
            body += "\n\n" + error[0]
        return ANSI(body)

    kb = KeyBindings()

    @kb.add("q")
    @kb.add("c-c")
    @kb.add("c-d")
    def _quit(event) -> None:  # noqa: ANN001
        event.app.exit()

    app: Application = Application(layout=Layout(Window(FormattedTextControl(text), wrap_lines=False)),
                                   key_bindings=kb, full_screen=True, input=input, output=output)

    async def refresh() -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                batch = await loop.run_in_executor(None, source.poll)
            except Exception as e:  # a damaged or vanished file: say so, keep the screen
                error[:] = [f"error: {e}"]
                batch = None
            if batch is not None:
                st.feed(batch)
            app.invalidate()
            if until_finished and st.finished:
                app.exit()
                return
            await asyncio.sleep(interval)

    app.run(pre_run=lambda: app.create_background_task(refresh()))
    source.close()
    return st
