"""Commands that build and boot the kernel: build, run, record."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from osvtrace.errors import OsvtraceError, UsageError


class VmFailed(OsvtraceError):
    """The VM ran but did not end well: the message says how, the exit code carries it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def vm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of run and record, passed on as keyword arguments."""
    opts = [
        click.option("--smp", default=1, show_default=True, type=click.IntRange(1, 64), help="Virtual CPUs."),
        click.option("--mem", "mem_mb", default=256, show_default=True, type=click.IntRange(32), metavar="MB",
                     help="Guest memory in MB."),
        click.option("--machine", default="microvm", show_default=True, type=click.Choice(["microvm", "q35"]),
                     help="QEMU machine: microvm boots fastest, q35 has PCI."),
        click.option("--accel", default="auto", show_default=True, type=click.Choice(["auto", "tcg", "kvm"]),
                     help="auto uses KVM only where the CPU shows vmx/svm and /dev/kvm is writable."),
        click.option("--trace", "trace", metavar="GLOBS",
                     help="Tracepoints to enable: anchored globs, comma-separated (sched_*,mutex_lock)."),
        click.option("--tracebt", metavar="GLOBS",
                     help="Records of these tracepoints carry their stack (up to 16 return addresses; "
                          "osvtrace's kernel: tracebt=)."),
        click.option("--sampler", type=click.IntRange(1, 10000), metavar="HZ",
                     help="Sample every CPU HZ times a second: cpu_sample records with the interrupted PC and "
                          "stack (osvtrace's kernel: sampler=)."),
        click.option("--tracebuf", metavar="SIZE", help="Ring size per CPU (64K, 4M ...; kernel default 4M)."),
        click.option("--tracemode", type=click.Choice(["overwrite", "stream"]),
                     help="overwrite: flight recorder (default); stream: a full ring drops and counts."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="S",
                     help="Stop QEMU after S seconds of wall time (exit status 124)."),
        click.option("--net", type=click.Choice(["user", "tap"]),
                     help="Give the guest a virtio-net NIC: user = QEMU's user-mode network (guest 10.0.2.15), "
                          "tap = the host tap device --tap (default osvtrace0; needs root and a configured tap)."),
        click.option("--hostfwd", multiple=True, metavar="udp:HOSTPORT-:GUESTPORT",
                     help="--net user (or --kernel osv, whose NIC is always user-mode): forward a host port on "
                          "127.0.0.1 to a guest port (repeatable; udp: or tcp:)."),
        click.option("--tap", "tap_ifname", metavar="IFNAME", help="--net tap: the host's tap interface."),
        click.option("--kernel", "kernel", metavar="osvtrace|osv",
                     help="Which kernel: osvtrace (default: ours, built by `osvtrace build`) or osv (real OSv, "
                          "record only). An existing file is taken as --elf (the older spelling)."),
        click.option("--elf", type=click.Path(dir_okay=False, path_type=Path),
                     help="The kernel ELF to boot (ours) or to read with gdb (OSv's loader.elf), instead of the "
                          "default build."),
        click.option("--no-build", is_flag=True, help="Boot the last kernel `osvtrace build` made, as it is (no make)."),
        click.option("-v", "--verbose", is_flag=True, help="Show the QEMU command line and the boot time."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _stop_on_sigterm() -> None:
    """A SIGTERM becomes a KeyboardInterrupt, so QEMU and gdb are ended on the way out."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:
        pass  # not the main thread (tests calling main() from a worker)


def kernel_choice(kernel: str | None, elf: Path | None) -> tuple[str, Path | None]:
    """(kernel name, ELF path) from --kernel and --elf. --kernel takes a kernel's name; an
    existing file there is the older spelling of --elf (its kernel is then the one whose
    marker symbol the ELF has)."""
    from osvtrace import kernels

    if kernel is None:
        return "osvtrace", elf
    if kernel in kernels.names():
        return kernel, elf
    path = Path(kernel)
    if path.is_file():
        if elf is not None:
            raise UsageError(f"--kernel {kernel} is a file and --elf {elf} too: give one ELF")
        from osvtrace.vm.osv_image import is_osv_elf

        return ("osv" if is_osv_elf(path) else "osvtrace"), path
    raise UsageError(f"--kernel {kernel}: neither a kernel ({', '.join(kernels.names())}) nor an existing file")


def _config(app: str, args: tuple[str, ...], *, kernel: str | None, elf: Path | None, no_build: bool,
            verbose: bool, **opts: Any) -> Any:
    from osvtrace import resources
    from osvtrace.vm import kernel_build
    from osvtrace.vm.qemu import VmConfig

    name, kernel = kernel_choice(kernel, elf)
    if name != "osvtrace":
        raise UsageError(f"--kernel {name}: this command boots osvtrace's kernel; `osvtrace record --kernel {name}` "
                         f"records {name}")
    if kernel is None:
        if no_build:
            kernel = resources.default_kernel()
        else:
            # make's output goes to stderr: stdout is the guest's console.
            kernel = kernel_build.build(out=sys.stderr)
    elif not kernel.is_file():
        raise OsvtraceError(f"--elf {kernel}: no such file")
    opts["hostfwd"] = tuple(opts.get("hostfwd") or ())
    return VmConfig(app=app, args=tuple(args), kernel=kernel, **opts)


