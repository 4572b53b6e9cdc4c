"""criterion="squared_error" for the designs that feed their output back (JordanRNN,
ConditionalRNN, VectorToSequence, EncoderDecoder): float targets (T, n_out) or (T, B, n_out),
L(t) = (1/B) sum_b ||o_b(t) - y_b(t)||^2 summed over t.  What is fed back is a float vector:
the target y(t-1) itself under teacher forcing, o(t-1) itself running free (Jordan's
``teacher_forcing=False``, ``feedback="output"`` for every one of them), a zero vector (or a
float y0) before step 1.  Loss and every gradient equal an independent numpy forward + BPTT
(tests/bptt_reference.py), on both paths (``loss``, replayed; ``run``, per step); ``Trainer``,
``truncated_bptt``, save/load and the explorer work; ids where vectors belong are errors that
say so."""

import numpy as np
import pytest

import bptt_reference as ref
import rnn
import tinygraph as tg
import viz

N_IN, H, K, T, B = 3, 4, 2, 7, 3      # T = 7: the loss path replays steps 2..7 (rnn.replay)
MASK = np.array([[1, 1, 1]] * 4 + [[1, 0, 1]] * 2 + [[1, 0, 0]])
TIGHT = dict(rtol=1e-12, atol=1e-13)


def _data(seed=0, steps=T):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, B, N_IN)), rng.normal(size=(steps, B, K))


def _params(model):
    return {n: p.data.copy() for n, p in model.named_parameters()}


def _engine(model, loss):
    names = [n for n, _ in model.named_parameters()]
    grads = tg.grad(loss, [p for _, p in model.named_parameters()])
    return loss.item(), dict(zip(names, grads))


def _agree(model, expected, *losses):
    """Each loss (a Tensor of ``model``'s parameters) and its gradients equal the reference."""
    value, grads = expected
    for loss in losses:
        got, engine = _engine(model, loss)
        assert got == pytest.approx(value, rel=1e-13)
        for name, g in engine.items():
            np.testing.assert_allclose(g, grads[name], err_msg=name, **TIGHT)


# ---------------------------------------------------------------- loss and gradients: BPTT


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_jordan_matches_a_numpy_bptt_taught_and_free(batched, teacher_forcing):
    model = rnn.JordanRNN(N_IN, H, K, seed=1, criterion="squared_error")
    xs, ys = _data()
    mask = MASK if batched else None
    if not batched:
        xs, ys = xs[:, 0], ys[:, 0]
    expected = ref.jordan_regression(_params(model), xs, ys, mask=mask,
                                     teacher_forcing=teacher_forcing)
    _agree(model, expected,
           model.loss(xs, ys, mask=mask, teacher_forcing=teacher_forcing),
           model.run(xs, ys, mask=mask, teacher_forcing=teacher_forcing).loss)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("free", [False, True])
def test_conditional_matches_a_numpy_bptt_taught_and_free(batched, free):
    model = rnn.ConditionalRNN(N_IN, H, K, seed=2, criterion="squared_error")
    xs, ys = _data(1)
    rng = np.random.default_rng(5)
    h0, y0 = rng.normal(size=H), rng.normal(size=K)
    mask = MASK if batched else None
    if not batched:
        xs, ys = xs[:, 0], ys[:, 0]
    expected = ref.conditional_regression(_params(model), xs, ys, h0=h0, mask=mask, y0=y0,
                                          free=free)
    feedback = "output" if free else None
    runs = [model.run(xs, ys, h0=h0, mask=mask, y0=y0, feedback=feedback).loss,
            model.run(xs, ys, h0=h0, mask=mask, y0=y0, feedback=feedback, per_step=False).loss]
    if not free:
        runs.append(model.loss(xs, ys, h0=h0, mask=mask, y0=y0))
    _agree(model, expected, *runs)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("free", [False, True])
@pytest.mark.parametrize("h0_from_x", [False, True])
def test_vector_to_sequence_matches_a_numpy_bptt_taught_and_free(batched, free, h0_from_x):
    model = rnn.VectorToSequence(N_IN, H, K, seed=3, h0_from_x=h0_from_x,
                                 criterion="squared_error")
    xs, ys = _data(2)
    x = xs[0] if batched else xs[0, 0]
    if not batched:
        ys = ys[:, 0]
    expected = ref.vector_to_sequence_regression(_params(model), x, ys, free=free)
    feedback = "output" if free else None
    runs = [model.run(x, ys, feedback=feedback).loss,
            model.run(x, ys, feedback=feedback, per_step=False).loss]
    if not free:
        runs.append(model.loss(x, ys))
    _agree(model, expected, *runs)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("free", [False, True])
