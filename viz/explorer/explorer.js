// The explorer page: plain JavaScript over the Graphviz SVG of viz.views (node ids are the
// DOT names: u<i>_<t> in the unrolled view, f<i> in the folded one, op<j> in a step's ops)
// and the numbers viz.explorer wrote from the engine.  Nothing is fetched.  Every text of the
// page that comes from the data (names, titles, numbers) is set with textContent or built as
// elements, never parsed as HTML; the diagrams are parsed as SVG (XML), not as HTML.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const names = D.names;
  const part = D.part;
  const S = { bundle: D.bundles.length - 1, view: "summary", win: 0, sel: null, ops: false,
              sweep: null, cell: null, heat: null, zoom: 1, page: 0, ask: null, align: null };
  let playing = null;
  const MIN_NODE = 24;               // px across a node circle: the smallest scale drawn
  const FIT_MAX = 4 / 3;             // fit never enlarges past the natural size (1 pt = 4/3 px)
  const G = { svg: null, box: null, steps: null, pages: [], scale: 1 };   // the drawn graph

  const has = (obj, key) => obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key);
  const get = (obj, key) => (has(obj, key) ? obj[key] : undefined);
  const B = () => D.bundles[S.bundle];
  const fmt = (v) => (v === null || v === undefined ? "n/a" : typeof v === "string" ? v : Number(v).toPrecision(6));
  const stepKey = (t) => (t === null ? "s" : String(t));
  const label = (name, t) => (t === null ? name : `${name}(${t})`);

  function el(tag, attrs, ...children) {          // an HTML element; strings become text nodes
    const e = document.createElement(tag);
    Object.keys(attrs || {}).forEach((k) => e.setAttribute(k, attrs[k]));
    children.forEach((c) => { if (c !== null && c !== undefined) e.append(c); });
    return e;
  }
  const kids = (...xs) => xs.filter((x) => x !== null && x !== undefined);   // for replaceChildren
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach((k) => e.setAttribute(k, String(attrs[k])));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function parseSvg(text) {                        // Graphviz output, parsed as XML
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const root = doc.documentElement;
    if (!root || root.nodeName !== "svg") return null;
    root.querySelectorAll("script, foreignObject").forEach((n) => n.remove());
    root.querySelectorAll("*").forEach((n) => Array.from(n.attributes).forEach((a) => {
      if (/^on/i.test(a.name) || (/href$/i.test(a.name) && /^\s*javascript:/i.test(a.value))) n.removeAttribute(a.name);
    }));
    return document.importNode(root, true);
  }

  function parseTitle(title) {         // DOT name -> what it stands for
    let m = /^u(\d+)_(\d+)$/.exec(title);
    if (m && +m[1] < names.length) return { kind: "var", name: names[+m[1]], t: +m[2] };
    m = /^u(\d+)$/.exec(title);
    if (m && +m[1] < names.length) return { kind: "var", name: names[+m[1]], t: null };
    m = /^u(\d+)_(gap|start|end)$/.exec(title);
    if (m && +m[1] < names.length) return { kind: m[2], name: names[+m[1]] };
    m = /^f(\d+)$/.exec(title);
    if (m && +m[1] < names.length) return { kind: "folded", name: names[+m[1]] };
    m = /^op(\d+)$/.exec(title);
    if (m) return { kind: "op", j: +m[1] };
    return null;
  }

  // ---------------------------------------------------------------- the graph panel
  function windowOf(t) {
    return D.windows.findIndex(([a, b]) => a <= t && t <= b);
  }
  function nearestWindow(t) {
    const dist = D.windows.map(([a, b]) => (t < a ? a - t : t > b ? t - b : 0));
    return dist.indexOf(Math.min(...dist));
  }

  function currentSvg() {
    if (S.ops) {
      const ops = opsOf();
      return ops ? D.templates[ops.template] : null;
    }
    if (S.view === "folded") return D.svg.folded;
    if (S.view === "window") return D.svg.windows[S.win];
    return D.svg.summary;
  }

  function opStep() {
    if (S.sel && S.sel.t) return S.sel.t;
    return 1;
  }
  function opChain() {               // the chain of the selected variable ("" for a run of one)
    const chains = B().op_chains || {}, t = opStep();
    const chain = S.sel && S.sel.name !== null ? get(chains, S.sel.name) : undefined;
    if (chain !== undefined) return chain;
    const key = Object.keys(B().ops).find((k) => k.endsWith(`:${t}`));   // none selected
    return key === undefined ? "" : key.slice(0, key.length - `:${t}`.length);
  }
  function opsOf() {                 // the op DAG of the selected step of the selected chain
    const chain = opChain();
    return get(B().ops, chain ? `${chain}:${opStep()}` : String(opStep()));
  }

  function drawGraph() {
    const g = $("graph");
    const text = currentSvg();
    const svg = text === null ? null : parseSvg(text);
    g.replaceChildren(svg || el("p", { class: "hint" }, "no op-level data for this step"));
    G.svg = svg;
    if (svg) measureGraph(svg);
    g.querySelectorAll("g.node").forEach((node) => {
      const title = node.querySelector("title");
      node.dataset.key = title ? title.textContent : "";
      node.addEventListener("click", () => clickNode(node.dataset.key));
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
    layoutGraph();
    decorate();
  }

  // The graph is drawn at the scale that fits the pane's width, but never with node circles
  // under MIN_NODE px; what does not fit then is paged through, a page holding whole steps.
  function measureGraph(svg) {
    const vb = svg.viewBox.baseVal;
    G.box = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    svg.style.width = `${G.box.w}px`;        // one px per unit while measuring
    svg.style.height = `${G.box.h}px`;
    const r = svg.getBoundingClientRect();
    const unit = (x) => G.box.x + ((x - r.left) / r.width) * G.box.w;
    const circles = [], all = [], steps = new Map();
    svg.querySelectorAll("g.node").forEach((node) => {
      const shape = node.querySelector("ellipse, polygon, path");
      if (!shape) return;
      const b = shape.getBoundingClientRect();
      (shape.tagName === "ellipse" ? circles : all).push((b.width / r.width) * G.box.w);
      const title = node.querySelector("title"), p = title ? parseTitle(title.textContent) : null;
      if (p && p.kind === "var" && p.t !== null) {
        const lo = unit(b.left), hi = unit(b.right), have = steps.get(p.t);
        steps.set(p.t, have ? [Math.min(have[0], lo), Math.max(have[1], hi)] : [lo, hi]);
      }
    });
    const sizes = (circles.length ? circles : all).sort((a, b) => a - b);
    G.node = sizes.length ? sizes[Math.floor(sizes.length / 2)] : 0;
    G.steps = Array.from(steps.entries()).sort((a, b) => a[0] - b[0]);
  }

  function paneSize() {
    const g = $("graph");
    return { w: Math.max(100, g.clientWidth - 2), h: Math.max(100, g.clientHeight - 2) };
  }

  function pagesFor(scale, width) {  // [left, right, first step, last step] in SVG units per page
    const span = width / scale, B0 = G.box, end = B0.x + B0.w;
    if (B0.w <= span + 0.5) return [[B0.x, end, null, null]];
    const pages = [];
    if (G.steps.length && !S.ops) {  // each page starts at a step and holds the whole steps that fit
      const pad = 6;
      let i = 0;
      while (i < G.steps.length) {
        const left = Math.max(B0.x, Math.min(i === 0 ? B0.x : G.steps[i][1][0] - pad, end - span));
        let j = i;
        while (j + 1 < G.steps.length && G.steps[j + 1][1][1] <= left + span) j++;
        pages.push([left, left + span, G.steps[i][0], G.steps[j][0]]);
        if (left + span >= end) break;
        i = j + 1;
      }
      return pages;
    }
    for (let left = B0.x; left < end - 0.5; left += span) pages.push([Math.min(left, end - span), Math.min(left, end - span) + span, null, null]);
    return pages;
  }

  function layoutGraph() {
    const svg = G.svg;
    $("page-nav").style.display = "none";
    if (!svg) return;
    const pane = paneSize(), B0 = G.box;
    const fit = Math.min(FIT_MAX, pane.w / B0.w, pane.h / B0.h);
    const least = G.node > 0 ? (MIN_NODE / G.node) * 1.001 : 0;     // (rounding keeps >= MIN_NODE)
    G.scale = Math.max(fit, least) * S.zoom;
    G.pages = pagesFor(G.scale, pane.w);
    S.page = Math.max(0, Math.min(S.page, G.pages.length - 1));
    const [left, right, a, b] = G.pages[S.page];
    svg.setAttribute("viewBox", `${left} ${B0.y} ${right - left} ${B0.h}`);
    svg.style.width = `${(right - left) * G.scale}px`;
    svg.style.height = `${B0.h * G.scale}px`;
    if (G.pages.length > 1) {
      $("page-nav").style.display = "";
      $("page-label").textContent = a === null || a === undefined
        ? ` part ${S.page + 1} of ${G.pages.length} `
        : ` ${a === b ? `step ${a}` : `steps ${a}\u2013${b}`} (page ${S.page + 1} of ${G.pages.length}) `;
    }
    $("zoom-label").textContent = `${Math.round(G.scale * 75)}%`;
  }

  function pageOfNode(node) {        // the page whose range holds the node's centre, or -1
    if (!G.svg || G.pages.length < 2) return -1;
    const shape = node.querySelector("ellipse, polygon, path");
    if (!shape) return -1;
    const r = G.svg.getBoundingClientRect(), b = shape.getBoundingClientRect();
    const [left, right] = G.pages[S.page];
    const x = left + ((b.left + b.width / 2 - r.left) / r.width) * (right - left);
    return G.pages.findIndex(([l, h]) => l <= x && x <= h);
  }

  function keepInView(node) {        // page to the node, and scroll the pane to it
    const page = pageOfNode(node);
    if (page >= 0 && page !== S.page) { S.page = page; layoutGraph(); }
    const g = $("graph"), gr = g.getBoundingClientRect(), b = node.getBoundingClientRect();
    if (b.top < gr.top || b.bottom > gr.bottom) g.scrollTop += b.top - gr.top - (gr.height - b.height) / 2;
    if (b.left < gr.left || b.right > gr.right) g.scrollLeft += b.left - gr.left - (gr.width - b.width) / 2;
  }

  function nodesOf(pred) {
    return Array.from($("graph").querySelectorAll("g.node")).filter((node) => pred(parseTitle(node.dataset.key), node));
  }

  function decorate() {
    const graph = $("graph");
    graph.querySelectorAll("g.node").forEach((node) => node.classList.remove("sel", "hl", "done", "pending", "current"));
    if (S.sel) {
      nodesOf((p) => p && ((S.ops && p.kind === "op" && S.sel.op === p.j) ||
        (!S.ops && p.kind === "var" && p.name === S.sel.name && p.t === S.sel.t) ||
        (!S.ops && p.kind === "folded" && p.name === S.sel.name))).forEach((node) => node.classList.add("sel"));
    }
    if (S.cell) {
      const [t0, t1, k0, k1] = S.cell;
      const hp = heatPart();
      nodesOf((p) => p && p.kind === "var" && p.t !== null &&
        ((p.name === "L" && p.t >= t0 && p.t <= t1) || (p.name === hp && p.t >= k0 && p.t <= k1)))
        .forEach((node) => node.classList.add("hl"));
      const lo = D.keep + 1, hi = D.steps - D.keep;   // the steps a summary's ×τ box hides
      nodesOf((p) => p && p.kind === "gap" && S.view === "summary" &&
        ((p.name === "L" && t0 <= hi && t1 >= lo) || (p.name === hp && k0 <= hi && k1 >= lo)))
        .forEach((node) => node.classList.add("hl"));
    }
    if (S.align) {                   // alignment cell (t, k): decoder step t, encoder step k
      const a = B().alignment, [t, k] = S.align;
      nodesOf((p) => p && p.kind === "var" && ((p.t === t && a.decoder.includes(p.name)) ||
        (p.t === k && a.encoder.includes(p.name)))).forEach((el) => el.classList.add("hl"));
    }
    graph.classList.toggle("sweeping", S.sweep !== null);
    if (S.sweep !== null) {
      const pos = positions();
      graph.querySelectorAll("g.node").forEach((node) => {
        const p = pos.get(node.dataset.key);
        if (p === undefined || p === null) return;
        node.classList.add(p < S.sweep - 1 ? "done" : p === S.sweep - 1 ? "current" : "pending");
      });
      const lit = graph.querySelector("g.node.current");
      if (lit) keepInView(lit);
    }
  }

  function followSweep() {           // in a window, open the window of the variable the sweep lights
    if (S.ops || S.view !== "window" || S.sweep === null) return false;
    const hit = B().sweep.find((e) => e[2] === S.sweep - 1);
    if (!hit || hit[1] === null) return false;
    const [a, b] = D.windows[S.win], w = windowOf(hit[1]);
    if ((hit[1] >= a && hit[1] <= b) || w < 0) return false;
    S.win = w;
    return true;
  }

  function positions() {             // DOT name -> index in the engine's visit order
    const out = new Map();
    if (S.ops) {
      const ops = opsOf();
      if (ops) ops.nodes.forEach((n, j) => { out.set(`op${j}`, n[2]); });
    } else {
      B().sweep.forEach(([i, t, pos]) => { out.set(t === null ? `u${i}` : `u${i}_${t}`, pos); });
    }
    return out;
  }

  function clickNode(key) {
    const p = parseTitle(key);
    if (!p) return;
    S.ask = null;
    if (p.kind === "gap") {
      S.view = "window";
      S.page = 0;
      S.win = Math.max(0, windowOf(D.keep + 1));
    } else if (p.kind === "start" && S.view === "window") {
      S.win = Math.max(0, S.win - 1);
      S.page = 0;
    } else if (p.kind === "end" && S.view === "window") {
      S.win = Math.min(D.windows.length - 1, S.win + 1);
      S.page = 0;
    } else if (p.kind === "var") {
      S.sel = { name: p.name, t: p.t };
    } else if (p.kind === "folded") {
      const v = get(B().vars, p.name);
      if (v && has(v.norm, "s")) S.sel = { name: p.name, t: null };     // a static variable
      else if (S.sel && S.sel.t && v && has(v.norm, String(S.sel.t))) S.sel = { name: p.name, t: S.sel.t };
      else { S.ask = p.name; S.sel = null; }          // which step? the info panel asks
    } else if (p.kind === "op") {
      S.sel = Object.assign({}, S.sel || { name: null, t: opStep() }, { op: p.j });
    }
    update(true);
  }

  // ---------------------------------------------------------------- the info panel
  function histogram(h, colour) {
    if (!h) return null;
    const w = 300, hgt = 50, n = h.counts.length, top = Math.max(...h.counts, 1);
    const svg = svgEl("svg", { width: "100%", viewBox: `0 0 ${w} ${hgt + 14}`, class: "hist" });   // the panel's width
    h.counts.forEach((c, i) => svg.append(svgEl("rect", { x: (i * w) / n, y: hgt - (c / top) * hgt,
      width: Math.max(0, w / n - 1), height: (c / top) * hgt, fill: colour })));
    svg.append(svgEl("text", { x: 0, y: hgt + 12, "font-size": 10 }, fmt(h.lo)));
    svg.append(svgEl("text", { x: w, y: hgt + 12, "font-size": 10, "text-anchor": "end" }, fmt(h.hi)));
    const out = el("div", {}, svg);
    if (h.nonfinite) out.append(el("div", { class: "hint" }, `and ${h.nonfinite} entries NaN or infinite`));
    return out;
  }

  function symbol(id) {              // an id as the symbol it stands for: 'e' (id 4)
    const sym = D.symbols && Number.isInteger(id) && id >= 0 && id < D.symbols.length ? D.symbols[id] : null;
    return sym === null ? `id ${id}` : `${JSON.stringify(sym)} (id ${id})`;
  }
  function vectorBox(id, values, shape, ids) {
    if (!values) return el("div", { id, class: "numbers" }, "not kept (outside the drawn windows)");
    if (ids) {
      const box = el("div", { id, class: "numbers symbols" }, values.map(symbol).join(", "));
      box.dataset.values = JSON.stringify(values);
      return box;
    }
    const size = shape.reduce((a, b) => a * b, 1);
    const more = size > values.length ? ` \u2026 (${size - values.length} more)` : "";
    const box = el("div", { id, class: "numbers" }, `[${values.map(fmt).join(", ")}${more}]`);
    box.dataset.values = JSON.stringify(values);
    return box;
  }

  function askStep(name) {          // the steps of a folded node's variable, to pick one
    const v = get(B().vars, name);
    const steps = v ? Object.keys(v.norm).filter((k) => k !== "s").map(Number).sort((a, b) => a - b) : [];
    const input = el("input", { type: "number", id: "ask-step", min: steps[0] || 0, max: steps[steps.length - 1] || 0, style: "width:5em" });
    const go = (t) => { if (steps.indexOf(t) < 0) return; S.ask = null; S.sel = { name, t }; update(true); };
    input.addEventListener("change", () => go(Math.round(+input.value)));
    const quick = el("div", { class: "steps" });
    steps.slice(0, 12).forEach((t) => { const b = el("button", {}, String(t)); b.addEventListener("click", () => go(t)); quick.append(b); });
    return [el("h3", { id: "info-title" }, `${name}: which step?`),
      el("p", {}, `The folded node ${name} stands for every ${name}(t). Pick a step t (${steps[0]}\u2013${steps[steps.length - 1]}): `, input), quick];
  }

  function drawInfo() {
    const info = $("info");
    if (!S.sel && S.ask !== null && !S.ops) { info.replaceChildren(...askStep(S.ask)); return; }
    if (!S.sel) { info.replaceChildren(el("p", { class: "hint" }, "Click a variable node.")); return; }
    if (S.ops && S.sel.op !== undefined) {
      const ops = opsOf(), chain = opChain();
      const n = ops && ops.nodes[S.sel.op];
      if (!n) { info.replaceChildren(); return; }
      info.replaceChildren(...kids(
        el("h3", { id: "info-title" }, `op node ${S.sel.op} of ${chain ? chain + " " : ""}step ${opStep()}`),
        el("p", {}, "‖value‖ = ", el("span", { id: "info-norm" }, fmt(n[0])), el("br"),
          "‖∂L/∂node‖ = ", el("span", { id: "info-gnorm" }, fmt(n[1])), el("br"),
          `visited ${n[2] === null ? "never (needs no gradient)" : `at ${n[2] + 1} of ${B().sweep_total} in the backward sweep`}`),
        el("p", {}, "values"), histogram(n[3], "#6b8fb3")));
      return;
    }
    const v = get(B().vars, S.sel.name);
    const k = stepKey(S.sel.t);
    if (!v || !has(v.norm, k)) { info.replaceChildren(el("p", {}, `${label(S.sel.name, S.sel.t)}: not in this run`)); return; }
    const shape = get(v.shapes || {}, k) || v.shape;     // a step of its own shape (an h(0) of (H,))
    const gradBox = v.gnorm[k] === null
      ? el("div", { id: "info-grad", class: "numbers" }, B().loss === null ? "no loss (no targets): no gradient" : "needs no gradient")
      : vectorBox("info-grad", get(v.grad, k), shape);
    info.replaceChildren(...kids(
      el("h3", { id: "info-title" }, label(S.sel.name, S.sel.t)),
      v.ids ? el("p", {}, `ids of shape ${JSON.stringify(shape)} (integers: no norm, no gradient)`)
        : el("p", {}, `shape ${JSON.stringify(shape)}`, el("br"), `‖${S.sel.name}‖ = `,
          el("span", { id: "info-norm" }, fmt(v.norm[k])), el("br"), `‖∂L/∂${S.sel.name}‖ = `,
          el("span", { id: "info-gnorm" }, fmt(v.gnorm[k]))),
      el("p", {}, v.ids ? "stands for" : "value"), vectorBox("info-value", get(v.value, k), shape, v.ids), histogram(get(v.vhist, k), "#6b8fb3"),
      el("p", {}, `gradient ∂L/∂${label(S.sel.name, S.sel.t)}`), gradBox, histogram(get(v.ghist, k), "#d9822b")));
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
  const RAMP = [[237, 248, 177], [199, 233, 180], [65, 182, 196], [34, 94, 168], [8, 29, 88]];
  const DECADES = 8;                  // the colour scale spans at most this many powers of ten
  const ZERO = "#ffffff", BELOW = "#d9d9d9", NOTFINITE = "#e7298a";
  const HM = { left: 40, top: 6, right: 6, bottom: 34 };   // the heatmap's margins (axes, ticks)
  function colour(x) {
    const f = Math.max(0, Math.min(1, x)) * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(f)), r = f - i;
    const c = RAMP[i].map((v, j) => Math.round(v + (RAMP[i + 1][j] - v) * r));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function heatPart() {
    const c = B().diag.connectivity || {};
    if (S.heat !== null && has(c, S.heat)) return S.heat;
    if (has(c, part)) return part;
    const keys = Object.keys(c);
    return keys.length ? keys[0] : part;
  }
  function heat() { return get(B().diag.connectivity || {}, heatPart()) || null; }
  function heatRange(p) {            // one log scale for every bundle (before and after training)
    let lo = Infinity, hi = -Infinity;
    D.bundles.forEach((b) => {
      const h = get(b.diag.connectivity || {}, p);
      if (h) h.cells.forEach((row) => row.forEach((v) => { if (v !== null && v > 0) { lo = Math.min(lo, Math.log10(v)); hi = Math.max(hi, Math.log10(v)); } }));
    });
    return [Math.max(lo, hi - DECADES), hi];
  }
  function ticks(n) {                // up to 6 integer ticks over steps 1..n
    const raw = n / 5, mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10);
    const out = [1];
    for (let v = step; v <= n; v += step) if (v > 1) out.push(v);
    return out;
  }
  function fitText(ctx, text, x, y, lo, hi) {   // a tick label kept whole within [lo, hi]:
    const font = ctx.font, w = ctx.measureText(text).width, room = hi - lo - 2;   // moved in
    if (w > room) ctx.font = font.replace(/^\d+(\.\d+)?px/, `${Math.max(6, (10 * room) / w).toFixed(1)}px`);  // or smaller
    const width = ctx.measureText(text).width;
    const left = ctx.textAlign === "center" ? x - width / 2 : ctx.textAlign === "right" ? x - width : x;
    ctx.fillText(text, x + Math.max(0, lo + 1 - left) - Math.max(0, left + width - (hi - 1)), y);
    ctx.font = font;
  }
  function heatArea() {
    const canvas = $("heat");
    return { x: HM.left, y: HM.top, w: canvas.width - HM.left - HM.right, h: canvas.height - HM.top - HM.bottom };
  }
  function drawHeat() {
    const h = heat(), canvas = $("heat"), ctx = canvas.getContext("2d"), hp = heatPart();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    drawHeatParts();
    $("heat-title").textContent = `connectivity ‖∂L(t)/∂${hp}(k)‖ (rows t, columns k)`;
    // no heatmap: no cell to hover (the hint named cells that are not there)
    if (!S.cell) $("heat-label").textContent = h ? `hover a cell: L(t) and ${hp}(k) light up in the graph` : "";
    if (!h) { ctx.fillStyle = "#222"; ctx.fillText("no loss terms or no gradient", 10, 20); $("heat-scale").replaceChildren(); return; }
    const [lo, hi] = heatRange(hp), rows = h.cells.length, cols = h.cells[0].length, A = heatArea();
    const cw = A.w / cols, ch = A.h / rows;
    h.cells.forEach((row, i) => row.forEach((v, j) => {
      ctx.fillStyle = v === null ? NOTFINITE : v === 0 ? ZERO : Math.log10(v) < lo ? BELOW
        : colour(hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1);
      ctx.fillRect(A.x + j * cw, A.y + i * ch, Math.ceil(cw), Math.ceil(ch));
    }));
    ctx.strokeStyle = "#888";
    ctx.lineWidth = 1;
    ctx.strokeRect(A.x - 0.5, A.y - 0.5, A.w + 1, A.h + 1);
    ctx.fillStyle = "#333";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "center";
    ticks(h.width).forEach((k) => {
      const j = binOf(h.col_edges, k);
      if (j < 0) return;
      const x = A.x + (j + 0.5) * cw;
      ctx.fillRect(x, A.y + A.h, 1, 4);
      fitText(ctx, String(k), x, A.y + A.h + 14, 0, canvas.width);
    });
    ctx.fillText(`k (step of ${hp})`, A.x + A.w / 2, A.y + A.h + 28);
    ctx.textAlign = "right";
    (h.sampled ? h.rows.filter((_, i) => i % Math.ceil(rows / 6) === 0) : ticks(h.height)).forEach((t) => {
      const i = rowOf(h, t);
      if (i < 0) return;
      const y = A.y + (i + 0.5) * ch;
      ctx.fillRect(A.x - 4, y, 4, 1);
      fitText(ctx, String(t), A.x - 6, y + 3, 0, A.x - 5);
    });
    ctx.save();
    ctx.translate(10, A.y + A.h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("t (loss term L(t))", 0, 0);
    ctx.restore();
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 2;
    if (S.sel && S.sel.t !== null && !S.ops) {
      if (S.sel.name === hp) {
        const j = binOf(h.col_edges, S.sel.t);
        if (j >= 0) ctx.strokeRect(A.x + j * cw, A.y, cw, A.h);
      } else if (S.sel.name === "L") {
        const i = rowOf(h, S.sel.t);
        if (i >= 0) ctx.strokeRect(A.x, A.y + i * ch, A.w, ch);
      }
    }
    if (S.cell) {
      ctx.strokeStyle = "#000";
      ctx.strokeRect(A.x + S.cell[5] * cw, A.y + S.cell[4] * ch, cw, ch);
    }
    drawHeatScale(h, lo, hi);
  }
  function swatch(fill, text) {
    const s = el("span", { class: "swatch" });
    s.style.background = fill;
    return el("span", { class: "key" }, s, text);
  }
  function drawHeatScale(h, lo, hi) {
    const box = $("heat-scale"), rows = h.cells.length, cols = h.cells[0].length;
    const scale = el("span", { class: "key" }, "log scale (shared by every set of parameters): ");
    const bar = el("span", { class: "ramp" });
    bar.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map(colour).join(", ")})`;
    scale.append(isFinite(lo) ? fmt(Math.pow(10, lo)) : "", " ", bar, " ", isFinite(hi) ? fmt(Math.pow(10, hi)) : "");
    box.replaceChildren(scale, swatch(ZERO, "exactly 0"), swatch(BELOW, isFinite(lo) ? `> 0, below ${fmt(Math.pow(10, lo))}` : "> 0, below the scale"),
      swatch(NOTFINITE, "NaN or infinite"));
    if (h.sampled) box.append(el("span", { class: "key" }, `${rows} sampled rows`));
    if (cols < h.width) box.append(el("span", { class: "key" }, `${cols} column bins of the largest entry`));
  }
  function drawHeatParts() {
    const c = B().diag.connectivity || {}, keys = Object.keys(c), box = $("heat-parts");
    box.replaceChildren();
    if (keys.length < 2) return;
    keys.forEach((p) => {
      const b = el("button", { class: p === heatPart() ? "on" : "" }, p);
      b.dataset.part = p;
      b.addEventListener("click", () => { S.heat = p; S.cell = null; update(false); });
      box.append(b);
    });
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
    const h = heat(), canvas = $("heat");
    if (!h) return null;
    const r = canvas.getBoundingClientRect(), A = heatArea();
    const px = ((ev.clientX - r.left) / r.width) * canvas.width, py = ((ev.clientY - r.top) / r.height) * canvas.height;
    const j = Math.floor(((px - A.x) / A.w) * h.cells[0].length);
    const i = Math.floor(((py - A.y) / A.h) * h.cells.length);
    if (i < 0 || j < 0 || i >= h.cells.length || j >= h.cells[0].length) return null;
    return cellSteps(h, i, j).concat([i, j]);
  }
  function cellCenter(t, k) {      // for tests and links: canvas pixel of the cell holding (t, k)
    const h = heat(), canvas = $("heat"), A = heatArea();
    const i = rowOf(h, t), j = binOf(h.col_edges, k), f = canvas.clientWidth / canvas.width;
    return { x: (A.x + ((j + 0.5) * A.w) / h.cells[0].length) * f, y: (A.y + ((i + 0.5) * A.h) / h.cells.length) * f };
  }
  function range(a, b) { return a === b ? `${a}` : `${a}\u2013${b}`; }
  function hoverCell(ev) {
    const c = cellAt(ev);
    S.cell = c;
    const h = heat();
    // a bin of several (t, k) shows its largest entry: the label says which and over what steps
    const one = c && c[0] === c[1] && c[2] === c[3];
    $("heat-label").textContent = !c ? "" : one ? `‖∂L(${c[0]})/∂${heatPart()}(${c[2]})‖ = ${fmt(h.cells[c[4]][c[5]])}`
      : `largest ‖∂L(t)/∂${heatPart()}(k)‖ over t = ${range(c[0], c[1])}, k = ${range(c[2], c[3])}: ${fmt(h.cells[c[4]][c[5]])}`;
    decorate();
    drawHeat();
  }
  function clickCell(ev) {
    const c = cellAt(ev);
    if (!c) return;
    const k = c[2];
    if (S.view !== "summary" || (k > D.keep && k <= D.steps - D.keep)) {   // not drawn in this view
      S.view = "window";
      S.win = nearestWindow(k);
    }
    S.ops = false;
    const [a, b] = S.view === "window" ? D.windows[S.win] : [k, k];
    S.sel = { name: heatPart(), t: Math.max(a, Math.min(b, k)) };
    S.page = 0;
    update(true);
    const node = $("graph").querySelector("g.node.sel");
    if (node) keepInView(node);
  }

  // ---------------------------------------------------------------- alignment (attention)
  function drawAlign() {
    const a = B().alignment;
    $("align-panel").style.display = a ? "" : "none";
    if (!a) return;
    $("align-title").textContent = a.title;
    const canvas = $("align"), ctx = canvas.getContext("2d");
    const rows = a.cells.length, cols = a.cells[0].length, cw = canvas.width / cols, ch = canvas.height / rows;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    a.cells.forEach((row, i) => row.forEach((v, j) => {
      ctx.fillStyle = v === null ? NOTFINITE : v > 0 ? colour(v) : "#fff";   // NaN is not α = 0
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
    const v = S.align ? a.cells[S.align[0] - 1][S.align[1] - 1] : null;
    $("align-label").textContent = S.align ? `α(${S.align[0]}, ${S.align[1]}) = ${v === null ? "NaN or infinite" : fmt(v)}` : "";
    decorate();
    drawAlign();
  }

  // ---------------------------------------------------------------- plots
  function plot(svg, series, opts) {
    const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), L = 48, R = 8, T = 10 + 13 * series.length, Bm = 34;
    svg.replaceChildren();
    const pts = series.flatMap((s) => s.y.map((y, i) => [s.x[i], y])).filter(([x, y]) => y !== null && (!opts.logy || y > 0));
    if (!pts.length) { svg.append(svgEl("text", { x: 10, y: 20, "font-size": 12 }, opts.empty || "nothing to plot")); return; }
    const tx = (v) => (opts.logy ? Math.log10(v) : v);
    // every step of the data, also those with no point (0 on a log axis); not steps past its end
    // (a decoder's spectra of n_y steps beside an encoder of more: s.x counts all the steps)
    const xs = series.flatMap((s) => s.x.slice(0, s.y.length));
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    const first = x0, last = x1;     // the steps of the data, whatever the axis spans
    let y0 = Math.min(...pts.map((p) => tx(p[1]))), y1 = Math.max(...pts.map((p) => tx(p[1])));
    if (opts.ymin !== undefined) y0 = Math.min(y0, opts.ymin);
    if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }    // one step: in the middle (no step x0 + 1 named)
    if (y1 === y0) { if (opts.ymin !== undefined && y0 === opts.ymin) y1 = y0 + 1; else { y1 += 0.5; y0 -= 0.5; } }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - Bm - ((tx(y) - y0) / (y1 - y0)) * (H - T - Bm);
    svg.append(svgEl("line", { x1: L, y1: H - Bm, x2: W - R, y2: H - Bm, stroke: "#888" }),
      svgEl("line", { x1: L, y1: T, x2: L, y2: H - Bm, stroke: "#888" }));
    // ticks at the first and last power of ten inside; with fewer than two (a range within a
    // decade: "1e0" alone gave no scale) the ends' values, and a power between them that clears both
    const powers = opts.logy && Math.ceil(y0) < Math.floor(y1);
    const yt = powers ? [Math.ceil(y0), Math.floor(y1)] : [y0, y1];
    const ty = (v) => H - Bm - ((v - y0) / (y1 - y0)) * (H - T - Bm);
    const yl = yt.map((v) => [v, powers ? "1e" + v : Number(opts.logy ? Math.pow(10, v) : v).toPrecision(3)]);
    const p = Math.ceil(y0);
    if (opts.logy && !powers && p <= y1 && Math.abs(ty(p) - ty(y0)) >= 14 && Math.abs(ty(p) - ty(y1)) >= 14) yl.push([p, "1e" + p]);
    yl.forEach(([v, text]) => {
      svg.append(svgEl("text", { x: L - 4, y: ty(v) + 4, "font-size": 10, "text-anchor": "end" }, text));
    });
    if (first === last) svg.append(svgEl("text", { x: sx(first), y: H - Bm + 14, "font-size": 10, "text-anchor": "middle" }, String(first)));
    else svg.append(svgEl("text", { x: L, y: H - Bm + 14, "font-size": 10 }, String(x0)),
      svgEl("text", { x: W - R, y: H - Bm + 14, "font-size": 10, "text-anchor": "end" }, String(x1)));
    svg.append(svgEl("text", { x: (L + W) / 2, y: H - 4, "font-size": 11, "text-anchor": "middle" }, opts.xlabel));
    series.forEach((s, n) => {
      const seg = s.x.map((x, i) => (s.y[i] == null || (opts.logy && s.y[i] <= 0) ? null : `${sx(x).toFixed(1)},${sy(s.y[i]).toFixed(1)}`));
      const d = seg.reduce((acc, p, i) => acc + (p === null ? "" : (i && seg[i - 1] !== null ? " L" : " M") + p), "");
      const path = svgEl("path", { d: d || "M0,0", fill: "none", stroke: s.colour, "stroke-width": 1.5 });
      if (s.dash) path.setAttribute("stroke-dasharray", "4 3");
      svg.append(path, svgEl("text", { x: L + 8, y: 11 + 13 * n, "font-size": 11, fill: s.colour }, s.label));
      // a point with no drawn neighbour (a run of one step, or one between gaps) is a dot: a
      // path of one point draws nothing, and the panel looked empty
      seg.forEach((p, i) => {
        if (p === null || (i > 0 && seg[i - 1] !== null) || (i + 1 < seg.length && seg[i + 1] !== null)) return;
        const [cx, cy] = p.split(",");
        svg.append(svgEl("circle", { cx, cy, r: 2.5, fill: s.colour, class: "lone" }));
      });
    });
  }
  function drawPlots() {
    const d = B().diag, steps = Array.from({ length: D.steps }, (_, i) => i + 1);
    if (d.spectra) {
      const J = `J(t) = ∂${part}(t)/∂${part}(t${d.backward ? "+" : "−"}1)`;
      plot($("plot-spectra"), [{ x: steps, y: d.spectra.norm, colour: "#2b6cb0", label: `spectral norm ‖J(t)‖₂, ${J}` },
        { x: steps, y: d.spectra.radius, colour: "#d9822b", label: "spectral radius ρ(J(t))" }], { logy: true, xlabel: "t" });
    } else plot($("plot-spectra"), [], { xlabel: "t", empty: "no Jacobians for this design" });
    if (d.lag) {
      const fit = d.lag.lags.map((k) => d.lag.scale * Math.pow(d.lag.rate, k));
      plot($("plot-lag"), [{ x: d.lag.lags, y: d.lag.norms, colour: "#2b6cb0", label: (d.backward ? "‖J(t)…J(t+k−1)‖₂" : "‖J(t)…J(t−k+1)‖₂") + " (geometric mean over t)" },
        { x: d.lag.lags, y: fit, colour: "#555", dash: true, label: `fit C·ρᵏ, ρ = ${fmt(d.lag.rate)}` }], { logy: true, xlabel: "lag k", empty: "every product is exactly 0" });
      $("lag-label").textContent = d.lag.rate === 0 ? "ρ = 0: the product of the Jacobians is exactly 0 from some lag on (no point on the log axis there): the gradient is gone, faster than any ρᵏ"
        : `fitted decay rate ρ = ${fmt(d.lag.rate)} per step (${d.lag.rate < 1 ? "vanishing" : "exploding"})`;
    } else {          // Jacobians with a NaN or inf (their spectra drawn where finite): no products
      plot($("plot-lag"), [], { xlabel: "k", empty: d.spectra ? "no lag decay: a Jacobian is not finite (see the notes)" : "no Jacobians for this design" });
      $("lag-label").textContent = "";
    }
    const sat = Array.isArray(d.saturation) ? { "": d.saturation } : d.saturation;   // {chain: fractions}
    const series = Object.keys(sat).map((c, i) => ({ x: steps, y: sat[c], colour: ["#c53030", "#805ad5", "#dd6b20"][i % 3],
      label: "fraction of saturated tanh/σ units" + (c ? ` (${c})` : "") }));
    // no ratio without a loss (or Jacobians): the heading named a curve the plot has not
    $("sat-title").textContent = d.ratio ? "saturation and the eq. 10.52 ratio" : "saturation";
    if (d.ratio) series.push({ x: steps, y: d.ratio, colour: "#2f855a", label: `‖(∇${part} L) ∂${part}(t)/∂${part}(t${d.backward ? "+" : "−"}1)‖ / ‖∇${part} L‖ (eq. 10.52)` });
    plot($("plot-sat"), series, { logy: false, xlabel: "t", ymin: 0 });
  }

  // ---------------------------------------------------------------- state in the URL hash
  let historyWorks = true;           // false where the history API is refused (a sandboxed iframe)
  function encodeName(name) {        // null for a name with a lone surrogate (no UTF-8 for it)
    try { return encodeURIComponent(name); } catch (e) { return null; }
  }
  function writeHash() {
    if (!historyWorks) return;
    const parts = [`b=${S.bundle}`, `v=${S.view === "window" ? "w" + S.win : S.view}`];
    if (S.sel) {
      const enc = S.sel.name === null ? null : encodeName(S.sel.name);
      const where = `,${S.sel.t === null ? "" : S.sel.t}` + (S.sel.op !== undefined ? `,${S.sel.op}` : "");
      if (enc !== null) parts.push(`sel=${enc}${where}`);
      else if (names.indexOf(S.sel.name) >= 0) parts.push(`si=${names.indexOf(S.sel.name)}${where}`);
    }
    if (S.ops) parts.push("ops=1");
    if (S.sweep !== null) parts.push(`sw=${S.sweep}`);
    if (S.heat !== null) { const enc = encodeName(S.heat); if (enc !== null) parts.push(`hp=${enc}`); }
    const hash = "#" + parts.join("&");
    if (location.hash === hash) return;
    try { history.replaceState(null, "", hash); } catch (e) { historyWorks = false; }
  }
  function count(text, below) {      // a non-negative integer < below, or null
    if (typeof text !== "string" || !/^\d{1,9}$/.test(text)) return null;
    const n = Number(text);
    return n < below ? n : null;
  }
  function decoded(text) {           // decodeURIComponent, or null for a malformed escape
    if (typeof text !== "string") return null;
    try { return decodeURIComponent(text); } catch (e) { return null; }
  }
  function readHash() {
    const q = new Map();             // key -> the raw (still encoded) value
    let raw = "";
    try { raw = String(location.hash); } catch (e) { raw = ""; }
    raw.replace(/^#/, "").split("&").forEach((kv) => {
      const i = kv.indexOf("=");
      if (i > 0) q.set(kv.slice(0, i), kv.slice(i + 1));
    });
    const b = count(decoded(q.get("b")), D.bundles.length);
    if (b !== null) S.bundle = b;
    const v = decoded(q.get("v"));
    if (v !== null) {
      const m = /^w(\d{1,9})$/.exec(v);
      if (m && count(m[1], D.windows.length) !== null) { S.view = "window"; S.win = +m[1]; } else if (v === "folded" || v === "summary") S.view = v;
    }
    S.sel = null;
    const byName = q.has("sel"), sel = byName ? q.get("sel") : q.get("si");
    if (sel !== undefined) {         // name,t or name,t,op: the name encoded, so it holds no comma
      const bits = sel.split(",");
      const name = byName ? decoded(bits[0]) : names[count(bits[0], names.length)];
      const t = bits.length > 1 ? decoded(bits[1]) : "";
      const step = t === "" ? null : count(t, D.steps + 2);
      if (name !== null && names.indexOf(name) >= 0 && bits.length <= 3 && (t === "" || step !== null)) {
        S.sel = { name, t: step };
        const j = count(decoded(bits[2]), 1e6);
        if (j !== null) S.sel.op = j;
      }
    }
    S.ops = decoded(q.get("ops")) === "1";
    const sw = count(decoded(q.get("sw")), 1e9);
    S.sweep = sw === null ? null : Math.min(sw, B().sweep_total);
    const hp = decoded(q.get("hp"));
    S.heat = hp !== null && has(B().diag.connectivity || {}, hp) ? hp : null;
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
    const box = $("bundles");
    box.replaceChildren();
    if (D.bundles.length > 1) {
      D.bundles.forEach((b, i) => {
        const button = el("button", { id: `bundle-${i}`, class: i === S.bundle ? "on" : "" }, b.label);
        button.addEventListener("click", () => { S.bundle = i; drawAll(); });
        box.append(button, " ");
      });
    }
    const bl = B();
    const lt = bl.loss_terms;          // [how many, first t, last t]: the terms L(t) summed
    $("loss").textContent = bl.loss === null ? "" : `loss L = ${fmt(bl.loss)}` + (!lt ? ""
      : lt[0] === 1 ? `, the loss term L(${lt[1]})` : `, the sum of the ${lt[0]} loss terms L(${lt[1]})…L(${lt[2]})`);
    $("notes").textContent = bl.diag.notes.join("; ");
    drawPlots();
    update(true);
  }

  $("view-folded").addEventListener("click", () => { S.view = "folded"; S.ops = false; S.page = 0; update(true); });
  $("view-unrolled").addEventListener("click", () => { if (S.view === "folded") S.view = "summary"; S.ops = false; S.page = 0; update(true); });
  $("ops-toggle").addEventListener("change", (e) => { S.ops = e.target.checked; if (S.sel) delete S.sel.op; update(true); });
  $("win-prev").addEventListener("click", () => { S.win = Math.max(0, S.win - 1); S.page = 0; update(true); });
  $("win-next").addEventListener("click", () => { S.win = Math.min(D.windows.length - 1, S.win + 1); S.page = 0; update(true); });
  $("collapse").addEventListener("click", () => { S.view = "summary"; S.page = 0; update(true); });
  $("goto-step").max = D.steps;
  $("goto-step").addEventListener("change", (e) => {     // the drawn window nearest to step t
    const t = Math.max(1, Math.min(D.steps, Math.round(+e.target.value) || 1));
    S.view = "window";
    S.win = nearestWindow(t);
    S.ops = false;
    const [a, b] = D.windows[S.win];
    S.sel = { name: part, t: Math.max(a, Math.min(b, t)) };
    update(true);
  });
  function sweepTo(v) {
    S.sweep = v;
    if (followSweep()) update(true); else update(false);
  }
  function stopPlaying() {
    if (playing) clearInterval(playing);
    playing = null;
    $("sweep-play").textContent = "\u25B6 play";
  }
  $("sweep").addEventListener("input", (e) => { stopPlaying(); sweepTo(+e.target.value); });
  $("sweep-off").addEventListener("click", () => { stopPlaying(); S.sweep = null; update(false); });
  $("sweep-play").addEventListener("click", () => {
    if (playing) { stopPlaying(); return; }
    const total = B().sweep_total, step = Math.max(1, Math.round(total / 300));
    if (S.sweep === null || S.sweep >= total) S.sweep = 0;       // else: resume where it paused
    $("sweep-play").textContent = "\u23F8 pause";
    playing = setInterval(() => { sweepTo(Math.min(total, S.sweep + step)); if (S.sweep >= total) stopPlaying(); }, 30);
  });
  $("page-prev").addEventListener("click", () => { S.page = Math.max(0, S.page - 1); layoutGraph(); });
  $("page-next").addEventListener("click", () => { S.page = Math.min(G.pages.length - 1, S.page + 1); layoutGraph(); });
  $("zoom-in").addEventListener("click", () => { S.zoom *= 1.25; layoutGraph(); });
  $("zoom-out").addEventListener("click", () => { S.zoom /= 1.25; layoutGraph(); });
  $("zoom-fit").addEventListener("click", () => { S.zoom = 1; S.page = 0; layoutGraph(); });
  window.addEventListener("resize", () => layoutGraph());
  $("heat").addEventListener("mousemove", hoverCell);
  $("heat").addEventListener("mouseleave", () => { S.cell = null; $("heat-label").textContent = ""; decorate(); drawHeat(); });
  $("heat").addEventListener("click", clickCell);
  $("align").addEventListener("mousemove", hoverAlign);
  $("align").addEventListener("mouseleave", () => { S.align = null; $("align-label").textContent = ""; decorate(); drawAlign(); });
  window.addEventListener("hashchange", () => { readHash(); drawAll(); });

  readHash();
  drawAll();
  window.explorer = { data: D, state: S, graph: G, cellCenter, alignCenter, clickNode, update };
})();
