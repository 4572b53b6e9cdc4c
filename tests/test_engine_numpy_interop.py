"""numpy on Tensors: the engine's op (a node with its gradient), numpy values for functions
that only look at values, or a TypeError naming the tinygraph op -- never an object array."""

import numpy as np
import pytest

import tinygraph as tg


def _t():
    return tg.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)


def test_asarray_is_the_data():
    t = _t()
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t).dtype == np.float64 and np.array(t) is not t.data


def test_asarray_with_copy_false_never_copies_and_another_dtype_raises_a_value_error():
    """numpy 2's protocol: ``copy=False`` must not copy, and an object that cannot avoid a copy
    raises a ValueError (as numpy does for its own arrays).  A float32 copy of a float64 tensor
    was returned, so a write into it was silently lost for the tensor."""
    t = _t().named("w")
    assert np.asarray(t, copy=False) is t.data
    assert np.asarray(t, dtype=np.float64, copy=False) is t.data
    with pytest.raises(ValueError, match=r"np.asarray\(tensor 'w', dtype=float32, copy=False\).*"
                                         r"float64 data.*without a copy") as caught:
        np.asarray(t, dtype=np.float32, copy=False)
    assert isinstance(caught.value, tg.TinygraphError)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32      # a copy is fine when allowed
    assert np.asarray(t, dtype=np.float32, copy=True).base is None


@pytest.mark.parametrize("call, op, expected", [
    (lambda t: np.exp(t), "exp", lambda a: np.exp(a)),
    (lambda t: np.maximum(t, 0), "maximum", lambda a: np.maximum(a, 0)),
    (lambda t: np.where(t.data > 0, t, 0), "where", lambda a: np.where(a > 0, a, 0)),
    (lambda t: np.sum(t, axis=0), "sum", lambda a: np.sum(a, axis=0)),
    (lambda t: np.mean(t), "mean", np.mean),
    (lambda t: np.tanh(t) * 2, "mul", lambda a: np.tanh(a) * 2),
    (lambda t: np.array([1.0, 2.0]) * t, "mul", lambda a: np.array([1.0, 2.0]) * a),
    (lambda t: np.square(t), "square", np.square),
    (lambda t: np.concatenate([t, t], axis=1), "concat", lambda a: np.concatenate([a, a], axis=1)),
    (lambda t: np.reshape(t, (4,)), "reshape", lambda a: np.reshape(a, (4,))),
    (lambda t: np.transpose(t), "transpose", np.transpose),
    (lambda t: np.clip(t, -1, 1), "clip", lambda a: np.clip(a, -1, 1)),
    (lambda t: np.linalg.norm(t), "norm", np.linalg.norm),
    (lambda t: np.dot(t, t), "matmul", lambda a: np.dot(a, a)),
    (lambda t: np.abs(t), "abs", np.abs),
    # np.swapaxes was refused, 'np.swapaxes(..., a=)': the engine's op names its input x
    (lambda t: np.swapaxes(t, 0, 1), "swapaxes", lambda a: np.swapaxes(a, 0, 1)),
    (lambda t: np.swapaxes(t, axis1=1, axis2=0), "swapaxes", lambda a: np.swapaxes(a, 1, 0)),
])
def test_numpy_functions_run_the_engine_op_with_its_gradient(call, op, expected):
    t = _t()
    out = call(t)
    assert isinstance(out, tg.Tensor) and out.op == op and out.requires_grad
    np.testing.assert_allclose(out.data, expected(t.data))
    out.backward(np.ones(out.shape))
    assert t.grad is not None and t.grad.dtype == np.float64


@pytest.mark.parametrize("call, hint", [
    (lambda t: np.arctan(t), "no tinygraph op"),
    (lambda t: np.add.reduce(t), "tg.sum"),
    (lambda t: np.exp(t, out=np.empty((2, 2))), "out-of-place"),
    (lambda t: np.median(t), "no tinygraph op"),
    (lambda t: np.sum(t, dtype=np.float32), r"np.sum\(..., dtype=\).*without dtype="),
    (lambda t: np.linalg.norm(t, ord=1), "t.norm()"),
])
def test_numpy_functions_without_an_engine_op_raise_a_type_error_naming_what_to_use(call, hint):
    with pytest.raises(TypeError, match=hint):
        call(_t())


def test_np_linalg_norm_takes_the_orders_that_are_the_2_norm_as_t_norm_does():
    # ord='fro' of a matrix and ord=2 of a vector (both the 2-norm, both taken by t.norm) were
    # refused; numpy's ord=2 of a matrix (its largest singular value) and 'fro' of a vector
    # (numpy refuses it) have no op
    t, v = _t(), tg.tensor([3.0, 4.0], requires_grad=True)
    for out, want in ((np.linalg.norm(t, ord="fro"), np.linalg.norm(t.data, "fro")),
                      (np.linalg.norm(v, ord=2), 5.0),
                      (np.linalg.norm(t, 2, axis=1), np.linalg.norm(t.data, 2, axis=1))):
        assert out.op == "norm"
        np.testing.assert_allclose(out.data, want, rtol=1e-15)
    np.linalg.norm(v, ord=2).backward()
    np.testing.assert_allclose(v.grad, [0.6, 0.8])
    for order, tensor in ((2, t), ("fro", v), (1, v)):
        with pytest.raises(TypeError, match=r"np.linalg.norm\(..., ord=.*t.norm\(axis=a\)"):
            np.linalg.norm(tensor, ord=order)


