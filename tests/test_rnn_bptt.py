"""Every recurrent design's loss and gradients equal an independent hand-written BPTT.

The models get their gradients from generic backprop over the unrolled DAG; the oracle
(tests/bptt_reference.py) applies the chapter's recursions, eqs. 10.17-10.28, by hand in
numpy. They must agree in float64 to a relative error of 1e-9 for id and float inputs,
unbatched and batched, with and without h0, at a few sizes and seeds. The oracle itself is
checked once per design against central finite differences.
"""

import itertools

import numpy as np
import pytest

import bptt_reference as ref
import rnn
import tinygraph as tg

RTOL = 1e-9
ATOL = 1e-12

SIZES = [(4, 3, 5, 6), (7, 5, 3, 9)]            # (n_in, n_hidden, n_out, T)
SEEDS = [0, 1]


def _elman_shapes(n_in, H, C):
    return {"U": (H, n_in), "W": (H, H), "V": (C, H), "b": (H,), "c": (C,)}


def _jordan_shapes(n_in, H, C):
    return {"U": (H, n_in), "W": (H, C), "V": (C, H), "b": (H,), "c": (C,)}


def _vec2seq_shapes(n_in, H, C):
    return {"R": (H, n_in), "W": (H, H), "U": (H, C), "V": (C, H), "b": (H,), "c": (C,)}


def _conditional_shapes(n_in, H, C):
    return {"U": (H, n_in), "W": (H, H), "R": (H, C), "V": (C, H), "b": (H,), "c": (C,)}


def _random_parameters(model, shapes, rng):
    """Give the model's parameters random values (biases too, so every term matters)."""
    values = {}
    for name, shape in shapes.items():
        param = getattr(model, name)
        assert param.data.shape == shape, f"{name}: model has {param.data.shape}, contract says {shape}"
        values[name] = rng.normal(scale=0.8, size=shape)
        param.data = values[name].copy()
    return values


def _backprop(model, names, run):
    """Loss value and the gradient of each named parameter, by the engine's backward()."""
    model.zero_grad()
    loss = run()
    loss.backward()
    return float(loss.data), {name: getattr(model, name).grad for name in names}


def _assert_matches(got, expected):
    got_loss, got_grads = got
    ref_loss, ref_grads = expected
    np.testing.assert_allclose(got_loss, ref_loss, rtol=RTOL, atol=ATOL, err_msg="loss")
    for name, g in got_grads.items():
        assert g is not None, f"no gradient reached {name}"
        assert g.dtype == np.float64, f"{name}.grad is {g.dtype}"
        np.testing.assert_allclose(g, ref_grads[name], rtol=RTOL, atol=ATOL, err_msg=f"d loss / d {name}")


def _sequence(rng, kind, T, batch, n):
    """ids (T,) / (T, B) or floats (T, n) / (T, B, n)."""
    lead = (T,) if batch is None else (T, batch)
    if kind == "ids":
        return rng.integers(0, n, size=lead)
    return rng.normal(size=lead + (n,))


def _targets(rng, T, batch, C):
    return rng.integers(0, C, size=(T,) if batch is None else (T, batch))


def _initial_state(rng, given, batch, H):
    if not given:
        return None
    return rng.normal(scale=0.5, size=(H,) if batch is None else (batch, H))


def _size_id(value):
    """Test ids: a size (n_in, H, n_out, T) reads "n4-H3-C5-T6"; other values keep pytest's id."""
    if isinstance(value, tuple):
        return "n{}-H{}-C{}-T{}".format(*value)
    return None


CASES = list(itertools.product(["ids", "floats"], [None, 3], [False, True], SIZES, SEEDS))


@pytest.mark.parametrize("kind, batch, h0_given, size, seed", CASES, ids=_size_id)
def test_elman_loss_and_gradients_equal_hand_written_bptt(kind, batch, h0_given, size, seed):
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.ElmanRNN(n_in, H, C, seed=seed)
    params = _random_parameters(model, _elman_shapes(n_in, H, C), rng)
    xs, ys = _sequence(rng, kind, T, batch, n_in), _targets(rng, T, batch, C)
    h0 = _initial_state(rng, h0_given, batch, H)
    got = _backprop(model, params, lambda: model.loss(xs, ys, h0=h0))
    _assert_matches(got, ref.elman(params, xs, ys, h0=h0))


