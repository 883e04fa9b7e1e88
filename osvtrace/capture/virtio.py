"""The virtio-serial transport (`record --via virtio`): stream the guest's trace into an .osvt
as it runs. The wire protocol is osvtrace.capture.stream; the control relay osvtrace.capture.ctl.

Order of events (the order matters):

1. Listen on two unix sockets, *then* start QEMU, which connects to them as a
   client (``-chardev socket,path=...`` without server=on). QEMU silently drops
   what a port sends while no host end is connected (with server=on,wait=off and
   no reader): listening first means the host end exists before the guest runs.
2. The guest (tracemode=stream) brings up its virtio console, waits for the
   host end of ``org.osvtrace.trace``, starts its drain thread and then the app.
3. Frames arrive: the meta frame opens the .osvt (metadata from the guest);
   each data frame becomes one chunk, appended as it arrives; thread frames add
   names; ack frames answer control commands; the end frame closes the stream.
4. The recording stops at the app's exit (end frame, then QEMU exits with the
   app's status), at --duration or Ctrl-C (a `stop` command: the guest sends
   the rest of its rings and the end frame, then QEMU is ended), or when QEMU
   dies (the file keeps every complete chunk; the error says what happened).

QEMU never outlives the recorder (osvtrace.vm.proc: own session, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import dataclasses
import os
import re
import selectors
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from osvtrace.capture import ctl, stream
from osvtrace.capture.base import WHEN, Captured, CaptureError, VmCapture, VmRun, ending, lost_text
from osvtrace.vm.qemu import Outcome, Vm, VmConfig

CONNECT_TIMEOUT = 15.0  # QEMU start to both chardevs connected
STOP_GRACE = 15.0  # a `stop` to the end frame (the guest sends the rest of its rings first)
TICK = 0.25  # progress line, file flush, clocks
DEFAULT_SOCKET_DIR = None  # a fresh directory under $TMPDIR


class _WriteFailed(Exception):
    """Writing the .osvt failed (disk full, file size limit ...): the recording cannot go on."""


def _listen(path: Path, replace_stale: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if replace_stale and path.is_socket():
            path.unlink()  # left by an earlier recording that was killed
        s.bind(str(path))
    except OSError as e:
        s.close()
        raise CaptureError(f"cannot listen on {path}: {e.strerror or e}") from None
    s.listen(4)
    return s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_socket_dirs(tmp: Path | None = None) -> int:
    """Remove the socket directories of recorders that died without cleaning up (SIGKILL):
    each is named after its recorder's pid. Returns how many went."""
    n = 0
    for d in Path(tmp or tempfile.gettempdir()).glob("osvtrace-rec-*-*"):
        m = re.fullmatch(r"osvtrace-rec-(\d+)-\w+", d.name)
        if m and int(m[1]) != os.getpid() and not _alive(int(m[1])):
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


def virtio_args(machine: str, trace_sock: Path, ctl_sock: Path) -> list[str]:
    """QEMU arguments for the virtio-serial device and its two named ports."""
    # max_ports=4: the guest sets up queues for every port at once (few ports, little memory).
    dev = "virtio-serial-device,max_ports=4" if machine == "microvm" else \
        "virtio-serial-pci,max_ports=4,disable-modern=on"
    return ["-device", dev,
            "-chardev", f"socket,id=osvtrace-trace,path={trace_sock}",
            "-device", f"virtserialport,chardev=osvtrace-trace,name={stream.PORT_NAME},nr=1",
            "-chardev", f"socket,id=osvtrace-ctl,path={ctl_sock}",
            "-device", f"virtserialport,chardev=osvtrace-ctl,name={stream.CTL_PORT_NAME},nr=2"]


class _Sink(stream.StreamSink):
    """Frames -> the .osvt writer (opened by the meta frame)."""

    def __init__(self, rec: "VirtioStream"):
        self.rec = rec

    def on_meta(self, meta: stream.Meta) -> None:
        self.rec._open_writer(meta)

    def on_data(self, cpu: int, seq: int, lost: int, slots: memoryview, records: int) -> None:
        w = self.rec.writer
        assert w is not None
        # An empty frame only carries the final lost counter: worth a chunk only if it grew.
        if len(slots) or lost > w.lost.get(cpu, 0):
            self.rec._write(w.write_chunk, cpu, seq, slots, lost)
            self.rec.written_records += records

    def on_threads(self, names: dict[int, str]) -> None:
        assert self.rec.writer is not None
        self.rec.threads.update(names)
        self.rec._write(self.rec.writer.add_threads, names)

    def on_end(self, end: stream.End) -> None:
        self.rec.end = end
        if self.rec.relay is not None:
            self.rec.relay.ended = True

    def on_ack(self, ack: stream.Ack) -> None:
        if self.rec.relay is not None:
            self.rec.relay.ack(ack.id, ack.result, ack.tsc, ack.message)


