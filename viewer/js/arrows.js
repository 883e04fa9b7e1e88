// Arrows between lanes: wake-ups (waker -> wakee), mutex hand-offs (releaser -> receiver) and
// packet hops (CPU -> CPU). Each kind is one plotly line trace, heads included (two short
// strokes at the tip, turned along the segment as it appears on screen), so a few hundred
// arrows cost one SVG path. Pointing and clicking is done here, by distance to the segments.
(function (osv) {
  "use strict";

  const KINDS = ["wake", "handoff", "packet"];
  const LABELS = { wake: "wake-up", handoff: "mutex hand-off", packet: "packet hop" };
  const HEAD_PX = 8, HEAD_DEG = 26, HIT_PX = 5;

  // {trace, segs}: the plotly trace and, for hit tests, each arrow's ends
  function build(tl, kind, a, t0, t1, W) {
    const color = tl.pal.arrow_colors[kind];
    const x = [], y = [], segs = [];
    const pxPerNs = W / (t1 - t0), rowH = tl.pal.row_height;
    const ang = (HEAD_DEG * Math.PI) / 180;
    for (let i = 0; i < a.row.length; i++) {
      const yf = tl.rowOf.get(a.from[i]), yt = tl.rowOf.get(a.to[i]);
      if (yf === undefined || yt === undefined) continue;
      const xf = a.t_from[i], xt = a.t_to[i];
      x.push(xf, xt, null); y.push(yf, yt, null);
      // the head, in pixels then back to data units
      const dxp = (xt - xf) * pxPerNs, dyp = (yt - yf) * rowH;
      const len = Math.hypot(dxp, dyp);
      if (len > 2) {
        const ux = dxp / len, uy = dyp / len;
        for (const s of [ang, -ang]) {
          const hx = -(ux * Math.cos(s) - uy * Math.sin(s)) * HEAD_PX;
          const hy = -(ux * Math.sin(s) + uy * Math.cos(s)) * HEAD_PX;
          x.push(xt, xt + hx / pxPerNs, null); y.push(yt, yt + hy / rowH, null);
        }
      }
      segs.push({ kind, row: a.row[i], from: a.from[i], to: a.to[i], xf, yf, xt, yt });
    }
    const trace = { type: "scatter", mode: "lines", x, y, line: { color, width: 1.5 }, hoverinfo: "skip",
                    name: `${kind}-arrows`, opacity: 0.85 };
    return { trace, segs };
  }

  // the arrow nearest to a pointer position (client pixels), within HIT_PX
  function hit(tl, segs, clientX, clientY) {
    const fl = tl.el._fullLayout;
    if (!fl || !segs.length) return null;
    const xa = fl.xaxis, ya = fl.yaxis;
    const box = tl.el.getBoundingClientRect();
    const px = clientX - box.left - xa._offset, py = clientY - box.top - ya._offset;
    let best = null, bd = HIT_PX;
    for (const s of segs) {
      const ax = xa.l2p(s.xf), ay = ya.l2p(s.yf), bx = xa.l2p(s.xt), by = ya.l2p(s.yt);
      const dx = bx - ax, dy = by - ay;
      const L = dx * dx + dy * dy;
      const u = L ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / L)) : 0;
      const d = Math.hypot(px - (ax + u * dx), py - (ay + u * dy));
      if (d <= bd) { bd = d; best = s; }
    }
    return best;
  }

  function describe(tl, s) {
    return `${LABELS[s.kind]}: ${tl.laneLabel(s.from)} → ${tl.laneLabel(s.to)}`;
  }

  // the toolbar's toggles; onChange(kinds shown)
  function controls(el, meta, onChange) {
    el.innerHTML = "";
    const on = new Set(KINDS);
    for (const kind of KINDS) {
      const label = document.createElement("label");
      label.className = "toggle";
      label.title = `${(meta.arrows[kind] || 0).toLocaleString()} in the trace`;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.id = `arrows-${kind}`;
      box.addEventListener("change", () => {
        if (box.checked) on.add(kind); else on.delete(kind);
        onChange(KINDS.filter((k) => on.has(k)));
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = meta.palette.arrow_colors[kind];
      label.append(box, swatch, document.createTextNode(` ${LABELS[kind]}s`));
      el.append(label);
    }
    return [...KINDS];
  }

  // the status line's note on arrows that were counted, not drawn
  function note(view) {
    const hidden = KINDS.filter((k) => view.arrows[k] && !view.arrows[k].shown)
      .map((k) => `${view.arrows[k].n.toLocaleString()} ${LABELS[k]}s`);
    return hidden.length ? `arrows: ${hidden.join(", ")} in view, zoom in to draw them` : "";
  }

  osv.arrows = { KINDS, LABELS, build, hit, describe, controls, note };
})(window.osv = window.osv || {});
