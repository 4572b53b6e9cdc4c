"""Learning-rate schedules, as ``torch.optim.lr_scheduler`` (also ``tg.optim.lr_scheduler``).

A scheduler sets ``optimizer.param_groups[k]["lr"]`` of every group from that group's
initial learning rate (``base_lrs``) and the number of ``step()`` calls so far
(``last_epoch``); call ``scheduler.step()`` once per epoch, after ``optimizer.step()``.
Making a scheduler sets the learning rates of epoch 0.  :class:`ReduceLROnPlateau` reads
a metric instead: ``scheduler.step(val_loss)``.  Each has ``state_dict()`` (a flat dict of
arrays, for ``save_arrays``, naming its kind and settings) and ``load_state_dict()``, which
checks everything before changing anything and refuses another kind's state or one saved with
other settings (``LambdaLR``: functions that give another value at the saved epoch).
Closed forms do not chain: a ``step()`` after something else changed a group's rate (a
ReduceLROnPlateau, another scheduler, a hand change) is a ConfigError, not an overwrite.
The values follow PyTorch's closed forms:

- ``StepLR``: lr = base · gamma^⌊epoch / step_size⌋
- ``CosineAnnealingLR``: lr = eta_min + (base − eta_min) · (1 + cos(π · epoch / T_max)) / 2
- ``LambdaLR``: lr = base · lr_lambda(epoch)
- ``ReduceLROnPlateau``: lr = max(lr · factor, min_lr) after more than ``patience`` epochs
  without improvement (then ``cooldown`` epochs of rest).
"""

import math
from collections.abc import Mapping

import numpy as np

from .errors import CheckpointError, ConfigError
from .optim import NAME_BYTES, name_bytes


def _number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _count(who, what, value, least):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{who}: {what} must be an integer >= {least}, got {value!r}")
    return int(value)


def _finite(who, what, value, least=0.0):
    if not _number(value) or not np.isfinite(value) or value < least:
        raise ConfigError(f"{who}: {what} must be a finite number >= {least}, got {value!r}")
    return float(value)


def _optimizer(who, optimizer):
    if not isinstance(getattr(optimizer, "param_groups", None), list):
        raise ConfigError(f"{who}: needs a tinygraph optimizer (with param_groups), got "
                          f"{type(optimizer).__name__}")
    return optimizer


class _Entries:
    """Checks the entries of a state dict before any is used: each a number of the right kind."""

    def __init__(self, who, state, names, optional=()):
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{who}: state must be a dict (from state_dict()), got "
                                  f"{type(state).__name__}")
        missing = sorted(set(names) - set(state))
        extra = sorted(str(k) for k in set(state) - set(names) - set(optional))
        if missing or extra:
            raise CheckpointError(f"{who}: entries do not match: missing {missing}, unexpected {extra}")
        self.who, self.state = who, state

    def array(self, name, shape, kinds="iuf"):
        try:
            value = np.asarray(self.state[name])
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{self.who}: '{name}' is not an array ({e})") from None
        if value.shape != shape or value.dtype.kind not in kinds:
            raise CheckpointError(f"{self.who}: '{name}' must be {'integers' if kinds == 'iu' else 'numbers'}"
                                  f" of shape {shape}, got {value.dtype} of shape {value.shape}")
        return value


def _check_kind(who, state, mine):
    """Refuse a state whose ``"scheduler"`` (its class name's UTF-8 bytes) is not ``mine``
    (naming both); a state without one is not checked."""
    if "scheduler" not in state:
        return
    try:
        kind = np.asarray(state["scheduler"])
    except (ValueError, TypeError):
        kind = np.asarray(None)
    if kind.dtype != np.uint8 or kind.shape != (NAME_BYTES,):
        raise CheckpointError(f"{who}: 'scheduler' must be the scheduler's name as UTF-8 "
                              f"bytes ({NAME_BYTES} uint8), got {kind.dtype} of shape {kind.shape}")
    if not np.array_equal(kind, name_bytes(mine)):
        name = bytes(kind).rstrip(b"\0").decode("utf-8", "replace")
        raise CheckpointError(f"{who}: the state is of {name}, not {mine} "
                              "(another schedule); make the scheduler the state was saved from")


