"""Training loops: one update step, and truncated back-propagation through time.

:class:`Trainer` does one update: zero the gradients, build the unrolled loss,
``backward`` (BPTT is plain backprop over the unrolled DAG), clip the global
gradient norm, let the engine's optimizer step.  :func:`truncated_bptt` walks a
long (T, B) sequence in chunks of ``chunk`` steps and carries the last state of
one chunk into the next, detached, so gradients stop at the chunk boundary while
the forward pass still sees the whole past (as min-char-rnn and d2l do).
Both report progress through a callback ``on_step(step, loss, grad_norm)``.
:func:`save_training` and :func:`load_training` checkpoint a run (model, optimizer,
update count, the caller's own arrays and metadata) in one file, all or nothing.
"""

import contextlib
import ctypes
import functools
import glob
import inspect
import os
import warnings

import numpy as np

import tinygraph as tg
from tinygraph.module import dropouts_drawing
from tinygraph.tensor import _backprop

from . import checks
from .core import detach_state, evaluating, loss_run
from .datasets import stream_batches


class NonFiniteLossError(tg.AnomalyError):
    """A training update refused because its loss or a gradient is NaN or inf."""


class _NonFinite(Exception):
    """Raised inside backward by :meth:`Trainer.update`'s check: a gradient is not finite (its
    message says which), so nothing is written; the update then refuses or skips the batch."""