@pytest.mark.parametrize("kind, h0_given, seed", list(itertools.product(["ids", "floats"], [False, True], SEEDS)))
def test_elman_masked_batch_loss_and_gradients_equal_hand_written_bptt(kind, h0_given, seed):
    n_in, H, C, T, B = 5, 4, 6, 7, 4
    rng = np.random.default_rng(seed)
    model = rnn.ElmanRNN(n_in, H, C, seed=seed)
    params = _random_parameters(model, _elman_shapes(n_in, H, C), rng)
    xs, ys = _sequence(rng, kind, T, B, n_in), _targets(rng, T, B, C)
    lengths = np.array([T, 1, 4, T - 1])
    mask = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)
    h0 = _initial_state(rng, h0_given, B, H)
    got = _backprop(model, params, lambda: model.loss(xs, ys, h0=h0, mask=mask))
    _assert_matches(got, ref.elman(params, xs, ys, h0=h0, mask=mask))


def test_elman_mask_zero_steps_inside_a_sequence_carry_the_state_unchanged():
    n_in, H, C, T, B = 4, 3, 5, 6, 3
    rng = np.random.default_rng(11)
    model = rnn.ElmanRNN(n_in, H, C, seed=0)
    params = _random_parameters(model, _elman_shapes(n_in, H, C), rng)
    xs, ys = _sequence(rng, "ids", T, B, n_in), _targets(rng, T, B, C)
    mask = np.ones((T, B))
    mask[1:3, 0] = 0.0                       # steps 2-3 of row 0 skipped, later steps read the carried state
    mask[4, 2] = 0.0
    got = _backprop(model, params, lambda: model.loss(xs, ys, mask=mask))
    _assert_matches(got, ref.elman(params, xs, ys, mask=mask))


@pytest.mark.parametrize("teacher_forcing", [True, False], ids=["teacher-forcing", "free-running"])
@pytest.mark.parametrize("kind, batch, size, seed",
                         list(itertools.product(["ids", "floats"], [None, 3], SIZES, SEEDS)), ids=_size_id)
def test_jordan_loss_and_gradients_equal_hand_written_bptt(teacher_forcing, kind, batch, size, seed):
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.JordanRNN(n_in, H, C, seed=seed)
    params = _random_parameters(model, _jordan_shapes(n_in, H, C), rng)
    xs, ys = _sequence(rng, kind, T, batch, n_in), _targets(rng, T, batch, C)
    got = _backprop(model, params, lambda: model.loss(xs, ys, teacher_forcing=teacher_forcing))
    _assert_matches(got, ref.jordan(params, xs, ys, teacher_forcing=teacher_forcing))


@pytest.mark.parametrize("kind, batch, h0_given, size, seed", CASES, ids=_size_id)
def test_sequence_to_one_loss_and_gradients_equal_hand_written_bptt(kind, batch, h0_given, size, seed):
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.SequenceToOne(n_in, H, C, seed=seed)
    params = _random_parameters(model, _elman_shapes(n_in, H, C), rng)
    xs = _sequence(rng, kind, T, batch, n_in)
    y = rng.integers(0, C, size=() if batch is None else (batch,))
    h0 = _initial_state(rng, h0_given, batch, H)
    got = _backprop(model, params, lambda: model.loss(xs, y, h0=h0))
    _assert_matches(got, ref.sequence_to_one(params, xs, y, h0=h0))


@pytest.mark.parametrize("batch, h0_given, size, seed",
                         list(itertools.product([None, 3], [False, True], SIZES, SEEDS)), ids=_size_id)
