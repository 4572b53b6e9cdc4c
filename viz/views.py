"""The folded circuit and the unrolled graph of a recurrent model.

Both are drawn from :func:`viz.derive.derive` applied to ``model.trace(steps)``:
the unrolled graph has one node per variable per time step, laid out as in the
book (time left to right; in each step's column x → h → o → L ← y from bottom
to top), each step a box and each state part a rail through the boxes; the
folded circuit is the same graph quotiented by time, and an edge from step t−1
to step t goes through the black square of a one-step delay (from step t+1, a
white square of a look-ahead).  There is no drawing code per architecture.
"""

import re

import graphviz
import numpy as np

import tinygraph as tg
from rnn.diagnostics import vector_norm

from .derive import Variables, derive
from .opgraph import grad_fill, log_range
from .render import html_text, sup_html

KEEP = 3             # steps drawn at each end of a long unroll
_NODE = {"shape": "circle", "width": "0.75", "fixedsize": "false", "fontname": "Times-Roman",
         "fontsize": "18"}
_EDGE = {"fontname": "Times-Roman", "fontsize": "16", "arrowsize": "0.7"}
_LOOKAHEAD = {"shape": "square", "style": "filled", "fillcolor": "white", "label": "",
              "width": "0.14", "fixedsize": "true", "penwidth": "1.5"}
LEGEND = {"delay": "\u25a0 one-step delay: the value of step t\u22121 used at step t",
          "lookahead": "\u25a1 one-step look-ahead: the value of step t+1 used at step t",
          "fixed": "dashed: fixed weights (requires_grad off, not trained)"}
_COMPACT = {"width": "0.55", "fontsize": "14"}    # a variable in a step's box
_SQUARE = {"shape": "square", "style": "filled", "fillcolor": "black", "label": "",
           "width": "0.14", "fixedsize": "true"}


# The largest drawing, in inches (at 96 pixels an inch, a 1920 x 1080 projector's screen): a
# larger one is scaled down to fit (the renderer's ``size``; a smaller one keeps its size).
# The summaries of 200 steps of an LSTM, a peephole LSTM and the memory network were drawn
# 2259, 1909 x 1108 and 2843 x 1208 pixels, the memory network's folded view 581 x 1187.
SCREEN = (20, 11.25)


def new_digraph(name, fit=True):
    """An empty Digraph with the book's look (bottom-to-top layout; with ``fit``, at most
    :data:`SCREEN` inches: the explorer's and the playground's pages, which zoom and scroll
    their drawings themselves, pass False); ``name`` is made a safe DOT id."""
    g = graphviz.Digraph(name=re.sub(r"\W", "_", str(name)))
    g.attr(rankdir="BT", nodesep="0.45", ranksep="0.5", newrank="true")
    if fit:
        g.attr(size=f"{SCREEN[0]},{SCREEN[1]}")
    g.attr("node", **_NODE)
    g.attr("edge", **_EDGE)
    return g


def _check_model(model, who):
    """A clear error for something that is not a recurrent model."""
    if not callable(getattr(model, "trace", None)) or not hasattr(model, "name"):
        raise tg.DTypeError(f"viz.{who}: needs a model with .name and .trace(steps) (an rnn "
                            f"design or rnn.Recurrence), got {type(model).__name__}")


def _trace(model, steps, who):
    """``model.trace(steps)``, or a clear error for something that is not a recurrent model."""
    _check_model(model, who)
    return model.trace(steps)


def variables_of(model, steps=3, hide=(), window=None, who="folded"):
    """The :class:`~viz.derive.Variables` of ``model.trace(steps)``."""
    return derive(_trace(model, steps, who), hide=hide, window=window)


BOOK_HIDDEN = ("a",)   # the pre-activation a(t) is named in the DAG but not drawn in the book's figures


def backward_chains(model, variables, hide=()):
    """The names of the variables of ``variables`` that run backward in time (figure 10.11's
    g(t+1) -> g(t)), for :func:`draw_unrolled`'s ``backward``.  An unroll of two steps or more
    shows them itself (its edges from step t + 1 to step t); one step has no such edge, and its
    backward chain's initial state g(T+1), made before the steps (t = 0) like a forward chain's
    h(0), reads as a forward edge g(0) -> g(1): for one step they are found in a trace of two."""
    if variables.steps != 1:
        return frozenset()
    longer = derive(model.trace(2), hide=hide)
    return frozenset(src[0] for src, dst in longer.edges
                     if src[0] == dst[0] and None not in (src[1], dst[1]) and dst[1] == src[1] - 1)


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
    for what, value in (("steps", steps), ("keep", keep)):
        _positive(value, what, "viz.unrolled")
    if time_labels is not None and not callable(time_labels):
        raise tg.DTypeError(f"viz.unrolled: time_labels must be a callable t -> str (the "
                            f"superscript of step t), got {type(time_labels).__name__}")
    if getattr(model, "structure", None) == "tree":
        from .tree import tree          # tree.py builds on this module
        return tree(model, steps, grads=grads)
    _check_model(model, "unrolled")
    g = new_digraph(f"{model.name}_unrolled")
    variables = None if grads else _summary(model, steps, keep, hide)
    if variables is None:
        roots = _trace(model, steps, "unrolled")
        variables = derive(roots, hide=hide, window=edge_window(model, keep) if steps > 2 * keep + 1
                           else None)
    norms = _variable_grad_norms(roots, variables) if grads else None
    draw_unrolled(g, variables, "u", getattr(model, "edge_label", None), keep, time_labels,
                  norms=norms, backward=backward_chains(model, variables, hide))
    return g


def edge_window(model, keep=KEEP):
    """The ``window`` of :func:`viz.derive.derive` that a summary of the first and last ``keep``
    steps needs: the edges into ``keep`` steps more the longest lag (a skip=2 net's h(3) -> v(5)
    goes into the elision)."""
    lags = getattr(model, "lags", None) or {}
    return keep + max(lags.values(), default=1) - 1


def _summary(model, steps, keep, hide):
    """The variables of a long unroll's summary (its first and last ``keep`` steps) derived from
    two short traces instead of the whole unroll, or None to trace the whole unroll.

    A view without values shows structure only.  If the traces of n and n + 1 steps (n a few
    steps more than twice ``keep`` and the longest lag) draw the same first and last steps once
    their later half is renumbered to end at ``steps``, the structure does not depend on the
    length and the renumbered short trace is the long one's summary; otherwise (a model whose
    steps depend on its length) the whole unroll is traced.
    """
    lag = max((getattr(model, "lags", None) or {}).values(), default=1)
    n = 2 * (keep + lag + 1)
    if steps <= n + 1 or not callable(getattr(model, "trace", None)):
        return None
    near = set(range(0, keep + lag + 1)) | set(range(steps - keep - lag + 1, steps + 1))
    drawn = []
    for length in (n, n + 1):
        variables = _renumbered(derive(_trace(model, length, "unrolled"), hide=hide), length,
                                steps)
        drawn.append({k: v for k, v in variables.edges.items()
                      if all(t is None or t in near for _, t in k)})
        if length == n:
            summary = variables
    return summary if drawn[0] == drawn[1] else None


def _renumbered(variables, length, steps):
    """``variables`` of a ``length``-step trace with steps after its middle renumbered to end
    at ``steps``."""
    half = length // 2

    def at(key):
        name, t = key
        return key if t is None or t <= half else (name, t + steps - length)

    edges = {(at(a), at(b)): labels for (a, b), labels in variables.edges.items()}
    paths = {(at(a), at(b)): p for (a, b), p in variables.paths.items()}
    nodes = {at(k): node for k, node in variables.nodes.items()}
    return Variables([at(k) for k in variables.keys], edges, nodes, paths, variables.fixed)


def _variable_grad_norms(roots, variables):
    """(name, t) -> ‖∂L/∂v(t)‖ for the variables that require grad; L = sum of the roots' sums."""
    total = roots[0].sum()
    for r in roots[1:]:
        total = total + r.sum()
    keys = [k for k, node in variables.nodes.items() if node.requires_grad]
    grads = tg.grad(total, [variables.nodes[k] for k in keys], retain_graph=True)
    return {k: float(vector_norm(g)) for k, g in zip(keys, grads)}


