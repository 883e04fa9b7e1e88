"""`osv netchannels`: Van Jacobson net channels (kernel/net/, once it exists).

This kernel may have no networking yet: the command then says so in one line.
"""

from __future__ import annotations

import gdb  # type: ignore[import-not-found]

from osvtrace.gdb import common

CHANNEL_TYPES = ("net_channel", "net::channel", "netchannel")


def channel_type() -> str | None:
    """The kernel's net channel type, if it has one."""
    for name in CHANNEL_TYPES:
        if common.has_type(name):
            return name
    return None


class NetChannels(common.OsvCommand):
    """Show the net channels: owner thread, depth and drops of each.

    Usage: osv netchannels
    """

    def __init__(self) -> None:
        super().__init__("osv netchannels", gdb.COMMAND_DATA)

    def run(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise common.OsvError("osv netchannels takes no arguments")
        name = channel_type()
        if name is None:
            gdb.write("this kernel has no net channels (no net channel type in its debug info)\n")
            return
        raise common.OsvError(f"this kernel has net channels ({name}), but this osvtrace cannot read them yet")


def register() -> None:
    NetChannels()
