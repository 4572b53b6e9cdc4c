"""Training: truncated BPTT, clipping, the char model and the year task, generation."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def test_truncated_bptt_equals_full_bptt_per_chunk_with_the_carried_state_fixed():
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (6, 2))
    lr = 0.1
    model = rnn.ElmanRNN(4, 5, 4, seed=1)
    oracle = rnn.ElmanRNN(4, 5, 4, seed=1)
    rnn.truncated_bptt(rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr)), xs, ys, chunk=3)

    h = None
    for start in (0, 3):
        run = oracle.run(xs[start:start + 3], ys[start:start + 3], h0=h)
        grads = tg.grad(run.loss, oracle.parameters())
        h = run.last.data.copy()               # a fixed array: no gradient into the past
        for p, g in zip(oracle.parameters(), grads):
            p.data -= lr * g
    for p, q in zip(model.parameters(), oracle.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)


def test_truncated_bptt_carries_the_forward_state_across_chunks():
    rng = np.random.default_rng(1)
    xs, ys = rng.integers(0, 4, 7), rng.integers(0, 4, 7)
    model = rnn.ElmanRNN(4, 5, 4, seed=2)
    _, _, full_last = model(xs)
    # lr tiny enough that the updates do not matter at this tolerance
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), 1e-300))
    _, last = rnn.truncated_bptt(trainer, xs, ys, chunk=3)
    np.testing.assert_allclose(last.data, full_last.data, rtol=1e-12)
    assert not last.requires_grad


@pytest.mark.parametrize("model", [rnn.ElmanRNN(4, 5, 4, seed=2), rnn.JordanRNN(4, 5, 4, seed=2),
                                   rnn.ConditionalRNN(4, 5, 4, seed=2)], ids=lambda m: m.name)
def test_truncated_bptt_chunks_see_the_same_forward_values_as_one_long_run(model):
    # what crosses a chunk boundary (h(t), and y(t) for the designs that feed outputs back)
    # is carried, so only the gradients are truncated, never the forward computation
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 4, (7, 2)), rng.integers(0, 4, (7, 2))
    full = [loss.item() for loss in model.run(xs, ys).losses]
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), 1e-300))
    chunked = []
    rnn.truncated_bptt(trainer, xs, ys, chunk=3, on_step=lambda step, loss, norm: chunked.append(loss))
    per_chunk = [np.mean(full[start:start + 3]) for start in (0, 3, 6)]
    np.testing.assert_allclose(chunked, per_chunk, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: rnn.ElmanRNN(5, 6, 5, seed=3), lambda: rnn.JordanRNN(5, 6, 5, seed=3),
                                  lambda: rnn.ConditionalRNN(5, 6, 5, seed=3)], ids=["elman", "jordan", "cond"])
def test_stream_loss_in_chunks_equals_one_unroll_over_the_whole_stream(make):
    model = make()
    ids = np.random.default_rng(0).integers(5, size=40)
    whole = model.loss(ids[:-1], ids[1:]).item() / 39
    assert rnn.stream_loss(model, ids[:-1], ids[1:], chunk=7) == pytest.approx(whole, rel=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_stream_loss_refuses_mismatched_or_empty_streams():
    model = rnn.ElmanRNN(5, 6, 5, seed=3)
    with pytest.raises(tg.ShapeError, match="xs has 4 steps but ys has 3"):
        rnn.stream_loss(model, [0, 1, 2, 3], [1, 2, 3])
    with pytest.raises(tg.ShapeError, match="empty"):
        rnn.stream_loss(model, [], [])
    with pytest.raises(ValueError, match="chunk"):
        rnn.stream_loss(model, [0, 1], [1, 2], chunk=0)


def test_trainer_clips_the_global_gradient_norm():
    model = rnn.ElmanRNN(4, 5, 4, seed=3)
    before = [p.data.copy() for p in model.parameters()]
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), 1.0), clip=0.01)
    _, norm = trainer.step(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0]))
    step = np.sqrt(sum(np.sum((p.data - b) ** 2) for p, b in zip(model.parameters(), before)))
    assert norm > 0.01
    assert step == pytest.approx(0.01, rel=1e-6)


def test_fit_reports_every_step_to_the_callback():
    model = rnn.ElmanRNN(4, 5, 4)
    seen = []
    batch = (np.array([0, 1]), np.array([1, 2]))
    losses = rnn.Trainer(model).fit([batch, batch, batch],
                                    on_step=lambda step, loss, norm: seen.append((step, loss)))
    assert [s for s, _ in seen] == [1, 2, 3] and [l for _, l in seen] == losses


# harbour (57 symbols, the default) needs more updates than lighthouse (41) to get as far:
# at 150 updates it sits at 1.99 against a bar of 2.02, too thin a margin for a spec; 400 reach ~1.8.
@pytest.mark.parametrize("corpus, steps", [("lighthouse", 150), ("harbour", 400)])
def test_char_model_loss_falls_well_below_ln_vocab_on_the_bundled_text(corpus, steps):
    vocab, ids = rnn.datasets.char_corpus(corpus)
    model = rnn.ElmanRNN(len(vocab), 32, len(vocab), seed=0)
    losses = rnn.train_char_model(model, ids, steps=steps, batch_size=16, chunk=25, lr=0.02)
    assert losses[0] > 0.95 * np.log(len(vocab))
    assert np.mean(losses[-10:]) < 0.5 * np.log(len(vocab))


def test_a_shared_parameter_rnn_reads_the_year_wherever_it_stands():
    train = rnn.datasets.year_task(2000, seed=0)
    held_out = rnn.datasets.year_task(300, seed=1, exclude=train.sentences)   # never trained on
    model = rnn.SequenceToOne(len(train.vocab), 24, len(train.years), seed=0)
    trainer = rnn.Trainer(model, lr=0.02, clip=5.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows = rng.integers(0, 2000, 32)
        trainer.step(train.xs[:, rows], train.labels[rows], mask=train.mask[:, rows])
    accuracy = np.mean(model.predict(held_out.xs, mask=held_out.mask) == held_out.labels)
    assert accuracy >= 0.95


def test_sampling_is_reproducible_with_a_seed():
    model = rnn.ElmanRNN(6, 8, 6, seed=4)
    a = model.generate([1, 2], 20, temperature=1.0, seed=7)
    b = model.generate([1, 2], 20, temperature=1.0, seed=7)
    c = model.generate([1, 2], 20, temperature=1.0, seed=8)
    assert a.shape == (20,) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_greedy_generation_picks_the_argmax_given_its_own_previous_outputs():
    model = rnn.ElmanRNN(6, 8, 6, seed=5)
    prompt = np.array([3, 1])
    out = model.generate(prompt, 10, temperature=0)
    outputs, _, _ = model(np.concatenate([prompt, out[:-1]]))
    np.testing.assert_array_equal([o.data.argmax() for o in outputs[1:]], out)


def test_jordan_free_running_generation_feeds_back_its_own_outputs():
    model = rnn.JordanRNN(4, 6, 5, seed=6)
    xs = np.array([0, 3, 1, 2, 2, 1])
    out = model.generate(xs, temperature=0)
    forced = model.run(xs, out, teacher_forcing=True)   # its own outputs as the "true" y(t-1)
    np.testing.assert_array_equal([o.data.argmax() for o in forced.outputs], out)


def test_samples_follow_the_softmax_at_the_temperature():
    logits = np.array([1.0, 0.0, -1.0])
    sampler = rnn.Sampler(temperature=2.0, seed=0)
    ids = sampler(np.tile(logits, (20000, 1)))
    p = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()
    np.testing.assert_allclose(np.bincount(ids, minlength=3) / 20000, p, atol=0.015)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_samples_of_narrow_logits_never_pick_a_class_of_probability_zero(dtype):
    # the softmax of float16 (float32) logits was normalised in their dtype and summed to
    # 1 - 9.8e-4 here (1 - 1.8e-7 for float32), and every u drawn in that gap picked the last
    # class: 16 of 20,000 float16 picks were its class of probability e^-100 / ... = 2e-44
    logits = np.array([[-3.396, 0.06177, -3.523, -0.6396, -100.0]], dtype=dtype)
    ids = rnn.Sampler(temperature=1.0, seed=0)(np.repeat(logits, 20000, axis=0))
    assert not (ids == 4).any()
    z = logits[0].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(np.bincount(ids, minlength=5) / 20000, p, atol=0.012)


@pytest.mark.parametrize("temperature, logits", [
    (1e-310, [[0.0, 1.0, 2.0], [2.0, 0.5, 1.0], [-3.0, 4.0, 1.0]]),
    (0.5, [[1e308, -1e308, 1.7e308], [-1.7e308, 1.7e308, 0.0], [1.7e308, 0.0, -1e308]]),
])
def test_samples_at_a_temperature_where_logits_over_it_overflow_are_the_argmax(temperature, logits):
    # o / temperature overflowed to inf, inf - inf = NaN probabilities, and every pick was id 0
    logits = np.repeat(np.array(logits), 50, axis=0)
    ids = rnn.Sampler(temperature=temperature, seed=0)(logits)
    np.testing.assert_array_equal(ids, logits.argmax(axis=1))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sampling_refuses_logits_that_are_not_finite_naming_the_step(temperature, bad):
    # greedy picked the NaN's class, sampling picked id 0, both without a word
    sampler = rnn.Sampler(temperature=temperature, seed=0)
    logits = np.zeros((2, 4))
    sampler(logits), sampler(logits)
    logits[1, 2] = bad
    with pytest.raises(tg.AnomalyError) as caught:
        sampler(logits)
    for word in ["sampling", "t=3, b=1", "class 2", str(bad)]:
        assert word in str(caught.value)
    assert len(sampler.picked) == 2


def test_generate_from_a_model_whose_outputs_are_nan_names_the_model_and_step():
    model = rnn.ElmanRNN(4, 5, 4, seed=0)
    model.c.data[1] = np.nan
    with pytest.raises(tg.AnomalyError, match=r"elman\.generate: o\(t\) at t=1 .*nan"):
        model.generate([0, 1], 5, temperature=1.0)


def test_vector_to_sequence_and_conditional_generate_sequences():
    v = rnn.VectorToSequence(3, 5, 4, seed=1).generate(np.ones(3), steps=6, temperature=0)
    c = rnn.ConditionalRNN(3, 5, 4, seed=1).generate(np.array([0, 1, 2, 0]), temperature=0)
    assert v.shape == (6,) and c.shape == (4,)
    assert v.max() < 4 and c.max() < 4


def test_elman_learns_to_recall_symbols_across_a_delay():
    n_symbols, length, delay = 4, 3, 6
    model = rnn.ElmanRNN(n_symbols + 2, 48, n_symbols + 2, seed=0)
    trainer = rnn.Trainer(model, lr=0.01, clip=1.0)
    for step in range(600):
        trainer.step(*rnn.datasets.copy_task(32, length, delay, n_symbols, seed=step))
    xs, ys = rnn.datasets.copy_task(500, length, delay, n_symbols, seed=10**6)
    outputs, _, _ = model(xs)
    recalled = np.stack([o.data.argmax(axis=-1) for o in outputs])[length + delay:]
    assert np.mean(recalled == ys[length + delay:]) > 0.9      # chance is 1 / n_symbols


LAG_AND_FEEDBACK = {"leaky_skip3": lambda: rnn.LeakyRNN(3, 4, 3, alpha=0.5, skip=3, seed=1),
                    "jordan": lambda: rnn.JordanRNN(3, 4, 3, seed=1),
                    "cond": lambda: rnn.ConditionalRNN(3, 4, 3, seed=1),
                    "elman": lambda: rnn.ElmanRNN(3, 4, 3, seed=1)}


@pytest.mark.parametrize("name", list(LAG_AND_FEEDBACK))
def test_truncated_bptt_in_two_calls_equals_one_call_over_both_parts(name):
    # a skip=3 net's next chunk reads h(t-3), h(t-2) besides h(t-1), and a design that feeds
    # its output back reads y(t-1): what the first call returns carries all of it
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 3, (12, 2)), rng.integers(0, 3, (12, 2))
    one, two = LAG_AND_FEEDBACK[name](), LAG_AND_FEEDBACK[name]()
    whole, last = rnn.truncated_bptt(rnn.Trainer(one, lr=0.1), xs, ys, chunk=3)
    trainer = rnn.Trainer(two, lr=0.1)
    first, carried = rnn.truncated_bptt(trainer, xs[:6], ys[:6], chunk=3)
    second, last_two = rnn.truncated_bptt(trainer, xs[6:], ys[6:], chunk=3, h0=carried)
    np.testing.assert_allclose(first + second, whole, rtol=1e-13)
    for p, q in zip(one.parameters(), two.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-13)
    if name == "elman":       # the last state alone, as before
        assert isinstance(carried, tg.Tensor)
    else:
        assert isinstance(carried, rnn.Carried) and isinstance(last_two, rnn.Carried)
        assert set(carried) == set(two.carry(two.run(xs[:3], ys[:3])))


def test_truncated_bptt_of_a_skip_net_equals_full_bptt_per_chunk_with_the_carried_states_fixed():
    # the oracle runs each chunk from h(t-1), h(t-2), h(t-3) of the chunk before as fixed arrays
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(9, 2, 3)), rng.integers(0, 3, (9, 2))
    lr = 0.1
    model = rnn.LeakyRNN(3, 4, 3, alpha=0.5, skip=3, seed=2)
    oracle = rnn.LeakyRNN(3, 4, 3, alpha=0.5, skip=3, seed=2)
    rnn.truncated_bptt(rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr)), xs, ys, chunk=3)
    state = {}
    for start in (0, 3, 6):
        run = oracle.run(xs[start:start + 3], ys[start:start + 3], **state)
        grads = tg.grad(run.loss, oracle.parameters())
        state = {"h0": tg.Tensor(run.last.data.copy()),
                 "past": [{k: tg.Tensor(v.data.copy()) for k, v in s.items()} for s in run.past]}
        for p, g in zip(oracle.parameters(), grads):
            p.data -= lr * g
    for p, q in zip(model.parameters(), oracle.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)


def test_stream_loss_of_a_skip_net_equals_one_unroll():
    model = rnn.LeakyRNN(5, 6, 5, alpha=0.7, skip=3, seed=3)
    ids = np.random.default_rng(0).integers(5, size=40)
    whole = model.loss(ids[:-1], ids[1:]).item() / 39
    assert rnn.stream_loss(model, ids[:-1], ids[1:], chunk=4) == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize("model, h0, words", [
    # the Carried of a LeakyRNN(skip=3) (h0 and past) into a ConditionalRNN, and a state
    # into a JordanRNN (it has no state part): both were bare TypeErrors from run_for_loss
    (rnn.ConditionalRNN(4, 5, 4), rnn.Carried(h0=np.zeros((2, 5)), past=[np.zeros((2, 5))] * 3),
     r"h0 is an rnn\.Carried of \['h0', 'past'\], but ConditionalRNN\.run_for_loss takes no "
     r"'past'"),
    (rnn.JordanRNN(4, 5, 4), np.zeros((2, 5)),
     r"h0 is a state, but JordanRNN\.run_for_loss takes no 'h0'"),
])
def test_truncated_bptt_refuses_what_another_kind_of_model_carried(model, h0, words):
    trainer = rnn.Trainer(model)
    before = model.state_dict()
    xs = np.zeros((6, 2), dtype=np.int64)
    with pytest.raises(tg.ConfigError, match=words):
        rnn.truncated_bptt(trainer, xs, xs, 3, h0=h0)
    assert trainer.steps == 0
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", list(LAG_AND_FEEDBACK))
def test_a_10000_step_stream_read_in_uneven_chunks_equals_one_unroll(name):
    # what each chunk carries (h(t-1), the skip's h(t-3), h(t-2), the fed-back y(t-1)) over
    # ten thousand steps, in chunks that do not divide them, loses nothing
    model = LAG_AND_FEEDBACK[name]()
    rng = np.random.default_rng(11)
    xs, ys = rng.integers(0, 3, (10_000, 2)), rng.integers(0, 3, (10_000, 2))
    with tg.no_grad():
        whole = model.loss(xs, ys).item() / len(xs)
    assert rnn.stream_loss(model, xs, ys, chunk=997) == pytest.approx(whole, rel=1e-12)


def test_a_refused_update_names_where_the_inputs_are_not_finite():
    # the refusal named the first non-finite loss term only (L(5) here, where a NaN input
    # meets it; the inf at t=3 saturates tanh): which input of the batch was bad was left to
    # the user to find
    model = rnn.ElmanRNN(3, 4, 3)
    xs = np.random.default_rng(14).normal(size=(5, 2, 3))
    xs[2, 1, 0] = np.inf
    xs[4, 0, 2] = np.nan
    trainer = rnn.Trainer(model)
    with np.errstate(invalid="ignore"), pytest.raises(
            rnn.NonFiniteLossError,
            match=r"update 1: .*L\(5\) = nan \(xs holds inf at t=3, b=1\)"):
        trainer.step(xs, np.zeros((5, 2), int))
    with np.errstate(invalid="ignore"), pytest.raises(rnn.NonFiniteLossError,
                                                      match=r"\(xs holds nan at t=5\)"):
        trainer.step(xs[:, 0], np.zeros(5, int))
    assert trainer.steps == 0


def test_a_refused_update_names_a_vector_inputs_batch_entry_not_a_time_step():
    # VectorToSequence reads one vector x (B, n_in), not a sequence: a NaN in x's batch entry
    # b=1 was named "x holds nan at t=2" (its batch axis read as time), and one in an
    # unbatched x (n_in,) at index 2 "at t=3"
    model = rnn.VectorToSequence(3, 4, 3, seed=0)
    x = np.ones((2, 3))
    x[1, 2] = np.nan
    trainer = rnn.Trainer(model)
    with np.errstate(invalid="ignore"), pytest.raises(
            rnn.NonFiniteLossError, match=r"L\(1\) = nan \(x holds nan at b=1\); refused"):
        trainer.step(x, np.zeros((5, 2), int))
    with np.errstate(invalid="ignore"), pytest.raises(
            rnn.NonFiniteLossError, match=r"L\(1\) = nan \(x holds nan\); refused"):
        trainer.step(x[1], np.zeros(5, int))
    assert trainer.steps == 0


def _cell_with_dropout():
    """A user's cell whose step calls a seeded tg.Dropout the cell holds (cell.drop)."""
    rng = np.random.default_rng(5)
    W = tg.Parameter(rng.normal(scale=0.5, size=(4, 4)), name="W")
    E = tg.Parameter(rng.normal(scale=0.5, size=(3, 4)), name="E")
    V = tg.Parameter(rng.normal(scale=0.5, size=(3, 4)), name="V")
    drop = tg.Dropout(0.5, seed=1)
    cell = rnn.Recurrence(lambda h, u: drop((h @ W.T + u).tanh()), [W, E, V], 4, n_in=3,
                          readout=lambda h: h @ V.T, input_map=lambda x: tg.take(E, x, axis=0),
                          name="cell")
    cell.drop = drop
    return cell, drop


