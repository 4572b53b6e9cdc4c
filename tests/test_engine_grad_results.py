"""What backward and tg.grad give back: distinct results for an input given twice, and, with
create_graph, gradients of the arrays the forward saw (a .data replaced since is refused)."""

import numpy as np
import pytest

import tinygraph as tg


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_input_given_twice_gets_two_distinct_results(create_graph):
    x = tg.tensor([1.0, -2.0, 0.0], requires_grad=True)
    y = (x * x * x).sum()
    a, b, c = tg.grad(y, [x, x, x], create_graph=create_graph)
    assert a is not b and b is not c and a is not c
    arrays = [r.data if create_graph else r for r in (a, b, c)]
    for r in arrays:
        assert np.array_equal(r, 3 * np.array([1.0, -2.0, 0.0]) ** 2)
    assert not np.shares_memory(arrays[0], arrays[1])
    arrays[0][...] = 7.0      # the caller changes one result in place: the others keep theirs
    assert np.array_equal(arrays[1], [3.0, 12.0, 0.0]) and np.array_equal(arrays[2], [3.0, 12.0, 0.0])


def test_a_repeated_create_graph_result_is_differentiable_again():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    a, b = tg.grad((x * x * x).sum(), [x, x], create_graph=True)
    ha, = [tg.grad(a.sum(), x, retain_graph=True)]
    hb = tg.grad(b.sum(), x)
    assert np.array_equal(ha, 6 * np.array([1.0, 2.0])) and np.array_equal(hb, ha)


def _cube():
    w = tg.tensor([1.0, 2.0], requires_grad=True, name="w")
    return w, (w * w * w).sum()


def test_a_data_replaced_after_the_forward_plain_backward_uses_the_saved_arrays():
    w, y = _cube()
    w.data = np.array([10.0, 20.0])
    y.backward()
    assert np.array_equal(w.grad, [3.0, 12.0])       # 3 w^2 of the w the forward saw


@pytest.mark.parametrize("how", ["backward", "grad"])
def test_a_data_replaced_after_the_forward_is_refused_by_create_graph(how):
    """create_graph's rules read their inputs' tensors: they read the new array (201, 804 where
    plain backward gives 3, 12), a silently different gradient from the same graph: refused."""
    w, y = _cube()
    w.grad = np.array([0.5, 0.5])
    held = w.grad
    w.data = np.array([10.0, 20.0])
    with pytest.raises(tg.StaleGraphError, match=r"create_graph=True\): the \.data of .*'w'.* was "
                                                 r"replaced .* after 'mul' used it"):
        if how == "backward":
            y.backward(create_graph=True)
        else:
            tg.grad(y, w, create_graph=True)
    assert w.grad is held and np.array_equal(held, [0.5, 0.5])
    y.backward()                # the graph is whole: plain backward still runs, on the saved arrays
    assert np.array_equal(w.grad, [3.5, 12.5])


def test_a_constant_input_replaced_is_refused_too_and_a_replacement_before_the_forward_is_not():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0])
    y = (w * w * c).sum()
    c.data = np.array([30.0, 40.0])
    with pytest.raises(tg.StaleGraphError, match="shape \\(2,\\) was replaced"):
        tg.grad(y, w, create_graph=True)
    y = (w * w * c).sum()           # built after the replacement: its own arrays
    g = tg.grad(y, w, create_graph=True)
    assert np.array_equal(g.data, [60.0, 160.0])
    y = (w * w * c).sum()
    w.data = w.data                 # the same array given back: nothing replaced
    assert np.array_equal(tg.grad(y, w, create_graph=True).data, [60.0, 160.0])
