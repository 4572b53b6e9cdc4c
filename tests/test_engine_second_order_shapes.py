"""Second-order gradients through every shape op, spelled every way a user writes it.

For each shape op f, h(x) = sum(r * f(x)^3) has a nonzero Hessian; the gradient of
<grad h(x), v> built with ``create_graph=True`` must equal central differences of the
first-order gradient along v (the Hessian-vector product, eq. 10.52's kind of term).
"""

import numpy as np
import pytest

import tinygraph as tg

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3))
X3 = rng.standard_normal((2, 1, 3))

SHAPE_OPS = {
    ".T": (lambda x: x.T, X),
    ".transpose()": (lambda x: x.transpose(), X),
    "tg.transpose(x)": (lambda x: tg.transpose(x), X3),
    "tg.transpose(x, None)": (lambda x: tg.transpose(x, None), X3),
    "transpose with axes": (lambda x: x.transpose(1, 2, 0), X3),
    "np.transpose(x)": (lambda x: np.transpose(x), X),
    "np.transpose(x, axes=)": (lambda x: np.transpose(x, axes=(2, 0, 1)), X3),
    "reshape(-1)": (lambda x: x.reshape(-1), X),
    "reshape tuple": (lambda x: x.reshape((3, 2)), X),
    "np.reshape": (lambda x: np.reshape(x, (6, 1)), X),
    "swapaxes": (lambda x: x.swapaxes(0, 2), X3),
    "squeeze": (lambda x: x.squeeze(), X3),
    "squeeze axis": (lambda x: tg.squeeze(x, 1), X3),
    "unsqueeze": (lambda x: x.unsqueeze(1), X),
    "expand_dims": (lambda x: tg.expand_dims(x, (0, 2)), X),
    "flatten": (lambda x: x.flatten(), X3),
    "np.ravel": (lambda x: np.ravel(x), X),
    "broadcast_to": (lambda x: tg.broadcast_to(x, (4, 2, 3)), X),
    "sum_to": (lambda x: tg.sum_to(x, (1, 3)), X),
    "basic index": (lambda x: x[1, ::-2], X),
    "integer array index": (lambda x: x[[1, 1, 0]], X),
    "boolean index": (lambda x: x[X > 0], X),
    "take": (lambda x: tg.take(x, [2, 0, 2], axis=1), X),
    "np.take (flattened)": (lambda x: np.take(x, [5, 0, 5]), X),
    "concat": (lambda x: tg.concat([x, x.T.T], axis=0), X),
    "stack": (lambda x: tg.stack([x, x * 2], axis=-1), X),
    "split": (lambda x: tg.split(x, [1], axis=1)[1], X),
    "a list operand": (lambda x: x * [x[0], x[1]], X),
    "permute": (lambda x: x.permute(2, 0, 1), X3),
    "moveaxis": (lambda x: tg.moveaxis(x, 0, -1), X3),
    "flip": (lambda x: tg.flip(x, axis=1), X),
    "tile": (lambda x: tg.tile(x, (2, 1, 2)), X),
    "repeat": (lambda x: x.repeat(1, 2), X),
    "pad": (lambda x: tg.pad(x, ((1, 0), (0, 2)), value=0.5), X),
    "expand": (lambda x: x.expand(2, -1, 3), X3),
    "view": (lambda x: x.view(3, 2), X),
    "cat": (lambda x: tg.cat([x, x[:, :1]], dim=1), X),
    "hstack": (lambda x: tg.hstack([x, x]), X),
    "vstack": (lambda x: tg.vstack([x, x[0]]), X),
    "unbind": (lambda x: tg.unbind(x, 1)[2], X),
    "chunk": (lambda x: tg.chunk(x, 2, axis=1)[1], X),
    "h @ W.T (a user cell)": (lambda x: tg.tensor(np.ones((4, 3))) @ x.T, X),
}


def _objective(fn, r):
    def h(x):
        y = fn(x)
        return (r * y * y * y).sum()
    return h


def _gradient(h, a):
    x = tg.tensor(a, requires_grad=True)
    return tg.grad(h(x), x)


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_hessian_vector_product_through_a_shape_op_matches_finite_differences_of_the_gradient(name):
    fn, a = SHAPE_OPS[name]
    r = np.random.default_rng(1).standard_normal(fn(tg.tensor(a)).shape)
    v = np.random.default_rng(2).standard_normal(a.shape)
    h = _objective(fn, r)
    x = tg.tensor(a, requires_grad=True)
    g = tg.grad(h(x), x, create_graph=True)
    np.testing.assert_allclose(g.data, _gradient(h, a), rtol=1e-12, atol=1e-12)
    hv = tg.grad((g * v).sum(), x)
    eps = 1e-6
    numeric = (_gradient(h, a + eps * v) - _gradient(h, a - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv, numeric, rtol=1e-6, atol=1e-6)


def test_the_sweep_covers_every_public_shape_op():
    public = {"transpose", "reshape", "swapaxes", "squeeze", "unsqueeze", "expand_dims", "flatten",
              "broadcast_to", "sum_to", "getitem", "take", "concat", "stack", "split", "permute",
              "moveaxis", "flip", "tile", "repeat", "pad", "expand", "view", "cat", "hstack",
              "vstack", "unbind", "chunk"}
    spelled = " ".join(SHAPE_OPS)
    covered = {op for op in public if op in spelled or (op == "getitem" and "index" in spelled)}
    assert covered == public


def test_gradient_penalty_of_a_cell_written_with_w_t_as_in_the_readme_matches_finite_differences(
        numeric_grad):
    h = np.random.default_rng(4).standard_normal((2, 3))
    w0 = np.random.default_rng(3).standard_normal((3, 3))

    def loss(W):
        return (tg.tanh(tg.tensor(h) @ W.T) ** 2).sum()

    def penalty_by_first_order(w):      # ||dL/dW||^2 from plain (first-order) backprop
        W = tg.tensor(w, requires_grad=True)
        return float((tg.grad(loss(W), W) ** 2).sum())

    W = tg.tensor(w0, requires_grad=True)
    gW = tg.grad(loss(W), W, create_graph=True)
    (gW * gW).sum().backward()
    (expected,) = numeric_grad(penalty_by_first_order, [w0])
    np.testing.assert_allclose(W.grad, expected, rtol=1e-6, atol=1e-8)
