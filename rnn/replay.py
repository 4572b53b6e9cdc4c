"""The replayed executor of an unroll: one recorded step run again for every later step.

On the training path (``model.loss``, the Trainer, truncated BPTT) a cell's first steps run
as engine ops, as always; two of them are recorded (:mod:`tinygraph.tape`).  When both
recorded the same program, steps t+1..T run from it: forward over raw arrays, step after
step, and backward as back-propagation through time over the same ops' gradient rules, in
reverse, step after step: generic reverse mode over the recorded ops, without a Tensor per
op and step.  The replayed steps are one node of the graph (op ``"replay"``, in scope
``t=a..b``), whose output is the states of those steps; :class:`Steps` gives them to the rest
of the unroll as per-step tensors (made only when asked for) or stacked.

A step that cannot be replayed (:meth:`tinygraph.tape.Program.of` says why: it reads a
tensor's value, makes nodes without ``tg.apply``, or two steps made different programs,
e.g. because the step reads Python state that changes) runs the engine for every step; the
unroll says which (``Unrolled.replayed``, ``Unrolled.not_replayed``).
"""

import numpy as np

import tinygraph as tg
from tinygraph import tape



class Steps:
    """The per-step nodes of a state part whose later steps were replayed: a sequence of T
    Tensors (``len``, indexing, iteration), made up of the engine's own nodes of the first
    steps and the rows of ``block``, the replayed steps stacked (n, ...), in time order.
    A row becomes a node only when asked for; :meth:`stack` joins the two without them."""

    __slots__ = ("head", "block", "name", "_rows", "tail_first")

    def __init__(self, head, block, name, tail_first=False):
        self.head = list(head)       # engine nodes, time order
        self.block = block           # Tensor (n, ...) of the replayed steps, time order
        self.name = name
        self.tail_first = tail_first  # True: the block's steps come before the head's
        self._rows = {}

    def __len__(self):
        return len(self.head) + self.block.shape[0]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= k < n:
            raise IndexError(f"step index {i} out of range for {n} steps")
        rows = self.block.shape[0]
        if self.tail_first:
            if k >= rows:
                return self.head[k - rows]
        elif k < len(self.head):
            return self.head[k]
        else:
            k -= len(self.head)
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
        pieces = [self.block] if not self.head else (
            [self.block, tg.stack(self.head)] if self.tail_first else [tg.stack(self.head), self.block])
        whole = pieces[0] if len(pieces) == 1 else tg.concat(pieces, axis=0)
        if axis in (0, -whole.ndim):
            return whole
        return tg.moveaxis(whole, 0, axis)


