"""The replayed executor (rnn.replay, tinygraph.tape): ``loss`` runs a cell's first steps as
engine ops, records two, and replays the rest from the recording; every design, and a user's
cell, gives the same loss and gradients as with replay off and as ``run`` (every op a node),
with masks, lags, feedback, float32 and truncated BPTT.  Steps that cannot be replayed fall
back to the engine, and the unroll says why."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
from tinygraph import tape

from viz_layout import designs

T = 11


def _args(name, model, rng, batch):
    lead = (T,) if batch is None else (T, batch)
    ids = rng.integers(0, 4, size=lead)
    ys = rng.integers(0, 4, size=lead)
    if name == "seq2one":
        return (ids, ys[-1]), {}
    if name == "vec2seq":
        return (rng.normal(size=(4,) if batch is None else (batch, 4)), ys), {}
    if name in ("user_lstm", "peephole"):
        return (rng.normal(size=lead + (2,)), ys), {}
    if name == "esn":
        return (ids, rng.normal(size=lead + (4,))), {}
    return (ids, ys), {}


def _graph_ops(root):
    seen, stack, ops = set(), [root], []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        ops.append(node.op)
        stack.extend(node.parents)
    return ops


def _loss_and_grads(model, args, kwargs, how):
    model.zero_grad()
    if how == "run":
        loss = model.run(*args, **kwargs).loss
    else:
        model.replayable = how == "replay"
        try:
            loss = model.loss(*args, **kwargs)
        finally:
            model.replayable = True
    ops = _graph_ops(loss)
    loss.backward()
    return loss.item(), {n: p.grad.copy() for n, p in model.named_parameters()}, ops


def _close(a, b, tol=1e-12):
    assert abs(a[0] - b[0]) <= tol * max(1.0, abs(b[0]))
    for name in b[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], rtol=tol, atol=tol, err_msg=name)


NOT_REPLAYED = {"seq2one", "encdec", "vec2seq", "conditional", "jordan", "esn"}


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("name", sorted(designs()))
def test_every_design_replays_to_the_same_loss_and_gradients(name, batch):
    model = designs()[name]
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data = rng.normal(scale=0.6, size=p.shape)
    args, kwargs = _args(name, model, rng, batch)
    replayed = _loss_and_grads(model, args, kwargs, "replay")
    engine = _loss_and_grads(model, args, kwargs, "engine")
    per_step = _loss_and_grads(model, args, kwargs, "run")
    _close(replayed, engine)
    _close(replayed, per_step)
    assert "replay" not in engine[2] and "replay" not in per_step[2]
    print(name, "replay" in replayed[2])
