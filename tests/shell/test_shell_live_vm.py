"""Real QEMU: the live screen attached to a running `osvtrace record` (by its control socket)
and recording an application itself (`osvtrace shell --live APP`)."""

from __future__ import annotations

import threading
import time

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import osvtrace
from osvtrace.format.osvt import map_file, scan
from osvtrace.shell import top
from osvtrace.shell.live import AppRecording, RecorderSource, open_source
from tests.support.record import start_record, wait_for

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]
MUTEX = "mutex --threads 4 --mutexes 2 --iterations 3000 --hold-ns 5000 --think-ns 2000"


def test_the_screen_follows_a_running_recording_by_its_control_socket(kernel, tmp_path):
    out, sock = tmp_path / "rec.osvt", tmp_path / "ctl.sock"
    rec = start_record("-o", str(out), "--ctl-socket", str(sock), "--smp", "2", "--trace", "sched_*,mutex_*",
                       *MUTEX.split())
    try:
        wait_for(sock.exists, 60, "the control socket")
        src = open_source(str(sock))
        assert isinstance(src, RecorderSource) and src.path == out.resolve()
        with create_pipe_input() as inp:
            st = top.run(src, interval=0.1, input=inp, output=DummyOutput(), until_finished=True)
        assert rec.wait(120) == 0, rec.stderr.read()
    finally:
        rec.kill()
    t = osvtrace.open(out)
    assert st.finished and st.total == len(t)  # every event the file holds, seen live
    assert sum(st.lost.values()) == sum(x.dropped + x.gap_slots for x in t.loss.values()) == 0
    assert st.tp_total[t.catalog.by_name["mutex_lock"].id] == (t.events.tp == t.catalog.by_name["mutex_lock"].id).sum()


def test_live_app_records_it_and_sees_every_event(kernel, tmp_path):
    out = tmp_path / "app.osvt"
    src = open_source(MUTEX, output=str(out),
                      record_args=["--no-build", "--smp", "2", "--trace", "sched_*,mutex_*"])
    assert isinstance(src, AppRecording)
    try:
        with create_pipe_input() as inp:
            st = top.run(src, interval=0.1, input=inp, output=DummyOutput(), until_finished=True)
    finally:
        src.close()
    assert src.returncode == 0, src.log_tail()
    t = osvtrace.open(out)
    assert st.finished and st.total == len(t) > 10_000
    assert "events" in src.log_tail()  # the recorder's summary is there to show after the screen


def test_quitting_the_screen_stops_the_recording_with_the_rest_of_the_rings(kernel, tmp_path):
    out = tmp_path / "long.osvt"
    src = open_source("tpstorm --rate 200000 --seconds 600", output=str(out),
                      record_args=["--no-build", "--smp", "2", "--trace", "trace_marker"])
    with create_pipe_input() as inp:
        def quit_when_flowing() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and src.events < 100_000:
                time.sleep(0.1)
            inp.send_text("q")

        threading.Thread(target=quit_when_flowing, daemon=True).start()
        t0 = time.monotonic()
        st = top.run(src, interval=0.1, input=inp, output=DummyOutput())
    src.close()
    assert time.monotonic() - t0 < 200 and st.total >= 100_000
    assert src.returncode == 0, src.log_tail()  # a `stop` from the screen is a normal end
    sc = scan(map_file(out), str(out))
    assert sc.trailer is not None and not sc.warnings  # stopped cleanly, nothing damaged
    t = osvtrace.open(out)
    assert len(t) >= st.total and all(x.gap_slots == 0 and x.partial_slots == 0 for x in t.loss.values())
