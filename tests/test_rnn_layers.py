"""layers= and bidirectional= for rnn.ElmanRNN, rnn.LSTM and rnn.GRU, and rnn.GRU(reset=...):
loss and every gradient equal an independent hand-written numpy forward and BPTT
(tests/stacked_reference.py) in float64, batched and with padding; names, shapes and the
errors of the options."""

import numpy as np
import pytest

import rnn
import stacked_reference as ref
import tinygraph as tg
import viz
from viz.derive import derive

N_IN, H, N_OUT, T, B = 4, 3, 5, 5, 3
KINDS = {"elman": rnn.ElmanRNN, "lstm": rnn.LSTM, "gru": rnn.GRU}
MASK = np.array([[1, 1, 1]] * 3 + [[1, 0, 1], [0, 0, 1]])


def _randomised(model, seed):
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        p.data = rng.normal(0, 0.6, p.shape)
    return {name: p.data for name, p in model.named_parameters()}


def _relative(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


CASES = [(kind, layers, bidirectional, "before") for kind in KINDS for layers in (1, 2)
         for bidirectional in (False, True)]
CASES += [("gru", layers, bidirectional, "after") for layers in (1, 2)
          for bidirectional in (False, True)]


@pytest.mark.parametrize("kind, layers, bidirectional, reset", CASES)
def test_loss_and_every_gradient_equal_the_hand_written_bptt(kind, layers, bidirectional, reset):
    options = {"reset": reset} if kind == "gru" else {}
    model = KINDS[kind](N_IN, H, N_OUT, layers=layers, bidirectional=bidirectional, **options)
    params = _randomised(model, 1)
    rng = np.random.default_rng(2)
    xs, ys = rng.integers(0, N_IN, (T, B)), rng.integers(0, N_OUT, (T, B))
    expected, grads = ref.layered(kind, params, xs, ys, layers, bidirectional, MASK, reset)
    loss = model.loss(xs, ys, mask=MASK)
    loss.backward()
    assert _relative(loss.item(), expected) <= 1e-12
    for name, p in model.named_parameters():
        assert _relative(p.grad, grads[name]) <= 1e-12, name
    assert model.run(xs, ys, mask=MASK).loss.item() == pytest.approx(expected, rel=1e-12)


def test_float_inputs_unbatched_through_two_bidirectional_lstm_layers():
    model = rnn.LSTM(N_IN, H, N_OUT, layers=2, bidirectional=True)
    params = _randomised(model, 3)
    rng = np.random.default_rng(4)
    xs, ys = rng.normal(size=(T, N_IN)), rng.integers(0, N_OUT, T)
    expected, grads = ref.layered("lstm", params, xs, ys, 2, True)
    loss = model.loss(xs, ys)
    loss.backward()
    assert _relative(loss.item(), expected) <= 1e-12
    assert all(_relative(p.grad, grads[n]) <= 1e-12 for n, p in model.named_parameters())


def test_parameter_names_and_shapes_follow_layer_and_direction():
    model = rnn.ElmanRNN(N_IN, H, N_OUT, layers=2, bidirectional=True)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert shapes == {"U1": (H, N_IN), "W1": (H, H), "b1": (H,), "U1_r": (H, N_IN),
                      "W1_r": (H, H), "b1_r": (H,), "U2": (H, 2 * H), "W2": (H, H), "b2": (H,),
                      "U2_r": (H, 2 * H), "W2_r": (H, H), "b2_r": (H,), "V": (N_OUT, 2 * H),
                      "c": (N_OUT,)}
    assert list(model.parts) == ["h1", "h1_r", "h2", "h2_r"]
    assert not model.causal and rnn.ElmanRNN(N_IN, H, N_OUT, layers=2).causal


def test_the_default_model_keeps_the_books_names():
    assert [n for n, _ in rnn.GRU(N_IN, H, N_OUT).named_parameters()] == [
        "Uu", "Wu", "bu", "Ur", "Wr", "br", "U", "W", "b", "V", "c"]
    assert [n for n, _ in rnn.GRU(N_IN, H, N_OUT, reset="after").named_parameters()][-3:] == [
        "bh", "V", "c"]


def test_reset_after_is_r_times_w_h_plus_bh_and_differs_from_the_books():
    before = rnn.GRU(N_IN, H, N_OUT, seed=0)
    after = rnn.GRU(N_IN, H, N_OUT, seed=0, reset="after")
    for name, p in before.named_parameters():
        getattr(after, name).data = p.data.copy()
    xs = np.arange(T) % N_IN
    h_before = before(xs)[1][-1].data
    h_after = after(xs)[1][-1].data
    assert not np.allclose(h_before, h_after)
    x = np.eye(N_IN)[0]
    u = 1 / (1 + np.exp(-(after.Uu.data @ x + after.bu.data)))
    r = 1 / (1 + np.exp(-(after.Ur.data @ x + after.br.data)))
    n = np.tanh(after.U.data @ x + after.b.data + r * after.bh.data)
    assert np.allclose(after(xs[:1])[1][0].data, (1 - u) * n, rtol=0, atol=1e-15)


def test_truncated_bptt_carries_every_layer():
    model = rnn.LSTM(N_IN, H, N_OUT, layers=2)
    xs, ys = np.arange(8) % N_IN, np.arange(1, 9) % N_OUT
    whole = model.loss(xs, ys).item()
    still = rnn.Trainer(model, optimizer=tg.optim.SGD(model.parameters(), lr=1e-30))
    losses, last = rnn.truncated_bptt(still, xs, ys, chunk=4)
    assert set(last) == {"s1", "h1", "s2", "h2"}
    assert sum(losses) * 4 == pytest.approx(whole, rel=1e-12)


def test_the_views_draw_every_layer_and_direction():
    variables = derive(rnn.GRU(N_IN, H, N_OUT, layers=2, bidirectional=True).trace(3))
    assert {"h1", "h1_r", "h2", "h2_r", "o"} <= set(variables.names)
    assert variables.edges[(("h1", 2), ("h2", 2))] == ("U2",)
    assert variables.edges[(("h1_r", 2), ("u2_r", 2))] == ("Uu2_r",)
    assert (("h1_r", 3), ("h1_r", 2)) in variables.edges        # the chain back in time
    assert (("h2", 2), ("o", 2)) in variables.edges and (("h2_r", 2), ("o", 2)) in variables.edges
    assert "h1_r" in viz.folded(rnn.GRU(N_IN, H, N_OUT, layers=2, bidirectional=True)).source


@pytest.mark.parametrize("bad, error, words", [
    ({"layers": 0}, tg.ConfigError, "layers"),
    ({"bidirectional": "yes"}, tg.ConfigError, "bidirectional must be True or False"),
])
def test_bad_options_name_the_design_and_the_argument(bad, error, words):
    with pytest.raises(error, match=f"LSTM: .*{words}"):
        rnn.LSTM(N_IN, H, N_OUT, **bad)


def test_an_unknown_reset_is_a_config_error():
    with pytest.raises(tg.ConfigError, match="GRU: reset must be one of"):
        rnn.GRU(N_IN, H, N_OUT, reset="middle")


def test_generation_needs_one_forward_layer():
    with pytest.raises(tg.ConfigError, match="layers=1, bidirectional=False"):
        rnn.ElmanRNN(N_IN, H, N_IN, layers=2).generate(np.array([0]), 3)
