// Time formatting and the time axis: durations with readable units, and ticks that say
// absolute seconds when the view is coarse, "anchor + offset" when it is fine.
(function (osv) {
  "use strict";

  const UNITS = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"], [1, "ns"]];

  // 850 ns, 12.3 µs, 4.56 ms, 1.234 s (like osvtrace.filters.format_duration)
  function duration(ns) {
    const a = Math.abs(ns);
    if (a < 1e3) return `${Math.round(ns)} ns`;
    if (a < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
    if (a < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
    return `${(ns / 1e9).toFixed(3)} s`;
  }

  // digits after the point in groups of three: 4.199 156 800
  function group(frac) {
    return frac.replace(/(\d{3})(?=\d)/g, "$1\u2009");
  }

  // absolute time since boot in seconds, with `decimals` digits (0..9), exact for integer ns
  function seconds(ns, decimals = 9) {
    ns = Math.round(ns);
    const neg = ns < 0;
    const a = Math.abs(ns);
    const s = Math.floor(a / 1e9);
    let frac = String(a - s * 1e9).padStart(9, "0").slice(0, decimals);
    return (neg ? "-" : "") + s + (decimals ? "." + group(frac) : "") + " s";
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p);
    return 10 * p;
  }

  // offset label in the unit that fits the step: +250 µs, +1.5 ms
  function offset(ns, step) {
    for (const [u, name] of UNITS) {
      if (step >= u || u === 1) {
        const v = ns / u;
        const dec = Math.max(0, Math.min(3, Math.ceil(-Math.log10(step / u) - 1e-9)));
        return `+${v.toFixed(dec)} ${name}`;
      }
    }
  }

  // ticks for [t0, t1] over `px` pixels: {vals, text, step, anchor}
  function ticks(t0, t1, px) {
    const n = Math.max(2, Math.floor(px / 120));
    const step = niceStep((t1 - t0) / n);
    const first = Math.ceil(t0 / step) * step;
    const vals = [];
    for (let v = first; v <= t1 && vals.length < 200; v += step) vals.push(v);
    // digits down to the step, in whole groups of three (0.000 000 100 s, not 0.000 000 1 s)
    const need = Math.max(0, Math.min(9, Math.ceil(9 - Math.log10(step) - 1e-9)));
    const decimals = step >= 1e6 ? need : Math.min(9, Math.ceil(need / 3) * 3);
    let text;
    if (step >= 1e6) {
      text = vals.map((v) => seconds(v, decimals));
    } else {
      text = vals.map((v, i) => (i === 0 ? seconds(v, decimals) : offset(v - vals[0], step)));
    }
    return { vals, text, step, anchor: vals[0] };
  }

  function hex(n) {
    return typeof n === "string" ? n : "0x" + n.toString(16);
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  osv.format = { duration, seconds, ticks, niceStep, hex, esc };
})(window.osv = window.osv || {});
