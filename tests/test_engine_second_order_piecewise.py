"""Second derivatives (``create_graph``) through the piecewise-linear relu, leaky_relu and abs.

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
    "leaky_relu": lambda t: tg.leaky_relu(t, 0.1).sum(),
    "leaky_relu_squared": lambda t: (tg.leaky_relu(t, 0.1) ** 2 * t).sum(),
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


ALONE = {"relu": (tg.relu, [0.0, 0.0, 1.0, 1.0]), "abs": (tg.abs, [-1.0, 0.0, 1.0, 0.0]),
         "leaky_relu": (lambda t: tg.leaky_relu(t, 0.1), [0.1, 0.1, 1.0, 0.1])}


@pytest.mark.parametrize("op", ALONE)
def test_second_derivative_of_relu_leaky_relu_and_abs_alone_is_zeros(op):
    fn, slope = ALONE[op]
    t, g = _first(lambda t: fn(t).sum(), np.array([-1.5, 0.0, 2.0, np.nan]))
    np.testing.assert_array_equal(g.data, slope)
    (h,) = tg.grad(g.sum(), [t])
    np.testing.assert_array_equal(h, np.zeros(4))


def test_the_gradient_is_the_same_bits_with_and_without_create_graph():
    x = np.array([-0.0, 0.0, -2.0, 3.0, np.inf, -np.inf])
    g = np.array([-0.0, -1.0, np.inf, np.nan, -2.0, 5.0])
    for op, (fn, _) in ALONE.items():
        plain = tg.tensor(x, requires_grad=True)
        fn(plain).backward(g)
        graph = tg.tensor(x, requires_grad=True)
        with np.errstate(invalid="ignore"):
            (made,) = tg.grad(fn(graph), [graph], grad=tg.tensor(g), create_graph=True)
        assert made.data.tobytes() == plain.grad.tobytes(), op


@pytest.mark.parametrize("op", ["relu", "abs", "leaky_relu"])
def test_second_derivative_agrees_with_torch(op):
    torch = pytest.importorskip("torch", reason="torch is optional; finite differences above "
                                                "are the oracle")
    for build in (lambda f, t: f(t).sum(), lambda f, t: (f(t) ** 3 * t).sum()):
        t = tg.tensor(X, requires_grad=True)
        mine = (lambda t: tg.leaky_relu(t, 0.1)) if op == "leaky_relu" else getattr(tg, op)
        theirs = ((lambda t: torch.nn.functional.leaky_relu(t, 0.1)) if op == "leaky_relu"
                  else getattr(torch, op))
        (g,) = tg.grad(build(mine, t), [t], create_graph=True)
        (h,) = tg.grad(g.sum(), [t])
        tt = torch.tensor(X, requires_grad=True)
        (gt,) = torch.autograd.grad(build(theirs, tt), [tt], create_graph=True)
        (ht,) = torch.autograd.grad(gt.sum(), [tt])
        np.testing.assert_allclose(g.data, gt.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(h, ht.numpy(force=True), rtol=1e-13)   # a ZeroTensor: zeros
