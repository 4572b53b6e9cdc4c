"""Calls that a numpy user and a PyTorch user write alike but mean differently, where the engine
took one reading without a word: each now follows SPEC's (numpy's) reading where both agree on
it and refuses, naming what to write, the form whose two readings differ.  Oracles: numpy and
the formulas written out (and torch's values, when torch is installed)."""

import re

import numpy as np
import pytest

import tinygraph as tg

X3 = np.arange(24.0).reshape(2, 3, 4) - 11.5

# ---------------------------------------------------------------- norm: the second argument is an order


@pytest.mark.parametrize("order", [1, 0, np.inf, -1, "nuc", True])
def test_norm_refuses_an_order_other_than_two_rather_than_reading_it_as_an_axis(order):
    # x.norm(1) is the 1-norm in PyTorch (p) and in numpy (ord); it was the 2-norm over axis 1
    with pytest.raises(tg.ConfigError, match=r"norm: .*the order \(numpy's ord=, PyTorch's p=\), "
                                             r"never the axis.*t\.norm\(axis=a\)"):
        tg.tensor(X3).norm(order)


def test_norm_of_order_two_over_several_axes_is_refused_as_the_two_habits_differ():
    # numpy's ord=2 of a matrix is its largest singular value, torch's p=2 the Frobenius norm;
    # x.norm(2) of a 3-axis x was the 2-norm over axis 2 (shape (2, 3)), neither of them
    for call in (lambda t: t.norm(2), lambda t: tg.norm(t[0], 2), lambda t: t.norm(p=2, axis=(0, 1))):
        with pytest.raises(tg.ConfigError, match="largest singular value in numpy and the Frobenius"):
            call(tg.tensor(X3))


@pytest.mark.parametrize("call, axis", [(lambda t: t.norm(2, axis=1), 1),
                                         (lambda t: t.norm(p=2, dim=-1, keepdim=True), -1),
                                         (lambda t: t.norm("fro"), None),
                                         (lambda t: t.norm(None, (0, 2), True), (0, 2))])
