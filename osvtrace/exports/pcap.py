"""pcap export: the frames captured by net_packet records, for Wireshark and tshark.

Classic libpcap format with nanosecond timestamps (magic 0xa1b23c4d), link type
Ethernet, snap length = the size of net_packet's data argument (128 bytes). Each
record's captured length is min(frame length, snap length) and its original length
the frame length, so Wireshark shows truncated frames as such. Timestamps are the
trace's wall clock at time zero (when the file has one) plus the record's time.
Written in one vectorised pass: a (records, 16 + snap) matrix of headers and bytes,
cut to each record's length with a mask.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from osvtrace.errors import UsageError
from osvtrace.exports.common import Options, Result, Selection, atomic_file
from osvtrace.exports.registry import register
from osvtrace.model import Model
from osvtrace.model.kernel_map import model_events

MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
TRACEPOINT = "net_packet"
_RECORD = np.dtype([("sec", "<u4"), ("nsec", "<u4"), ("incl", "<u4"), ("orig", "<u4")])


def global_header(snaplen: int) -> bytes:
    return struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)


def records(time_ns: np.ndarray, length: np.ndarray, data: np.ndarray) -> np.ndarray:
    """pcap records (header + captured bytes) of all frames, as one uint8 array."""
    n, snap = data.shape
    incl = np.minimum(length.astype(np.int64), snap)
    rows = np.zeros((n, _RECORD.itemsize + snap), np.uint8)
    hdr = rows[:, :_RECORD.itemsize].copy().view(_RECORD).reshape(n)
    hdr["sec"] = time_ns // 1_000_000_000
    hdr["nsec"] = time_ns % 1_000_000_000
    hdr["incl"] = incl
    hdr["orig"] = length
    rows[:, :_RECORD.itemsize] = hdr.view(np.uint8).reshape(n, _RECORD.itemsize)
    rows[:, _RECORD.itemsize:] = data
    keep = np.arange(rows.shape[1]) < (_RECORD.itemsize + incl)[:, None]
    return rows[keep]  # row-major: each record's header then its bytes


@register("pcap", suffix=".pcap", doc="libpcap capture of the frames in net_packet records (Wireshark, tshark).")
def write(model: Model, out: Path, opts: Options) -> Result:
    t = model.trace
    got = model_events(t, TRACEPOINT)  # a kernel other than ours makes them from its own records
    idx, a = got if got is not None else (np.empty(0, np.int64), {})
    if not len(idx):
        raise UsageError(f"{t.path}: no {TRACEPOINT} records, so no packets to write; record with "
                         f"--trace '{TRACEPOINT}' (it is off unless enabled by name)")
    sel = Selection(t, opts.filter)
    ev = t.events
    keep = sel.points(ev.time[idx]) & sel.cpu_ok(ev.cpu[idx]) & sel.tid_ok(ev.tid[idx])
    idx = idx[keep]
    a = {k: v[keep] for k, v in a.items()}
    snap = a["data"].shape[1]
    wall = int(t.facts.wall_clock_ns)
    res = Result(out)
    with atomic_file(out) as f:
        f.write(global_header(snap))
        step = 1 << 18
        for k in range(0, len(idx), step):
            s = slice(k, k + step)
            f.write(records(ev.time[idx[s]] + wall, a["len"][s], a["data"][s]).data)
            opts.progress(min(k + step, len(idx)), len(idx), "writing packets")
    res.counts = {"packets": int(len(idx)), "bytes": out.stat().st_size}
    if not len(idx):
        res.notes.append("no net_packet record in the selection: the capture is empty")
    if not wall:
        res.notes.append("the trace has no wall clock: packet times are times since boot (from 1970-01-01)")
    return res
