"""Tensor methods a PyTorch user reaches for that were missing: round (and floor, ceil, trunc),
roll, clone, clamp_, __index__, numel, dim, tolist, and the method forms of add, sub, mul,
div, pow, matmul and neg.  Oracles: numpy's values, finite differences in float64, and (when
torch is installed) torch's values and gradients."""

import numpy as np
import pytest
from conftest import agree_with_torch

import tinygraph as tg


def _x():     # no entry near a rounding jump (x.x5 or an integer), so differences are exact
    return np.array([[0.31, -1.62, 2.17, 0.88], [-0.43, 1.12, -2.71, 3.36], [1.73, -0.27, 0.62, -1.18]])


@pytest.mark.parametrize("name", ["round", "floor", "ceil", "trunc"])
def test_rounding_ops_have_numpys_values_and_a_zero_gradient(name):
    x = tg.tensor(_x(), requires_grad=True)
    out = getattr(x, name)()
    np.testing.assert_array_equal(out.data, getattr(np, name)(x.data))
    np.testing.assert_array_equal(getattr(tg, name)(x).data, out.data)
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(x.grad, np.zeros((3, 4)))
    assert tg.gradcheck(lambda t: getattr(t, name)() * t, [tg.tensor(_x(), requires_grad=True)])


def test_round_takes_decimals_and_rounds_halves_to_even():
    np.testing.assert_array_equal(tg.round(tg.tensor([0.5, 1.5, 2.5, -0.5, -1.5])).data,
                                  [0.0, 2.0, 2.0, -0.0, -2.0])
    np.testing.assert_array_equal(tg.tensor([1.2345, -2.718]).round(2).data, [1.23, -2.72])
    assert tg.round(tg.tensor([7, 12]), -1).tolist() == [10, 10]     # integers stay integers
    with pytest.raises(tg.ConfigError, match="round: decimals"):
        tg.round(tg.tensor([1.0]), 0.5)


@pytest.mark.parametrize("shifts, axis", [(1, None), (-2, None), (1, 0), (3, -1), ((1, -2), (0, 1)),
                                          (5, (0, 1))])
def test_roll_is_numpys_and_its_gradient_rolls_back(shifts, axis):
    x = tg.tensor(_x(), requires_grad=True)
    np.testing.assert_array_equal(x.roll(shifts, axis).data, np.roll(x.data, shifts, axis))
    np.testing.assert_array_equal(np.roll(x, shifts, axis).data, np.roll(x.data, shifts, axis))
    g = np.arange(12.0).reshape(3, 4)
    tg.roll(x, shifts, axis).backward(g)
    np.testing.assert_array_equal(x.grad, np.roll(g, np.negative(shifts), axis))
    assert tg.gradcheck(lambda t: tg.roll(t, shifts, axis) * t, [tg.tensor(_x(), requires_grad=True)])


def test_roll_second_derivative():
    x = tg.tensor(_x(), requires_grad=True)
    (first,) = tg.grad((tg.roll(x, 1, 1) * x * x).sum(), [x], create_graph=True)
    (second,) = tg.grad(first.sum(), [x])
    # d/dx of sum(roll(x) * x^2) is roll^-1(x^2) + 2 x roll(x); its sum's gradient by hand
    xs = x.data
    np.testing.assert_allclose(second, 2 * np.roll(xs, -1, 1) + 2 * xs + 2 * np.roll(xs, 1, 1),
                               rtol=1e-14)


def test_roll_refuses_shifts_and_axes_that_do_not_pair_naming_them():
    x = tg.tensor(_x())
    with pytest.raises(tg.ConfigError, match=r"roll: shifts \(1, 2\) need a tuple of as many axes"):
        tg.roll(x, (1, 2), 0)
    with pytest.raises(tg.ShapeError, match=r"roll: axis 2 is out of range for an input of shape \(3, 4\)"):
        x.roll(1, 2)
    with pytest.raises(tg.ConfigError, match="roll: shifts must be an int"):
        x.roll(1.5)
    np.testing.assert_array_equal(x.roll(1, dims=1).data, np.roll(x.data, 1, 1))


def test_clone_copies_the_memory_and_passes_the_gradient():
    x = tg.tensor(_x(), requires_grad=True)
    y = x.clone()
    assert y.op == "clone" and not np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(y.data, x.data)
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((3, 4), 3.0))


