"""Commands that capture traces from a VM: record (virtio | shm | gdb), recover, ctl."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from osvtrace.capture import recorder
from osvtrace.capture.base import REFUSED
from osvtrace.cli.vm_cmds import VmFailed, _config, _stop_on_sigterm, vm_options
from osvtrace.errors import UsageError

if TYPE_CHECKING:
    from osvtrace.capture.base import Captured

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


@click.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file to write (.osvt).")
@click.option("--via", type=click.Choice(recorder.VIA_NAMES),
              help="virtio (the default for osvtrace's kernel): stream over virtio-serial while the app runs; shm: "
                   "read the rings from the guest's RAM file at the end (--kernel osv: copy them from it while the VM "
                   "runs); gdb (the default for --kernel osv): snapshot the rings through gdb at the end; rest "
                   "(--kernel osv, an image with OSv's REST server): fetch GET /trace/buffers at the end.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path),
              help="--kernel osv: the OSv disk image to boot (default: the cached build's build/release/usr.img; "
                   "never modified). Its loader.elf is taken from beside it unless --elf says.")
@click.option("--backtrace", is_flag=True, help="Every traced tracepoint's records carry their stack: ours up to 16 "
              "return addresses (--tracebt with the --trace globs), OSv's --trace-backtrace 10.")
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
def record(app: str, args: tuple[str, ...], output: Path, via: str | None, image: Path | None, backtrace: bool,
           duration: float | None, buffer: str | None, ctl_socket: Path | None, keep_ram: bool, as_json: bool,
           **opts: Any) -> None:
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

    --kernel osv records real OSv (docs/osv.md, "Recording OSv"): its image (--image, default
    the cached build) boots with OSv's own --trace=GLOB options for --trace (default
    sched*,mutex*,condvar*,net_packet*) and --backtrace; at the app's end (or --duration)
    gdb saves every CPU's trace buffer whole, and FILE is an OSVT dump that osvtrace and
    OSv's scripts/trace.py both read. --kernel osv --via shm copies the rings from guest RAM
    shared with the host while OSv runs (a trace far longer than OSv's rings; bytes
    overwritten before a poll copied them are counted per CPU). --kernel osv --via rest, on an
    image with OSv's REST server (REST=1), fetches OSv's own dump (GET /trace/buffers).

    \b
    Example:
      osvtrace record -o storm.osvt --smp 2 --trace trace_marker tpstorm --rate 1000000 --seconds 30
      osvtrace record -o pp.osvt --via shm --trace 'sched_*' pingpong 10000
      osvtrace report summary storm.osvt
      osvtrace record --kernel osv --smp 2 -o mn.osvt /mutexnet 2000 2
    """
    from osvtrace.cli.vm_cmds import kernel_choice

    kernel, elf = kernel_choice(opts.get("kernel"), opts.get("elf"))
    if kernel == "osv":
        opts["elf"] = elf
        _record_osv(app, args, output, via, image, backtrace, duration, buffer, ctl_socket, keep_ram, as_json, **opts)
        return
    if image:
        raise UsageError("--image is for --kernel osv")
    via = via or "virtio"
    if via not in recorder.TRANSPORTS:
        raise UsageError(f"--via {via} is for --kernel osv")
    if buffer:
        if opts.get("tracebuf") and opts["tracebuf"] != buffer:
            raise UsageError("give --buffer or --tracebuf, not both")
        opts["tracebuf"] = buffer
    if not opts.get("trace"):
        opts["trace"] = "*"
    if backtrace:  # as OSv's --trace-backtrace: every traced tracepoint's records carry their stack
        if opts.get("tracebt"):
            raise UsageError("give --backtrace (stacks on everything traced) or --tracebt GLOBS, not both")
        opts["tracebt"] = opts["trace"]
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
    tty = via == "virtio" and sys.stdout.isatty() and not as_json  # a live progress line and console

    def ready(path: Path) -> None:
        if tty or opts["verbose"] or ctl_socket:
            click.echo(f"osvtrace: control socket {path} (osvtrace ctl {path} enable|disable GLOBS)", err=True)

    # Each transport takes only its own options (checked above).
    own: dict[str, Any] = {"virtio": {"ctl_socket": ctl_socket, "progress": tty, "on_ready": ready},
                           "shm": {"keep_ram": keep_ram}}.get(via, {})
    console = _ConsoleText() if tty else None
    try:
        res = recorder.record(cfg, output, via, duration=duration, stderr=sys.stderr.buffer,
                              console=console or (sys.stderr.buffer if as_json else sys.stdout.buffer), **own)
    finally:
        if console:
            console.close()
    _report(res, opts["verbose"], as_json)


