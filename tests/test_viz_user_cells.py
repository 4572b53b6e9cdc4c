"""Every view and diagnostic of a user's own cell: a cell whose input map looks ids up draws
(``ids=True``, or what it last ran on), and drawing or diagnosing a model with a seeded
tg.Dropout leaves its modes and its next training masks as they were."""

import copy
import re

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz

H, N_IN, N_OUT = 4, 3, 2


def id_cell(ids=True, drop=None, seed=0):
    """h(t) = tanh(W h(t-1) + E[x(t)]) with an embedding lookup as the input map."""
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="W")
    E = tg.Parameter(rng.normal(0, 0.5, (N_IN, H)), name="E")
    V = tg.Parameter(rng.normal(0, 0.5, (N_OUT, H)), name="V")
    keep = drop if drop is not None else (lambda h: h)
    cell = rnn.Recurrence(lambda h, u: keep((h @ W.T + u).tanh()), [W, E, V], H, n_in=N_IN,
                          readout=lambda h: h @ V.T, input_map=lambda x: tg.take(E, x, axis=0),
                          name="cell", ids=ids)
    if drop is not None:
        cell.drop = drop
    return cell


XS, YS = np.array([0, 2, 1, 1, 0]), np.array([1, 0, 0, 1, 1])


def _views(cell):
    return {"folded": viz.folded(cell).source,
            "unrolled1": viz.unrolled(cell, steps=1).source,
            "unrolled3": viz.unrolled(cell, steps=3).source,
            "unrolled40": viz.unrolled(cell, steps=40).source,
            "grads": viz.unrolled(cell, steps=3, grads=True).source}


def test_a_cell_made_with_ids_is_traced_on_integer_ids_and_drawn():
    # the trace ran the cell on float zeros (3, 1, n_in): take refused them with
    # "BadIndexError take: indices must be integers, got dtype float64 in scope 'cell/t=1'"
    cell = id_cell()
    roots = cell.trace(3)
    xs = [n for n in rnn.core.walk(roots) if n.name == "x"]
    assert len(xs) == 3 and all(x.data.dtype.kind == "i" and x.shape == (1,) for x in xs)
    views = _views(cell)
    source = views["unrolled3"]
    for t in (1, 2, 3):              # x(t) -> h(t) through E at every step
        x, h = (_node(source, name, t) for name in ("x", "h"))
        assert f"{x} -> {h} [label=<E>]" in source
    assert "label=<E>" in views["folded"] and "label=<V>" in views["folded"]


def _node(source, name, t):
    """The DOT id of the variable ``name`` at step t in an unrolled view's source."""
    found = re.findall(rf'(u\d+_{t}) \[label=<<table[^\n]*>{name}</td>[^\n]*>\({t}\)</font>',
                       source)
    assert len(found) == 1, (name, t, found)
    return found[0]


def test_a_cell_without_ids_is_drawn_on_what_it_last_ran_on():
    told, untold = id_cell(ids=True), id_cell(ids=None)
    with pytest.raises(tg.ConfigError, match=r"cell.trace: .*never run.*float vectors of shape "
                       r"\(3, 1, 3\).*BadIndexError.*ids=True"):
        viz.folded(untold)
    untold.loss(XS, YS)
    assert _views(untold) == _views(told)


def test_ids_says_what_run_takes():
    with pytest.raises(tg.DTypeError, match=r"cell: this cell was made with ids=True .*got float "
                       r"xs of shape \(5, 3\)"):
        id_cell(ids=True).run(np.zeros((5, N_IN)))
    with pytest.raises(tg.DTypeError, match=r"made with ids=False .*got integer ids"):
        id_cell(ids=False).run(XS)
    with pytest.raises(tg.ConfigError, match="ids=True needs an input_map"):
        rnn.Recurrence(lambda h, x: h, [tg.Parameter(np.eye(2))], 2, n_in=2, ids=True)
    with pytest.raises(tg.ConfigError, match=r"ids= .* \(n_in=None\)"):
        rnn.Recurrence(lambda h: h, [tg.Parameter(np.eye(2))], 2, ids=False)
    with pytest.raises(tg.ConfigError, match="ids must be True"):
        id_cell(ids="yes")


