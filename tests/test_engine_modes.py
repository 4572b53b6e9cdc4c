"""The engine's modes and node bookkeeping: no_grad, detach, nested scopes,
anomaly detection that names the op, scope and user line, dtypes, and the
numerically stable softmax family at extreme logits.
"""

import numpy as np
import pytest

import tinygraph as tg


# ---------------------------------------------------------------- nodes

def test_every_op_records_its_name_parents_and_scope():
    x = tg.tensor([1.0, 2.0], requires_grad=True, name="x")
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    y = x * w
    assert (y.op, y.parents, y.scope) == ("mul", (x, w), None)
    assert x.op is None and x.parents == ()


def test_named_sets_the_name_and_returns_the_tensor():
    x = tg.tensor([1.0], requires_grad=True)
    h = (x * 2).named("h")
    assert h.name == "h" and h.op == "mul"


def test_no_grad_builds_no_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        y = (x * 2).exp()
    assert y.op is None
    assert y.parents == ()
    assert not y.requires_grad
    np.testing.assert_allclose(y.data, np.exp([2.0, 4.0]))


def test_no_grad_restores_grad_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            raise ZeroDivisionError
    assert tg.is_grad_enabled()


def test_a_generator_decorated_with_no_grad_builds_no_graph_in_its_body_only():
    # the decorator used to wrap only the call that makes the generator: its body then ran with
    # gradients on (every yielded tensor required grad, [True, True]), the opposite of asked
    x = tg.tensor([1.0, 2.0], requires_grad=True)

    @tg.no_grad()
    def doubled(n):
        for _ in range(n):
            seen = yield x * 2
            assert seen is None or seen == "sent"

    outside = []
    gen = doubled(3)
    first = next(gen)
    outside.append((x * 1).requires_grad)            # the caller, between two steps
    second = gen.send("sent")
    assert [first.requires_grad, second.requires_grad, outside] == [False, False, [True]]
    assert [t.requires_grad for t in gen] == [False]
    assert tg.is_grad_enabled()


def test_a_generator_decorated_with_enable_grad_builds_its_graph_inside_no_grad():
    x = tg.tensor([1.0], requires_grad=True)

    @tg.enable_grad()
    def steps():
        yield x * 2

    with tg.no_grad():
        gen = steps()
        assert next(gen).requires_grad
        assert not (x * 2).requires_grad


def test_an_exception_thrown_into_a_decorated_generator_is_seen_inside_the_mode():
    seen = []

    @tg.no_grad()
    def gen():
        try:
            yield 1
        except KeyError:
            seen.append(tg.is_grad_enabled())
            yield 2

    g = gen()
    next(g)
    assert g.throw(KeyError("k")) == 2
    g.close()
    assert seen == [False] and tg.is_grad_enabled()


def test_modes_decorate_functions_with_or_without_parentheses():
    x = tg.tensor([1.0], requires_grad=True)

    @tg.no_grad
    def bare():
        return (x * 2).requires_grad

    @tg.detect_anomaly()
    def anomalous():
        return tg.is_anomaly_enabled()

    assert [bare(), anomalous(), tg.is_grad_enabled(), tg.is_anomaly_enabled()] == [False, True, True, False]


def test_an_async_function_decorated_with_no_grad_is_refused_by_name():
    with pytest.raises(TypeError, match=r"tg.no_grad: cannot decorate the async function .*later"):
        @tg.no_grad()
        async def later():
            return 1


def test_one_no_grad_object_can_be_entered_again_while_active_and_reused():
    # contextlib's one-shot manager raised a bare AttributeError on the second `with`
    off = tg.no_grad()
    with off:
        with off:
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    with off:
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_enable_grad_inside_no_grad_builds_a_graph():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad(), tg.enable_grad():
        y = x * 2
    assert y.parents == (x,)
    assert y.requires_grad


def test_detach_shares_data_and_cuts_the_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    d = h.detach()
    assert d.op is None and d.parents == () and not d.requires_grad
    assert np.shares_memory(d.data, h.data)
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, h.data)   # no gradient through d


