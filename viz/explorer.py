"""The explorer: one self-contained HTML page of a real unroll and its gradients.

:func:`explore` runs the model once per step (``model.run``), so every variable of every
step is a node of the engine's DAG, and writes what the engine computed into one page:
the folded circuit and the unrolled graph drawn by :mod:`viz.views` (the middle steps
collapsed, windows of steps expandable), the value and gradient ∂L/∂v(t) of every
variable, the op-level DAG of a step, the engine's backward visit order
(``tg.sweep_order``) for a slider, the connectivity ‖∂L(t)/∂h(k)‖ as a heatmap, the
alignment α(t, k) of a run with attention (an EncoderDecoder's ``run.attention``, or a
user's cell that names its weights "α"), and the Jacobian diagnostics of
:mod:`rnn.diagnostics`.  The page is plain JavaScript over the
Graphviz SVG (node ids are the DOT names of the views); nothing is fetched, so it opens
from disk.  Long runs are summarised: values of the steps in the drawn windows, norms of
every step, the heatmap binned and, past ``EXACT_ROWS`` loss terms, computed on sampled rows.

Making a page is mostly numpy: while this thread computes the gradients, the connectivity
and the variables' numbers (norms, histograms and six-digit rounding on stacked arrays, the
same arithmetic as one array at a time), a small pool of threads computes the Jacobians'
spectra and lag decay (LAPACK lets go of the GIL) and waits for the renderer's processes.
The page is the same whichever of them finishes first.

The values are those of the run made here, told apart from whatever computation is behind
its ``h0`` or the tensors its steps read (:func:`rnn.diagnostics.own_run`).  The page builds
all its text from elements (names and titles are never parsed as HTML), its data cannot close
its script block, and a Content-Security-Policy lets only its own script run.
"""

import base64
import contextlib
import hashlib
import html
import inspect
import json
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor

import graphviz
import numpy as np

import rnn
import tinygraph as tg
from rnn.core import evaluating, time_step, walk
from rnn.diagnostics import (eq_10_52, kept_rows, model_jacobians, own_run, padded_chain,
                             part_nodes, run_connectivity, runs_free, saturation_rows,
                             saturation_with_nans)

from .derive import Variables, derive, param_behind
from .render import OutputPathError, RenderError, html_text, render
from .views import BOOK_HIDDEN, KEEP, backward_chains, draw_folded, draw_unrolled, new_digraph

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


def explore(model, xs, ys=None, h0=None, part=None, before=None, title=None, steps=None,
            symbols=None, **options):
    """The explorer of ``model`` on one sequence.

    Parameters
    ----------
    model : an rnn design or rnn.Recurrence
    xs, ys : what ``model.run`` takes first (inputs, and targets for the loss and gradients)
    h0 : initial state, optional; or the rnn.Carried that rnn.truncated_bptt returns (the
        last state and what else the next chunk reads: a skip connection's past states, the
        last output fed back), so that the page shows the next chunk of that training
    part : the state part of the connectivity and Jacobians (default: the first part, or
        "h" for a design without state parts, where it names a variable of the steps); a name
        that is no state part (or, without state parts, no variable of the run) raises
        ConfigError naming the valid ones
    before : dict name -> array (a ``state_dict``), optional
        The parameters before training: the page then switches between before and after.
        The model's own parameters are restored when the page is made.
    title : str, optional
    steps : int, for a system without input (an rnn.Recurrence with n_in=None, ``xs=None``).
        A model whose ``run`` takes ``steps`` and targets (a VectorToSequence, an
        EncoderDecoder) runs one step per target: a ``steps`` that disagrees with ``len(ys)``
        raises ConfigError, and without ``ys`` it cannot run (the page passes no sampler to
        decode freely); any other model runs ``len(xs)`` steps, and ``steps`` raises
        ConfigError
    symbols : rnn.datasets.Vocab or sequence of str, optional
        What each id stands for (id i is ``symbols[i]``): the page shows the ids of x(t) and
        y(t) as these symbols (the characters of a character model).  Fewer than the model's
        ``n_in`` (when xs are ids) or ``n_out`` (when ys are ids) raise ConfigError.
    **options : keyword arguments of ``model.run`` that the model's loss was computed with,
        so that the page shows that run: ``mask=`` (padded sequences: padded steps add no loss
        term, and the saturation counts the kept rows' units), ``teacher_forcing=False`` (a
        JordanRNN running free), ``feedback="output"`` (a design that feeds o(t-1) back, with
        the squared error), ``y0=``.  Without them the run is ``model.run(xs, ys)``: unmasked
        and, for a design that feeds y(t-1) back, teacher-forced, which the page's notes say.
        A run that feeds the model's own output back has no Jacobians (the one-step Jacobian
        holds the step's inputs fixed; the notes say so).  An option the model's ``run`` does
        not take is a ConfigError.

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
    if title is not None and not isinstance(title, str):
        raise tg.DTypeError(f"viz.explore: title must be a str, got {type(title).__name__}")
    symbols = _symbols(symbols, model, xs, ys)
    parts = getattr(model, "parts", {}) or {}
    if part is not None and not isinstance(part, str):
        raise tg.DTypeError(f"viz.explore: part must be the name of a state part (a str), got "
                            f"{type(part).__name__}")
    if part is not None and parts and part not in parts:
        raise tg.ConfigError(f"viz.explore: part={part!r} is not a state part of {model.name}; "
                             f"its parts are {list(parts)}")
    if steps is not None and not _takes(model.run, "steps"):
        raise tg.ConfigError(f"viz.explore: steps={steps!r}, but {model.name} takes no steps: its "
                             "run has one step per input of xs (steps= is for a model whose run "
                             "takes steps, e.g. an rnn.Recurrence without input, xs=None)")
    part_given = part is not None
    part = part if part_given else (next(iter(parts)) if parts else "h")
    bundles = []
    with evaluating(model) as dropped:
        if before is not None:     # the model's own arrays and versions come back untouched
            with model.state_swapped(before, who="viz.explore(before=...)"):
                bundles.append(("before training",
                                _bundle(model, xs, ys, _cut(h0), part, steps, part_given,
                                        draw=False, options=options)))
        bundles.append(("after training" if before is not None else "model",
                        _bundle(model, xs, ys, h0, part, steps, part_given,
                                options=options)))
    if dropped:
        for _, b in bundles:
            b["diag"]["notes"].append(DROPOUT_OFF.format(dropped))
    current = bundles[-1][1]                   # the model's own parameters: its drawings serve all
    svg, templates = current.pop("svg"), current.pop("templates")
    sources = current.pop("template_sources")
    for _, b in bundles[:-1]:
        b.pop("svg")
        b.pop("templates")
        if b.pop("template_sources") != sources:
            raise tg.ConfigError("viz.explore: the parameters before training give another "
                                 "op structure than the model's")
    data = {
        "model": model.name, "title": title or f"tinygraph explorer: {model.name}",
        "steps": current["steps"], "part": part, "names": current["names"],
        "window": WINDOW, "keep": KEEP, "windows": current["windows"], "symbols": symbols,
        "svg": svg, "templates": templates,
        "bundles": [dict(b, label=label) for label, b in bundles],
    }
    return Explorer(_page(data), data)


DROPOUT_OFF = ("computed in evaluation mode (model.eval()): its dropout ({}) is off, so that "
               "every view shows the same function of the parameters; the model's modes are "
               "restored")


def _cut(h0):
    """``h0`` for the run with the parameters before training: a state carried undetached from
    an earlier run (its graph made with the model's own parameters, which the swap changes in
    place, so a sweep into it would refuse them as stale) as a leaf of the same values, still
    requiring grad (the page shows ∂L/∂h(0)); a dict of parts part by part."""
    def leaf(v):
        if isinstance(v, tg.Tensor) and v.parents:
            return tg.tensor(v.data.copy(), requires_grad=v.requires_grad, name=v.name)
        return v
    if isinstance(h0, dict) and not isinstance(h0, rnn.Carried):
        return {k: leaf(v) for k, v in h0.items()}
    return leaf(h0)


# ------------------------------------------------------------------ what the engine computed

def _takes(function, name):
    """Whether ``function`` takes a keyword argument ``name``."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True           # no signature to read: let the call say
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _bundle(model, xs, ys, h0, part, length, part_given=False, draw=True, options=None):
    with ThreadPoolExecutor(max_workers=3) as background:    # spectra, lag decay, renders
        return _bundle_with(model, xs, ys, h0, part, length, part_given, draw, background,
                            options)


