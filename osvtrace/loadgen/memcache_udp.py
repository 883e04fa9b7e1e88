"""memcached's text protocol over UDP, client side: framing, reassembly, requests.

Every UDP datagram starts with memcached's 8-byte frame header (protocol.txt, "UDP
protocol"): request id, sequence number, total datagrams in this message, reserved
(all big-endian 16-bit). A request is one datagram (seq 0, total 1). A reply may be
several messages, each of one or more datagrams; memcached 1.6 sends one message per
response object (a multi-get's VALUE blocks, then END) and, for a miss inside a
multi-get, an empty datagram with total 0. What a client sees is the text: the
datagrams of each message in sequence order, messages in arrival order.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

HEADER = struct.Struct(">HHHH")
HEADER_SIZE = HEADER.size
# Lines that end a reply to a single command (a get ends with END; errors end anything).
TERMINATORS = (b"END\r\n", b"STORED\r\n", b"NOT_STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n",
               b"DELETED\r\n", b"TOUCHED\r\n")
ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


def frame(request_id: int, payload: bytes) -> bytes:
    """A one-datagram request."""
    return HEADER.pack(request_id & 0xFFFF, 0, 1, 0) + payload


def parse_header(datagram: bytes) -> tuple[int, int, int] | None:
    """(request id, seq, total) of a datagram, or None if it is too short."""
    if len(datagram) < HEADER_SIZE:
        return None
    rid, seq, total, _ = HEADER.unpack_from(datagram)
    return rid, seq, total


@dataclass
class Reassembly:
    """The datagrams of one request's reply, put back together into text."""

    messages: list[dict[int, bytes]] = field(default_factory=list)  # per message: seq -> payload
    totals: list[int] = field(default_factory=list)

    def add(self, seq: int, total: int, payload: bytes) -> None:
        if total == 0:
            return  # memcached's empty datagram for a multi-get miss: no text
        # A new message starts at seq 0, or when the current one is complete.
        if not self.messages or seq == 0 and (0 in self.messages[-1] or len(self.messages[-1]) >= self.totals[-1]):
            self.messages.append({})
            self.totals.append(total)
        self.messages[-1][seq] = payload

    @property
    def complete(self) -> bool:
        """Every message has all its datagrams (not whether more messages may follow)."""
        return bool(self.messages) and all(len(m) >= t for m, t in zip(self.messages, self.totals))

    def text(self) -> bytes:
        return b"".join(m[s] for m in self.messages for s in sorted(m))


def reply_finished(text: bytes, command: bytes) -> bool:
    """Whether `text` is a whole reply to one command (terminator or error line at its end)."""
    if not text.endswith(b"\r\n"):
        return False
    last = text[:-2].rsplit(b"\r\n", 1)[-1] + b"\r\n"
    if last.startswith(ERROR_PREFIXES):
        return True
    if command.startswith((b"get ", b"gets ")):
        return last == b"END\r\n"
    return last in TERMINATORS


def get(key: str) -> bytes:
    return f"get {key}\r\n".encode()


def set_(key: str, value: bytes, flags: int = 0, exptime: int = 0, noreply: bool = False) -> bytes:
    nr = " noreply" if noreply else ""
    return f"set {key} {flags} {exptime} {len(value)}{nr}\r\n".encode() + value + b"\r\n"


def delete(key: str, noreply: bool = False) -> bytes:
    return f"delete {key}{' noreply' if noreply else ''}\r\n".encode()


class Client:
    """A blocking one-request-at-a-time client (scripts and tests; the load generator
    in osvtrace.loadgen.load keeps many requests in flight instead)."""

    def __init__(self, host: str, port: int, timeout: float = 2.0):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, payload: bytes, *, expect_reply: bool = True, settle: float = 0.0) -> bytes:
        """Sends one request datagram and returns the reply text (b"" when none came).

        The reply is taken as finished when its last message is complete and its text ends
        with a terminator or error line for the request's last command; `settle` waits that
        much longer for stray datagrams (or, with expect_reply=False, for a reply that should
        not come)."""
        rid = self.next_id & 0xFFFF
        self.next_id += 1
        self.sock.sendto(frame(rid, payload), self.addr)
        r = Reassembly()
        last_cmd = payload.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1] + b"\r\n"
        deadline = time.monotonic() + (self.timeout if expect_reply else settle)
        finished_at = None
        while True:
            now = time.monotonic()
            limit = deadline if finished_at is None else finished_at + settle
            if now >= limit:
                break
            self.sock.settimeout(max(limit - now, 1e-4))
            try:
                d, _ = self.sock.recvfrom(65536)
            except (socket.timeout, BlockingIOError):
                break
            h = parse_header(d)
            if h is None or h[0] != rid:
                continue  # a late reply to an earlier request
            r.add(h[1], h[2], d[HEADER_SIZE:])
            if finished_at is None and r.complete and reply_finished(r.text(), last_cmd):
                finished_at = time.monotonic()
                if not settle:
                    break
        self.sock.settimeout(self.timeout)
        return r.text()
