"""What the export tests share: a hand-built network trace with known frames, and the
independent readers (tshark, babeltrace2) installed on demand."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from osvtrace.catalog.schema import default_catalog
from osvtrace.format.encode import CpuStreamBuilder
from tests.support.traces import ROOT, write_trace

# (packet id, time, cpu, direction, src port, dst port, udp payload bytes)
FRAMES = [(7, 100, 0, 0, 5353, 9000, 18), (8, 150, 1, 1, 9000, 5353, 300), (9, 400, 0, 0, 1234, 80, 0)]


def udp_frame(sport: int, dport: int, payload: int) -> bytes:
    """An Ethernet + IPv4 + UDP frame with a valid IP header checksum."""
    body = bytes(range(256)) * 2
    udp = struct.pack(">HHHH", sport, dport, 8 + payload, 0) + body[:payload]
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                               bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
    s = sum(struct.unpack(">10H", bytes(ip)))
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into(">H", ip, 10, ~s & 0xFFFF)
    eth = bytes.fromhex("525400000002" "525400000001" "0800")
    return eth + bytes(ip) + udp


def net_trace(path: Path) -> Path:
    """Packets 7, 8, 9 with their frames (net_packet), and packet 7 followed through
    rx -> classify -> push (CPU 0) -> pop (CPU 1): one flow of four stages."""
    cat = default_catalog()
    cpus = {0: CpuStreamBuilder(cat), 1: CpuStreamBuilder(cat)}
    cpus[0].add("sched_switch", [50], 1, next=2, prev_state=1)
    cpus[1].add("sched_switch", [60], 1, next=3, prev_state=1)
    for pkt, t, cpu, direction, sport, dport, payload in FRAMES:
        frame = udp_frame(sport, dport, payload)
        cpus[cpu].add("net_packet", [t], 2 + cpu, packet=pkt, len=len(frame), dir=direction, data=frame[:128])
    cpus[0].add("net_rx", [101], 2, packet=7, len=60, queue=0)
    cpus[0].add("net_classify", [110], 2, channel=0xC0, packet=7, result=0)
    cpus[0].add("net_channel_push", [120], 2, channel=0xC0, packet=7, depth=1)
    cpus[1].add("net_channel_pop", [200], 3, channel=0xC0, packet=7, depth=0)
    cpus[0].add("net_rx", [300], 2, packet=10, len=60, queue=0)  # seen once: no flow
    return write_trace(path, {c: b.slots() for c, b in cpus.items()}, threads={1: "main", 2: "rx", 3: "app"})


def need_tool(cmd: str, package: str) -> str:
    """The path of ``cmd``; installs Debian's ``package`` when missing (as root), and fails the
    test loudly (never skips) when that cannot be done: the export tests exist to run it."""
    path = shutil.which(cmd)
    if path:
        return path
    if os.geteuid() == 0:
        r = subprocess.run([str(ROOT / "scripts" / "ensure-deps.sh"), f"{cmd}:{package}"], capture_output=True,
                           text=True)
        path = shutil.which(cmd)
        if path:
            return path
        detail = (r.stderr or r.stdout).strip()
    else:
        detail = "not root"
    pytest.fail(f"{cmd} is needed to check this export and could not be installed ({detail}); "
                f"run: apt-get install -y {package}")
