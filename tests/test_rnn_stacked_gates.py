"""Gated cells as one product per step (issue 22): on the loss path the LSTM's four gates, and
the GRU's update and reset gates, come from one ``addmm`` per step against their weights
stacked once per unroll (one ``join_transposed`` node), while ``run`` (what the diagrams draw)
keeps one product per gate.  Both paths give the same loss and gradients as each other and as
the hand-written numpy BPTT, every parameter keeping its own name and gradient."""

import collections
import threading

import numpy as np
import pytest

import bptt_reference as ref
import rnn
import tinygraph as tg
from rnn.core import joined, walk

N_IN, H, N_OUT = 3, 4, 5


def _arrays(model):
    return {k: v.data for k, v in model.named_parameters()}


def _grads(model, loss):
    names, params = zip(*model.named_parameters())
    return dict(zip(names, tg.grad(loss, list(params), retain_graph=True)))


def _inputs(kind, steps, batch, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shape = (steps,) if batch is None else (steps, batch)
    if kind == "ids":
        return rng.integers(0, N_IN, shape)
    return rng.normal(size=shape + (N_IN,)).astype(dtype)


def _ids(steps, batch, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, N_OUT, (steps,) if batch is None else (steps, batch))


def _mask(steps, batch):
    mask = np.ones((steps, batch), dtype=int)
    mask[-2:, 0] = 0
    mask[-1, -1] = 0
    return mask


def _ops(loss):
    return collections.Counter(node.op for node in walk([loss]))


def _assert_close(got, want, tol):
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol, err_msg=name)


# ------------------------------------------------------------------ one product per step

@pytest.mark.parametrize("cls, per_gate", [(rnn.LSTM, 4), (rnn.GRU, 3)])
def test_the_loss_makes_one_product_per_step_for_the_gates(cls, per_gate):
    """LSTM: one addmm for the four gates per step (+ one readout); GRU: one for u and r plus
    the candidate's.  Per gate it would be 4 (LSTM) and 3 (GRU) per step."""
    m = cls(N_IN, H, N_OUT, seed=2)
    m.replayable = False         # every step as engine ops (replayed steps are one node)
    steps = 5
    xs, ys = _inputs("ids", steps, 2), _ids(steps, 2, 3)
    ops = _ops(m.loss(xs, ys))
    recurrent = 1 if cls is rnn.LSTM else 2     # addmm per step
    assert ops["addmm"] == recurrent * steps + 1
    assert ops["join_transposed"] == 2      # the gates' W and their U, once per unroll each
    assert ops["sigmoid"] == steps          # one sigmoid node for all sigmoid gates of a step
    run_ops = _ops(m.run(xs, ys).loss)      # the diagrams' form: one product per gate
    assert run_ops["join_transposed"] == 0
    assert run_ops["addmm"] == (per_gate + 1) * steps


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_run_keeps_the_named_gates_of_every_step(cls):
    m = cls(N_IN, H, N_OUT, seed=2)
    run = m.run(_inputs("ids", 3, None), _ids(3, None, 3))
    names = {node.name for node in walk([run.loss])}
    assert ({"f", "g", "q"} if cls is rnn.LSTM else {"u", "r"}) <= names


# ------------------------------------------------------------------ exact gradients

@pytest.mark.parametrize("cls, oracle", [(rnn.LSTM, ref.lstm), (rnn.GRU, ref.gru)])
@pytest.mark.parametrize("kind", ["ids", "floats"])
@pytest.mark.parametrize("batch, masked", [(None, False), (1, False), (3, False), (3, True)])
@pytest.mark.parametrize("candidate", ["tanh", "sigmoid"])
def test_stacked_equals_per_gate_and_numpy_bptt(cls, oracle, kind, batch, masked, candidate):
    m = cls(N_IN, H, N_OUT, seed=4, candidate=candidate)
    xs, ys = _inputs(kind, 6, batch), _ids(6, batch, 5)
    mask = _mask(6, batch) if masked else None
    stacked = m.loss(xs, ys, mask=mask)
    per_gate = m.run(xs, ys, mask=mask).loss
    assert _ops(stacked)["join_transposed"] == 2 and _ops(per_gate)["join_transposed"] == 0
    want_loss, want = oracle(_arrays(m), xs, ys, mask=mask, candidate=candidate)
    assert stacked.item() == pytest.approx(want_loss, rel=1e-12)
    assert stacked.item() == pytest.approx(per_gate.item(), rel=1e-12)
    _assert_close(_grads(m, stacked), want, 1e-12)
    _assert_close(_grads(m, stacked), _grads(m, per_gate), 1e-12)


