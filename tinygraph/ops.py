"""The ops: each is a forward on numpy arrays and, beside it, one
vector-Jacobian product per input, written like the math.

Every op returns ``(value, vjps)``; :func:`tinygraph.tensor.apply` turns that
into a node.  Gradients may come back in the broadcast shape: the engine sums
them back to each input's shape once, centrally.

Below each forward, ``defvjp`` gives the same rule once more in terms of engine
ops on Tensors (``g``, the output ``out`` and the inputs): what
``backward(create_graph=True)`` runs to make gradients that can be
differentiated again.  The numpy rules stay the fast default.
"""

import builtins
from functools import partial
from operator import itemgetter

import numpy as np

from .errors import BadIndexError, ConfigError, DTypeError, ShapeError
from .tensor import _SMALL, Scatter, Tensor, _unbroadcast, apply, check_size, defvjp

# ---------------------------------------------------------------- elementwise


def _identity(g):
    return g


def _negative(g):
    return -g


def _add(a, b):
    return a + b, (_identity, _identity)


defvjp(_add, lambda g, out, a, b: (g, g))


def _sub(a, b):
    return a - b, (_identity, _negative)


defvjp(_sub, lambda g, out, a, b: (g, -g))


def _mul(a, b):
    return a * b, (lambda g: g * b, lambda g: g * a)


defvjp(_mul, lambda g, out, a, b: (g * b, g * a))


def _div(a, b):
    out = a / b
    return out, (lambda g: g / b, lambda g: -g * out / b)


defvjp(_div, lambda g, out, a, b: (g / b, -g * out / b))


def _pow(a, b):   # d(a**b)/da = b a**(b-1), taken as 0 where b == 0 (x**0 is constant, also at 0)
    out = a ** b
    return out, (partial(_pow_vjp_base, a, b),
                 lambda g: g * out * np.log(np.where(a > 0, a, 1)))


def _pow_vjp_base(a, b, g):
    if np.ndim(b) == 0:
        return g * (b * a ** (b - 1)) if b != 0 else g * 0
    return g * (b * a ** np.where(b == 0, 1, b - 1))


defvjp(_pow, lambda g, out, a, b: (g * b * a ** where(b == 0, 1, b - 1),
                                   g * out * log(where(a > 0, a, 1))))


def _neg(a):
    return -a, (_negative,)


defvjp(_neg, lambda g, out, a: (-g,))


def _exp(x):
    y = np.exp(x)
    return y, (lambda g: g * y,)


defvjp(_exp, lambda g, out, x: (g * out,))


def _log(x):
    return np.log(x), (lambda g: g / x,)


defvjp(_log, lambda g, out, x: (g / x,))


def _log1p(x):
    return np.log1p(x), (lambda g: g / (1 + x),)


defvjp(_log1p, lambda g, out, x: (g / (1 + x),))


def _tanh(x):
    y = np.tanh(x)
    return y, (partial(_tanh_vjp, y),)


def _tanh_vjp(y, g):
    return g * (1 - y * y)


defvjp(_tanh, lambda g, out, x: (_tanh_vjp(out, g),))


def _sigmoid(x):
    """1 / (1 + exp(-x)) by the sign of x: with e = exp(-|x|) <= 1, y = 1 / (1 + e) for x >= 0
    and e / (1 + e) for x < 0, so nothing overflows and a tiny y keeps its relative precision."""
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1, e) / (1 + e)
    return y, (partial(_sigmoid_vjp, e),)


def _sigmoid_vjp(e, g):   # sigma'(x) = sigma(x) sigma(-x) = e / (1 + e)^2, for either sign
    return g * (e / ((1 + e) * (1 + e)))


defvjp(_sigmoid, lambda g, out, x: (g * out * sigmoid(-x),))


def _softplus(x):   # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact for every x
    return np.logaddexp(0, x), (lambda g: g * _sigmoid(x)[0],)


defvjp(_softplus, lambda g, out, x: (g * sigmoid(x),))


def _relu(x):
    return np.maximum(x, 0), (lambda g: g * (x > 0),)


defvjp(_relu, lambda g, out, x: (g * (x > 0),))


def _leaky_relu(x, slope=0.01):   # slope where x <= 0 (PyTorch's choice at 0)
    factor = np.where(x > 0, 1, slope).astype(np.result_type(x, 1.0), copy=False)
    return x * factor, (lambda g: g * factor,)


defvjp(_leaky_relu, lambda g, out, x, slope=0.01: (g * where(x > 0, 1.0, slope),))


def _abs(x):
    return np.abs(x), (lambda g: g * np.sign(x),)


defvjp(_abs, lambda g, out, x: (g * np.sign(x.data),))


def _sqrt(x):
    y = np.sqrt(x)
    return y, (lambda g: g / (2 * y),)


defvjp(_sqrt, lambda g, out, x: (g / (2 * out),))


def _where(cond, a, b):
    return np.where(cond, a, b), (None, lambda g: g * cond, lambda g: g * ~cond)


defvjp(_where, lambda g, out, cond, a, b: (None, g * cond.data, g * ~cond.data))


def _tie_shares(a, b):
    """(share of a, share of b) of the gradient of max(a, b): 1 for the larger, 1/2 each at a tie."""
    tie = (a == b) * 0.5
    return (a > b) + tie, (b > a) + tie


def _maximum(a, b):
    share_a, share_b = _tie_shares(a, b)
    return np.maximum(a, b), (lambda g: g * share_a, lambda g: g * share_b)


