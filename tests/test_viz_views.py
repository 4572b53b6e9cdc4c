"""The folded and unrolled views are derived from a model's own unroll: a cell
the library does not ship gets both, with the book's layout and labels."""

import re

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz_svg import by_text, crowded, edge_labels, parse


def _gated_cell():
    """A user's own cell (not in rnn): a leaky tanh unit with a gate, written with rnn.Recurrence."""
    rng = np.random.default_rng(0)
    A = tg.Parameter(rng.normal(size=(3, 3)), name="A")
    B = tg.Parameter(rng.normal(size=(3, 2)), name="B")
    G = tg.Parameter(rng.normal(size=(3, 3)), name="G")
    C = tg.Parameter(rng.normal(size=(4, 3)), name="C")
    bias = tg.Parameter(np.zeros(3), name="bias")

    def step(h, x):
        gate = (h @ G.T).sigmoid()
        return gate * h + (1 - gate) * (h @ A.T + x @ B.T + bias).tanh()

    return rnn.Recurrence(step, [A, B, G, C, bias], n_state=3, n_in=2,
                          readout=lambda h: h @ C.T, name="gated")


class _ScalarChain:
    """A contract-following model written by hand: h(t) = w * h(t-1) + x(t), one op per step."""

    name = "chain"
    edge_label = None

    def __init__(self, w=0.5):
        self.w = tg.Parameter(np.array(w), name="w")

    def trace(self, steps=3):
        with tg.scope(self.name):
            with tg.scope("t=0"):
                h = tg.tensor(1.0, name="h")
            for t in range(1, steps + 1):
                with tg.scope(f"t={t}"):
                    h = (h * self.w).named("h")
        return [h]


def _svg(digraph):
    return parse(viz.render(digraph, "svg"))


def _edge_labels(nodes, edges):
    """(tail text, head text) -> edge label text."""
    return {(nodes[a]["text"], nodes[b]["text"]): label for a, b, label in edges}


def test_unrolled_view_of_a_users_own_cell_has_each_variable_at_each_step():
    nodes, _, _ = _svg(viz.unrolled(_gated_cell(), steps=3))
    texts = {n["text"] for n in nodes.values()}
    for t in (1, 2, 3):
        for name in ("x", "h", "o", "L", "y"):
            assert f"{name} ({t})" in texts


def test_unrolled_edges_of_a_users_own_cell_carry_the_weights_on_their_path():
    nodes, edges, _ = _svg(viz.unrolled(_gated_cell(), steps=3))
    labels = _edge_labels(nodes, edges)
    assert labels[("x (2)", "h (2)")] == "B"
    assert set(labels[("h (1)", "h (2)")].split(", ")) == {"G", "A"}
    assert labels[("h (2)", "o (2)")] == "C"
    assert "bias" not in " ".join(labels.values())


def test_folded_view_of_a_users_own_cell_has_one_node_per_variable_and_one_delay():
    nodes, edges, _ = _svg(viz.folded(_gated_cell()))
    names = sorted(n["text"] for n in nodes.values() if n["fill"] != "black")
    squares = [nid for nid, n in nodes.items() if n["fill"] == "black"]
    assert names == ["L", "h", "o", "x", "y"]
    assert len(squares) == 1


def test_folded_recurrent_edges_leave_the_delay_square_one_per_path_labelled_with_its_weights():
    nodes, edges, _ = _svg(viz.folded(_gated_cell()))
    h = by_text(nodes)["h"]
    square = next(nid for nid, n in nodes.items() if n["fill"] == "black")
    into = [label for a, b, label in edges if a == h and b == square]
    out = sorted(label for a, b, label in edges if a == square and b == h)
    assert into == [""]
    assert len(out) == 2 and out[0] == ""       # the copy gate * h(t-1) carries no weight
    assert set(out[1].split(", ")) == {"G", "A"}
    assert not any(a == h and b == h for a, b, _ in edges)


def test_time_runs_left_to_right_and_each_column_stacks_x_h_o_L_y_bottom_to_top():
    nodes, _, _ = _svg(viz.unrolled(rnn.ElmanRNN(4, 3, 4), steps=3, hide=("a",)))
    at = {n["text"]: n for n in nodes.values()}
    assert at["h (1)"]["x"] < at["h (2)"]["x"] < at["h (3)"]["x"]
    for t in (1, 2, 3):
        column = [at[f"{name} ({t})"] for name in ("x", "h", "o", "L", "y")]
        assert all(abs(n["x"] - column[0]["x"]) < 2 for n in column)
        ys = [n["y"] for n in column]            # SVG y grows downwards
        assert ys == sorted(ys, reverse=True)
    assert at["h (1)"]["y"] == at["h (3)"]["y"]


