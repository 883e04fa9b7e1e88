"""Binary layouts shared with the kernel: trace slots, rings, the control block.

The Python half of kernel/include/trace/ring.hh and control.hh (docs/format.md
specifies both). tests/test_layout_native.py compiles a probe against the C++
headers and checks every offset here.
"""

from __future__ import annotations

import numpy as np

SLOT_SIZE = 32
HEADER_PAYLOAD = 16  # payload bytes in a record's first slot
CONT_PAYLOAD = 28  # payload bytes in each continuation slot
HEADER_PAYLOAD_OFFSET = 16  # where the payload starts inside a header slot
CONT_PAYLOAD_OFFSET = 4  # ... and inside a continuation slot
ID_EMPTY = 0
ID_CONT = 0xFFFF
RING_MAGIC = 0x474E495254565F4F  # "O_VTRING"
CONTROL_MAGIC = 0x4C52544354565F4F  # "O_VTCTRL"
MAX_CPUS = 64

# The stack trailer (docs/format.md "Stack trailer"): a record whose header flags carry
# FLAG_STACK continues, after the slots its schema fixes, with 1..STACK_MAX_SLOTS
# continuation slots holding a frame-pointer backtrace. Records without one are unchanged.
FLAG_STACK = 0x01
STACK_MAX_FRAMES = 16
STACK_FRAMES_PER_SLOT = 3  # u64 frames at slot bytes 8, 16, 24 (8-aligned: one strided load each)
STACK_DEPTH_OFFSET = 4  # in the trailer's first slot: u8 frames stored
STACK_END_OFFSET = 5  # ... and u8 why the walk ended (STACK_END_*)
STACK_FRAME_OFFSET = 8
STACK_MAX_SLOTS = -(-STACK_MAX_FRAMES // STACK_FRAMES_PER_SLOT)
# Why a walk ended (the trailer's end byte); 0 in a record without a trailer.
STACK_NONE = 0  # the record carries no stack
STACK_COMPLETE = 1  # reached the outermost frame (a saved frame pointer of 0)
STACK_CUT = 2  # stopped by the depth bound: more frames existed
STACK_BAD_FRAME = 3  # a frame pointer outside the thread's stack or misaligned: stopped there
STACK_LOOP = 4  # a frame pointer not above the previous one (a loop or a smashed frame): stopped
STACK_END_NAMES = {STACK_NONE: "none", STACK_COMPLETE: "complete", STACK_CUT: "cut", STACK_BAD_FRAME: "bad frame",
                   STACK_LOOP: "loop"}

# A header slot viewed as a record; continuation slots share the first 4 bytes.
SLOT_DTYPE = np.dtype(
    [("id", "<u2"), ("nslots", "u1"), ("flags", "u1"), ("tid", "<u4"), ("tsc", "<u8"),
     ("payload", "V16")]
)
assert SLOT_DTYPE.itemsize == SLOT_SIZE

# trace::ring (kernel/include/trace/ring.hh): field -> (offset, numpy type)
RING_SIZE = 192
RING_FIELDS = {
    "magic": (0, "<u8"),
    "cpu": (8, "<u4"),
    "mode": (12, "<u4"),
    "nslots": (16, "<u8"),
    "mask": (24, "<u8"),
    "slots_addr": (32, "<u8"),
    "head": (64, "<u8"),
    "committed": (72, "<u8"),
    "lost": (80, "<u8"),
    "pending_lost": (88, "<u8"),
    "tail": (128, "<u8"),
}
RING_MODE_OVERWRITE = 0
RING_MODE_STREAM = 1

# trace::control (kernel/include/trace/control.hh)
CONTROL_FIELDS = {
    "magic": (0, "<u8"),
    "version": (8, "<u4"),
    "ncpus": (12, "<u4"),
    "tsc_hz": (16, "<u8"),
    "tsc_boot": (24, "<u8"),
    "enabled_addr": (32, "<u8"),
    "tp_max": (40, "<u4"),
    "slot_size": (44, "<u4"),
    "threads_addr": (48, "<u8"),
    "threads_max": (56, "<u4"),
    "log_size": (60, "<u4"),
    "log_addr": (64, "<u8"),
    "log_head": (72, "<u8"),
    "cmdline_addr": (80, "<u8"),
    "build_id_addr": (88, "<u8"),
    "backtrace_addr": (96, "<u8"),
    "sampler_hz": (104, "<u4"),
    "rings": (136, "<u8"),  # array of MAX_CPUS
    "tsc_offset": (136 + 8 * MAX_CPUS, "<i8"),  # array of MAX_CPUS
}
CONTROL_SIZE = 136 + 16 * MAX_CPUS
THREAD_NAME_LEN = 24
THREAD_ENTRY_DTYPE = np.dtype([("tid", "<u4"), ("flags", "<u4"), ("name", f"S{THREAD_NAME_LEN}")])
assert THREAD_ENTRY_DTYPE.itemsize == 32


def slots_for(payload_bytes: int) -> int:
    """Slots a record with this many payload bytes occupies."""
    if payload_bytes <= HEADER_PAYLOAD:
        return 1
    return 1 + -(-(payload_bytes - HEADER_PAYLOAD) // CONT_PAYLOAD)


def stack_slots(depth: int) -> int:
    """Trailer slots holding `depth` frames (one even for none: it carries the depth and end)."""
    return max(1, -(-depth // STACK_FRAMES_PER_SLOT))


def piece_end(offset: int) -> int:
    """End (exclusive) of the slot piece of the logical payload holding ``offset``."""
    if offset < HEADER_PAYLOAD:
        return HEADER_PAYLOAD
    k = (offset - HEADER_PAYLOAD) // CONT_PAYLOAD
    return HEADER_PAYLOAD + (k + 1) * CONT_PAYLOAD


def physical(offset: int) -> tuple[int, int]:
    """(slot index within the record, byte offset within that slot) of a payload offset."""
    if offset < HEADER_PAYLOAD:
        return 0, HEADER_PAYLOAD_OFFSET + offset
    k, r = divmod(offset - HEADER_PAYLOAD, CONT_PAYLOAD)
    return k + 1, CONT_PAYLOAD_OFFSET + r


def read_struct(buf: bytes | memoryview, fields: dict[str, tuple[int, str]], base: int = 0) -> dict[str, int]:
    """Decode the scalar fields of a fixed-layout structure from bytes."""
    out = {}
    for name, (off, typ) in fields.items():
        out[name] = int(np.frombuffer(buf, typ, 1, base + off)[0])
    return out
