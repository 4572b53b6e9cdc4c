"""Checkpoints survive any name and refuse any hostile file; every file is written atomically.

The faults injected here are real: random byte corruptions and truncations of a checkpoint,
``kill -9`` of a process in the middle of saving, a full disk (a file-size limit set on a
child process), and several processes writing one file at once.
"""

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz

ODD_NAMES = ["allow_pickle", "file", "a\nb", "s\ud800t", "", "manifest.json", "0.npy", "x/../y",
             "nul\x00byte", "ключ", "steps"]


def _arrays(seed=0, size=5):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(i + 1, size)) for i, name in enumerate(ODD_NAMES)}


def _assert_same_arrays(a, b):
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_any_array_name_round_trips_exactly(tmp_path):
    arrays = _arrays()
    arrays["ints"] = np.arange(6, dtype=np.uint8).reshape(2, 3)
    arrays["fortran"] = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    arrays["flag"] = np.array(True)
    tg.save_arrays(tmp_path / "odd.npz", arrays)
    _assert_same_arrays(arrays, tg.load_arrays(tmp_path / "odd.npz"))


def test_parameters_named_like_savez_flags_save_and_load(tmp_path):
    params = [tg.Parameter(np.full(2, float(i)), name=n) for i, n in enumerate(["allow_pickle", "file"])]
    cell = rnn.Recurrence(lambda h: (h * params[0] + params[1]).tanh(), params, n_state=2)
    cell.save(tmp_path / "cell.npz")
    for p in params:
        p.data = np.zeros(2)
    cell.load(tmp_path / "cell.npz")
    assert [p.data.tolist() for p in params] == [[0.0, 0.0], [1.0, 1.0]]


def test_meta_round_trips_as_json(tmp_path):
    meta = {"task": "chars", "step": 12, "seed": 2**64, "nested": {"x": [1.5, None, "é"]}}
    tg.save_arrays(tmp_path / "m.npz", {"a": np.ones(2)}, meta=meta)
    assert tg.read_checkpoint(tmp_path / "m.npz").meta == meta
    assert tg.read_meta(tmp_path / "m.npz") == meta


@pytest.mark.parametrize("meta, where, back", [
    ({1: "a"}, "meta", "'1'"),                              # read back as {"1": "a"}
    ({"user": {"1": "a", 1: "b"}}, r"meta\['user'\]", "'1'"),   # JSON kept only one of them
    ({"runs": [{True: 0}]}, r"meta\['runs'\]\[0\]", "'true'"),
    ({"x": {None: 1}}, r"meta\['x'\]", "'null'"),
])
def test_meta_with_a_key_that_is_not_a_string_is_refused_and_nothing_is_written(
        tmp_path, meta, where, back):
    # json.dumps turned such keys into text silently: {1: "a"} read back as {"1": "a"}
    path = tmp_path / "m.npz"
    tg.save_arrays(path, {"a": np.ones(2)}, meta={"old": 1})
    before = path.read_bytes()
    with pytest.raises(tg.CheckpointError, match=rf"save: {where} has the key .*read back as {back}"):
        tg.save_arrays(path, {"a": np.zeros(2)}, meta=meta)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def test_meta_that_holds_itself_is_refused(tmp_path):
    meta = {"a": []}
    meta["a"].append(meta)
    with pytest.raises(tg.CheckpointError, match="save: meta must hold only JSON values"):
        tg.save_arrays(tmp_path / "m.npz", {}, meta=meta)


def test_two_parameters_with_one_name_are_refused_and_nothing_is_written(tmp_path):
    W1, W2 = tg.Parameter(np.ones(2), name="W"), tg.Parameter(np.ones(2), name="W")
    cell = rnn.Recurrence(lambda h: (h * W1 * W2).tanh(), [W1, W2], n_state=2)
    with pytest.raises(tg.CheckpointError, match="two parameters are named 'W'"):
        cell.save(tmp_path / "cell.npz")
    assert os.listdir(tmp_path) == []


def test_a_file_lacking_a_parameter_is_refused_naming_the_file(tmp_path):
    # every other refusal of model.load named the file; this one said only "load_state_dict:
    # names do not match the model: missing ['W']", the name of a call the user never made
    model, path = rnn.ElmanRNN(3, 4, 3), tmp_path / "elman.ckpt"
    state = model.state_dict()
    del state["W"]
    tg.save_arrays(path, state, meta={"config": model.config()})
    before = model.state_dict()
    with pytest.raises(tg.CheckpointError, match=r"load: '.*elman.ckpt'.*missing \['W'\]"):
        model.load(path)
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())


