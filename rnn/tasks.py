"""The training tasks of ``tinygraph train`` and the demo, and their checkpoints.

Each task owns a model, a :class:`~rnn.train.Trainer` and its data: ``step(k)``
does update number ``k`` (a function of ``k`` and the saved state alone, so a
resumed run repeats an uninterrupted one exactly), ``held_out_loss()`` measures
the model on data it never trains on, and ``report(seed)`` says in a few lines
what it learnt.  :func:`run_training` drives a task, saving checkpoints as it goes
(:class:`Checkpoints`: every N updates or every few seconds) and stopping cleanly when
asked (:class:`TrainingStopped`); :func:`save_checkpoint` and :func:`load_checkpoint`
write and read everything a resume needs.
"""

import time

import numpy as np

import tinygraph as tg

from . import datasets
from .models import GRU, LSTM, BidirectionalRNN, ElmanRNN, EncoderDecoder, SequenceToOne
from . import problems
from .core import evaluating
from .esn import EchoStateNetwork
from .leaky import LeakyRNN
from .memory import MemoryNetwork
from .recursive import RecursiveNet
from .train import Trainer, load_training, save_training, stream_loss


HELD_OUT = 0.1   # the fraction at the end of the text that the character model never trains on


class Task:
    """What every task shares: by default its model and optimizer are its whole state, with
    nothing else to checkpoint."""

    def extra_state(self):
        """The task's own arrays for the checkpoint (e.g. a carried state)."""
        return {}

    def extra_expected(self):
        """name -> (shape, dtype) of those arrays, checked before a resume reads them."""
        return {}

    def load_extra(self, arrays):
        """Restore what ``extra_state`` gave."""


class CharTask(Task):
    """Character-level language model (ElmanRNN) on the bundled harbour text, truncated BPTT.

    The last 10% of the text is held out.  The rest is read as one stream in chunks of
    ``chunk`` characters, the state carried from chunk to chunk and reset at each pass.
    Adam's learning rate falls from ``lr`` to ``lr / 20`` along a half cosine over the
    first ``anneal`` updates and then stays: a function of the update number alone, so a
    resumed run repeats an uninterrupted one exactly.
    """

    name = "chars"
    unit = "nats/char"
    default_steps = 12_000

    def __init__(self, seed, hidden=128, batch=1, chunk=100, lr=1e-2, anneal=default_steps,
                 corpus="harbour"):
        self.corpus = corpus
        self.vocab, ids = datasets.char_corpus(corpus)
        self.train_ids, self.held_ids = datasets.split(ids, HELD_OUT)
        self.xs, self.ys = datasets.stream_batches(self.train_ids, batch)
        self.batch, self.chunk, self.lr, self.anneal = batch, chunk, lr, anneal
        self.chunks_per_pass = len(self.xs) // chunk
        self.window = self.chunks_per_pass      # the training loss is reported over one pass
        self.model = ElmanRNN(len(self.vocab), hidden, len(self.vocab), seed=seed)
        self.trainer = Trainer(self.model, lr=lr, clip=5.0)
        self.state = None
        self.reference = (f"ln({len(self.vocab)}): a uniform guess", float(np.log(len(self.vocab))))

    def learning_rate(self, k):
        """Adam's learning rate at update ``k`` (0-based)."""
        done = min(k, self.anneal) / self.anneal
        return self.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * done)))

    def step(self, k):
        """Update number ``k`` (0-based): one chunk; returns the loss per character."""
        i = k % self.chunks_per_pass
        if i == 0:
            self.state = None
        sl = slice(i * self.chunk, (i + 1) * self.chunk)
        self.trainer.optimizer.lr = self.learning_rate(k)
        loss, _, carried = self.trainer.chunk(self.xs[sl], self.ys[sl],
                                              {} if self.state is None else {"h0": self.state})
        self.state = carried["h0"]
        return loss / self.chunk

    def held_out_loss(self):
        """Loss per character on the held-out end of the text."""
        return stream_loss(self.model, self.held_ids[:-1], self.held_ids[1:])

    def extra_state(self):
        return {} if self.state is None else {"carried_h": self.state.data}

    def extra_expected(self):
        return {"carried_h": ((self.batch, self.model.n_hidden), self.model.dtype)}

    def load_extra(self, arrays):
        self.state = tg.tensor(arrays["carried_h"]) if "carried_h" in arrays else None

    def sample_text(self, seed, length=300, temperature=0.6):
        prompt = self.vocab.encode("The ")
        ids = self.model.generate(prompt, length, temperature=temperature, seed=seed)
        return "The " + self.vocab.decode(ids)

    def report(self, seed):
        return [f"sample (temperature 0.6, seed {seed}):\n{self.sample_text(seed)}",
                f"sample (temperature 1: the model's own distribution, seed {seed}):\n"
                f"{self.sample_text(seed, 200, temperature=1.0)}"]

    def probe(self):
        """A short labelled sequence to draw and to measure gradient flow on."""
        return (self.xs[:20, :1], self.ys[:20, :1]), {}


