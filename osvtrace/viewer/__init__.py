"""The browser viewer: a level-of-detail JSON API over a trace's model (api, lanes, lod,
details), a small HTTP server for it and viewer/ (server), and a self-contained page
writer for small traces (static).

>>> from osvtrace.viewer import Viewer
>>> v = Viewer.open("trace.osvt")
>>> v.api.handle("view", {"t0": ["0"], "t1": ["1000000"], "px": ["800"]})
"""

from __future__ import annotations

import os

from osvtrace.viewer.api import Api, ApiError

__all__ = ["Api", "ApiError", "Viewer"]


class Viewer:
    """A trace opened for viewing: its model, lanes and API."""

    def __init__(self, api: Api):
        self.api = api

    @classmethod
    def open(cls, path: str | os.PathLike, *, prepare: bool = True) -> "Viewer":
        from osvtrace.format import trace as trace_file
        from osvtrace.model import Model

        api = Api(Model(trace_file.open(path)))
        if prepare:
            prepare_indexes(api)
        return cls(api)


def prepare_indexes(api: Api) -> None:
    """Build every default lane's index, the arrows and the first report now, so the page's
    first requests are fast."""
    for lane in api.lanes.lanes:
        if lane.default:
            lane.index  # noqa: B018
    api.lanes.arrows  # noqa: B018
    meta = api.meta()
    if meta["default_report"]:
        api.report({"name": [meta["default_report"]]})
