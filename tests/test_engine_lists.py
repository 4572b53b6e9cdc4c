"""Lists (tuples, object arrays) holding tensors never cut or double the graph.

As an operand -- of an operator, a ``tg.`` function or a numpy function that dispatches to the
engine -- such a list is what numpy makes of it, the stack of its entries, and each tensor in
it keeps its gradient.  A constructor (``tg.tensor``, ``tg.Tensor``, ``tg.Parameter``,
``tg.full``) makes a new leaf, which cannot carry a gradient back: given a tensor that
requires grad inside a list it raises, naming ``tg.stack``.
"""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygraph as tg


def test_adding_a_list_of_the_same_tensor_counts_every_use():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    (t + [t, t]).sum().backward()
    assert t.grad.tolist() == [4.0, 4.0]


def test_a_list_operand_mixing_entries_of_tensors_and_numbers_sends_each_entry_its_gradient():
    t = tg.tensor([3.0, 5.0], requires_grad=True)
    out = t * [t[1], 2.0]
    assert out.data.tolist() == [15.0, 10.0]
    out.sum().backward()
    assert t.grad.tolist() == [5.0, 2.0 + 3.0]


def test_a_nested_list_operand_is_stacked_level_by_level():
    a = tg.tensor(2.0, requires_grad=True)
    b = tg.tensor(-1.0, requires_grad=True)
    out = tg.exp([[a, 0.0], [b, a]])
    assert out.shape == (2, 2)
    out.sum().backward()
    assert a.grad == pytest.approx(2 * np.exp(2.0)) and b.grad == pytest.approx(np.exp(-1.0))


def test_an_object_array_of_tensors_as_an_operand_keeps_their_gradients():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    holder = np.empty(2, dtype=object)
    holder[0], holder[1] = t, t
    (t * holder).sum().backward()
    assert t.grad.tolist() == [4.0, 8.0]


def test_numpy_functions_dispatched_to_the_engine_stack_list_arguments_too():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    np.concatenate([t, [t[0], t[1]]]).sum().backward()
    assert t.grad.tolist() == [2.0, 2.0]
    t.zero_grad()
    np.add(t, [t, t]).sum().backward()
    assert t.grad.tolist() == [4.0, 4.0]


@pytest.mark.parametrize("make", [
    lambda data: tg.tensor(data),
    lambda data: tg.Tensor(data),
    lambda data: tg.Parameter(data),
    lambda data: tg.tensor(data, dtype=np.float32),
], ids=["tg.tensor", "tg.Tensor", "tg.Parameter", "tg.tensor dtype"])
@pytest.mark.parametrize("holder", ["list", "nested list", "tuple", "object array"])
def test_constructors_refuse_tensors_that_require_grad_inside_their_data(make, holder):
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    data = {"list": [t, t], "nested list": [[t[0], 1.0], [2.0, t[1]]], "tuple": (t, t),
            "object array": np.array([t[0], 1.0], dtype=object)}[holder]
    with pytest.raises(tg.DTypeError, match="tg.stack"):
        make(data)


def test_constructors_take_tensors_without_grad_and_under_no_grad_as_values():
    c = tg.tensor([1.0, 2.0])
    assert tg.tensor([c, c]).data.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        assert tg.tensor([t, t]).shape == (2, 2)


def test_full_refuses_a_fill_value_that_requires_grad_and_broadcast_to_keeps_it():
    v = tg.tensor(3.0, requires_grad=True)
    with pytest.raises(tg.DTypeError, match="broadcast_to"):
        tg.full((2, 2), v)
    tg.broadcast_to(v, (2, 2)).sum().backward()
    assert v.grad == 4.0


def test_an_in_place_update_by_a_list_holding_a_tensor_that_requires_grad_raises():
    c = tg.tensor([0.0, 0.0])
    w = tg.tensor(1.0, requires_grad=True)
    with pytest.raises(tg.InPlaceError, match="gradient would be lost"):
        c += [w, 2.0]
    assert c.data.tolist() == [0.0, 0.0]
    with tg.no_grad():
        c += [w, 2.0]
    assert c.data.tolist() == [1.0, 2.0]


