"""Optimizers (SGD with momentum, Adagrad, Adam) and gradient clipping by global norm.

Each optimizer updates ``p.data`` of its parameters in place from ``p.grad``
(parameters whose grad is None are skipped) and can save and restore its
state, so training resumes exactly where it stopped.
"""

from collections.abc import Mapping

import numpy as np

from .errors import CheckpointError, ConfigError, DTypeError, ShapeError
from .tensor import Tensor, bump_version


def _check_params(who, params):
    if isinstance(params, Tensor):    # list(tensor) would silently give its rows, never trained
        raise ConfigError(f"{who}: params must be a list of tensors (e.g. model.parameters()), "
                          "got a single Tensor; wrap it in a list")
    try:
        params = list(params)
    except TypeError:
        raise ConfigError(f"{who}: params must be a list of tensors (e.g. model.parameters()), "
                          f"got {type(params).__name__}") from None
    if not params:
        raise ConfigError(f"{who}: got an empty parameter list")
    for p in params:
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise ConfigError(f"{who}: every parameter must be a Tensor that requires grad, "
                              f"got {type(p).__name__}")
    if len({id(p) for p in params}) != len(params):
        raise ConfigError(f"{who}: a parameter appears more than once in the list")
    return params


def _gradients(who, params):
    """(index, parameter, gradient) of every parameter with a gradient, after checking that
    each gradient is a float array of exactly its parameter's shape: so an update either
    applies to every parameter or raises before changing any."""
    out = []
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            continue
        if isinstance(g, Tensor):      # left by backward(create_graph=True): used by value
            g = g.data
        label = f"parameter {i}" + (f" '{p.name}'" if p.name else "")
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            kind = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise DTypeError(f"{who}: the gradient of {label} must be a float array, got {kind}")
        if g.shape != p.shape:
            raise ShapeError(f"{who}: the gradient of {label} has shape {g.shape}, the parameter "
                             f"has {p.shape}")
        out.append((i, p, g))
    return out


def _name(p):
    return f" '{p.name}'" if p.name else ""


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_positive(who, what, value):
    if not _is_number(value) or not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{who}: {what} must be positive, got {value}")


def _check_fraction(who, what, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"{who}: {what} must be in [0, 1), got {value}")


class Optimizer:
    """Base class: holds the parameters and a per-parameter state of arrays."""

    state_keys = ()   # the names of the per-parameter state arrays
    settings = ("lr",)   # what the repr shows

    def __init__(self, params, lr):
        who = type(self).__name__
        self.params = _check_params(who, params)
        _check_positive(who, "lr", lr)
        self.lr = lr
        self.steps = 0
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def __repr__(self):
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.settings)
        values = sum(p.size for p in self.params)
        return (f"{type(self).__name__}({settings}; {len(self.params)} parameters, "
                f"{values:,} values; {self.steps} steps)")

    def step(self):
        """One update of every parameter that has a gradient; all gradients are checked first
        (a Tensor gradient left by ``backward(create_graph=True)`` is used by value).

        All or nothing: if an update fails part-way (or is interrupted), every parameter, the
        optimizer's state and its step count are put back as they were before the error."""
        who = f"{type(self).__name__}.step"
        grads = _gradients(who, self.params)
        for i, p, _ in grads:
            if not p.data.flags.writeable:
                raise ConfigError(f"{who}: parameter {i}{_name(p)} holds a read-only array, "
                                  "which cannot be updated in place")
        saved = [(p, p.data, p.data.copy(), {k: v.copy() for k, v in self.state[i].items()})
                 for i, p, _ in grads]
        steps = self.steps
        try:
            self.steps += 1
            for i, p, g in grads:
                self._update(p, g, self.state[i])
        except BaseException:
            self.steps = steps
            for (i, _, _), (p, data, copy, state) in zip(grads, saved):
                np.copyto(data, copy)
                p.data = data
                self.state[i] = state
            raise
        for _, p, _ in grads:
            bump_version(p)

    def _update(self, p, g, state):
        raise NotImplementedError

    def state_dict(self):
        """The optimizer's state as a flat dict of arrays (for ``save_arrays``)."""
        out = {"steps": np.array(self.steps)}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"{i}.{key}"] = value.copy()
        return out

    def expected_state(self):
        """name -> (shape, dtype) of every entry ``state_dict`` may hold (for ``load_arrays``)."""
        out = {"steps": ((), np.dtype(np.int64))}
        for i, p in enumerate(self.params):
            out.update({f"{i}.{key}": (p.shape, p.dtype) for key in self.state_keys})
        return out

    def load_state_dict(self, d):
        """Restore a state written by ``state_dict``; checks everything before changing anything.

        Each parameter's state must be complete (every one of ``state_keys``) or absent (a
        parameter that never had a gradient); anything else could not resume exactly.
        """
        who = type(self).__name__
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{who}.load_state_dict: state must be a dict (from "
                                  f"state_dict()), got {type(d).__name__}")
        if "steps" not in d:
            raise CheckpointError(f"{who}.load_state_dict: missing 'steps'")
        new = [{} for _ in self.params]
        for key, value in d.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{who}.load_state_dict: unexpected entry {key!r}")
            if key == "steps":
                continue
            index, _, name = key.partition(".")
            if (not index.isdigit() or not index.isascii() or int(index) >= len(self.params)
                    or name not in self.state_keys):
                raise CheckpointError(f"{who}.load_state_dict: unexpected entry '{key}'")
            p = self.params[int(index)]
            try:
                value = np.asarray(value)
            except (ValueError, TypeError) as e:
                raise CheckpointError(f"{who}.load_state_dict: '{key}' is not an array ({e})") from None
            if value.shape != p.shape:
                raise CheckpointError(f"{who}.load_state_dict: '{key}' has shape {value.shape}, "
                                      f"parameter {index} has {p.shape}")
            if value.dtype != p.dtype:
                raise CheckpointError(f"{who}.load_state_dict: '{key}' has dtype {value.dtype}, "
                                      f"parameter {index} has {p.dtype}")
            new[int(index)][name] = value.copy()
        for i, state in enumerate(new):
            if state and len(state) != len(self.state_keys):
                lacking = [f"{i}.{k}" for k in self.state_keys if k not in state]
                raise CheckpointError(f"{who}.load_state_dict: the state of parameter {i} is "
                                      f"incomplete: missing {lacking}")
        try:
            steps = np.asarray(d["steps"])
        except (ValueError, TypeError):
            steps = np.asarray(None)
        if steps.shape != () or steps.dtype.kind not in "iu" or steps < 0:
            raise CheckpointError(f"{who}.load_state_dict: 'steps' must be a count (an integer "
                                  f">= 0), got {d['steps']!r}")
        self.steps = int(steps)
        self.state = new


