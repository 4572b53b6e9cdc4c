"""Cells and the one unroll every recurrent design runs.

A *cell* is the book's step function plus what can be batched over time
(the Haiku / Keras / ``lax.scan`` idea, with named state parts so that the
diagrams can name them):

- ``parts``: the state, a dict of named parts and their sizes (``{"h": H}``,
  ``{"s": H, "h": H}`` for an LSTM);
- ``input_map(inputs) -> u``: the state-independent part of a step (e.g.
  ``U x(t) + b``).  ``loss`` applies it to all time steps at once, ``run`` per step;
- ``step(state, u) -> state``: the recurrence, what must stay in the loop;
- ``readout(state) -> o``: the output layer.  ``loss`` applies it to the rows of
  all steps at once, ``run`` per step.

:class:`Cell` runs any cell in two forms with the same values and gradients:
:meth:`Cell.unroll` with ``per_step=True`` makes every op of every step a node
of that step's scope (what viz draws and ``tg.detect_anomaly`` reports), and
with ``per_step=False`` (what ``loss`` and training use) keeps only ``step`` in
the loop.  A design whose fed-back output is known in advance (teacher forcing)
batches that too; one without state parts has no loop at all.
:class:`Recurrence` is the public cell a user writes (figures 10.1 and 10.2);
the built-in designs of :mod:`rnn.models` are cells of the same machinery.

The loop is plain iteration over t = 1..T (never recursion, so 100,000 steps
are fine), each step under ``tg.scope(f"t={t}")`` inside ``tg.scope(model.name)``,
and back-propagation through time is ``loss.backward()`` on that DAG.
"""

import contextlib
import copy
import inspect
import re
import threading
import types

import numpy as np

import tinygraph as tg

from tinygraph import tape
from tinygraph.module import evaluation, running_model
from tinygraph.ops import scaled_cross_entropy
from tinygraph.tensor import _unbroadcast

from . import checks, replay
from .plan import Plan

_STEP = re.compile(r"^t=(-?\d+)$")
RESERVED = frozenset({"x", "o", "L", "y"})   # the book's names the machinery gives its own nodes


class Unrolled:
    """What one unroll made.

    Attributes
    ----------
    loss : Tensor or None
        Sum over time steps of the per-step losses L(t) (None without targets).
    outputs : list of Tensor
        o(t) for every step that has an output (empty when the output layer was batched).
    states : list
        The state after every step: a Tensor for a one-part state, else a dict part -> Tensor.
    parts : dict name -> list of Tensor
        Every state part after every step.
    losses : list of Tensor
        The per-step losses L(t) (empty when the output layer was batched).
    last : Tensor, dict or None
        The state after the last step, in the form of ``states``, to carry into the next
        chunk; for a design without state parts, the feedback (below).
    feedback : Tensor or None
        The previous output the next step would read (designs with y(t-1) -> h(t) connections);
        in a padded batch (``mask``), each sequence's target at its last kept step (running
        free, what its last kept step fed back: the padded steps carry it, as they carry the
        state).
    past : list of dict or None
        Designs with lagged parts (``Cell.lags``): the states after the last ``max(lags)``
        steps, oldest first, that the next chunk reads as h(t-d); in a padded batch the padded
        steps count, carrying the state, as a hole does.
    attention : list of Tensor or None
        A design with attention (``rnn.EncoderDecoder(attention=...)``): the weights α(t) of
        every decoder step t = 1..n_y, each (n_x,) or (B, n_x); None for a design without
        attention.  Made when first asked for where decoder steps were replayed (their α(t)
        are computed then from the replayed s(t-1), as the states are: a loss on them
        back-propagates exactly, but ``tg.grad`` or ``retain_grad`` of such an α(t) is refused,
        as for a replayed state; reading them is a ConfigError once the parameters they read
        changed since the run); set it to a list, or to a function of no arguments that makes
        the list.
    replayed : (a, b) or None
        Steps a..b (in the order run) were replayed from a recorded step as one node
        (:mod:`rnn.replay`); None when every step ran as engine ops.
    not_replayed : str or None
        Why a cell unrolled for the loss did not replay its steps (None if it did, or if it
        was not tried: ``run``, a short sequence, a design of several unrolls).
    """

    __slots__ = ("loss", "outputs", "_states", "parts", "losses", "last", "feedback", "past",
                 "_attention", "replayed", "not_replayed", "_shown")

    def __init__(self, history, part_names, last, loss=None, feedback=None, single=True,
                 shown="h", past=None):
        self.losses = history.get("L", [])
        self.outputs = history.get("o", [])
        self.parts = {name: history.get(name, []) for name in part_names}
        # what ``states`` is made of: the shown history, or the parts as they are now
        self._shown = history.get(shown, []) if not part_names else dict(self.parts)
        self._states = self.parts[part_names[0]] if part_names and single else None
        self.last = last
        self.feedback = feedback
        self.past = past
        self._attention = None
        self.replayed = None
        self.not_replayed = None
        self.loss = total(self.losses) if self.losses else loss

    @property
    def states(self):
        """The state after every step: a Tensor for a one-part state, else a dict part ->
        Tensor (made when first asked for)."""
        if self._states is None:
            shown = self._shown
            if type(shown) is not dict:
                self._states = shown
            else:
                self._states = [dict(zip(shown, s)) for s in zip(*shown.values())]
        return self._states

    @states.setter
    def states(self, value):
        self._states = value

    @property
    def attention(self):
        """The attention weights α(1..n_y) (see the class docstring), made when first asked for."""
        if callable(self._attention):
            self._attention = self._attention()
        return self._attention

    @attention.setter
    def attention(self, value):
        self._attention = value

    def __repr__(self):
        steps = max((len(v) for v in self.parts.values()), default=len(self.outputs))
        loss = "None" if self.loss is None else f"{self.loss.item():.6g}"
        return (f"Unrolled(steps={steps}, parts={list(self.parts)}, outputs={len(self.outputs)}, "
                f"loss={loss})")


def unroll(step, carry, steps, reverse=False):
    """Run ``step`` for t = 1..steps (t = steps..1 with ``reverse``), each call under
    ``tg.scope(f"t={t}")``: a chain run backward in time still names its real time steps.

    Parameters
    ----------
    step : callable
        ``step(t, carry) -> (carry, named)``; ``named`` maps book names ("x", "h", "o",
        "y", "L", ...) to the Tensors of step t (None entries are skipped).
    carry : anything
        What step t hands to step t+1 (the state h(t-1), or a previous output).
    steps : int
    reverse : bool
        Run from the last step to the first (the backward chain g(t) of figure 10.11).

    Returns
    -------
    (carry, history) : the carry after the last step run, and a dict name -> list of the
    named Tensors in time order t = 1..steps, whichever way they were run (each Tensor's
    ``.name`` set to its key).
    """
    history = {}
    carry = run_steps(step, carry, range(steps, 0, -1) if reverse else range(1, steps + 1),
                      history)
    if reverse:
        for nodes in history.values():
            nodes.reverse()
    return carry, history


def run_steps(step, carry, ts, history):
    """Run ``step`` (as in :func:`unroll`) for the steps ``ts`` in that order, appending the
    named nodes of each to ``history`` (in the order run); returns the last carry."""
    for t in ts:
        with tg.scope(f"t={t}"):
            carry, named = step(t, carry)
        for key, node in named.items():
            if node is not None:
                node.name = key
                history.setdefault(key, []).append(node)
    return carry


def innermost(pattern, scope):
    """The integer of the innermost part of a scope label that ``pattern`` (one group) matches."""
    if not scope:
        return None
    for part in reversed(scope.split("/")):
        m = pattern.match(part)
        if m:
            return int(m.group(1))
    return None


def time_step(scope):
    """The integer K of the innermost ``t=K`` in a scope label, or None."""
    return innermost(_STEP, scope)


def walk(roots, stop=None):
    """Every node reachable from ``roots``, each once, in a deterministic order.

    Iterative depth-first search, parents in order: the same graph gives the
    same order on every run, and no recursion limits the depth.  ``stop(node)``,
    optional: a node for which it is true is listed but its parents are not walked.
    """
    order = []
    seen = set()
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        if stop is None or not stop(node):
            stack.extend(reversed(node.parents))
    return order


def unroll_scope(roots):
    """The scope of the model's unroll behind ``roots``: the outermost part of the first root's
    scope ("encdec" for "encdec/decoder/t=3"), or None when it has no scope."""
    scope = roots[0].scope if roots else None
    return scope.split("/")[0] if scope else None


def is_outside(node, inside):
    """A node made outside the unroll's scope ``inside`` (another model's tensor, a tensor the
    user made before the run).  Parameters are never outside (they belong to no step)."""
    if inside is None or isinstance(node, tg.Parameter):
        return False
    scope = node.scope or ""
    return scope != inside and not scope.startswith(inside + "/")


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
    return tg.stack(losses).sum()


def squared_error(o, y):
    """The mean over rows of ||o_b - y_b||^2 (the per-row sum of squares): the regression
    counterpart of ``tg.cross_entropy``.  o, y : (B, K), or (K,) for one row."""
    if o.shape != y.shape:
        where = tg.current_scope()
        raise tg.ShapeError(f"squared_error: the output o has shape {o.shape} but the target y "
                            f"has shape {y.shape}" + (f" in scope '{where}'" if where else ""))
    rows = o.shape[0] if o.ndim == 2 else 1
    diff = o - y
    return (diff * diff).sum() * (1.0 / rows)