def test_stream_loss_is_an_evaluation_in_eval_mode_and_restores_the_mode():
    # was: stream_loss ran in the model's own mode, so the held-out loss of a model in
    # training mode was that of random dropout masks (and advanced the seeded masks)
    cell, drop = _cell_with_dropout()
    ids = np.random.default_rng(0).integers(3, size=30)
    cell.eval()
    with tg.no_grad():
        whole = cell.loss(ids[:-1], ids[1:]).item() / 29
    cell.train()
    assert rnn.stream_loss(cell, ids[:-1], ids[1:], chunk=7) == pytest.approx(whole, rel=1e-12)
    assert cell.training and drop.training and drop._calls == 0
    # the caller's mode comes back after an error midway (an id out of range in chunk 2)
    bad = ids[1:].copy()
    bad[10] = 9
    with pytest.raises(tg.BadIndexError):
        rnn.stream_loss(cell, ids[:-1], bad, chunk=7)
    assert cell.training and drop.training and drop._calls == 0
    cell.eval()        # a model in evaluation mode stays in it
    rnn.stream_loss(cell, ids[:-1], ids[1:], chunk=7)
    assert not cell.training and not drop.training


def _training_snapshot(trainer):
    """Every array and count a training call may change: parameters, gradients, the
    optimizer's state, the trainer's counts and the seeded Dropouts' calls."""
    model = trainer.model
    return ({k: v.copy() for k, v in model.state_dict().items()},
            [None if p.grad is None else p.grad.copy() for p in model.parameters()],
            {k: np.array(v, copy=True) for k, v in trainer.optimizer.state_dict().items()},
            trainer.steps, list(trainer.skipped),
            {n: m._calls for n, m in model.named_modules() if isinstance(m, tg.Dropout)})


