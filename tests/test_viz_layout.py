"""The unrolled view is laid out the same readable way for every design, read back from the
renderer's own layout (``-Tplain``): each step a box, the boxes in time order and apart, no
edge through a step it does not join, the (...) ends and static inputs outside the steps, and
at most 4.5 inches per step."""

import sys

import re

import graphviz
import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
import viz.views as views
from viz.derive import derive
from viz.views import _summary, draw_unrolled, new_digraph
from viz_layout import (_drawn_edges, bands, columns_out_of_time_order, crossings,
                        crossings_in_steps, designs, label_clashes, measure, plain,
                        readme_attention_decoder, step_boxes, undrawn_dependencies,
                        undrawn_folded_dependencies)

DESIGNS = designs()
STEPS = 4


@pytest.fixture(scope="module")
def layouts():
    """design -> (digraph, its layout figures), each rendered once (and a user LSTM at 10 steps)."""
    out = {}
    for name, model in DESIGNS.items():
        digraph = viz.unrolled(model, steps=STEPS)
        out[name] = (digraph, measure(digraph))
    digraph = viz.unrolled(DESIGNS["user_lstm"], steps=10, keep=5)     # all ten steps drawn
    out["user_lstm_10"] = (digraph, measure(digraph))
    return out


ALL = list(DESIGNS) + ["user_lstm_10"]


@pytest.mark.parametrize("design", ALL)
def test_each_step_is_a_box_and_the_boxes_run_in_time_order_without_overlapping(layouts, design):
    digraph, figures = layouts[design]
    steps = 10 if design == "user_lstm_10" else STEPS
    assert {t for _, t in step_boxes(digraph).values()} == set(range(1, steps + 1))
    assert figures["interleaved"] == 0


@pytest.mark.parametrize("design", ALL)
def test_no_edge_passes_through_a_step_it_does_not_join(layouts, design):
    assert layouts[design][1]["stray"] == 0


@pytest.mark.parametrize("design", ALL)
def test_ends_and_static_inputs_stand_outside_the_steps(layouts, design):
    assert layouts[design][1]["ends"] == 0


@pytest.mark.parametrize("design", ALL)
def test_a_step_takes_at_most_four_and_a_half_inches(layouts, design):
    assert layouts[design][1]["per_step"] <= 4.5


def _bent_rails(digraph):
    """The drawn edges along a rail (from a variable to itself one step on, or to its fork or
    its (...) end: ids ``u<k>_...`` of one variable k) that are not straight, with how far
    their splines leave the row (inches).  (Not the drop from a rail's turn ``u<k>_k<t>`` down to
    its fork ``u<k>_j<t>`` under the rail it feeds: an LSTM's h(t-1) into the cell from below;
    nor the edge from such a fork up into its own variable: the peephole LSTM's s(t-1).)"""
    nodes, edges = plain(digraph)
    drawn = set(_drawn_edges(digraph))
    bent = []
    for tail, head, spline in edges:
        a, b = re.match(r"(u\d+)_\w+$", tail), re.match(r"(u\d+)_\w+$", head)
        if {re.sub(r"^u\d+_([jk])\d+$", r"\1", n) for n in (tail, head)} == {"j", "k"}:
            continue
        fork = re.match(r"(u\d+)_j(\d+)$", tail)
        if fork and f"{fork.group(1)}_k{fork.group(2)}" in nodes:    # up from under the rail
            continue
        if a and b and a.group(1) == b.group(1) and ((tail, head) in drawn or (head, tail) in drawn):
            heights = [y for _, y in spline]
            if max(heights) - min(heights) > 0.05:
                bent.append((tail, head, round(max(heights) - min(heights), 2)))
    return bent


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("design", list(DESIGNS) + ["system"])
def test_a_rail_is_one_straight_row_through_the_steps(design, steps):
    """h(t-1) -> h(t) is a straight segment between the boxes, also where h is a chain's lowest
    row (a vector-to-sequence net, a decoder, a system without input): there an invisible
    anchor stood in h's row between h(t-1) and h(t), and the edge went round it, 0.55 inch
    under the row, through the boxes' captions (vec2seq, encdec's decoder, system)."""
    model = _system() if design == "system" else DESIGNS[design]
    assert _bent_rails(viz.unrolled(model, steps=steps)) == []


def _system():
    """A dynamical system without input (figure 10.1): s(t) = tanh(W s(t-1))."""
    W = tg.Parameter(np.random.default_rng(0).normal(0, 0.5, (3, 3)), name="W")
    return rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=3, name="system",
                          state_name="s", edge_label="f")


@pytest.mark.parametrize("steps", [3, 8])
def test_a_cell_reading_another_models_states_keeps_its_ends_at_the_ends(steps):
    """The README's attention decoder drew h(...) of its start and of its end both between its
    steps 2 and 3 (and the elman.h it reads there too): the static input stood in the anchors'
    row inside the boxes, where the renderer keeps no order.  Its anchors are now a row under
    the boxes, and h(...) before step 1 stands left of every box, the one after the last step
    right of every box."""
    digraph = viz.unrolled(readme_attention_decoder(), steps=steps)
    nodes, _ = plain(digraph)
    box = bands(nodes, step_boxes(digraph))
    ends = dict(re.findall(r"^\s*(u\d+_(start|end)) \[", digraph.source, flags=re.M))
    (start,), (end,) = ([nodes[nid][0] for nid, kind in ends.items() if kind == which]
                        for which in ("start", "end"))
    assert start < min(left for left, _, _, _ in box.values())
    assert end > max(right for _, right, _, _ in box.values())
    assert measure(digraph)["interleaved"] == 0


@pytest.mark.parametrize("steps", [8, 12])
def test_an_encoder_decoder_summary_keeps_its_steps_in_time_order(steps):
    """A summary of both chains (steps 1-3, an elision, the last three): aligning the decoder
    by its s(t) alone (no anchor point in its columns) put step 8 of both chains second,
    between steps 1 and 2; the decoder is aligned by points of its own under its columns,
    and the layout check sees every box in order."""
    digraph = viz.unrolled(DESIGNS["encdec"], steps=steps)
    assert {t for _, t in step_boxes(digraph).values()} == {1, 2, 3, steps - 2, steps - 1, steps}
    assert measure(digraph)["interleaved"] == 0


@pytest.mark.parametrize("steps", [8, 12, 30])
def test_an_encoder_decoder_summary_puts_each_elision_between_the_steps_it_stands_for(steps):
    """The decoder's elision 's: ... left out ...' (and 'y: ...') stood between its steps 1 and
    2, at 4.5 inches, and the encoder's columns under it left a gap there too, the rail
    s(3) -> elision running back left; now each chain's elision nodes stand between its steps
    3 and steps - 2 (C lists its edges into s(t) in time order, the elision's among them)."""
    digraph = viz.unrolled(DESIGNS["encdec"], steps=steps)
    nodes, _ = plain(digraph)
    box = bands(nodes, step_boxes(digraph))
    gaps = [v for nid, v in nodes.items() if nid.endswith("_gap") and v[2] > 0.1]   # not anchors
    assert len(gaps) == 3                            # h of the encoder; s and y of the decoder
    for x, y, _, _ in gaps:
        (chain,) = {c for c, _ in box if box[(c, 3)][2] <= y <= box[(c, 3)][3]}
        assert box[(chain, 3)][1] < x < box[(chain, steps - 2)][0]
    assert measure(digraph)["stray"] == 0


