"""The op-level DAG behind a tensor: every engine node with its op, shape and
name, grouped in one cluster per scope (a time step of an unroll).

Node ids come from a deterministic traversal, so the same computation gives
the same file on every run.  A Parameter is drawn as a small copy beside each
op that uses it (one shared node with an edge to every step makes the layout
cost explode), and a long unroll is summarised chain by chain (an encoder-decoder's
encoder and decoder are two chains, each with steps 1, 2, ...): each chain's first
and last few time steps and one node saying how many of its steps were left out.
With ``grads=True`` nodes are coloured by the norm of their gradient (the gradient-flow view).
"""

import math
import re

import graphviz
import numpy as np

import tinygraph as tg
from rnn.diagnostics import vector_norm
from tinygraph import Parameter

from .derive import is_variable, param_behind, time_step, walk
from .render import html_text

KEEP = 3
_RAMP = ("#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#8c2d04")


def _node_label(node, norm):
    head = "leaf" if node.op is None else node.op
    parts = [f"<b>{html_text(head)}</b>", html_text(tuple(node.shape))]
    if node.name is not None:
        parts.append(f"<i>{html_text(node.name)}</i>")
    if norm is not None:
        parts.append(f"|grad|={norm:.2e}")
    return "<" + "<br/>".join(parts) + ">"


def _param_copy(node, param, norms, lo, hi):
    """Attributes of the copy of a parameter (or of a transpose/reshape of it) drawn at one use."""
    lines = [f"<b>{html_text(param.name or 'param')}</b>"]
    if node is not param:
        lines.append(html_text(node.op))
    lines.append(html_text(tuple(node.shape)))
    attrs = {"shape": "box", "style": "filled", "fillcolor": "#dbe9f6", "fontsize": "9"}
    if id(param) in norms:
        lines.append(f"|grad|={norms[id(param)]:.2e}")
        attrs.update(grad_fill(norms[id(param)], lo, hi))
    attrs["label"] = "<" + "<br/>".join(lines) + ">"
    return attrs


def gradient_norms(output, name="h"):
    """‖∂output/∂v(t)‖ for every variable ``v`` called ``name`` at time steps t >= 1 behind ``output``.

    Uses ``tg.grad`` with ``retain_graph=True``, so call it before ``backward``
    frees the graph (or keep the graph with ``backward(retain_graph=True)``).

    Returns
    -------
    list of (t, float), sorted by time step t (the initial state at t=0 is left out, and so is
    a v(t) that needs no gradient, e.g. an echo state network's fixed reservoir: the engine
    computes none for it, and its ∂output/∂v(t) is not zero).

    Raises ConfigError when two variables behind ``output`` share the name and the step, as
    when a run starts from a state carried over from an earlier run without ``detach()``
    (both runs have an h(1)), or two stacked layers name their states alike: their norms
    would be listed under one t with no way to tell them apart.  Raises ConfigError too when
    no variable behind ``output`` is called ``name`` while some have names (a misspelt name);
    a graph with no named variables gives [].
    """
    variables = [n for n in walk([output]) if is_variable(n)]
    nodes = [n for n in variables if n.name == name
             and (time_step(n.scope) or 0) >= 1 and n.requires_grad]
    names = {n.name for n in variables}
    if variables and name not in names:     # a misspelt name gave [] as if no gradient flowed
        raise tg.ConfigError(f"gradient_norms: no variable named {name!r} behind this output; "
                             f"its variables are named {sorted(names)}")
    nodes.sort(key=lambda n: time_step(n.scope))
    for a, b in zip(nodes, nodes[1:]):
        if time_step(a.scope) == time_step(b.scope):
            raise tg.ConfigError(
                f"gradient_norms: two variables {name}({time_step(a.scope)}) behind this output, so "
                f"their norms cannot be told apart by step: a state carried over from an earlier "
                f"run without detach() (pass h0=state.detach(), or take the earlier run's norms "
                f"from its own loss), or two layers whose states share the name {name!r}")
    grads = tg.grad(output, nodes, retain_graph=True)
    return [(time_step(n.scope), float(vector_norm(g))) for n, g in zip(nodes, grads)]


def _norms(output, order):
    """id -> gradient norm, from ``.grad`` and, if the graph is still alive, tg.grad on named nodes."""
    norms = {id(n): float(vector_norm(n.grad)) for n in order if n.grad is not None}
    named = [n for n in order if is_variable(n) and n.requires_grad and id(n) not in norms]
    if named and output.requires_grad and output.size == 1:
        try:
            grads = tg.grad(output, named, retain_graph=True)
        except tg.BackwardError:
            return norms
        norms.update({id(n): float(vector_norm(g)) for n, g in zip(named, grads)})
    return norms