def test_a_plain_npz_of_numbers_is_read(tmp_path):
    np.savez(tmp_path / "plain.npz", U=np.ones((2, 3)), b=np.arange(3))
    arrays = tg.load_arrays(tmp_path / "plain.npz")
    assert sorted(arrays) == ["U", "b"] and arrays["b"].tolist() == [0, 1, 2]


def _checkpoint_bytes(tmp_path):
    model = rnn.ElmanRNN(5, 4, 3, seed=0)
    model.save(tmp_path / "good.npz")
    return model, (tmp_path / "good.npz").read_bytes()


def test_random_corruptions_are_checkpoint_errors_or_load_the_exact_arrays(tmp_path):
    model, good = _checkpoint_bytes(tmp_path)
    rng = np.random.default_rng(15)
    outcomes = {"refused": 0, "same": 0}
    fresh = rnn.ElmanRNN(5, 4, 3, seed=1)
    for _ in range(600):
        data = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] = rng.integers(256)
        (tmp_path / "bad.npz").write_bytes(bytes(data))
        try:
            fresh.load(tmp_path / "bad.npz")
        except tg.CheckpointError as e:
            assert "bad.npz" in str(e) and "allow_pickle" not in str(e)
            outcomes["refused"] += 1
            continue
        for p, q in zip(model.parameters(), fresh.parameters()):   # a byte no reader uses
            np.testing.assert_array_equal(p.data, q.data)
        outcomes["same"] += 1
    assert outcomes["refused"] > 400


def test_every_truncation_is_a_checkpoint_error(tmp_path):
    model, good = _checkpoint_bytes(tmp_path)
    for n in range(0, len(good), 3):
        (tmp_path / "cut.npz").write_bytes(good[:n])
        with pytest.raises(tg.CheckpointError, match="cut.npz"):
            model.load(tmp_path / "cut.npz")


