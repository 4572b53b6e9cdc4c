"""The figures of chapter 10 (*Deep Learning*, Goodfellow, Bengio and
Courville), made by the views from real models.

Figures 10.1–10.6 and 10.9–10.12 are the folded and unrolled views of rnn
models (the pre-activation ``a`` is hidden, as in the book); figures 10.7 and
10.8 are directed graphical models generated from their factorisations: the
chain rule over y(1..5), and the same joint with the state variables h.
Figures 10.11 (bidirectional) and 10.12 (encoder-decoder) draw the variables of
a traced unroll without weight labels, as the book does.
Figures 10.13-10.18 (at the end of this file) come from the deep, recursive and
memory designs and from cells written with ``rnn.Recurrence``; 10.15 and 10.17 are
matplotlib plots of computations the engine ran.
"""

import numpy as np

import rnn
import tinygraph as tg

from . import plots
from .derive import Variables, derive
from .render import html_text, sup_html
from .views import draw_folded, draw_unrolled, new_digraph

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


def _folded_and_unrolled(title, model, steps=3, hide=("a",), stamp=None):
    """Left panel: the circuit; right panel: the unfolded graph (figures 10.2-10.4)."""
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
        draw_unrolled(right, derive(model.trace(steps), hide=hide), "u", edge_label,
                      time_labels=stamp or _relative(steps), boxes=False)
    return g


def _unrolled_only(title, model, steps=3, hide=("a",), stamp=None):
    g = new_digraph(title)
    draw_unrolled(g, derive(model.trace(steps), hide=hide), "u",
                  getattr(model, "edge_label", None), time_labels=stamp, boxes=False)
    return g


def _graphical_model(title, columns, parents):
    """A directed graphical model: ``columns`` is a list (per t) of variable names bottom to top;
    ``parents[(name, t)]`` lists the (name, t) it is conditioned on."""
    g = new_digraph(title)

    def node_id(key):
        return f"{key[0]}_{key[1]}"

    rows = {}
    for t, names in enumerate(columns, start=1):
        for name in names:
            g.node(node_id((name, t)), label=f"<{sup_html(name, f'({t})')}>", group=f"t{t}")
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


def _fig_10_4():
    return _folded_and_unrolled("fig10_4", _jordan_free_running(rnn.JordanRNN(*_SIZES, seed=0),
                                                                with_loss=True))


def _fig_10_5():
    return _unrolled_only("fig10_5", rnn.SequenceToOne(*_SIZES, seed=0), steps=4)


def _fig_10_6():
    """Teacher forcing: train time (y(t-1) fed to h(t)) beside test time (o(t-1) fed to h(t))."""
    model = rnn.JordanRNN(*_SIZES, seed=0)
    g = new_digraph("fig10_6")
    panels = (("train", "Train time", model, ("a",)),
              ("test", "Test time", _jordan_free_running(model, with_loss=False), ("a",)))
    for key, label, source, hide in panels:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", labelloc="b", color="#bbbbbb",
                   fontname="Times-Roman", fontsize="18")
            draw_unrolled(c, derive(source.trace(2), hide=hide), key, time_labels=_relative(3),
                          ends=False, boxes=False)
    return g


def _fig_10_7(n=5):
    """Chain rule P(y(1..n)) = prod_t P(y(t) | y(1..t-1)): every earlier y is a parent."""
    parents = {("y", t): [("y", s) for s in range(1, t)] for t in range(1, n + 1)}
    return _graphical_model("fig10_7", [["y"]] * n, parents)


def _fig_10_8(n=5):
    """The same joint through the state: h(t) | h(t-1) and y(t) | h(t)."""
    parents = {}
    for t in range(1, n + 1):
        parents[("h", t)] = [("h", t - 1)] if t > 1 else []
        parents[("y", t)] = [("h", t)]
    return _graphical_model("fig10_8", [["h", "y"]] * n, parents)


def _fig_10_9():
    return _unrolled_only("fig10_9", rnn.VectorToSequence(*_SIZES, seed=0), stamp=_relative(3))


def _fig_10_10():
    return _unrolled_only("fig10_10", rnn.ConditionalRNN(*_SIZES, seed=0), stamp=_relative(3))


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
    draw_unrolled(g, _unlabelled(derive(model.trace(3), hide=("a",))), "u",
                  time_labels=_relative(3), ends=False, stacked=("h", "g"), boxes=False)
    return g


def _sequence_stamp(last):
    """Superscripts 1, 2, ..., ``last`` for a 4-step unroll (the book's x(1), x(2), x(...), x(n_x))."""
    return lambda t: {3: "...", 4: last}.get(t, str(t))


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
    for key, label, names, last, shown_as in (
            ("encoder", "Encoder", ("x", "h"), "n_x", {"h": ""}),
            ("decoder", "Decoder", ("s", "o"), "n_y", {"s": "", "o": "y"})):
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", labelloc="t" if key == "encoder" else "b",
                   color="#bbbbbb", fontname="Times-Roman", fontsize="18")
            drawn.update(draw_unrolled(c, _only(variables, names), key[0],
                                       time_labels=_sequence_stamp(last), ends=False,
                                       shown_as=shown_as, boxes=False))
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
    """Figure ``number`` (a key of ``FIGURES``) of chapter 10: a ``graphviz.Digraph``, or a
    matplotlib Figure for the plotted ones (10.15, 10.17); ``viz.save`` writes either.

    Raises
    ------
    tinygraph.ConfigError
        For a number that is not one of the chapter's figures.
    """
    key = str(number).strip()
    if key not in FIGURES:
        raise tg.ConfigError(f"viz.figure: no figure {key!r}; choose one of "
                             f"{', '.join(FIGURES)}")
    with tg.enable_grad():      # the figures are traced from real unrolls, even inside no_grad
        return FIGURES[key]()


