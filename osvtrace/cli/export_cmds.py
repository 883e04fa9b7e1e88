"""`osvtrace export FILE --format F -o OUT`: a thin wrapper of osvtrace.exports.

The formats come from the exports registry (built-in ones and plugins of the
``osvtrace.exports`` entry-point group), so a new format needs no change here.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from osvtrace.cli.completion_cmds import complete_export_formats
from osvtrace.cli.options import echo_json, filter_options, make_filter, open_trace
from osvtrace.errors import UsageError


@contextmanager
def progress_bar(enabled: bool) -> Iterator:
    """A progress callback (done, total, what) drawing a bar on stderr, or doing nothing."""
    if not enabled:
        yield lambda done, total, what: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<34}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("opening", total=1)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=max(total, 1), description=what)

        yield update


def _formats_help() -> str:
    from osvtrace.exports import FORMATS

    return "\n".join(f"  {name:<9} {f.doc}" for name, f in sorted(FORMATS.items()))


class _ExportCommand(click.Command):
    """Its help lists the formats registered when it is shown (plugins included)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from osvtrace.exports import load_plugins

        load_plugins()
        text = self.help or ""
        self.help = text.replace("{formats}", _formats_help().replace("\n", "\n    "))
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = text


@click.command(name="export", cls=_ExportCommand)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, metavar="FORMAT", help="perfetto, chrome, pcap, parquet, ctf, folded or pprof.",
              shell_complete=complete_export_formats)
@click.option("-o", "--output", "out", required=True, type=click.Path(), metavar="OUT",
              help="Output file (perfetto, chrome, pcap, folded, pprof) or directory (parquet, ctf).")
@filter_options
@click.option("--trace-id", metavar="ID", help="parquet: value of the `trace` column (default: FILE's stem).")
@click.option("--layout", type=click.Choice(["flat", "by-table"]), default="flat", show_default=True,
              help="parquet: OUT/TABLE.parquet, or OUT/TABLE/ID.parquet to collect many traces in one OUT.")
@click.option("--force", is_flag=True, help="Directory formats: replace the export files already in OUT.")
@click.option("--profile", type=click.Choice(["prof", "prof-wait", "prof-lock", "prof-hold"]), default="prof",
              show_default=True, help="folded, pprof: the stacks of `report prof|prof-wait|prof-lock` (prof-hold: "
              "mutex hold time by the holder's stack).")
@click.option("--metric", type=click.Choice(["count", "ns"]), default=None,
              help="folded: the value of each stack (default: ns for time profiles, count for prof).")
@click.option("--group-by", "group_by", type=click.Choice(["none", "thread", "cpu", "lock", "tracepoint"]),
              default="none", show_default=True,
              help="folded: the group as the outermost frame; pprof: as a label of each sample.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True,
              help='Print the summary as JSON: {"format", "output", "counts": {...}, "notes": [...]}.')
def export_cmd(file: str, fmt: str, out: str, trace_id: str | None, layout: str, force: bool, profile: str,
               metric: str | None, group_by: str, show_progress: bool | None, as_json: bool, **flt: object) -> None:
    """Export a trace for other tools: Perfetto, Chrome JSON, pcap, Parquet, CTF, folded stacks or pprof.

    \b
    Formats:
    {formats}

    Filters narrow the export where they make sense: --since/--until/--cpu/--thread
    for every format, --tp for ctf, folded and pprof. docs/exports.md says what each format holds
    and how to open it.

    \b
    Example:
      osvtrace export trace.osvt --format perfetto -o trace.pftrace
      osvtrace export trace.osvt --format chrome -o trace.json --since 1s --until 1.5s
      osvtrace export trace.osvt --format pcap -o net.pcap
      osvtrace export vm1.osvt --format parquet -o lake --layout by-table --trace-id vm1
      osvtrace export trace.osvt --format ctf -o trace-ctf
      osvtrace export trace.osvt --format folded --profile prof-lock -o locks.folded
      osvtrace export trace.osvt --format pprof --profile prof-wait -o waits.pb.gz
    """
    from osvtrace import exports
    from osvtrace.exports import load_plugins
    from osvtrace.exports.common import Options, check_output
    from osvtrace.exports.registry import ALL_FILTERS
    from osvtrace.model import Model

    for name in load_plugins():
        click.echo(f"osvtrace: warning: export plugin {name} failed to load", err=True)
    f = exports.get(fmt)
    used = {k: flt[k] for k in ("since", "until", "cpu", "thread", "tp")}
    for opt in sorted(ALL_FILTERS - f.filters):
        if used[opt]:
            takes = sorted(n for n, g in exports.FORMATS.items() if opt in g.filters)
            raise UsageError(f"--{opt} does not apply to {fmt} exports (it applies to: {', '.join(takes)})")
    if (trace_id or layout != "flat") and fmt != "parquet":
        raise UsageError("--trace-id and --layout apply to parquet exports only")
    if (profile != "prof" or group_by != "none") and fmt not in ("folded", "pprof"):
        raise UsageError("--profile and --group-by apply to folded and pprof exports only")
    if metric and fmt != "folded":
        raise UsageError("--metric applies to folded exports only (pprof holds both)")
    target = Path(out)
    check_output(target, f.is_dir)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    trace = open_trace(file)
    with progress_bar(show_progress) as progress:
        opts = Options(make_filter(**flt), trace_id or "", layout, force, profile, metric or "", group_by,  # type: ignore[arg-type]
                       progress)
        res = f.write(Model(trace), target, opts)
    for note in res.notes:
        click.echo(f"osvtrace: warning: {note}", err=True)
    if as_json:
        echo_json({"format": fmt, "output": str(res.path), "counts": res.counts, "notes": res.notes})
    else:
        click.echo(f"wrote {res.summary()}")


COMMANDS = [export_cmd]
