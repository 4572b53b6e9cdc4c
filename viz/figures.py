"""The figures of chapter 10 (*Deep Learning*, Goodfellow, Bengio and
Courville), made by the views from real models.

Figures 10.1–10.6 and 10.9–10.12 are the folded and unrolled views of rnn
models (the pre-activation ``a`` is hidden, as in the book); figures 10.7 and
10.8 are directed graphical models generated from their factorisations: the
chain rule over y(1..5), y(...), and the same joint with the state variables h.
Where the book names or indexes a variable differently from the model, the
figure draws the model's variables under the book's names and indices (10.9's
y, 10.13's h and z, 10.14's root o), and a caption under the figure says where
it departs from, or adds to, the book's artwork.
Figures 10.11-10.13, 10.16 and 10.18 draw no weight names, as the book does.
Figures 10.13-10.18 (at the end of this file) come from the deep, recursive and
memory designs and from cells written with ``rnn.Recurrence``; 10.15 and 10.17 are
matplotlib plots of computations the engine ran.
"""

import numpy as np

import rnn
import tinygraph as tg

from . import plots
from .derive import Variables, derive, tree_node
from .render import html_text, sup_html
from .views import _SQUARE as _DELAY, draw_folded, draw_unrolled, new_digraph

_SIZES = (4, 3, 4)   # n_in, n_hidden, n_out of the models the figures are traced from


def _relative(steps):
    """Superscripts t-1, t, t+1 for a 3-step window (the book's right panels)."""
    def stamp(t):
        k = t - (steps + 1) // 2
        return "t" if k == 0 else f"t{k:+d}"
    return stamp


class _Traced:
    """A model-like object whose ``trace(steps)`` is a given function (a variant of a model's unroll)."""

    def __init__(self, name, trace, edge_label=None):
        self.name = name
        self.trace = trace
        self.edge_label = edge_label


def _unfolded(g, variables, prefix, **options):
    """The unfolded graph of ``variables`` in ``g`` as the book's figures draw it (no step boxes:
    each variable a row, weights on the edges): :func:`viz.views.draw_unrolled` with
    ``options``.  Returns {(name, t): node id}."""
    return draw_unrolled(g, variables, prefix, boxes=False, **options)


def _caption(g, text):
    """A caption under the figure (HTML-like ``text``): what it shows and where it departs from
    the book's artwork."""
    g.attr(label=f"<{text}>", labelloc="b", labeljust="c", fontname="Times-Roman",
           fontsize="14")


def _renamed(variables, names=None, shift=None, drop=()):
    """``variables`` with names changed (``names``: old -> new), the steps of some variables
    moved (``shift``: name -> offset, a variable of step t drawn at step t + offset) and the
    variables called one of ``drop`` left out with their edges.  The figures use it to draw a
    model's variables under the book's names and at the book's indices."""
    names = names or {}
    shift = shift or {}

    def key(k):
        name, t = k
        return (names.get(name, name), t if t is None else t + shift.get(name, 0))

    keys = [key(k) for k in variables.keys if k[0] not in drop]
    edges = {(key(s), key(d)): w for (s, d), w in variables.edges.items()
             if s[0] not in drop and d[0] not in drop}
    nodes = {key(k): v for k, v in variables.nodes.items() if k[0] not in drop}
    return Variables(keys, edges, nodes)


def _end_node(g, nid, name, beside, left):
    """A ``name(...)`` end node standing in the row of node ``beside``, at its left (``left``)
    or right; the caller draws its edges.  Returns ``nid``."""
    g.node(nid, label=f"<{sup_html(name, '(...)')}>")
    with g.subgraph() as row:
        row.attr(rank="same")
        row.node(nid)
        row.node(beside)
    g.edge(*((nid, beside) if left else (beside, nid)), style="invis")
    return nid


def _weights(variables, src, dst):
    """HTML-like label of the weights on the edge src -> dst of ``variables``."""
    return f"<{html_text(', '.join(variables.edges[(src, dst)]))}>"


def _chain_ends(g, ids, variables, name, last):
    """The chain of ``name`` comes in from ``name(...)`` before step 1 and goes out to
    ``name(...)`` after step ``last``, both edges labelled with the chain's weights."""
    label = _weights(variables, (name, 1), (name, 2))
    g.edge(_end_node(g, f"u_{name}_start", name, ids[(name, 1)], left=True), ids[(name, 1)],
           label=label)
    g.edge(ids[(name, last)], _end_node(g, f"u_{name}_end", name, ids[(name, last)], left=False),
           label=label)


def _dynamical_system():
    """s(t) = f(s(t-1); theta): theta enters additively, so the edge carries f (no weight)."""
    theta = tg.Parameter(np.array([0.1, -0.2]), name="theta")
    return rnn.Recurrence(lambda s: (s * 0.5 + theta).tanh(), [theta], n_state=2,
                          name="system", state_name="s", edge_label="f")


