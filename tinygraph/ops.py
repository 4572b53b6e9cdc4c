"""The ops: each is a forward on numpy arrays and, beside it, one
vector-Jacobian product per input, written like the math.

Every op returns ``(value, vjps)``; :func:`tinygraph.tensor.apply` turns that
into a node.  Gradients may come back in the broadcast shape: the engine sums
them back to each input's shape once, centrally.
"""

import builtins
from functools import partial
from operator import itemgetter

import numpy as np

from .errors import BadIndexError, DTypeError, ShapeError
from .tensor import Scatter, Tensor, _unbroadcast, apply

# ---------------------------------------------------------------- elementwise


def _identity(g):
    return g


def _negative(g):
    return -g


def _add(a, b):
    return a + b, (_identity, _identity)


def _sub(a, b):
    return a - b, (_identity, _negative)


def _mul(a, b):
    return a * b, (lambda g: g * b, lambda g: g * a)


def _div(a, b):
    out = a / b
    return out, (lambda g: g / b, lambda g: -g * out / b)


def _pow(a, b):
    out = a ** b
    return out, (lambda g: g * b * a ** (b - 1),
                 lambda g: g * out * np.log(np.where(a > 0, a, 1)))


def _neg(a):
    return -a, (_negative,)


def _exp(x):
    y = np.exp(x)
    return y, (lambda g: g * y,)


def _log(x):
    return np.log(x), (lambda g: g / x,)


def _tanh(x):
    y = np.tanh(x)
    return y, (partial(_tanh_vjp, y),)


def _tanh_vjp(y, g):
    return g * (1 - y * y)


def _sigmoid(x):
    y = 0.5 * (1 + np.tanh(0.5 * x))     # = 1 / (1 + exp(-x)), without overflow
    return y, (lambda g: g * y * (1 - y),)


def _relu(x):
    return np.maximum(x, 0), (lambda g: g * (x > 0),)


def _abs(x):
    return np.abs(x), (lambda g: g * np.sign(x),)


def _sqrt(x):
    y = np.sqrt(x)
    return y, (lambda g: g / (2 * y),)

# ---------------------------------------------------------------- matmul


def _matmul(a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError("matmul needs at least 1-D operands")
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

# ---------------------------------------------------------------- reductions


def _expand(g, shape, axis, keepdims):
    if axis is not None and not keepdims and shape:   # numpy lets a 0-d input take axis=0
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


def _sum(x, axis=None, keepdims=False):
    return x.sum(axis=axis, keepdims=keepdims), (lambda g: _expand(g, x.shape, axis, keepdims),)


def _mean(x, axis=None, keepdims=False):
    out = x.mean(axis=axis, keepdims=keepdims)
    n = x.size // out.size if out.size and x.size else 1    # elements averaged per output
    return out, (lambda g: _expand(g / n, x.shape, axis, keepdims),)


def _max(x, axis=None, keepdims=False):
    out = x.max(axis=axis, keepdims=keepdims)

    def vjp(g):   # ties share the gradient equally
        hit = x == _expand(out, x.shape, axis, keepdims)
        share = hit / hit.sum(axis=axis, keepdims=True)
        return share * _expand(g, x.shape, axis, keepdims)
    return out, (vjp,)

# ---------------------------------------------------------------- shapes


def _reshape(x, shape):
    return x.reshape(shape), (lambda g: g.reshape(x.shape),)


def _transpose(x, axes=None):
    out = x.transpose(axes)
    inverse = None if axes is None else np.argsort([a % x.ndim for a in axes])
    return out, (lambda g: g.transpose(inverse),)


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


def _concat(*xs, axis=0):
    out = np.concatenate(xs, axis=axis)
    lead = (slice(None),) * (axis % out.ndim)
    ends = np.cumsum([x.shape[axis] for x in xs])
    return out, [itemgetter(lead + (slice(e - x.shape[axis], e),)) for x, e in zip(xs, ends)]


def _stack(*xs, axis=0):
    out = np.stack(xs, axis=axis)
    lead = (slice(None),) * (axis % out.ndim)
    return out, [itemgetter(lead + (i,) if lead else i) for i in range(len(xs))]   # g[..., i]

# ---------------------------------------------------------------- softmax family


def _logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    z = np.subtract(x, m, dtype=np.result_type(x, 1.0))   # one temporary, exp'd in place
    e = np.exp(z, out=z) if z.ndim else np.exp(z)
    return m + np.log(e.sum(axis=axis, keepdims=True))


def _softmax(x, axis=-1):
    y = np.exp(x - _logsumexp(x, axis))
    return y, (lambda g: y * (g - (g * y).sum(axis=axis, keepdims=True)),)


def _log_softmax(x, axis=-1):
    out = x - _logsumexp(x, axis)
    return out, (lambda g: g - np.exp(out) * g.sum(axis=axis, keepdims=True),)


def _cross_entropy(logits, targets):
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: logits must have a class axis, got a scalar")
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ShapeError(f"cross_entropy: logits {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {targets.shape}")
    n_classes = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= n_classes):
        bad = targets[(targets < 0) | (targets >= n_classes)].flat[0]
        raise BadIndexError(f"cross_entropy: target {bad} out of range [0, {n_classes})")
    lse = _logsumexp(logits, -1)            # keep this (one number per example), not log p
    cols = targets.reshape(-1)
    rows = np.arange(cols.size)
    n = builtins.max(targets.size, 1)
    picked = logits.reshape(-1, n_classes)[rows, cols]
    loss = (lse.reshape(-1) - picked).sum() / n

    def vjp(g):   # (softmax - onehot(target)) / n, in one buffer
        d = np.subtract(logits, lse, dtype=np.result_type(logits, g))
        np.exp(d, out=d)
        flat = d.reshape(-1, n_classes)
        flat[rows, cols] -= 1
        d *= g / n
        return d
    return loss, (vjp, None)