class Trainer:
    """One update per call of :meth:`step`.

    Parameters
    ----------
    model : a design of ``rnn``, or any ``tg.Module`` with ``loss(*args, **kwargs)`` returning a
        scalar Tensor (``step(*args, **kwargs)`` calls it); anything else is refused at once
    optimizer : tg.optim optimizer, default Adam(lr) over the model's parameters
    lr : float, used when no optimizer is given
    clip : float or None, max global gradient norm (tg.clip_grad_norm)
    skip_nonfinite : bool
        What an update does with a loss or gradient that is not finite (NaN or inf).  False
        (the default): raise :class:`NonFiniteLossError`, naming the update, the first
        non-finite loss term and the first NaN or inf of float inputs xs (t and b; of
        VectorToSequence's vector x, b), with the parameters, every ``.grad`` and the
        optimizer's state as they were.
        True: skip that batch (no update), warn (RuntimeWarning) and record it in ``skipped``.

    Attributes
    ----------
    steps : int, the updates made
    skipped : list of str, one line per batch skipped (``skip_nonfinite=True``)
    """

    def __init__(self, model, optimizer=None, lr=1e-2, clip=None, skip_nonfinite=False):
        if not callable(getattr(model, "run_for_loss", None)) and not callable(getattr(model, "loss", None)):
            raise tg.ConfigError(f"Trainer: {type(model).__name__} has no loss(xs, ys, ...) method "
                                 "returning a scalar Tensor, so it cannot be trained")
        if optimizer is not None and not all(callable(getattr(optimizer, m, None))
                                             for m in ("zero_grad", "step")):
            raise tg.ConfigError(f"Trainer: optimizer must be a tg.optim optimizer (e.g. "
                                 "tg.optim.SGD(model.parameters(), lr=0.1)), got "
                                 f"{type(optimizer).__name__} {optimizer!r:.40}"
                                 + ("; a learning rate is lr=" if isinstance(optimizer, (int, float))
                                    else ""))
        self.model = model
        self.optimizer = optimizer if optimizer is not None else tg.optim.Adam(model.parameters(), lr)
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float, np.number))
                                 or not clip > 0):
            raise tg.ConfigError(f"Trainer: clip must be positive or None, got {clip}")
        if not isinstance(skip_nonfinite, bool):
            raise tg.ConfigError(f"Trainer: skip_nonfinite must be True or False, got "
                                 f"{skip_nonfinite!r}")
        self.clip = clip
        self.skip_nonfinite = skip_nonfinite
        self.steps = 0
        self.skipped = []
        self._unheld = {}   # id -> seeded Dropout the steps called that the model does not hold

    def update(self, loss, locate=None):
        """Back-propagate ``loss``, clip, step; returns the gradient norm before clipping.

        A loss or a gradient that is not finite changes neither the parameters nor the
        optimizer (see ``skip_nonfinite``); ``locate()`` (optional) then names the first
        non-finite loss term.  Returns NaN for a skipped batch.  A loss that gives none of the
        optimizer's parameters a gradient is refused (ConfigError) before backward writes any
        ``.grad`` (another model's parameters that the loss reads keep theirs).

        All or nothing: an update that raises or is refused (backward failing, a step the
        optimizer would refuse, an interrupt (Ctrl-C) anywhere, between clipping and the
        optimizer's step too) leaves the parameters, every ``.grad`` and the optimizer as before
        the call; ``steps`` always counts the optimizer's steps taken here.
        """
        value = loss.item()
        if not np.isfinite(value):
            where = locate() if locate is not None else None
            return self._nonfinite(f"the loss is {value}" + (f"; {where}" if where else ""))
        params = self.optimizer.params
        held = [p.grad for p in params]     # every .grad as before the call, put back on failure
        written = []            # (tensor, its .grad before) of every tensor backward wrote
        steps = self.steps
        try:
            self.optimizer.zero_grad()
            _backprop(loss, None, False, None, accept=self._accepting(params, written, value))
            ready = getattr(self.optimizer, "_ready", None)
            if callable(ready):     # every check of the step before the gradients are clipped
                ready(f"{type(self.optimizer).__name__}.step")
            # scaled in place: backward's own arrays, not the ones held (zero_grad dropped
            # those); without clip the norm is measured alone (max_norm inf), the same float64 sum
            norm = tg.clip_grad_norm(params, self.clip if self.clip is not None else np.inf)
            self.steps = steps + 1    # counted with the step: it is all-or-nothing, interrupts too
            self.optimizer.step()
        except BaseException as e:
            self.steps = steps
            for t, before in written:
                t._grad = before
            for p, g in zip(params, held):
                p._grad = g
            if isinstance(e, _NonFinite):
                return self._nonfinite(e.args[0])
            raise
        return norm

    def _accepting(self, params, written, value):
        """The check ``_backprop`` runs on the gradients it is about to write: refused (nothing
        written) if none of ``params`` gets one, or one of theirs is not finite; else every
        tensor about to be written is noted in ``written`` with its ``.grad`` before."""
        def accept(results):
            got = {id(t): g for t, g, _ in results}
            if not any(id(p) in got for p in params):     # a step would update nothing
                raise tg.ConfigError(
                    f"Trainer: update {self.steps + 1}: none of the optimizer's {len(params)} "
                    "parameters got a gradient from the loss (is the optimizer over another "
                    "model's parameters?); refused: the parameters, every gradient and the "
                    "optimizer unchanged")
            for p in params:
                g = got.get(id(p))
                if g is None:
                    continue
                if type(g) is not np.ndarray or g.dtype != p.dtype:   # as backward writes it
                    g = np.asarray(g, dtype=p.dtype)
                if not np.isfinite(g).all():
                    raise _NonFinite(f"the loss {value:.6g} is finite but the "
                                     f"gradient of parameter {p.name or '?'} {p.shape} is not")
            written.extend((t, t._grad) for t, _, _ in results)
        return accept

    def _nonfinite(self, what):
        message = f"Trainer: update {self.steps + 1}: {what}"
        if not self.skip_nonfinite:
            raise NonFiniteLossError(f"{message}; refused (parameters, gradients and optimizer "
                                     "state unchanged; Trainer(skip_nonfinite=True) skips such a "
                                     "batch)")
        self.skipped.append(f"{message}; batch skipped")
        warnings.warn(f"{message}; batch skipped (no update)", RuntimeWarning, stacklevel=4)
        return float("nan")

    def _locate(self, calls, *args, **kwargs):
        """The first non-finite loss term L(t) of the model's per-step run on these arguments,
        its seeded Dropouts drawing the masks of the loss it explains (their ``calls`` before
        that loss) and left as they were."""
        def where():
            if not callable(getattr(self.model, "run_for_loss", None)):    # not an rnn design
                return None
            after = _dropout_calls(self.model)
            _set_dropout_calls(self.model, calls)
            with tg.no_grad():
                try:
                    terms = self.model.run(*args, **kwargs).losses
                except tg.TinygraphError:
                    return None
                finally:
                    _set_dropout_calls(self.model, after)
            for t, term in enumerate(terms, 1):
                value = term.item()
                if not np.isfinite(value):
                    name = _first_input(self.model.run)
                    found = _nonfinite_input(args[0] if args else kwargs.get(name),
                                             over_time=name == "xs")
                    return (f"the first non-finite loss term is L({t}) = {value}"
                            + (f" ({name} holds {found})" if found else ""))
            return None
        return where

    def step(self, *args, **kwargs):
        """The model's loss on ``(*args, **kwargs)`` (as ``model.loss``), then one update.

        Returns (loss, grad_norm) floats (grad_norm NaN for a skipped batch).  A step that
        raises leaves the model's seeded Dropouts as they were: a retry draws the same masks.
        """
        calls = _dropout_calls(self.model)
        try:
            with dropouts_drawing() as drawn:
                loss = self._loss(*args, **kwargs)
            self._note_unheld(drawn)
            value, norm = loss.item(), self.update(loss, self._locate(calls, *args, **kwargs))
        except BaseException:
            _set_dropout_calls(self.model, calls)
            raise
        del loss
        return value, norm

    def _note_unheld(self, drawn):
        """Keep the seeded Dropouts among ``drawn`` that the model does not hold: a checkpoint
        cannot record their calls (save_training names them)."""
        if not drawn:            # the usual case: no Dropout drew a mask (no walk of the model)
            return
        held = _held_ids(self.model)
        unheld = self.__dict__.setdefault("_unheld", {})     # absent from an older pickle
        for key, drop in drawn.items():
            if drop._seed is not None and key not in held:
                unheld[key] = drop

    def _loss(self, *args, **kwargs):
        if callable(getattr(self.model, "run_for_loss", None)):   # an rnn design: the batched run
            return loss_run(self.model, args, kwargs, "Trainer.step").loss
        loss = self.model.loss(*args, **kwargs)
        if not isinstance(loss, tg.Tensor) or loss.size != 1:
            raise tg.ConfigError(f"Trainer: {type(self.model).__name__}.loss(...) must return a "
                                 f"scalar Tensor, got {type(loss).__name__} {getattr(loss, 'shape', '')}")
        return loss

    def chunk(self, xs, ys, carried):
        """One update of truncated BPTT: the loss of one chunk that starts from ``carried``
        (keyword arguments of ``run``, e.g. ``{"h0": h}``), back-propagated within the chunk.

        Returns (loss, grad_norm, carried for the next chunk: ``model.carry`` of this run).
        """
        calls = _dropout_calls(self.model)
        try:
            with dropouts_drawing() as drawn:
                run = self.model.run_for_loss(xs, ys, **carried)
            self._note_unheld(drawn)
            after = self.model.carry(run)
            value, norm = run.loss.item(), self.update(run.loss,
                                                       self._locate(calls, xs, ys, **carried))
        except BaseException:     # a retry draws the same dropout masks
            _set_dropout_calls(self.model, calls)
            raise
        del run
        return value, norm, after

    def fit(self, batches, on_step=None):
        """Run :meth:`step` on every item of ``batches`` (each a tuple of args or a dict of kwargs).

        ``on_step(step, loss, grad_norm)`` is called after each update.  Returns the losses.

        All or nothing: a batch that raises undoes the call's earlier updates (parameters,
        their gradients, the optimizer's state, ``steps``, ``skipped`` and the seeded Dropouts'
        masks as before the call) and its error names the batch.  An interrupt (Ctrl-C)
        keeps the updates completed, each whole.
        """
        losses = []
        put_back, made = _training_kept(self), self.steps
        for k, batch in enumerate(batches, 1):
            try:
                loss, norm = self.step(**batch) if isinstance(batch, dict) else self.step(*batch)
                losses.append(loss)
                if on_step is not None:
                    on_step(self.steps, loss, norm)
            except Exception as e:
                undone = self.steps - made
                put_back()
                note = f"Trainer.fit: batch {k}" + (f"; {_undone(undone)}" if undone else "")
                _amend(e, lambda message: f"{message} ({note})", note)
                raise
        return losses


