"""`osvtrace load`: drive a UDP server (udp-echo, kv, a real memcached) at a set rate."""

from __future__ import annotations

import click

from osvtrace.cli.options import echo_json


@click.command()
@click.argument("kind", type=click.Choice(["udp", "memcache"]))
@click.argument("target", metavar="HOST:PORT")
@click.option("--rate", type=click.FloatRange(0, min_open=True), required=True, metavar="R",
              help="Requests per second (open loop: sent on schedule whatever the replies do).")
@click.option("--duration", type=click.FloatRange(0, min_open=True), required=True, metavar="S",
              help="Seconds of sending; then --drain seconds more for late replies.")
@click.option("--conns", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Client sockets (source ports) the requests are spread over.")
@click.option("--size", default=64, show_default=True, type=click.IntRange(8, 1472), metavar="BYTES",
              help="udp: payload bytes per datagram.")
@click.option("--keys", default=1000, show_default=True, type=click.IntRange(1), help="memcache: key space.")
@click.option("--value-size", default=32, show_default=True, type=click.IntRange(1, 1300), metavar="BYTES",
              help="memcache: bytes per value.")
@click.option("--set-ratio", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="memcache: share of requests that are sets (the rest are gets).")
@click.option("--no-prefill", is_flag=True, help="memcache: do not set every key before the clock starts.")
@click.option("--drain", default=1.0, show_default=True, type=click.FloatRange(0), metavar="S",
              help="Seconds to wait for replies after the last request.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def load(kind: str, target: str, rate: float, duration: float, conns: int, size: int, keys: int, value_size: int,
         set_ratio: float, no_prefill: bool, drain: float, as_json: bool) -> None:
    """Send KIND requests to HOST:PORT at --rate for --duration; report throughput and latency.

    udp: datagrams that an echo server sends back (each checked byte for byte). memcache:
    memcached's text protocol over UDP (8-byte frame header), gets and sets on a fixed key
    space, every hit checked against the value set. Latency percentiles are measured on the
    host, send to reply. Exits 1 when a reply was wrong, 0 otherwise (loss is reported).

    \b
    Example:
      osvtrace run --net user --hostfwd udp:5555-:7 udp-echo 7 &
      osvtrace load udp 127.0.0.1:5555 --rate 2000 --duration 5
      osvtrace load memcache 127.0.0.1:11211 --rate 1000 --duration 10 --json
    """
    from osvtrace.loadgen import load as mod

    res = mod.run(kind, target, rate=rate, duration=duration, conns=conns, size=size, keys=keys,
                  value_size=value_size, set_ratio=set_ratio, drain=drain, prefill=not no_prefill)
    if as_json:
        echo_json(res.summary())
    else:
        click.echo(res.render())
    if res.bad:
        raise click.exceptions.Exit(1)


COMMANDS = [load]
