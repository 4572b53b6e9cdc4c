"""The round-3 ops (SPEC "PyTorch habits"): values against numpy or formulas written out here,
gradients against central finite differences of that reference (float64, random shapes, axes
and broadcasts by hypothesis), errors naming the op and the shapes, and PyTorch where it is
installed.  Second derivatives of every op are in ``test_engine_higher_order.py``.
"""

import math

import numpy as np
import pytest
from conftest import agree_with_torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes
from test_engine_ops_round2 import SETTINGS, _away_from, check_op, nonscalar, pairs, seeds, shapes
from test_engine_properties import _array

import tinygraph as tg

_erf = np.vectorize(math.erf)


def _gelu_reference(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))

# ---------------------------------------------------------------- elementwise


UNARY = {
    "clamp": (lambda t: tg.clamp(t, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), "clamp"),
    "clamp max only (method)": (lambda t: t.clamp(max=0.7), lambda x: np.minimum(x, 0.7), "clamp"),
    "sign": (tg.sign, np.sign, "away_from_zero"),
    "square": (tg.square, lambda x: x * x, None),
    "expm1": (tg.expm1, lambda x: np.exp(x) - 1, None),
    "sin": (tg.sin, np.sin, None),
    "cos": (lambda t: t.cos(), np.cos, None),
    "gelu": (tg.gelu, _gelu_reference, None),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=seeds)
def test_elementwise_op_value_and_gradient_match_the_formula_and_finite_differences(name, shape, seed):
    tg_fn, np_fn, domain = UNARY[name]
    x = _array(shape, seed, None if domain == "clamp" else domain) * 2
    if domain == "clamp":
        x = _away_from(x, [-0.5, 0.7])
    check_op(tg_fn, np_fn, [x])


def test_clamp_is_clip_under_torchs_names_and_refuses_no_bounds():
    x = tg.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = tg.clamp(x, min=0.0, max=1.0)
    np.testing.assert_array_equal(y.data, tg.clip(x, 0.0, 1.0).data)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    with pytest.raises(tg.ConfigError, match="clamp"):
        tg.clamp(x)


def test_clip_takes_torchs_min_and_max_keywords_as_lo_and_hi():
    """``t.clip(min=, max=)`` / ``tg.clip(t, max=)`` as torch's ``clamp``: the same values and
    gradient (1 from lo to hi, bounds included); a bound named twice is refused."""
    x = tg.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = x.clip(min=0.0, max=1.0)
    assert y.data.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert tg.clip(x, max=0.5).data.tolist() == [-1.0, 0.0, 0.5, 0.5, 0.5]
    assert tg.clip(x, 0.0, max=0.5).data.tolist() == [0.0, 0.0, 0.5, 0.5, 0.5]
    with pytest.raises(tg.ConfigError, match=r"clip: the bound lo is given twice.*min="):
        x.clip(0.0, min=0.5)


def test_gelu_keeps_full_relative_precision_far_in_the_left_tail():
    x = tg.tensor([-10.0, -30.0], requires_grad=True)
    y = tg.gelu(x)
    exact = [x0 * 0.5 * math.erfc(-x0 / math.sqrt(2)) for x0 in (-10.0, -30.0)]   # erfc: no cancellation
    np.testing.assert_allclose(y.data, exact, rtol=1e-14)
    assert y.data[1] != 0.0   # 1 + erf(x / sqrt 2) would be exactly 0 here
    y.sum().backward()
    slope = [0.5 * math.erfc(-x0 / math.sqrt(2)) + x0 * math.exp(-x0 * x0 / 2) / math.sqrt(2 * math.pi)
             for x0 in (-10.0, -30.0)]
    np.testing.assert_allclose(x.grad, slope, rtol=1e-12)


def test_gelu_of_float32_stays_float32():
    assert tg.gelu(tg.tensor(np.ones(3, np.float32))).dtype == np.float32


def test_expm1_keeps_its_digits_for_tiny_inputs():
    x = tg.tensor([1e-12], requires_grad=True)
    y = tg.expm1(x)
    assert y.item() == np.expm1(1e-12) and y.item() != np.exp(1e-12) - 1
    y.backward()
    assert x.grad[0] == np.exp(1e-12)

# ---------------------------------------------------------------- joining and splitting


