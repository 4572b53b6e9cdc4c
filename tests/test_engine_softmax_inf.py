"""softmax, log_softmax, logsumexp, cross_entropy and binary_cross_entropy_with_logits of
logits holding +inf or -inf.

A row with one +inf has a limit (that entry's probability 1): softmax is one-hot, log_softmax
0 there and -inf elsewhere, cross_entropy 0 or inf, and the gradients are the limits (0, or
softmax - onehot), where torch gives NaN.  A row whose limit does not exist (two +inf, a NaN,
every entry -inf: 0/0) is NaN across the whole row, as torch's, never partly a number.
Was: softmax([1, inf]) = [0, nan], log_softmax [-inf, nan], a gradient [nan, nan],
cross_entropy([1, inf], target 1) NaN with a NaN gradient, and logsumexp's gradient [0, nan].
"""

import numpy as np
import pytest

import tinygraph as tg
from conftest import central_differences

INF = np.inf


def _value_and_grad(fn, x, weights=None):
    t = tg.tensor(np.array(x, dtype=np.float64), requires_grad=True)
    out = fn(t)
    out.backward(np.ones(out.shape) if weights is None else np.array(weights, dtype=np.float64))
    return out.data, t.grad


@pytest.mark.parametrize("x", [[1.0, INF], [INF, -3.0, 2.0], [-INF, 5.0, INF]])
def test_one_inf_in_a_row_gives_the_limit(x):
    big = np.where(np.isinf(x) & (np.array(x) > 0), 1e300, x)   # the limit, reached in float64
    hot = (np.array(x) == INF).astype(float)
    w = [0.3, -1.2, 2.0][:len(x)]      # a backward of other weights than ones: a real gradient
    for fn in (lambda t: t.softmax(-1), lambda t: tg.softmax(t, axis=-1)):
        value, grad = _value_and_grad(fn, x, w)
        np.testing.assert_array_equal(value, hot)
        np.testing.assert_array_equal(value, _value_and_grad(fn, big, w)[0])
        np.testing.assert_array_equal(grad, np.zeros(len(x)))
    value, grad = _value_and_grad(lambda t: t.log_softmax(-1), x, w)
    np.testing.assert_array_equal(value, np.where(hot == 1, 0.0, -INF))
    np.testing.assert_array_equal(grad, np.array(w) - hot * sum(w))    # g - softmax * sum g
    value, grad = _value_and_grad(lambda t: t.logsumexp(-1), x, 1.5)
    assert value == INF
    np.testing.assert_array_equal(grad, 1.5 * hot)          # g times softmax's limit


def test_logsumexp_gradient_of_rows_with_and_without_a_limit():
    x = np.array([[1.0, INF, 0.0], [1.0, 2.0, 3.0], [INF, INF, 0.0]])
    value, grad = _value_and_grad(lambda t: t.logsumexp(1), x)
    np.testing.assert_array_equal(value[[0, 2]], [INF, INF])
    np.testing.assert_array_equal(grad[0], [0.0, 1.0, 0.0])
    finite = x[1] - value[1]
    assert grad[1].tobytes() == np.exp(finite).tobytes()     # the finite row as before
    assert np.isnan(grad[2]).all()                           # no limit: NaN whole


def test_cross_entropy_of_an_inf_logit_is_its_limit_with_a_finite_gradient():
    for target, loss, grad in ((1, 0.0, [0.0, 0.0, 0.0]), (0, INF, [-1.0, 1.0, 0.0])):
        t = tg.tensor(np.array([[1.0, INF, -2.0]]), requires_grad=True)
        out = tg.cross_entropy(t, np.array([target]))
        out.backward()
        assert out.item() == loss
        np.testing.assert_array_equal(t.grad, [grad])
        # the same numbers as the large finite logit that stands for it
        big = tg.tensor(np.array([[1.0, 1e300, -2.0]]), requires_grad=True)
        tg.cross_entropy(big, np.array([target])).backward()
        np.testing.assert_array_equal(t.grad, big.grad)