# ------------------------------------------------------------------ figures 10.13 to 10.18
# (sections 10.5-10.12), from the models of rnn.deep, rnn.recursive, rnn.memory and cells
# written with rnn.Recurrence; 10.15 and 10.17 are matplotlib plots computed by the engine.

def _panels(title, panels):
    """Folded circuits side by side, each in a box captioned below: (key, caption, model)."""
    g = new_digraph(title)
    for key, caption, model in panels:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(caption)}>", labelloc="b", color="#bbbbbb",
                   fontname="Times-Roman", fontsize="18")
            draw_folded(c, derive(model.trace(3), hide=("a",)), key,
                        getattr(model, "edge_label", None))
    return g


def _fig_10_13():
    """Deep RNNs: (a) stacked recurrent layers, (b) an MLP in every block, (c) (b) plus the
    h(t-1) -> h(t) skip connection."""
    return _panels("fig10_13", [
        ("a", "(a)", rnn.DeepRNN(*_SIZES, kind="stacked", seed=0)),
        ("b", "(b)", rnn.DeepRNN(*_SIZES, kind="mlp", seed=0)),
        ("c", "(c)", rnn.DeepRNN(*_SIZES, kind="skip", seed=0))])


def _fig_10_14():
    """A recursive net over a balanced tree of four leaves (shared V, U, W)."""
    from .tree import tree
    g = tree(rnn.RecursiveNet(*_SIZES, seed=0), steps=4)
    g.name = "fig10_14"
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


def _lstm_cell(n_in=3, n_hidden=3, seed=0):
    """The LSTM cell of figure 10.16 as an rnn.Recurrence, every unit named as the book's
    artwork names it (tanh input unit; the state's self-loop is gated by the forget gate)."""
    rng = np.random.default_rng(seed)
    units = ("input", "input gate", "forget gate", "output gate")
    params = {}
    for i, unit in enumerate(units):
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
        return {"state": s, "output": (s.tanh() * act["output gate"]).named("×3")}

    flat = [p for pair in params.values() for p in pair]
    return rnn.Recurrence(step, flat, n_state={"state": n_hidden, "output": n_hidden},
                          n_in=n_in, name="lstm_cell")


def _fig_10_16():
    """The LSTM cell: gates and products derived from a traced cell (weights not labelled, as
    in the book's artwork)."""
    cell = _lstm_cell()
    variables = derive(cell.trace(3), hide=("×3",))
    variables.edges = {key: () for key in variables.edges}
    g = new_digraph("fig10_16")
    ids = draw_folded(g, variables, "f")
    for name in ("×1", "×2"):
        g.node(ids[name], label="×", width="0.4", fontsize="16")
    g.node(ids["state"], label="<state>", xlabel="<self-loop>")
    g.node(ids["x"], label=f"<{sup_html('x', '(t)')}>")
    return g


_MEMORY_GROUPS = (("memory", "Memory cells", ("M",)),
                  ("writing", "Writing mechanism", ("ww", "erase", "add")),
                  ("reading", "Reading mechanism", ("wr", "r")),
                  ("task", "Task network, controlling the memory", ("x", "h", "o", "L", "y")))


def _fig_10_18():
    """Explicit memory: the folded circuit of rnn.MemoryNetwork grouped as in the book, with
    bold arrows where the mechanisms address the memory cells."""
    model = rnn.MemoryNetwork(*_SIZES, slots=4, width=3, seed=0)
    variables = derive(model.trace(3), hide=("a",))
    writing, reading = set(_MEMORY_GROUPS[1][2]), set(_MEMORY_GROUPS[2][2])

    def bold(src, dst):
        addressing = (src in writing and dst == "M") or (src == "M" and dst in reading)
        return {"penwidth": "3"} if addressing else {}

    g = new_digraph("fig10_18")
    ids = draw_folded(g, variables, "f", edge_style=bold)
    for key, label, names in _MEMORY_GROUPS:
        with g.subgraph(name=f"cluster_{key}") as c:
            c.attr(label=f"<{html_text(label)}>", color="#bbbbbb", fontname="Times-Roman",
                   fontsize="16")
            for name in names:
                c.node(ids[name])
    return g


FIGURES.update({
    "10.13": _fig_10_13, "10.14": _fig_10_14, "10.15": _fig_10_15, "10.16": _fig_10_16,
    "10.17": _fig_10_17, "10.18": _fig_10_18,
})
