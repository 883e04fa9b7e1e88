// Per-pixel aggregation in the browser, for the static page (no server): the same answer as
// osvtrace/viewer/lod.py (LaneIndex.cells), computed by walking the few items of a small trace.
(function (osv) {
  "use strict";

  const EMPTY = -1, OTHER = -2, TOP_KEYS = 32;

  // t0 + floor(j * (t1 - t0) / width), exact while j * (t1 - t0) < 2^53
  function edges(t0, t1, width) {
    const e = new Array(width + 1);
    for (let j = 0; j <= width; j++) e[j] = t0 + Math.floor((j * (t1 - t0)) / width);
    return e;
  }

  // first index with a[i] > x (a sorted ascending)
  function upper(a, x) {
    let lo = 0, hi = a.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] <= x) lo = m + 1; else hi = m; }
    return lo;
  }
  // first index with a[i] >= x
  function lower(a, x) {
    let lo = 0, hi = a.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; }
    return lo;
  }

  // a lane's items {start, end, key, row} sorted by start (ends already >= start + 1)
  function prepare(items) {
    const n = items.start.length;
    const maxend = new Array(n);
    let m = -Infinity;
    for (let i = 0; i < n; i++) { m = Math.max(m, items.end[i]); maxend[i] = m; }
    return Object.assign({ n, maxend }, items);
  }

  function range(lane, t0, t1) {
    const lo = upper(lane.maxend, t0);
    return [lo, Math.max(lo, lower(lane.start, t1))];
  }

  // {key: Int32 per column (index into keys, EMPTY, OTHER), keys, cover: Uint8, count: Uint32}
  function cells(lane, e) {
    const w = e.length - 1;
    const t0 = e[0], t1 = e[w];
    const [lo, hi] = range(lane, t0, t1);
    const keyList = [];
    const kpos = new Map();
    for (let i = lo; i < hi; i++) {
      if (lane.end[i] <= t0) continue;
      const k = lane.key[i];
      if (!kpos.has(k)) { kpos.set(k, -1); keyList.push(k); }
    }
    keyList.sort((a, b) => a - b);
    let chosen = keyList;
    if (keyList.length > TOP_KEYS) {  // keep the keys covering most of the view; lump the rest
      const tot = new Map(keyList.map((k) => [k, 0]));
      for (let i = lo; i < hi; i++) {
        const ov = Math.min(lane.end[i], t1) - Math.max(lane.start[i], t0);
        if (ov > 0) tot.set(lane.key[i], tot.get(lane.key[i]) + ov);
      }
      const idx = keyList.map((k, i) => i);
      idx.sort((a, b) => (tot.get(keyList[b]) - tot.get(keyList[a])) || (a - b));
      chosen = idx.slice(0, TOP_KEYS).sort((a, b) => a - b).map((i) => keyList[i]);
    }
    chosen.forEach((k, i) => kpos.set(k, i));
    const nk = chosen.length + 1;  // + OTHER
    const cov = new Float64Array(nk * w);
    const total = new Float64Array(w);
    const count = new Uint32Array(w);
    for (let i = lo; i < hi; i++) {
      const s = lane.start[i], en = lane.end[i];
      if (en <= t0) continue;
      let kp = kpos.get(lane.key[i]);
      if (kp === undefined || kp < 0) kp = nk - 1;
      let j = Math.max(0, upper(e, s) - 1);
      for (; j < w && e[j] < en; j++) {
        const ov = Math.min(en, e[j + 1]) - Math.max(s, e[j]);
        if (ov > 0) { cov[kp * w + j] += ov; total[j] += ov; count[j]++; }
      }
    }
    const keyOut = new Int32Array(w);  // first the chosen key's position, then its index in `used`
    const cover = new Uint8Array(w);
    const seen = new Uint8Array(nk);
    for (let j = 0; j < w; j++) {
      if (!count[j]) { keyOut[j] = EMPTY; continue; }
      let best = 0, bv = -1;
      for (let k = 0; k < nk; k++) { const v = cov[k * w + j]; if (v > bv) { bv = v; best = k; } }
      keyOut[j] = best === nk - 1 ? OTHER : best;
      if (best !== nk - 1) seen[best] = 1;
      const width = Math.max(e[j + 1] - e[j], 1);
      cover[j] = Math.min(Math.floor((total[j] * 100) / width), 100);
    }
    const used = [];
    const usedPos = new Int32Array(nk);
    for (let k = 0; k < nk - 1; k++) if (seen[k]) { usedPos[k] = used.length; used.push(chosen[k]); }
    for (let j = 0; j < w; j++) if (keyOut[j] >= 0) keyOut[j] = usedPos[keyOut[j]];
    return { keys: used, key: keyOut, cover, count, n: hi - lo };
  }

  function items(lane, t0, t1, limit) {
    const [lo, hi] = range(lane, t0, t1);
    if (hi - lo > limit) return null;
    const out = { start: [], end: [], key: [], row: [] };
    for (let i = lo; i < hi; i++) {
      if (lane.end[i] <= t0) continue;
      out.start.push(lane.start[i]); out.end.push(lane.end[i]); out.key.push(lane.key[i]); out.row.push(lane.row[i]);
    }
    return out;
  }

  // index of the item covering t, else the nearest within tol (covering and shortest first)
  function at(lane, t, tol) {
    const [lo, hi] = range(lane, t - tol, t + tol + 1);
    let best = -1, bd = Infinity, bl = Infinity;
    for (let i = lo; i < hi; i++) {
      const s = lane.start[i], en = lane.end[i];
      const d = t < s ? s - t : (t >= en ? t - en + 1 : 0);
      if (d > tol) continue;
      if (d < bd || (d === bd && en - s < bl)) { best = i; bd = d; bl = en - s; }
    }
    return best < 0 ? null : best;
  }

  osv.lod = { EMPTY, OTHER, edges, prepare, cells, items, at, range, upper, lower };
})(window.osv = window.osv || {});
