"""The recurrent designs of chapter 10, each a cell of :mod:`rnn.core`: the book's step plus
what can be batched over time.

Rows are examples, so the book's ``W h(t-1)`` reads ``h @ T.W`` (``self.T.W`` is W
transposed once per unroll by the shared machinery).  Integer inputs are one-hot
vectors selected by ``take``, so the id leaf ``x`` stays a parent of the step's
nodes.  Each design declares its state parts and writes ``input_map`` (the
state-independent part of a step: ``U x(t) + b``, and under teacher forcing the
fed-back ``R y(t-1)``), ``step`` (the recurrence) and ``readout``
(``o = c + V h``); the machinery runs them per step (``run``, what viz draws) or
with only ``step`` in the loop (``loss``).  Teacher-forced and free-running
modes are two feedbacks of the same cell, and generation is one more (a sampled
id): there is no second implementation of any design.
"""

import numpy as np

import tinygraph as tg
from tinygraph.tensor import stand_in

from . import checks, replay, stacked
from .core import Cell, Chain, init_bias, init_weight, output_and_loss, step_leaves, unroll
from .plan import Plan

class Sampler:
    """Picks y(t) from o(t): greedy (temperature 0) or a softmax sample at ``temperature``.

    The logits are shifted by their maximum before the division by the temperature, so a
    small temperature gives (nearly) the argmax, never an overflow; the probabilities are
    computed in float64 whatever the logits' dtype, and a class of probability 0 is never
    picked.  Logits that are not
    finite (NaN or inf) raise :class:`tinygraph.AnomalyError` naming ``who``, the step t
    (the number of the pick), the batch entry and the class.

    Parameters
    ----------
    temperature : float >= 0
    seed : int or np.random.Generator
    who : str, the name errors give (e.g. "elman.generate")
    """

    def __init__(self, temperature=1.0, seed=0, who="sampling"):
        self.who = who
        self.temperature, self.rng = checks.sampling(temperature, seed, who)
        self.picked = []

    def __call__(self, logits):
        """logits (..., C) array -> ids (...); every pick is also appended to ``picked``.

        Running over a padded batch (``mask``), ``picked[t]`` holds the ids fed to step t+1:
        at a padded step of sequence b, its last sampled id carried on (as ``run.feedback``),
        not the id drawn there, which nothing reads."""
        ids = self._pick(np.asarray(logits))
        self.picked.append(ids)
        return ids

    def _pick(self, logits):
        bad = ~np.isfinite(logits)
        if bad.any():
            index = [int(i) for i in np.argwhere(bad)[0]]
            where = f"t={len(self.picked) + 1}" + (f", b={index[0]}" if len(index) > 1 else "")
            raise tg.AnomalyError(f"{self.who}: o(t) at {where} has a non-finite logit "
                                  f"{logits[tuple(index)]} (class {index[-1]}); nothing to sample "
                                  "from")
        if self.temperature == 0:
            return np.argmax(logits, axis=-1)
        # the softmax in float64 whatever the logits' dtype, and u drawn below the cumulated
        # sum itself: the normalised probabilities of float16 (or float32) logits summed to
        # 1 - 1e-3 (1 - 2e-7), and a u in that gap picked the last class, even one of
        # probability 0 (a float16 row sampled its e^-100 class 8 times in 10,000)
        with np.errstate(over="ignore"):      # a gap beyond the float range: exp gives 0
            z = (logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)) / self.temperature
        flat = np.exp(z).reshape(-1, z.shape[-1])
        cumulated = (flat / flat.sum(axis=1, keepdims=True)).cumsum(axis=1)
        u = self.rng.random((flat.shape[0], 1)) * cumulated[:, -1:]
        # class k where cumulated[k-1] <= u < cumulated[k]: never one of probability 0
        ids = (cumulated <= u).sum(axis=1)
        return ids.reshape(z.shape[:-1])