@SETTINGS
@given(shape=nonscalar, seed=seeds, data=st.data())
def test_cat_hstack_and_vstack_follow_numpy_and_send_each_input_its_slice(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    a, b = _array(shape, seed), _array(tuple(other), seed + 1)
    check_op(lambda x, y: tg.cat([x, y], axis), lambda x, y: np.concatenate([x, y], axis), [a, b])
    check_op(lambda x, y: tg.cat([x, y], dim=axis), lambda x, y: np.concatenate([x, y], axis), [a, b])
    check_op(lambda x, y: tg.hstack([x, y]), lambda x, y: np.hstack([x, y]), [a, b])
    check_op(lambda x, y: tg.vstack([x, y]), lambda x, y: np.vstack([x, y]), [a, b])


def test_hstack_and_vstack_take_0_d_and_1_d_inputs_as_numpy():
    a, b = np.array(1.0), np.array([2.0, 3.0])
    np.testing.assert_array_equal(tg.hstack([a, b]).data, np.hstack([a, b]))
    np.testing.assert_array_equal(tg.vstack([b, b]).data, np.vstack([b, b]))
    check_op(lambda x, y: tg.vstack([x, y]), lambda x, y: np.vstack([x, y]), [b, b * 2])


@SETTINGS
@given(shape=nonscalar, seed=seeds, data=st.data())
def test_unbind_gives_the_slices_along_an_axis_each_with_its_gradient(shape, seed, data):
    x = _array(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = tg.unbind(tg.tensor(x), axis)
    assert len(parts) == shape[axis]
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part.data, np.take(x, i, axis=axis))
    weights = np.random.default_rng(seed).standard_normal(shape[axis])
    check_op(lambda t: tg.stack([w * p.sum() for w, p in zip(weights, t.unbind(axis))]),
             lambda a: np.array([w * np.take(a, i, axis=axis).sum() for i, w in enumerate(weights)]), [x])


@SETTINGS
@given(n=st.integers(1, 9), chunks=st.integers(1, 5), seed=seeds)
def test_chunk_cuts_parts_of_ceil_n_over_chunks_as_torch(n, chunks, seed):
    x = _array((2, n), seed)
    size = -(-n // chunks)
    expected = [x[:, a:a + size] for a in range(0, n, size)]    # torch.chunk's rule, written out
    parts = tg.chunk(tg.tensor(x), chunks, axis=1)
    assert [p.shape for p in parts] == [e.shape for e in expected]
    for part, want in zip(parts, expected):
        np.testing.assert_array_equal(part.data, want)
    weights = [np.random.default_rng(seed + i).standard_normal(e.shape) for i, e in enumerate(expected)]
    check_op(lambda t: tg.stack([(w * p).sum() for w, p in zip(weights, t.chunk(chunks, 1))]),
             lambda a: np.array([np.sum(w * a[:, i * size:(i + 1) * size]) for i, w in enumerate(weights)]),
             [x])

# ---------------------------------------------------------------- shape


@SETTINGS
@given(shape=nonscalar, seed=seeds, data=st.data())
def test_flip_permute_and_moveaxis_move_values_and_gradients(shape, seed, data):
    x = _array(shape, seed)
    ndim = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                               st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                        unique=True).map(tuple)))
    check_op(lambda t: tg.flip(t, axis), lambda a: np.flip(a, axis), [x])
    perm = data.draw(st.permutations(range(ndim)))
    check_op(lambda t: t.permute(*perm), lambda a: np.transpose(a, perm), [x])
    check_op(lambda t: tg.permute(t, tuple(perm)), lambda a: np.transpose(a, perm), [x])
    source, destination = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    check_op(lambda t: t.moveaxis(source, destination), lambda a: np.moveaxis(a, source, destination), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, reps=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_tile_follows_numpy_and_sums_the_gradient_of_the_copies(shape, seed, reps):
    x = _array(shape, seed)
    check_op(lambda t: tg.tile(t, tuple(reps)), lambda a: np.tile(a, reps), [x])
    if len(reps) >= len(shape):
        check_op(lambda t: t.repeat(*reps), lambda a: np.tile(a, reps), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data(), value=st.sampled_from([0.0, -1.5]))
def test_pad_follows_numpy_constant_pad_and_its_gradient_is_the_inner_slice(shape, seed, data, value):
    x = _array(shape, seed)
    widths = data.draw(st.one_of(
        st.integers(0, 2),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=len(shape),
                 max_size=len(shape)).map(tuple)))
    check_op(lambda t: tg.pad(t, widths, value=value),
             lambda a: np.pad(a, widths, mode="constant", constant_values=value), [x])


