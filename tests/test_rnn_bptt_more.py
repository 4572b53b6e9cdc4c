"""DeepRNN, LeakyRNN, EchoStateNetwork, MemoryNetwork and RecursiveNet: loss and gradients
equal the independent hand-written numpy BPTT of tests/bptt_reference_more.py.

Float64, relative error 1e-9, unbatched (B=1) and batched, with and without masks; the
oracle itself is checked against central finite differences once per design.  ``loss``
(the batched form) and ``run(...).loss`` (every op of every step a node) agree to 1e-12.
"""

import numpy as np
import pytest

import bptt_reference as ref_base
import bptt_reference_more as ref
import rnn
import tinygraph as tg

RTOL = 1e-9
ATOL = 1e-12
T = 6


def _randomise(model, rng, scale=0.7):
    """Random values for every trained parameter (biases too); returns name -> array."""
    values = {}
    for name, p in model.named_parameters():
        values[name] = rng.normal(scale=scale, size=p.shape)
        p.data = values[name].copy()
    return values


def _inputs(rng, batch, n_in, kind="ids"):
    lead = (T,) if batch is None else (T, batch)
    if kind == "ids":
        return rng.integers(0, n_in, size=lead)
    return rng.normal(size=lead + (n_in,))


def _targets(rng, batch, n_out):
    return rng.integers(0, n_out, size=(T,) if batch is None else (T, batch))


def _mask(batch):
    mask = np.ones((T, batch))
    mask[T - 2:, 0] = 0          # a shorter sequence
    mask[2, batch - 1] = 0       # a skipped step inside a sequence: the state is carried
    return mask


def _check(model, loss_fn, expected, extra=()):
    """Engine loss and gradients (backward of loss_fn()) against the oracle's (loss, grads)."""
    model.zero_grad()
    loss = loss_fn()
    loss.backward()
    ref_loss, ref_grads = expected
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=RTOL, atol=ATOL, err_msg="loss")
    for name, p in list(model.named_parameters()) + list(extra):
        assert p.grad is not None, f"no gradient reached {name}"
        np.testing.assert_allclose(p.grad, ref_grads[name], rtol=RTOL, atol=ATOL,
                                   err_msg=f"d loss / d {name}")


def _same_loss_both_forms(model, *args, **kwargs):
    a = model.loss(*args, **kwargs).item()
    b = model.run(*args, **kwargs).loss.item()
    assert abs(a - b) <= 1e-12 * max(1.0, abs(b))


BATCHES = [None, 3]
MASKED = [(None, False), (3, False), (4, True)]


# ---------------------------------------------------------------- LeakyRNN
@pytest.mark.parametrize("batch, masked", MASKED)
@pytest.mark.parametrize("alpha, skip", [(0.7, None), (0.7, 2), ("learned", None),
                                         ("learned", 3)])
def test_leaky_rnn_equals_hand_written_bptt(alpha, skip, batch, masked):
    rng = np.random.default_rng(1)
    model = rnn.LeakyRNN(4, 5, 3, alpha=alpha, skip=skip, seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, batch, 4), _targets(rng, batch, 3)
    mask = _mask(batch) if masked else None
    h0 = tg.tensor(rng.normal(size=(5,) if batch is None else (batch, 5)), requires_grad=True)
    _check(model, lambda: model.loss(xs, ys, h0=h0, mask=mask),
           ref.leaky(params, xs, ys, None if alpha == "learned" else alpha, skip, h0=h0.data,
                     mask=mask))
    np.testing.assert_allclose(h0.grad, ref.leaky(params, xs, ys,
                                                  None if alpha == "learned" else alpha, skip,
                                                  h0=h0.data, mask=mask)[1]["h0"],
                               rtol=RTOL, atol=ATOL)
    _same_loss_both_forms(model, xs, ys, mask=mask)


def test_leaky_rnn_with_float_inputs_equals_hand_written_bptt():
    rng = np.random.default_rng(2)
    model = rnn.LeakyRNN(3, 4, 2, alpha=0.5, skip=2, seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, 2, 3, "floats"), _targets(rng, 2, 2)
    _check(model, lambda: model.loss(xs, ys), ref.leaky(params, xs, ys, 0.5, 2))


