"""Parameters, modules and checkpoints.

A :class:`Module` finds its parameters by looking at its own attributes in
definition order (parameters, sub-modules, and lists, tuples or dicts of them).
A Parameter whose ``requires_grad`` is switched off is *fixed* (the reservoir of
an echo state network): it is saved and loaded with the model's state but is not
one of its ``parameters()``, so no optimizer trains it.
Checkpoints are written in the format of :mod:`tinygraph.checkpoint` (atomically, any
parameter names, numeric arrays only); ``load`` checks every name, shape and dtype,
in the file's headers before reading its data, and changes nothing unless all fit.
A checkpoint also records the model's :meth:`Module.config` (the settings that change what it
computes without being parameters: an attention, a leak rate, a nonlinearity), and ``load``
refuses a file saved from a model of other settings.
"""

import contextlib
import json
import threading
import warnings
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from .checkpoint import read_checkpoint, read_meta, save_arrays
from .errors import CheckpointError, ConfigError, DTypeError, OutOfRangeError
from .ops import dropout
from .tensor import Tensor, _as_array, _count_of, _label, _repr, bump_version, clear_grads, current_scope


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = """What :meth:`Module.load_state_dict` did not load, as PyTorch's: the model's
names missing from the state, and the state's names the model lacks (sorted lists)."""


class Parameter(Tensor):
    """A leaf tensor that requires grad and that modules collect as trainable state."""

    __slots__ = ()

    def __init__(self, data, name=None, dtype=None):
        """Integer or bool ``data`` becomes float64; ``dtype``, when given, must be a float
        dtype (an integer one rounded the data to integers first: N(0, 0.6) weights became
        zeros and ones, then float64, without a word).  A bool ``name`` is refused: PyTorch's
        ``nn.Parameter(data, requires_grad)`` takes requires_grad second."""
        if isinstance(name, (bool, np.bool_)):
            raise ConfigError(f"Parameter: name={name!r} is a bool: PyTorch's nn.Parameter(data, "
                              f"requires_grad) takes requires_grad second, tinygraph's Parameter(data, "
                              f"name) the name; a Parameter requires grad (to freeze one, set "
                              f"p.requires_grad = False after making it)")
        arr = _as_array(data, dtype)     # (names a dtype numpy does not know)
        if dtype is not None and arr.dtype.kind != "f":
            raise DTypeError(f"Parameter{_label(name)}: dtype must be a float dtype (a parameter "
                             f"requires grad), got {arr.dtype}")
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        super().__init__(arr, requires_grad=True, name=name)

    def __repr__(self):
        return _repr(self, "Parameter", False)


