// Search and filter: type a thread (name or id), a tracepoint or a mutex address; pick a
// suggestion to filter by it. Thread filters keep those threads' lanes and grey the others'
// slices; mutex filters keep those mutexes' lanes; tracepoint filters add a lane of its events.
(function (osv) {
  "use strict";
  const esc = (s) => osv.format.esc(s);

  class Search {
    constructor(input, suggestEl, chipsEl, meta, onChange) {
      this.input = input; this.box = suggestEl; this.chips = chipsEl; this.meta = meta; this.onChange = onChange;
      this.threads = new Set(); this.mutexes = new Set(); this.tps = new Set(); this.cpus = new Set();
      this.matches = []; this.active = 0;
      input.addEventListener("input", () => this.suggest());
      input.addEventListener("focus", () => this.suggest());
      input.addEventListener("keydown", (e) => this.key(e));
      input.addEventListener("blur", () => setTimeout(() => { this.box.style.display = "none"; }, 150));
    }

    candidates(q) {
      q = q.trim().toLowerCase();
      if (!q) return [];
      const out = [];
      for (const t of this.meta.threads) {
        if (t.name.toLowerCase().includes(q) || String(t.tid) === q)
          out.push({ kind: "thread", value: t.tid, label: `${t.name} [${t.tid}]`, note: `${osv.format.duration(t.cpu_time)} CPU` });
      }
      for (const tp of this.meta.tracepoints) {
        if (tp.name.includes(q)) out.push({ kind: "tracepoint", value: tp.name, label: tp.name, note: `${tp.count.toLocaleString()} events` });
      }
      for (const m of this.meta.mutexes) {
        if (m.mutex.includes(q.replace(/^0x/, "")) || m.mutex === q)
          out.push({ kind: "mutex", value: m.mutex, label: `mutex ${m.mutex}`, note: `${m.waits.toLocaleString()} waits` });
      }
      return out.slice(0, 14);
    }

    suggest() {
      this.matches = this.candidates(this.input.value);
      this.active = 0;
      if (!this.matches.length) { this.box.style.display = "none"; return; }
      this.box.innerHTML = this.matches.map((m, i) =>
        `<div class="sugg${i === this.active ? " active" : ""}" data-i="${i}"><span class="badge ${m.kind}">${m.kind}</span>
         ${esc(m.label)} <span class="note">${esc(m.note)}</span></div>`).join("");
      this.box.style.display = "block";
      this.box.querySelectorAll(".sugg").forEach((d) => d.addEventListener("mousedown", (e) => {
        e.preventDefault();
        this.pick(this.matches[+d.dataset.i]);
      }));
    }

    key(e) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!this.matches.length) return;
        this.active = (this.active + (e.key === "ArrowDown" ? 1 : this.matches.length - 1)) % this.matches.length;
        this.box.querySelectorAll(".sugg").forEach((d, i) => d.classList.toggle("active", i === this.active));
      } else if (e.key === "Enter") {
        e.preventDefault();
        if (this.matches.length) this.pick(this.matches[this.active]);
      } else if (e.key === "Escape") {
        this.input.value = ""; this.box.style.display = "none"; this.input.blur();
      }
      e.stopPropagation();
    }

    add(kind, value) {
      ({ thread: this.threads, mutex: this.mutexes, tracepoint: this.tps })[kind].add(value);
      this.render();
      this.onChange();
    }

    // the CPUs and threads a URL names (the shell's filters): chips for the threads
    setFromHash(cpus, threads) {
      this.cpus = cpus;
      this.threads = threads;
      this.render();
    }

    pick(m) {
      this.input.value = "";
      this.box.style.display = "none";
      this.add(m.kind, m.value);
    }

    render() {
      const chips = [];
      const name = new Map(this.meta.threads.map((t) => [t.tid, t.name]));
      for (const t of this.threads) chips.push(["thread", t, `${name.get(t) || "thread"} [${t}]`]);
      for (const m of this.mutexes) chips.push(["mutex", m, `mutex ${m}`]);
      for (const tp of this.tps) chips.push(["tracepoint", tp, tp]);
      for (const c of this.cpus) chips.push(["cpu", c, `CPU ${c}`]);
      this.chips.innerHTML = chips.map(([k, v, l], i) =>
        `<span class="chip ${k}" data-i="${i}">${esc(l)} <button title="remove this filter" aria-label="remove">×</button></span>`).join("");
      this.chips.querySelectorAll(".chip button").forEach((b) => b.addEventListener("click", () => {
        const [k, v] = chips[+b.parentElement.dataset.i];
        ({ thread: this.threads, mutex: this.mutexes, tracepoint: this.tps, cpu: this.cpus })[k].delete(v);
        this.render();
        this.onChange();
      }));
    }

    // which lanes to show, in order, for the current filters (plus pinned ones)
    lanes(pinned) {
      const out = [];
      for (const l of this.meta.lanes) {
        let show;
        if (l.kind === "cpu") show = !this.cpus.size || this.cpus.has(l.cpu);
        else if (l.kind === "chan") show = true;
        else if (l.kind === "thread") show = this.threads.size ? this.threads.has(l.tid) : l.default;
        else show = this.mutexes.size ? this.mutexes.has(l.mutex) : l.default;
        if (show || (pinned && pinned.has(l.id))) out.push(l);
      }
      for (const tp of this.tps) {
        out.push({ id: `tp:${tp}`, kind: "tp", label: `${tp} events`, group: "Tracepoints", color_by: "cpu", tracepoint: tp });
      }
      return out;
    }

    bright() { return this.threads.size ? this.threads : null; }
  }

  osv.Search = Search;
})(window.osv = window.osv || {});
