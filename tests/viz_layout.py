"""Read back a layout: the renderer's ``-Tplain`` output (node boxes, edge splines) and the
figures of a readable unrolled view measured on it (used by tests/test_viz_layout.py and
bench/views.py).

``-Tplain`` gives, in inches with y growing upwards, every node's centre and size and every
edge's spline control points; a view's node ids tell the step they belong to (the unrolled
view's steps are ``cluster_`` subgraphs named ``..._c<chain>_t<t>``)."""

import re
import shlex

import numpy as np

import rnn
import tinygraph as tg
import viz


def plain(digraph):
    """(nodes, edges) of ``digraph`` laid out by the project's renderer.

    nodes: id -> (x, y, width, height) in inches; edges: list of (tail, head, [(x, y), ...]).
    """
    text = viz.render(digraph, "plain", quiet=True).decode()
    nodes, edges = {}, []
    for line in text.splitlines():
        if line.startswith("node "):
            parts = shlex.split(line)
            nodes[parts[1]] = tuple(float(v) for v in parts[2:6])
        elif line.startswith("edge "):
            parts = shlex.split(line)
            n = int(parts[3])
            xy = [float(v) for v in parts[4:4 + 2 * n]]
            edges.append((parts[1], parts[2], list(zip(xy[::2], xy[1::2]))))
    return nodes, edges


_CLUSTER = re.compile(r"^\s*subgraph (cluster_\S+) \{$")
_MEMBER = re.compile(r"^\s*([\w]+)(?: \[.*)?$")
_STEP_BOX = re.compile(r"_c(\d+)_t(\d+)$")


_NODE_ID = re.compile(r"^\s*(\w+_\d+) \[", re.M)


def step_boxes(digraph):
    """node id -> (chain, t) for the nodes of every step box (a ``cluster_..._c<chain>_t<t>``
    subgraph of the DOT source); in a view without boxes (before issue 20), the steps read
    from the node ids ``<variable>_<t>``."""
    out, box = {}, None
    if "subgraph cluster_" not in digraph.source:      # an unboxed view: steps from the ids
        return {nid: (0, int(nid.rsplit("_", 1)[1])) for nid in _NODE_ID.findall(digraph.source)}
    for line in digraph.source.splitlines():
        m = _CLUSTER.match(line)
        if m:
            found = _STEP_BOX.search(m.group(1))
            box = (int(found.group(1)), int(found.group(2))) if found else None
        elif line.strip() == "}":
            box = None
        elif box is not None:
            member = _MEMBER.match(line)
            if member and "=" not in member.group(1):
                out[member.group(1)] = box
    return out


_COLUMN = re.compile(r"^\s*subgraph cluster_\w+_c(\d+)_t?(\d+|start|gap|end) \{$")


def columns_out_of_time_order(digraph):
    """The pairs of neighbouring columns of one chain of an unrolled view with boxes (its
    ``(...)`` start, its steps, its elision, its ``(...)`` end: the ``cluster_..._c<chain>_...``
    subgraphs) whose drawn nodes do not stand left to right in that order, as
    "chain 0: gap at 7.06 in, step 3 at 8.52 in" strings (the x of each column's centre)."""
    nodes, _ = plain(digraph)
    span, column = {}, None
    for line in digraph.source.splitlines():
        m = _COLUMN.match(line)
        if m:
            chain, name = int(m.group(1)), m.group(2)
            column = (chain, int(name) if name.isdigit() else name)
        elif line.strip() == "}":
            column = None
        elif column is not None:
            member = _MEMBER.match(line)
            if member and member.group(1) in nodes and nodes[member.group(1)][2] > 0:
                x, _, w, _ = nodes[member.group(1)]
                left, right = span.get(column, (x - w / 2, x + w / 2))
                span[column] = (min(left, x - w / 2), max(right, x + w / 2))
    out = []
    for chain in sorted({c for c, _ in span}):
        steps = sorted(k for c, k in span if c == chain and isinstance(k, int))
        gap = next((b - 0.5 for a, b in zip(steps, steps[1:]) if b - a > 1),   # (a chain
                   steps[-1] + 0.5 if steps else 0)      # that ends in the elision: after it)
        order = {"start": -1, "gap": gap, "end": float("inf")}
        keys = sorted((k for c, k in span if c == chain),
                      key=lambda k: k if isinstance(k, int) else order[k])
        at = {k: sum(span[(chain, k)]) / 2 for k in keys}
        for a, b in zip(keys, keys[1:]):
            if at[a] >= at[b]:
                out.append(f"chain {chain}: {_column_name(a)} at {at[a]:.2f} in, "
                           f"{_column_name(b)} at {at[b]:.2f} in")
    return out


