"""Reverse-mode backprop: closed-form gradients, accumulation, retained and freed
graphs, seeds for non-scalar outputs, ``tg.grad``, very deep graphs and freeing
a graph by reference counting alone.
"""

import gc
import warnings
import weakref

import numpy as np
import pytest

import tinygraph as tg


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------- closed forms

def test_gradient_of_logsumexp_is_softmax():
    z = _rand(4, 6)
    x = tg.tensor(z, requires_grad=True)
    m = z.max(axis=1, keepdims=True)
    lse = x.max(axis=1, keepdims=True).detach() + (x - m).exp().sum(axis=1, keepdims=True).log()
    lse.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
                               rtol=1e-12)


def test_gradient_of_sum_of_squares_is_twice_x():
    z = _rand(3, 5)
    x = tg.tensor(z, requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * z, rtol=1e-15)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)], ids=["batch_1d", "batch_2d"])
def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(shape):
    z = _rand(*shape, seed=1)
    targets = np.random.default_rng(2).integers(0, shape[-1], size=shape[:-1])
    x = tg.tensor(z, requires_grad=True)
    tg.cross_entropy(x, targets).backward()
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    onehot = np.eye(shape[-1])[targets]
    np.testing.assert_allclose(x.grad, (p - onehot) / targets.size, rtol=1e-10, atol=1e-15)


def test_cross_entropy_value_is_mean_negative_log_probability():
    z = _rand(5, 4, seed=3)
    targets = np.array([0, 3, 3, 1, 2])
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert tg.cross_entropy(tg.tensor(z), targets).item() == pytest.approx(
        -logp[np.arange(5), targets].mean(), rel=1e-12)


def test_max_shares_the_gradient_equally_between_ties():
    x = tg.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_relu_and_abs_have_zero_gradient_at_zero():
    x = tg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    (x.relu() + tg.abs(x)).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 2.0])


# ---------------------------------------------------------------- accumulation and retention

def test_gradients_accumulate_across_two_backwards():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_intermediate_gradients_are_not_kept_by_default():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    (h * h).sum().backward()
    assert h.grad is None
    assert x.grad is not None


def test_retain_grad_keeps_an_intermediate_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 18 * x.data)


def test_retained_gradient_accumulates_across_backwards_like_a_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(h.grad, 2 * (2 * h.data))


def test_an_anomaly_midway_through_backward_changes_no_grad():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([0.0, 1.0], requires_grad=True)
    a.grad = np.array([5.0, 5.0])
    y = (a * 2).sum() + (b.sqrt() * 1.0).sum()   # d sqrt(b)/db is inf at b = 0
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="sqrt"):
        y.backward()
    np.testing.assert_array_equal(a.grad, [5.0, 5.0])
    assert b.grad is None


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_second_backward_through_freed_graph_raises_and_keeps_grad():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    before = x.grad.copy()
    with pytest.raises(tg.GraphFreedError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad, before)


def test_new_output_over_a_freed_subgraph_raises_before_touching_grad():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    before = x.grad.copy()
    with pytest.raises(tg.GraphFreedError, match="exp"):
        (h * 3 + x).sum().backward()
    np.testing.assert_array_equal(x.grad, before)


def test_graph_freed_error_is_a_runtime_error():
    assert issubclass(tg.GraphFreedError, RuntimeError)
    assert issubclass(tg.GraphFreedError, tg.TinygraphError)


# ---------------------------------------------------------------- seeds

def test_backward_on_non_scalar_without_grad_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.BackwardError, match=r"\(2,\)"):
        (x * 2).backward()
    assert x.grad is None


def test_backward_with_wrong_shape_grad_raises_shape_error():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"\(3, 2\).*\(2, 3\)"):
        (x * 2).backward(grad=np.ones((3, 2)))
    assert x.grad is None


def test_backward_with_grad_seeds_the_vector_jacobian_product():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).backward(grad=[1.0, 0.0, -2.0])
    np.testing.assert_allclose(x.grad, [2.0, 0.0, -12.0])


