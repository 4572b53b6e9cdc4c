"""The ``tinygraph`` command: the project's front door.

``tinygraph figures`` writes the chapter's ten figures, ``draw`` the three
views of one model, ``train`` trains a design on built-in data (with a live
progress line, a checkpoint, the loss curve, samples and the gradient-flow
view, and ``--resume``), and ``demo`` -- the main job -- trains a small
character model, checks its gradients against finite differences and writes a
summary page.  It lives in ``viz`` because it is the one module that uses all
three layers (tinygraph -> rnn -> viz).  A user's mistake (unknown model or
task, unwritable ``--out``, bad checkpoint) is one line on stderr and exit
status 2, never a traceback.
"""

import argparse
import os
import sys
import time

import numpy as np

import rnn
import tinygraph as tg

from . import plots
from .figures import FIGURES, figure
from .opgraph import gradient_norms, graph
from .page import Page
from .render import save
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
    "system": _dynamical_system,
}


# ------------------------------------------------------------------ training tasks

class CharTask:
    """Character-level language model (ElmanRNN) on the bundled text, truncated BPTT."""

    name = "chars"

    def __init__(self, seed, hidden=64, batch=16, chunk=25, lr=1e-2):
        self.vocab, ids = rnn.datasets.char_corpus()
        self.xs, self.ys = rnn.datasets.stream_batches(ids, batch)
        self.chunk = chunk
        self.chunks_per_pass = len(self.xs) // chunk
        self.model = rnn.ElmanRNN(len(self.vocab), hidden, len(self.vocab), seed=seed)
        self.trainer = rnn.Trainer(self.model, lr=lr, clip=5.0)
        self.state = None
        self.reference = ("ln(vocab): a uniform guess", float(np.log(len(self.vocab))))

    def step(self, k):
        """Update number ``k`` (0-based): one chunk; returns the loss per character."""
        i = k % self.chunks_per_pass
        if i == 0:
            self.state = None
        sl = slice(i * self.chunk, (i + 1) * self.chunk)
        run = self.model.run(self.xs[sl], self.ys[sl], h0=self.state)
        self.trainer.update(run.loss)
        self.state = run.last.detach()
        return run.loss.item() / self.chunk

    def extra_state(self):
        return {} if self.state is None else {"carried_h": self.state.data}

    def load_extra(self, arrays):
        self.state = tg.tensor(arrays["carried_h"]) if "carried_h" in arrays else None

    def sample_text(self, seed, length=240, temperature=0.8):
        prompt = self.vocab.encode("The ")
        ids = self.model.generate(prompt, length, temperature=temperature, seed=seed)
        return "The " + self.vocab.decode(ids)

    def report(self, seed):
        greedy = self.model.generate(self.vocab.encode("The "), 120, temperature=0)
        return [f"sample (temperature 0.8, seed {seed}):\n{self.sample_text(seed)}",
                f"greedy decoding:\nThe {self.vocab.decode(greedy)}"]

    def probe(self):
        """A short labelled sequence to draw and to measure gradient flow on."""
        return (self.xs[:20, :1], self.ys[:20, :1]), {}


