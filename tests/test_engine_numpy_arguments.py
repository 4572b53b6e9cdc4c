"""numpy functions on Tensors take numpy's own argument names.

Arguments are bound by the numpy function's signature: those the engine's op takes are passed
on (``np.transpose(t, axes=...)``, ``np.var(t, correction=1)``), those left at numpy's default
are accepted (``order='C'``, ``out=None``, ``mode='raise'``), and any other raises a
DTypeError naming the numpy function, the argument and what to use instead -- never a raw
signature error from a wrapper.
"""

import numpy as np
import pytest

import tinygraph as tg


def _t(shape=(2, 3)):
    return tg.tensor(np.arange(np.prod(shape), dtype=float).reshape(shape) + 1, requires_grad=True)


@pytest.mark.parametrize("call, function, argument, advice", [
    (lambda t: np.reshape(t, (3, 2), order="F"), "reshape", "order", "order='C'"),
    (lambda t: np.concatenate([t, t], out=np.zeros((4, 3))), "concatenate", "out", "out-of-place"),
    (lambda t: np.stack([t, t], dtype=np.float32), "stack", "dtype", "without dtype="),
    (lambda t: np.cumsum(t, dtype=np.float32), "cumsum", "dtype", "without dtype="),
    (lambda t: np.take(t, [0], mode="clip"), "take", "mode", "np.clip"),
    (lambda t: np.dot(t, t.T, out=np.zeros((2, 2))), "dot", "out", "out-of-place"),
    (lambda t: np.sum(t, where=np.ones((2, 3), bool)), "sum", "where", "tg.sum without it"),
    (lambda t: np.max(t, initial=0.0), "max", "initial", "tg.max without it"),
    (lambda t: np.var(t, mean=np.zeros((1, 1))), "var", "mean", "tg.var without it"),
    (lambda t: np.ravel(t, order="F"), "ravel", "order", "t.T.reshape"),
    (lambda t: np.clip(t, 0, 1, casting="unsafe"), "clip", "casting", "tg.clip without it"),
])
def test_an_argument_the_engine_does_not_take_names_the_numpy_function_and_what_to_use(
        call, function, argument, advice):
    with pytest.raises(tg.DTypeError, match=rf"np\.{function}\(\.\.\., {argument}=\)") as info:
        call(_t())
    assert advice in str(info.value)


@pytest.mark.parametrize("call, expected", [
    (lambda t: np.transpose(t, axes=(1, 0)), lambda a: np.transpose(a, axes=(1, 0))),
    (lambda t: np.transpose(t, None), np.transpose),
    (lambda t: np.reshape(t, (3, 2), order="C"), lambda a: np.reshape(a, (3, 2))),
    (lambda t: np.reshape(t, shape=(6,)), lambda a: np.reshape(a, (6,))),
    (lambda t: np.concatenate([t, t], out=None, axis=1), lambda a: np.concatenate([a, a], axis=1)),
    (lambda t: np.concatenate([t, t], axis=None), lambda a: np.concatenate([a, a], axis=None)),
    (lambda t: np.stack([t, t], dtype=None), lambda a: np.stack([a, a])),
    (lambda t: np.cumsum(t, axis=1, dtype=None), lambda a: np.cumsum(a, axis=1)),
    (lambda t: np.take(t, [4, 0], mode="raise"), lambda a: np.take(a, [4, 0])),
    (lambda t: np.take(t, [2, 0], axis=1), lambda a: np.take(a, [2, 0], axis=1)),
    (lambda t: np.dot(t, t.T, out=None), lambda a: np.dot(a, a.T)),
    (lambda t: np.var(t, axis=0, correction=1), lambda a: np.var(a, axis=0, ddof=1)),
    (lambda t: np.std(t, ddof=1, keepdims=True), lambda a: np.std(a, ddof=1, keepdims=True)),
    (lambda t: np.sum(t, axis=1, keepdims=True), lambda a: np.sum(a, axis=1, keepdims=True)),
    (lambda t: np.clip(t, min=2.5, max=4.5), lambda a: np.clip(a, 2.5, 4.5)),
    (lambda t: np.broadcast_to(t, (2, 2, 3), subok=False), lambda a: np.broadcast_to(a, (2, 2, 3))),
])
def test_numpy_arguments_the_engine_takes_or_that_are_at_their_default_run_the_op_with_its_gradient(
        call, expected):
    t = _t()
    out = call(t)
    assert isinstance(out, tg.Tensor) and out.requires_grad
    np.testing.assert_allclose(out.data, expected(t.data))
    assert tg.gradcheck(call, [t])


def test_numpy_take_without_axis_takes_from_the_flattened_tensor_as_numpy_does():
    t = _t()
    out = np.take(t, [5, 1])
    assert out.data.tolist() == [6.0, 2.0]
    out.sum().backward()
    assert t.grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_tg_concat_and_take_with_axis_none_flatten_first_as_numpy_does():
    a = tg.tensor([[1.0, 2.0]], requires_grad=True)
    b = tg.tensor([[3.0], [4.0]], requires_grad=True)
    joined = tg.concat([a, b], axis=None)
    assert joined.data.tolist() == [1.0, 2.0, 3.0, 4.0]
    (joined * [1.0, 2.0, 3.0, 4.0]).sum().backward()
    assert a.grad.tolist() == [[1.0, 2.0]] and b.grad.tolist() == [[3.0], [4.0]]
    picked = tg.take(b, [1, 1], axis=None)
    assert picked.data.tolist() == [4.0, 4.0]


@pytest.mark.parametrize("call", [
    lambda t: np.exp(t, where=True), lambda t: np.add(t, 1.0, casting="same_kind"),
    lambda t: np.multiply(t, 2.0, dtype=None), lambda t: np.tanh(t, order="K", subok=True),
], ids=["where=True", "casting", "dtype=None", "order, subok"])
def test_ufunc_keyword_arguments_at_numpys_defaults_run_the_engine_op(call):
    t = _t()
    assert isinstance(call(t), tg.Tensor) and tg.gradcheck(call, [t])


@pytest.mark.parametrize("call, argument, advice", [
    (lambda t: np.exp(t, where=t.data > 2), "where", "tg.exp without it"),
    (lambda t: np.add(t, 1.0, dtype=np.float32), "dtype", "without dtype="),
    (lambda t: np.less(t, 1.0, casting="unsafe"), "casting", "the call without it"),
])
def test_ufunc_keyword_arguments_the_engine_does_not_take_name_the_ufunc_and_what_to_use(
        call, argument, advice):
    with pytest.raises(tg.DTypeError, match=rf"\(\.\.\., {argument}=\) on a Tensor") as info:
        call(_t())
    assert advice in str(info.value)


def test_np_split_into_unequal_sections_raises_a_shape_error_naming_array_split():
    with pytest.raises(tg.ShapeError, match="array_split"):
        np.split(_t(), 2, axis=1)