class Design(Cell):
    """What the built-in designs share: parameters declared by shape, input checks, U x(t)."""

    def _init(self, seed, dtype, sizes, **shapes):
        """Check ``sizes`` (name -> positive int, set as attributes) and make the parameters
        ``shapes`` in order: 2-D weights ~ N(0, 1/fan_in) from ``seed``, 1-D biases zero."""
        who = type(self).__name__
        for name, value in sizes.items():
            setattr(self, name, checks.positive_int(value, who, name))
        rng = checks.generator(seed, who)
        for name, shape in shapes.items():
            shape = tuple(getattr(self, d) if isinstance(d, str) else d for d in shape)
            setattr(self, name, init_weight(rng, shape, shape[1], dtype, name) if len(shape) == 2
                    else init_bias(shape, dtype, name))

    def _sequence(self, xs, mask):
        """Checked inputs: (seq {"x": ...}, steps, batch or None, keep mask or None, is_ids)."""
        arr, is_ids, batched = checks.inputs(xs, self.n_in, self.name, self.dtype)
        steps = arr.shape[0]
        batch = arr.shape[1] if batched else None
        keep = checks.mask(mask, steps, batch, batched, self.name)
        if is_ids:
            checks.check_ids(arr, self.n_in, self.name, "xs", batched, keep)
        tensor = xs if isinstance(xs, tg.Tensor) and xs.requires_grad and not is_ids else None
        x = checks.padded_inputs(arr, keep, is_ids, self.name, tensor)
        return {"x": x}, steps, batch, keep, is_ids

    def _targets(self, ys, steps, batch, keep=None):
        """Class ids (T,) / (T, B), or float targets (T, n_out) / (T, B, n_out) with
        ``criterion="squared_error"``."""
        if ys is None:
            return None
        shape = (steps,) if batch is None else (steps, batch)
        return checks.step_targets(ys, shape, self.n_out, self.name, type(self).__name__, keep,
                                   self.regression, self.dtype)

    def _generated(self, ys, steps, feedback, batch):
        """(ys, steps) of a design that generates its sequence: the checked targets and their
        count (teacher forcing), or None and ``steps`` with a feedback sampler."""
        if ys is not None:
            ys = checks.as_array(ys, self.name, "ys")
            given, steps = steps, ys.shape[0] if ys.ndim else 0
            if steps == 0:
                raise tg.ShapeError(f"{self.name}: ys is an empty sequence (shape {ys.shape})")
            if given is not None and (isinstance(given, bool) or given != steps):
                raise tg.ConfigError(f"{self.name}: steps={given!r} disagrees with the {steps} "
                                     "targets ys (with targets there is one step per target); "
                                     "leave steps out, or give as many targets")
            return self._targets(ys, steps, batch), steps
        if feedback is None:
            free = "feedback='output'" if self.regression else "a feedback sampler"
            raise tg.ConfigError(f"{self.name}: give the targets ys (or steps= and {free})")
        return None, checks.positive_int(steps, self.name, "steps")

    def _fed_back(self, feedback):
        """``Plan.free`` of a design that feeds its output back, running free with ``feedback``:
        None (teacher forcing); a :class:`Sampler` (cross-entropy: the id sampled from o(t) feeds
        step t+1); or ``"output"`` (``criterion="squared_error"``: o(t) itself feeds step t+1, the
        float vector the squared error fits, as the targets feed it under teacher forcing).
        Sampling ids from a regression model's vector, or feeding back the logits of a
        classifier, is a ConfigError naming the design and its criterion."""
        if feedback is None:
            return None
        design = type(self).__name__
        if isinstance(feedback, str) and feedback != "output":
            raise tg.ConfigError(f"{self.name}: feedback must be a Sampler (ids sampled from "
                                 "o(t), criterion='cross_entropy') or 'output' (o(t) itself, "
                                 f"criterion='squared_error'), got {feedback!r}")
        if isinstance(feedback, str):
            if not self.regression:
                raise tg.ConfigError(
                    f"{self.name}: feedback='output' feeds o(t) itself back, for "
                    f"criterion='squared_error'; this {design} has criterion='cross_entropy' "
                    "(o(t) are logits of class ids): give a Sampler (rnn.Sampler(0) is greedy)")
            return ("y", _output_itself)
        if self.regression:
            raise tg.ConfigError(
                f"{self.name}: feedback= a Sampler picks class ids from o(t), but this {design} "
                "has criterion='squared_error' (o(t) is a float vector, not logits of classes); "
                "run it free with feedback='output' (o(t) itself feeds step t+1)")
        return ("y", _Sampled(feedback))

    def _first_output(self, y0, batch):
        """f(0), the output fed to step 1 (``checks.previous_output``): with
        ``criterion="squared_error"`` a float vector, never a class id."""
        if self.regression and y0 is not None:
            arr = y0.data if isinstance(y0, tg.Tensor) else checks.as_array(y0, self.name, "y0")
            if arr.dtype.kind != "f":
                wanted = (f"({self.n_out},)" if batch is None
                          else f"({self.n_out},) or ({batch}, {self.n_out})")
                raise tg.DTypeError(
                    f"{self.name}: this {type(self).__name__} has criterion='squared_error', so "
                    f"y0 (the output fed to step 1) is a float vector of shape {wanted}; got "
                    f"dtype {arr.dtype} of shape {arr.shape} (class ids need "
                    "criterion='cross_entropy')")
        return checks.previous_output(y0, self.n_out, batch, self.name, self.dtype)

    def _times(self, v, weight):
        """``weight`` times v as rows: ``take`` of the weight's columns for ids (a one-hot v), a
        matmul for float vectors."""
        wt = getattr(self.T, weight)
        return tg.take(wt, v, axis=0) if v.dtype.kind in "iu" else v @ wt

    def _affine(self, v, weight, bias):
        """``weight`` times v plus ``bias``; for ids one ``take`` of the biased columns, so that
        over all steps at once no (T, B, H) array is added twice."""
        if v.dtype.kind in "iu":
            return tg.take(self.T.biased(weight, bias), v, axis=0)
        return v @ getattr(self.T, weight) + bias

    def input_map(self, inputs):
        """u = U x(t) + b."""
        return self._affine(inputs["x"], "U", self.b)

    def readout(self, state):
        """o = c + V h."""
        return tg.addmm(self.c, state["h"], self.T.V)

    def _recur(self, state, u):
        """a = u + W h(t-1), h = tanh(a): the hidden-to-hidden step of figures 10.3, 10.5, 10.9, 10.10."""
        a = tg.addmm(u, state["h"], self.T.W).named("a")
        return {"h": a.tanh()}

    def _trace_ids(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        ys = (np.arange(1, steps + 1) % self.n_out)[:, None]
        if self.regression:
            ys = np.zeros((steps, 1, self.n_out), dtype=self.dtype)
        return xs, ys

    def _generate(self, run, temperature, seed, **kwargs):
        """Run with ``feedback=`` a :class:`Sampler` under no_grad; the sampled ids (steps, ...).
        A model with ``criterion="squared_error"`` has no ids to sample: a ConfigError."""
        if self.regression:
            raise tg.ConfigError(f"{type(self).__name__}.generate: samples class ids from o(t); "
                                 "a model with criterion='squared_error' outputs vectors (run it "
                                 "with feedback='output' to feed o(t) itself back)")
        sampler = Sampler(temperature, seed, who=f"{self.name}.generate")
        with tg.no_grad():
            run(feedback=sampler, **kwargs)
        return np.stack(sampler.picked)


def _output_itself(o):
    """The feedback of a regression model running free: o(t) itself (the identity; a softmax
    belongs to class probabilities)."""
    return o


class _Sampled:
    """The feedback of generation: the id sampled from o(t), as a leaf.  ``fed(ids)``: over a
    padded batch, the ids fed instead (a padded step carries its sequence's last one), which
    ``sampler.picked`` then records for that step."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __call__(self, o):
        return tg.Tensor(self.sampler(o.data))

    def fed(self, ids):
        self.sampler.picked[-1] = ids.data


class SequenceDesign(Design):
    """A design with an output o(t) at every step of its input sequence x(1..T): ``loss``,
    ``__call__`` and ``predict`` over ``run(xs, ys, h0, mask, per_step)``."""

    def run_for_loss(self, xs, ys=None, h0=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, mask=mask, per_step=False)

    def __call__(self, xs, h0=None, mask=None):
        """Forward only: (outputs [o(t)], states, last state)."""
        run = self.run(xs, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

    def predict(self, xs, h0=None, mask=None):
        """Class ids argmax o(t): (T,) or (T, B); with ``criterion="squared_error"`` the outputs
        o(t) themselves: (T, n_out) or (T, B, n_out).  A padded step (``mask``) repeats what its
        carried state gives (leave it out of a score).  A NaN or inf logit is an AnomalyError
        naming t and b, not a class."""
        with tg.no_grad():
            outputs = np.stack([o.data for o in self(xs, h0=h0, mask=mask)[0]])
        if self.regression:
            return outputs
        return checks.class_ids(outputs, f"{self.name}.predict", "o(t)", steps=True)

    def _trace_roots(self, steps):
        return [self.run(*self._trace_ids(steps)).loss]


class CausalSequenceDesign(SequenceDesign):
    """A causal sequence design, o(t) = c + V h(t) reading x(1..t) (figure 10.3's shape), that
    can also generate: ElmanRNN, LSTM and GRU differ only in their state and step.

    With ``layers > 1`` or ``bidirectional`` (:mod:`rnn.stacked`) every layer and direction is
    a chain over its own parameters, named with its suffix (``W2``, ``W_r``, ``Uf2_r``, ...),
    and o(t) = c + V [top layer's states]; a bidirectional model is not causal."""

    layers = 1
    bidirectional = False

    @property
    def layered(self):
        return self.layers > 1 or self.bidirectional

    def own_config(self):
        extra = {"candidate": self.candidate} if hasattr(self, "candidate") else {}
        if hasattr(self, "reset"):
            extra["reset"] = self.reset
        return {**super().own_config(), "layers": self.layers,
                "bidirectional": self.bidirectional, **extra}

    @property
    def state_is_dict(self):
        """Several layers or directions: the state is a dict of their parts."""
        return self.layered

    def _layered_init(self, seed, dtype, sizes, layers, bidirectional, who):
        """The parameters of every layer and direction (``_layer_shapes``), then V and c."""
        chains = stacked.configure(self, layers, bidirectional, who)
        H = checks.positive_int(sizes["n_hidden"], who, "n_hidden")
        width = checks.positive_int(sizes["n_in"], who, "n_in")
        below = H * (2 if self.bidirectional else 1)
        shapes = {}
        for k, layer in chains:
            shapes.update(self._layer_shapes(k, width if layer == 1 else below, H))
        self._init(seed, dtype, sizes, **shapes, V=("n_out", below), c=("n_out",))
        self.parts = {}
        for k, _ in chains:
            self.parts.update(self._layer_parts(k))
        return [k for k, _ in chains]

    def to_torch(self):
        """``(module, head)``: the equal ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` and ``nn.Linear``
        (ElmanRNN, LSTM with a tanh input unit, GRU with ``reset="after"``); see
        :func:`rnn.from_torch`.  Needs torch, imported only here."""
        from .pytorch import to_torch
        return to_torch(self)

    def readout(self, state):
        """o = c + V h (the top layer's states side by side when there are several)."""
        if not self.layered:
            return tg.addmm(self.c, state["h"], self.T.V)
        top = [state[name] for name in stacked.top_parts(self)]
        return tg.addmm(self.c, top[0] if len(top) == 1 else tg.concat(top, axis=-1), self.T.V)

    def run(self, xs, ys=None, h0=None, mask=None, feedback=None, per_step=True):
        """Unroll over the sequence.

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B), optional (without them there is no loss)
        h0 : (H,) or (B, H), default zeros; a Tensor is used as is (e.g. a carried state); for
            a state of several parts a dict of them (the LSTM's {"s": ..., "h": ...})
        mask : (T, B) of 0/1, optional: padded steps add no loss and carry the state unchanged;
            L(t) is the sum over the kept rows divided by the full B (not by the number kept)
        feedback : Sampler, optional (generation): ids only; x(t+1) is the id sampled from o(t),
            and xs gives the first input only.
        per_step : bool
            True: every op of every step is a node of that step's scope (x(t), the state and
            gates, o(t), L(t): what ``viz`` draws).  False (what ``loss`` and training use):
            only the recurrence (the terms in h(t-1)) is per step; the input map u = U x + b of
            all steps, and the output layer and loss of all steps, are one node each in the
            model's scope.  The LSTM and the GRU (reset="before") then compute their gates
            from their weights stacked once per unroll: one matmul per step for all gates
            (the per-gate products, each gate named, are what True draws).  Same loss and
            gradients (to rounding).  Inside ``tg.detect_anomaly()`` the run is per step
            whatever this says.

        Returns
        -------
        Unrolled (loss, outputs o(t), states, losses L(t), last state); with
        ``per_step=False`` there are no per-step outputs and losses.  The state is h(t), or a
        dict of the parts for a design with several (the LSTM's s and h).
        """
        with self.transposes(stack_gates=not per_step):
            return self._run(xs, ys, h0, mask, feedback, per_step)

    def _run(self, xs, ys, h0, mask, feedback, per_step):
        seq, steps, batch, keep, is_ids = self._sequence(xs, mask)
        if self.layered:
            if feedback is not None:
                raise tg.ConfigError(f"{type(self).__name__}: generation runs one layer forward "
                                     "(layers=1, bidirectional=False)")
            ys = self._targets(ys, steps, batch, keep)
            state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
            return stacked.run(self, seq, steps, batch, keep, ys, state0, per_step)
        free = None
        if feedback is not None:
            if not is_ids or keep is not None or ys is not None:
                raise tg.ConfigError(f"{self.name}: generation feeds back ids: give ids xs, no ys or mask")
            if self.n_out != self.n_in:
                raise tg.ConfigError(f"{self.name}: generation needs n_out == n_in, got "
                                     f"{self.n_out} and {self.n_in}")
            free = ("x", _Sampled(feedback))
        ys = self._targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch, free=free,
                                classes=None if self.regression else self.n_out), per_step)

    def generate(self, prompt, steps, temperature=1.0, seed=0, h0=None):
        """Free-running generation: read ``prompt`` ids, then feed each sampled id back.

        Parameters
        ----------
        prompt : ids (P,) or (P, B), P >= 1
        steps : int, how many ids to generate
        temperature : float; 0 is greedy decoding (argmax)
        seed : int, for the sampling

        Returns
        -------
        ids (steps,) or (steps, B) : the generated continuation.
        """
        steps = checks.positive_int(steps, f"{self.name}.generate", "steps")
        if self.layered:
            raise tg.ConfigError(f"{type(self).__name__}.generate: generation runs one layer "
                                 "forward (layers=1, bidirectional=False)")
        if self.regression:
            raise tg.ConfigError(f"{type(self).__name__}.generate: samples class ids from o(t); "
                                 "a model with criterion='squared_error' outputs vectors (run it "
                                 "with model(xs) or predict)")
        prompt, is_ids, _ = checks.inputs(np.atleast_1d(checks.as_array(prompt, self.name, "prompt")),
                                          self.n_in, f"{self.name}.generate", self.dtype)
        if not is_ids:
            raise tg.DTypeError(f"{self.name}.generate: the prompt must be integer ids")
        checks.check_ids(prompt, self.n_in, f"{self.name}.generate", "prompt", prompt.ndim == 2)
        if len(prompt) > 1:
            with tg.no_grad():
                h0 = self.run(prompt[:-1], h0=h0).last
        return self._generate(self.run, temperature, seed, xs=prompt[[-1] * steps], h0=h0)


class ElmanRNN(CausalSequenceDesign):
    """Figure 10.3 / eqs. 10.8-10.11: hidden-to-hidden recurrence, an output at every step.

    a(t) = b + W h(t-1) + U x(t), h(t) = tanh(a(t)), o(t) = c + V h(t), L(t) = CE(o(t), y(t)).

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Input width (vocabulary size for ids), H, and the number of classes.
    seed : int
        Initialisation: weights ~ N(0, 1/fan_in), biases zero.
    dtype : numpy float dtype
    """

    name = "elman"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, criterion="cross_entropy",
                 layers=1, bidirectional=False):
        self._set_criterion(criterion, "ElmanRNN")
        sizes = {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}
        if layers != 1 or bidirectional:
            self._layered_init(seed, dtype, sizes, layers, bidirectional, "ElmanRNN")
            return
        stacked.configure(self, layers, bidirectional, "ElmanRNN")
        self._init(seed, dtype, sizes,
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), V=("n_out", "n_hidden"),
                   b=("n_hidden",), c=("n_out",))
        self.parts = {"h": self.n_hidden}

    step = Design._recur

    @staticmethod
    def _layer_shapes(k, width, H):
        return {f"U{k}": (H, width), f"W{k}": (H, H), f"b{k}": (H,)}

    def _layer_parts(self, k):
        return {f"h{k}": self.n_hidden}

    def _layer_input(self, x, k):
        return self._affine(x, f"U{k}", getattr(self, f"b{k}"))

    def _layer_step(self, state, u, k):
        return {f"h{k}": tg.addmm(u, state[f"h{k}"], getattr(self.T, f"W{k}")).tanh()}


