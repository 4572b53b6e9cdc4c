"""The ``tinygraph`` command: the project's front door.

``tinygraph figures`` writes the chapter's figures, ``draw`` the three
views of one model, ``explore`` the interactive page of one model's unroll and
gradients, ``train`` trains a design on built-in data (with a live
progress line, a checkpoint, the loss curve, samples and the gradient-flow
view, and ``--resume``), and ``demo`` -- the main job, about a minute in all on an
idle two-core machine -- checks gradients against finite differences, trains a
character model on the bundled harbour text (about 26 s of its minute: its last 10%
held out, both losses reported), compares an LSTM, a GRU and an Elman RNN of as many
parameters on a copy task with a delay of 80 steps (three seeds each: held-out recall
and ‖∂L/∂h(t)‖), and writes a summary page.  Training writes its checkpoint every few seconds (or every
``--checkpoint-every`` updates); Ctrl-C or SIGTERM finishes the update in progress,
writes the checkpoint, prints how to resume and exits with 130 or 143, and
``--resume`` then continues exactly.  The tasks, their training loop and checkpoints live in
:mod:`rnn.tasks`; this module is the thin command line over them, the views and the
page.  It lives in ``viz`` because it uses all three layers (tinygraph -> rnn -> viz).  A user's mistake (unknown model or
task, unwritable ``--out``, bad checkpoint) is one line on stderr and exit
status 2, never a traceback.  No run is lost: every command locks its ``--out``
(a second one into it at the same time is refused), a fresh ``train`` refuses to
start over a checkpoint of its task without ``--resume`` or ``--force``, and the
demo keeps a previous checkpoint that differs from its own.
"""

import argparse
import contextlib
import ctypes
import errno
import fcntl
import os
import shlex
import signal
import sys
import threading
import time

import numpy as np

import rnn
import tinygraph as tg

from . import plots
from .explorer import explore
from .figures import FIGURES, figure
from .opgraph import gradient_norms, graph
from .page import Page, figure_caption
from .blas import one_blas_thread
from .playground import add_parser as add_playground_parser
from .render import OutputPathError, printable, save
from .views import folded, unrolled


class UsageError(tg.TinygraphError, ValueError):
    """A command-line request that cannot be carried out."""


# ------------------------------------------------------------------ models for `draw`

def _dynamical_system(seed):
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(0, 0.5, (3, 3)), name="W")

    def f(s):
        return (s @ W.T).tanh()
    return rnn.Recurrence(f, [W], n_state=3, name="system", state_name="s", edge_label="f")


MODELS = {
    "elman": lambda seed: rnn.ElmanRNN(6, 8, 6, seed=seed),
    "jordan": lambda seed: rnn.JordanRNN(6, 8, 6, seed=seed),
    "seq2one": lambda seed: rnn.SequenceToOne(6, 8, 4, seed=seed),
    "vec2seq": lambda seed: rnn.VectorToSequence(5, 8, 6, seed=seed),
    "conditional": lambda seed: rnn.ConditionalRNN(6, 8, 6, seed=seed),
    "lstm": lambda seed: rnn.LSTM(6, 8, 6, seed=seed),
    "gru": lambda seed: rnn.GRU(6, 8, 6, seed=seed),
    "bidirectional": lambda seed: rnn.BidirectionalRNN(6, 8, 6, seed=seed),
    "encdec": lambda seed: rnn.EncoderDecoder(6, 8, 6, seed=seed),
    "system": _dynamical_system,
}

MODELS.update({     # sections 10.5-10.12
    "deep": lambda seed: rnn.DeepRNN(6, 8, 6, kind="skip", seed=seed),
    "recursive": lambda seed: rnn.RecursiveNet(6, 8, 4, seed=seed),
    "leaky": lambda seed: rnn.LeakyRNN(6, 8, 6, alpha="learned", skip=2, seed=seed),
    "esn": lambda seed: rnn.EchoStateNetwork(3, 8, 2, spectral_radius=1.2, seed=seed),
    "memory": lambda seed: rnn.MemoryNetwork(6, 8, 6, slots=4, width=4, seed=seed),
})


EXPLORE_STEPS = 40      # the random sequence of `explore` without a checkpoint

# the explorer's models: every one but the recursive net, a tree that viz.explore refuses
EXPLORABLE = sorted(name for name in MODELS if name != "recursive")


def model_inputs(model, steps, seed):
    """(args, kwargs) of ``explore`` for a model of MODELS: random ids (or a vector) of ``steps``
    steps and random targets; a system without input starts from a random state."""
    rng = np.random.default_rng(seed)
    if getattr(model, "n_in", 0) is None:            # a system without input, from a random s(0)
        return (None,), {"steps": steps, "h0": rng.normal(size=model.n_state)}
    n_out = getattr(model, "n_out", None)
    if isinstance(model, rnn.VectorToSequence):
        return (rng.normal(size=model.n_in), rng.integers(0, n_out, steps)), {}
    if isinstance(model, rnn.EchoStateNetwork):      # a signal in, a signal out (squared error)
        return (rng.normal(size=(steps, model.n_in)), rng.normal(size=(steps, n_out))), {}
    xs = rng.integers(0, model.n_in, steps)
    if isinstance(model, rnn.SequenceToOne):
        return (xs, int(rng.integers(0, n_out))), {}
    return (xs, rng.integers(0, n_out, steps)), {}


