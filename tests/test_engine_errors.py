"""Bad input to the engine raises a clear tinygraph error, never a bare numpy traceback.

A table of every bad input the engine knows about: each must raise the named
tinygraph exception, which subclasses the built-in a numpy user would catch
(``ValueError`` for shapes, ``IndexError`` for indices, ``TypeError`` for
dtypes, ``RuntimeError`` for backward), with the op and the offending details
in its message.  Shape mismatches also name the scope they happened in.
"""

import warnings

import numpy as np
import pytest

import tinygraph as tg


def _x():
    return tg.tensor(np.ones((2, 3)), requires_grad=True)


def _v():
    return tg.tensor(np.ones(3), requires_grad=True)


# (id, bad call, tinygraph error, built-in it must also be, substrings of the message)
CATALOGUE = [
    ("add_shapes", lambda: _x() + np.ones(4), tg.ShapeError, ValueError,
     ["add", "(2, 3)", "(4,)"]),
    ("sub_shapes", lambda: _x() - tg.tensor(np.ones((3, 2))), tg.ShapeError, ValueError,
     ["sub", "(2, 3)", "(3, 2)"]),
    ("mul_shapes", lambda: _x() * np.ones(2), tg.ShapeError, ValueError, ["mul", "(2, 3)", "(2,)"]),
    ("div_shapes", lambda: _x() / tg.tensor(np.ones((2, 2))), tg.ShapeError, ValueError,
     ["div", "(2, 3)", "(2, 2)"]),
    ("pow_shapes", lambda: _x() ** np.ones(4), tg.ShapeError, ValueError,
     ["pow", "(2, 3)", "(4,)"]),
    ("matmul_inner_dims", lambda: _x() @ _x(), tg.ShapeError, ValueError,
     ["matmul", "(2, 3), (2, 3)"]),
    ("matmul_1d_lengths", lambda: _v() @ np.ones(4), tg.ShapeError, ValueError,
     ["matmul", "(3,)", "(4,)"]),
    ("matmul_scalar_operand", lambda: _x() @ 2.0, tg.ShapeError, ValueError, ["matmul", "1-D"]),
    ("reshape_size", lambda: _x().reshape(4, 2), tg.ShapeError, ValueError,
     ["reshape", "(2, 3)", "(4,2)"]),
    ("transpose_axis", lambda: _x().transpose(0, 2), tg.ShapeError, ValueError,
     ["transpose", "axis 2"]),
    ("transpose_repeated_axis", lambda: _x().transpose(0, 0), tg.ShapeError, ValueError,
     ["transpose", "repeated"]),
    ("sum_axis", lambda: _x().sum(axis=2), tg.ShapeError, ValueError, ["sum", "axis 2"]),
    ("mean_negative_axis", lambda: _x().mean(axis=-3), tg.ShapeError, ValueError,
     ["mean", "axis -3"]),
    ("max_axis", lambda: _x().max(axis=5), tg.ShapeError, ValueError, ["max", "axis 5"]),
    ("max_of_empty", lambda: tg.tensor(np.ones((0, 3)), requires_grad=True).max(), tg.ShapeError,
     ValueError, ["max", "(0, 3)"]),
    ("softmax_axis", lambda: tg.softmax(_x(), axis=2), tg.ShapeError, ValueError,
     ["softmax", "axis 2"]),
    ("log_softmax_axis", lambda: tg.log_softmax(_x(), axis=-3), tg.ShapeError, ValueError,
     ["log_softmax", "axis -3"]),
    ("concat_ndims", lambda: tg.concat([_x(), _v()]), tg.ShapeError, ValueError,
     ["concat", "(2, 3), (3,)"]),
    ("concat_axis", lambda: tg.concat([_x(), _x()], axis=3), tg.ShapeError, ValueError,
     ["concat", "axis 3"]),
    ("concat_nothing", lambda: tg.concat([]), tg.ShapeError, ValueError,
     ["concat", "at least one"]),
    ("stack_shapes", lambda: tg.stack([_x(), _v()]), tg.ShapeError, ValueError,
     ["stack", "(2, 3), (3,)"]),
    ("stack_nothing", lambda: tg.stack([]), tg.ShapeError, ValueError, ["stack", "at least one"]),
    ("index_out_of_range", lambda: _x()[5], tg.BadIndexError, IndexError, ["index", "5", "(2, 3)"]),
    ("index_array_out_of_range", lambda: _x()[[0, 7]], tg.BadIndexError, IndexError,
     ["index", "7"]),
    ("index_float", lambda: _x()[1.5], tg.BadIndexError, IndexError, ["index", "integers"]),
    ("index_float_array", lambda: _x()[np.array([0.5])], tg.BadIndexError, IndexError,
     ["index", "float64"]),
    ("index_too_many", lambda: _x()[0, 0, 0], tg.BadIndexError, IndexError,
     ["index", "too many"]),
    ("take_out_of_range", lambda: tg.take(_x(), [3], axis=1), tg.BadIndexError, IndexError,
     ["take", "index 3", "[0, 3)"]),
    ("take_negative_out_of_range", lambda: tg.take(_x(), [-4], axis=1), tg.BadIndexError,
     IndexError, ["take", "-4"]),
    ("take_float_ids", lambda: tg.take(_x(), [0.5], axis=0), tg.BadIndexError, IndexError,
     ["take", "float64"]),
    ("take_axis", lambda: tg.take(_x(), [0], axis=2), tg.ShapeError, ValueError,
     ["take", "axis 2", "(2, 3)"]),
    ("cross_entropy_target_shape", lambda: tg.cross_entropy(_x(), [0, 1, 2]), tg.ShapeError,
     ValueError, ["cross_entropy", "(2, 3)", "(2,)", "(3,)"]),
    ("cross_entropy_float_targets", lambda: tg.cross_entropy(_x(), [0.0, 1.0]), tg.DTypeError,
     TypeError, ["cross_entropy", "float64"]),
    ("cross_entropy_target_too_big", lambda: tg.cross_entropy(_x(), [0, 3]), tg.BadIndexError,
     IndexError, ["cross_entropy", "3", "[0, 3)"]),
    ("cross_entropy_negative_target", lambda: tg.cross_entropy(_x(), [0, -1]), tg.BadIndexError,
     IndexError, ["cross_entropy", "-1"]),
    ("cross_entropy_scalar_logits", lambda: tg.cross_entropy(tg.tensor(1.0), 0), tg.ShapeError,
     ValueError, ["cross_entropy", "scalar"]),
    ("tensor_of_strings", lambda: tg.tensor("abc"), tg.DTypeError, TypeError, ["tensor", "<U3"]),
    ("tensor_ragged", lambda: tg.tensor([[1.0], [1.0, 2.0]]), tg.DTypeError, TypeError,
     ["tensor", "inhomogeneous"]),
    ("tensor_complex", lambda: tg.tensor([1j]), tg.DTypeError, TypeError, ["complex128"]),
    ("tensor_of_dict", lambda: tg.tensor({"a": 1}), tg.DTypeError, TypeError, ["object"]),
    ("add_string", lambda: _x() + "a", tg.DTypeError, TypeError, ["str"]),
    ("add_none", lambda: _x() + None, tg.DTypeError, TypeError, ["NoneType"]),
    ("mul_ragged_list", lambda: _x() * [[1.0], [1.0, 2.0]], tg.DTypeError, TypeError, ["list"]),
    ("int_requires_grad", lambda: tg.tensor([1], requires_grad=True), tg.DTypeError, TypeError,
     ["int64", "float"]),
    ("bool_requires_grad", lambda: tg.tensor([True], requires_grad=True), tg.DTypeError,
     TypeError, ["bool", "float"]),
    ("parameter_of_strings", lambda: tg.Parameter("abc"), tg.DTypeError, TypeError, ["<U3"]),
    ("backward_non_scalar", lambda: (_x() * 2).backward(), tg.BackwardError, RuntimeError,
     ["backward", "(2, 3)", "grad="]),
    ("backward_grad_shape", lambda: (_x() * 2).backward(grad=np.ones(3)), tg.ShapeError,
     ValueError, ["backward", "(3,)", "(2, 3)"]),
    ("backward_grad_not_numeric", lambda: (_x() * 2).backward(grad="a"), tg.DTypeError,
     TypeError, ["backward", "str"]),
    ("backward_nothing_requires_grad", lambda: tg.tensor(1.0).backward(), tg.BackwardError,
     RuntimeError, ["backward", "require grad"]),
    ("grad_of_non_scalar", lambda: tg.grad(_x() * 2, [_x()]), tg.BackwardError, RuntimeError,
     ["(2, 3)"]),
    ("gradcheck_nothing_to_check", lambda: tg.gradcheck(lambda a: a * 2, [tg.tensor([1.0])]),
     tg.GradcheckError, AssertionError, ["no input requires grad"]),
    ("sgd_negative_lr", lambda: tg.optim.SGD([_x()], lr=-1), tg.ConfigError, ValueError,
     ["SGD", "-1"]),
    ("sgd_nan_lr", lambda: tg.optim.SGD([_x()], lr=float("nan")), tg.ConfigError, ValueError,
     ["nan"]),
    ("sgd_string_lr", lambda: tg.optim.SGD([_x()], lr="fast"), tg.ConfigError, ValueError,
     ["SGD", "fast"]),
    ("sgd_momentum_one_or_more", lambda: tg.optim.SGD([_x()], lr=0.1, momentum=1.5),
     tg.ConfigError, ValueError, ["momentum", "1.5"]),
    ("sgd_empty_params", lambda: tg.optim.SGD([], lr=0.1), tg.ConfigError, ValueError,
     ["SGD", "empty"]),
    ("sgd_empty_generator", lambda: tg.optim.SGD(iter([]), lr=0.1), tg.ConfigError, ValueError,
     ["empty"]),
    ("sgd_param_without_grad", lambda: tg.optim.SGD([tg.tensor([1.0])], lr=0.1), tg.ConfigError,
     ValueError, ["requires grad"]),
    ("sgd_param_not_a_tensor", lambda: tg.optim.SGD([np.ones(3)], lr=0.1), tg.ConfigError,
     ValueError, ["ndarray"]),
    ("adagrad_negative_lr", lambda: tg.optim.Adagrad([_x()], lr=-0.1), tg.ConfigError,
     ValueError, ["Adagrad", "lr"]),
    ("adagrad_empty_params", lambda: tg.optim.Adagrad([], lr=0.1), tg.ConfigError, ValueError,
     ["Adagrad", "empty"]),
    ("adam_negative_lr", lambda: tg.optim.Adam([_x()], lr=-0.1), tg.ConfigError, ValueError,
     ["Adam", "lr"]),
    ("adam_beta_one", lambda: tg.optim.Adam([_x()], lr=0.1, betas=(1.0, 0.9)), tg.ConfigError,
     ValueError, ["Adam", "betas"]),
    ("adam_one_beta", lambda: tg.optim.Adam([_x()], lr=0.1, betas=(0.9,)), tg.ConfigError,
     ValueError, ["Adam", "betas"]),
    ("sgd_repeated_param", lambda: tg.optim.SGD([_v(), *[_x()] * 2], lr=0.1), tg.ConfigError,
     ValueError, ["more than once"]),
    ("adam_empty_params", lambda: tg.optim.Adam([], lr=0.1), tg.ConfigError, ValueError,
     ["Adam", "empty"]),
    ("clip_zero_max_norm", lambda: tg.clip_grad_norm([_x()], 0), tg.ConfigError, ValueError,
     ["clip_grad_norm", "max_norm"]),
    ("clip_negative_max_norm", lambda: tg.clip_grad_norm([_x()], -1), tg.ConfigError, ValueError,
     ["max_norm", "-1"]),
    ("clip_empty_params", lambda: tg.clip_grad_norm([], 1.0), tg.ConfigError, ValueError,
     ["clip_grad_norm", "empty"]),
    ("load_missing_file", lambda: tg.load_arrays("/nonexistent/dir/ckpt.npz"),
     tg.CheckpointNotFoundError, FileNotFoundError, ["/nonexistent/dir/ckpt.npz"]),
    # an integer to a negative integer power is no integer: numpy's ValueError (it was a
    # ShapeError, as any ValueError of a forward was, though no shape is wrong)
    ("pow_integer_negative", lambda: tg.tensor([1, 2, 3]) ** -1, tg.DomainError, ValueError,
     ["pow", "integer base (int64, shape (3,))", "negative integer power (-1", "float"]),
    ("rpow_integer_negative", lambda: 2 ** tg.tensor([2, -3]), tg.DomainError, ValueError,
     ["pow", "negative integer power (-3, shape (2,))"]),
    ("ipow_integer_negative", lambda: _in_place_no_grad(tg.tensor([1, 2]), "__ipow__", -2),
     tg.DomainError, ValueError, ["in-place **=", "negative integer power (-2"]),
    # a Python int beyond an integer tensor's dtype (NEP 50 keeps the dtype): numpy's bare
    # OverflowError, which named no op
    ("mul_int8_overflow", lambda: tg.tensor(np.array([1, 2], np.int8)) * 300, tg.OutOfRangeError,
     OverflowError, ["mul", "300 out of bounds for int8", "(2,), ()", "NEP 50"]),
    ("sub_uint8_overflow", lambda: tg.tensor(np.array([1], np.uint8)) - (-1), tg.OutOfRangeError,
     OverflowError, ["sub", "-1 out of bounds for uint8"]),
    ("imul_int8_overflow", lambda: _in_place_no_grad(tg.tensor(np.array([1], np.int8)), "__imul__", 300),
     tg.OutOfRangeError, OverflowError, ["in-place *=", "int8", "300 out of bounds"]),
    ("tensor_int8_overflow", lambda: tg.tensor([1, 300], dtype=np.int8), tg.OutOfRangeError,
     OverflowError, ["tensor", "300 out of bounds for int8"]),
    ("full_uint8_overflow", lambda: tg.full(2, -1, dtype=np.uint8), tg.OutOfRangeError,
     OverflowError, ["full", "-1 out of bounds for uint8"]),
    # np.where wraps it without a word: int8 with 300 gave 44, uint8 with -1 gave 255
    ("where_int8_overflow", lambda: tg.where([True, False], tg.tensor(np.array([1, 2], np.int8)), 300),
     tg.OutOfRangeError, OverflowError, ["where", "300 out of bounds for int8", "(2,), (2,), ()"]),
    # a complex array or numpy scalar as a constant made a complex node (whose gradient then
    # lost its imaginary part); a Python complex was refused already
    ("add_complex_array", lambda: _v() + np.array([1j, 2, 3]), tg.DTypeError, TypeError,
     ["add", "complex128", "(3,)"]),
    ("mul_complex_scalar", lambda: _v() * np.complex128(1j), tg.DTypeError, TypeError,
     ["mul", "complex128"]),
    ("where_object_array", lambda: tg.where([True, False, True], _v(), np.array([1.0, None, 2.0])),
     tg.DTypeError, TypeError, ["where", "object"]),
    # comparisons gave numpy's bare errors
    ("compare_with_a_str", lambda: _v() == "a", tg.DTypeError, TypeError, ["equal", "(3,)"]),
    ("order_with_none", lambda: _v() < None, tg.DTypeError, TypeError, ["less", "(3,)"]),
    ("compare_shapes", lambda: _x() >= np.ones(4), tg.ShapeError, ValueError,
     ["greater_equal", "(2, 3)", "(4,)"]),
    # an integer dtype= rounded the data to integers and the Parameter was float64 all the same
    ("parameter_integer_dtype", lambda: tg.Parameter([0.4, -1.7], name="w", dtype=np.int32),
     tg.DTypeError, TypeError, ["Parameter 'w'", "float dtype", "int32"]),
    # random values in an integer dtype were truncated: randn(3, dtype=np.int32) gave [0 0 0]
    ("randn_integer_dtype", lambda: tg.randn(3, dtype=np.int32), tg.DTypeError, TypeError,
     ["randn", "float dtype", "int32"]),
    ("rand_integer_dtype", lambda: tg.rand(2, 2, dtype=np.int64, seed=0), tg.DTypeError, TypeError,
     ["rand", "float dtype", "int64"]),
    # np.arange wraps values beyond an integer dtype: (250, 260, uint8) ended 0, 1, 2, 3
    ("arange_uint8_overflow", lambda: tg.arange(250, 260, dtype=np.uint8), tg.OutOfRangeError,
     OverflowError, ["arange", "250 to 259", "uint8", "[0, 255]"]),
    ("arange_int8_overflow", lambda: tg.arange(300, dtype=np.int8), tg.OutOfRangeError,
     OverflowError, ["arange", "0 to 299", "int8"]),
    # a step of 0 raised numpy's bare ZeroDivisionError
    ("arange_zero_step", lambda: tg.arange(0, 1, 0), tg.ConfigError, ValueError,
     ["arange", "step", "0"]),
    ("arange_zero_float_step", lambda: tg.arange(0.0, 1.0, 0.0), tg.ConfigError, ValueError,
     ["arange", "step"]),
    ("arange_zero_numpy_step", lambda: tg.arange(0, 3, np.float64(0)), tg.ConfigError,
     ValueError, ["arange", "step"]),
    ("where_uint8_overflow", lambda: tg.where([True, False], -1, tg.tensor(np.array([1, 2], np.uint8))),
     tg.OutOfRangeError, OverflowError, ["where", "-1 out of bounds for uint8"]),
]