def test_encoder_decoder_matches_a_numpy_bptt_taught_and_free(batched, free):
    model = rnn.EncoderDecoder(N_IN, H, K, seed=4, criterion="squared_error")
    assert model.Ud.shape == (H, K) and model.start is None      # no start symbol: y(0) = 0
    xs, ys = _data(3)
    ys = ys[:5]                               # n_y = 5 decoder steps from n_x = 7 inputs
    mask = MASK if batched else None          # the padded sources: C at each one's own end
    if not batched:
        xs, ys = xs[:, 0], ys[:, 0]
    expected = ref.encoder_decoder_regression(_params(model), xs, ys, mask=mask, free=free)
    feedback = "output" if free else None
    runs = [model.run(xs, ys, mask=mask, feedback=feedback).loss,
            model.run(xs, ys, mask=mask, feedback=feedback, per_step=False).loss]
    if not free:
        runs.append(model.loss(xs, ys, mask=mask))
    _agree(model, expected, *runs)


def test_the_gradient_reaches_a_float_y0_as_the_reference_says():
    # f(0) given as a Tensor (what truncated BPTT carries, here undetached): its gradient is
    # the reference's, summed over the batch where one (K,) serves every sequence
    xs, ys = _data(6)
    for make, reference, kw in (
            (rnn.JordanRNN, ref.jordan_regression, {"teacher_forcing": False}),
            (rnn.ConditionalRNN, ref.conditional_regression, {"free": True}),
            (rnn.ConditionalRNN, ref.conditional_regression, {})):
        model = make(N_IN, H, K, seed=7, criterion="squared_error")
        free = kw.get("free") or kw.get("teacher_forcing") is False
        how = ({"teacher_forcing": False} if make is rnn.JordanRNN
               else {"feedback": "output"} if free else {})
        for value in (np.linspace(-1, 1, K), np.linspace(-1, 1, B * K).reshape(B, K)):
            expected = reference(_params(model), xs, ys, mask=MASK, y0=value, **kw)[1]["y0"]
            for per_step in (True, False):        # taught, False is the batched loss path
                y0 = tg.tensor(value, requires_grad=True)
                loss = model.run(xs, ys, mask=MASK, y0=y0, per_step=per_step, **how).loss
                np.testing.assert_allclose(tg.grad(loss, y0),
                                           expected if value.ndim == 2 else expected.sum(0),
                                           **TIGHT)


# ---------------------------------------------------------------- finite differences


FOUR = {
    "JordanRNN": (lambda: rnn.JordanRNN(2, 3, 2, seed=1, criterion="squared_error"),
                  lambda m, xs, ys: m.run(xs, ys, mask=MASK[:4, :2], teacher_forcing=False).loss),
    "ConditionalRNN": (lambda: rnn.ConditionalRNN(2, 3, 2, seed=1, criterion="squared_error"),
                       lambda m, xs, ys: m.run(xs, ys, mask=MASK[:4, :2],
                                               feedback="output").loss
                       + m.loss(xs, ys, mask=MASK[:4, :2])),
    "VectorToSequence": (lambda: rnn.VectorToSequence(2, 3, 2, seed=1, h0_from_x=True,
                                                      criterion="squared_error"),
                         lambda m, xs, ys: m.run(xs[0], ys, feedback="output").loss
                         + m.loss(xs[0], ys)),
    "EncoderDecoder": (lambda: rnn.EncoderDecoder(2, 3, 2, seed=1, attention="additive",
                                                  criterion="squared_error"),
                       lambda m, xs, ys: m.run(xs, ys[:3], feedback="output").loss
                       + m.loss(xs, ys[:3], mask=MASK[:4, :2])),
}


@pytest.mark.parametrize("design", sorted(FOUR))
def test_gradients_match_finite_differences(design):
    make, loss_of = FOUR[design]
    model = make()
    rng = np.random.default_rng(8)
    xs, ys = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2, 2))
    # gradcheck moves each parameter's entries in place; the model reads them as they are
    assert tg.gradcheck(lambda *params: loss_of(model, xs, ys), model.parameters(), rtol=1e-6)