def test_backward_of_one_element_non_0d_output_needs_no_seed():
    x = tg.tensor([[2.0]], requires_grad=True)
    (x * x).backward()
    np.testing.assert_allclose(x.grad, [[4.0]])


def test_backward_on_tensor_that_does_not_require_grad_raises():
    with pytest.raises(tg.BackwardError):
        (tg.tensor([1.0]) * 2).sum().backward()


# ---------------------------------------------------------------- tg.grad

def test_grad_returns_arrays_without_touching_dot_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, -1.0], requires_grad=True)
    h = x * w
    gx, gh = tg.grad((h * h).sum(), [x, h])
    np.testing.assert_allclose(gx, 2 * h.data * w.data)
    np.testing.assert_allclose(gh, 2 * h.data)
    assert x.grad is None and w.grad is None and h.grad is None


def test_grad_of_unused_input_is_zeros():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    unused = tg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    gx, gu = tg.grad((x * 2).sum(), [x, unused])
    np.testing.assert_allclose(gx, [2.0, 2.0])
    np.testing.assert_array_equal(gu, np.zeros((1, 3)))


def test_grad_of_single_input_returns_a_single_array():
    x = tg.tensor(3.0, requires_grad=True)
    g = tg.grad(x * x, x)
    assert isinstance(g, np.ndarray)
    assert g == pytest.approx(6.0)


# ---------------------------------------------------------------- depth and memory

def test_backward_through_a_200000_op_chain_does_not_recurse():
    x = tg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
        y = y + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.00001 ** 100_000, rel=1e-9)


def test_dropping_the_output_frees_the_graph_without_the_cycle_collector():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        x = tg.tensor(_rand(3), requires_grad=True)
        hidden = (x * 2).tanh()
        probe = weakref.ref(hidden)
        out = (hidden * x).sum()
        del hidden
        assert probe() is not None          # still held by the graph of out
        del out
        assert probe() is None
    finally:
        if was_enabled:
            gc.enable()


def test_the_cycle_collector_tracks_one_object_per_node():
    """Only the node itself: its parents and its saved arrays live in its slots (no parents
    tuple, no tuple of saved inputs for mul, only the output array for tanh), and the rule is
    shared by every node of the op."""
    x = tg.tensor(_rand(3), requires_grad=True)
    w = tg.tensor(_rand(3, seed=1), requires_grad=True)
    y = x
    for _ in range(100):     # what the first use of the ops makes once (caches) is in `before`
        y = (y * w).tanh()
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(1000):
        y = (y * w).tanh()
    assert len(gc.get_objects()) - before <= 2000 + 50
    assert y.parents[0].parents == (y.parents[0].parents[0], w)     # the parents, as a tuple
    y.sum().backward()
    assert np.all(np.isfinite(w.grad))


def test_graph_kept_for_retain_graph_is_freed_by_reference_counting():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        x = tg.tensor(_rand(3), requires_grad=True)
        with tg.scope("t=1"):
            hidden = (x * 2).sigmoid()
        probe = weakref.ref(hidden)
        out = (hidden * hidden).sum()
        out.backward(retain_graph=True)
        del hidden, out
        assert probe() is None
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------- indexing in a loop

def test_indexing_a_tensor_at_every_step_of_a_loop_scatters_each_gradient_into_place():
    data = _rand(50, 3)
    xs = tg.tensor(data, requires_grad=True)
    h = tg.tensor(np.zeros(3))
    for t in range(50):
        h = (h * 0.5 + xs[t]).tanh()
    h.sum().backward()
    hs = [np.zeros(3)]                     # by hand: h(t) = tanh(h(t-1)/2 + x(t))
    for row in data:
        hs.append(np.tanh(hs[-1] * 0.5 + row))
    expected, dh = np.zeros_like(data), np.ones(3)
    for t in reversed(range(50)):
        expected[t] = dh * (1 - hs[t + 1] ** 2)
        dh = expected[t] * 0.5
    np.testing.assert_allclose(xs.grad, expected, rtol=1e-12)


