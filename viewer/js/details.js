// The details panel: a clicked item's fields, the items it is linked to (who woke it, who
// handed it the mutex, which packet) and the records behind it with all their arguments.
(function (osv) {
  "use strict";
  const esc = (s) => osv.format.esc(s);

  function clear(el) {
    el.innerHTML = `<h2>Details</h2><p class="hint">Click a slice, state, mutex hold or wait, packet or arrow
      to see its details here. Keys: <kbd>W</kbd>/<kbd>S</kbd> zoom, <kbd>A</kbd>/<kbd>D</kbd> pan,
      <kbd>0</kbd> whole trace, <kbd>N</kbd>/<kbd>P</kbd> next/previous item of the selected lane,
      <kbd>F</kbd> flame graph, <kbd>Esc</kbd> clear.</p>`;
  }

  function show(el, item, onLink) {
    if (!item) { clear(el); return; }
    const fields = item.fields.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("");
    const links = (item.links || []).map((l, i) =>
      `<li><a href="#" class="link" data-i="${i}">${esc(l.label)}</a></li>`).join("");
    const events = (item.events || []).map((e) => {
      const args = Object.entries(e.args).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("");
      return `<div class="event"><div class="ev-head"><b>${esc(e.tracepoint)}</b> · ${esc(e.time_text)} s ·
        CPU ${e.cpu} · ${esc(e.thread)}</div>${args ? `<table class="args">${args}</table>` : ""}</div>`;
    }).join("");
    el.innerHTML = `<h2 id="details-title">${esc(item.title)}</h2>
      <table class="fields">${fields}</table>
      ${"stack" in item ? stack(item) : ""}
      ${links ? `<h3>Linked</h3><ul class="links">${links}</ul>` : ""}
      ${events ? `<h3>Records</h3>${events}` : ""}`;
    el.querySelectorAll("a.link").forEach((a) => a.addEventListener("click", (ev) => {
      ev.preventDefault();
      onLink(item.links[+a.dataset.i]);
    }));
  }

  // a record's stack, innermost first: the function, its address beside it, then file:line
  function stack(item) {
    const st = item.stack;
    if (!st) {
      return `<h3>Stack</h3><p class="hint">no stack recorded here (record with --tracebt or --backtrace)</p>`;
    }
    const rows = st.frames.map((f) => `<li><span class="fn">${esc(f.function)}</span>
      <span class="addr">${esc(f.addr)}</span>${f.source ? `<span class="src">${esc(f.source.split("/").slice(-2).join("/"))}</span>` : ""}</li>`).join("");
    const end = st.end === "complete" || st.end === "unmarked" ? ""
      : `<p class="warn">the walk ended early: ${esc(st.end)}</p>`;
    return `<h3>Stack <span class="stack-of">${esc(item.stack_of || "")}</span></h3><ol class="stack">${rows}</ol>${end}`;
  }

  function error(el, msg) {
    el.innerHTML = `<h2>Details</h2><p class="error">${esc(msg)}</p>`;
  }

  osv.details = { show, clear, error };
})(window.osv = window.osv || {});
