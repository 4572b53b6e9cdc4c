"""Figures 10.13-10.18: each is drawn from a real model and has the structure of the book's."""

import re

import numpy as np
import pytest

import rnn
import viz
from viz.derive import derive, tree_node
from viz_svg import parse

PLOTS = ("10.15", "10.17")
DIAGRAMS = ("10.13", "10.14", "10.16", "10.18")


def _figure(number):
    nodes, edges, clusters = parse(viz.render(viz.figure(number)))
    text = {nid: n["text"] for nid, n in nodes.items()}
    return nodes, edges, clusters, text


def _squares(nodes):
    return {nid for nid, n in nodes.items() if n["fill"] == "black"}


@pytest.mark.parametrize("number", DIAGRAMS + PLOTS)
def test_every_new_figure_renders_the_same_svg_twice(number):
    first = viz.render(viz.figure(number))
    assert first == viz.render(viz.figure(number))
    assert first.lstrip().startswith(b"<?xml") and b"<svg" in first


@pytest.mark.parametrize("number", PLOTS)
def test_plotted_figures_are_written_by_suffix_like_diagrams(number, tmp_path):
    svg = viz.save(viz.figure(number), str(tmp_path / "f.svg"))
    png = viz.save(viz.figure(number), str(tmp_path / "f.png"))
    assert open(svg, "rb").read(200).lstrip().startswith(b"<?xml")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_figure_10_13_draws_the_three_deep_variants_with_their_delays():
    nodes, edges, clusters, text = _figure("10.13")
    assert sorted(clusters.values()) == ["(a)", "(b)", "(c)"]
    squares = _squares(nodes)
    by_panel = {p: {nid for nid in nodes if nid.startswith(p)} for p in "abc"}
    assert len(squares & by_panel["a"]) == 2              # h1 and h2, one delay each
    assert len(squares & by_panel["b"]) == len(squares & by_panel["c"]) == 1

    def out_of_delay(panel):
        return {(text[b], label) for a, b, label in edges if a in squares & by_panel[panel]}
    assert {t for t, _ in out_of_delay("b")} == {"z"}
    assert "h" not in {t for t, _ in out_of_delay("b")}    # (b): h(t-1) reaches h(t) only via z
    assert "h" in {t for t, _ in out_of_delay("c")}        # (c): the skip h(t-1) -> h(t)


def test_figure_10_14_is_a_balanced_tree_of_four_leaves_with_shared_weights():
    nodes, edges, _, text = _figure("10.14")
    leaves = sorted(t for t in text.values() if t.startswith("x"))
    assert leaves == ["x (1)", "x (2)", "x (3)", "x (4)"]
    labels = [label for _, _, label in edges]
    assert labels.count("V") == 4 and labels.count("U") == 3 and labels.count("W") == 3
    assert ("Vo" in labels) and any(text[a] == "y" and text[b] == "L" for a, b, _ in edges)


def test_figure_10_16_gates_the_state_self_loop_by_the_forget_gate_through_a_delay():
    nodes, edges, _, text = _figure("10.16")
    for unit in ("input", "input gate", "forget gate", "output gate", "state self-loop", "output"):
        assert unit in text.values()
    squares = _squares(nodes)
    state = next(nid for nid, t in text.items() if t.startswith("state"))
    (loop,) = [b for a, b, _ in edges if a == state and b in squares]
    (product,) = [b for a, b, _ in edges if a == loop]
    assert text[product] == "×"
    assert any(text.get(a) == "forget gate" and b == product for a, b, _ in edges)
    assert any(a == product and b == state for a, b, _ in edges)


def test_figure_10_18_groups_the_memory_network_and_bolds_the_addressing_arrows():
    source = viz.figure("10.18").source
    _, edges, clusters, text = _figure("10.18")
    assert set(clusters.values()) == {"Memory cells", "Writing mechanism", "Reading mechanism",
                                      "Task network, controlling the memory"}
    named = {(text.get(a), text.get(b)) for a, b, _ in edges}
    for pair in [("ww", "M"), ("erase", "M"), ("add", "M"), ("M", "wr"), ("M", "r"),
                 ("x", "h")]:
        assert pair in named
    assert source.count("penwidth=3") == 5


def test_figure_10_15_curves_turn_more_with_more_compositions():
    fig = viz.figure("10.15")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["0", "1", "2", "3", "4", "5"]
    turns = [int(np.sum(np.diff(np.sign(np.diff(line.get_ydata()))) != 0)) for line in lines]
    assert turns[0] == 0 and turns[5] > turns[1]


def test_figure_10_17_plain_descent_is_thrown_off_the_cliff_and_clipped_descent_is_not():
    fig = viz.figure("10.17")
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "thrown off the plot" in notes[0]
    value = float(re.search(r"J = (\S+)", notes[1]).group(1))
    assert value < 1e-3


def test_tree_depth_is_logarithmic_on_balanced_trees_and_linear_on_a_chain():
    model = rnn.RecursiveNet(2, 3, 2)

    def tanh_depth(root):
        """The longest chain of tanh ops behind root, by an explicit post-order walk."""
        levels = {}
        pending = [(root, False)]
        while pending:
            node, done = pending.pop()
            if id(node) in levels:
                continue
            if done:
                below = max((levels[id(p)] for p in node.parents), default=0)
                levels[id(node)] = below + (node.op == "tanh")
                continue
            pending.append((node, True))
            pending.extend((p, False) for p in node.parents if id(p) not in levels)
        return levels[id(root)]

    for leaves in (4, 8, 16, 64, 100):
        tree = rnn.balanced_tree([i % 2 for i in range(leaves)])
        assert tanh_depth(model.loss(tree, 1)) == int(np.ceil(np.log2(leaves)))
    chain = 0
    for _ in range(63):
        chain = (chain, 1)
    assert tanh_depth(model.loss(chain, 1)) == 63


def test_tree_view_of_a_big_tree_keeps_the_top_levels_and_boxes_the_rest():
    model = rnn.RecursiveNet(2, 3, 2)
    g = viz.unrolled(model, steps=1000)
    assert "leaves ..." in g.source and g.source.count("x<") == 0
    variables = derive(model.trace(8), position=tree_node)
    assert sum(1 for name, _ in variables.keys if name == "h") == 15


def test_tinygraph_figures_writes_all_the_figures_up_to_10_18(tmp_path):
    from viz import cli
    assert cli.main(["figures", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    for number in viz.FIGURES:
        assert f"fig{number.replace('.', '_')}.svg" in written
    assert "fig10_18.svg" in written


@pytest.mark.parametrize("model", ["deep", "recursive", "leaky", "esn", "memory"])
def test_tinygraph_draw_draws_the_new_designs(model, tmp_path):
    from viz import cli
    assert cli.main(["draw", "--model", model, "--steps", "4", "--out", str(tmp_path)]) == 0
    for stem in ("folded", "unrolled", "ops"):
        nodes, edges, _ = parse(open(tmp_path / f"{model}_{stem}.svg", "rb").read())
        assert nodes and edges


@pytest.mark.parametrize("task", ["parity", "recall", "signal", "assoc"])
def test_tinygraph_train_runs_the_tasks_of_sections_10_5_to_10_12(task, tmp_path, capsys):
    from viz import cli
    assert cli.main(["train", "--task", task, "--steps", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{task}_checkpoint.npz").is_file()
    assert (tmp_path / f"{task}_folded.svg").is_file()
    assert "held-out loss" in capsys.readouterr().out
