"""LSTM, GRU (section 10.10), the bidirectional RNN (figure 10.11) and the encoder-decoder
(figure 10.12): the contract's parameters, gradients equal to an independent hand-written
numpy BPTT, the batched loss equal to the per-step run, scopes of real time steps, views,
truncated BPTT where causal, and checkpoints."""

import re

import numpy as np
import pytest

import bptt_reference as ref
import rnn
import tinygraph as tg
import viz

N_IN, H, N_OUT = 3, 4, 5


def _arrays(model):
    return {k: v.data for k, v in model.named_parameters()}


def _assert_exact(loss, model, expected):
    """The loss to 1e-12 and every gradient entry to 1e-9 relative of the oracle's."""
    expected_loss, expected_grads = expected
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    names, params = zip(*model.named_parameters())
    for name, g in zip(names, tg.grad(loss, list(params))):
        np.testing.assert_allclose(g, expected_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


def _ids(steps, batch, n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, (steps,) if batch is None else (steps, batch))


def _mask(steps, batch):
    mask = np.ones((steps, batch), dtype=int)
    mask[-2:, 0] = 0            # the first sequence is two steps shorter
    mask[-1, -1] = 0
    return mask


def _inputs(kind, steps, batch, seed=1):
    if kind == "ids":
        return _ids(steps, batch, N_IN, seed)
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, N_IN) if batch is None else (steps, batch, N_IN))


# ------------------------------------------------------------------ the contract

def test_lstm_has_the_book_gates_and_spec_shapes():
    m = rnn.LSTM(N_IN, H, N_OUT)
    shapes = {n: p.shape for n, p in m.named_parameters()}
    for gate in ("f", "g", "o", ""):
        assert shapes.pop(f"U{gate}") == (H, N_IN)
        assert shapes.pop(f"W{gate}") == (H, H)
        assert shapes.pop(f"b{gate}") == (H,)
    assert shapes == {"V": (N_OUT, H), "c": (N_OUT,)}
    assert m.parts == {"s": H, "h": H}
    np.testing.assert_array_equal(m.bf.data, np.ones(H))      # a forget-gate bias of 1


def test_gru_has_the_update_and_reset_gates_and_spec_shapes():
    m = rnn.GRU(N_IN, H, N_OUT)
    assert {n: p.shape for n, p in m.named_parameters()} == {
        "Uu": (H, N_IN), "Wu": (H, H), "bu": (H,), "Ur": (H, N_IN), "Wr": (H, H), "br": (H,),
        "U": (H, N_IN), "W": (H, H), "b": (H,), "V": (N_OUT, H), "c": (N_OUT,)}


def test_bidirectional_reads_both_chains_through_one_output_matrix():
    m = rnn.BidirectionalRNN(N_IN, H, N_OUT)
    assert {n: p.shape for n, p in m.named_parameters()} == {
        "U": (H, N_IN), "W": (H, H), "b": (H,), "Ug": (H, N_IN), "Wg": (H, H), "bg": (H,),
        "V": (N_OUT, 2 * H), "c": (N_OUT,)}


def test_encoder_decoder_parameters():
    m = rnn.EncoderDecoder(N_IN, H, N_OUT)
    assert {n: p.shape for n, p in m.named_parameters()} == {
        "U": (H, N_IN), "W": (H, H), "b": (H,), "Ud": (H, N_OUT + 1), "Wd": (H, H),
        "R": (H, H), "bd": (H,), "V": (N_OUT, H), "c": (N_OUT,)}
    assert m.start == N_OUT


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_an_unknown_candidate_is_refused(cls):
    with pytest.raises(tg.ConfigError, match="candidate must be one of"):
        cls(N_IN, H, N_OUT, candidate="relu")


# ------------------------------------------------------------------ exact gradients

