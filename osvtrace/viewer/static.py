"""`osvtrace view FILE --static -o page.html`: one self-contained page for sharing a small trace.

The page is viewer/index.html with the CSS, plotly.js and the viewer's scripts inlined, and
the data the server would answer with embedded once: each lane's items, the arrows, every
item's details and each report's table, as gzip-compressed JSON in base64 (the browser
inflates it with DecompressionStream). viewer/js/lod.js then aggregates per pixel in the
browser, which is fine for the few items a small trace has. Bigger traces are refused:
every item's details are precomputed, so the page would grow with the trace.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any, Callable

from osvtrace import resources
from osvtrace.errors import UsageError
from osvtrace.format.trace import Trace
from osvtrace.viewer.api import Api

MAX_EVENTS = 50_000  # documented in docs/viewer.md
_SCRIPTS = re.compile(r"<!-- osv:scripts.*?-->(.*?)<!-- /osv:scripts -->", re.S)


def _inline_script(text: str) -> str:
    return "<script>\n" + text.replace("</script", "<\\/script") + "\n</script>"


def page_data(api: Api, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything the static page needs, as plain JSON-ready data."""
    from osvtrace.reports import registry

    say = progress or (lambda _m: None)
    lanes = api.lanes
    meta = dict(api.meta())
    # every tracepoint with events gets a lane (the page may filter by any of them)
    for tp in meta["tracepoints"]:
        lanes.tracepoint_lane(tp["name"])
    out_lanes, details = {}, {}
    say("lanes and details")
    api.details.prefetch()
    for lane in lanes.lanes:
        idx = lane.index
        out_lanes[lane.id] = {"start": idx.start.tolist(), "end": idx.end.tolist(), "key": idx.key.tolist(),
                              "row": idx.row.tolist()}
        details[lane.id] = {str(r): api.details.item(lane, r) for r in idx.row.tolist()}
    ids = [ln.id for ln in lanes.lanes]
    arrows, arrow_details = {}, {}
    for kind, a in lanes.arrows.items():
        ok = (a.l_from >= 0) & (a.l_to >= 0)
        arrows[kind] = {"t_from": a.t_from[ok].tolist(), "t_to": a.t_to[ok].tolist(),
                        "from": [ids[i] for i in a.l_from[ok].tolist()], "to": [ids[i] for i in a.l_to[ok].tolist()],
                        "row": a.row[ok].tolist()}
        arrow_details[kind] = {str(r): api.details.arrow(kind, r) for r in sorted(set(a.row[ok].tolist()))}
    say("reports")
    from osvtrace.model.filters import Filter
    from osvtrace.reports.render import viewer_json

    reports = {s.name: viewer_json(registry.run(s, api.model, Filter(), registry.options(s, {})))
               for s in registry.tables()}
    meta["static"] = True
    return {"meta": meta, "lanes": out_lanes, "details": details, "arrows": arrows, "arrow_details": arrow_details,
            "reports": reports}


def render(data: dict[str, Any], viewer_dir: Path | None = None) -> str:
    """The page's HTML with every asset inlined and the data embedded."""
    viewer_dir = viewer_dir or resources.viewer_dir()
    html = (viewer_dir / "index.html").read_text()
    css = (viewer_dir / "viewer.css").read_text()
    html = html.replace('<link rel="stylesheet" href="viewer.css">', f"<style>\n{css}\n</style>")
    m = _SCRIPTS.search(html)
    if not m:
        raise RuntimeError(f"{viewer_dir / 'index.html'}: no <!-- osv:scripts --> block")
    srcs = re.findall(r'<script src="([^"]+)"></script>', m.group(1))
    scripts = "\n".join(_inline_script((viewer_dir / s).read_text()) for s in srcs)
    blob = base64.b64encode(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 6)).decode("ascii")
    embedded = f'<script id="osv-data" type="application/octet-stream">\n{blob}\n</script>'
    return html[:m.start()] + embedded + "\n" + scripts + html[m.end():]


def check(trace: Trace) -> None:
    """Refuse a trace too big for a static page (UsageError with what to do instead)."""
    n = len(trace)
    if n > MAX_EVENTS:
        raise UsageError(f"{trace.path.name} has {n:,} events; --static pages hold at most {MAX_EVENTS:,} "
                         f"(every item's details are embedded); "
                         f"`osvtrace view {trace.path.name}` serves any size")


def write(api: Api, output: str | Path, progress: Callable[[str], None] | None = None) -> int:
    """Write the page; returns its size in bytes. Refuses traces over MAX_EVENTS events."""
    check(api.trace)
    text = render(page_data(api, progress))
    Path(output).write_text(text)
    return len(text.encode())
