"""One way to run a report: the CLI, the shell and the viewer are all built from the registry,
so they offer the same reports with the same options and print the same text."""

from __future__ import annotations

import json
import subprocess
import sys

import osvtrace
from osvtrace.cli.report_cmds import report
from osvtrace.reports import REGISTRY, registry
from osvtrace.shell.commands import COMMANDS
from osvtrace.shell.commands import run as shell_run
from osvtrace.shell.context import Context
from osvtrace.viewer.api import Api


def test_the_cli_and_the_shell_take_the_same_options_for_every_report():
    for name, spec in REGISTRY.items():
        # --elf says how to open FILE (which kernel names its addresses), as FILE itself: the
        # shell and the viewer have their trace open already
        cli_flags = {o for p in report.commands[name].params for o in p.opts if o.startswith("--")} - {"--elf"}
        assert cli_flags == set(COMMANDS[name].options) == {o.flag for o in spec.all_options()}, name


def test_the_shell_prints_what_the_cli_prints(story_file):
    from click.testing import CliRunner

    ctx = Context(osvtrace.open(story_file))
    for name in REGISTRY:
        for extra in ([], ["--json"], ["--since", "0", "--cpu", "0"]):
            cli = CliRunner().invoke(report, [name, str(story_file), *extra])
            assert cli.exit_code == 0, cli.output
            shell = "\n".join(registry.lines(shell_run(ctx, " ".join([name, *extra]))))
            assert cli.output.rstrip("\n") == shell.rstrip("\n"), (name, extra)


def test_the_viewer_offers_every_table_report_and_only_those(story):
    api = Api(story)
    offered = [r["name"] for r in api.meta()["reports"]]
    assert offered == [s.name for s in registry.tables()]
    assert "summary" not in offered and "list" not in offered   # text, not tables
    for name in offered:
        got = api.handle("report", {"name": [name]})
        r = registry.run(REGISTRY[name], story, registry.make_filter({}), registry.options(REGISTRY[name], {}))
        assert got["total"] == len(r) and got["columns"] == list(r.columns)


PLUGIN = r"""
import json, sys
import numpy as np
from osvtrace.reports import Report, register

@register("busiest-cpu", "The CPU with the most events.")
def busiest(model, flt, opts):
    cpu = np.bincount(model.trace.events.cpu[flt.indices(model.trace)].astype(np.int64))
    return Report("busiest", {"cpu": np.array([int(cpu.argmax()) if len(cpu) else -1]),
                              "events": np.array([int(cpu.max()) if len(cpu) else 0])})

from osvtrace.cli.main import main
from osvtrace.shell.commands import COMMANDS
from osvtrace.viewer.api import Api
from osvtrace.model import Model
import osvtrace
assert "busiest-cpu" in COMMANDS and "--limit" in COMMANDS["busiest-cpu"].options
print(json.dumps([r["name"] for r in Api(Model(osvtrace.open(sys.argv[1]))).meta()["reports"]]))
sys.exit(main(["report", "busiest-cpu", sys.argv[1], "--cpu", "1", "--json"]))
"""


def test_a_plugin_report_appears_in_the_cli_the_shell_and_the_viewer(story_file):
    r = subprocess.run([sys.executable, "-c", PLUGIN, str(story_file)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    offered, out = r.stdout.split("\n", 1)
    assert "busiest-cpu" in json.loads(offered)
    assert json.loads(out)["rows"] == [{"cpu": 1, "events": json.loads(out)["rows"][0]["events"]}]


def test_a_bad_option_value_is_the_same_one_line_error_in_cli_and_shell(story_file):
    from click.testing import CliRunner

    from osvtrace.errors import UsageError

    cli = CliRunner().invoke(report, ["mutex", str(story_file), "--since", "soon"])
    assert isinstance(cli.exception, UsageError)
    ctx = Context(osvtrace.open(story_file))
    try:
        shell_run(ctx, "mutex --since soon")
    except UsageError as e:
        assert str(e) == str(cli.exception)
    else:
        raise AssertionError("the shell took --since soon")


def test_options_given_as_words_are_parsed_by_their_declarations():
    opts = (registry.Opt("--top", "int", "How many.", lo=1, hi=9), registry.Opt("--tp", "list", "Which."),
            registry.Opt("--since", "time", "From."), registry.Opt("--raw", "flag", "Raw."))
    values, rest = registry.parse_words("x", ["--top=3", "--tp", "a,b", "--tp", "c", "--since", "2ms", "--raw", "y"],
                                        opts)
    assert values == {"top": 3, "tp": ["a", "b", "c"], "since": 2_000_000, "raw": True} and rest == ["y"]
    for words, error in ((["--top", "10"], "x: --top 10: must be 1..9"), (["--top"], "x: --top needs a value"),
                         (["--raw=1"], "x: --raw takes no value"), (["--top", "two"], "x: --top two: not a whole number"),
                         (["--bottom", "1"], "x: unknown option --bottom (options: --raw --since --top --tp)")):
        try:
            registry.parse_words("x", words, opts)
        except Exception as e:  # noqa: BLE001 - the type is checked below
            assert type(e).__name__ == "UsageError" and str(e) == error, (words, e)
        else:
            raise AssertionError(f"{words} was taken")


def test_the_shell_checks_a_report_option_against_its_declared_bounds(story_file):
    from osvtrace.errors import UsageError

    buckets = next(o for o in REGISTRY["mutex"].all_options() if o.flag == "--buckets")
    ctx = Context(osvtrace.open(story_file))
    try:
        shell_run(ctx, f"mutex --buckets {buckets.hi + 1}")
    except UsageError as e:
        assert str(e) == f"mutex: --buckets {buckets.hi + 1}: must be {buckets.lo}..{buckets.hi}"
    else:
        raise AssertionError("the shell took a --buckets beyond its bound")