class YearTask(Task):
    """The chapter's year task: SequenceToOne reads a sentence and names its year."""

    name = "year"
    unit = "nats/sentence"
    default_steps = 300

    def __init__(self, seed, hidden=32, batch=32, lr=2e-2):
        self.data = datasets.year_task(512, seed=seed)
        self.test = datasets.year_task(256, seed=seed + 1000, exclude=self.data.sentences)
        self.batch = batch
        self.window = -(-len(self.data.labels) // batch)     # one pass over the sentences
        n_words = len(self.data.vocab)
        self.model = SequenceToOne(n_words, hidden, len(self.data.years), seed=seed)
        self.trainer = Trainer(self.model, lr=lr, clip=5.0)
        self.reference = ("ln(classes): a uniform guess", float(np.log(len(self.data.years))))

    def step(self, k):
        n = self.data.xs.shape[1]
        start = (k * self.batch) % n
        cols = np.arange(start, start + self.batch) % n
        mask = self.data.mask[:, cols]
        steps = int(mask.sum(axis=0).max())
        loss, _ = self.trainer.step(self.data.xs[:steps, cols], self.data.labels[cols],
                                    mask=mask[:steps])
        return loss

    def held_out_loss(self):
        """Mean loss per sentence on sentences never trained on."""
        with tg.no_grad(), evaluating(self.model):
            return self.model.loss(self.test.xs, self.test.labels, mask=self.test.mask).item()

    def accuracy(self):
        with tg.no_grad(), evaluating(self.model):
            pred = self.model.predict(self.test.xs, mask=self.test.mask)
        return float(np.mean(pred == self.test.labels))

    def report(self, seed):
        return [f"held-out accuracy: {self.accuracy():.1%} on {len(self.test.labels)} sentences"]

    def probe(self):
        steps = int(self.data.mask[:, 0].sum())
        return (self.data.xs[:steps, :1], self.data.labels[:1]), {}


SEQUENCE_DESIGNS = {"elman": ElmanRNN, "lstm": LSTM, "gru": GRU}


def n_parameters(model):
    return sum(p.size for p in model.parameters())


def matched_elman_hidden(n_params, n_in, n_out):
    """The hidden size H whose ElmanRNN(n_in, H, n_out) has the parameter count nearest to
    ``n_params``: H^2 + (n_in + n_out + 1) H + n_out parameters."""
    k = n_in + n_out + 1
    root = (-k + np.sqrt(k * k + 4 * (n_params - n_out))) / 2
    return min((max(1, int(np.floor(root))), int(np.ceil(root))),
               key=lambda h: abs(h * h + k * h + n_out - n_params))


class DrawnTask(Task):
    """A task whose batches are drawn afresh for every update from ``data(batch, seed)``
    (``shape`` its keyword arguments), measured on one held-out batch of 256 never trained on."""

    unit = "nats/step"
    data = None

    def _train(self, model, seed, batch, lr):
        self.model, self.seed, self.batch = model, seed, batch
        self.trainer = Trainer(model, lr=lr, clip=1.0)
        self.held = self.data(256, seed=2**40 + seed, **self.shape)

    def step(self, k):
        """Update number ``k`` (0-based) on a fresh batch; returns the loss per step."""
        xs, ys = self.data(self.batch, seed=self.seed * 100_003 + k, **self.shape)
        loss, _ = self.trainer.step(xs, ys)
        return loss / self.steps_of(ys)

    def held_out_loss(self):
        """Loss per step on the held-out batch (in evaluation mode, as every held-out
        measure here: :func:`rnn.core.evaluating`)."""
        xs, ys = self.held
        with tg.no_grad(), evaluating(self.model):
            return self.model.loss(xs, ys).item() / self.steps_of(ys)

    def steps_of(self, ys):
        """What a loss is divided by to give it per step: the number of time steps."""
        return len(ys)

    def probe(self):
        return self.data(1, seed=1, **self.shape), {}


class CopyTask(DrawnTask):
    """A long-memory task: a sequence design (ElmanRNN by default) copies ``length`` symbols
    back after a delay of ``delay`` steps."""

    name = "copy"
    default_steps = 3000
    data = staticmethod(datasets.copy_task)

    def __init__(self, seed, hidden=64, batch=32, lr=5e-3, length=3, delay=10, n_symbols=8,
                 design="elman", options=None):
        self.window = 50
        self.shape = {"length": length, "delay": delay, "n_symbols": n_symbols}
        self._train(SEQUENCE_DESIGNS[design](n_symbols + 2, hidden, n_symbols + 2, seed=seed,
                                             **(options or {})), seed, batch, lr)
        steps = 2 * length + delay
        self.reference = (f"no memory: ln({n_symbols}) x {length} / {steps} per step",
                          float(np.log(n_symbols) * length / steps))

    def recall(self):
        """The fraction of held-out symbols written back correctly (chance: 1 / n_symbols)."""
        xs, ys = self.held
        length = self.shape["length"]
        with evaluating(self.model):
            return float(np.mean(self.model.predict(xs)[-length:] == ys[-length:]))

    def report(self, seed):
        xs, ys = self.held
        return [f"{type(self.model).__name__}({self.model.n_hidden} hidden, "
                f"{n_parameters(self.model):,} parameters): symbols recalled after a delay of "
                f"{self.shape['delay']} steps: {self.recall():.1%} of "
                f"{self.shape['length']} x {len(ys[0])} held-out symbols "
                f"(chance {1 / self.shape['n_symbols']:.1%})"]


LONG_COPY = {"length": 1, "delay": 80, "n_symbols": 2}
GATED_HIDDEN = 16


class LongCopyTask(CopyTask):
    """The copy task over a delay long enough that ElmanRNN stays near chance (section 10.7):
    one of 2 symbols recalled after 80 steps.  ``design`` is "lstm" or "gru" with 16 hidden
    units, or "elman" with as many parameters as that LSTM.  The LSTM's forget-gate bias and
    the GRU's update-gate bias start at 3, so that some of the state survives the delay at
    first (sigmoid(3) ** 80 = 0.02; with the LSTM's usual 1 it is 1e-11, with the GRU's 0,
    1e-24)."""

    design = "lstm"
    options = {}
    default_steps = 1500

    def __init__(self, seed, batch=32, lr=1e-2):
        n = LONG_COPY["n_symbols"] + 2
        hidden = GATED_HIDDEN
        if self.design == "elman":
            hidden = matched_elman_hidden(n_parameters(LSTM(n, GATED_HIDDEN, n)), n, n)
        super().__init__(seed, hidden=hidden, batch=batch, lr=lr, design=self.design,
                         options=self.options, **LONG_COPY)


class LongCopyLSTM(LongCopyTask):
    name, design, options = "long_copy_lstm", "lstm", {"forget_bias": 3.0}


class LongCopyGRU(LongCopyTask):
    name, design, options = "long_copy_gru", "gru", {"update_bias": 3.0}

    def __init__(self, seed, batch=32, lr=2e-2):
        super().__init__(seed, batch, lr)


class LongCopyElman(LongCopyTask):
    name, design = "long_copy_elman", "elman"


class LookaheadTask(DrawnTask):
    """Name the next symbol (``datasets.lookahead_task``): BidirectionalRNN reads the future,
    the forward-only ElmanRNN with as many parameters cannot (``forward=True``)."""

    name = "lookahead"
    default_steps = 300
    forward = False
    data = staticmethod(datasets.lookahead_task)

    def __init__(self, seed, hidden=12, batch=32, lr=2e-2, length=10, n_symbols=4):
        self.window = 20
        self.shape = {"length": length, "n_symbols": n_symbols}
        model = BidirectionalRNN(n_symbols, hidden, n_symbols + 1, seed=seed)
        if self.forward:
            hidden = matched_elman_hidden(n_parameters(model), n_symbols, n_symbols + 1)
            model = ElmanRNN(n_symbols, hidden, n_symbols + 1, seed=seed)
        self._train(model, seed, batch, lr)
        self.reference = (f"a guess: ln({n_symbols}) x {length - 1} / {length} per step",
                          float(np.log(n_symbols) * (length - 1) / length))

    def accuracy(self):
        """The fraction of held-out steps whose next symbol is named (chance 1 / n_symbols)."""
        xs, ys = self.held
        with evaluating(self.model):
            return float(np.mean(self.model.predict(xs)[:-1] == ys[:-1]))

    def report(self, seed):
        return [f"{type(self.model).__name__} ({n_parameters(self.model):,} parameters) names "
                f"the next symbol at {self.accuracy():.1%} of the held-out steps (chance "
                f"{1 / self.shape['n_symbols']:.1%})"]


class LookaheadForward(LookaheadTask):
    name, forward = "lookahead_forward", True


class ReverseTask(DrawnTask):
    """EncoderDecoder reverses ``length`` symbols and writes an end symbol: n_y = n_x + 1
    (``datasets.reverse_task``), judged on greedy decoding of held-out sequences.
    ``attention`` is passed to the EncoderDecoder (None, "additive" or "dot"); bench/attention.py
    compares them on sequences of 20 symbols."""

    name = "reverse"
    default_steps = 600
    data = staticmethod(datasets.reverse_task)

    def __init__(self, seed, hidden=32, batch=32, lr=2e-2, length=5, n_symbols=6, attention=None):
        self.window = 20
        self.shape = {"length": length, "n_symbols": n_symbols}
        self._train(EncoderDecoder(n_symbols, hidden, n_symbols + 1, seed=seed,
                                   attention=attention), seed, batch, lr)
        self.reference = (f"a guess: ln({n_symbols}) x {length} / {length + 1} per step",
                          float(np.log(n_symbols) * length / (length + 1)))

    def accuracy(self):
        """(symbols, whole sequences) of the held-out set decoded right, greedily."""
        xs, ys = self.held
        with evaluating(self.model):
            right = self.model.generate(xs, len(ys)) == ys
        return float(right.mean()), float(right.all(axis=0).mean())

    def report(self, seed):
        symbols, sequences = self.accuracy()
        kind = "" if self.model.attention is None else f", {self.model.attention} attention"
        return [f"EncoderDecoder ({n_parameters(self.model):,} parameters{kind}), greedy decoding of "
                f"held-out sequences of {self.shape['length']} symbols: {symbols:.1%} of the "
                f"{self.shape['length'] + 1} output symbols and {sequences:.1%} of the whole "
                f"sequences right (chance per symbol {1 / self.shape['n_symbols']:.1%})"]


TASKS = {task.name: task for task in (
    CharTask, YearTask, CopyTask, LongCopyLSTM, LongCopyGRU, LongCopyElman, LookaheadTask,
    LookaheadForward, ReverseTask)}


# ------------------------------------------------------------------ checkpoints

MAX_SEED = 2**32 - 1
CHECKPOINT_SECONDS = 10.0    # run_training's default: a checkpoint whenever this much time has passed


def save_checkpoint(path, task, step, losses, seed, history=()):
    """Everything a resume needs after update ``step``: model, optimizer, the task's own state,
    the losses so far and the held-out measurements ``history`` [(step, train, held)]."""
    arrays = {**task.extra_state(), "losses": np.array(losses, dtype=np.float64),
              "history": np.array(history, dtype=np.float64).reshape(-1, 3)}
    save_training(path, task.trainer, arrays, meta={"task": task.name, "step": step, "seed": seed})


def _count(value, low, high):
    return (isinstance(value, int) and not isinstance(value, bool)
            and low <= value <= (high if high is not None else value))


def load_checkpoint(path, task_name):
    """Read a checkpoint; returns (task, step, losses, seed, history).  Nothing is half-loaded.

    Raises CheckpointError, naming the file, for a checkpoint of another task, a step or seed
    that is not a count in range, or losses, history and optimizer that disagree with the step.
    """
    meta = tg.read_meta(path).get("user", {})
    recorded = meta.get("task") if isinstance(meta, dict) else None
    if recorded not in TASKS:          # a model's own save, say: it records no task
        raise tg.CheckpointError(f"'{path}' is not a training checkpoint of tinygraph train or "
                                 f"demo (it records no task); give the <task>_checkpoint.npz "
                                 f"they write")
    if recorded != task_name:
        raise tg.CheckpointError(f"'{path}' is a checkpoint of task '{recorded}', not "
                                 f"'{task_name}'")
    step, seed = meta.get("step"), meta.get("seed")
    if not _count(step, 0, None) or not _count(seed, 0, MAX_SEED):
        raise tg.CheckpointError(f"'{path}': meta step {step!r} and seed {seed!r} must be whole "
                                 f"numbers, step >= 0 and seed in [0, {MAX_SEED}]")
    # the losses' count must be the step's: checked in the headers before any data is read
    headers = tg.read_headers(path)
    losses = headers.get("extra/losses")
    if losses is None or losses[0] != (step,):
        held = ("no losses" if losses is None else f"{losses[0][0]} losses"
                if len(losses[0]) == 1 else f"losses of shape {losses[0]}")
        raise tg.CheckpointError(f"'{path}': meta step {step} disagrees with the checkpoint's "
                                 f"{held} (one loss per update: ({step},))")
    task = TASKS[task_name](seed)
    # the history holds at most one measurement per update: the whole load is bounded by this
    expect = {"losses": ((step,), np.float64), "history": ((None, 3), np.float64),
              **task.extra_expected()}
    fixed = {**task.model.expected_state(), **task.trainer.optimizer.expected_state(),
             **task.extra_expected()}
    budget = (sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in fixed.values())
              + 8 * step + 3 * 8 * step)
    arrays, _ = load_training(path, task.trainer, expect, max_bytes=budget)
    losses, history = arrays.get("losses"), arrays.get("history")
    if losses is None or history is None or len(losses) != step or task.trainer.optimizer.steps != step:
        raise tg.CheckpointError(
            f"'{path}': meta step {step} disagrees with the checkpoint's "
            f"{'no' if losses is None else len(losses)} losses and "
            f"{task.trainer.optimizer.steps} optimizer updates")
    task.load_extra(arrays)
    return task, step, losses.tolist(), seed, [(int(s), tr, h) for s, tr, h in history.tolist()]


