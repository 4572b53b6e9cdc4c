"""Every view and diagnostic of a user's own cell: a cell whose input map looks ids up draws
(``ids=True``, or what it last ran on), and drawing or diagnosing a model with a seeded
tg.Dropout leaves its modes and its next training masks as they were."""

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
        assert f"{x} -> {h} [xlabel=<E>]" in source
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
