"""The folded circuit and the unrolled graph of a recurrent model.

Both are drawn from :func:`viz.derive.derive` applied to ``model.trace(steps)``:
the unrolled graph has one node per variable per time step, laid out as in the
book (time left to right; in each step's column x → h → o → L ← y from bottom
to top); the folded circuit is the same graph quotiented by time, and an edge
from step t−1 to step t goes through the black square of a one-step delay.
There is no drawing code per architecture.
"""

import re

import graphviz
import numpy as np

import tinygraph as tg

from .derive import derive
from .opgraph import grad_fill, log_range
from .render import html_text, sup_html

KEEP = 3             # steps drawn at each end of a long unroll
_NODE = {"shape": "circle", "width": "0.75", "fixedsize": "false", "fontname": "Times-Roman",
         "fontsize": "18"}
_EDGE = {"fontname": "Times-Roman", "fontsize": "16", "arrowsize": "0.7"}
_SQUARE = {"shape": "square", "style": "filled", "fillcolor": "black", "label": "",
           "width": "0.14", "fixedsize": "true"}


def new_digraph(name):
    """An empty Digraph with the book's look (bottom-to-top layout); ``name`` is made a safe DOT id."""
    g = graphviz.Digraph(name=re.sub(r"\W", "_", str(name)))
    g.attr(rankdir="BT", nodesep="0.45", ranksep="0.5", newrank="true")
    g.attr("node", **_NODE)
    g.attr("edge", **_EDGE)
    return g


def _trace(model, steps, who):
    """``model.trace(steps)``, or a clear error for something that is not a recurrent model."""
    if not callable(getattr(model, "trace", None)) or not hasattr(model, "name"):
        raise tg.DTypeError(f"viz.{who}: needs a model with .name and .trace(steps) (an rnn "
                            f"design or rnn.Recurrence), got {type(model).__name__}")
    return model.trace(steps)


def variables_of(model, steps=3, hide=(), window=None, who="folded"):
    """The :class:`~viz.derive.Variables` of ``model.trace(steps)``."""
    return derive(_trace(model, steps, who), hide=hide, window=window)


BOOK_HIDDEN = ("a",)   # the pre-activation a(t) is named in the DAG but not drawn in the book's figures


def unrolled(model, steps=3, keep=KEEP, hide=BOOK_HIDDEN, time_labels=None, grads=False):
    """The unrolled graph of ``model`` over ``steps`` time steps.

    Parameters
    ----------
    model : object with ``name`` and ``trace(steps)`` (and optional ``edge_label``)
    steps : int
        Length of the traced unroll; more than ``2 * keep + 1`` steps are
        summarised (the first and last ``keep`` steps and one elision node per
        recurrent variable saying how many steps were left out).
    hide : iterable of str
        Variable names to treat as unnamed intermediate nodes: by default ``("a",)``,
        as in the book; pass ``()`` to draw every named variable.
    time_labels : callable t -> str, optional
        Superscript text of step t (default the number t).
    grads : bool
        The gradient-flow view: colour each variable that requires grad by
        ‖∂L/∂v(t)‖ (L the sum of the trace's roots) and write the norm under its name.

    A model that declares ``structure = "tree"`` (a recursive net) is drawn as its tree
    (:func:`viz.tree.tree`) over a balanced tree of ``steps`` leaves.

    Returns
    -------
    graphviz.Digraph
    """
    if getattr(model, "structure", None) == "tree":
        from .tree import tree          # tree.py builds on this module
        return tree(model, steps, grads=grads)
    roots = _trace(model, steps, "unrolled")
    g = new_digraph(f"{model.name}_unrolled")
    window = keep if steps > 2 * keep + 1 else None
    variables = derive(roots, hide=hide, window=window)
    norms = _variable_grad_norms(roots, variables) if grads else None
    draw_unrolled(g, variables, "u", getattr(model, "edge_label", None), keep, time_labels,
                  norms=norms)
    return g


