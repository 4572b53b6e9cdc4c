"""The demo's summary page: one static ``index.html`` that shows the figures,
diagrams and plots written beside it (by relative links, so it opens from disk
with no server) and the text results (losses, gradient check, samples).

The page opens with a table of contents; every section has an anchor.  Every image is
shown at one scale, ``PX_PER_PT`` CSS pixels per point of the drawing (so an 18 pt label
of a diagram is 18 px high, whatever the diagram's size), never shrunk to fit: a figure
wider than the page scrolls inside its frame.  A diagram the renderer scaled down to fit a
screen (:func:`image_size`) is shown at its own scale too, as large as drawn before scaling.  Every figure has a caption.
"""

import html
import os
import re
import xml.etree.ElementTree as ElementTree

from tinygraph.files import atomic_write

from .render import OutputPathError

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1240px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
nav.toc { background: #f6f8fa; border: 1px solid #e4e4e4; border-radius: 6px; padding: 0.4em 1em; }
nav.toc h2 { border: 0; margin: 0.3em 0; font-size: 1.1em; }
nav.toc ol { columns: 3; column-gap: 2em; margin: 0.3em 0; }
nav.toc li { break-inside: avoid; }
.blocks { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
.blocks > * { min-width: 0; max-width: 100%; }
.blocks > table { flex: 1 1 30em; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure { margin: 0; border: 1px solid #e4e4e4; border-radius: 6px; padding: 0.6em; background: #fff;
         width: min-content; min-width: min(100%, 20em); max-width: 100%; box-sizing: border-box; }
figure .frame { overflow-x: auto; max-width: 100%; }
figure img { display: block; margin: auto; max-width: none; }
figcaption { font-size: 0.92em; color: #444; margin-top: 0.4em; }
pre { background: #f6f6f6; padding: 0.8em; border-radius: 6px; white-space: pre-wrap; margin: 0; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

PX_PER_PT = 1.0     # the page's one scale: 3/4 of the size an SVG declares (a point is 4/3 px)
_PT = {"pt": 1.0, "px": 0.75, "in": 72.0, "cm": 72 / 2.54, "mm": 7.2 / 2.54, "": 0.75}


def image_size(path):
    """(width, height) in points of an SVG file's drawing at its own scale, or None (not an
    SVG, or no absolute size).  That is the size the file declares, but for a diagram that
    Graphviz scaled down to fit a screen (``viz.views.new_digraph``'s ``size``: its graph
    group is ``transform="scale(s s) ..."`` with s < 1): the declared size over s, so that the
    page shows its labels at the one scale of every other image."""
    if not path.lower().endswith(".svg"):
        return None
    try:
        events = ElementTree.iterparse(path, events=("start",))
        root = next(events)[1]
        size = []
        for name in ("width", "height"):
            match = re.fullmatch(r"\s*([\d.]+)\s*(pt|px|in|cm|mm|)\s*", root.get(name, ""))
            if match is None:
                return None
            size.append(float(match.group(1)) * _PT[match.group(2)])
        scale = _drawing_scale(next(events, (None, None))[1])
    except (ElementTree.ParseError, StopIteration):
        return None
    return tuple(v / scale for v in size)


def _drawing_scale(element):
    """s of a Graphviz graph group's ``scale(s s)`` when 0 < s < 1 (a drawing scaled down to
    fit), else 1."""
    if element is None or element.get("class") != "graph":
        return 1.0
    match = re.match(r"\s*scale\(\s*([\d.eE+-]+)[\s,]+([\d.eE+-]+)\s*\)",
                     element.get("transform", ""))
    if match is None:
        return 1.0
    sx, sy = float(match.group(1)), float(match.group(2))
    return sx if 0 < sx < 1 and abs(sx - sy) <= 1e-6 * sx else 1.0


def anchor(heading, taken=()):
    """The id of a section: its heading in lower case, words joined by '-', unique in ``taken``."""
    base = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


class Section:
    """A section of the page: a heading and blocks (text, table, figures, links, preformatted)
    laid out side by side as the width allows."""

    def __init__(self, heading, text=""):
        self.heading, self.intro, self.blocks = heading, text, []

    def figures(self, items, text=""):
        """Images: ``items`` is a list of (relative path, caption); every caption must say
        what the figure shows (an empty caption is refused)."""
        items = list(items)
        for path, caption in items:
            if not str(caption).strip():
                raise ValueError(f"page: the figure {path!r} in section {self.heading!r} has no caption")
        self.blocks.append(("figures", text, items))
        return self

    def links(self, items, text=""):
        """Links to pages written beside this one: (relative path, caption)."""
        self.blocks.append(("links", text, list(items)))
        return self

    def text(self, body, preformatted=False):
        self.blocks.append(("pre" if preformatted else "text", body, None))
        return self

    def table(self, rows, header=None, caption=""):
        """A table: ``rows`` of cells under an optional ``header`` row; numbers are right-aligned."""
        self.blocks.append(("table", (header, caption), [list(r) for r in rows]))
        return self

    def paths(self):
        return [path for kind, _, items in self.blocks if kind in ("figures", "links")
                for path, _ in items]


class Page:
    """Collects sections, then writes them as one HTML file with a table of contents.

    Images are referred to by paths relative to the page's folder; ``write``
    refuses to produce a page with a link to a file that does not exist.
    """

    def __init__(self, title, intro=""):
        self.title = title
        self.intro = intro
        self.sections = []

    def section(self, heading, text=""):
        """A new section (returned: add its blocks with its methods)."""
        section = Section(heading, text)
        self.sections.append(section)
        return section

    def figures(self, heading, items, text=""):
        """A section of images: ``items`` is a list of (relative path, caption)."""
        return self.section(heading).figures(items, text)

    def link_list(self, heading, items, text=""):
        """A section of links to pages written beside this one: (relative path, caption)."""
        return self.section(heading).links(items, text)

    def text(self, heading, body, preformatted=False):
        return self.section(heading).text(body, preformatted)

    def table(self, heading, rows, header=None):
        """A section with a table: ``rows`` of cells, under an optional ``header`` row."""
        return self.section(heading).table(rows, header)

    def links(self):
        return [path for section in self.sections for path in section.paths()]

    def write(self, folder, name="index.html"):
        """Write the page into ``folder`` (atomically) and return its path."""
        missing = [p for p in self.links() if not os.path.isfile(os.path.join(folder, p))]
        if missing:
            raise FileNotFoundError(f"page: linked files are missing from {folder}: {missing}")
        esc = html.escape
        out = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
               f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
               f"<title>{esc(self.title)}</title><style>{_STYLE}</style></head><body>",
               f"<h1>{esc(self.title)}</h1>"]
        if self.intro:
            out.append(f"<p>{esc(self.intro)}</p>")
        ids = []
        for section in self.sections:
            ids.append(anchor(section.heading, ids))
        out.append("<nav class='toc' id='contents'><h2>Contents</h2><ol>"
                   + "".join(f"<li><a href='#{i}'>{esc(s.heading)}</a></li>"
                             for i, s in zip(ids, self.sections)) + "</ol></nav>")
        for section_id, section in zip(ids, self.sections):
            out.append(f"<section id='{section_id}'><h2>{esc(section.heading)}</h2>")
            if section.intro:
                out.append(f"<p>{esc(section.intro)}</p>")
            out.append("<div class='blocks'>")
            for kind, body, items in section.blocks:
                out.append(self._block(kind, body, items, folder))
            out.append("</div></section>")
        out.append("</body></html>\n")
        path = os.path.join(folder, name)
        with atomic_write(path, "page", OutputPathError) as f:
            f.write("\n".join(out).encode("utf-8"))
        return path

    @staticmethod
    def _block(kind, body, items, folder):
        esc = html.escape
        if kind == "figures":
            out = [f"<p>{esc(body)}</p>"] if body else []
            out.append("<div class='grid'>")
            for path, caption in items:
                size = image_size(os.path.join(folder, path))
                dims = (f" width='{round(size[0] * PX_PER_PT)}' height='{round(size[1] * PX_PER_PT)}'"
                        if size else "")
                out.append(f"<figure><div class='frame'><a href='{esc(path)}'><img src='{esc(path)}'"
                           f"{dims} alt='{esc(caption)}'></a></div>"
                           f"<figcaption>{esc(caption)}</figcaption></figure>")
            out.append("</div>")
            return "<div>" + "".join(out) + "</div>" if body else "".join(out)
        if kind == "links":
            out = f"<p>{esc(body)}</p>" if body else ""
            return ("<div>" + out + "<ul>" + "".join(f"<li><a href='{esc(path)}'>{esc(caption)}</a></li>"
                                                     for path, caption in items) + "</ul></div>")
        if kind == "pre":
            return f"<pre>{esc(body)}</pre>"
        if kind == "table":
            header, caption = body
            out = ["<table>"]
            if caption:
                out.append(f"<caption>{esc(caption)}</caption>")
            if header:
                out.append("<tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header) + "</tr>")
            for row in items:
                out.append("<tr>" + "".join(
                    f"<td class='num'>{esc(str(c))}</td>" if _numeric(c) else f"<td>{esc(str(c))}</td>"
                    for c in row) + "</tr>")
            out.append("</table>")
            return "".join(out)
        return f"<p>{esc(body)}</p>"


def _numeric(cell):
    return bool(re.fullmatch(r"[-+]?[\d,.]+\s*%?", str(cell)))


# ------------------------------------------------------------------ the demo's captions

# What each of the chapter's figures shows, and the section of chapter 10 it belongs to
# (after ../shared/CHAPTER10.md): the captions of the demo page's figures.
FIGURE_CAPTIONS = {
    "10.1": ("10.1", "a dynamical system without input, s(t) = f(s(t−1); θ) (equation 10.1), "
                     "unfolded in time"),
    "10.2": ("10.1", "a recurrent network with no outputs: the circuit (left; the black square "
                     "is a one-step delay) unfolded into one node per time step (right)"),
    "10.3": ("10.2", "the standard RNN, hidden-to-hidden recurrence with an output and a loss "
                     "at every step: circuit and unfolded graph"),
    "10.4": ("10.2", "an RNN whose only recurrence is from the output o to the hidden state: "
                     "circuit and unfolded graph"),
    "10.5": ("10.2", "an RNN that reads a whole sequence and produces one output at the end"),
    "10.6": ("10.2.1", "teacher forcing: at train time the target y(t−1) feeds h(t); at test "
                       "time the model's own output o(t−1) does"),
    "10.7": ("10.2.3", "the fully connected graphical model over y(1), y(2), …: every y(i) "
                       "depends on all earlier ones"),
    "10.8": ("10.2.3", "the same distribution with the hidden state drawn: the state makes "
                       "the model a chain"),
    "10.9": ("10.2.4", "a fixed vector x in (through R at every step), a distribution over "
                       "sequences out (captioning)"),
    "10.10": ("10.2.4", "sequence to sequence of the same length, with the previous target "
                        "y(t−1) fed back into h(t)"),
    "10.11": ("10.3", "a bidirectional RNN: h runs forward in time, g backward, and o(t) "
                      "sees both"),
    "10.12": ("10.4", "an encoder–decoder: the encoder reads x into a context C, the decoder "
                      "generates y from C"),
    "10.13": ("10.5", "three ways of making an RNN deep: (a) stacked recurrent layers, (b) "
                      "MLPs on the input-to-hidden, hidden-to-hidden and hidden-to-output "
                      "maps, (c) (b) plus a skip connection through time"),
    "10.14": ("10.6", "a recursive network: the same U, V, W shared over a tree instead of "
                      "a chain"),
    "10.15": ("10.7", "repeated composition of h ← tanh(W h): after more compositions the "
                      "map is mostly flat with a few steep parts (vanishing and exploding "
                      "gradients)"),
    "10.16": ("10.10.1", "the LSTM cell: input, input gate, forget gate and output gate, the "
                         "state's self-loop through the forget gate, and three products"),
    "10.17": ("10.11.1", "a cliff in the loss J(w, b) of a one-unit RNN: gradient descent "
                         "without clipping is thrown off, with norm clipping it stays near"),
    "10.18": ("10.12", "explicit memory: a task network that controls writing to and reading "
                       "from memory cells"),
    "10.12-attention": ("10.4", "figure 10.12 with attention (Bahdanau et al., 2015): every "
                                "decoder step weighs the encoder's states by α(t) into its "
                                "context ctx(t); C is only the initial state"),
}


def figure_caption(number):
    """The demo page's caption of the chapter's figure ``number``: which figure and section of
    chapter 10 it is, and what it shows."""
    section, what = FIGURE_CAPTIONS[number]
    return f"Figure {number} (§{section}): {what}."
