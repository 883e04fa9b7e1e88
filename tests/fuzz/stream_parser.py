"""Fuzz the stream parser as the recorder uses it: bytes from the guest's port, fed in
pieces into a real virtio transport's parser, whose sink writes the .osvt file.

The first two input bytes give the piece size (a recv returns any amount). Properties: a
bad stream is a StreamError (an OsvtraceError) with one line; whatever was accepted before
it is in the file, which always opens; every data slot the parser accepted is in a chunk,
and decoded records plus counted slots account for all of them; the lost counter the
guest sent is the file's.

    python -m tests.fuzz.harness stream [libFuzzer options] [corpus dir]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from osvtrace.errors import OsvtraceError

# tests.fuzz.run points OSVTRACE_FUZZ_TMP at a directory it removes after each round
TMP = os.environ.get("OSVTRACE_FUZZ_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
OUT = Path(TMP) / f"osvtrace-fuzz-{os.getpid()}.rec.osvt"


def prepare() -> None:
    import osvtrace.format.trace  # noqa: F401
    from osvtrace.capture.virtio import VirtioStream  # noqa: F401


def feed(data: bytes, piece: int, out: Path) -> tuple[object, str | None]:
    """Feed `data` to a fresh recorder in pieces of `piece` bytes, then end the stream the way
    the recorder does (parser.close, writer.close). Returns (recorder, error message or None)."""
    from osvtrace.capture.virtio import VirtioStream

    rec = VirtioStream(out)
    err = None
    try:
        for i in range(0, len(data), piece):
            # the transport's path: receive straight into the parser's buffer
            room = rec.parser.free_space()
            chunk = data[i:i + piece]
            room[:len(chunk)] = chunk
            rec.parser.commit(len(chunk))
        rec.parser.close()
    except OsvtraceError as e:
        err = str(e)
        assert err and "\n" not in err, f"error message is not one line: {err!r}"
    finally:
        if rec.writer is not None:
            rec.writer.close("fuzz")
    return rec, err


def check_recording(rec: object, out: Path) -> None:
    """The file the recorder wrote holds what its parser accepted."""
    import numpy as np

    import osvtrace

    parser = rec.parser  # type: ignore[attr-defined]
    if rec.writer is None:  # type: ignore[attr-defined]
        assert parser.meta is None and not parser.cpus
        return
    t = osvtrace.open(out, workers=1)  # our own writer's file: must open
    with t:
        nslots = t.catalog.nslots_table()
        for cpu, st in parser.cpus.items():
            written = sum(c.nslots for c in t.scan.chunks if c.cpu == cpu)
            assert written == st.slots, f"cpu {cpu}: parser accepted {st.slots} slots, file has {written}"
            loss = t.loss.get(cpu)
            decoded = int(nslots[t.events.tp[t.events.cpu == cpu]].astype(np.int64).sum())
            counted = decoded + (loss.partial_slots + loss.invalid_slots + loss.duplicate_slots if loss else 0)
            assert counted == written, f"cpu {cpu}: {counted} slots decoded or counted of {written}"
            if st.lost:
                assert loss is not None and loss.dropped == st.lost, f"cpu {cpu}: lost {st.lost} not in the file"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    piece = 1 + int.from_bytes(data[:2], "little") % 4096
    rec, _err = feed(data[2:], piece, OUT)
    check_recording(rec, OUT)
