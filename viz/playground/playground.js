// The playground page: controls and live views of the run the server trains.
// Everything shown is built with created elements and textContent (no innerHTML of data);
// the unrolled view is the server's Graphviz SVG, parsed as XML and imported.
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const token = new URLSearchParams(location.search).get("token") || "";
  const FIELDS = ["design", "task", "delay", "length", "hidden", "rho", "lr", "clip", "batch", "trunc", "seed", "compare", "optimizer"];
  const DESIGNS = ["elman", "lstm", "gru", "leaky", "esn"];
  const TASKS = ["copy", "parity", "chars", "signal"];
  const PRESETS = {
    // plain SGD shows the cliff: Adam divides each step by the gradient's own size
    vanishing: {design: "elman", task: "copy", delay: 30, rho: 0.5, clip: 1, lr: 0.01, optimizer: "adam", compare: ""},
    exploding: {design: "elman", task: "copy", delay: 30, rho: 1.5, clip: 0, lr: 0.1, optimizer: "sgd", compare: ""},
    clipping: {design: "elman", task: "copy", delay: 30, rho: 1.5, clip: 1, lr: 0.1, optimizer: "sgd", compare: ""},
    race: {design: "elman", task: "copy", delay: 30, rho: 1.0, clip: 1, lr: 0.01, optimizer: "adam", compare: "lstm"},
  };
  const $ = (id) => document.getElementById(id);
  const state = {version: -1, config: null, runs: [], shownViews: []};
  window.playground = state;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? v.toExponential(2) : String(+v.toPrecision(4));
  }

  async function api(path, body) {
    const r = await fetch(path + "?token=" + encodeURIComponent(token), {
      method: body === undefined ? "GET" : "POST", cache: "no-store",
      headers: body === undefined ? {} : {"Content-Type": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }
  function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

  // ---------------------------------------------------------------- controls and the hash
  function fillSelect(sel, names, blank) {
    if (blank) sel.appendChild(el("option", "(none)")).value = "";
    for (const n of names) sel.appendChild(el("option", n)).value = n;
  }
  fillSelect($("c-design"), DESIGNS); fillSelect($("c-task"), TASKS); fillSelect($("c-compare"), ["elman", "lstm", "gru", "leaky"], true);

  function readControls() {
    const c = {};
    for (const f of FIELDS) c[f] = $("c-" + f).value;
    return c;
  }
  function setControls(c) {
    for (const f of FIELDS) if (c[f] !== undefined && c[f] !== null) $("c-" + f).value = String(c[f]);
  }
  function hashConfig() {
    const p = new URLSearchParams(location.hash.slice(1));
    const c = {};
    for (const f of FIELDS) if (p.has(f)) c[f] = p.get(f);
    return c;
  }
  function writeHash(c) {
    const p = new URLSearchParams();
    for (const f of FIELDS) if (c[f] !== undefined && c[f] !== "") p.set(f, c[f]);
    history.replaceState(null, "", location.pathname + location.search + "#" + p.toString());
  }
  function sameConfig(a, b) {
    return FIELDS.every((f) => a[f] === undefined || String(a[f]) === String(b[f] === undefined ? "" : b[f]));
  }
  for (const f of FIELDS) $("c-" + f).addEventListener("change", () => {
    writeHash(readControls());
    $("status").textContent = "changed: press reset to start a run with it";
  });

  async function reset(config) {
    showError(null);
    try { await api("/api/reset", {config: config}); writeHash(config); } catch (e) { showError(e); }
  }
  async function command(name) {
    showError(null);
    try { await api("/api/" + name, {}); } catch (e) { showError(e); }
  }
  $("b-play").addEventListener("click", () => command("play"));
  $("b-pause").addEventListener("click", () => command("pause"));
  $("b-step").addEventListener("click", () => command("step"));
  $("b-save").addEventListener("click", () => command("save"));
  $("b-resume").addEventListener("click", () => command("resume"));
  $("b-reset").addEventListener("click", () => reset(readControls()));
  for (const name in PRESETS) {
    $("p-" + name).addEventListener("click", async () => {
      const c = Object.assign(readControls(), PRESETS[name]);
      setControls(c);
      await reset(c);
      await command("play");
    });
  }

  // ---------------------------------------------------------------- charts
  function lineChart(svg, series, opts) {
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
    const L = 58, R = 8, T = 8, B = 30;     // below the axis: the tick labels, then the axis name
    const tf = opts.log ? (v) => Math.log10(v) : (v) => v;
    let xs = [], ys = [], all = [];     // the x axis spans every point, a gap (no value) too
    for (const s of series) for (const [x, y] of s.points) {
      all.push(x);
      if (y === null || (opts.log && !(y > 0))) continue;
      xs.push(x); ys.push(tf(y));
    }
    for (const h of (opts.hlines || [])) if (!opts.log || h.y > 0) ys.push(tf(h.y));
    // points that are all NaN, infinite (null) or, on a log axis, 0 are not "no data"
    const empty = !all.length ? "no data yet" : opts.log ? "no point above 0 (every value NaN, infinite or 0)" : "every value NaN or infinite";
    if (!xs.length) { svg.appendChild(svgEl("text", {x: L, y: H / 2, class: "axis"}, empty)); return; }
    let x0 = Math.min(...all), x1 = Math.max(...all), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (opts.ymin !== undefined) y0 = Math.min(y0, opts.ymin);
    if (opts.ymax !== undefined) y1 = Math.max(y1, opts.ymax);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    const px = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}));
    svg.appendChild(svgEl("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}));
    const xticks = [];       // an integer axis labels whole numbers, each one where it stands
    for (let i = 0; i <= 4; i++) {
      const yv = y0 + (y1 - y0) * i / 4;
      svg.appendChild(svgEl("text", {x: L - 4, y: py(yv) + 3, "text-anchor": "end", class: "axis"},
                            opts.log ? fmt(Math.pow(10, yv)) : fmt(yv)));
      const xv = x0 + (x1 - x0) * i / 4;
      const xt = opts.integerX ? Math.round(xv) : xv;
      if (!xticks.includes(xt)) xticks.push(xt);
    }
    for (const xt of xticks) {
      const label = svgEl("text", {x: px(xt), y: H - B + 13, "text-anchor": "middle", class: "axis xtick"},
                          opts.integerX ? String(xt) : fmt(xt));
      svg.appendChild(label);
      const box = label.getBBox();       // the last one centred on the right edge: keep it inside
      if (box.x + box.width > W) label.setAttribute("x", W - box.width / 2);
    }
    // 14 px from the ticks' baseline (10 px text): the last tick label, over the right end, clears it
    if (opts.xlabel) svg.appendChild(svgEl("text", {x: W - R, y: H - 3, "text-anchor": "end", class: "axis xname"}, opts.xlabel));
    const hlines = (opts.hlines || []).filter((h) => !opts.log || h.y > 0);
    for (const h of hlines)
      svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: py(tf(h.y)), y2: py(tf(h.y)), stroke: h.color, "stroke-dasharray": "4 3"}));
    const taken = [];        // what a label must not cover: the curves, dots and other labels
    for (const s of series) {
      const xy = s.points.filter(([, y]) => y !== null && (!opts.log || y > 0)).map(([x, y]) => [+px(x).toFixed(1), +py(tf(y)).toFixed(1)]);
      const pts = xy.map(([x, y]) => x + "," + y);
      if (s.dots) for (const [cx, cy] of xy) {
        svg.appendChild(svgEl("circle", {cx: cx, cy: cy, r: 2.5, fill: s.color}));
        taken.push({box: {x0: cx - 2.5, x1: cx + 2.5, y0: cy - 2.5, y1: cy + 2.5}});
      }
      else if (pts.length === 1) {    // a lone point (the first update) is a dot: a polyline of one point draws nothing
        const [cx, cy] = xy[0];
        svg.appendChild(svgEl("circle", {cx: cx, cy: cy, r: 2.5, fill: s.color, class: "lone"}));
        taken.push({box: {x0: cx - 2.5, x1: cx + 2.5, y0: cy - 2.5, y1: cy + 2.5}});
      }
      else if (pts.length) {
        svg.appendChild(svgEl("polyline", {points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5}));
        taken.push({path: xy});
      }
    }
    const legend = series.filter((s) => s.label).map((s) => {
      const t = svgEl("text", {x: 0, y: 0, fill: s.color, "font-size": "11", class: "legend",
                               stroke: "#fff", "stroke-width": 3, "paint-order": "stroke"}, s.label);
      svg.appendChild(t);
      return t;
    });
    if (legend.length) {      // the legend goes to the corner where it covers the least
      const w = Math.max(...legend.map((t) => t.getBBox().width)), h = 13 * legend.length;
      let best = null;
      for (const [x0, y0] of [[L + 8, T], [W - R - 4 - w, T], [L + 8, H - B - 4 - h], [W - R - 4 - w, H - B - 4 - h]]) {
        const box = {x0: x0, x1: x0 + w, y0: y0, y1: y0 + h};
        const cost = taken.reduce((n, o) => n + (o.path ? pathCrossings(o.path, box) : boxesMeet(o.box, box)), 0);
        if (best === null || cost < best.cost) best = {cost: cost, box: box};
      }
      legend.forEach((t, i) => { t.setAttribute("x", best.box.x0); t.setAttribute("y", best.box.y0 + 10 + 13 * i); });
      taken.push({box: best.box});
    }
    for (const h of hlines) {      // a line's label goes where it covers the least
      const y = py(tf(h.y));
      const t = svgEl("text", {x: 0, y: 0, "text-anchor": "start", class: "axis hline-label",
                               stroke: "#fff", "stroke-width": 3, "paint-order": "stroke"}, h.label);
      svg.appendChild(t);
      const w = t.getBBox().width;
      let best = null;
      for (const baseline of [y - 3, y + 11]) {
        for (const f of [1, 0, 0.5, 0.75, 0.25]) {
          const x0 = L + 4 + f * (W - R - 2 - w - (L + 4));
          const box = {x0: x0 - 1, x1: x0 + w + 1, y0: baseline - 9, y1: baseline + 3};
          if (box.y0 < 0 || box.y1 > H - B) continue;
          const cost = taken.reduce((n, o) => n + (o.path ? pathCrossings(o.path, box) : boxesMeet(o.box, box)), 0);
          if (best === null || cost < best.cost) best = {cost: cost, x: x0, baseline: baseline, box: box};
        }
      }
      if (best === null) best = {x: W - R - 2 - w, baseline: y - 3, box: null};
      t.setAttribute("x", best.x.toFixed(1));
      t.setAttribute("y", best.baseline.toFixed(1));
      if (best.box) taken.push({box: best.box});
    }
  }

  function boxesMeet(a, b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 ? 1 : 0;
  }

  function pathCrossings(path, box) {
    // the segments of a polyline that pass through the box (Liang-Barsky clipping)
    let n = 0;
    for (let i = 0; i < path.length; i++) {
      const [ax, ay] = path[i], [bx, by] = path[Math.min(i + 1, path.length - 1)];
      const dx = bx - ax, dy = by - ay;
      let lo = 0, hi = 1, inside = true;
      for (const [p, q] of [[-dx, ax - box.x0], [dx, box.x1 - ax], [-dy, ay - box.y0], [dy, box.y1 - ay]]) {
        if (p === 0) { if (q < 0) { inside = false; break; } continue; }
        const r = q / p;
        if (p < 0) lo = Math.max(lo, r); else hi = Math.min(hi, r);
        if (lo > hi) { inside = false; break; }
      }
      if (inside) n++;
    }
    return n;
  }

  function heatmap(canvas, scaleDiv, conn) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!conn) { scaleDiv.textContent = "no connectivity"; return; }
    const cells = conn.cells, n = cells.length, m = cells[0].length;
    let lo = Infinity, hi = -Infinity, bad = 0;      // bad: cells that are NaN or infinite (null)
    for (const row of cells) for (const v of row) {
      if (v === null) bad++;
      else if (v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    const notFinite = bad ? "; magenta: NaN or infinite (" + bad + " cells)" : "";
    lo = Math.max(lo, hi * 1e-12);
    const cw = canvas.width / m, ch = canvas.height / n;
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
      const v = cells[i][j];
      if (v === null) { ctx.fillStyle = "#e7298a"; }   // not white: that is 0
      else if (!(v > 0)) { ctx.fillStyle = "#fff"; }
      else {
        const f = hi === lo ? 1 : (Math.log(Math.max(v, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
        const r = Math.round(255 - 200 * f), g = Math.round(255 - 170 * f), b = Math.round(255 - 60 * f * f);
        ctx.fillStyle = "rgb(" + r + "," + g + "," + b + ")";
      }
      ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
    }
    scaleDiv.textContent = (hi > 0 ? "rows: loss terms L(t), columns: steps k (log colour scale " + fmt(lo) + " … " + fmt(hi) + ")"
                            : bad ? "no finite entry above 0" : "all zero") + notFinite;
  }

  // ---------------------------------------------------------------- runs
  const COLORS = ["#1f77b4", "#d62728"];
  function runBox(i) {
    const box = state.runs[i];
    if (box) return box;
    const node = $("run-template").content.firstElementChild.cloneNode(true);
    $("runs").appendChild(node);
    const q = (c) => node.querySelector("." + c);
    const made = {node: node, q: q, svgKey: null, nodes: {}};
    state.runs[i] = made;
    return made;
  }

  function showUnrolled(box, un) {
    const holder = box.q("graph");
    if (!un) { while (holder.firstChild) holder.removeChild(holder.firstChild); box.svgKey = null; return; }
    box.nodes = un.nodes;
    if (box.svgKey === un.svg) return;
    box.svgKey = un.svg;
    const doc = new DOMParser().parseFromString(un.svg, "image/svg+xml");
    const svg = document.importNode(doc.documentElement, true);
    while (holder.firstChild) holder.removeChild(holder.firstChild);
    holder.appendChild(svg);
    for (const g of svg.querySelectorAll("g.node")) {
      const title = g.querySelector("title");
      if (!title) continue;
      g.dataset.key = title.textContent;
      g.addEventListener("click", () => {
        for (const other of svg.querySelectorAll("g.node.sel")) other.classList.remove("sel");
        g.classList.add("sel");
        showNode(box, g.dataset.key);
      });
    }
    if (box.selected) showNode(box, box.selected);
  }

  function showNode(box, key) {
    box.selected = key;
    const info = box.q("info");
    while (info.firstChild) info.removeChild(info.firstChild);
    const n = box.nodes[key];
    if (!n) { info.textContent = "not a variable of this window"; return; }
    info.appendChild(el("div", n.name + (n.t === null ? "" : "(" + n.t + ")"), "node-name"));
    info.appendChild(el("div", "‖value‖ = " + fmt(n.norm)));
    info.appendChild(el("div", "‖∂L/∂" + n.name + "‖ = " + fmt(n.gnorm)));
  }

  function render(snap) {
    const runs = snap.runs;
    while (state.runs.length > runs.length) state.runs.pop().node.remove();
    const compact = runs.length > 1;       // side by side: smaller charts
    runs.forEach((run, i) => {
      const box = runBox(i);
      for (const svg of box.node.querySelectorAll("svg.p-loss, svg.p-gnorm, svg.p-recall, svg.p-dldh, svg.p-spectra"))
        svg.setAttribute("width", compact ? 300 : (svg.classList.contains("p-recall") ? 300 : 380));
      const heat = box.q("heat");
      const side = compact ? 240 : 300;
      if (heat.width !== side) { heat.width = side; heat.height = side; }
      box.q("run-title").textContent = run.name + " · " + run.config.task + " · update " + run.steps +
        (runs.length > 1 ? "" : "") + " · parameters " + run.digest.slice(0, 12);
      box.node.dataset.steps = run.steps;
      box.node.dataset.digest = run.digest;
      const clip = run.config.clip;
      lineChart(box.q("p-loss"), [{points: run.loss, color: "#999", label: "training"},
                                  {points: run.held, color: COLORS[0], label: "held-out", dots: run.held.length < 40}],
                {integerX: true, xlabel: "update", ymin: 0});
      lineChart(box.q("p-gnorm"), [{points: run.gnorm, color: "#6a3d9a"}],
                {log: true, integerX: true, xlabel: "update", hlines: clip > 0 ? [{y: clip, color: "#d62728", label: "clip " + clip}] : []});
      const recallPanel = box.q("recall-panel");
      recallPanel.hidden = run.config.task !== "copy";
      if (!recallPanel.hidden) lineChart(box.q("p-recall"), [{points: run.recall, color: COLORS[1], dots: true}],
                                         {integerX: true, xlabel: "update", ymin: 0, ymax: 1, hlines: [{y: 1 / 8, color: "#999", label: "chance"}]});
      const v = run.views || {notes: []};
      // the curves are published more often than the views: say which update the views show
      box.q("views-of").textContent = v.update === undefined ? "" : "the views below: update " + v.update +
        (v.update === run.steps ? "" : " (the curves above: update " + run.steps + "; the views are recomputed every " +
         snap.refresh_seconds + " s of training CPU time)");
      heatmap(box.q("heat"), box.q("heat-scale"), v.connectivity);
      lineChart(box.q("p-dldh"), [{points: (v.dldh || []).map((y, t) => [t + 1, y]), color: COLORS[0]}],
                {log: true, integerX: true, xlabel: "t"});
      if (v.spectra) {
        lineChart(box.q("p-spectra"), [{points: v.spectra.norm.map((y, t) => [t + 1, y]), color: "#2ca02c", label: "spectral norm ‖J(t)‖₂"},
                                       {points: v.spectra.radius.map((y, t) => [t + 1, y]), color: "#ff7f0e", label: "spectral radius"}],
                  {integerX: true, xlabel: "t", ymin: 0, hlines: [{y: 1, color: "#999", label: "1"}]});
        box.q("lag").textContent = !v.lag ? "no lag decay: a Jacobian is not finite (see the notes)"
          : v.lag.rate === 0 ? "lag-decay rate ρ = 0: the product of the Jacobians is exactly 0 from some lag on (the gradient is gone, faster than any ρᵏ)"
          : "fitted lag-decay rate ρ = " + fmt(v.lag.rate) +
          " (‖J(t)…J(t−k+1)‖ ≈ C ρᵏ; below 1 the gradient vanishes with the lag, above 1 it explodes)";
        box.node.dataset.rate = v.lag ? v.lag.rate : "";
      } else {
        lineChart(box.q("p-spectra"), [], {}); box.q("lag").textContent = "";
      }
      showUnrolled(box, v.unrolled);
      box.q("notes").textContent = (v.notes || []).join(" · ");
    });
  }

  let hashApplied = false;
  async function poll() {
    try {
      const snap = await api("/api/state");
      if (!hashApplied) {
        hashApplied = true;
        const wanted = hashConfig();
        setControls(snap.config);
        if (Object.keys(wanted).length && !snap.custom && !sameConfig(wanted, snap.config)) {
          const c = Object.assign({}, snap.config, wanted);
          setControls(c);
          await reset(c);
        } else {
          writeHash(snap.config);
        }
      }
      if (snap.error !== state.serverError) {          // the training thread's own error
        state.serverError = snap.error;
        $("error").textContent = snap.error || "";
      }
      if (snap.version !== state.version) {
        state.version = snap.version;
        state.config = snap.config;
        state.playing = snap.playing;
        render(snap);
        $("b-play").classList.toggle("on", snap.playing);
        $("b-save").disabled = $("b-resume").disabled = !snap.can_save;
        for (const f of ["design", "task", "compare", "hidden", "delay", "length"]) $("c-" + f).disabled = snap.custom;
        $("status").textContent = (snap.playing ? "training" : "paused") + " · views every " + snap.refresh_seconds + " s of training CPU time";
        document.body.dataset.version = snap.version;
      }
    } catch (e) { showError(e); }
    setTimeout(poll, 300);
  }
  poll();
})();
