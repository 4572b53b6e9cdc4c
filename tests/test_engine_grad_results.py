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
