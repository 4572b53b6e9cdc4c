"""Every engine operation that can fail leaves all state bit for bit as it was.

backward, every optimizer's step, gradient clipping, gradcheck and the two load_state_dicts
either do all their work or raise having changed nothing: parameters, ``.grad``, optimizer
state and step count, version counters, and the graph itself (a backward that raised can run
again once the cause is fixed, and counts every gradient once).
"""

import sys

import numpy as np
import pytest

import tinygraph as tg

engine = sys.modules["tinygraph.tensor"]      # the module (tg.tensor is the function)


class _Net(tg.Module):
    def __init__(self):
        self.W = tg.Parameter(np.array([[1.0, 2.0], [3.0, 4.0]]), name="W")
        self.b = tg.Parameter(np.array([0.5, -0.5]), name="b")


class _FailingGradient(np.ndarray):
    """A float gradient array that raises on arithmetic: an update failing part-way (as
    running out of memory in the middle of a step would)."""

    def __array_ufunc__(self, *args, **kwargs):
        raise MemoryError("simulated: out of memory in the middle of the update")


def _failing(shape):
    return np.zeros(shape).view(_FailingGradient)


def _optimizers():
    """Every optimizer class of tg.optim."""
    return sorted((cls for cls in vars(tg.optim).values()
                   if isinstance(cls, type) and issubclass(cls, tg.optim.Optimizer)
                   and cls is not tg.optim.Optimizer), key=lambda cls: cls.__name__)


def _make_optimizer(cls, params):
    if cls is tg.optim.SGD:
        return cls(params, lr=0.1, momentum=0.9)
    return cls(params, lr=0.1)


def _snapshot(tensors, optimizer=None):
    """Everything a failed operation must not change, as bytes."""
    def array(a):
        return None if a is None else (type(a).__name__, a.dtype.str, a.shape, np.asarray(a).tobytes())

    state = {"clock": engine._clock}
    for i, t in enumerate(tensors):
        g = t.grad.data if isinstance(t.grad, tg.Tensor) else t.grad
        state[i] = (array(t.data), array(g), t._version,
                    getattr(t, "_shared", None) and t._shared[0], t._vjps is None)
    if optimizer is not None:
        state["steps"] = optimizer.steps
        state["optimizer"] = [{k: array(v) for k, v in s.items()} for s in optimizer.state]
    return state


def _setup(cls=tg.optim.Adam):
    """A model after one optimizer step, with gradients and a graph built since."""
    net = _Net()
    opt = _make_optimizer(cls, net.parameters())
    x = tg.tensor([[1.0, -1.0]])
    ((x @ net.W + net.b) ** 2).sum().backward()
    opt.step()
    ((x @ net.W + net.b) ** 2).sum().backward()     # fresh gradients for the next step
    return net, opt, x


# ------------------------------------------------------------------ backward (issue 8)

def test_backward_with_a_wrong_shaped_grad_raises_naming_the_shapes_and_fills_no_grad():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tg.tensor([1.0, 2.0], requires_grad=True)
    a.grad = np.zeros(3)
    a.data = np.array([1.0, 2.0])       # its data replaced by another shape, its .grad left over
    loss = (a * 2 + b * 3).sum()
    with pytest.raises(tg.ShapeError, match=r"\.grad.*shape \(3,\).*shape \(2,\)"):
        loss.backward()
    assert b.grad is None
    a.grad = None
    loss.backward()                 # the graph was not freed, and nothing is counted twice
    assert a.grad.tolist() == [2.0, 2.0] and b.grad.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("bad, match", [
    (np.zeros(2, dtype=int), r"dtype float64, got int64"),
    ([0.0, 0.0], r"expected an array.*got list"),
    (np.zeros(2, dtype=np.float32), r"dtype float64, got float32"),
    (np.zeros(3), r"shape \(2,\), got \(3,\)"),
    (np.zeros((1, 2)), r"shape \(2,\), got \(1, 2\)")],
    ids=["integer array", "list", "float32 array", "longer", "broadcastable"])
def test_a_grad_set_by_hand_of_another_dtype_or_shape_is_refused_as_pytorch_refuses_it(bad, match):
    """``p.grad = ...`` kept anything until a backward or an optimizer step refused it, and a
    float32 gradient of a float64 leaf (or the other way) was kept: every backward then added
    into it in its own dtype, so the .grad stayed float32 (rounded) without a word.  Refused at
    the assignment now, naming the tensor, with its .grad left as it was."""
    a = tg.tensor([1.0, 2.0], requires_grad=True, name="a")
    a.grad = np.array([5.0, 5.0])
    with pytest.raises((tg.DTypeError, tg.ShapeError), match=r"tensor 'a'\.grad: .*" + match):
        a.grad = bad
    assert a.grad.tolist() == [5.0, 5.0]
    (a * 2).sum().backward()
    assert a.grad.dtype == np.float64 and a.grad.tolist() == [7.0, 7.0]


