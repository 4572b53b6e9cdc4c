"""Issue 19, runs: no run is lost or left half done, a failed step changes nothing, the same
seed writes the same bytes, and the command line and the designs refuse bad input clearly."""

import fcntl
import os
import signal
import subprocess
import sys
import time
import types
import zipfile

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz import cli
from viz.cli import main

TINYGRAPH = [sys.executable, "-m", "viz.cli"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DESIGNS = {
    "ElmanRNN": lambda seed: rnn.ElmanRNN(5, 4, 5, seed=seed),
    "JordanRNN": lambda seed: rnn.JordanRNN(5, 4, 5, seed=seed),
    "SequenceToOne": lambda seed: rnn.SequenceToOne(5, 4, 3, seed=seed),
    "VectorToSequence": lambda seed: rnn.VectorToSequence(5, 4, 3, seed=seed),
    "ConditionalRNN": lambda seed: rnn.ConditionalRNN(5, 4, 5, seed=seed),
    "LSTM": lambda seed: rnn.LSTM(5, 4, 5, seed=seed),
    "GRU": lambda seed: rnn.GRU(5, 4, 5, seed=seed),
    "BidirectionalRNN": lambda seed: rnn.BidirectionalRNN(5, 4, 5, seed=seed),
    "EncoderDecoder": lambda seed: rnn.EncoderDecoder(5, 4, 5, seed=seed),
    "DeepRNN": lambda seed: rnn.DeepRNN(5, 4, 5, seed=seed),
    "RecursiveNet": lambda seed: rnn.RecursiveNet(5, 4, 3, seed=seed),
    "LeakyRNN": lambda seed: rnn.LeakyRNN(5, 4, 5, seed=seed),
    "EchoStateNetwork": lambda seed: rnn.EchoStateNetwork(5, 4, 2, seed=seed),
    "MemoryNetwork": lambda seed: rnn.MemoryNetwork(5, 4, 5, seed=seed),
}


def _params(model):
    return [p.data.copy() for p in model.parameters()]


def _assert_same_arrays(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ designs: bad input

@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_refuses_a_negative_seed_naming_itself_and_the_argument(design):
    with pytest.raises(tg.ConfigError) as info:
        DESIGNS[design](-1)
    assert design in str(info.value) and "seed" in str(info.value) and "-1" in str(info.value)


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_takes_a_generator_as_its_seed(design):
    a = DESIGNS[design](np.random.default_rng(7))
    b = DESIGNS[design](np.random.default_rng(7))
    _assert_same_arrays(_params(a), _params(b))


EMPTY_BATCHES = {
    "vec2seq_no_vectors": (lambda: rnn.VectorToSequence(5, 4, 3),
                           (np.zeros((0, 5)), np.zeros((3, 0), int))),
    "elman_no_sequences": (lambda: rnn.ElmanRNN(5, 4, 5),
                           (np.zeros((3, 0), int), np.zeros((3, 0), int))),
    "encdec_no_sequences": (lambda: rnn.EncoderDecoder(5, 4, 5),
                            (np.zeros((3, 0), int), np.zeros((2, 0), int))),
    "esn_no_sequences": (lambda: rnn.EchoStateNetwork(5, 4, 2),
                         (np.zeros((3, 0, 5)), np.zeros((3, 0, 2)))),
    "recursive_no_trees": (lambda: rnn.RecursiveNet(5, 4, 3),
                           ((np.zeros(0, int), np.zeros(0, int)), np.zeros(0, int))),
}


@pytest.mark.parametrize("case", sorted(EMPTY_BATCHES))
def test_an_empty_batch_is_refused_before_any_loss_or_update(case):
    make, args = EMPTY_BATCHES[case]
    model = make()
    trainer = rnn.Trainer(model, lr=0.1)
    before, state = _params(model), trainer.optimizer.state_dict()
    with pytest.raises(tg.ShapeError, match="empty"):
        model.loss(*args)
    with pytest.raises(tg.ShapeError, match="empty"):
        trainer.step(*args)
    _assert_same_arrays(before, _params(model))
    assert trainer.steps == 0 and trainer.optimizer.state_dict().keys() == state.keys()


def test_a_user_recurrence_refuses_an_empty_batch_of_initial_states():
    W = tg.Parameter(np.eye(2) * 0.5, name="W")
    system = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=2, state_name="s")
    with pytest.raises(tg.ShapeError, match="empty batch"):
        system.run(steps=3, h0=np.zeros((0, 2)))


@pytest.mark.parametrize("xs,said", [([0, None, 1], "None at index 1"),
                                     (np.array([0, "a"], dtype=object), "a str ('a') at index 1"),
                                     (np.array([0, 1], dtype=object), "dtype object")],
                         ids=["none_in_a_list", "text_in_an_object_array", "object_array"])
def test_inputs_that_are_not_numbers_are_named_and_not_called_ragged(xs, said):
    with pytest.raises(tg.DTypeError) as info:
        rnn.ElmanRNN(5, 4, 5).loss(xs, [0] * len(xs))
    assert said in str(info.value) and "ragged" not in str(info.value)


def test_sequences_of_different_lengths_are_still_called_ragged():
    with pytest.raises(tg.ShapeError, match="ragged"):
        rnn.ElmanRNN(5, 4, 5).loss([[0, 1], [2]], [[0, 1], [2]])


# ------------------------------------------------------------------ Trainer: non-finite loss

def _nan_batch():
    xs = np.ones((4, 2, 5))
    xs[2, 1, 3] = np.nan           # reaches the loss at t=3 only
    return xs, np.zeros((4, 2), int)


def test_the_trainer_refuses_a_nan_loss_naming_the_update_and_the_step_and_changes_nothing():
    model = rnn.ElmanRNN(5, 4, 5)
    trainer = rnn.Trainer(model, lr=0.1)
    trainer.step(np.ones((4, 2, 5)), np.zeros((4, 2), int))
    before, state = _params(model), trainer.optimizer.state_dict()
    with pytest.raises(rnn.NonFiniteLossError) as info:
        trainer.step(*_nan_batch())
    assert "update 2" in str(info.value) and "L(3)" in str(info.value)
    _assert_same_arrays(before, _params(model))
    after = trainer.optimizer.state_dict()
    assert after.keys() == state.keys()
    _assert_same_arrays([state[k] for k in sorted(state)], [after[k] for k in sorted(after)])
    assert trainer.steps == 1


def test_the_trainer_refuses_a_non_finite_gradient_of_a_finite_loss():
    U = tg.Parameter(np.ones((3, 2)), name="U")
    V = tg.Parameter(np.ones((2, 3)), name="V")
    cell = rnn.Recurrence(lambda h, x: (x @ U.T) ** 0.5 + h, [U, V], n_state=3, n_in=2,
                          readout=lambda h: h @ V.T, name="root")
    trainer = rnn.Trainer(cell, lr=0.1)
    before = _params(cell)
    with np.errstate(divide="ignore", invalid="ignore"):    # d sqrt(u)/du at u = 0
        with pytest.raises(rnn.NonFiniteLossError, match="update 1.*gradient of parameter U"):
            trainer.step(np.zeros((2, 2)), np.zeros(2, int))
    _assert_same_arrays(before, _params(cell))
    assert trainer.steps == 0


def test_skip_nonfinite_skips_the_batch_says_so_and_trains_on_the_next():
    model = rnn.ElmanRNN(5, 4, 5)
    trainer = rnn.Trainer(model, lr=0.1, skip_nonfinite=True)
    before = _params(model)
    with pytest.warns(RuntimeWarning, match="update 1.*L\\(3\\).*skipped"):
        loss, norm = trainer.step(*_nan_batch())
    assert np.isnan(loss) and np.isnan(norm)
    _assert_same_arrays(before, _params(model))
    assert trainer.steps == 0 and len(trainer.skipped) == 1 and "L(3)" in trainer.skipped[0]
    trainer.step(np.ones((4, 2, 5)), np.zeros((4, 2), int))
    assert trainer.steps == 1 and not np.array_equal(before[0], model.parameters()[0].data)


# ------------------------------------------------------------------ files

@pytest.mark.parametrize("call", [lambda: tg.load_arrays(None), lambda: tg.save_arrays(None, {}),
                                  lambda: tg.read_meta(None), lambda: tg.read_headers(3)],
                         ids=["load_arrays", "save_arrays", "read_meta", "read_headers"])
def test_a_path_that_is_not_a_path_is_a_checkpoint_error_naming_it(call):
    with pytest.raises(tg.CheckpointError, match="path must be a str or os.PathLike"):
        call()


def test_a_legal_250_byte_file_name_saves_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / ("c" * 246 + ".npz")
    tg.save_arrays(path, {"x": np.arange(3.0)})
    np.testing.assert_array_equal(tg.load_arrays(path)["x"], np.arange(3.0))
    assert os.listdir(tmp_path) == [path.name]


def test_the_same_arrays_saved_at_different_times_are_the_same_bytes(tmp_path, monkeypatch):
    arrays, meta = {"w": np.arange(6.0).reshape(2, 3), "n": np.array(3)}, {"step": 3}
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    tg.save_arrays(tmp_path / "a.npz", arrays, meta)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    tg.save_arrays(tmp_path / "b.npz", arrays, meta)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_explorer_save_is_atomic_and_keeps_the_pages_permissions(tmp_path):
    model = rnn.ElmanRNN(3, 4, 3)
    page = viz.explore(model, [0, 1, 2], [1, 2, 0])
    path = tmp_path / "page.html"
    path.write_text("old")
    os.chmod(path, 0o600)
    page.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert path.read_text(encoding="utf-8") == page.html
    assert os.listdir(tmp_path) == ["page.html"]


# ------------------------------------------------------------------ restores keep versions

@pytest.mark.parametrize("drop", ["model/W", "optim/0.v"], ids=["model_entry", "optimizer_entry"])
def test_a_failed_load_training_changes_nothing_and_graphs_built_before_still_backpropagate(
        tmp_path, drop):
    saved = rnn.Trainer(rnn.ElmanRNN(3, 4, 3, seed=1), lr=0.1)
    saved.step([0, 1, 2], [1, 2, 0])
    rnn.save_training(tmp_path / "run.npz", saved)
    ckpt = tg.read_checkpoint(tmp_path / "run.npz")
    tg.save_arrays(tmp_path / "run.npz", {k: v for k, v in ckpt.arrays.items() if k != drop},
                   meta=ckpt.meta)                       # headers fit; the state is incomplete
    model = rnn.ElmanRNN(3, 4, 3)
    trainer = rnn.Trainer(model, lr=0.1)
    trainer.step([0, 1, 2], [2, 0, 1])
    state = trainer.optimizer.state_dict()
    loss = model.loss([0, 1, 2], [1, 2, 0])
    data = [p.data for p in model.parameters()]
    with pytest.raises(tg.CheckpointError):
        rnn.load_training(tmp_path / "run.npz", trainer)
    assert all(p.data is d for p, d in zip(model.parameters(), data))
    after = trainer.optimizer.state_dict()
    _assert_same_arrays([state[k] for k in sorted(state)], [after[k] for k in sorted(after)])
    model.zero_grad()
    loss.backward()                                      # no StaleGraphError
    assert all(p.grad is not None for p in model.parameters())


def test_explore_before_leaves_the_models_arrays_and_graphs_built_before_as_they_were():
    model = rnn.ElmanRNN(3, 4, 3)
    before = rnn.ElmanRNN(3, 4, 3, seed=5).state_dict()
    loss = model.loss([0, 1, 2], [1, 2, 0])
    data = [p.data for p in model.parameters()]
    values = _params(model)
    viz.explore(model, [0, 1, 2], [1, 2, 0], before=before)
    assert all(p.data is d for p, d in zip(model.parameters(), data))
    _assert_same_arrays(values, _params(model))
    loss.backward()                                      # no StaleGraphError


def test_state_swapped_leaves_graphs_through_views_of_the_parameters_usable():
    model = rnn.ElmanRNN(3, 4, 3)
    y = (model.W.T * 2.0).sum() + (model.U[0] ** 2).sum()   # views share W's and U's version
    other = rnn.ElmanRNN(3, 4, 3, seed=5).state_dict()
    with model.state_swapped(other):
        np.testing.assert_array_equal(model.W.data, other["W"])
    y.backward()                                         # no StaleGraphError
    np.testing.assert_array_equal(model.W.grad, np.full((4, 4), 2.0))


# ------------------------------------------------------------------ checkpoints: resume

def test_the_resume_loader_checks_the_losses_count_in_the_header_before_reading(tmp_path):
    task = rnn.tasks.YearTask(0)
    path = tmp_path / "year.npz"
    rnn.tasks.save_checkpoint(path, task, 2, [1.0, 2.0], 0)
    ckpt = tg.read_checkpoint(path)
    arrays = dict(ckpt.arrays)
    arrays["extra/losses"] = np.zeros(5_000_000)         # 40 MB claimed where 2 losses belong
    tg.save_arrays(path, arrays, meta=ckpt.meta)
    read = []
    real = tg.checkpoint._read_member
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tg.checkpoint, "_read_member", lambda *a: read.append(a) or real(*a))
        with pytest.raises(tg.CheckpointError, match="meta step 2 disagrees.*5000000 losses"):
            rnn.tasks.load_checkpoint(path, "year")
    assert read == []                                    # not one array was read