def _column_name(key):
    return f"step {key}" if isinstance(key, int) else key


def bands(nodes, boxes):
    """(chain, t) -> (left, right, bottom, top) of the box around its nodes, in inches."""
    out = {}
    for nid, key in boxes.items():
        if nid not in nodes:
            continue
        x, y, w, h = nodes[nid]
        if w == 0:              # an invisible anchor
            continue
        l, r, b, tp = out.get(key, (x - w / 2, x + w / 2, y - h / 2, y + h / 2))
        out[key] = (min(l, x - w / 2), max(r, x + w / 2), min(b, y - h / 2), max(tp, y + h / 2))
    return out


def _inside(p, box, margin=0.02):
    l, r, b, t = box
    return l + margin < p[0] < r - margin and b + margin < p[1] < t - margin


def _points(spline, per_piece=8):
    """Points along a piecewise cubic Bezier spline (control points as -Tplain lists them)."""
    out = [spline[0]]
    for i in range(0, len(spline) - 3, 3):
        p0, p1, p2, p3 = (np.array(p) for p in spline[i:i + 4])
        for s in np.linspace(0, 1, per_piece + 1)[1:]:
            q = (1 - s) ** 3 * p0 + 3 * (1 - s) ** 2 * s * p1 + 3 * (1 - s) * s ** 2 * p2 \
                + s ** 3 * p3
            out.append((float(q[0]), float(q[1])))
    return out


def measure(digraph):
    """The layout figures of an unrolled view, laid out by the project's renderer.

    interleaved: pairs of consecutive steps of one chain whose boxes overlap or come out of
    time order (left to right), or step boxes of different chains that overlap;
    stray: drawn edges that pass through the box of a step they do not join (an edge from step
    t - d to step t of one chain joins the steps between);
    ends: nodes outside the step boxes (``(...)`` ends, static variables, elisions) that
    stand inside one;
    per_step: the drawing's width divided by the number of steps (inches).
    """
    nodes, edges = plain(digraph)
    boxes = step_boxes(digraph)
    box = bands(nodes, boxes)
    keys = sorted(box)
    interleaved = sum(1 for a, b in zip(keys, keys[1:]) if a[0] == b[0] and box[a][1] > box[b][0])
    interleaved += sum(1 for i, a in enumerate(keys) for b in keys[i + 1:] if a[0] != b[0]
                       and _overlap(box[a], box[b]))
    visible = {(a, b) for a, b in _drawn_edges(digraph)}
    stray = 0
    for tail, head, spline in edges:
        if (tail, head) not in visible and (head, tail) not in visible:
            continue
        joined = {boxes.get(tail), boxes.get(head)}
        ends_ = [k for k in joined if k is not None]
        if len(ends_) == 2 and ends_[0][0] == ends_[1][0]:     # a skip over d steps spans them
            (c, a), (_, b) = sorted(ends_)
            joined |= {(c, t) for t in range(a, b + 1)}
        elif len(ends_) == 1:          # a skip from or to a (...) end or the elision spans the
            joined |= _spanned(ends_[0], tail if boxes.get(head) else head, keys)   # steps between
        if any(_inside(p, box[k]) for k in keys if k not in joined for p in _points(spline)):
            stray += 1
    ends = sum(1 for nid, (x, y, w, h) in nodes.items() if nid not in boxes and w > 0
               and any(_inside((x, y), box[k], margin=0) for k in keys))
    drawn = [v for nid, v in nodes.items() if v[2] > 0]
    left = min(x - w / 2 for x, y, w, h in drawn)
    right = max(x + w / 2 for x, y, w, h in drawn)
    return {"interleaved": interleaved, "stray": stray, "ends": ends,
            "per_step": (right - left) / max(1, len({t for _, t in keys}))}