def test_stacked_lstm_from_a_given_state_equals_numpy_bptt():
    m = rnn.LSTM(N_IN, H, N_OUT, seed=5)
    rng = np.random.default_rng(6)
    h0 = {"s": rng.normal(size=(2, H)), "h": rng.normal(size=(2, H))}
    xs, ys = _inputs("floats", 4, 2), _ids(4, 2, 7)
    loss = m.loss(xs, ys, h0=h0)
    want_loss, want = ref.lstm(_arrays(m), xs, ys, h0=h0["h"], s0=h0["s"])
    assert loss.item() == pytest.approx(want_loss, rel=1e-12)
    _assert_close(_grads(m, loss), want, 1e-12)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
@pytest.mark.parametrize("layers, bidirectional", [(2, False), (1, True), (2, True)])
def test_layers_and_directions_stack_each_chains_gates(cls, layers, bidirectional):
    m = cls(N_IN, H, N_OUT, seed=6, layers=layers, bidirectional=bidirectional)
    xs, ys, mask = _inputs("ids", 5, 3), _ids(5, 3, 8), _mask(5, 3)
    stacked = m.loss(xs, ys, mask=mask)
    per_gate = m.run(xs, ys, mask=mask).loss
    chains = layers * (2 if bidirectional else 1)
    assert _ops(stacked)["join_transposed"] == 2 * chains
    assert stacked.item() == pytest.approx(per_gate.item(), rel=1e-12)
    _assert_close(_grads(m, stacked), _grads(m, per_gate), 1e-12)


def test_the_torch_style_gru_keeps_one_product_per_gate_and_its_gradients():
    """reset="after" (torch's GRU) is not stacked: its candidate product has its own bias."""
    m = rnn.GRU(N_IN, H, N_OUT, seed=7, reset="after")
    xs, ys = _inputs("floats", 5, 2), _ids(5, 2, 9)
    stacked = m.loss(xs, ys)
    assert _ops(stacked)["join_transposed"] == 0
    _assert_close(_grads(m, stacked), _grads(m, m.run(xs, ys).loss), 1e-12)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_float32_stacked_keeps_the_dtype_and_matches_float64(cls):
    m32 = cls(N_IN, H, N_OUT, seed=8, dtype=np.float32)
    m64 = cls(N_IN, H, N_OUT, seed=8)
    m64.load_state_dict({k: v.astype(np.float64) for k, v in _arrays(m32).items()})
    xs, ys, mask = _inputs("floats", 6, 3, dtype=np.float32), _ids(6, 3, 10), _mask(6, 3)
    loss32 = m32.loss(xs, ys, mask=mask)
    assert loss32.dtype == np.float32
    g32 = _grads(m32, loss32)
    assert all(g.dtype == np.float32 for g in g32.values())
    _assert_close(g32, _grads(m32, m32.run(xs, ys, mask=mask).loss), 1e-5)
    loss64 = m64.loss(xs.astype(np.float64), ys, mask=mask)
    assert loss32.item() == pytest.approx(loss64.item(), rel=1e-5)
    _assert_close(g32, _grads(m64, loss64), 1e-5)


def test_truncated_bptt_with_stacked_gates_equals_the_per_gate_chunks():
    """Chunks carried from one ``loss`` to the next (what training does) give the gradients
    of the same chunks run per gate."""
    m = rnn.LSTM(N_IN, H, N_OUT, seed=9)
    xs, ys = _inputs("ids", 8, 2), _ids(8, 2, 11)
    grads = {}
    for per_step in (False, True):
        carry, total = {}, None
        for start in (0, 4):
            run = m.run(xs[start:start + 4], ys[start:start + 4], per_step=per_step, **carry)
            carry = m.carry(run)
            total = run.loss if total is None else total + run.loss
        grads[per_step] = _grads(m, total)
    _assert_close(grads[False], grads[True], 1e-12)