class SGD(Optimizer):
    """``v = momentum * v + g; p -= lr * v`` (plain SGD when momentum is 0)."""

    state_keys = ("velocity",)
    settings = ("lr", "momentum")

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        _check_fraction("SGD", "momentum", momentum)
        self.momentum = momentum

    def _update(self, p, g, state):
        if self.momentum:
            v = state.get("velocity")
            v = g.copy() if v is None else self.momentum * v + g
            state["velocity"] = v
            g = v
        p.data -= self.lr * g


class Adagrad(Optimizer):
    """``s += g**2; p -= lr * g / (sqrt(s) + eps)``."""

    state_keys = ("sum_sq",)
    settings = ("lr", "eps")

    def __init__(self, params, lr, eps=1e-10):
        super().__init__(params, lr)
        _check_positive("Adagrad", "eps", eps)
        self.eps = eps

    def _update(self, p, g, state):
        s = state.setdefault("sum_sq", np.zeros_like(p.data))
        s += g * g
        p.data -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments."""

    state_keys = ("m", "v")
    settings = ("lr", "betas", "eps")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"Adam: betas must be a pair (beta1, beta2), got {betas}")
        for beta in betas:
            _check_fraction("Adam", "betas", beta)
        _check_positive("Adam", "eps", eps)
        self.betas = betas
        self.eps = eps

    def _update(self, p, g, state):
        b1, b2 = self.betas
        m = state.setdefault("m", np.zeros_like(p.data))
        v = state.setdefault("v", np.zeros_like(p.data))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1 ** self.steps)
        v_hat = v / (1 - b2 ** self.steps)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm(params, max_norm):
    """Scale all gradients so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (float).  A non-finite norm zeroes the
    gradients rather than spreading NaN into the parameters.
    """
    params = _check_params("clip_grad_norm", params)
    _check_positive("clip_grad_norm", "max_norm", max_norm)
    found = _gradients("clip_grad_norm", params)
    for i, p, g in found:     # checked before any gradient is scaled
        if not g.flags.writeable:
            raise ConfigError(f"clip_grad_norm: the gradient of parameter {i}{_name(p)} is a "
                              "read-only array, which cannot be scaled in place")
    grads = [g for _, _, g in found]
    total = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads)))
    if not np.isfinite(total):
        for g in grads:
            g[...] = 0
    elif total > max_norm:
        scale = max_norm / (total + 1e-12)
        for g in grads:
            g *= scale
    else:
        return total
    for p in params:     # a Tensor gradient (create_graph) was changed in place: graphs built
        if isinstance(p.grad, Tensor):   # from it before now refuse backward
            bump_version(p.grad)
    return total