def test_backward_refuses_a_grad_left_of_another_dtype_when_the_data_was_replaced():
    # the float64 .grad of a leaf whose data became float32 took every later gradient in float64
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    a.grad = np.array([5.0, 5.0])
    a.data = np.array([1.0, 2.0], dtype=np.float32)
    loss = (a * 2).sum()
    with pytest.raises(tg.DTypeError, match=r"\.grad .* has dtype float64, but the tensor has "
                                            r"dtype float32"):
        loss.backward()
    assert a.grad.dtype == np.float64 and a.grad.tolist() == [5.0, 5.0]
    a.grad = None
    loss.backward()
    assert a.grad.dtype == np.float32 and a.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("bad", [np.broadcast_to(0.0, (2,))], ids=["read-only array"])
def test_backward_refuses_an_existing_grad_it_cannot_add_into_before_changing_anything(bad):
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([1.0, 2.0], requires_grad=True)
    b.grad = np.array([5.0, 5.0])
    a.grad = bad
    with pytest.raises(tg.DTypeError, match=r"\.grad"):
        (a * b).sum().backward()
    assert b.grad.tolist() == [5.0, 5.0]


def test_backward_that_raises_midway_frees_no_part_of_the_graph():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    loss = tg.sqrt(x).sum()        # d sqrt / dx is inf at 0
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError):
        loss.backward()
    assert x.grad is None
    with np.errstate(divide="ignore"):
        loss.backward()            # runs again: no GraphFreedError
    assert x.grad[1] == 0.25


# ------------------------------------------------------------------ gradcheck (issue 7)

def test_gradcheck_restores_its_inputs_when_fn_raises_on_a_perturbed_input():
    x = tg.tensor([1.0, 4.0], requires_grad=True)

    def fn(t):
        if t.data[0] != 1.0:
            raise RuntimeError("fn refuses this input")
        return (t * t).sum()

    with pytest.raises(RuntimeError, match="refuses"):
        tg.gradcheck(fn, [x])
    assert x.data.tolist() == [1.0, 4.0]


# ------------------------------------------------------------------ optimizers

@pytest.mark.parametrize("cls", _optimizers(), ids=lambda cls: cls.__name__)
def test_an_optimizer_step_failing_part_way_restores_every_parameter_and_its_state(cls):
    net, opt, _ = _setup(cls)
    params = net.parameters()
    params[1].grad = _failing(params[1].shape)      # the first parameter is updated, then this fails
    before = _snapshot(params, opt)
    with pytest.raises(MemoryError, match="simulated"):
        opt.step()
    assert _snapshot(params, opt) == before


@pytest.mark.parametrize("cls", _optimizers(), ids=lambda cls: cls.__name__)
def test_after_a_failed_step_the_next_step_equals_a_step_that_never_failed(cls):
    net, opt, _ = _setup(cls)
    twin, twin_opt, _ = _setup(cls)
    grad_b = net.b.grad
    net.b.grad = _failing(net.b.shape)
    with pytest.raises(MemoryError):
        opt.step()
    net.b.grad = grad_b
    opt.step()
    twin_opt.step()
    for p, q in zip(net.parameters(), twin.parameters()):
        assert p.data.tobytes() == q.data.tobytes()
    assert opt.state_dict().keys() == twin_opt.state_dict().keys()
    for key, value in opt.state_dict().items():
        assert value.tobytes() == twin_opt.state_dict()[key].tobytes()


def test_a_step_on_a_read_only_parameter_raises_before_updating_any():
    net, opt, _ = _setup()
    net.b.data = np.broadcast_to(np.float64(1.0), (2,))
    params = net.parameters()
    before = _snapshot(params, opt)
    with pytest.raises(tg.ConfigError, match="read-only"):
        opt.step()
    assert _snapshot(params, opt) == before


# ------------------------------------------------------------------ every failing operation
# each: (net, opt, x) -> the call that must fail (what it needs is prepared before the snapshot)

def _stale_backward(net, opt, x):
    loss = ((x @ net.W) ** 2).sum()
    with tg.no_grad():
        view = net.W.T
        view *= 1.0            # an in-place change through a view (same values, new version)
    return loss.backward


