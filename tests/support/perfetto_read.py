"""A Perfetto trace written by the export, read back with the protobuf classes of the `perfetto`
package: the TrackEvent part (tracks, events, names), the ftrace part (switches and wakings,
the compact form expanded the way Perfetto's trace processor expands it), and the callstack
samples (interned frames resolved to names)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from osvtrace.exports import perfetto, perfetto_samples, perfetto_sched

BEGIN, END, INSTANT = pb.TrackEvent.TYPE_SLICE_BEGIN, pb.TrackEvent.TYPE_SLICE_END, pb.TrackEvent.TYPE_INSTANT


@dataclass(frozen=True)
class Switch:
    cpu: int
    ts: int
    prev: int  # -1: unknown (the trace processor skips a compact switch with no switch before it)
    state: int
    next: int
    next_comm: str
    compact: bool


@dataclass(frozen=True)
class Waking:
    cpu: int
    ts: int
    waker: int  # -1: unknown (no switch before it on the CPU)
    pid: int
    target_cpu: int
    comm: str
    compact: bool


@dataclass(frozen=True)
class Sample:
    ts: int
    cpu: int
    pid: int
    tid: int
    frames: tuple[str, ...]  # function names, outermost first
    addrs: tuple[int, ...]
    unwind_error: int


class Parsed:
    """A Perfetto trace file, read back."""

    def __init__(self, path):
        self.trace = pb.Trace()
        self.trace.ParseFromString(path.read_bytes())
        self.names: dict[int, str] = {}
        self.arg_names: dict[int, str] = {}
        self.tracks: dict[int, pb.TrackDescriptor] = {}
        self.events: list[tuple[int, int, pb.TracePacket]] = []  # (ts, file position, packet)
        self.process_tree: list[pb.ProcessTree] = []
        self.bundles: list[pb.FtraceEventBundle] = []
        self.samples: list[Sample] = []
        interned: dict[str, dict[int, object]] = defaultdict(dict)
        for i, p in enumerate(self.trace.packet):
            seq = p.trusted_packet_sequence_id
            if p.HasField("process_tree"):
                assert seq == perfetto_sched.SEQUENCE_ID
                self.process_tree.append(p.process_tree)
            elif p.HasField("ftrace_events"):
                assert seq == perfetto_sched.SEQUENCE_ID
                self.bundles.append(p.ftrace_events)
            elif seq == perfetto_samples.SEQUENCE_ID:
                d = p.interned_data
                for kind in ("function_names", "frames", "callstacks", "mappings", "mapping_paths", "build_ids",
                             "source_paths"):
                    for e in getattr(d, kind):
                        interned[kind][e.iid] = e
                if p.HasField("perf_sample"):
                    assert p.sequence_flags == pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
                    s = p.perf_sample
                    frames = [interned["frames"][f] for f in interned["callstacks"][s.callstack_iid].frame_ids]
                    self.samples.append(Sample(
                        p.timestamp, s.cpu, s.pid, s.tid,
                        tuple(interned["function_names"][f.function_name_id].str.decode() for f in frames),
                        tuple(f.rel_pc for f in frames), s.unwind_error))
            else:
                assert seq == perfetto.SEQUENCE_ID
                for n in p.interned_data.event_names:
                    self.names[n.iid] = n.name
                for n in p.interned_data.debug_annotation_names:
                    self.arg_names[n.iid] = n.name
                if p.HasField("track_descriptor"):
                    self.tracks[p.track_descriptor.uuid] = p.track_descriptor
                if p.HasField("track_event"):
                    assert p.sequence_flags == perfetto.SEQ_NEEDS_INCREMENTAL_STATE
                    assert p.track_event.track_uuid in self.tracks
                    self.events.append((p.timestamp, i, p))
        self.interned = interned
        self.switches, self.wakings = self._sched()

    # ------------------------------------------------------------ ftrace

    def _sched(self) -> tuple[list[Switch], list[Waking]]:
        """Every switch and waking, as the trace processor sees them: per CPU, in the order it
        tokenizes them (per bundle: compact switches, compact wakings, full events), sorted by
        time; a compact switch's prev and a compact waking's waker are the thread the CPU's
        previous switch switched in."""
        per_cpu: dict[int, list[tuple[int, int, object]]] = defaultdict(list)
        order = 0
        for b in self.bundles:
            cs = b.compact_sched
            ts = 0
            for d, st, pid, comm in zip(cs.switch_timestamp, cs.switch_prev_state, cs.switch_next_pid,
                                        cs.switch_next_comm_index):
                ts += d
                per_cpu[b.cpu].append((ts, order, ("cs", st, pid, cs.intern_table[comm])))
                order += 1
            assert len(cs.switch_timestamp) == len(cs.switch_prev_state) == len(cs.switch_next_pid) == \
                len(cs.switch_next_prio) == len(cs.switch_next_comm_index)
            ts = 0
            for d, pid, tcpu, comm in zip(cs.waking_timestamp, cs.waking_pid, cs.waking_target_cpu,
                                          cs.waking_comm_index):
                ts += d
                per_cpu[b.cpu].append((ts, order, ("cw", pid, tcpu, cs.intern_table[comm])))
                order += 1
            assert len(cs.waking_timestamp) == len(cs.waking_pid) == len(cs.waking_target_cpu) == \
                len(cs.waking_prio) == len(cs.waking_comm_index)
            for e in b.event:
                per_cpu[b.cpu].append((e.timestamp, order, ("f", e)))
                order += 1
        switches, wakings = [], []
        for cpu, evs in sorted(per_cpu.items()):
            last = -1
            for ts, _, e in sorted(evs, key=lambda x: x[:2]):
                if e[0] == "cs":
                    switches.append(Switch(cpu, ts, last, e[1], e[2], e[3], True))
                    last = e[2]
                elif e[0] == "cw":
                    wakings.append(Waking(cpu, ts, last, e[1], e[2], e[3], True))
                elif e[1].HasField("sched_switch"):
                    s = e[1].sched_switch
                    assert e[1].pid == s.prev_pid and s.prev_prio == s.next_prio == perfetto_sched.PRIO
                    switches.append(Switch(cpu, ts, s.prev_pid, s.prev_state, s.next_pid, s.next_comm, False))
                    last = s.next_pid
                else:
                    w = e[1].sched_waking
                    wakings.append(Waking(cpu, ts, e[1].pid, w.pid, w.target_cpu, w.comm, False))
        return switches, wakings

    def threads(self) -> dict[int, str]:
        return {t.tid: t.name for tree in self.process_tree for t in tree.threads}

    # ------------------------------------------------------------ TrackEvent

    def kind(self, uuid: int) -> str:
        d = self.tracks[uuid]
        if d.HasField("thread"):
            return "thread"
        if d.name.startswith("CPU ") and d.name != "CPU events":
            return "cpu"
        if d.name.startswith("mutex 0x"):
            return "mutex"
        if d.name.startswith("waiter "):
            assert self.kind(d.parent_uuid) == "mutex"
            return "waiter"
        return d.name

    def count(self, typ: int) -> Counter:
        return Counter(self.kind(p.track_event.track_uuid) for _, _, p in self.events if p.track_event.type == typ)

    def named(self, typ: int) -> list[str]:
        return [self.names[p.track_event.name_iid] for _, _, p in self.events if p.track_event.type == typ]

    def flows(self) -> tuple[Counter, Counter]:
        out, end = Counter(), Counter()
        for _, _, p in self.events:
            out.update(p.track_event.flow_ids)
            end.update(p.track_event.terminating_flow_ids)
        return out, end

    def check_nesting(self) -> None:
        """What Perfetto's trace processor does: sort by (timestamp, file position), then every
        end must close an open slice on its track, and no slice may be left open."""
        open_: dict[int, list[int]] = defaultdict(list)
        for ts, _i, p in sorted(self.events, key=lambda e: (e[0], e[1])):
            e = p.track_event
            if e.type == BEGIN:
                open_[e.track_uuid].append(ts)
            elif e.type == END:
                assert open_[e.track_uuid], f"end at {ts} on track {e.track_uuid} with no open slice"
                assert open_[e.track_uuid].pop() <= ts
        assert not any(open_.values()), "slices left open"
