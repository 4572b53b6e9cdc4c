"""Variable-length batches: padded steps add nothing to the loss or the gradients."""

import re

import numpy as np
import pytest

import rnn
import tinygraph as tg

RNG = np.random.default_rng(0)
LENGTHS = [5, 2, 4]
SEQS = [RNG.integers(0, 4, n) for n in LENGTHS]
TARGETS = [RNG.integers(0, 4, n) for n in LENGTHS]


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("cls", [rnn.ElmanRNN, rnn.ConditionalRNN, rnn.JordanRNN])
def test_masked_batch_equals_the_mean_of_sequences_run_one_by_one(cls):
    m = cls(4, 5, 4, seed=1)
    xs, mask = rnn.pad_sequences(SEQS)
    ys, _ = rnn.pad_sequences(TARGETS)
    batched_loss = m.loss(xs, ys, mask=mask)
    batched = _grads(m, batched_loss)
    singles = [m.loss(x, y) for x, y in zip(SEQS, TARGETS)]
    assert batched_loss.item() == pytest.approx(np.mean([s.item() for s in singles]), rel=1e-12)
    single_grads = [_grads(m, s) for s in singles]
    for i, g in enumerate(batched):
        np.testing.assert_allclose(g, np.mean([sg[i] for sg in single_grads], axis=0),
                                   rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_jordan_run_with_a_mask_equals_the_sequences_run_one_by_one(teacher_forcing):
    # JordanRNN.run and loss took no mask= (a bare TypeError from run_for_loss)
    m = rnn.JordanRNN(4, 5, 4, seed=1)
    xs, mask = rnn.pad_sequences(SEQS)
    ys, _ = rnn.pad_sequences(TARGETS)
    run = m.run(xs, ys, teacher_forcing=teacher_forcing, mask=mask)
    batched = _grads(m, run.loss)
    singles = [m.run(x, y, teacher_forcing=teacher_forcing).loss for x, y in zip(SEQS, TARGETS)]
    assert run.loss.item() == pytest.approx(np.mean([s.item() for s in singles]), rel=1e-12)
    single_grads = [_grads(m, s) for s in singles]
    for i, g in enumerate(batched):
        np.testing.assert_allclose(g, np.mean([sg[i] for sg in single_grads], axis=0),
                                   rtol=1e-10, atol=1e-14)


def test_sequence_to_one_reads_each_sequence_to_its_own_end():
    m = rnn.SequenceToOne(4, 5, 3, seed=2)
    labels = np.array([2, 0, 1])
    xs, mask = rnn.pad_sequences(SEQS)
    batched_loss = m.loss(xs, labels, mask=mask)
    batched = _grads(m, batched_loss)
    singles = [m.loss(x, y) for x, y in zip(SEQS, labels)]
    assert batched_loss.item() == pytest.approx(np.mean([s.item() for s in singles]), rel=1e-12)
    single_grads = [_grads(m, s) for s in singles]
    for i, g in enumerate(batched):
        np.testing.assert_allclose(g, np.mean([sg[i] for sg in single_grads], axis=0),
                                   rtol=1e-10, atol=1e-14)


def test_padded_positions_may_hold_any_id():
    m = rnn.ElmanRNN(4, 5, 4, seed=3)
    xs, mask = rnn.pad_sequences(SEQS)
    ys, _ = rnn.pad_sequences(TARGETS)
    garbage_x, garbage_y = xs.copy(), ys.copy()
    garbage_x[mask == 0] = 99
    garbage_y[mask == 0] = -1
    assert m.loss(garbage_x, garbage_y, mask=mask).item() == m.loss(xs, ys, mask=mask).item()


def test_the_state_is_carried_unchanged_through_padding():
    m = rnn.ElmanRNN(4, 5, 4, seed=4)
    xs, mask = rnn.pad_sequences(SEQS)
    _, states, last = m(xs, mask=mask)
    for b, n in enumerate(LENGTHS):
        _, alone, _ = m(SEQS[b])
        np.testing.assert_allclose(last.data[b], alone[-1].data, rtol=1e-12)
        for t in range(n, len(states)):
            np.testing.assert_array_equal(states[t].data[b], states[n - 1].data[b])


def test_masked_gradients_match_finite_differences():
    m = rnn.ElmanRNN(4, 3, 4, seed=5)
    xs, mask = rnn.pad_sequences(SEQS)
    ys, _ = rnn.pad_sequences(TARGETS)
    assert tg.gradcheck(lambda *_: m.loss(xs, ys, mask=mask), m.parameters(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model, call", [
    (rnn.ConditionalRNN(4, 5, 4), lambda m, xs, ys, mask: m.loss(xs, ys, mask=mask)),
    (rnn.ConditionalRNN(4, 5, 4), lambda m, xs, ys, mask: m.run(xs, ys, mask=mask)),
    (rnn.JordanRNN(4, 5, 4), lambda m, xs, ys, mask: m.loss(xs, ys, mask=mask)),
    (rnn.JordanRNN(4, 5, 4), lambda m, xs, ys, mask: m.run(xs, ys, teacher_forcing=False,
                                                            mask=mask)),
])
def test_a_mask_with_a_hole_in_a_design_that_feeds_back_y_is_refused_naming_the_step(model,
                                                                                     call):
    # the state was carried over the hole but the step after it read the padded target as
    # y(t-1): ConditionalRNN's loss was 3.626 where the sequence without its hole gives 3.665
    # (designs without feedback carry the state over a hole: tests/test_rnn_bptt.py)
    xs, ys = np.array([[1, 2], [3, 2], [2, 1]]), np.array([[2, 1], [1, 3], [3, 0]])
    mask = np.array([[1, 1], [1, 0], [1, 1]])
    with pytest.raises(tg.ShapeError, match=r"sequence b=1 keeps step t=3 after padded step t=2"):
        call(model, xs, ys, mask)


def test_a_mask_with_a_hole_in_elman_is_the_sequence_without_the_hole():
    m = rnn.ElmanRNN(4, 5, 4, seed=1)
    xs, ys = np.array([[1, 2], [3, 2], [2, 1]]), np.array([[2, 1], [1, 3], [3, 0]])
    mask = np.array([[1, 1], [1, 0], [1, 1]])
    holed = m.loss(xs, ys, mask=mask)
    batched = _grads(m, holed)
    singles = [m.loss(xs[:, 0], ys[:, 0]), m.loss(xs[[0, 2], 1], ys[[0, 2], 1])]
    assert holed.item() == pytest.approx(np.mean([s.item() for s in singles]), rel=1e-12)
    single_grads = [_grads(m, s) for s in singles]
    for i, g in enumerate(batched):
        np.testing.assert_allclose(g, np.mean([sg[i] for sg in single_grads], axis=0),
                                   rtol=1e-10, atol=1e-14)


def test_pad_sequences_pads_on_the_right_and_marks_real_steps():
    xs, mask = rnn.pad_sequences([[1, 2, 3], [4]], pad=7)
    np.testing.assert_array_equal(xs, [[1, 4], [2, 7], [3, 7]])
    np.testing.assert_array_equal(mask, [[1, 1], [1, 0], [1, 0]])


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_jordan_batch_of_one_step_sequences_padded_to_three_has_their_loss_not_nan(
        teacher_forcing):
    # the batched loss (model.loss, run_for_loss, training) of steps 2..3, all padded, was the
    # mean of no rows: NaN (loss NaN where run(...).loss gave 0.8806), without a word
    m = rnn.JordanRNN(4, 5, 3, seed=0)
    xs, ys = np.array([[0, 1], [2, 3], [1, 1]]), np.array([[0, 1], [2, 0], [1, 1]])
    mask = np.array([[1, 1], [0, 0], [0, 0]])
    loss = m.run_for_loss(xs, ys, teacher_forcing=teacher_forcing, mask=mask).loss
    per_step = m.run(xs, ys, teacher_forcing=teacher_forcing, mask=mask).loss
    singles = [m.run(xs[:1, b], ys[:1, b], teacher_forcing=teacher_forcing).loss for b in (0, 1)]
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(per_step.item(), rel=1e-12)
    assert loss.item() == pytest.approx(np.mean([s.item() for s in singles]), rel=1e-12)
    batched = _grads(m, loss)
    single_grads = [_grads(m, s) for s in singles]
    for i, g in enumerate(batched):
        np.testing.assert_allclose(g, np.mean([sg[i] for sg in single_grads], axis=0),
                                   rtol=1e-10, atol=1e-14)


def _user_cell(ids):
    rng = np.random.default_rng(4)
    W, U, V = (tg.Parameter(rng.normal(0, 0.5, shape), name=name)
               for name, shape in (("W", (5, 5)), ("U", (5, 4)), ("V", (4, 5))))
    embed = (lambda x: tg.take(U.T, x, axis=0)) if ids else (lambda x: x @ U.T)
    return rnn.Recurrence(lambda h, u: (h @ W.T + u).tanh(), [W, U, V], n_state=5, n_in=4,
                          readout=lambda h: h @ V.T, input_map=embed, name="cell")


PADDED_DESIGNS = {     # name -> (model, the targets' shape: per step, per sequence, decoder)
    "elman": (lambda: rnn.ElmanRNN(4, 5, 4, seed=1), "steps"),
    "lstm": (lambda: rnn.LSTM(4, 5, 4, seed=1), "steps"),
    "bidirectional": (lambda: rnn.BidirectionalRNN(4, 5, 4, seed=1), "steps"),
    "deep": (lambda: rnn.DeepRNN(4, 5, 4, kind="skip", seed=1), "steps"),
    "leaky": (lambda: rnn.LeakyRNN(4, 5, 4, skip=2, seed=1), "steps"),
    "memory": (lambda: rnn.MemoryNetwork(4, 5, 4, slots=3, width=2, seed=1), "steps"),
    "conditional": (lambda: rnn.ConditionalRNN(4, 5, 4, seed=1), "steps"),
    "jordan": (lambda: rnn.JordanRNN(4, 5, 4, seed=1), "steps"),
    "seq2one": (lambda: rnn.SequenceToOne(4, 5, 4, seed=1), "one"),
    "encdec": (lambda: rnn.EncoderDecoder(4, 5, 4, seed=1, attention="additive"), "decoder"),
    "esn": (lambda: rnn.EchoStateNetwork(4, 5, 2, seed=1), "floats"),
    "cell": (lambda: _user_cell(ids=True), "steps"),
    "cell_floats": (lambda: _user_cell(ids=False), "steps"),
}


@pytest.mark.parametrize("name", sorted(PADDED_DESIGNS))
def test_what_pads_a_sequence_is_not_read(name):
    # a padded step reads nothing of x(t), so NaN padding (floats) or a pad id outside
    # [0, n_in) gives the loss and gradients of zero padding: before, NaN padding made the loss
    # NaN (ElmanRNN 4.2935 with zeros), and a user cell's input_map got the pad id 99 (an
    # error from take at t=3) where the designs read id 0
    make, kind = PADDED_DESIGNS[name]
    rng = np.random.default_rng(5)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]])
    floats = name in ("esn", "cell_floats", "elman")      # the others read ids
    xs = rng.normal(size=(4, 3, 4)) if floats else rng.integers(0, 4, (4, 3))
    ys = {"steps": rng.integers(0, 4, (4, 3)), "one": rng.integers(0, 4, 3),
          "decoder": rng.integers(0, 4, (2, 3)), "floats": rng.normal(size=(4, 3, 2))}[kind]
    results = []
    for pad in ([0.0, np.nan, np.inf] if floats else [0, 99, -1]):
        x = xs.copy()
        x[mask == 0] = pad
        model = make()
        loss = model.loss(x, ys, mask=mask)
        loss.backward()
        results.append((loss.item(), [p.grad for p in model.parameters() if p.requires_grad]))
    for value, grads in results[1:]:
        assert value == results[0][0] and np.isfinite(value)
        for g, g0 in zip(grads, results[0][1]):
            np.testing.assert_array_equal(g, g0)