class YearTask:
    """The chapter's year task: SequenceToOne reads a sentence and names its year."""

    name = "year"

    def __init__(self, seed, hidden=32, batch=32, lr=2e-2):
        self.data = rnn.datasets.year_task(512, seed=seed)
        self.test = rnn.datasets.year_task(256, seed=seed + 1000)
        self.batch = batch
        n_words = len(self.data.vocab)
        self.model = rnn.SequenceToOne(n_words, hidden, len(self.data.years), seed=seed)
        self.trainer = rnn.Trainer(self.model, lr=lr, clip=5.0)
        self.reference = ("ln(classes): a uniform guess", float(np.log(len(self.data.years))))

    def step(self, k):
        n = self.data.xs.shape[1]
        start = (k * self.batch) % n
        cols = np.arange(start, start + self.batch) % n
        mask = self.data.mask[:, cols]
        steps = int(mask.sum(axis=0).max())
        loss = self.model.loss(self.data.xs[:steps, cols], self.data.labels[cols],
                               mask=mask[:steps])
        self.trainer.update(loss)
        return loss.item()

    def extra_state(self):
        return {}

    def load_extra(self, arrays):
        pass

    def accuracy(self):
        with tg.no_grad():
            pred = self.model.predict(self.test.xs, mask=self.test.mask)
        return float(np.mean(pred == self.test.labels))

    def report(self, seed):
        return [f"held-out accuracy: {self.accuracy():.1%} on {len(self.test.labels)} sentences"]

    def probe(self):
        steps = int(self.data.mask[:, 0].sum())
        return (self.data.xs[:steps, :1], self.data.labels[:1]), {}


class CopyTask:
    """A long-memory task: ElmanRNN copies 5 symbols back after a delay of 10 steps."""

    name = "copy"

    def __init__(self, seed, hidden=64, batch=32, lr=1e-2):
        self.seed = seed
        self.batch = batch
        self.model = rnn.ElmanRNN(10, hidden, 10, seed=seed)
        self.trainer = rnn.Trainer(self.model, lr=lr, clip=1.0)
        self.reference = ("no memory: ln(8) x 5 / 20 per step", float(np.log(8) * 5 / 20))

    def step(self, k):
        xs, ys = rnn.datasets.copy_task(self.batch, seed=self.seed * 100_003 + k)
        loss = self.model.loss(xs, ys)
        self.trainer.update(loss)
        return loss.item() / len(xs)

    def extra_state(self):
        return {}

    def load_extra(self, arrays):
        pass

    def report(self, seed):
        xs, ys = rnn.datasets.copy_task(256, seed=seed + 7)
        with tg.no_grad():
            outputs, _, _ = self.model(xs)
        pred = np.stack([o.data.argmax(-1) for o in outputs])
        recall = float(np.mean(pred[-5:] == ys[-5:]))
        return [f"symbols recalled after the delay: {recall:.1%} (chance 12.5%)"]

    def probe(self):
        xs, ys = rnn.datasets.copy_task(1, seed=1)
        return (xs, ys), {}


TASKS = {"chars": CharTask, "year": YearTask, "copy": CopyTask}


# ------------------------------------------------------------------ checkpoints

def save_checkpoint(path, task, step, losses, seed):
    arrays = {f"model/{k}": v for k, v in task.model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in task.trainer.optimizer.state_dict().items()})
    arrays.update({f"extra/{k}": v for k, v in task.extra_state().items()})
    arrays.update({"meta/task": np.array(task.name), "meta/step": np.array(step),
                   "meta/seed": np.array(seed), "meta/losses": np.array(losses, dtype=np.float64)})
    tg.save_arrays(path, arrays)


def load_checkpoint(path, task_name):
    """Read a checkpoint; returns (task, step, losses, seed).  Nothing is half-loaded."""
    arrays = tg.load_arrays(path)
    try:
        name = str(arrays["meta/task"])
        step, seed = int(arrays["meta/step"]), int(arrays["meta/seed"])
        losses = [float(v) for v in arrays["meta/losses"]]
    except (KeyError, ValueError, TypeError) as e:
        raise tg.CheckpointError(f"'{path}' is not a tinygraph training checkpoint "
                                 f"(missing {e})") from None
    if name != task_name:
        raise tg.CheckpointError(f"'{path}' is a checkpoint of task '{name}', not '{task_name}'")
    task = TASKS[name](seed)
    part = {p: {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(p + "/")}
            for p in ("model", "optim", "extra")}
    snapshot = task.model.state_dict()
    task.model.load_state_dict(part["model"])
    try:
        task.trainer.optimizer.load_state_dict(part["optim"])
    except tg.CheckpointError:
        task.model.load_state_dict(snapshot)
        raise
    task.load_extra(part["extra"])
    return task, step, losses, seed