def test_clamp_in_place_under_no_grad_and_refused_outside_it():
    p = tg.Parameter(_x(), name="w")
    memory = p.data
    with pytest.raises(tg.InPlaceError, match=r"clamp_: .*'w'.* requires grad.*x = x.clamp\(...\)"):
        p.clamp_(-1, 1)
    np.testing.assert_array_equal(p.data, _x())
    with tg.no_grad():
        assert p.clamp_(-1, 1) is p
    assert p.data is memory
    np.testing.assert_array_equal(p.data, np.clip(_x(), -1, 1))
    x = tg.tensor([-3.0, 0.5, 4.0])
    x.clip_(max=1.0)
    np.testing.assert_array_equal(x.data, [-3.0, 0.5, 1.0])
    x.clamp_(2.0, 1.0)        # min > max: max wins, as torch's
    np.testing.assert_array_equal(x.data, [1.0, 1.0, 1.0])


def test_clamp_in_place_changes_nothing_when_a_bound_does_not_fit():
    ids = tg.tensor([1, 5, 9])
    with pytest.raises(tg.DTypeError, match="clamp_"):
        ids.clamp_(0, 2.5)             # a float bound for int64 memory (torch refuses it too)
    with pytest.raises(tg.ShapeError, match=r"clamp_ on a Tensor of shape \(3,\).*\(2, 1\)"):
        ids.clamp_(np.zeros((2, 1), np.int64))
    with pytest.raises(tg.ConfigError, match="clamp_: give min=, max= or both"):
        ids.clamp_()
    assert ids.tolist() == [1, 5, 9]


def test_a_zero_d_integer_tensor_is_an_index():
    i = tg.tensor([4, 0, 2]).argmax()
    assert list(range(tg.tensor(3))) == [0, 1, 2]
    assert ["a", "b", "c"][tg.tensor(np.int32(1))] == "b"
    assert np.arange(10)[tg.tensor(7)] == 7 and i.__index__() == 0
    np.testing.assert_array_equal(np.arange(10)[tg.tensor([7])], [7])    # an array index still


@pytest.mark.parametrize("value", [3.0, [3], True])
def test_only_a_zero_d_integer_tensor_is_an_index(value):
    with pytest.raises(TypeError, match="only a 0-d integer tensor converts to an index"):
        range(tg.tensor(value))


def test_numel_dim_and_tolist():
    x = tg.tensor(_x())
    assert x.numel() == 12 and x.dim() == 2 and tg.tensor(1.5).dim() == 0
    assert x.tolist() == _x().tolist() and tg.tensor(2).tolist() == 2


def test_arithmetic_methods_are_the_operators():
    a, b = tg.tensor(_x()), tg.tensor(_x()[::-1].copy())
    for method, expected in (("add", a.data + b.data), ("sub", a.data - b.data),
                             ("mul", a.data * b.data), ("div", a.data / b.data),
                             ("pow", a.data ** 2.0)):
        other = 2.0 if method == "pow" else b
        np.testing.assert_array_equal(getattr(a, method)(other).data, expected)
    np.testing.assert_array_equal(a.matmul(b.T).data, a.data @ b.data.T)
    np.testing.assert_array_equal(a.neg().data, -a.data)


def test_the_new_methods_agree_with_torch_in_float64():
    torch = pytest.importorskip("torch", reason="torch is optional; numpy and finite differences "
                                                "are the oracle above")
    x = _x() * 1.7
    cases = {
        "round": (lambda t: t.round() * t, lambda t: t.round() * t),
        "round(decimals)": (lambda t: t.round(1) * t, lambda t: t.round(decimals=1) * t),
        "floor": (lambda t: t.floor() * t, lambda t: t.floor() * t),
        "ceil": (lambda t: t.ceil() * t, lambda t: t.ceil() * t),
        "trunc": (lambda t: t.trunc() * t, lambda t: t.trunc() * t),
        "roll": (lambda t: t.roll(1) * t, lambda t: t.roll(1) * t),
        "roll dims": (lambda t: t.roll((1, -2), (0, 1)) * t, lambda t: t.roll((1, -2), (0, 1)) * t),
        "clone": (lambda t: t.clone() * t, lambda t: t.clone() * t),
        "pow": (lambda t: t.abs().pow(1.5), lambda t: t.abs().pow(1.5)),
    }
    agree_with_torch(torch, cases, x, rtol=1e-12, atol=1e-14)
    ct, cref = tg.tensor(x), torch.tensor(x)
    with tg.no_grad():
        ct.clamp_(-1.0, 0.5)
    cref.clamp_(-1.0, 0.5)
    np.testing.assert_array_equal(ct.data, cref.numpy())
    assert tg.tensor(x).numel() == torch.tensor(x).numel() and tg.tensor(x).dim() == torch.tensor(x).dim()
    assert tg.tensor(x).tolist() == torch.tensor(x).tolist()
    assert list(range(tg.tensor(4))) == list(range(torch.tensor(4)))