class FakeOpenBLAS:
    """The (get_num_threads, set_num_threads) pair of rnn.train.openblas, on a plain count."""

    def __init__(self, threads):
        self.threads, self.sets = threads, []

    def functions(self):
        def put(n):
            self.sets.append(n)
            self.threads = n
        return (lambda: self.threads), put


def _fake_openblas(monkeypatch, threads=4):
    """A FakeOpenBLAS of ``threads`` put where rnn.train.openblas finds numpy's, with no BLAS
    thread variable in the environment (which would leave the count to the user)."""
    for name in rnn.train.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake = FakeOpenBLAS(threads)
    monkeypatch.setattr(rnn.train, "openblas", fake.functions)
    return fake


def _threads_at_updates(monkeypatch, fake):
    """The list, growing, of the fake count each playground update runs with."""
    seen = []
    real = sys.modules["viz.playground"].Run.update
    monkeypatch.setattr(sys.modules["viz.playground"].Run, "update",
                        lambda self: seen.append(fake.threads) or real(self))
    return seen


def test_the_checkpoint_records_the_blas_threading_and_a_differing_resume_is_noted(
        tmp_path, monkeypatch):
    task = rnn.tasks.YearTask(0)
    rnn.tasks.save_checkpoint(tmp_path / "year.npz", task, 0, [], 0)
    meta = tg.read_meta(tmp_path / "year.npz")
    assert meta["blas"] == rnn.train.blas_threading()
    assert rnn.train.threading_note(meta) is None
    for name in rnn.train.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(rnn.train, "openblas", lambda: None)     # a BLAS it cannot ask
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    note = rnn.train.threading_note(meta)
    assert "7 threads (OPENBLAS_NUM_THREADS)" in note and "bit for bit" in note
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")          # it said "with 1 threads"
    other = dict(meta, blas=dict(meta["blas"], threads="9"))
    assert " with 1 thread (OPENBLAS_NUM_THREADS):" in rnn.train.threading_note(other)