def _in_place_no_grad(t, method, other):
    with tg.no_grad():
        return getattr(t, method)(other)


@pytest.mark.parametrize("call,error,builtin,details", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_tinygraph_error(call, error, builtin, details):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, tg.TinygraphError)
    assert isinstance(info.value, builtin)
    message = str(info.value)
    for detail in details:
        assert detail in message


@pytest.mark.parametrize("op,make", [
    ("add", lambda x: x + np.ones(4)),
    ("mul", lambda x: np.ones((3, 1)) * x),
    ("matmul", lambda x: x @ np.ones((2, 2))),
    ("concat", lambda x: tg.concat([x, np.ones((2, 2))], axis=0)),
    ("cross_entropy", lambda x: tg.cross_entropy(x, [0, 1, 2])),
    ("take", lambda x: tg.take(x, [0], axis=2)),
])
def test_shape_error_names_op_both_shapes_and_scope(op, make):
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    with tg.scope("rnn"), tg.scope("t=3"):
        with pytest.raises(tg.ShapeError) as info:
            make(x)
    message = str(info.value)
    assert message.startswith(op)
    assert "(2, 3)" in message
    assert "rnn/t=3" in message


@pytest.mark.parametrize("op,make", [
    ("take", lambda x: tg.take(x, [0, 3], axis=1)),
    ("cross_entropy", lambda x: tg.cross_entropy(x, [0, 3])),
])
def test_index_error_names_op_bad_index_and_scope(op, make):
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    with tg.scope("rnn"), tg.scope("t=3"):
        with pytest.raises(tg.BadIndexError) as info:
            make(x)
    message = str(info.value)
    assert message.startswith(op)
    assert "3" in message and "[0, 3)" in message
    assert "rnn/t=3" in message


