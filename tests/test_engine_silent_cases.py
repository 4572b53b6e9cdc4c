"""Cases where the engine answered without a word but not as the math or PyTorch does: a NaN
among the entries of a max, a caller's ``np.errstate(all="raise")``, ``train()`` inside an
evaluation block, the sign of a zero gradient on either side of a size threshold.  Oracles:
the math written out (and, when torch is installed, torch's values and gradients)."""

import warnings

import numpy as np
import pytest

import tinygraph as tg

# ---------------------------------------------------------------- NaN among a max's entries

NAN_ROWS = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 5.0]])


@pytest.mark.parametrize("op", ["max", "min"])
def test_a_nan_result_of_max_and_min_takes_the_gradient_at_its_nan_entry(op):
    # max of a row holding NaN is NaN, and torch.max()/torch.max(dim) give that row's gradient
    # to the NaN entry; the engine gave NaN to every entry of the row (NaN == NaN is False, so
    # no entry counted as the extreme: 0 / 0), and warned
    x = tg.tensor(NAN_ROWS, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(x, op)(axis=1).backward(np.array([2.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 2.0, 0.0],
                                           [0.0, 2.0, 2.0] if op == "max" else [4.0, 0.0, 0.0]])
    x = tg.tensor(NAN_ROWS, requires_grad=True)
    getattr(x, op)().backward(3.0)
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])


def test_several_nan_entries_share_a_max_gradient_equally_as_ties_do():
    x = tg.tensor([np.nan, 1.0, np.nan], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.5, 0.0, 0.5])