def test_the_recorded_blas_threading_is_the_count_openblas_runs_with(monkeypatch):
    """OpenBLAS reads its variables once, when it loads: a variable set later, or a count set in
    the process (the tinygraph program trains with one thread), is told by OpenBLAS itself.
    The threading note compares the library and the count, not where the count came from."""
    for name in rnn.train.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake = FakeOpenBLAS(3)
    monkeypatch.setattr(rnn.train, "openblas", fake.functions)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert rnn.train.blas_threading()["threads"] == "3"
    assert rnn.train.blas_threading()["from"] == "OPENBLAS_NUM_THREADS"
    saved = {"blas": rnn.train.blas_threading()}
    fake.threads = 1
    assert rnn.train.blas_threading()["threads"] == "1"
    assert rnn.train.blas_threading()["from"] == "OpenBLAS's count"
    assert "with 1 thread (OpenBLAS's count)" in rnn.train.threading_note(saved)
    fake.threads = 3
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert rnn.train.blas_threading()["from"] != "OPENBLAS_NUM_THREADS"
    assert rnn.train.threading_note(saved) is None              # 3 threads either way
    assert fake.sets == []                                      # reading sets nothing


def test_the_real_openblas_is_found_and_its_count_recorded_when_numpy_uses_one():
    library = rnn.train.blas_threading()["library"]
    if "openblas" not in library.lower():
        pytest.skip(f"numpy's BLAS here is {library}, not OpenBLAS")
    functions = rnn.train.openblas()
    assert functions is not None, "numpy uses OpenBLAS, but rnn.train.openblas did not find it"
    assert rnn.train.blas_threading()["threads"] == str(functions[0]())