@pytest.mark.parametrize("x", [[INF, INF, 1.0], [INF, 2.0, np.nan], [-INF, -INF]])
def test_a_row_without_a_limit_is_nan_whole(x):
    with np.errstate(invalid="ignore"):
        for fn in (lambda t: t.softmax(-1), lambda t: t.log_softmax(-1)):
            value, grad = _value_and_grad(fn, x)
            assert np.isnan(value).all() and np.isnan(grad).all()
        loss = tg.cross_entropy(tg.tensor(np.array([x])), np.array([len(x) - 1]))
        assert np.isnan(loss.item())


def test_other_rows_keep_their_numbers():
    x = np.array([[1.0, INF], [1.0, 2.0], [INF, INF]])
    with np.errstate(invalid="ignore"):
        out = tg.tensor(x).softmax(-1).data
    np.testing.assert_array_equal(out[0], [0.0, 1.0])
    np.testing.assert_allclose(out[1], np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum(), rtol=1e-15)
    assert np.isnan(out[2]).all()


def test_torch_gives_nan_where_the_limit_is_taken_here():
    torch = pytest.importorskip("torch", reason="torch is optional; the limits above are the oracle")
    x = torch.tensor([1.0, INF], dtype=torch.float64)
    assert torch.isnan(torch.softmax(x, -1)).all()          # torch: NaN; here [0, 1]
    for row in ([INF, INF, 1.0], [-INF, -INF]):              # no limit: NaN in both
        assert torch.isnan(torch.softmax(torch.tensor(row, dtype=torch.float64), -1)).all()
        with np.errstate(invalid="ignore"):
            assert np.isnan(tg.tensor(np.array(row)).softmax(-1).data).all()


def _logsumexp_slope(x, v):
    """(t, the first derivative of sum(v * logsumexp(x, 1)) under create_graph)."""
    t = tg.tensor(x, requires_grad=True)
    (g,) = tg.grad((tg.logsumexp(t, axis=1) * tg.tensor(v)).sum(), [t], create_graph=True)
    return t, g


def test_logsumexp_second_derivative_at_one_inf_is_the_limit_of_the_first():
    x = np.array([[1.0, INF, 0.5], [0.3, -0.2, 1.0]])
    rows, u = np.array([1.5, -0.7]), np.array([[0.7, -1.1, 0.5], [1.0, 2.0, 3.0]])
    t, g = _logsumexp_slope(x, rows)
    plain = tg.tensor(x, requires_grad=True)
    (tg.logsumexp(plain, axis=1) * tg.tensor(rows)).sum().backward()
    assert g.data.tobytes() == plain.grad.tobytes()       # [0, 1.5, 0] in the inf row, was NaN
    (hv,) = tg.grad((g * u).sum(), [t])                   # was NaN across the inf row

    def first(a):
        p = tg.tensor(a, requires_grad=True)
        (tg.logsumexp(p, axis=1) * tg.tensor(rows)).sum().backward()
        return float((p.grad * u).sum())
    (expected,) = central_differences(first, [x])
    np.testing.assert_array_equal(hv[0], np.zeros(3))     # one-hot is flat in every direction
    np.testing.assert_allclose(hv, expected, rtol=1e-6, atol=1e-8)


def test_binary_cross_entropy_at_an_infinite_logit_is_its_limit():
    # max(x, 0) - x y + log1p(exp(-|x|)) is inf - inf at x = inf: the loss was NaN for every
    # target, even y = 1 at +inf (a sure, right answer: 0); torch gives NaN for some of these
    x = np.array([INF, INF, INF, -INF, -INF, -INF, 2.0])
    y = np.array([1.0, 0.0, 0.3, 0.0, 1.0, 0.3, 0.4])
    t = tg.tensor(x, requires_grad=True)
    with np.errstate(all="raise"):      # no invalid operation is left for the caller's errstate
        out = tg.binary_cross_entropy_with_logits(t, y, reduction="none")
    np.testing.assert_array_equal(out.data[:6], [0.0, INF, INF, 0.0, INF, INF])
    assert out.data[6] == 2.0 - 0.8 + np.log1p(np.exp(-2.0))            # finite entries as before
    out.backward(np.ones(7))
    np.testing.assert_allclose(t.grad, 1 / (1 + np.exp(-x)) - y, rtol=1e-15)   # sigmoid(x) - y
    mean = tg.binary_cross_entropy_with_logits(tg.tensor([INF, -INF]), tg.tensor([1.0, 0.0]))
    assert mean.item() == 0.0
