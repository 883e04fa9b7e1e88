"""`osvtrace completion bash|zsh|fish`: the shell completion script (click's), and the
completers of option values that click cannot guess (tracepoint globs, export formats)."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_OSVTRACE_COMPLETE"  # click's convention: _{PROG}_COMPLETE


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    It completes commands, report kinds, options, choices, tracepoint names after --tp,
    export formats after --format, and file paths for trace files. It asks `osvtrace`
    itself at each Tab, so it stays right when commands change.

    \b
    Example:
      eval "$(osvtrace completion bash)"     # in ~/.bashrc
      eval "$(osvtrace completion zsh)"      # in ~/.zshrc, after compinit
      osvtrace completion fish > ~/.config/fish/completions/osvtrace.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # SHELLS are click's own
    click.echo(cls(root, {}, "osvtrace", COMPLETE_VAR).source().rstrip("\n"))


def complete_tracepoints(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Tracepoint names of the schema, after any globs already typed before a comma."""
    from osvtrace.catalog.schema import default_catalog

    head, _, last = incomplete.rpartition(",")
    head = head + "," if head else ""
    try:
        tps = default_catalog().active()
    except Exception:  # completion never fails loudly
        return []
    return [CompletionItem(head + tp.name, help=tp.doc) for tp in tps if tp.name.startswith(last)]


def complete_export_formats(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from osvtrace.exports import FORMATS, load_plugins

    load_plugins()
    return [CompletionItem(n, help=f.doc) for n, f in sorted(FORMATS.items()) if n.startswith(incomplete)]


COMMANDS = [completion]
