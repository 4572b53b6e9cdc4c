"""In-place parameter updates as in PyTorch, and the version counter that refuses a stale graph."""

import numpy as np
import pytest

import rnn
import tinygraph as tg


def test_in_place_sgd_under_no_grad_trains_a_quadratic_to_its_minimum():
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((8, 3)), rng.standard_normal(8)
    w = tg.Parameter(np.zeros(3), name="w")
    for _ in range(500):
        w.grad = None
        residual = tg.tensor(A) @ w - b
        (residual * residual).sum().backward()
        with tg.no_grad():
            w -= 0.02 * w.grad
    assert isinstance(w, tg.Parameter) and w.requires_grad
    np.testing.assert_allclose(w.data, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-10)


def test_every_in_place_operator_keeps_the_same_parameter_and_array():
    p = tg.Parameter(np.array([2.0, 4.0]))
    data = p.data
    with tg.no_grad():
        p += 1.0
        p *= tg.tensor([2.0, 0.5])
        p -= np.array([1.0, 1.0])
        p /= 2
    assert type(p) is tg.Parameter and p.data is data
    assert p.data.tolist() == [2.5, 0.75]


def test_power_and_matmul_in_place_update_the_parameter_itself():
    # without __ipow__ / __imatmul__ Python rebinds: `p **= 2` under no_grad made p a new plain
    # Tensor (requires_grad False) and left the model's Parameter and its views unchanged
    p = tg.Parameter(np.array([[1.0, 2.0], [3.0, 4.0]]), name="W")
    data, view = p.data, p.T
    with tg.no_grad():
        p **= 2
        p @= np.array([[0.0, 1.0], [1.0, 0.0]])
    assert type(p) is tg.Parameter and p.requires_grad and p.data is data
    assert p.data.tolist() == [[4.0, 1.0], [16.0, 9.0]] and view.data.tolist() == [[4.0, 16.0], [1.0, 9.0]]
    y = (p * p).sum()
    with tg.no_grad():
        p **= 1.0
    with pytest.raises(tg.StaleGraphError, match="'W' was changed in place"):
        y.backward()
    with pytest.raises(tg.InPlaceError, match=r"'W' requires grad.*`x = x \*\* \.\.\.`"):
        p **= 2
    with tg.no_grad(), pytest.raises(tg.ShapeError, match=r"in-place @= .*'W' of shape \(2, 2\)"):
        p @= np.ones((2, 3))                # numpy's `a @= b` keeps a's shape too
    assert p.data.tolist() == [[4.0, 1.0], [16.0, 9.0]]


def test_in_place_operator_on_a_tensor_that_requires_grad_outside_no_grad_raises():
    p = tg.Parameter(np.ones(2), name="W")
    with pytest.raises(tg.InPlaceError, match="'W' requires grad.*tg.no_grad"):
        p -= 0.1
    assert p.data.tolist() == [1.0, 1.0]


def test_in_place_operator_adding_a_gradient_to_a_constant_outside_no_grad_raises():
    x, w = tg.tensor([1.0]), tg.Parameter([2.0])
    with pytest.raises(tg.InPlaceError, match="gradient would be lost"):
        x += w


def test_in_place_on_a_node_backward_still_needs_raises_even_under_no_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    with tg.no_grad(), pytest.raises(tg.InPlaceError, match="output of 'exp'"):
        y += 1


def test_in_place_shape_or_dtype_errors_name_the_operator_and_change_nothing():
    p = tg.Parameter(np.ones(2))
    with tg.no_grad():
        with pytest.raises(tg.ShapeError, match=r"in-place \+= .*shape \(2,\)"):
            p += np.ones(3)
        ids = tg.tensor(np.array([1, 2]))
        with pytest.raises(tg.DTypeError, match="in-place"):
            ids *= 0.5
    assert p.data.tolist() == [1.0, 1.0] and ids.data.tolist() == [1, 2]


def test_optimizer_step_between_forward_and_backward_raises_naming_the_parameter():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    xs = np.array([0, 1, 2])
    opt = tg.optim.SGD([model.W], 0.1)
    model.loss(xs, xs).backward()
    loss = model.loss(xs, xs)        # built with the weights before the step
    opt.step()
    with pytest.raises(tg.StaleGraphError, match="Parameter 'W' was changed in place"):
        loss.backward()


def test_in_place_update_or_load_state_dict_after_forward_makes_backward_refuse():
    w = tg.Parameter(np.ones(2), name="w")
    loss = (w * w).sum()
    with tg.no_grad():
        w *= 3
    with pytest.raises(tg.StaleGraphError, match="'w'"):
        loss.backward()
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    loss = model.loss(np.array([0, 1]), np.array([1, 2]))
    model.load_state_dict(model.state_dict())
    with pytest.raises(tg.StaleGraphError, match="Parameter '[UWVbc]'"):
        loss.backward()
    assert all(p.grad is None for p in model.parameters())


def test_a_stale_parameter_without_a_name_is_named_by_its_shape():
    class Net(tg.Module):
        def __init__(self):
            super().__init__()
            self.W = tg.Parameter(np.ones((2, 3)))

    net = Net()
    loss = (net.W * net.W).sum()
    net.load_state_dict({"W": np.zeros((2, 3))})
    with pytest.raises(tg.StaleGraphError, match=r"Parameter of shape \(2, 3\) was changed"):
        loss.backward()


def test_a_constant_changed_in_place_after_use_is_refused_too():
    x = tg.tensor([1.0, 2.0])
    w = tg.Parameter([3.0, 4.0])
    loss = (x * w).sum()        # w's gradient is x: saved by the node
    x += 1
    with pytest.raises(tg.StaleGraphError):
        loss.backward()


def test_training_loop_forward_backward_step_runs_without_version_errors():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    opt = tg.optim.Adam(model.parameters(), 0.01)
    xs = np.array([0, 1, 2, 1])
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = model.loss(xs, xs)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_writing_data_directly_bypasses_the_version_counter_as_in_pytorch():
    w = tg.Parameter(np.ones(2))
    loss = (w * w).sum()
    w.data = np.full(2, 5.0)
    loss.backward()
    assert w.grad.tolist() == [2.0, 2.0]      # the graph's saved values, not the new ones