def _input_system():
    """h(t) = f(h(t-1), x(t); theta) with no output (figure 10.2)."""
    theta = tg.Parameter(np.array([0.1, -0.2]), name="theta")
    return rnn.Recurrence(lambda h, x: (h * 0.5 + x + theta).tanh(), [theta], n_state=2, n_in=2,
                          name="system", state_name="h", edge_label="f")


def _jordan_free_running(model, with_loss):
    def trace(steps):
        xs = np.zeros((steps, 1), dtype=np.int64)
        if with_loss:
            return [model.loss(xs, np.zeros((steps, 1), dtype=np.int64), teacher_forcing=False)]
        return model.run(xs, teacher_forcing=False).outputs
    return _Traced(model.name, trace)


def _folded_and_unrolled(title, model, steps=3, hide=("a",), stamp=None, ends=None):
    """Left panel: the circuit; right panel: the unfolded graph (figures 10.2-10.4).

    ``ends(g, ids, variables)``, if given, draws the ``(...)`` end nodes of the unfolded graph
    instead of the views' own."""
    g = new_digraph(title)
    edge_label = getattr(model, "edge_label", None)
    circuit = derive(model.trace(3), hide=hide)
    with g.subgraph(name="cluster_folded") as left:
        left.attr(label="", style="invis")
        ids = draw_folded(left, circuit, "f", edge_label)
    delayed = [d[0] for s, d in circuit.edges if None not in (s[1], d[1]) and d[1] > s[1]]
    g.node("unfold", label="Unfold", shape="rarrow", fixedsize="false", fontsize="14",
           height="0.4")
    with g.subgraph() as row:
        row.attr(rank="same")
        row.node(ids[delayed[0]])
        row.node("unfold")
    g.edge(ids[delayed[0]], "unfold", style="invis")
    with g.subgraph(name="cluster_unrolled") as right:
        right.attr(label="", style="invis")
        unrolled = derive(model.trace(steps), hide=hide)
        ids = _unfolded(right, unrolled, "u", edge_label=edge_label,
                        time_labels=stamp or _relative(steps), ends=ends is None)
        if ends is not None:
            ends(right, ids, unrolled)
    return g


def _unrolled_only(title, model, steps=3, hide=("a",), stamp=None):
    g = new_digraph(title)
    _unfolded(g, derive(model.trace(steps), hide=hide), "u",
              edge_label=getattr(model, "edge_label", None), time_labels=stamp)
    return g


def _graphical_model(title, columns, parents, stamp=str):
    """A directed graphical model: ``columns`` is a list (per t) of variable names bottom to top;
    ``parents[(name, t)]`` lists the (name, t) it is conditioned on; ``stamp(t)`` is the text of
    step t's superscript."""
    g = new_digraph(title)

    def node_id(key):
        return f"{key[0]}_{key[1]}"

    rows = {}
    for t, names in enumerate(columns, start=1):
        for name in names:
            g.node(node_id((name, t)), label=f"<{sup_html(name, f'({stamp(t)})')}>", group=f"t{t}")
            rows.setdefault(name, []).append((name, t))
    for key, given in parents.items():
        for src in given:
            adjacent = src[0] != key[0] or src[1] == key[1] - 1
            g.edge(node_id(src), node_id(key), **({} if adjacent else {"constraint": "false"}))
    for row in rows.values():
        with g.subgraph() as s:
            s.attr(rank="same")
            for key in row:
                s.node(node_id(key))
        for a, b in zip(row, row[1:]):
            if a not in parents.get(b, ()):
                g.edge(node_id(a), node_id(b), style="invis")
    return g


def _fig_10_1():
    return _unrolled_only("fig10_1", _dynamical_system(), stamp=_relative(3))


def _fig_10_2():
    return _folded_and_unrolled("fig10_2", _input_system())


def _fig_10_3():
    return _folded_and_unrolled("fig10_3", rnn.ElmanRNN(*_SIZES, seed=0))


def _output_recurrence_ends(g, ids, variables):
    """Figure 10.4's diagonals at the ends: o(...) -W-> h(t-1) and o(t+1) -W-> h(...).  The
    first sets the layout (as o(t-1) -> h(t) does not): without it the renderer put o(...) close
    by o(t-1) and ran the edge round the right of h(t-1) -> o(t-1), crossing it, its "W" beside
    that edge's "V" (read "V W")."""
    label = _weights(variables, ("o", 1), ("h", 2))
    g.edge(_end_node(g, "u_o_start", "o", ids[("o", 1)], left=True), ids[("h", 1)], label=label)
    g.edge(ids[("o", 3)], _end_node(g, "u_h_end", "h", ids[("h", 3)], left=False), label=label,
           constraint="false")


