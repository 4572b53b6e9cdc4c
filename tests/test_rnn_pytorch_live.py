"""rnn.from_torch and model.to_torch live, where torch is installed (it is optional: the module
skips, saying why, elsewhere; tests/test_rnn_pytorch.py checks the same mapping without torch
against arrays torch saved).  Outputs, loss and every gradient equal torch's to 1e-12 in
float64 for nn.RNN / nn.LSTM / nn.GRU x num_layers {1, 2} x bidirectional, round trips
included; unsupported modules and heads are refused by name."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
from rnn.pytorch import mapping
from test_rnn_pytorch import CASES, TOL, _our_grads_as_torchs, _relative

torch = pytest.importorskip("torch", reason="torch is optional (only rnn.from_torch and "
                                            "to_torch use it); the mapping is checked above "
                                            "against arrays torch saved")
KINDS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def _torch_pair(kind, layers, bi, seed=0):
    torch.manual_seed(seed)
    module = KINDS[kind](3, 4, num_layers=layers, bidirectional=bi, dtype=torch.float64)
    head = torch.nn.Linear(4 * (2 if bi else 1), 5, dtype=torch.float64)
    return module, head


def _torch_loss(module, head, xs, ys):
    o = head(module(torch.tensor(xs))[0])
    loss = torch.nn.functional.cross_entropy(o.reshape(-1, 5), torch.tensor(ys).reshape(-1),
                                             reduction="sum") / xs.shape[1]
    return o, loss


def _three_sgd_steps(model, module, head, torch_params, xs, ys):
    """Three SGD updates (rate 0.5) of ours and of torch's ``torch_params`` side by side; torch's
    outputs after them."""
    ours, theirs = tg.optim.SGD(model.parameters(), 0.5), torch.optim.SGD(torch_params, 0.5)
    for _ in range(3):
        ours.zero_grad()
        model.loss(xs, ys).backward()
        ours.step()
        theirs.zero_grad()
        _torch_loss(module, head, xs, ys)[1].backward()
        theirs.step()
    return _torch_loss(module, head, xs, ys)[0].detach().numpy()


@pytest.mark.parametrize("kind, layers, bi", CASES)
def test_from_torch_equals_torch_live(kind, layers, bi):
    module, head = _torch_pair(kind, layers, bi, seed=7)
    model = rnn.from_torch(module, head)
    rng = np.random.default_rng(7)
    xs, ys = rng.normal(size=(6, 3, 3)), rng.integers(0, 5, (6, 3))
    o, loss = _torch_loss(module, head, xs, ys)
    loss.backward()
    ours = model.loss(xs, ys)
    ours.backward()
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o.detach().numpy()) <= TOL
    assert _relative(ours.item(), loss.item()) <= TOL
    grads = _our_grads_as_torchs(kind, model, layers, bi, 4)
    for name, p in module.named_parameters():
        assert _relative(grads[name], p.grad.numpy()) <= TOL, name
    assert _relative(grads["head.weight"], head.weight.grad.numpy()) <= TOL


@pytest.mark.parametrize("kind, layers, bi", CASES)
def test_to_torch_round_trips(kind, layers, bi):
    options = {"reset": "after"} if kind == "gru" else {}
    cls = {"rnn": rnn.ElmanRNN, "lstm": rnn.LSTM, "gru": rnn.GRU}[kind]
    model = cls(3, 4, 5, seed=3, layers=layers, bidirectional=bi, **options)
    module, head = model.to_torch()
    xs, ys = np.random.default_rng(3).normal(size=(5, 2, 3)), np.zeros((5, 2), dtype=int)
    o, loss = _torch_loss(module, head, xs, ys)
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o.detach().numpy()) <= TOL
    assert _relative(model.loss(xs, ys).item(), loss.item()) <= TOL
    back = rnn.from_torch(module, head)
    for name, p in model.named_parameters():
        assert np.allclose(getattr(back, name).data, p.data, rtol=0, atol=1e-15), name


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_to_torch_keeps_a_narrow_models_dtype(dtype):
    # every dtype but float64 became torch.float32: a float16 model's module computed in
    # float32, and from_torch of it gave a float32 model
    model = rnn.LSTM(3, 4, 5, seed=3, dtype=dtype)
    module, head = model.to_torch()
    want = getattr(torch, np.dtype(dtype).name)
    assert {p.dtype for p in module.parameters()} | {p.dtype for p in head.parameters()} == {want}
    assert rnn.from_torch(module, head).dtype == dtype


def test_to_torch_refuses_a_dtype_torch_does_not_have():
    model = rnn.ElmanRNN(3, 4, 5, dtype=np.longdouble)
    with pytest.raises(tg.DTypeError, match=r"ElmanRNN.to_torch: torch has no dtype for this "
                                            r"model's float128"):
        model.to_torch()


@pytest.mark.parametrize("make, words", [
    (lambda: torch.nn.RNN(3, 4, nonlinearity="relu", dtype=torch.float64), "nonlinearity='relu'"),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2, dtype=torch.float64), "proj_size=2"),
    (lambda: torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64), "batch_first=True"),
    (lambda: torch.nn.Linear(3, 4, dtype=torch.float64), "nn.RNN, nn.LSTM or nn.GRU"),
])
def test_unsupported_torch_modules_are_refused_by_name(make, words):
    with pytest.raises(tg.ConfigError, match=words.replace("(", r"\(")):
        rnn.from_torch(make(), torch.nn.Linear(4, 5, dtype=torch.float64))


def test_a_torch_head_that_does_not_fit_is_refused_with_its_sizes():
    module = torch.nn.LSTM(3, 4, bidirectional=True, dtype=torch.float64)
    with pytest.raises(tg.ShapeError, match=r"Linear\(in_features=4, out_features=5\).* width 8"):
        rnn.from_torch(module, torch.nn.Linear(4, 5, dtype=torch.float64))


def test_the_readmes_pytorch_example_runs_as_written(tmp_path, monkeypatch):
    import contextlib
    import io
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
    with open(readme, encoding="utf-8") as f:
        (code,) = [c for c in re.findall(r"```py\n(.*?)```", f.read(), flags=re.S)
                   if "from_torch" in c]
    monkeypatch.chdir(tmp_path)
    os.makedirs("out")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md PyTorch example", "exec"), {"__name__": "__readme__"})
    assert printed.getvalue().split() == ["True"]
    assert (tmp_path / "out" / "torch_lstm.html").is_file()


# what a torch user feeds: packed sequences of different lengths, an initial state, odd sizes,
# float32; each shape (T, B, H, lengths) x kind x (layers, bidirectional) x dtype x executor
_PACKED = [(1, 1, 1, [1]), (7, 3, 2, [7, 1, 4]), (6, 2, 3, [6, 6])]


@pytest.mark.parametrize("T, B, H, lengths", _PACKED, ids=["T1B1H1", "mixed", "equal"])
@pytest.mark.parametrize("kind, layers, bi", [("rnn", 1, False), ("lstm", 2, True),
                                              ("gru", 1, True), ("gru", 2, False)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("per_step", [True, False])
def test_packed_sequences_and_an_initial_state_equal_torch(T, B, H, lengths, kind, layers, bi,
                                                           dtype, per_step):
    """Our mask is torch's pack_padded_sequence: loss (the batch-mean of each sequence's
    summed cross-entropy over its own steps), every gradient (h0's too) and h_n agree, to
    1e-12 in float64 (1e-5 relative in float32), per step and batched (T = 7 replays)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(T * 100 + B * 10 + H)
    tdt = getattr(torch, dtype)
    D = 2 if bi else 1
    module = KINDS[kind](2, H, num_layers=layers, bidirectional=bi, dtype=tdt)
    head = torch.nn.Linear(D * H, 3, dtype=tdt)
    model = rnn.from_torch(module, head)
    rng = np.random.default_rng(T + B + H)
    xs = rng.normal(size=(T, B, 2)).astype(dtype)
    ys = rng.integers(0, 3, (T, B))
    mask = np.arange(T)[:, None] < np.array(lengths)[None]
    h_start = rng.normal(size=(layers * D, B, H)).astype(dtype)
    s_start = rng.normal(size=(layers * D, B, H)).astype(dtype)
    th, ts = (torch.tensor(a, requires_grad=True) for a in (h_start, s_start))
    packed = pack_padded_sequence(torch.tensor(xs), torch.tensor(lengths), enforce_sorted=False)
    out, last = module(packed, (th, ts) if kind == "lstm" else th)
    out, _ = pad_packed_sequence(out, total_length=T)
    terms = torch.nn.functional.cross_entropy(head(out).reshape(-1, 3),
                                              torch.tensor(ys).reshape(-1), reduction="none")
    loss = (terms * torch.tensor(mask.reshape(-1), dtype=tdt)).sum() / B
    loss.backward()
    leaves, h0 = {}, {}
    for i, (ours, _) in enumerate(mapping(kind, layers, bi)):
        for part, start in (("h", h_start), ("s", s_start)):
            if part == "h" or kind == "lstm":
                leaves[part + ours] = h0[part + ours] = tg.Tensor(start[i], requires_grad=True)
    run = model.run(xs, ys, h0=h0 if len(h0) > 1 else h0["h"], mask=mask.astype(int),
                    per_step=per_step)
    run.loss.backward()
    tol = TOL if dtype == "float64" else 1e-5
    assert _relative(run.loss.item(), loss.item()) <= tol
    grads = _our_grads_as_torchs(kind, model, layers, bi, H)
    for name, p in list(module.named_parameters()) + [("head.weight", head.weight),
                                                      ("head.bias", head.bias)]:
        assert _relative(grads[name], p.grad.numpy()) <= 10 * tol, name
    last_h, last_s = (last[0], last[1]) if kind == "lstm" else (last, None)
    ends = run.last if isinstance(run.last, dict) else {"h": run.last}
    for i, (ours, _) in enumerate(mapping(kind, layers, bi)):
        assert _relative(leaves["h" + ours].grad, th.grad[i].numpy()) <= 10 * tol, "h" + ours
        assert _relative(ends["h" + ours].data, last_h[i].detach().numpy()) <= tol
        if kind == "lstm":
            assert _relative(leaves["s" + ours].grad, ts.grad[i].numpy()) <= 10 * tol
            assert _relative(ends["s" + ours].data, last_s[i].detach().numpy()) <= tol


@pytest.mark.parametrize("kind, layers, bi", [("rnn", 1, False), ("lstm", 2, True),
                                              ("gru", 2, False)])
def test_a_bias_free_module_trains_as_torchs_and_round_trips(kind, layers, bi):
    """bias=False (module and head): from_torch's biases are fixed at zero, so SGD moves the
    same weights as torch's (trainable zero biases made the two differ after one step), and
    to_torch gives bias=False back."""
    torch.manual_seed(5)
    module = KINDS[kind](3, 4, num_layers=layers, bidirectional=bi, bias=False,
                         dtype=torch.float64)
    head = torch.nn.Linear(4 * (2 if bi else 1), 5, bias=False, dtype=torch.float64)
    model = rnn.from_torch(module, head)
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(6, 3, 3)), rng.integers(0, 5, (6, 3))
    o = _three_sgd_steps(model, module, head, list(module.parameters()) + list(head.parameters()), xs, ys)
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o) <= TOL
    module2, head2 = model.to_torch()
    assert not module2.bias and head2.bias is None
    assert _relative(_torch_loss(module2, head2, xs, ys)[0].detach().numpy(), o) <= TOL
    biased = rnn.from_torch(*_torch_pair(kind, layers, bi))
    module3, head3 = biased.to_torch()
    assert module3.bias and head3.bias is not None