def test_a_tensor_of_inputs_that_requires_grad_refuses_nan_padding_naming_the_step():
    # its values are used as they are (the gradient flows to them): a NaN there made every
    # gradient NaN
    xs = np.random.default_rng(6).normal(size=(4, 2, 4))
    xs[2, 1] = np.nan
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]])
    x = tg.tensor(xs, requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"elman: xs .* non-finite value at padded step "
                                            r"t=3, b=1"):
        rnn.ElmanRNN(4, 5, 4).loss(x, np.zeros((4, 2), int), mask=mask)
    xs[2, 1] = 0.0
    x = tg.tensor(xs, requires_grad=True)
    model = rnn.ElmanRNN(4, 5, 4)
    model.loss(x, np.zeros((4, 2), int), mask=mask).backward()
    assert np.all(x.grad[2:, 1] == 0) and np.abs(x.grad[:, 0]).max() > 0


def _one_sequence_of(carried, b):
    """Sequence b's part of what ``model.carry`` gave a batch."""
    def row(v):
        if isinstance(v, dict):
            return {k: row(x) for k, x in v.items()}
        return v[b]
    return {k: [row(s) for s in v] if isinstance(v, list) else row(v) for k, v in carried.items()}


@pytest.mark.parametrize("make", [lambda: rnn.ConditionalRNN(4, 5, 4, seed=1),
                                  lambda: rnn.JordanRNN(4, 5, 4, seed=1)],
                         ids=["conditional", "jordan"])
