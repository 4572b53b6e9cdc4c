"""Many gradients in one reverse sweep: the gradient of each of several outputs ("rows")
with respect to the same inputs, as the rows of one array.

``grad(outputs[r], inputs, grad=seeds[r], retain_graph=True)`` for every row r, in one
visit of the graph: each node carries the stack of the gradients of the rows that reach
it, with a leading row axis.  For the rules whose arithmetic is already correct with a
leading axis (the elementwise ones, matmul's two, broadcasting), one numpy call serves all the
rows at once; any other rule runs once per row, exactly as backward runs it.  Only the
nodes on a path to an input are visited, and nothing of the graph is changed (it can be
back-propagated again).  What diagnostics such as the connectivity ‖∂L(t)/∂h(k)‖ of every
loss term need, without one engine sweep per term.
"""

from functools import partial

import numpy as np

from . import ops
from .errors import BackwardError, DTypeError, ShapeError
from .tensor import (Owned, Rule, Scatter, Tensor, _refuse_untracked, _stand_in_why, _sweep_order,
                     _unbroadcast, enable_grad, make_node, saved)


def _outer_rows(a, g):                 # a^T g (d(a @ b)/db) for stacked g (n, N, M) or (n, M)
    if a.ndim == 2:
        return np.matmul(a.T, g)
    return a[None, :, None] * g[:, None, :]


# a shared rule's gradient function -> its form for stacked g: itself where its arithmetic
# already holds with a leading row axis (elementwise, and g @ b^T), a^T g row by row for b
_ROW_GRADS = {grad: grad for rule in (ops._ADD, ops._SUB, ops._MUL, ops._DIV, ops._NEG, ops._EXP,
                                      ops._LOG, ops._LOG1P, ops._TANH, ops._SIGMOID, ops._SOFTPLUS,
                                      ops._RELU, ops._ABS, ops._SQRT, ops._SIGN, ops._SQUARE,
                                      ops._EXPM1, ops._SIN, ops._COS, ops._NORMAL_CDF, ops._GELU)
              for grad in rule.grads}
_ROW_GRADS[ops._MATMUL_2D.grads[0]] = ops._MATMUL_2D.grads[0]
_ROW_GRADS[ops._MATMUL_2D.grads[1]] = lambda g, out, a, b: _outer_rows(a, g)
_ROW_GRADS[ops._ADDMM_2D.grads[0]] = ops._ADDMM_2D.grads[0]
_ROW_GRADS[ops._ADDMM_2D.grads[1]] = ops._ADDMM_2D.grads[1]
_ROW_GRADS[ops._ADDMM_2D.grads[2]] = lambda g, out, c, a, b: _outer_rows(a, g)
_ROW_GRADS[ops._ADDMM.grads[0]] = ops._ADDMM.grads[0]
# ... and those right with a leading row axis whatever their settings (g itself; a where)
_WITH_SETTINGS = {ops._BROADCAST_TO.grads[0], ops._LEAKY_RELU.grads[0]}
_ROW_GRADS.update((grad, grad) for grad in _WITH_SETTINGS)


def _stacked_rule(vjp):
    """``(rule for stacked gradients, its bound arguments)`` of ``vjp``, or None if its
    arithmetic is not known to be right with a leading row axis."""
    if type(vjp) is partial and vjp.func is _run_grad:   # a shared rule's gradient, bound
        grad, out, inputs, kwargs = vjp.args
        stacked = _ROW_GRADS.get(grad)
        if stacked is not None and (not kwargs or grad in _WITH_SETTINGS):
            return (lambda args, g: stacked(g, *args, **kwargs)), (out, *inputs)
    return None


def _run_grad(grad, out, inputs, kwargs, g):
    return grad(g, out, *inputs, **kwargs)


def _run_joint(joint, i, out, inputs, kwargs, g):
    return joint(g, out, *inputs, **kwargs)[i]