def stacked(nodes, axis=0):
    """``tg.stack(nodes, axis)`` for a list of per-step nodes or :class:`Steps`."""
    if isinstance(nodes, Steps):
        return nodes.stack(axis)
    return tg.stack(nodes, axis=axis)


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
    """Steps of one unroll run from a recorded :class:`tinygraph.tape.Program`.

    names : the state parts (the program's first inputs and its outputs)
    lags : list of (part, d): the lagged inputs after the parts
    tails : dict part -> the arrays of the last ``depth`` steps run before, oldest first
    u_all : the Tensors of the input map of all steps (a row per step), ``rows`` the row
        each replayed step reads, in the order run
    keep : bool (T', B) mask rows of the replayed steps, in the order run, or None
    """

    def __init__(self, program, names, lags, tails, u_all, rows, keep):
        self.program = program
        self.names = names
        self.lags = lags
        self.u_all = u_all
        self.rows = rows
        self.keep = keep
        self.depth = len(tails[names[0]])
        self.n = len(rows)
        self.backwards = self.n > 1 and rows[0] > rows[-1]    # run t = T..1: rows descending
        self.shapes = {name: tails[name][-1].shape for name in names}
        self.dtype = tails[names[0]][-1].dtype
        self._grads_for = None
        self._grads = None
        self._forward(tails)

    def _inputs(self, states, i):
        """The program's inputs at replayed step i: parts at i-1, lagged parts, input rows."""
        d = self.depth
        ins = [states[name][d + i - 1] for name in self.names]
        ins += [states[name][d + i - lag] for name, lag in self.lags]
        row = self.rows[i]
        ins += [u.data[row] for u in self.u_all]
        return ins

    def _forward(self, tails):
        program, names, n = self.program, self.names, self.n
        width = [int(np.prod(self.shapes[name])) for name in names]
        self.offsets = np.cumsum([0] + [w * n for w in width])
        self.value = np.empty(int(self.offsets[-1]), self.dtype)   # the node's output
        rows = {name: self.value[start:stop].reshape((n,) + self.shapes[name])
                for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:])}
        states = {name: list(tails[name]) for name in names}
        self.saved = []
        for i in range(n):
            values, rules = program.forward(self._inputs(states, i))
            self.saved.append((values, rules))
            mask = self._mask(i)
            at = n - 1 - i if self.backwards else i        # the output is in time order
            for name, out in zip(names, program.outputs_of(values)):
                row = rows[name][at]
                if mask is None:
                    row[...] = out
                else:                    # as core.carry_masked
                    prev = states[name][-1]
                    row[...] = prev + (out - prev) * mask
                states[name].append(row)
        self.states = states

    def _mask(self, i):
        if self.keep is None:
            return None
        k = self.keep[i]
        if k.all():
            return None
        return k[:, None].astype(self.dtype)

    # ---------------------------------------------------------------- backward
    def grads(self, g):
        """The gradients of the node's parents (the tails, oldest first, per part; the input
        maps; the outside tensors) from ``g``, the gradient of its flat output."""
        if self._grads_for is g:
            return self._grads
        program, names, d, n = self.program, self.names, self.depth, self.n
        ups = {}       # the gradient the node's users sent each replayed state, in run order
        for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:]):
            rows = g[start:stop].reshape((n,) + self.shapes[name])
            ups[name] = rows[::-1] if self.backwards else rows
        later = {name: {} for name in names}    # step -> what later steps sent back to it
        g_u = [np.zeros(u.shape, u.dtype) for u in self.u_all]
        g_out = [None] * len(program.outside)
        deferred = [[] for _ in program.outside]     # (a, g) of a^T g: one product at the end
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
            g_ins, g_outside = program.backward(values, rules, grads, deferred)
            for k, name in enumerate(names):
                _send(later[name], i - 1, g_ins[k])
            for k, (name, lag) in enumerate(self.lags):
                _send(later[name], i - lag, g_ins[n_parts + k])
            row = self.rows[i]
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
        for k, pairs in enumerate(deferred):
            if pairs:
                total = tape.sum_deferred(pairs)
                g_out[k] = total if g_out[k] is None else g_out[k] + total
        out = []
        for name in names:
            for j in range(-d, 0):
                sent = later[name].get(j)
                out.append(np.zeros(self.shapes[name], self.dtype) if sent is None else sent)
        out += g_u
        out += [np.zeros_like(x.data) if gk is None else gk
                for gk, x in zip(g_out, program.outside)]
        self._grads_for, self._grads = g, out
        return out

    def vjps(self):
        count = len(self.names) * self.depth + len(self.u_all) + len(self.program.outside)
        return tuple(_Part(self, k) for k in range(count))

    # ---------------------------------------------------------------- create_graph
    def graph(self, g, parents):
        """The gradients as Tensors (for ``create_graph``): the replayed steps run again as
        engine ops from ``parents``, then back-propagated through the ops' tensor rules."""
        program, names, d, n = self.program, self.names, self.depth, self.n
        count = len(names) * d
        tails = {name: list(parents[k * d:(k + 1) * d]) for k, name in enumerate(names)}
        u_all = parents[count:count + len(self.u_all)]
        states = {name: list(tails[name]) for name in names}
        saved = []
        for i in range(n):
            ins = [states[name][d + i - 1] for name in names]
            ins += [states[name][d + i - lag] for name, lag in self.lags]
            ins += [u[self.rows[i]] for u in u_all]
            values = program.graph_forward(ins)
            saved.append((values, ins))
            k = None if self.keep is None else self.keep[i]
            m = None if k is None or k.all() else k[:, None].astype(self.dtype)
            for name, out in zip(names, program.outputs_of(values)):
                prev = states[name][-1]     # as core.carry_masked
                states[name].append(out if m is None else prev + (out - prev) * m)
        # the gradient reaching each state: the node's own, then what later steps send back
        gs = {}
        for name, start, stop in zip(names, self.offsets[:-1], self.offsets[1:]):
            rows = g[int(start):int(stop)].reshape((n,) + self.shapes[name])
            at = range(n - 1, -1, -1) if self.backwards else range(n)
            gs[name] = [None] * d + [rows[i] for i in at]
        g_u = [[None] * n for _ in u_all]
        g_out = [None] * len(program.outside)
        for i in range(n - 1, -1, -1):
            k = None if self.keep is None else self.keep[i]
            grads = []
            for name in names:
                g_new = gs[name][d + i]
                if k is not None and not k.all() and g_new is not None:
                    m = k[:, None].astype(self.dtype)
                    _add(gs[name], d + i - 1, g_new - g_new * m)
                    g_new = g_new * m
                grads.append(g_new)
            values, _ = saved[i]
            g_ins, g_outside = program.graph_backward(values, grads)
            for j, name in enumerate(names):
                _add(gs[name], d + i - 1, g_ins[j])
            for j, (name, lag) in enumerate(self.lags):
                _add(gs[name], d + i - lag, g_ins[len(names) + j])
            for j in range(len(u_all)):
                g_u[j][i] = g_ins[len(names) + len(self.lags) + j]
            for j, gj in enumerate(g_outside):
                _add(g_out, j, gj)
        out = [gs[name][j] for name in names for j in range(d)]
        for rows, u in zip(g_u, u_all):
            out.append(self._graph_rows(rows, u))
        return tuple(out + g_out)

    def _graph_rows(self, rows, u):
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
        return self.replay.grads(g)[self.k]


def _replay_forward(*arrays, replay):
    return replay.value, replay.vjps()


def _replay_graph(g, out, *parents, replay):
    return replay.graph(g, parents)


tg.defvjp(_replay_forward, _replay_graph)


def run(program, names, lags, tails, u_all, rows, keep, label):
    """Run the replayed steps as one node; returns dict part -> Tensor (n, ...) of their
    states, in time order (t ascending, however they were run).  ``tails``: dict part -> the Tensors of the last steps run
    before (as many as the deepest lag, at least one), oldest first."""
    replay = Replay(program, names, lags, {name: [t.data for t in ts] for name, ts in tails.items()},
                    u_all, rows, keep)
    parents = [t for name in names for t in tails[name]] + list(u_all) + list(program.outside)
    with tg.scope(label):
        node = tg.apply("replay", _replay_forward, *parents, replay=replay)
        blocks = {}
        for name, start, stop in zip(names, replay.offsets[:-1], replay.offsets[1:]):
            blocks[name] = node[int(start):int(stop)].reshape((replay.n,) + replay.shapes[name])
    return blocks
