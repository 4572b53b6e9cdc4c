"""Variable-length batches: padded steps add nothing to the loss or the gradients."""

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