def test_a_float_cell_with_ids_false_keeps_its_own_trace_error():
    W = tg.Parameter(np.eye(2), name="W")
    cell = rnn.Recurrence(lambda h, u: h @ W.T + u, W, 2, n_in=3, ids=False,
                          input_map=lambda x: x @ W.T)      # (1, 3) @ (2, 2): the user's bug
    with pytest.raises(tg.ShapeError) as caught:
        viz.folded(cell)
    assert "ids=True" not in str(caught.value)


def _diagnostics(cell):
    return {"jacobians": rnn.jacobians(cell, XS),
            "connectivity": rnn.connectivity(cell, XS, YS),
            "saturation": rnn.saturation(cell, XS, YS),
            "ratio": rnn.gradient_ratio(cell, XS, YS)}


def test_views_and_diagnostics_leave_a_seeded_dropouts_masks_and_modes_as_they_were():
    # each view traced the cell in training mode: viz.folded moved drop._calls 0 -> 3,
    # unrolled(steps=40) by 21, rnn.jacobians and rnn.connectivity by 5 each (T = 5), so
    # drawing a picture changed the masks of the next training step
    drop = tg.Dropout(0.5, seed=1)
    cell, twin = id_cell(drop=drop), id_cell(drop=tg.Dropout(0.5, seed=1))
    views = _views(cell)
    diagnostics = _diagnostics(cell)
    assert drop._calls == 0 and cell.training and drop.training
    assert cell.loss(XS, YS).item() == twin.loss(XS, YS).item()     # the same masks
    assert drop._calls == 5
    # what they computed is the model in evaluation mode
    cell.eval()
    assert _views(cell) == views
    for name, value in _diagnostics(cell).items():
        np.testing.assert_array_equal(value, diagnostics[name], err_msg=name)
    assert drop._calls == 5 and not drop.training


def test_the_views_of_a_cell_in_training_mode_draw_no_dropout_node():
    drop = tg.Dropout(0.5, seed=1)
    cell = id_cell(drop=drop)
    assert not any(n.op == "dropout" for n in rnn.core.walk(cell.trace(3)))
    cell.eval()
    cell.drop.train()
    assert drop.training and not cell.training      # each module's own mode is restored
    cell.trace(2)
    assert drop.training and not cell.training


# ------------------------------------------------------------------ generate (SPEC: "any cell")

def token_cell(ids=True, seed=0, criterion="cross_entropy", width=N_IN):
    """A cell over a vocabulary of N_IN ids whose readout gives a logit per id."""
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.normal(0, 1.0, (H, H)), name="W")
    E = tg.Parameter(rng.normal(0, 1.0, (N_IN, H)), name="E")
    V = tg.Parameter(rng.normal(0, 1.0, (width, H)), name="V")
    return rnn.Recurrence(lambda h, u: (h @ W.T + u).tanh(), [W, E, V], H, n_in=N_IN,
                          readout=lambda h: h @ V.T, input_map=lambda x: tg.take(E, x, axis=0),
                          name="tokens", ids=ids, criterion=criterion)


def _greedy_by_hand(cell, prompt, steps):
    """Greedy continuation from runs of the cell on the growing sequence (batch of one)."""
    seq = list(prompt)
    for _ in range(steps):
        seq.append(int(cell.run(np.array(seq)).outputs[-1].data.argmax()))
    return np.array(seq[len(prompt):])


@pytest.mark.parametrize("ids", [True, None])
def test_a_cell_that_reads_and_outputs_ids_generates(ids):
    # Recurrence had no generate at all (AttributeError), though SPEC promises it for any cell
    cell = token_cell(ids=ids)
    out = cell.generate(np.array([0, 2, 1]), steps=6, temperature=0)
    assert out.shape == (6,) and out.dtype.kind == "i"
    np.testing.assert_array_equal(out, _greedy_by_hand(cell, [0, 2, 1], 6))
    batched = cell.generate(np.array([[0, 1], [2, 2], [1, 0]]), steps=4, temperature=0)
    assert batched.shape == (4, 2)
    np.testing.assert_array_equal(batched[:, 1], _greedy_by_hand(cell, [1, 2, 0], 4))
    sampled = [cell.generate(np.array([1]), steps=20, temperature=1.0, seed=s) for s in (3, 3, 4)]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    assert ((sampled[0] >= 0) & (sampled[0] < N_IN)).all()