CRITERIA = ("cross_entropy", "squared_error")


def criterion_named(name, who):
    """The per-step loss called ``name``: ``tg.cross_entropy`` (integer class ids) or
    :func:`squared_error` (float target vectors)."""
    if name not in CRITERIA:
        raise tg.ConfigError(f"{who}: criterion must be one of {CRITERIA}, got {name!r}")
    return tg.cross_entropy if name == "cross_entropy" else squared_error


def step_loss(o, y, keep, batch, criterion=tg.cross_entropy):
    """L(t) = (1/B) sum_b keep[b] criterion(o_b, y_b); y is the target leaf (a parent of the loss).

    keep : bool array (B,) or None (all kept).  Returns None when no row is kept.
    criterion : ``tg.cross_entropy`` (ids) or :func:`squared_error` (float targets).
    """
    if keep is None or keep.all():
        return criterion(o, y)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return None
    return criterion(o[rows], y[rows]) * (rows.size / batch)


def output_and_loss(readout, state, y, keep, batch, criterion=tg.cross_entropy):
    """One step's output o(t) = readout(state) and, given the targets y, the leaf y(t) and
    the loss L(t) (see :func:`step_loss`): a dict of named nodes."""
    named = {"o": readout(state)}
    if y is not None:
        named["y"] = tg.Tensor(y)
        named["L"] = step_loss(named["o"], named["y"], keep, batch or 1, criterion)
    return named


def rows_loss(o, ys, keep, batch, criterion=tg.cross_entropy):
    """The loss of many steps' outputs at once: (1/B) sum_t sum_b keep[t, b] criterion(o(t)_b, y(t)_b).

    o : Tensor (N, C) of rows (time and batch flattened), ys : ids (N,) (or float targets (N, K)),
    keep : bool (N,) or None.
    """
    targets = tg.Tensor(ys, name="y")
    if keep is None:
        return _scaled_loss(criterion, o, targets, float(len(ys) / batch))
    rows = np.flatnonzero(keep)
    return _scaled_loss(criterion, o[rows], targets[rows], float(rows.size / batch))


def _scaled_loss(criterion, o, y, scale):
    """``criterion(o, y) * scale``; for cross-entropy one node (``scaled_cross_entropy``: the
    same bits, without a second log-sum-exp in backward)."""
    if criterion is tg.cross_entropy:
        return scaled_cross_entropy(o, y, scale)
    return criterion(o, y) * scale


def own_node(part):
    """A state part returned by a step as a node of that step: a part the step passes on as it
    came (p(t) = h(t-1), a part kept unchanged, a tensor made outside the unroll) is an identity
    view made in the step's scope, so that naming it renames nothing of an earlier step (h(t-1)
    stays h, not p) and the part is drawn, and read, at every step."""
    here = tg.current_scope()
    scope = part.scope or ""
    if here is None or scope == here or scope.startswith(here + "/"):
        return part
    return part.reshape(part.shape)


def carry_masked(h, h_prev, keep):
    """h where ``keep`` (B,) is True, h_prev (carried unchanged) where it is False."""
    if keep is None or keep.all():
        return h
    return h_prev + (h - h_prev) * keep[:, None].astype(h.dtype)


def _carry_fed(fed, prev, keep):
    """Running free over a padded batch: what step t+1 reads, ``fed`` (from o(t)) where ``keep``
    (B,) is True and the previous feedback where step t is padding, so that after a sequence's
    end its feedback (``run.feedback``, and ``run.last`` of a design without state parts) stays
    the one of its last kept step, as when it runs alone."""
    if keep.all():
        return fed
    if fed.dtype.kind in "iu":          # sampled ids: no gradient to keep
        return tg.Tensor(np.where(keep, fed.data, prev.data))
    return carry_masked(fed, prev, keep)


def transposed(weight):
    """``weight.T`` as a contiguous copy: one node per unroll, so every step's matmul and
    ``take`` read a C-ordered array (several times faster than through a transposed view)."""
    return tg.apply("transpose", _transpose_copy, weight)


def _transpose_copy(w):
    return np.ascontiguousarray(w.T), (lambda g: g.T,)


tg.defvjp(_transpose_copy, lambda g, out, w: (g.T,))   # for create_graph: the gradient is g.T


def transposed_plus(weight, bias):
    """``weight.T + bias`` as one node (one per unroll): the rows that ``take`` picks for one-hot
    inputs, summed straight into a C-ordered array, without first a transposed copy of the
    weight as a node of its own (the same sums, so the same bits as ``transposed(weight) +
    bias``, and the same gradients: g.T for the weight, g summed over the rows for the bias)."""
    return tg.apply("transpose_add", _transpose_add, weight, bias)


def _transpose_add(w, b):
    out = np.add(w.T, b, order="C")     # C-ordered (the transposed view is F-ordered)
    shape = b.shape  # the bias's gradient summed here, as the engine would sum it (the same
    # call): g is then held by the weight's g.T alone, which the engine hands over as its own
    return out, (lambda g: g.T, lambda g: _unbroadcast(g, shape))


tg.defvjp(_transpose_add, lambda g, out, w, b: (g.T, g))   # the engine sums g to b's shape


def joined(weights):
    """``[W1.T | W2.T | ...]``: the weights transposed and side by side, as one node (one per
    unroll), so that one matmul of the rows makes the products of all of them (an LSTM's four
    gates).  Each weight gets back exactly its own block of the gradient, transposed."""
    return tg.apply("join_transposed", _join_transposed, *weights)


def _blocks(ws):
    ends = np.cumsum([w.shape[0] for w in ws])
    return [slice(e - w.shape[0], e) for w, e in zip(ws, ends)]


def _join_transposed(*ws):
    return (np.concatenate([w.T for w in ws], axis=1),
            [lambda g, b=b: np.ascontiguousarray(g[:, b].T) for b in _blocks(ws)])


tg.defvjp(_join_transposed, lambda g, out, *ws: [g[:, b].T for b in _blocks(ws)])


_local = threading.local()


def _transposes():
    """This thread's Transposes of the cells it is unrolling, by id of the cell."""
    made = getattr(_local, "transposes", None)
    if made is None:
        made = _local.transposes = {}
    return made


class _TransposesBlock:
    """The block of :meth:`RecurrentModel.transposes` (a small class rather than a generator:
    every unroll enters it twice)."""

    __slots__ = ("model", "stack_gates", "_made")

    def __init__(self, model, stack_gates):
        self.model = model
        self.stack_gates = stack_gates

    def __enter__(self):
        made = _transposes()
        key = id(self.model)
        if key in made:           # a nested use: the outer block's, which it removes
            self._made = None
            return made[key]
        self._made = made
        t = made[key] = Transposes(self.model, self.stack_gates)
        return t

    def __exit__(self, *exc):
        if self._made is not None:
            del self._made[id(self.model)]
        return False


class Transposes:
    """``T.W`` is ``transposed(model.W)``, made once per unroll on first use (in the model's scope).

    ``stack_gates`` is what the unroll asked for: True when a gated cell should compute its gates
    from the stacked weights (``joined``: one matmul for all gates), False for one product per
    gate, each gate's own weight a node of the diagrams.
    """

    def __init__(self, model, stack_gates=False):
        self._model = model
        self._made = {}
        self.stack_gates = stack_gates

    def __getattr__(self, name):
        made = self.__dict__["_made"]
        if name not in made:
            made[name] = transposed(getattr(self.__dict__["_model"], name))
        return made[name]

    def biased(self, name, bias):
        """``W.T + b`` for the weight ``name`` and the bias Parameter ``bias``, made once per unroll:
        the rows that ``take`` picks for one-hot inputs (U x + b in one gather).  Batched over
        time (``stack_gates``, what ``loss`` uses) it is one node (:func:`transposed_plus`); per
        step, the transpose ``T.W`` and the sum, as the diagrams draw them."""
        made = self.__dict__["_made"]
        key = (name, id(bias))
        if key not in made:
            made[key] = (transposed_plus(getattr(self.__dict__["_model"], name), bias)
                         if self.stack_gates else getattr(self, name) + bias)
        return made[key]

    def joined(self, names):
        """``[W1.T | W2.T | ...]`` of the weights ``names`` (see :func:`joined`), made once per
        unroll: the columns of every gate side by side, in the order of ``names``."""
        made = self.__dict__["_made"]
        key = ("joined",) + tuple(names)
        if key not in made:
            model = self.__dict__["_model"]
            made[key] = joined([getattr(model, name) for name in names])
        return made[key]

    def joined_bias(self, names):
        """The biases ``names`` end to end, one ``concat`` node per unroll."""
        made = self.__dict__["_made"]
        key = ("joined_bias",) + tuple(names)
        if key not in made:
            model = self.__dict__["_model"]
            made[key] = tg.concat([getattr(model, name) for name in names])
        return made[key]

    def joined_biased(self, names, biases):
        """``joined(names) + joined_bias(biases)``, made once per unroll: the rows that ``take``
        picks for one-hot inputs (the input map of every gate in one gather)."""
        made = self.__dict__["_made"]
        key = ("joined_biased",) + tuple(names) + tuple(biases)
        if key not in made:
            made[key] = self.joined(names) + self.joined_bias(biases)
        return made[key]


def init_weight(rng, shape, fan_in, dtype, name):
    """A weight ~ N(0, 1/fan_in) as a Parameter."""
    return tg.Parameter(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape), name=name, dtype=dtype)


