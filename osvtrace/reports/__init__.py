"""Reports: each module registers its reports in registry.REGISTRY (name -> Spec: function,
options, rendering); the CLI, the shell and the viewer are built from it."""

from osvtrace.reports import critical, idle, listing, locks, memory, net, prof, sched, summary, timed, wait  # noqa: F401  (registration)
from osvtrace.reports.common import Options, Report
from osvtrace.reports.registry import REGISTRY, Opt, Spec, register

__all__ = ["REGISTRY", "Opt", "Options", "Report", "Spec", "register"]