# ---------------------------------------------------------------- running free


def test_running_free_feeds_o_itself_not_its_softmax():
    xs, _ = _data(9)
    cond = rnn.ConditionalRNN(N_IN, H, K, seed=5, criterion="squared_error")
    run = cond.run(xs, feedback="output")
    P = _params(cond)
    h, f = np.zeros((B, H)), np.zeros((B, K))
    for t in range(T):
        h = np.tanh(P["b"] + h @ P["W"].T + xs[t] @ P["U"].T + f @ P["R"].T)
        np.testing.assert_allclose(run.states[t].data, h, **TIGHT)
        f = run.outputs[t].data                        # o(t) itself feeds step t+1
        np.testing.assert_allclose(f, P["c"] + h @ P["V"].T, **TIGHT)
    assert run.feedback is run.outputs[-1]             # what a next chunk would read

    jordan = rnn.JordanRNN(N_IN, H, K, seed=5, criterion="squared_error")
    for run in (jordan.run(xs, teacher_forcing=False), jordan.run(xs, feedback="output")):
        P, f = _params(jordan), np.zeros((B, K))
        for t in range(T):
            o = P["c"] + np.tanh(P["b"] + f @ P["W"].T + xs[t] @ P["U"].T) @ P["V"].T
            np.testing.assert_allclose(run.outputs[t].data, o, **TIGHT)
            f = o
    assert np.array_equal(jordan(xs)[0][-1].data, run.outputs[-1].data)   # __call__: free

    for model, call in ((rnn.VectorToSequence(N_IN, H, K, criterion="squared_error"),
                         lambda m: m.run(xs[0], steps=4, feedback="output")),
                        (rnn.EncoderDecoder(N_IN, H, K, criterion="squared_error"),
                         lambda m: m.run(xs, steps=4, feedback="output"))):
        run = call(model)
        again = call(model).outputs
        assert len(run.outputs) == 4 and run.outputs[0].shape == (B, K)
        # the same run teacher-forced on its own outputs gives the same outputs
        forced = model.run(*([xs[0]] if model.name == "vec2seq" else [xs]),
                           np.stack([o.data for o in run.outputs]))
        for a, b, c in zip(run.outputs, forced.outputs, again):
            np.testing.assert_allclose(a.data, b.data, **TIGHT)
            assert np.array_equal(a.data, c.data)


# ---------------------------------------------------------------- training


def _trained(model, args, steps=60, lr=0.05):
    trainer = rnn.Trainer(model, lr=lr)
    first = model.loss(*args).item()
    for _ in range(steps):
        trainer.step(*args)
    return first, model.loss(*args).item()


@pytest.mark.parametrize("design", sorted(FOUR))
def test_the_trainer_fits_a_small_regression_problem(design):
    rng = np.random.default_rng(10)
    xs = rng.normal(size=(5, 4, 2))
    ys = np.tanh(np.cumsum(xs, axis=0))           # a target the recurrence can carry
    model = FOUR[design][0]()
    args = (xs[0], ys) if design == "VectorToSequence" else (xs, ys)
    first, last = _trained(model, args)
    assert last < 0.5 * first


def test_truncated_bptt_carries_the_fed_back_target_vector_across_chunks():
    xs, ys = _data(11, steps=6)
    for make in (rnn.JordanRNN, rnn.ConditionalRNN):
        model = make(N_IN, H, K, seed=2, criterion="squared_error")
        whole = model.loss(xs, ys).item()
        losses, carried = rnn.truncated_bptt(rnn.Trainer(model, lr=0.0), xs, ys, chunk=4)
        assert sum(loss * n for loss, n in zip(losses, (4, 2))) == pytest.approx(whole,
                                                                                 rel=1e-13)
        assert np.array_equal(carried["y0"], ys[-1])      # the target vector y(T) itself
        assert rnn.stream_loss(model, xs, ys, chunk=2) == pytest.approx(whole / 6, rel=1e-13)
        # a chunk that forgot y(t-1) (f(0) = 0 again) would compute another loss
        second = model.loss(xs[4:], ys[4:], **({"h0": model.run(xs[:4], ys[:4]).last.data}
                                                if make is rnn.ConditionalRNN else {}))
        assert second.item() != pytest.approx(losses[1] * 2, rel=1e-6)


