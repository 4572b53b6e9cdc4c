"""The round-2 ops and losses: values against numpy written out by hand, gradients against
central finite differences of that numpy reference (float64, random shapes, broadcasts and
axes by hypothesis).  When numpy refuses the inputs, the op raises a TinygraphError.
"""

import numpy as np
import pytest
from conftest import agree_with_torch, central_differences
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes
from test_engine_properties import _array

import tinygraph as tg

SETTINGS = settings(max_examples=30, deadline=None)
shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
nonscalar = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2 ** 32 - 1)
axes = st.one_of(st.none(), st.integers(-3, 2), st.lists(st.integers(-3, 2), min_size=1, max_size=2).map(tuple))
int_axes = st.one_of(st.none(), st.integers(-3, 2))
pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def check_op(tg_fn, np_fn, arrays, seed=0):
    """``tg_fn`` gives ``np_fn``'s value and the gradient of central differences of ``np_fn``
    for every input, or raises a TinygraphError where numpy refuses the inputs."""
    try:
        with np.errstate(all="ignore"):
            expected = np_fn(*arrays)
    except (ValueError, IndexError, TypeError):
        with pytest.raises(tg.TinygraphError):
            tg_fn(*[tg.tensor(a, requires_grad=True) for a in arrays])
        return
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = tg_fn(*tensors)
    assert isinstance(out, tg.Tensor) and out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = tg.grad(out, tensors, grad=r)
    numeric = central_differences(lambda *xs: float(np.sum(r * np_fn(*xs))), arrays)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-7)


def _away_from(x, points, gap=1e-3):
    """x moved off the points where the function is not differentiable."""
    for p in points:
        x = np.where(np.abs(x - p) < gap, x + 10 * gap, x)
    return x


# ---------------------------------------------------------------- elementwise


UNARY = {
    "log1p": (tg.log1p, np.log1p, "positive"),
    "softplus": (tg.softplus, lambda x: np.log(1 + np.exp(x)), None),
    "leaky_relu": (tg.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), "away_from_zero"),
    "leaky_relu slope 0.2": (lambda x: x.leaky_relu(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                             "away_from_zero"),
    "sigmoid": (tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), None),
    "flatten": (tg.flatten, np.ravel, None),
    "norm": (tg.norm, lambda x: np.sqrt(np.sum(x * x)), None),
    "clip": (lambda x: tg.clip(x, -0.5, 0.7), lambda x: np.minimum(np.maximum(x, -0.5), 0.7), "clip"),
    "clip lo only": (lambda x: x.clip(lo=0.1), lambda x: np.maximum(x, 0.1), "clip"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=seeds)
def test_unary_op_value_and_gradient_match_numpy_and_finite_differences(name, shape, seed):
    tg_fn, np_fn, domain = UNARY[name]
    x = _array(shape, seed, None if domain == "clip" else domain)
    if domain == "clip":
        x = _away_from(x * 2, [-0.5, 0.7, 0.1])
    check_op(tg_fn, np_fn, [x])


def _both_repeated(pair):
    """Shapes that broadcast to more entries than either has ((3, 1) and (3,)): a loss of pairs
    refuses them."""
    size = np.prod(pair.result_shape)
    return size != np.prod(pair.input_shapes[0]) and size != np.prod(pair.input_shapes[1])