def _positive(value, what, who):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise tg.ConfigError(f"{who}: {what} must be a positive integer, got {value!r}")


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
    _positive(steps, "steps", "viz.folded")      # 0 or -5 was drawn as 1 step, silently
    lags = getattr(model, "lags", None) or {}
    steps = max(steps, max(lags.values(), default=0) + 1)   # a delay-d edge first appears at t = d + 1
    variables = variables_of(model, steps, hide, window=KEEP)
    g = new_digraph(f"{model.name}_folded")
    draw_folded(g, variables, "f", getattr(model, "edge_label", None))
    lines = _legend(variables)
    if lines:
        br = '<br align="left"/>'
        g.attr(label="<" + br.join(html_text(x) for x in lines) + br + ">", labelloc="b",
               labeljust="l", fontname="Helvetica", fontsize="12")
    return g


def _legend(variables):
    """The lines of a folded view's legend: what its markers mean, where it has a look-ahead
    (a delay and a look-ahead side by side) or fixed weights."""
    offsets = {d[1] - s[1] for s, d in variables.edges if s[1] is not None and d[1] is not None
               and s[1] >= 1 and d[1] >= 1}
    lines = []
    if any(dt < 0 for dt in offsets):
        lines += [LEGEND["delay"]] if any(dt > 0 for dt in offsets) else []
        lines.append(LEGEND["lookahead"])
    if any(labels and all(w in variables.fixed for w in labels)
           for labels in variables.edges.values()):
        lines.append(LEGEND["fixed"])
    return lines


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


def _shown_steps(steps, keep, shown=None):
    """The steps (1-based, in order) an unrolled view of ``steps`` draws: ``shown`` if given,
    else all of them, or the first and last ``keep`` when more than 2 keep + 1 (the rest is
    the elision)."""
    if shown is not None:
        return list(shown)
    if steps > 2 * keep + 1:
        return list(range(1, keep + 1)) + list(range(steps - keep + 1, steps + 1))
    return list(range(1, steps + 1))


