"""Inputs that used to give a run without a word while something was off (a tensor of another
dtype promoting a whole unroll, a step's state with parts added or dropped, the feedback of
padding carried on), or an error that did not say what was wrong.  Each is now refused with an
error naming what is wrong, or handled and checked against a reference (the sequence run
alone)."""

import copy
import warnings

import numpy as np
import pytest

import rnn
import tinygraph as tg


def _float32_designs():
    return [rnn.ElmanRNN(3, 4, 2, seed=0, dtype=np.float32),
            rnn.LSTM(3, 4, 2, seed=0, dtype=np.float32),
            rnn.GRU(3, 4, 2, seed=0, dtype=np.float32)]


@pytest.mark.parametrize("model", _float32_designs(), ids=lambda m: type(m).__name__)
def test_a_float64_h0_or_xs_that_requires_grad_is_refused_by_a_float32_design(model):
    # it used to run the whole unroll in float64: o(t), h(t) and the loss float64
    xs = np.ones((5, 3), np.float32)
    part = next(iter(model.parts))
    h0 = tg.Tensor(np.zeros(4), requires_grad=True)
    h0 = h0 if len(model.parts) == 1 else {part: h0}
    with pytest.raises(tg.DTypeError, match=r"h0.*float64 Tensor.*float32"):
        model.run(xs, h0=h0)
    with pytest.raises(tg.DTypeError, match=r"xs is a float64 Tensor.*float32"):
        model.run(tg.Tensor(np.ones((5, 3)), requires_grad=True))


def test_a_float64_y0_or_x_that_requires_grad_is_refused_by_float32_feedback_designs():
    jordan = rnn.JordanRNN(3, 4, 2, seed=0, dtype=np.float32)
    with pytest.raises(tg.DTypeError, match=r"y0 is a float64 Tensor.*float32"):
        jordan.run(np.ones((5, 3), np.float32), teacher_forcing=False, y0=tg.Tensor(np.zeros(2), requires_grad=True))
    v2s = rnn.VectorToSequence(3, 4, 2, seed=0, dtype=np.float32)
    with pytest.raises(tg.DTypeError, match=r"x is a float64 Tensor.*float32"):
        v2s.run(tg.Tensor(np.ones(3), requires_grad=True), steps=4)


def test_a_float64_h0_is_refused_by_a_float32_recurrence_and_a_grad_free_one_is_cast():
    W = tg.Parameter(np.eye(2, dtype=np.float32) * 0.5, name="W")
    system = rnn.Recurrence(lambda s: (s @ W.T).tanh(), W, n_state=2, state_name="s",
                            name="sys")
    with pytest.raises(tg.DTypeError, match=r"sys: h0 is a float64 Tensor .*float32"):
        system.run(steps=3, h0=tg.Tensor(np.ones(2), requires_grad=True))
    run = system.run(steps=3, h0=tg.Tensor(np.ones(2)))      # a value: cast, as an array is
    assert run.last.dtype == np.float32
    assert np.allclose(run.last.data, system.run(steps=3, h0=np.ones(2, np.float32)).last.data)


def test_a_float32_tensor_into_a_float64_design_runs_in_float64_with_its_gradient():
    model = rnn.ElmanRNN(3, 4, 2, seed=0)
    xs = tg.Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    run = model.run(xs, ys=np.zeros(5, np.int64))
    assert run.loss.dtype == np.float64
    run.loss.backward()
    assert xs.grad.dtype == np.float32 and np.isfinite(xs.grad).all()


def _lstm_like(extra=None, drop=False):
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(0, 0.5, (2, 2)), name="W")

    def step(state, x):
        h = (state["h"] @ W.T + x).tanh()
        new = {"h": h} if drop else {"h": h, "c": state["c"] + h}
        if extra:
            new[extra] = h * 2
        return new
    return rnn.Recurrence(step, W, n_state={"h": 2, "c": 2}, n_in=2, name="mine")