def init_bias(size, dtype, name):
    return tg.Parameter(np.zeros(size), name=name, dtype=dtype)


@contextlib.contextmanager
def evaluating(model):
    """``model`` in evaluation mode inside the block, in this thread (no module's own mode is
    changed: see below):
    what the diagrams (``trace``), the diagnostics and viz's explorer and playground compute.
    In training mode each of their runs would draw other dropout masks (the views of one model
    disagreeing) and advance a seeded ``tg.Dropout``'s masks, changing the ones the training
    gets next.  Only the model's own sub-modules (``named_modules``) are switched: a Dropout
    that a cell's functions read without holding it (``cell.drop = drop``) stays as it is, and
    warns when an unroll calls it in training mode (:func:`tinygraph.module.running_model`).
    Yields the names of the ``tg.Dropout`` modules that were in training mode with p > 0
    (", "-joined, "" if none).

    The mode is switched for this thread only (:func:`tinygraph.module.evaluation`): another
    thread training the same model meanwhile keeps its dropout, and overlapping blocks of
    several threads leave every module's mode as it was."""
    named = getattr(model, "named_modules", None)
    modules = list(named()) if callable(named) else []
    dropped = ", ".join(name or "the model" for name, module in modules
                        if isinstance(module, tg.Dropout) and module.training and module.p > 0)
    with evaluation([module for _, module in modules]):
        yield dropped


class RecurrentModel(tg.Module):
    """Base class of the designs: a ``name`` (the scope of every unroll), ``trace`` and ``loss``.

    Subclasses implement ``run(...) -> Unrolled`` and ``_trace_roots(steps)``.
    """

    name = "rnn"
    edge_label = None
    causal = True      # o(t) reads x(1..t) only, so a long sequence may be read in chunks

    def trace(self, steps=3):
        """Roots of a small, fully named unroll of ``steps`` steps on dummy inputs (batch 1).

        viz derives the folded and the unrolled diagrams from these roots alone.  Traced in
        evaluation mode (:func:`evaluating`: dropout off in this thread, no module's own mode
        changed), so a drawing neither shows one random mask nor advances a seeded
        ``tg.Dropout``'s masks.
        """
        steps = checks.positive_int(steps, f"{self.name}.trace", "steps")
        with tg.enable_grad(), evaluating(self):
            return self._trace_roots(steps)

    def _trace_roots(self, steps):
        raise NotImplementedError

    def own_config(self):
        """The settings that change what the model computes and are not parameters, which
        ``save`` records and ``load`` checks: the design (its class), and what a design adds
        (its criterion, attention, leak rate, nonlinearity...)."""
        return {"model": type(self).__name__}

    def transposes(self, stack_gates=False):
        """``self.T`` (:class:`Transposes` of this model's weights) inside the block, in this
        thread; a nested use (the chains of one model's run) shares the outer one, and its
        ``stack_gates``.  The table lives per thread, so one model unrolls in two threads at
        once.  ``stack_gates``: the gated cells compute all their gates with one matmul per step
        (what ``loss`` uses); False keeps one product per gate (what the diagrams draw)."""
        return _TransposesBlock(self, stack_gates)

    @property
    def T(self):
        """``self.T.W`` is W transposed, made once per unroll (only inside ``transposes()``)."""
        made = _transposes().get(id(self))
        if made is None:
            raise tg.ConfigError(f"{self.name}: self.T (the transposed weights) exists only "
                                 "inside an unroll of this model")
        return made

    def carry(self, run):
        """What the next chunk of truncated BPTT starts from, as keyword arguments of ``run``:
        the last state, detached (designs with more state override this).  A model that is
        not causal is refused (:func:`not_carried`)."""
        not_carried(self)
        return {"h0": detach_state(run.last)}

    def run_for_loss(self, *args, **kwargs):
        """``run`` as ``loss`` and training want it: only the loss and the last state count.

        A cell batches everything but its recurrence here, with the same value and gradients
        as ``run``.
        """
        return self.run(*args, **kwargs)

    def loss(self, *args, **kwargs):
        """Sum over time steps of the batch-mean criterion: cross-entropy of class ids, or with
        ``criterion="squared_error"`` the squared error ||o(t) - y(t)||^2 (see ``run`` for the
        arguments).

        With a ``mask``, each step's term is the sum over the kept rows divided by the full
        batch size B, not by the number of rows kept at that step.

        Built by ``run_for_loss``; ``run(...).loss`` is the same value with every step's o(t)
        and L(t) as named nodes of that step's scope.
        """
        loss = loss_run(self, args, kwargs, f"{self.name}.loss").loss
        if loss is None:
            raise tg.ShapeError(f"{self.name}.loss: needs targets (ys) to compute a loss")
        return loss


def loss_run(model, args, kwargs, who):
    """``model.run_for_loss(*args, **kwargs)``, an argument it does not take (a ``feedback=``
    that only ``run`` takes) a ConfigError naming ``who`` (``loss``, the Trainer), what it
    takes, and ``run(...).loss`` when ``run`` takes that argument, not Python's TypeError
    naming run_for_loss."""
    try:
        return model.run_for_loss(*args, **kwargs)
    except TypeError:
        try:
            inspect.signature(model.run_for_loss).bind(*args, **kwargs)
        except TypeError as bad:      # inspect's words, the same in every Python (3.13's
            # TypeError adds "Did you mean ...?" to its own)
            takes = ", ".join(inspect.signature(model.run_for_loss).parameters)
            name = re.search(r"keyword argument '(\w+)'", str(bad))
            run = getattr(model, "run", None)
            run = (f": run takes {name[1]}=, and run(..., {name[1]}=...).loss is that loss"
                   if name and callable(run) and name[1] in inspect.signature(run).parameters
                   else "")
            raise tg.ConfigError(f"{who}: {bad}; the loss takes "
                                 f"({takes}){run}") from None
        raise


def not_carried(model):
    """A ConfigError for ``carry`` of a model that is not causal (``causal = False``: a
    bidirectional net, an encoder-decoder): each of its outputs reads the whole sequence, so
    no state of a run is where a next chunk of the sequence starts (the chain backward in
    time ends at step 1: its g(1) would be read as the next chunk's g(T+1))."""
    if not getattr(model, "causal", True):
        name = getattr(model, "name", type(model).__name__)
        raise tg.ConfigError(f"{name}.carry: {name} is not causal (each output reads the whole "
                             "sequence), so no state of a run starts a next chunk of it; read "
                             "whole sequences (no truncated BPTT)")


def detach_state(state):
    """A state (Tensor or dict of parts) cut from its graph."""
    if isinstance(state, dict):
        return {k: v.detach() for k, v in state.items()}
    return state.detach()


