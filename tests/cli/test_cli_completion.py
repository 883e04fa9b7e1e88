"""Shell completion: `osvtrace completion bash|zsh|fish` prints click's script, and the
protocol behind it (COMP_WORDS / COMP_CWORD / _OSVTRACE_COMPLETE) completes commands, report
kinds, tracepoints, export formats and, for trace files, paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osvtrace.reports import REGISTRY
from tests.support.traces import ROOT

OSVTRACE = [sys.executable, "-m", "osvtrace.cli.main"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*OSVTRACE, *args], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr
    return r


def complete(line: str, shell: str = "bash") -> list[tuple[str, str]]:
    """What Tab offers after `line` (bash's protocol: (type, value) pairs)."""
    words = line.split(" ")
    r = run(env={"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1), "_OSVTRACE_COMPLETE": f"{shell}_complete"})
    return [tuple(ln.split(",", 1)) for ln in r.stdout.splitlines()]  # type: ignore[misc]


@pytest.mark.parametrize("shell, marker", [
    ("bash", "complete -o nosort -F _osvtrace_completion osvtrace"),
    ("zsh", "compdef _osvtrace_completion osvtrace"),
    ("fish", "complete --no-files --command osvtrace"),
])
def test_each_shell_gets_its_script(shell, marker):
    script = run("completion", shell).stdout
    assert marker in script and f"_OSVTRACE_COMPLETE={shell}_complete" in script
    assert script.strip() == run(env={"_OSVTRACE_COMPLETE": f"{shell}_source"}).stdout.strip()  # click's own
    assert script.endswith("\n") and not script.endswith("\n\n")
    exe = shutil.which(shell)
    if exe and shell in ("bash", "zsh"):  # the script at least parses where the shell is installed
        assert subprocess.run([exe, "-n"], input=script, text=True).returncode == 0


def test_unknown_shell_is_a_usage_error():
    r = subprocess.run([*OSVTRACE, "completion", "tcsh"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "tcsh" in r.stderr


def test_commands_report_kinds_and_trace_paths_complete():
    assert complete("osvtrace rep") == [("plain", "report")]
    kinds = {v for t, v in complete("osvtrace report ")}
    assert kinds == set(REGISTRY) | {"summary", "list"}
    # trace file arguments: the shell completes paths ("file" asks it to)
    for line in ("osvtrace report summary ", "osvtrace report sched ", "osvtrace info ", "osvtrace query ",
                 "osvtrace export ", "osvtrace shell ", "osvtrace view "):
        assert complete(line) == [("file", "")], line
    assert complete("osvtrace completion ") == [("plain", "bash"), ("plain", "zsh"), ("plain", "fish")]


def test_option_values_complete():
    assert complete("osvtrace report list t.osvt --tp mutex_lock_w") == [("plain", "mutex_lock_wait"),
                                                                        ("plain", "mutex_lock_wake")]
    assert complete("osvtrace report list t.osvt --tp sched_switch,mutex_hand") == [("plain",
                                                                                    "sched_switch,mutex_handoff")]
    assert complete("osvtrace export t.osvt --format p") == [("plain", "parquet"), ("plain", "pcap"),
                                                             ("plain", "perfetto"), ("plain", "pprof")]
    assert ("plain", "--json") in complete("osvtrace query t.osvt q --")


def test_zsh_and_fish_protocols_offer_the_same_names():
    zsh = run(env={"COMP_WORDS": "osvtrace rep", "COMP_CWORD": "1", "_OSVTRACE_COMPLETE": "zsh_complete"}).stdout
    assert zsh.splitlines()[:2] == ["plain", "report"]
    fish = run(env={"COMP_WORDS": "osvtrace rep", "COMP_CWORD": "rep", "_OSVTRACE_COMPLETE": "fish_complete"}).stdout
    assert fish.startswith("plain,report\t")


def test_bash_completes_through_the_script(tmp_path):
    """The printed script, evaluated by bash, fills COMPREPLY as Tab would."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "osvtrace").exists(), "the osvtrace script is installed next to python (make venv)"
    script = tmp_path / "c.bash"
    script.write_text('eval "$(osvtrace completion bash)"\n'
                      'COMP_WORDS=(osvtrace rep); COMP_CWORD=1; _osvtrace_completion osvtrace; echo "${COMPREPLY[*]}"\n'
                      'COMPREPLY=(); COMP_WORDS=(osvtrace report ""); COMP_CWORD=2; _osvtrace_completion osvtrace\n'
                      'echo "${COMPREPLY[*]}"\n')
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == "report"
    assert set(second.split()) == set(REGISTRY) | {"summary", "list"}