@pytest.mark.parametrize("cls, oracle", [(rnn.LSTM, ref.lstm), (rnn.GRU, ref.gru)])
@pytest.mark.parametrize("batch, masked", [(None, False), (1, False), (3, False), (3, True)])
@pytest.mark.parametrize("form", ["loss", "run"])
def test_gated_designs_equal_hand_written_bptt(cls, oracle, batch, masked, form):
    m = cls(N_IN, H, N_OUT, seed=2)
    xs, ys = _inputs("ids", 6, batch), _ids(6, batch, N_OUT, 3)
    mask = _mask(6, batch) if masked else None
    loss = m.loss(xs, ys, mask=mask) if form == "loss" else m.run(xs, ys, mask=mask).loss
    _assert_exact(loss, m, oracle(_arrays(m), xs, ys, mask=mask))


@pytest.mark.parametrize("cls, oracle", [(rnn.LSTM, ref.lstm), (rnn.GRU, ref.gru)])
def test_the_book_sigmoid_candidate_equals_hand_written_bptt(cls, oracle):
    m = cls(N_IN, H, N_OUT, seed=4, candidate="sigmoid")
    xs, ys = _inputs("floats", 5, 2), _ids(5, 2, N_OUT, 5)
    _assert_exact(m.loss(xs, ys), m, oracle(_arrays(m), xs, ys, candidate="sigmoid"))


def test_lstm_initial_state_is_a_dict_of_both_parts():
    m = rnn.LSTM(N_IN, H, N_OUT, seed=5)
    rng = np.random.default_rng(6)
    h0 = {"s": rng.normal(size=(2, H)), "h": rng.normal(size=(2, H))}
    xs, ys = _inputs("floats", 4, 2), _ids(4, 2, N_OUT, 7)
    _assert_exact(m.loss(xs, ys, h0=h0), m, ref.lstm(_arrays(m), xs, ys, h0=h0["h"], s0=h0["s"]))


@pytest.mark.parametrize("kind", ["ids", "floats"])
@pytest.mark.parametrize("batch, masked", [(None, False), (1, False), (3, False), (3, True)])
@pytest.mark.parametrize("form", ["loss", "run"])
def test_bidirectional_equals_hand_written_bptt(kind, batch, masked, form):
    m = rnn.BidirectionalRNN(N_IN, H, N_OUT, seed=8)
    xs, ys = _inputs(kind, 6, batch), _ids(6, batch, N_OUT, 9)
    mask = _mask(6, batch) if masked else None
    loss = m.loss(xs, ys, mask=mask) if form == "loss" else m.run(xs, ys, mask=mask).loss
    _assert_exact(loss, m, ref.bidirectional(_arrays(m), xs, ys, mask=mask))


@pytest.mark.parametrize("kind", ["ids", "floats"])
@pytest.mark.parametrize("batch", [None, 1, 3])
@pytest.mark.parametrize("form", ["loss", "run"])
def test_encoder_decoder_equals_hand_written_bptt(kind, batch, form):
    m = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=10)
    xs, ys = _inputs(kind, 6, batch), _ids(4, batch, N_OUT, 11)    # n_x = 6, n_y = 4
    loss = m.loss(xs, ys) if form == "loss" else m.run(xs, ys).loss
    _assert_exact(loss, m, ref.encoder_decoder(_arrays(m), xs, ys, m.start))


@pytest.mark.parametrize("oracle", ["bidirectional", "encoder_decoder"])
def test_the_two_chain_references_equal_finite_differences(oracle):
    rng = np.random.default_rng(12)
    if oracle == "bidirectional":
        m = rnn.BidirectionalRNN(N_IN, 3, N_OUT, seed=12)
        xs, ys, mask = _inputs("ids", 4, 2), _ids(4, 2, N_OUT, 13), np.array(
            [[1, 1], [1, 1], [1, 0], [0, 0]])
        mask[3, 1] = 1

        def fn(p):
            return ref.bidirectional(p, xs, ys, mask=mask)
    else:
        m = rnn.EncoderDecoder(N_IN, 3, N_OUT, seed=12)
        xs, ys = rng.normal(size=(3, 2, N_IN)), _ids(4, 2, N_OUT, 13)

        def fn(p):
            return ref.encoder_decoder(p, xs, ys, m.start)
    _, grads = fn(_arrays(m))
    numeric = ref.finite_difference_grads(lambda p: fn(p)[0], _arrays(m))
    for name in grads:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name)


