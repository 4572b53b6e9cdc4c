"""The core of the engine: tensors as DAG nodes, the one function that makes
every node, the per-thread modes (no-grad, scopes, anomaly detection), the
version counter of in-place changes, and reverse-mode backprop over the DAG in
iterative topological order -- on numpy arrays, or with ``create_graph`` on
Tensors built from engine ops.

A node holds its parents and how to take its gradient: for the built-in ops a
shared :class:`Rule` (one function per input, or one for all of them, written
once, that runs on numpy arrays for the fast path and on Tensors for
``create_graph``) with the output and input arrays it saved in the node's
``_ctx`` slot (the second input of a two-input rule that does not read the output in
``_ctx2``) and its keyword arguments in ``_kwargs``; for ops made with :func:`apply`
from a user's forward, one vector-Jacobian product per parent and the forward
for :func:`defvjp`'s rule.  Nothing a node holds refers to the node itself, so
a graph has no reference cycles: dropping the last reference to its output
frees it by reference counting alone.
"""

import contextvars
import copy
import functools
import hashlib
import inspect
import itertools
import math
import os
import sys
import threading
import traceback
import types
import weakref

import numpy as np

from .errors import (AllocationError, AnomalyError, BackwardError, BadIndexError, ConfigError, DomainError,
                     DTypeError, GraphFreedError, InPlaceError, OutOfRangeError, ShapeError,
                     StaleGraphError, TinygraphError)


class _Mode:
    """The engine's switches, read on every node creation: one object per thread."""

    __slots__ = ("grad_enabled", "scope", "anomaly", "thread")

    def __init__(self, grad_enabled=True, scope=None, anomaly=False, thread=None):
        self.grad_enabled = grad_enabled
        self.scope = scope
        self.anomaly = anomaly
        self.thread = thread


# A thread reads the modes of its own context (a new thread starts with the defaults) and
# changes them only in a _Mode it owns, made on its first change.  So the context variable is
# set once per thread (a ContextVar read costs a tenth of a threading.local attribute, and
# every node reads it).
_modes = contextvars.ContextVar("tinygraph_modes", default=_Mode())
_current = _modes.get


_thread_id = threading.get_ident


def _own_mode():
    """This thread's modes, to change (a thread that was handed another's context, e.g. by
    ``copy_context().run``, gets its own copy on its first change)."""
    mode = _modes.get()
    ident = _thread_id()
    if mode.thread != ident:
        mode = _Mode(mode.grad_enabled, mode.scope, mode.anomaly, ident)
        _modes.set(mode)
    return mode


_own_mode()   # the importing thread's, made now rather than inside a user's gc.freeze()


_exits = threading.Lock()     # an exit's search for its own entry and its pop, as one step


def _exit_entry(entered, reset):
    """Undo the latest of ``entered`` (a list of (mode, what undoes it)) made by this thread:
    ``reset(mode, undo)``.  A mode switch or scope object may be entered again while active, and
    by several threads, so the latest entry is not always this thread's: the entry is found by
    its mode, not by its place, under a lock (another thread's entry appended, or its exit
    popping one, between the search and the pop would otherwise make this exit undo the other
    thread's entry and leave its own in force)."""
    mode = _current()
    with _exits:
        if entered and entered[-1][0] is mode:      # the usual case: this thread's latest
            mode, undo = entered.pop()
        else:
            i = len(entered) - 1
            while i >= 0 and entered[i][0] is not mode:
                i -= 1
            if i < 0:           # this thread's mode object was replaced since its entry
                ident = _thread_id()
                i = len(entered) - 1
                while i >= 0 and entered[i][0].thread != ident:
                    i -= 1
            if i < 0:
                return
            mode, undo = entered.pop(i)
    reset(mode, undo)


class _Switch:
    """A mode switch of this thread (``no_grad``, ``enable_grad``, ``detect_anomaly``), as a
    ``with`` block or a decorator, as PyTorch's.

    One object may be entered again while it is active (nested, or reused), and by several
    threads: each entry remembers its own thread's previous value.  Decorating a generator
    function switches the mode on for each step of the generator only (its body runs inside
    the mode, the caller's code between two ``next`` calls does not), so neither half leaks into
    the other; an ``async def`` function is refused (its body would run outside the mode).
    ``@tg.no_grad`` without parentheses decorates as ``@tg.no_grad()`` does.
    """

    __slots__ = ("_entered",)
    _name = None

    def __new__(cls, func=None):
        self = super().__new__(cls)
        self._entered = []
        return self if func is None else self(func)

    def _set(self, mode):   # the new value in ``mode``; returns what undoes it
        raise NotImplementedError

    def _reset(self, mode, prev):
        raise NotImplementedError

    def __enter__(self):
        mode = _own_mode()
        self._entered.append((mode, self._set(mode)))
        return None

    def __exit__(self, *exc):
        _exit_entry(self._entered, self._reset)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"tg.{self._name}: decorates a function, got {type(func).__name__}; "
                            f"use `with tg.{self._name}():` around code")
        cls = type(self)
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(f"tg.{self._name}: cannot decorate the async function "
                            f"{getattr(func, '__qualname__', func)!r} (its body runs after the call "
                            f"returns, outside the mode); write `with tg.{self._name}():` inside it")
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def generator(*args, **kwargs):
                with cls():
                    gen = func(*args, **kwargs)
                    try:
                        value = next(gen)
                    except StopIteration as stop:
                        return stop.value
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        with cls():
                            gen.close()
                        raise
                    except BaseException as e:     # thrown in: into the body, inside the mode
                        with cls():
                            try:
                                value = gen.throw(e)
                            except StopIteration as stop:
                                return stop.value
                        continue
                    with cls():
                        try:
                            value = gen.send(sent)
                        except StopIteration as stop:
                            return stop.value
            return generator

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with cls():
                return func(*args, **kwargs)
        return wrapper

    def __repr__(self):
        return f"tg.{self._name}()"


class _GradSwitch(_Switch):
    """A switch of graph building: ``grad_enabled`` set to ``_on`` in the block."""

    __slots__ = ()
    _on = None

    def _set(self, mode):
        prev, mode.grad_enabled = mode.grad_enabled, self._on
        return prev

    def _reset(self, mode, prev):
        mode.grad_enabled = prev


class no_grad(_GradSwitch):
    """Within the block, ops build no graph: results are leaves that do not require grad.

    Per thread: another thread keeps building graphs.  Also a decorator (see :class:`_Switch`).
    """

    __slots__ = ()
    _name = "no_grad"
    _on = False


class enable_grad(_GradSwitch):
    """Re-enable graph building inside a ``no_grad`` block (this thread only).  Also a
    decorator."""

    __slots__ = ()
    _name = "enable_grad"
    _on = True


def is_grad_enabled():
    """True unless this thread is inside ``no_grad`` (and not in an ``enable_grad`` within it)."""
    return _current().grad_enabled


class scope:
    """Tag every node made in the block with ``label``; scopes nest as ``"outer/inner"``.

    ``with tg.scope("t=3") as label:`` binds the full scope string.  (A small class rather
    than a generator: an unroll enters one scope per time step.)  Per thread; one object may
    be entered again while active (nested, reused, or by several threads): each exit restores
    the label its own entry found.
    """

    __slots__ = ("label", "_mode", "_prev", "_more")

    def __init__(self, label):
        self.label = str(label)
        self._mode = None       # the one entry's mode and previous label (the usual case)
        self._more = None       # while entered more than once: every entry, (mode, previous)

    def __enter__(self):
        mode = _current()
        if mode.thread != _thread_id():
            mode = _own_mode()
        prev = mode.scope
        with _exits:    # two threads' first entries at once: each must see the other's record
            if self._mode is None and self._more is None:
                self._mode, self._prev = mode, prev
            else:
                if self._more is None:
                    self._more = [(self._mode, self._prev)]
                    self._mode = None
                self._more.append((mode, prev))
        mode.scope = full = self.label if prev is None else f"{prev}/{self.label}"
        return full

    def __exit__(self, *exc):
        with _exits:
            more = self._more
            if more is None:
                mode, prev, self._mode = self._mode, self._prev, None
        if more is None:
            if mode is not None:
                mode.scope = prev
            return False
        _exit_entry(more, _reset_scope)
        with _exits:
            if self._more is more and not more:
                self._more = None
        return False


def _reset_scope(mode, prev):
    mode.scope = prev


def current_scope():
    """The full label of the innermost active scope, or None."""
    return _current().scope


class detect_anomaly(_Switch):
    """Check every forward value and every gradient for NaN and Inf (this thread only).

    The first one found raises :class:`AnomalyError` naming the op, its scope
    (the time step of an unroll) and the line of user code that created the node.
    Also a decorator (see :class:`_Switch`).

    A node made inside also keeps a digest of its output's and inputs' arrays; backward through
    it (in the mode or not) raises AnomalyError naming the op and the tensor if one was changed
    in place since without a version bump -- a write through ``.data``, ``.numpy()``,
    ``np.asarray(t)`` or ``np.copyto``, which outside this mode gives a gradient from the new
    values without a word (as PyTorch's ``.data``) -- or, for ``create_graph``, if an input's
    ``.data`` was replaced.
    """

    __slots__ = ()
    _name = "detect_anomaly"

    def _set(self, mode):
        errstate = np.errstate(all="ignore")
        errstate.__enter__()
        prev, mode.anomaly = mode.anomaly, True
        return prev, errstate

    def _reset(self, mode, prev):
        mode.anomaly, errstate = prev
        errstate.__exit__(None, None, None)


def is_anomaly_enabled():
    """True inside ``detect_anomaly``."""
    return _current().anomaly


def _where(scope_label):
    return f" in scope '{scope_label}'" if scope_label else ""


def _creation_site():
    """The innermost stack frame outside the tinygraph package, as 'file:line in func'.

    When that frame is inside another package (e.g. a built-in design of ``rnn``), the
    innermost frame outside that package follows as "called from ...": the user's line.
    """
    frames = [frame for frame in reversed(traceback.extract_stack()[:-2])
              if "/tinygraph/" not in frame.filename.replace("\\", "/")]
    if not frames:
        return "unknown"
    site = f"{frames[0].filename}:{frames[0].lineno} in {frames[0].name}"
    package = _package_folder(frames[0].filename)
    if package is not None:
        for frame in frames[1:]:
            if not frame.filename.startswith(package):
                return f"{site}, called from {frame.filename}:{frame.lineno} in {frame.name}"
    return site


@functools.lru_cache(maxsize=None)
def _package_folder(filename):
    """The top-level package folder holding ``filename`` (with a trailing separator), or None."""
    folder, top = os.path.dirname(os.path.abspath(filename)), None
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        top, folder = folder, os.path.dirname(folder)
    return None if top is None else top + os.sep


_PLAIN = frozenset((int, float, bool, np.float64, np.float32, np.int64, np.int32, np.bool_))


def _tensors_in(x):
    """The Tensors inside the list, tuple or object array ``x`` (at any depth), where numpy
    would turn each into its data (``__array__``), silently cutting it from the graph.
    Iterative (no recursion); a level of plain numbers is passed over at C speed."""
    todo = [x]
    while todo:
        item = todo.pop()
        if isinstance(item, Tensor):
            yield item
        elif isinstance(item, (list, tuple)):
            if not _PLAIN.issuperset(map(type, item)):
                todo.extend(item)
        elif type(item) is np.ndarray and item.dtype == object:
            todo.extend(item.ravel().tolist())


def _holds_tensor(x):
    """True if a Tensor is inside the list, tuple or object array ``x``: the engine never hands
    such a container to numpy."""
    return next(_tensors_in(x), None) is not None


def _needs_grad(x):
    """True if a Tensor that requires grad is inside the list, tuple or object array ``x``."""
    return any(t._rg for t in _tensors_in(x))


def _stacked(x):
    """A list (tuple, object array) holding Tensors, as one node: the entries stacked with
    ``tg.stack``, level by level, numbers as constants -- what numpy makes of a nested list,
    with every Tensor's gradient kept.  Entries whose shapes differ raise ShapeError."""
    from .ops import stack   # ops builds on this module
    if not _is_container(x) or not _holds_tensor(x):
        return x
    if isinstance(x, np.ndarray):
        x = x.tolist()
    return stack([_stacked(item) for item in x])


_converted = itertools.count()
"""Counts numpy's conversions of a Tensor into its data (``Tensor.__array__`` takes a number):
a constructor that sees numbers taken while it converts a list (its own two ``next`` calls
more than one apart) checks the list for a Tensor that requires grad.  ``next`` on the count
is one call into C, so no thread's conversion is lost, as a ``+= 1`` of a shared value, read
and written back, could lose one between two threads (and the refusal with it); another
thread's conversion at the same moment only makes the check run, and it looks at the list."""


def _refuse_grad_inside(data):
    if _current().grad_enabled and _needs_grad(data):
        raise DTypeError(
            "tensor: the data holds a Tensor that requires grad, and a new leaf would cut it from "
            "the graph (its gradient would be lost); use tg.stack([...]) (or an op such as "
            "t + [...]) to keep the graph, or pass t.detach() / t.data for its values alone")


_NUMBER_TYPES = (float, int, bool)


def _as_array(data, dtype=None):
    listed = None
    if isinstance(data, Tensor):
        if _tapes:      # a copy of its value now: a constant the next step would make anew
            _value_read(why="the step makes a new tensor of a tensor's value (tg.tensor(t))")
        data = data._data
    elif type(data) is np.ndarray:
        if data.dtype == object:
            _refuse_grad_inside(data)
    elif type(data) is list or type(data) is tuple or (
            type(data) not in _NUMBER_TYPES and isinstance(data, (list, tuple))):
        listed = next(_converted)      # numpy may meet a Tensor inside: see _converted
    try:
        if dtype is not None and narrow_float(dtype):
            with np.errstate(over="ignore"):    # a finite value made inf is refused below
                arr = np.array(data, dtype=dtype)
        else:       # (no np.errstate on every tensor: setting numpy's context variable frees
            arr = np.array(data, dtype=dtype)      # a program's gc.freeze()-frozen contexts)
    except OverflowError as e:
        raise OutOfRangeError(f"tensor: {e} (dtype={np.dtype(dtype)} was asked for)") from None
    except (ValueError, TypeError) as e:
        if _is_container(data):
            _refuse_grad_inside(data)
        raise DTypeError(f"tensor: cannot make an array of {type(data).__name__}: {e}") from None
    if listed is not None and next(_converted) != listed + 1:   # numpy met a Tensor inside
        _refuse_grad_inside(data)
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"tensor: unsupported dtype {arr.dtype} (need bool, integer or float data)")
    if dtype is not None:
        refuse_overflow("tensor", data, arr)
    return arr


