"""Edge cases where the engine once differed from PyTorch without a word, found by a
differential fuzz against torch (branch huntZ).  Each oracle is written out here (torch's
rule as a formula), so the tests run without torch."""

import numpy as np
import pytest

import tinygraph as tg


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_an_all_ignored_batch_has_a_nan_mean_but_a_zero_gradient_as_torch(weighted, smoothing):
    # torch: the mean over no kept example is 0 / 0 = NaN, but an ignored example's gradient
    # is 0.  The engine's gradient was NaN everywhere, so one batch of padding made every
    # parameter NaN at the next step.
    logits = tg.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    kw = {"weight": np.array([1.0, 2.0, 0.5, 1.0])} if weighted else {}
    loss = tg.cross_entropy(logits, np.array([1, 1, 1]), ignore_index=1,
                            label_smoothing=smoothing, **kw)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(logits.grad, np.zeros((3, 4)))


def test_nll_loss_of_an_all_ignored_batch_has_a_zero_gradient():
    log_probs = tg.tensor(np.log(np.full((2, 3), 1 / 3)), requires_grad=True)
    loss = tg.nll_loss(log_probs, np.array([2, 2]), ignore_index=2)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(log_probs.grad, np.zeros((2, 3)))


def test_weights_summing_to_zero_keep_ignored_rows_at_zero_and_kept_ones_nan_as_torch():
    # weight 0 for every kept target: torch's mean is 0 / 0 and the kept rows' gradient NaN
    # (w / 0 per row), the ignored row's 0
    logits = tg.tensor(np.zeros((3, 4)), requires_grad=True)
    loss = tg.cross_entropy(logits, np.array([1, 1, 2]), ignore_index=1,
                            weight=np.array([1.0, 0.0, 0.0, 1.0]))
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(logits.grad[:2], np.zeros((2, 4)))
    assert np.isnan(logits.grad[2]).all()


def test_an_all_ignored_batch_leaves_sgd_parameters_finite():
    W = tg.Parameter(np.eye(3), name="W")
    opt = tg.optim.SGD([W], lr=0.1)
    loss = tg.cross_entropy(tg.tensor(np.ones((2, 3))) @ W, np.array([0, 0]), ignore_index=0)
    loss.backward()
    opt.step()
    np.testing.assert_array_equal(W.data, np.eye(3))


def test_maximum_and_minimum_pass_a_nan_results_gradient_to_both_inputs_as_torch():
    # torch's rule: an input's share is zeroed only where it is the smaller (for maximum) or
    # larger (for minimum), halved at a tie; NaN compares neither way, so both get all of g.
    # Both got 0: a NaN result's gradient vanished (seen with a given grad= of finite values).
    a = tg.tensor([np.nan, 1.0, np.nan, 2.0, 3.0], requires_grad=True)
    b = tg.tensor([1.0, np.nan, np.nan, 2.0, 0.0], requires_grad=True)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for op, a_share, b_share in ((tg.maximum, [1, 1, 1, 0.5, 1], [1, 1, 1, 0.5, 0]),
                                 (tg.minimum, [1, 1, 1, 0.5, 0], [1, 1, 1, 0.5, 1])):
        a.grad = b.grad = None
        op(a, b).backward(g)
        np.testing.assert_array_equal(a.grad, g * a_share)
        np.testing.assert_array_equal(b.grad, g * b_share)



def _hvp(fn, x, g, v):
    """(grad of sum(g * fn(x)), the derivative of that gradient along v) via create_graph."""
    t = tg.tensor(x, requires_grad=True)
    (first,) = tg.grad((fn(t) * g).sum(), [t], create_graph=True)
    (second,) = tg.grad((first * v).sum(), [t])
    return np.asarray(first.data), np.asarray(second)


def test_std_second_derivative_at_a_constant_row_is_zero_as_torch():
    # torch's std_backward masks grad / std to 0 where std == 0, so the first derivative and
    # its derivative are 0 on a constant row; the engine's second derivative there was
    # g / n (v - mean(v)) (it divided by 1 instead of masking): a number that is no derivative
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    g = np.array([0.7, -1.3])
    v = np.array([[0.3, -1.1, 2.0], [0.5, 0.25, -1.0]])
    first, second = _hvp(lambda t: t.std(axis=1, ddof=1), x, g, v)
    np.testing.assert_array_equal(first[0], 0.0)
    np.testing.assert_array_equal(second[0], 0.0)
    # the other row: d/dx of g (x - m) / ((n - 1) s) along v, written out
    r, vr = x[1], v[1]
    n, m = 3, x[1].mean()
    s = np.sqrt(((r - m) ** 2).sum() / (n - 1))
    dv = vr - vr.mean()
    ds = ((r - m) * dv).sum() / ((n - 1) * s)
    expected = g[1] * (dv / ((n - 1) * s) - (r - m) * ds / ((n - 1) * s * s))
    np.testing.assert_allclose(second[1], expected, rtol=1e-12, atol=1e-15)


