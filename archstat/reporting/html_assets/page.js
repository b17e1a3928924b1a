// archstat HTML page: builds each model's table from the embedded JSON (textContent only), colours the
// graph by the chosen quantity, sorts and filters the table, and links graph nodes and table rows.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("archstat-data").textContent);
  const COLS = DATA.columns;
  const fmt = (v) => (v === null || v === undefined ? "" : typeof v === "number" ? v.toLocaleString("en-US") : v);
  const K = Object.fromEntries(COLS.map((c, k) => [c.key, k]));
  const tip = document.getElementById("tip");

  function cell(v, c) {
    const td = document.createElement("td");
    if (c.unit === "KB" && typeof v === "number") v = Math.round((v / 1024) * 100) / 100;
    td.textContent = fmt(v);
    if (c.num) td.className = "num";
    return td;
  }

  function buildTable(sec, model) {
    const table = sec.querySelector("table.t");
    const head = document.createElement("tr");
    COLS.forEach((c, k) => {
      const th = document.createElement("th");
      th.textContent = c.label + (c.unit ? " (" + c.unit + ")" : "");
      th.dataset.k = k;
      head.appendChild(th);
    });
    table.tHead.appendChild(head);
    const body = table.tBodies[0];
    const trs = model.rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.i = r[K.i];
      r.forEach((v, k) => tr.appendChild(cell(k === K.name && v === "" ? "(model)" : v, COLS[k])));
      return tr;
    });
    trs.forEach((tr) => body.appendChild(tr));
    return trs;
  }

  function sortBy(sec, model, trs, k) {
    const th = sec.querySelectorAll("table.t th")[k];
    const asc = th.getAttribute("aria-sort") !== "ascending";
    sec.querySelectorAll("table.t th").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const key = (i) => model.rows[i][k];
    const order = trs.map((tr) => +tr.dataset.i).sort((a, b) => {
      const x = key(a), y = key(b);
      const d = COLS[k].num ? (x ?? -1) - (y ?? -1) : String(x).localeCompare(String(y));
      return (asc ? d : -d) || a - b;
    });
    const body = sec.querySelector("table.t tbody");
    order.forEach((i) => body.appendChild(trs[i]));
  }

  function nodeOf(view, i) {
    for (const g of view.querySelectorAll("g.n[data-i], g.n[data-a]")) {
      if (g.dataset.i !== undefined ? +g.dataset.i === i : +g.dataset.a <= i && i <= +g.dataset.b) return g;
    }
    return null;
  }

  function colour(sec, model, qty) {
    const k = K[qty];
    const total = (g) => {
      if (g.dataset.i !== undefined) return model.rows[+g.dataset.i][k];
      let s = 0;
      for (let i = +g.dataset.a; i <= +g.dataset.b; i++) s += model.rows[i][k];
      return s;
    };
    sec.querySelectorAll(".view").forEach((view) => {
      const nodes = [...view.querySelectorAll("g.n[data-i], g.n[data-a]")];
      const vals = nodes.map(total);
      const max = Math.max(1, ...vals);
      nodes.forEach((g, j) => {
        const t = Math.sqrt(vals[j] / max);
        const light = Math.round(96 - 40 * t);
        g.firstChild.style.fill = vals[j] > 0 ? "hsl(" + Math.round(220 - 200 * t) + ",70%," + light + "%)" : "";
        g.querySelector(".b").setAttribute("width", (140 * vals[j] / max).toFixed(1));
      });
    });
    const name = sec.querySelector("button[data-q=" + qty + "]").textContent;
    sec.querySelector(".legend").textContent = "fill and bar: " + name +
      " per node (sqrt colour scale; bar = share of the largest node; pale = 0)";
  }

  function setup(sec) {
    const model = DATA.models[+sec.dataset.m];
    const trs = buildTable(sec, model);
    const views = [...sec.querySelectorAll(".view")];
    const gbox = sec.querySelector(".gbox"), tbox = sec.querySelector(".tbox");
    let current = views[0], marked = [];
    const mark = (i, scrollRow, scrollNode) => {
      marked.forEach((e) => e.classList.remove("hl"));
      marked = [];
      const node = nodeOf(current, i);
      const lo = node && node.dataset.a !== undefined ? +node.dataset.a : i;
      const hi = node && node.dataset.b !== undefined ? +node.dataset.b : i;
      for (let r = lo; r <= hi; r++) marked.push(trs[r]);
      if (node) marked.push(node);
      marked.forEach((e) => e.classList.add("hl"));
      if (scrollRow) trs[lo].scrollIntoView({block: "nearest"});
      if (scrollNode && node) node.scrollIntoView({block: "center", inline: "nearest"});
    };
    const show = (key, row) => {
      views.forEach((v) => (v.hidden = v.dataset.v !== key));
      current = views.find((v) => v.dataset.v === key) || views[0];
      sec.querySelectorAll("button[data-v]").forEach((b) => b.classList.toggle("on", b.dataset.v === key));
      if (row !== undefined) mark(row, false, true);
    };
    sec.querySelectorAll("button[data-v]").forEach((b) => b.addEventListener("click", () => show(b.dataset.v)));
    sec.querySelectorAll("button[data-q]").forEach((b) => b.addEventListener("click", () => {
      sec.querySelectorAll("button[data-q]").forEach((o) => o.classList.toggle("on", o === b));
      colour(sec, model, b.dataset.q);
    }));
    gbox.addEventListener("mouseover", (ev) => {
      const g = ev.target.closest("g.n[data-i], g.n[data-a]");
      if (!g) { tip.style.display = "none"; return; }
      const i = +(g.dataset.i ?? g.dataset.a);
      mark(i, true, false);
      const r = model.rows[i];
      tip.textContent = g.dataset.i !== undefined ? (r[K.name] || "(model)") + "  " + r[K.op] + "\nout " +
        r[K.out] + "  MACs " + fmt(r[K.macs]) + "  params " + fmt(r[K.params]) : g.textContent;
      tip.style.display = "block";
      tip.style.left = ev.clientX + 12 + "px";
      tip.style.top = ev.clientY + 12 + "px";
    });
    gbox.addEventListener("mouseleave", () => (tip.style.display = "none"));
    gbox.addEventListener("click", (ev) => {
      const f = ev.target.closest("g.f");
      if (f) return show(f.dataset.v, +f.dataset.r);
      const g = ev.target.closest("g.n[data-i], g.n[data-a]");
      if (!g) return;
      if (g.dataset.a !== undefined && g.dataset.a !== g.dataset.b) {  // expand the module: one view finer
        const k = views.indexOf(current);
        return show(views[Math.max(0, k - 1)].dataset.v, +g.dataset.a);
      }
      mark(+(g.dataset.i ?? g.dataset.a), true, false);
    });
    tbox.addEventListener("mouseover", (ev) => {
      const tr = ev.target.closest("tbody tr");
      if (tr) mark(+tr.dataset.i, false, false);
    });
    tbox.addEventListener("click", (ev) => {
      const th = ev.target.closest("th");
      if (th) return sortBy(sec, model, trs, +th.dataset.k);
      const tr = ev.target.closest("tbody tr");
      if (tr) mark(+tr.dataset.i, false, true);
    });
    sec.querySelector("input.filter").addEventListener("input", (ev) => {
      const q = ev.target.value.toLowerCase();
      trs.forEach((tr, i) => {
        const r = model.rows[i];
        tr.hidden = q !== "" && !(r[K.name] + " " + r[K.op] + " " + r[K.kind]).toLowerCase().includes(q);
      });
    });
    colour(sec, model, "macs");
    const wanted = /^#view=(\w+)$/.exec(location.hash);  // page.html#view=m1 opens on the module view
    if (wanted && views.some((v) => v.dataset.v === wanted[1])) show(wanted[1]);
  }

  document.querySelectorAll("section.model").forEach(setup);
  document.body.dataset.ready = "1";
})();