def _first_input(run):
    """The name of the first parameter of a model's ``run``: "xs" for a sequence of inputs
    (time first), "x" for VectorToSequence's one vector (n_in,) or batch (B, n_in)."""
    try:
        names = list(inspect.signature(run).parameters)
    except (TypeError, ValueError):
        return "xs"
    return names[0] if names else "xs"


def _nonfinite_input(xs, over_time=True):
    """Where float inputs ``xs`` hold their first NaN or inf, as "nan at t=3, b=1" (time first,
    ``over_time``) or "nan at b=1" (one vector or a batch (B, n_in) of them), or None (ids, no
    array, all finite)."""
    try:
        arr = np.asarray(xs.data if isinstance(xs, tg.Tensor) else xs)
    except (ValueError, TypeError):
        return None
    if arr.dtype.kind != "f" or arr.ndim == 0:
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    if over_time:
        at = f" at t={index[0] + 1}" + (f", b={index[1]}" if arr.ndim == 3 else "")
    else:
        at = f" at b={index[0]}" if arr.ndim == 2 else ""
    return f"{arr[index]}{at}"


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS",
                         "OMP_NUM_THREADS")


# The names OpenBLAS builds give its thread-count functions: numpy's wheels bundle
# scipy-openblas (symbols with a prefix and, for 64-bit integers, a suffix); a system OpenBLAS
# has the plain names.
_OPENBLAS_NAMES = (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                   ("openblas_", ""))


@functools.cache
def openblas():
    """``(get_num_threads, set_num_threads)`` of the OpenBLAS that numpy uses, as ctypes
    functions, or None if numpy's BLAS is not an OpenBLAS this can find.

    The library is the one already loaded into this process (Linux: /proc/self/maps) or the
    one numpy's wheel bundles (numpy.libs, numpy/.dylibs).  The library only ever reads the
    count (:func:`blas_threading`); the ``tinygraph`` program and a running ``viz.playground``
    set it for their training (``viz.blas``), since the count is process-wide.
    """
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split(None, 5)[5].strip() for line in maps
                     if line.count(" ") >= 5 and "openblas" in line.rsplit("/", 1)[-1].lower()]
    except (OSError, IndexError):
        pass
    top = os.path.dirname(os.path.dirname(np.__file__))
    for folder in (os.path.join(top, "numpy.libs"), os.path.join(os.path.dirname(np.__file__), ".dylibs")):
        paths += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    for path in dict.fromkeys(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in _OPENBLAS_NAMES:
            try:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}")
                put = getattr(lib, f"{prefix}set_num_threads{suffix}")
            except AttributeError:
                continue
            get.argtypes, get.restype = [], ctypes.c_int
            put.argtypes, put.restype = [ctypes.c_int], None
            return get, put
    return None


def blas_threading():
    """The BLAS library numpy uses and its thread count, as well as this process can tell
    without threadpoolctl: for an OpenBLAS (:func:`openblas`) the count it runs with now, else
    the first of ``BLAS_THREAD_VARIABLES`` set in the environment, else the CPUs this process
    may run on (what OpenBLAS and MKL default to).  ``from`` says where the count comes from:
    the variable or "CPUs" when the running count agrees with it, else "OpenBLAS's count"
    (the ``tinygraph`` program trains with one thread; OpenBLAS caps a variable at the CPUs).

    A matrix product sums in an order that depends on the thread count, so a resumed run
    repeats an uninterrupted one bit for bit only under the same threading; the checkpoint
    records this, and the command line says so on a resume whose threading differs.
    """
    try:
        library = np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name", "?")
    except (TypeError, KeyError, AttributeError):      # numpy < 1.26 prints, and returns None
        library = "?"
    said = None
    for name in BLAS_THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            said = (value, name)
            break
    if said is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        said = (str(cpus), "CPUs")
    functions = openblas()
    if functions is not None:
        running = str(functions[0]())
        if running != said[0]:
            said = (running, "OpenBLAS's count")
    return {"library": library, "threads": said[0], "from": said[1]}


def threading_note(meta):
    """None, or one line saying how the BLAS threading of checkpoint ``meta`` (of
    :func:`tg.read_meta`) differs from this process's."""
    saved, now = meta.get("blas") if isinstance(meta, dict) else None, blas_threading()
    if isinstance(saved, dict) and all(saved.get(k) == now[k] for k in ("library", "threads")):
        return None           # where the count came from does not change the sums
    def said(b):
        threads = "1 thread" if b.get("threads") == "1" else f"{b.get('threads')} threads"
        return (f"{b.get('library')} with {threads} ({b.get('from')})"
                if isinstance(b, dict) else "not recorded")
    return (f"the checkpoint was written under BLAS {said(saved)} and this process runs "
            f"{said(now)}: the resumed run is exact but not bit for bit the uninterrupted one")