def test_shape_error_outside_a_scope_names_no_scope():
    with pytest.raises(tg.ShapeError) as info:
        tg.tensor(np.ones(2)) + np.ones(3)
    assert "scope" not in str(info.value)


def test_failed_op_leaves_its_inputs_unchanged():
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    before = x.data.copy()
    with pytest.raises(tg.ShapeError):
        x @ x
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_data_written_directly_becomes_an_array_and_stays_float_under_grad():
    """``p.data = ...`` as in PyTorch: an ndarray is kept as it is (no copy), a list or a
    number becomes an array, and a tensor that requires grad refuses integer data, whose
    gradient would be cast to integers ([0, 0] for d(0.5 x)/dx) without a word."""
    p = tg.tensor(np.ones(2), requires_grad=True, name="p")
    new = np.array([3.0, 4.0])
    p.data = new
    assert p.data is new
    p.data = [1.0, 2.0]
    assert type(p.data) is np.ndarray and p.shape == (2,)
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad, [2.0, 4.0])
    with pytest.raises(tg.DTypeError, match=r"'p'.*requires grad.*int64"):
        p.data = np.array([1, 2])
    with pytest.raises(tg.DTypeError, match="unsupported dtype"):
        p.data = "abc"
    np.testing.assert_array_equal(p.data, [1.0, 2.0])      # unchanged by the refused writes
    q = tg.tensor(np.zeros(3))
    q.data = np.arange(3)                                   # no grad: any numeric dtype
    assert q.dtype.kind == "i"
    q.data = tg.tensor(np.ones(3))                          # a Tensor: its array
    assert type(q.data) is np.ndarray


