"""numpy on Tensors: ``np.asarray(t)`` is ``t.data``, and a numpy ufunc or function applied
to a Tensor runs the engine's op (a node, with its gradient) or raises a TypeError naming the
tinygraph op to use -- never an object array of tensors.

Functions that only look at values (``np.shape``, ``np.allclose``, ``np.argsort``, ...) run on
the data and return numpy results, as ``np.asarray(t)`` would.
"""

import numpy as np

from . import ops
from .tensor import Tensor


def _square(x):
    return ops.power(x, 2)


_UFUNCS = {
    np.add: ops.add, np.subtract: ops.sub, np.multiply: ops.mul, np.true_divide: ops.div,
    np.power: ops.power, np.negative: ops.neg, np.exp: ops.exp, np.log: ops.log,
    np.log1p: ops.log1p, np.tanh: ops.tanh, np.sqrt: ops.sqrt, np.absolute: ops.abs,
    np.maximum: ops.maximum, np.minimum: ops.minimum, np.matmul: ops.matmul, np.square: _square,
    np.less: Tensor.__lt__, np.less_equal: Tensor.__le__, np.greater: Tensor.__gt__,
    np.greater_equal: Tensor.__ge__, np.equal: Tensor.__eq__, np.not_equal: Tensor.__ne__,
}

# ufuncs whose result has no gradient (a boolean, or a derivative that is zero almost
# everywhere): a Tensor that does not require grad, like a comparison.
_CONSTANT_UFUNCS = {np.isfinite, np.isnan, np.isinf, np.sign, np.signbit, np.logical_not,
                    np.logical_and, np.logical_or, np.logical_xor, np.floor, np.ceil, np.trunc,
                    np.rint}

# what a numpy user may reach for that tinygraph spells differently
_HINTS = {"add.reduce": "tg.sum(t, axis)", "multiply.reduce": "tg.prod(t, axis)",
          "maximum.reduce": "t.max(axis)", "minimum.reduce": "t.min(axis)",
          "add.accumulate": "tg.cumsum(t, axis)", "sigmoid": "tg.sigmoid",
          "logaddexp": "tg.logsumexp(tg.stack([a, b]), axis=0)"}