@SETTINGS
@given(pair=pairs, seed=seeds)
def test_expand_broadcasts_as_torch_and_sums_the_gradient_back(pair, seed):
    source, target = pair.input_shapes[0], pair.result_shape
    x = _array(source, seed)
    lead = len(target) - len(source)
    with_keep = tuple(-1 if i >= lead and n == source[i - lead] else n for i, n in enumerate(target))
    check_op(lambda t: t.expand(*with_keep), lambda a: np.broadcast_to(a, target), [x])
    check_op(lambda t: t.expand(target), lambda a: np.broadcast_to(a, target), [x])


def test_view_is_reshape():
    x = tg.tensor(np.arange(6.0), requires_grad=True)
    y = x.view(2, 3)
    np.testing.assert_array_equal(y.data, np.arange(6.0).reshape(2, 3))
    (y * np.arange(6.0).reshape(2, 3)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(6.0))

# ---------------------------------------------------------------- reductions and selection


@pytest.mark.parametrize("name", ["amax", "amin"])
@SETTINGS
@given(shape=shapes, axis=st.one_of(st.none(), st.integers(-3, 2)), keepdims=st.booleans(), seed=seeds)
def test_amax_and_amin_reduce_over_any_axis(name, shape, axis, keepdims, seed):
    np_fn = np.max if name == "amax" else np.min
    check_op(lambda t: getattr(tg, name)(t, axis=axis, keepdims=keepdims),
             lambda a: np_fn(a, axis=axis, keepdims=keepdims), [_array(shape, seed)])


def test_amax_ties_share_the_gradient_equally_as_torch():
    x = tg.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    x.amax(dim=1).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.5, 0.5]]


@SETTINGS
@given(shape=nonscalar, seed=seeds, descending=st.booleans(), data=st.data())
def test_sort_returns_numpys_order_and_the_values_carry_the_gradient(shape, seed, descending, data):
    x = _array(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    values, indices = tg.sort(tg.tensor(x), axis=axis, descending=descending)
    order = np.argsort(-x if descending else x, axis=axis, kind="stable")
    np.testing.assert_array_equal(indices.data, order)
    assert indices.dtype == np.int64 and not indices.requires_grad
    check_op(lambda t: t.sort(axis, descending)[0],
             lambda a: np.take_along_axis(a, order, axis), [x])


@SETTINGS
@given(shape=nonscalar, seed=seeds, largest=st.booleans(), data=st.data())
def test_topk_takes_the_k_largest_or_smallest_in_order_with_their_gradient(shape, seed, largest, data):
    x = _array(shape, seed)
    k = data.draw(st.integers(0, shape[-1]))
    values, indices = tg.topk(tg.tensor(x), k, largest=largest)
    order = np.argsort(-x if largest else x, axis=-1, kind="stable")[..., :k]
    np.testing.assert_array_equal(indices.data, order)
    np.testing.assert_array_equal(values.data, np.take_along_axis(x, order, -1))
    check_op(lambda t: t.topk(k, largest=largest)[0], lambda a: np.take_along_axis(a, order, -1), [x])


def test_sort_of_a_0_d_tensor_is_itself_with_index_0_as_torch():
    values, indices = tg.sort(tg.tensor(2.5))
    assert values.shape == () and values.item() == 2.5 and indices.item() == 0


def test_linspace_is_numpys():
    np.testing.assert_array_equal(tg.linspace(-1, 2, 7).data, np.linspace(-1, 2, 7))
    assert tg.linspace(0, 1, 5, dtype=np.float32).dtype == np.float32
    with pytest.raises(tg.ConfigError, match="linspace"):
        tg.linspace(0, 1, -2)

# ---------------------------------------------------------------- cross_entropy(weight, label_smoothing)


def _log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _weighted_reference(logits, targets, weight, eps, reduction, ignore_index):
    """PyTorch's documented cross-entropy, written out: with q = (1 - eps) onehot(y) + eps / C,
    loss_i = -sum_c w_c q_ic log p_ic ... for the target term w[y_i]; "mean" divides by the sum
    of w[y_i] over the examples not ignored."""
    n_classes = logits.shape[-1]
    w = np.ones(n_classes) if weight is None else weight
    logp = _log_softmax(logits)
    kept = np.ones(targets.shape, bool) if ignore_index is None else targets != ignore_index
    safe = np.where(kept, targets, 0)
    target_term = -np.take_along_axis(logp, safe[..., None], -1)[..., 0] * w[safe]
    smooth_term = -(logp * w).sum(axis=-1)
    per = np.where(kept, (1 - eps) * target_term + eps / n_classes * smooth_term, 0.0)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / np.where(kept, w[safe], 0).sum()


@SETTINGS
@given(batch=array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), classes=st.integers(1, 4),
       reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans(),
       eps=st.sampled_from([0.0, 0.1, 1.0]), ignore=st.booleans(), seed=seeds)