def log_range(norms):
    """(lowest, highest) log10 of the positive finite values of ``norms``."""
    logs = [math.log10(v) for v in norms if v > 0 and math.isfinite(v)]
    return (min(logs), max(logs)) if logs else (0.0, 0.0)


def grad_colour(norm, lo, hi):
    """Fill colour of a gradient norm on a log scale from ``lo`` to ``hi`` (light to dark)."""
    if norm <= 0 or not math.isfinite(norm):
        return _RAMP[0] if norm == 0 else "#cb181d"
    x = 0.0 if hi <= lo else (math.log10(norm) - lo) / (hi - lo)
    return _RAMP[min(len(_RAMP) - 1, int(x * len(_RAMP)))]


_DARK = {_RAMP[-2], _RAMP[-1], "#cb181d"}


def grad_fill(norm, lo, hi):
    """Node attributes filling it by ``grad_colour``, with white text where the fill is dark."""
    colour = grad_colour(norm, lo, hi)
    attrs = {"style": "filled", "fillcolor": colour}
    if colour in _DARK:
        attrs["fontcolor"] = "white"
    return attrs


def graph(tensor, keep=KEEP, grads=False):
    """The op-level DAG behind ``tensor``.

    Parameters
    ----------
    tensor : Tensor
    keep : int
        A chain of steps longer than ``2 * keep + 1`` steps is drawn as its first
        and last ``keep`` steps plus an elision node naming the chain when there
        are several (the encoder and the decoder of an encoder-decoder).
    grads : bool
        Colour nodes by gradient norm: ``.grad`` of leaves and retained nodes,
        and ∂tensor/∂node of named nodes while the graph is alive.

    Returns
    -------
    graphviz.Digraph
    """
    if not isinstance(tensor, tg.Tensor):
        raise tg.DTypeError(f"viz.graph: needs a tinygraph Tensor, got {type(tensor).__name__}")
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
        raise tg.ConfigError(f"viz.graph: keep must be a positive integer, got {keep!r}")
    return _draw(tensor, keep, grads)


def _draw(tensor, keep, grads):
    order = walk([tensor])
    chains = {}         # chain -> its steps t >= 1 (an encoder-decoder has two chains)
    for n in order:
        t = time_step(n.scope)
        if t is not None and t >= 1:
            chains.setdefault(_chain(n.scope), set()).add(t)
    hidden = {}         # chain -> its steps left out
    for chain, ts in chains.items():
        ts = sorted(ts)
        if len(ts) > 2 * keep + 1:
            hidden[chain] = set(ts[keep:-keep])

    def is_hidden(node):
        return time_step(node.scope) in hidden.get(_chain(node.scope), ())
    norms = _norms(tensor, order) if grads else {}
    lo, hi = log_range(norms.values())

    g = graphviz.Digraph(name="ops")
    g.attr(rankdir="LR", newrank="true", nodesep="0.15", ranksep="0.3")
    g.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname="Helvetica",
           fontsize="10", margin="0.06,0.03")
    g.attr("edge", arrowsize="0.6")

    ids = {}
    shown = [n for n in order if not is_hidden(n)
             and (param_behind(n) is None or n is tensor)]
    for i, node in enumerate(shown):
        ids[id(node)] = f"n{i}"
    before = _before_the_steps(order) if chains else None
    clusters = {}
    gap_ids = {}        # chain -> the id of the node standing for its steps left out
    for k, chain in enumerate(sorted(hidden)):
        gap_ids[chain] = "elided" if len(hidden) == 1 else f"elided{k}"
        first, last = min(hidden[chain]), max(hidden[chain])
        of = f" of {chain}" if len(chains) > 1 else ""
        clusters.setdefault(None, []).append(
            (gap_ids[chain],
             {"label": f"<... {len(hidden[chain]):,} time steps{html_text(of)} left out "
                       f"(t={first} to t={last}) ...>",
              "shape": "box", "style": "dashed", "fontsize": "12"}))
    gap_edges = set()
    groups = {}
    edges = []
    for node in shown:
        nid = ids[id(node)]
        attrs = {"label": _node_label(node, norms.get(id(node)) if grads else None)}
        if isinstance(node, Parameter):
            attrs.update(shape="box", style="filled", fillcolor="#dbe9f6")
        if grads and id(node) in norms:
            attrs.update(grad_fill(norms[id(node)], lo, hi))
        if node.name is not None and not isinstance(node, Parameter):
            attrs["group"] = f"v{groups.setdefault(node.name, len(groups))}"
        members = clusters.setdefault(_cluster_key(node, before), [])
        members.append((nid, attrs))
        for j, p in enumerate(node.parents):
            base = param_behind(p)
            if base is not None:
                pid = f"{nid}_p{j}"
                members.append((pid, _param_copy(p, base, norms, lo, hi)))
                edges.append((pid, nid))
            elif id(p) in ids:
                edges.append((ids[id(p)], nid))
            else:
                gap_id = gap_ids[_chain(p.scope)]
                if (gap_id, nid) not in gap_edges:
                    gap_edges.add((gap_id, nid))
                    edges.append((gap_id, nid))
    for node in order:
        if is_hidden(node):
            gap_id = gap_ids[_chain(node.scope)]
            for p in node.parents:
                if id(p) in ids and (ids[id(p)], gap_id) not in gap_edges:
                    gap_edges.add((ids[id(p)], gap_id))
                    edges.append((ids[id(p)], gap_id))

    ranked = sorted(clusters.items(), key=lambda kv: _cluster_rank(kv[0]))
    firsts, lasts = {}, {}
    for k, (key, members) in enumerate(ranked):
        if key is None:
            for nid, attrs in members:
                g.node(nid, **attrs)
            continue
        scope, part = key
        t = time_step(scope) if part != "replayed" else _replayed(scope)[0]
        if t is not None:
            firsts.setdefault((_chain(scope), t), members[-1][0])
            lasts[(_chain(scope), t)] = members[0][0]
        with g.subgraph(name=f"cluster_{k}") as c:
            c.attr(label=f"<{html_text(_cluster_title(scope, part))}>", style="rounded",
                   color="#999999", fontname="Helvetica", fontsize="11")
            for nid, attrs in members:
                c.node(nid, **attrs)
    for a, b in edges:
        g.edge(a, b)
    drawn = sorted(lasts)                       # by chain, then time
    for a, b in zip(drawn, drawn[1:]):          # each chain's steps left to right in time order
        if a[0] == b[0]:
            g.edge(lasts[a], firsts[b], style="invis", weight="0")
    return g


