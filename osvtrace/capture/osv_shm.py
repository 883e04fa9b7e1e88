"""Real OSv, captured continuously from guest RAM shared with the host
(`record --kernel osv --via shm`): the trace survives OSv's small rings.

QEMU keeps guest RAM in a /dev/shm file (memory-backend-file, share=on; file offset ==
guest-physical address below 3 GiB). A trace buffer is anonymous memory in OSv's mmap area
and `trace_buf::_last` is in the per-CPU area, neither in OSv's linear map of physical
memory (include/osv/mmu-defs.hh), so both are translated by the guest's page tables, walked
in the file itself: a ring becomes a list of physical extents. gdb finds them once (after OSv has set up tracing, before the
app's end), checks the translation against guest memory, and lets the VM run; the host
then polls each CPU's `_last` and copies the pages the writer has left behind, while the
VM runs, into one stream file per CPU.

Counting what the poll could not keep up with, exactly: a ring of S bytes still holds the
stream bytes from `align_down(_last - 1, page) + page - S` on (the page being written
overwrites the oldest one). Before a copy, anything older than that is lost; after it,
`_last` is read again, and whatever the writer may have overwritten meanwhile is dropped
from the copy and counted as lost too. The stream restarts on a page boundary after a
loss, so the records stay framed. At the app's end (gdb's breakpoint: the VM is stopped)
the rest is copied, up to `_last` itself.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import mmap
import os
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from osvtrace.capture.base import WHEN, Captured, CaptureError, VmRun, ending
from osvtrace.capture.osv_base import READY
from osvtrace.capture.osv_gdb import OsvGdbSnapshot
from osvtrace.capture.osv_watch import ProgressWatch
from osvtrace.vm import osv_image
from osvtrace.vm.gdbmi import Gdb
from osvtrace.vm.qemu import Vm, VmConfig, pick_accel

SHM_DIR = Path("/dev/shm")
LOW_RAM = 3 << 30  # QEMU pc: RAM above this may be remapped above 4 GiB
POLL_S = 0.002


PTE_ADDR = 0x000F_FFFF_FFFF_F000


def walk_page_tables(ram: bytes | mmap.mmap, cr3: int, va: int) -> int:
    """Guest-physical address of `va` by the guest's 4-level page tables (x86-64), read from
    the RAM file: OSv's per-CPU areas (where trace_buf::_last lives) are not in its linear map."""
    table = cr3 & PTE_ADDR
    for shift in (39, 30, 21, 12):
        at = table + ((va >> shift) & 0x1FF) * 8
        if at + 8 > len(ram):
            raise CaptureError(f"page table entry for {va:#x} at {at:#x} is beyond the RAM file")
        e = struct.unpack_from("<Q", ram, at)[0]
        if not e & 1:
            raise CaptureError(f"address {va:#x} is not mapped in the guest's page tables")
        if shift in (30, 21) and e & 0x80:  # a 1 GiB or 2 MiB page
            return (e & PTE_ADDR & ~((1 << shift) - 1)) + (va & ((1 << shift) - 1))
        table = e & PTE_ADDR
    return table + (va & 0xFFF)


def translate(ram: bytes | mmap.mmap, cr3: int, va: int, size: int, page: int = 4096) -> list[tuple[int, int, int]]:
    """Where [va, va + size) is in the RAM file, as extents (offset in the range, file offset,
    length), physically contiguous pieces merged. A large trace buffer is anonymous memory
    that OSv maps page by page (its mmap area), so it is rarely one piece."""
    out: list[list[int]] = []
    off = 0
    while off < size:
        n = min(page - (va + off) % page, size - off)
        pa = walk_page_tables(ram, cr3, va + off)
        if pa + n > len(ram):
            raise CaptureError(f"{va + off:#x} maps to {pa:#x}, beyond the RAM file ({len(ram):,} bytes)")
        if out and out[-1][1] + out[-1][2] == pa:
            out[-1][2] += n
        else:
            out.append([off, pa, n])
        off += n
    return [tuple(e) for e in out]  # type: ignore[misc]