@pytest.mark.parametrize("per_step", [True, False])
def test_a_step_returning_a_key_that_is_no_state_part_is_refused_naming_it_and_t(per_step):
    # the extra "g" used to be dropped without a word
    xs = np.ones((4, 1, 2))
    with pytest.raises(tg.ConfigError, match=r"mine: at t=1 the step function returned 'g', "
                                             r"not a state part .*\['h', 'c'\]"):
        _lstm_like(extra="g").run(xs, per_step=per_step)
    with pytest.raises(tg.ConfigError, match=r"mine: at t=1 the step function returned no 'c'"):
        _lstm_like(drop=True).run(xs, per_step=per_step)
    assert set(_lstm_like().run(xs, per_step=per_step).last) == {"h", "c"}


def _two_part_cell(late, replayable):
    """A cell of state parts h and c whose step returns ``late(h, c)`` from its third call on
    (a Python counter decides), {"h": h, "c": c} before; and the list of its calls."""
    W = tg.Parameter(np.eye(2) * 0.5, name="W")
    V = tg.Parameter(np.ones((2, 2)), name="V")
    calls = []

    def step(state, x):
        calls.append(1)
        h = (state["h"] @ W.T + x).tanh()
        c = state["c"] + h
        return {"h": h, "c": c} if len(calls) < 3 else late(h, c)
    cell = rnn.Recurrence(step, [W, V], n_state={"h": 2, "c": 2}, n_in=2, name="mine",
                          readout=lambda s: s["h"] @ V.T)
    cell.replayable = replayable
    return cell, calls


@pytest.mark.parametrize("replayable", [False, True])
@pytest.mark.parametrize("key, found", [("x", r"returned 'x', not a state part"),
                                        (None, r"returned no 'c'")], ids=["extra", "missing"])
def test_a_step_whose_keys_change_after_the_first_step_is_refused_naming_t(replayable, key,
                                                                           found):
    # only step 1's keys were checked in the batched unroll: a step that returned other keys
    # from t=3 on (here a Python counter decides) was a bare KeyError 'c' from the unroll
    cell, _ = _two_part_cell(lambda h, c: {"h": h} if key is None else {"h": h, "c": c, key: h},
                             replayable)
    with pytest.raises(tg.ConfigError, match=rf"mine: at t=3 the step function {found}"):
        cell.loss(np.ones((8, 2, 2)), np.zeros((8, 2), dtype=np.int64))


@pytest.mark.parametrize("replayable", [False, True])
def test_a_step_of_several_parts_returning_a_bare_tensor_after_step_1_is_refused_naming_t(
        replayable):
    # the batched unroll (loss) read a bare Tensor returned from t=3 on by a step of parts h
    # and c as the one part of a one-part state: a bare KeyError 'h' from the unroll, where
    # run names t and says to return a dict
    cell, calls = _two_part_cell(lambda h, c: h, replayable)
    for per_step in (True, False):
        calls.clear()
        with pytest.raises(tg.DTypeError, match=r"mine: at t=3 the step function returned "
                                                 r"Tensor; with state parts \['h', 'c'\] it "
                                                 r"must return a dict of them"):
            cell.run(np.ones((8, 2, 2)), np.zeros((8, 2), dtype=np.int64), per_step=per_step)


@pytest.mark.parametrize("replayable", [False, True])
def test_a_step_whose_part_changes_shape_after_the_first_step_is_refused_naming_t(replayable):
    # only step 1's shapes were checked in the batched unroll: a part of shape (B, 1) instead
    # of (B, 3) from t=3 on (a Python counter decides) was broadcast back to (B, 3) by the
    # mask's carry, prev + (new - prev) * keep, and the loss came out as a number (2.77);
    # run() refused it at t=3
    a = tg.Parameter(np.array([0.5, -0.3, 0.2]), name="a")
    V = tg.Parameter(np.ones((2, 3)) * 0.2, name="V")
    calls = []

    def step(h, x):
        calls.append(1)
        out = (h * a + x).tanh()
        return out if len(calls) < 3 else out.sum(axis=-1, keepdims=True)
    cell = rnn.Recurrence(step, [a, V], 3, n_in=3, name="mine", readout=lambda h: h @ V.T)
    cell.replayable = replayable
    mask = np.ones((8, 2))
    mask[2:, 1] = 0                    # sequence b=1 ends after step 2
    with pytest.raises(tg.ShapeError, match=r"mine: at t=3 the step function returned 'h' of "
                                            r"shape \(2, 1\); the state part has shape \(2, 3\)"):
        cell.loss(np.ones((8, 2, 3)), np.zeros((8, 2), dtype=np.int64), mask=mask)