@pytest.mark.parametrize("steps", range(2, 13))
@pytest.mark.parametrize("attention", [None, "dot", "additive"])
def test_an_encoder_decoder_keeps_each_chains_steps_in_time_order(attention, steps):
    """``tinygraph draw --model encdec`` (3 steps) drew both chains' boxes as t = 3, 1, 2 and
    dot attention at 4 steps as 4, 1, 3, 2: the renderer keeps a row's order only outside
    the boxes, and C (from h(n_x) into every s(t)) pulled the last encoder step to the front.
    Each chain now has a row of points outside its boxes, under (the encoder) and over
    every chain, in time order.  With attention (dot or additive) at 5 to 12 steps the
    encoder still came out with its last two steps swapped (5, 4 at 5 steps; 6 and 7 steps
    two swaps, 9 edges through steps they do not join): h(n_x), fed to C and the memory, had
    the memory's place as its median neighbour over one point per column; three points per
    column keep it on its own."""
    model = rnn.EncoderDecoder(4, 3, 4, attention=attention)
    digraph = viz.unrolled(model, steps=steps)
    drawn = range(1, steps + 1) if steps <= 7 else [1, 2, 3, steps - 2, steps - 1, steps]
    assert {t for _, t in step_boxes(digraph).values()} == set(drawn)
    figures = measure(digraph)
    assert (figures["interleaved"], figures["stray"]) == (0, 0)


@pytest.mark.parametrize("attention, n_x, n_y", [
    (None, 3, 5), (None, 4, 4), ("additive", 3, 5), ("additive", 4, 4), ("dot", 5, 3),
    ("additive", 7, 2), ("dot", 6, 5), ("additive", 6, 6), ("dot", 7, 4)])
def test_the_explorers_encoder_decoder_keeps_each_chains_steps_in_time_order(
        attention, n_x, n_y, monkeypatch):
    """The explorer's drawing of a run with n_x encoder and n_y decoder steps: the encoder of
    3 steps before a decoder of 5 was drawn 2, 3, 1 with additive attention, the decoder
    1, 2, 5, 4, 3 without; with attention, 5/3, 7/2, 6/5, 6/6 and 7/4 steps swapped the
    encoder's last steps (6/6: two swaps, 9 edges through steps they do not join)."""
    digraph = _explorer_views(monkeypatch, n_x, n_y, attention)[0]   # the whole run
    chains = {}
    for chain, t in step_boxes(digraph).values():
        chains.setdefault(chain, set()).add(t)
    assert sorted(len(s) for s in chains.values()) == sorted([n_x, n_y])
    figures = measure(digraph)
    assert (figures["interleaved"], figures["stray"]) == (0, 0)


@pytest.mark.parametrize("attention", [None, "dot"])
def test_an_explorer_window_with_the_decoders_steps_alone_keeps_them_in_time_order(
        attention, monkeypatch):
    """A run of 3 encoder and 12 decoder steps: the explorer's window of steps 11-12 draws the
    decoder alone, which was laid out as one chain (its anchors inside the boxes) and came
    out as 12, 11 with attention, the (...) ends on the right, 2 edges through the boxes;
    a window of a graph with several chains keeps their rows of points outside the boxes."""
    window = _explorer_views(monkeypatch, 3, 12, attention)[-1]   # after the summary, 1-10
    assert len(set(step_boxes(window).values())) == 2         # the decoder's steps 11, 12
    assert {t for _, t in step_boxes(window).values()} == {11, 12}
    figures = measure(window)
    assert (figures["interleaved"], figures["stray"]) == (0, 0)


def test_an_elision_counts_the_steps_its_own_chain_leaves_out(monkeypatch):
    """The explorer's summary of 4 encoder and 8 decoder steps draws steps 1-3 and 6-8: the
    encoder's elision stands for its step 4 alone, but read "h ×2" (the decoder's count)."""
    summary = _explorer_views(monkeypatch, 4, 8)[0]
    texts = sorted(re.findall(r"label=<(\w+) &#215;(\d+)>", summary.source))
    assert texts == [("h", "1"), ("s", "2"), ("y", "2")]


def _explorer_views(monkeypatch, n_x, n_y, attention=None):
    """The unrolled views the explorer draws of an encoder-decoder's run of n_x encoder and n_y
    decoder steps: the whole run (a summary past 7 steps), then each window of 10 steps."""
    import viz.explorer as explorer
    drawn = []
    draw = explorer._unrolled_graph
    monkeypatch.setattr(explorer, "_unrolled_graph",
                        lambda *args: drawn.append(draw(*args)) or drawn[-1])
    model = rnn.EncoderDecoder(4, 3, 4, attention=attention)
    rng = np.random.default_rng(0)
    viz.explore(model, rng.normal(size=(n_x, 1, 4)), rng.integers(0, 4, size=(n_y, 1)))
    return drawn


def _node_of(digraph, pattern, nid=r"\w+"):
    """The id (matching ``nid``) of the one node whose label matches ``pattern`` (regular
    expressions)."""
    (nid,) = re.findall(r"^\s*(" + nid + r") \[label=<" + pattern, digraph.source, re.M)
    return nid


def _stacked(digraph):
    """Whether the decoder's boxes all stand over the encoder's (two chains, one row each)."""
    nodes, _ = plain(digraph)
    box = bands(nodes, step_boxes(digraph))
    low, high = sorted({c for c, _ in box}, key=lambda c: min(b[2] for k, b in box.items()
                                                             if k[0] == c))
    return (max(b[3] for k, b in box.items() if k[0] == low)
            < min(b[2] for k, b in box.items() if k[0] == high))


@pytest.mark.parametrize("attention, n_x, n_y", [
    (None, 4, 8), (None, 5, 9), (None, 7, 11), ("dot", 4, 8), ("additive", 7, 11)])
def test_an_encoder_that_ends_in_the_elision_feeds_c_from_it(attention, n_x, n_y, monkeypatch):
    """The explorer's summary of a run whose encoder ends inside the elision (4 encoder steps
    under 8 decoder steps: steps 1-3 and 6-8 drawn) drew C without the edge from the encoder's
    last step, a real dependency left out; and without attention the decoder's s(t) came out
    in the encoder's row (the chains side by side, an edge through a box).  C's edge now comes
    from the encoder's elision, the chains stacked, in time order, no edge through a box."""
    summary = _explorer_views(monkeypatch, n_x, n_y, attention)[0]
    gap, c = _node_of(summary, r"h &#215;"), _node_of(summary, r"C>")
    assert (gap, c) in _drawn_edges(summary)
    figures = measure(summary)
    assert (figures["interleaved"], figures["stray"]) == (0, 0)
    assert _stacked(summary)


@pytest.mark.parametrize("attention, n_x, n_y, k", [
    (None, 12, 12, 1), (None, 11, 7, 1), (None, 12, 8, 1), (None, 12, 3, 1), ("dot", 12, 12, 1),
    ("dot", 21, 9, 2)])
def test_an_explorer_window_before_the_encoders_end_feeds_c_from_its_end(
        attention, n_x, n_y, k, monkeypatch):
    """The explorer's window of steps 1-10 of a run whose encoder runs past step 10: C (made
    from h(n_x), outside the window) had no edge from the encoder, and without attention the
    encoder and decoder came out side by side (12/12: 13 edges through boxes; 11/7: 8; 12/8:
    6; 12/3: 2).  C's edge now comes from the encoder's h(...) end, the chains stacked.  (The
    k-th window: 21/9's steps 11-20 draw the encoder alone, C by its h(...) end, not under the
    boxes.)"""
    window = _explorer_views(monkeypatch, n_x, n_y, attention)[k]
    steps = set(range(10 * k - 9, 10 * k + 1))
    assert {t for _, t in step_boxes(window).values()} == steps
    end, c = _node_of(window, r"<table[^\n]*>h</td>", nid=r"\w+_end"), _node_of(window, r"C>")
    assert (end, c) in _drawn_edges(window)
    figures = measure(window)
    assert (figures["interleaved"], figures["stray"]) == (0, 0)
    assert not _two_chains(n_y, steps) or _stacked(window)