def test_a_gradient_shared_by_two_inputs_is_not_changed_in_place():
    x = tg.tensor(_rand(4), requires_grad=True)
    y = tg.tensor(_rand(4), requires_grad=True)
    s = x + y                       # both inputs receive the same gradient array
    out = (s * 2).sum() + (x * 3).sum() + (x * 4).sum()
    out.backward()
    np.testing.assert_allclose(y.grad, 2 * np.ones(4))
    np.testing.assert_allclose(x.grad, 9 * np.ones(4))


def test_take_with_thousands_of_repeated_ids_accumulates_every_row():
    table = tg.tensor(_rand(5, 3), requires_grad=True)
    ids = np.random.default_rng(1).integers(-5, 5, (40, 25))
    weights = _rand(40, 25, 3, seed=2)
    (tg.take(table, ids, axis=0) * weights).sum().backward()
    expected = np.zeros((5, 3))
    np.add.at(expected, ids, weights)
    np.testing.assert_allclose(table.grad, expected, rtol=1e-12)


@pytest.mark.parametrize("op", [tg.tanh, tg.exp, tg.sigmoid, lambda x: x * x, lambda x: x @ np.eye(3)])
def test_rebinding_an_intermediates_data_after_the_forward_leaves_its_gradient_as_computed(op):
    """A rule reads the output and inputs the forward made, not whatever ``.data`` holds later."""
    x0 = np.array([0.5, 1.0, -0.3])
    x = tg.tensor(x0, requires_grad=True)
    y = op(x)
    (y * 1.0).sum().backward(retain_graph=True)
    expected = x.grad.copy()
    x.grad = None
    y.data = np.zeros(3)
    (y * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, expected)


def test_an_owned_gradient_becomes_the_buffer_later_gradients_add_into():
    """A vjp may hand backward a fresh full-shape array as tinygraph.tensor.Owned: it is kept as
    the input's gradient and what follows is added into it (the sum is as with a plain array)."""
    from tinygraph.tensor import Owned
    x = tg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)

    def double(a):
        return a * 2, (lambda g: Owned(np.array(g * 2)),)
    y = tg.apply("double", double, x)
    ((y * 3).sum() + x[1].sum() + (x * x).sum()).backward()
    expected = np.full((3, 2), 6.0) + 2 * x.data
    expected[1] += 1
    np.testing.assert_array_equal(x.grad, expected)


def test_sigmoid_and_tanh_gradients_are_the_written_out_formulas_and_leave_a_shared_gradient_alone():
    """The rules write their product into the temporary they made, never into g: here add hands
    the one seed array to both, and it is unchanged afterwards; the values are bit for bit those
    of g e / (1 + e)^2 (e = exp(-|x|)) and g (1 - tanh(x)^2)."""
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        x0 = (rng.normal(size=(4, 5)) * 6).astype(dtype)
        seed = rng.normal(size=(4, 5)).astype(dtype)
        kept = seed.copy()
        x = tg.tensor(x0, requires_grad=True)
        (x.sigmoid() + x.tanh()).backward(grad=seed)
        e = np.exp(-np.abs(x0))
        d = 1 + e
        t = np.tanh(x0)
        np.testing.assert_array_equal(x.grad, kept * (e / (d * d)) + kept * (1 - t * t))
        np.testing.assert_array_equal(seed, kept)
        np.testing.assert_array_equal(tg.sigmoid(x0).data, np.where(x0 >= 0, 1, e) / (1 + e))


def test_the_sigmoid_gradient_reads_the_exp_its_forward_kept_beside_its_output_and_only_there():
    """sigmoid's forward keeps e = exp(-|x|) in the second row of the array whose first row is
    its output; the gradient reads it there (no second exp, and no x: given None for x it still
    works), bit for bit e / (1 + e)^2, and computes e anew for any other array."""
    from tinygraph import ops
    for dtype in (np.float64, np.float32):
        x0 = np.array([[-700.0, -40.0, -3.5, -0.0, 0.0, 1e-9, 2.0, 40.0, 700.0]], dtype)
        y, _ = ops._sigmoid(x0)
        e = np.exp(-np.abs(x0))
        d = 1 + e
        np.testing.assert_array_equal(ops._sigmoid_slope(y, None), e / (d * d))
        assert ops._kept_exp(np.array(y)) is None          # a copy: no kept exp
        assert ops._kept_exp(y.base[1, ...]) is None        # the kept row itself is not an output
        np.testing.assert_array_equal(ops._sigmoid_slope(np.array(y), x0), e / (d * d))


