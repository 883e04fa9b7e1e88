"""`osvtrace diff A B --html OUT`: the comparison as one self-contained page.

The changes as a table (significant first, largest first, the rest below), and for the row
picked, the two runs' distributions drawn as percentile curves (x: percentile, y: the value,
log scale): a shift shows as one curve above the other, a worse tail as curves that part at the
right. plotly.js is the viewer's vendored bundle, inlined like the static viewer page's, so the
page opens from a file with no server and nothing fetched.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from osvtrace import resources
from osvtrace.reports.diff import Change, Diff

MAX_ROWS = 500  # the page lists at most this many comparisons (all significant ones first)

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>osvtrace diff</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 16px; margin: 0 0 4px; } .sub { color: #666; margin-bottom: 12px; }
table { border-collapse: collapse; width: 100%; } th, td { padding: 3px 6px; text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: #f4f4f4; } td.k, th.k { text-align: left; max-width: 38em;
overflow: hidden; text-overflow: ellipsis; } tr.row { cursor: pointer; } tr.row:hover { background: #eef4ff; }
tr.sel { background: #dbe8ff; } tr.sig td.r { font-weight: 600; } .up { color: #b00020; } .down { color: #0a7d32; }
#plot { height: 340px; margin: 10px 0 14px; } #wrap { max-height: 50vh; overflow: auto; border: 1px solid #ddd; }
.note { color: #8a5a00; margin: 4px 0; }
</style>
<script>@@PLOTLY@@</script>
</head><body>
<h1>What changed from A to B</h1>
<div class="sub">A <code>@@A_NAME@@</code> &nbsp; B <code>@@B_NAME@@</code><br>@@SUMMARY@@</div>
@@NOTES@@
<div id="plot"></div>
<div id="wrap"><table id="changes"><thead><tr><th class="k">kind</th><th class="k">key</th><th class="k">metric</th>
<th>n A</th><th>n B</th><th>p50 A</th><th>p50 B</th><th>p50</th><th>p99 A</th><th>p99 B</th><th>p99</th><th>p</th>
</tr></thead><tbody></tbody></table></div>
<script>
const DATA = @@DATA_JSON@@;
function fmt(v, unit) {
  if (unit !== "ns") return v.toFixed(1) + unit;
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "s"; if (a >= 1e6) return (v / 1e6).toFixed(2) + "ms";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "us"; return Math.round(v) + "ns";
}
function times(r) { return r === null ? "new" : r === 0 ? "gone" : r.toFixed(2) + "x"; }
const body = document.querySelector("#changes tbody");
DATA.rows.forEach((c, i) => {
  const tr = document.createElement("tr");
  tr.className = "row" + (c.significant ? " sig" : ""); tr.dataset.i = i;
  const cls = r => r === null || r > 1 ? "r up" : r < 1 ? "r down" : "r";
  const cells = [[c.kind, "k"], [c.key, "k"], [c.metric, "k"], [c.a.n.toLocaleString(), ""], [c.b.n.toLocaleString(), ""],
    [fmt(c.a.p50, c.unit), ""], [fmt(c.b.p50, c.unit), ""], [times(c.ratio_p50), cls(c.ratio_p50)],
    [fmt(c.a.p99, c.unit), ""], [fmt(c.b.p99, c.unit), ""], [times(c.ratio_p99), cls(c.ratio_p99)],
    [c.p_value === null ? "-" : c.p_value.toExponential(1), ""]];
  for (const [text, k] of cells) { const td = document.createElement("td"); td.textContent = text; td.className = k;
    if (k === "k") td.title = text; tr.appendChild(td); }
  tr.addEventListener("click", () => show(i));
  body.appendChild(tr);
});
function show(i) {
  document.querySelectorAll("tr.sel").forEach(t => t.classList.remove("sel"));
  const tr = body.querySelector(`tr[data-i="${i}"]`); if (tr) tr.classList.add("sel");
  const c = DATA.rows[i], pct = [...Array(101).keys()], traces = [];
  if (c.qa.length) traces.push({x: pct, y: c.qa, name: "A", mode: "lines", line: {color: "#4a6fa5"}});
  if (c.qb.length) traces.push({x: pct, y: c.qb, name: "B", mode: "lines", line: {color: "#d1495b"}});
  const log = c.unit === "ns" && traces.some(t => t.y.some(v => v > 0));
  Plotly.react("plot", traces, {title: {text: `${c.kind} ${c.key}: ${c.metric}`, font: {size: 13}},
    margin: {l: 70, r: 20, t: 36, b: 40}, xaxis: {title: "percentile"},
    yaxis: {title: c.unit === "ns" ? "ns" : c.unit, type: log ? "log" : "linear"}, legend: {orientation: "h"}},
    {displaylogo: false, responsive: true});
  window.osvDiffShown = i;
}
if (DATA.rows.length) show(0); else document.getElementById("plot").textContent = "nothing to compare";
</script></body></html>
"""


def _num(v: float) -> float | None:
    return None if (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) else v


def _row(c: Change) -> dict:
    d = c.as_dict()
    d["p_value"] = _num(c.p_value)
    d["ratio_p50"], d["ratio_p99"] = _num(c.ratio_p50), _num(c.ratio_p99)
    d["effect"] = _num(c.effect)
    # a rate has no distribution: its "curve" is flat at the rate
    d["qa"] = [float(x) for x in c.a.q.tolist()] if len(c.a.q) else ([c.a.p50] * 101 if c.a.n else [])
    d["qb"] = [float(x) for x in c.b.q.tolist()] if len(c.b.q) else ([c.b.p50] * 101 if c.b.n else [])
    return d


def write(d: Diff, out: Path) -> Path:
    """Write the page for d to out."""
    plotly = (resources.viewer_dir() / "vendor" / "plotly-cartesian.min.js").read_text()
    rows = [_row(c) for c in d.changes[:MAX_ROWS]]
    summary = (f"{len(d.significant)} significant change(s) of {len(d.changes)} compared (rank test p &lt; "
               f"{d.alpha:g}/{d.tests}, and the median or p99 moved &ge; {d.min_change:.0%}); click a row for its "
               f"distributions" + (f"; the first {MAX_ROWS} listed" if len(d.changes) > MAX_ROWS else ""))
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in d.notes)
    data = json.dumps({"rows": rows}, allow_nan=False).replace("</", "<\\/")
    # the bundle goes in last: no placeholder is looked for inside it
    page = (_PAGE.replace("@@A_NAME@@", html.escape(d.a)).replace("@@B_NAME@@", html.escape(d.b))
            .replace("@@SUMMARY@@", summary).replace("@@NOTES@@", notes).replace("@@DATA_JSON@@", data)
            .replace("@@PLOTLY@@", plotly.replace("</script", "<\\/script")))
    out.write_text(page)
    return out