class Cell(RecurrentModel):
    """The shared machinery of every cell: inputs, state, feedback, masks, scopes, batching.

    A subclass declares ``parts`` (name -> size), optionally ``feedback`` (the name of the
    input that reads the previous output y(t-1)) and ``outputs = "last"`` (one output after
    the last step), and implements ``input_map``, ``step`` and ``readout`` on dicts of
    Tensors.  ``self.T.W`` inside them is W transposed once per unroll.

    ``lags = {"h": d}`` gives the step, beside h(t-1) as ``state["h"]``, the part d steps back as
    ``state[lagged("h", d)]`` (the state before step 1 while t - d < 1): the very node of step
    t - d, so the diagrams draw that connection through d delay squares (section 10.9).
    ``criterion`` is the per-step loss of o(t) against y(t): ``tg.cross_entropy`` on ids, or
    :func:`squared_error` on float targets.
    """

    parts = {}
    feedback = None
    outputs = "all"
    lags = {}
    criterion = staticmethod(tg.cross_entropy)
    batch_readout = True
    state_is_dict = False     # True: step and readout see the state as a dict even with one part
    has_readout = True
    names_inputs = True       # per step, the inputs of ``seq`` are named (x(t)); False: left as given
    replayable = True         # False: ``loss`` runs every step as engine ops (see rnn.replay)
    user_step = False         # True (a user's step): keys that are no state part, or a part
                              # wider than the model's dtype, are refused

    def input_map(self, inputs):
        """u from the step's inputs (a dict name -> Tensor, one step or all steps at once)."""
        return inputs.get("x")

    def step(self, state, u):
        raise NotImplementedError

    def readout(self, state):
        return None

    def initial_state(self, state, statics):
        """The state before step 1 (dict part -> Tensor); a design may compute it from its
        static inputs (made in scope ``t=0``)."""
        return state

    def carry(self, run):
        """Truncated BPTT: the next chunk starts from the last state and reads the last feedback
        (a model that is not causal is refused: :func:`not_carried`)."""
        not_carried(self)
        carried = {"h0": detach_state(run.last)} if self.parts else {}
        if self.lags:
            carried["past"] = [detach_state(s) for s in run.past]
        if self.feedback is not None:
            carried["y0"] = run.feedback.detach()
        return carried

    @property
    def dtype(self):
        """The dtype of the first parameter (``named_parameters`` order), float64 without one."""
        for value in vars(self).values():    # the common case: a Parameter among the attributes
            if type(value) is tg.Parameter:  # before any module or container that may hold one
                if value.requires_grad:
                    return value.dtype
            elif isinstance(value, (tg.Module, list, tuple, dict, tg.Tensor)):
                break
        for _, p in self.named_parameters():     # the first one (not a list of them all)
            return p.dtype
        return np.dtype(np.float64)

    @property
    def regression(self):
        """True when the per-step loss is the squared error on float targets."""
        return self.criterion is squared_error

    def own_config(self):
        return {**super().own_config(),
                "criterion": "squared_error" if self.regression else "cross_entropy"}

    def _set_criterion(self, criterion, who):
        """``criterion="cross_entropy"`` (the class default) or ``"squared_error"``."""
        if criterion_named(criterion, who) is squared_error:
            self.criterion = squared_error

    # ---------------------------------------------------------------- the two forms
    @property
    def owner(self):
        """The model whose parameters (``owner.T``) the cell's functions read: itself."""
        return self

    def unroll(self, plan, per_step=True):
        """Run the cell as ``plan`` (a :class:`rnn.plan.Plan`, its arguments already checked)
        says, per step or batched over time.

        per_step : bool
            True: every op of every step is a node of that step's scope (what viz draws and
            ``tg.detect_anomaly`` reports); always True inside ``tg.detect_anomaly``, running
            free, without targets or with a readout that does not batch.  False (what
            ``loss`` and training use): only the recurrence stays in the loop, and its
            later steps are replayed from a recorded one where they can be (:mod:`rnn.replay`).
        """
        checks.batch_size(plan.batch, plan.steps, self.name)
        if plan.keep is not None and self.feedback is not None:
            checks.no_holes(plan.keep, self.name)
        told = getattr(self.step, "padded_by", None)    # rnn.jacobians' cut step: which of a
        if callable(told):                              # model's chains the mask pads
            told(plan.keep)
        if plan.reverse and (self.feedback is not None or plan.free is not None
                             or self.outputs != "all" or self.lags):
            raise tg.ConfigError(f"{self.name}: a cell run backward in time takes no feedback "
                                 "and no lags, and has an output at every step")
        per_step = (per_step or plan.free is not None or (plan.ys is None and self.has_readout)
                    or not self.batch_readout or tg.is_anomaly_enabled())
        batch = plan.batch
        with tg.scope(self.name), self.owner.transposes(), running_model(self.owner):
            statics = {k: _leaf(v, k) for k, v in (plan.static or {}).items()}
            state = {k: _broadcast(initial(v, k), batch, k) for k, v in (plan.state0 or {}).items()}
            state = self.initial_state(state, statics)
            prev = None if self.feedback is None else initial(plan.y0, plan.y0_name)
            if prev is not None and prev.dtype.kind == "f":    # outputs (n_out,) for a batch
                prev = _broadcast(prev, batch, plan.y0_name)
            ring = self._ring(state, plan.past, batch)
            run = self._per_step if per_step else self._batched
            result = run(plan, statics, state, prev, ring)
        if plan.keep is not None and self.feedback is not None and not plan.reverse:
            self._feedback_at_sequence_ends(result, plan)
        return result

    def _feedback_at_sequence_ends(self, result, plan):
        """A padded batch whose sequences end before step T: the y(t-1) the next chunk reads
        (``carry``) is each sequence's target at its last kept step, not the padded target of
        step T (as a step after a hole would read it, which these cells refuse); running free,
        the padded steps carry the fed-back output (``_carry_fed``) instead.  The state
        parts, and the lagged states of a skip, are carried over the padding in real time as
        over any padded step."""
        keep = plan.keep
        ends = keep.shape[0] - 1 - np.argmax(keep[::-1], axis=0)    # each last kept step - 1
        if plan.free is not None or plan.ys is None or (ends == keep.shape[0] - 1).all():
            return
        result.feedback = tg.Tensor(np.asarray(plan.ys)[ends, np.arange(keep.shape[1])])
        if not self.parts:          # a design without state parts carries its feedback
            result.last = result.feedback

    def _ring(self, state, past, batch):
        """The states of the last ``max(lags)`` steps, oldest first (None without lags)."""
        if not self.lags:
            return None
        if past is None:
            return [state] * max(self.lags.values())
        return [{k: _broadcast(initial(v, k), batch, k) for k, v in s.items()} for s in past]

    def _with_past(self, state, ring):
        """The state the step sees: the parts at t-1, and each lagged part at t-d."""
        seen = dict(state)
        for name, d in self.lags.items():
            seen[lagged(name, d)] = ring[-d][name]
        return seen

    def _per_step(self, plan, statics, state0, prev0, ring0):
        """The per-step executor: every op of every step a node of that step's scope."""
        seq, steps, ys, keep, batch, free = (plan.seq, plan.steps, plan.ys, plan.keep,
                                             plan.batch, plan.free)
        names = list(self.parts)
        fed = free[0] if free else None
        first = plan.first
        criterion = self.criterion

        def one_step(t, carry):
            state, prev, ring = carry
            k = None if keep is None else keep[t - 1]
            inputs = dict(statics)
            for name, values in seq.items():
                inputs[name] = prev if name == fed and t > 1 else _leaf(values, name, t - 1)
            if self.feedback is not None:
                inputs[self.feedback] = prev
            seen = self._with_past(state, ring) if ring else state
            new = self._step(seen, self.input_map(inputs), t, inputs, t == first)
            for name in names:
                new[name] = own_node(carry_masked(new[name], state[name], k))
            named = {name: inputs[name] for name in seq} if self.names_inputs else {}
            named.update(new)
            y = None
            if self.has_readout and (self.outputs == "all" or t == steps):
                every = self.outputs == "all"
                target = ys[t - 1] if every and ys is not None else ys
                named.update(output_and_loss(self.readout, new, target, k if every else None,
                                             batch, criterion))
                y = named.get("y")
            if free is not None:
                nxt = free[1](named["o"])
                nxt = nxt if isinstance(nxt, tg.Tensor) else tg.Tensor(nxt)
                prev = nxt if k is None or prev is None else _carry_fed(nxt, prev, k)
                if prev is not nxt and hasattr(free[1], "fed"):
                    free[1].fed(prev)     # a Sampler records the id fed, not the padding's
            elif self.feedback is not None:
                prev = y
            new = {n: new[n] for n in names}
            return (new, prev, ring and ring[1:] + [new]), named

        (last, prev, ring), history = unroll(one_step, (state0, prev0, ring0), steps,
                                             plan.reverse)
        return self._result(history, last, prev, past=ring)

    def _batched(self, plan, statics, state, prev, ring0):
        """The batched executor: the input map, readout and loss of all steps at once, only
        the recurrence in the loop, and its later steps replayed where they can be."""
        seq, steps, ys, keep, batch, reverse = (plan.seq, plan.steps, plan.ys, plan.keep,
                                                plan.batch, plan.reverse)
        names = list(self.parts)
        all_steps = {name: _leaf(values, name) for name, values in seq.items()}
        if self.feedback is None:
            blocks = [(self.input_map({**statics, **all_steps}), ys, True)]
        else:   # teacher forcing: y(t-1) is known; y(0) = y0 may differ in kind from the ids
            step1 = {name: v[0] for name, v in all_steps.items()}
            blocks = [(self.input_map({**statics, **step1, self.feedback: prev}), ys[:1], False)]
            if steps > 1:
                rest = {name: v[1:] for name, v in all_steps.items()}
                rest[self.feedback] = tg.Tensor(ys[:-1], name="y")
                blocks.append((self.input_map({**statics, **rest}), ys[1:], True))
        for i, (u, _, over_time) in enumerate(blocks):     # steps in the block: all, or 1 + rest
            self._check_time_major(u, (steps - i if len(blocks) > 1 else steps) if over_time
                                   else None, batch)
        if not names:    # nothing is carried: the steps decouple, no loop at all
            loss = None
            for i, (u, targets, over_time) in enumerate(blocks):
                out = self._step({}, u, None, _input_parts(u), True)
                lead = int(over_time) + int(batch is not None)
                o = self.readout({k: v.reshape((-1,) + v.shape[lead:]) for k, v in out.items()})
                kept = None
                if keep is not None:      # the steps of this block: all, or step 1 and the rest
                    kept = (keep if len(blocks) == 1 else keep[:1] if i == 0 else keep[1:])
                    kept = kept.reshape(-1)
                    if not kept.any():    # every row padded: no loss (a mean of no rows is NaN)
                        continue
                term = rows_loss(o, _rows(targets, batch), kept, batch or 1, self.criterion)
                loss = term if loss is None else loss + term
            return self._result({}, None, tg.Tensor(ys[-1]), loss)
        first_block = 0 if self.feedback is None else 1    # steps before the time-batched block

        def u_at(t):
            if t <= first_block:
                return blocks[0][0]
            return _at(blocks[-1][0], t - 1 - first_block)

        only = names[0] if len(names) == 1 else None
        step = self.step
        first = plan.first
        order = plan.order
        depth = max(self.lags.values(), default=1)
        lead = depth + 2              # steps run as engine ops before the replay
        replays = getattr(self.owner, "replayable", True) and steps >= lead + 3   # 3 replayed
        recorded = {}                 # t -> (recording, the step's inputs, its outputs)
        record_at = set(order[lead - 2:lead]) if replays else ()
        parts = self.parts.keys()

        def one_step(t, carry):
            state, ring = carry
            u = u_at(t)
            seen = self._with_past(state, ring) if ring else state
            if t == first:
                new = self._step(seen, u, t, _input_parts(u), True)
            else:   # the same shapes as step 1: only the recurrence itself
                if t in record_at:
                    with tape.recording() as rec:
                        new = step(seen, u)
                    recorded[t] = (rec, seen, u, new)
                else:
                    new = step(seen, u)
                if type(new) is not dict:      # a bare Tensor: one part's (checked at step 1)
                    new = {only: new} if only is not None else self._as_parts(new, t)
                elif new.keys() != parts:      # the first step's keys were checked in full
                    self._check_parts(new, t)
                self._check_values(new, seen, t)    # and its values: they may change later
            if keep is not None:
                new = {n: own_node(carry_masked(new[n], state[n], keep[t - 1])) for n in names}
            elif only is None:
                new = {n: own_node(new[n]) for n in names}
            else:
                new = {only: own_node(new[only])}
            return (new, ring and ring[1:] + [new]), new

        if replays:
            history = {}
            carry = run_steps(one_step, (state, ring0), order[:lead], history)
            programs = [self._program(*recorded[t], names) for t in order[lead - 2:lead]]
            why = replay.why_not(*programs)
            if why is None:      # the recorded steps too: their nodes stay out of the graph
                rest = order[lead - 2:]
                head = {n: nodes[:lead - 2] for n, nodes in history.items()}
                try:
                    (last, ring), history = self._replayed(programs[0], head, depth, rest,
                                                           blocks[-1][0], first_block, keep,
                                                           reverse)
                except tape.StepDiffers as e:     # a user's op's shape followed its values
                    why = f"a replayed step differs from the recorded ones ({e})"
            if why is not None:
                last, ring = run_steps(one_step, carry, order[lead:], history)
                if reverse:
                    for nodes in history.values():
                        nodes.reverse()
        else:
            (last, ring), history = unroll(one_step, (state, ring0), steps, reverse)
        result = self._batched_result(history, last, ring, ys, keep, batch, steps, plan.classes)
        if replays:
            result.replayed = None if why else (order[lead - 2], order[-1])
            result.not_replayed = why
        return result

    def _program(self, rec, seen, u, new, names):
        """The tape.Program of one recorded step (or why it cannot be replayed)."""
        if type(new) is not dict:
            new = {names[0]: new} if len(names) == 1 else None
        if new is None or any(n not in new for n in names):
            return "the step did not return every state part"
        dtypes = {n: getattr(new[n], "dtype", None) for n in names}
        if len(set(dtypes.values())) > 1:    # a replay keeps all the parts in one array
            return "the state parts have different dtypes (" + ", ".join(
                f"{n}: {d}" for n, d in dtypes.items()) + ")"
        for key, v in _keyed(u):     # the step would read this step's values as constants
            if v is not None and not isinstance(v, tg.Tensor):
                return ("the input map" + ("" if key is None else f"'s part {key!r}")
                        + f" is {type(v).__name__}, not a Tensor")
        ins = [seen[n] for n in names] + [seen[lagged(n, d)] for n, d in self.lags.items()]
        return tape.Program.of(rec, ins + replay.flat(u), [new[n] for n in names])

    def _replayed(self, program, history, depth, rest, u_all, first_block, keep, reverse):
        """Steps ``rest`` replayed from ``program`` after the engine's steps in ``history``
        (each part's nodes in the order run): the history of all steps in time order, each
        part a :class:`replay.Steps`, and the last state and lag ring."""
        names = list(self.parts)
        rows = [t - 1 - first_block for t in rest]
        kept = None if keep is None else keep[[t - 1 for t in rest]]
        blocks = replay.run(program, names, list(self.lags.items()), history,
                            replay.flat(u_all), rows, kept, f"t={rest[0]}..{rest[-1]}", reverse)
        steps = {}
        for n in names:
            head = history[n][::-1] if reverse else history[n]
            steps[n] = replay.Steps(head, blocks[n], n, head_first=not reverse)
        last = {n: s[0] if reverse else s[-1] for n, s in steps.items()}
        ring = None
        if self.lags:         # (never run backward in time)
            ring = [{n: steps[n][-k] for n in names} for k in range(depth, 0, -1)]
        return (last, ring), steps

    def _check_time_major(self, u, steps, batch):
        """The input map of many steps at once must keep their axes in front, (T, B, ...) or
        (T, ...): each step reads its own row.  A map that does not (it ignores x, or moves the
        batch to the front) would read another step's row, or raise deep in the step."""
        lead = (() if steps is None else (steps,)) + (() if batch is None else (batch,))
        for key, v in _keyed(u):
            shape = getattr(v, "shape", None)
            if shape is None or tuple(shape[:len(lead)]) == lead:
                continue
            what = "the input map" if key is None else f"part {key!r} of the input map"
            axes = ", ".join((["steps"] if steps is not None else []) +
                             (["batch"] if batch is not None else []))
            want = ", ".join(str(n) for n in lead)
            raise tg.ShapeError(
                f"{self.name}: {what} of {steps or 1} step(s) at once gave shape {tuple(shape)}, "
                f"not ({want}, ...) = ({axes}, ...): the input map must act on each step's input "
                "alone (x(t) -> u(t)), keeping those axes in front")

    def _batched_result(self, history, last, ring, ys, keep, batch, steps, classes=None):
        if not self.has_readout:
            return self._result(history, last, None, past=ring)
        if self.outputs == "last":
            with tg.scope(f"t={steps}"):
                loss = self.criterion(self.readout(last), tg.Tensor(ys, name="y"))
        else:
            loss = self.batched_loss(history, ys, keep, batch, classes=classes)
        feedback = None if self.feedback is None else tg.Tensor(ys[-1])
        return self._result(history, last, feedback, loss, past=ring)

    def batched_loss(self, history, ys, keep, batch, readout=None, classes=None):
        """The loss of every step at once: ``readout`` (default the cell's) applied to the
        rows of the stacked state parts of ``history`` (name -> list of T Tensors).  The
        targets are checked against the readout's classes unless ``classes`` (the number they
        were checked against, see :class:`rnn.plan.Plan`) is that number."""
        stacked = {n: replay.stacked(v) for n, v in history.items()}
        rows = {n: s.reshape((-1,) + s.shape[2:]) if batch else s for n, s in stacked.items()}
        o = (readout or self.readout)(rows)
        n = len(next(iter(rows.values()))) if rows else None
        if isinstance(o, tg.Tensor) and n is not None and (o.ndim == 0 or o.shape[0] != n):
            raise tg.ShapeError(
                f"{self.name}: the readout gave o of shape {o.shape} from the rows of all "
                f"{len(ys)} steps at once ({n} rows, one per step{' and example' if batch else ''}"
                f"), not one row of o per row: loss applies it to all steps together, so it must "
                f"treat each row alone, as an output layer does (a readout that does not needs "
                f"the cell made with batch_readout=False)")
        if self.criterion is tg.cross_entropy and classes != o.shape[-1]:
            self._check_classes(o, ys, keep)
        return rows_loss(o, _rows(ys, batch), None if keep is None else keep.reshape(-1),
                         batch or 1, self.criterion)

    def _check_classes(self, o, ys, keep):
        """Targets of all steps against the number of classes the readout gave, with the step
        named as the per-step loss would name it."""
        bad = (ys < 0) | (ys >= o.shape[-1])
        if keep is not None:
            bad &= keep
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise tg.BadIndexError(f"cross_entropy: target {ys[index]} out of range "
                                   f"[0, {o.shape[-1]}) in scope '{self.name}/t={index[0] + 1}'")

    def _result(self, history, last, feedback, loss=None, past=None):
        names = list(self.parts)
        single = len(names) == 1 and not self.state_is_dict
        if not names:
            last_state = feedback
        elif single:
            last_state = last[names[0]]
        else:
            last_state = last
        return Unrolled(history, names, last_state, loss=loss, feedback=feedback, single=single,
                        past=past)

    def _check_parts(self, new, t):
        """Refuse a step's dict ``new`` that lacks a state part, or (a user's step) holds a key
        that is none, naming step ``t``: such a key would be dropped without a word."""
        missing = [n for n in self.parts if n not in new]
        if missing:
            raise tg.ConfigError(f"{self.name}: at t={t} the step function returned no "
                                 f"{', '.join(map(repr, missing))} (the state parts are "
                                 f"{list(self.parts)})")
        extra = [n for n in new if n not in self.parts] if self.user_step else []
        if extra:
            raise tg.ConfigError(f"{self.name}: at t={t} the step function returned "
                                 f"{', '.join(map(repr, extra))}, not a state part (the parts "
                                 f"are {list(self.parts)}), which would be dropped without a "
                                 "word: return exactly the parts, or add it to n_state")

    # ---------------------------------------------------------------- one step, checked
    def _step(self, state, u, t, inputs, first):
        new = self.step(state, u)
        if not isinstance(new, dict):
            new = self._as_parts(new, t)
        self._check_parts(new, t)
        self._check_values(new, state, t)
        if inputs is not None and first:
            self._check_names(new, state, inputs)
        return new

    def _check_values(self, new, state, t):
        """Refuse a value of the step's dict ``new`` that is no Tensor, (a user's step) of a
        float dtype wider than the model's, or of another shape than its part in ``state``,
        naming step ``t``.  The batched executor runs it on every step it runs as engine ops,
        not only the first: a step whose Python state changes its result from t=3 on (a
        float64 constant mixed in, a part of another shape) would otherwise run on in float64
        or be broadcast back to the state's shape by a mask's carry.  A value
        of its part's dtype in ``state`` (the state before, itself no wider) is not compared
        with the model's dtype (whose look-up costs more than the rest of the check)."""
        dtype = None
        for name, value in new.items():
            if not isinstance(value, tg.Tensor):
                raise tg.DTypeError(f"{self.name}: at t={t} the step function returned "
                                    f"{type(value).__name__} for '{name}'; it must be a Tensor")
            before = state.get(name)
            if self.user_step and value.dtype.kind == "f" and (
                    before is None or value.dtype != before.dtype):
                if dtype is None:
                    dtype = self.dtype
                if np.promote_types(value.dtype, dtype) != dtype:
                    self._not_wider(name, value, t)
            if before is not None and t is not None and value.shape != before.shape:
                raise tg.ShapeError(f"{self.name}: at t={t} the step function returned '{name}' "
                                    f"of shape {value.shape}; the state part has shape "
                                    f"{before.shape}")

    def _not_wider(self, name, value, t, what="the step function", then="run every later step"):
        """Refuse a state part (or, from :meth:`Recurrence.readout`, an output) ``value`` of a
        float dtype wider than every parameter's: an op of the step mixed in a wider constant,
        and every later step would run in its dtype (a cell of parameters of several dtypes may
        have parts of each)."""
        widest = np.result_type(*[p.dtype for _, p in self.named_parameters()], np.float16)
        if np.promote_types(value.dtype, widest) != widest:
            at = "" if t is None else f"at t={t} "
            raise tg.DTypeError(f"{self.name}: {at}{what} returned '{name}' of dtype "
                                f"{value.dtype}, wider than the model's parameters ({widest}): "
                                f"an op of it mixed in a {value.dtype} value (a numpy array "
                                f"constant?), which would {then} in {value.dtype}; make it {widest}")

    def _as_parts(self, new, t):
        if len(self.parts) != 1:
            raise tg.DTypeError(f"{self.name}: at t={t} the step function returned "
                                f"{type(new).__name__}; with state parts {list(self.parts)} it "
                                "must return a dict of them")
        return {next(iter(self.parts)): new}

    def _check_names(self, new, state, inputs):
        """A node named inside the step must not take a name the machinery gives its own nodes.

        Only nodes made inside the step (in its scope ``.../t=K`` or below) are looked at: a
        tensor the step reads from outside (another model's states, an encoder's memory) keeps
        its own names and is not walked into.
        """
        taken = RESERVED | set(self.parts)
        own = {id(v) for v in new.values()}
        stop = {id(v) for v in state.values()} | {id(v) for v in inputs.values()}
        here = tg.current_scope() or ""
        inside = here + "/"
        seen, stack = set(), list(new.values())
        while stack:
            node = stack.pop()
            if id(node) in seen or id(node) in stop or isinstance(node, tg.Parameter):
                continue
            if here and node.scope != here and not (node.scope or "").startswith(inside):
                continue
            seen.add(id(node))
            if node.name in taken and id(node) not in own:
                raise tg.ConfigError(f"{self.name}: the step names an intermediate variable "
                                     f"'{node.name}', which is already the name of "
                                     + ("a state part" if node.name in self.parts else
                                        "the machinery's own x, o, L or y")
                                     + "; choose another name")
            stack.extend(node.parents)


