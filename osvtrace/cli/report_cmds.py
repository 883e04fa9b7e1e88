"""`osvtrace report KIND FILE` and `osvtrace query FILE SQL`: thin wrappers of osvtrace.reports and osvtrace.query.sql.

Every report registered in osvtrace.reports.common.REGISTRY becomes a subcommand with
the same options, the way a plugin's would.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from osvtrace.cli.options import echo_json, filter_options, make_filter, open_trace


@click.group()
def report() -> None:
    """Reports over a trace file (text by default, --json or --csv for machines).

    \b
    Example:
      osvtrace report summary trace.osvt
      osvtrace report list trace.osvt --tp 'mutex_*' --cpu 0 --limit 20
      osvtrace report mutex trace.osvt --since 1ms --json
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
    from osvtrace.reports import listing
    from osvtrace.reports.common import to_json

    t = open_trace(file)
    idx = listing.selected(t, make_filter(**flt), limit)  # type: ignore[arg-type]
    if as_json:
        for r in listing.records(t, idx):
            click.echo(to_json(r, indent=None))
    else:
        for line in listing.lines(t, idx):
            click.echo(line)


def _model_report(name: str, fn: Callable[..., Any], doc: str) -> click.Command:
    @click.argument("file", type=click.Path(dir_okay=False))
    @filter_options
    @click.option("--min-duration", "min_duration", metavar="TIME", help="Only rows at least this long (250us ...).")
    @click.option("--limit", type=click.IntRange(0), default=50, show_default=True, help="Rows shown as text.")
    @click.option("--buckets", type=click.IntRange(1, 1000), default=60, show_default=True,
                  help="Time buckets of pictures over time.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (all rows).")
    @click.option("--csv", "as_csv", is_flag=True, help="CSV output (all rows).")
    def cmd(file: str, min_duration: str | None, limit: int, buckets: int, as_json: bool, as_csv: bool,
            **flt: object) -> None:
        from osvtrace.model import Model
        from osvtrace.model.filters import parse_time
        from osvtrace.reports import common

        opts = common.Options(parse_time(min_duration, "--min-duration") if min_duration else 0, limit, buckets)
        r = fn(Model(open_trace(file)), make_filter(**flt), opts)  # type: ignore[arg-type]
        if as_json:
            click.echo(common.render_json(r))
        elif as_csv:
            click.echo(common.render_csv(r), nl=False)
        else:
            click.echo(common.render_text(r, limit))

    cmd.__doc__ = doc
    return click.command(name=name, help=doc)(cmd)


def _register_reports() -> None:
    from osvtrace.reports import REGISTRY

    for name, (fn, doc) in REGISTRY.items():
        report.add_command(_model_report(name, fn, doc))


_register_reports()


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
              help="Output form: table (default), csv, or json (same as --json).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: a JSON array, one object per row.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (same as --format csv).")
@click.option("--limit", type=click.IntRange(0), default=100, show_default=True, help="Rows shown as a table.")
def query(file: str, sql: str, fmt: str | None, as_json: bool, as_csv: bool, limit: int) -> None:
    """Run SQL over the trace's tables (docs/tables.md) and per-tracepoint tables.

    \b
    Example:
      osvtrace query trace.osvt "select tid, sum(dur) from sched_slice group by tid order by 2 desc"
      osvtrace query trace.osvt "select * from mutex_handoff where to_tid = 7" --csv
      osvtrace query trace.osvt "select cpu, count(*) as n from events group by cpu" --json
    """
    from osvtrace.errors import UsageError
    from osvtrace.model import Model
    from osvtrace.query import sql as sqlmod

    asked = {f for f, on in (("json", as_json), ("csv", as_csv), (fmt, fmt is not None)) if on}
    if len(asked) > 1:
        raise UsageError(f"query: give one output form, not {' and '.join(sorted(asked))}")
    fmt = asked.pop() if asked else "table"
    click.echo(sqlmod.render(sqlmod.query(Model(open_trace(file)), sql), fmt, limit))


COMMANDS = [report, query]