# ------------------------------------------------------------------ the command line

def _train_cli(out, *extra, task="year", steps=3):
    return main(["train", "--task", task, "--steps", str(steps), "--out", str(out), *extra])


def test_the_training_commands_run_with_one_blas_thread_and_restore_the_count(
        tmp_path, monkeypatch, capsys):
    """A second OpenBLAS thread made the demo several times slower on a busy machine (its
    matrices are too small to share): train, demo and playground set one thread for the
    command and put the count back after, also when the command fails.  Their checkpoint
    records the one thread, so a resume by the program is bit for bit the uninterrupted run
    and says nothing about threading."""
    fake = _fake_openblas(monkeypatch)
    seen = []
    real = rnn.tasks.run_training
    monkeypatch.setattr(rnn.tasks, "run_training",
                        lambda *a, **k: seen.append(fake.threads) or real(*a, **k))
    assert _train_cli(tmp_path / "run", steps=2) == 0
    assert seen == [1] and fake.threads == 4 and fake.sets == [1, 4]
    meta = tg.read_meta(tmp_path / "run" / "year_checkpoint.npz")
    assert meta["blas"]["threads"] == "1"
    capsys.readouterr()
    assert _train_cli(tmp_path / "run", "--resume", str(tmp_path / "run" / "year_checkpoint.npz"),
                      steps=4) == 0
    assert "note" not in capsys.readouterr().err and fake.threads == 4
    assert _train_cli(tmp_path / "run", steps=2) == 2               # refused: a checkpoint is there
    assert fake.threads == 4
    assert main(["draw", "--model", "elman", "--out", str(tmp_path / "draw")]) == 0
    assert fake.sets == [1, 4] * 3                                  # draw trains nothing
    monkeypatch.setattr(cli, "cmd_demo", lambda args: seen.append(("demo", fake.threads)))
    monkeypatch.setattr(sys.modules["viz.playground"], "cmd_playground",
                        lambda args: seen.append(("playground", fake.threads)))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert main(["playground", "--no-browser"]) == 0
    assert seen[-2:] == [("demo", 1), ("playground", 1)] and fake.threads == 4