def _same_snapshot(a, b):
    params, grads, optim, steps, skipped, calls = a
    params2, grads2, optim2, steps2, skipped2, calls2 = b
    assert params.keys() == params2.keys()
    assert all(np.array_equal(params[k], params2[k]) for k in params)
    assert all((g is None and h is None) or np.array_equal(g, h) for g, h in zip(grads, grads2))
    assert optim.keys() == optim2.keys()
    assert all(np.array_equal(optim[k], optim2[k]) for k in optim)
    assert (steps, skipped, calls) == (steps2, skipped2, calls2)


@pytest.mark.parametrize("bad", ["id", "nan"])
def test_truncated_bptt_that_fails_in_a_later_chunk_changes_nothing(bad):
    # was: chunks 1-3 were trained, then chunk 4 raised: the model and Adam's moments had
    # changed without a word, and the error named t=1 (the chunk's own step) for step 10
    # (a cell with a seeded Dropout: its masks are put back too; an Elman net on floats)
    model = _cell_with_dropout()[0] if bad == "id" else rnn.ElmanRNN(3, 4, 3, seed=0)
    trainer = rnn.Trainer(model, lr=0.1)
    rng = np.random.default_rng(2)
    xs, ys = rng.integers(3, size=(12, 2)), rng.integers(3, size=(12, 2))
    if bad == "nan":
        xs = np.eye(3)[xs]
    rnn.truncated_bptt(trainer, xs[:6], ys[:6], 3)      # Adam's moments are not zeros
    before = _training_snapshot(trainer)
    if bad == "id":
        ys[9, 1] = 7
        with pytest.raises(tg.BadIndexError) as e:
            rnn.truncated_bptt(trainer, xs, ys, 3)
        assert before[-1]["drop"] > 0
    else:
        xs[9, 1, 0] = np.nan
        with pytest.raises(rnn.NonFiniteLossError) as e:
            rnn.truncated_bptt(trainer, xs, ys, 3)
    message = str(e.value)
    assert "chunk 4 (steps 10-12 of the sequence; the t of its steps below is t + 9" in message
    assert "the 3 earlier updates of this call undone" in message
    _same_snapshot(before, _training_snapshot(trainer))


