"""A tensor, its views and its detached copies share one version counter (as in PyTorch): an
in-place change through any of them makes backward through a graph that saved the old
values raise StaleGraphError, never return a gradient for values the graph did not use."""

import copy

import numpy as np
import pytest

import tinygraph as tg

ALIASES = {
    "detach": lambda q: q.detach(),
    "slice": lambda q: q[0:2],
    ".T": lambda q: q.T,
    "reshape(-1)": lambda q: q.reshape(-1),
    "view of a view": lambda q: q.reshape(2, 1)[:, 0],
    "detach of a slice": lambda q: q[0:2].detach(),
}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_an_in_place_change_through_an_alias_made_under_no_grad_makes_the_old_graph_stale(alias):
    q = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (q * q).sum()
    with tg.no_grad():
        v = ALIASES[alias](q)
        v += 100
    assert q.data.tolist() == [101.0, 102.0]     # the alias shares q's memory
    with pytest.raises(tg.StaleGraphError, match="changed in place"):
        y.backward()
    assert q.grad is None


def test_a_detached_copy_changed_in_place_outside_no_grad_makes_the_old_graph_stale():
    q = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (q * q).sum()
    d = q.detach()
    d += 10
    with pytest.raises(tg.StaleGraphError):
        y.backward()


def test_a_graph_built_from_a_detached_copy_is_stale_after_its_base_is_stepped():
    p = tg.Parameter(np.array([1.0, 2.0]), name="p")
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    y = (p.detach() * w).sum()
    p.grad = np.ones(2)
    tg.optim.SGD([p], lr=0.1).step()
    with pytest.raises(tg.StaleGraphError):
        y.backward()


def test_changing_the_output_of_a_node_through_a_view_makes_its_own_rule_stale():
    x = tg.tensor([0.5, -0.25], requires_grad=True)
    y = tg.tanh(x)                  # tanh's rule uses its output y
    with tg.no_grad():
        v = y[0:1]
        v += 1.0
    with pytest.raises(tg.StaleGraphError):
        y.sum().backward()


def test_a_graph_built_after_the_change_through_an_alias_runs_with_the_new_values():
    q = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        v = q.T
        v += 1
    (q * q).sum().backward()
    assert q.grad.tolist() == [4.0, 6.0]


def test_tensors_that_only_share_values_do_not_share_a_version_counter():
    q = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (q * q).sum()
    copy = tg.tensor(q.data)          # a copy, not a view
    copy += 5
    y.backward()
    assert q.grad.tolist() == [2.0, 4.0]


def test_an_op_whose_result_is_its_input_array_shares_its_version_counter():
    identity = tg.defvjp(lambda a: (a, (lambda g: g,)), lambda g, out, a: (g,))
    q = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (q * q).sum()
    with tg.no_grad():
        same = tg.apply("identity", identity, q)
        same += 1
    with pytest.raises(tg.StaleGraphError):
        y.backward()


def test_copy_copy_of_a_parameter_is_a_copy_and_leaves_its_graphs_exact():
    # copy.copy copied the slots: the copy shared W's memory but not its version counter, so
    # `c += 1` under no_grad changed W without a word and backward gave 2 * (W + 1) = [4, 6]
    # instead of 2W = [2, 4].  Now a leaf's copy holds its own array, as numpy's copy.copy.
    W = tg.Parameter([1.0, 2.0], name="W")
    y = (W * W).sum()
    c = copy.copy(W)
    assert type(c) is tg.Parameter and c.name == "W" and c.requires_grad
    with tg.no_grad():
        c += 1
    y.backward()
    np.testing.assert_array_equal(W.grad, [2.0, 4.0])
    np.testing.assert_array_equal(W.data, [1.0, 2.0])
    np.testing.assert_array_equal(c.data, [2.0, 3.0])
    g = copy.copy(W)
    W.grad += 1                              # the copy's .grad is its own too
    np.testing.assert_array_equal(g.grad, [2.0, 4.0])


def test_copy_copy_of_a_node_shares_its_memory_and_its_version_counter():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    k = copy.copy(x * 3)                     # a twin of the node: the gradient reaches x
    (k * k).sum().backward()
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])
    z = tg.tensor([1.0, 2.0]) * 2            # a node of constants, saved by the mul below
    a = tg.tensor([1.0, 1.0], requires_grad=True)
    y = (a * z).sum()
    twin = copy.copy(z)
    twin += 1                                # changes z's memory: the graph must know
    with pytest.raises(tg.StaleGraphError, match="changed in place"):
        y.backward()


