"""Live sources: batches of newly decoded events from a recording in progress.

The live screen (top.py) needs only :class:`LiveSource`: something whose ``poll()``
returns the events that arrived since the last call, as columns. All three sources
follow the .osvt file a recorder appends to (scanning only the sections added since the
last poll), so the screen reads exactly what will be analysed later and never competes
with the recorder for the guest's stream:

- a growing file: :class:`GrowingFileSource`;
- a running `osvtrace record`, named by its control socket: :class:`RecorderSource` asks
  the recorder where it writes (ctl `status`) and follows that file;
- an application: :class:`AppRecording` starts `osvtrace record` for it and follows its
  file; closing the screen stops the recording (the guest sends what its rings hold).
"""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from osvtrace.catalog import layout
from osvtrace.catalog.schema import Catalog, default_catalog
from osvtrace.errors import TraceFormatError, UsageError
from osvtrace.format.args import SlotArgs
from osvtrace.format.decode import decode
from osvtrace.format.osvt import Chunk, map_file, scan, schema_from_proto


@dataclass
class Batch:
    """Events that arrived together, in time order, with what the source knows so far."""

    time: np.ndarray  # int64 ns
    cpu: np.ndarray  # uint16
    tid: np.ndarray  # uint32
    tp: np.ndarray  # uint16
    catalog: Catalog
    ncpus: int
    threads: dict[int, str] = field(default_factory=dict)  # every name known so far
    lost: dict[int, int] = field(default_factory=dict)  # per CPU, records/slots missing so far (cumulative)
    finished: bool = False  # the recording ended (the file has its trailer)
    _args: SlotArgs | None = None  # the mapped file's slots, and each event's first slot in it
    _rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time)

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, mask): the scalar argument `name` of every event that has one (0 elsewhere)."""
        if self._args is None:
            return np.zeros(len(self), np.int64), np.zeros(len(self), bool)
        return self._args.field(self.catalog, self.tp, self._rows, name)

    def args(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(indices, argument columns) of this batch's events of one tracepoint."""
        tp = self.catalog.by_name[name]
        sel = np.nonzero(self.tp == tp.id)[0]
        if self._args is None:
            return sel, {f.name: np.empty(0, f.dtype) for f in tp.fields}
        return sel, self._args.of(tp, self._rows[sel])


class LiveSource(Protocol):
    """Where the live screen gets events from."""

    name: str

    def poll(self) -> Batch | None:
        """Events that arrived since the last call (None: nothing new yet)."""
        ...

    def close(self) -> None:
        ...