XS_PADDED = np.array([[0, 1], [1, 2], [2, 0], [1, 0]])
MASK = np.array([[1, 1], [1, 1], [1, 0], [1, 0]])     # sequence b=1 ends after step 2


def test_a_jordan_rnn_running_free_over_padding_carries_each_sequences_last_feedback():
    # f(t) = softmax(o(t)) fed back: the padded steps of b=1 used to go on feeding it, so its
    # run.last (what the next chunk reads) was softmax(o(4)) of the padding, e.g.
    # [0.659, 0.150, 0.191] instead of [0.229, 0.245, 0.526] that b=1 alone ends with
    jordan = rnn.JordanRNN(3, 4, 3, seed=1)
    run = jordan.run(XS_PADDED, teacher_forcing=False, mask=MASK)
    for b in range(2):
        alone = jordan.run(XS_PADDED[MASK[:, b] == 1, b], teacher_forcing=False)
        np.testing.assert_allclose(run.last.data[b], alone.last.data, rtol=1e-12)
        np.testing.assert_allclose(run.feedback.data[b], alone.feedback.data, rtol=1e-12)
        for t in range(int(MASK[:, b].sum())):
            np.testing.assert_allclose(run.outputs[t].data[b], alone.outputs[t].data,
                                       rtol=1e-12)
    # and the gradient through the carried feedback is that of the sequence alone
    run.last[1].sum().backward()
    batched = jordan.W.grad.copy()
    jordan.zero_grad()
    jordan.run(XS_PADDED[:2, 1], teacher_forcing=False).last.sum().backward()
    np.testing.assert_allclose(batched, jordan.W.grad, rtol=1e-10, atol=1e-14)


def test_a_conditional_rnn_sampling_over_padding_carries_each_sequences_last_sample():
    # y(t) sampled at temperature 1 fed back: b=1's run.feedback (the y(0) of the next chunk)
    # used to be the id drawn at padded step 4, not the one drawn at its last kept step 2
    xs = np.tile(XS_PADDED, (1, 4))
    mask = np.tile(MASK, (1, 4))
    model = rnn.ConditionalRNN(3, 4, 3, seed=3)
    sampler = rnn.Sampler(1.0, seed=0)
    run = model.run(xs, feedback=sampler, mask=mask)
    picked = np.stack(sampler.picked)
    ends = mask.sum(axis=0) - 1
    np.testing.assert_array_equal(run.feedback.data, picked[ends, np.arange(8)])


def test_sampler_picked_at_a_padded_step_is_the_id_fed_not_one_drawn_from_the_padding():
    # picked[t] at a padded step of b held the id drawn from that step's o(t), which nothing
    # read: picked[-1] (the last ids, to go on generating from) was not run.feedback for the
    # sequences that had ended (b=1: 2 drawn at padded step 4, where 2 was fed)
    xs, mask = np.tile(XS_PADDED, (1, 4)), np.tile(MASK, (1, 4))
    model = rnn.ConditionalRNN(3, 4, 3, seed=3)
    sampler, unpadded = rnn.Sampler(1.0, seed=0), rnn.Sampler(1.0, seed=0)
    run = model.run(xs, feedback=sampler, mask=mask)
    model.run(xs, feedback=unpadded, mask=np.ones_like(mask))
    picked = np.stack(sampler.picked)
    np.testing.assert_array_equal(picked[-1], run.feedback.data)
    ends = mask.sum(axis=0) - 1
    for b, end in enumerate(ends):
        assert (picked[end:, b] == picked[end, b]).all()
    # the kept steps are the draws of a run without padding (each row samples on its own)
    kept = mask.astype(bool)
    np.testing.assert_array_equal(picked[kept], np.stack(unpadded.picked)[kept])