@pytest.mark.parametrize("per_step", [True, False])
def test_carry_of_a_padded_batch_feeds_back_each_sequences_last_target(make, per_step):
    # model.carry of a batch whose sequences end before step T handed on the padded target of
    # step T (id 0) as y(0) of the next chunk: continuing ConditionalRNN's sequence of
    # length 5 gave first a loss of 1.9455 where the sequence run whole gives 1.1946 (JordanRNN
    # 1.2482 where 1.3529)
    model = make()
    rng = np.random.default_rng(8)
    xs, ys = rng.integers(0, 4, (9, 3)), rng.integers(1, 4, (9, 3))
    more_x, more_y = rng.integers(0, 4, (5, 3)), rng.integers(0, 4, (5, 3))
    lengths = [9, 5, 1]
    mask = (np.arange(9)[:, None] < np.array(lengths)).astype(int)
    run = model.run(xs, ys, mask=mask) if per_step else model.run_for_loss(xs, ys, mask=mask)
    carried = model.carry(run)
    with tg.no_grad():
        for b, n in enumerate(lengths):
            went_on = model.run(more_x[:, b], more_y[:, b], **_one_sequence_of(carried, b))
            whole = model.run(np.r_[xs[:n, b], more_x[:, b]], np.r_[ys[:n, b], more_y[:, b]])
            np.testing.assert_allclose([L.item() for L in went_on.losses],
                                       [L.item() for L in whole.losses[n:]], rtol=1e-13)


