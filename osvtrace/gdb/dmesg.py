"""`osv dmesg [N]`: the kernel log ring (kernel/core/klog.hh): every console byte.

The ring is `klog::ring`; the count of bytes ever written is the control block's
`log_head`, which klog publishes from the first console line on (before the
trace runtime is up), so this works from early boot.
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import commands, debuginfo, guestmem

RING_SYMBOL = "klog::ring"


def log_text() -> tuple[str, int, int]:
    """(the text the ring holds, bytes ever written, ring size)."""
    addr = debuginfo.symbol_address(RING_SYMBOL)
    size = debuginfo.symbol_type(RING_SYMBOL).sizeof
    ctl = debuginfo.layout_of("trace::control")
    off, hsize, _ = ctl.field("log_head")
    head = int.from_bytes(guestmem.read_small(guestmem.control_address() + off, hsize), "little")
    if head == 0:
        return "", 0, size
    raw = guestmem.read(addr, size)
    n = min(head, size)
    start = (head - n) % size
    data = raw[start:] + raw[:start] if start + n > size else raw[start:start + n]
    data = data[-n:]
    text = data.decode("utf-8", "replace").replace("\r", "")
    if head > size:
        text = text.split("\n", 1)[1] if "\n" in text else text  # the oldest line is cut: drop it
    return text, head, size


class Dmesg(commands.OsvCommand):
    """Show the kernel log (the console output kept in the kernel's log ring).

    The ring holds the newest 64 KiB; it is readable from early boot and after a panic.

    Usage: osv dmesg [N]      the last N lines (default: all the ring holds)
    """

    def __init__(self) -> None:
        super().__init__("osv dmesg", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(arg)
        if len(argv) > 1 or (argv and not argv[0].isdigit()):
            raise commands.OsvError("usage: osv dmesg [N]")
        guestmem.inferior()
        text, head, size = log_text()
        if not head:
            gdb.write("the kernel log is empty (nothing printed yet)\n")
            return
        lines = text.splitlines()
        if argv:
            lines = lines[-int(argv[0]):] if int(argv[0]) else []
        if head > size:
            gdb.write(f"[{head - size} older bytes overwritten]\n")
        gdb.write("\n".join(lines) + ("\n" if lines else ""))


def register() -> None:
    Dmesg()
