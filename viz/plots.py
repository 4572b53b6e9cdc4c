"""Charts made with matplotlib, written as SVG: the training loss curve and the
gradient-flow profile ‖∂L/∂h(t)‖ per time step (vanishing and exploding
gradients made visible).
"""

import os

import numpy as np

from tinygraph.files import atomic_write

from .render import OutputPathError

MAX_BARS = 300   # a longer gradient-flow profile is drawn as one filled step outline


def new_figure(figsize=(6, 3.5)):
    """A matplotlib Figure and its axes, made without pyplot: no backend is switched and no
    global figure registry or rcParams is touched (the library leaves the process as it found it)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _finish(fig, path):
    import matplotlib
    with matplotlib.rc_context({"svg.hashsalt": "tinygraph"}):   # the same SVG on every run
        with atomic_write(path, "viz.plots", OutputPathError, make_folder=True) as f:
            fig.savefig(f, format=os.path.splitext(path)[1][1:] or "svg", metadata={"Date": None})
    return path


def loss_curve(steps, losses, path, reference=None, title="Training loss", held_out=None):
    """Plot loss against training step and write it to ``path`` (SVG or PNG by suffix).

    Parameters
    ----------
    steps, losses : sequences of equal length
    reference : (label, value), optional
        A horizontal line, e.g. ``("ln(vocab)", np.log(65))`` for a uniform guess.
    held_out : (steps, losses), optional
        A loss measured now and then on held-out data: a second line, with markers.
    """
    fig, ax = new_figure()
    ax.plot(steps, losses, color="#1f77b4", linewidth=1.2,
            label="loss" if held_out is None else "training loss")
    if held_out is not None:
        ax.plot(*held_out, color="#ff7f0e", linewidth=1.2, marker="o", markersize=3,
                label="held-out loss")
    if reference is not None:
        label, value = reference
        ax.axhline(value, color="#999999", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss per character (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return _finish(fig, path)


def gradient_flow(norms, path, title="Gradient flow: ‖∂L/∂h(t)‖ per time step"):
    """Bar chart of the gradient norm reaching each hidden state h(t), on a log axis.

    Parameters
    ----------
    norms : sequence of float, indexed by t = 1..τ
    """
    norms = np.asarray(norms, dtype=float)
    t = np.arange(1, len(norms) + 1)
    fig, ax = new_figure()
    heights = np.where(norms > 0, norms, np.nan)
    if len(norms) <= MAX_BARS:
        ax.bar(t, heights, color="#d62728", width=0.8)
    else:   # one filled outline: thousands of bar patches take seconds and are narrower than a pixel
        ax.fill_between(t, 0, heights, step="mid", color="#d62728", linewidth=0)
    if np.any(norms > 0):
        ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂L/∂h(t)‖")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _finish(fig, path)
