"""Real OSv through its own REST API (`record --kernel osv --via rest`): no debugger; OSv's
HTTP server (the httpserver-api module, in images built with REST=1) answers
`GET /trace/buffers` with an OSVT dump of every CPU's trace buffer (core/trace.cc
`create_trace_dump()`), the file osvtrace and OSv's trace.py already read.

The server must be there when the app has ended, and OSv powers off then: the /init of a
REST image starts the server detached (`&!`), and OSv ends detached apps when the command
line's apps are done. So the command line is our own (`--noinit`, /init's daemon left out):

- to the app's end: `APP ARGS; /libhttpserver-api.so`. The server starts only after the app
  has ended, and never ends, so its first answer on the forwarded port is the app's end,
  without polling the guest while the app runs. The server's start-up is traced too (its
  records follow the app's, in the same rings);
- with --duration: `/libhttpserver-api.so & APP ARGS`, the server beside the app; the dump is
  fetched S seconds after the app's start (OSv's `Cmdline:` line), the app still running.

QEMU's user network forwards a free port on 127.0.0.1 to the guest's port 8000. The dump is
written as it came (tag, chunks and all); at the app's end the VM is powered off through the
same API (`POST /os/poweroff`), a clean QEMU exit, as the gdb capture's.
"""

from __future__ import annotations

import dataclasses
import http.client
import shutil
import time
import urllib.request
from pathlib import Path

from osvtrace.capture.base import WHEN, Captured, CaptureError, VmRun, ending
from osvtrace.capture.osv_base import DEFAULT_RUN_LIMIT, LAUNCH_FAILED, READY, OsvCapture
from osvtrace.capture.osv_watch import ProgressWatch
from osvtrace.vm import osv_image
from osvtrace.vm.qemu import EXIT_TIMEOUT, Outcome, Vm, VmConfig, free_port, pick_accel

SERVER = "/libhttpserver-api.so"  # modules/httpserver-api's executable, in the image's root
GUEST_PORT = 8000  # the server's default port (modules/httpserver-api/global_server.cc)
FETCH_TIMEOUT = 300.0  # the dump is built in the guest, then sent in one reply (TCG: MB/s)
POLL_S = 0.5  # between tries of the forwarded port while the app runs
NO_SERVER = "Failed to load object: " + SERVER
DUMP_MAGIC = b"TVSO"  # an OSVT dump's first bytes (osvtrace.format.osv_dump)
QCOW2_MAGIC = b"QFI\xfb"


def image_files(image: Path) -> list[Path]:
    """The image and the qcow2 backing files under it (an overlay holds only what changed)."""
    chain = [image]
    while len(chain) < 8:
        with open(chain[-1], "rb") as fh:
            head = fh.read(20)
            if head[:4] != QCOW2_MAGIC:
                break
            off, size = int.from_bytes(head[8:16], "big"), int.from_bytes(head[16:20], "big")
            if not off or not size:
                break
            fh.seek(off)
            name = fh.read(size).decode(errors="replace")
        nxt = (chain[-1].parent / name) if not name.startswith("/") else Path(name)
        if not nxt.is_file():
            break
        chain.append(nxt)
    return chain


def has_rest_server(image: Path) -> bool:
    """The image holds OSv's HTTP server: its file name is in the rofs directory (stored
    uncompressed in the qcow2 clusters), in the image or a file it is backed by."""
    needle = SERVER.lstrip("/").encode()
    for f in image_files(image):
        with open(f, "rb") as fh:
            tail = b""
            while chunk := fh.read(1 << 22):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle):]
    return False


