"""The ops: each is a forward on numpy arrays and, beside it, its gradient
rule, written like the math.

Every op's forward returns ``(value, rule)``, a shared
:class:`~tinygraph.tensor.Rule` (one per op, not per node), and
:func:`tinygraph.tensor.apply` turns that into a node that keeps the rule and
its saved inputs.  A rule is written once, with the operators and methods numpy
arrays and Tensors share and, where they differ, the functions of ``_xp``
(numpy on arrays, the engine's op on Tensors): backward runs it on the saved
arrays, ``backward(create_graph=True)`` on Tensors, so its result is
differentiable again.  Gradients may come back in the broadcast shape: the
engine sums them back to each input's shape once, centrally.

The forwards and rules a recurrent step makes most also have a *lean form*
(``LEAN_FORWARDS``, ``LEAN_GRADS``, after the rules): the source text of that
forward or rule for the situation a recorded step was in, which the loops of a
replayed step (:func:`tinygraph.tape.compile_scan`) inline, calling numpy
without the function layers.  It is not a second rule: the same numpy calls in
the same order on the same arrays, so the same bits (checked against the op in
tests/test_engine_lean_forms.py).
"""

import builtins
import math
from types import SimpleNamespace

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from .errors import BadIndexError, ConfigError, DTypeError, ShapeError
from .tensor import (_NO_SETTINGS, _SMALL, _TRANSPOSES, Product, Rule, Scatter, Tensor, _apply, _constant_of,
                     _fresh_random, _raise_forward_error, _unbroadcast, apply, binary_op, check_size,
                     defvjp, is_grad_enabled, refuse_negative_integer_power, unary_op)

# ---------------------------------------------------------------- one rule, two kinds of arrays


def _dual(array_fn, tensor_fn):
    """A function of the rules: ``array_fn`` on numpy arrays (backward), ``tensor_fn`` in engine
    ops as soon as one argument is a Tensor (``create_graph``)."""
    def either(*args, **kwargs):
        for a in args:
            if isinstance(a, Tensor):
                return tensor_fn(*args, **kwargs)
        return array_fn(*args, **kwargs)
    return either


def _value(x):
    """The array behind ``x``: for what a rule takes as a constant of the gradient (a mask, the
    shares of a tie, a sign), whichever kind of array it runs on."""
    return x._data if isinstance(x, Tensor) else x


def _float_of(x):
    """The float dtype a formula of exp, log, erf ... computes ``x`` (an array or dtype) in:
    numpy's for ``np.exp(x)``, so float16 for bool, int8 and uint8, float32 for int16 and
    uint16, float64 for wider integers; a float dtype is kept."""
    dtype = np.dtype(getattr(x, "dtype", x))
    return np.promote_types(dtype, np.float16) if dtype.kind in "biu" else dtype


def _expand(g, shape, axis, keepdims):    # a reduction's g back to its input's shape
    if axis is not None and not keepdims and shape:   # numpy lets a 0-d input take axis=0
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


def _expand_rule(g, shape, axis, keepdims):   # _expand in engine ops
    if axis is not None and not keepdims and shape:
        g = unsqueeze(g, axis)
    return broadcast_to(g, shape)


def _scatter_grad(g, index, shape, axis):
    """The gradient of indexing: g added at ``index`` into zeros of ``shape`` -- a Scatter on
    arrays (backward adds it in place), the op ``scatter`` on Tensors."""
    if isinstance(g, Tensor):
        return apply("scatter", _scatter, g, index=index, shape=shape, axis=axis)
    return Scatter(index, g, _is_basic(index) if axis == 0 else False, axis)


# ---------------------------------------------------------------- elementwise


def _add(a, b):
    return a + b, _ADD


_ADD = Rule(lambda g, out, a, b: g, lambda g, out, a, b: g, saves=False, reads_out=False)


def _sub(a, b):
    return a - b, _SUB


_SUB = Rule(lambda g, out, a, b: g, lambda g, out, a, b: -g, saves=False, reads_out=False)


def _mul(a, b):
    return a * b, _MUL


_MUL = Rule(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a, reads_out=False)


def _div(a, b):
    return a / b, _DIV


_DIV = Rule(lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b)


def _pow(a, b):   # d(a**b)/da = b a**(b-1), taken as 0 where b == 0 (x**0 is constant, also at 0)
    try:
        return a ** b, _POW
    except ValueError:
        refuse_negative_integer_power("pow", a, b)
        raise


def _np_pow(a, b):   # tg.power: np.power's dtypes, where a ** b has the operator's: numpy's
    try:             # bool ** 2 is np.square's int8, np.power(bool, 2) int64 (every value the same)
        return np.power(a, b), _POW
    except ValueError:
        refuse_negative_integer_power("pow", a, b)
        raise


def _pow_base(g, out, a, b):
    if not isinstance(b, Tensor) and np.ndim(b) == 0:    # a number: numpy's scalar promotion
        return g * (b * a ** (b - 1)) if b != 0 else g * 0
    return g * (b * a ** _xp.where(b == 0, 1, b - 1))


def _pow_exponent(g, out, a, b):
    """d(a**b)/db = a**b log(a): 0 where a == 0 (0**b is 0 for every b > 0), NaN where a < 0,
    whose power has no real derivative in b (as PyTorch; it was 0 here, a made-up number)."""
    return g * out * _xp.log(_xp.where(a < 0, np.nan, _xp.where(a > 0, a, 1)))   # a's dtype


_POW = Rule(_pow_base, _pow_exponent)


def _neg(a):
    return -a, _NEG


_NEG = Rule(lambda g, out, a: -g, saves=False, reads_out=False)


def _exp(x):
    return np.exp(x), _EXP


_EXP = Rule(lambda g, out, x: g * out, saves=False)


def _log(x):
    return np.log(x), _LOG


_LOG = Rule(lambda g, out, x: g / x, reads_out=False)


def _log1p(x):
    return np.log1p(x), _LOG1P


_LOG1P = Rule(lambda g, out, x: g / (1 + x), reads_out=False)


def _tanh(x):
    return np.tanh(x), _TANH


def _times_in_place(g, fresh):
    """``g * fresh``, written into ``fresh`` (an array the rule just made, which nothing else
    holds) when the product has its shape and dtype: one temporary fewer, the same bits."""
    if type(fresh) is np.ndarray and fresh.shape == np.shape(g) and \
            np.result_type(g, fresh) == fresh.dtype:
        return np.multiply(g, fresh, out=fresh)
    return g * fresh


def _tanh_grad(g, out):   # g (1 - out^2), with one temporary
    t = out * out
    if type(t) is np.ndarray:
        return _times_in_place(g, np.subtract(1, t, out=t))
    return g * (1 - t)


_TANH = Rule(lambda g, out, x: _xp.tanh_grad(g, out), saves=False)


def _exp_neg_abs(x):
    """exp(-|x|) in one fresh array (negated and exponentiated in place)."""
    e = np.abs(x)
    if type(e) is np.ndarray and e.dtype.kind == "f":
        np.negative(e, out=e)
        return np.exp(e, out=e)
    return np.exp(-e)


