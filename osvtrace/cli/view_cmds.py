"""`osvtrace view FILE`: the browser viewer (a local server, or one static page)."""

from __future__ import annotations

import time

import click

from osvtrace.cli.options import open_trace
from osvtrace.errors import UsageError

DEFAULT_PORT = 8737


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0: any free port). If the default is taken, a free one is used.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --i-know-this-is-exposed.")
@click.option("--i-know-this-is-exposed", "exposed", is_flag=True,
              help="Allow a non-loopback --host: anyone who can reach it can read the whole trace.")
@click.option("--no-open", is_flag=True, help="Do not open a browser; just print the URL.")
@click.option("--static", "static", is_flag=True, help="Write one self-contained HTML page instead of serving.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The page to write (with --static).")
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
def view(file: str, port: int, host: str, exposed: bool, no_open: bool, static: bool, output: str | None,
         verbose: bool) -> None:
    """Explore a trace in the browser: lanes per CPU, thread, mutex and net channel, arrows for
    wake-ups, hand-offs and packet hops, details, search, summary and reports.

    The server listens on 127.0.0.1 only, unless told otherwise; it aggregates per pixel so
    traces of tens of millions of events stay fast. Ctrl-C stops it. With --static, one page
    that works without a server is written (small traces only: see docs/viewer.md).

    \b
    Example:
      osvtrace view trace.osvt
      osvtrace view trace.osvt --port 9000 --no-open
      osvtrace view small.osvt --static -o small.html
    """
    from osvtrace.model import Model
    from osvtrace.viewer import prepare_indexes
    from osvtrace.viewer.api import Api
    from osvtrace.viewer.server import ViewerServer, is_loopback

    if static:
        if not output:
            raise UsageError("--static needs -o PAGE.html")
        from osvtrace.viewer import static as static_mod

        trace = open_trace(file)
        static_mod.check(trace)  # refuse a big trace before building any table
        size = static_mod.write(Api(Model(trace)), output, progress=lambda m: click.echo(f"  {m}", err=True))
        click.echo(f"wrote {output} ({size / 2**20:.1f} MiB): open it in a browser, no server needed")
        return
    if output:
        raise UsageError("-o is for --static pages")
    bare = host.strip("[]")
    if not is_loopback(bare) and bare != "::1":
        if not exposed:
            raise UsageError(f"--host {host} would expose the trace to the network; add --i-know-this-is-exposed "
                             f"if that is what you want (the viewer has no authentication)")
        click.echo(f"osvtrace: WARNING: listening on {host}: anyone who can reach this address can read the trace "
                   f"(no authentication, no TLS)", err=True)
    clock = time.perf_counter()
    click.echo(f"osvtrace: loading {file}", err=True)
    api = Api(Model(open_trace(file)))
    prepare_indexes(api)
    click.echo(f"osvtrace: {len(api.trace):,} events, {len(api.lanes.lanes)} lanes ready in "
               f"{time.perf_counter() - clock:.1f} s", err=True)
    try:
        server = ViewerServer(api, host, port, verbose=verbose)
    except OSError as e:
        if port != DEFAULT_PORT:
            raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        server = ViewerServer(api, host, 0, verbose=verbose)
    url = server.url
    click.echo(f"osvtrace: viewer at {url}  (Ctrl-C to stop)")
    if not no_open:
        if _graphical():
            import webbrowser

            try:
                webbrowser.open(url)
            except Exception:  # no browser here: the URL is printed
                pass
        else:  # never start a console browser in this terminal
            click.echo("osvtrace: no graphical display here: open the URL in a browser (an SSH tunnel: "
                       "ssh -L PORT:127.0.0.1:PORT host)", err=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        click.echo("\nosvtrace: viewer stopped", err=True)
    finally:
        server.server_close()


def _graphical() -> bool:
    import os
    import sys

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


COMMANDS = [view]