def _record_osv(app: str, args: tuple[str, ...], output: Path, via: str | None, image: Path | None, backtrace: bool, duration: float | None, buffer: str | None, ctl_socket: Path | None, keep_ram: bool,
                as_json: bool, **opts: Any) -> None:
    """record --kernel osv: real OSv from its image, by a gdb snapshot of its trace buffers."""
    from osvtrace.vm.osv_image import find_build
    from osvtrace.vm.qemu import VmConfig

    ctx = click.get_current_context()
    explicit = {p for p in ("machine", "tracebuf", "tracemode", "net", "no_build", "tracebt", "sampler")
                if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE}
    unused = sorted(explicit | ({"buffer"} if buffer else set()) | ({"ctl_socket"} if ctl_socket else set())
                    | ({"keep_ram"} if keep_ram else set()))
    if unused:
        raise UsageError("--kernel osv: " + ", ".join("--" + u.replace("_", "-") for u in unused)
                         + " not supported (OSv's buffers are fixed by its build; it boots its image on QEMU's pc)")
    via = via or "gdb"
    if via not in recorder.KERNEL_TRANSPORTS["osv"]:
        raise UsageError(f"--kernel osv --via {via}: OSv is recorded --via "
                         + " or ".join(recorder.KERNEL_TRANSPORTS["osv"]))
    build = find_build(image, opts["elf"])
    mem = opts["mem_mb"]
    if ctx.get_parameter_source("mem_mb") != click.core.ParameterSource.COMMANDLINE:
        mem = max(1024, 64 * opts["smp"])  # run.sh's 1G; OSv wants more memory per vCPU beyond 16
    globs = [g.strip() for g in (opts.get("trace") or "").split(",") if g.strip()]
    # OSv always has run.sh's user-mode NIC (so no --net); --hostfwd forwards host ports to it.
    cfg = VmConfig(app=app, args=tuple(args), kernel=build.elf, smp=opts["smp"], mem_mb=mem, accel=opts["accel"],
                   timeout=opts.get("timeout"), hostfwd=tuple(opts.get("hostfwd") or ()))
    _stop_on_sigterm()
    res = recorder.record(cfg, output, via, kernel="osv", duration=duration, build=build, trace=globs or None,
                          backtrace=backtrace, stderr=sys.stderr.buffer,
                          console=sys.stderr.buffer if as_json else sys.stdout.buffer)
    _report(res, opts["verbose"], as_json)


def _report(res: Captured, verbose: bool, as_json: bool) -> None:
    """What every capture prints, whatever its transport: warnings, what --verbose adds, the
    summary line (or its JSON), then the exit status with the reason when it is not 0."""
    if res.refused:
        raise VmFailed(REFUSED, res.exit_code)
    for w in res.warnings:
        click.echo(f"osvtrace: warning: {w}", err=True)
    if verbose:
        for note in res.notes:
            click.echo(f"osvtrace: {note}", err=True)
    if not res.saved:  # no trace at all: never a success
        raise VmFailed(res.failure or "no trace saved", res.exit_code or 1)
    if as_json:
        from osvtrace.cli.options import echo_json

        echo_json(res.to_json())
    else:
        click.echo(res.summary)
    if res.exit_code:
        raise VmFailed(res.failure or "failed", res.exit_code)


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
    _report(recorder.recover(ramfile, kernel, output), False, as_json)


@click.command()
@click.argument("socket_path", metavar="SOCKET", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("command", type=click.Choice(["enable", "disable", "backtrace", "nobacktrace", "flush", "stop",
                                             "status"]))
@click.argument("globs", required=False)
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0, min_open=True), metavar="S",
              help="Give up waiting for the guest's reply after S seconds.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole reply as JSON (with guest_tsc: when the guest applied it).")
def ctl(socket_path: Path, command: str, globs: str | None, timeout: float, as_json: bool) -> None:
    """Control a running `osvtrace record`: enable or disable tracepoints, their stacks, flush, stop.

    SOCKET is the control socket the recorder printed (or its --ctl-socket). enable and
    disable take anchored globs, comma-separated, and act in the guest at once; the reply
    says how many tracepoints matched. backtrace and nobacktrace (same globs) choose
    whose records carry their stack (as --tracebt at boot). flush sends what the rings hold now; stop ends the
    recording cleanly (the rest of the rings first); status shows what arrived so far.

    \b
    Example:
      osvtrace ctl /tmp/osvtrace-rec-x/ctl.sock disable 'sched_*'
      osvtrace ctl /tmp/osvtrace-rec-x/ctl.sock enable mutex_lock,mutex_unlock
      osvtrace ctl /tmp/osvtrace-rec-x/ctl.sock backtrace mutex_lock_wait
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
