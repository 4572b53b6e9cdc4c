"""numpy on Tensors: ``np.asarray(t)`` is ``t.data``, and a numpy ufunc or function applied
to a Tensor runs the engine's op (a node, with its gradient) or raises a TypeError naming the
tinygraph op to use -- never an object array of tensors.

Functions that only look at values (``np.shape``, ``np.allclose``, ``np.argsort``, ...) run on
the data and return numpy results, as ``np.asarray(t)`` would.
"""

import functools
import inspect

import numpy as np

from . import ops
from .errors import ConfigError, DTypeError, ShapeError
from .tensor import Tensor, _constant_of


_UFUNCS = {
    np.add: ops.add, np.subtract: ops.sub, np.multiply: ops.mul, np.true_divide: ops.div,
    np.power: ops.power, np.negative: ops.neg, np.exp: ops.exp, np.log: ops.log,
    np.log1p: ops.log1p, np.tanh: ops.tanh, np.sqrt: ops.sqrt, np.absolute: ops.abs,
    np.maximum: ops.maximum, np.minimum: ops.minimum, np.matmul: ops.matmul, np.square: ops.square,
    np.less: Tensor.__lt__, np.less_equal: Tensor.__le__, np.greater: Tensor.__gt__,
    np.greater_equal: Tensor.__ge__, np.equal: Tensor.__eq__, np.not_equal: Tensor.__ne__,
}

# ufuncs whose result is a boolean (no gradient): a Tensor that does not require grad, like a
# comparison.  (np.sign, whose derivative is zero almost everywhere, is a node with gradient
# 0 below, as the rounding ufuncs.)
_CONSTANT_UFUNCS = {np.isfinite, np.isnan, np.isinf, np.signbit, np.logical_not,
                    np.logical_and, np.logical_or, np.logical_xor}

# what a numpy user may reach for that tinygraph spells differently
_HINTS = {"add.reduce": "tg.sum(t, axis)", "multiply.reduce": "tg.prod(t, axis)",
          "maximum.reduce": "t.max(axis)", "minimum.reduce": "t.min(axis)",
          "add.accumulate": "tg.cumsum(t, axis)", "sigmoid": "tg.sigmoid",
          "logaddexp": "tg.logsumexp(tg.stack([a, b]), axis=0)"}


def _arrays(value, layout_only=False):
    """The same arguments with every Tensor replaced by its data (in lists and tuples too): a
    value read for a recording tape, unless the caller reads ``layout_only`` (shape, dtype)."""
    if isinstance(value, Tensor):
        if layout_only:
            return value._data
        return _constant_of(value, "the step applies a numpy function with no gradient to a Tensor "
                                   "(a constant)")
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays(v, layout_only) for v in value)
    return value


def _refuse(what, hint=None):
    advice = f"use {hint}" if hint else "no tinygraph op does this, so no gradient would flow"
    raise DTypeError(f"{what} on a Tensor: {advice}; for the values alone (no gradient) "
                    "apply it to t.numpy()")


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
    if method != "__call__":
        _refuse(f"np.{name}", _HINTS.get(name))
    if "out" in kwargs:
        _refuse(f"np.{name}(..., out=)", "an out-of-place op (tinygraph ops make new tensors), "
                "or `with tg.no_grad(): t -= ...` to update a tensor in place")
    for key, value in kwargs.items():   # numpy's defaults are fine; anything else is refused
        default = _UFUNC_DEFAULTS.get(key, ())
        if value is default or (isinstance(value, str) and value == default):
            continue
        op = _UFUNCS.get(ufunc)
        _refuse(f"np.{name}(..., {key}=)", _ARGUMENT_HINTS.get(key) or (
            f"tg.{op.__name__} without it" if op is not None and getattr(ops, op.__name__, None) is op
            else "the call without it"))
    if ufunc in _UFUNCS:
        return _UFUNCS[ufunc](*inputs)
    if ufunc in _CONSTANT_UFUNCS:
        return Tensor(ufunc(*_arrays(inputs)))
    _refuse(f"np.{name}", _HINTS.get(name))


def _np_reduction(fn):
    def run(a, axis=None, keepdims=False):
        return fn(a, axis=axis, keepdims=keepdims)
    return run


def _np_moments(fn):
    def run(a, axis=None, ddof=0, keepdims=False, correction=None):
        return fn(a, axis=axis, ddof=ddof if correction is None else correction, keepdims=keepdims)
    return run


def _np_where(condition, x=None, y=None):
    if x is None and y is None:
        return np.where(_arrays(condition))   # the indices of the true entries: values only
    if x is None or y is None:
        raise ConfigError("np.where: give both x and y, or neither")
    return ops.where(condition, x, y)