def _fig_10_4():
    return _folded_and_unrolled("fig10_4", _jordan_free_running(rnn.JordanRNN(*_SIZES, seed=0),
                                                                with_loss=True),
                                ends=_output_recurrence_ends)


def _fig_10_5():
    """Sequence in, one output at the end: steps t-1, t, ..., tau; the chain comes in from
    h(...) on the left and ends at h(tau)."""
    variables = derive(rnn.SequenceToOne(*_SIZES, seed=0).trace(4), hide=("a",))
    g = new_digraph("fig10_5")
    stamp = {1: "t-1", 2: "t", 3: "...", 4: "τ"}
    ids = _unfolded(g, variables, "u", time_labels=stamp.get, ends=False)
    start = _end_node(g, "u_h_start", "h", ids[("h", 1)], left=True)
    g.edge(start, ids[("h", 1)], label=_weights(variables, ("h", 0), ("h", 1)))
    return g


def _fig_10_6():
    """Teacher forcing: train time (y(t-1) fed to h(t)) beside test time (o(t-1) fed to h(t))."""
    model = rnn.JordanRNN(*_SIZES, seed=0)
    g = new_digraph("fig10_6")
    panels = (("train", "Train time", model, ("a",)),
              ("test", "Test time", _jordan_free_running(model, with_loss=False), ("a",)))
    for key, label, source, hide in panels:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", labelloc="t", color="#bbbbbb",  # "t": below,
                   fontname="Times-Roman", fontsize="18")                    # in a BT layout
            _unfolded(c, derive(source.trace(2), hide=hide), key, time_labels=_relative(3),
                      ends=False)
    return g


def _ellipsis_after(n):
    """Superscripts 1..n, then "..." for step n + 1 (the rest of the sequence)."""
    return lambda t: "..." if t > n else str(t)


def _fig_10_7(n=5):
    """Chain rule P(y(1..n), y(...)) = prod_t P(y(t) | y(1..t-1)): every earlier y is a parent,
    y(...) (the rest of the sequence) included: 15 arcs for n = 5.

    The y's are a row laid out left to right, one rank each, joined by y(t) -> y(t+1); an arc
    over k > 1 steps runs above the row for odd k and below it for even k, so that the layout
    stacks the arcs by length (those of 3 steps, then 5, above; 2, then 4, below) instead of
    bunching every arc in one band under the row."""
    stamp = _ellipsis_after(n)
    g = new_digraph("fig10_7")
    g.attr(rankdir="LR")
    for t in range(1, n + 2):
        g.node(f"y_{t}", label=f"<{sup_html('y', f'({stamp(t)})')}>", group="y")
    for t in range(2, n + 2):
        for s in range(1, t):
            if t - s == 1:
                g.edge(f"y_{s}", f"y_{t}")
            else:                   # not pulling the row: it stays straight
                side = "n" if (t - s) % 2 else "s"
                g.edge(f"y_{s}:{side}", f"y_{t}:{side}", weight="0")
    return g


def _fig_10_8(n=5):
    """The same joint through the state: h(t) | h(t-1) and y(t) | h(t), up to h(...), y(...).

    The y(t-1) -> h(t) inputs the text implies are left out, as in the book's artwork."""
    parents = {}
    for t in range(1, n + 2):
        parents[("h", t)] = [("h", t - 1)] if t > 1 else []
        parents[("y", t)] = [("h", t)]
    g = _graphical_model("fig10_8", [["h", "y"]] * (n + 1), parents, _ellipsis_after(n))
    _caption(g, "The inputs y(t−1) → h(t) of a generating RNN are not drawn, as in the book.")
    return g


def _fig_10_9():
    """Captioning: x enters every step through R.  The book indexes y by the step it feeds:
    y(t) is the input of step t (y(t) -U-> h(t)) and the target of step t-1 (y(t) -> L(t-1)),
    so the model's y(t - 1) (what step t reads and step t - 1 is scored on) is drawn as y(t);
    the last target is the book's y(...) feeding L(t+1)."""
    variables = _renamed(derive(rnn.VectorToSequence(*_SIZES, seed=0).trace(3), hide=("a",)),
                         shift={"y": 1})
    g = new_digraph("fig10_9")
    relative = _relative(3)
    ids = _unfolded(g, variables, "u", time_labels=lambda t: relative(t) if t <= 3 else "...",
                    ends=False)
    _chain_ends(g, ids, variables, "h", 3)
    return g