class OsvRest(OsvCapture):
    """Boot an OSv REST image, let the app run, and fetch `GET /trace/buffers` at its end
    (or after `duration`) into the output, as OSv wrote it."""

    name = "rest"

    def __init__(self, output: str | Path, **kw: object):
        super().__init__(output, **kw)  # type: ignore[arg-type]
        self.fetch_seconds = 0.0
        self.dump_bytes = 0

    def prepare(self, cfg: VmConfig) -> VmConfig:
        if not has_rest_server(self.build.image):
            raise CaptureError(f"{self.build.image} has no REST server (OSv's httpserver-api module, {SERVER}): "
                               f"build the image with REST=1 ../shared/osv/build.sh, or record --via gdb")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        extra = (*self.osv_args, "--noinit")  # /init would start a second, detached server
        if self.duration is None:
            app, args = cfg.app, (*cfg.args, ";", SERVER)
        else:
            app, args = SERVER, ("&", cfg.app, *cfg.args)
        self.line = osv_image.cmdline(app, args, self.globs, self.backtrace, extra)
        disk = osv_image.image_with_cmdline(self.build.image, self.line, self.tmp)
        self.port = free_port()
        self.limit = self.duration if self.duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
        cmd = osv_image.qemu_args(disk, smp=cfg.smp, mem_mb=cfg.mem_mb, accel=pick_accel(cfg.accel),
                                  hostfwd=(*cfg.hostfwd, f"tcp:127.0.0.1:{self.port}-:{GUEST_PORT}"))
        return dataclasses.replace(cfg, kernel=self.build.elf, command=tuple(cmd), timeout=None)

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _answers(self) -> bool:
        """OSv's server answers on the forwarded port (before it listens, QEMU's user network
        accepts the connection and closes it when the guest refuses it)."""
        try:
            with urllib.request.urlopen(self._url("/os/version"), timeout=5) as r:
                r.read()
                return r.status == 200
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            return False

    def attach(self, vm: Vm) -> str:
        t0 = time.monotonic()
        t_app = None  # --duration counts from the app's start (OSv prints its command line then)
        watch = ProgressWatch(vm)
        while True:
            console = vm.console_text()
            if not vm.running:
                self._ended_early(vm, console)
                return "app-exit"  # OSv could not start the app: finish says so
            now = time.monotonic()
            self.check_banner(vm, t0)
            if t_app is None and READY in console:
                t_app = now
            if self.duration is not None:
                if t_app is not None and now - t_app >= self.duration:
                    self._fetch(vm)
                    return "duration"
            elif self._answers():
                self._fetch(vm)
                return "app-exit"
            elif watch.check():
                raise CaptureError(f"OSv made {watch.describe()} before the app's end; waited for its REST server "
                                   f"(started after the app) on 127.0.0.1:{self.port}; no trace saved (--via gdb "
                                   f"snapshots a stalled guest)", 1)
            if now - (t_app or t0) >= self.limit:
                raise CaptureError(f"the app did not finish within {self.limit:g} s (give --duration to fetch "
                                   "the trace of a running app, or a larger --timeout)", EXIT_TIMEOUT)
            time.sleep(POLL_S)

    def _ended_early(self, vm: Vm, console: str) -> None:
        """QEMU ended before the server answered: OSv refused the app (finish reports it), or
        the image's server is missing, or something else ended the VM."""
        if NO_SERVER in console:
            raise CaptureError(f"{self.build.image} has no REST server: OSv could not load {SERVER} (build the "
                               f"image with REST=1 ../shared/osv/build.sh, or record --via gdb)")
        if any(s in console for s in LAUNCH_FAILED):
            self.launch_failed = True
            return
        raise CaptureError("the VM ended before the app's end: " + vm.wait(5).describe())

    def _fetch(self, vm: Vm) -> None:
        """GET /trace/buffers into the output (through a temporary file: a cut reply leaves
        no half dump behind)."""
        t0 = time.perf_counter()
        part = self.output.with_name(self.output.name + ".part")
        try:
            with urllib.request.urlopen(self._url("/trace/buffers"), timeout=FETCH_TIMEOUT) as r, \
                    open(part, "wb") as out:
                shutil.copyfileobj(r, out, 1 << 20)
        except (OSError, http.client.HTTPException) as e:
            part.unlink(missing_ok=True)
            state = "" if vm.running else " (QEMU ended)"
            raise CaptureError(f"GET /trace/buffers from OSv failed{state}: {getattr(e, 'reason', e)}") from None
        with open(part, "rb") as fh:
            head = fh.read(4)
        if head != DUMP_MAGIC:
            part.unlink(missing_ok=True)
            raise CaptureError(f"GET /trace/buffers did not return an OSVT dump (it began with {head!r})")
        self.dump_bytes = part.stat().st_size
        part.replace(self.output)
        self.fetch_seconds = time.perf_counter() - t0

    def end_vm(self, vm: Vm, stop: str) -> Outcome:
        if self.launch_failed:  # OSv said why and powered off by itself
            return self.powered_off(vm)
        if stop != "app-exit":
            return super().end_vm(vm, stop)
        try:  # the handler powers off at once: the reply may never come
            urllib.request.urlopen(urllib.request.Request(self._url("/os/poweroff"), method="POST"), timeout=5)
        except (OSError, http.client.HTTPException):
            pass
        return self.powered_off(vm)

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        if self.launch_failed:
            return self.refused(run)
        from osvtrace.format.trace import open as open_trace

        with open_trace(self.output) as t:  # what the file holds, read back: what a report will see
            events, cpus, problems = len(t), t.ncpus, list(t.warnings)
        seconds = time.monotonic() - run.started
        extras = {"kernel": "osv", "cmdline": self.line, "fetch_seconds": round(self.fetch_seconds, 6),
                  "dump_bytes": self.dump_bytes}
        res = Captured(self.output, self.name, run.stop, run.outcome, cpus, events, None, {}, seconds,
                       console=run.console, warnings=problems, extras=extras,
                       notes=[f"OSv command line: {self.line}",
                              f"GET /trace/buffers: {self.dump_bytes:,} bytes in {self.fetch_seconds:.3f} s"])
        res.summary = (f"recorded {events:,} OSv events on {cpus} CPU(s) through OSv's REST API {WHEN[run.stop]}: "
                       f"{self.output} ({seconds:.2f} s; GET /trace/buffers {self.fetch_seconds:.2f} s)")
        res.failure = ending(run.stop, run.outcome, self.output)
        return res