class Chain(Cell):
    """One recurrent chain of a model made of several (figures 10.11 and 10.12).

    The chain is a cell over its owner's parameters: its functions (usually the owner's
    methods) read the weights through ``owner.T``, and the owner runs its chains inside one
    ``owner.transposes()`` block, so each weight is transposed once per run.  It is made
    afresh for every run and is not an attribute of the owner (the owner's parameters stay
    the owner's, under their own names).

    Parameters
    ----------
    owner : Cell, the model
    parts : dict name -> size, the chain's state
    step, input_map, readout, initial_state : functions as the Cell methods of those names
        (``input_map`` default: x(t) itself; no ``readout``: the chain has no output)
    name : str, the scope of the chain's unroll (default the owner's, so that its nodes are in
        the scopes "owner/t=K" of the real time steps)
    feedback : str or None, as :attr:`Cell.feedback`
    names_inputs : bool
        False: the per-step inputs (a list of the Tensors of each step, e.g. the states of the
        layer below) keep their own names instead of being named after their key.
    """

    def __init__(self, owner, parts, step, input_map=None, readout=None, initial_state=None,
                 name=None, feedback=None, names_inputs=True):
        self.names_inputs = names_inputs
        self._owner = owner
        self.parts = dict(parts)
        self.name = owner.name if name is None else name
        self.feedback = feedback
        cut = getattr(owner, "_cut_chain_steps", None)    # set by rnn.jacobians on its own copy
        self.step = step if cut is None else cut(self.parts, step)     # of the owner
        self.input_map = input_map or (lambda inputs: inputs.get("x"))
        self.readout = readout
        self.initial_state = initial_state or (lambda state, statics: state)
        self.state_is_dict = True
        self.criterion = owner.criterion      # a chain with a readout has its owner's loss

    @property
    def owner(self):
        return self._owner

    @property
    def has_readout(self):
        return self.readout is not None

    @property
    def dtype(self):
        return self._owner.dtype