# ------------------------------------------------------------------ progress

class Progress:
    """A live progress line: step, training and held-out loss, steps/s and time left
    (rewritten in place on a tty, one line per tenth of the run otherwise)."""

    def __init__(self, total, stream=None, every=None):
        self.total = total
        self.stream = stream = stream or sys.stderr
        self.tty = stream.isatty()
        self.every = every or (1 if self.tty else max(1, total // 10))
        self.start = time.perf_counter()
        self.done = 0

    def __call__(self, step, loss, held_out=None):
        self.done += 1
        if step % self.every and step != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - step) / rate if rate > 0 else 0.0
        held = "" if held_out is None else f"  held-out {held_out:.4f}"
        line = f"step {step}/{self.total}  loss {loss:.4f}{held}  {rate:.1f} steps/s  {left:.0f}s left"
        self.stream.write(("\r" + line.ljust(88)) if self.tty else line + "\n")
        if self.tty and step == self.total:
            self.stream.write("\n")
        self.stream.flush()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_on_signals():
    """Within the block SIGINT and SIGTERM only ask training to stop (after the update in
    progress, with a checkpoint); yields the ``stop()`` callable for ``run_training``, which
    returns the signal received, or None.  Outside the main thread nothing is installed."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in STOP_SIGNALS}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _shell_join(words):
    """``shlex.join(words)``, but a word whose bytes are not UTF-8 (a path's, held as the lone
    surrogates of ``os.fsdecode``) quoted as bash's $'...' with each such byte as \\xHH: shlex
    quoted the surrogates, which print as \\udcfe, a command that names another folder."""
    out = []
    for word in map(str, words):
        try:
            word.encode("utf-8")
            out.append(shlex.quote(word))
        except UnicodeEncodeError:
            raw = os.fsencode(word)
            out.append("$'" + "".join(chr(b) if 32 <= b < 127 and b not in b"'\\" else f"\\x{b:02x}"
                                      for b in raw) + "'")
    return " ".join(out)


def _stopped(e, args):
    """The one line said when training stopped on a signal, and the exit status (128 + signal)."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")          # below the progress line rewritten in place
    where = f"interrupted by {signal.Signals(e.reason).name} after update {e.step} of {e.steps}"
    if e.step < e.steps:
        task = "chars" if args.command == "demo" else args.task
        resume = "resume with: " + _shell_join(["tinygraph", "train", "--task", task, "--steps",
                                               str(e.steps), "--out", str(args.out),
                                               "--resume", str(e.path)])
        print(printable(f"tinygraph {args.command}: {where}; checkpoint written to {e.path}; "
                        f"{resume}"), file=sys.stderr)
    else:
        print(printable(f"tinygraph {args.command}: {where} (training was complete); checkpoint "
                        f"written to {e.path}"), file=sys.stderr)
    return 128 + e.reason


LOCK_NAME = ".tinygraph.lock"


def _out_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:             # makedirs says only "File exists"
        what = ("a link that leads to no folder" if os.path.islink(path)
                else "a file, not a folder")
        raise UsageError(f"cannot write to --out '{path}': it is {what}") from None
    except OSError as e:
        raise UsageError(f"cannot write to --out '{path}': {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write to --out '{path}': permission denied")
    return path