def test_slices_that_tile_an_array_give_its_gradient_block_by_block_with_the_rest_zero():
    """Gradients of disjoint slices along one axis are copied into their blocks of an
    uninitialised buffer; the blocks no slice took are zero, a slice overlapping an earlier one
    and a dense gradient arriving later add as usual, in any order."""
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(4, 10))
    w = rng.normal(size=(4, 10))
    cases = {
        "tiled": [(..., slice(0, 3)), (..., slice(3, 7)), (..., slice(7, 10))],
        "gaps": [(..., slice(6, 8)), (..., slice(0, 2))],
        "gaps at both ends and between": [(..., slice(6, 8)), (..., slice(2, 4)), (..., 5)],
        "many single rows, last first": [(i,) for i in (3, 1, 0)],
        "overlap": [(..., slice(0, 5)), (..., slice(4, 10)), (..., slice(2, 3))],
        "rows": [2, 0, (slice(1, 2),), -1],
        "other axis after columns": [(..., slice(0, 4)), (slice(1, 3),)],
    }
    for name, indices in cases.items():
        for dense in (False, True):
            x = tg.tensor(x0, requires_grad=True)
            total = sum((x[i] * w[i]).sum() for i in indices)
            if dense:
                total = total + (x * w).sum() + (x[..., 5:9] * w[..., 5:9]).sum()
            total.backward()
            expected = np.zeros_like(x0)
            for i in indices:
                expected[i] += w[i]
            if dense:
                expected += w
                expected[..., 5:9] += w[..., 5:9]
            np.testing.assert_allclose(x.grad, expected, rtol=0, atol=1e-15, err_msg=name)


def test_indexing_with_an_empty_tuple_back_propagates():
    """x[()] (the whole array, or a 0-d tensor's value) is a basic index of no part: the check
    for a block of one axis read its last part and raised a bare IndexError in backward (and
    in a replayed step's scan)."""
    for x0 in (np.array(2.0), np.arange(6.0).reshape(2, 3)):
        x = tg.tensor(x0, requires_grad=True)
        w = np.full(x0.shape, 3.0)
        (x[()] * w).sum().backward()
        np.testing.assert_array_equal(x.grad, w)
        x.grad = None
        ((x[()] + x[()]) * w + x * w).sum().backward()
        np.testing.assert_array_equal(x.grad, 3 * w)


def test_a_weight_shared_by_many_products_gets_the_sum_of_their_gradients():
    """a^T g of a matmul is computed by backward where it goes (the later ones into one scratch
    array, then added): the sum over the products is as written out, with tg.grad, under
    detect_anomaly, and alongside a gradient of another kind reaching the same weight."""
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(3, 4)) for _ in range(5)]
    w0 = rng.normal(size=(4, 2))
    seeds = [rng.normal(size=(3, 2)) for _ in xs]
    expected = sum(x.T @ s for x, s in zip(xs, seeds)) + 2 * w0
    for mode in ("backward", "grad", "anomaly"):
        W = tg.tensor(w0, requires_grad=True)
        total = sum(((x @ W) * s).sum() for x, s in zip(xs, seeds)) + (W * W).sum()
        if mode == "grad":
            got = tg.grad(total, W)
        elif mode == "anomaly":
            with tg.detect_anomaly():
                total.backward()
            got = W.grad
        else:
            total.backward()
            got = W.grad
        np.testing.assert_allclose(got, expected, rtol=1e-14, err_msg=mode)


