"""Numerical faults in recurrent networks: anomalies named by time step, exploding and
vanishing gradients.

``tg.detect_anomaly()`` must point at the time step of an unroll (and the
user's line) where the first NaN or Inf appears, forward or backward.  A large
recurrent weight in a linear regime makes back-propagation through time
explode: unclipped training goes non-finite while ``tg.clip_grad_norm`` keeps
it finite.  A small recurrent weight makes ‖∂L(T)/∂h(t)‖ vanish with the
distance T - t, each step by at most the spectral norm of W.
"""

import numpy as np
import pytest

import rnn
import tinygraph as tg

H, N_IN, N_OUT = 4, 3, 3


def _line_of(marker):
    """Line number (1-based) of the first line of this file that contains ``marker``."""
    with open(__file__) as f:
        return next(n for n, line in enumerate(f, start=1) if marker in line)


def _weights(seed, radius):
    """W = radius * an orthogonal matrix (spectral norm ``radius``), U and V ~ N(0, 0.25)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(H, H)))
    return (tg.Parameter(radius * q, name="W"),
            tg.Parameter(rng.normal(0, 0.5, (H, N_IN)), name="U"),
            tg.Parameter(rng.normal(0, 0.5, (N_OUT, H)), name="V"))


def _sequence(steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, N_IN)), rng.integers(0, N_OUT, steps)


# ---------------------------------------------------------------- anomalies inside an unroll


def test_anomaly_in_an_unroll_names_the_time_step_and_the_users_line():
    W, U, V = _weights(0, 0.5)
    cell = rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(),   # MARK-cell-forward
                          [W, U, V], n_state=H, n_in=N_IN, readout=lambda h: h @ V.T, name="cell")
    xs, ys = _sequence(6)
    xs[3, 1] = np.inf                                                  # poisons step t=4
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        cell.loss(xs, ys)
    message = str(info.value)
    assert "'cell/t=4'" in message and "Inf" in message and "matmul" in message
    assert f"{__file__}:{_line_of('MARK-cell-forward')}" in message


def test_anomaly_in_a_built_in_design_names_the_time_step_and_the_users_call():
    model = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)
    xs, ys = _sequence(6)
    xs[3, 0] = np.nan
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        model.loss(xs, ys)   # MARK-elman-loss
    message = str(info.value)
    assert "'elman/t=4'" in message and "NaN" in message
    assert f"called from {__file__}:{_line_of('MARK-elman-loss')}" in message


def test_anomaly_in_backward_through_time_names_the_time_step_and_the_users_line():
    W, U, V = _weights(0, 0.5)
    cell = rnn.Recurrence(lambda h, x: (h @ W.T).tanh() + (x @ U.T).abs().sqrt(),   # MARK-cell-sqrt
                          [W, U, V], n_state=H, n_in=N_IN, readout=lambda h: h @ V.T, name="cell")
    xs, ys = _sequence(6)
    xs[3] = 0.0               # sqrt(0) at t=4: a finite value whose gradient is Inf
    with tg.detect_anomaly():
        loss = cell.loss(xs, ys)
        assert np.isfinite(loss.item())
        with pytest.raises(tg.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert "sqrt" in message and "'cell/t=4'" in message and "Inf" in message
    assert f"{__file__}:{_line_of('MARK-cell-sqrt')}" in message
    assert all(p.grad is None for p in (W, U, V))    # nothing accumulated from a failed backward


# ---------------------------------------------------------------- exploding gradients


def _linear_cell(radius):
    """h(t) = W h(t-1) + U x(t) (no squashing: the linear regime), o(t) = V h(t)."""
    W, U, V = _weights(0, radius)
    return rnn.Recurrence(lambda h, x: h @ W.T + x @ U.T, [W, U, V], n_state=H, n_in=N_IN,
                          readout=lambda h: h @ V.T, name="linear")


def _train(model, clip, steps, xs, ys):
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr=0.1), clip=clip)
    with np.errstate(all="ignore"):
        return [trainer.step(xs, ys) for _ in range(steps)]


def test_large_recurrent_weight_makes_bptt_gradients_grow_exponentially_with_length():
    norms = []
    for steps in (10, 20, 30):
        model = _linear_cell(radius=1.5)
        xs, ys = _sequence(steps)
        model.loss(xs, ys).backward()
        norms.append(np.sqrt(sum(np.sum(p.grad ** 2) for p in model.parameters())))
    assert norms[1] / norms[0] > 1.5 ** 5 and norms[2] / norms[1] > 1.5 ** 5   # >= radius^10 / 2


def test_exploding_gradients_wreck_unclipped_training_until_the_trainer_refuses_and_clipping_keeps_it_finite():
    xs, ys = _sequence(40)
    unclipped = _linear_cell(radius=1.5)
    trainer = rnn.Trainer(unclipped, tg.optim.SGD(unclipped.parameters(), lr=0.1))
    history = []
    with np.errstate(all="ignore"), pytest.raises(rnn.NonFiniteLossError) as info:
        for _ in range(8):
            history.append(trainer.step(xs, ys))
    assert history[0][1] > 1e6                                      # the first gradient explodes
    assert 1 <= len(history) < 8 and f"update {len(history) + 1}:" in str(info.value)
    assert all(np.isfinite(p.data).all() for p in unclipped.parameters())   # never applied

    clipped = _linear_cell(radius=1.5)
    history = _train(clipped, clip=1.0, steps=8, xs=xs, ys=ys)
    assert history[0][1] > 1e6                                      # same explosion, clipped
    assert all(np.isfinite(loss) and np.isfinite(norm) for loss, norm in history)
    assert all(np.isfinite(p.data).all() for p in clipped.parameters())
    assert history[-1][0] < history[0][0]                           # and it still learns


def test_detect_anomaly_stops_unclipped_training_at_the_first_overflow():
    xs, ys = _sequence(40)
    model = _linear_cell(radius=1.5)
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr=0.1))
    with np.errstate(all="ignore"):
        for _ in range(2):                                          # two exploded updates
            trainer.step(xs, ys)
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match=r"in scope 'linear/t=\d+'"):
        trainer.step(xs, ys)


# ---------------------------------------------------------------- vanishing gradients


def test_gradient_to_earlier_states_vanishes_by_at_most_the_norm_of_w_per_step():
    steps, radius = 20, 0.3
    model = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)
    model.W.data = _weights(1, radius)[0].data
    ids = np.arange(steps) % N_IN
    run = model.run(ids, ids % N_OUT)
    grads = tg.grad(run.losses[-1], run.states)         # dL(T)/dh(t), t = 1..T
    norms = np.array([np.linalg.norm(g) for g in grads])
    ratios = norms[:-1] / norms[1:]                      # |dL/dh(t-1)| / |dL/dh(t)|
    assert np.all(ratios <= radius * (1 + 1e-9))        # W^T diag(1 - h^2) shrinks by <= |W|_2
    assert norms[0] < 1e-9 * norms[-1]                   # ten orders of magnitude over 19 steps


def test_gradient_to_earlier_states_does_not_vanish_for_an_orthogonal_linear_recurrence():
    steps = 20
    model = _linear_cell(radius=1.0)
    xs, ys = _sequence(steps)
    run = model.run(xs, ys)
    grads = tg.grad(run.losses[-1], run.states)
    norms = np.array([np.linalg.norm(g) for g in grads])
    np.testing.assert_allclose(norms, norms[-1], rtol=1e-12)   # an orthogonal W^T keeps the norm


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16])
def test_take_and_index_with_small_integer_ids_on_many_rows_scatter_add_exactly(dtype):
    # the sorted scatter-add of a gradient used to compute id + rows in the ids' own dtype
    rows = 300
    x = tg.tensor(np.zeros((rows, 2)), requires_grad=True)
    ids = (np.arange(1000) % 120).astype(dtype)
    expected = np.zeros((rows, 2))
    np.add.at(expected, ids.astype(np.int64), 1.0)
    for pick in (lambda: tg.take(x, ids, axis=0), lambda: x[ids]):
        x.grad = None
        pick().sum().backward()
        np.testing.assert_array_equal(x.grad, expected)
