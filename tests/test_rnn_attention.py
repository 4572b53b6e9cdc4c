"""rnn.EncoderDecoder(attention="additive" | "dot"): the SPEC's equations, exact against an
independent hand-written numpy forward and BPTT (tests/attention_reference.py) in float64,
batched and with padded sources; α(t) per decoder step from run(...).attention; α and ctx drawn
as variables of every decoder step; clear errors."""

import numpy as np
import pytest

import attention_reference as ref
import rnn
import tinygraph as tg
import viz
from viz.derive import derive

N_IN, H, N_OUT = 5, 4, 3
TOL = 1e-12
NAMES = {None: ["U", "W", "b", "Ud", "Wd", "R", "bd", "V", "c"]}
NAMES["dot"] = NAMES[None]
NAMES["additive"] = NAMES[None] + ["Wa", "Ua", "va"]


def _model(attention, seed=0):
    """A model whose every parameter is random (biases too, so every term counts)."""
    model = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=seed, attention=attention)
    rng = np.random.default_rng(seed + 10)
    for name in NAMES[attention]:
        p = getattr(model, name)
        p.data = rng.normal(0, 0.7, p.shape)
    return model


def _case(kind, rng):
    """(xs, ys, mask) of a kind: one sequence of ids, a padded batch of ids, a batch of floats."""
    if kind == "unbatched":
        return rng.integers(0, N_IN, 6), rng.integers(0, N_OUT, 4), None
    if kind == "masked":
        lengths = np.array([6, 3, 1, 5])
        mask = (np.arange(6)[:, None] < lengths).astype(int)
        return rng.integers(0, N_IN, (6, 4)), rng.integers(0, N_OUT, (5, 4)), mask
    return rng.normal(size=(5, 3, N_IN)), rng.integers(0, N_OUT, (4, 3)), None


