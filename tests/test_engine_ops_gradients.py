"""Every op's gradient equals central finite differences in float64.

Each case builds the op on random float64 inputs (with broadcasting, size-1
axes, 0-d scalars and repeated use of one tensor), back-propagates a random
projection ``sum(r * out)`` through ``backward`` and compares every input's
``.grad`` with an independent finite-difference oracle (tests/conftest.py).
The same cases also pass the engine's own ``tg.gradcheck``.
"""

import numpy as np
import pytest

import tinygraph as tg

RTOL = 1e-6
ATOL = 1e-8


def _inputs(shapes, seed, positive=False, away_from_zero=False):
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in shapes:
        a = rng.standard_normal(shape)
        if positive:
            a = np.abs(a) + 0.5
        elif away_from_zero:
            a = np.sign(a) * (np.abs(a) + 0.2) if np.ndim(a) else np.float64(1.3)
        arrays.append(np.asarray(a, dtype=np.float64))
    return arrays


def _assert_backward_matches_fd(fn, arrays, numeric_grad, seed=1):
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(grad=r)

    def objective(*arrs):
        with tg.no_grad():
            return float(np.sum(r * fn(*[tg.tensor(a) for a in arrs]).data))

    expected = numeric_grad(objective, arrays)
    for t, e in zip(tensors, expected):
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad, e, rtol=RTOL, atol=ATOL)
    assert tg.gradcheck(fn, [tg.tensor(a, requires_grad=True) for a in arrays])


# (id, fn, input shapes, domain)
BINARY_CASES = [
    ("add_same_shape", lambda a, b: a + b, [(3, 4), (3, 4)], None),
    ("add_broadcast_row", lambda a, b: a + b, [(3, 4), (4,)], None),
    ("add_broadcast_size1_axes", lambda a, b: a + b, [(3, 1, 5), (1, 4, 1)], None),
    ("add_scalar_tensor", lambda a, b: a + b, [(), (2, 3)], None),
    ("sub_broadcast", lambda a, b: a - b, [(2, 1), (1, 3)], None),
    ("sub_scalar_first", lambda a, b: a - b, [(), (4,)], None),
    ("mul_broadcast", lambda a, b: a * b, [(2, 3, 4), (3, 1)], None),
    ("mul_scalars", lambda a, b: a * b, [(), ()], None),
    ("div_broadcast", lambda a, b: a / b, [(3, 4), (4,)], "away"),
    ("div_scalar_denominator", lambda a, b: a / b, [(5,), ()], "away"),
    ("pow_broadcast_positive_base", lambda a, b: a ** b, [(3, 4), (1, 4)], "positive"),
    ("pow_scalar_exponent", lambda a, b: a ** b, [(2, 3), ()], "positive"),
]