def _named_start(h0, parts):
    """``h0`` with each Tensor of its state parts that has no name (a user's leaf, e.g.
    ``tg.tensor(..., requires_grad=True)``) read through a view named for its part, so that the
    page shows it as part(0), its value and ∂L/∂part(0) (the gradient reaches the user's tensor
    through the view); the user's tensors are not changed.  Named ones (a state carried from an
    earlier run) are the run's part(0) as they are."""
    def view(v, part):
        if isinstance(v, tg.Tensor) and v.name is None:
            return v.reshape(v.shape).named(part)
        return v
    if isinstance(h0, rnn.Carried):
        return rnn.Carried(h0, **({"h0": _named_start(h0["h0"], parts)} if "h0" in h0 else {}))
    if isinstance(h0, dict):
        return {k: view(v, k) for k, v in h0.items()}
    return view(h0, next(iter(parts), "h"))


def fixed_state_note(model, parts, shown):
    """What the explorer and the playground say of a state computed by fixed weights alone (an
    echo state network's reservoir), which they run from h(0) = 0 requiring grad to show
    ``shown``: training sends no gradient through time, but ∂L/∂h(t) through them is not 0."""
    return (f"{model.name}'s state needs no gradient (the weights it is computed by are fixed, "
            "so training sends none back through time: only the readout after h(t) learns); "
            f"the page runs it from {', '.join(f'{p}(0)' for p in parts)} = 0 requiring grad, "
            f"the same run, so that {shown} through the fixed weights are shown")


def _bundle_with(model, xs, ys, h0, part, length, part_given, draw, background, options=None):
    h0 = _named_start(h0, getattr(model, "parts", {}) or {})
    run, own = own_run(model, xs, ys, h0, length, "viz.explore", options)
    if run.loss is not None and not run.loss.requires_grad and not tg.is_grad_enabled():
        raise tg.ConfigError(f"viz.explore: called under tg.no_grad(), so {model.name}'s loss "
                             "needs no gradient, and the page shows gradients: call it outside "
                             "the block")
    fixed = None
    if h0 is None and run.loss is not None and any(run.parts.values()) and not any(
            n.requires_grad for nodes in run.parts.values() for n in nodes):
        # a state computed by fixed weights alone (an echo state network's reservoir) needs
        # no gradient, but ∂L/∂h(t) through it is what the page is for: the same run, from
        # h(0) = 0 that requires grad
        zeros = {p: tg.tensor(np.zeros(nodes[0].shape, dtype=nodes[0].dtype),
                              requires_grad=True, name=p) for p, nodes in run.parts.items() if nodes}
        try:
            again = own_run(model, xs, ys, zeros, length, "viz.explore", options)
        except tg.ConfigError:   # a run that takes no h0 (an encoder-decoder), or makes its
            again = None         # own h(0) (a VectorToSequence with h0_from_x): refused below
        if again is not None and any(n.requires_grad for nodes in again[0].parts.values()
                                     for n in nodes):
            (run, own), h0 = again, zeros
            fixed = fixed_state_note(model, h0, "∂L/∂h(t), the connectivity and the eq. 10.52 "
                                                "ratio")
    if run.loss is not None and not run.loss.requires_grad:
        raise tg.ConfigError(
            f"viz.explore: {model.name}'s loss needs no gradient (every parameter it is "
            "computed from is fixed, requires_grad=False" + (
                ", and the page cannot start its state from an h(0) that requires grad"
                if h0 is None else ", and so is the h0 given") + "), and the page shows "
            "gradients: make a parameter require grad" + (
                "" if h0 is None else ", or give h0 as a tensor that requires grad"))
    roots = [run.loss] if run.loss is not None else (
        list(run.outputs) + [n for nodes in run.parts.values() for n in nodes[-1:]])
    variables, folded = _own_variables(roots, own, run, h0, windows=(None, KEEP))
    steps = variables.steps
    stepped = [name for name in variables.names
               if any(t is not None and t >= 1 and n == name for n, t in variables.nodes)]
    if part_given and not run.parts and part not in stepped:
        raise tg.ConfigError(f"viz.explore: part={part!r} is no variable of {model.name}'s run "
                             f"(it carries no state parts; part names a variable of its steps: "
                             f"one of {stepped})")
    backward = _runs_backward(model, variables, part, run)
    # the chains that run backward in time (figure 10.11's g) start from g(T+1), which the run
    # makes before the steps (scope t=0, as a forward chain's h(0)): the page names it g(T+1)
    ends = {p: steps + 1 for p in run.parts
            if p == part and backward or p != part and _runs_backward(model, variables, p, run)}
    tail = _padded_tail(model, run, steps, options)
    jacobians = _jacobians(model, xs, ys, h0, part, run, length, background, backward, options,
                           upto=steps if tail else None)
    names = variables.names
    windows = _windows(steps)
    detail = sorted({t for a, b in windows for t in range(a, b + 1)} | _summary_steps(steps))
    by_step = _op_nodes(roots, set(detail), own)
    given = _given(h0, run)
    template_of, template_graphs = _op_templates(
        by_step, lambda p, t: _outside(p, t, own, given, ends))
    svg = None
    if draw:          # the renderer's processes run while the rest is computed here
        views = ([_folded_graph(model, folded),
                  _unrolled_graph(model, variables, None)]
                 + [_unrolled_graph(model, variables, range(a, b + 1)) for a, b in windows])
        svg = background.submit(_svg_texts, template_graphs + views)
    keys = list(variables.nodes)
    grads = {}
    order = []
    op_grads = {}
    if run.loss is not None:          # one sweep for the variables and the op nodes
        wanted = [k for k in keys if variables.nodes[k].requires_grad]
        op_nodes = [n for key in sorted(by_step) for n in by_step[key] if n.requires_grad]
        try:
            values = tg.grad(run.loss, [variables.nodes[k] for k in wanted] + op_nodes,
                             retain_graph=True)
        except tg.GraphFreedError:    # the user's backward freed the graph of tensors made
            given = _given(h0, run)   # outside the run (another model's states the steps
            wanted = [k for k in wanted if own(variables.nodes[k].scope)   # read): those
                      or id(variables.nodes[k]) in given]     # get no gradient on the page
            with _named_as_explore():    # a graph inside the run freed: the user's call named
                values = tg.grad(run.loss, [variables.nodes[k] for k in wanted] + op_nodes,
                                 retain_graph=True)
        grads = dict(zip(wanted, values))
        op_grads = {id(n): g for n, g in zip(op_nodes, values[len(wanted):])}
        try:
            order = tg.sweep_order(run.loss)
        except (tg.GraphFreedError, tg.StaleGraphError):   # a graph behind the run was freed
            with _named_as_explore():
                order = tg.sweep_order(run.loss, [variables.nodes[k] for k in wanted] + op_nodes)
    position = {id(n): i for i, n in enumerate(order)}
    key_of = {id(variables.nodes[k]): k for k in keys}
    name_index = {name: i for i, name in enumerate(names)}
    sweep = []
    for i, n in enumerate(order):
        key = key_of.get(id(n))
        if key is not None:
            sweep.append([name_index[key[0]], _step_of(key, ends), i])
    ops = _op_numbers(by_step, template_of, position, op_grads)
    diag = _diagnostics(model, part, run, own, steps, grads, jacobians, backward, options, tail)
    var_data = _variable_data(variables, names, grads, set(detail), ends)
    diag = diag()
    if fixed:
        diag["notes"].insert(0, fixed)
    alignment, why_not = _alignment(run, variables, model.name)
    if why_not:
        diag["notes"].append(why_not)
    templates = None
    if draw:
        texts = svg.result()
        split = len(template_graphs)
        templates, (folded, summary, *drawn) = texts[:split], texts[split:]
        svg = {"folded": folded, "summary": summary, "windows": drawn}
    return {"steps": steps, "names": names, "windows": windows, "detail": detail,
            "loss": None if run.loss is None else _shown(run.loss.item()),
            "loss_terms": _loss_terms(run),
            "vars": var_data, "sweep": sweep, "sweep_total": len(order), "ops": ops,
            "diag": diag, "svg": svg, "templates": templates, "alignment": alignment,
            "op_chains": _op_chains(variables, own, by_step),
            "template_sources": [g.source for g in template_graphs]}