def draw_unrolled(g, variables, prefix, edge_label=None, keep=KEEP, time_labels=None, ends=True,
                  norms=None, stacked=(), shown_as=None, shown=None, gap_text=None, boxes=True,
                  backward=()):
    """Add the unrolled graph of ``variables`` to ``g`` (node ids start with ``prefix``).

    With ``boxes`` (the default) the layout is the same for every design and derived from the
    variables alone: each time step of each chain (the scope around its ``t=K``; an encoder
    and a decoder are two chains) is a box (a ``cluster_`` subgraph), the boxes of a chain in
    time order left to right (an invisible spine node with ``ordering=out`` fixes their
    order), the chains stacked with their steps aligned.  Inside a step the variables stand
    in rows set by the step's own edges (x below h below o; a target above its loss), state
    parts that would share a row (h and g of a bidirectional net) one above the other, and a
    state part is a rail: the same row in every step.  Edges between steps do not pull the
    layout (``constraint=false``), so they stay between the boxes they join; weights are
    ``xlabel``\\ s, placed beside their edges without widening the steps (but where every rail
    of a view of one chain feeds only itself, the rails' weights are labels, which the layout
    makes room for between the boxes; and in a view of one chain without skip edges, with one
    rail or rails without forks, a step's own weights are labels too; in a view of several
    chains, or of steps and static variables, a step's own weights and its rails' are written
    at the heads of their edges), except on an edge
    that passes a carried state's row (x(t) -> g(t) past h) or runs from step t - d (a skip
    edge), whose weights stand beside the drawn step it reaches (or leaves, toward a ``(...)``
    node), clear of the weights along the rows it passes.  Static variables
    (made outside the unroll) stand outside the boxes, drawn once; the ``(...)`` ends and the
    elision nodes stand in columns of their own before, between and after the steps.  Without
    ``boxes`` (the book's figures) each variable is a ``rank=same`` row and weights are edge
    labels.

    With ``ends``, each recurrent edge also comes in from and goes out to a ``(...)`` node;
    ``norms`` ((name, t) -> gradient norm) colours the variables it names.  ``stacked``
    names variables (bottom to top) that each step draws one above the other even where no
    edge between them says so (figure 10.11's h below g); ``shown_as`` maps a variable's
    name to the text drawn for it ("" draws an unlabelled node, as figure 10.12's hidden units).
    ``shown``, a range of consecutive steps, draws that window alone (its recurrent edges come
    in from and go out to the ``(...)`` nodes) instead of the first and last ``keep`` steps
    around one elision node per variable, whose HTML-like label is
    ``gap_text(name, steps_left_out)``.  ``time_labels`` (t -> str) writes the steps' times
    (in the superscripts and on the boxes).  ``backward`` names the chains that run backward in
    time, which an unroll of one step cannot show (see :func:`backward_chains`): the edge from
    such a chain's initial state into step 1 comes in from the right, as from step 2.

    Returns {(name, t): node id} of the variables drawn.
    """
    shown_as = shown_as or {}
    names = variables.names
    ids = _name_ids(names, prefix)
    steps = variables.steps
    stamp = time_labels or str
    shown = _shown_steps(steps, keep, shown)
    shown_set = set(shown)
    gap = 0 if not shown or shown[-1] - shown[0] + 1 == len(shown) else steps - len(shown)
    gap_text = gap_text or (lambda name, n: html_text(f"{name}: ... {n:,} steps left out ..."))
    whole = _whole_graph(variables, stacked, boxes, backward)
    above, level, stacked, inputs = whole.above, whole.level, whole.stacked, whole.inputs
    columns = _Columns(prefix, whole.chains, level, stamp, len(whole.step_chains)) if boxes \
        else None
    if boxes:                       # the boxes set the steps apart: the nodes can stand closer
        g.attr(nodesep="0.15")

    def node_id(key):
        name, t = key
        return ids[name] if t is None else f"{ids[name]}_{t}"

    present = whole.present(shown_set)
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
        other = _OTHER_STEP.match(text) if t is None else None
        if other:                   # another model's variable at its step k: model.name(k)
            label = sup_html(f"{other.group(2)}.{other.group(1)}", f"({other.group(3)})",
                             below=below)
        elif t is None or text == "":
            label = html_text(text) + ("" if below is None else f"<br/>{below}")
        else:
            label = sup_html(text, f"({stamp(t)})", below=below)
        attrs["label"] = f"<{label}>"
        if columns is not None:
            attrs.update(_COMPACT)
        if t is not None:           # a step's edges drawn straight where they can be
            attrs["group"] = f"{prefix}t{t}"
        if columns is not None and t is not None:
            columns.add(t, name, node_id((name, t)), attrs)
            continue
        if t is not None:
            rows.setdefault(name, []).append(node_id((name, t)))
        g.node(node_id((name, t)), **attrs)

    def link(src, dst, src_name, dst_name, labels, dt, bare=False, extra=None, flat=False,
             at_head=False, at_tail=False, clockwise=False, from_row=None, angle=None,
             distance="1.6"):
        """The edge src -> dst (ids) between variables src_name and dst_name, dt steps apart
        (``bare``: no ``edge_label`` where it carries no weight; ``extra``: more attributes;
        ``flat``: along one row, written in the direction of time; ``at_head``: the weights
        written beside the arrowhead, as the several edges out of a fork are told apart;
        ``at_tail``: beside the edge's start; ``clockwise``: such a weight written clockwise
        of the edge, as the edges out of a fork are, whose weights written the other way lay on
        the weight of the edge beside them: "Wr" on "W" of the GRU, read "WWr").  Weights at an
        end of an edge are 12 points (16 along edges): at 14, 160 weights lay on something
        in the 12-step summaries of tests/viz_layout.designs, 147 at 12 (an LSTM's 8 -> 5,
        the peephole LSTM's 28 -> 22), none more in any view.  ``from_row``: the edge leaves a
        fork that stands in that row of its own (under the rail it feeds), and sets it: laid
        up into the variables over that row, down into those under it; ``angle``: the weight's
        angle from its edge (degrees) where not the clockwise or counter-clockwise 35."""
        key = ("label" if not boxes or (dt and src_name in plain_rails and src_name == dst_name
                                        and not (at_head or at_tail))
               or (dt == 0 and step_labels and not (at_head or at_tail) and src_name not in forked)
               else "headlabel" if at_head else "taillabel" if at_tail else "xlabel")
        if key == "xlabel" and boxes and dt == 0 and dst_name in forked:
            key, clockwise = "headlabel", True   # into a variable a fork feeds: at its head
        elif key == "xlabel" and boxes and dt == 0 and several_chains:
            key, clockwise = "headlabel", True   # of several chains' steps: at its head
        elif key == "xlabel" and boxes and dt and src_name == dst_name and several_chains:
            key, angle = "headlabel", angle or "-20"     # along their rails too, under them
        #  (the renderer put the xlabels of a view of several chains, or of steps and static
        #  variables, on the nodes: the encoder-decoder's "V" of s(t) -> o(t) on s(t), "U"
        #  on x(10..12), "Wd" on s(t); labels pushed the chains' columns apart (0.83 in at
        #  8 steps).  Weights on something (1 step, 4, 12 summarised) encoder-decoder (1, 8,
        #  14) -> (1, 1, 2), vector-to-sequence (0, 0, 3) -> (0, 0, 0); nothing moves)
        attrs = _weight_attrs(labels, dt, None if bare else edge_label, variables.fixed,
                              lambda text: {key: f"<{html_text(text)}>"} if text else {})
        if key in ("headlabel", "taillabel") and key in attrs:
            attrs.update(labeldistance=distance, labelangle=angle or ("-35" if clockwise else "35"),
                         labelfontsize="12")
        attrs.update(extra or {})
        back = _laid_back(src_name, dt, above)
        if boxes and src_name in inputs and dst_name not in inputs:
            attrs["constraint"] = "false"      # an input drawn once, beside the steps it feeds
            if dst_name in rails and level[dst_name] == min(v for n, v in level.items()
                                                            if n not in inputs):
                attrs["headport"] = "s"     # under the steps, into h(t) from below
        elif dt and src_name != dst_name and from_row is not None:
            back = from_row > level[dst_name]     # from a fork under the rail it feeds: sets
            #                                       the fork's row between its targets
        elif dt and src_name != dst_name and src_name not in above:
            attrs["constraint"] = "false"
            if boxes:
                back = level[src_name] > level[dst_name]
        elif dt and boxes and src_name == dst_name:
            attrs["minlen"] = "0"          # a rail: the same row in both steps
        elif (dt == 0 and boxes and not back and level[dst_name] - level[src_name] > 1
              and dst_name == top_fork):     # past a row into the fork's variable: from the
            attrs["headport"] = _fork_side(fans, dst_name)    # side away from the fork
        elif (dt == 0 and boxes and not back and level[dst_name] - level[src_name] > 1
              and dst_name in fed_below):    # past a row into a variable a fork under its
            attrs["headport"] = fed_below[dst_name]     # rail feeds: from the side away from it
        back = dt is not None and dt < 0 if flat else back
        if back and "headport" in attrs:
            attrs["tailport"] = attrs.pop("headport")
        if back and key in ("headlabel", "taillabel") and key in attrs:   # written from dst
            attrs[_OTHER_END[key]] = attrs.pop(key)                           # to src

        _add_edge(g, src, dst, attrs, back)

    made_ends = set()

    def end_node(name, where):
        """The node of ``name`` before ("start"), after ("end") or inside ("gap") the drawn steps."""
        nid = f"{ids[name]}_{where}"
        if nid in made_ends:          # a chain's end that an earlier edge already drew
            return nid
        made_ends.add(nid)
        if where == "gap":
            left_out = gap       # but a chain that ends in the elision (an encoder of 4 steps
            if len(segments) > 1:  # under a decoder of 8) leaves out its own steps there
                left_out = min(whole.last.get(name, steps), segments[1][0] - 1) - segments[0][1]
            attrs = {"label": f"<{gap_text(name, left_out)}>", "shape": "box", "style": "dashed",
                     "fontsize": "14"}
        else:
            attrs = {"label": f"<{sup_html(name, '(...)')}>"}
        if columns is not None:
            attrs.update(_COMPACT if where != "gap" else {})
            columns.add(where, name, nid, attrs)
        elif where == "gap":
            g.node(nid, **attrs)
            row = rows.setdefault(name, [])
            row.insert(next((i for i, r in enumerate(row) if r.endswith(f"_{shown[keep]}")),
                            len(row)), nid)
        else:
            g.node(nid, **attrs)
            _place_end(rows.setdefault(name, []), nid, left=where == "start")
        return nid

    segments = _segments(shown)
    crossing, fans = whole.crossing, whole.fans
    rails = {a for a, b, dt in crossing if a == b and dt and a in level}
    # Where every rail of a view of one chain feeds only itself (no fork), the rails carry
    # their weights as labels, for which the layout makes room between the boxes: an xlabel,
    # placed after the layout, lay on the nodes where the gap is narrower than the text ("Wg"
    # of figure 10.11) and beside the curve of x(t) -> g(t).  (With several chains or a fork,
    # labels push the boxes out of line or bend the rails: there they stay xlabels, or head
    # labels with several chains, see link.)
    plain_rails = set()
    if columns is not None and len(set(whole.chains.values())) == 1 and all(
            fans.get((a, d), [a]) == [a] for a in rails for d in (1, -1)):
        plain_rails = rails
    # The weights of a step's own edges are labels too, where the layout stays readable with
    # them: an xlabel lay on the nodes and curves of a crowded step (the U, Uu and Ur
    # of the GRU's steps, the Uf, Ug, Uo of an LSTM, the V of h(10) wider than h(1)).  Not
    # with several chains (the decoder's steps came out of time order), a skip edge (it then
    # passed through the steps it skips), two rails but for rails without forks (the memory
    # network's M and h bent round their forks).  A backward chain's edge from its initial
    # state g(T+1), made at t = 0, into step T is no skip edge, and an edge past a rail keeps
    # its weights at its head, written clockwise where there are two rails: the bidirectional
    # net's "V" of g(t) -> o(t) and "U" of x(t) -> h(t), xlabels, lay on g(t) and x(t) at
    # steps 10-12, and h(t) -> o(t) ran round them across the g rail (crossing pairs at 1, 4,
    # 12 summarised steps (2, 5, 6) -> (2, 2, 2), weights on something (0, 3, 10) -> (0, 2,
    # 3)); written counter-clockwise, the "V" at the head of h(t) -> o(t) stood over the label
    # "V" of g(t) -> o(t).  A variable fed by a fork (the GRU's r(t)) keeps xlabels on its
    # edges: as a label, "W" of r(t) -> h(t) stood 1 point from "Wr" at the fork's head.
    # A step's edge into a variable a fork feeds writes its weights at its head (clockwise of
    # it, as the fork's edges do) where it would have an xlabel: the renderer put the xlabel
    # where the fork's edges run ("W" of the GRU's r(t) -> h(t) on the fork's edge into r(t),
    # "Kw" of the memory network's h(t) -> ww(t) on h(t) -> o(t) and h(t) -> wr(t)).  Head
    # labels do not move the nodes: only the weights move (in 580 views of the GRU, memory
    # network, peephole LSTM, deep and leaky skip nets, attention: 12314 -> 10386 clashes of
    # tests/viz_layout.label_clashes, none more in any view).
    forked = {d for targets in fans.values() if len(targets) > 1 for d in targets}
    # A step's own edge that passes a row into the highest variable whose value of the step
    # before comes in through a fork (the GRU's x(t) -> h(t), U; an LSTM's q(t) -> h(t)) enters
    # it from the side away from the fork: the renderer ran it round the fork's side, across
    # the fork's edges down to the gates (the GRU's U across Wu and Wr, 3 crossings a step,
    # now 1; 12 -> 4 pairs of crossing edges at 4 steps, an LSTM's 57 -> 28, the peephole
    # LSTM's 59 -> 49, tests/viz_layout.crossings; no design more).  Not into a lower one
    # (the peephole LSTM's x(t) -> s(t)): the fork above it sends its edges down past that
    # row, and the weights there came to lie on each other.
    top_fork = max((name for (name, _), targets in fans.items() if len(targets) > 1
                    and name in level), key=level.get, default=None)
    # A fork that feeds a rail under its own row and variables under that rail, and nothing
    # else but itself (an LSTM's h(t-1) into s(t) and the gates f, g, q), stands in a row of its
    # own between the rail and those variables (figure 10.16 brings h(t-1) into the cell from
    # below): its edge comes in along its own row to a turn beside the variable, then drops
    # past the rail to the fork, whose edges go up into the rail and down into the gates.  In
    # its own row the fork's edges looped over s(t) and across s(t) -> h(t) and q(t) -> h(t):
    # pairs of crossing edges (1 step, 4, 12 summarised) LSTM (7, 28, 51) -> (4, 16, 30), the
    # user-written LSTM (8, 28, 51) -> (4, 16, 30).  A variable the fork also feeds over that
    # rail but under the fork's own row (the peephole LSTM's q(t), which reads s(t)) is fed
    # from the turn, in the fork's own row: fed from the fork, its edge back up past the rail
    # made the peephole's (12, 49, 75) (14, 56, 84).  Where such a fork stands under a rail, the
    # rail's own fork, which feeds itself and variables under it alone (the peephole's s(t-1)
    # into s(t) and the gates f, g), stands beside it, its edge along the rail turning down to
    # it the same way: in the rail's row the h fork's edges ran down across both rails, s(t) ->
    # h(t) and q(t) -> h(t) to the gates; the peephole (12, 49, 75) -> (7, 28, 42).  There the
    # rail fork's weights are written along their edges at the gates (angle 0, 2.2) and the h
    # fork's into the rail 35 counter-clockwise at 2.6: at the LSTM's angles the peephole's
    # weights on something were (4, 16, 24), now (0, 0, 0).  An edge past a row into a variable
    # such a fork feeds (an LSTM's x(t) -> s(t), U) enters it from the side away from the fork
    # (the turn stands left of the rail's variable; 8, 16, 48 crossings with U round the left).
    # The fork's weights are written at the gates 15 degrees clockwise of their edges and at
    # the rail 70 clockwise: at 35 (clockwise at the gates, the other way at the rail) the
    # LSTM's weights on something were (1 step, 4, 12 summarised) (2, 8, 13), "W" and "Wf" on
    # f(t) -> s(t), now (1, 4, 1), "Wf" on f(t) -> s(t), which leaves f(t) beside it.
    under = {}                      # (name, dt) -> the row of its forks
    from_turn = {}                  # (name, dt) -> the variables fed from its turn
    for (name, dt), targets in fans.items():
        if len(targets) < 2 or name not in level:
            continue
        lower = [d for d in targets if d in rails and d != name and level[d] < level[name]]
        if lower:
            floor = max(level[d] for d in lower)
            over = [d for d in targets if d not in lower and d != name
                    and floor < level[d] < level[name] and d not in rails]
            if any(level[d] < floor for d in targets) and all(
                    level[d] < floor for d in targets
                    if d not in lower and d != name and d not in over):
                under[(name, dt)] = floor - 0.5
                if over:
                    from_turn[(name, dt)] = set(over)
    for (name, dt), targets in fans.items():
        if (len(targets) > 1 and name in rails and name in targets and (name, dt) not in under
                and all(level[d] < level[name] for d in targets if d != name)
                and any(row == level[name] - 0.5 for row in under.values())):
            under[(name, dt)] = level[name] - 0.5
    fed_below = {d: "se" if dt > 0 else "sw" for (name, dt) in under for d in fans[(name, dt)]
                 if d != name and d not in from_turn.get((name, dt), ())}
    feeding = {}                    # a variable -> the variables of its own step it feeds
    for src, dst in variables.edges:
        if src[1] is not None and src[1] == dst[1] and src[0] != dst[0]:
            feeding.setdefault(src[0], set()).add(dst[0])
    step_labels = (columns is not None and len(set(whole.chains.values())) == 1
                   and not any(abs(dt) > 1 for src, dst, _, dt in whole.lagged(shown_set)
                               if not (src[1] == 0 and dst[0] in fans.get((src[0], -1), ())))
                   and (len(rails) <= 1 or rails == plain_rails))
    passing_clockwise = step_labels and len(rails) > 1
    several_chains = columns is not None and len(set(whole.chains.values())) > 1   # (or
    #                                              static variables beside one: a vec2seq's x)
    # A static variable that feeds a rail of the steps of a view of several chains (C into
    # every s(t) of a decoder) lists its edges in time order, the elision's place among them
    # (an invisible edge into it): else the decoder's elision and the encoder's columns under it
    # stood between steps 1 and 2, its rail from s(3) running back left to it.
    after_gap = segments[1][0] if len(segments) > 1 else None
    ordered = set()
    if columns is not None and after_gap is not None and len(set(whole.chains.values())) > 1:
        ordered = {src for src, dst, _, _ in whole.within(shown_set) if src[1] is None
                   and src[0] not in inputs and dst[1] is not None and dst[0] in rails}
    for src in ordered:
        g.node(node_id(src), ordering="out")
    # A static input's edges into a step (another model's states that a user's attention
    # reads: memory -> α(t) and ctx(t)) come into the step's box once, at a fork in the row of
    # the lowest variable they feed, and static inputs that feed the same variables of the same
    # steps without weights (the explorer's h@elman/t=1..4, each an input of its own) join at
    # one point (a bus) first.  Each edge ran from the input to each variable, across the
    # boxes between (the README's attention decoder: 3 to 5 edges through steps they do not
    # join in viz.unrolled at 4 to 12 steps, 16 to 32 in the explorer's views, whose four
    # inputs sent 8 edges into every step).
    feeds = {}                      # a static input's id -> [(dst, labels)] of its drawn edges
    if columns is not None:
        for src, dst, labels, dt in whole.within(shown_set):
            if (src[1] is None and src[0] in inputs and dst[1] is not None
                    and src in present_set and dst in present_set):
                feeds.setdefault(src, []).append((dst, tuple(labels)))
    buses, bus_of = {}, {}          # a bus's id -> its inputs; an input -> its bus
    for src, edges in feeds.items():
        if all(not labels for _, labels in edges):
            buses.setdefault(frozenset(dst for dst, _ in edges), []).append(src)
    buses = {f"{prefix}_bus{i}": members for i, members in enumerate(
        members for members in buses.values() if len(members) > 1)}
    for bus, members in buses.items():
        g.node(bus, shape="point", width="0.09", label="")
        for src in members:
            bus_of[src] = bus
            link(node_id(src), bus, src[0], src[0], (), None, bare=True,
                 extra={"arrowhead": "none", "constraint": "true"})
    entering, named = {}, {}        # (source id, t) -> [(dst, labels)]; source id -> a name
    for src, edges in feeds.items():
        source = bus_of.get(src, node_id(src))
        named.setdefault(source, src[0])
        for dst, labels in edges:
            into = entering.setdefault((source, dst[1]), [])
            if (dst, labels) not in into:
                into.append((dst, labels))
    routed = {(src, dst) for src, edges in feeds.items() for dst, _ in edges
              if src in bus_of or len(entering[(node_id(src), dst[1])]) > 1}
    for (source, t), edges in entering.items():
        src_name = named[source]
        if len(edges) > 1:
            low = min((dst[0] for dst, _ in edges), key=level.get)
            fork = f"{source}_f{t}"
            columns.add(t, low, fork, {"shape": "point", "width": "0.09", "label": ""})
            link(source, fork, src_name, low, (), None, bare=True, extra={"arrowhead": "none"})
            for dst, labels in edges:
                link(fork, node_id(dst), low, dst[0], labels, 0, at_head=True)
        elif source in buses:
            (dst, labels), = edges
            link(source, node_id(dst), src_name, dst[0], labels, None)
    for src, dst, labels, dt in whole.within(shown_set):
        if src in ordered and dst[1] == after_gap and dst[0] in rails:
            g.edge(node_id(src), f"{ids[dst[0]]}_gap", style="invis")
        if (src, dst) in routed:
            continue                # drawn above, through its fork or bus
        if src in present_set and dst in present_set:    # an edge past a rail (x to g past h,
            link(node_id(src), node_id(dst), src[0], dst[0], labels, dt,    # h to o past g):
                 at_head=boxes and (_passes_a_rail(level, rails, src[0], dst[0]) or abs(dt or 0) > 1),
                 clockwise=abs(dt or 0) > 1 or passing_clockwise)   # weights at its head, clear of the weights along
            #                                    the rail (a skip edge's as the fork's beside it)

    def enter(src_id, src_name, t, dt, edge_labels=None, own=None):
        """Edges from ``src_id`` (src_name one step before t in the direction dt) into step t:
        through a fork in step t's box where it feeds several variables there.  ``own``: the
        step of a drawn source, whose edges carry their own weights (not those merged over all
        steps: h(0) of a skip=2 net is also h(-1), so h(0) -> v(1) carries W and Wd, h(1) -> v(2)
        W alone)."""
        targets = [d for d in fans.get((src_name, dt), ()) if (d, t) in present_set]
        if not targets:
            return
        bend = boxes and len(targets) == 1 and level[targets[0]] != level[src_name]
        row = under.get((src_name, dt)) if columns is not None else None
        if len(targets) > 1 or bend:    # enters step t in its own row, then turns
            fork = f"{ids[src_name]}_j{t}"
            attrs = {"shape": "point", "width": "0" if bend else "0.09", "label": ""}
            if columns is not None:
                columns.add(t, src_name, fork, attrs, row=row)
            else:
                g.node(fork, **attrs)
            turn = fork
            if row is not None:     # a fork under the rail it feeds: in along the rail to a
                turn = f"{ids[src_name]}_k{t}"      # turn, then down to the fork
                columns.add(t, src_name, turn, {"shape": "point", "width": "0", "label": ""})
                g.edge(fork, turn, dir="back", arrowhead="none", arrowtail="none")
            link(src_id, turn, src_name, src_name, (), dt, bare=True, flat=True,
                 extra={"arrowhead": "none", "arrowtail": "none"})
            if (src_name, t) in present_set:     # the fork on the side the rail comes in from
                _add_edge(g, turn, node_id((src_name, t)), {"style": "invis"}, dt < 0)
            src_id = fork
        else:
            row = None
        for dst_name in targets:
            labels = crossing[(src_name, dst_name, dt)] if edge_labels is None else edge_labels
            if own is not None:
                labels = variables.edges.get(((src_name, own), (dst_name, t)), labels)
            if row is not None and dst_name in from_turn.get((src_name, dt), ()):
                link(turn, node_id((dst_name, t)), src_name, dst_name, tuple(labels), dt,
                     at_head=True, clockwise=True, from_row=level[src_name], angle="-15")
                continue
            angle, distance = (None, "1.6") if row is None else ("-15", "1.6") \
                if dst_name not in rails else ("-70", "1.6")
            if row is not None and any(r == row and key != (src_name, dt)   # two forks
                                       for key, r in under.items()):       # in one row
                if src_name in rails and dst_name != src_name:
                    angle, distance = "0", "2.2"
                elif dst_name in rails and dst_name != src_name:
                    angle, distance = "35", "2.6"
            link(src_id, node_id((dst_name, t)), src_name, dst_name, tuple(labels), dt,
                 at_head=len(targets) > 1, clockwise=dst_name != src_name and dst_name not in rails,
                 from_row=row, angle=angle, distance=distance,
                 extra={"headport": "nw" if dt > 0 else "ne"}
                 if bend and abs(level[dst_name] - level[src_name]) > 1
                 and len(feeding.get(dst_name, ())) <= 1 else None)
            #  (along the rail, the weights over it, clear of the fork's other edges; into
            #  another rail (an LSTM's h(t-1) into s(t)), the other way round too: clockwise,
            #  "W" lay on s(t) -> h(t), which leaves s(t) where the fork's edge enters it.
            #  A turn down past a row enters its variable on the side it comes from: into the
            #  top of h(t), y(t-1) -> h(t) of a vector-to-sequence net ran beside h(t) -> o(t)
            #  and its "V" lay on it, in every step.  Not into a variable that feeds several of
            #  its step: there it ran among their edges, the memory network's r(t-1) -> h(t)
            #  by "Kw" of h(t) -> ww(t))

    def leave(src_name, t, dt, nid):
        """The edge from src_name(t) out to ``nid``, the rest of its chain in the direction dt."""
        feeds = fans.get((src_name, dt), ())
        labels = crossing[(src_name, feeds[0], dt)] if len(feeds) == 1 else ()
        link(node_id((src_name, t)), nid, src_name, src_name, tuple(labels), dt,
             bare=len(feeds) != 1)

    for i, (first, last) in enumerate(segments):
        for t in range(first, last + 1):          # one step to the next, inside the segment
            for (src_name, dt) in fans:
                before = t - dt
                if first <= before <= last and (src_name, before) in present_set:
                    enter(node_id((src_name, before)), src_name, t, dt, own=before)
        for (src_name, dt) in fans:               # in from / out to what is not drawn
            into, out_of = (first, last) if dt == 1 else (last, first)
            left = "start" if i == 0 else "gap"
            right = "end" if i == len(segments) - 1 else "gap"
            inward, outward = (left, right) if dt == 1 else (right, left)
            fed = [d for d in fans[(src_name, dt)] if ((src_name, into - dt), (d, into))
                   in variables.edges or ((src_name, 0), (d, into)) in variables.edges]
            # (a chain backward in time starts from its initial state too, made in scope t=0)
            if (inward == "gap" or ends) and (inward == "gap" or fed) and any(
                    (d, into) in present_set for d in fans[(src_name, dt)]):
                enter(end_node(src_name, inward), src_name, into, dt, own=into - dt)
            if (outward == "gap" or ends) and (src_name, out_of) in present_set:
                leave(src_name, out_of, dt, end_node(src_name, outward))

    def outside(t):
        """Where step t, not drawn, stands: before the drawn steps, in the gap, or after."""
        return "start" if t < shown[0] else "end" if t > shown[-1] else "gap"

    for src, dst, labels, dt in whole.lagged(shown_set):   # skip connections with one end not
        if (src in present_set) == (dst in present_set):   # drawn (h(0) -> v(2) of skip=2) come
            continue                                        # from or go to that step's (...) node
        if src[1] == 0 and dst[0] in fans.get((src[0], -1), ()):
            continue    # a backward chain's initial state (made at t=0): it comes in from the end
        other = dst if src in present_set else src
        where = outside(other[1])
        if where == "gap" or ends:
            nid = end_node(other[0], where)
            link(node_id(src) if other is dst else nid, node_id(dst) if other is src else nid,
                 src[0], dst[0], labels, dt, at_head=other is src, at_tail=other is dst,
                 clockwise=True)
            #               (the weights beside the drawn step, away from the (...) node)

    # A static variable made from the steps (C from h(n_x)) whose every source step is left
    # out of the view (an encoder that ends in the elision or after the window) has its edge
    # from that chain's elision or (...) node: else C stood without its encoder edge, a real
    # dependency not drawn, and without an attention (nothing else joining the chains) the
    # decoder's s came out in the encoder's row, the chains side by side, 2 to 13 edges through
    # the boxes.  The edge sets the rows where it is all that ties the drawn steps of its chain
    # to the static variables; where another does (h(t) -> memory of an attention), or its
    # chain has no step drawn, it leaves the layout to them (constraint=false) if C feeds a
    # drawn step (which places it): with attention the C edge from the elision put the
    # decoder out of time order; a C that feeds no drawn step stands by its (...) node
    # (else the edge to it ran under the encoder's boxes).  A static variable read from drawn
    # steps too (the memory of an attention, read from every encoder step) also has an edge
    # from each place its other steps are left out (the elision, the (...) ends of a window):
    # without it the view claimed the decoder reads only the drawn encoder steps.  That edge is
    # constrained like the drawn steps' edges into it: with constraint=false the elision's edge
    # ran round to the left over the edges of the steps before it, and the summary's decoder
    # columns stood up to 0.78 in off the encoder's (0.21 in constrained).  Each place has one
    # edge, whatever the number of steps it stands for.
    gathered, tied = {}, set()
    for src, dst, labels in whole.gathered:
        if dst in present_set:
            gathered.setdefault((src[0], dst), []).append((src, labels))
            if src in present_set:
                tied.add(whole.chains[src[0]] if whole.chains else None)
    drawn_chains = {whole.chains[name] for name, t in present if t is not None} \
        if whole.chains else set()
    for (src_name, dst), sources in gathered.items():
        chain = whole.chains[src_name] if whole.chains else None
        if any(src in present_set for src, _ in sources):
            loose = {}      # constrained like its drawn steps' edges
        else:
            placed = any(d in present_set for s, d, _, _ in whole.within(shown_set) if s == dst)
            loose = {"constraint": "false"} if placed and (
                chain in tied or chain not in drawn_chains) else {}
        merged = {}             # where -> the weights of the edges from the steps left out there
        for src, labels in sources:
            where = outside(src[1]) if src not in present_set else None
            if where is not None and (where == "gap" or ends):
                merged.setdefault(where, [])
                merged[where] += [w for w in labels if w not in merged[where]]
        for where, labels in merged.items():
            link(end_node(src_name, where), node_id(dst), src_name, dst[0], tuple(labels), None,
                 at_head=boxes and _passes_a_rail(level, rails, src_name, dst[0]), extra=loose)

    if columns is not None:
        outside = {}         # a drawn step's variable -> the static variables it joins
        for src, dst, _, _ in whole.within(shown_set):
            if (src[1] is None) != (dst[1] is None) and src in present_set and dst in present_set:
                step, other = (dst, src) if src[1] is None else (src, dst)
                outside.setdefault(step, set()).add(other[0])
        # Where a static variable is read from several drawn steps (an attention's memory,
        # from every encoder step), their edges pulled the encoder's columns towards it against
        # their tie to the decoder's (weight 10): the columns' shifts spread over 0.18 to 0.44 in
        # (viz.unrolled, 4 to 12 steps), 1.08 in the explorer's summary of 6 encoder steps under
        # 7.  Tied at 100 there: 0.05 (0.31 at 6 steps; 0.63 that summary).  Other views keep 10.
        # (And tied to every point over the encoder's column, not only the first: see
        # _Columns.draw.)
        read = any(sum(src in present_set for src, _ in sources) > 1
                   for sources in gathered.values())
        columns.draw(g, shown, [node_id(k) for k in present if k[1] is None and k[0] in inputs]
                     + list(buses),
                     rails, {key: len(others) for key, others in outside.items()},
                     tie="100" if read else "10")
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