def test_copy_copy_keeps_the_attributes_of_a_subclass():
    class Tagged(tg.Parameter):
        pass
    t = Tagged([1.0, 2.0], name="x")
    t.tag = "kept"
    c = copy.copy(t)
    assert type(c) is Tagged and c.tag == "kept" and c.name == "x"
    assert not np.shares_memory(c.data, t.data)


@pytest.mark.parametrize("slots", [("tag", "__own"), "tag"], ids=["tuple", "one str"])
def test_copy_and_deepcopy_keep_the_slots_of_a_subclass(slots):
    # __copy__ copied Tensor's own slots only, and __deepcopy__ read a str __slots__ letter by
    # letter: a slotted subclass's attribute was lost on the copy (AttributeError), where
    # Python's own copy (before __copy__ and __deepcopy__ were written) kept it
    class Tagged(tg.Parameter):
        __slots__ = slots

        def own(self):
            return self.__own if isinstance(slots, tuple) else None

        def set_own(self, value):
            if isinstance(slots, tuple):
                self.__own = value
    t = Tagged([1.0, 2.0], name="x")
    t.tag = "kept"
    t.set_own("private")
    for c in (copy.copy(t), copy.deepcopy(t)):
        assert type(c) is Tagged and c.tag == "kept" and c.name == "x" and c.requires_grad
        assert c.own() == t.own()
        assert not np.shares_memory(c.data, t.data)


# A write through .data, .numpy(), np.asarray(t) or np.copyto bumps no version (as PyTorch's
# .data), so outside detect_anomaly the graph back-propagates from the new values (w.data[...]
# = 0 between forward and backward gave d sum(w^2)/dw = 0, not 2 w). A graph built inside
# detect_anomaly keeps digests of the arrays its rules read, and backward raises naming the op
# and the tensor instead.
WRITES = {
    ".data[...] = 0": lambda w: w.data.__setitem__(Ellipsis, 0.0),
    "np.copyto(.numpy(), ...)": lambda w: np.copyto(w.numpy(), [5.0, 6.0, 7.0]),
    "np.asarray(t)[0] = 9": lambda w: np.asarray(w).__setitem__(0, 9.0),
    "a view of .data": lambda w: w.data[1:].__imul__(3.0),
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("create_graph", [False, True])
def test_a_write_that_bumps_no_version_is_caught_by_detect_anomaly(write, create_graph):
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]), name="w")
    with tg.detect_anomaly():
        loss = tg.sum(tg.tanh(w * w))
    WRITES[write](w)
    with pytest.raises(tg.AnomalyError, match=r"'mul'.*Parameter 'w' of shape \(3,\).*changed in place"):
        tg.grad(loss, [w], create_graph=create_graph)
    with pytest.raises(tg.AnomalyError, match="changed in place"):
        loss.backward()
    assert w.grad is None                  # nothing changed: the sweep raised before any .grad


def test_detect_anomaly_catches_a_write_into_a_nodes_output_and_a_replaced_data_in_create_graph():
    w = tg.Parameter(np.array([1.0, 2.0]), name="w")
    with tg.detect_anomaly():
        h = tg.tanh(w)
    h.data[0] = 0.0                        # tanh's rule reads its output
    with pytest.raises(tg.AnomalyError, match="'tanh'.*its output.*changed in place"):
        h.backward(np.ones(2))
    with tg.detect_anomaly():
        loss = tg.sum(tg.tanh(w))
    w.data = np.array([5.0, 5.0])          # replaced: a create_graph rule reads w's new array
    with pytest.raises(tg.AnomalyError, match="'tanh'.*Parameter 'w'.*replaced"):
        tg.grad(loss, [w], create_graph=True)
    g, = tg.grad(loss, [w])                # backward reads the arrays the node saved: exact
    np.testing.assert_allclose(g, 1 - np.tanh([1.0, 2.0]) ** 2, rtol=1e-15)


def test_outside_detect_anomaly_a_write_through_data_is_documented_as_unchecked():
    # the default, as PyTorch's .data: no version bump, the gradient of the new values
    w = tg.Parameter(np.array([1.0, 2.0, 3.0]))
    loss = tg.sum(w * w)
    w.data[...] = 0.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, [0.0, 0.0, 0.0])
    assert "detect_anomaly" in tg.Tensor.data.__doc__
    assert ".numpy()" in tg.detect_anomaly.__doc__
