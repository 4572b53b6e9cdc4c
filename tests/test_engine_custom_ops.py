"""Custom ops, as the README's "Your own ops" writes them: ``tg.apply(name, forward, *inputs)``
with numpy vjps, and ``tg.defvjp(forward, rule)`` so that create_graph differentiates through.
Oracles: central finite differences, and the closed-form second derivative of GELU."""

import math

import numpy as np
import pytest
from conftest import central_differences

import tinygraph as tg

erfc = np.vectorize(math.erfc)
SQRT_2PI = math.sqrt(2 * math.pi)


def phi(x):          # the standard normal CDF as an op
    return 0.5 * erfc(-x / np.sqrt(2)), (lambda g: g * np.exp(-x * x / 2) / SQRT_2PI,)


def gelu(x):         # x Phi(x); d/dx = Phi(x) + x phi(x)
    cdf = phi(x)[0]
    return x * cdf, (lambda g: g * (cdf + x * np.exp(-x * x / 2) / SQRT_2PI),)


tg.defvjp(phi, lambda g, out, x: (g * tg.exp(-x * x / 2) / SQRT_2PI,))
tg.defvjp(gelu, lambda g, out, x: (g * (tg.apply("phi", phi, x) + x * tg.exp(-x * x / 2) / SQRT_2PI),))

X = np.array([-2.5, -0.3, 0.0, 0.7, 3.0])


def test_a_users_gelu_gradchecks_and_equals_the_built_in_one():
    x = tg.tensor(X, requires_grad=True)
    y = tg.apply("gelu", gelu, x)
    assert y.op == "gelu" and y.parents == (x,)
    np.testing.assert_allclose(y.data, tg.gelu(x).data, rtol=1e-15)
    assert tg.gradcheck(lambda t: tg.apply("gelu", gelu, t).sum(), [x])
    weights = np.arange(1.0, 6.0)
    numeric = central_differences(lambda a: float(np.sum(weights * gelu(a)[0])), [X])[0]
    np.testing.assert_allclose(tg.grad((tg.apply("gelu", gelu, x) * weights).sum(), x), numeric, rtol=1e-7)


def test_create_graph_through_a_users_gelu_gives_its_exact_second_derivative():
    x = tg.tensor(X, requires_grad=True)
    g = tg.grad(tg.apply("gelu", gelu, x).sum(), x, create_graph=True)
    second = tg.grad(g.sum(), x)
    pdf = np.exp(-X * X / 2) / SQRT_2PI
    np.testing.assert_allclose(second, pdf * (2 - X * X), rtol=1e-13, atol=1e-16)   # (Phi + x phi)'
    np.testing.assert_allclose(second, tg.grad(tg.grad(tg.gelu(x).sum(), x, create_graph=True).sum(), x),
                               rtol=1e-13, atol=1e-16)


def test_apply_with_the_function_first_says_what_the_first_argument_is():
    x = tg.tensor(X, requires_grad=True)
    with pytest.raises(tg.DTypeError) as info:
        tg.apply(gelu, x)
    message = str(info.value)
    assert "op's name" in message and "tg.apply('my_op', forward, x)" in message and "gelu" in message
    with pytest.raises(tg.DTypeError, match="forward function"):
        tg.apply("gelu", x)


@pytest.mark.parametrize("vjps,said", [
    (lambda x, y: (lambda g: g * y,), "returned 1 vector-Jacobian product for 2 inputs"),
    (lambda x, y: (None, None, None), "returned 3 vector-Jacobian products for 2 inputs"),
    (lambda x, y: (lambda g: g * y), "a tuple of one function (or None) per input"),
], ids=["too_few", "too_many", "not_a_tuple"])
def test_a_forward_with_another_count_of_vjps_than_inputs_is_refused(vjps, said):
    # with one vjp for two inputs, the second input got a gradient of zeros without a word
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    with pytest.raises(tg.DTypeError) as info:
        tg.apply("scale", lambda x, y: (x * y, vjps(x, y)), a, b)
    assert "scale:" in str(info.value) and said in str(info.value)


def test_a_constant_input_still_takes_its_place_among_the_vjps():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    out = tg.apply("scale", lambda x, c: (x * c, (lambda g: g * c, None)), a, np.array([3.0, 4.0]))
    np.testing.assert_array_equal(tg.grad(out.sum(), a), [3.0, 4.0])


@pytest.mark.parametrize("wrong", [lambda g: g.sum(), lambda g: g[:1], lambda g: 2.0,
                                   lambda g: np.ones(2)])
def test_a_vjp_giving_a_gradient_smaller_than_its_input_is_refused_not_broadcast(wrong):
    # a vjp that returned g.sum() (or g[:1], a number) for an input of shape (3,) was broadcast
    # up to (3,) without a word: every entry got the same wrong number
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tg.apply("mine", lambda a: (a * 2, (wrong,)), x)
    with pytest.raises(tg.ShapeError, match=r"gradient rule of 'mine' gave input 0 a gradient of "
                                            r"shape \(\d?,?\), but that input has shape \(3,\)"):
        (y * np.array([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad is None


def test_a_vjp_may_give_a_gradient_its_input_broadcasts_to_or_a_list():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tg.apply("wide", lambda a: (a * 2, (lambda g: np.stack([g, g]),)), x)   # (2, 3): summed
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    x.grad = None
    tg.apply("listed", lambda a: (a * 2, (lambda g: [1.0, 2.0, 3.0],)), x).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])
    with pytest.raises(tg.DTypeError, match="gave input 0 .*a gradient of dtype <U1"):
        tg.apply("text", lambda a: (a * 2, (lambda g: "x",)), x).sum().backward()


def test_a_vjp_giving_a_complex_gradient_of_its_inputs_shape_is_refused():
    # a complex gradient of the right shape was cast to the input's float dtype with only
    # numpy's ComplexWarning: its imaginary part was dropped without an error
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tg.apply("rotate", lambda a: (a * 2, (lambda g: g * (1 + 2j),)), x)
    with pytest.raises(tg.DTypeError, match=r"gradient rule of 'rotate'.* gave input 0 \(shape "
                                            r"\(3,\)\) a gradient of dtype complex128"):
        y.sum().backward()
    assert x.grad is None
    z = tg.apply("halve", lambda a: (a / 2, (lambda g: (g / 2).astype(np.float32),)), x)
    z.sum().backward()      # a real gradient of another dtype is cast to the input's
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [0.5, 0.5, 0.5])


