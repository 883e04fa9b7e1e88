"""The shell's commands: one function each, registered by name; the docstring is the help.

Every report of osvtrace.reports.REGISTRY becomes a command of the same name, with the
options the report declares, run and rendered by the same registry as `osvtrace report KIND FILE`,
so both take the same options and print the same text.
A command returns its output (a string, or an iterator of lines for long listings that
the pager pulls lazily); it never prints, so the loop decides between printing and paging.
"""

from __future__ import annotations

import difflib
import inspect
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from osvtrace.errors import UsageError
from osvtrace.model.filters import Filter
from osvtrace.reports import registry
from osvtrace.reports.registry import Opt, Spec
from osvtrace.shell.context import FILTER_KEYS, Context

Output = str | Iterable[str] | None


@dataclass
class Command:
    name: str
    fn: Callable[[Context, str], Output]
    doc: str
    complete: str = ""  # what the arguments are, for the completer: see completion.py
    options: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


COMMANDS: dict[str, Command] = {}
ALIASES = {"exit": "quit", "?": "help", "query": "sql"}
SQL_STARTS = ("select", "with", "from", "summarize", "pragma")


def command(name: str, complete: str = "", options: tuple[str, ...] = ()) -> Callable:
    """Register a command. It gets the text after its name; its docstring is its help."""

    def deco(fn: Callable[[Context, str], Output]) -> Callable[[Context, str], Output]:
        COMMANDS[name] = Command(name, fn, inspect.cleandoc(fn.__doc__ or ""), complete, options)
        return fn

    return deco


def resolve(line: str) -> tuple[Command, str]:
    """The command a line names and the text of its arguments."""
    text = line.strip()
    word, _, rest = text.partition(" ")
    if "\n" in word:
        word, _, more = word.partition("\n")
        rest = more + (" " + rest if rest else "")
    key = word.lower()
    if key in SQL_STARTS:  # a bare query
        return COMMANDS["sql"], text
    key = ALIASES.get(key, key)
    cmd = COMMANDS.get(key)
    if cmd is None:
        close = difflib.get_close_matches(key, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown command {word!r}{hint} (help lists the commands)")
    return cmd, rest.strip()


def run(ctx: Context, line: str) -> Output:
    """Run one input line (empty lines do nothing)."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    cmd, rest = resolve(line)
    return cmd.fn(ctx, rest)


# ---------------------------------------------------------------- argument parsing

FILTER_OPTS = {o.flag: o.kind for o in registry.FILTER_OPTS}


def split(args: str, what: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError as e:
        raise UsageError(f"{what}: {e}") from None


def parse(what: str, args: str, opts: Iterable[Opt]) -> tuple[dict[str, Any], list[str]]:
    """A command's options, declared as Opts (the reports' own declarations for a report):
    (values by key, typed and checked; positionals)."""
    return registry.parse_words(what, split(args, what), opts)


def make_filter(ctx: Context, opts: dict[str, Any]) -> Filter:
    """The session's filters, with any given on the command line replacing them for this command."""
    return registry.make_filter(opts, base=ctx.filters.to_filter())


def dumps(data: Any) -> str:
    """JSON as `osvtrace ... --json` writes it."""
    from osvtrace.reports.render import to_json

    return to_json(data)


# ---------------------------------------------------------------- reports

def _report_command(spec: Spec) -> None:
    """The shell's command for a registered report: the options it declares (the same as
    `osvtrace report NAME`'s), the session's filters as defaults, the same renderer."""
    declared = spec.all_options()

    def run_report(ctx: Context, args: str) -> Output:
        opts, pos = parse(spec.name, args, declared)
        if pos:
            raise UsageError(f"{spec.name}: unexpected argument {pos[0]!r} (help {spec.name})")
        return registry.produce(spec.name, ctx.model, opts, base=ctx.filters.to_filter())

    forms = " | ".join(f"--{f}" for f in spec.formats)
    run_report.__doc__ = f"""{spec.doc}

    Usage: {spec.name} {registry.usage(spec)}
    Prints what `osvtrace report {spec.name} FILE` prints. The filters set with `set` apply;
    filter options given here replace them for this command only.
    """ + "".join(f"""
    {o.flag} {o.help[0].lower() + o.help[1:].rstrip(".")}""" + (f" (default {o.default})" if o.default not in (None, 0) else "") + "."
                  for o in spec.options) + f"""

    Example:
      {spec.name}
      {spec.name} --since 1ms {forms.split(" | ")[0] if forms else ""}
    """
    command(spec.name, complete="options", options=tuple(o.flag for o in declared))(run_report)