def test_norm_second_derivative_at_zero_follows_its_zero_gradient():
    # the gradient x / |x| is taken as 0 at x = 0; its derivative there is taken as 0 too (it
    # was g v: the gradient divided by 1 instead of masked)
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    g = np.array([1.5, 2.0])
    v = np.array([[1.0, -2.0], [0.5, 1.0]])
    first, second = _hvp(lambda t: tg.norm(t, axis=1), x, g, v)
    np.testing.assert_array_equal(first[0], 0.0)
    np.testing.assert_array_equal(second[0], 0.0)
    r, vr = x[1], v[1]
    nr = np.linalg.norm(r)
    np.testing.assert_allclose(second[1], g[1] * (vr / nr - r * (r @ vr) / nr ** 3), rtol=1e-12)


def test_chunk_of_an_empty_axis_gives_that_many_empty_parts_as_torch():
    # torch.chunk(torch.zeros(0, 2), 3) is three (0, 2) tensors; the engine gave one
    x = tg.tensor(np.zeros((2, 0)), requires_grad=True)
    parts = tg.chunk(x, 3, axis=1)
    assert [p.shape for p in parts] == [(2, 0)] * 3
    assert [p.shape for p in tg.chunk(x, 1, axis=-1)] == [(2, 0)]
    tg.cat(parts, axis=1).sum().backward()
    assert x.grad.shape == (2, 0)


_SPECIAL = np.array([np.nan, -np.inf, -2.0, -0.0, 0.0, 3.0, np.inf])


def _value_and_grad(fn, x, g):
    t = tg.tensor(x, requires_grad=True)
    out = fn(t)
    out.backward(g)
    return out.data, t.grad


def test_relu_passes_the_gradient_at_nan_as_torch():
    # torch's threshold_backward zeroes g only where x <= 0, which NaN is not; the engine's
    # mask x > 0 zeroed it, so a NaN's gradient vanished instead of showing up upstream
    g = np.arange(1.0, 8.0)
    value, grad = _value_and_grad(tg.relu, _SPECIAL, g)
    np.testing.assert_array_equal(value, [np.nan, 0, 0, 0, 0, 3, np.inf])
    np.testing.assert_array_equal(grad, g * [1, 0, 0, 0, 0, 1, 1])


def test_sign_of_nan_is_zero_and_abs_gradient_at_nan_is_zero_as_torch():
    # torch.sign(nan) is 0, and abs's gradient is g * sign(x); the engine's sign(nan) was NaN
    # (numpy's), so abs's gradient at a NaN entry was NaN where torch's is 0
    g = np.arange(1.0, 8.0)
    value, grad = _value_and_grad(tg.sign, _SPECIAL, g)
    np.testing.assert_array_equal(value, [0, -1, -1, 0, 0, 1, 1])
    np.testing.assert_array_equal(grad, np.zeros(7))
    value, grad = _value_and_grad(tg.abs, _SPECIAL, g)
    np.testing.assert_array_equal(value, [np.nan, np.inf, 2, 0, 0, 3, np.inf])
    np.testing.assert_array_equal(grad, g * [0, -1, -1, 0, 0, 1, 1])



@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:divide by zero:RuntimeWarning")   # numpy's, on 0 dof
def test_var_with_ddof_at_least_n_has_the_signed_infinite_gradient_of_its_limit():
    # 2 (x - mean) / (n - ddof) as ddof rises to n: -inf below the mean, +inf above (torch
    # 2.13 gives +inf everywhere; the docstring of tg.var says the engine keeps the limit)
    for ddof in (3, 4):
        value, grad = _value_and_grad(lambda t: t.var(ddof=ddof), np.array([1.0, 2.0, 4.0]), 1.0)
        assert value == np.inf
        np.testing.assert_array_equal(grad, [-np.inf, -np.inf, np.inf])


# ---------------------------------------------------------------- the class axis of the losses


def _ambiguous():     # (N, C, C) logits, (N, C) targets: PyTorch's layout and ours both fit
    rng = np.random.default_rng(3)
    return rng.standard_normal((2, 3, 3)), rng.integers(0, 3, (2, 3))


@pytest.mark.parametrize("loss", [tg.cross_entropy, tg.nll_loss])
def test_a_loss_refuses_logits_whose_class_axis_could_be_last_or_pytorchs_axis_1(loss):
    # a PyTorch user's (N, C, d) logits with (N, d) targets gave, whenever C == d, a number
    # that read the classes on the last axis: another loss than torch's, without a word
    x, y = _ambiguous()
    with pytest.raises(tg.ShapeError, match=rf"{loss.__name__}: input of shape \(2, 3, 3\) with "
                       r"targets of shape \(2, 3\): this fits both .* axis=-1 .* axis=1"):
        loss(tg.tensor(x, requires_grad=True), y)
    with pytest.raises(tg.ShapeError, match=r"PyTorch's layout .* 4 classes on axis 1.*pass axis=1"):
        loss(np.zeros((2, 4, 3)), y)