# ---------------------------------------------------------------- public functions


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


def tanh(x):
    return apply("tanh", _tanh, x)


def sigmoid(x):
    return apply("sigmoid", _sigmoid, x)


def relu(x):
    return apply("relu", _relu, x)


def abs(x):   # noqa: A001 - numpy's name
    return apply("abs", _abs, x)


def sqrt(x):
    return apply("sqrt", _sqrt, x)


def matmul(a, b):
    return apply("matmul", _matmul, a, b)


def addmm(c, a, b):
    """``c + a @ b`` as one node (PyTorch's name): the affine step of a recurrence, one node
    and one saved array fewer than ``c + (a @ b)``.  ``c`` broadcasts against ``a @ b``."""
    return apply("addmm", _addmm, c, a, b)


def sum(x, axis=None, keepdims=False):   # noqa: A001 - numpy's name
    return apply("sum", _sum, x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return apply("mean", _mean, x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):   # noqa: A001 - numpy's name
    return apply("max", _max, x, axis=axis, keepdims=keepdims)


def reshape(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return apply("reshape", _reshape, x, shape=shape)


def transpose(x, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return apply("transpose", _transpose, x, axes=axes or None)


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
    """Select entries of ``x`` along ``axis`` by integer ``indices`` (numpy's ``take``).

    ``indices`` may be a Tensor: it then stays a parent of the result (with no
    gradient), which is how one-hot inputs given as ids appear in the DAG.
    """
    if not isinstance(indices, Tensor):
        indices = np.asarray(indices)
    return apply("take", _take, x, indices, axis=axis)


def concat(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    return apply("concat", _concat, *tensors, axis=axis)


def stack(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    return apply("stack", _stack, *tensors, axis=axis)


def softmax(x, axis=-1):
    return apply("softmax", _softmax, x, axis=axis)


def log_softmax(x, axis=-1):
    return apply("log_softmax", _log_softmax, x, axis=axis)


def cross_entropy(logits, targets):
    """Mean over the batch of ``-log softmax(logits)[target]``.

    logits : (..., C) Tensor; targets : (...) integer class ids.  A Tensor of
    targets stays a parent of the result (with no gradient), like ``take``'s indices.
    """
    if not isinstance(targets, Tensor):
        targets = np.asarray(targets)
    return apply("cross_entropy", _cross_entropy, logits, targets)

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
for _fn in (exp, log, tanh, sigmoid, relu, abs, sqrt, sum, mean, max, reshape, transpose,
            softmax, log_softmax):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.T = property(lambda self: transpose(self))
