"""Gradient diagnostics of back-propagation through time, computed by the engine.

Everything here is read off a real unroll (``model.run(...)``, every op of every step a
node of that step's scope) by tinygraph's own backward sweeps, for any design and any state
part:

- :func:`connectivity`: ‖∂L(t)/∂h(k)‖ for every loss term L(t) and every step k, each loss
  term's own gradient (one sweep per loss term);
- :func:`jacobians`: ∂h(t)/∂h(t-1) per step for a batch of one, from the step function run
  on a copy of h(t-1) (one sweep per unit of h(t), through that step only);
- :func:`spectra` (spectral norm and radius per step) and :func:`lag_decay` (the norm of
  the product of the Jacobians over a lag k and its fitted rate of decay, as in section
  10.7 and Pascanu, Mikolov and Bengio 2013);
- :func:`saturation`: the fraction of tanh and sigmoid units of each step whose slope is
  almost zero;
- :func:`gradient_ratio`: ‖(∇_{h(t)} L) ∂h(t)/∂h(t-1)‖ / ‖∇_{h(t)} L‖, the ratio that the
  regulariser of eq. 10.52 pulls towards 1.

``xs`` and ``ys`` are what the design's ``run`` takes first (for ``VectorToSequence`` the
vector x and the targets, for ``SequenceToOne`` the sequence and its one label).
"""

import copy

import numpy as np

import tinygraph as tg

from .core import collector_paused, time_step, walk_inside

SATURATING = {"tanh": 1.0, "sigmoid": 0.25}     # op -> its largest slope


def run_model(model, xs, ys=None, h0=None, steps=None):
    """``model.run(xs, ys, h0=h0, steps=steps)`` with only the arguments given (every op of every
    step a node); ``steps`` is for a system without input (rnn.Recurrence with n_in=None)."""
    if not callable(getattr(model, "run", None)):
        raise tg.DTypeError(f"rnn diagnostics: needs a recurrent model with .run(...), got "
                            f"{type(model).__name__}")
    kwargs = {} if h0 is None else {"h0": h0}
    if steps is not None:
        kwargs["steps"] = steps
    args = (xs,) if ys is None else (xs, ys)
    return model.run(*args, **kwargs)


def part_nodes(run, part, who):
    """{t: node} of the variable ``part`` at every step t >= 1 of ``run``: a state part of the
    run, or else any variable of that name found behind the run's losses and outputs."""
    if part in run.parts and run.parts[part]:
        return {time_step(n.scope): n for n in run.parts[part]}
    roots = list(run.losses) + list(run.outputs)
    found = {}
    for node in walk_inside(roots):
        t = time_step(node.scope)
        if node.name == part and not isinstance(node, tg.Parameter) and t is not None and t >= 1:
            found.setdefault(t, node)
    if not found:
        raise tg.ConfigError(f"{who}: the run has no variable '{part}' (its state parts are "
                             f"{list(run.parts)})")
    return found


def connectivity(model, xs, ys, part="h", h0=None, rows=None):
    """‖∂L(t)/∂h(k)‖ for every loss term L(t) and every step k: shape (T, T).

    Entry ``[t-1, k-1]`` is the norm of the gradient of the loss term of step t alone with
    respect to the variable ``part`` at step k (over the whole batch); zero where L(t) does not
    depend on h(k) (k > t, or a step without a loss term).  One backward sweep per loss term,
    each through steps 1..t only.

    Parameters
    ----------
    model : a design of rnn or an rnn.Recurrence with a readout
    xs, ys : what ``model.run`` takes first (inputs and targets)
    part : str, a state part (e.g. "h", or "s" of an LSTM) or another variable named at every step
    h0 : initial state, optional
    rows : iterable of int, optional
        Only the loss terms of these steps t (1-based); the other rows are NaN.  For long runs.

    Returns
    -------
    np.ndarray (T, T) of float64
    """
    who = "rnn.connectivity"
    with collector_paused():
        run = run_model(model, xs, ys, h0)
        if not run.losses:
            raise tg.ConfigError(f"{who}: the run has no loss terms (give targets ys)")
        nodes = part_nodes(run, part, who)
        steps = max(nodes)
        keys = sorted(nodes)
        wanted = None if rows is None else {int(t) for t in rows}
        out = np.zeros((steps, steps)) if wanted is None else np.full((steps, steps), np.nan)
        if wanted is not None:
            bad = [t for t in wanted if not 1 <= t <= steps]
            if bad:
                raise tg.ShapeError(f"{who}: rows {bad} are outside the steps 1..{steps}")
            for t in wanted:
                out[t - 1] = 0.0
        for loss in run.losses:
            t = time_step(loss.scope)
            if wanted is not None and t not in wanted:
                continue
            before = [k for k in keys if k <= t]
            grads = tg.grad(loss, [nodes[k] for k in before], retain_graph=True)
            for k, g in zip(before, grads):
                out[t - 1, k - 1] = np.linalg.norm(g)
    return out


