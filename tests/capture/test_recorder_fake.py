"""The recorder against a stand-in for QEMU that writes a crafted stream: the paths a real
guest cannot be made to take on purpose (a desynchronised stream, no meta frame)."""

from __future__ import annotations

import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.capture import recorder, stream
from osvtrace.capture.base import CaptureError
from osvtrace.vm.qemu import VmConfig

FAKE = textwrap.dedent("""\
    #!{python}
    # Stands in for qemu-system-x86_64: connects to the recorder's chardev sockets like QEMU,
    # writes the bytes in $FAKE_STREAM to the trace port, then exits with $FAKE_RC.
    import os, socket, sys, time
    args = sys.argv[1:]
    paths = [a.split("path=")[1] for a in args if a.startswith("socket,id=osvtrace-")]
    socks = []
    for p in paths:
        s = socket.socket(socket.AF_UNIX); s.connect(p); socks.append(s)
    socks[0].sendall(open(os.environ["FAKE_STREAM"], "rb").read())
    time.sleep(0.2)
    sys.exit(int(os.environ.get("FAKE_RC", "3")))
""")


@pytest.fixture
def fake_exe(tmp_path, monkeypatch):
    """(the fake QEMU, a kernel file, a function setting the stream it sends and its status)."""
    exe = tmp_path / "fake-qemu"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    kernel = tmp_path / "kernel.elf"
    kernel.write_bytes(b"\x7fELF")

    def sends(data: bytes, rc: int = 3) -> None:
        (tmp_path / "stream.bin").write_bytes(data)
        monkeypatch.setenv("FAKE_STREAM", str(tmp_path / "stream.bin"))
        monkeypatch.setenv("FAKE_RC", str(rc))

    return exe, kernel, sends


@pytest.fixture
def fake_qemu(tmp_path, fake_exe):
    exe, kernel, sends = fake_exe

    def run(data: bytes, rc: int = 3):
        sends(data, rc)
        cfg = VmConfig("hello", kernel=kernel, accel="tcg")
        return recorder.record(cfg, tmp_path / "out.osvt", qemu=str(exe))

    return run


def _slots(n: int, first: int = 0) -> bytes:
    s = np.zeros((n, 32), np.uint8)
    s[:, 0] = 2  # trace_marker, one slot each
    s[:, 2] = 1
    s[:, 8:16] = np.arange(first, first + n, dtype="<u8").view(np.uint8).reshape(n, 8)
    return s.tobytes()


def test_a_clean_fake_stream(fake_qemu, tmp_path):
    data = (stream.encode_meta(ncpus=1, tsc_hz=1_000_000_000) + stream.encode_frame(stream.DATA, _slots(10), seq=0)
            + stream.encode_frame(stream.END, b"\0" * 16))
    res = fake_qemu(data)
    assert res.stop == "app-exit" and res.events == 10 and res.outcome.app_status == 0
    assert len(osvtrace.open(tmp_path / "out.osvt")) == 10


def test_a_desynchronised_stream_is_an_error_with_the_offset_and_keeps_the_file(fake_qemu, tmp_path):
    good = stream.encode_meta(ncpus=1, tsc_hz=1_000_000_000) + stream.encode_frame(stream.DATA, _slots(10), seq=0)
    with pytest.raises(CaptureError, match=rf"desynchronised at byte {len(good)}: .* the trace up to there"):
        fake_qemu(good + b"garbage!" * 8)
    t = osvtrace.open(tmp_path / "out.osvt")
    assert len(t) == 10 and t.scan.trailer.status.startswith("incomplete: stream desynchronised at byte")


def test_qemu_that_never_sends_meta(fake_qemu):
    res = fake_qemu(b"", rc=1)
    assert (res.stop, res.events, res.cpus, res.outcome.kind) == ("qemu-died", 0, 0, "qemu-error")
    assert not Path(res.path).exists()  # nothing arrived: no file rather than an empty one


def test_record_json_is_one_document_on_stdout(fake_exe, tmp_path, monkeypatch, capsys):
    """`record --json`: the summary as one JSON object, the same keys whatever --via; the
    guest's console goes to stderr so stdout parses."""
    import json

    from osvtrace.cli import record_cmds
    from osvtrace.cli.main import main

    exe, kernel, sends = fake_exe
    sends(stream.encode_meta(ncpus=1, tsc_hz=1_000_000_000) + stream.encode_frame(stream.DATA, _slots(10), seq=0)
          + stream.encode_frame(stream.END, b"\0" * 16))
    record = recorder.record
    monkeypatch.setattr(recorder, "record", lambda cfg, out, via, **kw: record(cfg, out, via, qemu=str(exe), **kw))
    monkeypatch.setattr(record_cmds, "_stop_on_sigterm", lambda: None)
    out = tmp_path / "j.osvt"
    assert main(["record", "--json", "-o", str(out), "--kernel", str(kernel), "--accel", "tcg", "hello"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"output": str(out), "via": "virtio", "stop": "app-exit", "events": 10, "slots": None, "cpus": 1,
                   "lost": 0, "lost_per_cpu": {"0": 0}, "seconds": doc["seconds"], "bytes": out.stat().st_size,
                   "stream_bytes": doc["stream_bytes"]}
    assert doc["seconds"] > 0 and doc["stream_bytes"] > 0
