"""`osv netchannels` and the net channel pretty-printer (kernel/net/channel.hh, udp.cc).

A net channel is a single-producer single-consumer ring of packet buffers
(lib/spsc_ring.hh) plus an event its consumer sleeps on. Every UDP socket owns
one; sockets live in a static table in udp.cc (never freed), which is how this
module finds the channels in use and who consumes each (the socket's reader).
Channels elsewhere in static storage are found through debug info too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, fmt, guestmem, printers, statics, thread

CHANNEL_TYPE = "net::channel"
SOCKET_TYPE = "net::udp_socket"
UDP_FN = "net::udp_open"  # a function of udp.cc: its file's statics are the socket table


def channel_type() -> Any | None:
    """The kernel's net channel type, if it has one."""
    try:
        return debuginfo.lookup_type(CHANNEL_TYPE).strip_typedefs()
    except commands.OsvError:
        return None


@dataclass
class Socket:
    addr: int
    index: int
    port: int
    bound: bool
    reader: int  # the thread in recvfrom (the channel's consumer), or 0
    received: int
    sent: int
    bad: int


@dataclass
class Channel:
    addr: int
    head: int  # pushes ever (32-bit, free-running)
    tail: int  # pops ever
    capacity: int
    drops: int
    closed: bool
    pending: bool  # a signal nobody has waited for yet
    waiter: int  # the consumer thread asleep on it, or 0
    index_bits: int = 32  # width of the free-running indices (spsc_ring.hh)
    socket: Socket | None = None

    @property
    def depth(self) -> int:
        return (self.head - self.tail) & ((1 << self.index_bits) - 1)


def read_channel(addr: int) -> Channel:
    ct = channel_type()
    if ct is None:
        raise commands.OsvError("this kernel has no net channels")
    cl = debuginfo.layout_of_type(ct)
    buf = guestmem.read_small(addr, cl.size)
    ring_t = cl.field("ring_")[2]
    rl = debuginfo.layout_of_type(ring_t)
    slots_t = rl.field("slots_")[2]
    ring = cl.offset("ring_")
    return Channel(addr, rl.get(buf, "head_", base=ring), rl.get(buf, "tail_", base=ring),
                   slots_t.sizeof // slots_t.target().sizeof, cl.get(buf, "drops_"), bool(cl.get(buf, "closed_")),
                   bool(cl.get(buf, "ready_.pending_")), cl.get(buf, "ready_.waiter_"), 8 * rl.field("head_")[1])


def sockets() -> list[Socket]:
    """The UDP sockets handed out so far (udp.cc's table, in order)."""
    table, table_t = debuginfo.file_variable(UDP_FN, "sockets")
    used_addr, used_t = debuginfo.file_variable(UDP_FN, "sockets_used")
    used = int.from_bytes(guestmem.read_small(used_addr, used_t.sizeof), "little")
    st = debuginfo.lookup_type(SOCKET_TYPE).strip_typedefs()
    sl = debuginfo.layout_of_type(st)
    n = min(used, table_t.sizeof // st.sizeof)
    if not n:
        return []
    raw = guestmem.read(table, n * st.sizeof)
    out = []
    for i in range(n):
        base = i * st.sizeof
        out.append(Socket(table + base, i, sl.get(raw, "port", base=base), bool(sl.get(raw, "bound", base=base)),
                          sl.get(raw, "reader", base=base), sl.get(raw, "received", base=base),
                          sl.get(raw, "sent", base=base), sl.get(raw, "bad", base=base)))
    return out


def channels() -> list[Channel]:
    """Every channel in use: each socket's, then any other in static storage that has
    seen a packet."""
    ct = channel_type()
    if ct is None:
        return []
    out = []
    socks = sockets()
    ch_off = debuginfo.layout_of(SOCKET_TYPE).offset("ch")
    seen = set()
    for s in socks:
        c = read_channel(s.addr + ch_off)
        c.socket = s
        out.append(c)
        seen.add(c.addr)
    table = debuginfo.file_variable(UDP_FN, "sockets")
    lo, hi = table[0], table[0] + table[1].sizeof
    for _name, addr, _t in statics.find_objects(lambda t: t.name == ct.name):
        if addr in seen or lo <= addr < hi:
            continue  # a socket's (shown above, or not handed out yet)
        c = read_channel(addr)
        if c.head or c.drops or c.closed or c.waiter:
            out.append(c)
    return out


def socket_of(addr: int) -> Socket | None:
    """The socket owning the channel at addr, if it is a socket's."""
    try:
        ch_off = debuginfo.layout_of(SOCKET_TYPE).offset("ch")
        for s in sockets():
            if s.addr + ch_off == addr:
                return s
    except commands.OsvError:
        pass
    return None


def event_owner(event_addr: int) -> str | None:
    """`net channel 0x... (udp :7)` when event_addr is a net channel's wake-up event."""
    ct = channel_type()
    if ct is None:
        return None
    ch = event_addr - debuginfo.layout_of_type(ct).offset("ready_")
    s = socket_of(ch)
    if s is None:
        return None
    return f"net channel {ch:#x} (udp :{s.port})" if s.bound else f"net channel {ch:#x}"


class NetChannels(commands.OsvCommand):
    """Show the net channels: owner thread, depth, drops, state.

    With the UDP socket that owns each channel: its port, datagrams received, sent, bad.

    depth     packets pushed by the receive thread, not yet popped by the owner
    drops     packets the receive thread dropped because the channel was full
    state     open/closed; `waiting` when the owner sleeps on it; `signalled` when a
              wake-up is pending
    Usage: osv netchannels
    """

    def __init__(self) -> None:
        super().__init__("osv netchannels", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise commands.OsvError("osv netchannels takes no arguments")
        if channel_type() is None:
            gdb.write("this kernel has no net channels (no net channel type in its debug info)\n")
            return
        guestmem.inferior()
        chans = channels()
        if not chans:
            gdb.write("no net channels in use (no socket opened yet)\n")
            return
        names = thread.Names()
        rows = []
        for c in chans:
            s = c.socket
            owner = s.reader if s and s.reader else c.waiter
            state = "closed" if c.closed else "open"
            if c.waiter:
                state += ", waiting"
            if c.pending:
                state += ", signalled"
            sock = (f"udp :{s.port}" if s.bound else "udp (unbound)") if s else statics.symbolize(c.addr) or "-"
            stats = f"{s.received}/{s.sent}/{s.bad}" if s else "-"
            rows.append((f"{c.addr:#x}", sock, names.describe(owner) if owner else "-", f"{c.depth}/{c.capacity}",
                         c.drops, state, stats))
        gdb.write(fmt.table(rows, ("channel", "socket", "owner", "depth", "drops", "state",
                                      "recv/sent/bad")))


def print_channel(val: Any) -> str:
    """net channel, depth 0/256, 0 drops, owner 5 (udp-echo-0) waiting"""
    c = read_channel(printers.value_address(val))
    s = socket_of(c.addr)
    owner = s.reader if s and s.reader else c.waiter
    names = thread.Names()
    text = f"net channel, depth {c.depth}/{c.capacity}, {c.drops} drops"
    if owner:
        text += f", owner {names.describe(owner)}"
    if c.waiter:
        text += " waiting"
    if c.closed:
        text += ", closed"
    if s:
        text += f", udp port {s.port}" if s.bound else ", unbound socket"
    return text


def register() -> None:
    NetChannels()
    printers.PRINTERS.add(CHANNEL_TYPE, print_channel, "net channel")
