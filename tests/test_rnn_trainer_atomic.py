"""Trainer.update is all or nothing: an update that raises, is interrupted or is refused leaves
the parameters, every .grad (the arrays themselves and their values) and the optimizer as
before the call -- backward failing, a Ctrl-C between clipping and the optimizer's step, a
loss that reaches none of the optimizer's parameters (another model's parameters it reads keep
their gradients), a gradient that is not finite.  The update itself is unchanged: bit for bit
the hand-written zero_grad, backward, clip_grad_norm, step."""

import copy

import numpy as np
import pytest

import rnn
import tinygraph as tg


class Classifier(tg.Module):
    def __init__(self, seed=0, dtype=np.float64, fail=None):
        rng = np.random.default_rng(seed)
        self.W = tg.Parameter(rng.normal(0, 3.0, (3, 2)).astype(dtype))
        self.b = tg.Parameter(rng.normal(0, 1.0, 2).astype(dtype))
        self.fail = fail          # an exception the backward of the loss raises

    def loss(self, xs, ys, other=None, spoil=False):
        z = tg.tensor(xs, dtype=self.W.dtype) @ self.W + self.b
        if self.fail is not None:
            def vjp(g, error=self.fail):
                raise error
            z = tg.make_node("boom", z.data.copy(), (z,), [vjp])
        out = tg.cross_entropy(z, ys)
        if spoil:       # + sqrt(0): a finite loss, a NaN gradient of b (inf * 0)
            out = out + tg.sqrt((self.b * 0.0).sum())
        return out if other is None else out + (other.W * other.W).sum()


XS = np.random.default_rng(1).standard_normal((8, 3))
YS = (XS[:, 0] > 0).astype(np.int64)


def _with_grads(model, seed):
    """Give the model's parameters gradients of their own (one None), kept by the caller."""
    rng = np.random.default_rng(seed)
    params = model.parameters()
    for k, p in enumerate(params):
        p.grad = None if k == len(params) - 1 else rng.normal(size=p.shape).astype(p.dtype)


def _snapshot(*tensors, optimizer=None, trainer=None):
    """Every array the update could change, and the .grad objects themselves."""
    return ([(t.data.copy(), t.grad, None if t.grad is None else t.grad.copy()) for t in tensors],
            None if optimizer is None else (copy.deepcopy(optimizer.state), optimizer.steps),
            None if trainer is None else (trainer.steps, list(trainer.skipped)))


def _assert_same(tensors, snapshot, optimizer=None, trainer=None):
    arrays, opt, steps = snapshot
    for t, (data, grad, values) in zip(tensors, arrays):
        assert np.array_equal(t.data, data)
        assert t.grad is grad, "the .grad array held before the update is put back"
        if grad is not None:
            assert np.array_equal(grad, values)
    if optimizer is not None:
        state, n = opt
        assert optimizer.steps == n and len(optimizer.state) == len(state)
        for now, was in zip(optimizer.state, state):
            assert now.keys() == was.keys()
            assert all(np.array_equal(now[k], was[k]) for k in now)
    if trainer is not None:
        assert (trainer.steps, list(trainer.skipped)) == steps


def _trained(optimizer_of, clip):
    """A Trainer after one update, so the optimizer has state to keep."""
    model = Classifier()
    trainer = rnn.Trainer(model, optimizer_of(model.parameters()), clip=clip)
    trainer.step(XS, YS)
    return model, trainer


OPTIMIZERS = [lambda ps: tg.optim.Adam(ps, lr=0.1), lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9)]


@pytest.mark.parametrize("optimizer_of", OPTIMIZERS)
def test_a_backward_that_raises_leaves_every_gradient_as_before(optimizer_of):
    model, trainer = _trained(optimizer_of, clip=0.5)
    _with_grads(model, 2)
    before = _snapshot(*model.parameters(), optimizer=trainer.optimizer, trainer=trainer)
    model.fail = RuntimeError("boom in backward")
    with pytest.raises(RuntimeError, match="boom in backward"):
        trainer.step(XS, YS)
    _assert_same(model.parameters(), before, trainer.optimizer, trainer)   # zero_grad had cleared them
    model.fail = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        trainer.step(XS, YS)
    _assert_same(model.parameters(), before, trainer.optimizer, trainer)