@pytest.mark.parametrize("per_step", [True, False])
def test_a_skip_carries_over_a_padded_end_in_real_time_as_over_a_hole(per_step):
    # padded steps are time steps that carry the state: a chunk that ends padded, carried into
    # the next, reads h(t-d) as one run over both reads it across the same steps as a hole
    model = rnn.LeakyRNN(4, 5, 4, skip=3, seed=1)
    rng = np.random.default_rng(9)
    xs, ys = rng.integers(0, 4, (14, 2)), rng.integers(0, 4, (14, 2))
    mask = np.ones((14, 2), int)
    mask[6:9, 1] = 0                  # sequence 1: padded at the end of the first chunk
    first = (model.run if per_step else model.run_for_loss)(xs[:9], ys[:9], mask=mask[:9])
    with tg.no_grad():
        went_on = model.run(xs[9:], ys[9:], **model.carry(first))
        whole = model.run(xs, ys, mask=mask)
    np.testing.assert_allclose([L.item() for L in went_on.losses],
                               [L.item() for L in whole.losses[9:]], rtol=1e-13)


@pytest.mark.parametrize("make", [
    lambda: rnn.ElmanRNN(3, 4, 2, seed=1, criterion="squared_error"),
    lambda: rnn.EchoStateNetwork(3, 4, 2, seed=1),
    lambda: rnn.LeakyRNN(3, 4, 2, seed=1, criterion="squared_error"),
], ids=["elman", "esn", "leaky"])
def test_float_targets_padded_with_nan_are_padding_and_a_kept_nan_is_named(make):
    # NaN-padded float targets were refused ('ys has a non-finite value at t=3') although a
    # padded target adds nothing to the loss
    rng = np.random.default_rng(10)
    xs, ys = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 2))
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]])
    zero, nan = ys.copy(), ys.copy()
    zero[2:, 1], nan[2:, 1] = 0.0, np.nan
    results = []
    for targets in (zero, nan):
        model = make()
        loss = model.loss(xs, targets, mask=mask)
        loss.backward()
        results.append((loss.item(), [p.grad for p in model.parameters() if p.requires_grad]))
    assert results[0][0] == results[1][0] and np.isfinite(results[0][0])
    for g, g0 in zip(results[1][1], results[0][1]):
        np.testing.assert_array_equal(g, g0)
    kept = ys.copy()
    kept[1, 1, 0] = np.inf
    with pytest.raises(tg.ShapeError, match=r"ys has a non-finite value at t=2, b=1"):
        make().loss(xs, kept, mask=mask)


