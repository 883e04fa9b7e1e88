// The reports' tables (osvtrace report KIND): pick one, for the whole trace or the visible range.
(function (osv) {
  "use strict";
  const F = () => osv.format;
  const MAX_SHOWN = 500;

  function cell(v, kind) {
    if (v === null || v === undefined) return "";
    if (kind === "ns") return v < 0 ? "-" : F().duration(v);
    if (kind === "time") return v < 0 ? "-" : F().seconds(v);
    if (kind === "pct") return `${(+v).toFixed(1)}%`;
    if (kind === "addr") return F().hex(v);
    if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString() : v.toPrecision(3);
    return String(v);
  }

  class Reports {
    constructor(el, backend, meta, getRange) {
      this.el = el; this.backend = backend; this.meta = meta; this.getRange = getRange;
      const opts = meta.reports.map((r) => `<option value="${F().esc(r.name)}" title="${F().esc(r.doc)}">${F().esc(r.name)}</option>`).join("");
      el.innerHTML = `<div class="report-bar"><h2>Reports</h2>
        <select id="report-name" aria-label="report">${opts}</select>
        <label class="toggle"><input type="checkbox" id="report-range" ${backend.static ? "disabled" : ""}>
          visible range only</label>
        <span id="report-doc" class="hint"></span></div>
        <div id="report-out" class="report-out"></div>`;
      this.sel = el.querySelector("#report-name");
      if (meta.default_report) this.sel.value = meta.default_report;
      this.range = el.querySelector("#report-range");
      this.sel.addEventListener("change", () => this.load());
      this.range.addEventListener("change", () => this.load());
    }

    async load() {
      const name = this.sel.value;
      const doc = this.meta.reports.find((r) => r.name === name);
      this.el.querySelector("#report-doc").textContent = doc ? doc.doc : "";
      const out = this.el.querySelector("#report-out");
      out.innerHTML = `<p class="hint">computing ${F().esc(name)}…</p>`;
      try {
        const r = this.range.checked ? await this.backend.report(name, ...this.getRange())
          : await this.backend.report(name);
        const head = r.columns.map((c) => `<th>${F().esc(c)}</th>`).join("");
        const body = r.rows.slice(0, MAX_SHOWN).map((row) => "<tr>" + row.map((v, i) => {
          const k = r.kinds[r.columns[i]];
          const num = typeof v === "number" && k !== "addr";
          return `<td class="${num || k === "ns" || k === "pct" ? "num" : ""}">${F().esc(cell(v, k))}</td>`;
        }).join("") + "</tr>").join("");
        const more = r.total > Math.min(r.rows.length, MAX_SHOWN)
          ? `<p class="hint">${(r.total - Math.min(r.rows.length, MAX_SHOWN)).toLocaleString()} more rows: use
             <code>osvtrace report ${F().esc(name)} FILE --csv</code></p>` : "";
        out.innerHTML = `<h3>${F().esc(r.title)}</h3><table class="report"><thead><tr>${head}</tr></thead>
          <tbody>${body || `<tr><td colspan="${r.columns.length}" class="hint">(no rows)</td></tr>`}</tbody></table>${more}
          ${(r.notes || []).map((n) => `<p class="hint">${F().esc(n)}</p>`).join("")}`;
      } catch (e) {
        out.innerHTML = `<p class="error">${F().esc(e.message)}</p>`;
      }
    }
  }

  osv.Reports = Reports;
})(window.osv = window.osv || {});
