"""criterion="squared_error": every design with an output at every step, and rnn.Recurrence,
take float targets (T, n_out) or (T, B, n_out) with L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2
summed over t, masks as for cross-entropy; loss, run, Trainer, truncated BPTT, the views and the
explorer work; a target of the wrong kind is a clear error."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from rnn import problems

N_IN, H, N_OUT, T, B = 2, 5, 3, 6, 3
DESIGNS = {
    "ElmanRNN": lambda **kw: rnn.ElmanRNN(N_IN, H, N_OUT, **kw),
    "LSTM": lambda **kw: rnn.LSTM(N_IN, H, N_OUT, **kw),
    "GRU": lambda **kw: rnn.GRU(N_IN, H, N_OUT, **kw),
    "BidirectionalRNN": lambda **kw: rnn.BidirectionalRNN(N_IN, H, N_OUT, **kw),
    "DeepRNN": lambda **kw: rnn.DeepRNN(N_IN, H, N_OUT, **kw),
    "LeakyRNN": lambda **kw: rnn.LeakyRNN(N_IN, H, N_OUT, **kw),
    "MemoryNetwork": lambda **kw: rnn.MemoryNetwork(N_IN, H, N_OUT, slots=3, width=2, **kw),
}
MASK = np.array([[1, 1, 1]] * 3 + [[1, 0, 1]] * 2 + [[1, 0, 0]])


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(T, B, N_IN)), rng.normal(size=(T, B, N_OUT))


def _user_cell(seed=0):
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(0, 0.4, (H, H)), name="W")
    U = tg.Parameter(rng.normal(0, 0.4, (H, N_IN)), name="U")
    V = tg.Parameter(rng.normal(0, 0.4, (N_OUT, H)), name="V")
    return rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(), [W, U, V], H, n_in=N_IN,
                          readout=lambda h: h @ V.T, criterion="squared_error", name="cell")


def _by_hand(outputs, ys, mask):
    """sum_t (1/B) sum_b mask ||o - y||^2 from the model's own outputs."""
    return sum(float(((o.data - y) ** 2).sum(axis=-1) @ k) / B
               for o, y, k in zip(outputs, ys, mask))


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_the_loss_is_the_masked_batch_mean_squared_error_summed_over_time(design):
    model = DESIGNS[design](criterion="squared_error")
    xs, ys = _data()
    expected = _by_hand(model(xs, mask=MASK)[0], ys, MASK)
    assert model.loss(xs, ys, mask=MASK).item() == pytest.approx(expected, rel=1e-13)
    assert model.run(xs, ys, mask=MASK).loss.item() == pytest.approx(expected, rel=1e-13)


def test_a_user_cell_takes_the_squared_error_with_any_output_width():
    cell = _user_cell()
    xs, ys = _data()
    expected = _by_hand(cell(xs, mask=MASK)[0], ys, MASK)
    assert cell.loss(xs, ys, mask=MASK).item() == pytest.approx(expected, rel=1e-13)


def test_unbatched_targets_are_one_row_per_step():
    model = rnn.GRU(N_IN, H, N_OUT, criterion="squared_error")
    xs, ys = _data()
    outputs = model(xs[:, 0])[0]
    expected = sum(float(((o.data - y) ** 2).sum()) for o, y in zip(outputs, ys[:, 0]))
    assert model.loss(xs[:, 0], ys[:, 0]).item() == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("make", [lambda: rnn.ElmanRNN(N_IN, 3, 2, criterion="squared_error"),
                                  lambda: rnn.LSTM(N_IN, 3, 2, criterion="squared_error")])
def test_gradients_of_the_masked_squared_error_match_finite_differences(make):
    model = make()
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(4, 2, N_IN)), rng.normal(size=(4, 2, 2))
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]])
    params = model.parameters()
    names = [n for n, _ in model.named_parameters()]

    def loss_of(*values):
        saved = [getattr(model, n) for n in names]
        for n, v in zip(names, values):
            setattr(model, n, v)
        try:
            return model.loss(xs, ys, mask=mask)
        finally:
            for n, v in zip(names, saved):
                setattr(model, n, v)
    assert tg.gradcheck(loss_of, params, rtol=1e-6)