def test_recurrent_variables_get_ellipsis_nodes_at_both_ends():
    nodes, edges, _ = _svg(viz.unrolled(rnn.ElmanRNN(4, 3, 4), steps=3, hide=("a",)))
    labels = _edge_labels(nodes, edges)
    ends = [nid for nid, n in nodes.items() if n["text"] == "h (...)"]
    assert len(ends) == 2
    assert labels[("h (...)", "h (1)")] == "W"
    assert labels[("h (3)", "h (...)")] == "W"
    assert not any(n["text"].startswith("x (...)") for n in nodes.values())


def test_hiding_a_variable_joins_its_feeders_to_its_consumers():
    model = rnn.ElmanRNN(4, 3, 4)
    shown = _edge_labels(*_svg(viz.unrolled(model, steps=2, hide=()))[:2])
    hidden = _edge_labels(*_svg(viz.unrolled(model, steps=2, hide=("a",)))[:2])
    assert shown[("x (1)", "a (1)")] == "U" and shown[("a (1)", "h (1)")] == ""
    assert hidden[("x (1)", "h (1)")] == "U"
    assert not any("a (" in a or "a (" in b for a, b in hidden)


def test_a_static_variable_is_drawn_once_and_feeds_every_step():
    nodes, edges, _ = _svg(viz.unrolled(rnn.VectorToSequence(4, 3, 4), steps=3, hide=("a",)))
    x = [nid for nid, n in nodes.items() if n["text"] == "x"]
    assert len(x) == 1
    fed = sorted(nodes[b]["text"] for a, b, label in edges if a == x[0] and label == "R")
    assert fed == ["h (1)", "h (2)", "h (3)"]


def test_a_target_is_drawn_above_the_loss_it_feeds():
    model = rnn.ElmanRNN(4, 3, 4)
    digraph = viz.unrolled(model, steps=2)
    nodes, _, _ = _svg(digraph)
    at = {n["text"]: n for n in nodes.values()}
    assert at["y (1)"]["y"] < at["L (1)"]["y"]
    assert "dir=back" in digraph.source


def test_edge_label_names_a_recurrent_edge_that_passes_no_weight():
    theta = tg.Parameter(np.array([0.1, 0.2]), name="theta")
    system = rnn.Recurrence(lambda s: (s * 0.5 + theta).tanh(), [theta], n_state=2,
                            state_name="s", edge_label="f")
    labels = _edge_labels(*_svg(viz.unrolled(system, steps=3))[:2])
    assert labels[("s (1)", "s (2)")] == "f"
    nodes, edges, _ = _svg(viz.folded(system))
    assert sorted(label for _, _, label in edges) == ["", "f"]


def test_the_same_view_renders_to_the_same_svg_twice():
    first = viz.render(viz.unrolled(_gated_cell(), steps=3))
    second = viz.render(viz.unrolled(_gated_cell(), steps=3))
    assert first == second
    assert viz.render(viz.folded(_gated_cell())) == viz.render(viz.folded(_gated_cell()))


def test_a_100000_step_unroll_is_summarised_with_its_first_and_last_steps():
    digraph = viz.unrolled(_ScalarChain(), steps=100_000, keep=3)
    nodes, edges, _ = _svg(digraph)
    texts = {n["text"] for n in nodes.values()}
    assert {"h (1)", "h (2)", "h (3)", "h (99998)", "h (99999)", "h (100000)"} <= texts
    assert len(nodes) < 20
    gap = [nid for nid, n in nodes.items() if "99,994 steps left out" in n["text"]]
    assert len(gap) == 1
    into = [nodes[a]["text"] for a, b, _ in edges if b == gap[0]]
    out = [nodes[b]["text"] for a, b, _ in edges if a == gap[0]]
    assert into == ["h (3)"] and out == ["h (99998)"]


