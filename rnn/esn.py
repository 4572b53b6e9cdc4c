"""Echo state networks (section 10.8): a fixed random reservoir, a trained linear readout.

The input weights U, the recurrent weights W and the bias b (a constant input: without
it the reservoir of odd tanh units is an odd function of the input history, blind to
products like x(t) x(t-5)) are drawn once and never trained
(Parameters with ``requires_grad=False``: saved with the model, left out of
``parameters()``); W is rescaled so that its spectral radius (largest |eigenvalue|)
is the one asked for.  Only the output layer o = c + V h is learned, on a squared
error, so the fit is convex: :meth:`EchoStateNetwork.fit` solves it as (ridge)
least squares, and gradient descent on ``loss`` reaches the same optimum.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .core import init_bias, init_weight, squared_error
from .models import SequenceDesign
from .plan import Plan


class EchoStateNetwork(SequenceDesign):
    """h(t) = tanh(b + W h(t-1) + U x(t)) with U, W, b fixed; o(t) = c + V h(t), fitted to float
    targets.

    L = sum_t (1/B) sum_b ||o(t)_b - y(t)_b||^2 (a squared error, not a cross-entropy).

    Parameters
    ----------
    n_in, n_hidden, n_out : int
    spectral_radius : float > 0
        max |eig(W)| after rescaling (the book: 1.2 to initialise trained RNNs, up to 3 with
        tanh reservoirs; below 1 the state map is contractive).
    seed : int; dtype : numpy float dtype
    input_scale : float > 0, the standard deviation of the entries of U and b
    criterion : "squared_error", the only one (accepted as every design with an output at
        every step takes it): the readout is fitted by least squares (section 10.8); class ids
        with a cross-entropy are a ConfigError
    """

    name = "esn"
    criterion = staticmethod(squared_error)

    def __init__(self, n_in, n_hidden, n_out, spectral_radius=1.0, seed=0, dtype=np.float64,
                 input_scale=1.0, criterion="squared_error"):
        who = type(self).__name__
        if not isinstance(criterion, str) or criterion != "squared_error":
            raise tg.ConfigError(f"{who}: criterion must be 'squared_error' (its readout is a "
                                 f"least-squares fit to float targets), got {criterion!r}")
        for what, value in (("spectral_radius", spectral_radius), ("input_scale", input_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not np.isfinite(value) or value <= 0:
                raise tg.ConfigError(f"{who}: {what} must be a finite number > 0, got {value!r}")
        self.spectral_radius = float(spectral_radius)
        for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
            setattr(self, name, checks.positive_int(value, who, name))
        rng = checks.generator(seed, who)
        U = rng.normal(0.0, input_scale, (self.n_hidden, self.n_in))
        b = rng.normal(0.0, input_scale, self.n_hidden)
        W = rng.normal(0.0, 1.0, (self.n_hidden, self.n_hidden))
        radius = np.max(np.abs(np.linalg.eigvals(W)))
        self.U = _fixed(U, "U", dtype)
        self.W = _fixed(W * (self.spectral_radius / radius), "W", dtype)
        self.b = _fixed(b, "b", dtype)
        self.V = init_weight(rng, (self.n_out, self.n_hidden), self.n_hidden, dtype, "V")
        self.c = init_bias(self.n_out, dtype, "c")
        self.parts = {"h": self.n_hidden}

    def input_map(self, inputs):
        """u = U x(t) + b."""
        return self._times(inputs["x"], "U") + self.b

    def step(self, state, u):
        return {"h": tg.addmm(u, state["h"], self.T.W).named("a").tanh()}

    def _float_targets(self, ys, steps, batch, keep):
        if ys is None:
            return None
        shape = (steps, self.n_out) if batch is None else (steps, batch, self.n_out)
        return checks.float_targets(ys, shape, self.name, self.dtype, keep)

    def run(self, xs, ys=None, h0=None, mask=None, per_step=True):
        """Unroll over the sequence.

        xs : floats (T, n_in) / (T, B, n_in) (or ids); ys : float targets (T, n_out) /
        (T, B, n_out), optional; h0 : (H,) or (B, H); mask : (T, B) of 0/1.
        Returns Unrolled.
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        ys = self._float_targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch), per_step)

    def states(self, xs, h0=None):
        """The reservoir states h(1..T) as an array (T, H) or (T, B, H), under no_grad."""
        with tg.no_grad():
            run = self.run(xs, h0=h0, per_step=False)
        return np.stack([h.data for h in run.states])

    def fit(self, xs, ys, ridge=1e-8, washout=0, h0=None):
        """Set V and c to the least-squares readout of the reservoir states (convex: one solve).

        Minimises sum_t ||c + V h(t) - y(t)||^2 + ridge ||V||^2 over the steps after the
        first ``washout`` (which only warm the reservoir up).  c is not penalised: it is
        eliminated by centering, and V comes from the SVD of the centered states.  With
        ``ridge=0`` and fewer independent states than units (a singular system) V is the
        least-squares readout of smallest ||V|| (the limit ridge -> 0), directions of the states
        below rounding left out, not an arbitrary one.  ``ridge`` is a finite number >= 0,
        ``washout`` an integer in [0, T); reservoir states that are not finite (from NaN/inf in
        xs or h0) are refused naming the step, and a readout beyond the model's dtype (a
        float16 V of 1e5) is an OutOfRangeError.  On any error V and c are left as they were.
        As after an optimizer step, a graph built from V and c before the fit refuses to
        back-propagate (StaleGraphError).  Returns the mean squared error per step of the
        readout as stored (rounded to the model's dtype) on the reservoir states.
        """
        who = f"{self.name}.fit"
        if isinstance(ridge, (bool, np.bool_)) or not isinstance(ridge, (int, float, np.integer,
                                                                         np.floating)) \
                or not np.isfinite(ridge) or ridge < 0:
            raise tg.ConfigError(f"{who}: ridge must be a finite number >= 0, got {ridge!r}")
        if isinstance(washout, (bool, np.bool_)) or not isinstance(washout, (int, np.integer)):
            raise tg.ConfigError(f"{who}: washout must be an integer number of steps, got "
                                 f"{washout!r}")
        if ys is None:
            raise tg.ConfigError(f"{who}: needs the targets ys (T, n_out) or (T, B, n_out) that "
                                 "the readout is fitted to")
        states = self.states(xs, h0=h0)
        steps = states.shape[0]
        washout = int(washout)
        if not 0 <= washout < steps:
            raise tg.ConfigError(f"{who}: washout must be in [0, {steps}), got {washout}")
        if not np.isfinite(states).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(states))[0])
            where = f"t={index[0] + 1}" + (f", b={index[1]}" if states.ndim == 3 else "")
            raise tg.NonFiniteError(f"{who}: the reservoir state h(t) is not finite at {where} "
                                    "(NaN or inf in xs or h0); nothing fitted")
        batch = None if states.ndim == 2 else states.shape[1]
        ys = self._float_targets(ys.detach() if isinstance(ys, tg.Tensor) else ys, steps, batch,
                                 None)        # values only: the fit makes no graph
        H = states[washout:].reshape(-1, self.n_hidden).astype(np.float64)
        Y = ys[washout:].reshape(-1, self.n_out).astype(np.float64)
        h_mean, y_mean = H.mean(axis=0), Y.mean(axis=0)
        V = _ridge_readout(H - h_mean, Y - y_mean, float(ridge), np.linalg.norm(H))
        c = y_mean - V @ h_mean
        with np.errstate(over="ignore"):    # a value beyond the model's dtype: refused below
            stored = {"V": np.ascontiguousarray(V).astype(self.dtype), "c": c.astype(self.dtype)}
        for name, value in (("V", V), ("c", c)):
            grown = ~np.isfinite(stored[name])
            if grown.any():
                index = tuple(int(i) for i in np.argwhere(grown)[0])
                raise tg.OutOfRangeError(
                    f"{who}: the fitted readout {name} holds {float(value[index])!r} at {index}, "
                    f"beyond the range of the model's {np.dtype(self.dtype).name} (largest "
                    f"{np.finfo(self.dtype).max:.4g}): it would become infinite; nothing fitted "
                    "(scale the targets down, raise ridge, or use float32/float64)")
        with tg.no_grad():
            self.V.data, self.c.data = stored["V"], stored["c"]
        tg.bump_version(self.V)       # as an optimizer step: a graph built before from V and
        tg.bump_version(self.c)       # c now refuses backward (its gradient is the old V's)
        # the error of the readout stored (in the model's dtype), not of the float64 solution
        V, c = stored["V"].astype(np.float64), stored["c"].astype(np.float64)
        return float(np.mean(np.sum((H @ V.T + c - Y) ** 2, axis=1)))

    def _trace_roots(self, steps):
        xs = np.zeros((steps, 1, self.n_in))
        return [self.run(xs, np.zeros((steps, 1, self.n_out))).loss]


def _ridge_readout(A, B, ridge, scale):
    """argmin_V ||A V^T - B||^2 + ridge ||V||^2 through the SVD A = P diag(s) Q^T:
    V^T = Q diag(s / (s^2 + ridge)) P^T B.  With ridge 0, singular values below rounding of
    ``scale`` (the size of the uncentered states) are dropped: the solution of least norm."""
    P, s, Qt = np.linalg.svd(A, full_matrices=False)
    if ridge > 0:
        factor = s / (s * s + ridge)
    else:
        kept = s > max(A.shape) * np.finfo(np.float64).eps * scale
        factor = np.divide(1.0, s, out=np.zeros_like(s), where=kept)
    return ((Qt.T * factor) @ (P.T @ B)).T


def _fixed(values, name, dtype):
    """A Parameter that is never trained (requires_grad off): saved, drawn, not optimised."""
    p = tg.Parameter(values, name=name, dtype=dtype)
    p.requires_grad = False
    return p