class _WholeGraph:
    """What :func:`draw_unrolled` reads of the whole graph, whatever steps it shows: the rows
    (levels), the targets drawn above their losses, the stacked rails, the chains, the static
    inputs, the one-step edges merged by name (``crossing``) and what each feeds (``fans``),
    and the keys and the other edges indexed by step, so that a window finds its own in the
    order of ``variables.keys`` and ``variables.edges`` without walking all of them."""

    def __init__(self, variables, stacked, boxes, backward=()):
        self.above = _targets(variables)
        self.level = _levels(variables, self.above)
        self.stacked = stacked = list(stacked)
        if boxes:
            self.stacked = stacked + [n for n in _rails_to_stack(variables, self.level)
                                      if n not in stacked]
            self.level = _levels(variables, self.above, self.stacked)
        self.chains = _chains(variables) if boxes else None
        self.inputs = _inputs(variables)
        self.crossing = {}           # (src, dst, dt) -> labels of one-step edges
        self._edges = {}             # a step (or None) -> [(index, src, dst, labels, dt)]
        self._lagged = {}            # a step -> the edges of several steps into or out of it
        self.gathered = []           # (src, dst, labels) of each edge from a step into a static
        #                              variable (h(n_x) -> C of an encoder-decoder), in order
        for i, ((src, dst), labels) in enumerate(variables.edges.items()):
            dt = None if src[1] is None or dst[1] is None else dst[1] - src[1]
            if dt == 1 and src[1] == 0 and src[0] in backward:
                dt = -1     # a backward chain's initial state (t = 0) into step 1 of one step
            if dt in (1, -1):
                merged = self.crossing.setdefault((src[0], dst[0], dt), [])
                merged += [w for w in labels if w not in merged]
            else:
                step = src[1] if src[1] is not None else dst[1]
                if src[1] is not None and dst[1] is None:
                    self.gathered.append((src, dst, labels))
                self._edges.setdefault(step, []).append((i, src, dst, labels, dt))
                if dt is not None:       # a lagged edge: found from either end's step
                    for end in {src[1], dst[1]}:
                        self._lagged.setdefault(end, []).append((i, src, dst, labels, dt))
        self.fans = {}               # (src name, dt) -> the names it feeds one step on
        for src_name, dst_name, dt in self.crossing:
            self.fans.setdefault((src_name, dt), []).append(dst_name)
        self._keys = variables.keys
        self._key_steps = {}         # a step (or None) -> indices of its keys
        stepped = set()
        self.last = {}               # a variable of the steps -> its last step
        for i, (name, t) in enumerate(variables.keys):
            self._key_steps.setdefault(t, []).append(i)
            if t is not None:
                stepped.add(name)
                self.last[name] = max(self.last.get(name, t), t)
        self.step_chains = {self.chains[n] for n in stepped} if boxes else set()

    def present(self, shown):
        """The keys of the static variables and of the steps in ``shown`` (a set), in order."""
        found = list(self._key_steps.get(None, ()))
        for t in shown:
            found += self._key_steps.get(t, ())
        return [self._keys[i] for i in sorted(found)]

    def lagged(self, shown):
        """(src, dst, labels, dt) of each edge of several steps (a skip connection through
        time) with an end in a step of ``shown`` (a set), each once, in order."""
        found = {edge[0]: edge for t in shown for edge in self._lagged.get(t, ())}
        return [found[i][1:] for i in sorted(found)]

    def within(self, shown):
        """(src, dst, labels, dt) of each edge that is not one step long and whose steps are
        all in ``shown`` or static (candidates: the caller checks both ends), in order."""
        found = list(self._edges.get(None, ()))
        for t in shown:
            found += self._edges.get(t, ())
        return [edge[1:] for edge in sorted(found, key=lambda edge: edge[0])]