def _two_chains(n_y, steps):
    """Whether a window of ``steps`` draws decoder steps too (every window here draws the
    encoder's)."""
    return min(steps) <= n_y


def _column_shift_spread(digraph):
    """How far (inches) the offset between a decoder box and the encoder box of its step, centre
    to centre, varies over the steps both chains draw: 0 where each column stands straight."""
    nodes, _ = plain(digraph)
    box = bands(nodes, step_boxes(digraph))
    low, high = sorted({c for c, _ in box}, key=lambda c: min(b[2] for k, b in box.items()
                                                             if k[0] == c))
    offsets = [(sum(box[(high, t)][:2]) - sum(box[(low, t)][:2])) / 2
               for c, t in box if c == low and (high, t) in box]
    return max(offsets) - min(offsets)


@pytest.mark.parametrize("attention, steps, most", [
    (None, 3, 0.05), (None, 8, 0.05), ("dot", 3, 0.06), ("dot", 5, 0.06), ("additive", 8, 0.06),
    ("dot", 6, 0.06), ("additive", 12, 0.06), ("dot", 30, 0.06)])
def test_an_encoder_decoders_decoder_steps_stand_over_its_encoder_steps(attention, steps, most):
    """The decoder's boxes were tied to the points under the encoder's columns by an edge that
    went round the encoder's box: columns stood up to half a column apart (1.1 inches without
    attention at 3 steps, 2.6 with dot attention); tied to the points over them, 0 and 0.05.
    With attention every encoder step's edge into the memory pulled its column towards the
    memory against that tie (weight 10): the columns' shifts spread over 0.18 in (4, 5 steps),
    0.44 (6), 0.19 (7-9), 0.11 (12, 30); tied ten times harder where the steps feed a static
    variable from more than one drawn step, 0.05 (but 0.31 at 6 steps, the memory's edges
    passing between the points over a column, one of which alone was tied to the decoder's
    column; tied to each of them, 0.05)."""
    model = rnn.EncoderDecoder(4, 3, 4, attention=attention)
    assert _column_shift_spread(viz.unrolled(model, steps=steps)) <= most


@pytest.mark.parametrize("n_x, n_y, k", [(2, 10, 1), (3, 12, 1), (12, 3, 0)])
def test_the_explorers_decoder_steps_stand_over_its_encoder_steps(n_x, n_y, k, monkeypatch):
    """The explorer's runs of unequal lengths: in 2/10's and 3/12's window of steps 1-10 the
    decoder's steps stood 3.2 and 2.5 inches out of line with the encoder's; 12/3's summary
    1.8."""
    assert _column_shift_spread(_explorer_views(monkeypatch, n_x, n_y)[k]) <= 0.05


@pytest.mark.parametrize("attention, n_x, n_y, k", [
    ("dot", 6, 7, 0), ("additive", 6, 7, 0), ("dot", 8, 8, 0), ("additive", 12, 12, 0),
    ("dot", 3, 6, 0), ("additive", 3, 6, 1), ("dot", 20, 20, 2), ("additive", 20, 20, 2),
    ("dot", 12, 12, 2), ("additive", 13, 13, 2)])
def test_the_explorers_attention_steps_stand_over_its_encoder_steps(
        attention, n_x, n_y, k, monkeypatch):
    """The explorer's views of runs with attention (k = 0 the summary, k the k-th window):
    6/7's summary's columns' shifts spread over 1.08 in, 8/8's 0.18 and 12/12's 0.11 (0.44
    and 0.37 before the memory's edge from the elision), the memory's edges pulling the
    encoder's columns against their tie to the decoder's; tied ten times harder, 0.63, 0.05
    and 0.05, and 3/6 0.94.  The windows after encoder steps (steps 11-20 of 20/20, 11-12 of
    12/12 and 13/13) went from 0 to 0.31 in with the memory's edge from the h(...) before
    them.  Each was a point over an encoder column (one of several: the column's highest row
    joins the memory and C) tied to the decoder's column while the memory's edges ran
    between the others; tied to each of them, every one 0.05 or less."""
    view = _explorer_views(monkeypatch, n_x, n_y, attention)[k]
    assert _column_shift_spread(view) <= 0.06


def _explorer_drawings(monkeypatch, model, xs, ys):
    """(folded, its variables), then (digraph, variables, shown) of every unrolled view the
    explorer draws of ``model.run(xs, ys)`` (its summary, then each window), as DOT: the
    renderer is not run (the page's SVG texts left empty)."""
    import viz.explorer as explorer
    drawn, folded = [], []
    draw, fold = explorer._unrolled_graph, explorer._folded_graph
    monkeypatch.setattr(explorer, "_unrolled_graph", lambda model, variables, shown: drawn.append(
        (draw(model, variables, shown), variables, shown)) or drawn[-1][0])
    monkeypatch.setattr(explorer, "_folded_graph", lambda model, variables: folded.append(
        (fold(model, variables), variables)) or folded[-1][0])
    monkeypatch.setattr(explorer, "_svg_texts", lambda graphs: [""] * len(graphs))
    viz.explore(model, xs, ys)
    return folded[0], drawn


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_an_attentions_memory_reads_the_encoder_steps_in_the_elision_from_it(attention):
    """The memory of an attention is read from every encoder step h(1..n_x), but a summary drew
    only the edges of the drawn steps h(1..3) and h(10..12) into it: the picture claimed the
    decoder's steps never read h(4..9).  The elision now feeds the memory (one edge for its
    6 steps), constrained like the drawn steps' edges, so the decoder's columns stand within
    0.21 in of the encoder's (0.47 before, with no such edge; 0.78 with it unconstrained)."""
    summary = viz.unrolled(rnn.EncoderDecoder(4, 3, 4, attention=attention), steps=12)
    gap = _node_of(summary, r"h: \.\.\. 6 steps left out")
    memory = _node_of(summary, r"memory>")
    assert _drawn_edges(summary).count((gap, memory)) == 1
    figures = measure(summary)
    assert (figures["interleaved"], figures["stray"], figures["ends"]) == (0, 0, 0)
    assert _column_shift_spread(summary) <= 0.25


@pytest.mark.parametrize("attention, n_x, n_y, k, end", [
    ("dot", 12, 12, 1, "end"), ("dot", 20, 20, 2, "start"), ("additive", 21, 9, 3, "start"),
    ("dot", 9, 21, 2, "start")])
def test_an_explorer_window_feeds_the_memory_from_the_encoders_ends(
        attention, n_x, n_y, k, end, monkeypatch):
    """A window of 10 steps of a longer encoder drew the memory's edges from the window's
    encoder steps alone (12/12's steps 1-10 left h(11), h(12) out, 20/20's steps 11-20 left
    h(1..10) out); now the encoder's h(...) end before or after the window feeds it, once
    (9/21's steps 11-20, the encoder all before them, had nine edges from h(...), one per
    step)."""
    rng = np.random.default_rng(0)
    _, drawn = _explorer_drawings(monkeypatch, rnn.EncoderDecoder(4, 3, 4, attention=attention),
                                  rng.normal(size=(n_x, 1, 4)), rng.integers(0, 4, size=(n_y, 1)))
    window = drawn[k][0]
    h, memory = _node_of(window, r"<table[^\n]*>h</td>", nid=r"\w+_" + end), \
        _node_of(window, r"memory>")
    assert _drawn_edges(window).count((h, memory)) == 1