def test_a_weight_used_transposed_at_every_step_gets_the_sum_of_the_products():
    """x @ W.T taken at every step: each step's product reaches W through its transpose (passed
    on as (a^T g)^T = g^T a), and a transpose whose gradient is kept or asked for still gets
    its own."""
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(3, 4)) for _ in range(4)]
    w0 = rng.normal(size=(2, 4))
    seeds = [rng.normal(size=(3, 2)) for _ in xs]
    expected = sum(s.T @ x for x, s in zip(xs, seeds))
    W = tg.tensor(w0, requires_grad=True)
    Ts = [W.T for _ in xs]
    Ts[1].retain_grad()
    total = sum(((x @ t) * s).sum() for x, t, s in zip(xs, Ts, seeds))
    got_t2 = tg.grad(total, Ts[2], retain_graph=True)
    np.testing.assert_allclose(got_t2, xs[2].T @ seeds[2], rtol=1e-14)
    total.backward()
    np.testing.assert_allclose(W.grad, expected, rtol=1e-14)
    np.testing.assert_allclose(Ts[1].grad, xs[1].T @ seeds[1], rtol=1e-14)


@pytest.mark.parametrize("rows, width, n", [(5, 1024, 3000), (400, 8, 3000), (7, 600, 2500)])
def test_the_sorted_scatter_of_row_gradients_equals_numpy_add_at(rows, width, n):
    """take's gradient sums the rows of each id: a Python sum per group when there are few
    groups of wide rows (an embedding of a small vocabulary), one reduceat otherwise; ids may
    be negative, and more than one chunk of 1,024 is summed."""
    from tinygraph.tensor import _add_rows_sorted
    rng = np.random.default_rng(rows)
    index = rng.integers(-rows, rows, size=n)
    values = rng.normal(size=(n, width))
    got = rng.normal(size=(rows, width))
    want = got.copy()
    _add_rows_sorted(got, index, values)
    np.add.at(want, index, values)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, width, ids", [(np.float64, 256, 65), (np.float32, 512, 200)])
def test_wide_rows_of_the_sorted_scatter_are_summed_in_order_as_numpy_add_at(dtype, width, ids):
    """Rows of 2 KiB or more (a GRU's two gates of 128 in float64, into a table of 65 ids) are
    summed group by group however many ids there are, each id's rows one after the other as
    np.add.at adds them: the same bits as np.add.at into zeros within a chunk of 1,024
    (reduceat, 1.3-10x slower on rows this wide, sums them in another order)."""
    from tinygraph.tensor import _add_rows_sorted
    rng = np.random.default_rng(width)
    index = rng.integers(0, ids, size=1000)
    values = rng.normal(size=(1000, width)).astype(dtype)
    got, want = np.zeros((ids, width), dtype), np.zeros((ids, width), dtype)
    _add_rows_sorted(got, index, values)
    np.add.at(want, index, values)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("rows, width, n", [(65, 100, 25), (16, 32, 1000), (3, 7, 8)])
def test_the_counted_scatter_of_row_gradients_equals_numpy_add_at(rows, width, n):
    """take's gradient of float64 rows into a small table is one bincount: the same bits as
    np.add.at into a zero buffer (each id's rows summed in the order given), to rounding into
    one that holds a gradient already; ids may be negative."""
    from tinygraph.tensor import _add_rows_counted, _counted
    rng = np.random.default_rng(rows)
    index = rng.integers(-rows, rows, size=(n, 1))
    values = rng.normal(size=(n, 1, width))
    assert _counted((rows, width), np.float64, index, values)
    got, want = np.zeros((rows, width)), np.zeros((rows, width))
    _add_rows_counted(got, index, values)
    np.add.at(want, index.reshape(-1), values.reshape(n, width))
    assert np.array_equal(got, want)
    start = rng.normal(size=(rows, width))
    got, want = start.copy(), start.copy()
    _add_rows_counted(got, index, values)
    np.add.at(want, index.reshape(-1), values.reshape(n, width))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_take_of_a_small_table_gets_the_same_gradient_as_through_numpy_add_at():
    rng = np.random.default_rng(3)
    table = tg.tensor(rng.normal(size=(65, 100)), requires_grad=True)
    ids = rng.integers(0, 65, size=(25, 1))
    seed = rng.normal(size=(25, 1, 100))
    (tg.take(table, ids, axis=0) * seed).sum().backward()
    want = np.zeros((65, 100))
    np.add.at(want, ids.reshape(-1), seed.reshape(25, 100))
    assert np.array_equal(table.grad, want)


