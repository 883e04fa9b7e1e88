"""Options shared by several commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import click

from osvtrace.model.filters import Filter

if TYPE_CHECKING:
    from osvtrace.format.trace import Trace
    from osvtrace.reports.registry import Opt


def click_option(opt: "Opt") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option made from a report option's declaration (osvtrace.reports.registry.Opt).
    Values stay text here: the command converts them (typed_values), so a bad time is the same
    one-line error in the CLI and in the shell."""
    kw: dict[str, Any] = {"help": opt.help, "metavar": opt.metavar or None}
    if opt.kind == "flag":
        return click.option(opt.flag, opt.key, is_flag=True, help=opt.help)
    if opt.kind == "int":
        kw.update(type=click.IntRange(opt.lo, opt.hi), default=opt.default, show_default=opt.default is not None)
    elif opt.kind == "list":
        kw.update(multiple=True)
    if opt.complete == "tracepoints":
        kw["shell_complete"] = _complete_tracepoints
    return click.option(opt.flag, opt.key, **kw)


def typed_values(opts: "tuple[Opt, ...]", raw: dict[str, Any]) -> dict[str, Any]:
    """Option values as click gives them (text, tuples of repeats) turned into their types."""
    out = dict(raw)
    for o in opts:
        v = raw.get(o.key)
        if v is None:
            continue
        if o.kind == "time" and isinstance(v, str):
            out[o.key] = o.value(v, o.flag)
        elif o.kind == "list":
            out[o.key] = [x for item in v for x in str(item).split(",") if x]
    return out


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--tp --cpu --thread --since --until (declared in osvtrace.reports.registry.FILTER_OPTS),
    passed to the command as keyword arguments for make_filter."""
    from osvtrace.reports.registry import FILTER_OPTS

    for o in reversed(FILTER_OPTS):
        f = click_option(o)(f)
    return f


def _complete_tracepoints(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from osvtrace.cli.completion_cmds import complete_tracepoints

    return complete_tracepoints(ctx, param, incomplete)


def make_filter(**raw: Any) -> Filter:
    """The Filter of filter_options' values."""
    from osvtrace.reports.registry import FILTER_OPTS
    from osvtrace.reports.registry import make_filter as from_values

    return from_values(typed_values(FILTER_OPTS, raw))


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
    if t.facts.damage:  # damage or truncation (not schema notes)
        damaged.append(str(path))
    return t


def echo_json(data: Any) -> None:
    """One JSON document on stdout: what every command's --json prints (strict JSON: no NaN)."""
    from osvtrace.reports.render import to_json

    click.echo(to_json(data))
