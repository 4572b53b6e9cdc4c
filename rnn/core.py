"""The one unroll every recurrent design runs, and what the designs share.

:func:`unroll` is a plain loop over t = 1..T (never recursion, so 100,000
steps are fine): it calls a step function under ``tg.scope(f"t={t}")`` and
names the book's variables the step returns ("x", "a", "h", "o", "y", "L").
A model runs it inside ``tg.scope(model.name)``, so every node of the unrolled
DAG says which model and which time step made it, and back-propagation
through time is just ``loss.backward()`` on that DAG.
:class:`Recurrence` wraps a user's own step function (figures 10.1 and 10.2)
in the same machinery as the built-in designs.
"""

import contextlib
import gc
from functools import partial
from operator import itemgetter

import numpy as np

import tinygraph as tg

from . import checks


class Unrolled:
    """What one unroll made.

    Attributes
    ----------
    loss : Tensor or None
        Sum over time steps of the per-step losses L(t) (None without targets).
    outputs : list of Tensor
        o(t) for every step that has an output (empty when the output layer was batched).
    states : list of Tensor
        The hidden state h(t) after every step (the state of a user's Recurrence).
    losses : list of Tensor
        The per-step losses L(t) (empty when the output layer was batched).
    last : Tensor
        The state after the last step, to carry into the next chunk (``last.detach()``).
    feedback : Tensor or None
        The previous output the next step would read (designs with y(t-1) -> h(t) connections).
    """

    __slots__ = ("loss", "outputs", "states", "losses", "last", "feedback")

    def __init__(self, history, last, state_name="h", loss=None, feedback=None):
        self.losses = history.get("L", [])
        self.outputs = history.get("o", [])
        self.states = history.get(state_name, [])
        self.last = last
        self.feedback = feedback
        self.loss = total(self.losses) if self.losses else loss


def unroll(step, carry, steps):
    """Run ``step`` for t = 1..steps, each call under ``tg.scope(f"t={t}")``.

    Parameters
    ----------
    step : callable
        ``step(t, carry) -> (carry, named)``; ``named`` maps book names ("x", "h", "o",
        "y", "L", ...) to the Tensors of step t (None entries are skipped).
    carry : anything
        What step t hands to step t+1 (the state h(t-1), or a previous output).
    steps : int

    Returns
    -------
    (carry, history) : the carry after the last step, and a dict name -> list of the
    named Tensors in time order (each Tensor's ``.name`` set to its key).
    """
    history = {}
    with cycle_collector_paused():
        for t in range(1, steps + 1):
            with tg.scope(f"t={t}"):
                carry, named = step(t, carry)
            for key, node in named.items():
                if node is not None:
                    node.name = key
                    history.setdefault(key, []).append(node)
    return carry, history


freeze_graphs = True
"""Set ``rnn.core.freeze_graphs = False`` to keep :func:`cycle_collector_paused` away from
``gc.freeze``/``gc.unfreeze`` (e.g. in a program that freezes objects itself before forking):
the collector is then only paused during an unroll, and scans the new nodes once afterwards."""


@contextlib.contextmanager
def cycle_collector_paused():
    """Keep Python's cycle collector off the nodes an unroll (or its loss) allocates.

    tinygraph's graphs hold no reference cycles, so the collector finds nothing to free
    in them; left running, it re-scans every live node again and again, which made a
    long unroll 3-4 times slower to build and to back-propagate.  Re-enabled plainly
    afterwards, it would still scan them all once at the next allocation (a 70 ms pause
    after 10,000 steps).  So on exit the objects alive are moved to the collector's
    permanent generation (``gc.freeze``); the next pause gives them back (``gc.unfreeze``,
    into the oldest generation).  Reference counting frees a graph as usual either way.

    This is process-wide: it also unfreezes what the program froze itself.  Telling the
    two apart would need ``gc.get_freeze_count()``, which walks the whole permanent
    generation (tens of ms); set :data:`freeze_graphs` to False instead.  Nothing is done
    when the collector was already off (e.g. a nested pause).
    """
    if not gc.isenabled():
        yield
        return
    freeze = freeze_graphs
    gc.disable()
    if freeze:
        gc.unfreeze()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()


def initial(value, name):
    """The state before step 1 as a node of scope ".../t=0" named ``name``.

    A Tensor passed by the user (e.g. a state carried from the previous chunk) is used as is.
    """
    if isinstance(value, tg.Tensor):
        return value
    with tg.scope("t=0"):
        return tg.Tensor(value, name=name)


def total(losses):
    """Sum of the per-step losses: one stack and one sum, however many steps."""
    if len(losses) == 1:
        return losses[0]
    with cycle_collector_paused():
        return tg.stack(losses).sum()


def step_loss(o, y, keep, batch):
    """L(t) = (1/B) sum_b keep[b] CE(o_b, y_b); y is the target leaf (a parent of the loss).

    keep : bool array (B,) or None (all kept).  Returns None when no row is kept.
    """
    if keep is None or keep.all():
        return tg.cross_entropy(o, y)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return None
    return tg.cross_entropy(o[rows], y[rows]) * (rows.size / batch)


