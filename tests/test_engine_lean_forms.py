"""Lean forms (tinygraph.ops ``LEAN_FORWARDS`` / ``LEAN_GRADS``): the loop of a replayed step
calls numpy directly for the ops that have one instead of going through the op's forward and
gradient rule.  A lean form is the same forward or rule written as source, so it must give the
same bits: each form equals its op on arrays of many shapes (broadcasting included), and every
design's loss and gradients with lean forms equal them without, exactly (``np.array_equal``)."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
from tinygraph import ops, tape
from tinygraph.tensor import Product

from test_rnn_replay import _args as replay_args
from viz_layout import designs

T = 11


# ---------------------------------------------------------------- each form against its op
def _run(lines, names):
    env = dict(names)
    exec("\n".join(lines), env)      # noqa: S102 - the generated code under test
    return env


def _lean_forward(forward, inputs, **kwargs):
    """(the op's own output and rule, the lean form's output), or None without a form."""
    out, rule = forward(*inputs, **kwargs)
    out = np.asarray(out)
    names = {f"x{m}": f"v{m}" for m in range(len(inputs))}
    names.update(xs="".join(f"v{m}, " for m in range(len(inputs))), out="y")
    env = {}
    lines = tape.lean_forward(forward, rule, out, list(inputs), kwargs, names, env, 0)
    if lines is None:
        return None
    env.update({f"v{m}": x for m, x in enumerate(inputs)})
    return out, rule, _run(lines, env)["y"]


def _same(a, b):
    assert type(a) is type(b) is np.ndarray
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a, b, equal_nan=True)


def _check(forward, *inputs, **kwargs):
    """The lean forward and every lean gradient of ``forward`` on ``inputs`` equal the op's."""
    got = _lean_forward(forward, inputs, **kwargs)
    assert got is not None, forward.__name__
    out, rule, lean_out = got
    _same(out, lean_out)
    rng = np.random.default_rng(5)
    g = rng.normal(size=out.shape).astype(out.dtype)
    if rule.joint is not None:
        expected = rule.joint(g, out, *inputs, **kwargs)
    else:
        expected = [None if grad is None else grad(g, out, *inputs, **kwargs)
                    for grad in rule.grads]
    # as in a replayed step: None for what the rule does not read (its inputs, its output)
    names = {f"x{m}": f"v{m}" if rule.saves else "None" for m in range(len(inputs))}
    names.update(out="out" if rule.reads_out else "None", g="g", pg="pg")
    checked = 0
    for k, want in enumerate(expected):
        if want is None or not isinstance(inputs[k], np.ndarray):
            continue
        env = {}
        form = tape.lean_grad(rule, k, out, list(inputs), kwargs, names, env, k)
        assert form is not None, (forward.__name__, k)
        lines, result = form
        env.update({f"v{m}": x for m, x in enumerate(inputs)}, out=out, g=g.copy())
        pg = _run(lines, env)["pg"]
        if result is not None:        # said to be a plain array of that shape and dtype
            assert type(pg) is np.ndarray and (pg.shape, pg.dtype) == result
        if type(want) is Product:
            assert type(pg) is Product
            want, pg = np.asarray(want), np.asarray(pg)
        _same(np.asarray(want), pg)
        checked += 1
    assert checked


R = np.random.default_rng(0)


def _a(*shape, dtype=np.float64):
    return R.normal(size=shape).astype(dtype)


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)),
                 ((2, 3, 4), (3, 1)), ((5,), (1,))]


@pytest.mark.parametrize("forward", [ops._add, ops._sub, ops._mul, ops._div])
@pytest.mark.parametrize("shapes", BINARY_SHAPES)
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32),
                                    (np.float32, np.float64)])
def test_a_binary_ops_lean_form_is_the_op_with_broadcasting(forward, shapes, dtypes):
    _check(forward, _a(*shapes[0], dtype=dtypes[0]), _a(*shapes[1], dtype=dtypes[1]))