CANDIDATES = ("tanh", "sigmoid")
RESETS = ("before", "after")


def _check_bias(value, who, what):
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            or not np.isfinite(value)):
        raise tg.ConfigError(f"{who}: {what} must be a finite number, got {value!r}")


def _candidate(candidate, who):
    if candidate not in CANDIDATES:
        raise tg.ConfigError(f"{who}: candidate must be one of {CANDIDATES}, got {candidate!r}")
    return candidate


_LSTM_GATES = ("f", "g", "o", "")     # the order of the gates' columns when stacked


def _joined_input(model, x, weights, biases, recurrent):
    """The input maps b* + U* x of several gates as one Tensor (..., k H): one ``take`` of the
    stacked biased columns for ids, one matmul and one bias for float vectors.

    The gates' ``recurrent`` weights are joined here too (``T.joined``, used by every step), so
    that on the loss path that node is made with the input map, before the steps, not inside
    step 1: the op graph draws it with what is computed once and shared by all steps."""
    T = model.T
    T.joined(recurrent)
    if x.dtype.kind in "iu":
        return tg.take(T.joined_biased(weights, biases), x, axis=0)
    return x @ T.joined(weights) + T.joined_bias(biases)


class LSTM(CausalSequenceDesign):
    """Section 10.10.1, eqs. 10.40-10.44: the long short-term memory, state parts s and h.

    f(t) = sigmoid(bf + Uf x(t) + Wf h(t-1))            forget gate (10.40)
    g(t) = sigmoid(bg + Ug x(t) + Wg h(t-1))            input gate (10.42)
    q(t) = sigmoid(bo + Uo x(t) + Wo h(t-1))            output gate (10.44)
    s(t) = f(t) s(t-1) + g(t) tanh(b + U x(t) + W h(t-1))   cell state (10.41)
    h(t) = tanh(s(t)) q(t)                              (10.43)
    o(t) = c + V h(t), L(t) = CE(o(t), y(t)).

    U* are (H, n_in), W* (H, H), b* (H,).  ``candidate="sigmoid"`` makes the input unit the
    book's printed sigmoid instead of tanh (PyTorch's convention).  The forget-gate bias bf
    starts at ``forget_bias`` (1: section 10.10.1 says it helps; a long delay wants more, so
    that sigmoid(bf) ** delay does not vanish), every other bias at 0.  h0 is a dict of the
    parts ``{"s": ..., "h": ...}`` (a missing part is zeros).

    ``loss`` (``run(per_step=False)``) computes the four gates with one matmul per step, against
    [Wf.T | Wg.T | Wo.T | W.T] joined once per unroll (and the U*, b* likewise for the input
    map); every parameter keeps its name and gets exactly its own block of the gradient.
    """

    name = "lstm"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, candidate="tanh",
                 forget_bias=1.0, criterion="cross_entropy", layers=1, bidirectional=False):
        self._set_criterion(criterion, "LSTM")
        self.candidate = _candidate(candidate, "LSTM")
        _check_bias(forget_bias, "LSTM", "forget_bias")
        sizes = {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}
        if layers != 1 or bidirectional:
            for k in self._layered_init(seed, dtype, sizes, layers, bidirectional, "LSTM"):
                getattr(self, f"bf{k}").data += forget_bias
            return
        stacked.configure(self, layers, bidirectional, "LSTM")
        shapes = {}
        for k in ("f", "g", "o", ""):
            shapes.update({f"U{k}": ("n_hidden", "n_in"), f"W{k}": ("n_hidden", "n_hidden"),
                           f"b{k}": ("n_hidden",)})
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   **shapes, V=("n_out", "n_hidden"), c=("n_out",))
        self.bf.data += forget_bias
        self.parts = {"s": self.n_hidden, "h": self.n_hidden}

    def input_map(self, inputs):
        """b* + U* x(t) of the three gates and of the input unit, keyed f, g, o and ""."""
        return self._layer_input(inputs["x"], "")

    def step(self, state, u):
        return self._layer_step(state, u, "")

    @staticmethod
    def _layer_shapes(k, width, H):
        shapes = {}
        for gate in ("f", "g", "o", ""):
            shapes.update({f"U{gate}{k}": (H, width), f"W{gate}{k}": (H, H), f"b{gate}{k}": (H,)})
        return shapes

    def _layer_parts(self, k):
        return {f"s{k}": self.n_hidden, f"h{k}": self.n_hidden}

    def _layer_input(self, x, k):
        """b* + U* x(t) of every gate, keyed by gate; with stacked gates (``loss``) one Tensor,
        the gates' columns side by side in the order f, g, o, input unit."""
        if self.T.stack_gates:
            return _joined_input(self, x, [f"U{g}{k}" for g in _LSTM_GATES],
                                 [f"b{g}{k}" for g in _LSTM_GATES],
                                 [f"W{g}{k}" for g in _LSTM_GATES])
        return {g: self._times(x, f"U{g}{k}") + getattr(self, f"b{g}{k}") for g in _LSTM_GATES}

    def _layer_step(self, state, u, k):
        h, T = state[f"h{k}"], self.T
        if type(u) is not dict:      # stacked gates: one product for all four
            H = self.n_hidden
            z = tg.addmm(u, h, T.joined([f"W{g}{k}" for g in _LSTM_GATES]))
            if self.candidate == "sigmoid":
                gates = z.sigmoid()
                unit = gates[..., 3 * H:]
            else:
                gates = z[..., :3 * H].sigmoid()
                unit = z[..., 3 * H:].tanh()
            s = gates[..., :H] * state[f"s{k}"] + gates[..., H:2 * H] * unit
            return {f"s{k}": s, f"h{k}": s.tanh() * gates[..., 2 * H:3 * H]}
        f = tg.addmm(u["f"], h, getattr(T, f"Wf{k}")).sigmoid().named(f"f{k}")
        g = tg.addmm(u["g"], h, getattr(T, f"Wg{k}")).sigmoid().named(f"g{k}")
        q = tg.addmm(u["o"], h, getattr(T, f"Wo{k}")).sigmoid().named(f"q{k}")
        s = f * state[f"s{k}"] + g * getattr(tg.addmm(u[""], h, getattr(T, f"W{k}")),
                                               self.candidate)()
        return {f"s{k}": s, f"h{k}": s.tanh() * q}