def _transposed_copy(w):     # a user's op of one input whose rule gives a view of g (g.T)
    return np.ascontiguousarray(w.T), (lambda g: g.T,)


def test_a_view_of_a_one_input_ops_own_gradient_buffer_is_kept_by_its_input_not_copied():
    """A transposed copy (a user's op, as ``rnn.core.transposed``) whose incoming gradient is a
    buffer the sweep made hands g.T to its weight, which keeps it as its ``.grad`` (no second
    copy); where g is not the sweep's alone (a ``grad=`` seed, a retained gradient, ``tg.grad``)
    or the op has several inputs, the gradients are copies that share no memory."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    W = tg.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    want = (np.ones((4, 5)).T @ x)             # d sum(x @ W.T) / dW
    (x @ tg.apply("transpose", _transposed_copy, W)).sum().backward()
    np.testing.assert_array_equal(W.grad, want)
    assert W.grad.base is not None and W.grad.flags.f_contiguous    # g.T itself, as copied before
    memory = W.grad.ctypes.data     # its address, not a reference: an array held elsewhere
    (x @ tg.apply("transpose", _transposed_copy, W)).sum().backward()     # added in place
    assert W.grad.ctypes.data == memory                                 # is summed anew
    np.testing.assert_array_equal(W.grad, 2 * want)
    W.grad = None
    t = tg.apply("transpose", _transposed_copy, W)
    t.retain_grad()
    (x @ t).sum().backward()
    assert not np.shares_memory(W.grad, t.grad)
    np.testing.assert_array_equal(t.grad, want.T)
    W.grad = None
    seed = rng.normal(size=(3, 5))
    tg.apply("transpose", _transposed_copy, W).backward(grad=seed)
    assert not np.shares_memory(W.grad, seed)
    (g,) = tg.grad((x @ tg.apply("transpose", _transposed_copy, W)).sum(), [W])
    np.testing.assert_array_equal(g, want)
    A = tg.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    B = tg.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    both = tg.apply("transpose_pair", lambda a, b: (a.T + b.T, (lambda g: g.T, lambda g: g.T)), A, B)
    (x @ both).sum().backward()
    assert not np.shares_memory(A.grad, B.grad)
    np.testing.assert_array_equal(A.grad, want)
    np.testing.assert_array_equal(B.grad, want)


def _transpose_add(w, b):     # a user's op of two inputs, as ``rnn.core.transposed_plus``
    return w.T + b, (lambda g: g.T, lambda g: g if g.shape == b.shape else g.sum(axis=0))


def test_a_view_of_a_two_input_ops_gradient_buffer_is_kept_when_no_other_gradient_shares_it():
    """``w.T + b`` with a bias of one row: the weight keeps the view g.T of the sweep's buffer
    as its ``.grad`` (no copy), since b's gradient is a sum, a new array."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5))
    W = tg.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    b = tg.tensor(rng.normal(size=3), requires_grad=True)
    (x @ tg.apply("transpose_add", _transpose_add, W, b)).sum().backward()
    g = x.T @ np.ones((4, 3))                  # d sum(x @ (W.T + b)) / d(W.T + b)
    np.testing.assert_array_equal(W.grad, g.T)
    np.testing.assert_array_equal(b.grad, g.sum(axis=0))
    assert W.grad.base is not None and not np.shares_memory(W.grad, b.grad)