def _register_reports() -> None:
    from osvtrace.reports import REGISTRY

    for spec in REGISTRY.values():
        _report_command(spec)


# ---------------------------------------------------------------- SQL

def sql_text(args: str) -> str:
    """The query of an `sql` input: trailing semicolons and blank lines dropped."""
    q = args.strip()
    while q.endswith(";"):
        q = q[:-1].rstrip()
    return q


@command("sql", complete="sql")
def sql(ctx: Context, args: str) -> Output:
    """Run SQL over the trace's tables (DuckDB): model tables and one table per tracepoint.

    Usage: sql QUERY      (a query may span lines: end it with ';' or an empty line)
    Prints what `osvtrace query FILE QUERY` prints; `set format csv|json` and
    `set limit N|all` choose the form and the rows shown (default: a table of 100 rows).
    A line starting with SELECT or WITH is a query too. `tables` lists the tables,
    `describe TABLE` their columns; Tab completes tables, columns, tracepoints and
    mutex addresses (mutex columns hold integers: 0xa000 is written 40960).

    Example:
      sql select tid, sum(dur) from sched_slice group by tid order by 2 desc;
      select mutex, count(*) from mutex_wait group by mutex;
    """
    from osvtrace.query import sql as sqlmod

    q = sql_text(args)
    if not q:
        raise UsageError("sql: needs a query (help sql)")
    tbl = run_query(sqlmod.connect(ctx.model, q), q)
    return sqlmod.render(tbl, ctx.settings.format, ctx.settings.limit)


def run_query(con, q: str):  # noqa: ANN001, ANN201  (DuckDB connection -> pyarrow table)
    """Run a query on a worker thread, so that Ctrl-C can stop it at once: the main thread
    gets the KeyboardInterrupt and interrupts the connection (DuckDB checks SIGINT itself
    only now and then). Errors become one line, as in osvtrace.query.sql.query."""
    import threading

    import duckdb
    import pyarrow as pa

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            rel = con.sql(q)
            box["table"] = pa.table({}) if rel is None else rel.to_arrow_table()
        except BaseException as e:  # noqa: BLE001  (handed to the main thread)
            box["error"] = e

    t = threading.Thread(target=work, name="osvtrace-sql", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.05)
    except KeyboardInterrupt:
        con.interrupt()
        t.join(5)
        raise
    err = box.get("error")
    if isinstance(err, duckdb.Error):
        if "interrupt" in str(err).lower():
            raise KeyboardInterrupt
        raise UsageError(f"SQL: {str(err).strip().splitlines()[0]}") from None
    if err is not None:
        raise err
    return box["table"]


@command("tables", complete="")
def tables(ctx: Context, args: str) -> Output:
    """The tables SQL can query: the model's tables, then one per tracepoint (with its event count).

    Usage: tables
    """
    from osvtrace.model import SPECS

    out = ["model tables (docs/tables.md):"]
    w = max(len(n) for n in SPECS)
    out += [f"  {n:<{w}}  {s.doc}" for n, s in SPECS.items()]
    out.append("tracepoint tables (time, cpu, tid and the arguments):")
    counts = ctx.tracepoint_counts
    names = [n for n in ctx.tracepoint_names if n in ctx.table_columns and n not in SPECS]
    w = max((len(n) for n in names), default=8)
    out += [f"  {n:<{w}}  {counts.get(n, 0):>10,} events" for n in names]
    return "\n".join(out)


@command("describe", complete="table")
def describe(ctx: Context, args: str) -> Output:
    """The columns of a table, with what each holds.

    Usage: describe TABLE

    Example:
      describe mutex_wait
    """
    name = args.strip().rstrip(";")
    if not name:
        raise UsageError("describe: which table? (tables lists them)")
    cols = ctx.table_columns.get(name)
    if cols is None:
        raise UsageError(f"describe: no table {name!r} (tables lists them)")
    w = max(len(c) for c, _ in cols)
    return "\n".join([name] + [f"  {c:<{w}}  {d}" for c, d in cols])


# ---------------------------------------------------------------- filters and settings

SETTINGS = ("limit", "format", "color", "pager")


