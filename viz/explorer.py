"""The explorer: one self-contained HTML page of a real unroll and its gradients.

:func:`explore` runs the model once per step (``model.run``), so every variable of every
step is a node of the engine's DAG, and writes what the engine computed into one page:
the folded circuit and the unrolled graph drawn by :mod:`viz.views` (the middle steps
collapsed, windows of steps expandable), the value and gradient ∂L/∂v(t) of every
variable, the op-level DAG of a step, the engine's backward visit order
(``tg.sweep_order``) for a slider, the connectivity ‖∂L(t)/∂h(k)‖ as a heatmap, and the
Jacobian diagnostics of :mod:`rnn.diagnostics`.  The page is plain JavaScript over the
Graphviz SVG (node ids are the DOT names of the views); nothing is fetched, so it opens
from disk.  Long runs are summarised: values of the steps in the drawn windows, norms of
every step, the heatmap binned and, past ``EXACT_ROWS`` loss terms, computed on sampled rows.
"""

import html
import json
import os
import re

import numpy as np

import rnn
import tinygraph as tg
from rnn.core import collector_paused, time_step, walk
from rnn.diagnostics import part_nodes, run_model

from .derive import derive, param_behind
from .render import OutputPathError, html_text, render
from .views import BOOK_HIDDEN, KEEP, draw_folded, draw_unrolled, new_digraph

WINDOW = 10           # steps per expandable window of the unrolled view
MAX_WINDOWS = 30      # windows drawn for a long run (evenly spaced, the first and last included)
EXACT_ROWS = 200      # up to this many loss terms the heatmap is every row, exactly
SAMPLED_ROWS = 48     # past that: this many rows, evenly spaced, each exact
HEAT_BINS = 200       # the heatmap has at most this many bins per axis
SHOWN_VALUES = 64     # entries of a vector written into the page (norms and histograms use all)
_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer")


class Explorer:
    """An explorer page: ``save(path)`` writes it, ``_repr_html_()`` shows it in Jupyter.

    Attributes
    ----------
    html : str
        The whole page (scripts, styles, diagrams and data inline).
    data : dict
        What the page shows, as written into it (for tests and tools).
    """

    def __init__(self, page, data):
        self.html = page
        self.data = data

    def __repr__(self):
        return (f"Explorer(model={self.data['model']!r}, steps={self.data['steps']}, "
                f"{len(self.html.encode()) / 1e6:.2f} MB)")

    def save(self, path):
        """Write the page to ``path`` with ``tg.atomic_write`` (fsynced; a replaced page keeps
        its permissions; parent folders are created).  Returns ``path``."""
        with tg.atomic_write(path, "viz.Explorer.save", OutputPathError, make_folder=True) as f:
            f.write(self.html.encode("utf-8"))
        return path

    def _repr_html_(self):
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                'style="width:100%;height:960px;border:1px solid #ddd"></iframe>')


def explore(model, xs, ys=None, h0=None, part=None, before=None, title=None, steps=None):
    """The explorer of ``model`` on one sequence.

    Parameters
    ----------
    model : an rnn design or rnn.Recurrence
    xs, ys : what ``model.run`` takes first (inputs, and targets for the loss and gradients)
    h0 : initial state, optional
    part : the state part of the connectivity and Jacobians (default: the first part, or
        "h" for a design without state parts)
    before : dict name -> array (a ``state_dict``), optional
        The parameters before training: the page then switches between before and after.
        The model's own parameters are restored when the page is made.
    title : str, optional
    steps : int, for a system without input (``xs=None``)

    Returns
    -------
    Explorer
    """
    if not callable(getattr(model, "run", None)) or not hasattr(model, "name"):
        raise tg.DTypeError(f"viz.explore: needs an rnn design or rnn.Recurrence, got "
                            f"{type(model).__name__}")
    if getattr(model, "structure", None) == "tree":
        raise tg.ConfigError(f"viz.explore: {model.name} is a tree, not an unroll over time; "
                             "draw it with viz.unrolled(model) or viz.graph(model.run(...).loss)")
    parts = getattr(model, "parts", {}) or {}
    part = part or (next(iter(parts)) if parts else "h")
    with collector_paused():
        bundles = []
        if before is not None:     # the model's own arrays and versions come back untouched
            with model.state_swapped(before):
                bundles.append(("before training", _bundle(model, xs, ys, h0, part, steps, draw=False)))
        bundles.append(("after training" if before is not None else "model",
                        _bundle(model, xs, ys, h0, part, steps)))
    current = bundles[-1][1]                   # the model's own parameters: its drawings serve all
    svg, templates = current.pop("svg"), current.pop("templates")
    for _, b in bundles[:-1]:
        b.pop("svg")
        if b.pop("templates") != templates:
            raise tg.ConfigError("viz.explore: the parameters before training give another "
                                 "op structure than the model's")
    data = {
        "model": model.name, "title": title or f"tinygraph explorer: {model.name}",
        "steps": current["steps"], "part": part, "names": current["names"],
        "window": WINDOW, "keep": KEEP, "windows": current["windows"],
        "svg": svg, "templates": templates,
        "bundles": [dict(b, label=label) for label, b in bundles],
    }
    return Explorer(_page(data), data)