def step_leaves(values, name, steps):
    """The input of every step t = 1..steps as its own node named ``name`` in scope ``t=K``
    (see :func:`_leaf`): a list that several chains of one model read as one leaf per step."""
    leaves = []
    for t in range(1, steps + 1):
        with tg.scope(f"t={t}"):
            leaves.append(_leaf(values, name, t - 1))
    return leaves


def lagged(name, d):
    """The key under which a step reads state part ``name`` of d steps back: "h(t-3)"."""
    return f"{name}(t-{d})"


def _rows(ys, batch):
    """Targets (T, B, ...) as rows (T * B, ...); unbatched (T, ...) as they are."""
    return ys.reshape((-1,) + ys.shape[2:]) if batch else ys


def _leaf(values, name, t=None):
    """Input ``values`` (or its step ``t``) as a node named ``name``: a new leaf for an array; for a
    Tensor, an index (or view) of it, so the gradient reaches the caller's tensor; from a list of
    per-step Tensors, step ``t`` as it is."""
    if isinstance(values, list):
        return values[t]
    if isinstance(values, tg.Tensor):
        node = values[t] if t is not None else values.reshape(values.shape)
        return node.named(name)
    return tg.Tensor(values if t is None else values[t], name=name)


def _broadcast(state, batch, name):
    """A state part given as (size,) for a batch, repeated over the batch (gradients sum back)."""
    if batch is None or state.ndim != 1:
        return state
    with tg.scope("t=0"):
        return (state + np.zeros((batch,) + state.shape, dtype=state.dtype)).named(name)


def _input_parts(u):
    """The Tensors of the input map's value ``u`` (a Tensor, tuple or dict of them, or None) as
    a dict: where :meth:`Cell._check_names` stops walking back from a step's outputs."""
    if u is None:
        return {}
    if type(u) is dict:
        return u
    if type(u) is tuple:
        return dict(enumerate(u))
    return {"u": u}


def _at(u, t):
    """Step ``t`` of the input map of all steps (a Tensor, tuple or dict of them; None for a
    system without input)."""
    if u is None:
        return None
    if type(u) is dict:
        return {k: v[t] for k, v in u.items()}
    if type(u) is tuple:
        return tuple(v[t] for v in u)
    return u[t]


def _refuse_global_parameters(fn, params, what, how):
    """ConfigError if function ``fn`` (or one defined inside it) reads one of ``params``, or a
    Module holding one, as a global: a copy (``how``: deepcopy, pickle) of its cell would
    still compute with the original's."""
    if not isinstance(fn, types.FunctionType):
        return
    owned = {id(p) for p in params}
    codes = [fn.__code__]
    while codes:        # the globals read by fn and by the functions defined inside it
        code = codes.pop()
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for name in code.co_names:
            value = fn.__globals__.get(name)
            if id(value) in owned or (isinstance(value, tg.Module) and any(
                    id(p) in owned for _, p in value._named_state())):
                raise tg.ConfigError(f"Recurrence: {how}: {what} reads {name!r} (its "
                                     f"parameters) as a global, so a copy would still compute with "
                                     "the original's; close over it (make the cell in a "
                                     "function) or build a new cell")


def _copied_function(fn, memo, params, what):
    """``fn`` remade with its closure's contents and defaults deep-copied through ``memo`` (for
    :meth:`Recurrence.__deepcopy__`); nested functions it closes over are remade too."""
    if not isinstance(fn, types.FunctionType):
        return copy.deepcopy(fn, memo)
    if id(fn) in memo:
        return memo[id(fn)]
    _refuse_global_parameters(fn, params, what, "deepcopy")
    cells = tuple(types.CellType() for _ in fn.__closure__ or ())
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, None, cells or None)
    memo[id(fn)] = new
    for cell, old in zip(cells, fn.__closure__ or ()):
        try:
            contents = old.cell_contents
        except ValueError:        # a cell not yet filled
            continue
        cell.cell_contents = _copied_function(contents, memo, params, what)
    new.__defaults__ = copy.deepcopy(fn.__defaults__, memo)
    new.__kwdefaults__ = copy.deepcopy(fn.__kwdefaults__, memo)
    new.__dict__.update(copy.deepcopy(fn.__dict__, memo))
    new.__qualname__, new.__module__, new.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    return new


def _keyed(u):
    """(key, value) of each part of an input map's value (a dict, a tuple, or one value: key
    None), as :func:`_at` indexes them."""
    if type(u) is dict:
        return u.items()
    if type(u) is tuple:
        return enumerate(u)
    return [(None, u)]


