"""Optimizers (SGD with momentum, Adagrad, Adam, AdamW) and gradient clipping by global norm.

Each optimizer updates ``p.data`` of its parameters in place from ``p.grad``
(parameters whose grad is None are skipped), holds its settings per parameter group
(``param_groups``, as PyTorch's) and can save and restore its state, so training resumes
exactly where it stopped.  :mod:`tinygraph.lr_scheduler` (also ``tg.optim.lr_scheduler``)
changes the groups' learning rates over time.
"""

import math
import warnings
from collections.abc import Mapping

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .errors import (AnomalyError, CheckpointError, ConfigError, DTypeError, ShapeError,
                     UnsupportedOptionError)
from .tensor import Tensor, _count_of, bump_version, clear_grads


_TORCH_OPTIONS = ("amsgrad", "capturable", "dampening", "differentiable", "foreach", "fused",
                  "initial_accumulator_value", "lr_decay", "maximize", "nesterov")


def _refuse_options(optimizer, options):
    """Refuse keyword arguments an optimizer does not take (UnsupportedOptionError, which is
    a ConfigError and a TypeError), naming the optimizer and the option: PyTorch's options
    (``nesterov=``, ``amsgrad=``, ``foreach=``, ...) are not supported here."""
    if not options:
        return
    who = type(optimizer).__name__
    name = sorted(options)[0]
    takes = ", ".join(optimizer.settings)
    if name in _TORCH_OPTIONS:
        raise UnsupportedOptionError(f"{who}: the option {name}={options[name]!r} (of PyTorch's "
                                     f"optimizers) is not supported by tinygraph's {who}; it takes "
                                     f"params, {takes}")
    raise UnsupportedOptionError(f"{who}: unknown option {name}={options[name]!r}, not supported; "
                                 f"{who} takes params, {takes}")


def _refuse_positional(optimizer, positional, theirs, keywords):
    """Refuse settings given by position past those PyTorch's optimizer takes in the same order:
    there the same call sets another setting (UnsupportedOptionError, naming both)."""
    if positional:
        who = type(optimizer).__name__
        raise UnsupportedOptionError(f"{who}: {len(positional)} more positional argument"
                                     f"{'s' * (len(positional) > 1)} {list(positional)!r}: {theirs}, "
                                     f"which tinygraph's {who} does not have; give {keywords} by "
                                     f"keyword")


def _check_params(who, params, trained=True):
    """The list of ``params``; ``trained``: each must require grad (an optimizer's), else any
    tensor (what ``clip_grad_norm`` scales: a frozen one's gradient, if any, counts too)."""
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
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ConfigError(f"{who}: every parameter must be a Tensor that requires grad, "
                              f"got {type(p).__name__}")
        if trained and not p.requires_grad:
            raise ConfigError(f"{who}: every parameter must be a Tensor that requires grad; "
                              f"parameter {i}{_name(p)} does not (it is fixed): leave it out")
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
            g = g._data
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


def _check_non_negative(who, what, value):
    if not _is_number(value) or not np.isfinite(value) or value < 0:
        raise ConfigError(f"{who}: {what} must be a number >= 0, got {value}")


def _check_fraction(who, what, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"{who}: {what} must be in [0, 1), got {value}")


