"""Explicit memory (section 10.12, figure 10.18): a recurrent task network that writes to
and reads from a memory of ``slots`` cells of ``width`` numbers with soft, content-based
addressing (the NTM-style form of CHAPTER10.md).

At every step the controller h(t) = tanh(b + W h(t-1) + U x(t) + R r(t-1)) emits a write
key, an erase vector and an add vector, and a read key.  A cell's weight is a softmax
over its content's match with the key, w_i = softmax_i(k . M_i / ||M_i||) (the cosine
cos(k, M_i) with strength beta = ||k||, which the network learns through the key's
size); the write is M_i <- M_i (1 - ww_i e) + ww_i a, the read r = sum_i wr_i M_i of the
written memory, and o(t) = c + V [h(t); r(t)].  The state has three parts, h, the memory
M (slots x width, flattened) and the read vector r, each with its own delay.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .models import SequenceDesign
from .plan import Plan

EPS = 1e-6   # keeps ||M_i|| away from 0 (an empty cell has no direction)


class MemoryNetwork(SequenceDesign):
    """A recurrent controller with a slots x width memory, soft content-based read and write.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
    slots, width : int, the memory's number of cells and the size of each
    seed : int; dtype : numpy float dtype

    Parameters of the model: U (H, n_in), W (H, H), R (H, width), b (H,) (the controller);
    Kw, E, A (width, H) (write key, erase, add); Kr (width, H) (read key);
    V (n_out, H + width), c (n_out,); M0 (slots, width), the memory before the first step.
    """

    name = "memory"

    def __init__(self, n_in, n_hidden, n_out, slots=8, width=16, seed=0, dtype=np.float64,
                 criterion="cross_entropy"):
        self._set_criterion(criterion, type(self).__name__)
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out,
                                 "slots": slots, "width": width},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), R=("n_hidden", "width"),
                   b=("n_hidden",), Kw=("width", "n_hidden"), E=("width", "n_hidden"),
                   A=("width", "n_hidden"), Kr=("width", "n_hidden"),
                   V=("n_out", n_hidden + width), c=("n_out",), M0=("slots", "width"))
        self.parts = {"h": self.n_hidden, "M": self.slots * self.width, "r": self.width}

    @staticmethod
    def _axis(t, where):
        """``t`` with a new axis of length 1 at ``where`` (-1 or -2)."""
        shape = t.shape + (1,) if where == -1 else t.shape[:-1] + (1,) + t.shape[-1:]
        return t.reshape(shape)

    def _cells(self, flat):
        """The memory part (..., slots * width) as cells (..., slots, width)."""
        return flat.reshape(flat.shape[:-1] + (self.slots, self.width))

    def _address(self, cells, key):
        """Content-based weights softmax_i(key . M_i / ||M_i||): cells (..., S, D), key (..., D)."""
        match = (cells * self._axis(key, -2)).sum(axis=-1)
        norms = ((cells * cells).sum(axis=-1) + EPS) ** 0.5
        return tg.softmax(match / norms, axis=-1)

    def step(self, state, u):
        h = tg.addmm(tg.addmm(u, state["h"], self.T.W), state["r"], self.T.R).named("a").tanh()
        cells = self._cells(state["M"])
        ww = self._address(cells, h @ self.T.Kw).named("ww")
        erase = (h @ self.T.E).sigmoid().named("erase")
        add = (h @ self.T.A).tanh().named("add")
        weight = self._axis(ww, -1)
        written = cells * (1.0 - weight * self._axis(erase, -2)) + weight * self._axis(add, -2)
        memory = written.reshape(state["M"].shape)       # M(t): the read sees the written memory
        cells = self._cells(memory)
        wr = self._address(cells, h @ self.T.Kr).named("wr")
        r = (self._axis(wr, -1) * cells).sum(axis=-2)
        return {"h": h, "M": memory, "r": r}

    def readout(self, state):
        """o = c + V [h; r]."""
        return tg.addmm(self.c, tg.concat([state["h"], state["r"]], axis=-1), self.T.V)

    def run(self, xs, ys=None, h0=None, mask=None, per_step=True):
        """Unroll over the sequence.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); ys : ids (T,) / (T, B);
        h0 : a dict of the parts {"h": (H,), "M": (slots * width,), "r": (width,)} (or with a
            batch axis), each optional: h and r default to zeros, M to the learned M0;
        mask : (T, B) of 0/1 (padded steps leave h, M and r as they were).
        Returns Unrolled (``states`` and ``last`` are dicts of the parts).
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        ys = self._targets(ys, steps, batch, keep)
        given = h0 if isinstance(h0, dict) else {} if h0 is None else None
        if given is None:
            raise tg.ShapeError(f"{self.name}: h0 must be a dict of the state parts "
                                f"{list(self.parts)}, got {type(h0).__name__}")
        if given.get("M") is None:
            if batch is None:   # M(0) of the unroll, not M0 itself (a batch broadcasts it into one)
                with tg.scope(self.name), tg.scope("t=0"):
                    given = {**given, "M": self.M0.reshape(self.slots * self.width).named("M")}
            else:
                given = {**given, "M": self.M0.reshape(self.slots * self.width)}
        state0 = checks.states(given, self.parts, batch, self.name, self.dtype)
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch), per_step)

    def _trace_roots(self, steps):
        xs, ys = self._trace_ids(steps)
        return [self.run(xs, ys).loss]
