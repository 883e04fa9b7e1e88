from pathlib import Path

import pytest

from osvtrace.catalog import layout
from osvtrace.catalog.schema import SchemaError, load


def test_catalog_has_the_required_tracepoints(catalog):
    required = """thread_create thread_exit sched_switch sched_wake sched_wait sched_idle sched_preempt
    sched_migrate sched_ipi timer_fire mutex_lock mutex_lock_wait mutex_lock_wake mutex_handoff mutex_unlock
    mutex_try_lock condvar_wait condvar_wake net_rx net_classify net_channel_push net_channel_pop net_tx
    net_packet trace_lost trace_marker""".split()
    assert set(required) <= set(catalog.by_name)


def test_every_tracepoint_documented_with_unique_id(catalog):
    ids = [tp.id for tp in catalog.tracepoints]
    assert len(ids) == len(set(ids))
    for tp in catalog.tracepoints:
        assert tp.doc and tp.subsystem


def test_scalars_never_straddle_slots(catalog):
    for tp in catalog.tracepoints:
        for f in tp.fields:
            if not f.is_blob:
                assert f.offset % f.size == 0, (tp.name, f.name)
                assert f.offset + f.size <= layout.piece_end(f.offset), (tp.name, f.name)
        assert layout.slots_for(tp.payload_size) == tp.nslots


def test_layout_moves_a_straddling_scalar_to_the_next_slot(tmp_path):
    (tmp_path / "x.toml").write_text('''
[[tracepoint]]
name = "wide"
id = 9
doc = "d"
args = [{ name = "a", type = "bytes", size = 12 }, { name = "b", type = "u64" }]
''')
    tp = load(tmp_path).by_name["wide"]
    assert tp.field("b").offset == 16  # would be 16 anyway; now check a case inside continuation
    (tmp_path / "x.toml").write_text('''
[[tracepoint]]
name = "wide"
id = 9
doc = "d"
args = [{ name = "a", type = "bytes", size = 40 }, { name = "b", type = "u64" }]
''')
    tp = load(tmp_path).by_name["wide"]
    # bytes 0..40, u64 would sit at 40..48 across the boundary at 44: moved to 48
    assert tp.field("b").offset == 48
    assert tp.nslots == 3


def test_glob_matching_is_anchored(catalog):
    assert [t.name for t in catalog.match(["mutex_lock"])] == ["mutex_lock"]
    names = {t.name for t in catalog.match(["mutex_lock*"])}
    assert names == {"mutex_lock", "mutex_lock_wait", "mutex_lock_wake"}
    assert len(catalog.match(["*"])) == len(catalog.active())


@pytest.mark.parametrize("body, message", [
    ('[[tracepoint]]\nname = "a"\nid = 1\ndoc = "d"\n[[tracepoint]]\nname = "b"\nid = 1\ndoc = "d"\n', "id 1"),
    ('[[tracepoint]]\nname = "a"\nid = 1\ndoc = "d"\nargs = [{name = "x", type = "u128"}]\n', "unknown type"),
    ('[[tracepoint]]\nname = "a"\nid = 0\ndoc = "d"\n', "id must be"),
    ('[[tracepoint]]\nname = "a"\nid = 3\n', "missing doc"),
    ('[[tracepoint]]\nname = "a"\nid = 3\ndoc = "d"\nformat = "{nope}"\n', "format"),
    ('[[tracepoint]]\nname = "a"\nid = 3\ndoc = "d"\nargs = [{name = "default", type = "u8"}]\n', "bad argument"),
    ('[enums.e]\ndefault = 1\n', "not a usable identifier"),
    ('[[tracepoint]]\nname = "a"\nid = 3\ndoc = "d"\nstack = "sometimes"\n', "stack must be one of"),
    ('[[tracepoint]]\nname = "a"\nid = 3\ndoc = "d"\nargs = [{name = "b", type = "bytes", size = 1024}, '
     '{name = "c", type = "bytes", size = 1024}, {name = "d", type = "bytes", size = 1024}, '
     '{name = "e", type = "bytes", size = 1024}, {name = "f", type = "bytes", size = 1024}, '
     '{name = "g", type = "bytes", size = 1024}, {name = "h", type = "bytes", size = 954}]\n',
     "with a stack trailer"),
    ('not toml [', "x.toml"),
])
def test_bad_schema_is_rejected_with_a_clear_message(tmp_path: Path, body, message):
    (tmp_path / "x.toml").write_text(body)
    with pytest.raises(SchemaError, match=message):
        load(tmp_path)


def test_stacks_are_optional_everywhere_but_where_the_schema_says(tmp_path: Path, catalog):
    # the default: any tracepoint may carry its stack when tracebt= picks it
    (tmp_path / "x.toml").write_text('[[tracepoint]]\nname = "a"\nid = 3\ndoc = "d"\n'
                                     '[[tracepoint]]\nname = "b"\nid = 4\ndoc = "d"\nstack = "none"\n')
    got = load(tmp_path)
    assert [t.stack for t in got.tracepoints] == ["optional", "none"]
    assert got.stack_table()[[3, 4, 5]].tolist() == [6, 0, 0]
    assert catalog.by_name["cpu_sample"].stack == "always"
    assert catalog.by_name["trace_lost"].stack == "none"
    assert catalog.by_name["mutex_lock_wait"].max_slots == 1 + 6