def _explore_args(name, model, steps, rng):
    """xs and ys of a run of ``steps`` steps of the design ``name``, as its run takes them."""
    n_in = getattr(model, "n_in", 4)
    xs = rng.normal(size=(1, n_in)) if name == "vec2seq" else rng.normal(size=(steps, 1, n_in))
    ys = (rng.integers(0, 4, size=(1,)) if name == "seq2one" else rng.normal(size=(steps, 1, 4))
          if name == "esn" else rng.integers(0, 4, size=(steps, 1)))
    return xs, ys


ATTENTIONS = {f"encdec_{a}": rnn.EncoderDecoder(4, 3, 4, attention=a) for a in ("dot", "additive")}


@pytest.mark.parametrize("design", list(DESIGNS) + list(ATTENTIONS))
def test_every_view_draws_every_dependency(design, monkeypatch):
    """Each dependency of the unrolled graph (each of its edges, a step left out standing as
    its chain's elision or (...) end) is a drawn edge, directly or through forks and delays:
    in the folded view, the unrolled view of 1, 4, 9 and 30 steps (summaries past 7), and the
    explorer's folded view, summary and every window of runs of 1, 8 and 23 steps (an
    encoder-decoder: of 17 pairs of encoder and decoder lengths): 69 views of an attention.
    Before, each summary and window of an attention that left encoder steps out drew no edge
    from them into the memory: 32 of its 69 views (viz.unrolled at 9 and 30 steps, 30 of the
    explorer's 47 summaries and windows); the other designs' views drew every dependency."""
    model = {**DESIGNS, **ATTENTIONS}[design]
    missing = {}
    folded = viz.folded(model)
    lags = getattr(model, "lags", None) or {}
    variables = views.variables_of(model, max(3, max(lags.values(), default=0) + 1),
                                   views.BOOK_HIDDEN, window=views.KEEP)
    missing["folded"] = undrawn_folded_dependencies(folded, variables)
    for steps in (1, 4, 9, 30):
        variables = derive(model.trace(steps), hide=views.BOOK_HIDDEN)
        missing[steps] = undrawn_dependencies(viz.unrolled(model, steps=steps), variables)
    rng = np.random.default_rng(0)
    runs = ([(rng.normal(size=(n_x, 1, 4)), rng.integers(0, 4, size=(n_y, 1)))
             for n_x, n_y in [(1, 1), (1, 8), (8, 1), (4, 8), (8, 4), (6, 8), (8, 7), (3, 12),
                              (12, 3), (12, 12), (11, 7), (13, 13), (21, 9), (9, 21), (20, 20),
                              (4, 15), (25, 5)]]
            if isinstance(model, rnn.EncoderDecoder) else
            [_explore_args(design, model, steps, rng) for steps in (1, 8, 23)])
    for xs, ys in runs:
        (folded, variables), drawn = _explorer_drawings(monkeypatch, model, xs, ys)
        where = f"explorer {len(xs)}/{len(ys)}"
        missing[f"{where} folded"] = undrawn_folded_dependencies(folded, variables)
        for digraph, variables, shown in drawn:
            view = "summary" if shown is None else f"steps {shown[0]}-{shown[-1]}"
            missing[f"{where} {view}"] = undrawn_dependencies(digraph, variables, shown)
    assert {view: left for view, left in missing.items() if left} == {}


def test_the_dependency_checks_see_an_edge_left_out():
    """The oracles can fail: a view whose edge into the memory, or whose delay, is taken out."""
    model = ATTENTIONS["encdec_dot"]
    digraph = viz.unrolled(model, steps=4)
    memory = _node_of(digraph, r"memory>")
    cut = graphviz.Source("\n".join(line for line in digraph.source.splitlines()
                                     if not line.strip().endswith(f"-> {memory}")))
    variables = derive(model.trace(4), hide=views.BOOK_HIDDEN)
    assert undrawn_dependencies(digraph, variables) == []
    assert undrawn_dependencies(cut, variables) == [f"('h', {t}) -> ('memory', None)"
                                                    for t in range(1, 5)]
    folded = viz.folded(DESIGNS["elman"])
    cut = graphviz.Source("\n".join(line for line in folded.source.splitlines()
                                     if not re.match(r"\s*fd_\w+ -> ", line)))
    variables = views.variables_of(DESIGNS["elman"], 3, views.BOOK_HIDDEN, window=views.KEEP)
    assert undrawn_folded_dependencies(folded, variables) == []
    assert undrawn_folded_dependencies(cut, variables) == ["('h', 1) -> ('h', 2)",
                                                           "('h', 2) -> ('h', 3)"]


def test_the_rail_weights_of_a_one_step_bidirectional_view_lie_on_nothing():
    """Figure 10.11 at one step: before, "W" of h(1) -> h(...) lay on the curve x(1) -> g(1),
    "Wg" of g(1) -> g(...) (to the left) on the curve h(1) -> o(1) and "Wg" of g(...) -> g(1)
    (from the right) on the node g(...) (xlabels, placed after the layout, in a gap narrower
    than "Wg")."""
    assert label_clashes(viz.unrolled(DESIGNS["bidirectional"], steps=1)) == []


@pytest.mark.parametrize("design", ["bidirectional", "esn", "elman"])
def test_rail_weights_lie_on_no_node_and_no_other_weight(design):
    """At four steps, "Wg" lay on g(1), g(2), g(3), g(4) and g(...), "W" on h(...) and h(4)
    (bidirectional), each of the five "W (fixed)" on both nodes of its edge (the echo state
    network); the Elman RNN's stay clear."""
    clashes = label_clashes(viz.unrolled(DESIGNS[design], steps=4))
    assert [c for c in clashes if " on node " in c or " on label " in c] == []


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("design", list(DESIGNS))
def test_no_weight_lies_on_another(design, steps):
    """The weights at the arrowheads of a fork's edges were written 35 degrees counter-clockwise
    of the edge, onto the weight of the edge beside them: in the GRU's every step "Wr" (fork to
    r(t)) lay on "W" (r(t) to h(t)), read "WWr", and weights of the user-written and the
    peephole LSTMs lay on each other at 1 and 4 steps; now they are written clockwise of it."""
    clashes = label_clashes(viz.unrolled(DESIGNS[design], steps=steps))
    assert [c for c in clashes if " on label " in c] == []