def test_trainer_fit_that_fails_at_a_later_batch_changes_nothing():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    trainer = rnn.Trainer(model, lr=0.1)
    rng = np.random.default_rng(3)
    batches = [(rng.integers(3, size=(5, 2)), rng.integers(3, size=(5, 2))) for _ in range(4)]
    trainer.fit(batches[:2])
    before = _training_snapshot(trainer)
    bad = batches[3][1].copy()
    bad[2, 0] = 5
    with pytest.raises(tg.BadIndexError, match=r"batch 4; the 3 earlier updates of this call "
                                               r"undone"):
        trainer.fit(batches[:3] + [(batches[3][0], bad)])
    _same_snapshot(before, _training_snapshot(trainer))


def test_trainer_fit_names_the_batch_that_fails_also_when_it_is_the_first():
    """fit's error named the batch only when earlier updates were undone: a first batch of a
    thousand that raised said nothing of which batch it was (its docstring: "its error names
    the batch")."""
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(3, size=(5, 2)), rng.integers(3, size=(5, 2))
    bad = ys.copy()
    bad[2, 0] = 5
    trainer = rnn.Trainer(model, lr=0.1)
    with pytest.raises(tg.BadIndexError, match=r"out of range \[0, 3\) \(Trainer.fit: batch 1\)$"):
        trainer.fit([(xs, bad), (xs, ys)])
    assert trainer.steps == 0