def test_cross_entropy_with_class_weights_and_label_smoothing_is_torchs_formula(
        batch, classes, reduction, weighted, eps, ignore, seed):
    assume(weighted or eps)
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(batch + (classes,)) * 3
    targets = rng.integers(0, classes, batch)
    weight = rng.random(classes) + 0.1 if weighted else None
    ignore_index = -1 if ignore else None
    if ignore:
        targets = np.where(rng.random(batch) < 0.3, -1, targets)
    assume(reduction != "mean" or (targets != -1).any())
    check_op(lambda t: tg.cross_entropy(t, targets, reduction=reduction, ignore_index=ignore_index,
                                        weight=weight, label_smoothing=eps, axis=-1),
             lambda a: _weighted_reference(a, targets, weight, eps, reduction, ignore_index), [logits])


def test_cross_entropy_with_options_keeps_the_digits_of_a_large_max_logit():
    x = tg.tensor([[1000.0, 975.0]], requires_grad=True)
    loss = tg.cross_entropy(x, [0], weight=[2.0, 1.0])
    np.testing.assert_allclose(loss.item(), np.log1p(np.exp(-25.0)), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad[0, 1], np.exp(-25.0) / (1 + np.exp(-25.0)), rtol=1e-12)


def test_cross_entropy_refuses_bad_weight_and_label_smoothing():
    x = tg.zeros((2, 3))
    with pytest.raises(tg.ShapeError, match=r"cross_entropy: weight.*3.*\(2,\)"):
        tg.cross_entropy(x, [0, 1], weight=[1.0, 2.0])
    with pytest.raises(tg.ConfigError, match="label_smoothing"):
        tg.cross_entropy(x, [0, 1], label_smoothing=1.5)

# ---------------------------------------------------------------- errors name the op and the shapes


@pytest.mark.parametrize("call, error, words", [
    (lambda x: x.permute(0, 0), tg.ShapeError, ["permute", "(0, 0)", "(2, 3)"]),
    (lambda x: x.repeat(2), tg.ShapeError, ["repeat", "(2, 3)"]),
    (lambda x: x.expand(4, 3), tg.ShapeError, ["expand", "(2, 3)"]),
    (lambda x: x.expand(-1, 2, 3), tg.ShapeError, ["expand", "(2, 3)", "(-1, 2, 3)"]),
    (lambda x: tg.cat([x, tg.zeros((2, 2))], axis=0), tg.ShapeError, ["cat", "(2, 3)", "(2, 2)"]),
    (lambda x: tg.pad(x, -1), tg.ShapeError, ["pad", "-1"]),
    (lambda x: tg.pad(x, [(1, 1)] * 3), tg.ShapeError, ["pad", "(2, 3)"]),
    (lambda x: tg.topk(x, 4), tg.ShapeError, ["topk", "k=4", "(2, 3)"]),
    (lambda x: tg.sort(x, axis=2), tg.ShapeError, ["sort", "axis 2", "(2, 3)"]),
    (lambda x: tg.unbind(x, 5), tg.ShapeError, ["unbind", "axis 5", "(2, 3)"]),
    (lambda x: tg.chunk(x, 0), tg.ConfigError, ["chunk", "0"]),
    (lambda x: tg.moveaxis(x, 0, 4), tg.ShapeError, ["moveaxis", "(2, 3)"]),
    (lambda x: tg.flip(x, 3), tg.ShapeError, ["flip", "(2, 3)"]),
    (lambda x: tg.tile(x, (-1,)), tg.ConfigError, ["tile", "-1"]),
    (lambda x: tg.split(x, 2, axis=5), tg.ShapeError, ["split", "axis 5", "(2, 3)"]),    # split axis 1
    (lambda x: tg.split(x, 1.5), tg.ConfigError, ["split", "1.5"]),                      # TypeError
    (lambda x: x.argmax(axis=3), tg.ShapeError, ["argmax", "axis 3", "(2, 3)"]),          # AxisError
    (lambda x: tg.leaky_relu(x, "0.2"), tg.ConfigError, ["leaky_relu", "slope"]),
], ids=["permute_repeated_axis", "repeat_too_few_counts", "expand_incompatible", "expand_new_axis_minus_one",
        "cat_mismatch", "pad_negative", "pad_too_many_pairs", "topk_k_too_large", "sort_axis", "unbind_axis",
        "chunk_zero", "moveaxis_out_of_range", "flip_axis", "tile_negative", "split_axis", "split_float",
        "argmax_axis", "leaky_relu_slope"])