def save_training(path, trainer, arrays=None, meta=None, scheduler=None):
    """Write a checkpoint of a training run to ``path``, atomically.

    The same state always writes the same bytes.  Besides the arrays the checkpoint records
    :func:`blas_threading` (a resume repeats the run bit for bit under the same threading) and
    the model's ``config()`` (its settings that are not parameters, which
    :func:`load_training` checks).

    Parameters
    ----------
    trainer : Trainer; its model's parameters, its optimizer's state, its update count, its
        ``clip`` (:func:`load_training` refuses a Trainer of another clip) and
        the calls made so far of each seeded ``tg.Dropout`` in the model (its next mask) and
        its seed (:func:`load_training` refuses a model of other seeds).  A seeded Dropout
        that the trainer's steps called but the model does not hold cannot be recorded by
        name: save_training and load_training warn (RuntimeWarning) naming it, since the
        resumed run draws other masks; hold it in the model
    arrays : dict name -> numeric array, the caller's own state (e.g. a carried h)
    meta : dict of JSON values, the caller's own metadata (e.g. the task's name; the state of
        a Generator that shuffles the data, ``rng.bit_generator.state``, to resume the same
        data order: give it back with ``rng.bit_generator.state = meta["rng"]``)
    scheduler : a learning-rate scheduler of ``trainer.optimizer`` (``tg.optim.lr_scheduler``)
        or None; its state is saved with the run's (entries ``sched/...``), and
        :func:`load_training` then needs a scheduler of the same kind and settings (without
        it a resumed run that made its scheduler again would start the schedule over)
    """
    _scheduler_of(scheduler, trainer.optimizer, "save_training", "its state would not be this "
                  "run's schedule; nothing written")
    state = {f"model/{k}": v for k, v in trainer.model.state_dict().items()}
    state.update({f"optim/{k}": v for k, v in trainer.optimizer.state_dict().items()})
    if scheduler is not None:
        state.update({f"sched/{k}": v for k, v in scheduler.state_dict().items()})
    state.update({f"extra/{k}": v for k, v in (arrays or {}).items()})
    config = trainer.model.config() if isinstance(trainer.model, tg.Module) else {}
    clip = None if trainer.clip is None else float(trainer.clip)
    header = {"trainer_steps": trainer.steps, "user": meta or {}, "trainer_clip": clip,
              "blas": blas_threading(), "dropout_calls": _dropout_calls(trainer.model),
              "dropout_seeds": _dropout_seeds(trainer.model), "model_config": config}
    unheld = _unheld_dropouts(trainer)
    if unheld:
        header["unheld_dropouts"] = unheld
        model = type(trainer.model).__name__
        for d in unheld:
            warnings.warn(f"save_training: a seeded tg.Dropout(p={d['p']}, seed={d['seed']}) "
                          f"that the model {model} does not hold drew {d['calls']} masks in "
                          "the trainer's steps; its position is not recorded (a checkpoint "
                          "records the model's own Dropouts), so a resumed run draws other "
                          "masks than this run would: hold it in the model (e.g. model.drop = "
                          "drop)", RuntimeWarning, stacklevel=2)
    tg.save_arrays(path, state, meta=header)


def _unheld_dropouts(trainer):
    """The seeded Dropouts the trainer's steps called that its model does not hold (now), as
    {"p", "seed", "calls"} sorted (the same state writes the same bytes)."""
    held = _held_ids(trainer.model)
    found = [d for key, d in getattr(trainer, "_unheld", {}).items() if key not in held]
    return sorted(({"p": d.p, "seed": d._seed, "calls": d._calls} for d in found),
                  key=lambda d: (d["seed"], d["p"], d["calls"]))


def _held_ids(model):
    """ids of the Dropouts the model holds (keys as ``dropouts_drawing`` gives them)."""
    return {id(m) for m in _dropouts(model).values()}


def _dropouts(model):
    """name -> every tg.Dropout in ``model`` (a model that is not a tg.Module has none)."""
    if not isinstance(model, tg.Module):
        return {}
    return {name: m for name, m in model.named_modules() if isinstance(m, tg.Dropout)}


def _dropout_calls(model):
    return {name: m._calls for name, m in _dropouts(model).items()}


def _set_dropout_calls(model, calls):
    for name, module in _dropouts(model).items():
        module._calls = calls[name]


def _dropout_seeds(model):
    return {name: m._seed for name, m in _dropouts(model).items()}