# Weights that lie on a node, on another edge or on another weight, per design, in its folded
# view, its unrolled view at 1 and 4 steps and its summary of 12 steps (3 steps, an elision, 3
# steps).  These are the counts the views have now: a change may lower them (then lower them
# here), never raise them.  The encoder-decoder's summary went from 8 to 12 when its steps were
# put in time order (orderX: rows of points outside the boxes); its order comes first.  The
# weights at the ends of edges (a fork's, a skip edge's) went from 14 to 12 points (viewsA):
# LSTM (1, 2, 6, 8) -> (1, 1, 4, 5), also the user-written LSTM; peephole LSTM 28 -> 22 at 12
# steps; leaky skip 7 -> 6.  (11 points lowered the GRU's 27 to 24 and the peephole's to 19,
# but set the fork's weights apart from the 16-point weights beside them.)  A step's edge into
# a variable that a fork also feeds writes its weights at its head (viewsD): GRU (0, 3, 16, 27)
# -> (0, 3, 12, 21), memory network (0, 3, 12, 21) -> (0, 1, 4, 9), peephole LSTM
# (0, 6, 18, 22) -> (0, 5, 14, 20), deep skip (0, 2, 8, 15) -> (0, 1, 4, 9), leaky skip
# (0, 1, 1, 6) -> (0, 1, 1, 3).  A fork's weight along its rail written over the rail (viewsD):
# GRU -> (0, 1, 4, 9), peephole LSTM -> (0, 4, 10, 14), deep skip -> (0, 0, 0, 3).  An edge
# into the fork's variable from the side away from the fork, and a fork's weight into another
# rail written counter-clockwise of its edge (viewsF): GRU -> (0, 0, 0, 3), LSTM -> (1, 0, 0,
# 0), user-written LSTM -> (1, 0, 1, 3), peephole LSTM -> (0, 0, 0, 1).  An MLP transition's
# hidden layer z(t) right under h(t), not in the lowest row (viewsF): deep MLP -> (0, 0, 1, 2).
# An edge that turns down past a row enters its variable from the side it comes from (viewsF):
# vector-to-sequence -> (0, 0, 0, 3), encoder-decoder -> (0, 1, 8, 14) (not into a variable that
# feeds several of its step: the memory network's r(t-1) -> h(t) then ran by "Kw", 9 -> 5 but
# two on h(t) -> ww(t)'s "Kw").  An LSTM's h(t-1) into the cell from below, through a fork under
# s(t) (viewsG): LSTM (1, 0, 0, 0) -> (1, 1, 4, 1), the user-written LSTM (1, 0, 1, 3) -> (1, 2,
# 5, 1): "Wf" at f(t), the gate left of the fork, lies on f(t) -> s(t), which leaves f(t) beside
# the fork's edge into it, in every step (weighed against 7 -> 4 crossing edge pairs a step;
# every other angle and distance of the fork's weights tried left as many or more).  The
# peephole LSTM's h(t-1) and s(t-1) into its cell from below, through two forks under s(t)
# (viewsH): peephole (0, 0, 0, 1) -> (0, 0, 0, 0).  A bidirectional net's own weights are labels, but for those
# at the heads of its edges past a rail (viewsH): (0, 0, 3, 10) -> (0, 0, 2, 3).  In a view of
# several chains (or steps and static variables), a step's own weights and its rails' at their
# heads, not xlabels (viewsH): encoder-decoder (0, 1, 8, 14) -> (0, 1, 1, 2), vector-to-sequence
# (0, 0, 0, 3) -> (0, 0, 0, 0).  A delay whose destinations all stand below its variable, under
# it in the folded view (viewsH): user-written LSTM (1, 2, 5, 1) -> (0, 2, 5, 1).
CLASHES = {
    "elman": (0, 0, 0, 0), "jordan": (0, 0, 0, 2), "seq2one": (0, 0, 0, 0),
    "vec2seq": (0, 0, 0, 0), "conditional": (0, 0, 0, 0), "lstm": (1, 1, 4, 1),
    "gru": (0, 0, 0, 3), "bidirectional": (0, 0, 2, 3), "encdec": (0, 1, 1, 2),
    "deep_stacked": (0, 0, 0, 0), "deep_mlp": (0, 0, 1, 2), "deep_skip": (0, 0, 0, 3),
    "leaky_skip": (0, 1, 1, 3), "esn": (0, 0, 0, 0), "memory": (0, 1, 4, 9),
    "user_lstm": (0, 2, 5, 1), "peephole": (0, 0, 0, 0),
}
VIEWS = {"folded": lambda m: viz.folded(m), "1 step": lambda m: viz.unrolled(m, steps=1),
         "4 steps": lambda m: viz.unrolled(m, steps=4),
         "12 steps summarised": lambda m: viz.unrolled(m, steps=12)}


@pytest.mark.parametrize("design, weight", [("gru", "W"), ("memory", "Kw")])
def test_a_steps_weight_into_a_variable_a_fork_feeds_lies_on_no_edge(design, weight):
    """A step's own edge into a variable that a fork also feeds had its weight as an xlabel,
    which the renderer put where the fork's edges run: in the GRU's 12-step summary "W" of
    r(t) -> h(t) lay on the fork's edge into r(t) in each of the 6 steps, in the memory
    network's "Kw" of h(t) -> ww(t) on the edges h(t) -> o(t) and h(t) -> wr(t) (12).  It is
    now written at the edge's head, clockwise of it, as the fork's own weights are."""
    clashes = label_clashes(viz.unrolled(DESIGNS[design], steps=12))
    assert [c for c in clashes if re.match(rf"label '{weight}' of (?!\w+_j)", c)
            and " on edge " in c] == []         # (not the fork's own edges: "_j" ids)


def test_a_forks_weight_along_its_rail_lies_on_none_of_the_forks_edges():
    """The fork of the GRU's h(t-1) feeds h(t), u(t) and r(t); its weights were all written
    clockwise of their edges, "W" of the fork's short edge along the rail into h(t) so under
    it, on the fork's edges down to u(t) and r(t) (12 of the 12-step summary's clashes).  The
    edge along the rail writes its weight counter-clockwise, over the rail, where nothing runs."""
    clashes = label_clashes(viz.unrolled(DESIGNS["gru"], steps=12))
    assert [c for c in clashes if re.match(r"label 'W' of \w+_j\d+->", c)] == []


def test_every_design_has_a_pinned_clash_count():
    assert set(CLASHES) == set(DESIGNS)


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("design", list(DESIGNS))
def test_weights_on_nodes_edges_or_weights_do_not_come_back(design, view):
    """A step's own weights were xlabels, placed after the layout wherever they fitted: on the
    nodes and curves of a crowded step.  Over these 68 views 446 weights lay on something
    (GRU: 0, 4, 28, 42 in the four views; peephole LSTM 0, 7, 28, 45; the V and U of an Elman
    summary's steps 10-12, whose nodes are wider than h(1)); in views of one chain, without
    skip edges and with at most one rail (or plain rails no edge passes), they are now edge
    labels, which the layout makes room for: 271 left."""
    pinned = CLASHES[design][list(VIEWS).index(view)]
    clashes = label_clashes(VIEWS[view](DESIGNS[design]))
    assert len(clashes) <= pinned, clashes


def test_the_label_check_sees_a_label_on_a_node():
    """The oracle can fail: an xlabel that cannot stand clear of the nodes around it."""
    digraph = graphviz.Digraph()
    digraph.attr(nodesep="0.02")
    for name in "abc":
        digraph.node(name, shape="circle", width="0.5")
    digraph.body.append("\t{rank=same; a; b; c}\n")
    digraph.edge("a", "b", xlabel="<WWWWWW>")
    digraph.edge("b", "c", xlabel="<WWWWWW>")
    assert any(" on node " in c for c in label_clashes(digraph))


def test_the_layout_check_sees_boxes_out_of_time_order():
    """The oracle can fail: boxes of steps 2, 1, 3 laid out in that order are interleaved."""
    digraph = graphviz.Digraph()
    for t in (2, 1, 3):
        with digraph.subgraph(name=f"cluster_u_c0_t{t}") as box:
            box.node(f"u0_{t}")
    digraph.edge("u0_2", "u0_1")
    digraph.edge("u0_1", "u0_3")
    digraph.body.append("\t{rank=same; u0_2; u0_1; u0_3}\n")
    assert measure(digraph)["interleaved"] == 1


def test_lstm_cell_state_and_hidden_state_are_two_rails_across_the_steps(layouts):
    digraph, _ = layouts["lstm"]
    nodes, _ = plain(digraph)
    ids = {f"{name}({t})": nid for nid in nodes for name, t in [_name_and_step(digraph, nid)]
           if t is not None}
    for name in ("s", "h"):
        heights = {round(nodes[ids[f"{name}({t})"]][1], 3) for t in range(1, STEPS + 1)}
        assert len(heights) == 1
    assert nodes[ids["s(1)"]][1] != nodes[ids["h(1)"]][1]