@command("set", complete="set")
def set_(ctx: Context, args: str) -> Output:
    """Set a filter for the commands that follow, or a setting.

    Usage: set since|until TIME        time window (1.5, 250ms, 10us, 42ns)
           set cpu N[,N...]            only these CPUs
           set thread T[,T...]         only these threads (ids or name globs)
           set tp GLOB[,GLOB...]       only these tracepoints (anchored globs)
           set limit N|all             rows of sql tables
           set format table|csv|json   form of sql output
           set color on|off            colours in timelines
           set pager builtin|off|CMD   how long output is paged (CMD: e.g. less -RS)
    `show` prints what is set, `unset` clears filters. Reports, list, summary, timeline
    and view use the filters; sql does not (write WHERE clauses).

    Example:
      set since 1ms
      set thread worker-*
    """
    words = split(args, "set")
    if not words:
        return show(ctx, "")
    key, vals = words[0].lower(), words[1:]
    if key in FILTER_KEYS:
        ctx.set_filter(key, vals)
        return None
    st = ctx.settings
    if key not in SETTINGS:
        raise UsageError(f"set {key}: unknown; filters are {', '.join(FILTER_KEYS)}, settings {', '.join(SETTINGS)}")
    if not vals:
        raise UsageError(f"set {key}: needs a value (help set)")
    v = " ".join(vals)
    if key == "limit":
        if v == "all":
            st.limit = None
        elif v.isdigit():
            st.limit = int(v)
        else:
            raise UsageError(f"set limit {v}: a number of rows or 'all'")
    elif key == "format":
        if v not in ("table", "csv", "json"):
            raise UsageError(f"set format {v}: one of table, csv, json")
        st.format = v
    elif key == "color":
        if v not in ("on", "off"):
            raise UsageError(f"set color {v}: on or off")
        st.color = v == "on"
    else:
        st.pager = v
    return None


@command("unset", complete="unset")
def unset(ctx: Context, args: str) -> Output:
    """Clear filters: the ones named, or all of them.

    Usage: unset [since|until|cpu|thread|tp ...]

    Example:
      unset cpu
      unset
    """
    ctx.unset([w.lower() for w in split(args, "unset")])
    return None


@command("show", complete="")
def show(ctx: Context, args: str) -> Output:
    """Print the filters and settings in force.

    Usage: show
    """
    flt = ctx.filters.describe()
    out = ["filters: " + ("  ".join(f"{k}={v}" for k, v in flt) if flt else "none (the whole trace)")]
    st = ctx.settings
    out.append(f"settings: limit={'all' if st.limit is None else st.limit}  format={st.format}  "
               f"color={'on' if st.color else 'off'}  pager={st.pager}")
    return "\n".join(out)


# ---------------------------------------------------------------- timeline, viewer

TIMELINE_OPTS = (Opt("--width", "int", "Columns of the picture (0: fit the screen).", metavar="N", lo=0, hi=10000),
                 *(o for o in registry.FILTER_OPTS if o.flag in ("--since", "--until")))


@command("timeline", complete="timeline", options=tuple(o.flag for o in TIMELINE_OPTS))
def timeline(ctx: Context, args: str) -> Output:
    """Draw a compact text timeline of threads or CPUs, one row each, over a time axis.

    Usage: timeline [cpus|threads|THREAD|cpuN ...] [--width N] [--since T] [--until T]
    A thread's row shows its state per time bucket: █ running (green), ▓ runnable
    (yellow), ▒ waiting (red), ░ sleeping (blue), × dead, blank unknown.
    A CPU's row shows how busy it was (block height; idle threads do not count),
    coloured by the thread that ran most, with that thread's letter on the row below.
    `cpus` is a row per CPU (those of `set cpu`, else all), `threads` a row per thread
    (those of `set thread`, else all); other words are thread ids or name globs (a
    thread named "threads" is its id or thread[s]). With no target, every CPU. The time
    window is the one set with `set since/until` (default the whole trace).

    Example:
      timeline cpu0 cpu1
      timeline threads
      timeline worker-* --width 60
    """
    from osvtrace.shell import timeline as tl
    from osvtrace.shell.paging import screen_size

    opts, targets = parse("timeline", args, TIMELINE_OPTS)
    flt = make_filter(ctx, opts)
    lo, hi = ctx.window(flt)
    width = opts.get("width") or max(20, screen_size().columns - tl.LABEL - 2)
    if not targets:
        targets = ["cpus"]
    cpus = [int(c) for c in flt.cpus] if flt.cpus else None
    if flt.threads:
        from osvtrace.model.filters import thread_ids

        threads = thread_ids(ctx.trace, flt.threads).tolist()
    else:
        threads = ctx.model.threads["tid"].tolist() if "threads" in (w.lower() for w in targets) else None
    rows = tl.resolve_targets(ctx.trace, targets, cpus=cpus, threads=threads)
    return "\n".join(tl.draw(ctx.model, rows, lo, hi, width, ctx.settings.color))


