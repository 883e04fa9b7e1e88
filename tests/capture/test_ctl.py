"""The control relay between `osvtrace ctl` clients and the guest's ctl port, without a VM."""

from __future__ import annotations

import json
import socket

import pytest

from osvtrace.capture import ctl
from osvtrace.errors import UsageError


@pytest.fixture
def relay():
    guest_host, guest_vm = socket.socketpair()
    stops = []
    r = ctl.Relay(guest_host, lambda: {"message": "3 events", "records": 3}, lambda: stops.append(1))
    client_rec, client_user = socket.socketpair()
    r.add_client(client_rec)
    yield r, guest_vm, client_rec, client_user, stops
    for s in (guest_host, guest_vm, client_rec, client_user):
        s.close()


def _ask(r, rec, user, obj) -> None:
    user.sendall(json.dumps(obj).encode() + b"\n")
    assert r.read_client(rec)


def _answer(user) -> dict:
    user.settimeout(2)
    return json.loads(user.recv(65536).split(b"\n")[0])


def test_a_command_goes_to_the_guest_and_its_ack_back(relay):
    r, guest, rec, user, _ = relay
    _ask(r, rec, user, {"cmd": "disable", "arg": "sched_*"})
    guest.settimeout(2)
    assert guest.recv(100) == b"1 disable sched_*\n"
    r.ack(1, 8, 12345, "disabled 8 tracepoints")
    a = _answer(user)
    assert a["ok"] and a["result"] == 8 and a["guest_tsc"] == 12345 and a["message"] == "disabled 8 tracepoints"


def test_a_refusal_from_the_guest(relay):
    r, guest, rec, user, _ = relay
    _ask(r, rec, user, {"cmd": "enable", "arg": "nosuch"})
    r.ack(1, -1, 0, "'nosuch' matches no tracepoint")
    a = _answer(user)
    assert (a["ok"], a["result"], a["message"]) == (False, -1, "'nosuch' matches no tracepoint")


def test_status_is_answered_by_the_recorder(relay):
    r, guest, rec, user, _ = relay
    _ask(r, rec, user, {"cmd": "status"})
    assert _answer(user) == {"ok": True, "result": 0, "message": "3 events", "records": 3}


def test_stop_is_announced_before_it_is_sent(relay):
    r, guest, rec, user, stops = relay
    _ask(r, rec, user, {"cmd": "stop"})
    assert stops == [1]
    guest.settimeout(2)
    assert guest.recv(100) == b"1 stop\n"


@pytest.mark.parametrize("req,msg", [
    (b"not json\n", "bad request"),
    (b'{"cmd": "explode"}\n', "unknown control command 'explode'"),
    (b'{"cmd": "enable", "arg": "a b"}\n', "needs tracepoint globs"),
])
def test_bad_requests(relay, req, msg):
    r, guest, rec, user, _ = relay
    user.sendall(req)
    assert r.read_client(rec)
    a = _answer(user)
    assert not a["ok"] and msg in a["message"]


def test_after_the_stream_ended(relay):
    r, guest, rec, user, _ = relay
    r.ended = True
    _ask(r, rec, user, {"cmd": "flush"})
    assert _answer(user) == {"ok": False, "message": "the guest's stream has ended"}


def test_a_client_that_leaves(relay):
    r, guest, rec, user, _ = relay
    _ask(r, rec, user, {"cmd": "flush"})
    user.close()
    assert not r.read_client(rec)
    r.drop(rec)
    r.ack(1, 0, 0, "flushed")  # nowhere to go, no error


def test_check_command():
    with pytest.raises(UsageError, match="takes no argument"):
        ctl.check_command("flush", "x")
    assert ctl.guest_line(7, "enable", "a,b") == b"7 enable a,b\n"
