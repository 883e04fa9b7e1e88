"""`osvtrace record --kernel osv`: real OSv booted from its image under QEMU TCG, its trace
buffers taken whole by a gdb snapshot at the app's end, saved as an OSVT dump that
osvtrace's reports and OSv's own scripts/trace.py read with the same counts.

The VM tests run whenever the OSv source is there (../shared/osv or $OSV_SRC) and fail
under CI=true when it is not (tests/support/osv.py require_osv); the bad-input tests need
no OSv at all.
"""

from __future__ import annotations

import json
import os

import pytest

import osvtrace
from tests.support.osv import build, build_rest, tracepoint_counts
from tests.support.osv_traces import parse_summary, tracepy_summary
from tests.support.vm import osvtrace as cli

OSV_MARKS = (pytest.mark.qemu, pytest.mark.osv, pytest.mark.usefixtures("no_orphans"))


def osv_vm(test):
    """The marks of a test that boots OSv to record it."""
    for mark in OSV_MARKS:
        test = mark(test)
    return test


APP = ("/mutexnet", "2000", "2")  # contended mutex, condvar ping-pong, UDP loopback on 2 threads


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One recording of /mutexnet on 2 vCPUs (shared by the tests that read it)."""
    tree = build()
    out = tmp_path_factory.mktemp("osvrec") / "mutexnet.osvt"
    r = cli("record", "--kernel", "osv", "--smp", "2", "--json", "-o", str(out), *APP, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return tree, out, json.loads(r.stdout)


@osv_vm
def test_record_osv_saves_every_cpus_buffer_as_a_dump_trace_py_reads_with_the_same_counts(recorded):
    tree, out, doc = recorded
    assert doc["via"] == "gdb" and doc["kernel"] == "osv" and doc["stop"] == "app-exit" and doc["cpus"] == 2
    assert doc["buffer_bytes"] == 4 << 20  # OSv: 4 MiB in all up to 4 vCPUs
    assert "--rootfs=rofs" in doc["cmdline"] and "--trace=sched*" in doc["cmdline"]
    with osvtrace.open(out) as t:
        assert t.kind == "osv-dump" and t.ncpus == 2 and len(t) == doc["events"] > 1000
        rings = t.rings
        assert sorted(rings) == [0, 1] and all(r.size == 2 << 20 and r.records > 0 for r in rings.values())
        assert sum(r.records for r in rings.values()) == len(t)
        # where each CPU's data starts is known, and a wrapped ring says so
        assert set(t.cpu_starts()) == {0, 1}
        for r in rings.values():
            assert r.wrapped == any(f"cpu{r.cpu}'s ring" in w for w in t.warnings)
        ours = tracepoint_counts(t)
    theirs = parse_summary(tracepy_summary(tree, out))
    assert ours == theirs
    names = dict(ours)
    assert names.get("mutex_lock", 0) > 100 and names.get("sched_switch", 0) > 100


@osv_vm
def test_reports_on_a_recorded_osv_trace_agree_with_its_records(recorded):
    _tree, out, doc = recorded
    r = cli("report", "summary", "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summ = json.loads(r.stdout)
    assert summ["events"] == doc["events"] and summ["cpus"] == 2
    with osvtrace.open(out) as t:
        counts = tracepoint_counts(t)
    assert sorted((row["tracepoint"], row["count"]) for row in summ["tracepoints"]) == counts
    for report, words in (("sched", ("cpu_time", "/mutexnet")), ("mutex", ("acquisitions", "contended"))):
        r = cli("report", report, str(out))
        assert r.returncode == 0, r.stderr[-2000:]
        assert all(w in r.stdout for w in words) and len(r.stdout.splitlines()) > 3, r.stdout[:2000]


def test_record_osv_without_an_osv_build_says_so_in_one_line(tmp_path):
    env = dict(os.environ, OSV_BUILD_DIR=str(tmp_path / "none"))
    r = cli("record", "--kernel", "osv", "-o", str(tmp_path / "x.osvt"), "/mutexnet", env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "no OSv build" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.osvt").exists()


def test_record_osv_refuses_an_elf_that_is_not_osv(tmp_path):
    img = tmp_path / "usr.img"
    img.write_bytes(b"\0" * 4096)
    for elf in ("/bin/true", str(img)):
        r = cli("record", "--kernel", "osv", "--image", str(img), "--elf", elf, "-o", str(tmp_path / "x.osvt"),
                "/mutexnet")
        assert r.returncode == 2, r.stderr
        assert "not an OSv kernel ELF" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_kernel_option_takes_a_name_or_keeps_taking_an_elf_path(tmp_path):
    from osvtrace.cli.vm_cmds import kernel_choice
    from osvtrace.errors import UsageError

    assert kernel_choice(None, None) == ("osvtrace", None)
    assert kernel_choice("osv", None) == ("osv", None)
    elf = tmp_path / "kernel.elf"
    elf.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert kernel_choice(str(elf), None) == ("osvtrace", elf)  # the older spelling of --elf
    with pytest.raises(UsageError, match="neither a kernel"):
        kernel_choice("linux", None)
    r = cli("run", "--kernel", "osv", "hello")
    assert r.returncode == 2 and "record --kernel osv" in r.stderr


def test_record_osv_rejects_options_of_our_kernel(tmp_path):
    r = cli("record", "--kernel", "osv", "--tracebuf", "16M", "-o", str(tmp_path / "x.osvt"), "/mutexnet")
    assert r.returncode == 2 and "--tracebuf" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    r = cli("record", "--kernel", "osv", "--via", "virtio", "-o", str(tmp_path / "x.osvt"), "/mutexnet")
    assert r.returncode == 2 and "--via gdb" in r.stderr, r.stderr


@osv_vm
def test_record_osv_via_shm_copies_the_rings_while_it_runs_and_counts_what_it_lost(tmp_path):
    tree = build()
    out = tmp_path / "shm.osvt"
    # 20000 iterations: the rings (2 MiB per CPU) wrap many times over; the poll keeps them
    r = cli("record", "--kernel", "osv", "--via", "shm", "--smp", "2", "--json", "-o", str(out), "/mutexnet", "20000",
            "2", timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["via"] == "shm" and doc["stop"] == "app-exit" and doc["cpus"] == 2
    written = sum(doc["ring_bytes_written"].values())
    assert written > 2 * (2 << 20)  # more than both rings hold: a snapshot could not have kept it all
    with osvtrace.open(out) as t:
        assert len(t) == doc["events"]
        rings = t.rings
        for c, info in rings.items():
            lost = doc["lost_bytes"][str(c)] + doc["before_capture_bytes"][str(c)]
            assert info.lost == lost
            # every byte the ring received is either kept (records, or page-end padding) or counted lost
            assert info.kept + lost <= info.last and info.last - info.kept - lost < info.last // 20 + 4096
        counts = tracepoint_counts(t)
    assert parse_summary(tracepy_summary(tree, out)) == counts


@osv_vm
def test_record_osv_duration_snapshots_a_running_app_counted_from_its_start(tmp_path):
    build()
    out = tmp_path / "dur.osvt"
    # phase 1 alone runs for minutes here: only --duration ends this recording
    r = cli("record", "--kernel", "osv", "--smp", "2", "--duration", "3", "--json", "-o", str(out), "/mutexnet",
            "400000", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["stop"] == "duration" and doc["cpus"] == 2 and doc["events"] > 1000
    with osvtrace.open(out) as t:
        assert len(t) == doc["events"] and "mutex_lock" in {tp.name for tp in t.catalog.tracepoints}


@osv_vm
def test_record_osv_says_when_the_vm_is_not_osv(tmp_path):
    tree = build()
    img = tmp_path / "blank.img"
    img.write_bytes(bytes(1 << 20))  # boots nothing: SeaBIOS finds no boot sector, OSv never prints its banner
    env = dict(os.environ, OSVTRACE_OSV_BANNER_S="5")
    r = cli("record", "--kernel", "osv", "--image", str(img), "--elf", str(tree / "build/release/loader.elf"),
            "-o", str(tmp_path / "x.osvt"), "/mutexnet", env=env, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "the VM is not OSv" in r.stderr and "Traceback" not in r.stderr and not (tmp_path / "x.osvt").exists()


@osv_vm
def test_record_osv_fails_when_osv_cannot_start_the_app(tmp_path):
    build()
    r = cli("record", "--kernel", "osv", "-o", str(tmp_path / "x.osvt"), "/no-such-app", timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Failed to load object: /no-such-app" in r.stdout and "refused to start the app" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.osvt").exists()


def _record_on_rest_image(tree, out, *words: str):
    """record --kernel osv --json on the REST image; a guest idle for 8 s counts as stalled."""
    env = dict(os.environ, OSVTRACE_OSV_STALL_S="8")
    return cli("record", "--kernel", "osv", "--image", str(tree / "build/release/usr.img"), "--smp", "2", "--json",
               "-o", str(out), *words, env=env, timeout=400)


@osv_vm
def test_record_osv_keeps_the_trace_and_says_so_when_the_guest_stalls_before_the_apps_end(tmp_path):
    tree = build_rest()
    out = tmp_path / "stall.osvt"
    # OSv's HTTP server as the app (--noinit: /init's own copy stays out): it never ends and,
    # with no client, OSv sits idle; OSv's options go before the app, as OSv parses them
    r = _record_on_rest_image(tree, out, "--", "--noinit", "/libhttpserver-api.so")
    assert r.returncode == 3, r.stderr[-3000:]
    assert "Rest API server running" in r.stderr  # the console (stderr with --json): the app did start
    err = r.stderr.strip().splitlines()[-1]
    # the app is the first word that is not one of OSv's options
    assert "no progress for" in err and "elf::program::remove_object (/libhttpserver-api.so)" in err, err
    assert "do_idle" in err and f"the trace up to the stall is in {out}" in err, err
    doc = json.loads(r.stdout)
    assert doc["stop"] == "stalled" and doc["cpus"] == 2
    with osvtrace.open(out) as t:
        assert len(t) == doc["events"] > 0
        assert "sched_switch" in dict(tracepoint_counts(t))


@osv_vm
def test_record_osv_ends_with_the_trace_whether_osv_crashes_idles_or_ends(tmp_path):
    tree = build_rest()
    out = tmp_path / "two.osvt"
    # a second HTTP server beside the one /init starts (the two share one copy of the server's
    # globals): OSv either aborts (a page fault, a failed assertion) and halts, or the second fails
    # to bind and ends while the first serves on; then mostly the app's end never comes (its
    # object stays loaded), but its object can also be unloaded, and then the app ends (seen once).
    # Each way the recording ends, with the trace, and says which.
    # --timeout: should it go otherwise, the recorder's own limit ends it, console in the failure
    r = _record_on_rest_image(tree, out, "--timeout", "180", "/libhttpserver-api.so")
    last = r.stderr.strip().splitlines()[-1]
    if "[backtrace]" in r.stderr:  # OSv's abort() (a fault, a failed assertion), then osv::halt's breakpoint
        assert r.returncode == 255, r.stderr[-3000:]  # EXIT_PANIC
        assert last == f"osvtrace: kernel panic; the trace up to it is in {out}", last
        stop = "panic"
    elif r.returncode == 0:  # the failed server's object was unloaded: the app's end came
        assert "httpserver failed: bind: Address in use" in r.stderr, r.stderr[-3000:]
        stop = "app-exit"
    else:
        assert "httpserver failed: bind: Address in use" in r.stderr and r.returncode == 3, r.stderr[-3000:]
        assert "no progress for" in last and f"the trace up to the stall is in {out}" in last, last
        stop = "stalled"
    doc = json.loads(r.stdout)
    assert doc["stop"] == stop and doc["cpus"] == 2
    with osvtrace.open(out) as t:
        assert len(t) == doc["events"] > 0