class LRScheduler:
    """Base class: ``lr_at(epoch, base) -> lr`` per group; ``step()`` moves one epoch on."""

    def __init__(self, optimizer, last_epoch=-1):
        who = type(self).__name__
        self.optimizer = _optimizer(who, optimizer)
        if last_epoch != -1:
            raise ConfigError(f"{who}: last_epoch must be -1 (resume with load_state_dict instead), "
                              f"got {last_epoch!r}")
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, epoch, base, k):
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rate of every group set by the last ``step``."""
        return list(self._last_lr)

    def step(self):
        """Move to the next epoch and set every group's learning rate (all groups or none)."""
        who = f"{type(self).__name__}.step"
        if len(self.optimizer.param_groups) != len(self.base_lrs):
            raise ConfigError(f"{who}: the optimizer has {len(self.optimizer.param_groups)} "
                              f"parameter groups, the scheduler was made for {len(self.base_lrs)}")
        if self.last_epoch >= 0:    # not the first step, which __init__ makes
            self._check_unchanged(who)
        epoch = self.last_epoch + 1
        rates = [self.lr_at(epoch, base, k) for k, base in enumerate(self.base_lrs)]
        for k, lr in enumerate(rates):
            if not _number(lr) or not np.isfinite(lr) or lr < 0:
                raise ConfigError(f"{who}: the learning rate of group {k} at epoch {epoch} would "
                                  f"be {lr!r}; it must be a finite number >= 0")
        for group, lr in zip(self.optimizer.param_groups, rates):
            group["lr"] = float(lr)
        self.last_epoch = epoch
        self._last_lr = [float(lr) for lr in rates]

    def _check_unchanged(self, who):
        """Refuse a step when a group's rate is no longer the one this scheduler set: the closed
        form would overwrite what changed it (ReduceLROnPlateau's reduction, another scheduler's
        rate, a hand change) without a word, where torch's chainable forms scale it."""
        for k, (group, mine) in enumerate(zip(self.optimizer.param_groups, self._last_lr)):
            if group["lr"] != mine:
                raise ConfigError(
                    f"{who}: the learning rate of group {k} is {group['lr']!r}, but this scheduler "
                    f"set {mine!r} at epoch {self.last_epoch}: something else changed it since "
                    "(another scheduler, a ReduceLROnPlateau, an optimizer's load_state_dict "
                    "without the scheduler's, or a hand change), and this schedule's closed form "
                    "would overwrite that change without a word; use one schedule per optimizer (a "
                    "LambdaLR can combine several), or make the scheduler after the change (it "
                    "starts from the rates it finds)")

    settings = ()   # the names of the numeric settings a state_dict records and checks

    def state_dict(self):
        """``{"last_epoch", "base_lrs"}`` as arrays (the optimizer's own state holds its lr),
        ``"scheduler"`` (the class name's UTF-8 bytes, as an optimizer's ``"optimizer"``) and
        each setting as ``"setting.<name>"``."""
        out = {"last_epoch": np.array(self.last_epoch), "base_lrs": np.array(self.base_lrs),
               "scheduler": name_bytes(type(self).__name__)}
        out.update({f"setting.{k}": np.array(getattr(self, k)) for k in self.settings})
        return out

    def _check_kind(self, who, state):
        """Refuse another scheduler's state, or one with other settings (a state saved
        without these entries is taken as before)."""
        _check_kind(who, state, type(self).__name__)
        for k in self.settings:
            if f"setting.{k}" in state:
                try:
                    saved = np.asarray(state[f"setting.{k}"])
                except (ValueError, TypeError):     # a ragged list: no array
                    saved = np.asarray(None)
                if saved.shape != () or saved.dtype.kind not in "iuf" or float(saved) != getattr(self, k):
                    raise CheckpointError(f"{who}: the state was saved with {k}={saved.tolist()!r}, "
                                          f"this scheduler has {k}={getattr(self, k)!r}")

    def load_state_dict(self, state):
        """Restore ``state_dict()`` and set every group's rate of that epoch (so the resumed
        rates do not depend on whether the optimizer's state was loaded before this scheduler
        was made); a mismatch raises CheckpointError and changes nothing."""
        names = ("last_epoch", "base_lrs")
        if isinstance(state, Mapping) and "scheduler" in state:
            # the kind is checked first, so another scheduler's settings are named as such
            self._check_kind(f"{type(self).__name__}.load_state_dict", state)
            names += ("scheduler",) + tuple(f"setting.{k}" for k in self.settings)
        entries = _Entries(f"{type(self).__name__}.load_state_dict", state, names,
                           self._optional if "scheduler" in names else ())
        self._check_kind(entries.who, state)
        epoch = entries.array("last_epoch", (), "iu")
        bases = entries.array("base_lrs", (len(self.base_lrs),), "f")
        if epoch < 0 or not np.all(np.isfinite(bases)) or np.any(bases < 0):
            raise CheckpointError(f"{entries.who}: last_epoch must be >= 0 and base_lrs finite "
                                  f"and >= 0, got {int(epoch)} and {bases.tolist()}")
        if len(self.optimizer.param_groups) != len(self.base_lrs):
            raise CheckpointError(f"{entries.who}: the optimizer has {len(self.optimizer.param_groups)} "
                                  f"parameter groups, the scheduler was made for {len(self.base_lrs)}")
        rates = [self.lr_at(int(epoch), base, k) for k, base in enumerate(bases.tolist())]
        for k, lr in enumerate(rates):
            if not _number(lr) or not np.isfinite(lr) or lr < 0:
                raise CheckpointError(f"{entries.who}: the learning rate of group {k} at epoch "
                                      f"{int(epoch)} would be {lr!r}; it must be a finite number >= 0")
        self._check_loaded(entries, int(epoch))
        self.last_epoch = int(epoch)
        self.base_lrs = bases.tolist()
        for group, lr in zip(self.optimizer.param_groups, rates):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in rates]

    _optional = ()   # entries a state may lack (saved before they were recorded)

    def _check_loaded(self, entries, epoch):
        """Further checks of a state about to be loaded at ``epoch`` (raise CheckpointError)."""

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    """lr = base · gamma^⌊epoch / step_size⌋: the rate falls by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _count("StepLR", "step_size", step_size, 1)
        self.gamma = _finite("StepLR", "gamma", gamma)
        self.settings = ("step_size", "gamma")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch, base, k):
        return base * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base − eta_min) · (1 + cos(π · epoch / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):   # noqa: N803 - torch's name
        self.T_max = _count("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _finite("CosineAnnealingLR", "eta_min", eta_min)
        self.settings = ("T_max", "eta_min")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch, base, k):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """lr = base · lr_lambda(epoch); ``lr_lambda`` a function of the epoch, or one per group.

    A function cannot be saved or compared, so the state records what it can check: the
    kind (``"scheduler"``) and each group's ``lr_lambda(last_epoch)`` (``"lr_lambda"``), and
    ``load_state_dict`` refuses a scheduler whose functions give other values at that epoch
    (another warmup, say).  Functions that agree at that epoch and differ elsewhere are not
    noticed: give the resumed scheduler the functions of the saved one.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = len(_optimizer("LambdaLR", optimizer).param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(lambdas) != groups or not all(callable(f) for f in lambdas):
            raise ConfigError(f"LambdaLR: lr_lambda must be a function of the epoch or a list of "
                              f"{groups} of them (one per parameter group), got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch, base, k):
        factor = self.lr_lambdas[k](epoch)
        if isinstance(factor, np.ndarray) and factor.shape == ():    # np.minimum(1.0, ...) of arrays
            factor = factor[()]
        if not _number(factor):     # base * None or * "x" would be a bare TypeError
            raise ConfigError(f"LambdaLR: lr_lambda of group {k} gave {factor!r} at epoch "
                              f"{epoch}; it must return a number")
        self._computed[k] = float(factor)
        return base * factor

    def step(self):
        self._computed = {}
        super().step()
        self._factors = [self._computed[k] for k in range(len(self.lr_lambdas))]

    def load_state_dict(self, state):
        self._computed = {}
        super().load_state_dict(state)
        self._factors = [self._computed[k] for k in range(len(self.lr_lambdas))]

    _optional = ("lr_lambda",)      # absent from a state saved before it was recorded

    def state_dict(self):
        """As :meth:`LRScheduler.state_dict`, and ``"lr_lambda"``: each group's function's value
        at ``last_epoch``, as ``step`` (or ``load_state_dict``) computed it (the functions are
        not called again)."""
        out = super().state_dict()
        if self._factors is None:       # unpickled from before they were recorded: once, now
            self._computed = {}
            for k in range(len(self.lr_lambdas)):
                self.lr_at(self.last_epoch, 1.0, k)
            self._factors = [self._computed[k] for k in range(len(self.lr_lambdas))]
        out["lr_lambda"] = np.array(self._factors)
        return out

    def __setstate__(self, state):
        # a LambdaLR pickled before step recorded its functions' values has neither
        # _computed nor _factors: state_dict computes them at its first call
        self.__dict__.update(state)
        self.__dict__.setdefault("_computed", {})
        self.__dict__.setdefault("_factors", None)

    def _check_loaded(self, entries, epoch):
        if "lr_lambda" not in entries.state:
            return
        saved = entries.array("lr_lambda", (len(self.lr_lambdas),), "f").tolist()
        for k, was in enumerate(saved):
            now = self._computed[k]      # lr_at's call at this epoch, made just before
            if now != was:
                raise CheckpointError(f"{entries.who}: the state was saved with lr_lambda of group "
                                      f"{k} giving {was!r} at epoch {epoch}, this scheduler's gives "
                                      f"{now!r} (another schedule); give it the saved functions")


class ReduceLROnPlateau:
    """Multiply every group's lr by ``factor`` once the metric given to ``step(metric)`` has not
    improved for more than ``patience`` epochs, as PyTorch's.

    mode : "min" (a loss) or "max" (an accuracy); threshold, threshold_mode ("rel" or "abs"):
    what counts as an improvement; cooldown : epochs to wait after a reduction; min_lr : a
    floor (one number or one per group); eps : a reduction smaller than this is skipped.
    A non-finite metric is refused (PyTorch counts it as no improvement).
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        who = "ReduceLROnPlateau"
        self.optimizer = _optimizer(who, optimizer)
        if mode not in ("min", "max"):
            raise ConfigError(f"{who}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ConfigError(f"{who}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not _number(factor) or not 0 <= factor < 1:
            raise ConfigError(f"{who}: factor must be in [0, 1), got {factor!r}")
        groups = len(optimizer.param_groups)
        floors = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(floors) != groups:
            raise ConfigError(f"{who}: min_lr must be one number or {groups} (one per parameter "
                              f"group), got {min_lr!r}")
        self.min_lrs = [_finite(who, "min_lr", f) for f in floors]
        self.mode, self.threshold_mode, self.factor = mode, threshold_mode, float(factor)
        self.patience = _count(who, "patience", patience, 0)
        self.cooldown = _count(who, "cooldown", cooldown, 0)
        self.threshold = _finite(who, "threshold", threshold)
        self.eps = _finite(who, "eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]

    def is_better(self, value):
        """Whether ``value`` improves on the best so far by more than the threshold."""
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bar
        bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bar

    def step(self, metric):
        """Record this epoch's ``metric``; reduce the learning rates after too many bad epochs."""
        who = "ReduceLROnPlateau.step"
        try:
            value = float(metric)
        except (TypeError, ValueError):
            raise ConfigError(f"{who}: the metric must be a number, got {metric!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{who}: the metric is {value}; a schedule cannot follow a diverged run")
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            raise ConfigError(f"{who}: the optimizer has {len(self.optimizer.param_groups)} "
                              f"parameter groups, the scheduler was made for {len(self.min_lrs)}")
        self.last_epoch += 1
        if self.is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(group["lr"] * self.factor, floor)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    _STATE = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")
    _NUMBERS = ("factor", "patience", "threshold", "cooldown", "eps")    # settings, as numbers
    _NAMES = ("mode", "threshold_mode")                                    # settings, as text

    def _settings(self):
        """name -> array of every setting the state records ("setting.<name>")."""
        out = {f"setting.{k}": np.array(getattr(self, k)) for k in self._NUMBERS}
        out.update({f"setting.{k}": name_bytes(getattr(self, k)) for k in self._NAMES})
        out["setting.min_lrs"] = np.array(self.min_lrs)
        return out

    def state_dict(self):
        """best, num_bad_epochs, cooldown_counter and last_epoch as arrays, ``"scheduler"`` (the
        class name's UTF-8 bytes) and every setting as ``"setting.<name>"`` (``mode`` and
        ``threshold_mode`` as UTF-8 bytes, ``min_lrs`` one per group)."""
        out = {"best": np.array(self.best), "num_bad_epochs": np.array(self.num_bad_epochs),
               "cooldown_counter": np.array(self.cooldown_counter),
               "last_epoch": np.array(self.last_epoch),
               "scheduler": name_bytes("ReduceLROnPlateau")}
        out.update(self._settings())
        return out

    def load_state_dict(self, state):
        """Restore ``state_dict()``; a mismatch raises CheckpointError and changes nothing.

        Another scheduler's state is refused, and so is one saved with other settings (a
        ``mode="min"`` state's best loss read as the best of ``mode="max"``, or its bad epochs
        counted against another patience, would reduce the rates at other epochs); a state
        saved before the settings were recorded is loaded on its counts alone."""
        who = "ReduceLROnPlateau.load_state_dict"
        names = self._STATE
        if isinstance(state, Mapping) and "scheduler" in state:
            _check_kind(who, state, "ReduceLROnPlateau")     # first: another kind named as such
            names += ("scheduler",) + tuple(self._settings())
        entries = _Entries(who, state, names)
        mine = self._settings()
        for key in names[len(self._STATE) + 1:]:
            setting = key.split(".", 1)[1]
            if setting in self._NAMES:
                value = entries.array(key, (NAME_BYTES,), "u")
                same = np.array_equal(value, mine[key])
                saved = bytes(value.astype(np.uint8)).rstrip(b"\0").decode("utf-8", "replace")
            else:
                value = entries.array(key, mine[key].shape, "iuf")
                same = np.array_equal(value.astype(np.float64), mine[key].astype(np.float64))
                saved = value.tolist()
            if not same:
                own = getattr(self, "min_lrs" if setting == "min_lrs" else setting)
                raise CheckpointError(f"{who}: the state was saved with {setting}={saved!r}, this "
                                      f"scheduler has {setting}={own!r}")
        best = entries.array("best", (), "iuf")
        counts = [entries.array(name, (), "iu") for name in self._STATE[1:]]
        if np.isnan(best) or any(c < 0 for c in counts):
            raise CheckpointError(f"{entries.who}: best must be a number and the counts >= 0, got "
                                  f"{float(best)} and {[int(c) for c in counts]}")
        self.best = float(best)
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = (int(c) for c in counts)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def __repr__(self):
        return (f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience}, "
                f"best={self.best}, lr={self._last_lr})")