def test_a_backward_seed_given_as_a_list_of_tensors_keeps_their_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    s = tg.tensor(3.0, requires_grad=True)
    g = tg.grad(x * x, x, grad=[s, s], create_graph=True)
    g.sum().backward()
    assert s.grad == pytest.approx(2 * (1.0 + 2.0))


def test_a_list_of_entries_of_different_shapes_raises_a_shape_error_as_numpy_refuses_it():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.ShapeError, match="stack"):
        t + [t, 1.0]


# ------------------------------------------------------------------ the property

ENTRY = st.one_of(st.sampled_from(["a", "b"]), st.floats(0.5, 2.0).map(lambda v: round(v, 3)))
LISTS = st.one_of(st.lists(ENTRY, min_size=1, max_size=3),
                  st.lists(st.lists(ENTRY, min_size=2, max_size=2), min_size=1, max_size=2))


def _fill(spec, leaves):
    """The list ``spec`` with "a"/"b" replaced by the leaves (Tensors, or arrays)."""
    if isinstance(spec, list):
        return [_fill(item, leaves) for item in spec]
    return leaves[spec] if isinstance(spec, str) else spec


# each: (engine expression of x and the list L, numpy expression of x and L)
OPERAND_USES = {
    "x + L": (lambda x, L: x + L, lambda x, L: x + L),
    "L - x": (lambda x, L: L - x, lambda x, L: L - x),
    "x * L": (lambda x, L: x * L, lambda x, L: x * L),
    "x / L": (lambda x, L: x / L, lambda x, L: x / L),
    "x ** L": (lambda x, L: x ** L, lambda x, L: x ** L),
    "tg.maximum(L, x)": (lambda x, L: tg.maximum(L, x), np.maximum),
    "tg.where(x > 1, x, L)": (lambda x, L: tg.where(x.data > 1, x, L), lambda x, L: np.where(x > 1, x, L)),
    "tg.exp(L) * x": (lambda x, L: tg.exp(L) * x, lambda x, L: np.exp(L) * x),
    "tg.sum(L) * x": (lambda x, L: tg.sum(L) * x, lambda x, L: np.sum(L) * x),
    "np.multiply(x, L)": (lambda x, L: np.multiply(x, L), np.multiply),
    "np.subtract(L, x)": (lambda x, L: np.subtract(L, x), lambda x, L: np.subtract(L, x)),
    "np.where(x > 1, L, x)": (lambda x, L: np.where(x > 1, L, x), lambda x, L: np.where(x > 1, L, x)),
    "np.concatenate([x, L], axis=None)": (lambda x, L: np.concatenate([x, L], axis=None),
                                          lambda x, L: np.concatenate([x, L], axis=None)),
    "tg.mse_loss(x, L)": (lambda x, L: tg.mse_loss(x, L), lambda x, L: np.mean((x - L) ** 2)),
    "x @ L": (lambda x, L: x @ L, np.matmul),
    "L @ x": (lambda x, L: L @ x, lambda x, L: np.matmul(L, x)),
    "x.maximum(L)": (lambda x, L: x.maximum(L), np.maximum),
    "x.clip(L, 1.5)": (lambda x, L: x.clip(L, 1.5), lambda x, L: np.clip(x, L, 1.5)),
    "tg.stack([x, L])": (lambda x, L: tg.stack([x, L]), lambda x, L: np.stack([x, L])),
    "tg.concat([L, x], axis=None)": (lambda x, L: tg.concat([L, x], axis=None),
                                     lambda x, L: np.concatenate([L, x], axis=None)),
}


def _leaf_arrays(shape, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.5, 2.0, shape) for name in ("x", "a", "b")}


@settings(max_examples=40, deadline=None)
@given(use=st.sampled_from(sorted(OPERAND_USES)), spec=LISTS, shape=st.sampled_from([(), (2,)]),
       seed=st.integers(0, 2 ** 16))
