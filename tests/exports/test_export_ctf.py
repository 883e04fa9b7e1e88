"""CTF 1.8 export, read back by babeltrace2 (installed on demand; the test fails, never skips, without it)."""

from __future__ import annotations

import re
import subprocess

import osvtrace
from osvtrace.exports import Options, ctf, export
from osvtrace.format import synth
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from tests.support.exports import need_tool

LINE = re.compile(r"^\[(?P<time>[0-9:.]+)\] \(\S+\) (?P<name>\w+): \{ cpu_id = (?P<cpu>\d+) \}, "
                  r"\{ tid = (?P<tid>\d+) \}(?:, \{ (?P<fields>.*) \})?$")


def _babeltrace(path) -> tuple[list[dict], str]:
    bt = need_tool("babeltrace2", "babeltrace2")
    r = subprocess.run([bt, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    events = []
    for line in r.stdout.splitlines():
        m = LINE.match(line)
        assert m, line
        events.append(m.groupdict())
    return events, r.stderr


def test_babeltrace_reads_every_record_with_its_fields(story, tmp_path):
    res = export(story, "ctf", tmp_path / "ctf", Options())
    events, err = _babeltrace(tmp_path / "ctf")
    assert len(events) == len(story.trace) == res.counts["events"]
    assert [e["name"] for e in events[:3]] == ["thread_create", "thread_create", "mutex_lock"]
    by = {(e["name"], e["time"]): e for e in events}
    sw = by[("sched_switch", "00:00:00.000000180")]
    assert (sw["cpu"], sw["tid"]) == ("1", "3")
    assert sw["fields"] == 'next = 9, prev_state = ( "waiting" : container = 2 )'
    assert by[("mutex_handoff", "00:00:00.000000401")]["fields"] == "mutex = 0xA000, from_tid = 2, to_tid = 3"
    assert by[("trace_marker", "00:00:00.000000800")]["fields"] == 'value = 2, label = "end"'
    assert by[("thread_create", "00:00:00.000000110")]["fields"] == 'tid = 3, name = "b"'
    # CPU 1 lost 5 records: its packet says so, and babeltrace2 warns
    assert "discarded events" in err and "stream_1" in err


def test_streams_span_many_packets_and_count_lost_records(tmp_path):
    path = tmp_path / "synth.osvt"
    synth.generate(path, 20_000, 2)
    m = Model(osvtrace.open(path))
    out = tmp_path / "ctf"
    export(m, "ctf", out, Options())
    assert (out / "stream_0").stat().st_size > 3 * ctf.PACKET  # several packets per stream
    events, _ = _babeltrace(out)
    assert len(events) == 20_000
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert sum(e["name"] == "sched_switch" for e in events) == int((m.trace.events.tp == 12).sum())


def test_packet_contexts_carry_running_loss_counts(story, tmp_path):
    import numpy as np

    export(story, "ctf", tmp_path / "ctf", Options())
    raw = np.frombuffer((tmp_path / "ctf" / "stream_1").read_bytes(), np.uint8)
    hdr = raw[:ctf.PACKET_HEADER.itemsize].view(ctf.PACKET_HEADER)[0]
    assert hdr["magic"] == ctf.MAGIC and hdr["cpu_id"] == 1 and hdr["events_discarded"] == 5
    assert hdr["packet_size"] == hdr["content_size"] == len(raw) * 8
    assert (hdr["timestamp_begin"], hdr["timestamp_end"]) == (150, 800)


def test_tracepoint_and_thread_filters(story, tmp_path):
    export(story, "ctf", tmp_path / "tp", Options(Filter(tracepoints=["mutex_*"])))
    events, _ = _babeltrace(tmp_path / "tp")
    assert {e["name"] for e in events} == {"mutex_lock", "mutex_lock_wait", "mutex_lock_wake", "mutex_unlock",
                                           "mutex_handoff"}
    export(story, "ctf", tmp_path / "b", Options(Filter(threads=["b"])))
    events, _ = _babeltrace(tmp_path / "b")
    assert {e["tid"] for e in events} == {"3"} and len(events) == int((story.trace.events.tid == 3).sum())


def test_metadata_declares_each_tracepoint_once(story, tmp_path):
    export(story, "ctf", tmp_path / "ctf", Options())
    text = (tmp_path / "ctf" / "metadata").read_text()
    assert text.startswith("/* CTF 1.8 */")
    names = re.findall(r'name = "(\w+)";', text)
    assert len(names) == len(set(names))
    assert set(names) >= {tp.name for tp in story.trace.catalog.active()}
