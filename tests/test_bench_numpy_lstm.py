"""The benchmark's hand-written numpy LSTM (bench/numpy_lstm.py) and the user LSTM cell it is
timed against (bench/designs.py) compute the right thing: central finite differences, the
independent reference of tests/bptt_reference.py, and each other."""

import numpy as np
import pytest

import bptt_reference as ref
import tinygraph as tg
from bench import designs
from bench import numpy_elman as ne
from bench import numpy_lstm as nl


def _setup(batch, seed=0):
    params = nl.init_params(5, 3, seed=seed)
    rng = np.random.default_rng(seed)
    params["b"] = rng.normal(0, 0.3, params["b"].shape)
    params["c"] = rng.normal(0, 0.3, params["c"].shape)
    xs, ys = ne.make_data(5, 4, batch, seed=seed)
    return params, xs, ys


def test_numpy_lstm_gradients_match_finite_differences(numeric_grad):
    params, xs, ys = _setup(batch=2)
    names = list(params)
    _, grads = nl.per_step(params, xs, ys)
    numeric = numeric_grad(lambda *arrays: nl.per_step(dict(zip(names, arrays)), xs, ys)[0],
                           [params[k] for k in names])
    for name, g in zip(names, numeric):
        np.testing.assert_allclose(grads[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


def _unstacked(params):
    """The stacked blocks as the reference's named gates (order f, g, q, z)."""
    H = params["Wh"].shape[1]
    out = {"V": params["V"], "c": params["c"]}
    for i, gate in enumerate(("f", "g", "o", "")):
        rows = slice(i * H, (i + 1) * H)
        out[f"U{gate}"], out[f"W{gate}"], out[f"b{gate}"] = (params["Ux"][rows],
                                                            params["Wh"][rows], params["b"][rows])
    return out


@pytest.mark.parametrize("batch", [1, 3])
def test_numpy_lstm_equals_the_independent_reference(batch):
    params, xs, ys = _setup(batch)
    loss, grads = nl.per_step(params, xs, ys)
    expected_loss, expected = ref.lstm(_unstacked(params), xs, ys)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name, g in _unstacked(grads).items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_benchmarked_user_lstm_cell_equals_the_numpy_lstm(batch):
    params, xs, ys = _setup(batch)
    cell = designs.user_lstm(params)
    loss = cell.loss(xs, ys)
    expected_loss, expected = nl.per_step(params, xs, ys)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    for (name, p), g in zip(cell.named_parameters(), tg.grad(loss, cell.parameters())):
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_benchmarked_rnn_lstm_on_the_stacked_parameters_equals_the_numpy_lstm(batch):
    params, xs, ys = _setup(batch)
    model = designs.builtin_lstm(params)
    loss = model.loss(xs, ys)
    expected_loss, expected = nl.per_step(params, xs, ys)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    grads = dict(zip((k for k, _ in model.named_parameters()), tg.grad(loss, model.parameters())))
    stacked = {"Ux": np.concatenate([grads[f"U{k}"] for k in ("f", "g", "o", "")]),
               "Wh": np.concatenate([grads[f"W{k}"] for k in ("f", "g", "o", "")]),
               "b": np.concatenate([grads[f"b{k}"] for k in ("f", "g", "o", "")]),
               "V": grads["V"], "c": grads["c"]}
    for name, g in stacked.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-13, err_msg=name)
