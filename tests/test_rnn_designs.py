"""The recurrent designs of chapter 10: shapes, gradients (finite differences), batching, dtypes."""

import numpy as np
import pytest

import rnn
import tinygraph as tg

RNG = np.random.default_rng(0)
XS = RNG.integers(0, 3, (4, 2))          # ids (T=4, B=2), vocabulary 3
YS = RNG.integers(0, 3, (4, 2))


def _gradcheck_params(model, loss_fn):
    params = model.parameters()

    def fn(*_):
        return loss_fn()
    assert tg.gradcheck(fn, params, rtol=1e-6, atol=1e-9)


def test_elman_parameters_have_the_contract_shapes():
    m = rnn.ElmanRNN(n_in=5, n_hidden=4, n_out=3)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("U", (4, 5)), ("W", (4, 4)), ("V", (3, 4)), ("b", (4,)), ("c", (3,))]
    assert [p.name for p in m.parameters()] == ["U", "W", "V", "b", "c"]


@pytest.mark.parametrize("cls, names", [
    (rnn.JordanRNN, {"U": (4, 5), "W": (4, 3), "V": (3, 4), "b": (4,), "c": (3,)}),
    (rnn.SequenceToOne, {"U": (4, 5), "W": (4, 4), "V": (3, 4), "b": (4,), "c": (3,)}),
    (rnn.VectorToSequence, {"R": (4, 5), "W": (4, 4), "U": (4, 3), "V": (3, 4), "b": (4,), "c": (3,)}),
    (rnn.ConditionalRNN, {"U": (4, 5), "W": (4, 4), "R": (4, 3), "V": (3, 4), "b": (4,), "c": (3,)}),
])
def test_each_design_has_the_book_parameters(cls, names):
    m = cls(5, 4, 3)
    assert {n: p.shape for n, p in m.named_parameters()} == names


def test_elman_gradients_match_finite_differences_for_ids_and_floats():
    m = rnn.ElmanRNN(3, 3, 3, seed=1)
    _gradcheck_params(m, lambda: m.loss(XS, YS))
    floats = RNG.normal(size=(4, 2, 3))
    _gradcheck_params(m, lambda: m.loss(floats, YS, h0=np.full((2, 3), 0.3)))


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_jordan_gradients_match_finite_differences(teacher_forcing):
    m = rnn.JordanRNN(3, 3, 3, seed=2)
    _gradcheck_params(m, lambda: m.loss(XS, YS, teacher_forcing=teacher_forcing))


def test_sequence_to_one_gradients_match_finite_differences():
    m = rnn.SequenceToOne(3, 3, 2, seed=3)
    _gradcheck_params(m, lambda: m.loss(XS, np.array([1, 0])))


def test_vector_to_sequence_gradients_match_finite_differences():
    m = rnn.VectorToSequence(2, 3, 3, seed=4)
    x = RNG.normal(size=(2, 2))
    _gradcheck_params(m, lambda: m.loss(x, YS))


def test_conditional_gradients_match_finite_differences():
    m = rnn.ConditionalRNN(3, 3, 3, seed=5)
    _gradcheck_params(m, lambda: m.loss(XS, YS))


def test_gradient_reaches_the_initial_state():
    m = rnn.ElmanRNN(3, 3, 3, seed=6)
    h0 = tg.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    assert tg.gradcheck(lambda h: m.loss(XS, YS, h0=h), [h0])


def test_loss_is_the_sum_over_steps_of_the_batch_mean_cross_entropy():
    m = rnn.ElmanRNN(3, 4, 3, seed=7)
    outputs, _, _ = m(XS)
    expected = sum(tg.cross_entropy(o, y).item() for o, y in zip(outputs, YS))
    assert m.loss(XS, YS).item() == pytest.approx(expected, rel=1e-12)


def test_ids_equal_one_hot_float_inputs():
    m = rnn.ElmanRNN(3, 4, 3, seed=8)
    one_hot = np.eye(3)[XS]
    assert m.loss(XS, YS).item() == pytest.approx(m.loss(one_hot, YS).item(), rel=1e-12)


@pytest.mark.parametrize("make", [
    lambda: (rnn.ElmanRNN(3, 4, 3), lambda m, xs, ys: m.loss(xs, ys)),
    lambda: (rnn.JordanRNN(3, 4, 3), lambda m, xs, ys: m.loss(xs, ys, teacher_forcing=False)),
    lambda: (rnn.ConditionalRNN(3, 4, 3), lambda m, xs, ys: m.loss(xs, ys)),
])
def test_an_unbatched_sequence_equals_a_batch_of_one(make):
    m, loss = make()
    assert loss(m, XS[:, 0], YS[:, 0]).item() == pytest.approx(
        loss(m, XS[:, :1], YS[:, :1]).item(), rel=1e-12)


def test_call_returns_outputs_states_and_last_state():
    m = rnn.ElmanRNN(3, 4, 5)
    outputs, states, last = m(XS)
    assert len(outputs) == len(states) == 4
    assert outputs[0].shape == (2, 5) and states[0].shape == (2, 4)
    assert last is states[-1]


def test_same_seed_same_weights_different_seed_different_weights():
    a, b, c = rnn.ElmanRNN(3, 4, 3, seed=1), rnn.ElmanRNN(3, 4, 3, seed=1), rnn.ElmanRNN(3, 4, 3, seed=2)
    assert np.array_equal(a.W.data, b.W.data)
    assert not np.array_equal(a.W.data, c.W.data)


def test_float32_model_keeps_float32_through_the_unroll():
    m = rnn.ElmanRNN(3, 4, 3, dtype=np.float32)
    loss = m.loss(XS, YS)
    loss.backward()
    assert loss.dtype == np.float32 and m.W.grad.dtype == np.float32


def test_teacher_forcing_and_free_running_agree_on_the_first_step_only():
    m = rnn.JordanRNN(3, 4, 3, seed=3)
    forced = m.run(XS, YS, teacher_forcing=True).losses
    free = m.run(XS, YS, teacher_forcing=False).losses
    assert forced[0].item() == pytest.approx(free[0].item(), rel=1e-12)
    assert forced[1].item() != pytest.approx(free[1].item(), rel=1e-6)


def test_sequence_to_one_has_a_single_output_at_the_last_step():
    m = rnn.SequenceToOne(3, 4, 2)
    run = m.run(XS, np.array([0, 1]))
    assert len(run.outputs) == len(run.losses) == 1
    assert run.outputs[0].scope == "seq2one/t=4"


@pytest.mark.parametrize("xs, ys, mask", [
    (XS, YS, None),
    (XS[:, 0], YS[:, 0], None),
    (XS, YS, np.array([[1, 1], [1, 1], [1, 0], [0, 0]])),
    (np.eye(3)[XS], YS, None),
])
def test_elman_batched_input_and_output_layers_give_the_per_step_loss_and_gradients(xs, ys, mask):
    m = rnn.ElmanRNN(3, 4, 3, seed=9)
    if mask is not None:
        mask[:, 0] = 1
    per_step = m.run(xs, ys, mask=mask)
    batched = m.run(xs, ys, mask=mask, per_step=False)
    assert batched.loss.item() == pytest.approx(per_step.loss.item(), rel=1e-12)
    for g, h in zip(tg.grad(per_step.loss, m.parameters()), tg.grad(batched.loss, m.parameters())):
        np.testing.assert_allclose(h, g, rtol=1e-11, atol=1e-15)
    assert not batched.losses and per_step.losses