# ---------------------------------------------------------------- EchoStateNetwork
@pytest.mark.parametrize("batch, masked", MASKED)
def test_echo_state_network_equals_hand_written_bptt(batch, masked):
    rng = np.random.default_rng(3)
    model = rnn.EchoStateNetwork(3, 6, 2, spectral_radius=1.1, seed=1)
    params = _randomise(model, rng)
    params.update(U=model.U.data, W=model.W.data, b=model.b.data)
    xs = _inputs(rng, batch, 3, "floats")
    ys = rng.normal(size=(T, 2) if batch is None else (T, batch, 2))
    mask = _mask(batch) if masked else None
    h0 = tg.tensor(rng.normal(size=(6,) if batch is None else (batch, 6)), requires_grad=True)
    expected = ref.echo_state(params, xs, ys, h0=h0.data, mask=mask)
    _check(model, lambda: model.loss(xs, ys, h0=h0, mask=mask), expected)
    np.testing.assert_allclose(h0.grad, expected[1]["h0"], rtol=RTOL, atol=ATOL)
    assert model.U.grad is None and model.W.grad is None
    _same_loss_both_forms(model, xs, ys, mask=mask)


# ---------------------------------------------------------------- DeepRNN
@pytest.mark.parametrize("batch, masked", MASKED)
@pytest.mark.parametrize("layers", [2, 3])
def test_stacked_deep_rnn_equals_hand_written_bptt(layers, batch, masked):
    rng = np.random.default_rng(4)
    model = rnn.DeepRNN(4, 3, 5, layers=layers, kind="stacked", seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, batch, 4), _targets(rng, batch, 5)
    mask = _mask(batch) if masked else None
    shape = (3,) if batch is None else (batch, 3)
    h0 = {"h1": rng.normal(size=shape), f"h{layers}": rng.normal(size=shape)}
    _check(model, lambda: model.loss(xs, ys, h0=h0, mask=mask),
           ref.deep_stacked(params, xs, ys, layers, h0=h0, mask=mask))
    _same_loss_both_forms(model, xs, ys, h0=h0, mask=mask)


@pytest.mark.parametrize("batch, masked", MASKED)
@pytest.mark.parametrize("kind, layers", [("mlp", 2), ("skip", 2), ("mlp", 3), ("skip", 3)])
def test_mlp_and_skip_deep_rnn_equal_hand_written_bptt(kind, layers, batch, masked):
    rng = np.random.default_rng(5)
    model = rnn.DeepRNN(4, 3, 5, layers=layers, kind=kind, seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, batch, 4), _targets(rng, batch, 5)
    mask = _mask(batch) if masked else None
    h0 = tg.tensor(rng.normal(size=(3,) if batch is None else (batch, 3)), requires_grad=True)
    expected = ref.deep_mlp(params, xs, ys, layers - 1, skip=kind == "skip", h0=h0.data,
                            mask=mask)
    _check(model, lambda: model.loss(xs, ys, h0=h0, mask=mask), expected)
    np.testing.assert_allclose(h0.grad, expected[1]["h0"], rtol=RTOL, atol=ATOL)
    _same_loss_both_forms(model, xs, ys, mask=mask)


def test_mlp_deep_rnn_with_float_inputs_equals_hand_written_bptt():
    rng = np.random.default_rng(6)
    model = rnn.DeepRNN(3, 4, 2, kind="skip", seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, 2, 3, "floats"), _targets(rng, 2, 2)
    _check(model, lambda: model.loss(xs, ys), ref.deep_mlp(params, xs, ys, 1, skip=True))


# ---------------------------------------------------------------- MemoryNetwork
@pytest.mark.parametrize("batch, masked", MASKED)
def test_memory_network_equals_hand_written_bptt(batch, masked):
    rng = np.random.default_rng(7)
    model = rnn.MemoryNetwork(4, 5, 3, slots=3, width=2, seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, batch, 4), _targets(rng, batch, 3)
    mask = _mask(batch) if masked else None
    lead = () if batch is None else (batch,)
    h0 = {"h": rng.normal(size=lead + (5,)), "r": rng.normal(size=lead + (2,))}
    _check(model, lambda: model.loss(xs, ys, h0=h0, mask=mask),
           ref.memory(params, xs, ys, 3, 2, h0=h0, mask=mask))
    _same_loss_both_forms(model, xs, ys, h0=h0, mask=mask)