def test_vector_to_sequence_loss_and_gradients_equal_hand_written_bptt(batch, h0_given, size, seed):
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.VectorToSequence(n_in, H, C, seed=seed)
    params = _random_parameters(model, _vec2seq_shapes(n_in, H, C), rng)
    x = rng.normal(size=(n_in,) if batch is None else (batch, n_in))
    ys = _targets(rng, T, batch, C)
    h0 = _initial_state(rng, h0_given, batch, H)
    got = _backprop(model, params, lambda: model.loss(x, ys, h0=h0))
    _assert_matches(got, ref.vector_to_sequence(params, x, ys, h0=h0))


@pytest.mark.parametrize("batch, size, seed", list(itertools.product([None, 3], SIZES, SEEDS)),
                         ids=_size_id)
def test_vector_to_sequence_with_h0_from_x_equals_hand_written_bptt(batch, size, seed):
    # section 10.2.4, "both": x enters every step through R and sets h(0) = tanh(Q x)
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.VectorToSequence(n_in, H, C, seed=seed, h0_from_x=True)
    shapes = dict(_vec2seq_shapes(n_in, H, C), Q=(H, n_in))
    params = _random_parameters(model, shapes, rng)
    x = rng.normal(size=(n_in,) if batch is None else (batch, n_in))
    ys = _targets(rng, T, batch, C)
    got = _backprop(model, params, lambda: model.loss(x, ys))
    h0 = np.tanh(x @ params["Q"].T)
    loss, grads = ref.vector_to_sequence(params, x, ys, h0=h0)
    grad_a0 = np.reshape(grads["h0"] * (1 - h0 ** 2), (-1, H))       # through h(0) = tanh(Q x)
    grads["Q"] = grad_a0.T @ np.reshape(x, (-1, n_in))
    _assert_matches(got, (loss, grads))


@pytest.mark.parametrize("kind, batch, h0_given, size, seed", CASES, ids=_size_id)
def test_conditional_loss_and_gradients_equal_hand_written_bptt(kind, batch, h0_given, size, seed):
    n_in, H, C, T = size
    rng = np.random.default_rng(seed)
    model = rnn.ConditionalRNN(n_in, H, C, seed=seed)
    params = _random_parameters(model, _conditional_shapes(n_in, H, C), rng)
    xs, ys = _sequence(rng, kind, T, batch, n_in), _targets(rng, T, batch, C)
    h0 = _initial_state(rng, h0_given, batch, H)
    got = _backprop(model, params, lambda: model.loss(xs, ys, h0=h0))
    _assert_matches(got, ref.conditional(params, xs, ys, h0=h0))


def _with_initial_state(design, rng, n_in, C, T, batch):
    """(model class, parameter shapes, model.loss(h0) and the oracle's run(params, h0)) for one design."""
    xs = _sequence(rng, "ids", T, batch, n_in)
    ys = _targets(rng, T, batch, C)
    if design == "elman":
        return (rnn.ElmanRNN, _elman_shapes, lambda m, h0: m.loss(xs, ys, h0=h0),
                lambda p, h0: ref.elman(p, xs, ys, h0=h0))
    if design == "sequence-to-one":
        return (rnn.SequenceToOne, _elman_shapes, lambda m, h0: m.loss(xs, ys[-1], h0=h0),
                lambda p, h0: ref.sequence_to_one(p, xs, ys[-1], h0=h0))
    if design == "vector-to-sequence":
        x = rng.normal(size=(n_in,) if batch is None else (batch, n_in))
        return (rnn.VectorToSequence, _vec2seq_shapes, lambda m, h0: m.loss(x, ys, h0=h0),
                lambda p, h0: ref.vector_to_sequence(p, x, ys, h0=h0))
    return (rnn.ConditionalRNN, _conditional_shapes, lambda m, h0: m.loss(xs, ys, h0=h0),
            lambda p, h0: ref.conditional(p, xs, ys, h0=h0))


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("design", ["elman", "sequence-to-one", "vector-to-sequence", "conditional"])
def test_gradient_of_a_tensor_h0_equals_hand_written_bptt(design, batch):
    n_in, H, C, T = 4, 3, 5, 6
    rng = np.random.default_rng(2)
    cls, shapes, model_loss, oracle = _with_initial_state(design, rng, n_in, C, T, batch)
    model = cls(n_in, H, C, seed=0)
    params = _random_parameters(model, shapes(n_in, H, C), rng)
    h0 = tg.Tensor(_initial_state(rng, True, batch, H), requires_grad=True)
    model_loss(model, h0).backward()
    _, expected = oracle(params, h0.data)
    np.testing.assert_allclose(h0.grad, expected["h0"], rtol=RTOL, atol=ATOL)