def _fail(outcome: Any, console_refused: bool) -> None:
    """Raise for anything but an app that returned 0."""
    if outcome.kind == "app" and outcome.app_status == 0:
        return
    if outcome.kind == "app" and console_refused:
        raise VmFailed("the kernel refused to start the app (its message is above)", outcome.exit_code)
    raise VmFailed(outcome.describe(), outcome.exit_code)


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Show make's commands.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the kernel ELF's path (make's output only on errors).")
def build(verbose: bool, quiet: bool) -> None:
    """Build the kernel (regenerating the tracepoint code first) and print the ELF's path.

    In a source checkout the kernel goes to build/kernel.elf and make rebuilds what changed.
    Installed from a wheel or an sdist, it is built once into the per-user cache
    ($XDG_CACHE_HOME/osvtrace/kernel/, ~/.cache when unset) and reused.

    \b
    Example:
      osvtrace build
      gdb -x "$(osvtrace gdb-script)" "$(osvtrace build -q)"
    """
    from osvtrace.vm import kernel_build

    path = kernel_build.build(verbose=verbose, quiet=quiet)
    click.echo(str(path) if quiet else f"kernel: {path}")


DEFAULT_GDB_PORT = 1234


class _OptionalPortCommand(click.Command):
    """Lets `--gdb` go without its PORT even right before APP (`run --gdb hello`): click
    would take `hello` as the port, so the default port is put in before parsing."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        takes_value = {o for p in self.params if isinstance(p, click.Option) and not p.is_flag
                       and p.name != "gdb_port" for o in p.opts}
        i = 0
        while i < len(args):  # only the options before APP: later words are the app's
            a = args[i]
            if a == "--gdb":
                if i + 1 >= len(args) or not args[i + 1].isdigit():
                    args.insert(i + 1, str(DEFAULT_GDB_PORT))
                i += 2
            elif a in takes_value:
                i += 2
            elif a.startswith("-") and a != "-":
                i += 1
            else:
                break
        return super().parse_args(ctx, args)


@click.command(cls=_OptionalPortCommand,
               context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@vm_options
@click.option("--gdb", "gdb_port", type=click.IntRange(1, 65535), default=None, metavar="[PORT]",
              help=f"Start QEMU's gdbstub on 127.0.0.1:PORT (default {DEFAULT_GDB_PORT}).")
@click.option("--gdb-wait/--no-gdb-wait", default=True, show_default=True,
              help="With --gdb: start halted until gdb says `continue`.")
@click.argument("app")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(app: str, args: tuple[str, ...], gdb_port: int | None, gdb_wait: bool, **opts: Any) -> None:
    """Boot the kernel in QEMU running APP with ARGS; the console goes to stdout.

    Builds the kernel first when needed. Exits with the app's status (0..125); 124 when
    --timeout stopped it, 255 after a kernel panic, 130 on Ctrl-C. Apps: hello, pingpong [N],
    tpbench [N], sleep MS, spin, threads, crash, udp-echo PORT and kv PORT (with --net user).

    \b
    Example:
      osvtrace run pingpong 10000
      osvtrace run --machine q35 --smp 2 --trace 'sched_*' hello
      osvtrace run --gdb 1234 sleep 5000      # then: gdb -x "$(osvtrace gdb-script)" "$(osvtrace build -q)"
      osvtrace run --net user --hostfwd udp:5555-:7 udp-echo 7   # then: osvtrace load udp 127.0.0.1:5555 ...
    """
    from osvtrace import resources
    from osvtrace.vm import qemu

    verbose = opts["verbose"]
    cfg = _config(app, args, **opts)
    cfg.gdb_port, cfg.gdb_wait = gdb_port, gdb_wait and gdb_port is not None
    if verbose:
        click.echo("osvtrace: " + shlex.join(qemu.qemu_command(cfg)), err=True)
    if gdb_port is not None:
        click.echo(f"osvtrace: gdbstub on 127.0.0.1:{gdb_port}"
                   + (" (halted until gdb continues)" if cfg.gdb_wait else "")
                   + f": gdb -x {shlex.quote(str(resources.gdb_script()))} {shlex.quote(str(cfg.kernel))} "
                   + f"-ex 'target remote :{gdb_port}'", err=True)
    _stop_on_sigterm()
    with qemu.Vm(cfg, console=sys.stdout.buffer, stderr=sys.stderr.buffer) as vm:
        outcome = vm.wait()
    if verbose:
        click.echo("osvtrace: " + qemu.boot_line(vm.boot), err=True)
    if outcome.kind == "timeout":
        raise VmFailed(f"timed out after {cfg.timeout:g} s; QEMU stopped", outcome.exit_code)
    _fail(outcome, vm.refused)


COMMANDS = [build, run]  # record: cli/record_cmds.py
