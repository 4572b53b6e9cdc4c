"""tg.sweep_order: the order backward really visits the graph in, read without running it."""

import numpy as np
import pytest

import tinygraph as tg


def _recording(visits, label):
    """An identity-like op whose vjp records ``label`` when backward visits its node."""
    def forward(*arrays):
        def vjp(g):
            visits.append(label)
            return g
        return sum(arrays), tuple(vjp for _ in arrays)
    return forward


def _diamond_chain(visits, steps):
    """x -> a1 -> (b1, c1) -> d1 -> a2 -> ... : a chain of diamonds, every op recording."""
    x = tg.tensor([1.0, 2.0], requires_grad=True, name="x")
    node = x
    made = {}
    for t in range(steps):
        a = tg.apply("a", _recording(visits, f"a{t}"), node)
        b = tg.apply("b", _recording(visits, f"b{t}"), a)
        c = tg.apply("c", _recording(visits, f"c{t}"), a)
        node = tg.apply("d", _recording(visits, f"d{t}"), b, c)
        made.update({f"a{t}": a, f"b{t}": b, f"c{t}": c, f"d{t}": node})
    return x, node.sum(), made


def test_sweep_order_is_the_order_backward_calls_the_gradient_rules_in():
    visits = []
    x, root, made = _diamond_chain(visits, 5)
    label_of = {id(n): k for k, n in made.items()}
    predicted = [label_of[id(n)] for n in tg.sweep_order(root) if id(n) in label_of]
    root.backward()
    # the op "d" calls its one recording vjp once per parent; count each node once
    assert predicted == list(dict.fromkeys(visits))
    assert x.grad is not None


def test_sweep_order_starts_at_the_root_ends_at_leaves_and_changes_nothing():
    visits = []
    x, root, _ = _diamond_chain(visits, 3)
    order = tg.sweep_order(root)
    assert order[0] is root and order[-1] is x
    assert visits == [] and x.grad is None
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:              # every node after each of its users
        for p in node.parents:
            assert position[id(p)] > position[id(node)]
    root.backward()                 # the graph is intact
    np.testing.assert_allclose(x.grad, [2.0 ** 3] * 2)


def test_sweep_order_of_a_tensor_that_needs_no_grad_is_an_error():
    with pytest.raises(tg.BackwardError, match="sweep_order"):
        tg.sweep_order(tg.tensor([1.0]).sum())


def test_sweep_order_of_a_freed_graph_is_an_error():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    y.backward()
    with pytest.raises(tg.GraphFreedError):
        tg.sweep_order(y)


def test_a_sweep_refused_midway_leaves_no_count_in_the_nodes_it_had_counted():
    # the sweep counts each node's users in the node as it walks; refused at a stale node
    # after counting the shared node ``a``, it must clear that count, or the next sweep
    # through ``a`` starts from it and releases ``a`` never (its gradient is lost)
    x = tg.tensor([1.0, 2.0], requires_grad=True, name="x")
    w = tg.tensor([3.0, 4.0], requires_grad=True, name="w")
    a = x * x
    stale = a * w
    with tg.no_grad():
        w += 1.0          # changed in place after ``stale`` read it
    with pytest.raises(tg.StaleGraphError):
        (stale.sum() + a.sum()).backward()
    assert x.grad is None and w.grad is None
    (a * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 6.0 * np.array([1.0, 2.0]))
