"""The replayed executor of an unroll: one recorded step run again for every later step.

On the training path (``model.loss``, the Trainer, truncated BPTT) a cell's first steps run
as engine ops, as always (three, or d + 2 with lags of up to d steps); the last two of them
are recorded (:mod:`tinygraph.tape`).  When both recorded the same program and at least three
steps remain after them, the steps from the first recorded one on (t = d+1..T) run from it:
forward over raw arrays, step after step, and backward as back-propagation through time over
the same ops' gradient rules, in reverse, step after step: generic reverse mode over the
recorded ops, without a Tensor per op and step.  The recorded steps are run again from the
program (the same functions on the same arrays, so the same values), and their engine nodes
stay out of the graph: the loss's backward does not run through them.  Without lags, the
steps of the replay run in the loops of :func:`tinygraph.tape.compile_scan` (straight-line
code made once per step structure; the first step alone, before, when they are not made yet).
The replayed steps are one node of the graph (op ``"replay"``, in scope ``t=a..b``), whose
output is the state of every step (those run as engine ops too) in time order; :class:`Steps`
gives them to the rest of the unroll as per-step tensors (made only when asked for) or
stacked.

A step is not replayed (:func:`why_not` says why; the unroll keeps it in
``Unrolled.not_replayed``, and ``Unrolled.replayed`` is ``(a, b)`` when it is) when it reads a
tensor's value or takes one as a constant, draws new random numbers, retains a gradient
(``retain_grad``), makes nodes without ``tg.apply`` (see :mod:`tinygraph.tape`), when two
steps made different programs (the step reads Python state that changes, or its ops depend on
the data), or when a user's op (made with ``tg.apply``) of a replayed step makes an output
of another shape or dtype than in the recorded steps (:class:`tinygraph.tape.StepDiffers`);
every step then runs as engine ops.  An op that refuses a replayed step's values raises the
engine's error for that step (naming the op, its input shapes and the time step), as the
step run as engine ops would.  Steps of any size are replayed: a replayed step keeps only
the arrays its gradient rules read (no node, no intermediate value the rules do not need),
which at wide steps saves page faults as well as the per-op cost.

A tensor that needs no gradient which the step reads is a constant of the program, kept as it
was recorded.  The engine's nodes read its array in backward, so a write through ``.data``
between the forward and the backward (which bumps no version, as PyTorch's) reaches their
gradients; when the node's backward finds such a constant changed, it runs the replayed steps
again as engine ops on the recorded values and back-propagates with the new ones, as the
engine does (``loss`` and ``run`` agree).
"""

import math

import numpy as np

import tinygraph as tg
from tinygraph import tape
from tinygraph.tensor import Owned, stand_in_rows



class Steps:
    """The per-step nodes of a state part whose later steps were replayed: a sequence of T
    Tensors (``len``, indexing, iteration) in time order.  The steps run as engine ops are
    their own nodes (``head``); a replayed step becomes a node (a row of ``block``, the
    states of all T steps in time order) only when asked for, and :meth:`stack` is
    ``block`` itself."""

    __slots__ = ("head", "block", "name", "_rows", "head_first")

    def __init__(self, head, block, name, head_first=True):
        self.head = list(head)       # engine nodes, time order
        self.block = stand_in_rows(block, (   # Tensor (T, ...): every step's state, time order
            f"it is a row of the states '{name}' of {block.shape[0]} steps, of which "
            f"{block.shape[0] - len(self.head)} were replayed (rnn.replay, scope "
            f"'{block.scope}'): the unroll's later steps and its loss read them as one block, "
            "so a state made of it when asked for is not the node they used and its gradient "
            "would miss theirs; unroll with model.replayable = False, or with model.run, for "
            "gradients with respect to the states"))
        self.name = name
        self.head_first = head_first  # False: the engine's steps are the last ones (reverse)
        self._rows = {}

    def __len__(self):
        return self.block.shape[0]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= k < n:
            raise IndexError(f"step index {i} out of range for {n} steps")
        h = k if self.head_first else k - (n - len(self.head))
        if 0 <= h < len(self.head):
            return self.head[h]
        row = self._rows.get(k)
        if row is None:
            row = self._rows[k] = self.block[k].named(self.name)
        return row

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def __reversed__(self):
        return (self[k] for k in range(len(self) - 1, -1, -1))

    def stack(self, axis=0):
        """``tg.stack(list(self), axis)`` without a node per replayed step."""
        if axis in (0, -self.block.ndim):
            return self.block
        return tg.moveaxis(self.block, 0, axis)