class VirtioStream(VmCapture):
    """One streaming recording over virtio-serial; the recorder (osvtrace.capture.recorder)
    boots the VM around it."""

    name = "virtio"

    def __init__(self, output: str | Path, *, duration: float | None = None, ctl_socket: str | Path | None = None,
                 progress: bool = False, on_ready: Callable[[Path], None] | None = None):
        super().__init__(output, duration=duration)
        self.output = self.output.resolve()  # `ctl status` reports it to clients in other directories
        self.ctl_path = Path(ctl_socket).resolve() if ctl_socket else None
        self._user_ctl = self.ctl_path is not None  # removed at the end; a fresh one goes with its directory
        self.progress_on = progress
        self.on_ready = on_ready  # called with the ctl socket path once QEMU is connected
        self.kernel = ""  # the kernel's path, for the file's metadata (known at prepare)
        self.timeout: float | None = None
        self._t0 = time.monotonic()  # --duration and --timeout count from here (reset at prepare)
        self._tmp: Path | None = None
        self._listeners: list[socket.socket] = []
        self._trace_conn: socket.socket | None = None
        self.status = "incomplete: the recorder failed"  # the file's trailer, until we know better
        self._warnings: list[str] = []
        self.writer = None
        self.end: stream.End | None = None
        self.threads: dict[int, str] = {}
        self.meta: stream.Meta | None = None
        self.parser = stream.StreamParser(_Sink(self))
        self.received = 0
        self.written_records = 0  # records in chunks that reached the file
        self._good = 0  # file offset after the last section that reached the file whole
        self._guest_ctl: socket.socket | None = None
        self.relay: ctl.Relay | None = None
        self._stop_reason: str | None = None
        self._write_error: OSError | None = None
        self._stop_deadline: float | None = None
        # Everything the meta frame needs, ready before QEMU starts: parsing the schema
        # takes tens of ms, and while the recorder does not read, the guest's rings fill.
        from osvtrace.catalog.schema import default_catalog
        from osvtrace.format.osvt import new_metadata

        self._catalog = default_catalog()
        self._md_template = new_metadata(self._catalog, ncpus=1, tsc_hz=1, capture="virtio")

    # ------------------------------------------------------------ writer

    def _open_writer(self, meta: stream.Meta) -> None:
        from osvtrace.format.osvt import TraceWriter

        self.meta = meta
        cat = self._catalog
        # Time zero on the host's wall clock: the meta frame left the guest at tsc_start.
        since_boot = (meta.tsc_start - meta.tsc_boot) / meta.tsc_hz if meta.tsc_hz else 0.0
        md = type(self._md_template)()
        md.CopyFrom(self._md_template)
        md.ncpus, md.tsc_hz, md.tsc_boot = meta.ncpus, meta.tsc_hz, meta.tsc_boot
        md.tsc_offset.extend(meta.tsc_offset)
        md.cmdline, md.build_id, md.kernel = meta.cmdline, meta.build_id, self.kernel
        md.wall_clock_ns = int((time.time() - since_boot) * 1e9)
        md.extra["enabled"] = ",".join(tp.name for tp in cat.active()
                                       if tp.id < len(meta.enabled) and meta.enabled[tp.id])
        md.extra["drain_period_us"] = str(meta.drain_period_us)
        md.extra["ring_slots"] = str(meta.ring_slots)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed once header and metadata are in: a
        # recorder killed (or a disk full) right now leaves no file without metadata.
        part = self.output.with_name(self.output.name + ".part")
        try:
            w = TraceWriter(part, md)
            os.replace(part, self.output)
        except OSError as e:
            part.unlink(missing_ok=True)
            self._write_error = e
            raise _WriteFailed from None
        w.path = self.output
        self.writer = w
        self._good = w.f.tell()

    def _write(self, fn, *args) -> None:
        """One section through the writer, flushed at once, so that a failed write (disk full)
        leaves every earlier section whole on disk and the file can be cut back to them."""
        assert self.writer is not None
        try:
            fn(*args)
            self.writer.flush()
        except OSError as e:
            self._write_error = e
            raise _WriteFailed from None
        self._good = self.writer.f.tell()

    def _salvage(self) -> str:
        """After a failed write: cut the file back to its last whole section, then try to end
        it properly (each CPU's final lost counter, and a trailer whose end_seq counts what
        arrived but is not in the file as a gap). Returns what the file holds, for the message."""
        w = self.writer
        assert w is not None
        self.writer = None  # nothing else may write through it until it is cut back
        try:
            w.reopen()
        except OSError:
            return "no trailer"
        try:
            w.f.truncate(self._good)
            w.f.seek(self._good)
            for cpu, st in sorted(self.parser.cpus.items()):
                if st.lost > w.lost.get(cpu, 0):
                    w.write_chunk(cpu, w.end_seq.get(cpu, 0), b"", st.lost)
                if st.next_seq is not None:
                    w.end_seq[cpu] = max(w.end_seq.get(cpu, 0), st.next_seq)
            w.close(f"incomplete: cannot write the file: {self._write_error.strerror or self._write_error}")
            ended = "a trailer"
        except OSError:
            try:
                w.f.close()
                os.truncate(self.output, self._good)
            except OSError:
                pass  # the reader skips a torn last section with a warning
            ended = "no trailer (no room for it)"
        return ended

    # ------------------------------------------------------------ control

    def _ctl_status(self) -> dict:
        lost = {str(c): s.lost for c, s in self.parser.cpus.items()}
        return {"message": f"{self.parser.records:,} events, {sum(lost.values()):,} lost, "
                           f"{self.received / 1e6:.1f} MB received",
                "records": self.parser.records, "lost": lost, "bytes": self.received,
                "output": str(self.output.resolve())}

    # ------------------------------------------------------------ stopping

    def _begin_stop(self, reason: str, send: bool = True) -> None:
        """Ask the guest to end its stream (the rest of the rings, then the end frame)."""
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        self._stop_deadline = time.monotonic() + STOP_GRACE
        if send and self.relay is not None:
            self.relay.command("stop")

    # ------------------------------------------------------------ main loop

    def prepare(self, cfg: VmConfig) -> VmConfig:
        """Listen on the chardev sockets *before* QEMU starts (see the module's docstring), and
        boot with the rings in stream mode and the virtio-serial ports."""
        self.kernel, self.timeout, self._t0 = str(cfg.kernel), cfg.timeout, time.monotonic()
        sweep_stale_socket_dirs()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"osvtrace-rec-{os.getpid()}-"))
        trace_path, guest_ctl_path = self._tmp / "trace.sock", self._tmp / "guest-ctl.sock"
        self.ctl_path = self.ctl_path or self._tmp / "ctl.sock"
        for p in (trace_path, guest_ctl_path, self.ctl_path):
            self._listeners.append(_listen(p, replace_stale=p == self.ctl_path))
        # No timeout for Vm itself: the stream loop stops the guest cleanly at cfg.timeout.
        return dataclasses.replace(cfg, tracemode="stream", timeout=None,
                                   extra_args=list(cfg.extra_args) + virtio_args(cfg.machine, trace_path, guest_ctl_path))

    def attach(self, vm: Vm) -> str:
        """Accept QEMU's connections, then receive (and relay ctl commands) until the stream ends."""
        from osvtrace.progress import Progress

        trace_l, guest_ctl_l, ctl_l = self._listeners
        self._trace_conn, self._guest_ctl = self._accept_qemu(vm, trace_l, guest_ctl_l)
        self.relay = ctl.Relay(self._guest_ctl, self._ctl_status, lambda: self._begin_stop("ctl-stop", send=False))
        assert self.ctl_path is not None
        if self.on_ready:
            self.on_ready(self.ctl_path)
        with Progress(self.progress_on) as prog:
            try:
                return self._loop(vm, self._trace_conn, ctl_l, prog, self._t0)
            except stream.StreamError as e:
                self.status = f"incomplete: {e}"
                raise CaptureError(f"{e}; the trace up to there is in {self.output}") from None
            except _WriteFailed:
                vm.stop()  # nowhere to put what it sends: end it now
                raise self._write_failed() from None

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        self.status = self._status(run.stop, run.outcome)
        if self.writer is not None:
            self.writer.close(self.status)
            self.writer = None
        return self._captured(run)

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()
        for s in self._listeners + [c for c in (self._trace_conn, self._guest_ctl) if c]:
            s.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._user_ctl and self.ctl_path and self.ctl_path.is_socket():
            self.ctl_path.unlink()
        if self.writer is not None:
            self.writer.close(self.status)  # NOTE: also on errors: every chunk received stays readable

    def _captured(self, run: VmRun) -> Captured:
        """The result, worded for a stream: rates, and where the trace ends if QEMU died first."""
        lost = {c: s.lost for c, s in sorted(self.parser.cpus.items())}
        cpus = self.meta.ncpus if self.meta else 0
        seconds = time.monotonic() - run.started
        records, received, stop, outcome = self.parser.records, self.received, run.stop, run.outcome
        res = Captured(self.output, self.name, stop, outcome, cpus, records, None, lost, seconds,
                       warnings=self._warnings, console=run.console, refused=run.refused,
                       extras={"stream_bytes": received})
        size = self.output.stat().st_size if self.output.exists() else 0
        rate, mb_s = (records / seconds, received / seconds / 1e6) if seconds else (0, 0)
        res.summary = (f"recorded {records:,} events on {cpus} CPU(s) {WHEN[stop]}, {lost_text(lost)}: "
                       f"{self.output} ({size / 1e6:,.1f} MB, {seconds:.2f} s, {rate / 1e6:.2f} M events/s, "
                       f"{mb_s:.1f} MB/s)")
        if not cpus:
            res.failure = f"the guest never started streaming ({outcome.describe()}); no trace saved"
        elif stop == "qemu-died" and outcome.kind == "panic":
            res.failure = (f"kernel panic; the trace up to it is in {self.output} (records still in the rings at "
                           "the panic are lost: --via shm keeps them)")
        elif stop == "qemu-died":
            res.failure = (f"QEMU ended before the stream did ({outcome.describe()}); the trace up to its last "
                           f"complete chunk is in {self.output}")
        else:
            res.failure = ending(stop, outcome, self.output, self.timeout)
        return res

    def _write_failed(self) -> CaptureError:
        """The one-line error for a failed write, after saving what can be saved."""
        e = self._write_error
        why = e.strerror or str(e) if e else "unknown error"
        if self.writer is None:
            return CaptureError(f"cannot write {self.output}: {why}; recording stopped, no trace saved", 1)
        ended = self._salvage()
        unwritten = self.parser.records - self.written_records
        counted = " (the trailer counts their slots as a gap)" if ended == "a trailer" else ""
        return CaptureError(f"cannot write {self.output}: {why}; recording stopped: the file holds "
                           f"{self.written_records:,} events up to its last complete chunk and {ended}; "
                           f"{unwritten:,} events received after it are not in it{counted}", 1)

    def _accept_qemu(self, vm: Vm, trace_l: socket.socket, ctl_l: socket.socket) -> tuple[socket.socket, socket.socket]:
        """Both chardev connections from QEMU (it makes them at start-up, before the guest runs)."""
        conns: dict[socket.socket, socket.socket] = {}
        deadline = time.monotonic() + CONNECT_TIMEOUT
        for lst in (trace_l, ctl_l):
            lst.settimeout(0.05)
        while len(conns) < 2:
            for lst in (trace_l, ctl_l):
                if lst in conns:
                    continue
                try:
                    c, _ = lst.accept()
                except (TimeoutError, BlockingIOError):
                    continue
                c.setblocking(True)
                conns[lst] = c
            if len(conns) < 2:
                if not vm.running:
                    out = vm.wait(5)
                    raise CaptureError("QEMU ended before connecting to the trace port: " + out.describe()
                                      + (f": {vm.errors.decode(errors='replace').strip()}" if vm.errors else ""),
                                      out.exit_code)
                if time.monotonic() > deadline:
                    raise CaptureError(f"QEMU did not connect to the trace sockets within {CONNECT_TIMEOUT:g} s")
        return conns[trace_l], conns[ctl_l]

    def _loop(self, vm: Vm, conn: socket.socket, ctl_l: socket.socket, prog: Any, t0: float) -> str:
        """Receive until the stream ends (or QEMU does); returns why it stopped (warnings in
        self._warnings)."""
        sel = selectors.DefaultSelector()
        conn.setblocking(False)
        ctl_l.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, "trace")
        sel.register(ctl_l, selectors.EVENT_READ, "accept")
        self._deadlines = {"duration": t0 + self.duration if self.duration else None,
                           "timeout": t0 + self.timeout if self.timeout else None}
        self._vm_gone: float | None = None
        next_tick = time.monotonic() + TICK
        handled = 0
        restore = self._count_interrupts()
        try:
            while True:
                eof = False
                for key, _ in sel.select(max(0.0, next_tick - time.monotonic())):
                    eof |= self._on_ready(key, sel, conn, ctl_l)
                if eof:
                    return self._after_eof(vm)
                if self.end is not None and self.end.reason == stream.END_STOPPED:
                    return self._stop_reason or "ctl-stop"
                if self._interrupts > handled:
                    handled = self._interrupts
                    if handled > 1 or self.meta is None:
                        return "interrupt"
                    self._begin_stop("interrupt")
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK
                    done = self._tick(vm, prog, now)
                    if done:
                        return done
        finally:
            restore()
            sel.close()

    def _count_interrupts(self) -> Callable[[], None]:
        """Ctrl-C (and SIGTERM) while receiving: counted, acted on between two reads.

        NOTE: a KeyboardInterrupt raised wherever the signal lands could cut the parser
        between handing a frame on and advancing past it (the frame is then parsed twice:
        a desynchronised stream) or drop bytes already received. Returns what restores the
        previous handlers. Outside the main thread signals cannot be caught; nothing to do."""
        self._interrupts = 0
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def count(signum: int, frame: object) -> None:
            self._interrupts += 1

        before = {sig: signal.signal(sig, count) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in before.items():
                signal.signal(sig, handler)
        return restore

    def _on_ready(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, conn: socket.socket,
                  ctl_l: socket.socket) -> bool:
        """One ready socket; True at the end of the trace stream."""
        if key.data == "trace":
            try:
                if not self._read_trace(conn):
                    sel.unregister(conn)
                    return True
            except BlockingIOError:
                pass
        elif key.data == "accept":
            try:
                c, _ = ctl_l.accept()
            except BlockingIOError:
                return False
            assert self.relay is not None
            self.relay.add_client(c)
            sel.register(c, selectors.EVENT_READ, "client")
        else:
            assert self.relay is not None
            c = key.fileobj
            if not self.relay.read_client(c):  # type: ignore[arg-type]
                sel.unregister(c)
                self.relay.drop(c)  # type: ignore[arg-type]
        return False

    def _tick(self, vm: Vm, prog: Any, now: float) -> str | None:
        """Flush, progress, clocks; the reason to stop now, if any."""
        if self.writer is not None:
            self._write(lambda: None)  # a recorder killed now leaves every chunk so far readable
        lost = {c: s.lost for c, s in sorted(self.parser.cpus.items())}
        prog.update(self.parser.records, self.received, lost, "stopping" if self._stop_reason else "recording")
        for why, when in self._deadlines.items():
            if when and now >= when:
                self._begin_stop(why)
        if self._stop_deadline and now >= self._stop_deadline:
            self._warnings.append(f"the guest sent no end frame within {STOP_GRACE:g} s of `stop`; the trace "
                                  "ends with what had arrived")
            return self._stop_reason or "duration"
        # QEMU gone: its end of the socket closes with it, so EOF follows at once; this only
        # guards against a socket that never reports it.
        if vm.running:
            self._vm_gone = None
        elif self._vm_gone is None:
            self._vm_gone = now
        elif now - self._vm_gone > 5:
            return self._after_eof(vm)
        return None

    def _read_trace(self, conn: socket.socket) -> bool:
        """One receive into the parser; False at end of stream."""
        try:
            n = conn.recv_into(self.parser.free_space())
        except ConnectionResetError:
            return False
        if n == 0:
            return False
        self.received += n
        self.parser.commit(n)
        return True

    def _after_eof(self, vm: Vm) -> str:
        """The trace stream closed: QEMU is exiting (or gone)."""
        if self.end is not None:
            return "app-exit" if self.end.reason == stream.END_APP_EXIT else (self._stop_reason or "ctl-stop")
        return "qemu-died"

    def _status(self, stop: str, outcome: Outcome) -> str:
        if stop == "app-exit" and self.end is not None:
            return f"app exited with status {self.end.status}"
        if outcome.kind == "panic":
            return "kernel panic"
        return {"duration": "stopped after the duration", "interrupt": "stopped by Ctrl-C",
                "ctl-stop": "stopped by a ctl stop command", "timeout": "stopped at the timeout"}.get(
            stop, f"incomplete: {outcome.describe()}")