# ------------------------------------------------------------------ what the engine computed

def _bundle(model, xs, ys, h0, part, length, draw=True):
    run = run_model(model, xs, ys, h0, length)
    roots = [run.loss] if run.loss is not None else (
        list(run.outputs) + [n for nodes in run.parts.values() for n in nodes[-1:]])
    variables = derive(roots, hide=BOOK_HIDDEN)
    steps = variables.steps
    names = variables.names
    windows = _windows(steps)
    detail = sorted({t for a, b in windows for t in range(a, b + 1)} | _summary_steps(steps))
    keys = list(variables.nodes)
    grads = {}
    order = []
    if run.loss is not None:
        wanted = [k for k in keys if variables.nodes[k].requires_grad]
        values = tg.grad(run.loss, [variables.nodes[k] for k in wanted], retain_graph=True)
        grads = dict(zip(wanted, values))
        order = tg.sweep_order(run.loss)
    position = {id(n): i for i, n in enumerate(order)}
    key_of = {id(variables.nodes[k]): k for k in keys}
    sweep = [[names.index(key_of[id(n)][0]), key_of[id(n)][1], i]
             for i, n in enumerate(order) if id(n) in key_of]
    detail_set = set(detail)
    var_data = {}
    for name in names:
        entry = {"norm": {}, "gnorm": {}, "value": {}, "grad": {}, "vhist": {}, "ghist": {},
                 "shape": None}
        var_data[name] = entry
    for (name, t), node in variables.nodes.items():
        entry = var_data[name]
        key = "s" if t is None else str(t)
        entry["shape"] = list(node.shape)
        entry["norm"][key] = _num(np.linalg.norm(node.data))
        g = grads.get((name, t))
        entry["gnorm"][key] = None if g is None else _num(np.linalg.norm(g))
        if t is None or t < 1 or t in detail_set:
            entry["value"][key] = _vector(node.data)
            entry["grad"][key] = None if g is None else _vector(g)
            entry["vhist"][key] = _histogram(node.data)
            entry["ghist"][key] = None if g is None else _histogram(g)
    ops, templates = _op_steps(roots, detail_set, position, run.loss)
    diag = _diagnostics(model, xs, ys, h0, part, run, steps, grads, length)
    svg = None if not draw else {
        "folded": _folded_svg(model, roots), "summary": _unrolled_svg(model, variables, None),
        "windows": [_unrolled_svg(model, variables, range(a, b + 1)) for a, b in windows]}
    return {"steps": steps, "names": names, "windows": windows, "detail": detail,
            "loss": None if run.loss is None else _num(run.loss.item()),
            "vars": var_data, "sweep": sweep, "sweep_total": len(order), "ops": ops,
            "diag": diag, "svg": svg, "templates": templates}


def _summary_steps(steps):
    if steps <= 2 * KEEP + 1:
        return set(range(1, steps + 1))
    return set(range(1, KEEP + 1)) | set(range(steps - KEEP + 1, steps + 1))


