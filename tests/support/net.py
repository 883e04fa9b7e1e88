"""Booting a network app in QEMU (user-mode networking, a forwarded UDP port on 127.0.0.1)
and driving it from the host, for the net tests and tests/bench/bench_net.py.

`NetGuest` boots the app (plain run, or streaming its trace into an .osvt), waits for the
app's "listening on udp port" line, and gives the forwarded host port; leaving the block
waits for the app to end (its --count/--idle-exit) and stops QEMU if it does not.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from osvtrace.capture import recorder
from osvtrace.capture.base import Captured
from osvtrace.vm import qemu

LISTENING = b"listening on udp port"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UdpSender:
    """Datagrams to a guest's UDP port on 127.0.0.1 every millisecond until `stop` is set,
    replies read and counted; never blocks (the guest may be stopped or not up yet)."""

    def __init__(self, port: int, payload: bytes | None = None) -> None:
        self.port, self.payload = port, payload
        self.sent = self.replies = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="udp-sender")

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            while not self.stop.wait(0.001):
                try:
                    s.sendto(self.payload or b"udp %d" % self.sent, ("127.0.0.1", self.port))
                    self.sent += 1
                    while True:
                        s.recvfrom(2048)
                        self.replies += 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass


class ConsoleWatch:
    """A console sink (bytes in) that can be waited on for a line."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._cv = threading.Condition()

    def write(self, data: bytes) -> None:
        with self._cv:
            self.data += data
            self._cv.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while needle not in self.data:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def text(self) -> str:
        with self._cv:
            return self.data.decode("utf-8", "replace")


class NetGuest:
    """``with NetGuest(kernel, ["udp-echo", "7", "--count", "100"]) as g: ... g.port ...``"""

    def __init__(self, kernel: Path, app_argv: list[str], *, guest_port: int, smp: int = 1,
                 machine: str = "microvm", trace: str | None = None, record_to: Path | None = None,
                 tracebuf: str | None = None, timeout: float = 120, boot_timeout: float = 30,
                 extra_args: list[str] | None = None):
        self.port = free_udp_port()
        self.cfg = qemu.VmConfig(app=app_argv[0], args=tuple(app_argv[1:]), kernel=kernel, smp=smp,
                                 machine=machine, accel="tcg", trace=trace, tracebuf=tracebuf, net="user",
                                 hostfwd=(f"udp:{self.port}-:{guest_port}",), timeout=timeout,
                                 extra_args=list(extra_args or []))
        self.record_to = record_to
        self.boot_timeout = boot_timeout
        self.console = ConsoleWatch()
        self.vm: qemu.Vm | None = None
        self.outcome: qemu.Outcome | None = None
        self.recording: Captured | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> "NetGuest":
        if self.record_to is None:
            self.vm = qemu.Vm(self.cfg, console=self.console).start()
        else:
            self.cfg.tracebuf = self.cfg.tracebuf or "16M"  # as `osvtrace record` does
            self._thread = threading.Thread(target=self._record, daemon=True, name="net-guest-recorder")
            self._thread.start()
        if not self.console.wait_for(LISTENING, self.boot_timeout):
            self._stop()
            raise AssertionError(f"the app never said it was listening; console:\n{self.console.text()}")
        return self

    def _record(self) -> None:
        try:
            self.recording = recorder.record(self.cfg, self.record_to, console=self.console)
        except BaseException as e:  # reported by wait()
            self._error = e

    def wait(self, timeout: float | None = None) -> qemu.Outcome:
        """Waits for the app to end by itself; returns how QEMU ended."""
        timeout = self.cfg.timeout if timeout is None else timeout
        if self.vm is not None:
            self.outcome = self.vm.wait(timeout)
        else:
            assert self._thread is not None
            self._thread.join(timeout)
            if self._error:
                raise self._error
            assert self.recording is not None, "the recorder is still running"
            self.outcome = self.recording.outcome
        return self.outcome

    def _stop(self) -> None:
        if self.vm is not None:
            self.vm.stop()
        elif self._thread is not None and self._thread.is_alive():
            self._thread.join(self.cfg.timeout or 60)

    def __exit__(self, *exc: object) -> None:
        if self.outcome is None:
            self._stop()