def test_requires_grad_set_by_hand_on_integers_is_refused_at_once():
    """PyTorch refuses ``requires_grad`` on an integer tensor; set by hand here too, the
    assignment raises naming the tensor (instead of an integer gradient of zeros later)."""
    x = tg.tensor(np.array([1, 2]), name="x")
    with pytest.raises(tg.DTypeError, match=r"tensor 'x'.requires_grad: only float tensors.*int64"):
        x.requires_grad = True
    assert x.requires_grad is False
    with pytest.raises(tg.BackwardError, match="does not require grad"):
        (x * 0.5).sum().backward()
    assert x.grad is None


def test_requires_grad_of_a_node_made_by_an_op_cannot_be_switched_by_hand():
    """``h.requires_grad = False`` on a node made by an op used to cut the graph silently: for
    y = sum(h * x) with h = 2x the gradient came out as h = [2, 4] instead of 4x = [4, 8].
    As PyTorch, only a leaf's flag changes (``.detach()`` cuts the graph on purpose); setting
    the value a node already has is allowed."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    with pytest.raises(tg.ConfigError, match=r"requires_grad: only a leaf's flag.*made by mul.*detach"):
        h.requires_grad = False
    h.requires_grad = True                      # what it is already
    c = tg.tensor([1.0, 2.0]) * 2               # a node of constants: no gradient either
    with pytest.raises(tg.ConfigError, match=r"only a leaf's flag.*made by mul"):
        c.requires_grad = True
    with pytest.raises(tg.ConfigError, match=r"requires_grad: expected True or False, got 'yes'"):
        x.requires_grad = "yes"
    (h * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    assert h.requires_grad and not c.requires_grad and x.requires_grad is True


@pytest.mark.parametrize("make, words", [
    (lambda: tg.tensor([1.0, 1e40], dtype=np.float32), r"tensor: 1e\+40 at \(1,\) is beyond the range of float32"),
    (lambda: tg.Parameter([7e4], dtype=np.float16), r"tensor: 70000.0 at \(0,\) is beyond the range of float16"),
    (lambda: tg.tensor(70000, dtype=np.float16), r"tensor: 70000 is beyond the range of float16"),
    (lambda: tg.full(2, 1e40, dtype=np.float32), r"full: 1e\+40 is beyond the range of float32"),
    (lambda: tg.arange(0, 1e5, 1e4, dtype=np.float16), r"arange: 90000.0 is beyond the range of float16"),
    (lambda: tg.linspace(0, 1e5, 3, dtype=np.float16), r"linspace: 100000.0 at \(2,\) is beyond the range"),
])
def test_a_finite_value_made_infinite_by_a_float_dtype_is_refused(make, words):
    # an integer beyond its dtype is refused (OutOfRangeError), but a float beyond float32's or
    # float16's range became inf without a word (numpy's RuntimeWarning at most); and no
    # "overflow encountered in cast" RuntimeWarning escapes before the clear error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(tg.OutOfRangeError, match=words + r".*it would become inf"):
            make()


def test_inf_given_as_such_and_the_largest_float16_are_kept():
    np.testing.assert_array_equal(tg.tensor([np.inf, 1.0], dtype=np.float32).data, [np.inf, 1.0])
    np.testing.assert_array_equal(tg.full(2, -np.inf, dtype=np.float16).data, [-np.inf, -np.inf])
    assert tg.tensor([65504.0], dtype=np.float16).data[0] == 65504.0