def stacked(nodes, axis=0):
    """``tg.stack(nodes, axis)`` for a list of per-step nodes or :class:`Steps`."""
    if isinstance(nodes, Steps):
        return nodes.stack(axis)
    return tg.stack(nodes, axis=axis)


def why_not(program, other):
    """Why the steps after two recorded ones (their programs, or why each is none) are not
    replayed, or None if they are."""
    for p in (program, other):
        if isinstance(p, str):
            return p
    if not program.same(other):
        return "two steps recorded different programs (the step depends on the data or on " \
               "Python state)"
    return None


def flat(u):
    """The Tensors of a step's input map (a Tensor, tuple or dict of them, or None)."""
    if u is None:
        return []
    if type(u) is dict:
        return list(u.values())
    if type(u) is tuple:
        return list(u)
    return [u]


class Replay:
    """Steps of one unroll run from a recorded :class:`tinygraph.tape.Program`, as one node
    whose output is the states of every step (those run as engine ops before too), each part
    (T, ...) in time order, one part after the other: ``(T, ...)`` for one part, ``(P, T,
    ...)`` for P parts of one shape, else flat (``shape``).

    names : the state parts (the program's first inputs and its outputs)
    lags : list of (part, d): the lagged inputs after the parts
    heads : dict part -> the arrays of the steps run as engine ops, in the order run
    u_all : the Tensors of the input map of all steps (a row per step), ``rows`` the row
        each replayed step reads, in the order run
    keep : bool (T', B) mask rows of the replayed steps, in the order run, or None
    backwards : the steps ran t = T..1
    """

    def __init__(self, program, names, lags, heads, u_all, rows, keep, backwards):
        self.program = program
        self.names = names
        self.lags = lags
        self.u_all = u_all
        self.rows = rows
        self.keep = keep
        self.lead = len(heads[names[0]])
        self.depth = max((d for _, d in lags), default=1)
        self.n = len(rows)
        self.total = self.lead + self.n
        self.backwards = backwards
        self.shapes = {name: heads[name][-1].shape for name in names}
        self.dtype = heads[names[0]][-1].dtype
        self._grads_for = None
        self._grads = None
        self._mask_list = None
        self.parents = ()       # the node's parents (set by run)
        # the arrays of the tensors read as constants, which the engine's nodes would hold
        self.held_arrays = [x.data for x in program.held]
        self._forward(heads)

    def _time(self, q):
        """The time index (0-based) of the q-th step run."""
        return self.total - 1 - q if self.backwards else q

    def _inputs(self, states, i):
        """The program's inputs at replayed step i: parts at i-1, lagged parts, input rows."""
        d = self.depth
        ins = [states[name][d + i - 1] for name in self.names]
        ins += [states[name][d + i - lag] for name, lag in self.lags]
        row = self.rows[i]
        ins += [u.data[row] for u in self.u_all]
        return ins

    def _forward(self, heads):
        program, names, n, lead = self.program, self.names, self.n, self.lead
        width = [math.prod(self.shapes[name]) for name in names]
        self.offsets = [0]
        for w in width:
            self.offsets.append(self.offsets[-1] + w * self.total)
        self.value = np.empty(self.offsets[-1], self.dtype)   # the node's output, flat
        one = {self.shapes[name] for name in names}
        self.shape = (((self.total,) if len(names) == 1 else (len(names), self.total))
                      + self.shapes[names[0]] if len(one) == 1 else self.value.shape)
        rows = {name: self.value[start:stop].reshape((self.total,) + self.shapes[name])
                for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:])}
        for name in names:
            for q, head in enumerate(heads[name]):
                rows[name][self._time(q)] = head
        d = self.depth
        states = {name: list(heads[name][-d:]) for name in names}
        self.saved = []
        self.scan = None
        scanning = not self.lags
        for i in range(n):
            if scanning and (i == 1 or tape.compiled_scan(program, len(names))):
                try:
                    self._scan_forward(states, rows, i)     # the rest in one compiled loop
                    break
                except tape.RulesDiffer:     # inputs not of the shapes it was made for
                    self.scan, scanning = None, False       # (raised before any step)
                except Exception:            # an op refused a step's values: step by step
                    self.scan, scanning = None, False       # again, to the step that did
            try:
                values, rules = program.forward(self._inputs(states, i))
            except Exception as e:
                self._refuse(states, i, e)
            self.saved.append((values, rules))
            mask = self._mask(i)
            at = self._time(lead + i)
            for name, out in zip(names, program.outputs_of(values)):
                row = rows[name][at]
                if mask is None:
                    row[...] = out
                else:                    # as core.carry_masked
                    prev = states[name][-1]
                    row[...] = prev + (out - prev) * mask
                states[name].append(row)

    def _refuse(self, states, i, e):
        """Raise the error the engine raises where an op refused replayed step i's values (a
        user's op that checks them): the step run again as engine ops, in the scope of its
        time step, names the op, its input shapes and the step; ``e`` itself if it runs.  An
        op whose output's shape or dtype differs from the recorded step's
        (:class:`tinygraph.tape.StepDiffers`) is raised again with the step's time: the unroll
        runs the steps as engine ops instead."""
        t = self._time(self.lead + i) + 1
        if isinstance(e, tape.StepDiffers):
            raise e.at(t) from None
        ins = [tg.Tensor(a) for a in self._inputs(states, i)]
        with tg.no_grad(), tg.scope(f"t={t}"):
            self.program.graph_forward(ins)
        raise e

    def _scan_forward(self, states, rows, start):
        """Steps start..n-1 in the compiled loop of :func:`tinygraph.tape.compile_scan` (for a
        cell without lags: the state the step reads is the one the step before made); start
        is 1 (step 0 ran alone, and the loop is compiled for its values and rules) or 0 (the
        loop was compiled for an equal program before)."""
        program, names, n = self.program, self.names, self.n
        self.scan = tape.compile_scan(program, len(names), *(self.saved[0] if start else
                                                             (None, None)))
        first, last = self._time(self.lead + start), self._time(self.lead + n - 1)
        at = list(range(first, last - 1, -1) if self.backwards else range(first, last + 1))
        self.saved += self.scan[0](
            [states[name][-1] for name in names], [u.data for u in self.u_all],
            self.rows[start:], self._masks()[start:],
            [rows[name] for name in names], at, [x.data for x in program.outside])

    def _masks(self):
        """``_mask(i)`` of every replayed step, in the order run (made once per replay)."""
        if self._mask_list is None:
            self._mask_list = ([None] * self.n if self.keep is None else
                               [self._mask(i) for i in range(self.n)])
        return self._mask_list

    def _mask(self, i):
        if self.keep is None:
            return None
        k = self.keep[i]
        if k.all():
            return None
        return k[:, None].astype(self.dtype)

    # ---------------------------------------------------------------- backward
    def grads(self, g, k=None):
        """The gradients of the node's parents (the engine's steps, in the order run, per
        part; the input maps; the outside tensors) from ``g``, the gradient of its flat
        output.  All are computed at once, when a sweep asks for the first parent that needs
        one (backward asks in the parents' order), and kept for the other parents of that
        sweep only: another sweep may hand over the same array ``g`` with other values (a
        ``grad=`` array changed in place) or after adding into the Owned gradients given the
        last time."""
        if self._grads_for is g and k != self._first_needed():
            return self._grads
        new = self._new_constants()
        if new is not None:
            out = self._grads_with_new_constants(g, new)
            self._grads_for, self._grads = g, out
            return out
        whole, g = g, g.reshape(-1)
        program, names, d, n, lead = self.program, self.names, self.depth, self.n, self.lead
        times, ups = {}, {}
        for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:]):
            times[name] = g[start:stop].reshape((self.total,) + self.shapes[name])
            # the replayed steps' rows in the order run
            ups[name] = times[name][:n][::-1] if self.backwards else times[name][lead:]
        local = self.rows
        g_u = [tape.Rows(u.shape, u.dtype) for u in self.u_all]
        deferred = [[] for _ in program.outside]     # (a, g) of a^T g: summed in chunks
        try:
            if self.scan is None:
                raise tape.RulesDiffer
            tails, g_out = self.scan[1](self.saved, [ups[name] for name in names],
                                        self._masks(), local, g_u,
                                        deferred)
            later = {name: {-1: c} for name, c in zip(names, tails)}
        except tg.TinygraphError as e:     # a user's rule's gradient refused at a step
            raise self._at_step(e, e.replayed_step) from None
        except tape.RulesDiffer:       # step by step
            g_u = [tape.Rows(u.shape, u.dtype) for u in self.u_all]
            deferred = [[] for _ in program.outside]
            later, g_out = self._steps_back(ups, g_u, deferred, local)
        for k, pairs in enumerate(deferred):
            if pairs:
                total = tape.sum_deferred(pairs)
                g_out[k] = total if g_out[k] is None else g_out[k] + total
        out = []
        for name in names:
            for q in range(lead):        # its own row, and what the replayed steps sent back
                own = times[name][self._time(q)]
                sent = later[name].get(q - lead) if q >= lead - d else None
                out.append(own if sent is None else own + sent)
        # backward adds the engine's steps' rows into it; None where no replayed step sent
        # one (a step that does not read its input: the engine leaves its .grad None)
        out += [None if gk.array is None else Owned(gk.array) for gk in g_u]
        # the outside tensors' gradients are new arrays (a product of the deferred pairs, or the
        # loop's copy added into): each tensor's own, as the input maps' (None: no gradient
        # reached it, as the engine leaves it)
        out += [None if gk is None else Owned(gk) for gk in g_out]
        self._grads_for, self._grads = whole, out
        return out

    def _new_constants(self):
        """``(consts, news)`` for :meth:`graph` when a tensor that needs no gradient, which the
        replayed steps read as a constant (kept as it was when recorded), holds other values
        now (written through ``.data`` or ``.numpy()`` since the forward, which bumps no
        version); None when none does.  ``consts`` are Tensors of the recorded values standing
        for the constants, ``news`` pairs each one with the array (the tensor's at the
        forward, as an engine node holds it) whose values it takes between the forward and
        the backward: the engine's nodes read the new values in
        backward (PyTorch's rule for a write through ``.data``), the forward's stay."""
        program = self.program
        changed = False
        for k, c in {k: c for c, k in enumerate(program.held_of) if k is not None}.items():
            then, now = program.consts[c], self.held_arrays[k]
            changed = changed or not np.array_equal(then, now, equal_nan=then.dtype.kind in "fc")
        if not changed:
            return None
        consts = [c if k is None else tg.Tensor(np.array(c, copy=True))
                  for c, k in zip(program.consts, program.held_of)]
        news = [(consts[c], self.held_arrays[k]) for c, k in enumerate(program.held_of)
                if k is not None]
        return consts, news

    def _grads_with_new_constants(self, g, new):
        """:meth:`grads` when :meth:`_new_constants` found one: the replayed steps run again
        as engine ops (:meth:`graph`), back-propagated with the new values."""
        with tg.enable_grad():
            got = self.graph(tg.Tensor(g), self.parents, *new)
        return [None if x is None else np.array(x.data if isinstance(x, tg.Tensor) else x)
                for x in got[:len(self.parents)]]

    def _steps_back(self, ups, g_u, deferred, local):
        """BPTT over the replayed steps one program.backward at a time: (what they sent back
        to the steps before them, by step and part, and the outside tensors' gradients)."""
        program, names, n = self.program, self.names, self.n
        later = {name: {} for name in names}    # step -> what later steps sent back to it
        g_out = [None] * len(program.outside)
        n_parts, n_lags = len(names), len(self.lags)
        for i in range(n - 1, -1, -1):
            mask = self._mask(i)
            grads = []
            for name in names:
                g_new = ups[name][i]
                sent = later[name].pop(i, None)
                if sent is not None:
                    g_new = g_new + sent
                if mask is not None:      # new = prev + (out - prev) * mask
                    g_in = g_new * mask
                    _send(later[name], i - 1, g_new - g_in)
                    g_new = g_in
                grads.append(g_new)
            values, rules = self.saved[i]
            try:
                g_ins, g_outside = program.backward(values, rules, grads, deferred)
            except tg.TinygraphError as e:      # a user's rule's gradient refused
                raise self._at_step(e, i) from None
            for k, name in enumerate(names):
                _send(later[name], i - 1, g_ins[k])
            for k, (name, lag) in enumerate(self.lags):
                _send(later[name], i - lag, g_ins[n_parts + k])
            row = local[i]
            for k in range(len(self.u_all)):
                gk = g_ins[n_parts + n_lags + k]
                if gk is not None:
                    g_u[k][row] = gk
            for k, gk in enumerate(g_outside):
                if gk is None:
                    continue
                if g_out[k] is None:
                    g_out[k] = np.array(gk, copy=True)   # ours to add into
                else:
                    g_out[k] += gk
        return later, g_out

    def _at_step(self, e, i):
        """The error ``e`` of a replayed step's gradient rule (:func:`tinygraph.tape._user_grad`)
        naming replayed step i's time."""
        t = self._time(self.lead + i) + 1
        return type(e)(str(e).replace("in a replayed step", f"at replayed step t={t}", 1))

    def _first_needed(self):
        for k, p in enumerate(self.parents):
            if p.requires_grad:
                return k
        return None

    def vjps(self):
        count = len(self.names) * self.lead + len(self.u_all) + len(self.program.outside)
        return tuple(_Part(self, k) for k in range(count)) + (None,) * len(self.program.held)

    # ---------------------------------------------------------------- create_graph
    def graph(self, g, parents, consts=None, news=()):
        """The gradients as Tensors (for ``create_graph``): the replayed steps run again as
        engine ops from ``parents``, then back-propagated through the ops' tensor rules.
        ``consts``: Tensors standing for the recorded constants, and ``news``, pairs (one of
        them, the array whose new values it takes after the forward, before the backward)."""
        program, names, d, n, lead = self.program, self.names, self.depth, self.n, self.lead
        heads = {name: list(parents[k * lead:(k + 1) * lead]) for k, name in enumerate(names)}
        u_all = parents[len(names) * lead:len(names) * lead + len(self.u_all)]
        states = {name: heads[name][-d:] for name in names}
        g = g.reshape(-1)
        saved = []
        for i in range(n):
            ins = [states[name][d + i - 1] for name in names]
            ins += [states[name][d + i - lag] for name, lag in self.lags]
            ins += [u[self.rows[i]] for u in u_all]
            values = program.graph_forward(ins, consts)
            saved.append(values)
            m = self._mask(i)
            for name, out in zip(names, program.outputs_of(values)):
                prev = states[name][-1]     # as core.carry_masked
                states[name].append(out if m is None else prev + (out - prev) * m)
        for stand_in, array in news:
            stand_in.data[...] = array
        # the gradient reaching each state: the node's own, then what later steps send back
        times, gs = {}, {}
        for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:]):
            times[name] = g[start:stop].reshape((self.total,) + self.shapes[name])
            gs[name] = [None] * d + [times[name][self._time(lead + i)] for i in range(n)]
        g_u = [[None] * n for _ in u_all]
        g_out = [None] * len(program.outside)
        for i in range(n - 1, -1, -1):
            m = self._mask(i)
            grads = []
            for name in names:
                g_new = gs[name][d + i]
                if m is not None and g_new is not None:
                    _add(gs[name], d + i - 1, g_new - g_new * m)
                    g_new = g_new * m
                grads.append(g_new)
            g_ins, g_outside = program.graph_backward(saved[i], grads)
            for j, name in enumerate(names):
                _add(gs[name], d + i - 1, g_ins[j])
            for j, (name, lag) in enumerate(self.lags):
                _add(gs[name], d + i - lag, g_ins[len(names) + j])
            for j in range(len(u_all)):
                g_u[j][i] = g_ins[len(names) + len(self.lags) + j]
            for j, gj in enumerate(g_outside):
                _add(g_out, j, gj)
        out = []
        for name in names:
            for q in range(lead):
                own = times[name][self._time(q)]
                sent = gs[name][q - lead + d] if q >= lead - d else None
                out.append(own if sent is None else own + sent)
        for rows, u in zip(g_u, u_all):
            out.append(self._graph_rows(rows, u))
        return tuple(out + g_out + [None] * len(program.held))

    def _graph_rows(self, rows, u):
        if all(gr is None for gr in rows):     # no step sent one (as the engine: None)
            return None
        zero = np.zeros(u.shape[1:], u.dtype)
        by_row = {r: gr for r, gr in zip(self.rows, rows)}
        full = [by_row.get(r) for r in range(u.shape[0])]
        return tg.stack([zero if gr is None else gr for gr in full])


