// The explorer page: plain JavaScript over the Graphviz SVG of viz.views (node ids are the
// DOT names: u<i>_<t> in the unrolled view, f<i> in the folded one, op<j> in a step's ops)
// and the numbers viz.explorer wrote from the engine.  Nothing is fetched.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (id) => document.getElementById(id);
  const S = { bundle: D.bundles.length - 1, view: "summary", win: 0, sel: null, ops: false,
              sweep: null, cell: null, align: null };
  const names = D.names;
  const part = D.part;
  let playing = null;
  const MAX_HEIGHT = 540;

  const B = () => D.bundles[S.bundle];
  const fmt = (v) => (v === null || v === undefined ? "n/a" : Number(v).toPrecision(6));
  const stepKey = (t) => (t === null ? "s" : String(t));
  const label = (name, t) => (t === null ? name : `${name}(${t})`);

  function parseTitle(title) {         // DOT name -> what it stands for
    let m = /^u(\d+)_(\d+)$/.exec(title);
    if (m) return { kind: "var", name: names[+m[1]], t: +m[2] };
    m = /^u(\d+)$/.exec(title);
    if (m) return { kind: "var", name: names[+m[1]], t: null };
    m = /^u(\d+)_(gap|start|end)$/.exec(title);
    if (m) return { kind: m[2], name: names[+m[1]] };
    m = /^f(\d+)$/.exec(title);
    if (m) return { kind: "folded", name: names[+m[1]] };
    m = /^op(\d+)$/.exec(title);
    if (m) return { kind: "op", j: +m[1] };
    return null;
  }

  // ---------------------------------------------------------------- the graph panel
  function windowOf(t) {
    return D.windows.findIndex(([a, b]) => a <= t && t <= b);
  }

  function currentSvg() {
    if (S.ops) {
      const t = opStep();
      const ops = B().ops[String(t)];
      return ops ? D.templates[ops.template] : "<p class='hint'>no op-level data for this step</p>";
    }
    if (S.view === "folded") return D.svg.folded;
    if (S.view === "window") return D.svg.windows[S.win];
    return D.svg.summary;
  }

  function opStep() {
    if (S.sel && S.sel.t) return S.sel.t;
    return 1;
  }

  function drawGraph() {
    const g = $("graph");
    g.innerHTML = currentSvg();
    const svg = g.querySelector("svg");
    if (svg) {                     // natural size, but at most MAX_HEIGHT px high (wide graphs scroll)
      const w = parseFloat(svg.getAttribute("width")) * 4 / 3, h = parseFloat(svg.getAttribute("height")) * 4 / 3;
      const scale = Math.min(1, MAX_HEIGHT / h);
      svg.style.width = `${w * scale}px`;
      svg.style.height = `${h * scale}px`;
    }
    g.querySelectorAll("g.node").forEach((el) => {
      const title = el.querySelector("title");
      el.dataset.key = title ? title.textContent : "";
      el.addEventListener("click", () => clickNode(el.dataset.key));
    });
    $("view-folded").classList.toggle("on", S.view === "folded" && !S.ops);
    $("view-unrolled").classList.toggle("on", S.view !== "folded" && !S.ops);
    $("ops-toggle").checked = S.ops;
    const nav = $("window-nav");
    nav.style.display = S.view === "window" && !S.ops ? "" : "none";
    if (S.view === "window") {
      const [a, b] = D.windows[S.win];
      $("win-label").textContent = ` steps ${a}\u2013${b} of ${D.steps} `;
    }
    decorate();
  }

  function nodesOf(pred) {
    return Array.from($("graph").querySelectorAll("g.node")).filter((el) => pred(parseTitle(el.dataset.key), el));
  }

  function decorate() {
    const graph = $("graph");
    graph.querySelectorAll("g.node").forEach((el) => el.classList.remove("sel", "hl", "done", "pending", "current"));
    if (S.sel) {
      nodesOf((p) => p && ((S.ops && p.kind === "op" && S.sel.op === p.j) ||
        (!S.ops && p.kind === "var" && p.name === S.sel.name && p.t === S.sel.t) ||
        (!S.ops && p.kind === "folded" && p.name === S.sel.name))).forEach((el) => el.classList.add("sel"));
    }
    if (S.cell) {
      const [t0, t1, k0, k1] = S.cell;
      nodesOf((p) => p && p.kind === "var" && p.t !== null &&
        ((p.name === "L" && p.t >= t0 && p.t <= t1) || (p.name === part && p.t >= k0 && p.t <= k1)))
        .forEach((el) => el.classList.add("hl"));
      const lo = D.keep + 1, hi = D.steps - D.keep;   // the steps a summary's ×τ box hides
      nodesOf((p) => p && p.kind === "gap" && S.view === "summary" &&
        ((p.name === "L" && t0 <= hi && t1 >= lo) || (p.name === part && k0 <= hi && k1 >= lo)))
        .forEach((el) => el.classList.add("hl"));
    }
    if (S.align) {                   // alignment cell (t, k): decoder step t, encoder step k
      const a = B().alignment, [t, k] = S.align;
      nodesOf((p) => p && p.kind === "var" && ((p.t === t && a.decoder.includes(p.name)) ||
        (p.t === k && a.encoder.includes(p.name)))).forEach((el) => el.classList.add("hl"));
    }
    graph.classList.toggle("sweeping", S.sweep !== null);
    if (S.sweep !== null) {
      const pos = positions();
      graph.querySelectorAll("g.node").forEach((el) => {
        const p = pos[el.dataset.key];
        if (p === undefined || p === null) return;
        el.classList.add(p < S.sweep - 1 ? "done" : p === S.sweep - 1 ? "current" : "pending");
      });
    }
  }

  function positions() {             // DOT name -> index in the engine's visit order
    const out = {};
    if (S.ops) {
      const ops = B().ops[String(opStep())];
      if (ops) ops.nodes.forEach((n, j) => { out[`op${j}`] = n[2]; });
    } else {
      B().sweep.forEach(([i, t, pos]) => { out[t === null ? `u${i}` : `u${i}_${t}`] = pos; });
    }
    return out;
  }

  function clickNode(key) {
    const p = parseTitle(key);
    if (!p) return;
    if (p.kind === "gap") {
      S.view = "window";
      S.win = Math.max(0, windowOf(D.keep + 1));
    } else if (p.kind === "start" && S.view === "window") {
      S.win = Math.max(0, S.win - 1);
    } else if (p.kind === "end" && S.view === "window") {
      S.win = Math.min(D.windows.length - 1, S.win + 1);
    } else if (p.kind === "var") {
      S.sel = { name: p.name, t: p.t };
    } else if (p.kind === "folded") {
      S.sel = { name: p.name, t: S.sel && S.sel.t ? S.sel.t : (B().vars[p.name].norm["1"] !== undefined ? 1 : null) };
    } else if (p.kind === "op") {
      S.sel = Object.assign({}, S.sel || { name: null, t: opStep() }, { op: p.j });
    }
    update(true);
  }

  // ---------------------------------------------------------------- the info panel
  function histogram(h, colour) {
    if (!h) return "";
    const w = 300, hgt = 50, n = h.counts.length, top = Math.max(...h.counts, 1);
    const bars = h.counts.map((c, i) => `<rect x="${(i * w) / n}" y="${hgt - (c / top) * hgt}" width="${w / n - 1}" height="${(c / top) * hgt}" fill="${colour}"/>`).join("");
    return `<svg width="${w}" height="${hgt + 14}">${bars}<text x="0" y="${hgt + 12}" font-size="10">${fmt(h.lo)}</text><text x="${w}" y="${hgt + 12}" font-size="10" text-anchor="end">${fmt(h.hi)}</text></svg>`;
  }

  function vectorHtml(id, values, shape) {
    if (!values) return `<div id="${id}" class="numbers">not kept (outside the drawn windows)</div>`;
    const size = shape.reduce((a, b) => a * b, 1);
    const more = size > values.length ? ` \u2026 (${size - values.length} more)` : "";
    return `<div id="${id}" class="numbers" data-values='${JSON.stringify(values)}'>[${values.map(fmt).join(", ")}${more}]</div>`;
  }

  function drawInfo() {
    const info = $("info");
    if (!S.sel) { info.innerHTML = "<p class='hint'>Click a variable node.</p>"; return; }
    if (S.ops && S.sel.op !== undefined) {
      const ops = B().ops[String(opStep())];
      const n = ops && ops.nodes[S.sel.op];
      if (!n) { info.innerHTML = ""; return; }
      info.innerHTML = `<h3 id="info-title">op node ${S.sel.op} of step ${opStep()}</h3>
        <p>‖value‖ = <span id="info-norm">${fmt(n[0])}</span><br>‖∂L/∂node‖ = <span id="info-gnorm">${fmt(n[1])}</span><br>
        visited ${n[2] === null ? "never (needs no gradient)" : `at ${n[2] + 1} of ${B().sweep_total} in the backward sweep`}</p>
        <p>values</p>${histogram(n[3], "#6b8fb3")}`;
      return;
    }
    const v = B().vars[S.sel.name];
    const k = stepKey(S.sel.t);
    if (!v || v.norm[k] === undefined) { info.innerHTML = `<p>${label(S.sel.name, S.sel.t)}: not in this run</p>`; return; }
    const grad = v.grad[k];
    info.innerHTML = `<h3 id="info-title">${label(S.sel.name, S.sel.t)}</h3>
      <p>shape ${JSON.stringify(v.shape)}<br>‖${S.sel.name}‖ = <span id="info-norm">${fmt(v.norm[k])}</span><br>
      ‖∂L/∂${S.sel.name}‖ = <span id="info-gnorm">${fmt(v.gnorm[k])}</span></p>
      <p>value</p>${vectorHtml("info-value", v.value[k], v.shape)}${histogram(v.vhist[k], "#6b8fb3")}
      <p>gradient ∂L/∂${label(S.sel.name, S.sel.t)}</p>${v.gnorm[k] === null ? `<div id='info-grad' class='numbers'>${B().loss === null ? "no loss (no targets): no gradient" : "needs no gradient"}</div>` : vectorHtml("info-grad", grad, v.shape)}${histogram(v.ghist[k], "#d9822b")}`;
  }

  // ---------------------------------------------------------------- sweep slider
  function drawSweep() {
    const slider = $("sweep");
    const total = B().sweep_total;
    $("sweep-bar").style.display = total ? "" : "none";
    slider.max = total;
    slider.value = S.sweep === null ? total : S.sweep;
    if (S.sweep === null) { $("sweep-label").textContent = `${total} nodes: move the slider to replay the engine's visit order`; return; }
    const visited = B().sweep.filter((s) => s[2] < S.sweep);
    const last = visited[visited.length - 1];
    $("sweep-label").textContent = `visit ${S.sweep} of ${total}` +
      (last ? `; last variable complete: ${label(names[last[0]], last[1])}` : "");
  }

  // ---------------------------------------------------------------- heatmap
  const RAMP = [[255, 255, 217], [199, 233, 180], [65, 182, 196], [34, 94, 168], [8, 29, 88]];
  function colour(x) {
    const f = Math.max(0, Math.min(1, x)) * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(f)), r = f - i;
    const c = RAMP[i].map((v, j) => Math.round(v + (RAMP[i + 1][j] - v) * r));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function heatRange(h) {
    let lo = Infinity, hi = -Infinity;
    h.cells.forEach((row) => row.forEach((v) => { if (v > 0) { lo = Math.min(lo, Math.log10(v)); hi = Math.max(hi, Math.log10(v)); } }));
    return [lo, hi];
  }
  function drawHeat() {
    const h = B().diag.connectivity, canvas = $("heat"), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    $("heat-title").textContent = `connectivity ‖∂L(t)/∂${part}(k)‖ (rows t, columns k)`;
    if (!h) { ctx.fillText("no loss terms", 10, 20); return; }
    const [lo, hi] = heatRange(h), rows = h.cells.length, cols = h.cells[0].length;
    $("heat-scale").textContent = `log colour scale: ${fmt(Math.pow(10, lo))} (light) to ${fmt(Math.pow(10, hi))} (dark); white: zero` +
      (h.sampled ? `; ${rows} sampled rows` : "") + (cols < D.steps ? `; ${cols} column bins of the largest entry` : "");
    const cw = canvas.width / cols, ch = canvas.height / rows;
    h.cells.forEach((row, i) => row.forEach((v, j) => {
      ctx.fillStyle = v === null ? "#ddd" : v > 0 ? colour(hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1) : "#fff";
      ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
    }));
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 2;
    if (S.sel && S.sel.t !== null && !S.ops) {
      if (S.sel.name === part) {
        const j = binOf(h.col_edges, S.sel.t);
        if (j >= 0) ctx.strokeRect(j * cw, 0, cw, canvas.height);
      } else if (S.sel.name === "L") {
        const i = rowOf(h, S.sel.t);
        if (i >= 0) ctx.strokeRect(0, i * ch, canvas.width, ch);
      }
    }
    if (S.cell) {
      ctx.strokeStyle = "#000";
      ctx.strokeRect(S.cell[5] * cw, S.cell[4] * ch, cw, ch);
    }
  }
  function binOf(edges, t) {   // edges are 0-based bin starts: step t (1-based) is in bin j if edges[j] < t <= edges[j+1]
    for (let j = 0; j + 1 < edges.length; j++) if (edges[j] < t && t <= edges[j + 1]) return j;
    return -1;
  }
  function rowOf(h, t) { return h.sampled ? h.rows.indexOf(t) : binOf(h.row_edges, t); }
  function cellSteps(h, i, j) {     // [t0, t1, k0, k1] of heatmap cell (i, j)
    const k0 = h.col_edges[j] + 1, k1 = h.col_edges[j + 1];
    if (h.sampled) return [h.rows[i], h.rows[i], k0, k1];
    return [h.row_edges[i] + 1, h.row_edges[i + 1], k0, k1];
  }
  function cellAt(ev) {
    const h = B().diag.connectivity, canvas = $("heat");
    if (!h) return null;
    const r = canvas.getBoundingClientRect();
    const j = Math.floor(((ev.clientX - r.left) / r.width) * h.cells[0].length);
    const i = Math.floor(((ev.clientY - r.top) / r.height) * h.cells.length);
    if (i < 0 || j < 0 || i >= h.cells.length || j >= h.cells[0].length) return null;
    return cellSteps(h, i, j).concat([i, j]);
  }
  function cellCenter(t, k) {      // for tests and links: canvas pixel of the cell holding (t, k)
    const h = B().diag.connectivity, canvas = $("heat");
    const i = rowOf(h, t), j = binOf(h.col_edges, k);
    return { x: ((j + 0.5) * canvas.clientWidth) / h.cells[0].length, y: ((i + 0.5) * canvas.clientHeight) / h.cells.length };
  }
  function range(a, b) { return a === b ? `${a}` : `${a}\u2013${b}`; }
  function hoverCell(ev) {
    const c = cellAt(ev);
    S.cell = c;
    const h = B().diag.connectivity;
    $("heat-label").textContent = c ? `‖∂L(${range(c[0], c[1])})/∂${part}(${range(c[2], c[3])})‖ = ${fmt(h.cells[c[4]][c[5]])}` : "";
    decorate();
    drawHeat();
  }
  function clickCell(ev) {
    const c = cellAt(ev);
    if (!c) return;
    const w = windowOf(c[2]);
    if (w >= 0 && !(S.view === "summary" && (c[2] <= D.keep || c[2] > D.steps - D.keep))) { S.view = "window"; S.win = w; }
    S.ops = false;
    S.sel = { name: part, t: c[2] };
    update(true);
  }

  // ---------------------------------------------------------------- alignment (attention)
  function drawAlign() {
    const a = B().alignment;
    $("align-panel").style.display = a ? "" : "none";
    if (!a) return;
    const canvas = $("align"), ctx = canvas.getContext("2d");
    const rows = a.cells.length, cols = a.cells[0].length, cw = canvas.width / cols, ch = canvas.height / rows;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    a.cells.forEach((row, i) => row.forEach((v, j) => {
      ctx.fillStyle = v > 0 ? colour(v) : "#fff";
      ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
    }));
    if (S.align) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect((S.align[1] - 1) * cw, (S.align[0] - 1) * ch, cw, ch);
    }
  }
  function alignAt(ev) {
    const a = B().alignment, r = $("align").getBoundingClientRect();
    const k = Math.floor(((ev.clientX - r.left) / r.width) * a.cells[0].length) + 1;
    const t = Math.floor(((ev.clientY - r.top) / r.height) * a.cells.length) + 1;
    return t >= 1 && k >= 1 && t <= a.cells.length && k <= a.cells[0].length ? [t, k] : null;
  }
  function alignCenter(t, k) {      // for tests: canvas pixel of the cell (t, k)
    const a = B().alignment, canvas = $("align");
    return { x: ((k - 0.5) * canvas.clientWidth) / a.cells[0].length, y: ((t - 0.5) * canvas.clientHeight) / a.cells.length };
  }
  function hoverAlign(ev) {
    S.align = alignAt(ev);
    const a = B().alignment;
    $("align-label").textContent = S.align ? `α(${S.align[0]}, ${S.align[1]}) = ${fmt(a.cells[S.align[0] - 1][S.align[1] - 1])}` : "";
    decorate();
    drawAlign();
  }

  // ---------------------------------------------------------------- plots
  function plot(svg, series, opts) {
    const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), L = 48, R = 8, T = 10 + 13 * series.length, Bm = 34;
    const pts = series.flatMap((s) => s.y.map((y, i) => [s.x[i], y])).filter(([x, y]) => y !== null && (!opts.logy || y > 0));
    if (!pts.length) { svg.innerHTML = `<text x="10" y="20" font-size="12">${opts.empty || "nothing to plot"}</text>`; return; }
    const tx = (v) => (opts.logy ? Math.log10(v) : v);
    let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
    let y0 = Math.min(...pts.map((p) => tx(p[1]))), y1 = Math.max(...pts.map((p) => tx(p[1])));
    if (opts.ymin !== undefined) y0 = Math.min(y0, opts.ymin);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { if (opts.ymin !== undefined && y0 === opts.ymin) y1 = y0 + 1; else { y1 += 0.5; y0 -= 0.5; } }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - Bm - ((tx(y) - y0) / (y1 - y0)) * (H - T - Bm);
    let out = `<line x1="${L}" y1="${H - Bm}" x2="${W - R}" y2="${H - Bm}" stroke="#888"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - Bm}" stroke="#888"/>`;
    const powers = opts.logy && Math.ceil(y0) <= Math.floor(y1);        // ticks at powers of ten, else the ends
    const yt = powers ? [Math.ceil(y0), Math.floor(y1)] : [y0, y1];
    yt.forEach((v) => { const y = H - Bm - ((v - y0) / (y1 - y0)) * (H - T - Bm); out += `<text x="${L - 4}" y="${y + 4}" font-size="10" text-anchor="end">${powers ? "1e" + v : Number(opts.logy ? Math.pow(10, v) : v).toPrecision(3)}</text>`; });
    out += `<text x="${L}" y="${H - Bm + 14}" font-size="10">${x0}</text><text x="${W - R}" y="${H - Bm + 14}" font-size="10" text-anchor="end">${x1}</text>`;
    out += `<text x="${(L + W) / 2}" y="${H - 4}" font-size="11" text-anchor="middle">${opts.xlabel}</text>`;
    series.forEach((s, n) => {
      const seg = s.x.map((x, i) => (s.y[i] === null || (opts.logy && s.y[i] <= 0) ? null : `${sx(x).toFixed(1)},${sy(s.y[i]).toFixed(1)}`));
      const d = seg.reduce((acc, p, i) => acc + (p === null ? "" : (i && seg[i - 1] !== null ? " L" : " M") + p), "");
      out += `<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="1.5" ${s.dash ? 'stroke-dasharray="4 3"' : ""}/>`;
      out += `<text x="${L + 8}" y="${11 + 13 * n}" font-size="11" fill="${s.colour}">${s.label}</text>`;
    });
    svg.innerHTML = out;
  }
  function drawPlots() {
    const d = B().diag, steps = Array.from({ length: D.steps }, (_, i) => i + 1);
    if (d.spectra) {
      plot($("plot-spectra"), [{ x: steps, y: d.spectra.norm, colour: "#2b6cb0", label: "spectral norm ‖J(t)‖₂" },
        { x: steps, y: d.spectra.radius, colour: "#d9822b", label: "spectral radius ρ(J(t))" }], { logy: true, xlabel: "t" });
    } else plot($("plot-spectra"), [], { xlabel: "t", empty: "no Jacobians for this design" });
    if (d.lag) {
      const fit = d.lag.lags.map((k) => d.lag.scale * Math.pow(d.lag.rate, k));
      plot($("plot-lag"), [{ x: d.lag.lags, y: d.lag.norms, colour: "#2b6cb0", label: "‖J(t)…J(t−k+1)‖₂ (geometric mean over t)" },
        { x: d.lag.lags, y: fit, colour: "#555", dash: true, label: `fit C·ρᵏ, ρ = ${fmt(d.lag.rate)}` }], { logy: true, xlabel: "lag k" });
      $("lag-label").textContent = `fitted decay rate ρ = ${fmt(d.lag.rate)} per step (${d.lag.rate < 1 ? "vanishing" : "exploding"})`;
    } else { plot($("plot-lag"), [], { xlabel: "k", empty: "no Jacobians for this design" }); $("lag-label").textContent = ""; }
    const series = [{ x: steps, y: d.saturation, colour: "#c53030", label: "fraction of saturated tanh/σ units" }];
    if (d.ratio) series.push({ x: steps, y: d.ratio, colour: "#2f855a", label: `‖(∇${part} L) ∂${part}(t)/∂${part}(t−1)‖ / ‖∇${part} L‖ (eq. 10.52)` });
    plot($("plot-sat"), series, { logy: false, xlabel: "t", ymin: 0 });
  }

  // ---------------------------------------------------------------- state in the URL hash
  function writeHash() {
    const parts = [`b=${S.bundle}`, `v=${S.view === "window" ? "w" + S.win : S.view}`];
    if (S.sel) parts.push(`sel=${encodeURIComponent(S.sel.name)},${S.sel.t === null ? "" : S.sel.t}` + (S.sel.op !== undefined ? `,${S.sel.op}` : ""));
    if (S.ops) parts.push("ops=1");
    if (S.sweep !== null) parts.push(`sw=${S.sweep}`);
    history.replaceState(null, "", "#" + parts.join("&"));
  }
  function readHash() {
    const q = {};
    location.hash.replace(/^#/, "").split("&").filter(Boolean).forEach((kv) => { const i = kv.indexOf("="); q[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); });
    if (q.b !== undefined && D.bundles[+q.b]) S.bundle = +q.b;
    if (q.v) {
      const m = /^w(\d+)$/.exec(q.v);
      if (m && D.windows[+m[1]]) { S.view = "window"; S.win = +m[1]; } else if (q.v === "folded" || q.v === "summary") S.view = q.v;
    }
    if (q.sel) {
      const [name, t, op] = q.sel.split(",");
      S.sel = { name, t: t === "" ? null : +t };
      if (op !== undefined) S.sel.op = +op;
    }
    S.ops = q.ops === "1";
    S.sweep = q.sw !== undefined ? Math.min(+q.sw, B().sweep_total) : null;
  }

  // ---------------------------------------------------------------- wiring
  function update(redraw) {
    if (redraw) drawGraph(); else decorate();
    drawInfo();
    drawSweep();
    drawHeat();
    drawAlign();
    writeHash();
  }
  function drawAll() {
    $("title").textContent = D.title;
    $("bundles").innerHTML = D.bundles.length > 1 ? D.bundles.map((b, i) => `<button id="bundle-${i}" class="${i === S.bundle ? "on" : ""}">${b.label}</button>`).join(" ") : "";
    D.bundles.forEach((b, i) => { const el = $(`bundle-${i}`); if (el) el.addEventListener("click", () => { S.bundle = i; drawAll(); }); });
    const bl = B();
    $("loss").textContent = bl.loss === null ? "" : `loss L = ${fmt(bl.loss)} over ${D.steps} steps`;
    $("notes").textContent = bl.diag.notes.join("; ");
    drawPlots();
    update(true);
  }

  $("view-folded").addEventListener("click", () => { S.view = "folded"; S.ops = false; update(true); });
  $("view-unrolled").addEventListener("click", () => { if (S.view === "folded") S.view = "summary"; S.ops = false; update(true); });
  $("ops-toggle").addEventListener("change", (e) => { S.ops = e.target.checked; if (S.sel) delete S.sel.op; update(true); });
  $("win-prev").addEventListener("click", () => { S.win = Math.max(0, S.win - 1); update(true); });
  $("win-next").addEventListener("click", () => { S.win = Math.min(D.windows.length - 1, S.win + 1); update(true); });
  $("collapse").addEventListener("click", () => { S.view = "summary"; update(true); });
  $("goto-step").max = D.steps;
  $("goto-step").addEventListener("change", (e) => {     // the drawn window nearest to step t
    const t = Math.max(1, Math.min(D.steps, Math.round(+e.target.value)));
    const dist = D.windows.map(([a, b]) => (t < a ? a - t : t > b ? t - b : 0));
    S.view = "window";
    S.win = dist.indexOf(Math.min(...dist));
    S.ops = false;
    const [a, b] = D.windows[S.win];
    S.sel = { name: part, t: Math.max(a, Math.min(b, t)) };
    update(true);
  });
  $("sweep").addEventListener("input", (e) => { S.sweep = +e.target.value; update(false); });
  $("sweep-off").addEventListener("click", () => { S.sweep = null; update(false); });
  $("sweep-play").addEventListener("click", () => {
    if (playing) { clearInterval(playing); playing = null; return; }
    const total = B().sweep_total, step = Math.max(1, Math.round(total / 300));
    S.sweep = 0;
    playing = setInterval(() => { S.sweep = Math.min(total, S.sweep + step); update(false); if (S.sweep >= total) { clearInterval(playing); playing = null; } }, 30);
  });
  $("heat").addEventListener("mousemove", hoverCell);
  $("heat").addEventListener("mouseleave", () => { S.cell = null; $("heat-label").textContent = ""; decorate(); drawHeat(); });
  $("heat").addEventListener("click", clickCell);
  $("align").addEventListener("mousemove", hoverAlign);
  $("align").addEventListener("mouseleave", () => { S.align = null; $("align-label").textContent = ""; decorate(); drawAlign(); });
  window.addEventListener("hashchange", () => { readHash(); drawAll(); });

  readHash();
  drawAll();
  window.explorer = { data: D, state: S, cellCenter, alignCenter, clickNode, update };
})();