def test_norm_of_order_two_over_one_axis_or_fro_is_the_2_norm_with_its_gradient(call, axis):
    t = tg.tensor(X3, requires_grad=True)
    out = call(t)
    want = np.sqrt((X3 ** 2).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(out.data, want.reshape(out.shape), rtol=1e-15)
    out.sum().backward()
    np.testing.assert_allclose(t.grad, X3 / want, rtol=1e-14)


def test_norm_of_a_vector_takes_order_two_and_refuses_two_orders():
    t = tg.tensor(X3[0, 0], requires_grad=True)
    t.norm(2).backward()
    np.testing.assert_allclose(t.grad, X3[0, 0] / np.linalg.norm(X3[0, 0]), rtol=1e-15)
    with pytest.raises(tg.ConfigError, match="ord= or its alias p=, not both"):
        tg.tensor(X3).norm(2, p=2, axis=0)


def test_norm_of_order_two_over_one_axis_agrees_with_torch():
    torch = pytest.importorskip("torch", reason="torch is optional; the formulas above are the oracle")
    from conftest import agree_with_torch
    cases = {"p=2 dim=1": (lambda t: t.norm(2, dim=1), lambda t: t.norm(2, dim=1)),
             "fro": (lambda t: t.norm("fro"), lambda t: t.norm("fro")),
             "p=2 keepdim": (lambda t: t.norm(p=2, dim=0, keepdim=True),
                             lambda t: t.norm(p=2, dim=0, keepdim=True))}
    agree_with_torch(torch, cases, X3, rtol=1e-14, atol=0)


# ---------------------------------------------------------------- max(x, other)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_of_a_tensor_and_another_tensor_point_to_maximum_and_minimum(op):
    # torch.max(x, torch.tensor(1)) is the elementwise maximum with 1; x.max(tg.tensor(1)) was
    # the maximum over axis 1 ([5, 7]), a 0-d integer tensor being an index
    x = tg.tensor(np.array([[1.0, 5.0, 3.0], [2.0, 0.0, 7.0]]))
    for call in (lambda: getattr(x, op)(tg.tensor(1)), lambda: getattr(tg, op)(x, x),
                 lambda: getattr(x, op)(dim=tg.tensor(0))):
        with pytest.raises(tg.ConfigError, match=rf"PyTorch's {op}\(a, b\) is elementwise.*"
                                                 rf"tg\.{op}imum\(x, other\)"):
            call()
    np.testing.assert_array_equal(getattr(tg, f"{op}imum")(x, tg.tensor(1.0)).data,
                                  getattr(np, f"{op}imum")(x.data, 1.0))
    assert getattr(x, op)(np.int64(1)).shape == (2,)      # numpy's integer axis as before


# ---------------------------------------------------------------- var and std with dim=


@pytest.mark.parametrize("op", ["var", "std"])
def test_var_and_std_with_pytorchs_dim_alone_are_refused_as_torch_would_divide_by_n_minus_1(op):
    # torch's x.var(dim=1) divides by n - 1; here it divided by n (numpy's ddof=0) without a word
    x = tg.tensor(np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]]))
    for call in (lambda: getattr(x, op)(dim=1), lambda: getattr(tg, op)(x, dim=0, keepdim=True)):
        with pytest.raises(tg.ConfigError, match=rf"{op}\(dim=\) without correction=: PyTorch's "
                                                 r".*n - 1.*correction=1.*ddof=0.*axis="):
            call()
    centred = x.data - x.data.mean(axis=1, keepdims=True)
    for kwargs, n in (({"correction": 1}, 2), ({"ddof": 0}, 3), ({"unbiased": True}, 2)):
        v = (centred ** 2).sum(axis=1) / n
        np.testing.assert_allclose(getattr(x, op)(dim=1, **kwargs).data,
                                   v if op == "var" else np.sqrt(v), rtol=1e-15)
    v = (centred ** 2).sum(axis=1) / 3      # numpy's spellings as before: ddof=0
    for out in (getattr(x, op)(1), getattr(x, op)(axis=1), getattr(x, op)(axis=1, keepdim=False)):
        np.testing.assert_allclose(out.data, v if op == "var" else np.sqrt(v), rtol=1e-15)
    with pytest.raises(tg.ConfigError, match="one of ddof=, correction= and unbiased="):
        getattr(x, op)(dim=1, ddof=0, correction=1)


# ---------------------------------------------------------------- split: numpy's parts, PyTorch's sizes

X26 = np.arange(12.0).reshape(2, 6)


def test_split_with_pytorchs_dim_is_refused_naming_numpys_split_points_for_its_sizes():
    # torch.split(x, 2, dim=1) is three parts of 2 and torch.split(x, [1, 5], dim=1) parts of 1
    # and 5; tg.split reads 2 as two parts and [1, 5] as split points (three parts)
    for sizes, points, widths in ((2, [2, 4], [2, 2, 2]), ([1, 5], [1], [1, 5]), (4, [4], [4, 2])):
        with pytest.raises(tg.ConfigError, match=rf"dim= is PyTorch's.*part sizes: for PyTorch's .* "
                                                 rf"write tg\.split\(x, {re.escape(str(points))}, axis=1\)"):
            tg.split(tg.tensor(X26), sizes, dim=1)
        got = tg.split(tg.tensor(X26), points, axis=1)       # what the message says: torch's parts
        assert [p.shape[1] for p in got] == widths


def test_split_points_that_decrease_are_refused_as_they_read_as_pytorchs_sizes():
    # torch.split(x, [4, 2], 1) is parts of 4 and 2; tg.split(x, [4, 2], axis=1) gave
    # x[:, 0:4], x[:, 4:2] (empty) and x[:, 2:6], overlapping the first, without a word
    with pytest.raises(tg.ConfigError, match=r"split points \[4, 2\] decrease .*overlapping.*"
                                             r"tg\.split\(x, \[4\], axis=1\)"):
        tg.split(tg.tensor(X26), [4, 2], axis=1)
    with pytest.raises(tg.ConfigError, match="do not fit the 6 entries along axis 1"):
        tg.split(tg.tensor(X26), [5, 3, 3], axis=-1)
    # numpy's split points as numpy reads them, negative ones and ones past the end included
    for points in ([1, 3], [1, -1], [-4, 5], [2, 2], [5, 9], []):
        got = tg.split(tg.tensor(X26), points, axis=1)
        want = np.array_split(X26, points, axis=1)
        assert len(got) == len(want)
        for part, ref in zip(got, want):
            np.testing.assert_array_equal(part.data, ref)


