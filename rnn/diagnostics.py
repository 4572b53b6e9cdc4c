"""Gradient diagnostics of back-propagation through time, computed by the engine.

Everything here is read off a real unroll (``model.run(...)``, every op of every step a
node of that step's scope) by tinygraph's own backward sweeps, for any design and any state
part:

- :func:`connectivity`: ‖∂L(t)/∂h(k)‖ for every loss term L(t) and every step k of the
  state part, k > t included where the design is not causal, each loss term's own gradient
  (one batched sweep for all the loss terms, a row per term);
- :func:`jacobians`: ∂h(t)/∂h(t-1) per step for a batch of one, from the step function run
  on a copy of h(t-1) (batched sweeps, a row per unit of h(t), each row through its own
  step only);
- :func:`spectra` (spectral norm and radius per step) and :func:`lag_decay` (the norm of
  the product of the Jacobians over a lag k and its fitted rate of decay, as in section
  10.7 and Pascanu, Mikolov and Bengio 2013);
- :func:`saturation`: the fraction of tanh and sigmoid units of each step whose slope is
  almost zero (units of the network: not a function of the parameters alone);
- :func:`gradient_ratio`: ‖(∇_{h(t)} L) ∂h(t)/∂h(t-1)‖ / ‖∇_{h(t)} L‖, the ratio that the
  regulariser of eq. 10.52 pulls towards 1.

Each diagnostic reads only the nodes its own run made (:func:`own_run`), so a state carried
undetached from an earlier run, or another model's states that the steps read, never count as
this run's; :func:`run_connectivity` is the connectivity of a run already made, for every part
at once.

Each runs the model in evaluation mode (:func:`rnn.core.evaluating`: dropout off in this
thread only, no module's own mode changed, a seeded ``tg.Dropout``'s masks not advanced), so
that they are functions of the parameters and leave the masks of the next training step as
they were.

They are diagnostics of a chain in time: a RecursiveNet (a tree, its nodes without a step t)
is refused with a ConfigError naming the function and the model.

``xs`` and ``ys`` are what the design's ``run`` takes first (for ``VectorToSequence`` the
vector x and the targets, for ``SequenceToOne`` the sequence and its one label).

Each takes the keyword arguments of the model's ``run`` that change what its loss computes
(``**options``: ``mask=`` of padded sequences (an EncoderDecoder's pads the source: the
encoder's steps, its decoder's steps all kept, as in its loss), ``teacher_forcing=False`` of a JordanRNN running
free, ``feedback="output"`` of a design that feeds o(t-1) back, ``y0=``), so that it diagnoses
the run the model was trained on: without them the run is ``model.run(xs, ys)``, unmasked and,
for a design that feeds y(t-1) back, teacher-forced (the targets fed in).  An option the
model's ``run`` does not take is a ConfigError naming the function.  The Jacobians
∂h(t)/∂h(t-1) of a run that feeds its own output back are refused (ConfigError): the one-step
Jacobian holds the step's inputs fixed, so it would leave out the path through o(t-1).
"""

import copy
import inspect
import itertools
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import tinygraph as tg
from tinygraph.rows import grad_rows

from .core import evaluating, lagged, time_step, walk
from .recursive import RecursiveNet
from .train import Carried, _amend

SATURATING = {"tanh": 1.0, "sigmoid": 0.25}     # op -> its largest slope
_RUNS = itertools.count(1)                       # the scope label of each run made here
_ROWS_BYTES = 64 * 2**20                         # stacked gradients held at once by a sweep
_JACOBIAN_ROWS = 1024                            # rows (units of h(t)) per sweep of jacobians


def chain_model(model, who):
    """Refuse a model whose unroll is not a chain in time: a RecursiveNet is a tree, its nodes
    have no step t, so there is no h(t-1) -> h(t) and no L(t) to read (ConfigError naming
    ``who`` and the model)."""
    if isinstance(model, RecursiveNet):
        raise tg.ConfigError(f"{who}: {type(model).__name__} ('{model.name}') computes over a "
                             "tree, not a chain in time: its nodes have no time step t, so "
                             "there is no h(t-1) -> h(t) and no L(t) to diagnose; take "
                             "gradients of model.run(tree, y).loss with tg.grad instead")


