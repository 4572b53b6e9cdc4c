"""Recursive networks (section 10.6, figure 10.14): one shared merge over a tree.

A tree is a leaf (an id, a float vector, or a batch of either; a list is read as an
array) or a pair, a tuple ``(left, right)`` of two trees.  Every leaf is embedded by
V, every pair merged by the same U (left child) and W (right child), and the root's
representation is read out: the depth (the number of composed nonlinearities) is the tree's height, so a
balanced tree over tau leaves is ceil(log2 tau) merges deep instead of tau.  Each
tree node's computation is made under ``tg.scope(f"node={k}")`` (k in post-order),
and its representation is named h, so viz draws the tree from the DAG as it draws
a time unroll.  Trees are walked with an explicit stack: no recursion limits their
depth.
"""

import numpy as np

import tinygraph as tg

from . import checks
from .core import RecurrentModel, Unrolled, init_bias, init_weight


def balanced_tree(leaves):
    """A balanced binary tree over the sequence ``leaves`` (each one leaf): nested pairs."""
    level = list(leaves)
    if not level:
        raise tg.ShapeError("balanced_tree: needs at least one leaf")
    while len(level) > 1:
        paired = [(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def _is_pair(node):
    return isinstance(node, tuple) and len(node) == 2


class _Path:
    """Where a node sits in a tree: ``root.1.0`` is the left child of the root's right child.
    Each node links to its parent's path, and the text is spelled out only when a message is
    made of it: held as text, every node of a chain-shaped tree of depth D would keep a string
    of length O(D), O(D^2) in all (a tree of depth 16,000 took 580 MB)."""

    __slots__ = ("up", "side")

    def __init__(self, up=None, side=None):
        self.up, self.side = up, side

    def __str__(self):
        sides, node = [], self
        while node.up is not None:
            sides.append(node.side)
            node = node.up
        return ".".join(["root"] + sides[::-1])


class _LeafAt:
    """``"<model>: leaf at <path>"``, spelled out only when a message is made of it."""

    __slots__ = ("name", "path")

    def __init__(self, name, path):
        self.name, self.path = name, path

    def __str__(self):
        return f"{self.name}: leaf at {self.path}"


class RecursiveNet(RecurrentModel):
    """Figure 10.14: leaves h = V x(i), merges h = tanh(b + U h_left + W h_right),
    o = c + Vo h_root, L = CE(o, y).

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Leaf width (vocabulary size for ids), H, the number of classes.
    seed : int; dtype : numpy float dtype

    ``V`` (H, n_in) embeds the leaves, ``U`` and ``W`` (H, H) are shared by every merge,
    ``b`` (H,); the output layer is ``Vo`` (n_out, H) and ``c`` (n_out,) (the book's figure
    draws the root as o itself).
    """

    name = "recursive"
    structure = "tree"      # viz.unrolled draws the tree instead of a time axis

    def __init__(self, n_in, n_hidden, n_out, seed=0, dtype=np.float64):
        who = type(self).__name__
        for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
            setattr(self, name, checks.positive_int(value, who, name))
        rng = checks.generator(seed, who)
        H = self.n_hidden
        self.V = init_weight(rng, (H, self.n_in), self.n_in, dtype, "V")
        self.U = init_weight(rng, (H, H), H, dtype, "U")
        self.W = init_weight(rng, (H, H), H, dtype, "W")
        self.b = init_bias(H, dtype, "b")
        self.Vo = init_weight(rng, (self.n_out, H), H, dtype, "Vo")
        self.c = init_bias(self.n_out, dtype, "c")

    @property
    def dtype(self):
        return self.V.dtype

    def _leaf(self, leaf, path):
        """A checked leaf: (array, is_ids, batch or None)."""
        if isinstance(leaf, tuple):
            raise tg.ShapeError(f"{self.name}: the tree node at {path} is a tuple of length "
                                f"{len(leaf)}; a pair is a tuple of two trees (left, right)")
        where = _LeafAt(self.name, path)
        try:
            arr = checks.as_array(leaf, where, "the leaf")
        except (tg.ShapeError, tg.DTypeError) as e:
            if not isinstance(leaf, list):
                raise
            raise type(e)(f"{where}: this list is no leaf (an id, a batch of ids or a "
                          "float vector): a pair of trees is a tuple (left, right), not a "
                          "list") from None
        if arr.dtype.kind in "iu":
            if arr.ndim > 1:
                raise tg.ShapeError(f"{where}: ids must be one id or a batch (B,), got shape "
                                    f"{arr.shape}")
            bad = (arr < 0) | (arr >= self.n_in)
            if bad.any():
                raise tg.BadIndexError(f"{where}: id {arr.flat[np.argmax(bad.ravel())]} is out of "
                                       f"range [0, {self.n_in})")
            return arr.astype(np.int64), True, arr.shape[0] if arr.ndim else None
        if arr.dtype.kind != "f" or arr.ndim not in (1, 2) or arr.shape[-1] != self.n_in:
            raise tg.ShapeError(f"{where}: a leaf is an id, a batch of ids (B,), or a float vector "
                                f"({self.n_in},) or batch (B, {self.n_in}); got dtype {arr.dtype}, "
                                f"shape {arr.shape}")
        if isinstance(leaf, tg.Tensor) and leaf.requires_grad:   # read as it is (see run)
            checks.tensor_dtype(leaf, self.dtype, where, "the leaf")
        return (checks.in_dtype(arr, self.dtype, where, "the leaf"), False,
                arr.shape[0] if arr.ndim == 2 else None)

    def _post_order(self, tree):
        """The tree's nodes in post-order: ("leaf", leaf, path) and ("pair", None, path); an
        explicit stack, so a deep tree is fine."""
        order = []
        stack = [(tree, _Path(), False)]
        while stack:
            node, path, expanded = stack.pop()
            if _is_pair(node) and not expanded:
                stack.append((node, path, True))
                stack.append((node[1], _Path(path, "1"), False))
                stack.append((node[0], _Path(path, "0"), False))
            elif _is_pair(node):
                order.append(("pair", None, path))
            else:
                order.append(("leaf", node, path))
        return order

    def run(self, tree, y=None):
        """Compute the tree bottom-up; every node under ``tg.scope(f"node={k}")``.

        tree : a leaf or a pair (left, right); leaves are ids, ids (B,), vectors (n_in,) or
            (B, n_in), all with the same batch; a vector leaf that is a Tensor requiring grad
            gets its gradient.
        y : id () or ids (B,), optional.
        Returns Unrolled: ``states`` are h of every tree node in post-order, ``last`` the
        root's h, ``outputs`` [o] and ``loss`` CE(o, y) (batch mean).
        """
        nodes = self._post_order(tree)
        leaves = {}
        batch = "unset"
        for i, (kind, leaf, path) in enumerate(nodes):
            if kind == "leaf":
                leaves[i] = self._leaf(leaf, path)
                if batch == "unset":
                    batch = leaves[i][2]
                elif leaves[i][2] != batch:
                    raise tg.ShapeError(f"{self.name}: the leaf at {path} has batch "
                                        f"{leaves[i][2]}, an earlier leaf {batch}; all leaves "
                                        "must have the same batch")
        checks.batch_size(batch, None, self.name)        # the check every design goes through
        if y is not None:
            y = checks.targets(y, () if batch is None else (batch,), self.n_out, self.name,
                               batch is not None, what="y", axis="b")
        history = {"x": [], "h": []}
        with tg.scope(self.name):
            VT, UT, WT = self.V.T, self.U.T, self.W.T
            stack = []
            for k, (kind, given, _) in enumerate(nodes, start=1):
                with tg.scope(f"node={k}"):
                    if kind == "leaf":
                        arr, is_ids, _ = leaves[k - 1]
                        tracked = isinstance(given, tg.Tensor) and given.requires_grad
                        x = given if tracked and not is_ids else tg.Tensor(arr, name="x")
                        h = tg.take(VT, x, axis=0) if is_ids else x @ VT
                        history["x"].append(x)
                    else:
                        right = stack.pop()
                        left = stack.pop()
                        h = (self.b + left @ UT + right @ WT).tanh()
                    h.name = "h"
                stack.append(h)
                history["h"].append(h)
            root = stack.pop()
            with tg.scope(f"node={len(nodes)}"):
                o = (self.c + root @ self.Vo.T).named("o")
                history["o"] = [o]
                if y is not None:
                    target = tg.Tensor(y, name="y")
                    history["L"] = [tg.cross_entropy(o, target, axis=-1).named("L")]
        return Unrolled(history, ["h"], root)

    def __call__(self, tree):
        """Forward only: ([o], states [h of every node], the root's h)."""
        run = self.run(tree)
        return run.outputs, run.states, run.last

    def predict(self, tree):
        """Class ids argmax o: () or (B,)."""
        with tg.no_grad():
            logits = self.run(tree).outputs[0].data
        return checks.class_ids(logits, f"{self.name}.predict", "the root's o")

    def _trace_roots(self, steps):
        tree = balanced_tree([np.array([i % self.n_in]) for i in range(steps)])
        return [self.run(tree, np.zeros(1, dtype=np.int64)).loss]