def _np_norm(x, ord=None, axis=None, keepdims=False):   # noqa: A002 - numpy's name
    """Without ord the 2-norm over axis (Frobenius over two axes or all); ord 2 over one axis and
    "fro" over two are that norm too (tg.norm's orders, "fro" a matrix's alone, as numpy's), any
    other is refused."""
    if ord is not None:
        axis = tuple(axis) if isinstance(axis, list) else axis
        over = (np.ndim(x._data if isinstance(x, Tensor) else x) if axis is None
                else 1 if isinstance(axis, (int, np.integer)) else len(axis))
        try:
            ops._check_norm_order(x, ord, axis)
            if isinstance(ord, str) and over != 2:      # numpy: 'fro' is a matrix's order only
                raise ConfigError("norm: 'fro' over one axis")
        except ConfigError:
            _refuse(f"np.linalg.norm(..., ord={ord!r})", "t.norm(axis=a) (the L2 norm; ord=2 over "
                    "one axis and ord='fro' go through), abs(t).sum(axis=a) for the 1-norm")
    return ops.norm(x, axis=axis, keepdims=keepdims)


def _np_dot(a, b):
    if np.ndim(a) > 2 or np.ndim(b) > 2:       # (np.ndim reads a Tensor's .ndim, not its values)
        _refuse("np.dot of N-D arrays", "tg.matmul (numpy's matmul broadcasting)")
    return ops.matmul(a, b) if np.ndim(a) and np.ndim(b) else ops.mul(a, b)


def _np_split(ary, indices_or_sections, axis=0):
    n = np.shape(ary)[axis]
    if isinstance(indices_or_sections, (int, np.integer)) and n % indices_or_sections:
        raise ShapeError(f"np.split: {n} entries do not divide into {indices_or_sections} equal "
                         "sections (np.array_split / tg.split allow unequal ones)")
    return ops.split(ary, indices_or_sections, axis)


def _np_clip(a, a_min=None, a_max=None, min=None, max=None):   # noqa: A002 - numpy's names
    return ops.clip(a, a_min if min is None else min, a_max if max is None else max)


# numpy function -> (the tinygraph name, its implementation taking numpy's argument names)
_FUNCTIONS = {
    np.sum: ("sum", _np_reduction(ops.sum)), np.mean: ("mean", _np_reduction(ops.mean)),
    np.max: ("max", _np_reduction(ops.max)), np.amax: ("max", _np_reduction(ops.max)),
    np.min: ("min", _np_reduction(ops.min)), np.amin: ("min", _np_reduction(ops.min)),
    np.prod: ("prod", _np_reduction(ops.prod)), np.var: ("var", _np_moments(ops.var)),
    np.std: ("std", _np_moments(ops.std)), np.cumsum: ("cumsum", lambda a, axis=None: ops.cumsum(a, axis)),
    np.argmax: ("argmax", _np_reduction(ops.argmax)), np.argmin: ("argmin", _np_reduction(ops.argmin)),
    np.where: ("where", _np_where), np.clip: ("clip", _np_clip),
    np.concatenate: ("concat", lambda arrays, axis=0: ops.concat(arrays, axis)),
    np.stack: ("stack", lambda arrays, axis=0: ops.stack(arrays, axis)),
    np.reshape: ("reshape", lambda a, shape: ops.reshape(a, shape)),
    np.transpose: ("transpose", lambda a, axes=None: ops.transpose(a, axes)),
    np.swapaxes: ("swapaxes", lambda a, axis1, axis2: ops.swapaxes(a, axis1, axis2)),
    np.squeeze: ("squeeze", lambda a, axis=None: ops.squeeze(a, axis)),
    np.expand_dims: ("expand_dims", lambda a, axis: ops.expand_dims(a, axis)),
    np.ravel: ("flatten", lambda a: ops.flatten(a)),
    np.array_split: ("split", lambda ary, indices_or_sections, axis=0: ops.split(ary, indices_or_sections, axis)),
    np.split: ("split", _np_split), np.dot: ("matmul", _np_dot), np.linalg.norm: ("norm", _np_norm),
    np.broadcast_to: ("broadcast_to", lambda array, shape: ops.broadcast_to(array, shape)),
    np.take: ("take", lambda a, indices, axis=None: ops.take(a, indices, axis)),
}

# the keyword arguments of every ufunc, at numpy's defaults
_UFUNC_DEFAULTS = {"where": True, "casting": "same_kind", "order": "K", "dtype": None, "subok": True,
                   "signature": None}

# what to use instead of a numpy argument the engine's op does not take
_ARGUMENT_HINTS = {
    "out": "an out-of-place call (tinygraph ops make new tensors), or `with tg.no_grad(): t -= ...` "
           "to update a tensor in place",
    "dtype": "the call without dtype= (the result keeps the inputs' dtype: make the inputs in the "
             "dtype you want, e.g. tg.tensor(x, dtype=np.float32))",
    "order": "the default order='C' (tensors are C-ordered; for Fortran order reverse the axes: "
             "t.T.reshape(shape[::-1]).T)",
    "mode": "the default mode='raise' (an index out of range raises BadIndexError; for 'wrap' or "
            "'clip' map the indices first with np.mod or np.clip)",
    "copy": "the call without copy= (the result is a new node either way)",
}