def test_a_tensor_level_rule_giving_a_smaller_gradient_is_refused_under_create_graph():
    def doubled(a):
        return a * 2, (lambda g: g * 2,)
    tg.defvjp(doubled, lambda g, out, a: (tg.sum(g * 2),))     # () for an input of shape (3,)
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"'doubled' gave input 0 a gradient of shape \(\)"):
        tg.grad((tg.apply("doubled", doubled, x) * np.array([1.0, 2.0, 3.0])).sum(), x,
                create_graph=True)


class _UsersOwnError(ValueError):
    pass


def _picky(x):
    if x.shape[0] != 2:
        raise ValueError(f"picky: wants 2 rows, got {x.shape[0]}")
    return x * 2, (lambda g: g * 2,)


def test_a_users_value_error_keeps_its_class_one_prefix_and_the_shapes_and_step():
    x = tg.tensor(np.ones((3, 2)), requires_grad=True)
    with tg.scope("dec"), tg.scope("t=3"):
        with pytest.raises(ValueError) as info:
            tg.apply("picky", _picky, x)
    said = str(info.value)
    assert said == "picky: wants 2 rows, got 3 (input shapes (3, 2)) in scope 'dec/t=3'"
    assert isinstance(info.value, tg.TinygraphError)     # a ShapeError, a ValueError too


def test_a_users_own_error_class_comes_out_as_itself_with_the_context():
    def forward(x):
        raise _UsersOwnError("no rows of zeros here")
    x = tg.tensor(np.ones((3, 2)), requires_grad=True)
    with tg.scope("dec"), tg.scope("t=2"):
        with pytest.raises(_UsersOwnError) as info:
            tg.apply("nozero", forward, x)
    assert str(info.value) == ("nozero: no rows of zeros here (input shapes (3, 2)) in scope "
                               "'dec/t=2'")

    class Coded(ValueError):        # a constructor of other arguments, with a side effect
        made = 0

        def __init__(self, code, detail):
            super().__init__(f"code {code}: {detail}")
            self.code = code
            Coded.made += 1

    def coded(x):
        raise Coded(7, "bad")
    with pytest.raises(Coded) as info:
        tg.apply("coded", coded, x)
    assert str(info.value) == "coded: code 7: bad (input shapes (3, 2))"
    assert info.value.code == 7 and Coded.made == 1     # its own attributes; made once, by forward

    class Logged(ValueError):       # one argument would do: it was made again, losing code
        made = 0

        def __init__(self, message, code=None):
            super().__init__(message)
            self.code = code
            Logged.made += 1

    def logged(x):
        raise Logged("bad", code=5)
    with pytest.raises(Logged) as info:
        tg.apply("logged", logged, x)
    assert str(info.value) == "logged: bad (input shapes (3, 2))"
    assert info.value.code == 5 and Logged.made == 1

    class Told(ValueError):         # a class that words its own message: the note carries it
        def __str__(self):
            return "told: " + self.args[0]

    def told(x):
        raise Told("bad")
    with pytest.raises(Told) as info:
        tg.apply("told", told, x)
    assert str(info.value) == "told: bad"
    assert info.value.__notes__ == ["told: bad (input shapes (3, 2))"]


def test_a_key_error_or_other_class_from_a_forward_keeps_its_class_with_op_shapes_and_step():
    table = {"a": 1.0}

    def looked_up(x):
        return x * table["b"], (lambda g: g * table["b"],)

    x = tg.tensor(np.ones((3, 2)), requires_grad=True)
    with tg.scope("dec"), tg.scope("t=4"):
        with pytest.raises(KeyError) as info:
            tg.apply("lookup", looked_up, x)
    assert type(info.value) is KeyError
    assert info.value.args == ("lookup: 'b' (input shapes (3, 2)) in scope 'dec/t=4'",)
    assert isinstance(info.value.__cause__, KeyError)       # the forward's own, for its traceback

    def halved(x):
        return x / 0 if x.size > 99 else 1 // 0, (lambda g: g,)

    with pytest.raises(ZeroDivisionError, match=r"^halve: integer division or modulo by zero "
                       r"\(input shapes \(3, 2\)\)$"):
        tg.apply("halve", halved, x)

    class Refused(Exception):       # a user's own class, not one of numpy's
        pass

    def refusing(x):
        raise Refused("not today")

    with tg.scope("t=1"):
        with pytest.raises(Refused, match=r"^refuse: not today \(input shapes \(3, 2\)\) in scope 't=1'$"):
            tg.apply("refuse", refusing, x)


def test_keyboard_interrupt_and_system_exit_from_a_forward_go_through_untouched():
    x = tg.tensor(np.ones(2), requires_grad=True)
    for cls in (KeyboardInterrupt, SystemExit, GeneratorExit):
        raised = cls("stop")

        def stopping(x):
            raise raised

        with pytest.raises(cls) as info:
            tg.apply("stopping", stopping, x)
        assert info.value is raised and not getattr(raised, "__notes__", None)