def _designs():
    rng = np.random.default_rng(14)
    ids, mask = _ids(5, 3, N_IN, 15), _mask(5, 3)
    floats = rng.normal(size=(5, 3, N_IN))
    return [
        ("lstm", rnn.LSTM(N_IN, H, N_OUT), (ids, ids), {"mask": mask}),
        ("gru_floats", rnn.GRU(N_IN, H, N_OUT), (floats, ids), {"mask": mask}),
        ("bidirectional", rnn.BidirectionalRNN(N_IN, H, N_OUT), (floats, ids), {"mask": mask}),
        ("encdec", rnn.EncoderDecoder(N_IN, H, N_OUT), (ids, ids[:3]), {}),
    ]


@pytest.mark.parametrize("name, model, args, kwargs", _designs(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_batched_loss_equals_the_per_step_run(name, model, args, kwargs):
    params = model.parameters()
    batched = model.loss(*args, **kwargs)
    per_step = model.run(*args, **kwargs).loss
    assert batched.item() == pytest.approx(per_step.item(), rel=1e-12)
    for g, h in zip(tg.grad(batched, params), tg.grad(per_step, params)):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ the book's claims

def test_lstm_self_loop_with_open_forget_gate_and_closed_input_gate_keeps_the_state():
    """Claim 11: f = 1 and g = 0 give s(t) = s(t-1); ds(t)/ds(t-1) = diag(f(t))."""
    m = rnn.LSTM(N_IN, H, N_OUT, seed=16)
    with tg.no_grad():
        m.bf.data[:] = 50.0
        m.bg.data[:] = -50.0
    s0 = np.random.default_rng(17).normal(size=(1, H))
    run = m.run(_inputs("floats", 4, 1), h0={"s": s0})
    for s in run.parts["s"]:
        np.testing.assert_allclose(s.data, s0, rtol=1e-12)


def test_gru_with_a_closed_update_gate_copies_its_state():
    m = rnn.GRU(N_IN, H, N_OUT, seed=18)
    m.bu.data[:] = 50.0
    h0 = np.random.default_rng(19).normal(size=(1, H))
    run = m.run(_inputs("floats", 4, 1), h0=h0)
    for h in run.states:
        np.testing.assert_allclose(h.data, h0, rtol=1e-12)


def test_bidirectional_output_depends_on_the_future_and_causal_designs_do_not():
    """Claim 12: o(t) of the bidirectional RNN depends on x(k) for k > t."""
    xs = tg.tensor(np.random.default_rng(20).normal(size=(5, 1, N_IN)), requires_grad=True)
    for model, future in ((rnn.BidirectionalRNN(N_IN, H, N_OUT), True),
                          (rnn.LSTM(N_IN, H, N_OUT), False), (rnn.GRU(N_IN, H, N_OUT), False)):
        o1 = model.run(xs).outputs[0]
        (grad,) = tg.grad(o1.sum(), [xs])
        assert (np.abs(grad[1:]).max() > 1e-6) == future, model.name
        assert np.abs(grad[0]).max() > 1e-6


def test_encoder_decoder_takes_sequences_of_different_lengths_and_the_gradient_reaches_xs():
    m = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=21)
    xs = tg.tensor(np.random.default_rng(22).normal(size=(7, 2, N_IN)), requires_grad=True)
    ys = _ids(3, 2, N_OUT, 23)
    run = m.run(xs, ys)
    assert len(run.parts["h"]) == 7 and len(run.parts["s"]) == 3 and len(run.outputs) == 3
    m.loss(xs, ys).backward()
    assert xs.grad.shape == (7, 2, N_IN) and np.abs(xs.grad[0]).max() > 0


def test_encoder_decoder_context_is_the_initial_state_and_an_input_of_every_decoder_step():
    m = rnn.EncoderDecoder(N_IN, H, N_OUT)
    variables = viz.derive(m.trace(3))
    into = {dst: w for (src, dst), w in variables.edges.items() if src == ("C", None)}
    assert set(into) == {("s", 1), ("s", 2), ("s", 3)}
    assert set(into[("s", 1)]) == {"R", "Wd"} and into[("s", 2)] == ("R",)
    assert (("h", 3), ("C", None)) in variables.edges


def test_encoder_decoder_generates_greedily_from_the_start_symbol():
    m = rnn.EncoderDecoder(N_IN, H, N_OUT, seed=24)
    xs = _ids(5, 2, N_IN, 25)
    ids = m.generate(xs, 6)
    assert ids.shape == (6, 2) and ids.dtype.kind == "i"
    with tg.no_grad():              # greedy: step t's id is the argmax of o(t) given the ids before
        forced = m.run(xs, ids).outputs
    np.testing.assert_array_equal(np.stack([o.data.argmax(-1) for o in forced]), ids)
    assert m.generate(xs[:, 0], 4).shape == (4,)


@pytest.mark.parametrize("bad, match", [
    ({"ys": np.zeros((0, 2), dtype=int)}, "empty"),
    ({"ys": np.full((3, 2), N_OUT)}, "out of range"),
    ({}, "give the targets ys"),
])
def test_encoder_decoder_refuses_bad_targets(bad, match):
    m = rnn.EncoderDecoder(N_IN, H, N_OUT)
    with pytest.raises(tg.TinygraphError, match=match):
        m.run(_ids(4, 2, N_IN, 26), **bad)


# ------------------------------------------------------------------ scopes and views

def test_every_node_of_the_backward_chain_is_in_the_scope_of_its_real_step():
    m = rnn.BidirectionalRNN(N_IN, H, N_OUT)
    run = m.run(_ids(4, 2, N_IN, 27), _ids(4, 2, N_OUT, 28))
    assert [g.scope for g in run.parts["g"]] == [f"bidirectional/t={t}" for t in range(1, 5)]
    # g(2) reads x(2) and g(3): both of them in their own steps' scopes
    g2 = run.parts["g"][1]
    scopes = set()
    stack = [g2]
    while stack:
        node = stack.pop()
        if node.name in ("x", "g") and node is not g2:
            scopes.add((node.name, node.scope))
            continue
        stack.extend(p for p in node.parents if not isinstance(p, tg.Parameter))
    assert scopes == {("x", "bidirectional/t=2"), ("g", "bidirectional/t=3")}


def test_the_op_level_graph_puts_the_backward_chain_in_its_own_steps_clusters():
    m = rnn.BidirectionalRNN(N_IN, H, N_OUT)
    dot = viz.graph(m.trace(3)[0]).source
    clusters = {}
    for block in dot.split("subgraph cluster_")[1:]:
        label = re.search(r"label=<([^>]*)>", block).group(1)
        clusters[label] = block.split("}")[0]
    for t in (1, 2, 3):
        block = clusters[f"bidirectional/t={t}"]
        assert len(re.findall(r"<b>tanh</b><br/>\(1, 4\)<br/><i>g</i>", block)) == 1
        assert len(re.findall(r"<b>tanh</b><br/>\(1, 4\)<br/><i>h</i>", block)) == 1


def test_bidirectional_unrolled_view_runs_g_backward_in_time():
    variables = viz.derive(rnn.BidirectionalRNN(N_IN, H, N_OUT).trace(4))
    chains = {(s[0], d[1] - s[1]) for s, d in variables.edges
              if s[0] == d[0] and None not in (s[1], d[1]) and s[1] >= 1}
    assert chains == {("h", 1), ("g", -1)}
    dot = viz.unrolled(rnn.BidirectionalRNN(N_IN, H, N_OUT), steps=3).source
    assert re.search(r"\S+_1 -> \S+_2 \[.*dir=back", dot)      # g(2) -> g(1), laid out left to right


@pytest.mark.parametrize("cls, squares, lookaheads", [(rnn.LSTM, 2, 0), (rnn.GRU, 1, 0),
                                                      (rnn.BidirectionalRNN, 1, 1),
                                                      (rnn.EncoderDecoder, 3, 0)])
def test_folded_view_has_one_delay_per_state_part_and_fed_back_output(cls, squares, lookaheads):
    """The encoder-decoder's third delay is y(t-1) -> s(t), the teacher-forced feedback; the
    bidirectional g reads g(t+1), so its loop passes a white look-ahead square, not a delay."""
    dot = viz.folded(cls(N_IN, H, N_OUT)).source
    assert len(re.findall(r"fillcolor=black", dot)) == squares
    assert len(re.findall(r"shape=square[^\]]*fillcolor=white|fillcolor=white[^\]]*shape=square",
                          dot)) == lookaheads


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU, rnn.BidirectionalRNN, rnn.EncoderDecoder])
def test_long_unrolls_are_summarised(cls):
    dot = viz.unrolled(cls(N_IN, H, N_OUT), steps=40).source
    assert "steps left out" in dot and "(40)" in dot and "(20)" not in dot


