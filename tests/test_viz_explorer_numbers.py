"""viz.explore's numbers checked against other computations of them: a numpy forward pass
written here and its Jacobians by hand, or one run over a whole sequence of which the page shows
a later chunk.  Designs made of two chains (an encoder-decoder's encoder and decoder, which may
differ in length) and states carried from an earlier chunk, where the page's numbers could
belong to the wrong chain or the wrong step."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from rnn.diagnostics import part_nodes

EPS = 1e-6


def _encdec_states(P, xs, ys, n_out):
    """The encoder's h(1..n_x) and the decoder's s(1..n_y) of rnn.EncoderDecoder (no attention),
    in numpy: h(t) = tanh(b + W h(t-1) + U x(t)), C = h(n_x), s(0) = C,
    s(t) = tanh(bd + Wd s(t-1) + Ud y(t-1) + R C), y(0) the start id n_out."""
    h, hs = np.zeros(P["W"].shape[0]), []
    for x in xs:
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
        hs.append(h)
    C, s, ss = h, h, []
    for y_prev in [n_out] + list(ys[:-1]):
        s = np.tanh(P["bd"] + P["Wd"] @ s + P["Ud"][:, y_prev] + P["R"] @ C)
        ss.append(s)
    return np.array(hs), np.array(ss)


def _lag_norms(jacs, max_lag):
    """‖J(T) J(T-1) ... J(T-k+1)‖₂ for k = 1..max_lag: the lag decay of one end step, T."""
    out, product = [], np.eye(jacs.shape[1])
    for k in range(max_lag):
        product = product @ jacs[-1 - k]
        out.append(np.linalg.norm(product, 2))
    return np.array(out)


def test_an_encoder_decoder_whose_chains_differ_in_length_has_each_chains_own_jacobians():
    """n_x = 5, n_y = 3: the page crashed with "rnn.lag_decay: max_lag must be in 1..3, got 5"
    for part="s" (and "1..2, got 4" for part="h" with n_x = 2, n_y = 4): the lag decay was
    asked for lags up to the longer chain's length.  Each chain's Jacobians are its own,
    J(t) = diag(1 - v(t)²) W of its own states, and the lag decay runs over its own steps."""
    model = rnn.EncoderDecoder(4, 3, 4, seed=1)
    P = {n: p.data for n, p in model.named_parameters()}
    for part, xs, ys in (("s", [0, 1, 2, 3, 1], [1, 2, 3]), ("h", [2, 0], [1, 2, 3, 0])):
        xs, ys = np.array(xs), np.array(ys)
        hs, ss = _encdec_states(P, xs, ys, 4)
        chain, W = (ss, P["Wd"]) if part == "s" else (hs, P["W"])
        jacs = np.stack([(1 - v ** 2)[:, None] * W for v in chain])
        diag = viz.explore(model, xs, ys, part=part).data["bundles"][-1]["diag"]
        np.testing.assert_allclose(diag["spectra"]["norm"],
                                   [np.linalg.norm(J, 2) for J in jacs], rtol=1e-5)
        np.testing.assert_allclose(diag["spectra"]["radius"],
                                   [np.abs(np.linalg.eigvals(J)).max() for J in jacs], rtol=1e-5)
        assert diag["lag"]["lags"] == list(range(1, len(chain) + 1))
        np.testing.assert_allclose(diag["lag"]["norms"], _lag_norms(jacs, len(chain)), rtol=1e-5)


@pytest.mark.parametrize("model", [rnn.LeakyRNN(4, 3, 4, skip=2, seed=1),
                                   rnn.ConditionalRNN(4, 3, 4, seed=1),
                                   rnn.JordanRNN(4, 3, 4, seed=1)], ids=lambda m: m.name)
def test_the_next_chunk_of_truncated_bptt_is_shown_from_all_that_it_carries(model):
    """truncated_bptt returns an rnn.Carried where the next chunk reads more than the last state
    (a skip=2 net's h(t-2), a fed-back y(t-1)) and says to pass it back as h0=; the page refused
    it ("leaky: h0 has no state part 'h0'", "JordanRNN.run takes no h0="), and given only its
    last state it showed another run without a word (ConditionalRNN: L(1) = 1.825 where the
    sequence read on has 1.582).  It now starts the chunk from all of it: the page's L(t) and
    h(t) are those of steps 7..10 of one run over the whole sequence, and ∂L/∂h(t) that run's
    gradient of the chunk's loss terms."""
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 10), rng.integers(0, 4, 10)
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr=0.0))
    _, carried = rnn.truncated_bptt(trainer, xs[:6], ys[:6], chunk=3)
    assert isinstance(carried, rnn.Carried)
    bundle = viz.explore(model, xs[6:], ys[6:], h0=carried).data["bundles"][-1]
    whole = model.run(xs, ys)
    chunk_loss = whole.losses[6]
    for loss in whole.losses[7:]:
        chunk_loss = chunk_loss + loss
    np.testing.assert_allclose(bundle["loss"], chunk_loss.item(), rtol=1e-5)
    shown = bundle["vars"]["L"]["value"]
    np.testing.assert_allclose([shown[str(t)][0] for t in range(1, 5)],
                               [loss.item() for loss in whole.losses[6:]], rtol=1e-5)
    states = [node for t, node in sorted(part_nodes(whole, "h", "test").items()) if t > 6]
    grads = tg.grad(chunk_loss, states)
    for t in range(1, 5):
        np.testing.assert_allclose(bundle["vars"]["h"]["value"][str(t)], states[t - 1].data,
                                   rtol=1e-5, err_msg=t)
        np.testing.assert_allclose(bundle["vars"]["h"]["gnorm"][str(t)],
                                   np.linalg.norm(grads[t - 1]), rtol=1e-5, err_msg=t)