def test_a_nan_max_gives_its_gradient_to_the_nan_entry_under_create_graph_too():
    x = tg.tensor(NAN_ROWS, requires_grad=True)
    (g,) = tg.grad(x.max(axis=1).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, [[0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])


@pytest.mark.parametrize("op", ["amax", "amin"])
def test_amax_of_a_row_with_nan_gives_nan_to_the_whole_row_as_torch_without_a_warning(op):
    # torch.amax's backward is g / count * mask: no entry equals NaN, so 0/0 * 0 in that row
    x = tg.tensor(NAN_ROWS, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(tg, op)(x, axis=1).backward(np.ones(2))
    assert np.isnan(x.grad[0]).all()
    np.testing.assert_array_equal(x.grad[1], [0.0, 0.5, 0.5] if op == "amax" else [1.0, 0.0, 0.0])


def test_max_and_amax_with_nan_agree_with_torch():
    torch = pytest.importorskip("torch", reason="torch is optional; the tests above write the "
                                                "expected gradients out")
    cases = {"max()": (lambda t: t.max(), lambda t: t.max()),
             "min()": (lambda t: t.min(), lambda t: t.min()),
             "max(dim=0)": (lambda t: t.max(axis=0), lambda t: t.max(dim=0).values),
             "amax(dim=1)": (lambda t: tg.amax(t, axis=1), lambda t: torch.amax(t, dim=1)),
             "amin(dim=1)": (lambda t: tg.amin(t, axis=1), lambda t: torch.amin(t, dim=1))}
    x = np.array([[1.0, np.nan, 3.0], [2.0, 0.5, 7.0]])      # no ties: torch.max(dim) picks one
    from conftest import agree_with_torch
    agree_with_torch(torch, cases, x, rtol=0, atol=0)      # equal, NaN where torch has NaN


# ---------------------------------------------------------------- a caller's errstate(all="raise")


@pytest.mark.parametrize("name, call, shapes", [
    ("div", lambda a, z: a / z, r"\(2,\), \(2,\)"),              # two tensors: the fast path
    ("log", lambda a, z: tg.log(z), r"\(2,\)"),                    # one tensor: the fast path
    ("exp", lambda a, z: (a * 1000.0).exp(), r"\(2,\)"),
    ("div", lambda a, z: a / 0.0, r"\(2,\), \(\)"),                # a constant: the general path
])
def test_a_floating_point_error_of_the_callers_errstate_names_the_op_shapes_and_step(name, call,
                                                                                     shapes):
    # numpy's bare "divide by zero encountered in divide", without the op or the time step,
    # came out of the ops of one or two tensors; still a FloatingPointError, as the caller asked
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    z = tg.tensor([0.0, 0.0])
    with np.errstate(all="raise"), tg.scope("t=3"):
        with pytest.raises(FloatingPointError, match=rf"^{name}: .* \(input shapes {shapes}\) "
                                                     r"in scope 't=3'$"):
            call(a, z)


def test_a_floating_point_error_in_backward_names_the_op_its_shapes_and_step():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.scope("t=2"):
        y = tg.sqrt(x).sum()
    with np.errstate(all="raise"), pytest.raises(
            FloatingPointError, match=r"^backward through 'sqrt' in scope 't=2' \(input shapes "
                                      r"\(2,\)\): divide by zero"):
        y.backward()
    assert x.grad is None
    with np.errstate(divide="ignore"):
        y.backward()       # nothing was changed or freed: it runs again
    np.testing.assert_array_equal(x.grad, [np.inf, 0.5])


def test_an_in_place_update_refused_by_the_callers_errstate_changes_nothing():
    # numpy raises after its loop has written out=: the parameter was left inf, its version
    # unchanged (a graph built before would back-propagate from the new values)
    p = tg.Parameter(np.array([1.0, 2.0]), name="p")
    y = (p * p).sum()
    with tg.no_grad(), np.errstate(all="raise"), pytest.raises(
            FloatingPointError, match=r"in-place /= on a Parameter 'p' of shape \(2,\), dtype "
                                      r"float64, with shape \(2,\): divide by zero"):
        p /= np.array([0.0, 1.0])
    np.testing.assert_array_equal(p.data, [1.0, 2.0])
    y.backward()             # still the graph's values
    np.testing.assert_array_equal(p.grad, [2.0, 4.0])
    with tg.no_grad(), np.errstate(all="raise"):
        p /= 2.0
    np.testing.assert_array_equal(p.data, [0.5, 1.0])


# ---------------------------------------------------------------- train() inside an evaluation block


class _Net(tg.Module):
    def __init__(self):
        self.drop = tg.Dropout(0.5)
        self.w = tg.Parameter(np.ones(3), name="w")


def test_train_called_inside_an_evaluation_block_is_what_training_reads_as_after_torchs_train():
    # the block made every module read as evaluating in this thread; an explicit train()
    # inside it set the module's own mode, but training still read False: silently ignored
    from tinygraph.module import evaluation
    net = _Net().eval()
    with evaluation([m for _, m in net.named_modules()]):
        assert not net.training and not net.drop.training
        net.train()
        assert net.training and net.drop.training
        net.drop.eval()
        assert net.training and not net.drop.training
    assert net.training and not net.drop.training      # what the user set stays set


def test_an_evaluation_block_of_one_module_holds_its_whole_tree_as_eval_reaches_it():
    # evaluation(model) raised "'_Net' object is not iterable"
    from tinygraph.module import evaluation
    net = _Net()
    with evaluation(net):
        assert not net.training and not net.drop.training
        assert net.drop(tg.tensor(np.ones(4))).data.tolist() == [1.0] * 4
    assert net.training and net.drop.training


def test_an_evaluation_block_still_holds_the_modules_no_one_set_and_blocks_after_the_call():
    from tinygraph.module import evaluation
    a, b = _Net(), _Net()
    with evaluation([a, b]):
        a.train()
        assert a.training and not b.training        # b is still held by the block
        with evaluation([a]):                       # a new block holds a again
            assert not a.training
        assert a.training
    assert a.training and b.training


# ---------------------------------------------------------------- -0.0 where a mask keeps g

_KEEPING = {   # x = [-1, 0.5, 2] repeated: entry 1 or 2 is kept by each rule (the others are 0)
    "relu": lambda t: tg.relu(t),
    "clamp(0, 1)": lambda t: tg.clamp(t, 0.0, 1.0),
    "where(x > 0, x, 0)": lambda t: tg.where(t.data > 0, t, 0.0),
    "maximum(x, 0)": lambda t: tg.maximum(t, 0.0),
    "minimum(x, 1)": lambda t: tg.minimum(t, 1.0),
    "max over rows": lambda t: t.reshape(-1, 3).max(axis=1),
    "min over rows": lambda t: t.reshape(-1, 3).min(axis=1),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(_KEEPING))
def test_a_minus_zero_gradient_where_the_mask_keeps_it_stays_minus_zero_at_every_size(name, dtype):
    # np.where (at most 6,144 entries) and torch keep g's -0.0 where the mask passes g; the
    # product path above that added 0.0 to turn -g * 0 into +0.0, which made the kept -0.0
    # +0.0 too: the bits of the gradient depended on the array's size
    fn = _KEEPING[name]
    signs = []
    for size in (3, 9000):
        x = tg.tensor(np.resize(np.array([-1.0, 0.5, 2.0], dtype), size), requires_grad=True)
        y = fn(x)
        g = tg.grad(y, x, grad=np.full(y.shape, -0.0, dtype))
        assert not g.any()
        signs.append(np.signbit(g[:3]))
    np.testing.assert_array_equal(signs[1], signs[0])
    assert signs[0].any()        # some -0.0 was kept


@pytest.mark.parametrize("size", [3, 9000])
def test_masked_gradients_at_both_sizes_equal_the_selection_bit_for_bit(size):
    # g of every sign, inf and NaN: 0 where the mask stops it, g itself where it passes it,
    # g / 2 at a tie of maximum (torch's rules, which select)
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size).astype(float)
    g = rng.normal(size=size)
    g[::7], g[1::7], g[2::7] = np.inf, np.nan, -0.0
    t = tg.tensor(x, requires_grad=True)
    expect = np.where(x > 0, g, 0.0)
    np.testing.assert_array_equal(np.signbit(tg.grad(tg.relu(t), t, grad=g)), np.signbit(expect))
    np.testing.assert_array_equal(tg.grad(tg.relu(t), t, grad=g), expect)
    other = tg.tensor(np.ones(size), requires_grad=True)
    ga, gb = tg.grad(tg.maximum(t, other), [t, other], grad=g)
    half = g * 0.5
    np.testing.assert_array_equal(ga, np.where(x > 1, g, np.where(x == 1, half, 0.0)))
    np.testing.assert_array_equal(gb, np.where(x < 1, g, np.where(x == 1, half, 0.0)))
    assert not np.signbit(ga[x < 1]).any() and not np.signbit(gb[x > 1]).any()


# ---------------------------------------------------------------- PyTorch's transpose(dim0, dim1)


@pytest.mark.parametrize("axes", [(0, 1), (-2, -1), (0, -1), (-2, 1)])
def test_torchs_transpose_of_two_axes_of_a_matrix_is_refused_where_numpy_would_keep_it(axes):
    # numpy's transpose(0, 1) of a 2-D array is the identity, torch's swaps the axes: a square
    # W.transpose(0, 1) came back as W, the shapes fitting every later op
    w = tg.tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"transpose\(.*\) keeps a 2-D tensor as it is.*"
                                            r"t\.T or t\.swapaxes"):
        w.transpose(*axes)
    with pytest.raises(tg.ShapeError, match="PyTorch's swaps"):
        tg.transpose(w, *axes)
    np.testing.assert_array_equal(w.transpose(1, 0).data, [[0.0, 2.0], [1.0, 3.0]])   # both agree
    np.testing.assert_array_equal(w.transpose(axes).data, w.data)      # numpy's tuple: explicit
    np.testing.assert_array_equal(np.transpose(w, axes).data, w.data)
    np.testing.assert_array_equal(w.swapaxes(*axes).data, w.data.T)


