"""Commands about the schema and about trace files as such: tracepoints, info, synth."""

from __future__ import annotations

import click

from osvtrace.cli.options import echo_json, open_trace
from osvtrace.model.filters import format_duration


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--subsystem", help="Only this subsystem (sched, sync, net, trace).")
def tracepoints(as_json: bool, subsystem: str | None) -> None:
    """List every tracepoint of the schema: id, name, arguments, when it fires.

    \b
    Example:
      osvtrace tracepoints --subsystem sync
    """
    from osvtrace.catalog.schema import default_catalog

    cat = default_catalog()
    tps = [tp for tp in cat.active() if subsystem in (None, tp.subsystem)]
    if as_json:
        echo_json([{"id": tp.id, "name": tp.name, "subsystem": tp.subsystem, "slots": tp.nslots, "stack": tp.stack,
                    "doc": tp.doc,
                    "format": tp.format,
                    "args": [{"name": f.name, "type": f.type, "size": f.size, "offset": f.offset,
                              "enum": f.enum} for f in tp.fields]} for tp in tps])
        return
    for tp in tps:
        args = ", ".join(f"{f.name}:{f.type}" + (f"[{f.size}]" if f.is_blob else "") for f in tp.fields)
        click.echo(f"{tp.id:>4}  {tp.subsystem:<6} {tp.name:<18} ({args})")
        click.echo(f"      {'':<6} {tp.doc}")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(file: str, as_json: bool) -> None:
    """What a trace file holds: capture, CPUs, clock, chunks, damage.

    \b
    Example:
      osvtrace info trace.osvt
    """
    t = open_trace(file)
    m = t.facts
    s, e = t.span_ns
    data = {"file": file, "kind": m.kind, "size": m.size, "capture": m.capture, "cpus": t.ncpus, "tsc_hz": m.tsc_hz,
            "build_id": m.build_id, "cmdline": m.cmdline, "chunks": m.chunks, "events": len(t),
            "span_ns": e - s, "threads": len(t.threads), "tracepoints_in_schema": len(t.catalog.tracepoints),
            "complete": m.complete, "damaged_sections": m.damaged_chunks,
            "truncated": m.truncated, "status": m.status, "cpu_starts_ns": t.cpu_starts()}
    if as_json:
        echo_json(data)
        return
    click.echo(f"{file}: {data['size']:,} bytes, {data['chunks']} chunks, {data['events']:,} events over "
               f"{format_duration(data['span_ns'])} on {data['cpus']} CPU(s)")
    clock = f"clock {m.tsc_hz:,} Hz" if m.tsc_hz else "times in ns as the kernel wrote them"
    click.echo(f"capture {data['capture'] or '?'} ({m.kind}), {clock}, build {m.build_id or '?'}")
    click.echo(f"cmdline {m.cmdline or '-'}")
    click.echo(f"{data['threads']} threads, schema of {data['tracepoints_in_schema']} tracepoints embedded")
    state = "complete" if data["complete"] else "incomplete (no trailer)" if m.kind == "osvt" else "damaged"
    if data["damaged_sections"]:
        state += f", {data['damaged_sections']} damaged section(s) skipped"
    if data["truncated"]:
        state += ", truncated"
    click.echo(f"file {state}" + (f"; {data['status']}" if data["status"] else ""))
    starts = data["cpu_starts_ns"]
    if len(starts) > 1:
        t0 = min(starts.values())
        click.echo("data starts " + ", ".join(f"cpu{c} +{(v - t0) / 1e9:.3f} s" for c, v in sorted(starts.items()))
                   + " (after the earliest CPU's first event)")


@click.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Trace file to write.")
@click.option("--events", default=100_000, show_default=True, type=click.IntRange(1, 2_000_000_000))
@click.option("--cpus", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print the summary as JSON: {"output", "records", "cpus"}.')
def synth(output: str, events: int, cpus: int, seed: int, as_json: bool) -> None:
    """Write a synthetic trace (a scheduler and mutex workload) to try the tools without a VM.

    \b
    Example:
      osvtrace synth -o demo.osvt --events 1000000 --cpus 4
    """
    from rich.progress import Progress

    from osvtrace.format import synth as synth_mod

    with Progress(transient=True, disable=events < 2_000_000) as p:
        task = p.add_task("writing", total=events)
        n = synth_mod.generate(output, events, cpus, seed=seed, progress=lambda k: p.advance(task, k))
    if as_json:
        echo_json({"output": output, "records": n, "cpus": cpus})
    else:
        click.echo(f"wrote {n:,} records on {cpus} CPU(s) to {output}")


COMMANDS = [tracepoints, info, synth]