def batched_loss(hs, vt, c, ys, keep, batch):
    """The output layer and loss of all steps at once, after the loop (same value as per step).

    o = hs @ V.T + c, then (1/B) sum_t sum_b keep[t, b] CE(o(t)_b, y(t)_b) as one
    cross-entropy over the kept rows.  hs : Tensor (T, H) or (T, B, H), the states h(1..T);
    ys : (T,) or (T, B) ids; keep : (T, B) bool or None.
    """
    with cycle_collector_paused():
        o = tg.addmm(c, hs, vt)
        targets = tg.Tensor(ys, name="y")
        if keep is None:
            return tg.cross_entropy(o, targets) * float(ys.size / (batch or 1))
        rows = np.flatnonzero(keep.reshape(-1))
        flat = o.reshape(-1, o.shape[-1])[rows]
        return tg.cross_entropy(flat, targets.reshape(-1)[rows]) * float(rows.size / batch)


def tanh_into(a, buf, row):
    """h = tanh(a), its value written into ``buf[row]``: the states of an unroll side by side
    in one array, which :func:`stack_rows` then hands on without a copy."""
    return tg.apply("tanh", _tanh_into, a, buf=buf, row=row)


def _tanh_into(a, buf, row):
    y = np.tanh(a, out=buf[row])
    return y, (partial(_tanh_vjp, y),)


def _tanh_vjp(y, g):
    return g * (1 - y * y)


def stack_rows(states, buf):
    """``tg.stack(states)`` for states made by :func:`tanh_into` (``states[t]`` is ``buf[t]``):
    the node's value is a view of ``buf``, and each state's gradient a row of the stack's."""
    return tg.apply("stack", _stack_rows, *states, buf=buf)


def _stack_rows(*rows, buf):
    return buf[:len(rows)], [itemgetter(t) for t in range(len(rows))]


def carry_masked(h, h_prev, keep):
    """h where ``keep`` (B,) is True, h_prev (carried unchanged) where it is False."""
    if keep is None or keep.all():
        return h
    return h_prev + (h - h_prev) * keep[:, None].astype(h.dtype)


def transposed(weight):
    """``weight.T`` as a contiguous copy: one node per unroll, so every step's matmul and
    ``take`` read a C-ordered array (several times faster than through a transposed view)."""
    return tg.apply("transpose", _transpose_copy, weight)


def _transpose_copy(w):
    return np.ascontiguousarray(w.T), (lambda g: g.T,)


def init_weight(rng, shape, fan_in, dtype, name):
    """A weight ~ N(0, 1/fan_in) as a Parameter."""
    return tg.Parameter(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape), name=name, dtype=dtype)


def init_bias(size, dtype, name):
    return tg.Parameter(np.zeros(size), name=name, dtype=dtype)


class RecurrentModel(tg.Module):
    """Base class of the designs: a ``name`` (the scope of every unroll) and ``trace``.

    Subclasses implement ``run(...) -> Unrolled`` and ``_trace_roots(steps)``.
    """

    name = "rnn"
    edge_label = None

    def trace(self, steps=3):
        """Roots of a small, fully named unroll of ``steps`` steps on dummy inputs (batch 1).

        viz derives the folded and the unrolled diagrams from these roots alone.
        """
        steps = checks.positive_int(steps, f"{self.name}.trace", "steps")
        with tg.enable_grad():
            return self._trace_roots(steps)

    def _trace_roots(self, steps):
        raise NotImplementedError

    def carry(self, run):
        """What the next chunk of truncated BPTT starts from, as keyword arguments of ``run``:
        the last state, detached (designs with more state override this)."""
        return {"h0": run.last.detach()}

    def run_for_loss(self, *args, **kwargs):
        """``run`` as ``loss`` and training want it: only the loss and the last state count.

        A design may compute its loss faster here (ElmanRNN keeps only the recurrence per
        step), with the same value and gradients as ``run``.
        """
        return self.run(*args, **kwargs)

    def loss(self, *args, **kwargs):
        """Sum over time steps of the batch-mean cross-entropy (see ``run`` for the arguments).

        Built by ``run_for_loss``; ``run(...).loss`` is the same value with every step's o(t)
        and L(t) as named nodes of that step's scope.
        """
        loss = self.run_for_loss(*args, **kwargs).loss
        if loss is None:
            raise tg.ShapeError(f"{self.name}.loss: needs targets (ys) to compute a loss")
        return loss


