"""`osvtrace ctl SOCKET backtrace|nobacktrace GLOBS` on a real recording (QEMU, TCG): the guest
turns stacks on and off at once, and the records between the two acks carry them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import osvtrace
from osvtrace.catalog import layout
from tests.support.record import ack_ns, ctl_events, start_record, stop_by_ctl, wait_for
from tests.support.vm import osvtrace as cli

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("no_orphans")]


def _events(sock: Path) -> int:
    return ctl_events(sock, cli)


def _ack(sock: Path, verb: str, globs: str) -> dict:
    r = cli("ctl", "--json", str(sock), verb, globs)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_ctl_turns_stacks_on_and_off_while_recording(kernel, tmp_path):
    out, sock = tmp_path / "bt.osvt", tmp_path / "ctl.sock"
    # the chain app waits on a held mutex ~200 times a second until the test stops it
    p = start_record("-o", str(out), "--ctl-socket", str(sock), "--trace", "mutex_lock_wait",
                     "stacks", "chain", "--rounds", "10000000")
    try:
        wait_for(sock.exists, 60, "the control socket")
        wait_for(lambda: _events(sock) >= 10, 120, "waits without stacks")
        on = _ack(sock, "backtrace", "mutex_lock_wait")
        assert on["ok"] and on["result"] == 1 and on["message"] == "stacks on for 1 tracepoint"
        seen = _events(sock)
        wait_for(lambda: _events(sock) >= seen + 10, 120, "waits with stacks")
        off = _ack(sock, "nobacktrace", "mutex_*")
        assert off["ok"] and off["message"].startswith("stacks off for ")
        seen = _events(sock)
        wait_for(lambda: _events(sock) >= seen + 10, 120, "waits without stacks again")
        bad = cli("ctl", str(sock), "backtrace", "trace_lost")  # the schema says it takes none
        assert bad.returncode == 1 and "matches no tracepoint that takes a stack" in bad.stderr
        stop_by_ctl(p, sock, cli)
    finally:
        if p.poll() is None:
            p.kill()
    t = osvtrace.open(out)
    at = {"on": ack_ns(t, on), "off": ack_ns(t, off)}
    idx, _ = t.args("mutex_lock_wait")
    time, ends = t.events.time[idx], t.backtrace_ends(idx)
    # the guest applies the change before it acks: one CPU, so exactly by the ack's time
    stacked = ends != layout.STACK_NONE
    between = (time > at["on"]) & (time < at["off"])
    assert between.sum() >= 5 and stacked[between].all()
    assert not stacked[(time < at["on"]) | (time > at["off"])].any()
    assert (~stacked).sum() >= 15
    assert (ends[stacked] == layout.STACK_COMPLETE).all()
    assert (t.backtraces(idx[stacked]) != 0).sum(axis=1).min() >= 3  # c, b, a at least
    assert np.isin(t.backtraces(idx[~stacked]), [0]).all()
