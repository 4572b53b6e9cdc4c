"""The variable graph of an unroll, derived from the engine's DAG.

A *variable* is a named node that is not a Parameter (the book's x, a, h, o,
L, y), keyed by ``(name, t)`` where ``t`` is the innermost ``t=K`` of its scope
(None for a static variable made outside any time step).  Variable A feeds B
when B reaches A going backwards through unnamed intermediate nodes only; the
edge is labelled with the weight Parameters met on that path (Parameters used
as operands of ``matmul``, ``take`` or ``mul``, or of the product in ``addmm``,
directly or through a transpose or reshape; Parameters that are added, the biases, are not drawn).  The folded
and unrolled views are both drawn from this one structure, so any cell whose
unroll follows the scope and naming conventions gets both views.
"""

import re

from rnn.core import innermost, is_outside, time_step, unroll_scope, walk
from tinygraph import Parameter

WEIGHT_OPS = frozenset({"matmul", "take", "mul"})   # and the product of addmm
VIEW_OPS = frozenset({"transpose", "reshape"})
_NODE = re.compile(r"^node=(\d+)$")


def tree_node(scope):
    """The integer K of the innermost ``node=K`` in a scope label (a tree node of a recursive
    net), or None."""
    return innermost(_NODE, scope)


def is_variable(node, hide=frozenset()):
    """A named node that is not a Parameter (and whose name is not in ``hide``)."""
    return node.name is not None and node.name not in hide and not isinstance(node, Parameter)


def param_behind(node, through_bias=False):
    """The Parameter that ``node`` is, directly or through unnamed transposes and reshapes, or None.

    With ``through_bias``, a weight with a bias added to its rows (``U.T + b``: the input term
    ``U x + b`` of one-hot ids as one ``take``) is that weight, as the variable views draw it
    (biases are not drawn); the op-level view draws that addition as the op it is.
    """
    while not isinstance(node, Parameter):
        if node.name is not None:
            return None
        if (through_bias and node.op == "add" and len(node.parents) == 2
                and _is_bias(node.parents[1])):
            node = node.parents[0]
        elif node.op in VIEW_OPS and len(node.parents) == 1:
            node = node.parents[0]
        else:
            return None
    return node


def _is_bias(node):
    return isinstance(node, Parameter) and node.ndim == 1


def _weights(node, i):
    """Names of the weight Parameters that multiply what flows through parent ``i`` of ``node``:
    the Parameter operands of a matmul, take or mul, and of the product in addmm (c + a @ b)."""
    if node.op == "addmm":
        operands = node.parents[1:] if i else ()
    elif node.op in WEIGHT_OPS:
        operands = node.parents
    else:
        return ()
    names = []
    for p in operands:
        param = param_behind(p, through_bias=True)
        if param is not None and param.name and param.name not in names:
            names.append(param.name)
    return tuple(names)


class Variables:
    """The variables of an unroll and the labelled edges between them.

    Attributes
    ----------
    keys : list of (name, t)
        In first-seen order; t is None for static variables.
    edges : dict (src_key, dst_key) -> tuple of str
        The weight names carried by the edge (empty: no weight).
    steps : int
        The largest time step seen.
    nodes : dict (name, t) -> Tensor
        The engine node of each variable (the first one met, if several share a key).
    paths : dict (src_key, dst_key) -> set of tuple of str
        The weights of each distinct path behind an edge: a GRU's h(t-1) reaches h(t) through
        W and also, with no weight, through u(t) * h(t-1) (``{("W",), ()}``).
    fixed : frozenset of str
        Names of the weight Parameters that are not trained (``requires_grad`` off: an echo
        state network's U and W).
    """

    def __init__(self, keys, edges, nodes, paths=None, fixed=frozenset()):
        self.keys = keys
        self.edges = edges
        self.nodes = nodes
        self.paths = paths if paths is not None else {k: {v} for k, v in edges.items()}
        self.fixed = frozenset(fixed)
        self.steps = max((t for _, t in keys if t is not None), default=0)

    @property
    def names(self):
        """Distinct variable names in first-seen order."""
        return list(dict.fromkeys(name for name, _ in self.keys))