UNARY_CASES = [
    ("neg", lambda x: -x, (3, 4), None),
    ("neg_scalar", lambda x: -x, (), None),
    ("exp", lambda x: x.exp(), (3, 4), None),
    ("log", lambda x: x.log(), (3, 4), "positive"),
    ("tanh", lambda x: x.tanh(), (2, 3, 2), None),
    ("sigmoid", lambda x: x.sigmoid(), (5,), None),
    ("relu", lambda x: x.relu(), (4, 5), "away"),
    ("abs", lambda x: tg.abs(x), (4, 5), "away"),
    ("abs_operator", lambda x: abs(x), (3,), "away"),
    ("sqrt", lambda x: tg.sqrt(x), (3, 3), "positive"),
    ("pow_integer_constant", lambda x: x ** 3, (3, 2), None),
    ("pow_fractional_constant", lambda x: x ** 0.5, (3, 2), "positive"),
    ("constant_pow_tensor", lambda x: 2.0 ** x, (4,), None),
    ("sum_all", lambda x: x.sum(), (3, 4), None),
    ("sum_axis0", lambda x: x.sum(axis=0), (3, 4), None),
    ("sum_negative_axis_keepdims", lambda x: x.sum(axis=-1, keepdims=True), (2, 3, 4), None),
    ("sum_tuple_axes", lambda x: x.sum(axis=(0, 2)), (2, 3, 4), None),
    ("sum_tuple_negative_axes_keepdims", lambda x: x.sum(axis=(-1, -3), keepdims=True),
     (2, 3, 4), None),
    ("sum_of_scalar", lambda x: x.sum(), (), None),
    ("mean_all", lambda x: x.mean(), (3, 4), None),
    ("mean_axis1", lambda x: x.mean(axis=1), (3, 4), None),
    ("mean_tuple_axes_keepdims", lambda x: x.mean(axis=(0, -1), keepdims=True), (2, 3, 4), None),
    ("max_all", lambda x: x.max(), (3, 4), None),
    ("max_axis0", lambda x: x.max(axis=0), (3, 4), None),
    ("max_negative_axis_keepdims", lambda x: x.max(axis=-1, keepdims=True), (2, 3, 4), None),
    ("max_tuple_axes", lambda x: x.max(axis=(0, 2)), (2, 3, 4), None),
    ("reshape_varargs", lambda x: x.reshape(4, 3), (3, 4), None),
    ("reshape_tuple_with_minus1", lambda x: x.reshape((2, -1)), (3, 4), None),
    ("reshape_scalar_to_1x1", lambda x: x.reshape(1, 1), (), None),
    ("transpose_2d", lambda x: x.transpose(), (3, 4), None),
    ("transpose_axes", lambda x: x.transpose(2, 0, 1), (2, 3, 4), None),
    ("transpose_axes_tuple", lambda x: tg.transpose(x, (1, 2, 0)), (2, 3, 4), None),
    ("T_property", lambda x: x.T, (3, 4), None),
    ("index_basic_slice", lambda x: x[1:, ::2], (4, 5), None),
    ("index_integer", lambda x: x[2], (4, 5), None),
    ("index_ellipsis_newaxis", lambda x: x[..., None, 1], (2, 3, 4), None),
    ("index_int_array_repeated", lambda x: x[[0, 2, 0, 0]], (3, 4), None),
    ("index_int_array_2d_repeated", lambda x: x[np.array([[1, 1], [0, 1]])], (3, 2), None),
    ("index_mixed_array_and_slice", lambda x: x[[2, 2, 0], 1:3], (3, 4), None),
    ("index_two_arrays_repeated_pairs", lambda x: x[[0, 1, 0], [2, 2, 2]], (2, 3), None),
    ("index_boolean_mask", lambda x: x[np.array([True, False, True])], (3, 2), None),
    ("index_tensor_indices", lambda x: x[tg.tensor([1, 1, 0])], (3, 2), None),
    ("take_axis0_repeated", lambda x: tg.take(x, [2, 0, 2, 2], axis=0), (3, 4), None),
    ("take_axis1_2d_indices", lambda x: tg.take(x, [[0, 3], [3, 3]], axis=1), (2, 4, 3), None),
    ("take_negative_axis", lambda x: tg.take(x, [1, 0, 1], axis=-1), (3, 2), None),
    ("take_index_tensor", lambda x: tg.take(x, tg.tensor([0, 0, 1]), axis=0), (2, 3), None),
    ("softmax_last_axis", lambda x: tg.softmax(x), (3, 5), None),
    ("softmax_axis0", lambda x: tg.softmax(x, axis=0), (3, 5), None),
    ("softmax_1d", lambda x: x.softmax(), (6,), None),
    ("log_softmax_last_axis", lambda x: tg.log_softmax(x), (3, 5), None),
    ("log_softmax_axis1_of_3d", lambda x: x.log_softmax(axis=1), (2, 4, 3), None),
]

MATMUL_CASES = [
    ("2d_2d", [(3, 4), (4, 5)]),
    ("1d_1d", [(4,), (4,)]),
    ("1d_2d", [(4,), (4, 3)]),
    ("2d_1d", [(3, 4), (4,)]),
    ("3d_2d", [(2, 3, 4), (4, 5)]),
    ("4d_2d", [(2, 2, 3, 4), (4, 2)]),
    ("3d_3d_batched", [(2, 3, 4), (2, 4, 5)]),
    ("3d_1d", [(2, 3, 4), (4,)]),
    ("1d_3d", [(4,), (2, 4, 3)]),
    ("broadcast_batch", [(2, 1, 3, 4), (3, 4, 2)]),
]