class Recurrence(RecurrentModel):
    """A user's own recurrence, unrolled like the built-in designs (figures 10.1 and 10.2).

    Parameters
    ----------
    step : callable
        ``step(state, x) -> state`` (figure 10.2, h(t) = f(h(t-1), x(t); theta)), or
        ``step(state) -> state`` when ``n_in`` is None (figure 10.1, s(t) = f(s(t-1); theta)).
        Build it from tinygraph ops on the parameters you pass in ``params``.
    params : sequence of Parameter
        theta: what training updates (named by their ``.name``).
    n_state : int
        Size of the state vector.
    n_in : int or None
        Input width (float vectors), or None for a system with no input.
    readout : callable, optional
        ``readout(state) -> o`` (logits); needed for ``loss``.
    name : str
        The scope of every unroll.
    state_name : str
        The book's name of the state ("s" in figure 10.1, "h" in figure 10.2).
    edge_label : str
        What viz writes on the recurrent edge, which passes no weight parameter ("f").

    Examples
    --------
    >>> W = tg.Parameter(np.eye(2) * 0.5, name="W")
    >>> system = Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=2, state_name="s")
    >>> run = system.run(steps=4, h0=np.ones(2))
    """

    def __init__(self, step, params, n_state, n_in=None, readout=None, name="system",
                 state_name="h", edge_label="f"):
        self._params = list(params)
        for p in self._params:
            if not isinstance(p, tg.Tensor) or not p.requires_grad:
                raise tg.ConfigError(f"Recurrence: params must be tensors that require grad, "
                                     f"got {type(p).__name__}")
        self.step_fn = step
        self.readout = readout
        self.n_state = checks.positive_int(n_state, "Recurrence", "n_state")
        self.n_in = None if n_in is None else checks.positive_int(n_in, "Recurrence", "n_in")
        self.name = name
        self.state_name = state_name
        self.edge_label = edge_label

    def named_parameters(self, prefix=""):
        for i, p in enumerate(self._params):
            yield prefix + (p.name or f"param{i}"), p

    def _dtype(self):
        return self._params[0].dtype if self._params else np.float64

    def run(self, xs=None, ys=None, h0=None, steps=None, mask=None):
        """Unroll the recurrence.

        Parameters
        ----------
        xs : floats (T, n_in) or (T, B, n_in); None for a system without input (give ``steps``).
        ys : ids (T,) or (T, B), optional; with a ``readout``, adds L(t) = CE(o(t), y(t)).
        h0 : (n_state,) or (B, n_state), default zeros.
        mask : (T, B) of 0/1, optional (padded steps carry the state and add no loss).

        Returns
        -------
        Unrolled
        """
        who = self.name
        dtype = self._dtype()
        if self.n_in is None:
            if xs is not None:
                raise tg.ShapeError(f"{who}: this system has no input (n_in=None); give steps=")
            steps = checks.positive_int(steps, who, "steps")
            h0_shape = np.shape(h0.data if isinstance(h0, tg.Tensor) else h0) if h0 is not None else ()
            batched = len(h0_shape) == 2
            batch = h0_shape[0] if batched else None
            if mask is not None:
                raise tg.ShapeError(f"{who}: mask= needs inputs xs")
            keep = None
        else:
            if xs is None:
                raise tg.ShapeError(f"{who}: xs is required (n_in={self.n_in})")
            xs, is_ids, batched = checks.inputs(xs, self.n_in, who, dtype)
            if is_ids:
                raise tg.DTypeError(f"{who}: a Recurrence takes float input vectors (T, n_in); "
                                    "turn ids into vectors inside your step function")
            steps = xs.shape[0]
            batch = xs.shape[1] if batched else None
            keep = checks.mask(mask, steps, batch, batched, who)
        if ys is not None:
            if self.readout is None:
                raise tg.ConfigError(f"{who}: targets ys need a readout= function giving o(t)")
            shape = (steps,) if batch is None else (steps, batch)
            ys = checks.targets(ys, shape, None, who, batched, keep)
        state0 = checks.state(h0, (self.n_state,), batch, who, dtype)

        def step(t, h_prev):
            k = None if keep is None else keep[t - 1]
            x = None if xs is None else tg.Tensor(xs[t - 1])
            h = self.step_fn(h_prev) if x is None else self.step_fn(h_prev, x)
            if not isinstance(h, tg.Tensor):
                raise tg.DTypeError(f"{who}: the step function must return a Tensor, got "
                                    f"{type(h).__name__}")
            if h.shape != h_prev.shape:
                raise tg.ShapeError(f"{who}: at t={t} the step function returned a state of shape "
                                    f"{h.shape}; the state has shape {h_prev.shape}")
            h = carry_masked(h, h_prev, k)
            named = {"x": x, self.state_name: h}
            if self.readout is not None:
                o = self.readout(h)
                named["o"] = o
                if ys is not None:
                    y = tg.Tensor(ys[t - 1])
                    named["y"] = y
                    named["L"] = step_loss(o, y, k, batch or 1)
            return h, named

        with tg.scope(self.name):
            last, history = unroll(step, initial(state0, self.state_name), steps)
            return Unrolled(history, last, self.state_name)

    def __call__(self, xs=None, h0=None, steps=None, mask=None):
        """(outputs [o(t)], states [h(t)], last state)."""
        run = self.run(xs, h0=h0, steps=steps, mask=mask)
        return run.outputs, run.states, run.last

    def _trace_roots(self, steps):
        xs = None if self.n_in is None else np.zeros((steps, 1, self.n_in))
        h0 = np.zeros((1, self.n_state))
        if self.readout is not None:
            run = self.run(xs, ys=np.zeros((steps, 1), dtype=np.int64), h0=h0, steps=steps)
            return [run.loss]
        return [self.run(xs, h0=h0, steps=steps).last]