def test_numpys_split_points_give_pytorchs_parts_with_their_gradients():
    torch = pytest.importorskip("torch", reason="torch is optional; numpy's array_split is the oracle")
    from conftest import agree_with_torch
    cases = {"sizes 2": (lambda t: tg.concat([p * (i + 1) for i, p in enumerate(tg.split(t, [2, 4], axis=1))], axis=1),
                         lambda t: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(t, 2, dim=1))], dim=1)),
             "sizes 1, 5": (lambda t: tg.concat([p * (i + 1) for i, p in enumerate(tg.split(t, [1], axis=1))], axis=1),
                            lambda t: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(t, [1, 5], dim=1))], dim=1))}
    agree_with_torch(torch, cases, X26, rtol=0, atol=0)


# ---------------------------------------------------------------- pad: a flat pair


def test_pad_reads_a_flat_pair_as_numpys_pad_width_as_spec_says():
    # SPEC: tg.pad takes numpy's pad_width, whose flat pair (before, after) pads every axis
    # (F.pad(x, (1, 2)) would pad the last axis alone: PyTorch's spelling is ((0, 0), (1, 2)))
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for widths in ((1, 2), ((1, 2),), ((0, 0), (1, 2)), 1, [(1, 0), (0, 2)]):
        np.testing.assert_array_equal(tg.pad(x, widths, value=-1.0).data,
                                      np.pad(x.data, widths, constant_values=-1.0))
    assert tg.pad(x, (1, 2)).shape == (5, 6)
    tg.pad(x, (1, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
    np.testing.assert_array_equal(np.pad(x, (1, 2)).data, np.pad(x.data, (1, 2)))   # numpy's call


# ---------------------------------------------------------------- take without an axis


def test_take_without_an_axis_of_a_matrix_is_refused_as_numpy_and_torch_flatten():
    # np.take(a, [1, 4]) and torch.take(a, [1, 4]) read a (2, 3) a flattened: [1, 4]; tg.take
    # took rows (axis 0) and [4] was out of range, [0, 1] gave the whole matrix
    w = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(tg.ConfigError, match=r"take: give axis= for an input of shape \(2, 3\).*"
                                             r"axis=0 for rows .* axis=None for the flattened"):
        tg.take(w, [0, 1])
    np.testing.assert_array_equal(tg.take(w, [1, 4], axis=None).data, np.take(w.data, [1, 4]))
    np.testing.assert_array_equal(np.take(w, [1, 4]).data, [1.0, 4.0])      # numpy's own call
    rows = tg.take(w, [1, 1], axis=0)
    rows.sum().backward()
    np.testing.assert_array_equal(w.grad, [[0, 0, 0], [2, 2, 2]])
    v = tg.tensor(np.arange(3.0))           # a vector reads alike: its axis may be left out
    np.testing.assert_array_equal(tg.take(v, [2, 0]).data, [2.0, 0.0])
    assert tg.take(tg.tensor(5.0), [0, 0]).data.tolist() == [5.0, 5.0]


# ---------------------------------------------------------------- max(d): numpy's rows, positionally


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_with_a_positional_axis_are_numpys_rows_that_index_as_numpys(op):
    # SPEC's t.min(axis): a positional axis is numpy's, whose result indexes as any array (a
    # random graph of ops indexed x.max(0) by a repeated index); only PyTorch's dim= is refused
    # its pair habits (test_engine_silent_cases)
    logits = tg.tensor(np.array([[1.0, 5.0, 3.0], [2.0, 0.0, 7.0]]), requires_grad=True)
    want = np.array([5.0, 7.0] if op == "max" else [1.0, 0.0])
    out = getattr(logits, op)(1)
    assert type(out) is tg.Tensor
    np.testing.assert_array_equal(out[[1, 1, 0]].data, want[[1, 1, 0]])
    a, b = getattr(tg, op)(logits, -1)
    assert (a.item(), b.item()) == tuple(want)
    getattr(logits, op)(0)[np.array([0, 0, 2])].sum().backward()
    assert logits.grad.sum() == 3.0


# ---------------------------------------------------------------- optimizers' positional settings


def test_optimizer_settings_past_pytorchs_order_are_refused_by_position():
    # torch.optim.Adagrad(ps, 0.1, 0.01) sets lr_decay; tg.optim.Adagrad(ps, 0.1, 0.01) set eps.
    # torch.optim.SGD(ps, 0.1, 0.9, 1e-4) sets dampening; tg's set weight_decay
    params = [tg.Parameter(np.ones(2))]
    with pytest.raises(tg.ConfigError, match=r"Adagrad: 1 more positional argument \[0\.01\]: "
                                             r"PyTorch's .* takes lr_decay third.*eps= and weight_decay="):
        tg.optim.Adagrad(params, 0.1, 0.01)
    with pytest.raises(tg.ConfigError, match=r"SGD: .* takes dampening fourth.*weight_decay= by keyword"):
        tg.optim.SGD(params, 0.1, 0.9, 1e-4)
    assert tg.optim.Adagrad(params, 0.1, eps=1e-8).param_groups[0]["eps"] == 1e-8
    assert tg.optim.SGD(params, 0.1, 0.9, weight_decay=1e-4).param_groups[0]["weight_decay"] == 1e-4
    adam = tg.optim.Adam(params, 0.1, (0.8, 0.9), 1e-6, 0.5)     # torch's order: taken as it is
    assert adam.param_groups[0]["eps"] == 1e-6 and adam.param_groups[0]["weight_decay"] == 0.5


# ---------------------------------------------------------------- dropout's third argument


def test_dropout_refuses_a_bool_seed_which_pytorch_reads_as_training():
    # F.dropout(x, 0.5, False) is the identity (training=False); tg.dropout(x, 0.5, False) took
    # False as the seed 0 and dropped half the entries
    x = tg.tensor(np.ones(6), requires_grad=True)
    for flag in (False, True, np.bool_(False)):
        with pytest.raises(tg.ConfigError, match=rf"seed={flag!r} is a bool: PyTorch's F.dropout\(x, "
                                                 rf"p, training\).*train={bool(flag)}"):
            tg.dropout(x, 0.5, flag)
    assert tg.dropout(x, 0.5, train=False) is x
    kept = tg.dropout(x, 0.5, 0).data
    assert set(kept.tolist()) <= {0.0, 2.0} and np.array_equal(kept, tg.dropout(x, 0.5, seed=0).data)


# ---------------------------------------------------------------- the second argument of tensor and Parameter


def test_tensor_refuses_a_dtype_given_where_requires_grad_goes():
    # torch.tensor(data, torch.float32) sets the dtype; tg.tensor(data, np.float32) made a float64
    # tensor that requires grad (np.float32 is truthy)
    for second in (np.float32, "float32", np.dtype(np.float32), 1):
        with pytest.raises(tg.ConfigError, match=r"requires_grad must be True or False.*dtype second: "
                                                 r"write dtype="):
            tg.tensor(np.ones(2), second)
    t = tg.tensor(np.ones(2), dtype=np.float32)
    assert t.dtype == np.float32 and not t.requires_grad
    assert tg.tensor(np.ones(2), np.True_).requires_grad


def test_parameter_refuses_a_bool_name_which_pytorch_reads_as_requires_grad():
    # nn.Parameter(w, False) is frozen; tg.Parameter(w, False) was trainable, named False
    for flag in (False, True):
        with pytest.raises(tg.ConfigError, match=rf"name={flag!r} is a bool: PyTorch's "
                                                 r"nn\.Parameter\(data, requires_grad\).*p\.requires_grad = False"):
            tg.Parameter(np.ones(2), flag)
    p = tg.Parameter(np.ones(2), "w")
    p.requires_grad = False
    assert p.name == "w" and not p.requires_grad


# ---------------------------------------------------------------- losses' third argument


@pytest.mark.parametrize("loss, says", [
    (lambda x, w: tg.cross_entropy(x, np.array([0, 1]), w), "takes weights third: write weight="),
    (lambda x, w: tg.nll_loss(x, np.array([0, 1]), w), "which tinygraph's nll_loss does not take"),
    (lambda x, w: tg.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), w), "does not take"),
    (lambda x, w: tg.mse_loss(x, np.zeros((2, 3)), w), r"ndarray \(a word, not an array\)")])