def test_nested_scopes_label_nodes_outer_slash_inner():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.scope("rnn") as outer:
        a = x * 2
        with tg.scope("t=3") as inner:
            b = a + 1
        c = b * 2
    d = c - 1
    assert (outer, inner) == ("rnn", "rnn/t=3")
    assert [a.scope, b.scope, c.scope, d.scope] == ["rnn", "rnn/t=3", "rnn", None]


def test_one_scope_object_entered_again_restores_the_outer_label_on_each_exit():
    # the object kept one saved label: after `with s: with s:` the scope stayed "a" for good,
    # so every later node was tagged "a"
    s = tg.scope("a")
    with s:
        with s as inner:
            assert inner == "a/a"
        assert tg.current_scope() == "a"
    assert tg.current_scope() is None
    assert tg.tensor([1.0], requires_grad=True).exp().scope is None


def test_scope_is_restored_after_an_exception():
    with pytest.raises(KeyError):
        with tg.scope("t=1"):
            raise KeyError
    assert tg.current_scope() is None


def test_comparisons_give_boolean_tensors_without_graph():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == bool and m.op is None and not m.requires_grad
    np.testing.assert_array_equal(m.data, [False, True, True])


@pytest.mark.parametrize("data,truth", [([0.0], False), ([2.0], True), (0.0, False), (3.0, True)],
                         ids=["one_element_zero", "one_element_nonzero", "scalar_zero",
                              "scalar_nonzero"])
def test_truth_value_of_a_one_element_tensor_is_its_value(data, truth):
    assert bool(tg.tensor(data)) is truth
    assert bool(tg.tensor(data) > 1.0) is (np.asarray(data).item() > 1.0)


def test_truth_value_of_a_larger_tensor_is_ambiguous():
    with pytest.raises(tg.ShapeError, match=r"\(2,\) is ambiguous"):
        bool(tg.tensor([1.0, 2.0]) > 0)


# ---------------------------------------------------------------- dtypes

def test_float_data_defaults_to_float64():
    assert tg.tensor([1, 2]).dtype == np.int64
    assert tg.tensor([1.0, 2.0]).dtype == np.float64
    assert tg.tensor(3.0).dtype == np.float64


@pytest.mark.parametrize("fn", [
    lambda x: (x * 2.0 + 1).sum(),
    lambda x: (x / 3 - x ** 2).mean(),
    lambda x: (x.exp().log().tanh().sigmoid() * x.relu()).sum(),
    lambda x: (x @ x.T).max(),
    lambda x: tg.softmax(x)[:, 0].sum() + tg.log_softmax(x, axis=0).sum(),
    lambda x: tg.cross_entropy(x, [0, 2]),
    lambda x: tg.concat([x, x[:, :1]], axis=1).sum() + tg.stack([x, x]).sum(),
    lambda x: tg.take(x, [1, 1], axis=1).sum() + x.reshape(6).T.sum(),
], ids=["affine", "div_pow_mean", "unary_chain", "matmul_max", "softmax_family",
        "cross_entropy", "concat_stack", "take_reshape"])
def test_float32_is_kept_through_ops_and_in_gradients(fn):
    x = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 6 + 0.1, requires_grad=True)
    out = fn(x)
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("other, dtype", [
    (2.0, np.float32), (2, np.float32), (np.float32(2), np.float32),
    (np.float64(2), np.float64), (np.array(2.0), np.float64), (np.ones(2), np.float64),
    (tg.tensor([1.0, 2.0]), np.float64), (tg.tensor([1, 2]), np.float64),
    (tg.tensor(np.int8([1, 2])), np.float32),
])
def test_a_float32_tensor_promotes_as_numpy_does_and_its_gradient_stays_float32(other, dtype):
    # the README's rule (numpy's NEP 50, not torch's): only a Python number is weak
    x = tg.tensor(np.float32([1.0, 2.0]), requires_grad=True)
    y = x * other
    assert y.dtype == dtype == (np.float32([1.0, 2.0]) * np.asarray(other)
                                if isinstance(other, tg.Tensor) else np.float32([1.0, 2.0]) * other).dtype
    y.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("data", [[1, 2], [True, False], np.arange(3, dtype=np.int32)],
                         ids=["int64", "bool", "int32"])
