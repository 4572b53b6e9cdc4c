"""Property-based tests: random shapes, broadcasts, axes and indices for every op.

For each random case numpy itself is the oracle of validity: when numpy
accepts the inputs, the op's value equals numpy's and its gradient passes
finite differences (``tg.gradcheck``); when numpy refuses them, the op raises
a clean tinygraph error (a ``TinygraphError``), never an internal crash.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygraph as tg

SETTINGS = settings(max_examples=60, deadline=None)

shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2 ** 32 - 1)
axes = st.one_of(st.none(), st.integers(-4, 3),
                 st.lists(st.integers(-4, 3), min_size=1, max_size=3).map(tuple))


def _array(shape, seed, domain=None):
    a = np.random.default_rng(seed).standard_normal(shape)
    if domain == "positive":
        a = np.abs(a) + 0.5
    elif domain == "away_from_zero":
        a = np.sign(a) * (np.abs(a) + 0.3) + (a == 0)
    return np.asarray(a, dtype=np.float64)


def _gradient_or_clean_error(tg_fn, np_fn, arrays):
    """tg_fn agrees with np_fn and gradchecks, or both refuse the inputs."""
    try:
        expected = np_fn(*arrays)
    except (ValueError, IndexError, TypeError):
        with pytest.raises(tg.TinygraphError):
            tg_fn(*[tg.tensor(a, requires_grad=True) for a in arrays])
        return
    tensors = [tg.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = tg_fn(*tensors)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert out.shape == np.shape(expected)
    assert tg.gradcheck(tg_fn, tensors)


BINARY = {
    "add": (lambda a, b: a + b, np.add, None),
    "sub": (lambda a, b: a - b, np.subtract, None),
    "mul": (lambda a, b: a * b, np.multiply, None),
    "div": (lambda a, b: a / b, np.divide, "away_from_zero"),
    "pow": (lambda a, b: a ** b, np.power, "positive"),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(pair=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=seeds)
def test_binary_op_gradient_on_broadcastable_shapes(name, pair, seed):
    tg_fn, np_fn, domain = BINARY[name]
    a = _array(pair.input_shapes[0], seed, "positive" if domain == "positive" else None)
    b = _array(pair.input_shapes[1], seed + 1, domain)
    _gradient_or_clean_error(tg_fn, np_fn, [a, b])


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shape_a=shapes, shape_b=shapes, seed=seeds)
def test_binary_op_on_arbitrary_shapes_gives_gradient_or_shape_error(name, shape_a, shape_b, seed):
    tg_fn, np_fn, domain = BINARY[name]
    a = _array(shape_a, seed, "positive" if domain == "positive" else None)
    b = _array(shape_b, seed + 1, domain)
    _gradient_or_clean_error(tg_fn, np_fn, [a, b])


UNARY = {
    "neg": (lambda x: -x, np.negative, None),
    "exp": (tg.exp, np.exp, None),
    "log": (tg.log, np.log, "positive"),
    "tanh": (tg.tanh, np.tanh, None),
    "sigmoid": (tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), None),
    "relu": (tg.relu, lambda x: np.maximum(x, 0), "away_from_zero"),
    "abs": (tg.abs, np.abs, "away_from_zero"),
    "sqrt": (tg.sqrt, np.sqrt, "positive"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=seeds)
def test_unary_op_gradient_on_random_shapes(name, shape, seed):
    tg_fn, np_fn, domain = UNARY[name]
    _gradient_or_clean_error(tg_fn, np_fn, [_array(shape, seed, domain)])


REDUCTIONS = {"sum": (tg.sum, np.sum), "mean": (tg.mean, np.mean), "max": (tg.max, np.max)}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(shape=shapes, axis=axes, keepdims=st.booleans(), seed=seeds)
def test_reduction_gradient_or_clean_error_for_any_axis(name, shape, axis, keepdims, seed):
    tg_fn, np_fn = REDUCTIONS[name]
    _gradient_or_clean_error(lambda x: tg_fn(x, axis=axis, keepdims=keepdims),
                             lambda x: np_fn(x, axis=axis, keepdims=keepdims),
                             [_array(shape, seed)])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=shapes, axis=st.integers(-4, 3), scale=st.sampled_from([1.0, 1e4]), seed=seeds)
def test_softmax_family_gradient_or_clean_error_for_any_axis(name, shape, axis, scale, seed):
    def reference(x):
        z = x - x.max(axis=axis, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        return logp if name == "log_softmax" else np.exp(logp)
    tg_fn = getattr(tg, name)
    x = _array(shape, seed) * scale
    if scale == 1.0:
        _gradient_or_clean_error(lambda t: tg_fn(t, axis=axis), reference, [x])
        return
    try:
        expected = reference(x)
    except (ValueError, IndexError):
        with pytest.raises(tg.TinygraphError):
            tg_fn(tg.tensor(x), axis=axis)
        return
    t = tg.tensor(x, requires_grad=True)
    out = tg_fn(t, axis=axis)
    atol = 1e-12 * (scale if name == "log_softmax" else 1.0)   # log-probabilities ~ -scale
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=atol)
    out.backward(grad=np.ones(out.shape))
    assert np.isfinite(out.data).all() and np.isfinite(t.grad).all()


@SETTINGS
@given(batch_a=array_shapes(min_dims=0, max_dims=2, max_side=2),
       batch_b=array_shapes(min_dims=0, max_dims=1, max_side=2),
       dims=st.tuples(*[st.integers(1, 3)] * 4), vector_a=st.booleans(), vector_b=st.booleans(),
       seed=seeds)
def test_matmul_gradient_or_shape_error_for_random_shapes(batch_a, batch_b, dims, vector_a,
                                                          vector_b, seed):
    m, k, k_b, n = dims
    shape_a = (k,) if vector_a else batch_a + (m, k)
    shape_b = (k_b,) if vector_b else batch_b + (k_b, n)
    _gradient_or_clean_error(lambda a, b: a @ b, np.matmul,
                             [_array(shape_a, seed), _array(shape_b, seed + 1)])


@SETTINGS
@given(shape=shapes, data=st.data(), seed=seeds)
def test_reshape_and_transpose_gradient_or_clean_error(shape, data, seed):
    target = data.draw(st.one_of(st.permutations(shape).map(tuple), shapes,
                                 st.just((-1,) + shape[1:])))
    perm = data.draw(st.one_of(st.permutations(range(len(shape))).map(tuple),
                               st.lists(st.integers(-3, 3), max_size=3).map(tuple)))
    x = _array(shape, seed)
    _gradient_or_clean_error(lambda t: t.reshape(target), lambda a: a.reshape(target), [x])
    _gradient_or_clean_error(lambda t: tg.transpose(t, perm),
                             lambda a: a.transpose(perm or None), [x])


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=3),
       index=st.lists(st.integers(-4, 4), min_size=1, max_size=5), axis=st.integers(-3, 2),
       seed=seeds)
def test_integer_array_indexing_and_take_gradient_or_clean_error(shape, index, axis, seed):
    idx = np.array(index)
    x = _array(shape, seed)
    _gradient_or_clean_error(lambda t: t[idx], lambda a: a[idx], [x])
    _gradient_or_clean_error(lambda t: tg.take(t, idx, axis=axis),
                             lambda a: np.take(a, idx, axis=axis), [x])


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data(), seed=seeds)
def test_basic_slicing_gradient(shape, data, seed):
    index = tuple(data.draw(st.one_of(
        st.integers(-n, n - 1),
        st.builds(slice, st.none() | st.integers(-n, n), st.none() | st.integers(-n, n),
                  st.none() | st.sampled_from([1, 2, -1])),
    )) for n in shape)
    x = _array(shape, seed)
    if x[index].size == 0:
        return
    _gradient_or_clean_error(lambda t: t[index], lambda a: a[index], [x])


@pytest.mark.parametrize("name", ["concat", "stack"])
@SETTINGS
@given(parts=st.lists(array_shapes(min_dims=0, max_dims=2, max_side=2), min_size=1, max_size=3),
       axis=st.integers(-3, 2), seed=seeds)
def test_concat_and_stack_gradient_or_clean_error(name, parts, axis, seed):
    tg_fn, np_fn = (tg.concat, np.concatenate) if name == "concat" else (tg.stack, np.stack)
    arrays = [_array(s, seed + i) for i, s in enumerate(parts)]
    _gradient_or_clean_error(lambda *ts: tg_fn(ts, axis=axis),
                             lambda *arrs: np_fn(arrs, axis=axis), arrays)


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=3), data=st.data(), seed=seeds)
def test_cross_entropy_gradient_or_clean_error(shape, data, seed):
    n_classes = shape[-1]
    target_shape = data.draw(st.one_of(st.just(shape[:-1]), array_shapes(min_dims=0, max_dims=2,
                                                                         max_side=3)))
    targets = np.array(data.draw(st.lists(st.integers(-1, n_classes),
                                          min_size=int(np.prod(target_shape)),
                                          max_size=int(np.prod(target_shape)))),
                       dtype=np.int64).reshape(target_shape)

    def reference(z):
        if targets.shape != z.shape[:-1] or targets.min() < 0 or targets.max() >= n_classes:
            raise ValueError("bad targets")
        logp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - z.max(-1, keepdims=True)
        return -np.take_along_axis(logp, targets[..., None], -1).mean()
    _gradient_or_clean_error(lambda t: tg.cross_entropy(t, targets, axis=-1), reference,
                             [_array(shape, seed)])