def _esn_fit_on_nan_inputs():
    xs = np.ones((5, 2, 3))
    xs[3, 1, 0] = np.nan
    rnn.EchoStateNetwork(3, 4, 2, seed=0).fit(xs, np.zeros((5, 2, 2)))


def _nan_target_at_a_kept_step():
    ys = np.zeros((4, 2, 2))
    ys[1, 1, 0] = np.inf
    rnn.ElmanRNN(3, 4, 2, seed=1, criterion="squared_error").loss(np.ones((4, 2, 3)), ys)


def _nan_padding_of_inputs_that_require_grad():
    xs = np.ones((4, 2, 4))
    xs[2, 1] = np.nan
    rnn.ElmanRNN(4, 5, 4).loss(tg.tensor(xs, requires_grad=True), np.zeros((4, 2), int),
                               mask=np.array([[1, 1], [1, 1], [1, 0], [1, 0]]))


@pytest.mark.parametrize("call, where", [
    (_esn_fit_on_nan_inputs, "h(t) is not finite at t=4, b=1"),
    (_nan_target_at_a_kept_step, "ys has a non-finite value at t=2, b=1"),
    (_nan_padding_of_inputs_that_require_grad, "non-finite value at padded step t=3, b=1"),
], ids=["esn-fit", "kept-target", "padded-input-tensor"])
def test_a_nan_or_inf_in_the_data_is_an_anomaly_error_as_the_sampler_says_and_still_a_shape_error(call, where):
    """The echo state fit and the targets and padding checks called a non-finite value a
    ShapeError, where sampling and predict (a NaN logit) say AnomalyError: one class for a NaN
    or inf now, tg.NonFiniteError, which is both, so `except tg.ShapeError` (or ValueError) of
    a caller written before still catches it."""
    with pytest.raises(tg.NonFiniteError, match=re.escape(where)) as caught:
        call()
    assert isinstance(caught.value, tg.AnomalyError) and isinstance(caught.value, FloatingPointError)
    assert isinstance(caught.value, tg.ShapeError) and isinstance(caught.value, ValueError)
