"""`osvtrace slice FILE --since A --until B -o OUT`: one time window of a trace as a smaller
.osvt (osvtrace.format.slice)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from osvtrace.cli.export_cmds import progress_bar
from osvtrace.cli.options import echo_json, open_trace
from osvtrace.errors import UsageError


@click.command(name="slice")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", metavar="TIME", help="Start (inclusive): seconds, or with a unit (250ms, 10us).")
@click.option("--until", metavar="TIME", help="End (exclusive), same forms as --since.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The .osvt to write.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def slice_cmd(file: str, since: str | None, until: str | None, out: str, force: bool, show_progress: bool | None,
              as_json: bool) -> None:
    """Write the records of one time window of FILE to a smaller .osvt.

    Every command opens the slice like the original: the same times, thread names (also of
    threads created before the window), stacks, and loss inside the window; what was lost
    outside it is kept in the file's metadata (`osvtrace report summary` shows both).

    \b
    Example:
      osvtrace slice trace.osvt --since 1.2s --until 1.5s -o storm.osvt
    """
    from osvtrace.format.slice import slice_trace
    from osvtrace.model.filters import parse_time

    lo = parse_time(since, "--since") if since is not None else None
    hi = parse_time(until, "--until") if until is not None else None
    if lo is None and hi is None:
        raise UsageError("slice: give --since, --until or both (the whole trace is the file itself)")
    if lo is not None and hi is not None and hi <= lo:
        raise UsageError(f"slice: --until {until} is not after --since {since}")
    target = Path(out)
    if target.exists() and not force:
        raise UsageError(f"{target}: exists (--force overwrites it)")
    if target.resolve() == Path(file).resolve():
        raise UsageError(f"{target}: is the input trace")
    trace = open_trace(file)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    with progress_bar(show_progress) as progress:
        res = slice_trace(trace, target, lo, hi, progress=progress)
    if as_json:
        echo_json({"output": res.path, "events": res.events, "slots": res.slots, "chunks": res.chunks,
                   "since_ns": res.since_ns, "until_ns": res.until_ns,
                   "per_cpu": {str(c): n for c, n in sorted(res.per_cpu.items())}})
    else:
        click.echo(f"wrote {res.summary()}")


COMMANDS = [slice_cmd]