class _CutSteps:
    """The model's step function run on a fresh leaf copy of the state before every step, so
    that each step's graph starts at its own h(t-1) (what a Jacobian of one step needs)."""

    def __init__(self, step, parts):
        self.step = step
        self.parts = list(parts)
        self.records = []

    def __call__(self, state, u):
        leaves = {k: tg.tensor(v.data, requires_grad=True) for k, v in state.items()}
        new = self.step(leaves, u)
        out = new if isinstance(new, dict) else {self.parts[0]: new}
        self.records.append((leaves, out))
        return new


def jacobians(model, xs, part="h", h0=None, ys=None, steps=None):
    """∂h(t)/∂h(t-1) for every step t of a batch of one: shape (T, H, H).

    Row i of ``J[t-1]`` is the gradient of unit i of h(t) with respect to h(t-1), computed by
    the engine: the step function runs on a leaf copy of the state before each step, and one
    backward sweep per unit goes through that step alone.  The other state parts and the
    step's inputs (including a teacher-forced y(t-1)) are held fixed, so for an LSTM
    ``part="h"`` gives the block ∂h(t)/∂h(t-1) of the state's Jacobian.

    Parameters
    ----------
    model : a design with state parts (a Cell: every rnn design but JordanRNN, or rnn.Recurrence)
    xs : what ``model.run`` takes first; ys : targets, for designs that read y(t-1)
    part : str, a state part; h0 : initial state, optional
    steps : int, for a system without input (``xs=None``)

    Returns
    -------
    np.ndarray (T, H, H)
    """
    who = "rnn.jacobians"
    parts = getattr(model, "parts", None)
    if not isinstance(parts, dict) or not callable(getattr(model, "step", None)):
        raise tg.DTypeError(f"{who}: needs a cell (an rnn design or rnn.Recurrence), got "
                            f"{type(model).__name__}")
    if part not in parts:
        raise tg.ConfigError(f"{who}: {model.name} has no state part '{part}' (its state parts "
                             f"are {list(parts)}); a design without one carries no h(t-1) into h(t)")
    cut = copy.copy(model)
    cut_steps = cut.step = _CutSteps(cut.step, parts)   # bound to the copy
    with collector_paused():
        run_model(cut, xs, ys, h0, steps)
        if not cut_steps.records:
            raise tg.ConfigError(f"{who}: {model.name} runs its steps through chains of its own "
                                 "(a model made of several recurrences), not one step function; "
                                 "its Jacobians are not available")
        size = parts[part]
        out = np.empty((len(cut_steps.records), size, size))
        for t, (leaves, new) in enumerate(cut_steps.records):
            h_new, h_old = new[part], leaves[part]
            if h_new.size != size:
                raise tg.ShapeError(f"{who}: needs a batch of one; '{part}' has shape "
                                    f"{h_new.shape} at t={t + 1}")
            if not h_new.requires_grad:
                out[t] = 0.0
                continue
            seed = np.zeros(h_new.shape, h_new.dtype)
            flat = seed.reshape(-1)
            for i in range(size):
                flat[i] = 1.0
                out[t, i] = tg.grad(h_new, h_old, grad=seed, retain_graph=True).reshape(-1)
                flat[i] = 0.0
    return out


def spectra(jacs):
    """Spectral norm (largest singular value) and spectral radius (largest |eigenvalue|) of
    each Jacobian: two arrays of shape (T,)."""
    jacs = np.asarray(jacs, dtype=np.float64)
    norms = np.linalg.norm(jacs, ord=2, axis=(1, 2))
    radii = np.abs(np.linalg.eigvals(jacs)).max(axis=1)
    return norms, radii


class LagDecay:
    """The norm of the product of the Jacobians over a lag, and its fitted decay.

    Attributes
    ----------
    lags : int array (K,), 1..K
    norms : float array (K,)
        The geometric mean over end steps t of ‖J(t) J(t-1) ... J(t-k+1)‖₂, the chain of
        ∂h(t)/∂h(t-k) through this state part.
    rate : float
        ρ of the least-squares fit norms ≈ C ρ^k (log norms linear in k); below 1 the
        gradient vanishes with the lag, above 1 it explodes.
    scale : float
        C of that fit.
    """

    def __init__(self, lags, norms, rate, scale):
        self.lags, self.norms, self.rate, self.scale = lags, norms, rate, scale

    def __repr__(self):
        return f"LagDecay(lags=1..{len(self.lags)}, rate={self.rate:.4g})"