def load_training(path, trainer, expect=None, max_bytes=tg.checkpoint.MAX_BYTES,
                  scheduler=None):
    """Restore a checkpoint of :func:`save_training` into ``trainer``; a failed load changes nothing.

    Parameters
    ----------
    path : the checkpoint
    trainer : Trainer of a model and optimizer like the saved ones
    expect : dict name -> (shape, dtype) of the caller's own arrays (``None`` in a shape: any
        length); every entry's header is checked against the model, the optimizer and this
        before its data is read.
    max_bytes : int, the most array data the load may read (see ``tg.read_checkpoint``)
    scheduler : the learning-rate scheduler of ``trainer.optimizer`` the run was saved with
        (made afresh, of the same kind and settings), or None for a run saved without one;
        either way round is refused (CheckpointError), as is another kind or setting

    Returns
    -------
    (arrays, meta) : the caller's own arrays and metadata.

    Raises
    ------
    CheckpointError
        Naming the file and the entry, or the model's setting that differs from the saved
        model's (``config()``: an attention, a leak rate...; a Dropout's seed), or the saved
        run's optimizer and the trainer's where they differ (Adam's state into an SGD).
    """
    model, optimizer = trainer.model, trainer.optimizer
    wanted = {f"model/{k}": v for k, v in model.expected_state().items()}
    wanted.update({f"optim/{k}": v for k, v in optimizer.expected_state().items()})
    wanted.update({f"extra/{k}": v for k, v in (expect or {}).items()})
    wanted.update(_scheduler_wanted(path, optimizer, scheduler))
    try:
        found = tg.read_checkpoint(path, wanted, max_bytes,   # every name that does not fit at once
                                   required=[f"model/{k}" for k in model.expected_state()])
    except tg.CheckpointError:      # a model of other settings (e.g. criterion), or a run of
        #                               another optimizer, is named as such
        if isinstance(model, tg.Module):
            model.check_saved_settings(path, "model_config", f"load: '{path}'")
        saved = _saved_optimizer(path)
        if saved is not None and saved != type(optimizer).__name__:
            raise tg.CheckpointError(
                f"load: '{path}': the run was saved with optimizer {saved}, this Trainer's is "
                f"{type(optimizer).__name__} (another algorithm: its state means other things); "
                f"make the Trainer with {saved} to resume the run") from None
        raise
    steps = found.meta.get("trainer_steps")
    user = found.meta.get("user")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0 or not isinstance(user, dict):
        raise tg.CheckpointError(f"load: '{path}' is not a checkpoint of rnn.save_training "
                                 f"(its metadata {found.meta!r})")
    dropouts = _dropouts(model)
    calls = found.meta.get("dropout_calls", {})     # absent from a checkpoint written before
    if "dropout_calls" in found.meta and (
            not isinstance(calls, dict) or set(calls) != set(dropouts)
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in calls.values())):
        raise tg.CheckpointError(f"load: '{path}': its dropout call counts {calls!r} do not fit "
                                 f"the model's Dropout modules {sorted(dropouts)}")
    clip = None if trainer.clip is None else float(trainer.clip)
    if "trainer_clip" in found.meta and found.meta["trainer_clip"] != clip:   # absent: before
        raise tg.CheckpointError(f"load: '{path}': the run was saved by a Trainer of clip="
                                 f"{found.meta['trainer_clip']!r}, this one has clip={clip!r}: its "
                                 "updates would clip other gradients (to change it on purpose, "
                                 "load into a Trainer of the saved clip, then set trainer.clip)")
    seeds = found.meta.get("dropout_seeds")      # absent from a checkpoint written before
    if seeds is not None and seeds != _dropout_seeds(model):
        raise tg.CheckpointError(f"load: '{path}': its Dropout seeds {seeds!r} are not the model's "
                                 f"{_dropout_seeds(model)!r}: the resumed run would draw other "
                                 "masks than the saved run")
    if isinstance(model, tg.Module):     # absent from a checkpoint written before: not checked
        model.check_config(found.meta.get("model_config"), f"load: '{path}'")
    parts = {part: {k.split("/", 1)[1]: v for k, v in found.arrays.items()
                    if k.startswith(part + "/")} for part in ("model", "optim", "extra", "sched")}
    # the optimizer first: its state is put back if the model then refuses (or the load is
    # interrupted), so a failed load never writes the parameters (their versions stay: graphs
    # built before still back-propagate); each load_state_dict checks everything before it
    # changes anything
    unheld = found.meta.get("unheld_dropouts")     # said before anything is changed
    for d in unheld if isinstance(unheld, list) else ():
        if isinstance(d, dict):
            warnings.warn(f"load: '{path}': the run was saved with a seeded tg.Dropout(p="
                          f"{d.get('p')}, seed={d.get('seed')}) that its model did not hold, "
                          f"after {d.get('calls')} masks; its position is not restored, so the "
                          "resumed run draws other masks than the saved run would",
                          RuntimeWarning, stacklevel=2)
    put_back = _optimizer_kept(optimizer)
    kept = None if scheduler is None else dict(vars(scheduler))
    try:
        optimizer.load_state_dict(parts["optim"])
        try:
            if scheduler is not None:   # after the optimizer's: it sets the rates of its epoch
                scheduler.load_state_dict(parts["sched"])
            model.load_state_dict(parts["model"])
        except BaseException:
            put_back()
            if kept is not None:
                vars(scheduler).clear()
                vars(scheduler).update(kept)
            raise
    except tg.CheckpointError as e:
        raise tg.CheckpointError(f"load: '{path}': {e}") from None
    for name, count in calls.items():     # each seeded Dropout draws the masks it would have next
        dropouts[name]._calls = count
    trainer.steps = steps
    return parts["extra"], user


def _scheduler_of(scheduler, optimizer, who, consequence):
    """A ConfigError naming ``who`` unless ``scheduler`` is None or a scheduler of ``optimizer``
    (the trainer's): another optimizer's schedule is not this run's."""
    if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
        raise tg.ConfigError(f"{who}: the {type(scheduler).__name__} given is a scheduler of "
                             f"another optimizer than the trainer's ({consequence})")