def test_gates_of_a_step_stand_in_its_box_in_rows_below_the_state_they_feed(layouts):
    digraph, _ = layouts["lstm"]
    nodes, _ = plain(digraph)
    boxes = step_boxes(digraph)
    named = {_name_and_step(digraph, nid): nid for nid in nodes}
    for t in range(1, STEPS + 1):
        for gate in ("f", "g", "q"):
            assert boxes[named[(gate, t)]] == (0, t)
        assert nodes[named[("f", t)]][1] < nodes[named[("s", t)]][1]


@pytest.mark.parametrize("design", ["lstm", "user_lstm"])
def test_an_lstms_h_comes_into_the_cell_under_s(layouts, design):
    """The fork of an LSTM's h(t-1), which feeds s(t) (W) and the gates f, g, q (Wf, Wg, Wo),
    stood in h's row and sent its edges down past s(t), looping over it and across s(t) -> h(t)
    and q(t) -> h(t): 7 pairs of crossing edges a step.  As in figure 10.16, h(t-1) comes into
    the cell from below: along h's row to a turn, down past the s rail to a fork between the
    gates and s(t), whose edges go up into s(t) and down into the gates."""
    digraph, _ = layouts[design]
    nodes, _ = plain(digraph)
    named = {_name_and_step(digraph, nid): nid for nid in nodes}
    h_id = named[("h", 1)].rsplit("_", 1)[0]
    for t in range(1, STEPS + 1):
        fork = nodes[f"{h_id}_j{t}"][1]
        assert nodes[named[("s", t)]][1] > fork, t
        assert all(nodes[named[(gate, t)]][1] < fork for gate in ("f", "g", "q")), t
    assert len(crossings(digraph)) <= 4 * STEPS


def test_a_bidirectional_nets_own_weights_lie_on_no_node():
    """The weights of a bidirectional net's own steps were xlabels (its backward chain's edge
    from g(13) into step 12 was taken for a skip edge): "V" of g(t) -> o(t) and "U" of
    x(t) -> h(t) lay on g(t) and x(t) at steps 10-12 of the 12-step summary, and h(t) -> o(t)
    ran round them across the g rail (6 crossing pairs).  Now they are labels."""
    digraph = viz.unrolled(DESIGNS["bidirectional"], steps=12)
    assert [c for c in label_clashes(digraph) if " on node " in c] == []
    assert len(crossings(digraph)) <= 2


def test_an_encoder_decoders_weights_lie_on_no_node(layouts):
    """Its step's own weights and its rails' were xlabels, which the renderer put on the nodes:
    "V" of s(t) -> o(t) on s(t), "Wd" of s(t) -> s(t+1) on s(t), in every step.  They are now
    written at the heads of their edges."""
    digraph, _ = layouts["encdec"]
    assert [c for c in label_clashes(digraph) if " on node " in c] == []


def test_an_lstms_folded_h_delay_stands_under_h():
    """The delay of an LSTM's h, whose destinations s, f, g, q all stand below h, stood over h
    and sent its edges down across q -> h (4 crossing pairs); it stands under h now."""
    digraph = viz.folded(DESIGNS["lstm"])
    nodes, _ = plain(digraph)
    h = re.search(r"^\t(\w+) \[label=<h>\]", digraph.source, re.M).group(1)
    assert nodes[f"fd_{h}_0"][1] < nodes[h][1]
    assert len(crossings(digraph)) <= 1


def test_a_peepholes_h_and_s_come_into_the_cell_under_s(layouts):
    """The peephole LSTM's h(t-1) also feeds q(t), which reads s(t) and stands over it: its
    fork stood in h's row and its edges down to the gates ran round s(t), across both rails,
    s(t) -> h(t) and q(t) -> h(t) (12 crossing pairs a step).  Now q(t) is fed from the turn in
    h's row, the fork under s(t) feeds s(t) and the gates, and s(t-1)'s own fork stands beside
    it, both between the gates and s(t)."""
    digraph, _ = layouts["peephole"]
    nodes, edges = plain(digraph)
    named = {_name_and_step(digraph, nid): nid for nid in nodes}
    h_id, s_id = (named[(v, 1)].rsplit("_", 1)[0] for v in ("h", "s"))
    for t in range(1, STEPS + 1):
        for fork in (f"{h_id}_j{t}", f"{s_id}_j{t}"):
            assert nodes[named[("s", t)]][1] > nodes[fork][1], (fork, t)
            assert all(nodes[named[(gate, t)]][1] < nodes[fork][1] for gate in "fg"), (fork, t)
        assert {(a, b) for a, b, _ in edges} >= {(named[("q", t)], f"{h_id}_k{t}")}
    assert len(crossings(digraph)) <= 7 * STEPS


def test_encoder_and_decoder_are_two_rows_of_boxes_with_their_steps_aligned(layouts):
    digraph, _ = layouts["encdec"]
    nodes, _ = plain(digraph)
    boxes = step_boxes(digraph)
    box = bands(nodes, boxes)
    chains = sorted({c for c, _ in box})
    assert len(chains) == 2
    low, high = sorted(chains, key=lambda c: box[(c, 1)][2])
    for t in range(1, STEPS + 1):
        assert box[(low, t)][3] < box[(high, t)][2]         # one row above the other
        assert box[(low, t)][0] < box[(high, t)][1] and box[(high, t)][0] < box[(low, t)][1]


def test_a_static_input_is_drawn_once_outside_every_step(layouts):
    digraph, figures = layouts["vec2seq"]
    nodes, edges = plain(digraph)
    boxes = step_boxes(digraph)
    static = [nid for nid in nodes if _name_and_step(digraph, nid) == ("x", None)]
    assert len(static) == 1 and static[0] not in boxes
    drawn = set(_drawn_edges(digraph))      # (not the invisible edges that place it)
    assert sorted(boxes[head] for tail, head, _ in edges if tail == static[0]
                  and (tail, head) in drawn) == [(0, t) for t in range(1, STEPS + 1)]


def test_a_window_of_a_long_unroll_keeps_the_layout():
    model = DESIGNS["gru"]
    digraph = new_digraph("window")
    draw_unrolled(digraph, derive(model.trace(12), hide=("a",)), "u", shown=range(5, 9))
    figures = measure(digraph)
    assert {t for _, t in step_boxes(digraph).values()} == {5, 6, 7, 8}
    assert (figures["interleaved"], figures["stray"], figures["ends"]) == (0, 0, 0)


def test_a_100000_step_summary_builds_and_renders_without_hitting_the_recursion_limit():
    limit = sys.getrecursionlimit()
    digraph = viz.unrolled(DESIGNS["lstm"], steps=100_000)
    assert {t for _, t in step_boxes(digraph).values()} == {1, 2, 3, 99_998, 99_999, 100_000}
    assert sys.getrecursionlimit() == limit


def test_a_summary_from_short_traces_draws_what_the_whole_trace_draws():
    for name in ("lstm", "bidirectional", "leaky_skip", "encdec"):
        short = viz.unrolled(DESIGNS[name], steps=30).source
        g = new_digraph(f"{DESIGNS[name].name}_unrolled")
        window = views.edge_window(DESIGNS[name])
        draw_unrolled(g, views.variables_of(DESIGNS[name], 30, views.BOOK_HIDDEN, window=window,
                                    who="unrolled"), "u", getattr(DESIGNS[name], "edge_label", None))
        assert sorted(short.splitlines()) == sorted(g.source.splitlines())