@pytest.mark.parametrize("kind, layers, bi", [("rnn", 1, False), ("lstm", 2, True),
                                              ("gru", 2, False)])
def test_a_module_with_parameters_torch_does_not_train_trains_as_torchs_and_round_trips(
        kind, layers, bi):
    """A torch parameter with requires_grad=False (a frozen layer) became a trained one here:
    SGD moved what torch's module keeps fixed.  Ours made of it are now fixed too, SGD gives
    torch's outputs after three steps (bias=False: torch's two biases per gate move their sum
    at twice SGD's rate, ours once), and to_torch freezes the same parameters."""
    torch.manual_seed(6)
    module = KINDS[kind](3, 4, num_layers=layers, bidirectional=bi, bias=False,
                         dtype=torch.float64)
    head = torch.nn.Linear(4 * (2 if bi else 1), 5, dtype=torch.float64)
    frozen = {"weight_hh_l0", f"weight_ih_l{layers - 1}", "head.bias"}
    named = dict(module.named_parameters(), **{f"head.{k}": v for k, v in head.named_parameters()})
    for name in frozen:
        named[name].requires_grad_(False)
    model = rnn.from_torch(module, head)
    for ours, theirs in rnn.pytorch.sources(kind, layers, bi).items():   # bias=False: no b_*
        want = not all(t in frozen or t not in named for t in theirs)
        assert getattr(model, ours).requires_grad == want, ours
    W = "W1" if layers > 1 else "W"
    assert not getattr(model, W).requires_grad and not model.c.requires_grad
    assert model.V.requires_grad
    rng = np.random.default_rng(6)
    xs, ys = rng.normal(size=(6, 3, 3)), rng.integers(0, 5, (6, 3))
    o = _three_sgd_steps(model, module, head, [p for p in named.values() if p.requires_grad], xs, ys)
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o) <= TOL
    module2, head2 = model.to_torch()
    back = {k for k, v in module2.named_parameters() if not v.requires_grad}
    back |= {f"head.{k}" for k, v in head2.named_parameters() if not v.requires_grad}
    assert back == frozen


