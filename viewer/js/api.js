// Where the page's data comes from: the viewer server's JSON API, or (static page) the data
// embedded in the page, answered the same way by osv.lod in the browser.
(function (osv) {
  "use strict";

  function decode(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  // ------------------------------------------------------------ server
  class ServerBackend {
    constructor() { this.static = false; this.inflight = null; }

    async get(path, params) {
      const q = new URLSearchParams(params || {}).toString();
      const r = await fetch(`api/${path}${q ? "?" + q : ""}`, { signal: params && params.signal });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
      return body;
    }

    meta() { return this.get("meta"); }

    async view(t0, t1, px, lanes, arrows) {
      if (this.inflight) this.inflight.abort();
      const ctl = new AbortController();
      this.inflight = ctl;
      const p = { t0: Math.round(t0), t1: Math.round(t1), px, lanes: lanes.join(","), arrows: arrows.join(",") };
      const q = new URLSearchParams(p).toString();
      const r = await fetch(`api/view?${q}`, { signal: ctl.signal });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
      for (const l of body.lanes) {
        l.key = decode(l.key, Int32Array);
        l.cover = decode(l.cover, Uint8Array);
        l.count = decode(l.count, Uint32Array);
      }
      return body;
    }

    item(lane, t, tol) { return this.get("item", { lane, t: Math.round(t), tol: Math.round(tol) }); }
    itemByRow(lane, row) { return this.get("item", { lane, row }); }
    arrow(kind, row) { return this.get("arrow", { kind, row }); }
    find(lane, t, dir) { return this.get("find", { lane, t: Math.round(t), dir }); }
    report(name, t0, t1) {
      const p = { name };
      if (t0 !== undefined) { p.t0 = Math.round(t0); p.t1 = Math.round(t1); }
      return this.get("report", p);
    }
    flame(p) { return this.get("flame", p); }
    flameHits(p) { return this.get("flame-hits", p); }
  }

  // ------------------------------------------------------------ static page
  class StaticBackend {
    constructor(data) {
      this.static = true;
      this.data = data;
      this.lanes = {};
      for (const [id, items] of Object.entries(data.lanes)) this.lanes[id] = osv.lod.prepare(items);
    }

    async meta() { return this.data.meta; }

    async view(t0, t1, px, lanes, arrows) {
      const t = performance.now();
      t0 = Math.round(t0); t1 = Math.round(t1);
      px = Math.min(px, t1 - t0);  // a column is at least 1 ns wide (as on the server)
      const lim = this.data.meta.limits;
      const e = osv.lod.edges(t0, t1, px);
      const out = [];
      for (const id of lanes) {
        const lane = this.lanes[id];
        if (!lane) throw new Error(`no such lane: ${id}`);
        const c = osv.lod.cells(lane, e);
        out.push({ id, keys: c.keys, key: c.key, cover: c.cover, count: c.count, n: c.n,
                   items: osv.lod.items(lane, t0, t1, lim.exact_per_lane) });
      }
      const shown = new Set(lanes);
      const arr = {};
      for (const kind of arrows) {
        const a = this.data.arrows[kind];
        const o = { n: 0, shown: true, t_from: [], t_to: [], from: [], to: [], row: [] };
        for (let i = 0; i < a.row.length; i++) {
          const lo = Math.min(a.t_from[i], a.t_to[i]), hi = Math.max(a.t_from[i], a.t_to[i]);
          if (hi < t0 || lo > t1 || !shown.has(a.from[i]) || !shown.has(a.to[i])) continue;
          o.t_from.push(a.t_from[i]); o.t_to.push(a.t_to[i]); o.from.push(a.from[i]); o.to.push(a.to[i]);
          o.row.push(a.row[i]);
        }
        o.n = o.row.length;
        const cap = Math.min(lim.arrows_max, Math.max(64, Math.floor(px / lim.arrow_px)));
        if (o.n > cap) arr[kind] = { n: o.n, shown: false };
        else arr[kind] = o;
      }
      return { t0, t1, px, lanes: out, arrows: arr, server_ms: +(performance.now() - t).toFixed(2) };
    }

    details(laneId, i) {
      const lane = this.lanes[laneId];
      const d = this.data.details[laneId];
      return { item: d ? d[String(lane.row[i])] || null : null };
    }

    async item(laneId, t, tol) {
      const lane = this.lanes[laneId];
      if (!lane) throw new Error(`no such lane: ${laneId}`);
      const i = osv.lod.at(lane, Math.round(t), Math.round(tol));
      return i === null ? { item: null } : this.details(laneId, i);
    }

    async itemByRow(laneId, row) {
      const lane = this.lanes[laneId];
      const i = lane ? lane.row.indexOf(row) : -1;
      if (i < 0) throw new Error(`lane ${laneId}: no item with row ${row}`);
      return this.details(laneId, i);
    }

    async arrow(kind, row) {
      return { item: (this.data.arrow_details[kind] || {})[String(row)] || null };
    }

    async find(laneId, t, dir) {
      const lane = this.lanes[laneId];
      const k = dir === "next" ? osv.lod.upper(lane.start, t) : osv.lod.lower(lane.start, t) - 1;
      return k < 0 || k >= lane.n ? { item: null } : this.details(laneId, k);
    }

    async report(name, t0, t1) {
      if (t0 !== undefined) throw new Error("the static page has each report for the whole trace only");
      const r = this.data.reports[name];
      if (!r) throw new Error(`no such report: ${name}`);
      return r;
    }

    async flame() {
      throw new Error("the flame graph needs the viewer's server (osvtrace view FILE): a static page carries no stacks");
    }
  }

  // the static page carries its data gzip-compressed and base64-encoded in #osv-data
  async function staticData() {
    const el = document.getElementById("osv-data");
    if (!el) return null;
    const bytes = decode(el.textContent.trim(), Uint8Array);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  async function backend() {
    const data = await staticData();
    return data ? new StaticBackend(data) : new ServerBackend();
  }

  osv.api = { backend, decode, ServerBackend, StaticBackend };
})(window.osv = window.osv || {});
