"""CTF 1.8 export: a directory that babeltrace2 and Trace Compass read.

``metadata`` is the TSDL text: one event class per tracepoint (id = tracepoint id,
fields = its arguments, enums as CTF enumerations, pointers in hex, strings as
UTF-8 char arrays), one stream class whose event header is (id, timestamp) and
whose event context is the thread id. ``stream_N`` holds CPU N's records in
packets of about PACKET bytes; each packet context carries timestamp_begin/end,
the CPU and ``events_discarded``, the running count of records this CPU lost
(the model's ``lost`` table), which babeltrace2 turns into discarded-events
notices.

Every integer is byte-aligned (``align = 8``), so a record of a tracepoint has a
fixed size and the streams are written with numpy: one byte matrix per
tracepoint, scattered to the records' offsets.
"""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import numpy as np

from osvtrace.catalog.schema import Field, Tracepoint
from osvtrace.exports.common import Options, Result, Selection, prepare_dir
from osvtrace.exports.registry import ALL_FILTERS, register
from osvtrace.format.trace import Trace
from osvtrace.model import Model

MAGIC = 0xC1FC1FC1
PACKET = 1 << 16  # target bytes of events per packet
EVENT_HEADER = 2 + 8 + 4  # id (u16), timestamp (u64), context: tid (u32)
PACKET_HEADER = np.dtype([("magic", "<u4"), ("uuid", "u1", 16), ("stream_id", "<u4"),
                          ("timestamp_begin", "<u8"), ("timestamp_end", "<u8"), ("content_size", "<u8"),
                          ("packet_size", "<u8"), ("events_discarded", "<u8"), ("cpu_id", "<u4")])
_INT = {1: "uint8_t", 2: "uint16_t", 4: "uint32_t", 8: "uint64_t"}
_SINT = {1: "int8_t", 2: "int16_t", 4: "int32_t", 8: "int64_t"}


def _field_decl(f: Field, trace: Trace) -> str:
    name = f"_{f.name}"  # CTF readers drop one leading underscore: it keeps names clear of TSDL keywords
    if f.type == "str":
        return f"integer {{ size = 8; align = 8; signed = false; encoding = UTF8; }} {name}[{f.size}];"
    if f.type == "bytes":
        return f"uint8_t {name}[{f.size}];"
    if f.type == "ptr":
        return f"integer {{ size = 64; align = 8; signed = false; base = 16; }} {name};"
    base = (_SINT if f.signed else _INT)[f.size]
    if f.enum and f.enum in trace.catalog.enums:
        labels = ", ".join(f'"{k}" = {v}' for k, v in sorted(trace.catalog.enums[f.enum].items(),
                                                                key=lambda kv: kv[1]))
        return f"enum : {base} {{ {labels} }} {name};"
    return f"{base} {name};"


def metadata(trace: Trace, tps: list[Tracepoint], trace_uuid: uuidlib.UUID) -> str:
    """The TSDL text describing the streams."""
    wall = int(trace.facts.wall_clock_ns)
    esc = str(trace.path.name).replace("\\", "\\\\").replace('"', '\\"')
    out = [
        "/* CTF 1.8 */",
        "/* written by osvtrace (osvtrace export --format ctf) */",
        "",
        *(f"typealias integer {{ size = {8 * n}; align = 8; signed = false; }} := {t};" for n, t in _INT.items()),
        *(f"typealias integer {{ size = {8 * n}; align = 8; signed = true; }} := {t};" for n, t in _SINT.items()),
        "",
        "trace {",
        "\tmajor = 1;",
        "\tminor = 8;",
        f'\tuuid = "{trace_uuid}";',
        "\tbyte_order = le;",
        "\tpacket.header := struct {",
        "\t\tuint32_t magic;",
        "\t\tuint8_t uuid[16];",
        "\t\tuint32_t stream_id;",
        "\t};",
        "};",
        "",
        "env {",
        '\ttracer_name = "osvtrace";',
        f'\ttrace_name = "{esc}";',
        f"\tncpus = {trace.ncpus};",
        "};",
        "",
        "clock {",
        "\tname = monotonic;",
        f'\tuuid = "{uuidlib.uuid5(trace_uuid, "clock")}";',
        '\tdescription = "time since boot of the traced kernel";',
        "\tfreq = 1000000000;",
        f"\toffset_s = {wall // 1_000_000_000};",
        f"\toffset = {wall % 1_000_000_000};",
        f"\tabsolute = {'TRUE' if wall else 'FALSE'};",
        "};",
        "",
        "typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := clock_t;",
        "",
        "stream {",
        "\tid = 0;",
        "\tevent.header := struct {",
        "\t\tuint16_t id;",
        "\t\tclock_t timestamp;",
        "\t};",
        "\tpacket.context := struct {",
        "\t\tclock_t timestamp_begin;",
        "\t\tclock_t timestamp_end;",
        "\t\tuint64_t content_size;",
        "\t\tuint64_t packet_size;",
        "\t\tuint64_t events_discarded;",
        "\t\tuint32_t cpu_id;",
        "\t};",
        "\tevent.context := struct {",
        "\t\tuint32_t _tid;",
        "\t};",
        "};",
        "",
    ]
    for tp in tps:
        out += ["event {", f'\tname = "{tp.name}";', f"\tid = {tp.id};", "\tstream_id = 0;"]
        if tp.fields:
            out += ["\tfields := struct {", *(f"\t\t{_field_decl(f, trace)}" for f in tp.fields), "\t};"]
        out += ["};", ""]
    return "\n".join(out)