def _spanned(step, other, keys):
    """The drawn steps of ``step``'s chain between it and ``other``, a node outside the steps:
    a ``(...)`` end before (``_start``) or after (``_end``) them, or the elision (``_gap``)."""
    chain, t = step
    steps = sorted(s for c, s in keys if c == chain)
    if other.endswith("_start"):
        return {(chain, s) for s in steps if s < t}
    if other.endswith("_end"):
        return {(chain, s) for s in steps if s > t}
    if other.endswith("_gap"):
        after = [b for a, b in zip(steps, steps[1:]) if b - a > 1]    # the first step after it
        if after:
            return {(chain, s) for s in steps if (after[0] <= s < t if t >= after[0] else t < s < after[0])}
    return set()


def _overlap(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


def _drawn_edges(digraph):
    """(tail, head) of the edges of the DOT source that are drawn (not style=invis)."""
    out = []
    for line in digraph.source.splitlines():
        m = _EDGE.match(line)
        if m and "style=invis" not in (m.group(3) or ""):
            out.append((m.group(1), m.group(2)))
    return out


def _user_lstm():
    """An LSTM a user writes with rnn.Recurrence: state {"s", "h"}, gates named f, g, q."""
    rng = np.random.default_rng(0)
    P = {k: tg.Parameter(rng.normal(size=shape) * 0.3, name=k) for k, shape in
         (("Uf", (3, 2)), ("Wf", (3, 3)), ("Ug", (3, 2)), ("Wg", (3, 3)), ("Uq", (3, 2)),
          ("Wq", (3, 3)), ("U", (3, 2)), ("W", (3, 3)), ("V", (4, 3)))}

    def step(state, x):
        h = state["h"]
        f = (x @ P["Uf"].T + h @ P["Wf"].T).sigmoid().named("f")
        g = (x @ P["Ug"].T + h @ P["Wg"].T).sigmoid().named("g")
        q = (x @ P["Uq"].T + h @ P["Wq"].T).sigmoid().named("q")
        s = f * state["s"] + g * (x @ P["U"].T + h @ P["W"].T).tanh()
        return {"s": s, "h": s.tanh() * q}

    return rnn.Recurrence(step, list(P.values()), {"s": 3, "h": 3}, n_in=2,
                          readout=lambda state: state["h"] @ P["V"].T, name="user_lstm")


def _peephole():
    """A peephole LSTM (Gers and Schmidhuber): the gates also read the cell state s(t-1)."""
    rng = np.random.default_rng(1)
    P = {k: tg.Parameter(rng.normal(size=shape) * 0.3, name=k) for k, shape in
         (("Uf", (3, 2)), ("Wf", (3, 3)), ("Pf", (3,)), ("Ug", (3, 2)), ("Wg", (3, 3)),
          ("Pg", (3,)), ("Uq", (3, 2)), ("Wq", (3, 3)), ("Pq", (3,)), ("U", (3, 2)),
          ("W", (3, 3)), ("V", (4, 3)))}

    def step(state, x):
        h, c = state["h"], state["s"]
        f = (x @ P["Uf"].T + h @ P["Wf"].T + c * P["Pf"]).sigmoid().named("f")
        g = (x @ P["Ug"].T + h @ P["Wg"].T + c * P["Pg"]).sigmoid().named("g")
        s = f * c + g * (x @ P["U"].T + h @ P["W"].T).tanh()
        q = (x @ P["Uq"].T + h @ P["Wq"].T + s * P["Pq"]).sigmoid().named("q")
        return {"s": s, "h": s.tanh() * q}

    return rnn.Recurrence(step, list(P.values()), {"s": 3, "h": 3}, n_in=2,
                          readout=lambda state: state["h"] @ P["V"].T, name="peephole")


def readme_attention_decoder(name="α", weights=True):
    """The README's own attention over another model's states: a user's Recurrence whose step
    reads the stacked states of an ElmanRNN (a static input of the view, drawn once); its
    parameters drawn from ``default_rng(1)``, as the README's.  ``name``: what its weights are
    named; ``weights=False``: tanh of the scores in the softmax's place (no weights summing to 1)."""
    encoder = rnn.ElmanRNN(3, 4, 3, seed=0)
    memory = tg.stack(encoder.run(np.array([0, 1, 2, 1])).states)
    rng = np.random.default_rng(1)
    Wd, R, V = (tg.Parameter(rng.normal(0, 0.5, s), name=n) for n, s in
                (("Wd", (4, 4)), ("R", (4, 4)), ("V", (3, 4))))

    def step(s, x):
        scores = s @ memory.T
        alpha = (tg.softmax(scores, axis=-1) if weights else scores.tanh()).named(name)
        ctx = (alpha @ memory).named("ctx")
        return (s @ Wd.T + ctx @ R.T + x).tanh()

    return rnn.Recurrence(step, [Wd, R, V], n_state=4, n_in=4, readout=lambda s: s @ V.T,
                          name="dec")


def designs():
    """name -> a small model of every design the issue lists (issue 20's layout targets)."""
    return {
        "elman": rnn.ElmanRNN(4, 3, 4),
        "jordan": rnn.JordanRNN(4, 3, 4),
        "seq2one": rnn.SequenceToOne(4, 3, 4),
        "vec2seq": rnn.VectorToSequence(4, 3, 4),
        "conditional": rnn.ConditionalRNN(4, 3, 4),
        "lstm": rnn.LSTM(4, 3, 4),
        "gru": rnn.GRU(4, 3, 4),
        "bidirectional": rnn.BidirectionalRNN(4, 3, 4),
        "encdec": rnn.EncoderDecoder(4, 3, 4),
        "deep_stacked": rnn.DeepRNN(4, 3, 4, kind="stacked"),
        "deep_mlp": rnn.DeepRNN(4, 3, 4, kind="mlp"),
        "deep_skip": rnn.DeepRNN(4, 3, 4, kind="skip"),
        "leaky_skip": rnn.LeakyRNN(4, 3, 4, skip=2),
        "esn": rnn.EchoStateNetwork(4, 3, 4),
        "memory": rnn.MemoryNetwork(4, 3, 4, slots=4, width=3),
        "user_lstm": _user_lstm(),
        "peephole": _peephole(),
    }


def label_clashes(digraph, margin=1.0):
    """What the weights written on the edges (labels, xlabels, head and tail labels) lie on,
    read from the renderer's ``-Tjson`` layout (text boxes from the drawn text's position,
    width and font size; points): "label 'W' of a->b on node c", "... on edge c->d" (an edge
    other than its own passing inside its box by more than ``margin`` points), "... on label
    'U' of c->d"."""
    import json
    import subprocess
    from viz.render import find_renderer
    out = subprocess.run([find_renderer(), "-Tjson"], input=digraph.source.encode(),
                         capture_output=True, check=True).stdout
    layout = json.loads(out)
    objects = layout["objects"]
    nodes = {}
    for o in objects:
        if "pos" in o and "nodes" not in o and "width" in o and o.get("style") != "invis":
            x, y = map(float, o["pos"].split(","))
            w, h = float(o["width"]) * 72, float(o["height"]) * 72
            if w > 0:
                nodes[o["name"]] = (x, y, w, h, o.get("shape"))
    labels, edges = [], []
    for i, e in enumerate(layout.get("edges", [])):
        if e.get("style") == "invis":
            continue
        name = f"{objects[e['tail']]['name']}->{objects[e['head']]['name']}"
        points = []
        for op in e.get("_draw_", []):
            if op["op"] in "bB":
                points += _points(op["points"], per_piece=12)
        edges.append((i, name, points))
        for key in ("_ldraw_", "_xldraw_", "_hldraw_", "_tldraw_"):
            size = 14.0
            for op in e.get(key, []):
                if op["op"] == "F":
                    size = op["size"]
                elif op["op"] == "T":
                    (x, y), w = op["pt"], op["width"]
                    left = x if op["align"] == "l" else x - w / 2 if op["align"] == "c" else x - w
                    labels.append((i, f"'{op['text']}' of {name}",
                                   (left, left + w, y - 0.2 * size, y + 0.72 * size)))
    found = []
    for i, what, (l, r, b, t) in labels:
        for j, other, points in edges:
            if j != i and any(l + margin < x < r - margin and b + margin < y < t - margin
                              for x, y in points):
                found.append(f"label {what} on edge {other}")
        for node, (x, y, w, h, shape) in nodes.items():
            grid = [(u, v) for u in np.linspace(l, r, 6) for v in np.linspace(b, t, 4)]
            if shape in ("circle", "ellipse", "doublecircle"):
                hit = any(((u - x) / (w / 2 - 0.5)) ** 2 + ((v - y) / (h / 2 - 0.5)) ** 2 < 1
                          for u, v in grid)
            else:
                hit = any(abs(u - x) < w / 2 - 0.5 and abs(v - y) < h / 2 - 0.5 for u, v in grid)
            if hit:
                found.append(f"label {what} on node {node}")
    for k, (_, what, a) in enumerate(labels):
        for _, other, b in labels[k + 1:]:
            if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                found.append(f"label {what} on label {other}")
    return found


_NODE_LINE = re.compile(r"^\s*(\w+) \[(.*)\]$")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|<.*?>(?= \w+=|$)|[^ \]]+)')


