"""The gradient-flow chart (viz.plots.gradient_flow) stays a bar per step for short
sequences and becomes one filled outline for long ones, so a 10,000-step profile is
drawn in well under a second instead of as 10,000 patches; a step whose norm a log axis cannot
draw (NaN, infinite, exactly 0) is marked at that step and named in the legend, never left blank."""

import re

import numpy as np
import pytest

from viz import plots


def _patches(tmp_path, steps):
    path = plots.gradient_flow(np.linspace(1.0, 2.0, steps), str(tmp_path / f"flow{steps}.svg"))
    with open(path) as f:
        return f.read().count('id="patch_')


def test_short_gradient_flow_profile_draws_one_bar_per_step(tmp_path):
    assert _patches(tmp_path, 12) - _patches(tmp_path, 11) == 1


def test_long_gradient_flow_profile_is_one_shape_whatever_its_length(tmp_path):
    long = plots.MAX_BARS + 1
    assert _patches(tmp_path, long) == _patches(tmp_path, 20 * long)
    assert _patches(tmp_path, long) < _patches(tmp_path, 12)


def test_plotting_leaves_matplotlib_settings_as_it_found_them(tmp_path):
    import matplotlib
    backend, salt = matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"]
    plots.loss_curve([1, 2, 3], [3.0, 2.0, 1.5], str(tmp_path / "loss.svg"))
    plots.gradient_flow([1.0, 0.5, 0.1], str(tmp_path / "flow.png"))
    assert (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"]) == (backend, salt)
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def _x_ticks(path):
    """The labels of a chart's x-axis ticks, read from the comments matplotlib writes in its SVG."""
    with open(path) as f:
        svg = f.read()
    return [re.search(r"<!-- (.*?) -->", block).group(1)
            for block in re.split(r'<g id="xtick_\d+">', svg)[1:]]


@pytest.mark.parametrize("steps", [4, 6, 12])
def test_gradient_flow_ticks_only_whole_time_steps(tmp_path, steps):
    ticks = _x_ticks(plots.gradient_flow(np.linspace(1.0, 2.0, steps), str(tmp_path / "flow.svg")))
    assert ticks and all(re.fullmatch(r"−?\d+", t) for t in ticks), ticks


def test_loss_and_recall_panels_tick_only_whole_training_steps(tmp_path):
    series = {"a": ([0, 1, 2, 3], [1.0, 0.5, 0.4, 0.3], [0.9, 0.4, 0.3, 0.2], [1.1, 0.6, 0.5, 0.4])}
    path = plots.panels([{"series": series, "title": "loss", "ylabel": "loss"},
                         {"series": series, "title": "recall", "ylabel": "recall", "percent": True,
                          "reference": ("chance (50%)", 0.5)}], str(tmp_path / "p.svg"))
    ticks = _x_ticks(path)
    assert ticks and all(re.fullmatch(r"−?\d+", t) for t in ticks), ticks
    assert "<!-- chance (50%) -->" in open(path).read()


def _marks(fig):
    """{legend text: the steps t it marks} of a gradient-flow figure's markers."""
    (ax,) = fig.axes
    return {line.get_label(): line.get_xdata().tolist() for line in ax.get_lines()}


@pytest.mark.parametrize("steps", [7, plots.MAX_BARS + 7])
def test_non_finite_and_zero_norms_are_marked_at_their_steps_not_left_blank(tmp_path, steps):
    """Norms NaN at t = 2, inf at t = 4 (a gradient that overflowed) and 0 at t = 6 were three
    blank steps, like steps with no bar at all; each is marked at its step and named in the
    legend with its count, the finite norms drawn as before."""
    norms = np.linspace(0.5, 2.0, steps)
    norms[[1, 3, 5]] = [np.nan, np.inf, 0.0]
    with open(plots.gradient_flow(norms, str(tmp_path / "flow.svg"))) as f:
        svg = f.read()
    assert "<!-- NaN or infinite (2 steps) -->" in svg and "<!-- exactly 0 (1 step) -->" in svg
    fig = plots.gradient_flow_figure(norms)
    assert _marks(fig) == {"NaN or infinite (2 steps)": [2.0, 4.0], "exactly 0 (1 step)": [6.0]}
    assert fig.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == \
        ["NaN or infinite (2 steps)", "exactly 0 (1 step)"]


def test_finite_positive_norms_have_no_marks_and_no_legend():
    fig = plots.gradient_flow_figure([1.0, 0.5, 0.1])
    assert _marks(fig) == {} and fig.axes[0].get_legend() is None


def test_the_pairs_of_gradient_norms_are_drawn_at_their_own_steps(tmp_path):
    """viz.opgraph.gradient_norms returns (t, norm) pairs; given to gradient_flow they were a
    bare matplotlib "shape mismatch" error.  Each bar stands at its own t (here 3, 4, 6)."""
    plots.gradient_flow([(3, 0.5), (4, 0.25), (6, 0.0)], str(tmp_path / "flow.svg"))
    fig = plots.gradient_flow_figure([(3, 0.5), (4, 0.25), (6, 0.0)])
    bars = fig.axes[0].patches
    assert [b.get_x() + b.get_width() / 2 for b in bars] == pytest.approx([3, 4, 6])
    assert [b.get_height() for b in bars[:2]] == pytest.approx([0.5, 0.25])
    assert _marks(fig) == {"exactly 0 (1 step)": [6.0]}


@pytest.mark.parametrize("bad, error, words", [
    (np.ones((4, 3)), "ShapeError", "got shape (4, 3)"),
    ([(1.5, 0.5), (2, 0.1)], "ShapeError", "whole steps t"),
    (["a", "b"], "DTypeError", "norms must be numbers")])
def test_norms_of_another_shape_are_refused_naming_the_function(tmp_path, bad, error, words):
    import tinygraph as tg
    with pytest.raises(getattr(tg, error), match=r"viz.plots.gradient_flow: ") as caught:
        plots.gradient_flow(bad, str(tmp_path / "flow.svg"))
    assert words in str(caught.value)
    assert not (tmp_path / "flow.svg").exists()


def test_steady_ids_cover_path_collection_ids_of_hex_counters():
    # matplotlib names a path collection's defs 'C{collection:x}_{path:x}_' + 10 hex digits of a
    # randomly salted hash: from the 11th collection (or path) on the counters have hex letters
    def drawing(salt):      # salt: 6 hex digits, then 4 of the counters: 10 in all
        ids = [f"C{c:x}_{i:x}_{salt}{c:02x}{i:02x}" for c, i in ((0, 0), (10, 0), (3, 11))]
        return "".join(f'<path id="{d}"/><use xlink:href="#{d}"/>' for d in ids).encode()
    one, two = plots._steady_ids(drawing("abcdef")), plots._steady_ids(drawing("987654"))
    assert one == two
    assert b"abcdef" not in one and one.count(b'id="') == 3