def _relative(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


def _equals_the_oracle(model, attention, xs, ys, mask):
    """Loss and every gradient of ``model.loss`` against the hand-written BPTT; its α."""
    expected, grads, alphas = ref.encoder_decoder_attention(
        {n: getattr(model, n).data for n in NAMES[attention]}, xs, ys, model.start, attention,
        mask)
    loss = model.loss(xs, ys, mask=mask)
    loss.backward()
    assert _relative(loss.item(), expected) <= TOL
    for name in NAMES[attention]:
        assert _relative(getattr(model, name).grad, grads[name]) <= TOL, name
    return alphas


@pytest.mark.parametrize("attention", ["additive", "dot"])
@pytest.mark.parametrize("kind", ["unbatched", "masked", "floats"])
def test_loss_and_every_gradient_equal_the_hand_written_bptt(attention, kind):
    model = _model(attention)
    xs, ys, mask = _case(kind, np.random.default_rng(3))
    _equals_the_oracle(model, attention, xs, ys, mask)


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_run_attention_is_the_weights_of_every_decoder_step(attention):
    model = _model(attention)
    xs, ys, mask = _case("masked", np.random.default_rng(4))
    _, _, alphas = ref.encoder_decoder_attention(
        {n: getattr(model, n).data for n in NAMES[attention]}, xs, ys, model.start, attention,
        mask)
    run = model.run(xs, ys, mask=mask)
    assert len(run.attention) == len(ys)
    assert np.abs(np.stack([a.data for a in run.attention]) - alphas).max() <= 1e-14
    assert all(a.shape == (4, 6) for a in run.attention)


@pytest.mark.parametrize("attention", ["additive", "dot"])
@pytest.mark.parametrize("replayable", [True, False])
def test_attention_of_the_run_for_the_loss_is_every_decoder_steps_weights(attention, replayable):
    # with the decoder's steps replayed, attention held only alpha(1..3) of 9 steps
    model = _model(attention)
    model.replayable = replayable
    rng = np.random.default_rng(7)
    lengths = np.array([6, 3, 1, 5])
    mask = (np.arange(6)[:, None] < lengths).astype(int)
    xs, ys = rng.integers(0, N_IN, (6, 4)), rng.integers(0, N_OUT, (9, 4))
    _, _, alphas = ref.encoder_decoder_attention(
        {n: getattr(model, n).data for n in NAMES[attention]}, xs, ys, model.start, attention,
        mask)
    run = model.run_for_loss(xs, ys, mask=mask)
    assert (run.replayed is not None) == replayable
    assert len(run.attention) == len(ys)
    assert np.abs(np.stack([a.data for a in run.attention]) - alphas).max() <= 1e-14
    assert [_step_of(a) for a in run.attention] == list(range(1, 10))


def _step_of(node):
    return rnn.core.time_step(node.scope)


def test_padded_source_positions_get_no_attention_and_the_rows_sum_to_one():
    model = _model("additive")
    xs, ys, mask = _case("masked", np.random.default_rng(5))
    alphas = np.stack([a.data for a in model.run(xs, ys, mask=mask).attention])
    assert np.all(alphas[:, ~mask.T.astype(bool)] == 0.0)
    assert np.allclose(alphas.sum(axis=-1), 1.0, rtol=0, atol=1e-15)


def test_padding_a_source_does_not_change_its_loss():
    model = _model("dot")
    rng = np.random.default_rng(6)
    short, ys = rng.integers(0, N_IN, 3), rng.integers(0, N_OUT, 4)
    padded = np.stack([np.r_[short, 0, 0], rng.integers(0, N_IN, 5)], axis=1)
    mask = np.array([[1, 1, 1, 0, 0], [1] * 5]).T
    both = model.loss(padded, np.stack([ys, ys], axis=1), mask=mask).item()
    alone = model.loss(short, ys).item()
    other = model.loss(padded[:, 1], ys).item()
    assert both == pytest.approx((alone + other) / 2, rel=1e-13)


@pytest.mark.parametrize("attention", [None, "additive", "dot"])
def test_run_and_loss_agree(attention):
    model = _model(attention)
    xs, ys, mask = _case("masked", np.random.default_rng(7))
    assert model.run(xs, ys, mask=mask).loss.item() == pytest.approx(
        model.loss(xs, ys, mask=mask).item(), rel=1e-13)


def _gradcheck_parameters(model, attention, loss):
    """tg.gradcheck of ``loss()`` (of no arguments, reading the model) in the attention
    design's parameters, each put in place for the call and the model's own put back after."""
    names = NAMES[attention]
    saved = {n: getattr(model, n) for n in names}

    def loss_of(*params):
        for n, p in zip(names, params):
            setattr(model, n, p)
        try:
            return loss()
        finally:
            for n, p in saved.items():
                setattr(model, n, p)
    return tg.gradcheck(loss_of, [saved[n] for n in names], rtol=1e-6)


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_gradients_match_finite_differences(attention):
    model = rnn.EncoderDecoder(3, 2, 2, seed=1, attention=attention)
    rng = np.random.default_rng(8)
    xs, ys = rng.normal(size=(3, 2, 3)), rng.integers(0, 2, (2, 2))
    mask = np.array([[1, 1], [1, 1], [1, 0]])
    assert _gradcheck_parameters(model, attention, lambda: model.loss(xs, ys, mask=mask))


def test_without_attention_the_model_and_its_parameters_are_as_before():
    plain = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=0)
    assert plain.attention is None and not hasattr(plain, "Wa")
    assert plain.run(np.arange(4) % N_IN, np.arange(3) % N_OUT).attention is None
    additive = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=0, attention="additive")
    assert [n for n, _ in additive.named_parameters()][-3:] == ["Wa", "Ua", "va"]
    assert additive.Wa.shape == (H, H) and additive.Ua.shape == (H, H) and additive.va.shape == (H,)
    assert np.any(additive.va.data != 0)           # else every e(t, k) would start at zero
    for name in NAMES[None]:
        assert np.array_equal(getattr(additive, name).data, getattr(plain, name).data)


def test_alpha_and_ctx_are_variables_of_every_decoder_step_fed_by_the_encoder_memory():
    variables = derive(rnn.EncoderDecoder(N_IN, H, N_OUT, attention="additive").trace(3))
    for t in (1, 2, 3):
        assert {("α", t), ("ctx", t)} <= set(variables.keys)
        assert set(variables.edges[(("memory", None), ("α", t))]) == {"Ua", "va"}
        assert (("memory", None), ("ctx", t)) in variables.edges
        assert (("α", t), ("ctx", t)) in variables.edges
        assert variables.edges[(("ctx", t), ("s", t))] == ("R",)
    assert [("h", k) for k in (1, 2, 3)] == [s for s, d in variables.edges if d == ("memory", None)]
    assert set(variables.edges[(("s", 1), ("α", 2))]) == {"Wa", "va"}


def test_the_folded_view_of_attention_has_the_memory_without_a_delay():
    source = viz.folded(rnn.EncoderDecoder(N_IN, H, N_OUT, attention="dot")).source
    ids = {line.split()[0]: line for line in source.splitlines() if "label=<" in line}
    memory = next(i for i, line in ids.items() if "label=<memory>" in line)
    alpha = next(i for i, line in ids.items() if "label=<α>" in line)
    assert any(line.strip().startswith(f"{memory} -> {alpha}") for line in source.splitlines())