BINARY = {
    "maximum": (tg.maximum, np.maximum),
    "minimum": (tg.minimum, np.minimum),
    "mse_loss none": (lambda a, b: tg.mse_loss(a, b, reduction="none"), lambda a, b: (a - b) ** 2),
    "mse_loss sum": (lambda a, b: tg.mse_loss(a, b, reduction="sum"), lambda a, b: np.sum((a - b) ** 2)),
    "mse_loss mean": (tg.mse_loss, lambda a, b: np.mean((a - b) ** 2)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(pair=pairs, seed=seeds)
def test_binary_op_gradient_reaches_both_broadcast_inputs(name, pair, seed):
    tg_fn, np_fn = BINARY[name]
    a, b = _array(pair.input_shapes[0], seed), _array(pair.input_shapes[1], seed + 1)
    if name.startswith("mse_loss") and _both_repeated(pair):
        with pytest.raises(tg.ShapeError, match="mse_loss: inputs of shapes"):
            tg_fn(tg.tensor(a), b)
        return
    if np.broadcast_shapes(a.shape, b.shape):
        assume(np.min(np.abs(np.subtract(a, b))) > 1e-3)   # no ties (where max is not differentiable)
    check_op(tg_fn, np_fn, [a, b])


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where_sends_the_gradient_to_the_chosen_input(shapes, seed):
    cond = np.random.default_rng(seed).random(shapes.input_shapes[0]) > 0.5
    a, b = _array(shapes.input_shapes[1], seed), _array(shapes.input_shapes[2], seed + 1)
    check_op(lambda x, y: tg.where(cond, x, y), lambda x, y: np.where(cond, x, y), [a, b])


def test_maximum_and_minimum_split_the_gradient_at_a_tie_as_torch():
    a, b = tg.tensor([1.0, 2.0], requires_grad=True), tg.tensor([1.0, 0.0], requires_grad=True)
    tg.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0] and b.grad.tolist() == [0.5, 0.0]
    a.grad = b.grad = None
    tg.minimum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0] and b.grad.tolist() == [0.5, 1.0]


def test_clip_passes_the_gradient_at_its_bounds_as_torch_clamp():
    x = tg.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    x.clip(0.0, 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_clip_with_tensor_bounds_gives_them_the_clipped_entries_gradient():
    x, lo = tg.tensor([-1.0, 0.5], requires_grad=True), tg.tensor(0.0, requires_grad=True)
    tg.clip(x, lo, 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0] and lo.grad == 1.0

# ---------------------------------------------------------------- reductions


REDUCTIONS = {
    "min": (tg.min, np.min, {}),
    "prod": (tg.prod, np.prod, {}),
    "var": (tg.var, np.var, {}),
    "var ddof=1": (tg.var, np.var, {"ddof": 1}),
    "std": (tg.std, np.std, {}),
    "std ddof=1": (tg.std, np.std, {"ddof": 1}),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(shape=shapes, axis=axes, keepdims=st.booleans(), seed=seeds)
def test_reduction_value_and_gradient_for_any_axis(name, shape, axis, keepdims, seed):
    tg_fn, np_fn, extra = REDUCTIONS[name]
    x = _array(shape, seed)
    if extra.get("ddof"):   # n - ddof must stay positive
        try:
            count = np.sum(np.ones(shape), axis=axis)
        except (ValueError, np.exceptions.AxisError):
            count = 2
        assume(np.min(count) > 1)
    check_op(lambda t: tg_fn(t, axis=axis, keepdims=keepdims, **extra),
             lambda a: np_fn(a, axis=axis, keepdims=keepdims, **extra), [x])


@pytest.mark.parametrize("ddof", [2, 3])
def test_var_and_std_with_ddof_at_least_n_are_inf_with_a_non_finite_gradient_as_torch(ddof):
    # n - ddof <= 0: numpy's value is inf; var's backward divided by the Python int 0
    # (a bare ZeroDivisionError) and std's gave a gradient of zeros for ddof > n
    for fn in (tg.var, tg.std):
        x = tg.tensor(np.array([[1.0, 2.0], [3.0, 5.0]]), requires_grad=True)
        with np.errstate(all="ignore"):
            y = fn(x, axis=0, ddof=ddof)
            assert np.all(y.data == np.inf)
            y.sum().backward()
        assert not np.isfinite(x.grad).any()


@SETTINGS
@given(shape=shapes, axis=int_axes, keepdims=st.booleans(), scale=st.sampled_from([1.0, 30.0]), seed=seeds)
def test_logsumexp_value_and_gradient(shape, axis, keepdims, scale, seed):
    def reference(a):
        m = np.max(a, axis=axis, keepdims=True)
        return np.max(a, axis=axis, keepdims=keepdims) + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=keepdims))
    check_op(lambda t: tg.logsumexp(t, axis=axis, keepdims=keepdims), reference, [_array(shape, seed) * scale])