def _sigmoid(x):
    """1 / (1 + exp(-x)) by the sign of x: with e = exp(-|x|) <= 1, y = 1 / (1 + e) for x >= 0
    and e / (1 + e) for x < 0, so nothing overflows and a tiny y keeps its relative precision.
    The numerator, 1 or e, is max(x >= 0, e) (e <= 1; no ``np.where``, whose branch on random
    signs costs several times the exp).  y is the first row of a (2, ...) array whose second
    row keeps e, which the gradient reads (:func:`_kept_exp`) instead of a second exp; under
    ``no_grad`` no gradient will be taken, and y is an array of its own (the same values)."""
    if type(x) is not np.ndarray or x.dtype.kind != "f":
        # bools and integers first go to the float dtype np.exp gives them, as tanh's (float16
        # for bool, int8, uint8): -|x| of an unsigned x wraps (uint8 3 -> 253: sigmoid 0, not
        # 0.95), and of a bool x is an error
        x = np.asarray(x)
        if x.dtype.kind in "biu":
            x = x.astype(np.exp(np.zeros(0, x.dtype)).dtype)
        e = _exp_neg_abs(x)
        return np.where(x >= 0, 1, e) / (1 + e), _SIGMOID
    if is_grad_enabled():
        pair = np.empty((2,) + x.shape, x.dtype)
        y, e = pair[0, ...], pair[1, ...]
    else:
        y, e = np.empty_like(x, order="C"), np.empty_like(x, order="C")
    np.abs(x, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    d = e + 1
    np.maximum(x >= 0, e, out=y)
    return np.divide(y, d, out=y), _SIGMOID


def _kept_exp(out):
    """exp(-|x|) as the sigmoid's forward kept it beside its output ``out`` (see _sigmoid), or
    None if ``out`` is not that output: the first row of a (2, ...) array, which is the only
    view of its shape and strides that does not reach into the second; or, where a replay's
    loop made each step's pair a row of one (n, 2, ...) block (tinygraph.tape, per-unroll
    blocks), ``out`` is ``block[i, 0]`` for some i and e is ``block[i, 1]``."""
    pair = out.base
    if (type(pair) is not np.ndarray or pair.dtype != out.dtype
            or not pair.flags.c_contiguous):
        return None
    if pair.shape == (2,) + out.shape and out.strides == pair.strides[1:]:
        e = pair[1, ...]
    elif pair.shape[1:] == (2,) + out.shape and out.strides == pair.strides[2:]:
        offset = out.__array_interface__["data"][0] - pair.__array_interface__["data"][0]
        if pair.strides[0] <= 0:
            return None
        i, rest = divmod(offset, pair.strides[0])
        if rest or not 0 <= i < pair.shape[0]:
            return None
        e = pair[i, 1, ...]
    else:
        return None
    if not np.may_share_memory(out, e):
        return e
    return None


def _sigmoid_slope(out, x):
    """sigma'(x) = e / (1 + e)^2 with e = exp(-|x|) (no overflow, for either sign): e as the
    forward kept it beside ``out`` (an array), else computed from ``x``."""
    e = _kept_exp(out) if type(out) is np.ndarray else None
    if e is None:
        e = _exp_neg_abs(x)
        if type(e) is not np.ndarray or e.dtype.kind != "f":
            d = 1 + e
            return e / (d * d)
    d = e + 1
    if type(d) is not np.ndarray:     # 0-d: numpy's arithmetic gives a scalar
        return e / (d * d)
    np.multiply(d, d, out=d)
    return np.divide(e, d, out=d)


# sigma'(x) = sigma(x) sigma(-x): on Tensors, each factor with its full relative precision; on
# arrays from the e = exp(-|x|) the forward kept beside out, so the rule reads g and out (x
# only for an output the forward did not make in pairs: not a float array)
_SIGMOID = Rule(lambda g, out, x: _xp.sigmoid_grad(g, out, x), saves=False)


def _softplus(x):   # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact for every x
    if x.dtype.kind == "b":   # np.logaddexp(0, x) takes the 0 for int64: float64, not exp's float16
        x = x.astype(_float_of(x))
    return np.logaddexp(0, x), _SOFTPLUS


_SOFTPLUS = Rule(lambda g, out, x: g * _xp.sigmoid(x), reads_out=False)


def _relu(x):
    return np.maximum(x, 0), _RELU


_RELU = Rule(lambda g, out, x: np.where(x <= 0, 0, g)    # _masked's select, one ~ less
             if type(g) is np.ndarray and g.size <= _SELECT_MAX
             else _xp.relu_backward(g, x), reads_out=False)   # g at NaN, as torch


def _relu_backward(g, x):
    """relu's gradient ``g`` where x > 0 (or NaN), else +0.0, as an op of g and x (torch's
    threshold_backward): under ``create_graph`` the gradient is then a function of x too, whose
    derivative is 0 (relu is piecewise linear), so a second derivative through relu is zeros
    (as torch's), not an error that the gradient needs no x."""
    return _masked(g, ~(x <= 0)), _RELU_BACKWARD


_RELU_BACKWARD = Rule(lambda gg, out, g, x: _xp.relu_backward(gg, x),
                      lambda gg, out, g, x: _xp.zeros_like(gg))


def _leaky_relu(x, slope=0.01):   # slope where x <= 0 (PyTorch's choice at 0)
    return x * np.where(x > 0, 1, slope).astype(np.result_type(x, 1.0), copy=False), _LEAKY_RELU


_LEAKY_RELU = Rule(lambda g, out, x, slope=0.01: _xp.leaky_relu_backward(g, x, slope))


def _leaky_relu_backward(g, x, slope=0.01):
    """leaky_relu's gradient as an op of g and x (torch's leaky_relu_backward), as
    :func:`_relu_backward`: a second derivative through leaky_relu is zeros, not an error."""
    return np.where(x > 0, g, g * slope), _LEAKY_RELU_BACKWARD


_LEAKY_RELU_BACKWARD = Rule(lambda gg, out, g, x, slope=0.01: _xp.leaky_relu_backward(gg, x, slope),
                            lambda gg, out, g, x, slope=0.01: _xp.zeros_like(gg))


def _abs(x):
    return np.abs(x), _ABS


def _sign_as_torch(x):   # np.sign, but 0 at NaN (torch's sign(NaN), and so its abs gradient)
    s = np.sign(x)
    return np.nan_to_num(s, copy=type(s) is not np.ndarray, nan=0)   # a 0-d input gives a scalar


# sign(x) an op of x under create_graph (its derivative 0, as torch's sgn): a second derivative
# through abs is zeros, as torch's, not an error that the gradient needs no x
_ABS = Rule(lambda g, out, x: g * _xp.sign(x), reads_out=False)


def _sqrt(x):
    return np.sqrt(x), _SQRT


_SQRT = Rule(lambda g, out, x: g / (2 * out), saves=False)


def _where(cond, a, b):
    out = np.where(cond, a, b)
    if out.dtype.kind in "iu":    # numpy wraps a Python int beyond the result's integer dtype
        for v in (a, b):          # (int8 with 300 gave 44) where its operators raise
            if type(v) is int and not np.iinfo(out.dtype).min <= v <= np.iinfo(out.dtype).max:
                raise OverflowError(f"Python integer {v} out of bounds for {out.dtype}")
    return out, _WHERE


_WHERE = Rule(None, lambda g, out, cond, a, b: _xp.masked(g, _value(cond)),
              lambda g, out, cond, a, b: _xp.masked(g, ~_value(cond)))


def _tie_shares(a, b):
    """(share of a, share of b) of the gradient of max(a, b): 1 for the larger, 1/2 each at a
    tie, and 1 each where either is NaN (the result is NaN; PyTorch's rule: each input's share
    is zeroed only where it is the smaller, so a NaN result's gradient reaches both, where it
    reached neither)."""
    tie = (a == b) * 0.5
    return 1.0 - (a < b) - tie, 1.0 - (b < a) - tie


def _maximum(a, b):
    return np.maximum(a, b), _MAXIMUM


def _minimum(a, b):
    return np.minimum(a, b), _MINIMUM


def _extremum_grads(larger, g, a, b):
    if type(g) is np.ndarray and g.size > _SELECT_MAX:    # _masked's selection of g, on bools
        a, b = _value(a), _value(b)                          # (shares cost a float array each)
        lose_a, lose_b = (a < b, b < a) if larger else (b < a, a < b)
        grads = _select(g, ~lose_a), _select(g, ~lose_b)
        tie = a == b
        if tie.any():
            for pg in grads:
                np.multiply(pg, 0.5, out=pg, where=tie)
        return grads
    share_a, share_b = _tie_shares(_value(a), _value(b))
    if not larger:   # the smaller one takes the gradient
        share_a, share_b = share_b, share_a
    return _xp.masked(g, share_a), _xp.masked(g, share_b)


_MAXIMUM = Rule(joint=lambda g, out, a, b: _extremum_grads(True, g, a, b))
_MINIMUM = Rule(joint=lambda g, out, a, b: _extremum_grads(False, g, a, b))


def _clip_shares(x, lo, hi):
    """Where the result min(max(x, lo), hi) is x, lo and hi: the gradient passes where
    lo <= x <= hi (PyTorch's clamp); where lo > hi the result is hi, whatever x."""
    inside = (x >= lo) & (x <= hi)
    return inside, (x < lo) & (lo <= hi), (x > hi) | (lo > hi)


def _clip(x, lo, hi):
    return np.clip(x, lo, hi), _CLIP


_CLIP = Rule(joint=lambda g, out, x, lo, hi: tuple(     # selects g (inf g: 0, not NaN, outside)
    _xp.masked(g, share) for share in _clip_shares(_value(x), _value(lo), _value(hi))))


def _dropout(x, mask):
    return x * mask, _DROPOUT


_DROPOUT = Rule(lambda g, out, x, mask: g * mask, None)


def _sign(x):   # piecewise constant: gradient 0 everywhere (0 at 0 too, as torch)
    return _sign_as_torch(x), _SIGN


_SIGN = Rule(lambda g, out, x: _xp.zeros_like(g), saves=False)   # 0 also for an inf g, as torch


def _numpy_sign(x):   # np.sign on a Tensor: numpy's values (NaN stays NaN), tg.sign's gradient 0
    return np.sign(x), _SIGN


def _round(x, decimals=0):   # half to even, as np.round and torch.round; piecewise constant
    return np.round(x, decimals), _STEPPED


def _floor(x):
    return np.floor(x), _STEPPED


def _ceil(x):
    return np.ceil(x), _STEPPED


def _trunc(x):
    return np.trunc(x), _STEPPED


_STEPPED = Rule(lambda g, out, x, decimals=0: _xp.zeros_like(g),   # 0, as torch's (0 at jumps,
                saves=False)                                      # and for an inf or NaN g)


def _clone(x):
    return x.copy(), _CLONE


_CLONE = Rule(lambda g, out, x: g, saves=False)


def _roll(x, shifts, axis=None):
    return np.roll(x, shifts, axis), _ROLL


def _unrolled(shifts):
    return tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts


_ROLL = Rule(lambda g, out, x, shifts, axis=None: _xp.roll(g, _unrolled(shifts), axis),
             saves=False)


def _square(x):   # np.square, not x * x: a bool x squares to int8 as numpy's (x * x stays bool)
    return np.square(x), _SQUARE


_SQUARE = Rule(lambda g, out, x: 2 * g * x, reads_out=False)


def _expm1(x):   # exp(x) - 1, accurate for small x; d/dx = exp(x) (not out + 1: that loses digits)
    return np.expm1(x), _EXPM1


_EXPM1 = Rule(lambda g, out, x: g * _xp.exp(x), reads_out=False)


def _sin(x):
    return np.sin(x), _SIN


_SIN = Rule(lambda g, out, x: g * _xp.cos(x), reads_out=False)


def _cos(x):
    return np.cos(x), _COS


_COS = Rule(lambda g, out, x: -g * _xp.sin(x), reads_out=False)

_erfc = np.frompyfunc(math.erfc, 1, 1)   # numpy has no erf: the C library's, entry by entry
_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _phi_big(x):
    """Phi(x), the standard normal CDF, as erfc(-x / sqrt 2) / 2 (computed in float64): full
    relative precision in the left tail, where 1 + erf(x / sqrt 2) would cancel to 0."""
    wide = _float_of(x)
    cdf = 0.5 * np.asarray(_erfc(np.asarray(x, np.float64) * -_INV_SQRT2), dtype=np.float64)
    return cdf.astype(wide, copy=False)


def _normal_pdf(x):   # phi(x), on arrays or Tensors
    return _xp.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _normal_cdf(x):   # Phi(x); d/dx = phi(x)
    return _phi_big(x), _NORMAL_CDF


_NORMAL_CDF = Rule(lambda g, out, x: g * _normal_pdf(x), reads_out=False)


def _gelu(x):   # x Phi(x) (the erf form, torch's default); d/dx = Phi(x) + x phi(x)
    return x * _phi_big(x), _GELU


_GELU = Rule(lambda g, out, x: g * (_xp.normal_cdf(x) + x * _normal_pdf(x)), reads_out=False)

# ---------------------------------------------------------------- matmul


def _matmul(a, b):
    if (type(a) is np.ndarray and type(b) is np.ndarray and b.ndim == 2 and 0 < a.ndim <= 2
            and (a.shape[0] if a.ndim == 2 else 1) * b.shape[1] <= _SMALL):
        return np.dot(a, b), _MATMUL_2D     # rows (or one vector) times a matrix, small: no checks
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError("matmul needs at least 1-D operands")
    _check_matmul_size(a, b)
    if b.ndim == 2 and a.ndim <= 2:     # rows (or one vector) times a matrix: the common case
        return np.dot(a, b), _MATMUL_2D
    return a @ b, _MATMUL


# np.dot, not @, for arrays: the same product, faster for small operands (for a single row,
# a.T @ g is 4x slower than np.dot(a.T, g) in numpy 2.4)
def _dot(a, b):   # a @ b, b 2-D: np.dot on arrays, the engine's matmul on Tensors
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return matmul(a, b)
    return np.dot(a, b)


def _outer_product(a, g):   # a^T g for a (N, K) or (K,): d(a @ b)/db
    if a.ndim != 2:
        return a.reshape(-1, 1) * g
    if isinstance(a, Tensor) or isinstance(g, Tensor):
        return matmul(a.T, g)
    return Product(a.T, g) if g.ndim == 2 else np.dot(a.T, g)   # backward computes it in place


# a (N, K) or (K,), b (K, M)
_MATMUL_2D = Rule(lambda g, out, a, b: _dot(g, b.T), lambda g, out, a, b: _outer_product(a, g),
                  reads_out=False)


def _as_2d_out(g, a, b):   # g in the shape a2 @ b2 would have (1-D operands promoted to 2-D)
    if b.ndim == 1:
        g = g[..., None]
    if a.ndim == 1:
        g = g[..., None, :]
    return g


def _matmul_grad_a(g, a, b):   # g @ b^T, numpy's promotion of a 1-D operand undone
    b2 = b[:, None] if b.ndim == 1 else b
    ga = _as_2d_out(g, a, b) @ b2.swapaxes(-1, -2)
    return ga[..., 0, :] if a.ndim == 1 else ga


def _matmul_grad_b(g, a, b):   # a^T @ g (batch axes are summed back by the engine)
    a2 = a[None, :] if a.ndim == 1 else a
    g2 = _as_2d_out(g, a, b)
    if b.ndim <= 2:     # N-D @ 2-D: one big product instead of a batch summed afterwards
        gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
    else:
        gb = a2.swapaxes(-1, -2) @ g2
    return gb[..., 0] if b.ndim == 1 else gb


_MATMUL = Rule(lambda g, out, a, b: _matmul_grad_a(g, a, b), lambda g, out, a, b: _matmul_grad_b(g, a, b),
               reads_out=False)


def _addmm(c, a, b):
    prod, rule = _matmul(a, b)
    if type(prod) is not np.ndarray:     # a 1-D @ 1-D product is a numpy scalar
        out = c + prod
    elif (type(c) is np.ndarray and c.shape == prod.shape and c.dtype == prod.dtype) or (
            np.broadcast_shapes(np.shape(c), prod.shape) == prod.shape
            and np.result_type(c, prod) == prod.dtype):
        out = np.add(prod, c, out=prod)      # the product is a fresh array: add c into it
    else:
        out = c + prod
    return out, _ADDMM_2D if rule is _MATMUL_2D and out.shape == prod.shape else _ADDMM


_ADDMM_2D = Rule(lambda g, out, c, a, b: g, lambda g, out, c, a, b: _dot(g, b.T),
                 lambda g, out, c, a, b: _outer_product(a, g), reads_out=False)


def _product_part(g, a, b):   # c broadcast the product: g summed back to the product's shape
    return _xp.sum_to(g, _matmul_shape(a.shape, b.shape))


_ADDMM = Rule(lambda g, out, c, a, b: g,
              lambda g, out, c, a, b: _matmul_grad_a(_product_part(g, a, b), a, b),
              lambda g, out, c, a, b: _matmul_grad_b(_product_part(g, a, b), a, b), reads_out=False)


def _check_matmul_size(a, b):
    """AllocationError before an (n, k) @ (k, m) product too large for memory is allocated."""
    if b.ndim == 2 and a.ndim <= 2 and (a.shape[0] if a.ndim == 2 else 1) * b.shape[1] <= _SMALL:
        return    # the common case, small: nothing to check
    try:
        shape = _matmul_shape(a.shape, b.shape)
    except ValueError:
        return    # matmul itself raises, naming the shapes
    check_size("matmul", shape, np.result_type(a, b), (a.shape, b.shape))


def _matmul_shape(sa, sb):
    a2 = sa if len(sa) > 1 else (1,) + sa
    b2 = sb if len(sb) > 1 else sb + (1,)
    shape = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(sb) == 1:
        shape = shape[:-1]
    if len(sa) == 1:
        shape = shape[:-2] + shape[-1:]
    return shape

# ---------------------------------------------------------------- reductions


def _count(x, out):
    return x.size // out.size if out.size and x.size else 1    # elements reduced per output


def _sum(x, axis=None, keepdims=False):
    return x.sum(axis=axis, keepdims=keepdims), _SUM


_SUM = Rule(lambda g, out, x, axis=None, keepdims=False: _xp.expand(g, x.shape, axis, keepdims))


def _mean(x, axis=None, keepdims=False):
    return x.mean(axis=axis, keepdims=keepdims), _MEAN


_MEAN = Rule(lambda g, out, x, axis=None, keepdims=False:
             _xp.expand(g / _count(x, out), x.shape, axis, keepdims))


def _extreme_hits(x, out, axis, keepdims, nan_hits=True):
    """Where each entry of ``x`` equals its max (or min) ``out``; with ``nan_hits``, a NaN
    result's NaN entries too (NaN == NaN is False), as ``torch.max()``."""
    at = _expand(out, x.shape, axis, keepdims)
    hit = x == at
    if nan_hits and out.dtype.kind == "f" and np.isnan(out).any():
        hit |= np.isnan(at) & np.isnan(x)
    return hit


def _extreme_share(x, out, axis, keepdims, nan_hits=True):
    """The share of the gradient of each entry of ``x`` in its max (or min) ``out``: ties share
    it equally, and a NaN result is its NaN entries' (with ``nan_hits``).  Without, as
    ``torch.amax`` (g / count * mask), a NaN result equals no entry, so its row's shares are
    0 / 0 = NaN everywhere (no warning: this call's errstate, which also holds under a caller's
    ``np.errstate(all="raise")``)."""
    hit = _extreme_hits(x, out, axis, keepdims, nan_hits)
    with np.errstate(divide="ignore", invalid="ignore"):
        return hit / hit.sum(axis=axis, keepdims=True)


def _extreme_grad(g, out, x, axis=None, keepdims=False):
    """max's and min's rule: g shared by the extremes (:func:`_masked`); over ``_SELECT_MAX``
    entries on arrays, g selected at them times 1 / count, the same product as g * share."""
    if type(g) is np.ndarray and x.size > _SELECT_MAX:
        hit = _extreme_hits(x, out, axis, keepdims)
        return _select(_expand(g, x.shape, axis, keepdims), hit) * (1.0 / hit.sum(axis=axis, keepdims=True))
    return _xp.masked(_xp.expand(g, x.shape, axis, keepdims),
                      _extreme_share(_value(x), _value(out), axis, keepdims))


def _max(x, axis=None, keepdims=False):
    return x.max(axis=axis, keepdims=keepdims), _EXTREME


def _min(x, axis=None, keepdims=False):
    return x.min(axis=axis, keepdims=keepdims), _EXTREME


_EXTREME = Rule(_extreme_grad)


def _amax(x, axis=None, keepdims=False):
    return x.max(axis=axis, keepdims=keepdims), _SHARED


def _amin(x, axis=None, keepdims=False):
    return x.min(axis=axis, keepdims=keepdims), _SHARED


def _times_share(g, share):
    """``g * share`` as a product, PyTorch's ``amax``/``amin`` backward (g / count * mask): an
    inf or NaN g makes NaN at the entries that are not the extreme (inf * 0), where ``max``'s
    rule (``_masked``) puts 0.  (No warning for that inf * 0: the errstate is this call's.)"""
    with np.errstate(invalid="ignore"):
        return g * share


# PyTorch's amax/amin: the incoming gradient times the shares, so an inf or NaN gradient makes
# NaN off the extremes (torch.max/min without dim, as tg.max/min, put 0 there)
_SHARED = Rule(lambda g, out, x, axis=None, keepdims=False:
               _xp.times_share(_xp.expand(g, x.shape, axis, keepdims),
                               _extreme_share(_value(x), _value(out), axis, keepdims, False)))


def _var(x, axis=None, ddof=0, keepdims=False):
    """mean((x - mean(x))^2) * n / (n - ddof); d/dx = 2 (x - mean) / (n - ddof)."""
    return x.var(axis=axis, ddof=ddof, keepdims=keepdims), _VAR


def _var_factor(x, out, ddof):   # 2 / (n - ddof); inf where numpy's var is (ddof >= n)
    d = _count(x, out) - ddof
    return 2 / d if d > 0 else math.inf


_VAR = Rule(lambda g, out, x, axis=None, ddof=0, keepdims=False:
            _xp.expand(g, x.shape, axis, keepdims) * _var_factor(x, out, ddof)
            * (x - x.mean(axis=axis, keepdims=True)))


def _std(x, axis=None, ddof=0, keepdims=False):
    """d/dx = (x - mean) / ((n - ddof) std), taken as 0 where std = 0 (as ``norm`` at 0)."""
    return x.std(axis=axis, ddof=ddof, keepdims=keepdims), _STD


def _zero_at_zero(factor, out):
    """``factor`` (a gradient divided by ``out``, with 1 put for 0) taken as 0 where ``out`` is 0:
    the first derivative there is 0 either way (it is times x - mean, or x, both 0), but under
    create_graph the factor's own derivative is 0 there too, so the second derivative at a
    constant row (std) or at 0 (norm) is 0, as PyTorch's masked_fill; dividing by 1 alone
    left g / n times (v - mean(v)), a number that is no derivative and not torch's 0."""
    return _xp.where(out == 0, 0, factor)


_STD = Rule(lambda g, out, x, axis=None, ddof=0, keepdims=False:
            _xp.expand(_zero_at_zero(g / (builtins.max(_count(x, out) - ddof, 0)
                                          * _xp.where(out == 0, 1, out)), out),
                       x.shape, axis, keepdims)
            * (x - x.mean(axis=axis, keepdims=True)))


def _norm(x, axis=None, keepdims=False):   # sqrt(sum x^2) over axis; d/dx = x / norm, taken
    if x.dtype.kind in "biu":     # as 0 at x = 0 (PyTorch's subgradient); as np.linalg.norm:
        x = x.astype(np.float64)  # squares in a small integer dtype wrap
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)), _NORM


_NORM = Rule(lambda g, out, x, axis=None, keepdims=False:
             _xp.expand(_zero_at_zero(g / _xp.where(out == 0, 1, out), out), x.shape, axis, keepdims)
             * x)