def test_integer_or_boolean_tensor_cannot_require_grad(data):
    with pytest.raises(tg.DTypeError, match="float"):
        tg.tensor(data, requires_grad=True)


def test_parameter_from_integers_becomes_float64():
    assert tg.Parameter([1, 2]).dtype == np.float64


# ---------------------------------------------------------------- anomaly detection

def _line_of(marker):
    """Line number (1-based) of the first line of this file that contains ``marker``."""
    with open(__file__) as f:
        return next(n for n, line in enumerate(f, start=1) if marker in line)


def test_anomaly_in_forward_names_op_scope_and_user_line():
    x = tg.tensor(-1.0, requires_grad=True)
    with tg.detect_anomaly(), tg.scope("rnn"), tg.scope("t=3"):
        with pytest.raises(tg.AnomalyError) as info:
            tg.log(x)   # MARK-forward-log
    message = str(info.value)
    assert "log" in message and "NaN" in message and "rnn/t=3" in message
    assert f"{__file__}:{_line_of('MARK-forward-log')}" in message


def test_anomaly_zero_times_inf_names_mul():
    zero = tg.tensor(0.0, requires_grad=True)
    inf = tg.tensor(np.inf)
    with tg.detect_anomaly(), tg.scope("t=3"):
        with pytest.raises(tg.AnomalyError, match=r"mul.*NaN.*t=3"):
            zero * inf


def test_anomaly_error_is_a_floating_point_error():
    assert issubclass(tg.AnomalyError, FloatingPointError)


def test_anomaly_in_backward_names_the_op_that_made_the_bad_gradient_and_its_scope():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        with tg.scope("t=3"):
            y = tg.sqrt(x)   # MARK-backward-sqrt
        loss = y.sum()
        with pytest.raises(tg.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert "sqrt" in message and "t=3" in message and "Inf" in message
    assert f"{__file__}:{_line_of('MARK-backward-sqrt')}" in message


def test_without_detect_anomaly_nan_passes_silently():
    with np.errstate(invalid="ignore"):
        y = tg.log(tg.tensor(-1.0))
    assert np.isnan(y.item())


# ---------------------------------------------------------------- numerical stability

BIG = 1e4


@pytest.mark.parametrize("sign", [1, -1], ids=["plus", "minus"])
def test_softmax_is_finite_and_exact_at_extreme_logits(sign):
    z = sign * np.array([[BIG, 0.0, -BIG], [BIG, BIG, 0.0]])
    x = tg.tensor(z, requires_grad=True)
    p = tg.softmax(x)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p.data, expected, atol=1e-300)
    (p[:, 0]).sum().backward()
    assert np.isfinite(x.grad).all()


@pytest.mark.parametrize("sign", [1, -1], ids=["plus", "minus"])
def test_log_softmax_is_finite_and_exact_at_extreme_logits(sign):
    z = sign * np.array([BIG, 0.0, -BIG])
    x = tg.tensor(z, requires_grad=True)
    out = tg.log_softmax(x)
    m = z.max()
    np.testing.assert_allclose(out.data, z - m - np.log(np.exp(z - m).sum()), rtol=1e-12)
    assert np.isfinite(out.data).all()
    out.sum().backward()
    assert np.isfinite(x.grad).all()


def test_cross_entropy_is_finite_and_exact_at_extreme_logits():
    z = np.array([[BIG, -BIG, 0.0], [-BIG, -BIG, BIG]])
    x = tg.tensor(z, requires_grad=True)
    loss = tg.cross_entropy(x, [1, 0])
    assert loss.item() == pytest.approx((2 * BIG + 2 * BIG) / 2, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad, np.array([[1, -1, 0], [-1, 0, 1]]) / 2, atol=1e-12)


def test_sigmoid_saturates_without_overflow_at_extreme_inputs():
    x = tg.tensor([-BIG, BIG], requires_grad=True)
    with tg.detect_anomaly():
        y = tg.sigmoid(x)
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