def _steps_of(app, n):
    """Ask ``app``'s engine for ``n`` updates and wait for them (a loaded machine: generous)."""
    for _ in range(n):
        app.engine.command("step")
    end = time.monotonic() + 120
    while app.engine.runs[0].steps < n:
        assert time.monotonic() < end, f"{n} playground updates not within 120 s"
        time.sleep(0.02)


def test_a_playground_from_python_leaves_the_process_blas_count_alone_by_default(monkeypatch):
    """The count is process-wide: a playground started from Python (a notebook, a script)
    must not change what the caller's other threads compute with unless asked."""
    fake = _fake_openblas(monkeypatch)
    seen = _threads_at_updates(monkeypatch, fake)
    app = viz.playground(hidden=4, delay=2, batch=2)
    try:
        _steps_of(app, 2)
        assert fake.threads == 4
    finally:
        app.stop()
    assert seen == [4, 4] and fake.sets == [] and fake.threads == 4
    with pytest.raises(tg.ConfigError, match="one_blas_thread must be True or False"):
        viz.playground(hidden=4, one_blas_thread="yes")
    assert fake.sets == []


def test_the_playground_command_trains_with_one_blas_thread(monkeypatch, capsys):
    """`tinygraph playground` (the whole process) serves and trains with one OpenBLAS thread
    and puts the count back when Ctrl-C stops it."""
    fake = _fake_openblas(monkeypatch)
    module = sys.modules["viz.playground"]
    seen = []

    def sleep(seconds):                         # the command's wait loop: Ctrl-C at once
        seen.append(fake.threads)
        raise KeyboardInterrupt
    monkeypatch.setattr(module, "time", types.SimpleNamespace(
        sleep=sleep, perf_counter=time.perf_counter, thread_time=time.thread_time))
    assert main(["playground", "--no-browser"]) == 0
    assert seen == [1] and fake.threads == 4 and fake.sets == [1, 4]
    assert "stopped" in capsys.readouterr().out


def test_a_playground_from_python_trains_with_one_blas_thread_when_asked(monkeypatch):
    """viz.playground(one_blas_thread=True) trains as `tinygraph playground` does, with one
    OpenBLAS thread, and puts the count back when it stops; two playgrounds that overlap hold
    it together, so the count comes back when the last one stops, whichever stops first."""
    fake = _fake_openblas(monkeypatch)
    seen = _threads_at_updates(monkeypatch, fake)
    first = viz.playground(hidden=4, delay=2, batch=2, one_blas_thread=True)
    try:
        _steps_of(first, 2)
        second = viz.playground(hidden=4, delay=2, batch=2, one_blas_thread=True)
        try:
            _steps_of(second, 1)
            first.stop()
            assert fake.threads == 1                    # the second one still trains
            _steps_of(second, 2)
        finally:
            second.stop()
        assert fake.threads == 4
    finally:
        first.stop()
    assert seen == [1] * 5 and fake.threads == 4 and fake.sets == [1, 4]