def _dot_graph(digraph):
    """(nodes, edges) of the DOT source: node id -> its attribute text, and (tail, head) of
    each drawn edge in the direction of the dependency (an edge written head to tail with
    ``dir=back``, laid out reversed, read back the right way)."""
    nodes, edges = {}, []
    for line in digraph.source.splitlines():
        m = _EDGE.match(line)
        if m:
            attrs = m.group(3) or ""
            if "style=invis" in attrs:
                continue
            a, b = m.group(1), m.group(2)
            edges.append((b, a) if "dir=back" in attrs else (a, b))
            continue
        m = _NODE_LINE.match(line)
        if m and m.group(1) not in ("graph", "node", "edge"):
            nodes[m.group(1)] = m.group(2)
    return nodes, edges


def undrawn_dependencies(digraph, variables, shown=None, keep=viz.views.KEEP, prefix="u"):
    """The dependencies of ``variables`` (its edges, the real edges of the unrolled graph)
    that the unrolled view ``digraph`` (drawn by viz.views.draw_unrolled with ``prefix``,
    ``shown`` and ``keep``) does not draw.

    Each end of an edge is aggregated to the nodes that stand for it: a drawn (name, t) to its
    own node; a step left out to the elision (``_gap``) or ``(...)`` node before (``_start``)
    or after (``_end``) the drawn steps of any variable of its chain (an initial state made at
    t = 0 to the chain's start or, for a chain backward in time, its end).  Every edge into a
    drawn node, and every edge out of a drawn step into a step left out, must be a drawn path
    from one of its tail's nodes to one of its head's through nothing but forks (points) and
    delays (empty squares).  An edge between two steps left out is summarised by the elision,
    and so is an edge from a static variable (C, the memory) into a step left out: its edges
    into the drawn steps of that chain show that it feeds them.  Returns the edges missing, as
    "('h', 5) -> ('memory', None)" strings."""
    names = variables.names
    ids = {name: f"{prefix}{i}" for i, name in enumerate(names)}
    chain = viz.views._chains(variables)
    steps = variables.steps
    shown = viz.views._shown_steps(steps, keep, shown)
    shown_set = set(shown)
    nodes, edges = _dot_graph(digraph)
    after = {}
    for a, b in edges:
        after.setdefault(a, set()).add(b)

    def connector(nid):
        attrs = nodes.get(nid, "")
        return "shape=point" in attrs or 'label=""' in attrs

    def reaches(a, b):
        seen, todo = {a}, [a]
        while todo:
            for nxt in after.get(todo.pop(), ()):
                if nxt == b:
                    return True
                if nxt not in seen and connector(nxt):
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def nodes_of(key):
        name, t = key
        if t is None:
            return [ids[name]]
        if t in shown_set:
            return [f"{ids[name]}_{t}"]
        wheres = ["start", "end"] if t == 0 else [
            "start" if t < shown[0] else "end" if t > shown[-1] else "gap"]
        return [f"{ids[n]}_{where}" for n in names if chain[n] == chain[name]
                for where in wheres if f"{ids[n]}_{where}" in nodes]

    def drawn(key):
        return key[1] is None or key[1] in shown_set

    missing = []
    for src, dst in variables.edges:
        if not drawn(dst) and (not drawn(src) or src[1] is None):
            continue
        if not any(reaches(a, b) for a in nodes_of(src) for b in nodes_of(dst)):
            missing.append(f"{src} -> {dst}")
    return missing


