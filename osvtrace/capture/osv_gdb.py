"""Real OSv's gdb snapshot (`record --kernel osv --via gdb`): boot an OSv image halted under
gdb, run the app to its end (or for --duration), and take every CPU's trace buffer whole.

How, step by step:

1. prepare: OSv's command line (its own `--trace=GLOB` words from kernels/osv.py, and
   `--trace-backtrace`) goes into a qcow2 overlay of the image (osvtrace.vm.osv_image: the
   image itself is never written); QEMU gets run.sh's line, halted (-S), with a gdbstub.
2. attach: gdb (MI) loads loader.elf and osvtrace's commands, sets hardware breakpoints at
   the app's end (elf::program::remove_object of the app's object: its symbols are still
   there) and at osv::poweroff (a launch that failed), continues, and at the stop runs
   `osv trace snapshot DIR` (osvtrace/gdb/kernels/osv/trace.py): per CPU, trace_buf's
   _base/_size/_last from DWARF and the buffer in ONE memsave into DIR/cpuN.ring; the
   tracepoint dictionary (tracepoint_base::tp_list) into DIR/snapshot.json. No record is
   read in gdb.
3. end_vm: at the app's end the VM is let go to power off (OSv reports no exit status, so
   a clean power-off is status 0); after --duration it is ended.
4. finish: the buffers become an OSVT dump (osvtrace.format.osv_write: TRCD, MODS, RING,
   one TRCS per CPU, as core/trace.cc writes it), which osvtrace and OSv's trace.py read.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from osvtrace.capture.base import WHEN, Captured, CaptureError, VmRun, ending
from osvtrace.capture.gdb_snapshot import _connect
from osvtrace.capture.osv_base import DEFAULT_RUN_LIMIT, LAUNCH_FAILED, READY, OsvCapture
from osvtrace.capture.osv_watch import ProgressWatch
from osvtrace.kernels import osv as osv_kernel
from osvtrace.vm import osv_image
from osvtrace.vm.gdbmi import Gdb, GdbError, Record, mi_quote
from osvtrace.vm.qemu import EXIT_TIMEOUT, Outcome, Vm, VmConfig, free_port, pick_accel

SNAPSHOT_TIMEOUT = 300.0
SYMBOLS_TIMEOUT = 300.0  # loader.elf has ~65 MB of DWARF
# OSv's abort() prints this before it halts (runtime.cc print_backtrace); a second fault on the
# way (an abort inside abort spins for ever, interrupts on) never reaches osv::halt's breakpoint
CRASHED = "[backtrace]"
CRASH_GRACE_S = 10.0


def vcpu_places(g: Gdb) -> str:
    """'vCPUs in f, g': the function each vCPU (a gdb thread) is stopped in."""
    try:
        threads = g.mi("-thread-info", 30).results.get("threads", [])
    except GdbError as e:
        return f"vCPUs not read: {e}"
    frames = [t.get("frame") or {} for t in threads if isinstance(t, dict)]
    return "vCPUs in " + ", ".join(str(f.get("func") or f.get("addr") or "?") for f in frames)


class OsvGdbSnapshot(OsvCapture):
    """Boot OSv halted under gdb, run to the app's end (or `duration`), snapshot every
    CPU's trace buffer whole, and write an OSVT dump."""

    name = "gdb"

    def __init__(self, output: str | Path, **kw: object):
        super().__init__(output, **kw)  # type: ignore[arg-type]
        self.snapdir = self.tmp / "snapshot"
        self.app = ""
        self.gdb: Gdb | None = None
        self.failed: str | None = None
        self.stall = ""  # why the guest was found stalled (the failure line), when it was
        self.crash_seen: float | None = None  # when OSv's crash backtrace appeared on the console
        self.snap_seconds = 0.0
        self.meta: dict = {}

    def prepare(self, cfg: VmConfig) -> VmConfig:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # OSv's own options may come first (`record ... -- --env=A=1 /app`): the app is the first other word
        self.app = next((w for w in (cfg.app, *cfg.args) if not w.startswith("-")), cfg.app)
        self.line = osv_image.cmdline(cfg.app, cfg.args, self.globs, self.backtrace, self.osv_args)
        disk = osv_image.image_with_cmdline(self.build.image, self.line, self.tmp)
        self.port = free_port()
        self.limit = self.duration if self.duration is not None else (cfg.timeout or DEFAULT_RUN_LIMIT)
        cmd = osv_image.qemu_args(disk, smp=cfg.smp, mem_mb=cfg.mem_mb, accel=pick_accel(cfg.accel),
                                   hostfwd=cfg.hostfwd)
        return dataclasses.replace(cfg, kernel=self.build.elf, command=tuple(cmd), gdb_port=self.port,
                                   gdb_wait=True, timeout=None)

    def _start_gdb(self, vm: Vm) -> Gdb:
        """gdb (MI) with loader.elf's symbols and osvtrace's commands, attached to the VM."""
        g = self.gdb = Gdb(None, load_osv=False, timeout=60)
        g.mi(f"-file-exec-and-symbols {mi_quote(str(self.build.elf))}", SYMBOLS_TIMEOUT)
        from osvtrace import resources

        g.cli(f"source {resources.gdb_script()}")
        _connect(g, vm, self.port, limit=20)
        return g

    def _exit_breakpoints(self, g: Gdb) -> dict[str, str]:
        """Hardware breakpoints (a software one set before boot is overwritten when OSv's boot
        loader copies the kernel in: ../shared/osv/README.md) at the app's end, at power-off and
        where a crash halts; breakpoint number -> "app-exit" | "poweroff" | "panic"."""
        app = self.app.replace("\\", "\\\\").replace('"', '\\"')
        cond = mi_quote('$_streq(ef->_pathname._M_dataplus._M_p, "' + app + '")')
        bkpt = {}
        a = g.mi(f"-break-insert -h -c {cond} elf::program::remove_object")
        bkpt[str(a.results.get("bkpt", {}).get("number", ""))] = "app-exit"
        for sym, why in osv_kernel.KERNEL.exit_breakpoints.items():
            a = g.mi(f"-break-insert -h {sym}")
            # a power-off before the app's end: OSv could not start it (see _stop_reason)
            bkpt[str(a.results.get("bkpt", {}).get("number", ""))] = "poweroff" if why == "app-exit" else why
        return bkpt

    def _write(self, rings: list[tuple]) -> tuple[list, list[str], int, int]:
        """The OSVT dump of `rings` (osv_write.write_dump's entries) with the dictionary the
        snapshot read; (ring infos, problems, events, CPUs) as the decoder reads the file back."""
        from osvtrace.format.osv_write import write_dump
        from osvtrace.format.trace import open as open_trace

        infos, problems = write_dump(self.output, [tuple(t) for t in self.meta["tracepoints"]], rings,
                                     bt_len=self.meta["bt_len"], page=self.meta["page"])
        with open_trace(self.output) as t:  # what the file holds, read back: what a report will see
            return infos, problems, len(t), t.ncpus

    def attach(self, vm: Vm) -> str:
        g = self._start_gdb(vm)
        bkpt = self._exit_breakpoints(g)
        g.continue_()
        t0 = time.monotonic()
        t_app = None  # --duration counts from the app's start (OSv prints its command line then)
        watch = ProgressWatch(vm)
        stop, why = None, "duration"
        while stop is None:
            try:
                stop = g.wait_stopped(0.2 if t_app is None else min(1.0, max(0.05, t_app + self.limit - time.monotonic())))
            except TimeoutError:
                now = time.monotonic() - t0
                self.check_banner(vm, t0)
                if self.duration is None and (gone := self._gone_wrong(g, vm, watch)):
                    why = gone
                    break
                if t_app is None:
                    if READY in vm.console_text():
                        t_app = time.monotonic()
                    elif now < self.limit or self.duration is not None:
                        continue
                if time.monotonic() - (t_app or t0) >= self.limit:
                    if self.duration is None:
                        raise CaptureError(f"the app did not finish within {self.limit:g} s (give --duration to "
                                           "snapshot a running app, or a larger --timeout)", EXIT_TIMEOUT) from None
                    g.interrupt()
                    break
        if stop is not None:
            why = self._stop_reason(vm, g, stop, bkpt)
        self._snapshot(g)
        return why

    def _stop_reason(self, vm: Vm, g: Gdb, stop: Record, bkpt: dict[str, str]) -> str:
        """app-exit for a stop at the app's end or OSv's power-off (before the app's end: it could
        not start the app), panic at its halt after a crash; anything else is an error."""
        reason = stop.results.get("reason", "")
        if reason.startswith("exited") or g.exited:
            raise CaptureError("the VM ended before the app's end: " + vm.wait(5).describe()
                               + f" (is {self.build.image} an OSv image?)")
        why = bkpt.get(str(stop.results.get("bkptno", "")), "")
        if not why:
            raise CaptureError(f"OSv stopped unexpectedly ({reason or 'no reason'}); no capture taken")
        if why == "poweroff":
            # OSv powers off without the app's end: it could not start it (the console says
            # why), or the app called exit()
            self.launch_failed = any(s in vm.console_text() for s in LAUNCH_FAILED)
        return "app-exit" if why == "poweroff" else why

    def _gone_wrong(self, g: Gdb, vm: Vm, watch: ProgressWatch) -> str | None:
        """While waiting for the app's end: "stalled" or "panic" when nothing will reach the
        breakpoints (the VM is then stopped: take what the rings hold and say so), else None."""
        if watch.check():
            self._stalled(g, watch)
            return "stalled"
        if self._crashed_unhalted(vm):
            self._interrupt(g, "OSv crashed (its console has the backtrace) and did not halt")
            return "panic"
        return None

    def _crashed_unhalted(self, vm: Vm) -> bool:
        """OSv printed its crash backtrace CRASH_GRACE_S ago and no breakpoint came since."""
        if self.crash_seen is None:
            if CRASHED in vm.console_text():
                self.crash_seen = time.monotonic()
            return False
        return time.monotonic() - self.crash_seen > CRASH_GRACE_S

    def _interrupt(self, g: Gdb, why: str) -> None:
        """Stop the VM for the snapshot; no stop from gdb ends the recording (`why`: what was seen)."""
        try:
            g.interrupt(30)
        except (TimeoutError, GdbError):
            raise CaptureError(f"{why}, and gdb got no stop when it interrupted the VM; waited for the breakpoints "
                               f"at elf::program::remove_object ({self.app}), osv::poweroff and osv::halt; no "
                               f"capture taken") from None

    def _stalled(self, g: Gdb, watch: ProgressWatch) -> None:
        """The guest made no progress: stop it (the snapshot needs it stopped) and word the
        failure, with where its vCPUs are (an idle OSv: in its idle loop; a halted one: halt)."""
        self._interrupt(g, f"OSv made {watch.describe()}")
        self.stall = (f"OSv made {watch.describe()} before the app's end ({vcpu_places(g)}); waited for the "
                      f"breakpoints at elf::program::remove_object ({self.app}), osv::poweroff and osv::halt "
                      f"(an app that waits for ever is recorded with --duration)")

    def _snapshot(self, g: Gdb) -> None:
        """`osv trace snapshot` on the stopped VM; a failure is kept for finish to report."""
        t1 = time.perf_counter()
        try:
            g.cli(f"osv trace snapshot {self.snapdir}", timeout=SNAPSHOT_TIMEOUT)
            self.meta = json.loads((self.snapdir / "snapshot.json").read_text())
        except (GdbError, OSError, ValueError) as e:
            self.failed = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        self.snap_seconds = time.perf_counter() - t1

    def end_vm(self, vm: Vm, stop: str) -> Outcome:
        try:
            if stop == "panic":  # OSv crashed and halts for good: nothing left to wait for
                vm.stop()
                return Outcome(vm.proc.returncode if vm.proc else None, "panic")
            if stop == "app-exit" and self.gdb is not None:
                self.gdb.mi("-break-delete")
                self.gdb.continue_()
                self.gdb.close()
                self.gdb = None
                return self.powered_off(vm)
            return super().end_vm(vm, stop)
        finally:
            self.close_gdb()

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        if self.launch_failed:
            return self.refused(run)
        if self.failed or not self.meta:
            raise CaptureError(f"no trace saved: {self.failed or 'the snapshot wrote nothing'}")
        t0 = time.perf_counter()
        meta = self.meta
        rings = []
        for r in meta["cpus"]:
            buf = np.fromfile(self.snapdir / r["file"], np.uint8) if r["file"] else None
            rings.append((r["cpu"], buf, r["size"], r["last"]))
        infos, problems, events, cpus = self._write(rings)
        write_seconds = time.perf_counter() - t0
        seconds = time.monotonic() - run.started
        wrapped = {i.cpu: i.overwritten for i in infos if i.wrapped}
        extras = {"kernel": "osv", "cmdline": self.line, "snapshot_seconds": round(self.snap_seconds, 6),
                  "gdb_seconds": meta["seconds"], "write_seconds": round(write_seconds, 6),
                  "buffer_bytes": sum(i.size for i in infos),
                  "wrapped_cpus": sorted(wrapped), "overwritten_bytes": {str(c): n for c, n in sorted(wrapped.items())}}
        res = Captured(self.output, self.name, run.stop, run.outcome, cpus, events, None, {}, seconds,
                       console=run.console, warnings=problems, extras=extras,
                       notes=[f"OSv command line: {self.line}",
                              f"snapshot: {meta['seconds']['total']:.3f} s in gdb (buffers "
                              f"{meta['seconds']['buffers']:.3f} s), {self.snap_seconds:.3f} s with the round trip; "
                              f"dump written in {write_seconds:.3f} s"])
        wrap = (f", {len(wrapped)} CPU ring(s) wrapped (their older records were overwritten)" if wrapped
                else ", no ring wrapped")
        res.summary = (f"recorded {events:,} OSv events on {cpus} CPU(s) {WHEN[run.stop]}{wrap}: {self.output} "
                       f"({seconds:.2f} s)")
        res.failure = self.stall_failure(run) or ending(run.stop, run.outcome, self.output)
        return res

    def stall_failure(self, run: VmRun) -> str | None:
        """The failure line of a recording that ended because the guest stalled."""
        return f"{self.stall}; the trace up to the stall is in {self.output}" if run.stop == "stalled" else None

    def close_gdb(self) -> None:
        if self.gdb is not None:
            self.gdb.close()
            self.gdb = None

    def close(self) -> None:
        self.close_gdb()
        super().close()