def test_a_playground_that_fails_to_start_or_is_interrupted_puts_the_blas_count_back(monkeypatch):
    fake = _fake_openblas(monkeypatch)
    playground_module = sys.modules["viz.playground"]
    with pytest.raises(tg.ConfigError, match="task"):           # refused before it holds
        viz.playground(task="nonsense")
    assert fake.sets == []

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    real = playground_module.Engine._reset
    monkeypatch.setattr(playground_module.Engine, "_reset", interrupted)   # Ctrl-C while starting
    with pytest.raises(KeyboardInterrupt):
        viz.playground(hidden=4, one_blas_thread=True)
    assert fake.threads == 4 and fake.sets == [1, 4]
    monkeypatch.setattr(playground_module.Engine, "_reset", real)
    app = playground_module.Playground(dict(playground_module.DEFAULTS, hidden=4),
                                       one_blas_thread=True)
    assert fake.threads == 1
    monkeypatch.setattr(app.server, "serve_forever", interrupted)     # Ctrl-C while serving
    with pytest.raises(KeyboardInterrupt):
        app.serve_forever()
    assert fake.threads == 4 and fake.sets == [1, 4] * 2


@pytest.fixture
def openblas_at_two(monkeypatch):
    """numpy's own OpenBLAS (not a stand-in) at two threads, no BLAS thread variable set: its
    get(); the count it had is put back after the test (skipped without such an OpenBLAS)."""
    functions = rnn.train.openblas()
    if functions is None:
        pytest.skip("numpy's BLAS here is not an OpenBLAS that rnn.train.openblas finds")
    for name in rnn.train.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get, put = functions
    before = get()
    put(2)                      # OpenBLAS keeps it at 1 on a machine of one CPU
    try:
        yield get
    finally:
        put(before)


def test_a_playground_from_python_really_runs_numpys_openblas_with_one_thread_when_asked(
        openblas_at_two):
    get = openblas_at_two
    outside = get()
    app = viz.playground(hidden=4, delay=2, batch=2, one_blas_thread=True)
    try:
        _steps_of(app, 1)
        assert get() == 1
    finally:
        app.stop()
    assert get() == outside


def test_a_blas_thread_variable_in_the_environment_leaves_the_count_to_the_user(
        tmp_path, monkeypatch):
    fake = FakeOpenBLAS(4)
    monkeypatch.setattr(rnn.train, "openblas", fake.functions)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert _train_cli(tmp_path / "run", steps=2) == 0
    assert fake.sets == [] and fake.threads == 4


def test_the_library_never_sets_the_blas_thread_count(tmp_path, monkeypatch):
    fake = FakeOpenBLAS(4)
    monkeypatch.setattr(rnn.train, "openblas", fake.functions)
    task = rnn.tasks.YearTask(0)
    rnn.tasks.run_training(task, 0, 2, [])
    rnn.tasks.save_checkpoint(tmp_path / "year.npz", task, 2, [0.0, 0.0], 0)
    rnn.tasks.load_checkpoint(tmp_path / "year.npz", "year")
    assert fake.sets == [] and fake.threads == 4


def test_the_program_really_trains_with_one_openblas_thread(tmp_path, monkeypatch,
                                                           openblas_at_two):
    """With numpy's own OpenBLAS (not a stand-in): one thread inside the command, the count
    as it was after."""
    get = openblas_at_two
    outside, seen = get(), []
    real = rnn.tasks.run_training
    monkeypatch.setattr(rnn.tasks, "run_training",
                        lambda *a, **k: seen.append(get()) or real(*a, **k))
    assert _train_cli(tmp_path / "run", steps=2) == 0
    assert seen == [1] and get() == outside