def _variable_grad_norms(roots, variables):
    """(name, t) -> ‖∂L/∂v(t)‖ for the variables that require grad; L = sum of the roots' sums."""
    total = roots[0].sum()
    for r in roots[1:]:
        total = total + r.sum()
    keys = [k for k, node in variables.nodes.items() if node.requires_grad]
    grads = tg.grad(total, [variables.nodes[k] for k in keys], retain_graph=True)
    return {k: float(np.linalg.norm(g)) for k, g in zip(keys, grads)}


def folded(model, steps=3, hide=BOOK_HIDDEN):
    """The folded circuit of ``model``: one node per variable, delays as black squares.

    Parameters
    ----------
    model : object with ``name`` and ``trace(steps)`` (and optional ``edge_label``)
    steps : int
        Length of the traced unroll that is quotiented by time (the edges of its
        first and last few steps are grouped by variable and time offset).
    hide : iterable of str
        Variable names to treat as unnamed intermediate nodes: by default ``("a",)``,
        as in the book; pass ``()`` to draw every named variable.

    Returns
    -------
    graphviz.Digraph
    """
    lags = getattr(model, "lags", None) or {}
    steps = max(steps, max(lags.values(), default=0) + 1)   # a delay-d edge first appears at t = d + 1
    variables = variables_of(model, steps, hide, window=KEEP)
    g = new_digraph(f"{model.name}_folded")
    draw_folded(g, variables, "f", getattr(model, "edge_label", None))
    return g


def _edge_text(labels, dt, edge_label):
    if labels:
        return ", ".join(labels)
    if dt and edge_label:
        return edge_label
    return None


def _label_attrs(text):
    return {"label": f"<{html_text(text)}>"} if text else {}


def _name_ids(names, prefix):
    return {name: f"{prefix}{i}" for i, name in enumerate(names)}


def _targets(variables):
    """Names of input variables that feed a sink (a loss): drawn above it, as y above L."""
    dsts = {d[0] for _, d in variables.edges}
    srcs = {s[0] for s, _ in variables.edges}
    sinks = {n for n in variables.names if n not in srcs}
    return {s[0] for s, d in variables.edges
            if s[0] not in dsts and d[0] in sinks and s[0] != d[0]}


def _add_edge(g, src, dst, attrs, above):
    """Edge src -> dst; if ``above``, src is laid out above dst (the edge is reversed for layout)."""
    if above:
        g.edge(dst, src, dir="back", **attrs)
    else:
        g.edge(src, dst, **attrs)


