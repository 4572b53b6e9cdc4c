"""Record the ops a piece of code makes, then run them again on other arrays: a replay.

The idea of Chainer's ``static_graph`` and tinygrad's ``TinyJit``, on the engine's own ops::

    with tape.recording() as rec:
        y = step(h, u)                       # engine ops, made as usual
    program = tape.Program.of(rec, [h, u], [y])
    if isinstance(program, str): ...         # why it cannot be replayed
    values, saved = program.forward([h2, u2])   # the same ops on other arrays
    grads_in, grads_outside = program.backward(values, saved, [g_y])

A :class:`Program` is the list of recorded ops with where each reads its inputs from: an
input given to :meth:`Program.of`, the output of an earlier op, a tensor from outside that
requires grad (a parameter: its gradient is returned as well), or a constant (a number, an
array, a tensor that requires no grad, kept by value).  ``forward`` calls each op's own
forward function on arrays and ``backward`` its own gradient rule, in reverse: no Tensor
is made.  Whether two recordings made the same program (:meth:`Program.same`) says whether
one recorded step stands for the others: same ops, same constants, same outside tensors,
same shapes.

What a recording cannot see, it refuses: a tensor's value read as a Python value or a plain
array (``item()``, ``float(t)``, ``bool(t)``, ``np.asarray(t)``, ``t.data``, ``str(t)``), on which the code
may branch; a value the engine turns into a constant (``detach()``, a comparison, ``where``'s
condition, an index or targets given as a Tensor, ``argmax``, ``one_hot``); fresh random
numbers (``dropout``, ``rand``, ``randn`` without a seed); a new tensor made of a tensor
(``tg.tensor(t)``); ops made with gradients switched otherwise than where the recording began
(``tg.no_grad`` inside the step: a cut a replay would not make); a gradient kept by
``retain_grad`` (a replayed step makes no tensor to keep it in); and nodes made without
:func:`tinygraph.apply`.  What an op read is kept as it was when the op ran (numpy arrays among
its inputs, settings and closure, the arrays of tensors that need no gradient), so a buffer the
code changes in place between two recordings makes them differ.  Python state the code reads
that is the same in the two recorded steps and changes later (a counter, ``t % 10``), and
module globals a forward function reads (or, for a method, its object's attributes), are
invisible to it; the methods of two objects are two forward functions.  A user's op (one
not of tinygraph or rnn) may make outputs whose shape follows its values: the replayed code
checks each of its outputs against the recorded step's shape and dtype
(:class:`StepDiffers`), and each of its gradients as the engine does (:func:`_user_grad`).

The loops that run a recorded step again and again (:func:`compile_scan`) write the ops that
have a lean form (:mod:`tinygraph.ops`, ``LEAN_FORWARDS`` and ``LEAN_GRADS``) as numpy calls in
the loop itself, not calls of the op's forward and rule: the same calls, so the same bits.
"""

import functools
import operator
import re
import threading
import types

import numpy as np

from .errors import TinygraphError
from .tensor import (_TRANSPOSES, Owned, Product, Rule, Scatter, Tensor, _current, _graph_rule,
                     _real_user_grad, _tapes, _tile, _unbroadcast,
                     apply)


class Recording:
    """What :func:`recording` saw: ``ops``, a list of ``(op, forward, inputs, kwargs, node,
    cells)`` in the order they were made (``kwargs`` with its arrays copied, ``cells`` the
    values in ``forward``'s closure then, copied likewise, or None); ``read``, None, or how a
    tensor's value was read; ``made``, how many nodes were made (by :func:`apply` or not);
    ``grad``, whether gradients were on when it began; ``kept``, ``id`` -> a copy of the array
    of each tensor that needs no gradient as the first op that read it saw it (numpy operands
    are the ops' own copies already)."""

    __slots__ = ("ops", "read", "made", "grad", "kept")

    def __init__(self):
        self.ops = []
        self.read = None
        self.made = 0
        self.grad = _current().grad_enabled
        self.kept = {}


class recording:
    """Record the engine ops this thread makes inside the block (other threads are not
    recorded).  Gives a :class:`Recording`, or None inside another recording of this thread
    (nothing is recorded twice).  (A small class rather than a generator: an unroll records
    two steps.)"""

    __slots__ = ("_key",)

    def __enter__(self):
        key = threading.get_ident()
        if key in _tapes:
            self._key = None
            return None
        self._key = key
        rec = _tapes[key] = Recording()
        return rec

    def __exit__(self, *exc):
        if self._key is not None:
            del _tapes[self._key]
        return False


_IN, _OUTSIDE, _CONST, _OP = range(4)


