// The summary sidebar: what the trace is, the threads with the most CPU time and the mutexes
// with the most waiting. Clicking a thread or mutex filters the timeline by it.
(function (osv) {
  "use strict";
  const F = () => osv.format;

  function render(el, meta, onPick) {
    const s = meta.summary;
    const span = meta.t1 - meta.t0;
    const maxT = Math.max(1, ...s.top_threads.map((t) => t.cpu_time));
    const maxM = Math.max(1, ...s.top_mutexes.map((m) => m.wait_total));
    const color = (c) => meta.palette.colors[c];
    const threads = s.top_threads.map((t) => `
      <li class="bar-row" data-kind="thread" data-v="${t.tid}" title="filter by this thread">
        <span class="dot" style="background:${color(t.color)}"></span>
        <span class="name">${F().esc(t.name)} <span class="tid">[${t.tid}]</span></span>
        <span class="val">${F().duration(t.cpu_time)} · ${(100 * t.share).toFixed(1)}%</span>
        <span class="bar" style="width:${(100 * t.cpu_time) / maxT}%;background:${color(t.color)}"></span></li>`).join("");
    const mutexes = s.top_mutexes.map((m) => `
      <li class="bar-row" data-kind="mutex" data-v="${m.mutex}" title="filter by this mutex">
        <span class="name mono">${m.mutex}</span>
        <span class="val">${F().duration(m.wait_total)} in ${m.waits.toLocaleString()} waits · max ${F().duration(m.wait_max)}</span>
        <span class="bar wait" style="width:${(100 * m.wait_total) / maxM}%"></span></li>`).join("");
    const lost = s.lost ? `<p class="warn">${s.lost.toLocaleString()} records lost (${Object.entries(s.lost_by_cpu)
      .map(([c, n]) => `CPU ${c}: ${n.toLocaleString()}`).join(", ")})</p>` : "";
    const warns = (s.warnings || []).map((w) => `<p class="warn">${F().esc(w)}</p>`).join("");
    el.innerHTML = `<h2>Summary</h2>
      <dl class="facts"><dt>file</dt><dd>${F().esc(meta.file)}</dd><dt>events</dt><dd>${meta.events.toLocaleString()}</dd>
      <dt>CPUs</dt><dd>${meta.cpus}</dd><dt>threads</dt><dd>${meta.threads.length}</dd>
      <dt>span</dt><dd>${F().duration(span)}</dd><dt>from</dt><dd>${F().seconds(meta.t0)}</dd></dl>${lost}${warns}
      <h3>Top threads by CPU time</h3><ul class="bars" id="top-threads">${threads || "<li class='hint'>no scheduler records</li>"}</ul>
      <h3>Top mutexes by wait</h3><ul class="bars" id="top-mutexes">${mutexes || "<li class='hint'>no contended mutex</li>"}</ul>`;
    el.querySelectorAll(".bar-row").forEach((li) => li.addEventListener("click", () => {
      onPick(li.dataset.kind, li.dataset.kind === "thread" ? +li.dataset.v : li.dataset.v);
    }));
  }

  osv.summary = { render };
})(window.osv = window.osv || {});