class GrowingFileSource:
    """Follows an .osvt file that a writer is still appending to (or has finished)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = str(self.path)
        self.catalog: Catalog | None = None
        self._size = -1
        self._end = 0  # file offset after the last whole section scanned
        self._meta = None
        self._ncpus = 0
        self.threads: dict[int, str] = {}
        self._expect: dict[int, int] = {}  # per CPU: next slot sequence number
        self._gaps: dict[int, int] = {}
        self._dropped: dict[int, int] = {}
        self.events = 0
        self.finished = False

    def poll(self) -> Batch | None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None  # not created yet: keep waiting
        if size == self._size:
            return None
        if size < self._size:
            raise TraceFormatError(f"{self.name}: the file shrank from {self._size} to {size} bytes "
                                   f"(overwritten by another recording?)")
        mm = map_file(self.path)
        try:
            # only the sections after the last whole one seen: a long recording costs each
            # refresh what arrived since the last, not the whole file again
            sc = scan(mm, self.name, verify=True, workers=1, start=self._end, meta=self._meta)
        except TraceFormatError:
            if self._meta is None and size < 1 << 20:
                return None  # the writer has not finished its metadata yet
            raise
        self._size = size
        self._end = sc.end
        meta = self._meta = sc.meta
        if self.catalog is None:
            self.catalog = schema_from_proto(meta.schema) if meta.schema.tracepoints else default_catalog()
        self.threads.update(sc.threads)
        self.finished = self.finished or sc.trailer is not None
        new = sc.chunks
        self._ncpus = max(self._ncpus, meta.ncpus, max((c.cpu for c in new), default=-1) + 1)
        if not new:
            return Batch(*(np.empty(0, t) for t in (np.int64, np.uint16, np.uint32, np.uint16)), self.catalog,
                         self._ncpus, dict(self.threads), self.lost, self.finished)
        self._account(new)
        n = len(mm) // layout.SLOT_SIZE
        slots = np.frombuffer(mm, layout.SLOT_DTYPE, count=n)
        d = decode(slots, new, self.catalog, tsc_hz=meta.tsc_hz or 1_000_000_000, tsc_boot=meta.tsc_boot,
                   tsc_offsets=list(meta.tsc_offset), workers=1)
        self.events += len(d.time)
        return Batch(d.time, d.cpu, d.tid, d.tp, self.catalog, self._ncpus, dict(self.threads), self.lost,
                     self.finished, SlotArgs(slots), d.rows.astype(np.int64))

    def _account(self, chunks: list[Chunk]) -> None:
        """Loss as the chunks arrive: gaps in each CPU's slot sequence, and the ring's drop counter."""
        for c in sorted(chunks, key=lambda c: (c.cpu, c.first_seq)):
            exp = self._expect.get(c.cpu)
            if exp is not None and c.first_seq > exp:
                self._gaps[c.cpu] = self._gaps.get(c.cpu, 0) + c.first_seq - exp
            self._expect[c.cpu] = max(exp or 0, c.first_seq + c.nslots)
            self._dropped[c.cpu] = max(self._dropped.get(c.cpu, 0), c.lost_total)

    @property
    def lost(self) -> dict[int, int]:
        cpus = set(self._gaps) | set(self._dropped)
        return {c: self._gaps.get(c, 0) + self._dropped.get(c, 0) for c in sorted(cpus)}

    def close(self) -> None:
        pass


class RecorderSource(GrowingFileSource):
    """A running `osvtrace record`, reached through its control socket."""

    def __init__(self, socket_path: str | os.PathLike):
        from osvtrace.capture import ctl

        try:
            st = ctl.send(socket_path, "status", timeout=5.0)
        except ctl.CtlError as e:
            raise UsageError(f"--live {socket_path}: {e}") from None
        out = st.get("output")
        if not out:
            raise UsageError(f"--live {socket_path}: the recorder did not say where it writes (an older osvtrace?)")
        super().__init__(out)
        self.name = f"{out} (recording, control {socket_path})"


class AppRecording(GrowingFileSource):
    """`osvtrace record` of an application, started for the screen and stopped with it."""

    def __init__(self, command: str, output: str | os.PathLike | None = None, record_args: list[str] | None = None):
        argv = shlex.split(command)
        if not argv:
            raise UsageError("--live: which application to record?")
        if output is None:
            output = f"live-{Path(argv[0]).name}-{time.strftime('%Y%m%d-%H%M%S')}.osvt"
        self.tmp = tempfile.TemporaryDirectory(prefix="osvtrace-live-")
        self.ctl_socket = Path(self.tmp.name) / "ctl.sock"
        self.log_path = Path(self.tmp.name) / "record.log"
        super().__init__(Path(output).resolve())
        if self.path.exists():
            raise UsageError(f"--live: {self.path} exists; name another file with -o")
        self.name = f"{self.path} (recording {argv[0]})"
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "osvtrace", "record", "-o", str(self.path), "--ctl-socket",
               str(self.ctl_socket), *(record_args or []), *argv]
        # its own session: a Ctrl-C meant for the screen must not reach QEMU first; the
        # recorder ends QEMU itself, and close() ends the recorder
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def returncode(self) -> int | None:
        """The recorder's exit status (None while it runs)."""
        return self.proc.poll()

    def poll(self) -> Batch | None:
        b = super().poll()
        if b is None and self.returncode is not None and not self.finished and not self.path.exists():
            raise UsageError(f"the recording failed before writing anything: {self.log_tail(1)}")
        return b

    def close(self) -> None:
        """Stop the recording if it still runs: ask for `stop` (the rings drain first),
        then SIGINT, then SIGKILL of its process group."""
        from osvtrace.capture import ctl

        if self.proc.poll() is None:
            try:
                ctl.send(self.ctl_socket, "stop", timeout=10.0)
            except (ctl.CtlError, UsageError, OSError):
                pass  # not listening yet or already ending: the signals below will do
            for sig, wait in ((None, 30.0), (signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
                if sig is not None:
                    try:
                        os.killpg(self.proc.pid, sig)
                    except ProcessLookupError:
                        break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc.wait()
        self._log.close()

    def log_tail(self, n: int = 6) -> str:
        """The recorder's last lines (its summary, or why it failed)."""
        try:
            lines = self.log_path.read_bytes().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join([line for line in lines if line.strip()][-n:])


def open_source(spec: str, *, output: str | None = None, record_args: list[str] | None = None) -> LiveSource:
    """A live source from what the user named: a trace file being written, the control
    socket of a running `osvtrace record`, or an application to record (its command line;
    `record_args` are options for `osvtrace record`, `output` its file)."""
    kind = _kind(spec)
    if kind == "app":
        return AppRecording(spec, output, record_args)
    if record_args or output:
        raise UsageError(f"shell: -o and the VM options are for --live APP; {spec} is already a recording")
    return RecorderSource(spec) if kind == "socket" else GrowingFileSource(spec)


def _kind(spec: str) -> str:
    """socket (a recorder's control socket), file (a trace, maybe not there yet) or app."""
    try:
        st = Path(spec).stat()
    except FileNotFoundError:
        if spec.endswith(".osvt"):
            return "file"  # not there yet: waited for
        if os.sep in (spec.split() or [""])[0]:  # app names have no slash: a path that is not there
            raise UsageError(f"--live {spec}: no such file or socket") from None
        return "app"
    except OSError as e:
        raise UsageError(f"--live {spec}: {e.strerror}") from None
    if stat.S_ISSOCK(st.st_mode):
        return "socket"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise UsageError(f"--live {spec}: not a trace file, a recorder's control socket or an application")