def test_generation_with_attention_and_a_mask_reads_only_the_unpadded_source():
    model = _model("additive")
    rng = np.random.default_rng(9)
    xs = rng.integers(0, N_IN, (5, 2))
    mask = np.array([[1, 1], [1, 1], [1, 1], [0, 1], [0, 1]])
    changed = xs.copy()
    changed[3:, 0] = (changed[3:, 0] + 1) % N_IN
    assert np.array_equal(model.generate(xs, 4, mask=mask), model.generate(changed, 4, mask=mask))
    assert np.array_equal(model.generate(xs, 4, mask=mask)[:, 0], model.generate(xs[:3, 0], 4))


def test_an_unknown_attention_is_a_config_error():
    with pytest.raises(tg.ConfigError, match="attention must be one of"):
        rnn.EncoderDecoder(N_IN, H, N_OUT, attention="multiplicative")


def test_a_mask_of_the_wrong_shape_names_the_design_the_argument_and_the_shapes():
    model = _model("additive")
    xs = np.zeros((6, 4), dtype=int)
    with pytest.raises(tg.ShapeError, match=r"EncoderDecoder: mask .* \(n_x, B\) = \(6, 4\), "
                                            r"got \(5, 4\)"):
        model.loss(xs, np.zeros((3, 4), dtype=int), mask=np.ones((5, 4)))
    with pytest.raises(tg.ShapeError, match="EncoderDecoder: mask= .* needs a batch"):
        model.loss(np.zeros(6, dtype=int), np.zeros(3, dtype=int), mask=np.ones(6))


def test_attention_reverses_sequences_the_plain_encoder_decoder_cannot_at_the_same_budget():
    from rnn.tasks import ReverseTask, n_parameters
    tasks = {att: ReverseTask(0, hidden=24, lr=1e-2, length=10, n_symbols=6, attention=att)
             for att in (None, "dot")}
    assert n_parameters(tasks[None].model) == n_parameters(tasks["dot"].model)
    for task in tasks.values():
        for k in range(200):
            task.step(k)
    _, plain = tasks[None].accuracy()
    _, attending = tasks["dot"].accuracy()
    assert attending > 0.8 and plain < 0.2        # held-out whole sequences, greedy decoding


def test_attention_of_replayed_steps_asked_for_after_an_update_is_refused_not_recomputed():
    # the alpha(t) of replayed decoder steps are made when first asked for, from the model's
    # Wa, Ua and va: asked for after an SGD step (lr 0.5) they were those of the new
    # parameters, up to 0.0127 from the run's own, without a word
    model = _model("additive")
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, N_IN, (4, 2)), rng.integers(0, N_OUT, (6, 2))
    run = model.run_for_loss(xs, ys)
    assert run.replayed is not None
    run.loss.backward()
    tg.optim.SGD(model.parameters(), lr=0.5).step()
    with pytest.raises(tg.ConfigError, match=r"encdec.*attention.*Wa.*changed"):
        run.attention
    # read before the parameters change, they are the run's (as the reference's)
    model = _model("additive")
    _, _, alphas = ref.encoder_decoder_attention(
        {n: getattr(model, n).data for n in NAMES["additive"]}, xs, ys, model.start,
        "additive", None)
    run = model.run_for_loss(xs, ys)
    weights = np.stack([a.data for a in run.attention])
    model.Wa.data = model.Wa.data + 1.0        # after the first read: kept as made
    assert np.abs(np.stack([a.data for a in run.attention]) - alphas).max() <= 1e-14
    assert np.array_equal(np.stack([a.data for a in run.attention]), weights)


def test_attention_of_replayed_steps_asked_for_after_a_parameter_is_replaced_is_refused():
    # the check compared the values of the parameter objects the run read: a parameter
    # replaced by another object (model.Wa = tg.Parameter(...)) kept them, and the alpha(t)
    # of the replayed steps were made from the new one, off by 0.074, without a word
    model = _model("additive")
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, N_IN, (4, 2)), rng.integers(0, N_OUT, (6, 2))
    run = model.run_for_loss(xs, ys)
    assert run.replayed is not None
    model.Wa = tg.Parameter(model.Wa.data + 1.0, name="Wa")
    with pytest.raises(tg.ConfigError, match=r"encdec.*attention.*Wa.*changed"):
        run.attention


def test_attention_of_replayed_dot_steps_reads_no_parameter():
    # dot attention reads only the run's states: a later update changes nothing in it
    model = _model("dot")
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, N_IN, (4, 2)), rng.integers(0, N_OUT, (6, 2))
    _, _, alphas = ref.encoder_decoder_attention(
        {n: getattr(model, n).data for n in NAMES["dot"]}, xs, ys, model.start, "dot", None)
    run = model.run_for_loss(xs, ys)
    assert run.replayed is not None
    run.loss.backward()
    tg.optim.SGD(model.parameters(), lr=0.5).step()
    assert np.abs(np.stack([a.data for a in run.attention]) - alphas).max() <= 1e-14


