"""Unary ops on bool and integer tensors give numpy's result: its dtype and its values.
tg.square of a bool tensor used to stay bool (x * x is a logical and) where np.square gives
int8, and tg.sigmoid of an unsigned tensor was 0 for every positive entry (-|x| wrapped
around: uint8 3 -> 253) and of a bool tensor a DTypeError about numpy's boolean negative."""

import numpy as np
import pytest

import tinygraph as tg

BOOLS = np.array([True, False, True])
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _same(result, want):
    assert result.dtype == want.dtype
    np.testing.assert_array_equal(result.data, want)


@pytest.mark.parametrize("dtype", [np.bool_] + INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_square_and_abs_give_numpys_dtype_and_values(dtype):
    x = BOOLS if dtype is np.bool_ else np.array([3, 0, 1, 11], dtype)
    _same(tg.square(tg.Tensor(x)), np.square(x))     # bool -> int8 [1, 0, 1]
    _same(tg.Tensor(x) ** 2, x ** 2)
    _same(tg.abs(tg.Tensor(x)), np.abs(x))
    _same(tg.square(tg.Tensor(x[0])), np.square(x[0]))   # a 0-d one too


@pytest.mark.parametrize("dtype", [np.bool_] + INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_sigmoid_of_bools_and_integers_is_that_of_the_floats_in_tanhs_dtype(dtype):
    x = BOOLS if dtype is np.bool_ else np.array([3, 0, 1, 11], dtype)
    out = tg.sigmoid(tg.Tensor(x))
    want_dtype = np.tanh(x).dtype        # float16 for bool, int8, uint8; float32, float64
    assert out.dtype == want_dtype
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(out.data.astype(np.float64), want,
                               rtol=float(np.finfo(want_dtype).eps) * 2)


def test_sigmoid_of_negative_integers_and_the_int8_extremes():
    x = np.array([-128, -3, 0, 5, 127], np.int8)
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(tg.sigmoid(tg.Tensor(x)).data.astype(np.float64), want,
                               rtol=2 * float(np.finfo(np.float16).eps), atol=1e-7)


@pytest.mark.parametrize("op", ["neg", "sign"])
def test_what_numpy_refuses_on_bools_is_a_dtype_error_naming_the_op(op):
    with pytest.raises(tg.DTypeError, match=op):
        getattr(tg, op)(tg.Tensor(BOOLS)) if op != "neg" else -tg.Tensor(BOOLS)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int64, np.float16, np.float32])
@pytest.mark.parametrize("exponent", [2, 3, 0, 2.0, np.int8(2)])
def test_power_gives_np_powers_dtype_and_the_operator_numpys_operator(dtype, exponent):
    # numpy's a ** 2 is np.square (a bool base: int8), np.power(a, 2) is int64; tg.power (and
    # np.power of a tensor) gave the operator's int8
    x = np.array([True, False, True]).astype(dtype)
    _same(tg.power(tg.Tensor(x), exponent), np.power(x, exponent))
    _same(np.power(tg.Tensor(x), exponent), np.power(x, exponent))
    _same(tg.Tensor(x) ** exponent, x ** exponent)
    _same(np.square(tg.Tensor(x)), np.square(x))


# Losses of bool and integer inputs compute in float64, as np.mean reduces integers: their
# difference, square and -|x| wrapped in the integer dtype (mse of uint8 [1, 100] against
# [3, 0] was 10 for 5002, binary cross-entropy of uint8 logits inf, and the gradient of
# float targets beside uint8 logits -x as 253 for -3).
@pytest.mark.parametrize("dtype", [np.bool_] + INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_of_bools_and_integers_is_that_of_their_float64_values(dtype, reduction):
    pred = np.array([1, 100, 0, 1]).astype(dtype)
    target = np.array([3, 0, 1, 1]).astype(dtype)
    out = tg.mse_loss(tg.Tensor(pred), tg.Tensor(target), reduction=reduction)
    d = pred.astype(np.float64) - target.astype(np.float64)
    want = {"mean": np.mean(d * d), "sum": np.sum(d * d), "none": d * d}[reduction]
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, want)


