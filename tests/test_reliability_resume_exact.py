"""A resumed run is the uninterrupted run: N updates straight equal N/2, ``save_training``,
``load_training`` into fresh objects, N/2 more -- bit for bit (parameters, optimizer state,
scheduler state and losses), for every optimizer of ``tg.optim`` and every learning-rate
scheduler, with gradient clipping, a seeded Dropout, shuffled minibatches (the shuffling
Generator's state kept in the checkpoint's metadata) and truncated BPTT carrying its state
(``model.carry``) across the save."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
from tinygraph import lr_scheduler as sched

OPTIMIZERS = {
    "sgd": lambda ps: tg.optim.SGD(ps, lr=0.05),
    "sgd_momentum_decay": lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "adagrad_decay": lambda ps: tg.optim.Adagrad(ps, lr=0.05, weight_decay=1e-2),
    "adam": lambda ps: tg.optim.Adam(ps, lr=0.05),
    "adam_decay": lambda ps: tg.optim.Adam(ps, lr=0.05, weight_decay=1e-2),
    "adamw": lambda ps: tg.optim.AdamW(ps, lr=0.05),
}

SCHEDULERS = {
    "none": None,
    "step": lambda o: sched.StepLR(o, step_size=2, gamma=0.5),
    "cosine": lambda o: sched.CosineAnnealingLR(o, T_max=5, eta_min=1e-3),
    "lambda": lambda o: sched.LambdaLR(o, lambda e: 1.0 / (1 + e)),
    "plateau": lambda o: sched.ReduceLROnPlateau(o, factor=0.5, patience=0),
}

N = 8       # updates of the whole run; the interrupted one saves after N // 2


def _advance(scheduler, loss):
    if isinstance(scheduler, sched.ReduceLROnPlateau):
        scheduler.step(loss)
    elif scheduler is not None:
        scheduler.step()


def _state(trainer, scheduler):
    out = {f"p/{k}": v.copy() for k, v in trainer.model.state_dict().items()}
    out.update({f"o/{k}": np.array(v) for k, v in trainer.optimizer.state_dict().items()})
    if scheduler is not None:
        out.update({f"s/{k}": np.array(v) for k, v in scheduler.state_dict().items()})
    out["steps"] = np.array(trainer.steps)
    return out


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k       # bit for bit (NaN and -0.0 too)


class _DropoutNet(tg.Module):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.W = tg.Parameter(rng.standard_normal((4, 6)), name="W")
        self.V = tg.Parameter(rng.standard_normal((6, 3)), name="V")
        self.drop = tg.Dropout(0.3, seed=11)

    def loss(self, x, y):
        return ((self.drop(tg.tensor(x) @ self.W).tanh() @ self.V - y) ** 2).mean()


def _shuffled_run(opt, sch, X, Y, epochs, trainer=None, scheduler=None, rng=None):
    """``epochs`` epochs of 2 shuffled minibatches each; the scheduler steps per epoch."""
    if trainer is None:
        model = _DropoutNet()
        trainer = rnn.Trainer(model, OPTIMIZERS[opt](model.parameters()), clip=1.0)
        scheduler = SCHEDULERS[sch](trainer.optimizer) if SCHEDULERS[sch] else None
        rng = np.random.default_rng(5)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for part in np.array_split(order, 2):
            losses.append(trainer.step(X[part], Y[part])[0])
        _advance(scheduler, losses[-1])
    return trainer, scheduler, rng, losses


@pytest.mark.parametrize("sch", SCHEDULERS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_shuffled_minibatches_with_dropout_resume_bit_for_bit(tmp_path, opt, sch):
    data = np.random.default_rng(1)
    X, Y = data.standard_normal((10, 4)), data.standard_normal((10, 3))
    whole, whole_sched, _, whole_losses = _shuffled_run(opt, sch, X, Y, N // 2)

    first, first_sched, rng, first_losses = _shuffled_run(opt, sch, X, Y, N // 4)
    rnn.train.save_training(tmp_path / "run.ckpt", first, scheduler=first_sched,
                            meta={"rng": rng.bit_generator.state})
    fresh, fresh_sched, _, _ = _shuffled_run(opt, sch, X, Y, 0)
    _, meta = rnn.train.load_training(tmp_path / "run.ckpt", fresh, scheduler=fresh_sched)
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    *_, rest = _shuffled_run(opt, sch, X, Y, N // 4, fresh, fresh_sched, rng)

    assert first_losses + rest == whole_losses
    _assert_same(_state(fresh, fresh_sched), _state(whole, whole_sched))


def _tbptt_run(opt, sch, xs, ys, chunks, trainer=None, scheduler=None, h=None):
    """``chunks`` updates of truncated BPTT, 5 steps each, the state carried; the scheduler
    steps per update."""
    if trainer is None:
        model = rnn.ElmanRNN(5, 4, 5, seed=2)
        trainer = rnn.Trainer(model, OPTIMIZERS[opt](model.parameters()), clip=0.5)
        scheduler = SCHEDULERS[sch](trainer.optimizer) if SCHEDULERS[sch] else None
    losses = []
    for _ in range(chunks):
        k = trainer.steps
        loss, _, carried = trainer.chunk(xs[5 * k:5 * k + 5], ys[5 * k:5 * k + 5],
                                         {} if h is None else {"h0": h})
        h = carried["h0"]
        losses.append(loss)
        _advance(scheduler, loss)
    return trainer, scheduler, h, losses


@pytest.mark.parametrize("sch", SCHEDULERS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_truncated_bptt_with_a_carried_state_resumes_bit_for_bit(tmp_path, opt, sch):
    data = np.random.default_rng(3)
    xs, ys = data.integers(0, 5, (5 * N, 2)), data.integers(0, 5, (5 * N, 2))
    whole, whole_sched, whole_h, whole_losses = _tbptt_run(opt, sch, xs, ys, N)

    first, first_sched, h, first_losses = _tbptt_run(opt, sch, xs, ys, N // 2)
    rnn.train.save_training(tmp_path / "run.ckpt", first, {"h": h.data}, scheduler=first_sched)
    fresh, fresh_sched, _, _ = _tbptt_run(opt, sch, xs, ys, 0)
    arrays, _ = rnn.train.load_training(tmp_path / "run.ckpt", fresh,
                                        {"h": ((2, 4), np.float64)}, scheduler=fresh_sched)
    _, _, h, rest = _tbptt_run(opt, sch, xs, ys, N - N // 2, fresh, fresh_sched, arrays["h"])

    assert first_losses + rest == whole_losses
    assert h.data.tobytes() == whole_h.data.tobytes()
    _assert_same(_state(fresh, fresh_sched), _state(whole, whole_sched))


def _trained(tmp_path, with_scheduler):
    model = _DropoutNet()
    trainer = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.05), clip=1.0)
    scheduler = sched.StepLR(trainer.optimizer, 1, 0.5) if with_scheduler else None
    data = np.random.default_rng(1)
    for _ in range(3):
        trainer.step(data.standard_normal((5, 4)), data.standard_normal((5, 3)))
        _advance(scheduler, None)
    rnn.train.save_training(tmp_path / "run.ckpt", trainer, scheduler=scheduler)


def _untouched(fresh, scheduler):
    """The fresh trainer and scheduler as made, after a refused load."""
    model = _DropoutNet()
    assert fresh.steps == 0 and fresh.optimizer.steps == 0 and fresh.model.drop._calls == 0
    np.testing.assert_array_equal(fresh.model.W.data, model.W.data)
    assert fresh.optimizer.param_groups[0]["lr"] == 0.05
    if scheduler is not None:
        assert scheduler.last_epoch == 0 and scheduler.get_last_lr() == [0.05]


def test_a_checkpoint_with_a_scheduler_is_refused_without_one(tmp_path):
    # was: no scheduler state was saved at all, so a resumed run that made its scheduler again
    # started the schedule over (lr 0.05 where the run had reached 0.00625) without a word
    _trained(tmp_path, with_scheduler=True)
    fresh = rnn.Trainer(_DropoutNet(), tg.optim.Adam(_DropoutNet().parameters(), lr=0.05))
    fresh = rnn.Trainer(fresh.model, tg.optim.Adam(fresh.model.parameters(), lr=0.05), clip=1.0)
    with pytest.raises(tg.CheckpointError, match=r"saved with a learning-rate scheduler "
                                                 r"\(StepLR\).*load_training\(\.\.\., scheduler="):
        rnn.train.load_training(tmp_path / "run.ckpt", fresh)
    _untouched(fresh, None)


def test_a_checkpoint_without_a_scheduler_is_refused_with_one(tmp_path):
    _trained(tmp_path, with_scheduler=False)
    model = _DropoutNet()
    fresh = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.05), clip=1.0)
    scheduler = sched.StepLR(fresh.optimizer, 1, 0.5)
    with pytest.raises(tg.CheckpointError, match=r"saved without a learning-rate scheduler.*"
                                                 r"StepLR"):
        rnn.train.load_training(tmp_path / "run.ckpt", fresh, scheduler=scheduler)
    _untouched(fresh, scheduler)


def test_a_checkpoint_of_another_scheduler_changes_nothing(tmp_path):
    _trained(tmp_path, with_scheduler=True)
    model = _DropoutNet()
    fresh = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.05), clip=1.0)
    scheduler = sched.CosineAnnealingLR(fresh.optimizer, T_max=4)
    with pytest.raises(tg.CheckpointError, match=r"the state is of StepLR, not CosineAnnealingLR"):
        rnn.train.load_training(tmp_path / "run.ckpt", fresh, scheduler=scheduler)
    _untouched(fresh, scheduler)
    other = sched.StepLR(fresh.optimizer, 2, 0.5)       # the same kind, another step_size
    with pytest.raises(tg.CheckpointError, match=r"saved with step_size=1"):
        rnn.train.load_training(tmp_path / "run.ckpt", fresh, scheduler=other)
    _untouched(fresh, other)


def test_a_scheduler_of_another_optimizer_is_refused_before_anything_is_written(tmp_path):
    model = _DropoutNet()
    trainer = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.05))
    stray = sched.StepLR(tg.optim.SGD(_DropoutNet().parameters(), lr=0.1), 1)
    with pytest.raises(tg.ConfigError, match="scheduler of another optimizer"):
        rnn.train.save_training(tmp_path / "run.ckpt", trainer, scheduler=stray)
    assert not (tmp_path / "run.ckpt").exists()


def test_a_load_that_fails_after_the_scheduler_was_loaded_puts_it_back(tmp_path, monkeypatch):
    _trained(tmp_path, with_scheduler=True)
    model = _DropoutNet()
    fresh = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.05), clip=1.0)
    scheduler = sched.StepLR(fresh.optimizer, 1, 0.5)

    def refuse(state):
        raise tg.CheckpointError("refused (the test's)")
    monkeypatch.setattr(model, "load_state_dict", refuse)     # the last part of the load
    with pytest.raises(tg.CheckpointError, match="refused"):
        rnn.train.load_training(tmp_path / "run.ckpt", fresh, scheduler=scheduler)
    _untouched(fresh, scheduler)
    assert scheduler.base_lrs == [0.05]
    scheduler.step()                            # its rates and the optimizer's agree
    assert fresh.optimizer.param_groups[0]["lr"] == 0.025