def _zip_of_text(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    return path.read_bytes()


@pytest.mark.parametrize("content", [b"not a zip at all", b"\x93NUMPY\x01\x00garbage", b"",
                                     _zip_of_text], ids=["text", "npy", "empty", "zip_of_text"])
def test_no_error_advises_loading_with_allow_pickle(tmp_path, content):
    (tmp_path / "x.npz").write_bytes(content if isinstance(content, bytes) else content(tmp_path / "z"))
    with pytest.raises(tg.CheckpointError) as info:
        tg.load_arrays(tmp_path / "x.npz")
    assert "allow_pickle" not in str(info.value) and "x.npz" in str(info.value)


def test_load_reads_at_most_max_bytes(tmp_path):
    tg.save_arrays(tmp_path / "big.npz", {"a": np.ones(1000)})
    with pytest.raises(tg.CheckpointError, match="more than the 4,000 bytes"):
        tg.load_arrays(tmp_path / "big.npz", max_bytes=4000)
    assert tg.load_arrays(tmp_path / "big.npz", max_bytes=8000)["a"].shape == (1000,)


# ------------------------------------------------------------------ atomic writes


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_replacing_a_file_keeps_its_permissions(tmp_path, mode):
    path = tmp_path / "net.npz"
    rnn.ElmanRNN(3, 2, 3).save(path)
    path.chmod(mode)
    rnn.ElmanRNN(3, 2, 3, seed=1).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_new_file_gets_the_permissions_open_would_give(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    viz.save(viz.figure("10.3"), tmp_path / "fig.dot")
    rnn.ElmanRNN(3, 2, 3).save(tmp_path / "net.npz")
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "fig.dot").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "net.npz").stat().st_mode) == want


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphaned_temp_files_of_a_dead_process_are_removed_on_the_next_save(tmp_path):
    dead = tmp_path / f".net.npz.{_dead_pid()}.0123456789ab.tmp"
    live = tmp_path / f".net.npz.{os.getpid()}.0123456789ab.tmp"     # a write in progress
    other = tmp_path / f".other.npz.{_dead_pid()}.0123456789ab.tmp"   # another target's
    for path in (dead, live, other):
        path.write_bytes(b"half a checkpoint")
    rnn.ElmanRNN(3, 2, 3).save(tmp_path / "net.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["net.npz", live.name, other.name])


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    rnn.ElmanRNN(3, 2, 3).save(tmp_path / "net.npz")
    assert events == ["fsync file", "rename", "fsync folder"]


def _child(code, *args, limit=None):
    """A python child running ``code`` (with the project importable), optionally under a
    file-size limit of ``limit`` bytes: writing past it fails with EFBIG, as on a full disk."""
    prelude = ""
    if limit is not None:
        prelude = (f"import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                   f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("target", ["net.npz", "fig.svg", "loss.svg", "index.html"])
def test_a_full_disk_leaves_the_old_file_whole_and_no_temporary(tmp_path, target):
    path = tmp_path / target
    path.write_bytes(b"the good old file")
    out = _child("""
        import sys, numpy as np, rnn, tinygraph as tg, viz
        from viz import page, plots
        path, name = sys.argv[1], sys.argv[2]
        try:
            if name == "net.npz":
                rnn.ElmanRNN(200, 200, 200).save(path)
            elif name == "fig.svg":
                viz.save(viz.unrolled(rnn.ElmanRNN(4, 3, 4), steps=8), path)
            elif name == "loss.svg":
                plots.loss_curve(np.arange(500), np.random.default_rng(0).random(500), path)
            else:
                p = page.Page("t")
                p.text("x", "y" * 200_000)
                p.write(sys.argv[3])
        except tg.WriteError as e:
            print("refused:", e)
    """, path, target, tmp_path, limit=4096)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "File too large" in out.stdout
    assert path.read_bytes() == b"the good old file"
    assert os.listdir(tmp_path) == [target]


def test_kill_9_while_saving_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "net.npz"
    code = """
        import sys, rnn
        seed = 0
        while True:
            seed += 1
            rnn.ElmanRNN(300, 300, 300, seed=seed).save(sys.argv[1])
            if seed == 1:
                print("saving", flush=True)
    """
    rng = np.random.default_rng(9)
    for kill in range(3):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "saving\n"
        time.sleep(rng.random() * 0.2)          # somewhere inside one of the next saves
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        rnn.ElmanRNN(300, 300, 300).load(path)  # whole: one of the saved models
    rnn.ElmanRNN(300, 300, 300).save(path)      # the next save removes the killed ones' temps
    assert os.listdir(tmp_path) == ["net.npz"]


def test_concurrent_writers_of_one_file_leave_it_whole(tmp_path):
    path = tmp_path / "net.npz"
    code = """
        import sys, rnn
        for seed in range(15):
            rnn.ElmanRNN(100, 100, 100, seed=int(sys.argv[2]) * 100 + seed).save(sys.argv[1])
    """
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path), str(k)])
               for k in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):
        if path.exists():
            rnn.ElmanRNN(100, 100, 100).load(path)       # never half of one and half of another
            reads += 1
    assert all(w.returncode == 0 for w in writers) and reads > 0
    rnn.ElmanRNN(100, 100, 100).load(path)
    assert os.listdir(tmp_path) == ["net.npz"]


# a checkpoint of one model, loaded into a model whose parameters have the same names, shapes
# and dtypes but which computes something else with them
OTHER_SETTINGS = [
    (lambda: rnn.EncoderDecoder(3, 4, 2, seed=1, attention="dot"),
     lambda: rnn.EncoderDecoder(3, 4, 2), "attention"),
    (lambda: rnn.LeakyRNN(3, 4, 2, alpha=0.5, seed=1), lambda: rnn.LeakyRNN(3, 4, 2), "alpha"),
    (lambda: rnn.LSTM(3, 4, 2, candidate="sigmoid", seed=1), lambda: rnn.LSTM(3, 4, 2),
     "candidate"),
    (lambda: rnn.GRU(3, 4, 2, candidate="sigmoid", seed=1), lambda: rnn.GRU(3, 4, 2), "candidate"),
    (lambda: rnn.ElmanRNN(3, 4, 2, seed=1), lambda: rnn.SequenceToOne(3, 4, 2), "model"),
]


@pytest.mark.parametrize("saved, other, setting", OTHER_SETTINGS,
                         ids=["attention", "alpha", "lstm-candidate", "gru-candidate", "class"])
def test_a_model_of_other_settings_refuses_the_checkpoint_and_changes_nothing(
        tmp_path, saved, other, setting):
    model, into = saved(), other()
    xs, ys = np.array([0, 1, 2]), np.array([1, 0, 1])
    path = tmp_path / "m.npz"
    model.save(path)
    assert into.expected_state() == model.expected_state()     # names, shapes, dtypes all fit
    before = into.state_dict()
    with pytest.raises(tg.CheckpointError, match=f"{setting}=") as e:
        into.load(path)
    assert "m.npz" in str(e.value)
    for name, value in into.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    again = saved()                      # a model of the same settings loads it
    again.load(path)
    assert again.loss(xs, ys).item() == model.loss(xs, ys).item()


