"""kernel/include/trace/stream.hh and osvtrace/capture/stream.py describe the same bytes."""

from __future__ import annotations

import json
import subprocess

from osvtrace.capture import stream
from osvtrace.catalog import layout
from tests.support.native import build

PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include "trace/stream.hh"
using namespace trace::stream;
int main() {
    printf("{\"magic\": %u, \"version\": %u, \"port\": \"%s\", \"ctl_port\": \"%s\",", frame_magic,
           protocol_version, port_name, ctl_port_name);
    printf("\"types\": [%d, %d, %d, %d, %d], \"end\": [%d, %d],", frame_meta, frame_data, frame_threads,
           frame_end, frame_ack, end_app_exit, end_stopped);
    printf("\"frame\": [%zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu],", sizeof(frame_header),
           offsetof(frame_header, magic), offsetof(frame_header, type), offsetof(frame_header, flags),
           offsetof(frame_header, cpu), offsetof(frame_header, count), offsetof(frame_header, reserved),
           offsetof(frame_header, seq), offsetof(frame_header, lost));
    printf("\"meta\": [%zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu, %zu],",
           sizeof(meta_payload), offsetof(meta_payload, version), offsetof(meta_payload, ncpus),
           offsetof(meta_payload, tsc_hz), offsetof(meta_payload, tsc_boot), offsetof(meta_payload, tp_max),
           offsetof(meta_payload, slot_size), offsetof(meta_payload, ring_slots), offsetof(meta_payload, cmdline_len),
           offsetof(meta_payload, build_id_len), offsetof(meta_payload, enabled_len),
           offsetof(meta_payload, drain_period_us), offsetof(meta_payload, tsc_start),
           offsetof(meta_payload, tsc_offset));
    printf("\"end_payload\": [%zu, %zu, %zu, %zu], \"ack\": [%zu, %zu, %zu, %zu]}\n", sizeof(end_payload),
           offsetof(end_payload, status), offsetof(end_payload, reason), offsetof(end_payload, tsc),
           sizeof(ack_payload), offsetof(ack_payload, id), offsetof(ack_payload, result), offsetof(ack_payload, tsc));
    return 0;
}
"""


def _offsets(fmt: str) -> list[int]:
    """Field offsets of a little-endian struct format without padding."""
    import struct

    out, pos = [], 0
    for ch in fmt.lstrip("<"):
        out.append(pos)
        pos += struct.calcsize("<" + ch)
    return out


def test_stream_layout_matches(tmp_path):
    src = tmp_path / "probe.cc"
    src.write_text(PROBE)
    got = json.loads(subprocess.run([str(build(src, tmp_path / "probe"))], capture_output=True, text=True,
                                    check=True).stdout)
    assert got["magic"] == stream.FRAME_MAGIC and got["version"] == stream.PROTOCOL_VERSION
    assert (got["port"], got["ctl_port"]) == (stream.PORT_NAME, stream.CTL_PORT_NAME)
    assert got["types"] == [stream.META, stream.DATA, stream.THREADS, stream.END, stream.ACK]
    assert got["end"] == [stream.END_APP_EXIT, stream.END_STOPPED]
    assert got["frame"] == [stream.FRAME.size] + _offsets(stream.FRAME.format)
    assert got["meta"] == [stream.META_SIZE] + _offsets(stream.META_HEAD.format) + [stream.META_HEAD.size]
    assert stream.META_SIZE == stream.META_HEAD.size + 8 * layout.MAX_CPUS
    assert got["end_payload"] == [stream.END_PAYLOAD.size] + _offsets(stream.END_PAYLOAD.format)
    assert got["ack"] == [stream.ACK_PAYLOAD.size] + _offsets(stream.ACK_PAYLOAD.format)
