"""One way to run a report. The registry maps a name to a Spec: the function that computes
it, the options it takes (declared once, as Opt), and how it renders. `osvtrace report NAME`,
the shell's NAME command and the viewer's report panel are all built from it, so a report
registered here (by this package or a plugin) appears in all three with the same options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from osvtrace.errors import UsageError
from osvtrace.model import Model
from osvtrace.model.filters import Filter, parse_time
from osvtrace.reports import render
from osvtrace.reports.common import Options, Report, name_columns


@dataclass(frozen=True)
class Opt:
    """An option, declared once: the CLI makes a click option of it, the shell parses it from
    its command line, the viewer from a query string."""

    flag: str  # "--min-duration"
    kind: str  # "int" | "time" | "list" | "flag" | "str"
    help: str
    default: Any = None
    metavar: str = ""
    lo: int | None = None  # bounds of an int
    hi: int | None = None
    complete: str = ""  # what the value is, for completers: "tracepoints", "threads", ...

    @property
    def key(self) -> str:
        return self.flag[2:].replace("-", "_")

    def value(self, text: str, what: str) -> Any:
        """A value given as text (the shell's words, a query string) as this option's type."""
        if self.kind == "int":
            if not text.isdigit():
                raise UsageError(f"{what}: {self.flag} {text}: not a whole number")
            return self.check(int(text), what)
        if self.kind == "time":
            return parse_time(text, self.flag)
        if self.kind == "list":
            return [x for x in text.split(",") if x]
        return text

    def take(self, values: dict[str, Any], text: str | None, what: str) -> None:
        """Store one occurrence of this option in values (a list option's repeats add up;
        a flag takes no text)."""
        if self.kind == "flag":
            values[self.key] = True
        elif self.kind == "list":
            values.setdefault(self.key, []).extend(self.value(text or "", what))
        else:
            values[self.key] = self.value(text or "", what)

    def check(self, v: int, what: str) -> int:
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            hi = "" if self.hi is None else self.hi
            raise UsageError(f"{what}: {self.flag} {v}: must be {self.lo}..{hi}")
        return v


# What every report takes to select events; FILTER_KEYS name them in a values dict.
FILTER_OPTS: tuple[Opt, ...] = (
    Opt("--tp", "list", "Only these tracepoints (anchored globs, comma-separated or repeated).", metavar="GLOB",
        complete="tracepoints"),
    Opt("--cpu", "list", "Only this CPU (repeatable).", metavar="N"),
    Opt("--thread", "list", "Only this thread: id or name glob (repeatable).", metavar="T", complete="threads"),
    Opt("--since", "time", "Start time: seconds, or with a unit (250ms, 10us).", metavar="TIME"),
    Opt("--until", "time", "End time (exclusive), same forms as --since.", metavar="TIME"),
)
FILTER_KEYS = tuple(o.key for o in FILTER_OPTS)

# What a table report takes beyond the filter.
TABLE_OPTS: tuple[Opt, ...] = (
    Opt("--min-duration", "time", "Only rows at least this long (250us ...).", 0, "TIME"),
    Opt("--limit", "int", "Rows shown as text.", 50, "N", lo=0),
    Opt("--buckets", "int", "Time buckets of pictures over time.", 60, "N", lo=1, hi=1000),
)

# Output forms: the flag that asks for each (text is the default).
FORMAT_FLAGS = {"json": "--json", "csv": "--csv"}


@dataclass(frozen=True)
class Spec:
    """A registered report."""

    name: str
    doc: str
    fn: Callable[[Model, Filter, Options], Any]  # a Report for table reports, else what text/json take
    options: tuple[Opt, ...] = TABLE_OPTS  # beyond FILTER_OPTS
    formats: tuple[str, ...] = ("json", "csv")  # machine forms besides text
    json_help: str = "Machine-readable output (all rows)."
    text: Callable[[Any, Options], str | Iterator[str]] | None = None  # None: a table (render.render_text)
    json: Callable[[Any], str | Iterator[str]] | None = None  # None: render.render_json (or to_json)

    @property
    def table(self) -> bool:
        """Renders as a table (the viewer's report panel shows these)."""
        return self.text is None

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    def all_options(self) -> tuple[Opt, ...]:
        fmts = tuple(Opt(FORMAT_FLAGS[f], "flag", self.json_help if f == "json" else "CSV output (all rows).")
                     for f in self.formats)
        return self.options + fmts + FILTER_OPTS


REGISTRY: dict[str, Spec] = {}


def register_spec(spec: Spec) -> Spec:
    REGISTRY[spec.name] = spec
    return spec


def register(name: str, doc: str, **spec: Any) -> Callable[[Callable], Callable]:
    """Register a table report under `osvtrace report NAME` (the way a plugin would): a
    function (model, filter, options) -> Report."""

    def deco(fn: Callable[[Model, Filter, Options], Report]) -> Callable[[Model, Filter, Options], Report]:
        register_spec(Spec(name, doc, fn, **spec))
        return fn

    return deco


def tables() -> list[Spec]:
    """The reports that render as tables, in registration order."""
    return [s for s in REGISTRY.values() if s.table]


def get(name: str) -> Spec:
    spec = REGISTRY.get(name)
    if spec is None:
        raise UsageError(f"no such report: {name[:40]!r}; reports: {', '.join(REGISTRY)}")
    return spec


def make_filter(values: dict[str, Any], base: Filter | None = None) -> Filter:
    """The filter in option values (keys of FILTER_KEYS; absent ones keep `base`'s)."""
    f = Filter() if base is None else Filter(list(base.tracepoints), list(base.cpus), list(base.threads), base.since,
                                              base.until)
    if values.get("tp"):
        f.tracepoints = list(values["tp"])
    if values.get("cpu"):
        try:
            f.cpus = [int(c) for c in values["cpu"]]
        except ValueError:
            raise UsageError(f"--cpu {','.join(map(str, values['cpu']))}: CPUs are numbers") from None
    if values.get("thread"):
        f.threads = list(values["thread"])
    if values.get("since") is not None:
        f.since = values["since"]
    if values.get("until") is not None:
        f.until = values["until"]
    return f


def options(spec: Spec, values: dict[str, Any]) -> Options:
    """Report options from option values, each missing one at its declared default."""
    d = {o.key: values.get(o.key, o.default) for o in spec.options}
    common = {o.key for o in TABLE_OPTS}
    return Options(min_duration=d.get("min_duration") or 0, limit=d.get("limit"), buckets=d.get("buckets") or 60,
                   more={k: v for k, v in d.items() if k not in common})


def output_form(spec: Spec, values: dict[str, Any]) -> str:
    asked = [f for f in spec.formats if values.get(f)]
    if len(asked) > 1:
        raise UsageError(f"{spec.name}: give one output form, not {' and '.join(FORMAT_FLAGS[f] for f in asked)}")
    return asked[0] if asked else "text"


def run(spec: Spec, model: Model, flt: Filter, opts: Options) -> Any:
    result = spec.fn(model, flt, opts)
    if isinstance(result, Report):
        name_columns(model, result)
    return result


def render_as(spec: Spec, result: Any, form: str, opts: Options) -> str | Iterator[str]:
    """A report's result in one output form: text, json or csv."""
    if form == "text":
        return spec.text(result, opts) if spec.text else render.render_text(result, opts.limit)
    if form == "json":
        if spec.json:
            return spec.json(result)
        return render.render_json(result) if isinstance(result, Report) else render.to_json(result)
    if form == "csv":
        return render.render_csv(result)
    raise UsageError(f"{spec.name}: no output form {form!r}")


def produce(name: str, model: Model, values: dict[str, Any], base: Filter | None = None) -> str | Iterator[str]:
    """Run a report from option values (typed, keyed by Opt.key) and render it as they ask:
    what `osvtrace report NAME` prints, and the shell's NAME command too."""
    spec = get(name)
    form = output_form(spec, values)
    opts = options(spec, values)
    return render_as(spec, run(spec, model, make_filter(values, base), opts), form, opts)


def parse_words(what: str, words: list[str], opts: Iterable[Opt]) -> tuple[dict[str, Any], list[str]]:
    """Options given as words (`--limit 5`, `--limit=5`, `--tp a,b --tp c`) parsed by their
    declarations: (values keyed by Opt.key, typed and checked; the other words). The shell's
    commands take their options through this, so a bad value is the same one-line error as
    in `osvtrace report`."""
    by_flag = {o.flag: o for o in opts}
    values: dict[str, Any] = {}
    rest: list[str] = []
    it = iter(words)
    for w in it:
        if not w.startswith("--"):
            rest.append(w)
            continue
        flag, eq, text = w.partition("=")
        o = by_flag.get(flag)
        if o is None:
            raise UsageError(f"{what}: unknown option {flag} (options: {' '.join(sorted(by_flag)) or 'none'})")
        if o.kind == "flag":
            if eq:
                raise UsageError(f"{what}: {flag} takes no value")
        elif not eq:
            text = next(it, None)
            if text is None:
                raise UsageError(f"{what}: {flag} needs a value")
        o.take(values, text, what)
    return values, rest


def usage(spec: Spec) -> str:
    """One usage line of the options, as the shell's help shows them."""
    def word(o: Opt) -> str:
        return f"[{o.flag}]" if o.kind == "flag" else f"[{o.flag} {o.metavar or o.kind.upper()}]"

    return " ".join(word(o) for o in spec.all_options())


def lines(out: str | Iterable[str]) -> Iterator[str]:
    """Rendered output as lines (a string is split; an iterator is passed on lazily)."""
    if isinstance(out, str):
        yield from out.splitlines()
    else:
        yield from out
