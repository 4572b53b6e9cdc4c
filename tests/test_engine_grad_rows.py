"""tinygraph.rows.grad_rows: several outputs' gradients in one sweep, each row exactly what
tg.grad of that output gives."""

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.rows import grad_rows


def _graph(dtype=np.float64):
    """Scalar outputs through every kind of rule: stacked (matmul of a matrix and of a
    vector, addmm, identity, negative, tanh, sigmoid, mul with broadcasting) and row by row
    (div, getitem and take as scatters, stack, sum, reshape, transpose, exp)."""
    rng = np.random.default_rng(3)
    W = tg.tensor(rng.normal(size=(4, 3)), requires_grad=True, dtype=dtype)
    b = tg.tensor(rng.normal(size=(3,)), requires_grad=True, dtype=dtype)
    x = tg.tensor(rng.normal(size=(2, 4)), requires_grad=True, dtype=dtype)
    v = tg.tensor(rng.normal(size=(4,)), requires_grad=True, dtype=dtype)
    h1 = tg.tanh(tg.addmm(b, x, W))                    # (2, 3)
    h2 = tg.sigmoid(tg.matmul(v, W)) * b - h1[1]        # (3,), broadcast mul, getitem
    h3 = tg.stack([h1[0], h2]) / (tg.exp(b) + 1.0)      # (2, 3)
    h4 = tg.reshape(tg.transpose(h3), (6,))
    h5 = tg.take(h4, np.array([0, 2, 2, 5]))
    outputs = [tg.sum(h1), tg.sum(h2 * h2), tg.sum(h3), tg.sum(h5 * h5), tg.sum(-h4)]
    return outputs, [W, b, x, v, h1, h2, h3]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_row_is_the_gradient_of_its_own_output(dtype):
    outputs, inputs = _graph(dtype)
    rows = grad_rows(outputs, inputs)
    for r, out in enumerate(outputs):
        expected = tg.grad(out, inputs, retain_graph=True)
        for i, (got, want) in enumerate(zip(rows, expected)):
            assert got.shape == (len(outputs),) + inputs[i].shape
            assert got.dtype == inputs[i].dtype
            np.testing.assert_allclose(got[r], want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-14,
                                       err_msg=f"row {r} input {i}")


def test_seeds_give_a_jacobian_row_per_unit():
    rng = np.random.default_rng(0)
    W = tg.tensor(rng.normal(size=(3, 3)), requires_grad=True)
    h = tg.tensor(rng.normal(size=(1, 3)), requires_grad=True)
    out = tg.tanh(tg.matmul(h, W))
    seeds = np.eye(3).reshape(3, 1, 3)
    jac = grad_rows([out] * 3, [h], seeds)[0].reshape(3, 3)
    expected = (1 - out.data.reshape(-1) ** 2)[:, None] * W.data.T     # ∂out_i/∂h_j
    np.testing.assert_allclose(jac, expected, rtol=1e-12)


def test_a_row_that_does_not_reach_an_input_is_zeros():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0], requires_grad=True)
    fixed = tg.tensor(5.0)
    ga, gc = grad_rows([tg.sum(a * a), tg.sum(c), fixed], [a, c])
    np.testing.assert_array_equal(ga, [[2.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(gc, [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])


def test_the_graph_and_grads_are_left_as_they_were():
    outputs, inputs = _graph()
    grad_rows(outputs, inputs)
    assert all(t.grad is None for t in inputs)
    expected = tg.grad(outputs[0], inputs[0], retain_graph=True)
    outputs[0].backward()                       # not freed
    np.testing.assert_array_equal(inputs[0].grad, expected)


def test_a_non_scalar_output_without_a_seed_is_refused():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.BackwardError, match="output 0 has shape \\(2,\\)"):
        grad_rows([a * 2], [a])


def test_a_seed_of_the_wrong_shape_is_refused():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.ShapeError, match="seed 0 has shape \\(3,\\)"):
        grad_rows([a * 2], [a], [np.ones(3)])


@pytest.mark.parametrize("seed", [np.array([1 + 1j, 1]), np.array([True, False]),
                                  np.array(["1", "2"]), np.array([1, None], dtype=object)])
def test_a_seed_that_is_not_real_numbers_is_refused_as_backward_refuses_it(seed):
    # the seeds were cast to the output's dtype: the imaginary part dropped, text parsed
    # ("1", "2" gave the row [2, 8]), None made NaN, booleans 1 and 0
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.DTypeError, match=r"grad_rows: seed 0 must be real numbers, got dtype"):
        grad_rows([a * a], [a], [seed])
    with pytest.raises(tg.DTypeError, match="grad= must be real numbers"):
        (a * a).backward(grad=seed)
    np.testing.assert_array_equal(grad_rows([a * a], [a], [np.array([1, 2])])[0], [[2.0, 8.0]])