@pytest.mark.parametrize("forward", [ops._add, ops._sub, ops._mul, ops._div])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_binary_ops_lean_form_is_the_op_with_a_number_or_a_0d_array(forward, dtype):
    x = _a(3, 4, dtype=dtype)
    for other in (1.5, 2, np.float64(0.5), np.asarray(0.25, dtype)):
        assert _lean_forward(forward, (x, other)) is not None
        _same(*_lean_forward(forward, (x, other))[::2])
        _same(*_lean_forward(forward, (other, x))[::2])
    _check(forward, x, np.asarray(0.75, dtype))


@pytest.mark.parametrize("forward", [ops._neg, ops._exp, ops._tanh, ops._sigmoid])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_elementwise_ops_lean_form_is_the_op(forward, shape, dtype):
    x = _a(*shape, dtype=dtype) * 4
    x.flat[0] = 40.0        # where exp and the sigmoid's e = exp(-|x|) are extreme
    x.flat[-1] = -40.0
    _check(forward, x)


@pytest.mark.parametrize("shapes", [((2, 5), (2, 3), (3, 5)), ((5,), (2, 3), (3, 5)),
                                    ((5,), (3,), (3, 5)), ((1, 5), (4, 3), (3, 5)),
                                    ((), (2, 3), (3, 5))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_addmms_lean_form_is_the_op(shapes, dtype):
    c, a, b = (_a(*s, dtype=dtype) for s in shapes)
    _check(ops._addmm, c, a, b)


def test_addmm_has_no_lean_form_where_the_op_does_not_add_into_its_product():
    a, b = _a(2, 3, dtype=np.float32), _a(3, 5, dtype=np.float32)
    assert _lean_forward(ops._addmm, (_a(2, 5), a, b)) is None      # float64 + float32 product
    assert _lean_forward(ops._addmm, (_a(3, 2, 5), a, b)) is None   # c broadcasts the product
    assert _lean_forward(ops._matmul, (_a(2, 2, 3), _a(3, 5))) is None   # a batch: a @ b


@pytest.mark.parametrize("shapes", [((2, 3), (3, 5)), ((3,), (3, 5)), ((1, 3), (3, 1))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmuls_lean_form_is_the_op(shapes, dtype):
    _check(ops._matmul, *(_a(*s, dtype=dtype) for s in shapes))


def test_the_shape_ops_lean_forms_are_the_ops():
    _check(ops._transpose, _a(3, 4))
    _check(ops._transpose, _a(2, 3, 4), axes=(2, 0, 1))
    _check(ops._transpose, _a(2, 3, 4), axes=(-1, 0, 1))
    _check(ops._reshape, _a(3, 4), shape=(2, 6))
    _check(ops._reshape, _a(12), shape=(3, -1))
    _check(ops._sum, _a(3, 4), axis=0, keepdims=False)
    _check(ops._sum, _a(3, 4), axis=-1, keepdims=True)
    _check(ops._sum, _a(2, 3, 4), axis=(0, 2), keepdims=False)
    _check(ops._sum, _a(3, 4, dtype=np.float32), axis=1, keepdims=False)
    _check(ops._concat, _a(2, 3), _a(2, 5), axis=1)
    _check(ops._concat, _a(2, 3), _a(4, 3), _a(1, 3), axis=0)
    _check(ops._stack, _a(2, 3), _a(2, 3), axis=0)
    _check(ops._stack, _a(2, 3), _a(2, 3), _a(2, 3), axis=-1)


def test_no_lean_form_for_a_0d_output():
    assert _lean_forward(ops._add, (np.asarray(1.0), np.asarray(2.0))) is None
    assert _lean_forward(ops._sum, (_a(3, 4),), axis=None, keepdims=False) is None


# ---------------------------------------------------------------- every design, on and off
def _lean_ran():
    """Whether a replayed loop made since the caches were cleared called numpy directly."""
    for _, code in tape._known.values():
        for key, (forward, backward) in ((k, v) for k, v in code.items() if k[0] == "scan"):
            names = forward.__code__.co_names + backward.__code__.co_names
            if any(name.startswith("L_") for name in names):
                return True
    return False


def _fresh(name, dtype, seed=1):
    model = designs()[name] if name != "leaky" else rnn.LeakyRNN(4, 3, 4)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.normal(scale=0.6, size=p.shape).astype(dtype)
    return model, rng


def _args(name, rng, batch):
    """The inputs test_rnn_replay gives each design (same T)."""
    return replay_args(name, None, rng, batch)


def _both(monkeypatch, compute):
    """``compute()`` with lean forms, then without them (empty tables), each from compiled
    code of its own; returns the two results and whether the first ran lean forms."""
    got = []
    for lean in (True, False):
        tape._known.clear()
        with monkeypatch.context() as patch:
            if not lean:
                patch.setattr(ops, "LEAN_FORWARDS", {})
                patch.setattr(ops, "LEAN_GRADS", {})
            got.append(compute())
            ran = _lean_ran()
        assert ran == (lean and ran)
        if lean:
            lean_ran = ran
    tape._known.clear()
    return got[0], got[1], lean_ran


def _loss_and_grads(model, args, kwargs):
    model.zero_grad()
    run = model.run_for_loss(*args, **kwargs)
    run.loss.backward()
    return (run.loss.data.copy(), [p.grad.copy() for p in model.parameters()],
            run.replayed)


def _identical(a, b):
    assert np.array_equal(a[0], b[0])
    for x, y in zip(a[1], b[1]):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert a[2] == b[2]


SCANNED = {"elman", "lstm", "gru", "leaky", "user_lstm", "bidirectional", "deep_stacked",
           "peephole", "memory"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("name", sorted(set(designs()) | {"leaky"}))
def test_every_design_gives_the_same_bits_with_lean_forms_as_without(monkeypatch, name, batch,
                                                                       dtype):
    model, rng = _fresh(name, dtype)
    args, kwargs = _args(name, rng, batch)
    on, off, ran = _both(monkeypatch, lambda: _loss_and_grads(model, args, kwargs))
    _identical(on, off)
    if name in SCANNED:
        assert ran, name


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "user_lstm", "bidirectional"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masked_steps_give_the_same_bits_with_lean_forms_as_without(monkeypatch, name, dtype):
    model, rng = _fresh(name, dtype)
    args, kwargs = _args(name, rng, 4)
    mask = np.ones((T, 4))
    mask[T - 3:, 0] = 0
    mask[7, 2] = 0
    mask[8, 3] = 0
    kwargs["mask"] = mask
    on, off, ran = _both(monkeypatch, lambda: _loss_and_grads(model, args, kwargs))
    _identical(on, off)
    assert ran


def test_lagged_steps_give_the_same_bits_with_lean_forms_as_without(monkeypatch):
    model, rng = _fresh("leaky_skip", np.float64)
    args, kwargs = _args("leaky_skip", rng, 3)
    on, off, _ = _both(monkeypatch, lambda: _loss_and_grads(model, args, kwargs))
    _identical(on, off)
    assert on[2] is not None


def test_truncated_bptt_gives_the_same_bits_with_lean_forms_as_without(monkeypatch):
    def train():
        model, rng = _fresh("lstm", np.float64, seed=3)
        xs = rng.integers(0, 4, size=(40, 2))
        ys = rng.integers(0, 4, size=(40, 2))
        losses, _ = rnn.truncated_bptt(rnn.Trainer(model, lr=0.1), xs, ys, chunk=10)
        return np.asarray(losses), [p.data.copy() for p in model.parameters()], None
    on, off, ran = _both(monkeypatch, train)
    _identical(on, off)
    assert ran


def _scan(buffer_dtype):
    """A step h -> tanh(u + h W) recorded and run by compile_scan's loops over T steps whose
    states go into a buffer of ``buffer_dtype``: (states, input, state and W gradients)."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    h = tg.Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    u = tg.Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    with tape.recording() as rec:
        y = tg.addmm(u, h, W).tanh()
    program = tape.Program.of(rec, [h, u], [y])
    forward, backward = tape.compile_scan(program, 1, *program.forward([h.data, u.data]))
    xs, rows = rng.normal(size=(T, 2, 3)), list(range(T))
    masks = [None] * T
    masks[4] = np.asarray([[1.0], [0.0]], buffer_dtype)
    states = np.empty((T, 2, 3), buffer_dtype)
    saved = forward([h.data], [xs], rows, masks, [states], rows, [W.data])
    gxs, deferred = [np.zeros_like(xs)], [[]]
    ups = [rng.normal(size=(T, 2, 3)).astype(buffer_dtype)]
    (g_h,), (g_w,) = backward(saved, ups, masks, rows, gxs, deferred)
    return states, gxs[0], g_h, g_w, deferred[0]


@pytest.mark.parametrize("buffer_dtype", [np.float64, np.float32])
def test_the_loops_run_without_lean_forms_where_a_states_buffer_is_of_another_dtype(
        monkeypatch, buffer_dtype):
    """States kept in another dtype than the step made them (float32 rows of a float64 step):
    the loops check it before the first step and run as they do without lean forms."""
    on, off, ran = _both(monkeypatch, lambda: _scan(buffer_dtype))
    assert ran
    for a, b in zip(on[:3], off[:3]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert len(on[4]) == len(off[4]) and all(
        np.array_equal(x, y) for p, q in zip(on[4], off[4]) for x, y in zip(p, q))


# ---------------------------------------------------------------- a weight read at every step
def _lstm_like(batch, hidden, dtype, steps=6, n_in=5, seed=0):
    """A user's cell whose step multiplies by ``Wh.T`` (a transpose taken in the step, not
    C-contiguous), the gates sliced from one product; its data (steps, batch)."""
    rng = np.random.default_rng(seed)
    P = {"Ux": tg.Parameter(rng.normal(0, 0.4, (4 * hidden, n_in)).astype(dtype), name="Ux"),
         "Wh": tg.Parameter(rng.normal(0, 0.1, (4 * hidden, hidden)).astype(dtype), name="Wh"),
         "V": tg.Parameter(rng.normal(0, 0.3, (3, hidden)).astype(dtype), name="V")}
    H = hidden

    def step(state, u):
        z = tg.addmm(u, state["h"], P["Wh"].T)
        gates = z[..., :3 * H].sigmoid()
        s = gates[..., :H] * state["s"] + gates[..., H:2 * H] * z[..., 3 * H:].tanh()
        return {"s": s, "h": s.tanh() * gates[..., 2 * H:]}

    cell = rnn.Recurrence(step, list(P.values()), {"s": H, "h": H}, n_in=n_in,
                          readout=lambda state: state["h"] @ P["V"].T,
                          input_map=lambda x: x @ P["Ux"].T, name="lstm_like")
    xs = rng.normal(size=(steps, batch, n_in)).astype(dtype)
    ys = rng.integers(0, 3, size=(steps, batch))
    return cell, P, xs, ys


def _matrices_the_loops_multiply(monkeypatch, compute):
    """``compute()`` from freshly compiled loops, and the (shape, C-contiguous) of every
    matrix a lean form's product (``L_dot``) read as its second operand."""
    seen = []

    def dot(a, b, *rest, **kwargs):
        if np.ndim(b) == 2:
            seen.append((np.shape(b), np.asarray(b).flags.c_contiguous))
        return np.dot(a, b, *rest, **kwargs)

    tape._known.clear()
    tape._compiled.clear()
    with monkeypatch.context() as patch:
        patch.setitem(ops.LEAN_NAMES, "L_dot", dot)
        got = compute()
    tape._known.clear()
    tape._compiled.clear()
    return got, seen


def _cell_loss_and_grads(cell, P, xs, ys, replayable=True):
    cell.replayable = replayable
    for p in P.values():
        p.grad = None
    try:
        loss = cell.loss(xs, ys)
        loss.backward()
    finally:
        cell.replayable = True
    return loss.item(), {k: p.grad.copy() for k, p in P.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_replayed_steps_large_products_read_a_c_contiguous_copy_of_a_transposed_weight(
        monkeypatch, dtype):
    """h(t-1) @ Wh.T of 64 rows and a (128, 512) matrix (4.2 M multiply-adds per step): the
    loops multiply by a C-contiguous copy of Wh.T made once per loss (BLAS reads it faster),
    and the loss and gradients are those of the steps run as engine ops."""
    cell, P, xs, ys = _lstm_like(64, 128, dtype)
    (loss, grads), seen = _matrices_the_loops_multiply(
        monkeypatch, lambda: _cell_loss_and_grads(cell, P, xs, ys))
    weight = [c for shape, c in seen if shape == (128, 512)]
    assert weight and all(weight)
    want_loss, want = _cell_loss_and_grads(cell, P, xs, ys, replayable=False)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert abs(loss - want_loss) <= tol * abs(want_loss)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=tol, atol=tol, err_msg=k)


def test_a_replayed_steps_small_products_read_the_weight_as_it_is(monkeypatch):
    """Below ``tape._HOIST_WORK`` multiply-adds (here 2 x 8 x 32) a copy gains little, and
    BLAS's small-matrix and vector kernels add in another order for each layout: the loops
    multiply by Wh.T itself, as the engine's own op does, so the bits are the op's."""
    cell, P, xs, ys = _lstm_like(2, 8, np.float64)
    _, seen = _matrices_the_loops_multiply(monkeypatch, lambda: _cell_loss_and_grads(cell, P, xs, ys))
    weight = [c for shape, c in seen if shape == (8, 32)]
    assert weight and not any(weight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_replayed_steps_product_of_one_row_reads_the_weight_as_it_is(monkeypatch, dtype):
    """One row times Wh.T (batch 1: 1 x 512 x 2048, 2^20 multiply-adds, as many as the copy
    asks for) is a vector product: numpy runs it as BLAS's gemv, which adds in another order
    for each layout, so a C-contiguous copy gave other bits than the engine's op (loss and
    gradients: float64 off by 9e-16, float32 by 5e-7, where batch 2 gives the same bits); a
    copy gains nothing there either (one row times a (1024, 1024) view: 50-270 us, as fast as
    or faster than times its copy).  The loops read Wh.T as it is: the loss, and the gradients
    that flow through the products with Wh (Ux's, through g Wh at every step, and V's), are the
    engine's bit for bit.  Wh's own gradient, the sum of the steps' a^T g, is summed in chunks
    of stacked rows (``tape.sum_deferred``): the same products added in another order, to
    rounding."""
    cell, P, xs, ys = _lstm_like(1, 512, dtype)
    (loss, grads), seen = _matrices_the_loops_multiply(
        monkeypatch, lambda: _cell_loss_and_grads(cell, P, xs, ys))
    weight = [c for shape, c in seen if shape == (512, 2048)]
    assert weight and not any(weight)
    want_loss, want = _cell_loss_and_grads(cell, P, xs, ys, replayable=False)
    assert loss == want_loss
    for k in ("Ux", "V"):
        assert grads[k].dtype == want[k].dtype and np.array_equal(grads[k], want[k]), k
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(grads["Wh"], want["Wh"], rtol=tol, atol=tol * np.abs(want["Wh"]).max())


def test_the_copy_of_a_weight_follows_an_in_place_update_between_losses():
    """The C-contiguous copy is made from the weight's array at every loss: after an update
    in place (an optimizer's step), the next loss reads the new values."""
    cell, P, xs, ys = _lstm_like(64, 128, np.float64)
    _cell_loss_and_grads(cell, P, xs, ys)
    optimizer = tg.optim.SGD(list(P.values()), lr=0.5)
    optimizer.step()
    P["Wh"].data *= 1.5       # in place as well
    loss, grads = _cell_loss_and_grads(cell, P, xs, ys)
    want_loss, want = _cell_loss_and_grads(cell, P, xs, ys, replayable=False)
    assert abs(loss - want_loss) <= 1e-12 * abs(want_loss)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-12, atol=1e-14, err_msg=k)
