"""Parameters, modules and checkpoints.

A :class:`Module` finds its parameters by looking at its own attributes in
definition order (parameters, sub-modules, and lists, tuples or dicts of them).
A Parameter whose ``requires_grad`` is switched off is *fixed* (the reservoir of
an echo state network): it is saved and loaded with the model's state but is not
one of its ``parameters()``, so no optimizer trains it.
Checkpoints are written in the format of :mod:`tinygraph.checkpoint` (atomically, any
parameter names, numeric arrays only); ``load`` checks every name, shape and dtype,
in the file's headers before reading its data, and changes nothing unless all fit.
"""

import contextlib
from collections.abc import Mapping

import numpy as np

from .checkpoint import load_arrays, save_arrays
from .errors import CheckpointError
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
        """(dotted name, Parameter) pairs in definition order, each parameter once (fixed
        Parameters, ``requires_grad=False``, left out)."""
        return ((name, p) for name, p in self._named_state(prefix) if p.requires_grad)

    def _named_state(self, prefix=""):
        """Every Parameter, trained or fixed, each once: what the state dict holds."""
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

    def _unique_parameters(self, who):
        """name -> Parameter (fixed ones too); two parameters under one name raise CheckpointError."""
        params = {}
        for name, p in self._named_state():
            if name in params:
                raise CheckpointError(f"{who}: two parameters are named {name!r}; a checkpoint "
                                      "needs distinct names (give each Parameter its own name=)")
            params[name] = p
        return params

    def state_dict(self):
        """name -> a copy of the parameter's array (fixed Parameters included; names must be
        distinct)."""
        return {name: p.data.copy() for name, p in self._unique_parameters("state_dict").items()}

    def load_state_dict(self, state):
        """Copy ``state`` into the parameters, after checking every name, shape and dtype.

        Raises CheckpointError (changing nothing) on missing or extra names, or on a
        wrong shape or dtype.
        """
        if not isinstance(state, Mapping):
            raise CheckpointError(f"load_state_dict: state must be a dict of name -> array, "
                                  f"got {type(state).__name__}")
        params = self._unique_parameters("load_state_dict")
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

    @contextlib.contextmanager
    def state_swapped(self, state):
        """Within the block the parameters hold ``state`` (checked as ``load_state_dict``);
        afterwards each holds its own array again, the very same object with the same
        version, as if the block never ran: graphs built before still back-propagate.

        For looking at other parameters (``viz.explore(before=)``); graphs built inside the
        block belong to it and are not to be used after it.
        """
        params = self._unique_parameters("state_swapped")
        kept = {name: (p.data, p._version) for name, p in params.items()}
        self.load_state_dict(state)
        try:
            yield self
        finally:
            for name, p in params.items():
                p.data, p._version = kept[name]

    def save(self, path):
        """Write the state dict to ``path`` (a checkpoint, see ``tinygraph.checkpoint``), atomically."""
        save_arrays(path, self.state_dict())

    def expected_state(self):
        """name -> (shape, dtype) of every parameter: what ``load`` accepts from a file."""
        return {name: (p.shape, p.dtype) for name, p in self._unique_parameters("load").items()}

    def load(self, path):
        """Load a checkpoint written by ``save``; a failed load changes nothing.

        Each entry's header is checked against the parameter before its data is read.
        """
        self.load_state_dict(load_arrays(path, expect=self.expected_state()))


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