# --- the oracle itself -------------------------------------------------------------------

N_IN, H, C, T, B = 3, 3, 4, 4, 2


def _oracle_cases():
    rng = np.random.default_rng(7)
    ids, floats = rng.integers(0, N_IN, size=(T, B)), rng.normal(size=(T, B, N_IN))
    ys, h0 = rng.integers(0, C, size=(T, B)), rng.normal(size=(B, H))
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=np.float64)
    vector = rng.normal(size=(B, N_IN))
    return {
        "elman-ids-masked": (_elman_shapes, lambda p: ref.elman(p, ids, ys, h0=h0, mask=mask)),
        "elman-floats": (_elman_shapes, lambda p: ref.elman(p, floats, ys)),
        "jordan-teacher-forcing": (_jordan_shapes, lambda p: ref.jordan(p, ids, ys, teacher_forcing=True)),
        "jordan-free-running": (_jordan_shapes, lambda p: ref.jordan(p, floats, ys, teacher_forcing=False)),
        "sequence-to-one": (_elman_shapes, lambda p: ref.sequence_to_one(p, floats, ys[-1], h0=h0)),
        "vector-to-sequence": (_vec2seq_shapes, lambda p: ref.vector_to_sequence(p, vector, ys, h0=h0)),
        "conditional": (_conditional_shapes, lambda p: ref.conditional(p, ids, ys, h0=h0)),
    }


@pytest.mark.parametrize("design", list(_oracle_cases()))
def test_reference_bptt_gradients_equal_finite_differences(design):
    shapes, run = _oracle_cases()[design]
    rng = np.random.default_rng(3)
    params = {name: rng.normal(scale=0.8, size=shape) for name, shape in shapes(N_IN, H, C).items()}
    _, grads = run(params)
    numeric = ref.finite_difference_grads(lambda p: run(p)[0], params)
    for name in params:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_reference_masked_batch_equals_sequences_run_one_by_one():
    rng = np.random.default_rng(5)
    params = {name: rng.normal(scale=0.8, size=shape) for name, shape in _elman_shapes(N_IN, H, C).items()}
    xs, ys = rng.integers(0, N_IN, size=(T, B)), rng.integers(0, C, size=(T, B))
    lengths = [T, 2]
    mask = (np.arange(T)[:, None] < np.array(lengths)[None, :]).astype(np.float64)
    loss, grads = ref.elman(params, xs, ys, mask=mask)
    singles = [ref.elman(params, xs[:n, b], ys[:n, b]) for b, n in enumerate(lengths)]
    np.testing.assert_allclose(loss, sum(s[0] for s in singles) / B, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], sum(s[1][name] for s in singles) / B, rtol=1e-12, atol=1e-15)


def test_reference_initial_state_gradient_equals_finite_differences():
    rng = np.random.default_rng(9)
    params = {name: rng.normal(scale=0.8, size=shape) for name, shape in _elman_shapes(N_IN, H, C).items()}
    xs, ys = rng.normal(size=(T, B, N_IN)), rng.integers(0, C, size=(T, B))
    mask = np.array([[1, 1], [0, 1], [1, 1], [1, 0]], dtype=np.float64)
    state = {"h0": rng.normal(size=(B, H))}
    _, grads = ref.elman(params, xs, ys, h0=state["h0"], mask=mask)
    numeric = ref.finite_difference_grads(lambda s: ref.elman(params, xs, ys, h0=s["h0"], mask=mask)[0], state)
    np.testing.assert_allclose(grads["h0"], numeric["h0"], rtol=1e-6, atol=1e-8)