# ------------------------------------------------------------------ the joined weights

def test_joined_gives_every_weight_its_own_block_of_the_gradient():
    rng = np.random.default_rng(12)
    ws = [tg.Parameter(rng.normal(size=(n, 3)), name=f"W{n}") for n in (2, 4, 1)]
    out = joined(ws)
    np.testing.assert_array_equal(out.data, np.concatenate([w.data.T for w in ws], axis=1))
    g = rng.normal(size=out.shape)
    (out * g).sum().backward()
    np.testing.assert_array_equal(ws[0].grad, g[:, :2].T)
    np.testing.assert_array_equal(ws[1].grad, g[:, 2:6].T)
    np.testing.assert_array_equal(ws[2].grad, g[:, 6:].T)


def test_joined_has_a_rule_for_create_graph():
    """Second order through the stacked weights: d/dW of ||dL/dW||^2, equal on both paths."""
    rng = np.random.default_rng(13)
    ws = [tg.Parameter(rng.normal(size=(3, 3)), name=n) for n in "ab"]
    x = rng.normal(size=(2, 3))

    def second(join):
        y = (tg.Tensor(x) @ join(ws)).tanh().sum()
        gs = tg.grad(y, ws, create_graph=True)
        return tg.grad(sum((g * g).sum() for g in gs), ws)

    stacked = second(joined)
    per_weight = second(lambda ws: tg.concat([w.T for w in ws], axis=1))
    for s, p in zip(stacked, per_weight):
        np.testing.assert_allclose(s, p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_second_order_through_the_stacked_loss_equals_the_per_gate_loss(cls):
    """A gradient penalty (d/dtheta of ||dL/dtheta||^2) through a whole stacked unroll."""
    m = cls(N_IN, H, N_OUT, seed=17)
    xs, ys = _inputs("floats", 4, 2), _ids(4, 2, 18)
    params = m.parameters()
    second = []
    for loss in (m.loss(xs, ys), m.run(xs, ys).loss):
        gs = tg.grad(loss, params, create_graph=True)
        second.append(tg.grad(sum((g * g).sum() for g in gs), params))
    for s, p in zip(*second):
        np.testing.assert_allclose(s, p, rtol=1e-12, atol=1e-12)


def test_the_stacking_choice_belongs_to_the_thread_that_unrolls():
    """One model unrolled per step in one thread and for the loss in another at the same time:
    each thread's unroll draws its own form."""
    m = rnn.LSTM(N_IN, H, N_OUT, seed=14)
    xs, ys = _inputs("ids", 4, 2), _ids(4, 2, 15)
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def per_gate():
        with m.transposes():
            inside.set()
            done.wait(10)
            seen["thread"] = m.T.stack_gates

    thread = threading.Thread(target=per_gate)
    thread.start()
    inside.wait(10)
    seen["loss"] = _ops(m.loss(xs, ys))["join_transposed"]
    done.set()
    thread.join()
    assert seen == {"thread": False, "loss": 2}


# ------------------------------------------------------------------ sums of wide gathered rows

@pytest.mark.parametrize("vocab, width, shape, dtype", [
    (7, 600, (60, 50), np.float64),     # few ids, wide rows (the stacked gates): a sum per id
    (7, 600, (3000,), np.float32),
    (5000, 3, (2000,), np.float64),     # many ids, narrow rows: one reduceat per chunk
    (40, 64, (33,), np.float64),
])
def test_the_gradient_of_take_sums_every_ids_rows_as_add_at(vocab, width, shape, dtype):
    rng = np.random.default_rng(16)
    table = tg.Parameter(rng.normal(size=(vocab, width)), dtype=dtype)
    ids = rng.integers(-vocab, vocab, shape)
    g = rng.normal(size=shape + (width,)).astype(dtype)
    (tg.take(table, ids, axis=0) * g).sum().backward()
    want = np.zeros((vocab, width), dtype)
    np.add.at(want, ids.reshape(-1) % vocab, g.reshape(-1, width))
    assert table.grad.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(table.grad, want, rtol=tol, atol=tol)