def narrow_float(dtype):
    """Whether ``dtype`` is a float dtype narrower than float64 (float16, float32), one a cast
    to which may overflow: only such a cast runs under a local ``np.errstate(over="ignore")``
    (the overflow is refused by :func:`refuse_overflow` instead of warned of), the others
    without one (see :func:`_as_array`).  A dtype numpy does not know is False (numpy names it)."""
    try:
        kind = np.dtype(dtype)
    except (TypeError, ValueError):
        return False
    return kind.kind == "f" and kind.itemsize < 8


def refuse_overflow(who, data, arr, at=True):
    """OutOfRangeError if casting ``data`` to ``arr``'s float dtype made a finite value infinite
    (1e40 as float32, 7e4 as float16), as an integer beyond its dtype is refused: the array
    would hold inf where the caller gave a number.  ``at``: name the value's index."""
    if arr.dtype.kind != "f" or not np.isinf(arr).any():
        return
    source = np.asarray(data._data if isinstance(data, Tensor) else data)
    if source.dtype.kind not in "biuf":
        return
    grown = np.isinf(arr) & np.isfinite(source)
    if grown.any():
        index = tuple(int(i) for i in np.argwhere(grown)[0]) if grown.ndim else ()
        value = source[index] if source.ndim else source[()]
        raise OutOfRangeError(f"{who}: {value.item()!r}{f' at {index}' if index and at else ''} is beyond "
                              f"the range of {arr.dtype} (largest {np.finfo(arr.dtype).max:.4g}): "
                              "it would become inf; use a wider dtype")