def test_a_freed_graph_is_refused():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    out = tg.sum(tg.tanh(a))
    out.backward()
    with pytest.raises(tg.GraphFreedError):
        grad_rows([out], [a])


def test_rows_through_broadcast_to_leaky_relu_and_a_broadcast_addmm_match_one_sweep_per_row():
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.normal(size=(4,)), requires_grad=True)
    a = tg.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    b = tg.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    c = tg.leaky_relu(tg.broadcast_to(x, (3, 4)), 0.2)
    out = tg.addmm(tg.reshape(c[:, :2], (3, 1, 2)), a, b)     # c broadcasts the product
    outputs = [out[i].sum() for i in range(3)] + [(out * out).sum()]
    rows = grad_rows(outputs, [x, a, b])
    for r, o in enumerate(outputs):
        for got, want in zip(rows, tg.grad(o, [x, a, b], retain_graph=True)):
            np.testing.assert_allclose(got[r], want, rtol=1e-13, atol=1e-15)


def test_a_vjp_that_gives_none_is_a_row_of_zeros_not_nan():
    """A user's vjp that returns None (no gradient for that input this time; the replay node
    of rnn says so for a weight or an input map its steps never reached): tg.grad gives
    zeros, and grad_rows made np.asarray(None) a row of NaN without a word."""
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = tg.Tensor(np.ones(3), requires_grad=True)

    def f(a, b):
        return a * 2 + b, (lambda g: g * 2, lambda g: None)

    out = tg.apply("f", f, x, y).sum()
    rows = grad_rows([out, out * 3], [x, y])
    for r, seed in enumerate((1.0, 3.0)):
        for got, want in zip(rows, tg.grad(out * seed, [x, y], retain_graph=True)):
            np.testing.assert_array_equal(got[r], want)


def test_rows_through_a_replayed_unroll_with_a_weight_the_steps_do_not_reach():
    import rnn
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    Z = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="Z")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")

    def step(h, x):
        (h @ Z).tanh()                  # computed, not returned: Z gets no gradient
        return (h @ W.T).tanh() + x

    cell = rnn.Recurrence(step, [W, Z, V], 3, n_in=3, readout=lambda h: h @ V.T)
    xs, ys = rng.normal(size=(9, 2, 3)), rng.integers(0, 4, size=(9, 2))
    run = cell.run_for_loss(xs, ys)
    assert run.replayed is not None
    rows = grad_rows([run.loss, run.loss * 2], [W, Z, V])
    for r, seed in enumerate((1.0, 2.0)):
        for got, want in zip(rows, tg.grad(run.loss * seed, [W, Z, V], retain_graph=True)):
            np.testing.assert_allclose(got[r], want, rtol=1e-12, atol=1e-14)


def test_grad_rows_refuses_an_input_the_outputs_read_that_does_not_require_grad():
    # as tg.grad: x without requires_grad got rows of zeros, where d sum(w x^2)/dx = 2 w x
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    x = tg.tensor([3.0, 4.0], name="x")
    y = (w * x * x).sum()
    with pytest.raises(tg.BackwardError, match=r"grad_rows: input 1 'x' of shape \(2,\) does not "
                                               r"require grad"):
        grad_rows([y, 2 * y], [w, x])
    gw, unused = grad_rows([y, 2 * y], [w, tg.tensor([5.0])])
    np.testing.assert_array_equal(gw, [[9.0, 16.0], [18.0, 32.0]])
    np.testing.assert_array_equal(unused, [[0.0], [0.0]])