def _picked(logp, y):     # -logp[n, y[n, d], d] averaged: the loss with the classes on axis 1
    n, d = np.indices(y.shape)
    return -logp[n, y, d].mean()


def test_the_class_axis_given_picks_the_reading():
    x, y = _ambiguous()
    logp_last = x - np.log(np.exp(x).sum(-1, keepdims=True))
    logp_one = x - np.log(np.exp(x).sum(1, keepdims=True))
    last = -np.take_along_axis(logp_last, y[..., None], -1).mean()
    for axis in (-1, 2):
        np.testing.assert_allclose(tg.cross_entropy(x, y, axis=axis).item(), last, rtol=1e-14)
        np.testing.assert_allclose(tg.nll_loss(logp_last, y, axis=axis).item(), last, rtol=1e-14)
    for axis in (1, -2):
        np.testing.assert_allclose(tg.cross_entropy(x, y, axis=axis).item(), _picked(logp_one, y),
                                   rtol=1e-14)
        np.testing.assert_allclose(tg.nll_loss(logp_one, y, axis=axis).item(), _picked(logp_one, y),
                                   rtol=1e-14)
    t = tg.tensor(x, requires_grad=True)
    tg.cross_entropy(t, y, reduction="none", axis=1, weight=[1.0, 2.0, 0.5]).sum().backward()
    assert tg.gradcheck(lambda t: tg.cross_entropy(t, y, axis=1, label_smoothing=0.1), [t])
    assert tg.gradcheck(lambda t: tg.nll_loss(t, y, reduction="sum", axis=1), [t])
    with pytest.raises(tg.ShapeError, match="cross_entropy: class axis 3 is out of range"):
        tg.cross_entropy(x, y, axis=3)
    # a (B, C) input is one reading whatever C is, as is (T, B, C) with B != C
    assert tg.cross_entropy(np.zeros((3, 3)), [0, 1, 2]).item() == pytest.approx(np.log(3))
    assert tg.cross_entropy(np.zeros((2, 4, 3)), np.zeros((2, 4), np.int64)).item() == \
        pytest.approx(np.log(3))


