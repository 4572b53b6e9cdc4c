"""Second derivatives (``create_graph``) through the piecewise-linear relu and abs.

Their first derivative is a function of x (a step, a sign) whose own derivative is 0 away from
the kinks, so a second derivative through them is zeros (as torch's), and one of f(relu(x)) or
f(|x|) is f'' times the squared slope: each checked against central differences of the first
derivative, at points away from the kink.  Was: BackwardError "this tensor does not require
grad", since the gradient was made of constants alone.
"""

import numpy as np
import pytest

import tinygraph as tg
from conftest import central_differences

X = np.array([-1.5, -0.3, 0.4, 2.0])     # away from 0, where the derivatives are defined

CASES = {
    "relu": lambda t: t.relu().sum(),
    "abs": lambda t: t.abs().sum(),
    "relu_cubed": lambda t: (tg.relu(t) ** 3).sum(),
    "abs_cubed": lambda t: (tg.abs(t) ** 3).sum(),
    "tanh_of_relu": lambda t: (tg.relu(t * 1.3).tanh() * t).sum(),
    "exp_of_abs_times_relu": lambda t: (tg.abs(t).exp() * tg.relu(t + 1.0)).sum(),
}


def _first(fn, x):
    t = tg.tensor(x, requires_grad=True)
    (g,) = tg.grad(fn(t), [t], create_graph=True)
    return t, g


@pytest.mark.parametrize("name", CASES)
def test_second_derivative_matches_differences_of_the_first(name):
    fn = CASES[name]
    v = np.array([0.7, -1.1, 0.5, 2.0])        # a Hessian-vector product: d/dx (g . v)
    t, g = _first(fn, X)
    (hv,) = tg.grad((g * v).sum(), [t])
    (expected,) = central_differences(lambda x: float((_first(fn, x)[1].data * v).sum()), [X])
    np.testing.assert_allclose(hv, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op", ["relu", "abs"])
def test_second_derivative_of_relu_and_abs_alone_is_zeros(op):
    t, g = _first(lambda t: getattr(t, op)().sum(), np.array([-1.5, 0.0, 2.0, np.nan]))
    np.testing.assert_array_equal(g.data, [0.0, 0.0, 1.0, 1.0] if op == "relu" else
                                  [-1.0, 0.0, 1.0, 0.0])
    (h,) = tg.grad(g.sum(), [t])
    np.testing.assert_array_equal(h, np.zeros(4))


def test_the_gradient_is_the_same_bits_with_and_without_create_graph():
    x = np.array([-0.0, 0.0, -2.0, 3.0, np.inf, -np.inf])
    g = np.array([-0.0, -1.0, np.inf, np.nan, -2.0, 5.0])
    for op in ("relu", "abs"):
        plain = tg.tensor(x, requires_grad=True)
        getattr(plain, op)().backward(g)
        graph = tg.tensor(x, requires_grad=True)
        with np.errstate(invalid="ignore"):
            (made,) = tg.grad(getattr(graph, op)(), [graph], grad=tg.tensor(g), create_graph=True)
        assert made.data.tobytes() == plain.grad.tobytes(), op


@pytest.mark.parametrize("op", ["relu", "abs"])
def test_second_derivative_agrees_with_torch(op):
    torch = pytest.importorskip("torch", reason="torch is optional; finite differences above "
                                                "are the oracle")
    for build in (lambda f, t: f(t).sum(), lambda f, t: (f(t) ** 3 * t).sum()):
        t = tg.tensor(X, requires_grad=True)
        (g,) = tg.grad(build(getattr(tg, op), t), [t], create_graph=True)
        (h,) = tg.grad(g.sum(), [t])
        tt = torch.tensor(X, requires_grad=True)
        (gt,) = torch.autograd.grad(build(getattr(torch, op), tt), [tt], create_graph=True)
        (ht,) = torch.autograd.grad(gt.sum(), [tt])
        np.testing.assert_allclose(g.data, gt.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(h, ht.numpy(force=True), rtol=1e-13)   # a ZeroTensor: zeros