def test_padded_sequences_carry_each_ones_last_target_vector():
    xs, ys = _data(12)
    mask = np.array([[1, 1, 1]] * 3 + [[1, 0, 1]] + [[1, 0, 0]] * 3)
    model = rnn.ConditionalRNN(N_IN, H, K, seed=3, criterion="squared_error")
    for run in (model.run(xs, ys, mask=mask), model.run_for_loss(xs, ys, mask=mask)):
        carried = model.carry(run)       # what a next chunk would read as y(t-1)
        assert np.array_equal(carried["y0"].data, np.stack([ys[6, 0], ys[2, 1], ys[3, 2]]))


# ---------------------------------------------------------------- save, load, views, explorer


@pytest.mark.parametrize("design", sorted(FOUR))
def test_save_and_load_keep_the_criterion(design, tmp_path):
    make = FOUR[design][0]
    model = make()
    assert model.own_config()["criterion"] == "squared_error"
    path = tmp_path / "m.npz"
    model.save(path)
    other = make()
    for p in other.parameters():
        p.data[...] = 0.5
    other.load(path)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(model.parameters(),
                                                                 other.parameters()))
    kind = getattr(rnn, design)
    sizes = (2, 3, 2)
    classifier = kind(*sizes, seed=1, **({"attention": "additive"} if design == "EncoderDecoder"
                                         else {"h0_from_x": True}
                                         if design == "VectorToSequence" else {}))
    # the classifier's decoder reads a start symbol too (Ud (H, K + 1)): the criterion is
    # named all the same, not Ud's shape (it said "entry 'Ud': it has shape (3, 2)")
    said = "criterion='squared_error', the model criterion='cross_entropy'"
    with pytest.raises(tg.CheckpointError, match=said):
        classifier.load(path)


def test_the_views_and_the_explorer_draw_them():
    xs, ys = _data(13)
    for model in (rnn.JordanRNN(N_IN, H, K, criterion="squared_error"),
                  rnn.ConditionalRNN(N_IN, H, K, criterion="squared_error"),
                  rnn.VectorToSequence(N_IN, H, K, criterion="squared_error"),
                  rnn.EncoderDecoder(N_IN, H, K, criterion="squared_error")):
        assert "L</td>" in viz.unrolled(model).source
        assert "label=<V>" in viz.folded(model).source
    model = rnn.ConditionalRNN(N_IN, H, K, criterion="squared_error")
    explorer = viz.explore(model, xs[:, :1], ys[:, :1])
    assert explorer.data["steps"] == T and {"L", "y", "h"} <= set(explorer.data["names"])
    decoder = rnn.EncoderDecoder(N_IN, H, K, criterion="squared_error")
    page = viz.explore(decoder, xs[:, :1], ys[:4, :1])
    classes = viz.explore(rnn.EncoderDecoder(N_IN, H, K), xs[:, :1], np.zeros((4, 1), int))
    assert page.data["steps"] == classes.data["steps"] and "L" in page.data["names"]


# ---------------------------------------------------------------- errors


def test_ids_where_vectors_belong_name_the_design_the_criterion_and_the_shapes():
    xs, ys = _data()
    ids = np.zeros((T, B), dtype=np.int64)
    for model in (rnn.JordanRNN, rnn.ConditionalRNN, rnn.VectorToSequence, rnn.EncoderDecoder):
        m = model(N_IN, H, K, criterion="squared_error")
        inputs = xs[0] if model is rnn.VectorToSequence else xs
        with pytest.raises(tg.DTypeError, match=rf"{m.name}: this {model.__name__} has "
                                                r"criterion='squared_error', which takes float "
                                                rf"targets ys of shape \(7, 3, 2\); got integer "
                                                r"ids of shape \(7, 3\)"):
            m.loss(inputs, ids)
        with pytest.raises(tg.ShapeError, match=r"must have shape \(7, 3, 2\), got \(7, 3, 1\)"):
            m.loss(inputs, ys[..., :1])
    with pytest.raises(tg.DTypeError, match=r"conditional: ys are floats .* shape \(7, 3, 2\).* "
                                            r"ConditionalRNN's criterion is cross_entropy.*"
                                            r"\(7, 3\).*criterion='squared_error'"):
        rnn.ConditionalRNN(N_IN, H, K).loss(xs, ys)