def test_hostile_names_are_drawn_as_text_not_markup():
    evil = '<b>&"\'{x}|'
    weight = tg.Parameter(np.array([0.5]), name='</font><sup>"W"')

    class Hostile:
        name = "<hostile>"

        def trace(self, steps=3):
            with tg.scope(self.name):
                h = tg.tensor([1.0])
                for t in range(1, steps + 1):
                    with tg.scope(f"t={t}"):
                        h = (h * weight).named(evil)
            return [h]

    for digraph in (viz.unrolled(Hostile()), viz.folded(Hostile())):
        nodes, edges, _ = _svg(digraph)     # well-formed XML, or parse fails
        assert any(n["text"].startswith(evil) for n in nodes.values())
        assert any(label == '</font><sup>"W"' for _, _, label in edges)


def test_trace_without_named_nodes_gives_an_empty_diagram_not_a_crash():
    class Anonymous:
        name = "anon"

        def trace(self, steps=3):
            return [tg.tensor([1.0], requires_grad=True) * 2]

    nodes, edges, _ = _svg(viz.unrolled(Anonymous()))
    assert nodes == {} and edges == []


@pytest.mark.parametrize("steps", [1, 2])
def test_short_unrolls_still_show_the_recurrence_through_ellipsis_ends(steps):
    nodes, edges, _ = _svg(viz.unrolled(_ScalarChain(), steps=steps))
    labels = _edge_labels(nodes, edges)
    assert sorted(n["text"] for n in nodes.values()) == sorted(
        ["h (...)", "h (...)"] + [f"h ({t})" for t in range(1, steps + 1)])
    assert labels[("h (...)", "h (1)")] == "w"
    assert labels[(f"h ({steps})", "h (...)")] == "w"


def test_summarised_output_recurrence_routes_through_one_elision_node_per_fed_back_variable():
    model = rnn.JordanRNN(4, 3, 4)
    nodes, edges, _ = _svg(viz.unrolled(model, steps=20, keep=3, hide=("a",)))
    text = {nid: n["text"] for nid, n in nodes.items()}
    gaps = {t.split(":")[0]: nid for nid, t in text.items() if "14 steps left out" in t}
    assert sorted(gaps) == ["y"]
    assert {(text[a], label) for a, b, label in edges if b == gaps["y"]} == {("y (3)", "W")}
    bend = [b for a, b, _ in edges if a == gaps["y"]]
    assert len(bend) == 1 and text[bend[0]] == ""      # turns down into step 18's box
    assert {(text[b], label) for a, b, label in edges if a == bend[0]} == {("h (18)", "W")}


def test_gradient_flow_view_shows_the_norm_reaching_each_state():
    nodes, _, _ = _svg(viz.unrolled(_ScalarChain(w=0.5), steps=5, grads=True))
    shown = {n["text"].split(" ")[1]: n for n in nodes.values() if n["text"].startswith("h (")
             and n["text"].split(" ")[1] != "(...)"}
    for t in range(1, 6):           # h(5) = w**5 h(0): dh(5)/dh(t) = w**(5 - t)
        assert float(shown[f"({t})"]["text"].split(" ")[2]) == pytest.approx(0.5 ** (5 - t),
                                                                             rel=0.05)
    assert shown["(1)"]["fill"] != shown["(5)"]["fill"]


def test_default_views_hide_the_pre_activation_as_the_book_does():
    model = rnn.ElmanRNN(4, 3, 4)
    default = _edge_labels(*_svg(viz.unrolled(model, steps=2))[:2])
    assert default[("x (1)", "h (1)")] == "U"
    assert "a (1)" not in {node for edge in default for node in edge}
    folded_labels = re.findall(r"label=<(\w+)>", viz.folded(model).source)
    assert "h" in folded_labels and "a" not in folded_labels


def test_drawing_leaves_the_cycle_collector_as_it_found_it():
    import gc
    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    model = rnn.ElmanRNN(4, 3, 4)
    viz.folded(model)
    viz.unrolled(model, steps=12, grads=True)
    viz.graph(model.run(np.array([0, 1, 2]), np.array([1, 2, 3])).loss)
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before


def test_folded_gru_draws_the_copy_path_beside_the_weighted_path():
    nodes, edges, _ = _svg(viz.folded(rnn.GRU(4, 3, 4)))
    h = by_text(nodes)["h"]
    square = next(nid for nid, n in nodes.items() if n["fill"] == "black")
    into_h = sorted(label for a, b, label in edges if a == square and b == h)
    assert into_h == ["", "W"]      # u(t) h(t-1) with no weight, and W (r(t) h(t-1))


