"""Leaky units and skip connections through time (section 10.9, multiple time scales).

A leaky unit keeps a running average of what the recurrent layer computes,
mu(t) = alpha mu(t-1) + (1 - alpha) v(t): alpha near 1 remembers long, near 0 forgets
fast, and alpha is fixed or learned.  A skip connection of delay d feeds h(t-d)
straight into step t (the cell's ``lags``), so a gradient crosses tau steps in
about tau / d hops; the diagrams draw it through d delay squares.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .core import lagged
from .models import SequenceDesign
from .plan import Plan


class LeakyRNN(SequenceDesign):
    """Leaky units (section 10.9), optionally with a delay-d skip connection.

    v(t) = tanh(b + W h(t-1) + U x(t) [+ Wd h(t-d)]),  h(t) = alpha h(t-1) + (1 - alpha) v(t),
    o(t) = c + V h(t), L(t) = CE(o(t), y(t)); h(t-d) is h(0) while t - d < 1.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
    alpha : float in (0, 1), or "learned"
        The leak of every unit.  Learned: one alpha per unit, alpha = sigmoid(alpha_logit),
        started spread evenly over [0.5, 0.95] (several time scales at once).
    skip : int >= 1 or None
        The delay d of the skip connection h(t-d) -> h(t) (weights ``Wd`` (H, H)).
    seed : int; dtype : numpy float dtype
    """

    name = "leaky"

    def __init__(self, n_in, n_hidden, n_out, alpha=0.9, skip=None, seed=0, dtype=np.float64,
                 criterion="cross_entropy"):
        who = type(self).__name__
        self._set_criterion(criterion, who)
        extra = {}
        if skip is not None:
            self.skip = checks.positive_int(skip, who, "skip")
            extra["Wd"] = ("n_hidden", "n_hidden")
        else:
            self.skip = None
        learned = isinstance(alpha, str) and alpha == "learned"
        if not learned:
            if isinstance(alpha, str):
                raise tg.ConfigError(f"{who}: alpha must be a float in (0, 1) or 'learned', "
                                     f"got {alpha!r}")
            alpha = checks.unit_interval(alpha, who, "alpha")
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), V=("n_out", "n_hidden"),
                   b=("n_hidden",), c=("n_out",), **extra)
        if learned:
            start = np.linspace(0.5, 0.95, self.n_hidden)
            self.alpha_logit = tg.Parameter(np.log(start / (1 - start)), name="alpha_logit",
                                            dtype=dtype)
        else:
            self._alpha = alpha
        self.parts = {"h": self.n_hidden}
        self.lags = {"h": self.skip} if self.skip is not None else {}

    def own_config(self):
        alpha = "learned" if hasattr(self, "alpha_logit") else self._alpha
        return {**super().own_config(), "alpha": alpha, "skip": self.skip}

    @property
    def alpha(self):
        """The leak: a float, or the (H,) array sigmoid(alpha_logit) when learned."""
        if hasattr(self, "alpha_logit"):
            return 1.0 / (1.0 + np.exp(-self.alpha_logit.data))
        return self._alpha

    def step(self, state, u):
        """v(t) = tanh(u + W h(t-1) [+ Wd h(t-d)]), h(t) = alpha h(t-1) + (1 - alpha) v(t)."""
        h = state["h"]
        a = tg.addmm(u, h, self.T.W)
        if self.skip is not None:
            a = tg.addmm(a, state[lagged("h", self.skip)], self.T.Wd)
        v = a.named("a").tanh().named("v")
        if hasattr(self, "alpha_logit"):
            alpha = self.alpha_logit.sigmoid()
            return {"h": h * alpha + v * (1.0 - alpha)}
        return {"h": h * self._alpha + v * (1.0 - self._alpha)}

    def run(self, xs, ys=None, h0=None, mask=None, past=None, per_step=True):
        """Unroll over the sequence.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); ys : ids (T,) / (T, B);
        h0 : (H,) or (B, H), default zeros; mask : (T, B) of 0/1 (padded steps carry h);
        past : with ``skip=d``, the states h(1-d) .. h(0) (a list of d dicts {"h": ...}, oldest
            first; what ``carry`` hands the next chunk), default h0 for all of them.  Its last
            entry is h(0): without h0 it is the state before step 1, and an h0 of other values
            is a ConfigError.
        per_step : bool, as ElmanRNN.run.
        Returns Unrolled (``past`` is the last d states).
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        ys = self._targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        if past is not None:
            if self.skip is None:
                raise tg.ConfigError(f"{self.name}: past= is for skip connections (skip=None here)")
            if not isinstance(past, (list, tuple)) or len(past) != self.skip:
                raise tg.ShapeError(f"{self.name}: past must be a list of {self.skip} states "
                                    f"(h(1-d) .. h(0)), got {type(past).__name__}"
                                    + (f" of length {len(past)}" if isinstance(past, (list, tuple))
                                       else ""))
            past = [checks.states(s, self.parts, batch, self.name, self.dtype, what=f"past[{i}]")
                    for i, s in enumerate(past)]
            state0 = self._h0_of_past(h0, state0, past[-1])
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch, past=past), per_step)

    def _h0_of_past(self, h0, state0, last):
        """The state before step 1 when ``past`` is given: its last entry is h(0), which step 1
        reads as h(t-1) and step d as h(t-d).  Without ``h0`` it is that entry (h0 defaulted
        to zeros while step d read the given h(0)); an ``h0`` of other values is refused."""
        if h0 is None:
            return dict(last)
        for name in self.parts:
            a, b = (np.asarray(v.data if isinstance(v, tg.Tensor) else v)
                    for v in (state0[name], last[name]))
            shape = np.broadcast_shapes(a.shape, b.shape)
            if not np.array_equal(np.broadcast_to(a, shape), np.broadcast_to(b, shape),
                                  equal_nan=True):
                raise tg.ConfigError(
                    f"{self.name}: h0 and past[-1] are both the state h(0) before step 1 (step 1 "
                    f"reads it as h(t-1), step {self.skip} as h(t-{self.skip})), but their "
                    f"'{name}' differ; give the same state, or past alone")
        return state0

    def run_for_loss(self, xs, ys=None, h0=None, mask=None, past=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, mask=mask, past=past, per_step=False)

    def _trace_roots(self, steps):
        xs, ys = self._trace_ids(steps)
        return [self.run(xs, ys).loss]