def test_a_design_whose_steps_depend_on_its_length_is_traced_whole():
    """A step that reads the unroll's length cannot be summarised from short traces."""
    w = tg.Parameter(np.array(0.5), name="w")
    v = tg.Parameter(np.array(0.25), name="v")

    class LengthAware:
        name = "aware"

        def trace(self, steps=3):
            with tg.scope(self.name):
                with tg.scope("t=0"):
                    h = tg.tensor(1.0, name="h")
                for t in range(1, steps + 1):
                    with tg.scope(f"t={t}"):
                        h = (h * (w if steps % 2 else v)).named("h")
            return [h]

    assert _summary(LengthAware(), 1001, 3, ()) is None
    labels = viz.unrolled(LengthAware(), steps=1001).source
    assert "<w>" in labels and "<v>" not in labels


def _name_and_step(digraph, nid):
    """(variable name, t) of a node id of an unrolled view, from its label (t None: static)."""
    for line in digraph.source.splitlines():
        m = re.match(rf"\s*{re.escape(nid)} \[.*?label=<(.*)>", line)
        if m:
            label = re.sub(r"<[^>]+>", " ", m.group(1)).split()
            if not label:
                return (None, None)
            if len(label) == 1:
                return (label[0], None)
            step = label[1].strip("()")
            return (label[0], int(step) if step.isdigit() else None)
    return (None, None)


def test_the_weightless_f_of_a_delay_into_another_variable_lies_by_its_own_edge():
    """The README's attention, folded: "f" of the delay of h -> α (h(t-1) read through the
    step, no weight) was written in the middle of that edge, which runs down three ranks, where
    x -> h crosses it: it read as x -> h's.  It is written at the edge's head now (by α), and
    the edge nearest to it is its own."""
    import json
    import subprocess
    from viz.render import find_renderer
    from viz_layout import _points
    digraph = viz.folded(readme_attention_decoder())
    layout = json.loads(subprocess.run([find_renderer(), "-Tjson"], input=digraph.source.encode(),
                                       capture_output=True, check=True).stdout)
    objects = layout["objects"]
    name_of = {o["_gvid"]: o.get("label") if o.get("label") not in (None, "", "\\N")
               else o["name"] for o in objects}
    curves, text = {}, None
    for e in layout["edges"]:
        key = (name_of[e["tail"]], name_of[e["head"]])
        curves[key] = [p for op in e.get("_draw_", []) if op["op"] in "bB"
                       for p in _points(op["points"], per_piece=24)]
        for draw in ("_ldraw_", "_hldraw_", "_tldraw_", "_xldraw_"):
            for op in e.get(draw, []):
                if op["op"] == "T" and op["text"] == "f":
                    text, own = op["pt"], key
    assert text is not None and own[1] == "α"
    distance = {k: min(np.hypot(x - text[0], y - text[1]) for x, y in points)
                for k, points in curves.items() if points}
    assert min(distance, key=distance.get) == own, distance


@pytest.mark.parametrize("steps", [6, 8, 12])
def test_the_readme_attention_decoders_columns_stand_in_time_order(steps, monkeypatch):
    """The explorer's summary of the README's attention decoder (4 static inputs, the encoder's
    h@elman/t=1..4, in the row under the steps) drew its elision 'h ×2' between steps 2 and 3
    (8 and 12 steps), and at 6 steps its h(...) end between steps 5 and 6: the renderer kept
    the anchors' row in order but not the boxes over it.  With a row of points over the
    columns too (as for several chains), every (...) end, step and elision stands in time
    order, in the explorer's summary and windows and in viz.unrolled."""
    model = readme_attention_decoder()
    rng = np.random.default_rng(1)
    _, drawn = _explorer_drawings(monkeypatch, model, rng.normal(size=(steps, 4)),
                                  np.arange(steps) % 3)
    views = {f"explorer {'summary' if shown is None else f'steps {shown[0]}-{shown[-1]}'}":
             digraph for digraph, _, shown in drawn}
    views["viz.unrolled"] = viz.unrolled(model, steps=steps)
    assert {view: found for view, digraph in views.items()
            if (found := columns_out_of_time_order(digraph))} == {}


@pytest.mark.parametrize("design", list(DESIGNS))
def test_a_summarys_columns_stand_in_time_order(design, monkeypatch):
    """Each design's summary of 9 steps (steps 1-3, the elision, steps 7-9, viz.unrolled's and
    the explorer's) draws its (...) ends, steps and elisions left to right in time order."""
    model = DESIGNS[design]
    xs, ys = _explore_args(design, model, 9, np.random.default_rng(0))
    _, drawn = _explorer_drawings(monkeypatch, model, xs, ys)
    views = {"explorer summary": drawn[0][0], "viz.unrolled": viz.unrolled(model, steps=9)}
    assert {view: found for view, digraph in views.items()
            if (found := columns_out_of_time_order(digraph))} == {}


def test_the_column_order_check_sees_an_elision_out_of_place():
    """The check itself: steps 1 and 5 and the elision between them, laid out 1, 5, elision."""
    source = "\n".join(["digraph {", "rankdir=LR",
                         "subgraph cluster_u_c0_t1 {", "a", "}",
                         "subgraph cluster_u_c0_gap {", "b", "}",
                         "subgraph cluster_u_c0_t5 {", "c", "}",
                         "a -> c", "c -> b", "}"])
    found = columns_out_of_time_order(graphviz.Source(source))
    assert len(found) == 1 and found[0].startswith("chain 0: gap at ")
    assert found[0].split(", ")[1].startswith("step 5 at ")


def test_the_grus_own_edges_cross_once_in_each_step():
    """In each step of the GRU, x(t) -> h(t) (U) ran round the left of u(t), across the fork's
    edges into u(t) and r(t) (Wu, Wr), and Wr crossed u(t) -> h(t): 3 crossings a step.  It
    now enters h(t) from the side away from the fork (the south-east): Wr across u(t) -> h(t)
    is left, the fewest any order of the row u, r, x's edge allows (the fork, left of h, feeds
    both u and r)."""
    for steps in (1, 4):
        found = crossings_in_steps(viz.unrolled(DESIGNS["gru"], steps=steps))
        assert len(found) == steps, found