def test_stream_loss_error_names_the_chunk_and_where_its_steps_are():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    ids = np.random.default_rng(0).integers(3, size=30)
    bad = ids[1:].copy()
    bad[10] = 9
    with pytest.raises(tg.BadIndexError, match=r"stream_loss: chunk 2 \(steps 8-14 of the "
                                               r"sequence; the t of its steps below is t \+ 7"):
        rnn.stream_loss(model, ids[:-1], bad, chunk=7)


def test_held_out_measures_run_in_evaluation_mode_and_restore_the_mode():
    # was: problems.last_step_accuracy and a task's held_out_loss ran in the model's own
    # mode: a model in training mode was measured with random dropout masks, and the seeded
    # masks of its next training step moved on
    cell, drop = _cell_with_dropout()
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(3, size=(6, 40)), rng.integers(3, size=(6, 40))
    cell.eval()
    expected = rnn.problems.last_step_accuracy(cell, xs, ys)
    with tg.no_grad():
        held = cell.loss(xs, ys).item() / 6
    cell.train()
    assert rnn.problems.last_step_accuracy(cell, xs, ys) == expected
    assert cell.training and drop.training and drop._calls == 0

    class Drawn(rnn.tasks.DrawnTask):
        data = staticmethod(lambda batch, seed: (xs, ys))
        shape = {}

        def __init__(self):
            self._train(cell, 0, 40, 1e-2)

    assert Drawn().held_out_loss() == pytest.approx(held, rel=1e-12)
    assert cell.training and drop.training and drop._calls == 0