def jacobian_stack(jacs, who):
    """``jacs`` (T, H, H) as float64; a model in their place is a ConfigError naming ``who``
    and the model (a RecursiveNet has no Jacobians in time; another model needs
    :func:`jacobians` first), a ragged stack a ShapeError, a Jacobian with NaN or inf an
    AnomalyError naming its step."""
    if isinstance(jacs, tg.Module) or callable(getattr(jacs, "run", None)):
        chain_model(jacs, who)
        raise tg.ConfigError(f"{who}: takes the Jacobians (T, H, H) from "
                             f"rnn.jacobians(model, xs), got the model {type(jacs).__name__}")
    try:
        arr = np.asarray(jacs)
    except (ValueError, TypeError) as e:       # a ragged list of matrices
        raise tg.ShapeError(f"{who}: jacs must be numbers of shape (T, H, H), got "
                            f"{type(jacs).__name__} that is no array of one shape ({e})") from None
    if arr.dtype.kind not in "biuf" or arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise tg.ShapeError(f"{who}: jacs must be numbers of shape (T, H, H), got dtype "
                            f"{arr.dtype} and shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():       # LAPACK would fail with "SVD did not converge"
        t = int(np.argwhere(~np.isfinite(arr))[0][0]) + 1
        raise tg.AnomalyError(f"{who}: the Jacobian J({t}) = jacs[{t - 1}] is not finite (NaN or "
                              "inf: a run whose state diverged?); no spectrum to take")
    return arr


def run_model(model, xs, ys=None, h0=None, steps=None, who="rnn diagnostics", options=None):
    """``model.run(xs, ys, h0=h0, steps=steps, **options)`` with only the arguments given (every
    op of every step a node); ``steps`` is for a system without input (rnn.Recurrence with
    n_in=None)."""
    return own_run(model, xs, ys, h0, steps, who, options)[0]


def runs_free(options):
    """Whether the run ``options`` (keyword arguments of a model's ``run``) feed the model's
    own output back (``teacher_forcing=False``, a ``feedback``) rather than the targets."""
    options = options or {}
    return options.get("teacher_forcing", True) is False or options.get("feedback") is not None


def own_run(model, xs, ys=None, h0=None, steps=None, who="rnn diagnostics", options=None):
    """:func:`run_model` and the predicate ``own(scope)``: whether a node of that scope label
    (``node.scope``) was made by this run.  An ``h0`` or ``steps`` that the model's ``run``
    does not take (the encoder-decoder starts from zeros and C) is a ConfigError naming
    ``who``, the model and the argument.  ``h0`` may be the :class:`~rnn.train.Carried` that
    :func:`~rnn.train.truncated_bptt` returns (the last state, the states of a skip
    connection's last d steps, the last output fed back): the run then starts from all of it,
    as the next chunk of training does.

    The run is made inside a scope of its own, so that the nodes behind it that earlier
    computations made (a state carried from an earlier run and not detached, another model's
    states that the steps read) are told apart from this run's, even where they carry the
    same names and time steps.  The run is made in evaluation mode (:func:`evaluating`)."""
    if not callable(getattr(model, "run", None)):
        raise tg.DTypeError(f"{who}: needs a recurrent model with .run(...), got "
                            f"{type(model).__name__}")
    if ys is None and steps is None and not runs_free(options) and (
            isinstance(getattr(model, "feedback", None), str)
            or getattr(model, "reads_targets", False)):
        raise tg.ConfigError(f"{who}: {type(model).__name__} feeds the target y(t-1) into step "
                             f"t, so its run needs the targets ys: give them, "
                             f"{who}(model, xs, ys=ys) ("
                             + ("float vectors" if getattr(model, "regression", False) else "ids")
                             + " as model.loss takes them)")
    kwargs = dict(h0) if isinstance(h0, Carried) else {} if h0 is None else {"h0": h0}
    if steps is not None:
        kwargs["steps"] = steps
    for name, value in (options or {}).items():
        if name in kwargs or name in ("per_step", "xs", "ys", "x", "y"):
            raise tg.ConfigError(f"{who}: {name}= is no option of the run here (it is "
                                 f"{'given already' if name in kwargs else 'set by ' + who})")
        kwargs[name] = value
    taken = _arguments(model.run)
    for name in kwargs:
        if taken is not None and name not in taken:
            raise tg.ConfigError(f"{who}: {type(model).__name__}.run takes no {name}= (its "
                                 f"arguments are {', '.join(taken)}); leave {name} out")
    args = (xs,) if ys is None else (xs, ys)
    try:
        with tg.scope(f"run#{next(_RUNS)}") as label, evaluating(model):
            run = model.run(*args, **kwargs)
    except Exception as e:     # the model's own error (its name, the shapes), and who ran it
        if not str(e).startswith(f"{who}:"):
            _amend(e, lambda message: f"{who}: {message}", f"in {who}")
        raise
    inside = label + "/"

    def own(scope):
        return scope is not None and (scope == label or scope.startswith(inside))
    return run, own


def _arguments(function):
    """The names of the keyword arguments ``function`` takes, or None when it takes any."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def part_nodes(run, part, who, own=None):
    """{k: node} of the variable ``part`` at every step k >= 1 of ``run``: a state part of the
    run (its k-th state), or else a variable of that name behind the run's losses and outputs
    that ``own`` (a predicate, see :func:`own_run`) says the run made."""
    if part in run.parts and run.parts[part]:
        return {k: n for k, n in enumerate(run.parts[part], start=1)}
    roots = list(run.losses) + list(run.outputs)
    found = {}
    for node in walk(roots):
        if own is not None and not own(node.scope):
            continue
        t = time_step(node.scope)
        if node.name == part and not isinstance(node, tg.Parameter) and t is not None and t >= 1:
            found.setdefault(t, node)
    if not found:
        raise tg.ConfigError(f"{who}: the run has no variable '{part}' (its state parts are "
                             f"{list(run.parts)})")
    return found


_SAFE = (1e-100, 1e100)      # entries in this range: their squares neither overflow nor underflow


def row_norms(a):
    """The 2-norm of each row of ``a`` (n, m), right where ``np.linalg.norm`` is not: a row whose
    largest entry is past 1e100 or below 1e-100 (squares of 1e160 overflow to inf, squares of
    1e-160 are subnormal: its norm came out wrong in the 5th digit, and 0.0 below about
    1e-162) is scaled by that entry first.  Other rows are ``np.linalg.norm``'s to the bit;
    a row with a NaN or inf is NaN or inf."""
    a = np.asarray(a, dtype=np.float64)
    a = a.reshape(len(a), -1)
    out = np.linalg.norm(a, axis=1)
    if a.size == 0:
        return out
    with np.errstate(invalid="ignore"):
        big = np.abs(a).max(axis=1)
    odd = np.isfinite(big) & (big > 0) & ((big < _SAFE[0]) | (big > _SAFE[1]))
    if odd.any():
        out[odd] = big[odd] * np.linalg.norm(a[odd] / big[odd, None], axis=1)
    return out


def vector_norm(v):
    """The 2-norm of all of ``v`` (a Python float): ``np.linalg.norm``'s to the bit, but scaled
    by the largest entry first where that is past 1e100 or below 1e-100 (:func:`row_norms`)."""
    v = np.ravel(np.asarray(v, dtype=np.float64))
    out = float(np.linalg.norm(v))
    if v.size:
        with np.errstate(invalid="ignore"):
            big = np.abs(v).max()
        if np.isfinite(big) and big > 0 and not _SAFE[0] <= big <= _SAFE[1]:
            out = float(big * np.linalg.norm(v / big))
    return out


def loss_steps(run):
    """The time step t of each loss term L(t) of ``run``, in the order of ``run.losses``."""
    return [time_step(loss.scope) for loss in run.losses]


def run_connectivity(run, parts, who, rows=None, own=None, compact=False):
    """{part: ‖∂L(t)/∂part(k)‖} of an existing ``run``, one matrix (T_L, T_part) per part of
    ``parts``, every loss term's gradient computed in one batched reverse sweep
    (:func:`tinygraph.rows.grad_rows`: the same rules as backward, one row per loss term).
    With ``rows`` and ``compact``, each matrix holds only those rows, in increasing t (a long
    run's few sampled rows, without a NaN matrix of T_L x T_part)."""
    if not run.losses:
        raise tg.ConfigError(f"{who}: the run has no loss terms (give targets ys)")
    nodes = {part: part_nodes(run, part, who, own) for part in parts}
    for part, found in nodes.items():
        if not any(node.requires_grad for node in found.values()):
            raise tg.ConfigError(f"{who}: '{part}' needs no gradient in this run (nothing it is "
                                 "computed from is trained, e.g. fixed weights), so the engine "
                                 f"computes no ∂L(t)/∂{part}(k); give an initial state that "
                                 "requires grad (h0) to measure it")
    when = loss_steps(run)
    height = max(when)
    wanted = None if rows is None else {int(t) for t in rows}
    if wanted is not None:
        bad = sorted(t for t in wanted if not 1 <= t <= height)
        if bad:
            raise tg.ShapeError(f"{who}: rows {bad} are outside the loss terms' steps 1..{height}")
    out = {}
    where = {t: t - 1 for t in range(1, height + 1)}
    if wanted is not None and compact:
        where = {t: i for i, t in enumerate(sorted(wanted))}
    for part, found in nodes.items():
        width = max(found)
        if wanted is None or compact:
            m = np.zeros((len(where), width))
        else:
            m = np.full((height, width), np.nan)
            m[[t - 1 for t in wanted]] = 0.0
        out[part] = m
    inputs = [(part, k, node) for part, found in nodes.items() for k, node in sorted(found.items())]
    terms = [(loss, t) for loss, t in zip(run.losses, when) if wanted is None or t in wanted]
    size = sum(node.data.size for _, _, node in inputs)
    chunk = max(1, _ROWS_BYTES // (8 * max(size, 1)))      # bounds the stacked gradients held
    for start in range(0, len(terms), chunk):
        part_terms = terms[start:start + chunk]
        grads = grad_rows([loss for loss, _ in part_terms], [node for _, _, node in inputs])
        steps = np.array([where[t] for _, t in part_terms])
        for (part, k, _), g in zip(inputs, grads):
            out[part][steps, k - 1] = row_norms(g.reshape(len(g), -1))
    return out


def connectivity(model, xs, ys, part="h", h0=None, rows=None, **options):
    """‖∂L(t)/∂h(k)‖ for every loss term L(t) and every step k of the state part h.

    Entry ``[t-1, k-1]`` is the norm of the gradient of the loss term of step t alone with
    respect to the variable ``part`` at step k (over the whole batch), for every pair the
    computation connects, k > t included: a bidirectional network's g(k) feeds every
    L(t) with t <= k, and every decoder loss of an encoder-decoder depends on every encoder
    state.  Zero where L(t) does not depend on h(k), and in the row of a step without a
    loss term.  All the loss terms' gradients come from one batched reverse sweep of the
    engine's rules (:func:`tinygraph.rows.grad_rows`), each row exactly the gradient that
    ``tg.grad(L(t), h(k))`` computes.

    Parameters
    ----------
    model : a design of rnn or an rnn.Recurrence with a readout
    xs, ys : what ``model.run`` takes first (inputs and targets)
    part : str, a state part (e.g. "h", or "s" of an LSTM; "g" of the bidirectional network;
        "h" of the encoder or "s" of the decoder) or another variable named at every step
    h0 : initial state, optional
    rows : iterable of int, optional
        Only the loss terms of these steps t (1-based); the other rows are NaN.  For long runs.
    **options : keyword arguments of ``model.run`` that the loss was computed with (``mask=``,
        ``teacher_forcing=False``, ``feedback="output"``...; see the module's doc): without
        them, the unmasked run, teacher-forced where the design feeds y(t-1) back

    Returns
    -------
    np.ndarray (T_L, T_h) of float64: T_L the last step with a loss term (n_y for the
    encoder-decoder), T_h the steps of ``part`` (n_x for the encoder's "h").
    """
    who = "rnn.connectivity"
    chain_model(model, who)
    run, own = own_run(model, xs, ys, h0, who=who, options=options)
    return run_connectivity(run, [part], who, rows, own)[part]


class _CutSteps:
    """The model's step function run on a fresh leaf copy of the state before every step, so
    that each step's graph starts at its own h(t-1) (what a Jacobian of one step needs).

    A skip connection of delay 1 (``LeakyRNN(skip=1)``) reads h(t-1) a second time, as
    ``state["h(t-1)"]``: that is the same h(t-1), so it reads the same leaf (a copy of its own
    would hold the skip path fixed, and ∂h(t)/∂h(t-1) would miss Wd).  Parts of longer delays
    are other steps' states, held fixed."""

    def __init__(self, step, parts):
        self.step = step
        self.parts = list(parts)
        self.records = []
        self.keep = None            # the mask (T, B) of the steps this chain ran, if it had one

    def padded_by(self, keep):
        """Told by :meth:`rnn.core.Cell.unroll`: the mask of the plan this step runs in (None:
        none; an encoder-decoder's mask pads its encoder's steps, not its decoder's)."""
        self.keep = None if keep is None else np.asarray(keep, dtype=bool)

    def __call__(self, state, u):
        leaves = {k: tg.tensor(v.data, requires_grad=True) for k, v in state.items()}
        for name in self.parts:
            if name in leaves and lagged(name, 1) in leaves:
                leaves[lagged(name, 1)] = leaves[name]
        new = self.step(leaves, u)
        out = new if isinstance(new, dict) else {self.parts[0]: new}
        self.records.append((leaves, out))
        return new


def jacobians(model, xs, part="h", h0=None, ys=None, steps=None, **options):
    """∂h(t)/∂h(t-1) for every step t of a batch of one: shape (T, H, H).

    Row i of ``J[t-1]`` is the gradient of unit i of h(t) with respect to h(t-1), computed by
    the engine: the step function runs on a leaf copy of the state before each step, and
    batched reverse sweeps (:func:`tinygraph.rows.grad_rows`, one row per unit of h(t), each
    row going through its own step alone) give every unit's gradient.  The other state parts and the
    step's inputs (including a teacher-forced y(t-1)) are held fixed, so for an LSTM
    ``part="h"`` gives the block ∂h(t)/∂h(t-1) of the state's Jacobian.

    A model made of several chains (:class:`~rnn.core.Chain`: the bidirectional net, the
    encoder-decoder, a stacked or bidirectional ElmanRNN) gives the Jacobians of the chain
    that carries ``part``, its own step cut the same way (the other chains' states it reads,
    such as the layer below, held fixed).  A chain that runs backward in time (the
    bidirectional net's g) reads g(t+1) at step t: there ``J[t-1]`` is ∂g(t)/∂g(t+1), still
    in time order t = 1..T (so ``lag_decay`` wants ``J[::-1]``, the order the chain runs in).

    Parameters
    ----------
    model : a design with state parts (a Cell: every rnn design but JordanRNN, or rnn.Recurrence)
    xs : what ``model.run`` takes first; ys : targets, for designs that read y(t-1)
    part : str, a state part; h0 : initial state, optional
    steps : int, for a system without input (``xs=None``)
    **options : keyword arguments of ``model.run`` (``mask=``: a padded step carries the
        state unchanged, its Jacobian the identity; the mask pads the steps of the chains that
        run over it: every chain of a bidirectional or stacked net, an encoder-decoder's encoder
        alone); a run that feeds the model's own output
        back (``teacher_forcing=False``, ``feedback=``) is refused (see the module's doc)

    Returns
    -------
    np.ndarray (T, H, H)
    """
    return model_jacobians(model, xs, part, h0, ys, steps, "rnn.jacobians", options)


def model_jacobians(model, xs, part="h", h0=None, ys=None, steps=None, who="rnn.jacobians",
                    options=None):
    """:func:`jacobians`, its errors naming ``who`` (the function the user called: e.g.
    rnn.gradient_ratio, which computes them, or viz.explore)."""
    chain_model(model, who)
    if runs_free(options):
        raise tg.ConfigError(f"{who}: a run that feeds {getattr(model, 'name', 'the model')}'s "
                             "own output back (teacher_forcing=False, feedback=) has no one-step "
                             "Jacobian ∂h(t)/∂h(t-1) here: it holds the step's inputs fixed, and "
                             "would leave out the path through o(t-1) fed back")
    parts = getattr(model, "parts", None)
    if not isinstance(parts, dict) or not callable(getattr(model, "step", None)):
        raise tg.DTypeError(f"{who}: needs a cell (an rnn design or rnn.Recurrence), got "
                            f"{type(model).__name__}")
    if part not in parts:
        raise tg.ConfigError(f"{who}: {model.name} has no state part '{part}' (its state parts "
                             f"are {list(parts)}); a design without one carries no h(t-1) into h(t)")
    cut = copy.copy(model)
    cut_steps = cut.step = _CutSteps(cut.step, parts)   # bound to the copy
    chains = []                 # a model made of several chains: each chain's step, cut alike

    def cut_chain(chain_parts, step):
        chains.append(_CutSteps(step, chain_parts))
        return chains[-1]
    cut._cut_chain_steps = cut_chain
    run_model(cut, xs, ys, h0, steps, who, options)
    records = cut_steps.records
    keep = kept_rows(options, who)
    if not records:
        own = [c for c in chains if part in c.parts and c.records]
        if len(own) != 1:
            raise tg.ConfigError(f"{who}: {model.name} runs its steps through chains of its own "
                                 f"(a model made of several recurrences), and "
                                 f"{'none' if not own else len(own)} of them carries '{part}'; "
                                 "its Jacobians are not available")
        records = own[0].records
        # the mask pads the steps of the chains it was given to (all of a bidirectional or
        # stacked net's, an encoder-decoder's encoder's only): a chain without it keeps them all
        keep = own[0].keep if keep is not None else None
        when = [time_step(new[part].scope) for _, new in records]
        if len(when) > 1 and None not in when and when == sorted(when, reverse=True):
            records = records[::-1]     # a chain backward in time: J[t-1] = ∂g(t)/∂g(t+1)
    size = parts[part]
    out = np.zeros((len(records), size, size))
    live = []
    for t, (leaves, new) in enumerate(records):
        h_new, h_old = new[part], leaves[part]
        if h_new.size != size:
            raise tg.ShapeError(f"{who}: needs a batch of one; '{part}' has shape "
                                f"{h_new.shape} at t={t + 1}")
        if h_new.requires_grad:
            live.append((t, h_new, h_old))
    # a block of steps per sweep (each step's graph starts at its own leaves), about
    # _JACOBIAN_ROWS rows (units) each: the Python per node is paid once per block, and the
    # dense results (block inputs x block * size rows x size) stay at a few MiB
    block = max(1, _JACOBIAN_ROWS // size)
    eyes = {}                # (shape, dtype) -> the identity's rows, one seed each, made once
    for start in range(0, len(live), block):
        chunk = live[start:start + block]
        seeds = []
        for _, h_new, _ in chunk:
            key = (h_new.shape, h_new.dtype)
            if key not in eyes:
                eyes[key] = list(np.eye(size, dtype=h_new.dtype).reshape((size,) + h_new.shape))
            seeds += eyes[key]
        outputs = [h_new for _, h_new, _ in chunk for _ in range(size)]
        grads = grad_rows(outputs, [h_old for _, _, h_old in chunk], seeds)
        for j, ((t, _, _), g) in enumerate(zip(chunk, grads)):
            out[t] = g[j * size:(j + 1) * size].reshape(size, size)
    if keep is not None:        # a padded step carries the state: h(t) = h(t-1)
        if keep.shape[0] != len(out) or keep.shape[1] != 1:
            raise tg.ShapeError(f"{who}: the mask has shape {keep.shape}, the run {len(out)} "
                                "steps of a batch of one")
        out[~keep[:, 0]] = np.eye(size)
    return out


def spectra(jacs):
    """Spectral norm (largest singular value) and spectral radius (largest |eigenvalue|) of
    each Jacobian: two arrays of shape (T,).

    LAPACK runs on each matrix alone, so a long stack is split over the cores, a thread each
    (numpy lets go of the GIL there); every matrix's numbers are what one call gives."""
    jacs = jacobian_stack(jacs, "rnn.spectra")
    work = min(os.cpu_count() or 1, len(jacs) // _SPECTRA_SHARE)
    if work < 2:
        return _spectra(jacs)
    with ThreadPoolExecutor(max_workers=work) as pool:
        done = list(pool.map(_spectra, np.array_split(jacs, work)))
    return np.concatenate([n for n, _ in done]), np.concatenate([r for _, r in done])


_SPECTRA_SHARE = 16          # matrices per thread at least


def _spectra(jacs):
    norms = np.linalg.norm(jacs, ord=2, axis=(1, 2))
    radii = np.abs(np.linalg.eigvals(jacs)).max(axis=1)
    return norms, radii


class LagDecay:
    """The norm of the product of the Jacobians over a lag, and its fitted decay.

    Attributes
    ----------
    lags : int array (K,), 1..K
    norms : float array (K,)
        The geometric mean over end steps t of ‖J(t) J(t-1) ... J(t-k+1)‖₂, the chain of
        ∂h(t)/∂h(t-k) through this state part (for a cell with lags, a skip connection from
        h(t-d) with d >= 2, only the chain of one-step Jacobians: ∂h(t)/∂h(t-k) also has the
        skip paths; a skip of delay 1 is inside the one-step Jacobian, so its chain is exact).
    rate : float
        ρ of the least-squares fit norms ≈ C ρ^k (log norms linear in k); below 1 the
        gradient vanishes with the lag, above 1 it explodes.  0.0 when the product is
        exactly zero at some lag (a Jacobian of exactly 0, e.g. tanh units at exactly ±1):
        the gradient is gone there, faster than any ρ^k, and no log-linear fit exists.
    scale : float
        C of that fit (NaN when there is none, rate 0).
    """

    def __init__(self, lags, norms, rate, scale):
        self.lags, self.norms, self.rate, self.scale = lags, norms, rate, scale

    def __repr__(self):
        return f"LagDecay(lags=1..{len(self.lags)}, rate={self.rate:.4g})"


_LN2 = float(np.log(2.0))


def lag_decay(jacs, max_lag=None, ends=16):
    """The norm of the Jacobian product over lags k = 1..max_lag and its fitted decay rate.

    Parameters
    ----------
    jacs : (T, H, H), as from :func:`jacobians`
    max_lag : int, default min(T, 50)
    ends : int, how many end steps t (evenly spaced over t = max_lag..T, T always one of them)
        to average over

    Returns
    -------
    LagDecay
    """
    jacs = jacobian_stack(jacs, "rnn.lag_decay")
    steps = len(jacs)
    for what, value in (("max_lag", max_lag), ("ends", ends)):
        if value is None and what == "max_lag":
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                or value < 1:
            raise tg.ConfigError(f"rnn.lag_decay: {what} must be a whole number >= 1, got "
                                 f"{value!r}")
    max_lag = min(steps, 50) if max_lag is None else int(max_lag)
    if not 1 <= max_lag <= steps:
        raise tg.ShapeError(f"rnn.lag_decay: max_lag must be in 1..{steps}, got {max_lag}")
    last = np.unique(np.linspace(steps - 1, max_lag - 1, min(ends, steps - max_lag + 1)).round()
                     .astype(int))            # always includes the last step
    logs = np.zeros((len(last), max_lag))
    for row, t in enumerate(last):
        product, twos = np.eye(jacs.shape[1]), 0
        for k in range(max_lag):
            product = product @ jacs[t - k]
            norm = np.linalg.norm(product, 2)
            with np.errstate(divide="ignore"):   # an exact 0 is log 0 = -inf: a geometric
                logs[row, k] = np.log(norm) + twos * _LN2     # mean of 0
            if 0 < norm < np.inf:    # the product scaled by a power of two (exact): it never
                shift = int(np.frexp(norm)[1])     # underflows to 0 or overflows (Jacobians
                product = np.ldexp(product, -shift)    # of 1e-13 over 30 lags are 1e-390,
                twos += shift                          # not the "exactly 0" of a zero J)
    mean = logs.mean(axis=0)
    lags = np.arange(1, max_lag + 1)
    if np.isneginf(mean).any():              # no fit through a zero (it was 2.2e-308 and a rate)
        return LagDecay(lags, np.exp(mean), 0.0, float("nan"))
    if max_lag > 1:
        slope, intercept = np.polyfit(lags, mean, 1)
    else:
        slope, intercept = mean[0], 0.0
    return LagDecay(lags, np.exp(mean), float(np.exp(slope)), float(np.exp(intercept)))


def saturation(model, xs, ys=None, h0=None, tol=0.05, steps=None, **options):
    """Fraction of the tanh and sigmoid units of each step that are saturated: shape (T,).

    A unit is saturated when its slope is below ``tol`` times the largest slope of its
    function (tanh: 1 - y² < tol; sigmoid: y (1 - y) < tol / 4).  The units are every output
    of a tanh or sigmoid op in the scope of step t (state units and gates alike), but one
    computed from the model's parameters alone (a LeakyRNN's learned leak σ(alpha_logit), the
    same at every step, is no unit of the network; a Parameter given as h0 is no weight of the
    model: step 1's units computed from it count).  A step with a unit that is NaN (a run that
    diverged, a NaN in the input) has no fraction: NaN there, not the share of the other
    units; so has a step whose every row the ``mask``
    pads (its units are computed and dropped: none counts, and 0 of 0 is no fraction).
    ``steps`` is for a system without input (``xs=None``).  ``**options``: keyword arguments
    of ``model.run`` (``mask=``, ``teacher_forcing=False``...; see the module's doc).
    """
    chain_model(model, "rnn.saturation")
    run, own = own_run(model, xs, ys, h0, steps, "rnn.saturation", options)
    return run_saturation(run, own, tol, **saturation_rows(model, options, "rnn.saturation"))


def saturation_rows(model, options, who):
    """Which units of a run of ``model`` with ``options`` :func:`run_saturation` counts, as its
    keyword arguments ``keep`` (:func:`kept_rows`), ``padded`` (:func:`padded_chain`) and
    ``params`` (:func:`parameter_ids`): the one derivation of :func:`saturation` and the
    explorer's, so that the two count the same units."""
    return {"keep": kept_rows(options, who), "padded": padded_chain(model),
            "params": parameter_ids(model)}


def parameter_ids(model):
    """The ids of ``model``'s own parameters, trained or fixed (for :func:`run_saturation`'s
    ``params``: a frozen leak σ(alpha_logit) is no more a unit than a trained one), or None for
    a model without ``parameters()``."""
    every = getattr(model, "_named_state", None)      # a tg.Module: fixed Parameters too
    if callable(every):
        return {id(p) for _, p in every()}
    parameters = getattr(model, "parameters", None)
    return {id(p) for p in parameters()} if callable(parameters) else None


def padded_chain(model):
    """The scope of the one chain of ``model`` whose steps its ``mask`` pads (the
    encoder-decoder's: its encoder's, ``"encdec/encoder"``), or None: the mask pads every step
    of the run (a model of one chain in time, or of several over the same steps)."""
    return getattr(model, "masked_chain", None)


def kept_rows(options, who):
    """The ``mask`` of run ``options`` as a bool array (T, B), or None: the rows of each step
    whose units count (a padded step's units are computed and then dropped)."""
    mask = (options or {}).get("mask")
    if mask is None:
        return None
    keep = np.asarray(mask.data if isinstance(mask, tg.Tensor) else mask)
    if keep.ndim != 2:
        raise tg.ShapeError(f"{who}: mask must be (T, B) of 0/1, got shape {keep.shape}")
    return keep.astype(bool)


def run_saturation(run, own, tol=0.05, by_chain=False, keep=None, padded=None, params=None):
    """:func:`saturation` of an existing ``run`` (``own`` from :func:`own_run`).

    With ``by_chain``, {chain: (T,)}: the fraction of each chain's own units (a chain is the
    scope of its steps without their ``t=K``: an encoder-decoder's encoder and decoder, whose
    step t are not the same time), NaN at a step t where that chain has none.  Either way
    NaN at a step with a NaN unit (:func:`nan_steps` tells those apart).  ``keep`` (T, B), the
    run's mask (:func:`kept_rows`): only the units of the rows each step keeps count, of the
    chain ``padded`` alone where the mask pads one chain only (:func:`padded_chain`).
    ``params``, the ids of the model's own parameters (:func:`parameter_ids`): a tanh or sigmoid
    computed from them alone is no unit (without, from any Parameters alone)."""
    counts, steps = _saturation_counts(run, own, tol, by_chain, keep, padded=padded,
                                       params=params)
    return _fractions(counts, steps, by_chain)


def nan_steps(run, own, by_chain=False, keep=None, padded=None, params=None):
    """The steps t (1-based) of ``run`` with a tanh or sigmoid unit that is NaN, where
    :func:`run_saturation` has no fraction; with ``by_chain``, {chain: steps} (chains that
    have some)."""
    counts, _ = _saturation_counts(run, own, 0.05, by_chain, keep, padded=padded, params=params)
    return _nan_steps_of(counts, by_chain)


def saturation_with_nans(run, own, tol=0.05, keep=None, who="rnn.saturation", padded=None,
                         params=None):
    """``(run_saturation(run, own, tol), run_saturation(run, own, tol, by_chain=True),
    nan_steps(run, own, by_chain=True))`` from one walk of the run's graph."""
    counts, steps = _saturation_counts(run, own, tol, True, keep, who, padded, params)
    whole = {"": sum(counts.values())} if counts else {}      # every chain's units together
    return (_fractions(whole, steps, False), _fractions(counts, steps, True),
            _nan_steps_of(counts, True))


def _fractions(counts, steps, by_chain):
    """:func:`run_saturation` of the counts of :func:`_saturation_counts`."""
    def fractions(saturated, units, nans, dropped, none):
        out = np.divide(saturated[1:], units[1:], out=np.full(steps, none), where=units[1:] > 0)
        out[nans[1:] > 0] = np.nan
        out[(units[1:] == 0) & (dropped[1:] > 0)] = np.nan    # every row padded: no fraction
        return out
    if not by_chain:
        return fractions(*counts.get("", np.zeros((4, steps + 1))), 0.0)
    return {chain: fractions(*c, np.nan) for chain, c in counts.items()}


def _nan_steps_of(counts, by_chain):
    """:func:`nan_steps` of the counts of :func:`_saturation_counts`."""
    found = {chain: (np.flatnonzero(c[2][1:]) + 1).tolist() for chain, c in counts.items()}
    if not by_chain:
        return found.get("", [])
    return {chain: t for chain, t in found.items() if t}


def _saturation_counts(run, own, tol, by_chain, keep=None, who="rnn.saturation", padded=None,
                       params=None):
    """{chain: (saturated, units, NaN units, units dropped by ``keep``) per step 0..T} of
    ``run`` and T; with ``keep`` (T, B) only the rows each step keeps: of every step of a run
    of one chain in time, or of the chain ``padded`` alone (an encoder-decoder's mask pads its
    encoder's steps; every row of the decoder's counts).  Without ``padded`` the mask of a run
    of several chains is refused: it does not say which chain's steps it pads."""
    roots = ([run.loss] if run.loss is not None else []) + list(run.outputs)
    roots += [n for nodes in run.parts.values() for n in nodes]
    steps = max((time_step(n.scope) or 0 for n in roots), default=0)
    counts = {}
    chains = set()
    for node in walk(roots):
        if not own(node.scope):    # e.g. the earlier run behind a carried h0
            continue
        t = time_step(node.scope)
        if node.op in SATURATING and t is not None and t >= 1 and not _of_parameters(node, params):
            chain = _STEP.sub("", node.scope)
            chains.add(chain)
            if keep is not None and padded is None and len(chains) > 1:
                raise tg.ConfigError(f"{who}: a mask of a run of several chains ("
                                     f"{sorted(chains)}) does not say which units each step "
                                     "keeps; leave the mask out, or diagnose one sequence")
            saturated, units, nans, dropped = counts.setdefault(chain if by_chain else "",
                                                                np.zeros((4, steps + 1)))
            y = node.data
            if keep is not None and (padded is None or chain == padded
                                     or chain.endswith("/" + padded)):
                if t > len(keep) or y.ndim < 1 or y.shape[0] != keep.shape[1]:
                    raise tg.ShapeError(f"{who}: the mask {keep.shape} does not fit "
                                        f"the units {y.shape} of step t={t}")
                dropped[t] += y.size - np.count_nonzero(keep[t - 1]) * (y.size // len(y))
                y = y[keep[t - 1]]
            slope = (1 - y * y) if node.op == "tanh" else y * (1 - y)
            saturated[t] += np.count_nonzero(slope < tol * SATURATING[node.op])
            units[t] += y.size
            nans[t] += np.count_nonzero(np.isnan(y))
    return counts, steps


def _of_parameters(node, params=None, limit=16):
    """Whether ``node`` is computed from the model's parameters alone (the ids ``params``; None:
    any Parameters), looking back at most ``limit`` nodes: a learned leak σ(alpha_logit) made
    inside every step is the same number at every step, a function of the weights and no unit
    of the network, so it is not counted.  A named variable (a state h(t-1), an input x(t)) or
    a leaf that is none of them behind it (a Parameter given as h0, a learned initial state:
    step 1's units are computed from it) says it is a unit; breadth first, so that one is met
    within a step or two."""
    seen, frontier = {id(node)}, list(node.parents)
    while frontier:
        nxt = []
        for n in frontier:
            if params is not None and not n.parents:
                if id(n) not in params:
                    return False
            elif not isinstance(n, tg.Parameter) and (n.name is not None or not n.parents):
                return False
            for p in n.parents:
                if id(p) not in seen:
                    seen.add(id(p))
                    nxt.append(p)
        if len(seen) > limit:
            return False
        frontier = nxt
    return True


_STEP = re.compile(r"(^|/)t=-?\d+(/.*)?$")      # the "t=K" of a scope (and what is inside it)


def eq_10_52(g, jac):
    """‖g J‖ / ‖g‖ of a gradient ``g`` and a one-step Jacobian ``jac``, NaN where g is zero; g
    scaled by its largest entry first where that is past 1e100 or below 1e-100 (the ratio
    does not change; g J and ‖g‖ no longer overflow to inf / inf = NaN, or lose digits)."""
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    norm = vector_norm(g)
    if not norm > 0:
        return np.nan
    big = np.abs(g).max()
    if np.isfinite(big) and not _SAFE[0] <= big <= _SAFE[1]:
        g = g / big
        norm = vector_norm(g)
    return vector_norm(g @ jac) / norm


def gradient_ratio(model, xs, ys, part="h", h0=None, **options):
    """‖(∇_{h(t)} L) ∂h(t)/∂h(t-1)‖ / ‖∇_{h(t)} L‖ for t = 1..T (eq. 10.52): shape (T,).

    ∇_{h(t)} L is the gradient of the whole loss at h(t) (one engine sweep); the product is
    its vector-Jacobian product with :func:`jacobians`.  NaN where ∇_{h(t)} L is zero.
    ``**options``: keyword arguments of ``model.run`` (``mask=``; a run that feeds the
    model's own output back is refused, as :func:`jacobians` refuses it).
    """
    chain_model(model, "rnn.gradient_ratio")
    if runs_free(options):      # refused before the run, as the Jacobians would be
        model_jacobians(model, xs, part, h0, ys, None, "rnn.gradient_ratio", options)
    run, own = own_run(model, xs, ys, h0, who="rnn.gradient_ratio", options=options)
    if run.loss is None:
        raise tg.ConfigError("rnn.gradient_ratio: the run has no loss (give targets ys)")
    nodes = part_nodes(run, part, "rnn.gradient_ratio", own)
    keys = sorted(nodes)
    # retained: a state carried undetached from an earlier run (h0) is that run's graph, which
    # the user may still back-propagate through
    grads = tg.grad(run.loss, [nodes[k] for k in keys], retain_graph=True)
    jacs = model_jacobians(model, xs, part, h0, ys, None, "rnn.gradient_ratio", options)
    ratio = np.full(len(jacs), np.nan)
    for k, g in zip(keys, grads):
        ratio[k - 1] = eq_10_52(g, jacs[k - 1])
    return ratio