class GRU(CausalSequenceDesign):
    """Section 10.10.2, eqs. 10.45-10.47 in their consistent reading: the gated recurrent unit.

    u(t) = sigmoid(bu + Uu x(t) + Wu h(t-1))            update gate
    r(t) = sigmoid(br + Ur x(t) + Wr h(t-1))            reset gate
    h(t) = u(t) h(t-1) + (1 - u(t)) tanh(b + U x(t) + W (r(t) h(t-1)))
    o(t) = c + V h(t), L(t) = CE(o(t), y(t)).

    U* are (H, n_in), W* (H, H), b* (H,).  ``candidate="sigmoid"`` is the book's printed
    sigmoid in place of tanh (Cho et al. and PyTorch use tanh).  The update-gate bias bu
    starts at ``update_bias`` (0; a long delay wants more: u -> 1 copies the state), every
    other bias at 0.

    By default (``reset="before"``), as in the book, the reset gate multiplies h(t-1) before W
    (``W (r h)``), which is not PyTorch's ``nn.GRU``: the same weights give different states.
    ``reset="after"`` is torch's ``r (W h + bh)``, with a second candidate bias ``bh`` (torch's
    b_hn); ``rnn.from_torch`` makes that one.  The update gate weighs h(t-1) the same way in
    both (u h(t-1) + (1 - u) candidate).  ``layers`` and ``bidirectional``: see
    :class:`CausalSequenceDesign`.

    With ``reset="before"``, ``loss`` (``run(per_step=False)``) computes u and r with one matmul
    per step against [Wu.T | Wr.T] joined once per unroll (W multiplies r h(t-1), so it stays
    apart); ``reset="after"`` keeps one product per gate.
    """

    name = "gru"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, candidate="tanh",
                 update_bias=0.0, criterion="cross_entropy", layers=1, bidirectional=False,
                 reset="before"):
        self._set_criterion(criterion, "GRU")
        self.candidate = _candidate(candidate, "GRU")
        _check_bias(update_bias, "GRU", "update_bias")
        if reset not in RESETS:
            raise tg.ConfigError(f"GRU: reset must be one of {RESETS}, got {reset!r}")
        self.reset = reset
        sizes = {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}
        if layers != 1 or bidirectional:
            for k in self._layered_init(seed, dtype, sizes, layers, bidirectional, "GRU"):
                getattr(self, f"bu{k}").data += update_bias
            return
        stacked.configure(self, layers, bidirectional, "GRU")
        shapes = {}
        for k in ("u", "r", ""):
            shapes.update({f"U{k}": ("n_hidden", "n_in"), f"W{k}": ("n_hidden", "n_hidden"),
                           f"b{k}": ("n_hidden",)})
        if reset == "after":
            shapes["bh"] = ("n_hidden",)
        self._init(seed, dtype, sizes, **shapes, V=("n_out", "n_hidden"), c=("n_out",))
        self.bu.data += update_bias
        self.parts = {"h": self.n_hidden}

    def input_map(self, inputs):
        """b* + U* x(t) of the two gates and of the candidate, keyed u, r and ""."""
        return self._layer_input(inputs["x"], "")

    def step(self, state, inp):
        return self._layer_step(state, inp, "")

    def _layer_shapes(self, k, width, H):
        shapes = {}
        for gate in ("u", "r", ""):
            shapes.update({f"U{gate}{k}": (H, width), f"W{gate}{k}": (H, H), f"b{gate}{k}": (H,)})
        if self.reset == "after":
            shapes[f"bh{k}"] = (H,)
        return shapes

    def _layer_parts(self, k):
        return {f"h{k}": self.n_hidden}

    def _layer_input(self, x, k):
        """b* + U* x(t) of the gates and of the candidate, keyed u, r and ""; with stacked gates
        (``loss``, reset="before") a pair: the two gates' columns side by side, the candidate's."""
        if self.T.stack_gates and self.reset == "before":
            gates = _joined_input(self, x, [f"Uu{k}", f"Ur{k}"], [f"bu{k}", f"br{k}"],
                                  [f"Wu{k}", f"Wr{k}"])
            return gates, self._affine(x, f"U{k}", getattr(self, f"b{k}"))
        return {g: self._times(x, f"U{g}{k}") + getattr(self, f"b{g}{k}") for g in ("u", "r", "")}

    def _layer_step(self, state, inp, k):
        h, T = state[f"h{k}"], self.T
        if type(inp) is tuple:       # stacked gates: one product for u and r
            H = self.n_hidden
            gates = tg.addmm(inp[0], h, T.joined([f"Wu{k}", f"Wr{k}"])).sigmoid()
            u = gates[..., :H]
            candidate = getattr(tg.addmm(inp[1], gates[..., H:] * h, getattr(T, f"W{k}")),
                                self.candidate)()
            return {f"h{k}": u * h + (1 - u) * candidate}
        u = tg.addmm(inp["u"], h, getattr(T, f"Wu{k}")).sigmoid().named(f"u{k}")
        r = tg.addmm(inp["r"], h, getattr(T, f"Wr{k}")).sigmoid().named(f"r{k}")
        if self.reset == "after":        # PyTorch's: r (W h + bh)
            hidden = r * tg.addmm(getattr(self, f"bh{k}"), h, getattr(T, f"W{k}"))
            candidate = getattr(inp[""] + hidden, self.candidate)()
        else:                            # the book's: W (r h)
            candidate = getattr(tg.addmm(inp[""], r * h, getattr(T, f"W{k}")), self.candidate)()
        return {f"h{k}": u * h + (1 - u) * candidate}