def test_jacobians_of_an_encoder_decoder_ask_for_ys_in_the_words_of_jacobians_and_then_run():
    # it used to say "encdec: give the targets ys" (model.run's words), and with ys given, that
    # they were not available; each chain now has its Jacobians (part "h": the encoder's)
    model, xs = rnn.EncoderDecoder(3, 4, 3), np.array([0, 1, 2])
    with pytest.raises(tg.ConfigError, match=r"rnn.jacobians: EncoderDecoder feeds the target y\(t-1\) "
                                             r"into step t.*ys=ys"):
        rnn.jacobians(model, xs)
    assert rnn.jacobians(model, xs, ys=np.array([1, 2])).shape == (3, 4, 4)


@pytest.mark.parametrize("make", [lambda: rnn.ConditionalRNN(3, 4, 3),
                                  lambda: rnn.EncoderDecoder(3, 4, 3)],
                         ids=["ConditionalRNN", "EncoderDecoder"])
def test_a_diagnostic_of_a_design_that_reads_y_without_ys_says_how_to_give_them(make):
    with pytest.raises(tg.ConfigError, match=r"rnn.saturation: \w+ feeds the target y\(t-1\) "
                                             r"into step t.*rnn.saturation\(model, xs, ys=ys\)"):
        rnn.saturation(make(), np.array([0, 1, 2]))
    ys = np.array([1, 2, 0])
    assert rnn.saturation(make(), np.array([0, 1, 2]), ys=ys) is not None


def test_pad_sequences_refuses_ids_mixed_with_float_values_naming_the_sequence():
    # it used to return float64 (T, B) xs, which the models then refused as ids, far from here
    with pytest.raises(tg.DTypeError, match=r"pad_sequences: sequence 2 holds floats "
                                             r"\(dtype float64\) but sequence 0 holds ids"):
        rnn.pad_sequences([[0, 1, 2], [1], [0.5, 1.0]])
    xs, _ = rnn.pad_sequences([np.array([[0, 1]]), np.array([[0.5, 0.5], [1.0, 0.0]])])
    assert xs.dtype == np.float64 and xs.shape == (2, 2, 2)   # int and float vectors: floats


def test_loading_a_sound_checkpoint_of_another_dtype_does_not_call_it_unreadable(tmp_path):
    # it used to say "'m.tgz' is not a readable checkpoint, entry 'U': it has dtype float64"
    path = tmp_path / "m.tgz"
    rnn.ElmanRNN(3, 4, 3).save(path)
    with pytest.raises(tg.CheckpointError) as caught:
        rnn.ElmanRNN(3, 4, 3, dtype=np.float32).load(path)
    message = str(caught.value)
    assert "not a readable" not in message
    assert ("is a readable checkpoint that does not match what loads it: entries ['U', 'W', 'V', "
            "'b', 'c']: each has dtype float64, expected float32 (saved in another precision"
            in message)      # every parameter named, the precision hint once
    trainer = rnn.Trainer(rnn.ElmanRNN(3, 4, 3), lr=0.1)
    rnn.save_training(tmp_path / "t.tgz", trainer)
    with pytest.raises(tg.CheckpointError, match=r"does not match what loads it: entry "
                                                 r"'model/U': it has shape \(4, 3\), expected "
                                                 r"\(5, 3\); entry 'model/W'.*'model/b'"):
        rnn.load_training(tmp_path / "t.tgz", rnn.Trainer(rnn.ElmanRNN(3, 5, 3), lr=0.1))


def test_a_state_carried_from_float64_chunks_into_a_model_made_float32_runs_in_float32():
    # the carried float64 state kept every later chunk of the float32 LSTM in float64
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 3, (20, 2)), rng.integers(0, 3, (20, 2))
    model = rnn.LSTM(3, 4, 3, seed=1)
    _, carried = rnn.truncated_bptt(rnn.Trainer(model, lr=0.1), xs[:10], ys[:10], chunk=5)
    model.to(np.float32)
    _, carried = rnn.truncated_bptt(rnn.Trainer(model, lr=0.1), xs[10:], ys[10:], chunk=5,
                                    h0=carried)
    assert {k: v.dtype for k, v in carried.items()} == {"s": np.float32, "h": np.float32}


