"""The chapter's ten figures: each renders, and each has the structure of the book's figure."""

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

import tinygraph as tg
import viz
from viz_layout import _points, plain
from viz_svg import parse

_SVG = "{http://www.w3.org/2000/svg}"


def _figure(number):
    nodes, edges, clusters = parse(viz.render(viz.figure(number)))
    text = {nid: n["text"] for nid, n in nodes.items()}
    labelled = {(text[a], text[b], label) for a, b, label in edges}
    return nodes, edges, clusters, labelled


def _squares(nodes):
    return [nid for nid, n in nodes.items() if n["fill"] == "black"]


PLOTTED = ("10.15", "10.17")      # matplotlib plots, tested in test_viz_figures_more.py


@pytest.mark.parametrize("number", [n for n in viz.FIGURES if n not in PLOTTED])
def test_every_figure_renders_the_same_svg_twice(number):
    first = viz.render(viz.figure(number))
    assert first == viz.render(viz.figure(number))
    nodes, edges, _ = parse(first)
    assert nodes and edges


def test_figure_10_1_is_the_unfolded_dynamical_system_with_edges_f():
    nodes, edges, _, labelled = _figure("10.1")
    assert ("s (t-1)", "s (t)", "f") in labelled and ("s (t)", "s (t+1)", "f") in labelled
    assert ("s (...)", "s (t-1)", "f") in labelled and ("s (t+1)", "s (...)", "f") in labelled
    assert {label for _, _, label in edges} == {"f"}


def test_figure_10_2_has_a_circuit_with_a_delay_and_its_unfolding():
    nodes, edges, _, labelled = _figure("10.2")
    (square,) = _squares(nodes)
    h = next(nid for nid, n in nodes.items() if n["text"] == "h")
    assert (h, square, "f") in edges and (square, h, "") in edges
    assert ("x (t)", "h (t)", "") in labelled and ("h (t-1)", "h (t)", "f") in labelled


def test_figure_10_3_has_U_V_W_and_the_loss_against_the_target():
    nodes, edges, _, labelled = _figure("10.3")
    assert len(_squares(nodes)) == 1
    for expected in [("x", "h", "U"), ("h", "o", "V"), ("o", "L", ""),
                     ("x (t)", "h (t)", "U"), ("h (t-1)", "h (t)", "W"), ("h (t)", "o (t)", "V")]:
        assert expected in labelled
    assert ("y (t)", "L (t)", "") in labelled
    assert {label for _, _, label in edges} == {"U", "V", "W", ""}


@pytest.mark.parametrize("number", ["10.2", "10.3", "10.4"])
def test_circuit_figures_put_an_unfold_arrow_between_the_circuit_and_its_unfolding(number):
    nodes, _, clusters, _ = _figure(number)
    unfold = [n for n in nodes.values() if n["text"] == "Unfold"]
    assert len(unfold) == 1
    circuit = [n["x"] for nid, n in nodes.items() if nid.startswith("f")]
    unrolled = [n["x"] for nid, n in nodes.items() if nid.startswith("u") and nid != "unfold"]
    assert max(circuit) < unfold[0]["x"] < min(unrolled)


def test_figure_10_4_recurrence_runs_from_the_output_through_the_delay_to_the_hidden_units():
    nodes, edges, _, labelled = _figure("10.4")
    (square,) = _squares(nodes)
    text = {nid: n["text"] for nid, n in nodes.items()}
    assert [(text[a], label) for a, b, label in edges if b == square] == [("o", "W")]
    assert [text[b] for a, b, _ in edges if a == square] == ["h"]
    assert ("o (t-1)", "h (t)", "W") in labelled
    assert not any(a.startswith("h (") and b.startswith("h (") for a, b, _ in labelled)


def test_figure_10_4_draws_the_books_four_diagonals_from_o_dots_to_h_dots():
    nodes, _, _, labelled = _figure("10.4")
    diagonals = {(a, b) for a, b, label in labelled if a.startswith("o (") and label == "W"}
    assert diagonals == {("o (...)", "h (t-1)"), ("o (t-1)", "h (t)"), ("o (t)", "h (t+1)"),
                         ("o (t+1)", "h (...)")}
    assert sorted(n["text"] for n in nodes.values() if "(...)" in n["text"]) == ["h (...)",
                                                                                  "o (...)"]


