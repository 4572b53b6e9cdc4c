"""Small learning problems for the designs of sections 10.5-10.12, and how each is scored.

- :func:`parity_trees`: bits at the leaves of a binary tree, the label their parity
  (XOR), for :class:`~rnn.recursive.RecursiveNet`.  Trained on random shapes of a few
  leaves, the shared merge learns XOR and the net classifies bigger balanced trees.
- :func:`delayed_recall`: one symbol, then ``delay`` steps of blanks, then recall it
  (the copy problem of :func:`rnn.datasets.copy_task` with one symbol): leaky units and
  skip connections carry it further than an Elman network of the same size.
- :func:`running_parity`: a stream of bits, the target at every step the parity of the
  bits so far (a sequence task whose every answer depends on the whole past).
- :func:`delayed_product`: a signal x(t) and the target x(t) x(t - d), a task with memory
  and a nonlinearity, for :class:`~rnn.esn.EchoStateNetwork` (only the readout is fit).
- :func:`associative_recall`: (key, value) pairs, then a key: answer its value, for
  :class:`~rnn.memory.MemoryNetwork`.

Each generator is a function of its seed alone; :func:`train` runs Adam over generated
batches and :func:`last_step_accuracy` scores the answer given at the last step.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .datasets import copy_task
from .recursive import balanced_tree
from .core import evaluating
from .train import Trainer


def random_tree(leaves, rng):
    """A binary tree of random shape over ``leaves`` in order (pairs of neighbours merged at
    random): nested tuples."""
    nodes = list(leaves)
    while len(nodes) > 1:
        i = int(rng.integers(len(nodes) - 1))
        nodes[i:i + 2] = [(nodes[i], nodes[i + 1])]
    return nodes[0]


def parity_trees(batch, leaves=None, max_leaves=8, balanced=False, seed=0):
    """A batch of bit trees of one shape and their parities.

    Parameters
    ----------
    batch : int
    leaves : int or None; None draws 2..max_leaves
    balanced : bool; False draws a random shape
    seed : int

    Returns
    -------
    (tree, y) : a tree whose leaves are ids (batch,) in {0, 1}, and the parity ids (batch,).
    """
    batch = checks.positive_int(batch, "parity_trees", "batch")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, max_leaves + 1)) if leaves is None else checks.positive_int(
        leaves, "parity_trees", "leaves")
    bits = rng.integers(0, 2, size=(n, batch))
    tree = balanced_tree(list(bits)) if balanced else random_tree(list(bits), rng)
    return tree, bits.sum(axis=0) % 2


def delayed_recall(batch, delay, n_symbols=4, seed=0):
    """One symbol, ``delay`` - 1 blanks, a go marker, then the symbol as the last target.

    Returns xs, ys : int64 (delay + 2, batch), vocabulary n_symbols + 2 (see copy_task).
    """
    return copy_task(batch, length=1, delay=delay, n_symbols=n_symbols, seed=seed)


def running_parity(batch, length=10, seed=0):
    """Bits x(1..T) and the target y(t) = x(1) xor ... xor x(t) at every step.

    Returns xs, ys : int64 (length, batch), vocabulary 2 for both.
    """
    length = checks.positive_int(length, "running_parity", "length")
    batch = checks.positive_int(batch, "running_parity", "batch")
    bits = np.random.default_rng(seed).integers(0, 2, size=(length, batch))
    return bits, np.cumsum(bits, axis=0) % 2


def delayed_product(steps, delay=5, seed=0):
    """x(t) = sin(0.2 t + phi) cos(0.031 t + phi) and the target y(t) = x(t) x(t - delay)
    (0 for t < delay).  Returns xs (steps, 1), ys (steps, 1) floats."""
    steps = checks.positive_int(steps, "delayed_product", "steps")
    delay = checks.positive_int(delay, "delayed_product", "delay")
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(steps)
    x = np.sin(0.2 * t + phase) * np.cos(0.031 * t + phase)
    y = np.zeros(steps)
    y[delay:] = x[delay:] * x[:max(steps - delay, 0)]
    return x[:, None], y[:, None]


def noisy_sine(batch, steps=40, noise=0.1, seed=0):
    """A regression task: read a sine seen through noise, x(t) = sin(w t + phi) + noise e(t), and
    predict the clean next value y(t) = sin(w (t + 1) + phi); each sequence has its own
    frequency w in [0.15, 0.35] and phase phi.  Returns xs, ys : floats (steps, batch, 1)."""
    batch = checks.positive_int(batch, "noisy_sine", "batch")
    steps = checks.positive_int(steps, "noisy_sine", "steps")
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.15, 0.35, batch)
    phi = rng.uniform(0, 2 * np.pi, batch)
    t = np.arange(steps + 1)[:, None]
    clean = np.sin(w * t + phi)
    xs = clean[:-1] + noise * rng.normal(size=(steps, batch))
    return xs[..., None], clean[1:, :, None]


def associative_recall(batch, pairs=2, n_keys=4, seed=0):
    """``pairs`` steps each showing a distinct key and a value, then one step showing a key
    of them with the query flag: the answer is that key's value.

    Inputs are floats (T, batch, 2 n_keys + 1): one-hot key, one-hot value, query flag;
    targets (T, batch) are the blank ``n_keys`` except the value at the query step.
    """
    batch = checks.positive_int(batch, "associative_recall", "batch")
    pairs = checks.positive_int(pairs, "associative_recall", "pairs")
    n_keys = checks.positive_int(n_keys, "associative_recall", "n_keys")
    if not 1 <= pairs <= n_keys:
        raise tg.ConfigError(f"associative_recall: need 1 <= pairs <= n_keys, got {pairs}, "
                             f"{n_keys}")
    rng = np.random.default_rng(seed)
    steps, width = pairs + 1, 2 * n_keys + 1
    xs = np.zeros((steps, batch, width))
    ys = np.full((steps, batch), n_keys, dtype=np.int64)
    keys = np.argsort(rng.random((batch, n_keys)), axis=1)[:, :pairs].T
    values = rng.integers(0, n_keys, size=(pairs, batch))
    rows = np.arange(batch)
    for t in range(pairs):
        xs[t, rows, keys[t]] = 1.0
        xs[t, rows, n_keys + values[t]] = 1.0
    asked = rng.integers(0, pairs, size=batch)
    xs[pairs, rows, keys[asked, rows]] = 1.0
    xs[pairs, rows, 2 * n_keys] = 1.0
    ys[pairs] = values[asked, rows]
    return xs, ys


def train(model, make_batch, updates, lr=1e-2, clip=1.0):
    """Adam on ``model.loss(*make_batch(k))`` for k = 0..updates-1; returns the losses."""
    trainer = Trainer(model, lr=lr, clip=clip)
    return [trainer.step(*make_batch(k))[0] for k in range(updates)]


def last_step_accuracy(model, xs, ys):
    """The fraction of sequences whose output at the last step picks the target ys[-1] (a NaN
    or inf output is an AnomalyError naming it, not a class).  An evaluation: run in
    evaluation mode (:func:`rnn.core.evaluating`: dropout off in this thread only;
    no module's own mode is changed)."""
    with tg.no_grad(), evaluating(model):
        outputs = model.run(xs).outputs
    picked = checks.class_ids(outputs[-1].data, "last_step_accuracy", "o(T)")
    return float(np.mean(picked == np.asarray(ys)[-1]))


def normalised_error(predicted, target):
    """Mean squared error over the variance of the target (1: no better than its mean).

    ``predicted`` and ``target`` must have the same shape (numpy would broadcast (T, B, 1)
    against (T, B) into a (T, B, B) mean of every pair); a constant target has no variance to
    normalise by, and one holding NaN or inf none to measure.  Each is a ShapeError naming
    the shapes, the variance or the value and where it is."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape:
        raise tg.ShapeError(f"normalised_error: predicted has shape {predicted.shape} but target "
                            f"has shape {target.shape}; they must be the same")
    bad = ~np.isfinite(target)
    if bad.any():           # its variance is NaN: neither constant nor a scale to divide by
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise tg.ShapeError(f"normalised_error: the target holds {target[index]} at {index}; "
                            "it must be finite numbers")
    variance = float(np.var(target)) if target.size else 0.0
    if not variance > 0:
        raise tg.ShapeError(f"normalised_error: the target has variance {variance} (a constant "
                            "target, or one of no values): nothing to normalise the error by")
    return float(np.mean((predicted - target) ** 2) / variance)