class Module:
    """Base class of models: ``parameters()``, ``state_dict()``, ``save``/``load``, the
    training mode (``train()``/``eval()``/``training``), ``to(dtype)`` and the tree of
    sub-modules (``named_modules()``, ``children()``), as PyTorch's ``nn.Module``.

    A subclass need not call ``Module.__init__``.  In its forward, ``tg.dropout(x, p,
    train=self.training)`` (or a :class:`Dropout` sub-module) follows the mode.  A subclass
    that defines ``forward`` and no ``__call__`` is callable as PyTorch's: ``model(x)`` is
    ``model.forward(x)`` (one without ``forward`` stays not callable).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if callable(getattr(cls, "forward", None)) and "__call__" not in dir(cls):
            cls.__call__ = _call_forward

    @property
    def training(self):
        """True (the default) in training mode, False after ``eval()`` (and, in the thread
        running it, inside an :func:`evaluation` block of this module)."""
        blocks = getattr(_evaluated, "blocks", None)
        if blocks:
            key = id(self)
            for block in blocks:
                if key in block:
                    return False
        return self.__dict__.get("_training", True)

    @training.setter
    def training(self, mode):
        if not isinstance(mode, (bool, np.bool_)):
            raise ConfigError(f"{type(self).__name__}.training must be True or False, got {mode!r}")
        self.__dict__["_training"] = bool(mode)
        blocks = getattr(_evaluated, "blocks", None)
        if blocks:      # set by this thread inside an evaluation block: what it reads from now
            for block in blocks:
                block.discard(id(self))

    def train(self, mode=True):
        """Set training mode on this module and every sub-module; returns the module."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ConfigError(f"{type(self).__name__}.train: mode must be True or False, got {mode!r}")
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """``train(False)``: evaluation mode (dropout off) on the whole tree; returns the module."""
        return self.train(False)

    def named_modules(self, prefix=""):
        """(dotted name, Module) of this module (name ``prefix``, "" by default) and of every
        sub-module below it (in attributes, lists, tuples and dicts), each once, in definition
        order."""
        seen = {id(self)}
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            below = []
            for sub, child in module._named_children(name):
                if id(child) not in seen:
                    seen.add(id(child))
                    below.append((sub, child))
            stack.extend(reversed(below))

    def _named_children(self, prefix=""):
        for attr, value in vars(self).items():
            yield from _submodules(f"{prefix}.{attr}" if prefix else attr, value)

    def named_children(self):
        """(attribute name, Module) of the direct sub-modules, each once."""
        seen = set()
        for name, child in self._named_children():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        """The direct sub-modules, each once (an iterator, as PyTorch's)."""
        return (child for _, child in self.named_children())

    def to(self, dtype):
        """Convert every Parameter (trained and fixed) and its gradient to the float ``dtype``,
        in place; returns the module.

        Each converted Parameter counts as changed in place (a graph built before refuses
        to back-propagate through it).  An optimizer made before keeps its state in the old
        dtype: make a new one.  A value (or gradient) beyond the new dtype's range (1e6 into
        float16) is refused, naming the parameter, and nothing is converted: it would become
        infinite (``load_state_dict(cast=True)`` refuses it too).
        """
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise DTypeError(f"{type(self).__name__}.to: {dtype!r} is not a dtype") from None
        if dtype.kind != "f":
            raise DTypeError(f"{type(self).__name__}.to: parameters must stay floating point, got "
                             f"{dtype}")
        named = list(self._named_state())
        params = [p for _, p in named]
        with np.errstate(over="ignore"):
            converted = [(p._data.astype(dtype), _converted_grad(p.grad, dtype)) for p in params]
        for (name, p), (data, grad) in zip(named, converted):
            for what, old, new in ((f"'{name}'", p._data, data),
                                   (f"the gradient of '{name}'", p.grad, grad)):
                if new is None:
                    continue
                grown = ~np.isfinite(new) & np.isfinite(old._data if isinstance(old, Tensor) else old)
                if grown.any():
                    index = tuple(int(i) for i in np.argwhere(grown)[0])
                    raise OutOfRangeError(
                        f"{type(self).__name__}.to: {what} holds "
                        f"{float(np.asarray(old)[index])!r} at {index}, beyond the range of {dtype} "
                        f"(largest {np.finfo(dtype).max:.4g}): it would become infinite; nothing "
                        "converted")
        for p, (data, grad) in zip(params, converted):
            if p._data.dtype != dtype:
                p._data, p._grad = data, grad
                bump_version(p)
        return self

    def float(self):
        """``to(np.float32)``."""
        return self.to(np.float32)

    def double(self):
        """``to(np.float64)``."""
        return self.to(np.float64)

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
        lines.append(f"  {_count_of(total, 'parameter value')} in "
                     f"{_count_of(len(named), 'parameter')}")
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

    def _walk(self, prefix, visited=None):
        """(name, Parameter) in this module and below; a module met again (a back-reference
        to a parent, a module held twice) is not walked again."""
        visited = {id(self)} if visited is None else visited
        for attr, value in vars(self).items():
            yield from _members(prefix + attr, value, visited)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` of every Parameter (fixed ones too) and return the module, as
        PyTorch's: ``requires_grad_(False)`` freezes it (no longer in ``parameters()``)."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise ConfigError(f"{type(self).__name__}.requires_grad_: expected True or False, "
                              f"got {requires_grad!r}")
        for _, p in self._named_state():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Set the gradient of every Parameter to None (``set_to_none=False``: to zeros), fixed
        ones (``requires_grad=False``) too, as PyTorch's: a Parameter frozen after a backward
        keeps no stale gradient for an optimizer made before to apply."""
        clear_grads(f"{type(self).__name__}.zero_grad", [p for _, p in self._named_state()],
                    set_to_none)

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
        return {name: p._data.copy() for name, p in self._unique_parameters("state_dict").items()}

    def load_state_dict(self, state, *positional, cast=False, strict=True):
        """Copy ``state`` into the parameters, after checking every name, shape and dtype.

        ``cast`` and ``strict`` are keywords only: a second positional argument (PyTorch's
        ``load_state_dict(sd, False)`` means ``strict=False``) raises ConfigError rather than
        being read as the other one.

        The values are copied into each parameter's array, as PyTorch's ``copy_``, so a view
        made of a parameter before (``W.T``, ``W[0]``, ``W.detach()``) holds the new values, as
        after an optimizer step.  Raises CheckpointError (changing nothing) on missing or extra
        names, or on a wrong shape or dtype.  With ``cast=True`` a value of another real dtype (e.g. a
        float64 state into a float32 model) is converted to its parameter's dtype instead,
        rounded as numpy's ``astype`` (and PyTorch's ``load_state_dict``) does; a finite value
        beyond that dtype's range (1e39 into float32) is refused rather than made infinite.

        With ``strict=False`` (PyTorch's) names that do not match are no error: a parameter
        missing from ``state`` keeps its values and a name of ``state`` that the model lacks is
        left out; the names that do match are checked and loaded as above.  Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``, two sorted lists of names (both
        empty when ``strict`` is True, as it refuses otherwise).
        """
        if positional:
            raise ConfigError(
                f"load_state_dict: takes the state and then keywords only, got "
                f"{len(positional)} more positional argument(s) {positional!r}; pass "
                "strict=True/False (PyTorch's second argument: whether names must all match) "
                "or cast=True/False (convert other dtypes) by keyword")
        values, missing, unexpected = self._checked_state(state, cast, "load_state_dict",
                                                          strict)
        params = {name: p for name, p in self._unique_parameters("load_state_dict").items()
                  if name in values}
        kept = []          # (p, its array, a copy of its old values or None): to undo on any error
        try:
            for name, p in params.items():
                data = p._data
                if data.flags.writeable:     # in place, as torch's copy_: views made of the
                    kept.append((p, data, data.copy()))      # parameter see the new values too
                    np.copyto(data, values[name])
                else:                        # a read-only array cannot take them: a new one
                    kept.append((p, data, None))
                    p._data = values[name]
        except BaseException:
            for p, data, old in kept:
                if old is not None:
                    np.copyto(data, old)
                p._data = data
            raise
        for p in params.values():
            bump_version(p)
        return IncompatibleKeys(missing, unexpected)

    def _checked_state(self, state, cast, who, strict=True):
        """(name -> a new array of each parameter's dtype holding ``state``'s value, the names
        missing from ``state``, the names the model lacks), after every check of
        :meth:`load_state_dict` (errors begin with ``who``); changes nothing.  Without
        ``strict`` names that do not match are left out rather than refused."""
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{who}: state must be a dict of name -> array, "
                                  f"got {type(state).__name__}")
        if not isinstance(strict, bool):
            raise ConfigError(f"{who}: strict must be True or False, got {strict!r}")
        params = self._unique_parameters(who)
        missing = sorted(set(params) - set(state))
        extra = sorted(set(state) - set(params))
        if strict and (missing or extra):
            raise CheckpointError(
                f"{who}: names do not match the model: missing {missing}, unexpected {extra} "
                "(strict=False loads the names that match)")
        params = {name: p for name, p in params.items() if name in state}
        for name, p in params.items():
            try:
                value = np.asarray(state[name])
            except (ValueError, TypeError) as e:
                raise CheckpointError(f"{who}: '{name}' is not an array ({e})") from None
            if value.shape != p._data.shape:
                why = self._state_mismatch(name, value.shape)    # e.g. another criterion's
                raise CheckpointError(f"{who}: {why + ': ' if why else ''}'{name}' has shape "
                                      f"{value.shape}, the model's is {p.data.shape}")
            if value.dtype != p._data.dtype and not (cast and value.dtype.kind in "biuf"):
                hint = "" if cast or value.dtype.kind not in "biuf" else " (cast=True converts it)"
                raise CheckpointError(f"{who}: '{name}' has dtype {value.dtype}, "
                                      f"the model's is {p.data.dtype}{hint}")
        values = {}
        for name, p in params.items():      # every value converted before any change
            with np.errstate(over="ignore"):
                values[name] = np.array(state[name], dtype=p._data.dtype, copy=True)
            value = np.asarray(state[name])
            if value.dtype != p._data.dtype:
                grown = np.isfinite(value) & ~np.isfinite(values[name])
                if grown.any():
                    index = tuple(int(i) for i in np.argwhere(grown)[0])
                    raise CheckpointError(
                        f"{who}: '{name}' holds {float(value[index])!r} at {index}, beyond the "
                        f"range of the model's {p._data.dtype} (largest "
                        f"{np.finfo(p._data.dtype).max:.4g}): cast=True would make it infinite")
        return values, missing, extra

    def _state_mismatch(self, name, shape):
        """Why a state's ``name`` of ``shape`` (not the parameter's) may be that of a model of
        other settings, said before the shape (e.g. an encoder-decoder of another criterion,
        whose Ud is another width); None when there is nothing to say.  A subclass overrides it."""
        return None

    @contextlib.contextmanager
    def state_swapped(self, state, who="state_swapped"):
        """Within the block the parameters hold ``state`` (checked as ``load_state_dict``, its
        errors beginning with ``who``);
        afterwards each holds its own array again, the very same object with the same
        version, as if the block never ran: graphs built before still back-propagate.

        For looking at other parameters (``viz.explore(before=)``); graphs built inside the
        block belong to it and are not to be used after it.
        """
        params = self._unique_parameters(who)
        values, _, _ = self._checked_state(state, False, who)
        put_back = self._snapshot()
        for name, p in params.items():
            p._data = values[name]
            bump_version(p)
        try:
            yield self
        finally:
            put_back()

    def _snapshot(self):
        """A function that puts every Parameter (fixed ones too) back as it is now: its very
        array object holding its present values (copied now and written back into it, as
        ``load_state_dict`` and an optimizer write in place; a read-only array cannot have
        changed), its version, and the version cell it shares with its views with that
        cell's count.  After it runs, graphs built before back-propagate as if nothing had
        changed: what an all-or-nothing change of the model (a resume, ``state_swapped``, a
        playground's side-by-side update) undoes itself with."""
        kept = [(p, p._data, p._data.copy() if p._data.flags.writeable else None, p._version,
                 p._shared, None if p._shared is None else p._shared[0])
                for _, p in self._named_state()]

        def put_back():
            for p, data, values, version, shared, count in kept:
                if values is not None:
                    np.copyto(data, values)
                p._data, p._version, p._shared = data, version, shared
                if shared is not None:
                    shared[0] = count
        return put_back

    def own_config(self):
        """This module's own settings that change what it computes but are not parameters (a
        nonlinearity, a leak rate, an attention): a dict name -> JSON value (numbers, text,
        None, lists).  A plain Module has none; a subclass with such settings overrides this
        (its sub-modules report their own)."""
        return {}

    def config(self):
        """The ``own_config()`` of this module and of every sub-module, keyed by the setting's
        name (``"attention"``), behind the sub-module's dotted name for a sub-module
        (``"drop.p"``): what ``save`` records beside the parameters and ``load`` checks."""
        out = {}
        for name, module in self.named_modules():
            for key, value in module.own_config().items():
                out[f"{name}.{key}" if name else key] = value
        try:          # as a file gives it back: tuples as lists, numpy numbers as Python's
            return json.loads(json.dumps(out, default=_json_number))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{type(self).__name__}.config: a setting is not a JSON value "
                              f"({e})") from None

    def save(self, path):
        """Write the state dict to ``path`` (a checkpoint, see ``tinygraph.checkpoint``), with
        ``config()`` in its metadata, atomically."""
        save_arrays(path, self.state_dict(), meta={"config": self.config()})

    def expected_state(self):
        """name -> (shape, dtype) of every parameter: what ``load`` accepts from a file."""
        return {name: (p.shape, p.dtype) for name, p in self._unique_parameters("load").items()}

    def load(self, path):
        """Load a checkpoint written by ``save``; a failed load changes nothing.

        Each entry's header is checked against the parameter before its data is read, and
        the settings the file records (``config()`` of the model saved) against this model's:
        a model of another attention, leak rate or nonlinearity computes something else with
        the same parameters, so a difference is a CheckpointError naming the setting.  A file
        that records no settings (written before they were recorded, or a plain ``.npz``) is
        loaded on its names, shapes and dtypes alone.
        """
        try:
            expect = self.expected_state()
            found = read_checkpoint(path, expect=expect, required=expect)
        except CheckpointError:
            self.check_saved_settings(path, "config", f"load: '{path}'")
            raise
        self.check_config(found.meta.get("config"), f"load: '{path}'")
        try:        # a file lacking a parameter: the error names the file, as the others do
            self.load_state_dict(found.arrays)
        except CheckpointError as e:
            raise CheckpointError(f"load: '{path}': {e}") from None

    def check_saved_settings(self, path, key, who):
        """For a checkpoint whose entries do not fit this model: raise the CheckpointError of
        :meth:`check_config` when the settings it records (its metadata's ``key``, read from the
        manifest alone) differ from this model's, so that a model of another criterion (whose
        parameters have other shapes) is named as such rather than by a shape; else nothing
        (the caller raises its own error)."""
        try:
            meta = read_meta(path)
        except CheckpointError:
            return
        if isinstance(meta, dict):
            self.check_config(meta.get(key), who)

    def check_config(self, saved, who):
        """Raise CheckpointError (``who`` first) unless ``saved``, the ``config()`` recorded in a
        checkpoint (None: none recorded, nothing to check), is this model's ``config()``."""
        if saved is None:
            return
        if not isinstance(saved, dict):
            raise CheckpointError(f"{who}: its recorded model settings {saved!r} are not a dict")
        mine = self.config()
        differ = [k for k in sorted(set(saved) | set(mine), key=str)
                  if k not in saved or k not in mine or saved[k] != mine[k]
                  or type(saved[k]) is not type(mine[k])]
        if differ:
            def said(d, k):
                return f"{k}={d[k]!r}" if k in d else f"no setting {k!r}"
            detail = "; ".join(f"the file has {said(saved, k)}, the model {said(mine, k)}"
                               for k in differ)
            raise CheckpointError(f"{who} was saved from a model of other settings ({detail}): "
                                  f"with the same parameters it would compute something else")


def _json_number(value):
    """numpy scalars as Python numbers (for ``json.dumps``)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{value!r} of type {type(value).__name__} is not a JSON value")


def _converted_grad(grad, dtype):
    if grad is None:
        return None
    return (grad._data if isinstance(grad, Tensor) else np.asarray(grad)).astype(dtype)


def _submodules(name, value):
    """The Modules in an attribute's value, each with its dotted name (not looking inside them)."""
    if isinstance(value, Module):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _submodules(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _submodules(f"{name}.{key}", item)


class Dropout(Module):
    """Inverted dropout as a sub-module (PyTorch's ``nn.Dropout``): ``Dropout(p)(x)`` is
    ``tg.dropout(x, p, train=self.training)``, so ``model.eval()`` turns it off.

    ``eval()`` reaches the model's own sub-modules only: a Dropout that a model's functions
    call without the model holding it (as an attribute, or in a list or dict of them) keeps
    its own mode, as in PyTorch.  Called in training mode while a model that does not hold it
    runs in evaluation mode (an ``rnn`` unroll after ``eval()``, or viz's views, which run in
    evaluation mode), it still drops, and warns (RuntimeWarning, once per run) naming the step.

    ``seed`` (an integer >= 0) makes the masks reproducible: the k-th call in training mode
    draws its mask from numpy's generator seeded with the pair ``(seed, k)``, so the masks of
    two modules of different seeds are independent streams (not one stream shifted).
    """

    def __init__(self, p=0.5, seed=None):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
                or not 0 <= p <= 1:
            raise ConfigError(f"Dropout: p must be in [0, 1], got {p!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ConfigError(f"Dropout: seed must be an integer >= 0 or None, got {seed!r}")
        self.p = float(p)
        self._seed = None if seed is None else int(seed)
        self._calls = 0

    def __call__(self, x):
        if not self.training:
            return x
        if self.p > 0:
            _check_held(self)
        seed = None if self._seed is None else (self._seed, self._calls)
        out = dropout(x, self.p, seed=seed)
        self._calls += 1          # a call that raised drew no mask
        for drawn in getattr(_runs, "observers", ()):
            drawn[id(self)] = self
        return out

    def own_config(self):
        return {"p": self.p}


def _call_forward(self, *args, **kwargs):
    """``model(...)``: ``model.forward(...)``, PyTorch's habit (see :class:`Module`)."""
    return self.forward(*args, **kwargs)


_evaluated = threading.local()    # .blocks: the ids of the modules of each evaluation() block
#                                   this thread is in


@contextlib.contextmanager
def evaluation(modules):
    """Within the block every module of ``modules`` reads as in evaluation mode (``training``
    False) in this thread only: its own mode, which other threads read (a thread training the
    model while this one draws or diagnoses it), is not changed, so nothing is left switched
    when blocks of several threads overlap.  Blocks nest; the block is gone on exit, also on an
    error or KeyboardInterrupt (it is entered with one append, and left by finding it).

    A mode set inside the block by this thread (``train()``, ``eval()``, ``training = ...``)
    is the module's own mode, as always, and what this thread reads from then on (as after
    PyTorch's ``train()``): the block no longer holds that module; it stays set after the
    block, which changes no mode itself.

    ``modules``: an iterable of modules, or one Module, which stands for its whole tree (as
    ``eval()`` reaches every sub-module)."""
    if isinstance(modules, Module):
        modules = [module for _, module in modules.named_modules()]
    modules = list(modules)       # held meanwhile: their ids stay theirs
    block = {id(module) for module in modules}
    blocks = _evaluated.__dict__.setdefault("blocks", [])
    try:
        blocks.append(block)
        yield
    finally:
        for i in range(len(blocks) - 1, -1, -1):
            if blocks[i] is block:
                del blocks[i]
                break


_runs = threading.local()    # .stack: [model, ids of its modules or None, warned] of each
# model this thread is running (running_model), outermost first


class running_model:
    """Within the block this thread runs ``model`` (rnn's unrolls enter it): a :class:`Dropout`
    in training mode that the outermost model running does not hold, called while that model
    is in evaluation mode, warns.  (A small class rather than a generator: every unroll enters
    it.)"""

    __slots__ = ("model", "_stack")

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self._stack = _runs.__dict__.setdefault("stack", [])
        self._stack.append([self.model, None, False])

    def __exit__(self, *exc):
        self._stack.pop()
        return False


@contextlib.contextmanager
def dropouts_drawing():
    """Within the block, every :class:`Dropout` that this thread calls in training mode is
    added to the dict the block is given (id -> Dropout); rnn's Trainer uses it to find the
    seeded ones its model does not hold (whose calls a checkpoint cannot record)."""
    drawn = {}
    observers = _runs.__dict__.setdefault("observers", [])
    observers.append(drawn)
    try:
        yield drawn
    finally:
        del observers[next(i for i, o in enumerate(observers) if o is drawn)]


def _check_held(drop):
    """Warn (once per run) if ``drop``, in training mode, is called inside a run of a model in
    evaluation mode that does not hold it: ``eval()`` could not switch it off."""
    stack = getattr(_runs, "stack", None)
    if not stack:
        return
    entry = stack[0]
    model = entry[0]
    if entry[2] or getattr(model, "training", True):
        return
    if entry[1] is None:
        named = getattr(model, "named_modules", None)
        entry[1] = {id(m) for _, m in named()} if callable(named) else set()
    if id(drop) in entry[1]:
        return          # held: set to training mode on its own (Monte Carlo dropout, say)
    entry[2] = True
    name = getattr(model, "name", None) or type(model).__name__
    where = current_scope()
    warnings.warn(f"{name} runs in evaluation mode (eval()), but a tg.Dropout(p={drop.p}) that it "
                  "does not hold is in training mode and still drops"
                  + (f" (first at {where})" if where else "") + ": eval() reaches only the "
                  "model's own sub-modules; hold it in the model (e.g. cell.drop = drop) or call "
                  "its eval()", RuntimeWarning, stacklevel=3)


def _members(name, value, visited):
    if isinstance(value, Parameter):
        yield name, value
    elif isinstance(value, Module):
        if id(value) not in visited:
            visited.add(id(value))
            yield from value._walk(name + ".", visited)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _members(f"{name}.{i}", item, visited)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _members(f"{name}.{key}", item, visited)