def test_folded_look_ahead_has_its_own_marker_and_a_legend():
    digraph = viz.folded(rnn.BidirectionalRNN(4, 3, 4))
    nodes, edges, _ = _svg(digraph)
    by = {n["text"]: nid for nid, n in nodes.items() if n["text"]}
    squares = {n["fill"]: nid for nid, n in nodes.items() if n["text"] == ""}
    assert set(squares) == {"black", "white"}
    assert (by["h"], squares["black"]) in {(a, b) for a, b, _ in edges}
    assert (by["g"], squares["white"]) in {(a, b) for a, b, _ in edges}
    assert "look-ahead" in digraph.source and "delay" in digraph.source


def test_folded_fixed_weights_are_dashed_and_marked_fixed():
    digraph = viz.folded(rnn.EchoStateNetwork(4, 3, 4))
    fixed = [line for line in digraph.source.splitlines() if "(fixed)" in line]
    assert {re.search(r"label=<(\w+) \(fixed\)>", line).group(1) for line in fixed} == {"U", "W"}
    assert all("dashed" in line for line in fixed)
    assert "(fixed)" not in viz.folded(rnn.ElmanRNN(4, 3, 4)).source


def _through_forks(nodes, edges):
    """(tail text, head text) -> label of the drawn edges, an edge through a fork (a point with
    no text) read as one edge from what enters the fork."""
    text = {nid: n["text"] for nid, n in nodes.items()}
    into = {b: a for a, b, _ in edges if text.get(b) == ""}
    out = {}
    for a, b, label in edges:
        if text.get(b) == "":
            continue
        tail = into.get(a, a)
        out[(text[tail], text[b])] = label
    return out


def test_a_skip_nets_one_step_edges_carry_their_own_weights_not_those_of_the_first_step():
    # LeakyRNN(skip=2): v(t) reads h(t-1) through W and h(t-2) through Wd.  Before step 1 the
    # two are the same node h(0), so h(0) -> v(1) carries W and Wd; the steps after it carry W
    # alone (h(1) -> v(2) was drawn "W, Wd", the labels of every step merged).
    model = rnn.LeakyRNN(4, 3, 4, skip=2)
    for steps in (3, 12):
        labels = _through_forks(*_svg(viz.unrolled(model, steps=steps))[:2])
        assert labels[("h (1)", "v (2)")] == "W"
        assert labels[("h (1)", "v (3)")] == "Wd"
        assert labels[(f"h ({steps - 1})", f"v ({steps})")] == "W"
        assert labels[("h (...)", "v (1)")] == "W, Wd"


def _all_labels(digraph):
    """(tail text, head text) -> sorted labels of every drawn edge between them (an edge through
    a fork read from what enters the fork): an elision node feeds one step twice."""
    nodes, edges, _ = _svg(digraph)
    text = {nid: n["text"] for nid, n in nodes.items()}
    into = {b: a for a, b, _ in edges if text.get(b) == ""}
    out = {}
    for a, b, label in edges:
        if text.get(b) != "":
            out.setdefault((text[into.get(a, a)], text[b]), []).append(label)
    return {key: sorted(labels) for key, labels in out.items()}


def test_a_skip_nets_lagged_edges_into_and_out_of_what_is_not_drawn_are_drawn():
    # v(2) reads h(0) through Wd, and in a summary h(2), h(3) feed v(4), v(5) in the elision and
    # h(8), h(9) feed v(10), v(11): those edges exist in the unroll but were not drawn, so the
    # picture showed v(2) with no lagged input at all.  The one-step edge out of the elision
    # carries its own weight (h(9) -> v(10): W), as those between drawn steps do.
    model = rnn.LeakyRNN(4, 3, 4, skip=2)
    labels = _all_labels(viz.unrolled(model, steps=3))
    assert labels[("h (...)", "v (1)")] == ["W, Wd"]        # h(0) is h(-1) too
    assert labels[("h (...)", "v (2)")] == ["Wd"]
    labels = _all_labels(viz.unrolled(model, steps=12))
    h_gap, v_gap = "h: ... 6 steps left out ...", "v: ... 6 steps left out ..."
    assert labels[("h (...)", "v (2)")] == ["Wd"]
    assert labels[("h (2)", v_gap)] == labels[("h (3)", v_gap)] == ["Wd"]
    assert labels[(h_gap, "v (10)")] == ["W", "Wd"]
    assert labels[(h_gap, "v (11)")] == ["Wd"]
    assert [key for key, found in labels.items() if "Wd" in found and key[0] in ("h (11)", "h (12)")] == []


