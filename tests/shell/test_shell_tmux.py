"""The shell in a real terminal, as a person uses it: tmux runs `osvtrace shell`, send-keys
types, capture-pane reads the screen. tmux is required: this test fails, never skips,
when it cannot run (apt-get install tmux)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from osvtrace.format import synth
from tests.support.traces import ROOT
from tests.support.tmux import Tmux


@pytest.fixture
def term_env(tmp_path):
    return {"XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path), "TERM": "xterm-256color",
            "PYTHONPATH": str(ROOT)}


def test_a_person_at_the_shell_in_tmux(story_file, tmp_path, term_env):
    t = Tmux(tmp_path, "shell", f"{sys.executable} -m osvtrace.cli.main shell {story_file}", term_env)
    try:
        t.wait("osvtrace:story.osvt>")
        assert "19 events on 2 CPU(s)" in t.screen()
        t.type("sched --limit 3")
        t.keys("Enter")
        t.wait("Threads by CPU time")
        # Tab completes a thread name from the trace
        t.type("set thread nev")
        t.keys("Tab")
        t.wait("set thread never-ran")
        t.keys("Enter")
        t.wait("osvtrace:story.osvt [thread=never-ran]>")
        t.type("unset")
        t.keys("Enter")
        # multi-line SQL: Enter continues until the ';'
        t.type("select count(*) as n")
        t.keys("Enter")
        t.wait("..>")
        t.type("from events where cpu = 1;")
        t.keys("Enter")
        s = t.wait("\n9\n")
        assert "from events where cpu = 1;" in s
        # a mistake is one line and the shell goes on
        t.type("bogus")
        t.keys("Enter")
        t.wait("error: unknown command 'bogus'")
        t.type("timeline cpu0 cpu1 --width 40")
        t.keys("Enter")
        s = t.wait("threads: a=main")
        assert "cpu0          │" in s and "└" in s
        # a listing longer than the screen opens the pager; q comes back
        t.keys("C-l")
        t.type("list")
        t.keys("Enter")
        s = t.wait("lines 1-15 of 19")
        assert "thread_create" in s
        t.keys("G")
        t.wait("lines 5-19 of 19")
        t.keys("q")
        t.wait("osvtrace:story.osvt>")
        assert "lines 5-19" not in t.screen()
        # Ctrl-C drops the line being typed, Ctrl-D leaves
        t.type("garbage that will not run")
        t.keys("C-c")
        t.keys("C-d")
        t.wait_gone()
    finally:
        t.close()
    hist = (tmp_path / "state" / "osvtrace" / "history").read_text()
    assert "+sched --limit 3" in hist and "+select count(*) as n\n+from events where cpu = 1;" in hist
    assert "garbage" not in hist


def test_the_live_screen_in_tmux_follows_a_recording(tmp_path, term_env):
    full = tmp_path / "full.osvt"
    n = synth.generate(full, 100_000, cpus=2)
    live = tmp_path / "live.osvt"
    t = Tmux(tmp_path, "live", f"{sys.executable} -m osvtrace.cli.main shell --live {live} --interval 0.1",
             term_env, height=30)
    try:
        t.wait("osvtrace live (")
        writer = subprocess.Popen([sys.executable, "-c", "import sys; from tests.support.traces import grow; "
                                   f"grow({str(full)!r}, {str(live)!r}, 3000, 0.05)"], cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        t.wait("following;")  # events arrive while the writer is still writing
        assert writer.wait(60) == 0
        s = t.wait(f"(finished; {n - 8:,} events")
        assert "sched_switch" in s and "cpu0" in s and "hottest mutexes" in s and "lost records: none" in s
        t.keys("q")
        t.wait_gone()
    finally:
        t.close()