def _fig_10_10():
    """Figure 10.3's right panel plus the output feedback y(t-1) -R-> h(t): the chain comes in
    from h(...) and goes out to h(...), which y(t+1) also feeds (there is no y(...) before
    y(t-1), as in the book)."""
    variables = derive(rnn.ConditionalRNN(*_SIZES, seed=0).trace(3), hide=("a",))
    g = new_digraph("fig10_10")
    ids = _unfolded(g, variables, "u", time_labels=_relative(3), ends=False)
    _chain_ends(g, ids, variables, "h", 3)
    g.edge("u_h_end", ids[("y", 3)], dir="back",                  # y laid out above h
           label=_weights(variables, ("y", 1), ("h", 2)))
    return g


def _unlabelled(variables):
    """The same variables with no weight names on the edges."""
    return Variables(variables.keys, dict.fromkeys(variables.edges, ()), variables.nodes)


def _only(variables, names):
    """The variables called one of ``names`` and the edges among them."""
    keys = [k for k in variables.keys if k[0] in names]
    edges = {e: w for e, w in variables.edges.items() if e[0][0] in names and e[1][0] in names}
    return Variables(keys, edges, {k: v for k, v in variables.nodes.items() if k[0] in names})


def _fig_10_11():
    """Bidirectional: h(t) runs right, g(t) runs left; rows x, h, g, o, L, y from the bottom."""
    model = rnn.BidirectionalRNN(*_SIZES, seed=0)
    g = new_digraph("fig10_11")
    variables = _unlabelled(derive(model.trace(3), hide=("a",)))
    ids = _unfolded(g, variables, "u", time_labels=_relative(3), ends=False,
                    stacked=("h", "g"))
    _columns(g, ids, ("x", "h", "g", "o"), range(1, 4))
    return g


def _columns(g, ids, names, steps):
    """Stack the variables ``names`` (bottom to top) of each step in one straight column: a
    heavy invisible edge joins consecutive rows of a step."""
    for t in steps:
        column = [ids[(name, t)] for name in names if (name, t) in ids]
        for lower, upper in zip(column, column[1:]):
            g.edge(lower, upper, style="invis", weight="100")


def _sequence_stamp(t):
    """Superscripts 1, 2, ... of a 4-step unroll (the book's x(1), x(2), x(...), x(n_x)); step 4,
    n with a subscript, is labelled by :func:`_subscripted_length`."""
    return {3: "...", 4: "n"}.get(t, str(t))


def _subscripted_length(name, sub, point_size=10):
    """HTML-like label of name^(n_sub), e.g. x^(n_x): the subscript is a middle-aligned table
    cell in a smaller font (like :func:`viz.render.sup_html`, because Graphviz writes ``<sub>`` to
    SVG as a ``baseline-shift`` that browsers ignore); "middle" sets it just under the n."""
    small = point_size * 7 // 10
    sup = ('<table border="0" cellborder="0" cellspacing="0" cellpadding="0"><tr>'
           f'<td valign="top"><font point-size="{point_size}">(n</font></td>'
           f'<td valign="middle"><font point-size="{small}">{html_text(sub)}</font></td>'
           f'<td valign="top"><font point-size="{point_size}">)</font></td></tr></table>')
    return ('<table border="0" cellborder="0" cellspacing="0" cellpadding="0"><tr>'
            f'<td valign="bottom" align="right">{html_text(name)}</td>'
            f'<td valign="top" align="left">{sup}</td></tr></table>')


def _fig_10_12(steps=4):
    """Encoder-decoder: the encoder's last state gives C, which feeds every decoder step.

    Traced from a greedy decode (as ``generate`` runs it), so there is no y -> decoder
    feedback edge, as in the book; the decoder's outputs o(t), the distributions y(t) is
    read from, are drawn as the book's y(t), and the hidden units unlabelled."""
    model = rnn.EncoderDecoder(*_SIZES, seed=0)
    xs = np.zeros((steps, 1), dtype=np.int64)

    def trace(_):
        return model.run(xs, steps=steps, feedback=rnn.Sampler(0.0)).outputs
    variables = _unlabelled(derive(trace(steps), hide=("a",)))
    g = new_digraph("fig10_12")
    g.attr(nodesep="0.35")
    drawn = {}
    for key, label, names, shown_as, (name, length) in (
            ("encoder", "Encoder", ("x", "h"), {"h": ""}, ("x", "x")),
            ("decoder", "Decoder", ("s", "o"), {"s": "", "o": "y"}, ("o", "y"))):
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", labelloc="t" if key == "encoder" else "b",
                   color="#bbbbbb", fontname="Times-Roman", fontsize="18")
            ids = _unfolded(c, _only(variables, names), key[0], time_labels=_sequence_stamp,
                            ends=False, shown_as=shown_as)
            c.node(ids[(name, steps)], label=f"<{_subscripted_length(length, length)}>")
            drawn.update(ids)
    g.node("C", label="C")
    drawn[("C", None)] = "C"
    for src, dst in variables.edges:
        if "C" in (src[0], dst[0]) and src in drawn and dst in drawn:
            g.edge(drawn[src], drawn[dst])
    return g