@functools.lru_cache(maxsize=None)
def _signatures(func):
    impl = _FUNCTIONS[func][1]
    return inspect.signature(func), set(inspect.signature(impl).parameters)


def _is_default(value, param):
    if value is None or value is np._NoValue:
        return True
    default = param.default
    if default is inspect.Parameter.empty or default is None or type(value) is not type(default):
        return False
    return value == default


def _call(func, args, kwargs):
    """Call the engine's version of ``func`` with numpy's own arguments: bound by numpy's
    signature, each one the engine does not take refused (naming the numpy function and what
    to use instead) unless it is left at numpy's default."""
    tg_name, impl = _FUNCTIONS[func]
    name = func.__name__
    signature, accepted = _signatures(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise DTypeError(f"np.{name} on a Tensor: {e} (numpy's signature is np.{name}{signature})") \
            from None
    call = {}
    for key, value in bound.arguments.items():
        param = signature.parameters[key]
        if param.kind is inspect.Parameter.VAR_KEYWORD and key not in accepted:
            for extra in value:
                _refuse(f"np.{name}(..., {extra}=)", f"tg.{tg_name} without it")
        elif key in accepted:
            call[key] = value
        elif not _is_default(value, param):
            _refuse(f"np.{name}(..., {key}=)", _ARGUMENT_HINTS.get(key, f"tg.{tg_name} without it"))
    return impl(**call)


# functions that only look at values: they run on the data and return what numpy returns
_VALUES_ONLY = {np.shape, np.ndim, np.size, np.allclose, np.isclose, np.array_equal,
                np.array_equiv, np.any, np.all, np.count_nonzero, np.nonzero, np.flatnonzero,
                np.argwhere, np.argsort, np.array_repr, np.array_str, np.iscomplexobj,
                np.isrealobj, np.result_type, np.can_cast, np.min_scalar_type}


# of those, the ones that read only the shape or the dtype (not a value read for a recording)
_LAYOUT_ONLY = {np.shape, np.ndim, np.size, np.iscomplexobj, np.isrealobj, np.result_type,
                np.can_cast, np.min_scalar_type}


def array_function(self, func, types, args, kwargs):
    if func in _FUNCTIONS:
        return _call(func, args, kwargs)
    if func in _VALUES_ONLY:
        layout = func in _LAYOUT_ONLY
        return func(*_arrays(args, layout), **{k: _arrays(v, layout) for k, v in kwargs.items()})
    _refuse(f"np.{func.__name__}", _HINTS.get(func.__name__))




def _np_pad(array, pad_width, mode="constant", kwargs=None):
    rest = dict(kwargs or {})
    constant_values = rest.pop("constant_values", 0)
    if mode != "constant" or rest or np.ndim(constant_values):
        _refuse(f"np.pad(..., mode={mode!r}{''.join(f', {k}=' for k in rest)})",
                "tg.pad(t, pad_width, value=) (constant padding by one number)")
    return ops.pad(array, pad_width, value=constant_values)


# the round-3 ops
_UFUNCS.update({np.sin: ops.sin, np.cos: ops.cos, np.expm1: ops.expm1})
# the rounding ops: nodes with gradient 0, as tg.floor ... and np.round (they were constants
# without a gradient, where tg.floor gave a node); np.rint rounds halves to even, as tg.round;
# np.sign too (it was a constant, where tg.sign gave a node), keeping numpy's NaN for NaN
_UFUNCS.update({np.floor: ops.floor, np.ceil: ops.ceil, np.trunc: ops.trunc,
                np.rint: lambda x: ops.round(x, 0), np.sign: ops._np_sign})
_FUNCTIONS.update({
    np.flip: ("flip", lambda m, axis=None: ops.flip(m, axis)),
    np.moveaxis: ("moveaxis", lambda a, source, destination: ops.moveaxis(a, source, destination)),
    np.tile: ("tile", lambda A, reps: ops.tile(A, reps)),   # noqa: N803 - numpy's name
    np.hstack: ("hstack", lambda tup: ops.hstack(tup)), np.vstack: ("vstack", lambda tup: ops.vstack(tup)),
    np.pad: ("pad", _np_pad), np.sort: ("sort", lambda a, axis=-1: ops.sort(a, axis)[0]),
    np.roll: ("roll", lambda a, shift, axis=None: ops.roll(a, shift, axis)),
    np.round: ("round", lambda a, decimals=0: ops.round(a, decimals)),
    np.around: ("round", lambda a, decimals=0: ops.round(a, decimals)),
    np.fix: ("trunc", lambda x: ops.trunc(x)),      # rounds toward 0, as trunc
})

Tensor.__array_ufunc__ = array_ufunc
Tensor.__array_function__ = array_function