def _bad_grad_backward(net, opt, x):
    net.b.data = np.array([0.5])       # its data replaced by another shape: its .grad (2,) left over
    return ((x @ net.W + net.b) ** 2).sum().backward


def _bad_grad_create_graph(net, opt, x):
    net.W.data = np.ones((2, 1))       # likewise: its .grad (2, 2) left over
    loss = ((x @ net.W + net.b) ** 2).sum()
    return lambda: loss.backward(create_graph=True)


def _anomaly_backward(net, opt, x):
    loss = (tg.sqrt(net.b * 0.0) + x @ net.W).sum()

    def run():
        with tg.detect_anomaly():
            loss.backward()
    return run


def _failing_gradcheck(net, opt, x):
    first = net.W.data[0, 0]      # fn raises on the first perturbed input
    return lambda: tg.gradcheck(lambda W: (x @ W) ** 3 if W.data[0, 0] == first else 1 / 0, [net.W])


def _wrong_gradcheck(net, opt, x):
    wrong = tg.defvjp(lambda a: (a * a, (lambda g: g,)), lambda g, out, a: (g,))
    return lambda: tg.gradcheck(lambda W: tg.apply("wrong", wrong, W), [net.W])


def _clip_read_only(net, opt, x):
    net.b.grad = np.broadcast_to(np.float64(1e6), (2,))
    return lambda: tg.clip_grad_norm(net.parameters(), 1.0)


def _step_part_way(net, opt, x):
    net.b.grad = _failing(net.b.shape)
    return opt.step


def _load_module_wrong_shape(net, opt, x):
    return lambda: net.load_state_dict({"W": np.zeros((2, 2)), "b": np.zeros(3)})


def _load_module_missing(net, opt, x):
    return lambda: net.load_state_dict({"W": np.zeros((2, 2))})


def _load_optimizer_wrong_shape(net, opt, x):
    state = opt.state_dict()
    state[sorted(key for key in state if key != "steps")[-1]] = np.zeros(5)
    return lambda: opt.load_state_dict(state)


def _load_optimizer_bad_steps(net, opt, x):
    return lambda: opt.load_state_dict(dict(opt.state_dict(), steps=np.array(-1)))


FAILURES = {
    "backward through a stale graph": (_stale_backward, tg.StaleGraphError),
    "backward with a wrong-shaped .grad": (_bad_grad_backward, tg.ShapeError),
    "backward(create_graph) with a wrong-shaped .grad": (_bad_grad_create_graph, tg.ShapeError),
    "backward meeting an anomaly": (_anomaly_backward, tg.AnomalyError),
    "gradcheck whose fn raises": (_failing_gradcheck, ZeroDivisionError),
    "gradcheck that finds a wrong gradient": (_wrong_gradcheck, tg.GradcheckError),
    "clip_grad_norm of a read-only gradient": (_clip_read_only, tg.ConfigError),
    "an optimizer step failing part-way": (_step_part_way, MemoryError),
    "Module.load_state_dict with a wrong shape": (_load_module_wrong_shape, tg.CheckpointError),
    "Module.load_state_dict missing a name": (_load_module_missing, tg.CheckpointError),
    "Optimizer.load_state_dict with a wrong shape": (_load_optimizer_wrong_shape, tg.CheckpointError),
    "Optimizer.load_state_dict with a bad step count": (_load_optimizer_bad_steps, tg.CheckpointError),
}


@pytest.mark.parametrize("cls", _optimizers(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failing_engine_operation_leaves_all_state_bit_for_bit_as_it_was(name, cls):
    prepare, error = FAILURES[name]
    net, opt, x = _setup(cls)
    call = prepare(net, opt, x)
    params = net.parameters()
    before = _snapshot(params, opt)
    with pytest.raises(error):
        call()
    assert _snapshot(params, opt) == before


class _FailingCopy:
    """A state value that passes every check but cannot be copied (as running out of memory
    while copying the last of many large parameters would)."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        if copy:
            raise MemoryError("simulated: out of memory while copying")
        return self.values


def test_module_load_state_dict_failing_while_copying_changes_no_parameter():
    net = _Net()
    params = net.parameters()
    before = _snapshot(params)
    state = {"W": np.zeros((2, 2)), "b": _FailingCopy(np.zeros(2))}
    with pytest.raises(MemoryError, match="simulated"):
        net.load_state_dict(state)
    assert _snapshot(params) == before
