"""Read back what the renderer drew: nodes, edges and clusters of an SVG written by Graphviz."""

import xml.etree.ElementTree as ET

_NS = {"s": "http://www.w3.org/2000/svg"}


def _texts(g):
    return " ".join("".join(t.itertext()) for t in g.findall(".//s:text", _NS))


def parse(svg):
    """(nodes, edges, clusters) of an SVG.

    nodes: id -> {"text": label text, "x": centre x, "y": centre y (down), "fill": fill colour}
    edges: list of (from id, to id, label text) in the direction the arrowhead points (an edge
        written reversed with dir=back reads the way it is drawn); invisible edges are skipped
    clusters: title -> label text
    """
    root = ET.fromstring(svg)
    nodes, edges, clusters = {}, [], {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        kind = g.get("class")
        title = g.findtext("s:title", default="", namespaces=_NS)
        if kind == "node":
            shape = g.find("s:ellipse", _NS)
            poly = g.find("s:polygon", _NS)
            if shape is not None:
                x, y, fill = float(shape.get("cx")), float(shape.get("cy")), shape.get("fill")
            elif poly is not None:
                pts = [tuple(map(float, p.split(","))) for p in poly.get("points").split()]
                x = sum(p[0] for p in pts) / len(pts)
                y = sum(p[1] for p in pts) / len(pts)
                fill = poly.get("fill")
            else:   # rounded box: a path; place it at its first text line
                text = g.find("s:text", _NS)
                x, y = float(text.get("x")), float(text.get("y"))
                fill = g.find("s:path", _NS).get("fill")
            nodes[title] = {"text": _texts(g), "x": x, "y": y, "fill": fill}
        elif kind == "edge" and g.find("s:path", _NS) is not None:
            tail, head = (end.split(":")[0] for end in title.split("->"))   # without ports
            arrow = g.find("s:polygon", _NS)
            path = [tuple(map(float, p.split(",")))
                    for p in g.find("s:path", _NS).get("d").replace("M", "").replace("C", " ").split()]
            backwards = False
            if arrow is not None:
                pts = [tuple(map(float, p.split(","))) for p in arrow.get("points").split()]
                tip = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
                backwards = _dist(tip, path[0]) < _dist(tip, path[-1])
            edges.append((head, tail, _texts(g)) if backwards else (tail, head, _texts(g)))
        elif kind == "cluster":
            clusters[title] = _texts(g)
    return nodes, edges, clusters


def _dist(p, q):
    return (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2


def by_text(nodes):
    """label text -> node id (labels must be unique)."""
    out = {}
    for nid, n in nodes.items():
        assert n["text"] not in out, f"two nodes drawn as {n['text']!r}"
        out[n["text"]] = nid
    return out


def edge_labels(svg):
    """The texts written on edges (weights), each as (text, x0, y0, x1, y1): a box from the
    text's anchor, its font size and its length (a glyph taken as 0.55 of the size wide)."""
    root = ET.fromstring(svg)
    out = []
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") != "edge":
            continue
        for t in g.findall(".//s:text", _NS):
            text = "".join(t.itertext())
            size = float(t.get("font-size", 14))
            width, x, y = 0.55 * size * len(text), float(t.get("x")), float(t.get("y"))
            anchor = t.get("text-anchor", "start")
            x0 = x - width / 2 if anchor == "middle" else x - width if anchor == "end" else x
            out.append((text, x0, y - 0.8 * size, x0 + width, y))
    return out


def crowded(labels, margin=4.0):
    """Pairs of edge labels whose boxes come closer than ``margin`` (points): read as one word
    ("UgW") or drawn over each other."""
    return [(a[0], b[0]) for i, a in enumerate(labels) for b in labels[i + 1:]
            if a[1] < b[3] + margin and b[1] < a[3] + margin
            and a[2] < b[4] + margin and b[2] < a[4] + margin]