def _whole_graph(variables, stacked, boxes, backward=()):
    """:class:`_WholeGraph` of ``variables``, made once and kept in ``variables._view_memo``
    where the variables carry that dict (the explorer's: variables that do not change after
    they are made, drawn in many windows); made anew on every call otherwise."""
    memo = getattr(variables, "_view_memo", None)
    key = (tuple(stacked), boxes, frozenset(backward))
    if memo is not None and key in memo:
        return memo[key]
    whole = _WholeGraph(variables, stacked, boxes, backward)
    if memo is not None:
        memo[key] = whole
    return whole


class _Columns:
    """The columns of an unrolled view with boxes: per chain, the ``(...)`` starts, each step
    (a visible box), the elision nodes and the ``(...)`` ends, each a cluster holding an
    invisible anchor in the chain's lowest row; a spine node under each chain points at its
    anchors with ``ordering=out``, so the columns come out left to right in that order.  (The
    renderer keeps the order of a row's nodes only where they stand outside the clusters:
    with several chains, each chain's anchors stand in rows of their own outside its boxes.)"""

    _BOX = {"style": "rounded,filled", "color": "#b0b0b0", "fillcolor": "#f5f5f5",
            "fontname": "Helvetica", "fontsize": "11", "fontcolor": "#666666", "margin": "6", "labelloc": "t"}
    _POINT = {"shape": "point", "style": "invis", "width": "0", "height": "0", "label": ""}

    def __init__(self, prefix, chain, level, stamp, n_chains=1):
        self.prefix, self.chain, self.level, self.stamp = prefix, chain, level, stamp
        self.n_chains = n_chains     # the chains with steps in the whole graph
        self.members = {}            # (chain, column) -> [(name, node id, attrs)]
        self.rows = {}               # level -> its node ids (a rank=same row)
        self.chains = list(dict.fromkeys(chain.values()))

    def add(self, column, name, nid, attrs, row=None):
        """Put node ``nid`` of variable ``name`` in ``column`` (a step t, "start", "gap" or
        "end") of its chain, in ``name``'s row (or in ``row``, a level of its own)."""
        self.members.setdefault((self.chain[name], column), []).append((name, nid, attrs))
        self.rows.setdefault(self.level[name] if row is None else row, []).append(nid)

    def draw(self, g, shown, inputs, rails=(), outside=None, tie="10"):
        """Write the columns' clusters, the spine and the rows into ``g``; ``inputs`` (node ids
        of static inputs) stand in the anchors' row, beside the steps.  No anchor stands in a
        rail's row (``rails``: names carried from step to step), where it would stand between
        h(t-1) and h(t) and the edge between them would go round it, under the boxes and
        through their captions: where the bottom chain's lowest row is a rail (h of a
        vector-to-sequence net, which has no x(t)) its anchors are a row of their own under it,
        outside the boxes.  So are they where static inputs stand in the anchors' row (another
        model's states that a user's attention reads): inside the boxes the renderer kept
        neither the anchors' nor the inputs' order, and the README's attention decoder came out
        with both its h(...) ends, the start's and the end's, between steps 2 and 3.  So
        are they with several chains (an encoder and a decoder), where
        the renderer (which keeps a row's order only outside the boxes) put the steps out of
        time order (3, 1, 2: C, from h(n_x) into s(1), pulled the last encoder step to the
        front): there every chain also has a row of points over its highest row, each chain's
        points in time order, and a chain above stands over the bottom one by a point under
        its columns, tied to the bottom chain's anchors.  A view with static inputs has that
        row of points over its columns too: with the anchors' row alone in order under them,
        the explorer's summary of the README's attention decoder (its inputs h@elman/t=1..4
        under the steps) drew the elision "h ×2" between steps 2 and 3 (at 8 to 14 steps), and
        h(...) after step 1 or before the last step: 17 of its 40 summaries and windows of 3 to
        14 steps out of time order, none now.
        The renderer orders the boxes by
        the median place of each one's neighbours in the next row, where parallel edges to
        one point count once: with one point over each column (tied by four edges), h(n_x)
        of an encoder with attention, whose neighbours are its point, C and the memory, had
        the memory's place as its median and came out before h(n_x - 1) (at 5 to 12 steps).
        So where a step's highest row joins k > 1 variables outside the steps (``outside``:
        (name, t) -> k), every column has k + 1 points over it, each tied by one edge, and
        the k cannot move the median off the column's own points.  (With k = 1, the median of
        two is their midpoint, which keeps the order of the points; one point there.)  A window
        of a graph of several chains that draws one of them (the explorer's steps 11-12 of a
        decoder after a 3-step encoder) is laid out so too (``n_chains``): as one chain, its
        anchors in the boxes, it came out 12, 11.  A chain above is tied to the bottom chain's
        points over its columns, not to its anchors under them: that edge went round the bottom
        chain's box (the renderer routes no edge through a cluster it does not join), and
        the columns above stood up to half a column off the ones below (1.1 to 3.2 inches).
        It is tied to every one of the k + 1 points over the column, each by its own edge (of
        weight ``tie``): tied to the first alone, the memory's edges of an attention, which the
        renderer may run between those points, pushed that one off the column and the decoder's
        column with it (the explorer's 3/6 0.94 in, 6/7 0.63, the windows of steps 11-20 after
        a 20-step encoder 0.31); tied to all, it stands at their median, over the column."""
        order = ["start"]
        for i, t in enumerate(shown):
            if i and t - shown[i - 1] > 1:
                order.append("gap")
            order.append(t)
        order.append("end")
        lowest = {}
        for (chain, _), members in self.members.items():
            low = min(self.level[name] for name, _, _ in members)
            lowest[chain] = min(lowest.get(chain, low), low)
        chains = sorted(lowest, key=lambda c: (lowest[c], self.chains.index(c)))  # bottom first
        if not chains:
            return
        base = {}
        several = len(chains) > 1 or self.n_chains > 1   # (a window may draw one of them)
        under = several or bool(inputs) or any(
            name in rails and self.level[name] == lowest[chains[0]]
            for (chain, _), members in self.members.items()
            if chain == chains[0] for name, _, _ in members)
        #  (several chains, static inputs beside the steps, or the bottom chain's lowest row
        #  is a rail)
        ties = 4 if several else 1      # edges tying a step to its rows of points
        caps = 1                    # the points over each column
        for (chain, column), members in self.members.items():
            high = max(self.level[name] for name, _, _ in members)
            joins = max((outside or {}).get((name, column), 0) for name, _, _ in members
                        if self.level[name] == high)
            caps = max(caps, joins + 1 if joins > 1 else 1)
        held = {}                   # (chain, "below" | "above") -> its anchors, in order
        for chain in chains:
            ci = self.chains.index(chain)
            for column in order:
                members = self.members.get((chain, column))
                if not members:
                    continue
                step = not isinstance(column, str)
                anchor = f"{self.prefix}_a{ci}_{column}"
                low = min(self.level[name] for name, _, _ in members)
                bottom = [nid for name, nid, _ in members if self.level[name] == low]
                with g.subgraph(name=f"cluster_{self.prefix}_c{ci}_{'t' if step else ''}"
                                     f"{column}") as box:
                    if step:
                        box.attr(label=f"<{html_text(self.title(chain, column))}>", **self._BOX)
                    else:
                        box.attr(peripheries="0", label="")
                    (g if under else box).node(     # (under: outside the box, which
                        anchor, group=f"{self.prefix}_col_{column}", **self._POINT)  # ends
                    for _, nid, attrs in members:                            # at its nodes)
                        box.node(nid, **attrs)
                for nid in bottom if chain == chains[0] else bottom[:1]:
                    for _ in range(ties if chain == chains[0] else 1):
                        g.edge(anchor, nid, style="invis", minlen="1" if under else "0",
                               weight="100")
                if several or inputs:    # and points over the column's highest row
                    high = max(self.level[name] for name, _, _ in members)
                    for k in range(caps):
                        cap = f"{anchor}_top{k or ''}"
                        g.node(cap, **self._POINT)
                        for nid in [nid for name, nid, _ in members if self.level[name] == high]:
                            for _ in range(ties if caps == 1 else 1):
                                g.edge(nid, cap, style="invis", weight="100")
                        held.setdefault((chain, "above"), []).append(cap)
                if chain == chains[0]:
                    base[column] = anchor
                else:                    # aligned over the bottom chain's column
                    held.setdefault((chain, "below"), []).append(anchor)
                    if column in base:    # to every point over the column (see below)
                        for cap in ([f"{base[column]}_top{k or ''}" for k in range(caps)]
                                    if several else [base[column]]):
                            g.edge(cap, anchor, style="invis", weight=tie)
        for points in held.values():    # the points under and over a chain's steps: a row
            with g.subgraph() as row:   # each, in time order
                row.attr(rank="same")
                for point in points:
                    row.node(point)
            for left, right in zip(points, points[1:]):
                g.edge(left, right, style="invis")
        with g.subgraph() as row:       # the bottom chain's anchors: one row under its steps
            row.attr(rank="same")
            for nid in inputs:
                row.node(nid)
            for column in order:
                if column in base:
                    row.node(base[column])
        spine = f"{self.prefix}_spine"
        g.node(spine, ordering="out", **self._POINT)
        anchors = [base[column] for column in order if column in base]
        for anchor in anchors:
            g.edge(spine, anchor, style="invis", weight="0")
        line = list(inputs) + anchors    # the static inputs first, left of the steps
        for left, right in zip(line, line[1:]):
            g.edge(left, right, style="invis")
        for nid in inputs:
            g.edge(spine, nid, style="invis")
        for row in self.rows.values():
            with g.subgraph() as same:
                same.attr(rank="same")
                for nid in row:
                    same.node(nid)

    def title(self, chain, t):
        """"t = 2", or "decoder, t = 2" where there are several chains."""
        where = chain.rsplit("/", 1)[-1] if len(self.chains) > 1 and chain else ""
        return f"{where}, t = {self.stamp(t)}" if where else f"t = {self.stamp(t)}"