@pytest.mark.parametrize("spoil", ["lr", "read-only"])
def test_an_update_the_optimizer_refuses_leaves_the_gradients_as_before_the_update(spoil):
    """The optimizer's checks run before clipping: a refused step leaves every gradient as it
    was before the update (the arrays themselves, not backward's nor scaled down), the
    parameters and the optimizer as they were."""
    xs = np.random.default_rng(0).integers(0, 3, (5, 2))
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    opt = tg.optim.SGD(model.parameters(), 0.1)
    trainer = rnn.Trainer(model, opt, clip=1e-3)
    rng = np.random.default_rng(1)
    held = [rng.normal(size=p.shape) if k % 2 else None for k, p in enumerate(model.parameters())]
    for p, g in zip(model.parameters(), held):
        p.grad = g
    copies = [None if g is None else g.copy() for g in held]
    if spoil == "lr":
        opt.param_groups[0]["lr"] = -1.0
    else:
        model.parameters()[0]._data.flags.writeable = False
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(tg.ConfigError, match="SGD.step"):
        trainer.update(model.run_for_loss(xs, xs).loss)
    for p, g, copy, data in zip(model.parameters(), held, copies, before):
        assert p.grad is g and (g is None or np.array_equal(g, copy))
        assert np.array_equal(p.data, data)
    assert trainer.steps == 0 and opt.steps == 0


