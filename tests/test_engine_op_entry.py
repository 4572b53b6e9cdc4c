"""The built-in ops of one or two inputs called without settings (``x * w``, ``tg.tanh(h)``) take
their Tensors straight to their node (``tinygraph.tensor.binary_op`` / ``unary_op``); every other
call goes through ``apply``'s general path.  Both must make the same node: the same value, parents
and saved arrays, bitwise the same gradients, the same errors; and the slots a node leaves unset
(its version cell, its creation site) must read as absent wherever the engine looks."""

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import ops
from tinygraph.tensor import saved

_RNG = np.random.default_rng(22)

# the op function -> (its name on the node, its forward, positive inputs?)
_BINARY = {
    "add": (tg.add, "add", ops._add, False),
    "sub": (tg.sub, "sub", ops._sub, False),
    "mul": (tg.mul, "mul", ops._mul, False),
    "div": (tg.div, "div", ops._div, True),
    "power": (tg.power, "pow", ops._pow, True),
    "maximum": (tg.maximum, "maximum", ops._maximum, False),
    "minimum": (tg.minimum, "minimum", ops._minimum, False),
}
_UNARY = {
    "neg": (tg.neg, "neg", ops._neg, False),
    "exp": (tg.exp, "exp", ops._exp, False),
    "log": (tg.log, "log", ops._log, True),
    "tanh": (tg.tanh, "tanh", ops._tanh, False),
    "sigmoid": (tg.sigmoid, "sigmoid", ops._sigmoid, False),
    "relu": (tg.relu, "relu", ops._relu, False),
    "sqrt": (tg.sqrt, "sqrt", ops._sqrt, True),
    "norm": (tg.norm, "norm", ops._norm, False),
    "flatten": (tg.flatten, "flatten", ops._flatten, False),
}


def _t(shape, positive, dtype):
    data = _RNG.normal(size=shape)
    return tg.tensor((np.abs(data) + 0.5 if positive else data).astype(dtype), requires_grad=True)


def _same_node(direct, general, inputs):
    assert direct.op == general.op
    assert direct.data.dtype == general.data.dtype
    np.testing.assert_array_equal(direct.data, general.data)
    assert all(p is q for p, q in zip(direct.parents, general.parents))
    assert len(direct.parents) == len(general.parents) == len(inputs)
    assert direct._vjps is general._vjps
    out_d, arrays_d, kwargs_d, positions_d = saved(direct)
    out_g, arrays_g, kwargs_g, positions_g = saved(general)
    assert (out_d is None) == (out_g is None) and kwargs_d == kwargs_g and positions_d == positions_g
    assert all(a is x.data for a, x in zip(arrays_d, inputs))     # the inputs' own arrays
    seed = _RNG.normal(size=direct.shape).astype(direct.data.dtype)
    grads_d = tg.grad(direct, list(inputs), grad=seed)
    grads_g = tg.grad(general, list(inputs), grad=seed)
    for gd, gg in zip(grads_d, grads_g):
        assert gd.dtype == gg.dtype
        np.testing.assert_array_equal(gd, gg)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(_BINARY))
def test_two_tensors_make_the_node_the_general_path_makes(name, dtype):
    fn, op, forward, positive = _BINARY[name]
    x, y = _t((3, 4), positive, dtype), _t((4,), positive, dtype)
    with tg.scope("t=2"):
        direct = fn(x, y)
        general = tg.apply(op, forward, x, y)
    assert direct.scope == general.scope == "t=2"
    _same_node(direct, general, (x, y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(_UNARY))
def test_one_tensor_makes_the_node_the_general_path_makes(name, dtype):
    fn, op, forward, positive = _UNARY[name]
    x = _t((3, 4), positive, dtype)
    direct = fn(x)
    general = tg.apply(op, forward, x)
    _same_node(direct, general, (x,))


def test_matmul_of_two_tensors_makes_the_node_the_general_path_makes():
    a, b = _t((3, 4), False, np.float64), _t((4, 2), False, np.float64)
    _same_node(a @ b, tg.apply("matmul", ops._matmul, a, b), (a, b))


def test_an_op_of_tensors_that_need_no_gradient_makes_a_node_without_a_rule():
    x, y = tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0])
    z = x * y
    assert z.op == "mul" and not z.requires_grad and z._vjps is None
    with tg.no_grad():
        w = tg.tensor([1.0, 2.0], requires_grad=True) * y
    assert w.op is None and w.parents == () and not w.requires_grad


@pytest.mark.parametrize("call", [
    lambda x, y: x * y,
    lambda x, y: tg.apply("mul", ops._mul, x, y),
], ids=["direct", "general"])
def test_a_shape_mismatch_names_the_op_the_shapes_and_the_scope_on_either_path(call):
    x, y = tg.tensor(np.ones(3), requires_grad=True), tg.tensor(np.ones(4))
    with tg.scope("t=5"), pytest.raises(tg.ShapeError) as info:
        call(x, y)
    message = str(info.value)
    assert message.startswith("mul: ") and "(3,), (4,)" in message and "in scope 't=5'" in message


@pytest.mark.parametrize("call", [
    lambda x: -x,
    lambda x: tg.apply("neg", ops._neg, x),
], ids=["direct", "general"])
def test_numpys_error_in_a_unary_op_names_the_op_the_shape_and_the_scope_on_either_path(call):
    with tg.scope("t=1"), pytest.raises(tg.DTypeError) as info:
        call(tg.tensor([True, False]))      # numpy refuses - on booleans
    message = str(info.value)
    assert message.startswith("neg: ") and "(input shapes (2,))" in message and "in scope 't=1'" in message


def test_a_broadcast_of_two_tensors_past_memory_is_refused_before_it_is_made():
    huge = 10 ** 6
    x = tg.tensor(np.ones((huge, 1)), requires_grad=True)
    y = tg.tensor(np.ones(huge))
    with pytest.raises(tg.AllocationError, match=rf"^mul: .*\({huge}, {huge}\)"):
        x * y


def test_an_in_place_change_of_an_op_output_makes_a_graph_that_used_it_stale():
    # z is made by an op (its version cell unset until something shares it)
    x, w = tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0], requires_grad=True)
    with tg.no_grad():
        z = x * 2.0
    loss = (z * w).sum()
    with tg.no_grad():
        z += 1.0
    assert z.data.tolist() == [3.0, 5.0]
    with pytest.raises(tg.StaleGraphError, match="changed in place"):
        loss.backward()
    (z * w).sum().backward()        # a graph made after the change runs on the new values
    assert w.grad.tolist() == [3.0, 5.0]


def test_an_anomaly_in_backward_names_a_node_made_outside_anomaly_mode_without_a_site():
    b = tg.tensor([0.0, 1.0], requires_grad=True)
    y = tg.sqrt(b).sum()            # made outside detect_anomaly: no creation site recorded
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        y.backward()
    assert "'sqrt'" in str(info.value) and "created at" not in str(info.value)
    with tg.detect_anomaly():
        z = tg.sqrt(b).sum()
        with pytest.raises(tg.AnomalyError, match="node created at .*test_engine_op_entry.py"):
            z.backward()


def test_the_op_functions_keep_their_names_and_documentation():
    assert tg.mul.__name__ == "mul" and tg.power.__name__ == "power" and tg.tanh.__name__ == "tanh"
    assert tg.Tensor.tanh is tg.tanh and tg.Tensor.__mul__ is tg.mul
    assert "sign of x" in tg.sigmoid.__doc__
    assert tg.mul.__module__ == "tinygraph.ops"
