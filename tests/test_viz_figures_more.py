"""Figures 10.13-10.18: each is drawn from a real model and has the structure of the book's."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import rnn
import viz
from viz.derive import derive, tree_node
from viz_svg import parse

_SVG = "{http://www.w3.org/2000/svg}"

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
    assert len(squares & by_panel["a"]) == 2              # h and z, one delay each
    assert len(squares & by_panel["b"]) == 1
    assert {label for _, _, label in edges} == {""}        # no weight names, as in the book
    assert sorted(text[n] for n in by_panel["a"] - squares) == ["h", "x", "y", "z"]


def _delay_loops(edges, text, squares, panel):
    """(text of the node feeding the square, text of the node the square feeds) per delay."""
    into = {b: text[a] for a, b, _ in edges if b in squares and b.startswith(panel)}
    return sorted((into[sq], text[b]) for sq in into for a, b, _ in edges if a == sq)


def test_figure_10_13_b_puts_its_mlp_node_before_the_delay_of_the_h_loop():
    nodes, edges, _, text = _figure("10.13")
    assert _delay_loops(edges, text, _squares(nodes), "b") == [("", "h")]   # h -> • -> ■ -> h
    dots = [nid for nid in nodes if nid.startswith("b") and text[nid] == "" and
            nid not in _squares(nodes)]
    assert len(dots) == 3                                  # one MLP node per block


def test_figure_10_13_c_gives_the_skip_loop_its_own_delay_square():
    nodes, edges, _, text = _figure("10.13")
    squares = _squares(nodes)
    assert len(squares & {nid for nid in nodes if nid.startswith("c")}) == 2
    assert _delay_loops(edges, text, squares, "c") == [("", "h"), ("h", "h")]


def test_figure_10_14_is_a_balanced_tree_of_four_leaves_with_shared_weights():
    nodes, edges, _, text = _figure("10.14")
    leaves = sorted(t for t in text.values() if t.startswith("x"))
    assert leaves == ["x (1)", "x (2)", "x (3)", "x (4)"]
    labels = [label for _, _, label in edges]
    assert labels.count("V") == 4 and labels.count("U") == 3 and labels.count("W") == 3
    assert any(text[a] == "y" and text[b] == "L" for a, b, _ in edges)


def test_figure_10_14_merges_the_two_parents_into_the_root_o_with_no_extra_root():
    nodes, edges, _, text = _figure("10.14")
    (root,) = [nid for nid, t in text.items() if t == "o"]
    into_root = sorted((text[a], label) for a, b, label in edges if b == root)
    assert into_root == [("", "U"), ("", "W")]
    assert [text[b] for a, b, _ in edges if a == root] == ["L"]
    assert sum(t == "" for t in text.values()) == 6          # 4 leaf nodes and 2 parents


def _by_text(text):
    return {t: nid for nid, t in text.items()}


def test_figure_10_16_has_the_three_products_of_the_lstm_cell():
    nodes, edges, _, text = _figure("10.16")
    ids = _by_text({nid: t for nid, t in text.items() if t != "×"})
    squares = _squares(nodes)
    products = {nid for nid, t in text.items() if t == "×"}
    assert len(products) == 3

    def product_of(*names):
        """The one × node fed by every one of ``names`` (node ids)."""
        (p,) = [p for p in products if all((n, p) in {(a, b) for a, b, _ in edges} for n in names)]
        return p
    pairs = {(a, b) for a, b, _ in edges}
    (loop,) = squares
    first = product_of(ids["input"], ids["input gate"])
    second = product_of(loop, ids["forget gate"])
    third = product_of(ids["state"], ids["output gate"])
    assert len({first, second, third}) == 3
    assert {(first, ids["state"]), (second, ids["state"]), (ids["state"], loop),
            (third, ids["output"])} <= pairs
    assert [b for a, b in pairs if a == ids["output gate"]] == [third]


def test_figure_10_16_gates_sit_in_one_row_fed_by_x_and_the_previous_h_from_below():
    nodes, edges, _, text = _figure("10.16")
    ids = _by_text({nid: t for nid, t in text.items() if t != "×"})
    units = ("input", "input gate", "forget gate", "output gate")
    rows = {round(nodes[ids[u]]["y"], 1) for u in units}
    assert len(rows) == 1
    pairs = {(a, b) for a, b, _ in edges}
    for unit in units:
        for source in ("x (t)", "h (t-1)"):
            assert (ids[source], ids[unit]) in pairs
            assert nodes[ids[source]]["y"] > nodes[ids[unit]]["y"]     # below (SVG y grows down)


def test_figure_10_16_labels_the_state_edge_into_the_delay_self_loop():
    nodes, edges, _, text = _figure("10.16")
    (loop,) = _squares(nodes)
    assert [(text[a], b) for a, b, label in edges if label == "self-loop"] == [("state", loop)]


def _node_boxes(svg):
    """Node id -> (x0, y0, x1, y1) of its outline polygon."""
    boxes = {}
    for g in ET.fromstring(svg).iter(f"{_SVG}g"):
        poly = g.find(f"{_SVG}polygon")
        if g.get("class") == "node" and poly is not None:
            pts = [tuple(map(float, p.split(","))) for p in poly.get("points").split()]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            boxes[g.findtext(f"{_SVG}title")] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


def _edge_points(svg, samples=24):
    """Points along every drawn edge (its cubic Bezier pieces sampled)."""
    out = []
    for g in ET.fromstring(svg).iter(f"{_SVG}g"):
        path = g.find(f"{_SVG}path")
        if g.get("class") != "edge" or path is None:
            continue
        pts = np.array([tuple(map(float, p.split(","))) for p in
                        path.get("d").replace("M", " ").replace("C", " ").split()])
        for i in range(0, len(pts) - 3, 3):
            p0, p1, p2, p3 = pts[i:i + 4]
            for u in np.linspace(0.0, 1.0, samples):
                out.append((1 - u) ** 3 * p0 + 3 * (1 - u) ** 2 * u * p1
                           + 3 * (1 - u) * u ** 2 * p2 + u ** 3 * p3)
    return out


def test_figure_10_18_groups_the_memory_network_with_labels_no_edge_crosses():
    svg = viz.render(viz.figure("10.18"))
    nodes, edges, clusters, text = parse(svg) + ({},)
    text = {nid: n["text"] for nid, n in nodes.items()}
    labels = {"Memory cells", "Writing mechanism", "Reading mechanism",
              "Task network, controlling the memory"}
    assert labels <= set(text.values())
    boxes = _node_boxes(svg)
    points = _edge_points(svg)
    for nid, t in text.items():
        if t in labels:
            x0, y0, x1, y1 = boxes[nid]
            assert not [p for p in points if x0 < p[0] < x1 and y0 < p[1] < y1], t
    named = {(text.get(a.split(":")[0]), text.get(b.split(":")[0])) for a, b, _ in edges}
    for pair in [("ww", "       "), ("erase", "       "), ("add", "       "), ("       ", "wr"),
                 ("       ", "r"), ("x", "h")]:
        assert pair in named


def test_figure_10_18_draws_the_memory_as_a_row_of_cells_at_the_top():
    source = viz.figure("10.18").source
    nodes, _, _ = parse(viz.render(viz.figure("10.18")))
    assert source.count('<td port="c') == 4                 # slots=4 cells in one table row
    top = {"M", "d_M", "memory_label"}                       # the memory row and its delay
    below = min(n["y"] for nid, n in nodes.items() if nid not in top)
    assert all(nodes[nid]["y"] < below - 30 for nid in top)  # SVG y grows down


def test_figure_10_18_bolds_the_arrows_at_the_most_weighted_cells_of_each_address():
    model = rnn.MemoryNetwork(4, 3, 4, slots=4, width=3, seed=0)
    variables = derive(model.trace(3), hide=("a",))
    _, edges, _ = parse(viz.render(viz.figure("10.18")))
    source = viz.figure("10.18").source
    for name, other in (("ww", "ww -> M:c{}"), ("wr", "r -> M:c{}")):
        cell = int(np.argmax(variables.nodes[(name, 2)].data))
        assert re.search(re.escape(other.format(cell)) + r':s \[[^]]*penwidth=3\.00', source)
        assert source.count(other.format("")) == 4           # an arrow at every cell


def test_figure_10_15_curves_turn_more_with_more_compositions():
    fig = viz.figure("10.15")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["0", "1", "2", "3", "4", "5"]
    turns = [int(np.sum(np.diff(np.sign(np.diff(line.get_ydata()))) != 0)) for line in lines]
    assert turns[0] == 0 and turns[5] > turns[1]


def test_figure_10_17_plain_descent_is_thrown_off_the_cliff_and_clipped_descent_is_not():
    fig = viz.figure("10.17")
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "throws it off the plot" in notes[0]
    value = float(re.search(r"J = (\S+)", notes[1]).group(1))
    assert value < 1e-3


def test_figure_10_17_names_the_step_thrown_off_and_the_point_it_started_from():
    """The note said 'step 5 lands on the cliff and is thrown off': step 5 is the update that
    leaves the plot (path[5]); it was step 4 that landed on the cliff, where step 5 started
    with a gradient dozens of times the earlier ones'."""
    import viz.figures as figures
    seen = []
    real = figures.plots.cliff

    def spy(w, b, surface, paths, **kwargs):
        seen.append((w, b, paths))
        return real(w, b, surface, paths, **kwargs)
    figures.plots.cliff = spy
    try:
        fig = figures.FIGURES["10.17"]()
    finally:
        figures.plots.cliff = real
    (w, b, (plain, _)), = seen
    note = fig.axes[0].texts[0].get_text()
    k = int(re.match(r"step (\d+), ", note).group(1))
    off = (plain[:, 0] < w[0]) | (plain[:, 0] > w[-1]) | (plain[:, 1] < b[0]) | (plain[:, 1] > b[-1])
    assert k == np.flatnonzero(off)[0]
    assert f"from the cliff at (w, b) = ({plain[k - 1, 0]:.2f}, {plain[k - 1, 1]:.2f})" in note
    assert f"to ({plain[k, 0]:.2f}, {plain[k, 1]:.2f})" in note
    sizes = np.linalg.norm(np.diff(plain[:k + 1, :2], axis=0), axis=1)
    assert sizes[-1] > 20 * sizes[:-1].max()        # the step from there is the cliff's


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