def test_a_bad_call_raises_an_error_naming_the_op_and_the_shapes(call, error, words):
    with pytest.raises(error) as info:
        call(tg.tensor(np.zeros((2, 3)), requires_grad=True))
    for word in words:
        assert word in str(info.value)


def test_new_methods_are_the_functions():
    x = tg.tensor(np.arange(6.0).reshape(2, 3) - 2)
    for name in ("sign", "square", "expm1", "sin", "cos", "amax", "amin", "flip"):
        np.testing.assert_array_equal(getattr(x, name)().data, getattr(tg, name)(x).data)
    np.testing.assert_array_equal(x.tile((2, 1)).data, tg.tile(x, (2, 1)).data)

# ---------------------------------------------------------------- against torch (optional)


def test_round_3_ops_agree_with_torch_in_float64():
    torch = pytest.importorskip("torch", reason="torch is optional; the formulas above are the oracle")
    fn = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)) * 2
    ids = [0, 3, 1]
    cases = {
        "gelu": (tg.gelu, fn.gelu),
        "expm1": (tg.expm1, torch.expm1),
        "sin": (tg.sin, torch.sin),
        "cos": (tg.cos, torch.cos),
        "square": (tg.square, torch.square),
        "clamp": (lambda t: t.clamp(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5)),
        "amax": (lambda t: t.amax(1), lambda t: t.amax(1)),
        "sort": (lambda t: t.sort(0, descending=True)[0], lambda t: t.sort(0, descending=True)[0]),
        "topk": (lambda t: t.topk(2)[0], lambda t: t.topk(2)[0]),
        "repeat": (lambda t: t.repeat(2, 1, 2), lambda t: t.repeat(2, 1, 2)),
        "expand": (lambda t: t[:1].expand(2, -1, -1), lambda t: t[:1].expand(2, -1, -1)),
        "permute": (lambda t: t.reshape(3, 2, 2).permute(2, 0, 1), lambda t: t.reshape(3, 2, 2).permute(2, 0, 1)),
        "flip": (lambda t: tg.flip(t, (0, 1)), lambda t: torch.flip(t, (0, 1))),
        "chunk": (lambda t: t.chunk(3, 1)[1], lambda t: t.chunk(3, 1)[1]),
        "cross_entropy weight, smoothing": (
            lambda t: tg.cross_entropy(t, ids, weight=[1.0, 2.0, 0.5, 3.0], label_smoothing=0.2),
            lambda t: fn.cross_entropy(t, torch.tensor(ids), weight=torch.tensor([1.0, 2.0, 0.5, 3.0],
                                       dtype=torch.float64), label_smoothing=0.2)),
    }
    agree_with_torch(torch, cases, x, rtol=1e-12, atol=1e-14)



