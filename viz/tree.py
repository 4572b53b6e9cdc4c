"""The tree of a recursive net (figure 10.14), derived from its DAG as the unrolled view is.

A recursive net makes each tree node's computation under ``tg.scope(f"node={k}")``;
:func:`viz.derive.derive` with ``position=tree_node`` keys its variables by tree
node instead of time step, so the edges between the h of a node and the h of its
children come out of the DAG, labelled with the weights met on the way (U from
the left child, W from the right child, V from a leaf's input).  The tree is drawn
bottom-up (leaves x(1), x(2), ... on one row, the root, o, L and y on top); a big
tree keeps its top ``depth`` levels and draws each subtree below them as one box
saying how many leaves it holds.
"""

from .derive import derive, tree_node
from .opgraph import grad_fill, log_range
from .render import html_text, sup_html
from .views import (_add_edge, _edge_text, _label_attrs, _targets, _trace, _variable_grad_norms,
                    new_digraph)

DEPTH = 4    # tree levels drawn under the root of a big tree


def tree(model, steps=4, depth=DEPTH, grads=False):
    """The tree view of a recursive net traced over a balanced tree of ``steps`` leaves.

    ``grads``: colour each node by ‖∂L/∂v‖ (the gradient-flow view) and write the norm in it.

    Returns
    -------
    graphviz.Digraph
    """
    roots = _trace(model, steps, "unrolled")
    variables = derive(roots, position=tree_node)
    norms = _variable_grad_norms(roots, variables) if grads else None
    g = new_digraph(f"{model.name}_tree")
    draw_tree(g, variables, "n", depth, norms)
    return g


def _children(variables):
    """h node -> its child h nodes (left first), and the root h (the one read out)."""
    kids = {}
    root = None
    for (src, dst), labels in variables.edges.items():
        if src[0] == "h" and dst[0] == "h":
            kids.setdefault(dst, []).append((0 if "U" in labels else 1, src))
        elif src[0] == "h" and dst[0] != "h":
            root = src
    return {k: [c for _, c in sorted(v)] for k, v in kids.items()}, root


def _leaf_counts(kids, root):
    """Leaves under every h node, by an explicit post-order walk (no recursion)."""
    counts = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            counts[node] = sum(counts[c] for c in kids[node]) if node in kids else 1
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in kids.get(node, ()))
    return counts


def draw_tree(g, variables, prefix, depth=DEPTH, norms=None, root_text=None):
    """Add the tree of ``variables`` (keyed by tree node) to ``g``; node ids start with ``prefix``.

    ``norms`` ((name, node) -> gradient norm) colours the nodes it names; ``root_text`` names
    the root h node (the other h nodes are unlabelled)."""
    kids, root = _children(variables)
    shown = set()
    cut = {}
    if root is not None:
        counts = _leaf_counts(kids, root)
        level = [root]
        for d in range(depth + 1):
            shown.update(level)
            below = [c for n in level for c in kids.get(n, ())]
            if d == depth:
                cut = {c: counts[c] for c in below}
            level = below
    leaves = sorted(k for k in variables.keys if k[0] == "x")
    number = {k: i for i, k in enumerate(leaves, start=1)}
    x_shown = {src for src, dst in variables.edges if src[0] == "x" and dst in shown}

    def visible(key):
        if key[0] == "h":
            return key in shown or key in cut
        if key[0] == "x":
            return key in x_shown
        return True

    def node_id(key):
        return f"{prefix}_{key[0]}_{key[1]}"

    lo, hi = log_range(norms.values()) if norms else (0.0, 0.0)
    drawn_leaves = []
    for key in variables.keys:
        if not visible(key):
            continue
        if norms and key in norms and key not in cut:
            g.node(node_id(key), xlabel=f'<<font point-size="9">{norms[key]:.1e}</font>>',
                   **grad_fill(norms[key], lo, hi))
        if key in cut:
            g.node(node_id(key), label=f"<... {cut[key]:,} leaves ...>", shape="box",
                   style="dashed", fontsize="14")
        elif key[0] == "x":
            g.node(node_id(key), label=f"<{sup_html('x', f'({number[key]})')}>")
            drawn_leaves.append(node_id(key))
        elif key == root and root_text is not None:
            g.node(node_id(key), label=f"<{html_text(root_text)}>")
        elif key[0] == "h":
            g.node(node_id(key), label="", width="0.35", height="0.35")
        else:
            g.node(node_id(key), label=f"<{html_text(key[0])}>")
    above = _targets(variables)
    for (src, dst), labels in variables.edges.items():
        if visible(src) and visible(dst) and dst not in cut:
            attrs = _label_attrs(_edge_text(labels, 0, None))
            _add_edge(g, node_id(src), node_id(dst), attrs, src[0] in above)
    if drawn_leaves:
        with g.subgraph() as row:
            row.attr(rank="same")
            for nid in drawn_leaves:
                row.node(nid)
        for a, b in zip(drawn_leaves, drawn_leaves[1:]):
            g.edge(a, b, style="invis")