def test_generate_refuses_a_cell_it_cannot_feed_back_and_says_why():
    prompt = np.array([0, 1])
    with pytest.raises(tg.ConfigError, match=r"tokens.generate: .*ids=False"):
        token_cell(ids=False).generate(np.zeros((2, N_IN)), 3)
    with pytest.raises(tg.ConfigError, match=r"tokens.generate: o\(t\) has 5 classes .*ids in "
                       r"\[0, 3\)"):
        token_cell(width=5).generate(prompt, 3)
    with pytest.raises(tg.ConfigError, match=r"tokens.generate: .*squared_error"):
        token_cell(criterion="squared_error").generate(prompt, 3)
    with pytest.raises(tg.DTypeError, match=r"tokens.generate: the prompt must be integer ids"):
        token_cell(ids=None).generate(np.zeros((2, N_IN)), 3)
    with pytest.raises(tg.BadIndexError, match=r"prompt"):
        token_cell().generate(np.array([0, 7]), 3)
    W = tg.Parameter(np.eye(2), name="W")
    with pytest.raises(tg.ConfigError, match=r"system.generate: .*no input"):
        rnn.Recurrence(lambda s: s @ W.T, W, 2, readout=lambda s: s).generate(None, 3)
    with pytest.raises(tg.ConfigError, match=r"system.generate: .*readout"):
        rnn.Recurrence(lambda h, x: h @ W.T + x, W, 2, n_in=2).generate(np.array([0]), 3)


class _Net(tg.Module):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.W = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="W")
        self.E = tg.Parameter(rng.normal(0, 0.5, (N_IN, H)), name="E")
        self.V = tg.Parameter(rng.normal(0, 0.5, (N_OUT, H)), name="V")
        self.drop = tg.Dropout(0.5, seed=1)


def _module_cell(net):
    return rnn.Recurrence(lambda h, u: net.drop((h @ net.W.T + u).tanh()), net, H, n_in=N_IN,
                          readout=lambda h: h @ net.V.T, ids=True,
                          input_map=lambda x: tg.take(net.E, x, axis=0), name="cell")


def test_a_module_given_as_params_follows_the_cells_mode():
    # the cell took the Module's parameters but not the Module: cell.eval() left its dropout
    # on (loss still random), and viz.folded(cell) moved its seeded masks on by 3
    net = _Net()
    cell = _module_cell(net)
    assert [name for name, _ in cell.named_parameters()] == ["W", "E", "V"]
    viz.folded(cell)
    rnn.connectivity(cell, XS, YS)
    assert net.drop._calls == 0 and net.drop.training
    cell.eval()
    assert not net.drop.training
    assert cell.loss(XS, YS).item() == cell.loss(XS, YS).item() and net.drop._calls == 0
    twin = copy.deepcopy(cell)
    assert twin.params_module is not net and twin.parameters()[0] is twin.params_module.W
    twin.train()
    assert twin.params_module.drop.training and not net.drop.training


# ------------------------------------------------------------------ every entry point, every kind