@contextlib.contextmanager
def _locked(out, what="--out", error=UsageError):
    """Hold ``out``'s lock file (an exclusive ``flock`` on ``.tinygraph.lock``) for the whole
    command: a second tinygraph writing into the same --out at the same time is refused
    instead of both claiming success.  The kernel drops the lock when the process ends, even
    on ``kill -9``; the file is removed on the way out.  A playground started from Python
    holds the same lock while it runs (``what`` and ``error``: how its refusal names ``out``
    and what it raises), so neither it nor a command shares its folder with another writer."""
    path = os.path.join(out, LOCK_NAME)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise error(f"cannot write to {what} '{out}': {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise error(f"cannot lock {what} '{out}': {e.strerror or e}") from None
            raise error(f"another tinygraph command is writing into {what} '{out}' now "
                        f"(it holds {path}; a playground holds it until it is stopped); wait "
                        f"for it, or use another {what}") from None
        try:                 # the file we locked may have been removed by its last holder
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _previous_checkpoint(out, task_name, resume, force):
    """Refuse (without --resume of it, or --force) to start a run over the checkpoint a previous
    run left in ``out``; returns a line to say when --force replaces one, else None."""
    path = os.path.join(out, f"{task_name}_checkpoint.npz")
    if not os.path.exists(path):
        return None
    if resume is not None and os.path.exists(resume) and os.path.samefile(resume, path):
        return None
    try:
        user = tg.read_meta(path).get("user")
    except tg.CheckpointError:
        user = None
    step = user.get("step", "?") if isinstance(user, dict) else "?"
    what = f"{path} (a run at update {step})"
    if force:
        return f"--force: replacing {what}"
    keep = _shell_join(["--resume", path])
    raise UsageError(f"--out '{out}' already holds {what}; continue it with {keep}, start "
                     "over with --force (which replaces it), or use another --out")


def _keep_previous(out, name):
    """Move a previous run's ``name`` in ``out`` aside to the first free ``stem.previous-N.npz``
    (the demo keeps what it would overwrite); returns the kept path or None."""
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    stem = name[:-len(".npz")]
    n = 1
    while os.path.exists(os.path.join(out, f"{stem}.previous-{n}.npz")):
        n += 1
    kept = os.path.join(out, f"{stem}.previous-{n}.npz")
    os.rename(path, kept)
    return kept


def _same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        while True:
            x, y = f.read(1 << 20), g.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def write_model_views(model, out, stem, probe_args, probe_kwargs, steps=3):
    """Folded, unrolled, op-level and gradient-flow views of ``model``; returns [(file, caption)]."""
    files = [(f"{stem}_folded.svg", f"{model.name}: folded circuit (black square = one-step delay)"),
             (f"{stem}_unrolled.svg", f"{model.name}: unrolled graph, {steps} steps")]
    save(folded(model), os.path.join(out, files[0][0]))
    save(unrolled(model, steps=steps), os.path.join(out, files[1][0]))
    save(unrolled(model, steps=12, grads=True), os.path.join(out, f"{stem}_unrolled_grads.svg"))
    # the traced unroll runs on the views' own made-up sequence (ids 0, 1, 2, ...), not the
    # probe: the caption said nothing of it, beside views of the probe's gradients
    files.append((f"{stem}_unrolled_grads.svg", f"{model.name}: gradient flow, each variable "
                                               f"coloured by ‖∂L/∂v(t)‖ (12 steps of the views' "
                                               f"traced sequence, made-up inputs and targets, not "
                                               f"the task's data; summarised)"))
    # run(...).loss, not loss(...): every op of every step is its own node, as the view should show
    loss = model.run(*probe_args, **probe_kwargs).loss
    norms = gradient_norms(loss)
    model.zero_grad()       # a trained model holds its last update's gradients: not the probe's
    loss.backward(retain_graph=True)
    save(graph(loss, grads=True), os.path.join(out, f"{stem}_ops.svg"))
    files.append((f"{stem}_ops.svg", f"{model.name}: op-level DAG coloured by gradient norm "
                                     f"(long unrolls summarised)"))
    if norms:
        plots.gradient_flow([n for _, n in norms], os.path.join(out, f"{stem}_gradient_flow.svg"))
        files.append((f"{stem}_gradient_flow.svg", "‖∂L/∂h(t)‖ per time step"))
    model.zero_grad()
    return files, norms


# ------------------------------------------------------------------ subcommands

def cmd_figures(args):
    out = _out_dir(args.out)
    for number in FIGURES:
        path = os.path.join(out, f"fig{number.replace('.', '_')}.svg")
        save(figure(number), path)
        print(printable(path))


def cmd_draw(args):
    out = _out_dir(args.out)
    model = MODELS[args.model](args.seed)
    for stem, view in (("folded", lambda: folded(model)),
                       ("unrolled", lambda: unrolled(model, steps=args.steps))):
        path = os.path.join(out, f"{args.model}_{stem}.svg")
        save(view(), path)
        print(printable(path))
    roots = model.trace(args.steps)
    path = os.path.join(out, f"{args.model}_ops.svg")
    save(graph(roots[0]), path)
    print(printable(path))


def cmd_explore(args):
    out = _out_dir(args.out)
    if args.checkpoint and (args.steps is not None or args.seed is not None):
        given = " and ".join(f for f, v in (("--steps", args.steps), ("--seed", args.seed))
                             if v is not None)
        raise UsageError(f"{given} cannot be used with --checkpoint: the page shows the trained "
                         f"model on its task's own probe sequence")
    if args.checkpoint:
        meta = tg.read_meta(args.checkpoint).get("user")
        task_name = meta.get("task") if isinstance(meta, dict) else None
        if task_name not in rnn.tasks.TASKS:
            raise UsageError(f"--checkpoint '{args.checkpoint}' is not a training checkpoint of "
                             f"tinygraph train or demo")
        task, _, _, seed, _ = rnn.tasks.load_checkpoint(args.checkpoint, task_name)
        if task.model.name not in EXPLORABLE:
            raise UsageError(f"--checkpoint '{args.checkpoint}' holds a {task.model.name} model "
                             f"(task {task_name}), a tree and not an unroll over time: the "
                             f"explorer cannot show it (train drew its views into that folder)")
        if task.model.name != args.model:
            raise UsageError(f"--checkpoint '{args.checkpoint}' holds a {task.model.name} "
                             f"model (task {task_name}), not {args.model}")
        model = task.model
        before = rnn.tasks.TASKS[task_name](seed).model.state_dict()
        probe_args, probe_kwargs = task.probe()
        symbols = getattr(task, "vocab", None)
    else:
        seed = 0 if args.seed is None else args.seed
        model = MODELS[args.model](seed)
        before = None
        symbols = None
        probe_args, probe_kwargs = model_inputs(model, args.steps or EXPLORE_STEPS, seed)
    page = explore(model, *probe_args, before=before, symbols=symbols, **probe_kwargs)
    path = page.save(os.path.join(out, f"{args.model}_explorer.html"))
    print(printable(path))


def _smoothed(losses):
    """(steps, means, block): the losses averaged over blocks of ``block``, at most 250 points."""
    block = max(1, -(-len(losses) // 250))
    means = [float(np.mean(losses[i:i + block])) for i in range(0, len(losses), block)]
    ends = [min(i + block, len(losses)) for i in range(0, len(losses), block)]
    return ends, means, block


def loss_label(unit):
    """The loss axis of a task whose loss is in ``unit`` ("nats/char" -> "loss per character
    (nats)", "squared error/step" -> "squared error per step")."""
    what, _, per = unit.partition("/")
    per = {"char": "character"}.get(per, per)
    if what == "nats":
        return f"loss per {per} (nats)" if per else "loss (nats)"
    return f"{what} per {per}" if per else what


def write_loss_curve(losses, history, path, task, title):
    """The training loss (smoothed) and the held-out measurements of ``history``, on an axis
    named for the task's unit (every task's said "loss per character (nats)": a year
    classifier's nats per sentence, a signal's squared error per step)."""
    steps, means, block = _smoothed(losses)
    held = ([s for s, _, _ in history], [h for _, _, h in history])
    plots.loss_curve(steps, means, path, reference=task.reference, title=title, held_out=held,
                     label="training loss, " + (f"mean of every {block} updates" if block > 1
                                                else "each update"), ylabel=loss_label(task.unit))


def _train(task, first, steps, losses, history, args, out, seed):
    """run_training with checkpoints into ``out`` and SIGINT/SIGTERM turned into a clean stop."""
    checkpoints = rnn.tasks.Checkpoints(os.path.join(out, f"{task.name}_checkpoint.npz"), seed,
                                        args.checkpoint_every)
    with _stop_on_signals() as stop:
        history = rnn.tasks.run_training(task, first, steps, losses, Progress(steps), history,
                                         checkpoints, stop)
        reason = stop()      # a signal during the last checkpoint's write: it was written whole
        if reason:
            raise rnn.tasks.TrainingStopped(steps, steps, checkpoints.path, reason)
    return history, checkpoints.path


def cmd_train(args):
    out = _out_dir(args.out)
    steps = args.steps or rnn.tasks.TASKS[args.task].default_steps
    replacing = _previous_checkpoint(out, args.task, args.resume, args.force)
    if args.resume:
        task, first, losses, seed, history = rnn.tasks.load_checkpoint(args.resume, args.task)
        if args.seed is not None and args.seed != seed:
            raise UsageError(f"--resume: the checkpoint's run has seed {seed}, not --seed "
                             f"{args.seed}; a resume continues that run (leave out --seed)")
        if first >= steps:
            raise UsageError(f"--resume: the checkpoint is already at step {first}; "
                             f"ask for more --steps than that")
        note = rnn.train.threading_note(tg.read_meta(args.resume))
        if note:
            print(f"tinygraph train: note: {note}", file=sys.stderr)
    else:
        seed = 0 if args.seed is None else args.seed
        task, first, losses, history = rnn.tasks.TASKS[args.task](seed), 0, [], []
    if replacing:
        print(f"tinygraph train: {replacing}", file=sys.stderr)
    history, ckpt = _train(task, first, steps, losses, history, args, out, seed)
    write_loss_curve(losses, history, os.path.join(out, "loss.svg"), task, f"Loss ({task.name})")
    probe_args, probe_kwargs = task.probe()
    write_model_views(task.model, out, task.name, probe_args, probe_kwargs)
    report = "\n\n".join(task.report(seed))
    with tg.atomic_write(os.path.join(out, "samples.txt"), "train", OutputPathError) as f:
        f.write((report + "\n").encode("utf-8"))
    _, train, held = history[-1]
    print(f"after {steps} updates: training loss {train:.4f} (mean of the last "
          f"{min(task.window, len(losses))} updates), held-out loss {held:.4f} {task.unit} "
          f"({task.reference[0]} = {task.reference[1]:.4f})")
    print(report)
    print(printable(f"wrote {ckpt} and the plots and diagrams into {out}"))


def _gradient_check(seed):
    """tg.gradcheck on a tiny ElmanRNN: backprop through the unrolled DAG vs finite differences."""
    model = rnn.ElmanRNN(4, 3, 4, seed=seed)
    rng = np.random.default_rng(seed)
    xs, ys = rng.integers(4, size=(5, 2)), rng.integers(4, size=(5, 2))
    params = model.parameters()

    def loss(*_):
        return model.loss(xs, ys)
    tg.gradcheck(loss, params, rtol=1e-6)
    return (f"ElmanRNN(4, 3, 4), 5 steps, batch 2: backprop agrees with central finite "
            f"differences on all {sum(p.size for p in params)} parameter entries "
            f"(rtol 1e-6, float64).")


EXPLORER_STEPS = 40     # characters of the demo's explorer
COPY_UPDATES = 300      # updates of each design in the demo's long-delay comparison
COPY_SEEDS = 3          # its numbers vary with the seed: each design is trained from this many
COPY_DESIGNS = (rnn.tasks.LongCopyElman, rnn.tasks.LongCopyLSTM, rnn.tasks.LongCopyGRU)


def _spread(runs, geometric=False):
    """(mean, low, high) over the runs (rows) of equal length: arithmetic or geometric mean."""
    runs = np.asarray(runs, dtype=float)
    mean = np.exp(np.mean(np.log(runs), axis=0)) if geometric else np.mean(runs, axis=0)
    return mean, runs.min(axis=0), runs.max(axis=0)


def _every(n):
    """'every update' or 'every 15 updates'."""
    return "every update" if n <= 1 else f"every {n:,} updates"


def _percent_range(values):
    return f"{np.mean(values):.0%} ({min(values):.0%}–{max(values):.0%})"


def _copy_comparison(out, seed, updates):
    """Train Elman, LSTM and GRU (as many parameters) on the long-delay copy task for ``updates``
    updates each, from COPY_SEEDS seeds (``seed``, ``seed`` + 1, ...), measuring held-out recall
    every ``updates // 20`` updates; returns the page's table rows, the seeds, and the two
    charts (training loss beside held-out recall over training; the gradient over t).  Every
    line is the mean over the seeds (geometric for the gradient), with a band from the lowest
    to the highest seed."""
    seeds = [(seed + k) % (rnn.tasks.MAX_SEED + 1) for k in range(COPY_SEEDS)]
    every = max(1, updates // 20)
    rows, loss_of, recall_of, flow_of = [], {}, {}, {}
    for design in COPY_DESIGNS:
        losses_by_seed, recalls_by_seed, norms_by_seed = [], [], []
        for s in seeds:
            task = design(s)
            losses, recalls = [], [task.recall()]

            def measure(step, train, held, task=task, recalls=recalls):
                if step % every == 0 or step == updates:
                    recalls.append(task.recall())
            rnn.tasks.run_training(task, 0, updates, losses, measure)
            xs, ys = task.held
            norms_by_seed.append([n for _, n in gradient_norms(task.model.run(xs[:, :1], ys[:, :1]).loss)])
            losses_by_seed.append(_smoothed(losses)[1])
            recalls_by_seed.append(recalls)
        label = type(task.model).__name__
        blocks, _, block = _smoothed(losses)
        recall_steps = [0] + [k for k in range(1, updates + 1) if k % every == 0 or k == updates]
        loss_of[label] = (blocks, *_spread(losses_by_seed))
        recall_of[label] = (recall_steps, *_spread(recalls_by_seed))
        flow_mean, flow_low, flow_high = _spread(norms_by_seed, geometric=True)
        flow_of[label] = (np.arange(1, len(flow_mean) + 1), flow_mean, flow_low, flow_high)
        final = [r[-1] for r in recalls_by_seed]
        rows.append((f"{label}({task.model.n_hidden} hidden)", f"{rnn.tasks.n_parameters(task.model):,}",
                     _percent_range(final), ", ".join(f"{r:.0%}" for r in final),
                     f"{flow_mean[0]:.2g} / {flow_mean[-1]:.2g}"))
    n_symbols = rnn.tasks.LONG_COPY["n_symbols"]
    over = f"line: mean of seeds {', '.join(map(str, seeds))}; band: lowest to highest"
    smoothing = f"mean of every {block} updates" if block > 1 else "each update"
    files = [("copy_training.svg", f"Left: training loss per step ({smoothing}). Right: recall of "
                                   f"the held-out symbols, measured {_every(every)} during "
                                   f"training (chance {1 / n_symbols:.0%}). Each line is the mean "
                                   f"of seeds {', '.join(map(str, seeds))}, the band runs from the "
                                   "lowest to the highest seed (§10.7, §10.10)."),
             ("copy_gradient_flow.svg", "‖∂L/∂h(t)‖ over t for the first held-out sequence after "
                                        "training: geometric mean of the seeds, band from the "
                                        "lowest to the highest seed; the symbol is read at t = 1 "
                                        "(§10.7).")]
    plots.panels([{"series": loss_of, "title": f"training loss, {smoothing}",
                   "ylabel": "loss per step (nats)"},
                  {"series": recall_of, "title": f"held-out recall, measured {_every(every)}",
                   "ylabel": "symbols recalled", "percent": True, "ylim": (0, 1.05),
                   "reference": (f"chance ({1 / n_symbols:.0%})", 1 / n_symbols)}],
                 os.path.join(out, files[0][0]), title=f"Long-delay copy ({over})")
    plots.curves(flow_of, os.path.join(out, files[1][0]),
                 "Gradient reaching h(t), after training", "‖∂L/∂h(t)‖", xlabel="time step t",
                 log=True)
    return rows, seeds, files


def _learning_rates(task, steps):
    """What the character model's learning rate did over ``steps`` updates: it falls along a
    half cosine from ``task.lr`` to ``task.lr / 20`` at update ``task.anneal`` and then stays,
    so a shorter run (``--steps``) stops on the way down (the page said it fell to lr / 20)."""
    text = (f"learning rate {task.lr:g} falling along a half cosine to {task.lr / 20:g} at update "
            f"{task.anneal:,}")
    if steps < task.anneal:
        return f"{text} (this run stopped at update {steps:,}, at {task.learning_rate(steps - 1):.3g})"
    return text + (", then held" if steps > task.anneal else "")


def cmd_demo(args):
    out = _out_dir(args.out)
    t0 = time.perf_counter()
    print("checking gradients against finite differences ...", flush=True)
    check = _gradient_check(args.seed)

    task = rnn.tasks.CharTask(args.seed)
    steps = args.steps or task.default_steps
    model, n_vocab = task.model, len(task.vocab)
    print(f"training ElmanRNN({n_vocab}, {model.n_hidden}, {n_vocab}) on {task.corpus}.txt "
          f"({len(task.train_ids) + len(task.held_ids):,} characters; the last "
          f"{len(task.held_ids):,} held out) "
          f"for {steps:,} updates ...")
    start = time.perf_counter()
    losses = []
    initial = model.state_dict()
    kept = _keep_previous(out, f"{task.name}_checkpoint.npz")
    history, ckpt = _train(task, 0, steps, losses, [], args, out, args.seed)
    if kept is not None and _same_bytes(kept, ckpt):
        os.unlink(kept)         # the previous run wrote the very same checkpoint: nothing lost
    elif kept is not None:
        print(printable(f"kept the previous run's checkpoint as {kept}"))
    seconds = time.perf_counter() - start
    write_loss_curve(losses, history, os.path.join(out, "loss.svg"), task, "Character model")

    print("writing the explorer of the trained model ...")
    explore(model, task.xs[:EXPLORER_STEPS, :1], task.ys[:EXPLORER_STEPS, :1], before=initial,
            symbols=task.vocab,
            title=f"tinygraph explorer: the character model before and after {steps:,} "
                  "updates").save(os.path.join(out, "explorer.html"))
    print("drawing the trained model and the gradient flow ...")
    probe_args, probe_kwargs = task.probe()
    files, norms = write_model_views(model, out, "chars", probe_args, probe_kwargs)
    print(f"comparing Elman, LSTM and GRU on the long-delay copy task ({COPY_SEEDS} seeds) ...")
    copy_updates = min(COPY_UPDATES, steps)      # a short demo (--steps) stays short
    copy_rows, copy_seeds, copy_files = _copy_comparison(out, args.seed, copy_updates)
    print("writing the chapter's figures ...")
    figs = []
    for number in FIGURES:
        name = f"fig{number.replace('.', '_')}.svg"
        save(figure(number), os.path.join(out, name))
        figs.append((name, figure_caption(number)))

    _, _, held = history[-1]
    train = rnn.stream_loss(model, task.train_ids[:-1], task.train_ids[1:])
    page = Page("tinygraph demo: chapter 10 of Deep Learning, computed and drawn",
                "Every recurrent network here is a step function unrolled into the tinygraph DAG; "
                "back-propagation through time is ordinary backprop over that DAG. Every diagram "
                "below is derived from the computation itself. Figures are shown at the size they "
                "declare, all at one scale; a wider one scrolls inside its frame, and a click opens "
                "it alone.")
    passes = steps / task.chunks_per_pass
    window = min(task.window, steps)
    smoothing = _smoothed(losses)[2]
    page.section("The character model",
                 "A character-level Elman RNN (section 10.2, the network of figure 10.3) trained "
                 "on a story, its last tenth held out.").table([
                     ("text", f"{task.corpus}.txt: {len(task.train_ids) + len(task.held_ids):,} "
                              f"characters, vocabulary {n_vocab}; the first {len(task.train_ids):,} "
                              f"for training, the last {len(task.held_ids):,} "
                              f"({rnn.tasks.HELD_OUT:.0%}) held out"),
                     ("model", f"ElmanRNN({n_vocab}, {model.n_hidden}, {n_vocab}): "
                               f"{sum(p.size for p in model.parameters()):,} parameters"),
                     ("training", f"{steps:,} updates of truncated BPTT over {task.chunk} characters, "
                                  f"the state carried from chunk to chunk ({passes:.1f} passes over "
                                  f"the training text); Adam, {_learning_rates(task, steps)}, gradient "
                                  f"norm clipped at 5"),
                     ("time", f"{seconds:.0f} s ({steps / seconds:.0f} updates/s)"),
                     ("loss of the first update", f"{losses[0]:.3f} nats/char"),
                     ("training loss (the trained model on the training text)", f"{train:.3f} nats/char"),
                     ("held-out loss (the trained model on the unseen last 10%)", f"{held:.3f} nats/char"),
                     (task.reference[0], f"{task.reference[1]:.3f} nats/char")]).figures(
                     [("loss.svg", "Loss per character over training (§10.2.2): the "
                                   "training loss " + (f"as the mean of every {smoothing} updates"
                                                       if smoothing > 1 else "of each update")
                       + f", and the held-out loss of the model measured {_every(steps // 20)}.")])
    page.section("Losses during training",
                 f"Measured {_every(steps // 20)}. The training loss of a row is "
                 f"the mean of the losses of the updates it names (the last {window:,}, or all "
                 "so far); the held-out loss is the model's loss, at that update, on the "
                 "held-out text.").table(
        [(f"{s:,}", f"{max(1, s - task.window + 1):,}–{s:,}", f"{tr:.3f}", f"{h:.3f}")
         for s, tr, h in history],
        header=("after update", "updates averaged", "training loss: their mean (nats/char)",
                "held-out loss (nats/char)"))
    page.text("Samples", "\n\n".join(task.report(args.seed)), preformatted=True)
    page.text("Gradient check", check)
    page.link_list("Explorer", [("explorer.html", f"the explorer of the character model on the first "
                                                  f"{EXPLORER_STEPS} training characters, before "
                                                  "and after training")],
                   "One self-contained page: click any node of the unrolled graph for its value and "
                   "gradient, replay the engine's backward sweep, and read the connectivity "
                   "‖∂L(t)/∂h(k)‖ and the Jacobian spectra of the real computation.")
    trained = page.section("The trained model, drawn",
                           "Folded and unrolled views come from tracing the model's own step "
                           "function; the gradient-flow views colour each node by the norm of the "
                           "gradient reaching it (section 10.2.2, back-propagation through time).")
    if norms:
        ratio = norms[-1][1] / norms[0][1] if norms[0][1] else float("inf")
        trained.text(f"‖∂L/∂h(t)‖ over {len(norms)} steps of a training sequence: from "
                     f"{norms[0][1]:.3g} at t={norms[0][0]} to {norms[-1][1]:.3g} at "
                     f"t={norms[-1][0]} (ratio {ratio:.3g}).")
    trained.figures([(path, f"{caption[0].upper()}{caption[1:]}: the trained character model "
                            "(§10.2).") for path, caption in files])
    n_symbols, delay = rnn.tasks.LONG_COPY["n_symbols"], rnn.tasks.LONG_COPY["delay"]
    seeds = ", ".join(map(str, copy_seeds))
    page.section(f"Long delays: Elman, LSTM and GRU on the copy task ({copy_updates} updates each)",
                 f"One of {n_symbols} symbols, shown at the first step, must be written back after "
                 f"{delay} steps (chance {1 / n_symbols:.0%}); each design is trained from seeds "
                 f"{seeds}, since how far {copy_updates} updates get depends on the seed. The loss "
                 f"is averaged over all {delay + 2} steps of a sequence, most of which only ask "
                 "for the filler symbol, so it can fall to about zero while the symbol is not "
                 "recalled at all: read the held-out recall beside it. The gradient reaching "
                 "h(t) from the losses of a held-out sequence shows what makes the delay hard for "
                 "the plain recurrence (section 10.7) and what the gated cells carry back "
                 "(section 10.10).").table(
        copy_rows, header=("model", "parameters",
                           f"held-out recall after {copy_updates} updates: mean (lowest–highest) "
                           f"of seeds {seeds}", "recall per seed",
                           "‖∂L/∂h(t)‖ at t = 1 / at the last step (geometric mean of the seeds)")
    ).figures(copy_files)
    page.figures("The chapter's figures", figs,
                 "Figures 10.1–10.18 of chapter 10, each traced from a real model or computed; "
                 "the caption names the section of the chapter it belongs to.")
    page.text("Run", f"{time.perf_counter() - t0:.1f} s on this machine, seed {args.seed} "
                     f"(the long-delay comparison: seeds {seeds}).")
    path = page.write(out)
    print(f"training loss {train:.3f}, held-out loss {held:.3f} nats/char "
          f"({task.reference[0]} = {task.reference[1]:.3f})")
    print(printable(f"open {path}"))


# ------------------------------------------------------------------ entry point

DRAW_MAX_STEPS = 100_000          # an unroll this long still builds and renders, summarised
TRACE_BYTES_PER_STEP = 8_000      # peak memory of tracing one step of a `draw` model (measured)
EXPLORE_MAX_STEPS = 10_000        # the length bench/explorer.py shows still opens (issue 16)
EXPLORE_BYTES_PER_STEP = 100_000  # peak memory per step: 41 kB (elman), 79 kB (lstm) at 2,000 steps
TRAIN_MAX_STEPS = 10_000_000
LOSS_BYTES_PER_STEP = 40          # one loss: a Python float in the list, and 8 bytes in the checkpoint


def _size(nbytes):
    return next(f"{nbytes / 1000**k:,.1f} {unit}" for k, unit in ((4, "TB"), (3, "GB"), (2, "MB"),
                                                                 (1, "kB"), (0, "bytes"))
                if nbytes >= 1000**k or k == 0)


def _whole(text, low, high):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}")
    return value


def _seed(text):
    return _whole(text, 0, rnn.tasks.MAX_SEED)


def _positive(text):
    return _whole(text, 1, None)


def _steps(most, bytes_per_step, what):
    """An argparse type: a count of steps from 1 to ``most``, refused above with a memory estimate."""
    def parse(text):
        value = _whole(text, 1, None)
        if value > most:
            raise argparse.ArgumentTypeError(
                f"{value:,} is more than the {most:,} allowed: {what} would need about "
                f"{_size(value * bytes_per_step)} of memory ({bytes_per_step:,} bytes per step)")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _checkpoint_every(p):
    p.add_argument("--checkpoint-every", type=_positive, metavar="N",
                   help="write the checkpoint every N updates (default: every "
                        f"{rnn.tasks.CHECKPOINT_SECONDS:g} seconds); always on Ctrl-C / SIGTERM "
                        "and at the end")


def build_parser():
    parser = _Parser(prog="tinygraph", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("figures", help="write the chapter's figures fig10_1.svg, fig10_2.svg, ...")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_figures)

    p = sub.add_parser("draw", help="folded, unrolled and op-level views of one model")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--steps", type=_steps(DRAW_MAX_STEPS, TRACE_BYTES_PER_STEP, "tracing"),
                   default=3, help=f"time steps to unroll (recursive: the leaves of its "
                                   f"balanced tree; at most {DRAW_MAX_STEPS:,})")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=_seed, default=0, help="of the model's weights (default 0)")
    p.set_defaults(run=cmd_draw)

    p = sub.add_parser("explore", help="the explorer: one interactive page of a model's unroll, "
                                       "gradients and BPTT diagnostics")
    p.add_argument("--model", required=True, choices=EXPLORABLE,
                   help="any model of draw but recursive, a tree and not an unroll over time "
                        "(tinygraph draw --model recursive draws it)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=_steps(EXPLORE_MAX_STEPS, EXPLORE_BYTES_PER_STEP, "the explorer"),
                   help=f"length of the random sequence (default {EXPLORE_STEPS}, at most "
                        f"{EXPLORE_MAX_STEPS:,}; not with --checkpoint)")
    p.add_argument("--seed", type=_seed, help="of the model and the sequence (default 0; not "
                                               "with --checkpoint)")
    p.add_argument("--checkpoint", metavar="FILE", help="a checkpoint of tinygraph train or demo: "
                   "its trained model, before and after training, on the task's probe sequence")
    p.set_defaults(run=cmd_explore)

    p = sub.add_parser("train", help="train a design on built-in data")
    p.add_argument("--task", required=True, choices=sorted(rnn.tasks.TASKS))
    p.add_argument("--steps", type=_steps(TRAIN_MAX_STEPS, LOSS_BYTES_PER_STEP, "the loss history"),
                   help="number of updates (default: the task's own, "
                   + ", ".join(f"{name} {task.default_steps}" for name, task in rnn.tasks.TASKS.items()) + ")")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=_seed, help="default 0; with --resume, the checkpoint's")
    p.add_argument("--resume", metavar="CHECKPOINT")
    p.add_argument("--force", action="store_true",
                   help="start over even if --out holds a checkpoint of this task (replaces it)")
    _checkpoint_every(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("demo", help="the main job: train, check, draw, and write index.html")
    p.add_argument("--out", default="out", help="the folder it writes into (default: out)")
    p.add_argument("--steps", type=_steps(TRAIN_MAX_STEPS, LOSS_BYTES_PER_STEP, "the loss history"),
                   help=f"updates of the character model (default {rnn.tasks.CharTask.default_steps}, "
                        "about 26 s on an idle two-core machine; the whole demo takes about a minute)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="of the character model and the long-delay comparison's first seed "
                        "(default 0)")
    _checkpoint_every(p)
    p.set_defaults(run=cmd_demo)

    add_playground_parser(sub, _whole)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status: 0 on success, 2 on a user error, and
    130 / 143 when SIGINT / SIGTERM stopped it (training first writes its checkpoint).
    The commands that train (``TRAINING_COMMANDS``) run with one BLAS thread
    (:func:`viz.blas.one_blas_thread`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    threads = one_blas_thread() if args.command in TRAINING_COMMANDS else contextlib.nullcontext()
    try:
        with threads:
            if args.out is None:         # only the playground's --out is optional: nothing to lock
                args.run(args)
            elif args.command == "playground":      # it locks its --out itself while it runs
                args.out = _out_dir(args.out)
                args.run(args)
            else:
                with _locked(_out_dir(args.out)):
                    args.run(args)
    except rnn.tasks.TrainingStopped as e:
        return _stopped(e, args)
    except KeyboardInterrupt:
        print(f"tinygraph {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except (tg.TinygraphError, OSError) as e:
        print(printable(f"tinygraph {args.command}: error: {e}"), file=sys.stderr)
        return 2
    return 0


def command():
    """The ``tinygraph`` program (its console script): :func:`main` in a process of its own,
    whose allocator first keeps the memory numpy frees (:func:`keep_freed_memory`)."""
    keep_freed_memory()
    sys.exit(main())


TRAINING_COMMANDS = ("train", "demo", "playground")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameters (malloc.h)


def keep_freed_memory():
    """Ask glibc's allocator to keep the memory this process frees for its next allocations:
    arrays up to 64 MiB come from its heap, and up to 256 MiB freed at its top stay there.

    By default glibc hands a large freed block back to the system (or trims the heap), and the
    next array of that size is faulted in again page by page: a training update that makes and
    frees the same arrays every time paid hundreds of page faults for it (the demo's character
    model: about 1.3x the updates per second with this, bench/README.md).  It changes the whole process, so
    only the ``tinygraph`` program calls it, first thing; the library never does.  Returns True
    if the allocator took both settings; False elsewhere than glibc on Linux, or with
    ``TINYGRAPH_MALLOC=default`` in the environment (the allocator left as it is).
    """
    if os.environ.get("TINYGRAPH_MALLOC") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt        # this process's C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 64 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 256 << 20))


if __name__ == "__main__":
    command()