def _vjps(node):
    """One ``g -> gradient`` per parent of ``node`` (a shared rule bound to the node's saved
    inputs; a joint rule's is its gradient for that parent)."""
    rule = node._vjps
    if type(rule) is not Rule:
        return rule
    out, inputs, kwargs, positions = saved(node)
    at = range(len(node.parents)) if positions is None else positions
    if rule.joint is not None:
        return [partial(_run_joint, rule.joint, i, out, inputs, kwargs) for i in at]
    return [None if rule.grads[i] is None else partial(_run_grad, rule.grads[i], out, inputs, kwargs)
            for i in at]


def _rows_to_shape(pg, n, shape, dtype):
    """A stack of ``n`` gradients summed back to ``shape`` each (numpy broadcasting undone on
    every axis but the first), as an array (n, *shape) of ``dtype``."""
    extra = pg.ndim - 1 - len(shape)
    if extra > 0:
        pg = pg.sum(axis=tuple(range(1, 1 + extra)))
    elif extra < 0:
        pg = pg.reshape((n,) + (1,) * -extra + pg.shape[1:])
    axes = tuple(i + 1 for i, size in enumerate(shape) if size == 1 and pg.shape[i + 1] != 1)
    if axes:
        pg = pg.sum(axis=axes, keepdims=True)
    if pg.shape[1:] != shape:
        pg = np.broadcast_to(pg, (n,) + shape)
    return pg.astype(dtype, copy=False)


def _one_row(pg, shape, dtype):
    """One row's gradient from a rule (dense, in the broadcast shape, or a Scatter) as a dense
    array of ``shape``."""
    if type(pg) is Scatter:
        buf = np.zeros(shape, dtype)
        pg.add_into(buf)
        return buf
    if type(pg) is Owned:
        pg = pg.array
    pg = np.asarray(pg)
    if pg.shape != shape:
        pg = _unbroadcast(pg, shape)
    return pg.astype(dtype, copy=False)


def _apply(vjp, g, shape, dtype):
    """The parent's gradients (n, *shape) from the node's stacked gradients ``g`` (n, ...)."""
    n = g.shape[0]
    stacked = _stacked_rule(vjp)
    if stacked is not None:
        rule, args = stacked
        pg = np.asarray(rule(args, g))
        if pg.ndim >= 1 and pg.shape[0] == n:
            return _rows_to_shape(pg, n, shape, dtype)
    out = np.empty((n,) + shape, dtype)
    some = False
    for i in range(n):
        pg = vjp(g[i])
        if pg is None:       # no gradient for this parent this time (a user's op may say so)
            out[i] = 0
        else:
            out[i] = _one_row(pg, shape, dtype)
            some = True
    return out if some else None


def _add_rows(held, rows, values):
    """Add the gradients ``values`` (one per row of ``rows``, an increasing int array) into
    ``held`` ((rows, stack) or None); returns the new (rows, stack)."""
    if held is None:
        return rows, values
    have, stack = held
    if len(have) == len(rows) and (have is rows or np.array_equal(have, rows)):
        return have, stack + values
    union = np.union1d(have, rows)
    total = np.zeros((len(union),) + stack.shape[1:], np.result_type(stack, values))
    total[np.searchsorted(union, have)] += stack
    total[np.searchsorted(union, rows)] += values
    return union, total