def test_a_fresh_train_over_a_checkpoint_is_refused_and_names_resume_and_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train_cli(out, steps=6) == 0
    kept = (out / "year_checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert _train_cli(out, steps=3) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--force" in err and "update 6" in err
    assert (out / "year_checkpoint.npz").read_bytes() == kept


def test_force_starts_over_and_says_what_it_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train_cli(out, steps=6) == 0
    capsys.readouterr()
    assert _train_cli(out, "--force", steps=3) == 0
    assert "--force: replacing" in capsys.readouterr().err
    assert tg.read_meta(out / "year_checkpoint.npz")["user"]["step"] == 3


def test_a_resume_of_the_runs_own_checkpoint_is_allowed_and_another_seed_is_refused(
        tmp_path, capsys):
    out = tmp_path / "run"
    assert _train_cli(out, steps=3) == 0
    ckpt = str(out / "year_checkpoint.npz")
    capsys.readouterr()
    assert _train_cli(out, "--resume", ckpt, "--seed", "4", steps=5) == 2
    assert "seed 0, not --seed 4" in capsys.readouterr().err
    assert tg.read_meta(ckpt)["user"]["step"] == 3
    assert _train_cli(out, "--resume", ckpt, "--seed", "0", steps=5) == 0
    assert tg.read_meta(ckpt)["user"]["step"] == 5


def test_a_command_into_an_out_another_one_holds_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out / cli.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert main(["figures", "--out", str(out)]) == 2
    finally:
        os.close(fd)
    assert "another tinygraph command is writing" in capsys.readouterr().err
    assert os.listdir(out) == [cli.LOCK_NAME]


def _signal_during_the_save_of(step, sig, monkeypatch):
    real = rnn.tasks.Checkpoints.save

    def save_then_signal(self, task, at, losses, history):
        real(self, task, at, losses, history)
        if at == step:
            os.kill(os.getpid(), sig)                    # arrives as the final write ends
    monkeypatch.setattr(rnn.tasks.Checkpoints, "save", save_then_signal)


def test_a_signal_during_the_final_checkpoint_write_stops_train_after_writing_it(
        tmp_path, capsys, monkeypatch):
    _signal_during_the_save_of(4, signal.SIGTERM, monkeypatch)
    out = tmp_path / "with space"
    assert _train_cli(out, steps=4) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "interrupted by SIGTERM after update 4 of 4 (training was complete)" in err
    assert tg.read_meta(out / "year_checkpoint.npz")["user"]["step"] == 4
    assert not (out / "loss.svg").exists()               # it stopped: nothing drawn after


def test_a_signal_during_the_final_checkpoint_write_stops_the_demo_too(
        tmp_path, capsys, monkeypatch):
    _signal_during_the_save_of(2, signal.SIGINT, monkeypatch)
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "2", "--out", str(out)]) == 128 + signal.SIGINT
    assert "interrupted by SIGINT after update 2 of 2" in capsys.readouterr().err
    assert tg.read_meta(out / "chars_checkpoint.npz")["user"]["step"] == 2
    assert sorted(os.listdir(out)) == ["chars_checkpoint.npz"]   # no page, no explorer


def test_the_printed_resume_command_is_shell_quoted(tmp_path, capsys):
    args = cli.build_parser().parse_args(["train", "--task", "year", "--out", "my runs/a'b"])
    stop = rnn.tasks.TrainingStopped(2, 9, "my runs/a'b/year_checkpoint.npz", signal.SIGINT)
    assert cli._stopped(stop, args) == 130
    line = capsys.readouterr().err.strip()
    command = line.split("resume with: ", 1)[1]
    import shlex
    assert shlex.split(command) == ["tinygraph", "train", "--task", "year", "--steps", "9",
                                    "--out", "my runs/a'b", "--resume",
                                    "my runs/a'b/year_checkpoint.npz"]