# The name the explorer gives a variable of another model at one of its steps, read by this
# run (an attention's memory of an encoder's states): "h@elman/t=3", drawn "elman.h(3)" (as
# viz.unrolled draws the stacked states "elman.h"), in a circle as small as h(3)'s: the four
# states of the README's attention decoder, written out whole, were circles 1.7 in across.
_OTHER_STEP = re.compile(r"^(\w+)@(?:.*/)?(\w+)/t=(\d+)$")


def _inputs(variables):
    """Names of static variables that no step feeds (a model's fixed input, another model's
    tensor): drawn once, beside the steps."""
    static = {k[0] for k in variables.keys if k[1] is None}
    fed = {d[0] for s, d in variables.edges if d[1] is None and s[1] is not None}
    return static - fed


def _segments(shown):
    """(first, last) of each run of consecutive steps in ``shown``."""
    out = []
    for t in shown:
        if out and t == out[-1][1] + 1:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


_STEP = re.compile(r"(^|/)t=-?\d+(/.*)?$")


def _chains(variables):
    """name -> the scope its steps run in, without the ``t=K`` ("encdec/encoder"): one chain per
    scope, drawn as its own row of boxes."""
    out = {}
    for (name, t), node in variables.nodes.items():
        if t is not None and name not in out:
            out[name] = _STEP.sub("", node.scope or "")
    return {name: out.get(name, "") for name in variables.names}