def _minimum(a, b):
    share_b, share_a = _tie_shares(a, b)   # the smaller one takes the gradient
    return np.minimum(a, b), (lambda g: g * share_a, lambda g: g * share_b)


def _extremum_rule(larger, g, out, a, b):
    share_a, share_b = _tie_shares(a.data, b.data)
    if not larger:
        share_a, share_b = share_b, share_a
    return g * share_a, g * share_b


defvjp(_maximum, partial(_extremum_rule, True))
defvjp(_minimum, partial(_extremum_rule, False))


def _clip(x, lo, hi):   # the gradient passes where lo <= x <= hi (PyTorch's clamp); lo, hi get the rest
    inside = (x >= lo) & (x <= hi)
    return np.clip(x, lo, hi), (lambda g: g * inside, lambda g: g * (x < lo), lambda g: g * (x > hi))


defvjp(_clip, lambda g, out, x, lo, hi: (g * ((x.data >= lo.data) & (x.data <= hi.data)),
                                         g * (x.data < lo.data), g * (x.data > hi.data)))


def _dropout(x, mask):
    return x * mask, (lambda g: g * mask, None)


defvjp(_dropout, lambda g, out, x, mask: (g * mask, None))

# ---------------------------------------------------------------- matmul


def _matmul(a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError("matmul needs at least 1-D operands")
    _check_matmul_size(a, b)
    if b.ndim == 2 and a.ndim <= 2:     # rows (or one vector) times a matrix: the common case
        return np.dot(a, b), (partial(_matmul_vjp_rows, b), partial(_matmul_vjp_matrix, a))
    out = a @ b
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b

    def as_2d_out(g):   # g in the shape a2 @ b2 would have
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        return g

    def grad_a(g):
        ga = as_2d_out(g) @ np.swapaxes(b2, -1, -2)
        return ga[..., 0, :] if a.ndim == 1 else ga

    def grad_b(g):
        g2 = as_2d_out(g)
        if b2.ndim == 2:     # N-D @ 2-D: one big product instead of a batch summed afterwards
            gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
        else:
            gb = np.swapaxes(a2, -1, -2) @ g2
        return gb[..., 0] if b.ndim == 1 else gb

    return out, (grad_a, grad_b)


# np.dot, not @, for 2-D: the same product, faster for small operands (for a single row,
# a.T @ g is 4x slower than np.dot(a.T, g) in numpy 2.4)
def _matmul_vjp_rows(b, g):     # d(a @ b)/da for a (N, K) or (K,), b (K, M)
    return np.dot(g, b.T)


def _matmul_vjp_matrix(a, g):   # d(a @ b)/db
    return np.dot(a.T, g) if a.ndim == 2 else np.outer(a, g)


def _matmul_rule(g, out, a, b):
    """g @ b^T and a^T @ g, with numpy's promotion of 1-D operands undone (batch axes are
    summed back by the engine)."""
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    g2 = unsqueeze(g, -1) if b.ndim == 1 else g
    g2 = unsqueeze(g2, -2) if a.ndim == 1 else g2
    ga = matmul(g2, swapaxes(b2, -1, -2))
    gb = matmul(swapaxes(a2, -1, -2), g2)
    return (squeeze(ga, -2) if a.ndim == 1 else ga), (squeeze(gb, -1) if b.ndim == 1 else gb)


defvjp(_matmul, _matmul_rule)


def _addmm(c, a, b):
    prod, (grad_a, grad_b) = _matmul(a, b)
    if np.broadcast_shapes(np.shape(c), prod.shape) == prod.shape and \
            np.result_type(c, prod) == prod.dtype:
        out = np.add(prod, c, out=prod)      # the product is a fresh array: add c into it
    else:
        out = c + prod
    if out.shape != prod.shape:   # c broadcast the product: sum g back to its shape first
        grad_a, grad_b = (partial(_summed_to, prod.shape, grad) for grad in (grad_a, grad_b))
    return out, (_identity, grad_a, grad_b)


def _summed_to(shape, vjp, g):
    return vjp(_unbroadcast(g, shape))


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


defvjp(_addmm, lambda g, out, c, a, b: (g,) + _matmul_rule(sum_to(g, _matmul_shape(a.shape, b.shape)),
                                                            None, a, b))

# ---------------------------------------------------------------- reductions


def _expand(g, shape, axis, keepdims):
    if axis is not None and not keepdims and shape:   # numpy lets a 0-d input take axis=0
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


def _expand_rule(g, shape, axis, keepdims):   # _expand in engine ops
    if axis is not None and not keepdims and shape:
        g = unsqueeze(g, axis)
    return broadcast_to(g, shape)


def _count(x, out):
    return x.size // out.size if out.size and x.size else 1    # elements reduced per output


def _sum(x, axis=None, keepdims=False):
    return x.sum(axis=axis, keepdims=keepdims), (lambda g: _expand(g, x.shape, axis, keepdims),)


defvjp(_sum, lambda g, out, x, axis=None, keepdims=False: (_expand_rule(g, x.shape, axis, keepdims),))


def _mean(x, axis=None, keepdims=False):
    out = x.mean(axis=axis, keepdims=keepdims)
    n = _count(x, out)
    return out, (lambda g: _expand(g / n, x.shape, axis, keepdims),)


defvjp(_mean, lambda g, out, x, axis=None, keepdims=False:
       (_expand_rule(g / _count(x.data, out.data), x.shape, axis, keepdims),))


def _extreme_share(x, out, axis, keepdims):   # ties share the gradient equally
    hit = x == _expand(out, x.shape, axis, keepdims)
    return hit / hit.sum(axis=axis, keepdims=True)


def _max(x, axis=None, keepdims=False):
    out = x.max(axis=axis, keepdims=keepdims)
    return out, (lambda g: _extreme_share(x, out, axis, keepdims) * _expand(g, x.shape, axis, keepdims),)


def _min(x, axis=None, keepdims=False):
    out = x.min(axis=axis, keepdims=keepdims)
    return out, (lambda g: _extreme_share(x, out, axis, keepdims) * _expand(g, x.shape, axis, keepdims),)


def _extreme_rule(g, out, x, axis=None, keepdims=False):
    return (_extreme_share(x.data, out.data, axis, keepdims) * _expand_rule(g, x.shape, axis, keepdims),)


defvjp(_max, _extreme_rule)
defvjp(_min, _extreme_rule)


def _var(x, axis=None, ddof=0, keepdims=False):
    """mean((x - mean(x))^2) * n / (n - ddof); d/dx = 2 (x - mean) / (n - ddof)."""
    out = x.var(axis=axis, ddof=ddof, keepdims=keepdims)
    n = _count(x, out)
    return out, (lambda g: _expand(g, x.shape, axis, keepdims)
                 * (2 / (n - ddof)) * (x - x.mean(axis=axis, keepdims=True)),)


defvjp(_var, lambda g, out, x, axis=None, ddof=0, keepdims=False:
       (_expand_rule(g, x.shape, axis, keepdims) * (2 / (_count(x.data, out.data) - ddof))
        * (x - mean(x, axis=axis, keepdims=True)),))


def _std(x, axis=None, ddof=0, keepdims=False):
    """d/dx = (x - mean) / ((n - ddof) std), taken as 0 where std = 0 (as ``norm`` at 0)."""
    out = x.std(axis=axis, ddof=ddof, keepdims=keepdims)
    n = _count(x, out)
    return out, (lambda g: _expand(g / ((n - ddof) * np.where(out == 0, 1, out)), x.shape, axis, keepdims)
                 * (x - x.mean(axis=axis, keepdims=True)),)


defvjp(_std, lambda g, out, x, axis=None, ddof=0, keepdims=False:
       (_expand_rule(g / ((_count(x.data, out.data) - ddof) * where(out == 0, 1.0, out)), x.shape, axis,
                     keepdims) * (x - mean(x, axis=axis, keepdims=True)),))


def _norm(x):   # sqrt(sum x^2); d/dx = x / norm, taken as 0 at x = 0 (PyTorch's subgradient)
    out = np.sqrt(np.sum(x * x))
    return out, (lambda g: g * x / (out if out else 1),)


defvjp(_norm, lambda g, out, x: (g * x / where(out == 0, 1.0, out),))


def _prod_layout(shape, axis):
    """(perm, kept, n): the transpose that moves the reduced axes last, the shape of the axes
    kept, and how many entries each product takes."""
    ndim = len(shape)
    reduced = range(ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    reduced = sorted({a % ndim for a in reduced}) if ndim else []
    kept = [i for i in range(ndim) if i not in reduced]
    return kept + reduced, tuple(shape[i] for i in kept), int(np.prod([shape[i] for i in reduced]))


def _prod(x, axis=None, keepdims=False):
    """Product along ``axis``; d/dx_i = the product of the others, taken as the exclusive
    products from the left times those from the right (exact with zeros, no division)."""
    out = np.prod(x, axis=axis, keepdims=keepdims)

    def vjp(g):
        perm, kept, n = _prod_layout(x.shape, axis)
        flat = x.transpose(perm).reshape(kept + (n,))
        ones = np.ones(kept + (1,), x.dtype)
        left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = (left * right).reshape([x.shape[i] for i in perm]).transpose(np.argsort(perm))
        return _expand(g, x.shape, axis, keepdims) * others
    return out, (vjp,)


def _prod_rule(g, out, x, axis=None, keepdims=False):
    """The product of the others from engine ops: row i of an (n, n) stack has x_i replaced by 1."""
    perm, kept, n = _prod_layout(x.shape, axis)
    flat = reshape(transpose(x, tuple(perm)), kept + (n,))
    others = prod(where(np.eye(n, dtype=bool), 1.0, unsqueeze(flat, -2)), axis=-1)
    others = transpose(reshape(others, tuple(x.shape[i] for i in perm)), tuple(np.argsort(perm)))
    return (_expand_rule(g, x.shape, axis, keepdims) * others,)


defvjp(_prod, _prod_rule)


def _cumsum(x, axis=None):   # numpy's rule: axis=None runs over the flattened input
    out = np.cumsum(x, axis=axis)
    along = 0 if axis is None else axis
    return out, (lambda g: np.flip(np.cumsum(np.flip(g, along), axis=along), along).reshape(x.shape),)


def _cumsum_rule(g, out, x, axis=None):   # reversed cumulative sum = total - cumsum + g
    along = 0 if axis is None else axis
    return (reshape(sum(g, axis=along, keepdims=True) - cumsum(g, axis=along) + g, x.shape),)


defvjp(_cumsum, _cumsum_rule)

# ---------------------------------------------------------------- shapes


def _reshape(x, shape):
    return x.reshape(shape), (lambda g: g.reshape(x.shape),)


defvjp(_reshape, lambda g, out, x, shape: (reshape(g, x.shape),))


def _transpose(x, axes=None):
    out = x.transpose(axes)
    inverse = None if axes is None else np.argsort([a % x.ndim for a in axes])
    return out, (lambda g: g.transpose(inverse),)


defvjp(_transpose, lambda g, out, x, axes=None:
       (transpose(g) if axes is None else transpose(g, tuple(np.argsort([a % x.ndim for a in axes]))),))


def _swapaxes(x, axis1, axis2):
    return np.swapaxes(x, axis1, axis2), (lambda g: np.swapaxes(g, axis1, axis2),)


defvjp(_swapaxes, lambda g, out, x, axis1, axis2: (swapaxes(g, axis1, axis2),))


def _squeeze(x, axis=None):
    return np.squeeze(x, axis), (lambda g: g.reshape(x.shape),)


def _expand_dims(x, axis):
    return np.expand_dims(x, axis), (lambda g: g.reshape(x.shape),)


def _flatten(x):
    return x.reshape(-1), (lambda g: g.reshape(x.shape),)


for _forward in (_squeeze, _expand_dims, _flatten):
    defvjp(_forward, lambda g, out, x, **kwargs: (reshape(g, x.shape),))


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape), (_identity,)   # the engine sums g back to x's shape


defvjp(_broadcast_to, lambda g, out, x, shape: (g,))


def _sum_to(x, shape):   # the engine's broadcast reduction as an op (create_graph uses it)
    return _unbroadcast(x, shape), (lambda g: np.broadcast_to(g, x.shape),)


defvjp(_sum_to, lambda g, out, x, shape: (broadcast_to(g, x.shape),))


def _getitem(x, index):
    index = _intp_index(index, x.shape)
    out = x[index]
    return out, (partial(_scatter_vjp, index, _is_basic(index), 0),)


def _scatter_vjp(index, basic, axis, g):   # scatter-add: repeated indices accumulate
    return Scatter(index, g, basic, axis)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


_INTP = np.iinfo(np.intp)


def _intp_index(index, shape):
    """``index`` with its integers as numpy indexes safely: an integer beyond the intp range
    raises BadIndexError (numpy raises OverflowError, or wraps a uint64 around to a negative
    index), and integer arrays become intp (small dtypes overflow in the scatter-add)."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype.kind in "iu":
            if p.size and (p.max() > _INTP.max or p.min() < _INTP.min):
                bad = p.max() if p.max() > _INTP.max else p.min()
                raise BadIndexError(f"index: index {bad} is out of range for an input of shape {shape}")
            p = p.astype(np.intp, copy=False)
        elif isinstance(p, (int, np.integer)) and not _INTP.min <= p <= _INTP.max:
            raise BadIndexError(f"index: index {p} is out of range for an input of shape {shape}")
        out.append(p)
    return tuple(out) if isinstance(index, tuple) else out[0]


defvjp(_getitem, lambda g, out, x, index: (_scattered(g, index, x.shape, 0),))


def _scatter(g, index, shape, axis):
    """A zero array of ``shape`` with ``g`` added at ``index`` (along ``axis``): the gradient of
    indexing as an op, so that create_graph can differentiate it (its own gradient is indexing)."""
    buf = np.zeros(shape, np.result_type(g, 0.0))
    Scatter(index, g, _is_basic(index) if axis == 0 else False, axis).add_into(buf)
    return buf, (lambda h: h[index] if axis == 0 else np.take(h, index, axis=axis),)


def _scattered(g, index, shape, axis):
    return apply("scatter", _scatter, g, index=index, shape=shape, axis=axis)


defvjp(_scatter, lambda g, out, h, index, shape, axis:
       (getitem(g, index) if axis == 0 else take(g, index, axis=axis),))


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
    indices = indices.astype(np.intp, copy=False)    # uint8 / int16 ids overflow in the scatter-add
    out = np.take(x, indices, axis=axis)
    return out, (partial(_scatter_vjp, indices, False, axis), None)


defvjp(_take, lambda g, out, x, indices, axis=0:
       (_scattered(g, indices.data, x.shape, axis % x.ndim if x.ndim else 0), None))


def _concat(*xs, axis=0):
    out = np.concatenate(xs, axis=axis)
    return out, [itemgetter(index) for index in _concat_slices(xs, axis, out.ndim)]


def _concat_slices(xs, axis, ndim):
    lead = (slice(None),) * (axis % ndim)
    ends = np.cumsum([x.shape[axis] for x in xs])
    return [lead + (slice(e - x.shape[axis], e),) for x, e in zip(xs, ends)]


defvjp(_concat, lambda g, out, *xs, axis=0:
       [getitem(g, index) for index in _concat_slices(xs, axis, out.ndim)])


def _stack(*xs, axis=0):
    out = np.stack(xs, axis=axis)
    return out, [itemgetter(index) for index in _stack_slices(len(xs), axis, out.ndim)]


def _stack_slices(n, axis, ndim):   # g[..., i]
    lead = (slice(None),) * (axis % ndim)
    return [lead + (i,) if lead else i for i in range(n)]


defvjp(_stack, lambda g, out, *xs, axis=0: [getitem(g, index) for index in _stack_slices(len(xs), axis, out.ndim)])

# ---------------------------------------------------------------- softmax family


def _row_logsumexp(x):
    """(rows, m, z, s) for the rows of a 2-D ``x``: m each row's max, z = x - m and
    s = log sum exp(z) (m and s as columns; a non-finite max is taken as 0).

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
    z = np.subtract(x, m, dtype=np.result_type(x, 1.0))
    e = np.exp(z)
    e[rows, top] = 0
    s = np.log1p(e.sum(axis=1, keepdims=True))
    if not all_finite:   # an all -inf or an inf row: the plain sum
        with np.errstate(divide="ignore"):
            s = np.where(finite, s, np.log(np.exp(z).sum(axis=1, keepdims=True)))
    return rows, m, z, s


def _shifted_logsumexp(x, axis):
    """(m, z, s) of :func:`_row_logsumexp` along ``axis`` of any ``x`` (m and s kept as size 1)."""
    if x.ndim == 0:   # numpy lets a 0-d input take axis 0 (or -1)
        if axis not in (0, -1):
            raise ShapeError(f"axis {axis} is out of range for a 0-d input")
        return tuple(part.reshape(()) for part in _shifted_logsumexp(x.reshape(1), 0))
    last = np.moveaxis(x, axis, -1)
    _, m, z, s = _row_logsumexp(last.reshape(-1, last.shape[-1]))
    kept = last.shape[:-1] + (1,)
    return (np.moveaxis(m.reshape(kept), -1, axis), np.moveaxis(z.reshape(last.shape), -1, axis),
            np.moveaxis(s.reshape(kept), -1, axis))


def _logsumexp(x, axis=-1, keepdims=False):
    whole = axis is None                     # over every entry
    m, z, s = _shifted_logsumexp(x.reshape(-1) if whole else x, 0 if whole else axis)
    out = m + s
    if whole:
        out = out.reshape((1,) * x.ndim if keepdims else ())
    elif not keepdims and x.ndim:
        out = np.squeeze(out, axis)
    p = np.exp(z - s).reshape(x.shape)        # softmax: the gradient
    return out, (lambda g: _expand(g, x.shape, axis, keepdims) * p,)


defvjp(_logsumexp, lambda g, out, x, axis=-1, keepdims=False:
       (_expand_rule(g, x.shape, axis, keepdims)
        * exp(x - _expand_rule(out, x.shape, axis, keepdims)),))


def _softmax(x, axis=-1):
    _, z, s = _shifted_logsumexp(x, axis)
    y = np.exp(z - s).reshape(x.shape)
    return y, (lambda g: y * (g - (g * y).sum(axis=axis, keepdims=True)),)


defvjp(_softmax, lambda g, out, x, axis=-1: (out * (g - sum(g * out, axis=axis, keepdims=True)),))


def _log_softmax(x, axis=-1):
    _, z, s = _shifted_logsumexp(x, axis)
    out = (z - s).reshape(x.shape)
    return out, (lambda g: g - np.exp(out) * g.sum(axis=axis, keepdims=True),)


defvjp(_log_softmax, lambda g, out, x, axis=-1: (g - exp(out) * sum(g, axis=axis, keepdims=True),))

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


def _reduced(per_example, reduction, kept, dtype):
    """(loss, factor): the reduced loss and the factor d(loss)/d(per-example) of each kept one
    (ignored ones are already zero in ``per_example``)."""
    if reduction == "none":
        return per_example, None
    if reduction == "sum":
        return per_example.sum(), 1
    n = per_example.size if kept is None else int(kept.sum())
    if n == 0:   # as PyTorch: the mean of no examples is NaN
        return np.array(np.nan, dtype), np.nan
    return per_example.sum() / n, 1 / n


def _per_example(g, factor, shape):
    """The incoming gradient spread to each example: g (reduced) times the factor, or g as is."""
    return np.reshape(g, shape + (1,)) if factor is None else g * factor


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
    z_target = flat_z[rows, cols]
    per_example = s - z_target
    if kept is not None:
        per_example = np.where(kept.reshape(-1), per_example, 0)
    loss, factor = _reduced(per_example.reshape(targets.shape), reduction, kept, per_example.dtype)

    def vjp(g):   # (softmax - onehot(target)) * factor, in the buffer of z
        d = np.subtract(flat_z, s[:, None], dtype=np.result_type(flat_z, g))
        np.exp(d, out=d)
        d[rows, cols] = np.expm1(z_target - s)
        if kept is not None:
            d[~kept.reshape(-1)] = 0
        d = d.reshape(logits.shape)
        d *= _per_example(g, factor, targets.shape)
        return d
    return loss, (vjp, None)


def _class_weights(x, targets, reduction, ignore_index):
    """For a tensor-level rule: (onehot(target), mask of the kept rows, d(loss)/d(per-example)),
    the first two as constants (ignored rows zero)."""
    kept = _check_targets("loss", x.data, targets.data, ignore_index)
    ids = targets.data if kept is None else np.where(kept, targets.data, 0)
    rows = 1.0 if kept is None else kept[..., None]
    factor = _reduced(np.zeros(targets.shape), reduction, kept, x.dtype)[1]
    return _one_hot(ids, x.shape[-1], x.dtype) * rows, rows, factor


def _per_example_rule(g, factor):
    return unsqueeze(g, -1) if factor is None else g * factor


def _cross_entropy_rule(g, out, logits, targets, reduction="mean", ignore_index=None):
    onehot, rows, factor = _class_weights(logits, targets, reduction, ignore_index)
    return (softmax(logits, -1) * rows - onehot) * _per_example_rule(g, factor), None


defvjp(_cross_entropy, _cross_entropy_rule)


def _nll_loss(log_probs, targets, reduction="mean", ignore_index=None):   # -log_probs[target]
    kept = _check_targets("nll_loss", log_probs, targets, ignore_index)
    onehot = _one_hot(targets if kept is None else np.where(kept, targets, 0), log_probs.shape[-1],
                      np.result_type(log_probs, 1.0))
    if kept is not None:
        onehot *= kept[..., None]
    per_example = -(log_probs * onehot).sum(axis=-1)
    loss, factor = _reduced(per_example, reduction, kept, per_example.dtype)
    return loss, (lambda g: -onehot * _per_example(g, factor, targets.shape), None)


def _nll_rule(g, out, log_probs, targets, reduction="mean", ignore_index=None):
    onehot, _, factor = _class_weights(log_probs, targets, reduction, ignore_index)
    return _per_example_rule(g, factor) * -onehot, None


defvjp(_nll_loss, _nll_rule)


def _entry_factor(shape, reduction):
    """d(loss)/d(entry) of a loss given per entry: None (``"none"``: g as is), 1 or 1/size."""
    if reduction == "none":
        return None
    return 1 if reduction == "sum" else 1 / builtins.max(int(np.prod(shape)), 1)


def _reduce_entries(per_entry, reduction):
    return per_entry if reduction == "none" else per_entry.sum() if reduction == "sum" else per_entry.mean()


def _scaled(g, factor):
    return g if factor is None else g * factor


def _mse_loss(pred, target, reduction="mean"):   # (pred - target)^2
    d = pred - target
    factor = _entry_factor(d.shape, reduction)
    return _reduce_entries(d * d, reduction), (lambda g: 2 * d * _scaled(g, factor),
                                               lambda g: -2 * d * _scaled(g, factor))


def _mse_rule(g, out, pred, target, reduction="mean"):
    d = pred - target
    gd = 2 * d * _scaled(g, _entry_factor(d.shape, reduction))
    return gd, -gd


defvjp(_mse_loss, _mse_rule)


def _bce_with_logits(x, y, reduction="mean"):
    """-[y log sigma(x) + (1 - y) log(1 - sigma(x))] = max(x, 0) - x y + log1p(exp(-|x|));
    d/dx = sigma(x) - y, d/dy = -x."""
    per_entry = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    factor = _entry_factor(per_entry.shape, reduction)
    sig = _sigmoid(x)[0]
    return _reduce_entries(per_entry, reduction), (lambda g: (sig - y) * _scaled(g, factor),
                                                   lambda g: -x * _scaled(g, factor))


def _bce_rule(g, out, x, y, reduction="mean"):
    gs = _scaled(g, _entry_factor(np.broadcast_shapes(x.shape, y.shape), reduction))
    return (sigmoid(x) - y) * gs, -x * gs


defvjp(_bce_with_logits, _bce_rule)


def _one_hot(ids, n, dtype):
    out = np.zeros(ids.shape + (n,), dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out

# ---------------------------------------------------------------- public functions


def _axis(who, axis, keepdims, dim, keepdim):
    """numpy's ``axis``/``keepdims``, with PyTorch's ``dim``/``keepdim`` accepted as aliases."""
    if dim is not None:
        if axis is not None:
            raise ConfigError(f"{who}: give axis= or its alias dim=, not both")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return (tuple(axis) if isinstance(axis, list) else axis), bool(keepdims)


def _reduction(op, forward):
    """The public function of a reduction: ``f(x, axis=None, keepdims=False, dim=, keepdim=)``."""
    def reduce(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
        if dim is not None or keepdim is not None:
            axis, keepdims = _axis(op, axis, keepdims, dim, keepdim)
        elif isinstance(axis, list):
            axis = tuple(axis)
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
max.__doc__ = "Largest entry over ``axis``; tied entries share the gradient equally."
min.__doc__ = "Smallest entry over ``axis``; tied entries share the gradient equally."
prod.__doc__ = "Product over ``axis``; the gradient is the product of the others (exact with zeros)."


def var(x, axis=None, ddof=0, keepdims=False, *, dim=None, keepdim=None):
    """Variance over ``axis``, dividing by n - ddof (numpy's default ddof=0)."""
    axis, keepdims = _axis("var", axis, keepdims, dim, keepdim)
    return apply("var", _var, x, axis=axis, ddof=ddof, keepdims=keepdims)


def std(x, axis=None, ddof=0, keepdims=False, *, dim=None, keepdim=None):
    """Standard deviation over ``axis`` (sqrt of ``var``)."""
    axis, keepdims = _axis("std", axis, keepdims, dim, keepdim)
    return apply("std", _std, x, axis=axis, ddof=ddof, keepdims=keepdims)


def logsumexp(x, axis=-1, keepdims=False, *, dim=None, keepdim=None):
    """log sum exp(x) over ``axis``, without overflow or lost digits; gradient softmax(x)."""
    axis, keepdims = _axis("logsumexp", None if dim is not None else axis, keepdims, dim, keepdim)
    return apply("logsumexp", _logsumexp, x, axis=axis, keepdims=keepdims)


def norm(x):
    """The L2 (Frobenius) norm of all entries; its gradient x / norm is 0 at x = 0."""
    return apply("norm", _norm, x)


def cumsum(x, axis=None, *, dim=None):
    """Cumulative sum along ``axis`` (over the flattened input when None, as numpy)."""
    axis, _ = _axis("cumsum", None if dim is not None else axis, False, dim, None)
    return apply("cumsum", _cumsum, x, axis=axis)


def _index_result(fn, x, axis, keepdims, dim, keepdim, who):
    axis, keepdims = _axis(who, axis, keepdims, dim, keepdim)
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor(fn(data, axis=axis, keepdims=keepdims))


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the largest entry along ``axis`` (of the flattened input when None): an integer
    Tensor with no gradient."""
    return _index_result(np.argmax, x, axis, keepdims, dim, keepdim, "argmax")


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the smallest entry along ``axis``: an integer Tensor with no gradient."""
    return _index_result(np.argmin, x, axis, keepdims, dim, keepdim, "argmin")


def add(a, b):
    return apply("add", _add, a, b)


def sub(a, b):
    return apply("sub", _sub, a, b)


def mul(a, b):
    return apply("mul", _mul, a, b)


def div(a, b):
    return apply("div", _div, a, b)


def power(a, b):
    return apply("pow", _pow, a, b)


def neg(x):
    return apply("neg", _neg, x)


def exp(x):
    return apply("exp", _exp, x)


def log(x):
    return apply("log", _log, x)


def log1p(x):
    """log(1 + x), accurate for small x."""
    return apply("log1p", _log1p, x)


def tanh(x):
    return apply("tanh", _tanh, x)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed by the sign of x (full relative precision for x << 0)."""
    return apply("sigmoid", _sigmoid, x)


def softplus(x):
    """log(1 + exp(x)), exact for every x (no overflow); gradient sigmoid(x)."""
    return apply("softplus", _softplus, x)


def relu(x):
    return apply("relu", _relu, x)


def leaky_relu(x, slope=0.01):
    """x where x > 0, slope * x elsewhere."""
    return apply("leaky_relu", _leaky_relu, x, slope=slope)


def abs(x):   # noqa: A001 - numpy's name
    return apply("abs", _abs, x)


def sqrt(x):
    return apply("sqrt", _sqrt, x)


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b`` (numpy's ``where``, broadcasting); ``cond`` gets
    no gradient."""
    cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)
    return apply("where", _where, cond, a, b)


def maximum(a, b):
    """Elementwise max; at a tie each input gets half the gradient (as PyTorch)."""
    return apply("maximum", _maximum, a, b)


def minimum(a, b):
    """Elementwise min; at a tie each input gets half the gradient (as PyTorch)."""
    return apply("minimum", _minimum, a, b)


def clip(x, lo=None, hi=None):
    """``x`` limited to [lo, hi] (either may be None); the gradient passes where lo <= x <= hi."""
    if lo is None and hi is None:
        raise ConfigError("clip: give lo=, hi= or both")
    return apply("clip", _clip, x, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def matmul(a, b):
    return apply("matmul", _matmul, a, b)


def addmm(c, a, b):
    """``c + a @ b`` as one node (PyTorch's name): the affine step of a recurrence, one node
    and one saved array fewer than ``c + (a @ b)``.  ``c`` broadcasts against ``a @ b``."""
    return apply("addmm", _addmm, c, a, b)


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def reshape(x, *shape):
    return apply("reshape", _reshape, x, shape=_shape_args(shape))


def transpose(x, *axes):
    """The axes reversed (``axes`` omitted or None, as ``.T``) or permuted as ``axes``."""
    axes = _shape_args(axes)
    return apply("transpose", _transpose, x, axes=None if axes in ((), (None,)) else axes)


def swapaxes(x, axis1, axis2):
    return apply("swapaxes", _swapaxes, x, axis1=axis1, axis2=axis2)


def squeeze(x, axis=None, *, dim=None):
    """Drop axes of length 1 (all of them when ``axis`` is None)."""
    axis, _ = _axis("squeeze", axis, False, dim, None)
    return apply("squeeze", _squeeze, x, axis=axis)


def expand_dims(x, axis):
    """Insert an axis of length 1 at ``axis`` (an int or a tuple); also ``t.unsqueeze(axis)``."""
    return apply("unsqueeze", _expand_dims, x, axis=tuple(axis) if isinstance(axis, list) else axis)


unsqueeze = expand_dims


def flatten(x):
    """The entries as one axis (C order)."""
    return apply("flatten", _flatten, x)


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
    return apply("index", _getitem, x, index=_plain_index(index))


def _plain_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    plain = []
    for p in parts:
        if isinstance(p, Tensor):
            p = p.data
        elif isinstance(p, list):
            p = np.asarray(p)
        if isinstance(p, np.ndarray) and p.dtype.kind not in "iub":
            raise BadIndexError(f"index: indices must be integers or booleans, got dtype {p.dtype}")
        plain.append(p)
    return tuple(plain) if isinstance(index, tuple) else plain[0]


def take(x, indices, axis=0):
    """Select entries of ``x`` along ``axis`` by integer ``indices`` (numpy's ``take``;
    ``axis=None`` takes from the flattened input, as numpy's).

    ``indices`` may be a Tensor: it then stays a parent of the result (with no
    gradient), which is how one-hot inputs given as ids appear in the DAG.
    """
    if not isinstance(indices, Tensor):
        indices = np.asarray(indices)
    if axis is None:     # numpy's rule: take from the flattened input
        x, axis = flatten(x), 0
    return apply("take", _take, x, indices, axis=axis)


def split(x, sections_or_indices, axis=0):
    """Split ``x`` along ``axis`` by numpy's ``array_split`` rule: an int N gives N parts
    (the first ``len % N`` one longer), a list of indices gives the parts between them.

    Returns a list of Tensors, each its own node (its gradient lands in its slice of x).
    """
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if not shape:
        raise ShapeError("split: cannot split a 0-d tensor")
    axis = axis % len(shape)
    n = shape[axis]
    if isinstance(sections_or_indices, (int, np.integer)):
        parts = int(sections_or_indices)
        if parts <= 0:
            raise ConfigError(f"split: the number of sections must be positive, got {parts}")
        size, extra = divmod(n, parts)
        bounds = np.cumsum([0] + [size + 1] * extra + [size] * (parts - extra))
    else:
        bounds = [0] + list(sections_or_indices) + [n]
    lead = (slice(None),) * axis
    return [apply("split", _getitem, x, index=lead + (slice(int(a), int(b)),))
            for a, b in zip(bounds[:-1], bounds[1:])]


def concat(tensors, axis=0):
    """Join ``tensors`` along ``axis`` (``axis=None``: flattened first, as numpy's)."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    if axis is None:
        tensors, axis = [flatten(x) for x in tensors], 0
    return apply("concat", _concat, *tensors, axis=axis)


def stack(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    return apply("stack", _stack, *tensors, axis=axis)


def softmax(x, axis=-1, *, dim=None):
    axis, _ = _axis("softmax", None if dim is not None else axis, False, dim, None)
    return apply("softmax", _softmax, x, axis=axis)


def log_softmax(x, axis=-1, *, dim=None):
    """x - logsumexp(x), with the max's term kept out of the sum (no digits lost to a large max)."""
    axis, _ = _axis("log_softmax", None if dim is not None else axis, False, dim, None)
    return apply("log_softmax", _log_softmax, x, axis=axis)


def one_hot(ids, n, dtype=np.float64):
    """ids (...) -> (..., n) with a 1 at each id: a constant (no gradient)."""
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: ids must be integers, got dtype {ids.dtype}")
    check_size("one_hot", ids.shape + (int(n),), dtype, (ids.shape,))
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        bad = ids[(ids < 0) | (ids >= n)].flat[0]
        raise BadIndexError(f"one_hot: id {bad} out of range [0, {n})")
    return Tensor(_one_hot(ids, n, dtype))


def dropout(x, p, seed=None, train=True):
    """Inverted dropout: each entry zeroed with probability ``p``, the rest scaled by 1/(1 - p).

    ``train=False`` is the identity (returns ``x`` itself); ``seed`` fixes the mask.
    """
    if not 0 <= p <= 1:
        raise ConfigError(f"dropout: p must be in [0, 1], got {p}")
    if not train or p == 0:
        return x
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    dtype = np.result_type(data, 1.0)
    keep = np.random.default_rng(seed).random(data.shape) >= p
    mask = keep / dtype.type(1 - p) if p < 1 else np.zeros(data.shape, dtype)
    return apply("dropout", _dropout, x, mask.astype(dtype, copy=False))


def _check_reduction(who, reduction):
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"{who}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _ids(targets):   # a Tensor of ids stays a parent of the loss (with no gradient)
    return targets if isinstance(targets, Tensor) else np.asarray(targets)


def cross_entropy(logits, targets, reduction="mean", ignore_index=None):
    """``-log softmax(logits)[target]`` per example, reduced by ``reduction``.

    logits : (..., C) Tensor; targets : (...) integer class ids (a Tensor of them stays a
    parent of the result, with no gradient, like ``take``'s indices).
    reduction : "mean" (over the kept examples), "sum" or "none" (shape of targets).
    ignore_index : a target id whose examples count for nothing (zero loss and gradient).
    Exact for any logits: logits [1000, 975] lose no digits in the loss or its gradient.
    """
    _check_reduction("cross_entropy", reduction)
    return apply("cross_entropy", _cross_entropy, logits, _ids(targets), reduction=reduction,
                 ignore_index=ignore_index)


def nll_loss(log_probs, targets, reduction="mean", ignore_index=None):
    """``-log_probs[target]`` per example (log_probs (..., C), e.g. from ``log_softmax``)."""
    _check_reduction("nll_loss", reduction)
    return apply("nll_loss", _nll_loss, log_probs, _ids(targets), reduction=reduction,
                 ignore_index=ignore_index)


def mse_loss(pred, target, reduction="mean"):
    """``(pred - target)^2`` per entry (broadcasting), reduced; both inputs may take gradients."""
    _check_reduction("mse_loss", reduction)
    return apply("mse_loss", _mse_loss, pred, target, reduction=reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """``-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]`` per entry, computed as
    max(x, 0) - x y + log1p(exp(-|x|)) (stable for any x); targets y in [0, 1]."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    return apply("binary_cross_entropy_with_logits", _bce_with_logits, logits, targets,
                 reduction=reduction)

# ---------------------------------------------------------------- comparisons (no gradient)


def _compare(fn):
    def compare(a, b):
        a = a.data if isinstance(a, Tensor) else a
        b = b.data if isinstance(b, Tensor) else b
        return Tensor(fn(a, b))
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
Tensor.__pow__ = power
Tensor.__rpow__ = _reflected(power)
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = _reflected(matmul)
Tensor.__neg__ = neg
Tensor.__abs__ = abs
Tensor.__getitem__ = getitem
Tensor.__lt__ = _compare(np.less)
Tensor.__le__ = _compare(np.less_equal)
Tensor.__gt__ = _compare(np.greater)
Tensor.__ge__ = _compare(np.greater_equal)
Tensor.__eq__ = _compare(np.equal)
Tensor.__ne__ = _compare(np.not_equal)
for _fn in (exp, log, log1p, tanh, sigmoid, softplus, relu, leaky_relu, abs, sqrt, sum, mean, max,
            min, prod, var, std, norm, cumsum, argmax, argmin, logsumexp, clip, maximum, minimum,
            reshape, transpose, swapaxes, squeeze, expand_dims, flatten, softmax,
            log_softmax):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.unsqueeze = unsqueeze
Tensor.T = property(lambda self: transpose(self))