def test_numpy_functions_of_the_round_3_ops_run_the_engines_op():
    x = tg.tensor(np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]), requires_grad=True)
    for np_fn, op in ((np.sin, "sin"), (np.cos, "cos"), (np.expm1, "expm1"), (np.flip, "flip"),
                      (lambda t: np.moveaxis(t, 0, 1), "moveaxis"), (lambda t: np.tile(t, 2), "tile"),
                      (lambda t: np.hstack([t, t]), "hstack"), (lambda t: np.vstack([t, t]), "vstack"),
                      (lambda t: np.pad(t, 1, constant_values=2.0), "pad"), (np.sort, "sort")):
        out = np_fn(x)
        assert isinstance(out, tg.Tensor) and out.op == op and out.requires_grad
        np.testing.assert_array_equal(out.data, np_fn(x.data))
    with pytest.raises(TypeError, match="tg.pad"):
        np.pad(x, 1, mode="reflect")


def test_descending_sort_and_topk_keep_tied_entries_in_their_order_and_give_them_the_gradient():
    # as torch.sort(descending=True, stable=True) and torch.topk: the first of tied entries first
    x = tg.tensor(np.array([1.0, 2.0, np.nan, 1.0, 2.0]), requires_grad=True)
    values, indices = tg.sort(x, descending=True)
    np.testing.assert_array_equal(indices.data, [2, 1, 4, 0, 3])
    np.testing.assert_array_equal(values.data, [np.nan, 2.0, 2.0, 1.0, 1.0])
    y = tg.tensor(np.array([[1.0, 2.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]), requires_grad=True)
    values, indices = tg.topk(y, 1)
    np.testing.assert_array_equal(indices.data, [[1], [0]])
    values.sum().backward()
    np.testing.assert_array_equal(y.grad, [[0, 1, 0, 0], [1, 0, 0, 0]])


def test_leaky_relu_takes_a_0_d_tensor_slope_as_a_constant():
    x = tg.tensor(np.array([-2.0, 3.0]), requires_grad=True)
    y = tg.leaky_relu(x, tg.tensor(0.2))     # was a bare AttributeError ('Tensor' has no astype)
    np.testing.assert_allclose(y.data, [-0.4, 3.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0.2, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("create_graph", [False, True], ids=["arrays", "create_graph"])
def test_the_exponents_gradient_is_nan_for_a_negative_base_and_zero_for_a_zero_one(dtype, create_graph):
    # d(a**b)/db = a**b log(a) has no real value for a < 0: it was 0 here, a made-up number
    # that trained on without a word; PyTorch gives NaN.  For a == 0 (and b > 0) 0**b is 0.
    a = tg.tensor(np.array([-2.0, 0.0, 3.0], dtype))
    b = tg.tensor(np.array([2.0, 2.0, 2.0], dtype), requires_grad=True)
    g = tg.grad((a ** b).sum(), b, create_graph=create_graph)
    g = g.data if create_graph else g
    assert g.dtype == dtype
    assert np.isnan(g[0]) and g[1] == 0
    np.testing.assert_allclose(g[2], 9.0 * np.log(3.0), rtol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, bool])
def test_the_norm_of_small_integers_is_numpys_not_their_wrapped_squares(dtype):
    # the squares were taken in the tensor's dtype: norm of uint8 [1, 2, 250] was 6.403
    # (250**2 wrapped to 36), numpy's np.linalg.norm 250.01
    values = np.array([1, 2, 250, 0] if dtype is np.uint8 else [1, -2, 127, 0] if dtype is np.int8
                      else [3, -300, 200, 0] if dtype is np.int16 else [True, True, False, True])
    a = values.astype(dtype)
    got = tg.norm(tg.tensor(a))
    assert got.dtype == np.float64
    assert got.item() == pytest.approx(np.linalg.norm(a), rel=1e-15)


def test_an_empty_list_of_indices_or_ids_selects_nothing_as_in_numpy():
    # [] is float64 to numpy, so x[[]], x[:, []] and one_hot([], n) were refused ("indices must
    # be integers") where numpy gives an empty selection (tg.take already took [])
    a = np.arange(6.0).reshape(2, 3)
    x = tg.tensor(a, requires_grad=True)
    for index in ([], (slice(None), [])):
        got = x[index]
        assert got.shape == a[index].shape
        got.sum().backward()
        np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))
    assert tg.one_hot([], 3).shape == (0, 3)