def lag_decay(jacs, max_lag=None, ends=16):
    """The norm of the Jacobian product over lags k = 1..max_lag and its fitted decay rate.

    Parameters
    ----------
    jacs : (T, H, H), as from :func:`jacobians`
    max_lag : int, default min(T, 50)
    ends : int, how many end steps t (evenly spaced over t = max_lag..T, T always one of them)
        to average over

    Returns
    -------
    LagDecay
    """
    jacs = np.asarray(jacs, dtype=np.float64)
    steps = len(jacs)
    max_lag = min(steps, 50) if max_lag is None else int(max_lag)
    if not 1 <= max_lag <= steps:
        raise tg.ShapeError(f"rnn.lag_decay: max_lag must be in 1..{steps}, got {max_lag}")
    last = np.unique(np.linspace(steps - 1, max_lag - 1, min(ends, steps - max_lag + 1)).round()
                     .astype(int))            # always includes the last step
    logs = np.zeros((len(last), max_lag))
    for row, t in enumerate(last):
        product = np.eye(jacs.shape[1])
        for k in range(max_lag):
            product = product @ jacs[t - k]
            logs[row, k] = np.log(max(np.linalg.norm(product, 2), np.finfo(float).tiny))
    mean = logs.mean(axis=0)
    lags = np.arange(1, max_lag + 1)
    if max_lag > 1:
        slope, intercept = np.polyfit(lags, mean, 1)
    else:
        slope, intercept = mean[0], 0.0
    return LagDecay(lags, np.exp(mean), float(np.exp(slope)), float(np.exp(intercept)))


def saturation(model, xs, ys=None, h0=None, tol=0.05, steps=None):
    """Fraction of the tanh and sigmoid units of each step that are saturated: shape (T,).

    A unit is saturated when its slope is below ``tol`` times the largest slope of its
    function (tanh: 1 - y² < tol; sigmoid: y (1 - y) < tol / 4).  The units are every output
    of a tanh or sigmoid op in the scope of step t (state units and gates alike).  ``steps``
    is for a system without input (``xs=None``).
    """
    with collector_paused():
        run = run_model(model, xs, ys, h0, steps)
        roots = ([run.loss] if run.loss is not None else []) + list(run.outputs)
        roots += [n for nodes in run.parts.values() for n in nodes]
        steps = max((time_step(n.scope) or 0 for n in roots), default=0)
        saturated = np.zeros(steps + 1)
        units = np.zeros(steps + 1)
        for node in walk_inside(roots):
            t = time_step(node.scope)
            if node.op in SATURATING and t is not None and t >= 1:
                y = node.data
                slope = (1 - y * y) if node.op == "tanh" else y * (1 - y)
                saturated[t] += np.count_nonzero(slope < tol * SATURATING[node.op])
                units[t] += y.size
    return np.divide(saturated[1:], units[1:], out=np.zeros(steps), where=units[1:] > 0)


def gradient_ratio(model, xs, ys, part="h", h0=None):
    """‖(∇_{h(t)} L) ∂h(t)/∂h(t-1)‖ / ‖∇_{h(t)} L‖ for t = 1..T (eq. 10.52): shape (T,).

    ∇_{h(t)} L is the gradient of the whole loss at h(t) (one engine sweep); the product is
    its vector-Jacobian product with :func:`jacobians`.  NaN where ∇_{h(t)} L is zero.
    """
    with collector_paused():
        run = run_model(model, xs, ys, h0)
        if run.loss is None:
            raise tg.ConfigError("rnn.gradient_ratio: the run has no loss (give targets ys)")
        nodes = part_nodes(run, part, "rnn.gradient_ratio")
        keys = sorted(nodes)
        grads = tg.grad(run.loss, [nodes[k] for k in keys])
    jacs = jacobians(model, xs, part=part, h0=h0, ys=ys)
    ratio = np.full(len(jacs), np.nan)
    for k, g in zip(keys, grads):
        g = g.reshape(-1)
        norm = np.linalg.norm(g)
        if norm > 0:
            ratio[k - 1] = np.linalg.norm(g @ jacs[k - 1]) / norm
    return ratio