def test_figure_10_4s_first_diagonal_comes_into_h_from_the_left_clear_of_v():
    """o(...) -W-> h(t-1) ran round the right of h(t-1) -V-> o(t-1), crossing it, "W" written
    beside "V" (read "V W"): every point of it now stands left of h(t-1), as the book draws it."""
    digraph = viz.figure("10.4")
    nodes, edges = plain(digraph)
    (h,) = [nid for nid in nodes if re.search(rf"^\s*{nid} \[.*>h<.*>\(t-1\)<", digraph.source,
                                              re.M)]
    (spline,) = [s for a, b, s in edges if (a, b) in {("u_o_start", h), (h, "u_o_start")}]
    assert max(x for x, _ in spline) <= nodes[h][0]


def test_figure_10_5_has_a_single_output_and_loss_at_the_end():
    nodes, _, _, labelled = _figure("10.5")
    texts = sorted(n["text"] for n in nodes.values())
    assert [t for t in texts if t.startswith(("o", "L", "y"))] == ["L (τ)", "o (τ)", "y (τ)"]
    assert ("h (...)", "h (τ)", "W") in labelled and ("h (τ)", "o (τ)", "V") in labelled


def test_figure_10_5_numbers_its_steps_t_minus_1_t_dots_tau_as_the_book():
    nodes, _, _, labelled = _figure("10.5")
    assert sorted(n["text"] for n in nodes.values() if n["text"].startswith("x")) == [
        "x (...)", "x (t)", "x (t-1)", "x (τ)"]
    chain = [(a, b) for a, b, label in labelled if a.startswith("h") and b.startswith("h")]
    assert sorted(chain) == sorted([("h (...)", "h (t-1)"), ("h (t-1)", "h (t)"),
                                    ("h (t)", "h (...)"), ("h (...)", "h (τ)")])
    assert [b for a, b, _ in labelled if a == "h (τ)"] == ["o (τ)"]     # the chain ends at τ


def test_figure_10_6_shows_teacher_forcing_at_train_time_beside_free_running_at_test_time():
    nodes, edges, clusters, _ = _figure("10.6")
    assert sorted(clusters.values()) == ["Test time", "Train time"]
    text = {nid: n["text"] for nid, n in nodes.items()}
    train = {(text[a], text[b], label) for a, b, label in edges if a.startswith("train")}
    test = {(text[a], text[b], label) for a, b, label in edges if a.startswith("test")}
    assert ("y (t-1)", "h (t)", "W") in train and not any(a.startswith("o") and b.startswith("h")
                                                          for a, b, _ in train)
    assert ("o (t-1)", "h (t)", "W") in test
    assert not any(t.startswith(("y", "L")) for nid, t in text.items() if nid.startswith("test"))


def test_figure_10_7_connects_every_earlier_y_to_every_later_y_in_15_arcs():
    nodes, _, _, labelled = _figure("10.7")
    order = [f"y ({t})" for t in range(1, 6)] + ["y (...)"]
    assert sorted(n["text"] for n in nodes.values()) == sorted(order)
    pairs = [(a, b) for a, b, _ in labelled]
    assert sorted(pairs) == sorted(itertools.combinations(order, 2)) and len(pairs) == 15


def _arcs(svg):
    """(length in steps, side, reach) of each edge of figure 10.7: the side of the row it runs on
    (1 above, -1 below) and how far its curve gets from the row's centre line (points)."""
    nodes, _, _ = parse(svg)
    row = sum(n["y"] for n in nodes.values()) / len(nodes)
    order = [f"y ({t})" for t in range(1, 6)] + ["y (...)"]
    step = {nid: order.index(n["text"]) for nid, n in nodes.items()}
    out = []
    for g in ET.fromstring(svg).iter(f"{_SVG}g"):
        if g.get("class") != "edge":
            continue
        tail, head = (end.split(":")[0] for end in g.findtext(f"{_SVG}title").split("->"))
        d = g.find(f"{_SVG}path").get("d").replace("M", "").replace("C", " ").split()
        offsets = [row - y for _, y in _points([tuple(map(float, p.split(","))) for p in d])]
        far = max(offsets, key=abs)             # (SVG's y grows downwards)
        out.append((step[head] - step[tail], 1 if far > 0 else -1, abs(far)))
    return out


def test_figure_10_7_stacks_its_arcs_by_length_on_both_sides_of_the_row():
    """The ten arcs over two steps or more all ran in one band under the row, reaching 50.8,
    59.9, 57.1 and 61.6 points below it for 2, 3, 4 and 5 steps (those over 4 steps inside
    those over 3): they now run on both sides, and on each side a longer arc reaches at least
    a quarter inch (18 points) farther than a shorter one."""
    arcs = _arcs(viz.render(viz.figure("10.7")))
    assert sorted(k for k, _, _ in arcs) == [1] * 5 + [2] * 4 + [3] * 3 + [4] * 2 + [5]
    assert all(reach < 1 for k, _, reach in arcs if k == 1)        # the row itself is straight
    long = [arc for arc in arcs if arc[0] > 1]
    assert {side for _, side, _ in long} == {1, -1}
    for side in (1, -1):
        reach = {}
        for k, s, r in long:
            if s == side:
                reach.setdefault(k, []).append(r)
        lengths = sorted(reach)
        assert all(max(reach[a]) + 18 <= min(reach[b]) for a, b in zip(lengths, lengths[1:])), reach