@pytest.mark.parametrize("fn,shapes,domain", [c[1:] for c in BINARY_CASES],
                         ids=[c[0] for c in BINARY_CASES])
def test_binary_op_gradient_matches_finite_differences(fn, shapes, domain, numeric_grad):
    arrays = _inputs(shapes, seed=0, positive=domain == "positive",
                     away_from_zero=domain == "away")
    if domain == "away":   # only the denominator must avoid 0
        arrays[0] = _inputs([shapes[0]], seed=5)[0]
    _assert_backward_matches_fd(fn, arrays, numeric_grad)


@pytest.mark.parametrize("fn,shape,domain", [c[1:] for c in UNARY_CASES],
                         ids=[c[0] for c in UNARY_CASES])
def test_unary_op_gradient_matches_finite_differences(fn, shape, domain, numeric_grad):
    arrays = _inputs([shape], seed=2, positive=domain == "positive",
                     away_from_zero=domain == "away")
    _assert_backward_matches_fd(fn, arrays, numeric_grad)


@pytest.mark.parametrize("shapes", [c[1] for c in MATMUL_CASES], ids=[c[0] for c in MATMUL_CASES])
def test_matmul_gradient_matches_finite_differences(shapes, numeric_grad):
    _assert_backward_matches_fd(lambda a, b: a @ b, _inputs(shapes, seed=3), numeric_grad)


@pytest.mark.parametrize("shapes", [[(3, 5), (3, 4), (4, 5)], [(5,), (3, 4), (4, 5)],
                                    [(), (2, 3, 4), (4, 2)], [(2, 1, 5), (3, 4), (4, 5)]],
                         ids=["same_shape", "bias_row", "scalar_c_3d_2d", "c_broadcasts_batch"])
def test_addmm_gradient_matches_finite_differences(shapes, numeric_grad):
    _assert_backward_matches_fd(tg.addmm, _inputs(shapes, seed=4), numeric_grad)


def test_addmm_equals_c_plus_a_matmul_b():
    c, a, b = _inputs([(4,), (3, 2), (2, 4)], seed=6)
    np.testing.assert_array_equal(tg.addmm(c, a, b).data, c + a @ b)


@pytest.mark.parametrize("axis,shapes", [
    (0, [(2, 3), (1, 3), (4, 3)]),
    (1, [(2, 1), (2, 3)]),
    (-1, [(2, 3, 2), (2, 3, 1)]),
    (0, [(3,)]),
], ids=["axis0_three_parts", "axis1", "negative_axis", "single_part"])
def test_concat_gradient_matches_finite_differences(axis, shapes, numeric_grad):
    fn = lambda *ts: tg.concat(ts, axis=axis)   # noqa: E731
    _assert_backward_matches_fd(fn, _inputs(shapes, seed=4), numeric_grad)


@pytest.mark.parametrize("axis,shape,n", [(0, (2, 3), 3), (1, (2, 3), 2), (-1, (2, 3), 2),
                                          (0, (), 4)],
                         ids=["axis0", "axis1", "negative_axis", "scalars"])
def test_stack_gradient_matches_finite_differences(axis, shape, n, numeric_grad):
    fn = lambda *ts: tg.stack(ts, axis=axis)   # noqa: E731
    _assert_backward_matches_fd(fn, _inputs([shape] * n, seed=6), numeric_grad)


@pytest.mark.parametrize("logits_shape,targets", [
    ((5,), 3),
    ((4, 5), [0, 4, 4, 2]),
    ((2, 3, 4), [[0, 1, 3], [3, 3, 2]]),
], ids=["single_example", "batch_1d", "batch_nd"])
def test_cross_entropy_gradient_matches_finite_differences(logits_shape, targets, numeric_grad):
    fn = lambda z: tg.cross_entropy(z, targets)   # noqa: E731
    _assert_backward_matches_fd(fn, _inputs([logits_shape], seed=7), numeric_grad)