def _send(later, k, g):
    """Add the gradient ``g`` (None: nothing) for step ``k`` into ``later`` (a new array: the
    rules' outputs may be shared)."""
    if g is not None:
        prev = later.get(k)
        later[k] = g if prev is None else prev + g


def _add(grads, k, g):
    if g is not None:
        grads[k] = g if grads[k] is None else grads[k] + g


class _Part:
    """The vjp of the replay node for its k-th parent (all of them computed at once)."""

    __slots__ = ("replay", "k")

    def __init__(self, replay, k):
        self.replay = replay
        self.k = k

    def __call__(self, g):
        return self.replay.grads(g, self.k)[self.k]


def _replay_forward(*arrays, replay):
    return replay.value.reshape(replay.shape), replay.vjps()


def _replay_graph(g, out, *parents, replay):
    return replay.graph(g, parents, *(replay._new_constants() or ()))


tg.defvjp(_replay_forward, _replay_graph)


def run(program, names, lags, heads, u_all, rows, keep, label, backwards):
    """Run the replayed steps as one node; returns dict part -> Tensor (T, ...) of the states
    of every step in time order (t ascending, however they were run).  ``heads``: dict part ->
    the Tensors of the steps run as engine ops before, in the order run."""
    replay = Replay(program, names, lags, {name: [t.data for t in ts] for name, ts in heads.items()},
                    u_all, rows, keep, backwards)
    parents = [t for name in names for t in heads[name]] + list(u_all) + list(program.outside)
    replay.parents = parents
    # and the tensors that need no gradient the steps read as constants: changed in place
    # since (a version bump) or replaced, backward refuses the node, as it refuses the steps'
    # nodes run as engine ops
    parents = parents + program.held
    with tg.scope(label):
        node = tg.apply("replay", _replay_forward, *parents, replay=replay)
        if len(names) == 1:
            return {names[0]: node}
        if node.ndim > 1:          # (P, T, ...): one shape
            return {name: node[k] for k, name in enumerate(names)}
        blocks = {}
        for name, start, stop in zip(names, replay.offsets[:-1], replay.offsets[1:]):
            blocks[name] = node[start:stop].reshape((replay.total,) + replay.shapes[name])
    return blocks
