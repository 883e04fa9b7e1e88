"""Reports: each module registers its reports in common.REGISTRY (name -> function, doc)."""

from osvtrace.reports import locks, net, sched, wait  # noqa: F401  (registration)
from osvtrace.reports.common import REGISTRY, Options, Report

__all__ = ["REGISTRY", "Options", "Report"]