def draw_unrolled(g, variables, prefix, edge_label=None, keep=KEEP, time_labels=None, ends=True,
                  norms=None, stacked=(), shown_as=None, shown=None, gap_text=None):
    """Add the unrolled graph of ``variables`` to ``g`` (node ids start with ``prefix``).

    With ``ends``, each recurrent edge also comes in from and goes out to a ``(...)`` node;
    ``norms`` ((name, t) -> gradient norm) colours the variables it names.  ``stacked``
    names variables (bottom to top) that each step draws one above the other even where no
    edge between them says so (figure 10.11's h below g); ``shown_as`` maps a variable's
    name to the text drawn for it ("" draws an unlabelled node, as figure 10.12's hidden units).
    ``shown``, a range of consecutive steps, draws that window alone (its recurrent edges come
    in from and go out to the ``(...)`` nodes) instead of the first and last ``keep`` steps
    around one elision node per variable, whose HTML-like label is
    ``gap_text(name, steps_left_out)``.

    Returns {(name, t): node id} of the variables drawn.
    """
    shown_as = shown_as or {}
    names = variables.names
    ids = _name_ids(names, prefix)
    steps = variables.steps
    stamp = time_labels or str
    if shown is not None:
        shown = list(shown)
    elif steps > 2 * keep + 1:
        shown = list(range(1, keep + 1)) + list(range(steps - keep + 1, steps + 1))
    else:
        shown = list(range(1, steps + 1))
    shown_set = set(shown)
    gap = 0 if not shown or shown[-1] - shown[0] + 1 == len(shown) else steps - len(shown)
    gap_text = gap_text or (lambda name, n: html_text(f"{name}: ... {n:,} steps left out ..."))
    above = _targets(variables)

    def node_id(key):
        name, t = key
        return ids[name] if t is None else f"{ids[name]}_{t}"

    present = [k for k in variables.keys if k[1] is None or k[1] in shown_set]
    present_set = set(present)
    rows = {}
    lo, hi = log_range(norms.values()) if norms else (0.0, 0.0)
    for name, t in sorted(present, key=lambda k: (names.index(k[0]), k[1] or 0)):
        attrs = {}
        below = None
        if norms and (name, t) in norms:
            below = f'<font point-size="9">{norms[(name, t)]:.1e}</font>'
            attrs.update(grad_fill(norms[(name, t)], lo, hi))
        text = shown_as.get(name, name)
        if t is None or text == "":
            label = html_text(text) + ("" if below is None else f"<br/>{below}")
        else:
            label = sup_html(text, f"({stamp(t)})", below=below)
        if t is not None:
            attrs["group"] = f"{prefix}t{t}"
            rows.setdefault(name, []).append(node_id((name, t)))
        g.node(node_id((name, t)), label=f"<{label}>", **attrs)

    recurrences, elided = {}, {}
    for (src, dst), labels in variables.edges.items():
        dt = None if src[1] is None or dst[1] is None else dst[1] - src[1]
        if ends and dt in (1, -1):
            recurrences.setdefault((src[0], dst[0], labels, dt), None)
        src_in, dst_in = src in present_set, dst in present_set
        if not (src_in and dst_in):
            if not gap:
                continue
            if src_in and dst[1] is not None and 1 <= dst[1] <= steps:
                elided.setdefault(dst[0], set()).add(("in", src, labels, dt))
            elif dst_in and src[1] is not None and src[1] >= 1:
                elided.setdefault(src[0], set()).add(("out", dst, labels, dt))
            continue
        attrs = _label_attrs(_edge_text(labels, dt, edge_label))
        if dt and src[0] != dst[0] and src[0] not in above:
            attrs["constraint"] = "false"
        _add_edge(g, node_id(src), node_id(dst), attrs, _laid_back(src[0], dt, above))

    for src_name, dst_name, labels, dt in recurrences:   # dt -1: a chain backward in time
        attrs = _label_attrs(_edge_text(labels, 1, edge_label))
        if src_name != dst_name and src_name not in above:
            attrs["constraint"] = "false"
        back = _laid_back(src_name, dt, above)
        into, out_of = (shown[0], shown[-1]) if dt == 1 else (shown[-1], shown[0])
        first, last = (dst_name, into), (src_name, out_of)
        if first in present_set:        # the chain comes in from the (...) before it
            nid = f"{ids[src_name]}_{'start' if dt == 1 else 'end'}"
            g.node(nid, label=f"<{sup_html(src_name, '(...)')}>")
            _place_end(rows.setdefault(src_name, []), nid, left=dt == 1)
            _add_edge(g, nid, node_id(first), attrs, back)
        if last in present_set:         # and goes out to the (...) after it
            nid = f"{ids[dst_name]}_{'end' if dt == 1 else 'start'}"
            g.node(nid, label=f"<{sup_html(dst_name, '(...)')}>")
            _place_end(rows.setdefault(dst_name, []), nid, left=dt != 1)
            _add_edge(g, node_id(last), nid, attrs, back)

    for name, links in elided.items():
        nid = f"{ids[name]}_gap"
        g.node(nid, label=f"<{gap_text(name, gap)}>", shape="box",
               style="dashed", fontsize="14")
        row = rows.setdefault(name, [])
        row.insert(next((i for i, r in enumerate(row) if r.endswith(f"_{shown[keep]}")), len(row)),
                   nid)
        for direction, other, labels, dt in sorted(links, key=lambda x: (x[0], str(x[1]))):
            static = other[1] is None
            attrs = _label_attrs(_edge_text(labels, None if static else 1, edge_label))
            src_name = other[0] if direction == "in" else name
            if other[0] != name and not static and src_name not in above:
                attrs["constraint"] = "false"
            back = _laid_back(src_name, dt, above)
            if direction == "in":
                _add_edge(g, node_id(other), nid, attrs, back)
            else:
                _add_edge(g, nid, node_id(other), attrs, back)

    for name, row in rows.items():
        with g.subgraph() as s:
            s.attr(rank="same")
            for nid in row:
                s.node(nid)
        for a, b in zip(row, row[1:]):
            g.edge(a, b, style="invis")
    for lower, upper in zip(stacked, stacked[1:]):
        for t in shown:
            if (lower, t) in present_set and (upper, t) in present_set:
                g.edge(node_id((lower, t)), node_id((upper, t)), style="invis")
    return {key: node_id(key) for key in present}