FIGURES = {
    "10.1": _fig_10_1, "10.2": _fig_10_2, "10.3": _fig_10_3, "10.4": _fig_10_4,
    "10.5": _fig_10_5, "10.6": _fig_10_6, "10.7": _fig_10_7, "10.8": _fig_10_8,
    "10.9": _fig_10_9, "10.10": _fig_10_10, "10.11": _fig_10_11, "10.12": _fig_10_12,
}


def figure(number):
    """Figure ``number`` (a key of ``FIGURES``, "10.1" to "10.18") of chapter 10: a
    ``graphviz.Digraph``, or a matplotlib Figure for the plotted ones (10.15, 10.17);
    ``viz.save`` writes either.  A float is read as its string (10.3 is "10.3"), except 10.1,
    which is also 10.10 and is refused.

    Raises
    ------
    tinygraph.ConfigError
        For a number that is not one of the chapter's figures.
    """
    key = str(number).strip()
    if isinstance(number, (float, np.floating)) and key == "10.1":
        raise tg.ConfigError("viz.figure: the float 10.1 is also 10.10; give the figure's "
                             "number as a string, '10.1' or '10.10'")
    if key not in FIGURES:
        raise tg.ConfigError(f"viz.figure: no figure {key!r}; choose one of "
                             f"{', '.join(FIGURES)}")
    with tg.enable_grad():      # the figures are traced from real unrolls, even inside no_grad
        return FIGURES[key]()


# ------------------------------------------------------------------ figures 10.13 to 10.18
# (sections 10.5-10.12), from the models of rnn.deep, rnn.recursive, rnn.memory and cells
# written with rnn.Recurrence; 10.15 and 10.17 are matplotlib plots computed by the engine.

def _panels(title, panels):
    """Folded circuits side by side, each in a box captioned below: (key, caption, variables,
    names drawn as unlabelled dots).  Returns the Digraph and {key: {name: node id}}."""
    g = new_digraph(title)
    drawn = {}
    for key, caption, variables, dots in panels:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(caption)}>", labelloc="t", color="#bbbbbb",  # below: the
                   fontname="Times-Roman", fontsize="18")          # layout runs bottom to top
            drawn[key] = draw_folded(c, variables, key)
            for name in dots:
                c.node(drawn[key][name], label="", width="0.3", height="0.3", fixedsize="true")
    return g, drawn


_DEEP_AS_BOOK = {
    # kind: (names as the book draws them, model variables drawn as unlabelled MLP nodes)
    "stacked": ({"h1": "h", "h2": "z", "o": "y"}, ()),
    "mlp": ({"o": "y"}, ("e", "z", "g")),
    "skip": ({"o": "y"}, ("e", "z", "g")),
}


def _deep_as_book(kind):
    """The folded variables of rnn.DeepRNN(kind) as figure 10.13 draws them: no loss (the book's
    y is the output o), no weight names, and the transition MLP z(t) = f(h(t-1)) drawn on the
    h -> delay -> h loop before its delay (z moved one step back), so that (c)'s direct skip
    h(t-1) -> h(t) gets a delay of its own."""
    names, dots = _DEEP_AS_BOOK[kind]
    variables = derive(rnn.DeepRNN(*_SIZES, kind=kind, seed=0).trace(3), hide=("a",))
    shift = {"z": -1} if dots else {}
    return _unlabelled(_renamed(variables, names, shift, drop=("L", "y"))), dots


def _fig_10_13():
    """Deep RNNs: (a) stacked recurrent layers h and z, (b) an MLP (an unlabelled node) in every
    block, (c) (b) plus the direct h -> delay -> h skip loop."""
    g, _ = _panels("fig10_13", [(key, f"({key})", *_deep_as_book(kind))
                                for key, kind in (("a", "stacked"), ("b", "mlp"), ("c", "skip"))])
    _caption(g, "Weights are not named, as in the book. (b), (c): the dots are one-layer MLPs; "
                "the transition's<br/>MLP reads h(t−1), so it sits before the delay, and (c)'s "
                "skip loop has a delay of its own.")
    return g