@pytest.mark.parametrize("weight_first", [True, False])
def test_a_view_of_g_is_not_handed_over_while_another_input_holds_g_itself(weight_first):
    """``w.T + b`` with a bias of the op's full shape: b's gradient is g itself, so the weight's
    g.T stays a view the engine does not add into; the weight's gradient from its other use is
    added into a buffer of its own, and b's gradient keeps its values (whichever of the two
    uses of the weight the sweep reaches first)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5))
    c = rng.normal(size=(3, 5))
    W = tg.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    b = tg.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    both = tg.apply("transpose_add", _transpose_add, W, b)
    terms = [(x @ both).sum(), (W * c).sum()]
    (terms[0] + terms[1] if weight_first else terms[1] + terms[0]).backward()
    g = x.T @ np.ones((4, 3))
    np.testing.assert_array_equal(b.grad, g)
    np.testing.assert_allclose(W.grad, g.T + c, rtol=0, atol=1e-12)
    assert not np.shares_memory(W.grad, b.grad)


@pytest.mark.parametrize("shape", [(), (1, 3), (3,), (4, 1)])
def test_a_gradient_summed_back_to_a_broadcast_inputs_shape_is_its_own_buffer(shape):
    """A gradient the sweep sums back to a broadcast input's shape is a new array the input then
    owns (later gradients are added into it, and a leaf keeps it as ``.grad`` without a copy);
    for a 0-d input the sum is a numpy scalar, not an array to add into: every use counts."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    b = tg.tensor(rng.normal(size=shape), requires_grad=True)
    c, d = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    (((x + b) * c).sum() + ((x - b) * d).sum()).backward()
    axes = tuple(range(2 - len(shape))) + tuple(i + 2 - len(shape) for i, n in enumerate(shape)
                                                  if n == 1)
    want = (c.sum(axis=axes) - d.sum(axis=axes)).reshape(shape)
    np.testing.assert_allclose(b.grad, want, rtol=0, atol=1e-12)
    first = b.grad.copy()
    ((x + b) * c).sum().backward()               # added into the .grad kept the first time
    np.testing.assert_allclose(b.grad, first + c.sum(axis=axes).reshape(shape), rtol=0, atol=1e-12)


def test_rows_summed_by_counting_into_a_new_gradient_are_bitwise_zeros_plus_the_rows():
    """An input's first gradient from ``take`` of many rows (summed by counting) is the counted
    table itself, not zeros it is added to: the same bits, signed zeros and repeated rows
    included (each count starts at +0.0, as the zeros did)."""
    from tinygraph.tensor import Scatter
    rng = np.random.default_rng(4)
    index = rng.integers(0, 13, size=40)
    values = rng.normal(size=(40, 6))
    values[::3] = -0.0                       # whole rows of -0.0: their sums are +0.0
    index[:3] = 12                           # a row that gets only -0.0 ... and others
    scatter = Scatter(index, values, basic=False)
    want = np.zeros((13, 6))
    np.add.at(want, index, values)
    zeros = np.zeros((13, 6))
    scatter.add_into(zeros)
    got = scatter.dense((13, 6), np.float64)
    assert got.tobytes() == zeros.tobytes()
    np.testing.assert_array_equal(got, want)


def test_a_view_of_a_counted_gradient_is_handed_over_to_the_one_input_it_comes_from():
    """``take`` of many rows from ``w.T + b`` (an input map's table) gives the table its counted
    gradient (a view of the counts); the weight keeps the view g.T of that memory as its
    ``.grad``, the bias gets its own sum."""
    rng = np.random.default_rng(5)
    W = tg.tensor(rng.normal(size=(7, 13)), requires_grad=True)
    b = tg.tensor(rng.normal(size=7), requires_grad=True)
    ids = rng.integers(0, 13, size=(25, 1))
    seed = rng.normal(size=(25, 1, 7))
    (tg.take(tg.apply("transpose_add", _transpose_add, W, b), ids, axis=0) * seed).sum().backward()
    table = np.zeros((13, 7))
    np.add.at(table, ids.reshape(-1), seed.reshape(25, 7))
    np.testing.assert_array_equal(W.grad, table.T)
    np.testing.assert_array_equal(b.grad, table.sum(axis=0))
    assert W.grad.base is not None and not np.shares_memory(W.grad, b.grad)


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_refuses_an_input_the_output_reads_that_does_not_require_grad(create_graph):
    # tg.grad(y, [w, x]) of y = sum(w x^2) with x made without requires_grad gave x the zeros
    # of an input y does not depend on, where dy/dx = 2 w x = [6, 16]
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    x = tg.tensor([3.0, 4.0], name="x")
    y = (w * x * x).sum()
    with pytest.raises(tg.BackwardError, match=r"grad: input 1 'x' of shape \(2,\) does not require "
                                               r"grad, but the output is computed from it"):
        tg.grad(y, [w, x], create_graph=create_graph)
    gw, unused = tg.grad(y, [w, tg.tensor([5.0])], create_graph=create_graph)  # graph kept
    np.testing.assert_array_equal(np.asarray(gw.data if create_graph else gw), [9.0, 16.0])
    np.testing.assert_array_equal(np.asarray(unused.data if create_graph else unused), [0.0])