def test_memory_network_with_a_given_memory_equals_hand_written_bptt():
    rng = np.random.default_rng(8)
    model = rnn.MemoryNetwork(3, 4, 3, slots=4, width=3, seed=0)
    params = _randomise(model, rng)
    xs, ys = _inputs(rng, 2, 3, "floats"), _targets(rng, 2, 3)
    memory = tg.tensor(rng.normal(size=(2, 12)), requires_grad=True)
    expected = ref.memory(params, xs, ys, 4, 3, h0={"M": memory.data})
    model.zero_grad()
    loss = model.loss(xs, ys, h0={"M": memory})
    loss.backward()
    np.testing.assert_allclose(loss.item(), expected[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(memory.grad, expected[1]["h0"]["M"], rtol=RTOL, atol=ATOL)
    assert model.M0.grad is None
    for name, p in model.named_parameters():
        if name != "M0":
            np.testing.assert_allclose(p.grad, expected[1][name], rtol=RTOL, atol=ATOL,
                                       err_msg=name)


# ---------------------------------------------------------------- RecursiveNet
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("shape", ["balanced", "left-deep", "odd"])
def test_recursive_net_equals_hand_written_backprop_through_the_tree(shape, batch):
    rng = np.random.default_rng(9)
    model = rnn.RecursiveNet(4, 5, 3, seed=0)
    params = _randomise(model, rng)
    leaves = [rng.integers(0, 4, size=() if batch is None else (batch,)) for _ in range(6)]
    if shape == "balanced":
        tree = rnn.balanced_tree(leaves)
    elif shape == "left-deep":
        tree = leaves[0]
        for leaf in leaves[1:]:
            tree = (tree, leaf)
    else:
        tree = ((leaves[0], (leaves[1], leaves[2])), rng.normal(size=(4,) if batch is None
                                                                else (batch, 4)))
    y = rng.integers(0, 3, size=() if batch is None else (batch,))
    _check(model, lambda: model.loss(tree, y), ref.recursive(params, tree, y))


# ---------------------------------------------------------------- the oracles themselves
def _oracle_matches_finite_differences(fn, params):
    loss_of = lambda p: fn(p)[0]          # noqa: E731
    numeric = ref_base.finite_difference_grads(loss_of, params)
    _, grads = fn(params)
    for name in params:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def _small(model, rng):
    return {n: rng.normal(scale=0.7, size=p.shape) for n, p in model.named_parameters()}


def test_the_oracles_match_finite_differences():
    rng = np.random.default_rng(10)
    xs = rng.integers(0, 3, size=(4, 2))
    ys = rng.integers(0, 2, size=(4, 2))
    mask = np.array([[1, 1], [1, 0], [1, 1], [0, 1]])
    cases = [
        (rnn.LeakyRNN(3, 2, 2, alpha="learned", skip=2),
         lambda p: ref.leaky(p, xs, ys, None, 2, mask=mask)),
        (rnn.DeepRNN(3, 2, 2, layers=3, kind="stacked"),
         lambda p: ref.deep_stacked(p, xs, ys, 3, mask=mask)),
        (rnn.DeepRNN(3, 2, 2, layers=2, kind="skip"),
         lambda p: ref.deep_mlp(p, xs, ys, 1, skip=True, mask=mask)),
        (rnn.MemoryNetwork(3, 2, 2, slots=2, width=2),
         lambda p: ref.memory(p, xs, ys, 2, 2, mask=mask)),
        (rnn.RecursiveNet(3, 2, 2),
         lambda p: ref.recursive(p, ((xs[0], xs[1]), xs[2]), ys[0])),
    ]
    for model, fn in cases:
        _oracle_matches_finite_differences(fn, _small(model, rng))
    esn = rnn.EchoStateNetwork(2, 3, 2)
    fx, fy = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2, 2))
    fixed = {"U": esn.U.data, "W": esn.W.data, "b": esn.b.data}
    _oracle_matches_finite_differences(
        lambda p: ref.echo_state({**fixed, **p}, fx, fy, mask=mask), _small(esn, rng))
