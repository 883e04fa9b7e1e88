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

from osvtrace.model.filters import format_duration
from osvtrace.shell.live import Batch, LiveSource, open_source

BIN_NS = 100_000_000  # rates are kept in bins of 100 ms of trace time
SPARK = " ▁▂▃▄▅▆▇█"
__all__ = ["TopStats", "open_source", "run"]


MUTEX_DT = np.dtype([("mutex", "u8"), ("locks", "i8"), ("waits", "i8"), ("handoffs", "i8"), ("wait_ns", "i8")])


@dataclass
class _Bin:
    """What happened in one 100 ms bin of trace time, already summed."""

    tp: np.ndarray  # events per tracepoint id
    busy: dict[int, int] = field(default_factory=dict)  # cpu -> ns running non-idle threads
    switches: dict[int, int] = field(default_factory=dict)  # cpu -> sched_switch records
    mutex: np.ndarray = field(default_factory=lambda: np.zeros(0, MUTEX_DT))  # one row per mutex, sorted


@dataclass
class _Cpu:
    running: int = -1  # thread on the CPU since `since` (-1: not known yet)
    since: int = 0


class TopStats:
    """Rates over the last `window_ns` of trace time, from batches of live events.

    Everything is summed into 100 ms bins of trace time as it arrives (a few vectorised
    passes per batch), so drawing the screen costs the same at any event rate."""

    def __init__(self, window_ns: int = 5_000_000_000):
        self.window = int(window_ns)
        self.total = 0
        self.batches = 0
        self.now = 0  # latest event time seen
        self.first: int | None = None  # first event time seen
        self.ncpus = 0
        self.catalog = None
        self.threads: dict[int, str] = {}
        self.lost: dict[int, int] = {}
        self.lost_before: dict[int, int] = {}
        self.finished = False
        self.tp_total: np.ndarray = np.zeros(0, np.int64)
        self.bins: dict[int, _Bin] = {}
        self.cpus: dict[int, _Cpu] = {}
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
        self.tp_total[:size] += np.bincount(b.tp, minlength=size)
        self.total += len(b)
        self.first = int(b.time.min()) if self.first is None else min(self.first, int(b.time.min()))
        self.now = max(self.now, int(b.time.max()))
        self._lo_bin = (self.now - self.window) // BIN_NS  # bins before this are out of the window
        bins = b.time // BIN_NS
        keep = bins >= self._lo_bin
        if keep.any():
            k0 = int(bins[keep].min())
            nb = int(bins[keep].max()) - k0 + 1
            counts = np.bincount((bins[keep] - k0) * size + b.tp[keep], minlength=nb * size).reshape(nb, size)
            for j in np.nonzero(counts.any(axis=1))[0].tolist():
                t = self._bin(k0 + j, size)
                t.tp[:size] += counts[j]
        self._switches(b, size)
        self._mutexes(b, size)
        self._trim()

    def _bin(self, k: int, size: int) -> _Bin:
        t = self.bins.get(k)
        if t is None:
            t = self.bins[k] = _Bin(np.zeros(size, np.int64))
        elif len(t.tp) < size:
            t.tp = np.concatenate([t.tp, np.zeros(size - len(t.tp), np.int64)])
        return t

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

    def _switches(self, b: Batch, size: int) -> None:
        """Busy time per CPU and bin: the stretch before each sched_switch ran the record's
        thread; idle threads are not busy. The stretch still running is added when drawn."""
        from osvtrace.shell.timeline import coverage

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
            known = st.running >= 0
            starts = np.concatenate(([st.since], times[:-1])) if known else times[:-1]
            ends = times if known else times[1:]
            who = prev[m] if known else prev[m][1:]
            busy = ~self._idle(who.astype(np.int64))
            st.running, st.since = int(nxt[m][-1]), int(times[-1])
            sb = times // BIN_NS
            for k, n in zip(*np.unique(sb[sb >= self._lo_bin], return_counts=True)):
                d = self._bin(int(k), size).switches
                d[cpu] = d.get(cpu, 0) + int(n)
            starts, ends = starts[busy], ends[busy]
            if not len(starts):
                continue
            k0 = max(int(starts.min()) // BIN_NS, self._lo_bin)
            k1 = int(ends.max()) // BIN_NS
            if k1 < k0:
                continue
            cov = coverage(starts, ends - starts, np.arange(k0, k1 + 2, dtype=np.int64) * BIN_NS)
            for j in np.nonzero(cov)[0].tolist():
                d = self._bin(k0 + j, size).busy
                d[cpu] = d.get(cpu, 0) + int(cov[j])

    def _mutexes(self, b: Batch, size: int) -> None:
        cat = b.catalog.by_name
        parts = []  # (time, mutex, column) per kind
        for name, col in (("mutex_lock", "locks"), ("mutex_lock_wait", "waits"), ("mutex_handoff", "handoffs")):
            if name in cat:
                idx, a = b.args(name)
                if len(idx):
                    parts.append((b.time[idx], a["mutex"].astype(np.uint64), col, None))
        # wait durations: each mutex_lock_wait paired with the next mutex_lock_wake of the same
        # (mutex, thread), across batches; sorted by key and time, a wake follows its wait
        if "mutex_lock_wait" in cat and "mutex_lock_wake" in cat:
            wi, wa = b.args("mutex_lock_wait")
            ki, ka = b.args("mutex_lock_wake")
            p = self._pending
            mutex = np.concatenate([p["mutex"], wa["mutex"].astype(np.uint64), ka["mutex"].astype(np.uint64)])
            tid = np.concatenate([p["tid"], b.tid[wi], b.tid[ki]])
            time = np.concatenate([p["time"], b.time[wi], b.time[ki]])
            wake = np.concatenate([np.zeros(len(p) + len(wi), np.uint8), np.ones(len(ki), np.uint8)])
            o = np.lexsort((wake, time, tid, mutex))
            mutex, tid, time, wake = mutex[o], tid[o], time[o], wake[o]
            same = (mutex[1:] == mutex[:-1]) & (tid[1:] == tid[:-1])
            i = np.nonzero(same & (wake[:-1] == 0) & (wake[1:] == 1))[0]
            if len(i):
                parts.append((time[i + 1], mutex[i], "wait_ns", time[i + 1] - time[i]))
            waiting = wake == 0
            waiting[i] = False
            last_of_key = np.ones(len(mutex), bool)
            last_of_key[:-1] = ~same
            keep = waiting & last_of_key
            self._pending = np.zeros(int(keep.sum()), self._pending.dtype)
            self._pending["mutex"], self._pending["tid"], self._pending["time"] = mutex[keep], tid[keep], time[keep]
        for time, mutex, col, dur in parts:
            bins = time // BIN_NS
            ok = bins >= self._lo_bin
            for k in np.unique(bins[ok]).tolist():
                m = ok & (bins == k)
                keys, inv = np.unique(mutex[m], return_inverse=True)
                add = np.zeros(len(keys), MUTEX_DT)
                add["mutex"] = keys
                add[col] = np.bincount(inv, weights=None if dur is None else dur[m], minlength=len(keys))
                t = self._bin(int(k), size)
                t.mutex = _merge(t.mutex, add)

    def _trim(self) -> None:
        lo = (self.now - self.window) // BIN_NS
        for k in [k for k in self.bins if k < lo]:
            del self.bins[k]

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
        size = max(len(v.tp) for v in self.bins.values())
        tot = np.zeros(size, np.int64)
        for v in self.bins.values():
            tot[:len(v.tp)] += v.tp
        sec = self.span / 1e9
        return {tp.name: tot[tp.id] / sec for tp in self.catalog.tracepoints if tp.id < size and tot[tp.id]}

    def load(self) -> dict[int, tuple[float, float]]:
        """Per CPU: (busy share, switches per second) over the window; idle threads are not busy."""
        hi, lo = self.now, self.now - self.span
        out = {}
        for cpu, st in sorted(self.cpus.items()):
            busy = sum(v.busy.get(cpu, 0) for v in self.bins.values())
            if st.running >= 0 and not self._idle(np.array([st.running]))[0]:
                busy += max(hi - max(st.since, lo), 0)
            sw = sum(v.switches.get(cpu, 0) for v in self.bins.values())
            out[cpu] = (min(busy / max(hi - lo, 1), 1.0), sw / (self.span / 1e9))
        return out

    def mutexes(self, n: int = 8) -> list[dict[str, float]]:
        """The mutexes with the most wait time in the window; `waiters` is the average number of
        threads waiting for it (wait time / window)."""
        m = np.zeros(0, MUTEX_DT)
        for v in self.bins.values():
            m = _merge(m, v.mutex)
        m = m[(m["locks"] + m["waits"]) > 0]
        if not len(m):
            return []
        sec = self.span / 1e9
        order = np.lexsort((-m["waits"], -m["wait_ns"]))[:n]
        return [{"mutex": int(r["mutex"]), "locks_s": r["locks"] / sec, "waits_s": r["waits"] / sec,
                 "handoffs_s": r["handoffs"] / sec, "wait_ns": float(r["wait_ns"]),
                 "waiters": float(r["wait_ns"]) / max(self.span, 1)} for r in m[order]]

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
        room = max(3, height - len(out) - 11)  # what follows: mutexes (up to 9 lines), lost, a "more" line
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
        if error:  # first: below the body it would fall off the screen
            head = error[0] + "\n\n"
            return ANSI(head + st.render(Path(source.name).name, size.columns, size.rows - 2,
                                         _time.monotonic() - started))
        return ANSI(st.render(Path(source.name).name, size.columns, size.rows, _time.monotonic() - started))

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


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-mutex sums of two MUTEX_DT arrays."""
    if not len(a):
        return b.copy()
    if not len(b):
        return a
    both = np.concatenate([a, b])
    keys, inv = np.unique(both["mutex"], return_inverse=True)
    out = np.zeros(len(keys), MUTEX_DT)
    out["mutex"] = keys
    for col in ("locks", "waits", "handoffs", "wait_ns"):
        out[col] = np.bincount(inv, weights=both[col], minlength=len(keys))
    return out