def undrawn_folded_dependencies(digraph, variables, prefix="f"):
    """The dependencies of ``variables`` that the folded view ``digraph`` (drawn by
    viz.views.draw_folded with ``prefix``) does not draw: every edge between steps 1, 2, ...
    and static variables, quotiented by time, must be a drawn path from its tail's node to its
    head's through nothing but delays and look-aheads (squares without a label)."""
    ids = {name: f"{prefix}{i}" for i, name in enumerate(variables.names)}
    nodes, edges = _dot_graph(digraph)
    after = {}
    for a, b in edges:
        after.setdefault(a, set()).add(b)
    missing = []
    for src, dst in variables.edges:
        if any(t is not None and t < 1 for t in (src[1], dst[1])):
            continue            # from the initial state: the folded view draws no step 0
        seen, todo, found = set(), [ids[src[0]]], False
        while todo and not found:
            for nxt in after.get(todo.pop(), ()):
                if nxt == ids[dst[0]]:
                    found = True
                elif nxt not in seen and 'label=""' in nodes.get(nxt, ""):
                    seen.add(nxt)
                    todo.append(nxt)
        if not found:
            missing.append(f"{src} -> {dst}")
    return missing


def _segments_cross(p, q, r, s):
    """Whether the segments p-q and r-s cross (a proper crossing, not a touch at an end)."""
    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    d1, d2, d3, d4 = side(r, s, p), side(r, s, q), side(p, q, r), side(p, q, s)
    return d1 * d2 < 0 and d3 * d4 < 0


