"""Bad OSv trace files given to the commands: a dump from another OSv version, a cut or
damaged one, a symbols file that does not match. One clear line naming the file and the
offset; exit 2 when nothing can be read, 3 when the rest was read and used; no traceback."""

from __future__ import annotations

import struct

import pytest

from osvtrace.cli.main import main
from osvtrace.format.osv_records import OsvTracepoint
from osvtrace.format.osv_synth import Rec, dump, tracefile

TPS = [OsvTracepoint(0xFFFF_0000_0040_0000, "sched_wait", "", "wait"),
       OsvTracepoint(0xFFFF_0000_0040_0040, "tp_s", "pQ*", "s=%s q=%d b=%s")]
RECS = [[Rec(TPS[1].key, 0xA000, "app", 100 + k, 0, ("hello", k, b"\x01\x02"), [0x40_1000 + k, 0x40_2000])
         for k in range(20)],
        [Rec(TPS[0].key, 0xB000, "idle", 150 + k, 1) for k in range(20)]]


def good_dump() -> bytes:
    return dump(TPS, RECS)


def good_tracefile() -> bytes:
    return tracefile(TPS, sorted((r for rs in RECS for r in rs), key=lambda r: r.time))


def _trcd_at(raw: bytes) -> int:
    return raw.index(b"DCRT")


def _other_bt_len(raw: bytes, n: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into("<I", b, _trcd_at(raw) + 16, n)
    return bytes(b)


def _sig_char(raw: bytes, new: bytes) -> bytes:
    at = raw.index(b"\x01\x000p", _trcd_at(raw))  # tp_s's argument "0" and its type character 'p'
    b = bytearray(raw)
    b[at + 3:at + 4] = new
    return bytes(b)


UNREADABLE = {
    "unknown signature character": (lambda: _sig_char(good_dump(), b"Z"), "unknown type character 'Z'"),
    "absurd backtrace length": (lambda: _other_bt_len(good_dump(), 1000), "backtraces of 1000 frames"),
    "other dump version": (lambda: good_dump()[:20] + struct.pack("<I", 7 << 16) + good_dump()[24:],
                           "OSVT dump format version 7.0"),
    "dump header only": (lambda: good_dump()[:12], "OSVT dump cut short"),
    "big endian": (lambda: b"OSVT" + good_dump()[4:], "big-endian"),
    "no dictionary": (lambda: good_dump().replace(b"DCRT", b"XCRT"), "no TRCD chunk"),
    "damaged chunk header": (lambda: good_dump().replace(b"DCRT", b"\x00\xffRT"), "no chunk header here"),
    "old tracefile": (lambda: struct.pack("<i", 2) + good_tracefile()[4:], "tracefile version 2"),
    "tracefile cut in its dictionary": (lambda: good_tracefile()[:30], "cut short"),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
@pytest.mark.parametrize("cmd", [["report", "summary"], ["info"], ["query", "select count(*) from events"]],
                         ids=lambda c: c[0])
def test_an_unreadable_osv_file_is_one_line_naming_it_and_exit_2(tmp_path, capsys, kind, cmd):
    make, problem = UNREADABLE[kind]
    path = tmp_path / "bad.dump"
    path.write_bytes(make())
    argv = [cmd[0], str(path), *cmd[1:]] if cmd[0] != "report" else ["report", cmd[1], str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"osvtrace: {path}: ") and problem in err, err
    assert "Traceback" not in err


def _unknown_chunk(raw: bytes) -> bytes:
    mods = raw.index(b"SDOM")
    return raw[:mods] + b"XTRA" + raw[mods + 4:]


DAMAGED = {
    "unknown chunk": (good_dump, lambda raw: _unknown_chunk(raw), "unknown chunk 'ARTX'"),
    "cut dump": (good_dump, lambda raw: raw[:len(raw) - 300], "dump cut short"),
    "cut tracefile": (good_tracefile, lambda raw: raw[:len(raw) - 30], "a record cut short"),
    "bad key in a record": (good_dump, lambda raw: raw.replace(struct.pack("<QQ", TPS[0].key, 0xB000),
                                                               struct.pack("<QQ", 0x1234, 0xB000), 1),
                            "unknown tracepoint key 0x1234"),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_a_damaged_osv_file_is_read_with_a_warning_naming_the_offset_and_exit_3(tmp_path, capsys, kind):
    good, damage, problem = DAMAGED[kind]
    path = tmp_path / "bad.dump"
    path.write_bytes(damage(good()))
    assert main(["report", "summary", str(path)]) == 3
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if problem in ln]
    assert lines and lines[0].startswith(f"osvtrace: warning: {path}: ") and "offset" in lines[0], err
    assert "tracepoint" in out and "Traceback" not in err


def test_a_symbols_file_that_does_not_match_is_a_warning_and_exit_3(tmp_path, capsys):
    path = tmp_path / "tracefile"
    path.write_bytes(good_tracefile())
    (tmp_path / "tracefile.symbols").write_text("0x401fff /src/a.c 10 main\n")
    assert main(["report", "summary", str(path)]) == 3
    err = capsys.readouterr().err
    assert f"tracefile.symbols: does not match tracefile" in err and "(first 0x400fff)" in err, err
    (tmp_path / "tracefile.symbols").write_text("".join(f"{0x40_1000 + k - 1:#x} /src/a.c {k} f{k}\n" for k in range(20))
                                                + "0x401fff /src/a.c 3 g\nnot a line\n")
    assert main(["report", "summary", str(path)]) == 3
    err = capsys.readouterr().err
    assert "tracefile.symbols: line 22: not `0xADDR file line function`" in err and "does not match" not in err, err
    (tmp_path / "tracefile.symbols").write_text("".join(f"{0x40_1000 + k - 1:#x} /src/a.c {k} f{k}\n" for k in range(20))
                                                + "0x401fff /src/a.c 3 g\n")
    assert main(["report", "summary", str(path)]) == 0
