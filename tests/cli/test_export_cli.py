"""`osvtrace export`: the registry (formats register like plugins), options, errors, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osvtrace.cli.main import main
from osvtrace.exports import FORMATS, Result, register
from osvtrace.exports.registry import ALL_FILTERS


@pytest.fixture
def plugin_format():
    calls = []

    @register("lines", suffix=".txt", doc="One line per event (a test plugin).", filters=ALL_FILTERS)
    def write(model, out: Path, opts) -> Result:
        mask = opts.filter.mask(model.trace)
        out.write_text("".join(f"{t}\n" for t in model.trace.events.time[mask].tolist()))
        calls.append(out)
        return Result(out, {"lines": int(mask.sum())})

    yield calls
    del FORMATS["lines"]


def test_a_registered_format_is_a_cli_format(plugin_format, story_file, tmp_path, capsys):
    out = tmp_path / "x.txt"
    assert main(["export", str(story_file), "--format", "lines", "-o", str(out), "--tp", "trace_marker"]) == 0
    assert out.read_text() == "700\n800\n"
    assert "wrote" in capsys.readouterr().out and plugin_format == [out]
    assert main(["export", "--help"]) == 0
    assert "One line per event" in capsys.readouterr().out


def test_registering_a_name_twice_is_an_error(plugin_format):
    with pytest.raises(ValueError, match="twice"):
        register("lines", suffix=".txt", doc="again")(lambda m, o, p: Result(o))


@pytest.mark.parametrize("args, message", [
    (["--format", "svg", "-o", "{tmp}/x"],
     "unknown export format 'svg'; formats: chrome, ctf, folded, parquet, pcap, perfetto, pprof"),
    (["--format", "chrome", "-o", "{tmp}/missing/x.json"], "missing does not exist"),
    (["--format", "chrome", "-o", "{tmp}/afile/x.json"], "afile is not a directory"),
    (["--format", "chrome", "-o", "{tmp}"], "is a directory; give a file name"),
    (["--format", "ctf", "-o", "{tmp}/afile"], "exists and is not a directory"),
    (["--format", "perfetto", "-o", "{tmp}/x", "--tp", "sched_*"], "--tp does not apply to perfetto exports"),
    (["--format", "chrome", "-o", "{tmp}/x", "--trace-id", "vm1"], "apply to parquet exports only"),
    (["--format", "chrome", "-o", "{tmp}/x", "--cpu", "7"], "--cpu 7: the trace has CPUs 0..1"),
    (["--format", "perfetto", "-o", "/proc/sys/osvtrace.pftrace"], "not writable"),
])
def test_bad_requests_are_one_line(story_file, tmp_path, capsys, args, message):
    (tmp_path / "afile").write_text("x")
    argv = ["export", str(story_file)] + [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("*.partial"))


def test_progress_only_when_asked_or_on_a_terminal(story_file, tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["export", str(story_file), "--format", "chrome", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""  # not a terminal: no bar
    assert main(["export", str(story_file), "--format", "chrome", "-o", str(out), "--progress"]) == 0
    json.loads(out.read_text())


def test_ctf_force_replaces_an_earlier_export(story_file, tmp_path):
    out = tmp_path / "ctf"
    assert main(["export", str(story_file), "--format", "ctf", "-o", str(out)]) == 0
    assert main(["export", str(story_file), "--format", "ctf", "-o", str(out)]) == 2
    assert main(["export", str(story_file), "--format", "ctf", "-o", str(out), "--force", "--cpu", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metadata", "stream_0"]


def test_entry_point_plugins_load_and_broken_ones_only_warn(story_file, tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    dist = site / "osvtrace_fake-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: osvtrace-fake\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[osvtrace.exports]\nfake = osvtrace_fake_export\nbroken = no_such_module\n")
    (site / "osvtrace_fake_export.py").write_text(
        "from osvtrace.exports import Result, register\n"
        "@register('fake', suffix='.txt', doc='A format from an entry point.')\n"
        "def write(model, out, opts):\n"
        "    out.write_text(str(len(model.trace)))\n"
        "    return Result(out, {'events': len(model.trace)})\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        out = tmp_path / "fake.txt"
        assert main(["export", str(story_file), "--format", "fake", "-o", str(out)]) == 0
        assert out.read_text() == "19"
        captured = capsys.readouterr()
        assert "export plugin broken failed to load" in captured.err
    finally:
        FORMATS.pop("fake", None)
