"""The `osvtrace` command: a thin layer over the library (one module per command group)."""

from __future__ import annotations

import sys

import click

from osvtrace import __version__
from osvtrace.errors import OsvtraceError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="osvtrace")
def cli() -> None:
    """osvtrace: trace an OSv-style unikernel under QEMU and make sense of the trace.

    \b
    Example:
      osvtrace report summary trace.osvt
    """


def _register() -> None:
    from osvtrace.cli import (catalog_cmds, completion_cmds, diff_cmds, export_cmds, gdb_cmds, load_cmds, record_cmds, report_cmds,
                              shell_cmds, slice_cmds, view_cmds, vm_cmds)

    for mod in (catalog_cmds, export_cmds, slice_cmds, diff_cmds, report_cmds, shell_cmds, view_cmds, vm_cmds, record_cmds, load_cmds,
                gdb_cmds, completion_cmds):
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and exit status 2, never a traceback;
    a result computed from a damaged or truncated file (everything intact is shown, the
    damage in warnings) exits 3."""
    from osvtrace.cli import options

    options.damaged.clear()
    try:
        cli.main(args=argv, prog_name="osvtrace", standalone_mode=False)
    except OsvtraceError as e:
        click.echo(f"osvtrace: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("osvtrace: interrupted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except BrokenPipeError:
        # output piped into `head` and friends: not an error
        try:
            sys.stdout = None  # type: ignore[assignment]
        except Exception:
            pass
        return 0
    except KeyboardInterrupt:
        click.echo("osvtrace: interrupted", err=True)
        return 130
    if options.damaged:
        return options.EXIT_DAMAGED
    return 0


if __name__ == "__main__":
    sys.exit(main())
