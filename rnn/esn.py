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
from .models import Design
from .plan import Plan


class EchoStateNetwork(Design):
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
    """

    name = "esn"
    criterion = staticmethod(squared_error)

    def __init__(self, n_in, n_hidden, n_out, spectral_radius=1.0, seed=0, dtype=np.float64,
                 input_scale=1.0):
        who = type(self).__name__
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

    def run_for_loss(self, xs, ys=None, h0=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, mask=mask, per_step=False)

    def __call__(self, xs, h0=None, mask=None):
        """Forward only: (outputs [o(t)], states [h(t)], last state h(T))."""
        run = self.run(xs, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

    def states(self, xs, h0=None):
        """The reservoir states h(1..T) as an array (T, H) or (T, B, H), under no_grad."""
        with tg.no_grad():
            run = self.run(xs, h0=h0, per_step=False)
        return np.stack([h.data for h in run.states])

    def fit(self, xs, ys, ridge=1e-8, washout=0, h0=None):
        """Set V and c to the least-squares readout of the reservoir states (convex: one solve).

        Minimises sum_t ||c + V h(t) - y(t)||^2 + ridge ||V||^2 over the steps after the
        first ``washout`` (which only warm the reservoir up).  Returns the mean squared error
        per step of the fit.
        """
        who = f"{self.name}.fit"
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or ridge < 0:
            raise tg.ConfigError(f"{who}: ridge must be a number >= 0, got {ridge!r}")
        states = self.states(xs, h0=h0)
        steps = states.shape[0]
        washout = int(washout)
        if not 0 <= washout < steps:
            raise tg.ConfigError(f"{who}: washout must be in [0, {steps}), got {washout}")
        batch = None if states.ndim == 2 else states.shape[1]
        ys = self._float_targets(ys, steps, batch, None)
        H = states[washout:].reshape(-1, self.n_hidden)
        Y = ys[washout:].reshape(-1, self.n_out)
        X = np.hstack([H, np.ones((len(H), 1))])
        reg = ridge * np.eye(self.n_hidden + 1)
        reg[-1, -1] = 0.0                      # the bias c is not penalised
        solution = np.linalg.solve(X.T @ X + reg, X.T @ Y)
        with tg.no_grad():
            self.V.data = np.ascontiguousarray(solution[:-1].T).astype(self.dtype)
            self.c.data = solution[-1].astype(self.dtype)
        return float(np.mean(np.sum((X @ solution - Y) ** 2, axis=1)))

    def _trace_roots(self, steps):
        xs = np.zeros((steps, 1, self.n_in))
        return [self.run(xs, np.zeros((steps, 1, self.n_out))).loss]


def _fixed(values, name, dtype):
    """A Parameter that is never trained (requires_grad off): saved, drawn, not optimised."""
    p = tg.Parameter(values, name=name, dtype=dtype)
    p.requires_grad = False
    return p
