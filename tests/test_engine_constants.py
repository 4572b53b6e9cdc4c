"""Ops given only plain numbers compute numpy's value (a constant), and misuse raises a
tinygraph error -- never an AttributeError from inside an op."""

import numpy as np
import pytest

import tinygraph as tg


@pytest.mark.parametrize("call, expected", [
    (lambda: tg.flatten(2.0), np.array([2.0])),
    (lambda: tg.max(2.0), np.float64(2.0)),
    (lambda: tg.mean(3), np.float64(3.0)),
    (lambda: tg.reshape(2.0, (1, 1)), np.array([[2.0]])),
    (lambda: tg.softmax(1.5), np.float64(1.0)),
    (lambda: tg.mse_loss(2.0, 0.5), np.float64(2.25)),
    (lambda: tg.sum_to([[1.0, 2.0], [3.0, 4.0]], (1, 2)), np.array([[4.0, 6.0]])),
])
def test_an_op_on_plain_numbers_gives_numpys_value_as_a_constant(call, expected):
    out = call()
    assert isinstance(out, tg.Tensor) and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected)
    assert out.shape == np.shape(expected)


def test_a_scalar_constant_keeps_numpys_weak_promotion_beside_a_tensor():
    x = tg.tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    assert (x * 2.0).dtype == np.float32


def test_grad_of_something_that_is_not_a_tensor_raises_a_dtype_error():
    x = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(tg.DTypeError, match="output must be a Tensor"):
        tg.grad([x, x], x)


def test_clipping_a_create_graph_gradient_in_place_makes_graphs_built_from_it_stale():
    p = tg.Parameter(np.array([3.0, 4.0]))
    (p * p).sum().backward(create_graph=True)          # p.grad = 2 p, a Tensor of norm 10
    penalty = (p.grad * p.grad).sum()
    assert tg.clip_grad_norm([p], 1.0) == pytest.approx(10.0)
    np.testing.assert_allclose(p.grad.data, [0.6, 0.8])
    with pytest.raises(tg.StaleGraphError):
        penalty.backward()


def test_clip_with_lo_above_hi_gives_hi_and_sends_the_gradient_to_hi_only(numeric_grad):
    x = tg.tensor([0.0, 2.0, 5.0], requires_grad=True)
    lo = tg.tensor([3.0, 3.0, 3.0], requires_grad=True)
    hi = tg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    out = tg.clip(x, lo, hi)
    np.testing.assert_array_equal(out.data, np.clip(x.data, lo.data, hi.data))
    out.sum().backward()
    expected = numeric_grad(lambda a, b, c: float(np.clip(a, b, c).sum()), [x.data, lo.data, hi.data])
    for t, e in zip((x, lo, hi), expected):
        np.testing.assert_allclose(t.grad, e, atol=1e-9)


def _user_scale(w, a):      # a user's op over a constant: its vjp closes over the array it got
    return w * a, (lambda g: g * a, None)


# op -> (how it uses the numpy array a, how to make a)
_KEPT = {
    "mul": (lambda w, a: (w * a).sum(), "float"),
    "matmul": (lambda w, a: ((a.T @ w) ** 2).sum(), "float"),
    "where": (lambda w, a: tg.where(a, w, 0.0).sum(), "bool"),
    "clip": (lambda w, a: tg.clip(w, a - 1.0, a + 0.1).sum(), "float"),
    "concat": (lambda w, a: (tg.concat([w, a], 0) ** 2).sum(), "float"),
    "index": (lambda w, a: (w[a] ** 2).sum(), "ids"),
    "take": (lambda w, a: (tg.take(w, a, axis=0) ** 2).sum(), "ids"),
    "cross_entropy": (lambda w, a: tg.cross_entropy(w, a), "ids"),
    "nll_loss": (lambda w, a: tg.nll_loss(tg.log_softmax(w, -1), a), "ids"),
    "mse_loss": (lambda w, a: tg.mse_loss(w, a), "float"),
    "binary_cross_entropy_with_logits":
        (lambda w, a: tg.binary_cross_entropy_with_logits(w, a), "unit"),
    "a user's apply": (lambda w, a: tg.apply("scale", _user_scale, w, a).sum(), "float"),
}


@pytest.mark.parametrize("op", sorted(_KEPT))
def test_an_op_keeps_a_numpy_constant_as_it_was_when_the_op_ran(op):
    """A numpy array given to an op and changed in place afterwards (a buffer the caller reuses)
    does not change the gradient: the op keeps its own copy, as numpy's result does not change
    with its operands.  Before, 10 of these 12 back-propagated through the new values."""
    use, kind = _KEPT[op]
    rng = np.random.default_rng(0)
    make = {"float": lambda: rng.normal(size=(4, 3)), "bool": lambda: rng.normal(size=(4, 3)) > 0,
            "ids": lambda: np.array([0, 1, 2, 0]), "unit": lambda: rng.random((4, 3))}[kind]
    w = tg.Parameter(rng.normal(size=(4, 3)))
    a = make()
    before = a.copy()
    loss = use(w, a)
    a[...] = ~before if kind == "bool" else 2       # the caller reuses its buffer
    loss.backward()
    got, w.grad = w.grad, None
    use(w, before).backward()
    np.testing.assert_array_equal(got, w.grad)