def test_trainer_and_truncated_bptt_train_on_float_targets():
    model = rnn.ElmanRNN(N_IN, H, N_OUT, criterion="squared_error")
    xs, ys = _data()
    first = model.loss(xs[:2], ys[:2]).item()
    trainer = rnn.Trainer(model, lr=1e-2)
    losses, _ = rnn.truncated_bptt(trainer, xs, ys, chunk=2)
    assert len(losses) == 3 and losses[0] == pytest.approx(first / 2, rel=1e-13)   # per step
    before = _by_hand(model(xs, mask=MASK)[0], ys, MASK)
    loss, _ = trainer.step(xs, ys, mask=MASK)
    assert loss == pytest.approx(before, rel=1e-13) and trainer.steps == 4


def test_predict_gives_the_outputs_and_generate_is_refused():
    model = rnn.LSTM(N_IN, H, N_OUT, criterion="squared_error")
    xs, _ = _data()
    predicted = model.predict(xs)
    assert predicted.shape == (T, B, N_OUT)
    assert np.array_equal(predicted[2], model(xs)[0][2].data)
    with pytest.raises(tg.ConfigError, match="squared_error"):
        model.generate(np.array([0]), 3)


def test_the_views_and_the_explorer_draw_a_regression_model():
    model = rnn.ElmanRNN(N_IN, H, N_OUT, criterion="squared_error")
    assert "label=<V>" in viz.folded(model).source
    assert "L</td>" in viz.unrolled(model).source
    xs, ys = _data()
    explorer = viz.explore(model, xs[:, :1], ys[:, :1])
    assert explorer.data["steps"] == T and "L" in explorer.data["names"]


def test_a_noisy_sine_is_learned():
    model = rnn.ElmanRNN(1, 16, 1, seed=0, criterion="squared_error")
    problems.train(model, lambda k: problems.noisy_sine(16, steps=30, seed=k + 1), 150, lr=2e-2)
    xs, ys = problems.noisy_sine(128, steps=30, seed=10**6)
    learned = problems.normalised_error(model.predict(xs)[5:], ys[5:])
    copying = problems.normalised_error(xs[5:], ys[5:])        # predict the noisy input itself
    assert learned < 0.5 * copying


def test_float_targets_with_cross_entropy_name_the_design_the_criterion_and_the_shapes():
    xs, ys = _data()
    with pytest.raises(tg.DTypeError, match=r"lstm: ys are floats .* shape \(6, 3, 3\).* LSTM's "
                                            r"criterion is cross_entropy.*\(6, 3\).*"
                                            r"criterion='squared_error'"):
        rnn.LSTM(N_IN, H, N_OUT).loss(xs, ys)


def test_ids_with_squared_error_name_the_design_the_criterion_and_the_shapes():
    xs, _ = _data()
    with pytest.raises(tg.DTypeError, match=r"gru: this GRU has criterion='squared_error', which "
                                            r"takes float targets ys of shape \(6, 3, 3\); got "
                                            r"integer ids of shape \(6, 3\)"):
        rnn.GRU(N_IN, H, N_OUT, criterion="squared_error").loss(xs, np.zeros((T, B), dtype=int))


def test_float_targets_of_the_wrong_width_are_a_shape_error():
    xs, ys = _data()
    with pytest.raises(tg.ShapeError, match=r"must have shape \(6, 3, 3\), got \(6, 3, 2\)"):
        rnn.ElmanRNN(N_IN, H, N_OUT, criterion="squared_error").loss(xs, ys[..., :2])
    with pytest.raises(tg.ShapeError, match=r"squared_error: the output o has shape"):
        _user_cell().loss(xs, ys[..., :2])


@pytest.mark.parametrize("make", [
    lambda: DESIGNS["ElmanRNN"](criterion="squared_error"),
    lambda: rnn.EchoStateNetwork(N_IN, H, N_OUT),
    _user_cell,
])
def test_targets_that_require_grad_are_refused_not_left_without_a_gradient(make):
    # ys.grad stayed None after backward: the designs read the targets' values
    model = make()
    xs, ys = _data()
    target = tg.tensor(ys, requires_grad=True)
    for call in (lambda: model.loss(xs, target, mask=MASK), lambda: model.run(xs, target)):
        with pytest.raises(tg.ConfigError, match=r"targets ys are a Tensor that requires grad"):
            call()
    assert target.grad is None
    detached = model.loss(xs, target.detach(), mask=MASK).item()
    assert detached == model.loss(xs, ys, mask=MASK).item()
    with tg.no_grad():               # no gradient is asked for: the values are the targets
        assert model.loss(xs, target, mask=MASK).item() == detached


def test_an_unknown_criterion_is_a_config_error():
    with pytest.raises(tg.ConfigError, match="criterion must be one of"):
        rnn.ElmanRNN(N_IN, H, N_OUT, criterion="mse")