def _prod_layout(shape, axis):
    """(perm, kept, n): the transpose that moves the reduced axes last, the shape of the axes
    kept, and how many entries each product takes."""
    ndim = len(shape)
    reduced = range(ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    reduced = sorted({a % ndim for a in reduced}) if ndim else []
    kept = [i for i in range(ndim) if i not in reduced]
    return kept + reduced, tuple(shape[i] for i in kept), int(np.prod([shape[i] for i in reduced]))


def _prod(x, axis=None, keepdims=False):
    """Product along ``axis``; d/dx_i = the product of the others (exact with zeros, no division)."""
    return np.prod(x, axis=axis, keepdims=keepdims), _PROD


def _others(x, axis):
    """The product of the other entries of each product: on arrays, the exclusive products from
    the left times those from the right."""
    perm, kept, n = _prod_layout(x.shape, axis)
    if n == 0:     # products of no entries: x is empty, and so is its gradient (the two
        return np.empty_like(x)   # shifted copies below would hold one entry each)
    flat = x.transpose(perm).reshape(kept + (n,))
    ones = np.ones(kept + (1,), x.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return (left * right).reshape([x.shape[i] for i in perm]).transpose(np.argsort(perm))


def _others_in_ops(x, axis):
    """:func:`_others` from engine ops: row i of an (n, n) stack has x_i replaced by 1."""
    perm, kept, n = _prod_layout(x.shape, axis)
    flat = reshape(transpose(x, tuple(perm)), kept + (n,))
    others = prod(where(np.eye(n, dtype=bool), 1.0, unsqueeze(flat, -2)), axis=-1)
    return transpose(reshape(others, tuple(x.shape[i] for i in perm)), tuple(np.argsort(perm)))


_PROD = Rule(lambda g, out, x, axis=None, keepdims=False:
             _xp.expand(g, x.shape, axis, keepdims) * _xp.others(x, axis))


def _cumsum(x, axis=None):   # numpy's rule: axis=None runs over the flattened input
    return np.cumsum(x, axis=axis), _CUMSUM


def _reversed_cumsum(g, shape, along):   # the sums from the end: the gradient of cumsum
    return _xp.flip(_xp.cumsum(_xp.flip(g, along), along), along).reshape(shape)


_CUMSUM = Rule(lambda g, out, x, axis=None: _reversed_cumsum(g, x.shape, 0 if axis is None else axis))

# ---------------------------------------------------------------- shapes


def _reshape(x, shape):
    return x.reshape(shape), _BACK_TO_SHAPE


# the gradient of every op that only reshapes (reshape, squeeze, unsqueeze, flatten)
_BACK_TO_SHAPE = Rule(lambda g, out, x, **kwargs: g.reshape(x.shape))


def _transpose(x, axes=None):
    return x.transpose(axes), _TRANSPOSE


_TRANSPOSE = Rule(lambda g, out, x, axes=None:
                  g.transpose(None if axes is None else tuple(np.argsort([a % x.ndim for a in axes]))))


_TRANSPOSES.update((_TRANSPOSE, _TRANSPOSE.keyed))


def _swapaxes(x, axis1, axis2):
    return np.swapaxes(x, axis1, axis2), _SWAPAXES


_SWAPAXES = Rule(lambda g, out, x, axis1, axis2: g.swapaxes(axis1, axis2), saves=False)


def _squeeze(x, axis=None):
    return np.squeeze(x, axis), _BACK_TO_SHAPE


def _expand_dims(x, axis):
    return np.expand_dims(x, axis), _BACK_TO_SHAPE


def _flatten(x):
    return x.reshape(-1), _BACK_TO_SHAPE


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape), _BROADCAST_TO


_BROADCAST_TO = Rule(lambda g, out, x, shape: g, saves=False)   # the engine sums g back to x's shape


def _cast(x, dtype):   # x as ``dtype`` (create_graph: a gradient back to its input's dtype)
    return x.astype(dtype, copy=False), _CAST


_CAST = Rule(lambda g, out, x, dtype: cast(g, x.dtype))


def cast(x, dtype):
    """``x`` as ``dtype``; the gradient goes back in ``x``'s dtype."""
    if isinstance(x, Tensor) and x.dtype == dtype:
        return x
    return apply("cast", _cast, x, dtype=np.dtype(dtype))


def _sum_to(x, shape):   # the engine's broadcast reduction as an op (create_graph uses it)
    return _unbroadcast(x, shape), _SUM_TO


# x (2, 1) to (1, 3) (a rule's gradient that broadcast only part of the way) is summed over
# axis 0 and broadcast along axis 1: g is broadcast to both shapes, then summed back to x's
_SUM_TO = Rule(lambda g, out, x, shape: _xp.sum_to(_xp.broadcast_to(g, np.broadcast_shapes(x.shape, shape)),
                                                   x.shape))


def _getitem(x, index):
    if type(index) is int and _INTP_MIN <= index <= _INTP_MAX:    # needs no conversion
        return x[index], _GETITEM
    return x[_intp_index(index, x.shape)], _GETITEM


_GETITEM = Rule(lambda g, out, x, index: _xp.scatter(g, index, x.shape, 0))   # repeated indices add up


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


_INTP = np.iinfo(np.intp)
_INTP_MIN, _INTP_MAX = int(_INTP.min), int(_INTP.max)
_INTP_SIZE = np.dtype(np.intp).itemsize


def _intp_index(index, shape):
    """``index`` with its integers as numpy indexes safely: an integer beyond the intp range
    raises BadIndexError (numpy raises OverflowError, or wraps a uint64 around to a negative
    index), and integer arrays become intp."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype.kind in "iu":
            if p.size and (p.max() > _INTP_MAX or p.min() < _INTP_MIN):
                bad = p.max() if p.max() > _INTP_MAX else p.min()
                raise BadIndexError(f"index: index {bad} is out of range for an input of shape {shape}")
            p = p.astype(np.intp, copy=False)
        elif isinstance(p, (int, np.integer)) and not _INTP_MIN <= p <= _INTP_MAX:
            raise BadIndexError(f"index: index {p} is out of range for an input of shape {shape}")
        out.append(p)
    return tuple(out) if isinstance(index, tuple) else out[0]


def _scatter(g, index, shape, axis):
    """A zero array of ``shape`` with ``g`` added at ``index`` (along ``axis``): the gradient of
    indexing as an op, so that create_graph can differentiate it (its own gradient is indexing)."""
    buf = np.zeros(shape, np.result_type(g, 0.0))
    Scatter(index, g, _is_basic(index) if axis == 0 else False, axis).add_into(buf)
    return buf, _SCATTER


_SCATTER = Rule(lambda g, out, h, index, shape, axis: g[index] if axis == 0 else _xp.take(g, index, axis),
                saves=False)


def _take(x, indices, axis=0):
    ndim = np.ndim(x)
    if ndim:
        if not -ndim <= axis < ndim:
            raise ShapeError(f"take: axis {axis} is out of range for an input of shape "
                             f"{np.shape(x)}")
        axis %= ndim
    if indices.dtype.kind not in "iu":
        raise BadIndexError(f"take: indices must be integers, got dtype {indices.dtype}")
    n = x.shape[axis]
    if indices.size and (indices.min() < -n or indices.max() >= n):
        bad = indices[(indices < -n) | (indices >= n)].flat[0]
        raise BadIndexError(f"take: index {bad} out of range [0, {n}) along axis {axis}")
    return np.take(x, indices.astype(np.intp, copy=False), axis=axis), _TAKE


_TAKE = Rule(lambda g, out, x, indices, axis=0:   # intp: uint8 / int16 ids overflow in the scatter-add
             _xp.scatter(g, _value(indices).astype(np.intp, copy=False), x.shape,
                         axis % x.ndim if x.ndim else 0),
             None)


def _concat(*xs, axis=0):
    return np.concatenate(xs, axis=axis), _CONCAT


def _concat_slices(xs, axis, ndim):
    lead = (slice(None),) * (axis % ndim)
    ends = np.cumsum([x.shape[axis] for x in xs])
    return [lead + (slice(e - x.shape[axis], e),) for x, e in zip(xs, ends)]


_CONCAT = Rule(joint=lambda g, out, *xs, axis=0: [g[index] for index in _concat_slices(xs, axis, out.ndim)])


def _stack(*xs, axis=0):
    return np.stack(xs, axis=axis), _STACK


def _stack_slices(n, axis, ndim):   # g[..., i]
    lead = (slice(None),) * (axis % ndim)
    return [lead + (i,) if lead else i for i in range(n)]


_STACK = Rule(joint=lambda g, out, *xs, axis=0:
              [g[index] for index in _stack_slices(len(xs), axis, out.ndim)])


def _flip(x, axis=None):
    return np.flip(x, axis), _FLIP


_FLIP = Rule(lambda g, out, x, axis=None: _xp.flip(g, axis), saves=False)


def _moveaxis(x, source, destination):
    return np.moveaxis(x, source, destination), _MOVEAXIS


_MOVEAXIS = Rule(lambda g, out, x, source, destination: _xp.moveaxis(g, destination, source), saves=False)


def _tile_layout(shape, reps):
    """(the input's shape padded with leading 1s, reps padded the same way, the output shape with
    each axis split into (rep, size) pairs): numpy's ``tile`` rule."""
    n = builtins.max(len(shape), len(reps))
    shape = (1,) * (n - len(shape)) + tuple(shape)
    reps = (1,) * (n - len(reps)) + tuple(reps)
    return shape, reps, tuple(v for pair in zip(reps, shape) for v in pair)


def _tile(x, reps):
    return np.tile(x, reps), _TILE


def _tile_grad(g, out, x, reps):   # the copies summed: g as (r0, d0, r1, d1, ...) summed over the r's
    _, reps_, split = _tile_layout(x.shape, reps)
    return g.reshape(split).sum(axis=tuple(range(0, 2 * len(reps_), 2))).reshape(x.shape)


_TILE = Rule(_tile_grad)


def _pad_slices(widths, shape):   # where the input sits inside the padded output
    return tuple(slice(int(before), int(before) + n) for (before, _), n in zip(widths, shape))


def _pad(x, widths, value=0):
    return np.pad(x, widths or 0, mode="constant", constant_values=value), _PAD   # () for a 0-d input


_PAD = Rule(lambda g, out, x, widths, value=0: g[_pad_slices(widths, x.shape)])


def _gather(x, indices, axis):
    """``take_along_axis(x, indices, axis)`` for indices that are distinct along ``axis`` (a sort's
    permutation, or its first k): the gradient puts each g back where its entry came from."""
    return np.take_along_axis(x, indices, axis), _GATHER


def _put_along(g, indices, axis, shape):
    buf = np.zeros(shape, np.result_type(g, 0.0))
    np.put_along_axis(buf, indices, g, axis)
    return buf


def _put_along_in_ops(g, indices, axis, shape):
    return apply("scatter", _scatter_along, g, indices=_value(indices), axis=axis, shape=shape)


_GATHER = Rule(lambda g, out, x, indices, axis: _xp.put_along(g, _value(indices), axis, x.shape), None)


def _scatter_along(g, indices, axis, shape):   # _gather's gradient as an op (its own is _gather)
    return _put_along(g, indices, axis, shape), _SCATTER_ALONG


_SCATTER_ALONG = Rule(lambda g, out, h, indices, axis, shape: _xp.take_along(g, indices, axis), saves=False)

# ---------------------------------------------------------------- softmax family


def _row_logsumexp(x):
    """(rows, m, z, s) for the rows of a 2-D ``x``: m each row's max, z = x - m and
    s = log sum exp(z) (m and s as columns; a non-finite max is taken as 0).

    A row whose max is +inf: with one +inf, z is the limit as that entry grows (0 there,
    -inf elsewhere), s = 0 and m = inf, so softmax is one-hot, log_softmax 0 and -inf and
    logsumexp inf (a number is meant: the limit, not torch's NaN); with two or more, z is NaN
    (which entry wins is undefined: the whole row NaN, as torch's) and s = inf (logsumexp inf).
    A row of -inf alone, or with a NaN, keeps the plain sums (softmax NaN, logsumexp -inf or NaN).

    The max's own term exp(0) = 1 is left out of the sum and put back by ``log1p``, so the
    small remainder keeps every digit: log_softmax(x) = z - s and logsumexp(x) = m + s lose
    nothing to a large max (logits [1000, 975]: s = 1.4e-11 to full precision).
    """
    rows = np.arange(x.shape[0])
    top = x.argmax(axis=1)
    m = x[rows, top][:, None]
    finite = np.isfinite(m)
    all_finite = finite.all()
    if not all_finite:
        m = np.where(finite, m, 0)
    z = np.subtract(x, m, dtype=_float_of(x))
    e = np.exp(z)
    e[rows, top] = 0
    s = np.log1p(e.sum(axis=1, keepdims=True))
    if not all_finite:   # an all -inf or an inf row: the plain sum
        with np.errstate(divide="ignore"):
            s = np.where(finite, s, np.log(np.exp(z).sum(axis=1, keepdims=True)))
        top_inf = np.flatnonzero(x[rows, top] == np.inf)    # not a NaN max: argmax finds that
        if top_inf.size:
            infinite = x[top_inf] == np.inf
            count = infinite.sum(axis=1)
            one, many = top_inf[count == 1], top_inf[count > 1]
            z[one] = np.where(infinite[count == 1], 0, -np.inf)
            s[one], m[one] = 0, np.inf
            z[many], s[many] = np.nan, np.inf
    return rows, m, z, s


def _shifted_logsumexp(x, axis):
    """(m, z, s) of :func:`_row_logsumexp` along ``axis`` of any ``x`` (m and s kept as size 1)."""
    if x.ndim == 0:   # numpy lets a 0-d input take axis 0 (or -1)
        if axis not in (0, -1, (), (0,), (-1,)):
            raise ShapeError(f"axis {axis} is out of range for a 0-d input")
        return tuple(part.reshape(()) for part in _shifted_logsumexp(x.reshape(1), 0))
    if isinstance(axis, tuple):     # several axes (or none): moved last and taken as one
        axis = normalize_axis_tuple(axis, x.ndim)
        last_axes = tuple(range(x.ndim - len(axis), x.ndim))
    else:   # checked here: np.moveaxis's own error begins 'source:', which names no argument
        axis = normalize_axis_index(axis, x.ndim)
        last_axes = -1
    last = np.moveaxis(x, axis, last_axes)
    lead = last.shape[:x.ndim - len(axis)] if isinstance(axis, tuple) else last.shape[:-1]
    n = last.size // builtins.max(math.prod(lead), 1) if last.size else math.prod(last.shape[len(lead):])
    rows = last.reshape(math.prod(lead), n)
    if n:
        _, m, z, s = _row_logsumexp(rows)
    else:      # an empty sum: log 0 = -inf, as numpy's and torch's
        z = rows.astype(_float_of(x))
        m = np.zeros((rows.shape[0], 1), z.dtype)
        s = np.full((rows.shape[0], 1), -np.inf, z.dtype)
    kept = lead + (1,) * (last.ndim - len(lead))
    return (np.moveaxis(m.reshape(kept), last_axes, axis), np.moveaxis(z.reshape(last.shape), last_axes, axis),
            np.moveaxis(s.reshape(kept), last_axes, axis))


def _logsumexp(x, axis=-1, keepdims=False):
    whole = axis is None                     # over every entry
    m, z, s = _shifted_logsumexp(x.reshape(-1) if whole else x, 0 if whole else axis)
    out = m + s
    if whole:
        out = out.reshape((1,) * x.ndim if keepdims else ())
    elif not keepdims and x.ndim:
        out = np.squeeze(out, axis)
    return out, _LOGSUMEXP


# g times softmax(x) = exp(x - logsumexp(x))
_LOGSUMEXP = Rule(lambda g, out, x, axis=-1, keepdims=False: _xp.expand(g, x.shape, axis, keepdims)
                  * _xp.logsumexp_slope(x, out, axis, keepdims))


def _logsumexp_slope(x, out, axis, keepdims):
    """softmax(x) = exp(x - logsumexp(x)); where the logsumexp is +inf (an entry +inf) that
    is inf - inf, so those slices take softmax's limit (one-hot for one +inf, NaN whole for
    more: see _row_logsumexp) rather than [0, nan]."""
    full = _expand(out, x.shape, axis, keepdims)
    with np.errstate(invalid="ignore"):
        p = np.exp(x - full)
    if np.isposinf(out).any():
        p = np.where(np.isposinf(full), _softmax(x, axis)[0], p)
    return p


def _logsumexp_slope_op(x, out, axis, keepdims):
    """:func:`_logsumexp_slope` as an op (``create_graph``): the same bits, and the limit where
    an entry is +inf, not exp(inf - inf) = NaN.  Its derivative is softmax's, p (gg - sum(gg p))
    over ``axis``, all of it through x: ``out`` (a function of x) takes none, so the second
    derivative of logsumexp is the limit (0) in a row with one +inf, where it was NaN."""
    return _logsumexp_slope(x, out, axis, keepdims), _LOGSUMEXP_SLOPE


_LOGSUMEXP_SLOPE = Rule(lambda gg, p, x, out, axis, keepdims: p * (gg - (gg * p).sum(axis=axis, keepdims=True)),
                        None, saves=False)


def _softmax(x, axis=-1):   # axis None: over all entries (scipy.special.softmax's axis=None)
    _, z, s = _shifted_logsumexp(x, tuple(range(x.ndim)) if axis is None else axis)
    return np.exp(z - s).reshape(x.shape), _SOFTMAX


_SOFTMAX = Rule(lambda g, out, x, axis=-1: out * (g - (g * out).sum(axis=axis, keepdims=True)), saves=False)


def _log_softmax(x, axis=-1):
    _, z, s = _shifted_logsumexp(x, tuple(range(x.ndim)) if axis is None else axis)
    return (z - s).reshape(x.shape), _LOG_SOFTMAX


_LOG_SOFTMAX = Rule(lambda g, out, x, axis=-1: g - _xp.exp(out) * g.sum(axis=axis, keepdims=True),
                    saves=False)

# ---------------------------------------------------------------- losses

_REDUCTIONS = ("mean", "sum", "none")


def _check_targets(who, x, targets, ignore_index):
    """Class ids for a (..., C) input: checked, and the mask of the rows that count."""
    if x.ndim == 0:
        raise ShapeError(f"{who}: the input must have a class axis, got a scalar")
    if targets.dtype.kind not in "iu":
        raise DTypeError(f"{who}: targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != x.shape[:-1]:
        raise ShapeError(f"{who}: an input of shape {x.shape} needs targets of shape "
                         f"{x.shape[:-1]}, got {targets.shape}")
    kept = None if ignore_index is None else targets != ignore_index
    ids = targets if kept is None else targets[kept]
    n_classes = x.shape[-1]
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        bad = ids[(ids < 0) | (ids >= n_classes)].flat[0]
        raise BadIndexError(f"{who}: target {bad} out of range [0, {n_classes})")
    return kept


def _factor(reduction, size, kept):
    """d(loss)/d(per-example loss) of each kept example: None for ``"none"`` (g as is), 1 for a
    sum, 1 / (kept examples) for a mean.  With none kept the mean is NaN (0 / 0, as PyTorch's)
    but every example is ignored, so its gradient is 0, as PyTorch's (a factor of NaN made the
    whole gradient NaN, and an optimizer's step then made every parameter NaN)."""
    if reduction == "none":
        return None
    if reduction == "sum":
        return 1
    n = size if kept is None else int(kept.sum())
    return 0 if n == 0 else 1 / n


def _reduced(per_example, reduction, kept, dtype):
    """The reduced loss (ignored examples are already zero in ``per_example``)."""
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    n = per_example.size if kept is None else int(kept.sum())
    return np.array(np.nan, dtype) if n == 0 else per_example.sum() / n   # NaN for none, as PyTorch


def _per_example(g, factor, shape):
    """The incoming gradient spread to each example's classes: g (reduced) times the factor,
    or g as is with a class axis."""
    return g.reshape(shape + (1,)) if factor is None else g * factor


def _kept_ids(targets, ignore_index):
    """(the ids, ignored ones as 0; the mask of the kept examples or None) of a rule's targets."""
    ids = _value(targets)
    if ignore_index is None:
        return ids, None
    kept = ids != ignore_index
    return np.where(kept, ids, 0), kept


def _cross_entropy(logits, targets, reduction="mean", ignore_index=None):
    """-log softmax(logits)[target] = s - z[target] (z = logits - max, s = log sum exp z).

    Gradient: softmax - onehot(target); the target's entry p - 1 is expm1(z[target] - s), so
    it keeps its digits when p is close to 1.
    """
    kept = _check_targets("cross_entropy", logits, targets, ignore_index)
    n_classes = logits.shape[-1]
    cols = targets.reshape(-1) if kept is None else np.where(kept, targets, 0).reshape(-1)
    rows, _, flat_z, s = _row_logsumexp(logits.reshape(-1, n_classes))
    s = s.reshape(-1)
    per_example = s - flat_z[rows, cols]
    if kept is not None:
        per_example = np.where(kept.reshape(-1), per_example, 0)
    return _reduced(per_example.reshape(targets.shape), reduction, kept, per_example.dtype), _CROSS_ENTROPY


def _softmax_minus_onehot(logits, ids, kept):
    """softmax(logits) - onehot(ids) over the last axis, rows not kept zero; on arrays each
    target's entry p - 1 as expm1(z[target] - s), with its digits when p is close to 1."""
    n_classes = logits.shape[-1]
    rows, _, flat_z, s = _row_logsumexp(logits.reshape(-1, n_classes))
    cols = ids.reshape(-1)
    d = np.subtract(flat_z, s)
    np.exp(d, out=d)
    d[rows, cols] = np.expm1(flat_z[rows, cols] - s[:, 0])
    if kept is not None:
        d[~kept.reshape(-1)] = 0
    return d.reshape(logits.shape)


def _softmax_minus_onehot_in_ops(logits, ids, kept):
    rows = 1.0 if kept is None else kept[..., None]
    return softmax(logits, -1) * rows - _one_hot(ids, logits.shape[-1], logits.dtype) * rows


def _cross_entropy_grad(g, out, logits, targets, reduction="mean", ignore_index=None):
    ids, kept = _kept_ids(targets, ignore_index)
    return (_xp.softmax_minus_onehot(logits, ids, kept)
            * _per_example(g, _factor(reduction, ids.size, kept), ids.shape))


_CROSS_ENTROPY = Rule(_cross_entropy_grad, None)


def _nll_loss(log_probs, targets, reduction="mean", ignore_index=None):   # -log_probs[target]
    kept = _check_targets("nll_loss", log_probs, targets, ignore_index)
    onehot = _one_hot(targets if kept is None else np.where(kept, targets, 0), log_probs.shape[-1],
                      _float_of(log_probs))
    if kept is not None:
        onehot *= kept[..., None]
    per_example = -(log_probs * onehot).sum(axis=-1)
    return _reduced(per_example, reduction, kept, per_example.dtype), _NLL_LOSS


def _nll_grad(g, out, log_probs, targets, reduction="mean", ignore_index=None):
    ids, kept = _kept_ids(targets, ignore_index)
    onehot = _one_hot(ids, log_probs.shape[-1], _float_of(_value(log_probs)))
    if kept is not None:
        onehot *= kept[..., None]
    return -onehot * _per_example(g, _factor(reduction, ids.size, kept), ids.shape)


_NLL_LOSS = Rule(_nll_grad, None)


def _entry_factor(shape, reduction):
    """d(loss)/d(entry) of a loss given per entry: None (``"none"``: g as is), 1 or 1/size."""
    if reduction == "none":
        return None
    return 1 if reduction == "sum" else 1 / builtins.max(int(np.prod(shape)), 1)


def _reduce_entries(per_entry, reduction):
    return per_entry if reduction == "none" else per_entry.sum() if reduction == "sum" else per_entry.mean()


def _scaled(g, factor):
    return g if factor is None else g * factor


def _as_float(x, other):
    """``x``, a loss's input, as a float array when it is bool or integer (its difference,
    square and -|x| wrapped in the integer dtype: mse of uint8 [1, 100] against [3, 0] gave 10
    for 5002, binary cross-entropy of uint8 logits inf): in the dtype numpy gives it beside a
    float ``other`` (float32 logits with bool targets stay float32), else float64, as
    ``np.mean`` reduces integers."""
    if isinstance(x, bool):
        x = np.bool_(x)
    if not isinstance(x, (np.ndarray, np.generic)) or x.dtype.kind not in "biu":
        return x    # a float array, or a Python number (numpy takes it in the array's dtype)
    if isinstance(other, (np.ndarray, np.generic)) and other.dtype.kind == "f":
        return np.asarray(x, np.promote_types(x.dtype, other.dtype))
    return np.asarray(x, np.float64)


def _mse_loss(pred, target, reduction="mean"):   # (pred - target)^2
    d = _as_float(pred, target) - _as_float(target, pred)
    return _reduce_entries(d * d, reduction), _MSE_LOSS


def _mse_grads(g, out, pred, target, reduction="mean"):
    d = pred - target
    gd = 2 * d * _scaled(g, _entry_factor(d.shape, reduction))
    return gd, -gd


_MSE_LOSS = Rule(joint=_mse_grads)


def _bce_with_logits(x, y, reduction="mean"):
    """-[y log sigma(x) + (1 - y) log(1 - sigma(x))] = max(x, 0) - x y + log1p(exp(-|x|));
    d/dx = sigma(x) - y, d/dy = -x."""
    x, y = _as_float(x, y), _as_float(y, x)
    infinite = np.isinf(x)
    if not infinite.any():
        per_entry = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    else:       # the limit, not inf - inf: x (1 - y) as x -> inf, -x y as x -> -inf
        with np.errstate(invalid="ignore"):
            per_entry = np.where(infinite, _bce_at_inf(x, y),
                                 np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    return _reduce_entries(per_entry, reduction), _BCE_WITH_LOGITS


def _bce_at_inf(x, y):
    """The loss's limit at an infinite logit x: 0 for a target that agrees (y = 1 at +inf, y = 0
    at -inf, where x (1 - y) and -x y are inf * 0), else inf times the target's distance."""
    with np.errstate(invalid="ignore"):
        away = np.where(x > 0, 1 - y, y)
        return np.where(away == 0, 0, away * np.inf).astype(np.result_type(x, y), copy=False)


def _bce_grads(g, out, x, y, reduction="mean"):
    gs = _scaled(g, _entry_factor(np.broadcast_shapes(np.shape(_value(x)), np.shape(_value(y))), reduction))
    return (_xp.sigmoid(x) - y) * gs, -(x * gs)   # not -x: an unsigned x wraps (-3 -> 253)


_BCE_WITH_LOGITS = Rule(joint=_bce_grads)


def _one_hot(ids, n, dtype):
    out = np.zeros(ids.shape + (n,), dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out

# ---------------------------------------------------------------- what the rules call

_SELECT_MAX = 6144
"""Above this size a masked gradient is selected bit by bit (:func:`_select`), as np.where
mispredicts on a mask of random signs (np.where 349 us, the selection 51 us at 100,000 entries;
24 and 14 us at 8192); at or below, np.where, as fast (4096: 15 us each) or faster (16: 3.1 us
against 5.3)."""

_SAME_WIDTH_INTS = {8: np.int64, 4: np.int32, 2: np.int16}


def _select(g, keep):
    """``np.where(keep, g, 0)`` for a float ``g`` and a bool ``keep`` of at most its shape,
    branch-free: g's bits ANDed with all ones (keep) or all zeros (+0.0, also where g is inf or
    NaN), so a -0.0 of g stays -0.0 where it is kept, as np.where keeps it."""
    ints = _SAME_WIDTH_INTS.get(g.dtype.itemsize)
    if ints is None or g.dtype.kind != "f":
        return np.where(keep, g, 0)
    return np.bitwise_and(g.view(ints), np.negative(keep.view(np.int8))).view(g.dtype)


def _masked(g, mask):
    """``g * mask`` for a mask of bools or of shares (1, 1/2 at a tie, 0; NaN stays NaN), with
    +0.0 wherever the mask is 0 even where g is inf, NaN or negative (there g * 0 is NaN or
    -0.0): PyTorch's masked rules (relu, clamp, where, maximum, max) select, so a mask of 0 stops
    any gradient.  The same bits at every size (a -0.0 of g where the mask is 1 stays -0.0)."""
    if g.size > _SELECT_MAX:
        if mask.dtype.kind == "b":
            return _select(g, mask)
        with np.errstate(invalid="ignore", over="ignore"):   # (this call's: no warning for
            r = g * mask                                     # the inf * 0 _select replaces)
        return _select(r, mask != 0)
    if mask.dtype.kind == "b":
        return np.where(mask, g, 0)
    return np.where(mask == 0, 0, g) * mask


def _masked_in_ops(g, mask):     # _masked in engine ops (create_graph): the mask a constant
    if mask.dtype.kind == "b":
        return where(mask, g, 0)
    return where(mask == 0, 0, g) * mask


# where numpy's functions and the engine's differ: numpy on arrays, the engine's op on Tensors
_xp = SimpleNamespace(
    exp=_dual(np.exp, lambda x: exp(x)),
    log=_dual(np.log, lambda x: log(x)),
    sin=_dual(np.sin, lambda x: sin(x)),
    cos=_dual(np.cos, lambda x: cos(x)),
    sigmoid=_dual(lambda x: _sigmoid(x)[0], lambda x: sigmoid(x)),
    sigmoid_grad=_dual(lambda g, out, x: _times_in_place(g, _sigmoid_slope(out, x)),
                       lambda g, out, x: g * (sigmoid(x) * sigmoid(-x))),
    tanh_grad=_dual(_tanh_grad, lambda g, out: g * (1 - out * out)),
    normal_cdf=_dual(_phi_big, lambda x: apply("normal_cdf", _normal_cdf, x)),
    where=_dual(np.where, lambda cond, a, b: where(cond, a, b)),
    zeros_like=_dual(np.zeros_like, lambda g: Tensor(np.zeros_like(g._data))),  # no gradient
    masked=_dual(_masked, _masked_in_ops),
    relu_backward=_dual(lambda g, x: _relu_backward(g, x)[0],
                        lambda g, x: apply("relu_backward", _relu_backward, g, x)),
    sign=_dual(_sign_as_torch, lambda x: sign(x)),
    logsumexp_slope=_dual(_logsumexp_slope,
                          lambda x, out, axis, keepdims: apply("logsumexp_slope", _logsumexp_slope_op,
                                                               x, out, axis=axis, keepdims=keepdims)),
    leaky_relu_backward=_dual(lambda g, x, slope: _leaky_relu_backward(g, x, slope)[0],
                              lambda g, x, slope: apply("leaky_relu_backward", _leaky_relu_backward,
                                                        g, x, slope=slope)),
    times_share=_dual(_times_share, lambda g, share: g * share),
    flip=_dual(np.flip, lambda x, axis: flip(x, axis)),
    roll=_dual(np.roll, lambda x, shifts, axis: roll(x, shifts, axis)),
    moveaxis=_dual(np.moveaxis, lambda x, source, destination: moveaxis(x, source, destination)),
    cumsum=_dual(np.cumsum, lambda x, axis: cumsum(x, axis)),
    take=_dual(np.take, lambda x, indices, axis: take(x, indices, axis)),
    broadcast_to=_dual(np.broadcast_to, lambda x, shape: broadcast_to(x, shape)),
    sum_to=_dual(_unbroadcast, lambda x, shape: sum_to(x, shape)),
    expand=_dual(_expand, _expand_rule),
    others=_dual(_others, _others_in_ops),
    scatter=_scatter_grad,
    softmax_minus_onehot=_dual(_softmax_minus_onehot,
                               _softmax_minus_onehot_in_ops),
    put_along=_dual(_put_along,
                    _put_along_in_ops),
    take_along=_dual(np.take_along_axis,
                     lambda x, indices, axis: apply("gather", _gather, x, indices, axis=axis)),
)

# ---------------------------------------------------------------- lean forms (tinygraph.tape)
#
# A replayed step runs its ops in a loop of generated code (tinygraph.tape.compile_scan).  For
# the ops a recurrent step makes most, that code calls numpy directly instead of through the
# op's forward and its rule.  A lean form is not a second rule: it is the source text of the
# forward or rule above, for the situation a recorded step was in (its shapes, dtypes and the
# branch the forward took), with the same numpy calls in the same order on the same arrays, so
# it gives the same bits; where an op or situation has none, the op's own forward and rule run.
# tests/test_engine_lean_forms.py checks every form against its op.
#
# LEAN_FORWARDS: forward -> f(rule, out, *inputs, **kwargs) -> (template, consts) or None, for
# the recorded rule, output and inputs.  The template assigns ``{out}`` from ``{x0}``, ``{x1}``
# ... (``{xs}``: all inputs, comma-separated); ``{t0}``, ``{t1}`` are its own temporaries and
# ``consts`` names the settings it reads (each a placeholder too).  A matrix a product reads
# is written ``{c_x1}`` (``{c_x1T}`` for its transpose): input 1 as it is (``{x1}.T``), or in a
# replay's loops a C-contiguous copy made once when it is the same at every step
# (tinygraph.tape._hoisted).
# LEAN_GRADS: rule -> f(k, out, *inputs, **kwargs) -> (template, consts, result) or None: the
# gradient of input k as a template assigning ``{pg}`` from ``{g}`` (the output's gradient,
# of the output's shape and dtype), ``{out}`` and the inputs (None where the rule does not
# read them: ``reads_out``, ``saves``); ``result``, the (shape, dtype) of that gradient when
# it is a plain array of them, else None.
# LEAN_NAMES: the numpy functions the templates call.

LEAN_NAMES = {"L_dot": np.dot, "L_add": np.add, "L_subtract": np.subtract,
              "L_multiply": np.multiply, "L_divide": np.divide, "L_tanh": np.tanh,
              "L_exp": np.exp, "L_abs": np.abs, "L_negative": np.negative,
              "L_maximum": np.maximum, "L_empty": np.empty, "L_concatenate": np.concatenate,
              "L_stack": np.stack, "L_broadcast_to": np.broadcast_to,
              "L_expand_dims": np.expand_dims, "L_Product": Product,
              "L_sigmoid_slope": _sigmoid_slope}


def _like(*operands):
    """(shape, dtype) of a ufunc of ``operands`` (the output standing in for its gradient)."""
    return np.broadcast_shapes(*(np.shape(x) for x in operands)), np.result_type(*operands)


def _dots(a, b):      # _matmul takes np.dot: rows (or one vector) times a matrix
    return type(a) is np.ndarray and type(b) is np.ndarray and b.ndim == 2 and 1 <= a.ndim <= 2


def _lean_addmm(rule, out, c, a, b):
    # the product is fresh and c is added into it when the sum keeps its shape and dtype
    if rule is _ADDMM_2D and _dots(a, b) and out.dtype == np.result_type(a, b):
        return "{out} = L_dot({x1}, {c_x2})\nL_add({out}, {x0}, out={out})", {}
    return None


def _lean_sigmoid(rule, out, x):      # _sigmoid on a float array, its output and e in a pair
    if type(x) is not np.ndarray or x.dtype.kind != "f":
        return None
    return ("{t0} = L_empty((2,) + {x0}.shape, {x0}.dtype)\n{out} = {t0}[0, ...]\n"
            "{t1} = {t0}[1, ...]\nL_abs({x0}, out={t1})\nL_negative({t1}, out={t1})\n"
            "L_exp({t1}, out={t1})\n{t0} = {t1} + 1\nL_maximum({x0} >= 0, {t1}, out={out})\n"
            "L_divide({out}, {t0}, out={out})"), {}


def _form(template):
    return lambda *args, **kwargs: (template, {})


LEAN_FORWARDS = {
    _add: _form("{out} = {x0} + {x1}"),
    _sub: _form("{out} = {x0} - {x1}"),
    _mul: _form("{out} = {x0} * {x1}"),
    _div: _form("{out} = {x0} / {x1}"),
    _neg: _form("{out} = -{x0}"),
    _exp: _form("{out} = L_exp({x0})"),
    _tanh: _form("{out} = L_tanh({x0})"),
    _sigmoid: _lean_sigmoid,
    _addmm: _lean_addmm,
    _matmul: lambda rule, out, a, b: (("{out} = L_dot({x0}, {c_x1})", {})
                                      if rule is _MATMUL_2D and _dots(a, b) else None),
    _transpose: lambda rule, out, x, axes=None: ("{out} = {x0}.transpose({axes})",
                                                 {"axes": axes}),
    _reshape: lambda rule, out, x, shape: ("{out} = {x0}.reshape({shape})", {"shape": shape}),
    _sum: lambda rule, out, x, axis=None, keepdims=False: (
        "{out} = {x0}.sum(axis={axis}, keepdims={keepdims})",
        {"axis": axis, "keepdims": keepdims}),
    _concat: lambda rule, out, *xs, axis=0: ("{out} = L_concatenate(({xs}), axis={axis})",
                                             {"axis": axis}),
    _stack: lambda rule, out, *xs, axis=0: ("{out} = L_stack(({xs}), axis={axis})",
                                            {"axis": axis}),
}


def _per_input(*forms):     # one form per input
    return lambda k, *args, **kwargs: forms[k](k, *args, **kwargs)


def _g(k, out, *inputs, **kwargs):
    return "{pg} = {g}", {}, _like(out)


def _times(other):     # g times input ``other``
    return lambda k, out, *inputs: ("{pg} = {g} * {x%d}" % other, {}, _like(out, inputs[other]))


def _dot_grad_a(b_at):     # d(a @ b)/da = g b^T
    def form(k, out, *inputs):
        b = inputs[b_at]
        return ("{pg} = L_dot({g}, {c_x%dT})" % b_at, {},
                (out.shape[:-1] + b.shape[:1], np.result_type(out, b)))
    return form


def _dot_grad_b(a_at):     # d(a @ b)/db = a^T g: a Product (backward computes it in place)
    def form(k, out, *inputs):
        a = inputs[a_at]
        if a.ndim == 2:
            return "{pg} = L_Product({x%d}.T, {g})" % a_at, {}, None
        return ("{pg} = {x%d}.reshape(-1, 1) * {g}" % a_at, {},
                ((a.shape[0],) + out.shape, np.result_type(a, out)))
    return form


def _lean_sum_grad(k, out, x, axis=None, keepdims=False):
    if axis is not None and not keepdims and x.shape:
        template = "{pg} = L_broadcast_to(L_expand_dims({g}, {axis}), {shape})"
    else:
        template = "{pg} = L_broadcast_to({g}, {shape})"
    return template, {"axis": axis, "shape": x.shape}, (x.shape, out.dtype)


def _lean_transpose_grad(k, out, x, axes=None):
    back = None if axes is None else tuple(np.argsort([a % x.ndim for a in axes]))
    return "{pg} = {g}.transpose({axes})", {"axes": back}, (x.shape, out.dtype)


def _block(slices):       # input k of concat or stack: its block of g
    def form(k, out, *xs, axis=0):
        index = slices(xs, axis, out.ndim)[k]
        return "{pg} = {g}[{index}]", {"index": index}, (np.shape(xs[k]), out.dtype)
    return form


LEAN_GRADS = {
    _ADD: _g,
    _SUB: _per_input(_g, lambda k, out, a, b: ("{pg} = -{g}", {}, _like(out))),
    _MUL: _per_input(_times(1), _times(0)),
    _DIV: _per_input(lambda k, out, a, b: ("{pg} = {g} / {x1}", {}, _like(out, b)),
                     lambda k, out, a, b: ("{pg} = -{g} * {out} / {x1}", {}, _like(out, out, b))),
    _NEG: lambda k, out, a: ("{pg} = -{g}", {}, _like(out)),
    _EXP: lambda k, out, x: ("{pg} = {g} * {out}", {}, _like(out, out)),
    # _tanh_grad and _times_in_place on arrays: g (1 - out^2) in one temporary
    _TANH: lambda k, out, x: ("{t0} = {out} * {out}\nL_subtract(1, {t0}, out={t0})\n"
                              "{pg} = L_multiply({g}, {t0}, out={t0})", {}, _like(out)),
    _SIGMOID: lambda k, out, x: ("{t0} = L_sigmoid_slope({out}, {x0})\n"
                                 "{pg} = L_multiply({g}, {t0}, out={t0})", {}, _like(out)),
    _ADDMM_2D: _per_input(_g, _dot_grad_a(2), _dot_grad_b(1)),
    _MATMUL_2D: _per_input(_dot_grad_a(1), _dot_grad_b(0)),
    _BACK_TO_SHAPE: lambda k, out, x, **kwargs: ("{pg} = {g}.reshape({shape})",
                                                 {"shape": x.shape}, (x.shape, out.dtype)),
    _TRANSPOSE: _lean_transpose_grad,
    _SUM: _lean_sum_grad,
    _CONCAT: _block(lambda xs, axis, ndim: _concat_slices(xs, axis, ndim)),
    _STACK: _block(lambda xs, axis, ndim: _stack_slices(len(xs), axis, ndim)),
}

# ---------------------------------------------------------------- public functions


def _axis(who, axis, keepdims, dim, keepdim):
    """numpy's ``axis``/``keepdims``, with PyTorch's ``dim``/``keepdim`` accepted as aliases.
    ``keepdims`` must be a bool (or numpy's 0 or 1): in numpy's ``x.sum(axis, dtype)`` the second
    place is the dtype, which read as keepdims would keep the axis without a word."""
    if dim is not None:
        if axis is not None:
            raise ConfigError(f"{who}: give axis= or its alias dim=, not both")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    if not (isinstance(keepdims, (bool, np.bool_))
            or isinstance(keepdims, (int, np.integer)) and keepdims in (0, 1)):
        raise ConfigError(f"{who}: keepdims must be True or False, got {keepdims!r} (numpy's "
                          f"{who}(axis, dtype) takes a dtype second, PyTorch's and this one keepdim; "
                          f"the result has the input's dtype: cast it with tg.cast for another)")
    return (tuple(axis) if isinstance(axis, list) else axis), bool(keepdims)


class ValuesOfDim(Tensor):
    """What ``max``/``min`` give with PyTorch's ``dim=``: the values, as with numpy's ``axis=``
    (``dim=`` is an alias), a Tensor in every op.  PyTorch's ``max(dim=)`` is a (values,
    indices) pair, and its habits of reading it as one, ``x.max(dim=1)[0]`` and ``vals, idx =
    x.max(dim=1)``, would take the first row's values here without a word (a 2-row x unpacks
    into its two maxima); so indexing and iterating it are refused with what to write.
    ``.values`` is the tensor itself, a plain Tensor from then on; ``.indices`` names argmax."""

    __slots__ = ()

    def _refuse(self, what):
        raise ConfigError(f"{self.op}(dim=) gives the values only ({self.op}(axis=)'s, shape "
                          f"{self.shape}), not PyTorch's (values, indices) pair: {what}; take "
                          f"x.{self.op}(dim=d).values (or the result as it is) for the values and "
                          f"x.arg{self.op}(axis=d) for the indices")

    def __getitem__(self, index):
        self._refuse(f"[{index!r}] would index its rows")

    def __iter__(self):
        self._refuse("unpacking or iterating it would take its rows")

    @property
    def values(self):
        self.__class__ = Tensor
        return self

    @property
    def indices(self):
        self._refuse("it has no .indices")


_PLAIN_AXES = frozenset({type(None), int, tuple})   # axes a reduction takes as they are


def _reduction(op, forward):
    """The public function of a reduction: ``f(x, axis=None, keepdims=False, dim=, keepdim=)``."""
    extremum = op in ("max", "min")

    def reduce(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
        if (keepdims.__class__ is bool and axis.__class__ in _PLAIN_AXES and dim is None
                and keepdim is None):      # the common call, checked by type alone (per op)
            return apply(op, forward, x, axis=axis, keepdims=keepdims)
        if extremum and (isinstance(axis, Tensor) or isinstance(dim, Tensor)):
            raise ConfigError(f"{op}(x, other) with a tensor other: PyTorch's {op}(a, b) is "
                              f"elementwise, here the second argument is numpy's axis (a 0-d "
                              f"integer tensor would be read as one); write tg.{op}imum(x, other) "
                              f"for the elementwise {op}imum, or give the axis as an int")
        if dim is not None or keepdim is not None:
            axis, keepdims = _axis(op, axis, keepdims, dim, keepdim)
            out = apply(op, forward, x, axis=axis, keepdims=keepdims)
            if dim is not None and extremum and type(out) is Tensor:
                out.__class__ = ValuesOfDim      # PyTorch's pair habits refused (its docstring)
            return out
        axis, keepdims = _axis(op, axis, keepdims, None, None)
        return apply(op, forward, x, axis=axis, keepdims=keepdims)
    reduce.__name__ = reduce.__qualname__ = op
    return reduce


sum = _reduction("sum", _sum)     # noqa: A001 - numpy's name
mean = _reduction("mean", _mean)
max = _reduction("max", _max)     # noqa: A001 - numpy's name
min = _reduction("min", _min)     # noqa: A001 - numpy's name
prod = _reduction("prod", _prod)
sum.__doc__ = "Sum over ``axis`` (all axes when None); ``dim``/``keepdim`` are aliases."
mean.__doc__ = "Mean over ``axis`` (all axes when None)."
max.__doc__ = ("Largest entry over ``axis``; tied entries share the gradient equally (a NaN is "
               "the largest: the NaN entries share it, as torch's).")
min.__doc__ = ("Smallest entry over ``axis``; tied entries share the gradient equally (a NaN is "
               "the smallest: the NaN entries share it, as torch's).")
prod.__doc__ = "Product over ``axis``; the gradient is the product of the others (exact with zeros)."
max.__doc__ += ("  As PyTorch's ``max``/``min`` without ``dim`` (its ``max(dim=)`` gives a tie's "
                "gradient to one entry): the other entries get 0 even from an inf or NaN gradient.")
min.__doc__ += ("  As PyTorch's ``min``/``max`` without ``dim`` (its ``min(dim=)`` gives a tie's "
                "gradient to one entry): the other entries get 0 even from an inf or NaN gradient.")
amax = _reduction("amax", _amax)
amin = _reduction("amin", _amin)
amax.__doc__ = ("PyTorch's ``amax``: the largest entry over ``axis``; ties share the gradient "
                "equally.  As ``torch.amax``, the gradient is g / count times the mask, so an inf or "
                "NaN gradient makes NaN at the other entries (``tg.max`` puts 0 there), and a "
                "NaN result, equal to no entry, gives its whole row NaN.")
amin.__doc__ = ("PyTorch's ``amin``: the smallest entry over ``axis``; ties share the gradient "
                "equally.  As ``torch.amin``, the gradient is g / count times the mask, so an inf or "
                "NaN gradient makes NaN at the other entries (``tg.min`` puts 0 there), and a "
                "NaN result, equal to no entry, gives its whole row NaN.")


def _ddof(who, ddof, correction, unbiased, dim):
    """numpy's ``ddof``, or PyTorch's ``correction=`` (the same number) or ``unbiased=`` (True is
    ddof 1, False ddof 0); one of them.  The default stays numpy's ddof=0 (torch's is 1), except
    with PyTorch's ``dim=``: that call is torch's, whose default divides by n - 1, so without
    one of the three it is refused rather than read as ddof=0."""
    given = [name for name, v in (("ddof", ddof), ("correction", correction), ("unbiased", unbiased))
             if v is not None]
    if len(given) > 1:
        raise ConfigError(f"{who}: give one of ddof=, correction= and unbiased=")
    for name, v in (("ddof", ddof), ("correction", correction)):
        if v is not None and not isinstance(v, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{who}: {name} must be a number, got {v!r} (numpy's {who}(axis, "
                              f"dtype) takes a dtype second, this one ddof, as PyTorch's the "
                              f"correction; the result has the input's dtype)")
    if not given and dim is not None:
        raise ConfigError(f"{who}(dim=) without correction=: PyTorch's {who}(dim=) divides by n - 1, "
                          f"numpy's {who}(axis=) by n (ddof=0, the default here); say which: "
                          f"correction=1 (PyTorch's default) or ddof=0, or write axis= for numpy's")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise ConfigError(f"{who}: unbiased must be True or False, got {unbiased!r}")
        return int(bool(unbiased))
    return correction if correction is not None else 0 if ddof is None else ddof


def var(x, axis=None, ddof=None, keepdims=False, *, dim=None, keepdim=None, correction=None,
        unbiased=None):
    """Variance over ``axis``, dividing by n - ddof (numpy's default ddof=0, where PyTorch's is
    1); PyTorch's ``correction=`` (= ddof) and ``unbiased=`` (True: ddof 1) are accepted.  With
    PyTorch's ``dim=`` one of the three must be given (its default would be 1): refused without.

    With ddof >= n the value is inf (NaN for a constant row), as numpy's and torch's; the
    gradient is then 2 (x - mean) / 0, i.e. -inf, 0 or +inf by the sign of x - mean (the limit
    as ddof rises to n).  torch 2.13 gives +inf at every entry there; the engine keeps the
    signed limit."""
    axis, keepdims = _axis("var", axis, keepdims, dim, keepdim)
    ddof = _ddof("var", ddof, correction, unbiased, dim)
    return apply("var", _var, x, axis=axis, ddof=ddof, keepdims=keepdims)


def std(x, axis=None, ddof=None, keepdims=False, *, dim=None, keepdim=None, correction=None,
        unbiased=None):
    """Standard deviation over ``axis`` (sqrt of ``var``; the same ``ddof``, ``correction=``
    and ``unbiased=``)."""
    axis, keepdims = _axis("std", axis, keepdims, dim, keepdim)
    ddof = _ddof("std", ddof, correction, unbiased, dim)
    return apply("std", _std, x, axis=axis, ddof=ddof, keepdims=keepdims)


def logsumexp(x, axis=-1, keepdims=False, *, dim=None, keepdim=None):
    """log sum exp(x) over ``axis``, without overflow or lost digits; gradient softmax(x)."""
    axis, keepdims = _axis("logsumexp", None if dim is not None else axis, keepdims, dim, keepdim)
    return apply("logsumexp", _logsumexp, x, axis=axis, keepdims=keepdims)


def norm(x, ord=None, axis=None, keepdims=False, *, dim=None, keepdim=None, p=None):  # noqa: A002
    """The L2 norm over ``axis`` (of all entries, the Frobenius norm, when None), as
    ``np.linalg.norm``'s default and torch's ``norm``; ``dim``/``keepdim`` are aliases.  Its
    gradient x / norm is taken as 0 where the norm is 0, and so is that gradient's own
    derivative under ``create_graph`` (torch's is NaN there).

    The second argument is the order, as in both ``np.linalg.norm(x, ord)`` and PyTorch's
    ``x.norm(p)`` (``p=`` its alias): only the 2-norm is computed, so ``ord`` may be None,
    ``"fro"``, or 2 over one axis (numpy's ord=2 of a matrix is its largest singular value,
    torch's p=2 the Frobenius norm); any other order is refused, never read as an axis.
    """
    if p is not None:
        if ord is not None:
            raise ConfigError("norm: give ord= or its alias p=, not both")
        ord = p        # noqa: A001
    axis, keepdims = _axis("norm", axis, keepdims, dim, keepdim)
    if ord is not None:
        _check_norm_order(x, ord, axis)
    if axis is None and not keepdims:
        return apply("norm", _norm, x)
    return apply("norm", _norm, x, axis=axis, keepdims=keepdims)


def _check_norm_order(x, order, axis):
    """Refuse an order of norm other than the 2-norm's (None, "fro", 2 over one axis)."""
    ndim = np.ndim(x._data if isinstance(x, Tensor) else x)
    one_axis = (isinstance(axis, (int, np.integer)) or (isinstance(axis, tuple) and len(axis) == 1)
                or (axis is None and ndim == 1))
    is_two = (isinstance(order, (int, float, np.integer, np.floating)) and not isinstance(order, bool)
              and order == 2)
    if (isinstance(order, str) and order == "fro") or (is_two and one_axis):
        return
    what = ("ord=2 over several axes is the largest singular value in numpy and the Frobenius norm "
            "in PyTorch" if is_two else f"the order {order!r} is not the 2-norm")
    raise ConfigError(f"norm: {what}; norm's second argument is the order (numpy's ord=, PyTorch's "
                      f"p=), never the axis, and only the 2-norm is computed: write t.norm(axis=a) "
                      f"(or ord='fro') for it, abs(t).sum(axis=a) for the 1-norm, abs(t).max(axis=a) "
                      f"for the max norm")


def cumsum(x, axis=None, *, dim=None):
    """Cumulative sum along ``axis`` (over the flattened input when None, as numpy)."""
    axis, _ = _axis("cumsum", None if dim is not None else axis, False, dim, None)
    return apply("cumsum", _cumsum, x, axis=axis)


def _index_result(fn, x, axis, keepdims, dim, keepdim, who):
    axis, keepdims = _axis(who, axis, keepdims, dim, keepdim)
    data = np.asarray(_constant_of(x, f"the step takes an {who} (an index computed from values, as a "
                                      "constant)"))
    try:
        return Tensor(fn(data, axis=axis, keepdims=keepdims))
    except (ValueError, TypeError, IndexError) as e:    # numpy's AxisError, an empty input
        raise ShapeError(f"{who}: {e} (input shape {data.shape})") from None


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the largest entry along ``axis`` (of the flattened input when None): an integer
    Tensor with no gradient."""
    return _index_result(np.argmax, x, axis, keepdims, dim, keepdim, "argmax")


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the smallest entry along ``axis``: an integer Tensor with no gradient."""
    return _index_result(np.argmin, x, axis, keepdims, dim, keepdim, "argmin")


add = binary_op("add", "add", _add,
                "a + b, broadcasting as numpy; each gradient is summed back to its input's shape.")


sub = binary_op("sub", "sub", _sub, "a - b, broadcasting as numpy.")


mul = binary_op("mul", "mul", _mul, "a * b elementwise, broadcasting as numpy.")


div = binary_op("div", "div", _div, "a / b elementwise (true division), broadcasting as numpy.")


power = binary_op("power", "pow", _np_pow,
                 "a ** b elementwise (numpy's ``power``); d/da is 0 where b == 0, x ** 0 included.")
_power_operator = binary_op("power", "pow", _pow)     # t ** x, as numpy's operator


neg = unary_op("neg", "neg", _neg, "-x.")


exp = unary_op("exp", "exp", _exp, "e ** x; gradient exp(x).")


log = unary_op("log", "log", _log, "The natural logarithm; gradient 1 / x.")


log1p = unary_op("log1p", "log1p", _log1p, "log(1 + x), accurate for small x.")


tanh = unary_op("tanh", "tanh", _tanh, "tanh(x); gradient 1 - tanh(x) ** 2.")


sigmoid = unary_op("sigmoid", "sigmoid", _sigmoid,
                   "1 / (1 + exp(-x)), computed by the sign of x (full relative precision for x << 0).")


softplus = unary_op("softplus", "softplus", _softplus,
                    "log(1 + exp(x)), exact for every x (no overflow); gradient sigmoid(x).")


relu = unary_op("relu", "relu", _relu, "max(x, 0); gradient 0 where x <= 0, else 1 (1 at NaN, as "
                "torch's).")


def leaky_relu(x, slope=0.01):
    """x where x > 0, slope * x elsewhere."""
    slope = _constant_of(slope, "the step gives leaky_relu a Tensor slope (a constant)")
    if np.ndim(slope) or np.asarray(slope).dtype.kind not in "iuf":
        raise ConfigError(f"leaky_relu: slope must be a number, got {slope!r}")
    return apply("leaky_relu", _leaky_relu, x, slope=slope)


abs = unary_op("abs", "abs", _abs, "|x|; gradient sign(x) (0 at 0 and at NaN, as torch's).")  # noqa: A001 - numpy's name


sqrt = unary_op("sqrt", "sqrt", _sqrt, "The square root; gradient 1 / (2 sqrt(x)).")


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b`` (numpy's ``where``, broadcasting); ``cond`` gets
    no gradient."""
    cond = np.asarray(_constant_of(cond, "the step gives where() a Tensor condition (its value as a "
                                         "constant)"), dtype=bool)
    return apply("where", _where, cond, a, b)


maximum = binary_op("maximum", "maximum", _maximum,
                    "Elementwise max; at a tie each input gets half the gradient (as PyTorch).")


minimum = binary_op("minimum", "minimum", _minimum,
                    "Elementwise min; at a tie each input gets half the gradient (as PyTorch).")


def _no_bound(x, low):
    """The bound that limits nothing, standing for a bound not given: -inf or inf, or for a
    bool or integer ``x`` its dtype's least or largest value (an infinite float made an integer
    tensor float64 where numpy's clip of int8 with a bound None stays int8)."""
    dtype = np.asarray(_value(x)).dtype if not isinstance(x, Tensor) else x._data.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return dtype.type(info.min if low else info.max)
    if dtype.kind == "b":
        return np.bool_(not low)
    return -np.inf if low else np.inf


def clip(x, lo=None, hi=None, *, min=None, max=None):   # noqa: A002 - torch's names
    """``x`` limited to [lo, hi] (either may be None); the gradient passes where lo <= x <= hi.

    ``min=`` and ``max=`` (PyTorch's clamp keywords) are other names of ``lo`` and ``hi``; a
    bound given under both names raises ConfigError."""
    for name, alias, given, other in (("lo", "min", lo, min), ("hi", "max", hi, max)):
        if given is not None and other is not None:
            raise ConfigError(f"clip: the bound {name} is given twice, as {name}= (or "
                              f"positionally) and as {alias}=; give it once")
    lo = min if lo is None else lo
    hi = max if hi is None else hi
    if lo is None and hi is None:
        raise ConfigError("clip: give lo=, hi= or both")
    return apply("clip", _clip, x, _no_bound(x, True) if lo is None else lo,
                 _no_bound(x, False) if hi is None else hi)


def clamp(x, min=None, max=None):   # noqa: A002 - torch's names
    """PyTorch's name for :func:`clip`: ``x`` limited to [min, max] (either may be None)."""
    if min is None and max is None:
        raise ConfigError("clamp: give min=, max= or both")
    return apply("clamp", _clip, x, _no_bound(x, True) if min is None else min,
                 _no_bound(x, False) if max is None else max)


sign = unary_op("sign", "sign", _sign, "-1, 0 or 1 by the sign of each entry (0 for NaN, as torch's); its "
                "gradient is 0.")
_np_sign = unary_op("sign", "sign", _numpy_sign,
                    "``np.sign`` of a Tensor: a node with gradient 0 as :func:`sign`, with "
                    "numpy's values (NaN for NaN, where ``tg.sign`` gives torch's 0).")


def round(x, decimals=0):   # noqa: A001 - numpy's and torch's name
    """``x`` rounded to ``decimals`` places, halves to even (as ``np.round`` and
    ``torch.round``); its gradient is 0, as torch's."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise ConfigError(f"round: decimals must be an int, got {decimals!r}")
    return apply("round", _round, x, decimals=int(decimals))


floor = unary_op("floor", "floor", _floor, "The largest integer <= x; its gradient is 0, as torch's.")
ceil = unary_op("ceil", "ceil", _ceil, "The smallest integer >= x; its gradient is 0, as torch's.")
trunc = unary_op("trunc", "trunc", _trunc, "x rounded toward 0; its gradient is 0, as torch's.")
clone = unary_op("clone", "clone", _clone, "A copy of ``x`` in new memory, in the graph (the "
                 "gradient passes through), as torch's ``clone``; ``detach`` cuts it.")


def roll(x, shifts, axis=None, *, dims=None):
    """Entries shifted by ``shifts`` along ``axis`` (ints or equal-length tuples), wrapping
    around; over the flattened input when ``axis`` is None.  As ``np.roll`` and torch's
    ``roll`` (``dims`` is its name for ``axis``); the gradient is rolled back."""
    if dims is not None:
        if axis is not None:
            raise ConfigError("roll: give axis= or its alias dims=, not both")
        axis = dims
    shifts, axis = (tuple(v) if isinstance(v, (list, tuple)) else v for v in (shifts, axis))
    for what, value in (("shifts", shifts), ("axis", axis)):
        ints = value if isinstance(value, tuple) else () if value is None else (value,)
        if (value is None and what == "shifts") or any(
                isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in ints):
            raise ConfigError(f"roll: {what} must be an int or a tuple of ints, got {value!r}")
    if isinstance(shifts, tuple) and (not isinstance(axis, tuple) or len(shifts) != len(axis)):
        raise ConfigError(f"roll: shifts {shifts!r} need a tuple of as many axes, got axis {axis!r}")
    shape = x.shape if isinstance(x, Tensor) else np.shape(x)
    for a in axis if isinstance(axis, tuple) else () if axis is None else (axis,):
        _checked_axis("roll", shape, a)
    return apply("roll", _roll, x, shifts=shifts, axis=axis)


square = unary_op("square", "square", _square, "x ** 2; gradient 2 x.")


expm1 = unary_op("expm1", "expm1", _expm1, "exp(x) - 1, accurate for small x.")


sin = unary_op("sin", "sin", _sin, "sin(x); gradient cos(x).")


cos = unary_op("cos", "cos", _cos, "cos(x); gradient -sin(x).")


gelu = unary_op("gelu", "gelu", _gelu,
                "x Phi(x), Phi the standard normal CDF: the erf form (PyTorch's default ``gelu``), "
                "exact in both tails; its gradient is Phi(x) + x phi(x).")


matmul = binary_op("matmul", "matmul", _matmul,
                  "a @ b as numpy's ``matmul``: (n, k) @ (k, m) -> (n, m), 1-D operands as "
                  "vectors, leading axes broadcast.")


def addmm(c, a, b):
    """``c + a @ b`` as one node (PyTorch's name): the affine step of a recurrence, one node
    and one saved array fewer than ``c + (a @ b)``.  ``c`` broadcasts against ``a @ b``."""
    return _apply("addmm", _addmm, (c, a, b), _NO_SETTINGS)


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def reshape(x, *shape):
    """``x`` with ``shape`` (``reshape(x, 3, 4)`` or ``reshape(x, (3, 4))``, one -1 inferred), as
    numpy's ``reshape``; also ``t.view(*shape)``."""
    return apply("reshape", _reshape, x, shape=_shape_args(shape))


def transpose(x, *axes):
    """The axes reversed (``axes`` omitted or None, as ``.T``) or permuted as ``axes`` (numpy's:
    the new order of every axis).  Two axes given one by one, PyTorch's ``transpose(dim0, dim1)``,
    are refused where numpy's reading differs without an error: ``t.transpose(0, 1)`` of a 2-D
    tensor keeps it as it is in numpy and swaps its axes in PyTorch (``t.T`` or ``t.swapaxes``
    say which); on more or fewer than 2 axes the error names ``swapaxes``."""
    if len(axes) == 2 and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                              for a in axes):
        shape = np.shape(x._data if isinstance(x, Tensor) else x)
        if len(shape) != 2 or (all(-2 <= a < 2 for a in axes) and [a % 2 for a in axes] == [0, 1]):
            what = ("keeps a 2-D tensor as it is (numpy's transpose takes the new order of every "
                    "axis), where PyTorch's swaps its two axes" if len(shape) == 2 else
                    f"names 2 axes of a tensor of shape {shape}, where numpy's transpose takes "
                    "the new order of every axis")
            raise ShapeError(f"transpose{tuple(int(a) for a in axes)} {what}: write t.T or "
                             f"t.swapaxes({int(axes[0])}, {int(axes[1])}) to swap two axes "
                             "(PyTorch's transpose(dim0, dim1)), or t.permute(...) with every axis")
    axes = _shape_args(axes)
    return apply("transpose", _transpose, x, axes=None if axes in ((), (None,)) else axes)


def swapaxes(x, axis1, axis2):
    """``x`` with axes ``axis1`` and ``axis2`` exchanged."""
    return apply("swapaxes", _swapaxes, x, axis1=axis1, axis2=axis2)


def squeeze(x, axis=None, *, dim=None):
    """Drop axes of length 1 (all of them when ``axis`` is None)."""
    axis, _ = _axis("squeeze", axis, False, dim, None)
    return apply("squeeze", _squeeze, x, axis=axis)


def expand_dims(x, axis=None, *, dim=None):
    """Insert an axis of length 1 at ``axis`` (an int or a tuple); also ``t.unsqueeze(axis)``
    (``dim`` an alias, as torch's ``unsqueeze(dim)``)."""
    axis, _ = _axis("unsqueeze", axis, False, dim, None)
    if axis is None:
        raise ConfigError("unsqueeze: give the axis to insert (axis= or dim=)")
    return apply("unsqueeze", _expand_dims, x, axis=axis)


unsqueeze = expand_dims


flatten = unary_op("flatten", "flatten", _flatten, "The entries as one axis (C order).")


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (numpy's rule); the gradient is summed back."""
    return apply("broadcast_to", _broadcast_to, x, shape=tuple(shape))


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (undoing broadcasting): what the engine does to every gradient."""
    shape = tuple(shape)
    if isinstance(x, Tensor) and x.shape == shape:
        return x
    return apply("sum_to", _sum_to, x, shape=shape)


def getitem(x, index):
    """``x[index]``: basic and integer-array indexing as numpy; the gradient is scatter-added
    into ``x``'s shape (a repeated index gets the sum)."""
    if type(index) is not int:      # a Python int (a step of an unroll) is plain already
        index = _plain_index(index)
    return apply("index", _getitem, x, index=index)


def setitem(x, index, value):
    """``x[index] = value`` in ``x``'s own memory (numpy's assignment: ``value`` broadcast to the
    selection and cast to ``x``'s dtype), as PyTorch's habit ``with tg.no_grad(): w[0] = 0``: the
    rules of ``+=`` hold (a tensor that requires grad only under ``tg.no_grad()``, a graph that
    used ``x`` refuses backward afterwards, a failed assignment changes nothing).  A
    differentiable assignment is ``tg.where(mask, value, x)``."""
    if not isinstance(x, Tensor):
        raise DTypeError(f"setitem: x must be a Tensor, got {type(x).__name__}")
    index = _intp_index(_plain_index(index), x.shape) if type(index) is not int else index

    def assign(a, v, out, casting):     # (_in_place's ufunc: numpy's assignment casting)
        if out is not a:
            np.copyto(out, a)
        out[index] = v

    return x._in_place(assign, "assignment x[...] =", value, "tg.where(mask, value, x)")


def _plain_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    plain = []
    for p in parts:
        if isinstance(p, Tensor):
            p = _constant_of(p, "the step indexes with a Tensor (its value as a constant)")
        elif isinstance(p, list):
            p = np.asarray(p)
            if p.size == 0 and p.dtype.kind == "f":    # [] is float64 to numpy: no indices
                p = p.astype(np.intp)
        if isinstance(p, np.ndarray):
            if p.dtype.kind not in "iub":
                raise BadIndexError(f"index: indices must be integers or booleans, got dtype {p.dtype}")
            if p.dtype.kind in "iu" and p.dtype.itemsize < _INTP_SIZE:   # uint8 / int16 ids
                p = p.astype(np.intp)          # overflow in the scatter-add of the gradient
            else:      # kept for backward: the caller may change its array after the op
                p = p.copy()
        plain.append(p)
    return tuple(plain) if isinstance(index, tuple) else plain[0]


_AXIS_UNSAID = object()     # take's axis when the caller gives none


def take(x, indices, axis=_AXIS_UNSAID):
    """Select entries of ``x`` along ``axis`` by integer ``indices`` (numpy's ``take``;
    ``axis=None`` takes from the flattened input, as numpy's).

    Without ``axis`` an input of two axes or more is refused: numpy's ``take`` and PyTorch's
    ``torch.take`` read that call as the flattened input, where this one took rows (axis 0);
    write ``axis=0`` for rows (an embedding lookup) or ``axis=None`` for theirs.  A vector or a
    0-d input reads alike either way, so its axis may be left out (0).

    ``indices`` may be a Tensor: it then stays a parent of the result (with no
    gradient), which is how one-hot inputs given as ids appear in the DAG.
    """
    if axis is _AXIS_UNSAID:
        shape = np.shape(x._data if isinstance(x, Tensor) else x)
        if len(shape) >= 2:
            raise ConfigError(f"take: give axis= for an input of shape {shape}: numpy's np.take and "
                              f"PyTorch's torch.take take from the flattened input when no axis is "
                              f"given, where tg.take took rows; write axis=0 for rows (an embedding "
                              f"lookup) or axis=None for the flattened input")
        axis = 0
    if not isinstance(indices, Tensor):
        indices = np.asarray(indices)
        if indices.size == 0 and indices.dtype.kind == "f":    # [] is float64 to numpy: no ids
            indices = indices.astype(np.intp)
    if axis is None or (axis in (0, -1) and not np.shape(x._data if isinstance(x, Tensor) else x)):
        x, axis = flatten(x), 0     # numpy's rule: from the flattened input (a 0-d one as (1,))
    return apply("take", _take, x, indices, axis=axis)


def split(x, sections_or_indices, axis=0, *, dim=None):
    """Split ``x`` along ``axis`` by numpy's ``array_split`` rule: an int N gives N parts
    (the first ``len % N`` one longer), a list of indices gives the parts between them.

    Returns a list of Tensors, each its own node (its gradient lands in its slice of x).
    PyTorch's ``split`` reads the same arguments as part sizes, so its ``dim=`` is refused
    (naming the split points that give those parts), as are split points that decrease (numpy
    would give overlapping parts; they read as PyTorch's sizes).  ``tg.chunk`` is PyTorch's
    ``chunk``.
    """
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    if not shape:
        raise ShapeError("split: cannot split a 0-d tensor")
    axis = _checked_axis("split", shape, dim if dim is not None else axis)
    n = shape[axis]
    if not isinstance(sections_or_indices, (int, np.integer)) and (
            not isinstance(sections_or_indices, (list, tuple, np.ndarray, range))
            or np.asarray(sections_or_indices).dtype.kind not in "iu" and len(sections_or_indices)):
        raise ConfigError(f"split: sections_or_indices must be a number of sections or a list of "
                          f"integer indices, got {sections_or_indices!r}")
    if dim is not None:
        _refuse_split_sizes(sections_or_indices, n, axis, "dim= is PyTorch's")
    if isinstance(sections_or_indices, (int, np.integer)):
        parts = int(sections_or_indices)
        if parts <= 0:
            raise ConfigError(f"split: the number of sections must be positive, got {parts}")
        size, extra = divmod(n, parts)
        bounds = np.cumsum([0] + [size + 1] * extra + [size] * (parts - extra))
    else:
        points = [int(i) for i in sections_or_indices]
        at = [builtins.min(builtins.max(i + n if i < 0 else i, 0), n) for i in points]  # as slices
        if any(b < a for a, b in zip(at, at[1:])):
            _refuse_split_sizes(points, n, axis, f"the split points {points} decrease (numpy's "
                                                 f"array_split would give overlapping parts)")
        bounds = [0] + points + [n]
    lead = (slice(None),) * axis
    return [apply("split", _getitem, x, index=lead + (slice(int(a), int(b)),))
            for a, b in zip(bounds[:-1], bounds[1:])]


def _refuse_split_sizes(sizes, n, axis, why):
    """Refuse a split that PyTorch reads as part sizes, naming numpy's split points for them."""
    if isinstance(sizes, (int, np.integer)):
        points = list(range(int(sizes), n, int(sizes))) if sizes > 0 else None
        theirs = f"parts of {int(sizes)}"
    else:
        sizes = [int(k) for k in sizes]
        points = ([int(k) for k in np.cumsum(sizes)[:-1]]
                  if builtins.sum(sizes) == n and builtins.min(sizes, default=0) >= 0 else None)
        theirs = f"parts of sizes {sizes}"
    hint = (f"for PyTorch's {theirs} write tg.split(x, {points}, axis={axis})" if points is not None
            else f"as PyTorch's sizes they do not fit the {n} entries along axis {axis}")
    raise ConfigError(f"split: {why}; tg.split is numpy's array_split (an int is the number of "
                      f"parts, a list the split points), where PyTorch's split takes part sizes: "
                      f"{hint} (tg.chunk(x, k) is PyTorch's chunk)")


def concat(tensors, axis=0, *, dim=None):
    """Join ``tensors`` along ``axis`` (``axis=None``: flattened first, as numpy's; ``dim`` an
    alias, as torch's ``cat``)."""
    if dim is not None:
        axis, _ = _axis("concat", None, False, dim, None)
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    if axis is None:
        tensors, axis = [flatten(x) for x in tensors], 0
    return apply("concat", _concat, *tensors, axis=axis)


def stack(tensors, axis=0, *, dim=None):
    """Join ``tensors`` along a new axis ``axis`` (``dim`` an alias, as torch's ``stack``)."""
    axis, _ = _axis("stack", None if dim is not None else axis, False, dim, None)
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    return apply("stack", _stack, *tensors, axis=axis)


def cat(tensors, axis=0, *, dim=None):
    """PyTorch's name for :func:`concat` (``dim`` an alias of ``axis``)."""
    axis, _ = _axis("cat", None if dim is not None else axis, False, dim, None)
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: needs at least one tensor")
    return apply("cat", _concat, *tensors, axis=axis)


def _shapes(tensors):
    return [np.shape(t._data if isinstance(t, Tensor) else t) for t in tensors]


def hstack(tensors):
    """numpy's ``hstack``: join along axis 1, or along axis 0 when the inputs are 1-D."""
    tensors = [reshape(t, (1,)) if not np.shape(t._data if isinstance(t, Tensor) else t) else t
               for t in tensors]
    if not tensors:
        raise ShapeError("hstack: needs at least one tensor")
    return apply("hstack", _concat, *tensors, axis=0 if len(_shapes(tensors)[0]) == 1 else 1)


def vstack(tensors):
    """numpy's ``vstack``: join along axis 0, 0-d and 1-D inputs taken as rows (1, n)."""
    tensors = [reshape(t, (1, -1)) if len(shape) < 2 else t
               for t, shape in zip(tensors, _shapes(tensors))]
    if not tensors:
        raise ShapeError("vstack: needs at least one tensor")
    return apply("vstack", _concat, *tensors, axis=0)


def _checked_axis(who, shape, axis):
    if not shape:
        raise ShapeError(f"{who}: needs at least one axis, got a 0-d input")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ShapeError(f"{who}: axis {axis!r} is out of range for an input of shape {shape}")
    return int(axis) % len(shape)


def unbind(x, axis=0, *, dim=None):
    """The slices of ``x`` along ``axis`` as a list of tensors (that axis removed), as PyTorch's."""
    axis, _ = _axis("unbind", None if dim is not None else axis, False, dim, None)
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    axis = _checked_axis("unbind", shape, axis)
    lead = (slice(None),) * axis
    return [apply("unbind", _getitem, x, index=lead + (i,)) for i in range(shape[axis])]


def chunk(x, chunks, axis=0, *, dim=None):
    """PyTorch's ``chunk``: parts of ceil(n / chunks) along ``axis`` (the last may be smaller, and
    there may be fewer than ``chunks`` parts; an empty axis gives ``chunks`` empty parts, as
    torch's); a list of tensors."""
    axis, _ = _axis("chunk", None if dim is not None else axis, False, dim, None)
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    axis = _checked_axis("chunk", shape, axis)
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ConfigError(f"chunk: the number of chunks must be a positive integer, got {chunks!r}")
    n = shape[axis]
    size = builtins.max(-(-n // int(chunks)), 1)
    lead = (slice(None),) * axis
    if n == 0:    # torch's: ``chunks`` empty parts (a, b, c = chunk(x, 3) holds for an empty x too)
        return [apply("chunk", _getitem, x, index=lead + (slice(0, 0),)) for _ in range(int(chunks))]
    return [apply("chunk", _getitem, x, index=lead + (slice(a, builtins.min(a + size, n)),))
            for a in range(0, n, size)]


def flip(x, axis=None, *, dims=None):
    """Reverse the order of entries along ``axis`` (an int or a tuple; all axes when None);
    ``dims`` is PyTorch's name."""
    if dims is not None:
        if axis is not None:
            raise ConfigError("flip: give axis= or its alias dims=, not both")
        axis = dims
    return apply("flip", _flip, x, axis=tuple(axis) if isinstance(axis, list) else axis)


def permute(x, *axes):
    """The axes of ``x`` in the order ``axes`` (``t.permute(2, 0, 1)`` or ``t.permute((2, 0, 1))``),
    as PyTorch's ``permute`` and numpy's ``transpose(x, axes)``."""
    axes = _shape_args(axes)
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    if sorted(a % len(shape) if len(shape) else a for a in axes) != list(range(len(shape))):
        raise ShapeError(f"permute: axes {tuple(axes)} are not a permutation of the axes of an input "
                         f"of shape {shape}")
    return apply("permute", _transpose, x, axes=tuple(axes))


def moveaxis(x, source, destination):
    """numpy's ``moveaxis``: axis ``source`` (int or tuple) moved to ``destination``, others kept
    in order."""
    source = tuple(source) if isinstance(source, list) else source
    destination = tuple(destination) if isinstance(destination, list) else destination
    return apply("moveaxis", _moveaxis, x, source=source, destination=destination)


def _reps(who, reps):
    reps = tuple(_shape_args(reps))
    if any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0 for r in reps):
        raise ConfigError(f"{who}: repetitions must be integers >= 0, got {reps}")
    return tuple(int(r) for r in reps)


def tile(x, reps):
    """numpy's ``tile``: ``x`` repeated ``reps[i]`` times along axis i (the shorter of x's shape
    and reps padded with leading 1s); the gradient sums the copies."""
    reps = _reps("tile", reps if isinstance(reps, (tuple, list)) else (reps,))
    _check_tile_size("tile", x, reps)
    return apply("tile", _tile, x, reps=reps)


def _check_tile_size(who, x, reps):
    """AllocationError before a tiling too large for memory is allocated."""
    data = x._data if isinstance(x, Tensor) else np.asarray(x)
    shape, reps_, _ = _tile_layout(data.shape, reps)
    check_size(who, tuple(r * n for r, n in zip(reps_, shape)), data.dtype, (data.shape,))


def repeat(x, *reps):
    """PyTorch's ``Tensor.repeat`` (numpy's ``tile``): one count per axis, at least as many as
    ``x`` has axes (not numpy's ``repeat``, which repeats each entry)."""
    reps = _reps("repeat", reps)
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    if len(reps) < len(shape):
        raise ShapeError(f"repeat: needs a count for each of the {len(shape)} axes of an input of "
                         f"shape {shape}, got {reps} (tg.tile pads the counts with 1s)")
    _check_tile_size("repeat", x, reps)
    return apply("repeat", _tile, x, reps=reps)


def pad(x, pad_width, value=0):
    """numpy's ``pad`` in its constant mode: ``pad_width`` is an int, a pair (before, after) for
    every axis, or one pair per axis (not PyTorch's last-axis-first list); ``value`` fills."""
    shape = np.shape(x._data if isinstance(x, Tensor) else x)
    try:
        widths = np.asarray(pad_width)
        if widths.dtype.kind not in "iu" or widths.ndim > 2:
            raise ValueError
        widths = np.broadcast_to(widths, (len(shape), 2))
    except ValueError:
        raise ShapeError(f"pad: pad_width must be an int, a pair or one pair per axis of integers "
                         f"for an input of shape {shape}, got {pad_width!r}") from None
    if (widths < 0).any():
        raise ShapeError(f"pad: widths must be >= 0, got {pad_width!r}")
    if not np.isscalar(value) or isinstance(value, (str, bytes)):
        raise ConfigError(f"pad: value must be a number, got {value!r}")
    check_size("pad", tuple(int(n + before + after) for n, (before, after) in zip(shape, widths.tolist())),
               np.result_type(x._data if isinstance(x, Tensor) else np.asarray(x), value), (shape,))
    return apply("pad", _pad, x, widths=tuple(map(tuple, widths.tolist())), value=value)


def expand(x, *shape):
    """PyTorch's ``expand``: ``x`` broadcast to ``shape``, where -1 keeps an axis's size and new
    axes may be added in front; the gradient is summed back."""
    shape = tuple(_shape_args(shape))
    own = np.shape(x._data if isinstance(x, Tensor) else x)
    new = len(shape) - len(own)
    if new < 0 or any(n == -1 for n in shape[:new]):
        raise ShapeError(f"expand: cannot expand an input of shape {own} to {shape}")
    target = tuple(own[i - new] if n == -1 else n for i, n in enumerate(shape))
    return apply("expand", _broadcast_to, x, shape=target)


def _ordered(who, x, axis, descending, k=None):
    """(values, indices) of ``x`` sorted along ``axis`` (the first ``k`` of them when given): the
    values a node whose gradient goes back to where each entry came from, the indices int64."""
    data = np.asarray(_constant_of(x, f"the step takes a {who} (an order computed from values, as a "
                                     "constant)"))
    scalar = data.ndim == 0
    if scalar:   # as PyTorch: a 0-d input is its own sort, with index 0
        if axis not in (0, -1):
            raise ShapeError(f"{who}: axis {axis!r} is out of range for a 0-d input")
        x, data, axis = reshape(x, (1,)), data.reshape(1), 0
    axis = _checked_axis(who, data.shape, axis)
    if descending:   # largest first, ties in their order (as torch's stable sort): the reversed
        n = data.shape[axis]     # input sorted stably, its positions mapped back, then reversed
        order = np.flip(n - 1 - np.argsort(np.flip(data, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(data, axis=axis, kind="stable")
    if k is not None:
        n = data.shape[axis]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
            raise ShapeError(f"{who}: k={k!r} is out of range [0, {n}] along axis {axis} of an "
                             f"input of shape {data.shape if not scalar else ()}")
        order = np.take(order, np.arange(int(k)), axis=axis)
    order = order.astype(np.int64)
    values = apply(who, _gather, x, order, axis=axis)
    if scalar and k != 0:
        return reshape(values, ()), Tensor(order.reshape(()))
    return values, Tensor(order)


def sort(x, axis=-1, descending=False, *, dim=None):
    """The entries sorted along ``axis`` (ascending, NaN last; ties keep their order), as
    ``(values, indices)`` like PyTorch's ``sort``: the gradient reaches ``x`` through ``values``;
    ``indices`` are int64 with no gradient."""
    axis, _ = _axis("sort", None if dim is not None else axis, False, dim, None)
    return _ordered("sort", x, axis, descending)


def topk(x, k, axis=-1, largest=True, sorted=True, *, dim=None):   # noqa: A002 - torch's name
    """The ``k`` largest (``largest=False``: smallest) entries along ``axis``, as ``(values,
    indices)`` like PyTorch's ``topk``, largest first (``sorted`` is accepted for PyTorch's
    signature: the result is always in order); the gradient reaches ``x`` through ``values``."""
    axis, _ = _axis("topk", None if dim is not None else axis, False, dim, None)
    return _ordered("topk", x, axis, largest, k)


def _softmax_axis(who, axis, dim):
    """The axis of softmax/log_softmax: an int, a tuple (or list) of ints, or None for all
    entries (as scipy.special.softmax); anything else is a ConfigError naming ``who``."""
    axis, _ = _axis(who, None if dim is not None else axis, False, dim, None)
    ints = axis if isinstance(axis, tuple) else () if axis is None else (axis,)
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in ints):
        raise ConfigError(f"{who}: axis must be an int, a tuple of ints or None (all entries), "
                          f"got {axis!r}")
    return axis


def softmax(x, axis=-1, *, dim=None):
    """exp(x) / sum exp(x) over ``axis`` (default the last; a tuple of axes, or None for all
    entries as ``scipy.special.softmax(x, axis=None)``), computed without overflow.

    Infinite entries: a slice with one +inf gives its limit, 1 there and 0 elsewhere (torch
    gives NaN), with a zero gradient; one with two +inf, a NaN or every entry -inf (0/0) has
    no limit and is NaN whole (as torch's).  log_softmax and cross_entropy follow the same rule
    (log_softmax 0 and -inf; cross_entropy 0 at the +inf target, inf at another; logsumexp
    inf, its gradient this limit, except under create_graph, where it is still NaN there)."""
    return apply("softmax", _softmax, x, axis=_softmax_axis("softmax", axis, dim))


def log_softmax(x, axis=-1, *, dim=None):
    """x - logsumexp(x) over ``axis`` (as :func:`softmax`'s: None is all entries), with the
    max's term kept out of the sum (no digits lost to a large max)."""
    return apply("log_softmax", _log_softmax, x, axis=_softmax_axis("log_softmax", axis, dim))


def one_hot(ids, n, dtype=np.float64):
    """ids (...) -> (..., n) with a 1 at each id: a constant (no gradient)."""
    ids = np.asarray(_constant_of(ids, "the step makes a one_hot of a Tensor (a constant)"))
    if ids.size == 0 and ids.dtype.kind == "f":
        ids = ids.astype(np.intp)        # [] is float64 to numpy: no ids
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: ids must be integers, got dtype {ids.dtype}")
    check_size("one_hot", ids.shape + (int(n),), dtype, (ids.shape,))
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        bad = ids[(ids < 0) | (ids >= n)].flat[0]
        raise BadIndexError(f"one_hot: id {bad} out of range [0, {n})")
    return Tensor(_one_hot(ids, n, dtype))


def dropout(x, p, seed=None, train=True):
    """Inverted dropout: each entry zeroed with probability ``p``, the rest scaled by 1/(1 - p).

    ``train=False`` is the identity (returns ``x`` itself); ``seed`` fixes the mask.  A bool
    seed is refused: PyTorch's ``F.dropout(x, p, training)`` takes ``training`` third, so
    ``dropout(x, 0.5, False)`` would drop with seed 0 where torch returns x.
    """
    if isinstance(seed, (bool, np.bool_)):
        raise ConfigError(f"dropout: seed={seed!r} is a bool: PyTorch's F.dropout(x, p, training) "
                          f"takes training third, tinygraph's dropout(x, p, seed, train) the seed; "
                          f"write train={bool(seed)} (and seed= an int, if any)")
    if not 0 <= p <= 1:
        raise ConfigError(f"dropout: p must be in [0, 1], got {p}")
    if not train or p == 0:
        return x
    data = x._data if isinstance(x, Tensor) else np.asarray(x)
    dtype = np.result_type(data, 1.0)
    if seed is None:
        _fresh_random("dropout")
    keep = np.random.default_rng(seed).random(data.shape) >= p
    mask = keep / dtype.type(1 - p) if p < 1 else np.zeros(data.shape, dtype)
    return apply("dropout", _dropout, x, mask.astype(dtype, copy=False))


def _check_reduction(who, reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:     # (an array: no `in`)
        hint = ("" if isinstance(reduction, str) or reduction is None else
                f" (PyTorch's {who}(input, target, weight) takes weights third: write weight=)"
                if who == "cross_entropy" else
                f" (PyTorch's {who}(input, target, weight) takes weights third, which tinygraph's "
                f"{who} does not take)" if who in ("nll_loss", "binary_cross_entropy_with_logits")
                else " (a word, not an array)")
        raise ConfigError(f"{who}: reduction must be one of {_REDUCTIONS}, got "
                          f"{type(reduction).__name__ if hint else repr(reduction)}{hint}")


def _ids(targets):   # a Tensor of ids stays a parent of the loss (with no gradient)
    return targets if isinstance(targets, Tensor) else np.asarray(targets)


def _classes_last(who, x, targets, axis):
    """``x`` with its class axis last: ``axis`` as given (moved there by one ``moveaxis`` node
    unless it is the last already), or, when None, the last, which is refused for an input of
    3 or more axes whose targets fit PyTorch's layout too ((N, C, d1, ...) with targets
    (N, d1, ...), the classes on axis 1): both readings give a number, and the wrong one is
    silent, so the caller says which (``axis=-1`` or ``axis=1``)."""
    shape = x.shape if isinstance(x, Tensor) else np.shape(x)
    wanted = targets.shape if isinstance(targets, Tensor) else np.shape(targets)
    if axis is None:
        if len(shape) >= 3 and wanted == shape[:1] + shape[2:]:
            both = wanted == shape[:-1]
            raise ShapeError(
                f"{who}: input of shape {shape} with targets of shape {wanted}: "
                + (f"this fits both the classes on the last axis ({shape[-1]} classes, "
                   f"tinygraph's default) and on axis 1 ({shape[1]} classes, PyTorch's layout "
                   f"(N, C, d1, ...)); " if both else
                   f"the targets fit PyTorch's layout (N, C, d1, ...) with {shape[1]} classes on "
                   f"axis 1, not the classes on the last axis (which needs targets of shape "
                   f"{shape[:-1]}); ")
                + ("say which with axis=-1 (last) or axis=1 (PyTorch's)" if both else
                   "pass axis=1 for that layout"))
        return x
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ConfigError(f"{who}: axis must be an int (the class axis), got {axis!r}")
    if not -len(shape) <= axis < len(shape):
        raise ShapeError(f"{who}: class axis {axis} is out of range for an input of shape {shape}")
    axis = int(axis) % len(shape)
    return x if axis == len(shape) - 1 else moveaxis(x, axis, -1)


def cross_entropy(logits, targets, reduction="mean", ignore_index=None, weight=None,
                  label_smoothing=0.0, *, axis=None):
    """``-log softmax(logits)[target]`` per example, reduced by ``reduction``.

    logits : (..., C) Tensor; targets : (...) integer class ids (a Tensor of them stays a
    parent of the result, with no gradient, like ``take``'s indices).
    axis : the class axis of logits; None (default) is the last, except that logits of 3 or
        more axes whose targets also fit PyTorch's layout (N, C, d1, ...) with targets
        (N, d1, ...) are refused (a ShapeError naming both readings) until ``axis=-1`` or
        ``axis=1`` says which.  PyTorch users pass ``axis=1`` (its ``dim``).
    reduction : "mean" (over the kept examples; NaN when none is kept, as torch's, with a zero
        gradient), "sum" or "none" (shape of targets).
    ignore_index : a target id whose examples count for nothing (zero loss and gradient).
    weight : (C,) class weights, as PyTorch's: example i counts w[y_i] times, and "mean" divides
        by the sum of w[y_i] over the kept examples (not by their number).
    label_smoothing : eps in [0, 1], as PyTorch's: the target is (1 - eps) onehot(y) + eps / C
        uniform, i.e. loss_i = (1 - eps) w[y_i] (-log p_i[y_i]) + (eps / C) sum_c w_c (-log p_ic),
        and "mean" divides by the same sum of w[y_i].
    Exact for any logits: logits [1000, 975] lose no digits in the loss or its gradient.
    """
    _check_reduction("cross_entropy", reduction)
    logits = _classes_last("cross_entropy", logits, targets, axis)
    if weight is not None or label_smoothing != 0.0:
        return _weighted_cross_entropy(logits, targets, reduction, ignore_index, weight, label_smoothing)
    return apply("cross_entropy", _cross_entropy, logits, _ids(targets), reduction=reduction,
                 ignore_index=ignore_index)


def scaled_cross_entropy(logits, targets, scale):
    """``cross_entropy(logits, targets) * scale`` (the mean over the examples, times a number)
    as one node, whose backward reuses the forward's row log-sum-exp instead of computing it
    again: the loss of all steps of an unroll at once (:func:`rnn.core.rows_loss`).  The same
    numpy calls in the same order as the two ops, so the same bits, value and gradient.
    Unlike the built-in ops it is made as a user's op (:func:`apply` with closures over the
    forward's z and s, and a :func:`defvjp` rule for ``create_graph``), not with a shared
    :class:`Rule`: its backward reads arrays only the forward computed.

    logits : (N, C) Tensor; targets : (N,) ids (a Tensor stays a parent, with no gradient);
    scale : a Python float.
    """
    return apply("cross_entropy", _scaled_cross_entropy, logits, _ids(targets), scale=scale)


def _scaled_cross_entropy(logits, targets, scale):
    _check_targets("cross_entropy", logits, targets, None)
    n_classes = logits.shape[-1]
    cols = targets.reshape(-1)
    rows, _, flat_z, s = _row_logsumexp(logits.reshape(-1, n_classes))
    per_example = s.reshape(-1) - flat_z[rows, cols]
    mean = np.asarray(_reduced(per_example.reshape(targets.shape), "mean", None, per_example.dtype))
    factor = _factor("mean", targets.size, None)

    def logits_grad(g):      # the scale's rule (g * scale), then cross_entropy's on the saved z, s
        g = np.asarray(g * scale)
        d = np.subtract(flat_z, s)
        np.exp(d, out=d)
        d[rows, cols] = np.expm1(flat_z[rows, cols] - s[:, 0])
        return d.reshape(logits.shape) * _per_example(g, factor, targets.shape)

    return mean * scale, (logits_grad, None)


defvjp(_scaled_cross_entropy, lambda g, out, logits, targets, scale:
       (_cross_entropy_grad(g * scale, None, logits, targets), None))


def _weighted_cross_entropy(logits, targets, reduction, ignore_index, weight, label_smoothing):
    """cross_entropy with class weights or label smoothing: -sum_c Q_ic log_softmax(logits)_ic,
    Q the constant target distribution (rows of ignored examples zero), from engine ops."""
    who = "cross_entropy"
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.integer,
                                                                             np.floating)) \
            or not 0 <= label_smoothing <= 1:
        raise ConfigError(f"{who}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    x = logits if isinstance(logits, Tensor) else Tensor(np.asarray(logits, np.float64))
    ids = np.asarray(_constant_of(targets, "the step gives cross_entropy Tensor targets (taken as "
                                  "constants)"))
    kept = _check_targets(who, x._data, ids, ignore_index)
    n_classes = x.shape[-1]
    dtype = _float_of(x._data)
    if weight is None:
        w = np.ones(n_classes, dtype)
    else:
        w = np.asarray(_constant_of(weight, "the step gives cross_entropy a Tensor weight (a constant)"))
        if w.shape != (n_classes,) or w.dtype.kind not in "iuf" or not np.isfinite(w).all():
            raise ShapeError(f"{who}: weight must be {n_classes} finite numbers (one per class of "
                             f"logits of shape {x.shape}), got {w.dtype} of shape {w.shape}")
        w = w.astype(dtype)
    safe = ids if kept is None else np.where(kept, ids, 0)
    rows = np.ones(ids.shape, dtype) if kept is None else kept.astype(dtype)
    onehot = _one_hot(safe, n_classes, dtype)
    target_weight = w[safe] * rows                          # w[y_i], 0 where ignored
    q = ((1 - label_smoothing) * onehot * target_weight[..., None]
         + (label_smoothing / n_classes) * w * rows[..., None])
    per_example = -sum(log_softmax(x, -1) * q, axis=-1)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return sum(per_example)
    total = target_weight.sum()
    if total == 0:      # the mean is 0 / 0 = NaN, as torch's; as torch's, an ignored example's
        # gradient stays 0 (only a kept one's, of weight 0, is NaN): a NaN factor on all of them
        # made an all-ignored batch's gradient NaN, and a step then every parameter NaN
        nan_where_kept = np.where(rows > 0, np.nan, 0).astype(dtype)
        return sum(per_example * nan_where_kept) + np.nan
    return sum(per_example) / total


def nll_loss(log_probs, targets, reduction="mean", ignore_index=None, *, axis=None):
    """``-log_probs[target]`` per example (log_probs (..., C), e.g. from ``log_softmax``);
    ``axis``, the class axis, as :func:`cross_entropy`'s (PyTorch's layout is ``axis=1``)."""
    _check_reduction("nll_loss", reduction)
    log_probs = _classes_last("nll_loss", log_probs, targets, axis)
    return apply("nll_loss", _nll_loss, log_probs, _ids(targets), reduction=reduction,
                 ignore_index=ignore_index)


def _check_paired(who, a, b):
    """Refuse inputs of a loss of pairs that broadcast to more entries than either has, each
    input's entries repeated: predictions (3, 1) against targets (3,) made nine pairs (3, 3) of
    every prediction with every target, a loss of the wrong value without a word (PyTorch's
    mse_loss warns, its binary_cross_entropy_with_logits refuses).  One input broadcast to the
    other (a target row for every row of predictions, a scalar; (1, 1) against (2,)) stays
    allowed."""
    try:
        shapes = [x.shape if isinstance(x, Tensor) else np.shape(x) for x in (a, b)]
        both = np.broadcast_shapes(*shapes)
    except ValueError:      # ragged, or shapes that do not broadcast: the op's own error says so
        return
    size = math.prod(both)
    if size != math.prod(shapes[0]) and size != math.prod(shapes[1]):   # each one repeated
        raise ShapeError(f"{who}: inputs of shapes {shapes[0]} and {shapes[1]} broadcast to "
                         f"{both}, pairing every entry of one with several of the other; give "
                         f"them one shape (e.g. reshape the (N, 1) one to (N,))")


def mse_loss(pred, target, reduction="mean"):
    """``(pred - target)^2`` per entry, reduced; both inputs may take gradients.  One input may
    broadcast to the other; inputs that would both be repeated (predictions (N, 1) against
    targets (N,): N^2 pairs) are refused."""
    _check_reduction("mse_loss", reduction)
    _check_paired("mse_loss", pred, target)
    return apply("mse_loss", _mse_loss, pred, target, reduction=reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """``-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]`` per entry, computed as
    max(x, 0) - x y + log1p(exp(-|x|)) (stable for any x); targets y in [0, 1].  At an
    infinite logit it is the limit (0 where the target agrees, inf elsewhere), where torch
    gives NaN for some.  As for :func:`mse_loss`, one input may broadcast to the other, not
    both be repeated."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_paired("binary_cross_entropy_with_logits", logits, targets)
    return apply("binary_cross_entropy_with_logits", _bce_with_logits, logits, targets,
                 reduction=reduction)

# ---------------------------------------------------------------- comparisons (no gradient)


_COMPARED = "the step compares tensors (<, ==, ...: a constant of their values)"


def _compare(fn):
    """The comparison ``fn`` (no gradient); numpy's errors (a str, None, shapes that do not
    broadcast) as tinygraph's naming it and the shapes."""
    def compare(a, b):
        x, y = _constant_of(a, _COMPARED), _constant_of(b, _COMPARED)
        try:
            return Tensor(fn(x, y))
        except (ValueError, TypeError) as e:
            _raise_forward_error(fn.__name__, (x, y), e)
    return compare


# ---------------------------------------------------------------- onto Tensor


def _reflected(fn):
    return lambda self, other: fn(other, self)


Tensor.__add__ = add
Tensor.__radd__ = _reflected(add)
Tensor.__sub__ = sub
Tensor.__rsub__ = _reflected(sub)
Tensor.__mul__ = mul
Tensor.__rmul__ = _reflected(mul)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = _reflected(div)
Tensor.__pow__ = _power_operator
Tensor.__rpow__ = _reflected(_power_operator)
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = _reflected(matmul)
Tensor.__neg__ = neg
Tensor.__abs__ = abs
Tensor.__getitem__ = getitem
Tensor.__setitem__ = setitem
Tensor.__lt__ = _compare(np.less)
Tensor.__le__ = _compare(np.less_equal)
Tensor.__gt__ = _compare(np.greater)
Tensor.__ge__ = _compare(np.greater_equal)
Tensor.__eq__ = _compare(np.equal)
Tensor.__ne__ = _compare(np.not_equal)
for _fn in (exp, log, log1p, tanh, sigmoid, softplus, relu, leaky_relu, abs, sqrt, sum, mean, max,
            min, prod, var, std, norm, cumsum, argmax, argmin, logsumexp, clip, maximum, minimum,
            reshape, transpose, swapaxes, squeeze, expand_dims, flatten, softmax,
            log_softmax, clamp, sign, square, expm1, sin, cos, amax, amin, flip, permute,
            moveaxis, repeat, tile, expand, unbind, chunk, sort, topk, round, floor, ceil, trunc,
            clone, roll, add, sub, mul, div, matmul, neg):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.unsqueeze = unsqueeze
Tensor.pow = power
Tensor.view = reshape
Tensor.T = property(lambda self: transpose(self))