def test_a_leaky_net_with_other_lags_refuses_the_checkpoint(tmp_path):
    rnn.LeakyRNN(3, 4, 2, skip=2).save(tmp_path / "m.npz")
    with pytest.raises(tg.CheckpointError, match="skip=2.*skip=3"):
        rnn.LeakyRNN(3, 4, 2, skip=3).load(tmp_path / "m.npz")


def test_the_settings_of_a_sub_module_are_recorded_and_checked(tmp_path):
    class Net(tg.Module):
        def __init__(self, p):
            self.W = tg.Parameter(np.eye(2), name="W")
            self.drop = tg.Dropout(p)
    Net(0.5).save(tmp_path / "m.npz")
    assert tg.read_meta(tmp_path / "m.npz") == {"config": {"drop.p": 0.5}}
    with pytest.raises(tg.CheckpointError, match=r"drop\.p=0\.5.*drop\.p=0\.1"):
        Net(0.1).load(tmp_path / "m.npz")
    Net(0.5).load(tmp_path / "m.npz")


def test_a_checkpoint_without_settings_still_loads(tmp_path):
    """A file written before the settings were recorded (or a plain npz) is loaded on its
    names, shapes and dtypes alone."""
    model = rnn.EncoderDecoder(3, 4, 2, seed=1, attention="dot")
    tg.save_arrays(tmp_path / "old.npz", model.state_dict())
    into = rnn.EncoderDecoder(3, 4, 2, attention="dot")
    into.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(into.W.data, model.W.data)


def test_a_training_checkpoint_of_other_settings_is_refused_and_changes_nothing(tmp_path):
    xs, ys = np.array([0, 1, 2]), np.array([1, 0, 1])
    trainer = rnn.Trainer(rnn.LeakyRNN(3, 4, 2, alpha=0.5, seed=1), lr=0.1)
    trainer.step(xs, ys)
    rnn.save_training(tmp_path / "run.npz", trainer)
    other = rnn.Trainer(rnn.LeakyRNN(3, 4, 2, alpha=0.9), lr=0.1)
    before = other.model.state_dict()
    with pytest.raises(tg.CheckpointError, match="alpha=0.5"):
        rnn.load_training(tmp_path / "run.npz", other)
    assert other.steps == 0
    for name, value in other.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    same = rnn.Trainer(rnn.LeakyRNN(3, 4, 2, alpha=0.5), lr=0.1)
    rnn.load_training(tmp_path / "run.npz", same)
    assert same.steps == 1


@pytest.mark.parametrize("failure", [KeyboardInterrupt, tg.CheckpointError])
def test_a_load_training_whose_model_load_fails_leaves_the_optimizer_exactly_as_it_was(
        tmp_path, failure):
    # was: the optimizer was loaded first and put back only on a CheckpointError, from a copy
    # of its state_dict: an interrupt while the model loaded left it at the file's 3 steps
    # over the model's own parameters
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (6, 2))
    saved = rnn.Trainer(rnn.ElmanRNN(4, 5, 4, seed=0), lr=0.05)
    for _ in range(3):
        saved.step(xs, ys)
    rnn.save_training(tmp_path / "run.ckpt", saved)
    trainer = rnn.Trainer(rnn.ElmanRNN(4, 5, 4, seed=1), lr=0.01)
    trainer.step(xs, ys)
    optimizer = trainer.optimizer
    state, groups = optimizer.state, [dict(g) for g in optimizer.param_groups]
    arrays = {k: v.copy() for k, v in optimizer.state_dict().items()}

    def fails(state):
        raise failure("the model's load failed")

    trainer.model.load_state_dict = fails
    with pytest.raises(failure):
        rnn.load_training(tmp_path / "run.ckpt", trainer)
    assert optimizer.steps == 1 and optimizer.state is state and optimizer.param_groups == groups
    after = optimizer.state_dict()
    assert after.keys() == arrays.keys()
    assert all(np.array_equal(after[k], arrays[k]) for k in arrays)



