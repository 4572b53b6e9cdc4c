"""Random graphs of engine ops, with shared nodes (one node read by several ops, ``x * x``),
identity-like rules that hand one gradient array to several inputs (add, reshape, transpose,
slices, concat of a node with itself), and inputs stored F-ordered, strided or reversed.

Oracles: central finite differences in float64 for the gradient of every input, and for
the Hessian-vector product that ``tg.grad(create_graph=True)`` differentiates again; the
same graph in float32 gives float32 gradients within 1e-3 of float64's.
"""

import numpy as np
from conftest import central_differences
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygraph as tg

SETTINGS = settings(max_examples=25, deadline=None)


def _positive(a):
    return tg.softplus(a) + 0.5


# name -> (number of inputs, function, whether it applies to inputs of these shapes)
OPS = {
    "add": (2, lambda a, b: a + b, None),
    "sub": (2, lambda a, b: a - b, None),
    "mul": (2, lambda a, b: a * b, None),
    "div": (2, lambda a, b: a / _positive(b), None),
    "pow": (2, lambda a, b: _positive(a) ** tg.tanh(b), None),
    "maximum": (2, tg.maximum, None),
    "square of itself": (1, lambda a: a * a, None),
    "tanh": (1, tg.tanh, None),
    "sigmoid": (1, tg.sigmoid, None),
    "gelu": (1, tg.gelu, None),
    "log": (1, lambda a: tg.log(_positive(a)), None),
    "transpose": (1, lambda a: a.T, lambda s: len(s) == 2),
    "reshape": (1, lambda a: a.reshape(-1), None),
    "slice": (1, lambda a: a[1:], lambda s: len(s) >= 1 and s[0] > 1),
    "repeated index": (1, lambda a: a[np.array([0, 0, -1])], lambda s: len(s) >= 1),
    "take": (1, lambda a: tg.take(a, [-1, 0, 0], axis=-1), lambda s: len(s) >= 1),
    "sum 0": (1, lambda a: tg.sum(a, 0), lambda s: len(s) >= 1),
    "mean keepdims": (1, lambda a: tg.mean(a, -1, keepdims=True), lambda s: len(s) >= 1),
    "max": (1, lambda a: tg.max(a, -1), lambda s: len(s) >= 1),
    "var": (1, lambda a: tg.var(a, axis=0), lambda s: len(s) >= 1),
    "prod": (1, lambda a: tg.prod(a, axis=0), lambda s: len(s) >= 1),
    "cumsum": (1, lambda a: tg.cumsum(a, 0), lambda s: len(s) >= 1),
    "flip": (1, lambda a: tg.flip(a, 0), lambda s: len(s) >= 1),
    "pad": (1, lambda a: tg.pad(a, 1, value=0.5), None),
    "tile": (1, lambda a: tg.tile(a, 2), None),
    "softmax": (1, tg.softmax, lambda s: len(s) >= 1),
    "log_softmax 0": (1, lambda a: tg.log_softmax(a, 0), lambda s: len(s) >= 1),
    "logsumexp": (1, tg.logsumexp, lambda s: len(s) >= 1),
    "sort": (1, lambda a: tg.sort(a, -1)[0], lambda s: len(s) >= 1),
    "concat with itself": (2, lambda a, b: tg.concat([a, b, a], 0),
                           None),
    "stack": (2, lambda a, b: tg.stack([a, b], 0), None),
    "unbind": (1, lambda a: tg.stack(tg.unbind(a, 0)[::-1], 0) + tg.unbind(a, 0)[0],
               lambda s: len(s) >= 1),
    "matmul": (2, lambda a, b: a @ b, None),
    "addmm": (2, lambda a, b: tg.addmm(a[0], a, b), lambda s: len(s) == 2),
    "cross_entropy": (1, lambda a: tg.cross_entropy(a, np.zeros(a.shape[0], int), reduction="none"),
                      lambda s: len(s) == 2),
}
NAMES = sorted(OPS)


def _applies(name, shapes):
    n, fn, fits = OPS[name]
    if fits is not None and not fits(shapes[0]):
        return False
    try:
        with tg.no_grad():
            fn(*[tg.tensor(np.ones(s)) for s in shapes])
    except tg.TinygraphError:
        return False
    return True


