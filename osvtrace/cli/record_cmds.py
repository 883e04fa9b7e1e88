"""Commands that capture traces from a VM: record (virtio | shm | gdb), recover, ctl."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from osvtrace.cli.vm_cmds import VmFailed, _boot_line, _config, _fail, _stop_on_sigterm, vm_options
from osvtrace.errors import UsageError

DEFAULT_STREAM_BUFFER = "16M"


class _ConsoleText:
    """Guest console bytes -> sys.stdout as text lines, looked up at each write, so that while
    the progress line is live (rich redirects sys.stdout) the console scrolls above it. Only
    whole lines go out: the serial console delivers a line in pieces, and rich would print
    each flushed piece on a line of its own."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.rfind(b"\n")
        if end >= 0:
            # The serial console ends lines with CR LF; on a terminal rich takes a CR as
            # "back to column 0" and the live line then erases the text.
            sys.stdout.write(self._buf[:end + 1].replace(b"\r", b"").decode("utf-8", "replace"))
            del self._buf[:end + 1]

    def flush(self) -> None:
        pass  # partial lines wait for their end (or close)

    def close(self) -> None:
        if self._buf:
            sys.stdout.write(self._buf.replace(b"\r", b"").decode("utf-8", "replace") + "\n")
            self._buf.clear()


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _lost_text(lost: dict[int, int]) -> str:
    total = sum(lost.values())
    if not total:
        return "0 lost"
    return f"{total:,} lost (" + ", ".join(f"cpu{c} {n:,}" for c, n in sorted(lost.items())) + ")"


@click.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file to write (.osvt).")
@click.option("--via", default="virtio", show_default=True, type=click.Choice(["virtio", "shm", "gdb"]),
              help="virtio: stream over virtio-serial while the app runs; shm: read the rings from the guest's "
                   "RAM file at the end; gdb: snapshot the rings through gdb at the end.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), metavar="S",
              help="Stop after S seconds instead of at the app's end (the VM is then ended).")
@click.option("--buffer", metavar="SIZE",
              help=f"Ring size per CPU (64K, 16M ...; same as --tracebuf; --via virtio default "
                   f"{DEFAULT_STREAM_BUFFER}, else the kernel's 4M).")
@click.option("--ctl-socket", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="virtio: where to listen for `osvtrace ctl` (default: a fresh path, printed at the start).")
@click.option("--keep-ram", is_flag=True, help="shm: keep the RAM file in /dev/shm (for `osvtrace recover`).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout (docs/recording.md); the guest's console goes to stderr.")
@vm_options
@click.argument("app")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def record(app: str, args: tuple[str, ...], output: Path, via: str, duration: float | None, buffer: str | None,
           ctl_socket: Path | None, keep_ram: bool, as_json: bool, **opts: Any) -> None:
    """Boot APP under QEMU and record its trace into an .osvt file.

    --via virtio (default) streams while the app runs: the kernel's drain thread sends every
    CPU's ring over virtio-serial and chunks are appended to FILE as they arrive, so a trace
    can be far longer than the rings; records the drain could not keep up with are counted
    as lost, per CPU. On a terminal a progress line shows the rates. It stops at the app's
    end, after --duration, or at Ctrl-C (the guest sends what its rings still hold first);
    `osvtrace ctl SOCKET enable|disable GLOB` changes tracepoints while it runs.

    --via shm keeps guest RAM in a /dev/shm file and reads the rings (flight recorders)
    from it after QEMU ends; --via gdb snapshots them through gdb. Without --trace every
    tracepoint is enabled. Exits with the app's status.

    --json prints the summary line as one JSON object on stdout instead (the guest's console
    then goes to stderr, and there is no progress line).

    \b
    Example:
      osvtrace record -o storm.osvt --smp 2 --trace trace_marker tpstorm --rate 1000000 --seconds 30
      osvtrace record -o pp.osvt --via shm --trace 'sched_*' pingpong 10000
      osvtrace report summary storm.osvt
    """
    if buffer:
        if opts.get("tracebuf") and opts["tracebuf"] != buffer:
            raise UsageError("give --buffer or --tracebuf, not both")
        opts["tracebuf"] = buffer
    if not opts.get("trace"):
        opts["trace"] = "*"
    if via == "virtio" and not opts.get("tracebuf"):
        # Streaming rings absorb the host's hiccups (scheduling, disk): at 1 M events/s
        # per CPU, 16 MiB is half a second.
        opts["tracebuf"] = DEFAULT_STREAM_BUFFER
    if via == "virtio" and opts.get("tracemode") == "overwrite":
        raise UsageError("--via virtio streams: the rings must be in stream mode (drop --tracemode overwrite)")
    if ctl_socket and via != "virtio":
        raise UsageError("--ctl-socket is for --via virtio")
    if keep_ram and via != "shm":
        raise UsageError("--keep-ram is for --via shm")
    cfg = _config(app, args, **opts)
    _stop_on_sigterm()
    if via == "virtio":
        _record_virtio(cfg, output, duration, ctl_socket, opts["verbose"], as_json)
    elif via == "shm":
        _record_shm(cfg, output, duration, keep_ram, opts["verbose"], as_json)
    else:
        _record_gdb(cfg, output, duration, opts["verbose"], as_json)


