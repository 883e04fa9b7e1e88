"""The shell driven through prompt_toolkit's pipe input, as keystrokes: reports and SQL print
what the CLI prints, completion offers the trace's own names, history persists, mistakes
and Ctrl-C leave the shell running."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prompt_toolkit.document import Document
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import osvtrace
from osvtrace.cli.main import cli
from osvtrace.shell import Shell
from osvtrace.shell.completion import ShellCompleter
from osvtrace.shell.repl import needs_more
from tests.support.traces import M


def cli_out(*args: object) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.stdout


def drive(path: Path, *keys: str, history: Path | None = None, rows: int = 0, pause: float = 0.0,
          env_history: bool = False) -> tuple[str, str, Shell]:
    """Type `keys` into a shell over `path` (pausing between chunks when asked, as completion
    runs in the background), end with Ctrl-D; returns (stdout, stderr, shell)."""
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as inp:
        sh = Shell(osvtrace.open(path), out=out, err=err, input=inp, output=DummyOutput(),
                   history=None if env_history else (history or path.parent / "history"), rows=rows)

        def feed() -> None:
            for k in keys:
                inp.send_text(k)
                if pause:
                    time.sleep(pause)
            inp.send_text("\x04")

        if pause:
            t = threading.Thread(target=feed)
            t.start()
            sh.run(banner=False)
            t.join()
        else:
            feed()
            sh.run(banner=False)
    return out.getvalue(), err.getvalue(), sh


REPORT_CASES = [
    ("summary", []),
    ("list", ["--limit", "5"]),
    ("list", ["--tp", "mutex_*", "--cpu", "0"]),
    ("sched", []),
    ("wakeup", []),
    ("cpu", ["--buckets", "20"]),
    ("mutex", []),
    ("lhp", []),
    ("net", []),
    ("prof-wait", ["--json"]),
    ("prof-lock", ["--csv"]),
    ("sched", ["--since", "300ns", "--thread", "b"]),
    ("mutex", ["--min-duration", "100ns", "--limit", "1"]),
]


def test_reports_print_what_the_cli_prints(story_file):
    keys = [" ".join([kind, *args]) + "\r" for kind, args in REPORT_CASES]
    out, err, _ = drive(story_file, *keys)
    assert err == ""
    expected = "".join(cli_out("report", kind, story_file, *args) for kind, args in REPORT_CASES)
    assert out == expected


def test_filters_set_in_the_shell_apply_like_cli_options(story_file):
    out, err, _ = drive(story_file, "set cpu 1\r", "set since 0.3us\r", "sched\r", "show\r", "unset cpu\r",
                        "sched\r", "unset\r", "show\r")
    assert err == ""
    want = (cli_out("report", "sched", story_file, "--cpu", "1", "--since", "300ns")
            + "filters: since=300ns  cpu=1\n"
            + "settings: limit=100  format=table  color=off  pager=builtin\n"
            + cli_out("report", "sched", story_file, "--since", "300ns")
            + "filters: none (the whole trace)\n"
            + "settings: limit=100  format=table  color=off  pager=builtin\n")
    assert out == want


SQL = "select tid, count(*) as n, sum(dur) as total from sched_slice group by tid order by tid"


def test_sql_prints_what_query_prints_in_each_format(story_file):
    out, err, _ = drive(story_file, f"sql {SQL};\r", "set format csv\r", f"{SQL};\r", "set format json\r",
                        f"{SQL};\r", "set format table\r", "set limit 2\r", f"{SQL};\r")
    assert err == ""
    assert out == (cli_out("query", story_file, SQL) + cli_out("query", story_file, SQL, "--format", "csv")
                   + cli_out("query", story_file, SQL, "--format", "json")
                   + cli_out("query", story_file, SQL, "--limit", "2"))


def test_sql_spans_lines_until_a_semicolon_or_an_empty_line(story_file):
    out, err, sh = drive(story_file, "sql select count(*) as n\r", "from events\r", "where cpu = 1;\r",
                         "select 40 + 2 as answer\r", "\r", "help quit\r")
    assert err == ""
    assert out.split("\n")[:4] == ["n", "9", "answer", "    42"]
    assert "Leave the shell" in out
    hist = list(sh.history.load_history_strings())
    assert hist[:2] == ["help quit", "select 40 + 2 as answer"]  # the blank line that ended it is not kept
    assert hist[2] == "sql select count(*) as n\nfrom events\nwhere cpu = 1;"


def test_needs_more_only_for_unfinished_sql():
    assert needs_more("sql select 1")
    assert needs_more("SELECT *\nfrom events")
    assert not needs_more("sql select 1;")
    assert not needs_more("select 1\n")
    assert not needs_more("sched --limit 3")
    assert not needs_more("")


def test_bad_commands_get_one_line_and_the_shell_goes_on(story_file):
    out, err, _ = drive(story_file, "bogus\r", "shed\r", "set cpu 9\r", "set thread nobody\r", "sched --limit x\r",
                        "sql selec 1;\r", "timeline cpu7\r", "describe nope\r", "set\r", "help nope\r",
                        "select 1 as one;\r")
    lines = err.splitlines()
    assert lines == [
        "error: unknown command 'bogus' (help lists the commands)",
        "error: unknown command 'shed'; did you mean 'sched'? (help lists the commands)",
        "error: set cpu 9: the trace has CPUs 0..1",
        "error: set thread nobody: no thread of that name in the trace",
        "error: sched: --limit x: not a whole number",
        'error: SQL: Parser Error: syntax error at or near "selec"',
        "error: timeline cpu7: the trace has CPUs 0..1",
        "error: describe: no table 'nope' (tables lists them)",
        "error: help: no command 'nope' (help lists the commands)",
    ]
    assert out.endswith("one\n  1\n")  # still running after all of them


def test_an_internal_error_is_one_line_too(story_file, monkeypatch):
    from osvtrace.shell import commands

    def boom(ctx, args):  # noqa: ANN001
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(commands.COMMANDS["tables"], "fn", boom)
    out, err, _ = drive(story_file, "tables\r", "select 2 as two;\r")
    assert err == "error: internal: ZeroDivisionError: division by zero (please report)\n"
    assert out == "two\n  2\n"


def test_ctrl_c_cancels_a_running_query_and_the_shell_goes_on(story_file):
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as inp:
        sh = Shell(osvtrace.open(story_file), out=out, err=err, input=inp, output=DummyOutput(),
                   history=story_file.parent / "h", rows=0)
        timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
        t0 = time.monotonic()
        timer.start()
        assert sh.execute("select sum(a.range % 7) from range(0, 50000000000) a;")
        took = time.monotonic() - t0
        assert err.getvalue() == "cancelled\n"
        assert took < 5
        inp.send_text("\x03select 3 as three;\r\x04")  # Ctrl-C at the prompt drops the line
        sh.run(banner=False)
    assert out.getvalue() == "three\n    3\n"


def test_ctrl_d_and_quit_leave(story_file):
    out, err, _ = drive(story_file, "quit\r", "select 1;\r")
    assert out == "" and err == ""


def test_history_persists_across_sessions_in_the_state_directory(story_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    drive(story_file, "sched --limit 1\r", "set cpu 0\r", env_history=True)
    path = tmp_path / "home" / ".local" / "state" / "osvtrace" / "history"
    assert path.is_file()
    # the second session recalls the first one's last command with the Up key
    out, err, sh = drive(story_file, "\x1b[A\r", env_history=True)
    assert err == ""
    assert sh.ctx.filters.cpus == [0]  # it ran `set cpu 0` again
    assert list(sh.history.load_history_strings())[:2] == ["set cpu 0", "sched --limit 1"]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    drive(story_file, "tables\r", env_history=True)
    assert "+tables" in (tmp_path / "state" / "osvtrace" / "history").read_text()


# ---------------------------------------------------------------- completion

def completions(sh: Shell, text: str) -> list[str]:
    return [c.text for c in ShellCompleter(sh.ctx).get_completions(Document(text), CompleteEvent())]


@pytest.fixture
def sh(story_file):
    return Shell(osvtrace.open(story_file), out=io.StringIO(), history=story_file.parent / "h")


def test_completion_offers_commands_threads_tracepoints_cpus(sh):
    assert "sched" in completions(sh, "sc") and "sql" in completions(sh, "s")
    assert completions(sh, "set thre") == ["thread"]
    names = completions(sh, "set thread ")
    assert {"main", "a", "b", "never-ran", "idle1"} <= set(names)
    assert completions(sh, "set thread nev") == ["never-ran"]
    assert completions(sh, "set tp mutex_lock_w") == ["mutex_lock_wait", "mutex_lock_wake"]
    assert completions(sh, "set tp sched_switch,mutex_h") == ["mutex_handoff"]
    assert completions(sh, "set cpu ") == ["0", "1"]
    assert completions(sh, "timeline cp") == ["cpus", "cpu0", "cpu1"]
    assert completions(sh, "timeline thr") == ["threads"]
    assert "idle1" in completions(sh, "timeline i")
    assert completions(sh, "sched --thr") == ["--thread"]
    assert completions(sh, "mutex --tp mutex_ha") == ["mutex_handoff"]
    assert completions(sh, "help timel") == ["timeline"]
    assert completions(sh, "help time") == ["timed", "timeline"]
    assert completions(sh, "describe mutex_w") == ["mutex_wait"]
    assert completions(sh, "set format ") == ["table", "csv", "json"]


def test_completion_in_sql_offers_tables_columns_names_and_mutexes(sh):
    assert completions(sh, "sql select * from sched_s") == ["sched_slice", "sched_switch"]
    assert completions(sh, "select * from mutex_handof") == ["mutex_handoff"]  # the tracepoint's table
    assert "handed_by" in completions(sh, "select han") + completions(sh, "sql select * from mutex_wait where han")
    assert completions(sh, "select * from threads where na") == ["name"]
    assert completions(sh, "select * from threads where name = 'nev") == ["never-ran'"]
    assert completions(sh, "select * from mutex_wait where mutex = ") == [str(M)]
    c = next(ShellCompleter(sh.ctx).get_completions(Document("select * from mutex_hold where mutex = 4"),
                                                    CompleteEvent()))
    assert c.text == str(M) and c.display_text == hex(M) and "records" in c.display_meta_text
    assert "GROUP" in completions(sh, "select count(*) from events GR")


def test_tab_completes_through_the_keyboard(story_file):
    out, err, _ = drive(story_file, "set thread nev", "\t", "\r", "show\r", "timeline idl", "\t", " --width 10\r",
                        pause=0.3)
    assert err == ""
    assert "filters: thread=never-ran" in out
    assert "idle1" in out and "└──" in out


def _rows(out: str) -> list[str]:
    """The row labels of a drawn timeline (lines with a │ and a label)."""
    return [line.split("│")[0].strip() for line in out.splitlines() if "│" in line and line[:1] != " "]


def test_timeline_threads_and_cpus_are_keywords_not_thread_names(story_file):
    out, err, _ = drive(story_file, "timeline threads --width 10\r", "timeline cpus --width 10\r",
                        "set thread a,b\r", "timeline threads --width 10\r", "unset\r", "set cpu 1\r",
                        "timeline cpus --width 10\r", "timeline --width 10\r", "timeline cpu0 threads --width 10\r")
    assert err == ""
    draws = out.split("buckets of")[1:]
    assert len(draws) == 6
    assert _rows(draws[0]) == ["main", "a", "b", "never-ran", "idle1"]  # every thread, by id
    assert _rows(draws[1]) == ["cpu0", "cpu1"]
    assert _rows(draws[2]) == ["a", "b"]  # the threads of `set thread`
    assert _rows(draws[3]) == _rows(draws[4]) == ["cpu1"]  # the CPUs of `set cpu`; no target means cpus
    assert _rows(draws[5]) == ["cpu0", "main", "a", "b", "never-ran", "idle1"]
    assert "states:" in draws[0] and "no thread" not in out


def test_long_output_opens_the_pager_and_q_returns(story_file):
    out, err, _ = drive(story_file, "list\r", " ", "G", "q", "select 5 as five;\r", rows=8, pause=0.3)
    assert err == ""
    assert out == "five\n   5\n"  # the listing went to the pager, not to stdout


def test_view_serves_the_viewer_on_the_shells_model_until_the_shell_ends(story_file):
    import json
    import re
    import urllib.request

    out, err = io.StringIO(), io.StringIO()
    sh = Shell(osvtrace.open(story_file), out=out, err=err, history=story_file.parent / "h")
    for line in ("set cpu 1", "set thread b", "set until 500ns", "view --no-open"):
        assert sh.execute(line)
    assert err.getvalue() == ""
    url = re.search(r"viewer at (\S+)", out.getvalue()).group(1)
    assert url.endswith("#t0=100&t1=500&lanes=cpu:1,thread:3")
    base = url.split("#")[0]
    meta = json.loads(urllib.request.urlopen(base + "api/meta", timeout=10).read())
    assert meta  # the viewer's API answers
    assert sh.ctx.resources["viewer"].api.model is sh.ctx.model  # tables are shared, not rebuilt
    sh.ctx.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "api/meta", timeout=2)


def test_pager_pulls_lines_lazily_and_scrolls_sideways():
    from prompt_toolkit.formatted_text.utils import fragment_list_to_text

    from osvtrace.shell.paging import Pager

    pulled = []

    def lines():
        for i in range(10_000):
            pulled.append(i)
            yield f"\x1b[32m{i:05d}\x1b[0m " + "-" * 100 + "END"

    with create_pipe_input() as inp:
        p = Pager(lines(), input=inp, output=DummyOutput())  # DummyOutput is 80 columns x 40 rows
        first = fragment_list_to_text(p._visible()).split("\n")
        assert first[0].startswith("00000 ---") and len(first) == 39
        assert len(pulled) < 1000  # not the 10,000 lines
        p.scroll(39)
        assert fragment_list_to_text(p._visible()).startswith("00039")
        for _ in range(10):
            p.sideways(8)
        assert p.left == 109 - 80 + 8  # stops once the widest line's end is in view
        assert fragment_list_to_text(p._visible()).split("\n")[0] == "-" * 69 + "END"
        p.end()
        assert len(pulled) == 10_000 and p.top == 10_000 - 39


def test_scripts_run_from_options_and_standard_input(story_file):
    import subprocess
    import sys

    from tests.support.traces import ROOT

    def shell(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "osvtrace.cli.main", "shell", str(story_file), *args],
                              input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = shell("-c", "set cpu 1", "-c", "sched")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == cli_out("report", "sched", story_file, "--cpu", "1")
    r = shell(stdin="select count(*) as n\nfrom events\n\nbogus\nselect 7 as seven;\n")
    assert r.returncode == 1  # a command failed
    assert r.stdout == " n\n19\nseven\n    7\n"
    assert r.stderr == "error: unknown command 'bogus' (help lists the commands)\n"