def _replayed_attention_run(attention, replayable=True):
    model = _model(attention)
    model.replayable = replayable
    rng = np.random.default_rng(9)
    xs, ys = rng.integers(0, N_IN, (5, 2)), rng.integers(0, N_OUT, (8, 2))
    run = model.run_for_loss(xs, ys)
    assert (run.replayed is not None) == replayable
    return model, run


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_the_gradient_with_respect_to_a_replayed_steps_alpha_is_refused_not_zeros(attention):
    # tg.grad(run.loss, run.attention[t]) of a replayed decoder step was zeros (and
    # retain_grad left .grad None): the loss read the replay's own α, not the node made later
    _, plain = _replayed_attention_run(attention, replayable=False)
    expected = tg.grad(plain.loss, plain.attention[5], retain_graph=True)
    assert np.abs(expected).max() > 1e-3             # the loss does depend on α(6)
    _, run = _replayed_attention_run(attention)
    first, last = run.replayed
    assert first <= 6 <= last
    with pytest.raises(tg.BackwardError, match=r"grad: input 0: .*α\(6\).*replayable = False"):
        tg.grad(run.loss, run.attention[5])
    with pytest.raises(tg.BackwardError, match=r"retain_grad: .*α\(6\)"):
        run.attention[5].retain_grad()
    for t in range(1, first):                        # the steps run as engine ops: as before
        np.testing.assert_allclose(tg.grad(run.loss, run.attention[t - 1], retain_graph=True),
                                   tg.grad(plain.loss, plain.attention[t - 1],
                                           retain_graph=True), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_a_loss_on_the_attention_weights_of_replayed_steps_has_exact_gradients(attention):
    # what a user does with α(t): a penalty on the weights, back-propagated with the loss
    def penalised(replayable):
        model, run = _replayed_attention_run(attention, replayable)
        (run.loss + sum((a * a).sum() for a in run.attention) * 0.7).backward()
        return {n: getattr(model, n).grad for n in NAMES[attention]}
    replayed, plain = penalised(True), penalised(False)
    for name in NAMES[attention]:
        assert _relative(replayed[name], plain[name]) <= TOL, name
    model = _model(attention)
    model.replayable = True
    rng = np.random.default_rng(9)
    xs, ys = rng.integers(0, N_IN, (5, 2)), rng.integers(0, N_OUT, (8, 2))

    def penalty():
        run = model.run_for_loss(xs, ys)
        assert run.replayed is not None
        return sum((a * a).sum() for a in run.attention)
    assert _gradcheck_parameters(model, attention, penalty)


HOLED = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]])


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_a_source_mask_with_holes_equals_the_hand_written_bptt(attention):
    # holes (a kept step after a padded one) and a padded first step: the encoder carries its
    # state over them and α is 0 there, as the oracle's m(k) says
    model = _model(attention)
    rng = np.random.default_rng(11)
    xs, ys = rng.integers(0, N_IN, (6, 3)), rng.integers(0, N_OUT, (7, 3))
    alphas = _equals_the_oracle(model, attention, xs, ys, HOLED)
    run = model.run_for_loss(xs, ys, mask=HOLED)
    assert np.abs(np.stack([a.data for a in run.attention]) - alphas).max() <= 1e-14


@pytest.mark.parametrize("attention", [None, "additive", "dot"])
@pytest.mark.parametrize("floats", [False, True])
def test_a_source_mask_with_holes_equals_each_source_without_its_holes(attention, floats):
    model = _model(attention)
    rng = np.random.default_rng(12)
    xs = rng.normal(size=(6, 3, N_IN)) if floats else rng.integers(0, N_IN, (6, 3))
    ys = rng.integers(0, N_OUT, (5, 3))
    loss = model.loss(xs, ys, mask=HOLED)
    loss.backward()
    batched = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    alone = []
    for b in range(3):
        keep = HOLED[:, b].astype(bool)
        alone.append(model.loss(xs[keep, b], ys[:, b]))
    mean = sum(alone) / 3
    mean.backward()
    assert loss.item() == pytest.approx(mean.item(), rel=1e-13)
    for name, p in model.named_parameters():
        assert _relative(batched[name], p.grad) <= TOL, name
    generated = model.generate(xs, 4, mask=HOLED)
    for b in range(3):
        keep = HOLED[:, b].astype(bool)
        np.testing.assert_array_equal(generated[:, b], model.generate(xs[keep, b], 4))