def _windows(steps):
    """(first, last) step of each window drawn: every window of WINDOW steps, or MAX_WINDOWS of
    them evenly spaced (the first and the last included) for a long run."""
    starts = list(range(1, steps + 1, WINDOW))
    if len(starts) > MAX_WINDOWS:
        picks = np.unique(np.linspace(0, len(starts) - 1, MAX_WINDOWS).round().astype(int))
        starts = [starts[i] for i in picks]
    return [(a, min(a + WINDOW - 1, steps)) for a in starts]


def _diagnostics(model, xs, ys, h0, part, run, steps, grads, length):
    out = {"part": part, "connectivity": None, "spectra": None, "lag": None, "ratio": None,
           "saturation": _nums(rnn.saturation(model, xs, ys, h0=h0, steps=length)), "notes": []}
    if run.losses:
        rows = None
        if len(run.losses) > EXACT_ROWS:
            loss_steps = sorted(time_step(l.scope) for l in run.losses)
            picks = np.unique(np.linspace(0, len(loss_steps) - 1, SAMPLED_ROWS).round().astype(int))
            rows = [loss_steps[i] for i in picks]
            out["notes"].append(f"{len(rows)} of the {len(run.losses):,} loss terms computed "
                                "(evenly spaced rows, each exact); bins show the largest entry")
        matrix = rnn.connectivity(model, xs, ys, part=part, h0=h0, rows=rows)
        out["connectivity"] = _binned(matrix, rows)
    else:
        out["notes"].append("no loss terms (no targets ys): no gradients, connectivity or sweep")
    parts = getattr(model, "parts", {}) or {}
    if part not in parts:
        out["notes"].append(f"{model.name} carries no state part '{part}' from step to step: no "
                            "Jacobians ∂h(t)/∂h(t-1)")
        return out
    batch = run.parts[part][0].data.size // parts[part] if run.parts.get(part) else 1
    if batch != 1:
        out["notes"].append(f"a batch of {batch}: the Jacobians need a batch of one")
        return out
    try:
        jacs = rnn.jacobians(model, xs, part=part, h0=h0, ys=ys, steps=length)
    except tg.ConfigError as e:
        out["notes"].append(str(e))
        return out
    norms, radii = rnn.spectra(jacs)
    out["spectra"] = {"norm": _nums(norms), "radius": _nums(radii)}
    decay = rnn.lag_decay(jacs, max_lag=min(steps, 30), ends=3)   # LAPACK on a busy machine is slow
    out["lag"] = {"lags": decay.lags.tolist(), "norms": _nums(decay.norms),
                  "rate": _num(decay.rate), "scale": _num(decay.scale)}
    if run.loss is not None:
        ratio = np.full(steps, np.nan)
        for t, node in part_nodes(run, part, "viz.explore").items():
            g = grads.get((part, t))
            if g is not None and np.linalg.norm(g) > 0:
                g = g.reshape(-1)
                ratio[t - 1] = np.linalg.norm(g @ jacs[t - 1]) / np.linalg.norm(g)
        out["ratio"] = _nums(ratio)
    return out


def _binned(matrix, rows):
    """The heatmap: loss terms t (rows) and steps k (columns) in at most HEAT_BINS bins each, a
    bin showing its largest entry; with sampled ``rows``, one row per sampled loss term."""
    steps = matrix.shape[0]
    col_edges = np.unique(np.linspace(0, steps, min(steps, HEAT_BINS) + 1).round().astype(int))
    if rows is None:
        blocks = [matrix[a:b] for a, b in zip(col_edges, col_edges[1:])]
    else:
        blocks = [matrix[t - 1:t] for t in rows]
    cells = [[_num(np.nanmax(block[:, a:b])) for a, b in zip(col_edges, col_edges[1:])]
             for block in blocks]
    return {"sampled": rows is not None, "rows": None if rows is None else list(rows),
            "row_edges": col_edges.tolist(), "col_edges": col_edges.tolist(), "cells": cells,
            "exact": rows is None and len(col_edges) == steps + 1}