@contextlib.contextmanager
def _named_as_explore():
    """A backward error raised inside as the same class, naming ``viz.explore`` (the function
    the user called) where the engine's named its own ``grad`` or ``sweep_order``."""
    try:
        yield
    except tg.BackwardError as e:
        text = str(e)
        for inner in ("grad: ", "sweep_order: "):
            if text.startswith(inner):
                text = text[len(inner):]
        raise type(e)(f"viz.explore: {text}") from None


def _loss_terms(run):
    """[how many, first t, last t] of the loss terms L(t) whose sum the page's loss is (an
    encoder-decoder's n_y, not its n_x steps; a sequence-to-one net's one), or None."""
    when = [time_step(loss.scope) for loss in run.losses]
    if not when or None in when:
        return None
    return [len(when), min(when), max(when)]


def _step_of(key, ends):
    """The step the page names variable ``key`` (name, t) at: t, but T + 1 for the state a chain
    backward in time starts from (``ends``: {part: T + 1}), made before the steps as t = 0."""
    name, t = key
    return ends[name] if t == 0 and name in ends else t


def _variable_data(variables, names, grads, detail, ends=None):
    """Per variable name: the norm of its value and gradient at every step, and at the steps of
    ``detail`` (and the static ones) the first entries and a histogram of both; the norms and
    histograms of all steps are computed on stacked arrays (:func:`_norms`, :func:`_histograms`).
    The state a backward chain starts from is keyed at its step T + 1 (:func:`_step_of`)."""
    items = list(variables.nodes.items())
    values = [node.data for _, node in items]
    found = [grads.get(key) for key, _ in items]
    norms = _shown_all(_norms(values))
    gnorms = _shown_all(_norms([g for g in found if g is not None]))[::-1]
    shown = [t is None or t < 1 or t in detail for (_, t), _ in items]
    vhists = iter(_histograms([v for v, s in zip(values, shown) if s]))
    ghists = iter(_histograms([g for g, s in zip(found, shown) if s and g is not None]))
    vvecs = iter(_vectors([v for v, s in zip(values, shown) if s]))
    gvecs = iter(_vectors([g for g, s in zip(found, shown) if s and g is not None]))
    var_data = {name: {"norm": {}, "gnorm": {}, "value": {}, "grad": {}, "vhist": {}, "ghist": {},
                       "shape": None} for name in names}
    counts = {}
    for (name, _), node in items:
        counts.setdefault(name, {}).setdefault(tuple(node.shape), 0)
        counts[name][tuple(node.shape)] += 1
    common = {name: list(max(c, key=c.get)) for name, c in counts.items()}   # most steps'
    for ((name, t), node), norm, g, show in zip(items, norms, found, shown):
        entry = var_data[name]
        key = "s" if t is None else str(_step_of((name, t), ends or {}))
        entry["shape"] = common[name]
        if list(node.shape) != common[name]:
            # a step of another shape (an h(0) of (H,) that the run broadcasts over the batch)
            entry.setdefault("shapes", {})[key] = list(node.shape)
        entry["ids"] = node.data.dtype.kind in "iub"
        entry["norm"][key] = norm
        entry["gnorm"][key] = None if g is None else gnorms.pop()
        if show:
            entry["value"][key] = next(vvecs)
            entry["grad"][key] = None if g is None else next(gvecs)
            entry["vhist"][key] = next(vhists)
            entry["ghist"][key] = None if g is None else next(ghists)
    return var_data


ALPHA = "α"           # the name of attention weights: an EncoderDecoder's, and a user cell's


def _alignment(run, variables=None, model_name="the model"):
    """The alignment heatmap and a note, or (None, None) without attention.

    A design with attention (``run.attention``, an EncoderDecoder's): α(t, k) of the run (the
    first sequence of a batch) as rows t (decoder steps) and columns k (encoder steps), with
    the variables that hovering (t, k) lights up: the decoder's at step t, the encoder's at
    step k.  A user's cell (an rnn.Recurrence) that names its attention weights "α" at every
    step (``tg.softmax(...).named("α")``, as the README's decoder does): rows t, columns the
    entries k of α(t), hovering lighting up step t; if its α are not weights that sum to 1
    over one set of positions at every step, no heatmap and a note saying why."""
    alphas = getattr(run, "attention", None)
    if alphas:
        rows = [np.asarray(a.data if a.ndim == 1 else a.data[0]) for a in alphas]
        return ({"cells": [[_num(v) for v in row] for row in rows],
                 "title": "alignment α(t, k) (rows: decoder step t, columns: encoder step k)",
                 "decoder": ["s", ALPHA, "ctx", "o", "L", "y"], "encoder": ["x", "h"]}, None)
    if variables is None:
        return None, None
    found = {t: node for (name, t), node in variables.nodes.items()
             if name == ALPHA and t is not None and t >= 1}
    if not found:
        return None, None
    steps = variables.steps
    why = None
    missing = [t for t in range(1, steps + 1) if t not in found]
    rows = [np.asarray(found[t].data) for t in sorted(found)]
    rows = [r.reshape(-1) if r.ndim <= 1 else r.reshape(-1, r.shape[-1])[0] for r in rows]
    widths = sorted({len(r) for r in rows})
    if missing:
        why = f"α is a variable of {len(found)} of the {steps} steps (not of t={missing[0]})"
    elif len(widths) > 1:
        why = f"α(t) has {widths[0]} entries at some steps and {widths[-1]} at others"
    elif rows[0].dtype.kind not in "fc" or widths[0] < 1:
        why = "α(t) holds no weights"
    else:
        for t, r in enumerate(rows, start=1):
            if np.isfinite(r).all() and ((r < 0).any() or abs(r.sum() - 1) > 1e-4):
                why = (f"α({t}) is no set of weights (its entries sum to {_num(r.sum())}"
                       + (", some negative" if (r < 0).any() else "") + ")")
                break
    if why:
        return None, (f"{model_name}'s steps have a variable named α, but {why}: no alignment "
                      "heatmap, which shows attention weights α(t, k) that sum to 1 over the "
                      "positions k at every step t")
    return {"cells": [[_num(v) for v in row] for row in rows],
            "title": "alignment α(t, k) (rows: step t, columns: entry k of α(t))",
            "decoder": [ALPHA], "encoder": []}, None


