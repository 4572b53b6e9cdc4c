"""No lost training: checkpoints as training goes, a clean stop on Ctrl-C or SIGTERM that
resumes bit for bit, several trainings into one --out, and the command line's bad input.

The fault tests run the real command in a child process and send it the real signal."""

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import rnn
import tinygraph as tg
from viz.cli import main

TINYGRAPH = [sys.executable, "-m", "viz.cli"]


def _train(task, first, steps, losses, path, seed=0, history=None):
    """rnn.tasks.run_training of ``task`` up to ``steps``, its last checkpoint written to ``path``."""
    rnn.tasks.run_training(task, first, steps, losses, history=history,
                           checkpoints=rnn.tasks.Checkpoints(path, seed, every=10**9))
    return path


def _assert_same_checkpoint(a, b):
    a, b = tg.read_checkpoint(a), tg.read_checkpoint(b)
    assert a.meta == b.meta
    assert sorted(a.arrays) == sorted(b.arrays)
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=key)


def _interrupt_mid_run(out, task, steps, sig):
    """Start ``tinygraph train`` in a child, send ``sig`` once it reports progress; returns
    (exit status, stderr)."""
    child = subprocess.Popen(TINYGRAPH + ["train", "--task", task, "--steps", str(steps),
                                          "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = child.stderr.readline()           # the first progress line: a tenth of the run done
    assert first.startswith("step "), first
    child.send_signal(sig)
    rest = child.stderr.read()
    child.stderr.close()
    return child.wait(timeout=60), first + rest


@pytest.mark.parametrize("task,steps,sig,status", [("chars", 100, signal.SIGINT, 130),
                                                   ("year", 300, signal.SIGTERM, 143)],
                         ids=["chars_ctrl_c", "year_sigterm"])
def test_a_signal_mid_run_checkpoints_and_the_resume_equals_an_uninterrupted_run(
        tmp_path, task, steps, sig, status):
    out = tmp_path / "interrupted"
    code, err = _interrupt_mid_run(out, task, steps, sig)
    assert code == status, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    ckpt = out / f"{task}_checkpoint.npz"
    assert f"interrupted by {sig.name}" in last and f"--resume {ckpt}" in last
    reached = tg.read_meta(ckpt)["user"]["step"]
    assert 0 < reached < steps and f"after update {reached} of {steps}" in last

    resumed, first, losses, seed, history = rnn.tasks.load_checkpoint(ckpt, task)
    _train(resumed, first, steps, losses, ckpt, seed, history)
    whole = _train(rnn.tasks.TASKS[task](0), 0, steps, [], tmp_path / "whole.npz")
    _assert_same_checkpoint(whole, ckpt)


def _year_task_run(tmp_path, steps, **kwargs):
    task = rnn.tasks.YearTask(0)
    checkpoints = rnn.tasks.Checkpoints(tmp_path / "year.npz", seed=0, **kwargs)
    rnn.tasks.run_training(task, 0, steps, [], checkpoints=checkpoints)
    return checkpoints.saved


def test_checkpoint_every_n_updates_and_after_the_last(tmp_path):
    assert _year_task_run(tmp_path, 10, every=4) == [4, 8, 10]


def test_the_default_checkpoints_by_time(tmp_path):
    assert _year_task_run(tmp_path, 5, seconds=0.0) == [1, 2, 3, 4, 5]
    assert _year_task_run(tmp_path, 5, seconds=3600.0) == [5]


def test_a_stop_request_saves_after_the_update_in_progress_and_resumes_exactly(tmp_path):
    task, losses = rnn.tasks.YearTask(0), []
    checkpoints = rnn.tasks.Checkpoints(tmp_path / "year.npz", seed=0, every=1000)
    with pytest.raises(rnn.tasks.TrainingStopped) as info:
        rnn.tasks.run_training(task, 0, 12, losses, checkpoints=checkpoints,
                               stop=lambda: signal.SIGINT if len(losses) == 5 else None)
    assert (info.value.step, info.value.reason, checkpoints.saved) == (5, signal.SIGINT, [5])
    resumed, first, resumed_losses, _, history = rnn.tasks.load_checkpoint(tmp_path / "year.npz",
                                                                           "year")
    rnn.tasks.run_training(resumed, first, 12, resumed_losses, history=history)
    whole, whole_losses = rnn.tasks.YearTask(0), []
    rnn.tasks.run_training(whole, 0, 12, whole_losses)
    assert resumed_losses == whole_losses
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_concurrent_trainings_into_one_out_leave_one_whole_run_and_only_it_claims_success(tmp_path):
    out = tmp_path / "shared"
    children = [subprocess.Popen(TINYGRAPH + ["train", "--task", "year", "--steps", "20", "--seed",
                                              str(seed), "--out", str(out), "--checkpoint-every", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for seed in range(2)]
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=120)
        results.append((child.returncode, stdout.decode(), stderr.decode()))
    # whichever came second found the first one's lock, or (if the first had finished) its
    # checkpoint: refused either way, and never "wrote ..."
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (_, won, _), = [r for r in results if r[0] == 0]
    (_, _, refused), = [r for r in results if r[0] == 2]
    assert "wrote " in won
    assert "another tinygraph command is writing" in refused or "--resume" in refused, refused
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.startswith(".")]          # no temporary or lock files left
    for name in names:
        if name.endswith(".svg"):
            ET.parse(out / name)                                 # whole XML, not interleaved
    assert rnn.tasks.load_checkpoint(out / "year_checkpoint.npz", "year")[1] == 20
    report = (out / "samples.txt").read_text()
    assert report.count("held-out accuracy") == 1 and report.endswith("\n")


def _checkpoint_with_meta(tmp_path, **change):
    task = rnn.tasks.YearTask(0)
    path = tmp_path / "year.npz"
    rnn.tasks.save_checkpoint(path, task, 0, [], 0)
    ckpt = tg.read_checkpoint(path)
    meta = ckpt.meta
    meta["user"].update(change)
    tg.save_arrays(path, ckpt.arrays, meta=meta)
    return path


@pytest.mark.parametrize("argv,details", [
    (["train", "--task", "year", "--seed", "-1"], ["--seed", "at least 0", "-1"]),
    (["train", "--task", "year", "--seed", str(2**64)], ["--seed", "at most 4,294,967,295"]),
    (["train", "--task", "year", "--seed", "zero"], ["--seed", "whole number", "'zero'"]),
    (["train", "--task", "year", "--steps", "0"], ["--steps", "at least 1"]),
    (["train", "--task", "year", "--steps", str(10**9)],
     ["--steps", "1,000,000,000", "10,000,000 allowed", "40.0 GB"]),
    (["draw", "--model", "elman", "--steps", "100000000"],
     ["--steps", "100,000 allowed", "800.0 GB", "8,000 bytes per step"]),
    (["train", "--task", "year", "--checkpoint-every", "0"], ["--checkpoint-every", "at least 1"]),
    (["demo", "--seed", "-3"], ["--seed", "-3"]),
], ids=["seed_negative", "seed_beyond_32_bits", "seed_text", "steps_zero", "train_steps_huge",
        "draw_steps_huge", "checkpoint_every_zero", "demo_seed_negative"])
def test_bad_arguments_are_one_line_and_status_2(tmp_path, capsys, argv, details):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    for detail in details:
        assert detail in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("change,details", [
    ({"step": -5}, ["meta step -5", "step >= 0"]),
    ({"step": 3}, ["meta step 3", "0 losses", "(3,)"]),
    ({"step": 2.5}, ["meta step 2.5"]),
    ({"seed": 2**40}, ["seed 1099511627776"]),
    ({"task": "chars"}, ["task 'chars'", "not 'year'"]),
], ids=["negative_step", "step_beyond_the_losses", "fractional_step", "seed_out_of_range",
        "another_task"])
def test_resume_refuses_a_checkpoint_whose_meta_does_not_fit(tmp_path, capsys, change, details):
    path = _checkpoint_with_meta(tmp_path, **change)
    code = main(["train", "--task", "year", "--steps", "5", "--out", str(tmp_path / "out"),
                 "--resume", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for detail in details:
        assert detail in err


def test_resume_of_a_non_checkpoint_gives_no_allow_pickle_advice(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("just some text\n")
    code = main(["train", "--task", "year", "--steps", "5", "--out", str(tmp_path / "out"),
                 "--resume", str(tmp_path / "notes.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "notes.npz" in err and "allow_pickle" not in err


def test_a_renderer_that_writes_nothing_fails_the_command_and_leaves_no_empty_svg(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINYGRAPH_DOT", "/bin/true")
    assert main(["figures", "--out", str(tmp_path)]) == 2
    assert "no output" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def _interrupt_at_line(n, codes):
    """A tracer raising KeyboardInterrupt at the ``n``-th line run in a frame of ``codes`` (as a
    Ctrl-C landing there); the tracer then switches itself off.  Returns (tracer, counter)."""
    seen = [0]

    def local(frame, event, arg):
        if event == "line":
            seen[0] += 1
            if seen[0] == n:
                raise KeyboardInterrupt(f"injected at line {frame.f_lineno} of {frame.f_code.co_name}")
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code in codes else None
    return tracer, seen


def test_an_interrupt_anywhere_in_an_update_leaves_all_of_it_or_none(tmp_path):
    # was: an interrupt landing after optimizer.step() had updated the parameters (while it
    # bumped their versions, or just before Trainer.update counted the update) left
    # trainer.steps at 0 with optimizer.steps 1 and the parameters moved
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (6, 2))

    def fresh():
        return rnn.Trainer(rnn.ElmanRNN(4, 5, 4, seed=0), lr=0.05, clip=1.0)

    untouched, done = fresh(), fresh()
    done.step(xs, ys)
    states = [(t.steps, t.optimizer.steps, [p.data.copy() for p in t.model.parameters()],
               t.optimizer.state_dict()) for t in (untouched, done)]
    # not inside bump_version: a tracer sees a line event where its `with` lock is released,
    # which no signal handler can (CPython runs those on calls and backward jumps)
    codes = {rnn.Trainer.step.__code__, rnn.Trainer.update.__code__,
             tg.optim.Optimizer.step.__code__, type(done.optimizer)._update.__code__}
    outcomes, n = set(), 0
    while True:
        n += 1
        trainer = fresh()
        tracer, seen = _interrupt_at_line(n, codes)
        previous = sys.gettrace()      # a coverage tool's or debugger's, put back after
        sys.settrace(tracer)
        try:
            trainer.step(xs, ys)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(previous)
        matches = [k for k, (steps, opt_steps, params, opt_state) in enumerate(states)
                   if trainer.steps == steps and trainer.optimizer.steps == opt_steps
                   and all(np.array_equal(p.data, q) for p, q in zip(trainer.model.parameters(), params))
                   and all(np.array_equal(v, opt_state[key])
                           for key, v in trainer.optimizer.state_dict().items())]
        assert len(matches) == 1, (f"interrupt at line event {n}: trainer.steps "
                                   f"{trainer.steps}, optimizer.steps {trainer.optimizer.steps}")
        outcomes.add(matches[0])
        if seen[0] < n:            # ran to the end: no line left to interrupt
            break
    assert n > 20 and outcomes == {0, 1}
