"""Options shared by several commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import click

from osvtrace.model.filters import Filter, parse_time

if TYPE_CHECKING:
    from osvtrace.format.trace import Trace


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--tp --cpu --thread --since --until, turned into a Filter passed as `flt`."""
    opts = [
        click.option("--tp", "tps", multiple=True, metavar="GLOB", shell_complete=_complete_tracepoints,
                     help="Only these tracepoints (anchored globs, comma-separated or repeated)."),
        click.option("--cpu", "cpus", multiple=True, type=int, metavar="N", help="Only this CPU (repeatable)."),
        click.option("--thread", "threads", multiple=True, metavar="T",
                     help="Only this thread: id or name glob (repeatable)."),
        click.option("--since", metavar="TIME", help="Start time: seconds, or with a unit (250ms, 10us)."),
        click.option("--until", metavar="TIME", help="End time (exclusive), same forms as --since."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _complete_tracepoints(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from osvtrace.cli.completion_cmds import complete_tracepoints

    return complete_tracepoints(ctx, param, incomplete)


def make_filter(tps: tuple[str, ...], cpus: tuple[int, ...], threads: tuple[str, ...], since: str | None,
                until: str | None) -> Filter:
    return Filter(list(tps), list(cpus), list(threads),
                  None if since is None else parse_time(since, "--since"),
                  None if until is None else parse_time(until, "--until"))


EXIT_DAMAGED = 3
# Files a command read that were damaged or cut short: the command still shows everything
# intact, and `main` then exits with EXIT_DAMAGED, so a script notices what a person sees
# in the warnings.
damaged: list[str] = []


def open_trace(path: str) -> "Trace":
    """Open a trace for a command; damage found on the way is reported on stderr."""
    from osvtrace.format.trace import open as open_

    t = open_(path)
    for w in t.warnings:
        click.echo(f"osvtrace: warning: {w}", err=True)
    if t.scan.warnings:  # damage or truncation (not schema notes)
        damaged.append(str(path))
    return t


def echo_json(data: Any) -> None:
    """One JSON document on stdout: what every command's --json prints (strict JSON: no NaN)."""
    from osvtrace.reports.common import to_json

    click.echo(to_json(data))