def test_updating_an_array_in_place_from_a_tensor_points_to_no_grad():
    arr = np.zeros((2, 2))
    with pytest.raises(TypeError, match="tg.no_grad"):
        arr += _t()


def test_functions_that_only_look_at_values_return_numpy_results():
    t = _t()
    assert np.shape(t) == (2, 2) and np.ndim(t) == 2 and np.size(t) == 4
    assert np.allclose(t, t.data) and np.array_equal(t, t.data)
    assert np.argsort(t, axis=None).tolist() == np.argsort(t.data, axis=None).tolist()
    assert isinstance(np.isfinite(t), tg.Tensor) and not np.isfinite(t).requires_grad


def test_no_numpy_call_on_a_tensor_gives_an_object_array():
    t = _t()
    calls = [np.exp, np.log1p, np.sqrt, np.negative, np.sin, np.cos, np.floor, np.sign, np.isnan,
             np.sum, np.prod, np.cumsum, np.max, np.min, np.argmax, np.mean, np.var, np.std,
             np.ravel, np.squeeze, np.sort, np.unique, np.copy, np.diff, np.flip, np.round,
             np.asarray, np.array, np.atleast_2d, np.trace, np.diag]
    for call in calls:
        try:
            with np.errstate(invalid="ignore"):
                out = call(t)
        except TypeError as e:
            assert "Tensor" in str(e)
            continue
        assert np.asarray(out).dtype != object, call.__name__


def test_scalar_conversions_and_formatting_of_one_element_tensors():
    loss = tg.tensor(2.5, requires_grad=True)
    assert float(loss) == 2.5 and int(tg.tensor([7.9])) == 7
    assert f"{loss:.3f}" == "2.500" and f"{tg.tensor([[1.25]]):.1f}" == "1.2"
    with pytest.raises(tg.ShapeError, match="one-element"):
        float(tg.tensor([1.0, 2.0]))
    with pytest.raises(tg.ShapeError):
        f"{tg.tensor([1.0, 2.0]):.2f}"


def test_iterating_a_0_d_tensor_raises_and_a_vector_gives_its_entries_as_nodes():
    with pytest.raises(TypeError, match="0-d"):
        list(tg.tensor(2.0))
    with pytest.raises(TypeError):
        sum(tg.tensor(5.0))
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    rows = list(x)
    assert [r.item() for r in rows] == [1.0, 2.0]
    sum(rows).backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_every_numpy_function_the_engine_runs_takes_numpys_argument_names():
    # each implementation's parameters are numpy's own (bound by numpy's signature, then passed
    # by name): one named otherwise is never passed and the call refused
    import inspect

    from tinygraph.interop import _FUNCTIONS
    for func, (_, impl) in _FUNCTIONS.items():
        ours = set(inspect.signature(impl).parameters)
        assert ours <= set(inspect.signature(func).parameters), func.__name__


def test_numpy_rounding_of_a_tensor_is_the_engines_op_with_gradient_zero():
    # np.floor, np.ceil, np.trunc and np.rint gave a constant without a gradient, where
    # tg.floor ... (and np.round) give a node whose gradient is 0; np.fix was refused
    x = tg.tensor([1.5, -2.5, 0.3, 2.5], requires_grad=True)
    pairs = [(np.floor, tg.floor, "floor"), (np.ceil, tg.ceil, "ceil"), (np.trunc, tg.trunc, "trunc"),
             (np.rint, tg.round, "round"), (np.fix, tg.trunc, "trunc"), (np.round, tg.round, "round")]
    for np_fn, tg_fn, op in pairs:
        y = np_fn(x)
        assert isinstance(y, tg.Tensor) and y.op == op and y.requires_grad, np_fn.__name__
        np.testing.assert_array_equal(y.data, np_fn(x.data))
        np.testing.assert_array_equal(y.data, tg_fn(x).data)
        np.testing.assert_array_equal(tg.grad((y * x).sum(), x), np_fn(x.data))   # d/dx = 0 + y
    ints = tg.tensor([1, -2])
    assert np.floor(ints).dtype == tg.floor(ints).dtype and not np.floor(ints).requires_grad


def test_numpy_sign_of_a_tensor_is_a_node_with_gradient_zero_and_numpys_values():
    # np.sign gave a constant without a gradient, where tg.sign (and np.floor ...) give a node
    # whose gradient is 0; its values stay numpy's (NaN at NaN, where tg.sign gives torch's 0)
    x = tg.tensor([1.5, -2.5, 0.0, np.nan], requires_grad=True)
    y = np.sign(x)
    assert isinstance(y, tg.Tensor) and y.op == "sign" and y.requires_grad
    np.testing.assert_array_equal(y.data, np.sign(x.data))         # [1, -1, 0, nan]
    np.testing.assert_array_equal(tg.sign(x).data, [1.0, -1.0, 0.0, 0.0])
    np.testing.assert_array_equal(tg.grad((y * x).sum(), x, retain_graph=True),
                                  np.sign(x.data))                    # d/dx = 0 + y
    g, = tg.grad(y.sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, np.zeros(4))
    ints = tg.tensor([3, -2])
    assert np.sign(ints).dtype == np.int64 and not np.sign(ints).requires_grad
