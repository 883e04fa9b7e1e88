"""Bad files given to the commands that read traces: an unreadable one is one line naming the
file and the problem with exit status 2; a damaged but readable one is read, with warnings
naming the file; never a traceback, whatever the bytes (hypothesis, re-sealed mutations)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import osvt_reader, seeds
from osvtrace.cli.main import main
from osvtrace.format.osvt import VERSION_MINOR
from tests.support.traces import ROOT

# every command that opens a trace file; {out} is a fresh output path
COMMANDS = [
    ["info"], ["info", "--json"], ["report", "summary"], ["report", "sched"], ["report", "mutex"], ["report", "cpu"],
    ["report", "list", "--limit", "5"], ["report", "net"], ["report", "wakeup"], ["report", "lhp"],
    ["export", "--format", "chrome", "-o", "{out}.json"], ["export", "--format", "perfetto", "-o", "{out}.pftrace"],
    ["export", "--format", "pcap", "-o", "{out}.pcap"], ["export", "--format", "parquet", "-o", "{out}-pq"],
    ["export", "--format", "ctf", "-o", "{out}-ctf"], ["view", "--static", "-o", "{out}.html"],
    ["query", "SQL"],
]


def _argv(cmd: list[str], path, out) -> list[str]:
    args = [a.format(out=out) for a in cmd]
    if args[0] == "query":
        return ["query", str(path), "select count(*) from sched_slice"]
    if args[0] == "report":
        return ["report", args[1], str(path), *args[2:]]
    return [args[0], str(path), *args[1:]]


@pytest.fixture(scope="module")
def good() -> bytes:
    return seeds.traces()[4]  # the synthetic workload: every report has something to say


def _versioned(data: bytes, major: int) -> bytes:
    b = bytearray(data)
    b[8:10] = struct.pack("<H", major)
    b[28:32] = struct.pack("<I", zlib.crc32(bytes(b[:28])))
    return bytes(b)


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x40
    return bytes(b)


UNREADABLE = {
    "empty": (lambda g: b"", "not an .osvt trace file"),
    "text": (lambda g: b"hello, this is a text file\n" * 4, "not an .osvt trace file"),
    "header only in part": (lambda g: g[:20], "truncated .osvt file"),
    "damaged file header": (lambda g: _flip(g, 3), "not an .osvt trace file"),
    "damaged metadata": (lambda g: _flip(g, 100), "no readable metadata section"),
    "future version": (lambda g: _versioned(g, 7), f"version 7.{VERSION_MINOR} is not supported"),
    "damaged schema": (lambda g: osvt_reader.reseal(g.replace(b"sched_switch", b"sched-switch", 1)), "damaged schema"),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_unreadable_file_is_one_line_naming_it_and_exit_2(tmp_path, capsys, good, kind, cmd):
    make, problem = UNREADABLE[kind]
    path = tmp_path / "bad.osvt"
    path.write_bytes(make(good))
    assert main(_argv(cmd, path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"osvtrace: {path}: ") and problem in err, err


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_missing_file_or_a_directory_is_a_clear_error(tmp_path, capsys, cmd):
    assert main(_argv(cmd, tmp_path / "nope.osvt", tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'nope.osvt'}: no such file" in err, err
    # a directory: some commands' arguments refuse it in click's usage format, the rest in one line
    assert main(_argv(cmd, tmp_path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and str(tmp_path) in err and "Traceback" not in err, err


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if "pcap" not in c], ids=lambda c: " ".join(c[:2]))  # no packets
def test_a_truncated_or_bit_flipped_file_is_read_with_warnings_and_exit_3(tmp_path, capsys, good, cmd):
    for name, data in (("cut.osvt", good[:len(good) * 2 // 3]), ("flip.osvt", _flip(good, len(good) // 2))):
        path = tmp_path / name
        path.write_bytes(data)
        assert main(_argv(cmd, path, tmp_path / name)) == 3  # the output is there, and a script can tell
        lines = capsys.readouterr().err.splitlines()
        warnings = [ln for ln in lines if ln.startswith(f"osvtrace: warning: {path}: ")]
        assert warnings and any(w in "".join(warnings) for w in ("truncated at byte", "fails its checksum")), lines


def test_no_traceback_from_the_command_line(tmp_path, good):
    """The same through the installed entry point, in a process of its own."""
    path = tmp_path / "bad.osvt"
    path.write_bytes(good[:len(good) // 3].replace(b"OSVTRACE", b"OSVTRACX"))
    for cmd in (["info"], ["report", "summary"], ["view", "--static", "-o", "{out}.html"], ["query", "SQL"]):
        r = subprocess.run([sys.executable, "-m", "osvtrace.cli.main", *_argv(cmd, path, tmp_path / "o")],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(path) in r.stderr, (cmd, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_resealed_damage_never_escapes_as_a_traceback(tmp_path, capsys, good, data):
    """Bytes changed anywhere with every checksum made good again (what a writer bug would
    leave): each command ends with status 0, 2 or 3 (read with damage) and only osvtrace's own lines on stderr."""
    buf = bytearray(good)
    meta_end = 64 + struct.unpack_from("<Q", good, 40)[0]  # most changes go to the chunks, behind the schema
    for _ in range(data.draw(st.integers(1, 6))):
        lo = data.draw(st.sampled_from([0, meta_end, meta_end, meta_end]))
        buf[data.draw(st.integers(lo, len(buf) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "mutant.osvt"
    path.write_bytes(osvt_reader.reseal(bytes(buf)))
    for cmd in COMMANDS:
        rc = main(_argv(cmd, path, tmp_path / "out"))
        err = capsys.readouterr().err
        assert rc in (0, 2, 3), (cmd, rc, err)
        assert all(ln.startswith("osvtrace: ") or ln.startswith("  ") for ln in err.splitlines()), (cmd, err)