class JordanRNN(Design):
    """Figure 10.4: the only recurrence is output to hidden; figure 10.6 trains it with teacher forcing.

    h(t) = tanh(b + W f(t-1) + U x(t)), o(t) = c + V h(t), f(0) = 0, with
    f(t-1) = onehot(y(t-1)) under teacher forcing and f(t-1) = softmax(o(t-1)) when it runs
    free.  W is (H, n_out).  The cell has no state parts: all it carries is the fed-back
    output, so under teacher forcing (section 10.2.1) its steps decouple and ``loss`` has
    no sequential loop at all.

    With ``criterion="squared_error"`` the targets y(t) are float vectors (n_out,) and
    L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2: teacher forcing feeds f(t-1) = y(t-1) (the target
    vector itself), running free f(t-1) = o(t-1) (itself, no softmax), and f(0) is a zero
    vector or a float ``y0``.  There are no ids to sample (``generate`` is a ConfigError).
    """

    name = "jordan"
    feedback = "y"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64,
                 criterion="cross_entropy"):
        self._set_criterion(criterion, "JordanRNN")
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_out"), V=("n_out", "n_hidden"),
                   b=("n_hidden",), c=("n_out",))

    def input_map(self, inputs):
        return self._affine(inputs["x"], "U", self.b) + self._times(inputs["y"], "W")

    def step(self, state, u):
        return {"h": u.named("a").tanh()}

    def run(self, xs, ys=None, teacher_forcing=True, feedback=None, y0=None, per_step=True,
            mask=None):
        """Unroll over the sequence.

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B) (float vectors (T, n_out) / (T, B, n_out) with
            ``criterion="squared_error"``); needed for teacher forcing, optional when running free
        mask : (T, B) of 0/1, optional: padded sequences (right padding); padded steps add no
            loss (the steps after a sequence's end read only its padding, so nothing else
            changes)
        teacher_forcing : bool
            True: f(t-1) = onehot(y(t-1)) (figure 10.6, train time), y(t-1) itself with the
            squared error.  False: f(t-1) = softmax(o(t-1)), o(t-1) itself with the squared error.
        feedback : Sampler, optional
            Generation: f(t-1) = onehot of the id sampled from o(t-1) (overrides both modes).
            With the squared error there are no ids: ``"output"`` (o(t-1) itself, as
            ``teacher_forcing=False``), and a Sampler is a ConfigError.
        y0 : f(0): ids () / (B,), or outputs (n_out,) / (B, n_out) as an array or a Tensor
            (e.g. the previous chunk's ``last``); one () or (n_out,) is used for every
            sequence of a batch, as h0 of shape (H,) is; default zeros (floats only with the
            squared error)
        per_step : bool, as ElmanRNN.run (False: no loop under teacher forcing)

        Returns
        -------
        Unrolled (``last`` and ``feedback`` are the f(T) the next step would get)
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        if ys is None and teacher_forcing and feedback is None:
            raise tg.ConfigError(f"{self.name}: teacher forcing needs the targets ys "
                                 "(or teacher_forcing=False)")
        ys = self._targets(ys, steps, batch, keep)
        first = self._first_output(y0, batch)
        if feedback is not None:
            free = self._fed_back(feedback)
        elif teacher_forcing:
            free = None
        else:
            free = ("y", _output_itself if self.regression else tg.softmax)
        return self.unroll(Plan(seq, steps, ys=ys, keep=keep, batch=batch, y0=first, free=free,
                                y0_name="y" if free is None else "o"), per_step)

    def run_for_loss(self, xs, ys=None, teacher_forcing=True, y0=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, teacher_forcing=teacher_forcing, y0=y0, per_step=False,
                        mask=mask)

    def __call__(self, xs, ys=None, teacher_forcing=False):
        """Forward only (free running unless ``teacher_forcing`` with ``ys``): (outputs, states, last)."""
        run = self.run(xs, ys, teacher_forcing=teacher_forcing)
        return run.outputs, run.states, run.last

    def generate(self, xs, temperature=1.0, seed=0):
        """Free-running generation: each step's sampled output id feeds the next step.

        xs : the inputs x(t), ids or floats, (T, ...); temperature 0 is greedy decoding.
        Returns ids (T,) or (T, B).
        """
        return self._generate(self.run, temperature, seed, xs=xs)

    def _trace_roots(self, steps):
        return [self.run(*self._trace_ids(steps)).loss]


class SequenceToOne(SequenceDesign):
    """Figure 10.5: read the whole sequence, one output and one loss at the end.

    a(t) = b + W h(t-1) + U x(t), h(t) = tanh(a(t)); L = CE(c + V h(tau), y).
    With a mask, each sequence's h(tau) is its state after its own last step.
    """

    name = "seq2one"
    outputs = "last"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), V=("n_out", "n_hidden"),
                   b=("n_hidden",), c=("n_out",))
        self.parts = {"h": self.n_hidden}

    step = Design._recur

    def run(self, xs, y=None, h0=None, mask=None, per_step=True):
        """Unroll over the sequence; the output o and loss L are made in the last step's scope.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); y : id () or ids (B,);
        h0 : (H,) or (B, H); mask : (T, B) of 0/1 (padded steps carry h unchanged).
        Returns Unrolled with one output and at most one loss.
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        if y is not None:
            y = checks.targets(y, (batch,) if batch is not None else (), self.n_out, self.name,
                               batch is not None, what="y", axis="b")
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        return self.unroll(Plan(seq, steps, state0, y, keep, batch), per_step)

    def predict(self, xs, h0=None, mask=None):
        """Class ids argmax o(tau): () or (B,)."""
        with tg.no_grad():
            logits = self.run(xs, h0=h0, mask=mask).outputs[0].data
        return checks.class_ids(logits, f"{self.name}.predict", "o(τ)")

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        return [self.run(xs, np.zeros(1, dtype=np.int64)).loss]


