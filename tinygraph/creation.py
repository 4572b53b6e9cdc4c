"""Constructors of leaf tensors, named and behaving as numpy's (and PyTorch's ``randn``/``rand``).

Float data defaults to float64; ``requires_grad=True`` makes a leaf that backward fills.
"""

import numpy as np

from .errors import ConfigError
from .tensor import Tensor


def _leaf(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _float(dtype):
    return np.float64 if dtype is None else dtype


def _shape(shape):
    """``randn(2, 3)`` and ``randn((2, 3))`` alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(shape, dtype=None, requires_grad=False):
    """A tensor of zeros of ``shape`` (an int or a tuple)."""
    return _leaf(np.zeros(shape, _float(dtype)), requires_grad)


def ones(shape, dtype=None, requires_grad=False):
    return _leaf(np.ones(shape, _float(dtype)), requires_grad)


def full(shape, value, dtype=None, requires_grad=False):
    """A tensor of ``shape`` filled with ``value`` (dtype as numpy's ``full``: from the value)."""
    return _leaf(np.full(shape, value, dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros of ``t``'s shape and dtype (``t`` a Tensor or anything array-like)."""
    return _leaf(np.zeros_like(np.asarray(t), dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _leaf(np.ones_like(np.asarray(t), dtype), requires_grad)


def arange(*args, dtype=None, requires_grad=False):
    """numpy's ``arange(stop)`` / ``arange(start, stop, step)``."""
    return _leaf(np.arange(*args, dtype=dtype), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    """The n x n (or n x m) identity."""
    return _leaf(np.eye(n, m, dtype=_float(dtype)), requires_grad)


def randn(*shape, seed=None, dtype=None, requires_grad=False):
    """Standard normal entries of ``shape``; ``seed`` makes them reproducible."""
    values = np.random.default_rng(seed).standard_normal(_shape(shape))
    return _leaf(values.astype(_float(dtype), copy=False), requires_grad)


def rand(*shape, seed=None, dtype=None, requires_grad=False):
    """Uniform entries in [0, 1) of ``shape``."""
    values = np.random.default_rng(seed).random(_shape(shape))
    return _leaf(values.astype(_float(dtype), copy=False), requires_grad)


def linspace(start, stop, num=50, endpoint=True, dtype=None, requires_grad=False):
    """``num`` evenly spaced values from ``start`` to ``stop`` (numpy's ``linspace``; PyTorch's
    third argument is ``steps``, the same count)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ConfigError(f"linspace: num must be an integer >= 0, got {num!r}")
    return _leaf(np.linspace(start, stop, int(num), endpoint=endpoint, dtype=_float(dtype)), requires_grad)