@pytest.mark.parametrize("steps", [3, 12])
def test_the_backward_chain_of_a_bidirectional_net_comes_in_from_its_end_as_h_from_its_start(steps):
    # g(T) reads the initial state g(T+1), made in scope t=0 (so the edge is T steps long, not
    # -1): h(...) -> h(1) was drawn, g(...) -> g(T) was not.
    nodes, edges, _ = _svg(viz.unrolled(rnn.BidirectionalRNN(4, 3, 4), steps=steps))
    labels = _through_forks(nodes, edges)
    assert labels[("h (...)", "h (1)")] == "W"
    assert labels[("g (...)", f"g ({steps})")] == "Wg"
    assert labels[("g (1)", "g (...)")] == "Wg"


@pytest.mark.parametrize("make", [lambda: rnn.BidirectionalRNN(4, 3, 4),
                                  lambda: rnn.ElmanRNN(4, 3, 4, bidirectional=True)],
                         ids=["bidirectional", "elman-bidirectional"])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_a_backward_chain_points_left_whatever_the_number_of_steps(make, steps):
    # figure 10.11: g(t+1) -> g(t) points left; h(t-1) -> h(t) right.  One step has no edge
    # between steps, and the edge from the backward chain's initial state (made at t=0, as h(0))
    # into g(1) read as a forward one: g(...) on the left -> g(1) -> g(...) on the right.
    model = make()
    back = "g" if isinstance(model, rnn.BidirectionalRNN) else "h_r"
    fore = "h"
    nodes, edges, _ = _svg(viz.unrolled(model, steps=steps))
    text = {nid: n["text"] for nid, n in nodes.items()}
    into = {b: a for a, b, _ in edges if text.get(b) == ""}     # through a fork, from its source
    for name, rightward in ((fore, True), (back, False)):
        chain = [(into.get(a, a), b) for a, b, _ in edges if text.get(b) != ""
                 and text[into.get(a, a)].split(" ")[0] == name and text[b].split(" ")[0] == name]
        assert len(chain) == steps + 1, (name, chain)
        for a, b in chain:
            assert (nodes[b]["x"] > nodes[a]["x"]) == rightward, (name, text[a], text[b])


def _passing_cell():
    """h(t) = tanh(U x(t) + W h(t-1) + A p(t-1) + B c(t-1)) with p(t) = h(t-1) (a delay line: p
    passes h on as it came) and c(t) = c(t-1) (a part kept unchanged)."""
    rng = np.random.default_rng(0)
    P = {k: tg.Parameter(rng.normal(size=s) * 0.3, name=k) for k, s in
         (("U", (3, 2)), ("W", (3, 3)), ("A", (3, 3)), ("B", (3, 3)), ("V", (4, 3)))}

    def step(s, x):
        h = (x @ P["U"].T + s["h"] @ P["W"].T + s["p"] @ P["A"].T + s["c"] @ P["B"].T).tanh()
        return {"h": h, "p": s["h"], "c": s["c"]}

    return rnn.Recurrence(step, list(P.values()), {"h": 3, "p": 3, "c": 3}, n_in=2,
                          readout=lambda s: s["h"] @ P["V"].T, name="passing")


def test_a_part_passed_on_as_it_came_is_its_own_node_and_renames_nothing():
    # p(t) = h(t-1) returned the node h(t-1) itself, and naming it "p" renamed h(t-1): the run's
    # h(1), h(2) were called p, the views drew x(1) -U-> p(1) and p -W-> p, and c(t) = c(t-1) was
    # c(0) at every step, so h(2), h(3) read c with no edge drawn and the folded view had no c.
    cell = _passing_cell()
    run = cell.run(np.zeros((3, 2)), np.array([0, 1, 2]))
    assert [n.name for n in run.parts["h"]] == ["h", "h", "h"]
    assert [n.scope for n in run.parts["c"]] == [f"passing/t={t}" for t in (1, 2, 3)]
    labels = _through_forks(*_svg(viz.unrolled(cell, steps=3))[:2])
    assert labels[("x (1)", "h (1)")] == "U"
    assert labels[("h (1)", "p (2)")] == "f"            # no weight: the cell's edge_label
    assert labels[("p (2)", "h (3)")] == "A"
    assert labels[("c (2)", "h (3)")] == "B"
    assert not any(a.startswith("p") and b.startswith("p") for a, b in labels)
    nodes, edges, _ = _svg(viz.folded(cell))
    assert sorted(n["text"] for n in nodes.values() if n["text"]) == sorted(
        ["x", "h", "p", "c", "o", "L", "y"])


