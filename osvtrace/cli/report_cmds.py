"""`osvtrace report KIND FILE` and `osvtrace query FILE SQL`: thin wrappers of osvtrace.reports and osvtrace.query.sql.

Every report registered in osvtrace.reports.registry becomes a subcommand with the options it
declares, the way a plugin's would; the shell and the viewer are built from the same registry.
"""

from __future__ import annotations

from typing import Any

import click

from osvtrace.cli.options import click_option, open_trace, typed_values
from osvtrace.reports.registry import Spec


@click.group()
def report() -> None:
    """Reports over a trace file (text by default, --json or --csv for machines).

    \b
    Example:
      osvtrace report summary trace.osvt
      osvtrace report list trace.osvt --tp 'mutex_*' --cpu 0 --limit 20
      osvtrace report mutex trace.osvt --since 1ms --json
    """


def _report_command(spec: Spec) -> click.Command:
    """`osvtrace report NAME FILE`, with the options the report declares (osvtrace.reports.registry)."""

    def cmd(file: str, elf: str | None, **values: Any) -> None:
        from osvtrace.model import Model
        from osvtrace.reports import registry

        out = registry.produce(spec.name, Model(open_trace(file), elf), typed_values(spec.all_options(), values))
        if isinstance(out, str):
            click.echo(out, nl=not out.endswith("\n"))
        else:
            for line in out:
                click.echo(line)

    for opt in reversed(spec.all_options()):
        cmd = click_option(opt)(cmd)
    cmd = click.option("--elf", type=click.Path(dir_okay=False), default=None,
                       help="The kernel ELF whose DWARF names the trace's addresses (default: the kernel of the "
                            "trace's build id, when it is here; it must be the kernel that ran).")(cmd)
    cmd = click.argument("file", type=click.Path(dir_okay=False))(cmd)
    return click.command(name=spec.name, help=spec.doc)(cmd)


def _register_reports() -> None:
    from osvtrace.reports import REGISTRY

    for spec in REGISTRY.values():
        report.add_command(_report_command(spec))


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
