"""softmax / log_softmax with axis=None run over all entries, as scipy.special.softmax(x,
axis=None) and numpy's axis=None reductions do (it used to be a DTypeError "'NoneType' object
is not iterable"); an axis that is no int, tuple of ints or None is a ConfigError naming the op
(a float axis was a DTypeError "'float' object is not iterable")."""

import numpy as np
import pytest

import tinygraph as tg

OPS = {"softmax": lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum(),
       "log_softmax": lambda v: v - v.max() - np.log(np.exp(v - v.max()).sum())}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 2), ()])
def test_axis_none_is_over_all_entries(name, shape):
    x = np.random.default_rng(3).normal(size=shape) * 3
    out = getattr(tg, name)(tg.Tensor(x), axis=None)
    assert out.shape == shape
    np.testing.assert_allclose(out.data, OPS[name](x), rtol=1e-13, atol=1e-15)
    if name == "softmax":
        assert out.data.sum() == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("name", list(OPS))
def test_the_gradient_of_axis_none_matches_central_differences(name):
    rng = np.random.default_rng(5)
    x0, w = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))
    x = tg.Tensor(x0.copy(), requires_grad=True)
    (getattr(tg, name)(x, axis=None) * tg.Tensor(w)).sum().backward()
    eps = 1e-6
    numeric = np.zeros_like(x0)
    for index in np.ndindex(x0.shape):
        up, down = x0.copy(), x0.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = ((OPS[name](up) * w).sum() - (OPS[name](down) * w).sum()) / (2 * eps)
    np.testing.assert_allclose(x.grad.data if isinstance(x.grad, tg.Tensor) else x.grad,
                               numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(numeric).max() > 1e-3


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("axis", [1.0, "1", True])
def test_an_axis_of_another_kind_is_a_config_error_naming_the_op(name, axis):
    with pytest.raises(tg.ConfigError, match=rf"{name}: axis must be an int, a tuple of ints "
                                             r"or None"):
        getattr(tg, name)(tg.Tensor(np.zeros((2, 3))), axis=axis)


@pytest.mark.parametrize("fn", [tg.softmax, tg.log_softmax, tg.logsumexp])
@pytest.mark.parametrize("axis", [2, -3, 5])
def test_an_out_of_range_axis_is_named_as_the_ops_axis_not_moveaxiss_source(fn, axis):
    # the message quoted np.moveaxis's "source: axis 5 is out of bounds ...", an argument the
    # caller never gave
    with pytest.raises(tg.ShapeError) as caught:
        fn(tg.tensor(np.ones((2, 3)), requires_grad=True), axis=axis)
    message = str(caught.value)
    assert message.startswith(f"{fn.__name__}: axis {axis} is out of bounds") and "(2, 3)" in message
    assert "source" not in message
