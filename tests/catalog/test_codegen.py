"""One schema, every artefact: generated files are current and the C++ layout equals Python's."""

from __future__ import annotations

import json
import subprocess
import sys

from osvtrace import resources
from osvtrace.catalog import codegen, layout
from osvtrace.catalog.schema import default_catalog
from tests.support.native import ROOT, build


def test_generated_files_are_current():
    for path, text in codegen.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `python -m osvtrace.catalog.codegen`"


def test_tables_doc_is_current():
    from osvtrace.model import docs

    assert docs.path().read_text() == docs.tables_doc(), "docs/tables.md is stale: run `python -m osvtrace.model.docs`"


def test_generated_protobuf_code_matches_the_proto(tmp_path):
    proto = resources.proto_schema().parent
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={tmp_path}",
                        str(proto / "osvt.proto")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fresh = (tmp_path / "osvt_pb2.py").read_text()
    committed = (proto / "osvt_pb2.py").read_text()
    strip = lambda s: [ln for ln in s.splitlines() if not ln.startswith("# Protobuf Python Version")  # noqa: E731
                       and "_runtime_version" not in ln and not ln.strip().isdigit() and ln.strip() != "''," ]
    assert strip(fresh) == strip(committed), "osvtrace/format/proto/osvt_pb2.py is stale: regenerate it with grpc_tools.protoc"


def _probe_source() -> str:
    cat = default_catalog()
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "generated/tracepoints.hh"',
             '#include "trace/control.hh"',
             'namespace trace { volatile uint8_t enabled[tp_max + 1]; }',
             'namespace trace_platform { thread_local trace::ring* current_ring; '
             'thread_local uint32_t current_thread; uint64_t fake_clock; }',
             'int main() {', '  printf("{");']
    for tp in cat.active():
        s = f"trace_payload_{tp.name}"
        lines.append(f'  printf("\\"{tp.name}\\": {{\\"size\\": %zu", sizeof({s}));')
        for f in tp.fields:
            lines.append(f'  printf(", \\"{f.name}\\": [%zu, %zu]", offsetof({s}, {f.name}), sizeof((({s}*)0)->{f.name}));')
        lines.append('  printf("}, ");')
    for name in layout.RING_FIELDS:
        lines.append(f'  printf("\\"ring.{name}\\": %zu, ", offsetof(trace::ring, {name}));')
    for name in layout.CONTROL_FIELDS:
        lines.append(f'  printf("\\"control.{name}\\": %zu, ", offsetof(trace::control, {name}));')
    lines.append('  printf("\\"ring\\": %zu, \\"control\\": %zu, \\"thread_entry\\": %zu, \\"id_trace_lost\\": %u}\\n", '
                 'sizeof(trace::ring), sizeof(trace::control), sizeof(trace::thread_entry), trace::tp_trace_lost);')
    lines.append('  return 0;\n}')
    return "\n".join(lines)


def test_cpp_layout_equals_the_python_catalog(tmp_path):
    src = tmp_path / "probe.cc"
    src.write_text(_probe_source())
    exe = build(src, tmp_path / "probe", "-ffreestanding")
    got = json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
    for tp in default_catalog().active():
        assert got[tp.name]["size"] == layout.HEADER_PAYLOAD + (tp.nslots - 1) * layout.CONT_PAYLOAD
        for f in tp.fields:
            assert got[tp.name][f.name] == [f.offset, f.size], (tp.name, f.name)
    for name, (off, _t) in layout.RING_FIELDS.items():
        assert got[f"ring.{name}"] == off, name
    for name, (off, _t) in layout.CONTROL_FIELDS.items():
        assert got[f"control.{name}"] == off, name
    assert got["ring"] == layout.RING_SIZE
    assert got["control"] == layout.CONTROL_SIZE
    assert got["thread_entry"] == layout.THREAD_ENTRY_DTYPE.itemsize
    assert got["id_trace_lost"] == default_catalog().by_name["trace_lost"].id


def test_generated_header_compiles_freestanding_for_the_kernel(tmp_path):
    src = tmp_path / "k.cc"
    src.write_text('#include "generated/tracepoints.hh"\n'
                   'namespace trace { volatile uint8_t enabled[tp_max + 1]; }\n'
                   'namespace trace_platform { thread_local trace::ring* current_ring; '
                   'thread_local uint32_t current_thread; uint64_t fake_clock; }\n'
                   'void f(void* m) { trace_mutex_handoff(m, 1, 2); trace_sched_idle(); }\n')
    r = subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-ffreestanding", "-nostdlib",
                        "-fno-exceptions", "-fno-rtti", "-mno-red-zone", f"-I{ROOT / 'kernel' / 'include'}",
                        f"-I{ROOT / 'tests' / 'native'}", "-c", str(src), "-o", str(tmp_path / "k.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