# ------------------------------------------------------------------ progress

class Progress:
    """A live progress line: step, loss, steps/s and time left (one line per update on a tty)."""

    def __init__(self, total, stream=None, every=None):
        self.total = total
        self.stream = stream = stream or sys.stderr
        self.tty = stream.isatty()
        self.every = every or (1 if self.tty else max(1, total // 10))
        self.start = time.perf_counter()
        self.done = 0

    def __call__(self, step, loss):
        self.done += 1
        if step % self.every and step != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - step) / rate if rate > 0 else 0.0
        line = f"step {step}/{self.total}  loss {loss:.4f}  {rate:.1f} steps/s  {left:.0f}s left"
        self.stream.write(("\r" + line.ljust(72)) if self.tty else line + "\n")
        if self.tty and step == self.total:
            self.stream.write("\n")
        self.stream.flush()


def run_training(task, first, steps, losses, stream=None):
    """Updates ``first`` .. ``steps`` - 1 of ``task``, appending to ``losses``."""
    progress = Progress(steps, stream)
    for k in range(first, steps):
        losses.append(task.step(k))
        progress(k + 1, losses[-1])
    return losses


def _out_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write to --out '{path}': {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write to --out '{path}': permission denied")
    return path


def write_model_views(model, out, stem, probe_args, probe_kwargs, steps=3):
    """Folded, unrolled, op-level and gradient-flow views of ``model``; returns [(file, caption)]."""
    files = [(f"{stem}_folded.svg", f"{model.name}: folded circuit (black square = one-step delay)"),
             (f"{stem}_unrolled.svg", f"{model.name}: unrolled graph, {steps} steps")]
    save(folded(model), os.path.join(out, files[0][0]))
    save(unrolled(model, steps=steps), os.path.join(out, files[1][0]))
    save(unrolled(model, steps=12, grads=True), os.path.join(out, f"{stem}_unrolled_grads.svg"))
    files.append((f"{stem}_unrolled_grads.svg", f"{model.name}: gradient flow, each variable "
                                               f"coloured by ‖∂L/∂v(t)‖ (12 steps, summarised)"))
    loss = model.loss(*probe_args, **probe_kwargs)
    norms = gradient_norms(loss)
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
        print(path)


def cmd_draw(args):
    out = _out_dir(args.out)
    model = MODELS[args.model](args.seed)
    for stem, view in (("folded", lambda: folded(model)),
                       ("unrolled", lambda: unrolled(model, steps=args.steps))):
        path = os.path.join(out, f"{args.model}_{stem}.svg")
        save(view(), path)
        print(path)
    roots = model.trace(args.steps)
    path = os.path.join(out, f"{args.model}_ops.svg")
    save(graph(roots[0]), path)
    print(path)


def cmd_train(args):
    out = _out_dir(args.out)
    if args.resume:
        task, first, losses, seed = load_checkpoint(args.resume, args.task)
        if first >= args.steps:
            raise UsageError(f"--resume: the checkpoint is already at step {first}; "
                             f"ask for more --steps than that")
    else:
        task, first, losses, seed = TASKS[args.task](args.seed), 0, [], args.seed
    run_training(task, first, args.steps, losses)
    ckpt = os.path.join(out, f"{task.name}_checkpoint.npz")
    save_checkpoint(ckpt, task, args.steps, losses, seed)
    plots.loss_curve(np.arange(1, len(losses) + 1), losses, os.path.join(out, "loss.svg"),
                     reference=task.reference, title=f"Training loss ({task.name})")
    probe_args, probe_kwargs = task.probe()
    write_model_views(task.model, out, task.name, probe_args, probe_kwargs)
    report = "\n\n".join(task.report(seed))
    with open(os.path.join(out, "samples.txt"), "w", encoding="utf-8") as f:
        f.write(report + "\n")
    print(f"final loss {losses[-1]:.4f} after {len(losses)} steps "
          f"({task.reference[0]} = {task.reference[1]:.4f})")
    print(report)
    print(f"wrote {ckpt} and the plots and diagrams into {out}")


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


def cmd_demo(args):
    out = _out_dir(args.out)
    t0 = time.perf_counter()
    page = Page("tinygraph demo: chapter 10 of Deep Learning, computed and drawn",
                "Every recurrent network here is a step function unrolled into the tinygraph DAG; "
                "back-propagation through time is ordinary backprop over that DAG. Every diagram "
                "below is derived from the computation itself.")
    print("checking gradients against finite differences ...")
    page.text("Gradient check", _gradient_check(args.seed))

    print(f"training a character model on the bundled text for {args.steps} steps ...")
    task = CharTask(args.seed)
    losses = run_training(task, 0, args.steps, [])
    plots.loss_curve(np.arange(1, len(losses) + 1), losses, os.path.join(out, "loss.svg"),
                     reference=task.reference, title="Character model: training loss")
    save_checkpoint(os.path.join(out, "chars_checkpoint.npz"), task, args.steps, losses, args.seed)
    page.table("Training", [("model", f"ElmanRNN, vocabulary {len(task.vocab)}, hidden 64"),
                            ("updates", f"{len(losses)} (truncated BPTT, 25 steps x 16 streams)"),
                            ("first loss", f"{losses[0]:.3f} nats/char"),
                            ("last loss (mean of last 20)", f"{np.mean(losses[-20:]):.3f} nats/char"),
                            (task.reference[0], f"{task.reference[1]:.3f} nats/char")],
               header=("", ""))
    page.figures("Loss curve", [("loss.svg", "loss per character during training")])

    print("drawing the trained model and the gradient flow ...")
    probe_args, probe_kwargs = task.probe()
    files, norms = write_model_views(task.model, out, "chars", probe_args, probe_kwargs)
    page.figures("The trained model", files,
                 "Folded and unrolled views come from tracing the model's own step function; the "
                 "gradient-flow view colours each node by the norm of the gradient reaching it.")
    if norms:
        ratio = norms[-1][1] / norms[0][1] if norms[0][1] else float("inf")
        page.text("Gradient flow", f"‖∂L/∂h(t)‖ over {len(norms)} steps of a training sequence: "
                                   f"from {norms[0][1]:.3g} at t={norms[0][0]} to {norms[-1][1]:.3g} "
                                   f"at t={norms[-1][0]} (ratio {ratio:.3g}).")
    page.text("Samples", "\n\n".join(task.report(args.seed)), preformatted=True)

    print("writing the chapter's figures ...")
    figs = []
    for number in FIGURES:
        name = f"fig{number.replace('.', '_')}.svg"
        save(figure(number), os.path.join(out, name))
        figs.append((name, f"Figure {number}"))
    page.figures("The chapter's figures", figs)
    page.text("Run", f"{time.perf_counter() - t0:.1f} s on this machine, seed {args.seed}.")
    path = page.write(out)
    print(f"final loss {np.mean(losses[-20:]):.3f} nats/char (ln vocab = {task.reference[1]:.3f})")
    print(f"open {path}")


# ------------------------------------------------------------------ entry point

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(prog="tinygraph", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("figures", help="write the chapter's figures fig10_1.svg ... fig10_10.svg")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_figures)

    p = sub.add_parser("draw", help="folded, unrolled and op-level views of one model")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_draw)

    p = sub.add_parser("train", help="train a design on built-in data")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", metavar="CHECKPOINT")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("demo", help="the main job: train, check, draw, and write index.html")
    p.add_argument("--out", default="out")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0 on success, 2 on a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "steps", 1) is not None and getattr(args, "steps", 1) < 1:
        parser.error("--steps must be at least 1")
    try:
        args.run(args)
    except (tg.TinygraphError, OSError) as e:
        print(f"tinygraph {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