class Checkpoints:
    """Where and how often :func:`run_training` saves a checkpoint.

    Every ``every`` updates, or (``every`` None) whenever ``seconds`` have passed since the
    last save; also when the run is stopped and after its last update.

    Parameters
    ----------
    path : the checkpoint file (rewritten atomically each time)
    seed : the run's seed, stored for the resume
    every : int or None
    seconds : float
    """

    def __init__(self, path, seed, every=None, seconds=CHECKPOINT_SECONDS):
        self.path, self.seed, self.every, self.seconds = path, seed, every, seconds
        self.last = time.monotonic()
        self.saved = []          # the step of every save

    def due(self, step):
        if self.every is not None:
            return step % self.every == 0
        return time.monotonic() - self.last >= self.seconds

    def save(self, task, step, losses, history):
        save_checkpoint(self.path, task, step, losses, self.seed, history)
        self.last = time.monotonic()
        self.saved.append(step)


class TrainingStopped(Exception):
    """:func:`run_training` stopped on request after update ``step`` of ``steps``, its
    checkpoint written to ``path`` (None without checkpoints); ``reason`` is what ``stop()``
    returned (e.g. a signal number)."""

    def __init__(self, step, steps, path, reason):
        super().__init__(f"stopped after update {step} of {steps}")
        self.step, self.steps, self.path, self.reason = step, steps, path, reason