@SETTINGS
@given(shape=nonscalar, axis=axes, keepdims=st.booleans(), seed=seeds)
def test_logsumexp_softmax_and_log_softmax_take_a_tuple_of_axes(shape, axis, keepdims, seed):
    def reference(a):
        m = np.max(a, axis=axis, keepdims=True)
        return np.max(a, axis=axis, keepdims=keepdims) + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=keepdims))
    check_op(lambda t: tg.logsumexp(t, axis=axis, keepdims=keepdims), reference, [_array(shape, seed)])
    if axis is not None:
        check_op(lambda t: tg.log_softmax(t, axis=axis),
                 lambda a: a - reference(a) if keepdims else a - np.log(np.sum(np.exp(a), axis=axis, keepdims=True)),
                 [_array(shape, seed)])
        check_op(lambda t: tg.softmax(t, axis=axis),
                 lambda a: np.exp(a) / np.sum(np.exp(a), axis=axis, keepdims=True), [_array(shape, seed)])


def test_logsumexp_over_an_empty_axis_is_minus_inf_and_softmax_of_it_is_empty_as_torch():
    x = tg.tensor(np.zeros((2, 0)), requires_grad=True)
    out = tg.logsumexp(x, axis=1)
    assert out.shape == (2,) and np.all(out.data == -np.inf)
    assert tg.logsumexp(x, axis=None).data == -np.inf
    assert tg.logsumexp(tg.tensor(np.zeros((2, 0), np.float32)), axis=1).dtype == np.float32
    np.testing.assert_array_equal(tg.logsumexp(x, axis=0).data, np.zeros(0))
    for fn in (tg.softmax, tg.log_softmax):
        y = fn(x, axis=-1)
        assert y.shape == (2, 0)
        y.sum().backward()
        assert x.grad.shape == (2, 0)


@SETTINGS
@given(shape=nonscalar, axis=int_axes, seed=seeds)
def test_cumsum_value_and_gradient(shape, axis, seed):
    check_op(lambda t: t.cumsum(axis), lambda a: np.cumsum(a, axis=axis), [_array(shape, seed)])


@SETTINGS
@given(shape=nonscalar, axis=axes, seed=seeds, zeros=st.integers(1, 2))
def test_prod_gradient_is_exact_with_zero_entries(shape, axis, seed, zeros):
    x = _array(shape, seed)
    x.flat[:zeros] = 0.0
    check_op(lambda t: tg.prod(t, axis=axis), lambda a: np.prod(a, axis=axis), [x])


@pytest.mark.parametrize("shape, axis", [((0,), None), ((0, 3), None), ((0, 3), 0), ((3, 0), 1),
                                         ((2, 0, 3), (0, 1)), ((0, 3), 1)])
@pytest.mark.parametrize("create_graph", [False, True])
def test_prod_over_no_entries_is_one_with_an_empty_gradient(shape, axis, create_graph):
    # the gradient of a product over an empty axis raised numpy's bare "cannot reshape array
    # of size 1 into shape (0, 3)": the shifted copies of no entries held one each
    x = tg.tensor(np.ones(shape, np.float32), requires_grad=True)
    y = tg.prod(x, axis=axis)
    np.testing.assert_array_equal(y.data, np.prod(x.data, axis=axis))
    g, = tg.grad(tg.sum(y), [x], create_graph=create_graph)
    assert g.shape == shape and g.dtype == np.float32


@SETTINGS
@given(shape=shapes, axis=st.integers(-3, 2), keepdims=st.booleans(), seed=seeds)
def test_argmax_and_argmin_are_numpys_integer_indices_without_gradient(shape, axis, keepdims, seed):
    x = _array(shape, seed)
    for tg_fn, np_fn in ((tg.argmax, np.argmax), (tg.argmin, np.argmin)):
        try:
            expected = np_fn(x, axis=axis, keepdims=keepdims)
        except (ValueError, np.exceptions.AxisError):
            continue
        got = tg_fn(tg.tensor(x, requires_grad=True), axis=axis, keepdims=keepdims)
        assert got.dtype.kind == "i" and not got.requires_grad
        np.testing.assert_array_equal(got.data, expected)


def test_norm_gradient_is_zero_at_zero():
    x = tg.zeros(3, requires_grad=True)
    x.norm().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("axis, keepdims", [(None, False), (None, True), (0, False), (-1, True),
                                           ((0, 2), False), ([1, 2], True)])
