"""Charts made with matplotlib, written as SVG: the training loss curve and the
gradient-flow profile ‖∂L/∂h(t)‖ per time step (vanishing and exploding
gradients made visible).
"""

import hashlib
import io
import os
import re

import numpy as np

from tinygraph.files import atomic_write

from .render import OutputPathError

MAX_BARS = 300   # a longer gradient-flow profile is drawn as one filled step outline
TICK_PT, LABEL_PT, TITLE_PT = 11, 12, 13     # chart text sizes (points)


def new_figure(figsize=(6, 3.5)):
    """A matplotlib Figure and its axes, made without pyplot: no backend is switched and no
    global figure registry or rcParams is touched (the library leaves the process as it found it)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _legible(ax, steps=True):
    """Chart text a little larger than matplotlib's 10 pt (the page shows charts beside diagrams
    whose labels are 14-18 pt), and, on a step axis, ticks only at whole steps (never 2.5)."""
    from matplotlib.ticker import MaxNLocator
    if steps:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=TICK_PT)
    ax.xaxis.label.set_size(LABEL_PT)
    ax.yaxis.label.set_size(LABEL_PT)
    ax.title.set_size(TITLE_PT)
    legend = ax.get_legend()
    if legend is not None:
        for text in legend.get_texts():
            text.set_size(TICK_PT)


def _finish(fig, path):
    fmt = os.path.splitext(path)[1][1:] or "svg"
    data = figure_bytes(fig, fmt) if fmt.lower() == "svg" else None
    with atomic_write(path, "viz.plots", OutputPathError, make_folder=True) as f:
        if data is not None:
            f.write(data)
        else:
            fig.savefig(f, format=fmt, metadata={"Date": None})
    return path


# The ids matplotlib's SVG writer makes for what it refers to (markers, clip paths, hatches,
# path collections, images): a prefix and 10 hex digits of a hash salted with the
# svg.hashsalt setting, or with a new random salt when it is None (its default).
_MADE_ID = re.compile(r'\bid="((?:Im_image|image|C[0-9a-f]+_[0-9a-f]+_|[hmp])[0-9a-f]{10})"')


def _steady_ids(svg):
    """``svg`` (bytes) with each id matplotlib made replaced by one that depends only on the
    drawing: its prefix and 10 hex digits of a hash of the drawing (those ids left out) and of
    its place among them.  So a chart's SVG is the same on every run without setting
    svg.hashsalt: matplotlib's rcParams are process-wide, and setting them for a save (even
    in ``rc_context``, which puts back all of them after) would change another thread's
    plots meanwhile and undo a setting it made then.  Two different charts get different
    ids, so they can be inlined in one page."""
    text = svg.decode("utf-8")
    made = list(dict.fromkeys(_MADE_ID.findall(text)))
    if not made:
        return svg
    found = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, made)) + r")(?![\w-])")
    digest = hashlib.sha256(found.sub(lambda m: m[1][:-10], text).encode("utf-8")).hexdigest()
    steady = {old: old[:-10] + hashlib.sha256(f"{digest} {k}".encode()).hexdigest()[:10]
              for k, old in enumerate(made)}
    return found.sub(lambda m: steady[m[1]], text).encode("utf-8")


def loss_curve(steps, losses, path, reference=None, title="Training loss", held_out=None,
               label=None, ylabel="loss per character (nats)"):
    """Plot loss against training step and write it to ``path`` (SVG or PNG by suffix).

    Parameters
    ----------
    steps, losses : sequences of equal length
    reference : (label, value), optional
        A horizontal line, e.g. ``("ln(vocab)", np.log(65))`` for a uniform guess.
    held_out : (steps, losses), optional
        A loss measured now and then on held-out data: a second line, with markers.
    label : str, optional
        The legend of the training curve (say what its points are, e.g. means of blocks).
    """
    fig, ax = new_figure()
    ax.plot(steps, losses, color="#1f77b4", linewidth=1.2,
            label=label or ("loss" if held_out is None else "training loss"))
    if held_out is not None:
        ax.plot(*held_out, color="#ff7f0e", linewidth=1.2, marker="o", markersize=3,
                label="held-out loss")
    if reference is not None:
        label, value = reference
        ax.axhline(value, color="#999999", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    _legible(ax)
    fig.tight_layout()
    return _finish(fig, path)


def gradient_flow(norms, path, title="Gradient flow: ‖∂L/∂h(t)‖ per time step"):
    """Bar chart of the gradient norm reaching each hidden state h(t), on a log axis.

    Parameters
    ----------
    norms : sequence of float, indexed by t = 1..τ; or the (t, norm) pairs that
        :func:`viz.opgraph.gradient_norms` returns, each drawn at its own step t

    A log axis draws no bar for a norm that is NaN, infinite (a gradient that overflowed) or
    exactly 0: such steps are marked instead, a NaN or infinite one by a triangle at the top of
    the chart and a zero by a circle at its foot, each kind named in the legend with its count,
    so that none of them reads as a step left out or as another.
    """
    return _finish(gradient_flow_figure(norms, title), path)


def gradient_flow_figure(norms, title="Gradient flow: ‖∂L/∂h(t)‖ per time step"):
    """The matplotlib Figure of :func:`gradient_flow` (made without pyplot)."""
    t, norms = _steps_and_norms(norms)
    fig, ax = new_figure()
    drawn = np.isfinite(norms) & (norms > 0)
    heights = np.where(drawn, norms, np.nan)
    if len(norms) <= MAX_BARS:
        ax.bar(t, heights, color="#d62728", width=0.8)
    else:   # one filled outline: thousands of bar patches take seconds and are narrower than a pixel
        ax.fill_between(t, 0, heights, step="mid", color="#d62728", linewidth=0)
    if drawn.any():
        ax.set_yscale("log")
    marks = ((~np.isfinite(norms), 0.96, "v", "#e7298a", "NaN or infinite"),
             (norms == 0, 0.04, "o", "#555555", "exactly 0"))
    for where, height, marker, colour, what in marks:
        if where.any():         # at a height of the axes (not of the data): seen on any scale
            n = int(where.sum())
            ax.plot(t[where], np.full(n, height), linestyle="none", marker=marker, color=colour,
                    markerfacecolor=colour if marker == "v" else "none", markersize=7,
                    transform=ax.get_xaxis_transform(), clip_on=False,
                    label=f"{what} ({n} step{'s' if n > 1 else ''})")
    if (~drawn).any():
        ax.set_xlim(t.min() - 0.6, t.max() + 0.6)
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂L/∂h(t)‖")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    _legible(ax)
    fig.tight_layout()
    return fig


def _steps_and_norms(norms):
    """(t, norm) as two float arrays from one norm per step t = 1..τ or from (t, norm) pairs; a
    clear error for anything else (matplotlib's own would name neither this function nor the
    shapes it takes)."""
    from tinygraph.errors import DTypeError, ShapeError
    try:
        arr = np.asarray(norms, dtype=float)
    except (TypeError, ValueError) as e:
        raise DTypeError(f"viz.plots.gradient_flow: norms must be numbers, one per step t = 1..τ "
                         f"(or (t, norm) pairs), got {type(norms).__name__} ({e})") from None
    if arr.ndim == 1:
        return np.arange(1, len(arr) + 1, dtype=float), arr
    if arr.ndim == 2 and arr.shape[1] == 2 and len(arr) and np.all(arr[:, 0] == np.round(arr[:, 0])):
        return arr[:, 0], arr[:, 1]
    raise ShapeError(f"viz.plots.gradient_flow: norms must be one number per step t = 1..τ, shape "
                     f"(τ,), or (t, norm) pairs with whole steps t, shape (n, 2) (as "
                     f"viz.opgraph.gradient_norms returns); got shape {arr.shape}")


# ------------------------------------------------------------------ figures 10.15 and 10.17
# These return a matplotlib Figure (made without pyplot, so nothing global is kept);
# viz.save and viz.render write it by suffix like a diagram.

def figure_bytes(fig, fmt):
    """A matplotlib Figure as SVG or PNG bytes (the same bytes on every run; no matplotlib
    setting is changed, see :func:`_steady_ids`)."""
    buffer = io.BytesIO()
    svg = fmt.lower() == "svg"
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if svg else None)
    return _steady_ids(buffer.getvalue()) if svg else buffer.getvalue()


def compositions(coordinate, projections, title="Repeated composition of h ← tanh(W h)"):
    """Figure 10.15: one curve per number of compositions.

    coordinate : (N,) the initial state's coordinate along a direction (x axis)
    projections : list of (N,), the projection of the state after 0, 1, 2, ... compositions
    """
    fig, ax = new_figure((7, 4))
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    for k, values in enumerate(projections):
        ax.plot(coordinate, values, color=colours[k % len(colours)], linewidth=1.3, label=str(k))
    ax.set_xlabel("Input coordinate")
    ax.set_ylabel("Projection of output")
    ax.set_title(title)
    ax.legend(frameon=False, title="compositions", fontsize=8, title_fontsize=8,
              loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cliff(w, b, surface, paths, titles=("Without clipping", "With clipping")):
    """Figure 10.17: the loss surface J(w, b) twice, each with its gradient-descent path.

    w, b : (N,) and (M,) grid axes; surface : (M, N) J on the grid;
    paths : two arrays (K, 3) of (w, b, J) visited by gradient descent.  Points outside the
    grid are drawn at its edge (the path was thrown off the plot).
    """
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4.8))             # two 3-D axes added below, without pyplot
    W, B = np.meshgrid(w, b)
    for i, (path, title) in enumerate(zip(paths, titles), start=1):
        ax = fig.add_subplot(1, 2, i, projection="3d")
        ax.plot_surface(W, B, surface, cmap="viridis", linewidth=0, antialiased=True, alpha=0.75,
                        rcount=40, ccount=40)
        inside = ((path[:, 0] >= w[0]) & (path[:, 0] <= w[-1]) & (path[:, 1] >= b[0])
                  & (path[:, 1] <= b[-1]))
        last = np.flatnonzero(~inside)
        shown = path if last.size == 0 else path[:last[0] + 1]
        shown = np.column_stack([np.clip(shown[:, 0], w[0], w[-1]),
                                 np.clip(shown[:, 1], b[0], b[-1]), shown[:, 2]])
        ax.plot(shown[:, 0], shown[:, 1], shown[:, 2], color="#d62728", linewidth=2, marker="o",
                markersize=3, zorder=10)
        if last.size:
            # path[k] is where update k lands: the update that leaves the plot starts at
            # path[k - 1], on the cliff, which update k - 1 reached
            w_on, b_on = path[last[0] - 1, :2]
            w_out, b_out = path[last[0], :2]
            ax.text2D(0.02, 0.95, f"step {last[0]}, from the cliff at (w, b) = ({w_on:.2f}, "
                      f"{b_on:.2f}),\nthrows it off the plot, to ({w_out:.2f}, {b_out:.2f})",
                      transform=ax.transAxes, fontsize=8)
        else:
            ax.text2D(0.02, 0.95, f"after {len(path) - 1} steps: J = {path[-1, 2]:.2g}",
                      transform=ax.transAxes, fontsize=8)
        ax.set_xlabel("w")
        ax.set_ylabel("b")
        ax.set_zlabel("J(w, b)")
        ax.set_title(title)
        ax.view_init(elev=35, azim=-130)
    fig.tight_layout()
    return fig


def _series(ax, series, log):
    """Draw ``series`` (label -> (xs, ys) or (xs, ys, low, high)) on ``ax``; a (low, high) pair
    is drawn as a band of the line's colour around it."""
    for label, data in series.items():
        xs, ys = data[0], np.asarray(data[1], dtype=float)
        shown = (lambda v: np.where(v > 0, v, np.nan)) if log else (lambda v: v)
        (line,) = ax.plot(xs, shown(ys), linewidth=1.4, label=label)
        if len(data) == 4:
            ax.fill_between(xs, shown(np.asarray(data[2], dtype=float)),
                            shown(np.asarray(data[3], dtype=float)), color=line.get_color(),
                            alpha=0.18, linewidth=0)