def test_the_class_axis_one_is_torchs_cross_entropy_and_nll_loss():
    torch = pytest.importorskip("torch", reason="torch is optional; the written-out loss is the oracle")
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, 3, 3, 2)), rng.integers(0, 3, (2, 3, 2))
    for reduction in ("mean", "sum", "none"):
        t, tt = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours = tg.cross_entropy(t, y, reduction=reduction, axis=1, weight=[1.0, 2.0, 0.5])
        ref = torch.nn.functional.cross_entropy(tt, torch.tensor(y), reduction=reduction,
                                                weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
        ours.backward(np.ones(ours.shape))
        ref.backward(torch.ones_like(ref))
        np.testing.assert_allclose(ours.data, ref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-12, atol=1e-15)
        ours = tg.nll_loss(tg.log_softmax(tg.tensor(x), 1), y, reduction=reduction, axis=1)
        ref = torch.nn.functional.nll_loss(torch.log_softmax(torch.tensor(x), 1), torch.tensor(y),
                                           reduction=reduction)
        np.testing.assert_allclose(ours.data, ref.numpy(), rtol=1e-12)


# torch 2.13's gradients with an infinite incoming gradient (inf * 0 is NaN): its masked rules
# select, so where the mask is 0 the gradient is 0, not NaN.  x = [-1, 0, 2], g = inf.
_INF_G = {
    "relu": (tg.relu, [0.0, 0.0, np.inf]),
    "clamp(0, 1)": (lambda t: tg.clamp(t, 0, 1), [0.0, np.inf, 0.0]),
    "clip(0, 1)": (lambda t: tg.clip(t, 0, 1), [0.0, np.inf, 0.0]),
    "maximum(x, 0.5)": (lambda t: tg.maximum(t, tg.tensor(0.5)), [0.0, 0.0, np.inf]),
    "minimum(x, 0.5)": (lambda t: tg.minimum(t, tg.tensor(0.5)), [np.inf, np.inf, 0.0]),
    "maximum(x, 0), a tie at 0": (lambda t: tg.maximum(t, tg.zeros(t.shape)), [0.0, np.inf, np.inf]),
    "where(x > 0, x, 0)": (lambda t: tg.where(t > 0, t, tg.zeros(t.shape)), [0.0, 0.0, np.inf]),
    "where(x > 0, x, 2x)": (lambda t: tg.where(t > 0, t, 2 * t), [np.inf] * 3),
    "floor": (tg.floor, [0.0] * 3), "ceil": (tg.ceil, [0.0] * 3), "trunc": (tg.trunc, [0.0] * 3),
    "round": (tg.round, [0.0] * 3), "sign": (tg.sign, [0.0] * 3),
    "abs (NaN at 0 in torch too)": (tg.abs, [-np.inf, np.nan, np.inf]),
}


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")     # abs's inf * 0, as torch
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", sorted(_INF_G))
def test_an_infinite_gradient_through_a_masked_rule_is_0_where_the_mask_is_as_torch(name,
                                                                                   create_graph):
    fn, expected = _INF_G[name]
    x = tg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    g = tg.grad(fn(x), x, grad=np.full(3, np.inf), create_graph=create_graph)
    np.testing.assert_array_equal(g.data if create_graph else g, expected)
    big = tg.tensor(np.tile([-1.0, 0.0, 2.0], 3000), requires_grad=True)   # over _SELECT_MAX:
    g = tg.grad(fn(big), big, grad=np.full(9000, np.inf))    # the checked product's path
    np.testing.assert_array_equal(g, np.tile(expected, 3000))


@pytest.mark.parametrize("size", [3, 9000])
def test_max_and_min_reductions_give_an_infinite_gradient_to_the_extreme_alone_as_torch(size):
    x = tg.tensor(np.resize([-1.0, 0.0, 2.0], size), requires_grad=True)
    expected = np.where(x.data == 2.0, np.inf, 0.0)
    np.testing.assert_array_equal(tg.grad(x.max(), x, grad=np.inf), expected)
    np.testing.assert_array_equal(tg.grad(x.min(), x, grad=np.inf), np.where(x.data == -1.0,
                                                                            np.inf, 0.0))
    ties = tg.tensor([2.0, 2.0, 1.0], requires_grad=True)      # torch.max(): inf / 2 each
    np.testing.assert_array_equal(tg.grad(ties.max(), ties, grad=np.inf), [np.inf, np.inf, 0.0])


@pytest.mark.parametrize("size", [3, 9000])
def test_relu_keeps_a_nan_gradient_where_it_passes_and_zero_where_it_does_not(size):
    x = tg.tensor(np.resize([-1.0, 0.0, 2.0, np.nan], size), requires_grad=True)
    g = tg.grad(tg.relu(x), x, grad=np.full(size, np.nan))
    np.testing.assert_array_equal(g, np.where(x.data <= 0, 0.0, np.nan))     # torch: [0 0 nan nan]
    finite = np.random.default_rng(0).normal(size=size)
    np.testing.assert_array_equal(tg.grad(tg.relu(x), x, grad=finite),
                                  np.where(x.data <= 0, 0.0, finite))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["relu", "clamp(0, 1)", "maximum(x, 0.5)", "where(x > 0, x, 0)"])
def test_a_masked_gradient_is_plus_0_where_the_mask_is_0_on_both_sides_of_the_size_threshold(
        name, dtype):
    # a negative g: the product g * 0 is -0.0, torch's select (and np.where below 6,144
    # entries) gives +0.0; the bits must not depend on the array's size
    fn = _INF_G[name][0]
    for size in (3, 9000):
        x = tg.tensor(np.resize(np.array([-1.0, 0.0, 2.0], dtype), size), requires_grad=True)
        g = tg.grad(fn(x), x, grad=np.full(size, -1.0, dtype))
        assert g.dtype == dtype
        zero = g == 0
        assert zero.any() and not np.signbit(g[zero]).any(), size


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("g", [np.inf, -np.inf, np.nan])
def test_amax_amin_follow_torch_amax_and_max_min_follow_torch_max_under_a_non_finite_gradient(
        axis, g):
    # torch 2.13 on x = [1, 3, 3, -2]: torch.amax's backward is g / count * mask, so an inf or
    # NaN g makes NaN off the maxima (inf * 0); torch.max() (no dim) puts 0 there.  tg.amax
    # gave max's 0s, though its docstring says it is torch's amax.
    x0 = np.array([1.0, 3.0, 3.0, -2.0])
    half = g / 2       # two tied maxima share it
    for op, at, torch_rule in ((tg.amax, [1, 2], "amax"), (tg.amin, [3], "amax"),
                               (tg.max, [1, 2], "max"), (tg.min, [3], "max")):
        x = tg.tensor(x0, requires_grad=True)
        y = op(x, axis=axis)
        y.backward(np.full(y.shape, g))
        share = half if len(at) == 2 else g
        off = np.nan if torch_rule == "amax" else 0.0
        expected = np.array([share if i in at else off for i in range(4)])
        np.testing.assert_array_equal(x.grad, expected, err_msg=op.__name__)