def test_an_id_y0_with_the_squared_error_is_refused():
    xs, ys = _data()
    for model in (rnn.JordanRNN(N_IN, H, K, criterion="squared_error"),
                  rnn.ConditionalRNN(N_IN, H, K, criterion="squared_error")):
        with pytest.raises(tg.DTypeError, match=rf"{model.name}: this {type(model).__name__} "
                                                r"has criterion='squared_error', so y0 .* float "
                                                r"vector of shape \(2,\) or \(3, 2\); got dtype "
                                                r"int64 of shape \(\)"):
            model.loss(xs, ys, y0=np.int64(1))
        with pytest.raises(tg.ShapeError, match=r"y0 as outputs \(floats\) must have shape"):
            model.loss(xs, ys, y0=np.zeros(3))


def test_sampling_ids_from_a_regression_model_is_a_config_error():
    xs, ys = _data()
    sampler = rnn.Sampler(0.0)
    for model, generate, sample in (
            (rnn.JordanRNN, lambda m: m.generate(xs), lambda m: m.run(xs, feedback=sampler)),
            (rnn.ConditionalRNN, lambda m: m.generate(xs),
             lambda m: m.run(xs, feedback=sampler)),
            (rnn.VectorToSequence, lambda m: m.generate(xs[0], 3),
             lambda m: m.run(xs[0], steps=3, feedback=sampler)),
            (rnn.EncoderDecoder, lambda m: m.generate(xs, 3),
             lambda m: m.run(xs, steps=3, feedback=sampler))):
        m = model(N_IN, H, K, criterion="squared_error")
        with pytest.raises(tg.ConfigError, match=rf"{model.__name__}.generate: samples class ids "
                                                 r".*criterion='squared_error'"):
            generate(m)
        with pytest.raises(tg.ConfigError, match=rf"{m.name}: feedback= a Sampler picks class "
                                                 rf"ids .* this {model.__name__} has "
                                                 r"criterion='squared_error'.*feedback='output'"):
            sample(m)
        assert sampler.picked == []
        classifier = model(N_IN, H, K)     # o(t) are logits: nothing to feed back as is
        inputs = xs[0] if model is rnn.VectorToSequence else xs
        steps = {} if model in (rnn.JordanRNN, rnn.ConditionalRNN) else {"steps": 3}
        with pytest.raises(tg.ConfigError, match=rf"{m.name}: feedback='output' .* this "
                                                 rf"{model.__name__} has "
                                                 r"criterion='cross_entropy'"):
            classifier.run(inputs, feedback="output", **steps)


def test_without_targets_the_error_says_how_to_run_free():
    xs, _ = _data()
    for model, call in ((rnn.ConditionalRNN, lambda m: m.run(xs)),
                        (rnn.VectorToSequence, lambda m: m.run(xs[0])),
                        (rnn.EncoderDecoder, lambda m: m.run(xs))):
        m = model(N_IN, H, K, criterion="squared_error")
        with pytest.raises(tg.ConfigError, match=rf"{m.name}: give the targets ys \(or "
                                                 r"(steps= and )?feedback='output'\)"):
            call(m)
        with pytest.raises(tg.ConfigError, match=r"\(or (steps= and )?a feedback sampler\)"):
            call(model(N_IN, H, K))


def test_another_string_as_feedback_is_a_config_error_not_a_type_error():
    # it was called as a Sampler: TypeError 'str' object is not callable, deep in the unroll
    xs, _ = _data()
    for criterion in ("cross_entropy", "squared_error"):
        model = rnn.ConditionalRNN(N_IN, H, K, criterion=criterion)
        with pytest.raises(tg.ConfigError, match=r"conditional: feedback must be a Sampler .* or "
                                                 r"'output' .*, got 'outputs'"):
            model.run(xs, feedback="outputs")


def test_the_diagnostics_ask_for_float_targets():
    xs, _ = _data()
    with pytest.raises(tg.ConfigError, match=r"ys=ys\) \(float vectors as model.loss takes"):
        rnn.jacobians(rnn.ConditionalRNN(N_IN, H, K, criterion="squared_error"), xs[:, :1])


def test_an_unknown_criterion_is_a_config_error():
    for model in (rnn.JordanRNN, rnn.ConditionalRNN, rnn.VectorToSequence, rnn.EncoderDecoder):
        with pytest.raises(tg.ConfigError, match=rf"{model.__name__}: criterion must be one of"):
            model(N_IN, H, K, criterion="mse")