def test_a_weight_array_where_reduction_goes_is_a_clear_error(loss, says):
    # F.cross_entropy(x, y, w) takes class weights third; here a bare numpy ValueError ("The truth
    # value of an array with more than one element is ambiguous") came out of `reduction in (...)`
    with pytest.raises(tg.ConfigError, match=rf"reduction must be one of .* got .*{says}"):
        loss(tg.tensor(np.zeros((2, 3))), np.ones(3))
    with pytest.raises(tg.ConfigError, match=r"got 'avg'$"):
        loss(tg.tensor(np.zeros((2, 3))), "avg")


# ---------------------------------------------------------------- keepdims where numpy puts the dtype


def test_a_dtype_in_keepdims_place_is_refused_not_read_as_true():
    # numpy's x.sum(0, np.float32) sums in float32 to shape (3,); here np.float32 was read as
    # keepdims=True: shape (1, 3), float64, without a word
    x = tg.tensor(np.arange(6.0).reshape(2, 3))
    for call in (lambda: x.sum(0, np.float32), lambda: x.mean(1, "float64"), lambda: x.max(0, np.float32),
                 lambda: x.var(0, 0, np.float64), lambda: tg.logsumexp(x, 0, np.float32),
                 lambda: x.norm(None, 0, np.float32), lambda: x.argmax(0, np.int32),
                 lambda: x.sum(dim=0, keepdim="yes")):
        with pytest.raises(tg.ConfigError, match=r"keepdims must be True or False, got .*dtype second"):
            call()
    for call in (lambda: x.var(0, np.float32), lambda: x.std(1, "float64")):   # ddof's place
        with pytest.raises(tg.ConfigError, match=r"ddof must be a number, got .*dtype second"):
            call()
    assert x.sum(0, True).shape == (1, 3) and x.mean(1, np.True_).shape == (2, 1)
    assert x.sum(0, keepdims=1).shape == (1, 3) and x.max(axis=1, keepdims=0).shape == (2,)  # numpy's ints
    with pytest.raises(tg.ConfigError, match=r"keepdims must be True or False, got 2"):
        x.sum(0, 2)
    assert np.sum(x, axis=0, keepdims=True).shape == (1, 3)      # numpy's own call