def _summary_json(via: str, stop: str, path: Path, cpus: int, lost: int, seconds: float, *,
                  events: int | None = None, slots: int | None = None, lost_per_cpu: dict[int, int] | None = None,
                  **more: Any) -> None:
    """record --json: one object of the same keys whatever --via (null where a capture does not know)."""
    from osvtrace.cli.options import echo_json

    size = Path(path).stat().st_size if Path(path).exists() else None
    echo_json({"output": str(path), "via": via, "stop": stop, "events": events, "slots": slots, "cpus": cpus,
               "lost": lost, "lost_per_cpu": {str(c): n for c, n in sorted((lost_per_cpu or {}).items())},
               "seconds": round(seconds, 6), "bytes": size, **more})


def _record_virtio(cfg: Any, output: Path, duration: float | None, ctl_socket: Path | None, verbose: bool,
                   as_json: bool = False) -> None:
    from osvtrace.capture import recorder

    tty = sys.stdout.isatty() and not as_json

    def ready(path: Path) -> None:
        if tty or verbose or ctl_socket:
            click.echo(f"osvtrace: control socket {path} (osvtrace ctl {path} enable|disable GLOBS)", err=True)

    console = _ConsoleText() if tty else None
    try:
        res = recorder.record(cfg, output, duration=duration, ctl_socket=ctl_socket, progress=tty,
                              console=console or (sys.stderr.buffer if as_json else sys.stdout.buffer),
                              stderr=sys.stderr.buffer, on_ready=ready)
    finally:
        if console:
            console.close()
    if res.refused:
        raise VmFailed("the kernel refused to start the app (its message is above); no trace saved",
                       res.outcome.exit_code)
    for w in res.warnings:
        click.echo(f"osvtrace: warning: {w}", err=True)
    if not res.ncpus:
        raise VmFailed(f"the guest never started streaming ({res.outcome.describe()}); no trace saved",
                       res.exit_code or 1)
    when = {"app-exit": "at the app's end", "duration": "after the duration", "interrupt": "at Ctrl-C",
            "ctl-stop": "at a ctl stop", "timeout": "at the timeout", "qemu-died": "when QEMU died"}[res.stop]
    rate = res.records / res.seconds if res.seconds else 0
    if as_json:
        _summary_json("virtio", res.stop, res.path, res.ncpus, sum(res.lost.values()), res.seconds,
                      events=res.records, lost_per_cpu=res.lost, stream_bytes=res.bytes)
    else:
        click.echo(f"recorded {res.records:,} events on {res.ncpus} CPU(s) {when}, {_lost_text(res.lost)}: "
                   f"{res.path} ({_mb(res.file_bytes)}, {res.seconds:.2f} s, {rate / 1e6:.2f} M events/s, "
                   f"{res.bytes / res.seconds / 1e6 if res.seconds else 0:.1f} MB/s)")
    if res.stop == "qemu-died" and res.outcome.kind == "panic":
        raise VmFailed(f"kernel panic; the trace up to it is in {res.path} (records still in the rings at the "
                       "panic are lost: --via shm keeps them)", res.outcome.exit_code)
    if res.stop == "qemu-died":
        raise VmFailed(f"QEMU ended before the stream did ({res.outcome.describe()}); the trace up to its last "
                       f"complete chunk is in {res.path}", res.exit_code or 1)
    if res.stop == "app-exit":
        _fail(res.outcome, False)
    elif res.stop == "interrupt":
        raise VmFailed("interrupted", res.exit_code)
    elif res.stop == "timeout":
        raise VmFailed(f"stopped at the timeout ({cfg.timeout:g} s)", res.exit_code)