@pytest.mark.parametrize("other", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                   lambda ps: tg.optim.Adagrad(ps, lr=0.1)])
def test_a_load_training_into_a_trainer_of_another_optimizer_names_both(tmp_path, other):
    """A run saved with Adam and resumed by a Trainer of SGD (or Adagrad) was refused by the
    header check with the list of Adam's entries the other does not want ("unexpected
    ['optim/0.m', 'optim/0.step', ...]"): the error now says which optimizer saved the run and
    which one loads it, as AdamW's load_state_dict does for Adam's state; nothing changes."""
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (6, 2))
    saved = rnn.Trainer(rnn.ElmanRNN(4, 5, 4, seed=0), lr=0.05)
    saved.step(xs, ys)
    rnn.save_training(tmp_path / "run.ckpt", saved)
    model = rnn.ElmanRNN(4, 5, 4, seed=1)
    trainer = rnn.Trainer(model, other(model.parameters()))
    before = model.state_dict()
    name = type(trainer.optimizer).__name__
    with pytest.raises(tg.CheckpointError, match=f"saved with optimizer Adam, this Trainer's is {name}"):
        rnn.load_training(tmp_path / "run.ckpt", trainer)
    assert trainer.steps == 0 and trainer.optimizer.steps == 0
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="symbolic links")
def test_saving_through_a_symbolic_link_writes_the_file_it_points_to(tmp_path):
    # the rename replaced the link itself with a new file: the file it pointed to kept the old
    # checkpoint without a word (np.save and open() write through the link)
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "run3.ckpt"
    tg.save_arrays(real, {"a": np.zeros(2)})
    link = tmp_path / "latest.ckpt"
    os.symlink(real, link)
    tg.save_arrays(link, {"a": np.ones(2)})
    assert os.path.islink(link) and os.readlink(link) == str(real)
    np.testing.assert_array_equal(tg.load_arrays(real)["a"], [1.0, 1.0])
    assert sorted(os.listdir(tmp_path / "runs")) == ["run3.ckpt"]
    dangling = tmp_path / "next.ckpt"
    os.symlink(tmp_path / "runs" / "run4.ckpt", dangling)      # a link to a file not made yet
    tg.save_arrays(dangling, {"a": np.ones(1)})
    assert os.path.islink(dangling)
    np.testing.assert_array_equal(tg.load_arrays(tmp_path / "runs" / "run4.ckpt")["a"], [1.0])


@pytest.mark.parametrize("saved, loading", [("squared_error", "cross_entropy"),
                                             ("cross_entropy", "squared_error")])
def test_an_encoder_decoder_of_another_criterion_is_named_as_such_not_by_ud_s_shape(
        saved, loading, tmp_path):
    # its Ud is (H, n_out + 1) with cross-entropy (the start symbol) and (H, n_out) with the
    # squared error: load, load_training and load_state_dict said only "'Ud' has shape (4, 2),
    # expected (4, 3)"; the criterion is now named first, and nothing changes
    src = rnn.EncoderDecoder(3, 4, 2, seed=1, criterion=saved)
    dst = rnn.EncoderDecoder(3, 4, 2, seed=2, criterion=loading)
    trainer = rnn.Trainer(dst, tg.optim.Adam(dst.parameters(), 0.1))
    xs = np.random.default_rng(0).normal(size=(3, 2, 3))
    ys = (np.random.default_rng(1).normal(size=(4, 2, 2)) if loading == "squared_error"
          else np.zeros((4, 2), dtype=int))
    trainer.step(xs, ys)
    before = dst.state_dict()
    optim = trainer.optimizer.state_dict()
    versions = [p._version for p in dst.parameters()]
    path = str(tmp_path / "m.npz")
    src.save(path)
    file_says = rf"the file has criterion='{saved}', the model criterion='{loading}'"
    with pytest.raises(tg.CheckpointError, match=file_says):
        dst.load(path)
    rnn.save_training(path, rnn.Trainer(src, tg.optim.Adam(src.parameters(), 0.1)))
    with pytest.raises(tg.CheckpointError, match=file_says):
        rnn.load_training(path, trainer)
    with pytest.raises(tg.CheckpointError,
                       match=rf"^load_state_dict: the state looks like that of an EncoderDecoder "
                             rf"of criterion='{saved}' .*this one has criterion='{loading}': 'Ud' "
                             r"has shape"):
        dst.load_state_dict(src.state_dict())
    after = dst.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert [p._version for p in dst.parameters()] == versions
    now = trainer.optimizer.state_dict()
    assert now.keys() == optim.keys() and all(np.array_equal(now[k], optim[k]) for k in now)
    assert trainer.steps == 1