class VectorToSequence(Design):
    """Figure 10.9: a fixed vector x enters every step through R; y(t-1) feeds h(t).

    a(t) = b + W h(t-1) + R x + U onehot(y(t-1)), y(0) = 0, h(t) = tanh(a(t)),
    o(t) = c + V h(t).  U is (H, n_out): it reads the previous output.

    Section 10.2.4 lists three ways to feed x: an extra input at every step (always here),
    the initial state, or both: with ``h0_from_x=True`` also h(0) = tanh(Q x), Q (H, n_in).

    With ``criterion="squared_error"`` the targets y(t) are float vectors (n_out,),
    L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2, and U reads y(t-1) itself (y(0) = the zero
    vector); ``feedback="output"`` runs it free on o(t-1) itself.  There are no ids to sample
    (``generate`` is a ConfigError).
    """

    name = "vec2seq"
    feedback = "y"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, h0_from_x=False,
                 criterion="cross_entropy"):
        self._set_criterion(criterion, "VectorToSequence")
        extra = {"Q": ("n_hidden", "n_in")} if h0_from_x else {}
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   R=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), U=("n_hidden", "n_out"),
                   V=("n_out", "n_hidden"), b=("n_hidden",), c=("n_out",), **extra)
        self.h0_from_x = bool(h0_from_x)
        self.parts = {"h": self.n_hidden}

    def input_map(self, inputs):
        return self._affine(inputs["y"], "U", self.b) + inputs["x"] @ self.T.R

    step = Design._recur

    def initial_state(self, state, statics):
        if not self.h0_from_x:
            return state
        with tg.scope("t=0"):
            return {"h": (statics["x"] @ self.T.Q).tanh().named("h")}

    def _vector(self, x):
        who = self.name
        arr = x.data if isinstance(x, tg.Tensor) else np.asarray(x)
        if arr.dtype.kind != "f":
            raise tg.DTypeError(f"{who}: x must be a float vector (n_in,) or (B, n_in), got dtype "
                                f"{arr.dtype}")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n_in:
            raise tg.ShapeError(f"{who}: x must have shape ({self.n_in},) or (B, {self.n_in}), "
                                f"got {arr.shape}")
        if isinstance(x, tg.Tensor) and x.requires_grad:
            return checks.tensor_dtype(x, self.dtype, who, "x")
        return checks.in_dtype(arr, self.dtype, who, "x")

    def run(self, x, ys=None, h0=None, steps=None, feedback=None, per_step=True):
        """Unroll from the fixed vector x.

        x : floats (n_in,) or (B, n_in) (a Tensor is read as is, so gradients reach it);
        ys : ids (T,) or (T, B) (teacher forcing: y(t-1) feeds step t); float vectors (T, n_out)
        or (T, B, n_out) with ``criterion="squared_error"``; h0 : (H,) or (B, H);
        steps, feedback : generation without ys (a Sampler picks y(t), which feeds step t+1;
        with the squared error ``feedback="output"``: o(t) itself feeds step t+1).
        Returns Unrolled.
        """
        x = self._vector(x)
        batch = x.shape[0] if x.ndim == 2 else None
        ys, steps = self._generated(ys, steps, feedback, batch)
        if h0 is not None and self.h0_from_x:
            raise tg.ConfigError(f"{self.name}: h(0) is computed from x (h0_from_x=True); "
                                 "do not pass h0 as well")
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        zeros = np.zeros((self.n_out,) if batch is None else (batch, self.n_out), dtype=self.dtype)
        free = self._fed_back(feedback)
        return self.unroll(Plan({}, steps, state0, ys, None, batch, static={"x": x}, y0=zeros,
                                free=free), per_step)

    def run_for_loss(self, x, ys=None, h0=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(x, ys, h0=h0, per_step=False)

    def generate(self, x, steps, temperature=1.0, seed=0, h0=None):
        """Sample a sequence from the vector x: each sampled y(t) feeds step t+1.

        Returns ids (steps,) or (steps, B); temperature 0 is greedy decoding.
        """
        return self._generate(self.run, temperature, seed, x=x, h0=h0, steps=steps)

    def __call__(self, x, ys, h0=None):
        """Forward (teacher-forced with ys): (outputs, states, last)."""
        run = self.run(x, ys, h0=h0)
        return run.outputs, run.states, run.last

    def _trace_roots(self, steps):
        ys = (np.arange(steps) % self.n_out)[:, None]
        if self.regression:
            ys = np.zeros((steps, 1, self.n_out), dtype=self.dtype)
        return [self.run(np.zeros((1, self.n_in)), ys).loss]


class ConditionalRNN(Design):
    """Figure 10.10: x(t) -> y(t) of the same length, with y(t-1) -> h(t) connections.

    a(t) = b + W h(t-1) + U x(t) + R onehot(y(t-1)), y(0) = 0, h(t) = tanh(a(t)),
    o(t) = c + V h(t).  R is (H, n_out).  Under teacher forcing R y(t-1) is known in
    advance, so ``loss`` computes it for all steps at once, beside U x(t).

    With ``criterion="squared_error"`` the targets y(t) are float vectors (n_out,),
    L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2, and R reads y(t-1) itself (y(0) = the zero vector
    or a float ``y0``); ``feedback="output"`` runs it free on o(t-1) itself.  There are no ids to
    sample (``generate`` is a ConfigError).
    """

    name = "conditional"
    feedback = "y"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64,
                 criterion="cross_entropy"):
        self._set_criterion(criterion, "ConditionalRNN")
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), R=("n_hidden", "n_out"),
                   V=("n_out", "n_hidden"), b=("n_hidden",), c=("n_out",))
        self.parts = {"h": self.n_hidden}

    def input_map(self, inputs):
        return self._affine(inputs["x"], "U", self.b) + self._times(inputs["y"], "R")

    step = Design._recur

    def run(self, xs, ys=None, h0=None, mask=None, feedback=None, y0=None, per_step=True):
        """Unroll over the sequence.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); ys : ids (T,) / (T, B)
        (y(t-1) feeds step t), float vectors (T, n_out) / (T, B, n_out) with
        ``criterion="squared_error"``; h0 : (H,) or (B, H); mask : (T, B) of 0/1;
        feedback : Sampler (generation without ys: the sampled y(t) feeds step t+1); with the
        squared error ``"output"`` (o(t) itself feeds step t+1);
        y0 : y(0), ids () / (B,) or outputs (n_out,) / (B, n_out), an array or a Tensor (the
        previous chunk's ``feedback``); one () or (n_out,) serves every sequence of a batch, as
        h0 of shape (H,) does; default zeros (floats only with the squared error).
        Returns Unrolled (``feedback`` is y(T)).
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        if ys is None and feedback is None:
            free = "feedback='output'" if self.regression else "a feedback sampler"
            raise tg.ConfigError(f"{self.name}: give the targets ys (or {free})")
        ys = self._targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        first = self._first_output(y0, batch)
        free = self._fed_back(feedback)
        return self.unroll(Plan(seq, steps, state0, ys, keep, batch, y0=first, free=free),
                           per_step)

    def run_for_loss(self, xs, ys=None, h0=None, mask=None, y0=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, mask=mask, y0=y0, per_step=False)

    def generate(self, xs, temperature=1.0, seed=0, h0=None):
        """Output ids for the inputs xs, each sampled y(t) feeding step t+1 (temperature 0: greedy)."""
        return self._generate(self.run, temperature, seed, xs=xs, h0=h0)

    def __call__(self, xs, ys, h0=None, mask=None):
        """Forward (teacher-forced with ys): (outputs, states, last)."""
        run = self.run(xs, ys, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

    def _trace_roots(self, steps):
        return [self.run(*self._trace_ids(steps)).loss]


class BidirectionalRNN(SequenceDesign):
    """Figure 10.11 (section 10.3): a chain forward in time and a chain backward in time.

    h(t) = tanh(b + W h(t-1) + U x(t)) for t = 1..T (h(0) = 0),
    g(t) = tanh(bg + Wg g(t+1) + Ug x(t)) for t = T..1 (g(T+1) = 0),
    o(t) = c + V [h(t); g(t)] (V is (n_out, 2H)), L(t) = CE(o(t), y(t)).

    o(t) sees the whole input sequence, so the design is not causal (no truncated BPTT).  The
    two chains are :class:`~rnn.core.Chain` s of this model; the backward one runs with time
    reversed, each of its nodes in the scope of its real time step t.  Both read the same
    x(t).  With a mask, padded steps at the end carry g(T+1) = 0 back to each sequence's own
    last step.
    """

    name = "bidirectional"
    causal = False

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, criterion="cross_entropy"):
        self._set_criterion(criterion, "BidirectionalRNN")
        both = 2 * checks.positive_int(n_hidden, "BidirectionalRNN", "n_hidden")
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), b=("n_hidden",),
                   Ug=("n_hidden", "n_in"), Wg=("n_hidden", "n_hidden"), bg=("n_hidden",),
                   V=("n_out", both), c=("n_out",))
        self.parts = {"h": self.n_hidden, "g": self.n_hidden}

    def _chain(self, part, U, W, b):
        """The chain of state ``part``: part(t) = tanh(b + W part(previous) + U x(t))."""
        def input_map(inputs):
            return self._times(inputs["x"], U) + getattr(self, b)

        def step(state, u):
            return {part: tg.addmm(u, state[part], getattr(self.T, W)).tanh()}
        return Chain(self, {part: self.n_hidden}, step, input_map)

    def readout(self, state):
        """o = c + V [h; g]."""
        return tg.addmm(self.c, tg.concat([state["h"], state["g"]], axis=-1), self.T.V)

    def run(self, xs, ys=None, h0=None, mask=None, per_step=True):
        """Unroll both chains over the sequence and read o(t) from h(t) and g(t).

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B), optional
        h0 : dict {"h": h(0), "g": g(T+1)} of (H,) or (B, H) arrays, optional (missing: zeros)
        mask : (T, B) of 0/1, optional (right padding)
        per_step : bool, as ElmanRNN.run

        Returns
        -------
        Unrolled: ``parts`` {"h": [h(t)], "g": [g(t)]} in time order, ``states`` a dict of
        both per step, ``last`` {"h": h(T), "g": g(1)}.
        """
        seq, steps, batch, keep, _ = self._sequence(xs, mask)
        ys = self._targets(ys, steps, batch, keep)
        state0 = checks.states(h0, self.parts, batch, self.name, self.dtype)
        with self.transposes():
            if per_step:     # one x(t) leaf per step, read by both chains
                with tg.scope(self.name):
                    seq = {"x": step_leaves(seq["x"], "x", steps)}
            chains = {"h": self._chain("h", "U", "W", "b"), "g": self._chain("g", "Ug", "Wg", "bg")}
            runs = {part: chain.unroll(Plan(seq, steps, {part: state0[part]}, keep=keep,
                                            batch=batch, reverse=part == "g"), per_step)
                    for part, chain in chains.items()}
            history = {part: run.parts[part] for part, run in runs.items()}
            last = {part: run.last[part] for part, run in runs.items()}
            if not per_step and ys is not None:
                with tg.scope(self.name):
                    loss = self.batched_loss(history, ys, keep, batch)
                return self._result(history, last, None, loss)
            with tg.scope(self.name):
                def outputs(t, _):
                    state = {part: history[part][t - 1] for part in history}
                    return None, output_and_loss(self.readout, state,
                                                 None if ys is None else ys[t - 1],
                                                 None if keep is None else keep[t - 1], batch,
                                                 self.criterion)
                _, named = unroll(outputs, None, steps)
            return self._result({**history, **named}, last, None)


ATTENTIONS = (None, "additive", "dot")


REMADE_ALPHA = (
    "it is α({t}) of a decoder step replayed from a recorded one (rnn.replay, steps "
    "{first}..{last}), made when asked for from the replayed s(t-1): the loss read the replay's "
    "own α, not this node, so its gradient would miss all of it (zeros); a loss on the "
    "attention weights back-propagates through them exactly, but for gradients with respect to "
    "α(t) unroll with model.replayable = False, or with model.run")


class EncoderDecoder(Design):
    """Figure 10.12 (section 10.4): an encoder reads x(1..n_x), a decoder writes y(1..n_y).

    Encoder: h(t) = tanh(b + W h(t-1) + U x(t)), h(0) = 0; the context C = h(n_x).
    Decoder: s(0) = C, s(t) = tanh(bd + Wd s(t-1) + Ud y(t-1) + R C), o(t) = c + V s(t),
    L(t) = CE(o(t), y(t)).  y(t-1) is the previous target under teacher forcing (``loss``)
    and the previous generated id in ``generate``; y(0) is the start symbol, id ``n_out``
    of the decoder's input vocabulary (so Ud is (H, n_out + 1)).  C is the decoder's initial
    state and an input of every decoder step.  n_x and n_y may differ.  The encoder and the
    decoder are :class:`~rnn.core.Chain` s of this model, in the scopes
    "encdec/encoder/t=K" and "encdec/decoder/t=K".

    With ``attention`` (Bahdanau et al. 2015, cited at the end of section 10.4) the decoder
    reads, in place of the fixed C, a context ctx(t) that it computes at every step from all
    the encoder's states h(1..n_x) (stacked, the variable ``memory``):

    - ``"additive"``: e(t, k) = va . tanh(Wa s(t-1) + Ua h(k)) (new parameters ``Wa`` (H, H),
      ``Ua`` (H, H), ``va`` (H,));
    - ``"dot"``: e(t, k) = s(t-1) . h(k) (no new parameters);

    then α(t) = softmax_k e(t, .), ctx(t) = sum_k α(t, k) h(k) and
    s(t) = tanh(bd + Wd s(t-1) + Ud y(t-1) + R ctx(t)), s(0) = C as before.  α and ctx are
    named variables of every decoder step; ``run(...).attention`` lists α(1..n_y).  Padded
    source positions (``mask``) get α = 0.

    With ``criterion="squared_error"`` the targets y(t) are float vectors (n_out,),
    L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2, and Ud reads y(t-1) itself: Ud is (H, n_out), and
    y(0) is the zero vector (there is no start symbol, so ``start`` is None);
    ``feedback="output"`` decodes free on o(t-1) itself.  There are no ids to sample
    (``generate`` is a ConfigError).
    """

    name = "encdec"
    causal = False
    reads_targets = True       # the decoder reads y(t-1) (what rnn's diagnostics need to know)

    @property
    def masked_chain(self):
        """The scope of the chain whose steps ``mask`` pads: the encoder's (the source's); every
        decoder step and row has its loss term (what rnn's diagnostics need to know)."""
        return f"{self.name}/encoder"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, attention=None,
                 criterion="cross_entropy"):
        if attention not in ATTENTIONS:
            raise tg.ConfigError(f"EncoderDecoder: attention must be one of {ATTENTIONS}, "
                                 f"got {attention!r}")
        self._set_criterion(criterion, "EncoderDecoder")
        self.attention = attention
        # the decoder's inputs: the n_out class ids and the start symbol, or float vectors
        n_start = checks.positive_int(n_out, "EncoderDecoder", "n_out") + (not self.regression)
        extra = {}
        if attention == "additive":
            extra = {"Wa": ("n_hidden", "n_hidden"), "Ua": ("n_hidden", "n_hidden"),
                     "va": ("n_hidden",)}
        self._init(seed, dtype, {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out},
                   U=("n_hidden", "n_in"), W=("n_hidden", "n_hidden"), b=("n_hidden",),
                   Ud=("n_hidden", n_start), Wd=("n_hidden", "n_hidden"),
                   R=("n_hidden", "n_hidden"), bd=("n_hidden",),
                   V=("n_out", "n_hidden"), c=("n_out",), **extra)
        if attention == "additive":     # a zero va would make every e(t, k) zero
            rng = np.random.default_rng([seed, 1])
            self.va.data[...] = rng.normal(0.0, 1.0 / np.sqrt(self.n_hidden), self.n_hidden)
        self.start = None if self.regression else self.n_out
        self.parts = {"h": self.n_hidden, "s": self.n_hidden}

    def own_config(self):
        return {**super().own_config(), "attention": self.attention}

    def _state_mismatch(self, name, shape):
        """A state whose Ud is the width of the other criterion's decoder input (n_out + 1: the
        ids and the start symbol; n_out: the float vectors) is named as that criterion's."""
        theirs = self.n_out + self.regression      # the other criterion's width
        if name != "Ud" or tuple(shape) != (self.n_hidden, theirs):
            return None
        mine, other = (("squared_error", "cross_entropy") if self.regression
                       else ("cross_entropy", "squared_error"))
        return (f"the state looks like that of an EncoderDecoder of criterion={other!r} (its "
                f"decoder reads {'ids and a start symbol' if other == 'cross_entropy' else 'float vectors'}"
                f", Ud (H, {theirs})), this one has criterion={mine!r}")

    def _encoder(self):
        return Chain(self, {"h": self.n_hidden}, self._recur, Design.input_map.__get__(self),
                     name=f"{self.name}/encoder")

    def _decoder(self, memory=None, valid=None, alphas=None):
        """The decoder chain; with attention, its step reads ``memory`` (the encoder's states,
        (n_x, H) or (B, n_x, H)), ``valid`` (bool (B, n_x) or None: unpadded source positions)
        and appends every α(t) to ``alphas``."""
        attend = self.attention is not None
        keys = memory @ self.T.Ua if self.attention == "additive" else None

        def input_map(inputs):
            u = self._times(inputs["y"], "Ud") + self.bd
            return u if attend else u + inputs["C"] @ self.T.R

        def step(state, u):
            s = state["s"]
            a = tg.addmm(u, s, self.T.Wd)
            if attend:
                alpha, ctx = self._attend(s, memory, keys, valid)
                alphas.append(alpha)
                a = tg.addmm(a, ctx, self.T.R)
            return {"s": a.tanh()}

        def readout(state):
            return tg.addmm(self.c, state["s"], self.T.V)
        return Chain(self, {"s": self.n_hidden}, step, input_map, readout,
                     initial_state=lambda state, statics: {"s": statics["C"]},
                     name=f"{self.name}/decoder", feedback="y")

    def _attend(self, s, memory, keys, valid):
        """α(t) and ctx(t) from s(t-1): (n_x,) and (H,), or (B, n_x) and (B, H)."""
        if self.attention == "additive":
            e = (keys + (s @ self.T.Wa).unsqueeze(-2)).tanh() @ self.va
        else:
            e = (memory * s.unsqueeze(-2)).sum(axis=-1)
        if valid is not None:     # padded positions: e = the lowest float, so α = 0 exactly
            e = tg.where(valid, e, np.finfo(e.dtype).min)
        alpha = tg.softmax(e, axis=-1).named("α")
        ctx = (alpha.unsqueeze(-1) * memory).sum(axis=-2).named("ctx")
        return alpha, ctx

    def _source_mask(self, xs, mask):
        """The source mask checked against xs, with an error naming this design and the shape."""
        if mask is None:
            return
        arr = np.asarray(xs.data if isinstance(xs, tg.Tensor) else xs)
        shape = np.shape(mask)
        need = arr.shape[:2] if arr.ndim >= 2 and (arr.dtype.kind in "iu" or arr.ndim == 3) \
            else None
        if need is None:
            raise tg.ShapeError(f"EncoderDecoder: mask= (padded source sequences) needs a batch "
                                f"of sources xs (n_x, B), got xs of shape {arr.shape}")
        if shape != need:
            raise tg.ShapeError(f"EncoderDecoder: mask (of the padded source sequences) must "
                                f"have shape (n_x, B) = {need}, got {shape}")

    def run(self, xs, ys=None, steps=None, feedback=None, per_step=True, mask=None):
        """Encode xs, then decode n_y steps: teacher-forced on ys, or fed back by ``feedback``.

        Parameters
        ----------
        xs : ids (n_x,) / (n_x, B) or floats (n_x, n_in) / (n_x, B, n_in); a float Tensor that
            requires grad gets its gradient
        ys : ids (n_y,) / (n_y, B): the targets; y(t-1) feeds decoder step t (float vectors
            (n_y, n_out) / (n_y, B, n_out) with ``criterion="squared_error"``)
        steps, feedback : generation without ys: ``steps`` decoder steps, each y(t) picked from
            o(t) by the Sampler ``feedback`` and fed to step t+1; with the squared error
            ``feedback="output"``: o(t) itself fed to step t+1
        per_step : bool, as ElmanRNN.run
        mask : (n_x, B) of 0/1, optional: padded source sequences (right padding, or holes
            anywhere: the same as the source without them).  The encoder carries its state over
            the padding, so C is each sequence's state at its own last kept step; with
            attention, padded positions get α = 0.

        Returns
        -------
        Unrolled of the decoder (outputs o(t), losses, states s(t), ``last`` s(n_y)), whose
        ``parts`` also hold the encoder's states: {"h": [h(1..n_x)], "s": [s(1..n_y)]};
        ``attention`` is the list of α(t) (each (n_x,) or (B, n_x)) with attention, else None.
        """
        self._source_mask(xs, mask)
        seq, n_x, batch, keep, _ = self._sequence(xs, mask)
        ys, steps = self._generated(ys, steps, feedback, batch)
        rows = () if batch is None else (batch,)
        if self.regression:      # y(0): the zero vector
            start = np.zeros(rows + (self.n_out,), dtype=self.dtype)
        else:
            start = np.full(rows, self.start, dtype=np.int64)
        free = self._fed_back(feedback)
        alphas = []
        with self.transposes():
            encoded = self._encoder().unroll(Plan(seq, n_x, {"h": self._zeros(batch)}, keep=keep,
                                                  batch=batch), per_step)
            memory = valid = None
            if self.attention is not None:
                with tg.scope(self.name):
                    memory = replay.stacked(encoded.parts["h"], axis=-2).named("memory")
                valid = None if keep is None else keep.T
            decoder = self._decoder(memory, valid, alphas)
            decoded = decoder.unroll(Plan({}, steps, ys=ys, batch=batch,
                                          static={"C": encoded.last["h"]}, y0=start,
                                          free=free), per_step)
        decoded.parts = {"h": encoded.parts["h"], **decoded.parts}
        if self.attention is not None:
            decoded.attention = self._all_weights(decoded, alphas, encoded.last["h"], memory,
                                                  valid)
        return decoded

    def _all_weights(self, decoded, alphas, context, memory, valid):
        """α(1..n_y) of a decoded run: ``alphas`` as the steps made them where every step ran as
        engine ops; where steps were replayed (``alphas`` then holds only the steps run before
        the replay, of which the recorded ones are out of the graph), a function making the
        α(t) of the replayed steps from s(t-1) when first asked for (a ConfigError if the
        parameters it reads changed since the run: it would give the new parameters' α)."""
        states = decoded.parts["s"]
        if not isinstance(states, replay.Steps):
            return alphas
        engine = len(states.head)
        # the parameters _attend reads, as the run read them: asked for after they changed
        # (an optimizer step), the weights would be the new parameters', not the run's
        names = ["Wa", "Ua", "va"] if self.attention == "additive" else []
        read = [getattr(self, n) for n in names]
        kept = [p.data.copy() for p in read]

        def complete():     # a parameter replaced by another (model.Wa = ...) changed too
            changed = [p.name for n, p, was in zip(names, read, kept)
                       if getattr(self, n) is not p or not np.array_equal(p.data, was)]
            if changed:
                raise tg.ConfigError(
                    f"{self.name}: run.attention of the replayed decoder steps {engine + 1}.."
                    f"{len(states)} is made when first asked for, from the parameters "
                    f"{', '.join(changed)}, which changed since the run (an optimizer step?); "
                    "read run.attention before changing them, or run the model again")
            weights = list(alphas[:engine])
            with self.transposes(), tg.scope(f"{self.name}/decoder"):
                keys = memory @ self.T.Ua if self.attention == "additive" else None
                for t in range(engine + 1, len(states) + 1):
                    with tg.scope(f"t={t}"):
                        s = context if t == 1 else states[t - 2]
                        alpha = self._attend(s, memory, keys, valid)[0]
                    weights.append(stand_in(alpha, REMADE_ALPHA.format(
                        t=t, first=engine + 1, last=len(states))))
            return weights
        return complete

    def _zeros(self, batch):
        return np.zeros((self.n_hidden,) if batch is None else (batch, self.n_hidden),
                        dtype=self.dtype)

    def run_for_loss(self, xs, ys=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, per_step=False, mask=mask)

    def __call__(self, xs, ys, mask=None):
        """Forward, teacher-forced: (outputs [o(t)], decoder states [s(t)], s(n_y))."""
        run = self.run(xs, ys, mask=mask)
        return run.outputs, run.states, run.last

    def generate(self, xs, steps, temperature=0, seed=0, mask=None):
        """Encode xs and decode ``steps`` ids, each fed back as the next y(t-1).

        Returns ids (steps,) or (steps, B); temperature 0 (the default) is greedy decoding.
        """
        return self._generate(self.run, temperature, seed, xs=xs, steps=steps, mask=mask)

    def _trace_roots(self, steps):
        xs, ys = self._trace_ids(steps)
        return [self.run(xs, ys).loss]
