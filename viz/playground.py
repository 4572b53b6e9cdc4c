"""The playground: train a recurrent network live in the browser, computed by the real engine.

``tinygraph playground`` (or :func:`playground` from Python) starts a local server on the
standard library's ``http.server``, bound to 127.0.0.1.  One background thread trains: every
update is a :class:`rnn.train.Trainer` step (BPTT over the unrolled DAG, the gradient norm
clipped by ``tg.clip_grad_norm``), and every few updates the same thread computes the views
from the current parameters with :mod:`rnn.diagnostics` on one held-out probe sequence: the
connectivity ‖∂L(t)/∂h(k)‖, ‖∂L/∂h(t)‖ over t, the Jacobians ∂h(t)/∂h(t-1) with their spectra
and fitted lag-decay rate, and the unrolled view of a short window coloured by gradient norms.
It publishes them as one JSON snapshot; a request only reads that snapshot under a short lock
or queues a command, so no request waits for training and every tab sees the same run.

Every request carries the server's random token (compared with ``hmac.compare_digest``), a
Host header that is not the server's own is refused (403), sizes are bounded (:data:`LIMITS`)
and anything malformed gets a 400 with a message.  The page's URL hash holds the configuration
and the seed: the same configuration and seed give the same parameters after N updates, bit for
bit.  With ``out`` the run is checkpointed there (atomically, ``rnn.save_training``) on request
and when the server stops, and can be resumed from it; nothing else is read or written but
the folder's lock file (``.tinygraph.lock``, held until ``stop()``: a second playground or
command on the same folder is refused meanwhile).
"""

import contextlib
import hashlib
import hmac
import http.server
import json
import math
import os
import re
import secrets
import threading
import time
import urllib.parse
import webbrowser

import numpy as np

import rnn
import tinygraph as tg
from rnn import datasets, problems
from rnn.core import evaluating, time_step
from rnn.diagnostics import part_nodes, run_model, vector_norm

from .blas import hold_one_blas_thread
from .derive import derive
from .explorer import DROPOUT_OFF, _binned, _num, _nums, _svg_text, fixed_state_note
from .render import printable
from .views import BOOK_HIDDEN, backward_chains, draw_unrolled, new_digraph

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playground")
ASSETS = {"/": ("playground.html", "text/html; charset=utf-8"),
          "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
          "/playground.css": ("playground.css", "text/css; charset=utf-8")}

DESIGNS = ("elman", "lstm", "gru", "leaky", "esn")
OPTIMIZERS = ("adam", "sgd")
TASKS = ("copy", "parity", "chars", "signal")
FITS = {"copy": ("elman", "lstm", "gru", "leaky"), "parity": ("elman", "lstm", "gru", "leaky"),
        "chars": ("elman", "lstm", "gru", "leaky"), "signal": ("elman", "esn")}
LIMITS = {"hidden": (1, 512), "batch": (1, 256), "delay": (1, 1994), "length": (1, 2000),
          "trunc": (1, 2000), "seed": (0, 2**32 - 1)}
FLOATS = {"rho": (0.0, 10.0), "lr": (1e-6, 1.0), "clip": (0.0, 1e6)}
MAX_STEPS = 2000           # time steps of one sequence
MAX_BODY = 4096            # bytes of a request body
DEFAULTS = {"design": "elman", "task": "copy", "delay": 5, "length": 20, "hidden": 32,
            "rho": 1.0, "lr": 0.01, "clip": 1.0, "batch": 16, "trunc": 2000, "seed": 0,
            "compare": "", "optimizer": "adam"}
COPY_LENGTH, COPY_SYMBOLS = 3, 8
HELD_BATCH = 128
PROBE_ROWS = 100           # up to this many loss terms the connectivity is every row, exactly
JACOBIAN_STEPS = 30        # the Jacobians of the probe's first steps (one sweep per unit per step)
WINDOW = 5                 # steps of the unrolled view: the last ones of the probe
CURVE_POINTS = 400         # points of a curve in the snapshot
VIEW_SHARE = 0.1           # the views take at most about this share of the training thread's CPU time
REFRESH_SECONDS = 0.25     # and are refreshed at most this often (CPU seconds of the thread)
PUBLISH_SECONDS = 0.25     # the curves of a playing run are published at most this often
SAVE_NAME = "playground_{}.npz"
# settings of the built-in models and tasks: a model given from Python has its own (its name as
# design, task "custom", its own hidden size) and its task its own data (no delay, no length)
OWN_SETTINGS = ("design", "hidden", "delay", "length")


class BadRequest(tg.TinygraphError, ValueError):
    """A request the playground refuses (400), with the message the page shows."""


# ------------------------------------------------------------------ configuration

