"""tinygraph: a small, exact reverse-mode autodiff engine on numpy.

Every op makes one DAG node (``Tensor``) that records its op, parents and
scope; ``backward`` walks the DAG in iterative topological order.
"""

from . import interop, optim  # noqa: F401 - interop puts numpy's hooks onto Tensor
from .check import gradcheck
from .creation import arange, eye, full, linspace, ones, ones_like, rand, randn, zeros, zeros_like
from .errors import (AllocationError, AnomalyError, BackwardError, BadIndexError, CheckpointError,
                     CheckpointNotFoundError, CheckpointWriteError, ConfigError, DomainError,
                     DTypeError, GradcheckError, GraphFreedError, InPlaceError, NonFiniteError,
                     OutOfRangeError, ShapeError, StaleGraphError, TinygraphError,
                     UnsupportedOptionError, WriteError)
from .checkpoint import (Checkpoint, load_arrays, read_checkpoint, read_headers, read_meta,
                         save_arrays)
from .files import atomic_write
from .module import Dropout, Module, Parameter
from .ops import (abs, add, addmm, amax, amin, argmax, argmin, binary_cross_entropy_with_logits,
                  broadcast_to, cat, ceil, chunk, clamp, clip, clone, concat, cos, cross_entropy, cumsum, div,
                  dropout, exp, expand_dims, expm1, flatten, flip, floor, gelu, getitem, hstack, leaky_relu,
                  log, log1p, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum,
                  moveaxis, mse_loss, mul, neg, nll_loss, norm, one_hot, pad, permute, power, prod,
                  relu, reshape, roll, round, sigmoid, sign, sin, softmax, softplus, sort, split, sqrt, square,
                  squeeze, stack, std, sub, sum, sum_to, swapaxes, take, tanh, tile, topk, transpose,
                  trunc, unbind, unsqueeze, var, vstack, where)
from .optim import clip_grad_norm
from .sweep import sweep_order
from .tensor import (Scatter, Tensor, apply, bump_version, current_scope, defvjp, detect_anomaly,
                     enable_grad, grad, is_anomaly_enabled, is_grad_enabled, make_node, memory_limit,
                     no_grad, scope, tensor)

__version__ = "0.1.0"

__all__ = [
    "AllocationError", "AnomalyError", "BackwardError", "BadIndexError", "Checkpoint", "CheckpointError",
    "CheckpointNotFoundError", "CheckpointWriteError", "ConfigError", "DomainError", "DTypeError", "Dropout",
    "GradcheckError", "GraphFreedError", "InPlaceError", "Module", "NonFiniteError", "OutOfRangeError", "Parameter", "Scatter",
    "ShapeError", "StaleGraphError", "Tensor", "TinygraphError", "UnsupportedOptionError", "WriteError", "abs", "add",
    "addmm", "amax", "amin", "apply", "arange", "argmax", "argmin", "atomic_write",
    "binary_cross_entropy_with_logits", "broadcast_to", "bump_version", "cat", "ceil", "chunk", "clamp",
    "clip", "clip_grad_norm", "clone", "concat", "cos", "cross_entropy", "cumsum", "current_scope",
    "defvjp", "detect_anomaly", "div", "dropout", "enable_grad", "exp", "expand_dims", "expm1",
    "eye", "flatten", "flip", "floor", "full", "gelu", "getitem", "grad", "gradcheck", "hstack",
    "is_anomaly_enabled", "is_grad_enabled", "leaky_relu", "linspace", "load_arrays", "log",
    "log1p", "log_softmax", "logsumexp", "make_node", "matmul", "max", "maximum", "mean", "memory_limit", "min",
    "minimum", "moveaxis", "mse_loss", "mul", "neg", "nll_loss", "no_grad", "norm", "one_hot",
    "ones", "ones_like", "optim", "pad", "permute", "power", "prod", "rand", "randn",
    "read_checkpoint", "read_headers", "read_meta", "relu", "reshape", "roll", "round", "save_arrays", "scope", "sigmoid", "sign",
    "sin", "softmax", "softplus", "sort", "split", "sqrt", "square", "squeeze", "stack", "std",
    "sub", "sum", "sum_to", "swapaxes", "sweep_order", "take", "tanh", "tensor", "tile", "topk",
    "transpose", "trunc", "unbind", "unsqueeze", "var", "vstack", "where", "zeros", "zeros_like",
]