def test_norm_over_an_axis_is_numpys_2_norm_with_its_gradient(axis, keepdims):
    x = _array((3, 4, 2), 0)
    x[1] = 0.0          # a zero norm along the axes that reduce row 1: gradient 0 there
    got = tg.norm(tg.tensor(x), axis=axis, keepdims=keepdims)
    axes = tuple(axis) if isinstance(axis, list) else axis
    np.testing.assert_allclose(got.data, np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdims)),
                               rtol=1e-15)
    assert tg.gradcheck(lambda t: t.norm(axis=axis, keepdims=keepdims),
                        [tg.tensor(_array((3, 4, 2), 1), requires_grad=True)])
    t = tg.tensor(x, requires_grad=True)
    t.norm(axis=axis, keepdims=keepdims).sum().backward()
    assert np.isfinite(t.grad).all()
    np.testing.assert_allclose(np.linalg.norm(tg.tensor(x), axis=axes, keepdims=keepdims).data,
                               got.data, rtol=1e-15)


def test_dim_and_keepdim_are_aliases_of_axis_and_keepdims():
    x = tg.tensor(np.arange(6.0).reshape(2, 3))
    for name in ("sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "argmax", "argmin",
                 "norm"):
        fn = getattr(tg, name)
        kwargs = {"ddof": 0} if name in ("var", "std") else {}    # dim= alone: torch's n - 1, refused
        np.testing.assert_array_equal(fn(x, dim=1, keepdim=True, **kwargs).data,
                                      fn(x, axis=1, keepdims=True).data)
    np.testing.assert_array_equal(x.softmax(dim=0).data, x.softmax(axis=0).data)
    np.testing.assert_array_equal(x.cumsum(dim=1).data, np.cumsum(x.data, axis=1))
    with pytest.raises(tg.ConfigError, match="not both"):
        x.sum(axis=0, dim=1)


def test_dim_is_an_alias_of_axis_for_stack_concat_and_unsqueeze_as_in_torch():
    x = tg.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(tg.stack([x, x], dim=1).data, np.stack([x.data, x.data], axis=1))
    np.testing.assert_array_equal(tg.concat([x, x], dim=1).data,
                                  np.concatenate([x.data, x.data], axis=1))
    assert x.unsqueeze(dim=1).shape == (2, 1, 3) and tg.expand_dims(x, dim=-1).shape == (2, 3, 1)
    with pytest.raises(tg.ConfigError, match="unsqueeze"):
        x.unsqueeze()

# ---------------------------------------------------------------- shapes


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_squeeze_unsqueeze_and_swapaxes_move_values_and_gradients(shape, seed, data):
    x = _array(shape, seed)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    check_op(lambda t: t.unsqueeze(axis), lambda a: np.expand_dims(a, axis), [x])
    check_op(lambda t: tg.expand_dims(t, axis), lambda a: np.expand_dims(a, axis), [x])
    ones = tuple(i for i, n in enumerate(shape) if n == 1)
    squeeze_axis = data.draw(st.one_of(st.none(), st.sampled_from(ones))) if ones else None
    check_op(lambda t: t.squeeze(squeeze_axis), lambda a: np.squeeze(a, squeeze_axis), [x])
    if x.ndim:
        a1, a2 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
        check_op(lambda t: t.swapaxes(a1, a2), lambda a: np.swapaxes(a, a1, a2), [x])


@SETTINGS
@given(shape=nonscalar, seed=seeds, data=st.data())
def test_split_follows_array_split_and_each_part_carries_its_gradient(shape, seed, data):
    x = _array(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    how = data.draw(st.one_of(st.integers(1, 4),
                              st.lists(st.integers(0, shape[axis]), max_size=3).map(sorted)))
    parts = tg.split(tg.tensor(x), how, axis=axis)
    expected = np.array_split(x, how, axis=axis)
    assert len(parts) == len(expected)
    for part, want in zip(parts, expected):
        np.testing.assert_array_equal(part.data, want)
    weights = [np.random.default_rng(seed + i).standard_normal(p.shape) for i, p in enumerate(expected)]

    def tg_fn(t):
        return tg.stack([(w * p).sum() for w, p in zip(weights, tg.split(t, how, axis=axis))]).sum()

    def np_fn(a):
        return sum(np.sum(w * p) for w, p in zip(weights, np.array_split(a, how, axis=axis)))
    check_op(tg_fn, np_fn, [x])

# ---------------------------------------------------------------- losses


def _log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _reduce(per, reduction, kept):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / kept.sum()


reductions = st.sampled_from(["mean", "sum", "none"])
batch_shapes = array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)