def _scheduler_wanted(path, optimizer, scheduler):
    """name -> (shape, dtype) of the ``sched/`` entries ``load_training`` reads: none without a
    scheduler, else those of ``scheduler``'s state; a checkpoint saved with a scheduler loaded
    without one (or the other way round), a scheduler of another optimizer and a checkpoint of
    another kind of scheduler are refused here, before anything is read or changed."""
    _scheduler_of(scheduler, optimizer, "load", "nothing loaded")
    saved = any(name.startswith("sched/") for name in tg.read_headers(path))
    mine = None if scheduler is None else type(scheduler).__name__
    if saved and scheduler is None:
        kind = _saved_name(path, "sched/scheduler") or "?"
        raise tg.CheckpointError(
            f"load: '{path}': the run was saved with a learning-rate scheduler ({kind}), but "
            "none was given: the resumed run would start its schedule over; make the "
            f"scheduler as the run did and give it: load_training(..., scheduler=...) "
            "(nothing loaded)")
    if scheduler is not None and not saved:
        raise tg.CheckpointError(
            f"load: '{path}': the run was saved without a learning-rate scheduler, but a "
            f"{mine} was given: its schedule has no saved position in this run (load without "
            "scheduler=, then make the scheduler; nothing loaded)")
    if scheduler is None:
        return {}
    kind = _saved_name(path, "sched/scheduler")
    if kind is not None and kind != mine:
        raise tg.CheckpointError(f"load: '{path}': {type(scheduler).__name__}.load_state_dict: "
                                 f"the state is of {kind}, not {mine} (another schedule); make "
                                 "the scheduler the run was saved with (nothing loaded)")
    return {f"sched/{k}": (np.asarray(v).shape, np.asarray(v).dtype)
            for k, v in scheduler.state_dict().items()}


def _saved_name(path, entry):
    """The name a checkpoint's ``entry`` holds as UTF-8 bytes (an optimizer's or a
    scheduler's kind), or None (no such entry, or one that cannot say)."""
    try:
        kind = tg.checkpoint.read_entry(path, entry, ((tg.optim.NAME_BYTES,), np.dtype(np.uint8)))
    except tg.CheckpointError:
        return None
    return bytes(kind).rstrip(b"\0").decode("utf-8", "replace") or None


def _saved_optimizer(path):
    """The class name of the optimizer a :func:`save_training` checkpoint was saved with, or None
    (a file without it, or one that cannot say)."""
    try:
        kind = tg.checkpoint.read_entry(path, "optim/optimizer",
                                        ((tg.optim.NAME_BYTES,), np.dtype(np.uint8)))
    except tg.CheckpointError:
        return None
    return bytes(kind).rstrip(b"\0").decode("utf-8", "replace") or None


def _optimizer_kept(optimizer):
    """A function that puts ``optimizer`` back as it is now: a tg.optim optimizer's very state
    (its step count, state arrays and group settings, whatever they are), another's by its own
    load_state_dict."""
    if not isinstance(optimizer, tg.optim.Optimizer):
        snapshot = optimizer.state_dict()
        return lambda: optimizer.load_state_dict(snapshot)
    # the very objects, and copies of the arrays' values: a step updates the state arrays in
    # place (m *= b1), which a put-back after steps (a truncated_bptt or fit that fails
    # midway) must undo
    steps, state = optimizer.steps, optimizer.state
    entries = [(s, dict(s), {k: np.array(v, copy=True) for k, v in s.items()}) for s in state]
    groups = [(group, dict(group)) for group in optimizer.param_groups]

    def put_back():
        optimizer.steps, optimizer.state = steps, state
        state[:] = [entry for entry, _, _ in entries]     # a failed step puts in new dicts
        for entry, was, values in entries:
            entry.clear()
            entry.update(was)
            for key, value in was.items():
                if isinstance(value, np.ndarray) and value.flags.writeable:
                    np.copyto(value, values[key])
                else:
                    entry[key] = values[key]
        for group, was in groups:
            group.clear()
            group.update(was)
    return put_back


def _training_kept(trainer):
    """A function that puts ``trainer`` back as it is now: its model's and optimizer's
    parameters (values and gradients), the optimizer's state, ``steps``, ``skipped`` and the
    calls of the model's seeded Dropouts.  What a training call of several updates
    (:func:`truncated_bptt`, :meth:`Trainer.fit`) runs when one of them fails: the call changes
    all or nothing.  The values put back keep the versions the updates gave them (graphs
    built before the call refuse to back-propagate, as after an optimizer's own put-back)."""
    model, optimizer = trainer.model, trainer.optimizer
    params = list(model.parameters()) if callable(getattr(model, "parameters", None)) else []
    params = list({id(p): p for p in params + list(getattr(optimizer, "params", ()))}.values())
    saved = [(p, p.data, p.data.copy(),      # a Tensor .grad (create_graph) is kept as it is
              p.grad if p.grad is None or isinstance(p.grad, tg.Tensor) else p.grad.copy())
             for p in params]
    optimizer_back = _optimizer_kept(optimizer)
    steps, skipped, calls = trainer.steps, list(trainer.skipped), _dropout_calls(model)

    def put_back():
        for p, data, copy, grad in saved:
            np.copyto(data, copy)
            p.data = data
            p.grad = grad
        optimizer_back()
        trainer.steps, trainer.skipped[:] = steps, skipped
        _set_dropout_calls(model, calls)
    return put_back


def _in_chunk(error, who, k, start, stop, undone):
    """``error`` (raised by chunk ``k`` of a long sequence, steps ``start``..``stop``) with its
    message saying so: its t=... is the chunk's own step, t + start - 1 of the sequence.
    ``undone``: the earlier updates of the call that were put back (None: no updates)."""
    where = f"{who}: chunk {k} (steps {start}-{stop} of the sequence"
    where += f"; the t of its steps below is t + {start - 1} in the sequence)" if start > 1 else ")"
    after = f"; {_undone(undone)}" if undone else ""
    _amend(error, lambda message: f"{where}: {message}{after}", where + after)
    return error


def _undone(updates):
    """What an error of a training call says of the ``updates`` (> 0) it undid."""
    return (f"the {updates} earlier update{'s' if updates > 1 else ''} of this call undone: "
            "model, optimizer and trainer as before it")


