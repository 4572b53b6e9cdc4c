"""Constructors of leaf tensors, named and behaving as numpy's (and PyTorch's ``randn``/``rand``).

Float data defaults to float64; ``requires_grad=True`` makes a leaf that backward fills.
"""

import builtins
import math

import numpy as np

from .errors import ConfigError, DTypeError, OutOfRangeError, ShapeError
from .tensor import (Tensor, _allocation_error, _constant_of, _current, _fresh_random, check_size,
                     narrow_float, refuse_overflow)


def _leaf(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _make(who, make, shape, dtype):
    """``make()``, after checking that ``shape`` of ``dtype`` fits in memory; numpy's errors
    become tinygraph errors naming ``who`` and the shape (AllocationError for a MemoryError)."""
    given = "" if shape is None else f" (shape {shape!r})"
    try:
        dims = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        kind = np.dtype(dtype)
    except (TypeError, ValueError):
        dims = None     # (also for shape None) make() raises numpy's error, named below
    if dims is not None and all(n >= 0 for n in dims):
        check_size(who, dims, kind)
    try:
        if dtype is not None and narrow_float(dtype):
            with np.errstate(over="ignore"):    # a finite value made inf is refused by the caller
                return make()
        return make()
    except MemoryError as e:
        raise _allocation_error(who, [], e) from None
    except OverflowError as e:      # a fill value out of the integer dtype's range
        raise OutOfRangeError(f"{who}: {e}{given}") from None
    except ValueError as e:
        raise ShapeError(f"{who}: {e}{given}") from None
    except TypeError as e:
        raise DTypeError(f"{who}: {e}{given}") from None


def _float(dtype):
    return np.float64 if dtype is None else dtype


def _random_dtype(who, dtype):
    """The dtype of random values: a float one (an integer one truncated every N(0, 1) or
    [0, 1) value to 0 or +-1 without a word; torch refuses it too)."""
    try:
        kind = np.dtype(_float(dtype))
    except TypeError as e:
        raise DTypeError(f"{who}: {e}") from None
    if kind.kind != "f":
        raise DTypeError(f"{who}: dtype must be a float dtype (random values in {kind} would be "
                         f"truncated to integers), got {kind}")
    return kind


def _shape(shape):
    """``randn(2, 3)`` and ``randn((2, 3))`` alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(shape, dtype=None, requires_grad=False):
    """A tensor of zeros of ``shape`` (an int or a tuple)."""
    return _leaf(_make("zeros", lambda: np.zeros(shape, _float(dtype)), shape, _float(dtype)),
                 requires_grad)


def ones(shape, dtype=None, requires_grad=False):
    """A tensor of ones of ``shape`` (an int or a tuple)."""
    return _leaf(_make("ones", lambda: np.ones(shape, _float(dtype)), shape, _float(dtype)),
                 requires_grad)


def full(shape, value, dtype=None, requires_grad=False):
    """A tensor of ``shape`` filled with ``value`` (dtype as numpy's ``full``: from the value)."""
    if isinstance(value, Tensor) and value.requires_grad and _current().grad_enabled:
        raise DTypeError("full: the fill value is a Tensor that requires grad, and a new leaf "
                         "would cut it from the graph; use tg.broadcast_to(value, shape) to keep "
                         "the graph, or value.item() for its value alone")
    fill = _constant_of(value, "the step fills a tensor with a Tensor's value (a constant)")
    kind = np.asarray(fill).dtype if dtype is None else dtype
    out = _make("full", lambda: np.full(shape, fill, dtype), shape, kind)
    if out.size:
        refuse_overflow("full", np.broadcast_to(np.asarray(fill), out.shape), out, at=False)
    return _leaf(out, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros of ``t``'s shape and dtype (``t`` a Tensor or anything array-like)."""
    return _leaf(np.zeros_like(_layout(t), dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones of ``t``'s shape and dtype (``t`` a Tensor or anything array-like)."""
    return _leaf(np.ones_like(_layout(t), dtype), requires_grad)


def _layout(t):
    """What ``*_like`` reads of ``t``: its shape and dtype only (of a Tensor, without reading
    its values, which a recorded step would count as a value read)."""
    return np.empty(t.shape, t.dtype) if isinstance(t, Tensor) else np.asarray(t)


def arange(*args, dtype=None, requires_grad=False):
    """numpy's ``arange(stop)`` / ``arange(start, stop, step)``."""
    try:    # the length, for the size check (numpy names bad arguments itself)
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (tuple(args) + (1,))[:3]
        zero_step = bool(step == 0)
        length = None if zero_step else (builtins.max(0, math.ceil((stop - start) / step)),)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError):
        zero_step, length = False, None
    if zero_step:       # numpy's own error is a bare ZeroDivisionError (or a warning and a size)
        raise ConfigError(f"arange: step must not be 0, got arange{tuple(args)!r}")
    out = _make("arange", lambda: np.arange(*args, dtype=dtype), length,
                np.float64 if dtype is None else dtype)
    if out.dtype.kind == "f" and dtype is not None and out.size:    # the ends as numpy computes them
        refuse_overflow("arange", np.arange(*args)[[0, -1]], out[[0, -1]], at=False)
    if out.dtype.kind in "iu" and out.size and length is not None:
        last = start + (out.size - 1) * step       # numpy wraps values beyond an integer dtype
        info = np.iinfo(out.dtype)                 # (arange(250, 260, dtype=np.uint8) ends 0 .. 3)
        if not (info.min <= start <= info.max and info.min <= last <= info.max):
            raise OutOfRangeError(f"arange: the values {start} to {last} do not fit {out.dtype} "
                                  f"([{info.min}, {info.max}]); use a wider dtype")
    return _leaf(out, requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    """The n x n (or n x m) identity."""
    return _leaf(_make("eye", lambda: np.eye(n, m, dtype=_float(dtype)), (n, n if m is None else m),
                       _float(dtype)), requires_grad)


def randn(*shape, seed=None, dtype=None, requires_grad=False):
    """Standard normal entries of ``shape``; ``seed`` makes them reproducible."""
    kind = _random_dtype("randn", dtype)
    if seed is None:
        _fresh_random("randn")
    values = _make("randn", lambda: np.random.default_rng(seed).standard_normal(_shape(shape)),
                   _shape(shape), np.float64)
    return _leaf(values.astype(kind, copy=False), requires_grad)


def rand(*shape, seed=None, dtype=None, requires_grad=False):
    """Uniform entries in [0, 1) of ``shape``."""
    kind = _random_dtype("rand", dtype)
    if seed is None:
        _fresh_random("rand")
    values = _make("rand", lambda: np.random.default_rng(seed).random(_shape(shape)),
                   _shape(shape), np.float64)
    return _leaf(values.astype(kind, copy=False), requires_grad)


def linspace(start, stop, num=50, endpoint=True, dtype=None, requires_grad=False):
    """``num`` evenly spaced values from ``start`` to ``stop`` (numpy's ``linspace``; PyTorch's
    third argument is ``steps``, the same count)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ConfigError(f"linspace: num must be an integer >= 0, got {num!r}")
    out = _make("linspace", lambda: np.linspace(start, stop, int(num), endpoint=endpoint,
                                                dtype=_float(dtype)), int(num), _float(dtype))
    if dtype is not None and out.size:
        refuse_overflow("linspace", np.linspace(start, stop, int(num), endpoint=endpoint), out)
    return _leaf(out, requires_grad)