def test_backward_does_not_add_into_a_grad_array_that_something_else_holds():
    # backward added into an existing .grad in place: two tensors given one array
    # (p.grad = q.grad = zeros) each got the sum of both gradients, and an array the caller
    # kept (old = p.grad, or the one it assigned) changed under it, where PyTorch's
    # AccumulateGrad makes a new sum when the gradient is held elsewhere
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    q = tg.tensor([3.0, 4.0], requires_grad=True)
    shared = np.zeros(2)
    p.grad = shared
    q.grad = shared
    del shared
    (p * 10 + q * 100).sum().backward()
    np.testing.assert_array_equal(p.grad, [10.0, 10.0])
    np.testing.assert_array_equal(q.grad, [100.0, 100.0])
    mine = np.ones(2)
    p.grad = mine
    old = q.grad
    view = p.grad[:1]
    (p * 10 + q * 100).sum().backward()
    np.testing.assert_array_equal(mine, [1.0, 1.0])
    np.testing.assert_array_equal(view, [1.0])
    np.testing.assert_array_equal(old, [100.0, 100.0])
    np.testing.assert_array_equal(p.grad, [11.0, 11.0])
    np.testing.assert_array_equal(q.grad, [200.0, 200.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_0d_inputs_gradient_summed_and_cast_from_another_dtype_keeps_every_later_use(dtype):
    # maximum's rule gives a 0-d input broadcast against (1,) a float64 gradient; summed back to
    # () it is a numpy scalar, and cast to float32 it was taken for a buffer of the input's own:
    # the gradient of the input's other use was added into that scalar (a new object) and lost,
    # d/dx [0.36 lse(x) + 0.947 max(x, lse(x))] = 0.947 in float32 where it is 1.307
    x = tg.tensor(np.array([0.1257], dtype), requires_grad=True)
    lse = tg.logsumexp(x)                       # 0-d, equal to x: a tie, half the gradient each
    loss = tg.sum(lse * 0.36) + tg.sum(tg.maximum(x, lse) * 0.947)
    (grad,) = tg.grad(loss, [x])
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, [0.36 + 0.947], rtol=1e-6)


def test_backward_does_not_add_into_a_grad_that_is_a_view_of_an_array_the_caller_holds():
    # p.grad = buf[:2]: the view is held by the slot alone, but the memory it writes is buf's,
    # which the caller holds: backward added into buf without a word
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    buf = np.zeros(4)
    p.grad = buf[:2]
    (p * 10).sum().backward()
    np.testing.assert_array_equal(buf, [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p.grad, [10.0, 10.0])
    p.grad = np.zeros(4)[1:3]       # a view of memory nothing else holds: added into in place
    (p * 10).sum().backward()
    np.testing.assert_array_equal(p.grad, [10.0, 10.0])


@pytest.mark.parametrize("how", ["backward", "grad", "backward create_graph", "grad create_graph"])
def test_a_seed_beyond_the_outputs_float_dtype_is_refused_not_made_inf(how):
    # backward(grad=[1e40, 1, 1]) of a float32 output cast the seed to inf without a word (the
    # constructors refuse such a value); a seed of float32 range, or inf itself, is still used
    x = tg.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    create_graph = how.endswith("create_graph")

    def run(seed):
        if how.startswith("backward"):
            (x * 2).backward(seed, create_graph=create_graph)
            return x.grad
        return tg.grad(x * 2, [x], grad=seed, create_graph=create_graph)[0]

    with pytest.raises(tg.OutOfRangeError, match=r"grad=.*1e\+40 at \(0,\).*float32"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)    # refused, not warned about first
            run([1e40, 1.0, 1.0])
    assert x.grad is None
    np.testing.assert_array_equal(np.asarray(run(np.array([7e4, 1.0, np.inf]))), [1.4e5, 2.0, np.inf])