@pytest.mark.parametrize("argv,said", [
    (["--seed", "-1"], "at least 0"),
    (["--steps", "-1"], "at least 1"),
    (["--steps", str(10**30)], "allowed"),
], ids=["seed_negative", "steps_negative", "steps_huge"])
def test_explore_bounds_its_arguments_as_train_and_draw_do(tmp_path, capsys, argv, said):
    with pytest.raises(SystemExit) as info:
        main(["explore", "--model", "elman", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and said in err and "Traceback" not in err


def test_a_renderer_writing_bytes_that_are_not_utf8_is_a_clear_error(tmp_path, capsys,
                                                                       monkeypatch):
    dot = tmp_path / "dot"
    dot.write_text("#!/bin/sh\ncat > /dev/null\nprintf '<svg>\\377</svg>'\n")
    os.chmod(dot, 0o755)
    monkeypatch.setenv("TINYGRAPH_DOT", str(dot))
    assert main(["explore", "--model", "elman", "--steps", "3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err


PREVIOUS_RUN = {      # each command that writes into --out, run where a train run already is
    "train": ["train", "--task", "year", "--steps", "2"],
    "figures": ["figures"],
    "draw": ["draw", "--model", "elman"],
    "explore": ["explore", "--model", "elman", "--steps", "3"],
    "explore_checkpoint": ["explore", "--model", "elman", "--checkpoint", "{ckpt}"],
}


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("previous")
    assert main(["train", "--task", "year", "--steps", "4", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", sorted(PREVIOUS_RUN))
def test_every_command_that_writes_a_run_refuses_or_keeps_what_a_previous_run_left(
        previous_run, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    for name in os.listdir(previous_run):
        (out / name).write_bytes((previous_run / name).read_bytes())
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    argv = [a.format(ckpt=out / "year_checkpoint.npz") for a in PREVIOUS_RUN[command]]
    code = main(argv + ["--out", str(out)])
    assert code in (0, 2)
    if command == "train":
        assert code == 2                                 # a fresh run over a checkpoint
    for name, data in before.items():                    # the run's checkpoint and its files
        if name.endswith(".npz") or name in ("samples.txt", "loss.svg"):
            assert (out / name).read_bytes() == data, name


def test_the_demo_keeps_a_previous_runs_different_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    other = tmp_path / "other.npz"
    rnn.tasks.save_checkpoint(other, rnn.tasks.YearTask(0), 0, [], 0)
    (out / "chars_checkpoint.npz").write_bytes(other.read_bytes())
    kept = cli._keep_previous(str(out), "chars_checkpoint.npz")
    assert kept == str(out / "chars_checkpoint.previous-1.npz")
    assert (out / "chars_checkpoint.previous-1.npz").read_bytes() == other.read_bytes()
    assert not (out / "chars_checkpoint.npz").exists()


# ------------------------------------------------------------------ same seed, same bytes

RUN_TIMES = {"a": 1_000_000_000.0, "b": 1_700_000_000.0}     # two runs years apart


@pytest.mark.parametrize("task", sorted(rnn.tasks.TASKS))
def test_every_task_trained_twice_with_one_seed_writes_the_same_checkpoint_bytes(
        tmp_path, monkeypatch, task):
    paths = []
    for run in ("a", "b"):
        monkeypatch.setattr(time, "time", lambda: RUN_TIMES[run])
        path = tmp_path / f"{run}.npz"
        rnn.tasks.run_training(rnn.tasks.TASKS[task](3), 0, 2, [],
                               checkpoints=rnn.tasks.Checkpoints(path, 3, every=10**9))
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_made_twice_with_one_seed_saves_the_same_bytes(tmp_path, monkeypatch, design):
    for run in ("a", "b"):
        monkeypatch.setattr(time, "time", lambda: RUN_TIMES[run])
        DESIGNS[design](11).save(tmp_path / f"{run}.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_the_train_command_run_twice_with_one_seed_writes_the_same_checkpoint_bytes(tmp_path):
    runs = []
    for run in ("a", "b"):
        out = tmp_path / run
        done = subprocess.run(TINYGRAPH + ["train", "--task", "copy", "--steps", "3", "--seed",
                                           "2", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append((out / "copy_checkpoint.npz").read_bytes())
    assert runs[0] == runs[1]


# ------------------------------------------------------------------ no side effects

def test_importing_the_benchmarks_changes_no_environment_variable():
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); before = dict(os.environ); "
            "import bench.designs, bench.run, bench.explorer, bench.overhead, bench.playground, "
            "bench.phases, bench.threads; "
            "print(sorted(k for k in set(before) | set(os.environ) "
            "if before.get(k) != os.environ.get(k)))")
    done = subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_benchmarks_set_one_blas_thread_only_in_the_process_they_start():
    from bench.threads import VARIABLES, single_threaded_env
    env = single_threaded_env({"PATH": "/bin", "OMP_NUM_THREADS": "4"})
    assert {name: env[name] for name in VARIABLES} == {name: "1" for name in VARIABLES}
    assert single_threaded_env({"OMP_NUM_THREADS": "4"}, keep_set=True)["OMP_NUM_THREADS"] == "4"
