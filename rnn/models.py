"""The recurrent designs of chapter 10, each a step function run by the shared unroll.

Rows are examples, so the book's ``W h(t-1)`` reads ``h(t-1) @ W.T``; each
weight is transposed once per unroll (a node of the model's scope) and the
per-step graph stays lean: one ``take`` for the one-hot input ``U x(t)``, one
matmul for ``W h(t-1)``, two adds, ``tanh``, and the output layer and loss.
Integer inputs are one-hot vectors selected by ``take``, so the id leaf ``x``
stays a parent of the step's nodes.  Teacher-forced and free-running modes are
two feedbacks of the same step function, and generation is one more feedback
(a sampled id) — there is no second implementation of any design.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .core import (RecurrentModel, Unrolled, batched_loss, carry_masked, init_bias, init_weight,
                   initial, stack_rows, step_loss, tanh_into, transposed, unroll)


class Sampler:
    """Picks y(t) from o(t): greedy (temperature 0) or a softmax sample at ``temperature``.

    Parameters
    ----------
    temperature : float >= 0
    seed : int or np.random.Generator
    """

    def __init__(self, temperature=1.0, seed=0):
        self.temperature, self.rng = checks.sampling(temperature, seed, "sampling")
        self.picked = []

    def __call__(self, logits):
        """logits (..., C) array -> ids (...); every pick is also appended to ``picked``."""
        ids = self._pick(logits)
        self.picked.append(ids)
        return ids

    def _pick(self, logits):
        if self.temperature == 0:
            return np.argmax(logits, axis=-1)
        z = logits / self.temperature
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        flat = p.reshape(-1, p.shape[-1])
        u = self.rng.random((flat.shape[0], 1))
        ids = (flat.cumsum(axis=1) < u).sum(axis=1)
        return np.minimum(ids, p.shape[-1] - 1).reshape(p.shape[:-1])


class _Hidden(RecurrentModel):
    """Shared parts of the hidden-to-hidden designs: checks, the input term, the output layer."""

    def _sizes(self, n_in, n_hidden, n_out):
        who = type(self).__name__
        return (checks.positive_int(n_in, who, "n_in"), checks.positive_int(n_hidden, who, "n_hidden"),
                checks.positive_int(n_out, who, "n_out"))

    def _sequence(self, xs, mask, n_in):
        """Checked inputs: (xs, is_ids, batched, steps, batch or None, keep mask or None)."""
        xs, is_ids, batched = checks.inputs(xs, n_in, self.name, self.dtype)
        steps = xs.shape[0]
        batch = xs.shape[1] if batched else None
        keep = checks.mask(mask, steps, batch, batched, self.name)
        if is_ids:
            checks.check_ids(xs, n_in, self.name, "xs", batched, keep)
            if keep is not None:
                xs = np.where(keep, xs, 0)
        return xs, is_ids, batched, steps, batch, keep

    @staticmethod
    def _input_term(x, weight_t, is_ids):
        """U x(t) as rows: ``take`` of U's columns for ids, a matmul for float vectors."""
        return tg.take(weight_t, x, axis=0) if is_ids else x @ weight_t

    @staticmethod
    def _feedback_term(y_prev, weight_t):
        """R onehot(y(t-1)): the zero vector y(0) through a matmul, ids through ``take``."""
        if y_prev.dtype.kind == "f":
            return y_prev @ weight_t
        return tg.take(weight_t, y_prev, axis=0)

    def _output(self, h, vt):
        return h @ vt + self.c

    @property
    def dtype(self):
        return self.W.dtype