@pytest.mark.parametrize("chunk", [1000, 2])
@pytest.mark.parametrize("reader", ["stream_loss", "truncated_bptt"])
def test_one_output_or_one_input_per_sequence_is_refused_by_the_chunked_readers(reader, chunk):
    """SequenceToOne has one loss term per sequence and VectorToSequence one input vector:
    neither has steps to read in chunks.  With T == B the shapes passed every check, and
    stream_loss read in one chunk returned the sequence's loss divided by T."""
    rng = np.random.default_rng(0)
    seq2one, vec2seq = rnn.SequenceToOne(3, 5, 2, seed=0), rnn.VectorToSequence(3, 5, 3, seed=0)
    cases = [(seq2one, rng.integers(0, 3, (4, 4)), rng.integers(0, 2, 4), "one output"),
             (vec2seq, rng.normal(size=(4, 3)), rng.integers(0, 3, (4, 4)), "one vector x")]
    for model, xs, ys, why in cases:
        before = [p.data.copy() for p in model.parameters()]
        with pytest.raises(tg.ConfigError, match=f"{reader}: {model.name} .*{why}.* chunks"):
            if reader == "stream_loss":
                rnn.stream_loss(model, xs, ys, chunk=chunk)
            else:
                rnn.truncated_bptt(rnn.Trainer(model, lr=0.1), xs, ys, chunk=chunk)
        assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def _elman_states(p, x, mask, h):
    """The numpy forward of an Elman chunk with its mask: its last state (a masked step carries
    h(t-1) unchanged)."""
    for t in range(len(x)):
        cand = np.tanh(p["b"] + h @ p["W"].T + x[t] @ p["U"].T)
        m = mask[t][:, None]
        h = m * cand + (1 - m) * h
    return h


def _lstm_states(p, x, mask, h, s):
    sig = lambda a: 1 / (1 + np.exp(-a))      # noqa: E731
    for t in range(len(x)):
        f, g, q = (sig(p[b] + x[t] @ p[u].T + h @ p[w].T) for u, w, b in
                   (("Uf", "Wf", "bf"), ("Ug", "Wg", "bg"), ("Uo", "Wo", "bo")))
        s_new = f * s + g * np.tanh(p["b"] + x[t] @ p["U"].T + h @ p["W"].T)
        h_new = np.tanh(s_new) * q
        m = mask[t][:, None]
        h, s = m * h_new + (1 - m) * h, m * s_new + (1 - m) * s
    return h, s


@pytest.mark.parametrize("design", ["elman", "lstm"])
def test_truncated_bptt_takes_a_mask_cut_with_the_chunks(design):
    # truncated_bptt took no mask: padded batches could not be trained in chunks.  Each chunk's
    # loss and SGD update are checked against an independent numpy BPTT of that chunk with its
    # part of the mask, from the numpy state carried out of the chunks before (1e-12); the
    # sequences of lengths 10, 6, 3 end inside chunks 3, 2 and 1 of 4 steps, so later chunks
    # hold rows that keep no step (their state carried unchanged)
    import bptt_reference as ref
    rng = np.random.default_rng(3)
    T, B, n_in, H, C, lr = 10, 3, 3, 4, 2, 0.1
    xs = rng.normal(size=(T, B, n_in))
    ys = rng.integers(0, C, (T, B))
    lengths = np.array([10, 6, 3])
    mask = (np.arange(T)[:, None] < lengths).astype(int)
    model = (rnn.ElmanRNN if design == "elman" else rnn.LSTM)(n_in, H, C, seed=1)
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr))
    p = {k: v.copy() for k, v in model.state_dict().items()}
    losses, last = rnn.truncated_bptt(trainer, xs, ys, 4, mask=mask)
    assert len(losses) == 3
    h, s = np.zeros((B, H)), np.zeros((B, H))
    for k, start in enumerate((0, 4, 8)):
        x, y, m = xs[start:start + 4], ys[start:start + 4], mask[start:start + 4]
        if design == "elman":
            loss, grads = ref.elman(p, x, y, h0=h, mask=m)
            h = _elman_states(p, x, m, h)
        else:
            loss, grads = ref.lstm(p, x, y, h0=h, s0=s, mask=m)
            h, s = _lstm_states(p, x, m, h, s)
        assert abs(losses[k] - loss / len(x)) < 1e-12
        p = {name: v - lr * grads[name] for name, v in p.items()}
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, p[name], rtol=0, atol=1e-12)
    got = last["h"].data if isinstance(last, dict) else last.data
    np.testing.assert_allclose(got, h, rtol=0, atol=1e-12)