def test_figure_10_8_routes_the_dependencies_through_the_state_chain_to_h_and_y_dots():
    nodes, _, _, labelled = _figure("10.8")
    pairs = {(a, b) for a, b, _ in labelled}
    steps = [str(t) for t in range(1, 6)] + ["..."]
    chain = {(f"h ({s})", f"h ({t})") for s, t in zip(steps, steps[1:])}
    emit = {(f"h ({t})", f"y ({t})") for t in steps}
    assert pairs == chain | emit
    assert len(nodes) == 12


def test_figure_10_9_feeds_the_fixed_vector_x_to_every_step_through_R():
    nodes, _, _, labelled = _figure("10.9")
    assert sum(n["text"] == "x" for n in nodes.values()) == 1
    assert {(a, b) for a, b, label in labelled if label == "R"} == {
        ("x", "h (t-1)"), ("x", "h (t)"), ("x", "h (t+1)")}


def test_figure_10_9_indexes_y_as_the_book_input_of_step_k_and_target_of_step_k_minus_1():
    nodes, _, _, labelled = _figure("10.9")
    into_h = {(a, b) for a, b, label in labelled if a.startswith("y") and label == "U"}
    assert into_h == {("y (t-1)", "h (t-1)"), ("y (t)", "h (t)"), ("y (t+1)", "h (t+1)")}
    into_loss = {(a, b) for a, b, _ in labelled if a.startswith("y") and b.startswith("L")}
    assert into_loss == {("y (t)", "L (t-1)"), ("y (t+1)", "L (t)"), ("y (...)", "L (t+1)")}
    assert sorted(n["text"] for n in nodes.values() if n["text"].startswith("y")) == [
        "y (...)", "y (t)", "y (t+1)", "y (t-1)"]
    chain = {(a, b) for a, b, label in labelled if label == "W"}
    assert chain == {("h (...)", "h (t-1)"), ("h (t-1)", "h (t)"), ("h (t)", "h (t+1)"),
                     ("h (t+1)", "h (...)")}


def test_figure_10_10_feeds_the_previous_target_through_R_and_the_input_through_U():
    _, _, _, labelled = _figure("10.10")
    assert ("y (t-1)", "h (t)", "R") in labelled
    assert ("x (t)", "h (t)", "U") in labelled
    assert ("h (t-1)", "h (t)", "W") in labelled


def test_figure_10_10_has_the_books_three_feedback_edges_and_no_y_before_y_t_minus_1():
    nodes, _, _, labelled = _figure("10.10")
    assert {(a, b) for a, b, label in labelled if label == "R"} == {
        ("y (t-1)", "h (t)"), ("y (t)", "h (t+1)"), ("y (t+1)", "h (...)")}
    assert sorted(n["text"] for n in nodes.values() if n["text"].startswith("y")) == [
        "y (t)", "y (t+1)", "y (t-1)"]


def test_figures_are_drawn_even_inside_no_grad():
    with tg.no_grad():
        inside = viz.figure("10.6").source
    assert inside == viz.figure("10.6").source


@pytest.mark.parametrize("number", ["10.19", "9.1", ""])
def test_unknown_figure_is_a_clear_error(number):
    with pytest.raises(tg.ConfigError, match="10.1, 10.2"):
        viz.figure(number)


def test_the_float_10_1_is_refused_as_it_is_also_10_10():
    with pytest.raises(tg.ConfigError, match="'10.1' or '10.10'"):
        viz.figure(10.10)       # was figure 10.1 without a word
    assert viz.figure(10.3).source == viz.figure("10.3").source