# ------------------------------------------------------------------ the training loop

def run_training(task, first, steps, losses, on_step=None, history=None, checkpoints=None,
                 stop=None):
    """Updates ``first`` .. ``steps`` - 1 of ``task``, appending each update's loss to ``losses``.

    The training loss reported is the mean over the last ``task.window`` updates.  The
    held-out loss is measured every ``steps // 20`` updates and after the last.
    ``on_step(step, training_loss, held_out_loss_or_None)`` is called after every update.

    Parameters
    ----------
    history : list of the measurements so far (from a resumed checkpoint), extended in place
    checkpoints : Checkpoints or None; saved when due, when stopped and after the last update
    stop : callable or None, asked after every update; when it returns something true the run
        saves its checkpoint and raises TrainingStopped (so an interrupted run loses at most
        the update in progress, and resumes exactly)

    Returns
    -------
    list of (step, training loss, held-out loss) at each measurement.
    """
    every = max(1, steps // 20)
    held = history[-1][2] if history else None
    history = [] if history is None else history
    for k in range(first, steps):
        losses.append(task.step(k))
        train = float(np.mean(losses[-task.window:]))
        if (k + 1) % every == 0 or k + 1 == steps:
            held = task.held_out_loss()
            history.append((k + 1, train, held))
        if on_step is not None:
            on_step(k + 1, train, held)
        reason = stop() if stop is not None else None
        if reason:
            if checkpoints is not None:
                checkpoints.save(task, k + 1, losses, history)
            raise TrainingStopped(k + 1, steps, None if checkpoints is None else checkpoints.path,
                                  reason)
        if checkpoints is not None and k + 1 < steps and checkpoints.due(k + 1):
            checkpoints.save(task, k + 1, losses, history)
    if checkpoints is not None:
        checkpoints.save(task, steps, losses, history)
    return history


# ------------------------------------------------------------------ sections 10.5-10.12

class ParityTask(DrawnTask):
    """RecursiveNet learns XOR on random trees of 2-8 bits; scored on bigger balanced trees."""

    name = "parity"
    unit = "nats/tree"
    default_steps = 1500
    data = staticmethod(problems.parity_trees)
    reference = ("ln 2: a guess", float(np.log(2)))

    def __init__(self, seed, hidden=16, batch=32, lr=2e-2):
        self.window = 50
        self.shape = {"max_leaves": 8}
        self._train(RecursiveNet(2, hidden, 2, seed=seed), seed, batch, lr)

    def steps_of(self, ys):
        """A tree's loss is not a sum over time steps."""
        return 1

    def report(self, seed):
        lines = []
        for leaves in (8, 16, 32):
            tree, y = problems.parity_trees(1000, leaves=leaves, balanced=True, seed=2**41 + leaves)
            lines.append(f"parity of balanced {leaves}-leaf trees: "
                         f"{np.mean(self.model.predict(tree) == y):.1%} (chance 50%)")
        return lines


class RecallTask(DrawnTask):
    """LeakyRNN (learned leaks) recalls a symbol after 30 steps, where an Elman RNN of its size
    stays near chance (tests/test_rnn_learning_more.py)."""

    name = "recall"
    default_steps = 500
    data = staticmethod(problems.delayed_recall)
    reference = ("ln 4 over 32 steps: no memory of the symbol", float(np.log(4) / 32))

    def __init__(self, seed, hidden=16, batch=32, lr=3e-2, delay=30):
        self.window = 50
        self.shape = {"delay": delay}
        self._train(LeakyRNN(6, hidden, 6, alpha="learned", seed=seed), seed, batch, lr)

    def report(self, seed):
        recall = problems.last_step_accuracy(self.model, *self.held)
        return [f"symbols recalled after {self.shape['delay']} steps: {recall:.1%} of "
                f"{len(self.held[1][0])} held-out sequences (chance 25%)"]


class SignalTask(DrawnTask):
    """EchoStateNetwork fits y(t) = x(t) x(t-5) by training only its readout (Adam on windows
    of ``batch`` steps of the signal); the report sets it beside the least-squares readout."""

    name = "signal"
    unit = "squared error/step"
    default_steps = 1000
    data = staticmethod(problems.delayed_product)
    washout = 100

    def __init__(self, seed, hidden=100, batch=200, lr=1e-2):
        self.window = 50
        self.shape = {}
        self._train(EchoStateNetwork(1, hidden, 1, spectral_radius=0.9, seed=seed), seed, batch, lr)
        # over every held-out step, as held_out_loss measures (not only those after the washout)
        self.reference = ("the target's variance: predicting its mean",
                          float(np.var(self.held[1])))

    def report(self, seed):
        xs, ys = self.held
        fitted = EchoStateNetwork(1, self.model.n_hidden, 1, spectral_radius=0.9, seed=self.seed)
        fitted.fit(*problems.delayed_product(2000, seed=self.seed), washout=self.washout)
        errors = []
        for model in (self.model, fitted):
            with tg.no_grad():
                predicted = np.stack([o.data for o in model.run(xs).outputs])
            errors.append(problems.normalised_error(predicted[self.washout:], ys[self.washout:]))
        return [f"held-out normalised error of the trained readout: {errors[0]:.2e} "
                f"(least squares on the same reservoir: {errors[1]:.2e}; 1 = predicting the mean)"]


class AssociativeTask(DrawnTask):
    """MemoryNetwork answers the value of a key after seeing two (key, value) pairs."""

    name = "assoc"
    default_steps = 1500
    data = staticmethod(problems.associative_recall)
    reference = ("ln 4 over 3 steps: a guess of the value", float(np.log(4) / 3))

    def __init__(self, seed, hidden=16, batch=32, lr=2e-2):
        self.window = 50
        self.shape = {}
        self._train(MemoryNetwork(9, hidden, 5, slots=3, width=8, seed=seed), seed, batch, lr)

    def report(self, seed):
        accuracy = problems.last_step_accuracy(self.model, *self.held)
        return [f"values recalled: {accuracy:.1%} of {len(self.held[1][0])} held-out queries "
                "(chance 25%)"]


TASKS.update({task.name: task for task in (ParityTask, RecallTask, SignalTask, AssociativeTask)})
