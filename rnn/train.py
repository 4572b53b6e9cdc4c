"""Training loops: one update step, and truncated back-propagation through time.

:class:`Trainer` does one update: zero the gradients, build the unrolled loss,
``backward`` (BPTT is plain backprop over the unrolled DAG), clip the global
gradient norm, let the engine's optimizer step.  :func:`truncated_bptt` walks a
long (T, B) sequence in chunks of ``chunk`` steps and carries the last state of
one chunk into the next, detached, so gradients stop at the chunk boundary while
the forward pass still sees the whole past (as min-char-rnn and d2l do).
Both report progress through a callback ``on_step(step, loss, grad_norm)``.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .core import collector_paused, detach_state
from .datasets import stream_batches


class Trainer:
    """One update per call of :meth:`step`.

    Parameters
    ----------
    model : a design of ``rnn`` (anything with ``parameters()`` and ``run_for_loss(...)``)
    optimizer : tg.optim optimizer, default Adam(lr) over the model's parameters
    lr : float, used when no optimizer is given
    clip : float or None, max global gradient norm (tg.clip_grad_norm)
    """

    def __init__(self, model, optimizer=None, lr=1e-2, clip=None):
        self.model = model
        self.optimizer = optimizer if optimizer is not None else tg.optim.Adam(model.parameters(), lr)
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float, np.number))
                                 or not clip > 0):
            raise tg.ConfigError(f"Trainer: clip must be positive or None, got {clip}")
        self.clip = clip
        self.steps = 0

    def update(self, loss):
        """Back-propagate ``loss``, clip, step; returns the gradient norm before clipping."""
        self.optimizer.zero_grad()
        with collector_paused():
            loss.backward()
        params = self.optimizer.params
        norm = (tg.clip_grad_norm(params, self.clip) if self.clip is not None
                else float(np.sqrt(sum(np.sum(p.grad ** 2) for p in params if p.grad is not None))))
        self.optimizer.step()
        self.steps += 1
        return norm

    def step(self, *args, **kwargs):
        """The model's loss on ``(*args, **kwargs)`` (as ``model.loss``), then one update.

        Returns (loss, grad_norm) floats.
        """
        loss = self.model.run_for_loss(*args, **kwargs).loss
        return loss.item(), self.update(loss)

    def fit(self, batches, on_step=None):
        """Run :meth:`step` on every item of ``batches`` (each a tuple of args or a dict of kwargs).

        ``on_step(step, loss, grad_norm)`` is called after each update.  Returns the losses.
        """
        losses = []
        for batch in batches:
            loss, norm = self.step(**batch) if isinstance(batch, dict) else self.step(*batch)
            losses.append(loss)
            if on_step is not None:
                on_step(self.steps, loss, norm)
        return losses


def truncated_bptt(trainer, xs, ys, chunk, h0=None, on_step=None):
    """One pass of truncated BPTT over a long sequence, carrying the state across chunks.

    Parameters
    ----------
    trainer : Trainer of a sequence model (ElmanRNN, JordanRNN, ConditionalRNN, Recurrence)
    xs, ys : (T, ...) inputs and (T,) / (T, B) targets, e.g. from ``datasets.stream_batches``
    chunk : int, steps per chunk (gradients do not cross chunk boundaries)
    h0 : initial state, default zeros
    on_step : callable ``(step, loss_per_step, grad_norm)``, called after every chunk

    Returns
    -------
    (losses, h) : the mean loss per time step of every chunk, and the detached last state.
    """
    state = h0
    losses = []
    runs = chunked_runs(trainer.model, xs, ys, chunk, {} if h0 is None else {"h0": h0},
                        "truncated_bptt")
    for run, length in runs:
        norm = trainer.update(run.loss)
        state = detach_state(run.last)
        losses.append(run.loss.item() / length)
        if on_step is not None:
            on_step(trainer.steps, losses[-1], norm)
    return losses, state


def chunked_runs(model, xs, ys, chunk, carried, who):
    """``model.run_for_loss`` over consecutive chunks of ``chunk`` steps, each chunk starting
    from what the previous one ended with (``model.carry``): yields (run, its length).

    ``carried`` is the first chunk's keyword arguments (e.g. ``{"h0": h0}``); ``who`` names
    the caller in errors.  Checks everything before the first run.
    """
    chunk = checks.positive_int(chunk, who, "chunk")
    if not getattr(model, "causal", True):
        raise tg.ConfigError(f"{who}: {model.name} is not causal (each output reads the whole "
                             "sequence), so it cannot be read in chunks")
    xs = np.asarray(xs)
    ys = np.asarray(ys)
    if len(xs) != len(ys):
        raise tg.ShapeError(f"{who}: xs has {len(xs)} steps but ys has {len(ys)}")
    for start in range(0, len(xs), chunk):
        run = model.run_for_loss(xs[start:start + chunk], ys[start:start + chunk], **carried)
        yield run, len(xs[start:start + chunk])
        carried = model.carry(run)     # the state (and fed-back output) the next chunk reads


def stream_loss(model, xs, ys, chunk=1000):
    """Mean loss per time step of ``model`` reading one long sequence, without keeping a graph.

    The sequence is read in chunks of ``chunk`` steps under ``tg.no_grad()``, each chunk starting
    from what the previous one ended with (``model.carry``), so the result equals
    ``model.loss(xs, ys).item() / len(xs)`` of one unroll over the whole sequence, in memory that
    does not grow with its length: the held-out loss of a language model, for example.
    """
    total, steps = 0.0, 0
    with tg.no_grad():
        for run, length in chunked_runs(model, xs, ys, chunk, {}, "stream_loss"):
            total += run.loss.item()
            steps += length
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