def _check_betas(who, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ConfigError(f"{who}: betas must be a pair (beta1, beta2), got {betas}")
    for beta in betas:
        _check_fraction(who, "betas", beta)


def _split_groups(who, params):
    """The groups of ``params``: a list of dicts (each with "params" and its own settings), or
    one group of a plain list of tensors."""
    if isinstance(params, (list, tuple)) and params and all(isinstance(g, Mapping) for g in params):
        groups = []
        for k, group in enumerate(params):
            if "params" not in group:
                raise ConfigError(f"{who}: parameter group {k} has no 'params' entry")
            group = dict(group)
            group["params"] = _check_params(f"{who}: parameter group {k}", group["params"])
            groups.append(group)
        return groups
    if isinstance(params, (list, tuple)) and any(isinstance(g, Mapping) for g in params):
        raise ConfigError(f"{who}: params must be a list of tensors or a list of parameter "
                          "groups (dicts with 'params'), not a mix of both")
    return [{"params": _check_params(who, params)}]


NAME_BYTES = 64   # the bytes of an optimizer's name in its state_dict ("optimizer")


def name_bytes(name):
    """``name``'s UTF-8 bytes zero-padded to NAME_BYTES as a uint8 array: how a state_dict
    (optimizer's or scheduler's) names its kind, one shape for every kind."""
    raw = name.encode("utf-8")[:NAME_BYTES]
    return np.frombuffer(raw.ljust(NAME_BYTES, b"\0"), dtype=np.uint8).copy()


class Optimizer:
    """Base class: the parameter groups and a per-parameter state of arrays.

    ``params`` is a list of tensors (one group) or a list of dicts, each a group with its
    ``"params"`` and any of the optimizer's settings (``"lr"``, ``"weight_decay"``, ...) that
    override the defaults given as keyword arguments, as in PyTorch.  ``param_groups`` holds
    them (every setting filled in); a setting changed there (e.g. by a scheduler) applies from
    the next ``step``.  ``params`` is the flat list of every group's parameters, in order.
    ``steps`` counts the ``step`` calls that updated at least one parameter.
    """

    state_keys = ()   # the names of the per-parameter state arrays
    counted = False   # True: each parameter also counts its own updates (state "step", a 0-d int64)
    settings = ("lr",)   # each group's settings, in the order the repr shows them

    def __init__(self, params, **defaults):
        who = type(self).__name__
        grouped = isinstance(params, (list, tuple)) and bool(params) and isinstance(params[0], Mapping)
        groups = _split_groups(who, params)
        if defaults.get("lr") is None and any("lr" not in g for g in groups):
            raise ConfigError(f"{who}: give lr= (or an 'lr' in every parameter group)")
        self.param_groups = []
        for k, group in enumerate(groups):
            unknown = sorted(set(group) - set(self.settings) - {"params"})
            if unknown:
                raise ConfigError(f"{who}: parameter group {k} has unknown settings {unknown}; "
                                  f"{who} takes {list(self.settings)}")
            filled = {"params": group["params"]}
            filled.update({key: group.get(key, defaults.get(key)) for key in self.settings})
            self._check_group(f"{who}: parameter group {k}" if grouped else who, filled)
            self.param_groups.append(filled)
        self.params = [p for group in self.param_groups for p in group["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ConfigError(f"{who}: a parameter appears in more than one parameter group")
        self._layout = tuple(self.params)   # the objects, not their ids: a deep copy or pickle of
        # the model and optimizer together maps them to the copied parameters
        self.steps = 0
        self.state = [{} for _ in self.params]

    def _check_keys(self, who, group):
        """Refuse a group given a setting this optimizer does not have since it was made (a
        torch habit such as ``group["nesterov"] = True`` on SGD would be ignored without a word)
        or one of its settings removed."""
        unknown = sorted(str(key) for key in set(group) - set(self.settings) - {"params"})
        missing = [key for key in self.settings if key not in group]
        if unknown or missing:
            raise ConfigError(f"{who}: " + (f"has unknown settings {unknown} (set after the "
                                            "optimizer was made: it would ignore them)" if unknown
                                            else f"lacks the settings {missing}")
                              + f"; {type(self).__name__} takes {list(self.settings)}")

    def _check_group(self, who, group):
        """Refuse a group whose settings this optimizer cannot use (ConfigError naming it)."""
        _check_non_negative(who, "lr", group["lr"])
        if "weight_decay" in group:
            _check_non_negative(who, "weight_decay", group["weight_decay"])

    @property
    def lr(self):
        """The learning rate shared by every group (setting it sets every group's)."""
        rates = {group["lr"] for group in self.param_groups}
        if len(rates) != 1:
            raise ConfigError(f"{type(self).__name__}.lr: the parameter groups have different "
                              f"learning rates {sorted(rates)}; read param_groups[k]['lr']")
        return rates.pop()

    @lr.setter
    def lr(self, value):
        _check_non_negative(f"{type(self).__name__}.lr", "lr", value)
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self, set_to_none=True):
        """Set every parameter's gradient to None (``set_to_none=False``: to zeros), as PyTorch's."""
        clear_grads(f"{type(self).__name__}.zero_grad", self.params, set_to_none)

    def __repr__(self):
        first = self.param_groups[0]
        settings = ", ".join(f"{k}={first[k]!r}" for k in self.settings
                             if k != "weight_decay" or first[k])   # no decay: as before groups
        groups = f"; {len(self.param_groups)} groups" if len(self.param_groups) > 1 else ""
        values = sum(p.size for p in self.params)
        return (f"{type(self).__name__}({settings}{groups}; {_count_of(len(self.params), 'parameter')}, "
                f"{_count_of(values, 'value')}; {_count_of(self.steps, 'step')})")

    def _checked_groups(self, who):
        """(index, parameter, gradient, group) of every parameter with a gradient; every group's
        settings and every gradient are checked before anything changes."""
        now = [p for group in self.param_groups for p in group["params"]]
        if len(now) != len(self._layout) or any(p is not q for p, q in zip(now, self._layout)):
            raise ConfigError(f"{who}: the parameters of param_groups were changed after the "
                              "optimizer was made; make a new optimizer instead")
        for k, group in enumerate(self.param_groups):
            self._check_keys(f"{who}: parameter group {k}", group)
            self._check_group(f"{who}: parameter group {k}", group)
        group_of = [group for group in self.param_groups for _ in group["params"]]
        grads = _gradients(who, self.params)
        for i, p, _ in grads:     # state made for a parameter whose .data was replaced since
            for key, buf in self.state[i].items():
                if key != "step" and buf.shape != p.shape:
                    raise ShapeError(f"{who}: the state '{key}' of parameter {i}{_name(p)} has "
                                     f"shape {buf.shape}, the parameter has {p.shape} (its .data "
                                     "was replaced by an array of another shape); make a new "
                                     "optimizer, or load a state_dict of this shape")
                if key != "step" and buf.dtype != p.dtype:
                    raise DTypeError(f"{who}: the state '{key}' of parameter {i}{_name(p)} has "
                                     f"dtype {buf.dtype}, the parameter has {p.dtype} (its .data "
                                     "was replaced by an array of another dtype); make a new "
                                     "optimizer, or load a state_dict of this dtype")
        return [(i, p, g, group_of[i]) for i, p, g in grads]

    def step(self):
        """One update of every parameter that has a gradient; all gradients and group settings are
        checked first (a Tensor gradient left by ``backward(create_graph=True)`` is used by
        value).

        All or nothing: if an update fails part-way (or is interrupted), every parameter, the
        optimizer's state and its step count are put back as they were before the error.

        A call when no parameter has a gradient updates nothing and changes nothing, ``steps``
        included (as PyTorch's, whose per-parameter state skips such a parameter): ``steps``
        counts the calls that updated a parameter."""
        who = f"{type(self).__name__}.step"
        grads = self._ready(who)
        if not grads:
            return
        saved = [(p, p._data, p._data.copy(), {k: v.copy() for k, v in self.state[i].items()})
                 for i, p, _, _ in grads]
        steps = self.steps
        at = None
        try:
            self.steps += 1
            for at in grads:
                i, p, g, group = at
                self._update(p, g, self.state[i], group)
            at = None
            # inside the try: an interrupt while the versions are bumped puts the update back
            # too (a version bumped on data put back only makes older graphs refuse backward)
            for _, p, _, _ in grads:
                bump_version(p)
        except BaseException as e:
            self.steps = steps
            for (i, _, _, _), (p, data, copy, state) in zip(grads, saved):
                np.copyto(data, copy)
                p._data = data
                self.state[i] = state
            if type(e) is FloatingPointError and at is not None:   # a caller's np.errstate
                i, p = at[0], at[1]
                raise FloatingPointError(f"{who}: parameter {i}{_name(p)} of shape {p.shape}: "
                                         f"{e} (nothing was changed)") from e
            raise

    def _ready(self, who):
        """Every check of ``step`` (the groups' settings, the gradients, the state, writable
        parameters), nothing changed: (index, parameter, gradient, group) of every parameter
        with a gradient.  rnn.Trainer calls it before it clips the gradients, so a step that
        would be refused is refused with the gradients as backward left them."""
        grads = self._checked_groups(who)
        for i, p, _, _ in grads:
            if not p._data.flags.writeable:
                raise ConfigError(f"{who}: parameter {i}{_name(p)} holds a read-only array, "
                                  "which cannot be updated in place")
        return grads

    def _update(self, p, g, state, group):
        raise NotImplementedError

    def _group_entries(self):
        """name -> value of every group's settings, as arrays (``"group.0.lr"``, ...)."""
        out = {}
        for k, group in enumerate(self.param_groups):
            for key in self.settings:
                out[f"group.{k}.{key}"] = np.array(group[key], dtype=np.float64)
        return out

    def _kind(self):
        """The optimizer's class name as an array of its UTF-8 bytes (a checkpoint holds
        numbers), zero-padded to NAME_BYTES: every optimizer's has one shape, so the file of
        another passes a header check and load_state_dict names both."""
        return name_bytes(type(self).__name__)

    def state_dict(self):
        """The optimizer's state as a flat dict of arrays (for ``save_arrays``): ``"steps"``, its
        class name (``"optimizer"``, UTF-8 bytes), the number of parameters of each group
        (``"params"``), each parameter's state arrays (``"0.m"``, ...) and each group's
        settings (``"group.0.lr"``, ...)."""
        out = {"steps": np.array(self.steps), "optimizer": self._kind(), "params": self._sizes()}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"{i}.{key}"] = value.copy()
        out.update(self._group_entries())
        return out

    def _sizes(self):
        """The number of parameters of each group, an int64 array."""
        return np.array([len(group["params"]) for group in self.param_groups], dtype=np.int64)

    def expected_state(self):
        """name -> (shape, dtype) of every entry ``state_dict`` may hold (for ``load_arrays``)."""
        out = {"steps": ((), np.dtype(np.int64)), "optimizer": ((NAME_BYTES,), np.dtype(np.uint8)),
               "params": ((len(self.param_groups),), np.dtype(np.int64))}
        for i, p in enumerate(self.params):
            out.update({f"{i}.{key}": (p.shape, p.dtype) for key in self.state_keys})
            if self.counted:
                out[f"{i}.step"] = ((), np.dtype(np.int64))
        out.update({name: (value.shape, value.dtype) for name, value in self._group_entries().items()})
        return out

    def _loaded_groups(self, who, d):
        """The param_groups with the settings of ``d`` (its ``group.k.key`` entries; a group's
        settings absent from ``d`` are kept, as in a state saved before groups existed, but a
        state with settings must have them for every group and no other)."""
        groups = [dict(group) for group in self.param_groups]
        template = self._group_entries()
        for key, value in d.items():
            if not key.startswith("group."):
                continue
            if key not in template:
                raise CheckpointError(f"{who}: unexpected entry '{key}' (this optimizer has "
                                      f"{len(groups)} parameter groups with settings "
                                      f"{list(self.settings)})")
            try:
                value = np.asarray(value, dtype=np.float64)
            except (ValueError, TypeError) as e:
                raise CheckpointError(f"{who}: '{key}' is not a number ({e})") from None
            if value.shape != template[key].shape:
                raise CheckpointError(f"{who}: '{key}' has shape {value.shape}, expected "
                                      f"{template[key].shape}")
            _, k, name = key.split(".", 2)
            groups[int(k)][name] = tuple(value.tolist()) if value.ndim else value.item()
        present = {int(key.split(".", 2)[1]) for key in d if key.startswith("group.")}
        if present and present != set(range(len(groups))):     # another optimizer's groups
            raise CheckpointError(f"{who}: the state holds the settings of parameter groups "
                                  f"{sorted(present)}, this optimizer has {len(groups)} groups "
                                  f"{list(range(len(groups)))}")
        for k, group in enumerate(groups):
            try:
                self._check_group(f"{who}: parameter group {k}", group)
            except ConfigError as e:
                raise CheckpointError(str(e)) from None
        return groups

    def load_state_dict(self, d):
        """Restore a state written by ``state_dict``; checks everything before changing anything.

        Each parameter's state must be complete (every one of ``state_keys``) or absent (a
        parameter that never had a gradient); anything else could not resume exactly.  The
        groups' settings (``group.k.lr``, ...) are restored when present.  A parameter's own
        update count (``"0.step"``, Adam's) absent from a state saved before it existed is
        ``steps``, the count that state's updates used (those runs corrected every parameter's
        bias with ``steps``, so the resumed run goes on as they would have); a count above
        ``steps``, or of 0 beside the state of updates, is refused.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{who}: state must be a dict (from "
                                  f"state_dict()), got {type(d).__name__}")
        if "steps" not in d:
            raise CheckpointError(f"{who}: missing 'steps'")
        if "optimizer" in d:      # absent from a state saved before it was written
            try:
                kind = np.asarray(d["optimizer"])
            except (ValueError, TypeError):     # a ragged list: no array
                kind = np.asarray(None)
            if kind.dtype != np.uint8 or kind.shape != (NAME_BYTES,):
                raise CheckpointError(f"{who}: 'optimizer' must be the optimizer's name as UTF-8 "
                                      f"bytes ({NAME_BYTES} uint8), got {kind.dtype} of shape "
                                      f"{kind.shape}")
            if not np.array_equal(kind, self._kind()):
                name = bytes(kind).rstrip(b"\0").decode("utf-8", "replace")
                raise CheckpointError(f"{who}: the state is of {name}, not {type(self).__name__} "
                                      "(another algorithm: its settings and state mean other "
                                      "things); make the optimizer the state was saved from")
        if "params" in d:         # absent from a state saved before it was written
            try:
                sizes = np.asarray(d["params"])
            except (ValueError, TypeError):
                sizes = np.asarray(None)
            if sizes.ndim != 1 or sizes.dtype.kind not in "iu":
                raise CheckpointError(f"{who}: 'params' must be the number of parameters of each "
                                      f"group (integers), got {d['params']!r}")
            if len(sizes) != len(self.param_groups):
                raise CheckpointError(f"{who}: the state is of an optimizer of {len(sizes)} "
                                      f"parameter group{'s' * (len(sizes) != 1)} ({sizes.tolist()} "
                                      f"parameters), this one has {len(self.param_groups)} groups "
                                      f"({self._sizes().tolist()} parameters)")
            if not np.array_equal(sizes, self._sizes()):
                raise CheckpointError(f"{who}: the state is of an optimizer over {int(sizes.sum())} "
                                      f"parameters (per group {sizes.tolist()}), this one has "
                                      f"{len(self.params)} ({self._sizes().tolist()}); each "
                                      "parameter's state would go to another parameter")
        new = [{} for _ in self.params]
        problems, flawed = [], set()      # every entry that does not fit, named in one error
        for key, value in d.items():
            if not isinstance(key, str):
                problems.append(f"unexpected entry {key!r}")
                continue
            if key in ("steps", "optimizer", "params") or key.startswith("group."):
                continue
            index, _, name = key.partition(".")
            if (not index.isdigit() or not index.isascii() or int(index) >= len(self.params)
                    or name not in self.state_keys + (("step",) if self.counted else ())):
                problems.append(f"unexpected entry '{key}'")
                continue
            p = self.params[int(index)]
            try:
                value = np.asarray(value)
            except (ValueError, TypeError) as e:
                value, problem = None, f"'{key}' is not an array ({e})"
            else:
                problem = None
                if name == "step":
                    if value.shape != () or value.dtype.kind not in "iu" or value < 0:
                        problem = f"'{key}' must be a count (an integer >= 0), got {value!r}"
                elif value.shape != p.shape:
                    problem = f"'{key}' has shape {value.shape}, parameter {index} has {p.shape}"
                elif value.dtype != p.dtype:
                    problem = f"'{key}' has dtype {value.dtype}, parameter {index} has {p.dtype}"
            if problem is not None:
                problems.append(problem)
                flawed.add(int(index))
                continue
            new[int(index)][name] = value.astype(np.int64) if name == "step" else value.copy()
        try:
            steps = np.asarray(d["steps"])
        except (ValueError, TypeError):
            steps = np.asarray(None)
        if steps.shape != () or steps.dtype.kind not in "iu" or steps < 0:
            problems.append(f"'steps' must be a count (an integer >= 0), got {d['steps']!r}")
            steps = None
        for i, state in enumerate(new):
            if i in flawed:       # its entries' own problems are named above
                continue
            arrays = [k for k in state if k != "step"]
            if state and len(arrays) != len(self.state_keys):
                lacking = [f"{i}.{k}" for k in self.state_keys if k not in state]
                problems.append(f"the state of parameter {i} is incomplete: missing {lacking}")
                continue
            if steps is None:
                continue
            if self.counted and arrays and "step" not in state:    # saved before the count
                state["step"] = np.array(int(steps), dtype=np.int64)
            if "step" in state and state["step"] > steps:
                problems.append(f"'{i}.step' is {int(state['step'])}, more updates than the "
                                f"optimizer's {int(steps)} steps")
            if arrays and "step" in state and state["step"] == 0:
                problems.append(f"'{i}.step' is 0, but parameter {i} holds the state "
                                f"{[f'{i}.{k}' for k in arrays]} of updates (its bias "
                                "correction would start again from 1 over them)")
        if problems:
            raise CheckpointError(f"{who}: " + "; ".join(problems))
        groups = self._loaded_groups(who, d)
        self.steps = int(steps)
        self.state = new
        for group, loaded in zip(self.param_groups, groups):
            group.update(loaded)


class SGD(Optimizer):
    """``g += weight_decay * p; v = momentum * v + g; p -= lr * v`` (plain SGD when momentum
    is 0), as PyTorch's SGD."""

    state_keys = ("velocity",)
    settings = ("lr", "momentum", "weight_decay")

    def __init__(self, params, lr=None, momentum=0.0, *positional, weight_decay=0.0, **options):
        _refuse_positional(self, positional, "PyTorch's SGD(params, lr, momentum, dampening, "
                                             "weight_decay, nesterov) takes dampening fourth",
                           "weight_decay=")
        _refuse_options(self, options)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _check_group(self, who, group):
        super()._check_group(who, group)
        _check_fraction(who, "momentum", group["momentum"])

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p._data
        if group["momentum"]:
            # the velocity is held in the parameter's dtype, whatever the gradient's
            g = g.astype(p.dtype, copy=False)
            v = state.get("velocity")
            v = g.copy() if v is None else group["momentum"] * v + g
            state["velocity"] = v
            g = v
        p._data -= group["lr"] * g


class Adagrad(Optimizer):
    """``g += weight_decay * p; s += g**2; p -= lr * g / (sqrt(s) + eps)``, as PyTorch's Adagrad
    (without its lr_decay)."""

    state_keys = ("sum_sq",)
    settings = ("lr", "eps", "weight_decay")

    def __init__(self, params, lr=None, *positional, eps=1e-10, weight_decay=0.0, **options):
        _refuse_positional(self, positional, "PyTorch's Adagrad(params, lr, lr_decay, weight_decay, "
                                             "initial_accumulator_value, eps) takes lr_decay third",
                           "eps= and weight_decay=")
        _refuse_options(self, options)
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay)

    def _check_group(self, who, group):
        super()._check_group(who, group)
        _check_eps(who, group)

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p._data
        s = _buffer(state, "sum_sq", p)
        s += g * g
        p._data -= group["lr"] * g / (np.sqrt(s) + group["eps"])