def derive(roots, hide=(), window=None, position=time_step, inside=None):
    """Group the DAG behind ``roots`` by variable.

    Parameters
    ----------
    roots : sequence of Tensor
        E.g. ``model.trace(steps)``.
    hide : iterable of str
        Variable names to treat as unnamed intermediate nodes: they are not
        drawn, and an edge passing through them joins their feeders to their
        consumers (hiding "a" draws x -> h labelled U).
    window : int, optional
        Find the edges into the variables of the first ``window + 1`` and the
        last ``window + 1`` steps only (and into static ones): enough to draw a
        summarised long unroll or a folded circuit, at a cost independent of
        the length of the unroll beyond one walk over its nodes.
    position : callable scope -> int or None
        Where a node sits: its time step (default), or :func:`tree_node` for a tree.
    inside : str, optional
        The scope of the unroll (default :func:`unroll_scope` of the roots).  A tensor made
        outside it that a step reads (another model's states, a memory the user computed) is
        drawn once, as a static variable (t None), with an edge into every variable that reads
        it: the named nodes behind it (a name that is also an unroll variable's is prefixed by
        the outer scope, "elman.h"), or, when nothing behind it is named, the tensor itself as
        "outside" (only if it requires grad: an unnamed constant is not drawn).  ``False``: no
        tensor is set apart as outside (the caller places every node with ``position``, as the
        explorer does).
    """
    hide = frozenset(hide)
    inside = unroll_scope(roots) if inside is None else (inside or None)
    steps_of = {}

    def step_of(node):
        scope = node.scope
        if scope not in steps_of:
            steps_of[scope] = position(scope)
        return steps_of[scope]

    order = walk(list(roots), stop=lambda n: is_outside(n, inside))
    fixed = {node.name for node in order if isinstance(node, Parameter) and node.name
             and not node.requires_grad}
    variables = [(node, (node.name, step_of(node))) for node in order
                 if is_variable(node, hide) and not is_outside(node, inside)]
    keys = dict.fromkeys(key for _, key in variables)
    last = max((t for _, t in keys if t is not None), default=0)
    outside = _Outside({name for name, _ in keys})
    edges, paths = {}, {}
    for node, dst in variables:
        t = dst[1]
        if window is not None and t is not None and window + 1 < t < last - window:
            continue
        for src, labels in _feeders(node, hide, inside):
            key = outside.key(src) if is_outside(src, inside) else (src.name, step_of(src))
            merged = list(edges.get((key, dst), ()))
            merged += [w for w in labels if w not in merged]
            edges[(key, dst)] = tuple(merged)
            paths.setdefault((key, dst), set()).add(labels)
    nodes = {}
    for node, key in variables:
        nodes.setdefault(key, node)
    for key, node in outside.nodes.items():
        nodes.setdefault(key, node)
    for src, dst in edges:
        keys.setdefault(src, None)
    return Variables(list(keys), edges, nodes, paths, fixed)


class _Outside:
    """Keys (name, None) of the tensors from outside an unroll, each tensor once."""

    def __init__(self, taken):
        self.taken = taken
        self.keys = {}
        self.nodes = {}

    def key(self, node):
        if id(node) not in self.keys:
            name = node.name or "outside"
            if name in self.taken:
                outer = (node.scope or "").split("/")[0] or "outside"
                name = f"{outer}.{name}"
            key = (name, None)
            self.keys[id(node)] = key
            self.nodes.setdefault(key, node)
        return self.keys[id(node)]


def _feeders(node, hide, inside=None):
    """(variable, weights on the path) for every variable that ``node`` reaches through unnamed
    nodes; a tensor from outside the unroll ``inside`` stands for what is named behind it."""
    return _named_behind(_parents_with_weights(node, ()), hide, inside)


def _outside_sources(node, labels, hide):
    """The named nodes behind a tensor made outside the unroll (through unnamed nodes, with the
    weights on the way); the tensor itself when nothing behind it is named and it requires grad."""
    found = _named_behind([(node, labels)], hide)
    if not found and node.requires_grad and param_behind(node, through_bias=True) is None:
        found.append((node, labels))
    return found


def _named_behind(stack, hide, inside=None):
    """(variable, weights on the path) for every variable reached from the (node, weights) pairs
    of ``stack`` through unnamed nodes, stopping at parameters and leaves; a tensor made outside
    the unroll ``inside`` (None: no outside) stands for the named nodes behind it."""
    out = []
    seen = set()
    while stack:
        p, labels = stack.pop()
        if (id(p), labels) in seen:
            continue
        seen.add((id(p), labels))
        if is_outside(p, inside):
            out.extend(_outside_sources(p, labels, hide))
            continue
        if is_variable(p, hide):
            out.append((p, labels))
            continue
        if p.op is None or param_behind(p, through_bias=True) is not None:
            continue
        stack.extend(_parents_with_weights(p, labels))
    return out


def _parents_with_weights(node, labels):
    """(parent, labels plus the weights that multiply the path through it), last parent first."""
    out = []
    for i in range(len(node.parents) - 1, -1, -1):
        more = labels + tuple(w for w in _weights(node, i) if w not in labels)
        out.append((node.parents[i], more))
    return out