def test_every_operand_path_keeps_the_gradient_of_every_tensor_in_a_list_or_raises(use, spec, shape, seed):
    """numpy is the oracle of validity: where it accepts the arrays the engine gives its value
    and a gradient equal to finite differences for x and for every tensor in the list;
    where numpy refuses (ragged entries) the engine raises one of its errors."""
    tg_fn, np_fn = OPERAND_USES[use]
    arrays = _leaf_arrays(shape, seed)
    try:
        with np.errstate(all="ignore"):
            expected = np_fn(arrays["x"], np.array(_fill(spec, arrays), dtype=np.float64))
    except (ValueError, TypeError):
        with pytest.raises(tg.TinygraphError):
            leaves = {k: tg.tensor(v, requires_grad=True) for k, v in arrays.items()}
            tg_fn(leaves["x"], _fill(spec, leaves))
        return
    names = ["x"] + sorted({s for s in np.array(spec, dtype=object).ravel().tolist() if isinstance(s, str)})
    leaves = {k: tg.tensor(arrays[k], requires_grad=True) for k in ("x", "a", "b")}

    def fn(*inputs):
        given_ = dict(leaves, **dict(zip(names, inputs)))
        return tg_fn(given_["x"], _fill(spec, given_))

    inputs = [leaves[k] for k in names]
    out = fn(*inputs)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert tg.gradcheck(fn, inputs)


@settings(max_examples=30, deadline=None)
@given(spec=LISTS, make=st.sampled_from(["tg.tensor", "tg.Tensor", "tg.Parameter"]))
def test_every_constructor_given_a_list_holding_a_tensor_that_requires_grad_raises(spec, make):
    leaves = {"a": tg.tensor(1.5, requires_grad=True), "b": tg.tensor(0.5)}
    data = _fill(spec, leaves)
    construct = {"tg.tensor": tg.tensor, "tg.Tensor": tg.Tensor, "tg.Parameter": tg.Parameter}[make]
    holds_grad = "a" in np.array(spec, dtype=object).ravel().tolist()
    if holds_grad:
        with pytest.raises(tg.DTypeError, match="tg.stack"):
            construct(data)
    else:
        assert construct(data).data.tolist() == np.array(_fill(spec, {"a": 1.5, "b": 0.5})).tolist()


def _one_tensor_ops():
    """Every public tg function that takes one tensor (and nothing else required): an op."""
    not_ops = {"bump_version", "sweep_order", "eye", "ones", "zeros", "tensor", "ones_like", "zeros_like",
               "concat", "stack", "cat", "hstack", "vstack", "clip", "clamp", "argmax", "argmin",
               "reshape", "permute", "expand_dims", "unsqueeze"}   # sequence ops take lists;
    # the rest need more arguments (unsqueeze its axis, given as axis= or dim=)
    names = []
    for name in tg.__all__:
        fn = getattr(tg, name)
        if (name in not_ops or not inspect.isfunction(fn)
                or fn.__module__ in ("tinygraph.files", "tinygraph.checkpoint")):   # files, not ops
            continue
        required = [p for p in inspect.signature(fn).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(required) == 1:
            names.append(name)
    return names


@pytest.mark.parametrize("name", _one_tensor_ops())
def test_every_one_tensor_op_given_a_list_equals_the_op_on_its_stack_value_and_gradient(name):
    fn = getattr(tg, name)
    rng = np.random.default_rng(5)
    a0, b0 = rng.uniform(0.5, 2.0, 3), rng.uniform(0.5, 2.0, 3)

    def run(as_list):
        a, b = tg.tensor(a0, requires_grad=True), tg.tensor(b0, requires_grad=True)
        rows = [a, b * 2.0, [1.5, 0.75, 1.25]]
        out = fn(rows if as_list else tg.stack(rows))
        if isinstance(out, (list, tuple)):   # unbind's rows, sort's (values, indices), ...
            out = tg.stack([o for o in out if o.dtype.kind == "f"])
        r = np.random.default_rng(6).standard_normal(out.shape)
        (out * r).sum().backward()
        return out.data, a.grad, b.grad

    for got, expected in zip(run(True), run(False)):
        np.testing.assert_array_equal(got, expected)