def test_numpy_norm_of_a_tensor_takes_the_orders_tg_norm_takes():
    # np.linalg.norm(t, 2) of a vector, over one axis, and 'fro' are the 2-norm, as t.norm(2)
    # is since 783a486; np.linalg.norm refused every ord (a TypeError naming t.norm(axis=a))
    v, m = tg.tensor(X3[0, 0], requires_grad=True), tg.tensor(X3[0], requires_grad=True)
    for out, want in ((np.linalg.norm(v, 2), np.linalg.norm(X3[0, 0], 2)),
                      (np.linalg.norm(m, 2.0, axis=1), np.linalg.norm(X3[0], 2, axis=1)),
                      (np.linalg.norm(m, "fro"), np.linalg.norm(X3[0], "fro"))):
        assert isinstance(out, tg.Tensor) and out.op == "norm"
        np.testing.assert_allclose(out.data, want, rtol=1e-15)
    np.linalg.norm(m, "fro").backward()
    np.testing.assert_allclose(m.grad, X3[0] / np.linalg.norm(X3[0]), rtol=1e-15)
    for order in (1, np.inf, "nuc"):        # other orders: refused, a TypeError as before
        with pytest.raises(TypeError, match=r"np.linalg.norm\(..., ord=.*t\.norm\(axis=a\)"):
            np.linalg.norm(m, order, axis=1)
    with pytest.raises(TypeError, match="np.linalg.norm"):      # numpy's: the largest singular value
        np.linalg.norm(m, 2)