def test_an_encoder_decoders_saturation_is_each_chains_own_units():
    """Encoder step 2 and decoder step 2 are not the same time, yet the page's saturation at t=2
    was the fraction over the units of both (n_x = 5, n_y = 3, weights scaled by 3: 0.375 at
    t = 1 where the encoder has 0.25 and the decoder 0.5, and the encoder's own 0.5 at t = 4);
    it is one series per chain, each of its own units, checked against a numpy forward pass
    (tanh units with 1 - v² < 0.05)."""
    model = rnn.EncoderDecoder(4, 4, 4, seed=2)
    for p in model.parameters():
        p.data *= 3.0
    P = {n: p.data for n, p in model.named_parameters()}
    xs, ys = np.array([0, 1, 2, 3, 1]), np.array([1, 2, 3])
    hs, ss = _encdec_states(P, xs, ys, 4)
    saturation = viz.explore(model, xs, ys).data["bundles"][-1]["diag"]["saturation"]
    assert sorted(saturation) == ["decoder", "encoder"]
    np.testing.assert_allclose(saturation["encoder"], np.mean(1 - hs ** 2 < 0.05, axis=1))
    assert saturation["decoder"][3:] == [None, None]          # the decoder has no step 4 or 5
    np.testing.assert_allclose(saturation["decoder"][:3], np.mean(1 - ss ** 2 < 0.05, axis=1))


def _elman_losses(P, xs, ys, h):
    """L(t) = -log softmax(c + V h(t))[y(t)] of an ElmanRNN from h(0) = ``h``, in numpy."""
    out = []
    for x, y in zip(xs, ys):
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
        o = P["c"] + P["V"] @ h
        out.append(np.log(np.exp(o - o.max()).sum()) + o.max() - o[y])
    return np.array(out)


def test_the_parameters_before_training_run_from_the_same_carried_state():
    """A state carried undetached from an earlier run and before=... made the page fail with
    "StaleGraphError: backward: a Parameter 'W' was changed in place": the before-training run
    swapped the parameters in place and its sweep went on into the earlier run's graph.  That
    run starts from the same values, a leaf: its L(t) are a numpy forward pass's with the
    parameters before training, and the page's own run (after) is unchanged."""
    model, earlier = rnn.ElmanRNN(4, 3, 4, seed=1), rnn.ElmanRNN(4, 3, 4, seed=5)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 8), rng.integers(0, 4, 8)
    last = model.run(xs[:4], ys[:4]).last                   # undetached: the earlier run behind
    page = viz.explore(model, xs[4:], ys[4:], h0=last, before=earlier.state_dict())
    before, after = page.data["bundles"]
    for bundle, params in ((before, earlier), (after, model)):
        P = {n: p.data for n, p in params.named_parameters()}
        losses = _elman_losses(P, xs[4:], ys[4:], last.data)
        np.testing.assert_allclose([bundle["vars"]["L"]["value"][str(t)][0] for t in range(1, 5)],
                                   losses, rtol=1e-5)
        np.testing.assert_allclose(bundle["loss"], losses.sum(), rtol=1e-5)
    assert before["vars"]["h"]["gnorm"]["0"] is not None       # ∂L/∂h(0) still shown