def panels(charts, path, title=None, figsize=None):
    """Charts side by side in one figure, written to ``path``.

    Parameters
    ----------
    charts : list of dicts with keys ``series`` (label -> (xs, ys) or (xs, ys, low, high): a
        line, and optionally a band from low to high), ``title``, ``ylabel``, and optionally
        ``xlabel`` (default "training step"), ``log`` (a log y axis), ``reference`` ((label,
        value): a dashed horizontal line), ``ylim`` ((low, high)) and ``percent`` (y as a
        percentage of 1).  Every x axis counts steps: its ticks are whole numbers.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter
    fig = Figure(figsize=figsize or (5.0 * len(charts), 3.9))
    axes = np.atleast_1d(fig.subplots(1, len(charts)))
    for ax, chart in zip(axes, charts):
        _series(ax, chart["series"], chart.get("log", False))
        if chart.get("reference") is not None:
            label, value = chart["reference"]
            ax.axhline(value, color="#777777", linestyle="--", linewidth=1, label=label)
        if chart.get("log"):
            ax.set_yscale("log")
        if chart.get("ylim") is not None:
            ax.set_ylim(*chart["ylim"])
        if chart.get("percent"):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel(chart.get("xlabel", "training step"))
        ax.set_ylabel(chart["ylabel"])
        ax.set_title(chart["title"])
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        _legible(ax)
    if title:
        fig.suptitle(title, fontsize=TITLE_PT)
    fig.tight_layout()
    return _finish(fig, path)


def curves(series, path, title, ylabel, xlabel="training step", log=False):
    """Several lines on one chart (e.g. the loss curves of three designs), written to ``path``.

    Parameters
    ----------
    series : dict label -> (xs, ys), or (xs, ys, low, high) to draw a band around the line
    log : bool, a log y axis (for gradient norms that vanish over time)
    """
    return panels([{"series": series, "title": title, "ylabel": ylabel, "xlabel": xlabel,
                    "log": log}], path, figsize=(6, 3.5))