def test_figure_10_11_runs_h_to_the_right_and_g_to_the_left_in_rows_x_h_g_o_L_y():
    nodes, edges, _, labelled = _figure("10.11")
    at = {n["text"]: (n["x"], n["y"]) for n in nodes.values()}
    pairs = {(a, b) for a, b, _ in labelled}
    assert {label for _, _, label in edges} == {""}                 # no weight labels
    assert {("h (t-1)", "h (t)"), ("h (t)", "h (t+1)")} <= pairs
    assert {("g (t+1)", "g (t)"), ("g (t)", "g (t-1)")} <= pairs      # arrowheads point left
    assert not {("g (t-1)", "g (t)"), ("g (t)", "g (t+1)")} & pairs
    for k in ("t-1", "t", "t+1"):
        assert {(f"x ({k})", f"h ({k})"), (f"x ({k})", f"g ({k})"), (f"h ({k})", f"o ({k})"),
                (f"g ({k})", f"o ({k})"), (f"o ({k})", f"L ({k})"), (f"y ({k})", f"L ({k})")} <= pairs
        heights = [at[f"{name} ({k})"][1] for name in ("x", "h", "g", "o", "L", "y")]
        assert heights == sorted(heights, reverse=True)              # bottom to top (SVG y grows down)
    for name in ("h", "g"):
        assert at[f"{name} (t-1)"][0] < at[f"{name} (t)"][0] < at[f"{name} (t+1)"][0]


def test_figure_10_11_stacks_x_h_g_and_o_of_a_step_in_one_column():
    nodes, _, _, _ = _figure("10.11")
    at = {n["text"]: n["x"] for n in nodes.values()}
    for k in ("t-1", "t", "t+1"):
        column = [at[f"{name} ({k})"] for name in ("x", "h", "g", "o", "L", "y")]
        assert max(column) - min(column) < 1.0, (k, column)


def test_figure_10_12_fans_the_context_out_from_the_encoder_to_every_decoder_step():
    nodes, edges, clusters, labelled = _figure("10.12")
    assert sorted(clusters.values()) == ["Decoder", "Encoder"]
    (c,) = [nid for nid, n in nodes.items() if n["text"] == "C"]
    into_c = [a for a, b, _ in edges if b == c]
    out_of_c = [b for a, b, _ in edges if a == c]
    assert len(into_c) == 1 and into_c[0].startswith("e") and nodes[into_c[0]]["text"] == ""
    assert len(out_of_c) == 4 and all(b.startswith("d") and nodes[b]["text"] == "" for b in out_of_c)
    texts = sorted(n["text"] for n in nodes.values() if n["text"])
    assert texts == sorted(["C", "x (1)", "x (2)", "x (...)", "x (n x )",
                            "y (1)", "y (2)", "y (...)", "y (n y )"])
    encoder = [n["y"] for nid, n in nodes.items() if nid.startswith("e")]
    decoder = [n["y"] for nid, n in nodes.items() if nid.startswith("d")]
    assert min(encoder) > nodes[c]["y"] > max(decoder)               # encoder below C below decoder
    assert {label for _, _, label in edges} == {""}
    assert not any(a.startswith("d") and nodes[a]["text"].startswith("y") for a, _, _ in edges)


def test_figure_10_12_writes_n_x_and_n_y_with_subscripts_not_underscores():
    svg = viz.render(viz.figure("10.12"))
    assert b"n_x" not in svg and b"n_y" not in svg
    root = ET.fromstring(svg)
    texts = [(t.text, float(t.get("y")), float(t.get("font-size"))) for t in root.iter(f"{_SVG}text")]
    for sub in ("x", "y"):
        i = next(i for i, t in enumerate(texts) if t[0] == "(n" and texts[i + 1][0] == sub)
        (_, n_y, n_size), (_, sub_y, sub_size) = texts[i], texts[i + 1]
        assert sub_size < n_size and sub_y > n_y       # smaller, and lower (SVG y grows down)


def _cluster_label_heights(svg):
    """Cluster title -> (y of its label text, y of its box's top and bottom edges)."""
    out = {}
    for g in ET.fromstring(svg).iter(f"{_SVG}g"):
        if g.get("class") == "cluster":
            ys = [float(p.split(",")[1]) for p in g.find(f"{_SVG}polygon").get("points").split()]
            out[g.findtext(f"{_SVG}title")] = (float(g.find(f"{_SVG}text").get("y")), min(ys), max(ys))
    return out


@pytest.mark.parametrize("number", ["10.6", "10.13"])
def test_panel_captions_sit_under_their_panels_as_in_the_book(number):
    for text_y, top, bottom in _cluster_label_heights(viz.render(viz.figure(number))).values():
        assert text_y > (top + bottom) / 2                  # the lower half (SVG y grows down)


@pytest.mark.parametrize("number", ["10.1", "10.3", "10.5", "10.9", "10.10", "10.11"])
def test_unfolded_figures_draw_no_step_boxes_as_in_the_book(number):
    _, _, clusters, _ = _figure(number)
    assert not [label for label in clusters.values() if label.strip()]