def _inputs_of_step(page, t):
    """The names of the inputs made outside step t that its op-level DAG draws."""
    import html
    import re
    bundle = page.data["bundles"][-1]
    svg = page.data["templates"][bundle["ops"][str(t)]["template"]]
    return {html.unescape(x) for x in re.findall(r'fill="#dbe9f6".*?<text[^>]*>([^<]*)</text>',
                                                  svg, flags=re.S)}


def test_the_op_level_dag_names_a_carried_state_h0_and_another_runs_states_for_what_they_are():
    """Step 1's op-level DAG named a state carried undetached from an earlier run of 4 steps
    "h (t+3)" (that run's h(4), read as this run's step 4) where it is this run's h(0): it is
    "h (t-1)", as the same state given as numbers is; a tensor of another computation (here an
    earlier run's h(2), mixed into the state) is named for its own scope, as its variable is."""
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 8), rng.integers(0, 4, 8)
    earlier = model.run(xs[:4], ys[:4])
    last = earlier.last
    carried = _inputs_of_step(viz.explore(model, xs[4:], ys[4:], h0=last), 1)
    assert "h (t-1)" in carried and not any("(t+" in name for name in carried)
    assert carried == _inputs_of_step(viz.explore(model, xs[4:], ys[4:], h0=last.data), 1)
    other = earlier.parts["h"][1]                                # scope "elman/t=2"
    W = tg.Parameter(np.eye(3) * 0.5, name="W")
    cell = rnn.Recurrence(lambda h: (h @ W.T + other).tanh(), [W], 3, name="cell")
    page = viz.explore(cell, None, None, h0=np.zeros(3), steps=3)
    names = _inputs_of_step(page, 2)
    assert f"h@{other.scope}" in names and f"h@{other.scope}" in page.data["names"]
    assert not any(name.startswith("h (t") and name != "h (t-1)" for name in names)


def test_the_saturation_at_steps_with_nan_units_is_no_number_and_a_note_says_so():
    # a NaN in x(3): every unit of step 3 on is NaN, which the page showed as 0.0 saturated
    # (1 - NaN² < tol is False), a finite number for steps that have none
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    xs[2, 0] = np.nan
    elman = rnn.ElmanRNN(3, 4, 3, seed=1)
    with np.errstate(invalid="ignore"):
        diag = viz.explore(elman, xs, ys).data["bundles"][-1]["diag"]
        want = rnn.saturation(elman, xs, ys)
    assert diag["saturation"][:2] == want[:2].tolist() and diag["saturation"][2:] == [None] * 4
    assert any("NaN at 4 step(s) (first t=3)" in n for n in diag["notes"])
    # two chains: the decoder starts from C = h(6), NaN, so none of its steps has a number
    with np.errstate(invalid="ignore"):
        diag = viz.explore(rnn.EncoderDecoder(3, 4, 3, seed=1), xs, ys[:5]
                           ).data["bundles"][-1]["diag"]
    assert diag["saturation"]["encoder"][2:] == [None] * 4
    assert None not in diag["saturation"]["encoder"][:2]
    assert diag["saturation"]["decoder"] == [None] * 5 + [None]    # 5 steps; 6th: none there
    assert any("in the decoder at 5 step(s) (first t=1), in the encoder at 4 step(s) (first t=3)"
               in n for n in diag["notes"])


def test_the_lag_decay_of_units_at_exactly_one_is_zero_not_a_fitted_rate_of_one():
    # float32 tanh units at exactly ±1 have Jacobians of exactly 0 (t = 11, 12): the page showed
    # every lag's norm as 2.22507e-308 and the fitted rate 1.0, which it calls "exploding"
    model = rnn.ElmanRNN(5, 4, 4, seed=1, dtype=np.float32)
    model.W.data *= 30
    model.U.data *= 30
    rng = np.random.default_rng(0)
    ids, ys = rng.integers(0, 5, 12), rng.integers(0, 4, 12)
    jacs = rnn.jacobians(model, ids, ys=ys)
    assert (jacs[-1] == 0).all()
    lag = viz.explore(model, ids, ys).data["bundles"][-1]["diag"]["lag"]
    assert lag["norms"] == [0.0] * 12 and lag["rate"] == 0.0 and lag["scale"] is None