@st.composite
def programs(draw):
    """Three input shapes and a list of (op name, indices of its inputs) over them."""
    shapes = [tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))) for _ in range(3)]
    program = []
    for _ in range(draw(st.integers(2, 8))):
        name = draw(st.sampled_from(NAMES))
        picks = tuple(draw(st.integers(0, len(shapes) - 1)) for _ in range(OPS[name][0]))
        if not _applies(name, [shapes[i] for i in picks]):
            continue
        with tg.no_grad():
            shapes.append(OPS[name][1](*[tg.tensor(np.ones(shapes[i])) for i in picks]).shape)
        program.append((name, picks))
    return shapes, program


def _run(program, inputs, weights):
    """The program's nodes, and the loss: the sum of every made node times its weights."""
    values = list(inputs)
    for name, picks in program:
        values.append(OPS[name][1](*[values[i] for i in picks]))
    terms = [tg.sum(value * w) for value, w in zip(values[len(inputs):], weights)]
    return sum(terms[1:], terms[0]) if terms else tg.sum(inputs[0] * 0.0)


def _laid_out(a, how):
    """``a``'s values stored C-ordered, F-ordered, as every other entry of a wider array, or
    reversed twice."""
    if how == 1:
        return np.asfortranarray(a)
    if how == 2:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if how == 3:
        return np.flip(np.flip(a).copy())
    return a.copy()


def _case(draw_program, seed):
    shapes, program = draw_program
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes[:3]]
    weights = [rng.standard_normal(s) for s in shapes[3:]]
    return program, arrays, weights, rng


def _value(program, weights):
    def f(*arrays):
        with tg.no_grad():
            return float(_run(program, [tg.tensor(a) for a in arrays], weights).data)
    return f


@SETTINGS
@given(programs(), st.integers(0, 2 ** 32 - 1), st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_a_random_graph_back_propagates_what_finite_differences_measure(drawn, seed, layouts):
    program, arrays, weights, _ = _case(drawn, seed)
    inputs = [tg.tensor(_laid_out(a, how), requires_grad=True) for a, how in zip(arrays, layouts)]
    _run(program, inputs, weights).backward()
    expected = central_differences(_value(program, weights), arrays)
    for x, want in zip(inputs, expected):
        got = np.zeros_like(want) if x.grad is None else x.grad
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(programs(), st.integers(0, 2 ** 32 - 1), st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_a_random_graphs_gradient_differentiates_again_as_finite_differences_of_it(drawn, seed,
                                                                                 layouts):
    program, arrays, weights, rng = _case(drawn, seed)
    directions = [rng.standard_normal(a.shape) for a in arrays]
    inputs = [tg.tensor(_laid_out(a, how), requires_grad=True) for a, how in zip(arrays, layouts)]
    grads = tg.grad(_run(program, inputs, weights), inputs, create_graph=True)
    terms = [tg.sum(g * d) for g, d in zip(grads, directions)]
    along = sum(terms[1:], terms[0])
    hessian_times = (tg.grad(along, inputs) if along.requires_grad
                     else [np.zeros_like(a) for a in arrays])

    def first_along(*values):      # sum_i d_i . dL/dx_i by the engine's first-order backward
        xs = [tg.tensor(v, requires_grad=True) for v in values]
        return float(sum(np.sum(g * d) for g, d in zip(tg.grad(_run(program, xs, weights), xs),
                                                         directions)))
    expected = central_differences(first_along, arrays, eps=1e-5)
    for got, want in zip(hessian_times, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@SETTINGS
@given(programs(), st.integers(0, 2 ** 32 - 1))
def test_a_random_graph_in_float32_gives_float32_gradients_near_float64s(drawn, seed):
    program, arrays, weights, _ = _case(drawn, seed)
    found = {}
    for dtype in (np.float64, np.float32):
        inputs = [tg.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        loss = _run(program, inputs, [w.astype(dtype) for w in weights])
        found[dtype] = (loss, tg.grad(loss, inputs))
    loss, grads32 = found[np.float32]
    assert loss.dtype == np.float32
    for g64, g32 in zip(found[np.float64][1], grads32):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3 * (1 + np.max(np.abs(g64))))