@pytest.mark.parametrize("dtype", [np.bool_] + INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_cross_entropy_of_integer_logits_and_its_targets_gradient(dtype):
    x = np.array([3, 0, 1, 1]).astype(dtype)
    y = tg.tensor(np.array([0.5, 0.0, 1.0, 0.25]), requires_grad=True)
    out = tg.binary_cross_entropy_with_logits(x, y, reduction="sum")
    xf = x.astype(np.float64)
    want = np.sum(np.logaddexp(0, xf) - xf * y.data)
    np.testing.assert_allclose(out.data, want, rtol=1e-14)
    out.backward()
    np.testing.assert_array_equal(y.grad, -xf)        # d/dy = -x, not -x wrapped around
    g, = tg.grad(tg.binary_cross_entropy_with_logits(x, y, reduction="sum"), [y], create_graph=True)
    np.testing.assert_array_equal(g.data, -xf)


# Ops of exp, log and erf give bool and integer inputs np.exp's float dtype, as tg.exp,
# tg.sigmoid and tg.tanh do (float16 for bool, int8, uint8; float32 for int16, uint16):
# softmax, log_softmax, logsumexp, cross_entropy, gelu (and softplus of bools) gave float64.
_FLOAT_FORMULAS = {
    "softmax": lambda x: tg.softmax(x, -1),
    "log_softmax": lambda x: tg.log_softmax(x, -1),
    "logsumexp": lambda x: tg.logsumexp(x, -1),
    "cross_entropy": lambda x: tg.cross_entropy(x, np.array([0, 2])),
    "nll_loss": lambda x: tg.nll_loss(x, np.array([0, 2])),
    "gelu": tg.gelu,
    "softplus": tg.softplus,
}


@pytest.mark.parametrize("name", sorted(_FLOAT_FORMULAS))
@pytest.mark.parametrize("dtype", [np.bool_] + INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_float_formulas_of_bools_and_integers_take_exps_dtype(name, dtype):
    x = np.array([[1, 0, 1], [0, 1, 1]]).astype(dtype)
    want_dtype = np.exp(x).dtype
    out = _FLOAT_FORMULAS[name](tg.Tensor(x))
    assert out.dtype == want_dtype
    exact = _FLOAT_FORMULAS[name](tg.Tensor(x.astype(np.float64)))
    np.testing.assert_allclose(out.data.astype(np.float64), exact.data,
                               rtol=4 * float(np.finfo(want_dtype).eps), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int64, np.float16, np.float32],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("lo, hi", [(None, 5), (0, None), (None, np.int8(4)), (None, 2.5), (1, 5)])
def test_clip_with_a_bound_left_out_gives_numpys_dtype(dtype, lo, hi):
    # a bound left out was -inf or inf, a float: clip of an int8 tensor with hi alone gave
    # float64 where np.clip gives int8
    x = np.array([0, 1, 9]).astype(dtype)
    want = np.clip(x, lo, hi)
    for got in (tg.clip(tg.Tensor(x), lo, hi), tg.clamp(tg.Tensor(x), lo, hi),
                np.clip(tg.Tensor(x), lo, hi)):
        _same(got, want)


@pytest.mark.parametrize("loss", [tg.mse_loss, tg.binary_cross_entropy_with_logits],
                         ids=["mse_loss", "bce_with_logits"])
@pytest.mark.parametrize("pred_dtype, target_dtype", [
    (np.float32, np.bool_), (np.float16, np.uint8), (np.float32, np.int64), (np.float64, np.int8)])
def test_a_loss_of_a_float_input_and_integer_targets_keeps_numpys_dtype(loss, pred_dtype,
                                                                        target_dtype):
    # an integer input beside a float one is taken in numpy's dtype of the pair (float32
    # logits with bool targets stay float32), not made float64 first
    pred = tg.tensor(np.array([0.5, -1.0, 2.0], pred_dtype), requires_grad=True)
    target = np.array([1, 0, 1]).astype(target_dtype)
    want = (pred.data - target).dtype
    for a, b in ((pred, target), (target, pred)):
        out = loss(a, b, reduction="none")
        assert out.dtype == want
        out.sum().backward()
        assert pred.grad.dtype == pred_dtype
