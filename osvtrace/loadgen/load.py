"""`osvtrace load`: an open-loop UDP load generator for udp-echo and memcached-over-UDP.

Open loop: request i is sent at start + i/rate whether or not earlier ones were answered
(a closed loop would slow down with the server and hide its queueing). Requests are spread
round robin over `conns` client sockets, each with its own source port, so a server with
one socket per thread (SO_REUSEPORT-style) sees several flows. Every reply is matched to
its request (echo: a sequence number in the payload; memcache: the frame header's request
id per socket) and checked (echo: the exact bytes; memcache: the value stored under the
key). Latency = receive time - send time on the host's monotonic clock, per request,
kept in one numpy array. After the last send the generator waits `drain` seconds for
stragglers; requests without a reply by then are lost.

`window=N` (library only) caps the requests in flight: a request due while N are unanswered
waits for a reply (the schedule slips). A server then never holds more than N, which a
test needs to say "nothing lost" whatever the host's load does to the guest's pace (open
loop, a guest its host does not run for 0.2 s has 400 datagrams at 2,000/s waiting for a
256-deep channel).

Bounded by construction: rate * duration requests, a fixed drain, and only the address
it is given (tests and benchmarks use 127.0.0.1).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from osvtrace.errors import OsvtraceError, UsageError
from osvtrace.loadgen import memcache_udp as mc

KINDS = ("udp", "memcache")
MAX_REQUESTS = 10_000_000
_SEQ = struct.Struct("<Q")


class LoadError(OsvtraceError):
    """The load generator could not run (bad target, socket error)."""


@dataclass
class LoadResult:
    kind: str
    target: str
    rate: float  # asked for, requests/s
    duration: float  # asked for, s
    conns: int
    sent: int = 0
    answered: int = 0
    bad: int = 0  # replies that did not match their request
    send_seconds: float = 0.0  # first send to last send
    seconds: float = 0.0  # first send to the last reply (or the end of the drain)
    behind_max: float = 0.0  # the most the sender fell behind its schedule, s
    latency_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # per answered request
    extra: dict = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    def percentiles(self) -> dict[str, float]:
        """Latency percentiles in microseconds (NaN without answers)."""
        keys = {"p50": 50, "p90": 90, "p99": 99, "p99.9": 99.9}
        if not len(self.latency_ns):
            return {k: float("nan") for k in (*keys, "max", "mean")}
        us = self.latency_ns / 1e3
        out = {k: float(np.percentile(us, q)) for k, q in keys.items()}
        out["max"] = float(us.max())
        out["mean"] = float(us.mean())
        return out

    def summary(self) -> dict:
        return {"kind": self.kind, "target": self.target, "rate": self.rate, "duration": self.duration,
                "conns": self.conns, "sent": self.sent, "answered": self.answered, "lost": self.lost,
                "bad": self.bad, "seconds": round(self.seconds, 4),
                "send_rate": round(self.sent / self.send_seconds, 1) if self.send_seconds else 0.0,
                "throughput": round(self.answered / self.seconds, 1) if self.seconds else 0.0,
                "behind_max_ms": round(self.behind_max * 1e3, 3),
                "latency_us": {k: round(v, 1) for k, v in self.percentiles().items()}, **self.extra}

    def render(self) -> str:
        s = self.summary()
        p = s["latency_us"]
        lines = [f"{self.kind} load on {self.target}: {self.sent:,} sent at {s['send_rate']:,.0f}/s "
                 f"(asked {self.rate:,.0f}/s for {self.duration:g} s over {self.conns} sockets)",
                 f"answered {self.answered:,}, lost {self.lost:,}, bad {self.bad:,}; "
                 f"throughput {s['throughput']:,.0f} replies/s",
                 "latency us: " + ", ".join(f"{k} {v:,.1f}" for k, v in p.items())]
        if s["behind_max_ms"] > 10:
            lines.append(f"note: the sender fell up to {s['behind_max_ms']:.0f} ms behind its schedule "
                         "(the host could not keep the rate)")
        for k, v in self.extra.items():
            lines.append(f"{k}: {v}")
        return "\n".join(lines)


def parse_target(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"bad target {target!r}: expected HOST:PORT (e.g. 127.0.0.1:5555)")
    return host, int(port)


# ---------------------------------------------------------------- workloads

class _Echo:
    """udp-echo: payload = 8-byte sequence number + filler; the reply must be identical."""

    def __init__(self, size: int):
        if not 8 <= size <= 1472:
            raise UsageError(f"--size {size}: 8 to 1472 bytes")
        self.fill = bytes((i * 7) & 0xFF for i in range(size - 8))

    def request(self, seq: int, conn: int) -> bytes:
        return _SEQ.pack(seq) + self.fill

    def reply(self, data: bytes, conn: int) -> tuple[int, bool] | None:
        """(seq, ok) of a complete reply, or None."""
        if len(data) < 8:
            return None
        seq = _SEQ.unpack_from(data)[0]
        return seq, data[8:] == self.fill


class _Memcache:
    """memcached over UDP: gets and sets on a fixed key space; each key always holds the
    same value, so every hit can be checked. Keys are set once before the clock starts."""

    def __init__(self, keys: int, value_size: int, set_ratio: float, total: int):
        if keys < 1:
            raise UsageError("--keys must be at least 1")
        if not 1 <= value_size <= 1300:
            raise UsageError(f"--value-size {value_size}: 1 to 1300 bytes (a set must fit one datagram)")
        if not 0 <= set_ratio <= 1:
            raise UsageError("--set-ratio is a fraction, 0 to 1")
        self.keys, self.value_size = keys, value_size
        rng = np.random.default_rng(1)
        self.is_set = rng.random(total) < set_ratio
        self.key_of = rng.integers(0, keys, total)
        self.pending: dict[tuple[int, int], tuple[int, mc.Reassembly]] = {}  # (conn, rid) -> (seq, parts)
        self.next_rid = [1] * 64
        self.hits = self.misses = self.stored = 0

    def key(self, k: int) -> str:
        return f"key:{k}"

    def value(self, k: int) -> bytes:
        s = f"{k}:".encode()
        return (s * (self.value_size // len(s) + 1))[:self.value_size]

    def request(self, seq: int, conn: int) -> bytes:
        k = int(self.key_of[seq])
        body = mc.set_(self.key(k), self.value(k)) if self.is_set[seq] else mc.get(self.key(k))
        rid = self.next_rid[conn]
        self.next_rid[conn] = rid % 0xFFFF + 1
        self.pending[(conn, rid)] = (seq, mc.Reassembly())
        return mc.frame(rid, body)

    def reply(self, data: bytes, conn: int) -> tuple[int, bool] | None:
        h = mc.parse_header(data)
        if h is None or (conn, h[0]) not in self.pending:
            return None
        seq, parts = self.pending[(conn, h[0])]
        parts.add(h[1], h[2], data[mc.HEADER_SIZE:])
        text = parts.text()
        if not parts.complete or not mc.reply_finished(text, b"get " if not self.is_set[seq] else b"set"):
            return None
        del self.pending[(conn, h[0])]
        k = int(self.key_of[seq])
        if self.is_set[seq]:
            self.stored += text == b"STORED\r\n"
            return seq, text == b"STORED\r\n"
        if text == b"END\r\n":
            self.misses += 1
            return seq, True
        v = self.value(k)
        self.hits += 1
        return seq, text == f"VALUE {self.key(k)} 0 {len(v)}\r\n".encode() + v + b"\r\nEND\r\n"

    def prefill(self, sock: socket.socket, addr: tuple[str, int], timeout: float) -> int:
        """Sets every key once, a few at a time, before the measured run. Returns how many
        were confirmed."""
        ok = 0
        window = 16
        sock.setblocking(True)
        sock.settimeout(timeout)
        for base in range(0, self.keys, window):
            ks = range(base, min(base + window, self.keys))
            for k in ks:
                sock.sendto(mc.frame(k & 0xFFFF, mc.set_(self.key(k), self.value(k))), addr)
            for _ in ks:
                try:
                    d, _ = sock.recvfrom(65536)
                except socket.timeout:
                    break
                ok += d[mc.HEADER_SIZE:] == b"STORED\r\n"
        # Stragglers of the prefill must not be taken for replies of the run.
        sock.settimeout(0.05)
        try:
            while True:
                sock.recvfrom(65536)
        except (socket.timeout, BlockingIOError):
            pass
        sock.setblocking(False)
        return ok


# ---------------------------------------------------------------- the loop

def run(kind: str, target: str, *, rate: float, duration: float, conns: int = 4, size: int = 64,
        keys: int = 1000, value_size: int = 32, set_ratio: float = 0.1, drain: float = 1.0,
        prefill: bool = True, warmup: float = 0.0, window: int = 0) -> LoadResult:
    """Runs one open-loop load and returns what happened (see the module docstring)."""
    if kind not in KINDS:
        raise UsageError(f"unknown load kind {kind!r} (choose from {', '.join(KINDS)})")
    if rate <= 0 or duration <= 0:
        raise UsageError("--rate and --duration must be positive")
    total = int(round(rate * duration))
    if not 1 <= total <= MAX_REQUESTS:
        raise UsageError(f"rate x duration = {total:,} requests: 1 to {MAX_REQUESTS:,}")
    if not 1 <= conns <= 64:
        raise UsageError("--conns: 1 to 64")
    if window < 0:
        raise UsageError("window: 0 (open loop) or more")
    host, port = parse_target(target)
    try:
        addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
    except socket.gaierror as e:
        raise LoadError(f"{target}: {e}") from None
    res = LoadResult(kind, target, rate, duration, conns)
    work = _Echo(size) if kind == "udp" else _Memcache(keys, value_size, set_ratio, total)
    socks = []
    try:
        for _ in range(conns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(("0.0.0.0" if host not in ("127.0.0.1", "localhost") else "127.0.0.1", 0))
            s.setblocking(False)
            socks.append(s)
        if isinstance(work, _Memcache) and prefill:
            res.extra["prefilled"] = work.prefill(socks[0], addr, 2.0)
        _loop(res, work, socks, addr, total, drain, window)
    finally:
        for s in socks:
            s.close()
    if isinstance(work, _Memcache):
        res.extra.update(hits=work.hits, misses=work.misses, stored=work.stored)
    return res


def _loop(res: LoadResult, work, socks: list[socket.socket], addr, total: int, drain: float, window: int = 0) -> None:
    interval = 1e9 / res.rate
    send_ns = np.zeros(total, np.int64)
    got = np.zeros(total, bool)
    lat = np.zeros(total, np.int64)
    fds = {s.fileno(): i for i, s in enumerate(socks)}
    sent = answered = bad = 0
    last_reply = 0
    behind = 0
    t0 = time.perf_counter_ns()
    end_drain = None
    while True:
        now = time.perf_counter_ns()
        # Send everything that is due (a burst when the host fell behind).
        while sent < total and t0 + int(sent * interval) <= now and (not window or sent - answered < window):
            behind = max(behind, now - (t0 + int(sent * interval)))
            c = sent % len(socks)
            data = work.request(sent, c)
            send_ns[sent] = time.perf_counter_ns()
            try:
                socks[c].sendto(data, addr)
            except BlockingIOError:
                pass  # the host's socket buffer is full: the request counts as sent and lost
            except OSError as e:
                if e.errno not in (errno.ECONNREFUSED, errno.ENOBUFS):
                    raise LoadError(f"{res.target}: {e}") from None
            sent += 1
        if sent == total and end_drain is None:
            res.send_seconds = (send_ns[total - 1] - send_ns[0]) / 1e9
            end_drain = time.perf_counter_ns() + int(drain * 1e9)
        if end_drain is not None and (answered == total or time.perf_counter_ns() >= end_drain):
            break
        next_send = t0 + int(sent * interval) if sent < total else end_drain
        wait = max(0, next_send - time.perf_counter_ns()) / 1e9
        if window and sent < total and sent - answered >= window:
            wait = 0.05  # the window is full: only a reply lets the next request go
        try:
            ready, _, _ = select.select(socks, [], [], min(wait, 0.05))
        except InterruptedError:
            continue
        for s in ready:
            c = fds[s.fileno()]
            while True:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue  # an ICMP port-unreachable for an earlier datagram
                t = time.perf_counter_ns()
                r = work.reply(data, c)
                if r is None:
                    continue
                seq, ok = r
                if not 0 <= seq < sent or got[seq]:
                    bad += 1
                    continue
                if not ok:
                    bad += 1
                got[seq] = True
                lat[seq] = t - send_ns[seq]
                answered += 1
                last_reply = t
    res.sent, res.answered, res.bad = sent, answered, bad
    res.latency_ns = lat[got]
    res.behind_max = behind / 1e9
    first = send_ns[0] if sent else t0
    res.seconds = ((last_reply or time.perf_counter_ns()) - first) / 1e9