def _own_variables(roots, own, run, h0, windows=(None,)):
    """The variables of ``run`` (see :func:`viz.derive.derive`), keyed by the run's own structure,
    for each window of ``windows`` (None: every step; an int: ``derive``'s ``window``), all
    from one walk of the graph (:func:`_window_of`).

    Only the nodes the run made (``own``, from :func:`rnn.diagnostics.own_run`) are its
    variables (name, t); the state it started from (``h0`` as given, e.g. an earlier run's
    last state carried undetached) is part(0) of this run, and another node made outside that
    feeds it (another model's state that the steps read) is a static input named for its
    own scope ("h@encoder/t=5"), never mistaken for this run's h(5).  The k-th state of each
    part is ``run.parts[part][k-1]``.
    """
    given = _given(h0, run)
    outside = {}

    def position(scope):               # outside scopes get negative codes, told apart below
        if own(scope):
            return time_step(scope)
        return outside.setdefault(scope, -1 - len(outside))

    found = derive(roots, hide=BOOK_HIDDEN, position=position, inside=False)
    scope_of = {code: scope for scope, code in outside.items()}
    return [_own_of(_window_of(found, window), scope_of, given, run) for window in windows]


def _given(h0, run):
    """{id: part} of the tensors of ``h0`` (the state the run starts from, each part(0))."""
    if isinstance(h0, rnn.Carried):
        h0 = h0.get("h0")
    if isinstance(h0, tg.Tensor):
        return {id(h0): next(iter(run.parts), "h")}
    if isinstance(h0, dict):
        return {id(v): k for k, v in h0.items() if isinstance(v, tg.Tensor)}
    return {}


def _window_of(found, window):
    """What ``derive(..., window=window, inside=False)`` gives, from ``found``, the same call
    without a window: the same keys, nodes and fixed weights, the edges (and their paths) into
    the middle steps left out.  (Without an outside scope every source of an edge is one of
    the variables, so no key is added for one.)"""
    if window is None:
        return found
    last = max((t for _, t in found.keys if t is not None), default=0)

    def kept(dst):
        return dst[1] is None or not window + 1 < dst[1] < last - window
    return Variables(found.keys, {k: v for k, v in found.edges.items() if kept(k[1])},
                     found.nodes, {k: v for k, v in found.paths.items() if kept(k[1])},
                     found.fixed)


def _own_of(found, scope_of, given, run):
    """The variables of :func:`_own_variables` from the variables ``found`` by ``derive``."""
    rename = {}
    for (name, t), node in found.nodes.items():
        if t is not None and t < 0:
            rename[(name, t)] = ((given[id(node)], 0) if id(node) in given
                                 else (f"{name}@{scope_of[t] or 'outside'}", None))
    edges = {}
    for (src, dst), labels in found.edges.items():
        if dst in rename or (dst[1] is not None and dst[1] < 0):
            continue                   # what happened before this run, or outside it
        edges[(rename.get(src, src), dst)] = labels
    used = {src for src, _ in edges} | {dst for _, dst in edges}
    keys = [rename.get(k, k) for k in found.keys
            if k not in rename or rename[k] in used]
    keys = [k for k in dict.fromkeys(keys) if k[1] is None or k[1] >= 0]
    nodes = {rename.get(k, k): n for k, n in found.nodes.items()
             if (k[1] is None or k[1] >= 0 or k in rename)}
    for part, states in run.parts.items():
        for k, node in enumerate(states, start=1):
            if (part, k) in nodes:
                nodes[(part, k)] = node
    return _Variables(keys, edges, {k: nodes[k] for k in keys if k in nodes})


class _Variables(Variables):
    """Variables whose names are found once, and whose whole-graph walks the views make once
    (``_view_memo``): the views ask for them in every window, and a long run has tens of
    thousands of keys.  Never changed after they are made."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._names = list(dict.fromkeys(name for name, _ in self.keys))
        self._view_memo = {}      # viz.views keeps its whole-graph walks here (drawn per window)

    @property
    def names(self):
        return list(self._names)


def _symbols(symbols, model, xs, ys):
    """The list of str that ids stand for, from a Vocab (its tokens) or a sequence; fewer than
    the ids that ``xs`` and ``ys`` may hold when they are ids (the model's ``n_in`` and
    ``n_out``) raise ConfigError naming both counts: the page would show some ids as symbols and
    the rest as bare ids, a sign of another vocabulary's symbols."""
    if symbols is None:
        return None
    tokens = getattr(symbols, "tokens", symbols)
    if isinstance(tokens, str) or not hasattr(tokens, "__len__"):
        raise tg.DTypeError(f"viz.explore: symbols must be an rnn.datasets.Vocab or a sequence of "
                            f"str (symbols[i] for id i), got {type(symbols).__name__}")
    tokens = [str(t) for t in tokens]
    for what, value, size in (("xs", xs, "n_in"), ("ys", ys, "n_out")):
        ids = _ids_of(value)
        if ids is None:
            continue
        n = getattr(model, size, None)
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and len(tokens) < n:
            raise tg.ConfigError(
                f"viz.explore: symbols has {len(tokens)} entries but {model.name}'s {what} are "
                f"ids 0..{n - 1} ({size}={n}); give one symbol per id (symbols[i] for id i, "
                "e.g. the Vocab the model was made for)")
    return tokens


def _ids_of(value):
    """``value`` (xs or ys) as an integer array when it holds ids, else None (floats, or what the
    model's own checks refuse later)."""
    if value is None:
        return None
    try:
        arr = np.asarray(value.data if isinstance(value, tg.Tensor) else value)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype.kind in "iu" else None


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


def _runs_backward(model, variables, part, run=None):
    """Whether state part ``part`` is a chain that runs backward in time (figure 10.11's g:
    step t reads g(t+1)): its state of step 1 is computed from its state of step 2 (of
    ``run``, or of a trace of two steps for a run of one).  Without those, its edges go from
    step t + 1 to step t (see :func:`viz.views.backward_chains`); an LSTM's
    h_r(t+1) reaches h_r(t) only through the named gates, with no edge of its own, so the
    run's nodes are asked first."""
    states = run.parts.get(part) if run is not None else None
    if states is not None and len(states) >= 2:
        return _reads(states[0], states[1])
    if variables.steps == 1:          # one step: the part's states 1 and 2 of a trace of two
        traced = {}
        for node in walk(model.trace(2)):
            if node.name == part and not isinstance(node, tg.Parameter):
                traced.setdefault(time_step(node.scope), node)
        if 1 in traced and 2 in traced:
            return _reads(traced[1], traced[2])
        return part in backward_chains(model, variables, BOOK_HIDDEN)
    return any(a[0] == b[0] == part and None not in (a[1], b[1]) and b[1] == a[1] - 1 >= 1
               for a, b in variables.edges)


def _reads(node, other):
    """Whether ``other`` is behind ``node`` in the graph: a search from ``node`` breadth first,
    which meets a chain's next state within its step (a forward chain's state of step 1 has
    only step 1 and what came before behind it)."""
    seen, frontier = {id(node)}, [node]
    while frontier:
        nxt = []
        for n in frontier:
            for p in n.parents:
                if p is other:
                    return True
                if id(p) not in seen:
                    seen.add(id(p))
                    nxt.append(p)
        frontier = nxt
    return False


