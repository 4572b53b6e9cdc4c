"""Resuming training from files: a fresh model and optimizer loaded from a checkpoint continue
exactly (bit for bit, float64) as the run that was never interrupted."""

import numpy as np
import pytest

import rnn
import tinygraph as tg

N_VOCAB, N_HIDDEN = 6, 5


def _batches(count, seed=0):
    """``count`` batches of (xs, ys) ids of shape (T, B) = (7, 3), a fixed random stream."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, N_VOCAB, (7, 3)), rng.integers(0, N_VOCAB, (7, 3)))
            for _ in range(count)]


def _fresh(seed):
    model = rnn.ElmanRNN(N_VOCAB, N_HIDDEN, N_VOCAB, seed=seed)
    return model, tg.optim.Adam(model.parameters(), lr=0.05)


def test_elman_with_adam_resumed_from_files_continues_exactly(tmp_path):
    batches = _batches(10)
    model, adam = _fresh(seed=0)
    trainer = rnn.Trainer(model, adam, clip=1.0)
    trainer.fit(batches[:5])
    model.save(tmp_path / "model.npz")
    tg.save_arrays(tmp_path / "adam.npz", adam.state_dict())
    uninterrupted = trainer.fit(batches[5:])

    resumed_model, resumed_adam = _fresh(seed=1)          # other initial weights, empty state
    resumed_model.load(tmp_path / "model.npz")
    resumed_adam.load_state_dict(tg.load_arrays(tmp_path / "adam.npz"))
    resumed = rnn.Trainer(resumed_model, resumed_adam, clip=1.0).fit(batches[5:])

    assert resumed == uninterrupted
    for (name, p), q in zip(model.named_parameters(), resumed_model.parameters()):
        assert np.array_equal(p.data, q.data), name


def test_resume_without_the_optimizer_state_does_not_continue_exactly(tmp_path):
    batches = _batches(6)
    model, adam = _fresh(seed=0)
    trainer = rnn.Trainer(model, adam)
    trainer.fit(batches[:3])
    model.save(tmp_path / "model.npz")
    uninterrupted = trainer.fit(batches[3:])

    resumed_model, resumed_adam = _fresh(seed=1)
    resumed_model.load(tmp_path / "model.npz")
    resumed = rnn.Trainer(resumed_model, resumed_adam).fit(batches[3:])
    assert resumed[0] == uninterrupted[0]       # same weights: same first loss
    assert resumed[1:] != uninterrupted[1:]     # Adam's moments and step count were lost


def test_truncated_bptt_resumed_with_its_carried_state_continues_exactly(tmp_path):
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, N_VOCAB, (40, 2)), rng.integers(0, N_VOCAB, (40, 2))
    model, adam = _fresh(seed=0)
    trainer = rnn.Trainer(model, adam, clip=5.0)
    _, h = rnn.truncated_bptt(trainer, xs[:20], ys[:20], chunk=5)
    model.save(tmp_path / "model.npz")
    tg.save_arrays(tmp_path / "adam.npz", adam.state_dict())
    tg.save_arrays(tmp_path / "state.npz", {"h": h.data})
    uninterrupted, _ = rnn.truncated_bptt(trainer, xs[20:], ys[20:], chunk=5, h0=h)

    resumed_model, resumed_adam = _fresh(seed=1)
    resumed_model.load(tmp_path / "model.npz")
    resumed_adam.load_state_dict(tg.load_arrays(tmp_path / "adam.npz"))
    h0 = tg.load_arrays(tmp_path / "state.npz")["h"]
    resumed, _ = rnn.truncated_bptt(rnn.Trainer(resumed_model, resumed_adam, clip=5.0),
                                    xs[20:], ys[20:], chunk=5, h0=h0)
    assert resumed == uninterrupted


class _DropoutNet(tg.Module):
    def __init__(self):
        self.W = tg.Parameter(np.random.default_rng(0).standard_normal((4, 3)), name="W")
        self.drop = tg.Dropout(0.5, seed=7)

    def loss(self, x, y):
        return ((self.drop(tg.tensor(x) @ self.W) - y) ** 2).mean()


def test_a_model_with_seeded_dropout_resumed_from_a_checkpoint_draws_the_same_masks(tmp_path):
    # was: the checkpoint kept no Dropout call count, so the resumed run drew the first masks
    # again: losses 3.84, 1.34, 4.49 instead of 5.19, 3.57, 3.19 and W off by 0.12
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((5, 4)), rng.standard_normal((5, 3))) for _ in range(6)]
    whole = _DropoutNet()
    losses = rnn.Trainer(whole, lr=0.05).fit(data)
    first = rnn.Trainer(_DropoutNet(), lr=0.05)
    first.fit(data[:3])
    rnn.train.save_training(tmp_path / "run.ckpt", first)
    resumed = rnn.Trainer(_DropoutNet(), lr=0.05)
    rnn.train.load_training(tmp_path / "run.ckpt", resumed)
    assert resumed.fit(data[3:]) == losses[3:]
    np.testing.assert_array_equal(resumed.model.W.data, whole.W.data)

    # a checkpoint whose counts do not fit the model's Dropout modules changes nothing
    other = rnn.Trainer(_DropoutNet(), lr=0.05)
    other.model.extra = tg.Dropout(0.1, seed=0)
    before = other.model.W.data.copy()
    with pytest.raises(tg.CheckpointError, match="dropout call counts"):
        rnn.train.load_training(tmp_path / "run.ckpt", other)
    np.testing.assert_array_equal(other.model.W.data, before)
    assert other.model.drop._calls == 0 and other.optimizer.steps == 0


def test_a_checkpoint_of_seeded_dropout_is_refused_by_a_model_of_another_seed(tmp_path):
    # was: loaded, the calls restored onto a Dropout of seed 8 where the run had seed 7, so the
    # resumed run drew other masks than the saved one without a word
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((5, 4)), rng.standard_normal((5, 3))) for _ in range(3)]
    first = rnn.Trainer(_DropoutNet(), lr=0.05)
    first.fit(data)
    rnn.train.save_training(tmp_path / "run.ckpt", first)
    other = rnn.Trainer(_DropoutNet(), lr=0.05)
    other.model.drop = tg.Dropout(0.5, seed=8)
    before = other.model.W.data.copy()
    with pytest.raises(tg.CheckpointError, match=r"its Dropout seeds \{'drop': 7\} are not the "
                                                 r"model's \{'drop': 8\}"):
        rnn.train.load_training(tmp_path / "run.ckpt", other)
    np.testing.assert_array_equal(other.model.W.data, before)
    assert other.model.drop._calls == 0 and other.optimizer.steps == 0 and other.steps == 0


@pytest.mark.parametrize("clip", [1.0, None], ids=["another_clip", "no_clip"])
def test_a_checkpoint_is_refused_by_a_trainer_of_another_clip(tmp_path, clip):
    # was: loaded, and the resumed updates clipped the gradient norm at another bound than the
    # saved run's 5.0 (or not at all), without a word
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((5, 4)), rng.standard_normal((5, 3))) for _ in range(3)]
    first = rnn.Trainer(_DropoutNet(), lr=0.05, clip=5.0)
    first.fit(data)
    rnn.train.save_training(tmp_path / "run.ckpt", first)
    other = rnn.Trainer(_DropoutNet(), lr=0.05, clip=clip)
    before = other.model.W.data.copy()
    with pytest.raises(tg.CheckpointError, match=rf"a Trainer of clip=5.0, this one has "
                                                 rf"clip={clip}"):
        rnn.train.load_training(tmp_path / "run.ckpt", other)
    np.testing.assert_array_equal(other.model.W.data, before)
    assert other.optimizer.steps == 0 and other.steps == 0
    same = rnn.Trainer(_DropoutNet(), lr=0.05, clip=5)     # the same bound, given as an int
    rnn.train.load_training(tmp_path / "run.ckpt", same)
    assert same.steps == 3