def _kinds():
    """name -> (cell, xs, ys, run kwargs) for the kinds of cell users write."""
    rng = np.random.default_rng(3)

    def P(shape, name, dtype=np.float64):
        return tg.Parameter(rng.normal(0, 0.5, shape), name=name, dtype=dtype)

    T, floats, labels = 5, rng.normal(size=(5, N_IN)), rng.integers(0, N_OUT, 5)
    kinds = {"ids": (id_cell(), XS, YS, {})}
    U, W, V = P((H, N_IN), "U"), P((H, H), "W"), P((N_OUT, H), "V")
    kinds["floats"] = (rnn.Recurrence(lambda h, u: (h @ W.T + u).tanh(), [U, W, V], H, n_in=N_IN,
                                      input_map=lambda x: x @ U.T, readout=lambda h: h @ V.T,
                                      name="fl"), floats, labels, {})
    Ws = P((H, H), "W")
    kinds["no input"] = (rnn.Recurrence(lambda s: (s @ Ws.T).tanh(), Ws, H, state_name="s",
                                        name="sys"), None, None, {"steps": T})
    Ul, Wl, Vl = P((4 * H, N_IN), "U"), P((4 * H, H), "W"), P((N_OUT, H), "V")

    def lstm(state, u):
        z = u + state["h"] @ Wl.T
        f, g, q = (z[..., k * H:(k + 1) * H].sigmoid().named(n) for k, n in enumerate("fgq"))
        c = f * state["c"] + g * z[..., 3 * H:].tanh()
        return {"c": c, "h": c.tanh() * q}
    kinds["dict state"] = (rnn.Recurrence(lstm, [Ul, Wl, Vl], {"h": H, "c": H}, n_in=N_IN,
                                          input_map=lambda x: x @ Ul.T, edge_label=None,
                                          readout=lambda s: s["h"] @ Vl.T, name="lstm"),
                           floats, labels, {})
    Ur, Wr, Vr = P((H, N_IN), "U"), P((H, H), "W"), P((N_OUT, H), "V")
    kinds["regression"] = (rnn.Recurrence(lambda h, x: (h @ Wr.T + x @ Ur.T).tanh(), [Ur, Wr, Vr],
                                          H, n_in=N_IN, readout=lambda h: h @ Vr.T, name="reg",
                                          criterion="squared_error"),
                           floats, rng.normal(size=(T, N_OUT)), {})
    U32, W32, V32 = (P(s, n, np.float32) for s, n in (((H, N_IN), "U"), ((H, H), "W"),
                                                        ((N_OUT, H), "V")))
    kinds["float32"] = (rnn.Recurrence(lambda h, u: (h @ W32.T + u).tanh(), [U32, W32, V32], H,
                                       n_in=N_IN, input_map=lambda x: x @ U32.T,
                                       readout=lambda h: h @ V32.T, name="f32"),
                        floats.astype(np.float32), labels, {})
    other = rnn.ElmanRNN(N_IN, H, N_OUT, seed=1).run(floats).parts["h"][-1]
    Uo, Wo, Vo, R = P((H, N_IN), "U"), P((H, H), "W"), P((N_OUT, H), "V"), P((H, H), "R")
    kinds["reads another model"] = (
        rnn.Recurrence(lambda h, x: (h @ Wo.T + x @ Uo.T + other @ R.T).tanh(), [Uo, Wo, Vo, R],
                       H, n_in=N_IN, readout=lambda h: h @ Vo.T, name="reader"),
        floats, labels, {})
    Un, Wn, Vn = P((H, N_IN), "U"), P((H, H), "W"), P((N_OUT, H), "V")
    kinds["named"] = (rnn.Recurrence(lambda h, x: ((h @ Wn.T).named("g") + x @ Un.T).tanh(),
                                     [Un, Wn, Vn], H, n_in=N_IN, readout=lambda h: h @ Vn.T,
                                     name="nm"), floats, labels, {})
    return kinds


KINDS = _kinds()


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_view_and_diagnostic_of_every_kind_of_cell(kind, tmp_path):
    cell, xs, ys, kw = KINDS[kind]
    parts, T = list(cell.parts), 5
    folded = viz.folded(cell).source
    for part in parts:
        assert f">{part}<" in folded or f"label={part}" in folded or f"label=<{part}>" in folded
    assert folded.count("fillcolor=black") >= len(parts)         # a delay square per part
    one, three = viz.unrolled(cell, steps=1).source, viz.unrolled(cell, steps=3).source
    assert "t = 1" in one and "t = 2" not in one and "t = 3" in three
    assert "34 steps left out" in viz.unrolled(cell, steps=40).source
    assert re.search(r"\d\.\de[-+]\d\d", viz.unrolled(cell, steps=3, grads=True).source)  # norms
    viz.save(viz.folded(cell), tmp_path / "folded.svg")
    assert "<svg" in (tmp_path / "folded.svg").read_text()
    run = cell.run(xs, ys, **kw) if ys is not None else cell.run(xs, **kw)
    assert viz.graph(run.loss if ys is not None else run.last).source.count("t=5") > 0
    viz.explore(cell, xs, ys, **kw).save(tmp_path / "page.html")
    assert cell.name in (tmp_path / "page.html").read_text()
    assert rnn.jacobians(cell, xs, part=parts[0], **kw).shape == (T, H, H)
    assert rnn.saturation(cell, xs, ys, **kw).shape == (T,)
    if ys is not None:
        assert rnn.connectivity(cell, xs, ys, part=parts[0]).shape == (T, T)
        assert rnn.gradient_ratio(cell, xs, ys, part=parts[0]).shape == (T,)
