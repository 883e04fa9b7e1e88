"""tcp_state (real OSv's TCP stack records every tcpcb state change) becomes the model's tcp_state
table and the `tcp` report: a dump written as OSv writes it (osvtrace.format.osv_synth) with two
connections, one whose records in between were lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

import osvtrace
from osvtrace.format.osv_records import OsvTracepoint
from osvtrace.format.osv_synth import Rec, dump
from osvtrace.model import Model
from tests.support.vm import osvtrace as cli

TCP = OsvTracepoint(0xFFFF_FFFF_8050_0000, "tcp_state", "Pii", "tp=%p, %d -> %d")
A, B = 0xFFFF_A000_0000_1000, 0xFFFF_A000_0000_2000
THREAD = 0xFFFF_8000_0010_0000
MS = 1_000_000
# (time, cpu, conn, from, to): A is a server connection from SYN to close; B loses the record of
# its established -> close_wait change (its next record leaves close_wait), then stays in last_ack.
CHANGES = [(1 * MS, 0, A, 1, 3), (3 * MS, 0, A, 3, 4), (4 * MS, 1, B, 0, 2), (5 * MS, 1, B, 2, 4),
           (13 * MS, 0, A, 4, 5), (14 * MS, 0, A, 5, 8), (15 * MS, 0, A, 8, 0), (20 * MS, 1, B, 5, 8)]
END = 30 * MS


@pytest.fixture
def tcp_dump(tmp_path):
    per_cpu = [[], []]
    for t, cpu, conn, frm, to in CHANGES:
        per_cpu[cpu].append(Rec(TCP.key, THREAD, "httpserver", t, cpu, (conn, frm, to)))
    per_cpu[0].append(Rec(TCP.key, THREAD, "httpserver", END, 0, (0xFFFF_A000_0000_3000, 0, 1)))  # the trace's end
    p = tmp_path / "tcp.dump"
    p.write_bytes(dump([TCP], per_cpu))
    return p


def test_each_state_a_connection_entered_is_a_row_with_its_time_in_it(tcp_dump):
    t = Model(osvtrace.open(tcp_dump)).tcp_state
    a = t["conn"] == A
    assert t["state"][a].tolist() == [3, 4, 5, 8, 0]
    assert t["prev_state"][a].tolist() == [1, 3, 4, 5, 8]
    assert t["dur"][a].tolist() == [2 * MS, 10 * MS, 1 * MS, 1 * MS, -1]
    assert not t["gap"][a].any()
    b = t["conn"] == B
    assert t["state"][b].tolist() == [2, 4, 8]
    assert t["gap"][b].tolist() == [False, True, False]  # established, then a change that leaves close_wait
    assert np.array_equal(t["cpu"][b], [1, 1, 1])


def test_tcp_report_gives_each_connections_path_handshake_and_lost_changes(tcp_dump):
    r = cli("report", "tcp", str(tcp_dump), "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["conn"]: row for row in json.loads(r.stdout)["rows"]}
    a, b = rows[A], rows[B]
    assert a["states"] == "syn_received-established-close_wait-last_ack-closed" and a["last"] == "closed"
    assert a["handshake"] == 2 * MS and a["established"] == 10 * MS and a["gaps"] == 0
    # B: syn_sent at 4 ms, established at 5 ms; established until its next record (20 ms), whose
    # from-state says close_wait came in between unrecorded; last_ack held to the trace's end.
    assert b["handshake"] == 1 * MS and b["established"] == 15 * MS and b["gaps"] == 1
    assert b["last"] == "last_ack"
    text = cli("report", "tcp", str(tcp_dump))
    assert text.returncode == 0 and "1 changes left a state other than" in text.stdout, text.stdout


def test_a_trace_without_tcp_records_says_how_to_get_them(small_trace):
    r = cli("report", "tcp", str(small_trace))
    assert r.returncode == 0, r.stderr
    assert "--trace=tcp_state" in r.stdout