class ElmanRNN(_Hidden):
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

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        n_in, n_hidden, n_out = self._sizes(n_in, n_hidden, n_out)
        rng = np.random.default_rng(seed)
        self.U = init_weight(rng, (n_hidden, n_in), n_in, dtype, "U")
        self.W = init_weight(rng, (n_hidden, n_hidden), n_hidden, dtype, "W")
        self.V = init_weight(rng, (n_out, n_hidden), n_hidden, dtype, "V")
        self.b = init_bias(n_hidden, dtype, "b")
        self.c = init_bias(n_out, dtype, "c")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def run(self, xs, ys=None, h0=None, mask=None, feedback=None, per_step=True):
        """Unroll over the sequence.

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B), optional (without them there is no loss)
        h0 : (H,) or (B, H), default zeros; a Tensor is used as is (e.g. a carried state)
        mask : (T, B) of 0/1, optional: padded steps add no loss and carry h unchanged
        feedback : Sampler, optional (generation): ids only; x(t+1) is the id sampled from o(t),
            and xs gives the first input only.
        per_step : bool
            True: every op of every step is a node of that step's scope (x(t), a(t), h(t),
            o(t), L(t): what ``viz`` draws).  False (what ``loss`` and training use): only the
            recurrence a(t) = (U x(t) + b) + W h(t-1), h(t) = tanh(a(t)) is per step; the input
            term of all steps, and the output layer and loss of all steps, are one node each
            in the model's scope.  Same loss and gradients (to rounding), several times fewer
            nodes.  Inside ``tg.detect_anomaly()`` the run is per step whatever this says, so
            a NaN or Inf is reported with its time step.

        Returns
        -------
        Unrolled (loss, outputs o(t), states h(t), losses L(t), last state); with
        ``per_step=False`` there are no per-step outputs and losses.
        """
        xs, is_ids, batched, steps, batch, keep = self._sequence(xs, mask, self.n_in)
        if feedback is not None:
            if not is_ids or keep is not None or ys is not None:
                raise tg.ConfigError(f"{self.name}: generation feeds back ids: give ids xs, no ys or mask")
            if self.n_out != self.n_in:
                raise tg.ConfigError(f"{self.name}: generation needs n_out == n_in, got "
                                     f"{self.n_out} and {self.n_in}")
            per_step = True
        per_step = per_step or tg.is_anomaly_enabled()
        if ys is not None:
            ys = checks.targets(ys, xs.shape[:2] if batched else (steps,), self.n_out, self.name,
                                batched, keep)
        state0 = checks.state(h0, (self.n_hidden,), batch, self.name, self.dtype)
        with tg.scope(self.name):
            ut, wt, vt = transposed(self.U), transposed(self.W), transposed(self.V)
            if not per_step:
                x_all = tg.Tensor(xs, name="x")
                inputs = (tg.take(ut + self.b, x_all, axis=0) if is_ids else x_all @ ut + self.b)
                inputs.name = "Ux+b"
            else:
                inputs = [xs[0]]

            if not per_step:   # the states side by side, for the output layer of all steps
                states = np.empty((steps,) + np.shape(state0), self.dtype)

            def fast_step(t, h_prev):
                a = tg.addmm(inputs[t - 1], h_prev, wt)
                if keep is None:
                    h = tanh_into(a, states, t - 1)
                else:
                    h = carry_masked(a.tanh(), h_prev, keep[t - 1])
                return h, {"a": a, "h": h}

            def step(t, h_prev):
                k = None if keep is None else keep[t - 1]
                x = tg.Tensor(inputs[-1] if feedback is not None else xs[t - 1])
                a = self._input_term(x, ut, is_ids) + h_prev @ wt + self.b
                h = carry_masked(a.tanh(), h_prev, k)
                named = {"x": x, "a": a, "h": h}
                o = named["o"] = self._output(h, vt)
                if ys is not None:
                    y = named["y"] = tg.Tensor(ys[t - 1])
                    named["L"] = step_loss(o, y, k, batch or 1)
                if feedback is not None:
                    inputs.append(feedback(o.data))
                return h, named

            last, history = unroll(step if per_step else fast_step, initial(state0, "h"), steps)
            loss = None
            if not per_step and ys is not None:
                hs = stack_rows(history["h"], states) if keep is None else tg.stack(history["h"])
                loss = batched_loss(hs, vt, self.c, ys, keep, batch)
            return Unrolled(history, last, loss=loss)

    def run_for_loss(self, xs, ys=None, h0=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, mask=mask, per_step=False)

    def __call__(self, xs, h0=None, mask=None):
        """Forward only: (outputs [o(t)], states [h(t)], last state h(T))."""
        run = self.run(xs, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

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
        sampler = Sampler(temperature, seed)
        prompt, is_ids, _ = checks.inputs(np.atleast_1d(checks.as_array(prompt, self.name, "prompt")),
                                          self.n_in, f"{self.name}.generate", self.dtype)
        if not is_ids:
            raise tg.DTypeError(f"{self.name}.generate: the prompt must be integer ids")
        checks.check_ids(prompt, self.n_in, f"{self.name}.generate", "prompt", prompt.ndim == 2)
        with tg.no_grad():
            if len(prompt) > 1:
                h0 = self.run(prompt[:-1], h0=h0).last
            self.run(prompt[[-1] * steps], h0=h0, feedback=sampler)
        return np.stack(sampler.picked)

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        ys = (np.arange(1, steps + 1) % self.n_out)[:, None]
        return [self.run(xs, ys).loss]


class JordanRNN(_Hidden):
    """Figure 10.4: the only recurrence is output to hidden; figure 10.6 trains it with teacher forcing.

    h(t) = tanh(b + W f(t-1) + U x(t)), o(t) = c + V h(t), f(0) = 0, with
    f(t-1) = onehot(y(t-1)) under teacher forcing (the steps decouple) and
    f(t-1) = softmax(o(t-1)) when it runs free.  W is (H, n_out).
    """

    name = "jordan"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        n_in, n_hidden, n_out = self._sizes(n_in, n_hidden, n_out)
        rng = np.random.default_rng(seed)
        self.U = init_weight(rng, (n_hidden, n_in), n_in, dtype, "U")
        self.W = init_weight(rng, (n_hidden, n_out), n_out, dtype, "W")
        self.V = init_weight(rng, (n_out, n_hidden), n_hidden, dtype, "V")
        self.b = init_bias(n_hidden, dtype, "b")
        self.c = init_bias(n_out, dtype, "c")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def run(self, xs, ys=None, teacher_forcing=True, feedback=None, y0=None):
        """Unroll over the sequence.

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B); needed for teacher forcing, optional when running free
        teacher_forcing : bool
            True: f(t-1) = onehot(y(t-1)) (figure 10.6, train time).  False: f(t-1) = softmax(o(t-1)).
        feedback : Sampler, optional
            Generation: f(t-1) = onehot of the id sampled from o(t-1) (overrides both modes).
        y0 : f(0): ids () / (B,), or a Tensor (e.g. the previous chunk's ``last``); default zeros

        Returns
        -------
        Unrolled (``last`` is the feedback f(T) the next step would get)
        """
        xs, is_ids, batched, steps, batch, _ = self._sequence(xs, None, self.n_in)
        if ys is None and teacher_forcing and feedback is None:
            raise tg.ConfigError(f"{self.name}: teacher forcing needs the targets ys "
                                 "(or teacher_forcing=False)")
        if ys is not None:
            ys = checks.targets(ys, xs.shape[:2] if batched else (steps,), self.n_out, self.name,
                                batched)
        first = checks.previous_output(y0, self.n_out, batch, self.name, self.dtype)
        free = feedback is not None or not teacher_forcing
        with tg.scope(self.name):
            ut, wt, vt = transposed(self.U), transposed(self.W), transposed(self.V)

            def step(t, f_prev):
                x = tg.Tensor(xs[t - 1])
                a = self._input_term(x, ut, is_ids) + self._feedback_term(f_prev, wt) + self.b
                h = a.tanh()
                o = self._output(h, vt)
                named = {"x": x, "a": a, "h": h, "o": o}
                y = None
                if ys is not None:
                    y = named["y"] = tg.Tensor(ys[t - 1])
                    named["L"] = tg.cross_entropy(o, y)
                if feedback is not None:
                    f = tg.Tensor(feedback(o.data))
                elif free:
                    f = tg.softmax(o)
                else:
                    f = y
                return f, named

            last, history = unroll(step, initial(first, "o" if free else "y"), steps)
            return Unrolled(history, last)

    def carry(self, run):
        """Truncated BPTT: the next chunk starts from the last feedback f(T)."""
        return {"y0": run.last.detach()}

    def __call__(self, xs, ys=None, teacher_forcing=False):
        """Forward only (free running unless ``teacher_forcing`` with ``ys``): (outputs, states, last)."""
        run = self.run(xs, ys, teacher_forcing=teacher_forcing)
        return run.outputs, run.states, run.last

    def generate(self, xs, temperature=1.0, seed=0):
        """Free-running generation: each step's sampled output id feeds the next step.

        xs : the inputs x(t), ids or floats, (T, ...); temperature 0 is greedy decoding.
        Returns ids (T,) or (T, B).
        """
        sampler = Sampler(temperature, seed)
        with tg.no_grad():
            self.run(xs, feedback=sampler)
        return np.stack(sampler.picked)

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        ys = (np.arange(1, steps + 1) % self.n_out)[:, None]
        return [self.run(xs, ys).loss]


class SequenceToOne(_Hidden):
    """Figure 10.5: read the whole sequence, one output and one loss at the end.

    a(t) = b + W h(t-1) + U x(t), h(t) = tanh(a(t)); L = CE(c + V h(tau), y).
    With a mask, each sequence's h(tau) is its state after its own last step.
    """

    name = "seq2one"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        n_in, n_hidden, n_out = self._sizes(n_in, n_hidden, n_out)
        rng = np.random.default_rng(seed)
        self.U = init_weight(rng, (n_hidden, n_in), n_in, dtype, "U")
        self.W = init_weight(rng, (n_hidden, n_hidden), n_hidden, dtype, "W")
        self.V = init_weight(rng, (n_out, n_hidden), n_hidden, dtype, "V")
        self.b = init_bias(n_hidden, dtype, "b")
        self.c = init_bias(n_out, dtype, "c")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def run(self, xs, y=None, h0=None, mask=None):
        """Unroll over the sequence; the output o and loss L are made in the last step's scope.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); y : id () or ids (B,);
        h0 : (H,) or (B, H); mask : (T, B) of 0/1 (padded steps carry h unchanged).
        Returns Unrolled with one output and at most one loss.
        """
        xs, is_ids, batched, steps, batch, keep = self._sequence(xs, mask, self.n_in)
        if y is not None:
            y = checks.targets(y, (batch,) if batched else (), self.n_out, self.name, batched, what="y")
        state0 = checks.state(h0, (self.n_hidden,), batch, self.name, self.dtype)
        with tg.scope(self.name):
            ut, wt, vt = transposed(self.U), transposed(self.W), transposed(self.V)

            def step(t, h_prev):
                x = tg.Tensor(xs[t - 1])
                a = self._input_term(x, ut, is_ids) + h_prev @ wt + self.b
                h = carry_masked(a.tanh(), h_prev, None if keep is None else keep[t - 1])
                named = {"x": x, "a": a, "h": h}
                if t == steps:
                    o = named["o"] = self._output(h, vt)
                    if y is not None:
                        target = named["y"] = tg.Tensor(y)
                        named["L"] = tg.cross_entropy(o, target)
                return h, named

            last, history = unroll(step, initial(state0, "h"), steps)
            return Unrolled(history, last)

    def __call__(self, xs, h0=None, mask=None):
        """Forward only: ([o(tau)], states [h(t)], h(tau))."""
        run = self.run(xs, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

    def predict(self, xs, h0=None, mask=None):
        """Class ids argmax o(tau): () or (B,)."""
        with tg.no_grad():
            return np.argmax(self.run(xs, h0=h0, mask=mask).outputs[0].data, axis=-1)

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        return [self.run(xs, np.zeros(1, dtype=np.int64)).loss]


class VectorToSequence(_Hidden):
    """Figure 10.9: a fixed vector x enters every step through R; y(t-1) feeds h(t).

    a(t) = b + W h(t-1) + R x + U onehot(y(t-1)), y(0) = 0, h(t) = tanh(a(t)),
    o(t) = c + V h(t).  U is (H, n_out): it reads the previous output.

    Section 10.2.4 lists three ways to feed x: an extra input at every step (always here),
    the initial state, or both: with ``h0_from_x=True`` also h(0) = tanh(Q x), Q (H, n_in).
    """

    name = "vec2seq"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64, h0_from_x=False):
        n_in, n_hidden, n_out = self._sizes(n_in, n_hidden, n_out)
        rng = np.random.default_rng(seed)
        self.R = init_weight(rng, (n_hidden, n_in), n_in, dtype, "R")
        self.W = init_weight(rng, (n_hidden, n_hidden), n_hidden, dtype, "W")
        self.U = init_weight(rng, (n_hidden, n_out), n_out, dtype, "U")
        self.V = init_weight(rng, (n_out, n_hidden), n_hidden, dtype, "V")
        self.b = init_bias(n_hidden, dtype, "b")
        self.c = init_bias(n_out, dtype, "c")
        if h0_from_x:
            self.Q = init_weight(rng, (n_hidden, n_in), n_in, dtype, "Q")
        self.h0_from_x = bool(h0_from_x)
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def _vector(self, x):
        who = self.name
        arr = x.data if isinstance(x, tg.Tensor) else np.asarray(x)
        if arr.dtype.kind != "f":
            raise tg.DTypeError(f"{who}: x must be a float vector (n_in,) or (B, n_in), got dtype "
                                f"{arr.dtype}")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n_in:
            raise tg.ShapeError(f"{who}: x must have shape ({self.n_in},) or (B, {self.n_in}), "
                                f"got {arr.shape}")
        return arr.astype(self.dtype)

    def run(self, x, ys=None, h0=None, steps=None, feedback=None):
        """Unroll from the fixed vector x.

        x : floats (n_in,) or (B, n_in); ys : ids (T,) or (T, B) (teacher forcing: y(t-1) feeds
        step t); h0 : (H,) or (B, H); steps, feedback : generation without ys (a Sampler picks
        y(t), which feeds step t+1).
        Returns Unrolled.
        """
        x = self._vector(x)
        batch = x.shape[0] if x.ndim == 2 else None
        if ys is not None:
            ys = checks.as_array(ys, self.name, "ys")
            steps = ys.shape[0] if ys.ndim else 0
            if steps == 0:
                raise tg.ShapeError(f"{self.name}: ys is an empty sequence (shape {ys.shape})")
            ys = checks.targets(ys, (steps,) if batch is None else (steps, batch), self.n_out,
                                self.name, batch is not None)
        elif feedback is None:
            raise tg.ConfigError(f"{self.name}: give the targets ys (or steps= and a feedback sampler)")
        else:
            steps = checks.positive_int(steps, self.name, "steps")
        if h0 is not None and self.h0_from_x:
            raise tg.ConfigError(f"{self.name}: h(0) is computed from x (h0_from_x=True); "
                                 "do not pass h0 as well")
        state0 = checks.state(h0, (self.n_hidden,), batch, self.name, self.dtype)
        zeros = np.zeros((self.n_out,) if batch is None else (batch, self.n_out), dtype=self.dtype)
        with tg.scope(self.name):
            ut, wt, vt = transposed(self.U), transposed(self.W), transposed(self.V)
            static = tg.Tensor(x, name="x")
            rx = static @ transposed(self.R)
            if self.h0_from_x:
                with tg.scope("t=0"):
                    state0 = (static @ transposed(self.Q)).tanh().named("h")

            def step(t, carry):
                h_prev, y_prev = carry
                a = self.b + h_prev @ wt + rx + self._feedback_term(y_prev, ut)
                h = a.tanh()
                o = self._output(h, vt)
                named = {"a": a, "h": h, "o": o}
                if ys is not None:
                    y = named["y"] = tg.Tensor(ys[t - 1])
                    named["L"] = tg.cross_entropy(o, y)
                else:
                    y = tg.Tensor(feedback(o.data))
                return (h, y), named

            (last, _), history = unroll(step, (initial(state0, "h"), initial(zeros, "y")), steps)
            return Unrolled(history, last)

    def generate(self, x, steps, temperature=1.0, seed=0, h0=None):
        """Sample a sequence from the vector x: each sampled y(t) feeds step t+1.

        Returns ids (steps,) or (steps, B); temperature 0 is greedy decoding.
        """
        sampler = Sampler(temperature, seed)
        with tg.no_grad():
            self.run(x, h0=h0, steps=steps, feedback=sampler)
        return np.stack(sampler.picked)

    def __call__(self, x, ys, h0=None):
        """Forward (teacher-forced with ys): (outputs, states, last)."""
        run = self.run(x, ys, h0=h0)
        return run.outputs, run.states, run.last

    def _trace_roots(self, steps):
        ys = (np.arange(steps) % self.n_out)[:, None]
        return [self.run(np.zeros((1, self.n_in)), ys).loss]


class ConditionalRNN(_Hidden):
    """Figure 10.10: x(t) -> y(t) of the same length, with y(t-1) -> h(t) connections.

    a(t) = b + W h(t-1) + U x(t) + R onehot(y(t-1)), y(0) = 0, h(t) = tanh(a(t)),
    o(t) = c + V h(t).  R is (H, n_out).
    """

    name = "conditional"

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        n_in, n_hidden, n_out = self._sizes(n_in, n_hidden, n_out)
        rng = np.random.default_rng(seed)
        self.U = init_weight(rng, (n_hidden, n_in), n_in, dtype, "U")
        self.W = init_weight(rng, (n_hidden, n_hidden), n_hidden, dtype, "W")
        self.R = init_weight(rng, (n_hidden, n_out), n_out, dtype, "R")
        self.V = init_weight(rng, (n_out, n_hidden), n_hidden, dtype, "V")
        self.b = init_bias(n_hidden, dtype, "b")
        self.c = init_bias(n_out, dtype, "c")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def run(self, xs, ys=None, h0=None, mask=None, feedback=None, y0=None):
        """Unroll over the sequence.

        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in); ys : ids (T,) / (T, B)
        (y(t-1) feeds step t); h0 : (H,) or (B, H); mask : (T, B) of 0/1;
        feedback : Sampler (generation without ys: the sampled y(t) feeds step t+1);
        y0 : y(0), ids () / (B,) or a Tensor (the previous chunk's ``feedback``); default zeros.
        Returns Unrolled (``feedback`` is y(T)).
        """
        xs, is_ids, batched, steps, batch, keep = self._sequence(xs, mask, self.n_in)
        if ys is not None:
            ys = checks.targets(ys, xs.shape[:2] if batched else (steps,), self.n_out, self.name,
                                batched, keep)
        elif feedback is None:
            raise tg.ConfigError(f"{self.name}: give the targets ys (or a feedback sampler)")
        state0 = checks.state(h0, (self.n_hidden,), batch, self.name, self.dtype)
        first = checks.previous_output(y0, self.n_out, batch, self.name, self.dtype)
        with tg.scope(self.name):
            ut, wt, rt, vt = (transposed(self.U), transposed(self.W), transposed(self.R),
                              transposed(self.V))

            def step(t, carry):
                h_prev, y_prev = carry
                k = None if keep is None else keep[t - 1]
                x = tg.Tensor(xs[t - 1])
                a = (self._input_term(x, ut, is_ids) + h_prev @ wt
                     + self._feedback_term(y_prev, rt) + self.b)
                h = carry_masked(a.tanh(), h_prev, k)
                o = self._output(h, vt)
                named = {"x": x, "a": a, "h": h, "o": o}
                if ys is not None:
                    y = named["y"] = tg.Tensor(ys[t - 1])
                    named["L"] = step_loss(o, y, k, batch or 1)
                else:
                    y = tg.Tensor(feedback(o.data))
                return (h, y), named

            (last, y_last), history = unroll(step, (initial(state0, "h"), initial(first, "y")), steps)
            return Unrolled(history, last, feedback=y_last)

    def carry(self, run):
        """Truncated BPTT: the next chunk starts from h(T) and reads y(T)."""
        return {"h0": run.last.detach(), "y0": run.feedback.detach()}

    def generate(self, xs, temperature=1.0, seed=0, h0=None):
        """Output ids for the inputs xs, each sampled y(t) feeding step t+1 (temperature 0: greedy)."""
        sampler = Sampler(temperature, seed)
        with tg.no_grad():
            self.run(xs, h0=h0, feedback=sampler)
        return np.stack(sampler.picked)

    def __call__(self, xs, ys, h0=None, mask=None):
        """Forward (teacher-forced with ys): (outputs, states, last)."""
        run = self.run(xs, ys, h0=h0, mask=mask)
        return run.outputs, run.states, run.last

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        ys = (np.arange(1, steps + 1) % self.n_out)[:, None]
        return [self.run(xs, ys).loss]