@pytest.mark.parametrize("per_step", [True, False])
def test_a_float32_step_that_widens_its_state_to_float64_is_refused_naming_t(per_step):
    # a float64 numpy constant in the step ran the float32 cell's whole unroll in float64
    W = tg.Parameter(np.eye(2, dtype=np.float32) * 0.5, name="W")
    bias = np.ones(2)                                           # float64
    cell = rnn.Recurrence(lambda s, x: (s @ W.T + x + bias).tanh(), W, n_state=2, n_in=2,
                          name="mine")
    with pytest.raises(tg.DTypeError, match=r"mine: at t=1 the step function returned 'h' of "
                                             r"dtype float64, wider than the model's "
                                             r"parameters \(float32\)"):
        cell.run(np.ones((3, 1, 2), np.float32), per_step=per_step)
    fixed = rnn.Recurrence(lambda s, x: (s @ W.T + x + bias.astype(np.float32)).tanh(), W,
                           n_state=2, n_in=2)
    assert fixed.run(np.ones((3, 1, 2), np.float32), per_step=per_step).last.dtype == np.float32


@pytest.mark.parametrize("replayable", [False, True])
@pytest.mark.parametrize("from_t", [2, 3])
def test_a_step_that_widens_its_state_after_the_first_step_is_refused_by_loss_too(replayable,
                                                                                  from_t):
    # the batched unroll (loss, training) checked the dtype of step 1's state only: a float32
    # step that mixed in a float64 constant from t=3 on (a Python counter decides) ran the
    # rest of the unroll, and the loss, in float64 without a word, where run refuses at t=3
    W = tg.Parameter(np.eye(2, dtype=np.float32) * 0.5, name="W")
    V = tg.Parameter(np.ones((3, 2), dtype=np.float32), name="V")
    calls = []

    def step(s, x):
        calls.append(1)
        h = (s @ W.T + x).tanh()
        return h + np.zeros(2) if len(calls) >= from_t else h        # np.zeros: float64
    cell = rnn.Recurrence(step, [W, V], n_state=2, n_in=2, name="mine",
                          readout=lambda h: h @ V.T)
    cell.replayable = replayable
    xs, ys = np.ones((8, 2, 2), np.float32), np.zeros((8, 2), dtype=np.int64)
    for per_step in (True, False):
        calls.clear()
        with pytest.raises(tg.DTypeError, match=rf"mine: at t={from_t} the step function "
                                                 r"returned 'h' of dtype float64, wider"):
            cell.run(xs, ys, per_step=per_step)


@pytest.mark.parametrize("how", ["loss", "run"])
def test_a_float32_readout_that_widens_o_to_float64_is_refused_as_a_widened_state_is(how):
    # a float64 numpy constant in the readout of a float32 cell made o(t) and the loss float64
    # without a word (the state check saw only the step's parts)
    rng = np.random.default_rng(3)
    W = tg.Parameter(rng.normal(0, 0.5, (3, 3)).astype(np.float32), name="W")
    V = tg.Parameter(rng.normal(0, 0.5, (2, 3)).astype(np.float32), name="V")
    scale = np.array([1.0, 2.0])                                # float64
    xs, ys = rng.normal(size=(4, 2, 3)).astype(np.float32), rng.integers(0, 2, (4, 2))

    def cell(readout):
        return rnn.Recurrence(lambda h, x: (h @ W.T + x).tanh(), [W, V], n_state=3, n_in=3,
                              readout=readout, name="mine")

    def loss(model):
        return model.loss(xs, ys) if how == "loss" else model.run(xs, ys).loss

    at = "at t=1 " if how == "run" else ""
    with pytest.raises(tg.DTypeError, match=rf"mine: {at}the readout returned 'o' of dtype "
                                            r"float64, wider than the model's parameters "
                                            r"\(float32\).*make it float32"):
        loss(cell(lambda h: h @ V.T * scale))
    fixed = loss(cell(lambda h: h @ V.T * scale.astype(np.float32)))
    assert fixed.dtype == np.float32 and np.isfinite(fixed.item())


