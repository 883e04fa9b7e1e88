"""scripts/test_repeat.py (make test-repeat) counts failures from pytest's JUnit XML."""

from __future__ import annotations

import importlib.util

from tests.support.vm import ROOT

spec = importlib.util.spec_from_file_location("test_repeat", ROOT / "scripts" / "test_repeat.py")
tr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tr)

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.kernel.test_mutex_app" name="test_lhp_app_preempts_lock_holders" time="3.1">
  <failure message="assert 0 &gt; 0">...</failure></testcase>
<testcase classname="tests.kernel.test_smp_vm" name="test_all_cpus_come_up[4]" time="1.0"/>
<testcase classname="tests.cli.test_cli" name="test_x" time="0.1"><skipped message="no"/></testcase>
<testcase classname="tests.reports.test_reports.TestLhp" name="test_y" time="0.1"/>
<testcase classname="tests.reports.test_reports.TestLhp" name="test_y" time="0.1"><error message="teardown"/></testcase>
</testsuite></testsuites>"""


def test_node_ids_and_failures_from_junit_xml(tmp_path):
    x = tmp_path / "run.xml"
    x.write_text(XML)
    tests, failed = tr.read_run(x)
    assert tests == ["tests/kernel/test_mutex_app.py::test_lhp_app_preempts_lock_holders",
                     "tests/kernel/test_smp_vm.py::test_all_cpus_come_up[4]", "tests/cli/test_cli.py::test_x",
                     "tests/reports/test_reports.py::TestLhp::test_y"]
    # a failure in the call, and an error in teardown (pytest's second testcase of that test)
    assert failed == ["tests/kernel/test_mutex_app.py::test_lhp_app_preempts_lock_holders",
                      "tests/reports/test_reports.py::TestLhp::test_y"]
