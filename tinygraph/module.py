"""Parameters, modules and checkpoints.

A :class:`Module` finds its parameters by looking at its own attributes in
definition order (parameters, sub-modules, and lists, tuples or dicts of them).
Checkpoints are ``.npz`` files: ``save`` writes a temporary file in the same
folder and renames it, so a crash never leaves a half-written checkpoint, and
``load`` checks every name, shape and dtype before it changes anything.
"""

import os
import tempfile
import zipfile

import numpy as np

from .errors import CheckpointError, CheckpointNotFoundError, CheckpointWriteError
from .tensor import Tensor, _as_array, _repr, bump_version


class Parameter(Tensor):
    """A leaf tensor that requires grad and that modules collect as trainable state."""

    __slots__ = ()

    def __init__(self, data, name=None, dtype=None):
        arr = _as_array(data, dtype)
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        super().__init__(arr, requires_grad=True, name=name)

    def __repr__(self):
        return _repr(self, "Parameter", False)


class Module:
    """Base class of models: ``parameters()``, ``state_dict()``, ``save``/``load``."""

    def __repr__(self):
        """The class, its sizes (the public int, float, str and bool attributes) and one line per
        parameter with its shape, like PyTorch's module repr."""
        sizes = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                          if not k.startswith("_") and isinstance(v, (int, float, str, bool)))
        lines = [f"  {sizes}"] if sizes else []
        named = list(self.named_parameters())
        for name, p in named:
            dtype = "" if p.dtype == np.float64 else f", dtype={p.dtype}"
            frozen = "" if p.requires_grad else ", requires_grad=False"
            lines.append(f"  ({name}): Parameter(shape={p.shape}{dtype}{frozen})")
        total = sum(p.size for _, p in named)
        lines.append(f"  {total:,} parameter values in {len(named)} parameters")
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs in definition order, each parameter once."""
        seen = set()
        for name, p in self._walk(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk(self, prefix):
        for attr, value in vars(self).items():
            yield from _members(prefix + attr, value)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """name -> a copy of the parameter's array."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy ``state`` into the parameters, after checking every name, shape and dtype.

        Raises CheckpointError (changing nothing) on missing or extra names, or on a
        wrong shape or dtype.
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        extra = sorted(set(state) - set(params))
        if missing or extra:
            raise CheckpointError(
                f"load_state_dict: names do not match the model: missing {missing}, unexpected {extra}")
        for name, p in params.items():
            try:
                value = np.asarray(state[name])
            except (ValueError, TypeError) as e:
                raise CheckpointError(f"load_state_dict: '{name}' is not an array ({e})") from None
            if value.shape != p.data.shape:
                raise CheckpointError(f"load_state_dict: '{name}' has shape {value.shape}, "
                                      f"the model's is {p.data.shape}")
            if value.dtype != p.data.dtype:
                raise CheckpointError(f"load_state_dict: '{name}' has dtype {value.dtype}, "
                                      f"the model's is {p.data.dtype}")
        for name, p in params.items():
            p.data = np.array(state[name], copy=True)
            bump_version(p)

    def save(self, path):
        """Write the state dict to ``path`` (npz), atomically."""
        save_arrays(path, self.state_dict())

    def load(self, path):
        """Load a checkpoint written by ``save``; a failed load changes nothing."""
        self.load_state_dict(load_arrays(path))


def _members(name, value):
    if isinstance(value, Parameter):
        yield name, value
    elif isinstance(value, Module):
        yield from value._walk(name + ".")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _members(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _members(f"{name}.{key}", item)


def save_arrays(path, arrays):
    """Write a dict of arrays to ``path`` as npz through a temporary file and a rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    except OSError as e:
        raise CheckpointWriteError(f"save: cannot write '{path}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise CheckpointWriteError(f"save: cannot write '{path}': {e.strerror or e}") from None
        raise


def load_arrays(path):
    """Read every array of an npz file into a dict, or raise CheckpointError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"load: no checkpoint file at '{path}'")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"load: '{path}' is not a readable checkpoint ({e})") from None
