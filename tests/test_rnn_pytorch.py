"""rnn.from_torch(module, head) and model.to_torch(): nn.RNN (tanh), nn.LSTM and nn.GRU with any
num_layers and bidirectional, plus a Linear head.  Outputs, loss and every gradient equal
torch's to 1e-12 in float64.

The mapping is checked twice: without torch, against what torch computed and saved in
tests/data/torch_reference.npz (written by tests/data/make_torch_reference.py), so CI checks it
wherever it runs; and, where torch is installed, live, round trips included.
"""

import os

import numpy as np
import pytest

import rnn
import tinygraph as tg
from rnn.pytorch import CHUNKS, bias_parameters, from_arrays, mapping, torch_arrays

DATA = np.load(os.path.join(os.path.dirname(__file__), "data", "torch_reference.npz"))
CASES = [(kind, layers, bi) for kind in ("rnn", "lstm", "gru") for layers in (1, 2)
         for bi in (False, True)]
TOL = 1e-12


def _relative(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


def _saved(kind, layers, bi):
    name = f"{kind}_{layers}_{int(bi)}/"
    return {key[len(name):]: DATA[key] for key in DATA.files if key.startswith(name)}


def _saved_model(kind, layers, bi):
    saved = _saved(kind, layers, bi)
    params = {k[len("param/"):]: v for k, v in saved.items() if k.startswith("param/")}
    return saved, params, from_arrays(kind, params, saved["head/weight"], saved["head/bias"],
                                      layers, bi)


def _our_grads_as_torchs(kind, model, layers, bi, H):
    """Our parameters' gradients laid out as torch's parameters (b_ih and b_hh of one chunk both
    get the gradient of our summed bias, as their sum is what the function reads)."""
    grads = {"head.weight": model.V.grad, "head.bias": model.c.grad}
    for ours, theirs in mapping(kind, layers, bi):
        def chunks(letter, hidden_bias=False):
            parts = []
            for g in CHUNKS[kind]:
                if kind == "gru" and g == "" and letter == "b":
                    parts.append(getattr(model, f"{'bh' if hidden_bias else 'b'}{ours}").grad)
                else:
                    parts.append(getattr(model, f"{letter}{g}{ours}").grad)
            return np.concatenate(parts)
        grads[f"weight_ih{theirs}"] = chunks("U")
        grads[f"weight_hh{theirs}"] = chunks("W")
        grads[f"bias_ih{theirs}"] = chunks("b")
        grads[f"bias_hh{theirs}"] = chunks("b", hidden_bias=True)
    return grads


@pytest.mark.parametrize("kind, layers, bi", CASES)
def test_saved_torch_outputs_loss_and_gradients_are_matched_without_torch(kind, layers, bi):
    saved, params, model = _saved_model(kind, layers, bi)
    outputs = np.stack([o.data for o in model(saved["xs"])[0]])
    assert _relative(outputs, saved["o"]) <= TOL
    loss = model.loss(saved["xs"], saved["ys"])
    loss.backward()
    assert _relative(loss.item(), saved["loss"]) <= TOL
    ours = _our_grads_as_torchs(kind, model, layers, bi, model.n_hidden)
    for name, grad in ours.items():
        assert _relative(grad, saved[f"grad/{name}"]) <= TOL, name


@pytest.mark.parametrize("kind, layers, bi", CASES)
def test_torch_arrays_give_back_a_model_with_the_same_outputs(kind, layers, bi):
    saved, _, model = _saved_model(kind, layers, bi)
    arrays, (weight, bias) = torch_arrays(model)
    again = from_arrays(kind, arrays, weight, bias, layers, bi)
    for name, p in model.named_parameters():
        assert np.array_equal(getattr(again, name).data, p.data), name
    assert set(arrays) == {k[len("param/"):] for k in saved if k.startswith("param/")}


def test_a_gru_from_torch_is_reset_after_and_the_books_gru_has_no_torch_equivalent():
    _, _, model = _saved_model("gru", 1, False)
    assert model.reset == "after"
    with pytest.raises(tg.ConfigError, match="reset='after'"):
        torch_arrays(rnn.GRU(3, 4, 5))


def test_a_head_that_does_not_fit_names_the_shapes():
    saved, params, _ = _saved_model("lstm", 1, True)
    with pytest.raises(tg.ShapeError, match=r"width 8 .*\(5, 4\), need \(n_out, 8\)"):
        from_arrays("lstm", params, saved["head/weight"][:, :4], saved["head/bias"], 1, True)


def test_models_without_a_torch_equivalent_are_refused():
    with pytest.raises(tg.ConfigError, match="only ElmanRNN, LSTM and GRU"):
        torch_arrays(rnn.LeakyRNN(3, 4, 5))
    with pytest.raises(tg.ConfigError, match="candidate='sigmoid'"):
        torch_arrays(rnn.LSTM(3, 4, 5, candidate="sigmoid"))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_arrays_of_a_bias_free_module_give_biases_fixed_at_zero(kind):
    """torch's bias=False (no bias_* arrays, no head bias): zero biases that training leaves
    at zero (they were trainable, so training moved what torch's module does not have)."""
    saved, params, _ = _saved_model(kind, 2, True)
    weights = {k: v for k, v in params.items() if not k.startswith("bias_")}
    model = from_arrays(kind, weights, saved["head/weight"], None, 2, True)
    biases = bias_parameters(model, kind)
    assert len(biases) == 4 * len(CHUNKS[kind]) + (4 if kind == "gru" else 0) + 1
    assert all(not p.requires_grad and not np.any(p.data) for _, p in biases)
    trained = {id(p) for p in model.parameters()}
    assert trained and not trained & {id(p) for _, p in biases}
    xs, ys = np.random.default_rng(0).normal(size=(4, 2, 3)), np.zeros((4, 2), dtype=int)
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), 0.5))
    for _ in range(3):
        trainer.step(xs, ys)
    assert all(not np.any(p.data) for _, p in biases)