def _levels(variables, above, stacked=()):
    """name -> its row inside a step: the longest path to it over the edges within one step
    (and through static variables), a target above the loss it feeds, each of ``stacked``
    above the one before it.  A variable fed from other steps alone stands right under the
    lowest variable of its step it feeds: the hidden layer z(t) of an MLP transition
    (figure 10.13 b, h(t-1) -> z(t) -> h(t)) stood in the lowest row, beside x(t), and
    h(t-1) -> z(t) ran down across the step (the deep MLP and skip nets' 4 crossing pairs of
    edges at 4 steps, 0 now; their weights on something 9 -> 1)."""
    succ = {n: set() for n in variables.names}
    for lower, upper in zip(stacked, stacked[1:]):
        if lower in succ and upper in succ:
            succ[lower].add(upper)
    for (src, dst), _ in variables.edges.items():
        if src[1] is not None and dst[1] is not None and src[1] != dst[1]:
            continue
        a, b = (dst[0], src[0]) if src[0] in above else (src[0], dst[0])
        if a != b:
            succ[a].add(b)
    indegree = {n: 0 for n in succ}
    for n in succ:
        for m in succ[n]:
            indegree[m] += 1
    within = {n for n in succ if indegree[n]}     # fed by something of its own step
    level = {n: 0 for n in succ}
    ready = [n for n in succ if indegree[n] == 0]
    while ready:
        n = ready.pop()
        for m in succ[n]:
            level[m] = max(level[m], level[n] + 1)
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    fed = {d[0] for s, d in variables.edges if None not in (s[1], d[1]) and s[1] != d[1]}
    for n in variables.names:       # fed from other steps alone (so no one's successor here):
        if n in fed and n not in within and succ[n]:     # right under the lowest variable
            level[n] = min(level[m] for m in succ[n]) - 1    # it feeds
    return level


