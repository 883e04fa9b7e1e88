"""Stack exports: folded stacks (flame graph lines) parse back to the call tree's totals, and
pprof profiles parse with their proto (our generated module, and protoc itself) with the same
totals, frames named, addresses kept."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

import osvtrace
from osvtrace.exports import Options, export
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.reports import REGISTRY
from osvtrace.reports.registry import options
from tests.support import osv_stacks as S
from tests.support.osv_traces import fixture
from tests.support.vm import osvtrace as run_cli

PROTO = Path(__file__).resolve().parents[2] / "osvtrace" / "exports" / "proto"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Model:
    return Model(osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path_factory.mktemp("osv"))))


def caller_tree(model: Model, kind: str, **more) -> dict[tuple[str, ...], tuple[int, int]]:
    spec = REGISTRY[kind]
    r = spec.fn(model, Filter(), options(spec, {"limit": None, "tree": "caller", **more}))
    par, frame, count = (r.columns[c].tolist() for c in ("parent", "frame", "count"))
    total = r.columns["total"].tolist() if "total" in r.columns else count
    path: dict[int, tuple[str, ...]] = {}
    out = {}
    for i, p in enumerate(par):
        path[i] = () if p < 0 else path[p] + (frame[i],)
        out[path[i]] = (count[i], total[i])
    return out


def parse_folded(text: str) -> dict[tuple[str, ...], int]:
    out = {}
    for line in text.splitlines():
        stack, _, value = line.rpartition(" ")
        out[tuple(stack.split(";"))] = int(value)
    return out


@pytest.mark.parametrize("kind,metric", [("prof-wait", "ns"), ("prof-lock", "ns"), ("prof", "count"),
                                         ("prof-lock", "count")])
def test_folded_stacks_parse_back_to_the_trees_totals(real, tmp_path, kind, metric):
    out = tmp_path / "t.folded"
    res = export(real, "folded", out, Options(profile=kind, metric=metric))
    lines = parse_folded(out.read_text())
    t = caller_tree(real, kind)
    k = 0 if metric == "count" else 1
    assert sum(lines.values()) == t[()][k] == res.counts[metric]
    # every node of the tree holds what the lines under it add up to
    for path, v in t.items():
        if path:
            assert sum(n for stack, n in lines.items() if stack[:len(path)] == path) == v[k], path


def test_folded_group_by_puts_the_group_outermost(real, tmp_path):
    out = tmp_path / "t.folded"
    export(real, "folded", out, Options(profile="prof-lock", group_by="thread"))
    lines = parse_folded(out.read_text())
    assert all(s[0].startswith("thread ") for s in lines)
    assert sum(lines.values()) == caller_tree(real, "prof-lock")[()][1]


def test_folded_of_a_count_profile_has_no_time(tmp_path):
    path = S.write(tmp_path / "s.tracefile", S.lock_story())
    r = run_cli("export", str(path), "--format", "folded", "--metric", "ns", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no time" in r.stderr


def read_pprof(path: Path):
    from osvtrace.exports.proto import pprof_pb2

    p = pprof_pb2.Profile()
    p.ParseFromString(gzip.decompress(path.read_bytes()))
    return p


def test_pprof_parses_with_its_proto_and_holds_the_trees_totals(real, tmp_path):
    out = tmp_path / "w.pb.gz"
    r = run_cli("export", str(real.trace.path), "--format", "pprof", "--profile", "prof-wait", "-o", str(out))
    assert r.returncode == 0, r.stderr
    p = read_pprof(out)
    st = p.string_table
    assert st[0] == "" and [(st[v.type], st[v.unit]) for v in p.sample_type] == [("samples", "count"),
                                                                               ("wait", "nanoseconds")]
    assert st[p.default_sample_type] == "wait"
    root = caller_tree(real, "prof-wait")[()]
    assert (sum(s.value[0] for s in p.sample), sum(s.value[1] for s in p.sample)) == root
    locs = {loc.id: loc for loc in p.location}
    funcs = {f.id: st[f.name] for f in p.function}
    # a sample's frames, leaf first, are the tree's path read callee first
    leafs = {}
    for s in p.sample:
        name = funcs[locs[s.location_id[0]].line[0].function_id]
        leafs[name] = leafs.get(name, 0) + s.value[1]
    callee = caller_tree(real, "prof-wait", tree="callee")
    assert leafs == {k[0]: v[1] for k, v in callee.items() if len(k) == 1}
    def shown(addr: int) -> str:  # what the trace names a frame, or its address where it has no name
        s = real.trace.symbol(addr)
        return s if s and not s.startswith("No symbol matches") else f"{addr:#x}"

    assert all(shown(loc.address).startswith(funcs[loc.line[0].function_id]) for loc in p.location)


def test_pprof_group_labels_and_hold_profile(tmp_path):
    model = Model(osvtrace.open(S.write(tmp_path / "s.tracefile", S.lock_story())))
    out = tmp_path / "h.pb.gz"
    export(model, "pprof", out, Options(profile="prof-hold", group_by="thread"))
    p = read_pprof(out)
    st = p.string_table
    by = {st[s.label[0].str].split()[1]: s.value[1] for s in p.sample}
    assert by == {"holder": 350, "waiter": 90} and all(st[s.label[0].key] == "thread" for s in p.sample)


def test_protoc_itself_decodes_the_pprof_file(real, tmp_path):
    out = tmp_path / "l.pb.gz"
    export(real, "pprof", out, Options(profile="prof-lock"))
    raw = gzip.decompress(out.read_bytes())
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", "--decode=perftools.profiles.Profile",
                        str(PROTO / "pprof.proto")], input=raw, capture_output=True)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert text.count("sample {") == len(read_pprof(out).sample) and "pthread_mutex_lock" in text


def test_generated_pprof_code_matches_the_proto(tmp_path):
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"--python_out={tmp_path}",
                        str(PROTO / "pprof.proto")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    strip = lambda s: [ln for ln in s.splitlines() if not ln.startswith("# Protobuf Python Version")  # noqa: E731
                       and "_runtime_version" not in ln and not ln.strip().isdigit() and ln.strip() != "'',"]
    assert strip((tmp_path / "pprof_pb2.py").read_text()) == strip((PROTO / "pprof_pb2.py").read_text()), \
        "osvtrace/exports/proto/pprof_pb2.py is stale: regenerate it with grpc_tools.protoc"


def test_stack_options_on_other_formats_are_one_line_errors(tmp_path):
    path = S.write(tmp_path / "s.tracefile", S.lock_story())
    for args, says in ((["--format", "chrome", "--profile", "prof-lock"], "--profile and --group-by apply"),
                       (["--format", "pprof", "--metric", "ns"], "--metric applies to folded")):
        r = run_cli("export", str(path), *args, "-o", str(tmp_path / "x"))
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
