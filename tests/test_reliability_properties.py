"""Property-based tests beyond single ops: random chains of ops, errors inside an unroll, rnn ids.

``test_engine_properties.py`` checks every op alone.  Here hypothesis draws
whole chains (broadcasting binary ops, matmuls, reductions over random axes,
reshapes, transposes, integer-array and boolean indexing, possibly out of range)
and numpy, run step by step beside the engine, is the oracle: either the chain
gives numpy's value and a gradient equal to independent central differences,
or the engine raises a clean ``TinygraphError`` at the step numpy refuses,
naming the op, the shapes and the scope it ran in, and changing no input.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import rnn
import tinygraph as tg
from conftest import central_differences

SETTINGS = settings(max_examples=100, deadline=None)
NUMPY_ERRORS = (ValueError, IndexError, TypeError)

shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


def _random(shape, rng, away_from_zero=False):
    a = rng.standard_normal(shape)
    if away_from_zero:
        a = np.sign(a) * (np.abs(a) + 0.5) + (a == 0)
    return np.asarray(a, dtype=np.float64)


UNARY = {"neg": (tg.neg, np.negative), "exp": (tg.exp, np.exp), "tanh": (tg.tanh, np.tanh),
         "sigmoid": (tg.sigmoid, lambda a: 1 / (1 + np.exp(-a)))}
BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
TG_BINARY = {"add": tg.add, "sub": tg.sub, "mul": tg.mul, "div": tg.div}
REDUCE = {"sum": (tg.sum, np.sum), "mean": (tg.mean, np.mean), "max": (tg.max, np.max)}


def _partner_shape(data, shape):
    """A shape that broadcasts against ``shape`` (usually), or any shape (may not)."""
    broadcastable = st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)).map(
        lambda ones: tuple(1 if one else n for one, n in zip(ones, shape)))
    dropped = st.integers(0, len(shape)).map(lambda k: shape[k:])
    return data.draw(st.one_of(broadcastable, dropped, shapes))


def _draw_step(data, shape):
    """One random step for a value of ``shape``: (label, extra input shapes, numpy fn, tg fn)."""
    kind = data.draw(st.sampled_from(["unary", "binary", "matmul", "reduce", "reshape",
                                      "transpose", "index", "mask"]))
    if kind == "unary":
        name = data.draw(st.sampled_from(sorted(UNARY)))
        tg_fn, np_fn = UNARY[name]
        return name, [], lambda a: np_fn(a), lambda t: tg_fn(t)
    if kind == "binary":
        name = data.draw(st.sampled_from(sorted(BINARY)))
        return (name, [_partner_shape(data, shape)], BINARY[name], TG_BINARY[name])
    if kind == "matmul":
        inner = shape[-1] if shape and data.draw(st.booleans()) else data.draw(st.integers(1, 3))
        right = data.draw(st.sampled_from([(inner,), (inner, data.draw(st.integers(1, 3)))]))
        return "matmul", [right], np.matmul, tg.matmul
    if kind == "reduce":
        name = data.draw(st.sampled_from(sorted(REDUCE)))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape) - 1, len(shape))))
        keepdims = data.draw(st.booleans())
        tg_fn, np_fn = REDUCE[name]
        return (name, [], lambda a: np_fn(a, axis=axis, keepdims=keepdims),
                lambda t: tg_fn(t, axis=axis, keepdims=keepdims))
    if kind == "reshape":
        target = data.draw(st.one_of(st.permutations(shape).map(tuple), shapes,
                                     st.just((-1,) + shape[1:])))
        return "reshape", [], lambda a: a.reshape(target), lambda t: t.reshape(target)
    if kind == "transpose":
        perm = data.draw(st.one_of(st.permutations(range(len(shape))).map(tuple),
                                   st.lists(st.integers(-3, 3), max_size=3).map(tuple)))
        return ("transpose", [], lambda a: a.transpose(perm or None),
                lambda t: tg.transpose(t, perm))
    if kind == "index":
        n = shape[0] if shape else 1
        ids = st.lists(st.integers(-n - 1, n), min_size=1, max_size=4).map(np.array)
        index = data.draw(st.one_of(ids, st.tuples(ids, ids)))
        return "index", [], lambda a: a[index], lambda t: t[index]
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=1, max_size=3)))
    if not mask.any():
        mask[0] = True
    return "index", [], lambda a: a[mask], lambda t: t[mask]


def _draw_chain(data, rng):
    """Inputs and steps of a random chain; stops at the first step numpy refuses.

    Returns (arrays, steps, failing) with ``failing`` the label of the refused step or None.
    """
    shape = data.draw(shapes)
    arrays = [_random(shape, rng)]
    steps = []
    value = arrays[0]
    for _ in range(data.draw(st.integers(2, 5))):
        label, extra_shapes, np_fn, tg_fn = _draw_step(data, value.shape)
        extras = [_random(s, rng, away_from_zero=label == "div") for s in extra_shapes]
        steps.append((len(arrays), len(extras), np_fn, tg_fn))
        arrays.extend(extras)
        try:
            with np.errstate(all="raise"):
                value = np_fn(value, *extras)
        except NUMPY_ERRORS:
            return arrays, steps, label
        except FloatingPointError:      # an overflow or an empty mean: not this test's subject
            return arrays, steps[:-1], None
        if value.size == 0 or np.abs(value).max() > 1e4:
            # empty, or too large for the oracle: central differences (eps 1e-6) of a sum whose
            # terms reach 1e4 lose the digits of a gradient near 1 (exp(exp(exp(x))) + y: 0 for y)
            return arrays, steps[:-1], None
    return arrays, steps, None


NUMPY, ENGINE = 0, 1    # which of a step's two functions _run applies


def _run(steps, inputs, which):
    """Apply the chain to ``inputs``: numpy arrays with ``NUMPY``, Tensors with ``ENGINE``."""
    value = inputs[0]
    for start, count, *fns in steps:
        value = fns[which](value, *inputs[start:start + count])
    return value


@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
def test_random_chain_of_ops_gives_numpys_value_and_gradient_or_a_clean_error(data, seed):
    arrays, steps, failing = _draw_chain(data, np.random.default_rng(seed))
    tensors = [tg.tensor(a.copy(), requires_grad=True) for a in arrays]
    if failing is not None:
        with pytest.raises(tg.TinygraphError) as info:
            _run(steps, tensors, ENGINE)
        assert str(info.value).startswith(failing)
        return
    if not steps:
        return
    out = _run(steps, tensors, ENGINE)
    expected = _run(steps, arrays, NUMPY)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    r = np.random.default_rng(seed + 1).standard_normal(out.shape)
    analytic = tg.grad(out, tensors, grad=r)
    numeric = central_differences(lambda *a: float(np.sum(r * _run(steps, a, NUMPY))), arrays)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-6 * (1 + np.abs(n).max()))


@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
def test_random_chain_in_float32_keeps_float32_values_and_gradients(data, seed):
    arrays, steps, failing = _draw_chain(data, np.random.default_rng(seed))
    if failing is not None or not steps:
        return
    narrow = [tg.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    with np.errstate(all="ignore"):          # float32 may overflow where float64 did not
        out = _run(steps, narrow, ENGINE)
        r = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(np.float32)
        grads = tg.grad(out, narrow, grad=r)
    assert out.dtype == np.float32
    for g, t in zip(grads, narrow):
        assert g.dtype == np.float32 and g.shape == t.shape


@SETTINGS
@given(op=st.sampled_from(["add", "sub", "mul", "div", "matmul"]), shape_a=shapes, shape_b=shapes,
       t=st.integers(1, 100_000))
def test_shape_error_inside_an_unroll_names_op_shapes_and_time_step_and_changes_nothing(
        op, shape_a, shape_b, t):
    fn, np_fn = (tg.matmul, np.matmul) if op == "matmul" else (TG_BINARY[op], BINARY[op])
    a = tg.tensor(np.ones(shape_a), requires_grad=True)
    b = tg.tensor(np.full(shape_b, 2.0), requires_grad=True)
    try:
        np_fn(a.data, b.data)
    except NUMPY_ERRORS:
        with tg.scope("model"), tg.scope(f"t={t}"), pytest.raises(tg.ShapeError) as info:
            fn(a, b)
        message = str(info.value)
        assert message.startswith(op) and f"'model/t={t}'" in message
        assert str(shape_a) in message and str(shape_b) in message
        assert np.all(a.data == 1.0) and np.all(b.data == 2.0)
        assert a.grad is None and b.grad is None
        return
    with tg.scope("model"), tg.scope(f"t={t}"):
        assert fn(a, b).scope == f"model/t={t}"


DESIGNS = {"elman": rnn.ElmanRNN, "jordan": rnn.JordanRNN, "conditional": rnn.ConditionalRNN}


@pytest.mark.parametrize("design", sorted(DESIGNS))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), vocab=st.integers(2, 5), n_out=st.integers(2, 4),
       steps=st.integers(1, 6), batch=st.one_of(st.none(), st.integers(1, 3)))
def test_rnn_names_the_first_bad_id_its_time_step_and_the_valid_range(design, data, vocab, n_out,
                                                                       steps, batch):
    shape = (steps,) if batch is None else (steps, batch)
    count = int(np.prod(shape))
    xs = np.array(data.draw(st.lists(st.integers(-2, vocab + 1), min_size=count,
                                     max_size=count))).reshape(shape)
    ys = np.array(data.draw(st.lists(st.integers(-1, n_out), min_size=count,
                                     max_size=count))).reshape(shape)
    model = DESIGNS[design](vocab, 3, n_out, seed=0)
    bad_x = np.argwhere((xs < 0) | (xs >= vocab))
    bad_y = np.argwhere((ys < 0) | (ys >= n_out))
    if not len(bad_x) and not len(bad_y):
        assert np.isfinite(model.loss(xs, ys).item())
        return
    what, ids, bad, n = ("xs", xs, bad_x, vocab) if len(bad_x) else ("ys", ys, bad_y, n_out)
    where = tuple(bad[0])
    at = f"t={where[0] + 1}" + ("" if batch is None else f", b={where[1]}")
    with pytest.raises(tg.BadIndexError) as info:
        model.loss(xs, ys)
    assert f"{design}: {what} id {ids[where]} at {at} is out of range [0, {n})" in str(info.value)