def _laid_back(src_name, dt, above):
    """Whether an edge is laid out from its head to its tail: from a target drawn above its
    loss (y above L), or backward in time (g(t+1) -> g(t) points left, time still runs right)."""
    return src_name in above or (dt is not None and dt < 0)


def _place_end(row, nid, left):
    """Put the ``(...)`` node ``nid`` at the left or right end of its row (once)."""
    if nid not in row:
        row.insert(0 if left else len(row), nid)


def draw_folded(g, variables, prefix, edge_label=None, edge_style=None):
    """Add the folded circuit of ``variables`` to ``g``; returns {name: node id} (ids start with ``prefix``).

    Every edge from step t - d to step t passes through the delay of its source: one chain of
    black squares per variable fed forward in time (d squares for a delay of d steps), as the
    book draws one delay per state; an edge from step t + d (a chain backward in time, figure
    10.11's g) passes through d squares in the same way.  With one destination the weights label the edge into the
    delay; with several, each edge out of it.  ``edge_style(src_name, dst_name) -> dict`` adds
    attributes (e.g. bold) to the edge that enters dst.
    """
    names = variables.names
    extra = edge_style or (lambda src, dst: {})
    ids = _name_ids(names, prefix)
    above = _targets(variables)
    for name in names:
        g.node(ids[name], label=f"<{html_text(name)}>")
    grouped = {}
    for (src, dst), labels in variables.edges.items():
        if (src[1] is not None and src[1] < 1) or (dst[1] is not None and dst[1] < 1):
            continue
        dt = 0 if src[1] is None or dst[1] is None else dst[1] - src[1]
        merged = list(grouped.get((src[0], dst[0], dt), ()))
        merged += [w for w in labels if w not in merged]
        grouped[(src[0], dst[0], dt)] = tuple(merged)
    delayed = {}
    for (src, dst, dt), labels in grouped.items():
        attrs = _label_attrs(_edge_text(labels, dt, edge_label))
        if dt == 0:
            _add_edge(g, ids[src], ids[dst], {**attrs, **extra(src, dst)}, src in above)
        else:
            delayed.setdefault(src, []).append((dst, abs(dt), attrs))
    for src, targets in delayed.items():   # one delay per state part: its chain of squares
        squares = [f"{prefix}d_{ids[src]}_{i}" for i in range(max(dt for _, dt, _ in targets))]
        for square in squares:
            g.node(square, **_SQUARE)
        single = len(targets) == 1          # its one weight label goes on the edge into the delay
        g.edge(ids[src], squares[0], **(targets[0][2] if single else {}))
        for a, b in zip(squares, squares[1:]):
            g.edge(a, b)
        for dst, dt, attrs in targets:      # a feedback loop: layers come from within-step edges
            g.edge(squares[dt - 1], ids[dst], constraint="false", **({} if single else attrs),
                   **extra(src, dst))
    return ids