def test_truncated_bptt_with_a_mask_in_one_chunk_is_the_masked_loss():
    rng = np.random.default_rng(4)
    xs, ys = rng.normal(size=(7, 3, 2)), rng.integers(0, 2, (7, 3))
    mask = (np.arange(7)[:, None] < np.array([7, 2, 5])).astype(int)
    model = rnn.GRU(2, 3, 2, seed=0)
    want = model.loss(xs, ys, mask=mask).item()
    losses, _ = rnn.truncated_bptt(rnn.Trainer(model, lr=0.1), xs, ys, 7, mask=mask)
    assert abs(losses[0] * 7 - want) < 1e-12


def test_truncated_bptt_refuses_a_bad_mask_before_any_update():
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(8, 2, 2)), rng.integers(0, 2, (8, 2))
    model = rnn.ElmanRNN(2, 3, 2, seed=0)
    trainer = rnn.Trainer(model, lr=0.1)
    before = model.state_dict()
    padding = (np.arange(8)[:, None] < np.array([3, 4])).astype(int)
    with pytest.raises(tg.ShapeError, match=r"truncated_bptt: chunk 3 \(steps 7-8\) is padding "
                                            r"alone"):
        rnn.truncated_bptt(trainer, xs, ys, 3, mask=padding)
    with pytest.raises(tg.ShapeError, match=r"truncated_bptt: mask must have shape \(T, B\) = "
                                            r"\(8, 2\), got \(7, 2\)"):
        rnn.truncated_bptt(trainer, xs, ys, 3, mask=np.ones((7, 2)))
    with pytest.raises(tg.ShapeError, match="truncated_bptt: mask keeps no step of sequence b=1"):
        rnn.truncated_bptt(trainer, xs, ys, 3, mask=np.c_[np.ones(8), np.zeros(8)])
    assert trainer.steps == 0
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    # the mode that lets a chunk hold a sequence that ended is this thread's, for the call only
    with pytest.raises(tg.ShapeError, match="mask keeps no step of sequence b=1"):
        model.loss(xs, ys, mask=np.c_[np.ones(8), np.zeros(8)])


@pytest.mark.parametrize("name", list(LAG_AND_FEEDBACK))
def test_masked_truncated_bptt_in_two_calls_where_a_sequence_ends_in_the_first(name):
    # going on with h0= (what the first call returned) over a mask whose sequence b=1 ended in
    # the first call was refused: "mask keeps no step of sequence b=1 (an empty sequence)",
    # though one call over both parts trains it (its state carried unchanged).  Now the two
    # calls equal the one, losses and parameters
    rng = np.random.default_rng(6)
    xs, ys = rng.integers(0, 3, (12, 3)), rng.integers(0, 3, (12, 3))
    mask = (np.arange(12)[:, None] < np.array([12, 4, 9])).astype(int)
    one, two = LAG_AND_FEEDBACK[name](), LAG_AND_FEEDBACK[name]()
    whole, _ = rnn.truncated_bptt(rnn.Trainer(one, lr=0.1), xs, ys, chunk=3, mask=mask)
    trainer = rnn.Trainer(two, lr=0.1)
    first, carried = rnn.truncated_bptt(trainer, xs[:6], ys[:6], chunk=3, mask=mask[:6])
    second, _ = rnn.truncated_bptt(trainer, xs[6:], ys[6:], chunk=3, h0=carried, mask=mask[6:])
    np.testing.assert_allclose(first + second, whole, rtol=1e-13)
    for p, q in zip(one.parameters(), two.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-13)
    with pytest.raises(tg.ShapeError, match="mask keeps no step of sequence b=1"):
        rnn.truncated_bptt(trainer, xs[6:], ys[6:], chunk=3, mask=mask[6:])   # no h0: empty


@pytest.mark.parametrize("make", [lambda: rnn.BidirectionalRNN(3, 4, 2, seed=0),
                                  lambda: rnn.ElmanRNN(3, 4, 2, seed=0, bidirectional=True),
                                  lambda: rnn.EncoderDecoder(3, 4, 2, seed=0)],
                         ids=["bidirectional", "elman_bidirectional", "encdec"])
def test_the_carry_of_a_model_that_is_not_causal_is_refused_before_any_update(make):
    # model.carry (and Trainer.chunk, a user's own chunk loop) gave a bidirectional net's
    # {"h": h(T), "g": g(1)} as the next chunk's h0: its g(1) read as g(T+1), a state of no
    # meaning there, without a word (truncated_bptt refuses such models; carry did not)
    model = make()
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(6, 2, 3)), rng.integers(0, 2, (6, 2))
    with pytest.raises(tg.ConfigError, match=rf"^{model.name}\.carry: {model.name} is not causal"):
        model.carry(model.run(xs, ys))
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), 0.1))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(tg.ConfigError, match="is not causal"):
        trainer.chunk(xs, ys, {})
    assert trainer.steps == 0
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
