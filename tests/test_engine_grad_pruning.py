"""tg.grad and grad_rows run only the part of the graph on paths from the output to the inputs
asked for (as PyTorch's autograd.grad): a freed or changed part of the graph off those paths
is no error, and an error on them names the function called."""

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.rows import grad_rows


def _decoder_over_a_freed_memory():
    a = tg.tensor([0.5, -1.0, 2.0], requires_grad=True, name="a")
    b = tg.tensor([2.0, 3.0, -1.0], requires_grad=True, name="b")
    memory = tg.tanh(a * 2)          # an encoder's memory ...
    memory.sum().backward()           # ... whose graph a training step freed
    return a, b, memory, (memory * b * b).sum()


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_of_inputs_off_a_freed_part_is_computed(create_graph):
    a, b, memory, y = _decoder_over_a_freed_memory()
    gb, gm = tg.grad(y, [b, memory], retain_graph=True, create_graph=create_graph)
    if create_graph:
        gb, gm = gb.data, gm.data
    np.testing.assert_allclose(gb, 2 * np.tanh(2 * a.data) * b.data, rtol=1e-15)
    np.testing.assert_allclose(gm, b.data ** 2, rtol=1e-15)


def test_grad_rows_of_inputs_off_a_freed_part_are_computed():
    a, b, memory, y = _decoder_over_a_freed_memory()
    (rows,) = grad_rows([y, 2 * y], [b])
    expected = 2 * np.tanh(2 * a.data) * b.data
    np.testing.assert_allclose(rows, [expected, 2 * expected], rtol=1e-15)


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_through_a_freed_part_names_grad(create_graph):
    a, b, memory, y = _decoder_over_a_freed_memory()
    with pytest.raises(tg.GraphFreedError, match=r"^grad: the graph through 'tanh'") as info:
        tg.grad(y, [a, b], create_graph=create_graph)
    assert "backward(retain_graph" not in str(info.value)
    assert b.grad is None


def test_grad_rows_through_a_freed_part_names_grad_rows():
    a, b, memory, y = _decoder_over_a_freed_memory()
    with pytest.raises(tg.GraphFreedError, match=r"^grad_rows: the graph through 'tanh'"):
        grad_rows([y], [b, a])


def test_a_part_changed_in_place_off_the_paths_is_no_error():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    side = x * w                      # off the path from y to x's square below
    with tg.no_grad():
        w += 1.0                      # side is stale
    y = (side + x * x).sum()
    np.testing.assert_array_equal(tg.grad(y, side, retain_graph=True), [1.0, 1.0])
    np.testing.assert_array_equal(grad_rows([y], [side])[0], [[1.0, 1.0]])
    with pytest.raises(tg.StaleGraphError, match="^grad: "):
        tg.grad(y, x, retain_graph=True)
    with pytest.raises(tg.StaleGraphError, match="^grad_rows: "):
        grad_rows([y], [x])


def test_grad_frees_only_the_paths_it_ran_and_leaves_no_partial_gradient_behind():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    w = tg.tensor([2.0, 3.0], requires_grad=True)
    h = tg.exp(x)                     # off the path from y to w
    y = (h * w).sum()
    np.testing.assert_array_equal(tg.grad(y, w), np.exp(x.data))   # frees y's path to w
    h.sum().backward(retain_graph=True)    # h's graph was not run by grad, so not freed
    np.testing.assert_array_equal(x.grad, np.exp(x.data))
    # the gradient grad handed to h (a parent off the paths) was not left in it: a later
    # sweep through h counts from zero
    z = (h * h).sum()
    np.testing.assert_allclose(tg.grad(z, x), 2 * np.exp(2 * x.data), rtol=1e-15)


def test_sweep_order_with_inputs_is_the_part_grad_runs():
    a, b, memory, y = _decoder_over_a_freed_memory()
    with pytest.raises(tg.GraphFreedError, match="^sweep_order: "):
        tg.sweep_order(y)
    order = tg.sweep_order(y, [b])
    assert order[0] is y and order[-1] is b
    assert not {id(memory), id(a)} & {id(n) for n in order}
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for p in node.parents:
            if id(p) in position:
                assert position[id(p)] > position[id(node)]
    with pytest.raises(tg.GraphFreedError, match="^sweep_order: "):
        tg.sweep_order(y, [a])


def test_plain_backward_still_refuses_a_freed_part_anywhere():
    a, b, memory, y = _decoder_over_a_freed_memory()
    with pytest.raises(tg.GraphFreedError, match="^backward: .*retain_graph=True"):
        y.backward()
    assert b.grad is None


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_of_an_intermediate_neither_runs_nor_frees_its_own_rule(create_graph):
    # the gradient of h is what reaches h: h's own rule (tanh's) leads to no input asked for,
    # so it is not run and not freed (as torch's autograd.grad, and as create_graph's sweep did)
    w = tg.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    x = tg.tensor([[1.0, 2.0], [-1.0, 0.5]])
    h = tg.tanh(x @ w)
    gh = tg.grad((h * h).sum(), h, create_graph=create_graph)
    np.testing.assert_array_equal(gh.data if create_graph else gh, 2 * h.data)
    gw = tg.grad(h.sum(), w)          # h's graph is whole: tanh's rule still there
    np.testing.assert_allclose(gw, x.data.T @ (1 - h.data ** 2), rtol=1e-15)