def test_a_failed_load_names_every_mismatch_at_once_the_same_way_each_time(tmp_path):
    """A file with names the model lacks, without some of its parameters and with another shape:
    the error said only the unexpected names (the missing ones came up after a fix of those, the
    shape after that); now one error names them all, sorted, and nothing changes."""
    class Three(tg.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (tg.Parameter(np.ones(n)) for n in (2, 3, 1))

    model = Three()
    versions = [p._version for p in model.parameters()]
    path = tmp_path / "other.ckpt"
    tg.save_arrays(path, {"z": np.zeros(2), "b": np.zeros(4), "y": np.zeros(1)})
    messages = set()
    for _ in range(2):
        with pytest.raises(tg.CheckpointError) as caught:
            model.load(path)
        messages.add(str(caught.value))
    (message,) = messages
    assert message.endswith("unexpected ['y', 'z'] (not among the 3 entries wanted); missing "
                            "['a', 'c']; entry 'b': it has shape (4,), expected (3,)")
    assert all(np.array_equal(p.data, np.ones(p.shape)) for p in model.parameters())
    assert [p._version for p in model.parameters()] == versions
    with pytest.raises(tg.CheckpointError, match=r"missing \['a'\]$"):     # tg.read_checkpoint too
        tg.read_checkpoint(path, {"z": ((2,), np.float64), "y": ((1,), np.float64),
                                  "b": ((4,), np.float64)}, required=["a", "y"])


def test_a_failed_load_training_names_the_missing_parameters_with_the_unexpected_names(tmp_path):
    # it named 'model/Z' and 'optim/9.m' only; 'model/W' came up once those were gone
    trainer = rnn.Trainer(rnn.ElmanRNN(3, 4, 3), lr=0.1)
    rnn.save_training(tmp_path / "run.ckpt", trainer)
    arrays, meta = tg.load_arrays(tmp_path / "run.ckpt"), tg.read_meta(tmp_path / "run.ckpt")
    del arrays["model/W"]
    arrays.update({"model/Z": np.ones(2), "optim/9.m": np.ones(1)})
    tg.save_arrays(tmp_path / "odd.ckpt", arrays, meta=meta)
    other = rnn.Trainer(rnn.ElmanRNN(3, 4, 3, seed=1), lr=0.1)
    before = other.model.state_dict()
    with pytest.raises(tg.CheckpointError, match=r"unexpected \['model/Z', 'optim/9.m'\] \(not among "
                                                 r"the \d+ entries wanted\); missing \['model/W'\]$"):
        rnn.load_training(tmp_path / "odd.ckpt", other)
    assert all(np.array_equal(v, before[k]) for k, v in other.model.state_dict().items())
    assert other.steps == 0


def test_an_optimizer_state_that_does_not_fit_names_every_problem_and_changes_nothing():
    # it named the first entry that did not fit ("'1.v' has shape (4,)") and stopped there
    p, q = tg.Parameter(np.ones(2)), tg.Parameter(np.ones(3))
    optimizer = tg.optim.Adam([p, q], lr=0.1)
    (p.sum() + q.sum()).backward()
    optimizer.step()
    before = optimizer.state_dict()
    bad = dict(before)
    del bad["0.m"]
    bad.update({"1.v": np.ones(4), "5.m": np.ones(2)})
    with pytest.raises(tg.CheckpointError, match=re.escape(
            "Adam.load_state_dict: '1.v' has shape (4,), parameter 1 has (3,); unexpected entry "
            "'5.m'; the state of parameter 0 is incomplete: missing ['0.m']")):
        optimizer.load_state_dict(bad)
    after = optimizer.state_dict()
    assert after.keys() == before.keys() and optimizer.steps == 1
    assert all(np.array_equal(after[k], v) for k, v in before.items())


def test_an_empty_expect_refuses_every_entry_as_unexpected(tmp_path):
    """``expect={}`` wants no entry (a model without parameters): every entry of the file is
    unexpected, as before 2c70886, which read {} as 'no expect' and then failed reading the data
    with 'not a readable checkpoint ... KeyError: 'x''."""
    path = tmp_path / "one.ckpt"
    tg.save_arrays(path, {"x": np.zeros(3)})
    with pytest.raises(tg.CheckpointError, match=r"does not match what loads it, entry 'x': "
                                                 r"unexpected \['x'\] \(not among the 0 entries"):
        tg.read_checkpoint(path, {})

    class Empty(tg.Module):
        pass

    with pytest.raises(tg.CheckpointError, match=r"unexpected \['x'\]"):
        Empty().load(path)
    assert list(tg.read_checkpoint(path).arrays) == ["x"]       # no expect: anything goes
