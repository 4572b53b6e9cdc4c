"""tinygraph: a small, exact reverse-mode autodiff engine on numpy.

Every op makes one DAG node (``Tensor``) that records its op, parents and
scope; ``backward`` walks the DAG in iterative topological order.
"""

from . import optim
from .check import gradcheck
from .errors import (AnomalyError, BackwardError, BadIndexError, CheckpointError,
                     CheckpointNotFoundError, CheckpointWriteError, ConfigError, DTypeError, GradcheckError,
                     GraphFreedError, ShapeError, TinygraphError, WriteError)
from .checkpoint import Checkpoint, load_arrays, read_checkpoint, read_meta, save_arrays
from .files import atomic_write
from .module import Module, Parameter
from .ops import (abs, add, addmm, concat, cross_entropy, div, exp, getitem, log, log_softmax, matmul,
                  max, mean, mul, neg, power, relu, reshape, sigmoid, softmax, sqrt, stack,
                  sub, sum, take, tanh, transpose)
from .optim import clip_grad_norm
from .sweep import sweep_order
from .tensor import (Scatter, Tensor, apply, current_scope, detect_anomaly, enable_grad, grad,
                     is_anomaly_enabled, is_grad_enabled, make_node, no_grad, scope, tensor)

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "BackwardError", "BadIndexError", "Checkpoint", "CheckpointError", "CheckpointNotFoundError",
    "CheckpointWriteError", "ConfigError", "DTypeError", "GradcheckError", "GraphFreedError",
    "Module", "Parameter", "Scatter", "ShapeError", "Tensor", "TinygraphError", "WriteError", "abs",
    "add", "addmm", "apply", "atomic_write", "clip_grad_norm", "concat", "cross_entropy", "current_scope", "detect_anomaly", "div",
    "enable_grad", "exp", "getitem", "grad", "gradcheck", "is_anomaly_enabled", "is_grad_enabled",
    "load_arrays", "log", "log_softmax", "make_node", "matmul", "max", "mean", "mul", "neg",
    "no_grad", "optim", "power", "read_checkpoint", "read_meta", "relu", "reshape", "save_arrays",
    "scope", "sigmoid", "softmax", "sqrt", "stack", "sub", "sum", "sweep_order", "take", "tanh",
    "tensor", "transpose",
]