class Recurrence(Cell):
    """A user's own cell, unrolled by the same machinery as the built-in designs.

    Parameters
    ----------
    step : callable
        ``step(state, u) -> state`` (figure 10.2, h(t) = f(h(t-1), x(t); theta)), or
        ``step(state) -> state`` when ``n_in`` is None (figure 10.1, s(t) = f(s(t-1); theta)).
        ``u`` is x(t), or ``input_map(x(t))`` when an input map is given.  With a dict
        ``n_state`` the state is a dict of its parts, given and returned.  Build it from
        tinygraph ops on the parameters in ``params``; ``t.named("g")`` names an intermediate
        variable for the diagrams.
    params : list of Parameter, one Parameter, or a tg.Module (its parameters)
        theta: what training updates (named by their ``.name``).  A Module is also held as
        the sub-module ``params_module``, so ``train()``/``eval()`` switch its dropout and the
        views and diagnostics run it in evaluation mode.
    n_state : int or dict name -> int
        The size of the state, or its named parts, e.g. ``{"h": H, "c": H}`` for an LSTM.
    n_in : int or None
        Input width (float vectors), or None for a system with no input.
    readout : callable, optional
        ``readout(state) -> o`` (logits); needed for ``loss``.  ``loss`` applies it to the
        rows of all steps at once, so it must treat each row (example) alone, as every output
        layer does; pass ``batch_readout=False`` if yours does not.
    input_map : callable, optional
        ``input_map(x) -> u``, the state-independent part of the step (e.g. ``x @ U.T + b``):
        ``loss`` applies it to all steps at once (x of shape (T, B, n_in)), ``run`` per step.
        Given integer ids, it receives them as they are (T,) or (T, B): an embedding lookup
        such as ``tg.take(U.T, x, axis=0) + b`` is its job.  Where a mask pads, x(t) is id 0
        (or a zero vector): a padded step reads nothing of it.
    ids : bool or None
        What xs are, which the diagrams (``trace``, ``viz.folded``/``unrolled``) need since they
        draw the cell on dummy inputs: True, integer ids in [0, n_in) (needs an ``input_map``
        that looks them up; ``run`` refuses float vectors); False, float vectors (T, n_in)
        (``run`` refuses ids); None (default), either: ``run`` takes both, and a trace draws the
        cell on the kind of xs it last ran on (``run``, ``loss``, training), float vectors
        before its first run.  A trace on float vectors that fails (an input map that looks up
        ids) says to give ``ids=True``.
    name : str
        The scope of every unroll.
    state_name : str
        The book's name of a one-part state ("s" in figure 10.1, "h" in figure 10.2).
    edge_label : str
        What viz writes on a recurrent edge that passes no weight parameter ("f").
    criterion : "cross_entropy" (default: ys are class ids, L(t) = CE(o(t), y(t))) or
        "squared_error" (ys are float targets (T, K) or (T, B, K), K the width of o:
        L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2).

    Examples
    --------
    >>> W = tg.Parameter(np.eye(2) * 0.5, name="W")
    >>> system = Recurrence(lambda s: (s @ W.T).tanh(), W, n_state=2, state_name="s")
    >>> run = system.run(steps=4, h0=np.ones(2))
    """

    user_step = True        # its step returns its state, nothing else, in the model's dtype
    ids = None              # class defaults: a cell pickled before these existed reads them
    _ran_on_ids = None

    def __init__(self, step, params, n_state, n_in=None, readout=None, input_map=None,
                 name="system", state_name="h", edge_label="f", batch_readout=True,
                 criterion="cross_entropy", ids=None):
        who = "Recurrence"
        self._set_criterion(criterion, who)
        if ids is not None and not isinstance(ids, (bool, np.bool_)):
            raise tg.ConfigError(f"{who}: ids must be True (xs are integer ids), False (float "
                                 f"vectors) or None (either), got {ids!r}")
        for fn, what in ((step, "step"), (readout, "readout"), (input_map, "input_map")):
            if fn is not None and not callable(fn):
                raise tg.ConfigError(f"{who}: {what} must be a function, got {type(fn).__name__}")
        if step is None:
            raise tg.ConfigError(f"{who}: step must be a function, got None")
        self._params = _param_list(params, who)
        if isinstance(params, tg.Module):   # held, so that train()/eval() (its dropout) reach it
            self.params_module = params
        if isinstance(n_state, dict):
            if not n_state:
                raise tg.ConfigError(f"{who}: n_state needs at least one named part")
            self.parts = {_part_name(k, who): checks.positive_int(v, who, f"n_state['{k}']")
                          for k, v in n_state.items()}
            self.state_is_dict = True
        else:
            self.parts = {_part_name(state_name, who): checks.positive_int(n_state, who, "n_state")}
        self.n_state = n_state if isinstance(n_state, dict) else self.parts[state_name]
        self.n_in = None if n_in is None else checks.positive_int(n_in, who, "n_in")
        if input_map is not None and self.n_in is None:
            raise tg.ConfigError(f"{who}: input_map= needs an input (n_in)")
        if ids is not None and self.n_in is None:
            raise tg.ConfigError(f"{who}: ids= says what the inputs are; this system has none "
                                 "(n_in=None)")
        if ids and input_map is None:
            raise tg.ConfigError(f"{who}: ids=True needs an input_map= that looks the ids up "
                                 "(e.g. lambda x: tg.take(E, x, axis=0))")
        self.ids = None if ids is None else bool(ids)
        self._ran_on_ids = None       # the kind of xs of the last run (what ids=None traces on)
        self.step_fn, self.readout_fn, self.input_map_fn = step, readout, input_map
        self.batch_readout = bool(batch_readout)
        self.name = name
        self.state_name = state_name
        self.edge_label = edge_label

    def __getstate__(self):
        """What pickle stores; a function reading the cell's parameters as globals is refused
        (the unpickled cell would compute with whatever those globals are, not its own)."""
        for key in ("step_fn", "readout_fn", "input_map_fn"):
            _refuse_global_parameters(getattr(self, key), self._params, key[:-3], "pickle")
        return vars(self)

    def __copy__(self):
        new = type(self).__new__(type(self))
        new.__dict__.update(vars(self))
        return new

    def __deepcopy__(self, memo):
        """A copy whose functions read the copy's parameters.

        ``copy.deepcopy`` shares functions, so a ``step`` closing over W would still compute with
        the original's W (the copy's parameters never used, its gradients going to the
        original's).  The functions are remade with what they close over (and their defaults)
        deep-copied alongside the parameters; a function that reads one of the parameters as a
        global cannot be remade and is refused.
        """
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in vars(self).items():
            if key not in ("step_fn", "readout_fn", "input_map_fn"):
                setattr(new, key, copy.deepcopy(value, memo))
        for key in ("step_fn", "readout_fn", "input_map_fn"):
            setattr(new, key, _copied_function(getattr(self, key), memo, self._params, key[:-3]))
        return new

    def __repr__(self):
        return (f"Recurrence(name={self.name!r}, n_state={self.n_state!r}, n_in={self.n_in}, "
                f"params={[f'{n}{tuple(p.shape)}' for n, p in self.named_parameters()]})")

    def _walk(self, prefix, visited=None):
        """theta by the Parameters' own names (``param<i>`` for an unnamed one): what
        named_parameters and checkpoints use, for the cell alone and inside a module that
        holds it (``<attr>.W``), so that reordering the list in the code cannot load one
        weight's checkpointed values into another of the same shape."""
        for i, p in enumerate(self._params):
            yield prefix + (p.name or f"param{i}"), p

    @property
    def has_readout(self):
        return self.readout_fn is not None

    def _user_state(self, state):
        return state if self.state_is_dict else state[next(iter(self.parts))]

    def input_map(self, inputs):
        x = inputs.get("x")
        return x if x is None or self.input_map_fn is None else self.input_map_fn(x)

    def step(self, state, u):
        s = self._user_state(state)
        return self.step_fn(s) if self.n_in is None else self.step_fn(s, u)

    def readout(self, state):
        """o = readout(state); an o wider than the parameters (a float64 constant in the
        readout of a float32 cell) is refused, as a wider state part is (see ``_step``)."""
        o = self.readout_fn(self._user_state(state))
        if (isinstance(o, tg.Tensor) and o.dtype.kind == "f"
                and np.promote_types(o.dtype, self.dtype) != self.dtype):
            step = re.search(r"(?:^|/)t=(\d+)", tg.current_scope() or "")   # run: one step's
            self._not_wider("o", o, step and step[1], "the readout", "compute o(t) and the loss")
        return o

    def run(self, xs=None, ys=None, h0=None, steps=None, mask=None, per_step=True):
        """Unroll the recurrence.

        Parameters
        ----------
        xs : floats (T, n_in) or (T, B, n_in); None for a system without input (give ``steps``).
            A Tensor is read as is, so gradients reach it.  With an ``input_map``, also ids
            (T,) or (T, B) in [0, n_in): the input map then receives the raw integer ids (not
            one-hot vectors, so ``x @ U.T`` fails on them) and must look them up itself, e.g.
            ``tg.take(U.T, ids, axis=0)``.  A cell made with ``ids=True`` takes only ids, with
            ``ids=False`` only float vectors.
        ys : ids (T,) or (T, B), optional; with a ``readout``, adds L(t) = CE(o(t), y(t)); with
            ``criterion="squared_error"`` float targets (T, K) or (T, B, K).
        h0 : the state before step 1, default zeros: (n_state,) or (B, n_state), or a dict of
            the parts for a dict state.
        steps : the number of steps of a system without input; with xs, one step per input
            (a steps= that disagrees is a ConfigError).
        mask : (T, B) of 0/1, optional (padded steps carry the state and add no loss).  Each
            L(t) is the sum over the kept rows divided by the full B (not by the number kept),
            so a padded step weighs less than a full one and the gradient equals that of the
            unpadded sequences run one by one, divided by B.
        per_step : bool
            True: every op of every step is a node of that step's scope (what viz draws).
            False (what ``loss`` uses): ``input_map`` and ``readout`` run once over all steps.

        Returns
        -------
        Unrolled
        """
        who = self.name
        if self.n_in is None:
            if xs is not None:
                raise tg.ShapeError(f"{who}: this system has no input (n_in=None); give steps=")
            if mask is not None:
                raise tg.ShapeError(f"{who}: mask= needs inputs xs")
            steps = checks.positive_int(steps, who, "steps")
            batch = checks.batch_of_state(h0, self.parts, who)
            seq, keep = {}, None
        else:
            if xs is None:
                raise tg.ShapeError(f"{who}: xs is required (n_in={self.n_in})")
            arr, is_ids, batched = checks.inputs(xs, self.n_in, who, self.dtype)
            if is_ids and self.input_map_fn is None:
                raise tg.DTypeError(f"{who}: a Recurrence without input_map takes float input "
                                    "vectors (T, n_in); give an input_map= that embeds the ids "
                                    "(e.g. tg.take(U.T, ids, axis=0)), or turn them into vectors")
            if self.ids is not None and is_ids != self.ids:
                raise tg.DTypeError(
                    f"{who}: this cell was made with ids={self.ids} (xs are "
                    f"{'integer ids (T,) or (T, B)' if self.ids else f'float vectors (T, {self.n_in})'}"
                    f"), got {'integer ids' if is_ids else 'float'} xs of shape {arr.shape}")
            if steps is not None and (isinstance(steps, bool) or steps != arr.shape[0]):
                raise tg.ConfigError(f"{who}: steps={steps!r} disagrees with the {arr.shape[0]} "
                                     "steps of xs (a system with input runs one step per input); "
                                     "leave steps out")
            steps = arr.shape[0]
            batch = arr.shape[1] if batched else None
            keep = checks.mask(mask, steps, batch, batched, who)
            if is_ids:
                checks.check_ids(arr, self.n_in, who, "xs", batched, keep)
            tensor = xs if isinstance(xs, tg.Tensor) and xs.requires_grad else None
            seq = {"x": checks.padded_inputs(arr, keep, is_ids, who, tensor)}
        if ys is not None:
            if self.readout_fn is None:
                raise tg.ConfigError(f"{who}: targets ys need a readout= function giving o(t)")
            shape = (steps,) if batch is None else (steps, batch)
            ys = checks.step_targets(ys, shape, None, who, who, keep, self.regression, self.dtype)
        state0 = checks.states(h0, self.parts, batch, who, self.dtype)
        run = self.unroll(Plan(seq, steps, state0, ys, keep, batch), per_step)
        if self.n_in is not None:
            self._ran_on_ids = is_ids
        return run

    def run_for_loss(self, xs=None, ys=None, h0=None, steps=None, mask=None):
        """``run`` with ``per_step=False``: what ``loss`` and training use."""
        return self.run(xs, ys, h0=h0, steps=steps, mask=mask, per_step=False)

    def __call__(self, xs=None, h0=None, steps=None, mask=None):
        """(outputs [o(t)], states [h(t)], last state)."""
        run = self.run(xs, h0=h0, steps=steps, mask=mask)
        return run.outputs, run.states, run.last

    def generate(self, prompt, steps, temperature=1.0, seed=0, h0=None):
        """Free-running generation: read ``prompt`` ids, then feed each id sampled from o(t)
        back as x(t+1).

        For a cell that reads ids (``ids=True``, or ``ids=None`` with an ``input_map`` that
        looks them up) and whose readout gives one logit per id (o(t) of width ``n_in``), with
        ``criterion="cross_entropy"``.  Runs under no_grad, in the model's own mode (as
        ``run`` does: dropout follows ``training``).

        Parameters
        ----------
        prompt : ids (P,) or (P, B) in [0, n_in), P >= 1
        steps : int, how many ids to generate
        temperature : float; 0 is greedy decoding (argmax)
        seed : int, for the sampling
        h0 : the state before the prompt, default zeros

        Returns
        -------
        ids (steps,) or (steps, B) : the generated continuation.
        """
        from .models import Sampler       # models builds on this module
        who = f"{self.name}.generate"
        steps = checks.positive_int(steps, who, "steps")
        if self.n_in is None:
            raise tg.ConfigError(f"{who}: a system with no input (n_in=None) has nothing to feed "
                                 "back; run(steps=...) runs it free")
        if self.readout_fn is None:
            raise tg.ConfigError(f"{who}: needs a readout= giving the logits o(t) to sample from")
        if self.regression:
            raise tg.ConfigError(f"{who}: samples class ids from o(t); a cell with "
                                 "criterion='squared_error' outputs vectors (run it instead)")
        if self.ids is False or self.input_map_fn is None:
            raise tg.ConfigError(f"{who}: generation feeds each sampled id back as the next "
                                 "input, and this cell reads float vectors ("
                                 + ("made with ids=False" if self.ids is False else
                                    "no input_map to look ids up") + ")")
        arr = checks.as_array(prompt, who, "prompt")
        arr, is_ids, batched = checks.inputs(np.atleast_1d(arr), self.n_in, who, self.dtype)
        if not is_ids:
            raise tg.DTypeError(f"{who}: the prompt must be integer ids, got float values of "
                                f"shape {arr.shape}")
        checks.check_ids(arr, self.n_in, who, "prompt", batched)
        batch = arr.shape[1] if batched else None
        sampler = Sampler(temperature, seed, who=who)

        def back(o):
            if o.shape[-1] != self.n_in:
                raise tg.ConfigError(f"{who}: o(t) has {o.shape[-1]} classes but the cell reads "
                                     f"ids in [0, {self.n_in}): generation feeds each sampled "
                                     "class back as the next input")
            return tg.Tensor(sampler(o.data))

        with tg.no_grad():
            if len(arr) > 1:
                h0 = self.run(arr[:-1], h0=h0).last
            state0 = checks.states(h0, self.parts, batch, who, self.dtype)
            plan = Plan({"x": arr[[-1] * steps]}, steps, state0, None, None, batch,
                        free=("x", back))
            self.unroll(plan, per_step=True)
        self._ran_on_ids = True
        return np.stack(sampler.picked)

    def _trace_roots(self, steps):
        if self.n_in is None:
            return self._traced(None, steps)
        on_ids = self.ids if self.ids is not None else self._ran_on_ids
        xs = np.zeros((steps, 1), dtype=np.int64) if on_ids else np.zeros((steps, 1, self.n_in))
        try:
            return self._traced(xs, steps)
        except tg.TinygraphError as e:
            if on_ids is not None:
                raise
            raise tg.ConfigError(
                f"{self.name}.trace: the diagrams draw a cell on dummy inputs, and this one, made "
                f"with ids=None and never run, failed on float vectors of shape {xs.shape} "
                f"({type(e).__name__}: {e}); if its xs are integer ids, make it with "
                "Recurrence(..., ids=True) (or run it on ids once)") from e

    def _traced(self, xs, steps):
        """The roots of a run of ``steps`` steps on ``xs`` (batch 1) from zero states."""
        h0 = {k: np.zeros((1, n)) for k, n in self.parts.items()}
        h0 = h0 if self.state_is_dict else next(iter(h0.values()))
        if self.readout_fn is not None:
            ys = np.zeros((steps, 1), dtype=np.int64)
            if self.regression:     # float targets as wide as the readout's output
                width = self.run(xs, h0=h0, steps=steps).outputs[0].shape[-1]
                ys = np.zeros((steps, 1, width), dtype=self.dtype)
            run = self.run(xs, ys=ys, h0=h0, steps=steps)
            return [run.loss]
        last = self.run(xs, h0=h0, steps=steps).last
        return list(last.values()) if isinstance(last, dict) else [last]


def _param_list(params, who):
    """theta as a list: a list of Parameters, one Parameter (never iterated into its rows), or a
    Module's parameters."""
    if isinstance(params, tg.Module):
        params = params.parameters()
    elif isinstance(params, tg.Tensor):
        params = [params]
    elif isinstance(params, (str, bytes, dict, np.ndarray)) or not hasattr(params, "__iter__"):
        raise tg.ConfigError(f"{who}: params must be a list of Parameters, one Parameter or a "
                             f"tg.Module, got {type(params).__name__}")
    params = list(params)
    for p in params:
        if not isinstance(p, tg.Tensor) or not p.requires_grad or p.op is not None:
            raise tg.ConfigError(f"{who}: params must be leaf tensors that require grad "
                                 f"(tg.Parameter), got {type(p).__name__}"
                                 + (f" made by op '{p.op}'" if isinstance(p, tg.Tensor) and p.op
                                    else ""))
    return params


def _part_name(name, who):
    if not isinstance(name, str) or not name:
        raise tg.ConfigError(f"{who}: a state part needs a non-empty str name, got {name!r}")
    if name in RESERVED:
        raise tg.ConfigError(f"{who}: the state part '{name}' would clash with the machinery's "
                             "own x, o, L or y; choose another name")
    return name