@SETTINGS
@given(batch=batch_shapes, classes=st.integers(1, 4), reduction=reductions, ignore=st.booleans(), seed=seeds)
def test_cross_entropy_and_nll_loss_with_every_reduction_and_ignore_index(batch, classes, reduction, ignore, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(batch + (classes,)) * 3
    targets = rng.integers(0, classes, batch)
    ignore_index = None
    if ignore:
        ignore_index = -100
        targets = np.where(rng.random(batch) < 0.3, -100, targets)
    kept = targets != -100
    assume(reduction != "mean" or kept.any())
    safe = np.where(kept, targets, 0)

    def picked(logp):
        return np.where(kept, -np.take_along_axis(logp, safe[..., None], -1)[..., 0], 0.0)
    check_op(lambda t: tg.cross_entropy(t, targets, reduction=reduction, ignore_index=ignore_index,
                                        axis=-1),
             lambda a: _reduce(picked(_log_softmax(a)), reduction, kept), [logits])
    check_op(lambda t: tg.nll_loss(t, targets, reduction=reduction, ignore_index=ignore_index,
                                  axis=-1),
             lambda a: _reduce(picked(a), reduction, kept), [_log_softmax(logits)])


@SETTINGS
@given(pair=pairs, reduction=reductions, seed=seeds)
def test_binary_cross_entropy_with_logits_gradient_for_logits_and_soft_targets(pair, reduction, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(pair.input_shapes[0]) * 3, rng.random(pair.input_shapes[1])
    if _both_repeated(pair):
        with pytest.raises(tg.ShapeError, match="binary_cross_entropy_with_logits: inputs of shapes"):
            tg.binary_cross_entropy_with_logits(x, y, reduction=reduction)
        return

    def reference(a, b):
        # -(b log p + (1 - b) log(1 - p)), p = sigmoid(a), in the form that keeps its digits
        # for large |a| (log(1 - p) of p near 1 loses them, and its finite differences with them)
        per = np.maximum(a, 0) - a * b + np.log1p(np.exp(-np.abs(a)))
        return per if reduction == "none" else per.sum() if reduction == "sum" else per.mean()
    check_op(lambda a, b: tg.binary_cross_entropy_with_logits(a, b, reduction=reduction), reference, [x, y])


def test_cross_entropy_mean_of_only_ignored_examples_is_nan_as_torch():
    loss = tg.cross_entropy(tg.tensor([[1.0, 2.0]]), [-1], ignore_index=-1)
    assert np.isnan(loss.item())


def test_losses_refuse_an_unknown_reduction():
    for loss in (lambda r: tg.cross_entropy(tg.zeros((1, 2)), [0], reduction=r),
                 lambda r: tg.mse_loss(tg.zeros(2), tg.ones(2), reduction=r)):
        with pytest.raises(tg.ConfigError, match="reduction must be one of"):
            loss("average")

# ---------------------------------------------------------------- one_hot, dropout, constructors


def test_one_hot_puts_a_one_at_each_id_and_refuses_ids_out_of_range():
    np.testing.assert_array_equal(tg.one_hot([[0, 2], [1, 1]], 3).data, np.eye(3)[[[0, 2], [1, 1]]])
    with pytest.raises(tg.BadIndexError, match="out of range"):
        tg.one_hot([3], 3)


def test_dropout_zeroes_a_fraction_p_scales_the_rest_and_is_the_identity_without_train():
    x = tg.ones((200, 50), requires_grad=True)
    y = tg.dropout(x, 0.3, seed=1)
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)            # d(x * mask)/dx = mask
    np.testing.assert_array_equal(tg.dropout(x, 0.3, seed=1).data, y.data)
    assert tg.dropout(x, 0.3, train=False) is x
    assert not tg.dropout(x, 1.0, seed=0).data.any()
    with pytest.raises(tg.ConfigError):
        tg.dropout(x, 1.5)


def test_constructors_make_leaves_like_numpy():
    assert tg.zeros((2, 3)).dtype == np.float64 and not tg.zeros(2).data.any()
    assert tg.ones(2, dtype=np.float32).dtype == np.float32
    assert tg.full((2,), 7.5).data.tolist() == [7.5, 7.5]
    t = tg.tensor([[1.0, 2.0]], dtype=np.float32)
    assert tg.zeros_like(t).shape == (1, 2) and tg.ones_like(t).dtype == np.float32
    np.testing.assert_array_equal(tg.arange(1, 7, 2).data, np.arange(1, 7, 2))
    np.testing.assert_array_equal(tg.eye(3).data, np.eye(3))
    np.testing.assert_array_equal(tg.randn(2, 3, seed=4).data, tg.randn((2, 3), seed=4).data)
    assert tg.randn(2, 3, seed=4).shape == (2, 3) and not np.array_equal(tg.randn(3, seed=1).data,
                                                                        tg.randn(3, seed=2).data)
    r = tg.rand(1000, seed=0).data
    assert r.min() >= 0 and r.max() < 1
    w = tg.zeros(3, requires_grad=True)
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]

