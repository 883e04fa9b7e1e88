"""Real OSv: an app's frames in the committed REST dump (tests/fixtures/osv/mutexnet-rest.dump)
named from the app's own ELF at the base the dump's MODS chunk gives (OSv issue 1221: trace.py
shows them as bare hex), found through the OSv build's usr.manifest, and checked against the
names gdb gave the same code in the committed tracefile of another run."""

from __future__ import annotations

import numpy as np
import pytest

import osvtrace
from osvtrace.model import Model
from osvtrace.model.filters import Filter
from osvtrace.model.frames import frame_names
from osvtrace.reports import REGISTRY
from osvtrace.reports.registry import options
from osvtrace.symbols import apps
from tests.support.osv import build
from tests.support.osv_traces import fixture

pytestmark = pytest.mark.osv


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Model:
    build()  # the app's ELF: the one the image was built from (usr.manifest)
    return Model(osvtrace.open(fixture("mutexnet-rest.dump", tmp_path_factory.mktemp("osv"))))


def app_frames(m: Model) -> tuple[np.ndarray, int]:
    mod = next(x for x in m.trace.modules if x.path == "/mutexnet")
    m.stacks.all_events()
    f = m.stacks.frames
    return np.unique(f[(f > mod.base) & (f <= mod.base + mod.size)]), mod.base


def test_the_dump_says_where_the_app_was_loaded_and_its_elf_is_found_there(dump):
    a, base = app_frames(dump)
    assert len(a) >= 8 and base % 4096 == 0  # lock, condvar and contender frames of /mutexnet
    names = apps.app_names(dump.trace)
    assert names is not None and base in [b for b, _, _ in names.objects]


def test_app_frames_have_the_names_and_lines_gdb_gave_the_same_code(dump, tmp_path):
    """gdb named the other run's frames (the tracefile's .symbols, at addr - 1); the app was
    loaded at another base there, so frames are matched by offset in their page and function."""
    a, _ = app_frames(dump)
    n = frame_names(dump.trace, a)
    tf = fixture("mutexnet-bt.tracefile", tmp_path)
    gdb = {}
    for line in tf.with_name(tf.name + ".symbols").read_text().splitlines():
        addr, file, ln, fn = line.split(maxsplit=3)
        if file == "mutexnet.c":
            gdb[(int(addr, 16) & 0xFFF, fn)] = int(ln)
    ours = {}
    for x, fn, src in zip(n.addr.tolist(), n.function.tolist(), n.source.tolist()):
        assert not fn.startswith("0x") and "+0x" in fn and src.rsplit("/", 1)[-1].startswith("mutexnet.c:")
        ours[((x - 1) & 0xFFF, fn.split("+")[0])] = int(src.rsplit(":", 1)[1])
    both = ours.keys() & gdb.keys()
    assert {fn for _, fn in both} >= {"main", "pong"}
    assert {k: ours[k] for k in both} == {k: gdb[k] for k in both}


def test_prof_lock_on_the_dump_shows_the_app_callers_by_name(dump):
    spec = REGISTRY["prof-lock"]
    r = spec.fn(dump, Filter(), options(spec, {"limit": None, "tree": "caller"}))
    roots = [f for f, p in zip(r.columns["frame"].tolist(), r.columns["parent"].tolist()) if p == 0]
    assert any(f.startswith("pong+") for f in roots) and any(f.startswith("main+") for f in roots)
    a, _ = app_frames(dump)
    assert not {f"{x:#x}" for x in a.tolist()} & set(r.columns["frame"].tolist())  # no app frame as bare hex


def test_an_elf_whose_sections_are_not_the_loaded_objects_is_not_used(dump, tmp_path, monkeypatch):
    mod = next(x for x in dump.trace.modules if x.path == "/mutexnet")
    elf = next(p for p in apps.candidates(mod.path, None) if p.is_file())
    assert apps.matches(elf, mod.sections)
    moved = [(n, a + 16 if n == ".text" else a, s) for n, a, s in mod.sections]  # a rebuilt app
    assert not apps.matches(elf, moved)