def _before_the_steps(order):
    """ids of the nodes made outside any time step that no time step's node feeds: computed
    once, before the steps, and shared by them (a cell's time-batched input projection)."""
    after = {}
    for root in order:                  # iterative post-order: parents before children
        if id(root) in after:
            continue
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                after[id(node)] = time_step(node.scope) is not None or any(
                    after[id(p)] for p in node.parents)
                continue
            if id(node) in after:
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents if id(p) not in after)
    return {i for i, dep in after.items() if not dep}


_REPLAYED = re.compile(r"^t=(\d+)\.\.(\d+)$")


def _replayed(scope):
    """(a, b) for the scope of steps a..b replayed as one node (rnn.replay), else None."""
    m = _REPLAYED.match((scope or "").split("/")[-1])
    return None if m is None else (int(m.group(1)), int(m.group(2)))


def _chain(scope):
    """The chain a step's scope belongs to: the scope up to its innermost step ("t=K" or the
    replayed "t=a..b"), e.g. "encdec/encoder" for "encdec/encoder/t=3"; None outside the steps.
    The encoder and the decoder of an encoder-decoder are two chains with steps 1, 2, ... each."""
    parts = (scope or "").split("/")
    for i in range(len(parts) - 1, -1, -1):
        if time_step(parts[i]) is not None or _REPLAYED.match(parts[i]):
            return "/".join(parts[:i])
    return None


def _cluster_key(node, before):
    """The cluster of ``node``: None (no scope), or (scope, part) where part splits a scope
    outside the time steps of an unroll (``before`` not None) into what is computed "before"
    the steps and "after" them."""
    if node.scope is None:
        return None
    if before is None or time_step(node.scope) is not None:
        return (node.scope, None)
    if _replayed(node.scope):
        return (node.scope, "replayed")
    return (node.scope, "before" if id(node) in before else "after")


def _cluster_rank(key):
    """Where a cluster goes: what comes before the steps, the steps in time order, the rest
    (the loss over all steps)."""
    if key is None:
        return (3, 0, "")
    scope, part = key
    if part == "replayed":          # in time order with the steps, from its first
        return (1, _replayed(scope)[0], scope)
    t = time_step(scope)
    return (0 if part == "before" else 1 if part is None else 2, t or 0, scope)


def _cluster_title(scope, part):
    """A cluster's label: its scope, and for a part outside the steps, what it holds."""
    if part == "before":
        return f"{scope}: computed once before the steps, shared by all of them"
    if part == "after":
        return f"{scope}: after the steps"
    if part == "replayed":
        a, b = _replayed(scope)
        return (f"{scope}: steps {a} to {b} as one node, run from the tape of a recorded step "
                "(rnn.replay)")
    return scope
