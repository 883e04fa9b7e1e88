"""`osvtrace report KIND FILE`: one subcommand per report, each a thin wrapper of osvtrace.reports."""

from __future__ import annotations

import click

from osvtrace.cli.options import echo_json, filter_options, make_filter, open_trace


@click.group()
def report() -> None:
    """Reports over a trace file (text by default, --json for machines).

    \b
    Example:
      osvtrace report summary trace.osvt
      osvtrace report list trace.osvt --tp 'mutex_*' --cpu 0 --limit 20
    """


@report.command()
@click.argument("file", type=click.Path(dir_okay=False))
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def summary(file: str, as_json: bool, **flt: object) -> None:
    """Counts per tracepoint and CPU, time span, lost records per CPU, threads."""
    from osvtrace.reports import summary as mod

    t = open_trace(file)
    s = mod.summary(t, make_filter(**flt))  # type: ignore[arg-type]
    echo_json(s) if as_json else click.echo(mod.render(s))


@report.command(name="list")
@click.argument("file", type=click.Path(dir_okay=False))
@filter_options
@click.option("--limit", type=click.IntRange(0), help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
def list_(file: str, limit: int | None, as_json: bool, **flt: object) -> None:
    """One line per event: thread, CPU, time (s.ns), tracepoint, arguments."""
    import json

    from osvtrace.reports import listing

    t = open_trace(file)
    idx = listing.selected(t, make_filter(**flt), limit)  # type: ignore[arg-type]
    if as_json:
        for r in listing.records(t, idx):
            click.echo(json.dumps(r))
    else:
        for line in listing.lines(t, idx):
            click.echo(line)


COMMANDS = [report]