def _rails_to_stack(variables, level):
    """State parts (variables fed by themselves one step earlier or later) that the step's own
    edges put in the same row, in name order: drawn one above the other."""
    rails = list(dict.fromkeys(s[0] for s, d in variables.edges if s[0] == d[0]
                               and s[1] is not None and d[1] is not None and s[1] != d[1]))
    out = []
    for lv in sorted({level[n] for n in rails}):
        same = [n for n in rails if level[n] == lv]
        if len(same) > 1:
            out.extend(same)
    return out


def _laid_back(src_name, dt, above):
    """Whether an edge is laid out from its head to its tail: from a target drawn above its
    loss (y above L), or backward in time (g(t+1) -> g(t) points left, time still runs right)."""
    return src_name in above or (dt is not None and dt < 0)


_OTHER_END = {"headlabel": "taillabel", "taillabel": "headlabel"}


def _passes_a_rail(level, rails, src_name, dst_name):
    """Whether the edge src -> dst of one step passes the row of a state part carried from
    step to step (``rails``) between them: figure 10.11's x(t) -> g(t) past h's row."""
    a, b = level.get(src_name), level.get(dst_name)
    if a is None or b is None:
        return False
    low, high = min(a, b), max(a, b)
    return any(low < level[r] < high for r in rails)


def _fork_side(fans, name):
    """The compass point of ``name``'s node away from the fork its rail enters each step
    through ("se" where the rail runs forward in time and its fork stands left of it, "sw"
    backward), or None where no fork feeds several variables of a step from that rail."""
    for dt, side in ((1, "se"), (-1, "sw")):
        if len(fans.get((name, dt), ())) > 1:
            return side
    return None


def _place_end(row, nid, left):
    """Put the ``(...)`` node ``nid`` at the left or right end of its row (once)."""
    if nid not in row:
        row.insert(0 if left else len(row), nid)


def draw_folded(g, variables, prefix, edge_label=None, edge_style=None):
    """Add the folded circuit of ``variables`` to ``g``; returns {name: node id} (ids start with ``prefix``).

    Every edge from step t - d to step t passes through the delay of its source: one chain of
    black squares per variable fed forward in time (d squares for a delay of d steps), as the
    book draws one delay per state.  An edge from step t + d (a chain backward in time, figure
    10.11's g) passes through d white squares instead, a one-step look-ahead
    (:data:`LOOKAHEAD`), so it is not mistaken for a delay.  With one destination the weights
    label the edge into the delay; with several, each edge out of it.  Where several paths
    join two variables and one of them carries no weight (the GRU's copy u(t) h(t-1)), that
    path is drawn as an edge of its own.  Weights that are not trained
    (``variables.fixed``) are written "(fixed)" on dashed edges.  ``edge_style(src_name,
    dst_name) -> dict`` adds attributes (e.g. bold) to the edge that enters dst.
    """
    names = variables.names
    extra = edge_style or (lambda src, dst: {})
    ids = _name_ids(names, prefix)
    above = _targets(variables)
    for name in names:
        g.node(ids[name], label=f"<{html_text(name)}>")
    grouped, bare = {}, set()
    for (src, dst), labels in variables.edges.items():
        if (src[1] is not None and src[1] < 1) or (dst[1] is not None and dst[1] < 1):
            continue
        dt = 0 if src[1] is None or dst[1] is None else dst[1] - src[1]
        merged = list(grouped.get((src[0], dst[0], dt), ()))
        merged += [w for w in labels if w not in merged]
        grouped[(src[0], dst[0], dt)] = tuple(merged)
        if () in variables.paths.get((src, dst), ()) and labels:
            bare.add((src[0], dst[0], dt))
    level = _levels(variables, above)
    delayed = {}
    for (src, dst, dt), labels in grouped.items():
        attrs = _weight_attrs(labels, dt, edge_label, variables.fixed, _label_attrs)
        if dt == 0:
            _add_edge(g, ids[src], ids[dst], {**attrs, **extra(src, dst)}, src in above)
            if (src, dst, dt) in bare:
                _add_edge(g, ids[src], ids[dst], dict(extra(src, dst)), src in above)
        else:
            if not labels and attrs and dst != src:   # a weightless edge's text (the model's
                attrs = _at_head(attrs)                # edge_label) into another variable
            delayed.setdefault((src, dt > 0), []).append((dst, abs(dt), attrs))
            if (src, dst, dt) in bare:
                delayed[(src, dt > 0)].append((dst, abs(dt), {}))
    for (src, forward), targets in delayed.items():   # one delay per state part
        kind = "d" if forward else "a"
        squares = [f"{prefix}{kind}_{ids[src]}_{i}" for i in range(max(dt for _, dt, _ in targets))]
        for square in squares:
            g.node(square, **(_SQUARE if forward else _LOOKAHEAD))
        single = len(targets) == 1          # its one weight label goes on the edge into the delay
        into = _at_middle(targets[0][2]) if single else {}
        # A one-step delay whose every destination stands below its variable, and whose
        # destinations no other delay feeds but that delay's own variable, stands under its
        # variable (its edge laid out upward), not over it: an LSTM's h delay above h sent its
        # edges down across q -> h to s, f, g and q (4 crossing pairs, now 1; the user-written
        # LSTM's too, its "Wf" off g -> s; deep MLP 1 -> 0).  Not the peephole LSTM's h delay,
        # whose gates s's delay also feeds: 11 -> 12.
        if forward and len(squares) == 1 and all(
                level[dst] < level[src] for dst, _, _ in targets) and not any(
                other != (src, forward) and {d for d, _, _ in more if d != other[0]}
                & {d for d, _, _ in targets} for other, more in delayed.items()):
            g.edge(squares[0], ids[src], dir="back", **into)    # laid out under src
        else:
            g.edge(ids[src], squares[0], **into)
        for a, b in zip(squares, squares[1:]):
            g.edge(a, b)
        for dst, dt, attrs in targets:      # a feedback loop: layers come from within-step edges
            g.edge(squares[dt - 1], ids[dst], constraint="false", **({} if single else attrs),
                   **extra(src, dst))
    return ids


def _at_head(attrs):
    """``attrs`` with its label written at the edge's head: the text of a weightless edge out of
    a delay into another variable (the user cell's "f").  Written as a label, in the middle of
    an edge that runs down several ranks, it lay where another edge crossed it (the README's
    attention: "f" of delay -> α beside x -> h, read as x's); a head label takes no place in
    the layout (nothing else moves).  A loop back into the delayed variable keeps its label."""
    attrs = dict(attrs)
    attrs["headlabel"] = attrs.pop("label")
    return {**attrs, "labeldistance": "1.6", "labelangle": "-30"}


def _at_middle(attrs):
    """``attrs`` of the edge into a delay (its one destination's): the label back in the middle."""
    if "headlabel" not in attrs:
        return attrs
    attrs = {k: v for k, v in attrs.items() if k not in ("labeldistance", "labelangle")}
    attrs["label"] = attrs.pop("headlabel")
    return attrs


def _weight_attrs(labels, dt, edge_label, fixed, as_label):
    """Attributes of an edge carrying the weights ``labels``: the text (``as_label(text)``), and
    dashed with each untrained weight written "W (fixed)" where all of them are fixed."""
    shown = tuple(f"{w} (fixed)" if w in fixed else w for w in labels)
    attrs = as_label(_edge_text(shown, dt, edge_label))
    if labels and all(w in fixed for w in labels):
        attrs["style"] = "dashed"
    return attrs