@pytest.mark.parametrize("make", [rnn.ElmanRNN, rnn.LSTM, rnn.GRU, rnn.EncoderDecoder])
def test_a_design_made_with_an_integer_dtype_is_refused_not_made_of_rounded_weights(make):
    # dtype=np.int32 rounded the N(0, 1/n_in) weights to integers (U of ElmanRNN(3, 4, 3) all
    # zeros), then made the parameters float64: a float64 model of zero weights, without a word
    with pytest.raises(tg.DTypeError, match=r"Parameter '\w+': dtype must be a float dtype.*int32"):
        make(3, 4, 3, dtype=np.int32)


def _float32_regression_loss(xs=None, ys=None, h0=None):
    rng = np.random.default_rng(4)
    model = rnn.ElmanRNN(3, 4, 3, seed=0, dtype=np.float32, criterion="squared_error")
    xs = rng.normal(size=(5, 2, 3)) if xs is None else xs
    ys = rng.normal(size=(5, 2, 3)) if ys is None else ys
    return model.run(xs, ys, h0=h0).loss


def _with(value, at, shape=(5, 2, 3)):
    arr = np.random.default_rng(5).normal(size=shape)
    arr[at] = value
    return arr


@pytest.mark.parametrize("call, where", [
    (lambda: _float32_regression_loss(ys=_with(1e300, (3, 1, 2))), r"ys holds 1e\+300 at t=4, b=1"),
    (lambda: _float32_regression_loss(xs=_with(-1e39, (2, 0, 1))), r"xs holds -1e\+39 at t=3, b=0"),
    (lambda: _float32_regression_loss(xs=tg.tensor(_with(1e39, (0, 1, 0)))), r"xs holds 1e\+39 at t=1, b=1"),
    (lambda: _float32_regression_loss(h0=_with(1e40, (1, 3), (2, 4))), r"h0 holds 1e\+40 at index \(1, 3\)"),
], ids=["targets", "inputs", "input-tensor", "h0"])
def test_a_finite_value_beyond_a_float32_models_range_is_refused_not_made_inf(call, where):
    # the cast to the model's dtype made 1e300 (finite in the float64 array given) inf, and the
    # loss inf or NaN, without a word; NaN and inf given as such are refused already
    with pytest.raises(tg.OutOfRangeError, match=rf"elman: {where}, beyond the range of the "
                                                 r"model's float32 \(largest 3.403e\+38\)"):
        call()
    assert np.isfinite(_float32_regression_loss().item())


def test_deepcopy_of_a_tensor_of_a_graph_is_a_clear_error_and_of_a_leaf_a_copy():
    # copy.deepcopy(run.loss), or of a model holding a state of a run, raised Python's bare
    # "TypeError: cannot pickle 'mappingproxy' object"
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    run = model.run(np.array([0, 1, 2]), np.array([1, 2, 0]))
    with pytest.raises(tg.ConfigError, match=r"copy.deepcopy: tensor.* was made by op '\w+' "
                                             r"\(it is part of a graph\).*t.detach\(\)"):
        copy.deepcopy(run.loss)
    holder = tg.Module()
    holder.memory = run.last
    with pytest.raises(tg.ConfigError, match="copy.deepcopy"):
        copy.deepcopy(holder)
    twin = copy.deepcopy(model)                   # a model mid-run: its leaves are copied
    assert twin.W is not model.W and twin.W.name == model.W.name and twin.W.requires_grad
    np.testing.assert_array_equal(twin.W.data, model.W.data)
    twin.W.data *= 0
    assert np.abs(model.W.data).sum() > 0
    run.loss.backward()                            # the original's graph is untouched
    assert model.W.grad is not None and twin.W.grad is None
    pair = copy.deepcopy([model.W, model.W])
    assert pair[0] is pair[1]