def _padded_tail(model, run, steps, options):
    """The run's steps after ``steps`` (the last step of the page, the last loss term's), when
    the mask pads every row of each of them (a sequence shorter than the run: they add no loss
    term and carry the state unchanged), as (first, last); else None.  The page's Jacobians,
    lag decay, saturation and connectivity then end at ``steps`` with the graph: the identity
    Jacobians of those steps were spectra of steps the page has not, and the lag decay's
    product over them."""
    keep = kept_rows(options, "viz.explore")
    if keep is None or padded_chain(model) is not None:
        return None
    length = max((len(nodes) for nodes in run.parts.values()), default=len(run.outputs))
    if not steps < length == len(keep) or keep[steps:].any():
        return None
    return steps + 1, length


def _jacobians(model, xs, ys, h0, part, run, length, background, backward=False, options=None,
               upto=None):
    """The Jacobians ∂part(t)/∂part(t-1) of the run (:func:`rnn.jacobians`; for a chain
    ``backward`` in time, ∂g(t)/∂g(t+1) in time order), made first so that their spectra and
    lag decay (over the products in the chain's own order, lags up to the chain's own length:
    an encoder-decoder's two chains may differ in length) are computed by ``background`` (an
    executor; LAPACK lets go of the GIL) while the rest of the page is made.  Returns (jacs or
    None, finite, spectra future or None, lag decay future or None, notes)."""
    parts = getattr(model, "parts", {}) or {}
    if part not in parts:
        return None, None, None, None, [f"{model.name} carries no state part '{part}' from "
                                        "step to step: no Jacobians ∂h(t)/∂h(t-1)"]
    if runs_free(options):
        return None, None, None, None, [
            f"the run feeds {model.name}'s own output back (running free): no Jacobians "
            f"∂{part}(t)/∂{part}(t-1), which hold the step's inputs fixed and would leave out "
            "the path through o(t-1)"]
    batch = run.parts[part][0].data.size // parts[part] if run.parts.get(part) else 1
    if batch != 1:
        return None, None, None, None, [f"a batch of {batch}: the Jacobians need a batch of "
                                        "one"]
    try:
        jacs = model_jacobians(model, xs, part, h0, ys, length, "viz.explore", options)
    except tg.ConfigError as e:
        return None, None, None, None, [str(e)]
    if upto is not None:          # the padded steps after the page's last (_padded_tail)
        jacs = jacs[:upto]
    notes = []
    lag = (getattr(model, "lags", None) or {}).get(part)
    if lag and lag > 1:     # a delay of 1 reads h(t-1) itself: its path is in the Jacobian
        notes.append(f"{model.name} also carries {part}(t-{lag}) into step t (a skip connection): "
                     f"the lag decay is the product of the one-step Jacobians "
                     f"∂{part}(t)/∂{part}(t-1), without the paths through {part}(t-{lag}), so it "
                     f"is not ‖∂{part}(t)/∂{part}(t-k)‖ for k >= 2 (it falls faster)")
    finite = np.isfinite(jacs).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite) + 1
        notes.append(f"the Jacobians ∂{part}(t)/∂{part}(t-1) are not finite at "
                     f"{len(bad)} step(s) (first t={bad[0]}): no spectra there, no lag decay")
    spectra = None
    if finite.any():
        spectra = background.submit(rnn.spectra, jacs if finite.all() else jacs[finite])
    decay = None
    if finite.all():          # 30 lags and 3 end steps: LAPACK on a busy machine is slow
        decay = background.submit(rnn.lag_decay, jacs[::-1] if backward else jacs,
                                  max_lag=min(len(jacs), 30), ends=3)
    return jacs, finite, spectra, decay, notes


def _diagnostics(model, part, run, own, steps, grads, jacobians, backward=False, options=None,
                 tail=None):
    """The page's diagnostics, as a function that returns them once the spectra (from
    :func:`_jacobians`, computed in the background) are done; with ``tail`` (the padded steps
    after the page's last, :func:`_padded_tail`), of steps 1..``steps`` alone."""
    jacs, finite, spectra, decay, jacobian_notes = jacobians
    notes = _run_notes(model, run, options)
    rows = saturation_rows(model, options, "viz.explore")
    try:
        whole, chains, nans = saturation_with_nans(run, own, who="viz.explore", **rows)
        if rows["keep"] is not None:
            notes.append("the saturation counts the kept rows' units (no fraction at a step "
                         "whose every row is padded)")
    except tg.ConfigError:      # a mask of one of several chains: every row's units, said so
        whole, chains, nans = saturation_with_nans(run, own, **dict(rows, keep=None))
        notes.append("the saturation counts the units of every row at every step, padded ones "
                     "too: the mask pads one of this model's chains, not the steps of each")
    if tail:
        whole = whole[:steps]
        chains = {chain: values[:steps] for chain, values in chains.items()}
        nans = {chain: [t for t in bad if t <= steps] for chain, bad in nans.items()}
        nans = {chain: bad for chain, bad in nans.items() if bad}
        first, last = tail
        notes.append(f"step{'s' if last > first else ''} "
                     f"{first}{'–' + str(last) if last > first else ''} of the run "
                     f"{'are' if last > first else 'is'} padded in every row (mask 0 after the "
                     f"sequence ends): no loss term, the state carried unchanged; the page, its "
                     f"graph, Jacobians, lag decay, saturation and connectivity end at step {steps}")
    out = {"part": part, "connectivity": {}, "spectra": None, "lag": None, "ratio": None,
           "saturation": _saturation(whole, chains), "notes": notes, "backward": backward}
    note = _saturation_note(chains, nans)
    if note:
        out["notes"].append(note)
    parts = getattr(model, "parts", {}) or {}
    if run.losses:
        rows = None
        if len(run.losses) > EXACT_ROWS:
            loss_steps = sorted(time_step(l.scope) for l in run.losses)
            picks = np.unique(np.linspace(0, len(loss_steps) - 1, SAMPLED_ROWS).round().astype(int))
            rows = [loss_steps[i] for i in picks]
            out["notes"].append(f"{len(rows)} of the {len(run.losses):,} loss terms computed "
                                "(evenly spaced rows, each exact); bins show the largest entry")
        heat = []
        for name in (list(parts) or [part]):
            try:
                nodes = part_nodes(run, name, "viz.explore", own)
            except tg.ConfigError as e:
                out["notes"].append(str(e))
                continue
            if any(n.requires_grad for n in nodes.values()):
                heat.append(name)
            else:
                out["notes"].append(f"'{name}' needs no gradient in this run (nothing it is "
                                    "computed from is trained): no connectivity for it")
        if heat:
            height = max(time_step(l.scope) for l in run.losses)
            matrices = run_connectivity(run, heat, "viz.explore", rows, own, compact=True)
            out["connectivity"] = {name: _binned(m[:, :steps] if tail else m, rows, height)
                                   for name, m in matrices.items()}
    else:
        out["notes"].append("no loss terms (no targets ys): no gradients, connectivity or sweep")
    out["notes"] += jacobian_notes
    if jacs is None:
        return lambda: out
    if run.loss is not None:
        ratio = np.full(steps, np.nan)
        for t, node in part_nodes(run, part, "viz.explore", own).items():
            g = grads.get((part, t))
            if g is not None and t <= len(jacs) and finite[t - 1]:
                ratio[t - 1] = eq_10_52(g, jacs[t - 1])
        out["ratio"] = _nums(ratio)

    def finish():
        norms, radii = np.full(len(jacs), np.nan), np.full(len(jacs), np.nan)
        if spectra is not None:
            norms[finite], radii[finite] = spectra.result()
        lag = None
        if decay is not None:
            lag = decay.result()
            lag = {"lags": lag.lags.tolist(), "norms": _nums(lag.norms), "rate": _num(lag.rate),
                   "scale": _num(lag.scale)}
        # the page's key order: spectra before lag and ratio
        return dict(out, spectra={"norm": _nums(norms), "radius": _nums(radii)}, lag=lag)
    return finish