def _fig_10_14():
    """A recursive net over a balanced tree of four leaves (shared V, U, W).  As in the book, the
    root of the tree is o: the model's read-out o = c + V_o h(root) is drawn as that one node."""
    from .tree import draw_tree
    variables = derive(rnn.RecursiveNet(*_SIZES, seed=0).trace(4), position=tree_node)
    (root,) = [src for src, dst in variables.edges if src[0] == "h" and dst[0] == "o"]
    out = [key for key in variables.keys if key[0] == "o"]
    edges = {}
    for (src, dst), weights in variables.edges.items():
        if dst not in out:
            edges[(root if src in out else src, dst)] = weights
    merged = Variables([k for k in variables.keys if k not in out], edges,
                       {k: v for k, v in variables.nodes.items() if k not in out})
    g = new_digraph("fig10_14")
    draw_tree(g, merged, "n", root_text="o")
    _caption(g, "As in the book, the children merge into the root o: the model's root state "
                "h and its read-out<br/>o = c + Vₒ h are drawn as that one node.")
    return g


def _fig_10_15(n=100, points=801, compositions=5, gain=2.5, seed=0):
    """h <- tanh(W h) composed 0..5 times on initial states h0 + c d along one random direction
    d, each projected on another random direction: an rnn.Recurrence run by the engine.  W has
    entries N(0, gain^2 / n), a map that expands in most directions (gain > 1)."""
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(0.0, gain / np.sqrt(n), (n, n)), name="W")
    system = rnn.Recurrence(lambda h: (h @ W.T).tanh(), [W], n_state=n, name="system")
    direction = rng.normal(size=n)
    direction /= np.linalg.norm(direction)
    projection = rng.normal(size=n)
    projection /= np.linalg.norm(projection)
    coordinate = np.linspace(-60.0, 60.0, points)
    h0 = rng.normal(size=n) + coordinate[:, None] * direction
    with tg.no_grad():
        states = system.run(steps=compositions, h0=h0).states
    curves = [h0 @ projection] + [h.data @ projection for h in states]
    return plots.compositions(coordinate, curves)


def _one_unit_rnn(w, b):
    """h(t) = tanh(w h(t-1) + b), one unit: w, b Parameters of shape (N, 1) (a batch of models)."""
    return rnn.Recurrence(lambda h: (h * w + b).tanh(), [w, b], n_state=1, name="cliff")


def _fig_10_17(steps=40, h0=0.5, target=0.8, start=(1.4, -0.4), lr=0.1, updates=40, clip=0.5):
    """The cliff of a one-unit RNN's loss J(w, b) = (h(40) - 0.8)^2 and two gradient-descent
    runs from the same start: the plain step lands on the cliff and is thrown off; the
    step with its norm clipped (tg.clip_grad_norm) stays near it (Pascanu et al. 2013)."""
    w_axis = np.linspace(0.5, 3.0, 81)
    b_axis = np.linspace(-1.5, 1.5, 81)
    grid_w, grid_b = np.meshgrid(w_axis, b_axis)
    w = tg.Parameter(grid_w.reshape(-1, 1), name="w")
    b = tg.Parameter(grid_b.reshape(-1, 1), name="b")
    with tg.no_grad():
        last = _one_unit_rnn(w, b).run(steps=steps, h0=np.full((w.shape[0], 1), h0)).last
    surface = ((last.data[:, 0] - target) ** 2).reshape(grid_w.shape)
    paths = []
    for limit in (None, clip):
        w = tg.Parameter([[start[0]]], name="w")
        b = tg.Parameter([[start[1]]], name="b")
        model = _one_unit_rnn(w, b)
        optimizer = tg.optim.SGD([w, b], lr=lr)
        path = []
        for _ in range(updates + 1):
            h = model.run(steps=steps, h0=np.full((1, 1), h0)).last
            loss = ((h - target) ** 2).sum()
            path.append((w.item(), b.item(), loss.item()))
            optimizer.zero_grad()
            loss.backward()
            if limit is not None:
                tg.clip_grad_norm([w, b], limit)
            optimizer.step()
        paths.append(np.array(path))
    return plots.cliff(w_axis, b_axis, surface, paths)


_LSTM_UNITS = ("input", "input gate", "forget gate", "output gate")


