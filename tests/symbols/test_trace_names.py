"""The names an OSv trace carries (the REST dump's SYMB chunk, the tracefile's .symbols) behind
the same interface as an ELF's: what reports show for an OSv trace when no loader.elf is given."""

from __future__ import annotations

import json

import numpy as np
import osvtrace
from osvtrace.model import Model
from osvtrace.reports.registry import produce
from osvtrace.symbols import TraceNames, for_trace
from tests.support.osv_traces import fixture


def test_a_dump_names_static_mutexes_from_its_symbol_chunk(tmp_path):
    t = osvtrace.open(fixture("mutexnet-rest.dump", tmp_path))
    s = for_trace(t)
    assert isinstance(s, TraceNames) and not s.warnings
    rows = json.loads(produce("mutex", Model(t), {"json": True}))["rows"]
    named = [r for r in rows if r["mutex_name"]]
    assert named, "some of OSv's mutexes are static objects of loader.elf"
    for r in named:  # the dump's own symbol table says the same for that address
        assert t.symbol(r["mutex"] + 1).removesuffix("+0x0") == r["mutex_name"]
        assert "+0x0" not in r["mutex_name"]


def test_address_zero_and_gdbs_no_symbol_answers_are_never_names(tmp_path):
    t = osvtrace.open(fixture("mutexnet-bt.tracefile", tmp_path))
    s = for_trace(t)
    assert s.name_addresses(np.zeros(3, np.uint64)).tolist() == ["0x0"] * 3
    text = produce("prof-wait", Model(t), {})
    assert "No symbol matches" not in text