# ---------------------------------------------------------------- against torch (optional)


def test_new_ops_agree_with_torch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    cases = {
        "logsumexp": (lambda t: tg.logsumexp(t, axis=1), lambda t: torch.logsumexp(t, 1)),
        "var": (lambda t: t.var(axis=0, ddof=1), lambda t: t.var(0, unbiased=True)),
        "std": (lambda t: t.std(), lambda t: t.std(unbiased=False)),
        "prod": (lambda t: t.prod(axis=1), lambda t: t.prod(1)),
        "cumsum": (lambda t: t.cumsum(0), lambda t: t.cumsum(0)),
        "softplus": (tg.softplus, torch.nn.functional.softplus),
        "leaky_relu": (tg.leaky_relu, torch.nn.functional.leaky_relu),
        "log1p": (lambda t: (t * t).log1p(), lambda t: (t * t).log1p()),
        "norm": (lambda t: t.norm(), lambda t: t.norm()),
        "clip": (lambda t: t.clip(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5)),
        "cross_entropy": (lambda t: tg.cross_entropy(t, [0, 3, 1], reduction="sum"),
                          lambda t: torch.nn.functional.cross_entropy(t, torch.tensor([0, 3, 1]), reduction="sum")),
        "bce": (lambda t: tg.binary_cross_entropy_with_logits(t, np.full((3, 4), 0.25)),
                lambda t: torch.nn.functional.binary_cross_entropy_with_logits(t, torch.full((3, 4), 0.25,
                                                                                      dtype=torch.float64))),
    }
    agree_with_torch(torch, cases, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", [tg.mse_loss, tg.binary_cross_entropy_with_logits])
def test_a_loss_of_pairs_refuses_inputs_that_broadcast_to_a_larger_shape_than_both(loss):
    # predictions (3, 1) against targets (3,) paired every prediction with every target: nine
    # terms (3, 3), a loss of the wrong value without a word (mse 1.0 where each entry's is 0)
    pred = tg.tensor([[0.0], [1.0], [2.0]], requires_grad=True)
    with pytest.raises(tg.ShapeError, match=rf"{loss.__name__}: inputs of shapes \(3, 1\) and "
                                            r"\(3,\) broadcast to \(3, 3\)"):
        loss(pred, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(tg.ShapeError, match=r"shapes \(2, 1\) and \(1, 3\)"):
        loss(tg.zeros((2, 1)), np.zeros((1, 3)))
    assert pred.grad is None
    # one input broadcast to the other's shape stays a loss: a target row for every row, a scalar
    rows = tg.tensor(np.arange(6.0).reshape(2, 3) / 6, requires_grad=True)
    target = np.array([0.0, 0.5, 1.0])
    loss(rows, target, reduction="sum").backward()
    want = loss(rows, np.stack([target, target]), reduction="sum")
    np.testing.assert_allclose(loss(rows, target, reduction="sum").item(), want.item(), rtol=1e-15)
    np.testing.assert_allclose(loss(target, rows).item(), loss(np.stack([target] * 2), rows).item())
    assert np.isfinite(loss(rows, 0.5).item())