def _event_bytes(trace: Trace, tp: Tracepoint, idx: np.ndarray) -> np.ndarray:
    """(n, size) records of tracepoint ``tp`` for events ``idx``: header, context, fields."""
    ev = trace.events
    n = len(idx)
    cols = [np.full((n, 1), tp.id, "<u2").view(np.uint8), ev.time[idx].astype("<u8").view(np.uint8).reshape(n, 8),
            ev.tid[idx].astype("<u4").view(np.uint8).reshape(n, 4)]
    rows = ev.row[idx]
    for f in tp.fields:
        v = trace.field_values(f, rows)
        if f.type == "bytes":
            cols.append(v)
        else:
            cols.append(np.ascontiguousarray(v).view(np.uint8).reshape(n, f.size))
    return np.concatenate(cols, axis=1) if n else np.empty((0, event_size(tp)), np.uint8)


def event_size(tp: Tracepoint) -> int:
    return EVENT_HEADER + sum(f.size for f in tp.fields)


def _stream(trace: Trace, idx: np.ndarray, sizes: np.ndarray, cpu: int, lost_t: np.ndarray,
            lost_n: np.ndarray, trace_uuid: uuidlib.UUID) -> np.ndarray:
    """CPU ``cpu``'s stream file: packets of the events ``idx`` (time order)."""
    ev = trace.events
    size = sizes[ev.tp[idx]].astype(np.int64)
    start = np.cumsum(size) - size  # offset of each event among the events alone
    pkt = start // PACKET
    first = np.nonzero(np.r_[True, pkt[1:] != pkt[:-1]])[0]  # first event of each packet
    last = np.r_[first[1:], len(idx)] - 1
    content = start[last] + size[last] - start[first]
    npk = len(first)
    pk_off = np.cumsum(content + PACKET_HEADER.itemsize) - (content + PACKET_HEADER.itemsize)
    dense_pk = np.repeat(np.arange(npk), last - first + 1)
    pos = pk_off[dense_pk] + PACKET_HEADER.itemsize + (start - start[first][dense_pk])
    out = np.zeros(int(pk_off[-1] + PACKET_HEADER.itemsize + content[-1]), np.uint8)
    hdr = np.zeros(npk, PACKET_HEADER)
    hdr["magic"] = MAGIC
    hdr["uuid"] = np.frombuffer(trace_uuid.bytes, np.uint8)
    hdr["timestamp_begin"] = ev.time[idx[first]]
    hdr["timestamp_end"] = ev.time[idx[last]]
    hdr["content_size"] = hdr["packet_size"] = (content + PACKET_HEADER.itemsize) * 8
    # running count of this CPU's lost records up to the end of each packet
    order = np.argsort(lost_t, kind="stable")
    cum = np.r_[0, np.cumsum(lost_n[order])]
    hdr["events_discarded"] = cum[np.searchsorted(lost_t[order], hdr["timestamp_end"].astype(np.int64), "right")]
    hdr["cpu_id"] = cpu
    hrows = pk_off[:, None] + np.arange(PACKET_HEADER.itemsize)
    out[hrows] = hdr.view(np.uint8).reshape(npk, PACKET_HEADER.itemsize)
    tp_here = ev.tp[idx]
    for tid in np.unique(tp_here).tolist():
        tp = trace.catalog.by_id[tid]
        sel = np.nonzero(tp_here == tid)[0]
        rows = _event_bytes(trace, tp, idx[sel])
        out[pos[sel][:, None] + np.arange(rows.shape[1])] = rows
    return out


@register("ctf", suffix="/", filters=ALL_FILTERS,
          doc="CTF 1.8 directory (babeltrace2, Trace Compass): every record, one stream per CPU, loss counts.")
def write(model: Model, out: Path, opts: Options) -> Result:
    trace = model.trace
    prepare_dir(out, opts.force, lambda p: p.name == "metadata" or p.name.startswith("stream_"))
    sel = Selection(trace, opts.filter)
    mask = sel.events(trace, opts.filter.tracepoints)
    ev = trace.events
    known = np.zeros(0x10000, bool)
    for tp in trace.catalog.tracepoints:
        known[tp.id] = True
    mask &= known[ev.tp]  # records of ids the schema does not know cannot be described
    tps = [tp for tp in trace.catalog.tracepoints if not tp.removed or np.any(ev.tp == tp.id)]
    sizes = np.zeros(0x10000, np.int64)
    for tp in tps:
        sizes[tp.id] = event_size(tp)
    trace_uuid = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"osvtrace:{trace.path.name}:{len(trace)}:{trace.span_ns}")
    (out / "metadata").write_text(metadata(trace, tps, trace_uuid))
    lost = model.lost
    res = Result(out)
    written = 0
    streams = 0
    for cpu in range(trace.ncpus):
        idx = np.nonzero(mask & (ev.cpu == cpu))[0]
        opts.progress(cpu, trace.ncpus, f"writing stream_{cpu}")
        if not len(idx):
            continue
        lm = lost["cpu"] == cpu
        data = _stream(trace, idx, sizes, cpu, np.maximum(lost["time"][lm], 0), lost["count"][lm], trace_uuid)
        (out / f"stream_{cpu}").write_bytes(data.data)
        written += len(idx)
        streams += 1
    opts.progress(trace.ncpus, trace.ncpus, "ctf")
    res.counts = {"events": written, "streams": streams}
    return res