def _record_shm(cfg: Any, output: Path, duration: float | None, keep_ram: bool, verbose: bool,
                as_json: bool = False) -> None:
    from osvtrace.capture import shm as shmcapture

    cap = shmcapture.record(cfg, output, duration=duration, keep_ram=keep_ram,
                            console=sys.stderr.buffer if as_json else sys.stdout.buffer, stderr=sys.stderr.buffer)
    for w in cap.recovered.warnings:
        click.echo(f"osvtrace: warning: {w}", err=True)
    snap = cap.recovered.snapshot
    if as_json:
        _summary_json("shm", cap.stop, cap.path, len(snap.chunks), snap.lost, cap.seconds, slots=snap.slots,
                      ram_file=str(cap.ram) if cap.ram else None)
    else:
        click.echo(f"recorded {snap.slots:,} slots on {len(snap.chunks)} CPU(s) from shared RAM, {snap.lost:,} "
                   f"lost: {cap.path} ({cap.seconds:.2f} s)" + (f"; RAM file kept: {cap.ram}" if cap.ram else ""))
    if cap.stop == "panic":
        raise VmFailed(f"kernel panic; the trace up to it is in {cap.path}", cap.outcome.exit_code)
    if cap.stop == "interrupt":
        raise VmFailed("interrupted", 130)
    if cap.stop == "app-exit":
        _fail(cap.outcome, False)
    elif cap.stop == "qemu-died":
        raise VmFailed(f"{cap.outcome.describe()}; the trace read from its RAM is in {cap.path}",
                       cap.outcome.exit_code)


def _record_gdb(cfg: Any, output: Path, duration: float | None, verbose: bool, as_json: bool = False) -> None:
    from osvtrace.capture import gdb_snapshot as gdbcapture

    cap = gdbcapture.record(cfg, output, duration=duration,
                            console=sys.stderr.buffer if as_json else sys.stdout.buffer)
    if verbose:
        click.echo("osvtrace: " + _boot_line(cap.boot), err=True)
        click.echo(f"osvtrace: gdb: {cap.saved}", err=True)
    if as_json:
        _summary_json("gdb", cap.stop, cap.path, **_counts(cap))
    else:
        click.echo(_summary(cap))
    if cap.stop == "panic":
        raise VmFailed(f"kernel panic; the trace up to it is in {cap.path}", cap.outcome.exit_code)
    if cap.stop != "duration":
        _fail(cap.outcome, False)


def _counts(cap: Any) -> dict[str, Any]:
    """What the file holds (read back through the decoder, so it is what a report sees)."""
    from osvtrace.format.trace import open as open_trace

    with open_trace(cap.path) as t:
        return {"events": len(t), "cpus": t.ncpus, "seconds": cap.seconds,
                "lost": sum(lc.dropped + lc.gap_slots for lc in t.loss.values()),
                "lost_per_cpu": {c: lc.dropped + lc.gap_slots for c, lc in t.loss.items()},
                "overwritten_slots": sum(lc.overwritten_slots for lc in t.loss.values())}


