"""The gradient-flow chart (viz.plots.gradient_flow) stays a bar per step for short
sequences and becomes one filled outline for long ones, so a 10,000-step profile is
drawn in well under a second instead of as 10,000 patches."""

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