@pytest.mark.parametrize("optimizer, match", [("adam", r"got str 'adam'"),
                                              (0.1, r"got float 0.1; a learning rate is lr=")])
def test_a_trainer_given_no_optimizer_object_is_refused_when_made(optimizer, match):
    # Trainer(model, "adam") or Trainer(model, 0.1) was accepted and its first update failed
    # with a bare "AttributeError: 'str' object has no attribute 'zero_grad'"
    with pytest.raises(tg.ConfigError, match=r"Trainer: optimizer must be a tg.optim optimizer.*"
                                             + match):
        rnn.Trainer(rnn.ElmanRNN(3, 4, 3), optimizer)


def _dropout_cell(hold):
    """A cell whose step calls a seeded tg.Dropout; held by the cell (cell.drop) or not."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")
    drop = tg.Dropout(0.5, seed=1)
    cell = rnn.Recurrence(lambda h, x: drop((h @ W.T + x @ U.T).tanh()), [W, U, V], 3, n_in=2,
                          readout=lambda h: h @ V.T, name="cell")
    if hold:
        cell.drop = drop
    return cell, drop


DROP_XS, DROP_YS = np.random.default_rng(1).normal(size=(6, 2)), np.array([0, 3, 1, 2, 2, 0])


@pytest.mark.parametrize("run, evaluate", [
    (lambda c: c.loss(DROP_XS, DROP_YS), True), (lambda c: c.run(DROP_XS), True),
    (lambda c: rnn.connectivity(c, DROP_XS, DROP_YS), False)],    # it runs in evaluation mode
    ids=["loss", "run", "connectivity"])
def test_a_dropout_the_model_does_not_hold_warns_when_the_model_runs_in_evaluation_mode(run, evaluate):
    # cell.eval() cannot reach a Dropout its step calls without holding it: in evaluation
    # mode the loss was still random (7.88 then 8.18 for the same inputs), without a word;
    # the views (connectivity) run in evaluation mode and drew masks from it too
    cell, drop = _dropout_cell(hold=False)
    if evaluate:
        cell.eval()
    with pytest.warns(RuntimeWarning, match=r"cell runs in evaluation mode.*tg.Dropout\(p=0.5\) "
                                            r"that it does not hold.*still drops \(first at "
                                            r"\S*cell/t=1\).*cell.drop = drop"):
        run(cell)
    assert drop.training


def test_a_held_dropout_or_one_in_a_training_model_does_not_warn():
    held, drop = _dropout_cell(hold=True)
    free, _ = _dropout_cell(hold=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        free.loss(DROP_XS, DROP_YS)               # training mode: dropping is what it should do
        held.eval()
        first = held.loss(DROP_XS, DROP_YS).item()
        assert held.loss(DROP_XS, DROP_YS).item() == first      # off: one function
        drop.train()                              # held, and switched on by hand (MC dropout)
        held.loss(DROP_XS, DROP_YS)
    assert drop._calls == 6


@pytest.mark.parametrize("case", ["vec2seq", "recursive"])
def test_a_float_input_beyond_a_narrow_models_dtype_is_refused_by_every_design(case):
    # was: VectorToSequence's x and RecursiveNet's float leaves were cast to float16 without
    # the check every other design's inputs go through: x = 1e6 became inf, h = tanh(inf) = 1,
    # and the loss was a finite 5.14 of another input (the recursive net's a NaN), numpy's
    # cast warning at most
    big = np.array([1e6, 0.0, 0.0])
    if case == "vec2seq":
        model = rnn.VectorToSequence(3, 4, 3, dtype=np.float16)
        call, words = lambda: model.loss(big, np.array([0, 1, 2])), r"vec2seq: x holds 1000000\.0"
    else:
        model = rnn.RecursiveNet(3, 4, 2, dtype=np.float16)
        call = lambda: model.run((big, np.array([0.0, 1.0, 0.0])), np.array(1))
        words = r"recursive: leaf at root\.0: the leaf holds 1000000\.0"
    with pytest.raises(tg.OutOfRangeError, match=words + r" .* float16 \(largest 6\.55e\+04\)"):
        call()