@pytest.mark.parametrize("fn", [
    lambda x: x * x,
    lambda x: x + x,
    lambda x: (x * x * x).sum(),
    lambda x: x / (x * x + 1),
    lambda x: x @ x,
    lambda x: tg.stack([x, x * 2, x]),
    lambda x: tg.concat([x, x], axis=1),
], ids=["x_times_x", "a_plus_a", "x_cubed", "x_over_x2_plus_1", "x_matmul_x", "stack_x_thrice",
        "concat_x_twice"])
def test_repeated_use_of_one_tensor_sums_every_path(fn, numeric_grad):
    _assert_backward_matches_fd(fn, _inputs([(3, 3)], seed=8), numeric_grad)


def test_diamond_graph_gradient_sums_both_branches(numeric_grad):
    def diamond(x, w):
        h = (x @ w).tanh()              # shared node feeding two branches
        left = h.exp().sum(axis=1)
        right = (h * h).mean(axis=1)
        return (left * right + h.max(axis=1)).sum()
    _assert_backward_matches_fd(diamond, _inputs([(4, 3), (3, 2)], seed=9), numeric_grad)


def test_diamond_sharing_a_leaf_across_ops(numeric_grad):
    fn = lambda a, b: (a * b).sigmoid() + (a - b).relu() * a   # noqa: E731
    arrays = _inputs([(3, 4), (4,)], seed=10)
    arrays[0] = arrays[0] + 3.0     # keep a - b away from the relu kink
    _assert_backward_matches_fd(fn, arrays, numeric_grad)


@pytest.mark.parametrize("fn", [
    lambda x: 2 - x,
    lambda x: x - 2,
    lambda x: 3.0 / x,
    lambda x: x / 4,
    lambda x: 1.5 * x + 0.5,
    lambda x: [1.0, 2.0, 3.0] * x,
    lambda x: x + [1.0, -1.0, 0.5],
    lambda x: np.ones(3) * x,
    lambda x: np.arange(3.0) - x,
    lambda x: np.array([2.0, 3.0, 4.0]) / x,
    lambda x: x @ np.eye(3),
    lambda x: np.eye(3) @ x,
    lambda x: np.float64(2.0) ** x,
], ids=["number_minus_tensor", "tensor_minus_number", "number_over_tensor", "tensor_over_number",
        "affine_numbers", "list_times_tensor", "tensor_plus_list", "ndarray_times_tensor",
        "ndarray_minus_tensor", "ndarray_over_tensor", "tensor_matmul_ndarray",
        "ndarray_matmul_tensor", "numpy_scalar_pow_tensor"])
def test_constants_mix_with_tensors_on_either_side(fn, numeric_grad):
    arrays = _inputs([(3,)], seed=11, away_from_zero=True)
    with tg.no_grad():
        out = fn(tg.tensor(arrays[0]))
    assert isinstance(out, tg.Tensor)
    _assert_backward_matches_fd(fn, arrays, numeric_grad)


def test_constant_operand_gets_no_parent():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = np.ones(2) * x
    assert y.op == "mul"
    assert y.parents == (x,)


def test_repeated_integer_indices_accumulate_their_gradients():
    x = tg.tensor(np.zeros((3, 2)), requires_grad=True)
    x[[0, 2, 0, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])


def test_take_with_repeated_ids_accumulates_like_one_hot_rows():
    table = tg.tensor(np.zeros((4, 2)), requires_grad=True)
    ids = tg.tensor([3, 1, 3])
    rows = tg.take(table, ids, axis=0)
    assert rows.parents == (table, ids)
    (rows * np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum().backward()
    np.testing.assert_array_equal(table.grad, [[0, 0], [3, 4], [0, 0], [6, 8]])


def test_take_from_a_0_d_tensor_and_with_no_ids_is_numpys_take():
    x = tg.tensor(2.0, requires_grad=True)
    y = tg.take(x, [0, 0, -1])
    np.testing.assert_array_equal(y.data, np.take(np.array(2.0), [0, 0, -1], axis=0))
    y.sum().backward()
    assert x.grad.shape == () and x.grad == 3.0
    w = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for axis in (0, 1, None):
        e = tg.take(w, [], axis=axis)
        assert e.shape == np.take(w.data, [], axis=axis).shape
    tg.take(w, [], axis=1).sum().backward()
    np.testing.assert_array_equal(w.grad, np.zeros((2, 3)))
