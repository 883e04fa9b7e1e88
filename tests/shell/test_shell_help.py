"""Help lives in the commands' docstrings; every command has one, with usage, and docs/shell.md
names every command that is not a report (reports share one row there)."""

from __future__ import annotations

from osvtrace.reports import REGISTRY
from osvtrace.shell.commands import COMMANDS
from tests.support.traces import ROOT


def test_every_command_has_help_with_usage():
    for name, cmd in COMMANDS.items():
        assert cmd.summary and cmd.summary.endswith("."), name
        assert f"Usage: {name}" in cmd.doc, name


def test_every_report_is_a_command():
    assert set(REGISTRY) <= set(COMMANDS)


def test_docs_name_every_command():
    doc = (ROOT / "docs" / "shell.md").read_text()
    for name in COMMANDS:
        if name not in REGISTRY:
            assert f"`{name}" in doc, f"docs/shell.md does not describe `{name}`"
