"""Deep recurrent networks (section 10.5, figure 10.13).

Figure 10.3's three blocks (input to hidden, hidden to hidden, hidden to output)
are each one affine map and a nonlinearity.  They can be made deep in three ways,
all one class here:

- ``kind="stacked"`` (figure 10.13 a): a stack of recurrent layers, each layer's
  state the input of the next at the same step (Graves 2013); the state parts are
  h1 .. hL, each with its own delay.
- ``kind="mlp"`` (b): an MLP in every block (Pascanu et al. 2014a): x -> e -> h,
  h(t-1) -> z -> h(t), h -> g -> o.  A hidden layer in the transition doubles the
  shortest path from h(t-1) to h(t).
- ``kind="skip"`` (c): (b) plus a direct h(t-1) -> h(t) connection (``Ws``), which
  makes that path short again.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .models import SequenceDesign
from .plan import Plan

KINDS = ("stacked", "mlp", "skip")


def _suffixes(count):
    """What tells ``count`` hidden layers of one block apart: "" for one, "1", "2", ... for more."""
    return [""] if count == 1 else [str(i) for i in range(1, count + 1)]


class DeepRNN(SequenceDesign):
    """Figure 10.13: a deep RNN, ``kind`` "stacked" (a), "mlp" (b) or "skip" (c).

    stacked, layers L: h1(t) = tanh(b1 + W1 h1(t-1) + U1 x(t)),
    hl(t) = tanh(bl + Wl hl(t-1) + Ul h(l-1)(t)), o(t) = c + V hL(t).

    mlp / skip, ``layers - 1`` hidden layers in every block (one for layers=2, named e, z, g):
    e(t) = tanh(be + Ue x(t)), z(t) = tanh(bz + Wz h(t-1)),
    h(t) = tanh(b + U e(t) + W z(t) [+ Ws h(t-1) for "skip"]),
    g(t) = tanh(bg + Vg h(t)), o(t) = c + V g(t).
    With more hidden layers they are numbered: e1 (``Ue1``, ``be1``) -> e2 (``Ue2``, ``be2``) -> ...,
    and so z1, z2, ... and g1, g2, ...

    Parameters
    ----------
    n_in, n_hidden, n_out : int; every hidden layer has n_hidden units
    layers : int >= 2 (stacked: recurrent layers; mlp/skip: layers of each block's MLP)
    kind : "stacked", "mlp" or "skip"
    seed : int; dtype : numpy float dtype
    """

    name = "deep"

    def __init__(self, n_in, n_hidden, n_out, layers=2, kind="stacked", seed=0, dtype=np.float64,
                 criterion="cross_entropy"):
        who = type(self).__name__
        self._set_criterion(criterion, who)
        if kind not in KINDS:
            raise tg.ConfigError(f"{who}: kind must be one of {', '.join(map(repr, KINDS))}, "
                                 f"got {kind!r}")
        layers = checks.positive_int(layers, who, "layers")
        if layers < 2:
            raise tg.ConfigError(f"{who}: layers must be at least 2 (one layer is ElmanRNN), "
                                 f"got {layers}")
        self.kind, self.layers = kind, layers
        sizes = {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}
        H = "n_hidden"
        shapes = {}
        if kind == "stacked":
            self.levels = [f"h{i}" for i in range(1, layers + 1)]
            for i in range(1, layers + 1):
                shapes.update({f"U{i}": (H, "n_in" if i == 1 else H), f"W{i}": (H, H),
                               f"b{i}": (H,)})
            shapes.update(V=("n_out", H), c=("n_out",))
        else:
            suffixes = _suffixes(layers - 1)
            for i, s in enumerate(suffixes):
                shapes.update({f"Ue{s}": (H, "n_in" if i == 0 else H), f"be{s}": (H,)})
            for s in suffixes:
                shapes.update({f"Wz{s}": (H, H), f"bz{s}": (H,)})
            shapes.update(U=(H, H), W=(H, H), b=(H,))
            if kind == "skip":
                shapes["Ws"] = (H, H)
            for s in suffixes:
                shapes.update({f"Vg{s}": (H, H), f"bg{s}": (H,)})
            shapes.update(V=("n_out", H), c=("n_out",))
        self._init(seed, dtype, sizes, **shapes)
        if kind == "stacked":
            self.parts = {name: self.n_hidden for name in self.levels}
        else:
            self.parts = {"h": self.n_hidden}
        self.state_is_dict = kind == "stacked"

    def own_config(self):
        return {**super().own_config(), "kind": self.kind, "layers": self.layers}

    def _mlp(self, v, block, weight, bias):
        """The hidden layers of one block: v -> tanh(bias + weight v), named block + suffix."""
        for s in _suffixes(self.layers - 1):
            v = (self._times(v, weight + s) + getattr(self, bias + s)).tanh().named(block + s)
        return v

    def input_map(self, inputs):
        """stacked: U1 x(t) + b1; mlp/skip: the input MLP e(t) and then U e(t) + b."""
        if self.kind == "stacked":
            return self._times(inputs["x"], "U1") + self.b1
        e = self._mlp(inputs["x"], "e", "Ue", "be")
        return tg.addmm(self.b, e, self.T.U)

    def step(self, state, u):
        if self.kind == "stacked":
            new = {}
            below = None
            for i, name in enumerate(self.levels, start=1):
                drive = u if i == 1 else tg.addmm(getattr(self, f"b{i}"), below,
                                                  getattr(self.T, f"U{i}"))
                below = new[name] = tg.addmm(drive, state[name], getattr(self.T, f"W{i}")).tanh()
            return new
        h = state["h"]
        z = self._mlp(h, "z", "Wz", "bz")
        a = tg.addmm(u, z, self.T.W)
        if self.kind == "skip":
            a = tg.addmm(a, h, self.T.Ws)
        return {"h": a.named("a").tanh()}

    def readout(self, state):
        if self.kind == "stacked":
            return tg.addmm(self.c, state[self.levels[-1]], self.T.V)
        g = self._mlp(state["h"], "g", "Vg", "bg")
        return tg.addmm(self.c, g, self.T.V)

    def run(self, xs, ys=None, h0=None, mask=None, per_step=True):
        """Unroll over the sequence.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); ys : ids (T,) / (T, B);
        h0 : (H,) / (B, H) for mlp/skip, a dict of the layers {"h1": ..., "h2": ...} for
        stacked (missing layers start at zero); mask : (T, B) of 0/1.
        Returns Unrolled (stacked: ``states`` and ``last`` are dicts of the layers).
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        ys = self._targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch), per_step)

    def _trace_roots(self, steps):
        xs, ys = self._trace_ids(steps)
        return [self.run(xs, ys).loss]