# Pairs of drawn edges that cross, per design, in its folded view, its unrolled view at 1 and
# 4 steps and its summary of 12 steps.  A change may lower them (then lower them here), never
# raise them.  An edge within a step into the highest variable a fork feeds from (the GRU's h,
# an LSTM's h) that passes a row enters it from the side away from the fork (viewsF): GRU
# (1, 3, 12, 18) -> (1, 1, 4, 6), LSTM (4, 15, 57, 87) -> (4, 7, 28, 51), the user-written
# LSTM (4, 15, 57, 87) -> (4, 8, 28, 51), peephole LSTM (11, 14, 59, 80) -> (11, 12, 49, 75).
# An MLP transition's hidden layer z(t) right under h(t) (viewsF): deep MLP and deep skip
# (1, 1, 4, 6) -> (1, 0, 0, 0).
# The fork of an LSTM's h(t-1) under s(t), its edges up into s(t) and down into the gates (figure
# 10.16's h(t-1) from below; viewsG): LSTM (4, 7, 28, 51) -> (4, 4, 16, 30), the user-written
# LSTM (4, 8, 28, 51) -> (4, 4, 16, 30); no other design's crossings changed.  The peephole
# LSTM's h(t-1) fork under s(t) too, q(t) fed from its turn, and its s(t-1) fork beside it
# (viewsH): peephole (11, 12, 49, 75) -> (11, 7, 28, 42).  A bidirectional net's own weights
# labels (viewsH): (0, 2, 5, 6) -> (0, 2, 2, 2).  A delay whose destinations all stand below its
# variable, under it in the folded view (viewsH): LSTM and user-written LSTM (4, 4, 16, 30) ->
# (1, 4, 16, 30), deep MLP (1, 0, 0, 0) -> (0, 0, 0, 0).
CROSSINGS = {
    "elman": (0, 0, 0, 0), "jordan": (0, 0, 0, 0), "seq2one": (0, 0, 0, 0),
    "vec2seq": (0, 0, 0, 0), "conditional": (0, 0, 0, 0), "lstm": (1, 4, 16, 30),
    "gru": (1, 1, 4, 6), "bidirectional": (0, 2, 2, 2), "encdec": (0, 0, 0, 0),
    "deep_stacked": (0, 0, 0, 0), "deep_mlp": (0, 0, 0, 0), "deep_skip": (1, 0, 0, 0),
    "leaky_skip": (0, 0, 6, 10), "esn": (0, 0, 0, 0), "memory": (2, 6, 24, 37),
    "user_lstm": (1, 4, 16, 30), "peephole": (11, 7, 28, 42),
}


def test_every_design_has_a_pinned_crossing_count():
    assert set(CROSSINGS) == set(DESIGNS)


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("design", list(DESIGNS))
def test_edge_crossings_do_not_come_back(design, view):
    pinned = CROSSINGS[design][list(VIEWS).index(view)]
    found = crossings(VIEWS[view](DESIGNS[design]))
    assert len(found) <= pinned, found


def test_the_crossing_check_sees_two_edges_cross():
    """The oracle can fail: a -> d and b -> c, their ends in crossed order on two rows."""
    digraph = graphviz.Digraph()
    digraph.edge("a", "d")
    digraph.edge("b", "c")
    digraph.body.append("\t{rank=same; a; b}\n\t{rank=same; c; d}\n\tc -> d [style=invis]\n"
                        "\ta -> b [style=invis]\n")
    assert crossings(digraph) == [(("a", "d"), ("b", "c"))]


@pytest.mark.parametrize("steps", [3, 8, 12])
def test_the_readme_attention_decoders_views_run_no_edge_through_a_step_it_does_not_join(
        steps, monkeypatch):
    """The README's attention decoder reads another model's four states at every step
    (memory -> α(t) and ctx(t)); the explorer draws them as four inputs of their own
    (h@elman/t=1..4).  Each input had an edge into α(t) and ctx(t) of every step, and they ran
    through the steps between: 8, 16 and 32 edges through steps they do not join in the
    explorer's summary and windows at 3, 8 and 12 steps, 2 and 4 in viz.unrolled at 4 and 12
    steps.  The inputs now stand left of the steps and join at one point, whose edge comes
    into each step once, at a fork beside α(t); every dependency is still drawn."""
    model = readme_attention_decoder()
    rng = np.random.default_rng(1)
    _, drawn = _explorer_drawings(monkeypatch, model, rng.normal(size=(steps, 4)),
                                  np.arange(steps) % 3)
    drawings = {f"explorer {'summary' if shown is None else f'steps {shown[0]}-{shown[-1]}'}":
                (digraph, variables, shown) for digraph, variables, shown in drawn}
    drawings["viz.unrolled"] = (viz.unrolled(model, steps=steps + 1),
                                derive(model.trace(steps + 1), hide=views.BOOK_HIDDEN), None)
    assert {view: measure(digraph)["stray"] for view, (digraph, _, _) in drawings.items()} == \
        {view: 0 for view in drawings}
    assert {view: undrawn_dependencies(digraph, variables, shown=shown)
            for view, (digraph, variables, shown) in drawings.items()} == \
        {view: [] for view in drawings}


def _svg_pixels(digraph):
    """(width, height) of the rendered SVG of ``digraph`` in CSS pixels (96 an inch; the SVG
    gives points, 72 an inch)."""
    svg = viz.render(digraph, "svg", quiet=True).decode()
    width, height = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return float(width) * 4 / 3, float(height) * 4 / 3


@pytest.mark.parametrize("design", list(DESIGNS))
def test_the_folded_view_and_a_long_summary_fit_a_1920_by_1080_screen(design):
    """The summary of 200 steps of an LSTM (the user-written one too) was 2259 pixels wide,
    the peephole LSTM's 1909 x 1108, the memory network's 2843 x 1208 and its folded view
    581 x 1187: a projector showed part of it.  A drawing larger than the screen is scaled
    down to fit it (a smaller one keeps its size)."""
    model = DESIGNS[design]
    for view in (viz.folded(model), viz.unrolled(model, steps=200)):
        width, height = _svg_pixels(view)
        assert width <= 1920 + 1 and height <= 1080 + 1, (view.name, width, height)


@pytest.mark.parametrize("design", ["deep_mlp", "deep_skip"])
def test_an_mlp_transitions_hidden_layer_stands_between_the_states_it_joins(design):
    """Figure 10.13 (b): h(t-1) -> z(t) -> h(t), the transition's hidden layer z(t) fed from
    the step before alone.  It stood in the lowest row beside x(t), h(t-1) -> z(t) running
    down across e(t) -> h(t) (4 pairs of crossing edges at 4 steps); it now stands right
    under h(t), in the row of e(t), and no edges cross."""
    digraph = viz.unrolled(DESIGNS[design], steps=4)
    nodes, _ = plain(digraph)
    named = {_name_and_step(digraph, nid): nid for nid in nodes}
    for t in range(1, 5):
        z, e, h, x = (nodes[named[(name, t)]][1] for name in ("z", "e", "h", "x"))
        assert x < z == e < h
    assert crossings(digraph) == []


def test_another_models_states_are_drawn_as_its_variable_at_its_steps(monkeypatch):
    """The explorer names the README's attention decoder's four inputs h@elman/t=1..4 (the
    encoder's h at its steps 1 to 4) and drew those names whole, circles 1.65 in across; they
    are drawn elman.h(1) .. elman.h(4), as viz.unrolled draws the stacked states elman.h, in
    circles 1.29 in across."""
    rng = np.random.default_rng(1)
    _, drawn = _explorer_drawings(monkeypatch, readme_attention_decoder(),
                                  rng.normal(size=(6, 4)), np.arange(6) % 3)
    digraph = drawn[0][0]
    nodes, _ = plain(digraph)
    found = dict(re.findall(r"^\s*(\w+) \[label=<<table.*?>elman\.h</td>.*?\((\d)\)</font>",
                            digraph.source, re.M))
    assert sorted(found.values()) == ["1", "2", "3", "4"]
    assert "h@elman" not in digraph.source
    assert max(nodes[nid][2] for nid in found) < 1.3


def test_the_explorers_drawings_keep_their_size_for_its_own_zoom(monkeypatch):
    """The explorer's page zooms and scrolls its drawings itself (its "fit" and "+"/"-"): they
    are not scaled down to a screen, as viz.unrolled's and viz.folded's are."""
    model = DESIGNS["memory"]
    xs, ys = _explore_args("memory", model, 200, np.random.default_rng(0))
    (folded, _), drawn = _explorer_drawings(monkeypatch, model, xs, ys)
    assert not re.search(r"(^|\s)size=", folded.source + drawn[0][0].source)
    assert _svg_pixels(drawn[0][0])[0] > 1920
    assert _svg_pixels(viz.unrolled(model, steps=200))[0] <= 1921