def crossings(digraph):
    """The pairs of drawn edges of ``digraph`` whose curves cross (edges that share a node, which
    meet there, are not counted), laid out by the project's renderer: a list of
    ((tail, head), (tail, head)) pairs, each once, in the order of the layout's edges."""
    _, edges = plain(digraph)
    visible = set(_drawn_edges(digraph))
    drawn = [(t, h, _points(s)) for t, h, s in edges if (t, h) in visible or (h, t) in visible]
    boxes = []
    for _, _, pts in drawn:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        boxes.append((min(xs), max(xs), min(ys), max(ys)))
    out = []
    for i, (ta, ha, a) in enumerate(drawn):
        for j in range(i + 1, len(drawn)):
            tb, hb, b = drawn[j]
            if {ta, ha} & {tb, hb}:
                continue
            (l1, r1, b1, t1), (l2, r2, b2, t2) = boxes[i], boxes[j]
            if r1 < l2 or r2 < l1 or t1 < b2 or t2 < b1:
                continue
            if any(_segments_cross(p, q, r, s) for p, q in zip(a, a[1:])
                   for r, s in zip(b, b[1:])):
                out.append(((ta, ha), (tb, hb)))
    return out


def crossings_in_steps(digraph):
    """The pairs of :func:`crossings` whose four ends all stand in one step's box (the step's
    own edges crossing each other, as the GRU's U crossed Wu and Wr)."""
    boxes = step_boxes(digraph)
    out = []
    for (a, b), (c, d) in crossings(digraph):
        steps = {boxes.get(n) for n in (a, b, c, d)}
        if len(steps) == 1 and None not in steps:
            out.append(((a, b), (c, d)))
    return out
