"""One convention for machine-readable output: `--json` on every command that prints a table
or a summary, strict JSON (one document; JSON Lines for `report list`), shapes as in docs/cli.md."""

from __future__ import annotations

import json
import math

import click
import numpy as np
import pytest
from click.testing import CliRunner

from osvtrace.cli.main import cli
from osvtrace.reports import REGISTRY
from osvtrace.reports.render import to_json

# Commands that print no table or summary of their own, and why (everything else takes --json).
NO_JSON = {
    "run": "its output is the guest's console",
    "build": "prints the kernel's path",
    "view": "serves the viewer and prints its URL",
    "shell": "interactive; its report commands take --json themselves",
    "gdb": "hands the terminal to gdb",
    "gdb-script": "prints a gdb script",
    "completion": "prints a shell script",
}


def strict(text: str):
    """json.loads that refuses NaN and Infinity (which Python writes but JSON does not have)."""
    def bad(c: str):
        raise ValueError(f"not JSON: {c}")
    return json.loads(text, parse_constant=bad)


def leaves(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), cmd


def invoke(*args: object) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_every_table_command_has_json():
    missing = []
    for path, cmd in leaves(cli):
        opts = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        if path.split()[0] in NO_JSON:
            assert "--json" not in opts, f"{path} has --json now: drop it from NO_JSON"
        elif "--json" not in opts:
            missing.append(path)
    assert missing == []


def test_report_kinds_summary_and_list_are_strict_json(story_file):
    for name in (s.name for s in REGISTRY.values() if s.table):
        doc = strict(invoke("report", name, story_file, "--json"))
        assert {"title", "rows", "notes"} <= set(doc) and isinstance(doc["rows"], list), name
        assert all(isinstance(r, dict) for r in doc["rows"])
    s = strict(invoke("report", "summary", story_file, "--json"))
    assert s["events"] > 0 and isinstance(s["tracepoints"], list)
    lines = invoke("report", "list", story_file, "--json").splitlines()
    recs = [strict(ln) for ln in lines]  # JSON Lines: one object per line
    assert len(recs) == s["events"]
    assert set(recs[0]) == {"time_ns", "cpu", "tid", "thread", "tracepoint", "args"}


def test_query_json_is_an_array_of_rows_and_format_json_is_its_alias(story_file):
    sql = "select tid, count(*) as n from events group by tid order by tid"
    a = strict(invoke("query", story_file, sql, "--json"))
    assert a == strict(invoke("query", story_file, sql, "--format", "json"))
    assert a and all(set(r) == {"tid", "n"} for r in a)
    assert invoke("query", story_file, sql, "--csv") == invoke("query", story_file, sql, "--format", "csv")
    # values JSON has no literal for: NaN -> null, blobs -> hex, timestamps -> ISO 8601
    odd = strict(invoke("query", story_file, "select 'nan'::double as x, 'ab'::blob as b, "
                        "timestamp '2026-01-02 03:04:05' as t, 1.5::decimal(4, 2) as d", "--json"))
    assert odd == [{"x": None, "b": "6162", "t": "2026-01-02T03:04:05", "d": 1.5}]


def test_query_takes_one_output_form(story_file):
    r = CliRunner().invoke(cli, ["query", str(story_file), "select 1", "--json", "--format", "csv"])
    assert r.exit_code != 0 and "one output form" in str(r.exception or r.output)


def test_catalog_info_synth_export_json(story_file, tmp_path):
    tps = strict(invoke("tracepoints", "--json"))
    assert isinstance(tps, list) and {"id", "name", "subsystem", "args"} <= set(tps[0])
    info = strict(invoke("info", story_file, "--json"))
    assert info["events"] > 0 and info["complete"] is True
    syn = strict(invoke("synth", "-o", tmp_path / "s.osvt", "--events", "300", "--json"))
    assert syn == {"output": str(tmp_path / "s.osvt"), "records": syn["records"], "cpus": 2} and syn["records"] >= 300
    ex = strict(invoke("export", story_file, "--format", "chrome", "-o", tmp_path / "t.json", "--json"))
    assert ex["format"] == "chrome" and ex["output"] == str(tmp_path / "t.json") and ex["notes"] == []
    assert ex["counts"]["bytes"] == (tmp_path / "t.json").stat().st_size and ex["counts"]["events"] > 0
    sl = strict(invoke("slice", story_file, "--since", "200ns", "-o", tmp_path / "s2.osvt", "--json"))
    assert sl["output"] == str(tmp_path / "s2.osvt") and sl["since_ns"] == 200 and sl["events"] > 0
    assert sum(sl["per_cpu"].values()) == sl["events"]


def test_to_json_is_strict():
    data = {"a": float("nan"), "b": [np.float64("inf"), np.int64(3)], "c": np.array([1.0, np.nan]),
            "d": b"\x01\xff", "e": (1, -math.inf)}
    assert strict(to_json(data)) == {"a": None, "b": [None, 3], "c": [1.0, None], "d": "01ff", "e": [1, None]}
    assert "\n" not in to_json(data, indent=None)


@pytest.mark.parametrize("kind", ["summary", "sched", "mutex"])
def test_shell_json_is_the_cli_json(story_file, kind):
    """The shell's `--json` (the same writer) prints what the command line prints."""
    import io

    import osvtrace
    from osvtrace.shell import Shell

    out = io.StringIO()
    sh = Shell(osvtrace.open(story_file), out=out, err=io.StringIO(), history=None)
    assert sh.run_script([f"{kind} --json"]) == 0
    assert strict(out.getvalue()) == strict(invoke("report", kind, story_file, "--json"))


def test_load_without_answers_is_strict_json():
    """No replies: the latency percentiles are unknown, null in JSON (they were NaN)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing answers there
    doc = strict(invoke("load", "udp", f"127.0.0.1:{port}", "--rate", "20", "--duration", "0.1", "--drain", "0.05",
                        "--json"))
    assert doc["answered"] == 0 and doc["sent"] >= 1
    assert set(doc["latency_us"].values()) == {None}
