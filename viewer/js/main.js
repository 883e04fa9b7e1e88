// The page: wires the widgets together and keeps the state (visible range, lanes, selection).
// One view request is in flight at a time; range changes made meanwhile are merged into the
// next request, so a burst of wheel events costs one or two round trips, not twenty.
(function (osv) {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const perf = (window.osvPerf = { paints: [], firstPaint: null, errors: [] });

  class App {
    async start() {
      this.backend = await osv.api.backend();
      this.meta = await this.backend.meta();
      const m = this.meta;
      document.title = `${m.file} · osvtrace`;
      $("file").textContent = m.file;
      this.range = [m.t0, m.t1 > m.t0 ? m.t1 : m.t0 + 1000];
      this.pinned = new Set();
      this.selected = null;
      this.busy = false;
      this.pending = null;
      this.lastView = null;
      this.requests = [];
      this.timeline = new osv.Timeline($("timeline"), m, {
        onRange: (a, b) => this.setRange(a, b, "drag"),
        onZoom: (f, t) => this.zoom(f, t, "wheel"),
        onPan: (d) => this.pan(d, "wheel"),
        onPick: (lane, t, tol) => this.pick(lane, t, tol),
        onArrow: (kind, row) => this.pickArrow(kind, row),
      });
      this.search = new osv.Search($("search"), $("suggest"), $("chips"), m, () => this.lanesChanged());
      this.arrowKinds = osv.arrows.controls($("arrow-toggles"), m, (kinds) => { this.arrowKinds = kinds; this.request("arrows"); });
      osv.summary.render($("summary"), m, (kind, v) => this.search.add(kind, v));
      osv.details.clear($("details"));
      this.reports = new osv.Reports($("reports"), this.backend, m, () => this.range);
      this.highlight = null;  // where the flame graph's clicked frame was on the stack
      this.flame = new osv.Flame($("flame"), this.backend, m, {
        getRange: () => this.range,
        shownLanes: () => new Set(this.lanes.map((l) => l.id)),
        onHits: (h) => { this.highlight = h; if (this.lastView) this.paint(this.lastView); },
      });
      $("flame-toggle").addEventListener("click", () => this.toggleFlame());
      $("zoom-in").addEventListener("click", () => this.zoom(0.5, null, "button"));
      $("zoom-out").addEventListener("click", () => this.zoom(2, null, "button"));
      $("zoom-reset").addEventListener("click", () => this.reset());
      document.addEventListener("keydown", (e) => this.key(e));
      let resizeTimer = null;
      window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => this.request("resize"), 120); });
      this.fromHash(location.hash);
      window.addEventListener("hashchange", () => { this.fromHash(location.hash); this.lanesChanged("hash"); });
      this.lanesChanged("first");
    }

    // The URL fragment the shell's `view` writes: #t0=NS&t1=NS&lanes=cpu:0,thread:3 opens the
    // page on the shell's filters. What does not fit this trace is named in the status line.
    fromHash(hash) {
      const p = new URLSearchParams((hash || "").replace(/^#/, ""));
      const bad = [];
      const t0 = p.has("t0") ? Number(p.get("t0")) : this.meta.t0;
      const t1 = p.has("t1") ? Number(p.get("t1")) : this.meta.t1;
      if (Number.isFinite(t0) && Number.isFinite(t1) && t1 > t0) this.range = this.clamp(t0, t1);
      else if (p.has("t0") || p.has("t1")) bad.push(`range ${p.get("t0")}..${p.get("t1")}`);
      const cpus = new Set(), threads = new Set();
      const known = new Set(this.meta.lanes.map((l) => l.id));
      for (const id of (p.get("lanes") || "").split(",").filter(Boolean)) {
        const m = /^(cpu|thread):(\d+)$/.exec(id);
        if (!m || !known.has(id)) { bad.push(id); continue; }
        (m[1] === "cpu" ? cpus : threads).add(+m[2]);
      }
      this.search.setFromHash(cpus, threads);
      this.hashNote = bad.length ? `ignored from the URL: ${bad.slice(0, 4).join(", ")}${bad.length > 4 ? " ..." : ""}` : "";
    }

    lanesChanged(reason) {
      if (!reason) this.pinned.clear();  // a new filter: lanes pinned by following links go
      this.lanes = this.search.lanes(this.pinned);
      this.flame.follow(this.search.threads, this.search.mutexes);
      this.timeline.setLanes(this.lanes);
      this.request(reason || "filter");
    }

    // ------------------------------------------------------------ range
    clamp(a, b) {
      const m = this.meta, span = Math.max(m.t1 - m.t0, 1000);
      const minW = 100;
      if (b - a < minW) { const c = (a + b) / 2; a = c - minW / 2; b = c + minW / 2; }
      if (b - a > 2 * span) { const c = (m.t0 + m.t1) / 2; a = c - span; b = c + span; }
      const lo = m.t0 - span / 2, hi = m.t1 + span / 2;
      if (a < lo) { b += lo - a; a = lo; }
      if (b > hi) { a -= b - hi; b = hi; }
      return [Math.round(a), Math.round(b)];
    }

    setRange(a, b, reason) {
      this.range = this.clamp(a, b);
      this.request(reason);
    }

    zoom(f, center, reason) {
      const [a, b] = this.range;
      const c = center === null || center === undefined ? (a + b) / 2 : center;
      this.setRange(c - (c - a) * f, c + (b - c) * f, reason);
    }

    pan(d, reason) { this.setRange(this.range[0] + d, this.range[1] + d, reason); }

    reset() { this.setRange(this.meta.t0, this.meta.t1, "reset"); }

    // ------------------------------------------------------------ data and paint
    request(reason) {
      const want = { range: this.range.slice(), reason, at: performance.now() };
      if (this.busy) {
        if (this.pending) want.at = Math.min(want.at, this.pending.at);  // the oldest unpainted action
        this.pending = want;
        return;
      }
      this.run(want);
    }

    async run(want) {
      this.busy = true;
      const px = this.timeline.plotWidth();
      const ids = this.lanes.map((l) => l.id);
      const [t0, t1] = want.range;
      try {
        this.requests.push({ t0, t1, px, lanes: ids.length, reason: want.reason });
        const asked = performance.now();
        const view = await this.backend.view(t0, t1, px, ids, this.arrowKinds);
        const got = performance.now();
        this.lastView = view;
        await this.paint(view);
        const drawn = performance.now();
        await new Promise((r) => requestAnimationFrame(() => r()));
        const done = performance.now();
        perf.paints.push({ reason: want.reason, ms: done - want.at, wait_ms: asked - want.at, fetch_ms: got - asked,
                           draw_ms: drawn - got, server_ms: view.server_ms, t0, t1, px, at: done });
        if (perf.firstPaint === null) {
          perf.firstPaint = done;
          this.reports.load();  // after the first picture: a report over a big trace takes a while
        }
        this.status(view);
        if (want.reason !== "flame") this.flame.rangeChanged();
      } catch (e) {
        perf.errors.push(String(e && e.message));
        $("status").innerHTML = `<span class="error">${osv.format.esc(e.message)}</span>`;
      }
      this.busy = false;
      if (this.pending) {
        const p = this.pending;
        this.pending = null;
        this.run(p);
      }
    }

    paint(view) {
      return this.timeline.render(view, { selected: this.selected, brightThreads: this.search.bright(),
                                          highlight: this.highlight });
    }

    toggleFlame() {
      const open = this.flame.toggle();
      $("flame-toggle").setAttribute("aria-pressed", String(open));
      $("flame-toggle").classList.toggle("on", open);
    }

    status(view) {
      const F = osv.format;
      const span = view.t1 - view.t0;
      const items = view.lanes.reduce((s, l) => s + l.n, 0);
      const exact = view.lanes.filter((l) => l.items).length;
      const mode = exact === view.lanes.length ? "exact items" :
        `aggregated per pixel (${exact}/${view.lanes.length} lanes exact)`;
      $("range").textContent = `${F.seconds(view.t0)} – ${F.seconds(view.t1)} · ${F.duration(span)} wide`;
      const note = osv.arrows.note(view);
      $("status").textContent = `${mode} · 1 px = ${F.duration(span / view.px)} · ${items.toLocaleString()} items in view` +
        (note ? ` · ${note}` : "") + (this.hashNote ? ` · ${this.hashNote}` : "");
    }

    // ------------------------------------------------------------ selection
    async pick(lane, t, tol) {
      const at = performance.now();
      try {
        const r = await this.backend.item(lane, t, tol);
        this.select(r.item);
        perf.picks = (perf.picks || []).concat([{ lane, ms: performance.now() - at }]);
      } catch (e) {
        osv.details.error($("details"), e.message);
      }
    }

    async pickArrow(kind, row) {
      try {
        const r = await this.backend.arrow(kind, row);
        this.select(r.item);
      } catch (e) {
        osv.details.error($("details"), e.message);
      }
    }

    select(item) {
      this.selected = item && item.lane ? { lane: item.lane, t0: item.t0, t1: item.t1 } : null;
      osv.details.show($("details"), item, (link) => this.follow(link));
      if (this.lastView) this.paint(this.lastView);
    }

    // a link in the details panel: show its lane, bring its time into view, select what is there
    async follow(link) {
      if (!this.lanes.find((l) => l.id === link.lane)) {
        if (link.lane.startsWith("tp:")) this.search.add("tracepoint", link.lane.slice(3));
        else { this.pinned.add(link.lane); this.lanesChanged("link"); }
      }
      const [a, b] = this.range;
      let w = b - a;
      const len = link.t1 - link.t0;
      if (len > 0.8 * w) w = len * 1.5;
      const mid = (link.t0 + link.t1) / 2;
      if (len > 0.8 * (b - a) || link.t0 < a || link.t1 > b) this.setRange(mid - w / 2, mid + w / 2, "link");
      const tol = 3 * (w / this.timeline.plotWidth());
      const r = await this.backend.item(link.lane, link.t0 + (len > 0 ? Math.min(len / 2, 1) : 0), tol);
      this.select(r.item);
    }

    async step(dir) {
      if (!this.selected) return;
      const r = await this.backend.find(this.selected.lane, this.selected.t0, dir);
      if (!r.item) return;
      this.select(r.item);
      const [a, b] = this.range;
      if (r.item.t0 < a || r.item.t0 > b) {
        const w = b - a;
        this.setRange(r.item.t0 - w / 2, r.item.t0 + w / 2, "step");
      }
    }

    key(e) {
      if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") || e.ctrlKey || e.metaKey || e.altKey) return;
      const w = this.range[1] - this.range[0];
      const k = e.key;
      if (k === "w" || k === "W" || k === "+" || k === "=") this.zoom(0.5, null, "key");
      else if (k === "s" || k === "S" || k === "-" || k === "_") this.zoom(2, null, "key");
      else if (k === "a" || k === "A" || k === "ArrowLeft") this.pan(-0.25 * w, "key");
      else if (k === "d" || k === "D" || k === "ArrowRight") this.pan(0.25 * w, "key");
      else if (k === "0" || k === "Home") this.reset();
      else if (k === "n" || k === "N") this.step("next");
      else if (k === "p" || k === "P") this.step("prev");
      else if (k === "/") { e.preventDefault(); $("search").focus(); return; }
      else if (k === "f" || k === "F") this.toggleFlame();
      else if (k === "Escape") { this.select(null); return; }
      else return;
      e.preventDefault();
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const app = (window.osvApp = new App());
    app.start().catch((e) => {
      perf.errors.push(String(e && e.message));
      $("status").innerHTML = `<span class="error">cannot start: ${osv.format.esc(e.message)}</span>`;
      console.error(e);
    });
  });
})(window.osv = window.osv || {});
