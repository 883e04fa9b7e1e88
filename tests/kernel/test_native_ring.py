"""The kernel's ring writer, run natively, read back by the Python decoder."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import osvtrace
from osvtrace.catalog.schema import default_catalog
from osvtrace.format.osvt import TraceWriter, new_metadata
from tests.support.native import NATIVE, build


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("native") / "ring_driver"
    return build(NATIVE / "ring_driver.cc", out, "-DTRACE_FAKE_CLOCK", sanitize=True)


def run_driver(driver, tmp_path, mode, ring_slots, records):
    import subprocess

    dump = tmp_path / "dump.bin"
    r = subprocess.run([str(driver), mode, str(ring_slots), str(records), str(dump)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    fields = r.stdout.split()
    stats = {fields[i]: int(fields[i + 1]) for i in range(0, len(fields), 2)}
    trace_path = tmp_path / "t.osvt"
    meta = new_metadata(default_catalog(), ncpus=1, tsc_hz=1_000_000_000, capture="native")
    data = dump.read_bytes()
    with TraceWriter(trace_path, meta) as w:
        pos = 0
        while pos < len(data):
            cpu, n, first, lost = struct.unpack_from("<IIQQ", data, pos)
            pos += 24
            w.write_chunk(cpu, first, data[pos:pos + n * 32], lost)
            pos += n * 32
    return stats, osvtrace.open(trace_path)


def app_records(t):
    lost_id = t.catalog.by_name["trace_lost"].id
    return int((t.events.tp != lost_id).sum())


def test_overwrite_ring_keeps_the_newest_records_and_counts_the_cut_one(driver, tmp_path):
    stats, t = run_driver(driver, tmp_path, "overwrite", 1024, 5000)
    loss = t.loss[0]
    assert loss.invalid_slots == 0
    assert loss.overwritten_slots > 0  # older records were overwritten, and that is said
    # records are whole or counted as partial: slots add up to the ring size
    slots = sum(t.catalog.by_id[int(x)].nslots for x in t.events.tp)
    assert slots + loss.partial_slots == 1024
    # the newest record survives with its arguments
    last = len(t) - 1
    assert t.catalog.by_id[int(t.events.tp[last])].name == "net_packet"
    _, args = t.args("net_packet")
    assert bytes(args["data"][-1]) == bytes(range(128))
    assert int(args["packet"][-1]) == 4999
    assert (np.diff(t.events.time) > 0).all()


def test_stream_ring_accounts_for_every_record(driver, tmp_path):
    stats, t = run_driver(driver, tmp_path, "stream", 256, 200_000)
    decoded = app_records(t)
    assert decoded + stats["lost"] == stats["emitted"]
    # the writer told the timeline about its drops with trace_lost records
    idx, args = t.args("trace_lost")
    assert int(args["count"].sum()) + stats["pending"] == stats["lost"]
    assert t.loss[0].dropped == stats["lost"] > 0
    assert t.loss[0].gap_slots == 0 and t.loss[0].invalid_slots == 0


def test_every_argument_type_round_trips_through_the_writer(driver, tmp_path):
    _, t = run_driver(driver, tmp_path, "overwrite", 4096, 400)
    _, h = t.args("mutex_handoff")
    assert (h["from_tid"] == 7).all()
    assert (h["mutex"] - h["to_tid"] == 0x1000).all()
    _, c = t.args("thread_create")
    assert set(c["name"].tolist()) == {b"a-thread-name"}
    _, s = t.args("sched_switch")
    assert (s["prev_state"] == 2).all()
    assert (t.events.tid == 7).all()


def test_stream_ring_announces_every_drop_before_the_next_record(driver, tmp_path):
    """Record i carries i in an argument: the records missing before each one must be exactly
    the trace_lost counts before it. (The writer once let a record through when the reader
    freed space between its announcement attempt and its own reservation: the drop was then
    announced one record late.)"""
    stats, t = run_driver(driver, tmp_path, "stream", 64, 400_000)
    cat = t.catalog
    number = np.full(len(t), -1, np.int64)
    for name, arg in (("sched_switch", "next"), ("mutex_handoff", "to_tid"), ("thread_create", "tid"),
                      ("net_packet", "packet")):
        idx, a = t.args(name)
        number[idx] = a[arg]
    order = np.argsort(t.seq, kind="stable")
    tp, num = t.events.tp[order], number[order]
    lost = np.zeros(len(t), np.int64)
    idx, a = t.args("trace_lost")
    lost[idx] = a["count"]
    lost = lost[order]
    is_rec = tp != cat.by_name["trace_lost"].id
    missing_before = num[is_rec] - np.arange(is_rec.sum())
    announced_before = np.cumsum(lost)[is_rec]
    bad = np.nonzero(missing_before != announced_before)[0]
    assert stats["lost"] > 0
    assert not len(bad), (f"record {num[is_rec][bad[0]]}: {missing_before[bad[0]]} missing, "
                          f"{announced_before[bad[0]]} announced")
