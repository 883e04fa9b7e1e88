// The flame graph panel (icicle: callers on top): a profile's call tree from /api/flame
// (CPU samples, blocked time, lock wait or hold) for the visible range, a thread or a lock.
// Drawn as one plotly bar trace, a bar per node at its level (y) from its left edge (base)
// for its weight (x): the server laid the tree out, the page only draws it. Clicking a
// frame asks /api/flame-hits where it was on the stack and hands that to the timeline.
(function (osv) {
  "use strict";
  const F = () => osv.format;
  const ROW = 20;  // px per level
  const WARM = ["#e4572e", "#f28e2b", "#f1a340", "#e8b04b", "#d9733b", "#f0b27a", "#e07a5f", "#f4a261", "#eb8c3a",
                "#d95f3b"];

  function hue(name) {  // a frame keeps its colour from graph to graph
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return WARM[Math.abs(h) % WARM.length];
  }

  function amount(v, metric) {
    return metric === "ns" ? F().duration(v) : `${v.toLocaleString()} sample${v === 1 ? "" : "s"}`;
  }

  class Flame {
    constructor(el, backend, meta, hooks) {
      this.el = el; this.backend = backend; this.meta = meta; this.hooks = hooks;
      this.open = false; this.data = null; this.selected = null; this.seq = 0; this.timer = null;
      const kinds = meta.flame_kinds.map((k) => `<option value="${k.kind}">${F().esc(k.label)}</option>`).join("");
      const threads = meta.threads.map((t) =>
        `<option value="${t.tid}">${F().esc(t.name)} [${t.tid}]</option>`).join("");
      const locks = meta.mutexes.map((m) => `<option value="${m.mutex}">${F().esc(m.mutex)}</option>`).join("");
      el.innerHTML = `<div class="flame-bar"><h2>Flame graph</h2>
        <select id="flame-kind" aria-label="what is weighed">${kinds}</select>
        <select id="flame-thread" aria-label="thread"><option value="">all threads</option>${threads}</select>
        <select id="flame-lock" aria-label="lock"><option value="">all locks</option>${locks}</select>
        <label class="toggle"><input type="checkbox" id="flame-range" checked> visible range only</label>
        <button id="flame-clear" title="clear the highlight on the timeline">clear highlight</button>
        <span id="flame-status" class="hint"></span></div>
        <div id="flame-plot"></div><div id="flame-notes"></div>`;
      this.kind = el.querySelector("#flame-kind");
      this.thread = el.querySelector("#flame-thread");
      this.lock = el.querySelector("#flame-lock");
      this.range = el.querySelector("#flame-range");
      this.plot = el.querySelector("#flame-plot");
      for (const s of [this.kind, this.thread, this.lock, this.range]) s.addEventListener("change", () => this.load());
      el.querySelector("#flame-clear").addEventListener("click", () => this.clearHits());
      this.plotReady = false;
    }

    toggle() {
      this.open = !this.open;
      this.el.hidden = !this.open;
      if (this.open) this.load();
      else this.clearHits();
      return this.open;
    }

    // the search filter changed: a filter of one thread (one mutex) narrows the graph to it
    follow(threads, mutexes) {
      const one = (set) => (set.size === 1 ? String(Array.from(set)[0]) : "");
      const t = one(threads), m = one(mutexes);
      const changed = this.thread.value !== t || this.lock.value !== m;
      this.thread.value = t;
      this.lock.value = m;
      if (changed && this.open) this.load();
    }

    // the visible range moved: follow it (after a pause, so a drag costs one request)
    rangeChanged() {
      if (!this.open || !this.range.checked) return;
      const [a, b] = this.hooks.getRange();
      if (this.asked && this.asked.t0 === Math.round(a) && this.asked.t1 === Math.round(b)) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(), 250);
    }

    params() {
      const p = { kind: this.kind.value };
      if (this.range.checked) {
        const [a, b] = this.hooks.getRange();
        p.t0 = Math.round(a); p.t1 = Math.round(b);
      }
      if (this.thread.value) p.thread = this.thread.value;
      if (this.lock.value && p.kind !== "prof") p.lock = this.lock.value;
      return p;
    }

    async load() {
      this.lock.disabled = this.kind.value === "prof";
      const seq = ++this.seq;
      const status = this.el.querySelector("#flame-status"), notes = this.el.querySelector("#flame-notes");
      status.textContent = "computing…";
      try {
        const p = this.params();
        const d = await this.backend.flame(p);
        if (seq !== this.seq) return;  // a newer request is on its way
        this.data = d; this.asked = p; this.selected = null;
        const pr = d.pruned.nodes ? ` (${d.pruned.nodes.toLocaleString()} pruned: ` +
          `${(100 * d.pruned.value / Math.max(d.total, 1)).toFixed(1)}% of the width left blank)` : "";
        status.textContent = d.empty ? "" : `${d.source}: ${amount(d.total, d.metric)}` +
          ` · ${d.nodes.name.length.toLocaleString()} frames${pr}`;
        notes.innerHTML = (d.empty ? `<p class="flame-empty">${F().esc(d.empty)}</p>` : "") +
          d.notes.map((n) => `<p class="hint">${F().esc(n)}</p>`).join("");
        await this.draw();
        // a frame was picked: pick the same path in the new tree (its marks for the new range)
        if (this.picked) {
          const i = this.find(this.picked);
          if (i >= 0) this.pick(i);
          else this.clearHits();
        }
      } catch (e) {
        if (seq !== this.seq) return;
        this.data = null;
        status.textContent = "";
        notes.innerHTML = `<p class="error">${F().esc(e.message)}</p>`;
        Plotly.purge(this.plot); this.plotReady = false;
      }
    }

    draw() {
      const d = this.data, n = d.nodes;
      if (d.empty || n.name.length <= 1) {
        if (this.plotReady) { Plotly.purge(this.plot); this.plotReady = false; }
        return Promise.resolve();
      }
      const levels = Math.max(...n.level) + 1;
      const width = this.plot.clientWidth || 800;
      const total = Math.max(d.total, 1);
      const text = n.name.map((s, i) => {  // as much of the name as the bar holds
        const fit = Math.floor((n.value[i] / total) * (width - 20) / 6.8) - 1;
        return fit >= s.length ? F().esc(s) : fit >= 4 ? F().esc(s.slice(0, fit - 1)) + "…" : "";
      });
      const hover = n.name.map((s, i) => `<b>${F().esc(s)}</b>${n.addr[i] ? " " + n.addr[i] : ""}<br>` +
        `${amount(n.value[i], d.metric)}${d.metric === "ns" ? ` · ${n.count[i].toLocaleString()} waits` : ""}` +
        ` · ${n.pct[i].toFixed(1)}% of all<br><i>click: where it was on the stack</i>`);
      const sel = this.selected;
      const trace = {
        type: "bar", orientation: "h", name: "flame", y: n.level, x: n.value, base: n.x0,
        customdata: n.name.map((s, i) => i), text, textposition: "inside", insidetextanchor: "start",
        textfont: { size: 11, color: "#1f2933" }, hovertext: hover, hoverinfo: "text", width: 0.92,
        marker: { color: n.name.map((s, i) => (i === 0 ? "#c9d1da" : hue(s))),
                  line: { color: n.name.map((s, i) => (i === sel ? "#111827" : "rgba(255,255,255,0.9)")),
                          width: n.name.map((s, i) => (i === sel ? 2.5 : 0.5)) } },
      };
      const layout = {
        height: levels * ROW + 30, width, margin: { l: 4, r: 4, t: 4, b: 26 }, showlegend: false,
        barmode: "overlay", bargap: 0, plot_bgcolor: "#ffffff", paper_bgcolor: "#ffffff",
        uniformtext: { mode: "hide", minsize: 9 }, dragmode: "zoom", hovermode: "closest",
        xaxis: { range: [0, total], showgrid: false, zeroline: false, tickfont: { size: 10 },
                 tickformat: d.metric === "ns" ? "" : ",d" },
        yaxis: { range: [levels - 0.5, -0.5], showticklabels: false, showgrid: false, zeroline: false, fixedrange: true },
      };
      const first = !this.plotReady;
      this.plotReady = true;
      return Plotly.react(this.plot, [trace], layout, { displayModeBar: false, responsive: false }).then(() => {
        if (first) this.plot.on("plotly_click", (ev) => ev.points && ev.points.length && this.pick(ev.points[0].customdata));
      });
    }

    // a node's frames from the root's child down (names identify a node across trees)
    pathOf(i) {
      const n = this.data.nodes, out = [];
      for (; n.parent[i] >= 0; i = n.parent[i]) out.push(n.name[i]);
      return out.reverse();
    }

    find(path) {
      const n = this.data.nodes, key = JSON.stringify(path);
      for (let i = 0; i < n.name.length; i++) if (JSON.stringify(this.pathOf(i)) === key) return i;
      return -1;
    }

    // a frame: ask where it was on the stack, outline it, and give the timeline its highlight
    async pick(node) {
      if (!this.data || node === undefined) return;
      this.selected = node;
      this.picked = this.pathOf(node);
      this.draw();
      const status = this.el.querySelector("#flame-status");
      try {
        const h = await this.backend.flameHits(Object.assign({}, this.asked, { node }));
        if (this.selected !== node) return;
        const hits = h.start.length;
        const shown = this.hooks.shownLanes ? this.hooks.shownLanes() : null;
        const hidden = shown ? h.lanes.filter((id) => !shown.has(id)).length : 0;
        status.textContent = `${h.frame}: ${h.samples.toLocaleString()} ${this.data.metric === "ns" ? "waits" : "samples"}` +
          ` · ${hits.toLocaleString()} marks on ${h.lanes.length} lane${h.lanes.length === 1 ? "" : "s"}` +
          (hidden ? ` (${hidden} not shown: search for them)` : "") +
          (h.merged_gap ? ` (gaps under ${F().duration(h.merged_gap)} joined)` : "");
        this.hooks.onHits(h);
      } catch (e) {
        status.innerHTML = `<span class="error">${F().esc(e.message)}</span>`;
      }
    }

    clearHits() {
      this.selected = null;
      this.picked = null;
      if (this.data && this.plotReady) this.draw();
      this.hooks.onHits(null);
    }
  }

  osv.Flame = Flame;
})(window.osv = window.osv || {});
