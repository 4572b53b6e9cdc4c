"""The core of the engine: tensors as DAG nodes, the one function that makes
every node, the global modes (no-grad, scopes, anomaly detection) and
reverse-mode backprop over the DAG in iterative topological order.

A node holds its parents and, per parent, one vector-Jacobian product (a
small closure over the numpy arrays the rule needs).  The closures never hold
a Tensor, so a graph has no reference cycles: dropping the last reference to
its output frees it by reference counting alone.
"""

import contextlib
import functools
import os
import traceback

import numpy as np

from .errors import (AnomalyError, BackwardError, BadIndexError, DTypeError,
                     GraphFreedError, ShapeError, TinygraphError)


class _Mode:
    """The engine's switches, read on every node creation."""
    grad_enabled = True
    scope = None
    anomaly = False


_mode = _Mode()


@contextlib.contextmanager
def no_grad():
    """Within the block, ops build no graph: results are leaves that do not require grad."""
    prev, _mode.grad_enabled = _mode.grad_enabled, False
    try:
        yield
    finally:
        _mode.grad_enabled = prev


@contextlib.contextmanager
def enable_grad():
    """Re-enable graph building inside a ``no_grad`` block."""
    prev, _mode.grad_enabled = _mode.grad_enabled, True
    try:
        yield
    finally:
        _mode.grad_enabled = prev


def is_grad_enabled():
    return _mode.grad_enabled


class scope:
    """Tag every node made in the block with ``label``; scopes nest as ``"outer/inner"``.

    ``with tg.scope("t=3") as label:`` binds the full scope string.  (A small class rather
    than a generator: an unroll enters one scope per time step.)
    """

    __slots__ = ("label", "_prev")

    def __init__(self, label):
        self.label = str(label)

    def __enter__(self):
        self._prev = prev = _mode.scope
        _mode.scope = self.label if prev is None else f"{prev}/{self.label}"
        return _mode.scope

    def __exit__(self, *exc):
        _mode.scope = self._prev
        return False


def current_scope():
    """The full label of the innermost active scope, or None."""
    return _mode.scope


@contextlib.contextmanager
def detect_anomaly():
    """Check every forward value and every gradient for NaN and Inf.

    The first one found raises :class:`AnomalyError` naming the op, its scope
    (the time step of an unroll) and the line of user code that created the node.
    """
    prev, _mode.anomaly = _mode.anomaly, True
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        _mode.anomaly = prev