def test_a_module_with_dropout_between_layers_is_taken_in_eval_mode_only():
    """nn.LSTM(dropout=0.5) in training mode computes other outputs at every call; the model
    (which has no dropout) was made from it without a word: 2e-2 from torch's outputs."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=torch.float64)
    head = torch.nn.Linear(4, 5, dtype=torch.float64)
    with pytest.raises(tg.ConfigError, match=r"rnn\.from_torch: LSTM\(dropout=0\.5\) in training "
                                             r"mode .*call module\.eval\(\) first"):
        rnn.from_torch(module, head)
    model = rnn.from_torch(module.eval(), head)
    xs = np.random.default_rng(0).normal(size=(6, 2, 3))
    o = head(module(torch.tensor(xs))[0]).detach().numpy()
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o) <= TOL
    assert model.to_torch()[0].dropout == 0


def test_to_torch_refuses_a_torch_parameter_made_of_fixed_and_trained_ones():
    model = rnn.LSTM(3, 4, 5, seed=0)
    model.Wf.requires_grad = False
    with pytest.raises(tg.ConfigError, match=r"LSTM\.to_torch: torch's weight_hh_l0 is made of "
                                             r"Wg, Wf, W, Wo; Wf is fixed .* but Wg, W, Wo are "
                                             "trained"):
        model.to_torch()


def test_a_module_with_a_parametrized_weight_is_taken_as_it_computes():
    """torch.nn.utils.parametrizations.weight_norm(module, "weight_hh_l0") moves the weight out
    of state_dict (into parametrizations.weight_hh_l0.original0/1): from_torch read
    state_dict() and failed with a bare KeyError 'weight_hh_l0'.  The weight the module
    computes with is taken, and it is fixed when torch trains none of its parts."""
    from torch.nn.utils.parametrizations import weight_norm
    torch.manual_seed(1)
    module = weight_norm(torch.nn.GRU(3, 4, num_layers=2, dtype=torch.float64), "weight_hh_l0")
    head = weight_norm(torch.nn.Linear(4, 5, dtype=torch.float64))
    model = rnn.from_torch(module, head)
    xs = np.random.default_rng(1).normal(size=(6, 2, 3))
    o = head(module(torch.tensor(xs))[0]).detach().numpy()
    assert _relative(np.stack([t.data for t in model(xs)[0]]), o) <= TOL
    assert model.Wr1.requires_grad and model.V.requires_grad
    for p in module.parametrizations.weight_hh_l0.parameters():
        p.requires_grad_(False)
    fixed = rnn.from_torch(module, head)
    assert not any(getattr(fixed, n).requires_grad for n in ("Wr1", "Wu1", "W1"))
    assert fixed.Wr2.requires_grad