def _op_steps(roots, detail, position, loss):
    """The op-level DAG of each step in ``detail``: per step, its template (the op structure,
    shared by all steps that have the same one) and each op node's norms and sweep position."""
    by_step = {}
    for node in walk(roots):
        t = time_step(node.scope)
        if t in detail and param_behind(node) is None:
            by_step.setdefault(t, []).append(node)
    grads = {}
    if loss is not None:
        nodes = [n for t in sorted(by_step) for n in by_step[t] if n.requires_grad]
        grads = {id(n): g for n, g in zip(nodes, tg.grad(loss, nodes, retain_graph=True))}
    templates, index, steps = [], {}, {}
    for t in sorted(by_step):
        nodes = by_step[t]
        local = {id(n): j for j, n in enumerate(nodes)}
        signature = tuple((n.op, n.name, tuple(n.shape),
                           tuple(local.get(id(p), _outside(p, t)) for p in n.parents)) for n in nodes)
        if signature not in index:
            index[signature] = len(templates)
            templates.append(_op_svg(nodes, local, t))
        steps[str(t)] = {"template": index[signature], "nodes": [
            [_num(np.linalg.norm(n.data)),
             None if id(n) not in grads else _num(np.linalg.norm(grads[id(n)])),
             position.get(id(n)), _histogram(n.data)] for n in nodes]}
    return steps, templates


def _outside(p, t):
    """How a step's op graph names an input made outside the step: a parameter, or a node of
    another step relative to this one ("h (t-1)"), so that every step has the same graph."""
    base = param_behind(p)
    if base is not None:
        return f"param {base.name}"
    other = time_step(p.scope)
    when = "" if other is None else " (t)" if other == t else f" (t{other - t:+d})"
    return f"{p.name or p.op or 'leaf'}{when}"


def _op_svg(nodes, local, t):
    g = new_digraph("ops")
    g.attr(rankdir="LR", nodesep="0.15", ranksep="0.3")
    g.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname="Helvetica",
           fontsize="10", width="0", height="0", margin="0.06,0.03")
    outside = {}
    for j, n in enumerate(nodes):
        lines = [f"<b>{html_text(n.op or 'leaf')}</b>", html_text(tuple(n.shape))]
        if n.name:
            lines.append(f"<i>{html_text(n.name)}</i>")
        g.node(f"op{j}", label="<" + "<br/>".join(lines) + ">")
        for p in n.parents:
            if id(p) in local:
                g.edge(f"op{local[id(p)]}", f"op{j}")
                continue
            text = _outside(p, t)
            if text not in outside:
                outside[text] = f"in{len(outside)}"
                g.node(outside[text], label=f"<{html_text(text)}>", shape="box", style="filled",
                       fillcolor="#dbe9f6", fontsize="9")
            g.edge(outside[text], f"op{j}")
    return _svg_text(g)


def _folded_svg(model, roots):
    g = new_digraph(f"{model.name}_folded")
    draw_folded(g, derive(roots, hide=BOOK_HIDDEN, window=KEEP), "f",
                getattr(model, "edge_label", None))
    return _svg_text(g)


def _unrolled_svg(model, variables, shown):
    g = new_digraph(f"{model.name}_unrolled")
    draw_unrolled(g, variables, "u", getattr(model, "edge_label", None), keep=KEEP, shown=shown,
                  gap_text=lambda name, n: f"{html_text(name)} &#215;{n:,}")
    return _svg_text(g)


def _svg_text(g):
    """The SVG element of ``g`` (no XML prologue, no comments: it goes inside the page)."""
    text = render(g, "svg", quiet=True).decode()     # the × of "h ×194" draws a width warning
    return re.sub(r"<!--.*?-->\n?", "", text[text.index("<svg"):], flags=re.S)


# ------------------------------------------------------------------ numbers for the page

def _num(v):
    v = float(v)
    return float(f"{v:.6g}") if np.isfinite(v) else None


def _nums(arr):
    return [_num(v) for v in np.asarray(arr, dtype=np.float64).reshape(-1)]


def _vector(arr):
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    return _nums(flat[:SHOWN_VALUES])


def _histogram(arr, bins=12):
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    counts, edges = np.histogram(flat, bins=bins)
    return {"counts": counts.tolist(), "lo": _num(edges[0]), "hi": _num(edges[-1])}


def _page(data):
    def asset(name):
        with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
            return f.read()
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(data['title'])}</title><style>{asset('explorer.css')}</style>"
            f"</head><body>{asset('explorer.html')}"
            f"<script type='application/json' id='explorer-data'>{payload}</script>"
            f"<script>{asset('explorer.js')}</script></body></html>\n")