def test_two_axes_of_a_three_axis_tensor_point_to_swapaxes():
    x = tg.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(tg.ShapeError, match=r"transpose\(0, 2\) names 2 axes of a tensor of shape "
                                            r"\(2, 3, 4\).*t\.swapaxes\(0, 2\)"):
        x.transpose(0, 2)
    assert x.transpose(2, 0, 1).shape == (4, 2, 3)


# ---------------------------------------------------------------- x[index] = value


def test_item_assignment_under_no_grad_writes_in_place_and_makes_an_older_graph_refuse_backward():
    # PyTorch's `with torch.no_grad(): w[0] = 0` raised "'Parameter' object does not support
    # item assignment"; it follows the rules of +=
    w = tg.Parameter(np.arange(4.0), name="w")
    data = w.data
    y = (w * w).sum()
    with tg.no_grad():
        w[0] = 10.0
        w[np.array([2, 3])] = tg.tensor([7.0, 8.0])
        w[w.data > 9] -= 1.0                  # Python's getitem, -=, setitem
    assert w.data is data
    np.testing.assert_array_equal(w.data, [9.0, 1.0, 7.0, 8.0])
    with pytest.raises(tg.StaleGraphError, match="'w' was changed in place"):
        y.backward()
    (w * w).sum().backward()                  # a new graph: 2 w
    np.testing.assert_array_equal(w.grad, [18.0, 2.0, 14.0, 16.0])