def _lstm_cell(n_in=3, n_hidden=3, seed=0):
    """The LSTM cell of figure 10.16 as an rnn.Recurrence, every unit named as the book's
    artwork names it: a tanh input unit, three sigmoid gates, and the three products
    ×1 = input · input gate, ×2 = forget gate · state(t-1) (the self-loop) and
    ×3 = tanh(state) · output gate, which is the cell's output."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, unit in enumerate(_LSTM_UNITS):
        params[unit] = (tg.Parameter(rng.normal(size=(n_hidden, n_in)), name=f"U{i}"),
                        tg.Parameter(rng.normal(size=(n_hidden, n_hidden)), name=f"W{i}"))

    def step(state, x):
        h = state["output"]
        act = {}
        for unit, (U, W) in params.items():
            a = x @ U.T + h @ W.T
            act[unit] = (a.tanh() if unit == "input" else a.sigmoid()).named(unit)
        kept = (act["forget gate"] * state["state"]).named("×2")
        s = (act["input"] * act["input gate"]).named("×1") + kept
        product = (s.tanh() * act["output gate"]).named("×3")
        return {"state": s, "output": product.reshape(product.shape)}   # output = ×3, its own node

    flat = [p for pair in params.values() for p in pair]
    return rnn.Recurrence(step, flat, n_state={"state": n_hidden, "output": n_hidden},
                          n_in=n_in, name="lstm_cell")


def _fig_10_16(t=2):
    """The LSTM cell, from the variables of step ``t`` of a traced cell: the four units in a row
    at the bottom, each fed x(t) and h(t-1) from below; the three products; the state's
    self-loop through the delay and the forget gate's product.  Weights are not named, as in
    the book's artwork; tanh(state) is folded into the edge state -> ×3, as the book draws it."""
    variables = derive(_lstm_cell().trace(3))
    g = new_digraph("fig10_16")
    g.attr(nodesep="0.3", ranksep="0.45")
    ids = {("x", t): "x", ("output", t - 1): "h_prev", ("state", t - 1): "loop"}
    g.node("x", label=f"<{sup_html('x', '(t)')}>")
    g.node("h_prev", label=f"<{sup_html('h', '(t-1)')}>")
    g.node("loop", **_DELAY)
    for name in _LSTM_UNITS + ("state", "output"):
        ids[(name, t)] = name.replace(" ", "_")
        g.node(ids[(name, t)], label=f"<{html_text(name)}>", shape="box", style="rounded",
               width="0.9", height="0.5", fontsize="16")
    for i in (1, 2, 3):
        ids[(f"×{i}", t)] = f"times{i}"
        g.node(f"times{i}", label="×", width="0.4", fontsize="16")
    for rank in (("x", "h_prev"), tuple(ids[(u, t)] for u in _LSTM_UNITS),
                 ("state", "times2"), ("times3", "loop")):
        with g.subgraph() as row:
            row.attr(rank="same")
            for nid in rank:
                row.node(nid)
    units = [ids[(u, t)] for u in _LSTM_UNITS]
    for a, b in zip(units, units[1:]):
        g.edge(a, b, style="invis")
    for src, dst in variables.edges:
        if dst[1] != t:
            continue
        if src == ("state", t - 1):       # the self-loop: state -> delay -> ×2
            g.edge("state", "loop", label="<self-loop>", constraint="false")
            g.edge("loop", ids[dst], constraint="false")
        else:
            g.edge(ids[src], ids[dst])
    _caption(g, "tanh(state) is not drawn as a node, as in the book; the optional peepholes "
                "state → gates are not drawn.")
    return g


_MEMORY_GROUPS = (("memory", "Memory cells", ("M",)),
                  ("writing", "Writing mechanism", ("ww", "erase", "add")),
                  ("reading", "Reading mechanism", ("wr", "r")),
                  ("task", "Task network, controlling the memory", ("x", "h", "o", "L", "y")))
_ADDRESSES = ("ww", "wr")    # the soft write and read addresses: a weight per memory cell


def _memory_row(slots):
    """HTML-like label of the memory: a row of ``slots`` cells, cell i with port ``c{i}``."""
    cells = "".join(f'<td port="c{i}" width="34" height="26"> </td>' for i in range(slots))
    return f'<table border="0" cellborder="1" cellspacing="0" cellpadding="0"><tr>{cells}</tr></table>'


def _address_pen(weight, largest):
    """Pen width of an arrow at a memory cell: 3 for the most-weighted cell, down to 0.5."""
    return f"{0.5 + 2.5 * weight / largest:.2f}"


