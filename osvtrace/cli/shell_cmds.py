"""`osvtrace shell FILE` and `osvtrace shell --live SOURCE`: thin wrappers of osvtrace.shell."""

from __future__ import annotations

import sys

import click

from osvtrace.cli.options import open_trace


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("-c", "--command", "cmds", multiple=True, metavar="CMD",
              help="Run this shell command and leave (repeatable), as a script would.")
@click.option("--live", metavar="SOURCE",
              help="A refreshing top-like screen of a recording: a growing .osvt file (a socket or an APP "
                   "to record need `osvtrace record` streaming).")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True, metavar="S",
              help="Refresh period of --live.")
@click.option("--window", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True, metavar="S",
              help="Rates of --live are over this much recent trace time.")
@click.option("--no-history", is_flag=True, help="Do not read or write the history file.")
def shell(file: str | None, cmds: tuple[str, ...], live: str | None, interval: float, window: float,
          no_history: bool) -> None:
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
    """
    from prompt_toolkit.history import InMemoryHistory

    from osvtrace.errors import UsageError

    if live:
        if file:
            raise UsageError("shell: give either FILE or --live SOURCE, not both")
        from osvtrace.shell import top

        top.run(top.open_source(live), interval=interval, window_s=window)
        return
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

COMMANDS = [shell]