def _run_notes(model, run, options):
    """What run the page shows, where it is not simply ``model.run(xs, ys)`` of a model that
    reads no targets: teacher-forced or running free, masked; and the precision of a run in
    less than float64, whose six digits the page shows are not all exact."""
    options = options or {}
    notes = []
    states = [n for nodes in run.parts.values() for n in nodes[:1]] + list(run.outputs[:1])
    low = sorted({str(n.dtype) for n in states if n.dtype.kind == "f" and n.dtype.itemsize < 8})
    if low:
        digits = {"float32": "7", "float16": "3"}
        notes.append(f"computed in {', '.join(low)} (about "
                     f"{' or '.join(digits.get(d, '?') for d in low)} significant digits, fewer "
                     "after many steps of rounding): the page's six-digit numbers are that "
                     "arithmetic's, their last digits not those of the exact values")
    feeds = (isinstance(getattr(model, "feedback", None), str)
             or getattr(model, "reads_targets", False))
    if feeds and runs_free(options):
        notes.append(f"running free: {model.name} is fed its own output o(t-1) (as given: "
                     + ", ".join(f"{k}={v!r}" for k, v in options.items()
                                 if k in ("teacher_forcing", "feedback")) + ")")
    elif feeds and run.loss is not None:
        notes.append(f"teacher-forced: {model.name} is fed the target y(t-1) at step t, as "
                     "loss(xs, ys) computes by default; for a model trained running free give "
                     "the run's options (viz.explore(..., teacher_forcing=False) for a "
                     "JordanRNN, feedback=\"output\" with the squared error)")
    if options.get("mask") is not None and padded_chain(model) is not None:
        notes.append(f"masked: the mask pads the source, so the padded steps (mask 0) of "
                     f"{padded_chain(model)} carry its state, as in loss(xs, ys, mask=mask); "
                     "every other step and row has its loss term and units")
    elif options.get("mask") is not None:
        notes.append("masked: the padded steps (mask 0) add no loss term and carry the state, as "
                     "in loss(xs, ys, mask=mask)")
    return notes


def _saturation(whole, chains):
    """The fraction of saturated units per step (``whole``, ``chains``: the run's fractions, and
    by chain, of :func:`rnn.diagnostics.saturation_with_nans`): one list, or for a run of several
    chains whose steps are not the same time (an encoder-decoder's encoder and decoder: scopes
    of their own, "encdec/encoder/t=K" and "encdec/decoder/t=K") {chain: list} of each chain's
    own units, None where it has no step t, so that encoder step 2 and decoder step 2 are not
    averaged."""
    if len(chains) < 2:            # as rnn.saturation: 0 at a step without such units
        return _nums(whole)
    return {chain.rsplit("/", 1)[-1]: _nums(values) for chain, values in sorted(chains.items())}


def _saturation_note(chains, nans):
    """The note that says where the saturation has no number because units are NaN (the plot
    leaves a gap there, not a 0), or None (``chains``: the fractions by chain, ``nans``: the
    NaN steps by chain)."""
    if not nans:
        return None
    several = len(chains) > 1
    where = ", ".join((f"in the {chain.rsplit('/', 1)[-1]} " if several else "")
                      + f"at {len(bad)} step(s) (first t={bad[0]})"
                      for chain, bad in sorted(nans.items()))
    return (f"units of tanh or σ are NaN {where}: no fraction of saturated units there (a gap "
            "in the plot)")


def _binned(matrix, rows, height):
    """The heatmap: loss terms t = 1..height (rows) and steps k (columns) in at most HEAT_BINS
    bins each, a bin showing its largest entry (None where one is not finite); with sampled
    ``rows`` (increasing), ``matrix`` holds only those rows and the heatmap has one row per
    sampled loss term."""
    width = matrix.shape[1]

    def edges(n):
        return np.unique(np.linspace(0, n, min(n, HEAT_BINS) + 1).round().astype(int))
    col_edges, row_edges = edges(width), edges(height)
    if rows is None:
        picked, finite = _block_max(matrix, row_edges, 0)
    else:
        picked = matrix
        finite = np.isfinite(picked)
    picked, finite = _block_max(picked, col_edges, 1, finite)
    values, bins = _nums(picked), picked.shape[1]
    cells = [[v if ok else None for v, ok in zip(values[i * bins:(i + 1) * bins], oks)]
             for i, oks in enumerate(finite.tolist())]
    return {"sampled": rows is not None, "rows": None if rows is None else list(rows),
            "row_edges": row_edges.tolist(), "col_edges": col_edges.tolist(), "cells": cells,
            "height": height, "width": width,
            "exact": rows is None and len(col_edges) == width + 1 and len(row_edges) == height + 1}


