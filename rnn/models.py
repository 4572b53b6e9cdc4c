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
from .core import (RecurrentModel, Unrolled, carry_masked, init_bias, init_weight, initial,
                   step_loss, unroll)


class Sampler:
    """Picks y(t) from o(t): greedy (temperature 0) or a softmax sample at ``temperature``.

    Parameters
    ----------
    temperature : float >= 0
    seed : int or np.random.Generator
    """

    def __init__(self, temperature=1.0, seed=0):
        if not np.isfinite(temperature) or temperature < 0:
            raise tg.ConfigError(f"sampling: temperature must be >= 0, got {temperature}")
        self.temperature = float(temperature)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
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

    def run(self, xs, ys=None, h0=None, mask=None, feedback=None):
        """Unroll over the sequence.

        Parameters
        ----------
        xs : ids (T,) / (T, B) or floats (T, n_in) / (T, B, n_in)
        ys : ids (T,) / (T, B), optional (without them there is no loss)
        h0 : (H,) or (B, H), default zeros; a Tensor is used as is (e.g. a carried state)
        mask : (T, B) of 0/1, optional: padded steps add no loss and carry h unchanged
        feedback : Sampler, optional (generation): ids only; x(t+1) is the id sampled from o(t),
            and xs gives the first input only.

        Returns
        -------
        Unrolled (loss, outputs o(t), states h(t), losses L(t), last state)
        """
        xs, is_ids, batched, steps, batch, keep = self._sequence(xs, mask, self.n_in)
        if feedback is not None:
            if not is_ids or keep is not None or ys is not None:
                raise tg.ConfigError(f"{self.name}: generation feeds back ids: give ids xs, no ys or mask")
            if self.n_out != self.n_in:
                raise tg.ConfigError(f"{self.name}: generation needs n_out == n_in, got "
                                     f"{self.n_out} and {self.n_in}")
        if ys is not None:
            ys = checks.targets(ys, xs.shape[:2] if batched else (steps,), self.n_out, self.name,
                                batched, keep)
        state0 = checks.state(h0, (self.n_hidden,), batch, self.name, self.dtype)
        with tg.scope(self.name):
            ut, wt, vt = self.U.T, self.W.T, self.V.T
            inputs = [xs[0]]

            def step(t, h_prev):
                k = None if keep is None else keep[t - 1]
                x = tg.Tensor(inputs[-1] if feedback is not None else xs[t - 1])
                a = self._input_term(x, ut, is_ids) + h_prev @ wt + self.b
                h = carry_masked(a.tanh(), h_prev, k)
                o = self._output(h, vt)
                named = {"x": x, "a": a, "h": h, "o": o}
                if ys is not None:
                    y = tg.Tensor(ys[t - 1])
                    named["y"] = y
                    named["L"] = step_loss(o, y, k, batch or 1)
                if feedback is not None:
                    inputs.append(feedback(o.data))
                return h, named

            last, history = unroll(step, initial(state0, "h"), steps)
            return Unrolled(history, last)

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
        prompt = np.asarray(prompt.data if isinstance(prompt, tg.Tensor) else prompt)
        if prompt.ndim == 0:
            prompt = prompt[None]
        with tg.no_grad():
            if len(prompt) > 1:
                h0 = self.run(prompt[:-1], h0=h0).last
            self.run(prompt[[-1] * steps], h0=h0, feedback=sampler)
        return np.stack(sampler.picked)

    def _trace_roots(self, steps):
        xs = (np.arange(steps) % self.n_in)[:, None]
        ys = (np.arange(1, steps + 1) % self.n_out)[:, None]
        return [self.run(xs, ys).loss]