@dataclass
class CpuStream:
    """One CPU's copied stream: bytes [first, copied) of its ring's history, in `path`,
    with a run per stretch copied without a loss."""

    cpu: int
    ring: list  # the ring's extents in the RAM file: (offset in the ring, file offset, length)
    size: int
    last_at: int  # file offset of trace_buf::_last
    path: Path
    copied: int = -1  # stream position copied up to (-1: nothing yet)
    before: int = 0  # bytes overwritten before the first poll (written before the capture began)
    lost: int = 0  # bytes overwritten before the poll could copy them
    runs: list[tuple[int, int]] = field(default_factory=list)  # [lo, hi) in the stream file
    fh: object = None
    fpos: int = 0
    last: int = 0

    @property
    def starts(self) -> list[int]:
        return [e[0] for e in self.ring]


class RingPoller:
    """Copies the new bytes of every CPU's ring from the RAM file (see the module's text)."""

    def __init__(self, ram: Path, streams: list[CpuStream], page: int):
        self.fd = os.open(ram, os.O_RDONLY)
        self.mm = mmap.mmap(self.fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        self.streams = streams
        self.page = page
        self.polls = 0
        self.bytes = 0
        self.busy = 0.0  # seconds spent polling and copying
        for s in streams:
            s.fh = open(s.path, "wb")

    def _last(self, s: CpuStream) -> int:
        return struct.unpack_from("<Q", self.mm, s.last_at)[0]

    def _oldest(self, last: int, size: int) -> int:
        if last == 0:
            return 0
        return max(0, (last - 1) // self.page * self.page + self.page - size)

    def poll(self, final: bool = False) -> int:
        """Copy what is new on every CPU; returns the bytes copied."""
        t0 = time.perf_counter()
        self.polls += 1
        moved = 0
        page, mm = self.page, self.mm
        for s in self.streams:
            last = self._last(s)
            s.last = last
            bound = last if final else ((last - 1) // page * page if last else 0)
            start = s.copied
            oldest = self._oldest(last, s.size)
            if start < 0:  # the first poll: from the oldest byte the ring still holds
                s.before = oldest
                start = oldest
                self._new_run(s, start)
            elif start < oldest:
                s.lost += oldest - start
                start = oldest
                self._new_run(s, start)
            if bound <= start:
                s.copied = max(s.copied, start)
                continue
            a, b = start % s.size, (bound - 1) % s.size + 1
            data = self._read(s, a, b) if a < b else self._read(s, a, s.size) + self._read(s, 0, b)
            if not final:
                last2 = self._last(s)
                torn = self._oldest(last2, s.size) - start
                if torn > 0:  # the writer came round while we copied: that much may be overwritten
                    torn = min(torn, bound - start)
                    s.lost += torn
                    start += torn
                    data = data[torn:]
                    self._new_run(s, start)
            if data:
                s.fh.write(data)
                s.fpos += len(data)
                lo, _hi = s.runs[-1]
                s.runs[-1] = (lo, s.fpos)
                moved += len(data)
            s.copied = bound
        self.bytes += moved
        self.busy += time.perf_counter() - t0
        return moved

    def _read(self, s: CpuStream, a: int, b: int) -> bytes:
        """Ring bytes [a, b) gathered from its extents in the RAM file."""
        i = bisect.bisect_right(s.starts, a) - 1
        parts = []
        while a < b:
            lo, fo, n = s.ring[i]
            take = min(b, lo + n) - a
            parts.append(self.mm[fo + a - lo:fo + a - lo + take])
            a += take
            i += 1
        return b"".join(parts)

    def _new_run(self, s: CpuStream, start: int) -> None:
        """A run starts at stream position `start`: keep the file congruent to it modulo a page,
        so the walk's page-end padding rule holds."""
        pad = (start - s.fpos) % self.page
        if pad:
            s.fh.write(b"\0" * pad)
            s.fpos += pad
        if s.runs and s.runs[-1][0] == s.runs[-1][1]:
            s.runs.pop()
        s.runs.append((s.fpos, s.fpos))

    def close(self) -> None:
        for s in self.streams:
            if s.fh is not None:
                s.fh.close()
                s.fh = None
        if self.fd >= 0:
            try:
                self.mm.close()
            finally:
                os.close(self.fd)
                self.fd = -1


class OsvSharedRam(OsvGdbSnapshot):
    """Boot OSv with its RAM in /dev/shm, find every CPU's ring through gdb once, then copy
    the rings' new bytes while the VM runs until the app's end (or `duration`)."""

    name = "shm"

    def __init__(self, output: str | Path, *, poll: float = POLL_S, **kw: object):
        super().__init__(output, **kw)  # type: ignore[arg-type]
        self.ram = SHM_DIR / f"osvtrace-osv-{os.getpid()}-{uuid.uuid4().hex[:8]}.ram"
        self.poll_s = poll
        self.poller: RingPoller | None = None
        self.run_seconds = 0.0
        self.max_gap = 0.0

    def prepare(self, cfg: VmConfig) -> VmConfig:
        if not SHM_DIR.is_dir():
            raise CaptureError(f"{SHM_DIR} does not exist: --via shm needs a tmpfs there")
        if cfg.mem_mb * (1 << 20) > LOW_RAM:
            raise CaptureError(f"--via shm reads OSv's RAM below 3 GiB only: give --mem {LOW_RAM >> 20} or less")
        cfg = super().prepare(cfg)
        disk = self.tmp / "osv-disk.qcow2"
        cmd = osv_image.qemu_args(disk, smp=cfg.smp, mem_mb=cfg.mem_mb, accel=pick_accel(cfg.accel), shm=self.ram,
                                   hostfwd=cfg.hostfwd)
        return dataclasses.replace(cfg, command=tuple(cmd))

    def attach(self, vm: Vm) -> str:
        g = self._start_gdb(vm)
        bkpt = self._exit_breakpoints(g)
        g.continue_()
        t0 = time.monotonic()
        while READY not in vm.console_text():
            if not vm.running:
                raise CaptureError("QEMU ended before OSv started the app: " + vm.console_text()[-300:].strip())
            if time.monotonic() - t0 > 120:
                raise CaptureError(f"the VM is not OSv (or tracing never started): no {READY!r} on its console "
                                   f"after 120 s")
            time.sleep(0.01)
        g.interrupt(30)
        streams = self._locate(g)
        self.poller = RingPoller(self.ram, streams, self.meta["page"])
        self.poller.poll()
        g.continue_()
        t1 = time.monotonic()
        why = ""
        prev = time.perf_counter()
        watch = ProgressWatch(vm)
        while not why:
            try:
                stop = g.wait_stopped(self.poll_s)
            except TimeoutError:
                now = time.perf_counter()
                self.max_gap = max(self.max_gap, now - prev)
                prev = now
                self.poller.poll()
                if self.duration is None and (gone := self._gone_wrong(g, vm, watch)):
                    why = gone  # the VM is stopped now: the final poll below is exact
                    break
                if time.monotonic() - t1 >= self.limit:
                    if self.duration is None:
                        raise CaptureError(f"the app did not finish within {self.limit:g} s (give --duration)") from None
                    g.interrupt(30)
                    why = "duration"
                continue
            why = self._stop_reason(vm, g, stop, bkpt)
        self.run_seconds = time.monotonic() - t1
        self.poller.poll(final=True)
        self.poller.close()
        return why

    def _locate(self, g: Gdb) -> list[CpuStream]:
        """Every CPU's ring and _last in the RAM file, from `osv trace snapshot` (which also
        gives the dictionary), the translation checked against gdb's view of one _last."""
        g.cli(f"osv trace snapshot {self.snapdir}", timeout=300)
        self.meta = json.loads((self.snapdir / "snapshot.json").read_text())
        cr3 = int(g.mi("-data-evaluate-expression \"(unsigned long)$cr3\"").results.get("value", "0"), 0)
        streams = []
        with open(self.ram, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as ram:
            where = []
            for r in self.meta["cpus"]:
                if not r["file"]:
                    continue
                ring = translate(ram, cr3, r["base"], r["size"])
                last_ext = translate(ram, cr3, r["last_addr"], 8)
                if len(last_ext) != 1:
                    raise CaptureError(f"cpu{r['cpu']}'s trace_buf::_last straddles two pages")
                last_at = last_ext[0][1]
                snap = np.fromfile(self.snapdir / r["file"], np.uint8)
                lo, fo, n = ring[0]
                same = ram[fo:fo + min(n, 4096)] == snap[:min(n, 4096)].tobytes()
                same = same and struct.unpack_from("<Q", ram, last_at)[0] == r["last"]
                where.append((r, ring, last_at, same))
        for r, ring, last_at, same in where:
            if not same:
                raise CaptureError(f"cpu{r['cpu']}'s ring in the RAM file differs from what gdb reads: OSv's memory "
                                   f"layout is not the linear map this capture expects")
            streams.append(CpuStream(r["cpu"], ring, r["size"], last_at, self.tmp / f"cpu{r['cpu']}.stream"))
        return streams

    def finish(self, run: VmRun | None) -> Captured:
        assert run is not None
        if self.launch_failed:
            return self.refused(run)
        if self.poller is None:
            raise CaptureError("no trace saved: the rings were never located")
        rings = []
        for s in self.poller.streams:
            buf = np.fromfile(s.path, np.uint8)
            rings.append((s.cpu, buf, s.size, s.last, [r for r in s.runs if r[1] > r[0]], s.lost + s.before))
        infos, problems, events, cpus = self._write(rings)
        seconds = time.monotonic() - run.started
        lost = {s.cpu: s.lost for s in self.poller.streams}
        copied = self.poller.bytes
        rate = events / self.run_seconds if self.run_seconds else 0.0
        before = {s.cpu: s.before for s in self.poller.streams}
        extras = {"kernel": "osv", "cmdline": self.line, "lost_bytes": {str(c): n for c, n in sorted(lost.items())},
                  "before_capture_bytes": {str(c): n for c, n in sorted(before.items())},
                  "copied_bytes": copied, "polls": self.poller.polls, "run_seconds": round(self.run_seconds, 6),
                  "records_per_second": round(rate, 1), "max_poll_gap_seconds": round(self.max_gap, 6),
                  "poll_busy_seconds": round(self.poller.busy, 6),
                  # what the poller could have held: records per second of its own busy time
                  "poll_capacity_records_per_second": round(events / self.poller.busy, 1) if self.poller.busy else None,
                  "ring_bytes_written": {str(i.cpu): i.last for i in infos}}
        res = Captured(self.output, self.name, run.stop, run.outcome, cpus, events, None, {}, seconds,
                       console=run.console, warnings=problems, extras=extras,
                       notes=[f"OSv command line: {self.line}",
                              f"{self.poller.polls:,} polls, {copied:,} bytes copied, longest gap between polls "
                              f"{self.max_gap * 1e3:.1f} ms"])
        total_lost = sum(lost.values())
        lost_txt = ("0 bytes lost" if not total_lost else f"{total_lost:,} bytes lost (" + ", ".join(
            f"cpu{c} {n:,}" for c, n in sorted(lost.items()) if n) + "; overwritten before the poll copied them)")
        early = sum(before.values())
        early_txt = f" ({early:,} bytes written before the capture began were overwritten)" if early else ""
        res.summary = (f"recorded {events:,} OSv events on {cpus} CPU(s) from shared RAM {WHEN[run.stop]}, "
                       f"{lost_txt}{early_txt}: {self.output} ({seconds:.2f} s)")
        res.failure = self.stall_failure(run) or ending(run.stop, run.outcome, self.output)
        return res

    def close(self) -> None:
        if self.poller is not None:
            try:
                self.poller.close()
            except OSError:
                pass
        super().close()
        if self.ram.exists():
            self.ram.unlink()