def _summary(cap: Any) -> str:
    """One line: what the file holds."""
    c = _counts(cap)
    lost, over, n, ncpu = c["lost"], c["overwritten_slots"], c["events"], c["cpus"]
    when = {"app-exit": "at the app's end", "panic": "at a kernel panic",
            "duration": "after the duration"}.get(cap.stop, cap.stop)
    extra = f", {over:,} older slots overwritten" if over else ""
    return (f"recorded {n:,} events on {ncpu} CPU(s) {when}, {lost:,} lost{extra}: {cap.path} "
            f"({cap.seconds:.2f} s)")


@click.command()
@click.argument("ramfile", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("kernel", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file to write (.osvt).")
@click.option("--json", "as_json", is_flag=True,
              help='Print the summary as JSON: {"output", "slots", "cpus", "lost", "threads"}.')
def recover(ramfile: Path, kernel: Path | None, output: Path, as_json: bool) -> None:
    """Rebuild a trace from the RAM file of a guest that crashed, hung or was killed.

    RAMFILE is guest RAM kept by `osvtrace record --via shm --keep-ram` (or any QEMU run with
    `-object memory-backend-file,share=on,mem-path=RAMFILE`). KERNEL (build/kernel.elf) locates
    the control block by symbol; without it, the block is found by its magic. Records still
    being written at the crash are dropped, never misread.

    \b
    Example:
      osvtrace record --via shm --keep-ram -o x.osvt crash panic
      osvtrace recover /dev/shm/osvtrace-1234-ab12cd34.ram build/kernel.elf -o crash.osvt
    """
    from osvtrace.capture import shm as shmcapture

    rec = shmcapture.recover(ramfile, kernel, output)
    for w in rec.warnings:
        click.echo(f"osvtrace: warning: {w}", err=True)
    snap = rec.snapshot
    if as_json:
        from osvtrace.cli.options import echo_json

        echo_json({"output": str(rec.path), "slots": snap.slots, "cpus": len(snap.chunks), "lost": snap.lost,
                   "threads": len(snap.threads)})
        return
    click.echo(f"recovered {snap.slots:,} slots on {len(snap.chunks)} CPU(s), {snap.lost:,} lost, "
               f"{len(snap.threads)} thread names: {rec.path}")


@click.command()
@click.argument("socket_path", metavar="SOCKET", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("command", type=click.Choice(["enable", "disable", "flush", "stop", "status"]))
@click.argument("globs", required=False)
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0, min_open=True), metavar="S",
              help="Give up waiting for the guest's reply after S seconds.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole reply as JSON (with guest_tsc: when the guest applied it).")
def ctl(socket_path: Path, command: str, globs: str | None, timeout: float, as_json: bool) -> None:
    """Control a running `osvtrace record`: enable or disable tracepoints, flush, stop.

    SOCKET is the control socket the recorder printed (or its --ctl-socket). enable and
    disable take anchored globs, comma-separated, and act in the guest at once; the reply
    says how many tracepoints matched. flush sends what the rings hold now; stop ends the
    recording cleanly (the rest of the rings first); status shows what arrived so far.

    \b
    Example:
      osvtrace ctl /tmp/osvtrace-rec-x/ctl.sock disable 'sched_*'
      osvtrace ctl /tmp/osvtrace-rec-x/ctl.sock enable mutex_lock,mutex_unlock
    """
    from osvtrace.capture import ctl as ctl_mod

    reply = ctl_mod.send(socket_path, command, globs, timeout=timeout)
    if as_json:
        from osvtrace.cli.options import echo_json

        echo_json(reply)
        return
    extra = f" ({reply['ms']:.1f} ms)" if "ms" in reply else ""
    click.echo(f"{reply.get('message', 'done')}{extra}")


COMMANDS = [record, recover, ctl]