def test_the_explorer_shows_the_run_the_loss_computes_and_says_which():
    # viz.explore ran model.run(xs, ys) only: a model trained on padded batches or running
    # free was shown unmasked and teacher-forced, its page saying neither.  The run's options
    # are now explore's keyword arguments, and the notes say what run the numbers are of
    import bptt_reference as ref
    rng = np.random.default_rng(9)
    xs, ys = rng.normal(size=(5, 2, 3)), rng.integers(0, 2, (5, 2))
    mask = (np.arange(5)[:, None] < np.array([5, 2])).astype(int)
    elman = rnn.ElmanRNN(3, 4, 2, seed=0)
    page = viz.explore(elman, xs, ys, mask=mask).data["bundles"][-1]
    want = ref.elman(elman.state_dict(), xs, ys, mask=mask)[0]
    assert abs(float(page["loss"]) - want) < 1e-4 * abs(want)        # the page's 6 digits
    assert any(n.startswith("masked: the padded steps") for n in page["diag"]["notes"])
    jordan = rnn.JordanRNN(3, 4, 2, seed=0)
    free = viz.explore(jordan, xs, ys, teacher_forcing=False).data["bundles"][-1]
    want = ref.jordan(jordan.state_dict(), xs, ys, teacher_forcing=False)[0]
    assert abs(float(free["loss"]) - want) < 1e-4 * abs(want)
    assert any(n.startswith("running free: jordan is fed its own output") for n in free["diag"]["notes"])
    forced = viz.explore(jordan, xs, ys).data["bundles"][-1]
    want = ref.jordan(jordan.state_dict(), xs, ys)[0]
    assert abs(float(forced["loss"]) - want) < 1e-4 * abs(want)
    assert any(n.startswith("teacher-forced: jordan is fed the target") for n in forced["diag"]["notes"])
    assert not any("teacher-forced" in n or "masked" in n
                   for n in viz.explore(elman, xs, ys).data["bundles"][-1]["diag"]["notes"])
    # a vector-to-sequence net on the squared error decoding free on o(t-1) itself
    v2s = rnn.VectorToSequence(3, 4, 2, seed=0, criterion="squared_error")
    x, targets = rng.normal(size=(2, 3)), rng.normal(size=(5, 2, 2))
    page = viz.explore(v2s, x, targets, feedback="output").data["bundles"][-1]
    want = ref.vector_to_sequence_regression(v2s.state_dict(), x, targets, free=True)[0]
    assert abs(float(page["loss"]) - want) < 1e-4 * abs(want)
    assert any("no Jacobians" in n for n in page["diag"]["notes"])


def test_the_explorer_of_a_masked_encoder_decoder_counts_the_encoders_kept_rows():
    # the mask of an EncoderDecoder pads its source: the explorer counted every row's units,
    # padded ones too, with a note saying so ("the mask pads one of this model's chains");
    # the encoder's saturation is now that of its kept rows (numpy below), the decoder's of
    # every row, and the note says what the mask pads
    model = rnn.EncoderDecoder(4, 3, 4, seed=2)
    with tg.no_grad():
        model.U.data, model.W.data = model.U.data * 4, model.W.data * 4     # some saturate
    rng = np.random.default_rng(5)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (4, 2))
    mask = np.array([[1, 1], [1, 0], [1, 1], [1, 0], [1, 0], [1, 0]])
    page = viz.explore(model, xs, ys, mask=mask).data["bundles"][-1]
    P = model.state_dict()
    h, want = np.zeros((2, 3)), []
    for t in range(6):
        cand = np.tanh(P["b"] + h @ P["W"].T + P["U"][:, xs[t]].T)
        want.append(np.mean((1 - cand[mask[t] > 0] ** 2) < 0.05))
        h = np.where(mask[t][:, None] > 0, cand, h)
    np.testing.assert_allclose(page["diag"]["saturation"]["encoder"], want, atol=1e-6)
    notes = page["diag"]["notes"]
    assert any(n.startswith("masked: the mask pads the source") for n in notes)
    assert not any("padded ones too" in n for n in notes)