def is_anomaly_enabled():
    """True inside ``detect_anomaly``."""
    return _mode.anomaly


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


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    try:
        arr = np.array(data, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise DTypeError(f"tensor: cannot make an array of {type(data).__name__}: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"tensor: unsupported dtype {arr.dtype} (need bool, integer or float data)")
    return arr


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

    __slots__ = ("data", "grad", "requires_grad", "name", "op", "parents", "scope",
                 "_vjps", "_g", "_own", "_retain", "_site", "__weakref__")
    __array_priority__ = 1000   # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # == is elementwise, identity is the hash

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        arr = _as_array(data, dtype)
        if requires_grad and arr.dtype.kind != "f":
            raise DTypeError(f"tensor{_label(name)}: only float tensors can require grad, "
                             f"got dtype {arr.dtype}")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.op = None
        self.parents = ()
        self.scope = _mode.scope
        self._vjps = None
        self._g = None
        self._own = False
        self._retain = False
        self._site = _creation_site() if _mode.anomaly else None

    # --- array-like facts ---------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __bool__(self):   # as numpy: the value of a one-element tensor, ambiguous otherwise
        if self.data.size != 1:
            raise ShapeError(f"bool: the truth value of a tensor of shape {self.shape} is "
                             "ambiguous; compare .item() or use .data.any() / .data.all()")
        return bool(self.data.item())

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def __repr__(self):
        extra = f", op={self.op}" if self.op else ""
        extra += f", name={self.name!r}" if self.name else ""
        extra += ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, threshold=20, prefix="tensor(")
        return f"tensor({body}{extra})"

    def named(self, name):
        """Set ``name`` and return self (handy inside step functions: ``h = (...).named("h")``)."""
        self.name = name
        return self

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        t = Tensor.__new__(Tensor)
        _init_node(t, self.data, None, (), None)
        t.name = self.name
        return t

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        self._retain = True
        return self

    def zero_grad(self):
        self.grad = None

    def backward(self, grad=None, retain_graph=False):
        """Back-propagate from this tensor, accumulating into the ``.grad`` of leaves.

        Parameters
        ----------
        grad : array_like, optional
            d(objective)/d(self), same shape as self; required unless self has one element.
        retain_graph : bool
            Keep the saved buffers so a second backward can run through this graph.
        """
        _backprop(self, grad, retain_graph, targets=None)


def _label(name):
    return f" '{name}'" if name else ""




def _init_node(t, data, op, parents, vjps):
    t.data = data
    t.grad = None
    t.name = None
    t.scope = _mode.scope
    t._g = None
    t._own = False
    t._retain = False
    t._site = None
    if parents and _mode.grad_enabled:
        t.op = op
        t.parents = parents
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._vjps = vjps
                break
        else:
            t.requires_grad = False
            t._vjps = None
    else:
        t.op = None
        t.parents = ()
        t.requires_grad = False
        t._vjps = None


def make_node(op, data, parents, vjps):
    """Make the output node of ``op``: the one place every node is created.

    Parameters
    ----------
    op : str
    data : array_like
        The forward value.
    parents : tuple of Tensor
    vjps : sequence of callables, one per parent, each ``g -> gradient for that parent``.
    """
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    t = Tensor.__new__(Tensor)
    _init_node(t, data, op, parents, vjps)
    if _mode.anomaly:
        t._site = _creation_site()
        if data.dtype.kind in "fc" and not np.isfinite(data).all():
            raise AnomalyError(f"{op}: forward produced {_bad_kind(data)}{_where(t.scope)}, "
                               f"created at {t._site}")
    return t


def _bad_kind(arr):
    return "NaN" if np.isnan(arr).any() else "Inf"


_ERROR_FOR = {ValueError: ShapeError, IndexError: BadIndexError, TypeError: DTypeError}


def _constant(x):
    if isinstance(x, (int, float, bool, np.ndarray, np.generic)):
        return x
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise DTypeError(f"cannot use {type(x).__name__} as a tensor: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"cannot use {type(x).__name__} of dtype {arr.dtype} as a tensor")
    return arr


def apply(op, forward, *inputs, **kwargs):
    """Run ``forward`` on the arrays behind ``inputs`` and make its output node.

    ``forward(*arrays, **kwargs)`` returns ``(value, vjps)`` with one vjp per input.
    Non-tensor inputs (numbers, lists, arrays) are constants: they get no gradient.
    numpy's errors become tinygraph errors naming the op, the input shapes and the scope.
    """
    arrays = []
    parents = []
    for x in inputs:
        if isinstance(x, Tensor):
            arrays.append(x.data)
            parents.append(x)
        else:
            arrays.append(_constant(x))
    try:
        value, vjps = forward(*arrays, **kwargs)
    except TinygraphError as e:   # an op's own check: add the scope it happened in
        if _mode.scope is None:
            raise
        raise type(e)(f"{e}{_where(_mode.scope)}") from None
    except (ValueError, IndexError, TypeError) as e:
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        raise _ERROR_FOR[type(e) if type(e) in _ERROR_FOR else _base(e)](
            f"{op}: {e} (input shapes {shapes}){_where(_mode.scope)}") from None
    if len(parents) != len(inputs):
        vjps = [v for x, v in zip(inputs, vjps) if isinstance(x, Tensor)]
    return make_node(op, value, tuple(parents), vjps)


def _base(e):
    for cls in _ERROR_FOR:
        if isinstance(e, cls):
            return cls
    return ValueError


def _unbroadcast(g, shape):
    """Sum a gradient back to ``shape`` (undoing numpy broadcasting)."""
    if g.ndim > len(shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    if g.shape != shape:
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if axes:
            g = g.sum(axis=axes, keepdims=True)
        if g.shape != shape:
            g = np.broadcast_to(g, shape)
    return g


def _sweep_order(root):
    """Nodes that require grad reachable from ``root``, each after every node that uses it
    (the order backward visits them: children before parents).

    Two passes with explicit stacks (no recursion, whatever the depth of the graph): the
    first counts, for every node, the edges coming from the nodes that use it, in its
    ``_g`` slot (free until the sweep); the second releases a node once all its users are
    out (Kahn's algorithm).  Raises GraphFreedError before any gradient is computed if
    part of the graph was freed.
    """
    root._g = 0
    nodes, stack = [root], [root]
    try:
        while stack:
            node = stack.pop()
            if node._vjps is None and node.op is not None:
                raise GraphFreedError(
                    f"backward: the graph through '{node.op}'{_where(node.scope)} was freed by an "
                    "earlier backward; call backward(retain_graph=True) the first time to "
                    "back-propagate through it again")
            for p in node.parents:
                if p.requires_grad:
                    if p._g is None:
                        p._g = 1
                        nodes.append(p)
                        stack.append(p)
                    else:
                        p._g += 1
        order, ready = [], [root]
        while ready:
            node = ready.pop()
            order.append(node)
            for p in node.parents:
                if p.requires_grad:
                    p._g -= 1
                    if p._g == 0:
                        ready.append(p)
    finally:
        for node in nodes:
            node._g = None
    return order


def _seed(root, grad):
    if not root.requires_grad:
        raise BackwardError("backward: this tensor does not require grad "
                            "(no leaf of its graph has requires_grad=True)")
    if grad is None:
        if root.data.size != 1:
            raise BackwardError(f"backward: output has shape {root.shape}; a non-scalar "
                                f"output needs grad= of that shape")
        return np.ones_like(root.data)
    try:
        g = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
    except (ValueError, TypeError) as e:
        raise DTypeError(f"backward: cannot use grad= of type {type(grad).__name__}: {e}") \
            from None
    if g.dtype.kind not in "iuf":     # complex, text, objects, dates: never a real gradient
        raise DTypeError(f"backward: grad= must be real numbers, got {type(grad).__name__} "
                         f"of dtype {g.dtype}")
    g = g.astype(root.dtype, copy=False)
    if g.shape != root.shape:
        raise ShapeError(f"backward: grad has shape {g.shape} but the output has shape {root.shape}")
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
            if (type(index) is np.ndarray and index.dtype.kind in "iu"
                    and index.size >= _SORTED_SCATTER_MIN):
                _add_rows_sorted(buf, index, self.values)
            else:
                np.add.at(buf, index, self.values)   # repeated indices accumulate
        else:
            index_axes = range(self.axis, self.axis + np.ndim(self.index))
            np.add.at(np.moveaxis(buf, self.axis, 0), self.index,
                      np.moveaxis(self.values, list(index_axes), list(range(len(index_axes)))))


_SORTED_SCATTER_MIN = 32     # below this many rows np.add.at is faster than sorting
_SORTED_SCATTER_CHUNK = 1024


def _add_rows_sorted(buf, index, values):
    """``np.add.at(buf, index, values)`` for an integer index array along axis 0, by sorting:
    rows with the same index are summed with one ``reduceat`` (~3x faster for thousands of rows)."""
    n = buf.shape[0]
    index = index.reshape(-1)
    values = values.reshape(index.shape + buf.shape[1:])
    for start in range(0, index.size, _SORTED_SCATTER_CHUNK):   # bounds the sorted copy
        part = index[start:start + _SORTED_SCATTER_CHUNK]
        part = np.where(part < 0, part + n, part)
        order = np.argsort(part, kind="stable")
        rows = part[order]
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
        buf[rows[starts]] += np.add.reduceat(values[start:start + part.size][order], starts, axis=0)


def _check_finite(node, arr, what):
    if not np.isfinite(arr).all():
        raise AnomalyError(
            f"backward: {what} '{node.op or 'leaf'}'{_label(node.name)}{_where(node.scope)} "
            f"{'contains' if what.startswith('gradient') else 'produced'} {_bad_kind(arr)}"
            + (f", node created at {node._site}" if node._site else ""))


def _accumulate(p, pg):
    """Add the gradient ``pg`` (dense, or a Scatter) into ``p._g``.

    A buffer the engine allocated itself (``p._own``) is added into in place; a gradient
    handed over by a vjp may be shared (``add`` gives one array to both inputs), so the
    first sum makes a new array, which ``p`` then owns.
    """
    data = p.data
    prev = p._g
    if type(pg) is Scatter:
        if not p._own:
            prev = np.zeros(data.shape, data.dtype) if prev is None else np.array(prev, data.dtype)
            p._g, p._own = prev, True
        pg.add_into(prev)
        return
    if type(pg) is not np.ndarray:
        pg = np.asarray(pg)
    if pg.shape != data.shape:
        pg = _unbroadcast(pg, data.shape)
    if pg.dtype is not data.dtype and pg.dtype != data.dtype:
        pg = pg.astype(data.dtype)
    if prev is None:
        p._g = pg
    elif p._own:
        prev += pg
    else:
        total = prev + pg
        p._g, p._own = (total if type(total) is np.ndarray else np.array(total)), True


def _backprop(root, grad, retain_graph, targets):
    """Reverse-mode sweep from ``root``.

    With ``targets`` (a dict id -> None) the gradients reaching those tensors are
    returned in it and no ``.grad`` is touched; without, leaves (and tensors marked with
    ``retain_grad``) accumulate into ``.grad`` -- all at once after the sweep, so an error
    raised midway (an anomaly) changes no ``.grad``.
    """
    seed = _seed(root, grad)
    order = _sweep_order(root)
    anomaly = _mode.anomaly
    root._g = seed
    results = []
    try:
        for node in order:
            g = node._g
            if g is None:
                continue
            if anomaly:
                _check_finite(node, g, "gradient reaching")
            if targets is not None:
                if id(node) in targets:
                    prev = targets[id(node)]
                    targets[id(node)] = g.copy() if prev is None else prev + g
            elif node.op is None or node._retain:
                results.append((node, g, node._own and node.op is None))
            node._g = None
            vjps = node._vjps
            if vjps is None:      # a leaf
                continue
            for p, vjp in zip(node.parents, vjps):
                if p.requires_grad:
                    pg = vjp(g)
                    if anomaly:
                        _check_finite(node, pg.values if type(pg) is Scatter else np.asarray(pg),
                                      "the gradient rule of")
                    _accumulate(p, pg)
            if not retain_graph:
                node._vjps = None
    finally:
        for node in order:
            node._g = None
            node._own = False
    for node, g, owned in results:
        if node.grad is None:
            node.grad = g if owned else np.array(g, dtype=node.data.dtype, copy=True)
        else:
            node.grad += g


def grad(output, inputs, grad=None, retain_graph=False):
    """Gradients of ``output`` with respect to each of ``inputs``, without touching ``.grad``.

    Parameters
    ----------
    output : Tensor
    inputs : Tensor or sequence of Tensor (leaves or intermediate nodes)
    grad : array_like, optional
        Seed, as in ``Tensor.backward``; needed if output is not a scalar.

    Returns
    -------
    list of np.ndarray, one per input (zeros for an input the output does not depend on).
    """
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
    targets = {id(t): None for t in inputs}
    _backprop(output, grad, retain_graph, targets)
    out = [np.asarray(targets[id(t)]) if targets[id(t)] is not None else np.zeros_like(t.data)
           for t in inputs]
    return out[0] if single else out


def tensor(data, requires_grad=False, name=None, dtype=None):
    """Make a leaf tensor (copying ``data``); float data defaults to float64, float32 is kept."""
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)