class Tensor:
    """A node of the DAG: an array, and how it was computed.

    Attributes
    ----------
    data : np.ndarray
    grad : np.ndarray or None
        Filled by ``backward`` on leaves that require grad (and on tensors
        marked with ``retain_grad``).
    op : str or None
        Name of the op that made this node; None for a leaf.
    parents : tuple of Tensor
        The op's tensor inputs.
    scope : str or None
        The ``tg.scope`` label the node was made under.
    """

    # the parents live in slots, not in a tuple the cycle collector would track beside the
    # node: one tracked object per node instead of two (see the ``parents`` property)
    __slots__ = ("_data", "_grad", "_rg", "name", "op", "_a", "_b", "_many", "scope",
                 "_vjps", "_g", "_retain", "_site", "_version", "_shared", "_ctx", "_ctx2", "_kwargs",
                 "__weakref__")
    __hash__ = object.__hash__  # == is elementwise, identity is the hash

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        if not isinstance(requires_grad, (bool, np.bool_)):   # torch.tensor(data, np.float32)'s
            raise ConfigError(f"tensor{_label(name)}: requires_grad must be True or False, got "
                              f"{requires_grad!r} (PyTorch's torch.tensor(data, dtype) takes the "
                              f"dtype second: write dtype=)")
        arr = _as_array(data, dtype)
        if requires_grad and arr.dtype.kind != "f":
            raise DTypeError(f"tensor{_label(name)}: only float tensors can require grad, "
                             f"got dtype {arr.dtype}")
        mode = _current()
        _init_leaf(self, arr, mode)
        self._rg = bool(requires_grad)
        self.name = name
        if mode.anomaly:
            self._site = _creation_site()

    @property
    def data(self):
        """The array itself, not a copy (the engine's own code reads the slot ``_data``: a read
        through ``.data`` inside a step that ``tinygraph.tape`` records is a value read, as
        ``item()`` is, so the step is never replayed on a branch it cannot see).

        A write into it (``t.data[...] = 0``, as into ``t.numpy()`` or ``np.asarray(t)``, the
        same array) bumps no version, as PyTorch's ``.data``: a graph that saved the array
        back-propagates from the new values without a word.  Change a tensor in place with its
        operators (``t += x`` under ``tg.no_grad()``), or call ``tg.bump_version(t)`` after the
        write, so such a graph refuses backward; :class:`detect_anomaly` catches the write."""
        if _tapes:
            _value_read(why="the step reads a tensor's .data")
        return self._data

    @data.setter
    def data(self, value):
        """Replace the array (as PyTorch's ``p.data = ...``: no version bump, no copy of an
        ndarray or of a Tensor's array); anything else becomes an array as ``tensor`` makes
        one, and a tensor that requires grad keeps float data, so its gradient is never cast
        to integers.  A graph built before goes on back-propagating from the arrays its
        forward saved; ``backward(create_graph=True)`` and ``grad(..., create_graph=True)``,
        whose rules would read the new array, refuse it (StaleGraphError)."""
        if type(value) is not np.ndarray:
            value = value._data if isinstance(value, Tensor) else _as_array(value)
        if value.dtype.kind not in "biuf":
            raise DTypeError(f"tensor{_label(self.name)}.data: unsupported dtype {value.dtype} "
                             "(need bool, integer or float data)")
        if self._rg and value.dtype.kind != "f":
            raise DTypeError(f"tensor{_label(self.name)}.data: the tensor requires grad, so its "
                             f"data must be a float array, got dtype {value.dtype}")
        if _tapes:
            _value_read(why="the step writes a tensor's .data")
        if value is not self._data:
            _note_replaced(self)
        self._data = value

    @property
    def parents(self):
        """The op's tensor inputs, a tuple (empty for a leaf)."""
        a = self._a
        if a is None:
            return self._many
        b = self._b
        return (a,) if b is None else (a, b)

    # --- array-like facts ---------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        return self._data.size

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):   # rows as nodes (each with its gradient), as iterating an array
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor; use .item() for its value")
        return (self[i] for i in range(len(self._data)))

    def __bool__(self):   # as numpy: the value of a one-element tensor, ambiguous otherwise
        if self._data.size != 1:
            raise ShapeError(f"bool: the truth value of a tensor of shape {self.shape} is "
                             "ambiguous; compare .item() or use .data.any() / .data.all()")
        if _tapes:
            _value_read()
        return bool(self._data.item())

    def _scalar(self, who):
        if self._data.size != 1:
            raise ShapeError(f"{who}: only a one-element tensor converts to a Python scalar, "
                             f"got shape {self.shape}")
        if _tapes:
            _value_read()
        return self._data.item()

    def __float__(self):
        return float(self._scalar("float"))

    def __index__(self):   # range(t), lst[t], arr[t] for a 0-d integer tensor (numpy's rule)
        if self._data.ndim or self._data.dtype.kind not in "iu":
            raise TypeError(f"only a 0-d integer tensor converts to an index (as a 0-d numpy "
                            f"array), got shape {self.shape}, dtype {self.dtype}; use int(t) for "
                            "a one-element tensor")
        return int(self._scalar("index"))

    def numel(self):
        """The number of entries (PyTorch's name for ``.size``)."""
        return self._data.size

    def dim(self):
        """The number of axes (PyTorch's name for ``.ndim``)."""
        return self._data.ndim

    def tolist(self):
        """The values as nested Python lists (a Python scalar for a 0-d tensor), as numpy's."""
        if _tapes:
            _value_read()
        return self._data.tolist()

    def __int__(self):
        return int(self._scalar("int"))

    def __format__(self, spec):
        if not spec:
            return str(self)
        return format(self._scalar(f"format '{spec}'"), spec)

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)`` is ``t.data`` (no gradient flows into a plain array; a write into it
        bumps no version, see ``data``); as numpy 2's
        protocol asks, ``copy=False`` with another dtype raises (a ValueError) rather than
        return a copy the caller was told is the tensor's memory."""
        next(_converted)
        if _tapes:
            _value_read()
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        if dtype is None or np.dtype(dtype) == self._data.dtype:
            return self._data
        if copy is False:
            raise ConfigError(f"np.asarray(tensor{_label(self.name)}, dtype={np.dtype(dtype)}, "
                              f"copy=False): the tensor holds {self._data.dtype} data, so it "
                              "cannot be read as another dtype without a copy; leave out "
                              "copy=False (or pass copy=None) to allow the copy")
        return self._data.astype(dtype)

    def numpy(self):
        """The array itself (``.data``), not a copy: see ``data`` on writing into it."""
        if _tapes:
            _value_read()
        return self._data

    def item(self):
        """The one entry as a Python number (a ShapeError naming the shape for more entries)."""
        return self._scalar("item")

    def __repr__(self):
        return _repr(self, "tensor", self._rg)

    def named(self, name):
        """Set ``name`` and return self (handy inside step functions: ``h = (...).named("h")``)."""
        self.name = name
        return self

    def __deepcopy__(self, memo):
        """A copy of a leaf (its array and slots deep-copied, as ``copy.deepcopy`` would).  A
        tensor made by an op is part of a graph, whose backward functions cannot be copied:
        a ConfigError naming the op says to copy ``t.detach()`` (torch refuses it too), where
        Python's own copy failed with "cannot pickle 'mappingproxy' object"."""
        if self.op is not None:
            raise ConfigError(f"copy.deepcopy: tensor{_label(self.name)} was made by op "
                              f"'{self.op}' (it is part of a graph) and cannot be copied; copy "
                              "t.detach() (its value, cut from the graph), or the leaves")
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for slot in _slot_names(cls):
            if hasattr(self, slot):
                object.__setattr__(new, slot, copy.deepcopy(getattr(self, slot), memo))
        if hasattr(self, "__dict__"):
            for key, value in vars(self).items():
                object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new

    def __copy__(self):
        """``copy.copy(t)``: for a leaf, a new leaf of the same class, name and
        ``requires_grad`` holding a copy of the array (and of ``.grad``), as ``copy.copy`` of a
        numpy array copies it; for a node made by an op, a twin of the node (its gradient flows
        to the same inputs) sharing its memory and its version counter.  (The slot-by-slot
        copy Python made before shared a leaf's memory but not its counter, so an in-place
        change through the copy left graphs that used the leaf silently stale.)"""
        if _tapes:
            _value_read(why="the step copies a tensor (copy.copy)")
        cls = type(self)
        new = cls.__new__(cls)
        for slot in _slot_names(cls):      # a subclass's own slots too, as copy.copy keeps them
            value = getattr(self, slot, _UNSET)
            if value is not _UNSET:
                object.__setattr__(new, slot, value)
        if hasattr(self, "__dict__"):      # and its own attributes
            new.__dict__.update(self.__dict__)
        if self.op is None:
            new._data = self._data.copy()
            new._grad = None if self._grad is None else np.array(self._grad, copy=True)
            new._version = _clock
            new._shared = None
        else:
            _share_version(new, self)
        return new

    def __setstate__(self, state):
        """Unpickling: ``state`` as Python's pickling of a slotted object gives it, (``__dict__``
        or None, slot name -> value).  A tensor pickled before ``requires_grad`` became a
        property (stop 35) holds its flag under the slot name ``requires_grad``, which is
        ``_rg`` now: setting the property there failed (AttributeError) before the flag it
        compares with was set."""
        attrs, slots = state if isinstance(state, tuple) else (state, None)
        for mapping in (attrs, slots):
            for key, value in (mapping or {}).items():
                object.__setattr__(self, "_rg" if key == "requires_grad" else key, value)

    def detach(self):
        """A new leaf sharing this tensor's data (and its version counter: an in-place change
        through either makes graphs that used the old values refuse backward), cut from the
        graph."""
        if _tapes:
            _value_read(why="the step detaches a tensor (detach(): its value as a constant)")
        t = Tensor.__new__(Tensor)
        _init_leaf(t, self._data, _current())
        t.name = self.name
        _share_version(t, self)
        return t

    @property
    def grad(self):
        """The gradient backward accumulated: None, or an array of this tensor's shape and dtype
        (a Tensor after ``backward(create_graph=True)``)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        """Set by hand (as PyTorch's ``p.grad = ...``): None, or an array or Tensor of this
        tensor's shape and dtype; anything else is refused here, where it was kept, so a
        float64 ``.grad`` of a float32 leaf stayed float64 through every backward."""
        if value is not None:
            arr = value._data if isinstance(value, Tensor) else value
            if not isinstance(arr, np.ndarray):
                raise DTypeError(f"tensor{_label(self.name)}.grad: expected an array (or Tensor) "
                                 f"of shape {self.shape} and dtype {self.dtype}, or None; got "
                                 f"{type(value).__name__}")
            if arr.dtype != self._data.dtype:
                raise DTypeError(f"tensor{_label(self.name)}.grad: the gradient must have the "
                                 f"tensor's dtype {self.dtype}, got {arr.dtype} (cast it, e.g. "
                                 f"g.astype(np.{self.dtype}))")
            if arr.shape != self._data.shape:
                raise ShapeError(f"tensor{_label(self.name)}.grad: the gradient must have the "
                                 f"tensor's shape {self.shape}, got {arr.shape}")
        self._grad = value

    @property
    def requires_grad(self):
        """Whether backward computes a gradient for this tensor: set on a leaf (as
        ``requires_grad_`` does, with its checks); a node made by an op requires grad when one of
        its inputs does, and its flag cannot be changed (use ``.detach()`` to cut the graph)."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, requires_grad):
        self._set_requires_grad(requires_grad, "requires_grad")

    def _set_requires_grad(self, requires_grad, who):
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise ConfigError(f"tensor{_label(self.name)}.{who}: expected True or False, "
                              f"got {requires_grad!r}")
        requires_grad = bool(requires_grad)
        if requires_grad == self._rg:
            return
        if self.op is not None:
            raise ConfigError(f"tensor{_label(self.name)}.{who}: only a leaf's flag can be "
                              f"changed; this tensor was made by {self.op} (use .detach())")
        if requires_grad and self._data.dtype.kind != "f":
            raise DTypeError(f"tensor{_label(self.name)}.{who}: only float tensors can "
                             f"require grad, got dtype {self._data.dtype}")
        self._rg = requires_grad

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` of this leaf in place and return it, as PyTorch's (e.g.
        ``p.requires_grad_(False)`` freezes a parameter)."""
        self._set_requires_grad(requires_grad, "requires_grad_")
        return self

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        why = _stand_in_why(self)
        if why is not None:
            raise BackwardError(f"retain_grad: {why}")
        self._retain = True
        if _tapes:     # a replayed step makes no tensor to keep it in
            _value_read(why="the step retains a tensor's gradient (retain_grad)")
        return self

    def zero_grad(self, set_to_none=True):
        """Forget the gradient (``set_to_none=False``: an array of zeros instead, as PyTorch's)."""
        clear_grads("zero_grad", [self], set_to_none)

    def backward(self, grad=None, retain_graph=None, create_graph=False, *, gradient=None):
        """Back-propagate from this tensor, accumulating into the ``.grad`` of leaves.

        Parameters
        ----------
        grad : array_like or Tensor, optional
            d(objective)/d(self), same shape as self; required unless self has one element.
            ``gradient=`` (PyTorch's name) is an alias.
        retain_graph : bool, optional
            Keep the saved buffers so a second backward can run through this graph
            (default: False, or True with ``create_graph``).
        create_graph : bool
            Build the backward pass itself from engine ops: ``.grad`` is then a Tensor that
            can be differentiated again (Hessian-vector products, gradient penalties).

        All or nothing: every existing ``.grad`` is checked first (a float array of its
        tensor's shape), the gradients are added only once all are computed, and the graph is
        freed only then -- a backward that raises changes nothing and can be run again.
        """
        if gradient is not None:
            if grad is not None:
                raise ConfigError("backward: give grad= or its alias gradient=, not both")
            grad = gradient
        retain = create_graph if retain_graph is None else retain_graph
        if create_graph:
            _backprop_graph(self, grad, retain, targets=None)
        else:
            _backprop(self, grad, retain, targets=None)

    # --- in-place updates (PyTorch's ``p -= lr * p.grad`` under no_grad) ----------------
    def _in_place(self, ufunc, symbol, other, out_of_place=None):
        if not isinstance(other, Tensor) and _is_container(other) and _holds_tensor(other):
            other = _stacked(other)   # a list holding tensors is their stack (a node under grad)
        if _current().grad_enabled:
            if self._rg:
                raise InPlaceError(
                    f"in-place {symbol}: {_what(self)} requires grad, and changing it in place "
                    f"would make its gradient wrong; update parameters inside `with tg.no_grad():` "
                    f"or write `x = {out_of_place or f'x {symbol[:-1]} ...'}`")
            if isinstance(other, Tensor) and other._rg:
                raise InPlaceError(
                    f"in-place {symbol}: the right-hand side requires grad but {_what(self)} does "
                    f"not, so the gradient would be lost; write "
                    f"`x = {out_of_place or f'x {symbol[:-1]} ...'}`")
        elif self.op is not None and self._vjps is not None:
            raise InPlaceError(f"in-place {symbol}: {_what(self)} is the output of '{self.op}' in a "
                               "graph that backward still needs; change a leaf, or make a new tensor")
        if _tapes:     # a value the recording kept as a constant may be this one
            _value_read(why=f"the step changes a tensor in place ({symbol})")
        value = other._data if isinstance(other, Tensor) else _constant(other)
        try:
            if _raising():    # numpy raises after its loop wrote out: into a copy, then copied
                result = np.empty_like(self._data)
                ufunc(self._data, value, out=result, casting="same_kind")
                np.copyto(self._data, result)
            else:
                ufunc(self._data, value, out=self._data, casting="same_kind")
        except FloatingPointError as e:     # a caller's np.errstate(all="raise"): nothing changed
            raise _floating_point_error(e, f"in-place {symbol} on {_what(self)} of shape "
                                           f"{self.shape}, dtype {self.dtype}, with shape "
                                           f"{np.shape(value)}: {e}") from e
        except (ValueError, TypeError, OverflowError, IndexError) as e:
            if ufunc is np.power:
                refuse_negative_integer_power(f"in-place {symbol} on {_what(self)}", self._data, value)
            hint = _KEEPS_DTYPE if isinstance(e, OverflowError) else ""
            raise _ERROR_FOR[_base(e)](f"in-place {symbol} on {_what(self)} of shape {self.shape}, "
                                       f"dtype {self.dtype}, with shape {np.shape(value)}: {e}"
                                       f"{hint}") from None
        bump_version(self)
        return self

    def __iadd__(self, other):
        return self._in_place(np.add, "+=", other)

    def __isub__(self, other):
        return self._in_place(np.subtract, "-=", other)

    def __imul__(self, other):
        return self._in_place(np.multiply, "*=", other)

    def __itruediv__(self, other):
        return self._in_place(np.true_divide, "/=", other)

    def __ipow__(self, other):   # without it Python rebinds: `p **= 2` under no_grad made a new
        return self._in_place(np.power, "**=", other)     # plain tensor, the Parameter unchanged

    def __imatmul__(self, other):   # as numpy's `a @= b`: the result must keep a's shape
        return self._in_place(np.matmul, "@=", other)

    def clamp_(self, min=None, max=None):   # noqa: A002 - torch's names
        """PyTorch's in-place clamp: ``x`` limited to [min, max] (``max`` wins where min > max,
        as torch's) in its own memory, under ``tg.no_grad()`` for a tensor that requires grad
        (as ``+=``); returns ``x``.  A bound that does not fit changes nothing."""
        if min is None and max is None:
            raise ConfigError("clamp_: give min=, max= or both")
        lo, hi = (None if b is None else _constant(_constant_of(b, "the step clamps a tensor in "
                                                               "place (a constant bound)"))
                  for b in (min, max))
        try:
            value = self._data if lo is None else np.maximum(self._data, lo)
            value = value if hi is None else np.minimum(value, hi)
            if value.shape != self.shape:
                raise ValueError(f"the bounds broadcast it to shape {value.shape}")
        except (ValueError, TypeError) as e:
            raise _ERROR_FOR[_base(e)](f"clamp_ on {_what(self)} of shape {self.shape}, dtype "
                                       f"{self.dtype}, with bounds of shapes {np.shape(lo)} and "
                                       f"{np.shape(hi)}: {e}") from None
        return self._in_place(lambda a, v, out, casting: np.copyto(out, v, casting=casting),
                              "clamp_", value, "x.clamp(...)")

    clip_ = clamp_


def _repr(t, kind, show_requires_grad):
    """``kind(values, dtype=..., op=..., name=...)``; the dtype shows when it is not float64.
    (Text of the values: inside a recorded step, a value read, as ``item()`` is.)"""
    if _tapes:
        _value_read(why="the step makes text of a tensor's values (repr, str, print)")
    extra = f", dtype={t.dtype}" if t.dtype != np.float64 else ""
    extra += f", op={t.op}" if t.op else ""
    extra += f", name={t.name!r}" if t.name else ""
    extra += ", requires_grad=True" if show_requires_grad else ""
    body = np.array2string(t._data, precision=4, threshold=20, prefix=f"{kind}(")
    return f"{kind}({body}{extra})"


_clock = 0
"""Counts in-place changes of tensors (process-wide; not a mode).  A tensor's ``_version`` is
the count when it was made, or when it was last changed in place.  A node is made after its
parents, so a parent with a newer version than the node was changed after the node saved its
data, and backward through that node refuses (PyTorch's version counter).

Tensors that share memory -- a tensor, its ``detach()`` and its views (basic indexing,
``.T``, ``reshape`` ... made with or without ``no_grad``) -- also share one cell,
``_shared = [count]``, holding the count of the last in-place change through any of them
(as PyTorch's views share their base's version counter).  A node's ``_shared`` slot is unset
until it shares a cell (read it with ``getattr(t, "_shared", None)``), as is its ``_site``
until anomaly mode records where it was made: a slot left unset is one write less per node,
and one object less the cycle collector visits in it on each of its passes."""


def clear_grads(who, tensors, set_to_none):
    """Set every tensor's ``.grad`` to None, or (``set_to_none=False``) to zeros of its shape and
    dtype where it has one, as PyTorch's ``zero_grad(set_to_none=...)``."""
    if not isinstance(set_to_none, (bool, np.bool_)):
        raise ConfigError(f"{who}: set_to_none must be True or False, got {set_to_none!r}")
    for t in tensors:
        if set_to_none or t._grad is None:
            t._grad = None
        else:
            t._grad = np.zeros(t.shape, (t._grad._data if isinstance(t._grad, Tensor) else
                                         np.asarray(t._grad)).dtype)


_replaced = {}
"""id -> (weak reference, count of ``_clock``) of every live tensor whose ``.data`` was replaced
(``t.data = new``), with the count it was replaced at: plain backward reads the arrays the
forward saved, but a ``create_graph`` rule reads its inputs' tensors (their ``.data`` now), so
:func:`_backprop_graph` refuses a node whose inputs' (or own) array was replaced after it was
made (no version bump: plain backward goes on, as PyTorch's ``.data``)."""


def _note_replaced(t):
    """Record that ``t.data`` is being replaced now (a new count of ``_clock``)."""
    global _clock
    with _counting:
        _clock += 1
        count = _clock
    key = id(t)
    known = _replaced.get(key)
    if known is not None and known[0]() is t:
        _replaced[key] = (known[0], count)
    else:
        _replaced[key] = (weakref.ref(t, lambda _, key=key: _replaced.pop(key, None)), count)


def _replaced_since(node):
    """The tensor among ``node`` and its parents whose ``.data`` was replaced after ``node``
    was made, or None."""
    for t in (node, *node.parents):
        known = _replaced.get(id(t))
        if known is not None and known[0]() is t and known[1] > node._version:
            return t
    return None


def bump_version(t):
    """Record that ``t``'s data was changed in place (optimizers and ``load_state_dict`` call
    this); graphs built before from ``t`` -- or from a tensor sharing its memory -- then
    refuse to back-propagate."""
    global _clock
    with _counting:     # ``+= 1`` on a global is a read and a write: another thread between
        _clock += 1     # them would make two changes one version, or set the clock back
        version = _clock
    t._version = version
    cell = getattr(t, "_shared", None)
    if cell is not None:
        cell[0] = version


_counting = threading.Lock()


_UNSET = object()
_SLOT_NAMES = weakref.WeakKeyDictionary()    # class -> its slots (see _slot_names)


def _slot_names(cls):
    """The attribute names of every slot of ``cls`` and its bases (a Tensor subclass's own
    ``__slots__`` included, given as one str or several, private names mangled), without
    ``__dict__`` and ``__weakref__``: what ``copy.copy`` and ``copy.deepcopy`` of a tensor
    carry over, as Python's own copy of a slotted object does."""
    names = _SLOT_NAMES.get(cls)
    if names is None:
        names = []
        for klass in cls.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot in ("__dict__", "__weakref__"):
                    continue
                if slot.startswith("__") and not slot.endswith("__"):
                    slot = f"_{klass.__name__.lstrip('_')}{slot}"
                if slot not in names:
                    names.append(slot)
        _SLOT_NAMES[cls] = names = tuple(names)
    return names


def _share_version(view, base):
    """Make ``view`` (whose data is a view of ``base``'s memory) share ``base``'s version cell."""
    cell = getattr(base, "_shared", None)
    if cell is None:
        cell = base._shared = [base._version]
    view._shared = cell


def _changed_since(t, version):
    """True if ``t``'s memory was changed in place after ``version`` (through ``t`` or a
    tensor sharing its memory)."""
    if t._version > version:
        return True
    cell = getattr(t, "_shared", None)
    return cell is not None and cell[0] > version


def _what(t):
    return f"a {type(t).__name__}{_label(t.name)}"


def _count_of(n, noun):
    """``1 parameter``, ``2 parameters``, ``1,024 values``: a count and its noun, singular for one."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _label(name):
    return f" '{name}'" if name else ""


def _init_leaf(t, data, mode):
    """Fill the slots of ``t``, just made by ``Tensor.__new__``, as a leaf holding ``data`` (a
    node's are filled in :func:`make_node`, which sets the same slots inline but ``_site`` and
    ``_shared``, left unset: it runs for every op)."""
    t._data = data
    t._grad = None
    t.name = None
    t.scope = mode.scope
    t._g = None
    t._retain = False
    t._site = None
    t._version = _clock
    t._shared = None
    t.op = None
    t._a = t._b = None
    t._many = ()
    t._rg = False
    t._vjps = None


def make_node(op, data, parents, vjps, arrays=None):
    """Make the output node of ``op``: the one place every node is created.

    Parameters
    ----------
    op : str
    data : array_like
        The forward value.
    parents : tuple of Tensor
    vjps : sequence of callables, one per parent, each ``g -> gradient for that parent``.
    arrays : tuple of np.ndarray, optional
        With a :class:`Rule` as ``vjps`` (not its keyed twin) and every input a Tensor: the
        input arrays the forward ran on, of which the node keeps what the rule reads.

    A node made here directly has no tensor-level rule, so ``create_graph`` cannot pass
    through it; ops made by :func:`apply` from a forward with a :func:`defvjp` rule can.
    """
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    mode = _current()
    t = Tensor.__new__(Tensor)
    t._data = data     # the slots of _init_leaf but _site and _shared (left unset: see _clock),
    #                    written here (every op makes a node)
    t._grad = None
    t.name = None
    t.scope = mode.scope
    t._g = None
    t._retain = False
    t._version = _clock
    n = len(parents)
    if n and mode.grad_enabled:
        t.op = op
        if n == 2:      # one or two parents (most ops) in slots (``_many`` is read only when
            a, b = parents     # ``_a`` is None); more as the tuple
            t._a = a
            t._b = b
            needs = a._rg or b._rg
        elif n == 1:
            a = t._a = parents[0]
            t._b = None
            needs = a._rg
        else:
            t._a = t._b = None
            t._many = tuple(parents)
            needs = any(p._rg for p in parents)
        t._rg = needs
        if needs:
            t._vjps = vjps
            if arrays is not None:     # a Rule's: arrays in slots rather than a tuple the
                bare = vjps.bare       # collector must visit (see Rule)
                if bare == "inputs":
                    t._ctx = arrays[0]
                    t._ctx2 = arrays[1]
                elif bare is None:
                    t._ctx = (data, *arrays)
                elif bare == "out":
                    t._ctx = data
                else:
                    t._ctx = arrays[0]
        else:
            t._vjps = None
    else:
        t.op = None
        t._a = t._b = None
        t._many = ()
        t._rg = False
        t._vjps = None
    if n:   # a view of an input's memory, or the input itself: share its version counter
        base = data.base
        if base is not None or data is parents[0]._data:
            _share_parents_version(t, data, base, parents)
    if mode.anomaly:
        t._site = _creation_site()
        if data.dtype.kind in "fc" and not np.isfinite(data).all():
            raise AnomalyError(f"{op}: forward produced {_bad_kind(data)}{_where(t.scope)}, "
                               f"created at {t._site}")
        if t._vjps is not None:
            _record_saved(t, [("its output", None, data)]
                          + [(f"its input {i} ({_what(p)} of shape {p.shape})", p, p._data)
                             for i, p in enumerate(t.parents)])
    if _tapes:
        _value_read(made=1)
    return t


# Graphs built inside detect_anomaly: id(node) -> (a weak reference to it, [(what, the input
# tensor or None for the output, array, digest)]) of the arrays its gradient rule may read -- its output's and its inputs' (a
# numpy constant is copied when the op is made: a later write into the caller's array changes
# nothing) -- so backward can tell that one was written in place without a version bump
# (``t.data[...] = 0``, ``np.copyto(t.numpy(), ...)``, ``np.asarray(t)[0] = 1``): its gradient
# would come from the new values without a word.
_saved_digests = {}


def _digest(arr):
    return hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16).digest()


def _record_saved(t, entries):
    key = id(t)
    ref = weakref.ref(t, lambda _, key=key: _saved_digests.pop(key, None))
    _saved_digests[key] = (ref, [(what, owner, a, _digest(a)) for what, owner, a in entries])


def _check_saved(node, graph=False):
    """Raise AnomalyError if an array ``node`` saved in detect_anomaly was changed in place
    (or, ``graph``: an input's ``.data`` replaced, which a create_graph rule reads) since."""
    known = _saved_digests.get(id(node))
    if known is None or known[0]() is not node:
        return
    for what, owner, arr, digest in known[1]:
        replaced = graph and (node if owner is None else owner)._data is not arr
        if replaced or _digest(arr) != digest:
            site = getattr(node, "_site", None)
            raise AnomalyError(
                f"backward: op '{node.op}'{_label(node.name)}{_where(node.scope)}: the array of "
                f"{what}, which its gradient may read, was "
                f"{'replaced (.data = ...)' if replaced else 'changed in place'} after the forward "
                "without a version bump (a write through .data, .numpy(), np.asarray(t) or "
                "np.copyto), so its gradient would be "
                "computed from the new values; change tensors in place with their operators "
                "(t += x, under tg.no_grad()) or call tg.bump_version(t) after a write, and build "
                "the graph again" + (f"; node created at {site}" if site else ""))


def _share_parents_version(t, data, base, parents):
    """``t``'s array ``data`` is a view (``base`` its base) or one of its parents' arrays:
    share the version counter of the parent whose memory it is, if any."""
    if base is None:      # the first input itself (an identity op)
        _share_version(t, parents[0])
        return
    for p in parents:
        pdata = p._data
        if pdata is base or pdata.base is base:
            _share_version(t, p)
            return


def _raising():
    """Whether a caller's ``np.errstate`` makes numpy raise (or call a function) on some
    floating-point error: numpy raises after its loop, so an ``out=`` array is written first."""
    return any(v == "raise" or v == "call" for v in np.geterr().values())


def _floating_point_error(e, message):
    """``e``, numpy's FloatingPointError of a caller's errstate, as one with ``message`` (naming
    the op, the shapes and the scope): still the class the caller set out to catch."""
    return type(e)(message)


def _bad_kind(arr):
    return "NaN" if np.isnan(arr).any() else "Inf"


_ERROR_FOR = {ValueError: ShapeError, IndexError: BadIndexError, TypeError: DTypeError,
              OverflowError: OutOfRangeError}

_MAPPED = tuple(_ERROR_FOR)

_KEEPS_DTYPE = ("; the tensor's integer dtype is kept (NEP 50), so make the tensor wider "
                "(e.g. dtype=np.int64) or float")


def refuse_negative_integer_power(op, a, b):
    """Raise a DomainError when ``a ** b`` is an integer to a negative integer power (numpy's
    bare ValueError, or a ShapeError as every ValueError of a forward was); return otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "biu" and b.dtype.kind in "biu" and (b < 0).any():
        raise DomainError(f"{op}: an integer base ({a.dtype}, shape {a.shape}) to a negative "
                          f"integer power ({b.min()}, shape {b.shape}) is no integer "
                          "(numpy and PyTorch refuse it); make the base float (e.g. "
                          f"tg.tensor(x, dtype=float)) or the exponent a float")


def _constant(x, copy=False):
    """``x`` (a number, array or array-like) as an op's constant operand; with ``copy``, an
    array is copied: an op keeps its constants for backward, and the caller's array may be
    changed in place after the op (``y = w * a; a += 1``) without changing the gradient."""
    if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind not in "biuf":
        # (a complex one made a complex node, whose gradient lost its imaginary part)
        raise DTypeError(f"cannot use {type(x).__name__} of dtype {x.dtype} (shape {x.shape}) "
                         "as a tensor (need bool, integer or float data)")
    if isinstance(x, np.ndarray):
        return np.array(x) if copy else x
    if isinstance(x, (int, float, bool, np.generic)):
        return x
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise DTypeError(f"cannot use {type(x).__name__} as a tensor: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"cannot use {type(x).__name__} of dtype {arr.dtype} as a tensor")
    return arr


def apply(op, forward, *inputs, **kwargs):
    """``apply(op, forward, *inputs, **kwargs)``: run ``forward`` on the arrays behind ``inputs``
    and make its output node: how every op of the engine is made (those of one or two Tensors
    without settings by the same steps written out once, :func:`binary_op`), and how to make
    your own.

    Parameters
    ----------
    op : str, the op's name (what ``t.op``, the diagrams and error messages show)
    forward : ``forward(*arrays, **kwargs) -> (value, vjps)``, on numpy arrays: the value, and
        one vector-Jacobian product per input, a function ``g -> gradient`` of the same shape as
        that input (or of a shape it broadcasts to: the engine sums it back; a smaller one is a
        ShapeError, not broadcast up), or None for an input with no gradient; or the value and
        one shared :class:`Rule` (how the built-in ops are made)
    inputs : Tensors, or constants (numbers, lists, arrays: they get no gradient)
    kwargs : passed to ``forward`` as they are (settings, not tensors)

    For ``create_graph`` the op also needs a tensor-level rule, given once with :func:`defvjp`.
    numpy's errors become tinygraph errors naming the op, the input shapes and the scope.

    Example: GELU, x Phi(x), with its derivative Phi(x) + x phi(x) (``tg.gelu`` is built in;
    the README's "Your own ops" runs this and its ``defvjp`` rule)::

        erfc = np.vectorize(math.erfc)

        def gelu(x):
            cdf = 0.5 * erfc(-x / np.sqrt(2))
            return x * cdf, (lambda g: g * (cdf + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)),)

        y = tg.apply("gelu", gelu, t)
    """
    if not isinstance(op, str):
        raise DTypeError(f"apply: the first argument is the op's name (a str), then its forward "
                        f"function, then the inputs: tg.apply('my_op', forward, x); got "
                        f"{type(op).__name__} {getattr(op, '__name__', '')!s} as the name".rstrip())
    if not callable(forward):
        raise DTypeError(f"apply: the second argument must be the forward function "
                        f"(arrays -> (value, vjps)), got {type(forward).__name__}")
    return _apply(op, forward, inputs, kwargs)


_NO_SETTINGS = types.MappingProxyType({})    # the kwargs of a built-in op called without any


def _apply(op, forward, inputs, kwargs):
    """:func:`apply` on the inputs as a tuple and the settings as a dict: the built-in ops'
    entry (their name and forward need no check, and their arguments no packing anew; a call
    of one or two Tensors without settings comes here only through :func:`apply`, see
    :func:`binary_op`); ``kwargs`` is read, never changed."""
    if len(inputs) == 2 and isinstance(inputs[0], Tensor) and isinstance(inputs[1], Tensor):
        parents = inputs       # two tensors: the most common case, without a loop
        arrays = (inputs[0]._data, inputs[1]._data)
        checked = op not in _BROADCASTING or arrays[0].size * arrays[1].size <= _SMALL
    elif len(inputs) == 1 and isinstance(inputs[0], Tensor):
        parents = inputs
        arrays = (inputs[0]._data,)
        checked = op not in _BROADCASTING or arrays[0].size <= _SMALL
    else:
        arrays = [x._data for x in inputs if isinstance(x, Tensor)]
        if len(arrays) == len(inputs):     # tensors only
            parents = inputs
        else:
            try:
                arrays, parents, inputs = _gathered(inputs)
            except DTypeError as e:       # a constant of no number dtype: named with the op
                raise DTypeError(f"{op}: {e}{_where(_current().scope)}") from None
        if not parents:      # constants only: as arrays, so every forward can ask for .shape, .ndim
            arrays = [np.asarray(a) if type(a) in (int, float, bool) else a for a in arrays]
        checked = op not in _BROADCASTING
        if not checked:
            bound = 1      # the product of the inputs' sizes bounds the broadcast result's
            for a in arrays:
                if type(a) is np.ndarray:
                    bound *= a.size
            checked = bound <= _SMALL
    try:
        if not checked:
            _check_broadcast(op, arrays)
        value, vjps = forward(*arrays, **kwargs) if kwargs else forward(*arrays)
    except Exception as e:   # (not KeyboardInterrupt, SystemExit, GeneratorExit: left as they are)
        _raise_forward_error(op, arrays, e)
    every = len(parents) == len(inputs)
    if type(vjps) is not Rule:
        _check_vjps(op, vjps, len(inputs))
    if type(vjps) is Rule:     # _ctx: the output and the inputs as they are now (see Rule)
        if every and not kwargs:
            t = make_node(op, value, inputs, vjps, arrays)
        else:
            positions = None if every else tuple(i for i, x in enumerate(inputs) if isinstance(x, Tensor))
            t = make_node(op, value, inputs if every else tuple(parents), vjps.keyed)
            if t._vjps is not None:
                t._ctx = (t._data, positions, *arrays)
                t._kwargs = kwargs     # its own slot: a tuple holding a dict stays tracked by the gc
    elif every:   # a user's forward: its vjps, and what create_graph needs to run its defvjp rule
        t = make_node(op, value, inputs, vjps)
        if t._vjps is not None:
            t._ctx = (forward, inputs, kwargs) if kwargs else forward
    else:
        t = make_node(op, value, tuple(parents), [v for x, v in zip(inputs, vjps) if isinstance(x, Tensor)])
        if t._vjps is not None:
            t._ctx = (forward, inputs, kwargs)
    if _tapes:       # a tinygraph.tape recording in some thread: note the op if it is this one's
        _taped(op, forward, inputs, kwargs, t)
    return t


def _check_vjps(op, vjps, count):
    """A user's forward gives one vector-Jacobian product (or None) per input: with fewer, the
    inputs left over would get no gradient without a word."""
    try:
        given = len(vjps)
    except TypeError:
        raise DTypeError(f"{op}: the forward must return (value, vjps) with vjps a tuple of one "
                         f"function (or None) per input, got {type(vjps).__name__} as vjps") from None
    if given != count:
        raise DTypeError(f"{op}: the forward returned {given} vector-Jacobian product"
                         f"{'s' * (given != 1)} for {count} input{'s' * (count != 1)} (one per "
                         "input, in order; None for an input with no gradient)")


def _raise_forward_error(op, arrays, e):
    """Raise the error for ``e``, raised by ``op``'s forward on ``arrays``: an op's own check
    with the scope it happened in added (``e`` itself outside any scope), numpy's errors as
    tinygraph's naming the op, the input shapes and the scope; any other class (a KeyError, a
    ZeroDivisionError, a user's own class) stays itself, with that context in its message (or,
    if its constructor takes other arguments, in a note), so the caller can still catch it."""
    if isinstance(e, TinygraphError):
        where = _current().scope
        if where is None:
            raise e
        raise type(e)(f"{e}{_where(where)}") from None
    if isinstance(e, MemoryError):
        raise _allocation_error(op, [np.shape(a) for a in arrays], e) from None
    shapes = ", ".join(str(np.shape(a)) for a in arrays)
    hint = _KEEPS_DTYPE if isinstance(e, OverflowError) else ""
    text = str(e)
    prefix = "" if text.startswith(f"{op}:") else f"{op}: "   # a user's forward named its op
    message = f"{prefix}{text} (input shapes {shapes}){hint}{_where(_current().scope)}"
    cls = type(e)
    if cls not in _ERROR_FOR and (not isinstance(e, _MAPPED) or (
            cls.__module__ != "builtins" and not cls.__module__.startswith("numpy"))):
        # a user's own class, or a KeyError, ...: the caller may catch it as itself
        try:     # its constructor is not called again (it may count, log, or take other
            error = cls.__new__(cls, message)     # arguments); its attributes are e's
            error.__dict__.update(e.__dict__)
        except Exception:      # noqa: BLE001 - a class that cannot be made so
            error = None
        if type(error) is cls and str(error) in (message, repr(message)):   # (a KeyError's quotes)
            raise error from e
        e.add_note(message)
        raise e
    raise _ERROR_FOR[cls if cls in _ERROR_FOR else _base(e)](message) from None


def binary_op(name, op, forward, doc=None):
    """The function ``name(a, b)`` of a built-in op of two inputs without settings (``op`` its
    node's name, ``forward`` as for :func:`apply`, returning a :class:`Rule`): two Tensors go
    straight to their node, which is :func:`_apply`'s work without its general checks (the
    most common call of the engine: ``y * w``); anything else goes through ``_apply``."""
    broadcasting = op in _BROADCASTING

    def two(a, b):
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            x = a._data
            y = b._data
            try:
                if broadcasting and x.size * y.size > _SMALL:
                    _check_broadcast(op, (x, y))
                value, vjps = forward(x, y)
            except Exception as e:     # as _apply: a FloatingPointError of a caller's errstate too
                _raise_forward_error(op, (x, y), e)
            if type(vjps) is not Rule:
                raise TypeError(f"{op}: binary_op takes a forward that returns a Rule")
            t = make_node(op, value, (a, b), vjps, (x, y))
            if _tapes:
                _taped(op, forward, (a, b), _NO_SETTINGS, t)
            return t
        return _apply(op, forward, (a, b), _NO_SETTINGS)

    two.__name__ = two.__qualname__ = name
    two.__module__ = forward.__module__
    two.__doc__ = doc
    return two


def unary_op(name, op, forward, doc=None):
    """The function ``name(x)`` of a built-in op of one input without settings, as
    :func:`binary_op`: a Tensor goes straight to its node, anything else through ``_apply``."""
    broadcasting = op in _BROADCASTING

    def one(x):
        if isinstance(x, Tensor):
            a = x._data
            try:
                if broadcasting and a.size > _SMALL:
                    _check_broadcast(op, (a,))
                value, vjps = forward(a)
            except Exception as e:     # as _apply: a FloatingPointError of a caller's errstate too
                _raise_forward_error(op, (a,), e)
            if type(vjps) is not Rule:
                raise TypeError(f"{op}: unary_op takes a forward that returns a Rule")
            t = make_node(op, value, (x,), vjps, (a,))
            if _tapes:
                _taped(op, forward, (x,), _NO_SETTINGS, t)
            return t
        return _apply(op, forward, (x,), _NO_SETTINGS)

    one.__name__ = one.__qualname__ = name
    one.__module__ = forward.__module__
    one.__doc__ = doc
    return one


def _gathered(inputs):
    """``apply``'s inputs with constants among them: (the arrays, the tensors among them, the
    inputs), a list or tuple holding tensors replaced by their stack (a node)."""
    while True:
        arrays = []
        parents = []
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x._data)
                parents.append(x)
            elif _is_container(x) and _holds_tensor(x):
                break
            else:
                arrays.append(_constant(x, copy=True))
        else:
            if len(parents) < len(inputs):    # the constants as the op keeps them
                inputs = tuple(x if isinstance(x, Tensor) else a for x, a in zip(inputs, arrays))
            return arrays, parents, inputs
        inputs = tuple(_stacked(y) for y in inputs)


_tapes = {}    # thread id -> the tinygraph.tape.Recording open in that thread

_stand_ins = {}    # id -> (weak reference, why, itself): nodes whose (rows') gradients cannot be asked for


def stand_in_rows(t, why):
    """Mark the rows of ``t`` (``t[k]``, any index of it) as standing in for values its graph
    holds elsewhere (a block of states made at once, whose rows are made when asked for: not
    the nodes that outputs made before used, rnn.replay's per-step states), so ``grad`` and
    ``retain_grad`` refuse them, saying ``why``, instead of a gradient that misses what reached
    the value through the block (zeros, when nothing used the row itself)."""
    return _mark_stand_in(t, why, itself=False)


def stand_in(t, why):
    """Mark ``t`` itself as standing in for a value that the graph's other nodes did not read
    (made again when asked for from stand-in rows, e.g. the attention weights α(t) of replayed
    decoder steps), so ``grad`` and ``retain_grad`` refuse it, saying ``why``, instead of a
    gradient of zeros (or None); back-propagating through ``t`` is unchanged."""
    return _mark_stand_in(t, why, itself=True)


def _mark_stand_in(t, why, itself):
    key = id(t)
    _stand_ins[key] = (weakref.ref(t, lambda _, key=key: _stand_ins.pop(key, None)), why,
                       itself)
    return t


def _stand_in_why(t):
    if not _stand_ins:
        return None
    entry = _stand_ins.get(id(t))
    if entry is not None and entry[2] and entry[0]() is t:
        return entry[1]
    if t.op != "index":
        return None
    block = t._a
    entry = _stand_ins.get(id(block))
    return entry[1] if entry is not None and not entry[2] and entry[0]() is block else None


def _constant_of(x, why):
    """The array of ``x`` (a Tensor, or anything else as it is) that an op takes as a constant
    with no gradient: inside a recording, a value read (``why`` says which), since the next step
    would compute the constant anew from its own values."""
    if isinstance(x, Tensor):
        if _tapes:
            _value_read(why=why)
        return x._data
    return x


def _fresh_random(who):
    """An op draws new random numbers (no seed): a recording cannot replay the same ones."""
    if _tapes:
        _value_read(why=f"the step draws new random numbers ({who} without a seed)")


def _taped(op, forward, inputs, kwargs, t):
    """Note the op in this thread's recording, with what it read as it was then: its settings,
    its closure and the arrays of its inputs that need no gradient are copied (its numpy
    operands are its own copies already: :func:`_gathered`), so a buffer the step changes in
    place makes its two recorded steps differ instead of comparing equal to itself."""
    tape = _tapes.get(threading.get_ident())
    if tape is None:
        return
    if _current().grad_enabled is not tape.grad and tape.read is None:
        tape.read = ("the step makes ops with gradients switched off (tg.no_grad) or on "
                     "(tg.enable_grad) unlike its unroll: a cut that replayed steps would not make")
    kept = tape.kept
    for x in inputs:
        if isinstance(x, Tensor) and not x._rg and id(x) not in kept:
            kept[id(x)] = x._data.copy()
    cells = forward.__closure__ if type(forward) is types.FunctionType else None
    tape.ops.append((op, forward, inputs, _frozen(kwargs) if kwargs else kwargs, t,
                     None if not cells else _frozen(_cell_values(cells))))


def _cell_values(cells):
    values = []
    for cell in cells:
        try:
            values.append(cell.cell_contents)
        except ValueError:      # an empty cell
            values.append(_EMPTY_CELL)
    return tuple(values)


_EMPTY_CELL = object()


def _frozen(x):
    """``x`` with the numpy arrays in it (through tuples, lists and dicts) copied."""
    if type(x) is np.ndarray:
        return x.copy()
    if type(x) in (tuple, list):
        return type(x)(_frozen(y) for y in x)
    if isinstance(x, (dict, types.MappingProxyType)):
        return {k: _frozen(v) for k, v in x.items()}
    return x


def _value_read(made=0, why=None):
    """A tensor's value was read as a Python value, a plain array or a constant (a recording
    tape cannot replay code that may branch on it, or that holds a value the next step would
    compute anew), ``why`` saying how; or, with ``made``, a node was made (counted, so the
    tape knows of nodes made without :func:`apply`)."""
    tape = _tapes.get(threading.get_ident())
    if tape is not None:
        if made:
            tape.made += 1
        elif tape.read is None:       # the first reason is the one the unroll reports
            tape.read = why or "the step reads a tensor's value (item(), float(), bool() or np.asarray)"


_BROADCASTING = frozenset(("add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "clip",
                           "mse_loss", "binary_cross_entropy_with_logits"))


@functools.lru_cache(maxsize=None)
def memory_limit():
    """The largest result, in bytes, an op or constructor makes: this machine's physical
    memory (None where the platform does not tell it; then only the allocator refuses)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(nbytes):
    return f"{nbytes / 2 ** 30:.1f} GiB"


_SMALL = 2 ** 24     # results with fewer entries (at most 256 MB) are not worth checking


def check_size(op, shape, dtype, inputs=None):
    """Raise AllocationError (naming ``op``, the input shapes ``inputs`` and the size) before a
    result of ``shape`` and ``dtype`` is allocated, if it would exceed :func:`memory_limit`."""
    limit = memory_limit()
    if limit is None:
        return
    nbytes = np.dtype(dtype).itemsize * float(np.prod(shape, dtype=float))
    if nbytes > limit:
        given = "" if inputs is None else f" from input shapes {', '.join(str(s) for s in inputs)}"
        raise AllocationError(f"{op}: the result of shape {tuple(shape)} ({np.dtype(dtype)}){given} "
                              f"would take {_gib(nbytes)}, more than this machine's "
                              f"{_gib(limit)} of memory")


def _check_broadcast(op, arrays):
    """The size check of an elementwise op whose inputs broadcast to a larger shape."""
    shapes = [a.shape if type(a) is np.ndarray else np.shape(a) for a in arrays]
    first = shapes[0]
    if all(s == first for s in shapes):
        return
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        return      # the op itself raises ShapeError naming the shapes
    check_size(op, shape, np.result_type(*[a.dtype if type(a) is np.ndarray else a for a in arrays]),
               shapes)


def _allocation_error(op, shapes, e):
    """numpy's MemoryError as an AllocationError naming the op, its input shapes and the size."""
    shape, dtype = getattr(e, "shape", None), getattr(e, "dtype", None)
    size = "" if shape is None or dtype is None else \
        f" a result of shape {shape} ({dtype}, {_gib(np.dtype(dtype).itemsize * float(np.prod(shape)))})"
    given = f" from input shapes {', '.join(str(s) for s in shapes)}" if shapes else ""
    return AllocationError(f"{op}: out of memory allocating{size or ' its result'}{given}"
                           f"{_where(_current().scope)}")


def _is_container(x):
    """A list, tuple or object array: where numpy would look for (and flatten) Tensors."""
    return isinstance(x, (list, tuple)) or (type(x) is np.ndarray and x.dtype == object)


_graph_vjps = {}


class Rule:
    """An op's gradient rule, written once with operators and methods that numpy arrays and
    Tensors share (and, where they differ, helpers that take either): backward runs it on the
    arrays a node saved, ``create_graph`` on the node and its parents as Tensors, so the
    gradient is built from engine ops and can be differentiated again.

    Two forms, with the one call convention ``grad(g, out, *inputs, **kwargs)``:

    - ``Rule(*grads)``: one function per input, each returning that input's gradient (None
      for an input that never gets one); a sweep runs only those of inputs that need one.
    - ``Rule(joint=fn)``: ``fn`` returns every input's gradient at once, a sequence with one
      entry per input (None for no gradient), for ops whose gradients share work (the
      shares of ``maximum``, the slices of ``concat``) or take any number of inputs.
      ``grads`` is then None.

    Gradients may come back in the broadcast shape (the engine sums them back) or, on arrays,
    as a :class:`Scatter`, an :class:`Owned` or a :class:`Product` (what backward adds in
    place, without a temporary of the input's shape).  ``out`` is the op's output as the forward made it (an array, or the
    node under ``create_graph``); ``inputs`` are every input of the call in order, constants
    included (on Tensors, constants come as leaves without grad); ``kwargs`` are the call's
    keyword arguments (settings, not tensors).

    A forward returns ``(value, rule)``; its node keeps the shared rule in ``_vjps`` and, in
    its ``_ctx`` slot, ``(out, *inputs)`` when every input is a Tensor and there are no keyword
    arguments -- just the array ``out`` when not ``saves`` (a rule that reads only ``g`` and
    ``out``), just the input array for a one-input rule made with ``reads_out=False`` (it then
    gets None for ``out`` in backward), the two input arrays in ``_ctx`` and ``_ctx2`` for a
    two-input rule made with ``reads_out=False``, ``rule.bare`` saying which ("out", "input",
    "inputs" or None; a rule made with both ``saves=False`` and ``reads_out=False`` reads
    ``g`` alone, which lets a replayed step keep nothing of the op, see
    :func:`tinygraph.tape.compile_scan`);
    else ``(out, positions, *inputs)``, ``positions`` the indices of the inputs that are Tensors
    (the node's parents, in order; None when all are), with the keyword arguments in the
    ``_kwargs`` slot and the rule's keyed twin ``rule.keyed`` (the same functions, ``is_keyed``
    True) in ``_vjps`` to tell the two apart.
    :func:`saved` reads either layout.  A node holds no closure: one shared object per op.
    """

    __slots__ = ("grads", "joint", "saves", "reads_out", "bare", "is_keyed", "keyed")

    def __init__(self, *grads, joint=None, saves=True, reads_out=True, _plain=None):
        if (joint is None) == (not grads):
            raise TypeError("Rule: give one gradient function per input, or joint=")
        self.grads = grads if joint is None else None
        self.joint = joint
        self.saves = saves
        self.reads_out = reads_out
        self.is_keyed = _plain is not None
        plain = not self.is_keyed and saves and not reads_out and joint is None
        self.bare = (None if self.is_keyed else "out" if not saves
                     else "input" if plain and len(grads) == 1
                     else "inputs" if plain and len(grads) == 2 else None)
        self.keyed = self if _plain is not None else Rule(*grads, joint=joint, _plain=self)

    def __call__(self, g, out, *inputs, **kwargs):
        """Every input's gradient, as a tuple (either form): what ``create_graph`` runs."""
        if self.joint is not None:
            return tuple(self.joint(g, out, *inputs, **kwargs))
        return tuple(None if grad is None else grad(g, out, *inputs, **kwargs) for grad in self.grads)


def saved(node):
    """``(out, inputs, kwargs, positions)`` a node made with a :class:`Rule` saved: its output
    array (None for a one- or two-input rule made with ``reads_out=False``), every input of the call
    (arrays and constants), the keyword arguments, and the indices of the inputs that are its
    parents (None: all of them)."""
    ctx = node._ctx
    if node._vjps.is_keyed:
        out, positions, *inputs = ctx
        return out, inputs, node._kwargs, positions
    bare = node._vjps.bare
    if bare == "out":
        return ctx, [p._data for p in node.parents], {}, None
    if bare == "input":
        return None, [ctx], {}, None
    if bare == "inputs":
        return None, [ctx, node._ctx2], {}, None
    out, *inputs = ctx
    return out, inputs, {}, None


def defvjp(forward, rule):
    """``defvjp(forward, rule)``: give the op ``forward`` (as passed to :func:`apply`) a
    tensor-level gradient rule, which ``backward(create_graph=True)`` and
    ``grad(..., create_graph=True)`` run (the numpy vjps of ``forward`` stay the default).

    ``rule(g, out, *inputs, **kwargs)`` gets the incoming gradient ``g`` and the op's output
    node ``out`` as Tensors, the op's inputs as Tensors (constants as leaves without grad) and
    its keyword arguments, and returns one gradient per input (a Tensor built from engine
    ops, or None for an input that gets no gradient).  Broadcast shapes are summed back by
    the engine.  Returns ``forward``.

    Example, the GELU of :func:`apply` (its own gradient is then differentiable again; the
    normal CDF is written with engine ops, e.g. as an op of its own with its rule)::

        tg.defvjp(gelu, lambda g, out, x: (g * (normal_cdf(x) + x * tg.exp(-x * x / 2)
                                                / np.sqrt(2 * np.pi)),))
    """
    _graph_vjps[forward] = rule
    return forward


def _base(e):
    for cls in _ERROR_FOR:
        if isinstance(e, cls):
            return cls
    return ValueError


def _unbroadcast(g, shape):
    """Sum a gradient back to ``shape`` (undoing numpy broadcasting; a gradient with fewer axes,
    e.g. of an input that broadcast nothing, is broadcast up)."""
    if g.ndim > len(shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    elif g.ndim < len(shape):
        g = np.broadcast_to(g, np.broadcast_shapes(g.shape, shape))
    if g.shape != shape:
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if axes:
            g = g.sum(axis=axes, keepdims=True)
        if g.shape != shape:
            g = np.broadcast_to(g, shape)
    return g


_sweeping = threading.RLock()


def _one_sweep_at_a_time(sweep):
    """Run ``sweep`` holding the engine's sweep lock.

    A sweep keeps its counts and partial gradients in the nodes' ``_g`` slots, and graphs
    built in different threads share their leaves (a model's parameters): two sweeps at
    once would add into each other's slots and ``.grad``.  Sweeps therefore take turns (the
    lock is re-entrant, so a hook or an op's rule may start a sweep of its own); building
    graphs, and numpy's own work, still run side by side.
    """
    @functools.wraps(sweep)
    def taking_turns(*args, **kwargs):
        with _sweeping:
            return sweep(*args, **kwargs)
    return taking_turns


@_one_sweep_at_a_time
def _sweep_order(root, who="backward", targets=None):
    """Nodes that require grad reachable from ``root``, each after every node that uses it
    (the order backward visits them: children before parents).

    Two passes with explicit stacks (no recursion, whatever the depth of the graph): the
    first counts, for every node, the edges coming from the nodes that use it, in its
    ``_g`` slot (free until the sweep); the second releases a node once all its users are
    out (Kahn's algorithm), and frees its slot then (nothing counts into it again).  Raises
    GraphFreedError before any gradient is computed if part of the graph was freed, and
    StaleGraphError if an input of a node was changed in place after the node was made; the
    message starts with ``who`` (the function the user called).  With ``targets`` (ids of the
    tensors a gradient is asked for, as ``grad``'s) only the nodes whose rule a path to a
    target runs through are checked: a freed or changed part of the graph off those paths is
    never run (PyTorch's ``autograd.grad`` prunes it too).
    """
    root._g = 0
    nodes, stack = [root], [root]
    clock = _clock
    done = False
    deferred = []     # with targets: nodes that would raise, checked once the paths are known
    try:
        while stack:
            node = stack.pop()
            if node._vjps is None and node.op is not None:
                if targets is None:
                    raise _freed(node, who)
                deferred.append(node)
            elif node._version != clock:   # changed in place since the node was made?
                if targets is None:
                    _check_fresh(node, who)
                else:
                    deferred.append(node)
            for p in node.parents:
                if p._rg:
                    if p._g is None:
                        p._g = 1
                        nodes.append(p)
                        stack.append(p)
                    else:
                        p._g += 1
        order, ready = [], [root]
        while ready:
            node = ready.pop()
            node._g = None
            order.append(node)
            for p in node.parents:
                if p._rg:
                    p._g -= 1
                    if p._g == 0:
                        ready.append(p)
        done = True
    finally:
        if not done:        # raised (or interrupted) midway: no count is left behind
            for node in nodes:
                node._g = None
    if deferred:
        through = _through_targets(order, targets)
        for node in deferred:
            if id(node) in through:      # its rule is on a path to a target: it would run
                if node._vjps is None:
                    raise _freed(node, who)
                _check_fresh(node, who)
    return order


def _freed(node, who):
    return GraphFreedError(
        f"{who}: the graph through '{node.op}'{_where(node.scope)} was freed by an earlier "
        "backward (or grad) without retain_graph=True; pass retain_graph=True the first time "
        "to back-propagate through it again")


def _check_fresh(node, who):
    """Raise StaleGraphError if an input of ``node`` (or its own saved output) was changed in
    place after ``node`` was made (its version differs from the clock's)."""
    for p in node.parents:
        if _changed_since(p, node._version):
            raise _stale(node, p, who)
    cell = getattr(node, "_shared", None)
    if node.op is not None and cell is not None and cell[0] > node._version:
        raise _stale(node, node, who)   # its own output (saved by its rule) changed


def _stale(node, parent, who="backward"):
    return StaleGraphError(
        f"{who}: {_what(parent)}{'' if parent.name else f' of shape {parent.shape}'} was "
        f"changed in place (an optimizer step, an in-place "
        f"operator -- also through a view or detach() sharing its memory -- or "
        f"load_state_dict) after '{node.op}'{_where(node.scope)} used it, so the "
        "gradients of this graph would be for the old values; run the forward pass again "
        "after changing it")


def _seed(root, grad):
    if not root._rg:
        raise BackwardError("backward: this tensor does not require grad "
                            "(no leaf of its graph has requires_grad=True)")
    if grad is None:
        if root._data.size != 1:
            raise BackwardError(f"backward: output has shape {root.shape}; a non-scalar "
                                f"output needs grad= of that shape")
        return np.ones(root._data.shape, root._data.dtype)    # ones_like without its dispatch
    try:
        g = np.asarray(grad._data if isinstance(grad, Tensor) else grad)
    except (ValueError, TypeError) as e:
        raise DTypeError(f"backward: cannot use grad= of type {type(grad).__name__}: {e}") \
            from None
    if g.dtype.kind not in "iuf":     # complex, text, objects, dates: never a real gradient
        raise DTypeError(f"backward: grad= must be real numbers, got {type(grad).__name__} "
                         f"of dtype {g.dtype}")
    if g.shape != root.shape:
        raise ShapeError(f"backward: grad has shape {g.shape} but the output has shape {root.shape}")
    if g.dtype != root.dtype:    # cast to the output's dtype: 1e40 into float32 was an inf seed
        source = g
        with np.errstate(over="ignore"):     # refused below, not warned about
            g = g.astype(root.dtype)
        refuse_overflow(f"backward: grad= for an output of shape {root.shape}", source, g)
    return g


class Scatter:
    """A gradient that is zero except at ``index``: what indexing hands its input.

    A vjp may return one instead of a dense array; backward adds ``values`` into the
    input's gradient buffer in place.  So ``x[t]`` taken at every step of a loop costs
    O(size of x[t]) per step in backward, not a zero array the size of x.

    index : a numpy index (``basic`` slices/ints, or integer arrays, which accumulate)
    values : np.ndarray shaped like ``x[index]`` (``axis`` != 0: shaped like
        ``np.take(x, index, axis)``)
    """

    __slots__ = ("index", "values", "basic", "axis")

    def __init__(self, index, values, basic, axis=0):
        self.index = index
        self.values = values
        self.basic = basic
        self.axis = axis

    def add_into(self, buf):
        """Add the values into ``buf`` (the input's full-shape gradient) in place."""
        if self.basic:
            buf[self.index] += self.values
        elif self.axis == 0:
            index = self.index
            if type(index) is np.ndarray and index.dtype.kind in "iu" and _counted(
                    buf.shape, buf.dtype, index, self.values):
                _add_rows_counted(buf, index, self.values)
            elif (type(index) is np.ndarray and index.dtype.kind in "iu"
                    and index.size >= _SORTED_SCATTER_MIN and buf.ndim > 1):
                _add_rows_sorted(buf, index, self.values)
            else:
                np.add.at(buf, index, self.values)   # repeated indices accumulate
        else:
            index_axes = range(self.axis, self.axis + np.ndim(self.index))
            np.add.at(np.moveaxis(buf, self.axis, 0), self.index,
                      np.moveaxis(self.values, list(index_axes), list(range(len(index_axes)))))


    def dense(self, shape, dtype):
        """A new array of ``shape`` and ``dtype``: zeros with the values added (an input's
        first gradient).  Rows summed by counting (:func:`_rows_counted`) are that array
        already: no zeros to add them to."""
        index = self.index
        if (not self.basic and self.axis == 0 and type(index) is np.ndarray
                and index.dtype.kind in "iu" and _counted(shape, dtype, index, self.values)):
            return _rows_counted(shape, index, self.values)
        buf = np.zeros(shape, dtype)
        self.add_into(buf)
        return buf


class Owned:
    """A gradient a vjp returns as a fresh array of its input's full shape that nothing else
    holds: backward may keep it as that input's gradient buffer and add into it in place (no
    copy when other gradients follow)."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


class Product:
    """A gradient ``a @ b`` (2-D arrays) that backward computes where it goes: the first into a
    new array the input then owns; a later one, for a buffer that exists, into one scratch array
    per shape and dtype that the sweep reuses, then added in place -- not a new array per time
    step (the product a^T g of a weight shared by every step).  Reaching a node with no
    gradient yet, it stays a Product until the sweep gets there; a 2-D transpose (``W.T`` in a
    step) passes it on to its input transposed.  ``np.asarray`` gives its value."""

    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __array__(self, dtype=None, copy=None):
        out = np.dot(self.a, self.b)
        return out if dtype is None else out.astype(dtype, copy=False)


_TRANSPOSES = set()
"""The rules of ``transpose`` (filled by ops): a Product reaching a 2-D transpose goes on to its
input transposed, still a Product, rather than computed and then transposed."""


def _reverses_axes(node):
    """True if the transpose ``node`` reverses its axes (``.T``: axes None)."""
    return not node._vjps.is_keyed or node._kwargs.get("axes") is None


_SORTED_SCATTER_MIN = 32     # below this many rows np.add.at is faster than sorting
# A 1-D buffer (entries, not rows) always takes np.add.at: numpy 2's add.at of scalars is 10-50x
# faster than sorting (1000 entries into 50: 2 us against 31; 100k into 1000: 0.13 ms against
# 6.9, numpy 2.4), and it sums each entry's values in the order given, where the sorted path's
# 1-D sums were pairwise (other bits than np.add.at for 252 of 300 random cases of 33-5000).
_SORTED_SCATTER_CHUNK = 1024


def _add_rows_sorted(buf, index, values):
    """``np.add.at(buf, index, values)`` for an integer index array along axis 0 of a buffer of
    rows (2-D or more; a 1-D one takes np.add.at itself, see _SORTED_SCATTER_MIN), by sorting:
    rows with the same index are summed with one ``reduceat`` (~3x faster for thousands of rows),
    or, when there are few groups of many entries (the embedding rows of a small vocabulary,
    an LSTM's four gates side by side) or the rows are wide (2 KiB or more: a GRU's two gates
    of 128), one sum per group: ``reduceat`` along axis 0 walks the rows column by column, 10-30x
    slower than a sum of a contiguous block on rows of 512+, and 1.3-10x on rows of 2 KiB however
    many groups there are.  A group's rows within a chunk are summed one after the other, as
    np.add.at sums them (a sum along axis 0 of rows adds whole rows in order), and that sum is
    added to ``buf``: the same bits as np.add.at into a zero ``buf`` (a gradient's first buffer
    when the index has at most 1024 entries); into a nonzero one np.add.at adds each row to
    ``buf`` in turn, which can round otherwise."""
    n = buf.shape[0]
    index = index.reshape(-1)
    values = values.reshape(index.shape + buf.shape[1:])
    wide = values.itemsize * math.prod(buf.shape[1:]) >= _REDUCEAT_ROW_BYTES
    for start in range(0, index.size, _SORTED_SCATTER_CHUNK):   # bounds the sorted copy
        part = index[start:start + _SORTED_SCATTER_CHUNK]
        part = np.where(part < 0, part + n, part)
        order = np.argsort(part, kind="stable")
        rows = part[order]
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
        chunk = values[start:start + part.size]
        if wide or starts.size * _GROUP_SUM_COST < chunk.size:   # a Python call per group is cheaper
            ends = starts[1:].tolist() + [part.size]
            for row, a, b in zip(rows[starts].tolist(), starts.tolist(), ends):
                buf[row] += chunk[order[a:b]].sum(axis=0)    # each group's rows gathered alone
        else:
            buf[rows[starts]] += np.add.reduceat(chunk[order], starts, axis=0)


def _counted(shape, dtype, index, values):
    """Whether :func:`_add_rows_counted` is the fastest way to add ``values`` into the rows
    ``index`` of a buffer of ``shape`` and ``dtype``: float64 rows, a few to some thousands of
    them, into a table not much larger than they are (an input map's rows of a small
    vocabulary: 25 rows of 100 into 65 rows, 9 us against np.add.at's 23 and sorting's 25)."""
    return (dtype == np.float64 and values.dtype == np.float64 and len(shape) == 2
            and index.size >= _COUNTED_MIN and values.size <= _COUNTED_MAX
            and shape[0] * shape[1] <= 4 * values.size)


_COUNTED_MIN = 8             # np.add.at is faster for fewer rows
_COUNTED_MAX = 1 << 19       # beyond, the sort's sums of whole groups are faster


def _add_rows_counted(buf, index, values):
    """``np.add.at(buf, index, values)`` for a float64 2-D ``buf`` with one ``np.bincount``
    over the entries' flat positions: each entry's values are summed in the order given, as
    np.add.at sums them, into a zero table that is then added to ``buf`` (the same bits when
    ``buf`` is zero, as the buffer a gradient starts in)."""
    buf += _rows_counted(buf.shape, index, values)


def _rows_counted(shape, index, values):
    """The zero table of :func:`_add_rows_counted` with the values summed in: a new array (a
    view of the counts), never -0.0 (each sum starts at +0.0), so adding it to zeros gives it
    back bit for bit."""
    n, width = shape
    index = index.reshape(-1)
    index = np.where(index < 0, index + n, index)
    flat = (index[:, None] * width + np.arange(width)).reshape(-1)
    return np.bincount(flat, weights=values.reshape(-1), minlength=n * width).reshape(n, width)


_GROUP_SUM_COST = 4096     # entries reduceat sums in the time of one Python-level sum call
_REDUCEAT_ROW_BYTES = 2048  # rows at least this wide are summed per group whatever their count


def _check_finite(node, arr, what):
    if not np.isfinite(arr).all():
        raise AnomalyError(
            f"backward: {what} '{node.op or 'leaf'}'{_label(node.name)}{_where(node.scope)} "
            f"{'contains' if what.startswith('gradient') else 'produced'} {_bad_kind(arr)}"
            + (f", node created at {site}" if (site := getattr(node, "_site", None)) else ""))


def _tile(index, shape):
    """``(axis, start, stop)`` when the basic index ``index`` picks one block of whole entries
    along a single axis (an int, or a slice with step 1, after full slices or an Ellipsis:
    ``x[t]``, ``x[..., a:b]``), else None."""
    parts = index if type(index) is tuple else (index,)
    if not parts:        # x[()]: the whole array (or its one value), no block of an axis
        return None
    lead, last = parts[:-1], parts[-1]
    if lead and lead[0] is Ellipsis:
        lead, axis = lead[1:], len(shape) - 1
    else:
        axis = len(parts) - 1
    if not 0 <= axis < len(shape) or any(type(p) is not slice or p != slice(None) for p in lead):
        return None
    n = shape[axis]
    if type(last) is slice:
        start, stop, step = last.indices(n)
        return (axis, start, stop) if step == 1 and start < stop else None
    if isinstance(last, (int, np.integer)) and not isinstance(last, (bool, np.bool_)) \
            and -n <= last < n:
        last = int(last) % n
        return axis, last, last + 1
    return None


def _fill_gaps(buf, tiles):
    """Zero what the blocks written into the uninitialised ``buf`` left out: ``tiles`` =
    [axis, covered], ``covered`` a bool per index along ``axis``, True where a block was
    written."""
    axis, covered = tiles
    if covered.all():
        return
    lead = (slice(None),) * axis
    edges = np.flatnonzero(np.diff(np.concatenate(([True], covered, [True])).astype(np.int8)))
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist()):    # the runs not written
        buf[lead + (slice(start, stop),)] = 0


def _accumulate(p, pg, owned):
    """Add the gradient ``pg`` (dense, a Scatter, an Owned or a Product) into ``p._g``.

    A buffer the engine allocated itself (``id(p)`` a key of the sweep's dict ``owned``) is
    added into in place; a gradient handed over by a vjp may be shared (``add`` gives one array
    to both inputs), so the first sum makes a new array, which ``p`` then owns.

    Scatters that write disjoint blocks along one axis (the slices of an LSTM's gates, the
    steps ``u[t]`` of an input map) go into an uninitialised buffer, each copied into its
    block: ``owned[id(p)]`` then flags the indices written, and :func:`_ready` zeros the rest
    (if any) before anything else reads or adds into it -- one write per entry instead of a
    zero fill and an add.
    """
    data = p._data
    prev = p._g
    key = id(p)
    if type(pg) is Owned:      # a fresh full-shape array the rule made for the engine to keep
        if prev is None and pg.array.shape == data.shape and pg.array.dtype == data.dtype:
            p._g = pg.array
            owned[key] = None
            return
        pg = pg.array
    if type(prev) is Product:     # a product left for later: now it is added to
        prev = p._g = np.asarray(prev)
        owned[key] = None
    if type(pg) is Product:
        fits = (pg.a.shape[0], pg.b.shape[1]) == data.shape and \
            np.result_type(pg.a, pg.b) == data.dtype
        if fits and prev is None:       # left as it is: the sweep computes it when it reaches p
            p._g = pg
            return
        if fits and key in owned:
            _ready(p, owned)
            scratch = owned.get((data.shape, data.dtype))     # the sweep's scratch of this shape
            if scratch is None:
                scratch = owned[(data.shape, data.dtype)] = np.empty(data.shape, data.dtype)
            prev += np.dot(pg.a, pg.b, out=scratch)
            return
        pg = np.asarray(pg)
    if type(pg) is Scatter:
        tile = _tile(pg.index, data.shape) if pg.basic else None
        if tile is not None:
            axis, start, stop = tile
            if prev is None:
                prev = p._g = np.empty(data.shape, data.dtype)
                covered = np.zeros(data.shape[axis], bool)     # one flag per index: no scan of
                covered[start:stop] = True                     # the blocks so far (T steps' u[t])
                owned[key] = [axis, covered]
                prev[pg.index] = pg.values
                return
            tiles = owned.get(key)
            if tiles is not None and tiles[0] == axis and not tiles[1][start:stop].any():
                prev[pg.index] = pg.values
                tiles[1][start:stop] = True
                return
        if key not in owned:
            owned[key] = None
            if prev is None:
                p._g = pg.dense(data.shape, data.dtype)
                return
            prev = p._g = np.array(prev, data.dtype)
        else:
            _ready(p, owned)
        pg.add_into(prev)
        return
    if type(pg) is not np.ndarray:
        pg = np.asarray(pg)
    fresh = False       # an array made here, which nothing else holds: p's own
    if pg.shape != data.shape:
        pg = _unbroadcast(pg, data.shape)
        fresh = type(pg) is np.ndarray and pg.base is None   # a sum (not a broadcast view)
    if pg.dtype is not data.dtype and pg.dtype != data.dtype:
        pg = pg.astype(data.dtype)
        fresh = type(pg) is np.ndarray     # a 0-d sum cast is a numpy scalar: nothing to add into
    if prev is None:
        p._g = pg
        if fresh:
            owned[key] = None
    elif key in owned:
        _ready(p, owned)
        prev += pg
    else:
        total = prev + pg
        p._g = total if type(total) is np.ndarray else np.array(total)
        owned[key] = None


def _ready(node, owned):
    """``node._g`` complete: the entries no block was written into zeroed (see _accumulate)."""
    tiles = owned.get(id(node))
    if tiles is not None:
        _fill_gaps(node._g, tiles)
        owned[id(node)] = None


@_one_sweep_at_a_time
def _backprop(root, grad, retain_graph, targets, accept=None):
    """Reverse-mode sweep from ``root``.

    With ``targets`` (a dict id -> None) the gradients reaching those tensors are
    returned in it and no ``.grad`` is touched; without, leaves (and tensors marked with
    ``retain_grad``) accumulate into ``.grad`` -- all at once after the sweep, so an error
    raised midway (an anomaly) changes no ``.grad``.  ``accept`` (optional, without
    ``targets``) is called with the list of (tensor, gradient array, owned) about to be added,
    before the graph is freed or any ``.grad`` written: if it raises, nothing has changed
    (rnn.Trainer refuses there a loss that reaches none of its optimizer's parameters).
    """
    seed = _seed(root, grad)
    if targets is None:
        order = swept = _sweep_order(root)
        _check_grads(order)
    else:     # only the nodes on paths to the targets (and the root, which holds the seed)
        swept = _sweep_order(root, "grad", targets)
        idle = set()          # the kept nodes whose rules need not run (a target's own)
        order = _on_paths(swept, targets, idle)
    anomaly = _current().anomaly
    root._g = seed
    results = []
    owned = {}     # ids of the nodes whose _g is a buffer the sweep made (added into in place);
    #                (shape, dtype) -> the sweep's scratch array for Products
    try:
        for node in order:
            g = node._g
            if g is None:
                continue
            if id(node) in owned:
                _ready(node, owned)
            elif type(g) is Product:
                if (type(node._vjps) is Rule and node._vjps in _TRANSPOSES and targets is None
                        and not node._retain and not anomaly and _reverses_axes(node)):
                    node._g = None     # (a @ b)^T = b^T a^T, for the transposed input
                    _accumulate(node.parents[0], Product(g.b.T, g.a.T), owned)
                    continue
                g = node._g = np.asarray(g)     # a new array: the node owns it
                owned[id(node)] = None
            if anomaly:
                _check_finite(node, g, "gradient reaching")
            if targets is not None:
                if id(node) in targets:
                    prev = targets[id(node)]
                    targets[id(node)] = g.copy() if prev is None else prev + g
                if idle and id(node) in idle:   # its rule leads to no target: not run (nor
                    node._g = None              # freed), as create_graph's sweep
                    continue
            elif node.op is None or node._retain:
                results.append((node, g, node.op is None and id(node) in owned))
            node._g = None
            vjps = node._vjps
            if vjps is None:      # a leaf
                continue
            if _saved_digests:    # a graph built in detect_anomaly is alive
                _check_saved(node)
            if type(vjps) is not Rule:      # a user's op: one closure per parent
                pgs = []
                for i, (p, vjp) in enumerate(zip(node.parents, vjps)):
                    pg = vjp(g) if p._rg and vjp is not None else None    # None: no gradient
                    if pg is not None and (type(pg) is not np.ndarray   # for p (a replay's
                                           or pg.shape != p._data.shape     # outside ones)
                                           or pg.dtype is not p._data.dtype):
                        pg = _checked_user_grad(node, i, p, pg)
                    pgs.append(pg)
                if id(node) in owned and not node._retain and targets is None:
                    _hand_over(pgs, g)
                for p, pg in zip(node.parents, pgs):
                    if pg is None:
                        continue
                    if anomaly:
                        pg = _finite_gradient(node, pg)
                    _accumulate(p, pg, owned)
                continue
            # one shared rule, on the output and inputs the node saved (not .data now)
            if vjps.is_keyed:
                out, positions, *arrays = node._ctx
                kwargs = node._kwargs
            else:
                bare = vjps.bare
                if bare is None:
                    out, *arrays = node._ctx
                elif bare == "out":     # a rule that reads only g and out: no inputs saved
                    out, arrays = node._ctx, [p._data for p in node.parents]
                elif bare == "input":   # a one-input rule that does not read out
                    out, arrays = None, [node._ctx]
                else:                   # a two-input rule that does not read out
                    out, arrays = None, [node._ctx, node._ctx2]
                kwargs = positions = None
            joint = vjps.joint      # every input's gradient from one call, or one function each
            grads = vjps.grads if joint is None else (joint(g, out, *arrays, **kwargs) if kwargs
                                                      else joint(g, out, *arrays))
            if positions is not None:     # the parents' among the gradients of every input
                grads = [grads[i] for i in positions]
            for p, pg in zip(node.parents, grads):
                if p._rg and pg is not None:
                    if joint is None:
                        pg = pg(g, out, *arrays, **kwargs) if kwargs else pg(g, out, *arrays)
                    if anomaly:
                        pg = _finite_gradient(node, pg)
                    _accumulate(p, pg, owned)
    except MemoryError as e:
        raise _allocation_error(f"backward through '{node.op or 'leaf'}'",
                                [p.shape for p in node.parents] or [node.shape], e) from None
    except FloatingPointError as e:   # a caller's np.errstate(all="raise"), met by a rule
        if isinstance(e, TinygraphError):    # an AnomalyError: named already
            raise
        shapes = ", ".join(str(p.shape) for p in node.parents) or str(node.shape)
        raise _floating_point_error(e, f"backward through '{node.op or 'leaf'}'"
                                       f"{_where(node.scope)} (input shapes {shapes}): {e}") from e
    finally:
        for node in swept:     # (with targets, a node off the paths may hold a gradient a node
            node._g = None     # on them gave it)
    if accept is not None:
        accept(results)
    if not retain_graph:        # freed only now: a backward that raised can run again
        _free(order if targets is None or not idle else
              [node for node in order if id(node) not in idle])
    for node, g, owned in results:
        if node._grad is None:
            node._grad = g if owned else np.array(g, dtype=node._data.dtype, copy=True)
        elif type(node._grad) is np.ndarray:
            if _held_by_slot_alone(node):
                node._grad += g
            else:     # another tensor's .grad, a view or a name the caller keeps holds it too
                node._grad = node._grad + g
        else:                     # a Tensor left by an earlier create_graph backward
            node._grad = node._grad + g


def _finite_gradient(node, pg):
    """``pg``, a gradient ``node``'s rule gave (anomaly mode), once checked for NaN and inf; a
    Product is made an array here (what is checked is what is added)."""
    if type(pg) is Product:
        pg = np.asarray(pg)
    _check_finite(node, pg.values if type(pg) is Scatter else
                  pg.array if type(pg) is Owned else np.asarray(pg), "the gradient rule of")
    return pg


def _hand_over(pgs, g):
    """``g``, a user op's incoming gradient, is a buffer of the sweep's that nothing else holds
    now: a gradient ``pgs[k]`` its rules made that is a view of it (a transposed copy's ``g.T``)
    becomes its parent's own (:class:`Owned`, not copied again into a buffer or ``.grad``),
    unless another of ``pgs`` may share g's memory (``transpose_add``'s ``g`` for its bias of
    the same shape, a second view): that one would see its values change."""
    mine = g if g.base is None else g.base     # g, or the memory g is all or part of
    views = [k for k, pg in enumerate(pgs) if type(pg) is np.ndarray and pg.base is mine
             and np.may_share_memory(pg, g)]
    if len(views) != 1:
        return
    view = views[0]
    for k, pg in enumerate(pgs):
        if k != view and pg is not None and (type(pg) is not np.ndarray
                                             or np.may_share_memory(pg, g)):
            return
    pgs[view] = Owned(pgs[view])


def _checked_user_grad(node, index, p, pg):
    """A user's vjp's gradient for parent ``p`` of ``node``: real numbers of ``p``'s shape or of
    a shape ``p`` broadcasts to (the engine sums it back).  A smaller one (a vjp that returned
    ``g.sum()``, or forgot an axis) was broadcast up to ``p``'s shape without a word, every entry
    given the same wrong number; a complex one lost its imaginary part to a warning."""
    return _real_user_grad(pg, node.op, _where(node.scope), index, p._data.shape)


def _real_user_grad(pg, op, where, index, shape):
    """A user's gradient ``pg`` for input ``index`` (of ``shape``) of ``op`` as the engine takes
    it (:func:`_checked_user_grad`; ``where`` follows the op's name in the errors, e.g. its
    scope): real numbers of the input's shape or of a shape the input broadcasts to."""
    if type(pg) in (Scatter, Owned, Product):     # the engine's own forms (rnn's replay)
        return pg
    try:
        array = np.asarray(pg)
    except (ValueError, TypeError) as e:
        array = e
    shape = tuple(shape)
    if isinstance(array, Exception) or array.dtype.kind not in "biuf":
        kind = f"{type(pg).__name__}" if isinstance(array, Exception) else f"dtype {array.dtype}"
        raise DTypeError(f"backward: the gradient rule of '{op}'{where} gave input "
                         f"{index} (shape {shape}) a gradient of {kind}; it must be real numbers")
    if array.shape != shape and not _broadcasts_to(shape, array.shape):
        raise _user_shape_error(op, where, index, shape, array.shape)
    return array


def _check_user_shape(node, index, x, got):
    """Refuse a user's rule's gradient of shape ``got`` for input ``x`` (number ``index``, or
    found in the list ``index``) unless ``x`` broadcasts to it (it is then summed back)."""
    shape = x._data.shape
    if not _broadcasts_to(shape, got):
        if not isinstance(index, int):
            index = next(i for i, y in enumerate(index) if y is x)
        raise _user_shape_error(node.op, _where(node.scope), index, shape, got)


def _broadcasts_to(shape, got):
    try:
        return np.broadcast_shapes(got, shape) == got
    except ValueError:
        return False


def _user_shape_error(op, where, index, shape, got):
    return ShapeError(f"backward: the gradient rule of '{op}'{where} gave input "
                      f"{index} a gradient of shape {got}, but that input has shape {shape}: a "
                      "gradient must have its input's shape, or a shape the input broadcasts to "
                      "(then it is summed back)")


def _held_by_slot_alone(node):
    """Whether ``node._grad`` is referenced by that slot alone, so adding into it in place
    changes no array anyone else holds.  Held elsewhere (``p.grad = q.grad = buf``, the caller's
    ``old = p.grad``, a view of it), an in-place sum would change the other tensor's gradient or
    the caller's array too (p.grad = q.grad = zeros gave both p's and q's gradients their sum),
    so the sum is a new array, as PyTorch's AccumulateGrad does (it checks the use count).  A
    ``.grad`` that is a view (``p.grad = buf[:2]``, or the ``g.T`` backward hands a weight) is
    added into only when its base, the memory written, is held by that view alone."""
    if sys.getrefcount(node._grad) > _ALONE:
        return False
    base = node._grad.base
    return base is None or sys.getrefcount(base) <= _BASE_ALONE


class _Slot:
    __slots__ = ("_grad",)


def _alone_counts():
    """The reference counts ``_held_by_slot_alone`` sees for an array held by one slot only, and
    for the base of a view held by that view only (measured, as the interpreter's count of the
    call's own references varies by version)."""
    node = _Slot()
    node._grad = np.zeros(1)
    alone = sys.getrefcount(node._grad)
    node._grad = np.zeros(2)[:1]
    base = node._grad.base
    return alone, sys.getrefcount(base)     # ``base`` named here as there


_ALONE, _BASE_ALONE = _alone_counts()


def _free(order):
    """Drop the saved buffers of ``order``'s nodes (after a backward without retain_graph)."""
    for node in order:
        if node.op is not None:
            node._vjps = None
            node._ctx = None
            node._ctx2 = None
            node._kwargs = None


def _check_grads(order):
    """Check, before anything is computed, that every ``.grad`` backward will add into (of the
    leaves and ``retain_grad`` nodes of ``order``) can take a gradient of its tensor's shape:
    so a backward either fills every ``.grad`` or raises having changed none."""
    for node in order:
        if node.op is not None and not node._retain:
            continue
        if node._rg and node._data.dtype.kind != "f":   # requires_grad set by hand
            raise DTypeError(f"backward: {_what(node)} of shape {node.shape} requires grad but "
                             f"holds {node._data.dtype} data: only float tensors can require grad "
                             "(make it float, e.g. tg.tensor(x, dtype=float), before setting "
                             "requires_grad)")
        g = node._grad
        if g is None:
            continue
        arr = g._data if isinstance(g, Tensor) else g
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
            raise DTypeError(f"backward: the existing .grad of {_what(node)} of shape {node.shape} "
                             f"must be a float array to add the new gradient into, got {kind}; "
                             "reset it with zero_grad() (or .grad = None)")
        if arr.shape != node.shape:
            raise ShapeError(f"backward: the existing .grad of {_what(node)} has shape {arr.shape}, "
                             f"but the tensor has shape {node.shape}; reset it with zero_grad() "
                             "(or .grad = None)")
        if arr.dtype != node._data.dtype:     # its .data replaced by one of another dtype since
            raise DTypeError(f"backward: the existing .grad of {_what(node)} has dtype {arr.dtype}, "
                             f"but the tensor has dtype {node._data.dtype}; reset it with "
                             "zero_grad() (or .grad = None)")
        if not isinstance(g, Tensor) and not arr.flags.writeable:
            raise DTypeError(f"backward: the existing .grad of {_what(node)} of shape {node.shape} "
                             "is a read-only array, so the new gradient cannot be added into it; "
                             "reset it with zero_grad() (or .grad = None)")


def _leaf(value):
    """A constant as a leaf that does not require grad (what a tensor-level rule receives)."""
    t = Tensor.__new__(Tensor)
    _init_leaf(t, np.asarray(value), _current())
    return t


def _on_paths(order, targets, idle=None):
    """The nodes of ``order`` (a sweep's, the root first) on paths from the root to one of
    ``targets``, in the same order: the targets it reaches, the nodes with a parent on such a
    path, and the root.  ``idle`` (a set, if given) gets the ids of the kept nodes with a rule
    that leads to no target, which need not run: a target none of whose parents is on such a
    path, and the root when it reaches no target (every other kept node has a parent on one)."""
    leads, kept = set(targets), []
    for node in reversed(order):          # parents before the nodes that use them
        if id(node) in leads:             # a target (a node joins leads once visited)
            kept.append(node)
            if idle is not None and node.parents and not any(id(p) in leads
                                                             for p in node.parents):
                idle.add(id(node))       # (a leaf, without a rule, is left out)
            continue
        for p in node.parents:
            if id(p) in leads:
                leads.add(id(node))
                kept.append(node)
                break
    if not kept or kept[-1] is not order[0]:
        kept.append(order[0])
        if idle is not None:
            idle.add(id(order[0]))
    kept.reverse()
    return kept


def _through_targets(order, targets):
    """ids of the nodes of ``order`` with a parent on a path to one of ``targets``: the only
    nodes whose rules ``grad(..., create_graph=True)`` has to run."""
    leads, through = set(targets), set()
    for node in reversed(order):          # parents before the nodes that use them
        for p in node.parents:
            if id(p) in leads:
                through.add(id(node))
                leads.add(id(node))
                break
    return through


@_one_sweep_at_a_time
def _backprop_graph(root, grad, retain_graph, targets):
    """The reverse-mode sweep of ``create_graph``: every gradient is a Tensor, made by the
    ops' tensor-level rules (:func:`defvjp`) from engine ops, so it can be differentiated
    again.  Same visiting order, checks and results as :func:`_backprop`; with ``targets``
    only the nodes on paths to them are visited."""
    from .ops import cast, sum_to   # ops builds on this module
    if not isinstance(grad, Tensor) and _is_container(grad) and _holds_tensor(grad):
        grad = _stacked(grad)     # a seed given as a list of tensors keeps their graph
    if isinstance(grad, Tensor):
        _seed(root, grad._data)
        seed = grad
    else:
        seed = _leaf(_seed(root, grad))
    order = _sweep_order(root, "backward" if targets is None else "grad", targets)
    if targets is None:
        _check_grads(order)
    through = None if targets is None else _through_targets(order, targets)
    anomaly = _current().anomaly
    root._g = seed
    results = []
    try:
        with enable_grad():
            for node in order:
                g = node._g
                if g is None:
                    continue
                node._g = None
                if anomaly:
                    _check_finite(node, g._data, "gradient reaching")
                if targets is not None:
                    if id(node) in targets:
                        prev = targets[id(node)]
                        targets[id(node)] = g if prev is None else prev + g
                    if id(node) not in through:
                        continue
                elif node.op is None or node._retain:
                    results.append((node, g))
                if node._vjps is None:      # a leaf
                    continue
                if _saved_digests:    # a graph built in detect_anomaly is alive
                    _check_saved(node, graph=True)
                if _replaced:         # a .data replaced since: its rule would read the new array
                    t = _replaced_since(node)
                    if t is not None:
                        raise _replaced_error(node, t)
                inputs, pgs = _graph_rule(node, g)
                for x, pg in zip(inputs, pgs):
                    if pg is None or not x._rg or (through is not None and id(x) not in through
                                                             and id(x) not in targets):
                        continue
                    if pg.shape != x.shape:
                        if type(node._vjps) is not Rule:    # a user's tg.defvjp rule
                            _check_user_shape(node, inputs, x, pg.shape)
                        pg = sum_to(pg, x.shape)
                    if pg.dtype != x.dtype:     # as backward: each input's gradient in its dtype
                        pg = cast(pg, x.dtype)
                    if anomaly:
                        _check_finite(node, pg._data, "the gradient rule of")
                    x._g = pg if x._g is None else x._g + pg
    finally:
        for node in order:
            node._g = None
    if not retain_graph:
        _free(order if through is None else [node for node in order if id(node) in through])
    for node, g in results:
        node._grad = g if node._grad is None else g + node._grad


def _replaced_error(node, t):
    return StaleGraphError(
        f"backward(create_graph=True): the .data of {_what(t)}"
        f"{'' if t.name else f' of shape {t.shape}'} was replaced (.data = ...) after "
        f"'{node.op}'{_where(node.scope)} used it: its create_graph rule reads the new array, "
        "where plain backward uses the one the forward saw, so the same graph would give "
        "another gradient; run the forward pass again after replacing it (nothing was changed)")


def _graph_rule(node, g):
    """(inputs as Tensors, their gradients as Tensors) from ``node``'s tensor-level rule."""
    rule = node._vjps
    if type(rule) is Rule:
        if not rule.is_keyed:
            return node.parents, rule(g, node, *node.parents)
        _, positions, *arrays = node._ctx
        kwargs = node._kwargs
        if positions is None:
            inputs = node.parents
        else:
            inputs = [_leaf(x) for x in arrays]
            for p, i in zip(node.parents, positions):
                inputs[i] = p
        return inputs, rule(g, node, *inputs, **kwargs)
    ctx = getattr(node, "_ctx", None)
    if ctx is not None and type(ctx) is not tuple:
        ctx = (ctx, node.parents, {})
    rule = None if ctx is None else _graph_vjps.get(ctx[0])
    if rule is None:
        raise BackwardError(
            f"backward(create_graph=True): op '{node.op}'{_where(node.scope)} has only a numpy "
            "gradient rule, so its gradient cannot be built from engine ops; give its forward a "
            "tensor-level rule with tg.defvjp(forward, rule), or leave this op out of the part "
            "of the graph that is differentiated twice")
    forward, inputs, kwargs = ctx
    inputs = [x if isinstance(x, Tensor) else _leaf(_constant(x)) for x in inputs]
    return inputs, rule(g, node, *inputs, **kwargs)


def grad(output, inputs, grad=None, retain_graph=None, create_graph=False):
    """Gradients of ``output`` with respect to each of ``inputs``, without touching ``.grad``.

    Parameters
    ----------
    output : Tensor
    inputs : Tensor or sequence of Tensor (leaves or intermediate nodes)
    grad : array_like or Tensor, optional
        Seed, as in ``Tensor.backward``; needed if output is not a scalar.
    retain_graph : bool, optional
        Keep the graph for another backward (default: False, or True with ``create_graph``).
    create_graph : bool
        Return the gradients as Tensors built from engine ops (differentiable again).

    Returns
    -------
    list of np.ndarray (of Tensor with ``create_graph``), one per input (zeros for an input
    the output does not depend on); a single input gives a single gradient; an input given
    twice gets two distinct arrays (PyTorch returns the same tensor twice).  An input that
    does not require grad but that the output is computed from is a BackwardError: no gradient
    was tracked for it (as PyTorch's ``autograd.grad`` refuses).

    Only the part of the graph on paths from ``output`` to ``inputs`` is run, checked and (without
    ``retain_graph``) freed, as PyTorch's ``autograd.grad``: a part elsewhere that an earlier
    backward freed, or whose inputs changed in place, is no error.
    """
    if not isinstance(output, Tensor):
        raise DTypeError(f"grad: output must be a Tensor (the result of engine ops), got "
                         f"{type(output).__name__}")
    single = isinstance(inputs, Tensor)
    try:
        inputs = [inputs] if single else list(inputs)
    except TypeError:
        raise DTypeError(f"grad: inputs must be a Tensor or a list of Tensors, got "
                         f"{type(inputs).__name__}") from None
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise DTypeError(f"grad: inputs must be Tensors of the output's graph, got "
                             f"{type(t).__name__} at position {i}")
        why = _stand_in_why(t)
        if why is not None:
            raise BackwardError(f"grad: input {i}: {why}")
    if not all(t._rg for t in inputs):
        _refuse_untracked(output, inputs)
    targets = {id(t): None for t in inputs}
    retain = create_graph if retain_graph is None else retain_graph
    if create_graph:
        _backprop_graph(output, grad, retain, targets)
        out = [targets[id(t)] if targets[id(t)] is not None else _leaf(np.zeros_like(t._data))
               for t in inputs]
    else:
        _backprop(output, grad, retain, targets)
        out = [np.asarray(targets[id(t)]) if targets[id(t)] is not None else np.zeros_like(t._data)
               for t in inputs]
    if len(targets) < len(inputs):      # an input given twice: each place its own result
        _distinct(out, inputs)
    return out[0] if single else out


def _distinct(out, inputs):
    """Give a repeated input's later places a copy of its gradient (an array's ``copy()``, a
    Tensor's ``x * 1``, exact, differentiable again): ``grad(y, [x, x])`` gave the same object
    twice (as PyTorch's ``autograd.grad`` does), so changing one result in place changed the
    other."""
    seen = set()
    for i, t in enumerate(inputs):
        if id(t) in seen:
            r = out[i]
            if isinstance(r, Tensor):
                with enable_grad():
                    out[i] = r * 1
            else:
                out[i] = r.copy()
        seen.add(id(t))


def _refuse_untracked(output, inputs, who="grad"):
    """Raise BackwardError if ``output``'s graph reads an input of ``grad`` that does not
    require grad: no gradient reaches it, and the zeros ``grad`` gives an input the output does
    not depend on would be read as its gradient (2 w x for x in sum(w x^2), not 0)."""
    wanted = {id(t): i for i, t in enumerate(inputs) if not t._rg}
    seen, stack = {id(output)}, [output]
    while stack:                     # the graph's nodes that require grad, and their inputs
        for p in stack.pop().parents:
            i = wanted.get(id(p))
            if i is not None:
                raise BackwardError(
                    f"{who}: input {i}{_label(p.name)} of shape {p.shape} does not require grad, "
                    "but the output is computed from it: its gradient was not tracked (zeros would "
                    "be given for it); make it with requires_grad=True")
            if p._rg and id(p) not in seen:
                seen.add(id(p))
                stack.append(p)


def tensor(data, requires_grad=False, name=None, dtype=None):
    """Make a leaf tensor (copying ``data``); float data defaults to float64, float32 is kept.

    A Tensor given as ``data`` is copied into a new leaf (as ``torch.tensor(t)``); a list, tuple
    or object array holding a Tensor that requires grad raises DTypeError (a new leaf would cut
    it from the graph): ``tg.stack`` keeps the graph.
    """
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)
