"""`osvtrace shell FILE` and `osvtrace shell --live SOURCE`: thin wrappers of osvtrace.shell."""

from __future__ import annotations

import sys
from typing import Any

import click

from osvtrace.cli.options import open_trace
from osvtrace.cli.vm_cmds import vm_options


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("-c", "--command", "cmds", multiple=True, metavar="CMD",
              help="Run this shell command and leave (repeatable), as a script would.")
@click.option("--live", metavar="SOURCE",
              help="A refreshing top-like screen of a recording: a growing .osvt file, the control socket of a "
                   "running `osvtrace record`, or an application command line to record ('mutex --threads 4'; "
                   "the VM options below apply to it).")
@click.option("-o", "--output", metavar="FILE",
              help="--live APP: the trace file to record (default live-APP-DATE.osvt here).")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True, metavar="S",
              help="Refresh period of --live.")
@click.option("--window", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True, metavar="S",
              help="Rates of --live are over this much recent trace time.")
@click.option("--no-history", is_flag=True, help="Do not read or write the history file.")
@vm_options
@click.option("--buffer", metavar="SIZE", help="--live APP: ring size per CPU (as `osvtrace record --buffer`).")
@click.pass_context
def shell(ctx: click.Context, file: str | None, cmds: tuple[str, ...], live: str | None, output: str | None,
          interval: float, window: float, no_history: bool, **vm: Any) -> None:
    """Interactive shell over a trace: reports, SQL, filters, timelines (help inside).

    Commands are the reports (summary, list, sched, mutex ...), `sql QUERY`, `set`/`show`/
    `unset` filters, `timeline THREAD|cpuN`, `tables`, `describe`, `view` and `help`.
    History is kept in $XDG_STATE_HOME/osvtrace/history (~/.local/state/osvtrace/history).
    With standard input not a terminal, commands are read from it, one per line.

    \b
    Example:
      osvtrace shell trace.osvt
      osvtrace shell trace.osvt -c 'set cpu 0' -c 'sched --limit 5'
      osvtrace shell --live growing.osvt
      osvtrace shell --live /tmp/osvtrace-ctl.sock
      osvtrace shell --live 'mutex --threads 4 --iterations 200000' --smp 2 --trace 'sched_*,mutex_*'
    """
    from prompt_toolkit.history import InMemoryHistory

    from osvtrace.errors import UsageError

    record_args = _record_args(ctx, vm)
    if live:
        if file:
            raise UsageError("shell: give either FILE or --live SOURCE, not both")
        from osvtrace.shell import top
        from osvtrace.shell.live import AppRecording

        src = top.open_source(live, output=output, record_args=record_args)
        try:
            top.run(src, interval=interval, window_s=window)
        finally:
            src.close()
        if isinstance(src, AppRecording):
            tail = src.log_tail()
            if tail:
                click.echo(tail, err=True)
            if src.path.exists():
                click.echo(f"osvtrace: trace in {src.path}", err=True)
            if src.returncode:
                sys.exit(src.returncode)
        return
    if record_args or output:
        raise UsageError("shell: -o and the VM options are for --live APP")
    if not file:
        raise UsageError("shell: which trace? (osvtrace shell FILE, or --live SOURCE)")
    from osvtrace.shell import Shell

    hist = InMemoryHistory() if no_history or cmds or not sys.stdin.isatty() else None
    sh = Shell(open_trace(file), history=hist)
    if cmds:
        code = sh.run_script(cmds)
    elif not sys.stdin.isatty():
        code = sh.run_script(sys.stdin)
    else:
        code = sh.run()
    if code:
        sys.exit(code)


def _record_args(ctx: click.Context, vm: dict[str, Any]) -> list[str]:
    """The VM options given on this command line, as `osvtrace record` options."""
    out: list[str] = []
    for p in ctx.command.params:
        if p.name not in vm or ctx.get_parameter_source(p.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag, value = max(p.opts, key=len), vm[p.name]
        if getattr(p, "is_flag", False):
            out += [flag] if value else []
        else:
            for v in value if getattr(p, "multiple", False) else [value]:
                out += [flag, str(v)]
    return out


COMMANDS = [shell]