class Program:
    """The recorded ops as a program over slots (see the module docstring).

    Slots, in order: the inputs, the outside tensors that require grad, the constants, the
    ops' outputs.  ``ops[j] = (name, forward, args, kwargs)``, ``args`` the slot of each
    input; ``outputs``: the slots of the outputs.
    """

    def __init__(self, n_in, outside, consts, ops, outputs, shapes, cells=None, in_shapes=None):
        self.n_in = n_in
        self.in_shapes = in_shapes       # (shape, dtype) of every input (None: not known)
        self.cells = cells if cells is not None else [None] * len(ops)  # closures' values then
        self.outside = outside           # the outside tensors that require grad
        self.held = []                   # the tensors that need no gradient whose arrays the
        #                                  constants are (a replay's node reads them as well)
        self.held_of = [None] * len(consts)   # per constant: its tensor's index in held, or None
        self.consts = consts
        self.ops = ops
        self.outputs = outputs
        self.shapes = shapes             # (shape, dtype) of every op's output
        first = n_in + len(outside) + len(consts)
        self.first_op = first
        self.size = first + len(ops)
        self._code = None       # compiled on first use, or an equal program's (_compiled)
        self._need = None       # made when first asked for (a replay's step that is compared
        #                         and run from compiled code never asks)

    @property
    def _base(self):
        """Every slot's value known before a run: the constants (None elsewhere)."""
        base = [None] * self.size
        start = self.n_in + len(self.outside)
        base[start:start + len(self.consts)] = self.consts
        return base

    @property
    def need(self):
        """Which slots need a gradient: the inputs and outside tensors, and ops that read one."""
        if self._need is None:
            need = [True] * (self.n_in + len(self.outside)) + [False] * len(self.consts)
            for _, _, args, _ in self.ops:
                need.append(any(need[i] for i in args))
            self._need = need
        return self._need

    @classmethod
    def of(cls, rec, inputs, outputs):
        """The program of Recording ``rec`` from the Tensors ``inputs`` to the Tensors
        ``outputs``, or a str saying why it cannot be replayed."""
        if rec is None:
            return "recorded inside another recording"
        if rec.read is not None:
            return rec.read
        if rec.made != len(rec.ops):
            return "the step makes nodes without tinygraph.apply"
        slots = {}
        for i, x in enumerate(inputs):
            if not isinstance(x, Tensor):     # its ops would keep this step's values as constants
                return (f"input {i} of the step is {type(x).__name__}, not a Tensor (an input "
                        "map that gives numpy arrays or numbers)")
            if id(x) in slots:
                return "the step reads one tensor as two inputs"
            slots[id(x)] = (_IN, i)
        outside, outside_at, consts, ops, shapes, cells = [], {}, [], [], [], []
        held, held_at, held_of = [], {}, []
        kept = rec.kept
        for j, (name, forward, args, kwargs, node, values) in enumerate(rec.ops):
            refs = []
            for x in args:
                if isinstance(x, Tensor):
                    ref = slots.get(id(x))
                    if ref is None:
                        if x._rg:
                            if id(x) not in outside_at:
                                outside_at[id(x)] = len(outside)
                                outside.append(x)
                            ref = (_OUTSIDE, outside_at[id(x)])
                        else:
                            ref = (_CONST, len(consts))
                            consts.append(kept.get(id(x), x._data))
                            if id(x) not in held_at:
                                held_at[id(x)] = len(held)
                                held.append(x)
                            held_of.append(held_at[id(x)])
                else:
                    ref = (_CONST, len(consts))
                    consts.append(x)      # a number, or the op's own copy of an array
                    held_of.append(None)
                refs.append(ref)
            slots[id(node)] = (_OP, j)
            ops.append((name, forward, refs, kwargs))
            cells.append(values)
            data = node._data
            shapes.append((data.shape, data.dtype))
        outs = []
        for y in outputs:
            if not isinstance(y, Tensor):
                return f"the step returned {type(y).__name__}, not a Tensor"
            ref = slots.get(id(y))
            if ref is None:
                return "the step returned a tensor it did not make or read"
            outs.append(ref)
        n_in, n_out = len(inputs), len(outside)
        first = n_in + n_out + len(consts)
        place = (0, n_in, n_in + n_out, first)      # where each kind of slot starts
        ops = [(name, forward, tuple([place[kind] + k for kind, k in refs]), kwargs)
               for name, forward, refs, kwargs in ops]
        program = cls(n_in, outside, consts, ops, tuple([place[kind] + k for kind, k in outs]),
                      shapes, cells, tuple([(x._data.shape, x._data.dtype) for x in inputs]))
        program.held = held
        program.held_of = held_of
        return program

    def same(self, other, outside=True):
        """True when ``other`` (a Program, or a str) would compute the same function: the same
        ops with the same forward functions, settings, wiring, constants, outside tensors and
        shapes (with ``outside=False``, other outside tensors of the same shapes in the same
        places: the same code, run on other parameters' arrays)."""
        if not isinstance(other, Program):
            return False
        if (self.n_in != other.n_in or len(self.ops) != len(other.ops)
                or self.outputs != other.outputs or self.shapes != other.shapes
                or self.in_shapes != other.in_shapes
                or len(self.outside) != len(other.outside) or len(self.consts) != len(other.consts)):
            return False
        if outside and any(a is not b for a, b in zip(self.outside, other.outside)):
            return False
        if not outside and any(a.shape != b.shape or a.dtype != b.dtype
                               for a, b in zip(self.outside, other.outside)):
            return False
        if not all(_equal(a, b) for a, b in zip(self.consts, other.consts)):
            return False
        for (n1, f1, a1, k1), (n2, f2, a2, k2), c1, c2 in zip(self.ops, other.ops,
                                                                self.cells, other.cells):
            if n1 != n2 or a1 != a2 or not _equal(k1, k2):
                return False
            if not _same_function(f1, f2, cells=None if c1 is None or c2 is None else (c1, c2)):
                return False
        return True

    def _compiled(self):
        """The code made for this program (forward, backward, scans), shared with an earlier
        program that is the same but for its outside tensors (a cell unrolled again makes new
        transposes of its weights: the code reads their arrays when it runs).  The code calls
        the earlier program's forward functions, so theirs must be these: the same functions,
        or closures of the same code over the same objects (not equal ones: those of another
        cell may have changed since they were recorded)."""
        if self._code is None:
            key = (self.n_in, self.in_shapes, len(self.outside), len(self.consts), self.outputs,
                   tuple(self.shapes),
                   tuple((name, args) for name, _, args, _ in self.ops))
            known = _known.get(key)
            if (known is not None and known[0].same(self, outside=False)
                    and all(_same_function(a[1], b[1], equal=operator.is_)
                            for a, b in zip(known[0].ops, self.ops))):
                self._code = known[1]
            else:
                self._code = {}
                if len(_known) >= 64:
                    _known.clear()
                _known[key] = (self._stripped(), self._code)
        return self._code

    def _stripped(self):
        """A copy for comparisons that holds no tensor: the outside ones as their shapes."""
        twin = Program.__new__(Program)
        twin.__dict__.update(self.__dict__)
        twin.outside = [_Shape(x.shape, x.dtype) for x in self.outside]
        twin.held = []
        twin._code = None
        return twin

    # ------------------------------------------------------------------ running it
    def forward(self, inputs):
        """Run the ops on the arrays ``inputs``: (every slot's value, every op's rule), what
        :meth:`backward` needs.  Runs straight-line code made for this program (each op's
        forward called on its slots' arrays)."""
        code = self._compiled()
        if "forward" not in code:
            code["forward"] = _compile_forward(self)
        return code["forward"](inputs, [x._data for x in self.outside])

    def outputs_of(self, values):
        return [values[i] for i in self.outputs]

    def backward(self, values, rules, grads, deferred=None):
        """The gradients of the inputs and of the outside tensors (lists, None where nothing
        flows) from the gradients ``grads`` of the outputs (None for no gradient).

        ``deferred``, a list of one list per outside tensor: a^T g gradients of an outside
        matrix b of ``a @ b`` (matmul, addmm; or of its transpose taken in the step) are not
        computed but appended there as ``(a, g)``, to be summed over many steps with one
        product (:func:`sum_deferred`); a step that brings a list to :data:`_CHUNK_BYTES` of
        rows sums it (:func:`flush_deferred`) into that tensor's gradient it returns."""
        code = self._compiled()
        if "backward" not in code:
            code["backward"] = _compile_backward(self, values, rules)
        backward = code["backward"]
        if deferred is None:
            deferred = [[] for _ in self.outside]
            got = backward(values, rules, grads, deferred)
            if got is not None:
                g_in, g_out = got
                return g_in, [_with_deferred(g, d) for g, d in zip(g_out, deferred)]
        else:
            got = backward(values, rules, grads, deferred)
        if got is None:            # a rule other than the one compiled for: interpret
            got = self._interpret_backward(values, rules, grads)
        return got

    def _interpret_backward(self, values, rules, grads):
        gs = [None] * self.size
        for i, g in zip(self.outputs, grads):
            if g is not None:
                gs[i] = g if gs[i] is None else gs[i] + g
        need = self.need
        j = self.size
        for (name, _, args, kwargs), vjps in zip(reversed(self.ops), reversed(rules)):
            j -= 1
            g = gs[j]
            if g is None:
                continue
            arrays = [values[a] for a in args]
            joint = vjps.joint(g, values[j], *arrays, **kwargs) if type(vjps) is Rule and vjps.joint else None
            for k, i in enumerate(args):
                if not need[i]:
                    continue
                if joint is not None:
                    pg = joint[k]
                elif type(vjps) is Rule:
                    grad = vjps.grads[k]
                    pg = None if grad is None else grad(g, values[j], *arrays, **kwargs)
                else:
                    pg = None if vjps[k] is None else vjps[k](g)
                    if pg is not None:
                        pg = _user_grad(pg, values[i], name, k)
                if pg is not None:
                    pg = _dense(pg, values[i])
                    gs[i] = pg if gs[i] is None else gs[i] + pg
        n_in = self.n_in
        return gs[:n_in], gs[n_in:n_in + len(self.outside)]

    def graph_forward(self, inputs, consts=None):
        """:meth:`forward` as engine ops on the Tensors ``inputs`` (for ``create_graph``):
        every slot's value, Tensors for the inputs, outside tensors and ops; ``consts``, if
        given, stand for the recorded constants (same values)."""
        values = self._base
        if consts is not None:
            start = self.n_in + len(self.outside)
            values[start:start + len(consts)] = consts
        values[:self.n_in] = inputs
        for i, x in enumerate(self.outside):
            values[self.n_in + i] = x
        j = self.first_op
        for name, forward, args, kwargs in self.ops:
            values[j] = apply(name, forward, *[values[i] for i in args], **kwargs)
            j += 1
        return values

    def graph_backward(self, values, grads):
        """:meth:`backward` on the Tensors of :meth:`graph_forward`, for ``create_graph``: the
        gradients (Tensors, None where nothing flows) of the inputs and outside tensors, built
        from the ops' tensor-level rules, so they can be differentiated again."""
        from .ops import sum_to
        gs = [None] * self.size
        for i, g in zip(self.outputs, grads):
            if g is not None:
                gs[i] = g if gs[i] is None else gs[i] + g
        j = self.size
        for _, _, args, _ in reversed(self.ops):
            j -= 1
            g = gs[j]
            if g is None or values[j]._vjps is None:
                continue
            ins, pgs = _graph_rule(values[j], g)
            for i, x, pg in zip(args, ins, pgs):
                if pg is None or not self.need[i]:
                    continue
                if pg.shape != x.shape:
                    pg = sum_to(pg, x.shape)
                gs[i] = pg if gs[i] is None else gs[i] + pg
        n_in = self.n_in
        return gs[:n_in], gs[n_in:n_in + len(self.outside)]


def _deferrable():
    """The gradient functions a^T g of the matrix b in ``a @ b`` -> the position of a among
    the op's inputs."""
    from . import ops
    table = {}
    for rule, at in (("_MATMUL_2D", 0), ("_ADDMM_2D", 1)):
        rule = getattr(ops, rule, None)
        if rule is not None:
            table[rule.grads[-1]] = at
    return table


_CHUNK_BYTES = 8 << 20
"""The deferred ``(a, g)`` pairs of one outside matrix are summed (:func:`flush_deferred`) as
soon as they hold this many bytes of rows (at least one pair): each chunk is one product of
its stacked rows, added into the matrix's gradient, so a wide step's a^T g is neither its own
mid-size product and (K, N) add at every step nor the whole sequence's rows kept at once."""


_ROW_VIEW_BYTES = 1 << 14
"""Pairs' arrays of at least this many bytes are looked at for rows that lie one after the other
in one block (a replay's states, an input map's gradient rows), stacked as a view of it."""


def sum_deferred(pairs):
    """The sum of a^T g over the ``(a, g)`` pairs that :meth:`Program.backward` deferred, as
    one product of the stacked rows.  The a's (or g's) that are consecutive rows of one block,
    in the pairs' order or its reverse, are stacked as a view of the block, not copied; the
    other side is then stacked in the same order."""
    if len(pairs) == 1:
        a, g = pairs[0]
        return np.outer(a, g) if a.ndim == 1 else np.dot(a.T, g)
    firsts, seconds = [p[0] for p in pairs], [p[1] for p in pairs]
    a, g = _adjacent(firsts), _adjacent(seconds)
    if a is not None and g is not None and a[1] != g[1]:
        g = None
    if a is None and g is None:
        return np.dot(_rows_of(firsts).T, _rows_of(seconds))
    flipped = (a or g)[1]
    if a is None:
        a = (_rows_of(firsts[::-1] if flipped else firsts), flipped)
    if g is None:
        g = (_rows_of(seconds[::-1] if flipped else seconds), flipped)
    return np.dot(a[0].T, g[0])