def grad_rows(outputs, inputs, seeds=None):
    """The gradient of each of ``outputs`` with respect to each of ``inputs``, in one sweep.

    Parameters
    ----------
    outputs : sequence of R Tensors (the rows; one Tensor may appear in several rows, e.g.
        with one seed per unit for a Jacobian)
    inputs : sequence of Tensors of the outputs' graphs (leaves or intermediate nodes)
    seeds : sequence of R arrays, optional
        Row r's seed, shaped like ``outputs[r]`` (as ``grad=`` of ``tg.grad``); default ones
        for scalar outputs.

    Returns
    -------
    list of np.ndarray, one per input, of shape (R, *input.shape): row r is
    ``tg.grad(outputs[r], input, grad=seeds[r], retain_graph=True)`` (zeros where row r does
    not depend on the input, or its output needs no gradient).  An input that does not require
    grad but that an output is computed from is a BackwardError, as ``tg.grad``'s; as there,
    only the part of the graph on paths to the inputs is run and checked (a freed part
    elsewhere is no error).
    """
    outputs, inputs = list(outputs), list(inputs)
    for what, items in (("outputs", outputs), ("inputs", inputs)):
        for i, t in enumerate(items):
            if not isinstance(t, Tensor):
                raise DTypeError(f"grad_rows: {what} must be Tensors, got {type(t).__name__} "
                                 f"at position {i}")
    for i, t in enumerate(inputs):
        why = _stand_in_why(t)
        if why is not None:
            raise BackwardError(f"grad_rows: input {i}: {why}")
    count = len(outputs)
    if seeds is None:
        for r, out in enumerate(outputs):
            if out._data.size != 1:
                raise BackwardError(f"grad_rows: output {r} has shape {out.shape}; a non-scalar "
                                    "output needs a seed of that shape")
        seeds = [np.ones_like(out._data) for out in outputs]
    else:
        try:
            seeds = [np.asarray(s._data if isinstance(s, Tensor) else s) for s in seeds]
        except (ValueError, TypeError) as e:
            raise DTypeError(f"grad_rows: cannot make arrays of the seeds: {e}") from None
        for r, s in enumerate(seeds):   # as backward's grad=: complex, bool, text or objects
            if s.dtype.kind not in "iuf":   # are never a gradient (the cast parsed text, made
                raise DTypeError(          # None NaN and dropped imaginary parts)
                    f"grad_rows: seed {r} must be real numbers, got dtype {s.dtype}")
        if len(seeds) != count:
            raise ShapeError(f"grad_rows: {count} outputs but {len(seeds)} seeds")
        for r, (out, s) in enumerate(zip(outputs, seeds)):
            if s.shape != out.shape:
                raise ShapeError(f"grad_rows: seed {r} has shape {s.shape} but output {r} has "
                                 f"shape {out.shape}")
    results = [np.zeros((count,) + t.shape, t._data.dtype) for t in inputs]
    roots = {}
    for r, out in enumerate(outputs):
        if out.requires_grad:
            roots.setdefault(id(out), (out, []))[1].append(r)
    if not roots or not inputs:
        return results
    with enable_grad():     # a node joining the outputs, so that the engine orders them once
        join = make_node("grad_rows", np.zeros(()), tuple(o for o, _ in roots.values()),
                         tuple(None for _ in roots))
    if not all(t._rg for t in inputs):    # one the outputs read would get zeros, not its gradient
        _refuse_untracked(join, inputs, "grad_rows")
    wanted = {}
    for i, t in enumerate(inputs):
        wanted.setdefault(id(t), []).append(i)
    order = _sweep_order(join, "grad_rows", wanted)[1:]
    through = set(wanted)                 # nodes with a path to an input
    for node in reversed(order):          # parents before the nodes that use them
        if id(node) not in through and any(id(p) in through for p in node.parents):
            through.add(id(node))
    held = {}
    for key, (out, rows) in roots.items():
        if key in through:
            stack = np.stack([seeds[r].astype(out._data.dtype, copy=False) for r in rows])
            held[key] = (np.array(rows), stack)
    for node in order:
        entry = held.pop(id(node), None)
        if entry is None:
            continue
        rows, g = entry
        for i in wanted.get(id(node), ()):
            results[i][rows] += g
        if node._vjps is None:
            continue
        for p, vjp in zip(node.parents, _vjps(node)):
            if vjp is None or not p.requires_grad or id(p) not in through:
                continue
            pg = _apply(vjp, g, p.shape, p._data.dtype)
            if pg is not None:
                held[id(p)] = _add_rows(held.get(id(p)), rows, pg)
    return results