VIEW_OPTS = (Opt("--no-open", "flag", "Print the URL, start no browser."),
             Opt("--port", "int", "Port to serve on (0: any free one).", metavar="N", lo=0, hi=65535))


@command("view", complete="options", options=tuple(o.flag for o in VIEW_OPTS))
def view(ctx: Context, args: str) -> Output:
    """Serve the browser viewer on this trace (127.0.0.1) and open it at the current filters.

    Usage: view [--no-open] [--port N]
    The server shares the shell's tables (nothing is built twice) and runs until the shell
    ends; `view` again reopens the page. The URL carries the filters' time window and the
    lanes of the CPUs and threads set (#t0=NS&t1=NS&lanes=cpu:0,thread:3). A browser is
    started only where there is a display ($DISPLAY, $WAYLAND_DISPLAY or $BROWSER); else
    open the printed URL yourself (over ssh: forward the port).

    Example:
      set since 1ms
      view
    """
    import os
    import webbrowser
    from urllib.parse import urlencode

    opts, pos = parse("view", args, VIEW_OPTS)
    if pos:
        raise UsageError(f"view: unexpected argument {pos[0]!r}")
    try:
        from osvtrace.viewer import prepare_indexes
        from osvtrace.viewer.api import Api
        from osvtrace.viewer.server import ViewerServer
    except ImportError:
        raise UsageError("view: the browser viewer is not part of this installation (osvtrace.viewer)") from None
    server = ctx.resources.get("viewer")
    if server is None or ("port" in opts and server.server_address[1] != opts["port"]):
        if server is not None:
            server.shutdown()
            server.server_close()
        api = Api(ctx.model)
        prepare_indexes(api)
        try:
            server = ViewerServer(api, "127.0.0.1", opts.get("port", 0))
        except OSError as e:
            raise UsageError(f"view: cannot listen on 127.0.0.1:{opts.get('port', 0)}: {e.strerror or e}") from None
        server.start()
        ctx.resources["viewer"] = server
    flt = ctx.filters.to_filter()
    frag: dict[str, str] = {}
    if flt.since is not None or flt.until is not None:
        frag["t0"], frag["t1"] = map(str, ctx.window(flt))
    lanes = [f"cpu:{c}" for c in flt.cpus]
    if flt.threads:
        from osvtrace.model.filters import thread_ids

        lanes += [f"thread:{t}" for t in thread_ids(ctx.trace, flt.threads).tolist()]
    if lanes:
        frag["lanes"] = ",".join(lanes)
    url = server.url + ("#" + urlencode(frag, safe=":,") if frag else "")
    opened = False
    if not opts.get("no_open") and any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")):
        try:
            opened = webbrowser.open(url)
        except Exception:  # no usable browser: the URL is printed
            opened = False
    return f"viewer at {url}" + ("  (opened in the browser)" if opened else "")


# ---------------------------------------------------------------- help, quit

class Quit(Exception):
    """Raised by `quit`: the loop ends."""


@command("quit", complete="")
def quit_(ctx: Context, args: str) -> Output:
    """Leave the shell (Ctrl-D does too).

    Usage: quit
    """
    raise Quit()


@command("help", complete="command")
def help_(ctx: Context, args: str) -> Output:
    """List the commands, or describe one.

    Usage: help [COMMAND]

    Example:
      help timeline
    """
    name = args.strip().lower()
    if name:
        name = ALIASES.get(name, name)
        cmd = COMMANDS.get(name)
        if cmd is None:
            raise UsageError(f"help: no command {name!r} (help lists the commands)")
        return cmd.doc
    w = max(len(n) for n in COMMANDS)
    out = ["Commands (help COMMAND for more; Tab completes; Ctrl-C cancels; Ctrl-D leaves):"]
    out += [f"  {n:<{w}}  {c.summary}" for n, c in sorted(COMMANDS.items())]
    out.append("A line starting with SELECT or WITH runs as SQL; end multi-line SQL with ';' or an empty line.")
    return "\n".join(out)


def lines_of(out: Output) -> Iterator[str]:
    """Output as lines (strings are split; iterators pass through lazily)."""
    if out is None:
        return iter(())
    if isinstance(out, str):
        text = out[:-1] if out.endswith("\n") else out
        return iter(text.split("\n"))
    return iter(out)


_register_reports()