def _amend(error, message, note):
    """Say more in ``error``: a tinygraph error of one message gets ``message(its message)``
    as its message, any other error ``note`` as a note (its own message stays as it is)."""
    if isinstance(error, tg.TinygraphError) and len(error.args) == 1 \
            and isinstance(error.args[0], str):
        error.args = (message(error.args[0]),)
    else:
        error.add_note(note)


def truncated_bptt(trainer, xs, ys, chunk, h0=None, on_step=None, mask=None):
    """One pass of truncated BPTT over a long sequence, carrying the state across chunks.

    Parameters
    ----------
    trainer : Trainer of a causal sequence model: ElmanRNN, JordanRNN, ConditionalRNN, LSTM, GRU,
        LeakyRNN, DeepRNN, MemoryNetwork, EchoStateNetwork, a Recurrence, or a model with ``run_for_loss(xs, ys, **state)`` and
        ``carry(run)`` (a model with only ``loss`` is refused: its state could not be carried)
    xs, ys : (T, ...) inputs and (T,) / (T, B) targets, e.g. from ``datasets.stream_batches``
        (float targets (T, n_out) / (T, B, n_out) for a model with ``criterion="squared_error"``)
    chunk : int, steps per chunk (gradients do not cross chunk boundaries)
    h0 : initial state, default zeros; or the :class:`Carried` an earlier call returned, to go
        on with the sequence where that call stopped
    on_step : callable ``(step, loss_per_step, grad_norm)``, called after every chunk
    mask : (T, B) of 0/1, optional: padded sequences (right padding, e.g. from
        ``rnn.pad_sequences``), as ``model.loss(xs, ys, mask=mask)`` takes it; cut into chunks
        with xs and ys.  Each chunk's loss is what ``loss`` computes on that chunk with its
        part of the mask (padded steps add nothing; each step's term divided by the full batch
        B), from the carried state; a sequence that ended in an earlier chunk (or, going on
        with ``h0=``, in an earlier call: its column then keeps no step) keeps its last state
        unchanged through the later ones.  A chunk that keeps no step of any sequence
        (padding alone) is refused before any update.

    Returns
    -------
    (losses, h) : the loss of every chunk divided by its number of steps (padded ones
    included), and the detached last state; for
    a model whose next chunk reads more than its last state (a LeakyRNN with ``skip=d`` reads
    h(t-d), a design that feeds its output back reads y(t-1)), a :class:`Carried` of all of it.
    Passed back as ``h0=``, either makes the next call compute what one call over both parts
    computes.

    All or nothing: a chunk that raises (an id out of range at its step 2, a refused
    non-finite loss) undoes the call's earlier updates (parameters, their gradients, the
    optimizer's state, ``trainer.steps`` and ``skipped``, the seeded Dropouts' masks as before
    the call), and its error names the chunk and where its steps are in the sequence.  An
    interrupt (Ctrl-C) keeps the updates completed, each whole (see :meth:`Trainer.update`).
    """
    model = trainer.model
    if not callable(getattr(model, "run_for_loss", None)) or not callable(getattr(model, "carry", None)):
        raise tg.ConfigError(f"truncated_bptt: {type(model).__name__} needs run_for_loss(xs, ys, **state) "
                             "and carry(run) to carry its state from one chunk to the next (an "
                             "rnn.Recurrence cell has both)")
    losses = []
    carried = dict(h0) if isinstance(h0, Carried) else {} if h0 is None else {"h0": h0}
    takes = inspect.signature(model.run_for_loss).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
        unknown = [k for k in carried if k not in takes]
        if unknown:
            given = (f"an rnn.Carried of {sorted(carried)}" if isinstance(h0, Carried)
                     else "a state")
            raise tg.ConfigError(f"truncated_bptt: h0 is {given}, but {type(model).__name__}."
                                 f"run_for_loss takes no {unknown[0]!r}: give what this model's "
                                 "own earlier truncated_bptt call returned")
    parts = chunks(trainer.model, xs, ys, chunk, "truncated_bptt")
    masks = _chunk_masks(model, xs, mask, parts, takes, going_on=h0 is not None)
    put_back = _training_kept(trainer) if len(parts) > 1 else None
    start, made = 1, trainer.steps
    for k, (x, y) in enumerate(parts, 1):
        try:
            if masks is None:
                loss, norm, carried = trainer.chunk(x, y, carried)
            else:
                with checks.chunk_masks():      # a row may have ended in an earlier chunk
                    loss, norm, carried = trainer.chunk(x, y, dict(carried, mask=masks[k - 1]))
            losses.append(loss / len(x))
            if on_step is not None:
                on_step(trainer.steps, losses[-1], norm)
        except Exception as e:
            if put_back is None:
                raise
            undone = trainer.steps - made
            put_back()
            raise _in_chunk(e, "truncated_bptt", k, start, start + len(x) - 1, undone)
        start += len(x)
    # what the next chunk would start from: the last state alone where that is all
    if set(carried) <= {"h0"}:
        return losses, carried.get("h0", h0)
    return losses, Carried(carried)


def _chunk_masks(model, xs, mask, parts, takes, going_on=False):
    """``mask`` (T, B) cut as ``parts`` are (a list of (steps, B) bool arrays), or None; checked
    whole before the first chunk runs: its shape against xs, 0/1 entries, no empty sequence,
    no chunk of padding alone, and a model whose run_for_loss takes mask=."""
    if mask is None:
        return None
    if "mask" not in takes and not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
        raise tg.ConfigError(f"truncated_bptt: {type(model).__name__}.run_for_loss takes no "
                             "mask=, so its padded sequences cannot be masked")
    xs = checks.as_array(xs, "truncated_bptt", "xs")
    if xs.ndim < 2:
        raise tg.ShapeError(f"truncated_bptt: mask= needs a batch of sequences xs (T, B, ...), "
                            f"got xs of shape {xs.shape}")
    # going on from an earlier call (h0): a sequence may have ended in it, its state carried
    with checks.chunk_masks() if going_on else contextlib.nullcontext():
        keep = checks.mask(mask, len(xs), xs.shape[1], True, "truncated_bptt")
    cut, start = [], 0
    for k, (x, _) in enumerate(parts, 1):
        part = keep[start:start + len(x)]
        if not part.any():
            raise tg.ShapeError(f"truncated_bptt: chunk {k} (steps {start + 1}-{start + len(x)}) "
                                "is padding alone (its mask keeps no step of any sequence): "
                                "cut that padding off xs, ys and mask")
        cut.append(part)
        start += len(x)
    return cut