def _adjacent(arrays):
    """``(view, reversed)``: the rows of the arrays (of one shape, (N, K) or (K,)) stacked as
    one view of the block they are consecutive rows of, in the list's order (``reversed``
    False) or in its reverse; or None (small arrays are not looked at)."""
    first = arrays[0]
    base = first.base
    if (type(first) is not np.ndarray or first.nbytes < _ROW_VIEW_BYTES or first.ndim not in (1, 2)
            or type(base) is not np.ndarray or not base.flags.c_contiguous
            or not first.flags.c_contiguous):
        return None
    at = []
    for x in arrays:
        if (type(x) is not np.ndarray or x.base is not base or x.shape != first.shape
                or x.dtype != first.dtype or not x.flags.c_contiguous):
            return None
        at.append(x.__array_interface__["data"][0])
    size = first.nbytes
    if all(b - a == size for a, b in zip(at, at[1:])):
        start, flipped = at[0], False
    elif all(a - b == size for a, b in zip(at, at[1:])):
        start, flipped = at[-1], True
    else:
        return None
    offset = start - base.__array_interface__["data"][0]
    if offset < 0 or offset + size * len(arrays) > base.nbytes:
        return None
    width = first.shape[-1]
    view = np.ndarray((size * len(arrays) // (width * first.itemsize), width), first.dtype,
                      buffer=base, offset=offset)
    return view, flipped


def _as_row(pairs, n, g, row):
    """In the last ``n`` pairs, the array ``g`` (a step's gradient, just copied into the block
    row ``row``) replaced by that row, so that consecutive steps' rows stack as a view."""
    for k in range(max(len(pairs) - n, 0), len(pairs)):
        a, b = pairs[k]
        if b is g:
            pairs[k] = (a, row)
        elif a is g:
            pairs[k] = (row, b)


def flush_deferred(pairs):
    """:func:`sum_deferred` of ``pairs`` (a list), which is then emptied: a chunk's sum."""
    total = sum_deferred(pairs)
    pairs.clear()
    return total


def _chunk_pairs(first, second):
    """How many ``(a, g)`` pairs of these arrays (one step's) make a chunk of
    :data:`_CHUNK_BYTES`."""
    size = np.asarray(first).nbytes + np.asarray(second).nbytes
    return max(1, _CHUNK_BYTES // max(size, 1))


def _rows_of(arrays):
    """The rows of arrays of one shape, (N, K) or (K,), one after the other: (n N, K)."""
    if arrays[0].ndim == 2:
        return np.concatenate(arrays)
    return np.stack(arrays)


def _with_deferred(g, pairs):
    if not pairs:
        return g
    total = sum_deferred(pairs)
    return total if g is None else g + total


def _compile_forward(program):
    """``forward(inputs, outside arrays) -> (values, rules)`` as straight-line code."""
    n_in, n_out = program.n_in, len(program.outside)
    env = {}
    lines = ["def forward(ins, outside):"]
    if n_in:
        lines.append("    " + "".join(f"v{i}, " for i in range(n_in)) + "= ins")
    if n_out:
        lines.append("    " + "".join(f"v{n_in + i}, " for i in range(n_out)) + "= outside")
    lines += ["    " + line for line in _forward_body(program, env)]
    lines.append(f"    return [{_slots('v', program.size)}], ({_slots('r', len(program.ops))})")
    return _made("forward", lines, env)


def _arguments(args, kwargs, j, env, none=False):
    """The arguments of op j's call: its input slots (with ``none``, None for each), and its
    settings as ``**K{j}``."""
    call = ", ".join("None" if none else f"v{i}" for i in args)
    if kwargs:
        env[f"K{j}"] = kwargs
        call += f", **K{j}"
    return call


def _slots(prefix, n, start=0):
    return "".join(f"{prefix}{i}, " for i in range(start, start + n))


def _unpack(prefix, n, source):
    """The line unpacking ``source`` into ``{prefix}0 .. {prefix}{n-1}``; ``pass`` when there is
    nothing to unpack (a step without input, or one that makes no op)."""
    return f"{_slots(prefix, n)}= {source}" if n else "pass"


def _forward_body(program, env, lean=None):
    """Lines computing every op, ``v{slot}`` and its rule ``r{j}``, from the inputs and outside
    arrays in ``v0 ...`` (constants are globals of ``env``).  ``lean``: a recorded step's
    ``(values, rules)``; an op with a lean form for them runs as that form (its rule the
    recorded one): the caller makes sure every step's inputs have the recorded shapes and
    dtypes (which fix every op's)."""
    env.update(_nd=np.ndarray, _asarray=np.asarray)
    n_in, n_out = program.n_in, len(program.outside)
    for i, c in enumerate(program.consts, n_in + n_out):
        env[f"v{i}"] = c
    lines = []
    slot = program.first_op
    for j, (_, forward, args, kwargs) in enumerate(program.ops):
        index = _basic_index(forward, kwargs)
        if index is not None:       # x[index] with slices and integers: index the array itself
            env[f"K{j}"], env[f"P{j}"] = index, _scatter_rule(index)
            lines.append(f"v{slot} = v{args[0]}[K{j}]")
            lines.append(f"r{j} = P{j}")
            slot += 1
            continue
        if lean is not None:
            values, rules = lean
            form = lean_forward(forward, rules[j], values[slot], [values[i] for i in args],
                                kwargs, dict(_input_names(args), out=f"v{slot}",
                                             **_hoisted(program, args, values, slot, env)),
                                env, j)
            if form is not None:
                env[f"P{j}"] = rules[j]
                lines += form + [f"r{j} = P{j}"]
                slot += 1
                continue
        env[f"F{j}"] = forward
        lines.append(f"v{slot}, r{j} = F{j}({_arguments(args, kwargs, j, env)})")
        lines.append(f"if type(v{slot}) is not _nd: v{slot} = _asarray(v{slot})")
        if not _engine_forward(forward):     # a user's op: its output's shape may follow values
            env["_StepDiffers"], env[f"SH{slot}"] = StepDiffers, program.shapes[j]
            lines.append(f"if (v{slot}.shape, v{slot}.dtype) != SH{slot}: raise _StepDiffers("
                         f"{program.ops[j][0]!r}, v{slot}.shape, v{slot}.dtype, SH{slot})")
        slot += 1
    return lines


def _engine_forward(forward):
    """Whether ``forward`` is one of the engine's own ops (tinygraph's or rnn's), whose output's
    shape and dtype follow from its inputs' and settings."""
    module = getattr(forward, "__module__", None) or ""
    return module.split(".")[0] in ("tinygraph", "rnn")


class StepDiffers(Exception):
    """A replayed step's op (a user's: :func:`_engine_forward`) made an output of another
    shape or dtype than in the recorded step (``recorded``: that (shape, dtype)): the recorded
    program does not stand for the step (``t``, its time when known)."""

    def __init__(self, op, shape, dtype, recorded, t=None):
        self.op, self.shape, self.dtype, self.recorded, self.t = op, shape, dtype, recorded, t
        at = "" if t is None else f"at t={t} "
        super().__init__(f"{at}op '{op}' made an output of shape {shape} and dtype {dtype}, "
                         f"where the recorded step's had shape {recorded[0]} and dtype "
                         f"{recorded[1]}")

    def at(self, t):
        """The same, at step ``t``."""
        return StepDiffers(self.op, self.shape, self.dtype, self.recorded, t)


def _compile_backward(program, values, rules):
    """``backward(values, rules, grads, deferred)`` as straight-line code for the rules of this
    step (a shared Rule is called directly; it returns None if a later step's rule differs)."""
    n_in, n_out = program.n_in, len(program.outside)
    env = {}
    lines = ["def backward(V, R, G, D):",
             f"    {_unpack('v', program.size, 'V')}",
             f"    {_unpack('r', len(program.ops), 'R')}"]
    lines += ["    " + line for line in _guards(rules, env, "return None")]
    lines.append(f"    {_slots('g', program.size).replace(', ', ' = ')}None")
    lines.append(f"    {_slots('o', program.size).replace(', ', ' = ')}False")
    for k, i in enumerate(program.outputs):
        lines.append(f"    g{i}, o{i} = (G[{k}], False) if g{i} is None else (g{i} + G[{k}], True)")
    lines += ["    " + line for line in _backward_body(program, values, rules, env)]
    lines.append(f"    return [{_slots('g', n_in)}], [{_slots('g', n_out, n_in)}]")
    return _made("backward", lines, env)


def _guards(rules, env, otherwise):
    """Lines checking that the shared rules are the ones compiled for."""
    lines = []
    for j, vjps in enumerate(rules):
        if type(vjps) is Rule:
            env[f"RULE{j}"] = vjps
            lines.append(f"if r{j} is not RULE{j}: {otherwise}")
    return lines


def _backward_body(program, values, rules, env, lean=False, forms=False, late=False):
    """Lines running the ops' gradient rules in reverse: from ``g{slot}`` of the outputs (and
    ``o{slot}``, True where that array is this code's own), the ``g{i}`` of the inputs and
    outside tensors; a^T g of an outside matrix (or g^T a of its transpose ``W.T`` taken in
    the step) appended to ``D`` as a pair instead (of one shape per matrix, so that they stack:
    a matrix that also multiplies rows of another shape in the step gets their product at
    once), and the pairs summed as one product (:func:`flush_deferred`) into the matrix's
    gradient of the step that brings them to :data:`_CHUNK_BYTES`; the caller sums what is left
    in ``D`` after the last step (:func:`sum_deferred`).  With ``late``, the pairs are only
    appended, and ``env["_FLUSH"]`` maps each list of ``D`` to its matrix's slot and to the
    slots whose gradient a pair holds: the caller flushes at the end of the step.

    ``lean``: read no slot the rules do not need, so that a step keeps only those: a rule's
    output is passed as None where its Rule does not read it (``reads_out=False``) and its
    inputs where it reads only g and out (``saves=False``), as the engine does for a node that
    saved nothing else; where only a slot's shape and dtype count (a gradient made dense or a
    zero buffer), ``Z{i}``, the recorded ones, stand in (the caller checks that the step's
    inputs have the recorded shapes and dtypes, which fix every slot's); and an outside
    tensor's first gradient of a step, when a :class:`Product`, is computed into its scratch
    ``B{i}`` (None at first; the caller adds it up before the next step writes it again), and
    so is that of an outside tensor's transpose taken in the step (``W.T``: its rule passes a
    view of it on to the outside tensor, and nothing else); and
    the gradient of a slot read only by slices that tile it (an LSTM's gates) is each slice's
    gradient copied into its block of an uninitialised array (zeros where none came), not a
    zero array and an add per slice.

    ``forms`` (with ``lean``): a rule's gradient with a lean form (:func:`lean_grad`) is that
    form, inline, and added without the checks of its type, shape and dtype when it is an array
    of its input's recorded shape and dtype: the caller makes sure each output's gradient has
    the output's recorded shape and dtype (the forms' gradients then have theirs); and a tiling
    slice's first gradient, when its form ends in one ufunc of names (:func:`_into_block`), is
    that ufunc computed into the slice's block (``W{slot}``, out=), which is then not copied."""
    env.update(_nd=np.ndarray, _dense=_dense, _own=_own, _Scatter=Scatter, _Product=Product,
               _product_into=_product_into, _empty=_empty, _flush=flush_deferred)
    n_in, n_out = program.n_in, len(program.outside)
    need, defer = program.need, _deferrable()
    invariant = _invariant_matrices(program, values)     # an outside matrix, or its W.T
    deferred = {}      # outside tensor -> the shapes of its (a, g) pairs: one shape, to stack
    tiled = _tiled_slots(program, values) if lean else set()
    scratched = _scratched_slots(program, rules) if lean else set()
    blocks = {}        # a slice tiling its input -> (that input, the slice's op)
    for j, (_, forward, args, kwargs) in enumerate(program.ops):
        if args and args[0] in tiled and _basic_index(forward, kwargs) is not None:
            blocks[program.first_op + j] = (args[0], j)
    lines = [f"W{s} = None" for s in blocks if forms]
    for j in range(len(program.ops) - 1, -1, -1):
        _, _, args, kwargs = program.ops[j]
        slot = program.first_op + j
        vjps = rules[j]
        body = []
        index = _basic_index(program.ops[j][1], kwargs)
        if index is not None and args[0] in tiled:      # copy g into its block, once
            i = args[0]
            env[f"K{j}"] = index
            env[f"Z{i}"] = _Shape(np.shape(values[i]), np.asarray(values[i]).dtype)
            lines += [f"if not o{i}: g{i}, o{i} = _empty(Z{i}), True"]
            if forms:     # W{slot}: the block, when the first gradient was written into it
                lines += [f"if g{slot} is None: g{i}[K{j}] = 0",
                          f"elif g{slot} is not W{slot}: g{i}[K{j}] = g{slot}"]
            else:
                lines += [f"g{i}[K{j}] = 0 if g{slot} is None else g{slot}"]
            continue
        grads = {}       # input -> (lines, result) of its lean form
        if forms and index is None:
            grads = {k: _lean_grad_of(program, j, k, values, vjps, env) for k, i in
                     enumerate(args) if need[i]}
            if None in grads.values():
                grads = {} if type(vjps) is Rule and vjps.joint is not None else \
                    {k: form for k, form in grads.items() if form is not None}
        if (type(vjps) is Rule and vjps.joint is not None and any(need[i] for i in args)
                and not grads):
            env[f"J{j}"] = vjps.joint
            body.append(f"pgs = J{j}(g, v{slot}, {_arguments(args, kwargs, j, env)})")
        for k, i in enumerate(args):
            if not need[i]:
                continue
            like = f"v{i}"
            if lean:
                like = f"Z{i}"
                env[like] = _Shape(np.shape(values[i]), np.asarray(values[i]).dtype)
            if index is not None and k == 0:        # x[index]: add g into x's gradient there
                env[f"K{j}"] = index
                body += [f"if not o{i}: g{i}, o{i} = _own(g{i}, {like}), True",
                         f"g{i}[K{j}] += g"]
                continue
            if type(vjps) is Rule and vjps.joint is None:
                grad = vjps.grads[k]
                if grad is None:
                    continue
                at = defer.get(grad)
                a = values[args[at]] if at is not None else None
                source, flip = invariant.get(i, (None, False)) if at is not None else (None, 0)
                # W's gradient a^T g, or for W.T taken in the step, W's own: g^T a
                pair = (values[slot], a) if flip else (a, values[slot])
                names = "" if at is None else f"(g, v{args[at]})" if flip else f"(v{args[at]}, g)"
                if (source is not None and not kwargs
                        and np.ndim(a) in (1, 2) and np.ndim(a) == np.ndim(values[slot])
                        and deferred.setdefault(source, tuple(map(np.shape, pair)))
                        == tuple(map(np.shape, pair))):
                    k_out = source - n_in
                    env[f"N{k_out}"] = _chunk_pairs(*pair)
                    body.append(f"D[{k_out}].append({names})")
                    if late:
                        env.setdefault("_FLUSH", {}).setdefault(k_out, [source, []])[1].append(
                            (slot, np.asarray(values[slot]).nbytes))
                        continue
                    body += [f"if len(D[{k_out}]) >= N{k_out}:",
                             "    pg = _flush(D[" + str(k_out) + "])",
                             f"    if g{source} is None: g{source}, o{source} = pg, True",
                             f"    elif o{source}: g{source} += pg",
                             f"    else: g{source}, o{source} = g{source} + pg, True"]
                    continue
            form = grads.get(k)
            if form is not None:      # the rule's lean form, inline
                body += form[0]
                into = _into_block(form[0][-1], f"W{i}") if i in blocks else None
                if (into is not None
                        and form[1] == (np.shape(values[i]), np.asarray(values[i]).dtype)):
                    parent, at = blocks[i]     # the first gradient, written into its block
                    env[f"K{at}"] = _basic_index(program.ops[at][1], program.ops[at][3])
                    env[f"Z{parent}"] = _Shape(np.shape(values[parent]),
                                               np.asarray(values[parent]).dtype)
                    body[-len(form[0]):] = [
                        f"if g{i} is None:",
                        f"    if not o{parent}: g{parent}, o{parent} = _empty(Z{parent}), True",
                        f"    W{i} = g{parent}[K{at}]"]
                    body += ["    " + line for line in form[0][:-1]]
                    body += [f"    {into}", f"    g{i}, o{i} = W{i}, True", "else:"]
                    body += ["    " + line for line in form[0]]
                    body += [f"    if o{i}: g{i} += pg",
                             f"    else: g{i}, o{i} = g{i} + pg, True"]
                    continue
                if form[1] == (np.shape(values[i]), np.asarray(values[i]).dtype):
                    body += [f"if g{i} is None: g{i} = pg",     # an array of its shape and dtype
                             f"elif o{i}: g{i} += pg",
                             f"else: g{i}, o{i} = g{i} + pg, True"]
                    continue
            elif type(vjps) is Rule and vjps.joint is not None:
                body.append(f"pg = pgs[{k}]")
            elif type(vjps) is Rule:
                env[f"Q{j}_{k}"] = grad
                out = f"v{slot}" if not lean or vjps.reads_out else "None"
                ins = (_arguments(args, kwargs, j, env) if not lean or vjps.saves
                       else _arguments(args, kwargs, j, env, none=True))
                body.append(f"pg = Q{j}_{k}(g, {out}, {ins})")
            else:     # a user's op: a closure per input, or None, at each step anew
                body.append(f"pg = None if r{j}[{k}] is None else r{j}[{k}](g)")
            env[f"S{i}"] = np.shape(values[i])
            env[f"T{i}"] = np.asarray(values[i]).dtype
            checked = "pg"
            if type(vjps) is not Rule:     # a user's gradient: checked as the engine checks it
                env["_user_grad"] = _user_grad
                checked = f"_user_grad(pg, {like}, {program.ops[j][0]!r}, {k})"
            add = []
            if i in scratched:     # a^T g of a weight (or of its transpose): into a scratch
                add = [f"if type(pg) is _Product and g{i} is None: "
                       f"B{i}, pg = _product_into(pg, B{i}, {like})"]
            add += ["if type(pg) is _Scatter:",
                   f"    if not o{i}: g{i}, o{i} = _own(g{i}, {like}), True",
                   f"    pg.add_into(g{i})",
                   "else:",
                   f"    if type(pg) is not _nd or pg.shape != S{i} or pg.dtype is not T{i}: "
                   f"pg = _dense({checked}, {like})",
                   f"    if g{i} is None: g{i} = pg",
                   f"    elif o{i}: g{i} += pg",
                   f"    else: g{i}, o{i} = g{i} + pg, True"]
            if type(vjps) is not Rule or (vjps.joint is not None and not grads):  # may give None
                body += ["if pg is not None:"] + ["    " + line for line in add]
            else:
                body += add
        if body:
            lines.append(f"g = g{slot}")
            lines.append("if g is not None:")
            lines += ["    " + line for line in body]
    return lines


# ---------------------------------------------------------------- lean forms
def _leanable(out, inputs):
    """Whether an op of output ``out`` on ``inputs`` (a recorded step's) may run as a lean form:
    an output array of at least one axis (numpy then returns an array, never a scalar) from
    arrays and numbers."""
    return type(out) is np.ndarray and out.ndim >= 1 and all(
        type(x) is np.ndarray or type(x) in (int, float, bool) or isinstance(x, np.generic)
        for x in inputs)


def _lean_lines(template, consts, names, env, tag):
    """The lines of a lean form's ``template`` (see :mod:`tinygraph.ops`, lean forms): its
    placeholders replaced by ``names``, its temporaries by names of op ``tag`` and its settings
    ``consts`` by globals of ``env``."""
    from .ops import LEAN_NAMES
    env.update(LEAN_NAMES)
    names = dict(names, t0=f"t{tag}_0", t1=f"t{tag}_1")
    for key in [k for k in names if re.fullmatch(r"x\d+", k)]:     # not hoisted: as they are
        names.setdefault(f"c_{key}", names[key])
        names.setdefault(f"c_{key}T", f"{names[key]}.T")
    hoistable = env.get("_HOISTABLE", {})
    for key in re.findall(r"\{(c_x\d+T?)\}", template):
        if names[key] in hoistable:
            env.setdefault("_HOIST", {})[names[key]] = hoistable[names[key]]
    for key, value in consts.items():
        env[f"C{tag}_{key}"] = value
        names[key] = f"C{tag}_{key}"
    return template.format(**names).split("\n")


def lean_forward(forward, rule, out, inputs, kwargs, names, env, tag):
    """The lines of the lean form of an op's forward (assigning ``names["out"]`` from
    ``names["x0"]`` ...) for the output ``out`` and ``rule`` it made on ``inputs``, or None."""
    from .ops import LEAN_FORWARDS
    make = LEAN_FORWARDS.get(forward) if isinstance(forward, types.FunctionType) else None
    if make is None or type(rule) is not Rule or not _leanable(out, inputs):
        return None
    form = make(rule, out, *inputs, **kwargs)
    return None if form is None else _lean_lines(*form, names, env, tag)


def lean_grad(rule, k, out, inputs, kwargs, names, env, tag):
    """``(lines, result)``: the lean form of ``rule``'s gradient of input k (assigning
    ``names["pg"]`` from ``names["g"]``, ``names["out"]``, ``names["x0"]`` ...), ``result`` the
    (shape, dtype) of that gradient when it is an array of them (else None); or None."""
    from .ops import LEAN_GRADS
    make = LEAN_GRADS.get(rule) if type(rule) is Rule else None
    if make is None or not _leanable(out, inputs):
        return None
    form = make(k, out, *inputs, **kwargs)
    if form is None:
        return None
    template, consts, result = form
    return _lean_lines(template, consts, names, env, tag), result


def _input_names(args):
    names = {f"x{m}": f"v{i}" for m, i in enumerate(args)}
    names["xs"] = "".join(f"v{i}, " for i in args)
    return names


def _lean_grad_of(program, j, k, values, rule, env):
    """:func:`lean_grad` of op j's input k in a replayed step's backward, which passes None for
    the output and inputs its rule does not read (``reads_out``, ``saves``)."""
    _, _, args, kwargs = program.ops[j]
    slot = program.first_op + j
    names = _input_names(args) if type(rule) is not Rule or rule.saves else \
        dict({f"x{m}": "None" for m in range(len(args))}, xs="None")
    names.update(out=f"v{slot}" if type(rule) is not Rule or rule.reads_out else "None",
                 g="g", pg="pg")
    if type(rule) is not Rule or rule.saves:
        names.update(_hoisted(program, args, values, slot, env))
    return lean_grad(rule, k, values[slot], [values[i] for i in args], kwargs, names, env,
                     f"{j}_{k}")


def _invariant_matrices(program, values):
    """slot -> (outside slot i, transposed): the 2-D slots every step of a scan reads the same
    array in: an outside tensor's, and a transpose of it taken in the step (``W.T``)."""
    from .ops import _transpose
    n_in, n_out = program.n_in, len(program.outside)
    found = {i: (i, False) for i in range(n_in, n_in + n_out) if np.ndim(values[i]) == 2}
    for j, (_, forward, args, kwargs) in enumerate(program.ops):
        if (forward is _transpose and len(args) == 1 and args[0] in found
                and not found[args[0]][1] and kwargs.get("axes") in (None, (1, 0))):
            found[program.first_op + j] = (args[0], True)
    return found


_HOIST_WORK = 1 << 20     # multiply-adds of a product whose matrix is made C-contiguous


def _hoisted(program, args, values, slot, env):
    """Placeholders ``c_x{m}`` (input m) and ``c_x{m}T`` (its transpose) of a lean form for
    the matrix operands of a product (``L_dot``) that are the same array at every step of a
    scan and not C-contiguous (``W.T``), in a product of at least ``_HOIST_WORK``
    multiply-adds: their C-contiguous copies, made once before the steps (``env["_HOIST"]``:
    name -> (outside slot, transposed), by :func:`_lean_lines` for a form that reads it).
    OpenBLAS's gemm reads a C-contiguous matrix faster (float32 (64, 1024) @ (1024, 256): 245
    against 336 us) and gives the same bits from either layout; a smaller product may run in
    its small-matrix kernels, and a product of one row (``out.shape[0] == 1``: numpy's dot
    then calls gemv, of any size) as a vector product, which add in another order for each
    layout, and gains little: it reads the matrix as it is."""
    out = values[slot]
    if type(out) is not np.ndarray or out.ndim != 2:
        return {}
    invariant = _invariant_matrices(program, values)
    names = {}
    for m, i in enumerate(args):
        if i not in invariant:
            continue
        source, transposed = invariant[i]
        array = np.asarray(values[i])
        if out.shape[0] < 2 or out.shape[0] * array.size < _HOIST_WORK:
            continue
        for suffix, flip in (("", False), ("T", True)):
            if (array.T if flip else array).flags.c_contiguous:
                continue
            name = f"D{i}{suffix}"
            env.setdefault("_HOISTABLE", {})[name] = (source, transposed != flip)
            names[f"c_x{m}{suffix}"] = name
    return names


def _hoist_lines(env):
    """The lines making the hoisted C-contiguous operands of :func:`_hoisted` from the outside
    arrays ``v{i}`` (numbers as that function's)."""
    env["_contig"] = np.ascontiguousarray
    return [f"{name} = _contig(v{i}{'.T' if transposed else ''})"
            for name, (i, transposed) in sorted(env.get("_HOIST", {}).items())]


class Rows:
    """The gradient of an input the loops of :func:`compile_scan` read a row of at each step,
    made at the first row a step writes into it (zeros elsewhere): ``array`` stays None if no
    step wrote one.  The loops ask for the array once (:meth:`made`) and write its rows
    themselves; any other array given in its place is written into as it is."""

    __slots__ = ("shape", "dtype", "array")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype
        self.array = None

    def made(self):
        if self.array is None:
            self.array = np.zeros(self.shape, self.dtype)
        return self.array

    def __setitem__(self, row, g):
        self.made()[row] = g


class RulesDiffer(Exception):
    """A step's op returned another gradient rule than the one its scan was compiled for."""


def compile_scan(program, n_carry, values, rules):
    """:func:`_compile_scan`, once per program (and per equal program, see Program._compiled);
    ``values`` and ``rules`` are only read the first time (None: see :func:`compiled_scan`)."""
    code = program._compiled()
    key = ("scan", n_carry)
    if key not in code:
        if values is None:
            raise ValueError("compile_scan: no step's values and rules to compile the loop for")
        code[key] = _compile_scan(program, n_carry, values, rules)
    return code[key]


def compiled_scan(program, n_carry):
    """Whether :func:`compile_scan` of ``program`` is made already (for an equal program): a
    replay may then run every step in its loop, without a first step run alone."""
    return ("scan", n_carry) in program._compiled()


class _Shape:
    """What a stripped program keeps of an outside tensor."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


_known = {}     # a program's structure -> (a stripped equal program, its code)


def _compile_scan(program, n_carry, values, rules):
    """The forward and backward loops of a recurrence over ``program``: its first ``n_carry``
    inputs are its first ``n_carry`` outputs of the step before (the state), its other inputs
    rows of given arrays (one row per step).  ``values`` and ``rules``: one step's, as
    :meth:`Program.forward` gave them (what the backward loop is compiled for).

    ``forward(carry, xs, rows, masks, outs, at, outside) -> saved`` runs ``len(rows)`` steps:
    step i reads ``x[rows[i]]`` of each array of ``xs``, and its new state, ``s + (out - s) *
    masks[i]`` where ``masks[i]`` is not None, goes into ``outs[p][at[i]]`` and on to the next
    step.  ``backward(saved, ups, masks, rows, gxs, deferred) -> (carry grads, outside grads)``
    runs them in reverse from ``ups[p][i]``, the gradient each step's new state gets from
    elsewhere, writing each step's input gradients into ``gxs[k][rows[i]]``; it raises
    :class:`RulesDiffer` if a step's rules are not those compiled for.

    The ops with a lean form for the recorded step (:mod:`tinygraph.ops`, ``LEAN_FORWARDS``
    and ``LEAN_GRADS``) run as that form, numpy called in the loop itself: the same calls on
    the same arrays as their forward and rule, so the same bits.  The forms hold for the
    recorded shapes and dtypes: the loops check once, before the first step, that every step
    sees those (each state's buffer rows and gradients, and the masks keep them), and run the
    same loops without lean forms where not.  With the forms, what a step keeps for its
    backward is made as a row of one block per array for all the steps
    (:func:`_into_step_blocks`), and a step's gradient that ends as its input row's is made as
    that row of ``gxs[k]`` (:func:`_rowed_blocks`).
    """
    n_in = program.n_in
    outs = program.outputs[:n_carry]
    like = [(np.shape(values[i]), np.asarray(values[i]).dtype) for i in range(n_in)]
    made = {}
    for forms in (False, True):
        env = {"_RulesDiffer": RulesDiffer, "_copy": functools.partial(np.array, copy=True)}
        made[forms] = env, _backward_body(program, values, rules, env, lean=True, forms=forms,
                                          late=True)
    kept = {int(i) for i in re.findall(r"\bv(\d+)\b",
                                       "\n".join(made[False][1] + made[True][1]))}
    kept |= {i for i, _ in made[True][0].get("_HOIST", {}).values()}
    recorded = tuple(rules)     # every step's rules, where every op runs as a lean form
    forward = _scan_forward(program, n_carry, values, like, kept, None)
    lean = _scan_forward(program, n_carry, values, like, kept, (values, rules), forward,
                         recorded)
    backward = _scan_backward(program, n_carry, rules, *made[False])
    if all(like[p] == (np.shape(values[o]), np.asarray(values[o]).dtype)
           for p, o in enumerate(outs)):      # a state's gradient then keeps its shape and dtype
        backward = _scan_backward(program, n_carry, rules, *made[True], like, backward,
                                  recorded)
    return lean or forward, backward


def _scan_forward(program, n_carry, values, like, kept, lean, generic=None, recorded=None):
    """:func:`_compile_scan`'s forward; with ``lean`` (the recorded values and rules), its ops'
    lean forms, running ``generic`` instead when a state's buffer rows are not of the recorded
    shape and dtype (None if no op has a lean form).  A step whose ops all run as lean forms
    (or index with slices) keeps the tuple ``recorded`` as its rules."""
    n_in, n_out = program.n_in, len(program.outside)
    n_x = n_in - n_carry
    outs = program.outputs[:n_carry]
    env = {"_RulesDiffer": RulesDiffer, "_generic": generic}
    body = _forward_body(program, env, lean)
    if lean is not None and body == _forward_body(program, {}):
        return None
    rules = f"({_slots('r', len(program.ops))})"
    constant = [f"r{j} = P{j}" for j in range(len(program.ops))]
    if lean is not None and all(line in body for line in constant):
        env["RULES"] = recorded
        body = [line for line in body if line not in constant]
        rules = "RULES"
    f = ["def forward(carry, xs, rows, masks, outs, at, outside):",
         f"    {_unpack('s', n_carry, 'carry')}",
         f"    {_unpack('X', n_x, 'xs')}",
         f"    {_unpack('O', n_carry, 'outs')}"]
    # the lean backward stands in the recorded shapes and dtypes for slots it does not keep:
    # the step's inputs must be those recorded (the ops then make the recorded ones)
    for p in range(n_carry):
        env[f"I{p}"] = like[p]
        f.append(f"    if (s{p}.shape, s{p}.dtype) != I{p}: raise _RulesDiffer")
    for k in range(n_x):
        env[f"I{n_carry + k}"] = like[n_carry + k]
        f.append(f"    if rows and (X{k}[rows[0]].shape, X{k}.dtype) != I{n_carry + k}: "
                 "raise _RulesDiffer")
    if lean is not None:
        f += [f"    if (O{p}.shape[1:], O{p}.dtype) != I{p}: "
              "return _generic(carry, xs, rows, masks, outs, at, outside)"
              for p in range(n_carry)]
    if n_out:
        f.append(f"    {_slots('v', n_out, n_in)}= outside")
    f += ["    " + line for line in _hoist_lines(env)]
    f += ["    saved = []",
          "    keep = saved.append",
          "    for i in range(len(rows)):",
          "        r = rows[i]"]
    f += ["        m = masks[i]", "        j = at[i]"]
    f += [f"        v{p} = s{p}" for p in range(n_carry)]
    f += [f"        v{n_carry + k} = X{k}[r]" for k in range(n_x)]
    into = {} if lean is None else _into_rows(program, n_carry, body, lean[0], like, env)
    if lean is not None:
        body, blocks = _into_step_blocks(program, body, lean[0], kept, env)
        f[f.index("    saved = []"):f.index("    saved = []")] = blocks
    for line in body:
        if line in into:      # a new state computed into its row (where the step is not masked)
            f += [f"        if m is None: {into[line][1]}", f"        else: {line}"]
        else:
            f.append("        " + line)
    written = {p for p, _ in into.values()}
    f += ["        if m is None:"]
    f += [f"            O{p}[j] = v{o}" for p, o in enumerate(outs) if p not in written]
    f += ["            pass"] if len(written) == n_carry else []
    f += ["        else:"]
    f += [f"            O{p}[j] = s{p} + (v{o} - s{p}) * m" for p, o in enumerate(outs)]
    f += [f"        s{p} = O{p}[j]" for p in range(n_carry)]
    kept_slots = "".join(f"v{i}, " if i in kept else "None, " for i in range(program.size))
    f += [f"        keep(([{kept_slots}], {rules}))",
          "    return saved"]
    return _made("forward", f, env)


def _into_rows(program, n_carry, body, values, like, env):
    """Lines of a lean forward ``body`` that compute a new state as one ufunc, each mapped to
    (p, the same ufunc computing into state p's row of its block, ``out=O{p}[j]``: the same loop
    on the same operands, so the same bits, without a fresh array copied into the row after).
    Only where the op's whole form is that line (no other line makes or writes the slot: not
    the sigmoid's, whose gradient reads the pair its output is a row of) and the recorded
    output has the state's shape and dtype; a step whose row is masked runs the line as it
    is (the row is then a blend of it and the state before)."""
    outs = program.outputs[:n_carry]
    into = {}
    for p, o in enumerate(outs):
        if o < program.first_op or outs.count(o) > 1 or \
                (np.shape(values[o]), np.asarray(values[o]).dtype) != like[p]:
            continue
        made = [line for line in body if re.match(rf"v{o}\b.*=", line) or f"out=v{o})" in line]
        if len(made) != 1:
            continue
        line = made[0]
        call = _ufunc_into(line, f"v{o}", f"O{p}[j]", env)
        if call is not None:
            into[line] = p, f"v{o} = {call}"
    return into


def _ufunc_into(line, target, out, env):
    """A lean forward's line ``{target} = ...`` as the same one ufunc computed into ``out``
    (``out=``: the same loop on the same operands, so the same bits): ``a * b`` (also / + -),
    ``-a``, or ``L_f(args)`` of a ufunc ``L_f`` of ``env``; None for any other line."""
    m = re.fullmatch(rf"{target} = (\w+) ([-*/+]) (\w+)", line)
    if m:
        return f"{_BINARY[m[2]]}({m[1]}, {m[3]}, out={out})"
    m = re.fullmatch(rf"{target} = -(\w+)", line)
    if m:
        return f"L_negative({m[1]}, out={out})"
    m = re.fullmatch(rf"{target} = (L_\w+)\(([^=()]*)\)", line)
    if m and isinstance(env.get(m[1]), np.ufunc):
        return f"{m[1]}({m[2]}, out={out})"
    return None


_BLOCK_BYTES = 1 << 14
"""A lean forward's fresh array of at least this many bytes that a step keeps for its backward
is made as row i of one block for all the loop's steps (:func:`_into_step_blocks`)."""


_BLOCKS_FROM = 64 << 20
"""... and only when the loop's steps keep at least this many bytes in such arrays: below, the
allocator keeps the memory a loss freed for the next (glibc keeps up to 64 MiB at the top of
its heap), and a fresh block's pages would cost more than they save."""


def _into_step_blocks(program, body, values, kept, env):
    """``(body, lines)``: the lean forward ``body`` with each fresh array a step keeps for its
    backward (a slot in ``kept``, or the buffer ``L_empty`` makes for one, as the sigmoid's
    pair) of at least :data:`_BLOCK_BYTES` made as row i of a block ``BK{n}`` of the recorded
    shape and dtype for all the loop's steps, made before the first step by ``lines``.  A
    one-ufunc line ``v = f(a, b)`` (also ``a * b``, ``-a`` ...) computes into the row (``out=``:
    the same loop on the same operands, so the same bits).  The steps' kept arrays are then a
    few large blocks instead of many mid-size ones: the allocator gives a large block fresh
    pages of the system at each loss either way, but numpy asks for huge pages for it (4 MiB
    and up), so a loss takes some hundred page faults instead of one per 4 KiB kept.  Only
    where the steps keep :data:`_BLOCKS_FROM` bytes in them (``BIG``, at each call); else each
    line runs as it was."""
    outputs = set(program.outputs)
    lines, out = [], []

    def block(shape, dtype):
        n = len(lines)
        env[f"BS{n}"], env[f"BT{n}"] = tuple(shape), np.dtype(dtype)
        env["BIG_STEP"] = env.get("BIG_STEP", 0) + int(np.prod(shape)) * np.dtype(dtype).itemsize
        lines.append(f"    BK{n} = L_empty((len(rows),) + BS{n}, BT{n}) if BIG else None")
        return f"BK{n}[i]"

    def big(value):
        return (type(value) is np.ndarray and value.dtype.kind == "f"
                and value.nbytes >= _BLOCK_BYTES)

    for line in body:
        m = re.fullmatch(r"(t(\d+)_\d+) = L_empty\(\(2,\) \+ (v\d+)\.shape, \3\.dtype\)", line)
        if m:
            slot = program.first_op + int(m[2])
            x = values[int(m[3][1:])]
            if slot in kept and slot not in outputs and big(values[slot]) and big(x):
                out.append(f"{m[1]} = {line.split(' = ', 1)[1]} if BK{len(lines)} is None "
                           f"else {block((2,) + x.shape, x.dtype)}")
                continue
        m = re.match(r"v(\d+) = ", line)
        o = int(m[1]) if m else None
        n = len(lines)       # the block this line's array would be a row of
        into = _ufunc_into(line, f"v{o}", f"BK{n}[i]", env) if m else None
        if (into is not None and o in kept and o not in outputs and o >= program.first_op
                and big(values[o])
                and sum(1 for other in body if re.match(rf"v{o}\b.*=", other)) == 1):
            block(values[o].shape, values[o].dtype)
            out += [f"if BK{n} is None: {line}", f"else: v{o} = {into}"]
            continue
        out.append(line)
    if lines:
        env["_BLOCKS_FROM"] = lambda: _BLOCKS_FROM
        lines.insert(0, "    BIG = len(rows) * BIG_STEP >= _BLOCKS_FROM()")
    return out, lines


def _fits(ups, masks, like):
    """Whether each state's gradients ``ups[p]`` (rows) are of the recorded shape and dtype
    ``like[p]`` and the masks keep them so (a lean backward's precondition)."""
    kinds = {(m.shape, m.dtype) for m in masks if m is not None}
    for u, (shape, dtype) in zip(ups, like):
        if type(u) is not np.ndarray or u.shape[1:] != shape or u.dtype != dtype:
            return False
        for m_shape, m_dtype in kinds:
            try:
                if (np.broadcast_shapes(m_shape, shape) != shape
                        or np.result_type(dtype, m_dtype) != dtype):
                    return False
            except ValueError:
                return False
    return True


def _scan_backward(program, n_carry, rules, env, body, like=None, generic=None, recorded=None):
    """:func:`_compile_scan`'s backward over ``body``; with ``like`` (the states' recorded
    shapes and dtypes), one made with lean forms, running ``generic`` instead where
    :func:`_fits` does not hold, and checking a step's rules one by one only when they are not
    the tuple ``recorded`` (None if the body is ``generic``'s)."""
    n_in, n_out = program.n_in, len(program.outside)
    n_x = n_in - n_carry
    outs = program.outputs[:n_carry]
    env["_Rows"] = Rows
    b = ["def backward(saved, ups, masks, rows, gxs, D):"]
    if like is not None:
        env.update(_fits=_fits, _like=like, _generic=generic)
        b.append("    if not _fits(ups, masks, _like): "
                 "return _generic(saved, ups, masks, rows, gxs, D)")
    b += [f"    {_unpack('U', n_carry, 'ups')}",
          f"    {_unpack('GX', n_x, 'gxs')}"]
    b += [f"    c{p} = None" for p in range(n_carry)]
    b += [f"    q{i} = None" for i in range(n_out)]
    b += [f"    B{i} = None" for i in sorted(_scratched_slots(program, rules))]
    rowed = {} if like is None else _rowed_blocks(body, n_carry, n_in, env, like)
    if rowed:
        env["_row_of"] = _row_of
        body = [_rowed_line(line, rowed) for line in body]
    b += ["    for i in range(len(saved) - 1, -1, -1):",
          "        V, R = saved[i]",
          f"        {_unpack('v', program.size, 'V')}",
          f"        {_unpack('r', len(program.ops), 'R')}"]
    guards = _guards(rules, env, "raise _RulesDiffer")
    if recorded is not None and guards:
        env["RULES"] = recorded
        guards = ["if R is not RULES:"] + ["    " + line for line in guards]
    b += ["        " + line for line in guards]
    hoists = _hoist_lines(env)       # made again when a step reads other outside arrays
    for i in sorted({i for i, _ in env.get("_HOIST", {}).values()}):
        b.insert(b.index("    for i in range(len(saved) - 1, -1, -1):"), f"    H{i} = None")
        b += [f"        if v{i} is not H{i}:", f"            H{i} = v{i}"]
        b += ["            " + line for line in hoists if line.endswith(f"(v{i})")
              or line.endswith(f"(v{i}.T)")]
    if rowed:
        b += ["        r = rows[i]"]
        b += [f"        RW{k} = None" for k in sorted(set(rowed.values()))]
    b += [f"        G{p} = U{p}[i] if c{p} is None else U{p}[i] + c{p}" for p in range(n_carry)]
    b += ["        m = masks[i]", "        if m is not None:"]
    for p in range(n_carry):     # new = s + (out - s) * m: out gets G m, s gets G - G m
        b += [f"            t = G{p} * m", f"            x{p} = G{p} - t", f"            G{p} = t"]
    b.append(f"        {_slots('g', program.size).replace(', ', ' = ')}None")
    b.append(f"        {_slots('o', program.size).replace(', ', ' = ')}False")
    for p, o in enumerate(outs):
        b.append(f"        g{o}, o{o} = (G{p}, False) if g{o} is None else (g{o} + G{p}, True)")
    b += ["        " + line for line in body]
    b += [f"        c{p} = g{p}" for p in range(n_carry)]
    b += ["        if m is not None:"]
    b += [f"            c{p} = x{p} if c{p} is None else c{p} + x{p}" for p in range(n_carry)]
    b += ["        r = rows[i]"]
    flush = env.get("_FLUSH", {})
    env["_as_row"] = _as_row
    for k in range(n_x):       # a Rows gives its array at the first row written into it
        b += [f"        if g{n_carry + k} is not None:",
              f"            if type(GX{k}) is _Rows: GX{k} = GX{k}.made()",
              f"            GX{k}[r] = g{n_carry + k}"]
        if k in rowed.values():      # the step's gradient computed in the row already
            b[-1] = f"            if g{n_carry + k} is not RW{k}: GX{k}[r] = g{n_carry + k}"
        for k_out, (_, held) in sorted(flush.items()):    # a pair's g that is this row: the row
            if any(size >= _ROW_VIEW_BYTES for _, size in held):
                b.append(f"            _as_row(D[{k_out}], {len(held)}, g{n_carry + k}, "
                         f"GX{k}[r])")
    for k_out, (source, _) in sorted(flush.items()):
        b += [f"        if len(D[{k_out}]) >= N{k_out}:",
              f"            pg = _flush(D[{k_out}])",
              f"            g{source} = pg if g{source} is None else g{source} + pg"]
    for i in range(n_out):
        b += [f"        if g{n_in + i} is not None:",
              f"            if q{i} is None: q{i} = _copy(g{n_in + i})",
              f"            else: q{i} += g{n_in + i}"]
    if any(type(vjps) is not Rule for vjps in rules):    # a user's rule: name its step
        start = b.index("    for i in range(len(saved) - 1, -1, -1):")
        env["_TinygraphError"] = TinygraphError
        b[start:] = (["    try:"] + ["    " + line for line in b[start:]]
                     + ["    except _TinygraphError as e:", "        e.replayed_step = i",
                        "        raise"])
    b.append(f"    return [{_slots('c', n_carry)}], [{_slots('q', n_out)}]")
    return _made("backward", b, env)


def _rowed_blocks(body, n_carry, n_in, env, like):
    """Tiled slots (their gradient an ``_empty`` array the slices' gradients fill, see
    :func:`_backward_body`) whose whole gradient is then the whole gradient of a step's input
    row (``pg = g``: an LSTM's gates z = x + h W, x read by nothing else), of that row's
    recorded shape and dtype: slot -> the input's index k.  Their buffer is then row r of the input's gradient ``GX{k}``
    (:func:`_row_of`), which the loop would copy it into after the step."""
    rowed = {}
    for at, line in enumerate(body[:-3]):
        m = re.fullmatch(r"g = g(\d+)", line)
        if not m or f"_empty(Z{m[1]})" not in "\n".join(body):
            continue
        i = int(m[1])
        n = re.fullmatch(r"    if g(\d+) is None: g\1 = pg", body[at + 3])
        if body[at + 1:at + 3] != ["if g is not None:", "    pg = g"] or not n:
            continue
        x = int(n[1])
        z = env.get(f"Z{i}")
        # x's gradient is this one alone (its three lines of adding): the row then holds it,
        # which a deferred pair of the step may read (else the row would get the sum after)
        alone = sum(1 for other in body if re.search(rf"\bg{x}\b", other)) == 3
        if (n_carry <= x < n_in and x - n_carry not in rowed.values() and z is not None
                and (z.shape, z.dtype) == like[x] and alone):
            rowed[i] = x - n_carry
    return rowed


def _rowed_line(line, rowed):
    for i, k in rowed.items():
        line = line.replace(f"g{i}, o{i} = _empty(Z{i}), True",
                            f"g{i} = RW{k} = _row_of(GX{k}, r, Z{i}); o{i} = True")
    return line


def _row_of(gx, r, like):
    """Row r of an input's gradient ``gx`` (a :class:`Rows` made here) when it is a
    C-contiguous array of ``like``'s shape and dtype, for a step's gradient to be computed in;
    else a new array."""
    if type(gx) is Rows:
        gx = gx.made()
    if type(gx) is np.ndarray:
        row = gx[r]
        if (type(row) is np.ndarray and row.shape == like.shape and row.dtype == like.dtype
                and row.flags.c_contiguous):
            return row
    return np.empty(like.shape, like.dtype)


def _made(name, lines, env):
    source = "\n".join(lines) + "\n"
    code = _compiled.get(source)
    if code is None:       # the same step unrolled again makes the same source: compile once
        if len(_compiled) >= 256:
            _compiled.clear()
        code = _compiled[source] = compile(source, f"<tinygraph.tape {name}>", "exec")
    exec(code, env)
    return env[name]


_compiled = {}      # source -> code object (a dict's get and set are atomic across threads)


def _basic_index(forward, kwargs):
    """The index of an indexing op with only slices, integers, None and Ellipsis (else None)."""
    from . import ops
    if forward is not getattr(ops, "_getitem", None) or "index" not in kwargs:
        return None
    index = kwargs["index"]
    parts = index if isinstance(index, tuple) else (index,)
    if all(p is None or p is Ellipsis or type(p) in (slice, int) for p in parts):
        return index
    return None


def _scatter_rule(index):
    from . import ops
    return ops._GETITEM


def _product_into(pg, buf, like):
    """``(buf, value)``: the value of the Product ``pg`` computed into ``buf`` (made on first
    use, of ``like``'s shape and dtype) when it has that shape and dtype, else a new array."""
    a, b = pg.a, pg.b
    if (type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2
            or (a.shape[0], b.shape[1]) != like.shape
            or a.dtype != like.dtype or b.dtype != like.dtype):
        return buf, np.asarray(pg)
    if buf is None:
        buf = np.empty(like.shape, like.dtype)
    return buf, np.dot(a, b, out=buf)


def _scratched_slots(program, rules):
    """The outside tensors' slots, and those of their transposes taken in the step."""
    n_in, n_out = program.n_in, len(program.outside)
    slots = set(range(n_in, n_in + n_out))
    for j, (_, _, args, _) in enumerate(program.ops):
        if rules[j] in _TRANSPOSES and len(args) == 1 and n_in <= args[0] < n_in + n_out:
            slots.add(program.first_op + j)
    return slots


_BINARY = {"*": "L_multiply", "/": "L_divide", "+": "L_add", "-": "L_subtract"}


def _into_block(line, block):
    """A lean gradient's last line ``pg = ...`` computing the same ufunc into ``block``
    (``out=``: the same loop on the same operands, so the same bits), or None where it is not
    one ufunc of names: ``pg = a * b`` (also / + -), ``pg = -a``, ``pg = L_f(..., out=t)``."""
    m = re.fullmatch(r"pg = (\w+) ([-*/+]) (\w+)", line)
    if m and "None" not in (m[1], m[3]):
        return f"{_BINARY[m[2]]}({m[1]}, {m[3]}, out={block})"
    m = re.fullmatch(r"pg = -(\w+)", line)
    if m and m[1] != "None":
        return f"L_negative({m[1]}, out={block})"
    m = re.fullmatch(r"pg = (L_\w+)\((.*), out=(\w+)\)", line)
    if m:
        return f"{m[1]}({m[2]}, out={block})"
    return None


def _tiled_slots(program, values):
    """The slots that need a gradient, are no output of the program and are read only by
    basic slices that tile them: disjoint blocks along one axis that cover it."""
    readers = {}
    for j, (_, forward, args, kwargs) in enumerate(program.ops):
        for k, i in enumerate(args):
            index = _basic_index(forward, kwargs)
            tile = None if index is None or k != 0 or len(args) != 1 else \
                _tile(index, np.shape(values[i]))
            readers.setdefault(i, []).append(tile)
    tiled = set()
    for i, tiles in readers.items():
        if not program.need[i] or i in program.outputs or None in tiles:
            continue
        if len({axis for axis, _, _ in tiles}) != 1:
            continue
        blocks = sorted((start, stop) for _, start, stop in tiles)
        n = np.shape(values[i])[tiles[0][0]]
        if blocks[0][0] == 0 and blocks[-1][1] == n and all(
                a[1] == b[0] for a, b in zip(blocks, blocks[1:])):
            tiled.add(i)
    return tiled


def _empty(like):
    return np.empty(like.shape, like.dtype)


def _own(g, like):
    """A gradient buffer of ``like``'s shape this code may add into: zeros, or a copy of g."""
    if g is None:
        return np.zeros(like.shape, like.dtype)
    return np.array(_dense(g, like), copy=True)


def _user_grad(pg, like, op, k):
    """A user's vjp's gradient ``pg`` for input ``k`` of ``op`` (``like``: that input, or its
    shape and dtype) as the engine takes it (``tinygraph.tensor._checked_user_grad``): real
    numbers of the input's shape or of a shape the input broadcasts to (summed back then);
    else the engine's error.  A replayed step's rule may give another than the recorded ones
    (it follows the values): a smaller one would be broadcast up, a complex one lose its
    imaginary part, without a word."""
    return _real_user_grad(pg, op, " in a replayed step", k, like.shape)


def _dense(pg, like):
    """A gradient as a dense array of ``like``'s shape and dtype."""
    if type(pg) is Owned:
        pg = pg.array
    if type(pg) is Scatter:
        buf = np.zeros(like.shape, like.dtype)
        pg.add_into(buf)
        return buf
    if type(pg) is not np.ndarray:
        pg = np.asarray(pg)
    if pg.shape != like.shape:
        pg = _unbroadcast(pg, like.shape)
    if pg.dtype != like.dtype:
        pg = pg.astype(like.dtype)
    return pg


def _same_function(f, g, equal=None, cells=None):
    """The same function, or functions of the same code and defaults (positional and
    keyword-only; a method: of the same object, whose attributes it may read) over closures
    whose values are ``equal`` (default :func:`_equal`; ``operator.is_``: calling one is
    calling the other).  ``cells``, the two closures' values as they were recorded, are
    compared instead of the values now."""
    if f is g and cells is None:
        return True
    if f is not g:
        code_f, code_g = getattr(f, "__code__", None), getattr(g, "__code__", None)
        if (code_f is None or code_f is not code_g or not _equal(f.__defaults__, g.__defaults__)
                or not _equal(f.__kwdefaults__, g.__kwdefaults__)):
            return False
        if getattr(f, "__self__", None) is not getattr(g, "__self__", None):
            return False      # a bound method's __code__ is its function's, whatever its object
    if cells is None:
        try:
            cells = [tuple(c.cell_contents for c in h.__closure__ or ()) for h in (f, g)]
        except ValueError:      # an empty cell
            return False
    equal = equal or _equal
    return len(cells[0]) == len(cells[1]) and all(equal(a, b) for a, b in zip(*cells))


def _equal(a, b):
    """Equal settings or constants: the same type and value (arrays: shape, dtype and values)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, Tensor):
        return False       # two different tensors
    if callable(a) and hasattr(a, "__code__"):
        return _same_function(a, b)
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False
