// The timeline: one plotly heatmap whose rows are the lanes and whose columns are screen
// pixels (the server aggregated them), names drawn inside items wide enough, arrows on top.
// Mouse: drag pans, wheel zooms at the pointer, shift+wheel pans, click selects.
(function (osv) {
  "use strict";
  const F = () => osv.format;
  const MAX_LABELS = 400;
  const GAP = 1.5;  // px of background between lanes, above and below each

  function luminance(hex) {
    const n = parseInt(hex.slice(1), 16);
    const c = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }

  class Timeline {
    constructor(el, meta, hooks) {
      this.el = el;
      this.meta = meta;
      this.hooks = hooks;
      this.pal = meta.palette;
      this.threadColor = new Map(meta.threads.map((t) => [t.tid, t.color]));
      this.threadName = new Map(meta.threads.map((t) => [t.tid, t.name]));
      this.rows = [];
      this.view = null;
      this.canvas = document.createElement("canvas");
      this.canvas.className = "lanes-canvas";
      el.parentElement.insertBefore(this.canvas, el);
      this.ready = false;
      this.config = { displayModeBar: false, scrollZoom: false, doubleClick: false, showTips: false,
                      responsive: false, staticPlot: false };
      el.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
      el.addEventListener("mousedown", (e) => { this.down = [e.clientX, e.clientY]; });
      el.addEventListener("click", (e) => this.onClick(e));
      el.addEventListener("mousemove", (e) => this.onMove(e));
      el.addEventListener("mouseleave", () => this.hideTip());
    }

    // the left margin holds the lane names: as wide as the longest, within bounds
    margin() {
      const longest = this.rows.reduce((n, r) => Math.max(n, (r.lane ? r.lane.label : r.header).length), 8);
      return Math.max(110, Math.min(320, Math.round(longest * 7.1) + 18));
    }

    // pixels of the plot area for the container's width
    plotWidth() {
      const m = this.meta.layout.margin;
      return Math.max(50, Math.floor(this.el.clientWidth - this.margin() - m.r));
    }

    // rows: group headers and lanes, top to bottom
    setLanes(lanes) {
      const rows = [];
      let group = null;
      for (const lane of lanes) {
        if (lane.group !== group) { rows.push({ header: lane.group }); group = lane.group; }
        rows.push({ lane });
      }
      this.rows = rows;
      this.rowOf = new Map(rows.map((r, i) => [r.lane ? r.lane.id : "#" + r.header, i]));
    }

    keyName(lane, key) {
      if (key === osv.lod.OTHER) return "other threads";
      if (lane.color_by === "state") return this.pal.state_names[key] || `state ${key}`;
      if (lane.color_by === "cpu") return `CPU ${key}`;
      const n = this.threadName.get(key);
      return n === undefined ? `thread ${key}` : `${n} [${key}]`;
    }

    colorIndex(lane, key, light, bright) {
      const p = this.pal;
      if (key === osv.lod.OTHER) return light ? p.other_light : p.other;
      let base, off;
      if (lane.color_by === "state") { base = p.states + key; off = p.state_light - p.states; }
      else if (lane.color_by === "cpu") { base = key % p.threads; off = p.thread_light; }
      else {
        if (bright && !bright.has(key)) return p.dim;
        const c = this.threadColor.get(key);
        base = c === undefined ? key % p.threads : c;
        off = p.thread_light;
      }
      return light ? base + off : base;
    }

    // a lane's row of palette indices (-1 where empty)
    colorRow(lane, data, bright) {
      const w = data.key.length;
      const out = new Int16Array(w);
      const colors = data.keys.map((k) => [this.colorIndex(lane, k, false, bright), this.colorIndex(lane, k, true, bright)]);
      const other = [this.colorIndex(lane, osv.lod.OTHER, false), this.colorIndex(lane, osv.lod.OTHER, true)];
      for (let j = 0; j < w; j++) {
        const k = data.key[j];
        if (k === -1) { out[j] = -1; continue; }
        out[j] = (k === -2 ? other : colors[k])[data.cover[j] < 50 ? 1 : 0];
      }
      return out;
    }

    // the lanes picture: one pixel per column and lane, drawn on a canvas under plotly's SVG
    // (no PNG encoding, unlike a plotly heatmap), then scaled to the rows without smoothing
    paintLanes(view, bright) {
      const W = view.px, rows = this.rows;
      if (!this.lut) {
        this.lut = this.pal.colors.map((c) => [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16),
                                               parseInt(c.slice(5, 7), 16)]);
      }
      const img = new ImageData(W, Math.max(rows.length, 1));
      const px = img.data;
      rows.forEach((r, i) => {
        const d = r.lane && this.laneData.get(r.lane.id);
        if (!d) return;
        const c = this.colorRow(r.lane, d, bright);
        let o = i * W * 4;
        for (let j = 0; j < W; j++, o += 4) {
          if (c[j] < 0) continue;
          const rgb = this.lut[c[j]];
          px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
        }
      });
      const off = this.offscreen || (this.offscreen = document.createElement("canvas"));
      off.width = W; off.height = Math.max(rows.length, 1);
      off.getContext("2d").putImageData(img, 0, 0);
      this.picture = { t0: view.t0, t1: view.t1 };
      this.drawPicture(view.t0, view.t1);
    }

    // place the canvas on the plot area and draw the picture for the x range [a, b]
    // (the picture's own range while idle; the live range while plotly drags)
    drawPicture(a, b) {
      const fl = this.el._fullLayout, cv = this.canvas;
      if (!fl || !this.picture) return;
      const sz = fl._size, dpr = window.devicePixelRatio || 1, rowH = this.pal.row_height;
      const w = sz.w, h = this.rows.length * rowH;
      Object.assign(cv.style, { left: `${sz.l}px`, top: `${sz.t}px`, width: `${w}px`, height: `${h}px` });
      if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
        cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
      }
      const ctx = cv.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.fillStyle = this.meta.layout.lanes_bgcolor;
      ctx.fillRect(0, 0, w, h);
      const p = this.picture, scale = w / (b - a);
      const x = (p.t0 - a) * scale, pw = (p.t1 - p.t0) * scale;
      const off = this.offscreen;
      for (let i = 0; i < this.rows.length; i++) {
        if (!this.rows[i].lane) continue;
        ctx.drawImage(off, 0, i, off.width, 1, x, i * rowH + GAP, pw, rowH - 2 * GAP);
      }
    }

    render(view, opts) {
      const t0 = view.t0, t1 = view.t1, W = view.px;
      this.view = view;
      this.laneData = new Map(view.lanes.map((l) => [l.id, l]));
      const bright = opts.brightThreads;
      const nrow = this.rows.length;
      const dx = (t1 - t0) / W;
      const traces = [this.labels(view, bright)];
      this.segs = [];
      for (const kind of osv.arrows.KINDS) {
        const a = view.arrows[kind];
        if (!a || !a.shown || !a.n) continue;
        const b = osv.arrows.build(this, kind, a, t0, t1, W);
        traces.push(b.trace);
        this.segs.push(...b.segs);
      }
      if (opts.highlight) traces.push(...this.hitTraces(opts.highlight, t0, t1, W));
      const L = this.meta.layout;
      const rowH = this.pal.row_height;
      const ticks = F().ticks(t0, t1, this.plotWidth());
      this.ticks = ticks;
      const shapes = [];
      this.rows.forEach((r, i) => {
        if (r.header && i > 0) {
          shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: i - 0.5, y1: i - 0.5,
                        line: { color: "#9aa5b1", width: 1 } });
        }
      });
      const sel = opts.selected;
      if (sel && this.rowOf.has(sel.lane)) {
        const y = this.rowOf.get(sel.lane);
        const minW = 3 * dx;
        const mid = (sel.t0 + sel.t1) / 2;
        const a = Math.min(sel.t0, mid - minW / 2), b = Math.max(sel.t1, mid + minW / 2);
        shapes.push({ type: "rect", xref: "x", yref: "y", x0: a, x1: b, y0: y - 0.5, y1: y + 0.5,
                      line: { color: "#111827", width: 2.5 }, fillcolor: "rgba(0,0,0,0)" });
      }
      const layout = Object.assign({}, L, {
        margin: Object.assign({}, L.margin, { l: this.margin() }),
        height: L.margin.t + L.margin.b + Math.max(nrow, 1) * rowH,
        width: this.el.clientWidth,
        xaxis: Object.assign({}, L.xaxis, { range: [t0, t1], tickmode: "array", tickvals: ticks.vals,
                                            ticktext: ticks.text, autorange: false }),
        yaxis: Object.assign({}, L.yaxis, {
          range: [nrow - 0.5, -0.5], tickmode: "array", tickvals: this.rows.map((r, i) => i),
          ticktext: this.rows.map((r) => (r.header ? `<b>${F().esc(r.header)}</b>` : F().esc(r.lane.label))),
        }),
        shapes,
      });
      delete layout.lanes_bgcolor;
      const first = !this.ready;
      const p = Plotly.react(this.el, traces, layout, this.config).then(() => this.paintLanes(view, bright));
      if (first) {
        this.ready = true;
        this.el.on("plotly_relayout", (ev) => this.onRelayout(ev));
        this.el.on("plotly_relayouting", (ev) => {  // follow plotly's drag with the picture we have
          const a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
          if (a !== undefined && b !== undefined) this.drawPicture(+a, +b);
        });
      }
      return p;
    }

    // thread or state names inside exact items that are wide enough to hold them
    labels(view, bright) {
      const x = [], y = [], text = [], color = [];
      const t0 = view.t0, t1 = view.t1, pxPerNs = view.px / (t1 - t0);
      for (const r of this.rows) {
        if (!r.lane) continue;
        const d = this.laneData.get(r.lane.id);
        if (!d || !d.items || r.lane.kind === "tp") continue;
        const it = d.items;
        let right = -Infinity;  // labels of overlapping items (waits) must not overprint each other
        for (let i = 0; i < it.start.length && x.length < MAX_LABELS; i++) {
          const a = Math.max(it.start[i], t0), b = Math.min(it.end[i], t1);
          const wpx = (b - a) * pxPerNs;
          if (wpx < 44) continue;
          const fit = Math.floor((wpx - 8) / 6.6);
          let s = this.keyName(r.lane, it.key[i]);
          if (s.length > fit) s = s.replace(/ \[\d+\]$/, "");  // drop the thread id before cutting the name
          if (s.length > fit) s = fit >= 4 ? s.slice(0, fit - 1) + "…" : "";
          if (!s) continue;
          const mid = ((a + b) / 2 - t0) * pxPerNs, half = (s.length * 6.6) / 2;
          if (mid - half < right + 6) continue;
          right = mid + half;
          x.push((a + b) / 2); y.push(this.rowOf.get(r.lane.id)); text.push(F().esc(s));  // plotly reads tags
          const ci = this.colorIndex(r.lane, it.key[i], false, bright);
          color.push(luminance(this.pal.colors[ci]) > 0.4 ? "#111827" : "#ffffff");
        }
      }
      return { type: "scatter", mode: "text", x, y, text, textfont: { size: 11, color }, hoverinfo: "skip",
               cliponaxis: true, name: "labels" };
    }

    // where the flame graph's clicked frame was on the stack: intervals as bars across their
    // lanes, instants (samples) as ticks; joined per pixel column, so a view draws at most a
    // mark per column and lane whatever the number of hits
    hitTraces(h, t0, t1, W) {
      const dx = (t1 - t0) / W, rowH = this.pal.row_height;
      const sx = [], sy = [], mx = [], my = [];
      const last = new Map();  // row -> [start, end] of the mark being grown
      const flush = (row) => {
        const m = last.get(row);
        if (!m) return;
        if (m[1] - m[0] < 2 * dx) { mx.push((m[0] + m[1]) / 2); my.push(row); }
        else { sx.push(m[0], m[1], null); sy.push(row, row, null); }
        last.delete(row);
      };
      for (let i = 0; i < h.start.length; i++) {
        const row = this.rowOf.get(h.lanes[h.lane[i]]);
        const a = h.start[i], b = h.end[i];
        if (row === undefined || b < t0 || a > t1) continue;
        const m = last.get(row);
        if (m && a <= m[1] + dx) { m[1] = Math.max(m[1], b); continue; }
        flush(row);
        last.set(row, [a, b]);
      }
      for (const row of Array.from(last.keys())) flush(row);
      const color = "rgba(214, 0, 140, 0.85)";
      return [
        { type: "scatter", mode: "lines", name: "flame-spans", x: sx, y: sy, hoverinfo: "skip", cliponaxis: true,
          line: { color, width: Math.max(3, rowH * 0.3) } },
        { type: "scatter", mode: "markers", name: "flame-instants", x: mx, y: my, hoverinfo: "skip", cliponaxis: true,
          marker: { symbol: "line-ns", size: rowH - 4, line: { color, width: 2 } } },
      ];
    }

    laneLabel(id) {
      const r = this.rows[this.rowOf.get(id)];
      return r && r.lane ? r.lane.label : id;
    }

    // ------------------------------------------------------------ interaction
    xToTime(clientX) {
      const xa = this.el._fullLayout && this.el._fullLayout.xaxis;
      if (!xa) return null;
      const box = this.el.getBoundingClientRect();
      const px = clientX - box.left - xa._offset;
      if (px < 0 || px > xa._length) return null;
      return xa.p2l(px);
    }

    yToRow(clientY) {
      const ya = this.el._fullLayout && this.el._fullLayout.yaxis;
      if (!ya) return null;
      const box = this.el.getBoundingClientRect();
      const py = clientY - box.top - ya._offset;
      if (py < 0 || py > ya._length) return null;
      return Math.round(ya.p2l(py));
    }

    nsPerPx() { return this.view ? (this.view.t1 - this.view.t0) / this.view.px : 1; }

    onWheel(e) {
      const t = this.xToTime(e.clientX);
      if (t === null || !this.view) return;
      e.preventDefault();
      if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        const d = e.shiftKey ? e.deltaY : e.deltaX;
        this.hooks.onPan((d / 500) * (this.view.t1 - this.view.t0));
      } else {
        this.hooks.onZoom(Math.exp(e.deltaY * 0.0015), t);
      }
    }

    onRelayout(ev) {
      let a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
      if (a === undefined && ev["xaxis.range"]) [a, b] = ev["xaxis.range"];
      if (a !== undefined && b !== undefined) this.hooks.onRange(+a, +b);
    }

    // a click (not the end of a drag): an arrow if one is under the pointer, else the lane's item
    onClick(e) {
      if (this.down && Math.hypot(e.clientX - this.down[0], e.clientY - this.down[1]) > 4) return;
      const arrow = osv.arrows.hit(this, this.segs || [], e.clientX, e.clientY);
      if (arrow) { this.hooks.onArrow(arrow.kind, arrow.row); return; }
      const t = this.xToTime(e.clientX);
      const row = this.yToRow(e.clientY);
      if (t === null || row === null || !this.rows[row] || !this.rows[row].lane) return;
      this.hooks.onPick(this.rows[row].lane.id, t, 3 * this.nsPerPx());
    }

    // tooltip: the exact item under the pointer, or what a pixel column holds
    onMove(e) {
      const tip = document.getElementById("tooltip");
      if (!this.view || !tip) return;
      const t = this.xToTime(e.clientX), row = this.yToRow(e.clientY);
      const arrow = osv.arrows.hit(this, this.segs || [], e.clientX, e.clientY);
      if (arrow) {
        this.showTip(e, `<div><b>${F().esc(osv.arrows.describe(this, arrow))}</b></div>` +
          `<div>${F().seconds(arrow.xf)} → +${F().duration(arrow.xt - arrow.xf)}</div><div class="tip-hint">click for details</div>`);
        return;
      }
      const r = row !== null ? this.rows[row] : null;
      if (t === null || !r || !r.lane) { this.hideTip(); return; }
      const d = this.laneData.get(r.lane.id);
      if (!d) { this.hideTip(); return; }
      const j = Math.floor(((t - this.view.t0) / (this.view.t1 - this.view.t0)) * this.view.px);
      if (j < 0 || j >= d.key.length || d.key[j] === -1) { this.hideTip(); return; }
      let html = `<div class="tip-lane">${F().esc(r.lane.label)}</div>`;
      let exact = null;
      if (d.items) {
        const tol = 2 * this.nsPerPx();
        for (let i = 0; i < d.items.start.length; i++) {
          if (d.items.start[i] - tol <= t && t < d.items.end[i] + tol) { exact = i; if (d.items.start[i] <= t && t < d.items.end[i]) break; }
        }
      }
      if (exact !== null) {
        const it = d.items;
        html += `<div><b>${F().esc(this.keyName(r.lane, it.key[exact]))}</b></div>` +
          `<div>${F().seconds(it.start[exact])} · ${r.lane.kind === "tp" ? "event" : F().duration(it.end[exact] - it.start[exact])}</div>`;
      } else {
        const k = d.key[j];
        const name = k === -2 ? "other threads" : this.keyName(r.lane, d.keys[k]);
        html += `<div>${d.count[j].toLocaleString()} item${d.count[j] === 1 ? "" : "s"} in this pixel</div>` +
          `<div>mostly <b>${F().esc(name)}</b>, ${d.cover[j]}% covered</div>`;
      }
      html += `<div class="tip-hint">click for details</div>`;
      this.showTip(e, html);
    }

    showTip(e, html) {
      const tip = document.getElementById("tooltip");
      tip.innerHTML = html;
      tip.style.display = "block";
      const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = Math.min(e.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = `${x}px`;
      tip.style.top = `${y}px`;
    }

    hideTip() {
      const tip = document.getElementById("tooltip");
      if (tip) tip.style.display = "none";
    }
  }

  osv.Timeline = Timeline;
})(window.osv = window.osv || {});