def test_item_assignment_that_would_lose_a_gradient_is_refused_and_changes_nothing():
    w = tg.Parameter(np.ones(3), name="w")
    with pytest.raises(tg.InPlaceError, match=r"'w' requires grad.*tg\.no_grad\(\).*tg\.where"):
        w[0] = 5.0
    x = tg.tensor(np.zeros(3))
    with pytest.raises(tg.InPlaceError, match="the right-hand side requires grad"):
        x[1] = w[0] * 2
    with pytest.raises(tg.ShapeError, match=r"assignment .* shape \(3,\).*with shape \(4,\)"):
        x[:] = np.ones(4)
    with pytest.raises(tg.BadIndexError, match="index 5 is out of bounds"):
        x[5] = 1.0
    np.testing.assert_array_equal(w.data, np.ones(3))
    np.testing.assert_array_equal(x.data, np.zeros(3))
    x[x.data == 0] = 2.0                      # a tensor that does not require grad: as numpy
    x[[0, 0]] = [3.0, 4.0]                    # numpy's rule: the last of a repeated index
    np.testing.assert_array_equal(x.data, [4.0, 2.0, 2.0])


def test_item_assignment_refused_by_the_callers_errstate_changes_nothing():
    x = tg.tensor(np.zeros(2, np.float32))
    with np.errstate(all="raise"), pytest.raises(FloatingPointError, match="assignment.*float32"):
        x[0] = 1e300                          # overflows float32 in the cast
    np.testing.assert_array_equal(x.data, [0.0, 0.0])


# ---------------------------------------------------------------- item() and backward(gradient=)


def test_item_of_several_entries_is_a_shape_error_naming_the_shape():
    # it was numpy's bare "can only convert an array of size 1 to a Python scalar"
    with pytest.raises(tg.ShapeError, match=r"item: only a one-element tensor .* shape \(2,\)"):
        tg.tensor([1.0, 2.0]).item()
    assert tg.tensor([[2.5]]).item() == 2.5 and type(tg.tensor(3).item()) is int


def test_backward_takes_torchs_gradient_keyword():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=np.array([1.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])
    with pytest.raises(tg.ConfigError, match="grad= or its alias gradient=, not both"):
        (x * 3).backward(np.ones(2), gradient=np.ones(2))
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])


# ---------------------------------------------------------------- var and std: torch's keywords


@pytest.mark.parametrize("op", ["var", "std"])
def test_var_and_std_take_torchs_correction_and_unbiased_keywords(op):
    # they raised TypeError; torch's default (unbiased) is not taken over: ddof=0 stays the default
    # (with dim= alone it is refused: tests/test_engine_two_habits.py)
    x0 = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    centred = x0 - x0.mean(axis=1, keepdims=True)
    for kwargs, ddof in (({"unbiased": True}, 1), ({"unbiased": False}, 0), ({"correction": 2}, 2),
                         ({"ddof": 0}, 0)):
        x = tg.tensor(x0, requires_grad=True)
        out = getattr(x, op)(dim=1, **kwargs)
        v = (centred ** 2).sum(axis=1) / (3 - ddof)
        np.testing.assert_allclose(out.data, v if op == "var" else np.sqrt(v), rtol=1e-14)
        out.backward(np.ones(2))
        d_var = 2 * centred / (3 - ddof)
        np.testing.assert_allclose(x.grad, d_var if op == "var" else d_var / (2 * np.sqrt(v))[:, None],
                                   rtol=1e-13)
    with pytest.raises(tg.ConfigError, match="one of ddof=, correction= and unbiased="):
        getattr(tg, op)(tg.tensor(x0), ddof=1, unbiased=True)