class Carried(dict):
    """What :func:`truncated_bptt` returns for a model whose next chunk reads more than its last
    state: the keyword arguments of its ``run`` that the next chunk starts from (``model.carry``
    of the last chunk, all detached): ``"h0"`` the last state, ``"past"`` the states of the last
    d steps of a skip connection of delay d, ``"y0"`` the last output fed back.  Give it back as
    ``truncated_bptt(..., h0=carried)`` to go on with the sequence."""


def chunks(model, xs, ys, chunk, who):
    """Consecutive chunks of ``chunk`` steps of a long sequence for ``model`` (which must be
    causal): a list of (xs part, ys part).

    ``who`` names the caller in errors; everything is checked before the first chunk runs.
    """
    chunk = checks.positive_int(chunk, who, "chunk")
    if not getattr(model, "causal", True):
        raise tg.ConfigError(f"{who}: {model.name} is not causal (each output reads the whole "
                             "sequence), so it cannot be read in chunks")
    name = getattr(model, "name", type(model).__name__)
    if getattr(model, "outputs", "all") != "all":
        raise tg.ConfigError(f"{who}: {name} has one output (and one loss term) per sequence, not "
                             "one per time step, so its loss cannot be cut into chunks of steps; "
                             "use model.loss(xs, y) on the whole sequence")
    if callable(getattr(model, "run", None)) and _first_input(model.run) == "x":
        raise tg.ConfigError(f"{who}: {name} reads one vector x per sequence, not a sequence of "
                             "inputs xs (T, ...), so it cannot be read in chunks of steps; use "
                             "model.loss(x, ys) on the whole sequence")
    xs = checks.as_array(xs, who, "xs")
    ys = checks.as_array(ys, who, "ys")
    for what, arr in (("xs", xs), ("ys", ys)):
        if arr.ndim == 0:
            raise tg.ShapeError(f"{who}: {what} must be a sequence of time steps (T, ...), got a "
                                f"single value")
    if len(xs) != len(ys):
        raise tg.ShapeError(f"{who}: xs has {len(xs)} steps but ys has {len(ys)}")
    return [(xs[start:start + chunk], ys[start:start + chunk]) for start in range(0, len(xs), chunk)]


def stream_loss(model, xs, ys, chunk=1000):
    """Mean loss per time step of ``model`` reading one long sequence, without keeping a graph.

    The sequence is read in chunks of ``chunk`` steps under ``tg.no_grad()``, each chunk starting
    from what the previous one ended with (``model.carry``), so the result equals
    ``model.loss(xs, ys).item() / len(xs)`` of one unroll over the whole sequence, in memory that
    does not grow with its length: the held-out loss of a language model, for example.  A model
    with one output per sequence (SequenceToOne) or one input vector per sequence
    (VectorToSequence) has no loss per time step to read in chunks, and is refused
    (ConfigError), as a model that is not causal is.

    An evaluation, so it runs in evaluation mode (:func:`rnn.core.evaluating`: dropout off in
    this thread only, no module's own mode changed, and a seeded ``tg.Dropout``'s
    masks not advanced), as the diagnostics do: a held-out loss of a model in training mode
    is not one of random dropout masks.
    """
    total, steps, carried = 0.0, 0, {}
    with tg.no_grad(), evaluating(model):
        parts = chunks(model, xs, ys, chunk, "stream_loss")
        for k, (x, y) in enumerate(parts, 1):
            try:
                run = model.run_for_loss(x, y, **carried)
            except Exception as e:
                if len(parts) == 1:
                    raise
                raise _in_chunk(e, "stream_loss", k, steps + 1, steps + len(x), None)
            carried = model.carry(run)     # the state (and fed-back output) the next chunk reads
            total += run.loss.item()
            steps += len(x)
    if steps == 0:
        raise tg.ShapeError("stream_loss: the sequence is empty")
    return total / steps


def train_char_model(model, ids, steps, batch_size=16, chunk=25, lr=1e-2, clip=5.0,
                     on_step=None):
    """Train a character language model on an id stream by truncated BPTT.

    The stream is cut into ``batch_size`` parallel streams (``datasets.stream_batches``)
    and walked chunk by chunk, the state carried across chunks and reset at each pass.

    Parameters
    ----------
    model : ElmanRNN with n_in == n_out == vocabulary size
    ids : int (N,) the text as ids
    steps : int, number of updates
    on_step : callable ``(step, loss_per_char, grad_norm)``

    Returns
    -------
    list of the loss per character of every update.
    """
    steps = checks.positive_int(steps, "train_char_model", "steps")
    xs, ys = stream_batches(ids, batch_size)
    trainer = Trainer(model, lr=lr, clip=clip)
    losses = []
    per_pass = -(-len(xs) // chunk)
    while len(losses) < steps:
        n = min(per_pass, steps - len(losses))
        part, _ = truncated_bptt(trainer, xs[:n * chunk], ys[:n * chunk], chunk, on_step=on_step)
        losses.extend(part)
    return losses
