"""`osvtrace diff A B`: what changed between two runs (osvtrace.reports.diff)."""

from __future__ import annotations

import click

from osvtrace.cli.options import echo_json, open_trace
from osvtrace.errors import UsageError

KINDS = ("lock", "thread", "stack", "packet", "tracepoint")


@click.command(name="diff")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Compare only these (repeat; default all): lock, thread, stack, packet, tracepoint.")
@click.option("--min-change", default=25.0, show_default=True, type=click.FloatRange(0, 10000),
              help="Smallest move of the median or p99, in percent, that counts as a change.")
@click.option("--alpha", default=0.01, show_default=True, type=click.FloatRange(1e-12, 0.5),
              help="Significance level of the rank test, before the Bonferroni correction.")
@click.option("--fail-if-grew", "fail_grew", metavar="PCT", type=click.FloatRange(0, None),
              help="Exit 1 if any significant wait, hold or latency p99 grew by more than PCT percent (for CI).")
@click.option("--all", "show_all", is_flag=True, help="Show every comparison, not only the changes.")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, None), help="Rows shown.")
@click.option("--elf", "elfs", multiple=True, type=click.Path(dir_okay=False),
              help="Kernel ELF(s) naming the runs' locks and stacks: one for both, or one per run.")
@click.option("--html", "html_out", metavar="OUT", type=click.Path(dir_okay=False),
              help="Also write the comparison as one self-contained page (table, distributions per row).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"a", "b", "tests", "alpha", "min_change", "changes": [...], "significant", "notes"}.')
def diff_cmd(a: str, b: str, kinds: tuple[str, ...], min_change: float, alpha: float, fail_grew: float | None,
             show_all: bool, limit: int, elfs: tuple[str, ...], html_out: str | None, as_json: bool) -> None:
    """What changed from run A to run B: per lock, thread, waiting stack, packet path and
    tracepoint, as distributions (count, p50, p99, max), with a rank test so noise is not
    reported as change. Ratios are B over A.

    \b
    Example:
      osvtrace diff before.osvt after.osvt
      osvtrace diff before.osvt after.osvt --kind lock --fail-if-grew 20
      osvtrace diff before.osvt after.osvt --json | jq '.changes[] | select(.significant)'
      osvtrace diff before.osvt after.osvt --html diff.html
    """
    from osvtrace.model import Model
    from osvtrace.reports.diff import diff, render

    if len(elfs) > 2:
        raise UsageError("diff: --elf at most twice (one for both runs, or A's then B's)")
    ea = elfs[0] if elfs else None
    eb = elfs[-1] if elfs else None
    ma, mb = Model(open_trace(a), ea), Model(open_trace(b), eb)
    d = diff(ma, mb, alpha=alpha, min_change=min_change / 100, kinds=kinds or KINDS)
    if html_out:
        from pathlib import Path

        from osvtrace.viewer.diff_page import write

        try:
            write(d, Path(html_out))
        except OSError as e:
            raise UsageError(f"{html_out}: cannot write the page: {e.strerror or e}") from None
        if not as_json:
            click.echo(f"wrote {html_out}", err=True)
    grew = []
    if fail_grew is not None:
        grew = [c for c in d.significant if c.unit == "ns" and c.ratio_p99 > 1 + fail_grew / 100]
    if as_json:
        echo_json({"a": d.a, "b": d.b, "tests": d.tests, "alpha": d.alpha, "min_change": d.min_change,
                   "significant": len(d.significant),
                   "changes": [c.as_dict() for c in (d.changes if show_all else d.significant)],
                   "notes": d.notes, "failed": [f"{c.kind} {c.key} {c.metric}" for c in grew]})
    else:
        click.echo(render(d, limit, show_all))
    if grew:
        if not as_json:
            click.echo(f"osvtrace: diff: {len(grew)} p99 grew by more than {fail_grew:g}%: "
                       + ", ".join(f"{c.kind} {c.key} {c.metric} {c.ratio_p99:.2f}x" for c in grew[:5]), err=True)
        raise SystemExit(1)


COMMANDS = [diff_cmd]