def test_var_and_std_with_torchs_keywords_agree_with_torch():
    torch = pytest.importorskip("torch", reason="torch is optional; the formulas above are the oracle")
    from conftest import agree_with_torch
    cases = {"var unbiased": (lambda t: t.var(dim=0, unbiased=True), lambda t: t.var(dim=0, unbiased=True)),
             "std correction": (lambda t: tg.std(t, dim=1, correction=0, keepdim=True),
                                lambda t: torch.std(t, dim=1, correction=0, keepdim=True))}
    agree_with_torch(torch, cases, np.random.default_rng(3).normal(size=(4, 3)), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- model(x) runs forward


def test_a_module_with_forward_is_called_as_pytorchs_and_one_without_is_not_callable():
    # `model(x)` raised "'Net' object is not callable"
    class Net(tg.Module):
        def __init__(self):
            self.w = tg.Parameter(np.array([2.0, 3.0]), name="w")

        def forward(self, x, scale=1.0):
            return x * self.w * scale

    class Shifted(Net):
        def forward(self, x):
            return x + self.w

    class Plain(tg.Module):
        forward = None

    net = Net()
    y = net(tg.tensor([1.0, 1.0]), scale=2.0)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [4.0, 6.0])
    np.testing.assert_array_equal(net.w.grad, [2.0, 2.0])
    np.testing.assert_array_equal(Shifted()(np.zeros(2)).data, [2.0, 3.0])
    assert not callable(Plain()) and not callable(tg.Module())
    assert tg.Dropout(0.0)(tg.tensor([1.0])).data == 1.0      # its own __call__ is kept


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_an_optimizer_step_refused_by_the_callers_errstate_names_the_parameter_and_changes_nothing(
        name):
    # the step was put back, but the error was numpy's bare "overflow encountered in multiply"
    a, b = tg.Parameter(np.ones(2), name="a"), tg.Parameter(np.ones(2), name="b")
    opt = getattr(tg.optim, name)([a, b], lr=1e300 if name == "SGD" else 0.1)
    a.grad, b.grad = np.ones(2), np.array([1e200 if name != "SGD" else 1e10, 1.0])
    with np.errstate(all="raise"), pytest.raises(
            FloatingPointError, match=rf"^{name}\.step: parameter 1 'b' of shape \(2,\): overflow "
                                      r".*\(nothing was changed\)$"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(2))
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert opt.steps == 0


def test_max_with_pytorchs_dim_refuses_the_pair_habits_that_would_read_rows():
    """PyTorch's x.max(dim=1) is a (values, indices) pair; here dim= is an alias of axis= (the
    values).  Its habits read rows of ours without a word: x.max(dim=1)[0] was the first row's
    maximum (5.0, where PyTorch gives [5, 7]) and `vals, idx = x.max(dim=1)` of two rows gave
    vals = 5, idx = 7.  They are refused, naming .values and argmax; every op still works."""
    x = tg.tensor(np.array([[1.0, 5.0, 3.0], [2.0, 0.0, 7.0]]), requires_grad=True)
    for op, want in (("max", [5.0, 7.0]), ("min", [1.0, 0.0])):
        r = getattr(x, op)(dim=1)
        np.testing.assert_array_equal(r.data, want)
        with pytest.raises(tg.ConfigError, match=rf"{op}\(dim=\) gives the values only .*"
                                                 rf"\.values .* x\.arg{op}\(axis=d\)"):
            r[0]
        with pytest.raises(tg.ConfigError, match="unpacking"):
            vals, idx = r
        with pytest.raises(tg.ConfigError, match="no .indices"):
            r.indices
        np.testing.assert_array_equal(getattr(tg, op)(x, dim=1).values.data, want)
        values = r.values
        assert values is r and type(values) is tg.Tensor
        assert values[1].item() == want[1]          # a plain tensor from then on
    x.max(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [0, 0, 1]])
    # numpy's spellings keep numpy's meaning: rows of the values
    assert x.max(axis=1)[0].item() == 5.0 and x.max(1)[1].item() == 7.0
    assert type(x.max(dim=1, keepdim=True) * 2) is tg.Tensor
    # under create_graph the rule runs on the node: a second derivative goes through
    y = tg.tensor(np.array([[1.0, 2.0], [4.0, 3.0]]), requires_grad=True)
    (g,) = tg.grad((y.max(dim=1) ** 2).sum(), [y], create_graph=True)
    g.sum().backward()
    np.testing.assert_array_equal(y.grad, [[0, 2], [2, 0]])
