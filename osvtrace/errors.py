"""Errors a user can cause: each carries one clear line saying what and where."""

from __future__ import annotations


class OsvtraceError(Exception):
    """Base of every user-facing error; the CLI prints str(e) and exits with ``exit_code``."""

    exit_code = 2


class TraceFormatError(OsvtraceError):
    """A file is not a readable .osvt trace (wrong file, unknown version, damaged header)."""


class UsageError(OsvtraceError):
    """A request that cannot be satisfied as asked (unknown tracepoint, bad filter ...)."""