def _check_eps(who, group):
    """eps must be positive, and not 0 in a parameter's dtype: Adam's 1e-8 is 0 in float16, so
    the first update of a zero gradient entry was 0 / 0 and made the parameter NaN."""
    _check_positive(who, "eps", group["eps"])
    for p in group["params"]:
        if p._data.dtype.kind == "f" and p._data.dtype.type(group["eps"]) == 0:
            raise ConfigError(f"{who}: eps={group['eps']} is 0 in {p._data.dtype}, the dtype of "
                              f"parameter{_name(p)} of shape {p.shape}: a zero gradient entry "
                              "would update it by 0 / 0 = NaN; use float32 parameters (e.g. "
                              "model.float()) or an eps that dtype holds (e.g. eps=1e-4)")


def _buffer(state, key, p):
    """The state array ``key`` of parameter ``p``, zeros the first time."""
    buf = state.get(key)
    if buf is None:
        buf = state[key] = np.zeros_like(p._data)
    return buf


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments; ``weight_decay``
    adds ``weight_decay * p`` to the gradient (L2, as PyTorch's Adam; see :class:`AdamW`).

    Each parameter counts its own updates (state ``"step"``, as PyTorch's): the bias correction
    of a parameter first updated at step k starts from 1, not k."""

    state_keys = ("m", "v")
    counted = True
    settings = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 **options):
        _refuse_options(self, options)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _check_group(self, who, group):
        super()._check_group(who, group)
        _check_betas(who, group["betas"])
        _check_eps(who, group)

    def _decay(self, p, g, group):
        return g + group["weight_decay"] * p._data if group["weight_decay"] else g

    def _update(self, p, g, state, group):
        g = self._decay(p, g, group)
        b1, b2 = group["betas"]
        m, v = _buffer(state, "m", p), _buffer(state, "v", p)
        count = int(state.get("step", 0)) + 1
        state["step"] = np.array(count, dtype=np.int64)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        if v.dtype == np.float16:
            _warn_underflow(type(self).__name__, p, g, v, b2)
        # lr m_hat / (sqrt(v_hat) + eps), in PyTorch's order: v / (1 - b2^t) (v_hat itself) and
        # m / (1 - b1^t) may leave float16's range (v = 90 of a gradient 300 at t = 1: 9e4, inf,
        # and that entry was not updated at all); sqrt(v) / sqrt(1 - b2^t) and m / denominator
        # stay near the gradient's and lr's scale
        denominator = np.sqrt(v) / math.sqrt(1 - b2 ** count) + group["eps"]
        p._data -= group["lr"] / (1 - b1 ** count) * (m / denominator)


def _warn_underflow(who, p, g, v, b2):
    """A RuntimeWarning (once per parameter, as Python shows a repeated warning) when a float16
    second moment holds 0 for a nonzero gradient entry: (1 - b2) g^2 underflows float16 for
    |g| below about 5e-3 (b2 = 0.999), and that entry's update is then lr m / eps, not
    lr m / sqrt(v): 11x Adam's step for |g| = 1e-3 at eps = 1e-4, 50x for 5e-3 (PyTorch's
    float16 Adam computes the same).  Not refused: the update is what the formula gives in
    float16; the warning says so and what to do."""
    lost = (v == 0) & (g != 0)
    if lost.any():
        below = math.sqrt(float(np.finfo(np.float16).smallest_subnormal) / 2 / (1 - b2))
        warnings.warn(f"{who}: float16 parameter{_name(p)} of shape {p.shape}: the second moment "
                      f"of gradient entries below about {below:.1e} underflows to 0 in float16, so "
                      "their updates are lr * m / eps, many times Adam's lr * m / sqrt(v); keep "
                      "the parameters in float32 (model.float()) to train them with Adam",
                      RuntimeWarning, stacklevel=4)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as PyTorch's AdamW:
    ``p -= lr * weight_decay * p`` first, then Adam's step on the gradient alone."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 **options):
        _refuse_options(self, options)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _decay(self, p, g, group):
        if group["weight_decay"]:
            p._data *= 1 - group["lr"] * group["weight_decay"]
        return g


def _global_norm(grads):
    """The L2 norm of all the gradients together, summed in float64.

    Squares beyond float64's range (gradients past about 1e154) or below it (under about
    1e-154) are summed again scaled by the largest magnitude, so a norm float64 can hold is
    returned as it is (5e200 for gradients [3e200, 4e200], not inf); a NaN or inf gradient
    gives a NaN or inf norm."""
    grads = list(grads)
    with np.errstate(over="ignore", under="ignore"):
        total = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads)))
        if np.isfinite(total) and total > _UNSCALED_LEAST:
            return total
        largest = max((float(np.max(np.abs(g))) for g in grads if g.size), default=0.0)
        if largest == 0 or not np.isfinite(largest):
            return total
        return largest * float(np.sqrt(sum(np.sum(np.square(np.divide(g, largest, dtype=np.float64)))
                                           for g in grads)))


def _overlapping(grads):
    """Whether two of ``grads`` may share memory (``p.grad = q.grad = buf``, or two views of
    one buffer): the intervals of their bytes, sorted, overlap."""
    spans = sorted(byte_bounds(g) for g in grads if g.size)
    return any(start < end for (_, end), (start, _) in zip(spans, spans[1:]))


_UNSCALED_LEAST = 1e-140   # a norm below this may hold squares that underflowed to 0
_NORMAL_LEAST = float(np.finfo(np.float64).tiny)   # the least float64 of full precision


def clip_grad_norm(params, max_norm, error_if_nonfinite=False):
    """Scale all gradients so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (float), exact for finite gradients even where their
    squares leave float64's range.  A NaN or inf gradient (a non-finite norm) zeroes the
    gradients rather than spreading NaN into the parameters; with ``error_if_nonfinite=True``
    (as PyTorch's) it raises AnomalyError instead, naming the first such parameter, and no
    gradient is touched.  ``max_norm=math.inf``
    only measures: the norm is returned and no gradient is touched, finite or not
    (PyTorch's idiom for logging the norm).

    Clipped gradients have the norm ``max_norm`` to float64 rounding, at any scale: they are
    multiplied by ``max_norm / norm`` (PyTorch's clip_grad_norm_ uses ``max_norm / (norm +
    1e-6)``: gradients of norm 1e-6 come out of norm ``max_norm / 2``, those of norm 1 about
    1e-6 short of ``max_norm``).

    Gradients that share memory (``p.grad = q.grad = buf``, or overlapping views of one
    buffer) are each one parameter's gradient: the norm counts each parameter's (buf twice,
    as PyTorch's), and every entry of that memory is multiplied once, so each parameter's
    gradient is its own times ``max_norm / norm``.  (PyTorch's scales such a buffer once per
    parameter holding it: buf [3, 4] held twice came out [0.06, 0.08], a norm of 0.14 for
    ``max_norm=1``.)
    """
    params = _check_params("clip_grad_norm", params, trained=False)
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise ConfigError(f"clip_grad_norm: error_if_nonfinite must be True or False, got "
                          f"{error_if_nonfinite!r}")
    measure_only = _is_number(max_norm) and max_norm == np.inf
    if not measure_only:
        _check_positive("clip_grad_norm", "max_norm", max_norm)
    found = _gradients("clip_grad_norm", params)
    if error_if_nonfinite:
        for i, p, g in found:
            if not np.isfinite(g).all():
                raise AnomalyError(f"clip_grad_norm: the total norm of the gradients is not "
                                   f"finite: the gradient of parameter {i}{_name(p)} {p.shape} "
                                   f"holds {g[~np.isfinite(g)][0]}; no gradient was changed "
                                   "(error_if_nonfinite=True)")
    if measure_only:
        return _global_norm(g for _, _, g in found)
    for i, p, g in found:     # checked before any gradient is scaled
        if not g.flags.writeable:
            raise ConfigError(f"clip_grad_norm: the gradient of parameter {i}{_name(p)} is a "
                              "read-only array, which cannot be scaled in place")
    grads = [g for _, _, g in found]
    total = _global_norm(grads)
    if not np.isfinite(total):
        for g in grads:
            g[...] = 0
    elif total > max_norm:      # max_norm / total exactly: total > max_norm > 0, no epsilon
        scale = max_norm / total
        if scale >= _NORMAL_LEAST:
            def scaled(g):
                return g * scale
        else:                   # a subnormal scale holds few digits: divide by total first
            def scaled(g):
                return np.divide(g, total, dtype=np.float64) * max_norm
        if _overlapping(grads):   # every new value first, then written: each entry once
            for g, new in [(g, scaled(g)) for g in grads]:
                np.copyto(g, new, casting="unsafe")
        else:
            for g in grads:
                if scale >= _NORMAL_LEAST:
                    g *= scale
                else:
                    g[...] = scaled(g)
    else:
        return total
    for p in params:     # a Tensor gradient (create_graph) was changed in place: graphs built
        if isinstance(p.grad, Tensor):   # from it before now refuse backward
            bump_version(p.grad)
    return total


from . import lr_scheduler  # noqa: E402,F401 - tg.optim.lr_scheduler, as torch.optim.lr_scheduler