def test_lstm_gates_are_named_for_the_diagrams():
    variables = viz.derive(rnn.LSTM(N_IN, H, N_OUT).trace(2))
    assert {"f", "g", "q", "s", "h"} <= set(variables.names)
    assert variables.edges[(("s", 1), ("s", 2))] == ()               # the gated self-loop
    assert variables.edges[(("f", 2), ("s", 2))] == ()
    assert variables.edges[(("h", 1), ("f", 2))] == ("Wf",)


# ------------------------------------------------------------------ training, chunks, files

@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_truncated_bptt_carries_the_gated_state(cls):
    m = cls(N_IN, H, N_OUT, seed=29)
    xs, ys = _ids(12, 2, N_IN, 30), _ids(12, 2, N_OUT, 31)
    assert rnn.stream_loss(m, xs, ys, chunk=5) == pytest.approx(m.loss(xs, ys).item() / 12,
                                                                rel=1e-12)
    losses, _ = rnn.truncated_bptt(rnn.Trainer(m, lr=0.01), xs, ys, chunk=4)
    assert len(losses) == 3


@pytest.mark.parametrize("cls", [rnn.BidirectionalRNN, rnn.EncoderDecoder])
def test_designs_that_read_the_whole_sequence_refuse_chunks_before_any_update(cls):
    m = cls(N_IN, H, N_OUT)
    before = m.state_dict()
    xs = _ids(8, 2, N_IN, 32)
    with pytest.raises(tg.ConfigError, match="not causal"):
        rnn.truncated_bptt(rnn.Trainer(m, lr=0.1), xs, xs, chunk=4)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def _training_args(model):
    xs = _ids(5, 3, N_IN, 33)
    return (xs, _ids(3, 3, N_OUT, 34)) if isinstance(model, rnn.EncoderDecoder) else (
        xs, _ids(5, 3, N_OUT, 34))


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU, rnn.BidirectionalRNN, rnn.EncoderDecoder])
def test_each_design_trains_saves_and_loads(cls, tmp_path):
    m = cls(N_IN, H, N_OUT, seed=35)
    args = _training_args(m)
    trainer = rnn.Trainer(m, lr=0.05)
    losses = [trainer.step(*args)[0] for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]
    m.save(tmp_path / "m.npz")
    fresh = cls(N_IN, H, N_OUT, seed=36)
    fresh.load(tmp_path / "m.npz")
    assert fresh.loss(*args).item() == pytest.approx(m.loss(*args).item(), rel=1e-12)


def test_gate_biases_start_where_asked_and_bad_values_are_refused():
    np.testing.assert_array_equal(rnn.LSTM(N_IN, H, N_OUT, forget_bias=3.0).bf.data, np.full(H, 3.0))
    np.testing.assert_array_equal(rnn.GRU(N_IN, H, N_OUT, update_bias=2.0).bu.data, np.full(H, 2.0))
    np.testing.assert_array_equal(rnn.GRU(N_IN, H, N_OUT).bu.data, np.zeros(H))
    with pytest.raises(tg.ConfigError, match="forget_bias must be a finite number"):
        rnn.LSTM(N_IN, H, N_OUT, forget_bias=float("nan"))
    with pytest.raises(tg.ConfigError, match="update_bias must be a finite number"):
        rnn.GRU(N_IN, H, N_OUT, update_bias="3")