def test_a_memory_networks_unbatched_run_has_the_memory_m_0_not_a_weight_m0():
    # Unbatched, the state before step 1 was the learned M0 itself (a Parameter, through a
    # reshape): derive (the explorer's views) drew it as a weight, erase(1) -M0-> M(1) and
    # h(1) -M0, Kw-> ww(1), with no M(0); a batch of one drew M(0) -> M(1) as it should.
    from viz.derive import derive
    model = rnn.MemoryNetwork(4, 3, 4, slots=4, width=3)
    xs, ys = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    alone = derive([model.run(xs, ys).loss]).edges
    batched = derive([model.run(xs[:, None], ys[:, None]).loss]).edges
    assert alone == batched
    assert (("M", 0), ("M", 1)) in alone
    assert not any("M0" in labels for labels in alone.values())


@pytest.mark.parametrize("model, steps", [
    (rnn.BidirectionalRNN(3, 4, 3), 4), (rnn.BidirectionalRNN(3, 4, 3), 12), (rnn.GRU(3, 4, 3), 3),
    (rnn.LSTM(3, 4, 3), 3), (rnn.ElmanRNN(3, 4, 3), 4), (rnn.LeakyRNN(3, 4, 3, skip=2), 4),
    (rnn.LeakyRNN(3, 4, 3, skip=2), 12), (rnn.LeakyRNN(3, 4, 3, skip=3), 12)])
def test_the_weights_on_the_edges_of_an_unrolled_view_stand_apart(model, steps):
    """Figure 10.11's x(t) -> g(t) passes h's row and h(t) -> o(t) passes g's, and a skip
    edge h(t-d) -> v(t) runs through the steps between: their weights are written by the
    drawn step they reach (or leave, toward a (...) node), not beside the W, Wg along the rows
    ("UgW", "WgV", "W, WdWd")."""
    svg = viz.render(viz.unrolled(model, steps))
    svg = svg.decode() if isinstance(svg, bytes) else svg
    labels = edge_labels(svg)
    assert {"U", "W", "V"} <= {text for text, *_ in labels}
    assert crowded(labels) == []


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": None}, "steps must be a positive integer, got None"),   # a bare TypeError
    ({"steps": 20, "keep": None}, "keep must be a positive integer, got None"),   # TypeError
    ({"steps": 20, "keep": 2.5}, "keep must be a positive integer, got 2.5"),     # TypeError
    ({"steps": 20, "keep": 0}, "keep must be a positive integer, got 0"),   # drew no step
    ({"steps": 20, "keep": -1}, "keep must be a positive integer, got -1"),
    ({"steps": 20, "keep": True}, "keep must be a positive integer, got True"),
])
def test_unrolled_refuses_steps_and_keep_that_are_not_positive_integers(kwargs, words):
    with pytest.raises(tg.ConfigError, match=r"viz\.unrolled: " + re.escape(words)):
        viz.unrolled(rnn.ElmanRNN(3, 4, 3), **kwargs)


@pytest.mark.parametrize("steps", [0, -5, 2.5, "3", True])
def test_folded_refuses_steps_that_are_not_positive_integers(steps):
    # 0 and -5 drew the folded view of a 1-step trace without a word, "3" was a bare TypeError
    with pytest.raises(tg.ConfigError, match=r"viz\.folded: steps must be a positive integer"):
        viz.folded(rnn.ElmanRNN(3, 4, 3), steps=steps)


def test_unrolled_refuses_time_labels_that_are_not_a_callable():
    # a list of labels was a bare "TypeError: 'list' object is not callable" from inside
    with pytest.raises(tg.DTypeError, match=r"viz\.unrolled: time_labels must be a callable"):
        viz.unrolled(rnn.ElmanRNN(3, 4, 3), time_labels=["a", "b", "c"])

@pytest.mark.parametrize("keep", [None, 2.5, 0, -1, True])
def test_graph_refuses_a_keep_that_is_not_a_positive_integer(keep):
    # None and 2.5 were bare TypeErrors; 0 and -1 drew every step, True one step each side
    loss = rnn.ElmanRNN(3, 4, 3).loss(np.zeros(20, int), np.zeros(20, int))
    with pytest.raises(tg.ConfigError, match=r"viz\.graph: keep must be a positive integer"):
        viz.graph(loss, keep=keep)
