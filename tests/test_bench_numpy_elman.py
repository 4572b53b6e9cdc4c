"""The benchmark's hand-written numpy Elman BPTT (bench/numpy_elman.py) computes the right thing.

The two numpy forms (per step, and batched over time) must agree with each other, with
central finite differences, and with the engine's generic backprop through
``rnn.ElmanRNN``; otherwise the speed comparison in bench/ would compare different work.
"""

import numpy as np
import pytest

import rnn
from bench import numpy_elman as ne

NAMES = "UWVbc"


def _setup(n_vocab=6, n_hidden=4, steps=5, batch=3, seed=0, dtype=np.float64):
    params = ne.init_params(n_vocab, n_hidden, seed=seed, dtype=dtype)
    params["b"] += 0.1      # nonzero biases so their gradients are exercised
    params["c"] -= 0.2
    xs, ys = ne.make_data(n_vocab, steps, batch, seed=seed)
    return params, xs, ys


@pytest.mark.parametrize("batch", [1, 3])
def test_batched_form_equals_per_step_form(batch):
    params, xs, ys = _setup(batch=batch)
    loss_a, grads_a = ne.per_step(params, xs, ys)
    loss_b, grads_b = ne.batched(params, xs, ys)
    assert np.isclose(loss_a, loss_b, rtol=1e-12)
    for k in NAMES:
        np.testing.assert_allclose(grads_b[k], grads_a[k], rtol=1e-10, atol=1e-13)


def test_per_step_gradients_match_finite_differences(numeric_grad):
    params, xs, ys = _setup(n_vocab=4, n_hidden=3, steps=4, batch=2)
    h0 = np.random.default_rng(5).normal(size=(2, 3))
    _, grads = ne.per_step(params, xs, ys, h0=h0)

    def loss_of(*arrays):
        return ne.per_step(dict(zip(NAMES, arrays)), xs, ys, h0=h0)[0]

    numeric = numeric_grad(loss_of, [params[k] for k in NAMES])
    for k, g in zip(NAMES, numeric):
        np.testing.assert_allclose(grads[k], g, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("batch", [1, 2])
def test_numpy_forms_match_engine_elman_gradients(batch):
    params, xs, ys = _setup(n_vocab=7, n_hidden=5, steps=6, batch=batch)
    model = rnn.ElmanRNN(7, 5, 7, seed=0)
    for k in NAMES:
        getattr(model, k).data[...] = params[k]
    loss = model.loss(xs, ys)
    loss.backward()
    expected_loss, grads = ne.batched(params, xs, ys)
    assert np.isclose(loss.item(), expected_loss, rtol=1e-12)
    for k in NAMES:
        np.testing.assert_allclose(getattr(model, k).grad, grads[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("form", [ne.per_step, ne.batched])
def test_float32_parameters_give_float32_gradients(form):
    params, xs, ys = _setup(dtype=np.float32)
    _, grads = form(params, xs, ys)
    assert all(grads[k].dtype == np.float32 for k in NAMES)
