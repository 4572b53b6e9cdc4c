"""The gradient-flow chart (viz.plots.gradient_flow) stays a bar per step for short
sequences and becomes one filled outline for long ones, so a 10,000-step profile is
drawn in well under a second instead of as 10,000 patches."""

import numpy as np

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