@pytest.mark.parametrize("where", ["step", "midway"])
@pytest.mark.parametrize("optimizer_of", OPTIMIZERS)
def test_an_interrupt_between_clipping_and_the_step_leaves_the_gradients_unclipped(optimizer_of,
                                                                                   where):
    model, trainer = _trained(optimizer_of, clip=1e-3)     # every update clips
    _with_grads(model, 3)
    before = _snapshot(*model.parameters(), optimizer=trainer.optimizer, trainer=trainer)
    opt = trainer.optimizer
    if where == "step":       # Ctrl-C as the step starts: the gradients were clipped just before
        def step():
            raise KeyboardInterrupt
        opt.step = step
    else:                     # Ctrl-C inside the step, one parameter updated: the step undoes it
        calls = []
        update = opt._update

        def _update(*args):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            update(*args)
        opt._update = _update
    with pytest.raises(KeyboardInterrupt):
        trainer.step(XS, YS)
    _assert_same(model.parameters(), before, opt, trainer)


def test_a_loss_reaching_none_of_the_parameters_leaves_the_other_models_gradients():
    model, other = Classifier(0), Classifier(5)
    trainer = rnn.Trainer(other, tg.optim.SGD(model.parameters(), lr=0.1))    # the wrong model's
    _with_grads(model, 4)
    _with_grads(other, 6)
    everything = model.parameters() + other.parameters()
    before = _snapshot(*everything, optimizer=trainer.optimizer, trainer=trainer)
    with pytest.raises(tg.ConfigError, match="none of the optimizer's 2 parameters got a gradient"):
        trainer.step(XS, YS)
    _assert_same(everything, before, trainer.optimizer, trainer)


def test_a_non_finite_gradient_leaves_every_gradient_as_before():
    model, other = Classifier(0), Classifier(5)
    trainer = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.1))
    trainer.step(XS, YS, other=other)
    _with_grads(model, 4)
    _with_grads(other, 6)
    everything = model.parameters() + other.parameters()
    before = _snapshot(*everything, optimizer=trainer.optimizer, trainer=trainer)
    with np.errstate(all="ignore"):
        assert np.isfinite(Classifier(0).loss(XS, YS, spoil=True).item())
        with pytest.raises(rnn.NonFiniteLossError, match="gradient of parameter"):
            trainer.step(XS, YS, other=other, spoil=True)
        _assert_same(everything, before, trainer.optimizer, trainer)
        trainer.skip_nonfinite = True
        with pytest.warns(RuntimeWarning, match="batch skipped"):
            trainer.step(XS, YS, other=other, spoil=True)
    arrays, opt, _ = before
    _assert_same(everything, (arrays, opt, None), trainer.optimizer)
    assert len(trainer.skipped) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clip", [None, 1e-3, 1e3])
def test_an_update_is_the_hand_written_loop_bit_for_bit(dtype, clip):
    model, twin = Classifier(dtype=dtype), Classifier(dtype=dtype)
    trainer = rnn.Trainer(model, tg.optim.Adam(model.parameters(), lr=0.1), clip=clip)
    opt = tg.optim.Adam(twin.parameters(), lr=0.1)
    for k in range(4):
        xs = XS * (k + 1)
        _, norm = trainer.step(xs, YS)
        opt.zero_grad()
        twin.loss(xs, YS).backward()
        expected = tg.clip_grad_norm(twin.parameters(), np.inf if clip is None else clip)
        opt.step()
        assert norm == expected
        for p, q in zip(model.parameters(), twin.parameters()):
            assert p.grad.dtype == q.grad.dtype == dtype
            assert np.array_equal(p.grad, q.grad) and np.array_equal(p.data, q.data)
