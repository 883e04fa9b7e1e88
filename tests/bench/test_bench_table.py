"""The benchmark summary and page (tests/bench/__main__.py) on hand-made rows: no QEMU, no peers."""

from __future__ import annotations

import pytest

from tests.bench import __main__ as bench


def comparison(name: str, ours: float, peer: float, better: str, ok: bool | None, bench_name: str = "peers_x",
               target: str = ">= 5x") -> dict:
    return {"name": name, "value": str(ours), "unit": "u", "ours": ours, "peer": peer, "peer_name": "Peer",
            "better": better, "ratio": 999.0, "target": target, "ok": ok, "note": "", "bench": bench_name,
            "date": "2026-01-02", "machine": "m", "command": f"python -m tests.bench {bench_name}"}


def plain(name: str, value: str, bench_name: str, target: str = "", ok: bool | None = None) -> dict:
    return {"name": name, "value": value, "unit": "ms", "target": target, "ok": ok, "note": "", "bench": bench_name,
            "date": "2026-01-01", "machine": "m", "command": f"python -m tests.bench {bench_name}"}


def test_ratio_is_how_many_times_better_ours_is_in_either_direction():
    assert bench.ratio(comparison("rate", 30.0, 3.0, "higher", True)) == pytest.approx(10.0)
    assert bench.ratio(comparison("cost", 10.0, 80.0, "lower", True)) == pytest.approx(8.0)
    # worse than the peer: below 1 whichever way the unit improves
    assert bench.ratio(comparison("rate", 1.0, 4.0, "higher", False)) == pytest.approx(0.25)
    assert bench.ratio(comparison("cost", 4.0, 1.0, "lower", False)) == pytest.approx(0.25)


def test_ratio_falls_back_to_the_rows_own_when_figures_are_missing():
    row = {"name": "x", "ratio": 3.5}
    assert bench.ratio(row) == 3.5
    assert bench.ratio({"name": "no comparison"}) is None
    assert bench.ratio(comparison("zero", 0.0, 5.0, "higher", None)) == 0.0
    assert bench.ratio(comparison("zero cost", 0.0, 5.0, "lower", None)) is None  # no division by zero


def test_page_opens_with_side_by_side_rows_that_carry_a_ratio_only():
    results = {"a": comparison("decode vs X", 30.0, 3.0, "higher", True),
               "b": comparison("cost vs Y", 4.0, 1.0, "lower", False),
               "c": plain("boot", "40", "boot", "<= 100 ms", True)}
    page = bench.render(results)
    side = page.split("## Side by side", 1)[1].split("## Key figures", 1)[0]
    assert "| decode vs X | 30 u | 3 u | Peer | 10.0x | >= 5x | yes |" in side
    assert "| cost vs Y | 4 u | 1 u | Peer | 0.25x | >= 5x | **no** |" in side
    assert "boot" not in side
    assert page.index("## Side by side") < page.index("## boot")


def test_key_figures_never_measured_show_as_not_measured():
    results = {"v": plain("1M: first paint after the page opens", "900", "viewer", "<= 3000 ms", True)}
    page = bench.render(results)
    assert "| viewer: 1M: first paint after the page opens | 900 ms | <= 3000 ms | yes |" in page
    assert "| capture: gdb snapshot | not measured |" in page
    text = bench.summary([], results)
    assert "capture: gdb snapshot" in text and "not measured" in text
    assert "saved, 2026-01-01" in text  # the viewer figure came from an earlier run


def test_summary_lists_this_runs_comparisons_with_met_and_not_met():
    run = [comparison("decode vs X", 30.0, 3.0, "higher", True), comparison("cost vs Y", 4.0, 1.0, "lower", False),
           plain("boot", "40", "boot", "<= 100 ms", False)]
    text = bench.summary(run, {})
    side, targets = text.split("Targets and key figures")
    line_x = next(x for x in side.splitlines() if x.startswith("decode vs X"))
    line_y = next(x for x in side.splitlines() if x.startswith("cost vs Y"))
    assert "10.0x" in line_x and line_x.rstrip().endswith("yes")
    assert "0.25x" in line_y and line_y.rstrip().endswith("NO")
    line_boot = next(x for x in targets.splitlines() if x.startswith("boot: boot"))
    assert "NO" in line_boot and "this run" in line_boot


def test_summary_says_so_when_the_run_had_no_comparison():
    assert "(no comparison in this run)" in bench.summary([plain("boot", "40", "boot")], {})


def test_subset_names_select_benchmarks_by_name_or_first_word():
    names = ["boot", "decode", "peers_decode", "peers_tracepoint"]
    assert bench.resolve([], names) == names
    assert bench.resolve(["decode", "peers"], names) == ["decode", "peers_decode", "peers_tracepoint"]
    with pytest.raises(ValueError, match="no benchmark 'nope'"):
        bench.resolve(["nope"], names)


def test_a_missing_peer_is_named_by_its_package():
    peers = {"no-such-package": "osvtrace-no-such-command", "coreutils": "ls",
             "python3-no-such": "python3:osvtrace_no_such_module"}
    assert bench.missing_peers(peers) == ["no-such-package", "python3-no-such"]


def test_every_benchmarks_rows_of_other_runs_survive_a_partial_save(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "b.json")
    monkeypatch.setattr(bench, "DOC", tmp_path / "b.md")
    bench.save("boot", [plain("boot", "40", "boot")])
    bench.save("peers_x", [comparison("decode vs X", 30.0, 3.0, "higher", True)])
    bench.save("peers_x", [comparison("decode vs X", 20.0, 4.0, "higher", True)])
    page = (tmp_path / "b.md").read_text()
    assert "## boot" in page and "| decode vs X | 20 u | 4 u | Peer | 5.0x |" in page
