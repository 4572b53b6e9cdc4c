"""Numerics without lost digits: log-sum-exp, softmax and cross-entropy with a large max logit,
sigmoid far below zero, and the gradient of x ** 0 at 0; and gradcheck on float32 inputs."""

import math
import re

import numpy as np
import pytest

import tinygraph as tg

E = math.exp(-25.0)   # softmax([1000, 975]) = [1 / (1 + E), E / (1 + E)]


def _relative(actual, exact):
    return abs(actual - exact) / abs(exact)


def test_cross_entropy_of_logits_1000_975_and_its_gradient_are_exact_to_1e_12():
    logits = tg.tensor([[1000.0, 975.0]], requires_grad=True)
    loss = tg.cross_entropy(logits, [0])
    loss.backward()
    assert _relative(loss.item(), math.log1p(E)) < 1e-12
    assert _relative(logits.grad[0, 0], -E / (1 + E)) < 1e-12     # p - 1, not 1 - 1 + tiny
    assert _relative(logits.grad[0, 1], E / (1 + E)) < 1e-12


def test_log_softmax_softmax_and_logsumexp_keep_the_small_term():
    x = tg.tensor([1000.0, 975.0])
    assert _relative(tg.log_softmax(x).data[0], -math.log1p(E)) < 1e-12
    assert _relative(tg.log_softmax(x).data[1], -25.0 - math.log1p(E)) < 1e-15
    assert _relative(tg.softmax(x).data[1], E / (1 + E)) < 1e-14
    assert _relative(tg.logsumexp(x).item() - 1000.0, math.log1p(E)) < 1e-2   # 1000 + 1.4e-11 in float64
    assert tg.logsumexp(x).item() == 1000.0 + math.log1p(E)


def test_sigmoid_keeps_full_relative_precision_for_large_negative_inputs():
    for x in (-30.0, -38.0, -100.0, -700.0):
        exact = math.exp(x) / (1 + math.exp(x))
        assert _relative(tg.sigmoid(tg.tensor(x)).item(), exact) < 1e-15
    assert np.isfinite(tg.log(tg.sigmoid(tg.tensor(-700.0))).item())
    x = tg.tensor([-40.0, 40.0], requires_grad=True)
    tg.sigmoid(x).sum().backward()
    assert _relative(x.grad[0], math.exp(-40) / (1 + math.exp(-40)) ** 2) < 1e-15
    assert _relative(x.grad[1], math.exp(-40) / (1 + math.exp(-40)) ** 2) < 1e-15


def test_power_zero_has_gradient_zero_at_zero():
    x = tg.tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    b = tg.tensor([0.0, 1.0])
    y = tg.tensor([0.0, 0.0], requires_grad=True)
    (y ** b).sum().backward()
    assert y.grad.tolist() == [0.0, 1.0]


def test_binary_cross_entropy_with_logits_is_finite_for_huge_logits():
    x = tg.tensor([800.0, -800.0], requires_grad=True)
    loss = tg.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0]), reduction="sum")
    loss.backward()
    assert loss.item() == 1600.0 and x.grad.tolist() == [1.0, -1.0]


def test_gradcheck_adapts_its_step_and_tolerances_to_float32():
    x = tg.tensor(np.linspace(-1, 1, 5), requires_grad=True, dtype=np.float32)
    assert tg.gradcheck(lambda t: (t * t).tanh() * 3, [x])


def test_gradcheck_says_float32_is_too_coarse_for_float64_tolerances():
    x = tg.tensor(np.linspace(-1, 1, 5), requires_grad=True, dtype=np.float32)
    with pytest.raises(tg.GradcheckError, match="float32, too coarse.*use float64"):
        tg.gradcheck(lambda t: t.exp(), [x], eps=1e-6, rtol=1e-5, atol=1e-8)


def test_gradcheck_on_float16_says_it_is_too_coarse_rather_than_blame_a_right_gradient():
    # the float32 defaults cannot hold in float16 (3 digits): the right gradient of x tanh(x)
    # (-1.049 at -0.7, as float64's) failed as "backprop vs finite differences" with no hint,
    # which reads as a wrong gradient
    x = tg.tensor([0.3, -0.7], requires_grad=True, dtype=np.float16)
    (x * x.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad, [0.5658537, -1.0486855], rtol=1e-3)
    with pytest.raises(tg.GradcheckError, match=r"float16, too coarse for finite differences.*"
                                                r"use float64 inputs"):
        tg.gradcheck(lambda t: (t * t.tanh()).sum(), [x])


def test_gradcheck_float32_still_catches_a_wrong_gradient():
    def wrong(x):   # value x^2, gradient claimed 3x
        return x * x, (lambda g: 3 * g * x,)
    x = tg.tensor([0.5, 1.0], requires_grad=True, dtype=np.float32)
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(lambda t: tg.apply("wrong", wrong, t), [x])


def test_gradcheck_names_the_worst_entry_and_both_values_as_plain_numbers():
    x = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, name="x")
    half = lambda a: (a * a, (lambda g: g * a,))     # noqa: E731 - d(a^2)/da is 2a, not a
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda t: tg.apply("half", half, t).sum(), [x])
    message = str(info.value)
    found = re.search(r"x entry \(2,\): backprop (\S+) vs finite differences (\S+) ", message)
    assert found, message           # numbers as Python prints them, not np.float64(...)
    backprop, numeric = float(found.group(1)), float(found.group(2))
    assert backprop == pytest.approx(numeric / 2, rel=1e-6)


@pytest.mark.parametrize("case", ["nan gradient", "where of sqrt", "inf difference"])
def test_gradcheck_fails_a_nan_or_infinite_gradient_or_difference(case):
    # a NaN error compared as > tolerance is False: a vjp giving NaN everywhere, or the NaN
    # where(x > 0, sqrt(x), 3x) sends to x = -1 (0 * 1/sqrt(-1)), passed as True; so did a
    # finite gradient beside an infinite difference (inf - inf tolerance is NaN)
    if case == "nan gradient":
        fn = lambda t: tg.apply("nan_grad", lambda a: (a * 2, (lambda g: g * np.nan,)), t)
        x = tg.tensor([1.0, 2.0], requires_grad=True)
    elif case == "where of sqrt":
        fn = lambda t: tg.where(t.data > 0, tg.sqrt(t), t * 3).sum()
        x = tg.tensor([-1.0, 2.0], requires_grad=True)
    else:   # forward 1/x stepped across 0 at x = eps: up is inf, the claimed gradient finite
        fn = lambda t: tg.apply("jump", lambda a: (1 / (a - 1e-6), (lambda g: g * 0.0,)), t)
        x = tg.tensor([0.0], requires_grad=True)
    with np.errstate(all="ignore"), pytest.raises(tg.GradcheckError, match=r"entry \(0,\)"):
        tg.gradcheck(fn, [x])