def check_config(raw, custom=False):
    """A complete, checked configuration from ``raw`` (a dict of strings or numbers; missing
    keys take :data:`DEFAULTS`).  Raises BadRequest naming the field, the value and the bound."""
    if not isinstance(raw, dict):
        raise BadRequest(f"the configuration must be an object of fields, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise BadRequest(f"unknown configuration fields {unknown}; known: {sorted(DEFAULTS)}")
    config = dict(DEFAULTS, **raw)
    for key in ("design", "task", "compare", "optimizer"):
        if not isinstance(config[key], str):
            raise BadRequest(f"{key} must be a name, got {config[key]!r}")
    if not custom:
        if config["task"] not in TASKS:
            raise BadRequest(f"task must be one of {list(TASKS)}, got {config['task']!r}")
        for key in ("design", "compare"):
            value = config[key]
            if key == "compare" and value == "":
                continue
            if value not in DESIGNS:
                raise BadRequest(f"{key} must be one of {list(DESIGNS)}, got {value!r}")
            if value not in FITS[config["task"]]:
                raise BadRequest(f"{key} {value} does not fit the task {config['task']} "
                                 f"(designs for it: {list(FITS[config['task']])})")
    elif config["compare"]:
        raise BadRequest("a model given from Python cannot be compared side by side")
    if config["optimizer"] not in OPTIMIZERS:
        raise BadRequest(f"optimizer must be one of {list(OPTIMIZERS)}, got {config['optimizer']!r}")
    for key, (low, high) in LIMITS.items():
        if custom and key == "hidden":      # a user's model's own size, shown as it is
            high = 2**31 - 1
        config[key] = _whole(key, config[key], low, high)
    for key, (low, high) in FLOATS.items():
        config[key] = _real(key, config[key], low, high)
    if config["rho"] == 0.0 and not custom:
        raise BadRequest("rho must be > 0 (the spectral radius W is rescaled to)")
    if config["task"] == "copy" and 2 * COPY_LENGTH + config["delay"] > MAX_STEPS:
        raise BadRequest(f"delay {config['delay']}: the copy sequence has 2 x {COPY_LENGTH} + "
                         f"delay steps, at most {MAX_STEPS}")
    return config


def _whole(key, value, low, high):
    if isinstance(value, str):
        try:
            value = int(value, 10)
        except ValueError:
            raise BadRequest(f"{key} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise BadRequest(f"{key} must be in {low}..{high:,}, got {value:,}")
    return value


def _real(key, value, low, high):
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadRequest(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise BadRequest(f"{key} must be in [{low:g}, {high:g}], got {value:g}")
    return float(value)


# ------------------------------------------------------------------ one training run

class _Source:
    """The data of a run: ``batch(k)`` the (xs, ys) of update k's sequence, ``held`` a fixed
    held-out batch, ``probe`` one held-out sequence for the views; ``stream`` True for the
    character model (one long text read chunk after chunk)."""

    stream = False

    def __init__(self, make, seed, batch):
        self.make, self.seed, self.size = make, seed, batch
        self.held = self._pair(make(HELD_BATCH, 2**40 + seed))
        self.probe = tuple(_first(a, HELD_BATCH, i) for i, a in enumerate(self.held))

    def batch(self, number):
        return self._pair(self.make(self.size, self.seed * 100_003 + number))

    @staticmethod
    def _pair(data):
        """The task's (xs, ys); anything else is refused, a third array (a mask of padded
        sequences) by name: the playground trains without one, so the padding would be trained
        on as data."""
        if isinstance(data, (tuple, list)) and len(data) == 2:
            return tuple(data)
        if isinstance(data, (tuple, list)) and len(data) == 3:
            raise tg.ConfigError(
                "viz.playground: the task gave 3 arrays (xs, ys and a mask of padded sequences?); "
                "the playground trains on (xs, ys) alone, without a mask, so the padded steps "
                "would be trained on as data: give sequences of one length (no padding), or "
                "train padded batches with rnn.Trainer and model.loss(xs, ys, mask=mask)")
        if isinstance(data, (tuple, list)):
            got = f"{len(data)} array{'' if len(data) == 1 else 's'}"
        else:
            got = f"a {type(data).__name__}"
        raise tg.ConfigError(f"viz.playground: the task must give a pair (xs, ys), got {got}")


def _terms(model, ys):
    """How many loss terms L(t) a loss of targets ``ys`` sums, what it is divided by to be the
    page's "loss per step": one per target step (an encoder-decoder's n_y, a vector-to-sequence
    net's T, not n_x or the batch that len(xs) is there), one for a sequence-to-one net."""
    return 1 if isinstance(model, rnn.SequenceToOne) else len(ys)


def _first(a, batch, which):
    """The first example of a ``batch`` of them, keeping a batch axis of one: sequences
    (T, B, ...) along axis 1, a batch of vectors (B, n) of a VectorToSequence or the labels (B,)
    of a SequenceToOne along axis 0 (the axis of length ``batch``; axis 1 where both are)."""
    shape = np.shape(a)
    if len(shape) >= 2 and shape[1] == batch:
        return a[:, :1]
    if len(shape) >= 1 and shape[0] == batch:
        return a[:1]
    raise tg.ShapeError(f"viz.playground: the task's {('xs', 'ys')[which]} for a batch of "
                        f"{batch} has shape {shape}: no axis of {batch} examples (sequences "
                        f"(T, {batch}, ...), or ({batch}, ...) for one vector or label each)")


class _Stream:
    stream = True

    def __init__(self, seed, batch, trunc):
        vocab, ids = datasets.char_corpus("harbour")
        train_ids, held_ids = datasets.split(ids, rnn.tasks.HELD_OUT)
        self.vocab = vocab
        self.xs, self.ys = datasets.stream_batches(train_ids, batch)
        self.trunc = trunc
        self.chunks = max(1, len(self.xs) // trunc)
        held = held_ids[:2001]
        self.held = (held[:-1], held[1:])
        self.probe = (held[:min(trunc, 100)][:, None], held[1:min(trunc, 100) + 1][:, None])


def _uncut(model, held, trunc):
    """None for a model whose sequences the playground cuts into chunks of ``trunc`` steps (a
    causal model with a loss term per step of its inputs xs (T, ...)); else why it cannot be
    (a non-causal model, one output per sequence, one input vector per sequence), for which
    every update reads a whole sequence.  A ``trunc`` shorter than such a sequence is refused
    (ConfigError): it would train on something other than what the setting says."""
    xs, ys = held
    try:
        rnn.train.chunks(model, xs, ys, trunc, "viz.playground")
        return None
    except tg.ConfigError as e:
        reason = str(e).split(": ", 1)[-1].split("; use ")[0]
    if rnn.train._first_input(model.run) == "x":
        steps = len(ys)                     # one vector x (B, n): the steps are the targets'
    elif getattr(model, "outputs", "all") != "all":
        steps = len(xs)                     # one label per sequence (B,)
    else:
        steps = max(len(xs), len(ys))       # e.g. an encoder-decoder's n_x and n_y steps
    if trunc < steps:
        raise tg.ConfigError(f"viz.playground: trunc {trunc} would cut the task's sequences of "
                             f"{steps} steps, but {reason}; set trunc >= {steps} (every update "
                             "then reads whole sequences)")
    return reason


def _flat_carry(carry, leaf):
    """A carry dict (``model.carry``: "h0" a state, "y0" the output fed back, "past" a list of
    states) as flat checkpoint names -> ``leaf(tensor)``; see :meth:`Run.carried_arrays`."""
    flat = {}

    def put(name, state):
        if isinstance(state, dict):
            for part, v in state.items():
                flat[f"{name}/{part}"] = leaf(v)
        elif state is not None:
            flat[name] = leaf(state)
    for key, value in carry.items():
        if key == "h0":
            put("carried", value)
        elif key == "y0":
            put("carried_y0", value)
        elif key == "past":
            for i, state in enumerate(value):
                put(f"carried_past/{i}", state)
        else:
            raise tg.ConfigError(f"viz.playground: {key!r} carried from chunk to chunk cannot be "
                                 "checkpointed (known: h0, y0, past)")
    return flat


def _signal(batch, seed, length):
    """``batch`` windows of problems.delayed_product of ``length`` steps: (T, B, 1) each."""
    pairs = [problems.delayed_product(length, seed=seed * 1009 + i) for i in range(batch)]
    return (np.stack([x for x, _ in pairs], axis=1), np.stack([y for _, y in pairs], axis=1))


def build(config):
    """(model, source, recall_length) of a built-in configuration; the recurrent weights W
    rescaled to the spectral radius ``rho``."""
    task, design, hidden, seed = config["task"], config["design"], config["hidden"], config["seed"]
    if task == "signal":
        model = rnn.EchoStateNetwork(1, hidden, 1, spectral_radius=config["rho"], seed=seed)
        if design == "elman":            # every weight trained: an Elman network on squared error
            for p in (model.U, model.W, model.b):
                p.requires_grad = True
        source = _Source(lambda b, s: _signal(b, s, config["length"]), seed, config["batch"])
        return model, source, 0
    if task == "chars":
        source = _Stream(seed, config["batch"], config["trunc"])
        n_in = n_out = len(source.vocab)
    elif task == "copy":
        shape = {"length": COPY_LENGTH, "delay": config["delay"], "n_symbols": COPY_SYMBOLS}
        source = _Source(lambda b, s: datasets.copy_task(b, seed=s, **shape), seed, config["batch"])
        n_in = n_out = COPY_SYMBOLS + 2
    else:
        source = _Source(lambda b, s: problems.running_parity(b, config["length"], seed=s),
                         seed, config["batch"])
        n_in = n_out = 2
    if design == "leaky":
        model = rnn.LeakyRNN(n_in, hidden, n_out, alpha="learned", seed=seed)
    else:
        model = rnn.tasks.SEQUENCE_DESIGNS[design](n_in, hidden, n_out, seed=seed)
    rescale(model, config["rho"])
    return model, source, COPY_LENGTH if task == "copy" else 0


def recurrent_weights(model):
    """The square recurrent matrices h(t-1) -> h(t): W, and the gates' Wf, Wg, Wo, Wu, Wr, trained
    or fixed (an echo state network's reservoir W); (H, H) with H the model's n_hidden, or a
    user's cell's one size of its state parts.  A model without state parts (a JordanRNN: its W
    reads y(t-1), square when n_out == H) has none, and an attention's Wa (it reads s(t-1) into
    the scores, not into s(t)) is none."""
    parts = getattr(model, "parts", None)
    if not parts:
        return []
    hidden = getattr(model, "n_hidden", None)
    if hidden is None and len(set(parts.values())) == 1:    # a user's cell: its parts' one size
        hidden = next(iter(parts.values()))
    every = getattr(model, "_named_state", model.named_parameters)   # fixed ones too (a reservoir)
    return [p for name, p in every()
            if name.split(".")[-1].startswith("W") and not name.split(".")[-1].startswith("Wa")
            and p.ndim == 2 and p.shape == (hidden, hidden)]


def check_rho(model, rho):
    """Refuse (BadRequest) a ``rho`` that would change nothing of a user's ``model``: one
    without a recurrent matrix :func:`rescale` finds (a cell whose matrices reading h(t-1) are
    not named W...), rather than train it as if rescaled."""
    if rho and not _recurrences(model):
        raise BadRequest(f"rho {rho}: {model.name} has no recurrent matrix to rescale; rho "
                         "rescales the square (H, H) parameters named W... (but Wa) that read "
                         "h(t-1), trained or fixed: leave rho at 0 for this model")


def rescale(model, rho):
    """Scale each recurrence so that its spectral radius is ``rho`` (a no-op for 0): each
    recurrent matrix of :func:`recurrent_weights` on its own, but for a DeepRNN of the mlp or
    skip form, whose path h(t-1) -> z(t) -> h(t) goes through a hidden layer: there the matrix
    of ∂h(t)/∂h(t-1) at h = 0 (biases zero, as initialized), W Wz (W Wz2 Wz1 with two hidden
    layers; + Ws for skip), gets the radius ``rho``, by scaling W (and Ws) by one factor; the
    hidden layers' Wz stay as they are.  An echo state network's ``spectral_radius`` is set
    to ``rho`` with its W, so that what it reports (its repr) is its W's radius."""
    if not rho:
        return
    with tg.no_grad():
        for scaled, matrix in _recurrences(model):
            radius = float(np.max(np.abs(np.linalg.eigvals(matrix))))
            if radius > 0:
                for p in scaled:
                    p.data = p.data * (rho / radius)
                if isinstance(model, rnn.EchoStateNetwork) and model.W in scaled:
                    model.spectral_radius = float(rho)


def _recurrences(model):
    """[(the parameters scaled together, the matrix whose spectral radius they set)] of
    :func:`rescale`."""
    if isinstance(model, rnn.DeepRNN) and model.kind != "stacked":
        path = np.eye(model.n_hidden)
        hidden = model.layers - 1       # z = tanh(Wz h); z1 = tanh(Wz1 h), z2 = tanh(Wz2 z1), ...
        for s in [""] if hidden == 1 else [str(i) for i in range(1, hidden + 1)]:
            path = getattr(model, "Wz" + s).data @ path
        path = model.W.data @ path
        if model.kind == "skip":
            return [([model.W, model.Ws], path + model.Ws.data)]
        return [([model.W], path)]
    return [([p], p.data) for p in recurrent_weights(model)]


class Run:
    """One training run: the model, its Trainer, its data, and what it has measured.

    ``update()`` does one update (a function of the configuration and the update number
    alone, so that a run replays bit for bit); ``views()`` computes every live view from the
    current parameters.
    """

    def __init__(self, config, model=None, task=None, initial=None, calls=None):
        self.config = config
        if model is None:
            self.model, self.source, self.recall_length = build(config)
        else:           # a user's model: its parameters (and its seeded Dropouts' calls) as given
            self.model, self.source, self.recall_length = model, task, 0
            model.load_state_dict(initial)
            for name, module in rnn.train._dropouts(model).items():
                module._calls = (calls or {}).get(name, module._calls)
            rescale(model, config["rho"])
        params = self.model.parameters()
        optimizer = (tg.optim.SGD(params, config["lr"]) if config["optimizer"] == "sgd"
                     else tg.optim.Adam(params, config["lr"]))
        self.trainer = rnn.Trainer(self.model, optimizer, clip=config["clip"] or None)
        self.steps = 0
        self.losses, self.norms, self.held, self.recall = [], [], [], []
        self.carried = {}
        self.views_data = None
        self.whole = None if self.source.stream else _uncut(self.model, self.source.held,
                                                              config["trunc"])

    @property
    def name(self):
        """The run's title: the design chosen, and the model's own name where it differs (the
        signal task's elman is an echo state network with every weight trained)."""
        design, own = self.config.get("design"), self.model.name
        label = own if design in (None, own) else f"{design}: {own} with every weight trained"
        return f"{label} ({self.model.n_hidden} hidden)" if hasattr(self.model, "n_hidden") else label

    def update(self):
        """Update number ``self.steps``: one chunk of ``trunc`` steps (the state carried,
        detached, across the chunks of one sequence); returns (loss per step, gradient norm)."""
        trunc, k = self.config["trunc"], self.steps
        if self.source.stream:
            i = k % self.source.chunks
            xs = self.source.xs[i * trunc:(i + 1) * trunc]
            ys = self.source.ys[i * trunc:(i + 1) * trunc]
        else:
            number, i = divmod(k, self._per_sequence())
            xs, ys = self.source.batch(number)
            if self.whole is None:      # chunks along time, as rnn.truncated_bptt cuts them
                steps = np.shape(xs)[0] if np.ndim(xs) else 0
                if -(-steps // trunc) != self._per_sequence():
                    # the chunks per sequence are counted on the held-out batch's length: a
                    # longer sequence's later chunks would never be trained on, a shorter one
                    # would have none to give
                    raise tg.ShapeError(
                        f"viz.playground: the task's sequences are cut into chunks of trunc "
                        f"{trunc} steps, {self._per_sequence()} per sequence as its held-out "
                        f"batch of {self._length()} steps has them, but the batch of update "
                        f"{k + 1} has {steps} steps ({-(-steps // trunc)} chunks): give "
                        "sequences of one length")
                xs, ys = rnn.train.chunks(self.model, xs, ys, trunc, "viz.playground")[i]
        calls = rnn.train._dropout_calls(self.model)
        try:
            run = self.model.run_for_loss(xs, ys, **({} if i == 0 else self.carried))
            # what the next chunk starts from, as the model's own truncated BPTT carries it
            # (the last state, and the output fed back or the skip's past states where it has them)
            after = self.model.carry(run) if self.whole is None else {}
            loss, norm = run.loss.item(), self.trainer.update(run.loss)
        except BaseException:   # a retry draws the same dropout masks as this attempt did
            for name, module in rnn.train._dropouts(self.model).items():
                module._calls = calls[name]
            raise
        del run
        # only an update that went through moves the state on: one that raised leaves the
        # state this chunk started from, so that a retry reads the same chunk from it
        self.carried = after
        self.steps += 1
        self.losses.append(loss / _terms(self.model, ys))
        self.norms.append(norm)
        return self.losses[-1], norm

    def _length(self):
        return len(self.source.held[0])

    def kept(self):
        """A function that undoes what :meth:`update` changes from now on (for a side-by-side
        update that fails partway): the model's parameters as :func:`_held` keeps them (the
        very arrays and versions) and its Dropouts' calls, the optimizer's state, the counts,
        the losses and norms measured, the carried state."""
        model = _held(self.model)
        optimizer = self.trainer.optimizer.state_dict()
        counts = (self.trainer.steps, self.steps, len(self.losses), len(self.norms), self.carried)

        def put_back():
            model()
            self.trainer.optimizer.load_state_dict(optimizer)
            self.trainer.steps, self.steps, losses, norms, self.carried = counts
            del self.losses[losses:], self.norms[norms:]
        return put_back

    def _per_sequence(self):
        """Updates per sequence: its chunks of ``trunc`` steps (1 for the character model,
        whose text is one long sequence, and for a model whose sequences are never cut)."""
        if self.source.stream or self.whole is not None:
            return 1
        return -(-self._length() // self.config["trunc"])

    def carried_arrays(self):
        """The state carried into the next chunk, as checkpoint arrays: "carried" (the last
        state; "carried/<part>" for a state of parts), "carried_y0" (the output fed back) and
        "carried_past/<i>" (a skip connection's past states; "carried_past/<i>/<part>"): the
        character model's always, a run over sequences' inside a sequence; {} when nothing is
        carried."""
        if not self.carried or not (self.source.stream or self.steps % self._per_sequence()):
            return {}
        return _flat_carry(self.carried, lambda v: v.data)

    def carried_expected(self):
        """name -> (shape, dtype) of what :meth:`carried_arrays` may give."""
        if self.whole is not None:
            return {}
        if self.source.stream:
            xs, ys, rows = self.source.xs[:1], self.source.ys[:1], None
        else:                   # one step of one held-out sequence; a state has batch rows
            xs, ys = (a[:1, :1] for a in self.source.held)
            rows = self.config["batch"]
        with tg.no_grad():
            carry = self.model.carry(self.model.run_for_loss(xs, ys))
        return _flat_carry(carry, lambda v: (v.shape if rows is None else (rows,) + v.shape[1:],
                                             v.data.dtype))

    def load_carried(self, arrays):
        carry = {}
        for name, value in arrays.items():
            key, _, rest = name.partition("/")
            if key == "carried":
                if rest:
                    carry.setdefault("h0", {})[rest] = tg.tensor(value)
                else:
                    carry["h0"] = tg.tensor(value)
            elif key == "carried_y0":
                carry["y0"] = tg.tensor(value)
            elif key == "carried_past":
                at, _, part = rest.partition("/")
                past = carry.setdefault("past", {})
                if part:
                    past.setdefault(int(at), {})[part] = tg.tensor(value)
                else:
                    past[int(at)] = tg.tensor(value)
        if "past" in carry:
            carry["past"] = [carry["past"][i] for i in sorted(carry["past"])]
        self.carried = carry

    def measure(self):
        """The held-out loss per step (and recall for the copy task) at this update."""
        xs, ys = self.source.held
        recall = None
        with tg.no_grad(), evaluating(self.model):      # dropout off, as in the views
            if self.source.stream:
                loss = rnn.stream_loss(self.model, xs, ys)
            else:
                loss = self.model.run_for_loss(xs, ys).loss.item() / _terms(self.model, ys)
            if self.recall_length:      # the symbols written back: argmax o(t) of the last steps
                n = self.recall_length
                o = np.stack([o.data for o in self.model.run(xs).outputs[-n:]])
                # a NaN or inf output names no symbol (argmax would call it symbol 0): no recall
                recall = (float(np.mean(o.argmax(-1) == ys[-n:])) if np.isfinite(o).all()
                          else math.nan)
        self.held.append((self.steps, loss))
        if recall is not None:
            self.recall.append((self.steps, recall))

    def digest(self):
        """sha256 of every parameter's bytes, in order: equal digests, equal parameters."""
        h = hashlib.sha256()
        for name, value in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def views(self):
        """Every live view of the probe sequence from the current parameters (a dict), in
        evaluation mode (see :func:`rnn.core.evaluating`); ``update`` says of which update
        (the curves are published more often than the views: the page says when they differ)."""
        with evaluating(self.model) as dropped:
            out = self._views()
        if dropped:
            out["notes"].append(DROPOUT_OFF.format(dropped))
        return out

    def _views(self):
        model, (xs, ys) = self.model, self.source.probe
        parts = getattr(model, "parts", {}) or {}
        part = "h" if "h" in parts else next(iter(parts), "h")
        out = {"part": part, "notes": [], "update": self.steps}
        if not all(np.all(np.isfinite(p.data)) for p in model.parameters()):
            out["notes"].append(f"update {self.steps}: the parameters are no longer finite (the "
                                "gradient exploded; clipping prevents it): reset")
            self.views_data = out
            return out
        run = run_model(model, xs, ys)
        nodes = part_nodes(run, part, "viz.playground")
        keys = sorted(nodes)
        h0 = None
        if run.loss is not None and parts and not any(
                n.requires_grad for chain in run.parts.values() for n in chain):
            # as the explorer: a state of fixed weights alone (an echo state network's
            # reservoir) needs no gradient, but ∂L/∂h(t) through them is what the views show:
            # the same run from h(0) = 0 requiring grad
            zeros = {p: tg.tensor(np.zeros(chain[0].shape, dtype=chain[0].dtype),
                                  requires_grad=True, name=p)
                     for p, chain in run.parts.items() if chain}
            try:
                again = run_model(model, xs, ys, h0=zeros)
            except tg.ConfigError:   # a run that takes no h0 (an encoder-decoder): none shown
                again = None
            if again is not None:
                run, h0 = again, zeros
                nodes = part_nodes(run, part, "viz.playground")
                keys = sorted(nodes)
                out["notes"].append(fixed_state_note(model, h0, "∂L/∂h(t), the connectivity "
                                                                "and the unrolled view's gradients"))
        if run.loss is not None and all(nodes[k].requires_grad for k in keys):
            grads = tg.grad(run.loss, [nodes[k] for k in keys], retain_graph=True)
            out["dldh"] = _nums([vector_norm(g) for g in grads])
            rows = None
            if len(run.losses) > PROBE_ROWS:     # 40 of the loss terms' own steps, first and last
                when = sorted(time_step(loss.scope) for loss in run.losses)
                rows = [when[i] for i in np.unique(np.linspace(0, len(when) - 1, 40).round()
                                                   .astype(int))]
            matrix = rnn.connectivity(model, xs, ys, part=part, h0=h0, rows=rows)
            if rows is not None:       # _binned takes the sampled rows alone, in order
                matrix = matrix[np.asarray(rows) - 1]
            height = max(time_step(loss.scope) for loss in run.losses)
            out["connectivity"] = _binned(matrix, rows, height)
            out["unrolled"] = self._unrolled(run)
        else:
            out["notes"].append(f"{model.name}: {part}(t) needs no gradient (no trained weight "
                                "computes it) and the run takes no h(0) that could require "
                                "grad: no gradient through time to show")
        if part in parts:
            jacs = rnn.jacobians(model, xs[:JACOBIAN_STEPS], part=part,
                                 ys=ys[:JACOBIAN_STEPS])
            finite = np.isfinite(jacs).all(axis=(1, 2))
            norms, radii = np.full(len(jacs), np.nan), np.full(len(jacs), np.nan)
            if finite.any():            # as the explorer: spectra where finite, gaps elsewhere
                norms[finite], radii[finite] = rnn.spectra(jacs[finite])
            eig = np.linalg.eigvals(jacs[-1]) if finite[-1] else np.full(len(jacs[-1]), np.nan)
            out["spectra"] = {"norm": _nums(norms), "radius": _nums(radii),
                              "eig": [_nums(eig.real), _nums(eig.imag)]}
            if finite.all():
                decay = rnn.lag_decay(jacs, max_lag=min(len(jacs), 30), ends=3)
                out["lag"] = {"norms": _nums(decay.norms), "rate": _num(decay.rate)}
            else:
                bad = np.flatnonzero(~finite) + 1
                out["lag"] = None
                out["notes"].append(f"the Jacobians ∂{part}(t)/∂{part}(t-1) are not finite at "
                                    f"{len(bad)} step(s) (first t={bad[0]}): no spectra there, "
                                    "no lag decay")
        self.views_data = out
        return out

    def _unrolled(self, run):
        """The unrolled view of the probe's last WINDOW steps, coloured by ‖∂L/∂v(t)‖, and for
        each drawn node its variable, step and norms (the click panel)."""
        variables = derive([run.loss], hide=BOOK_HIDDEN)
        steps = variables.steps
        keys = [k for k, n in variables.nodes.items() if n.requires_grad]
        grads = tg.grad(run.loss, [variables.nodes[k] for k in keys], retain_graph=True)
        norms = {k: float(vector_norm(g)) for k, g in zip(keys, grads)}
        g = new_digraph(f"{self.model.name}_unrolled", fit=False)
        shown = range(max(1, steps - WINDOW + 1), steps + 1)
        ids = draw_unrolled(g, variables, "u", getattr(self.model, "edge_label", None),
                            norms=norms, shown=shown,
                            backward=backward_chains(self.model, variables, BOOK_HIDDEN))
        nodes = {nid: {"name": name, "t": t,
                       "norm": _num(vector_norm(variables.nodes[(name, t)].data)),
                       "gnorm": None if (name, t) not in norms else _num(norms[(name, t)])}
                 for (name, t), nid in ids.items()}
        return {"svg": _svg_text(g), "nodes": nodes, "first": shown[0], "last": shown[-1]}


def _picks(values):
    """At most CURVE_POINTS indices of ``values``, in order: the first and the last, and of
    each of CURVE_POINTS // 2 - 1 equal runs of the ones between, the smallest and the largest
    (a value that is not finite counts as the largest: a blow-up shows as a gap).  Evenly
    spaced picks alone would drop a spike, or the lowest loss, between two of them."""
    n = len(values)
    if n <= CURVE_POINTS:
        return range(n)
    v = np.fromiter(values, dtype=float, count=n)
    v = np.where(np.isfinite(v), v, np.inf)
    picks = {0, n - 1}
    edges = np.linspace(1, n - 1, CURVE_POINTS // 2).round().astype(int)
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b > a:
            picks.update((a + int(np.argmin(v[a:b])), a + int(np.argmax(v[a:b]))))
    return sorted(picks)


def _curve(pairs):
    """At most CURVE_POINTS of the (step, value) pairs (:func:`_picks`)."""
    return [[pairs[i][0], _num(pairs[i][1])] for i in _picks([value for _, value in pairs])]


def _series(values):
    """At most CURVE_POINTS [update, value] of the values of updates 1, 2, ... (:func:`_picks`)."""
    return [[i + 1, _num(values[i])] for i in _picks(values)]


# ------------------------------------------------------------------ the engine thread

class Engine:
    """The one training thread and the snapshot the requests read.

    Requests call :meth:`command` (which only queues) and :meth:`snapshot` (which copies bytes
    under a short lock); everything that touches a model runs in the thread.
    """

    def __init__(self, config, model=None, task=None, out=None, release=lambda: None):
        self.release = release                  # counts the engine out of one BLAS thread
        self.custom = model is not None
        # a user's model keeps these whatever a reset asks (the page shows them, disabled)
        self.own = {k: config[k] for k in OWN_SETTINGS + ("task",)} if self.custom else None
        self.user_model, self.user_task = model, task
        self.initial = model.state_dict() if model is not None else None
        self.initial_calls = rnn.train._dropout_calls(model) if model is not None else None
        # an echo state network's spectral_radius as given: a reset puts it back with its W
        self.initial_radius = (model.spectral_radius if isinstance(model, rnn.EchoStateNetwork)
                               else None)
        self.out = out
        # the checkpoints in ``out`` are this engine's once it saved or resumed them: before,
        # they are an earlier run's, which the first save keeps aside (never overwritten)
        self.owns_out = False
        self.kept = []                          # the earlier run's files, as kept
        self.lock = threading.Lock()            # the snapshot and the command queue
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.commands = []
        self.version = 0
        self.error = None
        self.playing = False
        self.runs = []
        self.refresh_seconds = REFRESH_SECONDS
        self._last_views = time.thread_time()
        self._snapshot = b"{}"
        self._reset(config)
        self._publish(views=True)
        self.thread = threading.Thread(target=self._loop, name="tinygraph-playground", daemon=True)
        self.thread.start()

    # requests --------------------------------------------------------
    def command(self, name, config=None):
        with self.lock:
            self.commands.append((name, config))
        self.wake.set()

    def snapshot(self):
        with self.lock:
            return self._snapshot

    def reset_config(self, config):
        """``config`` (checked) as a reset of this engine takes it: for a model given from
        Python its design and task as they are (the page cannot show them), and a hidden size,
        delay or length other than the run's refused (BadRequest): they would not change the
        model or the task's data, only what the page says of them."""
        if not self.custom:
            return config
        changed = [k for k in ("hidden", "delay", "length") if config[k] != self.own[k]]
        if changed:
            k = changed[0]
            raise BadRequest(f"{k} {config[k]!r}: a model given from Python keeps its own "
                             f"({k} {self.own[k]!r}); lr, clip, batch, trunc, seed, optimizer "
                             "and rho apply to it")
        check_rho(self.user_model, config["rho"])
        return dict(config, design=self.own["design"], task=self.own["task"])

    def stop(self, timeout=None):
        """Stop the thread: it ends after the update in progress, which this waits for (up to
        ``timeout`` s; None, the default: as long as it takes), so that nothing changes the
        model after stop() returned; the BLAS count is put back then, also when the wait is
        interrupted (a second Ctrl-C)."""
        self.stopping.set()
        self.wake.set()
        try:
            if self.thread is not threading.current_thread():   # (a task that stops it)
                self.thread.join(timeout)
        finally:
            self.release()

    # the thread ------------------------------------------------------
    def _reset(self, config):
        """New runs of ``config``; all or nothing: one that fails (or is interrupted) leaves
        the runs and the user's model as they were."""
        put_back = None if self.user_model is None else _held(self.user_model)
        radius = getattr(self.user_model, "spectral_radius", None)
        try:
            if self.initial_radius is not None:         # W goes back to the initial one
                self.user_model.spectral_radius = self.initial_radius
            runs = [Run(config, self.user_model, self.user_task, self.initial, self.initial_calls)]
            if config["compare"]:
                runs.append(Run(dict(config, design=config["compare"], compare="")))
        except BaseException:
            if put_back is not None:
                put_back()
            if self.initial_radius is not None:
                self.user_model.spectral_radius = radius
            raise
        self.runs = runs
        self.refresh_seconds = REFRESH_SECONDS

    def _loop(self):
        try:
            self._train()
        finally:                # whatever ends the thread, the BLAS count is put back
            self.release()

    def _train(self):
        self._last_views = time.thread_time()          # this thread's own clock
        while not self.stopping.is_set():
            with self.lock:
                commands, self.commands = self.commands, []
            self.wake.clear()
            steps = 0
            for name, config in commands:
                try:
                    steps += self._apply(name, config)
                except Exception as e:      # noqa: BLE001 - shown in the page; the thread lives on
                    self._failed(e)
            if self.playing:
                steps = max(steps, 1)
            try:
                if steps == 0:
                    if commands:
                        self._publish(views=True)
                    self.wake.wait(0.5)
                    continue
                for _ in range(steps):
                    if self.stopping.is_set():
                        return
                    self._one_update()
                if not self.playing:
                    self._publish(views=True)
            except Exception as e:          # noqa: BLE001 - e.g. a user's task that raises
                self._failed(e)

    def _failed(self, e):
        """Show what went wrong in the page and pause; the server and this thread go on."""
        self.playing = False
        self.error = str(e) if isinstance(e, tg.TinygraphError) else f"{type(e).__name__}: {e}"
        self._publish(views=False)

    def _apply(self, name, config):
        """A queued command; returns the number of updates it asks for."""
        if name == "play":
            self.playing = True
        elif name == "pause":
            self.playing = False
        elif name == "step":
            self.playing = False
            return 1
        elif name == "reset":
            self.playing = False
            self.error = None
            self._reset(config if config is not None else self.runs[0].config)
        elif name == "save":
            self.save()
        elif name == "resume":
            self.playing = False
            self.resume()
        return 0

    def _one_update(self):
        # a run's curves start where it starts: a reset (or resume) and a play taken in one go
        # publish no views in between, and the first held-out point would be that of a later update
        for run in self.runs:
            if not run.held:
                run.measure()
        # side by side the runs update together or not at all: if one fails, those before it
        # are put back, so that they stay at the same update
        kept = [run.kept() for run in self.runs] if len(self.runs) > 1 else []
        for k, run in enumerate(self.runs):
            try:
                run.update()
            except BaseException:
                for put_back in kept[:k]:
                    put_back()
                raise
        # the thread's own CPU time, so that a loaded machine does not stretch the interval
        if time.thread_time() - self._last_views >= self.refresh_seconds:
            started = time.thread_time()
            self._publish(views=True)
            # the views take at most about VIEW_SHARE of the thread's time
            self.refresh_seconds = max(REFRESH_SECONDS, (time.thread_time() - started)
                                       * (1 - VIEW_SHARE) / VIEW_SHARE)
        elif time.perf_counter() - self._last_publish >= PUBLISH_SECONDS:
            self._publish(views=False)

    def _publish(self, views):
        runs = []
        for run in self.runs:
            if views:
                if not run.held or run.held[-1][0] != run.steps:
                    run.measure()
                try:
                    run.views()
                except Exception as e:      # noqa: BLE001 - a view that cannot be computed says why
                    run.views_data = {"notes": [f"the views failed: {type(e).__name__}: {e}"],
                                      "update": run.steps}
            runs.append({"name": run.name, "config": run.config, "steps": run.steps,
                         "loss": _series(run.losses), "gnorm": _series(run.norms),
                         "held": _curve(run.held), "recall": _curve(run.recall),
                         "views": run.views_data, "digest": run.digest()})
        self._last_publish = time.perf_counter()
        if views:
            self._last_views = time.thread_time()
        with self.lock:
            self.version += 1
            state = {"version": self.version, "playing": self.playing, "custom": self.custom,
                     "config": self.runs[0].config, "error": self.error,
                     "can_save": self.out is not None, "refresh_seconds": round(self.refresh_seconds, 2),
                     "runs": runs}
            self._snapshot = json.dumps(state, separators=(",", ":"), allow_nan=False).encode()

    # checkpoints -----------------------------------------------------
    def _path(self, i):
        return os.path.join(self.out, SAVE_NAME.format(i))

    def save(self):
        """Write every run's checkpoint into ``out``, each atomically (rnn.save_training).

        The files are written one after the other, so a save that fails partway leaves some
        new and some from an earlier save; every file carries the same mark of its save (a
        digest of every run's configuration, step and parameters), and :meth:`resume`
        refuses a set whose marks differ."""
        if self.out is None:
            raise BadRequest("no --out folder was given: nothing can be saved")
        mark = hashlib.sha256(json.dumps([[run.config, run.steps, run.digest()] for run in self.runs],
                                         sort_keys=True).encode()).hexdigest()
        if not self.owns_out:
            self._keep_earlier()
        for i, run in enumerate(self.runs):
            rnn.save_training(self._path(i), run.trainer,
                              {"losses": np.array(run.losses), "norms": np.array(run.norms),
                               **run.carried_arrays()},
                              meta={"config": run.config, "steps": run.steps, "runs": len(self.runs),
                                    "save": mark})
        self.owns_out = True

    def _keep_earlier(self):
        """Move the checkpoints an earlier playground left in ``out`` (``playground_<i>.npz``)
        aside, together, to the first free ``playground_<i>.previous-<n>.npz``: a new run's
        first save (also the one when the server stops) would overwrite them otherwise.
        Their new names are added to :attr:`kept`."""
        pattern = re.compile(re.escape(SAVE_NAME).replace(r"\{\}", r"(\d+)") + "$")
        found = sorted(name for name in os.listdir(self.out) if pattern.match(name))
        if not found:
            return
        n = 1
        while any(os.path.exists(os.path.join(self.out, f"{name[:-4]}.previous-{n}.npz"))
                  for name in found):
            n += 1
        for name in found:
            kept = os.path.join(self.out, f"{name[:-4]}.previous-{n}.npz")
            os.rename(os.path.join(self.out, name), kept)
            self.kept.append(kept)

    def resume(self):
        """Read the checkpoints that :meth:`save` wrote; nothing changes unless all load."""
        if self.out is None:
            raise BadRequest("no --out folder was given: nothing to resume")
        first = self._path(0)
        if not os.path.exists(first):
            raise BadRequest(f"no checkpoint {first} to resume")
        user = tg.read_meta(first).get("user", {})
        config = check_config(user.get("config"), self.custom) if isinstance(user, dict) else None
        if config is None:
            raise tg.CheckpointError(f"'{first}' is not a playground checkpoint")
        mark = user.get("save")
        saved = self.runs, self.refresh_seconds
        # the new runs train the user's own model (if given), which they set to its initial
        # parameters and then to the file's: a resume that fails (in _reset too) puts back its
        # very arrays, versions (graphs built before still back-propagate) and Dropout calls
        model = self.user_model
        put_back = None if model is None else _held(model)
        try:
            self._reset(config)
            for i, run in enumerate(self.runs):
                carried = run.carried_expected()
                arrays, meta = rnn.load_training(self._path(i), run.trainer,
                                                 {"losses": ((None,), np.float64),
                                                  "norms": ((None,), np.float64),
                                                  **carried})
                given = sorted(k for k in arrays if k.startswith("carried"))
                if given and len(given) != len(carried):    # the run would carry zeros for them
                    raise tg.CheckpointError(_partly_carried(self._path(i), given, carried))
                if meta.get("save") != mark:
                    raise tg.CheckpointError(
                        f"'{self._path(i)}' was written by another save than '{first}' (a save "
                        "that failed partway?): the runs would resume from different moments")
                steps = meta.get("steps")
                if steps != len(arrays["losses"]) or steps != run.trainer.steps:
                    raise tg.CheckpointError(f"'{self._path(i)}': step {steps!r} disagrees "
                                             "with its losses")
                run.steps, run.losses, run.norms = steps, arrays["losses"].tolist(), arrays["norms"].tolist()
                # the run goes on from the state it had reached: the character model's in its
                # text, a run over sequences' inside a sequence
                if steps % run._per_sequence() and not any(k.startswith("carried") for k in arrays):
                    raise tg.CheckpointError(f"'{self._path(i)}' stopped inside a sequence (after "
                                             f"update {steps}) but holds no carried state")
                run.load_carried(arrays)
        except BaseException:
            self.runs, self.refresh_seconds = saved
            if put_back is not None:
                put_back()
            raise
        self.owns_out = True        # the run goes on from these files: a save replaces them


def _partly_carried(path, given, expected):
    """Why a checkpoint holding only some of the carried arrays ``expected`` (its own:
    ``given``) cannot be resumed: what is missing, what it means and where the file is likely
    from."""
    missing = sorted(k for k in expected if k not in given)
    text = (f"'{path}' holds only some parts of the carried state: "
            f"{[k.split('/', 1)[-1] for k in given]}, not {[k.split('/', 1)[-1] for k in missing]} "
            "(the run would go on from zeros for them)")
    old = [k for k in missing if k == "carried_y0" or k.startswith("carried_past/")]
    if old and all(k == "carried" or k.startswith("carried/") for k in given) \
            and set(missing) == set(old):
        what = []
        if "carried_y0" in old:
            what.append("carried_y0 (the output y(t-1) fed back into the next chunk's first step)")
        if any(k.startswith("carried_past/") for k in old):
            what.append("carried_past/<i> (the skip connection's past states)")
        return (f"{text}: missing {' and '.join(what)}. The file was saved inside a sequence by "
                "a playground older than these arrays, which carried only the last state from "
                "chunk to chunk (its next chunk restarted the fed-back output or the past states "
                "from their start values, a loss other than truncated BPTT's); it cannot go on "
                "as this playground trains. Reset and train again, or resume a save made at "
                "the end of a sequence (which holds no carried state)")
    return f"{text}; a file edited by hand?"


def _held(model):
    """A function that puts ``model`` back as it is now: a tg.Module's parameters by
    :meth:`tg.Module._snapshot` (the very arrays, values and versions: graphs built before
    still back-propagate) and its Dropouts' calls; a model that is not a tg.Module by its
    own state_dict."""
    if not isinstance(model, tg.Module):
        state = model.state_dict()
        return lambda: model.load_state_dict(state)
    put_back, calls = model._snapshot(), rnn.train._dropout_calls(model)

    def put_back_all():
        put_back()
        for name, module in rnn.train._dropouts(model).items():
            module._calls = calls[name]
    return put_back_all


# ------------------------------------------------------------------ the server

class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tinygraph-playground"
    protocol_version = "HTTP/1.1"
    timeout = 30                                # an idle or stalled connection is dropped

    def log_message(self, format, *args):       # quiet: the terminal shows the URL only
        pass

    def _send(self, status, body, kind="application/json"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status, message):
        self._send(status, json.dumps({"error": message}))

    def _allowed(self, query):
        app = self.server.app
        host = self.headers.get("Host", "")
        if host not in app.hosts:
            self._refuse(403, f"Host {host!r} is not this server")
            return False
        token = query.get("token", [""])[-1] or self.headers.get("X-Token", "")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), app.token.encode()):
            self._refuse(403, "a missing or wrong token: open the URL the server printed")
            return False
        return True

    def _parse(self):
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        return parts.path, query

    def do_GET(self):
        try:
            path, query = self._parse()
            if not self._allowed(query):
                return
            if path in ASSETS:
                name, kind = ASSETS[path]
                return self._send(200, self.server.app.asset(name), kind)
            if path == "/api/state":
                return self._send(200, self.server.app.engine.snapshot())
            self._refuse(404, f"no such page {path!r}")
        except (ValueError, UnicodeError) as e:
            self._refuse(400, f"malformed request: {e}")

    def do_POST(self):
        try:
            path, query = self._parse()
            if not self._allowed(query):
                return
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                self.close_connection = True
                return self._refuse(400, f"a body of at most {MAX_BODY} bytes, with its "
                                         "Content-Length, is expected")
            raw = self.rfile.read(int(length)) if int(length) else b"{}"
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return self._refuse(400, f"the body is not JSON: {e}")
            if not isinstance(body, dict):
                return self._refuse(400, "the body must be a JSON object")
            app = self.server.app
            if path == "/api/reset":
                config = body.get("config")
                if config is not None:
                    if app.engine.custom and isinstance(config, dict):   # missing: the run's own
                        config = dict(app.engine.own, **config)
                    config = app.engine.reset_config(check_config(config, app.engine.custom))
                app.engine.command("reset", config)
            elif path in ("/api/play", "/api/pause", "/api/step"):
                app.engine.command(path.rsplit("/", 1)[1])
            elif path in ("/api/save", "/api/resume"):
                if app.engine.out is None:
                    raise BadRequest("no --out folder was given: the run cannot be saved or resumed")
                app.engine.command(path.rsplit("/", 1)[1])
            else:
                return self._refuse(404, f"no such command {path!r}")
            self._send(200, json.dumps({"ok": True}))
        except BadRequest as e:
            self._refuse(400, str(e))
        except (ValueError, UnicodeError) as e:
            self._refuse(400, f"malformed request: {e}")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):     # a broken client is not our problem
        pass


class Playground:
    """A running playground: ``url`` (with its token), ``stop()``; in Jupyter the page inline.

    Made by :func:`playground`; ``serve_forever()`` blocks until Ctrl-C (the command line).
    With ``one_blas_thread=True`` numpy's OpenBLAS runs with one thread while it runs, as the
    command's training does (:func:`viz.blas.hold_one_blas_thread`; the count is process-wide)
    and ``stop()`` puts the count back (the last playground to stop, when several hold it);
    by default the process's BLAS count is left alone (the ``tinygraph`` command holds it
    for its whole process itself, :func:`viz.cli.main`).
    """

    def __init__(self, config, model=None, task=None, port=0, out=None, one_blas_thread=False):
        try:                 # first: a port taken leaves no training thread and no folder behind
            self.server = _Server(("127.0.0.1", port), _Handler)
        except OSError as e:
            raise tg.ConfigError(f"viz.playground: cannot listen on 127.0.0.1:{port}: "
                                 f"{e.strerror or e}; give another port (--port), or 0 for a "
                                 f"free one") from None
        release = hold_one_blas_thread() if one_blas_thread else (lambda: None)
        # ``out``'s lock (the tinygraph commands' own, viz.cli._locked) until stop(): a second
        # playground (thread or process) or command on the folder is refused, not left to
        # overwrite this one's checkpoints or move them aside under it
        self._out_lock = contextlib.ExitStack()
        try:
            if out is not None:
                out = os.path.abspath(out)
                os.makedirs(out, exist_ok=True)
                from .cli import _locked     # (viz.cli imports this module)
                try:
                    self._out_lock.enter_context(_locked(out, "out", tg.ConfigError))
                except tg.ConfigError as e:
                    raise tg.ConfigError(f"viz.playground: {e}") from None
            self.token = secrets.token_urlsafe(24)
            self.engine = Engine(config, model, task, out, release)
        except BaseException:
            self._out_lock.close()
            release()
            self.server.server_close()
            raise
        self.server.app = self
        self.port = self.server.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self._assets = {}
        hash_ = urllib.parse.urlencode({k: v for k, v in config.items() if v != ""})
        self.url = f"http://127.0.0.1:{self.port}/?token={self.token}#{hash_}"
        self._thread = None
        self._stopped = False

    def asset(self, name):
        if name not in self._assets:
            with open(os.path.join(_ASSETS, name), "rb") as f:
                text = f.read()
            self._assets[name] = text.replace(b"{{TOKEN}}", self.token.encode())
        return self._assets[name]

    def start(self):
        """Serve from a background thread; returns self."""
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="tinygraph-playground-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serve in this thread until Ctrl-C (which stops within the 0.2 s poll)."""
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.stop()

    def stop(self):
        """Stop serving and training (saving the run into ``out`` first, if given).  Returns
        once the update in progress is done: after it nothing changes the model."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread = None
        self.server.server_close()
        self.engine.stop()
        if not self.engine.thread.is_alive():
            with self._out_lock:     # released after the save; a second stop() saves nothing
                if self.engine.out is not None and not self._stopped:
                    self._stopped = True
                    self.engine.save()

    def __repr__(self):
        return f"Playground({self.url})"

    def _repr_html_(self):
        src = self.url.replace("&", "&amp;").replace('"', "&quot;")
        return f'<iframe src="{src}" style="width:100%;height:900px;border:1px solid #ddd"></iframe>'


def _user_source(model, task, batch, seed):
    """The data of a user's model: ``task(batch, seed) -> (xs, ys)``; by default the copy task
    over the model's vocabulary (n_in == n_out == symbols + 2)."""
    if task is None:
        n = getattr(model, "n_in", None)
        if n is None or n < 3 or getattr(model, "n_out", None) != n:
            raise tg.ConfigError("viz.playground: without a task the model must read and write "
                                 "the copy task's ids (n_in == n_out >= 3); give "
                                 "task(batch, seed) -> (xs, ys)")
        return _Source(lambda b, s: datasets.copy_task(b, length=COPY_LENGTH, delay=5,
                                                       n_symbols=n - 2, seed=s), seed, batch)
    if not callable(task):
        raise tg.ConfigError(f"viz.playground: task must be a function (batch, seed) -> (xs, ys), "
                             f"got {type(task).__name__}")
    return _Source(lambda b, s: task(b, s), seed, batch)


def playground(model=None, task=None, port=0, out=None, open_browser=False,
               one_blas_thread=False, **config):
    """Start the playground; returns a :class:`Playground` (``url``, ``stop()``).

    Parameters
    ----------
    model : an rnn design or Cell of your own, optional; trained in place (reset restores its
        parameters as given, W rescaled to ``rho`` when ``rho`` is set (an echo state
        network's ``spectral_radius`` then says ``rho``), and the calls of its
        seeded tg.Dropout modules, so that a reset run draws the same masks again)
    task : callable (batch, seed) -> (xs, ys), optional: your data for ``model`` (sequences of
        one length: there is no mask, and a third array given is refused); without a
        model, the name of a built-in task ("copy", "parity", "chars", "signal")
    port : int, 0 for a free port; out : folder for checkpoints, optional
    open_browser : bool
    one_blas_thread : bool, default False.  True: until ``stop()`` numpy's OpenBLAS runs with
        one thread, as in ``tinygraph playground`` (faster training of small matrices on a busy
        machine), unless a BLAS thread variable such as ``OPENBLAS_NUM_THREADS`` is set.  The
        count is process-wide: for that time every other thread of your process computes with
        it too (a matrix product's last bits depend on it), so it is not done unless asked.
    **config : fields of :data:`DEFAULTS` (design, task, delay, hidden, rho, lr, clip, batch,
        trunc, seed, compare); with your model, lr, clip, batch, trunc, seed, optimizer and rho
        only (the others are the built-in models' and tasks': a ConfigError)
    """
    if not isinstance(one_blas_thread, bool):
        raise tg.ConfigError(f"viz.playground: one_blas_thread must be True or False, got "
                             f"{one_blas_thread!r}")
    if model is None and isinstance(task, str):      # a built-in task by name
        config["task"], task = task, None
    if model is None and task is not None:
        raise tg.ConfigError("viz.playground: a task of your own needs your model too")
    if model is not None:
        if not callable(getattr(model, "run_for_loss", None)):
            raise tg.DTypeError(f"viz.playground: needs an rnn design or Cell, got "
                                f"{type(model).__name__}")
        given = [k for k in OWN_SETTINGS if k in config]
        if given:            # they would change nothing but what the page says of the run
            raise tg.ConfigError(f"viz.playground: {given[0]}= is a setting of the built-in "
                                 f"models and tasks; your model {model.name!r} has its own, and "
                                 "your task its own data: leave it out (lr, clip, batch, trunc, "
                                 "seed, optimizer and rho apply to your model)")
        own = {"rho": 0.0, "design": model.name, "task": "custom"}
        hidden = getattr(model, "n_hidden", None)        # shown on the page, as it is
        if isinstance(hidden, int) and not isinstance(hidden, bool) and hidden >= 1:
            own["hidden"] = hidden
        config = dict(own, **config)
    try:
        config = check_config(config, custom=model is not None)
        if model is not None:
            check_rho(model, config["rho"])
    except BadRequest as e:
        raise tg.ConfigError(f"viz.playground: {e}") from None
    if model is not None:
        task = _user_source(model, task, config["batch"], config["seed"])
    app = Playground(config, model, task, port, out, one_blas_thread=one_blas_thread).start()
    if open_browser:
        webbrowser.open(app.url)
    return app


# ------------------------------------------------------------------ the command line

def add_parser(sub, whole):
    """The ``playground`` subcommand of ``tinygraph`` (``whole`` parses a bounded int)."""
    p = sub.add_parser("playground", help="train a recurrent network live in the browser and "
                                          "watch BPTT happen")
    p.add_argument("--port", type=lambda t: whole(t, 0, 65535), default=0,
                   help="port on 127.0.0.1 (default 0: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL, do not open it")
    p.add_argument("--out", help="folder for the run's checkpoint (save / resume)")
    p.set_defaults(run=cmd_playground)


def cmd_playground(args):
    app = Playground(dict(DEFAULTS), port=args.port, out=args.out).start()
    try:                        # from here on Ctrl-C stops the server (and saves into --out)
        print(f"tinygraph playground: {app.url}", flush=True)
        print("Ctrl-C stops it", flush=True)
        if not args.no_browser:
            webbrowser.open(app.url)
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    for kept in app.engine.kept:
        print(printable(f"tinygraph playground: kept the earlier run's checkpoint as {kept}"),
              flush=True)
    print("tinygraph playground: stopped", flush=True)
