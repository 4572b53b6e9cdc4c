"""y0, the feedback before step 1 of the output-recurrence designs (JordanRNN, ConditionalRNN),
takes the shapes h0 takes: one y0 of shape (n_out,) (or one id ()) given to a batched run is
the same for every sequence, as h0 of shape (H,) is; its gradient is the sum over the batch.
It used to be refused ("y0 as a Tensor of outputs must have shape (2, 3), got (3,)"), and a
float array y0 of any shape was refused as "must be integer class ids"."""

import numpy as np
import pytest

import rnn
import tinygraph as tg

T, B, N_IN, H, N_OUT = 4, 2, 5, 6, 3


def _models():
    return [rnn.JordanRNN(N_IN, H, N_OUT, seed=1), rnn.ConditionalRNN(N_IN, H, N_OUT, seed=1)]


def _data():
    rng = np.random.default_rng(7)
    return (rng.integers(0, N_IN, (T, B)), rng.integers(0, N_OUT, (T, B)),
            rng.normal(size=N_OUT))


def _loss(model, xs, ys, y0, per_step, teacher_forcing):
    kwargs = {} if teacher_forcing else {"teacher_forcing": False}
    return model.run(xs, ys, y0=y0, per_step=per_step, **kwargs).loss


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("per_step", [True, False])
def test_one_y0_of_n_out_for_a_batch_is_the_same_as_y0_repeated_over_the_batch(model, per_step):
    xs, ys, v = _data()
    tiled = np.tile(v, (B, 1))
    want = _loss(model, xs, ys, tiled, per_step, True).item()
    assert _loss(model, xs, ys, v, per_step, True).item() == pytest.approx(want, rel=1e-12)
    assert _loss(model, xs, ys, tg.Tensor(v), per_step, True).item() == pytest.approx(
        want, rel=1e-12)
    # and it differs from y0 = 0: the value is used, not dropped
    assert abs(_loss(model, xs, ys, None, per_step, True).item() - want) > 1e-6


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("per_step", [True, False])
def test_the_gradient_of_one_y0_for_a_batch_is_checked_by_finite_differences(model, per_step):
    xs, ys, v = _data()
    y0 = tg.Tensor(v.copy(), requires_grad=True)
    loss = _loss(model, xs, ys, y0, per_step, True)
    loss.backward()
    assert y0.grad.shape == (N_OUT,)
    eps = 1e-6
    numeric = np.zeros(N_OUT)
    for i in range(N_OUT):
        up, down = v.copy(), v.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (_loss(model, xs, ys, up, per_step, True).item()
                      - _loss(model, xs, ys, down, per_step, True).item()) / (2 * eps)
    np.testing.assert_allclose(np.asarray(y0.grad.data if isinstance(y0.grad, tg.Tensor)
                                          else y0.grad), numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(numeric).max() > 1e-4     # a real gradient, not zeros matching zeros


def test_one_y0_for_a_batch_running_free_matches_y0_repeated():
    xs, ys, v = _data()
    model = rnn.JordanRNN(N_IN, H, N_OUT, seed=1)
    want = _loss(model, xs, ys, np.tile(v, (B, 1)), True, False).item()
    assert _loss(model, xs, ys, tg.Tensor(v), True, False).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_one_previous_id_for_a_batch_is_that_id_for_every_sequence(model):
    xs, ys, _ = _data()
    want = model.run(xs, ys, y0=np.array([2, 2])).loss.item()
    assert model.run(xs, ys, y0=2).loss.item() == pytest.approx(want, rel=1e-12)
    assert model.run(xs, ys, y0=tg.Tensor(np.array(2))).loss.item() == pytest.approx(
        want, rel=1e-12)


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_a_y0_of_another_width_or_one_row_is_a_shape_error_naming_the_shapes(model):
    xs, ys, _ = _data()
    for bad in (np.zeros(N_OUT + 1), np.zeros((1, N_OUT)), tg.Tensor(np.zeros((1, N_OUT)))):
        with pytest.raises(tg.ShapeError, match=r"y0 as outputs.*\(3,\) or \(2, 3\).*got"):
            model.run(xs, ys, y0=bad)
    with pytest.raises(tg.DTypeError, match=r"y0 must be integer class ids, got dtype bool"):
        model.run(xs, ys, y0=tg.Tensor(np.zeros(N_OUT, dtype=bool)))
