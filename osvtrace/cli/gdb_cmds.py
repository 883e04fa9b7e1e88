"""`osvtrace gdb`: boot a VM halted with its gdbstub and hand the terminal to gdb,
attached, with the osv commands loaded (gdb/osv.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from osvtrace.cli.vm_cmds import VmFailed, _config, vm_options


def gdb_command(kernel: Path, port: int, *, commands: tuple[str, ...] = (), batch: bool = False,
                gdb: str = "gdb") -> list[str]:
    """The gdb command line: load the ELF and the osv commands, attach, then `commands`."""
    from osvtrace import resources

    argv = [gdb, "-q"]
    if batch:
        argv += ["-nx", "-batch"]
    argv += ["-ex", "set pagination off"] if batch else []
    argv += ["-x", str(resources.gdb_script()), "-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        argv += ["-ex", c]
    return argv + [str(kernel)]


@click.command(name="gdb", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@vm_options
@click.option("--port", type=click.IntRange(1, 65535), metavar="PORT",
              help="gdbstub port on 127.0.0.1 (default: a free one).")
@click.option("--console", "console_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the guest console to FILE instead of the terminal (`osv dmesg` shows it too).")
@click.option("--ex", "commands", multiple=True, metavar="CMD",
              help="A gdb command to run once attached (repeatable), e.g. --ex 'break gdbcheck_stop' --ex c.")
@click.option("--batch", is_flag=True, help="Run the --ex commands, then leave gdb and end the VM (scripts, tests).")
@click.argument("app")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def gdb_cmd(app: str, args: tuple[str, ...], port: int | None, console_file: Path | None, commands: tuple[str, ...],
            batch: bool, **opts: Any) -> None:
    """Boot APP halted under QEMU's gdbstub and start gdb attached, with the osv commands.

    The kernel waits at its first instruction: set breakpoints, then `continue`. Ctrl-C in
    gdb stops the VM (not osvtrace); leaving gdb ends the VM. `help osv` lists the kernel
    commands (osv info threads, osv thread, osv mutex, osv trace ...). Exits with gdb's status.

    \b
    Example:
      osvtrace gdb --smp 2 gdbcheck
      (gdb) break gdbcheck_stop
      (gdb) continue
      (gdb) osv info threads
      osvtrace gdb --batch --ex 'break gdbcheck_stop' --ex continue --ex 'osv mutex all' gdbcheck
    """
    from osvtrace.vm import qemu
    from osvtrace.vm.gdbmi import GdbMissing

    if shutil.which("gdb") is None:
        raise GdbMissing()
    cfg = _config(app, args, **opts)
    cfg.gdb_port, cfg.gdb_wait = port or qemu.free_port(), True
    argv = gdb_command(cfg.kernel, cfg.gdb_port, commands=commands, batch=batch)
    if opts["verbose"]:
        click.echo("osvtrace: " + shlex.join(qemu.qemu_command(cfg)), err=True)
        click.echo("osvtrace: " + shlex.join(argv), err=True)
    out = console_file.open("wb") if console_file else None
    env = dict(os.environ, OSVTRACE_VENV=os.environ.get("OSVTRACE_VENV") or sys.prefix)
    try:
        with qemu.Vm(cfg, console=out or sys.stdout.buffer, stderr=sys.stderr.buffer) as vm:
            # gdb owns the terminal and its Ctrl-C (it interrupts the VM); QEMU runs in its
            # own session, and osvtrace waits for gdb without reacting to SIGINT.
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                rc = subprocess.run(argv, env=env, preexec_fn=_default_sigint).returncode
            finally:
                signal.signal(signal.SIGINT, old)
            ended = not vm.running
            if ended:
                outcome = vm.wait(5)
                click.echo(f"osvtrace: the VM ended: {outcome.describe()}", err=True)
    finally:
        if out:
            out.close()
    if rc:
        raise VmFailed(f"gdb exited with status {rc}", rc)


def _default_sigint() -> None:
    """In gdb's process before exec: SIGINT back to its default (we ignore it meanwhile)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@click.command(name="gdb-script")
def gdb_script() -> None:
    """Print the path of the gdb script that adds the osv commands to gdb.

    The script finds this osvtrace (and its Python packages) by itself, so it works from
    any directory, installed or in a checkout.

    \b
    Example:
      gdb -x "$(osvtrace gdb-script)" "$(osvtrace build -q)" -ex 'target remote :1234'
    """
    from osvtrace import resources

    path = resources.gdb_script()
    if not path.is_file():
        raise resources.ResourceMissing(f"{path}: missing: this osvtrace lacks its gdb script")
    click.echo(str(path))


COMMANDS = [gdb_cmd, gdb_script]