def _block_max(matrix, edges, axis, finite=None):
    """The largest entry of each block of ``matrix`` between consecutive ``edges`` along
    ``axis``, and whether every entry of the block is finite (a bin drawn as None if not)."""
    finite = np.isfinite(matrix) if finite is None else finite
    if len(edges) < 2:
        shape = list(matrix.shape)
        shape[axis] = 0
        return np.zeros(shape), np.zeros(shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        return (np.maximum.reduceat(matrix, edges[:-1], axis=axis),
                np.logical_and.reduceat(finite, edges[:-1], axis=axis))


_STEP_OF = re.compile(r"(^|/)t=-?\d+(/.*)?$")      # the "t=K" of a scope and what is inside


def _chain_of(scope):
    """The chain a node of step scope ``scope`` belongs to: its scope without the "t=K" (an
    encoder-decoder's "encdec/encoder" and "encdec/decoder", whose step t are not the same
    time)."""
    return _STEP_OF.sub("", scope)


def _op_nodes(roots, detail, own):
    """{(chain, t): the op nodes of step t of that chain} for each step in ``detail`` (the
    nodes this run made, ``own``), in the order the graph is walked.  The chain is "" for a
    run of one chain in time, else the last name of its scope ("encoder", "decoder"): the op
    DAG of decoder step 2 is not the encoder's step 2."""
    by_step = {}
    for node in walk(roots):
        if not own(node.scope):
            continue
        t = time_step(node.scope)
        if t in detail and param_behind(node) is None:
            by_step.setdefault((_chain_of(node.scope), t), []).append(node)
    if len({chain for chain, _ in by_step}) < 2:
        return {("", t): nodes for (_, t), nodes in by_step.items()}
    return {(chain.rsplit("/", 1)[-1], t): nodes for (chain, t), nodes in by_step.items()}


def _op_chains(variables, own, by_step):
    """{variable name: its chain} of a run of several chains (the key of :func:`_op_nodes`
    with which the page finds the op DAG of a selected variable's step), {} for one chain."""
    if all(chain == "" for chain, _ in by_step):
        return {}
    out = {}
    for (name, t), node in variables.nodes.items():
        if t is not None and t >= 1 and own(node.scope):
            out.setdefault(name, _chain_of(node.scope).rsplit("/", 1)[-1])
    return out


def _op_templates(by_step, outside):
    """The op-level DAG of each step of ``by_step`` (from :func:`_op_nodes`) as a template, the
    op structure shared by all steps that have the same one: {t: its template's index} and the
    templates (Digraphs, rendered by the caller).  ``outside(p, t)`` names an input p of step
    t made outside the step (:func:`_outside`)."""
    templates, index, template_of = [], {}, {}
    for key in sorted(by_step):
        nodes, t = by_step[key], key[1]
        local = {id(n): j for j, n in enumerate(nodes)}
        signature = tuple((n.op, n.name, tuple(n.shape),
                           tuple(local.get(id(p), outside(p, t)) for p in n.parents)) for n in nodes)
        if signature not in index:
            index[signature] = len(templates)
            templates.append(_op_graph(nodes, local, t, outside))
        template_of[key] = index[signature]
    return template_of, templates


def _op_numbers(by_step, template_of, position, grads):
    """Per step of ``by_step``: its template (from :func:`_op_templates`) and each op node's
    norms (gradients from ``grads``, id -> array), sweep position and histogram, computed on
    stacked arrays."""
    every = [n for key in sorted(by_step) for n in by_step[key]]
    norms = iter(_shown_all(_norms([n.data for n in every])))
    hists = iter(_histograms([n.data for n in every]))
    gnorms = iter(_shown_all(_norms([grads[id(n)] for n in every if id(n) in grads])))
    return {(f"{chain}:{t}" if chain else str(t)): {"template": template_of[(chain, t)], "nodes": [
        [next(norms), None if id(n) not in grads else next(gnorms), position.get(id(n)),
         next(hists)] for n in by_step[(chain, t)]]} for chain, t in sorted(by_step)}


def _outside(p, t, own=None, given=None, ends=None):
    """How a step's op graph names an input made outside the step: a parameter, or a node of
    another step relative to this one ("h (t-1)"), so that every step has the same graph.  The
    state the run starts from (``given``, {id: part}) is its part(0), however it was made (a
    state carried undetached from an earlier run, in that run's scope "t=5", was "h (t+4)" at
    step 1); another node that the run did not make (``own``) is named for its own scope.  A
    chain backward in time (``ends``, {part: T + 1}) starts from its part(T+1), made before
    the steps as t = 0: step T reads it as "g (t+1)", not "g (t-T)"."""
    ends = ends or {}
    base = param_behind(p)
    if base is not None:
        return f"param {base.name}"
    if given and id(p) in given:
        part = given[id(p)]
        return f"{part} (t{ends.get(part, 0) - t:+d})"
    if _of_parameters(p):
        return f"{p.name or p.op} of the parameters (shared by every step)"
    if own is not None and p.scope is not None and not own(p.scope):
        return f"{p.name or p.op or 'leaf'}@{p.scope}"
    other = time_step(p.scope)
    if other == 0 and p.name in ends:
        other = ends[p.name]
    when = "" if other is None else " (t)" if other == t else f" (t{other - t:+d})"
    return f"{p.name or p.op or 'leaf'}{when}"


def _of_parameters(node, limit=64):
    """Whether ``node`` is computed from Parameters alone (e.g. the input projection U.T + b made
    once, in step 1's scope, and read by every step), looking back at most ``limit`` nodes."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if len(seen) > limit or (n.name is not None and not isinstance(n, tg.Parameter)):
            return False
        if not n.parents and not isinstance(n, tg.Parameter):
            return False
        stack.extend(n.parents)
    return True


def _op_graph(nodes, local, t, name_of=_outside):
    g = new_digraph("ops", fit=False)
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
            text = name_of(p, t)
            if text not in outside:
                outside[text] = f"in{len(outside)}"
                g.node(outside[text], label=f"<{html_text(text)}>", shape="box", style="filled",
                       fillcolor="#dbe9f6", fontsize="9")
            g.edge(outside[text], f"op{j}")
    return g


def _folded_graph(model, variables):
    g = new_digraph(f"{model.name}_folded", fit=False)
    draw_folded(g, variables, "f", getattr(model, "edge_label", None))
    return g


def _unrolled_graph(model, variables, shown):
    g = new_digraph(f"{model.name}_unrolled", fit=False)
    draw_unrolled(g, variables, "u", getattr(model, "edge_label", None), keep=KEEP, shown=shown,
                  gap_text=lambda name, n: f"{html_text(name)} &#215;{n:,}",
                  backward=backward_chains(model, variables))
    return g


def _svg_texts(graphs):
    """:func:`_svg_text` of each of ``graphs``, in order.  The graphs are dealt out to one batch
    per core, and each batch is one renderer process (Graphviz lays out the graphs of its input
    one after the other and writes one SVG document for each, byte for byte what a process per
    graph writes), the processes running at the same time (threads only wait for them here)."""
    if len(graphs) < 2:
        return [_svg_text(g) for g in graphs]
    workers = min(len(graphs), os.cpu_count() or 1)
    batches = [graphs[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_batch_texts, batches))
    return [done[i % workers][i // workers] for i in range(len(graphs))]


def _batch_texts(graphs):
    """:func:`_svg_text` of each of ``graphs``, from one renderer process; graph by graph
    instead where that process fails or its output is not one SVG document per graph (a
    renderer that is not Graphviz's dot), so that an error names the graph as before."""
    try:
        text = render(graphviz.Source("".join(g.source for g in graphs)), "svg",
                      quiet=True).decode()
    except RenderError:
        return [_svg_text(g) for g in graphs]
    documents = text.split("<?xml ")[1:]    # each begins so; labels cannot hold a bare "<"
    if len(documents) != len(graphs) or not text.startswith("<?xml "):
        return [_svg_text(g) for g in graphs]
    return [_svg_element(d) for d in documents]


def _svg_text(g):
    """The SVG element of ``g`` (no XML prologue, no comments: it goes inside the page)."""
    return _svg_element(render(g, "svg", quiet=True).decode())  # "h ×194": a width warning


def _svg_element(text):
    return re.sub(r"<!--.*?-->\n?", "", text[text.index("<svg"):], flags=re.S)


# ------------------------------------------------------------------ numbers for the page

def _num(v):
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _shown(v):
    """A number as the page shows it: finite ones rounded, the others as "NaN", "Infinity" or
    "-Infinity" (JSON has no such numbers; the page prints the strings)."""
    v = float(v)
    if math.isfinite(v):
        return float(f"{v:.6g}")
    return "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"


_POW10 = 10.0 ** np.arange(23)          # the powers of ten that are exact doubles


def _rounded(values):
    """``float(f"{v:.6g}")`` of every finite entry of ``values`` (float64, flat), computed on the
    array: m = v 10^k rounded to an integer of six digits (k = 5 - floor(log10 |v|), 10^|k|
    exact, so v 10^k is off by half an ulp at most), then m / 10^k, one correctly rounded
    operation on exact operands: the double nearest the decimal m 10^-k, which is what
    parsing the six digits gives.  An entry where that could miss (m not of six digits,
    v 10^k within 1e-6 of a tie, |v| outside 1e-17..1e27, zeros) is formatted by Python as
    before.  Non-finite entries are returned as they are."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    out = v.copy()
    size = np.abs(v)
    ok = (size >= 1e-17) & (size < 1e27)
    with np.errstate(all="ignore"):
        k = 5 - np.floor(np.log10(np.where(ok, size, 1.0))).astype(np.int64)
        up = k >= 0
        power = _POW10[np.abs(k)]
        y = np.where(up, v * power, v / power)
        size = np.abs(y)
        ok &= (size >= 1e5) & (size < 1e6) & (np.abs(size - np.floor(size) - 0.5) > 1e-6)
        m = np.rint(y)
        fast = np.where(up, m / power, m * power)
    out[ok] = fast[ok]
    for i in np.flatnonzero(~ok & np.isfinite(v) & (v != 0)).tolist():
        out[i] = float(f"{v[i]:.6g}")
    return out


def _nums(arr):
    """``[_num(v) for v in arr]``, rounded on the whole array (:func:`_rounded`)."""
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    out = _rounded(flat).tolist()
    for i in np.flatnonzero(~np.isfinite(flat)).tolist():
        out[i] = None
    return out


def _shown_all(arr):
    """``[_shown(v) for v in arr]``, rounded on the whole array (:func:`_rounded`)."""
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    out = _rounded(flat).tolist()
    for i in np.flatnonzero(~np.isfinite(flat)).tolist():
        out[i] = _shown(flat[i])
    return out


def _norm(arr):
    """The 2-norm, without overflow for entries near the largest float (inf where it is)."""
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return 0.0
    if not np.isfinite(flat).all():
        return np.nan if np.isnan(flat).any() else np.inf
    scale = np.abs(flat).max()
    if scale == 0:
        return 0.0
    with np.errstate(over="ignore"):
        return float(scale * np.linalg.norm(flat / scale))


def _by_size(arrays):
    """{size: indices} of ``arrays`` (flattened), so that those of one size are stacked."""
    groups = {}
    for i, a in enumerate(arrays):
        groups.setdefault(np.size(a), []).append(i)
    return groups


def _stacked(arrays, indices):
    return np.stack([np.asarray(arrays[i], dtype=np.float64).reshape(-1) for i in indices])


def _norms(arrays):
    """``[_norm(a) for a in arrays]``, the arrays of one size computed on their stack: the same
    arithmetic (the scaled entries' dot product with themselves, a BLAS dot as
    ``np.linalg.norm`` of a vector makes it, through ``matmul`` of the stacked rows), so every
    number is the same to the last bit (tests/test_viz_explorer.py checks it)."""
    out = [0.0] * len(arrays)
    for size, indices in _by_size(arrays).items():
        if size == 0:
            continue
        if len(indices) == 1:
            out[indices[0]] = _norm(arrays[indices[0]])
            continue
        flat = _stacked(arrays, indices)
        finite = np.isfinite(flat).all(axis=1)
        scale = np.abs(flat).max(axis=1)
        ok = finite & (scale > 0)
        x = flat[ok] / scale[ok, None]
        with np.errstate(over="ignore"):
            values = scale[ok] * np.sqrt(np.matmul(x[:, None, :], x[:, :, None])[:, 0, 0])
        values = iter(values.tolist())
        for i, row_ok, row_finite in zip(indices, ok.tolist(), finite.tolist()):
            out[i] = next(values) if row_ok else 0.0 if row_finite else _norm(arrays[i])
    return out


def _vector(arr):
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    return _shown_all(flat[:SHOWN_VALUES])


def _vectors(arrays):
    """``[_vector(a) for a in arrays]``, rounded in one call."""
    heads = [np.asarray(a, dtype=np.float64).reshape(-1)[:SHOWN_VALUES] for a in arrays]
    if not heads:
        return []
    values = _shown_all(np.concatenate(heads))
    out, start = [], 0
    for head in heads:
        out.append(values[start:start + len(head)])
        start += len(head)
    return out


def _histogram(arr, bins=12):
    """None for a scalar or ids (nothing to histogram); else the counts of the finite entries in
    ``bins`` equal bins from the least to the largest, as ``np.histogram`` counts them (see
    :func:`_bins_of`), and how many entries are NaN or infinite."""
    if np.size(arr) < 2 or np.asarray(arr).dtype.kind in "iub":
        return None
    flat = np.asarray(arr, dtype=np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    other = int(flat.size - finite.size)
    if finite.size == 0:
        return None if other == 0 else {"counts": [], "lo": None, "hi": None, "nonfinite": other}
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:                                   # one value: it sits in the middle bin
        counts = np.zeros(bins, dtype=np.int64)
        counts[bins // 2] = finite.size
    else:
        where = _bins_of(finite[None, :], np.array([lo]), np.array([hi]), bins)[0]
        counts = np.bincount(where, minlength=bins)
    return {"counts": counts.tolist(), "lo": _num(lo), "hi": _num(hi), "nonfinite": other}


def _bins_of(values, lo, hi, bins):
    """The bin of each entry of ``values`` (rows, n), row i binned from ``lo[i]`` to ``hi[i]``
    (> lo[i]) as ``np.histogram(row, bins, range=(lo, hi))`` bins it: by the edges
    ``np.linspace(lo, hi, bins + 1)``, each bin holding its left edge (the last both), a
    value's computed bin moved by one where it is on the other side of an edge (7/12 of 0..1
    in 12 bins computes 6.999..., its edge 7/12 puts it in bin 7).  A row whose span overflows
    (a range near ±1.8e308) is binned on a halved scale, where np.histogram gives up."""
    with np.errstate(over="ignore"):
        scale = np.where(np.isfinite(hi - lo), 1.0, 0.5)[:, None]
    lo, hi, values = lo[:, None] * scale, hi[:, None] * scale, values * scale
    with np.errstate(over="ignore"):   # a span of nearly 1.8e308: linspace's own last
        edges = np.linspace(lo[:, 0], hi[:, 0], bins + 1, axis=1)   # step overflows; it
        # puts the endpoint back as hi itself, so the edges are right (no warning to show)
    for i in np.flatnonzero((hi[:, 0] - lo[:, 0]) / bins == 0).tolist():
        edges[i] = np.linspace(lo[i, 0], hi[i, 0], bins + 1)   # linspace's own zero-step form
    where = ((values - lo) / (hi - lo) * bins).astype(np.int64)   # np.histogram's estimate
    where = np.clip(where, 0, bins - 1)
    rows = np.arange(len(values))[:, None]
    where -= values < edges[rows, where]
    where += (values >= edges[rows, where + 1]) & (where != bins - 1)
    return where


def _histograms(arrays, bins=12):
    """``[_histogram(a) for a in arrays]``, the finite arrays of one size binned on their stack
    (the same elementwise arithmetic per entry; one ``bincount`` for all their rows)."""
    out = [None] * len(arrays)
    for size, indices in _by_size(arrays).items():
        plain = [i for i in indices if np.asarray(arrays[i]).dtype.kind not in "iub"]
        if size < 2 or not plain:
            continue
        flat = _stacked(arrays, plain)
        finite = np.isfinite(flat).all(axis=1)
        for i in np.asarray(plain)[~finite].tolist():
            out[i] = _histogram(arrays[i], bins)
        rows, flat = np.asarray(plain)[finite], flat[finite]
        if len(rows) == 0:
            continue
        lo, hi = flat.min(axis=1), flat.max(axis=1)
        counts = np.zeros((len(rows), bins), dtype=np.int64)
        same = hi == lo                            # one value: it sits in the middle bin
        counts[same, bins // 2] = size
        spread = flat[~same]
        if len(spread):
            where = _bins_of(spread, lo[~same], hi[~same], bins)
            where += (np.arange(len(spread)) * bins)[:, None]
            counts[~same] = np.bincount(where.reshape(-1), minlength=len(spread) * bins
                                        ).reshape(len(spread), bins)
        for i, c, a, b in zip(rows.tolist(), counts.tolist(), _nums(lo), _nums(hi)):
            out[i] = {"counts": c, "lo": a, "hi": b, "nonfinite": 0}
    return out


def _plain(text):
    """``text`` with every lone surrogate (not encodable in UTF-8) replaced by U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def _page(data):
    """The page: the data as JSON in a script block that no name can close or comment out
    (every ``<``, ``>`` and ``&`` escaped, non-ASCII too), the script allowed by its hash in
    a Content-Security-Policy that forbids every other script, inline handlers included."""
    def asset(name):
        with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
            return f.read()
    payload = (json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
               .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    script = asset("explorer.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    policy = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
              "img-src data:; base-uri 'none'; form-action 'none'")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{policy}\">"
            f"<title>{html.escape(_plain(data['title']))}</title>"
            f"<style>{asset('explorer.css')}</style>"
            f"</head><body>{asset('explorer.html')}"
            f"<script type='application/json' id='explorer-data'>{payload}</script>"
            f"<script>{script}</script></body></html>\n")