def _arrays(value):
    """The same arguments with every Tensor replaced by its data (in lists and tuples too)."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays(v) for v in value)
    return value


def _refuse(what, hint=None):
    advice = f"use {hint}" if hint else "no tinygraph op does this, so no gradient would flow"
    raise TypeError(f"{what} on a Tensor: {advice}; for the values alone (no gradient) "
                    "apply it to t.numpy()")


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
    if method != "__call__":
        _refuse(f"np.{name}", _HINTS.get(name))
    if "out" in kwargs:
        _refuse(f"np.{name}(..., out=)", "an out-of-place op (tinygraph ops make new tensors), "
                "or `with tg.no_grad(): t -= ...` to update a tensor in place")
    if kwargs:
        _refuse(f"np.{name}(..., {', '.join(f'{k}=' for k in kwargs)})",
                "the tinygraph op without those arguments")
    if ufunc in _UFUNCS:
        return _UFUNCS[ufunc](*inputs)
    if ufunc in _CONSTANT_UFUNCS:
        return Tensor(ufunc(*_arrays(inputs)))
    _refuse(f"np.{name}", _HINTS.get(name))


def _unsupported(name, rest):
    if rest:
        _refuse(f"np.{name}(..., {', '.join(f'{k}=' for k in rest)})", f"tg.{name} without them")


def _reduction(fn, name):
    def run(a, axis=None, *, keepdims=False, **rest):
        _unsupported(name, rest)
        return fn(a, axis=axis, keepdims=keepdims)
    return run


def _moments(fn, name):
    def run(a, axis=None, *, ddof=0, keepdims=False, **rest):
        _unsupported(name, rest)
        return fn(a, axis=axis, ddof=ddof, keepdims=keepdims)
    return run


def _np_where(cond, *values):
    if len(values) != 2:
        return np.where(_arrays(cond))   # the indices of the true entries: values only
    return ops.where(cond, *values)


def _np_norm(x, ord=None, axis=None, keepdims=False):   # noqa: A002 - numpy's name
    if ord is not None or axis is not None or keepdims:
        _refuse("np.linalg.norm(..., ord=/axis=/keepdims=)", "t.norm() (the L2 norm of all entries)")
    return ops.norm(x)


def _np_dot(a, b):
    if np.ndim(_arrays(a)) > 2 or np.ndim(_arrays(b)) > 2:
        _refuse("np.dot of N-D arrays", "tg.matmul (numpy's matmul broadcasting)")
    return ops.matmul(a, b) if np.ndim(_arrays(a)) and np.ndim(_arrays(b)) else ops.mul(a, b)


def _np_split(x, sections, axis=0):
    n = np.shape(_arrays(x))[axis]
    if isinstance(sections, (int, np.integer)) and n % sections:
        raise ValueError(f"np.split: {n} entries do not divide into {sections} equal sections "
                         "(np.array_split / tg.split allow unequal ones)")
    return ops.split(x, sections, axis)


def _np_clip(a, a_min=None, a_max=None, **rest):
    _unsupported("clip", rest)
    return ops.clip(a, a_min, a_max)


_FUNCTIONS = {
    np.sum: _reduction(ops.sum, "sum"), np.mean: _reduction(ops.mean, "mean"),
    np.max: _reduction(ops.max, "max"), np.amax: _reduction(ops.max, "max"),
    np.min: _reduction(ops.min, "min"), np.amin: _reduction(ops.min, "min"),
    np.prod: _reduction(ops.prod, "prod"), np.var: _moments(ops.var, "var"),
    np.std: _moments(ops.std, "std"), np.cumsum: ops.cumsum,
    np.argmax: _reduction(ops.argmax, "argmax"), np.argmin: _reduction(ops.argmin, "argmin"),
    np.where: _np_where, np.clip: _np_clip, np.concatenate: ops.concat, np.stack: ops.stack,
    np.reshape: lambda a, shape: ops.reshape(a, shape), np.transpose: ops.transpose,
    np.swapaxes: ops.swapaxes, np.squeeze: ops.squeeze, np.expand_dims: ops.expand_dims,
    np.ravel: ops.flatten, np.array_split: ops.split, np.split: _np_split, np.dot: _np_dot,
    np.linalg.norm: _np_norm, np.broadcast_to: ops.broadcast_to, np.take: ops.take,
}

# functions that only look at values: they run on the data and return what numpy returns
_VALUES_ONLY = {np.shape, np.ndim, np.size, np.allclose, np.isclose, np.array_equal,
                np.array_equiv, np.any, np.all, np.count_nonzero, np.nonzero, np.flatnonzero,
                np.argwhere, np.argsort, np.array_repr, np.array_str, np.iscomplexobj,
                np.isrealobj, np.result_type, np.can_cast, np.min_scalar_type}


def array_function(self, func, types, args, kwargs):
    if func in _FUNCTIONS:
        return _FUNCTIONS[func](*args, **kwargs)
    if func in _VALUES_ONLY:
        return func(*_arrays(args), **{k: _arrays(v) for k, v in kwargs.items()})
    _refuse(f"np.{func.__name__}", _HINTS.get(func.__name__))




def _np_pad(array, pad_width, mode="constant", constant_values=0, **rest):
    if mode != "constant" or rest or np.ndim(constant_values):
        _refuse(f"np.pad(..., mode={mode!r}{''.join(f', {k}=' for k in rest)})",
                "tg.pad(t, pad_width, value=) (constant padding by one number)")
    return ops.pad(array, pad_width, value=constant_values)


def _np_sort(a, axis=-1, **rest):
    _unsupported("sort", rest)
    return ops.sort(a, axis)[0]


# the round-3 ops
_UFUNCS.update({np.sin: ops.sin, np.cos: ops.cos, np.expm1: ops.expm1})
_FUNCTIONS.update({np.flip: ops.flip, np.moveaxis: ops.moveaxis, np.tile: ops.tile,
                   np.hstack: ops.hstack, np.vstack: ops.vstack, np.pad: _np_pad, np.sort: _np_sort})

Tensor.__array_ufunc__ = array_ufunc
Tensor.__array_function__ = array_function