def _fig_10_18(t=2):
    """Explicit memory, from the variables of step ``t`` of a traced rnn.MemoryNetwork: the
    memory cells as a row at the top, the writing and reading mechanisms under it, the task
    network (a row, with its own delay loop) at the bottom; no weight names, as in the book.
    The write address ww and the read address wr are soft: an arrow runs from ww into every
    cell and from every cell into the read r, its width the cell's weight at step t, so the
    bold arrows point at the addresses.  Each group's name is a node beside its members, so
    no edge runs through it."""
    model = rnn.MemoryNetwork(*_SIZES, slots=4, width=3, seed=0)
    variables = derive(model.trace(3), hide=("a",))
    g = new_digraph("fig10_18")
    g.attr(nodesep="0.35", ranksep="0.5")
    weights = {name: variables.nodes[(name, t)].data.reshape(-1) for name in _ADDRESSES}
    delays = {"M": "d_M", "r": "d_r", "h": "d_h"}      # one delay square per state part
    rows = {"memory": ("memory_label", "M", "d_M"), "writing": ("writing_label", "erase"),
            "reading": ("reading_label", "r", "d_r"),
            "task": ("task_label", "y", "L", "o", "h", "x")}
    for key, label, names in _MEMORY_GROUPS:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label="", color="#bbbbbb")
            c.node(f"{key}_label", label=f"<{html_text(label)}>", shape="box", color="none",
                   fontsize="16")
            for name in names:
                if name == "M":
                    c.node("M", label=f"<{_memory_row(model.slots)}>", shape="none",
                           width="0", height="0", margin="0")
                else:
                    c.node(name, label=f"<{html_text(name)}>")
                if name in delays:
                    c.node(delays[name], **_DELAY)
            with c.subgraph() as row:      # the group's name beside its members
                row.attr(rank="same")
                for nid in rows[key]:
                    row.node(nid)
    task = rows["task"]
    for a, b in zip(task, task[1:]):   # the task network's row in this order
        g.edge(a, b, style="invis")
    for name, square in delays.items():
        g.edge(name, square, constraint="false")
    for src, dst in variables.edges:
        if dst[1] != t:
            continue
        name, into = src[0], dst[0]
        if src[1] == t - 1:            # through the source's one-step delay
            g.edge(delays[name], into, constraint="false")
        elif name == "ww":             # the write address: an arrow into every cell
            for i, w in enumerate(weights["ww"]):
                g.edge("ww", f"M:c{i}:s", penwidth=_address_pen(w, weights["ww"].max()))
        elif name == "M" and into == "r":   # the read: every cell into r, weighted by wr
            for i, w in enumerate(weights["wr"]):
                g.edge("r", f"M:c{i}:s", dir="back", penwidth=_address_pen(w, weights["wr"].max()))
        elif name in task and into in task:      # along the row, in the row's order
            if task.index(name) < task.index(into):
                g.edge(name, into)
            else:
                g.edge(into, name, dir="back")
        elif into == "M" or name == "h":
            g.edge(name, into)
        else:                          # laid out top down: memory -> reading -> task network
            g.edge(into, name, dir="back")
    _caption(g, "Weights are not named, as in the book. "
                f"Soft addressing at step {t} of a traced run: an arrow's width is the weight of "
                "the memory cell it meets<br/>in the write address ww (arrows into the cells) "
                "or the read address wr (arrows into r).<br/>The memory keeps its contents "
                "from step to step through its own delay, beside the row.")
    return g


FIGURES.update({
    "10.13": _fig_10_13, "10.14": _fig_10_14, "10.15": _fig_10_15, "10.16": _fig_10_16,
    "10.17": _fig_10_17, "10.18": _fig_10_18,
})


# ------------------------------------------------------------------ beside figure 10.12

def _fig_10_12_attention(steps=4):
    """Figure 10.12 with attention (Bahdanau et al. 2015, cited at the end of section 10.4),
    traced from a greedy decode of ``rnn.EncoderDecoder(attention="additive")``: the encoder's
    states h(1..n_x) stacked as the memory, which every decoder step reads through its weights
    α(t) into its context ctx(t); C = h(n_x) is only the decoder's initial state."""
    model = rnn.EncoderDecoder(*_SIZES, seed=0, attention="additive")
    xs = np.zeros((steps, 1), dtype=np.int64)
    outputs = model.run(xs, steps=steps, feedback=rnn.Sampler(0.0)).outputs
    variables = _unlabelled(derive(outputs, hide=("a",)))
    g = new_digraph("fig10_12_attention")
    g.attr(nodesep="0.35")
    drawn = {}
    for key, label, names, length in (("encoder", "Encoder", ("x", "h"), "x"),
                                      ("decoder", "Decoder", ("α", "ctx", "s", "o"), "y")):
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", labelloc="t" if key == "encoder" else "b",
                   color="#bbbbbb", fontname="Times-Roman", fontsize="18")
            ids = _unfolded(c, _only(variables, names), key[0], time_labels=_sequence_stamp,
                            ends=False, shown_as={"o": "y"})
            for name in names:                         # the last step: name^(n_x) / name^(n_y)
                text = _subscripted_length("y" if name == "o" else name, length)
                c.node(ids[(name, steps)], label=f"<{text}>")
            drawn.update(ids)
    for name in ("memory", "C"):
        g.node(name, label=f"<{html_text(name)}>", shape="box" if name == "memory" else "circle")
        drawn[(name, None)] = name
    for src, dst in variables.edges:
        if (src[1] is None or dst[1] is None) and src in drawn and dst in drawn:
            # only the memory's edges into α(t) and C's from h(n_x) place them: the others
            # would pull the decoder's steps out of their time order
            free = dst[0] == "ctx" or (src[0] == "C" and dst[1] is not None)
            g.edge(drawn[src], drawn[dst], **({"constraint": "false"} if free else {}))
    return g


FIGURES["10.12-attention"] = _fig_10_12_attention
