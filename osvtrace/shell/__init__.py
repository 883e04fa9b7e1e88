"""The interactive shell (`osvtrace shell FILE`): reports, SQL, filters and timelines at a
prompt_toolkit prompt, and a live top-like screen (`osvtrace shell --live`).

>>> from osvtrace.shell import Shell
>>> Shell(osvtrace.open("trace.osvt")).run()
"""

from osvtrace.shell.repl import Shell

__all__ = ["Shell"]
